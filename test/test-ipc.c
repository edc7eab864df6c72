/* Registries in separate processes: a parent and a child (this executable run
 * as a helper) over a Unix socket and over a spawned child's stdio; a peer
 * speaking raw NDJSON as another language's implementation would; and
 * SECURITY.md section c test 19 (a peer killed with 1,000 calls in flight). */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "rawpeer.h"
#include "schema_check.h"

static uv_loop_t loop;

/* ---------------------------------------------------------------------------
 * The child: argv[1] is the URL to connect to ("unix://..." or "stdio://"),
 * argv[2] the role:
 * - "full": serves child.mul, calls parent.add once the link is up and
 *   reports the sum as event child.result; answers each
 *   to.child event with a to.parent event. Exits 0 when the parent closes
 *   the link, if it saw exactly one to.child and got its sum.
 * - "hold": serves child.hold, which never answers; with no in-flight cap,
 *   it emits child.got {n} when it holds 1,000 calls. Runs until killed. */

static int child_to_child, child_sum_ok, child_holding;
static int child_closing;

static void child_call_parent(cmdipc_registry_t *r);

static void child_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                             cmdipc_channel_event_t ev, int status, void *data) {
    (void)ch, (void)status;
    if (ev == CMDIPC_CHANNEL_UP && data != NULL)
        child_call_parent(r); /* the router is there: call through it */
    if ((ev == CMDIPC_CHANNEL_CLOSED || ev == CMDIPC_CHANNEL_DOWN) && !child_closing) {
        child_closing = 1;
        cmdipc_registry_close(r, NULL, NULL);
    }
}

static void child_mul_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    json_t *v = json_integer(json_integer_value(json_object_get(request, "a")) *
                             json_integer_value(json_object_get(request, "b")));
    ASSERT_OK(cmdipc_call_reply(call, v));
    json_decref(v);
}

static void child_add_done(cmdipc_req_t *req, int status, json_t *result,
                           const char *message, void *data) {
    (void)message, (void)data;
    cmdipc_registry_t *r = cmdipc_req_registry(req);
    ASSERT_OK(status);
    ASSERT_EQ(json_integer_value(result), 5);
    child_sum_ok++;
    json_t *p = json_pack("{s:I}", "sum", json_integer_value(result));
    ASSERT_OK(cmdipc_registry_emit(r, "child.result", p));
    json_decref(p);
}

static void child_call_parent(cmdipc_registry_t *r) {
    json_t *req = json_pack("{s:i,s:i}", "a", 2, "b", 3);
    ASSERT_OK(
        cmdipc_registry_execute(r, "parent.add", req, NULL, child_add_done, NULL, NULL));
    json_decref(req);
}

static void child_to_child_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                              void *data) {
    (void)event_id, (void)data;
    child_to_child++;
    json_t *p = json_pack("{s:O,s:i}", "n", json_object_get(payload, "n"), "seen",
                          child_to_child);
    ASSERT_OK(cmdipc_registry_emit(r, "to.parent", p));
    json_decref(p);
}

static void child_hold_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)call, (void)request, (void)data;
    /* Never answered: the process is killed with the calls held. */
    if (++child_holding == 1000) {
        json_t *p = json_pack("{s:i}", "n", child_holding);
        ASSERT_OK(cmdipc_registry_emit(cmdipc_call_registry(call), "child.got", p));
        json_decref(p);
    }
}

