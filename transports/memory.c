/* cmdipc — the in-memory channel (pairs of ends linked by bounded queues,
 * each end woken by its own uv_async) and inproc:// listeners.
 *
 * Each end has an inbox: the messages its peer sent, queued under the pair's
 * mutex. The peer drains the whole inbox per wake-up. Messages cross as
 * structs.
 * - Two ends on one loop: a send appends to the peer's inbox at once.
 * - Ends on two loops (threads): a send goes to the sender's outbox; at the
 *   end of the loop iteration (uv_check, or uv_prepare before the loop
 *   blocks) the outbox is handed over in one go: each message is made to
 *   share nothing with this thread (lib/handoff.c: a payload json_t the
 *   message holds alone crosses as it is, any other as its text), then the
 *   batch is appended to the peer's inbox under one lock, with one wake-up.
 *   A message that crosses is owned by the receiving loop alone.
 * Closing an end hands over its outbox, marks it closed and wakes the peer,
 * which first delivers everything already queued, then reports the close
 * (PROTOCOL.md appendix A).
 */
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"

typedef struct mem_pair_s mem_pair_t;
typedef struct inproc_s inproc_t;

typedef struct mem_end_s {
    mem_pair_t *pair;
    int side;
    cmdipc_channel_t *ch;
    uv_async_t async;
    uv_check_t check;     /* hands the outbox over at the end of an iteration */
    uv_prepare_t prepare; /* ... or before the loop blocks */
    /* Under the pair's lock: */
    int started;      /* handles initialised on the owning loop */
    int closed;       /* this end no longer receives */
    cmdipc_msg_t *head; /* inbox */
    cmdipc_msg_t *tail;
    size_t count;     /* queued + being delivered */
    uv_loop_t *loop;  /* set by start */
    /* Owning loop only: */
    int peer_known;    /* peer_same_loop is known (the peer had started) */
    int peer_same_loop; /* the peer runs on this end's loop: no hand-off needed */
    cmdipc_msg_t *out_head; /* outbox (ends on two loops) */
    cmdipc_msg_t *out_tail;
    size_t out_count;
    size_t peer_count_seen; /* the peer's inbox at the last hand-over */
    int flush_armed;
    int paused;
    int handle_closing;
    unsigned handles_open;
    int report_status; /* what to report once the handles closed */
    inproc_t *ip;      /* the inproc listener that accepted it, while open */
    cmdipc__queue_t ip_link;
} mem_end_t;

struct mem_pair_s {
    uv_mutex_t lock;
    int refs;
    size_t queue_max;
    mem_end_t *end[2];
};

void cmdipc_memory_opts_init(cmdipc_memory_opts_t *opts) {
    memset(opts, 0, sizeof(*opts));
    opts->version = CMDIPC_MEMORY_OPTS_VERSION;
    opts->queue_max = 10000;
}

static mem_end_t *peer_of(mem_end_t *e) { return e->pair->end[1 - e->side]; }

/* Under the lock: wake e's loop if it can be woken. */
static void wake(mem_end_t *e) {
    if (e != NULL && e->started && !e->closed)
        uv_async_send(&e->async);
}

static void free_list(cmdipc_msg_t *m) {
    while (m != NULL) {
        cmdipc_msg_t *next = cmdipc_msg_next(m);
        cmdipc_msg_free(m);
        m = next;
    }
}

/* Under the lock: learns whether the peer shares this end's loop. */
static void learn_peer(mem_end_t *e, mem_end_t *peer) {
    if (!e->peer_known && peer != NULL && peer->started) {
        e->peer_known = 1;
        e->peer_same_loop = peer->loop == e->loop;
    }
}

static void end_shutdown(mem_end_t *e, int status);

