/* cmdipc — the secure transport's glue: runs the Noise XK handshake
 * (noise.c) on a connected stream, then sits between the socket and the
 * NDJSON layer of stream.c as its byte filter, turning write batches into
 * secretstream frames (frame.c) and frames back into lines.
 *
 * Handshake (before the channel is up; pre-authentication input is read in
 * exact act sizes into a fixed buffer):
 *   initiator: act 1 -> | <- act 2 | act 3 || hdr_i -> | <- hdr_i || ready
 *   responder: <- act 1 | act 2 -> | <- act 3, authorize | hdr_r || ready ->
 * A refused dialer gets hdr_r || FINAL {"t":"error","code":"E_UNAUTHORIZED"}
 * and reports CMDIPC_EPEERREJECTED (its dialer stops). Every other failure
 * closes silently. A listener holds at most max_handshakes of them at once
 * (the oldest is cut off for a new one), each for handshake_timeout_ms.
 *
 * Open: control frames (ping, pong, bye) are consumed here; a ping goes out
 * after ping_idle_ms without input and the connection closes after
 * silence_ms of it. */
#include <stdlib.h>
#include <string.h>

#include "secure_int.h"

#define HS_IN_MAX 160 /* the largest pre-authentication read: act 3, or hdr + ready */

struct cmdipc__secure_cfg_s {
    cmdipc_keypair_t *key;
    cmdipc_pubkey_t peer_key; /* dialers */
    cmdipc_pubkey_t *allow;
    size_t n_allow;
    cmdipc_authorize_cb authorize;
    void *authorize_data;
    int allow_any;
    uint64_t handshake_timeout_ms;
    unsigned max_handshakes;
    uint64_t ping_idle_ms, silence_ms;
    unsigned rekey_frames;
    uint64_t rekey_ms;
    cmdipc_registry_t *reg;     /* for logging */
    cmdipc__queue_t handshakes; /* listeners: in progress, oldest first */
    unsigned in_progress, peak;
};

enum { S_HANDSHAKE = 1, S_OPEN, S_DEAD };

typedef struct secure_conn_s {
    cmdipc__conn_t *c;
    cmdipc_registry_t *reg;
    cmdipc__secure_cfg_t *cfg; /* during the handshake only */
    cmdipc__queue_t slot;      /* in cfg->handshakes (responders) */
    int in_slot;
    int initiator;
    int state;
    int step;
    cmdipc__secure_done_fn done;
    int result; /* responder: what to report once the last write went out */
    int ready;  /* initiator: ready frame read */
    int writes; /* handshake writes in flight */
    cmdipc__hs_t hs;
    uint8_t in[HS_IN_MAX];
    size_t have, want;
    uv_write_t wreq;
    uint8_t out[HS_IN_MAX];
    uint8_t hdr[CMDIPC__STREAM_HEADER]; /* responder: sent with ready */
    int send_hello;                     /* responder: hdr and ready not sent yet */
    cmdipc__ftx_t tx;
    cmdipc__frx_t rx;
    int rx_ready;
    cmdipc_pubkey_t peer;
    int want_ping, want_pong;
    int ping_sent;
    uint64_t last_rx;
    uint64_t ping_idle_ms, silence_ms;
} secure_conn_t;

enum { /* handshake steps: what the pending read is for */
       STEP_ACT1 = 1,
       STEP_ACT2,
       STEP_ACT3,
       STEP_HDR,   /* initiator: hdr_r and the first frame's length */
       STEP_FIRST, /* initiator: the first frame */
       STEP_WRITE  /* responder: the last write is going out */
};

static const cmdipc__filter_ops_t filter_ops;
static unsigned wiped_total;

/* ---------------------------------------------------------------------------
 * Options. */

void cmdipc_secure_opts_init(cmdipc_secure_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_SECURE_OPTS_VERSION;
    o->handshake_timeout_ms = 10000;
    o->max_handshakes = 64;
    o->ping_idle_ms = 20000;
    o->silence_ms = 60000;
    o->rekey_frames = 1000;
    o->rekey_ms = 600000;
}

