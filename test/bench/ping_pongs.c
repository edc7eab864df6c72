/* ping_pongs — execute round trips per second, and the baselines measured in
 * the same run:
 *
 *   raw         libuv ping-pong of the same NDJSON bytes, no JSON work
 *   json_*      the naive JSON floor: jansson parses every line and dumps
 *               every reply on both sides (writes once per read callback,
 *               once per message, or flushed every 8 messages)
 *   cmdipc      math.add {"a":1,"b":2} through two registries
 *
 * over a Unix socket and TCP loopback (the server is a forked process), with
 * 1 and 64 calls outstanding; and over the in-memory channel on one loop and
 * across two loops on two threads, against a uv_async json_t* hand-off
 * (medians of three interleaved rounds of both).
 *
 *   unix_hub    math.add through a hub: a root registry in a third process,
 *               listening on a Unix socket, forwards between the client and
 *               the server (which registered math.add, escalated to the hub);
 *               three busy processes on two cores. Ratio: to the direct
 *               unix connection (target >= 0.5x), and to the relay figure;
 *               medians of three interleaved rounds of all three.
 *   tcp_sodium  math.add over tcp+sodium:// (Noise XK, secretstream frames) next
 *               to plain tcp:// in interleaved rounds, medians compared
 *               (target >= 0.8x at 64 outstanding); and handshakes/s: connect,
 *               authenticate, come up, close, over and over, next to plain
 *               TCP connections made the same way.
 *   unix_hub/relay  the same client and direct server with a byte relay in a
 *               third process (libuv, copies bytes, parses nothing): what any
 *               process in the middle costs on the machine, the ceiling for
 *               a hub. Ratio: to the direct connection.
 *
 * Usage: ping_pongs [seconds per figure] [filter substring] */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmdipc.h>
#include <sodium.h>

#include "bench.h"

static double seconds = 2.0;
/* Interleaved rounds of the figures compared across processes or threads. */
#define ROUNDS 3
static const char *filter;
static char unix_path[108];
static int tcp_port;

enum { T_UNIX, T_TCP, T_SODIUM };
/* tcp+sodium://: the server's and the client's keys (made before forking). */
static cmdipc_keypair_t *srv_key, *cli_key;
static cmdipc_pubkey_t srv_pub, cli_pub;
enum { M_RAW, M_JSON_READ, M_JSON_MSG, M_JSON_8 };
static const char *const mode_names[] = {"raw", "json_per_read", "json_per_msg", "json_flush8"};

static void die(const char *what, int rc) {
    fprintf(stderr, "ping_pongs: %s: %s\n", what, rc ? uv_strerror(rc) : "failed");
    exit(1);
}

/* ===========================================================================
 * A line-oriented libuv peer used by the raw and JSON-floor baselines, on
 * both sides. */

typedef struct peer_s {
    uv_loop_t *loop;
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_stream_t stream;
    } h;
    int mode;
    int is_server;
    bench_rbuf_t in;
    /* output batch */
    bench_wbuf_t out;
    /* client */
    uint64_t *sent_at; /* FIFO of send times (ns) */
    size_t q_head, q_tail, q_cap;
    uint64_t done, measured;
    int measuring, stopping;
    bench_lat_t lat;
} peer_t;

static void peer_flush(peer_t *p) { bench_wbuf_flush(&p->out, &p->h.stream); }

static void peer_queue(peer_t *p, const char *s, size_t n) {
    bench_wbuf_put(&p->out, s, n);
    if (p->mode == M_JSON_MSG || (p->mode == M_JSON_8 && p->out.count >= 8))
        peer_flush(p);
}

/* Builds the message this side sends next (JSON modes: with jansson). */
static void peer_emit(peer_t *p, json_t *in) {
    if (p->mode == M_RAW) {
        if (p->is_server)
            peer_queue(p, RES_LINE, sizeof(RES_LINE) - 1);
        else
            peer_queue(p, REQ_LINE, sizeof(REQ_LINE) - 1);
        return;
    }
    char id[37];
    bench_uuid4(id);
    json_t *out;
    if (p->is_server) {
        json_t *req = json_object_get(in, "request");
        json_int_t a = json_integer_value(json_object_get(req, "a"));
        json_int_t b = json_integer_value(json_object_get(req, "b"));
        out = json_pack("{s:s,s:s,s:O,s:{s:b,s:I}}", "id", id, "type",
                        "execute.command.response", "thid", json_object_get(in, "id"),
                        "response", "ok", 1, "result", (json_int_t)(a + b));
    } else {
        out = json_pack("{s:s,s:s,s:s,s:{s:i,s:i}}", "id", id, "type",
                        "execute.command.request", "commandId", "math.add", "request", "a", 1,
                        "b", 2);
    }
    char *text = json_dumps(out, JSON_COMPACT);
    size_t n = strlen(text);
    text[n] = '\n';
    peer_queue(p, text, n + 1);
    free(text);
    json_decref(out);
}

static void client_send(peer_t *p) {
    p->sent_at[p->q_tail++ % p->q_cap] = uv_hrtime();
    peer_emit(p, NULL);
}