/* Hands the outbox over to the peer (ends on two loops). */
static void flush_outbox(mem_end_t *e) {
    mem_pair_t *p = e->pair;
    if (e->flush_armed) {
        e->flush_armed = 0;
        uv_check_stop(&e->check);
        uv_prepare_stop(&e->prepare);
    }
    if (e->out_head == NULL)
        return;
    /* Share nothing with this thread: done here, outside the lock. A
     * message that cannot be made so (out of memory) is dropped: the
     * channel is failed below, as for a full queue. */
    cmdipc_msg_t *keep = NULL, *last = NULL;
    size_t n = 0;
    int failed = 0;
    for (cmdipc_msg_t *m = e->out_head, *next; m != NULL; m = next) {
        next = cmdipc_msg_next(m);
        cmdipc_msg_set_next(m, NULL);
        if (cmdipc_msg_detach(&m) != 0) {
            cmdipc_msg_free(m);
            failed = 1;
            continue;
        }
        if (last != NULL)
            cmdipc_msg_set_next(last, m);
        else
            keep = m;
        last = m;
        n++;
    }
    e->out_head = e->out_tail = NULL;
    e->out_count = 0;
    uv_mutex_lock(&p->lock);
    mem_end_t *peer = peer_of(e);
    learn_peer(e, peer);
    if (e->closed || peer == NULL || peer->closed) {
        uv_mutex_unlock(&p->lock);
        free_list(keep); /* the peer is gone: its close reaches us */
        return;
    }
    if (keep != NULL) {
        if (peer->tail != NULL)
            cmdipc_msg_set_next(peer->tail, keep);
        else
            peer->head = keep;
        peer->tail = last;
        peer->count += n;
        wake(peer);
    }
    e->peer_count_seen = peer->count;
    uv_mutex_unlock(&p->lock);
    if (failed && !e->handle_closing)
        end_shutdown(e, UV_ENOMEM); /* its outbox is empty now */
}

static void check_cb(uv_check_t *h) {
    flush_outbox(cmdipc__container_of(h, mem_end_t, check));
}

static void prepare_cb(uv_prepare_t *h) {
    flush_outbox(cmdipc__container_of(h, mem_end_t, prepare));
}

static int mem_send(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    mem_end_t *e = cmdipc_channel_impl(ch);
    mem_pair_t *p = e->pair;
    int rc = 0;
    cmdipc_msg_set_next(m, NULL);
    if (e->handle_closing) {
        cmdipc_msg_free(m);
        return CMDIPC_ECLOSED;
    }
    if (!e->peer_same_loop) {
        /* To another loop (or one not known yet): through the outbox. The
         * cap counts the peer's inbox as last seen plus the outbox. */
        if (e->peer_count_seen + e->out_count >= p->queue_max) {
            cmdipc_msg_free(m);
            return CMDIPC_EOVERLOAD;
        }
        if (e->out_tail != NULL)
            cmdipc_msg_set_next(e->out_tail, m);
        else
            e->out_head = m;
        e->out_tail = m;
        e->out_count++;
        if (!e->flush_armed) {
            e->flush_armed = 1;
            uv_check_start(&e->check, check_cb);
            uv_prepare_start(&e->prepare, prepare_cb);
        }
        return 0;
    }
    uv_mutex_lock(&p->lock);
    mem_end_t *peer = peer_of(e);
    if (e->closed || peer == NULL || peer->closed) {
        rc = CMDIPC_ECLOSED;
    } else if (peer->count >= p->queue_max) {
        rc = CMDIPC_EOVERLOAD;
    } else {
        if (peer->tail != NULL)
            cmdipc_msg_set_next(peer->tail, m);
        else
            peer->head = m;
        peer->tail = m;
        peer->count++;
        wake(peer);
    }
    uv_mutex_unlock(&p->lock);
    if (rc != 0)
        cmdipc_msg_free(m);
    return rc;
}

static void handle_closed_cb(uv_handle_t *h) {
    mem_end_t *e = h->data;
    if (--e->handles_open == 0)
        cmdipc_channel_closed(e->ch, e->report_status);
}

static void close_handle(mem_end_t *e, uv_handle_t *h) {
    h->data = e;
    uv_close(h, handle_closed_cb);
}

/* Hands over the outbox, stops receiving and closes the handles; reports
 * status once they are closed. */
static void end_shutdown(mem_end_t *e, int status) {
    mem_pair_t *p = e->pair;
    cmdipc_msg_t *drop;
    if (e->handle_closing)
        return;
    flush_outbox(e);
    uv_mutex_lock(&p->lock);
    e->closed = 1;
    drop = e->head;
    e->head = e->tail = NULL;
    e->count = 0;
    wake(peer_of(e));
    uv_mutex_unlock(&p->lock);
    free_list(drop);
    e->handle_closing = 1;
    e->report_status = status;
    e->handles_open = 3;
    close_handle(e, (uv_handle_t *)&e->async);
    close_handle(e, (uv_handle_t *)&e->check);
    close_handle(e, (uv_handle_t *)&e->prepare);
}

