/* Stream transports under load and at their edges: SECURITY.md section c,
 * tests 15-18 (slow consumers, in-flight and outbound caps, connection cap,
 * EMFILE), 20-21 (timeouts, reconnect backoff), 22 (plain TCP keepalive) and
 * 23 (Unix sockets: permissions, peer credentials, path length, stale
 * sockets), plus listener and dialer lifecycle. Each test name starts with
 * its SECURITY number. The peer is usually a plain POSIX socket in this
 * process (rawpeer.h), driven between turns of the registry's loop. Times and
 * sizes are scaled down where SECURITY.md's timing note allows; each place
 * says so. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawpeer.h"
#include "schema_check.h"

static uv_loop_t loop;

typedef rp_hub_t hub_t;

static void hub_new(hub_t *h, const char *tag, const cmdipc_listen_opts_t *lo) {
    rp_hub_new(&loop, h, tag, lo);
}
static void peer_open(hub_t *h, rp_t *p) { rp_peer_open(&loop, h, p); }
static void peer_ping(rp_t *p, int n) { rp_peer_ping(&loop, p, n); }

/* ---------------------------------------------------------------------------
 * 15. Slow consumers. A peer that does not read while the hub broadcasts
 * 1 KiB events; a well-behaved client (a registry dialing the hub on the
 * same loop) keeps being served. */

static json_t *kib_payload(void) {
    char s[1025];
    memset(s, 'e', 1024);
    s[1024] = '\0';
    return json_pack("{s:s}", "blob", s);
}

typedef struct {
    hub_t h;
    rp_t slow;
    cmdipc_registry_t *good;
    cmdipc_channel_t *good_ch;
    json_t *payload;
} slow_t;

static void slow_setup(slow_t *t, const cmdipc_listen_opts_t *lo) {
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&t->h, "c15", lo);
    t->good = rp_registry(&loop, "good", "hub");
    ASSERT_OK(cmdipc_connect(t->good, t->h.url, "hub", NULL, &t->good_ch));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(t->good_ch), 10000);
    RP_PUMP_UNTIL(&loop, -1, rp_stats(t->h.r).channels == 1, 10000);
    peer_open(&t->h, &t->slow); /* conn-2 */
    t->payload = kib_payload();
}

/* The good client calls echo through the hub and gets its answer. */
static void good_call(slow_t *t, int n) {
    tu_result_t res = {0};
    json_t *req = json_integer(n);
    ASSERT_OK(tu_exec(t->good, "echo", req, &res));
    json_decref(req);
    RP_PUMP_UNTIL(&loop, -1, res.done, 10000);
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), n);
    tu_result_clear(&res);
}

static size_t queued_on(cmdipc_registry_t *r, const char *id) {
    cmdipc_channel_t *ch = cmdipc_registry_channel(r, id);
    cmdipc__conn_t *c = ch ? rp_conn(ch) : NULL;
    if (c == NULL)
        return 0;
    return c->pending.len + (c->writing ? c->inflight.len : 0);
}

static void slow_check_cut(slow_t *t, const char *why) {
    ASSERT_EQ(rp_chev.closed, 1);
    ASSERT_STR_EQ(rp_chev.last_closed_id, "conn-2");
    ASSERT_STATUS(CMDIPC_ESLOWCONSUMER, rp_chev.last_closed_status);
    if (why != NULL)
        ASSERT_EQ(rp_log_count(why), 1);
    rp_wait_closed(&loop, &t->slow, 10000);
    ASSERT(cmdipc_channel_is_up(t->good_ch));
    good_call(t, 99);
    /* Counted as a slow consumer, whichever limit cut it. */
    ASSERT_UEQ(rp_stats(t->h.r).slow_consumers, 1);
}

static void slow_teardown(slow_t *t) {
    rp_close(&t->slow);
    json_decref(t->payload);
    tu_close_all(&loop, t->h.r, t->good, NULL);
}

TEST(c15_slow_consumer_cut_at_the_hard_queue_cap) {
    /* SECURITY c.15: the 8 MiB hard cap scaled down to 256 KiB (soft limit
     * and stall timer left at their defaults: 2 MiB, 10 s, out of reach). */
    slow_t t;
    cmdipc_listen_opts_t lo;
    const size_t cap = 256 * 1024;
    cmdipc_listen_opts_init(&lo);
    lo.max_send_queue = cap;
    slow_setup(&t, &lo);
    good_call(&t, 1);
    size_t max_queued = 0;
    int emitted = 0;
    while (rp_chev.closed == 0) {
        for (int i = 0; i < 16; i++, emitted++) {
            ASSERT_OK(cmdipc_registry_emit(t.h.r, "tick", t.payload));
            size_t q = queued_on(t.h.r, "conn-2");
            if (q > max_queued)
                max_queued = q;
        }
        rp_pump(&loop, -1, 1);
        if (emitted == 64)
            good_call(&t, 2); /* served while the other one lags */
        ASSERT_LT(emitted, 100000);
    }
    ASSERT_GE(max_queued, cap - 2048);
    ASSERT_LE(max_queued, cap + 2048);
    ASSERT_EQ(rp_log_count("write stalled"), 0);
    ASSERT_EQ(rp_log_count("soft limit"), 0);
    slow_check_cut(&t, "conn-2 closed: slow consumer");
    slow_teardown(&t);
}

TEST(c15_slow_consumer_cut_after_the_soft_limit_held_too_long) {
    /* SECURITY c.15: 2 MiB held for 10 s, scaled to 32 KiB held for 1 s (wide: a loaded
     * machine may not run the reader for a few hundred ms).
     * The peer reads, slower than the hub sends, so writes progress and the
     * stall timer does not act. */
    slow_t t;
    cmdipc_listen_opts_t lo;
    cmdipc_listen_opts_init(&lo);
    lo.max_send_queue = 64u * 1024 * 1024;
    lo.soft_send_queue = 32 * 1024;
    lo.write_stall_ms = 1000;
    slow_setup(&t, &lo);
    good_call(&t, 1);
    uint64_t t0 = uv_hrtime();
    char sink[1024];
    while (rp_chev.closed == 0) {
        ASSERT_OK(cmdipc_registry_emit(t.h.r, "tick", t.payload));
        ASSERT_OK(cmdipc_registry_emit(t.h.r, "tick", t.payload));
        ssize_t n = read(t.slow.fd, sink, sizeof(sink));
        (void)n;
        rp_pump(&loop, -1, 1);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
    }
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    ASSERT_GE(ms, 1000);
    ASSERT_EQ(rp_log_count("write stalled"), 0);
    slow_check_cut(&t, "send queue above the soft limit for too long");
    slow_teardown(&t);
}

