/* cmdipc — a validating JSON scanner that reads only what routing needs.
 *
 * One pass over a line: the whole text is validated exactly as jansson 2.14
 * (with JSON_REJECT_DUPLICATES, after the depth/container/NUL pre-scan)
 * would accept or reject it — structure, strings (escapes, surrogates,
 * UTF-8, control characters, \u0000), numbers (grammar, 64-bit integer and
 * finite real range), literals, duplicate keys in every object, nothing after
 * the value — while the envelope members (id, type, thid, commandId, eventId,
 * request, payload, response.ok/result/error) are recorded as byte spans.
 * Payloads stay text: they become a json_t (cmdipc__json_build, at the end)
 * only if a local handler or listener asks for one, and are forwarded byte for
 * byte otherwise.
 *
 * test/fuzz cross-checks it against jansson on every input (same accept or
 * reject, same field values). */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct key_s {
    const char *p;
    size_t n;
} key_t_;

typedef struct frame_s {
    uint8_t is_obj;
    uint8_t path;          /* which envelope object this is (PATH_*) */
    uint8_t maybe_dup;     /* two keys share a fingerprint: compare at the end */
    uint64_t seen;         /* key fingerprints (length and end bytes) */
    size_t nkeys;          /* keys of this object so far */
    size_t keys0;          /* index of its first key in the key stack */
    cmdipc__span_t *slot;  /* the member it is the value of, if recorded */
} frame_t;

enum { PATH_NONE = 0, PATH_TOP, PATH_RESPONSE, PATH_ERROR };

typedef struct scan_s {
    const char *b;
    size_t n;
    size_t i;
    int status;
    size_t errpos;
    size_t containers;
    const cmdipc_limits_t *lim;
    cmdipc__env_t *env;
    /* keys of the open objects (for duplicates) */
    key_t_ *keys;
    size_t nkeys, capkeys;
    key_t_ keys_small[32]; /* most messages: no allocation */
    char **scratch_blocks; /* decoded keys with escapes */
    size_t nblocks;
    frame_t stack_small[16];
    frame_t *stack;
} scan_t;

static int fail(scan_t *s, int status, size_t at) {
    if (s->status == 0) {
        s->status = status;
        s->errpos = at;
    }
    return -1;
}