static void async_cb(uv_async_t *h) {
    mem_end_t *e = cmdipc__container_of(h, mem_end_t, async);
    mem_pair_t *p = e->pair;
    if (e->paused || e->handle_closing)
        return;
    uv_mutex_lock(&p->lock);
    cmdipc_msg_t *batch = e->head;
    e->head = e->tail = NULL;
    uv_mutex_unlock(&p->lock);

    size_t delivered = 0;
    while (batch != NULL && !e->paused && !e->handle_closing) {
        cmdipc_msg_t *m = batch;
        batch = cmdipc_msg_next(m);
        cmdipc_msg_set_next(m, NULL);
        delivered++;
        cmdipc_channel_deliver(e->ch, m);
    }
    if (e->handle_closing) {
        free_list(batch);
        return;
    }
    uv_mutex_lock(&p->lock);
    e->count -= delivered;
    if (batch != NULL) { /* paused mid-batch: put the rest back in front */
        cmdipc_msg_t *last = batch;
        while (cmdipc_msg_next(last) != NULL)
            last = cmdipc_msg_next(last);
        cmdipc_msg_set_next(last, e->head);
        if (e->head == NULL)
            e->tail = last;
        e->head = batch;
    } else if (e->head != NULL) {
        wake(e); /* more arrived meanwhile */
    }
    mem_end_t *peer = peer_of(e);
    learn_peer(e, peer);
    int peer_gone = (peer == NULL || peer->closed) && e->head == NULL;
    uv_mutex_unlock(&p->lock);
    if (peer_gone && !e->paused)
        end_shutdown(e, UV_EOF);
}

static int mem_start(cmdipc_channel_t *ch, uv_loop_t *loop) {
    mem_end_t *e = cmdipc_channel_impl(ch);
    mem_pair_t *p = e->pair;
    int rc = uv_async_init(loop, &e->async, async_cb);
    if (rc != 0)
        return rc;
    uv_check_init(loop, &e->check);
    uv_prepare_init(loop, &e->prepare);
    uv_mutex_lock(&p->lock);
    e->started = 1;
    e->loop = loop;
    learn_peer(e, peer_of(e));
    /* Whatever the peer queued before we started, or its close. */
    uv_async_send(&e->async);
    uv_mutex_unlock(&p->lock);
    return 0;
}

static void mem_pause(cmdipc_channel_t *ch, int pause) {
    mem_end_t *e = cmdipc_channel_impl(ch);
    e->paused = pause;
    if (!pause && !e->handle_closing)
        uv_async_send(&e->async);
}

static void mem_set_ref(cmdipc_channel_t *ch, int ref) {
    mem_end_t *e = cmdipc_channel_impl(ch);
    uv_handle_t *hs[3] = {(uv_handle_t *)&e->async, (uv_handle_t *)&e->check,
                          (uv_handle_t *)&e->prepare};
    if (e->handle_closing)
        return;
    for (int i = 0; i < 3; i++) {
        if (ref)
            uv_ref(hs[i]);
        else
            uv_unref(hs[i]);
    }
}

static void mem_close(cmdipc_channel_t *ch, int graceful) {
    (void)graceful; /* what we sent is handed over first either way */
    mem_end_t *e = cmdipc_channel_impl(ch);
    end_shutdown(e, 0);
}

static void inproc_forget(inproc_t *ip);

static void mem_free(cmdipc_channel_t *ch) {
    mem_end_t *e = cmdipc_channel_impl(ch);
    mem_pair_t *p = e->pair;
    cmdipc_msg_t *drop;
    uv_mutex_lock(&p->lock);
    if (!e->closed) { /* never attached */
        e->closed = 1;
        wake(peer_of(e));
    }
    drop = e->head;
    e->head = e->tail = NULL;
    p->end[e->side] = NULL;
    free_list(e->out_head); /* never handed over: the channel never started */
    e->out_head = e->out_tail = NULL;
    if (e->ip != NULL) { /* on the listener's loop, like the listener */
        cmdipc__queue_remove(&e->ip_link);
        inproc_forget(e->ip);
        e->ip = NULL;
    }
    int last = --p->refs == 0;
    uv_mutex_unlock(&p->lock);
    free_list(drop);
    free(e);
    if (last) {
        uv_mutex_destroy(&p->lock);
        free(p);
    }
}

static const cmdipc_channel_ops_t mem_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION,
    .start = mem_start,
    .send = mem_send,
    .pause_reading = mem_pause,
    .close = mem_close,
    .free = mem_free,
    .set_ref = mem_set_ref,
};