TEST(c15_slow_consumer_cut_by_a_write_stall) {
    /* SECURITY c.15: a 10 s write stall, scaled to 150 ms. The queue stays
     * far below both limits. */
    slow_t t;
    cmdipc_listen_opts_t lo;
    cmdipc_listen_opts_init(&lo);
    lo.max_send_queue = 64u * 1024 * 1024;
    lo.soft_send_queue = 64u * 1024 * 1024;
    lo.write_stall_ms = 150;
    slow_setup(&t, &lo);
    good_call(&t, 1);
    uint64_t t0 = uv_hrtime();
    /* Fill the socket until a write is stuck in libuv, then stop sending. */
    for (;;) {
        cmdipc_channel_t *ch = cmdipc_registry_channel(t.h.r, "conn-2");
        ASSERT_NOT_NULL(ch);
        cmdipc__conn_t *c = rp_conn(ch);
        if (c->writing && uv_stream_get_write_queue_size(c->ws) > 0)
            break;
        for (int i = 0; i < 16; i++)
            ASSERT_OK(cmdipc_registry_emit(t.h.r, "tick", t.payload));
        rp_pump(&loop, -1, 1);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 5000);
    }
    ASSERT_EQ(rp_chev.closed, 0);
    good_call(&t, 2);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 1, 10000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    ASSERT_GE(ms, 150);
    ASSERT_EQ(rp_log_count("soft limit"), 0);
    slow_check_cut(&t, "write stalled");
    slow_teardown(&t);
}

/* ---------------------------------------------------------------------------
 * 16. Inbound in-flight cap: 128, then the hub stops reading; resumes at 64. */

typedef struct {
    hub_t h;
    rp_t p;
    cmdipc__buf_t out; /* every request, sent as the socket takes it */
    size_t sent;
    unsigned char *seen; /* answers by request number */
    int answers;
    uint64_t max_in_flight;
} c16_t;

/* One turn: sends what the socket takes, runs the hub, reads its answers. */
static void c16_turn(c16_t *t) {
    if (t->sent < t->out.len) {
        ssize_t n =
            send(t->p.fd, t->out.data + t->sent, t->out.len - t->sent, MSG_NOSIGNAL);
        if (n > 0)
            t->sent += (size_t)n;
    }
    rp_pump(&loop, t->p.fd, 1);
    cmdipc_stats_t s = rp_stats(t->h.r);
    if (s.calls_in_flight > t->max_in_flight)
        t->max_in_flight = s.calls_in_flight;
    ASSERT_UEQ(s.calls_in_flight, rp_n_held);
    rp_read(&t->p);
    char *l;
    while ((l = rp_line(&t->p, NULL)) != NULL) {
        json_t *v = rp_check_line(l);
        ASSERT(json_is_true(json_object_get(json_object_get(v, "response"), "ok")));
        int k = atoi(rp_str(v, "thid") + 1);
        ASSERT_EQ(t->seen[k], 0); /* exactly once */
        t->seen[k] = 1;
        t->answers++;
        json_decref(v);
        free(l);
    }
}

TEST(c16_inflight_cap_stops_reading_until_half) {
    /* SECURITY c.16 with 10,000 requests (scaled from 100,000). */
    c16_t t;
    const int total = 10000;
    memset(&t, 0, sizeof(t));
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&t.h, "c16", NULL);
    peer_open(&t.h, &t.p);
    cmdipc__buf_init(&t.out);
    for (int i = 0; i < total; i++) {
        char line[128];
        snprintf(line, sizeof(line),
                 "{\"type\":\"execute.command.request\",\"id\":\"h%05d\",\"commandId\":"
                 "\"hold\"}\n",
                 i);
        ASSERT_OK(cmdipc__buf_puts(&t.out, line));
    }
    t.seen = calloc((size_t)total, 1);
    ASSERT_NOT_NULL(t.seen);

    /* The first 128 arrive, then reading stops. */
    uint64_t t0 = uv_hrtime();
    while (rp_n_held < 128) {
        c16_turn(&t);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
    }
    rp_run_for(&loop, -1, 50);
    c16_turn(&t);
    ASSERT_EQ(rp_n_held, 128);
    cmdipc_stats_t s = rp_stats(t.h.r);
    ASSERT_UEQ(s.pauses, 1);
    ASSERT_UEQ(s.handled, 128);
    ASSERT_LT(t.sent, t.out.len); /* the peer is blocked: the hub stopped reading */
    cmdipc__conn_t *c = rp_conn(cmdipc_registry_channel(t.h.r, "conn-1"));
    ASSERT_EQ(c->paused, 1);
    ASSERT_EQ(c->reading, 0);
    ASSERT_LE(c->rcap, 1024 * 1024 + 64 * 1024); /* memory stays bounded */

    /* 65 in flight: still paused. */
    rp_answer_held(63);
    rp_run_for(&loop, -1, 50);
    c16_turn(&t);
    ASSERT_EQ(rp_n_held, 65);
    ASSERT_UEQ(rp_stats(t.h.r).handled, 128);
    /* 64: reading resumes. */
    rp_answer_held(1);
    t0 = uv_hrtime();
    while (rp_stats(t.h.r).handled == 128) {
        c16_turn(&t);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
    }

    /* The rest: answered whenever the hub is stuck at the cap. */
    t0 = uv_hrtime();
    while (t.answers < total) {
        c16_turn(&t);
        if (rp_n_held == 128 || (t.sent == t.out.len && rp_held_total == (uint64_t)total))
            rp_answer_held(rp_n_held);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 30000);
    }
    for (int i = 0; i < total; i++)
        ASSERT_EQ(t.seen[i], 1);
    s = rp_stats(t.h.r);
    ASSERT_UEQ(s.handled, total);
    ASSERT_UEQ(t.max_in_flight, 128);
    ASSERT_GE(s.pauses, 2);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID], 0);
    free(t.seen);
    cmdipc__buf_free(&t.out);
    rp_close(&t.p);
    tu_close_all(&loop, t.h.r, NULL);
}

