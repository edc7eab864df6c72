/* cmdipc — internal declarations shared by lib/ and transports/.
 *
 * Internal non-static names use the cmdipc__ prefix. Nothing here is
 * installed or exported from the shared library. */
#ifndef CMDIPC_INTERNAL_H
#define CMDIPC_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

#include "cmdipc.h"
#include "testing.h"

#include "common.h"

/* ---------------------------------------------------------------------------
 * Small blocks from a per-thread cache (pool.c): for messages, calls and
 * requests. A block from cmdipc__palloc() is freed with cmdipc__pfree(), on
 * any thread. */

void *cmdipc__palloc(size_t n);
void cmdipc__pfree(void *p);
/* 1 in sanitizer builds: palloc and pfree are plain malloc and free there. */
int cmdipc__pool_bypassed(void);

/* The per-thread CSPRNG buffer message ids are drawn from (util.c). */
#define CMDIPC__RND_SIZE  4096
#define CMDIPC__RND_REKEY 256
typedef struct cmdipc__rnd_s {
    unsigned char buf[CMDIPC__RND_SIZE];
    size_t pos;
    unsigned char key[32];
    uint64_t nonce;
    unsigned refills;
} cmdipc__rnd_t;
/* This thread's, or NULL when it cannot be allocated. */
cmdipc__rnd_t *cmdipc__thread_rnd(void);


/* ---------------------------------------------------------------------------
 * String-keyed intrusive hash map. Keys are owned by the containing object
 * and hashed with SipHash under a per-process random key. */

typedef struct cmdipc__hnode_s {
    struct cmdipc__hnode_s *next;
    uint64_t hash;
    const char *key;
} cmdipc__hnode_t;

typedef struct cmdipc__map_s {
    cmdipc__hnode_t **buckets;
    size_t mask; /* nbuckets - 1; 0 with buckets NULL before the first put */
    size_t count;
} cmdipc__map_t;

void cmdipc__map_init(cmdipc__map_t *m);
void cmdipc__map_free(cmdipc__map_t *m); /* frees the bucket array only */
uint64_t cmdipc__hash(const char *key, size_t len);
/* SipHash with c compression and d finalisation rounds (1/3 for the maps). */
uint64_t cmdipc__siphash(const unsigned char key[16], const char *in, size_t len, int c_rounds,
                         int d_rounds);
const unsigned char *cmdipc__hash_key(void);
cmdipc__hnode_t *cmdipc__map_get(const cmdipc__map_t *m, const char *key);
/* Inserts n (n->key set by the caller; no duplicate check). */
int cmdipc__map_put(cmdipc__map_t *m, cmdipc__hnode_t *n);
/* The same with the key's hash (cmdipc__hash) already computed. */
cmdipc__hnode_t *cmdipc__map_get_h(const cmdipc__map_t *m, const char *key, uint64_t h);
int cmdipc__map_put_h(cmdipc__map_t *m, cmdipc__hnode_t *n, uint64_t h);
void cmdipc__map_del(cmdipc__map_t *m, cmdipc__hnode_t *n);

/* Iteration that tolerates deleting the current node. */
typedef struct cmdipc__map_iter_s {
    const cmdipc__map_t *m;
    size_t bucket;
    cmdipc__hnode_t *next;
} cmdipc__map_iter_t;
void cmdipc__map_iter_init(cmdipc__map_iter_t *it, const cmdipc__map_t *m);
cmdipc__hnode_t *cmdipc__map_iter_next(cmdipc__map_iter_t *it);

/* ---------------------------------------------------------------------------
 * Min-heap of deadlines. */

typedef struct cmdipc__timer_s cmdipc__timer_t;
/* What a deadline does when it passes; t is the entry's own timer (taken out
 * of the heap already). */
typedef void (*cmdipc__expire_fn)(cmdipc_registry_t *r, cmdipc__timer_t *t);

