/* cmdipc — the conformance runner (PROTOCOL.md section 3a).
 *
 *     conformance [-v] PATH...
 *
 * Each PATH is a vector file or a directory searched recursively for *.json.
 * A vector with `json` and `message` is an encoding vector, one with `setup`
 * and `steps` a behaviour vector. Output is TAP: one ok / not ok line per
 * vector, failure details as "# " comment lines naming file:step. Exit 0 only
 * if every vector passed. A PATH that does not exist is skipped (exit 0)
 * unless the environment has CI=true, where it is a failure.
 *
 * Behaviour vectors run against a real registry on a private loop, with one
 * mock channel per peer written against the public channel API (channel.h):
 * outbound messages are encoded with cmdipc_msg_encode(), parsed and checked
 * against the spec-v1 schema constraints, inbound ones are delivered as text
 * with cmdipc_channel_deliver_line(). Time is an injected clock
 * (lib/testing.h). The project's extensions to the format (advance-time,
 * inbound-raw, assert-stats, ...) are documented in docs/conformance.md.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "cmdipc.h"
#include "schema_check.h"
#include "testing.h"

#define CLOCK_START_MS    1000000u
#define SETTLE_MAX_PASSES 100000
#define DRAIN_MAX_PASSES  100000
#define LOG_RING          64
#define DUMP_MAX          400

static int verbose;

/* ---------------------------------------------------------------------------
 * Small utilities
 */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} sbuf_t;

static void sb_vaddf(sbuf_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL)
            return;
        b->data = p;
        b->cap = cap;
    }
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)n;
}

static void sb_addf(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(b, fmt, ap);
    va_end(ap);
}

static void sb_free(sbuf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static char *xstrdup(const char *s) {
    char *p;
    size_t n;

    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "conformance: out of memory\n");
        abort();
    }
    memcpy(p, s, n);
    return p;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "conformance: out of memory\n");
        abort();
    }
    return p;
}

/* Compact JSON of v (or "(absent)"), cut to DUMP_MAX characters. */
static void dump_json(const json_t *v, char *out, size_t outlen) {
    char *s;

    if (v == NULL) {
        snprintf(out, outlen, "(absent)");
        return;
    }
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        snprintf(out, outlen, "(unprintable)");
        return;
    }
    if (strlen(s) >= outlen && outlen > 4)
        snprintf(out, outlen, "%.*s...", (int)(outlen - 4), s);
    else
        snprintf(out, outlen, "%s", s);
    free(s);
}