int cmdipc_memory_pair_ex(const char *id_a, const char *id_b, const cmdipc_memory_opts_t *opts,
                          cmdipc_channel_t **a, cmdipc_channel_t **b) {
    cmdipc_memory_opts_t defaults;
    if (a == NULL || b == NULL)
        return UV_EINVAL;
    *a = *b = NULL;
    if (cmdipc_id_check(id_a) || cmdipc_id_check(id_b))
        return UV_EINVAL;
    if (opts == NULL) {
        cmdipc_memory_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->version == 0 || opts->version > CMDIPC_MEMORY_OPTS_VERSION || opts->queue_max == 0)
        return UV_EINVAL;
    mem_pair_t *p = calloc(1, sizeof(*p));
    mem_end_t *ea = calloc(1, sizeof(*ea));
    mem_end_t *eb = calloc(1, sizeof(*eb));
    if (p == NULL || ea == NULL || eb == NULL || uv_mutex_init(&p->lock) != 0) {
        free(p);
        free(ea);
        free(eb);
        return UV_ENOMEM;
    }
    p->queue_max = opts->queue_max;
    p->refs = 2;
    p->end[0] = ea;
    p->end[1] = eb;
    ea->pair = eb->pair = p;
    ea->side = 0;
    eb->side = 1;
    int rc = cmdipc_channel_new(id_a, &mem_ops, ea, &ea->ch);
    if (rc == 0)
        rc = cmdipc_channel_new(id_b, &mem_ops, eb, &eb->ch);
    if (rc != 0) {
        if (ea->ch != NULL) {
            cmdipc_channel_free(ea->ch); /* releases ea and one ref */
        } else {
            free(ea);
            p->refs--;
        }
        free(eb);
        uv_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    *a = ea->ch;
    *b = eb->ch;
    return 0;
}

int cmdipc_memory_pair(const char *id_a, const char *id_b, cmdipc_channel_t **a,
                       cmdipc_channel_t **b) {
    return cmdipc_memory_pair_ex(id_a, id_b, NULL, a, b);
}

/* ---------------------------------------------------------------------------
 * inproc://name — a process-wide table of listeners under a mutex. A dialer
 * creates a pair, attaches its end, and queues the other end on the
 * listener, whose loop accepts it. */

struct inproc_s {
    cmdipc_listener_t *l;
    struct inproc_s *next; /* in the table */
    char *name;
    uv_async_t async;
    cmdipc_channel_t **pending; /* ends waiting to be accepted (under table_lock) */
    size_t n_pending;
    size_t cap_pending;
    unsigned nconns;        /* accepted ends still open (listener's loop) */
    cmdipc__queue_t ends;
};

static uv_once_t table_once = UV_ONCE_INIT;
static uv_mutex_t table_lock;
static inproc_t *table;

static void table_init(void) {
    if (uv_mutex_init(&table_lock) != 0)
        abort();
}

static inproc_t *table_find(const char *name) {
    for (inproc_t *i = table; i != NULL; i = i->next)
        if (strcmp(i->name, name) == 0)
            return i;
    return NULL;
}

static void inproc_forget(inproc_t *ip) { ip->nconns--; }

static void inproc_accept_cb(uv_async_t *h) {
    inproc_t *ip = cmdipc__container_of(h, inproc_t, async);
    cmdipc_listener_t *l = ip->l;
    uv_mutex_lock(&table_lock);
    cmdipc_channel_t **v = ip->pending;
    size_t n = ip->n_pending;
    ip->pending = NULL;
    ip->n_pending = ip->cap_pending = 0;
    uv_mutex_unlock(&table_lock);
    for (size_t i = 0; i < n; i++) {
        cmdipc_channel_t *ch = v[i];
        char name[256];
        cmdipc_peer_info_t peer;
        memset(&peer, 0, sizeof(peer));
        peer.url = l->url;
        peer.remote = "";
        int rc = 0;
        if (l->closing)
            rc = CMDIPC_ECLOSED;
        else if (l->opts.max_connections && ip->nconns >= l->opts.max_connections)
            rc = UV_EMFILE; /* too many connections */
        else
            rc = cmdipc__listener_name(l, &peer, name, sizeof(name));
        if (rc == 0)
            rc = cmdipc_channel_set_id(ch, name);
        if (rc == 0)
            rc = cmdipc_registry_attach(l->reg, ch);
        if (rc == 0) {
            mem_end_t *e = cmdipc_channel_impl(ch);
            e->ip = ip;
            cmdipc__queue_insert_tail(&ip->ends, &e->ip_link);
            ip->nconns++;
        }
        if (rc != 0) {
            cmdipc_log(l->reg, CMDIPC_LOG_INFO, "%s: connection refused (%s)", l->url,
                        cmdipc_strerror(rc));
            cmdipc_channel_free(ch); /* the dialer sees the close */
        }
    }
    free(v);
}

static void inproc_handle_closed(uv_handle_t *h) {
    inproc_t *ip = h->data;
    cmdipc_listener_t *l = ip->l;
    free(ip->name);
    free(ip);
    cmdipc__listener_closed(l);
}

static void inproc_set_ref(cmdipc_listener_t *l, int ref) {
    inproc_t *ip = l->impl;
    if (ref)
        uv_ref((uv_handle_t *)&ip->async);
    else
        uv_unref((uv_handle_t *)&ip->async);
}

static void inproc_close(cmdipc_listener_t *l) {
    inproc_t *ip = l->impl;
    uv_mutex_lock(&table_lock);
    for (inproc_t **pp = &table; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ip) {
            *pp = ip->next;
            break;
        }
    }
    cmdipc_channel_t **v = ip->pending;
    size_t n = ip->n_pending;
    ip->pending = NULL;
    ip->n_pending = 0;
    uv_mutex_unlock(&table_lock);
    for (size_t i = 0; i < n; i++)
        cmdipc_channel_free(v[i]);
    free(v);
    while (!cmdipc__queue_empty(&ip->ends)) { /* they stay open without us */
        mem_end_t *e = cmdipc__container_of(ip->ends.next, mem_end_t, ip_link);
        cmdipc__queue_remove(&e->ip_link);
        e->ip = NULL;
    }
    ip->async.data = ip;
    uv_close((uv_handle_t *)&ip->async, inproc_handle_closed);
}