struct cmdipc__timer_s {
    uint64_t deadline;
    size_t index; /* position in the heap; SIZE_MAX when not queued */
    cmdipc__expire_fn expire;
    uint8_t kind; /* what holds it (CMDIPC__T_*), for the out maps */
};

static inline void cmdipc__timer_init(cmdipc__timer_t *t, int kind, cmdipc__expire_fn expire) {
    t->index = SIZE_MAX;
    t->kind = (uint8_t)kind;
    t->expire = expire;
}

typedef struct cmdipc__heap_s {
    cmdipc__timer_t **v;
    size_t n;
    size_t cap;
} cmdipc__heap_t;

void cmdipc__heap_init(cmdipc__heap_t *h);
void cmdipc__heap_free(cmdipc__heap_t *h);
int cmdipc__heap_push(cmdipc__heap_t *h, cmdipc__timer_t *t);
void cmdipc__heap_remove(cmdipc__heap_t *h, cmdipc__timer_t *t);
static inline cmdipc__timer_t *cmdipc__heap_top(const cmdipc__heap_t *h) {
    return h->n ? h->v[0] : NULL;
}
static inline int cmdipc__timer_queued(const cmdipc__timer_t *t) {
    return t->index != SIZE_MAX;
}

/* ---------------------------------------------------------------------------
 * Eight bytes at a time (SWAR): the index of the first byte of the n at p
 * that is '"', '\\', a control character (< 0x20) or not ASCII (>= 0x80), or
 * n when there is none. The plain runs of JSON strings are skipped or copied
 * this way. */

static inline size_t cmdipc__plain_run(const unsigned char *p, size_t n) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
#if defined(__SSE2__) && defined(__GNUC__)
    /* Sixteen at a time: as signed bytes, 0x80 and above are negative, so
     * one "less than 0x20" finds both control and non-ASCII bytes. */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i stop = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
            _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask != 0)
            return i + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
        /* A lane's high bit: '"' or '\\' (zero after the xor), below 0x20
         * (the subtraction wraps), or 0x80 and above. Borrows only run
         * upwards from a hit, so the lowest bit set is the first hit. */
        uint64_t hit =
            (((q - ones) & ~q) | ((bs - ones) & ~bs) | (w - ones * 0x20) | w) & highs;
        if (hit != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                                      \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }
    }
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}

/* ---------------------------------------------------------------------------
 * Ids, JSON checks, UTF-8. */

#define CMDIPC__UUID_LEN 36
/* Writes a fresh lowercase UUIDv4 and a NUL into out[37]. Randomness comes
 * from libsodium's CSPRNG through a per-thread buffer. */
void cmdipc__uuid4(char out[CMDIPC__UUID_LEN + 1]);
/* 1 if s is a UUID in RFC 4122 layout (version 1-5, variant 8/9/a/b). */
int cmdipc__is_uuid(const char *s);

/* Initializes libsodium and the hash key once per process. 0 or UV_EIO. */
int cmdipc__global_init(void);

/* 1 if the n bytes at s are valid UTF-8 without NUL. */
int cmdipc__utf8_valid(const char *s, size_t n);
/* 0 if s is a valid non-empty identifier (UTF-8, no NUL), else UV_EINVAL. */
int cmdipc__check_id(const char *s);

/* Depth a payload may have so that its message stays within the default
 * limit of 64: the envelope adds one level above request and payload, two
 * above result, two above a command's schema. */
#define CMDIPC__MAX_DEPTH     64
#define CMDIPC__PAYLOAD_DEPTH (CMDIPC__MAX_DEPTH - 1)
#define CMDIPC__RESULT_DEPTH  (CMDIPC__MAX_DEPTH - 2)

/* Checks a json_t the library is asked to emit: nesting at most max_depth,
 * no NUL in strings or keys. Returns 0, CMDIPC_EJSONDEPTH or CMDIPC_EJSONNUL. */
int cmdipc__json_check(const json_t *v, unsigned max_depth);