static void on_line(peer_t *p, const char *line, size_t n) {
    json_t *in = NULL;
    if (p->mode != M_RAW) {
        json_error_t e;
        in = json_loadb(line, n, 0, &e);
        if (in == NULL)
            die("bad line", 0);
    }
    if (p->is_server) {
        peer_emit(p, in);
    } else {
        uint64_t t = p->sent_at[p->q_head++ % p->q_cap];
        if (p->measuring) {
            bench_lat_add(&p->lat, uv_hrtime() - t);
            p->measured++;
        }
        p->done++;
        if (!p->stopping)
            client_send(p);
    }
    json_decref(in);
}

static void on_line_cb(void *ctx, const char *line, size_t n) { on_line(ctx, line, n); }

static void peer_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
    (void)sz;
    peer_t *p = h->data;
    char *base;
    size_t room;
    bench_rbuf_room(&p->in, &base, &room);
    *buf = uv_buf_init(base, (unsigned)room);
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    peer_t *p = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        if (p->is_server)
            uv_stop(p->loop);
        return;
    }
    bench_rbuf_lines(&p->in, (size_t)n, on_line_cb, p);
    peer_flush(p);
}

/* ===========================================================================
 * Servers (in a forked child). */

static int ready_fd = -1;

static void signal_ready(void) {
    char c = 1;
    if (write(ready_fd, &c, 1) != 1)
        die("ready pipe", 0);
    close(ready_fd);
}

static peer_t srv_peer_proto;
static void srv_conn(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    peer_t *p = calloc(1, sizeof(*p));
    *p = srv_peer_proto;
    p->loop = server->loop;
    if (server->type == UV_TCP) {
        uv_tcp_init(p->loop, &p->h.tcp);
        uv_tcp_nodelay(&p->h.tcp, 1);
    } else {
        uv_pipe_init(p->loop, &p->h.pipe, 0);
    }
    p->h.stream.data = p;
    if (uv_accept(server, &p->h.stream) == 0)
        uv_read_start(&p->h.stream, peer_alloc, peer_read);
}

typedef union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
    uv_stream_t stream;
} server_handle_t;

static int listen_raw(uv_loop_t *loop, int transport, server_handle_t *srv) {
    int rc;
    if (transport == T_UNIX) {
        unlink(unix_path);
        uv_pipe_init(loop, &srv->pipe, 0);
        rc = uv_pipe_bind(&srv->pipe, unix_path);
    } else {
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", tcp_port, &a);
        uv_tcp_init(loop, &srv->tcp);
        rc = uv_tcp_bind(&srv->tcp, (struct sockaddr *)&a, 0);
    }
    if (rc == 0)
        rc = uv_listen(&srv->stream, 128, srv_conn);
    return rc;
}

static void serve_raw(int transport, int mode) {
    uv_loop_t loop;
    server_handle_t srv;
    uv_loop_init(&loop);
    memset(&srv_peer_proto, 0, sizeof(srv_peer_proto));
    srv_peer_proto.mode = mode;
    srv_peer_proto.is_server = 1;
    int rc = listen_raw(&loop, transport, &srv);
    if (rc != 0)
        die("listen", rc);
    signal_ready();
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

static void add_fn(cmdipc_call_t *call, json_t *req, void *data) {
    (void)data;
    json_int_t a = json_integer_value(json_object_get(req, "a"));
    json_int_t b = json_integer_value(json_object_get(req, "b"));
    json_t *r = json_integer(a + b);
    cmdipc_call_reply(call, r);
    json_decref(r);
}

static void srv_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                           cmdipc_channel_event_t ev, int status, void *data) {
    (void)r, (void)ch, (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_CLOSED)
        _exit(0);
}

/* A forked process's registry: listens on the bench socket, optionally
 * serves math.add, signals ready and runs until killed. */
static void serve_registry(const char *id, int transport, int with_add) {
    uv_loop_t loop;
    cmdipc_registry_t *r;
    char url[200];
    uv_loop_init(&loop);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    if (cmdipc_registry_new(&loop, &o, &r) != 0)
        die("registry", 0);
    if (with_add) {
        cmdipc_registry_set_channel_cb(r, srv_channel_cb, NULL);
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
        cmdipc_registry_register(r, &def, add_fn, NULL, NULL, NULL);
    }
    cmdipc_listen_opts_t lo;
    cmdipc_secure_opts_t so;
    cmdipc_listen_opts_init(&lo);
    cmdipc_secure_opts_init(&so);
    so.key = srv_key;
    so.allow = &cli_pub;
    so.n_allow = 1;
    if (transport == T_UNIX)
        snprintf(url, sizeof(url), "unix://%s", unix_path);
    else if (transport == T_SODIUM)
        snprintf(url, sizeof(url), "tcp+sodium://127.0.0.1:%d", tcp_port);
    else
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tcp_port);
    lo.secure = transport == T_SODIUM ? &so : NULL;
    unlink(unix_path);
    int rc = cmdipc_listen(r, url, &lo, NULL);
    if (rc != 0)
        die("cmdipc_listen", rc);
    signal_ready();
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

static void serve_cmdipc(int transport) { serve_registry("server", transport, 1); }

/* The hub: a root registry listening on the socket, routing between the
 * client and the server behind it. */
