/* The registry's written contract, one test per promise (or per finding of
 * the review that showed it broken): notifications never inside the call
 * that caused them, close idempotent with every callback run once, boundary
 * values of timeouts and backoffs, handlers never run for calls nobody waits
 * for, the block pool out of ASan's way, nothing dropped uncounted,
 * re-registrations while an ack is pending, options built without _init,
 * a registry closing while a TCP connect is pending, stdio:// twice. */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawpeer.h"
#include "testutil.h"

typedef struct {
    int attached, up, down, closed;
    int last_status;
} chev_t;

static void chev_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                    int status, void *data) {
    chev_t *c = data;
    (void)r;
    (void)ch;
    switch (ev) {
        case CMDIPC_CHANNEL_ATTACHED: c->attached++; break;
        case CMDIPC_CHANNEL_UP: c->up++; break;
        case CMDIPC_CHANNEL_DOWN: c->down++; break;
        case CMDIPC_CHANNEL_CLOSED: c->closed++; break;
    }
    c->last_status = status;
}

/* ---------------------------------------------------------------------------
 * Notifications come from the loop, never from inside the API call. */

TEST(notifications_never_inside_the_call) {
    uv_loop_t loop;
    chev_t ea = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", NULL);
    cmdipc_registry_set_channel_cb(a, chev_cb, &ea);
    cmdipc_channel_t *ca, *cb;
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(a, ca));
    ASSERT_EQ(ea.attached, 0);
    ASSERT_EQ(ea.up, 0);
    ASSERT_OK(cmdipc_registry_attach(b, cb));
    tu_settle(&loop);
    ASSERT_EQ(ea.attached, 1);
    ASSERT_EQ(ea.up, 1);
    ASSERT_OK(cmdipc_channel_close(ca));
    ASSERT_EQ(ea.closed, 0);
    tu_settle(&loop);
    ASSERT_EQ(ea.closed, 1);
    ASSERT_OK(ea.last_status);

    /* A registry close: the CLOSED notifications of its channels come
     * later too (and before its close callback). */
    chev_t ec = {0};
    cmdipc_registry_t *c = tu_registry(&loop, "c", NULL);
    cmdipc_registry_set_channel_cb(c, chev_cb, &ec);
    ASSERT_OK(cmdipc_memory_pair("x", "c", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(c, ca));
    cmdipc_channel_free(cb);
    tu_settle(&loop);
    ASSERT_EQ(ec.closed, 1); /* the peer end went away */
    tu_close_all(&loop, a, b, c, NULL);
}

/* The close the review found broken: a registry closed from the CLOSED
 * notification of a channel whose transport reported the close from an
 * idle callback (here: tu_sink's peer close). */
typedef struct {
    int closes;
    int close_cbs;
} closer_t;

static void close_done(cmdipc_registry_t *r, void *data) {
    (void)r;
    ((closer_t *)data)->close_cbs++;
}

static void close_on_closed(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                            cmdipc_channel_event_t ev, int status, void *data) {
    closer_t *c = data;
    (void)ch;
    (void)status;
    if (ev != CMDIPC_CHANNEL_CLOSED)
        return;
    c->closes++;
    /* Twice: the second is a defined no-op whose callback still runs. */
    cmdipc_registry_close(r, close_done, c);
    cmdipc_registry_close(r, close_done, c);
}

TEST(close_registry_from_closed_notification) {
    uv_loop_t loop;
    closer_t c = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
    tu_forget(r);
    tu_sink_t *s1 = tu_sink(r, "one");
    tu_sink_t *s2 = tu_sink(r, "two");
    (void)s2;
    cmdipc_registry_set_channel_cb(r, close_on_closed, &c);
    tu_sink_peer_close(s1);
    ASSERT_LOOP_CLOSES(&loop);
    ASSERT_EQ(c.closes, 2); /* one's close, then two's, closed by the registry */
    ASSERT_EQ(c.close_cbs, 4);
}

typedef struct {
    int order[4];
    int n;
    cmdipc_registry_t *r;
} waiters_t;

