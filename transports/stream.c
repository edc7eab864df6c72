/* cmdipc — NDJSON over any libuv stream: the line splitter, the write
 * batcher, limits and close, shared by Unix sockets, TCP, stdio and spawned
 * children.
 *
 * Reading: one buffer per connection; each read appends to it, complete lines
 * are handed to the registry in place (no copy), and the partial line left
 * at the end is moved to the front only when the buffer needs room, so the
 * splitter never copies more than it reads. A line longer than the limit
 * closes the connection: the stream cannot be trusted further.
 *
 * Writing: messages are encoded into a pending buffer; at the end of the
 * loop iteration (uv_check, or uv_prepare before the loop blocks) the whole
 * buffer goes out in one uv_write while the next one fills. Beyond
 * max_send_queue bytes a send is refused (CMDIPC_EOVERLOAD: the registry
 * then fails the call or cuts the peer off as a slow consumer); a write
 * without progress, or a queue above the soft limit, for write_stall_ms cuts
 * the peer off too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport_int.h"

#define READ_CHUNK  (64 * 1024) /* the most a read adds beyond the line limit */
#define READ_MIN    (16 * 1024) /* free room asked for each read */
#define KEEP_BUFFER (16 * 1024) /* an idle connection keeps buffers this large */
/* Messages queued before a mid-batch flush: two thirds of the previous read
 * batch on the connection, within [FLUSH_MIN, FLUSH_MAX]. */
#define FLUSH_MIN   8
#define FLUSH_MAX   16
#define FLUSH_BYTES (16 * 1024)

enum { C_OPEN = 0, C_DRAINING, C_CLOSING };

static uint64_t bytes_moved;

uint64_t cmdipc__stream_bytes_moved(void) { return bytes_moved; }

/* After a burst, an empty buffer larger than an idle connection needs goes
 * back to the allocator. */
static void trim_buffer(char **p, size_t *cap, size_t used) {
    if (used == 0 && *cap > KEEP_BUFFER) {
        free(*p);
        *p = NULL;
        *cap = 0;
    }
}


void cmdipc__stream_limits_default(cmdipc__stream_limits_t *l) {
    cmdipc_limits_init(&l->limits);
    l->max_send_queue = 8u * 1024 * 1024;
    l->soft_send_queue = 2u * 1024 * 1024;
    l->write_stall_ms = 10000;
}

static cmdipc_registry_t *conn_reg(const cmdipc__conn_t *c) {
    return c->link && c->link->ch ? cmdipc_channel_registry(c->link->ch) : NULL;
}

/* ---------------------------------------------------------------------------
 * Closing. */

static void conn_free(cmdipc__conn_t *c) {
    if (c->filter != NULL)
        c->filter->destroy(c);
    free(c->fbuf);
    cmdipc__buf_free(&c->sealed);
    free(c->rbuf);
    cmdipc__buf_free(&c->pending);
    cmdipc__buf_free(&c->inflight);
    free(c);
}

static void conn_handle_closed(uv_handle_t *h) {
    cmdipc__conn_t *c = h->data;
    if (c->external && (h == (uv_handle_t *)c->rs || h == (uv_handle_t *)c->ws)) {
        /* The application's stream: given back, its data field restored. */
        int w = h == (uv_handle_t *)c->ws && c->ws != c->rs;
        h->data = c->saved_data[w];
        if (c->release != NULL)
            c->release((uv_stream_t *)h, c->release_data);
    }
    if (--c->open_handles > 0)
        return;
    cmdipc__link_t *link = c->link;
    int status = c->status;
    if (link != NULL) {
        link->conn = NULL;
        conn_free(c);
        link->conn_closed(link, status);
    } else {
        conn_free(c);
    }
}

static void close_handle(cmdipc__conn_t *c, uv_handle_t *h) {
    if (h->loop == NULL || uv_is_closing(h))
        return;
    h->data = c;
    uv_close(h, conn_handle_closed);
}

