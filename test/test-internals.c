/* Internals of lib/: the string-keyed hash map, the deadline min-heap, UTF-8
 * validation, JSON string escaping and the JSON pre-scan (lib/map.c,
 * lib/util.c, lib/codec.c). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "internal.h"

/* A deterministic PRNG (xorshift64*), so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static size_t rng_below(size_t n) { return (size_t)(rng_next() % n); }

/* ---------------------------------------------------------------------------
 * Hash map. */

typedef struct {
    cmdipc__hnode_t node;
    int value;
    int visits;
    char key[24];
} entry_t;

#define MAP_N 100000

static entry_t *entries_new(size_t n, const char *prefix) {
    entry_t *e = calloc(n, sizeof(*e));
    ASSERT_NOT_NULL(e);
    for (size_t i = 0; i < n; i++) {
        snprintf(e[i].key, sizeof(e[i].key), "%s%zu", prefix, i);
        e[i].node.key = e[i].key;
        e[i].value = (int)i;
    }
    return e;
}

static entry_t *map_find(const cmdipc__map_t *m, const char *key) {
    cmdipc__hnode_t *n = cmdipc__map_get(m, key);
    return n ? cmdipc__container_of(n, entry_t, node) : NULL;
}

TEST(map_insert_get_delete_100k) {
    cmdipc__map_t m;
    char key[32];
    ASSERT_OK(cmdipc__global_init());
    cmdipc__map_init(&m);
    ASSERT_NULL(cmdipc__map_get(&m, "anything")); /* empty map, no buckets yet */
    entry_t *e = entries_new(MAP_N, "key-");
    for (size_t i = 0; i < MAP_N; i++) {
        ASSERT_OK(cmdipc__map_put(&m, &e[i].node));
        ASSERT_UEQ(m.count, i + 1);
    }
    /* Every key is found with its own node, through a different pointer. */
    for (size_t i = 0; i < MAP_N; i++) {
        snprintf(key, sizeof(key), "key-%zu", i);
        entry_t *f = map_find(&m, key);
        ASSERT_PTR_EQ(f, &e[i]);
        ASSERT_EQ(f->value, (int)i);
    }
    /* Keys that were never inserted, including near misses. */
    ASSERT_NULL(cmdipc__map_get(&m, "key-"));
    ASSERT_NULL(cmdipc__map_get(&m, "key-100000"));
    ASSERT_NULL(cmdipc__map_get(&m, "Key-1"));
    ASSERT_NULL(cmdipc__map_get(&m, "key-1 "));
    ASSERT_NULL(cmdipc__map_get(&m, ""));

    /* Delete the even keys. */
    for (size_t i = 0; i < MAP_N; i += 2)
        cmdipc__map_del(&m, &e[i].node);
    ASSERT_UEQ(m.count, MAP_N / 2);
    for (size_t i = 0; i < MAP_N; i++) {
        snprintf(key, sizeof(key), "key-%zu", i);
        ASSERT_PTR_EQ(map_find(&m, key), i % 2 ? &e[i] : NULL);
    }
    /* Re-insert a few deleted ones, then delete everything. */
    for (size_t i = 0; i < 1000; i += 2)
        ASSERT_OK(cmdipc__map_put(&m, &e[i].node));
    ASSERT_UEQ(m.count, MAP_N / 2 + 500);
    ASSERT_PTR_EQ(map_find(&m, "key-998"), &e[998]);
    for (size_t i = 0; i < MAP_N; i++)
        if (i % 2 == 1 || i < 1000)
            cmdipc__map_del(&m, &e[i].node);
    ASSERT_UEQ(m.count, 0);
    for (size_t i = 0; i < MAP_N; i += 997) {
        snprintf(key, sizeof(key), "key-%zu", i);
        ASSERT_NULL(cmdipc__map_get(&m, key));
    }
    cmdipc__map_free(&m);
    ASSERT_NULL(m.buckets);
    ASSERT_UEQ(m.count, 0);
    free(e);
}