HELPER(ipc_child) {
    ASSERT_EQ(argc, 3);
    const char *url = argv[1];
    int hold = strcmp(argv[2], "hold") == 0;
    uv_loop_t l;
    cmdipc_registry_t *r;
    cmdipc_registry_opts_t o;
    cmdipc_connect_opts_t co;
    signal(SIGPIPE, SIG_IGN);
    ASSERT_OK(uv_loop_init(&l));
    cmdipc_registry_opts_init(&o);
    o.id = "child";
    o.router_channel = "parent";
    if (hold)
        o.max_inbound_in_flight = 0; /* take all 1,000 */
    ASSERT_OK(cmdipc_registry_new(&l, &o, &r));
    cmdipc_registry_set_channel_cb(r, child_channel_cb, hold ? NULL : r);
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0; /* the parent going away ends the child */
    ASSERT_OK(cmdipc_connect(r, url, "parent", &co, NULL));
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION,
                                hold ? "child.hold" : "child.mul", "from the child",
                                NULL};
    ASSERT_OK(cmdipc_registry_register(r, &def, hold ? child_hold_fn : child_mul_fn, NULL,
                                       NULL, NULL));
    if (!hold)
        ASSERT_OK(cmdipc_registry_on(r, "to.child", child_to_child_cb, NULL, NULL));
    ASSERT_EQ(uv_run(&l, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&l), 0);
    if (child_to_child != 1 || child_sum_ok != 1) {
        fprintf(stderr, "child: to.child seen %d times, sum received %d times\n",
                child_to_child, child_sum_ok);
        return 3;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * The parent side. */

typedef struct {
    uv_process_t proc;
    int exited;
    int64_t status;
    int signal;
} child_t;

static void child_exit_cb(uv_process_t *p, int64_t status, int sig) {
    child_t *c = p->data;
    c->exited = 1;
    c->status = status;
    c->signal = sig;
    uv_close((uv_handle_t *)p, NULL);
}

/* Starts this executable as helper ipc_child with url and role. */
static void child_start(child_t *c, const char *url, const char *role) {
    char *args[] = {(char *)harness_exe_path(),
                    "--helper",
                    "ipc_child",
                    (char *)url,
                    (char *)role,
                    NULL};
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    memset(c, 0, sizeof(*c));
    memset(&po, 0, sizeof(po));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    po.file = args[0];
    po.args = args;
    po.exit_cb = child_exit_cb;
    po.stdio = stdio;
    po.stdio_count = 3;
    c->proc.data = c;
    ASSERT_OK(uv_spawn(&loop, &c->proc, &po));
}

static int spawn_exits, spawn_signal;
static int64_t spawn_status;
static void spawn_exit_cb(cmdipc_registry_t *r, const char *id, int64_t status, int sig,
                          void *data) {
    (void)r, (void)data;
    ASSERT_STR_EQ(id, "child");
    spawn_exits++;
    spawn_status = status;
    spawn_signal = sig;
}

static void spawn_child(cmdipc_registry_t *parent, const char *role, int *pid) {
    cmdipc_spawn_opts_t so;
    char *args[] = {(char *)harness_exe_path(),
                    "--helper",
                    "ipc_child",
                    "stdio://",
                    (char *)role,
                    NULL};
    cmdipc_spawn_opts_init(&so);
    so.file = args[0];
    so.args = args;
    so.exit_cb = spawn_exit_cb;
    spawn_exits = 0;
    ASSERT_OK(cmdipc_spawn(parent, "child", &so, NULL, pid));
}

/* Names the one accepted connection "child". */
static int name_child(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *name,
                      size_t size, void *data) {
    (void)l, (void)peer, (void)data;
    snprintf(name, size, "child");
    return 0;
}

static cmdipc_listener_t *listen_for_child(cmdipc_registry_t *parent, char *url,
                                           size_t url_size) {
    char path[HARNESS_PATH_MAX];
    cmdipc_listen_opts_t lo;
    cmdipc_listener_t *l;
    cmdipc_listen_opts_init(&lo);
    lo.accept_cb = name_child;
    rp_unix_url(url, url_size, path, "ipc");
    ASSERT_OK(cmdipc_listen(parent, url, &lo, &l));
    return l;
}

static tu_events_t ev_result, ev_to_parent;
static int ev_own;

static void count_own(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                      void *data) {
    (void)r, (void)event_id, (void)payload, (void)data;
    ev_own++;
}

/* Both ways: commands and events between the parent and its child. */
static void exchange_with_child(cmdipc_registry_t *parent) {
    tu_result_t res = {0};
    /* The child registered child.mul (escalated to us) and then called
     * parent.add, reporting the sum as an event. */
    RP_PUMP_UNTIL(&loop, -1, tu_has_command(parent, "child.mul") && ev_result.count == 1,
                  20000);
    ASSERT_EQ(json_integer_value(json_object_get(ev_result.last, "sum")), 5);
    /* Parent -> child. */
    json_t *req = json_pack("{s:i,s:i}", "a", 6, "b", 7);
    ASSERT_OK(tu_exec(parent, "child.mul", req, &res));
    json_decref(req);
    RP_PUMP_UNTIL(&loop, -1, res.done, 20000);
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), 42);
    /* An event there and one back. */
    json_t *p = json_pack("{s:i}", "n", 7);
    ASSERT_OK(cmdipc_registry_emit(parent, "to.child", p));
    json_decref(p);
    RP_PUMP_UNTIL(&loop, -1, ev_to_parent.count == 1, 20000);
    ASSERT_EQ(json_integer_value(json_object_get(ev_to_parent.last, "n")), 7);
    ASSERT_EQ(json_integer_value(json_object_get(ev_to_parent.last, "seen")), 1);
    /* Each once. */
    rp_run_for(&loop, -1, 50);
    ASSERT_EQ(ev_result.count, 1);
    ASSERT_EQ(ev_to_parent.count, 1);
    ASSERT_EQ(ev_own, 1); /* our own to.child, delivered locally once */
    ASSERT_EQ(res.calls, 1);
    cmdipc_stats_t s = rp_stats(parent);
    ASSERT_UEQ(s.events_received, 2);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID], 0);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_DUPLICATE_EVENT], 0);
    tu_result_clear(&res);
}