static void serve_hub(void) { serve_registry("hub", T_UNIX, 0); }

static void behind_registered(cmdipc_registry_t *r, int status, const char *id,
                              void *data) {
    (void)r, (void)id, (void)data;
    if (status != 0)
        die("math.add registration through the hub", status);
    signal_ready(); /* the hub routes math.add to us from now on */
}

static void behind_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                              cmdipc_channel_event_t ev, int status, void *data) {
    (void)ch, (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_UP) {
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
        int rc = cmdipc_registry_register(r, &def, add_fn, NULL, behind_registered, NULL);
        if (rc != 0)
            die("register", rc);
    } else if (ev == CMDIPC_CHANNEL_CLOSED) {
        _exit(0);
    }
}

/* The server behind the hub: its router is the hub. */
static void serve_behind_hub(void) {
    uv_loop_t loop;
    cmdipc_registry_t *r;
    char url[200];
    uv_loop_init(&loop);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "server";
    o.router_channel = "hub";
    if (cmdipc_registry_new(&loop, &o, &r) != 0)
        die("registry", 0);
    cmdipc_registry_set_channel_cb(r, behind_channel_cb, NULL);
    snprintf(url, sizeof(url), "unix://%s", unix_path);
    cmdipc_connect_opts_t co;
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0;
    int rc = cmdipc_connect(r, url, "hub", &co, NULL);
    if (rc != 0)
        die("connect", rc);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* The relay baseline for the hub: a byte pump in a third process, between
 * the same client and the same direct server. It accepts on relay_path,
 * connects to the server's socket and copies whatever either side sends to
 * the other (write(2) when the socket takes it, a queued uv_write of a copy
 * otherwise): what a process in the middle costs with no parsing or routing
 * at all, the ceiling for any hub on the machine. */
typedef struct relay_side_s {
    uv_pipe_t pipe;
    struct relay_side_s *other;
    char buf[64 * 1024];
} relay_side_t;

static char relay_path[120];

static void relay_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    (void)hint;
    relay_side_t *s = h->data;
    *b = uv_buf_init(s->buf, sizeof(s->buf));
}

static void relay_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static void relay_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    relay_side_t *s = st->data;
    if (n < 0)
        _exit(0); /* either side gone: the figure is over */
    if (n == 0)
        return;
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int done = uv_try_write((uv_stream_t *)&s->other->pipe, &out, 1);
    if (done == (int)n)
        return;
    if (done < 0 && done != UV_EAGAIN)
        die("relay write", done);
    size_t off = done > 0 ? (size_t)done : 0, left = (size_t)n - off;
    uv_write_t *w = malloc(sizeof(*w) + left);
    if (w == NULL)
        die("relay", 0);
    memcpy(w + 1, b->base + off, left);
    out = uv_buf_init((char *)(w + 1), (unsigned)left);
    if (uv_write(w, (uv_stream_t *)&s->other->pipe, &out, 1, relay_written) != 0)
        die("relay write", 0);
}

static void relay_connected(uv_connect_t *req, int status) {
    relay_side_t *in = req->data;
    if (status != 0)
        die("relay connect", status);
    uv_read_start((uv_stream_t *)&in->pipe, relay_alloc, relay_read);
    uv_read_start((uv_stream_t *)&in->other->pipe, relay_alloc, relay_read);
}

static void relay_accept(uv_stream_t *server, int status) {
    static uv_connect_t creq;
    if (status < 0)
        return;
    relay_side_t *in = calloc(1, sizeof(*in)), *out = calloc(1, sizeof(*out));
    if (in == NULL || out == NULL)
        die("relay", 0);
    in->other = out, out->other = in;
    uv_pipe_init(server->loop, &in->pipe, 0);
    uv_pipe_init(server->loop, &out->pipe, 0);
    in->pipe.data = in, out->pipe.data = out;
    if (uv_accept(server, (uv_stream_t *)&in->pipe) != 0)
        die("relay accept", 0);
    creq.data = in;
    uv_pipe_connect(&creq, &out->pipe, unix_path, relay_connected);
}

static void serve_relay(void) {
    uv_loop_t loop;
    uv_pipe_t srv;
    uv_loop_init(&loop);
    unlink(relay_path);
    uv_pipe_init(&loop, &srv, 0);
    int rc = uv_pipe_bind(&srv, relay_path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv, 8, relay_accept);
    if (rc != 0)
        die("relay listen", rc);
    signal_ready();
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* Forks a process running fn; returns its pid once fn signalled ready. */
static pid_t start_proc(void (*fn)(void)) {
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe", 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
        close(fds[0]);
        ready_fd = fds[1];
        fn();
        _exit(0);
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1)
        die("process did not start", 0);
    close(fds[0]);
    return pid;
}

/* Forks a server; returns its pid once it listens. */
static int srv_transport, srv_mode, srv_is_cmdipc;

static void serve_server(void) {
    if (srv_is_cmdipc)
        serve_cmdipc(srv_transport);
    else
        serve_raw(srv_transport, srv_mode);
}

static pid_t start_server(int transport, int mode, int is_cmdipc) {
    srv_transport = transport, srv_mode = mode, srv_is_cmdipc = is_cmdipc;
    return start_proc(serve_server);
}