/* Closes every handle; the link hears about it when the last one closed. */
static void conn_destroy(cmdipc__conn_t *c) {
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    close_handle(c, c->rs != NULL ? (uv_handle_t *)c->rs : &c->rio.handle);
    if (c->two)
        close_handle(c, c->ws != NULL ? (uv_handle_t *)c->ws : &c->wio.handle);
    close_handle(c, (uv_handle_t *)&c->check);
    close_handle(c, (uv_handle_t *)&c->prepare);
    close_handle(c, (uv_handle_t *)&c->idle);
    close_handle(c, (uv_handle_t *)&c->timer);
    close_handle(c, (uv_handle_t *)&c->ftimer); /* a filter's, when initialised */
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
    (void)status;
    conn_destroy(req->data);
}

static void flush(cmdipc__conn_t *c);

static void start_shutdown(cmdipc__conn_t *c) {
    if (c->filter != NULL && !c->final_sent && !c->write_failed) {
        /* A secure stream ends with its FINAL frame. */
        c->final_sent = c->want_final = 1;
        flush(c);
        if (c->writing || c->state == C_CLOSING)
            return; /* write_cb comes back here */
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, c->ws, shutdown_cb) != 0)
        conn_destroy(c);
}

void cmdipc__conn_close(cmdipc__conn_t *c, int graceful, int status) {
    if (c->state == C_CLOSING)
        return;
    if (c->status == 0)
        c->status = status;
    /* A connection still connecting has sent nothing: closing it is not
     * waiting for the kernel to give up on the connect (a far host dropping
     * SYNs would hold the close for minutes); its connect callback then
     * sees UV_ECANCELED. */
    if (!graceful || c->connecting) {
        conn_destroy(c);
        return;
    }
    if (c->state == C_DRAINING)
        return;
    c->state = C_DRAINING;
    if (c->reading) {
        uv_read_stop(c->rs);
        c->reading = 0;
    }
    if (!c->writing)
        flush(c);
    if (!c->writing)
        start_shutdown(c);
}

/* The connection cannot go on (read error, limit, slow consumer). */
static void conn_fail(cmdipc__conn_t *c, int status, const char *why) {
    cmdipc_registry_t *r = conn_reg(c);
    if (c->state == C_CLOSING)
        return;
    if (r != NULL && status != UV_EOF)
        cmdipc_log(r,
                    status == UV_EPIPE || status == UV_ECONNRESET ? CMDIPC_LOG_INFO
                                                                   : CMDIPC_LOG_WARN,
                    "channel %s: closing the connection: %s", cmdipc_channel_id(c->link->ch),
                    why ? why : cmdipc_strerror(status));
    c->status = status;
    conn_destroy(c);
}

/* ---------------------------------------------------------------------------
 * Writing. */

static size_t queued_bytes(const cmdipc__conn_t *c) {
    return c->pending.len + (c->writing ? c->inflight.len : 0);
}

static void arm_timer(cmdipc__conn_t *c);

/* A write failed. If the peer merely stopped reading (EPIPE, ECONNRESET)
 * while we still read, what it sent before is still in our socket buffer:
 * stop writing and keep reading until its end, so nothing it sent is lost. */
static void write_failed(cmdipc__conn_t *c, int status) {
    if (c->state == C_OPEN && c->reading && (status == UV_EPIPE || status == UV_ECONNRESET)) {
        c->write_failed = status;
        c->pending.len = 0;
        c->pending_msgs = 0;
        uv_check_stop(&c->check);
        uv_prepare_stop(&c->prepare);
        return;
    }
    conn_fail(c, status, NULL);
}

static void write_cb(uv_write_t *req, int status) {
    cmdipc__conn_t *c = req->data;
    c->writing = 0;
    c->inflight.len = 0;
    if (status < 0) {
        if (c->state != C_CLOSING)
            write_failed(c, status);
        return;
    }
    if (c->state == C_CLOSING)
        return;
    trim_buffer(&c->inflight.data, &c->inflight.cap, 0);
    if (c->pending.len > 0 || c->ctl_pending)
        flush(c);
    if (!c->writing) {
        if (c->state == C_DRAINING)
            start_shutdown(c);
        else
            uv_timer_stop(&c->timer);
    }
}

