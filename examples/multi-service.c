/* multi-service — two registries on two threads, linked by an in-memory pair.
 *
 * The "math" service (the router) serves math.add, math.mul and math.slow on
 * its own thread and loop. The "greeting" service runs on a second thread,
 * serves greet.hello (which itself calls math.mul across the link) and uses
 * math as its router. Each calls the other, and events fan out both ways:
 *
 *   greeting                                math
 *   register greet.hello ----------------->  (escalated, acked)
 *   emit greeter.ready   ----------------->  listener calls greet.hello
 *   greet.hello calls math.mul ----------->  math.mul, emits math.computed
 *   math.add, math.divide, math.slow ----->  result / not_found / timeout
 *   listener prints math.computed  <-------  emit math.computed
 *
 * Build and run: make demo (or build/examples/multi-service).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmdipc.h>

static uv_mutex_t print_lock;

static void say(const char *who, const char *fmt, ...) {
    va_list ap;
    uv_mutex_lock(&print_lock);
    printf("  [%-8s] ", who);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    uv_mutex_unlock(&print_lock);
}

static void check(int status, const char *what) {
    if (status != 0) {
        fprintf(stderr, "multi-service: %s: %s (%s)\n", what, cmdipc_strerror(status),
                cmdipc_err_name(status));
        exit(1);
    }
}

static char *dump(json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(none)");
}

/* ===========================================================================
 * The math service (thread 1). It is the root: it has no router.
 */

typedef struct {
    uv_loop_t loop;
    cmdipc_registry_t *reg;
    cmdipc_channel_t *link;
} service_t;

static service_t math, greeting;

static void emit_computed(const char *op, json_t *result) {
    json_t *p = json_pack("{s:s,s:O}", "op", op, "result", result);
    check(cmdipc_registry_emit(math.reg, "math.computed", p), "emit math.computed");
    json_decref(p);
}

static void math_binary(cmdipc_call_t *call, json_t *request, const char *op) {
    json_t *a = json_object_get(request, "a"), *b = json_object_get(request, "b");
    if (!json_is_integer(a) || !json_is_integer(b)) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ, "expected {\"a\": integer, \"b\": integer}");
        return;
    }
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    json_t *r = json_integer(strcmp(op, "add") == 0 ? x + y : x * y);
    say("math", "%s(%lld, %lld) = %lld   (asked by %s)", op, (long long)x, (long long)y,
        (long long)json_integer_value(r),
        cmdipc_call_channel_id(call) ? cmdipc_call_channel_id(call) : "this thread");
    cmdipc_call_reply(call, r);
    emit_computed(op, r);
    json_decref(r);
}

static void math_add(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    math_binary(call, request, "add");
}

static void math_mul(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    math_binary(call, request, "mul");
}

/* math.slow answers after 300 ms, from a timer: handlers may answer later. */
typedef struct {
    uv_timer_t timer;
    cmdipc_call_t *call;
} slow_t;

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_fire(uv_timer_t *t) {
    slow_t *s = t->data;
    json_t *r = json_string("finally");
    /* The caller gave up already: the answer is dropped, safely. */
    say("math", "math.slow answers now (caller still waiting: %s)",
        cmdipc_call_is_live(s->call) ? "yes" : "no");
    cmdipc_call_reply(s->call, r);
    json_decref(r);
    uv_close((uv_handle_t *)&s->timer, slow_closed);
}

static void math_slow(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    slow_t *s = calloc(1, sizeof(*s));
    s->call = call;
    uv_timer_init(&math.loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, slow_fire, 300, 0);
}

static void math_got_greeting(cmdipc_req_t *req, int status, json_t *result,
                              const char *message, void *data) {
    (void)req;
    (void)data;
    if (status == 0)
        say("math", "greet.hello answered: %s", json_string_value(result));
    else
        say("math", "greet.hello failed: %s", message);
    json_t *p = json_pack("{s:b}", "ok", status == 0);
    check(cmdipc_registry_emit(math.reg, "math.greeted", p), "emit math.greeted");
    json_decref(p);
}

static void math_on_ready(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                          void *data) {
    (void)data;
    char *text = dump(payload);
    say("math", "event %s %s -> calling greet.hello on the other thread", event_id, text);
    free(text);
    json_t *req = json_pack("{s:s}", "name", "Ada");
    check(cmdipc_registry_execute(r, "greet.hello", req, NULL, math_got_greeting, NULL, NULL),
          "execute greet.hello");
    json_decref(req);
}