static void waiter_cb(cmdipc_registry_t *r, void *data);

static void waiter_0(cmdipc_registry_t *r, void *data) {
    waiters_t *w = data;
    w->order[w->n++] = 0;
    /* From inside a close callback: runs too, before the registry is freed. */
    cmdipc_registry_close(r, waiter_cb, w);
    ASSERT_STATUS(CMDIPC_ECLOSED, cmdipc_registry_emit(r, "late", NULL));
}
static void waiter_1(cmdipc_registry_t *r, void *data) {
    (void)r;
    waiters_t *w = data;
    w->order[w->n++] = 1;
}
static void waiter_cb(cmdipc_registry_t *r, void *data) {
    (void)r;
    waiters_t *w = data;
    w->order[w->n++] = 2;
}

TEST(close_twice_runs_each_callback_once_in_order) {
    uv_loop_t loop;
    waiters_t w = {{0}, 0, NULL};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
    tu_forget(r);
    cmdipc_registry_close(r, waiter_0, &w);
    cmdipc_registry_close(r, NULL, NULL);
    cmdipc_registry_close(r, waiter_1, &w);
    ASSERT_EQ(w.n, 0); /* never inside the call */
    ASSERT_LOOP_CLOSES(&loop);
    ASSERT_EQ(w.n, 3);
    ASSERT_EQ(w.order[0], 0);
    ASSERT_EQ(w.order[1], 1);
    ASSERT_EQ(w.order[2], 2);
}

/* ---------------------------------------------------------------------------
 * Boundary values. */

TEST(timeouts_near_uint64_max_do_not_wrap) {
    uv_loop_t loop;
    tu_clock_t clk = {UINT64_C(1) << 40};
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.request_ttl_ms = UINT64_MAX - 1;
    o.event_ttl_ms = UINT64_MAX - 1;
    cmdipc_registry_t *a = tu_registry_opts(&loop, &o);
    cmdipc__registry_set_clock(a, tu_clock_now, &clk);
    tu_register(&loop, a, "never", tu_never_fn, NULL);
    /* A per-call timeout near the top and the registry's own TTL: neither
     * expires at once (now + ttl would wrap to the past). */
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = UINT64_MAX - 7;
    ASSERT_OK(cmdipc_registry_execute(a, "never", NULL, &eo, tu_response_cb, &res, NULL));
    tu_result_t res2 = {0};
    ASSERT_OK(tu_exec(a, "never", NULL, &res2));
    tu_settle(&loop);
    clk.now += 1000000;
    cmdipc__registry_run_deadlines(a);
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 0);
    ASSERT_EQ(res2.calls, 0);
    ASSERT_UEQ(cmdipc__registry_next_deadline(a), UINT64_MAX);
    ASSERT_UEQ(tu_never_count(), 2);
    tu_answer_never();
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 1); /* answered by the handler ("late"), not timed out */
    ASSERT_STATUS(CMDIPC_EINTERNAL, res.status);
    ASSERT_STR_EQ(res.message, "late");
    ASSERT_EQ(res2.calls, 1);
    ASSERT_STATUS(CMDIPC_EINTERNAL, res2.status);
    /* An event id seen with a TTL near the top stays seen. */
    tu_sink_t *s = tu_sink(a, "peer");
    tu_sink_inject(s, "{\"id\":\"e1\",\"type\":\"event\",\"eventId\":\"x\"}");
    clk.now += 1000000;
    tu_sink_inject(s, "{\"id\":\"e1\",\"type\":\"event\",\"eventId\":\"x\"}");
    cmdipc_stats_t st;
    cmdipc_registry_stats(a, &st);
    ASSERT_UEQ(st.events_received, 1);
    ASSERT_UEQ(st.dropped[CMDIPC_DROP_DUPLICATE_EVENT], 1);
    tu_close_all(&loop, a, NULL);
}