/* write(2) on the stream's descriptor: what uv_try_write does, minus its
 * bookkeeping, valid only while libuv has no write queued on the stream
 * (c->writing is 0). Returns the bytes written, UV_EAGAIN, an error, or
 * UV_ENOTSUP for a handle without a descriptor. */
static int direct_write(cmdipc__conn_t *c, const char *p, size_t n) {
    if (c->wfd < 0)
        return UV_ENOTSUP;
    ssize_t w;
    do
        w = write(c->wfd, p, n);
    while (w < 0 && errno == EINTR);
    if (w >= 0)
        return (int)w;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return UV_EAGAIN;
    return uv_translate_sys_error(errno);
}

/* Sends what is pending: straight into the socket when it takes it all
 * (uv_try_write: no request, no callback), else through uv_write, with the
 * next batch filling up meanwhile. */
static void flush(cmdipc__conn_t *c) {
    if (c->filter != NULL && !c->writing && c->state != C_CLOSING && !c->write_failed &&
        (c->pending.len > 0 || c->ctl_pending || c->want_final)) {
        /* The batch of lines becomes frames (secure.c); they go out below. */
        int final = c->want_final;
        c->ctl_pending = c->want_final = 0;
        c->sealed.len = 0;
        int rc = c->filter->seal(c, c->pending.data, c->pending.len, final, &c->sealed);
        if (rc != 0) {
            conn_fail(c, rc, "cannot seal frames");
            return;
        }
        cmdipc__buf_t t = c->pending;
        c->pending = c->sealed;
        c->sealed = t;
        c->sealed.len = 0;
    }
    if (c->writing || c->pending.len == 0 || c->state == C_CLOSING || c->write_failed)
        return;
    uv_check_stop(&c->check);
    uv_prepare_stop(&c->prepare);
    c->pending_msgs = 0;
    uv_buf_t b = uv_buf_init(c->pending.data, (unsigned)c->pending.len);
    int n = direct_write(c, c->pending.data, c->pending.len);
    if (n == UV_ENOTSUP)
        n = uv_try_write(c->ws, &b, 1);
    if (n == (int)c->pending.len) {
        c->pending.len = 0;
        c->soft_since = 0;
        trim_buffer(&c->pending.data, &c->pending.cap, 0);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        write_failed(c, n);
        return;
    }
    if (n > 0) {
        memmove(c->pending.data, c->pending.data + n, c->pending.len - (size_t)n);
        c->pending.len -= (size_t)n;
    }
    cmdipc__buf_t t = c->inflight;
    c->inflight = c->pending;
    c->pending = t;
    c->pending.len = 0;
    b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, c->ws, &b, 1, write_cb);
    if (rc != 0) {
        c->inflight.len = 0;
        conn_fail(c, rc, NULL);
        return;
    }
    c->writing = 1;
    c->write_started = uv_now(c->loop);
    c->last_queue = SIZE_MAX;
    arm_timer(c);
}

static void check_cb(uv_check_t *h) { flush(h->data); }
static void prepare_cb(uv_prepare_t *h) { flush(h->data); }

/* Write stall and soft queue limit. */
static void timer_cb(uv_timer_t *t) {
    cmdipc__conn_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    uint64_t stall = c->lim.write_stall_ms;
    if (c->writing) {
        size_t q = uv_stream_get_write_queue_size(c->ws);
        if (q != c->last_queue) { /* progress */
            c->last_queue = q;
            c->write_started = now;
        } else if (now - c->write_started >= stall) {
            conn_fail(c, CMDIPC_ESLOWCONSUMER, "write stalled");
            return;
        }
    }
    if (c->soft_since != 0 && now - c->soft_since >= stall) {
        conn_fail(c, CMDIPC_ESLOWCONSUMER, "send queue above the soft limit for too long");
        return;
    }
    arm_timer(c);
}

