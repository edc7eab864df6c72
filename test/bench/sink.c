/* A channel that swallows everything: see sink.h. */
#include <stdlib.h>

#include "sink.h"

typedef struct sink_s {
    cmdipc_channel_t *ch;
    uv_timer_t closer;
    int started;
} sink_t;

static int sink_start(cmdipc_channel_t *ch, uv_loop_t *loop) {
    sink_t *s = cmdipc_channel_impl(ch);
    uv_timer_init(loop, &s->closer);
    s->closer.data = s;
    s->started = 1;
    return 0;
}

static int sink_send(cmdipc_channel_t *ch, cmdipc_msg_t *msg) {
    (void)ch;
    cmdipc_msg_free(msg);
    return 0;
}

static void sink_closed_cb(uv_timer_t *t) {
    sink_t *s = t->data;
    cmdipc_channel_closed(s->ch, 0);
}

static void sink_close(cmdipc_channel_t *ch, int graceful) {
    (void)graceful;
    sink_t *s = cmdipc_channel_impl(ch);
    uv_timer_start(&s->closer, sink_closed_cb, 0, 0); /* reported later, never inside */
}

static void sink_handle_closed(uv_handle_t *h) { free(h->data); }

static void sink_free(cmdipc_channel_t *ch) {
    sink_t *s = cmdipc_channel_impl(ch);
    if (s->started)
        uv_close((uv_handle_t *)&s->closer, sink_handle_closed);
    else
        free(s);
}

static const cmdipc_channel_ops_t sink_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION,
    .start = sink_start,
    .send = sink_send,
    .close = sink_close,
    .free = sink_free,
};

int bench_sink_attach(cmdipc_registry_t *r, const char *name) {
    sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UV_ENOMEM;
    int rc = cmdipc_channel_new(name, &sink_ops, s, &s->ch);
    if (rc != 0) {
        free(s);
        return rc;
    }
    return cmdipc_registry_attach(r, s->ch);
}
