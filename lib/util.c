/* cmdipc — small utilities: process-wide init, byte buffers, UTF-8, UUIDs. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

/* ---------------------------------------------------------------------------
 * Process-wide initialisation. */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_status;
static unsigned char hash_key[crypto_shorthash_KEYBYTES];

/* Per-thread buffer of CSPRNG bytes for message ids. */
#define RND_SIZE 4096
static _Thread_local unsigned char rnd_buf[RND_SIZE];
static _Thread_local size_t rnd_pos = RND_SIZE;

static void after_fork_child(void) {
    /* The child must not reuse the parent's buffered randomness. */
    sodium_memzero(rnd_buf, sizeof(rnd_buf));
    rnd_pos = RND_SIZE;
}

static void global_init_once(void) {
    if (sodium_init() < 0) {
        global_status = UV_EIO;
        return;
    }
    randombytes_buf(hash_key, sizeof(hash_key));
    pthread_atfork(NULL, NULL, after_fork_child);
    /* A peer that goes away while we write must not kill the process: a
     * write to a closed socket or pipe becomes an EPIPE error on that
     * channel. Only the default disposition is changed; an application's
     * own SIGPIPE handler is left alone. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int cmdipc__global_init(void) {
    pthread_once(&global_once, global_init_once);
    return global_status;
}

uint64_t cmdipc__hash(const char *key, size_t len) {
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, (const unsigned char *)key, len, hash_key);
    memcpy(&h, out, sizeof(h));
    return h;
}

void cmdipc__uuid4(char out[CMDIPC__UUID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    if (rnd_pos + sizeof(b) > RND_SIZE) {
        randombytes_buf(rnd_buf, RND_SIZE);
        rnd_pos = 0;
    }
    memcpy(b, rnd_buf + rnd_pos, sizeof(b));
    sodium_memzero(rnd_buf + rnd_pos, sizeof(b));
    rnd_pos += sizeof(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

int cmdipc__is_uuid(const char *s) {
    if (s == NULL || strlen(s) != CMDIPC__UUID_LEN)
        return 0;
    for (int i = 0; i < CMDIPC__UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    if (s[14] < '1' || s[14] > '5')
        return 0;
    return strchr("89abAB", s[19]) != NULL;
}

/* ---------------------------------------------------------------------------
 * UTF-8. */

int cmdipc__utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned min;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) {
            need = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

int cmdipc__check_id(const char *s) {
    if (s == NULL || s[0] == '\0')
        return UV_EINVAL;
    return cmdipc__utf8_valid(s, strlen(s)) ? 0 : UV_EINVAL;
}

/* ---------------------------------------------------------------------------
 * Byte buffers. */

void cmdipc__buf_init(cmdipc__buf_t *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cmdipc__buf_free(cmdipc__buf_t *b) {
    free(b->data);
    cmdipc__buf_init(b);
}

int cmdipc__buf_reserve(cmdipc__buf_t *b, size_t extra) {
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return UV_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return UV_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cmdipc__buf_put(cmdipc__buf_t *b, const void *p, size_t n) {
    if (cmdipc__buf_reserve(b, n))
        return UV_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int cmdipc__buf_putc(cmdipc__buf_t *b, char c) {
    if (b->len == b->cap && cmdipc__buf_reserve(b, 1))
        return UV_ENOMEM;
    b->data[b->len++] = c;
    return 0;
}

int cmdipc__buf_puts(cmdipc__buf_t *b, const char *s) {
    return cmdipc__buf_put(b, s, strlen(s));
}

int cmdipc__buf_put_jstr(cmdipc__buf_t *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    /* Worst case every byte becomes \u00XX. */
    if (cmdipc__buf_reserve(b, n * 6 + 2))
        return UV_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
            case '"':
                *o++ = '"';
                break;
            case '\\':
                *o++ = '\\';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            case '\b':
                *o++ = 'b';
                break;
            case '\f':
                *o++ = 'f';
                break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
                break;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int buf_dump_cb(const char *p, size_t n, void *data) {
    return cmdipc__buf_put((cmdipc__buf_t *)data, p, n) ? -1 : 0;
}

int cmdipc__buf_put_json(cmdipc__buf_t *b, const json_t *v) {
    if (json_dump_callback(v, buf_dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        return UV_ENOMEM;
    return 0;
}

void cmdipc_free(void *p) { free(p); }
