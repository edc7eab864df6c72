/* cmdipc — the library's allocator, replaceable as libuv's is
 * (uv_replace_allocator). Every allocation of cmdipc goes through it: blocks
 * of the per-thread cache, messages, calls, channels, buffers. jansson has its
 * own hook, json_set_alloc_funcs(); libuv and libsodium theirs. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static cmdipc_malloc_fn a_malloc = malloc;
static cmdipc_realloc_fn a_realloc = realloc;
static cmdipc_calloc_fn a_calloc = calloc;
static cmdipc_free_fn a_free = free;

int cmdipc_replace_allocator(cmdipc_malloc_fn malloc_fn, cmdipc_realloc_fn realloc_fn,
                             cmdipc_calloc_fn calloc_fn, cmdipc_free_fn free_fn) {
    if (malloc_fn == NULL || realloc_fn == NULL || calloc_fn == NULL || free_fn == NULL)
        return UV_EINVAL;
    a_malloc = malloc_fn;
    a_realloc = realloc_fn;
    a_calloc = calloc_fn;
    a_free = free_fn;
    return 0;
}

void *cmdipc__malloc(size_t n) { return a_malloc(n ? n : 1); }
void *cmdipc__calloc(size_t count, size_t n) {
    return a_calloc(count ? count : 1, n ? n : 1);
}
void *cmdipc__realloc(void *p, size_t n) { return a_realloc(p, n ? n : 1); }
void cmdipc__free(void *p) {
    if (p != NULL)
        a_free(p);
}

char *cmdipc__strdup(const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = a_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}