static inline int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline void skip_ws(scan_t *s) {
    /* Most calls find a token at once: one comparison rules whitespace out. */
    if (CMDIPC__LIKELY(s->i < s->n && (unsigned char)s->b[s->i] > ' '))
        return;
    while (s->i < s->n && is_ws(s->b[s->i])) {
        if (s->b[s->i] == '\n' || s->b[s->i] == '\r')
            s->env->multiline = 1;
        s->i++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_u4(scan_t *s, size_t at, unsigned *out) {
    if (at + 4 > s->n)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(s->b[at + (size_t)k]);
        if (h < 0)
            return -1;
        v = (v << 4) | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Validates one UTF-8 sequence starting at s->b[i] (>= 0x80); returns its
 * length or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail) {
    unsigned c = p[0];
    size_t need;
    unsigned cp, min;
    if ((c & 0xe0) == 0xc0)
        need = 1, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        need = 2, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        need = 3, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (avail <= need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        unsigned cc = p[k];
        if ((cc & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need + 1;
}

/* Scans a string at s->i (the opening quote). Sets *esc when it holds
 * escapes. On return s->i is past the closing quote. */
static int scan_string(scan_t *s, int *esc) {
    const unsigned char *b = (const unsigned char *)s->b;
    size_t i = s->i + 1, n = s->n;
    *esc = 0;
    for (;;) {
        /* Fast path: plain ASCII, eight bytes at a time. */
        i += cmdipc__plain_run(b + i, n - i);
        if (i >= n)
            return fail(s, CMDIPC_EBADJSON, i);
        unsigned c = b[i];
        if (c == '"') {
            s->i = i + 1;
            return 0;
        }
        if (c == '\\') {
            *esc = 1;
            if (i + 1 >= n)
                return fail(s, CMDIPC_EBADJSON, i);
            char e = (char)b[i + 1];
            if (e == 'u') {
                unsigned v;
                if (read_u4(s, i + 2, &v) != 0)
                    return fail(s, CMDIPC_EBADJSON, i);
                i += 6;
                if (v >= 0xd800 && v <= 0xdbff) {
                    unsigned v2;
                    if (i + 1 < n && b[i] == '\\' && b[i + 1] == 'u' &&
                        read_u4(s, i + 2, &v2) == 0 && v2 >= 0xdc00 && v2 <= 0xdfff) {
                        i += 6;
                        continue;
                    }
                    return fail(s, CMDIPC_EBADJSON, i);
                }
                if (v >= 0xdc00 && v <= 0xdfff)
                    return fail(s, CMDIPC_EBADJSON, i);
                if (v == 0)
                    return fail(s, CMDIPC_EJSONNUL, i);
                continue;
            }
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                e == 'r' || e == 't') {
                i += 2;
                continue;
            }
            return fail(s, e == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, i + 1);
        }
        if (c == 0)
            return fail(s, CMDIPC_EJSONNUL, i);
        if (c < 0x20)
            return fail(s, CMDIPC_EBADJSON, i);
        size_t k = utf8_seq(b + i, n - i);
        if (k == 0)
            return fail(s, CMDIPC_EBADJSON, i);
        i += k;
    }
}

/* Decodes the JSON string literal at b[0..n) (quotes included, already
 * validated) into out (room for n bytes); returns the decoded length. */
size_t cmdipc__json_unescape(const char *b, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 1; i + 1 < n;) {
        char c = b[i];
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        char e = b[i + 1];
        i += 2;
        switch (e) {
            case 'b':
                out[o++] = '\b';
                break;
            case 'f':
                out[o++] = '\f';
                break;
            case 'n':
                out[o++] = '\n';
                break;
            case 'r':
                out[o++] = '\r';
                break;
            case 't':
                out[o++] = '\t';
                break;
            case 'u': {
                unsigned v = 0, v2 = 0;
                for (int k = 0; k < 4; k++)
                    v = (v << 4) | (unsigned)hexval(b[i + (size_t)k]);
                i += 4;
                if (v >= 0xd800 && v <= 0xdbff) {
                    for (int k = 0; k < 4; k++)
                        v2 = (v2 << 4) | (unsigned)hexval(b[i + 2 + (size_t)k]);
                    i += 6;
                    v = 0x10000 + ((v - 0xd800) << 10) + (v2 - 0xdc00);
                }
                if (v < 0x80) {
                    out[o++] = (char)v;
                } else if (v < 0x800) {
                    out[o++] = (char)(0xc0 | (v >> 6));
                    out[o++] = (char)(0x80 | (v & 0x3f));
                } else if (v < 0x10000) {
                    out[o++] = (char)(0xe0 | (v >> 12));
                    out[o++] = (char)(0x80 | ((v >> 6) & 0x3f));
                    out[o++] = (char)(0x80 | (v & 0x3f));
                } else {
                    out[o++] = (char)(0xf0 | (v >> 18));
                    out[o++] = (char)(0x80 | ((v >> 12) & 0x3f));
                    out[o++] = (char)(0x80 | ((v >> 6) & 0x3f));
                    out[o++] = (char)(0x80 | (v & 0x3f));
                }
                break;
            }
            default: /* " \ / */
                out[o++] = e;
                break;
        }
    }
    return o;
}

/* ---------------------------------------------------------------------------
 * Numbers as jansson converts them: strtoll for integers, strtod (with the
 * locale's decimal point) for reals. */

/* A NUL-terminated copy of b[0..n) in tmp (64 bytes) or on the heap. */
static char *num_copy(const char *b, size_t n, char tmp[64]) {
    char *num = n < 64 ? tmp : malloc(n + 1);
    if (num != NULL) {
        memcpy(num, b, n);
        num[n] = '\0';
    }
    return num;
}

/* An integer token: its value; *range when it does not fit in 64 bits,
 * *nomem when a copy could not be made. */
static json_int_t parse_int(const char *b, size_t n, int *range, int *nomem) {
    *range = *nomem = 0;
    size_t digits = n - (b[0] == '-');
    if (digits <= 18) { /* fits: no strtoll */
        long long v = 0;
        for (size_t i = n - digits; i < n; i++)
            v = v * 10 + (b[i] - '0');
        return b[0] == '-' ? -v : v;
    }
    char tmp[64];
    char *num = num_copy(b, n, tmp);
    if (num == NULL) {
        *nomem = 1;
        return 0;
    }
    errno = 0;
    long long v = strtoll(num, NULL, 10);
    *range = errno == ERANGE;
    if (num != tmp)
        free(num);
    return v;
}

double cmdipc__strtod(const char *b, size_t n, int *overflow) {
    char tmp[64];
    char *num = num_copy(b, n, tmp);
    if (num == NULL) {
        *overflow = -1;
        return 0;
    }
    const char *point = localeconv()->decimal_point;
    if (*point != '.') {
        char *dot = strchr(num, '.');
        if (dot != NULL)
            *dot = *point;
    }
    errno = 0;
    double d = strtod(num, NULL);
    *overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
    if (num != tmp)
        free(num);
    return d;
}

static int scan_number(scan_t *s) {
    const char *b = s->b;
    size_t i = s->i, n = s->n, start = s->i;
    int is_int = 1;
    if (i < n && b[i] == '-')
        i++;
    if (i < n && b[i] == '0') {
        i++;
        if (i < n && b[i] >= '0' && b[i] <= '9')
            return fail(s, CMDIPC_EBADJSON, i);
    } else if (i < n && b[i] >= '1' && b[i] <= '9') {
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
    } else {
        return fail(s, CMDIPC_EBADJSON, i);
    }
    if (i < n && b[i] == '.') {
        is_int = 0;
        i++;
        if (i >= n || b[i] < '0' || b[i] > '9')
            return fail(s, CMDIPC_EBADJSON, i);
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        is_int = 0;
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-'))
            i++;
        if (i >= n || b[i] < '0' || b[i] > '9')
            return fail(s, CMDIPC_EBADJSON, i);
        while (i < n && b[i] >= '0' && b[i] <= '9')
            i++;
    }
    size_t len = i - start;
    s->i = i;
    /* Range, as jansson checks it: strtoll for integers, strtod for reals. */
    if (is_int && len <= 18)
        return 0; /* fits in 64 bits */
    int bad;
    if (is_int) {
        int nomem;
        (void)parse_int(b + start, len, &bad, &nomem);
        if (nomem)
            return fail(s, UV_ENOMEM, start);
    } else {
        (void)cmdipc__strtod(b + start, len, &bad);
        if (bad < 0)
            return fail(s, UV_ENOMEM, start);
    }
    return bad ? fail(s, CMDIPC_EJSONRANGE, start) : 0;
}

/* The common case inline: a string of plain ASCII up to its quote. */
static inline int scan_str(scan_t *s, int *esc) {
    const unsigned char *b = (const unsigned char *)s->b + s->i + 1;
    size_t avail = s->n - s->i - 1;
    size_t run = cmdipc__plain_run(b, avail);
    if (CMDIPC__LIKELY(run < avail && b[run] == '"')) {
        s->i += run + 2;
        *esc = 0;
        return 0;
    }
    return scan_string(s, esc);
}

static int scan_literal(scan_t *s, const char *lit, size_t len) {
    if (s->n - s->i < len || memcmp(s->b + s->i, lit, len) != 0)
        return fail(s, CMDIPC_EBADJSON, s->i);
    s->i += len;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Duplicate keys: each open object's keys sit on a stack; at the object's
 * end they are compared (pairwise when few, sorted when many). */

static int push_key(scan_t *s, size_t at, size_t end, int esc) {
    if (s->nkeys == s->capkeys) {
        size_t cap = s->capkeys * 2;
        key_t_ *k = s->keys == s->keys_small ? malloc(cap * sizeof(*k))
                                             : realloc(s->keys, cap * sizeof(*k));
        if (k == NULL)
            return fail(s, UV_ENOMEM, at);
        if (s->keys == s->keys_small)
            memcpy(k, s->keys_small, sizeof(s->keys_small));
        s->keys = k;
        s->capkeys = cap;
    }
    key_t_ *k = &s->keys[s->nkeys++];
    if (!esc) {
        k->p = s->b + at + 1;
        k->n = end - at - 2;
        return 0;
    }
    /* Decode into a block of its own so earlier pointers stay valid. */
    char *d = malloc(end - at);
    char **blocks = realloc(s->scratch_blocks, (s->nblocks + 1) * sizeof(*blocks));
    if (d == NULL || blocks == NULL) {
        free(d);
        if (blocks != NULL)
            s->scratch_blocks = blocks;
        s->nkeys--;
        return fail(s, UV_ENOMEM, at);
    }
    s->scratch_blocks = blocks;
    s->scratch_blocks[s->nblocks++] = d;
    k->n = cmdipc__json_unescape(s->b + at, end - at, d);
    k->p = d;
    return 0;
}

static int key_cmp(const void *a, const void *b) {
    const key_t_ *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return memcmp(x->p, y->p, x->n);
}

static int check_dups(scan_t *s, frame_t *f) {
    key_t_ *k = s->keys + f->keys0;
    size_t n = f->nkeys;
    if (!f->maybe_dup) { /* all fingerprints distinct: all keys distinct */
        s->nkeys = f->keys0;
        return 0;
    }
    if (n <= 16) {
        for (size_t a = 1; a < n; a++)
            for (size_t c = 0; c < a; c++)
                if (k[a].n == k[c].n && memcmp(k[a].p, k[c].p, k[a].n) == 0)
                    return fail(s, CMDIPC_EDUPKEY, s->i);
    } else {
        qsort(k, n, sizeof(*k), key_cmp);
        for (size_t a = 1; a < n; a++)
            if (key_cmp(&k[a - 1], &k[a]) == 0)
                return fail(s, CMDIPC_EDUPKEY, s->i);
    }
    s->nkeys = f->keys0;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Envelope members. */

static cmdipc__span_t *member_slot(cmdipc__env_t *env, int path, const char *k, size_t n) {
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
    switch (path) {
        case PATH_TOP:
            if (IS("id"))
                return &env->id;
            if (IS("type"))
                return &env->type;
            if (IS("thid"))
                return &env->thid;
            if (IS("commandId"))
                return &env->command_id;
            if (IS("eventId"))
                return &env->event_id;
            if (IS("request"))
                return &env->request;
            if (IS("payload"))
                return &env->payload;
            if (IS("response"))
                return &env->response;
            return NULL;
        case PATH_RESPONSE:
            if (IS("ok"))
                return &env->ok;
            if (IS("result"))
                return &env->result;
            if (IS("error"))
                return &env->error;
            return NULL;
        case PATH_ERROR:
            if (IS("code"))
                return &env->code;
            if (IS("message"))
                return &env->message;
            return NULL;
        default:
            return NULL;
    }
#undef IS
}

/* ---------------------------------------------------------------------------
 * The scan: an explicit stack, no recursion. */

int cmdipc__scan(const char *buf, size_t len, const cmdipc_limits_t *lim, cmdipc__env_t *env,
                 size_t *errpos) {
    scan_t s;
    /* Field by field: the inline arrays need no clearing. */
    s.i = 0;
    s.status = 0;
    s.errpos = 0;
    s.containers = 0;
    s.nkeys = 0;
    s.scratch_blocks = NULL;
    s.nblocks = 0;
    memset(env, 0, sizeof(*env));
    s.b = buf;
    s.n = len;
    s.lim = lim;
    s.env = env;
    s.keys = s.keys_small;
    s.capkeys = sizeof(s.keys_small) / sizeof(s.keys_small[0]);
    size_t max_depth = lim->max_depth > 512 ? 512 : lim->max_depth;
    s.stack = s.stack_small; /* grown past 16 levels only */
    size_t depth = 0;
    cmdipc__span_t *slot = NULL; /* where the value about to be scanned is recorded */
    int path_next = PATH_TOP;    /* the envelope path of an object opened as that value */
    char c;

    /* A raw NUL is reported as CMDIPC_EJSONNUL where the scan meets it: in
     * a string, or where a token was expected. */
    skip_ws(&s);
    if (s.i >= s.n || (s.b[s.i] != '{' && s.b[s.i] != '[')) {
        fail(&s, s.i < s.n && s.b[s.i] == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, s.i);
        goto done;
    }

value:
    skip_ws(&s);
    if (s.i >= s.n) {
        fail(&s, CMDIPC_EBADJSON, s.i);
        goto done;
    }
    c = s.b[s.i];
    if (slot != NULL) {
        slot->off = (uint32_t)s.i;
        slot->present = 1;
    }
    if (c == '{' || c == '[') {
        if (depth >= max_depth) {
            fail(&s, CMDIPC_EJSONDEPTH, s.i);
            goto done;
        }
        if (++s.containers > lim->max_containers) {
            fail(&s, CMDIPC_EJSONSIZE, s.i);
            goto done;
        }
        if (depth == sizeof(s.stack_small) / sizeof(s.stack_small[0]) &&
            s.stack == s.stack_small) {
            frame_t *big = malloc(max_depth * sizeof(frame_t));
            if (big == NULL) {
                fail(&s, UV_ENOMEM, s.i);
                goto done;
            }
            memcpy(big, s.stack_small, sizeof(s.stack_small));
            s.stack = big;
        }
        frame_t *f = &s.stack[depth++];
        f->is_obj = c == '{';
        f->path = (uint8_t)(f->is_obj ? path_next : PATH_NONE);
        f->nkeys = 0;
        f->keys0 = s.nkeys;
        f->slot = slot;
        f->seen = 0;
        f->maybe_dup = 0;
        if (slot != NULL)
            slot->type = f->is_obj ? 'o' : 'a';
        s.i++;
        skip_ws(&s);
        if (s.i < s.n && s.b[s.i] == (f->is_obj ? '}' : ']'))
            goto close; /* empty */
        if (f->is_obj)
            goto key;
        slot = NULL;
        path_next = PATH_NONE;
        goto value;
    }
    {
        char type;
        int rc, esc;
        if (c == '"') {
            rc = scan_str(&s, &esc);
            type = esc ? 'S' : 's';
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = scan_number(&s);
            type = 'n';
        } else if (c == 't') {
            rc = scan_literal(&s, "true", 4);
            type = 't';
        } else if (c == 'f') {
            rc = scan_literal(&s, "false", 5);
            type = 'f';
        } else if (c == 'n') {
            rc = scan_literal(&s, "null", 4);
            type = 'z';
        } else {
            rc = fail(&s, c == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, s.i);
            type = 0;
        }
        if (rc != 0)
            goto done;
        if (slot != NULL) {
            slot->type = type;
            slot->len = (uint32_t)(s.i - slot->off);
        }
    }

after:
    if (depth == 0) {
        skip_ws(&s);
        if (s.i != s.n)
            fail(&s, s.b[s.i] == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, s.i);
        goto done;
    }
    skip_ws(&s);
    if (s.i >= s.n) {
        fail(&s, CMDIPC_EBADJSON, s.i);
        goto done;
    }
    c = s.b[s.i];
    if (c == ',') {
        s.i++;
        if (s.stack[depth - 1].is_obj)
            goto key;
        slot = NULL;
        path_next = PATH_NONE;
        goto value;
    }
    if (c != (s.stack[depth - 1].is_obj ? '}' : ']')) {
        fail(&s, c == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, s.i);
        goto done;
    }

close : {
    frame_t *f = &s.stack[depth - 1];
    s.i++;
    if (f->is_obj && check_dups(&s, f) != 0)
        goto done;
    if (f->path == PATH_TOP)
        env->n_top = (uint32_t)f->nkeys;
    else if (f->path == PATH_RESPONSE)
        env->n_response = (uint32_t)f->nkeys;
    else if (f->path == PATH_ERROR)
        env->n_error = (uint32_t)f->nkeys;
    if (f->slot != NULL)
        f->slot->len = (uint32_t)(s.i - f->slot->off);
    depth--;
    goto after;
}

key : {
    frame_t *f = &s.stack[depth - 1];
    skip_ws(&s);
    if (s.i >= s.n || s.b[s.i] != '"') {
        fail(&s, s.i < s.n && s.b[s.i] == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, s.i);
        goto done;
    }
    size_t kstart = s.i;
    int esc;
    if (scan_str(&s, &esc) != 0 || push_key(&s, kstart, s.i, esc) != 0)
        goto done;
    f->nkeys++;
    {
        /* A fingerprint of the key: keys that differ in length or in their
         * first or last byte cannot be equal, so most objects need no
         * comparison at all. */
        const key_t_ *k = &s.keys[s.nkeys - 1];
        unsigned fp = k->n ? (unsigned)(k->n * 7 + (unsigned char)k->p[0] * 3 +
                                         (unsigned char)k->p[k->n - 1]) & 63
                           : 0;
        uint64_t bit = (uint64_t)1 << fp;
        if (f->seen & bit)
            f->maybe_dup = 1;
        f->seen |= bit;
    }
    skip_ws(&s);
    if (s.i >= s.n || s.b[s.i] != ':') {
        fail(&s, s.i < s.n && s.b[s.i] == '\0' ? CMDIPC_EJSONNUL : CMDIPC_EBADJSON, s.i);
        goto done;
    }
    s.i++;
    slot = NULL;
    if (f->path != PATH_NONE) {
        const key_t_ *k = &s.keys[s.nkeys - 1];
        slot = member_slot(env, f->path, k->p, k->n);
    }
    path_next = slot == &env->response ? PATH_RESPONSE
                : slot == &env->error  ? PATH_ERROR
                                       : PATH_NONE;
    goto value;
}

done:
    for (size_t k = 0; k < s.nblocks; k++)
        free(s.scratch_blocks[k]);
    free(s.scratch_blocks);
    if (s.keys != s.keys_small)
        free(s.keys);
    if (s.stack != s.stack_small)
        free(s.stack);
    if (errpos != NULL)
        *errpos = s.errpos;
    return s.status;
}

/* ---------------------------------------------------------------------------
 * json_t from validated text: the values json_loadb would build, without its
 * lexer (a character stream with look-ahead and a token buffer), which costs
 * four times what building the values does. Every input is valid JSON within
 * the scanner's depth cap (512), so there is no error path but memory. */

typedef struct build_s {
    const char *b;
    size_t i, n;
} build_t;

static inline void build_ws(build_t *p) {
    while (p->i < p->n && is_ws(p->b[p->i]))
        p->i++;
}

/* The string literal at p->i: *out and *len, decoded into *heap (to be freed)
 * when it has escapes. Returns 0 or -1 (memory). */
static int build_str(build_t *p, const char **out, size_t *len, char **heap) {
    const unsigned char *b = (const unsigned char *)p->b;
    size_t start = p->i, i = start + 1;
    *heap = NULL;
    size_t run = cmdipc__plain_run(b + i, p->n - i);
    if (CMDIPC__LIKELY(b[i + run] == '"')) {
        *out = p->b + i;
        *len = run;
        p->i = i + run + 1;
        return 0;
    }
    int esc = 0;
    for (i += run;; i += cmdipc__plain_run(b + i, p->n - i)) {
        if (b[i] == '"')
            break;
        if (b[i] == '\\') {
            esc = 1;
            i += 2;
        } else {
            i++; /* a byte of a UTF-8 sequence */
        }
    }
    p->i = i + 1;
    if (!esc) {
        *out = p->b + start + 1;
        *len = i - start - 1;
        return 0;
    }
    char *d = malloc(p->i - start);
    if (d == NULL)
        return -1;
    *len = cmdipc__json_unescape(p->b + start, p->i - start, d);
    *out = *heap = d;
    return 0;
}

static json_t *build_value(build_t *p) {
    build_ws(p);
    char c = p->b[p->i];
    if (c == '{' || c == '[') {
        int obj = c == '{';
        char close = obj ? '}' : ']';
        json_t *box = obj ? json_object() : json_array();
        p->i++;
        build_ws(p);
        if (p->b[p->i] == close) {
            p->i++;
            return box;
        }
        while (box != NULL) {
            const char *k = NULL;
            size_t kn = 0;
            char *heap = NULL;
            if (obj) {
                build_ws(p);
                if (build_str(p, &k, &kn, &heap) != 0)
                    break;
                build_ws(p);
                p->i++; /* ':' */
            }
            /* Both setters take the value's reference, also when they fail. */
            json_t *v = build_value(p);
            int rc = v == NULL ? -1
                     : obj     ? json_object_setn_new_nocheck(box, k, kn, v)
                               : json_array_append_new(box, v);
            free(heap);
            if (rc != 0)
                break;
            build_ws(p);
            if (p->b[p->i++] == close)
                return box;
        }
        json_decref(box);
        return NULL;
    }
    if (c == '"') {
        const char *s;
        size_t n;
        char *heap;
        if (build_str(p, &s, &n, &heap) != 0)
            return NULL;
        json_t *v = json_stringn_nocheck(s, n);
        free(heap);
        return v;
    }
    if (c == 't' || c == 'f' || c == 'n') {
        p->i += c == 'f' ? 5 : 4;
        return c == 't' ? json_true() : c == 'f' ? json_false() : json_null();
    }
    /* a number */
    size_t start = p->i;
    int real = 0;
    while (p->i < p->n) {
        char d = p->b[p->i];
        if (d == '.' || d == 'e' || d == 'E')
            real = 1;
        else if (!(d == '-' || d == '+' || (d >= '0' && d <= '9')))
            break;
        p->i++;
    }
    int bad, nomem = 0;
    if (real) {
        double d = cmdipc__strtod(p->b + start, p->i - start, &bad);
        return bad < 0 ? NULL : json_real(d);
    }
    json_int_t v = parse_int(p->b + start, p->i - start, &bad, &nomem);
    return nomem ? NULL : json_integer(v);
}

json_t *cmdipc__json_build(const char *b, size_t n) {
    build_t p = {b, 0, n};
    return n == 0 ? NULL : build_value(&p);
}