static cmdipc_registry_t *parent_new(void) {
    cmdipc_registry_t *parent = rp_registry(&loop, "parent", NULL);
    tu_register(&loop, parent, "parent.add", tu_add_fn, NULL);
    memset(&ev_result, 0, sizeof(ev_result));
    memset(&ev_to_parent, 0, sizeof(ev_to_parent));
    ev_own = 0;
    ASSERT_OK(cmdipc_registry_on(parent, "child.result", tu_event_cb, &ev_result, NULL));
    ASSERT_OK(cmdipc_registry_on(parent, "to.parent", tu_event_cb, &ev_to_parent, NULL));
    ASSERT_OK(cmdipc_registry_on(parent, "to.child", count_own, NULL, NULL));
    return parent;
}

TEST(ipc_parent_and_child_over_a_unix_socket) {
    char url[160];
    child_t c;
    signal(SIGPIPE, SIG_IGN);
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *parent = parent_new();
    listen_for_child(parent, url, sizeof(url));
    child_start(&c, url, "full");
    RP_PUMP_UNTIL(&loop, -1, cmdipc_registry_channel(parent, "child") != NULL || c.exited,
                  20000);
    ASSERT_EQ(c.exited, 0);
    cmdipc_peer_info_t pi;
    ASSERT_OK(cmdipc_channel_peer(cmdipc_registry_channel(parent, "child"), &pi));
    ASSERT_EQ(pi.pid, c.proc.pid);
    exchange_with_child(parent);
    /* We close the link: the child ends, cleanly. */
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(parent, "child")));
    RP_PUMP_UNTIL(&loop, -1, c.exited, 20000);
    ASSERT_EQ(c.signal, 0);
    ASSERT_EQ(c.status, 0);
    tu_events_clear(&ev_result);
    tu_events_clear(&ev_to_parent);
    tu_close_all(&loop, parent, NULL);
}

