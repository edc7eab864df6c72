/* cmdipc — a per-thread cache of small blocks for the hot path.
 *
 * Every message, call and request is allocated and freed once per round
 * trip; malloc and free were a tenth of the library's own instructions. Blocks
 * of up to 504 bytes come in three sizes; each thread keeps up to 64 freed
 * blocks of each size and reuses them. A block may be freed on another
 * thread than the one that allocated it (messages cross loops on memory
 * channels): it simply joins that thread's cache. A thread's cache is
 * released when the thread exits. */
#include <pthread.h>
#include <stdlib.h>

#include <sodium.h>

#include "internal.h"

#define CLASSES   3
#define KEEP_MAX  64
#define HEADER    8 /* blocks hold pointers and 64-bit integers: 8-byte alignment */
#define MALLOCED  0xff

/* With the header, malloc is asked for 128, 240 and 512 bytes: sizes its
 * chunks fit without waste. */
static const size_t class_size[CLASSES] = {120, 232, 504};

typedef struct free_block_s {
    struct free_block_s *next;
} free_block_t;

typedef struct cache_s {
    free_block_t *head[CLASSES];
    unsigned count[CLASSES];
    cmdipc__rnd_t rnd; /* id randomness of this thread (util.c) */
} cache_t;

#if defined(__GNUC__) || defined(__clang__)
#define CMDIPC__TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define CMDIPC__TLS_FAST
#endif

/* A pointer only (8 bytes of static TLS), so a library loaded with dlopen
 * still finds room for it. */
static _Thread_local cache_t *tls_cache CMDIPC__TLS_FAST;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_release(void *p) {
    cache_t *c = p;
    for (int k = 0; k < CLASSES; k++) {
        while (c->head[k] != NULL) {
            free_block_t *b = c->head[k];
            c->head[k] = b->next;
            cmdipc__free((char *)b - HEADER);
        }
    }
    sodium_memzero(&c->rnd, sizeof(c->rnd));
    cmdipc__free(c);
    tls_cache = NULL;
}

static void cache_init_once(void) { pthread_key_create(&cache_key, cache_release); }

static cache_t *cache_get(void) {
    cache_t *c = tls_cache;
    if (CMDIPC__LIKELY(c != NULL))
        return c;
    pthread_once(&cache_once, cache_init_once);
    c = cmdipc__calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->rnd.pos = sizeof(c->rnd.buf);
    c->rnd.refills = CMDIPC__RND_REKEY;
    if (pthread_setspecific(cache_key, c) != 0) {
        cmdipc__free(c);
        return NULL;
    }
    tls_cache = c;
    return c;
}

cmdipc__rnd_t *cmdipc__thread_rnd(void) {
    cache_t *c = cache_get();
    return c ? &c->rnd : NULL;
}

/* Under AddressSanitizer or ThreadSanitizer the cache is bypassed: every
 * block is a malloc of its own and every free a free, so a use after free
 * or a double free of a message, call or request is reported, not hidden
 * by a block handed out again. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define POOL_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define POOL_BYPASS 1
#endif
#endif
#ifndef POOL_BYPASS
#define POOL_BYPASS 0
#endif

int cmdipc__pool_bypassed(void) { return POOL_BYPASS; }

void *cmdipc__palloc(size_t n) {
    if (POOL_BYPASS)
        return cmdipc__malloc(n);
    int k = 0;
    while (k < CLASSES && n > class_size[k])
        k++;
    if (k == CLASSES) {
        unsigned char *p = cmdipc__malloc(HEADER + n);
        if (p == NULL)
            return NULL;
        p[0] = MALLOCED;
        return p + HEADER;
    }
    cache_t *c = cache_get();
    if (c != NULL && c->head[k] != NULL) {
        free_block_t *b = c->head[k];
        c->head[k] = b->next;
        c->count[k]--;
        return b;
    }
    unsigned char *p = cmdipc__malloc(HEADER + class_size[k]);
    if (p == NULL)
        return NULL;
    p[0] = (unsigned char)k;
    return p + HEADER;
}

void cmdipc__pfree(void *ptr) {
    if (POOL_BYPASS) {
        cmdipc__free(ptr);
        return;
    }
    if (ptr == NULL)
        return;
    unsigned char *p = (unsigned char *)ptr - HEADER;
    int k = p[0];
    if (k != MALLOCED) {
        cache_t *c = cache_get();
        if (c != NULL && c->count[k] < KEEP_MAX) {
            free_block_t *b = ptr;
            b->next = c->head[k];
            c->head[k] = b;
            c->count[k]++;
            return;
        }
    }
    cmdipc__free(p);
}