TEST(backoff_saturates) {
    /* Doubling from 100 ms without a cap in sight must not wrap to 0 (which
     * read as "retry in 1 ms"). */
    ASSERT_UEQ(cmdipc__backoff_ms(200, 100, UINT64_MAX, 0, 0.5), UINT64_MAX);
    ASSERT_UEQ(cmdipc__backoff_ms(200, 100, UINT64_MAX, 20, 0.99), UINT64_MAX);
    ASSERT_UEQ(cmdipc__backoff_ms(63, 1, UINT64_MAX, 0, 0.5), UINT64_C(1) << 63);
    ASSERT_UEQ(cmdipc__backoff_ms(3, 100, 30000, 0, 0.5), 800);
    ASSERT_UEQ(cmdipc__backoff_ms(100, 100, 30000, 0, 0.5), 30000);
}

/* ---------------------------------------------------------------------------
 * A handler never runs for a call nobody waits for. */

static int handler_runs;
static void count_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    handler_runs++;
    ASSERT_OK(cmdipc_call_reply(call, NULL));
}

TEST(handler_not_run_after_cancel_timeout_or_close) {
    uv_loop_t loop;
    tu_clock_t clk = {1000};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
    cmdipc__registry_set_clock(r, tu_clock_now, &clk);
    tu_register(&loop, r, "count", count_fn, NULL);
    handler_runs = 0;

    /* Canceled before the handler's turn. */
    tu_result_t res = {0};
    cmdipc_req_t *req;
    ASSERT_OK(cmdipc_registry_execute(r, "count", NULL, NULL, tu_response_cb, &res, &req));
    cmdipc_req_cancel(req);
    tu_settle(&loop);
    ASSERT_EQ(handler_runs, 0);
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, res.status);

    /* Timed out before it (a zero-ms wait in the fake clock). */
    tu_result_t res2 = {0};
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 1;
    ASSERT_OK(cmdipc_registry_execute(r, "count", NULL, &eo, tu_response_cb, &res2, NULL));
    clk.now += 5;
    cmdipc__registry_run_deadlines(r);
    tu_settle(&loop);
    ASSERT_EQ(handler_runs, 0);
    ASSERT_EQ(res2.calls, 1);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, res2.status);

    /* The registry closed before it. */
    tu_result_t res3 = {0};
    ASSERT_OK(tu_exec(r, "count", NULL, &res3));
    tu_forget(r);
    cmdipc_registry_close(r, NULL, NULL);
    ASSERT_LOOP_CLOSES(&loop);
    ASSERT_EQ(handler_runs, 0);
    ASSERT_EQ(res3.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, res3.status);
}

/* ---------------------------------------------------------------------------
 * The block pool must not hide a use after free from ASan. */

static cmdipc_call_t *kept_call;
static void keep_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    kept_call = call;
}

TEST(double_reply_is_seen_by_asan) {
    if (!cmdipc__pool_bypassed()) {
        /* A plain build keeps the cache: check it is one (a freed block
         * comes back). */
        void *p = cmdipc__palloc(64);
        cmdipc__pfree(p);
        void *q = cmdipc__palloc(64);
        ASSERT_PTR_EQ(p, q);
        cmdipc__pfree(q);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        uv_loop_t loop;
        tu_result_t res = {0};
        uv_loop_init(&loop);
        cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
        tu_register(&loop, r, "keep", keep_fn, NULL);
        tu_exec(r, "keep", NULL, &res);
        tu_settle(&loop);
        (void)cmdipc_call_reply(kept_call, NULL);
        (void)cmdipc_call_reply(kept_call, NULL); /* ASan: heap-use-after-free */
        _exit(0);
    }
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    /* ASan aborts (abort_on_error=1) or exits non-zero on the report. */
    ASSERT(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
}

/* ---------------------------------------------------------------------------
 * Nothing dropped uncounted: an answer whose channel is closing. */

static int closed_send(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    (void)ch;
    cmdipc_msg_free(m);
    return CMDIPC_ECLOSED;
}
static void noop_close(cmdipc_channel_t *ch, int graceful) {
    (void)graceful;
    cmdipc_channel_closed(ch, 0);
}
static const cmdipc_channel_ops_t closed_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION, .send = closed_send, .close = noop_close};