static void arm_timer(cmdipc__conn_t *c) {
    if (c->lim.write_stall_ms == 0 || c->state == C_CLOSING)
        return;
    if (!c->writing && c->soft_since == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    /* Check a few times per period: progress is sampled, not signalled. */
    uint64_t period = c->lim.write_stall_ms / 4;
    uv_timer_start(&c->timer, timer_cb, period ? period : 1, 0);
}

static int conn_send(cmdipc__conn_t *c, cmdipc_msg_t *m) {
    if (c->state != C_OPEN || c->write_failed) {
        cmdipc_msg_free(m);
        return CMDIPC_ECLOSED;
    }
    if (queued_bytes(c) >= c->lim.max_send_queue) {
        cmdipc_msg_free(m);
        return CMDIPC_EOVERLOAD;
    }
    size_t before = c->pending.len;
    int rc = cmdipc_msg_encode_to(m, &c->pending);
    if (rc == 0)
        rc = cmdipc__buf_putc(&c->pending, '\n');
    cmdipc_msg_free(m);
    if (rc != 0) {
        c->pending.len = before;
        return rc;
    }
    if (!c->writing) {
        /* Flushed at the end of this loop iteration with whatever else is
         * queued by then, or as soon as a batch is full, so the peer starts
         * on it while we go on (a pipeline, not lockstep). A batch is about
         * two thirds of what the peer sent last time: one early write and
         * one at the end of the read batch that produced the replies (8 at
         * small windows, where waking the peer early is what counts; 16 at
         * large ones, where the write calls are). What a hub relays counts
         * the same. */
        unsigned batch = c->last_batch * 2 / 3;
        batch = batch < FLUSH_MIN ? FLUSH_MIN : batch > FLUSH_MAX ? FLUSH_MAX : batch;
        /* A secure conn seals each flush into one frame, whose fixed cost
         * is that of sealing ~1 KiB: four times fewer, larger frames (at 64
         * outstanding: 4.0 against 5.1 us of CPU per round trip). */
        if (c->filter != NULL)
            batch *= 4;
        if (++c->pending_msgs >= batch || c->pending.len >= FLUSH_BYTES) {
            flush(c);
        } else if (before == 0 && !c->delivering) {
            uv_check_start(&c->check, check_cb);
            uv_prepare_start(&c->prepare, prepare_cb);
        }
    }
    if (c->lim.soft_send_queue && queued_bytes(c) > c->lim.soft_send_queue) {
        if (c->soft_since == 0) {
            c->soft_since = uv_now(c->loop);
            arm_timer(c);
        }
    } else {
        c->soft_since = 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Reading. */

static void deliver_lines(cmdipc__conn_t *c) {
    size_t max_line = c->lim.limits.max_line;
    /* Replies produced while this batch is delivered are flushed at its end
     * (or in batches), without scheduling an end-of-iteration flush. */
    c->delivering = 1;
    unsigned nlines = 0;
    while (c->state == C_OPEN && !c->paused) {
        char *nl = c->rend > c->rscan
                       ? memchr(c->rbuf + c->rscan, '\n', c->rend - c->rscan)
                       : NULL; /* (rbuf may be NULL then) */
        if (nl == NULL) {
            c->rscan = c->rend;
            break;
        }
        size_t at = c->rstart;
        size_t len = (size_t)(nl - (c->rbuf + at)) + 1;
        c->rstart = c->rscan = at + len;
        if (len > max_line) {
            c->delivering = 0;
            conn_fail(c, CMDIPC_ELINETOOLONG, "line longer than the limit");
            return;
        }
        if (len == 1 || (len == 2 && c->rbuf[at] == '\r'))
            continue; /* blank line */
        cmdipc_channel_deliver_line(c->link->ch, c->rbuf + at, len);
        nlines++;
    }
    c->last_batch = nlines;
    c->delivering = 0;
    if ((c->pending.len > 0 || c->ctl_pending) && !c->writing && c->state != C_CLOSING)
        flush(c);
    if (c->rstart == c->rend) {
        c->rstart = c->rend = c->rscan = 0;
    } else if (c->rend - c->rstart >= max_line && c->state == C_OPEN &&
               c->filter == NULL) {
        /* (A filter hands over whole lines only.) */
        /* A line without its newline already at the limit. */
        conn_fail(c, CMDIPC_ELINETOOLONG, "line longer than the limit");
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    cmdipc__conn_t *c = h->data;
    if (c->filter != NULL) {
        /* Ciphertext goes to the filter, lines come back through
         * cmdipc__conn_push_lines(). */
        if (c->fbuf == NULL)
            c->fbuf = malloc(READ_CHUNK);
        *buf = uv_buf_init(c->fbuf, c->fbuf ? READ_CHUNK : 0);
        return;
    }
    size_t cap_max = c->lim.limits.max_line + READ_CHUNK;
    if (c->rcap - c->rend < READ_MIN && c->rstart > 0) {
        /* Make room: move the partial line to the front. */
        size_t n = c->rend - c->rstart;
        memmove(c->rbuf, c->rbuf + c->rstart, n);
        bytes_moved += n;
        c->rscan -= c->rstart;
        c->rend = n;
        c->rstart = 0;
    }
    if (c->rcap - c->rend < READ_MIN && c->rcap < cap_max) {
        size_t cap = c->rcap ? c->rcap * 2 : READ_MIN;
        if (cap < c->rend + READ_MIN)
            cap = c->rend + READ_MIN;
        if (cap > cap_max)
            cap = cap_max;
        char *p = realloc(c->rbuf, cap);
        if (p != NULL) {
            c->rbuf = p;
            c->rcap = cap;
        }
    }
    *buf = uv_buf_init(c->rbuf + c->rend, (unsigned)(c->rcap - c->rend));
}

/* End of input: the last line may lack its newline; then the peer is done,
 * so flush what we owe it and close. */
static void finish_eof(cmdipc__conn_t *c) {
    if (c->filter != NULL) {
        /* Frames still buffered first; then a secure stream must have
         * ended with its FINAL frame (else it was truncated). */
        deliver_lines(c);
        if (c->state != C_OPEN || c->paused)
            return;
        int rc = c->filter->input(c, NULL, 0);
        if (rc == 0 && (c->state != C_OPEN || c->paused))
            return;
        if (rc == 0)
            rc = c->filter->eof(c);
        if (rc != 0) {
            conn_fail(c, rc, NULL);
            return;
        }
    }
    deliver_lines(c);
    if (c->state != C_OPEN || c->paused)
        return;
    if (c->rend > c->rstart)
        cmdipc_channel_deliver_line(c->link->ch, c->rbuf + c->rstart, c->rend - c->rstart);
    c->rstart = c->rend = c->rscan = 0;
    if (c->state != C_OPEN)
        return;
    if (c->link->kind == CMDIPC__LINK_DIALER) {
        cmdipc__conn_close(c, 1, UV_EOF); /* the dialer reconnects */
        return;
    }
    /* A half-close: the peer may still read. The registry answers what it
     * asked, then closes the channel (which closes this conn gracefully). */
    cmdipc_channel_eof(c->link->ch);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    cmdipc__conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        conn_fail(c, CMDIPC_ELINETOOLONG, "line longer than the limit");
        return;
    }
    if (nread == UV_EOF && c->state == C_OPEN) {
        uv_read_stop(c->rs);
        c->reading = 0;
        c->eof = 1;
        finish_eof(c); /* while paused, the resume finishes it */
        return;
    }
    if (nread < 0) {
        conn_fail(c, (int)nread, NULL);
        return;
    }
    if (c->filter != NULL) {
        int rc = c->filter->input(c, buf->base, (size_t)nread);
        if (rc != 0)
            conn_fail(c, rc, NULL);
        return;
    }
    c->rend += (size_t)nread;
    deliver_lines(c);
    if (c->rend == 0)
        trim_buffer(&c->rbuf, &c->rcap, 0);
}

static void idle_cb(uv_idle_t *h) {
    cmdipc__conn_t *c = h->data;
    uv_idle_stop(h);
    if (c->state != C_OPEN || c->paused)
        return;
    if (c->eof) {
        finish_eof(c);
        return;
    }
    deliver_lines(c);
    if (c->filter != NULL && c->state == C_OPEN && !c->paused) {
        int rc = c->filter->input(c, NULL, 0); /* frames held while paused */
        if (rc != 0) {
            conn_fail(c, rc, NULL);
            return;
        }
    }
    if (c->state == C_OPEN && !c->paused && !c->reading) {
        if (uv_read_start(c->rs, alloc_cb, read_cb) == 0)
            c->reading = 1;
    }
}

static void conn_pause(cmdipc__conn_t *c, int pause) {
    if (c->state != C_OPEN)
        return;
    c->paused = pause;
    if (pause) {
        if (c->reading) {
            uv_read_stop(c->rs);
            c->reading = 0;
        }
    } else {
        /* Lines already buffered are delivered from a later turn. */
        uv_idle_start(&c->idle, idle_cb);
    }
}

/* ---------------------------------------------------------------------------
 * Construction. */

cmdipc__conn_t *cmdipc__conn_new(cmdipc__link_t *link, uv_loop_t *loop) {
    cmdipc__conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->link = link;
    c->loop = loop;
    c->lim = link->lim;
    cmdipc__buf_init(&c->pending);
    cmdipc__buf_init(&c->inflight);
    uv_check_init(loop, &c->check);
    uv_prepare_init(loop, &c->prepare);
    uv_idle_init(loop, &c->idle);
    uv_timer_init(loop, &c->timer);
    c->check.data = c->prepare.data = c->idle.data = c->timer.data = c;
    c->open_handles = 4;
    c->wfd = -1;
    return c;
}

void cmdipc__conn_handles_external(cmdipc__conn_t *c, uv_stream_t *rd, uv_stream_t *wr,
                                   cmdipc_release_cb release, void *release_data) {
    c->external = 1;
    c->release = release;
    c->release_data = release_data;
    c->rs = rd;
    c->saved_data[0] = rd->data;
    rd->data = c;
    c->open_handles++;
    if (wr != NULL && wr != rd) {
        c->two = 1;
        c->ws = wr;
        c->saved_data[1] = wr->data;
        wr->data = c;
        c->open_handles++;
    } else {
        c->ws = rd;
    }
}

int cmdipc__open_fd_stream(uv_loop_t *loop, cmdipc__stream_handle_t *h, int fd, int readable) {
    switch (uv_guess_handle(fd)) {
        case UV_NAMED_PIPE: {
            int rc = uv_pipe_init(loop, &h->pipe, 0);
            if (rc == 0)
                rc = uv_pipe_open(&h->pipe, fd); /* initialised: the caller closes it */
            return rc;
        }
        case UV_TCP: {
            int rc = uv_tcp_init(loop, &h->tcp);
            if (rc == 0)
                rc = uv_tcp_open(&h->tcp, fd);
            return rc;
        }
        case UV_TTY:
            return uv_tty_init(loop, &h->tty, fd, readable);
        default:
            return UV_EINVAL; /* a file or nothing: not a stream */
    }
}

void cmdipc__conn_fill_peer(cmdipc__link_t *link, cmdipc__conn_t *c) {
    uv_os_fd_t fd;
    link->peer.remote = link->remote;
    if (uv_fileno((uv_handle_t *)c->rs, &fd) != 0)
        return;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            link->peer.has_creds = 1;
            link->peer.uid = cred.uid;
            link->peer.gid = cred.gid;
            link->peer.pid = cred.pid;
            snprintf(link->remote, sizeof(link->remote), "pid %d uid %u", (int)cred.pid,
                     (unsigned)cred.uid);
        }
    } else if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        char host[64] = "";
        int port = 0;
        sl = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
            return;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
            snprintf(link->remote, sizeof(link->remote), "%s:%d", host, port);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
            snprintf(link->remote, sizeof(link->remote), "[%s]:%d", host, port);
        }
    }
}

