/* A foreign peer for the stream transport tests (see rawpeer.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "rawpeer.h"
#include "schema_check.h"

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    ASSERT_GE(fl, 0);
    ASSERT_OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

void rp_wrap(rp_t *p, int fd) {
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    set_nonblock(fd);
}

int rp_connect(rp_t *p, const char *path) {
    struct sockaddr_un sun;
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    ASSERT_LT(strlen(path), sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    /* A listening Unix socket completes the connect at once (backlog). */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    rp_wrap(p, fd);
    return 0;
}

void rp_close(rp_t *p) {
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}

size_t rp_read(rp_t *p) {
    size_t got = 0;
    if (p->fd < 0)
        return 0;
    for (;;) {
        if (p->cap - p->len < 65536) {
            size_t cap = p->cap ? p->cap * 2 : 131072;
            char *b = realloc(p->buf, cap);
            ASSERT_NOT_NULL(b);
            p->buf = b;
            p->cap = cap;
        }
        ssize_t n = read(p->fd, p->buf + p->len, p->cap - p->len);
        if (n > 0) {
            p->len += (size_t)n;
            p->total += (uint64_t)n;
            got += (size_t)n;
            continue;
        }
        if (n == 0) {
            p->eof = 1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            p->err = -errno;
        }
        return got;
    }
}

char *rp_line(rp_t *p, size_t *n) {
    char *nl = p->len ? memchr(p->buf, '\n', p->len) : NULL;
    if (nl == NULL)
        return NULL;
    size_t len = (size_t)(nl - p->buf);
    char *line = malloc(len + 1);
    ASSERT_NOT_NULL(line);
    memcpy(line, p->buf, len);
    line[len] = '\0';
    memmove(p->buf, nl + 1, p->len - len - 1);
    p->len -= len + 1;
    if (n != NULL)
        *n = len;
    return line;
}

int rp_closed(const rp_t *p) { return p->eof || p->err != 0; }

int rp_unread(const rp_t *p) {
    int n = 0;
    ASSERT_OK(ioctl(p->fd, SIOCOUTQ, &n));
    return n;
}

void rp_pump(uv_loop_t *loop, int fd, int max_ms) {
    struct pollfd pf[2];
    int t = uv_backend_timeout(loop);
    if (t < 0 || t > max_ms)
        t = max_ms;
    pf[0].fd = uv_backend_fd(loop);
    pf[0].events = POLLIN;
    pf[1].fd = fd;
    pf[1].events = POLLIN;
    poll(pf, fd >= 0 ? 2 : 1, t);
    uv_run(loop, UV_RUN_NOWAIT);
}