/* Pre-scan of JSON text before jansson parses it: nesting depth, container
 * count and raw NUL bytes. Returns 0 or CMDIPC_EJSONDEPTH / EJSONSIZE /
 * EJSONNUL with *pos at the offending byte. */
int cmdipc__json_prescan(const char *buf, size_t len, unsigned max_depth,
                         size_t max_containers, size_t *pos);

/* 1 if lim is a cmdipc_limits_t a caller may pass: built by
 * cmdipc_limits_init() (a version this library knows) with non-zero limits.
 * A zeroed struct is refused rather than read as "no line may pass". */
static inline int cmdipc__limits_valid(const cmdipc_limits_t *lim) {
    return lim->version != 0 && lim->version <= CMDIPC_LIMITS_VERSION && lim->max_line != 0 &&
           lim->max_depth != 0 && lim->max_containers != 0;
}

/* ---------------------------------------------------------------------------
 * The envelope scanner (scan.c). */

/* Where a member's value sits in the line. type: 's' string, 'S' string with
 * escapes, 'n' number, 't' true, 'f' false, 'z' null, 'o' object, 'a' array. */
typedef struct cmdipc__span_s {
    uint32_t off; /* lines are at most 64 MiB */
    uint32_t len;
    char type;
    uint8_t present;
} cmdipc__span_t;

typedef struct cmdipc__env_s {
    cmdipc__span_t id, type, thid, command_id, event_id, request, payload, response;
    cmdipc__span_t ok, result, error; /* inside response */
    cmdipc__span_t code, message;     /* inside response.error */
    /* Members of the top object, of response and of response.error: with
     * the spans above they tell whether a line holds nothing but spec-v1
     * members (then it can be forwarded as it is). */
    uint32_t n_top, n_response, n_error;
    uint8_t multiline; /* a line break between tokens */
} cmdipc__env_t;

/* Validates len bytes of JSON exactly as the pre-scan plus jansson
 * (JSON_REJECT_DUPLICATES) would, within lim, and records the envelope
 * members. Returns 0 or CMDIPC_EBADJSON / EJSONDEPTH / EJSONSIZE / EDUPKEY /
 * EJSONNUL / EJSONRANGE / UV_ENOMEM, with *errpos. */
int cmdipc__scan(const char *buf, size_t len, const cmdipc_limits_t *lim, cmdipc__env_t *env,
                 size_t *errpos);
/* Decodes a validated JSON string literal (quotes included) into out, which
 * has room for n bytes; returns the decoded length. */
size_t cmdipc__json_unescape(const char *b, size_t n, char *out);
/* The json_t of n bytes that cmdipc__scan accepted as (part of) a message:
 * the value json_loadb(JSON_DECODE_ANY | JSON_REJECT_DUPLICATES) returns for
 * them, built without jansson's lexer. NULL only when out of memory. */
json_t *cmdipc__json_build(const char *b, size_t n);
/* strtod as jansson calls it: '.' read as the locale's decimal point.
 * b[0..n) is a number token. */
double cmdipc__strtod(const char *b, size_t n, int *overflow);

/* ---------------------------------------------------------------------------
 * Messages. */

typedef struct cmdipc__payload_s {
    json_t *json; /* owned reference, or NULL */
    char *text;   /* exact JSON text, or NULL */
    size_t len;
    int text_owned; /* text is a malloc of its own (else inside the message) */
} cmdipc__payload_t;

struct cmdipc_msg_s {
    cmdipc_msg_t *next; /* free link for transports' queues */
    uint8_t type;       /* cmdipc_msg_type_t */
    int status;         /* responses: 0 or the error status */
    const char *id;
    const char *thid;
    const char *name;        /* commandId / eventId / command.id */
    const char *message;     /* execute response error message */
    const char *description; /* register request */
    json_t *root;            /* the decoded object the strings above point into */
    cmdipc__payload_t body;  /* request / result / payload / schema / commands */
    /* A received line holding only spec-v1 members, kept to be re-sent byte
     * for byte (forwarding): with a new id, the id is spliced in. */
    const char *raw;
    const char *raw_id; /* the id decoded from it: m->id unless changed */
    uint32_t raw_len;
    uint32_t raw_id_off, raw_id_len; /* the id's span (quotes included) */
    char idbuf[CMDIPC__UUID_LEN + 1];
    char strings[]; /* strings of messages built locally */
};

