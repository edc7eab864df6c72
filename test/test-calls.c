/* Calls: concurrency (PROTOCOL.md section 4, Rust concurrency.rs), deadlines
 * with an injected clock, cancellation, caps, asynchronous handlers, and the
 * registry's close with work pending. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static uv_loop_t loop;

/* ---------------------------------------------------------------------------
 * A handler that answers after a delay given in the request: {"ms":N,"tag":X}
 * -> X, from a uv timer. */

typedef struct {
    uv_timer_t timer;
    cmdipc_call_t *call;
    json_t *tag;
} delayed_t;

static int delayed_running;

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void delayed_fire(uv_timer_t *t) {
    delayed_t *d = t->data;
    ASSERT_OK(cmdipc_call_reply(d->call, d->tag));
    json_decref(d->tag);
    delayed_running--;
    d->timer.data = d;
    uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void delayed_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    delayed_t *d = calloc(1, sizeof(*d));
    ASSERT_NOT_NULL(d);
    d->call = call;
    d->tag = json_incref(json_object_get(request, "tag"));
    uv_timer_init(&loop, &d->timer);
    d->timer.data = d;
    delayed_running++;
    uv_timer_start(&d->timer, delayed_fire,
                   (uint64_t)json_integer_value(json_object_get(request, "ms")), 0);
}

static int exec_delayed(cmdipc_registry_t *r, int ms, int tag, tu_result_t *res) {
    json_t *req = json_pack("{s:i,s:i}", "ms", ms, "tag", tag);
    int rc = tu_exec(r, "delayed", req, res);
    json_decref(req);
    return rc;
}

TEST(fast_command_does_not_wait_for_slow_one) {
    tu_result_t slow = {0}, fast = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "delayed", delayed_fn, NULL);
    ASSERT_OK(exec_delayed(b, 300, 1, &slow));
    ASSERT_OK(exec_delayed(b, 0, 2, &fast));
    tu_run_until(&loop, &fast.done, 10000);
    /* The fast answer overtook the slow one on the same channel. */
    ASSERT_EQ(slow.done, 0);
    ASSERT_EQ(json_integer_value(fast.result), 2);
    tu_run_until(&loop, &slow.done, 10000);
    ASSERT_EQ(json_integer_value(slow.result), 1);
    tu_result_clear(&slow);
    tu_result_clear(&fast);
    tu_close_all(&loop, a, b, NULL);
}

TEST(responses_match_originating_requests) {
    enum { N = 10 };
    tu_result_t res[N];
    memset(res, 0, sizeof(res));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "delayed", delayed_fn, NULL);
    for (int i = 0; i < N; i++)
        ASSERT_OK(exec_delayed(b, (N - i) * 7 % 40, 100 + i, &res[i]));
    for (int i = 0; i < N; i++) {
        tu_run_until(&loop, &res[i].done, 10000);
        ASSERT_OK(res[i].status);
        ASSERT_EQ(json_integer_value(res[i].result), 100 + i);
        ASSERT_EQ(res[i].calls, 1);
        tu_result_clear(&res[i]);
    }
    tu_close_all(&loop, a, b, NULL);
}

TEST(forward_execute_does_not_serialize_remote_calls) {
    /* b and c both reach a's slow command through a; c's short call ends
     * while b's long one still runs. */
    tu_result_t rb = {0}, rc = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    cmdipc_registry_t *c = tu_registry(&loop, "c", "a");
    tu_link(a, b);
    tu_link(a, c);
    tu_register(&loop, a, "delayed", delayed_fn, NULL);
    ASSERT_OK(exec_delayed(b, 300, 1, &rb));
    ASSERT_OK(exec_delayed(c, 10, 2, &rc));
    tu_run_until(&loop, &rc.done, 10000);
    ASSERT_EQ(rb.done, 0);
    tu_run_until(&loop, &rb.done, 10000);
    ASSERT_EQ(json_integer_value(rb.result), 1);
    ASSERT_EQ(json_integer_value(rc.result), 2);
    tu_result_clear(&rb);
    tu_result_clear(&rc);
    tu_close_all(&loop, a, b, c, NULL);
}

