/* The in-memory channel (transports/memory.c) and inproc:// listeners,
 * observed through the registries its ends are attached to: both directions,
 * queueing before attach, close semantics (the Rust InMemoryChannel tests
 * close_stops_recv_on_both_sides, queued_messages_drain_after_peer_close and
 * send_after_close_is_error), a full queue, backpressure, two loops on two
 * threads, and naming/refusing connections by inproc://name. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---------------------------------------------------------------------------
 * Helpers. */

/* Channel notifications of one registry. */
typedef struct {
    int attached;
    int up; /* UP events: one per attach (memory links never go down) */
    int closed;
    int last_status;
    char names[8][64]; /* attached, in order */
    char closed_id[64];
    const int *counter; /* sampled at the close */
    int counter_at_close;
} chan_log_t;

static void chan_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                    cmdipc_channel_event_t event, int status, void *data) {
    chan_log_t *l = data;
    ASSERT_NOT_NULL(r);
    ASSERT_NOT_NULL(ch);
    if (event == CMDIPC_CHANNEL_ATTACHED) {
        ASSERT_EQ(status, 0);
        ASSERT_PTR_EQ(cmdipc_channel_registry(ch), r);
        snprintf(l->names[l->attached % 8], sizeof(l->names[0]), "%s",
                 cmdipc_channel_id(ch));
        l->attached++;
        return;
    }
    if (event == CMDIPC_CHANNEL_UP) {
        ASSERT_EQ(status, 0);
        ASSERT_EQ(l->up, l->attached - 1); /* right after its ATTACHED */
        l->up++;
        return;
    }
    ASSERT_NE(event, CMDIPC_CHANNEL_DOWN); /* a memory link is up until closed */
    ASSERT_EQ(event, CMDIPC_CHANNEL_CLOSED);
    l->closed++;
    l->last_status = status;
    snprintf(l->closed_id, sizeof(l->closed_id), "%s", cmdipc_channel_id(ch));
    if (l->counter != NULL)
        l->counter_at_close = *l->counter;
}

/* Events carrying 0, 1, 2, ...: asserts they arrive in order. */
typedef struct {
    int count;
} seq_t;

static void seq_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                   void *data) {
    (void)r;
    (void)event_id;
    seq_t *s = data;
    ASSERT(json_is_integer(payload));
    ASSERT_EQ(json_integer_value(payload), s->count);
    s->count++;
}

static void emit_int(cmdipc_registry_t *r, const char *event_id, int i) {
    json_t *v = json_integer(i);
    ASSERT_OK(cmdipc_registry_emit(r, event_id, v));
    json_decref(v);
}

static cmdipc_stats_t stats_of(const cmdipc_registry_t *r) {
    cmdipc_stats_t s;
    cmdipc_registry_stats(r, &s);
    return s;
}

static void closed_flag_cb(cmdipc_registry_t *r, void *data) {
    (void)r;
    ++*(int *)data;
}

/* Runs loop until pred(arg) holds. The bound is a guard against a hang, not
 * a synchronisation: each turn blocks until the loop has work. */
static void run_until(uv_loop_t *loop, int (*pred)(void *), void *arg) {
    uint64_t start = uv_hrtime();
    while (!pred(arg)) {
        uv_run(loop, UV_RUN_ONCE);
        ASSERT_LT((uv_hrtime() - start) / 1000000, 60000);
    }
}

static int int_is_set(void *p) { return *(int *)p != 0; }
static int closed_seen(void *arg) { return ((chan_log_t *)arg)->closed > 0; }

/* ---------------------------------------------------------------------------
 * One loop. */

TEST(pair_both_directions_one_loop) {
    uv_loop_t loop;
    tu_result_t res = {0};
    cmdipc_channel_t *ca, *cb, *x, *y;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);
    tu_register(&loop, ra, "a.echo", tu_echo_fn, NULL);
    tu_register(&loop, rb, "b.echo", tu_echo_fn, NULL);

    /* End a carries id_a: the registry attaching it knows the link by it. */
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_STR_EQ(cmdipc_channel_id(ca), "b");
    ASSERT_STR_EQ(cmdipc_channel_id(cb), "a");
    ASSERT_NULL(cmdipc_channel_registry(ca));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));
    ASSERT_OK(cmdipc_registry_attach(rb, cb));
    ASSERT_PTR_EQ(cmdipc_channel_registry(ca), ra);
    ASSERT_PTR_EQ(cmdipc_registry_channel(ra, "b"), ca);
    ASSERT_PTR_EQ(cmdipc_registry_channel(rb, "a"), cb);
    /* Attached elsewhere already; a second link with a taken id. */
    ASSERT_STATUS(UV_EBUSY, cmdipc_registry_attach(rb, ca));
    ASSERT_OK(cmdipc_memory_pair("b", "z", &x, &y));
    ASSERT_STATUS(UV_EEXIST, cmdipc_registry_attach(ra, x));
    cmdipc_channel_free(x);
    cmdipc_channel_free(y);

    tu_settle(&loop);
    ASSERT(tu_has_command(ra, "b.echo"));
    ASSERT(tu_has_command(rb, "a.echo"));
    ASSERT_OK(tu_call(&loop, ra, "b.echo", "{\"from\":\"a\"}", &res));
    json_t *want = tu_json("{\"from\":\"a\"}");
    ASSERT_JSON_EQ(res.result, want);
    json_decref(want);
    ASSERT_OK(tu_call(&loop, rb, "a.echo", "[1,\"b\"]", &res));
    want = tu_json("[1,\"b\"]");
    ASSERT_JSON_EQ(res.result, want);
    json_decref(want);

    /* 1,000 events each way, interleaved, each side in order. */
    seq_t sa = {0}, sb = {0};
    ASSERT_OK(cmdipc_registry_on(ra, "to.a", seq_cb, &sa, NULL));
    ASSERT_OK(cmdipc_registry_on(rb, "to.b", seq_cb, &sb, NULL));
    for (int i = 0; i < 1000; i++) {
        emit_int(ra, "to.b", i);
        emit_int(rb, "to.a", i);
    }
    ASSERT_EQ(sa.count, 0);
    tu_settle(&loop);
    ASSERT_EQ(sa.count, 1000);
    ASSERT_EQ(sb.count, 1000);
    ASSERT_UEQ(stats_of(ra).events_received, 1000);
    ASSERT_UEQ(stats_of(rb).events_received, 1000);
    tu_result_clear(&res);
    tu_close_all(&loop, ra, rb, NULL);
}

