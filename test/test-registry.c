/* Registry behaviour across registries linked by in-memory channels on one
 * loop: the scenarios of PROTOCOL.md section 4 (Rust registry_integration,
 * dynamic_integration, TS CommandRegistry suites). */
#include <signal.h>
#include <string.h>

#include "testutil.h"

/* Two registries: a root "a" and a child "b" whose router channel is "a". */
static uv_loop_t loop;
static cmdipc_registry_t *ra, *rb;

static void pair_setup(void) {
    ASSERT_OK(uv_loop_init(&loop));
    ra = tu_registry(&loop, "a", NULL);
    rb = tu_registry(&loop, "b", "a");
    tu_link(ra, rb);
    tu_settle(&loop);
}

static void pair_teardown(void) { tu_close_all(&loop, ra, rb, NULL); }

TEST(execute_local_command) {
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    ra = tu_registry(&loop, "a", NULL);
    tu_register(&loop, ra, "math.add", tu_add_fn, NULL);
    ASSERT_OK(tu_call(&loop, ra, "math.add", "{\"a\":2,\"b\":3}", &res));
    ASSERT_EQ(json_integer_value(res.result), 5);
    tu_result_clear(&res);
    tu_close_all(&loop, ra, NULL);
}

TEST(child_executes_command_on_root_via_router) {
    tu_result_t res = {0};
    pair_setup();
    tu_register(&loop, ra, "math.add", tu_add_fn, NULL);
    ASSERT_OK(tu_call(&loop, rb, "math.add", "{\"a\":2,\"b\":3}", &res));
    ASSERT_EQ(json_integer_value(res.result), 5);
    tu_result_clear(&res);
    pair_teardown();
}

TEST(child_registration_escalates_and_root_can_invoke) {
    tu_result_t res = {0};
    pair_setup();
    tu_register(&loop, rb, "math.add", tu_add_fn, NULL);
    /* Live in the child only after the root's ack, and known to the root. */
    ASSERT(tu_has_command(rb, "math.add"));
    ASSERT(tu_has_command(ra, "math.add"));
    ASSERT_OK(tu_call(&loop, ra, "math.add", "{\"a\":20,\"b\":22}", &res));
    ASSERT_EQ(json_integer_value(res.result), 42);
    tu_result_clear(&res);
    pair_teardown();
}

TEST(duplicate_registration_fails) {
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
    pair_setup();
    tu_register(&loop, ra, "math.add", tu_add_fn, NULL);
    ASSERT_STATUS(CMDIPC_EDUPLICATE,
                  cmdipc_registry_register(ra, &def, tu_add_fn, NULL, NULL, NULL));
    pair_teardown();
}

static int reg_status = 1, reg_calls;
static char reg_id[64];
static void reg_cb(cmdipc_registry_t *r, int status, const char *id, void *data) {
    (void)r;
    (void)data;
    reg_status = status;
    reg_calls++;
    snprintf(reg_id, sizeof(reg_id), "%s", id);
}

TEST(duplicate_across_tree_is_refused_by_root) {
    /* b and c are children of a; b registers x, then c's x is refused. */
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "work.x", NULL, NULL};
    ASSERT_OK(uv_loop_init(&loop));
    ra = tu_registry(&loop, "a", NULL);
    rb = tu_registry(&loop, "b", "a");
    cmdipc_registry_t *rc = tu_registry(&loop, "c", "a");
    tu_link(ra, rb);
    tu_link(ra, rc);
    tu_settle(&loop);
    tu_register(&loop, rb, "work.x", tu_echo_fn, NULL);
    reg_calls = 0;
    ASSERT_OK(cmdipc_registry_register(rc, &def, tu_echo_fn, NULL, reg_cb, NULL));
    ASSERT_EQ(reg_calls, 0);
    tu_settle(&loop);
    ASSERT_EQ(reg_calls, 1);
    ASSERT_STATUS(CMDIPC_EDUPLICATE, reg_status);
    ASSERT_STR_EQ(reg_id, "work.x");
    ASSERT(!tu_has_command(rc, "work.x"));
    /* The id is free again in c: not registered locally after the refusal. */
    tu_close_all(&loop, ra, rb, rc, NULL);
}

