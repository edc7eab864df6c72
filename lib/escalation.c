/* cmdipc — registrations: inbound register requests and their escalation
 * to the router, retries with backoff, the escalation of every command when
 * the router channel attaches (PROTOCOL.md section 0, rules 4, 5, 7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000

/* ---------------------------------------------------------------------------
 * Small senders. */

static void reply_register(cmdipc_channel_t *ch, const char *thid, int ok) {
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_REGISTER_RESPONSE, NULL, thid, NULL, NULL, NULL);
    if (m == NULL) {
        cmdipc__channel_fail(ch, UV_ENOMEM);
        return;
    }
    m->status = ok ? 0 : CMDIPC_EDUPLICATE;
    cmdipc__send_or_fail(ch, m);
}

json_t *cmdipc__cmd_def_json(const cmdipc__cmd_t *c) {
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "id", json_string(c->id));
    if (c->description != NULL)
        json_object_set_new(o, "description", json_string(c->description));
    if (c->schema != NULL)
        json_object_set(o, "schema", c->schema);
    return o;
}

/* ---------------------------------------------------------------------------
 * Escalation of registrations to the router. */

void cmdipc__reg_free(cmdipc__reg_t *g) {
    for (unsigned i = 0; i < g->n_again; i++)
        cmdipc__free(g->again_thids[i]);
    cmdipc__free(g->again_thids);
    cmdipc__free(g->origin_thid);
    cmdipc__free(g->command_id);
    cmdipc__free(g);
}

static void reg_done_cb(cmdipc__deferred_t *d) {
    cmdipc__reg_t *g = cmdipc__container_of(d, cmdipc__reg_t, deferred);
    g->done(g->reg, g->status, g->command_id, g->done_data);
    cmdipc__reg_free(g);
}

static void reg_expired(cmdipc_registry_t *r, cmdipc__timer_t *t);

cmdipc__reg_t *cmdipc__reg_new(cmdipc_registry_t *r, int kind, const char *command_id) {
    cmdipc__reg_t *g = cmdipc__calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->command_id = cmdipc__strdup(command_id);
    if (g->command_id == NULL) {
        cmdipc__free(g);
        return NULL;
    }
    g->reg = r;
    g->kind = (uint8_t)kind;
    cmdipc__timer_init(&g->out.timer, CMDIPC__T_REG, reg_expired);
    g->deferred.fn = reg_done_cb;
    cmdipc__queue_init(&g->from_link);
    cmdipc__queue_insert_tail(&r->regs, &g->link);
    cmdipc__uuid4(g->id);
    return g;
}

/* Sends cmd's registration to the router. Returns 0 (g is pending),
 * CMDIPC_EOVERLOAD, CMDIPC_ECLOSED or UV_ENOMEM (g freed). */
int cmdipc__escalate(cmdipc_registry_t *r, cmdipc__reg_t *g, cmdipc__cmd_t *c) {
    cmdipc_channel_t *router = r->router;
    if (router == NULL || router->failing)
        return CMDIPC_ECLOSED;
    if (r->max_out && router->out.count >= r->max_out) {
        r->stats.overloads++;
        return CMDIPC_EOVERLOAD;
    }
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_REGISTER_REQUEST, g->id, NULL, c->id, NULL,
                                      c->description);
    if (m == NULL)
        return UV_ENOMEM;
    if (c->schema != NULL)
        cmdipc__msg_set_json(m, c->schema);
    g->out.node.key = g->id;
    if (cmdipc__map_put(&router->out, &g->out.node) != 0) {
        cmdipc_msg_free(m);
        return UV_ENOMEM;
    }
    g->out.target = router;
    int rc = cmdipc__send(router, m);
    if (rc != 0) {
        cmdipc__map_del(&router->out, &g->out.node);
        g->out.target = NULL;
        if (rc == CMDIPC_EOVERLOAD)
            r->stats.overloads++;
        return rc;
    }
    g->cmd = c;
    c->escalation = g;
    if (r->request_ttl_ms != 0)
        cmdipc__deadline_arm(r, &g->out.timer, cmdipc__add_sat(cmdipc__now(r), r->request_ttl_ms));
    return 0;
}

