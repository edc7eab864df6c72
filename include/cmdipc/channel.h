/* cmdipc — the channel interface, the message struct and its codec.
 *
 * This header is for people writing transports. A transport moves messages
 * between two registries; the registry (lib/) does everything protocol-level.
 *
 * A channel is created by its transport with cmdipc_channel_new() and an ops
 * table, then attached to a registry with cmdipc_registry_attach(). From then
 * on the registry owns it:
 * - the registry calls ops->send() for every outbound message,
 *   ops->pause_reading() for backpressure and ops->close() to close it;
 * - the transport calls cmdipc_channel_deliver() (a message struct) or
 *   cmdipc_channel_deliver_line() (one line of JSON text) for every inbound
 *   message, and cmdipc_channel_closed() exactly once when the channel is
 *   closed for good (peer gone, error, or after ops->close());
 * - after cmdipc_channel_closed() the registry calls ops->free() once, from
 *   a later loop iteration, and frees the channel.
 * All of this happens on the registry's loop thread. The transport calls
 * the cmdipc_channel_* entry points from its own libuv callbacks (read,
 * timer, idle, async, close callbacks), never from inside one of its ops:
 * the registry may then do anything, including closing the channel or
 * itself, and the application's notifications follow from the loop. A
 * channel stays valid until ops->free(); the registry keeps it alive while
 * anything queued still refers to it.
 */
#ifndef CMDIPC_CHANNEL_H
#define CMDIPC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cmdipc/errno.h"
#include "cmdipc/registry.h"
#include "cmdipc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Messages
 *
 * A message is a small struct holding the envelope fields routing needs plus
 * a payload held as a json_t or as the exact JSON text it arrived in,
 * converted lazily. A forwarded payload is re-emitted byte for byte.
 */

typedef struct cmdipc_msg_s cmdipc_msg_t;

typedef enum {
    CMDIPC_MSG_REGISTER_REQUEST = 1, /* "register.command.request" */
    CMDIPC_MSG_REGISTER_RESPONSE,    /* "register.command.response" */
    CMDIPC_MSG_LIST_REQUEST,         /* "list.commands.request" */
    CMDIPC_MSG_LIST_RESPONSE,        /* "list.commands.response" */
    CMDIPC_MSG_EXECUTE_REQUEST,      /* "execute.command.request" */
    CMDIPC_MSG_EXECUTE_RESPONSE,     /* "execute.command.response" */
    CMDIPC_MSG_EVENT                 /* "event" */
} cmdipc_msg_type_t;

/* The wire name of a type ("event", ...), or NULL. */
CMDIPC_EXTERN const char *cmdipc_msg_type_name(cmdipc_msg_type_t type);

CMDIPC_EXTERN cmdipc_msg_type_t cmdipc_msg_type(const cmdipc_msg_t *m);
/* "id"; never NULL. */
CMDIPC_EXTERN const char *cmdipc_msg_id(const cmdipc_msg_t *m);
/* "thid" of responses; NULL for other types. */
CMDIPC_EXTERN const char *cmdipc_msg_thid(const cmdipc_msg_t *m);
/* commandId (execute request), eventId (event), command.id (register
 * request); NULL for other types. */
CMDIPC_EXTERN const char *cmdipc_msg_name(const cmdipc_msg_t *m);
/* Responses: 0 for ok:true, else the status of the error (CMDIPC_ENOTFOUND...
 * for execute responses, CMDIPC_EDUPLICATE for register responses). */
CMDIPC_EXTERN int cmdipc_msg_status(const cmdipc_msg_t *m);
/* The error message of a failed execute response ("" if the peer sent
 * none); NULL otherwise. */
CMDIPC_EXTERN const char *cmdipc_msg_error_message(const cmdipc_msg_t *m);
/* The payload (request, result or payload) as a json_t, parsed on first use;
 * borrowed, valid while the message lives. NULL when absent (or if the text
 * could not be parsed, which validation rules out). For a register request,
 * the command's schema; for a list response, the commands array. */
CMDIPC_EXTERN json_t *cmdipc_msg_payload(cmdipc_msg_t *m);

CMDIPC_EXTERN void cmdipc_msg_free(cmdipc_msg_t *m);

/* A link the transport holding a message may use to queue it (NULL when
 * the registry hands the message over). Never read by the library. */
CMDIPC_EXTERN cmdipc_msg_t *cmdipc_msg_next(const cmdipc_msg_t *m);
CMDIPC_EXTERN void cmdipc_msg_set_next(cmdipc_msg_t *m, cmdipc_msg_t *next);

/* Makes *m safe to hand to a loop on another thread (a transport crossing
 * threads calls it on the sending thread, before the hand-over): afterwards
 * the message shares nothing with this thread (no json_t another thread may
 * touch: a payload the message holds alone stays, any other becomes its
 * JSON text). It may replace *m with a copy. Returns 0 or UV_ENOMEM (*m is
 * unchanged and still the caller's then). */
