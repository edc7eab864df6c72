/* Shared helpers for the registry tests. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_REGS 64
static cmdipc_registry_t *regs[MAX_REGS];
static size_t n_regs;

uint64_t tu_clock_now(void *data) { return ((tu_clock_t *)data)->now; }

static void track(cmdipc_registry_t *r) {
    ASSERT_LT(n_regs, MAX_REGS);
    regs[n_regs++] = r;
}

void tu_forget(cmdipc_registry_t *r) {
    for (size_t i = 0; i < n_regs; i++) {
        if (regs[i] == r) {
            regs[i] = regs[--n_regs];
            return;
        }
    }
}

cmdipc_registry_t *tu_registry_opts(uv_loop_t *loop, const cmdipc_registry_opts_t *opts) {
    cmdipc_registry_t *r;
    ASSERT_OK(cmdipc_registry_new(loop, opts, &r));
    track(r);
    return r;
}

cmdipc_registry_t *tu_registry(uv_loop_t *loop, const char *id, const char *router) {
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    o.router_channel = router;
    return tu_registry_opts(loop, &o);
}

void tu_link(cmdipc_registry_t *a, cmdipc_registry_t *b) {
    cmdipc_channel_t *ca, *cb;
    ASSERT_OK(cmdipc_memory_pair(cmdipc_registry_id(b), cmdipc_registry_id(a), &ca, &cb));
    ASSERT_OK(cmdipc_registry_attach(a, ca));
    ASSERT_OK(cmdipc_registry_attach(b, cb));
}

static uint64_t activity(void) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n_regs; i++) {
        cmdipc_stats_t s;
        cmdipc_registry_stats(regs[i], &s);
        sum += s.msgs_in + s.msgs_out + s.handled + s.disconnects + s.executes;
        sum += cmdipc_registry_deferred_count(regs[i]) * 1000003u;
    }
    return sum;
}

static int deferred_pending(void) {
    for (size_t i = 0; i < n_regs; i++)
        if (cmdipc_registry_deferred_count(regs[i]) > 0)
            return 1;
    return 0;
}

void tu_settle(uv_loop_t *loop) {
    int quiet = 0;
    uint64_t last = activity();
    for (int i = 0; i < 100000 && quiet < 4; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        uint64_t now = activity();
        if (now == last && !deferred_pending())
            quiet++;
        else
            quiet = 0;
        last = now;
    }
    ASSERT_EQ(quiet, 4);
}

void tu_run_until(uv_loop_t *loop, const int *flag, uint64_t timeout_ms) {
    uint64_t start = uv_hrtime();
    while (!*flag) {
        uv_run(loop, UV_RUN_ONCE);
        if ((uv_hrtime() - start) / 1000000 > timeout_ms) {
            fprintf(stderr, "tu_run_until: condition not met after %llu ms\n",
                    (unsigned long long)timeout_ms);
            ASSERT(*flag);
        }
    }
}

static int closed_count;
static void close_cb(cmdipc_registry_t *r, void *data) {
    (void)r;
    (void)data;
    closed_count++;
}

void tu_close_all(uv_loop_t *loop, cmdipc_registry_t *first, ...) {
    va_list ap;
    int n = 0;
    closed_count = 0;
    va_start(ap, first);
    for (cmdipc_registry_t *r = first; r != NULL; r = va_arg(ap, cmdipc_registry_t *)) {
        tu_forget(r);
        cmdipc_registry_close(r, close_cb, NULL);
        n++;
    }
    va_end(ap);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(closed_count, n);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

static void register_cb(cmdipc_registry_t *r, int status, const char *id, void *data) {
    (void)r;
    (void)id;
    int *st = data;
    st[0] = status;
    st[1]++;
}

void tu_register(uv_loop_t *loop, cmdipc_registry_t *r, const char *id, cmdipc_command_fn fn,
                 void *data) {
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, id, NULL, NULL};
    int st[2] = {-1, 0};
    ASSERT_OK(cmdipc_registry_register(r, &def, fn, data, register_cb, st));
    tu_settle(loop);
    ASSERT_EQ(st[1], 1);
    ASSERT_OK(st[0]);
}

void tu_response_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                    void *data) {
    (void)req;
    tu_result_t *res = data;
    res->calls++;
    res->done = 1;
    res->status = status;
    json_decref(res->result);
    res->result = json_incref(result);
    if (status == 0) {
        ASSERT_NULL(message);
        res->message[0] = '\0';
    } else {
        ASSERT_NOT_NULL(message);
        ASSERT_NULL(result);
        snprintf(res->message, sizeof(res->message), "%s", message);
    }
}

void tu_result_clear(tu_result_t *res) {
    json_decref(res->result);
    memset(res, 0, sizeof(*res));
}

int tu_exec(cmdipc_registry_t *r, const char *id, json_t *request, tu_result_t *out) {
    return cmdipc_registry_execute(r, id, request, NULL, tu_response_cb, out, NULL);
}

int tu_call(uv_loop_t *loop, cmdipc_registry_t *r, const char *id, const char *request_json,
            tu_result_t *out) {
    json_t *req = request_json ? tu_json(request_json) : NULL;
    tu_result_clear(out);
    int rc = tu_exec(r, id, req, out);
    json_decref(req);
    if (rc != 0)
        return rc;
    ASSERT_EQ(out->calls, 0); /* never inside execute */
    tu_settle(loop);
    if (!out->done) /* across processes or sockets it may take longer */
        tu_run_until(loop, &out->done, 30000);
    ASSERT_EQ(out->calls, 1);
    return out->status;
}

