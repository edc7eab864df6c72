/* cmdipc — routing: dispatch of inbound messages, forwarding of execute
 * requests with routes and of their responses, loop guards, and the rule 12
 * cleanup when a channel goes (PROTOCOL.md section 0, rules 2, 3, 11, 12). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Static_assert(offsetof(cmdipc__reg_t, from_link) == offsetof(cmdipc__route_t, from_link),
               "routes and child registrations share their head");

static void route_free(cmdipc_registry_t *r, cmdipc__route_t *rt) {
    if (rt->out.target != NULL)
        cmdipc__map_del(&rt->out.target->out, &rt->out.node);
    cmdipc__deadline_cancel(r, &rt->out.timer);
    cmdipc__queue_remove(&rt->from_link);
    cmdipc__pfree(rt);
}

static void route_expired(cmdipc_registry_t *r, cmdipc__timer_t *t) {
    cmdipc__route_t *rt = cmdipc__container_of(t, cmdipc__route_t, out.timer);
    r->stats.routes_expired++;
    cmdipc__log(r, CMDIPC_LOG_DEBUG, "route for %s expired", rt->id);
    cmdipc__in_flight_dec(rt->origin);
    route_free(r, rt);
}

/* Forwards execute request m from origin to target, keeping its id. */
static void forward(cmdipc_registry_t *r, cmdipc_channel_t *origin, cmdipc_channel_t *target,
                    cmdipc_msg_t *m) {
    size_t idlen = strlen(m->id);
    uint64_t h = cmdipc__hash(m->id, idlen); /* once, for the check and the insert */
    if (cmdipc__map_get_h(&target->out, m->id, h) != NULL) {
        cmdipc__reply_error(origin, m->id, CMDIPC_EINTERNAL, "request id already in flight");
        cmdipc_msg_free(m);
        return;
    }
    if (r->max_out && target->out.count >= r->max_out) {
        r->stats.overloads++;
        cmdipc__reply_error(origin, m->id, CMDIPC_EINTERNAL, "overloaded");
        cmdipc_msg_free(m);
        return;
    }
    cmdipc__route_t *rt = cmdipc__palloc(sizeof(*rt) + idlen + 1);
    if (rt == NULL) {
        cmdipc__reply_error(origin, m->id, CMDIPC_EINTERNAL, "out of memory");
        cmdipc_msg_free(m);
        return;
    }
    memcpy(rt->id, m->id, idlen + 1);
    rt->origin = origin;
    rt->out.target = target;
    cmdipc__timer_init(&rt->out.timer, CMDIPC__T_ROUTE, route_expired);
    rt->out.node.key = rt->id;
    if (cmdipc__map_put_h(&target->out, &rt->out.node, h) != 0) {
        cmdipc__pfree(rt);
        cmdipc__reply_error(origin, m->id, CMDIPC_EINTERNAL, "out of memory");
        cmdipc_msg_free(m);
        return;
    }
    cmdipc__queue_insert_tail(&origin->from, &rt->from_link);
    cmdipc__in_flight_inc(origin);
    int rc = cmdipc__send(target, m);
    if (rc != 0) {
        int status = rc == CMDIPC_ECLOSED ? CMDIPC_EDISCONNECTED : CMDIPC_EINTERNAL;
        if (rc == CMDIPC_EOVERLOAD)
            r->stats.overloads++;
        cmdipc__reply_error(origin, rt->id, status,
                            rc == CMDIPC_ECLOSED ? "target channel disconnected" : "overloaded");
        cmdipc__in_flight_dec(origin);
        route_free(r, rt);
        return;
    }
    r->stats.forwarded++;
    if (r->request_ttl_ms != 0)
        cmdipc__deadline_arm(r, &rt->out.timer, cmdipc__add_sat(cmdipc__now(r), r->request_ttl_ms));
}