static int is_uint(const json_t *v) {
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* A status from a code string: a spec-v1 wire code ("not_found", ...) or a
 * symbolic name as cmdipc_err_name() prints it ("CMDIPC_ECANCELED"). 1 if
 * known. */
static int status_from_code(const char *code, int *status) {
#define XX(name, value, wire, msg)                                                       \
    if ((wire != NULL && strcmp(code, wire ? wire : "") == 0) ||                         \
        strcmp(code, "CMDIPC_" #name) == 0) {                                            \
        *status = value;                                                                 \
        return 1;                                                                        \
    }
    CMDIPC_ERRNO_MAP(XX)
#undef XX
    return 0;
}

/* ---------------------------------------------------------------------------
 * Vector state
 */

typedef struct vec_s vec_t;
typedef struct mock_s mock_t;

typedef struct {
    char *buf;
    size_t len;
} line_t;

struct mock_s {
    vec_t *v;
    char *id;
    cmdipc_channel_t *ch; /* NULL once freed */
    int attached;
    int unattached_free; /* cmdipc_channel_free() of a channel never attached */
    int close_called;    /* ops->close() ran */
    int closed;          /* cmdipc_channel_closed() reported */
    int close_pending;   /* the close report is scheduled */
    int freed;           /* ops->free() calls */
    int paused;
    long queue_max; /* -1: unbounded */
    json_t *queue;  /* parsed outbound messages not yet asserted */
    line_t *held;   /* inbound lines buffered while paused */
    size_t nheld, held_pos, held_cap;
    uv_timer_t timer;
    mock_t *next;
};

/* How a command answers. */
typedef struct {
    json_t *returns; /* NULL: no result */
    char *expr;      /* {"$expr": ...} */
    int has_fail;
    int fail_status;
    char *fail_message;
    int echo;
} answer_t;

typedef struct lcall_s lcall_t;

typedef struct cmd_spec_s {
    vec_t *v;
    char *id;
    char *description;
    json_t *schema;
    answer_t ans;
    int hang;
    unsigned calls;
    int reg_pending; /* registration returned 0, callback awaited */
    int reg_cb_calls;
    int reg_status;
    lcall_t *lcall; /* the local call that registered it, if any */
    struct cmd_spec_s *next;
} cmd_spec_t;

typedef struct held_s {
    cmd_spec_t *spec;
    cmdipc_call_t *call;
    json_t *request;
    struct held_s *next;
} held_t;

struct lcall_s {
    vec_t *v;
    char kind[32];
    size_t step;
    int done;
    int cb_calls;
    int expect_cb; /* a callback is owed (the call returned 0) */
    int status;
    json_t *value; /* NULL: absent */
    char *message;
    cmdipc_req_t *req;
    lcall_t *next;
};

typedef struct listener_s {
    vec_t *v;
    char *event_id;
    unsigned count;
    json_t *last;
    struct listener_s *next;
} listener_t;

struct vec_s {
    const char *name;
    json_t *doc;
    uv_loop_t loop;
    int loop_inited;
    cmdipc_registry_t *r;
    int close_cb_called;
    uint64_t now;
    json_t *captures;
    sbuf_t out;
    int failed;
    char where[512];
    size_t step;
    unsigned long changes;
    mock_t *mocks;
    cmd_spec_t *specs;
    held_t *held;
    lcall_t *calls;
    lcall_t *last_call;
    listener_t *listeners;
    char *logs[LOG_RING];
    size_t nlogs;
};

static void vfail(vec_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vfail(vec_t *v, const char *fmt, ...) {
    va_list ap;

    if (!v->failed)
        sb_addf(&v->out, "%s: ", v->where);
    else
        sb_addf(&v->out, "  also, at %s: ", v->where);
    va_start(ap, fmt);
    sb_vaddf(&v->out, fmt, ap);
    va_end(ap);
    sb_addf(&v->out, "\n");
    v->failed = 1;
}

/* A detail line under the last failure. */
static void vnote(vec_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vnote(vec_t *v, const char *fmt, ...) {
    va_list ap;

    sb_addf(&v->out, "  ");
    va_start(ap, fmt);
    sb_vaddf(&v->out, fmt, ap);
    va_end(ap);
    sb_addf(&v->out, "\n");
}

/* Checks that obj has only the listed keys (NULL-terminated). */
static int check_keys(vec_t *v, const json_t *obj, const char *what,
                      const char *const *allowed) {
    const char *key;
    json_t *value;

    json_object_foreach((json_t *)obj, key, value) {
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = 1;
        if (!ok) {
            vfail(v, "vector error: unknown member \"%s\" in %s", key, what);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Matching: subset objects, exact arrays, $match / $capture / $ref /
 * $unordered / $absent.
 */

enum { M_ERROR = -1, M_NO = 0, M_YES = 1 };

static const char *matcher_key(const json_t *exp) {
    static const char *const keys[] = {"$match", "$capture", "$ref", "$unordered",
                                       "$absent"};
    const char *key;

    if (!json_is_object(exp))
        return NULL;
    /* {"$capture": name, "$match": kind}: capture a value that matches. */
    if (json_object_size(exp) == 2 && json_object_get(exp, "$capture") != NULL &&
        json_object_get(exp, "$match") != NULL)
        return "$capture";
    if (json_object_size(exp) != 1)
        return NULL;
    key = json_object_iter_key(json_object_iter((json_t *)exp));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(key, keys[i]) == 0)
            return keys[i];
    return NULL;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* RFC 4122 layout, version 1-5, variant 8/9/a/b; lower_v4 also requires
 * lowercase and version 4 (what cmdipc generates, section 0 rule 1). */
static int is_uuid(const char *s, int lower_v4) {
    char buf[37];

    if (strlen(s) != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (!lower_v4 && c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        buf[i] = c;
    }
    buf[36] = '\0';
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (buf[i] != '-')
                return 0;
        } else if (!is_hex(buf[i])) {
            return 0;
        }
    }
    if (lower_v4 ? buf[14] != '4' : (buf[14] < '1' || buf[14] > '5'))
        return 0;
    return strchr("89ab", buf[19]) != NULL;
}

static int match(vec_t *v, const json_t *exp, const json_t *act, const char *path,
                 json_t *caps, char *why, size_t whylen);

static void mismatch(char *why, size_t whylen, const char *path, const json_t *exp,
                     const json_t *act, const char *what) {
    char e[DUMP_MAX], a[DUMP_MAX];

    dump_json(exp, e, sizeof(e));
    dump_json(act, a, sizeof(a));
    if (what != NULL)
        snprintf(why, whylen, "at %s: %s; expected %s, actual %s", path, what, e, a);
    else
        snprintf(why, whylen, "at %s: expected %s, actual %s", path, e, a);
}

/* Assigns patterns i.. of pats to distinct unused elements of act (with
 * backtracking). Returns the captures after a full assignment (new ref) or
 * NULL. */
static json_t *assign_unordered(vec_t *v, const json_t *pats, const json_t *act, size_t i,
                                char *used, const char *path, json_t *caps, int *verr,
                                char *why, size_t whylen) {
    size_t n = json_array_size(act);

    if (i == json_array_size(pats))
        return json_copy(caps);
    for (size_t j = 0; j < n && !*verr; j++) {
        char sub[256];
        json_t *trial, *res;
        int r;

        if (used[j])
            continue;
        trial = json_copy(caps);
        snprintf(sub, sizeof(sub), "%s[%zu]", path, j);
        r = match(v, json_array_get(pats, i), json_array_get(act, j), sub, trial, why,
                  whylen);
        if (r == M_ERROR) {
            *verr = 1;
            json_decref(trial);
            return NULL;
        }
        if (r == M_YES) {
            used[j] = 1;
            res = assign_unordered(v, pats, act, i + 1, used, path, trial, verr, why,
                                   whylen);
            used[j] = 0;
            if (res != NULL) {
                json_decref(trial);
                return res;
            }
        }
        json_decref(trial);
    }
    return NULL;
}

static int match(vec_t *v, const json_t *exp, const json_t *act, const char *path,
                 json_t *caps, char *why, size_t whylen) {
    const char *mk = matcher_key(exp);

    if (mk != NULL) {
        json_t *arg = json_object_get(exp, mk);

        if (strcmp(mk, "$absent") == 0) {
            if (!json_is_true(arg)) {
                snprintf(why, whylen, "at %s: $absent takes true", path);
                return M_ERROR;
            }
            if (act != NULL) {
                mismatch(why, whylen, path, exp, act, "member must be absent");
                return M_NO;
            }
            return M_YES;
        }
        if (act == NULL) {
            mismatch(why, whylen, path, exp, act, "missing");
            return M_NO;
        }
        if (strcmp(mk, "$match") == 0) {
            const char *kind = json_string_value(arg);
            const char *s = json_string_value(act);
            int ok;
            if (kind == NULL) {
                snprintf(why, whylen, "at %s: $match takes a string", path);
                return M_ERROR;
            }
            if (strcmp(kind, "uuid") == 0)
                ok = s != NULL && is_uuid(s, 0);
            else if (strcmp(kind, "uuid-v4") == 0)
                ok = s != NULL && is_uuid(s, 1);
            else if (strcmp(kind, "any-string") == 0)
                ok = s != NULL && s[0] != '\0';
            else {
                snprintf(why, whylen, "at %s: unknown $match \"%s\"", path, kind);
                return M_ERROR;
            }
            if (!ok) {
                mismatch(why, whylen, path, exp, act, NULL);
                return M_NO;
            }
            return M_YES;
        }
        if (strcmp(mk, "$capture") == 0) {
            if (!json_is_string(arg) || json_string_length(arg) == 0) {
                snprintf(why, whylen, "at %s: $capture takes a name", path);
                return M_ERROR;
            }
            if (json_object_get(exp, "$match") != NULL) {
                json_t *only =
                    json_pack("{s:O}", "$match", json_object_get(exp, "$match"));
                int r = match(v, only, act, path, caps, why, whylen);
                json_decref(only);
                if (r != M_YES)
                    return r;
            }
            json_object_set_new(caps, json_string_value(arg), json_deep_copy(act));
            return M_YES;
        }
        if (strcmp(mk, "$ref") == 0) {
            json_t *val = json_is_string(arg)
                              ? json_object_get(caps, json_string_value(arg))
                              : NULL;
            if (val == NULL) {
                snprintf(why, whylen, "at %s: $ref to an unknown capture", path);
                return M_ERROR;
            }
            if (!cmdipc_test_json_equal(val, act)) {
                mismatch(why, whylen, path, val, act, "differs from the captured value");
                return M_NO;
            }
            return M_YES;
        }
        /* $unordered */
        if (!json_is_array(arg)) {
            snprintf(why, whylen, "at %s: $unordered takes an array", path);
            return M_ERROR;
        }
        if (!json_is_array(act) || json_array_size(act) != json_array_size(arg)) {
            mismatch(why, whylen, path, arg, act, "not an array of the same length");
            return M_NO;
        }
        {
            int verr = 0;
            char *used = xcalloc(json_array_size(act) + 1, 1);
            json_t *res =
                assign_unordered(v, arg, act, 0, used, path, caps, &verr, why, whylen);
            free(used);
            if (verr)
                return M_ERROR;
            if (res == NULL) {
                mismatch(why, whylen, path, arg, act,
                         "no one-to-one assignment of the $unordered patterns");
                return M_NO;
            }
            json_object_update(caps, res);
            json_decref(res);
            return M_YES;
        }
    }
    if (act == NULL) {
        mismatch(why, whylen, path, exp, act, "missing");
        return M_NO;
    }
    if (json_is_object(exp)) {
        const char *key;
        json_t *ev;
        if (!json_is_object(act)) {
            mismatch(why, whylen, path, exp, act, "not an object");
            return M_NO;
        }
        json_object_foreach((json_t *)exp, key, ev) {
            char sub[256];
            int r;
            snprintf(sub, sizeof(sub), "%s.%s", path, key);
            r = match(v, ev, json_object_get(act, key), sub, caps, why, whylen);
            if (r != M_YES)
                return r;
        }
        return M_YES;
    }
    if (json_is_array(exp)) {
        if (!json_is_array(act) || json_array_size(act) != json_array_size(exp)) {
            mismatch(why, whylen, path, exp, act, "not an array of the same length");
            return M_NO;
        }
        for (size_t i = 0; i < json_array_size(exp); i++) {
            char sub[256];
            int r;
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            r = match(v, json_array_get(exp, i), json_array_get(act, i), sub, caps, why,
                      whylen);
            if (r != M_YES)
                return r;
        }
        return M_YES;
    }
    if (!cmdipc_test_json_equal(exp, act)) {
        mismatch(why, whylen, path, exp, act, NULL);
        return M_NO;
    }
    return M_YES;
}

/* Matches and reports: 1 on a match, 0 after recording the failure. */
static int expect_match(vec_t *v, const json_t *exp, const json_t *act,
                        const char *what) {
    char why[2048];
    json_t *trial = json_copy(v->captures);
    int r = match(v, exp, act, what, trial, why, sizeof(why));

    if (r == M_YES) {
        json_object_update(v->captures, trial);
        json_decref(trial);
        return 1;
    }
    json_decref(trial);
    if (r == M_ERROR)
        vfail(v, "vector error: %s", why);
    else
        vfail(v, "mismatch %s", why);
    return 0;
}

/* Copies in with every {"$ref": name} replaced by the captured value.
 * Returns a new reference, or NULL after recording a vector error. */
static json_t *resolve_refs(vec_t *v, const json_t *in) {
    const char *mk = matcher_key(in);

    if (mk != NULL) {
        json_t *arg = json_object_get(in, mk);
        json_t *val;
        if (strcmp(mk, "$ref") != 0) {
            vfail(v, "vector error: %s is a matcher, only $ref is allowed here", mk);
            return NULL;
        }
        val = json_is_string(arg) ? json_object_get(v->captures, json_string_value(arg))
                                  : NULL;
        if (val == NULL) {
            vfail(v, "vector error: $ref to an unknown capture");
            return NULL;
        }
        return json_deep_copy(val);
    }
    if (json_is_object(in)) {
        json_t *out = json_object();
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)in, key, value) {
            json_t *r = resolve_refs(v, value);
            if (r == NULL) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, key, r);
        }
        return out;
    }
    if (json_is_array(in)) {
        json_t *out = json_array();
        for (size_t i = 0; i < json_array_size(in); i++) {
            json_t *r = resolve_refs(v, json_array_get(in, i));
            if (r == NULL) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, r);
        }
        return out;
    }
    return json_deep_copy(in);
}

/* ---------------------------------------------------------------------------
 * $expr: request.<field> or number literals joined left to right by + - *.
 */

static json_t *eval_expr(const char *expr, const json_t *request, int syntax_only,
                         char *err, size_t errlen) {
    const char *p = expr;
    int all_int = 1, have = 0;
    long long iacc = 0;
    double dacc = 0;
    char op = 0;

    for (;;) {
        long long ival = 0;
        double dval;
        int is_int;

        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "request.", 8) == 0) {
            const char *start = p + 8;
            char name[128];
            size_t n = 0;
            json_t *f;

            p = start;
            while (*p && *p != ' ' && *p != '\t' && *p != '+' && *p != '-' && *p != '*')
                p++;
            n = (size_t)(p - start);
            if (n == 0 || n >= sizeof(name)) {
                snprintf(err, errlen, "bad field name after \"request.\"");
                return NULL;
            }
            memcpy(name, start, n);
            name[n] = '\0';
            if (syntax_only) {
                is_int = 1;
                dval = 0;
            } else {
                f = json_is_object(request) ? json_object_get(request, name) : NULL;
                if (!json_is_number(f)) {
                    snprintf(err, errlen, "request.%s is %s", name,
                             f ? "not a number" : "missing");
                    return NULL;
                }
                is_int = json_is_integer(f);
                ival = is_int ? (long long)json_integer_value(f) : 0;
                dval = json_number_value(f);
            }
        } else {
            const char *start = p;
            char buf[64];
            size_t n;
            int digits = 0, dot = 0;

            if (*p == '-')
                p++;
            while ((*p >= '0' && *p <= '9') || (*p == '.' && !dot)) {
                if (*p == '.')
                    dot = 1;
                else
                    digits++;
                p++;
            }
            n = (size_t)(p - start);
            if (digits == 0 || n >= sizeof(buf)) {
                snprintf(err, errlen, "expected request.<field> or a number at \"%s\"",
                         start);
                return NULL;
            }
            memcpy(buf, start, n);
            buf[n] = '\0';
            dval = strtod(buf, NULL);
            is_int = !dot;
            if (is_int) {
                errno = 0;
                ival = strtoll(buf, NULL, 10);
                if (errno != 0)
                    is_int = 0;
            }
        }
        if (!have) {
            iacc = ival;
            dacc = dval;
            all_int = is_int;
            have = 1;
        } else {
            long long r = 0;
            int ovf = 0;
            all_int = all_int && is_int;
            if (all_int) {
                if (op == '+')
                    ovf = __builtin_add_overflow(iacc, ival, &r);
                else if (op == '-')
                    ovf = __builtin_sub_overflow(iacc, ival, &r);
                else
                    ovf = __builtin_mul_overflow(iacc, ival, &r);
                if (ovf)
                    all_int = 0;
                else
                    iacc = r;
            }
            dacc = op == '+' ? dacc + dval : op == '-' ? dacc - dval : dacc * dval;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (*p != '+' && *p != '-' && *p != '*') {
            snprintf(err, errlen, "expected + - * at \"%s\"", p);
            return NULL;
        }
        op = *p++;
    }
    if (syntax_only)
        return json_integer(0);
    if (all_int)
        return json_integer(iacc);
    if (isfinite(dacc) && dacc == floor(dacc) && fabs(dacc) < 9007199254740992.0)
        return json_integer((json_int_t)dacc);
    if (!isfinite(dacc)) {
        snprintf(err, errlen, "result is not finite");
        return NULL;
    }
    return json_real(dacc);
}

/* ---------------------------------------------------------------------------
 * The mock channel: a user transport through the public channel API.
 */

static int mock_send(cmdipc_channel_t *ch, cmdipc_msg_t *msg);
static void mock_pause(cmdipc_channel_t *ch, int pause);
static void mock_close(cmdipc_channel_t *ch, int graceful);
static void mock_free(cmdipc_channel_t *ch);

static const cmdipc_channel_ops_t mock_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION,
    .send = mock_send,
    .pause_reading = mock_pause,
    .close = mock_close,
    .free = mock_free,
};