TEST(events_flow_while_slow_handler_in_flight) {
    tu_result_t slow = {0};
    tu_events_t ev = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "delayed", delayed_fn, NULL);
    ASSERT_OK(cmdipc_registry_on(b, "tick", tu_event_cb, &ev, NULL));
    ASSERT_OK(exec_delayed(b, 400, 1, &slow));
    tu_settle(&loop);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cmdipc_registry_emit(a, "tick", NULL));
    tu_settle(&loop);
    ASSERT_EQ(ev.count, 100);
    ASSERT_EQ(slow.done, 0);
    tu_run_until(&loop, &slow.done, 10000);
    tu_result_clear(&slow);
    tu_close_all(&loop, a, b, NULL);
}

TEST(channel_close_during_slow_handler_is_clean) {
    tu_result_t slow = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "delayed", delayed_fn, NULL);
    ASSERT_OK(exec_delayed(b, 50, 1, &slow));
    tu_settle(&loop);
    ASSERT_EQ(delayed_running, 1);
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(b, "a")));
    tu_settle(&loop);
    ASSERT_EQ(slow.calls, 1);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, slow.status);
    /* The handler still answers; the answer is dropped and counted. */
    while (delayed_running > 0)
        uv_run(&loop, UV_RUN_ONCE);
    cmdipc_stats_t s;
    cmdipc_registry_stats(a, &s);
    ASSERT_EQ(s.dropped[CMDIPC_DROP_LATE_ANSWER], 1);
    ASSERT_EQ(slow.calls, 1);
    tu_result_clear(&slow);
    tu_close_all(&loop, a, b, NULL);
}

/* ---------------------------------------------------------------------------
 * In-flight cap: handlers that block until released. */

static cmdipc_call_t *blocked[64];
static int n_blocked, high_water;

static void block_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    blocked[n_blocked++] = call;
    if (n_blocked > high_water)
        high_water = n_blocked;
}

TEST(backpressure_cap_limits_concurrent_handlers) {
    enum { N = 10 };
    tu_result_t res[N];
    memset(res, 0, sizeof(res));
    cmdipc_registry_opts_t o;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_init(&o);
    o.id = "a";
    o.max_inbound_in_flight = 4;
    cmdipc_registry_t *a = tu_registry_opts(&loop, &o);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "block", block_fn, NULL);
    for (int i = 0; i < N; i++)
        ASSERT_OK(tu_exec(b, "block", NULL, &res[i]));
    tu_settle(&loop);
    ASSERT_EQ(high_water, 4);
    cmdipc_stats_t s;
    cmdipc_registry_stats(a, &s);
    ASSERT_GE(s.pauses, 1);
    int finished = 0;
    while (finished < N) {
        ASSERT_GT(n_blocked, 0);
        cmdipc_call_t *c = blocked[--n_blocked];
        ASSERT_OK(cmdipc_call_reply(c, NULL));
        tu_settle(&loop);
        finished = 0;
        for (int i = 0; i < N; i++)
            finished += res[i].done;
        ASSERT_LE(high_water, 4);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_OK(res[i].status);
        ASSERT_NULL(res[i].result);
        ASSERT_EQ(res[i].calls, 1);
    }
    tu_close_all(&loop, a, b, NULL);
}

/* ---------------------------------------------------------------------------
 * Deadlines with an injected clock. */

static tu_clock_t clk;

static cmdipc_registry_t *clocked(const char *id, const char *router, uint64_t ttl) {
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    o.router_channel = router;
    o.request_ttl_ms = ttl;
    cmdipc_registry_t *r = tu_registry_opts(&loop, &o);
    cmdipc__registry_set_clock(r, tu_clock_now, &clk);
    return r;
}