void cmdipc__link_apply_ref(const cmdipc__link_t *link, uv_handle_t *h) {
    if (h == NULL || h->loop == NULL || uv_is_closing(h))
        return;
    if (link != NULL && link->unref)
        uv_unref(h);
    else
        uv_ref(h);
}

void cmdipc__conn_apply_ref(cmdipc__conn_t *c) {
    const cmdipc__link_t *link = c->link;
    cmdipc__link_apply_ref(link, (uv_handle_t *)c->rs);
    if (c->ws != c->rs)
        cmdipc__link_apply_ref(link, (uv_handle_t *)c->ws);
    cmdipc__link_apply_ref(link, (uv_handle_t *)&c->check);
    cmdipc__link_apply_ref(link, (uv_handle_t *)&c->prepare);
    cmdipc__link_apply_ref(link, (uv_handle_t *)&c->idle);
    cmdipc__link_apply_ref(link, (uv_handle_t *)&c->timer);
    cmdipc__link_apply_ref(link, (uv_handle_t *)&c->ftimer);
}

static void link_set_ref(cmdipc_channel_t *ch, int ref) {
    cmdipc__link_t *link = cmdipc_channel_impl(ch);
    link->unref = !ref;
    if (link->conn != NULL)
        cmdipc__conn_apply_ref(link->conn);
    if (link->ref_hook != NULL)
        link->ref_hook(link, ref);
}