/* Encodes an emitted message, parses it back and checks it against the
 * spec-v1 constraints (section 0 rule 15). Consumes msg. */
static json_t *take_emitted(vec_t *v, const char *chid, cmdipc_msg_t *msg) {
    size_t len = 0;
    char *text = cmdipc_msg_encode(msg, &len);
    json_t *parsed;
    json_error_t jerr;
    char err[1024];

    if (text == NULL) {
        vfail(v, "cmdipc_msg_encode() returned NULL for a %s message sent on %s",
              cmdipc_msg_type_name(cmdipc_msg_type(msg))
                  ? cmdipc_msg_type_name(cmdipc_msg_type(msg))
                  : "?",
              chid);
        cmdipc_msg_free(msg);
        return NULL;
    }
    cmdipc_msg_free(msg);
    parsed = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (parsed == NULL) {
        vfail(v, "message sent on %s is not valid JSON (%s): %.*s", chid, jerr.text,
              (int)(len > 600 ? 600 : len), text);
        cmdipc_free(text);
        return NULL;
    }
    if (cmdipc_test_emission_check(parsed, err, sizeof(err)) != 0) {
        vfail(v, "message sent on %s violates the spec-v1 schema (rule 15): %s", chid,
              err);
        vnote(v, "message: %.*s", (int)(len > 600 ? 600 : len), text);
    }
    cmdipc_free(text);
    return parsed;
}

static int mock_send(cmdipc_channel_t *ch, cmdipc_msg_t *msg) {
    mock_t *m = cmdipc_channel_impl(ch);
    vec_t *v = m->v;
    json_t *parsed = take_emitted(v, m->id, msg);

    v->changes++;
    if (m->closed) {
        char d[DUMP_MAX];
        dump_json(parsed, d, sizeof(d));
        vfail(v, "the registry sent on %s after the transport reported it closed: %s",
              m->id, d);
        json_decref(parsed);
        return CMDIPC_ECLOSED;
    }
    if (m->close_called) {
        json_decref(parsed);
        return CMDIPC_ECLOSED;
    }
    if (m->queue_max >= 0 && json_array_size(m->queue) >= (size_t)m->queue_max) {
        json_decref(parsed);
        return CMDIPC_EOVERLOAD;
    }
    if (parsed != NULL)
        json_array_append_new(m->queue, parsed);
    return 0;
}

static void mock_pause(cmdipc_channel_t *ch, int pause) {
    mock_t *m = cmdipc_channel_impl(ch);
    m->paused = pause != 0;
    m->v->changes++;
}

static void mock_close_timer_cb(uv_timer_t *t) {
    mock_t *m = t->data;

    m->close_pending = 0;
    uv_close((uv_handle_t *)t, NULL);
    if (!m->closed && m->ch != NULL) {
        m->closed = 1;
        m->v->changes++;
        cmdipc_channel_closed(m->ch, 0);
    }
}

static void mock_close(cmdipc_channel_t *ch, int graceful) {
    mock_t *m = cmdipc_channel_impl(ch);
    vec_t *v = m->v;

    (void)graceful;
    v->changes++;
    if (m->closed) {
        vfail(v, "ops->close() called on %s after the transport reported it closed",
              m->id);
        return;
    }
    if (m->close_called) {
        vfail(v, "ops->close() called twice on %s", m->id);
        return;
    }
    m->close_called = 1;
    /* Report closed from a later loop iteration, never from inside close(). */
    uv_timer_init(&v->loop, &m->timer);
    m->timer.data = m;
    m->close_pending = 1;
    uv_timer_start(&m->timer, mock_close_timer_cb, 0, 0);
}

static void mock_free(cmdipc_channel_t *ch) {
    mock_t *m = cmdipc_channel_impl(ch);

    m->freed++;
    m->v->changes++;
    if (!m->unattached_free && !m->closed)
        vfail(m->v, "ops->free() called on %s before the channel was reported closed",
              m->id);
    if (m->freed > 1)
        vfail(m->v, "ops->free() called %d times on %s", m->freed, m->id);
    m->ch = NULL;
}

static mock_t *find_mock(vec_t *v, const char *id) {
    mock_t *found = NULL;
    for (mock_t *m = v->mocks; m != NULL; m = m->next)
        if (strcmp(m->id, id) == 0)
            found = m; /* the most recent one with that id */
    return found;
}