static void inbound_execute(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    char why[200];
    if (cmdipc__map_get(&ch->out, m->id) != NULL) {
        /* Our own request (sent or forwarded to ch) came back: a child that
         * lacks the command bounced it up. */
        snprintf(why, sizeof(why), "command \"%.150s\" not found", m->name);
        cmdipc__reply_error(ch, m->id, CMDIPC_ENOTFOUND, why);
        cmdipc_msg_free(m);
        return;
    }
    cmdipc__cmd_t *c = cmdipc__cmd_find(r, m->name);
    if (c != NULL && c->state == CMDIPC__CMD_LOCAL) {
        cmdipc__call_start(r, ch, m, c);
        return;
    }
    cmdipc_channel_t *target = NULL;
    int status = CMDIPC_ENOTFOUND;
    if (c != NULL && c->state == CMDIPC__CMD_REMOTE && c->owner != ch && !c->owner->failing) {
        target = c->owner;
    } else if (c != NULL && c->state == CMDIPC__CMD_REMOTE && c->owner == ch) {
        target = NULL; /* owned by the asker: loop guard */
    } else if (r->router_id != NULL) {
        if (r->router == ch)
            target = NULL;
        else if (r->router == NULL || r->router->failing)
            status = CMDIPC_EDISCONNECTED;
        else
            target = r->router;
    }
    if (target != NULL) {
        forward(r, ch, target, m);
        return;
    }
    if (status == CMDIPC_EDISCONNECTED)
        snprintf(why, sizeof(why), "router channel %.150s is not connected", r->router_id);
    else
        snprintf(why, sizeof(why), "command \"%.150s\" not found", m->name);
    cmdipc__reply_error(ch, m->id, status, why);
    cmdipc_msg_free(m);
}

static void inbound_response(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    cmdipc__hnode_t *n = cmdipc__map_get(&ch->out, m->thid);
    cmdipc__out_t *o = n ? cmdipc__container_of(n, cmdipc__out_t, node) : NULL;
    int kind = o ? o->timer.kind : 0;
    if (m->type == CMDIPC_MSG_REGISTER_RESPONSE && kind == CMDIPC__T_REG) {
        cmdipc__reg_finish(cmdipc__container_of(o, cmdipc__reg_t, out), m->status,
                   m->status ? "the router refused it as a duplicate" : NULL);
        cmdipc_msg_free(m);
        return;
    }
    if (m->type == CMDIPC_MSG_EXECUTE_RESPONSE && kind == CMDIPC__T_EXEC) {
        cmdipc_req_t *req = cmdipc__container_of(o, cmdipc_req_t, out);
        cmdipc__req_answer(req, m->status, m->status ? NULL : cmdipc_msg_payload(m),
                           m->message);
        cmdipc_msg_free(m);
        return;
    }
    if (m->type == CMDIPC_MSG_EXECUTE_RESPONSE && kind == CMDIPC__T_ROUTE) {
        cmdipc__route_t *rt = cmdipc__container_of(o, cmdipc__route_t, out);
        cmdipc_channel_t *origin = rt->origin;
        route_free(r, rt);
        /* Same thid and response, fresh id. */
        cmdipc__uuid4(m->idbuf);
        m->id = m->idbuf;
        cmdipc__send_or_fail(origin, m);
        cmdipc__in_flight_dec(origin);
        return;
    }
    r->stats.dropped[CMDIPC_DROP_UNMATCHED]++;
    cmdipc__log(r, CMDIPC_LOG_DEBUG, "channel %s: %s for unknown thid %s dropped", ch->id,
                cmdipc_msg_type_name((cmdipc_msg_type_t)m->type), m->thid);
    cmdipc_msg_free(m);
}

