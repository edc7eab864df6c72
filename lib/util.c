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
static uint64_t hash_k0, hash_k1; /* hash_key as two words */

/* Message ids come from a per-thread buffer of CSPRNG output: the ChaCha20
 * keystream under a key drawn from libsodium's randombytes (the kernel's
 * CSPRNG), re-keyed every CMDIPC__RND_REKEY refills. A getrandom() per id,
 * or per 256 ids, costs more than everything else a message does. The
 * buffer lives in the thread's state (pool.c). */
static void after_fork_child(void) {
    /* The child must not reuse the parent's key or buffered bytes. */
    cmdipc__rnd_t *rnd = cmdipc__thread_rnd();
    if (rnd != NULL) {
        sodium_memzero(rnd, sizeof(*rnd));
        rnd->pos = sizeof(rnd->buf);
        rnd->refills = CMDIPC__RND_REKEY;
    }
}

static void rnd_refill(cmdipc__rnd_t *rnd) {
    unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
    if (rnd->refills >= CMDIPC__RND_REKEY) {
        randombytes_buf(rnd->key, sizeof(rnd->key));
        rnd->nonce = 0;
        rnd->refills = 0;
    }
    memset(nonce, 0, sizeof(nonce));
    memcpy(nonce, &rnd->nonce, sizeof(rnd->nonce));
    rnd->nonce++;
    rnd->refills++;
    crypto_stream_chacha20(rnd->buf, sizeof(rnd->buf), nonce, rnd->key);
    rnd->pos = 0;
}

static void hex_pairs_init(void);

static void global_init_once(void) {
    if (sodium_init() < 0) {
        global_status = UV_EIO;
        return;
    }
    randombytes_buf(hash_key, sizeof(hash_key));
    for (int i = 7; i >= 0; i--) {
        hash_k0 = (hash_k0 << 8) | hash_key[i];
        hash_k1 = (hash_k1 << 8) | hash_key[8 + i];
    }
    hex_pairs_init();
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

/* SipHash-1-3 (one compression round, three finalisation rounds: the
 * variant Rust's HashMap uses) under the process's random key: ids come
 * from untrusted peers, so the hash must be keyed, and this one costs half
 * of libsodium's SipHash-2-4 on a 36-byte id. test-internals checks the code
 * against libsodium with the rounds set to 2 and 4. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                       \
    do {                                                                               \
        v0 += v1;                                                                      \
        v1 = ROTL(v1, 13);                                                             \
        v1 ^= v0;                                                                      \
        v0 = ROTL(v0, 32);                                                             \
        v2 += v3;                                                                      \
        v3 = ROTL(v3, 16);                                                             \
        v3 ^= v2;                                                                      \
        v0 += v3;                                                                      \
        v3 = ROTL(v3, 21);                                                             \
        v3 ^= v0;                                                                      \
        v2 += v1;                                                                      \
        v1 = ROTL(v1, 17);                                                             \
        v1 ^= v2;                                                                      \
        v2 = ROTL(v2, 32);                                                             \
    } while (0)

static inline uint64_t load64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t siphash(const unsigned char key[16], const char *in, size_t len,
                               const int c_rounds, const int d_rounds) {
    const unsigned char *m = (const unsigned char *)in;
    uint64_t k0, k1;
    if (key == hash_key) { /* the maps' key: loaded once */
        k0 = hash_k0;
        k1 = hash_k1;
    } else {
        k0 = load64_le(key);
        k1 = load64_le(key + 8);
    }
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    size_t blocks = len / 8;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t w;
        memcpy(&w, m + 8 * i, 8); /* little-endian hosts; see the load below */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = load64_le(m + 8 * i);
#endif
        v3 ^= w;
        for (int r = 0; r < c_rounds; r++)
            SIPROUND;
        v0 ^= w;
    }
    uint64_t b = (uint64_t)len << 56;
    const unsigned char *t = m + 8 * blocks;
    switch (len & 7) {
        case 7:
            b |= (uint64_t)t[6] << 48; /* fall through */
        case 6:
            b |= (uint64_t)t[5] << 40; /* fall through */
        case 5:
            b |= (uint64_t)t[4] << 32; /* fall through */
        case 4:
            b |= (uint64_t)t[3] << 24; /* fall through */
        case 3:
            b |= (uint64_t)t[2] << 16; /* fall through */
        case 2:
            b |= (uint64_t)t[1] << 8; /* fall through */
        case 1:
            b |= (uint64_t)t[0];
            break;
        default:
            break;
    }
    v3 ^= b;
    for (int r = 0; r < c_rounds; r++)
        SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < d_rounds; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t cmdipc__siphash(const unsigned char key[16], const char *in, size_t len, int c_rounds,
                         int d_rounds) {
    return siphash(key, in, len, c_rounds, d_rounds);
}

uint64_t cmdipc__hash(const char *key, size_t len) { return siphash(hash_key, key, len, 1, 3); }

const unsigned char *cmdipc__hash_key(void) { return hash_key; }

/* "00".."ff", two characters per byte value. */
static char hex_pairs[512];

static void hex_pairs_init(void) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 256; i++) {
        hex_pairs[2 * i] = hex[i >> 4];
        hex_pairs[2 * i + 1] = hex[i & 15];
    }
}

void cmdipc__uuid4(char out[CMDIPC__UUID_LEN + 1]) {
    unsigned char b[16];
    cmdipc__rnd_t *rnd = cmdipc__thread_rnd();
    if (CMDIPC__UNLIKELY(rnd == NULL)) {
        randombytes_buf(b, sizeof(b)); /* out of memory: straight from the source */
    } else {
        if (rnd->pos + sizeof(b) > sizeof(rnd->buf))
            rnd_refill(rnd);
        memcpy(b, rnd->buf + rnd->pos, sizeof(b));
        rnd->pos += sizeof(b);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    /* 8-4-4-4-12: the dashes sit at fixed places. */
    static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (int i = 0; i < 16; i++)
        memcpy(out + at[i], hex_pairs + 2 * b[i], 2);
    out[8] = out[13] = out[18] = out[23] = '-';
    out[36] = '\0';
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
        /* ASCII eight bytes at a time (a NUL stops the run: checked below). */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (((w - 0x0101010101010101ull) | w) & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
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

int cmdipc__buf_grow(cmdipc__buf_t *b, size_t extra) {
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
        /* Copy plain runs whole (non-ASCII bytes stop the run, and are
         * copied one by one below). */
        size_t run = cmdipc__plain_run((const unsigned char *)s + i, n - i);
        if (run > 0) {
            memcpy(o, s + i, run);
            o += run;
            i += run;
            if (i >= n)
                break;
        }
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
