/* cmdipc — the channel state machine: attach, up and down, half-close,
 * close, the transport's entry points, and the notifications the
 * application gets about channels.
 *
 *   NEW --attach--> ATTACHED --cmdipc_channel_close / fail / registry close--> CLOSING
 *                      |                                                        |
 *                      +--------- the transport reports closed -------> CLOSED <-+
 *
 * A channel is referenced by the registry from attach until the release
 * task that follows the transport's closed report, and by every task queued
 * for it (a notification, a deferred close). It is freed (ops->free, then the
 * struct) when the last reference goes, always from a loop callback of the
 * registry and never inside an API call. Notifications (ATTACHED, UP, DOWN,
 * CLOSED) are queued in the registry's deferred queue in the order the
 * changes happened and delivered from the loop, so the application may call
 * anything from them. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct notice_s {
    cmdipc__deferred_t deferred;
    cmdipc_channel_t *ch;
    cmdipc_channel_event_t event;
    int status;
} notice_t;

#define xstrdup cmdipc__strdup

/* ---------------------------------------------------------------------------
 * References. */

static void channel_release(cmdipc_channel_t *ch) {
    if (ch->ops->free != NULL)
        ch->ops->free(ch);
    cmdipc__map_free(&ch->out);
    cmdipc__free(ch->id);
    cmdipc__free(ch);
}

static inline void channel_ref(cmdipc_channel_t *ch) { ch->refs++; }

static void channel_unref(cmdipc_channel_t *ch) {
    assert(ch->refs > 0);
    if (--ch->refs == 0)
        channel_release(ch);
}

/* Queues d (one of the channel's own tasks) holding a reference. */
static void channel_defer(cmdipc_channel_t *ch, cmdipc__deferred_t *d) {
    if (d->queued)
        return;
    channel_ref(ch);
    cmdipc__defer(ch->reg, d);
}

/* Takes d off the queue if it is there (and drops its reference). */
static void channel_undefer(cmdipc_channel_t *ch, cmdipc__deferred_t *d) {
    if (cmdipc__undefer(ch->reg, d))
        channel_unref(ch);
}

/* ---------------------------------------------------------------------------
 * Notifications. */

static void notice_cb(cmdipc__deferred_t *d) {
    notice_t *n = cmdipc__container_of(d, notice_t, deferred);
    cmdipc_channel_t *ch = n->ch;
    cmdipc_registry_t *r = ch->reg;
    if (r->channel_cb != NULL)
        r->channel_cb(r, ch, n->event, n->status, r->channel_cb_data);
    cmdipc__free(n);
    channel_unref(ch);
}

static void notify(cmdipc_channel_t *ch, cmdipc_channel_event_t event, int status) {
    cmdipc_registry_t *r = ch->reg;
    if (r->channel_cb == NULL)
        return;
    notice_t *n = cmdipc__malloc(sizeof(*n));
    if (n == NULL) {
        r->stats.notices_lost++;
        cmdipc__log(r, CMDIPC_LOG_ERROR,
                    "channel %s: out of memory: a notification is lost", ch->id);
        return;
    }
    memset(n, 0, sizeof(*n));
    n->ch = ch;
    n->event = event;
    n->status = status;
    n->deferred.fn = notice_cb;
    channel_ref(ch);
    cmdipc__defer(r, &n->deferred);
}

/* ---------------------------------------------------------------------------
 * Creation and accessors. */

int cmdipc_channel_new(const char *id, const cmdipc_channel_ops_t *ops, void *impl,
                       cmdipc_channel_t **out) {
    if (out == NULL)
        return UV_EINVAL;
    *out = NULL;
    if (cmdipc__check_id(id) || ops == NULL || ops->version == 0 ||
        ops->version > CMDIPC_CHANNEL_OPS_VERSION || ops->send == NULL ||
        ops->close == NULL)
        return UV_EINVAL;
    cmdipc_channel_t *ch = cmdipc__calloc(1, sizeof(*ch));
    if (ch == NULL)
        return UV_ENOMEM;
    ch->id = xstrdup(id);
    if (ch->id == NULL) {
        cmdipc__free(ch);
        return UV_ENOMEM;
    }
    ch->ops = ops;
    ch->impl = impl;
    ch->state = CMDIPC__CH_NEW;
    cmdipc__map_init(&ch->out);
    cmdipc__queue_init(&ch->calls);
    cmdipc__queue_init(&ch->from);
    cmdipc__queue_init(&ch->link);
    cmdipc_limits_init(&ch->limits);
    *out = ch;
    return 0;
}

