/* The decode fuzz target: every input goes through the fast decoder (the
 * envelope scanner) and through the reference decoder (jansson parses the
 * whole line); both must accept or reject it alike and, when they accept,
 * give the same message. An accepted message must also re-encode to a line
 * that decodes to the same message. Built for libFuzzer (clang
 * -fsanitize=fuzzer) and linked into fuzz-smoke for make test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

static void report(const char *what, const uint8_t *data, size_t size, int ra, int rb) {
    fprintf(stderr, "fuzz_decode: %s (fast %s, reference %s) on %zu bytes: ", what,
            cmdipc_err_name(ra), cmdipc_err_name(rb), size);
    for (size_t i = 0; i < size && i < 400; i++) {
        unsigned c = data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc((int)c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
    abort();
}

static int str_eq(const char *a, const char *b) {
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int same(cmdipc_msg_t *a, cmdipc_msg_t *b) {
    if (cmdipc_msg_type(a) != cmdipc_msg_type(b) || cmdipc_msg_status(a) != cmdipc_msg_status(b))
        return 0;
    if (!str_eq(cmdipc_msg_id(a), cmdipc_msg_id(b)) ||
        !str_eq(cmdipc_msg_thid(a), cmdipc_msg_thid(b)) ||
        !str_eq(cmdipc_msg_name(a), cmdipc_msg_name(b)) ||
        !str_eq(cmdipc_msg_error_message(a), cmdipc_msg_error_message(b)) ||
        !str_eq(a->description, b->description))
        return 0;
    json_t *pa = cmdipc_msg_payload(a), *pb = cmdipc_msg_payload(b);
    if (pa == NULL || pb == NULL)
        return pa == pb;
    return json_equal(pa, pb);
}

/* Whatever the scanner accepts as a whole, the json_t builder must turn into
 * the value jansson reads from it: same tree, same member order, same
 * numbers (compared by json_equal and by their compact dumps). */
static void build_vs_jansson(const uint8_t *data, size_t size) {
    cmdipc_limits_t lim;
    cmdipc__env_t env;
    cmdipc_limits_init(&lim);
    if (size == 0 || cmdipc__scan((const char *)data, size, &lim, &env, NULL) != 0)
        return;
    json_error_t je;
    json_t *ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    json_t *got = cmdipc__json_build((const char *)data, size);
    if (ref == NULL || got == NULL || !json_equal(ref, got))
        report("built value differs from jansson's", data, size, 0, ref == NULL);
    char *dr = json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY);
    char *dg = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dr == NULL || dg == NULL || strcmp(dr, dg) != 0)
        report("built value dumps differently from jansson's", data, size, 0, 0);
    free(dr);
    free(dg);
    json_decref(ref);
    json_decref(got);
}

void cmdipc_fuzz_decode(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    cmdipc_msg_t *a = NULL, *b = NULL, *c = NULL;
    cmdipc_decode_error_t ea, eb;
    int ra = cmdipc_msg_decode(buf, size, NULL, &a, &ea);
    int rb = cmdipc__msg_decode_jansson(buf, size, NULL, &b, &eb);
    if ((ra == 0) != (rb == 0))
        report("accept/reject differ", data, size, ra, rb);
    if (ra == 0) {
        if (!same(a, b))
            report("decoded messages differ", data, size, ra, rb);
        size_t len;
        char *text = cmdipc_msg_encode(a, &len);
        if (text == NULL)
            report("re-encoding failed", data, size, ra, rb);
        int rc = cmdipc_msg_decode(text, len, NULL, &c, &ea);
        if (rc != 0 || !same(a, c))
            report("re-encoded message differs", data, size, rc, rb);
        cmdipc_free(text);
        /* The library's own JSON writer against jansson's reader. */
        json_t *pa = cmdipc_msg_payload(a);
        if (pa != NULL) {
            cmdipc__buf_t out;
            json_error_t je;
            cmdipc__buf_init(&out);
            if (cmdipc__buf_put_json(&out, pa) != 0)
                report("writing the payload failed", data, size, ra, rb);
            json_t *back = json_loadb(out.data, out.len, JSON_DECODE_ANY, &je);
            if (back == NULL || !json_equal(back, pa))
                report("written payload reads back differently", data, size, ra, rb);
            json_decref(back);
            cmdipc__buf_free(&out);
        }
    }
    cmdipc_msg_free(a);
    cmdipc_msg_free(b);
    cmdipc_msg_free(c);
    build_vs_jansson(data, size);
}

#ifdef CMDIPC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        cmdipc__global_init();
        json_object_seed(1);
        ready = 1;
    }
    cmdipc_fuzz_decode(data, size);
    return 0;
}
#endif