int rp_write_all(uv_loop_t *loop, rp_t *p, const void *buf, size_t len,
                 uint64_t timeout_ms) {
    const char *b = buf;
    uint64_t t0 = uv_hrtime();
    while (len > 0) {
        ssize_t n = send(p->fd, b, len, MSG_NOSIGNAL);
        if (n > 0) {
            b += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        /* Full: let the other end read; read what it sends meanwhile. */
        struct pollfd pf[2] = {{uv_backend_fd(loop), POLLIN, 0}, {p->fd, POLLOUT, 0}};
        poll(pf, 2, 5);
        uv_run(loop, UV_RUN_NOWAIT);
        rp_read(p);
        if ((uv_hrtime() - t0) / 1000000 > timeout_ms) {
            fprintf(stderr, "rp_write_all: %zu bytes still unsent after %llu ms\n", len,
                    (unsigned long long)timeout_ms);
            ASSERT(0);
        }
    }
    return 0;
}

int rp_write_str(uv_loop_t *loop, rp_t *p, const char *s) {
    return rp_write_all(loop, p, s, strlen(s), 10000);
}

char *rp_wait_line(uv_loop_t *loop, rp_t *p, uint64_t timeout_ms) {
    uint64_t t0 = uv_hrtime();
    char *line;
    while ((line = rp_line(p, NULL)) == NULL) {
        rp_read(p);
        if ((line = rp_line(p, NULL)) != NULL)
            break;
        if (rp_closed(p)) {
            fprintf(stderr, "rp_wait_line: closed by the other end (%d)\n", p->err);
            ASSERT(0);
        }
        if ((uv_hrtime() - t0) / 1000000 > timeout_ms) {
            fprintf(stderr, "rp_wait_line: no line after %llu ms\n",
                    (unsigned long long)timeout_ms);
            ASSERT(0);
        }
        rp_pump(loop, p->fd, 5);
    }
    return line;
}

void rp_wait_closed(uv_loop_t *loop, rp_t *p, uint64_t timeout_ms) {
    uint64_t t0 = uv_hrtime();
    for (;;) {
        rp_read(p);
        p->len = 0;
        if (rp_closed(p))
            return;
        if ((uv_hrtime() - t0) / 1000000 > timeout_ms) {
            fprintf(stderr, "rp_wait_closed: still open after %llu ms\n",
                    (unsigned long long)timeout_ms);
            ASSERT(0);
        }
        rp_pump(loop, p->fd, 5);
    }
}

void rp_wait_consumed(uv_loop_t *loop, rp_t *p, uint64_t timeout_ms) {
    RP_PUMP_UNTIL(loop, -1, rp_unread(p) == 0, timeout_ms);
}

static void run_for_timer_cb(uv_timer_t *t) { *(int *)t->data = 1; }

void rp_run_for(uv_loop_t *loop, int fd, uint64_t ms) {
    uv_timer_t t;
    int done = 0;
    ASSERT_OK(uv_timer_init(loop, &t));
    t.data = &done;
    ASSERT_OK(uv_timer_start(&t, run_for_timer_cb, ms, 0));
    while (!done)
        rp_pump(loop, fd, 5);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

cmdipc__link_t *rp_link(cmdipc_channel_t *ch) {
    ASSERT_NOT_NULL(ch);
    return cmdipc_channel_impl(ch);
}

cmdipc__conn_t *rp_conn(cmdipc_channel_t *ch) { return rp_link(ch)->conn; }

int rp_channel_fd(cmdipc_channel_t *ch) {
    cmdipc__conn_t *c = rp_conn(ch);
    uv_os_fd_t fd;
    if (c == NULL || uv_fileno(&c->rio.handle, &fd) != 0)
        return -1;
    return fd;
}

int rp_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* ---------------------------------------------------------------------------
 * Logs and channel events. */

void (*rp_log_hook)(cmdipc_registry_t *r, const char *message);
static char log_lines[RP_LOG_MAX][512];
static size_t log_n;

void rp_log_cb(cmdipc_registry_t *r, cmdipc_log_level_t level, const char *message,
               void *data) {
    (void)level, (void)data;
    snprintf(log_lines[log_n % RP_LOG_MAX], sizeof(log_lines[0]), "[%s] %s",
             r ? cmdipc_registry_id(r) : "-", message);
    log_n++;
    if (rp_log_hook != NULL)
        rp_log_hook(r, message);
    if (getenv("RP_LOG") != NULL)
        fprintf(stderr, "log [%s] %s\n", r ? cmdipc_registry_id(r) : "-", message);
}

int rp_log_count(const char *needle) {
    int n = 0;
    size_t first = log_n > RP_LOG_MAX ? log_n - RP_LOG_MAX : 0;
    for (size_t i = first; i < log_n; i++)
        if (strstr(log_lines[i % RP_LOG_MAX], needle) != NULL)
            n++;
    return n;
}

void rp_log_clear(void) { log_n = 0; }

cmdipc_registry_t *rp_registry(uv_loop_t *loop, const char *id, const char *router) {
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    o.router_channel = router;
    o.log_cb = rp_log_cb;
    o.log_level = CMDIPC_LOG_INFO;
    return tu_registry_opts(loop, &o);
}

rp_chev_t rp_chev;

void rp_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                   int status, void *data) {
    (void)r, (void)data;
    switch (ev) {
        case CMDIPC_CHANNEL_ATTACHED:
            rp_chev.attached++;
            break;
        case CMDIPC_CHANNEL_UP:
            rp_chev.up++;
            break;
        case CMDIPC_CHANNEL_DOWN:
            rp_chev.down++;
            rp_chev.last_down_status = status;
            break;
        case CMDIPC_CHANNEL_CLOSED:
            rp_chev.closed++;
            rp_chev.last_closed_status = status;
            snprintf(rp_chev.last_closed_id, sizeof(rp_chev.last_closed_id), "%s",
                     cmdipc_channel_id(ch));
            break;
    }
}

void rp_unix_url(char *url, size_t url_size, char *path, const char *tag) {
    harness_scratch_path(path, HARNESS_PATH_MAX, tag);
    snprintf(url, url_size, "unix://%s", path);
}

json_t *rp_check_line(const char *line) {
    json_error_t e;
    char err[256];
    json_t *v = json_loads(line, 0, &e);
    if (v == NULL)
        fprintf(stderr, "not JSON (%s): %s\n", e.text, line);
    ASSERT_NOT_NULL(v);
    ASSERT(json_is_object(v));
    char *again = json_dumps(v, JSON_COMPACT);
    ASSERT_NOT_NULL(again);
    ASSERT_STR_EQ(line, again); /* compact, one line, members in wire order */
    free(again);
    if (cmdipc_test_emission_check(v, err, sizeof(err)) != 0) {
        fprintf(stderr, "schema: %s: %s\n", err, line);
        ASSERT(0);
    }
    return v;
}

/* ---------------------------------------------------------------------------
 * A hub and its peers. */

static cmdipc_call_t *held[RP_HELD_MAX];
size_t rp_n_held;
uint64_t rp_held_total;

void rp_hold_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request, (void)data;
    ASSERT_LT(rp_n_held, RP_HELD_MAX);
    held[rp_n_held++] = call;
    rp_held_total++;
}