void tu_add_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    json_t *a = json_object_get(request, "a"), *b = json_object_get(request, "b");
    if (!json_is_number(a) || !json_is_number(b)) {
        ASSERT_OK(cmdipc_call_fail(call, CMDIPC_EINVALREQ, "a and b must be numbers"));
        return;
    }
    json_t *sum = (json_is_integer(a) && json_is_integer(b))
                      ? json_integer(json_integer_value(a) + json_integer_value(b))
                      : json_real(json_number_value(a) + json_number_value(b));
    ASSERT_OK(cmdipc_call_reply(call, sum));
    json_decref(sum);
}

void tu_echo_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    ASSERT_OK(cmdipc_call_reply(call, request));
}

void tu_fail_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    ASSERT_OK(cmdipc_call_fail(call, CMDIPC_EINTERNAL, "boom"));
}

#define MAX_NEVER 4096
static cmdipc_call_t *never_calls[MAX_NEVER];
static size_t n_never;

void tu_never_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    ASSERT_LT(n_never, MAX_NEVER);
    never_calls[n_never++] = call;
}

size_t tu_never_count(void) { return n_never; }

void tu_answer_never(void) {
    for (size_t i = 0; i < n_never; i++)
        ASSERT_OK(cmdipc_call_fail(never_calls[i], CMDIPC_EINTERNAL, "late"));
    n_never = 0;
}

void tu_event_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload, void *data) {
    (void)r;
    tu_events_t *e = data;
    e->count++;
    json_decref(e->last);
    e->last = json_incref(payload);
    snprintf(e->last_id, sizeof(e->last_id), "%s", event_id);
}

void tu_events_clear(tu_events_t *e) {
    json_decref(e->last);
    memset(e, 0, sizeof(*e));
}

int tu_has_command(cmdipc_registry_t *r, const char *id) {
    cmdipc_command_info_t *info;
    size_t n;
    int found = 0;
    ASSERT_OK(cmdipc_registry_list_commands(r, &info, &n));
    for (size_t i = 0; i < n; i++)
        if (strcmp(info[i].id, id) == 0)
            found = 1;
    cmdipc_command_info_free(info, n);
    return found;
}

json_t *tu_json(const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (v == NULL)
        fprintf(stderr, "tu_json: %s: %s\n", text, e.text);
    ASSERT_NOT_NULL(v);
    return v;
}

/* ---------------------------------------------------------------------------
 * Sink channel. */

static int sink_send(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    tu_sink_t *s = cmdipc_channel_impl(ch);
    if (s->capacity && json_array_size(s->sent) >= s->capacity) {
        cmdipc_msg_free(m);
        return CMDIPC_EOVERLOAD;
    }
    size_t len;
    char *text = cmdipc_msg_encode(m, &len);
    ASSERT_NOT_NULL(text);
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    ASSERT_NOT_NULL(v);
    json_array_append_new(s->sent, v);
    cmdipc_free(text);
    cmdipc_msg_free(m);
    return 0;
}

static void sink_pause(cmdipc_channel_t *ch, int pause) {
    tu_sink_t *s = cmdipc_channel_impl(ch);
    s->paused = pause;
}

static void sink_idle_closed(uv_handle_t *h) {
    tu_sink_t *s = h->data;
    cmdipc_channel_closed(s->ch, 0);
}

static void sink_close(cmdipc_channel_t *ch, int graceful) {
    tu_sink_t *s = cmdipc_channel_impl(ch);
    s->graceful = graceful;
    if (s->closed)
        return; /* the peer's close is being reported */
    s->closed = 1;
    s->idle.data = s;
    uv_close((uv_handle_t *)&s->idle, sink_idle_closed);
}

static void sink_free(cmdipc_channel_t *ch) {
    tu_sink_t *s = cmdipc_channel_impl(ch);
    json_decref(s->sent);
    free(s);
}

static int sink_start(cmdipc_channel_t *ch, uv_loop_t *loop) {
    tu_sink_t *s = cmdipc_channel_impl(ch);
    return uv_idle_init(loop, &s->idle);
}

static const cmdipc_channel_ops_t sink_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION,
    .start = sink_start,
    .send = sink_send,
    .pause_reading = sink_pause,
    .close = sink_close,
    .free = sink_free,
};

tu_sink_t *tu_sink(cmdipc_registry_t *r, const char *id) {
    tu_sink_t *s = calloc(1, sizeof(*s));
    ASSERT_NOT_NULL(s);
    s->sent = json_array();
    ASSERT_OK(cmdipc_channel_new(id, &sink_ops, s, &s->ch));
    ASSERT_OK(cmdipc_registry_attach(r, s->ch));
    return s;
}

void tu_sink_inject(tu_sink_t *s, const char *line) {
    cmdipc_channel_deliver_line(s->ch, line, strlen(line));
}

static void sink_peer_closed(uv_handle_t *h) {
    tu_sink_t *s = h->data;
    cmdipc_channel_closed(s->ch, UV_EOF);
}

void tu_sink_peer_close(tu_sink_t *s) {
    if (s->closed)
        return;
    s->closed = 1;
    s->idle.data = s;
    uv_close((uv_handle_t *)&s->idle, sink_peer_closed);
}

size_t tu_sink_count(tu_sink_t *s, const char *type) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(s->sent); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(s->sent, i), "type"));
        if (type == NULL || (t != NULL && strcmp(t, type) == 0))
            n++;
    }
    return n;
}

json_t *tu_sink_get(tu_sink_t *s, const char *type, size_t idx) {
    for (size_t i = 0; i < json_array_size(s->sent); i++) {
        json_t *m = json_array_get(s->sent, i);
        const char *t = json_string_value(json_object_get(m, "type"));
        if (type == NULL || (t != NULL && strcmp(t, type) == 0)) {
            if (idx-- == 0)
                return m;
        }
    }
    return NULL;
}