static void math_channel_event(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                               cmdipc_channel_event_t event, int status, void *data) {
    (void)data;
    if (event == CMDIPC_CHANNEL_CLOSED) {
        say("math", "channel %s closed (%s): shutting down", cmdipc_channel_id(ch),
            status ? cmdipc_strerror(status) : "by us");
        cmdipc_registry_close(r, NULL, NULL);
    }
}

static void math_thread(void *arg) {
    (void)arg;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "math";
    check(cmdipc_registry_new(&math.loop, &o, &math.reg), "math registry");
    cmdipc_registry_set_channel_cb(math.reg, math_channel_event, NULL);

    json_t *schema = json_pack("{s:{s:s,s:{s:{s:s},s:{s:s}}},s:{s:s}}", "request", "type",
                               "object", "properties", "a", "type", "integer", "b", "type",
                               "integer", "response", "type", "integer");
    cmdipc_command_def_t add = {CMDIPC_COMMAND_DEF_VERSION, "math.add", "a + b", schema};
    cmdipc_command_def_t mul = {CMDIPC_COMMAND_DEF_VERSION, "math.mul", "a * b", schema};
    cmdipc_command_def_t slow = {CMDIPC_COMMAND_DEF_VERSION, "math.slow",
                                 "answers after 300 ms", NULL};
    check(cmdipc_registry_register(math.reg, &add, math_add, NULL, NULL, NULL), "math.add");
    check(cmdipc_registry_register(math.reg, &mul, math_mul, NULL, NULL, NULL), "math.mul");
    check(cmdipc_registry_register(math.reg, &slow, math_slow, NULL, NULL, NULL), "math.slow");
    json_decref(schema);
    check(cmdipc_registry_on(math.reg, "greeter.ready", math_on_ready, NULL, NULL), "on");

    /* Attach our end from this thread: its uv_async belongs to our loop. */
    check(cmdipc_registry_attach(math.reg, math.link), "attach math end");
    say("math", "serving math.add, math.mul, math.slow; linked to \"greeting\"");
    uv_run(&math.loop, UV_RUN_DEFAULT);
    check(uv_loop_close(&math.loop), "math loop close");
}

/* ===========================================================================
 * The greeting service (thread 2). Its router is the math service.
 */

static int steps_left = 4; /* 3 calls of ours + math's greeting */

static void step_done(void) {
    if (--steps_left == 0) {
        cmdipc_stats_t s;
        cmdipc_registry_stats(greeting.reg, &s);
        say("greeting", "stats: %llu executes, %llu handled, %llu events received, "
                        "%llu timeouts, %llu messages in, %llu out",
            (unsigned long long)s.executes, (unsigned long long)s.handled,
            (unsigned long long)s.events_received, (unsigned long long)s.timeouts,
            (unsigned long long)s.msgs_in, (unsigned long long)s.msgs_out);
        say("greeting", "all steps done: closing (the math service sees the link close)");
        cmdipc_registry_close(greeting.reg, NULL, NULL);
    }
}

typedef struct {
    cmdipc_call_t *call;
    char *name;
} hello_t;

static void hello_got_lucky(cmdipc_req_t *req, int status, json_t *result, const char *message,
                            void *data) {
    (void)req;
    hello_t *h = data;
    char text[160];
    if (status == 0) {
        snprintf(text, sizeof(text), "Hello, %s! Your lucky number is %lld.", h->name,
                 (long long)json_integer_value(result));
        json_t *r = json_string(text);
        cmdipc_call_reply(h->call, r);
        json_decref(r);
    } else {
        cmdipc_call_fail(h->call, CMDIPC_EINTERNAL, message);
    }
    free(h->name);
    free(h);
}

/* greet.hello {"name": s}: answers after asking math.mul for a lucky number
 * (a handler may answer from another call's callback). */
static void greet_hello(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    const char *name = json_string_value(json_object_get(request, "name"));
    if (name == NULL) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ, "expected {\"name\": string}");
        return;
    }
    say("greeting", "greet.hello(%s) -> asking math.mul for a lucky number", name);
    hello_t *h = calloc(1, sizeof(*h));
    h->call = call;
    h->name = strdup(name);
    json_t *req = json_pack("{s:i,s:i}", "a", (int)strlen(name), "b", 7);
    int rc = cmdipc_registry_execute(greeting.reg, "math.mul", req, NULL, hello_got_lucky, h,
                                     NULL);
    json_decref(req);
    if (rc != 0) {
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, cmdipc_strerror(rc));
        free(h->name);
        free(h);
    }
}