TEST(reply_to_a_closing_channel_is_counted) {
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
    tu_register(&loop, r, "math.add", tu_add_fn, NULL);
    cmdipc_channel_t *ch;
    ASSERT_OK(cmdipc_channel_new("gone", &closed_ops, NULL, &ch));
    ASSERT_OK(cmdipc_registry_attach(r, ch));
    cmdipc_stats_t st;
    cmdipc_registry_stats(r, &st);
    uint64_t before = st.dropped[CMDIPC_DROP_UNSENT];
    ASSERT(before >= 1); /* the list request of the attach itself */
    static const char line[] = "{\"id\":\"q1\",\"type\":\"execute.command.request\","
                               "\"commandId\":\"math.add\",\"request\":{\"a\":1,\"b\":2}}";
    cmdipc_channel_deliver_line(ch, line, sizeof(line) - 1);
    tu_settle(&loop);
    cmdipc_registry_stats(r, &st);
    ASSERT_UEQ(st.handled, 1);
    ASSERT_UEQ(st.dropped[CMDIPC_DROP_UNSENT], before + 1);
    ASSERT_STR_EQ(cmdipc_drop_reason_name(CMDIPC_DROP_UNSENT), "unsent");
    tu_close_all(&loop, r, NULL);
}

/* ---------------------------------------------------------------------------
 * Decision 5: a re-registration from the owning channel while the router's
 * ack is pending gets the router's answer too (it was refused). */

TEST(reregistration_while_ack_pending_is_answered_with_it) {
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *mid = tu_registry(&loop, "mid", "up");
    tu_sink_t *up = tu_sink(mid, "up");
    tu_sink_t *child = tu_sink(mid, "child");
    tu_settle(&loop);
    tu_sink_inject(child, "{\"id\":\"r1\",\"type\":\"register.command.request\","
                          "\"command\":{\"id\":\"job.run\"}}");
    tu_sink_inject(child, "{\"id\":\"r2\",\"type\":\"register.command.request\","
                          "\"command\":{\"id\":\"job.run\",\"description\":\"again\"}}");
    tu_settle(&loop);
    ASSERT_UEQ(tu_sink_count(up, "register.command.request"), 1); /* one escalation */
    ASSERT_UEQ(tu_sink_count(child, "register.command.response"), 0);
    json_t *esc = tu_sink_get(up, "register.command.request", 0);
    char ack[256];
    snprintf(ack, sizeof(ack),
             "{\"id\":\"a1\",\"type\":\"register.command.response\",\"thid\":\"%s\","
             "\"response\":{\"ok\":true}}",
             json_string_value(json_object_get(esc, "id")));
    tu_sink_inject(up, ack);
    tu_settle(&loop);
    ASSERT_UEQ(tu_sink_count(child, "register.command.response"), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *m = tu_sink_get(child, "register.command.response", i);
        ASSERT_STR_EQ(json_string_value(json_object_get(m, "thid")), i == 0 ? "r1" : "r2");
        ASSERT(json_is_true(json_object_get(json_object_get(m, "response"), "ok")));
    }
    ASSERT(tu_has_command(mid, "job.run"));
    cmdipc_stats_t st;
    cmdipc_registry_stats(mid, &st);
    ASSERT_UEQ(st.calls_in_flight, 0);
    tu_close_all(&loop, mid, NULL);
}

/* ---------------------------------------------------------------------------
 * Options built without _init are refused, not half-used. */

