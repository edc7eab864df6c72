/* cmdipc — declarations shared by the transports (not installed). */
#ifndef CMDIPC_TRANSPORT_INT_H
#define CMDIPC_TRANSPORT_INT_H

#include "common.h"

/* The common part of every listener. The scheme's code sets close (called
 * once, from cmdipc_listener_close() or the registry's close) and must call
 * cmdipc__listener_closed() when it has released its handles. */
struct cmdipc_listener_s {
    cmdipc_registry_t *reg;
    cmdipc_resource_t *res;
    char *url;
    char *prefix;
    cmdipc_accept_cb accept_cb;
    void *accept_data;
    uint64_t counter;
    int closing;
    cmdipc_listen_opts_t opts;
    void (*close)(cmdipc_listener_t *l);
    /* uv_ref/uv_unref of the scheme's listening handle. */
    void (*set_ref)(cmdipc_listener_t *l, int ref);
    void *impl;
};

/* Allocates a listener for r and ties it to r. */
int cmdipc__listener_new(cmdipc_registry_t *r, const char *url,
                         const cmdipc_listen_opts_t *opts, cmdipc_listener_t **out);
/* The scheme finished closing l: frees it. */
void cmdipc__listener_closed(cmdipc_listener_t *l);
/* Names a new connection: the accept callback's choice or <prefix><n>.
 * Returns 0 with the name in buf, or the callback's refusal status. */
int cmdipc__listener_name(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *buf,
                          size_t size);



/* inproc:// (memory.c) */
int cmdipc__inproc_listen(cmdipc_listener_t *l, const char *name);
int cmdipc__inproc_connect(cmdipc_registry_t *r, const char *name, const char *channel_id,
                           cmdipc_channel_t **out);

/* ---------------------------------------------------------------------------
 * Streams (stream.c): NDJSON over libuv streams.
 *
 * A conn is one connection: a read handle and a write handle (the same one
 * for sockets), the line splitter, the write batcher and the limits. A link
 * is a channel's transport state: its current conn, plus what its kind
 * needs (a dialer reconnects, a spawned child has a process). */

typedef struct cmdipc__conn_s cmdipc__conn_t;
typedef struct cmdipc__link_s cmdipc__link_t;

typedef union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
    uv_tty_t tty;
} cmdipc__stream_handle_t;

/* The secure transport's hook (secure.c): a byte filter between the socket
 * and the line splitter / write batcher. Set on a conn before it starts;
 * NULL for plain NDJSON. */
typedef struct cmdipc__filter_ops_s {
    /* n bytes read (0: go on with what is buffered). Hands each frame of
     * lines to cmdipc__conn_push_lines(), stops while the conn is paused.
     * Returns 0 or the status to close the connection with. */
    int (*input)(cmdipc__conn_t *c, const char *p, size_t n);
    /* Appends to wire the frames of the n bytes of whole lines at p (n may
     * be 0), the control frames due, and the FINAL frame when final. */
    int (*seal)(cmdipc__conn_t *c, const char *p, size_t n, int final,
                cmdipc__buf_t *wire);
    /* End of input with everything buffered consumed: 0 if the FINAL frame
     * was read, else the status (truncation). */
    int (*eof)(cmdipc__conn_t *c);
    /* The conn is freed (every handle and request is done). */
    void (*destroy)(cmdipc__conn_t *c);
} cmdipc__filter_ops_t;

typedef struct cmdipc__stream_limits_s {
    cmdipc_limits_t limits;
    size_t max_send_queue;
    size_t soft_send_queue;
    uint64_t write_stall_ms;
} cmdipc__stream_limits_t;

struct cmdipc__conn_s {
    cmdipc__link_t *link;
    uv_loop_t *loop;
    cmdipc__stream_handle_t rio;
    cmdipc__stream_handle_t wio; /* used when two is set */
    /* Adopted streams (cmdipc_adopt): rs/ws are the application's handles,
     * not rio/wio; each is given back through release once closed. */
    int external;
    cmdipc_release_cb release;
    void *release_data;
    void *saved_data[2]; /* the handles' data fields, restored on release */
    uv_stream_t *rs;
    uv_stream_t *ws;
    int two;
    uv_check_t check;
    uv_prepare_t prepare;
    uv_idle_t idle;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uv_connect_t creq;
    int state;
    int paused;
    int writing;
    int reading;
    int eof;
    int write_failed; /* the peer stopped reading: we only read now */
    int connecting;   /* a connect request is pending: nothing to flush, no shutdown */
    int delivering;   /* inside deliver_lines: it flushes at its end */
    int wfd;          /* the write side's descriptor for direct writes, or -1 */
    unsigned pending_msgs; /* messages in pending since the last flush */
    unsigned last_batch;   /* lines in the last read batch (sizes flushes) */
    unsigned open_handles;
    int status;
    char *rbuf;
    size_t rcap, rstart, rend, rscan;
    cmdipc__buf_t pending;
    cmdipc__buf_t inflight;
    cmdipc__stream_limits_t lim;
    uint64_t write_started;
    size_t last_queue;
    uint64_t soft_since;
    /* The secure filter, when set (secure.c owns filter_data and ftimer). */
    const cmdipc__filter_ops_t *filter;
    void *filter_data;
    uv_timer_t ftimer; /* initialised by the filter (closed with the conn) */
    char *fbuf;        /* ciphertext read buffer */
    cmdipc__buf_t sealed;
    int ctl_pending; /* control frames to send: flush even with no lines */
    int want_final;  /* the next flush ends with the FINAL frame */
    int final_sent;
};

enum {
    CMDIPC__LINK_ACCEPTED = 1,
    CMDIPC__LINK_DIALER,
    CMDIPC__LINK_STDIO,
    CMDIPC__LINK_SPAWN,
    CMDIPC__LINK_ADOPTED
};

