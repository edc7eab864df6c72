/* cmdipc — the command table: commands served here and known remotely, their
 * notifications, local registration and unregistration, listing, and the
 * built-in cmdipc.commands (PROTOCOL.md section 0, rules 5, 6, 8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
        cmdipc__free(e->channel_id);
        cmdipc__free(e);
    }
}

void cmdipc__command_notify(cmdipc_registry_t *r, int event, const cmdipc__cmd_t *c) {
    if (event == CMDIPC_COMMAND_ADDED)
        cmdipc__routes_changed(r); /* calls waiting for this route go */
    if (r->command_cb == NULL || r->closing)
        return;
    size_t n = strlen(c->id) + 1;
    command_event_t *e = cmdipc__malloc(sizeof(*e) + n);
    if (e == NULL)
        return;
    memcpy(e->id, c->id, n);
    e->event = event;
    e->channel_id = c->owner ? cmdipc__strdup(c->owner->id) : NULL;
    cmdipc__queue_insert_tail(&r->command_events, &e->link);
    r->command_events_deferred.fn = command_events_cb;
    cmdipc__defer(r, &r->command_events_deferred);
}

void cmdipc__command_events_free(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->command_events)) {
        command_event_t *e =
            cmdipc__container_of(r->command_events.next, command_event_t, link);
        cmdipc__queue_remove(&e->link);
        cmdipc__free(e->channel_id);
        cmdipc__free(e);
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

cmdipc__cmd_t *cmdipc__cmd_new(cmdipc_registry_t *r, const char *id, const char *description,
                              json_t *schema, int state, cmdipc_channel_t *owner) {
    cmdipc__cmd_t *c = cmdipc__calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->id = cmdipc__strdup(id);
    c->description = cmdipc__strdup(description);
    if (c->id == NULL || (description != NULL && c->description == NULL)) {
        cmdipc__free(c->id);
        cmdipc__free(c->description);
        cmdipc__free(c);
        return NULL;
    }
    c->schema = json_incref(schema);
    c->state = (uint8_t)state;
    c->is_private = (uint8_t)cmdipc__is_private(id);
    c->owner = owner;
    cmdipc__timer_init(&c->retry, CMDIPC__T_RETRY, cmdipc__retry_due);
    c->node.key = c->id;
    if (cmdipc__map_put(&r->commands, &c->node) != 0) {
        json_decref(c->schema);
        cmdipc__free(c->id);
        cmdipc__free(c->description);
        cmdipc__free(c);
        return NULL;
    }
    cmdipc__queue_insert_tail(&r->cmd_order, &c->order);
    if (cmd_live(c))
        cmdipc__command_notify(r, CMDIPC_COMMAND_ADDED, c);
    return c;
}

static void cmd_free(cmdipc__cmd_t *c) {
    json_decref(c->schema);
    cmdipc__free(c->id);
    cmdipc__free(c->description);
    cmdipc__free(c);
}

void cmdipc__cmd_remove(cmdipc_registry_t *r, cmdipc__cmd_t *c) {
    if (cmd_live(c))
        cmdipc__command_notify(r, CMDIPC_COMMAND_REMOVED, c);
    cmdipc__map_del(&r->commands, &c->node);
    cmdipc__queue_remove(&c->order);
    cmdipc__deadline_cancel(r, &c->retry);
    if (c->escalation != NULL)
        c->escalation->cmd = NULL;
    cmd_free(c);
}

void cmdipc__cmd_refresh(cmdipc__cmd_t *c, const char *description, json_t *schema) {
    char *d = cmdipc__strdup(description);
    if (description != NULL && d == NULL)
        return;
    cmdipc__free(c->description);
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
        def->version > CMDIPC_COMMAND_DEF_VERSION ||
        cmdipc__check_id(def->id) ||
        (def->description != NULL &&
         !cmdipc__utf8_valid(def->description, strlen(def->description))) ||
        check_schema(def->schema))
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;
    if (cmdipc__cmd_find(r, def->id) != NULL)
        return CMDIPC_EDUPLICATE;

    int escalating = !cmdipc__is_private(def->id) && r->router != NULL && !r->router->failing;
    cmdipc__cmd_t *c = cmdipc__cmd_new(r, def->id, def->description, def->schema,
                               escalating ? CMDIPC__CMD_LOCAL_PENDING : CMDIPC__CMD_LOCAL, NULL);
    if (c == NULL)
        return UV_ENOMEM;
    c->fn = fn;
    c->data = data;
    cmdipc__reg_t *g = NULL;
    if (escalating || done != NULL) {
        g = cmdipc__reg_new(r, CMDIPC__REG_LOCAL, def->id);
        if (g == NULL) {
            cmdipc__cmd_remove(r, c);
            return UV_ENOMEM;
        }
        g->done = done;
        g->done_data = done_data;
    }
    if (escalating) {
        int rc = cmdipc__escalate(r, g, c);
        if (rc == CMDIPC_ECLOSED) {
            escalating = 0; /* the router is going away: serve it locally now */
            c->state = CMDIPC__CMD_LOCAL;
            cmdipc__command_notify(r, CMDIPC_COMMAND_ADDED, c);
        } else if (rc != 0) {
            cmdipc__queue_remove(&g->link);
            cmdipc__reg_free(g);
            cmdipc__cmd_remove(r, c);
            return rc;
        }
    }
    if (!escalating && g != NULL) {
        g->cmd = NULL;
        cmdipc__reg_finish(g, 0, NULL); /* completes later, with 0 */
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
    cmdipc__cmd_remove(r, c);
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
    cmdipc_command_info_t *v = cmdipc__calloc(cap ? cap : 1, sizeof(*v));
    if (v == NULL)
        return UV_ENOMEM;
    for (cmdipc__queue_t *q = r->cmd_order.next; q != &r->cmd_order; q = q->next) {
        cmdipc__cmd_t *c = cmdipc__container_of(q, cmdipc__cmd_t, order);
        if (c->state != CMDIPC__CMD_LOCAL && c->state != CMDIPC__CMD_REMOTE)
            continue;
        cmdipc_command_info_t *i = &v[k++];
        i->id = cmdipc__strdup(c->id);
        i->description = cmdipc__strdup(c->description);
        i->schema = json_incref(c->schema);
        i->is_local = c->state == CMDIPC__CMD_LOCAL;
        i->is_private = c->is_private;
        i->channel_id = i->is_local ? NULL : cmdipc__strdup(c->owner->id);
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
        cmdipc__free(info[i].id);
        cmdipc__free(info[i].description);
        json_decref(info[i].schema);
        cmdipc__free(info[i].channel_id);
    }
    cmdipc__free(info);
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
    cmdipc__cmd_t *c = cmdipc__cmd_new(r, "cmdipc.commands",
                               "Every public command this registry can reach, local and remote",
                               NULL, CMDIPC__CMD_LOCAL, NULL);
    if (c == NULL)
        return UV_ENOMEM;
    c->builtin = 1;
    c->fn = builtin_commands_fn;
    c->data = r;
    return 0;
}

void cmdipc_command_def_init(cmdipc_command_def_t *def) {
    memset(def, 0, sizeof(*def));
    def->version = CMDIPC_COMMAND_DEF_VERSION;
}