/* ---------------------------------------------------------------------------
 * 17. Outbound cap: the 1,025th concurrent call on one connection. */

static int c17_done[1100];
static int c17_status[1100];
static void c17_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                   void *data) {
    (void)req, (void)result, (void)message;
    int i = (int)(intptr_t)data;
    c17_done[i]++;
    c17_status[i] = status;
}

TEST(c17_outbound_cap_overloads_the_1025th_call) {
    hub_t h;
    cmdipc_channel_t *ch;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c17", NULL);
    cmdipc_registry_t *cli = rp_registry(&loop, "cli", "hub");
    ASSERT_OK(cmdipc_connect(cli, h.url, "hub", NULL, &ch));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(ch), 10000);
    tu_settle(&loop);
    for (int i = 0; i < 1024; i++)
        ASSERT_OK(cmdipc_registry_execute(cli, "hold", NULL, NULL, c17_cb,
                                          (void *)(intptr_t)i, NULL));
    uint64_t overloads0 = rp_stats(cli).overloads;
    ASSERT_STATUS(CMDIPC_EOVERLOAD,
                  cmdipc_registry_execute(cli, "hold", NULL, NULL, c17_cb,
                                          (void *)(intptr_t)1024, NULL));
    ASSERT_UEQ(rp_stats(cli).overloads, overloads0 + 1);
    ASSERT_UEQ(rp_stats(cli).pending_calls, 1024);
    /* The hub is paused at its in-flight cap meanwhile; once one call is
     * answered there is room for one more. */
    RP_PUMP_UNTIL(&loop, -1, rp_n_held == 128, 10000);
    rp_answer_held(1);
    int answered = -1;
    uint64_t t0 = uv_hrtime();
    while (answered < 0) {
        rp_pump(&loop, -1, 5);
        for (int i = 0; i < 1024; i++)
            if (c17_done[i])
                answered = i;
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
    }
    ASSERT_UEQ(rp_stats(cli).pending_calls, 1023);
    ASSERT_OK(c17_status[answered]);
    ASSERT_OK(cmdipc_registry_execute(cli, "hold", NULL, NULL, c17_cb,
                                      (void *)(intptr_t)1024, NULL));
    ASSERT_STATUS(CMDIPC_EOVERLOAD,
                  cmdipc_registry_execute(cli, "hold", NULL, NULL, c17_cb,
                                          (void *)(intptr_t)1025, NULL));
    ASSERT_EQ(c17_done[1025], 0);
    /* Closing completes every pending call exactly once. */
    tu_close_all(&loop, h.r, cli, NULL);
    for (int i = 0; i <= 1024; i++) {
        ASSERT_EQ(c17_done[i], 1);
        if (i != answered)
            ASSERT_STATUS(CMDIPC_ECANCELED, c17_status[i]);
    }
    rp_answer_held(rp_n_held); /* dropped: their registry is gone */
}

/* ---------------------------------------------------------------------------
 * 18. Connection cap, fd hygiene, EMFILE. */

TEST(c18_connection_cap_and_fd_count) {
    /* SECURITY c.18 scaled: max_connections 16 and 100 attempts (from 1,024
     * and 10,000). */
    hub_t h;
    cmdipc_listen_opts_t lo;
    enum { N = 100, MAXC = 16 };
    static rp_t peers[N + 1];
    cmdipc_listen_opts_init(&lo);
    ASSERT_EQ(lo.max_connections, 1024); /* the default */
    lo.max_connections = MAXC;
    int fd0 = rp_fd_count();
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c18", &lo);
    tu_settle(&loop);
    int fd1 = rp_fd_count();
    for (int i = 0; i < N; i++)
        ASSERT_OK(rp_connect(&peers[i], h.path));
    /* Every attempt ends up either a channel (which gets its list request)
     * or closed. */
    uint64_t max_channels = 0;
    int decided = 0, accepted = 0, refused = 0;
    uint64_t t0 = uv_hrtime();
    while (decided < N) {
        rp_pump(&loop, -1, 1);
        cmdipc_stats_t s = rp_stats(h.r);
        if (s.channels > max_channels)
            max_channels = s.channels;
        decided = accepted = refused = 0;
        for (int i = 0; i < N; i++) {
            rp_read(&peers[i]);
            if (peers[i].len > 0 || peers[i].total > 0)
                accepted++;
            else if (rp_closed(&peers[i]))
                refused++;
        }
        decided = accepted + refused;
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
    }
    ASSERT_EQ(accepted, MAXC);
    ASSERT_EQ(refused, N - MAXC);
    ASSERT_UEQ(max_channels, MAXC);
    ASSERT_UEQ(rp_stats(h.r).channels_attached, MAXC);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.attached == MAXC,
                  10000); /* delivered from the loop */
    ASSERT_GE(rp_log_count("refused: too many connections"), 1);
    /* A slot freed is a slot taken again. */
    int first = -1;
    for (int i = 0; i < N && first < 0; i++)
        if (peers[i].total > 0)
            first = i;
    rp_close(&peers[first]);
    RP_PUMP_UNTIL(&loop, -1, rp_stats(h.r).channels == MAXC - 1, 10000);
    ASSERT_OK(rp_connect(&peers[N], h.path));
    RP_PUMP_UNTIL(&loop, peers[N].fd, (rp_read(&peers[N]), peers[N].total > 0), 10000);
    ASSERT_UEQ(rp_stats(h.r).channels, MAXC);
    /* Everybody leaves: the fd count goes back. */
    for (int i = 0; i <= N; i++)
        rp_close(&peers[i]);
    RP_PUMP_UNTIL(&loop, -1, rp_stats(h.r).channels == 0, 10000);
    tu_settle(&loop);
    int fd2 = rp_fd_count();
    ASSERT_LE(abs(fd2 - fd1), 2);
    tu_close_all(&loop, h.r, NULL);
    int fd3 = rp_fd_count();
    ASSERT_LE(abs(fd3 - fd0), 2);
}

static unsigned checks;
static void count_check_cb(uv_check_t *c) {
    (void)c;
    checks++;
}
static void set_flag_cb(uv_timer_t *t) { *(int *)t->data = 1; }