TEST(options_without_init_are_refused) {
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
    cmdipc_listen_opts_t lo;
    cmdipc_connect_opts_t co;
    cmdipc_spawn_opts_t so;
    cmdipc_memory_opts_t mo;
    cmdipc_exec_opts_t eo;
    cmdipc_registry_opts_t ro;
    cmdipc_registry_t *r2;
    cmdipc_channel_t *a, *b;
    memset(&lo, 0, sizeof(lo));
    memset(&co, 0, sizeof(co));
    memset(&so, 0, sizeof(so));
    memset(&mo, 0, sizeof(mo));
    memset(&eo, 0, sizeof(eo));
    memset(&ro, 0, sizeof(ro));
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(r, "tcp://127.0.0.1:0", &lo, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(r, "tcp://127.0.0.1:1", "x", &co, NULL));
    so.file = "true";
    ASSERT_STATUS(UV_EINVAL, cmdipc_spawn(r, "kid", &so, NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair_ex("a", "b", &mo, &a, &b));
    ASSERT_STATUS(UV_EINVAL,
                  cmdipc_registry_execute(r, "x", NULL, &eo, tu_response_cb, NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_new(&loop, &ro, &r2));
    /* Versioned, but the nested limits zeroed: refused too (it used to close
     * the connection on its first line). */
    cmdipc_listen_opts_init(&lo);
    memset(&lo.limits, 0, sizeof(lo.limits));
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(r, "tcp://127.0.0.1:0", &lo, NULL));
    cmdipc_connect_opts_init(&co);
    memset(&co.limits, 0, sizeof(co.limits));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(r, "tcp://127.0.0.1:1", "x", &co, NULL));
    cmdipc_spawn_opts_init(&so);
    so.file = "true";
    memset(&so.limits, 0, sizeof(so.limits));
    ASSERT_STATUS(UV_EINVAL, cmdipc_spawn(r, "kid", &so, NULL, NULL));
    /* A version from the future is refused everywhere. */
    cmdipc_listen_opts_init(&lo);
    lo.version = CMDIPC_LISTEN_OPTS_VERSION + 1;
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(r, "tcp://127.0.0.1:0", &lo, NULL));
    cmdipc_connect_opts_init(&co);
    co.version = CMDIPC_CONNECT_OPTS_VERSION + 1;
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(r, "tcp://127.0.0.1:1", "x", &co, NULL));
    cmdipc_memory_opts_init(&mo);
    mo.version = CMDIPC_MEMORY_OPTS_VERSION + 1;
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair_ex("a", "b", &mo, &a, &b));
    cmdipc_limits_t lim;
    cmdipc_limits_init(&lim);
    cmdipc_listen_opts_init(&lo);
    lo.limits = lim;
    lo.limits.version = CMDIPC_LIMITS_VERSION + 1;
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(r, "tcp://127.0.0.1:0", &lo, NULL));
    ASSERT_UEQ(rp_stats(r).channels, 0);
    tu_close_all(&loop, r, NULL);
}

/* ---------------------------------------------------------------------------
 * Finding 7: closing a registry while a tcp:// connect is still pending (a
 * far host dropping SYNs; here a loopback listener whose backlog is full)
 * completes at once; the connect's late result is ignored. */

static int full_listener(int *port, int *fds, int n) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(bind(s, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(s, 0)); /* never accepted: the queue fills */
    ASSERT_OK(getsockname(s, (struct sockaddr *)&a, &al));
    *port = ntohs(a.sin_port);
    /* Fill the accept queue; later SYNs are dropped, connects hang. */
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fds[i], (struct sockaddr *)&a, sizeof(a));
    }
    return s;
}

static int pending_connect_seen(const cmdipc_channel_t *ch) {
    /* The dialer's first attempt is in progress (not up). */
    return !cmdipc_channel_is_up(ch);
}

TEST(close_with_tcp_connect_pending_completes) {
    uv_loop_t loop;
    int port, fds[8];
    ASSERT_OK(uv_loop_init(&loop));
    int s = full_listener(&port, fds, 8);
    cmdipc_registry_t *r = tu_registry(&loop, "r", "hub");
    tu_forget(r);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    cmdipc_channel_t *ch;
    ASSERT_OK(cmdipc_connect(r, url, "hub", NULL, &ch));
    /* Let the SYN go out and nothing come back. */
    uint64_t t0 = uv_hrtime();
    while ((uv_hrtime() - t0) / 1000000 < 300)
        rp_pump(&loop, -1, 10);
    ASSERT(pending_connect_seen(ch));
    closer_t c = {0};
    cmdipc_registry_close(r, close_done, &c);
    t0 = uv_hrtime();
    while (uv_loop_alive(&loop)) {
        rp_pump(&loop, -1, 10);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 5000); /* not the kernel's ~2 min */
    }
    ASSERT_EQ(c.close_cbs, 1);
    ASSERT_OK(uv_loop_close(&loop));
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    close(s);
}