/* ===========================================================================
 * Measurement phases shared by the clients: warm up, measure, stop. */

typedef struct phase_s {
    uv_timer_t timer;
    int stage; /* 0 warm-up, 1 measuring, 2 stopping */
    uint64_t t0, t1, cpu0, cpu1;
    void (*on_stage)(struct phase_s *);
    void *data;
} phase_t;

static void phase_cb(uv_timer_t *t) {
    phase_t *ph = t->data;
    ph->stage++;
    if (ph->stage == 1) {
        ph->t0 = uv_hrtime();
        ph->cpu0 = bench_cpu_self_us();
        uv_timer_start(&ph->timer, phase_cb, (uint64_t)(seconds * 1000), 0);
    } else {
        ph->t1 = uv_hrtime();
        ph->cpu1 = bench_cpu_self_us();
        uv_close((uv_handle_t *)&ph->timer, NULL);
    }
    ph->on_stage(ph);
}

static void phase_start(phase_t *ph, uv_loop_t *loop) {
    memset(&ph->timer, 0, sizeof(ph->timer));
    uv_timer_init(loop, &ph->timer);
    ph->timer.data = ph;
    ph->stage = 0;
    uv_timer_start(&ph->timer, phase_cb, 200, 0); /* warm-up */
}

static bench_result_t finish(const char *name, uint64_t measured, phase_t *ph,
                             uint64_t server_cpu_us, double server_share, bench_lat_t *lat) {
    static char names[128][64];
    static int n_names;
    bench_result_t r;
    double secs = (double)(ph->t1 - ph->t0) / 1e9;
    snprintf(names[n_names % 128], 64, "%s", name);
    r.name = names[n_names++ % 128];
    r.unit = "rt";
    r.rate = (double)measured / secs;
    r.p50_us = bench_lat_pct(lat, 50);
    r.p99_us = bench_lat_pct(lat, 99);
    double cpu = (double)(ph->cpu1 - ph->cpu0) + (double)server_cpu_us * server_share;
    r.cpu_us = measured ? cpu / (double)measured : 0;
    return r;
}

/* ===========================================================================
 * Raw / JSON-floor client. */

static peer_t *cli;
static phase_t cli_phase;

static void raw_stage(phase_t *ph) {
    (void)ph;
    if (ph->stage == 1) {
        cli->measuring = 1;
    } else {
        cli->measuring = 0;
        cli->stopping = 1;
        uv_stop(cli->loop);
    }
}

static void raw_connected(uv_connect_t *req, int status) {
    peer_t *p = req->data;
    if (status != 0)
        die("connect", status);
    uv_read_start(&p->h.stream, peer_alloc, peer_read);
    size_t k = p->q_cap;
    for (size_t i = 0; i < k; i++)
        client_send(p);
    peer_flush(p);
}

static void walk_close(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static bench_result_t run_raw(int transport, int mode, int k, const char *label) {
    uv_loop_t loop;
    uv_connect_t creq;
    char name[64];
    pid_t pid = start_server(transport, mode, 0);
    uv_loop_init(&loop);
    cli = calloc(1, sizeof(*cli));
    cli->loop = &loop;
    cli->mode = mode;
    cli->q_cap = (size_t)k;
    cli->sent_at = calloc((size_t)k, sizeof(uint64_t));
    bench_lat_init(&cli->lat, 200000);
    creq.data = cli;
    if (transport == T_UNIX) {
        uv_pipe_init(&loop, &cli->h.pipe, 0);
        uv_pipe_connect(&creq, &cli->h.pipe, unix_path, raw_connected);
    } else {
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", tcp_port, &a);
        uv_tcp_init(&loop, &cli->h.tcp);
        uv_tcp_nodelay(&cli->h.tcp, 1);
        uv_tcp_connect(&creq, &cli->h.tcp, (struct sockaddr *)&a, raw_connected);
    }
    cli->h.stream.data = cli;
    cli_phase.on_stage = raw_stage;
    phase_start(&cli_phase, &loop);
    uint64_t srv0 = bench_cpu_children_us();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t srv_cpu = bench_stop_child(pid);
    (void)srv0;
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    snprintf(name, sizeof(name), "ping_pongs/%s/%s/%d", label, mode_names[mode], k);
    /* The server ran for warm-up + measure; count its share of the window. */
    double share = seconds / (seconds + 0.2);
    bench_result_t r = finish(name, cli->measured, &cli_phase, srv_cpu, share, &cli->lat);
    bench_lat_free(&cli->lat);
    free(cli->sent_at);
    free(cli->in.data);
    free(cli->out.data);
    free(cli);
    return r;
}

/* ===========================================================================
 * cmdipc client. */

typedef struct {
    uv_loop_t *loop;
    cmdipc_registry_t *r;
    json_t *request;
    int k;
    int measuring, stopping;
    uint64_t measured;
    uint64_t inflight;
    bench_lat_t lat;
    phase_t phase;
} ccli_t;

static ccli_t cc;

static void cc_issue(void);

static void cc_done(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                    void *data) {
    (void)req, (void)result;
    uint64_t t0 = (uint64_t)(uintptr_t)data;
    if (status != 0) {
        fprintf(stderr, "ping_pongs: call failed: %s\n", msg);
        exit(1);
    }
    cc.inflight--;
    if (cc.measuring) {
        bench_lat_add(&cc.lat, uv_hrtime() - t0);
        cc.measured++;
    }
    if (!cc.stopping)
        cc_issue();
    else if (cc.inflight == 0)
        cmdipc_registry_close(cc.r, NULL, NULL);
}

static void cc_issue(void) {
    int rc = cmdipc_registry_execute(cc.r, "math.add", cc.request, NULL, cc_done,
                                     (void *)(uintptr_t)uv_hrtime(), NULL);
    if (rc != 0)
        die("execute", rc);
    cc.inflight++;
}

static void cc_stage(phase_t *ph) {
    if (ph->stage == 1) {
        cc.measuring = 1;
    } else {
        cc.measuring = 0;
        cc.stopping = 1;
    }
}

static void cc_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                       int status, void *data) {
    (void)r, (void)ch, (void)data;
    if (ev == CMDIPC_CHANNEL_UP && cc.inflight == 0 && !cc.stopping) {
        for (int i = 0; i < cc.k; i++)
            cc_issue();
        phase_start(&cc.phase, cc.loop);
    } else if (ev == CMDIPC_CHANNEL_DOWN || (ev == CMDIPC_CHANNEL_CLOSED && status != 0)) {
        if (!cc.stopping)
            die("connection lost", status);
    }
}

