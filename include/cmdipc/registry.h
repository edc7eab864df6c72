/* cmdipc — registries, commands, calls and events.
 *
 * A registry is a handle on a uv_loop_t. It owns commands (named request ->
 * response handlers) and event listeners, and is linked to other registries
 * by channels (see cmdipc/channel.h and cmdipc/transport.h). Everything here
 * is called from the thread that runs the registry's loop.
 *
 * Conventions (the same as libuv's):
 * - Functions that can fail return 0 or a negative status (cmdipc/errno.h).
 * - If a function returns an error, its callback is never called. If it
 *   returns 0, its callback is called exactly once, and never from inside the
 *   call that started it (completions are deferred to the loop).
 * - Callbacks take the object, then the status, then the payload, then the
 *   user's data pointer.
 * - Every callback and notification (completions, handlers, listeners of
 *   received events, channel and command notifications, close callbacks) is
 *   delivered from the loop, never inside the API call that caused it; the
 *   one exception is a local cmdipc_registry_emit(), whose listeners run
 *   inside it. From inside any callback every function here may be called:
 *   closing the registry or a channel, attaching, executing, registering,
 *   emitting.
 *
 * Threads: a registry and everything attached to it belong to its loop's
 * thread. The cross-thread hand-offs are the memory channel and inproc://
 * (cmdipc/transport.h): a message that crosses to another loop is owned by
 * that loop alone (no json_t is ever shared between two threads).
 *
 * JSON ownership (jansson's rules):
 * - json_t arguments are borrowed: cmdipc takes its own reference when it
 *   keeps one. A value handed to the library is frozen: the caller must not
 *   modify it afterwards (it may be encoded later or read on another loop).
 * - json_t values passed to callbacks are borrowed until the callback returns;
 *   json_incref() them to keep them.
 * - Payloads (request, result, event payload) may be any JSON value; NULL
 *   (or a JSON null) means absent: the member is omitted on the wire and
 *   handlers and listeners receive NULL.
 */
#ifndef CMDIPC_REGISTRY_H
#define CMDIPC_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "cmdipc/errno.h"
#include "cmdipc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cmdipc_registry_s cmdipc_registry_t;
typedef struct cmdipc_call_s cmdipc_call_t;
typedef struct cmdipc_req_s cmdipc_req_t;
typedef struct cmdipc_sub_s cmdipc_sub_t;
typedef struct cmdipc_channel_s cmdipc_channel_t;

/* ---------------------------------------------------------------------------
 * Memory
 */

typedef void *(*cmdipc_malloc_fn)(size_t size);
typedef void *(*cmdipc_realloc_fn)(void *ptr, size_t size);
typedef void *(*cmdipc_calloc_fn)(size_t count, size_t size);
typedef void (*cmdipc_free_fn)(void *ptr);

/* Replaces the allocator every cmdipc allocation goes through (as
 * uv_replace_allocator() does for libuv): for accounting memory or injecting
 * failures. Call it before any other cmdipc function, and never while memory
 * from the previous allocator is still held by cmdipc (cmdipc_free() and the
 * objects' own close or free functions release it with the allocator that
 * is current then). The functions must be thread-safe; a zero size is never
 * passed. jansson's values have their own hook (json_set_alloc_funcs()), as
 * do libuv and libsodium. Returns 0, or UV_EINVAL if one is NULL (nothing
 * changes then). */
CMDIPC_EXTERN int cmdipc_replace_allocator(cmdipc_malloc_fn malloc_fn,
                                           cmdipc_realloc_fn realloc_fn,
                                           cmdipc_calloc_fn calloc_fn,
                                           cmdipc_free_fn free_fn) CMDIPC_WUR;

/* ---------------------------------------------------------------------------
 * Logging
 */

typedef enum {
    CMDIPC_LOG_ERROR = 0,
    CMDIPC_LOG_WARN = 1,
    CMDIPC_LOG_INFO = 2,
    CMDIPC_LOG_DEBUG = 3
} cmdipc_log_level_t;

/* Receives the registry's log lines (one sentence, no trailing newline). The
 * message is valid only during the call. */
typedef void (*cmdipc_log_cb)(cmdipc_registry_t *r, cmdipc_log_level_t level,
                              const char *message, void *data);

/* Logs through r's log_cb (nothing when it has none, or the level is above
 * its log_level): for transports and applications that want their lines in
 * the registry's log. printf-style; lines are cut at 511 bytes. r may be
 * NULL (nothing is logged). */