static void schedule_retry(cmdipc_registry_t *r, cmdipc__cmd_t *c) {
    if (r->router == NULL || r->closing)
        return;
    c->backoff_ms = c->backoff_ms == 0              ? RETRY_MIN_MS
                    : c->backoff_ms >= RETRY_MAX_MS / 2 ? RETRY_MAX_MS
                                                        : c->backoff_ms * 2;
    cmdipc__deadline_arm(r, &c->retry, cmdipc__add_sat(cmdipc__now(r), c->backoff_ms));
}

/* Escalates an existing command (router attach, learned from a child). */
void cmdipc__escalate_again(cmdipc_registry_t *r, cmdipc__cmd_t *c) {
    if (c->escalation != NULL || r->router == NULL)
        return;
    cmdipc__reg_t *g = cmdipc__reg_new(r, CMDIPC__REG_AGAIN, c->id);
    if (g == NULL) {
        schedule_retry(r, c);
        return;
    }
    int rc = cmdipc__escalate(r, g, c);
    if (rc != 0) {
        cmdipc__queue_remove(&g->link);
        cmdipc__reg_free(g);
        schedule_retry(r, c);
    }
}

void cmdipc__retry_due(cmdipc_registry_t *r, cmdipc__timer_t *t) {
    cmdipc__cmd_t *c = cmdipc__container_of(t, cmdipc__cmd_t, retry);
    if (r->router == NULL || r->closing)
        return;
    if (c->state == CMDIPC__CMD_LOCAL ||
        (c->state == CMDIPC__CMD_REMOTE && c->owner != r->router))
        cmdipc__escalate_again(r, c);
}

/* Records the outcome of an escalated registration. */
void cmdipc__reg_finish(cmdipc__reg_t *g, int status, const char *why) {
    cmdipc_registry_t *r = g->reg;
    cmdipc__cmd_t *c = g->cmd;
    if (g->out.target != NULL) {
        cmdipc__map_del(&g->out.target->out, &g->out.node);
        g->out.target = NULL;
    }
    cmdipc__deadline_cancel(r, &g->out.timer);
    cmdipc__queue_remove(&g->link);
    if (c != NULL) {
        c->escalation = NULL;
        g->cmd = NULL;
    }
    switch (g->kind) {
        case CMDIPC__REG_LOCAL:
            if (c != NULL) {
                if (status == 0) {
                    c->state = CMDIPC__CMD_LOCAL;
                    cmdipc__command_notify(r, CMDIPC_COMMAND_ADDED, c);
                } else {
                    cmdipc__cmd_remove(r, c);
                }
            }
            if (status != 0)
                cmdipc__log(r, CMDIPC_LOG_WARN, "registration of %s failed: %s", g->command_id,
                            why ? why : cmdipc_strerror(status));
            g->status = status;
            if (g->done != NULL) {
                cmdipc__defer(r, &g->deferred);
                return;
            }
            break;
        case CMDIPC__REG_CHILD: {
            cmdipc_channel_t *origin = g->origin;
            cmdipc__queue_remove(&g->from_link);
            if (c != NULL) {
                if (status == 0 && origin != NULL) {
                    c->state = CMDIPC__CMD_REMOTE;
                    cmdipc__command_notify(r, CMDIPC_COMMAND_ADDED, c);
                } else {
                    cmdipc__cmd_remove(r, c);
                }
            }
            if (origin != NULL) {
                if (status != 0)
                    cmdipc__log(r, CMDIPC_LOG_WARN,
                                "registration of %s from channel %s refused: %s", g->command_id,
                                origin->id, why ? why : cmdipc_strerror(status));
                reply_register(origin, g->origin_thid, status == 0);
                cmdipc__in_flight_dec(origin);
                /* The same answer to every re-registration that waited. */
                for (unsigned i = 0; i < g->n_again; i++) {
                    reply_register(origin, g->again_thids[i], status == 0);
                    cmdipc__in_flight_dec(origin);
                }
            }
            break;
        }
        case CMDIPC__REG_AGAIN:
            if (c != NULL) {
                if (status == 0) {
                    c->backoff_ms = 0;
                } else {
                    cmdipc__log(r, CMDIPC_LOG_WARN,
                                "router refused %s (%s); it stays served here, retrying",
                                g->command_id, why ? why : cmdipc_strerror(status));
                    schedule_retry(r, c);
                }
            }
            break;
        default:
            break;
    }
    cmdipc__reg_free(g);
}

static void reg_expired(cmdipc_registry_t *r, cmdipc__timer_t *t) {
    cmdipc__reg_t *g = cmdipc__container_of(t, cmdipc__reg_t, out.timer);
    (void)r;
    g->reg->stats.timeouts++;
    cmdipc__reg_finish(g, CMDIPC_ETIMEDOUT, "the router did not answer in time");
}