TEST(memory_pair_arguments) {
    cmdipc_channel_t *a = (cmdipc_channel_t *)&a, *b = (cmdipc_channel_t *)&b;
    cmdipc_memory_opts_t o;
    memset(&o, 0, sizeof(o));
    cmdipc_memory_opts_init(&o);
    ASSERT_EQ(o.version, CMDIPC_MEMORY_OPTS_VERSION);
    ASSERT_UEQ(o.queue_max, 10000);
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair("", "a", &a, &b));
    ASSERT_NULL(a);
    ASSERT_NULL(b);
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair("a", NULL, &a, &b));
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair("a", "\xff", &a, &b));
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair("a", "b", NULL, &b));
    o.queue_max = 0;
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair_ex("a", "b", &o, &a, &b));
    o.queue_max = 1;
    o.version = 0;
    ASSERT_STATUS(UV_EINVAL, cmdipc_memory_pair_ex("a", "b", &o, &a, &b));
    /* Both ends never attached: freed by the caller, nothing leaks. */
    o.version = CMDIPC_MEMORY_OPTS_VERSION;
    ASSERT_OK(cmdipc_memory_pair_ex("a", "b", &o, &a, &b));
    ASSERT_NOT_NULL(a);
    ASSERT_NOT_NULL(b);
    ASSERT_PTR_NE(a, b);
    cmdipc_channel_free(b);
    cmdipc_channel_free(a);
}

TEST(queued_before_attach_delivered_after) {
    uv_loop_t loop;
    tu_result_t res = {0};
    cmdipc_channel_t *ca, *cb;
    seq_t sb = {0};
    ASSERT_OK(uv_loop_init(&loop));
    /* b is a's router: a's executes go through the channel. */
    cmdipc_registry_t *ra = tu_registry(&loop, "a", "b");
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);
    tu_register(&loop, rb, "b.echo", tu_echo_fn, NULL);
    ASSERT_OK(cmdipc_registry_on(rb, "ev", seq_cb, &sb, NULL));
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));

    /* Sent while b's end is not attached: queued. */
    for (int i = 0; i < 5; i++)
        emit_int(ra, "ev", i);
    json_t *req = json_integer(42);
    ASSERT_OK(tu_exec(ra, "b.echo", req, &res));
    json_decref(req);
    tu_settle(&loop);
    ASSERT_EQ(sb.count, 0);
    ASSERT_EQ(res.calls, 0);
    ASSERT_UEQ(stats_of(ra).msgs_out, 7); /* list request, 5 events, the execute */
    ASSERT_UEQ(stats_of(rb).msgs_in, 0);

    ASSERT_OK(cmdipc_registry_attach(rb, cb));
    tu_settle(&loop);
    ASSERT_EQ(sb.count, 5);
    ASSERT_EQ(res.calls, 1);
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), 42);
    tu_result_clear(&res);
    tu_close_all(&loop, ra, rb, NULL);
}

TEST(queued_messages_drain_after_peer_close) {
    uv_loop_t loop;
    cmdipc_channel_t *ca, *cb;
    seq_t sb = {0};
    chan_log_t la, lb;
    memset(&la, 0, sizeof(la));
    memset(&lb, 0, sizeof(lb));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));
    ASSERT_OK(cmdipc_registry_attach(rb, cb));
    tu_settle(&loop);
    lb.counter = &sb.count;
    cmdipc_registry_set_channel_cb(ra, chan_cb, &la);
    cmdipc_registry_set_channel_cb(rb, chan_cb, &lb);
    ASSERT_OK(cmdipc_registry_on(rb, "ev", seq_cb, &sb, NULL));

    /* a emits 100 events, then closes its end at once. */
    for (int i = 0; i < 100; i++)
        emit_int(ra, "ev", i);
    ASSERT_OK(cmdipc_channel_close(ca));
    ASSERT_STATUS(UV_EALREADY, cmdipc_channel_close(ca));
    ASSERT_EQ(la.closed, 0); /* never from inside the call */
    ASSERT_NULL(cmdipc_registry_channel(ra, "b"));
    ASSERT_EQ(sb.count, 0);

    /* b receives all 100 in order, and only then sees the close. */
    tu_settle(&loop);
    ASSERT_EQ(la.closed, 1); /* closed by us: status 0 */
    ASSERT_OK(la.last_status);
    ASSERT_EQ(sb.count, 100);
    ASSERT_EQ(lb.closed, 1);
    ASSERT_STATUS(UV_EOF, lb.last_status);
    ASSERT_STR_EQ(lb.closed_id, "a");
    ASSERT_EQ(lb.counter_at_close, 100);
    ASSERT_NULL(cmdipc_registry_channel(rb, "a"));
    cmdipc_stats_t s = stats_of(rb);
    ASSERT_UEQ(s.disconnects, 1);
    ASSERT_UEQ(s.events_received, 100);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_CLOSED], 0);
    ASSERT_UEQ(s.channels, 0);
    ASSERT_EQ(la.closed, 1);
    tu_close_all(&loop, ra, rb, NULL);
}

TEST(close_stops_recv_on_both_sides) {
    uv_loop_t loop;
    cmdipc_channel_t *ca, *cb;
    seq_t sa = {0};
    chan_log_t lb;
    memset(&lb, 0, sizeof(lb));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));
    ASSERT_OK(cmdipc_registry_attach(rb, cb));
    tu_settle(&loop);
    cmdipc_registry_set_channel_cb(rb, chan_cb, &lb);
    ASSERT_OK(cmdipc_registry_on(ra, "ev", seq_cb, &sa, NULL));
    uint64_t a_in = stats_of(ra).msgs_in;

    /* b's events reach a's inbox; a closes before draining it: its receiving
     * stops at once, what was queued for it is dropped by the transport. */
    for (int i = 0; i < 5; i++)
        emit_int(rb, "ev", i);
    ASSERT_OK(cmdipc_channel_close(ca));
    /* Neither end can send any more. */
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_EVENT, NULL, NULL, "direct", NULL, NULL);
    ASSERT_STATUS(CMDIPC_ECLOSED, ca->ops->send(ca, m));
    m = cmdipc__msg_new(CMDIPC_MSG_EVENT, NULL, NULL, "direct", NULL, NULL);
    ASSERT_STATUS(CMDIPC_ECLOSED, cb->ops->send(cb, m));
    /* An event into the closed peer is no slow consumer. */
    emit_int(rb, "ev", 5);
    ASSERT_UEQ(stats_of(rb).slow_consumers, 0);

    tu_settle(&loop);
    ASSERT_EQ(sa.count, 0);
    ASSERT_UEQ(stats_of(ra).msgs_in, a_in); /* nothing delivered after the close */
    ASSERT_EQ(lb.closed, 1);
    ASSERT_STATUS(UV_EOF, lb.last_status);
    ASSERT_NULL(cmdipc_registry_channel(rb, "a"));
    ASSERT_UEQ(stats_of(rb).slow_consumers, 0);
    tu_close_all(&loop, ra, rb, NULL);
}