struct cmdipc__link_s {
    cmdipc_channel_t *ch;
    cmdipc__conn_t *conn;
    int kind;
    int closing;     /* ops->close was called, or the kind stopped itself */
    int closed_by_us; /* ops->close was called: the close is reported as 0 */
    int reported;    /* cmdipc_channel_closed was called */
    int freed;       /* ops->free was called */
    int was_up;      /* the registry saw the link up */
    int close_status;
    unsigned busy;   /* handles of the link itself still open */
    cmdipc__stream_limits_t lim;
    cmdipc_peer_info_t peer;
    char remote[80];
    char *url;
    cmdipc_listener_t *listener; /* accepted: the listener, until it closes */
    cmdipc__queue_t listener_link;
    int secure; /* +sodium: its conns carry the secure filter */
    /* The kind's reaction to its conn having closed (status: why). */
    void (*conn_closed)(cmdipc__link_t *link, int status);
    /* The kind's part of ops->close (stop timers, kill a child...). */
    void (*closing_hook)(cmdipc__link_t *link);
    void (*free_hook)(cmdipc__link_t *link);
    /* The kind's handles besides the conn's (a dialer's retry timer, a
     * child's process) follow cmdipc_channel_unref(). May be NULL. */
    void (*ref_hook)(cmdipc__link_t *link, int ref);
    int unref;   /* cmdipc_channel_unref(): applied to every handle, new ones too */
    void *kind_data;
};

extern const cmdipc_channel_ops_t cmdipc__stream_ops;

void cmdipc__stream_limits_default(cmdipc__stream_limits_t *l);
cmdipc__link_t *cmdipc__link_new(int kind, const cmdipc__stream_limits_t *lim);
/* Call whenever the link's conn or one of its kind's handles (counted in
 * busy) went away, with close_status set to why: reports the close once
 * nothing is left open (a dialer only once closing), and releases the link
 * once the registry freed it too. */
void cmdipc__link_settle(cmdipc__link_t *link);
/* uv_ref or uv_unref h (if initialised) as the link wants. */
void cmdipc__link_apply_ref(const cmdipc__link_t *link, uv_handle_t *h);
/* The same for every handle of the conn. */
void cmdipc__conn_apply_ref(cmdipc__conn_t *c);
/* The link is done: report closed to the registry (once). */
void cmdipc__link_report_closed(cmdipc__link_t *link, int status);

/* A conn for link. Its handles are initialised by the caller through
 * cmdipc__conn_handle(); then cmdipc__conn_start() begins reading. */
cmdipc__conn_t *cmdipc__conn_new(cmdipc__link_t *link, uv_loop_t *loop);
/* Call after initialising rio (and wio when two): counts the handle(s) and
 * sets the stream pointers. */
void cmdipc__conn_handles_ready(cmdipc__conn_t *c);
/* The same for the application's streams (rd and wr, or rd both ways). */
void cmdipc__conn_handles_external(cmdipc__conn_t *c, uv_stream_t *rd, uv_stream_t *wr,
                                   cmdipc_release_cb release, void *release_data);
/* Opens fd as a libuv stream in h (a pipe or socket, TCP, a tty). */
int cmdipc__open_fd_stream(uv_loop_t *loop, cmdipc__stream_handle_t *h, int fd, int readable);
/* What is known of the peer on the conn's read stream: SO_PEERCRED for a
 * Unix socket, the address for TCP. */
void cmdipc__conn_fill_peer(cmdipc__link_t *link, cmdipc__conn_t *c);
int cmdipc__conn_start(cmdipc__conn_t *c);
/* The link's channel is attached: marks the link up and starts reading its
 * connection (closing it if reading cannot start). */
void cmdipc__link_attached(cmdipc__link_t *link);
/* Closes the conn: graceful flushes what is queued and shuts down the
 * write side first. The link's conn_closed hook runs when every handle of
 * the conn is closed. */
void cmdipc__conn_close(cmdipc__conn_t *c, int graceful, int status);
/* Test hook: bytes the line splitter moved or copied, process-wide. */
uint64_t cmdipc__stream_bytes_moved(void);
/* For a filter: appends n bytes of whole lines to the read buffer (0 or
 * UV_ENOMEM); cmdipc__conn_deliver() then hands the registry as many as it
 * takes before the conn is paused. What one read brings is delivered as one
 * batch, as on a plain stream (replies are flushed per batch). */
int cmdipc__conn_push_lines(cmdipc__conn_t *c, const char *p, size_t n);
void cmdipc__conn_deliver(cmdipc__conn_t *c);
/* For a filter: control frames are due; flush soon even without lines. */
void cmdipc__conn_kick(cmdipc__conn_t *c);
/* 1 while the conn may still deliver lines (open, not paused). */
int cmdipc__conn_accepting(const cmdipc__conn_t *c);

/* net.c, spawn.c */
int cmdipc__unix_listen(cmdipc_listener_t *l, const char *path);
int cmdipc__tcp_listen(cmdipc_listener_t *l, const char *hostport);
int cmdipc__fd_listen(cmdipc_listener_t *l, const char *fdnum);
int cmdipc__net_connect(cmdipc_registry_t *r, const char *url, const char *channel_id,
                        const cmdipc_connect_opts_t *opts, cmdipc_channel_t **out);
int cmdipc__stdio_connect(cmdipc_registry_t *r, const char *channel_id,
                          const cmdipc_connect_opts_t *opts, cmdipc_channel_t **out);
/* Reconnect delay number attempt (0-based) with jitter from u in [0, 1). */
uint64_t cmdipc__backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms,
                            unsigned jitter_pct, double u);

#endif /* CMDIPC_TRANSPORT_INT_H */