static mock_t *mock_attach(vec_t *v, const char *id, long queue_max) {
    mock_t *m = xcalloc(1, sizeof(*m)), **tail;
    int rc;

    m->v = v;
    m->id = xstrdup(id);
    m->queue = json_array();
    m->queue_max = queue_max;
    for (tail = &v->mocks; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = m;
    rc = cmdipc_channel_new(id, &mock_ops, m, &m->ch);
    if (rc != 0) {
        vfail(v, "cmdipc_channel_new(\"%s\") = %s", id, cmdipc_err_name(rc));
        m->ch = NULL;
        return NULL;
    }
    rc = cmdipc_registry_attach(v->r, m->ch);
    if (rc != 0) {
        vfail(v, "cmdipc_registry_attach(\"%s\") = %s (%s)", id, cmdipc_err_name(rc),
              cmdipc_strerror(rc));
        m->unattached_free = 1;
        cmdipc_channel_free(m->ch);
        m->ch = NULL;
        return NULL;
    }
    m->attached = 1;
    v->changes++;
    return m;
}

static int mock_usable(vec_t *v, mock_t *m, const char *what) {
    if (!m->attached || m->ch == NULL || m->closed) {
        vfail(v, "vector error: cannot %s channel %s: it is closed", what, m->id);
        return 0;
    }
    if (m->close_called) {
        vfail(v, "cannot %s channel %s: the registry closed it (ops->close was called)",
              what, m->id);
        return 0;
    }
    return 1;
}

/* Delivers one inbound line, or buffers it while the channel is paused (as
 * a memory channel stops draining). */
static void mock_deliver(vec_t *v, mock_t *m, const char *buf, size_t len) {
    if (m->paused || m->held_pos < m->nheld) {
        if (m->nheld == m->held_cap) {
            size_t cap = m->held_cap ? m->held_cap * 2 : 8;
            line_t *p = realloc(m->held, cap * sizeof(*p));
            if (p == NULL)
                abort();
            m->held = p;
            m->held_cap = cap;
        }
        m->held[m->nheld].buf = malloc(len ? len : 1);
        if (m->held[m->nheld].buf == NULL)
            abort();
        memcpy(m->held[m->nheld].buf, buf, len);
        m->held[m->nheld].len = len;
        m->nheld++;
        return;
    }
    v->changes++;
    cmdipc_channel_deliver_line(m->ch, buf, len);
}

static int mock_has_deliverable(const mock_t *m) {
    return m->held_pos < m->nheld && !m->paused && m->ch != NULL && !m->closed &&
           !m->close_called;
}

static void flush_held(vec_t *v) {
    for (mock_t *m = v->mocks; m != NULL; m = m->next) {
        while (mock_has_deliverable(m)) {
            line_t *l = &m->held[m->held_pos++];
            v->changes++;
            cmdipc_channel_deliver_line(m->ch, l->buf, l->len);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Registry callbacks
 */

static uint64_t vec_clock(void *data) { return ((vec_t *)data)->now; }

static void vec_log(cmdipc_registry_t *r, cmdipc_log_level_t level, const char *message,
                    void *data) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    vec_t *v = data;
    char line[600];
    size_t slot = v->nlogs % LOG_RING;

    (void)r;
    snprintf(line, sizeof(line), "%s: %s", (unsigned)level < 4 ? names[level] : "?",
             message);
    free(v->logs[slot]);
    v->logs[slot] = xstrdup(line);
    v->nlogs++;
}

static void lcall_complete(vec_t *v, lcall_t *c, int status, json_t *value,
                           const char *message) {
    c->cb_calls++;
    v->changes++;
    if (c->cb_calls > 1) {
        vfail(v, "the completion of the %s call of step %zu ran %d times (exactly once)",
              c->kind, c->step, c->cb_calls);
        return;
    }
    c->done = 1;
    c->status = status;
    c->value = value ? json_deep_copy(value) : NULL;
    c->message = xstrdup(message);
}

static void exec_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data) {
    lcall_t *c = data;
    vec_t *v = c->v;

    (void)req;
    if (status == 0 && message != NULL)
        vfail(v, "executeCommand completed with status 0 and a message (\"%s\")",
              message);
    if (status < 0 && (message == NULL || result != NULL))
        vfail(v, "executeCommand failed (%s) with %s", cmdipc_err_name(status),
              message == NULL ? "a NULL message" : "a non-NULL result");
    c->req = NULL;
    lcall_complete(v, c, status, status == 0 ? result : NULL, message);
}

static void register_done(cmdipc_registry_t *r, int status, const char *command_id,
                          void *data) {
    cmd_spec_t *s = data;
    vec_t *v = s->v;

    (void)r;
    s->reg_cb_calls++;
    s->reg_status = status;
    s->reg_pending = 0;
    v->changes++;
    if (s->reg_cb_calls > 1)
        vfail(v, "the registration callback of %s ran %d times (exactly once)", s->id,
              s->reg_cb_calls);
    if (command_id == NULL || strcmp(command_id, s->id) != 0)
        vfail(v, "the registration callback of %s names command \"%s\"", s->id,
              command_id ? command_id : "(null)");
    if (s->lcall != NULL && s->reg_cb_calls == 1)
        lcall_complete(v, s->lcall, status, NULL,
                       status == 0 ? NULL : cmdipc_strerror(status));
}

static void answer_call(vec_t *v, const answer_t *a, cmdipc_call_t *call,
                        json_t *request) {
    if (a->has_fail) {
        cmdipc_call_fail(call, a->fail_status, a->fail_message);
    } else if (a->echo) {
        cmdipc_call_reply(call, request);
    } else if (a->expr != NULL) {
        char err[300];
        json_t *res = eval_expr(a->expr, request, 0, err, sizeof(err));
        if (res == NULL) {
            vfail(v, "vector error: $expr \"%s\": %s", a->expr, err);
            cmdipc_call_fail(call, CMDIPC_EINTERNAL, "conformance vector error");
            return;
        }
        cmdipc_call_reply(call, res);
        json_decref(res);
    } else {
        cmdipc_call_reply(call, a->returns);
    }
}

static void cmd_handler(cmdipc_call_t *call, json_t *request, void *data) {
    cmd_spec_t *s = data;
    vec_t *v = s->v;

    s->calls++;
    v->changes++;
    if (s->hang) {
        held_t *h = xcalloc(1, sizeof(*h)), **tail;
        h->spec = s;
        h->call = call;
        h->request = request ? json_incref(request) : NULL;
        for (tail = &v->held; *tail != NULL; tail = &(*tail)->next)
            ;
        *tail = h;
        return;
    }
    answer_call(v, &s->ans, call, request);
}

static void on_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                     void *data) {
    listener_t *l = data;

    (void)r;
    l->count++;
    l->v->changes++;
    json_decref(l->last);
    l->last = payload ? json_deep_copy(payload) : NULL;
    if (event_id == NULL || strcmp(event_id, l->event_id) != 0)
        vfail(l->v, "the listener of %s was called for event \"%s\"", l->event_id,
              event_id ? event_id : "(null)");
}

static void on_registry_closed(cmdipc_registry_t *r, void *data) {
    vec_t *v = data;
    (void)r;
    v->close_cb_called++;
}

/* ---------------------------------------------------------------------------
 * Running the loop
 */

static int any_close_pending(vec_t *v) {
    for (mock_t *m = v->mocks; m != NULL; m = m->next)
        if (m->close_pending)
            return 1;
    return 0;
}

static int any_deliverable(vec_t *v) {
    for (mock_t *m = v->mocks; m != NULL; m = m->next)
        if (mock_has_deliverable(m))
            return 1;
    return 0;
}

/* Runs the loop until two consecutive passes change nothing the runner can
 * see and the registry's deferred-completion queue is empty. */
static void settle(vec_t *v) {
    int stable = 0;

    for (int pass = 0; pass < SETTLE_MAX_PASSES; pass++) {
        unsigned long before = v->changes;
        flush_held(v);
        uv_run(&v->loop, UV_RUN_NOWAIT);
        if (v->changes == before && cmdipc_registry_deferred_count(v->r) == 0 &&
            !any_close_pending(v) && !any_deliverable(v)) {
            if (++stable >= 2)
                return;
        } else {
            stable = 0;
        }
    }
    vfail(v,
          "the loop did not settle within %d passes (deferred completions queued: %zu)",
          SETTLE_MAX_PASSES, cmdipc_registry_deferred_count(v->r));
}

/* ---------------------------------------------------------------------------
 * Setup
 */

static int parse_answer(vec_t *v, const json_t *def, answer_t *a, const char *what) {
    json_t *returns = json_object_get(def, "returns");
    json_t *fails = json_object_get(def, "fails");
    json_t *echo = json_object_get(def, "echo");

    if ((returns != NULL) + (fails != NULL) + (echo != NULL && json_is_true(echo)) > 1) {
        vfail(v, "vector error: %s: returns, fails and echo exclude each other", what);
        return -1;
    }
    if (echo != NULL && !json_is_boolean(echo)) {
        vfail(v, "vector error: %s: echo must be a boolean", what);
        return -1;
    }
    a->echo = json_is_true(echo);
    if (returns != NULL) {
        const char *mk = matcher_key(returns);
        json_t *e = json_is_object(returns) && json_object_size(returns) == 1
                        ? json_object_get(returns, "$expr")
                        : NULL;
        if (mk != NULL) {
            vfail(v, "vector error: %s: a matcher (%s) is not a return value", what, mk);
            return -1;
        }
        if (e != NULL) {
            char err[300];
            json_t *probe;
            if (!json_is_string(e)) {
                vfail(v, "vector error: %s: $expr must be a string", what);
                return -1;
            }
            probe = eval_expr(json_string_value(e), NULL, 1, err, sizeof(err));
            if (probe == NULL) {
                vfail(v, "vector error: %s: $expr \"%s\": %s", what, json_string_value(e),
                      err);
                return -1;
            }
            json_decref(probe);
            a->expr = xstrdup(json_string_value(e));
        } else {
            a->returns = json_deep_copy(returns);
        }
    }
    if (fails != NULL) {
        static const char *const keys[] = {"code", "message", NULL};
        json_t *code = json_object_get(fails, "code");
        json_t *message = json_object_get(fails, "message");
        if (!json_is_object(fails) || check_keys(v, fails, "fails", keys) != 0 ||
            !json_is_string(code) || (message != NULL && !json_is_string(message))) {
            if (!v->failed)
                vfail(v, "vector error: %s: fails must be {code, message?} with strings",
                      what);
            return -1;
        }
        if (!status_from_code(json_string_value(code), &a->fail_status)) {
            vfail(v, "vector error: %s: unknown error code \"%s\"", what,
                  json_string_value(code));
            return -1;
        }
        a->has_fail = 1;
        a->fail_message = message ? xstrdup(json_string_value(message)) : NULL;
    }
    return 0;
}

static void answer_free(answer_t *a) {
    json_decref(a->returns);
    free(a->expr);
    free(a->fail_message);
    memset(a, 0, sizeof(*a));
}

/* A command definition: localCommands[] entry, or the second element of a
 * registerCommand trigger. */
static cmd_spec_t *parse_spec(vec_t *v, const char *id, const json_t *def) {
    static const char *const keys[] = {"id",    "description", "schema", "returns",
                                       "fails", "hang",        "echo",   NULL};
    cmd_spec_t *s, **tail;
    json_t *desc = def ? json_object_get(def, "description") : NULL;
    json_t *schema = def ? json_object_get(def, "schema") : NULL;
    json_t *hang = def ? json_object_get(def, "hang") : NULL;
    char what[300];

    snprintf(what, sizeof(what), "command %s", id);
    if (def != NULL && (!json_is_object(def) || check_keys(v, def, what, keys) != 0)) {
        if (!v->failed)
            vfail(v, "vector error: %s: the definition must be an object", what);
        return NULL;
    }
    if ((desc != NULL && !json_is_string(desc)) ||
        (schema != NULL && !json_is_object(schema)) ||
        (hang != NULL && !json_is_boolean(hang))) {
        vfail(v,
              "vector error: %s: description must be a string, schema an object, hang a "
              "boolean",
              what);
        return NULL;
    }
    s = xcalloc(1, sizeof(*s));
    s->v = v;
    s->id = xstrdup(id);
    s->description = desc ? xstrdup(json_string_value(desc)) : NULL;
    s->schema = schema ? json_deep_copy(schema) : NULL;
    s->hang = json_is_true(hang);
    for (tail = &v->specs; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = s;
    if (def != NULL && parse_answer(v, def, &s->ans, what) != 0)
        return NULL;
    return s;
}

static int register_spec(vec_t *v, cmd_spec_t *s) {
    cmdipc_command_def_t def;
    int rc;

    memset(&def, 0, sizeof(def));
    def.version = CMDIPC_COMMAND_DEF_VERSION;
    def.id = s->id;
    def.description = s->description;
    def.schema = s->schema;
    rc = cmdipc_registry_register(v->r, &def, cmd_handler, s, register_done, s);
    if (rc == 0)
        s->reg_pending = 1;
    return rc;
}

static int get_uint_opt(vec_t *v, const json_t *obj, const char *key, uint64_t *out) {
    json_t *val = json_object_get(obj, key);
    if (val == NULL)
        return 0;
    if (!is_uint(val)) {
        vfail(v, "vector error: setup.registry.%s must be a non-negative integer", key);
        return -1;
    }
    *out = (uint64_t)json_integer_value(val);
    return 0;
}

static int do_setup(vec_t *v, const json_t *setup) {
    static const char *const setup_keys[] = {"registry", "peers", "description", NULL};
    static const char *const reg_keys[] = {"id",
                                           "routerChannel",
                                           "localCommands",
                                           "localEventListeners",
                                           "requestTtlMs",
                                           "eventTtlMs",
                                           "eventDedupMax",
                                           "maxInboundInFlight",
                                           "maxOutboundPending",
                                           "description",
                                           NULL};
    static const char *const peer_keys[] = {"channelId", "commandImplementations",
                                            "queueMax", "description", NULL};
    json_t *reg = json_object_get(setup, "registry");
    json_t *peers = json_object_get(setup, "peers");
    json_t *cmds, *listeners, *val;
    cmdipc_registry_opts_t opts;
    uint64_t u;
    size_t i;
    int rc;

    if (check_keys(v, setup, "setup", setup_keys) != 0)
        return -1;
    if (reg != NULL &&
        (!json_is_object(reg) || check_keys(v, reg, "setup.registry", reg_keys) != 0)) {
        if (!v->failed)
            vfail(v, "vector error: setup.registry must be an object");
        return -1;
    }
    if (peers != NULL && !json_is_array(peers)) {
        vfail(v, "vector error: setup.peers must be an array");
        return -1;
    }
    cmdipc_registry_opts_init(&opts);
    opts.log_cb = vec_log;
    opts.log_data = v;
    opts.log_level = CMDIPC_LOG_DEBUG;
    if ((val = json_object_get(reg, "id")) != NULL) {
        if (!json_is_string(val)) {
            vfail(v, "vector error: setup.registry.id must be a string");
            return -1;
        }
        opts.id = json_string_value(val);
    }
    if ((val = json_object_get(reg, "routerChannel")) != NULL) {
        if (!json_is_string(val)) {
            vfail(v, "vector error: setup.registry.routerChannel must be a string");
            return -1;
        }
        opts.router_channel = json_string_value(val);
    }
    if (get_uint_opt(v, reg, "requestTtlMs", &opts.request_ttl_ms) != 0 ||
        get_uint_opt(v, reg, "eventTtlMs", &opts.event_ttl_ms) != 0)
        return -1;
    u = opts.event_dedup_max;
    if (get_uint_opt(v, reg, "eventDedupMax", &u) != 0)
        return -1;
    opts.event_dedup_max = (size_t)u;
    u = opts.max_inbound_in_flight;
    if (get_uint_opt(v, reg, "maxInboundInFlight", &u) != 0)
        return -1;
    opts.max_inbound_in_flight = (unsigned)u;
    u = opts.max_outbound_pending;
    if (get_uint_opt(v, reg, "maxOutboundPending", &u) != 0)
        return -1;
    opts.max_outbound_pending = (unsigned)u;

    rc = cmdipc_registry_new(&v->loop, &opts, &v->r);
    if (rc != 0) {
        v->r = NULL;
        vfail(v, "cmdipc_registry_new() = %s (%s)", cmdipc_err_name(rc),
              cmdipc_strerror(rc));
        return -1;
    }
    v->now = CLOCK_START_MS;
    cmdipc__registry_set_clock(v->r, vec_clock, v);

    cmds = json_object_get(reg, "localCommands");
    if (cmds != NULL && !json_is_array(cmds)) {
        vfail(v, "vector error: localCommands must be an array");
        return -1;
    }
    json_array_foreach(cmds, i, val) {
        json_t *id = json_object_get(val, "id");
        cmd_spec_t *s;
        if (!json_is_string(id)) {
            vfail(v, "vector error: localCommands[%zu] needs a string id", i);
            return -1;
        }
        s = parse_spec(v, json_string_value(id), val);
        if (s == NULL)
            return -1;
        rc = register_spec(v, s);
        if (rc != 0) {
            vfail(v, "registering local command %s: %s (%s)", s->id, cmdipc_err_name(rc),
                  cmdipc_strerror(rc));
            return -1;
        }
    }
    settle(v);
    if (v->failed)
        return -1;
    for (cmd_spec_t *s = v->specs; s != NULL; s = s->next) {
        if (s->reg_cb_calls != 1 || s->reg_status != 0) {
            vfail(v, "local command %s: registration %s", s->id,
                  s->reg_cb_calls == 0 ? "never completed"
                                       : cmdipc_err_name(s->reg_status));
            return -1;
        }
    }

    listeners = json_object_get(reg, "localEventListeners");
    if (listeners != NULL && !json_is_array(listeners)) {
        vfail(v, "vector error: localEventListeners must be an array");
        return -1;
    }
    json_array_foreach(listeners, i, val) {
        listener_t *l, **tail;
        if (!json_is_string(val)) {
            vfail(v, "vector error: localEventListeners[%zu] must be a string", i);
            return -1;
        }
        l = xcalloc(1, sizeof(*l));
        l->v = v;
        l->event_id = xstrdup(json_string_value(val));
        for (tail = &v->listeners; *tail != NULL; tail = &(*tail)->next)
            ;
        *tail = l;
        rc = cmdipc_registry_on(v->r, l->event_id, on_event, l, NULL);
        if (rc != 0) {
            vfail(v, "cmdipc_registry_on(\"%s\") = %s", l->event_id, cmdipc_err_name(rc));
            return -1;
        }
    }

    json_array_foreach(peers, i, val) {
        json_t *id = json_object_get(val, "channelId");
        json_t *qmax = json_object_get(val, "queueMax");
        if (!json_is_object(val) || check_keys(v, val, "setup.peers[]", peer_keys) != 0 ||
            !json_is_string(id) || (qmax != NULL && !is_uint(qmax))) {
            if (!v->failed)
                vfail(v,
                      "vector error: setup.peers[%zu] needs a string channelId (and an "
                      "integer queueMax)",
                      i);
            return -1;
        }
        if (mock_attach(v, json_string_value(id),
                        qmax ? (long)json_integer_value(qmax) : -1) == NULL)
            return -1;
    }
    settle(v);
    if (v->failed)
        return -1;
    /* Each attach sends list.commands.request first: remove it. */
    for (mock_t *m = v->mocks; m != NULL; m = m->next) {
        json_t *first = json_array_get(m->queue, 0);
        json_t *type = json_object_get(first, "type");
        if (first == NULL || !json_is_string(type) ||
            strcmp(json_string_value(type), "list.commands.request") != 0) {
            char d[DUMP_MAX];
            dump_json(first, d, sizeof(d));
            vfail(
                v,
                "the first message on %s after attach must be list.commands.request, got "
                "%s",
                m->id, d);
            return -1;
        }
        json_array_remove(m->queue, 0);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Steps
 */

static const char *str_member(vec_t *v, const json_t *step, const char *key) {
    json_t *val = json_object_get(step, key);
    if (!json_is_string(val) || json_string_length(val) == 0) {
        vfail(v, "vector error: the step needs a non-empty string \"%s\"", key);
        return NULL;
    }
    return json_string_value(val);
}

static mock_t *mock_member(vec_t *v, const json_t *step, const char *key) {
    const char *id = str_member(v, step, key);
    mock_t *m;
    if (id == NULL)
        return NULL;
    m = find_mock(v, id);
    if (m == NULL)
        vfail(v, "vector error: no channel \"%s\" (not in setup.peers)", id);
    return m;
}

static void step_inbound(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "from", "message", "description",
                                       NULL};
    mock_t *m;
    json_t *msg, *resolved;
    char *text;

    if (check_keys(v, step, "an inbound step", keys) != 0)
        return;
    if ((m = mock_member(v, step, "from")) == NULL || !mock_usable(v, m, "deliver on"))
        return;
    msg = json_object_get(step, "message");
    if (msg == NULL) {
        vfail(v, "vector error: inbound step without message");
        return;
    }
    resolved = resolve_refs(v, msg);
    if (resolved == NULL)
        return;
    text = json_dumps(resolved, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(resolved);
    if (text == NULL) {
        vfail(v, "could not encode the inbound message");
        return;
    }
    mock_deliver(v, m, text, strlen(text));
    free(text);
}

static void step_inbound_raw(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "from",        "line",
                                       "lineHex",   "description", NULL};
    json_t *line = json_object_get(step, "line");
    json_t *hex = json_object_get(step, "lineHex");
    mock_t *m;

    if (check_keys(v, step, "an inbound-raw step", keys) != 0)
        return;
    if ((m = mock_member(v, step, "from")) == NULL || !mock_usable(v, m, "deliver on"))
        return;
    if ((line != NULL) == (hex != NULL) || (line && !json_is_string(line)) ||
        (hex && !json_is_string(hex))) {
        vfail(v,
              "vector error: inbound-raw needs exactly one of line (string) or lineHex");
        return;
    }
    if (line != NULL) {
        mock_deliver(v, m, json_string_value(line), json_string_length(line));
    } else {
        const char *h = json_string_value(hex), *end = NULL;
        size_t n = strlen(h), k = 0;
        char *buf;
        if (n % 2 != 0) {
            vfail(v, "vector error: lineHex has an odd number of digits");
            return;
        }
        buf = xcalloc(n / 2 + 1, 1);
        if (sodium_hex2bin((unsigned char *)buf, n / 2 + 1, h, n, NULL, &k, &end) != 0 ||
            end != h + n) {
            vfail(v, "vector error: lineHex holds a non-hex digit");
            free(buf);
            return;
        }
        mock_deliver(v, m, buf, k);
        free(buf);
    }
}

static void step_outbound(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "to", "expected", "description",
                                       NULL};
    json_t *expected = json_object_get(step, "expected");
    json_t *actual;
    mock_t *m;

    if (check_keys(v, step, "an outbound step", keys) != 0)
        return;
    if ((m = mock_member(v, step, "to")) == NULL)
        return;
    if (expected == NULL) {
        vfail(v, "vector error: outbound step without expected");
        return;
    }
    if (json_array_size(m->queue) == 0) {
        char e[DUMP_MAX];
        dump_json(expected, e, sizeof(e));
        vfail(v, "no message queued on %s; expected %s", m->id, e);
        return;
    }
    actual = json_incref(json_array_get(m->queue, 0));
    json_array_remove(m->queue, 0);
    if (!expect_match(v, expected, actual, "message")) {
        char a[DUMP_MAX * 2];
        dump_json(actual, a, sizeof(a));
        vnote(v, "actual message on %s: %s", m->id, a);
        for (size_t i = 0; i < json_array_size(m->queue); i++) {
            dump_json(json_array_get(m->queue, i), a, sizeof(a));
            vnote(v, "then queued on %s: %s", m->id, a);
        }
    }
    json_decref(actual);
}

static void report_queue(vec_t *v, mock_t *m) {
    char a[DUMP_MAX * 2];
    for (size_t i = 0; i < json_array_size(m->queue); i++) {
        dump_json(json_array_get(m->queue, i), a, sizeof(a));
        vnote(v, "queued on %s: %s", m->id, a);
    }
}

static void step_no_outbound(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "to", "description", NULL};
    mock_t *m;

    if (check_keys(v, step, "an assert-no-outbound step", keys) != 0)
        return;
    if ((m = mock_member(v, step, "to")) == NULL)
        return;
    if (json_array_size(m->queue) != 0) {
        vfail(v, "%zu unexpected message(s) queued on %s", json_array_size(m->queue),
              m->id);
        report_queue(v, m);
    }
}

static lcall_t *new_lcall(vec_t *v, const char *kind) {
    lcall_t *c = xcalloc(1, sizeof(*c)), **tail;
    c->v = v;
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    c->step = v->step;
    for (tail = &v->calls; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = c;
    v->last_call = c;
    return c;
}

static int cmp_ids(const void *a, const void *b) {
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x, y);
}

/* listCommands: the public commands (local and remote) as [{id}] sorted by id
 * (section 0 rule 8). */
static json_t *list_projection(vec_t *v, int *status) {
    cmdipc_command_info_t *info = NULL;
    size_t n = 0, k = 0;
    json_t **items, *out;
    int rc = cmdipc_registry_list_commands(v->r, &info, &n);

    *status = rc;
    if (rc != 0)
        return NULL;
    items = xcalloc(n + 1, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        if (info[i].is_private || info[i].id == NULL || info[i].id[0] == '_')
            continue;
        items[k++] = json_pack("{s:s}", "id", info[i].id);
    }
    qsort(items, k, sizeof(*items), cmp_ids);
    out = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(out, items[i]);
    free(items);
    cmdipc_command_info_free(info, n);
    return out;
}

static void step_local_call(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "trigger", "description", NULL};
    json_t *trigger = json_object_get(step, "trigger");
    json_t *args, *resolved = NULL;
    const char *kind;
    size_t nargs;

    if (check_keys(v, step, "a local-call step", keys) != 0)
        return;
    if (!json_is_object(trigger) || json_object_size(trigger) != 1) {
        vfail(v, "vector error: trigger must be an object with exactly one member");
        return;
    }
    kind = json_object_iter_key(json_object_iter(trigger));
    args = json_object_iter_value(json_object_iter(trigger));
    if (!json_is_array(args)) {
        vfail(v, "vector error: trigger %s takes an array of arguments", kind);
        return;
    }
    resolved = resolve_refs(v, args);
    if (resolved == NULL)
        return;
    nargs = json_array_size(resolved);

    if (strcmp(kind, "executeCommand") == 0) {
        json_t *id = json_array_get(resolved, 0), *opt = json_array_get(resolved, 2);
        cmdipc_exec_opts_t eo;
        lcall_t *c;
        int rc;
        if (nargs < 1 || nargs > 3 || !json_is_string(id) ||
            (opt != NULL && !json_is_object(opt))) {
            vfail(v, "vector error: executeCommand takes [id, request?, {timeoutMs}?]");
            goto out;
        }
        cmdipc_exec_opts_init(&eo);
        if (opt != NULL) {
            static const char *const okeys[] = {"timeoutMs", NULL};
            json_t *t = json_object_get(opt, "timeoutMs");
            if (check_keys(v, opt, "executeCommand options", okeys) != 0)
                goto out;
            if (t != NULL && !is_uint(t)) {
                vfail(v, "vector error: timeoutMs must be a non-negative integer");
                goto out;
            }
            if (t != NULL)
                eo.timeout_ms = (uint64_t)json_integer_value(t);
        }
        c = new_lcall(v, kind);
        rc = cmdipc_registry_execute(v->r, json_string_value(id),
                                     json_array_get(resolved, 1), &eo, exec_done, c,
                                     &c->req);
        if (rc != 0) {
            c->req = NULL;
            c->done = 1;
            c->status = rc;
            c->message = xstrdup(cmdipc_strerror(rc));
        } else {
            c->expect_cb = 1;
        }
    } else if (strcmp(kind, "emitEvent") == 0) {
        json_t *id = json_array_get(resolved, 0);
        lcall_t *c;
        int rc;
        if (nargs < 1 || nargs > 2 || !json_is_string(id)) {
            vfail(v, "vector error: emitEvent takes [eventId, payload?]");
            goto out;
        }
        c = new_lcall(v, kind);
        rc = cmdipc_registry_emit(v->r, json_string_value(id),
                                  json_array_get(resolved, 1));
        v->changes++;
        c->done = 1;
        c->status = rc;
        c->message = rc ? xstrdup(cmdipc_strerror(rc)) : NULL;
    } else if (strcmp(kind, "registerCommand") == 0) {
        json_t *id = json_array_get(resolved, 0);
        cmd_spec_t *s;
        lcall_t *c;
        int rc;
        if (nargs < 1 || nargs > 2 || !json_is_string(id)) {
            vfail(v, "vector error: registerCommand takes [id, definition?]");
            goto out;
        }
        s = parse_spec(v, json_string_value(id), json_array_get(resolved, 1));
        if (s == NULL)
            goto out;
        c = new_lcall(v, kind);
        rc = register_spec(v, s);
        if (rc != 0) {
            c->done = 1;
            c->status = rc;
            c->message = xstrdup(cmdipc_strerror(rc));
        } else {
            s->lcall = c;
            c->expect_cb = 1;
        }
    } else if (strcmp(kind, "listCommands") == 0) {
        lcall_t *c;
        int rc;
        json_t *list;
        if (nargs != 0) {
            vfail(v, "vector error: listCommands takes []");
            goto out;
        }
        c = new_lcall(v, kind);
        list = list_projection(v, &rc);
        c->done = 1;
        c->status = rc;
        c->value = list;
        c->message = rc ? xstrdup(cmdipc_strerror(rc)) : NULL;
    } else if (strcmp(kind, "unregisterCommand") == 0) {
        json_t *id = json_array_get(resolved, 0);
        lcall_t *c;
        int rc;
        if (nargs != 1 || !json_is_string(id)) {
            vfail(v, "vector error: unregisterCommand takes [id]");
            goto out;
        }
        c = new_lcall(v, kind);
        rc = cmdipc_registry_unregister(v->r, json_string_value(id));
        c->done = 1;
        c->status = rc;
        c->message = rc ? xstrdup(cmdipc_strerror(rc)) : NULL;
    } else if (strcmp(kind, "cancelLast") == 0) {
        lcall_t *c = v->last_call;
        if (nargs != 0) {
            vfail(v, "vector error: cancelLast takes []");
            goto out;
        }
        if (c == NULL || strcmp(c->kind, "executeCommand") != 0 || c->done ||
            c->req == NULL) {
            vfail(v,
                  "vector error: cancelLast needs a pending executeCommand as the last "
                  "local call");
            goto out;
        }
        cmdipc_req_cancel(c->req);
        v->changes++;
        /* The canceled call stays the last local call. */
    } else {
        vfail(v, "vector error: unknown trigger \"%s\"", kind);
    }
out:
    json_decref(resolved);
}

