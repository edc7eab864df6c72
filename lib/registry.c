/* cmdipc — the registry object: lifecycle, deferred completions, deadlines,
 * logging, channels and resources. Protocol handling is in routing.c,
 * calls.c and events.c. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

struct cmdipc_resource_s {
    cmdipc__queue_t link;
    cmdipc_registry_t *reg;
    const cmdipc_resource_ops_t *ops;
    void *impl;
    int closing;
};

/* ---------------------------------------------------------------------------
 * Logging. */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cmdipc_log_stderr(cmdipc_registry_t *r, cmdipc_log_level_t level, const char *message,
                       void *data) {
    (void)data;
    fprintf(stderr, "cmdipc[%s] %s: %s\n", r ? r->id : "-",
            level_names[level <= CMDIPC_LOG_DEBUG ? level : CMDIPC_LOG_DEBUG], message);
}

static void log_v(const cmdipc_registry_t *r, cmdipc_log_level_t level, const char *fmt,
                  va_list ap) {
    if (r == NULL || r->log_cb == NULL || (int)level > r->log_level)
        return;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    r->log_cb((cmdipc_registry_t *)r, level, line, r->log_data);
}

void cmdipc__log(const cmdipc_registry_t *r, cmdipc_log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_v(r, level, fmt, ap);
    va_end(ap);
}