/* Builds a message. id NULL: a fresh UUIDv4. The strings are copied. */
cmdipc_msg_t *cmdipc__msg_new(cmdipc_msg_type_t type, const char *id, const char *thid,
                              const char *name, const char *message,
                              const char *description);
/* Sets the body to v (a reference is taken). */
void cmdipc__msg_set_json(cmdipc_msg_t *m, json_t *v);
/* A copy of m with a fresh id (for re-sending a response), or NULL. */
cmdipc_msg_t *cmdipc__msg_reid(const cmdipc_msg_t *m);
/* A copy of m with the same id (one struct per destination), or NULL. */
cmdipc_msg_t *cmdipc__msg_clone(const cmdipc_msg_t *m);
/* Makes m hold no json_t (its payload as owned text; a jansson-decoded
 * message is replaced by a copy), so that it can be handed to a loop on
 * another thread (handoff.c). Returns 0 or UV_ENOMEM (*pm is still valid and
 * still the caller's then). */
int cmdipc__msg_detach(cmdipc_msg_t **pm);
/* Appends the encoding of m (no newline). */
int cmdipc__msg_encode_buf(const cmdipc_msg_t *m, cmdipc__buf_t *b);
/* The reference decoder (jansson parses the whole line), kept for message
 * types off the hot path and as the fuzzing cross-check of the scanner. */
int cmdipc__msg_decode_jansson(const char *buf, size_t len, const cmdipc_limits_t *lim,
                               cmdipc_msg_t **out, cmdipc_decode_error_t *err);
/* Best effort: if buf looks like an execute request with a readable
 * top-level string id, copies it to out (size n) and returns 1. */
int cmdipc__scan_execute_id(const char *buf, size_t len, char *out, size_t n);

/* ---------------------------------------------------------------------------
 * Registry internals. */

typedef struct cmdipc__deferred_s {
    cmdipc__queue_t link;
    void (*fn)(struct cmdipc__deferred_s *d);
    int queued;
} cmdipc__deferred_t;

typedef struct cmdipc__close_waiter_s {
    struct cmdipc__close_waiter_s *next;
    cmdipc_close_cb cb;
    void *data;
} cmdipc__close_waiter_t;

enum { /* timer kinds */
       CMDIPC__T_EXEC = 1,
       CMDIPC__T_REG,
       CMDIPC__T_ROUTE,
       CMDIPC__T_RETRY,
       CMDIPC__T_LIST
};

enum { /* states of a channel (channel.c) */
       CMDIPC__CH_NEW = 0,
       CMDIPC__CH_ATTACHED,
       CMDIPC__CH_CLOSING, /* detached, ops->close called, waiting for closed */
       CMDIPC__CH_CLOSED   /* closed reported; released with its last reference */
};

/* Something awaiting an answer on a channel (its target): a local execute, a
 * registration escalated to the router, or a forwarded request (route). Kept
 * in target->out under its wire id. */
typedef struct cmdipc__out_s {
    cmdipc__hnode_t node;
    cmdipc__timer_t timer;
    cmdipc_channel_t *target;
} cmdipc__out_t;