TEST(timeout_is_exact_with_injected_clock) {
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    clk.now = 1000;
    cmdipc_registry_t *a = clocked("a", NULL, 30000);
    cmdipc_registry_t *b = clocked("b", "a", 30000);
    tu_link(a, b);
    tu_register(&loop, a, "hang", tu_never_fn, NULL);
    ASSERT_OK(tu_exec(b, "hang", NULL, &res));
    tu_settle(&loop);
    ASSERT_EQ(cmdipc__registry_next_deadline(b), 31000);
    clk.now = 30999;
    cmdipc__registry_run_deadlines(b);
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 0);
    clk.now = 31000;
    cmdipc__registry_run_deadlines(b);
    ASSERT_EQ(res.calls, 0); /* deferred, not inside run_deadlines */
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, res.status);
    cmdipc_stats_t s;
    cmdipc_registry_stats(b, &s);
    ASSERT_EQ(s.timeouts, 1);
    /* The late reply travels back and is dropped as unmatched. */
    tu_answer_never();
    tu_settle(&loop);
    cmdipc_registry_stats(b, &s);
    ASSERT_EQ(s.dropped[CMDIPC_DROP_UNMATCHED], 1);
    ASSERT_EQ(res.calls, 1);
    /* a's route... a served it locally: nothing pending anywhere. */
    cmdipc_registry_stats(a, &s);
    ASSERT_EQ(s.calls_in_flight, 0);
    tu_result_clear(&res);
    tu_close_all(&loop, a, b, NULL);
}

TEST(per_call_timeout_overrides_and_zero_disables) {
    tu_result_t r1 = {0}, r2 = {0};
    cmdipc_exec_opts_t eo;
    ASSERT_OK(uv_loop_init(&loop));
    clk.now = 0;
    cmdipc_registry_t *a = clocked("a", NULL, 30000);
    tu_register(&loop, a, "hang", tu_never_fn, NULL);
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 50;
    ASSERT_OK(cmdipc_registry_execute(a, "hang", NULL, &eo, tu_response_cb, &r1, NULL));
    eo.timeout_ms = 0;
    ASSERT_OK(cmdipc_registry_execute(a, "hang", NULL, &eo, tu_response_cb, &r2, NULL));
    tu_settle(&loop);
    ASSERT_EQ(cmdipc__registry_next_deadline(a), 50);
    clk.now = 49;
    cmdipc__registry_run_deadlines(a);
    tu_settle(&loop);
    ASSERT_EQ(r1.calls, 0);
    clk.now = 50;
    cmdipc__registry_run_deadlines(a);
    tu_settle(&loop);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, r1.status);
    /* No deadline for the other. */
    ASSERT_UEQ(cmdipc__registry_next_deadline(a), UINT64_MAX);
    clk.now = 10000000;
    cmdipc__registry_run_deadlines(a);
    tu_settle(&loop);
    ASSERT_EQ(r2.calls, 0);
    /* The local handler answers both: the first answer is dropped. */
    tu_answer_never();
    tu_settle(&loop);
    ASSERT_EQ(r1.calls, 1);
    ASSERT_EQ(r2.calls, 1);
    ASSERT_STATUS(CMDIPC_EINTERNAL, r2.status);
    ASSERT_STR_EQ(r2.message, "late");
    tu_result_clear(&r1);
    tu_result_clear(&r2);
    tu_close_all(&loop, a, NULL);
}

TEST(real_timer_times_out_a_call) {
    /* The uv timer path (no injected clock), with a short per-call timeout. */
    tu_result_t res = {0};
    cmdipc_exec_opts_t eo;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    tu_register(&loop, a, "hang", tu_never_fn, NULL);
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 20;
    uint64_t start = uv_now(&loop);
    ASSERT_OK(cmdipc_registry_execute(a, "hang", NULL, &eo, tu_response_cb, &res, NULL));
    tu_run_until(&loop, &res.done, 20000);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, res.status);
    ASSERT_GE(uv_now(&loop) - start, 20);
    tu_answer_never();
    tu_result_clear(&res);
    tu_close_all(&loop, a, NULL);
}