static void emfile_scenario(void) {
    hub_t h;
    rp_t a, pending[3], late;
    struct rlimit rl;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c18e", NULL);
    peer_open(&h, &a);

    /* Leave this process no free descriptor, with connections pending. */
    int highest = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            highest = fd;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
    struct rlimit low = rl;
    low.rlim_cur = (rlim_t)highest + 32;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &low));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(rp_connect(&pending[i], h.path));
    static int fillers[4096];
    int n_fill = 0;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(devnull, 0);
    for (;;) {
        int fd = dup(devnull);
        if (fd < 0) {
            ASSERT_EQ(errno, EMFILE);
            break;
        }
        ASSERT_LT(n_fill, 4096);
        fillers[n_fill++] = fd;
    }

    /* 200 ms of loop: the accept loop must not spin. */
    uv_check_t check;
    uv_timer_t timer;
    int done = 0;
    ASSERT_OK(uv_check_init(&loop, &check));
    ASSERT_OK(uv_check_start(&check, count_check_cb));
    ASSERT_OK(uv_timer_init(&loop, &timer));
    timer.data = &done;
    ASSERT_OK(uv_timer_start(&timer, set_flag_cb, 200, 0));
    checks = 0;
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    fprintf(stderr, "EMFILE: %u loop iterations in 200 ms\n", checks);
    ASSERT_LT(checks, 1000);
    ASSERT_UEQ(rp_stats(h.r).channels, 1);
    /* libuv sheds the connections it cannot take (its EMFILE trick): they
     * are closed, not left to spin on. */
    for (int i = 0; i < 3; i++) {
        rp_read(&pending[i]);
        ASSERT_EQ(pending[i].total, 0);
    }

    /* Descriptors free again: accepting resumes, the old channel works. */
    for (int i = 0; i < n_fill; i++)
        close(fillers[i]);
    close(devnull);
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
    peer_open(&h, &late);
    ASSERT_UEQ(rp_stats(h.r).channels, 2);
    peer_ping(&a, 1);
    peer_ping(&late, 2);
    uv_close((uv_handle_t *)&check, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    rp_close(&a);
    rp_close(&late);
    for (int i = 0; i < 3; i++)
        rp_close(&pending[i]);
    tu_close_all(&loop, h.r, NULL);
}

TEST(c18_emfile_does_not_make_the_accept_loop_spin) {
    /* In a forked child: it lowers its own RLIMIT_NOFILE. */
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        emfile_scenario();
        exit(0);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st))
        fprintf(stderr, "emfile child: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
}

TEST(listener_close_keeps_accepted_channels) {
    hub_t h;
    rp_t a, b;
    struct stat st;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "lc", NULL);
    peer_open(&h, &a);
    cmdipc_listener_close(h.l);
    RP_PUMP_UNTIL(&loop, -1, lstat(h.path, &st) != 0, 10000); /* its socket file goes */
    ASSERT_NE(rp_connect(&b, h.path), 0);
    peer_ping(&a, 1); /* the accepted channel stays */
    ASSERT_UEQ(rp_stats(h.r).channels, 1);
    rp_close(&a);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 1, 10000);
    ASSERT_UEQ(rp_stats(h.r).channels, 0);
    ASSERT_STATUS(UV_EOF, rp_chev.last_closed_status);
    tu_close_all(&loop, h.r, NULL);
}

static int closed_cb_runs;
static void count_close_cb(cmdipc_registry_t *r, void *data) {
    (void)r, (void)data;
    closed_cb_runs++;
}

TEST(registry_close_with_a_peer_that_does_not_read_completes) {
    /* The graceful close flushes what is queued, but a peer that never
     * reads cannot hold the registry's close beyond the write-stall limit
     * (scaled: 150 ms). */
    hub_t h;
    rp_t p;
    cmdipc_listen_opts_t lo;
    cmdipc_listen_opts_init(&lo);
    lo.write_stall_ms = 150;
    lo.soft_send_queue = 64u * 1024 * 1024;
    lo.max_send_queue = 64u * 1024 * 1024;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "rc", &lo);
    peer_open(&h, &p);
    json_t *pl = kib_payload();
    cmdipc__conn_t *c = rp_conn(cmdipc_registry_channel(h.r, "conn-1"));
    uint64_t t0 = uv_hrtime();
    while (!(c->writing && uv_stream_get_write_queue_size(c->ws) > 0)) {
        for (int i = 0; i < 16; i++)
            ASSERT_OK(cmdipc_registry_emit(h.r, "tick", pl));
        rp_pump(&loop, -1, 1);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 5000);
    }
    json_decref(pl);
    tu_forget(h.r);
    closed_cb_runs = 0;
    t0 = uv_hrtime();
    cmdipc_registry_close(h.r, count_close_cb, NULL);
    RP_PUMP_UNTIL(&loop, -1, closed_cb_runs == 1, 10000);
    fprintf(stderr, "closed in %llu ms\n",
            (unsigned long long)((uv_hrtime() - t0) / 1000000));
    rp_close(&p);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

TEST(registry_close_stops_a_dialer_in_backoff) {
    char path[HARNESS_PATH_MAX], url[160];
    cmdipc_channel_t *ch;
    ASSERT_OK(uv_loop_init(&loop));
    memset(&rp_chev, 0, sizeof(rp_chev));
    rp_unix_url(url, sizeof(url), path, "rcb");
    cmdipc_registry_t *cli = rp_registry(&loop, "cli", "hub");
    cmdipc_registry_set_channel_cb(cli, rp_channel_cb, NULL);
    ASSERT_OK(
        cmdipc_connect(cli, url, "hub", NULL, &ch)); /* default: 100 ms first delay */
    RP_PUMP_UNTIL(&loop, -1, rp_log_count("reconnecting in") >= 1, 10000);
    uint64_t t0 = uv_hrtime();
    tu_close_all(&loop, cli, NULL); /* does not wait for the retry timer */
    ASSERT_LT((uv_hrtime() - t0) / 1000000, 1000);
    ASSERT_EQ(rp_chev.closed, 1);
    ASSERT_EQ(rp_chev.up, 0);
}

/* ---------------------------------------------------------------------------
 * 20. Call timeout over a socket, with an injected clock. */