TEST(map_growth_keeps_load_factor_and_entries) {
    cmdipc__map_t m;
    size_t grows = 0, last_mask = 0;
    ASSERT_OK(cmdipc__global_init());
    cmdipc__map_init(&m);
    entry_t *e = entries_new(5000, "g");
    for (size_t i = 0; i < 5000; i++) {
        ASSERT_OK(cmdipc__map_put(&m, &e[i].node));
        ASSERT_NOT_NULL(m.buckets);
        /* Power-of-two bucket count, at most one entry per bucket on average. */
        ASSERT_UEQ((m.mask + 1) & m.mask, 0);
        ASSERT_LE(m.count, m.mask + 1);
        if (m.mask != last_mask) {
            ASSERT_GT(m.mask, last_mask);
            grows++;
            last_mask = m.mask;
            /* Every entry survived the rehash. */
            for (size_t k = 0; k <= i; k++)
                ASSERT_PTR_EQ(map_find(&m, e[k].key), &e[k]);
        }
    }
    ASSERT_UEQ(m.mask + 1, 8192);
    ASSERT_EQ(grows, 10); /* 16, 32, ..., 8192 */
    /* Nodes stored with hashes that match their keys. */
    for (size_t i = 0; i < 5000; i++)
        ASSERT_UEQ(e[i].node.hash, cmdipc__hash(e[i].key, strlen(e[i].key)));
    cmdipc__map_free(&m);
    free(e);
}

TEST(map_iteration_tolerates_deleting_current) {
    cmdipc__map_t m;
    cmdipc__map_iter_t it;
    cmdipc__hnode_t *n;
    enum { N = 3000 };
    ASSERT_OK(cmdipc__global_init());
    cmdipc__map_init(&m);

    /* An empty map, before and after its buckets exist. */
    cmdipc__map_iter_init(&it, &m);
    ASSERT_NULL(cmdipc__map_iter_next(&it));

    entry_t *e = entries_new(N, "it-");
    for (size_t i = 0; i < N; i++)
        ASSERT_OK(cmdipc__map_put(&m, &e[i].node));

    /* A plain walk visits every node once. */
    size_t seen = 0;
    cmdipc__map_iter_init(&it, &m);
    while ((n = cmdipc__map_iter_next(&it)) != NULL) {
        cmdipc__container_of(n, entry_t, node)->visits++;
        seen++;
    }
    ASSERT_UEQ(seen, N);
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(e[i].visits, 1);
        e[i].visits = 0;
    }

    /* Deleting every odd node while walking: each node still visited once. */
    cmdipc__map_iter_init(&it, &m);
    while ((n = cmdipc__map_iter_next(&it)) != NULL) {
        entry_t *x = cmdipc__container_of(n, entry_t, node);
        x->visits++;
        if (x->value % 2)
            cmdipc__map_del(&m, n);
    }
    ASSERT_UEQ(m.count, N / 2);
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(e[i].visits, 1);
        ASSERT_PTR_EQ(map_find(&m, e[i].key), i % 2 ? NULL : &e[i]);
        e[i].visits = 0;
    }

    /* Deleting every node while walking empties the map. */
    seen = 0;
    cmdipc__map_iter_init(&it, &m);
    while ((n = cmdipc__map_iter_next(&it)) != NULL) {
        cmdipc__map_del(&m, n);
        seen++;
    }
    ASSERT_UEQ(seen, N / 2);
    ASSERT_UEQ(m.count, 0);
    cmdipc__map_iter_init(&it, &m);
    ASSERT_NULL(cmdipc__map_iter_next(&it));
    cmdipc__map_free(&m);
    free(e);
}

/* ---------------------------------------------------------------------------
 * Deadline heap. */

static void heap_check(const cmdipc__heap_t *h) {
    for (size_t i = 0; i < h->n; i++) {
        ASSERT_UEQ(h->v[i]->index, i);
        if (i > 0)
            ASSERT_LE(h->v[(i - 1) / 2]->deadline, h->v[i]->deadline);
    }
}

/* A sorted array of deadlines: the reference. */
typedef struct {
    uint64_t *v;
    size_t n;
} ref_t;

static void ref_add(ref_t *r, uint64_t d) {
    size_t i = r->n;
    while (i > 0 && r->v[i - 1] > d) {
        r->v[i] = r->v[i - 1];
        i--;
    }
    r->v[i] = d;
    r->n++;
}

static void ref_del(ref_t *r, uint64_t d) {
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i] == d) {
            memmove(r->v + i, r->v + i + 1, (r->n - i - 1) * sizeof(*r->v));
            r->n--;
            return;
        }
    }
    ASSERT(!"deadline not in the reference");
}