void cmdipc__conn_handles_ready(cmdipc__conn_t *c) {
    /* Only initialised handles are counted: one whose init failed is never
     * closed, and must not hold the conn open. */
    c->rs = &c->rio.stream;
    c->rio.handle.data = c;
    if (c->rio.handle.loop != NULL)
        c->open_handles++;
    if (c->two) {
        c->ws = &c->wio.stream;
        c->wio.handle.data = c;
        if (c->wio.handle.loop != NULL)
            c->open_handles++;
    } else {
        c->ws = c->rs;
    }
    if (c->link != NULL && c->link->unref)
        cmdipc__conn_apply_ref(c);
}

int cmdipc__conn_start(cmdipc__conn_t *c) {
    uv_os_fd_t fd;
    if (c->filter != NULL)
        uv_idle_start(&c->idle, idle_cb); /* frames read during the handshake */
    /* Sockets and pipes are non-blocking in libuv; a TTY's descriptor may be
     * shared with a terminal: leave it to libuv. */
    c->wfd = (c->ws->type != UV_TTY && uv_fileno((uv_handle_t *)c->ws, &fd) == 0) ? fd : -1;
    int rc = uv_read_start(c->rs, alloc_cb, read_cb);
    if (rc == 0)
        c->reading = 1;
    return rc;
}