/* ---------------------------------------------------------------------------
 * spawn: an exit callback that closes the registry, also when the registry's
 * own close killed the child. */

static int exits, exit_close_cbs;
static void exit_close_done(cmdipc_registry_t *r, void *data) {
    (void)r;
    (void)data;
    exit_close_cbs++;
}
static void exit_closes_registry(cmdipc_registry_t *r, const char *id, int64_t status,
                                 int sig, void *data) {
    (void)id;
    (void)status;
    (void)sig;
    (void)data;
    exits++;
    cmdipc_registry_close(r, exit_close_done, NULL);
}

TEST(spawn_exit_cb_may_close_the_registry) {
    for (int round = 0; round < 2; round++) {
        uv_loop_t loop;
        ASSERT_OK(uv_loop_init(&loop));
        cmdipc_registry_t *r = tu_registry(&loop, "host", NULL);
        tu_forget(r);
        cmdipc_spawn_opts_t so;
        char *args[] = {"sh", "-c", round == 0 ? "exec cat" : "sleep 30", NULL};
        cmdipc_spawn_opts_init(&so);
        so.file = "sh";
        so.args = args;
        so.exit_cb = exit_closes_registry;
        so.kill_timeout_ms = 100;
        exits = exit_close_cbs = 0;
        ASSERT_OK(cmdipc_spawn(r, "kid", &so, NULL, NULL));
        tu_settle(&loop);
        if (round == 0) {
            /* The child exits on its own (its stdin closes): the exit
             * callback closes the registry. */
            ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(r, "kid")));
        } else {
            /* The registry's close kills the child; its exit callback closes
             * the registry again: a no-op whose callback still runs. */
            cmdipc_registry_close(r, exit_close_done, NULL);
        }
        uint64_t t0 = uv_hrtime();
        while (uv_loop_alive(&loop)) {
            uv_run(&loop, UV_RUN_ONCE);
            ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
        }
        ASSERT_OK(uv_loop_close(&loop));
        ASSERT_EQ(exits, 1);
        ASSERT_EQ(exit_close_cbs, round == 0 ? 1 : 2);
    }
}

static int64_t child_status;
static void exit_status_cb(cmdipc_registry_t *r, const char *id, int64_t status, int sig,
                           void *data) {
    (void)r;
    (void)id;
    (void)data;
    child_status = sig ? 128 + sig : status;
}

/* ---------------------------------------------------------------------------
 * stdio:// twice in one process: the second is refused with UV_EBUSY (it
 * used to return an undocumented UV_EEXIST and leak the connection). */

HELPER(stdio_twice) {
    uv_loop_t l;
    cmdipc_registry_t *r1, *r2;
    cmdipc_channel_t *ch;
    ASSERT_OK(uv_loop_init(&l));
    ASSERT_OK(cmdipc_registry_new(&l, NULL, &r1));
    ASSERT_OK(cmdipc_registry_new(&l, NULL, &r2));
    ASSERT_OK(cmdipc_connect(r1, "stdio://", "parent", NULL, &ch));
    int rc2 = cmdipc_connect(r2, "stdio://", "parent", NULL, NULL);
    int rc3 = cmdipc_connect(r1, "stdio://", "other", NULL, NULL);
    fprintf(stderr, "second=%s third=%s\n", cmdipc_err_name(rc2), cmdipc_err_name(rc3));
    ASSERT_OK(cmdipc_channel_close(ch));
    for (int i = 0; i < 50; i++)
        uv_run(&l, UV_RUN_NOWAIT);
    /* Once the first has closed, stdio:// may be connected again. */
    int rc4 = cmdipc_connect(r2, "stdio://", "parent", NULL, NULL);
    cmdipc_registry_close(r1, NULL, NULL);
    cmdipc_registry_close(r2, NULL, NULL);
    ASSERT_EQ(uv_run(&l, UV_RUN_DEFAULT), 0);
    ASSERT_OK(uv_loop_close(&l));
    return (rc2 == UV_EBUSY && rc3 == UV_EBUSY && rc4 == 0) ? 0 : 1;
}