int cmdipc__inproc_listen(cmdipc_listener_t *l, const char *name) {
    uv_once(&table_once, table_init);
    if (name[0] == '\0')
        return UV_EINVAL;
    inproc_t *ip = calloc(1, sizeof(*ip));
    if (ip == NULL)
        return UV_ENOMEM;
    ip->name = strdup(name);
    if (ip->name == NULL) {
        free(ip);
        return UV_ENOMEM;
    }
    ip->l = l;
    cmdipc__queue_init(&ip->ends);
    uv_mutex_lock(&table_lock);
    if (table_find(name) != NULL) {
        uv_mutex_unlock(&table_lock);
        free(ip->name);
        free(ip);
        return UV_EADDRINUSE;
    }
    int rc = uv_async_init(cmdipc_registry_loop(l->reg), &ip->async, inproc_accept_cb);
    if (rc != 0) {
        uv_mutex_unlock(&table_lock);
        free(ip->name);
        free(ip);
        return rc;
    }
    ip->next = table;
    table = ip;
    uv_mutex_unlock(&table_lock);
    l->impl = ip;
    l->close = inproc_close;
    l->set_ref = inproc_set_ref;
    return 0;
}

int cmdipc__inproc_connect(cmdipc_registry_t *r, const char *name, const char *channel_id,
                           cmdipc_channel_t **out) {
    uv_once(&table_once, table_init);
    uv_mutex_lock(&table_lock);
    int found = table_find(name) != NULL;
    uv_mutex_unlock(&table_lock);
    if (!found)
        return UV_ECONNREFUSED;

    cmdipc_channel_t *a, *b;
    int rc = cmdipc_memory_pair(channel_id, "inproc-pending", &a, &b);
    if (rc != 0)
        return rc;
    rc = cmdipc_registry_attach(r, a);
    if (rc != 0) {
        cmdipc_channel_free(a);
        cmdipc_channel_free(b);
        return rc;
    }
    uv_mutex_lock(&table_lock);
    inproc_t *ip = table_find(name);
    if (ip != NULL && ip->n_pending == ip->cap_pending) {
        size_t cap = ip->cap_pending ? ip->cap_pending * 2 : 8;
        cmdipc_channel_t **v = realloc(ip->pending, cap * sizeof(*v));
        if (v == NULL) {
            ip = NULL;
        } else {
            ip->pending = v;
            ip->cap_pending = cap;
        }
    }
    if (ip != NULL) {
        ip->pending[ip->n_pending++] = b;
        uv_async_send(&ip->async);
        b = NULL;
    }
    uv_mutex_unlock(&table_lock);
    /* The listener went away meanwhile: the attached end sees the close. */
    if (b != NULL)
        cmdipc_channel_free(b);
    if (out != NULL)
        *out = a;
    return 0;
}
