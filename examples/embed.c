/* embed — the smallest complete program: one registry on a libuv loop serves
 * a command, calls it, and closes. This file is quoted in README.md. */
#include <cmdipc.h>
#include <stdio.h>

static void add(cmdipc_call_t *call, json_t *req, void *data) {
    json_int_t a = json_integer_value(json_object_get(req, "a"));
    json_int_t b = json_integer_value(json_object_get(req, "b"));
    json_t *sum = json_integer(a + b);
    cmdipc_call_reply(call, sum); /* borrowed: we still own sum */
    json_decref(sum);
}

static void done(cmdipc_req_t *req, int status, json_t *result, const char *msg, void *data) {
    if (status == 0)
        printf("math.add -> %lld\n", (long long)json_integer_value(result));
    else
        printf("math.add failed: %s (%s)\n", msg, cmdipc_err_name(status));
    cmdipc_registry_close(cmdipc_req_registry(req), NULL, NULL);
}

int main(void) {
    uv_loop_t *loop = uv_default_loop();
    cmdipc_registry_t *r;
    if (cmdipc_registry_new(loop, NULL, &r) != 0)
        return 1;
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", "a + b", NULL};
    cmdipc_registry_register(r, &def, add, NULL, NULL, NULL);
    json_t *req = json_pack("{s:i,s:i}", "a", 2, "b", 3);
    cmdipc_registry_execute(r, "math.add", req, NULL, done, NULL, NULL);
    json_decref(req);
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the registry has closed */
    return uv_loop_close(loop);
}