TEST(send_after_close_is_error) {
    uv_loop_t loop;
    cmdipc_channel_t *ca, *cb;
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", "b");
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));
    ASSERT_OK(cmdipc_registry_attach(rb, cb));
    tu_settle(&loop);
    /* b closes; a's end is still attached until it drains the close. */
    ASSERT_OK(cmdipc_channel_close(cb));
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_EVENT, NULL, NULL, "direct", NULL, NULL);
    ASSERT_STATUS(CMDIPC_ECLOSED, ca->ops->send(ca, m));
    /* Through a's registry: an execute into the closed link completes with
     * channel_disconnected, exactly once, never inside the call. */
    ASSERT_OK(tu_exec(ra, "remote.cmd", NULL, &res));
    ASSERT_EQ(res.calls, 0);
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, res.status);
    ASSERT_NULL(cmdipc_registry_channel(ra, "b"));
    /* No router any more: the same. */
    ASSERT_OK(tu_exec(ra, "remote.cmd", NULL, &res));
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 2);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, res.status);
    tu_result_clear(&res);
    tu_close_all(&loop, ra, rb, NULL);
}

TEST(unattached_end_freed_peer_sees_close) {
    uv_loop_t loop;
    cmdipc_channel_t *ca, *cb;
    tu_result_t res = {0};
    chan_log_t la, lc;
    memset(&la, 0, sizeof(la));
    memset(&lc, 0, sizeof(lc));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", "b");
    cmdipc_registry_set_channel_cb(ra, chan_cb, &la);
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));
    ASSERT_EQ(la.attached, 0); /* delivered from the loop */
    /* A call waits in the inbox of b's end, which is never attached. */
    ASSERT_OK(tu_exec(ra, "remote.cmd", NULL, &res));
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 0);
    cmdipc_channel_free(cb);
    tu_settle(&loop);
    ASSERT_EQ(la.closed, 1);
    ASSERT_STATUS(UV_EOF, la.last_status);
    ASSERT_NULL(cmdipc_registry_channel(ra, "b"));
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, res.status);

    /* Freed before its peer is attached: the peer sees the close right after
     * attaching. */
    cmdipc_registry_t *rc = tu_registry(&loop, "c", NULL);
    cmdipc_registry_set_channel_cb(rc, chan_cb, &lc);
    ASSERT_OK(cmdipc_memory_pair("x", "c", &ca, &cb));
    cmdipc_channel_free(cb);
    ASSERT_OK(cmdipc_registry_attach(rc, ca));
    tu_settle(&loop);
    ASSERT_EQ(lc.attached, 1);
    ASSERT_EQ(lc.closed, 1);
    ASSERT_STATUS(UV_EOF, lc.last_status);
    ASSERT_STR_EQ(lc.closed_id, "x");
    ASSERT_UEQ(stats_of(rc).channels, 0);
    tu_result_clear(&res);
    tu_close_all(&loop, ra, rc, NULL);
}

/* a on loop1 (run), b on loop2 (never run until the end): b's inbox fills. */
typedef struct {
    uv_loop_t loop1, loop2;
    cmdipc_registry_t *ra, *rb;
    cmdipc_channel_t *ca, *cb;
    chan_log_t la, lb;
} stalled_t;

static void stalled_setup(stalled_t *t, size_t queue_max, unsigned max_outbound) {
    cmdipc_registry_opts_t o;
    cmdipc_memory_opts_t mo;
    memset(t, 0, sizeof(*t));
    ASSERT_OK(uv_loop_init(&t->loop1));
    ASSERT_OK(uv_loop_init(&t->loop2));
    cmdipc_registry_opts_init(&o);
    o.id = "a";
    o.router_channel = "b";
    o.max_outbound_pending = max_outbound;
    t->ra = tu_registry_opts(&t->loop1, &o);
    cmdipc_registry_set_channel_cb(t->ra, chan_cb, &t->la);
    cmdipc_registry_opts_init(&o);
    o.id = "b";
    ASSERT_OK(cmdipc_registry_new(&t->loop2, &o, &t->rb)); /* not tracked by tu_settle */
    cmdipc_registry_set_channel_cb(t->rb, chan_cb, &t->lb);
    cmdipc_memory_opts_init(&mo);
    mo.queue_max = queue_max;
    ASSERT_OK(cmdipc_memory_pair_ex("b", "a", &mo, &t->ca, &t->cb));
    ASSERT_OK(cmdipc_registry_attach(t->rb, t->cb));
    ASSERT_OK(cmdipc_registry_attach(t->ra, t->ca));
    tu_settle(&t->loop1);
}

