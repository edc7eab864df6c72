/* cmdipc — the frame layer of the secure transport: one
 * crypto_secretstream_xchacha20poly1305 stream per direction, each frame a
 * 4-byte big-endian length L (authenticated as associated data) and
 * C = push(M, ad = L, tag). 20 <= L <= max(64 KiB, max_line + 1) + 17,
 * checked on the 4 length bytes before anything is allocated. No I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secure_int.h"

#define TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_PUSH    crypto_secretstream_xchacha20poly1305_TAG_PUSH
#define TAG_REKEY   crypto_secretstream_xchacha20poly1305_TAG_REKEY
#define TAG_FINAL   crypto_secretstream_xchacha20poly1305_TAG_FINAL

static size_t max_alloc;

size_t cmdipc__frame_max_alloc(void) { return max_alloc; }

static void *grow(void *p, size_t n) {
    if (n > max_alloc)
        max_alloc = n;
    return realloc(p, n);
}

size_t cmdipc__frame_max(size_t max_line) {
    size_t m = max_line + 1 > CMDIPC__FRAME_BATCH ? max_line + 1 : CMDIPC__FRAME_BATCH;
    return m + CMDIPC__FRAME_ABYTES;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---------------------------------------------------------------------------
 * Sending. */

int cmdipc__ftx_init(cmdipc__ftx_t *tx, const uint8_t key[32],
                     uint8_t hdr[CMDIPC__STREAM_HEADER], unsigned rekey_frames,
                     uint64_t rekey_ms, uint64_t now_ms) {
    memset(tx, 0, sizeof(*tx));
    tx->rekey_frames = rekey_frames;
    tx->rekey_ms = rekey_ms;
    tx->last_rekey = now_ms;
    return crypto_secretstream_xchacha20poly1305_init_push(&tx->st, hdr, key) == 0
               ? 0
               : UV_EIO;
}

int cmdipc__ftx_seal(cmdipc__ftx_t *tx, const void *m, size_t n, int final,
                     uint64_t now_ms, cmdipc__buf_t *out) {
    if (tx->final_sent)
        return CMDIPC_ECLOSED;
    size_t l = n + CMDIPC__FRAME_ABYTES;
    if (l > UINT32_MAX || cmdipc__buf_reserve(out, CMDIPC__FRAME_HDR + l) != 0)
        return UV_ENOMEM;
    unsigned char tag = TAG_MESSAGE;
    tx->frames++;
    if (final) {
        tag = TAG_FINAL;
        tx->final_sent = 1;
    } else if ((tx->rekey_frames && tx->frames % tx->rekey_frames == 0) ||
               (tx->rekey_ms && now_ms - tx->last_rekey >= tx->rekey_ms)) {
        tag = TAG_REKEY; /* both ends ratchet the key after this frame */
        tx->last_rekey = now_ms;
    }
    uint8_t *p = (uint8_t *)out->data + out->len;
    put_be32(p, (uint32_t)l);
    crypto_secretstream_xchacha20poly1305_push(&tx->st, p + CMDIPC__FRAME_HDR, NULL, m, n,
                                               p, CMDIPC__FRAME_HDR, tag);
    out->len += CMDIPC__FRAME_HDR + l;
    return 0;
}

int cmdipc__ftx_seal_lines(cmdipc__ftx_t *tx, const char *p, size_t n, uint64_t now_ms,
                           cmdipc__buf_t *out) {
    size_t at = 0;
    while (at < n) {
        /* The longest run of whole lines within the batch size, or the one
         * line that is longer. */
        size_t end = at,
               limit = n - at > CMDIPC__FRAME_BATCH ? at + CMDIPC__FRAME_BATCH : n;
        while (end < limit) {
            const char *nl = memchr(p + end, '\n', limit - end);
            if (nl == NULL)
                break;
            end = (size_t)(nl - p) + 1;
        }
        if (end == at) {
            const char *nl = memchr(p + at, '\n', n - at);
            end = nl ? (size_t)(nl - p) + 1 : n;
        }
        int rc = cmdipc__ftx_seal(tx, p + at, end - at, 0, now_ms, out);
        if (rc != 0)
            return rc;
        at = end;
    }
    return 0;
}

static const char *const ctl_body[] = {
    [CMDIPC__CTL_READY] = "{\"t\":\"ready\"}",
    [CMDIPC__CTL_PING] = "{\"t\":\"ping\"}",
    [CMDIPC__CTL_PONG] = "{\"t\":\"pong\"}",
    [CMDIPC__CTL_BYE] = "{\"t\":\"bye\"}",
};

int cmdipc__ftx_control(cmdipc__ftx_t *tx, int ctl, const char *code, int final,
                        uint64_t now_ms, cmdipc__buf_t *out) {
    char m[128];
    int n;
    m[0] = '\0'; /* the control marker: no line starts with NUL */
    if (ctl == CMDIPC__CTL_ERROR)
        n = snprintf(m + 1, sizeof(m) - 1, "{\"t\":\"error\",\"code\":\"%.64s\"}", code);
    else if (ctl >= CMDIPC__CTL_READY && ctl <= CMDIPC__CTL_BYE)
        n = snprintf(m + 1, sizeof(m) - 1, "%s", ctl_body[ctl]);
    else
        return UV_EINVAL;
    return cmdipc__ftx_seal(tx, m, (size_t)n + 1, final, now_ms, out);
}

/* ---------------------------------------------------------------------------
 * Receiving. */

void cmdipc__frx_init(cmdipc__frx_t *rx, const uint8_t key[32], size_t max_line) {
    memset(rx, 0, sizeof(*rx));
    memcpy(rx->key, key, 32);
    rx->max_frame = cmdipc__frame_max(max_line);
}