TEST(c20_timeout_exactly_at_request_ttl_then_late_reply_dropped) {
    hub_t h;
    cmdipc_channel_t *ch;
    tu_clock_t clk = {1000000};
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c20", NULL);
    cmdipc_registry_t *cli = rp_registry(&loop, "cli", "hub");
    cmdipc__registry_set_clock(cli, tu_clock_now, &clk);
    ASSERT_OK(cmdipc_connect(cli, h.url, "hub", NULL, &ch));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(ch), 10000);
    tu_settle(&loop);
    uint64_t start = clk.now;
    ASSERT_OK(tu_exec(cli, "hold", NULL, &res));
    RP_PUMP_UNTIL(&loop, -1, rp_n_held == 1, 10000);
    ASSERT_UEQ(cmdipc__registry_next_deadline(cli), start + 30000);
    /* SECURITY c.20: at request_ttl_ms (30,000 ms) exactly, by the
     * injected clock: nothing 1 ms before. */
    clk.now = start + 29999;
    cmdipc__registry_run_deadlines(cli);
    tu_settle(&loop);
    ASSERT_EQ(res.calls, 0);
    ASSERT_UEQ(cmdipc_registry_deferred_count(cli), 0);
    clk.now = start + 30000;
    cmdipc__registry_run_deadlines(cli);
    RP_PUMP_UNTIL(&loop, -1, res.done, 10000);
    ASSERT_EQ(res.calls, 1);
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, res.status);
    ASSERT_UEQ(rp_stats(cli).timeouts, 1);
    ASSERT_UEQ(rp_stats(cli).pending_calls, 0);
    /* The handler answers late: the answer crosses the socket and is
     * dropped as unmatched. */
    rp_answer_held(1);
    RP_PUMP_UNTIL(&loop, -1, rp_stats(cli).dropped[CMDIPC_DROP_UNMATCHED] == 1, 10000);
    ASSERT_EQ(res.calls, 1);
    ASSERT(cmdipc_channel_is_up(ch));
    tu_result_clear(&res);
    tu_close_all(&loop, h.r, cli, NULL);
}

/* ---------------------------------------------------------------------------
 * 21. Reconnect backoff. */

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double unit(uint64_t *s) {
    return (double)(xorshift(s) >> 11) / 9007199254740992.0;
}

TEST(c21_backoff_schedule) {
    /* 100 ms doubling to a 30 s cap, +-20 % jitter. */
    uint64_t nominal = 100;
    for (unsigned a = 0; a < 40; a++) {
        ASSERT_UEQ(cmdipc__backoff_ms(a, 100, 30000, 20, 0.5), nominal);
        ASSERT_UEQ(cmdipc__backoff_ms(a, 100, 30000, 20, 0.0), nominal * 8 / 10);
        uint64_t hi = cmdipc__backoff_ms(a, 100, 30000, 20, 0.999999);
        ASSERT_LE(hi, nominal * 12 / 10);
        ASSERT_GE(hi, nominal * 12 / 10 - 1);
        nominal = nominal * 2 > 30000 ? 30000 : nominal * 2;
    }
    ASSERT_UEQ(cmdipc__backoff_ms(1000000, 100, 30000, 20, 0.5), 30000); /* no overflow */
    ASSERT_UEQ(cmdipc__backoff_ms(0, 0, 30000, 0, 0.5), 1);

    /* A server down for 60 s: at most 11 attempts, however the jitter
     * falls (the first attempt at t = 0). */
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int run = 0; run < 1000; run++) {
        uint64_t t = 0;
        int attempts = 0;
        for (unsigned a = 0; t <= 60000; a++) {
            attempts++;
            double u = run == 0 ? 0.0 : unit(&seed); /* run 0: the shortest delays */
            t += cmdipc__backoff_ms(a, 100, 30000, 20, u);
        }
        ASSERT_LE(attempts, 11);
        ASSERT_GE(attempts, 9);
    }

    /* 100 clients: their 9th attempts are spread over >= 5 s. */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int c = 0; c < 100; c++) {
        uint64_t t = 0;
        for (unsigned a = 0; a < 8; a++)
            t += cmdipc__backoff_ms(a, 100, 30000, 20, unit(&seed));
        if (t < lo)
            lo = t;
        if (t > hi)
            hi = t;
    }
    fprintf(stderr, "9th attempts between %llu and %llu ms\n", (unsigned long long)lo,
            (unsigned long long)hi);
    ASSERT_GE(hi - lo, 5000);
}

/* The delays the dialer logs: "reconnecting in N ms". */
static uint64_t delays[256];
static int n_delays;
static void delay_log_hook(cmdipc_registry_t *r, const char *message) {
    (void)r;
    const char *p = strstr(message, "reconnecting in ");
    if (p != NULL && n_delays < 256)
        delays[n_delays++] = strtoull(p + 16, NULL, 10);
}