/* The client registry of a figure, calling with k outstanding through the
 * channel named router. */
static void cc_init(uv_loop_t *loop, int k, const char *router) {
    memset(&cc, 0, sizeof(cc));
    cc.loop = loop;
    cc.k = k;
    cc.request = json_pack("{s:i,s:i}", "a", 1, "b", 2);
    bench_lat_init(&cc.lat, 200000);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "client";
    o.router_channel = router;
    if (cmdipc_registry_new(loop, &o, &cc.r) != 0)
        die("registry", 0);
}

/* via: VIA_HUB through a hub process, VIA_RELAY through the byte relay
 * (both with transport T_UNIX), or VIA_NONE. */
enum { VIA_NONE, VIA_HUB, VIA_RELAY };
static bench_result_t run_cmdipc(int transport, int k, const char *label, int via) {
    uv_loop_t loop;
    char url[200], name[64];
    pid_t pid, mid_pid = 0;
    int hub = via == VIA_HUB;
    if (hub) {
        mid_pid = start_proc(serve_hub);
        pid = start_proc(serve_behind_hub);
    } else {
        pid = start_server(transport, 0, 1);
        if (via == VIA_RELAY)
            mid_pid = start_proc(serve_relay);
    }
    uv_loop_init(&loop);
    cc_init(&loop, k, hub ? "hub" : "server");
    cmdipc_registry_set_channel_cb(cc.r, cc_channel, NULL);
    if (transport == T_UNIX)
        snprintf(url, sizeof(url), "unix://%s",
                 via == VIA_RELAY ? relay_path : unix_path);
    else
        snprintf(url, sizeof(url), "%s://127.0.0.1:%d",
                 transport == T_SODIUM ? "tcp+sodium" : "tcp", tcp_port);
    cmdipc_connect_opts_t co;
    cmdipc_secure_opts_t so;
    cmdipc_connect_opts_init(&co);
    cmdipc_secure_opts_init(&so);
    so.key = cli_key;
    so.peer_key = &srv_pub;
    co.secure = transport == T_SODIUM ? &so : NULL;
    co.reconnect = 0;
    int rc = cmdipc_connect(cc.r, url, hub ? "hub" : "server", &co, NULL);
    if (rc != 0)
        die("connect", rc);
    cc.phase.on_stage = cc_stage;
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t srv_cpu = bench_stop_child(pid);
    if (mid_pid)
        srv_cpu += bench_stop_child(mid_pid);
    uv_loop_close(&loop);
    snprintf(name, sizeof(name), "ping_pongs/%s/%s/%d", label,
             via == VIA_RELAY ? "relay" : "cmdipc", k);
    bench_result_t r = finish(name, cc.measured, &cc.phase, srv_cpu, seconds / (seconds + 0.2),
                              &cc.lat);
    bench_lat_free(&cc.lat);
    json_decref(cc.request);
    return r;
}

/* ===========================================================================
 * Connections per second: connect, (handshake,) up, close, again. */

static struct {
    uv_loop_t *loop;
    cmdipc_registry_t *r;
    int transport, measuring, stopping;
    uint64_t measured, started, n;
    bench_lat_t lat;
    phase_t phase;
} cn;

static void cn_dial(void);

static void cn_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                       cmdipc_channel_event_t ev, int status, void *data) {
    (void)r, (void)data;
    if (ev == CMDIPC_CHANNEL_UP) {
        if (cn.measuring) {
            cn.measured++;
            bench_lat_add(&cn.lat, uv_hrtime() - cn.started);
        }
        cmdipc_channel_close(ch);
    } else if (ev == CMDIPC_CHANNEL_CLOSED) {
        if (status != 0 && status != UV_EOF)
            die("connection failed", status);
        if (!cn.stopping)
            cn_dial();
        else
            cmdipc_registry_close(cn.r, NULL, NULL);
    }
}