TEST(stdio_connect_twice_is_busy) {
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "host", NULL);
    cmdipc_spawn_opts_t so;
    char *args[] = {(char *)harness_exe_path(), "--helper", "stdio_twice", NULL};
    cmdipc_spawn_opts_init(&so);
    so.file = args[0];
    so.args = args;
    so.exit_cb = exit_status_cb;
    child_status = -1;
    ASSERT_OK(cmdipc_spawn(r, "kid", &so, NULL, NULL));
    uint64_t t0 = uv_hrtime();
    while (child_status < 0) {
        uv_run(&loop, UV_RUN_ONCE);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 20000);
    }
    ASSERT_EQ(child_status, 0); /* under ASan: no leak either (LSan exits non-zero) */
    tu_close_all(&loop, r, NULL);
}

/* ---------------------------------------------------------------------------
 * CMDIPC_LOG is read only when the application asks (log_from_env); off
 * means off, an unknown value is reported and ignored (it used to mean
 * debug). */

static size_t log_run(const char *env, int from_env, char *out, size_t size) {
    char path[HARNESS_PATH_MAX];
    harness_scratch_path(path, sizeof(path), "log");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w+");
    ASSERT_NOT_NULL(f);
    dup2(fileno(f), 2);
    if (env != NULL)
        setenv("CMDIPC_LOG", env, 1);
    else
        unsetenv("CMDIPC_LOG");
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "logger";
    o.log_from_env = from_env;
    cmdipc_registry_t *r;
    ASSERT_OK(cmdipc_registry_new(&loop, &o, &r));
    cmdipc_channel_t *a, *b;
    ASSERT_OK(cmdipc_memory_pair("x", "y", &a, &b));
    ASSERT_OK(cmdipc_registry_attach(r, a)); /* logs "channel x attached" (info) */
    cmdipc_channel_free(b);
    cmdipc_registry_close(r, NULL, NULL);
    ASSERT_LOOP_CLOSES(&loop);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    return n;
}

TEST(log_environment_is_opt_in) {
    char out[4096];
    log_run("debug", 0, out, sizeof(out));
    ASSERT_STR_EQ(out, ""); /* not asked: silent */
    log_run("info", 1, out, sizeof(out));
    ASSERT_NOT_NULL(strstr(out, "cmdipc[logger] info: channel x attached"));
    log_run("off", 1, out, sizeof(out));
    ASSERT_STR_EQ(out, "");
    log_run("chatty", 1, out, sizeof(out));
    ASSERT_NOT_NULL(strstr(out, "CMDIPC_LOG=chatty is not a level"));
    ASSERT_NULL(strstr(out, "attached")); /* and not debug logging */
}

/* ---------------------------------------------------------------------------
 * Calls made before their route exists: without wait_for_route they fail
 * at once (later, as every completion); with it they wait, within their
 * deadline. */

static int exec_wait(cmdipc_registry_t *r, const char *id, uint64_t timeout, int wait,
                     tu_result_t *res, cmdipc_req_t **req) {
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = timeout;
    eo.wait_for_route = wait;
    json_t *rq = json_pack("{s:i,s:i}", "a", 2, "b", 3);
    int rc = cmdipc_registry_execute(r, id, rq, &eo, tu_response_cb, res, req);
    json_decref(rq); /* the waiting call keeps its own reference */
    return rc;
}