TEST(unknown_command_returns_not_found) {
    tu_result_t res = {0};
    pair_setup();
    ASSERT_STATUS(CMDIPC_ENOTFOUND, tu_call(&loop, rb, "no.such", NULL, &res));
    ASSERT(strstr(res.message, "no.such") != NULL);
    ASSERT_STATUS(CMDIPC_ENOTFOUND, tu_call(&loop, ra, "no.such", NULL, &res));
    tu_result_clear(&res);
    pair_teardown();
}

TEST(handler_error_surfaces_to_caller) {
    tu_result_t res = {0};
    pair_setup();
    tu_register(&loop, ra, "boom", tu_fail_fn, NULL);
    ASSERT_STATUS(CMDIPC_EINTERNAL, tu_call(&loop, rb, "boom", NULL, &res));
    ASSERT_STR_EQ(res.message, "boom");
    tu_result_clear(&res);
    pair_teardown();
}

TEST(private_command_stays_local_but_is_callable_by_id) {
    tu_result_t res = {0};
    pair_setup();
    tu_register(&loop, ra, "_secret", tu_echo_fn, NULL);
    /* Callable locally and by the child through its router (privacy is not
     * access control). */
    ASSERT_OK(tu_call(&loop, ra, "_secret", "\"x\"", &res));
    ASSERT_STR_EQ(json_string_value(res.result), "x");
    ASSERT_OK(tu_call(&loop, rb, "_secret", "\"y\"", &res));
    ASSERT_STR_EQ(json_string_value(res.result), "y");
    /* A child's private command is never escalated: the root cannot reach it. */
    tu_register(&loop, rb, "_child.secret", tu_echo_fn, NULL);
    ASSERT(!tu_has_command(ra, "_child.secret"));
    ASSERT_STATUS(CMDIPC_ENOTFOUND, tu_call(&loop, ra, "_child.secret", NULL, &res));
    ASSERT_OK(tu_call(&loop, rb, "_child.secret", "1", &res));
    tu_result_clear(&res);
    pair_teardown();
}

TEST(events_broadcast_and_dedup) {
    tu_events_t ea = {0}, eb = {0};
    pair_setup();
    ASSERT_OK(cmdipc_registry_on(ra, "user.updated", tu_event_cb, &ea, NULL));
    ASSERT_OK(cmdipc_registry_on(rb, "user.updated", tu_event_cb, &eb, NULL));
    json_t *p = tu_json("{\"userId\":42}");
    ASSERT_OK(cmdipc_registry_emit(ra, "user.updated", p));
    ASSERT_EQ(ea.count, 1); /* synchronous, inside emit */
    ASSERT_EQ(eb.count, 0);
    tu_settle(&loop);
    ASSERT_EQ(ea.count, 1);
    ASSERT_EQ(eb.count, 1);
    ASSERT_JSON_EQ(eb.last, p);
    json_decref(p);
    tu_events_clear(&ea);
    tu_events_clear(&eb);
    pair_teardown();
}

TEST(private_event_does_not_cross_channel) {
    tu_events_t ea = {0}, eb = {0};
    pair_setup();
    ASSERT_OK(cmdipc_registry_on(ra, "_tick", tu_event_cb, &ea, NULL));
    ASSERT_OK(cmdipc_registry_on(rb, "_tick", tu_event_cb, &eb, NULL));
    ASSERT_OK(cmdipc_registry_emit(ra, "_tick", NULL));
    tu_settle(&loop);
    ASSERT_EQ(ea.count, 1);
    ASSERT_NULL(ea.last);
    ASSERT_EQ(eb.count, 0);
    pair_teardown();
}

TEST(channel_close_fails_pending_executes) {
    tu_result_t res = {0};
    pair_setup();
    tu_register(&loop, ra, "hang", tu_never_fn, NULL);
    ASSERT_OK(tu_exec(rb, "hang", NULL, &res));
    tu_settle(&loop);
    ASSERT_EQ(tu_never_count(), 1);
    ASSERT_EQ(res.calls, 0);
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(rb, "a")));
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, res.status);
    /* The handler answers late: dropped, no crash. */
    tu_answer_never();
    tu_settle(&loop);
    tu_result_clear(&res);
    pair_teardown();
}

