/* cmdipc — commands and routing: local registration and escalation,
 * inbound register / list / execute / response handling, forwarding with
 * routes, channel close cleanup (PROTOCOL.md section 0, rules 2-8, 11, 12). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Static_assert(offsetof(cmdipc__reg_t, from_link) == offsetof(cmdipc__route_t, from_link),
               "routes and child registrations share their head");

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000

static char *xstrdup(const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static int is_private(const char *id) { return id[0] == '_'; }

/* ---------------------------------------------------------------------------
 * Command notifications, queued and delivered from the loop. */

typedef struct command_event_s {
    cmdipc__queue_t link;
    int event;
    char *channel_id; /* NULL: local */
    char id[];
} command_event_t;

static void command_events_cb(cmdipc__deferred_t *d) {
    cmdipc_registry_t *r = cmdipc__container_of(d, cmdipc_registry_t, command_events_deferred);
    cmdipc__queue_t batch;
    cmdipc__queue_init(&batch);
    cmdipc__queue_move(&r->command_events, &batch);
    while (!cmdipc__queue_empty(&batch)) {
        command_event_t *e = cmdipc__container_of(batch.next, command_event_t, link);
        cmdipc__queue_remove(&e->link);
        if (r->command_cb != NULL)
            r->command_cb(r, (cmdipc_command_event_t)e->event, e->id, e->channel_id,
                          r->command_cb_data);
        free(e->channel_id);
        free(e);
    }
}

static void command_notify(cmdipc_registry_t *r, int event, const cmdipc__cmd_t *c) {
    if (r->command_cb == NULL || r->closing)
        return;
    size_t n = strlen(c->id) + 1;
    command_event_t *e = malloc(sizeof(*e) + n);
    if (e == NULL)
        return;
    memcpy(e->id, c->id, n);
    e->event = event;
    e->channel_id = c->owner ? xstrdup(c->owner->id) : NULL;
    cmdipc__queue_insert_tail(&r->command_events, &e->link);
    r->command_events_deferred.fn = command_events_cb;
    cmdipc__defer(r, &r->command_events_deferred);
}

void cmdipc__command_events_free(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->command_events)) {
        command_event_t *e =
            cmdipc__container_of(r->command_events.next, command_event_t, link);
        cmdipc__queue_remove(&e->link);
        free(e->channel_id);
        free(e);
    }
}

static int cmd_live(const cmdipc__cmd_t *c) {
    return c->state == CMDIPC__CMD_LOCAL || c->state == CMDIPC__CMD_REMOTE;
}

/* ---------------------------------------------------------------------------
 * The command table. */

cmdipc__cmd_t *cmdipc__cmd_find(const cmdipc_registry_t *r, const char *id) {
    cmdipc__hnode_t *n = cmdipc__map_get(&r->commands, id);
    return n ? cmdipc__container_of(n, cmdipc__cmd_t, node) : NULL;
}

static cmdipc__cmd_t *cmd_new(cmdipc_registry_t *r, const char *id, const char *description,
                              json_t *schema, int state, cmdipc_channel_t *owner) {
    cmdipc__cmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->id = xstrdup(id);
    c->description = xstrdup(description);
    if (c->id == NULL || (description != NULL && c->description == NULL)) {
        free(c->id);
        free(c->description);
        free(c);
        return NULL;
    }
    c->schema = json_incref(schema);
    c->state = (uint8_t)state;
    c->is_private = (uint8_t)is_private(id);
    c->owner = owner;
    c->retry.index = SIZE_MAX;
    c->retry.kind = CMDIPC__T_RETRY;
    c->node.key = c->id;
    if (cmdipc__map_put(&r->commands, &c->node) != 0) {
        json_decref(c->schema);
        free(c->id);
        free(c->description);
        free(c);
        return NULL;
    }
    cmdipc__queue_insert_tail(&r->cmd_order, &c->order);
    if (cmd_live(c))
        command_notify(r, CMDIPC_COMMAND_ADDED, c);
    return c;
}

static void cmd_free(cmdipc__cmd_t *c) {
    json_decref(c->schema);
    free(c->id);
    free(c->description);
    free(c);
}

static void cmd_remove(cmdipc_registry_t *r, cmdipc__cmd_t *c) {
    if (cmd_live(c))
        command_notify(r, CMDIPC_COMMAND_REMOVED, c);
    cmdipc__map_del(&r->commands, &c->node);
    cmdipc__queue_remove(&c->order);
    cmdipc__deadline_cancel(r, &c->retry);
    if (c->escalation != NULL)
        c->escalation->cmd = NULL;
    cmd_free(c);
}

