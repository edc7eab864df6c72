/* cmdipc — string-keyed intrusive hash map and the deadline min-heap. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------------
 * Hash map: chained buckets, power-of-two sized, grown at load factor 1. */

void cmdipc__map_init(cmdipc__map_t *m) {
    m->buckets = NULL;
    m->mask = 0;
    m->count = 0;
}

void cmdipc__map_free(cmdipc__map_t *m) {
    cmdipc__free(m->buckets);
    cmdipc__map_init(m);
}

cmdipc__hnode_t *cmdipc__map_get_h(const cmdipc__map_t *m, const char *key, uint64_t h) {
    if (m->count == 0)
        return NULL;
    for (cmdipc__hnode_t *n = m->buckets[h & m->mask]; n != NULL; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

cmdipc__hnode_t *cmdipc__map_get(const cmdipc__map_t *m, const char *key) {
    if (m->count == 0)
        return NULL;
    return cmdipc__map_get_h(m, key, cmdipc__hash(key, strlen(key)));
}

static int map_grow(cmdipc__map_t *m) {
    size_t nb = m->buckets ? (m->mask + 1) * 2 : 16;
    cmdipc__hnode_t **b = cmdipc__calloc(nb, sizeof(*b));
    if (b == NULL)
        return UV_ENOMEM;
    if (m->buckets != NULL) {
        for (size_t i = 0; i <= m->mask; i++) {
            cmdipc__hnode_t *n = m->buckets[i];
            while (n != NULL) {
                cmdipc__hnode_t *next = n->next;
                n->next = b[n->hash & (nb - 1)];
                b[n->hash & (nb - 1)] = n;
                n = next;
            }
        }
        cmdipc__free(m->buckets);
    }
    m->buckets = b;
    m->mask = nb - 1;
    return 0;
}

int cmdipc__map_put(cmdipc__map_t *m, cmdipc__hnode_t *n) {
    return cmdipc__map_put_h(m, n, cmdipc__hash(n->key, strlen(n->key)));
}

int cmdipc__map_put_h(cmdipc__map_t *m, cmdipc__hnode_t *n, uint64_t h) {
    if ((m->buckets == NULL || m->count > m->mask) && map_grow(m) != 0 &&
        m->buckets == NULL)
        return UV_ENOMEM; /* a failed grow of a non-empty map just stays denser */
    n->hash = h;
    cmdipc__hnode_t **slot = &m->buckets[n->hash & m->mask];
    n->next = *slot;
    *slot = n;
    m->count++;
    return 0;
}

void cmdipc__map_del(cmdipc__map_t *m, cmdipc__hnode_t *n) {
    cmdipc__hnode_t **p = &m->buckets[n->hash & m->mask];
    while (*p != NULL) {
        if (*p == n) {
            *p = n->next;
            n->next = NULL;
            m->count--;
            return;
        }
        p = &(*p)->next;
    }
}

void cmdipc__map_iter_init(cmdipc__map_iter_t *it, const cmdipc__map_t *m) {
    it->m = m;
    it->bucket = 0;
    it->next = (m->buckets != NULL) ? m->buckets[0] : NULL;
}

cmdipc__hnode_t *cmdipc__map_iter_next(cmdipc__map_iter_t *it) {
    if (it->m->buckets == NULL)
        return NULL;
    while (it->next == NULL) {
        if (++it->bucket > it->m->mask)
            return NULL;
        it->next = it->m->buckets[it->bucket];
    }
    cmdipc__hnode_t *n = it->next;
    it->next = n->next;
    return n;
}

/* ---------------------------------------------------------------------------
 * Binary min-heap of deadlines; each entry knows its index for O(log n)
 * removal. */

void cmdipc__heap_init(cmdipc__heap_t *h) {
    h->v = NULL;
    h->n = 0;
    h->cap = 0;
}

void cmdipc__heap_free(cmdipc__heap_t *h) {
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->index = SIZE_MAX;
    cmdipc__free(h->v);
    cmdipc__heap_init(h);
}

static void heap_set(cmdipc__heap_t *h, size_t i, cmdipc__timer_t *t) {
    h->v[i] = t;
    t->index = i;
}

static void heap_up(cmdipc__heap_t *h, size_t i) {
    cmdipc__timer_t *t = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p]->deadline <= t->deadline)
            break;
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, t);
}

static void heap_down(cmdipc__heap_t *h, size_t i) {
    cmdipc__timer_t *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->deadline < h->v[c]->deadline)
            c++;
        if (t->deadline <= h->v[c]->deadline)
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, t);
}

int cmdipc__heap_push(cmdipc__heap_t *h, cmdipc__timer_t *t) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cmdipc__timer_t **v = cmdipc__realloc(h->v, cap * sizeof(*v));
        if (v == NULL)
            return UV_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    heap_set(h, h->n++, t);
    heap_up(h, h->n - 1);
    return 0;
}

void cmdipc__heap_remove(cmdipc__heap_t *h, cmdipc__timer_t *t) {
    size_t i = t->index;
    if (i == SIZE_MAX || i >= h->n || h->v[i] != t)
        return;
    t->index = SIZE_MAX;
    h->n--;
    if (i == h->n)
        return;
    cmdipc__timer_t *moved = h->v[h->n];
    heap_set(h, i, moved);
    heap_up(h, i);
    if (moved->index == i)
        heap_down(h, i);
}