static void cancel_inside_cb(cmdipc_req_t *req, int status, json_t *result,
                             const char *message, void *data) {
    tu_response_cb(req, status, result, message, data);
}

TEST(cancel_completes_once_and_sends_nothing) {
    tu_result_t res = {0};
    cmdipc_req_t *req;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", "router");
    tu_sink_t *sink = tu_sink(a, "router");
    tu_settle(&loop);
    ASSERT_OK(cmdipc_registry_execute(a, "remote.cmd", NULL, NULL, cancel_inside_cb, &res, &req));
    ASSERT_EQ(tu_sink_count(sink, "execute.command.request"), 1);
    size_t before = tu_sink_count(sink, NULL);
    cmdipc_req_cancel(req);
    ASSERT_EQ(res.calls, 0); /* deferred */
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, res.status);
    ASSERT_EQ(tu_sink_count(sink, NULL), before);
    /* A late answer is dropped as unmatched. */
    json_t *m = tu_sink_get(sink, "execute.command.request", 0);
    char line[256];
    snprintf(line, sizeof(line),
             "{\"id\":\"r1\",\"type\":\"execute.command.response\",\"thid\":\"%s\","
             "\"response\":{\"ok\":true,\"result\":1}}",
             json_string_value(json_object_get(m, "id")));
    tu_sink_inject(sink, line);
    tu_settle(&loop);
    cmdipc_stats_t s;
    cmdipc_registry_stats(a, &s);
    ASSERT_EQ(s.dropped[CMDIPC_DROP_UNMATCHED], 1);
    ASSERT_EQ(res.calls, 1);
    tu_result_clear(&res);
    tu_close_all(&loop, a, NULL);
}

/* ---------------------------------------------------------------------------
 * Caps and full queues. */

TEST(outbound_cap_returns_overload_and_queues_nothing) {
    tu_result_t res[5];
    memset(res, 0, sizeof(res));
    cmdipc_registry_opts_t o;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_init(&o);
    o.id = "a";
    o.router_channel = "router";
    o.max_outbound_pending = 4;
    cmdipc_registry_t *a = tu_registry_opts(&loop, &o);
    tu_sink_t *sink = tu_sink(a, "router");
    for (int i = 0; i < 4; i++)
        ASSERT_OK(tu_exec(a, "x", NULL, &res[i]));
    ASSERT_STATUS(CMDIPC_EOVERLOAD, tu_exec(a, "x", NULL, &res[4]));
    ASSERT_EQ(tu_sink_count(sink, "execute.command.request"), 4);
    /* Registrations count against the same cap. */
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "mine", NULL, NULL};
    ASSERT_STATUS(CMDIPC_EOVERLOAD,
                  cmdipc_registry_register(a, &def, tu_echo_fn, NULL, NULL, NULL));
    ASSERT(!tu_has_command(a, "mine"));
    tu_settle(&loop);
    ASSERT_EQ(res[4].calls, 0);
    cmdipc_stats_t s;
    cmdipc_registry_stats(a, &s);
    ASSERT_EQ(s.overloads, 2);
    ASSERT_EQ(s.pending_calls, 4);
    tu_close_all(&loop, a, NULL);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(res[i].calls, 1);
        ASSERT_STATUS(CMDIPC_ECANCELED, res[i].status);
    }
}