/* ---------------------------------------------------------------------------
 * The filter's side (secure.c). */

int cmdipc__conn_push_lines(cmdipc__conn_t *c, const char *p, size_t n) {
    if (c->rcap - c->rend < n) {
        if (c->rstart > 0) {
            size_t keep = c->rend - c->rstart;
            memmove(c->rbuf, c->rbuf + c->rstart, keep);
            bytes_moved += keep;
            c->rscan -= c->rstart;
            c->rend = keep;
            c->rstart = 0;
        }
        if (c->rcap - c->rend < n) {
            size_t cap = c->rend + n < READ_MIN ? READ_MIN : c->rend + n;
            char *q = realloc(c->rbuf, cap);
            if (q == NULL)
                return UV_ENOMEM;
            c->rbuf = q;
            c->rcap = cap;
        }
    }
    memcpy(c->rbuf + c->rend, p, n);
    c->rend += n;
    return 0;
}

void cmdipc__conn_deliver(cmdipc__conn_t *c) {
    deliver_lines(c);
    if (c->rend == 0)
        trim_buffer(&c->rbuf, &c->rcap, 0);
}

void cmdipc__conn_kick(cmdipc__conn_t *c) {
    c->ctl_pending = 1;
    if (!c->writing && !c->delivering && c->state != C_CLOSING) {
        uv_check_start(&c->check, check_cb);
        uv_prepare_start(&c->prepare, prepare_cb);
    }
}

int cmdipc__conn_accepting(const cmdipc__conn_t *c) {
    return c->state == C_OPEN && !c->paused;
}

