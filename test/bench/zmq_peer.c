/* zmq_peer — ZeroMQ round trips over ipc:// and TCP loopback with the bytes
 * cmdipc puts on the wire for math.add (a 126-byte request line, a 160-byte
 * response line) as opaque messages: no JSON work. The server is a forked
 * process.
 *
 *   zmq/ipc/req_rep/1          REQ/REP, one request outstanding
 *   zmq/ipc/dealer_router/64   DEALER/ROUTER, 64 requests outstanding
 *   zmq/tcp/req_rep/1, zmq/tcp/dealer_router/64   the same over tcp://127.0.0.1
 *
 * Built and run by test/bench/peers.sh (not part of make bench):
 *   cc zmq_peer.c bench.c $(pkg-config --cflags --libs libzmq libsodium libuv)
 *
 * Usage: zmq_peer [seconds per figure] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "bench.h"

static double seconds = 2.0;
static char endpoint[128];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "zmq_peer: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* The server: answers every request with the response bytes. */
static void serve(int router, int ready_fd) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, router ? ZMQ_ROUTER : ZMQ_REP);
    char buf[512];
    if (zmq_bind(s, endpoint) != 0)
        die("bind");
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    close(ready_fd);
    for (;;) {
        if (router) {
            zmq_msg_t id;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, s, 0) < 0)
                die("recv");
            if (zmq_recv(s, buf, sizeof(buf), 0) < 0)
                die("recv");
            zmq_msg_send(&id, s, ZMQ_SNDMORE);
            zmq_msg_close(&id);
        } else if (zmq_recv(s, buf, sizeof(buf), 0) < 0) {
            die("recv");
        }
        if (zmq_send(s, RES_LINE, sizeof(RES_LINE) - 1, 0) < 0)
            die("send");
    }
}

static pid_t start_server(int router) {
    int fds[2];
    char c;
    if (pipe(fds) != 0)
        die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        serve(router, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1)
        die("server did not start");
    close(fds[0]);
    return pid;
}

/* The client keeps k requests outstanding for 200 ms of warm-up, then
 * measures for `seconds`. Replies come back in order (one connection). */
static bench_result_t run(int router, int k, const char *name) {
    char buf[512];
    uint64_t sent_at[64];
    size_t head = 0, tail = 0;
    bench_lat_t lat;
    bench_lat_init(&lat, 200000);
    pid_t pid = start_server(router);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, router ? ZMQ_DEALER : ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(s, endpoint) != 0)
        die("connect");
    for (int i = 0; i < k; i++) {
        sent_at[tail++ % 64] = now_ns();
        if (zmq_send(s, REQ_LINE, sizeof(REQ_LINE) - 1, 0) < 0)
            die("send");
    }
    uint64_t start = now_ns(), t0 = 0, cpu0 = 0, measured = 0;
    uint64_t warm_end = start + 200000000u;
    uint64_t end = warm_end + (uint64_t)(seconds * 1e9);
    int measuring = 0;
    for (;;) {
        if (zmq_recv(s, buf, sizeof(buf), 0) < 0)
            die("recv");
        uint64_t t = now_ns();
        uint64_t at = sent_at[head++ % 64];
        if (measuring) {
            bench_lat_add(&lat, t - at);
            measured++;
        }
        if (!measuring && t >= warm_end) {
            measuring = 1;
            t0 = t;
            cpu0 = bench_cpu_self_us();
        }
        if (t >= end)
            break;
        sent_at[tail++ % 64] = now_ns();
        if (zmq_send(s, REQ_LINE, sizeof(REQ_LINE) - 1, 0) < 0)
            die("send");
    }
    uint64_t t1 = now_ns(), cpu1 = bench_cpu_self_us();
    zmq_close(s);
    zmq_ctx_term(ctx);
    uint64_t srv_cpu = bench_stop_child(pid);
    bench_result_t r;
    double secs = (double)(t1 - t0) / 1e9;
    r.name = name;
    r.unit = "rt";
    r.rate = (double)measured / secs;
    r.p50_us = bench_lat_pct(&lat, 50);
    r.p99_us = bench_lat_pct(&lat, 99);
    /* The server ran for the warm-up too: count its share of the window. */
    double cpu = (double)(cpu1 - cpu0) + (double)srv_cpu * seconds / (seconds + 0.2);
    r.cpu_us = measured ? cpu / (double)measured : 0;
    bench_lat_free(&lat);
    return r;
}

int main(int argc, char **argv) {
    seconds = bench_seconds(argc, argv, 2.0);
    snprintf(endpoint, sizeof(endpoint), "ipc:///tmp/cmdipc-zmq-%d.ipc", (int)getpid());
    bench_result_t a = run(0, 1, "zmq/ipc/req_rep/1");
    bench_print(&a, NULL);
    bench_result_t b = run(1, 64, "zmq/ipc/dealer_router/64");
    bench_print(&b, NULL);
    unlink(endpoint + strlen("ipc://"));
    snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", bench_free_tcp_port());
    a = run(0, 1, "zmq/tcp/req_rep/1");
    bench_print(&a, NULL);
    snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", bench_free_tcp_port());
    b = run(1, 64, "zmq/tcp/dealer_router/64");
    bench_print(&b, NULL);
    return 0;
}