TEST(c21_dialer_backs_off_reconnects_never_resends_and_stops_on_close) {
    char path[HARNESS_PATH_MAX], url[160];
    cmdipc_connect_opts_t co;
    cmdipc_channel_t *ch;
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    memset(&rp_chev, 0, sizeof(rp_chev));
    rp_unix_url(url, sizeof(url), path, "c21");
    cmdipc_registry_t *cli = rp_registry(&loop, "cli", "hub");
    cmdipc_registry_set_channel_cb(cli, rp_channel_cb, NULL);
    cmdipc_connect_opts_init(&co);
    co.reconnect_min_ms = 5; /* scaled from 100 ms and 30 s */
    co.reconnect_max_ms = 40;
    n_delays = 0;
    rp_log_hook = delay_log_hook;
    ASSERT_OK(cmdipc_connect(cli, url, "hub", &co, &ch));
    ASSERT_EQ(cmdipc_channel_is_up(ch), 0);
    /* Nobody listens: attempts, with growing delays. */
    RP_PUMP_UNTIL(&loop, -1, n_delays >= 6, 10000);
    ASSERT_EQ(rp_chev.up, 0);
    for (int i = 0; i < 6; i++) {
        uint64_t nominal = 5u << i;
        if (nominal > 40)
            nominal = 40;
        ASSERT_GE(delays[i], nominal * 8 / 10);
        ASSERT_LE(delays[i], nominal * 12 / 10);
    }
    /* The listener appears: the channel comes up. */
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);
    tu_register(&loop, hub, "hold", rp_hold_fn, NULL);
    ASSERT_OK(cmdipc_listen(hub, url, NULL, NULL));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(ch), 10000);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.up == 1, 10000); /* delivered from the loop */

    /* A call pending when the link drops fails once and is never re-sent. */
    ASSERT_OK(tu_exec(cli, "hold", NULL, &res));
    RP_PUMP_UNTIL(&loop, -1, rp_n_held == 1, 10000);
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(hub, "conn-1")));
    RP_PUMP_UNTIL(&loop, -1, res.done, 10000);
    ASSERT_STATUS(CMDIPC_EDISCONNECTED, res.status);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.up == 2, 10000); /* reconnected */
    ASSERT_EQ(rp_chev.down, 1);
    ASSERT_NOT_NULL(cmdipc_registry_channel(hub, "conn-2"));
    rp_run_for(&loop, -1, 100);
    ASSERT_EQ(res.calls, 1);
    ASSERT_UEQ(rp_held_total, 1); /* the hub saw it once */
    ASSERT_UEQ(rp_stats(hub).handled, 1);
    rp_answer_held(1); /* its caller is gone: dropped */

    /* Server gone again; closing the channel stops the dialer for good. */
    cmdipc_listener_t *l2;
    tu_forget(hub);
    cmdipc_registry_close(hub, NULL, NULL);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.down == 2, 10000);
    int before = n_delays;
    RP_PUMP_UNTIL(&loop, -1, n_delays >= before + 2, 10000);
    ASSERT_OK(cmdipc_channel_close(ch));
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 1, 10000);
    ASSERT_STATUS(0, rp_chev.last_closed_status);
    int after = n_delays;
    cmdipc_registry_t *hub2 = rp_registry(&loop, "hub2", NULL);
    memset(&rp_chev, 0, sizeof(rp_chev));
    cmdipc_registry_set_channel_cb(hub2, rp_channel_cb, NULL);
    ASSERT_OK(cmdipc_listen(hub2, url, NULL, &l2));
    rp_run_for(&loop, -1, 200); /* 5x the longest delay */
    ASSERT_EQ(n_delays, after);
    ASSERT_EQ(rp_chev.attached, 0); /* nobody dialed */
    ASSERT_UEQ(rp_stats(hub2).channels_attached, 0);
    rp_log_hook = NULL;
    tu_result_clear(&res);
    tu_close_all(&loop, cli, hub2, NULL);
}

/* ---------------------------------------------------------------------------
 * 22 (plain TCP part): keepalive and nodelay on both ends. */

static int sockopt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof(v);
    ASSERT_OK(getsockopt(fd, level, name, &v, &len));
    return v;
}

TEST(c22_tcp_keepalive_on_accepted_and_dialed_sockets) {
    cmdipc_listener_t *l;
    cmdipc_channel_t *ch;
    char url[128];
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);
    cmdipc_registry_t *cli = rp_registry(&loop, "cli", "hub");
    ASSERT_OK(cmdipc_listen(hub, "tcp://127.0.0.1:0", NULL, &l));
    ASSERT_OK(cmdipc_listener_url(l, url, sizeof(url)));
    ASSERT_OK(cmdipc_connect(cli, url, "hub", NULL, &ch));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(ch) && rp_stats(hub).channels == 1,
                  10000);
    int fds[2] = {rp_channel_fd(cmdipc_registry_channel(hub, "conn-1")),
                  rp_channel_fd(ch)};
    for (int i = 0; i < 2; i++) {
        ASSERT_GE(fds[i], 0);
        ASSERT_EQ(sockopt(fds[i], SOL_SOCKET, SO_KEEPALIVE), 1);
        ASSERT_EQ(sockopt(fds[i], IPPROTO_TCP, TCP_KEEPIDLE), 60);
        ASSERT_EQ(sockopt(fds[i], IPPROTO_TCP, TCP_NODELAY), 1);
    }
    /* Peers over TCP: an address, no credentials. */
    cmdipc_peer_info_t pi;
    ASSERT_OK(cmdipc_channel_peer(cmdipc_registry_channel(hub, "conn-1"), &pi));
    ASSERT_EQ(pi.has_creds, 0);
    ASSERT_EQ(strncmp(pi.remote, "127.0.0.1:", 10), 0);
    ASSERT_STR_EQ(pi.url, url);
    tu_close_all(&loop, hub, cli, NULL);
}

/* ---------------------------------------------------------------------------
 * Writes are batched: what one loop turn queues goes out in one write. */

/* Two listeners of one registry with the default id prefix ("conn-"). */
TEST(listeners_on_one_registry_name_channels_apart) {
    char path[HARNESS_PATH_MAX], url[160], turl[128];
    cmdipc_listener_t *tl;
    cmdipc_channel_t *a, *b;
    ASSERT_OK(uv_loop_init(&loop));
    memset(&rp_chev, 0, sizeof(rp_chev));
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);
    cmdipc_registry_set_channel_cb(hub, rp_channel_cb, NULL);
    rp_unix_url(url, sizeof(url), path, "two");
    ASSERT_OK(cmdipc_listen(hub, url, NULL, NULL));
    ASSERT_OK(cmdipc_listen(hub, "tcp://127.0.0.1:0", NULL, &tl));
    ASSERT_OK(cmdipc_listener_url(tl, turl, sizeof(turl)));
    cmdipc_registry_t *c1 = rp_registry(&loop, "c1", "hub");
    cmdipc_registry_t *c2 = rp_registry(&loop, "c2", "hub");
    ASSERT_OK(cmdipc_connect(c1, url, "hub", NULL, &a));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(a) && rp_chev.attached == 1, 10000);
    ASSERT_OK(cmdipc_connect(c2, turl, "hub", NULL, &b));
    /* Both connected peers get a channel of their own. */
    RP_PUMP_UNTIL(&loop, -1, rp_chev.attached == 2 || rp_log_count("refused") > 0, 10000);
    ASSERT_EQ(rp_log_count("refused"), 0);
    ASSERT_EQ(rp_chev.attached, 2);
    ASSERT_UEQ(rp_stats(hub).channels, 2);
    tu_close_all(&loop, hub, c1, c2, NULL);
}

/* ---------------------------------------------------------------------------
 * 23. Unix sockets: permissions, peer credentials, path length, stale
 * sockets. */

/* Forks a child that drops to uid/gid 65534 (when uid is not 0... always:
 * the tests run as root) and connects to path. The child exits 0 if the
 * connection was closed without a byte, 1 if it received a line (it was
 * accepted), 2 on errors. */