static void stalled_teardown(stalled_t *t) {
    int closed = 0;
    tu_close_all(&t->loop1, t->ra, NULL);
    cmdipc_registry_close(t->rb, closed_flag_cb, &closed);
    ASSERT_EQ(uv_run(&t->loop2, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(closed, 1);
    ASSERT_EQ(uv_loop_close(&t->loop2), 0);
}

TEST(full_queue_overload_then_slow_consumer) {
    stalled_t t;
    tu_result_t res[8], refused = {0};
    memset(res, 0, sizeof(res));
    stalled_setup(&t, 8, 1024);
    /* What a sent so far sits in b's inbox (list request, list response). */
    uint64_t queued = stats_of(t.ra).msgs_out;
    ASSERT_GE(queued, 1);
    ASSERT_LT(queued, 8);

    /* Direct executes fill the queue; the next is refused at once, with
     * nothing queued and no callback. */
    int ok = 0, rc = 0;
    for (int i = 0; i < 8; i++) {
        rc = tu_exec(t.ra, "remote.cmd", NULL, &res[i]);
        if (rc != 0)
            break;
        ok++;
    }
    ASSERT_EQ(ok, 8 - (int)queued);
    ASSERT_STATUS(CMDIPC_EOVERLOAD, rc);
    ASSERT_STATUS(CMDIPC_EOVERLOAD, tu_exec(t.ra, "remote.cmd", NULL, &refused));
    cmdipc_stats_t s = stats_of(t.ra);
    ASSERT_UEQ(s.overloads, 2);
    ASSERT_UEQ(s.msgs_out, 8);
    ASSERT_UEQ(s.pending_calls, (uint64_t)ok);
    tu_settle(&t.loop1);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(res[i].calls, 0);
    ASSERT_EQ(refused.calls, 0);
    ASSERT_NOT_NULL(cmdipc_registry_channel(t.ra, "b"));

    /* An event cannot be refused to anyone: the channel is closed as a slow
     * consumer, counted at once; the calls waiting on it fail. */
    ASSERT_OK(cmdipc_registry_emit(t.ra, "ev", NULL));
    ASSERT_UEQ(stats_of(t.ra).slow_consumers, 1);
    ASSERT_EQ(t.la.closed, 0); /* from a safe point, not inside emit */
    tu_settle(&t.loop1);
    ASSERT_NULL(cmdipc_registry_channel(t.ra, "b"));
    ASSERT_EQ(t.la.closed, 1);
    ASSERT_STATUS(CMDIPC_ESLOWCONSUMER, t.la.last_status);
    for (int i = 0; i < ok; i++) {
        ASSERT_EQ(res[i].calls, 1);
        ASSERT_STATUS(CMDIPC_EDISCONNECTED, res[i].status);
    }
    for (int i = ok; i < 8; i++)
        ASSERT_EQ(res[i].calls, 0);
    ASSERT_EQ(refused.calls, 0);
    s = stats_of(t.ra);
    ASSERT_UEQ(s.slow_consumers, 1);
    ASSERT_UEQ(s.disconnects, 1);
    ASSERT_UEQ(s.pending_calls, 0);
    ASSERT_UEQ(s.channels, 0);

    /* b's loop finally runs: its end delivers exactly what was queued (none
     * of the refused calls, not the event), then reports the close. */
    ASSERT_EQ(t.lb.closed, 0);
    run_until(&t.loop2, closed_seen, &t.lb);
    s = stats_of(t.rb);
    ASSERT_UEQ(s.msgs_in, 8);
    ASSERT_UEQ(s.events_received, 0);
    ASSERT_STATUS(UV_EOF, t.lb.last_status);
    stalled_teardown(&t);
}

TEST(default_queue_holds_10000) {
    /* SECURITY.md (c) test 17, in-memory half: with the outbound cap off,
     * the 10,000-message queue is the limit. */
    enum { Q = 10000 };
    stalled_t t;
    tu_result_t *res = calloc(Q + 1, sizeof(*res));
    ASSERT_NOT_NULL(res);
    stalled_setup(&t, Q, 0);
    uint64_t queued = stats_of(t.ra).msgs_out;
    int ok = 0, rc = 0;
    for (int i = 0; i <= Q; i++) {
        rc = tu_exec(t.ra, "remote.cmd", NULL, &res[i]);
        if (rc != 0)
            break;
        ok++;
    }
    ASSERT_STATUS(CMDIPC_EOVERLOAD, rc);
    ASSERT_EQ(ok, Q - (int)queued);
    ASSERT_UEQ(stats_of(t.ra).pending_calls, (uint64_t)ok);
    /* Closing a cancels every pending call, each exactly once. */
    stalled_teardown(&t);
    for (int i = 0; i < ok; i++) {
        ASSERT_EQ(res[i].calls, 1);
        ASSERT_STATUS(CMDIPC_ECANCELED, res[i].status);
    }
    ASSERT_EQ(res[ok].calls, 0);
    free(res);
}

TEST(outbound_cap_1024_over_memory) {
    /* SECURITY.md (c) test 17: the 1,025th concurrent call on one channel
     * fails at once with CMDIPC_EOVERLOAD. */
    stalled_t t;
    tu_result_t *res = calloc(1025, sizeof(*res));
    ASSERT_NOT_NULL(res);
    stalled_setup(&t, 10000, 1024);
    for (int i = 0; i < 1024; i++)
        ASSERT_OK(tu_exec(t.ra, "remote.cmd", NULL, &res[i]));
    ASSERT_STATUS(CMDIPC_EOVERLOAD, tu_exec(t.ra, "remote.cmd", NULL, &res[1024]));
    stalled_teardown(&t);
    for (int i = 0; i < 1024; i++)
        ASSERT_EQ(res[i].calls, 1);
    ASSERT_EQ(res[1024].calls, 0);
    free(res);
}

TEST(paused_end_stops_draining_and_resumes) {
    /* b pauses its end at 4 unanswered requests: the rest stays queued in
     * the transport, in order, until the count falls to half. */
    uv_loop_t loop;
    cmdipc_registry_opts_t o;
    tu_result_t res[10];
    memset(res, 0, sizeof(res));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", NULL);
    cmdipc_registry_opts_init(&o);
    o.id = "b";
    o.max_inbound_in_flight = 4;
    cmdipc_registry_t *rb = tu_registry_opts(&loop, &o);
    tu_register(&loop, rb, "b.hang", tu_never_fn, NULL);
    tu_link(ra, rb);
    tu_settle(&loop);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(tu_exec(ra, "b.hang", NULL, &res[i]));
    tu_settle(&loop);
    ASSERT_UEQ(tu_never_count(), 4);
    ASSERT_UEQ(stats_of(rb).pauses, 1);
    ASSERT_UEQ(stats_of(rb).calls_in_flight, 4);

    static const size_t rounds[] = {4, 2, 0};
    for (int r = 0; r < 3; r++) {
        tu_answer_never();
        tu_settle(&loop);
        ASSERT_UEQ(tu_never_count(), rounds[r]);
    }
    ASSERT_UEQ(stats_of(rb).pauses, 2);
    ASSERT_UEQ(stats_of(rb).handled, 10);
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(res[i].calls, 1);
        ASSERT_STATUS(CMDIPC_EINTERNAL, res[i].status);
        ASSERT_STR_EQ(res[i].message, "late");
    }
    tu_close_all(&loop, ra, rb, NULL);
}

/* ---------------------------------------------------------------------------
 * Two loops on two threads. */

enum { XT_N = 10000, XT_WINDOW = 256, XT_EVENTS = 100 };

typedef struct {
    cmdipc_channel_t *end; /* b's end, attached by the thread */
    uv_sem_t ready;
    uv_async_t stop;
    uv_loop_t loop;
    cmdipc_registry_t *r;
    int from_a; /* events received from a, in order */
    int closed;
    int run_rc;
    int loop_close_rc;
} peer_t;

static void peer_count_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    peer_t *p = data;
    json_t *n = json_integer(p->from_a);
    ASSERT_OK(cmdipc_call_reply(call, n));
    json_decref(n);
}

static void peer_event_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                          void *data) {
    (void)r;
    (void)event_id;
    peer_t *p = data;
    ASSERT_EQ(json_integer_value(payload), p->from_a);
    p->from_a++;
}