void cmdipc_channel_free(cmdipc_channel_t *ch) {
    if (ch == NULL)
        return;
    assert(ch->reg == NULL && "cmdipc_channel_free on an attached channel");
    if (ch->reg != NULL)
        return;
    channel_release(ch);
}

const char *cmdipc_channel_id(const cmdipc_channel_t *ch) { return ch->id; }
void *cmdipc_channel_impl(const cmdipc_channel_t *ch) { return ch->impl; }
const cmdipc_channel_ops_t *cmdipc_channel_ops(const cmdipc_channel_t *ch) { return ch->ops; }
cmdipc_registry_t *cmdipc_channel_registry(const cmdipc_channel_t *ch) { return ch->reg; }
void *cmdipc_channel_get_data(const cmdipc_channel_t *ch) { return ch->data; }
void cmdipc_channel_set_data(cmdipc_channel_t *ch, void *data) { ch->data = data; }

int cmdipc_channel_peer(const cmdipc_channel_t *ch, cmdipc_peer_info_t *out) {
    if (ch == NULL || out == NULL)
        return UV_EINVAL;
    memset(out, 0, sizeof(*out));
    out->url = "";
    out->remote = "";
    if (ch->ops->peer == NULL)
        return UV_ENOTSUP;
    return ch->ops->peer(ch, out);
}

static int channel_set_ref(cmdipc_channel_t *ch, int ref) {
    if (ch == NULL)
        return UV_EINVAL;
    if (ch->ops->version < 2 || ch->ops->set_ref == NULL)
        return UV_ENOTSUP;
    ch->ops->set_ref(ch, ref);
    return 0;
}

int cmdipc_channel_ref(cmdipc_channel_t *ch) { return channel_set_ref(ch, 1); }
int cmdipc_channel_unref(cmdipc_channel_t *ch) { return channel_set_ref(ch, 0); }

int cmdipc_channel_is_up(const cmdipc_channel_t *ch) {
    return ch->state == CMDIPC__CH_ATTACHED && !ch->down && !ch->failing;
}

void cmdipc_channel_set_limits(cmdipc_channel_t *ch, const cmdipc_limits_t *lim) {
    if (lim != NULL)
        ch->limits = *lim;
}

int cmdipc_channel_set_id(cmdipc_channel_t *ch, const char *id) {
    return ch == NULL ? UV_EINVAL : cmdipc__channel_set_id(ch, id);
}

int cmdipc__channel_set_id(cmdipc_channel_t *ch, const char *id) {
    if (ch->reg != NULL || cmdipc__check_id(id))
        return UV_EINVAL;
    char *copy = xstrdup(id);
    if (copy == NULL)
        return UV_ENOMEM;
    cmdipc__free(ch->id);
    ch->id = copy;
    return 0;
}

cmdipc_channel_t *cmdipc_registry_channel(cmdipc_registry_t *r, const char *id) {
    if (r == NULL || id == NULL)
        return NULL;
    cmdipc__hnode_t *n = cmdipc__map_get(&r->channels, id);
    return n ? cmdipc__container_of(n, cmdipc_channel_t, node) : NULL;
}

/* ---------------------------------------------------------------------------
 * Attach, up and down. */

/* The handshake of a link that became usable: our list request, then, on
 * the router channel, escalation (decision 7). */
static void channel_up(cmdipc_channel_t *ch) {
    cmdipc_registry_t *r = ch->reg;
    cmdipc_msg_t *m =
        cmdipc__msg_new(CMDIPC_MSG_LIST_REQUEST, NULL, NULL, NULL, NULL, NULL);
    if (m != NULL)
        cmdipc__send_or_fail(ch, m);
    else
        cmdipc__channel_fail(ch, UV_ENOMEM);
    if (cmdipc_channel_is_up(ch) && r->router_id != NULL &&
        strcmp(r->router_id, ch->id) == 0) {
        r->router = ch;
        cmdipc__router_attached(r);
    }
    if (cmdipc_channel_is_up(ch)) {
        cmdipc__routes_changed(r);
        notify(ch, CMDIPC_CHANNEL_UP, 0);
    }
}

