/* pump — events per second fanned out by one emitter registry to 1, 4 and 16
 * peer registries (de-duplication on, the default), and the baselines
 * measured in the same run:
 *
 *   pump/unix/json_floor/N  the naive floor: a raw libuv emitter writes each
 *                           NDJSON event line (formatted with snprintf) to N
 *                           Unix sockets; every receiver parses every line
 *                           with jansson (json_loadb) and forwards nothing.
 *   pump/unix/cmdipc/N      cmdipc_registry_emit() of a ~100-byte payload
 *                           ({"seq":N,"t":T,"text":"..."}, built with
 *                           json_pack per event) to N registries over
 *                           unix://, each with a listener; ratio to the floor
 *                           with the same N. N = 1 is "events one way over a
 *                           Unix socket" (target: >= 0.75x the floor).
 *   pump/memory/cmdipc/N    the same over in-memory pairs, every registry on
 *                           one loop; ratio to N = 1 (how delivery scales
 *                           with the fan-out; 1.00x = no loss per delivery).
 *
 * Unix: the receivers live in ONE forked child process running one loop with
 * N registries (N connections for the floor). The machine has 2 cores: one
 * for the emitter, one for the receivers; N receiver processes would mostly
 * measure the scheduler (17 busy processes on 2 cores).
 *
 * Pacing: every receiver acknowledges every ACK_EVERY events (cmdipc: an
 * execute of "pump.ack", served by the emitter; floor: a short line back),
 * and the emitter keeps at most WINDOW events unacknowledged per receiver, so
 * the queues stay far below the send-queue caps (8 MiB / 2 MiB soft per unix
 * connection, 10,000 messages per memory pair): nobody may be cut off as a
 * slow consumer (checked and printed).
 *
 * Rate: events received by all receivers between two marker events (sent
 * after a 200 ms warm-up and after the measured window), per second of the
 * receivers' window. Latency: emit to listener, from a timestamp in the
 * payload (uv_hrtime, CLOCK_MONOTONIC, shared by the processes), sampled
 * every 16th event; it is mostly the pacing window's queueing (up to WINDOW
 * events ahead of each receiver: WINDOW / rate), the same for the floor.
 * CPU: emitter and receivers over the window, per event delivered.
 *
 * Usage: pump [seconds per figure] [filter substring] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmdipc.h>
#include <sodium.h>

#include "bench.h"

#define WINDOW     4000
#define ACK_EVERY  500
#define BATCH      128 /* events emitted per loop turn */
#define MAX_PEERS  16
#define LAT_SAMPLE 15 /* latency of every 16th event */
#define TEXT       "the quick brown fox jumps over the lazy dog 0123456789"

static double seconds = 2.0;
static const char *filter;
static char unix_path[108];

static void die(const char *what, int rc) {
    fprintf(stderr, "pump: %s: %s\n", what, rc ? cmdipc_strerror(rc) : "failed");
    exit(1);
}

/* ===========================================================================
 * The receivers' side, shared by every mode: what they saw in the window. */

typedef struct rx_result_s {
    uint64_t received;   /* events received in the window, all receivers */
    uint64_t t0, t1;     /* first marker 1, last marker 2 (uv_hrtime) */
    uint64_t cpu0, cpu1; /* this process's CPU at those points */
    int marks1, marks2;
    uint64_t slow_consumers, dup_drops, receivers_closed;
    double p50, p99;
} rx_result_t;

static rx_result_t rx;
static bench_lat_t rx_lat;

static void rx_reset(void) {
    memset(&rx, 0, sizeof(rx));
    bench_lat_init(&rx_lat, 200000);
}

static void rx_mark(int stage) {
    if (stage == 1) {
        if (rx.marks1++ == 0) {
            rx.t0 = uv_hrtime();
            rx.cpu0 = bench_cpu_self_us();
        }
    } else {
        rx.marks2++;
        rx.t1 = uv_hrtime();
        rx.cpu1 = bench_cpu_self_us();
    }
}

static void rx_finish(void) {
    rx.p50 = bench_lat_pct(&rx_lat, 50);
    rx.p99 = bench_lat_pct(&rx_lat, 99);
    bench_lat_free(&rx_lat);
}

/* ===========================================================================
 * cmdipc receivers: a registry each, listening to pump.tick and pump.mark,
 * acknowledging with an execute of pump.ack (routed to the emitter, their
 * router). */