TEST(full_memory_queue_direct_send_is_overload_broadcast_is_slow_consumer) {
    /* b's loop is never run, so a's end of the pair fills up. */
    uv_loop_t loop_b;
    cmdipc_channel_t *ca, *cb;
    cmdipc_memory_opts_t mo;
    tu_result_t res[8];
    memset(res, 0, sizeof(res));
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_loop_init(&loop_b));
    cmdipc_registry_t *a = tu_registry(&loop, "a", "b");
    cmdipc_registry_t *b = tu_registry(&loop_b, "b", NULL);
    cmdipc_memory_opts_init(&mo);
    mo.queue_max = 4;
    ASSERT_OK(cmdipc_memory_pair_ex("b", "a", &mo, &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(a, ca)); /* queues a list request: 1 */
    ASSERT_OK(cmdipc_registry_attach(b, cb));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(tu_exec(a, "x", NULL, &res[i]));
    ASSERT_STATUS(CMDIPC_EOVERLOAD, tu_exec(a, "x", NULL, &res[3]));
    tu_settle(&loop);
    ASSERT_EQ(res[3].calls, 0);
    /* An event into the full queue closes the channel as a slow consumer. */
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    tu_settle(&loop);
    cmdipc_stats_t s;
    cmdipc_registry_stats(a, &s);
    ASSERT_EQ(s.slow_consumers, 1);
    ASSERT_NULL(cmdipc_registry_channel(a, "b"));
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(res[i].calls, 1);
        ASSERT_STATUS(CMDIPC_EDISCONNECTED, res[i].status);
    }
    tu_close_all(&loop, a, NULL);
    tu_close_all(&loop_b, b, NULL);
}

/* ---------------------------------------------------------------------------
 * Asynchronous handlers. */

/* Replies with the result of another call made from inside the handler. */
static void chain_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                     void *data) {
    (void)req;
    (void)message;
    cmdipc_call_t *call = data;
    ASSERT_OK(status);
    json_t *wrapped = json_pack("{s:O}", "inner", result);
    ASSERT_OK(cmdipc_call_reply(call, wrapped));
    json_decref(wrapped);
}

static void chain_fn(cmdipc_call_t *call, json_t *request, void *data) {
    cmdipc_registry_t *r = data;
    ASSERT_OK(cmdipc_registry_execute(r, "math.add", request, NULL, chain_cb, call, NULL));
}

TEST(handler_answers_from_another_calls_callback) {
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "math.add", tu_add_fn, NULL);
    tu_register(&loop, b, "chain", chain_fn, b);
    ASSERT_OK(tu_call(&loop, a, "chain", "{\"a\":1,\"b\":2}", &res));
    ASSERT_EQ(json_integer_value(json_object_get(res.result, "inner")), 3);
    tu_result_clear(&res);
    tu_close_all(&loop, a, b, NULL);
}

/* A handler that hands the call to a worker thread, which hands the answer
 * back through a uv_async; the reply happens on the loop thread. */
typedef struct {
    uv_async_t async;
    uv_thread_t thread;
    cmdipc_call_t *call;
    long long input;
    long long output;
} work_t;

static void work_thread(void *arg) {
    work_t *w = arg;
    w->output = w->input * w->input;
    uv_async_send(&w->async);
}

static void work_closed(uv_handle_t *h) { free(h->data); }

static void work_done(uv_async_t *h) {
    work_t *w = h->data;
    uv_thread_join(&w->thread);
    json_t *res = json_integer(w->output);
    ASSERT_OK(cmdipc_call_reply(w->call, res));
    json_decref(res);
    uv_close((uv_handle_t *)&w->async, work_closed);
}

static void square_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    work_t *w = calloc(1, sizeof(*w));
    ASSERT_NOT_NULL(w);
    w->call = call;
    w->input = json_integer_value(request);
    ASSERT_OK(uv_async_init(&loop, &w->async, work_done));
    w->async.data = w;
    ASSERT_OK(uv_thread_create(&w->thread, work_thread, w));
}