TEST(heap_random_against_sorted_reference) {
    enum { N = 2000, OPS = 40000 };
    cmdipc__heap_t h;
    cmdipc__timer_t *t = calloc(N, sizeof(*t));
    ref_t ref = {calloc(N, sizeof(uint64_t)), 0};
    ASSERT_NOT_NULL(t);
    ASSERT_NOT_NULL(ref.v);
    cmdipc__heap_init(&h);
    ASSERT_NULL(cmdipc__heap_top(&h));
    for (size_t i = 0; i < N; i++)
        t[i].index = SIZE_MAX;

    size_t pushes = 0, removes = 0, pops = 0;
    for (int op = 0; op < OPS; op++) {
        cmdipc__timer_t *x = &t[rng_below(N)];
        unsigned what = (unsigned)rng_below(10);
        if (!cmdipc__timer_queued(x) && what < 6) {
            /* Small range: many equal deadlines. */
            x->deadline = rng_below(op % 3 ? 500 : 1000000);
            ASSERT_OK(cmdipc__heap_push(&h, x));
            ASSERT(cmdipc__timer_queued(x));
            ref_add(&ref, x->deadline);
            pushes++;
        } else if (cmdipc__timer_queued(x) && what < 8) {
            /* An arbitrary entry, not the top. */
            cmdipc__heap_remove(&h, x);
            ASSERT(!cmdipc__timer_queued(x));
            ASSERT_UEQ(x->index, SIZE_MAX);
            ref_del(&ref, x->deadline);
            removes++;
        } else if (h.n > 0) {
            cmdipc__timer_t *top = cmdipc__heap_top(&h);
            ASSERT_UEQ(top->deadline, ref.v[0]);
            cmdipc__heap_remove(&h, top);
            ref_del(&ref, top->deadline);
            pops++;
        }
        ASSERT_UEQ(h.n, ref.n);
        if (ref.n > 0)
            ASSERT_UEQ(cmdipc__heap_top(&h)->deadline, ref.v[0]);
        else
            ASSERT_NULL(cmdipc__heap_top(&h));
        if (op % 97 == 0)
            heap_check(&h);
    }
    heap_check(&h);
    ASSERT_GT(pushes, 1000);
    ASSERT_GT(removes, 1000);
    ASSERT_GT(pops, 1000);

    /* Draining gives the reference order. */
    for (size_t i = 0; i < ref.n; i++) {
        cmdipc__timer_t *top = cmdipc__heap_top(&h);
        ASSERT_NOT_NULL(top);
        ASSERT_UEQ(top->deadline, ref.v[i]);
        cmdipc__heap_remove(&h, top);
    }
    ASSERT_UEQ(h.n, 0);
    cmdipc__heap_free(&h);
    free(ref.v);
    free(t);
}

TEST(heap_remove_arbitrary_and_not_queued) {
    cmdipc__heap_t h;
    cmdipc__timer_t t[64];
    cmdipc__heap_init(&h);
    for (int i = 0; i < 64; i++) {
        t[i].index = SIZE_MAX;
        t[i].kind = 0;
        t[i].deadline = (uint64_t)((i * 37) % 64); /* a permutation of 0..63 */
        ASSERT_OK(cmdipc__heap_push(&h, &t[i]));
    }
    heap_check(&h);
    ASSERT_UEQ(cmdipc__heap_top(&h)->deadline, 0);

    /* Removing a timer that is not queued, or removing twice, does nothing. */
    cmdipc__timer_t stray = {5, SIZE_MAX, NULL, 0};
    cmdipc__heap_remove(&h, &stray);
    ASSERT_UEQ(h.n, 64);
    cmdipc__heap_remove(&h, &t[10]);
    cmdipc__heap_remove(&h, &t[10]);
    ASSERT_UEQ(h.n, 63);
    heap_check(&h);

    /* Remove the last slot, the root and a middle entry. */
    cmdipc__heap_remove(&h, h.v[h.n - 1]);
    cmdipc__heap_remove(&h, h.v[0]);
    cmdipc__heap_remove(&h, h.v[h.n / 2]);
    ASSERT_UEQ(h.n, 60);
    heap_check(&h);

    /* A re-pushed timer with an earlier deadline becomes the top. */
    ASSERT(!cmdipc__timer_queued(&t[10]));
    t[10].deadline = 0;
    ASSERT_OK(cmdipc__heap_push(&h, &t[10]));
    ASSERT_PTR_EQ(cmdipc__heap_top(&h), &t[10]);
    heap_check(&h);

    /* Free marks everything as not queued. */
    cmdipc__heap_free(&h);
    ASSERT_UEQ(h.n, 0);
    ASSERT_NULL(cmdipc__heap_top(&h));
    for (int i = 0; i < 64; i++)
        ASSERT(!cmdipc__timer_queued(&t[i]));
}