int cmdipc_registry_attach(cmdipc_registry_t *r, cmdipc_channel_t *ch) {
    int rc;
    if (r == NULL || ch == NULL)
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;
    if (ch->reg != NULL || ch->state != CMDIPC__CH_NEW)
        return UV_EBUSY;
    if (cmdipc__map_get(&r->channels, ch->id) != NULL)
        return UV_EEXIST;
    /* Everything that can fail before the transport binds its handles to
     * the loop: a channel whose attach failed stays the caller's to free,
     * and it must not be linked into the loop then. */
    ch->node.key = ch->id;
    if (cmdipc__map_put(&r->channels, &ch->node) != 0)
        return UV_ENOMEM;
    if (ch->ops->start != NULL && (rc = ch->ops->start(ch, r->loop)) != 0) {
        cmdipc__map_del(&r->channels, &ch->node);
        return rc;
    }
    ch->reg = r;
    ch->state = CMDIPC__CH_ATTACHED;
    ch->refs = 1; /* the registry's, until the release after closed */
    cmdipc__queue_insert_tail(&r->channel_list, &ch->link);
    r->stats.channels_attached++;
    cmdipc__log(r, CMDIPC_LOG_INFO, "channel %s attached", ch->id);
    notify(ch, CMDIPC_CHANNEL_ATTACHED, 0);
    if (!ch->down)
        channel_up(ch);
    return 0;
}

void cmdipc_channel_link_down(cmdipc_channel_t *ch, int status) {
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL) { /* not attached yet: it starts down */
        ch->down = 1;
        return;
    }
    if (ch->state != CMDIPC__CH_ATTACHED || ch->down)
        return;
    ch->down = 1;
    r->stats.disconnects++;
    if (status == CMDIPC_ESLOWCONSUMER)
        r->stats.slow_consumers++;
    cmdipc__log(r,
                status == UV_EOF || status == UV_EPIPE || status == UV_ECONNRESET
                    ? CMDIPC_LOG_INFO
                    : CMDIPC_LOG_WARN,
                "channel %s down (%s)", ch->id, cmdipc_strerror(status));
    /* The half-close was the old connection's. */
    channel_undefer(ch, &ch->eof_task);
    ch->eof = 0;
    cmdipc__channel_forget(ch);
    notify(ch, CMDIPC_CHANNEL_DOWN, status);
}

void cmdipc_channel_link_up(cmdipc_channel_t *ch) {
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL) {
        ch->down = 0;
        return;
    }
    if (ch->state != CMDIPC__CH_ATTACHED || !ch->down)
        return;
    ch->down = 0;
    cmdipc__log(r, CMDIPC_LOG_INFO, "channel %s up", ch->id);
    channel_up(ch);
}

/* ---------------------------------------------------------------------------
 * Sending. */

int cmdipc__send(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    if (ch->state != CMDIPC__CH_ATTACHED || ch->failing || ch->down) {
        cmdipc_msg_free(m);
        return CMDIPC_ECLOSED;
    }
    int rc = ch->ops->send(ch, m);
    if (rc == 0)
        ch->reg->stats.msgs_out++;
    return rc;
}

void cmdipc__send_or_fail(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    int rc = cmdipc__send(ch, m);
    if (rc == 0)
        return;
    /* Nothing is dropped silently: an answer, an ack or an event that
     * cannot reach a channel that is going away is counted. */
    ch->reg->stats.dropped[CMDIPC_DROP_UNSENT]++;
    if (rc == CMDIPC_EOVERLOAD)
        cmdipc__channel_fail(ch, CMDIPC_ESLOWCONSUMER);
    else if (rc != CMDIPC_ECLOSED)
        cmdipc__channel_fail(ch, rc);
}

/* ---------------------------------------------------------------------------
 * Closing. */

/* Takes ch out of routing (rule 12), queues its CLOSED notification. */
static void channel_detach(cmdipc_channel_t *ch, int status) {
    cmdipc_registry_t *r = ch->reg;
    cmdipc__map_del(&r->channels, &ch->node);
    cmdipc__queue_remove(&ch->link);
    ch->state = CMDIPC__CH_CLOSING; /* nothing more is sent to it */
    channel_undefer(ch, &ch->fail_task);
    channel_undefer(ch, &ch->eof_task);
    r->stats.disconnects++;
    /* A peer going away is normal: only limits and errors are warnings. */
    int expected = status == 0 || status == CMDIPC_ECLOSED || status == UV_EOF ||
                   status == UV_EPIPE || status == UV_ECONNRESET;
    cmdipc__log(r, expected ? CMDIPC_LOG_INFO : CMDIPC_LOG_WARN, "channel %s closed (%s)",
                ch->id, status ? cmdipc_strerror(status) : "by us");
    if (!ch->down)
        cmdipc__channel_forget(ch);
    notify(ch, CMDIPC_CHANNEL_CLOSED, status == CMDIPC_ECLOSED ? 0 : status);
}