typedef struct crecv_s {
    cmdipc_registry_t *r;
    int index;
    int in_window;
    int closed;
    uint64_t total;
} crecv_t;

static crecv_t crecv[MAX_PEERS];
static int crecv_n;

static void ack_done(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                     void *data) {
    (void)req, (void)status, (void)result, (void)msg, (void)data;
    /* Failures only happen while everything closes. */
}

static void crecv_tick(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                       void *data) {
    (void)event_id;
    crecv_t *c = data;
    c->total++;
    if (c->in_window > 0) {
        rx.received++;
        if ((c->total & LAT_SAMPLE) == 0) {
            json_int_t t = json_integer_value(json_object_get(payload, "t"));
            bench_lat_add(&rx_lat, uv_hrtime() - (uint64_t)t);
        }
    }
    if (c->total % ACK_EVERY == 0 && c->in_window >= 0) {
        json_t *req = json_pack("{s:i,s:I}", "peer", c->index, "n", (json_int_t)c->total);
        cmdipc_registry_execute(r, "pump.ack", req, NULL, ack_done, NULL, NULL);
        json_decref(req);
    }
}

static void crecv_mark(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                       void *data) {
    (void)r, (void)event_id;
    crecv_t *c = data;
    int stage = (int)json_integer_value(json_object_get(payload, "stage"));
    c->in_window = stage == 1 ? 1 : -1; /* -1: done, no more acks */
    rx_mark(stage);
    if (stage == 2) {
        /* The last message a receiver sends: the emitter closes once every
         * receiver is done (a receiver writing to a closed socket would get
         * EPIPE and drop what it has not read yet). */
        json_t *req = json_pack("{s:i,s:I,s:b}", "peer", c->index, "n",
                                (json_int_t)c->total, "done", 1);
        cmdipc_registry_execute(r, "pump.ack", req, NULL, ack_done, NULL, NULL);
        json_decref(req);
    }
}

static void crecv_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                          cmdipc_channel_event_t ev, int status, void *data) {
    (void)ch, (void)status;
    crecv_t *c = data;
    if (ev != CMDIPC_CHANNEL_CLOSED || c->closed)
        return;
    cmdipc_stats_t st;
    cmdipc_registry_stats(r, &st);
    rx.slow_consumers += st.slow_consumers;
    rx.dup_drops += st.dropped[CMDIPC_DROP_DUPLICATE_EVENT];
    rx.receivers_closed++;
    c->closed = 1;
    cmdipc_registry_close(r, NULL, NULL);
}

static void crecv_new(uv_loop_t *loop, int i) {
    char id[32];
    crecv_t *c = &crecv[i];
    memset(c, 0, sizeof(*c));
    c->index = i;
    snprintf(id, sizeof(id), "peer-%d", i);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    o.router_channel = "emitter";
    if (cmdipc_registry_new(loop, &o, &c->r) != 0)
        die("registry", 0);
    cmdipc_registry_set_channel_cb(c->r, crecv_channel, c);
    if (cmdipc_registry_on(c->r, "pump.tick", crecv_tick, c, NULL) != 0 ||
        cmdipc_registry_on(c->r, "pump.mark", crecv_mark, c, NULL) != 0)
        die("on", 0);
}

/* ===========================================================================
 * The cmdipc emitter. */

typedef struct emitter_s {
    uv_loop_t *loop;
    cmdipc_registry_t *r;
    int n, up, done;
    int stage; /* 0 warm-up, 1 measuring, 2 stopped */
    uint64_t sent;
    uint64_t acked[MAX_PEERS];
    uv_idle_t idle;
    int idle_on;
    uv_timer_t timer;
    uint64_t t0, t1, cpu0, cpu1, sent0, sent1;
    uint64_t slow_consumers;
    /* floor only */
    struct fconn_s *conns[MAX_PEERS];
    uv_pipe_t server;
} emitter_t;

static emitter_t em;

static uint64_t em_min_acked(void) {
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < em.n; i++)
        if (em.acked[i] < m)
            m = em.acked[i];
    return m;
}

static int em_window_open(void) { return em.sent - em_min_acked() < WINDOW; }

static void em_emit_tick(void) {
    json_t *p = json_pack("{s:I,s:I,s:s}", "seq", (json_int_t)em.sent, "t",
                          (json_int_t)uv_hrtime(), "text", TEXT);
    int rc = cmdipc_registry_emit(em.r, "pump.tick", p);
    json_decref(p);
    if (rc != 0)
        die("emit", rc);
    em.sent++;
}

