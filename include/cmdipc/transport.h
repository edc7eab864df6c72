/* cmdipc — transports: in-memory pairs, listening and connecting by URL.
 *
 * Addresses are URLs, one form for every transport:
 *   inproc://name           a memory channel between loops of this process
 *   unix:///path/cmd.sock   (see the stream transports)
 *   tcp://127.0.0.1:7400
 *   stdio://                this process's stdin/stdout (connect only)
 *   fd://N                  a socket already listening on descriptor N (listen only:
 *                           systemd socket activation, LISTEN_FDS, passes them from 3)
 *   tcp+sodium://host:7400, unix+sodium:///path   the secure transport
 *                           (cmdipc/secure.h; keys in opts.secure)
 *
 * Plain unix:// and tcp:// links carry NDJSON: one compact spec-v1 message
 * per line, no handshake. tcp:// is plain text for trusted networks.
 */
#ifndef CMDIPC_TRANSPORT_H
#define CMDIPC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cmdipc/channel.h"
#include "cmdipc/registry.h"
#include "cmdipc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * In-memory channel pairs
 *
 * Two ends linked by two bounded queues under a mutex, each end woken by its
 * own uv_async. The ends may live on one loop or on two loops on two threads;
 * messages cross as structs (no text). A direct send into a full queue fails
 * with CMDIPC_EOVERLOAD; a forward or broadcast into it closes the channel as
 * a slow consumer. Closing an end lets the peer drain what was already queued
 * before it sees the close.
 */

#define CMDIPC_MEMORY_OPTS_VERSION 1
typedef struct cmdipc_memory_opts_s {
    unsigned version; /* CMDIPC_MEMORY_OPTS_VERSION */
    size_t queue_max; /* messages per direction; default 10000 */
} cmdipc_memory_opts_t;

CMDIPC_EXTERN void cmdipc_memory_opts_init(cmdipc_memory_opts_t *opts);

/* Creates a linked pair. End a carries id_a, end b id_b: the registry that
 * attaches a knows the link as id_a (usually the name of the peer on the
 * other end). Attach each end from the thread of the loop that will own it;
 * an end never attached is freed with cmdipc_channel_free(). */
CMDIPC_EXTERN int cmdipc_memory_pair(const char *id_a, const char *id_b, cmdipc_channel_t **a,
                                     cmdipc_channel_t **b) CMDIPC_WUR;
CMDIPC_EXTERN int cmdipc_memory_pair_ex(const char *id_a, const char *id_b,
                                        const cmdipc_memory_opts_t *opts, cmdipc_channel_t **a,
                                        cmdipc_channel_t **b) CMDIPC_WUR;

/* ---------------------------------------------------------------------------
 * Listening and connecting by URL
 */

typedef struct cmdipc_listener_s cmdipc_listener_t;

/* Called for each new connection before it becomes a channel. Return 0 to
 * accept it (optionally writing a channel id, NUL-terminated, into name; left
 * empty the listener names it <prefix><n>), or a negative status to refuse
 * it (the connection is closed). */
typedef int (*cmdipc_accept_cb)(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer,
                                char *name, size_t name_size, void *data);

struct cmdipc_secure_opts_s; /* cmdipc/secure.h */

#define CMDIPC_LISTEN_OPTS_VERSION 2
typedef struct cmdipc_listen_opts_s {
    unsigned version;      /* CMDIPC_LISTEN_OPTS_VERSION */
    const char *id_prefix; /* accepted channels are named <prefix><n>; default "conn-" */
    cmdipc_accept_cb accept_cb; /* NULL: accept everyone the policy allows */
    void *accept_data;
    unsigned max_connections; /* default 1024 */
    cmdipc_limits_t limits;   /* per message; see cmdipc_limits_init() */
    size_t max_send_queue;    /* bytes queued per connection; default 8 MiB */
    uint64_t write_stall_ms;  /* see cmdipc_connect_opts_t; default 10000 */
    size_t soft_send_queue;   /* see cmdipc_connect_opts_t; default 2 MiB */
    /* Unix sockets: file mode (default 0600), and whether to accept only
     * peers running as this process's uid or one of allowed_uids (copied). */
    unsigned mode;
    int same_uid_only;
    const uint32_t *allowed_uids;
    size_t n_allowed_uids;
    /* Version 2: keys and policy for +sodium addresses (required there,
     * ignored elsewhere; copied by cmdipc_listen()). */
    const struct cmdipc_secure_opts_s *secure;
} cmdipc_listen_opts_t;

CMDIPC_EXTERN void cmdipc_listen_opts_init(cmdipc_listen_opts_t *opts);

/* Listens on url; each accepted connection becomes a channel attached to r
 * (closed when the peer goes away: accepted channels never reconnect).
 * opts may be NULL. The listener is closed with the registry, or earlier with
 * cmdipc_listener_close(). Returns 0, UV_EINVAL (bad URL), UV_EADDRINUSE
 * (inproc name taken, or a live socket), UV_EAFNOSUPPORT (unknown scheme),
 * CMDIPC_ECLOSED, or a libuv status. */
