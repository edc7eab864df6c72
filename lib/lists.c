/* cmdipc — the list exchange: answering list.commands.request, learning
 * routes from list.commands.response (solicited or not), and the solicited
 * requests of cmdipc_channel_list_commands() (PROTOCOL.md section 0, rules
 * 6, 8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void cmdipc__inbound_list_request(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    json_t *list = json_array();
    for (cmdipc__queue_t *q = r->cmd_order.next; list != NULL && q != &r->cmd_order;
         q = q->next) {
        cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
        if (c->state == CMDIPC__CMD_LOCAL && !c->is_private && !c->builtin)
            json_array_append_new(list, cmdipc__cmd_def_json(c));
    }
    cmdipc_msg_t *out = cmdipc__msg_new(CMDIPC_MSG_LIST_RESPONSE, NULL, m->id, NULL, NULL, NULL);
    if (list == NULL || out == NULL) {
        json_decref(list);
        cmdipc_msg_free(out);
        cmdipc__channel_fail(ch, UV_ENOMEM);
        return;
    }
    cmdipc__msg_set_json(out, list);
    json_decref(list);
    cmdipc__send_or_fail(ch, out);
}

void cmdipc__inbound_list_response(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    json_t *cmds = cmdipc_msg_payload(m);
    size_t n = json_array_size(cmds);
    for (size_t i = 0; i < n && ch->state == CMDIPC__CH_ATTACHED; i++) {
        json_t *d = json_array_get(cmds, i);
        const char *id = json_string_value(json_object_get(d, "id"));
        const char *desc = json_string_value(json_object_get(d, "description"));
        json_t *schema = json_object_get(d, "schema");
        if (id == NULL || cmdipc__is_private(id))
            continue;
        cmdipc__cmd_t *c = cmdipc__cmd_find(r, id);
        if (c != NULL) {
            if (c->state == CMDIPC__CMD_REMOTE && c->owner == ch)
                cmdipc__cmd_refresh(c, desc, schema);
            continue; /* local, pending, or another owner's: first owner wins */
        }
        c = cmdipc__cmd_new(r, id, desc, schema, CMDIPC__CMD_REMOTE, ch);
        if (c != NULL && r->router != NULL && r->router != ch)
            cmdipc__escalate_again(r, c);
    }
}

/* ---------------------------------------------------------------------------
 * Solicited list requests (cmdipc_channel_list_commands). */

struct cmdipc__list_s {
    cmdipc__out_t out; /* first: the deadline timer is out.timer */
    cmdipc__deferred_t deferred;
    cmdipc__queue_t link; /* r->lists */
    cmdipc_registry_t *reg;
    cmdipc_list_cb cb;
    void *data;
    int status;
    json_t *commands;
    char id[CMDIPC__UUID_LEN + 1];
};

static void list_deliver_cb(cmdipc__deferred_t *d) {
    cmdipc__list_t *l = cmdipc__container_of(d, cmdipc__list_t, deferred);
    l->cb(l->reg, l->status, l->commands, l->data);
    json_decref(l->commands);
    cmdipc__free(l);
}

void cmdipc__list_complete(cmdipc__list_t *l, int status, json_t *commands) {
    if (l->out.target != NULL) {
        cmdipc__map_del(&l->out.target->out, &l->out.node);
        l->out.target = NULL;
    }
    cmdipc__deadline_cancel(l->reg, &l->out.timer);
    cmdipc__queue_remove(&l->link);
    l->status = status;
    l->commands = json_incref(commands);
    cmdipc__defer(l->reg, &l->deferred);
}

static void list_expired(cmdipc_registry_t *r, cmdipc__timer_t *t) {
    cmdipc__list_t *l = (cmdipc__list_t *)cmdipc__container_of(t, cmdipc__out_t, timer);
    (void)r;
    l->reg->stats.timeouts++;
    cmdipc__list_complete(l, CMDIPC_ETIMEDOUT, NULL);
}

void cmdipc__lists_cancel_all(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->lists))
        cmdipc__list_complete(cmdipc__container_of(r->lists.next, cmdipc__list_t, link),
                      CMDIPC_ECANCELED, NULL);
}

int cmdipc_channel_list_commands(cmdipc_channel_t *ch, cmdipc_list_cb cb, void *data) {
    if (ch == NULL || cb == NULL || ch->reg == NULL)
        return UV_EINVAL;
    cmdipc_registry_t *r = ch->reg;
    if (r->closing)
        return CMDIPC_ECLOSED;
    if (ch->state != CMDIPC__CH_ATTACHED || ch->down || ch->failing)
        return CMDIPC_EDISCONNECTED;
    if (r->max_out && ch->out.count >= r->max_out) {
        r->stats.overloads++;
        return CMDIPC_EOVERLOAD;
    }
    cmdipc__list_t *l = cmdipc__calloc(1, sizeof(*l));
    if (l == NULL)
        return UV_ENOMEM;
    l->reg = r;
    l->cb = cb;
    l->data = data;
    l->deferred.fn = list_deliver_cb;
    cmdipc__timer_init(&l->out.timer, CMDIPC__T_LIST, list_expired);
    cmdipc__uuid4(l->id);
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_LIST_REQUEST, l->id, NULL, NULL, NULL, NULL);
    if (m == NULL) {
        cmdipc__free(l);
        return UV_ENOMEM;
    }
    l->out.node.key = l->id;
    if (cmdipc__map_put(&ch->out, &l->out.node) != 0) {
        cmdipc_msg_free(m);
        cmdipc__free(l);
        return UV_ENOMEM;
    }
    l->out.target = ch;
    cmdipc__queue_insert_tail(&r->lists, &l->link);
    int rc = cmdipc__send(ch, m);
    if (rc != 0) {
        cmdipc__map_del(&ch->out, &l->out.node);
        cmdipc__queue_remove(&l->link);
        cmdipc__free(l);
        return rc == CMDIPC_ECLOSED ? CMDIPC_EDISCONNECTED : rc;
    }
    if (r->request_ttl_ms != 0)
        cmdipc__deadline_arm(r, &l->out.timer, cmdipc__add_sat(cmdipc__now(r), r->request_ttl_ms));
    return 0;
}

