/* Benchmark helpers (see bench.h). */
#include <arpa/inet.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "bench.h"

void bench_lat_init(bench_lat_t *l, size_t cap) {
    l->v = malloc(cap * sizeof(*l->v));
    l->n = 0;
    l->cap = l->v ? cap : 0;
    l->seen = 0;
}

void bench_lat_add(bench_lat_t *l, uint64_t ns) {
    l->seen++;
    if (l->n < l->cap) {
        l->v[l->n++] = ns;
        return;
    }
    /* Reservoir sampling keeps a uniform sample of everything seen (with a
     * cheap generator: a getrandom() per sample would cost the client more
     * than what it measures). */
    static uint64_t x = 0x2545f4914f6cdd1dull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t k = x % l->seen;
    if (k < l->cap)
        l->v[k] = ns;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double bench_lat_pct(bench_lat_t *l, double p) {
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
    size_t i = (size_t)((p / 100.0) * (double)(l->n - 1) + 0.5);
    return (double)l->v[i] / 1000.0;
}

void bench_lat_free(bench_lat_t *l) {
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static uint64_t usage_us(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
}

uint64_t bench_cpu_self_us(void) { return usage_us(RUSAGE_SELF); }
uint64_t bench_cpu_children_us(void) { return usage_us(RUSAGE_CHILDREN); }

uint64_t bench_stop_child(pid_t pid) {
    struct rusage ru;
    int st;
    kill(pid, SIGKILL);
    if (wait4(pid, &st, 0, &ru) != pid)
        return 0;
    return (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
}

int bench_free_tcp_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "bench: no free TCP port\n");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

bench_result_t bench_median(const bench_result_t *r, int n) {
    int order[16];
    if (n > 16)
        n = 16;
    for (int a = 0; a < n; a++)
        order[a] = a;
    for (int a = 1; a < n; a++) /* insertion sort by rate */
        for (int b = a; b > 0 && r[order[b]].rate < r[order[b - 1]].rate; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    return r[order[n / 2]];
}

void bench_print(const bench_result_t *r, const bench_result_t *baseline) {
    char ratio[96] = "(baseline)";
    if (baseline != NULL && baseline->rate > 0)
        snprintf(ratio, sizeof(ratio), "%.2fx %s", r->rate / baseline->rate, baseline->name);
    printf("%-34s %10.0f %s/s  p50 %7.1f us  p99 %7.1f us  cpu %6.2f us/op  %s\n", r->name,
           r->rate, r->unit, r->p50_us, r->p99_us, r->cpu_us, ratio);
    fflush(stdout);
}

double bench_seconds(int argc, char **argv, double def) {
    const char *s = argc > 1 ? argv[1] : getenv("CMDIPC_BENCH_SECONDS");
    double d = s ? atof(s) : def;
    return d > 0 ? d : def;
}

void bench_detail(const char *fmt, ...) {
    va_list ap;
    printf("%-34s ", "");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

size_t bench_heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

long bench_status_kib(int pid, const char *field) {
    char path[64], line[256];
    size_t n = strlen(field);
    long v = -1;
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/status");
    else
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

void bench_rbuf_room(bench_rbuf_t *b, char **base, size_t *len) {
    if (b->cap - b->len < 65536) {
        b->cap = b->cap * 2 + 65536;
        b->data = realloc(b->data, b->cap);
        if (b->data == NULL) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
    }
    *base = b->data + b->len;
    *len = b->cap - b->len;
}

void bench_rbuf_lines(bench_rbuf_t *b, size_t n, void (*fn)(void *, const char *, size_t),
                      void *ctx) {
    b->len += n;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(b->data + start, '\n', b->len - start);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - (b->data + start));
        fn(ctx, b->data + start, len);
        start += len + 1;
    }
    memmove(b->data, b->data + start, b->len - start);
    b->len -= start;
}

void bench_uuid4(char out[37]) {
    static unsigned char pool[4096];
    static size_t pos = sizeof(pool);
    static const char hex[] = "0123456789abcdef";
    if (pos + 16 > sizeof(pool)) {
        randombytes_buf(pool, sizeof(pool));
        pos = 0;
    }
    unsigned char *b = pool + pos;
    pos += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = 0;
}

typedef struct {
    uv_write_t req;
    char *buf; /* freed when written, or NULL */
} bench_wreq_t;

static void bench_write_done(uv_write_t *r, int status) {
    (void)status;
    bench_wreq_t *w = (bench_wreq_t *)r;
    free(w->buf);
    free(w);
}

int bench_write(uv_stream_t *stream, char *buf, size_t len, int free_buf) {
    bench_wreq_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    w->buf = free_buf ? buf : NULL;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int rc = uv_write(&w->req, stream, &b, 1, bench_write_done);
    if (rc != 0) {
        free(w->buf);
        free(w);
    }
    return rc;
}

void bench_wbuf_put(bench_wbuf_t *w, const char *s, size_t n) {
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 16384;
        w->data = realloc(w->data, w->cap);
        if (w->data == NULL) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
    }
    memcpy(w->data + w->len, s, n);
    w->len += n;
    w->count++;
}

void bench_wbuf_flush(bench_wbuf_t *w, uv_stream_t *stream) {
    if (w->len == 0)
        return;
    char *buf = w->data;
    size_t len = w->len;
    w->data = NULL;
    w->len = w->cap = 0;
    w->count = 0;
    bench_write(stream, buf, len, 1);
}