struct cmdipc_channel_s {
    cmdipc__hnode_t node;  /* in reg->channels */
    cmdipc__queue_t link;  /* reg->channel_list, attach order */
    char *id;
    const cmdipc_channel_ops_t *ops;
    void *impl;
    void *data;
    cmdipc_registry_t *reg;
    int state;
    int failing;           /* status of a pending abrupt close (slow consumer) */
    int paused;
    int down;              /* link down: a dialer reconnects */
    int eof;               /* the peer finished sending: close once answered */
    unsigned in_flight;    /* inbound requests from here, unanswered */
    cmdipc__map_t out;     /* cmdipc__out_t targeted here, by wire id */
    cmdipc__queue_t calls; /* cmdipc_call_t from here */
    cmdipc__queue_t from;  /* routes and child registrations originating here */
    cmdipc_limits_t limits;
    unsigned refs;                /* the registry's, queued tasks', a dispatch's */
    cmdipc__deferred_t fail_task; /* abrupt close (slow consumer, error) */
    cmdipc__deferred_t eof_task;  /* graceful close once a half-closed peer is answered */
    cmdipc__deferred_t release_task; /* drops the registry's reference after closed */
};

typedef struct cmdipc__cmd_s cmdipc__cmd_t;
typedef struct cmdipc__reg_s cmdipc__reg_t;

struct cmdipc_req_s {
    cmdipc__out_t out; /* out.target NULL for local or immediate calls */
    cmdipc_registry_t *reg;
    cmdipc__deferred_t deferred;
    cmdipc__queue_t link; /* reg->reqs: every req not yet completed */
    cmdipc_response_cb cb;
    void *data;
    cmdipc_call_t *call; /* local handler call, if any */
    cmdipc__queue_t wait_link; /* reg->waiting while it waits for a route */
    json_t *wait_request;      /* the request, kept while waiting */
    uint8_t waiting;
    int done;            /* completion recorded */
    int message_owned;   /* message was allocated (else static) */
    int status;
    json_t *result;
    char *message;
    char *command_id; /* points into strings */
    char id[CMDIPC__UUID_LEN + 1];
    char strings[];
};

struct cmdipc_call_s {
    cmdipc_registry_t *reg; /* NULL once the registry is gone */
    cmdipc__queue_t link;   /* origin->calls, or reg->calls */
    cmdipc_channel_t *origin;
    cmdipc_req_t *req; /* local execute being served */
    cmdipc__deferred_t deferred;
    cmdipc_command_fn fn;
    void *fn_data;
    json_t *request;
    struct cmdipc__xt_s *xt; /* set by cmdipc_call_detach: answered from any thread */
    /* The answer made on another thread, read by the loop (xthread.c). */
    cmdipc__queue_t xt_link;
    int xt_status;
    char *xt_text;    /* result as JSON text (owned), or NULL */
    size_t xt_len;
    char *xt_message; /* owned, or NULL */
    char *thid;       /* points into strings */
    char *command_id; /* points into strings */
    char strings[];
};

typedef struct cmdipc__sub_list_s cmdipc__sub_list_t;

struct cmdipc_sub_s {
    cmdipc__queue_t link; /* in its list */
    cmdipc_registry_t *reg;
    cmdipc__sub_list_t *list;
    cmdipc_event_cb cb;
    void *data;
    uint64_t gen;  /* delivery generation it was added in */
    int removed;
    int refs;      /* deliveries holding it */
};

struct cmdipc_registry_s {
    uv_loop_t *loop;
    char *id;
    char *router_id;
    uint64_t request_ttl_ms;
    uint64_t event_ttl_ms;
    size_t event_dedup_max;
    unsigned max_in_flight;
    unsigned max_out;
    cmdipc_log_cb log_cb;
    void *log_data;
    int log_level;
    void *data;
    cmdipc_channel_cb channel_cb;
    void *channel_cb_data;
    cmdipc_command_cb command_cb;
    void *command_cb_data;
    cmdipc__queue_t command_events; /* pending notifications */
    cmdipc__deferred_t command_events_deferred;