static void cn_dial(void) {
    char url[200], id[32];
    cmdipc_connect_opts_t co;
    cmdipc_secure_opts_t so;
    cmdipc_connect_opts_init(&co);
    cmdipc_secure_opts_init(&so);
    so.key = cli_key;
    so.peer_key = &srv_pub;
    co.secure = cn.transport == T_SODIUM ? &so : NULL;
    co.reconnect = 0;
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d",
             cn.transport == T_SODIUM ? "tcp+sodium" : "tcp", tcp_port);
    snprintf(id, sizeof(id), "s%llu", (unsigned long long)++cn.n);
    cn.started = uv_hrtime();
    int rc = cmdipc_connect(cn.r, url, id, &co, NULL);
    if (rc != 0)
        die("connect", rc);
}

static void cn_stage(phase_t *ph) {
    cn.measuring = ph->stage == 1;
    cn.stopping = ph->stage == 2;
}

static int cn_srv_transport;
static void serve_connects(void) { serve_registry("server", cn_srv_transport, 0); }

static bench_result_t run_connects(int transport) {
    uv_loop_t loop;
    char name[64];
    memset(&cn, 0, sizeof(cn));
    cn_srv_transport = cn.transport = transport;
    pid_t pid = start_proc(serve_connects);
    uv_loop_init(&loop);
    cn.loop = &loop;
    bench_lat_init(&cn.lat, 200000);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "client";
    if (cmdipc_registry_new(&loop, &o, &cn.r) != 0)
        die("registry", 0);
    cmdipc_registry_set_channel_cb(cn.r, cn_channel, NULL);
    cn.phase.on_stage = cn_stage;
    phase_start(&cn.phase, &loop);
    cn_dial();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t srv_cpu = bench_stop_child(pid);
    uv_loop_close(&loop);
    snprintf(name, sizeof(name), "ping_pongs/%s/connects",
             transport == T_SODIUM ? "tcp_sodium" : "tcp");
    bench_result_t r = finish(name, cn.measured, &cn.phase, srv_cpu, 1.0, &cn.lat);
    r.unit = transport == T_SODIUM ? "handshakes" : "connects";
    bench_lat_free(&cn.lat);
    return r;
}

/* ===========================================================================
 * In-memory: one loop, and two loops on two threads. */

typedef struct {
    uv_loop_t loop;
    cmdipc_registry_t *r;
    cmdipc_channel_t *end;
    uv_sem_t ready;
} mem_server_t;

static void mem_srv_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                            int status, void *data) {
    (void)ch, (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_CLOSED)
        cmdipc_registry_close(r, NULL, NULL);
}

static void mem_server_setup(mem_server_t *s, uv_loop_t *loop) {
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "server";
    if (cmdipc_registry_new(loop, &o, &s->r) != 0)
        die("registry", 0);
    cmdipc_registry_set_channel_cb(s->r, mem_srv_channel, NULL);
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
    cmdipc_registry_register(s->r, &def, add_fn, NULL, NULL, NULL);
    if (cmdipc_registry_attach(s->r, s->end) != 0)
        die("attach", 0);
}

static void mem_server_thread(void *arg) {
    mem_server_t *s = arg;
    uv_loop_init(&s->loop);
    mem_server_setup(s, &s->loop);
    uv_sem_post(&s->ready);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
}