CMDIPC_EXTERN int cmdipc_msg_detach(cmdipc_msg_t **m) CMDIPC_WUR;

/* A growable byte buffer: data (len bytes used of cap) is allocated with the
 * cmdipc allocator; release it with cmdipc_buf_free(). Zero it to start. */
typedef struct cmdipc_buf_s {
    char *data;
    size_t len;
    size_t cap;
} cmdipc_buf_t;

CMDIPC_EXTERN void cmdipc_buf_free(cmdipc_buf_t *b);

/* Appends the encoding of m (compact JSON, no newline) to b: what a stream
 * transport batches before a write. Returns 0 or UV_ENOMEM (b keeps what it
 * had). */
CMDIPC_EXTERN int cmdipc_msg_encode_to(const cmdipc_msg_t *m, cmdipc_buf_t *b) CMDIPC_WUR;

/* Limits applied to untrusted input. */
#define CMDIPC_LIMITS_VERSION 1
typedef struct cmdipc_limits_s {
    unsigned version;      /* CMDIPC_LIMITS_VERSION */
    size_t max_line;       /* bytes per message, newline included; default 1 MiB */
    unsigned max_depth;    /* nesting of arrays and objects; default 64 (at most 512) */
    size_t max_containers; /* arrays and objects per message; default 65536 */
} cmdipc_limits_t;

CMDIPC_EXTERN void cmdipc_limits_init(cmdipc_limits_t *lim);
/* 1 if lim is usable: built by cmdipc_limits_init() (a version this library
 * knows) with no limit left at 0; else 0 (a zeroed struct is refused, never
 * read as "nothing may pass"). */
CMDIPC_EXTERN int cmdipc_limits_valid(const cmdipc_limits_t *lim);

/* Details of a rejected line. */
typedef struct cmdipc_decode_error_s {
    int status;            /* CMDIPC_EBADJSON, CMDIPC_EJSONDEPTH, ... */
    size_t position;       /* byte offset of the problem, when known */
    char text[120];        /* human-readable reason */
    /* When the line is an execute request whose id could still be read, that
     * id (so the sender can be answered invalid_request); else "" */
    char execute_id[160];
} cmdipc_decode_error_t;

/* Decodes one message from len bytes of JSON (no trailing newline needed; a
 * single trailing "\n" or "\r\n" is ignored). lim may be NULL (defaults).
 * Validates per spec-v1: JSON within the limits, UTF-8, no duplicate keys,
 * no NUL, an object with a known type and its required envelope fields.
 * Returns 0 and *out, or a status (details in *err when not NULL). */
CMDIPC_EXTERN int cmdipc_msg_decode(const char *buf, size_t len, const cmdipc_limits_t *lim,
                                    cmdipc_msg_t **out, cmdipc_decode_error_t *err);

/* Encodes m as compact JSON text without a newline. Returns a buffer to free
 * with cmdipc_free(), its length in *len; NULL on allocation failure. */
CMDIPC_EXTERN char *cmdipc_msg_encode(const cmdipc_msg_t *m, size_t *len);

/* Frees memory returned by cmdipc functions documented to need it. */
CMDIPC_EXTERN void cmdipc_free(void *p);

/* ---------------------------------------------------------------------------
 * Channels
 */

/* What is known of a connecting peer. */
typedef struct cmdipc_peer_info_s {
    const char *url;    /* the listener's address */
    const char *remote; /* the peer's address when known ("" otherwise) */
    int has_creds;      /* 1 when uid/gid/pid are known (Unix sockets) */
    uint32_t uid, gid;
    int32_t pid;
} cmdipc_peer_info_t;


#define CMDIPC_CHANNEL_OPS_VERSION 2