/* ---------------------------------------------------------------------------
 * UTF-8. */

typedef struct {
    const char *s;
    size_t n;
    int valid;
    const char *what;
} utf8_case_t;

#define U8(lit, valid, what)                                                             \
    { lit, sizeof(lit) - 1, valid, what }

TEST(utf8_valid_table) {
    static const utf8_case_t cases[] = {
        U8("", 1, "empty"),
        U8("plain ascii ~\x7f", 1, "ASCII incl. DEL"),
        U8("\xc2\x80", 1, "U+0080"),
        U8("\xdf\xbf", 1, "U+07FF"),
        U8("\xe0\xa0\x80", 1, "U+0800"),
        U8("\xed\x9f\xbf", 1, "U+D7FF"),
        U8("\xee\x80\x80", 1, "U+E000"),
        U8("\xef\xbf\xbf", 1, "U+FFFF"),
        U8("\xf0\x90\x80\x80", 1, "U+10000"),
        U8("\xf4\x8f\xbf\xbf", 1, "U+10FFFF"),
        U8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 1, "mixed"),
        /* NUL */
        U8("\0", 0, "NUL alone"),
        U8("a\0b", 0, "NUL inside"),
        U8("ab\0", 0, "NUL at the end"),
        /* overlongs */
        U8("\xc0\x80", 0, "overlong NUL (2 bytes)"),
        U8("\xc1\xbf", 0, "overlong U+007F"),
        U8("\xe0\x80\x80", 0, "overlong NUL (3 bytes)"),
        U8("\xe0\x9f\xbf", 0, "overlong U+07FF"),
        U8("\xf0\x80\x80\x80", 0, "overlong NUL (4 bytes)"),
        U8("\xf0\x8f\xbf\xbf", 0, "overlong U+FFFF"),
        /* surrogates */
        U8("\xed\xa0\x80", 0, "U+D800"),
        U8("\xed\xaf\xbf", 0, "U+DBFF"),
        U8("\xed\xb0\x80", 0, "U+DC00"),
        U8("\xed\xbf\xbf", 0, "U+DFFF"),
        U8("\xed\xa0\xbd\xed\xb8\x80", 0, "CESU-8 surrogate pair"),
        /* beyond U+10FFFF and invalid lead bytes */
        U8("\xf4\x90\x80\x80", 0, "U+110000"),
        U8("\xf5\x80\x80\x80", 0, "lead F5"),
        U8("\xf7\xbf\xbf\xbf", 0, "lead F7"),
        U8("\xf8\x88\x80\x80\x80", 0, "5-byte form"),
        U8("\xfc\x84\x80\x80\x80\x80", 0, "6-byte form"),
        U8("\xfe", 0, "FE"),
        U8("\xff", 0, "FF"),
        U8("\x80", 0, "lone continuation"),
        U8("a\xbf", 0, "continuation after ASCII"),
        /* truncated sequences */
        U8("\xc3", 0, "truncated 2-byte"),
        U8("\xe2\x82", 0, "truncated 3-byte"),
        U8("\xf0\x9f\x98", 0, "truncated 4-byte"),
        U8("abc\xe2", 0, "truncated at the end"),
        U8("\xc3"
           "a",
           0, "2-byte with ASCII continuation"),
        U8("\xe2\x82"
           "a",
           0, "3-byte with ASCII third byte"),
        U8("\xf0\x9f\x98\xc3\xa9", 0, "4-byte cut by a new lead"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = cmdipc__utf8_valid(cases[i].s, cases[i].n);
        if (got != cases[i].valid)
            fprintf(stderr, "case %zu (%s): expected %d\n", i, cases[i].what,
                    cases[i].valid);
        ASSERT_EQ(got, cases[i].valid);
    }
    /* The length is honoured: bytes past n are not read. */
    ASSERT_EQ(cmdipc__utf8_valid("ab\xff", 2), 1);
    ASSERT_EQ(cmdipc__utf8_valid("\xc3\xa9", 1), 0);
}