static void on_computed(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                        void *data) {
    (void)r;
    (void)data;
    char *text = dump(payload);
    say("greeting", "event %s %s", event_id, text);
    free(text);
}

static void on_greeted(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                       void *data) {
    (void)r;
    (void)payload;
    (void)data;
    say("greeting", "event %s: math got its greeting", event_id);
    step_done();
}

static void print_result(const char *what, int status, json_t *result, const char *message) {
    if (status == 0) {
        char *text = dump(result);
        say("greeting", "%s -> %s", what, text);
        free(text);
    } else {
        say("greeting", "%s -> error %s (wire code \"%s\"): %s", what, cmdipc_err_name(status),
            cmdipc_err_wire_code(status) ? cmdipc_err_wire_code(status) : "-", message);
    }
}

static void got_add(cmdipc_req_t *req, int status, json_t *result, const char *message,
                    void *data) {
    (void)req;
    (void)data;
    print_result("math.add {a:2,b:3}", status, result, message);
    step_done();
}

static void got_divide(cmdipc_req_t *req, int status, json_t *result, const char *message,
                       void *data) {
    (void)req;
    (void)data;
    print_result("math.divide", status, result, message);
    step_done();
}

static void got_slow(cmdipc_req_t *req, int status, json_t *result, const char *message,
                     void *data) {
    (void)req;
    (void)data;
    print_result("math.slow with a 50 ms timeout", status, result, message);
    step_done();
}

static void registered(cmdipc_registry_t *r, int status, const char *command_id, void *data) {
    (void)data;
    check(status, "register greet.hello");
    say("greeting", "%s is live (the router acknowledged it)", command_id);

    json_t *p = json_pack("{s:s}", "service", "greeting");
    say("greeting", "emit greeter.ready");
    check(cmdipc_registry_emit(r, "greeter.ready", p), "emit");
    json_decref(p);

    json_t *req = json_pack("{s:i,s:i}", "a", 2, "b", 3);
    check(cmdipc_registry_execute(r, "math.add", req, NULL, got_add, NULL, NULL), "math.add");
    json_decref(req);
    check(cmdipc_registry_execute(r, "math.divide", NULL, NULL, got_divide, NULL, NULL),
          "math.divide");
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 50;
    check(cmdipc_registry_execute(r, "math.slow", NULL, &eo, got_slow, NULL, NULL), "math.slow");
}

static void greeting_thread(void *arg) {
    (void)arg;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "greeting";
    o.router_channel = "math"; /* the channel id of our end of the link */
    check(cmdipc_registry_new(&greeting.loop, &o, &greeting.reg), "greeting registry");
    check(cmdipc_registry_on(greeting.reg, "math.computed", on_computed, NULL, NULL), "on");
    check(cmdipc_registry_on(greeting.reg, "math.greeted", on_greeted, NULL, NULL), "on");
    check(cmdipc_registry_attach(greeting.reg, greeting.link), "attach greeting end");

    cmdipc_command_def_t hello = {CMDIPC_COMMAND_DEF_VERSION, "greet.hello",
                                  "Greets {name} with a lucky number", NULL};
    say("greeting", "registering greet.hello (escalated to the router \"math\")");
    check(cmdipc_registry_register(greeting.reg, &hello, greet_hello, NULL, registered, NULL),
          "register greet.hello");
    uv_run(&greeting.loop, UV_RUN_DEFAULT);
    check(uv_loop_close(&greeting.loop), "greeting loop close");
}

int main(void) {
    uv_thread_t t1, t2;
    uv_mutex_init(&print_lock);
    printf("cmdipc %s multi-service: two registries, two threads, one in-memory link\n\n",
           cmdipc_version_string());

    check(uv_loop_init(&math.loop), "loop");
    check(uv_loop_init(&greeting.loop), "loop");
    /* End a is known as "greeting" by the registry that attaches it (math),
     * end b as "math" by the greeting registry. */
    check(cmdipc_memory_pair("greeting", "math", &math.link, &greeting.link), "memory pair");

    check(uv_thread_create(&t1, math_thread, NULL), "thread");
    check(uv_thread_create(&t2, greeting_thread, NULL), "thread");
    uv_thread_join(&t2);
    uv_thread_join(&t1);
    printf("\nboth registries closed, both loops closed cleanly.\n");
    uv_mutex_destroy(&print_lock);
    return 0;
}