void cmdipc__frx_free(cmdipc__frx_t *rx) {
    sodium_memzero(rx->key, sizeof(rx->key));
    sodium_memzero(&rx->st, sizeof(rx->st));
    free(rx->in);
    free(rx->plain);
    rx->in = rx->plain = NULL;
    rx->off = rx->len = rx->cap = rx->plain_cap = 0;
}

int cmdipc__frx_feed(cmdipc__frx_t *rx, const void *p, size_t n) {
    if (n == 0)
        return 0;
    if (rx->off == rx->len) {
        rx->off = rx->len = 0;
    } else if (rx->off > 0 && rx->cap - rx->len < n) {
        /* Keep only the unconsumed part (at most one partial frame). */
        memmove(rx->in, rx->in + rx->off, rx->len - rx->off);
        rx->len -= rx->off;
        rx->off = 0;
    }
    if (rx->cap - rx->len < n) {
        size_t cap = rx->len + n;
        if (cap < 4096)
            cap = 4096;
        uint8_t *q = grow(rx->in, cap);
        if (q == NULL)
            return UV_ENOMEM;
        rx->in = q;
        rx->cap = cap;
    }
    memcpy(rx->in + rx->len, p, n);
    rx->len += n;
    return 0;
}

size_t cmdipc__frx_take(cmdipc__frx_t *rx, void *out, size_t n) {
    size_t have = rx->len - rx->off;
    if (n > have)
        n = have;
    memcpy(out, rx->in + rx->off, n);
    rx->off += n;
    return n;
}

static int control_kind(const uint8_t *m, size_t n) {
    for (int k = CMDIPC__CTL_READY; k <= CMDIPC__CTL_BYE; k++) {
        size_t len = strlen(ctl_body[k]);
        if (n == len && memcmp(m, ctl_body[k], len) == 0)
            return k;
    }
    static const char err[] = "{\"t\":\"error\",\"code\":\"";
    if (n > sizeof(err) + 1 && memcmp(m, err, sizeof(err) - 1) == 0 && m[n - 1] == '}' &&
        m[n - 2] == '"')
        return CMDIPC__CTL_ERROR;
    return CMDIPC__CTL_UNKNOWN;
}

void cmdipc__frame_error_code(const uint8_t *m, size_t len, char *out, size_t n) {
    static const char err[] = "{\"t\":\"error\",\"code\":\"";
    size_t at = sizeof(err) - 1, k = 0;
    out[0] = '\0';
    if (len < at + 2 || memcmp(m, err, at) != 0)
        return;
    while (at < len - 2 && k + 1 < n && m[at] >= 0x20 && m[at] < 0x7f && m[at] != '"')
        out[k++] = (char)m[at++];
    out[k] = '\0';
}

int cmdipc__frx_next(cmdipc__frx_t *rx, const uint8_t **m, size_t *n, int *ctl,
                     int *final) {
    *final = 0;
    *ctl = CMDIPC__CTL_NONE;
    size_t have = rx->len - rx->off;
    if (!rx->have_header) {
        if (have < CMDIPC__STREAM_HEADER)
            return 0;
        int rc = crypto_secretstream_xchacha20poly1305_init_pull(
            &rx->st, rx->in + rx->off, rx->key);
        sodium_memzero(rx->key, sizeof(rx->key));
        if (rc != 0)
            return CMDIPC_EFRAMEAUTH;
        rx->off += CMDIPC__STREAM_HEADER;
        rx->have_header = 1;
        have -= CMDIPC__STREAM_HEADER;
    }
    if (rx->final)
        return have > 0 ? CMDIPC_EPROTO : 0; /* anything after FINAL */
    if (have < CMDIPC__FRAME_HDR)
        return 0;
    const uint8_t *p = rx->in + rx->off;
    uint32_t l = get_be32(p);
    if (l < CMDIPC__FRAME_MIN || l > rx->max_frame)
        return CMDIPC_EFRAMESIZE;
    if (have < CMDIPC__FRAME_HDR + (size_t)l)
        return 0;
    size_t mlen = l - CMDIPC__FRAME_ABYTES;
    if (rx->plain_cap < mlen) {
        size_t cap = mlen < 4096 ? 4096 : mlen;
        uint8_t *q = grow(rx->plain, cap);
        if (q == NULL)
            return UV_ENOMEM;
        rx->plain = q;
        rx->plain_cap = cap;
    }
    unsigned char tag;
    unsigned long long got;
    if (crypto_secretstream_xchacha20poly1305_pull(&rx->st, rx->plain, &got, &tag,
                                                   p + CMDIPC__FRAME_HDR, l, p,
                                                   CMDIPC__FRAME_HDR) != 0)
        return CMDIPC_EFRAMEAUTH;
    rx->off += CMDIPC__FRAME_HDR + (size_t)l;
    rx->frames++;
    if (tag == TAG_FINAL)
        rx->final = *final = 1;
    else if (tag != TAG_MESSAGE && tag != TAG_REKEY)
        return CMDIPC_EFRAMETAG; /* PUSH is not used; anything else is unknown */
    *m = rx->plain;
    *n = (size_t)got;
    if (got > 0 && rx->plain[0] == '\0') {
        *ctl = control_kind(rx->plain + 1, (size_t)got - 1);
        *m = rx->plain + 1;
        *n = (size_t)got - 1;
        return 1;
    }
    if (got == 0 || rx->plain[got - 1] != '\n')
        return CMDIPC_EPROTO; /* M must be whole lines */
    return 1;
}