TEST(utf8_every_code_point_round_trips) {
    /* Every scalar value, encoded by hand, is valid; every surrogate is not. */
    unsigned char b[4];
    for (uint32_t cp = 1; cp <= 0x10ffff; cp++) {
        size_t n;
        if (cp < 0x80) {
            b[0] = (unsigned char)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (unsigned char)(0xc0 | (cp >> 6));
            b[1] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (unsigned char)(0xe0 | (cp >> 12));
            b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            b[2] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            b[0] = (unsigned char)(0xf0 | (cp >> 18));
            b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
            b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            b[3] = (unsigned char)(0x80 | (cp & 0x3f));
            n = 4;
        }
        int want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (cmdipc__utf8_valid((const char *)b, n) != want) {
            fprintf(stderr, "code point U+%04X\n", (unsigned)cp);
            ASSERT_EQ(cmdipc__utf8_valid((const char *)b, n), want);
        }
        /* Cut short, it is never valid. */
        if (n > 1)
            ASSERT_EQ(cmdipc__utf8_valid((const char *)b, n - 1), 0);
    }
}

TEST(check_id) {
    ASSERT_OK(cmdipc__check_id("a"));
    ASSERT_OK(cmdipc__check_id("math.add"));
    ASSERT_OK(cmdipc__check_id("caf\xc3\xa9"));
    ASSERT_STATUS(UV_EINVAL, cmdipc__check_id(NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc__check_id(""));
    ASSERT_STATUS(UV_EINVAL, cmdipc__check_id("bad\xff"));
    ASSERT_STATUS(UV_EINVAL, cmdipc__check_id("\xed\xa0\x80"));
}

/* ---------------------------------------------------------------------------
 * Byte buffers and JSON string escaping. */

/* Appends s with cmdipc__buf_put_jstr, NUL-terminates, returns the text. */
static char *jstr(cmdipc__buf_t *b, const char *s) {
    cmdipc__buf_init(b);
    ASSERT_OK(cmdipc__buf_put_jstr(b, s));
    ASSERT_OK(cmdipc__buf_putc(b, '\0'));
    return b->data;
}

/* Parses a JSON string literal back with jansson. */
static json_t *parse_any(const char *text, size_t len) {
    json_error_t e;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (v == NULL)
        fprintf(stderr, "jansson: %s: %s\n", e.text, text);
    ASSERT_NOT_NULL(v);
    return v;
}

TEST(buf_put_jstr_escapes) {
    cmdipc__buf_t b;
    static const struct {
        const char *in, *out;
    } exact[] = {
        {"", "\"\""},
        {"abc", "\"abc\""},
        {"a\"b", "\"a\\\"b\""},
        {"a\\b", "\"a\\\\b\""},
        {"\\\"", "\"\\\\\\\"\""},
        {"\x01", "\"\\u0001\""},
        {"\x1f", "\"\\u001f\""},
        {"\x0b", "\"\\u000b\""},
        {"\x1b[0m", "\"\\u001b[0m\""},
        {"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
        {"/", "\"/\""},
        {"\x7f", "\"\x7f\""},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
        {"</script>", "\"</script>\""},
    };
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        ASSERT_STR_EQ(jstr(&b, exact[i].in), exact[i].out);
        json_t *v = parse_any(b.data, b.len - 1);
        ASSERT(json_is_string(v));
        ASSERT_STR_EQ(json_string_value(v), exact[i].in);
        json_decref(v);
        cmdipc__buf_free(&b);
    }
}

TEST(buf_put_jstr_every_byte_parses_back) {
    /* Every ASCII byte 1..127 in one string, plus multi-byte characters. */
    char s[256];
    size_t n = 0;
    for (int c = 1; c < 128; c++)
        s[n++] = (char)c;
    memcpy(s + n, "\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf", 9);
    n += 9;
    s[n] = '\0';

    cmdipc__buf_t b;
    const char *out = jstr(&b, s);
    size_t len = b.len - 1;
    ASSERT_EQ(out[0], '"');
    ASSERT_EQ(out[len - 1], '"');
    /* No raw control character, and every quote or backslash inside escaped. */
    for (size_t i = 1; i + 1 < len; i++) {
        unsigned char c = (unsigned char)out[i];
        ASSERT_GE(c, 0x20);
        if (c == '\\') {
            char e = out[i + 1];
            ASSERT(strchr("\"\\nrtbfu", e) != NULL);
            if (e == 'u') {
                /* \u00XX with lowercase hex, for a control character. */
                ASSERT_MEM_EQ(out + i + 2, "00", 2);
                ASSERT(strchr("01", out[i + 4]) != NULL);
                ASSERT(strchr("0123456789abcdef", out[i + 5]) != NULL);
                i += 5;
            } else {
                i++;
            }
        } else {
            ASSERT_NE(c, '"');
        }
    }
    json_t *v = parse_any(out, len);
    ASSERT_UEQ(json_string_length(v), n);
    ASSERT_MEM_EQ(json_string_value(v), s, n);
    json_decref(v);
    cmdipc__buf_free(&b);
}

/* cmdipc__plain_run against the byte-by-byte definition: every length up to
 * 40, a stop byte of every kind at every position (and none), so the word
 * loop, its first-hit position and the tail are all covered. */
static size_t plain_run_ref(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}

TEST(plain_run_matches_bytewise_definition) {
    static const unsigned char stops[] = {'"',  '\\', 0x00, 0x01, 0x1f,
                                          0x80, 0x9f, 0xa0, 0xff};
    static const unsigned char plain[] = {' ', '!', '#', '[', ']', 'a', '~', 0x7f};
    unsigned char buf[48];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t fill = 0; fill < sizeof(plain); fill++) {
            memset(buf, plain[fill], sizeof(buf));
            ASSERT_EQ(cmdipc__plain_run(buf, n), n);
            for (size_t at = 0; at < n; at++) {
                for (size_t k = 0; k < sizeof(stops); k++) {
                    memset(buf, plain[fill], sizeof(buf));
                    buf[at] = stops[k];
                    ASSERT_EQ(cmdipc__plain_run(buf, n), at);
                    /* a second stop byte after the first changes nothing */
                    if (at + 1 < n) {
                        buf[at + 1] = stops[(k + 1) % sizeof(stops)];
                        ASSERT_EQ(cmdipc__plain_run(buf, n), at);
                    }
                }
            }
        }
    }
    /* random bytes */
    for (int r = 0; r < 20000; r++) {
        size_t n = rng_below(sizeof(buf) + 1);
        for (size_t i = 0; i < n; i++)
            buf[i] =
                (unsigned char)(rng_below(8) ? 0x20 + rng_below(0x60) : rng_below(256));
        ASSERT_EQ(cmdipc__plain_run(buf, n), plain_run_ref(buf, n));
    }
}

