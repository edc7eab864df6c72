/* cmdipc — generic helpers shared by lib/ and transports/: the intrusive
 * queue, the growable buffer, allocation, small macros. Nothing about the
 * registry or messages (that is lib/internal.h, which transports never
 * include: they use the public channel API). Not installed. */
#ifndef CMDIPC_COMMON_H
#define CMDIPC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cmdipc.h"

#define cmdipc__container_of(ptr, type, member)                                        \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#if defined(__GNUC__) || defined(__clang__)
#define CMDIPC__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CMDIPC__LIKELY(x)    __builtin_expect(!!(x), 1)
#define CMDIPC__UNLIKELY(x)  __builtin_expect(!!(x), 0)
#else
#define CMDIPC__PRINTF(a, b)
#define CMDIPC__LIKELY(x)   (x)
#define CMDIPC__UNLIKELY(x) (x)
#endif

/* ---------------------------------------------------------------------------
 * Intrusive doubly linked queue (the shape of libuv's src/queue.h). */

typedef struct cmdipc__queue_s {
    struct cmdipc__queue_s *next;
    struct cmdipc__queue_s *prev;
} cmdipc__queue_t;

static inline void cmdipc__queue_init(cmdipc__queue_t *q) { q->next = q->prev = q; }
static inline int cmdipc__queue_empty(const cmdipc__queue_t *q) { return q->next == q; }
static inline void cmdipc__queue_insert_tail(cmdipc__queue_t *h, cmdipc__queue_t *q) {
    q->next = h;
    q->prev = h->prev;
    h->prev->next = q;
    h->prev = q;
}
static inline void cmdipc__queue_remove(cmdipc__queue_t *q) {
    q->prev->next = q->next;
    q->next->prev = q->prev;
    q->next = q->prev = q;
}
/* Moves every element of from to the tail of to; from becomes empty. */
static inline void cmdipc__queue_move(cmdipc__queue_t *from, cmdipc__queue_t *to) {
    if (cmdipc__queue_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    cmdipc__queue_init(from);
}

/* ---------------------------------------------------------------------------
 * Memory (alloc.c): every allocation of the library goes through these, so
 * cmdipc_replace_allocator() sees all of it. */

void *cmdipc__malloc(size_t n);
void *cmdipc__calloc(size_t count, size_t n);
void *cmdipc__realloc(void *p, size_t n);
void cmdipc__free(void *p);
char *cmdipc__strdup(const char *s); /* NULL for NULL */

/* 0 + a <= b: a + b, saturating at UINT64_MAX (deadlines, backoff). */
static inline uint64_t cmdipc__add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---------------------------------------------------------------------------
 * Growable byte buffer. */

/* The public cmdipc_buf_t (cmdipc/channel.h), used inside as well. */
typedef cmdipc_buf_t cmdipc__buf_t;

void cmdipc__buf_init(cmdipc__buf_t *b);
void cmdipc__buf_free(cmdipc__buf_t *b);
/* The slow path of cmdipc__buf_reserve: reallocates. */
int cmdipc__buf_grow(cmdipc__buf_t *b, size_t extra);

/* Room for extra more bytes. 0 or UV_ENOMEM. */
static inline int cmdipc__buf_reserve(cmdipc__buf_t *b, size_t extra) {
    return CMDIPC__LIKELY(b->cap - b->len >= extra) ? 0 : cmdipc__buf_grow(b, extra);
}

static inline int cmdipc__buf_put(cmdipc__buf_t *b, const void *p, size_t n) {
    if (cmdipc__buf_reserve(b, n))
        return UV_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int cmdipc__buf_putc(cmdipc__buf_t *b, char c) {
    if (cmdipc__buf_reserve(b, 1))
        return UV_ENOMEM;
    b->data[b->len++] = c;
    return 0;
}

int cmdipc__buf_puts(cmdipc__buf_t *b, const char *s);
/* Appends s as a JSON string literal (quotes included). s must be valid
 * UTF-8 without NUL (everything the library holds is). */
int cmdipc__buf_put_jstr(cmdipc__buf_t *b, const char *s);
int cmdipc__buf_put_jstrn(cmdipc__buf_t *b, const char *s, size_t n);
/* Appends v as compact JSON. */
int cmdipc__buf_put_json(cmdipc__buf_t *b, const json_t *v);

#endif /* CMDIPC_COMMON_H */