/* Detaches ch and asks its transport to close it. */
static void channel_begin_close(cmdipc_channel_t *ch, int status, int graceful) {
    ch->reg->channels_closing++;
    channel_detach(ch, status);
    ch->ops->close(ch, graceful);
}

void cmdipc__channel_close_all(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->channel_list)) {
        cmdipc_channel_t *ch =
            cmdipc__container_of(r->channel_list.next, cmdipc_channel_t, link);
        channel_begin_close(ch, CMDIPC_ECLOSED, 1);
    }
}

int cmdipc_channel_close(cmdipc_channel_t *ch) {
    if (ch == NULL || ch->reg == NULL)
        return UV_EINVAL;
    if (ch->state != CMDIPC__CH_ATTACHED)
        return UV_EALREADY;
    channel_begin_close(ch, 0, 1);
    return 0;
}

static void fail_task_cb(cmdipc__deferred_t *d) {
    cmdipc_channel_t *ch = cmdipc__container_of(d, cmdipc_channel_t, fail_task);
    if (ch->state == CMDIPC__CH_ATTACHED && ch->failing)
        channel_begin_close(ch, ch->failing, 0);
    channel_unref(ch);
}

void cmdipc__channel_fail(cmdipc_channel_t *ch, int status) {
    if (ch->state != CMDIPC__CH_ATTACHED || ch->failing)
        return;
    cmdipc_registry_t *r = ch->reg;
    ch->failing = status;
    if (status == CMDIPC_ESLOWCONSUMER) {
        r->stats.slow_consumers++;
        cmdipc__log(r, CMDIPC_LOG_WARN,
                    "channel %s closed: slow consumer (its queue is full)", ch->id);
    } else {
        cmdipc__log(r, CMDIPC_LOG_WARN, "channel %s closed: %s", ch->id,
                    cmdipc_strerror(status));
    }
    ch->fail_task.fn = fail_task_cb;
    channel_defer(ch, &ch->fail_task);
}

static void eof_task_cb(cmdipc__deferred_t *d) {
    cmdipc_channel_t *ch = cmdipc__container_of(d, cmdipc_channel_t, eof_task);
    if (ch->state == CMDIPC__CH_ATTACHED && ch->eof && !ch->failing)
        channel_begin_close(ch, UV_EOF, 1); /* reported as the peer's end */
    channel_unref(ch);
}

void cmdipc_channel_eof(cmdipc_channel_t *ch) {
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL || ch->state != CMDIPC__CH_ATTACHED || ch->down || ch->eof)
        return;
    ch->eof = 1;
    cmdipc__log(r, CMDIPC_LOG_INFO, "channel %s: the peer finished sending (%u pending)",
                ch->id, ch->in_flight);
    cmdipc__channel_forget_target(ch);
    if (ch->in_flight == 0) {
        ch->eof_task.fn = eof_task_cb;
        channel_defer(ch, &ch->eof_task);
    }
}

static void release_task_cb(cmdipc__deferred_t *d) {
    cmdipc_channel_t *ch = cmdipc__container_of(d, cmdipc_channel_t, release_task);
    channel_unref(ch); /* the registry's reference */
}

void cmdipc_channel_closed(cmdipc_channel_t *ch, int status) {
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL || ch->state == CMDIPC__CH_CLOSED)
        return;
    if (ch->state == CMDIPC__CH_ATTACHED) {
        /* The transport closed first (peer gone, error, limit). */
        if (status == CMDIPC_ESLOWCONSUMER) {
            r->stats.slow_consumers++;
            cmdipc__log(r, CMDIPC_LOG_WARN, "channel %s closed: slow consumer", ch->id);
        }
        channel_detach(ch, status ? status : UV_EOF);
    } else {
        r->channels_closing--;
    }
    ch->state = CMDIPC__CH_CLOSED;
    /* ops->free runs from a later task, after the notifications queued so
     * far (the CLOSED one among them) were delivered. */
    ch->release_task.fn = release_task_cb;
    cmdipc__defer(r, &ch->release_task);
}

/* ---------------------------------------------------------------------------
 * In-flight accounting and backpressure. */