CMDIPC_EXTERN int cmdipc_listen(cmdipc_registry_t *r, const char *url,
                                const cmdipc_listen_opts_t *opts, cmdipc_listener_t **out);

/* Stops listening; channels already accepted stay. */
CMDIPC_EXTERN void cmdipc_listener_close(cmdipc_listener_t *l);

/* The address actually listened on (with the chosen port for tcp://...:0),
 * written into buf. Returns 0 or UV_ENOBUFS. */
CMDIPC_EXTERN int cmdipc_listener_url(const cmdipc_listener_t *l, char *buf, size_t size);
CMDIPC_EXTERN cmdipc_registry_t *cmdipc_listener_registry(const cmdipc_listener_t *l);
/* As uv_ref()/uv_unref() for the listening handle: unreferenced, waiting for
 * connections does not keep uv_run() running. */
CMDIPC_EXTERN void cmdipc_listener_ref(cmdipc_listener_t *l);
CMDIPC_EXTERN void cmdipc_listener_unref(cmdipc_listener_t *l);

#define CMDIPC_CONNECT_OPTS_VERSION 2
typedef struct cmdipc_connect_opts_s {
    unsigned version; /* CMDIPC_CONNECT_OPTS_VERSION */
    cmdipc_limits_t limits;
    size_t max_send_queue; /* bytes; default 8 MiB, then the peer is a slow consumer */
    /* Reconnect after the link drops or a connection attempt fails, with
     * exponential backoff and jitter: the delay starts at reconnect_min_ms,
     * doubles up to reconnect_max_ms, each one randomised by +-jitter_pct %.
     * Default on (unix:// and tcp://), 100 ms, 30000 ms, 20 %. */
    int reconnect;
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
    unsigned jitter_pct;
    /* A write that makes no progress for this long, or a send queue above
     * soft_send_queue for this long, cuts the peer off as a slow consumer.
     * Default 10000 ms and 2 MiB; 0 disables. */
    uint64_t write_stall_ms;
    size_t soft_send_queue;
    /* Version 2: keys for +sodium addresses (required there, ignored
     * elsewhere; copied by cmdipc_connect()). A dialer the listener refuses
     * (CMDIPC_EPEERREJECTED) stops for good: it never reconnects. */
    const struct cmdipc_secure_opts_s *secure;
} cmdipc_connect_opts_t;

CMDIPC_EXTERN void cmdipc_connect_opts_init(cmdipc_connect_opts_t *opts);

/* Connects r to url. The link is a channel named channel_id (typically the
 * registry's router channel), attached to r at once and usable as soon as the
 * connection is up (cmdipc_channel_is_up(); the UP channel event). With
 * reconnect on, a failed attempt or a dropped link is retried with backoff on
 * the same channel; calls pending when it dropped fail once with
 * CMDIPC_EDISCONNECTED and are never re-sent; after each reconnect the list
 * exchange and the escalation to the router run again. cmdipc_channel_close()
 * on it stops the dialer. opts may be NULL. *out (may be NULL) receives the
 * channel, valid until it closes (the CLOSED channel event).
 * Without reconnect, a failed first attempt closes the channel with the
 * connect error.
 * stdio:// (this process's stdin and stdout, what a child run by
 * cmdipc_spawn() connects to) can be connected once per process at a time:
 * a second connect, from any registry, returns UV_EBUSY until the first
 * channel has closed; UV_EINVAL when stdin or stdout is not a stream (a file,
 * or closed).
 * Returns 0, UV_EINVAL (bad URL or options), UV_ENAMETOOLONG (socket path),
 * UV_ECONNREFUSED (inproc name not listened on), UV_EEXIST (channel_id
 * taken), UV_EBUSY (stdio:// in use), UV_EAFNOSUPPORT (unknown scheme),
 * CMDIPC_ECLOSED. */
CMDIPC_EXTERN int cmdipc_connect(cmdipc_registry_t *r, const char *url, const char *channel_id,
                                 const cmdipc_connect_opts_t *opts, cmdipc_channel_t **out);

/* ---------------------------------------------------------------------------
 * Adopting streams the application already has: a connection its own
 * server accepted, a socketpair, a pipe to a child it spawned itself, a
 * descriptor inherited from a service manager. The channel speaks NDJSON
 * on them with every stream behaviour and limit of unix:// and tcp://.
 */

/* Called once for each adopted uv_stream_t after cmdipc has closed it
 * (uv_close): the application may free its memory then. The stream's data
 * field, which cmdipc uses while it holds the stream, is restored first. */
typedef void (*cmdipc_release_cb)(uv_stream_t *stream, void *data);