/* ---------------------------------------------------------------------------
 * Links: the channel ops. */

void cmdipc__link_attached(cmdipc__link_t *link) {
    link->was_up = 1;
    if (link->conn != NULL && cmdipc__conn_start(link->conn) != 0)
        cmdipc__conn_close(link->conn, 0, UV_EIO);
}

cmdipc__link_t *cmdipc__link_new(int kind, const cmdipc__stream_limits_t *lim) {
    cmdipc__link_t *link = calloc(1, sizeof(*link));
    if (link == NULL)
        return NULL;
    link->kind = kind;
    link->lim = *lim;
    link->peer.url = "";
    link->peer.remote = link->remote;
    cmdipc__queue_init(&link->listener_link);
    return link;
}

/* The one place a link ends: once its connection and every handle of its
 * kind have closed, the close is reported to the registry (a dialer only
 * when it was asked to stop: otherwise it reconnects), and once the registry
 * has called ops->free too, the link is released. */
void cmdipc__link_settle(cmdipc__link_t *link) {
    if (link->conn != NULL || link->busy > 0)
        return;
    if (!link->reported && link->ch != NULL &&
        (link->closing || link->kind != CMDIPC__LINK_DIALER))
        cmdipc__link_report_closed(link, link->closed_by_us ? 0 : link->close_status);
    if (!link->freed)
        return;
    if (link->free_hook != NULL)
        link->free_hook(link);
    free(link->url);
    free(link);
}

void cmdipc__link_report_closed(cmdipc__link_t *link, int status) {
    if (link->reported)
        return;
    link->reported = 1;
    cmdipc_channel_closed(link->ch, status);
}

static int link_send(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc__link_t *link = cmdipc_channel_impl(ch);
    if (link->conn == NULL || link->closing) {
        cmdipc_msg_free(m);
        return CMDIPC_ECLOSED;
    }
    return conn_send(link->conn, m);
}

static void link_pause(cmdipc_channel_t *ch, int pause) {
    cmdipc__link_t *link = cmdipc_channel_impl(ch);
    if (link->conn != NULL)
        conn_pause(link->conn, pause);
}

static void link_close(cmdipc_channel_t *ch, int graceful) {
    cmdipc__link_t *link = cmdipc_channel_impl(ch);
    if (link->closing)
        return;
    link->closing = 1;
    link->closed_by_us = 1;
    if (link->closing_hook != NULL)
        link->closing_hook(link);
    if (link->conn != NULL)
        cmdipc__conn_close(link->conn, graceful, 0);
    else
        cmdipc__link_settle(link);
}

static void link_free(cmdipc_channel_t *ch) {
    cmdipc__link_t *link = cmdipc_channel_impl(ch);
    link->freed = 1;
    link->ch = NULL;
    if (link->conn != NULL) {
        /* Never attached (or attach failed): nothing reported yet. */
        link->conn->link = NULL;
        cmdipc__conn_close(link->conn, 0, 0);
        link->conn = NULL;
    }
    cmdipc__link_settle(link);
}

static int link_peer(const cmdipc_channel_t *ch, cmdipc_peer_info_t *out) {
    const cmdipc__link_t *link = cmdipc_channel_impl(ch);
    *out = link->peer;
    return 0;
}

const cmdipc_channel_ops_t cmdipc__stream_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION,
    .send = link_send,
    .pause_reading = link_pause,
    .close = link_close,
    .free = link_free,
    .peer = link_peer,
    .set_ref = link_set_ref,
};

uint64_t cmdipc__backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms,
                            unsigned jitter_pct, double u) {
    uint64_t d = min_ms ? min_ms : 1;
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2; /* saturates, never wraps */
    if (d > max_ms)
        d = max_ms;
    double j = (double)(jitter_pct > 100 ? 100 : jitter_pct) / 100.0;
    double f = 1.0 + j * (2.0 * u - 1.0);
    double v = (double)d * f;
    if (v < 1.0)
        return 1;
    if (v >= 18446744073709549568.0) /* the largest double below 2^64 */
        return UINT64_MAX;
    return (uint64_t)v;
}