typedef struct cmdipc_channel_ops_s {
    unsigned version; /* CMDIPC_CHANNEL_OPS_VERSION */
    /* Called by cmdipc_registry_attach() on the registry's loop thread before
     * anything else; the transport binds its handles to loop there. May be
     * NULL. A non-zero return makes the attach fail with that status. */
    int (*start)(cmdipc_channel_t *ch, uv_loop_t *loop);
    /* Queues one message. The channel takes ownership of msg in every case.
     * Returns 0, CMDIPC_EOVERLOAD when its queue cannot take it (the registry
     * then applies its rules: the caller gets the error, or the channel is
     * closed as a slow consumer), or CMDIPC_ECLOSED (also what a send after
     * ops->close() may get). Must not call back into the registry. */
    int (*send)(cmdipc_channel_t *ch, cmdipc_msg_t *msg);
    /* Stop (pause = 1) or resume (0) delivering inbound messages. May be
     * NULL (no backpressure). Must not call back into the registry: messages
     * held while paused are delivered from a later loop turn. */
    void (*pause_reading)(cmdipc_channel_t *ch, int pause);
    /* Close. graceful: flush what is queued first. The transport stops
     * delivering and calls cmdipc_channel_closed() once, later (never from
     * inside close). Never called twice, nor after the transport reported
     * closed. */
    void (*close)(cmdipc_channel_t *ch, int graceful);
    /* Release the transport's state. Called once, after closed was reported
     * (or by cmdipc_channel_free() for a channel never attached). */
    void (*free)(cmdipc_channel_t *ch);
    /* What is known of the peer (see cmdipc_channel_peer()). May be NULL. */
    int (*peer)(const cmdipc_channel_t *ch, cmdipc_peer_info_t *out);
    /* Version 2. ref = 0: none of the transport's handles for this channel
     * (now or made later, such as a dialer's next connection) keeps the loop
     * alive (uv_unref); 1: they do again. May be NULL (then
     * cmdipc_channel_unref() returns UV_ENOTSUP). */
    void (*set_ref)(cmdipc_channel_t *ch, int ref);
} cmdipc_channel_ops_t;

/* Creates a channel named id (copied; non-empty) with the transport's ops
 * (must outlive the channel) and private state impl. */
CMDIPC_EXTERN int cmdipc_channel_new(const char *id, const cmdipc_channel_ops_t *ops,
                                     void *impl, cmdipc_channel_t **out) CMDIPC_WUR;

/* Frees a channel that was never attached (or whose attach failed). */
CMDIPC_EXTERN void cmdipc_channel_free(cmdipc_channel_t *ch);

CMDIPC_EXTERN const char *cmdipc_channel_id(const cmdipc_channel_t *ch);
/* Renames a channel not attached yet (a listener naming what it accepted).
 * Returns 0, UV_EINVAL (attached, or a bad id), UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_channel_set_id(cmdipc_channel_t *ch, const char *id) CMDIPC_WUR;
CMDIPC_EXTERN void *cmdipc_channel_impl(const cmdipc_channel_t *ch);
/* The ops the channel was created with (a transport telling its own
 * channels apart from others'). */
CMDIPC_EXTERN const cmdipc_channel_ops_t *cmdipc_channel_ops(const cmdipc_channel_t *ch);
/* The registry the channel is attached to, or NULL. */
CMDIPC_EXTERN cmdipc_registry_t *cmdipc_channel_registry(const cmdipc_channel_t *ch);
CMDIPC_EXTERN void *cmdipc_channel_get_data(const cmdipc_channel_t *ch);
CMDIPC_EXTERN void cmdipc_channel_set_data(cmdipc_channel_t *ch, void *data);
/* What is known of the peer on the other end: for Unix sockets its uid, gid
 * and pid (SO_PEERCRED), for TCP its address. Returns 0 or UV_ENOTSUP. */
CMDIPC_EXTERN int cmdipc_channel_peer(const cmdipc_channel_t *ch, cmdipc_peer_info_t *out);
/* The answer to cmdipc_channel_list_commands(): status 0 and the peer's
 * commands (borrowed: a JSON array of {id, description?, schema?}), or
 * CMDIPC_ETIMEDOUT, CMDIPC_EDISCONNECTED, CMDIPC_ECANCELED with NULL. */
typedef void (*cmdipc_list_cb)(cmdipc_registry_t *r, int status, json_t *commands, void *data);

/* Asks the peer on ch for its commands with a list.commands.request and
 * calls cb (later, once) with its answer: per spec-v1 the peer's own local
 * public commands. The answer also updates routing, as every list response
 * does. Returns 0, UV_EINVAL, CMDIPC_EDISCONNECTED (link down),
 * CMDIPC_EOVERLOAD, CMDIPC_ECLOSED. */
CMDIPC_EXTERN int cmdipc_channel_list_commands(cmdipc_channel_t *ch, cmdipc_list_cb cb,
                                               void *data);

/* As uv_ref()/uv_unref() for the channel's handles: an unreferenced channel
 * (a dialer waiting to reconnect, an idle connection) does not keep
 * uv_run() running; its traffic still flows while the loop runs for
 * something else. Return 0 or UV_ENOTSUP (the transport cannot). */
CMDIPC_EXTERN int cmdipc_channel_ref(cmdipc_channel_t *ch);
CMDIPC_EXTERN int cmdipc_channel_unref(cmdipc_channel_t *ch);

/* 1 while the channel's link is up, 0 while a dialer reconnects. */
CMDIPC_EXTERN int cmdipc_channel_is_up(const cmdipc_channel_t *ch);
/* Limits used by cmdipc_channel_deliver_line() (copied). */
CMDIPC_EXTERN void cmdipc_channel_set_limits(cmdipc_channel_t *ch, const cmdipc_limits_t *lim);