static void peer_closed_cb(cmdipc_registry_t *r, void *data) {
    (void)r;
    ((peer_t *)data)->closed = 1;
}

static void peer_stop_cb(uv_async_t *h) {
    peer_t *p = h->data;
    cmdipc_registry_close(p->r, peer_closed_cb, p);
    uv_close((uv_handle_t *)h, NULL);
}

static void peer_thread(void *arg) {
    peer_t *p = arg;
    cmdipc_registry_opts_t o;
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "b.echo", NULL, NULL};
    ASSERT_OK(uv_loop_init(&p->loop));
    cmdipc_registry_opts_init(&o);
    o.id = "b";
    ASSERT_OK(cmdipc_registry_new(&p->loop, &o, &p->r));
    ASSERT_OK(cmdipc_registry_register(p->r, &def, tu_echo_fn, NULL, NULL, NULL));
    def.id = "b.count";
    ASSERT_OK(cmdipc_registry_register(p->r, &def, peer_count_fn, p, NULL, NULL));
    ASSERT_OK(cmdipc_registry_on(p->r, "from.a", peer_event_cb, p, NULL));
    ASSERT_OK(uv_async_init(&p->loop, &p->stop, peer_stop_cb));
    p->stop.data = p;
    /* Attached from the thread of the loop that owns it. */
    ASSERT_OK(cmdipc_registry_attach(p->r, p->end));
    for (int i = 0; i < XT_EVENTS; i++) {
        json_t *v = json_integer(i);
        ASSERT_OK(cmdipc_registry_emit(p->r, "from.b", v));
        json_decref(v);
    }
    uv_sem_post(&p->ready);
    p->run_rc = uv_run(&p->loop, UV_RUN_DEFAULT);
    p->loop_close_rc = uv_loop_close(&p->loop);
}

static struct {
    cmdipc_registry_t *r;
    int started, done;
    unsigned char *seen;
    int count_result;
    int count_done;
} xt;

static void xt_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                  void *data);

static void xt_start(void) {
    intptr_t i = xt.started++;
    json_t *v = json_integer(i);
    ASSERT_OK(cmdipc_registry_execute(xt.r, "b.echo", v, NULL, xt_cb, (void *)i, NULL));
    json_decref(v);
}

static void xt_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                  void *data) {
    (void)req;
    (void)message;
    intptr_t i = (intptr_t)data;
    ASSERT_OK(status);
    ASSERT(json_is_integer(result));
    ASSERT_EQ(json_integer_value(result), i);
    ASSERT_EQ(xt.seen[i], 0);
    xt.seen[i] = 1;
    xt.done++;
    if (xt.started < XT_N)
        xt_start();
}

static void xt_count_cb(cmdipc_req_t *req, int status, json_t *result,
                        const char *message, void *data) {
    (void)req;
    (void)message;
    (void)data;
    ASSERT_OK(status);
    xt.count_result = (int)json_integer_value(result);
    xt.count_done = 1;
}

static int knows_b_echo(void *arg) { return tu_has_command(arg, "b.echo"); }
static int xt_all_done(void *arg) {
    (void)arg;
    return xt.done == XT_N;
}
static int seq_reached(void *arg) { return ((seq_t *)arg)->count == XT_EVENTS; }

TEST(cross_thread_executes_and_events) {
    uv_loop_t loop;
    uv_thread_t tid;
    peer_t peer;
    cmdipc_channel_t *ca;
    seq_t from_b = {0};
    chan_log_t la;
    memset(&peer, 0, sizeof(peer));
    memset(&la, 0, sizeof(la));
    memset(&xt, 0, sizeof(xt));
    xt.seen = calloc(XT_N, 1);
    ASSERT_NOT_NULL(xt.seen);

    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", NULL);
    xt.r = ra;
    cmdipc_registry_set_channel_cb(ra, chan_cb, &la);
    ASSERT_OK(cmdipc_registry_on(ra, "from.b", seq_cb, &from_b, NULL));
    ASSERT_OK(cmdipc_memory_pair("b", "a", &ca, &peer.end));
    ASSERT_OK(cmdipc_registry_attach(ra, ca));
    ASSERT_OK(uv_sem_init(&peer.ready, 0));
    ASSERT_OK(uv_thread_create(&tid, peer_thread, &peer));
    uv_sem_wait(&peer.ready);

    /* a learns b's commands from b's list response. */
    run_until(&loop, knows_b_echo, ra);
    for (int i = 0; i < XT_EVENTS; i++)
        emit_int(ra, "from.a", i);
    for (int i = 0; i < XT_WINDOW; i++)
        xt_start();
    run_until(&loop, xt_all_done, NULL);
    ASSERT_EQ(xt.started, XT_N);
    for (int i = 0; i < XT_N; i++)
        ASSERT_EQ(xt.seen[i], 1);
    run_until(&loop, seq_reached, &from_b);

    /* The events from a were all received, in order, before this call. */
    ASSERT_OK(
        cmdipc_registry_execute(ra, "b.count", NULL, NULL, xt_count_cb, NULL, NULL));
    run_until(&loop, int_is_set, &xt.count_done);
    ASSERT_EQ(xt.count_result, XT_EVENTS);
    cmdipc_stats_t s = stats_of(ra);
    ASSERT_UEQ(s.events_received, XT_EVENTS);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID] + s.dropped[CMDIPC_DROP_UNMATCHED], 0);

    /* b closes on its thread; a sees the close, then closes too. */
    ASSERT_EQ(la.closed, 0);
    uv_async_send(&peer.stop);
    run_until(&loop, closed_seen, &la);
    ASSERT_STATUS(UV_EOF, la.last_status);
    tu_close_all(&loop, ra, NULL);
    ASSERT_OK(uv_thread_join(&tid));
    uv_sem_destroy(&peer.ready);
    ASSERT_EQ(peer.closed, 1);
    ASSERT_EQ(peer.from_a, XT_EVENTS);
    ASSERT_EQ(peer.run_rc, 0);
    ASSERT_EQ(peer.loop_close_rc, 0);
    free(xt.seen);
}

/* ---------------------------------------------------------------------------
 * inproc:// */

static int channel_of(cmdipc_registry_t *r, const char *command_id, char *out,
                      size_t size) {
    cmdipc_command_info_t *info;
    size_t n;
    int found = 0;
    ASSERT_OK(cmdipc_registry_list_commands(r, &info, &n));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(info[i].id, command_id) == 0) {
            snprintf(out, size, "%s",
                     info[i].channel_id ? info[i].channel_id : "(local)");
            found = 1;
        }
    }
    cmdipc_command_info_free(info, n);
    return found;
}