/* cmdipc__json_build against json_loadb on texts the scanner accepts: the
 * same value, member order and number types (compared as compact dumps). */
TEST(json_build_matches_jansson) {
    static const char *const texts[] = {
        "{}",
        "[]",
        "{\"a\":1,\"b\":2}",
        "[1,-2,0,-0,9223372036854775807,-9223372036854775808]",
        "[1.5,-0.0,1e3,1E-3,2.5e+10,123456789012345678901234567890.5,1e-400]",
        "{\"s\":\"plain\",\"e\":\"tab\\tquote\\\"slash\\/"
        "bs\\\\\",\"u\":\"\\u00e9\\ud83d\\ude00\"}",
        "{\"k\\u00e9y\":true,\"k\\\"2\":false,\"n\":null}",
        " { \"sp\" : [ 1 , { \"x\" : [ ] } , \"\\n\" ] } ",
        "[\"caf\xc3\xa9\",\"\xf0\x9f\x98\x80\",\"\"]",
        "{\"z\":1,\"a\":2,\"m\":{\"b\":[[[[[[[[1]]]]]]]]}}",
        "[123456789012345678,-123456789012345678,1234567890123456789]",
    };
    cmdipc_limits_t lim;
    cmdipc_limits_init(&lim);
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        const char *text = texts[t];
        cmdipc__env_t env;
        ASSERT_OK(cmdipc__scan(text, strlen(text), &lim, &env, NULL));
        json_error_t je;
        json_t *ref = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &je);
        json_t *got = cmdipc__json_build(text, strlen(text));
        ASSERT_NOT_NULL(ref);
        ASSERT_NOT_NULL(got);
        ASSERT(json_equal(ref, got));
        char *dr = json_dumps(ref, JSON_COMPACT), *dg = json_dumps(got, JSON_COMPACT);
        ASSERT_STR_EQ(dg, dr);
        free(dr);
        free(dg);
        json_decref(ref);
        json_decref(got);
    }
    /* A scalar on its own (a payload can be one). */
    json_t *v = cmdipc__json_build("-12.5e1", 7);
    ASSERT(json_is_real(v) && json_real_value(v) == -125.0);
    json_decref(v);
    v = cmdipc__json_build("\"x\\u0041\"", 9);
    ASSERT_STR_EQ(json_string_value(v), "xA");
    json_decref(v);
}