static void em_emit_mark(int stage) {
    json_t *p = json_pack("{s:i}", "stage", stage);
    cmdipc_registry_emit(em.r, "pump.mark", p);
    json_decref(p);
}

static void (*em_tick)(void);
static void (*em_mark)(int stage);
static void (*em_stop)(void);

static void em_idle_cb(uv_idle_t *h) {
    for (int i = 0; i < BATCH; i++) {
        if (em.stage == 2 || !em_window_open()) {
            uv_idle_stop(h);
            em.idle_on = 0;
            return;
        }
        em_tick();
    }
}

static void em_kick(void) {
    if (!em.idle_on && em.stage != 2 && em_window_open()) {
        em.idle_on = 1;
        uv_idle_start(&em.idle, em_idle_cb);
    }
}

static void em_phase_cb(uv_timer_t *t) {
    em.stage++;
    if (em.stage == 1) {
        em_mark(1);
        em.t0 = uv_hrtime();
        em.cpu0 = bench_cpu_self_us();
        em.sent0 = em.sent;
        uv_timer_start(t, em_phase_cb, (uint64_t)(seconds * 1000), 0);
    } else {
        em_mark(2);
        em.t1 = uv_hrtime();
        em.cpu1 = bench_cpu_self_us();
        em.sent1 = em.sent;
        uv_close((uv_handle_t *)t, NULL);
        uv_idle_stop(&em.idle);
        uv_close((uv_handle_t *)&em.idle, NULL);
        em_stop();
    }
}

/* Every receiver is connected: warm up, then measure. */
static void em_start(void) {
    uv_idle_init(em.loop, &em.idle);
    uv_timer_init(em.loop, &em.timer);
    uv_timer_start(&em.timer, em_phase_cb, 200, 0);
    em_kick();
}

static void em_ack(cmdipc_call_t *call, json_t *req, void *data) {
    (void)data;
    int peer = (int)json_integer_value(json_object_get(req, "peer"));
    uint64_t n = (uint64_t)json_integer_value(json_object_get(req, "n"));
    if (peer >= 0 && peer < em.n && n > em.acked[peer])
        em.acked[peer] = n;
    int done = json_is_true(json_object_get(req, "done"));
    cmdipc_call_reply(call, NULL);
    if (done && ++em.done == em.n) {
        cmdipc_stats_t st;
        cmdipc_registry_stats(em.r, &st);
        em.slow_consumers = st.slow_consumers;
        /* Graceful: the answer is flushed, then the receivers see the close. */
        cmdipc_registry_close(em.r, NULL, NULL);
        return;
    }
    em_kick();
}

static void em_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                       cmdipc_channel_event_t ev, int status, void *data) {
    (void)r, (void)ch, (void)data;
    if (ev == CMDIPC_CHANNEL_UP && ++em.up == em.n)
        em_start();
    else if (ev == CMDIPC_CHANNEL_CLOSED && em.stage != 2)
        die("receiver lost", status);
}

static void cmdipc_em_stop(void) {
    /* The registry closes once every receiver said it is done (em_ack). */
}

static void cmdipc_em_new(uv_loop_t *loop, int n) {
    memset(&em, 0, sizeof(em));
    em.loop = loop;
    em.n = n;
    em_tick = em_emit_tick;
    em_mark = em_emit_mark;
    em_stop = cmdipc_em_stop;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "emitter";
    if (cmdipc_registry_new(loop, &o, &em.r) != 0)
        die("registry", 0);
    cmdipc_registry_set_channel_cb(em.r, em_channel, NULL);
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "pump.ack", NULL, NULL};
    if (cmdipc_registry_register(em.r, &def, em_ack, NULL, NULL, NULL) != 0)
        die("register", 0);
}

/* ===========================================================================
 * The naive floor: raw libuv, NDJSON lines. */

typedef struct fconn_s {
    union {
        uv_pipe_t pipe;
        uv_stream_t stream;
    } h;
    uv_connect_t creq;
    int index;
    /* emitter: output batch */
    bench_wbuf_t out;
    /* receiver: input */
    bench_rbuf_t in;
    uint64_t total;
    int in_window;
} fconn_t;

static void fconn_flush(fconn_t *c) { bench_wbuf_flush(&c->out, &c->h.stream); }

static void fconn_queue(fconn_t *c, const char *s, size_t n) { bench_wbuf_put(&c->out, s, n); }