CMDIPC_EXTERN void cmdipc_log(const cmdipc_registry_t *r, cmdipc_log_level_t level,
                              const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A ready-made logger writing "cmdipc[<registry id>] <level>: <message>" lines
 * to stderr. */
CMDIPC_EXTERN void cmdipc_log_stderr(cmdipc_registry_t *r, cmdipc_log_level_t level,
                                     const char *message, void *data);

/* ---------------------------------------------------------------------------
 * Registry
 */

#define CMDIPC_REGISTRY_OPTS_VERSION 2

typedef struct cmdipc_registry_opts_s {
    unsigned version; /* CMDIPC_REGISTRY_OPTS_VERSION (set by _init) */
    /* The registry's name, used in logs. NULL: a random UUIDv4. Copied. */
    const char *id;
    /* The id of the channel leading to this registry's router. NULL: this
     * registry is a root. Copied. */
    const char *router_channel;
    /* Deadline of an outbound call or registration, and lifetime of a route
     * through this registry, in ms. Default 30000; 0 = no deadline. */
    uint64_t request_ttl_ms;
    /* How long an event id is remembered for de-duplication, in ms. Default
     * 5000. */
    uint64_t event_ttl_ms;
    /* At most this many event ids are remembered; when full, the oldest are
     * forgotten first. Default 65536. */
    size_t event_dedup_max;
    /* Unanswered inbound execute and register requests per channel before the
     * channel is paused (resumed at half). Default 128; 0 = no cap. */
    unsigned max_inbound_in_flight;
    /* Calls and forwards awaiting an answer on one channel. Beyond it a new
     * call returns CMDIPC_EOVERLOAD. Default 1024; 0 = no cap. */
    unsigned max_outbound_pending;
    /* Log sink. NULL: silent (unless log_from_env). It is called from inside
     * the library, also inside API calls: it may read the registry
     * (cmdipc_registry_id(), _get_data()) and must not call any other cmdipc
     * function; it must not block (hand slow writes to a queue). */
    cmdipc_log_cb log_cb;
    void *log_data;
    /* Most verbose level passed to log_cb. Default CMDIPC_LOG_WARN. */
    cmdipc_log_level_t log_level;
    /* Serve the built-in command "cmdipc.commands", which answers
     * {"commands":[{id, description?, schema?, channel?, local}...]} with every
     * public command this registry knows (local and remote). Default 0. */
    int builtin_commands;
    /* Version 2. When log_cb is NULL, read the environment variable
     * CMDIPC_LOG (error, warn, info, debug; off or none: nothing) and log to
     * stderr with cmdipc_log_stderr at that level. Default 0: a library
     * embedded in a host process does not log because of its environment
     * (the cmdipc tool turns it on). An unknown value is reported once on
     * stderr and ignored. */
    int log_from_env;
} cmdipc_registry_opts_t;

typedef void (*cmdipc_close_cb)(cmdipc_registry_t *r, void *data);

/* Fills *opts with the defaults above. */
CMDIPC_EXTERN void cmdipc_registry_opts_init(cmdipc_registry_opts_t *opts);

/* Creates a registry on loop. opts may be NULL (defaults). On success *out
 * holds a registry that must be closed with cmdipc_registry_close().
 * Returns UV_EINVAL for bad options, UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_registry_new(uv_loop_t *loop, const cmdipc_registry_opts_t *opts,
                                      cmdipc_registry_t **out) CMDIPC_WUR;

/* Closes the registry: every outbound pending call and registration
 * completes with CMDIPC_ECANCELED, channels are closed gracefully (queued
 * messages are flushed), listeners are closed, then close_cb (may be NULL)
 * runs on a later loop iteration and the registry is freed. After that,
 * uv_loop_close() returns 0 once the loop has run. Calls handed to handlers
 * and not yet answered stay valid until answered; their answers are dropped.
 * Closing a registry that is already closing is a defined no-op that still
 * calls its close_cb (when not NULL) exactly once, when the close completes:
 * every close callback asked for runs, in the order the closes were called
 * (also one asked for from inside a close callback), then the registry is
 * freed. So an exit callback or a CLOSED notification may close the
 * registry whatever else closed it. */
CMDIPC_EXTERN void cmdipc_registry_close(cmdipc_registry_t *r, cmdipc_close_cb close_cb,
                                         void *data);

CMDIPC_EXTERN const char *cmdipc_registry_id(const cmdipc_registry_t *r);
/* As uv_ref()/uv_unref() for the registry's own handles (its deadline
 * timer, its deferred-work idle, its cross-thread wake-up): unreferenced,
 * pending deadlines do not keep uv_run() running. Channels and listeners
 * have their own (cmdipc_channel_unref(), cmdipc_listener_unref()). */
CMDIPC_EXTERN void cmdipc_registry_ref(cmdipc_registry_t *r);
CMDIPC_EXTERN void cmdipc_registry_unref(cmdipc_registry_t *r);

/* 1 once cmdipc_registry_close() was called (new work is refused). */
CMDIPC_EXTERN int cmdipc_registry_is_closing(const cmdipc_registry_t *r);
/* 0 if id is usable as a command, event or channel id (non-empty, UTF-8, no
 * NUL), else UV_EINVAL. */
CMDIPC_EXTERN int cmdipc_id_check(const char *id);
CMDIPC_EXTERN uv_loop_t *cmdipc_registry_loop(const cmdipc_registry_t *r);
CMDIPC_EXTERN void *cmdipc_registry_get_data(const cmdipc_registry_t *r);
CMDIPC_EXTERN void cmdipc_registry_set_data(cmdipc_registry_t *r, void *data);

/* Channel notifications, each with the channel (valid during the call),
 * delivered from the loop in the order the changes happened (never inside
 * cmdipc_registry_attach(), cmdipc_channel_close() or
 * cmdipc_registry_close(); a CLOSED one may come after its registry started
 * closing, before the close callback):
 * - ATTACHED (status 0): attached to the registry;
 * - UP (0): its link is usable (at attach, and after each reconnect of a
 *   reconnecting dialer);
 * - DOWN (why): the link dropped; a reconnecting dialer keeps the channel
 *   attached and tries again; pending calls through it failed;
 * - CLOSED (0 when this side closed it, otherwise why: UV_EOF, a transport
 *   error, a limit, a child's exit): gone for good. */
typedef enum {
    CMDIPC_CHANNEL_ATTACHED = 1,
    CMDIPC_CHANNEL_CLOSED = 2,
    CMDIPC_CHANNEL_UP = 3,
    CMDIPC_CHANNEL_DOWN = 4
} cmdipc_channel_event_t;
typedef void (*cmdipc_channel_cb)(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                                  cmdipc_channel_event_t event, int status, void *data);
CMDIPC_EXTERN void cmdipc_registry_set_channel_cb(cmdipc_registry_t *r, cmdipc_channel_cb cb,
                                                  void *data);

/* Command notifications: a command became reachable through this registry
 * (ADDED: served here, channel_id NULL, or owned by that channel) or stopped
 * being so (REMOVED: unregistered, or its channel closed). Delivered from the
 * loop shortly after the change, in order; the strings are valid during the
 * call. For hubs and monitors. */
typedef enum { CMDIPC_COMMAND_ADDED = 1, CMDIPC_COMMAND_REMOVED = 2 } cmdipc_command_event_t;
typedef void (*cmdipc_command_cb)(cmdipc_registry_t *r, cmdipc_command_event_t event,
                                  const char *command_id, const char *channel_id, void *data);
CMDIPC_EXTERN void cmdipc_registry_set_command_cb(cmdipc_registry_t *r, cmdipc_command_cb cb,
                                                  void *data);

/* ---------------------------------------------------------------------------
 * Commands served here
 *
 * A handler receives a call and the request (borrowed for the duration of
 * the handler; NULL when the request was absent). It must answer the call
 * exactly once, now or later (from a timer, another call's callback, or after
 * a hand-off from another thread), with cmdipc_call_reply() or
 * cmdipc_call_fail(). Handlers run from the loop, never inside
 * cmdipc_registry_execute().
 */

typedef void (*cmdipc_command_fn)(cmdipc_call_t *call, json_t *request, void *data);

/* Completion of a registration: status 0 once the command is live (at once
 * when there is no router to ask, otherwise after the router's ack),
 * CMDIPC_EDUPLICATE when the router refused it, CMDIPC_ETIMEDOUT,
 * CMDIPC_EDISCONNECTED (router gone while waiting) or CMDIPC_ECANCELED
 * (registry closed). On failure the command is not registered. */
typedef void (*cmdipc_register_cb)(cmdipc_registry_t *r, int status, const char *command_id,
                                   void *data);

#define CMDIPC_COMMAND_DEF_VERSION 1
/* The fields below; _init sets version and clears the rest. */

typedef struct cmdipc_command_def_s {
    unsigned version; /* CMDIPC_COMMAND_DEF_VERSION */
    /* Non-empty, valid UTF-8. An id starting with '_' is private: never
     * advertised nor escalated (it stays callable by anyone who knows it). */
    const char *id;
    const char *description; /* NULL = none */
    /* NULL = none, else a JSON object with optional members "request" and
     * "response" (JSON Schemas). Borrowed; frozen once passed. */
    json_t *schema;
} cmdipc_command_def_t;

CMDIPC_EXTERN void cmdipc_command_def_init(cmdipc_command_def_t *def);

/* Registers a local command. The id is reserved at once; when the registry
 * has a router attached and the id is public, the command goes live after
 * the router's ack.
 * Returns: 0 (done, if not NULL, is called later), UV_EINVAL (bad def),
 * CMDIPC_EDUPLICATE (id known locally or remotely, or reserved),
 * CMDIPC_EOVERLOAD (the router channel is at its outbound cap),
 * CMDIPC_ECLOSED. */
CMDIPC_EXTERN int cmdipc_registry_register(cmdipc_registry_t *r,
                                           const cmdipc_command_def_t *def,
                                           cmdipc_command_fn fn, void *data,
                                           cmdipc_register_cb done, void *done_data);

/* Removes a live local command (no message is sent: spec-v1 has no
 * unregistration; routers keep their route until the owning channel closes).
 * Calls already running keep running. Returns UV_ENOENT if there is no such
 * local command, UV_EBUSY while its registration awaits the router. */
CMDIPC_EXTERN int cmdipc_registry_unregister(cmdipc_registry_t *r, const char *command_id);

/* Answers a call with a result (borrowed; NULL omits "result"). Consumes and
 * frees the call in every case. If the result cannot be emitted (nested
 * deeper than 62 levels — 64 with the envelope — or holding NUL), the caller
 * gets internal_error instead and UV_EINVAL is returned. After the call's channel or registry is gone the
 * answer is dropped and 0 is returned. */
CMDIPC_EXTERN int cmdipc_call_reply(cmdipc_call_t *call, json_t *result);

/* Fails a call with a status having an execute wire code (CMDIPC_ENOTFOUND,
 * CMDIPC_EINVALREQ, CMDIPC_EINTERNAL, CMDIPC_ETIMEDOUT, CMDIPC_EDISCONNECTED);
 * any other status is sent as internal_error. message may be NULL (the
 * status's text is used). Consumes and frees the call, like reply. */
CMDIPC_EXTERN int cmdipc_call_fail(cmdipc_call_t *call, int status, const char *message);

/* Detaches the call from the loop's thread: from now on it may be answered
 * from any thread, once, with cmdipc_call_reply() or cmdipc_call_fail()
 * (the answer is made ready on that thread, the result written as JSON
 * text there, and delivered by the registry's loop shortly after; no json_t
 * crosses threads). Call it on the loop's thread, from the handler or later,
 * before handing the call over. Afterwards, on other threads, only
 * cmdipc_call_reply(), cmdipc_call_fail(), cmdipc_call_command_id() and
 * cmdipc_call_request_id() may be used with the call. If the registry has
 * closed by the time the answer comes, the answer is dropped and the call
 * freed on the answering thread. Returns 0, UV_EALREADY (detached already),
 * CMDIPC_ECLOSED (the registry is gone), UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_call_detach(cmdipc_call_t *call) CMDIPC_WUR;

/* Information about a call, valid until it is answered. */
CMDIPC_EXTERN const char *cmdipc_call_command_id(const cmdipc_call_t *call);
/* The wire id of the request being answered (the response's thid). */
CMDIPC_EXTERN const char *cmdipc_call_request_id(const cmdipc_call_t *call);
/* The id of the channel the request came from; NULL for a local execute or
 * once that channel has closed. */
CMDIPC_EXTERN const char *cmdipc_call_channel_id(const cmdipc_call_t *call);
/* The registry serving the call, or NULL once it has been closed. */
CMDIPC_EXTERN cmdipc_registry_t *cmdipc_call_registry(const cmdipc_call_t *call);
/* 1 while an answer would still reach the caller, 0 once it would be dropped
 * (caller's channel closed, call canceled or timed out, registry closed). */
CMDIPC_EXTERN int cmdipc_call_is_live(const cmdipc_call_t *call);

/* ---------------------------------------------------------------------------
 * Commands called from here
 */

/* Response to an execute. status 0: result is the value (borrowed, NULL when
 * the peer sent none) and message NULL. status < 0: result NULL and message
 * the reason (never NULL). The req is freed when the callback returns. */
typedef void (*cmdipc_response_cb)(cmdipc_req_t *req, int status, json_t *result,
                                   const char *message, void *data);

/* timeout_ms value meaning "the registry's request_ttl_ms". */
#define CMDIPC_TIMEOUT_DEFAULT UINT64_MAX
#define CMDIPC_EXEC_OPTS_VERSION 2

typedef struct cmdipc_exec_opts_s {
    unsigned version; /* CMDIPC_EXEC_OPTS_VERSION */
    /* Deadline in ms; CMDIPC_TIMEOUT_DEFAULT (the default) uses the
     * registry's request_ttl_ms; 0 = none. */
    uint64_t timeout_ms;
    /* Version 2. What a call does when it has no route yet: the router
     * channel is not connected (a dialer still connecting or reconnecting),
     * the channel that owns the command is going away, or (at a root) the
     * command is not known yet.
     * 0 (the default): it fails at once (its callback, later) with
     * CMDIPC_EDISCONNECTED or CMDIPC_ENOTFOUND.
     * 1: it waits, within its deadline, until the route exists (a channel
     * came up, the command became known), then goes; with a router, the
     * route is the router channel being up (the router may still answer
     * not_found: spec-v1 cannot ask it to wait); if the deadline passes
     * first it fails with CMDIPC_ETIMEDOUT ("no route ... before the
     * deadline"). With no deadline it waits until canceled. */
    int wait_for_route;
} cmdipc_exec_opts_t;

CMDIPC_EXTERN void cmdipc_exec_opts_init(cmdipc_exec_opts_t *opts);

/* Executes command_id with request (borrowed, NULL = omit): locally when it is
 * served here, otherwise through the channel that owns it, otherwise through
 * the router; at a root an unknown command completes with CMDIPC_ENOTFOUND.
 * cb is required and runs later, exactly once, with the result or one of
 * CMDIPC_ENOTFOUND, CMDIPC_EINVALREQ, CMDIPC_EINTERNAL, CMDIPC_ETIMEDOUT,
 * CMDIPC_EDISCONNECTED, CMDIPC_ECANCELED. *out (if not NULL) receives the
 * request handle, valid until cb returns.
 * Returns: 0, UV_EINVAL (bad arguments: NULL, empty or non-UTF-8 id, request
 * nested deeper than 63 levels — 64 with the envelope, the limit receivers
 * apply — or holding NUL), CMDIPC_EOVERLOAD (target channel at its cap
 * or its queue full; nothing was sent), CMDIPC_ECLOSED. */
CMDIPC_EXTERN int cmdipc_registry_execute(cmdipc_registry_t *r, const char *command_id,
                                          json_t *request, const cmdipc_exec_opts_t *opts,
                                          cmdipc_response_cb cb, void *data,
                                          cmdipc_req_t **out);

/* Cancels a pending execute: its callback runs later with CMDIPC_ECANCELED
 * and nothing goes on the wire (a late answer is dropped). Cancelling a req
 * whose callback already ran is a programming error. */
CMDIPC_EXTERN void cmdipc_req_cancel(cmdipc_req_t *req);

/* The wire id of the request (the thid of its response). */
CMDIPC_EXTERN const char *cmdipc_req_id(const cmdipc_req_t *req);
CMDIPC_EXTERN const char *cmdipc_req_command_id(const cmdipc_req_t *req);
CMDIPC_EXTERN cmdipc_registry_t *cmdipc_req_registry(const cmdipc_req_t *req);

/* ---------------------------------------------------------------------------
 * Events
 */

/* payload is borrowed for the call; NULL when the event carried none. */
typedef void (*cmdipc_event_cb)(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                                void *data);

/* Adds a listener for event_id, or for every event when event_id is NULL.
 * Listeners of an event run in the order they were added. A listener added
 * while an event is being delivered is first called for the next event.
 * *out (may be NULL) is valid until cmdipc_sub_off() or the registry's close
 * callback. Returns 0, UV_EINVAL, CMDIPC_ECLOSED. */
CMDIPC_EXTERN int cmdipc_registry_on(cmdipc_registry_t *r, const char *event_id,
                                     cmdipc_event_cb cb, void *data, cmdipc_sub_t **out);

/* Removes a listener. It is not called again, even by a delivery in
 * progress. */
CMDIPC_EXTERN void cmdipc_sub_off(cmdipc_sub_t *sub);

/* Emits an event: local listeners run synchronously, inside this call, in
 * order; then (unless event_id starts with '_') the event goes to every
 * attached channel. payload is borrowed (NULL = none; at most 63 levels
 * deep, as for execute). A channel whose queue
 * cannot take the event is closed as a slow consumer (counted and logged).
 * Returns 0, UV_EINVAL, CMDIPC_ECLOSED. */
CMDIPC_EXTERN int cmdipc_registry_emit(cmdipc_registry_t *r, const char *event_id,
                                       json_t *payload);

/* ---------------------------------------------------------------------------
 * Introspection
 */

typedef struct cmdipc_command_info_s {
    char *id;
    char *description; /* NULL = none */
    json_t *schema;    /* owned reference; NULL = none */
    char *channel_id;  /* owning channel; NULL for local commands */
    int is_local;
    int is_private;
} cmdipc_command_info_t;

/* Lists the commands this registry can reach: live local ones (private ones
 * flagged) and remote ones with their owning channel, sorted by id. Free the
 * array with cmdipc_command_info_free(). Returns 0 or UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_registry_list_commands(cmdipc_registry_t *r,
                                                cmdipc_command_info_t **out, size_t *n);
CMDIPC_EXTERN void cmdipc_command_info_free(cmdipc_command_info_t *info, size_t n);

/* Why inbound messages were dropped. Each rejected or unusable message is
 * counted under exactly one reason. */
typedef enum {
    CMDIPC_DROP_INVALID = 0,     /* not valid JSON / not a valid message / over a limit */
    CMDIPC_DROP_UNKNOWN_TYPE,    /* a type spec-v1 does not define */
    CMDIPC_DROP_UNMATCHED,       /* a response nobody waits for (late, unknown thid) */
    CMDIPC_DROP_DUPLICATE_EVENT, /* an event id already seen */
    CMDIPC_DROP_LATE_ANSWER,     /* a handler answered after its caller was gone */
    CMDIPC_DROP_CLOSED,          /* arrived on a channel being closed */
    CMDIPC_DROP_UNSENT, /* an answer, ack or event whose channel could not take it */
    CMDIPC_DROP__MAX
} cmdipc_drop_reason_t;

CMDIPC_EXTERN const char *cmdipc_drop_reason_name(cmdipc_drop_reason_t reason);

typedef struct cmdipc_stats_s {
    uint64_t msgs_in;            /* messages received on channels */
    uint64_t msgs_out;           /* messages handed to channels */
    uint64_t dropped[CMDIPC_DROP__MAX];
    uint64_t invalid_request_replies; /* invalid_request answers to bad executes */
    uint64_t executes;           /* local executes started */
    uint64_t handled;            /* calls run by local handlers */
    uint64_t forwarded;          /* requests forwarded to another channel */
    uint64_t timeouts;           /* calls and registrations that timed out */
    uint64_t routes_expired;     /* forwarded requests never answered */
    uint64_t canceled;           /* calls canceled */
    uint64_t events_emitted;     /* local emits */
    uint64_t events_received;    /* distinct events received */
    uint64_t overloads;          /* CMDIPC_EOVERLOAD returned or answered */
    uint64_t slow_consumers;     /* channels closed because they did not keep up */
    uint64_t channels_attached;
    uint64_t disconnects;        /* channels closed (any reason) */
    uint64_t pauses;             /* times a channel was paused at the in-flight cap */
    /* Current values. */
    uint64_t channels;
    uint64_t commands_local;
    uint64_t commands_remote;
    uint64_t pending_calls;   /* outbound calls and registrations in flight */
    uint64_t routes;          /* forwarded requests in flight */
    uint64_t calls_in_flight; /* inbound calls not yet answered */
    uint64_t notices_lost;    /* channel notifications lost for want of memory */
} cmdipc_stats_t;

/* Copies the counters. */
CMDIPC_EXTERN void cmdipc_registry_stats(const cmdipc_registry_t *r, cmdipc_stats_t *out);

/* Test hook: the number of deferred completions queued and not yet run. The
 * conformance runner runs the loop until this is 0 and no channel queue
 * changes. */
CMDIPC_EXTERN size_t cmdipc_registry_deferred_count(const cmdipc_registry_t *r);

#ifdef __cplusplus
}
#endif
#endif /* CMDIPC_REGISTRY_H */