TEST(channel_close_removes_its_commands) {
    tu_result_t res = {0};
    pair_setup();
    tu_register(&loop, rb, "work.ping", tu_echo_fn, NULL);
    ASSERT(tu_has_command(ra, "work.ping"));
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(ra, "b")));
    tu_settle(&loop);
    ASSERT(!tu_has_command(ra, "work.ping"));
    ASSERT_STATUS(CMDIPC_ENOTFOUND, tu_call(&loop, ra, "work.ping", NULL, &res));
    /* The child still serves it locally. */
    ASSERT_OK(tu_call(&loop, rb, "work.ping", "7", &res));
    tu_result_clear(&res);
    pair_teardown();
}

TEST(register_command_executes_locally_with_description) {
    tu_result_t res = {0};
    json_t *schema = tu_json("{\"request\":{\"type\":\"object\"},\"response\":{\"type\":\"number\"}}");
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.double", "Doubles x", schema};
    pair_setup();
    ASSERT_OK(cmdipc_registry_register(rb, &def, tu_add_fn, NULL, NULL, NULL));
    json_decref(schema);
    tu_settle(&loop);
    ASSERT_OK(tu_call(&loop, rb, "math.double", "{\"a\":21,\"b\":21}", &res));
    ASSERT_EQ(json_integer_value(res.result), 42);
    /* The root learned the description and schema with the registration. */
    cmdipc_command_info_t *info;
    size_t n;
    ASSERT_OK(cmdipc_registry_list_commands(ra, &info, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(info[0].id, "math.double");
    ASSERT_STR_EQ(info[0].description, "Doubles x");
    ASSERT_STR_EQ(info[0].channel_id, "b");
    ASSERT_EQ(info[0].is_local, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(info[0].schema, "response"),
                                                    "type")),
                  "number");
    cmdipc_command_info_free(info, n);
    tu_result_clear(&res);
    pair_teardown();
}

TEST(bad_arguments_are_returned_at_once) {
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "", NULL, NULL};
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    ra = tu_registry(&loop, "a", NULL);
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_register(ra, &def, tu_echo_fn, NULL, NULL, NULL));
    def.id = NULL;
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_register(ra, &def, tu_echo_fn, NULL, NULL, NULL));
    def.id = "bad\xff";
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_register(ra, &def, tu_echo_fn, NULL, NULL, NULL));
    def.id = "ok";
    def.schema = tu_json("{\"type\":\"object\"}"); /* not {request?, response?} */
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_register(ra, &def, tu_echo_fn, NULL, NULL, NULL));
    json_decref(def.schema);
    ASSERT_STATUS(UV_EINVAL, tu_exec(ra, "", NULL, &res));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_execute(ra, "x", NULL, NULL, NULL, NULL, NULL));
    /* JSON deeper than 64, or holding NUL. */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 64; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    ASSERT_STATUS(UV_EINVAL, tu_exec(ra, "x", deep, &res));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_emit(ra, "e", deep));
    json_decref(deep);
    json_t *nul = json_stringn("a\0b", 3);
    ASSERT_STATUS(UV_EINVAL, tu_exec(ra, "x", nul, &res));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_emit(ra, "e", nul));
    json_decref(nul);
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_emit(ra, "", NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_on(ra, "", tu_event_cb, NULL, NULL));
    ASSERT_EQ(res.calls, 0);
    tu_close_all(&loop, ra, NULL);
}

static int list_calls, list_status;
static json_t *list_got;
static void list_cb(cmdipc_registry_t *r, int status, json_t *commands, void *data) {
    (void)r;
    (void)data;
    list_calls++;
    list_status = status;
    list_got = json_incref(commands);
}

TEST(channel_list_commands_asks_the_peer) {
    pair_setup();
    tu_register(&loop, ra, "a.one", tu_echo_fn, NULL);
    tu_register(&loop, ra, "_a.private", tu_echo_fn, NULL);
    cmdipc_channel_t *ch = cmdipc_registry_channel(rb, "a");
    ASSERT_OK(cmdipc_channel_list_commands(ch, list_cb, NULL));
    ASSERT_EQ(list_calls, 0);
    tu_settle(&loop);
    ASSERT_EQ(list_calls, 1);
    ASSERT_OK(list_status);
    /* The peer's local public commands only. */
    ASSERT_EQ(json_array_size(list_got), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(list_got, 0), "id")), "a.one");
    json_decref(list_got);
    /* The answer made the command routable, as any list response does. */
    ASSERT(tu_has_command(rb, "a.one"));
    /* A request pending when the channel closes fails. */
    ASSERT_OK(cmdipc_channel_list_commands(ch, list_cb, NULL));
    ASSERT_OK(cmdipc_channel_close(ch));
    tu_settle(&loop);
    ASSERT_EQ(list_calls, 2);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, list_status);
    ASSERT_NULL(list_got);
    pair_teardown();
}