TEST(inproc_listen_connect_default_names) {
    uv_loop_t loop;
    cmdipc_listener_t *l = NULL;
    cmdipc_channel_t *chb = NULL;
    tu_result_t res = {0};
    chan_log_t la;
    char buf[64];
    memset(&la, 0, sizeof(la));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", "hub");
    cmdipc_registry_t *rc = tu_registry(&loop, "c", "hub");
    cmdipc_registry_set_channel_cb(ra, chan_cb, &la);
    tu_register(&loop, ra, "hub.echo", tu_echo_fn, NULL);
    tu_register(&loop, rb, "b.echo", tu_echo_fn, NULL);

    ASSERT_OK(cmdipc_listen(ra, "inproc://hub-1", NULL, &l));
    ASSERT_NOT_NULL(l);
    ASSERT_PTR_EQ(cmdipc_listener_registry(l), ra);
    ASSERT_OK(cmdipc_listener_url(l, buf, sizeof(buf)));
    ASSERT_STR_EQ(buf, "inproc://hub-1");
    ASSERT_STATUS(UV_ENOBUFS, cmdipc_listener_url(l, buf, 14));
    ASSERT_OK(cmdipc_listener_url(l, buf, 15));

    ASSERT_OK(cmdipc_connect(rb, "inproc://hub-1", "hub", NULL, &chb));
    ASSERT_NOT_NULL(chb);
    ASSERT_PTR_EQ(cmdipc_registry_channel(rb, "hub"), chb);
    ASSERT_STR_EQ(cmdipc_channel_id(chb), "hub");
    ASSERT_OK(cmdipc_connect(rc, "inproc://hub-1", "hub", NULL, NULL));
    ASSERT_EQ(la.attached, 0); /* accepted on the listener's loop, later */
    tu_settle(&loop);
    ASSERT_EQ(la.attached, 2);
    ASSERT_STR_EQ(la.names[0], "conn-1");
    ASSERT_STR_EQ(la.names[1], "conn-2");
    ASSERT_NOT_NULL(cmdipc_registry_channel(ra, "conn-1"));
    ASSERT_NOT_NULL(cmdipc_registry_channel(ra, "conn-2"));

    /* b escalated its command through conn-1; calls work every way. */
    ASSERT(channel_of(ra, "b.echo", buf, sizeof(buf)));
    ASSERT_STR_EQ(buf, "conn-1");
    ASSERT_OK(tu_call(&loop, rc, "hub.echo", "5", &res));
    ASSERT_EQ(json_integer_value(res.result), 5);
    ASSERT_OK(tu_call(&loop, rc, "b.echo", "6", &res));
    ASSERT_EQ(json_integer_value(res.result), 6);
    ASSERT_OK(tu_call(&loop, ra, "b.echo", "7", &res));
    ASSERT_EQ(json_integer_value(res.result), 7);
    tu_result_clear(&res);
    /* The listener closes with its registry (LSan: nothing leaks). */
    tu_close_all(&loop, ra, rb, rc, NULL);
}

typedef struct {
    int calls;
    char url[64];
    char remote[16];
    cmdipc_listener_t *l;
} accept_log_t;

static int accept_cb(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *name,
                     size_t name_size, void *data) {
    accept_log_t *a = data;
    ASSERT_PTR_EQ(l, a->l);
    ASSERT_NOT_NULL(peer);
    ASSERT_NOT_NULL(name);
    ASSERT_GE(name_size, 64);
    ASSERT_STR_EQ(name, "");
    ASSERT_EQ(peer->has_creds, 0);
    snprintf(a->url, sizeof(a->url), "%s", peer->url);
    snprintf(a->remote, sizeof(a->remote), "%s", peer->remote);
    switch (++a->calls) {
        case 1:
            snprintf(name, name_size, "peer-x");
            return 0;
        case 2:
            return CMDIPC_EPEERREJECTED;
        case 3:
            return 0; /* the listener names it */
        case 4:
            snprintf(name, name_size, "peer-x"); /* taken */
            return 0;
        default:
            return 1; /* any refusal */
    }
}

TEST(inproc_accept_cb_names_and_refuses) {
    uv_loop_t loop;
    cmdipc_listen_opts_t lo;
    accept_log_t acc;
    chan_log_t la, ld[5];
    cmdipc_registry_t *dialer[5];
    static const char *const names[5] = {"d0", "d1", "d2", "d3", "d4"};
    memset(&acc, 0, sizeof(acc));
    memset(&la, 0, sizeof(la));
    memset(ld, 0, sizeof(ld));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_set_channel_cb(ra, chan_cb, &la);
    cmdipc_listen_opts_init(&lo);
    lo.accept_cb = accept_cb;
    lo.accept_data = &acc;
    ASSERT_OK(cmdipc_listen(ra, "inproc://named", &lo, &acc.l));
    for (int i = 0; i < 5; i++) {
        dialer[i] = tu_registry(&loop, names[i], NULL);
        cmdipc_registry_set_channel_cb(dialer[i], chan_cb, &ld[i]);
        ASSERT_OK(cmdipc_connect(dialer[i], "inproc://named", "hub", NULL, NULL));
        ASSERT_EQ(ld[i].attached, 0); /* delivered from the loop */
    }
    tu_settle(&loop);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(ld[i].attached, 1);
    ASSERT_EQ(acc.calls, 5);
    ASSERT_STR_EQ(acc.url, "inproc://named");
    ASSERT_STR_EQ(acc.remote, "");
    /* Accepted: 0 as "peer-x", 2 as "conn-1". */
    ASSERT_EQ(la.attached, 2);
    ASSERT_STR_EQ(la.names[0], "peer-x");
    ASSERT_STR_EQ(la.names[1], "conn-1");
    ASSERT_EQ(la.closed, 0);
    ASSERT_EQ(ld[0].closed, 0);
    ASSERT_EQ(ld[2].closed, 0);
    /* Refused (by status, by a taken name, by a positive return): the
     * dialer's channel closes. */
    for (int i = 1; i < 5; i += (i == 1 ? 2 : 1)) {
        ASSERT_EQ(ld[i].closed, 1);
        ASSERT_STATUS(UV_EOF, ld[i].last_status);
        ASSERT_NULL(cmdipc_registry_channel(dialer[i], "hub"));
    }
    ASSERT_UEQ(stats_of(ra).channels, 2);

    /* A prefix of one's own. */
    cmdipc_listen_opts_init(&lo);
    lo.id_prefix = "w-";
    ASSERT_OK(cmdipc_listen(ra, "inproc://prefixed", &lo, NULL));
    ASSERT_OK(cmdipc_connect(dialer[1], "inproc://prefixed", "hub2", NULL, NULL));
    tu_settle(&loop);
    ASSERT_EQ(la.attached, 3);
    ASSERT_STR_EQ(la.names[2], "w-1");
    tu_close_all(&loop, ra, dialer[0], dialer[1], dialer[2], dialer[3], dialer[4], NULL);
}