#define CMDIPC_ADOPT_OPTS_VERSION 1
typedef struct cmdipc_adopt_opts_s {
    unsigned version; /* CMDIPC_ADOPT_OPTS_VERSION */
    cmdipc_limits_t limits;
    size_t max_send_queue;   /* bytes; default 8 MiB */
    size_t soft_send_queue;  /* default 2 MiB (see cmdipc_connect_opts_t) */
    uint64_t write_stall_ms; /* default 10000 */
    cmdipc_release_cb release_cb; /* cmdipc_adopt() only; may be NULL */
    void *release_data;
} cmdipc_adopt_opts_t;

CMDIPC_EXTERN void cmdipc_adopt_opts_init(cmdipc_adopt_opts_t *opts);

/* A channel named channel_id over the application's libuv streams: rd for
 * reading and wr for writing (NULL: rd both ways), initialised on r's loop,
 * open, not being read. cmdipc owns them from a successful return: it reads
 * and writes them, closes them when the channel closes (uv_close), then
 * calls opts->release_cb for each. The channel is attached and up at once
 * (the list request goes out); what is known of the peer (SO_PEERCRED for a
 * Unix socket, the address for TCP) is read from rd. Returns 0, UV_EINVAL
 * (another loop, a stream not readable or writable, bad options),
 * UV_EEXIST (channel_id taken), CMDIPC_ECLOSED, UV_ENOMEM; on error the
 * streams stay the caller's, untouched. */
CMDIPC_EXTERN int cmdipc_adopt(cmdipc_registry_t *r, const char *channel_id, uv_stream_t *rd,
                               uv_stream_t *wr, const cmdipc_adopt_opts_t *opts,
                               cmdipc_channel_t **out) CMDIPC_WUR;

/* The same over file descriptors: a connected socket (Unix or TCP), a pipe
 * or a tty; wfd -1 means rfd both ways. cmdipc owns the descriptors from a
 * successful return and closes them with the channel. On error they stay
 * the caller's, open. */
CMDIPC_EXTERN int cmdipc_adopt_fd(cmdipc_registry_t *r, const char *channel_id, int rfd,
                                  int wfd, const cmdipc_adopt_opts_t *opts,
                                  cmdipc_channel_t **out) CMDIPC_WUR;

/* ---------------------------------------------------------------------------
 * Child processes: a host runs a plugin as a separate process whose
 * stdin/stdout are a channel (the child connects with "stdio://").
 */

/* The child exited: exit_status and term_signal as uv_exit_cb gives them. */
typedef void (*cmdipc_exit_cb)(cmdipc_registry_t *r, const char *channel_id,
                               int64_t exit_status, int term_signal, void *data);

#define CMDIPC_SPAWN_OPTS_VERSION 2
typedef struct cmdipc_spawn_opts_s {
    unsigned version; /* CMDIPC_SPAWN_OPTS_VERSION */
    const char *file; /* program to run (searched in PATH) */
    char **args;      /* argv, NULL-terminated; args[0] is usually file */
    char **env;       /* NULL: inherit */
    const char *cwd;  /* NULL: inherit */
    cmdipc_limits_t limits;
    size_t max_send_queue;
    /* Called once when the child exits. May be NULL. */
    cmdipc_exit_cb exit_cb;
    void *exit_data;
    /* When the channel closes (or the registry does) the child's stdin is
     * closed; if it has not exited this long after, it gets SIGKILL.
     * Default 2000 ms. */
    uint64_t kill_timeout_ms;
    /* Version 2: what uv_process_options_t gives a plugin host. */
    /* UV_PROCESS_SETUID, UV_PROCESS_SETGID (with uid, gid: run the plugin
     * as another user), UV_PROCESS_DETACHED (its own session) and the other
     * UV_PROCESS_* flags, passed to uv_spawn. Default 0. */
    unsigned flags;
    uv_uid_t uid;
    uv_gid_t gid;
    /* The child's stderr: an entry as uv_spawn takes it (default: inherited
     * from this process, fd 2). */
    uv_stdio_container_t stderr_io;
    int has_stderr_io; /* 1: use stderr_io */
    /* Further descriptors for the child, from fd 3 on (extra_stdio[0] is
     * its fd 3), as uv_spawn takes them; at most 61. */
    uv_stdio_container_t *extra_stdio;
    int extra_stdio_count;
} cmdipc_spawn_opts_t;

CMDIPC_EXTERN void cmdipc_spawn_opts_init(cmdipc_spawn_opts_t *opts);

/* Starts a child process whose stdin and stdout become a channel named
 * channel_id attached to r; its stderr passes through to ours. The child's
 * exit closes the channel (status UV_EOF, or the read error) and is reported
 * to exit_cb. *pid (may be NULL) receives the child's pid.
 * Returns 0, UV_EINVAL, UV_EEXIST, CMDIPC_ECLOSED, or uv_spawn's error
 * (UV_ENOENT for a missing program). */
CMDIPC_EXTERN int cmdipc_spawn(cmdipc_registry_t *r, const char *channel_id,
                               const cmdipc_spawn_opts_t *opts, cmdipc_channel_t **out,
                               int *pid);

#ifdef __cplusplus
}
#endif
#endif /* CMDIPC_TRANSPORT_H */