    int closing;
    int busy;             /* dispatches, emits and the teardown in progress */
    int teardown_pending; /* closed during one of them */
    int handles_open;
    int handles_closing; /* uv_close called on timer and idle: nothing may be deferred */
    int unref;            /* cmdipc_registry_unref(): its handles do not hold the loop */
    cmdipc__close_waiter_t *close_waiters; /* close callbacks, in call order */
    struct cmdipc__xt_s *xt; /* answers from other threads (first cmdipc_call_detach) */
    unsigned channels_closing;
    uv_timer_t timer;
    uv_idle_t idle;
    uint64_t timer_armed; /* deadline the uv timer is armed for; UINT64_MAX none */
    cmdipc__clock_fn clock;
    void *clock_data;

    cmdipc__map_t commands;      /* id -> cmdipc__cmd_t */
    cmdipc__queue_t cmd_order;   /* registration order */
    cmdipc__map_t channels;      /* id -> channel */
    cmdipc__queue_t channel_list;
    cmdipc_channel_t *router;
    cmdipc__heap_t heap;
    cmdipc__queue_t deferred;
    size_t deferred_count;
    cmdipc__queue_t reqs;        /* uncompleted cmdipc_req_t */
    cmdipc__queue_t waiting;     /* of them, those waiting for a route */
    cmdipc__deferred_t waiting_task;
    cmdipc__queue_t regs;        /* every cmdipc__reg_t */
    cmdipc__queue_t lists;       /* pending cmdipc_channel_list_commands() */
    cmdipc__queue_t calls;       /* local and orphaned calls */
    cmdipc__queue_t resources;
    cmdipc__map_t events;        /* event id -> cmdipc__sub_list_t */
    cmdipc__sub_list_t *wildcard;
    uint64_t sub_gen;
    cmdipc__map_t seen;          /* event ids */
    cmdipc__queue_t seen_fifo;
    cmdipc_stats_t stats;
};

/* registry.c */
uint64_t cmdipc__now(const cmdipc_registry_t *r);
void cmdipc__defer(cmdipc_registry_t *r, cmdipc__deferred_t *d);
/* Takes d off the deferred queue if it is queued (also from the batch being
 * run). Returns 1 if it was queued. */
int cmdipc__undefer(cmdipc_registry_t *r, cmdipc__deferred_t *d);
void cmdipc__deadline_arm(cmdipc_registry_t *r, cmdipc__timer_t *t, uint64_t deadline);
void cmdipc__deadline_cancel(cmdipc_registry_t *r, cmdipc__timer_t *t);
void cmdipc__log(const cmdipc_registry_t *r, cmdipc_log_level_t level, const char *fmt,
                 ...) CMDIPC__PRINTF(3, 4);
void cmdipc__maybe_finish_close(cmdipc_registry_t *r);

/* channel.c */
int cmdipc__channel_set_id(cmdipc_channel_t *ch, const char *id);
/* Hands m to ch. Returns 0 or the transport's status (m is consumed). */
int cmdipc__send(cmdipc_channel_t *ch, cmdipc_msg_t *m);
/* Hands m to ch; if the channel cannot take it, closes the channel as a slow
 * consumer. For messages that cannot be refused to a caller. What cannot be
 * sent is counted (CMDIPC_DROP_UNSENT). */
void cmdipc__send_or_fail(cmdipc_channel_t *ch, cmdipc_msg_t *m);
/* Schedules an abrupt close of ch with status (from a safe point). */
void cmdipc__channel_fail(cmdipc_channel_t *ch, int status);
void cmdipc__in_flight_inc(cmdipc_channel_t *ch);
void cmdipc__in_flight_dec(cmdipc_channel_t *ch);
/* Resumes reading on ch if it was paused and is below half the cap. */
void cmdipc__channel_resume(cmdipc_channel_t *ch);
/* Closes every attached channel gracefully (registry close). */
void cmdipc__channel_close_all(cmdipc_registry_t *r);
/* Ends a dispatch or emit; runs a close requested meanwhile. */
void cmdipc__busy_leave(cmdipc_registry_t *r);