TEST(handler_answers_after_a_thread_hand_off) {
    tu_result_t res[16];
    memset(res, 0, sizeof(res));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", "a");
    tu_link(a, b);
    tu_register(&loop, a, "square", square_fn, NULL);
    for (int i = 0; i < 16; i++) {
        json_t *n = json_integer(i);
        ASSERT_OK(tu_exec(b, "square", n, &res[i]));
        json_decref(n);
    }
    for (int i = 0; i < 16; i++) {
        tu_run_until(&loop, &res[i].done, 10000);
        ASSERT_EQ(json_integer_value(res[i].result), i * i);
        tu_result_clear(&res[i]);
    }
    tu_close_all(&loop, a, b, NULL);
}

/* ---------------------------------------------------------------------------
 * Registry close. */

static int reg_done_calls, reg_done_status;
static void reg_done(cmdipc_registry_t *r, int status, const char *id, void *data) {
    (void)r;
    (void)id;
    (void)data;
    reg_done_calls++;
    reg_done_status = status;
}

TEST(registry_close_settles_pending_work_exactly_once) {
    tu_result_t remote = {0}, local = {0}, notfound = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", "router");
    tu_register(&loop, a, "hang", tu_never_fn, NULL); /* before the router attaches */
    tu_sink_t *sink = tu_sink(a, "router");
    ASSERT_EQ(tu_sink_count(sink, "register.command.request"), 1); /* escalated on attach */
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "pending.reg", NULL, NULL};
    ASSERT_OK(cmdipc_registry_register(a, &def, tu_echo_fn, NULL, reg_done, NULL));
    ASSERT_OK(tu_exec(a, "remote.cmd", NULL, &remote));
    ASSERT_OK(tu_exec(a, "hang", NULL, &local));
    tu_settle(&loop);
    ASSERT_EQ(tu_never_count(), 1);
    /* Closing: everything completes with CMDIPC_ECANCELED, once; new work is
     * refused at once. */
    cmdipc_registry_close(a, NULL, NULL);
    ASSERT_STATUS(CMDIPC_ECLOSED, tu_exec(a, "x", NULL, &notfound));
    ASSERT_STATUS(CMDIPC_ECLOSED, cmdipc_registry_emit(a, "e", NULL));
    ASSERT_STATUS(CMDIPC_ECLOSED,
                  cmdipc_registry_register(a, &def, tu_echo_fn, NULL, NULL, NULL));
    ASSERT_EQ(remote.calls, 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(remote.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, remote.status);
    ASSERT_EQ(local.calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, local.status);
    ASSERT_EQ(reg_done_calls, 1);
    ASSERT_STATUS(CMDIPC_ECANCELED, reg_done_status);
    ASSERT_EQ(notfound.calls, 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    /* The handler answers after its registry is gone: dropped, freed. */
    tu_answer_never();
    tu_result_clear(&remote);
    tu_result_clear(&local);
}

static int closer_calls;
static void close_in_listener(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                              void *data) {
    (void)event_id;
    (void)payload;
    int *n = data;
    if ((*n)++ == 0 && n == &closer_calls)
        cmdipc_registry_close(r, NULL, NULL);
}

TEST(listener_may_close_registry_during_delivery) {
    int n2 = 0;
    int *n1 = &closer_calls;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", NULL);
    tu_link(a, b);
    tu_settle(&loop);
    ASSERT_OK(cmdipc_registry_on(b, "e", close_in_listener, n1, NULL));
    ASSERT_OK(cmdipc_registry_on(b, "e", close_in_listener, &n2, NULL));
    tu_forget(b); /* it closes itself */
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    tu_settle(&loop);
    /* Both listeners saw the first event; nothing after the close. */
    ASSERT_EQ(*n1, 1);
    ASSERT_EQ(n2, 1);
    tu_close_all(&loop, a, NULL);
}

static void close_now(cmdipc_registry_t *r, const char *event_id, json_t *payload, void *data) {
    (void)event_id, (void)payload, (void)data;
    cmdipc_registry_close(r, NULL, NULL);
}

TEST(event_is_forwarded_when_a_listener_closes_the_registry) {
    /* a - b - c in a line: b's listener closes b, c still gets the event
     * (DESIGN: the forwarding to channels always happens). */
    tu_events_t ec = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", NULL);
    cmdipc_registry_t *c = tu_registry(&loop, "c", NULL);
    tu_link(a, b);
    tu_link(b, c);
    tu_settle(&loop);
    ASSERT_OK(cmdipc_registry_on(b, "e", close_now, NULL, NULL));
    ASSERT_OK(cmdipc_registry_on(c, "e", tu_event_cb, &ec, NULL));
    tu_forget(b);
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    for (int i = 0; i < 1000 && ec.count == 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ASSERT_EQ(ec.count, 1);
    /* Also for a local emit whose listener closes its own registry. */
    tu_events_t ea = {0};
    ASSERT_OK(cmdipc_registry_on(a, "f", tu_event_cb, &ea, NULL));
    ASSERT_OK(cmdipc_registry_on(c, "f", close_now, NULL, NULL));
    tu_forget(c);
    ASSERT_OK(cmdipc_registry_emit(c, "f", NULL)); /* c: b is gone, nobody to reach */
    tu_close_all(&loop, a, NULL);
    tu_events_clear(&ec);
    tu_events_clear(&ea);
}

static cmdipc_sub_t *sub_b, *sub_added;
static int calls_a, calls_b, calls_added;
static void added_cb(cmdipc_registry_t *r, const char *e, json_t *p, void *d) {
    (void)r, (void)e, (void)p, (void)d;
    calls_added++;
}
static void listener_a(cmdipc_registry_t *r, const char *e, json_t *p, void *d) {
    (void)p, (void)d;
    calls_a++;
    if (calls_a == 1) {
        cmdipc_sub_off(sub_b); /* b is not called again, even now */
        ASSERT_OK(cmdipc_registry_on(r, e, added_cb, NULL, &sub_added));
    }
}
static void listener_b(cmdipc_registry_t *r, const char *e, json_t *p, void *d) {
    (void)r, (void)e, (void)p, (void)d;
    calls_b++;
}

TEST(listeners_added_or_removed_during_delivery) {
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    ASSERT_OK(cmdipc_registry_on(a, "e", listener_a, NULL, NULL));
    ASSERT_OK(cmdipc_registry_on(a, "e", listener_b, NULL, &sub_b));
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    ASSERT_EQ(calls_a, 1);
    ASSERT_EQ(calls_b, 0);
    ASSERT_EQ(calls_added, 0); /* added during the delivery: next event */
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    ASSERT_EQ(calls_a, 2);
    ASSERT_EQ(calls_added, 1);
    cmdipc_sub_off(sub_added);
    ASSERT_OK(cmdipc_registry_emit(a, "e", NULL));
    ASSERT_EQ(calls_added, 1);
    tu_close_all(&loop, a, NULL);
}

TEST(wildcard_listener_receives_every_event) {
    tu_events_t all = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *b = tu_registry(&loop, "b", NULL);
    tu_link(a, b);
    ASSERT_OK(cmdipc_registry_on(b, NULL, tu_event_cb, &all, NULL));
    ASSERT_OK(cmdipc_registry_emit(a, "one", NULL));
    ASSERT_OK(cmdipc_registry_emit(a, "two", NULL));
    tu_settle(&loop);
    ASSERT_EQ(all.count, 2);
    ASSERT_STR_EQ(all.last_id, "two");
    tu_events_clear(&all);
    tu_close_all(&loop, a, b, NULL);
}

TEST(dedup_cache_is_bounded_oldest_first) {
    /* event_dedup_max 2: the third id pushes out the first, which is then
     * accepted again when it comes back. */
    cmdipc_registry_opts_t o;
    tu_events_t ev = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_init(&o);
    o.id = "a";
    o.event_dedup_max = 2;
    cmdipc_registry_t *a = tu_registry_opts(&loop, &o);
    tu_sink_t *s = tu_sink(a, "peer");
    ASSERT_OK(cmdipc_registry_on(a, "e", tu_event_cb, &ev, NULL));
    tu_sink_inject(s, "{\"id\":\"e1\",\"type\":\"event\",\"eventId\":\"e\"}");
    tu_sink_inject(s, "{\"id\":\"e1\",\"type\":\"event\",\"eventId\":\"e\"}");
    ASSERT_EQ(ev.count, 1);
    tu_sink_inject(s, "{\"id\":\"e2\",\"type\":\"event\",\"eventId\":\"e\"}");
    tu_sink_inject(s, "{\"id\":\"e3\",\"type\":\"event\",\"eventId\":\"e\"}");
    tu_sink_inject(s, "{\"id\":\"e1\",\"type\":\"event\",\"eventId\":\"e\"}");
    ASSERT_EQ(ev.count, 4);
    tu_sink_inject(s, "{\"id\":\"e3\",\"type\":\"event\",\"eventId\":\"e\"}");
    ASSERT_EQ(ev.count, 4);
    tu_events_clear(&ev);
    tu_close_all(&loop, a, NULL);
}

TEST(dedup_forgets_ids_after_event_ttl) {
    cmdipc_registry_opts_t o;
    tu_events_t ev = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_init(&o);
    o.id = "a";
    o.event_ttl_ms = 5000;
    cmdipc_registry_t *a = tu_registry_opts(&loop, &o);
    clk.now = 100;
    cmdipc__registry_set_clock(a, tu_clock_now, &clk);
    tu_sink_t *s = tu_sink(a, "peer");
    ASSERT_OK(cmdipc_registry_on(a, "e", tu_event_cb, &ev, NULL));
    const char *line = "{\"id\":\"x\",\"type\":\"event\",\"eventId\":\"e\"}";
    tu_sink_inject(s, line);
    clk.now = 5099;
    tu_sink_inject(s, line);
    ASSERT_EQ(ev.count, 1);
    clk.now = 5100;
    tu_sink_inject(s, line);
    ASSERT_EQ(ev.count, 2);
    tu_events_clear(&ev);
    tu_close_all(&loop, a, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(fast_command_does_not_wait_for_slow_one)
TEST_ENTRY(responses_match_originating_requests)
TEST_ENTRY(forward_execute_does_not_serialize_remote_calls)
TEST_ENTRY(events_flow_while_slow_handler_in_flight)
TEST_ENTRY(channel_close_during_slow_handler_is_clean)
TEST_ENTRY(backpressure_cap_limits_concurrent_handlers)
TEST_ENTRY(timeout_is_exact_with_injected_clock)
TEST_ENTRY(per_call_timeout_overrides_and_zero_disables)
TEST_ENTRY(real_timer_times_out_a_call)
TEST_ENTRY(cancel_completes_once_and_sends_nothing)
TEST_ENTRY(outbound_cap_returns_overload_and_queues_nothing)
TEST_ENTRY(full_memory_queue_direct_send_is_overload_broadcast_is_slow_consumer)
TEST_ENTRY(handler_answers_from_another_calls_callback)
TEST_ENTRY(handler_answers_after_a_thread_hand_off)
TEST_ENTRY(registry_close_settles_pending_work_exactly_once)
TEST_ENTRY(listener_may_close_registry_during_delivery)
TEST_ENTRY(listeners_added_or_removed_during_delivery)
TEST_ENTRY(event_is_forwarded_when_a_listener_closes_the_registry)
TEST_ENTRY(wildcard_listener_receives_every_event)
TEST_ENTRY(dedup_cache_is_bounded_oldest_first)
TEST_ENTRY(dedup_forgets_ids_after_event_ttl)
TEST_LIST_END