static pid_t fork_foreign_peer(const char *path, uid_t uid, gid_t gid) {
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid != 0)
        return pid;
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
        _exit(2);
    if (geteuid() != uid)
        _exit(2);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
        _exit(2);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        _exit(0);
    if (n > 0 && memchr(buf, '\n', (size_t)n) != NULL) {
        /* Stay until the other side has seen us. */
        while (read(fd, buf, sizeof(buf)) > 0)
            ;
        _exit(1);
    }
    _exit(2);
}

static int wait_child(pid_t pid, int *exit_code) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
        *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
        return 1;
    }
    return 0;
}

static cmdipc_peer_info_t accepted_peer;
static int accept_calls;
static int record_accept(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *name,
                         size_t size, void *data) {
    (void)l, (void)name, (void)size, (void)data;
    accepted_peer = *peer;
    accept_calls++;
    return 0;
}

TEST(c23_socket_mode_and_peer_uid_policy) {
    /* Runs as root in CI (a foreign uid needs setuid). */
    if (geteuid() != 0)
        RETURN_SKIP("needs root to run a peer under another uid");
    char path[HARNESS_PATH_MAX], url[160];
    struct stat st;
    cmdipc_listen_opts_t lo;
    ASSERT_OK(uv_loop_init(&loop));
    memset(&rp_chev, 0, sizeof(rp_chev));
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);
    cmdipc_registry_set_channel_cb(hub, rp_channel_cb, NULL);

    /* Default: 0600. */
    rp_unix_url(url, sizeof(url), path, "c23d");
    ASSERT_OK(cmdipc_listen(hub, url, NULL, NULL));
    ASSERT_OK(lstat(path, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    ASSERT_EQ(st.st_mode & 07777, 0600);

    /* 0666, same uid only: another uid is refused by SO_PEERCRED. */
    cmdipc_listen_opts_init(&lo);
    lo.mode = 0666;
    lo.same_uid_only = 1;
    lo.accept_cb = record_accept;
    rp_unix_url(url, sizeof(url), path, "c23s");
    cmdipc_listener_t *l;
    ASSERT_OK(cmdipc_listen(hub, url, &lo, &l));
    ASSERT_OK(lstat(path, &st));
    ASSERT_EQ(st.st_mode & 07777, 0666);
    pid_t pid = fork_foreign_peer(path, 65534, 65534);
    int code = -1;
    RP_PUMP_UNTIL(&loop, -1, wait_child(pid, &code), 15000);
    ASSERT_EQ(code, 0); /* closed without a byte */
    ASSERT_EQ(rp_chev.attached, 0);
    ASSERT_EQ(accept_calls, 0); /* refused before the accept callback */
    ASSERT_UEQ(rp_stats(hub).channels_attached, 0);
    ASSERT_EQ(rp_log_count("refused: peer uid not allowed"), 1);

    /* The same uid is accepted; its credentials are known. */
    rp_t p;
    ASSERT_OK(rp_connect(&p, path));
    char *line = rp_wait_line(&loop, &p, 10000);
    free(line);
    ASSERT_EQ(accept_calls, 1);
    ASSERT_EQ(accepted_peer.has_creds, 1);
    cmdipc_channel_t *ch = cmdipc_registry_channel(hub, "conn-1");
    ASSERT_NOT_NULL(ch);
    cmdipc_peer_info_t pi;
    ASSERT_OK(cmdipc_channel_peer(ch, &pi));
    ASSERT_EQ(pi.has_creds, 1);
    ASSERT_UEQ(pi.uid, geteuid());
    ASSERT_UEQ(pi.gid, getegid());
    ASSERT_EQ(pi.pid, getpid());
    ASSERT_STR_EQ(pi.url, url);
    rp_close(&p);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 1, 10000); /* its notifications are in */

    /* Listed uids: 65534 allowed next to our own. */
    static const uint32_t uids[] = {65534};
    lo.accept_cb = NULL;
    lo.id_prefix = "u-"; /* see listeners_on_one_registry_name_channels_apart */
    lo.allowed_uids = uids;
    lo.n_allowed_uids = 1;
    rp_unix_url(url, sizeof(url), path, "c23u");
    ASSERT_OK(cmdipc_listen(hub, url, &lo, NULL));
    int attached0 = rp_chev.attached;
    pid = fork_foreign_peer(path, 65534, 65534);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.attached == attached0 + 1, 15000);
    ch = NULL;
    for (int i = 1; i < 10 && ch == NULL; i++) {
        char id[16];
        snprintf(id, sizeof(id), "u-%d", i);
        cmdipc_channel_t *c = cmdipc_registry_channel(hub, id);
        if (c != NULL && cmdipc_channel_peer(c, &pi) == 0 && pi.pid == pid)
            ch = c;
    }
    ASSERT_NOT_NULL(ch);
    ASSERT_UEQ(pi.uid, 65534);
    ASSERT_UEQ(pi.gid, 65534);
    ASSERT_OK(cmdipc_channel_close(ch)); /* the child reads EOF and exits */
    code = -1;
    RP_PUMP_UNTIL(&loop, -1, wait_child(pid, &code), 15000);
    ASSERT_EQ(code, 1); /* it had been accepted */
    tu_close_all(&loop, hub, NULL);
}