/* Attaches ch to r. The registry sends its list.commands.request on it at
 * once; when ch's id is the router channel, it then escalates its commands.
 * Returns 0 (r owns ch from now on), UV_EEXIST (a channel with that id is
 * attached: ch stays the caller's), UV_EBUSY (ch is attached elsewhere),
 * CMDIPC_ECLOSED, or the status of ops->start(). */
CMDIPC_EXTERN int cmdipc_registry_attach(cmdipc_registry_t *r, cmdipc_channel_t *ch);

/* The attached channel named id, or NULL. */
CMDIPC_EXTERN cmdipc_channel_t *cmdipc_registry_channel(cmdipc_registry_t *r, const char *id);

/* Closes an attached channel gracefully (queued messages are flushed).
 * Pending calls through it fail with CMDIPC_EDISCONNECTED. Returns
 * UV_EINVAL if ch is not attached, UV_EALREADY if it is already closing. */
CMDIPC_EXTERN int cmdipc_channel_close(cmdipc_channel_t *ch);

/* Transport -> registry: one inbound message (ownership passes to the
 * registry). Ignored (and freed) once the channel is closing. */
CMDIPC_EXTERN void cmdipc_channel_deliver(cmdipc_channel_t *ch, cmdipc_msg_t *msg);

/* Transport -> registry: one inbound line of JSON text (the trailing newline
 * may be included or not). The registry decodes it with the channel's limits;
 * a rejected line is dropped, counted and logged, and an execute request whose
 * id can be read is answered invalid_request. */
CMDIPC_EXTERN void cmdipc_channel_deliver_line(cmdipc_channel_t *ch, const char *line,
                                               size_t len);

/* Transport -> registry: one inbound line was rejected by the transport
 * itself (status says why). Counted and logged like a bad line. */
CMDIPC_EXTERN void cmdipc_channel_reject(cmdipc_channel_t *ch, int status, const char *why);

/* Transport -> registry: the peer finished sending (end of input, a
 * half-close such as `nc -N` or socat after its stdin ends) but can still
 * read. The registry fails what awaited an answer from it and forgets its
 * commands, as for a close, then closes the channel gracefully as soon as
 * every request the peer sent has been answered (at once if none is
 * pending), so those answers still reach it. */
CMDIPC_EXTERN void cmdipc_channel_eof(cmdipc_channel_t *ch);

/* Transport -> registry: the link dropped but the transport keeps the
 * channel and will re-establish it (a reconnecting dialer). The registry
 * cleans up as for a close (pending calls fail CMDIPC_EDISCONNECTED, routed
 * callers are answered, the channel's commands are forgotten) and sends
 * nothing to it until cmdipc_channel_link_up(). Called before attach, it
 * marks a channel that starts down (still connecting). */
CMDIPC_EXTERN void cmdipc_channel_link_down(cmdipc_channel_t *ch, int status);

/* Transport -> registry: the link is (again) usable. The registry runs its
 * attach handshake again: list.commands.request, then, on its router channel,
 * the escalation of its commands. */
CMDIPC_EXTERN void cmdipc_channel_link_up(cmdipc_channel_t *ch);

/* Transport -> registry: the channel is closed for good (status 0 after an
 * ops->close(), else the reason: UV_EOF, a transport error, a limit). Call it
 * once. The registry fails what was pending on the channel and later calls
 * ops->free(). */
CMDIPC_EXTERN void cmdipc_channel_closed(cmdipc_channel_t *ch, int status);

/* ---------------------------------------------------------------------------
 * Resources: listeners, dialers and other transport objects tied to a
 * registry, so that closing the registry closes them without lib/ knowing
 * any transport.
 */

typedef struct cmdipc_resource_s cmdipc_resource_t;

typedef struct cmdipc_resource_ops_s {
    /* Close the resource. It calls cmdipc_resource_closed() when done (may be
     * later). */
    void (*close)(cmdipc_resource_t *res);
} cmdipc_resource_ops_t;

/* Ties a resource to r. Returns 0, CMDIPC_ECLOSED, UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_resource_add(cmdipc_registry_t *r, const cmdipc_resource_ops_t *ops,
                                      void *impl, cmdipc_resource_t **out);
CMDIPC_EXTERN void *cmdipc_resource_impl(const cmdipc_resource_t *res);
/* The resource finished closing (on its own or because the registry asked);
 * the registry forgets and frees it. */
CMDIPC_EXTERN void cmdipc_resource_closed(cmdipc_resource_t *res);

#ifdef __cplusplus
}
#endif
#endif /* CMDIPC_CHANNEL_H */