int cmdipc__secure_cfg_new(cmdipc_registry_t *r, const cmdipc_secure_opts_t *o,
                           int dialer, cmdipc__secure_cfg_t **out) {
    if (o == NULL || o->version == 0 || o->key == NULL ||
        (dialer && o->peer_key == NULL) || (o->n_allow > 0 && o->allow == NULL))
        return UV_EINVAL;
    if (dialer && cmdipc__pubkey_low_order(o->peer_key->bytes))
        return CMDIPC_EHSBADKEY;
    cmdipc__secure_cfg_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return UV_ENOMEM;
    int rc = cmdipc__keypair_copy(o->key, &cfg->key);
    if (rc == 0 && o->n_allow > 0) {
        cfg->allow = malloc(o->n_allow * sizeof(*cfg->allow));
        if (cfg->allow == NULL)
            rc = UV_ENOMEM;
        else
            memcpy(cfg->allow, o->allow, o->n_allow * sizeof(*cfg->allow));
        cfg->n_allow = o->n_allow;
    }
    if (rc != 0) {
        cmdipc__secure_cfg_free(cfg);
        return rc;
    }
    if (dialer)
        cfg->peer_key = *o->peer_key;
    cfg->reg = r;
    cfg->authorize = o->authorize;
    cfg->authorize_data = o->authorize_data;
    cfg->allow_any = o->allow_any;
    cfg->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 10000;
    cfg->max_handshakes = o->max_handshakes ? o->max_handshakes : 64;
    cfg->ping_idle_ms = o->ping_idle_ms;
    cfg->silence_ms = o->silence_ms;
    cfg->rekey_frames = o->rekey_frames;
    cfg->rekey_ms = o->rekey_ms;
    cmdipc__queue_init(&cfg->handshakes);
    *out = cfg;
    return 0;
}

void cmdipc__secure_cfg_free(cmdipc__secure_cfg_t *cfg) {
    if (cfg == NULL)
        return;
    cmdipc_keypair_free(cfg->key);
    free(cfg->allow);
    free(cfg);
}

unsigned cmdipc__secure_in_progress(const cmdipc__secure_cfg_t *cfg, unsigned *peak) {
    if (peak != NULL)
        *peak = cfg->peak;
    return cfg->in_progress;
}

unsigned cmdipc__secure_wiped_total(void) { return wiped_total; }

/* ---------------------------------------------------------------------------
 * The end of a handshake. */

static cmdipc_registry_t *conn_registry(const cmdipc__conn_t *c) {
    const secure_conn_t *s = c->filter_data;
    return c->link != NULL && s != NULL ? s->reg : NULL;
}

static void leave_slot(secure_conn_t *s) {
    if (!s->in_slot)
        return;
    s->in_slot = 0;
    cmdipc__queue_remove(&s->slot);
    s->cfg->in_progress--;
}

static void heartbeat_arm(secure_conn_t *s);

/* Reports the outcome once; the handshake's secrets are gone after it. */
static void finish(secure_conn_t *s, int status) {
    cmdipc__conn_t *c = s->c;
    if (s->state != S_HANDSHAKE)
        return;
    cmdipc__hs_wipe(&s->hs);
    wiped_total += cmdipc__hs_wiped(&s->hs);
    leave_slot(s);
    s->cfg = NULL;
    uv_read_stop(c->rs);
    uv_timer_stop(&c->ftimer);
    if (status == 0) {
        s->state = S_OPEN;
        s->last_rx = uv_now(c->loop);
        c->filter = &filter_ops;
        heartbeat_arm(s);
    } else {
        s->state = S_DEAD;
    }
    if (c->link != NULL)
        s->done(c->link, status);
    if (status == 0 && s->send_hello && c->filter_data == s)
        cmdipc__conn_kick(c); /* hdr_r and ready go out even if nothing else does */
}