static void step_local_result(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "expected",    "expectedError",
                                       "pending",   "description", NULL};
    json_t *expected = json_object_get(step, "expected");
    json_t *experr = json_object_get(step, "expectedError");
    json_t *pending = json_object_get(step, "pending");
    lcall_t *c = v->last_call;

    if (check_keys(v, step, "a local-result step", keys) != 0)
        return;
    if (expected != NULL && experr != NULL) {
        vfail(v, "vector error: expected and expectedError exclude each other");
        return;
    }
    if (pending != NULL && !json_is_boolean(pending)) {
        vfail(v, "vector error: pending must be a boolean");
        return;
    }
    if (c == NULL) {
        vfail(v, "vector error: local-result without a preceding local-call");
        return;
    }
    if (json_is_true(pending)) {
        if (expected != NULL || experr != NULL) {
            vfail(v, "vector error: pending:true takes no expected value");
            return;
        }
        if (c->done)
            vfail(v, "the %s call of step %zu completed (%s) but must still be pending",
                  c->kind, c->step, cmdipc_err_name(c->status));
        return;
    }
    if (!c->done) {
        vfail(v, "the %s call of step %zu has not completed", c->kind, c->step);
        return;
    }
    if (experr != NULL) {
        static const char *const ekeys[] = {"code", "message", NULL};
        json_t *code = json_object_get(experr, "code");
        json_t *message = json_object_get(experr, "message");
        const char *wire, *name;
        if (!json_is_object(experr) ||
            check_keys(v, experr, "expectedError", ekeys) != 0 || !json_is_string(code)) {
            if (!v->failed)
                vfail(v, "vector error: expectedError must be {code, message?}");
            return;
        }
        if (c->status == 0) {
            char a[DUMP_MAX];
            dump_json(c->value, a, sizeof(a));
            vfail(v, "the %s call succeeded (value %s); expected error %s", c->kind, a,
                  json_string_value(code));
            return;
        }
        wire = cmdipc_err_wire_code(c->status);
        name = cmdipc_err_name(c->status);
        if (!((wire && strcmp(wire, json_string_value(code)) == 0) ||
              (name && strcmp(name, json_string_value(code)) == 0))) {
            vfail(
                v,
                "the %s call failed with %s (wire code %s, message \"%s\"); expected %s",
                c->kind, name ? name : "?", wire ? wire : "none",
                c->message ? c->message : "", json_string_value(code));
            return;
        }
        if (message != NULL) {
            json_t *actual = c->message ? json_string(c->message) : NULL;
            expect_match(v, message, actual, "error.message");
            json_decref(actual);
        }
        return;
    }
    if (c->status != 0) {
        vfail(v, "the %s call failed with %s (%s)", c->kind, cmdipc_err_name(c->status),
              c->message ? c->message : "");
        return;
    }
    if (expected != NULL)
        expect_match(v, expected, c->value, "result");
}