void cmdipc__dispatch(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    switch (m->type) {
        case CMDIPC_MSG_REGISTER_REQUEST:
            cmdipc__inbound_register(ch, m);
            cmdipc_msg_free(m);
            break;
        case CMDIPC_MSG_LIST_REQUEST:
            cmdipc__inbound_list_request(ch, m);
            cmdipc_msg_free(m);
            break;
        case CMDIPC_MSG_LIST_RESPONSE: {
            cmdipc__inbound_list_response(ch, m);
            cmdipc__hnode_t *n = cmdipc__map_get(&ch->out, m->thid);
            cmdipc__out_t *o = n ? cmdipc__container_of(n, cmdipc__out_t, node) : NULL;
            if (o != NULL && o->timer.kind == CMDIPC__T_LIST)
                cmdipc__list_complete((cmdipc__list_t *)o, 0, cmdipc_msg_payload(m));
            cmdipc_msg_free(m);
            break;
        }
        case CMDIPC_MSG_EXECUTE_REQUEST:
            inbound_execute(ch, m);
            break;
        case CMDIPC_MSG_REGISTER_RESPONSE:
        case CMDIPC_MSG_EXECUTE_RESPONSE:
            inbound_response(ch, m);
            break;
        case CMDIPC_MSG_EVENT:
            cmdipc__event_inbound(ch, m);
            break;
        default:
            cmdipc_msg_free(m);
            break;
    }
}

/* ---------------------------------------------------------------------------
 * Channel close cleanup (rule 12). */

/* What awaited an answer from ch fails, and the commands it owned are
 * forgotten: ch can no longer answer (rule 12, first half). */
void cmdipc__channel_forget_target(cmdipc_channel_t *ch) {
    cmdipc_registry_t *r = ch->reg;
    char why[200];

    if (r->router == ch) {
        r->router = NULL;
        for (cmdipc__queue_t *q = r->cmd_order.next; q != &r->cmd_order; q = q->next) {
            cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
            cmdipc__deadline_cancel(r, &c->retry);
            c->backoff_ms = 0;
        }
    }

    snprintf(why, sizeof(why), "channel %.150s disconnected", ch->id);
    cmdipc__map_iter_t it;
    cmdipc__hnode_t *n;
    cmdipc__map_iter_init(&it, &ch->out);
    while ((n = cmdipc__map_iter_next(&it)) != NULL) {
        cmdipc__out_t *o = cmdipc__container_of(n, cmdipc__out_t, node);
        switch (o->timer.kind) {
            case CMDIPC__T_EXEC:
                cmdipc__req_complete(cmdipc__container_of(o, cmdipc_req_t, out),
                                     CMDIPC_EDISCONNECTED, NULL, why);
                break;
            case CMDIPC__T_REG:
                cmdipc__reg_finish(cmdipc__container_of(o, cmdipc__reg_t, out), CMDIPC_EDISCONNECTED,
                           "the router disconnected");
                break;
            case CMDIPC__T_LIST:
                cmdipc__list_complete((cmdipc__list_t *)o, CMDIPC_EDISCONNECTED, NULL);
                break;
            case CMDIPC__T_ROUTE: {
                cmdipc__route_t *rt = cmdipc__container_of(o, cmdipc__route_t, out);
                cmdipc_channel_t *origin = rt->origin;
                cmdipc__reply_error(origin, rt->id, CMDIPC_EDISCONNECTED,
                                    "target channel disconnected");
                cmdipc__in_flight_dec(origin);
                route_free(r, rt);
                break;
            }
            default:
                break;
        }
    }
    cmdipc__map_free(&ch->out);

    cmdipc__queue_t *q = r->cmd_order.next;
    while (q != &r->cmd_order) {
        cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
        q = q->next;
        if (c->owner == ch)
            cmdipc__cmd_remove(r, c);
    }
}

/* Everything rule 12 asks when ch's link goes away, for good or until a
 * reconnect. */
void cmdipc__channel_forget(cmdipc_channel_t *ch) {
    cmdipc_registry_t *r = ch->reg;
    cmdipc__channel_forget_target(ch);

    /* Calls from ch: their answers will be dropped. */
    cmdipc__calls_orphan(r, &ch->calls);

    /* Routes and child registrations that came from ch. */
    while (!cmdipc__queue_empty(&ch->from)) {
        cmdipc__queue_t *q = ch->from.next;
        cmdipc__reg_t *g = cmdipc__container_of(q, cmdipc__reg_t, from_link);
        if (g->out.timer.kind == CMDIPC__T_ROUTE) {
            route_free(r, cmdipc__container_of(q, cmdipc__route_t, from_link));
        } else {
            cmdipc__queue_remove(q);
            g->origin = NULL;
        }
    }
    ch->in_flight = 0;
    cmdipc__channel_resume(ch);
}

