/* million_timers — 1,000,000 pending calls with timeouts (libuv's
 * million_timers, for cmdipc_registry_execute), against the same number of
 * plain uv_timer_t with the same timeouts measured in the same run:
 *
 *   million_timers/uv_timer   1,000,000 uv_timer_t in one array (as libuv's
 *                             benchmark), started with the timeouts below
 *   million_timers/cmdipc     1,000,000 executes through a channel whose peer
 *                             never answers, each with its own timeout_ms
 *
 * Timeouts are spread over [1 s, 2 s): the i-th of N gets 1000 + 1000 * i / N
 * ms (1,000 calls per millisecond, in creation order, like libuv's). The
 * channel is a sink written against the public channel API (cmdipc/channel.h)
 * whose send() frees the message, so the figure is what a pending call costs
 * the registry (its cmdipc_req_t, its wire-id map entry and its deadline heap
 * slot), not a transport queue; max_outbound_pending is 0 (no cap).
 *
 * Printed: calls created per second (the rate), the lateness of the callbacks
 * after their deadline (p50, p99; the worst in the detail line), CPU per call
 * (creating and expiring), then the memory per pending call (heap in use,
 * mallinfo2, and resident set, both as deltas over N), the time to create them
 * all, and when the last one expired. Targets: <= 300 bytes per pending call,
 * every callback within 2 s of its deadline.
 *
 * Usage: million_timers [seconds (unused: the timeouts set the duration)] [N] */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmdipc.h>

#include "bench.h"
#include "sink.h"

static size_t N = 1000000;

static void die(const char *what, int rc) {
    fprintf(stderr, "million_timers: %s: %s\n", what,
            rc ? cmdipc_strerror(rc) : "failed");
    exit(1);
}

static uint64_t timeout_of(size_t i) {
    return 1000 + (uint64_t)(1000.0 * (double)i / (double)N);
}

/* What one run measured. */
typedef struct run_s {
    uint64_t start_hr;   /* uv_hrtime when the first was created (deadline base) */
    uint64_t created_hr; /* ... when the last was */
    uint64_t last_hr;    /* when the last callback ran */
    uint64_t cpu0, cpu1;
    size_t heap0, heap1, heap_end;
    long rss0, rss1;
    size_t fired;
    uint64_t worst_ns;
    bench_lat_t late;
} run_t;

static run_t run;

static void run_begin(uv_loop_t *loop) {
    memset(&run, 0, sizeof(run));
    bench_lat_init(&run.late, 200000);
    malloc_trim(0);
    run.heap0 = bench_heap_bytes();
    run.rss0 = bench_status_kib(0, "VmRSS");
    run.cpu0 = bench_cpu_self_us();
    uv_update_time(loop);
    run.start_hr = uv_hrtime();
}

static void run_created(void) {
    run.created_hr = uv_hrtime();
    run.heap1 = bench_heap_bytes();
    run.rss1 = bench_status_kib(0, "VmRSS");
}

static void run_fired(uint64_t timeout_ms) {
    uint64_t now = uv_hrtime();
    uint64_t deadline = run.start_hr + timeout_ms * 1000000;
    uint64_t late = now > deadline ? now - deadline : 0;
    if (late > run.worst_ns)
        run.worst_ns = late;
    bench_lat_add(&run.late, late);
    run.last_hr = now;
    run.fired++;
}

static bench_result_t run_end(const char *name, const bench_result_t *base) {
    bench_result_t r;
    run.cpu1 = bench_cpu_self_us();
    run.heap_end = bench_heap_bytes();
    r.name = name;
    r.unit = "calls";
    double create_s = (double)(run.created_hr - run.start_hr) / 1e9;
    r.rate = create_s > 0 ? (double)N / create_s : 0;
    r.p50_us = bench_lat_pct(&run.late, 50);
    r.p99_us = bench_lat_pct(&run.late, 99);
    r.cpu_us = (double)(run.cpu1 - run.cpu0) / (double)N;
    bench_print(&r, base);
    double heap_per = (double)(run.heap1 - run.heap0) / (double)N;
    double rss_per = (double)(run.rss1 - run.rss0) * 1024.0 / (double)N;
    double last_deadline_s = (double)timeout_of(N - 1) / 1000.0;
    double all_s = (double)(run.last_hr - run.start_hr) / 1e9;
    bench_detail("%.0f bytes/pending call (heap), %.0f bytes (RSS); created in %.3f s; "
                 "all %zu expired %.3f s after the start (last deadline %.3f s); "
                 "worst lateness %.1f ms; heap retained after: %lld bytes",
                 heap_per, rss_per, create_s, run.fired, all_s, last_deadline_s,
                 (double)run.worst_ns / 1e6,
                 (long long)run.heap_end - (long long)run.heap0);
    bench_lat_free(&run.late);
    return r;
}