static void step_listener(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction",   "eventId",     "invocations",
                                       "lastPayload", "description", NULL};
    const char *id;
    json_t *inv = json_object_get(step, "invocations");
    json_t *last = json_object_get(step, "lastPayload");
    listener_t *l;

    if (check_keys(v, step, "an assert-local-listener step", keys) != 0)
        return;
    if ((id = str_member(v, step, "eventId")) == NULL)
        return;
    for (l = v->listeners; l != NULL; l = l->next)
        if (strcmp(l->event_id, id) == 0)
            break;
    if (l == NULL) {
        vfail(v, "vector error: no local listener for %s (setup.localEventListeners)",
              id);
        return;
    }
    if (inv != NULL && !is_uint(inv)) {
        vfail(v, "vector error: invocations must be a non-negative integer");
        return;
    }
    if (inv != NULL && (json_int_t)l->count != json_integer_value(inv)) {
        vfail(v, "listener of %s called %u time(s), expected %lld", id, l->count,
              (long long)json_integer_value(inv));
        return;
    }
    if (last != NULL)
        expect_match(v, last, l->last, "lastPayload");
}

static void step_close_channel(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "channel", "description", NULL};
    mock_t *m;

    if (check_keys(v, step, "a close-channel step", keys) != 0)
        return;
    if ((m = mock_member(v, step, "channel")) == NULL)
        return;
    if (!m->attached || m->ch == NULL || m->closed) {
        vfail(v, "vector error: channel %s is already closed", m->id);
        return;
    }
    /* The peer side closes: the transport reports it (even when the registry
     * had asked to close it and the report is still scheduled). */
    m->closed = 1;
    v->changes++;
    cmdipc_channel_closed(m->ch, UV_EOF);
}

static void step_advance_time(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "ms", "description", NULL};
    json_t *ms = json_object_get(step, "ms");

    if (check_keys(v, step, "an advance-time step", keys) != 0)
        return;
    if (!is_uint(ms)) {
        vfail(v, "vector error: advance-time needs a non-negative integer ms");
        return;
    }
    v->now += (uint64_t)json_integer_value(ms);
    cmdipc__registry_run_deadlines(v->r);
    v->changes++;
}