static void fconn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
    (void)sz;
    fconn_t *c = h->data;
    char *base;
    size_t room;
    bench_rbuf_room(&c->in, &base, &room);
    *buf = uv_buf_init(base, (unsigned)room);
}

static void fconn_closed(uv_handle_t *h) {
    fconn_t *c = h->data;
    free(c->in.data);
    free(c->out.data);
    free(c);
}

/* Emitter side: acknowledgements ("a\n", one per ACK_EVERY events). */
static void floor_em_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    fconn_t *c = s->data;
    if (n < 0) {
        if (em.stage != 2)
            die("receiver lost", (int)n);
        uv_close((uv_handle_t *)s, fconn_closed);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (c->in.data[i] == '\n')
            em.acked[c->index] += ACK_EVERY;
    em_kick();
}

static void floor_em_tick_batch_flush(void) {
    for (int i = 0; i < em.n; i++)
        fconn_flush(em.conns[i]);
}

static void floor_em_tick(void) {
    char id[37], line[512];
    bench_uuid4(id);
    int len = snprintf(
        line, sizeof(line),
        "{\"id\":\"%s\",\"type\":\"event\",\"eventId\":\"pump.tick\",\"payload\":"
        "{\"seq\":%llu,\"t\":%llu,\"text\":\"%s\"}}\n",
        id, (unsigned long long)em.sent, (unsigned long long)uv_hrtime(), TEXT);
    for (int i = 0; i < em.n; i++)
        fconn_queue(em.conns[i], line, (size_t)len);
    em.sent++;
    /* One write per connection per batch (the idle callback's BATCH), or
     * when the window closes. */
    if (em.sent % BATCH == 0 || !em_window_open())
        floor_em_tick_batch_flush();
}

static void floor_em_mark(int stage) {
    char line[64];
    int len = snprintf(line, sizeof(line), "{\"mark\":%d}\n", stage);
    for (int i = 0; i < em.n; i++) {
        fconn_queue(em.conns[i], line, (size_t)len);
        fconn_flush(em.conns[i]);
    }
}

static void floor_shutdown_cb(uv_shutdown_t *req, int status) {
    (void)status;
    free(req);
}

static void floor_em_stop(void) {
    for (int i = 0; i < em.n; i++) {
        fconn_flush(em.conns[i]);
        uv_shutdown_t *req = malloc(sizeof(*req));
        if (uv_shutdown(req, &em.conns[i]->h.stream, floor_shutdown_cb) != 0)
            free(req);
    }
    uv_close((uv_handle_t *)&em.server, NULL);
}

static void floor_em_conn(uv_stream_t *server, int status) {
    if (status < 0)
        die("accept", status);
    fconn_t *c = calloc(1, sizeof(*c));
    uv_pipe_init(server->loop, &c->h.pipe, 0);
    c->h.stream.data = c;
    if (uv_accept(server, &c->h.stream) != 0 || em.up >= em.n)
        die("accept", 0);
    c->index = em.up;
    em.conns[em.up++] = c;
    uv_read_start(&c->h.stream, fconn_alloc, floor_em_read);
    if (em.up == em.n)
        em_start();
}

static void floor_em_new(uv_loop_t *loop, int n) {
    memset(&em, 0, sizeof(em));
    em.loop = loop;
    em.n = n;
    em_tick = floor_em_tick;
    em_mark = floor_em_mark;
    em_stop = floor_em_stop;
    uv_pipe_init(loop, &em.server, 0);
    int rc = uv_pipe_bind(&em.server, unix_path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&em.server, 128, floor_em_conn);
    if (rc != 0)
        die("listen", rc);
}

/* Receiver side: parse every line with jansson. */
static const char ack_line[] = "a\n";

static void floor_rx_line(fconn_t *c, const char *line, size_t n) {
    json_error_t e;
    json_t *v = json_loadb(line, n, 0, &e);
    if (v == NULL)
        die("bad line", 0);
    json_t *mark = json_object_get(v, "mark");
    if (mark != NULL) {
        int stage = (int)json_integer_value(mark);
        c->in_window = stage == 1;
        rx_mark(stage);
        json_decref(v);
        return;
    }
    c->total++;
    if (c->in_window) {
        rx.received++;
        if ((c->total & LAT_SAMPLE) == 0) {
            json_int_t t =
                json_integer_value(json_object_get(json_object_get(v, "payload"), "t"));
            bench_lat_add(&rx_lat, uv_hrtime() - (uint64_t)t);
        }
    }
    json_decref(v);
    if (c->total % ACK_EVERY == 0) {
        bench_write(&c->h.stream, (char *)ack_line, 2, 0);
    }
}

