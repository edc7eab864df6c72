/* cmdipc — child processes as channels: the host side (cmdipc_spawn: the
 * child's stdin/stdout are the link) and the child side (stdio://). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"

void cmdipc_spawn_opts_init(cmdipc_spawn_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_SPAWN_OPTS_VERSION;
    cmdipc_limits_init(&o->limits);
    o->max_send_queue = 8u * 1024 * 1024;
    o->kill_timeout_ms = 2000;
}

static void limits_from(cmdipc__stream_limits_t *lim, const cmdipc_limits_t *l,
                        size_t max_send_queue) {
    cmdipc__stream_limits_default(lim);
    if (l != NULL)
        lim->limits = *l;
    if (max_send_queue)
        lim->max_send_queue = max_send_queue;
}

/* ---------------------------------------------------------------------------
 * stdio:// — this process's stdin and stdout. */

static void stdio_conn_closed(cmdipc__link_t *link, int status) {
    link->close_status = status;
    cmdipc__link_settle(link);
}

/* A process has one stdin and one stdout: one stdio:// channel at a time,
 * in any registry of the process. Taken by connect, given back when its
 * link is released (after its handles closed). */
static int stdio_taken;

static void stdio_release(cmdipc__link_t *link) {
    (void)link;
    __atomic_store_n(&stdio_taken, 0, __ATOMIC_RELEASE);
}