static bench_result_t run_memory(int threads, int k) {
    uv_loop_t loop;
    uv_thread_t th;
    mem_server_t srv;
    cmdipc_channel_t *cend;
    char name[64];
    memset(&srv, 0, sizeof(srv));
    if (cmdipc_memory_pair("server", "client", &cend, &srv.end) != 0)
        die("pair", 0);
    uv_loop_init(&loop);
    if (threads) {
        uv_sem_init(&srv.ready, 0);
        uv_thread_create(&th, mem_server_thread, &srv);
        uv_sem_wait(&srv.ready);
    } else {
        mem_server_setup(&srv, &loop);
    }
    cc_init(&loop, k, "server");
    cmdipc_registry_set_channel_cb(cc.r, cc_channel, NULL);
    cc.phase.on_stage = cc_stage;
    if (cmdipc_registry_attach(cc.r, cend) != 0)
        die("attach", 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t cpu_extra = 0;
    if (threads) {
        uv_thread_join(&th);
        uv_sem_destroy(&srv.ready);
    }
    uv_loop_close(&loop);
    snprintf(name, sizeof(name), "ping_pongs/memory_%s/cmdipc/%d", threads ? "2threads" : "1loop",
             k);
    /* Self CPU covers both threads. */
    bench_result_t r = finish(name, cc.measured, &cc.phase, cpu_extra, 0, &cc.lat);
    bench_lat_free(&cc.lat);
    json_decref(cc.request);
    return r;
}

/* uv_async json_t* hand-off between two threads: the in-memory baseline. */
typedef struct {
    uv_mutex_t lock;
    json_t **q;
    size_t head, tail, cap;
    uv_async_t async;
} xq_t;

static xq_t to_srv, to_cli;
static int async_k, async_measuring, async_stopping;
static uint64_t async_measured;
static bench_lat_t async_lat;
static uv_loop_t async_srv_loop;
static phase_t async_phase;

static void xq_push(xq_t *q, json_t *v) {
    uv_mutex_lock(&q->lock);
    q->q[q->tail++ % q->cap] = v;
    uv_mutex_unlock(&q->lock);
    uv_async_send(&q->async);
}

static size_t xq_take(xq_t *q, json_t **out, size_t max) {
    size_t n = 0;
    uv_mutex_lock(&q->lock);
    while (q->head != q->tail && n < max)
        out[n++] = q->q[q->head++ % q->cap];
    uv_mutex_unlock(&q->lock);
    return n;
}

static void async_srv_cb(uv_async_t *h) {
    json_t *batch[256];
    size_t n;
    while ((n = xq_take(&to_srv, batch, 256)) > 0) {
        for (size_t i = 0; i < n; i++) {
            json_t *req = batch[i];
            if (json_is_null(req)) { /* stop */
                json_decref(req);
                uv_close((uv_handle_t *)h, NULL);
                return;
            }
            json_t *args = json_object_get(req, "request");
            json_int_t a = json_integer_value(json_object_get(args, "a"));
            json_int_t b = json_integer_value(json_object_get(args, "b"));
            json_t *res = json_pack("{s:O,s:I}", "t", json_object_get(req, "t"), "result",
                                    (json_int_t)(a + b));
            json_decref(req);
            xq_push(&to_cli, res);
        }
    }
}

static void async_srv_thread(void *arg) {
    (void)arg;
    uv_run(&async_srv_loop, UV_RUN_DEFAULT);
}

static void async_send_one(void) {
    json_t *req = json_pack("{s:s,s:{s:i,s:i},s:I}", "commandId", "math.add", "request", "a", 1,
                            "b", 2, "t", (json_int_t)uv_hrtime());
    xq_push(&to_srv, req);
}

static void async_cli_cb(uv_async_t *h) {
    json_t *batch[256];
    size_t n;
    while ((n = xq_take(&to_cli, batch, 256)) > 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t t0 = (uint64_t)json_integer_value(json_object_get(batch[i], "t"));
            json_decref(batch[i]);
            if (async_measuring) {
                bench_lat_add(&async_lat, uv_hrtime() - t0);
                async_measured++;
            }
            if (!async_stopping)
                async_send_one();
        }
    }
    (void)h;
}

static void async_stage(phase_t *ph) {
    if (ph->stage == 1) {
        async_measuring = 1;
    } else {
        async_measuring = 0;
        async_stopping = 1;
        xq_push(&to_srv, json_null());
        uv_close((uv_handle_t *)&to_cli.async, NULL);
    }
}