static void floor_rx_line_cb(void *ctx, const char *line, size_t n) { floor_rx_line(ctx, line, n); }

static void floor_rx_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    fconn_t *c = s->data;
    if (n < 0) {
        rx.receivers_closed++;
        uv_close((uv_handle_t *)s, fconn_closed);
        return;
    }
    bench_rbuf_lines(&c->in, (size_t)n, floor_rx_line_cb, c);
}

static void floor_rx_connected(uv_connect_t *req, int status) {
    fconn_t *c = req->data;
    if (status != 0)
        die("connect", status);
    uv_read_start(&c->h.stream, fconn_alloc, floor_rx_read);
}

/* ===========================================================================
 * Unix figures: the receivers in one forked child. */

static void child_main(int floor, int n, int go_fd, int res_fd) {
    char c;
    uv_loop_t loop;
    if (read(go_fd, &c, 1) != 1)
        _exit(1);
    close(go_fd);
    uv_loop_init(&loop);
    rx_reset();
    if (floor) {
        for (int i = 0; i < n; i++) {
            fconn_t *fc = calloc(1, sizeof(*fc));
            uv_pipe_init(&loop, &fc->h.pipe, 0);
            fc->h.stream.data = fc;
            fc->creq.data = fc;
            uv_pipe_connect(&fc->creq, &fc->h.pipe, unix_path, floor_rx_connected);
        }
    } else {
        char url[200];
        snprintf(url, sizeof(url), "unix://%s", unix_path);
        cmdipc_connect_opts_t co;
        cmdipc_connect_opts_init(&co);
        co.reconnect = 0;
        crecv_n = n;
        for (int i = 0; i < n; i++) {
            crecv_new(&loop, i);
            int rc = cmdipc_connect(crecv[i].r, url, "emitter", &co, NULL);
            if (rc != 0)
                die("connect", rc);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    rx_finish();
    if (write(res_fd, &rx, sizeof(rx)) != (ssize_t)sizeof(rx))
        _exit(1);
    _exit(0);
}

static void watchdog_cb(uv_timer_t *t) {
    (void)t;
    die("no progress (a receiver is missing)", 0);
}

static void watchdog_start(uv_loop_t *loop, uv_timer_t *t) {
    uv_timer_init(loop, t);
    uv_timer_start(t, watchdog_cb, (uint64_t)(seconds * 1000) + 60000, 0);
    uv_unref((uv_handle_t *)t);
}

static bench_result_t result(const char *name, int separate) {
    static char names[32][64];
    static int n_names;
    bench_result_t r;
    snprintf(names[n_names % 32], 64, "%s", name);
    r.name = names[n_names++ % 32];
    r.unit = "events";
    double secs = (double)(rx.t1 - rx.t0) / 1e9;
    r.rate = secs > 0 ? (double)rx.received / secs : 0;
    r.p50_us = rx.p50;
    r.p99_us = rx.p99;
    double cpu = (double)(rx.cpu1 - rx.cpu0);
    if (separate) /* the emitter is another process */
        cpu += (double)(em.cpu1 - em.cpu0);
    r.cpu_us = rx.received ? cpu / (double)rx.received : 0;
    return r;
}

static void detail(int floor, int n) {
    double secs = (double)(em.t1 - em.t0) / 1e9;
    double emitted = secs > 0 ? (double)(em.sent1 - em.sent0) / secs : 0;
    if (floor) {
        bench_detail("emitted %.0f events/s to %d receiver%s", emitted, n,
                     n > 1 ? "s" : "");
    } else {
        bench_detail(
            "emitted %.0f events/s to %d receiver%s; slow consumers: emitter %llu, "
            "receivers %llu; duplicate drops %llu",
            emitted, n, n > 1 ? "s" : "", (unsigned long long)em.slow_consumers,
            (unsigned long long)rx.slow_consumers, (unsigned long long)rx.dup_drops);
    }
}

static bench_result_t run_unix(int floor, int n) {
    int go[2], res[2];
    uv_loop_t loop;
    uv_timer_t watchdog;
    char name[64];
    if (pipe(go) != 0 || pipe(res) != 0)
        die("pipe", 0);
    unlink(unix_path);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
        close(go[1]);
        close(res[0]);
        child_main(floor, n, go[0], res[1]);
    }
    close(go[0]);
    close(res[1]);
    uv_loop_init(&loop);
    if (floor) {
        floor_em_new(&loop, n);
    } else {
        char url[200];
        snprintf(url, sizeof(url), "unix://%s", unix_path);
        cmdipc_em_new(&loop, n);
        int rc = cmdipc_listen(em.r, url, NULL, NULL);
        if (rc != 0)
            die("listen", rc);
    }
    watchdog_start(&loop, &watchdog);
    if (write(go[1], "g", 1) != 1)
        die("go", 0);
    close(go[1]);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        die("loop still busy", 0);
    size_t got = 0;
    while (got < sizeof(rx)) {
        ssize_t k = read(res[0], (char *)&rx + got, sizeof(rx) - got);
        if (k <= 0)
            die("receivers' results", 0);
        got += (size_t)k;
    }
    close(res[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("receiver process failed", 0);
    unlink(unix_path);
    if (rx.marks1 != n || rx.marks2 != n)
        die("markers lost", 0);
    snprintf(name, sizeof(name), "pump/unix/%s/%d", floor ? "json_floor" : "cmdipc", n);
    return result(name, 1);
}

/* ===========================================================================
 * In-memory: the emitter and N receivers on one loop. */

static bench_result_t run_memory(int n) {
    uv_loop_t loop;
    uv_timer_t watchdog;
    char name[64], id[32];
    uv_loop_init(&loop);
    rx_reset();
    cmdipc_em_new(&loop, n);
    crecv_n = n;
    for (int i = 0; i < n; i++) {
        cmdipc_channel_t *a, *b;
        snprintf(id, sizeof(id), "peer-%d", i);
        if (cmdipc_memory_pair(id, "emitter", &a, &b) != 0)
            die("pair", 0);
        crecv_new(&loop, i);
        if (cmdipc_registry_attach(em.r, a) != 0 ||
            cmdipc_registry_attach(crecv[i].r, b) != 0)
            die("attach", 0);
    }
    watchdog_start(&loop, &watchdog);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        die("loop still busy", 0);
    rx_finish();
    if (rx.marks1 != n || rx.marks2 != n)
        die("markers lost", 0);
    snprintf(name, sizeof(name), "pump/memory/cmdipc/%d", n);
    return result(name, 0);
}

/* ===========================================================================
 * Main. */

static int wanted(const char *name) {
    return filter == NULL || strstr(name, filter) != NULL;
}

int main(int argc, char **argv) {
    static const int ns[] = {1, 4, 16};
    char name[64];
    seconds = bench_seconds(argc, argv, 2.0);
    filter = argc > 2 ? argv[2] : NULL;
    if (sodium_init() < 0)
        die("sodium", 0);
    signal(SIGPIPE, SIG_IGN);
    snprintf(unix_path, sizeof(unix_path), "/tmp/cmdipc-pump-%d.sock", (int)getpid());

    for (int i = 0; i < 3; i++) {
        int n = ns[i];
        bench_result_t base = {0};
        snprintf(name, sizeof(name), "pump/unix/json_floor/%d", n);
        if (wanted(name)) {
            base = run_unix(1, n);
            bench_print(&base, NULL);
            detail(1, n);
        }
        snprintf(name, sizeof(name), "pump/unix/cmdipc/%d", n);
        if (wanted(name)) {
            bench_result_t c = run_unix(0, n);
            bench_print(&c, base.rate > 0 ? &base : NULL);
            detail(0, n);
            if (n == 1 && base.rate > 0)
                bench_detail("events one way over a Unix socket: %.2fx the naive floor "
                             "(target >= 0.75x)",
                             c.rate / base.rate);
            if (em.slow_consumers || rx.slow_consumers)
                die("slow consumers were cut off", 0);
        }
    }
    bench_result_t one = {0};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "pump/memory/cmdipc/%d", ns[i]);
        if (!wanted(name))
            continue;
        bench_result_t m = run_memory(ns[i]);
        bench_print(&m, one.rate > 0 ? &one : NULL);
        detail(0, ns[i]);
        if (ns[i] == 1)
            one = m;
        if (em.slow_consumers || rx.slow_consumers)
            die("slow consumers were cut off", 0);
    }
    unlink(unix_path);
    return 0;
}