static int stat_value(const cmdipc_stats_t *st, const char *name, uint64_t *out) {
#define F(field)                                                                         \
    { #field, offsetof(cmdipc_stats_t, field) }
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {F(msgs_in),         F(msgs_out),          F(invalid_request_replies),
                  F(executes),        F(handled),           F(forwarded),
                  F(timeouts),        F(routes_expired),    F(canceled),
                  F(events_emitted),  F(events_received),   F(overloads),
                  F(slow_consumers),  F(channels_attached), F(disconnects),
                  F(pauses),          F(channels),          F(commands_local),
                  F(commands_remote), F(pending_calls),     F(routes),
                  F(calls_in_flight)};
#undef F
    static const char *const drops[CMDIPC_DROP__MAX] = {"invalid",     "unknown_type",
                                                        "unmatched",   "duplicate_event",
                                                        "late_answer", "closed"};

    if (strncmp(name, "dropped.", 8) == 0) {
        const char *reason = name + 8;
        for (int i = 0; i < CMDIPC_DROP__MAX; i++) {
            const char *lib = cmdipc_drop_reason_name((cmdipc_drop_reason_t)i);
            if ((drops[i] && strcmp(reason, drops[i]) == 0) ||
                (lib && strcmp(reason, lib) == 0)) {
                *out = st->dropped[i];
                return 1;
            }
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(name, fields[i].name) == 0) {
            memcpy(out, (const char *)st + fields[i].off, sizeof(*out));
            return 1;
        }
    }
    return 0;
}

static void step_assert_stats(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "stats", "description", NULL};
    json_t *stats = json_object_get(step, "stats");
    cmdipc_stats_t st;
    const char *key;
    json_t *want;

    if (check_keys(v, step, "an assert-stats step", keys) != 0)
        return;
    if (!json_is_object(stats)) {
        vfail(v, "vector error: assert-stats needs an object stats");
        return;
    }
    cmdipc_registry_stats(v->r, &st);
    json_object_foreach(stats, key, want) {
        uint64_t have;
        if (!is_uint(want)) {
            vfail(v, "vector error: stats.%s must be a non-negative integer", key);
            return;
        }
        if (!stat_value(&st, key, &have)) {
            vfail(v, "vector error: unknown statistic \"%s\"", key);
            return;
        }
        if (have != (uint64_t)json_integer_value(want))
            vfail(v, "statistic %s is %llu, expected %lld", key, (unsigned long long)have,
                  (long long)json_integer_value(want));
    }
}

static void step_attach_channel(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "channel", "queueMax", "description",
                                       NULL};
    const char *id;
    json_t *qmax = json_object_get(step, "queueMax");
    mock_t *old;

    if (check_keys(v, step, "an attach-channel step", keys) != 0)
        return;
    if ((id = str_member(v, step, "channel")) == NULL)
        return;
    if (qmax != NULL && !is_uint(qmax)) {
        vfail(v, "vector error: queueMax must be a non-negative integer");
        return;
    }
    old = find_mock(v, id);
    if (old != NULL && json_array_size(old->queue) != 0) {
        vfail(v,
              "vector error: assert the messages left on the old channel %s before "
              "re-attaching it",
              id);
        report_queue(v, old);
        return;
    }
    mock_attach(v, id, qmax ? (long)json_integer_value(qmax) : -1);
}

static void step_answer_held(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "commandId",   "returns", "fails",
                                       "echo",      "description", NULL};
    const char *id;
    held_t **pp, *h;
    answer_t a;

    if (check_keys(v, step, "an answer-held step", keys) != 0)
        return;
    if ((id = str_member(v, step, "commandId")) == NULL)
        return;
    for (pp = &v->held; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->spec->id, id) == 0)
            break;
    if (*pp == NULL) {
        vfail(v, "no held call of %s to answer (its handler was not called)", id);
        return;
    }
    h = *pp;
    memset(&a, 0, sizeof(a));
    if (parse_answer(v, step, &a, "answer-held") != 0) {
        answer_free(&a);
        return;
    }
    *pp = h->next;
    v->changes++;
    answer_call(v, &a, h->call, h->request);
    answer_free(&a);
    json_decref(h->request);
    free(h);
}

static void step_assert_channel(vec_t *v, const json_t *step) {
    static const char *const keys[] = {"direction", "channel",     "closed",
                                       "paused",    "description", NULL};
    json_t *closed = json_object_get(step, "closed");
    json_t *paused = json_object_get(step, "paused");
    mock_t *m;

    if (check_keys(v, step, "an assert-channel step", keys) != 0)
        return;
    if ((m = mock_member(v, step, "channel")) == NULL)
        return;
    if ((closed != NULL && !json_is_boolean(closed)) ||
        (paused != NULL && !json_is_boolean(paused))) {
        vfail(v, "vector error: closed and paused must be booleans");
        return;
    }
    if (closed != NULL) {
        int is_closed = m->close_called || m->closed;
        if (is_closed != json_is_true(closed))
            vfail(v, "channel %s is %s, expected %s", m->id,
                  is_closed ? "closed" : "open",
                  json_is_true(closed) ? "closed" : "open");
    }
    if (paused != NULL && m->paused != json_is_true(paused))
        vfail(v, "channel %s is %s, expected %s", m->id, m->paused ? "paused" : "reading",
              json_is_true(paused) ? "paused" : "reading");
}

static void run_step(vec_t *v, const json_t *step) {
    static const struct {
        const char *name;
        void (*fn)(vec_t *, const json_t *);
    } kinds[] = {
        {"inbound", step_inbound},
        {"outbound", step_outbound},
        {"assert-no-outbound", step_no_outbound},
        {"local-call", step_local_call},
        {"local-result", step_local_result},
        {"assert-local-listener", step_listener},
        {"close-channel", step_close_channel},
        /* Project extensions (docs/conformance.md). */
        {"inbound-raw", step_inbound_raw},
        {"advance-time", step_advance_time},
        {"assert-stats", step_assert_stats},
        {"attach-channel", step_attach_channel},
        {"answer-held", step_answer_held},
        {"assert-channel", step_assert_channel},
    };
    const char *dir = json_string_value(json_object_get(step, "direction"));

    if (!json_is_object(step) || dir == NULL) {
        vfail(v, "vector error: a step must be an object with a string direction");
        return;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(dir, kinds[i].name) == 0) {
            kinds[i].fn(v, step);
            return;
        }
    }
    vfail(v, "vector error: unknown step direction \"%s\"", dir);
}

/* ---------------------------------------------------------------------------
 * Teardown
 */