void cmdipc__in_flight_inc(cmdipc_channel_t *ch) {
    cmdipc_registry_t *r = ch->reg;
    ch->in_flight++;
    if (r->max_in_flight && ch->in_flight >= r->max_in_flight && !ch->paused &&
        ch->state == CMDIPC__CH_ATTACHED) {
        ch->paused = 1;
        r->stats.pauses++;
        cmdipc__log(r, CMDIPC_LOG_DEBUG, "channel %s paused: %u requests in flight",
                    ch->id, ch->in_flight);
        if (ch->ops->pause_reading != NULL)
            ch->ops->pause_reading(ch, 1);
    }
}

void cmdipc__in_flight_dec(cmdipc_channel_t *ch) {
    if (ch->in_flight > 0)
        ch->in_flight--;
    if (ch->eof && ch->in_flight == 0 && ch->state == CMDIPC__CH_ATTACHED) {
        ch->eof_task.fn = eof_task_cb;
        channel_defer(ch, &ch->eof_task);
    }
    cmdipc__channel_resume(ch);
}

void cmdipc__channel_resume(cmdipc_channel_t *ch) {
    if (ch->paused && ch->in_flight <= ch->reg->max_in_flight / 2) {
        ch->paused = 0;
        if (ch->state == CMDIPC__CH_ATTACHED && ch->ops->pause_reading != NULL)
            ch->ops->pause_reading(ch, 0);
    }
}

/* ---------------------------------------------------------------------------
 * Inbound. */

void cmdipc_channel_deliver(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    if (m == NULL)
        return;
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL) {
        cmdipc_msg_free(m);
        return;
    }
    r->stats.msgs_in++;
    if (ch->state != CMDIPC__CH_ATTACHED || ch->failing || ch->down || r->closing) {
        r->stats.dropped[CMDIPC_DROP_CLOSED]++;
        cmdipc_msg_free(m);
        return;
    }
    /* The dispatch holds the channel (a handler may close it) and the
     * registry (a close from inside waits for the end of the dispatch). */
    channel_ref(ch);
    r->busy++;
    cmdipc__dispatch(ch, m);
    cmdipc__busy_leave(r);
    channel_unref(ch);
}

static void reject(cmdipc_channel_t *ch, const cmdipc_decode_error_t *err) {
    cmdipc_registry_t *r = ch->reg;
    int unknown = err->status == CMDIPC_EUNKNOWNTYPE;
    r->stats.dropped[unknown ? CMDIPC_DROP_UNKNOWN_TYPE : CMDIPC_DROP_INVALID]++;
    cmdipc__log(r, unknown ? CMDIPC_LOG_INFO : CMDIPC_LOG_WARN,
                "channel %s: dropped a message (%s: %s at byte %zu)", ch->id,
                cmdipc_err_name(err->status), err->text, err->position);
    if (err->execute_id[0] != '\0' && !unknown) {
        char why[200];
        snprintf(why, sizeof(why), "invalid request: %s", err->text);
        r->stats.invalid_request_replies++;
        cmdipc__reply_error(ch, err->execute_id, CMDIPC_EINVALREQ, why);
    }
}

void cmdipc_channel_deliver_line(cmdipc_channel_t *ch, const char *line, size_t len) {
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL)
        return;
    if (ch->state != CMDIPC__CH_ATTACHED || ch->failing || ch->down || r->closing) {
        r->stats.msgs_in++;
        r->stats.dropped[CMDIPC_DROP_CLOSED]++;
        return;
    }
    cmdipc_msg_t *m;
    cmdipc_decode_error_t err;
    int rc = cmdipc_msg_decode(line, len, &ch->limits, &m, &err);
    if (rc != 0) {
        r->stats.msgs_in++;
        channel_ref(ch);
        r->busy++;
        reject(ch, &err);
        cmdipc__busy_leave(r);
        channel_unref(ch);
        return;
    }
    cmdipc_channel_deliver(ch, m);
}

void cmdipc_channel_reject(cmdipc_channel_t *ch, int status, const char *why) {
    cmdipc_registry_t *r = ch->reg;
    if (r == NULL)
        return;
    cmdipc_decode_error_t err;
    memset(&err, 0, sizeof(err));
    err.status = status;
    snprintf(err.text, sizeof(err.text), "%s", why ? why : cmdipc_strerror(status));
    r->stats.msgs_in++;
    if (ch->state != CMDIPC__CH_ATTACHED)
        return;
    reject(ch, &err);
}
