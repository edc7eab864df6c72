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

/* Message ids come from a per-thread buffer of CSPRNG output: the ChaCha20
 * keystream under a key drawn from libsodium's randombytes (the kernel's
 * CSPRNG), re-keyed every RND_REKEY refills. A getrandom() per id, or per
 * 256 ids, costs more than everything else a message does. */
#define RND_SIZE  4096
#define RND_REKEY 256
static _Thread_local unsigned char rnd_buf[RND_SIZE];
static _Thread_local size_t rnd_pos = RND_SIZE;
static _Thread_local unsigned char rnd_key[crypto_stream_chacha20_KEYBYTES];
static _Thread_local uint64_t rnd_nonce;
static _Thread_local unsigned rnd_refills = RND_REKEY;

static void after_fork_child(void) {
    /* The child must not reuse the parent's key or buffered bytes. */
    sodium_memzero(rnd_buf, sizeof(rnd_buf));
    sodium_memzero(rnd_key, sizeof(rnd_key));
    rnd_pos = RND_SIZE;
    rnd_refills = RND_REKEY;
}

static void rnd_refill(void) {
    unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
    if (rnd_refills >= RND_REKEY) {
        randombytes_buf(rnd_key, sizeof(rnd_key));
        rnd_nonce = 0;
        rnd_refills = 0;
    }
    memset(nonce, 0, sizeof(nonce));
    memcpy(nonce, &rnd_nonce, sizeof(rnd_nonce) < sizeof(nonce) ? sizeof(rnd_nonce) : sizeof(nonce));
    rnd_nonce++;
    rnd_refills++;
    crypto_stream_chacha20(rnd_buf, RND_SIZE, nonce, rnd_key);
    rnd_pos = 0;
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
    if (rnd_pos + sizeof(b) > RND_SIZE)
        rnd_refill();
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

/* Appends the n bytes of s (valid UTF-8, no NUL) as a JSON string. */
int cmdipc__buf_put_jstrn(cmdipc__buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
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
            case '\\':
                *o++ = (char)c;
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

static int put_int(cmdipc__buf_t *b, json_int_t v) {
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return cmdipc__buf_put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static int put_real(cmdipc__buf_t *b, double d) {
    char tmp[40];
    /* As jansson: 17 significant digits, always readable back as a real. */
    int n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    if (n <= 0 || (size_t)n >= sizeof(tmp))
        return UV_EINVAL;
    if (strpbrk(tmp, ".eE") == NULL && strspn(tmp, "-0123456789") == (size_t)n) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    return cmdipc__buf_put(b, tmp, (size_t)n);
}

/* Compact JSON of v, written directly (no jansson dump, no callbacks). The
 * values the library emits were checked: nesting is bounded. */
int cmdipc__buf_put_json(cmdipc__buf_t *b, const json_t *v) {
    int rc = 0;
    switch (json_typeof(v)) {
        case JSON_OBJECT: {
            void *it = json_object_iter((json_t *)v);
            rc |= cmdipc__buf_putc(b, '{');
            for (int first = 1; it != NULL && rc == 0; first = 0) {
                if (!first)
                    rc |= cmdipc__buf_putc(b, ',');
                rc |= cmdipc__buf_put_jstrn(b, json_object_iter_key(it), json_object_iter_key_len(it));
                rc |= cmdipc__buf_putc(b, ':');
                rc |= cmdipc__buf_put_json(b, json_object_iter_value(it));
                it = json_object_iter_next((json_t *)v, it);
            }
            rc |= cmdipc__buf_putc(b, '}');
            break;
        }
        case JSON_ARRAY: {
            size_t n = json_array_size(v);
            rc |= cmdipc__buf_putc(b, '[');
            for (size_t i = 0; i < n && rc == 0; i++) {
                if (i)
                    rc |= cmdipc__buf_putc(b, ',');
                rc |= cmdipc__buf_put_json(b, json_array_get(v, i));
            }
            rc |= cmdipc__buf_putc(b, ']');
            break;
        }
        case JSON_STRING:
            rc = cmdipc__buf_put_jstrn(b, json_string_value(v), json_string_length(v));
            break;
        case JSON_INTEGER:
            rc = put_int(b, json_integer_value(v));
            break;
        case JSON_REAL:
            rc = put_real(b, json_real_value(v));
            break;
        case JSON_TRUE:
            rc = cmdipc__buf_put(b, "true", 4);
            break;
        case JSON_FALSE:
            rc = cmdipc__buf_put(b, "false", 5);
            break;
        default:
            rc = cmdipc__buf_put(b, "null", 4);
            break;
    }
    return rc ? UV_ENOMEM : 0;
}

void cmdipc_free(void *p) { free(p); }

int cmdipc__buf_put_jstr(cmdipc__buf_t *b, const char *s) {
    return cmdipc__buf_put_jstrn(b, s, strlen(s));
}
