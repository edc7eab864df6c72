/* cli-service — a service written with the library (public API only), for the
 * end-to-end tests of the cmdipc tool and for `make demo`.
 *
 *   cli-service ADDR
 *
 * Connects to the hub at ADDR (its router) and serves, like the math service
 * of examples/multi-service:
 *   math.add  {"a": int, "b": int} -> a + b, then emits math.computed
 *   math.mul  {"a": int, "b": int} -> a * b, then emits math.computed
 *             (anything else: invalid_request)
 *   math.slow {"ms": int}?         -> "finally", after ms (default 300)
 *   greet.hello "name" or {"name"} -> "Hello, name!"
 * Prints "ready" on stdout once the hub has acknowledged every command.
 * Exits 0 on SIGINT/SIGTERM, 14 when the connection is lost, 69 when it
 * cannot connect.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmdipc.h>

static uv_loop_t loop;
static cmdipc_registry_t *reg;
static uv_signal_t sigint, sigterm;
static int exit_code;
static int stopping;
static int live;
static int connected;

typedef struct slow_s {
    uv_timer_t timer;
    cmdipc_call_t *call;
    struct slow_s *next, *prev;
} slow_t;

static slow_t *slow_calls; /* math.slow calls waiting for their timer */

static void slow_answer(slow_t *s);

static void stop(int code) {
    if (stopping)
        return;
    stopping = 1;
    while (slow_calls != NULL) /* answer (dropped) and close at once */
        slow_answer(slow_calls);
    exit_code = code;
    cmdipc_registry_close(reg, NULL, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)s;
    (void)signum;
    stop(0);
}

static void math_binary(cmdipc_call_t *call, json_t *request, const char *op) {
    json_t *a = json_object_get(request, "a"), *b = json_object_get(request, "b");
    if (!json_is_integer(a) || !json_is_integer(b)) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ,
                         "expected {\"a\": integer, \"b\": integer}");
        return;
    }
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    json_t *r = json_integer(strcmp(op, "add") == 0 ? x + y : x * y);
    cmdipc_call_reply(call, r);
    json_t *ev = json_pack("{s:s,s:O}", "op", op, "result", r);
    cmdipc_registry_emit(reg, "math.computed", ev);
    json_decref(ev);
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

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_answer(slow_t *s) {
    json_t *r = json_string("finally");
    cmdipc_call_reply(s->call, r);
    json_decref(r);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        slow_calls = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->timer, slow_closed);
}

static void slow_fire(uv_timer_t *t) { slow_answer(t->data); }

static void math_slow(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    json_t *ms = json_object_get(request, "ms");
    slow_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    s->call = call;
    s->next = slow_calls;
    if (slow_calls != NULL)
        slow_calls->prev = s;
    slow_calls = s;
    uv_timer_init(&loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, slow_fire,
                   json_is_integer(ms) ? (uint64_t)json_integer_value(ms) : 300, 0);
}

static void greet_hello(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    const char *name = json_is_string(request)
                           ? json_string_value(request)
                           : json_string_value(json_object_get(request, "name"));
    if (name == NULL) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ,
                         "expected a name: \"Ada\" or {\"name\": \"Ada\"}");
        return;
    }
    json_t *r = json_sprintf("Hello, %s!", name);
    cmdipc_call_reply(call, r);
    json_decref(r);
}

static const struct {
    const char *id, *description;
    cmdipc_command_fn fn;
} commands[] = {
    {"math.add", "a + b of {\"a\": int, \"b\": int}; emits math.computed", math_add},
    {"math.mul", "a * b of {\"a\": int, \"b\": int}; emits math.computed", math_mul},
    {"math.slow", "answers \"finally\" after {\"ms\": int} (default 300)", math_slow},
    {"greet.hello", "greets \"name\" or {\"name\": ...}", greet_hello},
};
#define N_COMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

static void registered(cmdipc_registry_t *r, int status, const char *id, void *data) {
    (void)r;
    (void)data;
    if (stopping)
        return;
    if (status != 0) {
        fprintf(stderr, "cli-service: cannot register %s: %s\n", id,
                cmdipc_strerror(status));
        stop(1);
        return;
    }
    if (++live == N_COMMANDS) {
        printf("ready\n");
        fflush(stdout);
    }
}

/* Registering once the hub is up makes "ready" mean "acknowledged by it". */
static void start(void) {
    for (int i = 0; i < N_COMMANDS && !stopping; i++) {
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, commands[i].id,
                                    commands[i].description, NULL};
        int rc =
            cmdipc_registry_register(reg, &def, commands[i].fn, NULL, registered, NULL);
        if (rc != 0) {
            fprintf(stderr, "cli-service: cannot register %s: %s\n", commands[i].id,
                    cmdipc_strerror(rc));
            stop(1);
        }
    }
}

static void on_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                       cmdipc_channel_event_t ev, int status, void *data) {
    (void)r;
    (void)ch;
    (void)data;
    if (ev == CMDIPC_CHANNEL_UP && !connected) {
        connected = 1;
        start();
    } else if (ev == CMDIPC_CHANNEL_CLOSED && !stopping) {
        fprintf(stderr, "cli-service: connection %s: %s\n", connected ? "lost" : "failed",
                cmdipc_strerror(status));
        stop(connected ? 14 : 69);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cli-service ADDR\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    cmdipc_registry_opts_t ro;
    cmdipc_registry_opts_init(&ro);
    ro.id = "cli-service";
    ro.router_channel = "hub";
    ro.log_cb = cmdipc_log_stderr;
    if (cmdipc_registry_new(&loop, &ro, &reg) != 0)
        return 1;
    cmdipc_registry_set_channel_cb(reg, on_channel, NULL);
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);

    cmdipc_connect_opts_t co;
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0;
    int rc = cmdipc_connect(reg, argv[1], "hub", &co, NULL);
    if (rc != 0) {
        fprintf(stderr, "cli-service: cannot connect to %s: %s\n", argv[1],
                cmdipc_strerror(rc));
        stop(69);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "cli-service: the loop did not close\n");
        return 1;
    }
    return exit_code;
}