static void fail(secure_conn_t *s, int status) {
    cmdipc_registry_t *r = conn_registry(s->c);
    if (s->state != S_HANDSHAKE)
        return;
    if (r != NULL)
        cmdipc_log(r,
                    status == CMDIPC_EHSVERSION || status == CMDIPC_EHSAUTH
                        ? CMDIPC_LOG_WARN
                        : CMDIPC_LOG_INFO,
                    "%s: secure handshake with %s failed: %s",
                    s->c->link->url ? s->c->link->url
                                    : (s->c->link->peer.url ? s->c->link->peer.url : "?"),
                    s->c->link->remote[0] ? s->c->link->remote : "the peer",
                    cmdipc_strerror(status));
    finish(s, status);
}

/* ---------------------------------------------------------------------------
 * Handshake I/O: exact reads, one write at a time. */

static void hs_write_cb(uv_write_t *req, int status) {
    secure_conn_t *s = req->data;
    s->writes--;
    if (s->state != S_HANDSHAKE)
        return;
    if (status < 0) {
        fail(s, CMDIPC_EHSEOF);
        return;
    }
    if (s->step == STEP_WRITE) {
        finish(s, s->result); /* responder: ready (or the refusal) went out */
        return;
    }
    if (s->initiator && s->ready)
        finish(s, 0);
}

static int hs_send(secure_conn_t *s, size_t n) {
    uv_buf_t b = uv_buf_init((char *)s->out, (unsigned)n);
    s->wreq.data = s;
    int rc = uv_write(&s->wreq, s->c->ws, &b, 1, hs_write_cb);
    if (rc == 0)
        s->writes++;
    return rc;
}

static void hs_expect(secure_conn_t *s, int step, size_t want) {
    s->step = step;
    s->have = 0;
    s->want = want;
}

/* The listener's policy on a key that was proven. */
static int authorized(secure_conn_t *s) {
    cmdipc__secure_cfg_t *cfg = s->cfg;
    if (cfg->allow_any)
        return 1;
    for (size_t i = 0; i < cfg->n_allow; i++)
        if (cmdipc_pubkey_equal(&cfg->allow[i], &s->peer))
            return 1;
    if (cfg->authorize != NULL)
        return cfg->authorize(&s->peer, &s->c->link->peer, cfg->authorize_data) == 0;
    return 0;
}

static int split(secure_conn_t *s, uint8_t hdr[CMDIPC__STREAM_HEADER]) {
    uint8_t i2r[32], r2i[32];
    int rc = cmdipc__hs_split(&s->hs, i2r, r2i);
    if (rc == 0) {
        uint64_t now = uv_now(s->c->loop);
        rc = cmdipc__ftx_init(&s->tx, s->initiator ? i2r : r2i, hdr, s->cfg->rekey_frames,
                              s->cfg->rekey_ms, now);
        cmdipc__frx_init(&s->rx, s->initiator ? r2i : i2r, s->c->lim.limits.max_line);
        s->rx_ready = 1;
    }
    sodium_memzero(i2r, sizeof(i2r));
    sodium_memzero(r2i, sizeof(r2i));
    return rc;
}