static bench_result_t run_async_baseline(int k) {
    uv_loop_t loop;
    uv_thread_t th;
    char name[64];
    async_k = k;
    async_measuring = async_stopping = 0;
    async_measured = 0;
    bench_lat_init(&async_lat, 200000);
    uv_loop_init(&loop);
    uv_loop_init(&async_srv_loop);
    xq_t *qs[2] = {&to_srv, &to_cli};
    for (int i = 0; i < 2; i++) {
        uv_mutex_init(&qs[i]->lock);
        qs[i]->cap = 4096;
        qs[i]->q = calloc(qs[i]->cap, sizeof(json_t *));
        qs[i]->head = qs[i]->tail = 0;
    }
    uv_async_init(&async_srv_loop, &to_srv.async, async_srv_cb);
    uv_async_init(&loop, &to_cli.async, async_cli_cb);
    uv_thread_create(&th, async_srv_thread, NULL);
    for (int i = 0; i < k; i++)
        async_send_one();
    async_phase.on_stage = async_stage;
    phase_start(&async_phase, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_thread_join(&th);
    uv_run(&async_srv_loop, UV_RUN_DEFAULT);
    uv_loop_close(&async_srv_loop);
    json_t *left[256];
    size_t n;
    while ((n = xq_take(&to_cli, left, 256)) > 0)
        for (size_t i = 0; i < n; i++)
            json_decref(left[i]);
    uv_loop_close(&loop);
    for (int i = 0; i < 2; i++) {
        free(qs[i]->q);
        uv_mutex_destroy(&qs[i]->lock);
    }
    snprintf(name, sizeof(name), "ping_pongs/memory_2threads/uv_async/%d", k);
    bench_result_t r = finish(name, async_measured, &async_phase, 0, 0, &async_lat);
    bench_lat_free(&async_lat);
    return r;
}

/* ===========================================================================
 * Main. */

static int wanted(const char *name) { return filter == NULL || strstr(name, filter) != NULL; }

int main(int argc, char **argv) {
    seconds = bench_seconds(argc, argv, 2.0);
    filter = argc > 2 ? argv[2] : NULL;
    if (sodium_init() < 0)
        die("sodium", 0);
    signal(SIGPIPE, SIG_IGN);
    snprintf(unix_path, sizeof(unix_path), "/tmp/cmdipc-bench-%d.sock", (int)getpid());
    snprintf(relay_path, sizeof(relay_path), "%s.relay", unix_path);
    if (cmdipc_keypair_generate(&srv_key) != 0 || cmdipc_keypair_generate(&cli_key) != 0)
        die("keys", 0);
    cmdipc_keypair_public(srv_key, &srv_pub);
    cmdipc_keypair_public(cli_key, &cli_pub);

    static const int ks[] = {1, 64};
    for (int t = T_UNIX; t <= T_TCP; t++) {
        const char *label = t == T_UNIX ? "unix" : "tcp";
        for (int ki = 0; ki < 2; ki++) {
            int k = ks[ki];
            char name[96];
            bench_result_t raw = {0}, best = {0}, direct = {0};
            snprintf(name, sizeof(name), "ping_pongs/%s/raw/%d", label, k);
            if (wanted(name)) {
                tcp_port = bench_free_tcp_port();
                raw = run_raw(t, M_RAW, k, label);
                bench_print(&raw, NULL);
            }
            for (int m = M_JSON_READ; m <= M_JSON_8; m++) {
                snprintf(name, sizeof(name), "ping_pongs/%s/%s/%d", label, mode_names[m], k);
                if (!wanted(name))
                    continue;
                tcp_port = bench_free_tcp_port();
                bench_result_t j = run_raw(t, m, k, label);
                bench_print(&j, raw.rate > 0 ? &raw : NULL);
                if (j.rate > best.rate)
                    best = j;
            }
            snprintf(name, sizeof(name), "ping_pongs/%s/cmdipc/%d", label, k);
            if (wanted(name)) {
                tcp_port = bench_free_tcp_port();
                bench_result_t c = run_cmdipc(t, k, label, VIA_NONE);
                bench_print(&c, best.rate > 0 ? &best : NULL);
                if (raw.rate > 0)
                    printf("%-34s %10s vs raw %.2fx\n", "", "", c.rate / raw.rate);
                direct = c;
            }
            /* Three processes on two cores move more with the neighbours
             * than two do: the direct connection, the relay and the hub
             * are measured in ROUNDS interleaved rounds (the first direct
             * one is the figure above), and the medians are compared. */
            snprintf(name, sizeof(name), "ping_pongs/unix_hub/cmdipc/%d", k);
            if (t == T_UNIX && wanted(name)) {
                bench_result_t d[ROUNDS], rl[ROUNDS], h[ROUNDS];
                for (int r = 0; r < ROUNDS; r++) {
                    d[r] = r == 0 && direct.rate > 0 ? direct
                                                     : run_cmdipc(t, k, label, VIA_NONE);
                    rl[r] = run_cmdipc(t, k, "unix_hub", VIA_RELAY);
                    h[r] = run_cmdipc(t, k, "unix_hub", VIA_HUB);
                }
                bench_result_t dm = bench_median(d, ROUNDS),
                               rm = bench_median(rl, ROUNDS),
                               hm = bench_median(h, ROUNDS);
                bench_print(&rm, &dm);
                bench_print(&hm, &dm);
                printf(
                    "%-34s %10s vs relay %.2fx; medians of %d rounds, direct %.0f rt/s\n",
                    "", "", hm.rate / rm.rate, ROUNDS, dm.rate);
            }
        }
    }
    /* The secure transport next to plain TCP: interleaved rounds, medians. */
    for (int ki = 0; ki < 2; ki++) {
        char name[96];
        snprintf(name, sizeof(name), "ping_pongs/tcp_sodium/cmdipc/%d", ks[ki]);
        if (!wanted(name))
            continue;
        bench_result_t plain[ROUNDS], sec[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            tcp_port = bench_free_tcp_port();
            plain[r] = run_cmdipc(T_TCP, ks[ki], "tcp", VIA_NONE);
            tcp_port = bench_free_tcp_port();
            sec[r] = run_cmdipc(T_SODIUM, ks[ki], "tcp_sodium", VIA_NONE);
        }
        bench_result_t pm = bench_median(plain, ROUNDS), sm = bench_median(sec, ROUNDS);
        bench_print(&sm, &pm);
        bench_detail("medians of %d rounds, plain tcp:// %.0f rt/s", ROUNDS, pm.rate);
    }
    if (wanted("ping_pongs/tcp_sodium/connects")) {
        tcp_port = bench_free_tcp_port();
        bench_result_t pc = run_connects(T_TCP);
        bench_print(&pc, NULL);
        tcp_port = bench_free_tcp_port();
        bench_result_t sc = run_connects(T_SODIUM);
        bench_print(&sc, &pc);
    }
    for (int ki = 0; ki < 2; ki++) {
        if (!wanted("memory"))
            break;
        bench_result_t one = run_memory(0, ks[ki]);
        bench_print(&one, NULL);
        /* Both two-thread figures are a cross-thread wake-up per hand-off:
         * interleaved rounds, medians compared. */
        bench_result_t base[ROUNDS], two[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            base[r] = run_async_baseline(ks[ki]);
            two[r] = run_memory(1, ks[ki]);
        }
        bench_result_t bm = bench_median(base, ROUNDS), tm = bench_median(two, ROUNDS);
        bench_print(&bm, NULL);
        bench_print(&tm, &bm);
    }
    unlink(unix_path);
    unlink(relay_path);
    return 0;
}