void cmdipc_log(const cmdipc_registry_t *r, cmdipc_log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_v(r, level, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------
 * Options. */

void cmdipc_registry_opts_init(cmdipc_registry_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_REGISTRY_OPTS_VERSION;
    o->request_ttl_ms = 30000;
    o->event_ttl_ms = 5000;
    o->event_dedup_max = 65536;
    o->max_inbound_in_flight = 128;
    o->max_outbound_pending = 1024;
    o->log_level = CMDIPC_LOG_WARN;
}

void cmdipc_exec_opts_init(cmdipc_exec_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_EXEC_OPTS_VERSION;
    o->timeout_ms = CMDIPC_TIMEOUT_DEFAULT;
}

#define xstrdup cmdipc__strdup

/* ---------------------------------------------------------------------------
 * Deferred completions: one queue per registry, drained by a uv_idle handle
 * (never a timer), so "nothing ready" is well defined. */

static void idle_cb(uv_idle_t *h) {
    cmdipc_registry_t *r = cmdipc__container_of(h, cmdipc_registry_t, idle);
    cmdipc__queue_t batch;
    cmdipc__queue_init(&batch);
    /* Run what is queued now; what these callbacks defer runs next turn. */
    cmdipc__queue_move(&r->deferred, &batch);
    while (!cmdipc__queue_empty(&batch)) {
        cmdipc__queue_t *q = batch.next;
        cmdipc__queue_remove(q);
        cmdipc__deferred_t *d = cmdipc__container_of(q, cmdipc__deferred_t, link);
        d->queued = 0;
        r->deferred_count--;
        d->fn(d);
    }
    if (cmdipc__queue_empty(&r->deferred))
        uv_idle_stop(&r->idle);
    if (r->closing)
        cmdipc__maybe_finish_close(r);
}

void cmdipc__defer(cmdipc_registry_t *r, cmdipc__deferred_t *d) {
    if (d->queued)
        return;
    /* Nothing may be queued once the registry's handles are closing: the
     * close waits until the queue is empty and no task can queue more. */
    assert(!r->handles_closing &&
           "work deferred on a registry whose handles are closing");
    d->queued = 1;
    cmdipc__queue_insert_tail(&r->deferred, &d->link);
    if (r->deferred_count++ == 0 && !r->handles_closing)
        uv_idle_start(&r->idle, idle_cb);
}

int cmdipc__undefer(cmdipc_registry_t *r, cmdipc__deferred_t *d) {
    if (!d->queued)
        return 0;
    /* Also right when d sits in the batch idle_cb is running. */
    cmdipc__queue_remove(&d->link);
    d->queued = 0;
    r->deferred_count--;
    return 1;
}

size_t cmdipc_registry_deferred_count(const cmdipc_registry_t *r) {
    return r->deferred_count;
}

/* ---------------------------------------------------------------------------
 * Deadlines: a min-heap driven by one uv timer. */

static uint64_t uv_clock(void *data) { return uv_now((uv_loop_t *)data); }

uint64_t cmdipc__now(const cmdipc_registry_t *r) { return r->clock(r->clock_data); }

void cmdipc__registry_set_clock(cmdipc_registry_t *r, cmdipc__clock_fn fn, void *data) {
    if (fn == NULL) {
        r->clock = uv_clock;
        r->clock_data = r->loop;
    } else {
        r->clock = fn;
        r->clock_data = data;
        uv_timer_stop(&r->timer);
        r->timer_armed = UINT64_MAX;
    }
}

static void timer_cb(uv_timer_t *t);

static void timer_rearm(cmdipc_registry_t *r) {
    cmdipc__timer_t *top = cmdipc__heap_top(&r->heap);
    if (r->clock != uv_clock || r->closing)
        return;
    if (top == NULL) {
        if (r->timer_armed != UINT64_MAX) {
            uv_timer_stop(&r->timer);
            r->timer_armed = UINT64_MAX;
        }
        return;
    }
    if (top->deadline == r->timer_armed)
        return;
    uint64_t now = cmdipc__now(r);
    uv_timer_start(&r->timer, timer_cb, top->deadline > now ? top->deadline - now : 0, 0);
    r->timer_armed = top->deadline;
}

void cmdipc__deadline_arm(cmdipc_registry_t *r, cmdipc__timer_t *t, uint64_t deadline) {
    if (cmdipc__timer_queued(t))
        cmdipc__heap_remove(&r->heap, t);
    t->deadline = deadline;
    if (cmdipc__heap_push(&r->heap, t) != 0)
        return; /* out of memory: the entry lives without a deadline */
    if (deadline < r->timer_armed)
        timer_rearm(r);
}

void cmdipc__deadline_cancel(cmdipc_registry_t *r, cmdipc__timer_t *t) {
    if (cmdipc__timer_queued(t))
        cmdipc__heap_remove(&r->heap, t);
    /* The uv timer may stay armed for an earlier deadline: firing finds
     * nothing due and re-arms. */
}

uint64_t cmdipc__registry_next_deadline(const cmdipc_registry_t *r) {
    cmdipc__timer_t *top = cmdipc__heap_top(&r->heap);
    return top ? top->deadline : UINT64_MAX;
}

void cmdipc__registry_run_deadlines(cmdipc_registry_t *r) {
    uint64_t now = cmdipc__now(r);
    cmdipc__timer_t *t;
    while ((t = cmdipc__heap_top(&r->heap)) != NULL && t->deadline <= now) {
        cmdipc__heap_remove(&r->heap, t);
        t->expire(r, t);
    }
}

static void timer_cb(uv_timer_t *h) {
    cmdipc_registry_t *r = cmdipc__container_of(h, cmdipc_registry_t, timer);
    r->timer_armed = UINT64_MAX;
    cmdipc__registry_run_deadlines(r);
    timer_rearm(r);
}

/* ---------------------------------------------------------------------------
 * Lifecycle. */

/* CMDIPC_LOG: a level name turns stderr logging on at that level; off,
 * none, 0 or empty keep it off; anything else is reported once and ignored
 * (it used to turn debug logging on). */
static cmdipc_log_level_t env_log_level(int *set) {
    static int warned;
    const char *e = getenv("CMDIPC_LOG");
    *set = 0;
    if (e == NULL || *e == '\0' || strcasecmp(e, "off") == 0 || strcasecmp(e, "none") == 0 ||
        strcmp(e, "0") == 0)
        return CMDIPC_LOG_WARN;
    for (int i = 0; i <= CMDIPC_LOG_DEBUG; i++) {
        if (strcasecmp(e, level_names[i]) == 0) {
            *set = 1;
            return (cmdipc_log_level_t)i;
        }
    }
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        fprintf(stderr,
                "cmdipc: CMDIPC_LOG=%.40s is not a level (error, warn, info, debug, off): "
                "ignored\n",
                e);
    return CMDIPC_LOG_WARN;
}

int cmdipc_registry_new(uv_loop_t *loop, const cmdipc_registry_opts_t *opts,
                        cmdipc_registry_t **out) {
    cmdipc_registry_opts_t defaults;
    char uuid[CMDIPC__UUID_LEN + 1];
    int rc;

    if (out == NULL)
        return UV_EINVAL;
    *out = NULL;
    if (loop == NULL)
        return UV_EINVAL;
    if (opts == NULL) {
        cmdipc_registry_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->version == 0 || opts->version > CMDIPC_REGISTRY_OPTS_VERSION)
        return UV_EINVAL;
    if ((opts->id != NULL && cmdipc__check_id(opts->id)) ||
        (opts->router_channel != NULL && cmdipc__check_id(opts->router_channel)))
        return UV_EINVAL;
    if ((rc = cmdipc__global_init()) != 0)
        return rc;

    cmdipc_registry_t *r = cmdipc__calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    r->loop = loop;
    if (opts->id == NULL)
        cmdipc__uuid4(uuid);
    r->id = xstrdup(opts->id ? opts->id : uuid);
    r->router_id = xstrdup(opts->router_channel);
    if (r->id == NULL || (opts->router_channel != NULL && r->router_id == NULL)) {
        cmdipc__free(r->id);
        cmdipc__free(r->router_id);
        cmdipc__free(r);
        return UV_ENOMEM;
    }
    r->request_ttl_ms = opts->request_ttl_ms;
    r->event_ttl_ms = opts->event_ttl_ms;
    r->event_dedup_max = opts->event_dedup_max ? opts->event_dedup_max : 1;
    r->max_in_flight = opts->max_inbound_in_flight;
    r->max_out = opts->max_outbound_pending;
    r->log_cb = opts->log_cb;
    r->log_data = opts->log_data;
    r->log_level = (int)opts->log_level;
    if (r->log_cb == NULL && opts->version >= 2 && opts->log_from_env) {
        int set;
        cmdipc_log_level_t lvl = env_log_level(&set);
        if (set) {
            r->log_cb = cmdipc_log_stderr;
            r->log_level = (int)lvl;
        }
    }
    r->clock = uv_clock;
    r->clock_data = loop;
    r->timer_armed = UINT64_MAX;
    cmdipc__map_init(&r->commands);
    cmdipc__queue_init(&r->cmd_order);
    cmdipc__map_init(&r->channels);
    cmdipc__queue_init(&r->channel_list);
    cmdipc__heap_init(&r->heap);
    cmdipc__queue_init(&r->deferred);
    cmdipc__queue_init(&r->reqs);
    cmdipc__queue_init(&r->waiting);
    cmdipc__queue_init(&r->regs);
    cmdipc__queue_init(&r->lists);
    cmdipc__queue_init(&r->command_events);
    cmdipc__queue_init(&r->calls);
    cmdipc__queue_init(&r->resources);
    cmdipc__map_init(&r->events);
    cmdipc__map_init(&r->seen);
    cmdipc__queue_init(&r->seen_fifo);

    uv_timer_init(loop, &r->timer);
    uv_idle_init(loop, &r->idle);
    r->handles_open = 2;
    if (opts->builtin_commands && (rc = cmdipc__builtin_register(r)) != 0) {
        *out = r;
        cmdipc_registry_close(r, NULL, NULL);
        *out = NULL;
        return rc;
    }
    cmdipc__log(r, CMDIPC_LOG_DEBUG, "registry created%s%s", r->router_id ? ", router " : "",
                r->router_id ? r->router_id : "");
    *out = r;
    return 0;
}

const char *cmdipc_registry_id(const cmdipc_registry_t *r) { return r->id; }
int cmdipc_registry_is_closing(const cmdipc_registry_t *r) { return r->closing; }

static void registry_set_ref(cmdipc_registry_t *r, int ref) {
    r->unref = !ref;
    uv_handle_t *hs[2] = {(uv_handle_t *)&r->timer, (uv_handle_t *)&r->idle};
    for (int i = 0; i < 2; i++) {
        if (ref)
            uv_ref(hs[i]);
        else
            uv_unref(hs[i]);
    }
    cmdipc__xt_set_ref(r, ref);
}

void cmdipc_registry_ref(cmdipc_registry_t *r) { registry_set_ref(r, 1); }
void cmdipc_registry_unref(cmdipc_registry_t *r) { registry_set_ref(r, 0); }
int cmdipc_id_check(const char *id) { return cmdipc__check_id(id); }
uv_loop_t *cmdipc_registry_loop(const cmdipc_registry_t *r) { return r->loop; }
void *cmdipc_registry_get_data(const cmdipc_registry_t *r) { return r->data; }
void cmdipc_registry_set_data(cmdipc_registry_t *r, void *data) { r->data = data; }

void cmdipc_registry_set_channel_cb(cmdipc_registry_t *r, cmdipc_channel_cb cb, void *data) {
    r->channel_cb = cb;
    r->channel_cb_data = data;
}

void cmdipc_registry_set_command_cb(cmdipc_registry_t *r, cmdipc_command_cb cb, void *data) {
    r->command_cb = cb;
    r->command_cb_data = data;
}

static void registry_free(cmdipc_registry_t *r) {
    /* Calls not yet answered outlive the registry: detach them. */
    while (!cmdipc__queue_empty(&r->calls)) {
        cmdipc__queue_t *q = r->calls.next;
        cmdipc_call_t *c = cmdipc__container_of(q, cmdipc_call_t, link);
        cmdipc__queue_remove(q);
        c->reg = NULL;
        c->origin = NULL;
        c->req = NULL;
    }
    cmdipc__command_events_free(r);
    cmdipc__commands_free(r);
    cmdipc__events_free(r);
    cmdipc__map_free(&r->channels);
    cmdipc__heap_free(&r->heap);
    cmdipc__free(r->id);
    cmdipc__free(r->router_id);
    cmdipc__free(r);
}

/* Every close callback asked for, in the order the closes were called
 * (a close callback may call cmdipc_registry_close again: that one runs
 * too), then the registry is freed. */
static void handle_closed_cb(uv_handle_t *h) {
    cmdipc_registry_t *r = h->data;
    if (--r->handles_open > 0)
        return;
    while (r->close_waiters != NULL) {
        cmdipc__close_waiter_t *w = r->close_waiters;
        r->close_waiters = w->next;
        w->cb(r, w->data);
        cmdipc__free(w);
    }
    registry_free(r);
}

void cmdipc__maybe_finish_close(cmdipc_registry_t *r) {
    if (!r->closing || r->teardown_pending || r->busy > 0 || r->handles_closing ||
        r->channels_closing > 0 || !cmdipc__queue_empty(&r->resources) ||
        r->deferred_count > 0)
        return;
    r->handles_closing = 1;
    uv_idle_stop(&r->idle);
    r->timer.data = r;
    r->idle.data = r;
    uv_close((uv_handle_t *)&r->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&r->idle, handle_closed_cb);
    cmdipc__xt_shutdown(r, handle_closed_cb); /* counted in handles_open when it exists */
}

static void resource_close(cmdipc_resource_t *res) {
    if (res->closing)
        return;
    res->closing = 1;
    res->ops->close(res);
}

static void registry_teardown(cmdipc_registry_t *r);

/* Adds cb to the callbacks run when the close completes. Returns 0 or
 * UV_ENOMEM. */
static int add_close_waiter(cmdipc_registry_t *r, cmdipc_close_cb cb, void *data) {
    if (cb == NULL)
        return 0;
    cmdipc__close_waiter_t *w = cmdipc__malloc(sizeof(*w));
    if (w == NULL)
        return UV_ENOMEM;
    w->cb = cb;
    w->data = data;
    w->next = NULL;
    cmdipc__close_waiter_t **pp = &r->close_waiters;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = w;
    return 0;
}

void cmdipc_registry_close(cmdipc_registry_t *r, cmdipc_close_cb cb, void *data) {
    if (r == NULL)
        return;
    if (add_close_waiter(r, cb, data) != 0) {
        /* Out of memory for the record of the callback: it cannot be kept,
         * so it is the one thing this close will not call. */
        cmdipc__log(r, CMDIPC_LOG_ERROR,
                    "registry close: out of memory, close callback lost");
    }
    if (r->closing)
        return; /* already closing: cb (if any) runs when that close completes */
    r->closing = 1;
    cmdipc__log(r, CMDIPC_LOG_DEBUG, "registry closing");
    /* Called from a handler or listener while a message is being
     * dispatched: new work is refused from now on, and the teardown waits
     * for the end of the dispatch (so an event is still forwarded). */
    if (r->busy > 0) {
        r->teardown_pending = 1;
        return;
    }
    registry_teardown(r);
}

void cmdipc__busy_leave(cmdipc_registry_t *r) {
    if (--r->busy > 0)
        return;
    if (r->teardown_pending) {
        r->teardown_pending = 0;
        registry_teardown(r);
    } else if (r->closing) {
        cmdipc__maybe_finish_close(r);
    }
}

static void registry_teardown(cmdipc_registry_t *r) {
    r->busy++; /* nothing below finishes the close halfway */

    /* Outbound calls and registrations complete with CMDIPC_ECANCELED. */
    cmdipc__reqs_cancel_all(r);
    cmdipc__regs_cancel_all(r);
    cmdipc__lists_cancel_all(r);

    /* Channels close gracefully (what is queued is flushed). */
    cmdipc__channel_close_all(r);
    /* Calls from local executes: their answers will be dropped. */
    cmdipc__calls_orphan(r, &r->calls);

    cmdipc__queue_t *q = r->resources.next;
    while (q != &r->resources) {
        cmdipc_resource_t *res = cmdipc__container_of(q, cmdipc_resource_t, link);
        q = q->next;
        resource_close(res);
    }
    uv_timer_stop(&r->timer);
    cmdipc__heap_free(&r->heap);
    r->timer_armed = UINT64_MAX;
    /* Even with nothing pending, the close callback runs on a later turn
     * (the handles' close callbacks). */
    cmdipc__busy_leave(r);
}

/* ---------------------------------------------------------------------------
 * Resources. */

int cmdipc_resource_add(cmdipc_registry_t *r, const cmdipc_resource_ops_t *ops, void *impl,
                        cmdipc_resource_t **out) {
    if (r == NULL || ops == NULL || ops->close == NULL || out == NULL)
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;
    cmdipc_resource_t *res = cmdipc__calloc(1, sizeof(*res));
    if (res == NULL)
        return UV_ENOMEM;
    res->reg = r;
    res->ops = ops;
    res->impl = impl;
    cmdipc__queue_insert_tail(&r->resources, &res->link);
    *out = res;
    return 0;
}

void *cmdipc_resource_impl(const cmdipc_resource_t *res) { return res->impl; }

void cmdipc_resource_closed(cmdipc_resource_t *res) {
    cmdipc_registry_t *r = res->reg;
    cmdipc__queue_remove(&res->link);
    cmdipc__free(res);
    if (r->closing)
        cmdipc__maybe_finish_close(r);
}

/* ---------------------------------------------------------------------------
 * Stats. */

void cmdipc_registry_stats(const cmdipc_registry_t *r, cmdipc_stats_t *out) {
    *out = r->stats;
    out->channels = r->channels.count;
    uint64_t local = 0, remote = 0, routes = 0, pending = 0, calls = 0;
    cmdipc__map_iter_t it;
    cmdipc__hnode_t *n;
    cmdipc__map_iter_init(&it, &r->commands);
    while ((n = cmdipc__map_iter_next(&it)) != NULL) {
        cmdipc__cmd_t *c = cmdipc__container_of(n, cmdipc__cmd_t, node);
        if (c->state == CMDIPC__CMD_LOCAL)
            local++;
        else if (c->state == CMDIPC__CMD_REMOTE)
            remote++;
    }
    for (const cmdipc__queue_t *q = r->channel_list.next; q != &r->channel_list; q = q->next) {
        const cmdipc_channel_t *ch = cmdipc__container_of(q, cmdipc_channel_t, link);
        cmdipc__map_iter_init(&it, &ch->out);
        while ((n = cmdipc__map_iter_next(&it)) != NULL) {
            cmdipc__out_t *o = cmdipc__container_of(n, cmdipc__out_t, node);
            if (o->timer.kind == CMDIPC__T_ROUTE)
                routes++;
        }
        for (const cmdipc__queue_t *c = ch->calls.next; c != &ch->calls; c = c->next)
            calls++;
    }
    for (const cmdipc__queue_t *q = r->reqs.next; q != &r->reqs; q = q->next)
        pending++;
    for (const cmdipc__queue_t *q = r->regs.next; q != &r->regs; q = q->next)
        pending++;
    for (const cmdipc__queue_t *q = r->calls.next; q != &r->calls; q = q->next)
        calls++;
    out->commands_local = local;
    out->commands_remote = remote;
    out->routes = routes;
    out->pending_calls = pending;
    out->calls_in_flight = calls;
}