/* The responder's answer after act 3: ready, or the refusal. */
static int respond(secure_conn_t *s) {
    cmdipc__buf_t b;
    int rc;
    memcpy(s->peer.bytes, s->hs.rs, CMDIPC_KEY_BYTES);
    if ((rc = split(s, s->out)) != 0)
        return rc;
    if (authorized(s)) {
        /* hdr_r and ready lead the first batch the conn writes, which also
         * carries whatever the registry sends as the channel attaches: the
         * dialer comes up only once we are attached, ready for it. */
        memcpy(s->hdr, s->out, CMDIPC__STREAM_HEADER);
        s->send_hello = 1;
        finish(s, 0);
        return 0;
    }
    cmdipc__buf_init(&b);
    rc = cmdipc__ftx_control(&s->tx, CMDIPC__CTL_ERROR, "E_UNAUTHORIZED", 1, 0, &b);
    if (rc == 0 && b.len + CMDIPC__STREAM_HEADER > sizeof(s->out))
        rc = UV_ENOBUFS;
    if (rc == 0) {
        memcpy(s->out + CMDIPC__STREAM_HEADER, b.data, b.len);
        s->result = CMDIPC_EUNAUTHORIZED;
        hs_expect(s, STEP_WRITE, 0);
        rc = hs_send(s, CMDIPC__STREAM_HEADER + b.len);
    }
    cmdipc__buf_free(&b);
    if (rc == 0) {
        char b64[CMDIPC_KEY_B64];
        cmdipc_registry_t *r = conn_registry(s->c);
        cmdipc_pubkey_to_base64(&s->peer, b64);
        if (r != NULL)
            cmdipc_log(r, CMDIPC_LOG_WARN, "%s: key %s from %s is not authorized",
                        s->c->link->peer.url ? s->c->link->peer.url : "?", b64,
                        s->c->link->remote[0] ? s->c->link->remote : "?");
    }
    return rc;
}

/* A complete read of s->want bytes. */
static int hs_step(secure_conn_t *s) {
    size_t n;
    int rc;
    switch (s->step) {
        case STEP_ACT1: /* responder */
            if ((rc = cmdipc__hs_read_act(&s->hs, s->in, s->have)) != 0)
                return rc;
            if ((rc = cmdipc__hs_write_act(&s->hs, s->out, sizeof(s->out), &n)) != 0)
                return rc;
            hs_expect(s, STEP_ACT3, CMDIPC__HS_ACT3);
            return hs_send(s, n);
        case STEP_ACT2: /* initiator */
            if ((rc = cmdipc__hs_read_act(&s->hs, s->in, s->have)) != 0)
                return rc;
            if ((rc = cmdipc__hs_write_act(&s->hs, s->out, sizeof(s->out), &n)) != 0)
                return rc;
            if ((rc = split(s, s->out + n)) != 0)
                return rc;
            s->peer = s->cfg->peer_key;
            hs_expect(s, STEP_HDR, CMDIPC__STREAM_HEADER + CMDIPC__FRAME_HDR);
            return hs_send(s, n + CMDIPC__STREAM_HEADER);
        case STEP_ACT3: /* responder */
            if ((rc = cmdipc__hs_read_act(&s->hs, s->in, s->have)) != 0)
                return rc;
            return respond(s);
        case STEP_HDR: { /* initiator: the length of the first frame */
            const uint8_t *l = s->in + CMDIPC__STREAM_HEADER;
            uint32_t len =
                (uint32_t)l[0] << 24 | (uint32_t)l[1] << 16 | (uint32_t)l[2] << 8 | l[3];
            if (len < CMDIPC__FRAME_MIN || len > sizeof(s->in) - s->have)
                return CMDIPC_EFRAMESIZE;
            s->step = STEP_FIRST;
            s->want = s->have + len;
            return 0;
        }
        case STEP_FIRST: { /* initiator: ready, or why we were refused */
            const uint8_t *m;
            size_t mlen;
            int ctl, fin;
            if ((rc = cmdipc__frx_feed(&s->rx, s->in, s->have)) != 0)
                return rc;
            rc = cmdipc__frx_next(&s->rx, &m, &mlen, &ctl, &fin);
            if (rc < 0)
                return rc;
            if (rc == 1 && ctl == CMDIPC__CTL_READY && !fin) {
                s->ready = 1;
                if (s->writes == 0)
                    finish(s, 0);
                return 0;
            }
            if (rc == 1 && ctl == CMDIPC__CTL_ERROR) {
                char code[64];
                cmdipc__frame_error_code(m, mlen, code, sizeof(code));
                return strcmp(code, "E_UNAUTHORIZED") == 0 ? CMDIPC_EPEERREJECTED
                                                           : CMDIPC_EPROTO;
            }
            return CMDIPC_EPROTO;
        }
        default:
            return CMDIPC_EPROTO; /* nothing is read while the last write goes out */
    }
}