TEST(buf_basics) {
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    ASSERT_NULL(b.data);
    ASSERT_OK(cmdipc__buf_put(&b, "", 0));
    ASSERT_UEQ(b.len, 0);
    /* Growth across many reallocations keeps the content. */
    for (int i = 0; i < 10000; i++) {
        ASSERT_OK(cmdipc__buf_putc(&b, (char)('a' + i % 26)));
        ASSERT_LE(b.len, b.cap);
    }
    ASSERT_OK(cmdipc__buf_puts(&b, "end"));
    ASSERT_UEQ(b.len, 10003);
    for (int i = 0; i < 10000; i++)
        ASSERT_EQ(b.data[i], 'a' + i % 26);
    ASSERT_MEM_EQ(b.data + 10000, "end", 3);
    ASSERT_OK(cmdipc__buf_reserve(&b, 100000));
    ASSERT_GE(b.cap - b.len, 100000);
    cmdipc__buf_free(&b);
    ASSERT_NULL(b.data);
    ASSERT_UEQ(b.len, 0);
    ASSERT_UEQ(b.cap, 0);

    /* cmdipc__buf_put_json: compact, and any value at the top. */
    json_t *v = json_pack("{s:[i,i],s:s}", "a", 1, 2, "b", "x y");
    cmdipc__buf_init(&b);
    ASSERT_OK(cmdipc__buf_put_json(&b, v));
    ASSERT_OK(cmdipc__buf_putc(&b, '\0'));
    json_t *back = parse_any(b.data, b.len - 1);
    ASSERT_JSON_EQ(back, v);
    ASSERT_NULL(strstr(b.data, ", "));
    ASSERT_NULL(strstr(b.data, ": "));
    json_decref(back);
    json_decref(v);
    cmdipc__buf_free(&b);
    v = json_string("s");
    ASSERT_OK(cmdipc__buf_put_json(&b, v));
    ASSERT_UEQ(b.len, 3);
    ASSERT_MEM_EQ(b.data, "\"s\"", 3);
    json_decref(v);
    cmdipc__buf_free(&b);
}

/* ---------------------------------------------------------------------------
 * JSON pre-scan. */

static int prescan(const char *s, unsigned depth, size_t containers, size_t *pos) {
    *pos = (size_t)-1;
    return cmdipc__json_prescan(s, strlen(s), depth, containers, pos);
}