TEST(wait_for_route) {
    uv_loop_t loop;
    tu_clock_t clk = {1000};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_t *cli = tu_registry(&loop, "cli", "hub");
    cmdipc__registry_set_clock(cli, tu_clock_now, &clk);
    cmdipc__registry_set_clock(hub, tu_clock_now, &clk);
    tu_result_t now = {0}, waits = {0}, expires = {0}, canceled = {0}, at_root = {0};

    /* Router not attached yet. */
    ASSERT_OK(exec_wait(cli, "math.add", 5000, 0, &now, NULL));
    ASSERT_OK(exec_wait(cli, "math.add", 5000, 1, &waits, NULL));
    ASSERT_OK(exec_wait(cli, "math.add", 50, 1, &expires, NULL));
    cmdipc_req_t *creq;
    ASSERT_OK(exec_wait(cli, "math.add", 5000, 1, &canceled, &creq));
    tu_settle(&loop);
    ASSERT_EQ(now.calls, 1);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, now.status);
    ASSERT_EQ(waits.calls + expires.calls + canceled.calls, 0);
    cmdipc_req_cancel(creq);
    clk.now += 100;
    cmdipc__registry_run_deadlines(cli);
    tu_settle(&loop);
    ASSERT_EQ(canceled.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, canceled.status);
    ASSERT_EQ(expires.calls, 1);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, expires.status);
    ASSERT_NOT_NULL(strstr(expires.message, "no route to \"math.add\""));
    ASSERT_EQ(waits.calls, 0);

    /* At the root, the command is not known yet either. */
    ASSERT_OK(exec_wait(hub, "math.add", 5000, 1, &at_root, NULL));
    tu_settle(&loop);
    ASSERT_EQ(at_root.calls, 0);

    /* The link comes up and a server registers math.add with the hub: both
     * waiting calls go. */
    tu_link(cli, hub);
    tu_settle(&loop);
    /* cli's waiting call went to the hub as soon as the link was up, and the
     * hub answered not_found then: a route to the router is a route. */
    ASSERT_EQ(waits.calls, 1);
    ASSERT_STATUS(CMDIPC_ENOTFOUND, waits.status);
    cmdipc_registry_t *srv = tu_registry(&loop, "srv", "hub");
    cmdipc__registry_set_clock(srv, tu_clock_now, &clk);
    tu_link(srv, hub);
    tu_register(&loop, srv, "math.add", tu_add_fn, NULL);
    tu_settle(&loop);
    ASSERT_EQ(at_root.calls, 1);
    ASSERT_OK(at_root.status);
    ASSERT_EQ(json_integer_value(at_root.result), 5);

    /* A registry closing with a call still waiting cancels it. */
    tu_result_t closing = {0};
    ASSERT_OK(exec_wait(hub, "not.yet", 0, 1, &closing, NULL));
    tu_close_all(&loop, cli, srv, hub, NULL);
    ASSERT_EQ(closing.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, closing.status);
    tu_result_clear(&at_root);
}

TEST_LIST_BEGIN
TEST_ENTRY(notifications_never_inside_the_call)
TEST_ENTRY(close_registry_from_closed_notification)
TEST_ENTRY(close_twice_runs_each_callback_once_in_order)
TEST_ENTRY(timeouts_near_uint64_max_do_not_wrap)
TEST_ENTRY(backoff_saturates)
TEST_ENTRY(handler_not_run_after_cancel_timeout_or_close)
TEST_ENTRY(double_reply_is_seen_by_asan)
TEST_ENTRY(reply_to_a_closing_channel_is_counted)
TEST_ENTRY(reregistration_while_ack_pending_is_answered_with_it)
TEST_ENTRY(options_without_init_are_refused)
TEST_ENTRY(close_with_tcp_connect_pending_completes)
TEST_ENTRY(spawn_exit_cb_may_close_the_registry)
TEST_ENTRY(stdio_connect_twice_is_busy)
TEST_ENTRY(log_environment_is_opt_in)
TEST_ENTRY(wait_for_route)
TEST_HELPER(stdio_twice)
TEST_LIST_END