void rp_answer_held(size_t n) {
    ASSERT_LE(n, rp_n_held);
    while (n-- > 0)
        ASSERT_OK(cmdipc_call_reply(held[--rp_n_held], NULL));
}

cmdipc_stats_t rp_stats(const cmdipc_registry_t *r) {
    cmdipc_stats_t s;
    cmdipc_registry_stats(r, &s);
    return s;
}

const char *rp_str(const json_t *v, const char *k) {
    return json_string_value(json_object_get(v, k));
}

void rp_hub_new(uv_loop_t *loop, rp_hub_t *h, const char *tag,
                const cmdipc_listen_opts_t *lo) {
    memset(&rp_chev, 0, sizeof(rp_chev));
    h->r = rp_registry(loop, "hub", NULL);
    cmdipc_registry_set_channel_cb(h->r, rp_channel_cb, NULL);
    tu_register(loop, h->r, "echo", tu_echo_fn, NULL);
    tu_register(loop, h->r, "fail", tu_fail_fn, NULL);
    tu_register(loop, h->r, "hold", rp_hold_fn, NULL);
    rp_unix_url(h->url, sizeof(h->url), h->path, tag);
    ASSERT_OK(cmdipc_listen(h->r, h->url, lo, &h->l));
}

void rp_peer_open(uv_loop_t *loop, rp_hub_t *h, rp_t *p) {
    ASSERT_OK(rp_connect(p, h->path));
    char *line = rp_wait_line(loop, p, 10000);
    json_t *v = rp_check_line(line);
    ASSERT_STR_EQ(rp_str(v, "type"), "list.commands.request");
    json_decref(v);
    free(line);
}

json_t *rp_peer_call(uv_loop_t *loop, rp_t *p, const char *id, const char *cmd,
                     const char *request) {
    char line[4096];
    snprintf(
        line, sizeof(line),
        "{\"type\":\"execute.command.request\",\"id\":\"%s\",\"commandId\":\"%s\"%s%s}\n",
        id, cmd, request ? ",\"request\":" : "", request ? request : "");
    ASSERT_OK(rp_write_str(loop, p, line));
    json_t *v;
    for (;;) {
        char *resp = rp_wait_line(loop, p, 10000);
        v = rp_check_line(resp);
        free(resp);
        if (strcmp(rp_str(v, "type"), "event") != 0)
            break;
        json_decref(v);
    }
    ASSERT_STR_EQ(rp_str(v, "type"), "execute.command.response");
    ASSERT_STR_EQ(rp_str(v, "thid"), id);
    return v;
}

void rp_peer_ping(uv_loop_t *loop, rp_t *p, int n) {
    char id[32], req[32];
    snprintf(id, sizeof(id), "ping-%d", n);
    snprintf(req, sizeof(req), "{\"n\":%d}", n);
    json_t *v = rp_peer_call(loop, p, id, "echo", req);
    json_t *resp = json_object_get(v, "response");
    ASSERT(json_is_true(json_object_get(resp, "ok")));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(resp, "result"), "n")),
              n);
    json_decref(v);
}