static void hs_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    cmdipc__conn_t *c = h->data;
    secure_conn_t *s = c->filter_data;
    size_t room = s->want > s->have ? s->want - s->have : 0;
    /* Nothing is read beyond the current act: pre-authentication input
     * never exceeds the fixed buffer. */
    *buf = uv_buf_init((char *)s->in + s->have, (unsigned)room);
}

static void hs_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    cmdipc__conn_t *c = stream->data;
    secure_conn_t *s = c->filter_data;
    if (s->state != S_HANDSHAKE || nread == 0)
        return;
    if (nread == UV_ENOBUFS) /* a read while nothing is expected */
        return;
    if (nread < 0) {
        fail(s, CMDIPC_EHSEOF);
        return;
    }
    if (s->have == 0 &&
        (s->step == STEP_ACT1 || s->step == STEP_ACT2 || s->step == STEP_ACT3) &&
        s->in[0] != CMDIPC__HS_VERSION) {
        fail(s, CMDIPC_EHSVERSION); /* a plain-NDJSON peer's '{', say */
        return;
    }
    s->have += (size_t)nread;
    if (s->have < s->want)
        return;
    int rc = hs_step(s);
    if (rc != 0)
        fail(s, rc);
}

static void hs_timer_cb(uv_timer_t *t) {
    cmdipc__conn_t *c = t->data;
    secure_conn_t *s = c->filter_data;
    if (s->state == S_HANDSHAKE)
        fail(s, CMDIPC_EHSTIMEOUT);
    else if (s->state == S_OPEN)
        heartbeat_arm(s); /* the same timer keeps the connection alive */
}

int cmdipc__secure_start(cmdipc__secure_cfg_t *cfg, cmdipc__conn_t *c, int initiator,
                         cmdipc__secure_done_fn done) {
    secure_conn_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UV_ENOMEM;
    s->c = c;
    s->reg = cfg->reg;
    s->cfg = cfg;
    s->initiator = initiator;
    s->state = S_HANDSHAKE;
    s->done = done;
    s->ping_idle_ms = cfg->ping_idle_ms;
    s->silence_ms = cfg->silence_ms;
    cmdipc__queue_init(&s->slot);
    /* The conn frees s (destroy) once its handles are closed. */
    c->filter_data = s;
    c->filter = &filter_ops;
    uv_timer_init(c->loop, &c->ftimer);
    c->ftimer.data = c;
    cmdipc__link_apply_ref(c->link, (uv_handle_t *)&c->ftimer);
    c->open_handles++;
    uv_timer_start(&c->ftimer, hs_timer_cb, cfg->handshake_timeout_ms, 0);
    if (initiator) {
        cmdipc__hs_init(&s->hs, CMDIPC__HS_INITIATOR, (const uint8_t *)CMDIPC__PROLOGUE,
                        strlen(CMDIPC__PROLOGUE), cfg->key, cfg->peer_key.bytes);
    } else {
        cmdipc__hs_init(&s->hs, CMDIPC__HS_RESPONDER, (const uint8_t *)CMDIPC__PROLOGUE,
                        strlen(CMDIPC__PROLOGUE), cfg->key, NULL);
        /* A slot; when they are all taken, the oldest handshake goes. */
        if (cfg->in_progress >= cfg->max_handshakes &&
            !cmdipc__queue_empty(&cfg->handshakes)) {
            secure_conn_t *old =
                cmdipc__container_of(cfg->handshakes.next, secure_conn_t, slot);
            fail(old, CMDIPC_EOVERLOAD);
        }
        cmdipc__queue_insert_tail(&cfg->handshakes, &s->slot);
        s->in_slot = 1;
        if (++cfg->in_progress > cfg->peak)
            cfg->peak = cfg->in_progress;
    }
    int rc = uv_read_start(c->rs, hs_alloc_cb, hs_read_cb);
    if (rc == 0 && initiator) {
        size_t n;
        hs_expect(s, STEP_ACT2, CMDIPC__HS_ACT2);
        rc = cmdipc__hs_write_act(&s->hs, s->out, sizeof(s->out), &n);
        if (rc == 0)
            rc = hs_send(s, n);
    } else {
        hs_expect(s, STEP_ACT1, CMDIPC__HS_ACT1);
    }
    if (rc != 0)
        fail(s, rc); /* reported like any failure: done runs (from here) */
    return 0;
}

