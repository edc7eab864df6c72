/* cmdipc — events: listeners, local emit, mesh broadcast with bounded TTL
 * de-duplication (PROTOCOL.md section 0 rule 9, section 2.10). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct cmdipc__sub_list_s {
    cmdipc__hnode_t node;
    cmdipc__queue_t subs;
    unsigned busy; /* deliveries in progress */
    char id[];
};

typedef struct seen_s {
    cmdipc__hnode_t node;
    cmdipc__queue_t fifo;
    uint64_t expires;
    char id[];
} seen_t;

/* ---------------------------------------------------------------------------
 * De-duplication cache: a hash set in insertion (= expiry) order, bounded. */

static void seen_drop(cmdipc_registry_t *r, seen_t *s) {
    cmdipc__map_del(&r->seen, &s->node);
    cmdipc__queue_remove(&s->fifo);
    cmdipc__free(s);
}

/* Returns 1 if id was seen within the TTL, else remembers it and returns 0. */
static int seen_check_and_mark(cmdipc_registry_t *r, const char *id) {
    uint64_t now = cmdipc__now(r);
    while (!cmdipc__queue_empty(&r->seen_fifo)) {
        seen_t *s = cmdipc__container_of(r->seen_fifo.next, seen_t, fifo);
        if (s->expires > now)
            break;
        seen_drop(r, s);
    }
    if (cmdipc__map_get(&r->seen, id) != NULL)
        return 1;
    while (r->seen.count >= r->event_dedup_max && !cmdipc__queue_empty(&r->seen_fifo))
        seen_drop(r, cmdipc__container_of(r->seen_fifo.next, seen_t, fifo));
    size_t n = strlen(id);
    seen_t *s = cmdipc__malloc(sizeof(*s) + n + 1);
    if (s == NULL)
        return 0;
    memcpy(s->id, id, n + 1);
    s->expires = r->event_ttl_ms ? cmdipc__add_sat(now, r->event_ttl_ms) : UINT64_MAX;
    s->node.key = s->id;
    if (cmdipc__map_put(&r->seen, &s->node) != 0) {
        cmdipc__free(s);
        return 0;
    }
    cmdipc__queue_insert_tail(&r->seen_fifo, &s->fifo);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Listeners. */

static cmdipc__sub_list_t *list_get(cmdipc_registry_t *r, const char *event_id, int create) {
    if (event_id == NULL)
        return r->wildcard;
    cmdipc__hnode_t *n = cmdipc__map_get(&r->events, event_id);
    if (n != NULL || !create)
        return n ? cmdipc__container_of(n, cmdipc__sub_list_t, node) : NULL;
    size_t len = strlen(event_id);
    cmdipc__sub_list_t *l = cmdipc__calloc(1, sizeof(*l) + len + 1);
    if (l == NULL)
        return NULL;
    memcpy(l->id, event_id, len + 1);
    cmdipc__queue_init(&l->subs);
    l->node.key = l->id;
    if (cmdipc__map_put(&r->events, &l->node) != 0) {
        cmdipc__free(l);
        return NULL;
    }
    return l;
}

static void list_maybe_free(cmdipc_registry_t *r, cmdipc__sub_list_t *l) {
    if (l == NULL || l == r->wildcard || l->busy || !cmdipc__queue_empty(&l->subs))
        return;
    cmdipc__map_del(&r->events, &l->node);
    cmdipc__free(l);
}

int cmdipc_registry_on(cmdipc_registry_t *r, const char *event_id, cmdipc_event_cb cb,
                       void *data, cmdipc_sub_t **out) {
    if (out != NULL)
        *out = NULL;
    if (r == NULL || cb == NULL || (event_id != NULL && cmdipc__check_id(event_id)))
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;
    if (event_id == NULL && r->wildcard == NULL) {
        r->wildcard = cmdipc__calloc(1, sizeof(*r->wildcard) + 1);
        if (r->wildcard == NULL)
            return UV_ENOMEM;
        cmdipc__queue_init(&r->wildcard->subs);
    }
    cmdipc__sub_list_t *l = list_get(r, event_id, 1);
    cmdipc_sub_t *s = cmdipc__calloc(1, sizeof(*s));
    if (l == NULL || s == NULL) {
        cmdipc__free(s);
        list_maybe_free(r, l);
        return UV_ENOMEM;
    }
    s->reg = r;
    s->list = l;
    s->cb = cb;
    s->data = data;
    s->gen = r->sub_gen;
    cmdipc__queue_insert_tail(&l->subs, &s->link);
    if (out != NULL)
        *out = s;
    return 0;
}

void cmdipc_sub_off(cmdipc_sub_t *s) {
    if (s == NULL || s->removed)
        return;
    s->removed = 1;
    if (s->refs > 0)
        return; /* freed when the delivery holding it moves on */
    cmdipc__sub_list_t *l = s->list;
    cmdipc_registry_t *r = s->reg;
    cmdipc__queue_remove(&s->link);
    cmdipc__free(s);
    list_maybe_free(r, l);
}

static void deliver_list(cmdipc_registry_t *r, cmdipc__sub_list_t *l, uint64_t gen,
                         const char *event_id, json_t *payload) {
    if (l == NULL)
        return;
    l->busy++;
    cmdipc__queue_t *q = l->subs.next;
    while (q != &l->subs) {
        cmdipc_sub_t *s = cmdipc__container_of(q, cmdipc_sub_t, link);
        if (s->removed || s->gen >= gen) {
            q = q->next;
            continue;
        }
        s->refs++;
        s->cb(r, event_id, payload, s->data);
        q = q->next; /* s is still linked: it is referenced */
        if (--s->refs == 0 && s->removed) {
            cmdipc__queue_remove(&s->link);
            cmdipc__free(s);
        }
    }
    l->busy--;
    list_maybe_free(r, l);
}

static int has_listeners(cmdipc_registry_t *r, const char *event_id) {
    cmdipc__sub_list_t *l = list_get(r, event_id, 0);
    return (l != NULL && !cmdipc__queue_empty(&l->subs)) ||
           (r->wildcard != NULL && !cmdipc__queue_empty(&r->wildcard->subs));
}

/* Runs the listeners of event_id (specific ones first, then wildcard ones),
 * each in the order it was added; listeners added meanwhile wait for the
 * next event. */
static void deliver_local(cmdipc_registry_t *r, const char *event_id, json_t *payload) {
    uint64_t gen = ++r->sub_gen;
    deliver_list(r, list_get(r, event_id, 0), gen, event_id, payload);
    deliver_list(r, r->wildcard, gen, event_id, payload);
}

void cmdipc__events_free(cmdipc_registry_t *r) {
    cmdipc__map_iter_t it;
    cmdipc__hnode_t *n;
    cmdipc__map_iter_init(&it, &r->events);
    while ((n = cmdipc__map_iter_next(&it)) != NULL) {
        cmdipc__sub_list_t *l = cmdipc__container_of(n, cmdipc__sub_list_t, node);
        while (!cmdipc__queue_empty(&l->subs)) {
            cmdipc__queue_t *q = l->subs.next;
            cmdipc__queue_remove(q);
            cmdipc__free(cmdipc__container_of(q, cmdipc_sub_t, link));
        }
        cmdipc__free(l);
    }
    cmdipc__map_free(&r->events);
    if (r->wildcard != NULL) {
        while (!cmdipc__queue_empty(&r->wildcard->subs)) {
            cmdipc__queue_t *q = r->wildcard->subs.next;
            cmdipc__queue_remove(q);
            cmdipc__free(cmdipc__container_of(q, cmdipc_sub_t, link));
        }
        cmdipc__free(r->wildcard);
        r->wildcard = NULL;
    }
    while (!cmdipc__queue_empty(&r->seen_fifo))
        seen_drop(r, cmdipc__container_of(r->seen_fifo.next, seen_t, fifo));
    cmdipc__map_free(&r->seen);
}

/* ---------------------------------------------------------------------------
 * Broadcast. */

/* Sends event (id, event_id, payload) to every attached channel but except.
 * If orig is given (its strings may be id and event_id) it goes, as it is, to
 * the last destination, clones to the others. */
static void broadcast(cmdipc_registry_t *r, cmdipc_channel_t *except, const char *id,
                      const char *event_id, json_t *payload, cmdipc_msg_t *orig) {
    cmdipc_channel_t *last = NULL;
    for (cmdipc__queue_t *q = r->channel_list.next; q != &r->channel_list; q = q->next) {
        cmdipc_channel_t *ch = cmdipc__container_of(q, cmdipc_channel_t, link);
        if (ch != except && !ch->failing)
            last = ch;
    }
    cmdipc__queue_t *q = r->channel_list.next;
    while (last != NULL && q != &r->channel_list) {
        cmdipc_channel_t *ch = cmdipc__container_of(q, cmdipc_channel_t, link);
        q = q->next;
        if (ch != last && (ch == except || ch->failing))
            continue;
        cmdipc_msg_t *m;
        if (ch == last && orig != NULL) {
            m = orig;
            orig = NULL;
        } else {
            m = cmdipc__msg_new(CMDIPC_MSG_EVENT, id, NULL, event_id, NULL, NULL);
            if (m == NULL) {
                cmdipc__channel_fail(ch, UV_ENOMEM);
                continue;
            }
            if (payload != NULL)
                cmdipc__msg_set_json(m, payload);
        }
        cmdipc__send_or_fail(ch, m);
        if (ch == last)
            break;
    }
    cmdipc_msg_free(orig);
}

int cmdipc_registry_emit(cmdipc_registry_t *r, const char *event_id, json_t *payload) {
    char id[CMDIPC__UUID_LEN + 1];
    if (json_is_null(payload))
        payload = NULL; /* absent: listeners get NULL, "payload" is omitted */
    if (r == NULL || cmdipc__check_id(event_id) || cmdipc__json_check(payload, CMDIPC__PAYLOAD_DEPTH) != 0)
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;
    cmdipc__uuid4(id);
    seen_check_and_mark(r, id);
    r->stats.events_emitted++;
    /* A listener may close the registry: the event is still forwarded (the
     * teardown waits for the end of this emit). */
    r->busy++;
    deliver_local(r, event_id, payload);
    if (event_id[0] != '_')
        broadcast(r, NULL, id, event_id, payload, NULL);
    cmdipc__busy_leave(r);
    return 0;
}

void cmdipc__event_inbound(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    if (seen_check_and_mark(r, m->id)) {
        r->stats.dropped[CMDIPC_DROP_DUPLICATE_EVENT]++;
        cmdipc_msg_free(m);
        return;
    }
    r->stats.events_received++;
    if (has_listeners(r, m->name))
        deliver_local(r, m->name, cmdipc_msg_payload(m));
    if (m->name[0] == '_') {
        cmdipc_msg_free(m); /* private events are never forwarded */
        return;
    }
    json_t *payload = m->body.json;
    if (payload == NULL && m->body.text != NULL)
        payload = cmdipc_msg_payload(m);
    /* The received struct goes to the first destination as it is. */
    broadcast(r, ch, m->id, m->name, payload, m);
}