TEST(ipc_parent_and_spawned_child_over_stdio) {
    int pid = 0;
    signal(SIGPIPE, SIG_IGN);
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *parent = parent_new();
    spawn_child(parent, "full", &pid);
    ASSERT_GT(pid, 0);
    exchange_with_child(parent);
    /* Closing the channel closes its stdin: the child ends, cleanly. */
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(parent, "child")));
    RP_PUMP_UNTIL(&loop, -1, spawn_exits == 1, 20000);
    ASSERT_EQ(spawn_signal, 0);
    ASSERT_EQ(spawn_status, 0);
    tu_events_clear(&ev_result);
    tu_events_clear(&ev_to_parent);
    tu_close_all(&loop, parent, NULL);
    ASSERT_EQ(spawn_exits, 1);
}

/* ---------------------------------------------------------------------------
 * 19. The peer dies with 1,000 calls in flight. */

#define N_CALLS 1000
static int kill_calls[N_CALLS];
static int kill_status[N_CALLS];
static int kill_done;

static void kill_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                    void *data) {
    (void)req, (void)result;
    int i = (int)(intptr_t)data;
    ASSERT_NOT_NULL(message);
    kill_calls[i]++;
    kill_status[i] = status;
    kill_done++;
}

static tu_events_t ev_got;

static void kill_with_calls_in_flight(int over_stdio) {
    char url[160];
    child_t c;
    int pid = 0;
    cmdipc_exec_opts_t eo;
    signal(SIGPIPE, SIG_IGN);
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *parent = rp_registry(&loop, "parent", NULL);
    ASSERT_OK(cmdipc_registry_on(parent, "child.got", tu_event_cb, &ev_got, NULL));
    if (over_stdio) {
        spawn_child(parent, "hold", &pid);
    } else {
        listen_for_child(parent, url, sizeof(url));
        child_start(&c, url, "hold");
        pid = c.proc.pid;
    }
    RP_PUMP_UNTIL(&loop, -1, tu_has_command(parent, "child.hold"), 20000);
    /* No deadline: nothing but the disconnect can complete these. */
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 0;
    for (int i = 0; i < N_CALLS; i++)
        ASSERT_OK(cmdipc_registry_execute(parent, "child.hold", NULL, &eo, kill_cb,
                                          (void *)(intptr_t)i, NULL));
    RP_PUMP_UNTIL(&loop, -1, ev_got.count == 1, 20000);
    ASSERT_EQ(kill_done, 0);
    ASSERT_UEQ(rp_stats(parent).pending_calls, N_CALLS);
    ASSERT_UEQ(cmdipc__registry_next_deadline(parent), UINT64_MAX);

    ASSERT_OK(kill(pid, SIGKILL));
    RP_PUMP_UNTIL(&loop, -1, kill_done == N_CALLS, 20000);
    rp_run_for(&loop, -1, 50);
    ASSERT_EQ(kill_done, N_CALLS);
    for (int i = 0; i < N_CALLS; i++) {
        ASSERT_EQ(kill_calls[i], 1);
        ASSERT_STATUS(CMDIPC_EDISCONNECTED, kill_status[i]);
    }
    cmdipc_stats_t s = rp_stats(parent);
    ASSERT_UEQ(s.timeouts, 0);
    ASSERT_UEQ(s.pending_calls, 0);
    ASSERT_UEQ(s.channels, 0);
    ASSERT(!tu_has_command(parent, "child.hold"));
    if (over_stdio) {
        RP_PUMP_UNTIL(&loop, -1, spawn_exits == 1, 20000);
        ASSERT_EQ(spawn_signal, SIGKILL);
    } else {
        RP_PUMP_UNTIL(&loop, -1, c.exited, 20000);
        ASSERT_EQ(c.signal, SIGKILL);
    }
    tu_events_clear(&ev_got);
    tu_close_all(&loop, parent, NULL);
}

TEST(c19_peer_killed_with_1000_calls_in_flight_unix) { kill_with_calls_in_flight(0); }
TEST(c19_peer_killed_with_1000_calls_in_flight_stdio) { kill_with_calls_in_flight(1); }

/* ---------------------------------------------------------------------------
 * A foreign implementation: plain NDJSON over a socket. Every line cmdipc
 * sends is checked against the spec-v1 schemas and its exact content. */