void cmdipc__secure_abort_all(cmdipc__secure_cfg_t *cfg) {
    while (!cmdipc__queue_empty(&cfg->handshakes)) {
        secure_conn_t *s =
            cmdipc__container_of(cfg->handshakes.next, secure_conn_t, slot);
        fail(s, CMDIPC_ECANCELED);
    }
}

/* ---------------------------------------------------------------------------
 * Open: the filter. */

static void heartbeat_arm(secure_conn_t *s) {
    cmdipc__conn_t *c = s->c;
    uint64_t now = uv_now(c->loop), idle = now - s->last_rx, next = UINT64_MAX;
    if (s->state != S_OPEN)
        return;
    if (s->silence_ms) {
        if (idle >= s->silence_ms) {
            cmdipc_registry_t *r = conn_registry(c);
            if (r != NULL)
                cmdipc_log(r, CMDIPC_LOG_WARN,
                            "channel %s: nothing received for %llu ms",
                            c->link && c->link->ch ? cmdipc_channel_id(c->link->ch) : "?",
                            (unsigned long long)idle);
            cmdipc__conn_close(c, 0, CMDIPC_ETIMEDOUT);
            return;
        }
        next = s->silence_ms - idle;
    }
    if (s->ping_idle_ms) {
        if (idle >= s->ping_idle_ms && !s->ping_sent) {
            s->ping_sent = s->want_ping = 1;
            cmdipc__conn_kick(c);
        }
        if (!s->ping_sent && s->ping_idle_ms - idle < next)
            next = s->ping_idle_ms - idle;
        else if (s->ping_sent && !s->silence_ms && s->ping_idle_ms < next)
            next = s->ping_idle_ms; /* nothing else to wait for: check again */
    }
    if (next == UINT64_MAX)
        return;
    uv_timer_start(&c->ftimer, hs_timer_cb, next ? next : 1, 0);
}

/* Decrypts what one read brought, then delivers its lines as one batch. */
static int f_frames(cmdipc__conn_t *c, secure_conn_t *s) {
    for (;;) {
        const uint8_t *m;
        size_t len;
        int ctl, fin;
        int rc = cmdipc__frx_next(&s->rx, &m, &len, &ctl, &fin);
        if (rc <= 0)
            return rc;
        switch (ctl) {
            case CMDIPC__CTL_NONE:
                if ((rc = cmdipc__conn_push_lines(c, (const char *)m, len)) != 0)
                    return rc;
                break;
            case CMDIPC__CTL_PING:
                s->want_pong = 1;
                cmdipc__conn_kick(c);
                break;
            case CMDIPC__CTL_PONG:
            case CMDIPC__CTL_BYE:
                break;
            case CMDIPC__CTL_ERROR: {
                char code[64];
                cmdipc_registry_t *r = conn_registry(c);
                cmdipc__frame_error_code(m, len, code, sizeof(code));
                if (r != NULL)
                    cmdipc_log(r, CMDIPC_LOG_WARN, "channel %s: the peer closed with %s",
                                c->link && c->link->ch ? cmdipc_channel_id(c->link->ch)
                                                       : "?",
                                code[0] ? code : "an error");
                return CMDIPC_EPROTO;
            }
            default:
                return CMDIPC_EPROTO; /* ready twice, or an unknown control */
        }
    }
}