int cmdipc__stdio_connect(cmdipc_registry_t *r, const char *channel_id,
                          const cmdipc_connect_opts_t *opts, cmdipc_channel_t **out) {
    cmdipc__stream_limits_t lim;
    uv_loop_t *loop = cmdipc_registry_loop(r);
    limits_from(&lim, opts ? &opts->limits : NULL, opts ? opts->max_send_queue : 0);
    if (uv_guess_handle(0) == UV_FILE || uv_guess_handle(1) == UV_FILE ||
        uv_guess_handle(0) == UV_UNKNOWN_HANDLE || uv_guess_handle(1) == UV_UNKNOWN_HANDLE)
        return UV_EINVAL;
    int expected = 0;
    if (!__atomic_compare_exchange_n(&stdio_taken, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return UV_EBUSY;
    cmdipc__link_t *link = cmdipc__link_new(CMDIPC__LINK_STDIO, &lim);
    cmdipc__conn_t *c = link ? cmdipc__conn_new(link, loop) : NULL;
    if (c == NULL) {
        free(link);
        stdio_release(NULL);
        return UV_ENOMEM;
    }
    link->conn = c;
    link->conn_closed = stdio_conn_closed;
    link->free_hook = stdio_release;
    link->peer.url = "stdio://";
    c->two = 1;
    int rc = cmdipc__open_fd_stream(loop, &c->rio, 0, 1);
    if (rc == 0)
        rc = cmdipc__open_fd_stream(loop, &c->wio, 1, 0);
    cmdipc__conn_handles_ready(c);
    cmdipc_channel_t *ch = NULL;
    if (rc == 0)
        rc = cmdipc_channel_new(channel_id, &cmdipc__stream_ops, link, &ch);
    if (rc != 0) {
        link->conn = NULL;
        c->link = NULL;
        cmdipc__conn_close(c, 0, rc);
        free(link);
        stdio_release(NULL);
        return rc;
    }
    link->ch = ch;
    cmdipc_channel_set_limits(ch, &lim.limits);
    rc = cmdipc_registry_attach(r, ch);
    if (rc != 0) {
        cmdipc_channel_free(ch);
        return rc;
    }
    cmdipc__link_attached(link);
    if (out != NULL)
        *out = ch;
    return 0;
}

/* ---------------------------------------------------------------------------
 * cmdipc_spawn — a child whose stdin/stdout are the channel. */

typedef struct spawn_s {
    cmdipc__link_t *link;
    cmdipc_registry_t *reg;
    char *channel_id;
    uv_process_t proc;
    uv_timer_t timer; /* kill after the channel closed; EOF grace after exit */
    int exited;
    int conn_done;
    int status;
    cmdipc_exit_cb exit_cb;
    void *exit_data;
    uint64_t kill_timeout_ms;
} spawn_t;

static void spawn_maybe_report(cmdipc__link_t *link) {
    spawn_t *s = link->kind_data;
    link->close_status = s->status;
    cmdipc__link_settle(link);
}

static void spawn_handle_closed(uv_handle_t *h) {
    spawn_t *s = h->data;
    s->link->busy--;
    spawn_maybe_report(s->link);
}

static void timer_cb(uv_timer_t *t) {
    spawn_t *s = t->data;
    if (!s->exited) {
        /* The channel closed long ago and the child is still there. */
        uv_process_kill(&s->proc, SIGKILL);
    } else if (s->link->conn != NULL) {
        /* Exited, but something still holds its stdout open. */
        cmdipc__conn_close(s->link->conn, 0, UV_EOF);
    }
}

static void exit_cb(uv_process_t *p, int64_t exit_status, int term_signal) {
    spawn_t *s = p->data;
    s->exited = 1;
    if (s->status == 0)
        s->status = UV_EOF;
    if (s->exit_cb != NULL && s->reg != NULL)
        s->exit_cb(s->reg, s->channel_id, exit_status, term_signal, s->exit_data);
    uv_close((uv_handle_t *)&s->proc, spawn_handle_closed);
    if (s->link->conn != NULL) {
        /* Normally stdout reaches EOF at once; do not wait forever. */
        uv_timer_start(&s->timer, timer_cb, 1000, 0);
    } else {
        uv_close((uv_handle_t *)&s->timer, spawn_handle_closed);
    }
}

static void spawn_conn_closed(cmdipc__link_t *link, int status) {
    spawn_t *s = link->kind_data;
    if (s->status == 0 || s->status == UV_EOF)
        s->status = status ? status : UV_EOF;
    if (s->exited) {
        if (!uv_is_closing((uv_handle_t *)&s->timer))
            uv_close((uv_handle_t *)&s->timer, spawn_handle_closed);
    } else {
        /* Its stdin is closed now; give it time to exit. */
        uv_timer_start(&s->timer, timer_cb, s->kill_timeout_ms, 0);
    }
    spawn_maybe_report(link);
}

static void spawn_ref(cmdipc__link_t *link, int ref) {
    spawn_t *s = link->kind_data;
    (void)ref;
    cmdipc__link_apply_ref(link, (uv_handle_t *)&s->proc);
    cmdipc__link_apply_ref(link, (uv_handle_t *)&s->timer);
}

static void spawn_free(cmdipc__link_t *link) {
    spawn_t *s = link->kind_data;
    free(s->channel_id);
    free(s);
}

int cmdipc_spawn(cmdipc_registry_t *r, const char *channel_id, const cmdipc_spawn_opts_t *opts,
                 cmdipc_channel_t **out, int *pid) {
    cmdipc__stream_limits_t lim;
    uv_process_options_t po;
    uv_stdio_container_t stdio[64];
    if (out != NULL)
        *out = NULL;
    if (r == NULL || opts == NULL || opts->version == 0 ||
        opts->version > CMDIPC_SPAWN_OPTS_VERSION || !cmdipc_limits_valid(&opts->limits) ||
        opts->file == NULL || cmdipc_id_check(channel_id))
        return UV_EINVAL;
    int v2 = opts->version >= 2;
    int extra = v2 ? opts->extra_stdio_count : 0;
    if (extra < 0 || extra > (int)(sizeof(stdio) / sizeof(stdio[0])) - 3 ||
        (extra > 0 && opts->extra_stdio == NULL))
        return UV_EINVAL;
    if (cmdipc_registry_is_closing(r))
        return CMDIPC_ECLOSED;
    if (cmdipc_registry_channel(r, channel_id) != NULL)
        return UV_EEXIST;
    uv_loop_t *loop = cmdipc_registry_loop(r);
    limits_from(&lim, &opts->limits, opts->max_send_queue);
    cmdipc__link_t *link = cmdipc__link_new(CMDIPC__LINK_SPAWN, &lim);
    spawn_t *s = calloc(1, sizeof(*s));
    cmdipc__conn_t *c = link ? cmdipc__conn_new(link, loop) : NULL;
    if (c == NULL || s == NULL || (s->channel_id = strdup(channel_id)) == NULL) {
        if (c != NULL) {
            c->link = NULL;
            cmdipc__conn_close(c, 0, 0);
        }
        free(s);
        free(link);
        return UV_ENOMEM;
    }
    s->link = link;
    s->reg = r;
    s->exit_cb = opts->exit_cb;
    s->exit_data = opts->exit_data;
    s->kill_timeout_ms = opts->kill_timeout_ms ? opts->kill_timeout_ms : 2000;
    link->conn = c;
    link->kind_data = s;
    link->conn_closed = spawn_conn_closed;
    link->free_hook = spawn_free;
    link->ref_hook = spawn_ref;
    link->peer.url = "spawn";
    c->two = 1;
    uv_pipe_init(loop, &c->rio.pipe, 0); /* the child's stdout */
    uv_pipe_init(loop, &c->wio.pipe, 0); /* the child's stdin */
    cmdipc__conn_handles_ready(c);

    cmdipc_channel_t *ch;
    int rc = cmdipc_channel_new(channel_id, &cmdipc__stream_ops, link, &ch);
    if (rc != 0) {
        link->conn = NULL;
        c->link = NULL;
        cmdipc__conn_close(c, 0, rc);
        spawn_free(link);
        free(link);
        return rc;
    }
    link->ch = ch;
    cmdipc_channel_set_limits(ch, &lim.limits);

    memset(&po, 0, sizeof(po));
    char *default_args[2] = {(char *)opts->file, NULL};
    po.file = opts->file;
    po.args = opts->args ? opts->args : default_args;
    po.env = opts->env;
    po.cwd = opts->cwd;
    po.exit_cb = exit_cb;
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = &c->wio.stream;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = &c->rio.stream;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    if (v2 && opts->has_stderr_io)
        stdio[2] = opts->stderr_io;
    for (int i = 0; i < extra; i++)
        stdio[3 + i] = opts->extra_stdio[i];
    po.stdio = stdio;
    po.stdio_count = 3 + extra;
    if (v2) {
        po.flags = opts->flags;
        po.uid = opts->uid;
        po.gid = opts->gid;
    }
    s->proc.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    link->busy = 2; /* proc and timer */
    rc = uv_spawn(loop, &s->proc, &po);
    if (rc != 0) {
        /* The process handle is initialised even when spawning failed; the
         * link goes once both handles have closed. */
        s->reg = NULL;
        s->exited = 1;
        link->reported = 1;
        uv_close((uv_handle_t *)&s->proc, spawn_handle_closed);
        uv_close((uv_handle_t *)&s->timer, spawn_handle_closed);
        cmdipc_channel_free(ch);
        return rc;
    }
    if (pid != NULL)
        *pid = s->proc.pid;
    rc = cmdipc_registry_attach(r, ch);
    if (rc != 0) {
        /* The child runs but has no channel: stop it; the link goes once it
         * has exited. */
        s->reg = NULL;
        link->reported = 1;
        uv_process_kill(&s->proc, SIGKILL);
        cmdipc_channel_free(ch);
        return rc;
    }
    cmdipc__link_attached(link);
    if (out != NULL)
        *out = ch;
    return 0;
}