TEST(json_prescan_positions) {
    size_t pos;
    ASSERT_OK(prescan("", 1, 1, &pos));
    ASSERT_OK(prescan("{}", 1, 1, &pos));
    ASSERT_OK(prescan("[[]]", 2, 2, &pos));
    ASSERT_OK(prescan("[[]][[]]", 2, 4, &pos)); /* depth resets after closing */

    /* Depth: the byte of the first bracket over the limit. */
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, prescan("[[[", 2, 100, &pos));
    ASSERT_UEQ(pos, 2);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, prescan("{\"a\":[{\"b\":1}]}", 2, 100, &pos));
    ASSERT_UEQ(pos, 6);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, prescan("[[]] [[[ ", 2, 100, &pos));
    ASSERT_UEQ(pos, 7);

    /* Containers: the byte of the first container over the limit. */
    ASSERT_OK(prescan("[{},{},[]]", 2, 4, &pos));
    ASSERT_STATUS(CMDIPC_EJSONSIZE, prescan("[{},{},[],{}]", 2, 4, &pos));
    ASSERT_UEQ(pos, 10);

    /* Raw NUL: its byte. */
    static const char nul[] = "{\"a\":\"x\0y\"}";
    pos = 0;
    ASSERT_STATUS(CMDIPC_EJSONNUL,
                  cmdipc__json_prescan(nul, sizeof(nul) - 1, 64, 100, &pos));
    ASSERT_UEQ(pos, 7);
    static const char nul2[] = "{}\0";
    ASSERT_STATUS(CMDIPC_EJSONNUL,
                  cmdipc__json_prescan(nul2, sizeof(nul2) - 1, 64, 100, &pos));
    ASSERT_UEQ(pos, 2);
    /* The first problem wins. */
    static const char nul3[] = "[[\0[";
    ASSERT_STATUS(CMDIPC_EJSONNUL,
                  cmdipc__json_prescan(nul3, sizeof(nul3) - 1, 2, 100, &pos));
    ASSERT_UEQ(pos, 2);

    /* Brackets inside strings do not count, escaped quotes stay inside. */
    ASSERT_OK(prescan("[\"[[[[{{{{\"]", 1, 1, &pos));
    ASSERT_OK(prescan("[\"\\\"[[[[\"]", 1, 1, &pos));
    ASSERT_OK(prescan("{\"k[\":\"v{\"}", 1, 1, &pos));
    /* "\\" ends with the quote after it: the bracket that follows counts. */
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, prescan("[\"\\\\\",[", 1, 100, &pos));
    ASSERT_UEQ(pos, 6);

    /* Unbalanced closers do not underflow. */
    ASSERT_OK(prescan("]]]]}}}}[[", 2, 100, &pos));
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, prescan("]]]][[[", 2, 100, &pos));
    ASSERT_UEQ(pos, 6);
}

TEST(json_prescan_nul_after_backslash) {
    /* A raw NUL byte right after a backslash inside a string is still a raw
     * NUL byte: the pre-scan must report it (CMDIPC_EJSONNUL at its byte)
     * rather than skip it as the escaped character. */
    static const char s[] = "{\"a\":\"x\\\0\"}";
    size_t pos = 0;
    ASSERT_STATUS(CMDIPC_EJSONNUL, cmdipc__json_prescan(s, sizeof(s) - 1, 64, 100, &pos));
    ASSERT_UEQ(pos, 8);
}

TEST(siphash_matches_libsodium_with_2_4_rounds) {
    /* The map hash is SipHash-1-3; the same code with 2 and 4 rounds must be
     * libsodium's SipHash-2-4 on every length. */
    unsigned char key[crypto_shorthash_KEYBYTES], out[crypto_shorthash_BYTES];
    char msg[64];
    ASSERT_OK(cmdipc__global_init());
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)(i * 13 + 5);
    for (size_t len = 0; len <= sizeof(msg); len++) {
        crypto_shorthash(out, (const unsigned char *)msg, len, key);
        uint64_t want;
        memcpy(&want, out, sizeof(want));
        ASSERT_UEQ(cmdipc__siphash(key, msg, len, 2, 4), want);
    }
    /* And the map's variant is keyed: the same id hashes alike, others not. */
    ASSERT_UEQ(cmdipc__hash("abc", 3), cmdipc__hash("abc", 3));
    ASSERT(cmdipc__hash("abc", 3) != cmdipc__hash("abd", 3));
}

TEST_LIST_BEGIN
TEST_ENTRY(map_insert_get_delete_100k)
TEST_ENTRY(map_growth_keeps_load_factor_and_entries)
TEST_ENTRY(map_iteration_tolerates_deleting_current)
TEST_ENTRY(heap_random_against_sorted_reference)
TEST_ENTRY(heap_remove_arbitrary_and_not_queued)
TEST_ENTRY(utf8_valid_table)
TEST_ENTRY(utf8_every_code_point_round_trips)
TEST_ENTRY(check_id)
TEST_ENTRY(buf_put_jstr_escapes)
TEST_ENTRY(buf_put_jstr_every_byte_parses_back)
TEST_ENTRY(plain_run_matches_bytewise_definition)
TEST_ENTRY(json_build_matches_jansson)
TEST_ENTRY(buf_basics)
TEST_ENTRY(json_prescan_positions)
TEST_ENTRY(json_prescan_nul_after_backslash)
TEST_ENTRY(siphash_matches_libsodium_with_2_4_rounds)
TEST_LIST_END