void cmdipc__regs_cancel_all(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->regs)) {
        cmdipc__reg_t *g = cmdipc__container_of(r->regs.next, cmdipc__reg_t, link);
        if (g->kind == CMDIPC__REG_CHILD) {
            /* The child's channel is about to close: no answer. */
            for (unsigned i = 0; g->origin != NULL && i <= g->n_again; i++)
                cmdipc__in_flight_dec(g->origin);
            g->origin = NULL;
        }
        cmdipc__reg_finish(g, CMDIPC_ECANCELED, "registry closed");
    }
}

void cmdipc__router_attached(cmdipc_registry_t *r) {
    cmdipc_channel_t *router = r->router;
    cmdipc__queue_t *q = r->cmd_order.next;
    while (q != &r->cmd_order && r->router == router) {
        cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
        q = q->next;
        if (c->is_private || c->builtin)
            continue;
        if (c->state == CMDIPC__CMD_LOCAL ||
            (c->state == CMDIPC__CMD_REMOTE && c->owner != router)) {
            c->backoff_ms = 0;
            cmdipc__escalate_again(r, c);
        }
    }
}


/* ---------------------------------------------------------------------------
 * Inbound messages. */

void cmdipc__inbound_register(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    const char *id = m->name;
    json_t *schema = cmdipc_msg_payload(m);
    cmdipc__cmd_t *c = cmdipc__cmd_find(r, id);
    if (c != NULL) {
        cmdipc__reg_t *pending = c->escalation;
        if (c->state == CMDIPC__CMD_REMOTE && c->owner == ch) {
            cmdipc__cmd_refresh(c, m->description, schema); /* re-registration: no upstream traffic */
            reply_register(ch, m->id, 1);
        } else if (c->state == CMDIPC__CMD_REMOTE_PENDING && c->owner == ch && pending != NULL &&
                   pending->kind == CMDIPC__REG_CHILD && pending->origin == ch) {
            /* Re-registered while the router's ack is awaited: it gets the
             * same answer as the first, when it comes. */
            char **v = cmdipc__realloc(pending->again_thids,
                                       (pending->n_again + 1) * sizeof(*v));
            char *thid = cmdipc__strdup(m->id);
            if (v == NULL || thid == NULL) {
                if (v != NULL)
                    pending->again_thids = v;
                cmdipc__free(thid);
                reply_register(ch, m->id, 0);
                return;
            }
            pending->again_thids = v;
            v[pending->n_again++] = thid;
            cmdipc__cmd_refresh(c, m->description, schema);
            cmdipc__in_flight_inc(ch);
        } else {
            cmdipc__log(r, CMDIPC_LOG_INFO, "channel %s: registration of %s refused: duplicate",
                        ch->id, id);
            reply_register(ch, m->id, 0);
        }
        return;
    }
    int escalating = !cmdipc__is_private(id) && r->router != NULL && r->router != ch;
    c = cmdipc__cmd_new(r, id, m->description, schema,
                escalating ? CMDIPC__CMD_REMOTE_PENDING : CMDIPC__CMD_REMOTE, ch);
    if (c == NULL) {
        reply_register(ch, m->id, 0);
        return;
    }
    if (!escalating) {
        reply_register(ch, m->id, 1);
        return;
    }
    cmdipc__reg_t *g = cmdipc__reg_new(r, CMDIPC__REG_CHILD, id);
    int rc = g ? 0 : UV_ENOMEM;
    if (g != NULL) {
        g->origin = ch;
        g->origin_thid = cmdipc__strdup(m->id);
        rc = g->origin_thid ? cmdipc__escalate(r, g, c) : UV_ENOMEM;
        if (rc != 0) {
            cmdipc__queue_remove(&g->link);
            cmdipc__reg_free(g);
        }
    }
    if (rc != 0) {
        cmdipc__cmd_remove(r, c);
        cmdipc__log(r, CMDIPC_LOG_WARN,
                    "channel %s: registration of %s refused: cannot escalate (%s)", ch->id, id,
                    cmdipc_strerror(rc));
        reply_register(ch, m->id, 0);
        return;
    }
    cmdipc__queue_insert_tail(&ch->from, &g->from_link);
    cmdipc__in_flight_inc(ch);
}