static json_t *next_msg(rp_t *p, const char *type) {
    size_t n;
    char *line = NULL;
    uint64_t t0 = uv_hrtime();
    while ((line = rp_line(p, &n)) == NULL) {
        rp_read(p);
        ASSERT(!rp_closed(p));
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
        if ((line = rp_line(p, &n)) != NULL)
            break;
        rp_pump(&loop, p->fd, 5);
    }
    ASSERT_EQ(strlen(line), n); /* one line, no NUL */
    ASSERT_NULL(strstr(line, "null"));
    json_t *v = rp_check_line(line);
    free(line);
    ASSERT_STR_EQ(rp_str(v, "type"), type);
    ASSERT(cmdipc__is_uuid(rp_str(v, "id")));
    return v;
}

/* v without its id equals the JSON text expect. */
static void expect_msg(json_t *v, const char *expect) {
    json_t *e = tu_json(expect);
    json_t *copy = json_deep_copy(v);
    json_object_del(copy, "id");
    ASSERT_JSON_EQ(copy, e);
    json_decref(copy);
    json_decref(e);
}

static void send_line(rp_t *p, const char *line) {
    ASSERT_OK(rp_write_str(&loop, p, line));
    ASSERT_OK(rp_write_str(&loop, p, "\n"));
}

/* Nothing more: a ping through math.add answers next. */
static void expect_quiet(rp_t *p, int n) {
    char line[160];
    snprintf(line, sizeof(line),
             "{\"type\":\"execute.command.request\",\"id\":\"q%d\",\"commandId\":\"math."
             "add\",\"request\":{\"a\":%d,\"b\":0}}",
             n, n);
    send_line(p, line);
    json_t *v = next_msg(p, "execute.command.response");
    char expect[160];
    snprintf(expect, sizeof(expect),
             "{\"type\":\"execute.command.response\",\"thid\":\"q%d\",\"response\":{"
             "\"ok\":true,\"result\":%d}}",
             n, n);
    expect_msg(v, expect);
    json_decref(v);
}

static tu_events_t ev_ext;