/* calls.c */
int cmdipc__req_complete(cmdipc_req_t *req, int status, json_t *result, const char *message);
void cmdipc__req_answer(cmdipc_req_t *req, int status, json_t *result, const char *message);
void cmdipc__call_start(cmdipc_registry_t *r, cmdipc_channel_t *origin, cmdipc_msg_t *m,
                        cmdipc__cmd_t *cmd);
void cmdipc__calls_orphan(cmdipc_registry_t *r, cmdipc__queue_t *calls);
void cmdipc__reqs_cancel_all(cmdipc_registry_t *r);
/* A command became reachable or a channel came up: calls waiting for a route
 * try again (from the loop). */
void cmdipc__routes_changed(cmdipc_registry_t *r);
void cmdipc__call_free(cmdipc_call_t *c);
/* Answers c with a result given as JSON text (owned, malloc'd: consumed). */
void cmdipc__call_answer_text(cmdipc_call_t *c, int status, char *text, size_t len,
                              const char *message);

/* xthread.c: answers from other threads. */
typedef struct cmdipc__xt_s cmdipc__xt_t;
/* From any thread: records the answer of a detached call and wakes its loop
 * (or frees the call if its registry is gone). Returns 0 or UV_ENOMEM. */
int cmdipc__xt_answer(cmdipc_call_t *c, int status, json_t *result, const char *message);
/* The registry closes (loop thread): no more answers are taken; the handle
 * is closed with handle_closed as its close callback. Returns 1 if there
 * was a handle to close. */
int cmdipc__xt_shutdown(cmdipc_registry_t *r, uv_close_cb handle_closed);
/* uv_ref/uv_unref of the cross-thread handle, when there is one. */
void cmdipc__xt_set_ref(cmdipc_registry_t *r, int ref);

/* Sends an execute error response to ch. */
void cmdipc__reply_error(cmdipc_channel_t *ch, const char *thid, int status,
                         const char *message);

/* The command table, registrations and routes (commands.c, escalation.c,
 * routing.c). */
struct cmdipc__cmd_s {
    cmdipc__hnode_t node;
    cmdipc__queue_t order;
    char *id;
    char *description;
    json_t *schema;
    uint8_t state; /* CMDIPC__CMD_* */
    uint8_t is_private;
    uint8_t builtin;
    cmdipc_channel_t *owner; /* remote owner (or pending owner) */
    cmdipc_command_fn fn;
    void *data;
    cmdipc__reg_t *escalation;  /* registration in flight for this command */
    cmdipc__timer_t retry;
    uint64_t backoff_ms;
};

enum {
    CMDIPC__CMD_LOCAL = 1,
    CMDIPC__CMD_LOCAL_PENDING, /* awaiting the router's ack */
    CMDIPC__CMD_REMOTE,
    CMDIPC__CMD_REMOTE_PENDING /* a child's registration escalated, awaiting ack */
};

enum {
    CMDIPC__REG_LOCAL = 1, /* a local registration awaiting the router */
    CMDIPC__REG_CHILD,     /* a child's registration escalated */
    CMDIPC__REG_AGAIN      /* an existing command escalated on router attach */
};

/* Routes and child registrations start alike so that origin->from can hold
 * both (told apart by out.timer.kind). */
struct cmdipc__reg_s {
    cmdipc__out_t out;
    cmdipc__queue_t from_link;   /* origin->from (child registrations) */
    cmdipc__deferred_t deferred; /* completion of a local registration */
    cmdipc__queue_t link;        /* reg->regs */
    cmdipc_registry_t *reg;
    uint8_t kind;
    cmdipc__cmd_t *cmd;          /* NULL once the command is gone */
    cmdipc_channel_t *origin;    /* CHILD: who asked */
    char *origin_thid;           /* CHILD: the id to answer */
    char **again_thids;          /* CHILD: re-registrations from origin meanwhile */
    unsigned n_again;
    cmdipc_register_cb done;
    void *done_data;
    int status;
    char *command_id;
    char id[CMDIPC__UUID_LEN + 1];
};