static int f_input(cmdipc__conn_t *c, const char *p, size_t n) {
    secure_conn_t *s = c->filter_data;
    int rc;
    if (n > 0) {
        s->last_rx = uv_now(c->loop);
        s->ping_sent = 0;
        if ((rc = cmdipc__frx_feed(&s->rx, p, n)) != 0)
            return rc;
    }
    if (!cmdipc__conn_accepting(c))
        return 0; /* paused: the frames wait in rx (one read's worth at most) */
    rc = f_frames(c, s);
    /* The lines before a bad frame still count; then the connection ends. */
    cmdipc__conn_deliver(c);
    return rc;
}

static int f_seal(cmdipc__conn_t *c, const char *p, size_t n, int final,
                  cmdipc__buf_t *wire) {
    secure_conn_t *s = c->filter_data;
    uint64_t now = uv_now(c->loop);
    int rc = 0;
    if (s->state != S_OPEN || s->tx.final_sent)
        return 0;
    if (s->send_hello) {
        s->send_hello = 0;
        rc = cmdipc__buf_put(wire, s->hdr, sizeof(s->hdr));
        if (rc == 0)
            rc = cmdipc__ftx_control(&s->tx, CMDIPC__CTL_READY, NULL, 0, now, wire);
        if (rc != 0)
            return rc;
    }
    if (s->want_pong) {
        s->want_pong = 0;
        rc = cmdipc__ftx_control(&s->tx, CMDIPC__CTL_PONG, NULL, 0, now, wire);
    }
    if (rc == 0 && s->want_ping) {
        s->want_ping = 0;
        rc = cmdipc__ftx_control(&s->tx, CMDIPC__CTL_PING, NULL, 0, now, wire);
    }
    if (rc == 0 && n > 0)
        rc = cmdipc__ftx_seal_lines(&s->tx, p, n, now, wire);
    if (rc == 0 && final)
        rc = cmdipc__ftx_control(&s->tx, CMDIPC__CTL_BYE, NULL, 1, now, wire);
    return rc;
}

static int f_eof(cmdipc__conn_t *c) {
    secure_conn_t *s = c->filter_data;
    if (!s->rx.final)
        return CMDIPC_ETRUNCATED;
    return cmdipc__frx_buffered(&s->rx) > 0 ? CMDIPC_EPROTO : 0;
}

static void f_destroy(cmdipc__conn_t *c) {
    secure_conn_t *s = c->filter_data;
    if (s == NULL)
        return;
    if (s->state == S_HANDSHAKE) {
        /* Closed from outside during the handshake (registry closing). */
        leave_slot(s);
        s->state = S_DEAD;
    }
    cmdipc__hs_wipe(&s->hs);
    sodium_memzero(&s->tx, sizeof(s->tx));
    if (s->rx_ready)
        cmdipc__frx_free(&s->rx);
    sodium_memzero(s, sizeof(*s));
    free(s);
    c->filter_data = NULL;
}

static const cmdipc__filter_ops_t filter_ops = {
    .input = f_input,
    .seal = f_seal,
    .eof = f_eof,
    .destroy = f_destroy,
};

/* ---------------------------------------------------------------------------
 * The peer's key. */

int cmdipc_channel_peer_key(const cmdipc_channel_t *ch, cmdipc_pubkey_t *out) {
    if (ch == NULL || out == NULL || cmdipc_channel_ops(ch) != &cmdipc__stream_ops)
        return UV_ENOTSUP;
    const cmdipc__link_t *link = cmdipc_channel_impl(ch);
    if (!link->secure)
        return UV_ENOTSUP;
    if (link->conn == NULL || link->conn->filter_data == NULL)
        return UV_ENOTCONN;
    const secure_conn_t *s = link->conn->filter_data;
    if (s->state != S_OPEN)
        return UV_ENOTCONN;
    *out = s->peer;
    return 0;
}