static char cmd_events[8][96];
static int n_cmd_events;
static void command_cb(cmdipc_registry_t *r, cmdipc_command_event_t ev, const char *id,
                       const char *channel_id, void *data) {
    (void)data;
    ASSERT_LT(n_cmd_events, 8);
    snprintf(cmd_events[n_cmd_events++], sizeof(cmd_events[0]), "%s %s %s %s",
             cmdipc_registry_id(r), ev == CMDIPC_COMMAND_ADDED ? "added" : "removed", id,
             channel_id ? channel_id : "local");
}

TEST(command_notifications) {
    pair_setup();
    cmdipc_registry_set_command_cb(ra, command_cb, NULL);
    cmdipc_registry_set_command_cb(rb, command_cb, NULL);
    tu_register(&loop, rb, "b.work", tu_echo_fn, NULL);
    ASSERT_EQ(n_cmd_events, 2);
    /* Two registries, each in its own order: compare as a set. */
    int a_first = strcmp(cmd_events[0], "a added b.work b") == 0;
    ASSERT_STR_EQ(cmd_events[a_first ? 0 : 1], "a added b.work b");
    ASSERT_STR_EQ(cmd_events[a_first ? 1 : 0], "b added b.work local");
    ASSERT_OK(cmdipc_registry_unregister(rb, "b.work"));
    ASSERT_EQ(n_cmd_events, 2); /* delivered from the loop, not inside the call */
    tu_settle(&loop);
    ASSERT_EQ(n_cmd_events, 3);
    ASSERT_STR_EQ(cmd_events[2], "b removed b.work local");
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(ra, "b")));
    tu_settle(&loop);
    ASSERT_EQ(n_cmd_events, 4);
    ASSERT_STR_EQ(cmd_events[3], "a removed b.work b");
    pair_teardown();
}

/* Each test runs in a fresh process, so the process-wide init runs with the
 * first registry created here. */
TEST(sigpipe_default_disposition_is_ignored) {
    struct sigaction sa;
    signal(SIGPIPE, SIG_DFL);
    ASSERT_OK(uv_loop_init(&loop));
    ra = tu_registry(&loop, "a", NULL);
    ASSERT_OK(sigaction(SIGPIPE, NULL, &sa));
    ASSERT(sa.sa_handler == SIG_IGN);
    tu_close_all(&loop, ra, NULL);
}

static void on_sigpipe(int sig) { (void)sig; }

TEST(sigpipe_handler_of_the_application_is_kept) {
    struct sigaction sa;
    signal(SIGPIPE, on_sigpipe);
    ASSERT_OK(uv_loop_init(&loop));
    ra = tu_registry(&loop, "a", NULL);
    ASSERT_OK(sigaction(SIGPIPE, NULL, &sa));
    ASSERT(sa.sa_handler == on_sigpipe);
    tu_close_all(&loop, ra, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(execute_local_command)
TEST_ENTRY(child_executes_command_on_root_via_router)
TEST_ENTRY(child_registration_escalates_and_root_can_invoke)
TEST_ENTRY(duplicate_registration_fails)
TEST_ENTRY(duplicate_across_tree_is_refused_by_root)
TEST_ENTRY(unknown_command_returns_not_found)
TEST_ENTRY(handler_error_surfaces_to_caller)
TEST_ENTRY(private_command_stays_local_but_is_callable_by_id)
TEST_ENTRY(events_broadcast_and_dedup)
TEST_ENTRY(private_event_does_not_cross_channel)
TEST_ENTRY(channel_close_fails_pending_executes)
TEST_ENTRY(channel_close_removes_its_commands)
TEST_ENTRY(register_command_executes_locally_with_description)
TEST_ENTRY(bad_arguments_are_returned_at_once)
TEST_ENTRY(channel_list_commands_asks_the_peer)
TEST_ENTRY(command_notifications)
TEST_ENTRY(sigpipe_default_disposition_is_ignored)
TEST_ENTRY(sigpipe_handler_of_the_application_is_kept)
TEST_LIST_END
