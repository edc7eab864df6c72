/* Benchmark helpers: timing, latency percentiles, CPU accounting and the one
 * output format every figure uses:
 *
 *   <bench>/<case>: <rate> <unit>/s  p50 <us> us  p99 <us> us  cpu <us> us/<op>  <ratio>x <baseline>
 *
 * Each benchmark is a small program (benchmarks are named like libuv's:
 * ping_pongs, pump, million_timers, sizes). They take an optional duration in
 * seconds per figure as argv[1] (default 2) and run in the same process the
 * baselines they compare against. */
#ifndef CMDIPC_BENCH_H
#define CMDIPC_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

/* The lines cmdipc puts on the wire for math.add {"a":1,"b":2} and its
 * answer: what the baselines and the peers send in its place. */
#define REQ_LINE                                                                         \
    "{\"id\":\"6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f\",\"type\":\"execute.command."       \
    "request\",\"commandId\":\"math.add\",\"request\":{\"a\":1,\"b\":2}}\n"
#define RES_LINE                                                                         \
    "{\"id\":\"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\",\"type\":\"execute.command."       \
    "response\",\"thid\":\"6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f\",\"response\":{\"ok\":" \
    "true,\"result\":3}}\n"

/* Latency samples (ns), kept in a bounded reservoir. */
typedef struct bench_lat_s {
    uint64_t *v;
    size_t n, cap;
    uint64_t seen;
} bench_lat_t;

void bench_lat_init(bench_lat_t *l, size_t cap);
void bench_lat_add(bench_lat_t *l, uint64_t ns);
/* Percentile p in [0, 100], in microseconds. */
double bench_lat_pct(bench_lat_t *l, double p);
void bench_lat_free(bench_lat_t *l);

/* CPU time (user + system) of this process and of its waited-for children,
 * in microseconds. */
uint64_t bench_cpu_self_us(void);
uint64_t bench_cpu_children_us(void);

typedef struct bench_result_s {
    const char *name;   /* "ping_pongs/unix/64" */
    const char *unit;   /* "roundtrips" */
    double rate;        /* per second */
    double p50_us, p99_us;
    double cpu_us;      /* per operation, all processes involved */
} bench_result_t;

/* Prints one figure; baseline may be NULL (a baseline itself). */
void bench_print(const bench_result_t *r, const bench_result_t *baseline);

/* The result with the median rate of n (rounds of a figure interleaved with
 * its baseline's, so a noisy neighbour on the machine moves both). */
bench_result_t bench_median(const bench_result_t *r, int n);

/* Kills a forked peer (SIGKILL), reaps it and returns the CPU time it used
 * (user + system), in microseconds. */
uint64_t bench_stop_child(pid_t pid);

/* A TCP port on 127.0.0.1 that nobody listens on right now (bound to port 0,
 * read back, closed); exits the benchmark if there is none. */
int bench_free_tcp_port(void);

/* The duration of each figure, from argv[1] or CMDIPC_BENCH_SECONDS. */
double bench_seconds(int argc, char **argv, double def);

/* A detail line under a figure, indented past the figure's name. */
void bench_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Bytes of heap in use (glibc mallinfo2: uordblks + hblkhd). */
size_t bench_heap_bytes(void);

/* A "Name:  N kB" field of /proc/<pid>/status (pid 0: this process), in KiB;
 * -1 if it cannot be read. */
long bench_status_kib(int pid, const char *field);

/* The read buffer of the naive baselines: NDJSON split with memchr. */
typedef struct bench_rbuf_s {
    char *data;
    size_t len, cap;
} bench_rbuf_t;

/* Room for the next read, at least 64 KiB (for a libuv alloc callback). */
void bench_rbuf_room(bench_rbuf_t *b, char **base, size_t *len);
/* n more bytes were read: calls fn(ctx, line, length) for each complete line
 * (without its '\n') and keeps the partial line. */
void bench_rbuf_lines(bench_rbuf_t *b, size_t n, void (*fn)(void *, const char *, size_t),
                      void *ctx);

/* A fresh lowercase UUIDv4 from a buffer of CSPRNG output refilled 4 KiB at
 * a time (as cmdipc does), so the baselines pay for JSON, not getrandom(). */
void bench_uuid4(char out[37]);

/* The output batch of the naive baselines. */
typedef struct bench_wbuf_s {
    char *data;
    size_t len, cap;
    unsigned count; /* lines queued since the last flush */
} bench_wbuf_t;

void bench_wbuf_put(bench_wbuf_t *w, const char *s, size_t n);
/* Hands what is queued to one uv_write (the buffer goes with the request). */
void bench_wbuf_flush(bench_wbuf_t *w, uv_stream_t *stream);
/* One uv_write of buf; free_buf: buf is malloc'd and freed once written.
 * Returns uv_write's status. */
int bench_write(uv_stream_t *stream, char *buf, size_t len, int free_buf);

#endif