TEST(inproc_errors) {
    uv_loop_t loop;
    cmdipc_listener_t *l = (cmdipc_listener_t *)&l;
    cmdipc_channel_t *ch = (cmdipc_channel_t *)&ch;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "a", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);

    ASSERT_OK(cmdipc_listen(ra, "inproc://dup", NULL, NULL));
    ASSERT_STATUS(UV_EADDRINUSE, cmdipc_listen(ra, "inproc://dup", NULL, &l));
    ASSERT_NULL(l);
    ASSERT_STATUS(UV_EADDRINUSE, cmdipc_listen(rb, "inproc://dup", NULL, NULL));
    ASSERT_OK(cmdipc_listen(rb, "inproc://dup2", NULL, NULL));

    ASSERT_STATUS(UV_ECONNREFUSED, cmdipc_connect(rb, "inproc://nobody", "x", NULL, &ch));
    ASSERT_NULL(ch);
    ASSERT_NULL(cmdipc_registry_channel(rb, "x"));
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(ra, "inproc://", NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(rb, "inproc://", "x", NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(ra, "no-scheme", NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(rb, "no-scheme", "x", NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(ra, NULL, NULL, NULL));
    ASSERT_STATUS(UV_EAFNOSUPPORT, cmdipc_listen(ra, "carrier-pigeon://x", NULL, NULL));
    ASSERT_STATUS(UV_EAFNOSUPPORT,
                  cmdipc_connect(rb, "carrier-pigeon://x", "x", NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(rb, "inproc://dup", "", NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(rb, "inproc://dup", NULL, NULL, NULL));

    /* A channel id already attached in the dialer. */
    ASSERT_OK(cmdipc_connect(rb, "inproc://dup", "x", NULL, NULL));
    ASSERT_STATUS(UV_EEXIST, cmdipc_connect(rb, "inproc://dup", "x", NULL, NULL));
    tu_settle(&loop);
    ASSERT_UEQ(stats_of(ra).channels, 1);
    ASSERT_UEQ(stats_of(rb).channels, 1);

    /* A closing registry refuses both. */
    int closed = 0;
    cmdipc_registry_t *rc;
    ASSERT_OK(cmdipc_registry_new(&loop, NULL, &rc));
    cmdipc_registry_close(rc, closed_flag_cb, &closed);
    ASSERT_STATUS(CMDIPC_ECLOSED, cmdipc_listen(rc, "inproc://late", NULL, NULL));
    ASSERT_STATUS(CMDIPC_ECLOSED, cmdipc_connect(rc, "inproc://dup", "x", NULL, NULL));
    tu_run_until(&loop, &closed, 10000);
    /* The refused name was never taken. */
    ASSERT_OK(cmdipc_listen(ra, "inproc://late", NULL, NULL));
    tu_close_all(&loop, ra, rb, NULL);
}

TEST(inproc_listener_closed_with_registry) {
    uv_loop_t loop;
    chan_log_t lb;
    int closed = 0;
    cmdipc_registry_t *ra;
    cmdipc_registry_opts_t o;
    memset(&lb, 0, sizeof(lb));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_init(&o);
    o.id = "hub";
    ASSERT_OK(cmdipc_registry_new(&loop, &o, &ra)); /* closed by hand below */
    cmdipc_registry_t *rb = tu_registry(&loop, "b", "hub");
    cmdipc_registry_set_channel_cb(rb, chan_cb, &lb);
    ASSERT_OK(cmdipc_listen(ra, "inproc://gone", NULL, NULL));
    ASSERT_OK(cmdipc_connect(rb, "inproc://gone", "hub", NULL, NULL));
    tu_settle(&loop);
    ASSERT_UEQ(stats_of(ra).channels, 1);

    /* Closing the registry closes its listener and its channels. */
    cmdipc_registry_close(ra, closed_flag_cb, &closed);
    tu_run_until(&loop, &closed, 10000);
    tu_settle(&loop);
    ASSERT_EQ(lb.closed, 1);
    ASSERT_STATUS(UV_EOF, lb.last_status);
    ASSERT_STATUS(UV_ECONNREFUSED,
                  cmdipc_connect(rb, "inproc://gone", "hub", NULL, NULL));

    /* The name is free again. */
    cmdipc_registry_t *rc = tu_registry(&loop, "hub2", NULL);
    ASSERT_OK(cmdipc_listen(rc, "inproc://gone", NULL, NULL));
    ASSERT_OK(cmdipc_connect(rb, "inproc://gone", "hub", NULL, NULL));
    tu_settle(&loop);
    ASSERT_NOT_NULL(cmdipc_registry_channel(rc, "conn-1"));
    ASSERT_EQ(lb.attached, 2);
    tu_close_all(&loop, rb, rc, NULL);
}

TEST(inproc_listener_close_keeps_connections) {
    uv_loop_t loop;
    cmdipc_listener_t *l;
    tu_result_t res = {0};
    chan_log_t lb;
    memset(&lb, 0, sizeof(lb));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", "hub");
    cmdipc_registry_t *rc = tu_registry(&loop, "c", "hub");
    cmdipc_registry_set_channel_cb(rb, chan_cb, &lb);
    tu_register(&loop, ra, "hub.echo", tu_echo_fn, NULL);
    tu_register(&loop, rb, "b.echo", tu_echo_fn, NULL);
    ASSERT_OK(cmdipc_listen(ra, "inproc://keep", NULL, &l));
    ASSERT_OK(cmdipc_connect(rb, "inproc://keep", "hub", NULL, NULL));
    tu_settle(&loop);

    cmdipc_listener_close(l);
    tu_settle(&loop);
    /* New connections are refused; the accepted one stays. */
    ASSERT_STATUS(UV_ECONNREFUSED,
                  cmdipc_connect(rc, "inproc://keep", "hub", NULL, NULL));
    ASSERT_NOT_NULL(cmdipc_registry_channel(ra, "conn-1"));
    ASSERT_EQ(lb.closed, 0);
    ASSERT_OK(tu_call(&loop, rb, "hub.echo", "1", &res));
    ASSERT_EQ(json_integer_value(res.result), 1);
    ASSERT_OK(tu_call(&loop, ra, "b.echo", "2", &res));
    ASSERT_EQ(json_integer_value(res.result), 2);
    /* The name can be listened on again. */
    ASSERT_OK(cmdipc_listen(rc, "inproc://keep", NULL, NULL));
    tu_result_clear(&res);
    tu_close_all(&loop, ra, rb, rc, NULL);
}

TEST(inproc_max_connections) {
    /* cmdipc_listen_opts_t.max_connections applies to every listener: beyond
     * it a new connection is refused (the dialer sees the close). */
    uv_loop_t loop;
    cmdipc_listen_opts_t lo;
    chan_log_t lc;
    memset(&lc, 0, sizeof(lc));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_t *rb = tu_registry(&loop, "b", NULL);
    cmdipc_registry_t *rc = tu_registry(&loop, "c", NULL);
    cmdipc_registry_set_channel_cb(rc, chan_cb, &lc);
    cmdipc_listen_opts_init(&lo);
    ASSERT_EQ(lo.max_connections, 1024);
    lo.max_connections = 1;
    ASSERT_OK(cmdipc_listen(ra, "inproc://cap", &lo, NULL));
    ASSERT_OK(cmdipc_connect(rb, "inproc://cap", "hub", NULL, NULL));
    ASSERT_OK(cmdipc_connect(rc, "inproc://cap", "hub", NULL, NULL));
    tu_settle(&loop);
    ASSERT_UEQ(stats_of(ra).channels, 1);
    ASSERT_EQ(lc.closed, 1);
    tu_close_all(&loop, ra, rb, rc, NULL);
}

/* A dialer on its own thread. */
typedef struct {
    uv_loop_t loop;
    cmdipc_registry_t *r;
    int connect_rc;
    int got_result;
    int result;
    int got_done;
    int closed;
    int loop_close_rc;
} dialer_t;

static void dialer_result_cb(cmdipc_req_t *req, int status, json_t *result,
                             const char *message, void *data) {
    (void)req;
    (void)message;
    dialer_t *d = data;
    ASSERT_OK(status);
    d->result = (int)json_integer_value(result);
    d->got_result = 1;
}

static void dialer_done_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                           void *data) {
    (void)r;
    (void)event_id;
    (void)payload;
    ((dialer_t *)data)->got_done = 1;
}

static int dialer_finished(void *arg) {
    dialer_t *d = arg;
    return d->got_result && d->got_done;
}

static void dialer_thread(void *arg) {
    dialer_t *d = arg;
    cmdipc_registry_opts_t o;
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "t.echo", NULL, NULL};
    ASSERT_OK(uv_loop_init(&d->loop));
    cmdipc_registry_opts_init(&o);
    o.id = "t";
    o.router_channel = "hub";
    ASSERT_OK(cmdipc_registry_new(&d->loop, &o, &d->r));
    ASSERT_OK(cmdipc_registry_register(d->r, &def, tu_echo_fn, NULL, NULL, NULL));
    ASSERT_OK(cmdipc_registry_on(d->r, "done", dialer_done_cb, d, NULL));
    d->connect_rc = cmdipc_connect(d->r, "inproc://xt", "hub", NULL, NULL);
    ASSERT_OK(d->connect_rc);
    json_t *v = json_integer(99);
    ASSERT_OK(
        cmdipc_registry_execute(d->r, "hub.echo", v, NULL, dialer_result_cb, d, NULL));
    json_decref(v);
    run_until(&d->loop, dialer_finished, d);
    cmdipc_registry_close(d->r, closed_flag_cb, &d->closed);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    d->loop_close_rc = uv_loop_close(&d->loop);
}

static int knows_t_echo(void *arg) { return tu_has_command(arg, "t.echo"); }

TEST(inproc_connect_from_another_thread) {
    uv_loop_t loop;
    uv_thread_t tid;
    dialer_t d;
    tu_result_t res = {0};
    chan_log_t la;
    memset(&d, 0, sizeof(d));
    memset(&la, 0, sizeof(la));
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *ra = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_set_channel_cb(ra, chan_cb, &la);
    tu_register(&loop, ra, "hub.echo", tu_echo_fn, NULL);
    ASSERT_OK(cmdipc_listen(ra, "inproc://xt", NULL, NULL));
    ASSERT_OK(uv_thread_create(&tid, dialer_thread, &d));

    /* The thread's registry escalates t.echo through the accepted channel. */
    run_until(&loop, knows_t_echo, ra);
    ASSERT_EQ(la.attached, 1);
    ASSERT_STR_EQ(la.names[0], "conn-1");
    json_t *v = json_integer(5);
    ASSERT_OK(tu_exec(ra, "t.echo", v, &res));
    json_decref(v);
    run_until(&loop, int_is_set, &res.done);
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), 5);
    /* Let the thread finish: it closes its registry, a sees the close. */
    ASSERT_OK(cmdipc_registry_emit(ra, "done", NULL));
    run_until(&loop, closed_seen, &la);
    ASSERT_STATUS(UV_EOF, la.last_status);
    ASSERT_STR_EQ(la.closed_id, "conn-1");
    ASSERT_OK(uv_thread_join(&tid));
    ASSERT_EQ(d.result, 99);
    ASSERT_EQ(d.closed, 1);
    ASSERT_EQ(d.loop_close_rc, 0);
    tu_result_clear(&res);
    tu_close_all(&loop, ra, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(pair_both_directions_one_loop)
TEST_ENTRY(memory_pair_arguments)
TEST_ENTRY(queued_before_attach_delivered_after)
TEST_ENTRY(queued_messages_drain_after_peer_close)
TEST_ENTRY(close_stops_recv_on_both_sides)
TEST_ENTRY(send_after_close_is_error)
TEST_ENTRY(unattached_end_freed_peer_sees_close)
TEST_ENTRY(full_queue_overload_then_slow_consumer)
TEST_ENTRY(default_queue_holds_10000)
TEST_ENTRY(outbound_cap_1024_over_memory)
TEST_ENTRY(paused_end_stops_draining_and_resumes)
TEST_ENTRY_TIMEOUT(cross_thread_executes_and_events, 60000)
TEST_ENTRY(inproc_listen_connect_default_names)
TEST_ENTRY(inproc_accept_cb_names_and_refuses)
TEST_ENTRY(inproc_errors)
TEST_ENTRY(inproc_listener_closed_with_registry)
TEST_ENTRY(inproc_listener_close_keeps_connections)
TEST_ENTRY(inproc_max_connections)
TEST_ENTRY(inproc_connect_from_another_thread)
TEST_LIST_END