TEST(ipc_raw_ndjson_peer_sees_exact_spec_lines) {
    char path[HARNESS_PATH_MAX], url[160];
    rp_t p;
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);
    json_t *schema = tu_json("{\"request\":{\"type\":\"object\"}}");
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", "adds a and b",
                                schema};
    ASSERT_OK(cmdipc_registry_register(hub, &def, tu_add_fn, NULL, NULL, NULL));
    json_decref(schema);
    tu_register(&loop, hub, "_private.cmd", tu_echo_fn, NULL);
    ASSERT_OK(cmdipc_registry_on(hub, "ext.news", tu_event_cb, &ev_ext, NULL));
    rp_unix_url(url, sizeof(url), path, "raw");
    ASSERT_OK(cmdipc_listen(hub, url, NULL, NULL));
    ASSERT_OK(rp_connect(&p, path));

    /* On connect: exactly one line, the hub's list request. */
    json_t *v = next_msg(&p, "list.commands.request");
    ASSERT_EQ(json_object_size(v), 2);
    json_decref(v);
    rp_run_for(&loop, p.fd, 50);
    rp_read(&p);
    ASSERT_EQ(p.len, 0);

    /* Our list request: the hub's public local commands. */
    send_line(&p, "{\"type\":\"list.commands.request\",\"id\":\"L1\"}");
    v = next_msg(&p, "list.commands.response");
    expect_msg(v, "{\"type\":\"list.commands.response\",\"thid\":\"L1\",\"commands\":"
                  "[{\"id\":\"math.add\",\"description\":\"adds a and b\","
                  "\"schema\":{\"request\":{\"type\":\"object\"}}}]}");
    json_decref(v);

    /* We register a command: acknowledged. */
    send_line(&p, "{\"type\":\"register.command.request\",\"id\":\"R1\",\"command\":{"
                  "\"id\":\"foreign.cmd\",\"description\":\"from afar\"}}");
    v = next_msg(&p, "register.command.response");
    expect_msg(v, "{\"type\":\"register.command.response\",\"thid\":\"R1\",\"response\":{"
                  "\"ok\":true}}");
    json_decref(v);
    ASSERT(tu_has_command(hub, "foreign.cmd"));
    /* An id the hub serves: refused. */
    send_line(&p, "{\"type\":\"register.command.request\",\"id\":\"R2\",\"command\":{"
                  "\"id\":\"math.add\"}}");
    v = next_msg(&p, "register.command.response");
    expect_msg(v, "{\"type\":\"register.command.response\",\"thid\":\"R2\",\"response\":{"
                  "\"ok\":false,\"error\":\"duplicate_command\"}}");
    json_decref(v);

    /* Execute: a result, not_found, a handler error, invalid_request. */
    send_line(&p, "{\"type\":\"execute.command.request\",\"id\":\"E1\",\"commandId\":"
                  "\"math.add\",\"request\":{\"a\":1,\"b\":2}}");
    v = next_msg(&p, "execute.command.response");
    expect_msg(v, "{\"type\":\"execute.command.response\",\"thid\":\"E1\",\"response\":{"
                  "\"ok\":true,\"result\":3}}");
    json_decref(v);
    send_line(
        &p,
        "{\"type\":\"execute.command.request\",\"id\":\"E2\",\"commandId\":\"no.such\"}");
    v = next_msg(&p, "execute.command.response");
    json_t *err = json_object_get(json_object_get(v, "response"), "error");
    ASSERT_STR_EQ(rp_str(err, "code"), "not_found");
    ASSERT_GT(strlen(rp_str(err, "message")), 0);
    ASSERT_EQ(json_object_size(json_object_get(v, "response")), 2);
    json_decref(v);
    send_line(&p, "{\"type\":\"execute.command.request\",\"id\":\"E3\",\"commandId\":"
                  "\"math.add\",\"request\":{\"a\":\"x\"}}");
    v = next_msg(&p, "execute.command.response");
    expect_msg(v, "{\"type\":\"execute.command.response\",\"thid\":\"E3\",\"response\":{"
                  "\"ok\":false,\"error\":{\"code\":\"invalid_request\",\"message\":\"a "
                  "and b must be numbers\"}}}");
    json_decref(v);
    send_line(&p, "{\"type\":\"execute.command.request\",\"id\":\"E4\"}");
    v = next_msg(&p, "execute.command.response");
    err = json_object_get(json_object_get(v, "response"), "error");
    ASSERT_STR_EQ(rp_str(v, "thid"), "E4");
    ASSERT_STR_EQ(rp_str(err, "code"), "invalid_request");
    json_decref(v);
    /* A private command is callable by whoever knows it; its result is
     * absent, not null. */
    send_line(&p, "{\"type\":\"execute.command.request\",\"id\":\"E5\",\"commandId\":\"_"
                  "private.cmd\"}");
    v = next_msg(&p, "execute.command.response");
    expect_msg(v, "{\"type\":\"execute.command.response\",\"thid\":\"E5\",\"response\":{"
                  "\"ok\":true}}");
    json_decref(v);

    /* An event, an unknown type, garbage, a stray response: nothing comes
     * back (checked by the next answer being the ping's). */
    send_line(&p, "{\"type\":\"event\",\"id\":\"V1\",\"eventId\":\"ext.news\","
                  "\"payload\":{\"x\":1}}");
    send_line(&p, "{\"type\":\"progress\",\"id\":\"P1\",\"thid\":\"E1\",\"value\":0.5}");
    send_line(&p, "hello world");
    send_line(&p, "{\"type\":\"execute.command.response\",\"id\":\"S1\",\"thid\":"
                  "\"nobody\",\"response\":{\"ok\":true}}");
    expect_quiet(&p, 1);
    ASSERT_EQ(ev_ext.count, 1);
    ASSERT_EQ(json_integer_value(json_object_get(ev_ext.last, "x")), 1);
    cmdipc_stats_t s = rp_stats(hub);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_UNKNOWN_TYPE], 1);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID], 2); /* E4, garbage */
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_UNMATCHED], 1);

    /* The hub calls our command: the request we get, and our answer. */
    json_t *req = tu_json("{\"k\":[1,\"two\"]}");
    ASSERT_OK(tu_exec(hub, "foreign.cmd", req, &res));
    json_decref(req);
    v = next_msg(&p, "execute.command.request");
    expect_msg(v, "{\"type\":\"execute.command.request\",\"commandId\":\"foreign.cmd\","
                  "\"request\":{\"k\":[1,\"two\"]}}");
    char line[256];
    snprintf(line, sizeof(line),
             "{\"type\":\"execute.command.response\",\"id\":\"X1\",\"thid\":\"%s\","
             "\"response\":{\"ok\":true,\"result\":\"done\"}}",
             rp_str(v, "id"));
    json_decref(v);
    send_line(&p, line);
    RP_PUMP_UNTIL(&loop, p.fd, res.done, 10000);
    ASSERT_OK(res.status);
    ASSERT_STR_EQ(json_string_value(res.result), "done");
    /* Without a request, the member is absent; an error of ours arrives
     * as its status with our message. */
    tu_result_clear(&res);
    ASSERT_OK(tu_exec(hub, "foreign.cmd", NULL, &res));
    v = next_msg(&p, "execute.command.request");
    expect_msg(v, "{\"type\":\"execute.command.request\",\"commandId\":\"foreign.cmd\"}");
    snprintf(line, sizeof(line),
             "{\"type\":\"execute.command.response\",\"id\":\"X2\",\"thid\":\"%s\","
             "\"response\":{\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":"
             "\"too slow\"}}}",
             rp_str(v, "id"));
    json_decref(v);
    send_line(&p, line);
    RP_PUMP_UNTIL(&loop, p.fd, res.done, 10000);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, res.status);
    ASSERT_STR_EQ(res.message, "too slow");
    tu_result_clear(&res);

    /* The hub's events reach us; no payload means no member. */
    json_t *pl = tu_json("{\"n\":1,\"s\":\"\\u00e9\"}");
    ASSERT_OK(cmdipc_registry_emit(hub, "hub.news", pl));
    v = next_msg(&p, "event");
    expect_msg(v, "{\"type\":\"event\",\"eventId\":\"hub.news\",\"payload\":{\"n\":1,"
                  "\"s\":\"\\u00e9\"}}");
    json_decref(v);
    json_decref(pl);
    ASSERT_OK(cmdipc_registry_emit(hub, "hub.ping", NULL));
    v = next_msg(&p, "event");
    expect_msg(v, "{\"type\":\"event\",\"eventId\":\"hub.ping\"}");
    json_decref(v);
    /* Private events stay local. */
    ASSERT_OK(cmdipc_registry_emit(hub, "_hub.private", NULL));
    expect_quiet(&p, 2);

    /* We hang up: our command goes with us. */
    rp_close(&p);
    RP_PUMP_UNTIL(&loop, -1, rp_stats(hub).channels == 0, 10000);
    ASSERT(!tu_has_command(hub, "foreign.cmd"));
    tu_events_clear(&ev_ext);
    tu_close_all(&loop, hub, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(ipc_parent_and_child_over_a_unix_socket)
TEST_ENTRY(ipc_parent_and_spawned_child_over_stdio)
TEST_ENTRY(c19_peer_killed_with_1000_calls_in_flight_unix)
TEST_ENTRY(c19_peer_killed_with_1000_calls_in_flight_stdio)
TEST_ENTRY(ipc_raw_ndjson_peer_sees_exact_spec_lines)
TEST_HELPER(ipc_child)
TEST_LIST_END