static void cmd_refresh(cmdipc__cmd_t *c, const char *description, json_t *schema) {
    char *d = xstrdup(description);
    if (description != NULL && d == NULL)
        return;
    free(c->description);
    c->description = d;
    json_incref(schema);
    json_decref(c->schema);
    c->schema = schema;
}

void cmdipc__commands_free(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->cmd_order)) {
        cmdipc__cmd_t *c = cmdipc__container_of(r->cmd_order.next, cmdipc__cmd_t, order);
        cmdipc__queue_remove(&c->order);
        cmd_free(c);
    }
    cmdipc__map_free(&r->commands);
}

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

static json_t *def_json(const cmdipc__cmd_t *c) {
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

static void reg_free(cmdipc__reg_t *g) {
    for (unsigned i = 0; i < g->n_again; i++)
        cmdipc__free(g->again_thids[i]);
    cmdipc__free(g->again_thids);
    free(g->origin_thid);
    free(g->command_id);
    free(g);
}

static void reg_done_cb(cmdipc__deferred_t *d) {
    cmdipc__reg_t *g = cmdipc__container_of(d, cmdipc__reg_t, deferred);
    g->done(g->reg, g->status, g->command_id, g->done_data);
    reg_free(g);
}

static cmdipc__reg_t *reg_new(cmdipc_registry_t *r, int kind, const char *command_id) {
    cmdipc__reg_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->command_id = xstrdup(command_id);
    if (g->command_id == NULL) {
        free(g);
        return NULL;
    }
    g->reg = r;
    g->kind = (uint8_t)kind;
    g->out.timer.index = SIZE_MAX;
    g->out.timer.kind = CMDIPC__T_REG;
    g->deferred.fn = reg_done_cb;
    cmdipc__queue_init(&g->from_link);
    cmdipc__queue_insert_tail(&r->regs, &g->link);
    cmdipc__uuid4(g->id);
    return g;
}

/* Sends cmd's registration to the router. Returns 0 (g is pending),
 * CMDIPC_EOVERLOAD, CMDIPC_ECLOSED or UV_ENOMEM (g freed). */
static int escalate(cmdipc_registry_t *r, cmdipc__reg_t *g, cmdipc__cmd_t *c) {
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
static void escalate_again(cmdipc_registry_t *r, cmdipc__cmd_t *c) {
    if (c->escalation != NULL || r->router == NULL)
        return;
    cmdipc__reg_t *g = reg_new(r, CMDIPC__REG_AGAIN, c->id);
    if (g == NULL) {
        schedule_retry(r, c);
        return;
    }
    int rc = escalate(r, g, c);
    if (rc != 0) {
        cmdipc__queue_remove(&g->link);
        reg_free(g);
        schedule_retry(r, c);
    }
}

void cmdipc__retry_due(cmdipc_registry_t *r, cmdipc__cmd_t *c) {
    if (r->router == NULL || r->closing)
        return;
    if (c->state == CMDIPC__CMD_LOCAL ||
        (c->state == CMDIPC__CMD_REMOTE && c->owner != r->router))
        escalate_again(r, c);
}

/* Records the outcome of an escalated registration. */
static void reg_finish(cmdipc__reg_t *g, int status, const char *why) {
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
                    command_notify(r, CMDIPC_COMMAND_ADDED, c);
                } else {
                    cmd_remove(r, c);
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
                    command_notify(r, CMDIPC_COMMAND_ADDED, c);
                } else {
                    cmd_remove(r, c);
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
    reg_free(g);
}

void cmdipc__reg_expired(cmdipc__reg_t *g) {
    g->reg->stats.timeouts++;
    reg_finish(g, CMDIPC_ETIMEDOUT, "the router did not answer in time");
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
        reg_finish(g, CMDIPC_ECANCELED, "registry closed");
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
            escalate_again(r, c);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Local registration API. */

static int check_schema(const json_t *schema) {
    if (schema == NULL)
        return 0;
    if (!json_is_object(schema))
        return UV_EINVAL;
    size_t known = (json_object_get(schema, "request") != NULL) +
                   (json_object_get(schema, "response") != NULL);
    if (json_object_size(schema) != known)
        return UV_EINVAL;
    return cmdipc__json_check(schema, CMDIPC__RESULT_DEPTH) ? UV_EINVAL : 0;
}

int cmdipc_registry_register(cmdipc_registry_t *r, const cmdipc_command_def_t *def,
                             cmdipc_command_fn fn, void *data, cmdipc_register_cb done,
                             void *done_data) {
    if (r == NULL || def == NULL || fn == NULL || def->version == 0 ||
        cmdipc__check_id(def->id) ||
        (def->description != NULL &&
         !cmdipc__utf8_valid(def->description, strlen(def->description))) ||
        check_schema(def->schema))
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;
    if (cmdipc__cmd_find(r, def->id) != NULL)
        return CMDIPC_EDUPLICATE;

    int escalating = !is_private(def->id) && r->router != NULL && !r->router->failing;
    cmdipc__cmd_t *c = cmd_new(r, def->id, def->description, def->schema,
                               escalating ? CMDIPC__CMD_LOCAL_PENDING : CMDIPC__CMD_LOCAL, NULL);
    if (c == NULL)
        return UV_ENOMEM;
    c->fn = fn;
    c->data = data;
    cmdipc__reg_t *g = NULL;
    if (escalating || done != NULL) {
        g = reg_new(r, CMDIPC__REG_LOCAL, def->id);
        if (g == NULL) {
            cmd_remove(r, c);
            return UV_ENOMEM;
        }
        g->done = done;
        g->done_data = done_data;
    }
    if (escalating) {
        int rc = escalate(r, g, c);
        if (rc == CMDIPC_ECLOSED) {
            escalating = 0; /* the router is going away: serve it locally now */
            c->state = CMDIPC__CMD_LOCAL;
            command_notify(r, CMDIPC_COMMAND_ADDED, c);
        } else if (rc != 0) {
            cmdipc__queue_remove(&g->link);
            reg_free(g);
            cmd_remove(r, c);
            return rc;
        }
    }
    if (!escalating && g != NULL) {
        g->cmd = NULL;
        reg_finish(g, 0, NULL); /* completes later, with 0 */
    }
    cmdipc__log(r, CMDIPC_LOG_DEBUG, "command %s registered%s", def->id,
                escalating ? ", awaiting the router" : "");
    return 0;
}

int cmdipc_registry_unregister(cmdipc_registry_t *r, const char *command_id) {
    if (r == NULL || command_id == NULL)
        return UV_EINVAL;
    cmdipc__cmd_t *c = cmdipc__cmd_find(r, command_id);
    if (c == NULL || (c->state != CMDIPC__CMD_LOCAL && c->state != CMDIPC__CMD_LOCAL_PENDING))
        return UV_ENOENT;
    if (c->state == CMDIPC__CMD_LOCAL_PENDING)
        return UV_EBUSY;
    cmd_remove(r, c);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Listing. */

static int info_cmp(const void *a, const void *b) {
    return strcmp(((const cmdipc_command_info_t *)a)->id, ((const cmdipc_command_info_t *)b)->id);
}

int cmdipc_registry_list_commands(cmdipc_registry_t *r, cmdipc_command_info_t **out, size_t *n) {
    if (r == NULL || out == NULL || n == NULL)
        return UV_EINVAL;
    *out = NULL;
    *n = 0;
    size_t cap = r->commands.count, k = 0;
    cmdipc_command_info_t *v = calloc(cap ? cap : 1, sizeof(*v));
    if (v == NULL)
        return UV_ENOMEM;
    for (cmdipc__queue_t *q = r->cmd_order.next; q != &r->cmd_order; q = q->next) {
        cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
        if (c->state != CMDIPC__CMD_LOCAL && c->state != CMDIPC__CMD_REMOTE)
            continue;
        cmdipc_command_info_t *i = &v[k++];
        i->id = xstrdup(c->id);
        i->description = xstrdup(c->description);
        i->schema = json_incref(c->schema);
        i->is_local = c->state == CMDIPC__CMD_LOCAL;
        i->is_private = c->is_private;
        i->channel_id = i->is_local ? NULL : xstrdup(c->owner->id);
        if (i->id == NULL || (c->description && i->description == NULL) ||
            (!i->is_local && i->channel_id == NULL)) {
            cmdipc_command_info_free(v, k);
            return UV_ENOMEM;
        }
    }
    qsort(v, k, sizeof(*v), info_cmp);
    *out = v;
    *n = k;
    return 0;
}

void cmdipc_command_info_free(cmdipc_command_info_t *info, size_t n) {
    if (info == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(info[i].id);
        free(info[i].description);
        json_decref(info[i].schema);
        free(info[i].channel_id);
    }
    free(info);
}

/* The built-in "cmdipc.commands": every public command this registry knows. */
static void builtin_commands_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    cmdipc_registry_t *r = data;
    cmdipc_command_info_t *info;
    size_t n;
    if (cmdipc_registry_list_commands(r, &info, &n) != 0) {
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (info[i].is_private)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(info[i].id));
        if (info[i].description != NULL)
            json_object_set_new(o, "description", json_string(info[i].description));
        if (info[i].schema != NULL)
            json_object_set(o, "schema", info[i].schema);
        if (info[i].channel_id != NULL)
            json_object_set_new(o, "channel", json_string(info[i].channel_id));
        json_object_set_new(o, "local", json_boolean(info[i].is_local));
        json_array_append_new(list, o);
    }
    cmdipc_command_info_free(info, n);
    json_t *res = json_pack("{s:o}", "commands", list ? list : json_array());
    cmdipc_call_reply(call, res);
    json_decref(res);
}

int cmdipc__builtin_register(cmdipc_registry_t *r) {
    cmdipc__cmd_t *c = cmd_new(r, "cmdipc.commands",
                               "Every public command this registry can reach, local and remote",
                               NULL, CMDIPC__CMD_LOCAL, NULL);
    if (c == NULL)
        return UV_ENOMEM;
    c->builtin = 1;
    c->fn = builtin_commands_fn;
    c->data = r;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Inbound messages. */

static void inbound_register(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    const char *id = m->name;
    json_t *schema = cmdipc_msg_payload(m);
    cmdipc__cmd_t *c = cmdipc__cmd_find(r, id);
    if (c != NULL) {
        cmdipc__reg_t *pending = c->escalation;
        if (c->state == CMDIPC__CMD_REMOTE && c->owner == ch) {
            cmd_refresh(c, m->description, schema); /* re-registration: no upstream traffic */
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
            cmd_refresh(c, m->description, schema);
            cmdipc__in_flight_inc(ch);
        } else {
            cmdipc__log(r, CMDIPC_LOG_INFO, "channel %s: registration of %s refused: duplicate",
                        ch->id, id);
            reply_register(ch, m->id, 0);
        }
        return;
    }
    int escalating = !is_private(id) && r->router != NULL && r->router != ch;
    c = cmd_new(r, id, m->description, schema,
                escalating ? CMDIPC__CMD_REMOTE_PENDING : CMDIPC__CMD_REMOTE, ch);
    if (c == NULL) {
        reply_register(ch, m->id, 0);
        return;
    }
    if (!escalating) {
        reply_register(ch, m->id, 1);
        return;
    }
    cmdipc__reg_t *g = reg_new(r, CMDIPC__REG_CHILD, id);
    int rc = g ? 0 : UV_ENOMEM;
    if (g != NULL) {
        g->origin = ch;
        g->origin_thid = xstrdup(m->id);
        rc = g->origin_thid ? escalate(r, g, c) : UV_ENOMEM;
        if (rc != 0) {
            cmdipc__queue_remove(&g->link);
            reg_free(g);
        }
    }
    if (rc != 0) {
        cmd_remove(r, c);
        cmdipc__log(r, CMDIPC_LOG_WARN,
                    "channel %s: registration of %s refused: cannot escalate (%s)", ch->id, id,
                    cmdipc_strerror(rc));
        reply_register(ch, m->id, 0);
        return;
    }
    cmdipc__queue_insert_tail(&ch->from, &g->from_link);
    cmdipc__in_flight_inc(ch);
}

static void inbound_list_request(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    json_t *list = json_array();
    for (cmdipc__queue_t *q = r->cmd_order.next; list != NULL && q != &r->cmd_order;
         q = q->next) {
        cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
        if (c->state == CMDIPC__CMD_LOCAL && !c->is_private && !c->builtin)
            json_array_append_new(list, def_json(c));
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

static void inbound_list_response(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    cmdipc_registry_t *r = ch->reg;
    json_t *cmds = cmdipc_msg_payload(m);
    size_t n = json_array_size(cmds);
    for (size_t i = 0; i < n && ch->state == CMDIPC__CH_ATTACHED; i++) {
        json_t *d = json_array_get(cmds, i);
        const char *id = json_string_value(json_object_get(d, "id"));
        const char *desc = json_string_value(json_object_get(d, "description"));
        json_t *schema = json_object_get(d, "schema");
        if (id == NULL || is_private(id))
            continue;
        cmdipc__cmd_t *c = cmdipc__cmd_find(r, id);
        if (c != NULL) {
            if (c->state == CMDIPC__CMD_REMOTE && c->owner == ch)
                cmd_refresh(c, desc, schema);
            continue; /* local, pending, or another owner's: first owner wins */
        }
        c = cmd_new(r, id, desc, schema, CMDIPC__CMD_REMOTE, ch);
        if (c != NULL && r->router != NULL && r->router != ch)
            escalate_again(r, c);
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
    free(l);
}

static void list_complete(cmdipc__list_t *l, int status, json_t *commands) {
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

void cmdipc__list_expired(cmdipc__list_t *l) {
    l->reg->stats.timeouts++;
    list_complete(l, CMDIPC_ETIMEDOUT, NULL);
}

void cmdipc__lists_cancel_all(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->lists))
        list_complete(cmdipc__container_of(r->lists.next, cmdipc__list_t, link),
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
    cmdipc__list_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return UV_ENOMEM;
    l->reg = r;
    l->cb = cb;
    l->data = data;
    l->deferred.fn = list_deliver_cb;
    l->out.timer.index = SIZE_MAX;
    l->out.timer.kind = CMDIPC__T_LIST;
    cmdipc__uuid4(l->id);
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_LIST_REQUEST, l->id, NULL, NULL, NULL, NULL);
    if (m == NULL) {
        free(l);
        return UV_ENOMEM;
    }
    l->out.node.key = l->id;
    if (cmdipc__map_put(&ch->out, &l->out.node) != 0) {
        cmdipc_msg_free(m);
        free(l);
        return UV_ENOMEM;
    }
    l->out.target = ch;
    cmdipc__queue_insert_tail(&r->lists, &l->link);
    int rc = cmdipc__send(ch, m);
    if (rc != 0) {
        cmdipc__map_del(&ch->out, &l->out.node);
        cmdipc__queue_remove(&l->link);
        free(l);
        return rc == CMDIPC_ECLOSED ? CMDIPC_EDISCONNECTED : rc;
    }
    if (r->request_ttl_ms != 0)
        cmdipc__deadline_arm(r, &l->out.timer, cmdipc__add_sat(cmdipc__now(r), r->request_ttl_ms));
    return 0;
}

static void route_free(cmdipc_registry_t *r, cmdipc__route_t *rt) {
    if (rt->out.target != NULL)
        cmdipc__map_del(&rt->out.target->out, &rt->out.node);
    cmdipc__deadline_cancel(r, &rt->out.timer);
    cmdipc__queue_remove(&rt->from_link);
    cmdipc__pfree(rt);
}

void cmdipc__route_expired(cmdipc_registry_t *r, cmdipc__route_t *rt) {
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
    rt->out.timer.index = SIZE_MAX;
    rt->out.timer.kind = CMDIPC__T_ROUTE;
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
        reg_finish(cmdipc__container_of(o, cmdipc__reg_t, out), m->status,
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
            inbound_register(ch, m);
            cmdipc_msg_free(m);
            break;
        case CMDIPC_MSG_LIST_REQUEST:
            inbound_list_request(ch, m);
            cmdipc_msg_free(m);
            break;
        case CMDIPC_MSG_LIST_RESPONSE: {
            inbound_list_response(ch, m);
            cmdipc__hnode_t *n = cmdipc__map_get(&ch->out, m->thid);
            cmdipc__out_t *o = n ? cmdipc__container_of(n, cmdipc__out_t, node) : NULL;
            if (o != NULL && o->timer.kind == CMDIPC__T_LIST)
                list_complete((cmdipc__list_t *)o, 0, cmdipc_msg_payload(m));
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
                reg_finish(cmdipc__container_of(o, cmdipc__reg_t, out), CMDIPC_EDISCONNECTED,
                           "the router disconnected");
                break;
            case CMDIPC__T_LIST:
                list_complete((cmdipc__list_t *)o, CMDIPC_EDISCONNECTED, NULL);
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
            cmd_remove(r, c);
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