/* ===========================================================================
 * Baseline: uv_timer_t. */

static void timer_cb(uv_timer_t *t) {
    run_fired((uint64_t)(uintptr_t)t->data);
    uv_close((uv_handle_t *)t, NULL);
}

static bench_result_t run_uv(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    run_begin(&loop);
    uv_timer_t *timers = malloc(N * sizeof(*timers));
    if (timers == NULL)
        die("out of memory", 0);
    for (size_t i = 0; i < N; i++) {
        uint64_t to = timeout_of(i);
        uv_timer_init(&loop, &timers[i]);
        timers[i].data = (void *)(uintptr_t)to;
        uv_timer_start(&timers[i], timer_cb, to, 0);
    }
    run_created();
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0 || run.fired != N)
        die("timers", 0);
    free(timers);
    return run_end("million_timers/uv_timer", NULL);
}

/* ===========================================================================
 * cmdipc: executes through a sink channel. */

static cmdipc_registry_t *reg;

static void exec_done(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                      void *data) {
    (void)req, (void)result;
    if (status != CMDIPC_ETIMEDOUT) {
        fprintf(stderr, "million_timers: unexpected answer: %s\n", msg);
        exit(1);
    }
    run_fired((uint64_t)(uintptr_t)data);
    if (run.fired == N) {
        cmdipc_stats_t st;
        cmdipc_registry_stats(reg, &st);
        if (st.timeouts != N)
            die("timeouts not counted", 0);
        cmdipc_registry_close(reg, NULL, NULL);
    }
}

static bench_result_t run_cmdipc(const bench_result_t *base) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "caller";
    o.router_channel = "sink";
    o.max_outbound_pending = 0; /* no cap */
    if (cmdipc_registry_new(&loop, &o, &reg) != 0)
        die("registry", 0);
    int rc = bench_sink_attach(reg, "sink");
    if (rc != 0)
        die("sink channel", rc);
    uv_run(&loop, UV_RUN_NOWAIT); /* the attach handshake */

    json_t *request = json_pack("{s:i}", "n", 1);
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    run_begin(&loop);
    for (size_t i = 0; i < N; i++) {
        eo.timeout_ms = timeout_of(i);
        rc = cmdipc_registry_execute(reg, "bench.never", request, &eo, exec_done,
                                     (void *)(uintptr_t)eo.timeout_ms, NULL);
        if (rc != 0)
            die("execute", rc);
    }
    run_created();
    json_decref(request);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0 || run.fired != N)
        die("loop", 0);
    return run_end("million_timers/cmdipc", base);
}

int main(int argc, char **argv) {
    if (argc > 2 && atol(argv[2]) > 0)
        N = (size_t)atol(argv[2]);
    bench_result_t base = run_uv();
    double uv_bytes = (double)(run.heap1 - run.heap0) / (double)N;
    run_cmdipc(&base);
    double bytes = (double)(run.heap1 - run.heap0) / (double)N;
    double worst_ms = (double)run.worst_ns / 1e6;
    bench_detail("memory %.2fx uv_timer_t's; targets: <= 300 bytes/pending call: %s; "
                 "all within 2 s of their deadline: %s",
                 uv_bytes > 0 ? bytes / uv_bytes : 0, bytes <= 300 ? "ok" : "MISSED",
                 worst_ms <= 2000 ? "ok" : "MISSED");
    return 0;
}