static void close_walk_cb(uv_handle_t *h, void *arg) {
    sbuf_t *names = arg;
    sb_addf(names, " %s%s", uv_handle_type_name(uv_handle_get_type(h)),
            uv_is_active(h) ? "(active)" : "");
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void teardown(vec_t *v) {
    snprintf(v->where, sizeof(v->where), "%s:teardown", v->name);
    if (v->r != NULL) {
        int i;
        cmdipc_registry_close(v->r, on_registry_closed, v);
        for (i = 0; i < DRAIN_MAX_PASSES && v->close_cb_called == 0; i++)
            uv_run(&v->loop, UV_RUN_NOWAIT);
        if (v->close_cb_called == 0)
            vfail(v, "the registry's close callback did not run");
        else if (v->close_cb_called > 1)
            vfail(v, "the registry's close callback ran %d times", v->close_cb_called);
        v->r = NULL;
    }
    /* Every call handed to a handler is answered exactly once, even after the
     * registry closed (the answer is dropped). */
    while (v->held != NULL) {
        held_t *h = v->held;
        v->held = h->next;
        cmdipc_call_reply(h->call, NULL);
        json_decref(h->request);
        free(h);
    }
    if (v->loop_inited) {
        int i, rc;
        for (i = 0; i < DRAIN_MAX_PASSES; i++)
            if (uv_run(&v->loop, UV_RUN_NOWAIT) == 0)
                break;
        if (uv_loop_alive(&v->loop)) {
            sbuf_t names = {0};
            uv_walk(&v->loop, close_walk_cb, &names);
            vfail(v, "the loop is still alive after the registry closed; handles:%s",
                  names.data ? names.data : " (none)");
            sb_free(&names);
            for (i = 0; i < 100; i++)
                uv_run(&v->loop, UV_RUN_NOWAIT);
        }
        rc = uv_loop_close(&v->loop);
        if (rc != 0)
            vfail(v, "uv_loop_close() = %s: something was not freed", uv_err_name(rc));
    }
    for (lcall_t *c = v->calls; c != NULL; c = c->next)
        if (c->expect_cb && c->cb_calls != 1)
            vfail(v,
                  "the completion of the %s call of step %zu ran %d times (exactly once)",
                  c->kind, c->step, c->cb_calls);
    for (cmd_spec_t *s = v->specs; s != NULL; s = s->next)
        if (s->reg_pending)
            vfail(v, "the registration callback of %s never ran", s->id);
    for (mock_t *m = v->mocks; m != NULL; m = m->next)
        if (m->attached && m->freed != 1)
            vfail(v, "channel %s: ops->free() ran %d times (exactly once)", m->id,
                  m->freed);
}

static void vec_free(vec_t *v) {
    while (v->mocks != NULL) {
        mock_t *m = v->mocks;
        v->mocks = m->next;
        for (size_t i = 0; i < m->nheld; i++)
            free(m->held[i].buf);
        free(m->held);
        json_decref(m->queue);
        free(m->id);
        free(m);
    }
    while (v->specs != NULL) {
        cmd_spec_t *s = v->specs;
        v->specs = s->next;
        free(s->id);
        free(s->description);
        json_decref(s->schema);
        answer_free(&s->ans);
        free(s);
    }
    while (v->calls != NULL) {
        lcall_t *c = v->calls;
        v->calls = c->next;
        json_decref(c->value);
        free(c->message);
        free(c);
    }
    while (v->listeners != NULL) {
        listener_t *l = v->listeners;
        v->listeners = l->next;
        free(l->event_id);
        json_decref(l->last);
        free(l);
    }
    for (size_t i = 0; i < LOG_RING; i++)
        free(v->logs[i]);
    json_decref(v->captures);
}

/* ---------------------------------------------------------------------------
 * Vectors
 */

static void run_behaviour(vec_t *v) {
    json_t *setup = json_object_get(v->doc, "setup");
    json_t *steps = json_object_get(v->doc, "steps");
    size_t n;

    snprintf(v->where, sizeof(v->where), "%s:setup", v->name);
    if (!json_is_object(setup) || !json_is_array(steps)) {
        vfail(v, "vector error: setup must be an object and steps an array");
        return;
    }
    if (uv_loop_init(&v->loop) != 0) {
        vfail(v, "uv_loop_init failed");
        return;
    }
    v->loop_inited = 1;
    v->captures = json_object();
    n = json_array_size(steps);
    if (do_setup(v, setup) == 0) {
        for (size_t i = 0; i < n && !v->failed; i++) {
            json_t *step = json_array_get(steps, i);
            const char *dir = json_string_value(json_object_get(step, "direction"));
            v->step = i + 1;
            snprintf(v->where, sizeof(v->where), "%s:%zu (%s)", v->name, i + 1,
                     dir ? dir : "?");
            run_step(v, step);
            if (!v->failed)
                settle(v);
        }
        if (!v->failed) {
            json_t *last = json_array_get(steps, n ? n - 1 : 0);
            const char *dir = json_string_value(json_object_get(last, "direction"));
            snprintf(v->where, sizeof(v->where), "%s:end", v->name);
            if (dir == NULL || strcmp(dir, "assert-no-outbound") != 0) {
                for (mock_t *m = v->mocks; m != NULL; m = m->next) {
                    if (json_array_size(m->queue) != 0) {
                        vfail(v, "%zu message(s) left unasserted on %s",
                              json_array_size(m->queue), m->id);
                        report_queue(v, m);
                    }
                }
            }
        }
    }
    teardown(v);
}

static void run_encoding(vec_t *v) {
    json_t *schema = json_object_get(v->doc, "schema");
    json_t *message = json_object_get(v->doc, "message");
    json_t *text = json_object_get(v->doc, "json");
    json_t *parsed, *reparsed;
    json_error_t jerr;
    char err[1024], *dumped, *encoded;
    cmdipc_msg_t *msg = NULL;
    cmdipc_decode_error_t derr;
    size_t len;
    int rc;

    snprintf(v->where, sizeof(v->where), "%s:schema", v->name);
    if (!json_is_string(text) || !json_is_object(message) ||
        (schema != NULL && !json_is_string(schema))) {
        vfail(v,
              "vector error: json must be a string, message an object, schema a string");
        return;
    }
    rc = schema != NULL ? cmdipc_test_schema_check_named(json_string_value(schema),
                                                         message, err, sizeof(err))
                        : cmdipc_test_schema_check(message, err, sizeof(err));
    if (rc != 0)
        vfail(v, "message does not satisfy %s: %s",
              schema ? json_string_value(schema) : "the schema of its type", err);

    snprintf(v->where, sizeof(v->where), "%s:parse", v->name);
    parsed = json_loadb(json_string_value(text), json_string_length(text),
                        JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (parsed == NULL) {
        vfail(v, "json does not parse: %s (column %d)", jerr.text, jerr.column);
    } else {
        if (!json_equal(parsed, message)) {
            char a[DUMP_MAX];
            dump_json(parsed, a, sizeof(a));
            vfail(v, "parsing json does not give message; parsed %s", a);
        }
        json_decref(parsed);
    }

    snprintf(v->where, sizeof(v->where), "%s:encode", v->name);
    dumped = json_dumps(message, JSON_COMPACT);
    if (dumped == NULL) {
        vfail(v, "could not dump message");
        return;
    }
    memset(&derr, 0, sizeof(derr));
    rc = cmdipc_msg_decode(dumped, strlen(dumped), NULL, &msg, &derr);
    if (rc != 0) {
        vfail(v, "cmdipc_msg_decode() = %s: %s (at byte %zu)", cmdipc_err_name(rc),
              derr.text, derr.position);
        free(dumped);
        return;
    }
    free(dumped);
    encoded = cmdipc_msg_encode(msg, &len);
    cmdipc_msg_free(msg);
    if (encoded == NULL) {
        vfail(v, "cmdipc_msg_encode() returned NULL");
        return;
    }
    reparsed = json_loadb(encoded, len, JSON_REJECT_DUPLICATES, &jerr);
    if (reparsed == NULL) {
        vfail(v, "cmdipc_msg_encode() output does not parse (%s): %.*s", jerr.text,
              (int)(len > 600 ? 600 : len), encoded);
    } else if (!json_equal(reparsed, message)) {
        vfail(v, "encoding message with cmdipc's codec changes it: %.*s",
              (int)(len > 600 ? 600 : len), encoded);
    } else if (cmdipc_test_emission_check(reparsed, err, sizeof(err)) != 0) {
        vfail(v, "cmdipc_msg_encode() output violates rule 15: %s", err);
    }
    json_decref(reparsed);
    cmdipc_free(encoded);
}

/* Runs one vector file; returns 1 if it passed. Prints its TAP line. */
static int run_file(const char *path, const char *name, int num) {
    vec_t v;
    json_error_t jerr;
    int passed;

    memset(&v, 0, sizeof(v));
    v.name = name;
    snprintf(v.where, sizeof(v.where), "%s", name);
    v.doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (v.doc == NULL) {
        vfail(&v, "vector error: not valid JSON: %s (line %d, column %d)", jerr.text,
              jerr.line, jerr.column);
    } else if (!json_is_object(v.doc)) {
        vfail(&v, "vector error: a vector must be a JSON object");
    } else if (json_object_get(v.doc, "json") && json_object_get(v.doc, "message")) {
        run_encoding(&v);
    } else if (json_object_get(v.doc, "setup") && json_object_get(v.doc, "steps")) {
        run_behaviour(&v);
    } else {
        vfail(&v,
              "vector error: neither an encoding vector (json + message) nor a behaviour "
              "vector (setup + steps)");
    }
    passed = !v.failed;
    printf("%s %d - %s\n", passed ? "ok" : "not ok", num, name);
    if (!passed || verbose) {
        const char *p = v.out.data;
        while (p != NULL && *p) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            printf("# %.*s\n", (int)n, p);
            p = nl ? nl + 1 : NULL;
        }
        if (v.nlogs > 0) {
            size_t first = v.nlogs > LOG_RING ? v.nlogs - LOG_RING : 0;
            size_t from = v.nlogs > 24 ? v.nlogs - 24 : first;
            printf("# registry log (last %zu of %zu lines):\n", v.nlogs - from, v.nlogs);
            for (size_t i = from; i < v.nlogs; i++)
                printf("#   %s\n", v.logs[i % LOG_RING]);
        }
    }
    fflush(stdout);
    vec_free(&v);
    json_decref(v.doc);
    sb_free(&v.out);
    return passed;
}

/* ---------------------------------------------------------------------------
 * Files
 */

typedef struct {
    char *path; /* to open */
    char *name; /* to print */
} entry_t;

typedef struct {
    entry_t *items;
    size_t n, cap;
} entries_t;

static void add_entry(entries_t *e, const char *path, const char *name) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        entry_t *p = realloc(e->items, cap * sizeof(*p));
        if (p == NULL)
            abort();
        e->items = p;
        e->cap = cap;
    }
    e->items[e->n].path = xstrdup(path);
    e->items[e->n].name = xstrdup(name);
    e->n++;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_json(const char *s) {
    size_t n = strlen(s);
    return n > 5 && strcmp(s + n - 5, ".json") == 0;
}

/* Collects *.json under dir (sorted, recursive). name is the printed prefix. */
static int collect_dir(entries_t *e, const char *dir, const char *prefix, int depth) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **p;
            cap = cap ? cap * 2 : 32;
            p = realloc(names, cap * sizeof(*p));
            if (p == NULL)
                abort();
            names = p;
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096], name[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "/" : "", names[i]);
        if (stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < 32)
                collect_dir(e, path, name, depth + 1);
            else if (S_ISREG(st.st_mode) && ends_with_json(names[i]))
                add_entry(e, path, name);
        }
        free(names[i]);
    }
    free(names);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: conformance [-v] PATH...\n"
            "  Runs cmd-ipc spec-v1 conformance vectors (files, or directories searched\n"
            "  recursively for *.json) against cmdipc and prints TAP.\n"
            "  -v  print the details and registry log of passing vectors too\n"
            "  A PATH that does not exist is skipped, or a failure when CI=true.\n");
}

int main(int argc, char **argv) {
    entries_t e = {0};
    const char *ci = getenv("CI");
    int in_ci = ci != NULL && strcmp(ci, "true") == 0;
    char **missing = NULL;
    char **missing_why = NULL;
    size_t nmissing = 0, npaths = 0;
    int failed = 0, num = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    missing = xcalloc((size_t)argc, sizeof(*missing));
    missing_why = xcalloc((size_t)argc, sizeof(*missing_why));
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
            continue;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        }
        npaths++;
        if (stat(argv[i], &st) != 0) {
            missing[nmissing] = argv[i];
            missing_why[nmissing++] = xstrdup(strerror(errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (collect_dir(&e, argv[i], "", 0) != 0) {
                missing[nmissing] = argv[i];
                missing_why[nmissing++] = xstrdup(strerror(errno));
            }
        } else {
            add_entry(&e, argv[i], argv[i]);
        }
    }
    if (npaths == 0) {
        usage();
        return 2;
    }
    if (e.n == 0 && nmissing > 0 && !in_ci) {
        printf("1..0 # SKIP %s not found: %s\n", missing[0], missing_why[0]);
    } else if (e.n == 0 && nmissing == 0 && !in_ci) {
        printf("1..0 # SKIP no vectors found\n");
    } else {
        printf("1..%zu\n", e.n + nmissing + (e.n == 0 && nmissing == 0 ? 1 : 0));
        for (size_t i = 0; i < nmissing; i++) {
            num++;
            if (in_ci) {
                printf("not ok %d - %s\n# %s not found: %s (CI=true: vectors are "
                       "required)\n",
                       num, missing[i], missing[i], missing_why[i]);
                failed++;
            } else {
                printf("ok %d - %s # SKIP not found: %s\n", num, missing[i],
                       missing_why[i]);
            }
        }
        if (e.n == 0 && nmissing == 0) {
            printf("not ok 1 - no vectors found (CI=true)\n");
            failed++;
        }
        for (size_t i = 0; i < e.n; i++)
            if (!run_file(e.items[i].path, e.items[i].name, ++num))
                failed++;
    }
    for (size_t i = 0; i < e.n; i++) {
        free(e.items[i].path);
        free(e.items[i].name);
    }
    for (size_t i = 0; i < nmissing; i++)
        free(missing_why[i]);
    free(missing);
    free(missing_why);
    free(e.items);
    return failed ? 1 : 0;
}