typedef struct cmdipc__route_s {
    cmdipc__out_t out; /* keyed by the forwarded id in target->out */
    cmdipc__queue_t from_link;
    cmdipc_channel_t *origin;
    char id[]; /* the forwarded request's id */
} cmdipc__route_t;

static inline int cmdipc__is_private(const char *id) { return id[0] == '_'; }

/* commands.c */
cmdipc__cmd_t *cmdipc__cmd_new(cmdipc_registry_t *r, const char *id, const char *description,
                               json_t *schema, int state, cmdipc_channel_t *owner);
void cmdipc__cmd_remove(cmdipc_registry_t *r, cmdipc__cmd_t *c);
void cmdipc__cmd_refresh(cmdipc__cmd_t *c, const char *description, json_t *schema);
/* Queues an ADDED/REMOVED notification of c. */
void cmdipc__command_notify(cmdipc_registry_t *r, int event, const cmdipc__cmd_t *c);
/* {id, description?, schema?} of c, a new reference; NULL when out of memory. */
json_t *cmdipc__cmd_def_json(const cmdipc__cmd_t *c);

/* escalation.c */
cmdipc__reg_t *cmdipc__reg_new(cmdipc_registry_t *r, int kind, const char *command_id);
void cmdipc__reg_free(cmdipc__reg_t *g);
/* Sends c's registration to the router. Returns 0 (g is pending),
 * CMDIPC_EOVERLOAD, CMDIPC_ECLOSED or UV_ENOMEM. */
int cmdipc__escalate(cmdipc_registry_t *r, cmdipc__reg_t *g, cmdipc__cmd_t *c);
/* Escalates an existing command (router attach, learned from a child). */
void cmdipc__escalate_again(cmdipc_registry_t *r, cmdipc__cmd_t *c);
/* Records the outcome of an escalated registration (frees g). */
void cmdipc__reg_finish(cmdipc__reg_t *g, int status, const char *why);
void cmdipc__inbound_register(cmdipc_channel_t *ch, cmdipc_msg_t *m);

/* lists.c */
typedef struct cmdipc__list_s cmdipc__list_t;
void cmdipc__list_complete(cmdipc__list_t *l, int status, json_t *commands);
void cmdipc__lists_cancel_all(cmdipc_registry_t *r);
void cmdipc__inbound_list_request(cmdipc_channel_t *ch, cmdipc_msg_t *m);
void cmdipc__inbound_list_response(cmdipc_channel_t *ch, cmdipc_msg_t *m);

/* routing.c */
void cmdipc__dispatch(cmdipc_channel_t *ch, cmdipc_msg_t *m);
/* Fails what awaited an answer from ch and forgets its commands. */
void cmdipc__channel_forget_target(cmdipc_channel_t *ch);
/* Everything rule 12 asks when ch's link goes away (for good or until a
 * reconnect): forget_target, then the calls, routes and child
 * registrations that came from ch. */
void cmdipc__channel_forget(cmdipc_channel_t *ch);
void cmdipc__router_attached(cmdipc_registry_t *r);
void cmdipc__retry_due(cmdipc_registry_t *r, cmdipc__timer_t *t);
void cmdipc__commands_free(cmdipc_registry_t *r);
void cmdipc__command_events_free(cmdipc_registry_t *r);
void cmdipc__regs_cancel_all(cmdipc_registry_t *r);
cmdipc__cmd_t *cmdipc__cmd_find(const cmdipc_registry_t *r, const char *id);
int cmdipc__builtin_register(cmdipc_registry_t *r);

/* events.c */
void cmdipc__event_inbound(cmdipc_channel_t *ch, cmdipc_msg_t *m);
void cmdipc__events_free(cmdipc_registry_t *r);

#endif /* CMDIPC_INTERNAL_H */