TEST(c23_long_paths_are_refused_not_truncated) {
    char dir[HARNESS_PATH_MAX], path[256], url[300];
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);
    harness_scratch_path(dir, sizeof(dir), "c23l");
    ASSERT_OK(mkdir(dir, 0700));
    size_t dl = strlen(dir);
    /* 200 bytes: refused, and nothing exists where libuv would have
     * truncated it (107 bytes). */
    memset(path, 'p', 200);
    memcpy(path, dir, dl);
    path[dl] = '/';
    path[200] = '\0';
    snprintf(url, sizeof(url), "unix://%s", path);
    ASSERT_STATUS(UV_ENAMETOOLONG, cmdipc_listen(hub, url, NULL, NULL));
    cmdipc_channel_t *ch;
    ASSERT_STATUS(UV_ENAMETOOLONG, cmdipc_connect(hub, url, "x", NULL, &ch));
    struct stat st;
    for (size_t n = dl + 2; n <= 200; n++) {
        char cut[256];
        memcpy(cut, path, n);
        cut[n] = '\0';
        ASSERT_NE(lstat(cut, &st), 0);
    }
    /* 108 bytes does not fit sun_path either; 107 does. */
    path[108] = '\0';
    snprintf(url, sizeof(url), "unix://%s", path);
    ASSERT_STATUS(UV_ENAMETOOLONG, cmdipc_listen(hub, url, NULL, NULL));
    path[107] = '\0';
    snprintf(url, sizeof(url), "unix://%s", path);
    cmdipc_listener_t *l;
    ASSERT_OK(cmdipc_listen(hub, url, NULL, &l));
    ASSERT_OK(lstat(path, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    rp_t p;
    ASSERT_OK(rp_connect(&p, path));
    free(rp_wait_line(&loop, &p, 10000));
    rp_close(&p);
    cmdipc_listener_close(l);
    tu_settle(&loop);
    ASSERT_NE(lstat(path, &st), 0); /* removed with its listener */
    tu_close_all(&loop, hub, NULL);
    ASSERT_OK(rmdir(dir));
}

TEST(c23_stale_socket_reclaimed_but_never_a_file_or_a_live_socket) {
    char path[HARNESS_PATH_MAX], url[160];
    struct stat st;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = rp_registry(&loop, "hub", NULL);

    /* A stale socket: bound, then closed without unlink. */
    rp_unix_url(url, sizeof(url), path, "c23st");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    ASSERT_OK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)));
    ASSERT_OK(listen(fd, 1));
    close(fd);
    ASSERT_OK(lstat(path, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    ASSERT_OK(cmdipc_listen(hub, url, NULL, NULL));
    ASSERT_OK(lstat(path, &st));
    ASSERT_EQ(rp_log_count("removed a stale socket"), 1);
    rp_t p;
    ASSERT_OK(rp_connect(&p, path));
    free(rp_wait_line(&loop, &p, 10000));

    /* A live socket (this listener) is not stolen by a second one. */
    cmdipc_registry_t *other = rp_registry(&loop, "other", NULL);
    ASSERT_STATUS(UV_EADDRINUSE, cmdipc_listen(other, url, NULL, NULL));
    ASSERT_OK(lstat(path, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    rp_t q;
    ASSERT_OK(rp_connect(&q, path));
    free(rp_wait_line(&loop, &q, 10000)); /* still the first listener */
    /* (The second listener's liveness probe connected too: a channel that
     * closes at once.) */
    RP_PUMP_UNTIL(&loop, -1, rp_stats(hub).channels == 2, 10000);
    rp_close(&p);
    rp_close(&q);

    /* A regular file is never unlinked. */
    char fpath[HARNESS_PATH_MAX], furl[160];
    rp_unix_url(furl, sizeof(furl), fpath, "c23f");
    FILE *f = fopen(fpath, "w");
    ASSERT_NOT_NULL(f);
    fputs("precious\n", f);
    fclose(f);
    ASSERT_STATUS(UV_EADDRINUSE, cmdipc_listen(other, furl, NULL, NULL));
    ASSERT_OK(lstat(fpath, &st));
    ASSERT(S_ISREG(st.st_mode));
    ASSERT_EQ(st.st_size, 9);
    /* Nor is a symbolic link to a stale socket, or a directory. */
    char spath[HARNESS_PATH_MAX], surl[160], lpath[HARNESS_PATH_MAX], lurl[160];
    rp_unix_url(surl, sizeof(surl), spath, "c23ss");
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, spath, strlen(spath) + 1);
    ASSERT_OK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)));
    close(fd);
    rp_unix_url(lurl, sizeof(lurl), lpath, "c23ln");
    ASSERT_OK(symlink(spath, lpath));
    ASSERT_STATUS(UV_EADDRINUSE, cmdipc_listen(other, lurl, NULL, NULL));
    ASSERT_OK(lstat(lpath, &st));
    ASSERT(S_ISLNK(st.st_mode));
    char dpath[HARNESS_PATH_MAX], durl[160];
    rp_unix_url(durl, sizeof(durl), dpath, "c23dir");
    ASSERT_OK(mkdir(dpath, 0700));
    ASSERT_STATUS(UV_EADDRINUSE, cmdipc_listen(other, durl, NULL, NULL));
    ASSERT_OK(lstat(dpath, &st));
    ASSERT(S_ISDIR(st.st_mode));

    tu_close_all(&loop, hub, other, NULL);
    ASSERT_NE(lstat(path, &st), 0); /* ours, removed on close */
    ASSERT_OK(lstat(fpath, &st));
    ASSERT_OK(unlink(fpath));
    ASSERT_OK(unlink(lpath));
    ASSERT_OK(unlink(spath));
    ASSERT_OK(rmdir(dpath));
}

TEST_LIST_BEGIN
TEST_ENTRY(c15_slow_consumer_cut_at_the_hard_queue_cap)
TEST_ENTRY(c15_slow_consumer_cut_after_the_soft_limit_held_too_long)
TEST_ENTRY(c15_slow_consumer_cut_by_a_write_stall)
TEST_ENTRY(c16_inflight_cap_stops_reading_until_half)
TEST_ENTRY(c17_outbound_cap_overloads_the_1025th_call)
TEST_ENTRY(c18_connection_cap_and_fd_count)
TEST_ENTRY(c18_emfile_does_not_make_the_accept_loop_spin)
TEST_ENTRY(listener_close_keeps_accepted_channels)
TEST_ENTRY(registry_close_with_a_peer_that_does_not_read_completes)
TEST_ENTRY(registry_close_stops_a_dialer_in_backoff)
TEST_ENTRY(c20_timeout_exactly_at_request_ttl_then_late_reply_dropped)
TEST_ENTRY(c21_backoff_schedule)
TEST_ENTRY(c21_dialer_backs_off_reconnects_never_resends_and_stops_on_close)
TEST_ENTRY(c22_tcp_keepalive_on_accepted_and_dialed_sockets)
TEST_ENTRY(listeners_on_one_registry_name_channels_apart)
TEST_ENTRY(c23_socket_mode_and_peer_uid_policy)
TEST_ENTRY(c23_long_paths_are_refused_not_truncated)
TEST_ENTRY(c23_stale_socket_reclaimed_but_never_a_file_or_a_live_socket)
TEST_LIST_END
