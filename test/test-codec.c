/* The message codec (lib/codec.c): decoding with validation and limits,
 * encoding, the accessors, the execute id of rejected lines, the UUID
 * generator, cmdipc__json_check and the status table (lib/errors.c).
 * PROTOCOL.md section 0 rules 1, 13-15; SECURITY.md (c) tests 4 and 5, (e). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* ---------------------------------------------------------------------------
 * Helpers. */

/* Decodes text (with the default limits) and asserts success. */
static cmdipc_msg_t *decode_ok_n(const char *file, int line, const char *text, size_t len,
                                 const cmdipc_limits_t *lim) {
    cmdipc_msg_t *m = NULL;
    cmdipc_decode_error_t err;
    int rc = cmdipc_msg_decode(text, len, lim, &m, &err);
    if (rc != 0)
        harness__fail(file, line, "decode failed: %s (%s at byte %zu): %.300s",
                      cmdipc_err_name(rc), err.text, err.position, text);
    if (m == NULL)
        harness__fail(file, line, "decode returned 0 without a message");
    ASSERT_EQ(err.status, 0);
    ASSERT_STR_EQ(err.execute_id, "");
    return m;
}
#define DECODE_OK(text) decode_ok_n(__FILE__, __LINE__, (text), strlen(text), NULL)

/* Decodes len bytes, asserts a failure that left *out NULL and filled err;
 * returns the status. */
static int decode_fail(const char *buf, size_t len, const cmdipc_limits_t *lim,
                       cmdipc_decode_error_t *err) {
    cmdipc_msg_t *m = (cmdipc_msg_t *)&m; /* must be overwritten with NULL */
    memset(err, 0x5a, sizeof(*err));
    int rc = cmdipc_msg_decode(buf, len, lim, &m, err);
    if (rc == 0) {
        fprintf(stderr, "unexpectedly accepted: %.300s\n", buf);
        cmdipc_msg_free(m);
    }
    ASSERT_NE(rc, 0);
    ASSERT_NULL(m);
    ASSERT_EQ(err->status, rc);
    ASSERT_NOT_NULL(memchr(err->text, '\0', sizeof(err->text)));
    ASSERT_NE(err->text[0], '\0');
    ASSERT_NOT_NULL(memchr(err->execute_id, '\0', sizeof(err->execute_id)));
    return rc;
}

/* The status of decoding a string literal (embedded NULs included). */
#define REJECT_LIT(expected, lit)                                                        \
    do {                                                                                 \
        cmdipc_decode_error_t e_;                                                        \
        ASSERT_STATUS((expected), decode_fail((lit), sizeof(lit) - 1, NULL, &e_));       \
    } while (0)

#define REJECT(expected, text)                                                           \
    do {                                                                                 \
        cmdipc_decode_error_t e_;                                                        \
        ASSERT_STATUS((expected), decode_fail((text), strlen(text), NULL, &e_));         \
    } while (0)

static json_t *parse(const char *text, size_t len) {
    json_error_t e;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (v == NULL)
        fprintf(stderr, "jansson: %s at %d: %.300s\n", e.text, e.position, text);
    ASSERT_NOT_NULL(v);
    return v;
}

static json_t *pj(const char *text) { return parse(text, strlen(text)); }

/* ---- the structural check of what cmdipc emits (spec/schemas, rule 15) ---- */

static int only_keys(const json_t *o, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(k, allowed[i]) == 0)
                ok = 1;
        if (!ok)
            return 0;
    }
    return 1;
}

static int nonempty_str(const json_t *v) {
    return json_is_string(v) && json_string_length(v) > 0;
}

#define CHECK(cond, why)                                                                 \
    do {                                                                                 \
        if (!(cond))                                                                     \
            return (why);                                                                \
    } while (0)

static const char *check_def(const json_t *d) {
    static const char *const keys[] = {"id", "description", "schema", NULL};
    static const char *const schema_keys[] = {"request", "response", NULL};
    CHECK(json_is_object(d), "command definition is not an object");
    CHECK(only_keys(d, keys), "command definition has an extra member");
    CHECK(nonempty_str(json_object_get(d, "id")), "command id missing or empty");
    json_t *desc = json_object_get(d, "description");
    CHECK(desc == NULL || json_is_string(desc), "description is not a string");
    json_t *s = json_object_get(d, "schema");
    CHECK(s == NULL || json_is_object(s), "schema is not an object");
    CHECK(s == NULL || only_keys(s, schema_keys), "schema has an extra member");
    CHECK(s == NULL || json_object_get(s, "request") == NULL ||
              !json_is_null(json_object_get(s, "request")),
          "schema.request is null");
    return NULL;
}

/* NULL when msg is what spec-v1 allows cmdipc to emit, else the reason. */
static const char *check_emitted(const json_t *msg) {
    static const char *const k_reg_req[] = {"id", "type", "command", NULL};
    static const char *const k_resp[] = {"id", "type", "thid", "response", NULL};
    static const char *const k_list_req[] = {"id", "type", NULL};
    static const char *const k_list_resp[] = {"id", "type", "thid", "commands", NULL};
    static const char *const k_exec_req[] = {"id", "type", "commandId", "request", NULL};
    static const char *const k_event[] = {"id", "type", "eventId", "payload", NULL};
    static const char *const k_ok[] = {"ok", NULL};
    static const char *const k_ok_result[] = {"ok", "result", NULL};
    static const char *const k_fail[] = {"ok", "error", NULL};
    static const char *const k_error[] = {"code", "message", NULL};
    static const char *const codes[] = {"not_found", "invalid_request", "internal_error",
                                        "timeout", "channel_disconnected"};

    CHECK(json_is_object(msg), "not an object");
    CHECK(nonempty_str(json_object_get(msg, "id")), "id missing or empty");
    const char *type = json_string_value(json_object_get(msg, "type"));
    CHECK(type != NULL, "type missing");
    if (strcmp(type, "register.command.request") == 0) {
        CHECK(only_keys(msg, k_reg_req), "extra member");
        return check_def(json_object_get(msg, "command"));
    }
    if (strcmp(type, "list.commands.request") == 0) {
        CHECK(only_keys(msg, k_list_req), "extra member");
        return NULL;
    }
    if (strcmp(type, "list.commands.response") == 0) {
        CHECK(only_keys(msg, k_list_resp), "extra member");
        CHECK(nonempty_str(json_object_get(msg, "thid")), "thid missing or empty");
        json_t *cmds = json_object_get(msg, "commands");
        CHECK(json_is_array(cmds), "commands is not an array");
        for (size_t i = 0; i < json_array_size(cmds); i++) {
            const char *why = check_def(json_array_get(cmds, i));
            if (why != NULL)
                return why;
        }
        return NULL;
    }
    if (strcmp(type, "execute.command.request") == 0) {
        CHECK(only_keys(msg, k_exec_req), "extra member");
        CHECK(nonempty_str(json_object_get(msg, "commandId")),
              "commandId missing or empty");
        json_t *req = json_object_get(msg, "request");
        CHECK(req == NULL || !json_is_null(req), "request is null");
        return NULL;
    }
    if (strcmp(type, "event") == 0) {
        CHECK(only_keys(msg, k_event), "extra member");
        CHECK(nonempty_str(json_object_get(msg, "eventId")), "eventId missing or empty");
        json_t *p = json_object_get(msg, "payload");
        CHECK(p == NULL || !json_is_null(p), "payload is null");
        return NULL;
    }
    int exec = strcmp(type, "execute.command.response") == 0;
    CHECK(exec || strcmp(type, "register.command.response") == 0, "unknown type");
    CHECK(only_keys(msg, k_resp), "extra member");
    CHECK(nonempty_str(json_object_get(msg, "thid")), "thid missing or empty");
    json_t *resp = json_object_get(msg, "response");
    CHECK(json_is_object(resp), "response is not an object");
    json_t *ok = json_object_get(resp, "ok");
    CHECK(json_is_boolean(ok), "response.ok is not a boolean");
    if (json_is_true(ok)) {
        CHECK(only_keys(resp, exec ? k_ok_result : k_ok), "extra member in response");
        json_t *res = json_object_get(resp, "result");
        CHECK(res == NULL || !json_is_null(res), "result is null");
        return NULL;
    }
    CHECK(only_keys(resp, k_fail), "extra member in response");
    json_t *e = json_object_get(resp, "error");
    if (!exec) {
        CHECK(json_is_string(e) && strcmp(json_string_value(e), "duplicate_command") == 0,
              "register error is not \"duplicate_command\"");
        return NULL;
    }
    CHECK(json_is_object(e) && only_keys(e, k_error), "error is not {code, message}");
    CHECK(json_is_string(json_object_get(e, "message")), "error.message missing");
    const char *code = json_string_value(json_object_get(e, "code"));
    CHECK(code != NULL, "error.code missing");
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return NULL;
    return "error.code is not a spec-v1 code";
}

/* Compact: no whitespace outside strings, one line. */
static void check_compact(const char *text, size_t len) {
    int in_str = 0;
    ASSERT_NULL(memchr(text, '\n', len));
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            fprintf(stderr, "whitespace at byte %zu: %s\n", i, text);
            ASSERT(!"encoding is not compact");
        }
    }
    ASSERT_EQ(in_str, 0);
}

/* Encodes m; checks it is compact, valid for spec-v1 and stable (decoding
 * and re-encoding it gives the same bytes). Returns the encoding parsed. */
static json_t *encode_checked_at(const char *file, int line, const cmdipc_msg_t *m) {
    size_t len = 12345;
    char *text = cmdipc_msg_encode(m, &len);
    ASSERT_NOT_NULL(text);
    ASSERT_UEQ(strlen(text), len);
    check_compact(text, len);
    json_t *v = parse(text, len);
    const char *why = check_emitted(v);
    if (why != NULL)
        harness__fail(file, line, "emitted message invalid (%s): %s", why, text);
    cmdipc_msg_t *again = decode_ok_n(file, line, text, len, NULL);
    size_t len2;
    char *text2 = cmdipc_msg_encode(again, &len2);
    ASSERT_NOT_NULL(text2);
    ASSERT_UEQ(len2, len);
    ASSERT_MEM_EQ(text2, text, len);
    cmdipc_free(text2);
    cmdipc_msg_free(again);
    cmdipc_free(text);
    return v;
}
#define ENCODE_CHECKED(m) encode_checked_at(__FILE__, __LINE__, (m))

/* Decodes in, re-encodes it and compares the result with expect (in itself
 * when expect is NULL). The encoding holds "null" only if expect does.
 * Returns the decoded message. */
static cmdipc_msg_t *round_trip_at(const char *file, int line, const char *in,
                                   const char *expect) {
    cmdipc_msg_t *m = decode_ok_n(file, line, in, strlen(in), NULL);
    size_t len;
    char *text = cmdipc_msg_encode(m, &len);
    ASSERT_NOT_NULL(text);
    const char *want_text = expect ? expect : in;
    if (strstr(want_text, "null") == NULL && strstr(text, "null") != NULL)
        harness__fail(file, line, "encoding holds null: %s", text);
    cmdipc_free(text);
    json_t *got = encode_checked_at(file, line, m);
    json_t *want = pj(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        harness__fail(file, line, "round trip differs:\n  in   %s\n  want %s\n  got  %s",
                      in, want_text, g);
    }
    json_decref(got);
    json_decref(want);
    return m;
}
#define ROUND_TRIP(in, expect) round_trip_at(__FILE__, __LINE__, (in), (expect))

/* Asserts the accessors of a decoded message. */
static void check_msg(const char *file, int line, cmdipc_msg_t *m, cmdipc_msg_type_t type,
                      const char *id, const char *thid, const char *name, int status,
                      const char *payload_json) {
    if (cmdipc_msg_type(m) != type)
        harness__fail(file, line, "type %d, expected %d", (int)cmdipc_msg_type(m),
                      (int)type);
    harness__str(file, line, "cmdipc_msg_id(m)", "id", cmdipc_msg_id(m), id, 1);
    harness__str(file, line, "cmdipc_msg_thid(m)", "thid", cmdipc_msg_thid(m), thid, 1);
    harness__str(file, line, "cmdipc_msg_name(m)", "name", cmdipc_msg_name(m), name, 1);
    harness__status(file, line, "cmdipc_msg_status(m)", status, cmdipc_msg_status(m));
    json_t *want = payload_json ? pj(payload_json) : NULL;
    harness__json(file, line, "cmdipc_msg_payload(m)", "payload", cmdipc_msg_payload(m),
                  want);
    /* Borrowed and stable. */
    if (cmdipc_msg_payload(m) != cmdipc_msg_payload(m))
        harness__fail(file, line, "payload pointer changes");
    json_decref(want);
}
#define CHECK_MSG(m, type, id, thid, name, status, payload)                              \
    check_msg(__FILE__, __LINE__, (m), (type), (id), (thid), (name), (status), (payload))

/* ---------------------------------------------------------------------------
 * Round trips. */

TEST(type_names) {
    static const char *const names[] = {NULL,
                                        "register.command.request",
                                        "register.command.response",
                                        "list.commands.request",
                                        "list.commands.response",
                                        "execute.command.request",
                                        "execute.command.response",
                                        "event"};
    for (int t = CMDIPC_MSG_REGISTER_REQUEST; t <= CMDIPC_MSG_EVENT; t++)
        ASSERT_STR_EQ(cmdipc_msg_type_name((cmdipc_msg_type_t)t), names[t]);
    ASSERT_NULL(cmdipc_msg_type_name((cmdipc_msg_type_t)0));
    ASSERT_NULL(cmdipc_msg_type_name((cmdipc_msg_type_t)8));

    cmdipc_limits_t lim;
    memset(&lim, 0, sizeof(lim));
    cmdipc_limits_init(&lim);
    ASSERT_EQ(lim.version, CMDIPC_LIMITS_VERSION);
    ASSERT_UEQ(lim.max_line, 1024 * 1024);
    ASSERT_EQ(lim.max_depth, 64);
    ASSERT_UEQ(lim.max_containers, 65536);
}

TEST(round_trip_register_request) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP("{\"id\":\"r1\",\"type\":\"register.command.request\",\"command\":{"
                   "\"id\":\"math.add\"}}",
                   NULL);
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_REQUEST, "r1", NULL, "math.add", 0, NULL);
    ASSERT_NULL(cmdipc_msg_error_message(m));
    cmdipc_msg_free(m);

    m = ROUND_TRIP(
        "{\"id\":\"r2\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"math.add\",\"description\":\"Adds \\\"a\\\" and\\nb \\u00e9\","
        "\"schema\":{\"request\":{\"type\":\"object\",\"properties\":{\"a\":{"
        "\"type\":\"number\"}}},\"response\":{\"type\":\"number\"}}}}",
        NULL);
    CHECK_MSG(
        m, CMDIPC_MSG_REGISTER_REQUEST, "r2", NULL, "math.add", 0,
        "{\"request\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"}}},"
        "\"response\":{\"type\":\"number\"}}");
    cmdipc_msg_free(m);

    /* Only one of request/response; an empty schema; a description alone. */
    m = ROUND_TRIP(
        "{\"id\":\"r3\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"x\",\"schema\":{\"response\":true}}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_REQUEST, "r3", NULL, "x", 0, "{\"response\":true}");
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"r4\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"x\",\"schema\":{}}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_REQUEST, "r4", NULL, "x", 0, "{}");
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"r5\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"x\",\"description\":\"\"}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_REQUEST, "r5", NULL, "x", 0, NULL);
    cmdipc_msg_free(m);

    /* null description and schema are absent, and not re-emitted. */
    m = ROUND_TRIP(
        "{\"id\":\"r6\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"x\",\"description\":null,\"schema\":null}}",
        "{\"id\":\"r6\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"x\"}}");
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_REQUEST, "r6", NULL, "x", 0, NULL);
    cmdipc_msg_free(m);
}

TEST(round_trip_register_response) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP(
        "{\"id\":\"a1\",\"type\":\"register.command.response\",\"thid\":\"r1\","
        "\"response\":{\"ok\":true}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_RESPONSE, "a1", "r1", NULL, 0, NULL);
    ASSERT_NULL(cmdipc_msg_error_message(m));
    cmdipc_msg_free(m);

    m = ROUND_TRIP(
        "{\"id\":\"a2\",\"type\":\"register.command.response\",\"thid\":\"r2\","
        "\"response\":{\"ok\":false,\"error\":\"duplicate_command\"}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_RESPONSE, "a2", "r2", NULL, CMDIPC_EDUPLICATE, NULL);
    ASSERT_NULL(cmdipc_msg_error_message(m)); /* only execute responses carry one */
    cmdipc_msg_free(m);
}

TEST(register_response_any_error_string_is_duplicate) {
    static const char *const errors[] = {"\"duplicate_command\"", "\"\"", "\"not_found\"",
                                         "\"something new\""};
    char text[256];
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"id\":\"a\",\"type\":\"register.command.response\",\"thid\":\"r\","
                 "\"response\":{\"ok\":false,\"error\":%s}}",
                 errors[i]);
        cmdipc_msg_t *m =
            ROUND_TRIP(text, "{\"id\":\"a\",\"type\":\"register.command.response\","
                             "\"thid\":\"r\",\"response\":{\"ok\":false,"
                             "\"error\":\"duplicate_command\"}}");
        ASSERT_STATUS(CMDIPC_EDUPLICATE, cmdipc_msg_status(m));
        cmdipc_msg_free(m);
    }
}

TEST(round_trip_list_request) {
    cmdipc_msg_t *m =
        ROUND_TRIP("{\"id\":\"l1\",\"type\":\"list.commands.request\"}", NULL);
    CHECK_MSG(m, CMDIPC_MSG_LIST_REQUEST, "l1", NULL, NULL, 0, NULL);
    ASSERT_NULL(cmdipc_msg_error_message(m));
    cmdipc_msg_free(m);
}

TEST(round_trip_list_response) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP("{\"id\":\"l2\",\"type\":\"list.commands.response\",\"thid\":\"l1\","
                   "\"commands\":[]}",
                   NULL);
    CHECK_MSG(m, CMDIPC_MSG_LIST_RESPONSE, "l2", "l1", NULL, 0, "[]");
    cmdipc_msg_free(m);

    static const char cmds[] =
        "[{\"id\":\"a\"},{\"id\":\"b\",\"description\":\"B\"},"
        "{\"id\":\"c\",\"schema\":{\"request\":{\"type\":\"object\"}}},"
        "{\"id\":\"d\",\"description\":\"D\",\"schema\":{\"request\":{},\"response\":{}}}"
        "]";
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"id\":\"l3\",\"type\":\"list.commands.response\",\"thid\":\"l1\","
             "\"commands\":%s}",
             cmds);
    m = ROUND_TRIP(text, NULL);
    CHECK_MSG(m, CMDIPC_MSG_LIST_RESPONSE, "l3", "l1", NULL, 0, cmds);
    cmdipc_msg_free(m);
}

TEST(round_trip_execute_request) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP(
        "{\"id\":\"e1\",\"type\":\"execute.command.request\",\"commandId\":\"math."
        "add\",\"request\":{\"a\":2,\"b\":3.5,\"c\":[true,false,\"x\"],\"d\":{}}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_EXECUTE_REQUEST, "e1", NULL, "math.add", 0,
              "{\"a\":2,\"b\":3.5,\"c\":[true,false,\"x\"],\"d\":{}}");
    ASSERT_NULL(cmdipc_msg_error_message(m));
    cmdipc_msg_free(m);

    /* request omitted. */
    m = ROUND_TRIP(
        "{\"id\":\"e2\",\"type\":\"execute.command.request\",\"commandId\":\"c\"}", NULL);
    CHECK_MSG(m, CMDIPC_MSG_EXECUTE_REQUEST, "e2", NULL, "c", 0, NULL);
    cmdipc_msg_free(m);

    /* Non-UUID ids of any kind are accepted (rule 1). */
    m = ROUND_TRIP(
        "{\"id\":\"request-123 \\u00e9\\t\",\"type\":\"execute.command.request\","
        "\"commandId\":\"c\"}",
        NULL);
    ASSERT_STR_EQ(cmdipc_msg_id(m), "request-123 \xc3\xa9\t");
    cmdipc_msg_free(m);
}

TEST(non_object_request_passes_through) {
    /* Rules 13 and 15: request may be any JSON value, and stays what it was. */
    static const char *const values[] = {"\"a bare string\"",
                                         "42",
                                         "-7",
                                         "3.25",
                                         "[1,\"two\",[3]]",
                                         "[]",
                                         "true",
                                         "false",
                                         "\"\"",
                                         "0",
                                         "{\"nested\":[null,{\"k\":null}]}"};
    char text[512];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"id\":\"n\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
                 "\"request\":%s}",
                 values[i]);
        cmdipc_msg_t *m = ROUND_TRIP(text, NULL);
        CHECK_MSG(m, CMDIPC_MSG_EXECUTE_REQUEST, "n", NULL, "c", 0, values[i]);
        cmdipc_msg_free(m);
        /* The same for results and event payloads. */
        snprintf(text, sizeof(text),
                 "{\"id\":\"n\",\"type\":\"execute.command.response\",\"thid\":\"t\","
                 "\"response\":{\"ok\":true,\"result\":%s}}",
                 values[i]);
        m = ROUND_TRIP(text, NULL);
        CHECK_MSG(m, CMDIPC_MSG_EXECUTE_RESPONSE, "n", "t", NULL, 0, values[i]);
        cmdipc_msg_free(m);
        snprintf(text, sizeof(text),
                 "{\"id\":\"n\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":%s}",
                 values[i]);
        m = ROUND_TRIP(text, NULL);
        CHECK_MSG(m, CMDIPC_MSG_EVENT, "n", NULL, "e", 0, values[i]);
        cmdipc_msg_free(m);
    }
}

TEST(round_trip_execute_response) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP("{\"id\":\"x1\",\"type\":\"execute.command.response\",\"thid\":\"e1\","
                   "\"response\":{\"ok\":true,\"result\":{\"sum\":5}}}",
                   NULL);
    CHECK_MSG(m, CMDIPC_MSG_EXECUTE_RESPONSE, "x1", "e1", NULL, 0, "{\"sum\":5}");
    ASSERT_NULL(cmdipc_msg_error_message(m));
    cmdipc_msg_free(m);

    /* result omitted. */
    m = ROUND_TRIP("{\"id\":\"x2\",\"type\":\"execute.command.response\",\"thid\":\"e1\","
                   "\"response\":{\"ok\":true}}",
                   NULL);
    CHECK_MSG(m, CMDIPC_MSG_EXECUTE_RESPONSE, "x2", "e1", NULL, 0, NULL);
    cmdipc_msg_free(m);

    /* Each spec-v1 error code, with its message. */
    static const struct {
        const char *code;
        int status;
    } codes[] = {{"not_found", CMDIPC_ENOTFOUND},
                 {"invalid_request", CMDIPC_EINVALREQ},
                 {"internal_error", CMDIPC_EINTERNAL},
                 {"timeout", CMDIPC_ETIMEDOUT},
                 {"channel_disconnected", CMDIPC_EDISCONNECTED}};
    char text[512];
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        snprintf(
            text, sizeof(text),
            "{\"id\":\"x3\",\"type\":\"execute.command.response\",\"thid\":\"e1\","
            "\"response\":{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"why "
            "\\\"%s\\\"\\n\"}}}",
            codes[i].code, codes[i].code);
        m = ROUND_TRIP(text, NULL);
        CHECK_MSG(m, CMDIPC_MSG_EXECUTE_RESPONSE, "x3", "e1", NULL, codes[i].status,
                  NULL);
        char want[128];
        snprintf(want, sizeof(want), "why \"%s\"\n", codes[i].code);
        ASSERT_STR_EQ(cmdipc_msg_error_message(m), want);
        cmdipc_msg_free(m);
    }
}

TEST(round_trip_event) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP(
        "{\"id\":\"v1\",\"type\":\"event\",\"eventId\":\"user.updated\",\"payload\":"
        "{\"userId\":42}}",
        NULL);
    CHECK_MSG(m, CMDIPC_MSG_EVENT, "v1", NULL, "user.updated", 0, "{\"userId\":42}");
    ASSERT_NULL(cmdipc_msg_error_message(m));
    cmdipc_msg_free(m);
    m = ROUND_TRIP("{\"id\":\"v2\",\"type\":\"event\",\"eventId\":\"_tick\"}", NULL);
    CHECK_MSG(m, CMDIPC_MSG_EVENT, "v2", NULL, "_tick", 0, NULL);
    cmdipc_msg_free(m);
}

TEST(decode_ignores_trailing_newline_and_whitespace) {
    static const char *const texts[] = {
        "{\"id\":\"w\",\"type\":\"list.commands.request\"}\n",
        "{\"id\":\"w\",\"type\":\"list.commands.request\"}\r\n",
        " \t{ \"id\" : \"w\" ,\n \"type\" : \"list.commands.request\" } ",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        cmdipc_msg_t *m = DECODE_OK(texts[i]);
        CHECK_MSG(m, CMDIPC_MSG_LIST_REQUEST, "w", NULL, NULL, 0, NULL);
        json_t *v = ENCODE_CHECKED(m);
        json_decref(v);
        cmdipc_msg_free(m);
    }
    /* A line with its own length, not NUL-terminated. */
    static const char buf[] = "{\"id\":\"w\",\"type\":\"list.commands.request\"}GARBAGE";
    cmdipc_msg_t *m = decode_ok_n(__FILE__, __LINE__, buf, sizeof(buf) - 1 - 7, NULL);
    ASSERT_STR_EQ(cmdipc_msg_id(m), "w");
    cmdipc_msg_free(m);
}

TEST(null_payload_is_absent) {
    cmdipc_msg_t *m;
    m = ROUND_TRIP(
        "{\"id\":\"n1\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":null}",
        "{\"id\":\"n1\",\"type\":\"execute.command.request\",\"commandId\":\"c\"}");
    ASSERT_NULL(cmdipc_msg_payload(m));
    cmdipc_msg_free(m);
    m = ROUND_TRIP("{\"id\":\"n2\",\"type\":\"execute.command.response\",\"thid\":\"t\","
                   "\"response\":{\"ok\":true,\"result\":null}}",
                   "{\"id\":\"n2\",\"type\":\"execute.command.response\",\"thid\":\"t\","
                   "\"response\":{\"ok\":true}}");
    ASSERT_NULL(cmdipc_msg_payload(m));
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"n3\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":null}",
        "{\"id\":\"n3\",\"type\":\"event\",\"eventId\":\"e\"}");
    ASSERT_NULL(cmdipc_msg_payload(m));
    cmdipc_msg_free(m);
    /* A null message in an error is absent too: "" on receipt and re-emission. */
    m = ROUND_TRIP(
        "{\"id\":\"n4\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":"
        "null}}}",
        "{\"id\":\"n4\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":"
        "\"\"}}}");
    ASSERT_STR_EQ(cmdipc_msg_error_message(m), "");
    cmdipc_msg_free(m);
}

TEST(extra_keys_ignored_and_not_emitted) {
    cmdipc_msg_t *m;
    /* Top level, including envelope names of other types (thid on an event). */
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"event\",\"eventId\":\"e\",\"thid\":\"t\","
        "\"commandId\":\"c\",\"extra\":{\"deep\":[1]},\"payload\":{\"extra\":1}}",
        "{\"id\":\"x\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{\"extra\":1}}");
    ASSERT_NULL(cmdipc_msg_thid(m));
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"extra\":0,\"id\":\"x\",\"type\":\"list.commands.request\",\"commands\":[]}",
        "{\"id\":\"x\",\"type\":\"list.commands.request\"}");
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"payload\":1,\"eventId\":\"e\"}",
        "{\"id\":\"x\",\"type\":\"execute.command.request\",\"commandId\":\"c\"}");
    ASSERT_NULL(cmdipc_msg_payload(m));
    cmdipc_msg_free(m);

    /* Inside response and error objects. */
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":true,\"result\":2,\"error\":{\"code\":\"timeout\"},"
        "\"extra\":3}}",
        "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":true,\"result\":2}}");
    ASSERT_EQ(cmdipc_msg_status(m), 0);
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":false,\"result\":2,\"error\":{\"code\":\"timeout\","
        "\"message\":\"m\",\"data\":{\"a\":1}}}}",
        "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":"
        "\"m\"}}}");
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, cmdipc_msg_status(m));
    ASSERT_NULL(cmdipc_msg_payload(m));
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"register.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":true,\"extra\":1,\"error\":\"duplicate_command\"}}",
        "{\"id\":\"x\",\"type\":\"register.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":true}}");
    cmdipc_msg_free(m);

    /* Inside a command definition and its schema object (not inside the
     * request/response schemas themselves, which are opaque). */
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"c\",\"private\":true,\"schema\":{\"request\":{\"extra\":1},\"x-ui\":{}}}}",
        "{\"id\":\"x\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"c\",\"schema\":{\"request\":{\"extra\":1}}}}");
    CHECK_MSG(m, CMDIPC_MSG_REGISTER_REQUEST, "x", NULL, "c", 0,
              "{\"request\":{\"extra\":1}}");
    cmdipc_msg_free(m);
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"c\",\"schema\":{\"x-only\":1}}}",
        "{\"id\":\"x\",\"type\":\"register.command.request\",\"command\":{\"id\":"
        "\"c\",\"schema\":{}}}");
    cmdipc_msg_free(m);

    /* A list response mixing clean and dirty definitions. */
    m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"list.commands.response\",\"thid\":\"t\",\"extra\":1,"
        "\"commands\":[{\"id\":\"a\"},{\"id\":\"b\",\"owner\":\"z\",\"description\":"
        "\"B\"},"
        "{\"id\":\"c\",\"description\":null,\"schema\":{\"response\":{\"t\":1},\"more\":"
        "2}},"
        "{\"id\":\"d\",\"schema\":null}]}",
        "{\"id\":\"x\",\"type\":\"list.commands.response\",\"thid\":\"t\","
        "\"commands\":[{\"id\":\"a\"},{\"id\":\"b\",\"description\":\"B\"},"
        "{\"id\":\"c\",\"schema\":{\"response\":{\"t\":1}}},{\"id\":\"d\"}]}");
    CHECK_MSG(m, CMDIPC_MSG_LIST_RESPONSE, "x", "t", NULL, 0,
              "[{\"id\":\"a\"},{\"id\":\"b\",\"description\":\"B\"},"
              "{\"id\":\"c\",\"schema\":{\"response\":{\"t\":1}}},{\"id\":\"d\"}]");
    cmdipc_msg_free(m);
}

TEST(error_response_without_message) {
    cmdipc_msg_t *m = ROUND_TRIP(
        "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":false,\"error\":{\"code\":\"not_found\"}}}",
        "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":false,\"error\":{\"code\":\"not_found\",\"message\":"
        "\"\"}}}");
    ASSERT_STATUS(CMDIPC_ENOTFOUND, cmdipc_msg_status(m));
    ASSERT_STR_EQ(cmdipc_msg_error_message(m), "");
    cmdipc_msg_free(m);
}

TEST(unknown_error_code_reads_internal_error) {
    /* Unknown codes, the register code and an empty code: internal_error,
     * re-emitted as "internal_error" with the message kept. */
    static const char *const codes[] = {"quota_exceeded", "duplicate_command", "",
                                        "NOT_FOUND", "not_found "};
    char text[512];
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        snprintf(
            text, sizeof(text),
            "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
            "\"response\":{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"m\"}}}",
            codes[i]);
        cmdipc_msg_t *m = ROUND_TRIP(
            text, "{\"id\":\"x\",\"type\":\"execute.command.response\",\"thid\":\"t\","
                  "\"response\":{\"ok\":false,\"error\":{\"code\":\"internal_error\","
                  "\"message\":\"m\"}}}");
        ASSERT_STATUS(CMDIPC_EINTERNAL, cmdipc_msg_status(m));
        ASSERT_STR_EQ(cmdipc_msg_error_message(m), "m");
        cmdipc_msg_free(m);
    }
}

TEST(locally_built_messages_encode) {
    json_t *v;
    cmdipc_msg_t *m;

    /* A fresh UUIDv4 id when none is given. */
    ASSERT_OK(cmdipc__global_init());
    m = cmdipc__msg_new(CMDIPC_MSG_LIST_REQUEST, NULL, NULL, NULL, NULL, NULL);
    ASSERT_NOT_NULL(m);
    ASSERT(cmdipc__is_uuid(cmdipc_msg_id(m)));
    ASSERT_EQ(cmdipc_msg_id(m)[14], '4');
    v = ENCODE_CHECKED(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(v, "id")), cmdipc_msg_id(m));
    json_decref(v);

    /* A response with a fresh id, and a copy with the same id. */
    cmdipc_msg_t *reid = cmdipc__msg_reid(m), *clone = cmdipc__msg_clone(m);
    ASSERT_STR_NE(cmdipc_msg_id(reid), cmdipc_msg_id(m));
    ASSERT(cmdipc__is_uuid(cmdipc_msg_id(reid)));
    ASSERT_STR_EQ(cmdipc_msg_id(clone), cmdipc_msg_id(m));
    ASSERT_PTR_NE(cmdipc_msg_id(clone), cmdipc_msg_id(m));
    cmdipc_msg_free(reid);
    cmdipc_msg_free(clone);
    cmdipc_msg_free(m);

    /* A list response with no body emits "commands":[]. */
    m = cmdipc__msg_new(CMDIPC_MSG_LIST_RESPONSE, "id1", "th1", NULL, NULL, NULL);
    v = ENCODE_CHECKED(m);
    json_t *want =
        pj("{\"id\":\"id1\",\"type\":\"list.commands.response\",\"thid\":\"th1\","
           "\"commands\":[]}");
    ASSERT_JSON_EQ(v, want);
    json_decref(want);
    json_decref(v);
    cmdipc_msg_free(m);

    /* Error responses: statuses without an execute wire code go out as
     * internal_error; a NULL message as "". Control characters escaped. */
    static const struct {
        int status;
        const char *code;
    } st[] = {{CMDIPC_ENOTFOUND, "not_found"},
              {CMDIPC_EINVALREQ, "invalid_request"},
              {CMDIPC_EINTERNAL, "internal_error"},
              {CMDIPC_ETIMEDOUT, "timeout"},
              {CMDIPC_EDISCONNECTED, "channel_disconnected"},
              {CMDIPC_EDUPLICATE, "internal_error"},
              {CMDIPC_ECANCELED, "internal_error"},
              {CMDIPC_EOVERLOAD, "internal_error"},
              {UV_EINVAL, "internal_error"}};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        m = cmdipc__msg_new(CMDIPC_MSG_EXECUTE_RESPONSE, "r", "t", NULL,
                            i % 2 ? NULL : "bad \x01 \"thing\"\n", NULL);
        m->status = st[i].status;
        v = ENCODE_CHECKED(m);
        json_t *e = json_object_get(json_object_get(v, "response"), "error");
        ASSERT_STR_EQ(json_string_value(json_object_get(e, "code")), st[i].code);
        ASSERT_STR_EQ(json_string_value(json_object_get(e, "message")),
                      i % 2 ? "" : "bad \x01 \"thing\"\n");
        json_decref(v);
        cmdipc_msg_free(m);
    }

    /* A register response refused. */
    m = cmdipc__msg_new(CMDIPC_MSG_REGISTER_RESPONSE, "r", "t", NULL, NULL, NULL);
    m->status = CMDIPC_EDUPLICATE;
    v = ENCODE_CHECKED(m);
    want = pj("{\"id\":\"r\",\"type\":\"register.command.response\",\"thid\":\"t\","
              "\"response\":{\"ok\":false,\"error\":\"duplicate_command\"}}");
    ASSERT_JSON_EQ(v, want);
    json_decref(want);
    json_decref(v);
    cmdipc_msg_free(m);

    /* Bodies set as json_t: an execute request, a register request with a
     * description and schema, an event with a non-object payload. */
    m = cmdipc__msg_new(CMDIPC_MSG_EXECUTE_REQUEST, "q", NULL, "cmd", NULL, NULL);
    json_t *body = pj("[1,{\"a\":\"\\u0001\"}]");
    cmdipc__msg_set_json(m, body);
    v = ENCODE_CHECKED(m);
    ASSERT_JSON_EQ(json_object_get(v, "request"), body);
    ASSERT_PTR_EQ(cmdipc_msg_payload(m), body);
    json_decref(v);
    cmdipc__msg_set_json(m, NULL); /* back to absent */
    v = ENCODE_CHECKED(m);
    ASSERT_NULL(json_object_get(v, "request"));
    json_decref(v);
    json_decref(body);
    cmdipc_msg_free(m);

    m = cmdipc__msg_new(CMDIPC_MSG_REGISTER_REQUEST, "g", NULL, "cmd", NULL,
                        "Does \"it\"");
    body = pj("{\"request\":{\"type\":\"object\"}}");
    cmdipc__msg_set_json(m, body);
    v = ENCODE_CHECKED(m);
    want = pj(
        "{\"id\":\"g\",\"type\":\"register.command.request\",\"command\":{\"id\":\"cmd\","
        "\"description\":\"Does \\\"it\\\"\",\"schema\":{\"request\":{\"type\":"
        "\"object\"}}}}");
    ASSERT_JSON_EQ(v, want);
    json_decref(want);
    json_decref(v);
    json_decref(body);
    cmdipc_msg_free(m);

    m = cmdipc__msg_new(CMDIPC_MSG_EVENT, "ev", NULL, "tick", NULL, NULL);
    body = json_integer(7);
    cmdipc__msg_set_json(m, body);
    json_decref(body);
    v = ENCODE_CHECKED(m);
    want = pj("{\"id\":\"ev\",\"type\":\"event\",\"eventId\":\"tick\",\"payload\":7}");
    ASSERT_JSON_EQ(v, want);
    json_decref(want);
    json_decref(v);
    cmdipc_msg_free(m);

    ASSERT_NULL(cmdipc_msg_encode(NULL, NULL));
    cmdipc_msg_free(NULL);
}

/* ---------------------------------------------------------------------------
 * Rejections (SECURITY.md (c) test 5). */

TEST(reject_duplicate_keys) {
    REJECT(CMDIPC_EDUPKEY, "{\"a\":1,\"a\":2}");
    REJECT(CMDIPC_EDUPKEY,
           "{\"id\":\"a\",\"id\":\"b\",\"type\":\"event\",\"eventId\":\"e\"}");
    REJECT(CMDIPC_EDUPKEY,
           "{\"id\":\"a\",\"type\":\"event\",\"type\":\"event\",\"eventId\":"
           "\"e\"}");
    /* Nested inside a payload, a result, a schema. */
    REJECT(CMDIPC_EDUPKEY,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{"
           "\"x\":[{\"k\":1,\"k\":1}]}}");
    REJECT(CMDIPC_EDUPKEY,
           "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\","
           "\"response\":{\"ok\":true,\"ok\":true}}");
    REJECT(CMDIPC_EDUPKEY,
           "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{"
           "\"id\":\"c\",\"schema\":{\"request\":{},\"request\":{}}}}");
    /* Keys equal after unescaping are duplicates too. */
    REJECT(CMDIPC_EDUPKEY,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{"
           "\"k\":1,\"\\u006b\":2}}");
}

/* The offset of the first NUL byte of a literal. */
#define nul_at(lit) ((size_t)((const char *)memchr((lit), 0, sizeof(lit)) - (lit)))

TEST(reject_nul) {
    /* \u0000 in a value, in a key, in an envelope string. */
    REJECT(CMDIPC_EJSONNUL,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"x\\u0000y\"}");
    REJECT(CMDIPC_EJSONNUL,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{"
           "\"k\\u0000\":1}}");
    REJECT(CMDIPC_EJSONNUL, "{\"id\":\"a\\u0000\",\"type\":\"event\",\"eventId\":\"e\"}");
    /* A raw NUL byte inside a string and outside, reported at its byte. */
    cmdipc_decode_error_t err;
    static const char raw1[] = "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\0\"}";
    ASSERT_STATUS(CMDIPC_EJSONNUL, decode_fail(raw1, sizeof(raw1) - 1, NULL, &err));
    ASSERT_UEQ(err.position, nul_at(raw1));
    static const char raw2[] = "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\"}\0";
    ASSERT_STATUS(CMDIPC_EJSONNUL, decode_fail(raw2, sizeof(raw2) - 1, NULL, &err));
    ASSERT_UEQ(err.position, nul_at(raw2));
    REJECT_LIT(CMDIPC_EJSONNUL, "\0");
    REJECT_LIT(CMDIPC_EJSONNUL, "{\"a\":\0}");
}

TEST(reject_raw_nul_after_backslash) {
    /* A raw NUL byte is CMDIPC_EJSONNUL wherever it is, also right after a
     * backslash inside a string (SECURITY.md (c) test 5). */
    static const char raw[] = "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\\\0\"}";
    cmdipc_decode_error_t err;
    ASSERT_STATUS(CMDIPC_EJSONNUL, decode_fail(raw, sizeof(raw) - 1, NULL, &err));
    ASSERT_UEQ(err.position, nul_at(raw));
}

TEST(reject_invalid_utf8) {
    REJECT(CMDIPC_EBADJSON, "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"\xff\"}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"\xc0\x80\"}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"\xed\xa0\x80\"}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{"
           "\"\xf4\x90\x80\x80\":1}}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"\xe2\x82\"}");
    REJECT(CMDIPC_EBADJSON, "\xff");
    /* Lone surrogate escapes. */
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"\\ud800\"}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"\\udc00\"}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "\"\\ud800x\"}");
    /* A proper pair is fine. */
    cmdipc_msg_t *m =
        DECODE_OK("{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
                  "\"\\ud83d\\ude00\"}");
    ASSERT_STR_EQ(json_string_value(cmdipc_msg_payload(m)), "\xf0\x9f\x98\x80");
    cmdipc_msg_free(m);
}

TEST(reject_number_range) {
    REJECT(CMDIPC_EJSONRANGE,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "99999999999999999999}");
    REJECT(CMDIPC_EJSONRANGE,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "-99999999999999999999}");
    REJECT(CMDIPC_EJSONRANGE,
           "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
           "1e400}");
    REJECT(CMDIPC_EJSONRANGE,
           "{\"id\":\"a\",\"type\":\"execute.command.request\",\"commandId\":"
           "\"c\",\"request\":{\"x\":[-1e400]}}");
    /* The extremes that fit are accepted. */
    cmdipc_msg_t *m =
        ROUND_TRIP("{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":"
                   "[9223372036854775807,-9223372036854775808,1e308]}",
                   NULL);
    ASSERT_EQ(json_integer_value(json_array_get(cmdipc_msg_payload(m), 0)), INT64_MAX);
    cmdipc_msg_free(m);
}

TEST(reject_not_a_message) {
    cmdipc_decode_error_t err;
    /* Top-level 42: jansson is asked for an object, so it is invalid JSON for
     * the codec (EBADJSON); [] parses but is not an object (EBADMSG). */
    int rc = decode_fail("42", 2, NULL, &err);
    ASSERT(rc == CMDIPC_EBADJSON || rc == CMDIPC_EBADMSG);
    ASSERT_STATUS(CMDIPC_EBADJSON, rc);
    rc = decode_fail("[]", 2, NULL, &err);
    ASSERT(rc == CMDIPC_EBADJSON || rc == CMDIPC_EBADMSG);
    ASSERT_STATUS(CMDIPC_EBADMSG, rc);
    REJECT(CMDIPC_EBADMSG, "[{\"id\":\"a\",\"type\":\"list.commands.request\"}]");
    REJECT(CMDIPC_EBADJSON, "\"event\"");
    REJECT(CMDIPC_EBADJSON, "null");
    REJECT(CMDIPC_EBADJSON, "true");
    REJECT(CMDIPC_EBADJSON, "");
    REJECT(CMDIPC_EBADJSON, "\n");
    REJECT(CMDIPC_EBADJSON, "   ");
    REJECT(CMDIPC_EBADJSON, "{");
    REJECT(CMDIPC_EBADJSON, "{'id':'a'}");
    REJECT(CMDIPC_EBADJSON, "{\"id\":\"a\",}");
    ASSERT_STATUS(CMDIPC_EBADJSON, decode_fail(NULL, 0, NULL, &err));
    /* err may be NULL. */
    cmdipc_msg_t *m = (cmdipc_msg_t *)&m;
    ASSERT_STATUS(CMDIPC_EBADJSON, cmdipc_msg_decode("42", 2, NULL, &m, NULL));
    ASSERT_NULL(m);
}

TEST(reject_trailing_garbage) {
    REJECT(CMDIPC_EBADJSON, "{\"a\":1} x");
    REJECT(CMDIPC_EBADJSON, "{\"id\":\"a\",\"type\":\"list.commands.request\"} x");
    REJECT(CMDIPC_EBADJSON, "{\"id\":\"a\",\"type\":\"list.commands.request\"}{}");
    REJECT(CMDIPC_EBADJSON,
           "{\"id\":\"a\",\"type\":\"list.commands.request\"}\n{\"id\":\"b\","
           "\"type\":\"list.commands.request\"}");
}

TEST(reject_unknown_type) {
    REJECT(CMDIPC_EUNKNOWNTYPE, "{\"id\":\"a\",\"type\":\"progress\"}");
    REJECT(CMDIPC_EUNKNOWNTYPE, "{\"id\":\"a\",\"type\":\"Event\",\"eventId\":\"e\"}");
    REJECT(CMDIPC_EUNKNOWNTYPE, "{\"id\":\"a\",\"type\":\"event \",\"eventId\":\"e\"}");
    REJECT(CMDIPC_EUNKNOWNTYPE, "{\"id\":\"a\",\"type\":\"\"}");
    /* Forward compatibility: an unknown type is told apart even without id. */
    REJECT(CMDIPC_EUNKNOWNTYPE, "{\"type\":\"stream.chunk\",\"data\":[1,2]}");
}

TEST(reject_envelope_errors) {
    /* Each line is JSON but not a valid spec-v1 message: CMDIPC_EBADMSG. */
    static const char *const bad[] = {
        /* type */
        "{\"id\":\"a\"}",
        "{\"id\":\"a\",\"type\":7}",
        "{\"id\":\"a\",\"type\":null}",
        "{\"id\":\"a\",\"type\":[\"event\"]}",
        /* id: missing, empty, not a string */
        "{\"type\":\"list.commands.request\"}",
        "{\"id\":\"\",\"type\":\"list.commands.request\"}",
        "{\"id\":1,\"type\":\"list.commands.request\"}",
        "{\"id\":null,\"type\":\"list.commands.request\"}",
        "{\"id\":{},\"type\":\"event\",\"eventId\":\"e\"}",
        "{\"type\":\"execute.command.request\",\"commandId\":\"c\"}",
        /* thid on responses: missing, empty, not a string */
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"response\":{\"ok\":true}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"\",\"response\":{"
        "\"ok\":"
        "true}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":3,\"response\":{"
        "\"ok\":"
        "true}}",
        "{\"id\":\"a\",\"type\":\"register.command.response\",\"response\":{\"ok\":true}"
        "}",
        "{\"id\":\"a\",\"type\":\"register.command.response\",\"thid\":null,\"response\":"
        "{"
        "\"ok\":true}}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"commands\":[]}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"\",\"commands\":[]"
        "}",
        /* response / ok */
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\"}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "true}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "\"true\"}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "1}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "null}}",
        "{\"id\":\"a\",\"type\":\"register.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":"
        "0}}",
        "{\"id\":\"a\",\"type\":\"register.command.response\",\"thid\":\"t\","
        "\"response\":[]}",
        /* execute errors */
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false,\"error\":\"not_found\"}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false,\"error\":[\"not_found\",\"m\"]}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false,\"error\":{}}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false,\"error\":{\"message\":\"m\"}}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false,\"error\":{\"code\":404,\"message\":\"m\"}}}",
        "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":"
        "{\"ok\":"
        "false,\"error\":{\"code\":\"timeout\",\"message\":7}}}",
        /* register errors */
        "{\"id\":\"a\",\"type\":\"register.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":"
        "false}}",
        "{\"id\":\"a\",\"type\":\"register.command.response\",\"thid\":\"t\","
        "\"response\":{\"ok\":"
        "false,\"error\":{\"code\":\"duplicate_command\"}}}",
        /* register request */
        "{\"id\":\"a\",\"type\":\"register.command.request\"}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":\"x\"}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{}}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{\"id\":\"\"}}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{\"id\":1}}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{\"id\":\"x\","
        "\"description\":1}}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{\"id\":\"x\","
        "\"schema\":[]}}",
        "{\"id\":\"a\",\"type\":\"register.command.request\",\"command\":{\"id\":\"x\","
        "\"schema\":\"s\"}}",
        /* list response */
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"t\"}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"t\",\"commands\":{}"
        "}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"t\",\"commands\":"
        "null}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"t\",\"commands\":["
        "\"x\"]}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"t\",\"commands\":[{"
        "\"id\":"
        "\"x\"},{}]}",
        "{\"id\":\"a\",\"type\":\"list.commands.response\",\"thid\":\"t\",\"commands\":[{"
        "\"id\":"
        "\"x\",\"schema\":1}]}",
        /* execute request */
        "{\"id\":\"a\",\"type\":\"execute.command.request\"}",
        "{\"id\":\"a\",\"type\":\"execute.command.request\",\"commandId\":\"\"}",
        "{\"id\":\"a\",\"type\":\"execute.command.request\",\"commandId\":5}",
        "{\"id\":\"a\",\"type\":\"execute.command.request\",\"commandId\":null}",
        /* event */
        "{\"id\":\"a\",\"type\":\"event\"}",
        "{\"id\":\"a\",\"type\":\"event\",\"eventId\":\"\"}",
        "{\"id\":\"a\",\"type\":\"event\",\"eventId\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cmdipc_decode_error_t err;
        int rc = decode_fail(bad[i], strlen(bad[i]), NULL, &err);
        if (rc != CMDIPC_EBADMSG)
            fprintf(stderr, "case %zu: %s\n", i, bad[i]);
        ASSERT_STATUS(CMDIPC_EBADMSG, rc);
        /* An execute request with a readable id names it. */
        int exec_with_id =
            strstr(bad[i], "\"type\":\"execute.command.request\"") != NULL &&
            strstr(bad[i], "\"id\":\"a\"") != NULL;
        ASSERT_STR_EQ(err.execute_id, exec_with_id ? "a" : "");
    }
}

/* ---------------------------------------------------------------------------
 * Limits. */

/* A message nested depth levels deep in all (the envelope object is level
 * 1). The caller frees the result. */
static char *nested_event(unsigned depth, const char *tail, size_t *prefix_len) {
    static const char prefix[] =
        "{\"id\":\"d\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":";
    size_t inner = depth - 1, n = sizeof(prefix) - 1 + 2 * inner + 1 + strlen(tail) + 1;
    char *s = malloc(n);
    ASSERT_NOT_NULL(s);
    char *p = s;
    memcpy(p, prefix, sizeof(prefix) - 1);
    p += sizeof(prefix) - 1;
    memset(p, '[', inner);
    p += inner;
    memset(p, ']', inner);
    p += inner;
    *p++ = '}';
    strcpy(p, tail);
    if (prefix_len != NULL)
        *prefix_len = sizeof(prefix) - 1;
    return s;
}

TEST(depth_64_accepted_65_rejected) {
    size_t plen;
    char *s = nested_event(64, "", &plen);
    cmdipc_msg_t *m = DECODE_OK(s);
    json_t *v = ENCODE_CHECKED(m);
    json_t *want = pj(s);
    ASSERT_JSON_EQ(v, want);
    json_decref(want);
    json_decref(v);
    cmdipc_msg_free(m);
    free(s);

    cmdipc_decode_error_t err;
    s = nested_event(65, "", &plen);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, decode_fail(s, strlen(s), NULL, &err));
    ASSERT_UEQ(err.position, plen + 63); /* the 65th bracket: found by the pre-scan */
    free(s);
    /* The pre-scan runs first: garbage after the overflow does not matter. */
    s = nested_event(65, " garbage \xff", &plen);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, decode_fail(s, strlen(s), NULL, &err));
    free(s);
    /* Objects count like arrays. */
    char obj[1024], *p = obj;
    for (int i = 0; i < 65; i++)
        p += sprintf(p, "{\"a\":");
    strcpy(p, "1");
    p += 1;
    for (int i = 0; i < 65; i++)
        *p++ = '}';
    *p = '\0';
    REJECT(CMDIPC_EJSONDEPTH, obj);

    /* A custom limit. */
    cmdipc_limits_t lim;
    cmdipc_limits_init(&lim);
    lim.max_depth = 3;
    s = nested_event(3, "", NULL);
    m = decode_ok_n(__FILE__, __LINE__, s, strlen(s), &lim);
    cmdipc_msg_free(m);
    free(s);
    s = nested_event(4, "", NULL);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, decode_fail(s, strlen(s), &lim, &err));
    free(s);
}

typedef struct {
    const char *buf;
    size_t len;
    int status;
    size_t position;
    char execute_id[160];
    int returned;
} deep_job_t;

static void deep_decode_thread(void *arg) {
    deep_job_t *job = arg;
    cmdipc_msg_t *m = NULL;
    cmdipc_decode_error_t err;
    job->status = cmdipc_msg_decode(job->buf, job->len, NULL, &m, &err);
    job->position = err.position;
    memcpy(job->execute_id, err.execute_id, sizeof(job->execute_id));
    cmdipc_msg_free(m);
    job->returned = 1;
}

/* Decodes buf on a thread with a 64 KiB stack. */
static void decode_on_small_stack(deep_job_t *job) {
    uv_thread_t tid;
    uv_thread_options_t opts;
    opts.flags = UV_THREAD_HAS_STACK_SIZE;
    opts.stack_size = 64 * 1024;
    ASSERT_OK(uv_thread_create_ex(&tid, &opts, deep_decode_thread, job));
    ASSERT_OK(uv_thread_join(&tid));
    ASSERT_EQ(job->returned, 1);
}

TEST(depth_500000_on_small_stack) {
    /* SECURITY.md (c) test 4: a 500,000-deep line inside the 1 MiB limit. */
    enum { DEEP = 500000 };
    static const char exec_prefix[] = "{\"id\":\"deep-1\",\"type\":\"execute.command."
                                      "request\",\"commandId\":\"c\",\"request\":";
    char *buf = malloc(sizeof(exec_prefix) + DEEP * 5);
    ASSERT_NOT_NULL(buf);
    deep_job_t job;

    memset(buf, '[', DEEP);
    memset(&job, 0, sizeof(job));
    job.buf = buf;
    job.len = DEEP;
    decode_on_small_stack(&job);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, job.status);
    ASSERT_UEQ(job.position, 64);
    ASSERT_STR_EQ(job.execute_id, "");

    /* Inside an execute request: the id is still read (no recursion). */
    memcpy(buf, exec_prefix, sizeof(exec_prefix) - 1);
    memset(buf + sizeof(exec_prefix) - 1, '[', DEEP);
    memset(&job, 0, sizeof(job));
    job.buf = buf;
    job.len = sizeof(exec_prefix) - 1 + DEEP;
    ASSERT_LT(job.len, 1024 * 1024);
    decode_on_small_stack(&job);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, job.status);
    ASSERT_STR_EQ(job.execute_id, "deep-1");

    /* Deep objects, closed, in a 1 MiB line. */
    size_t n = 0;
    for (int i = 0; i < 100000; i++) {
        memcpy(buf + n, "{\"a\":", 5);
        n += 5;
    }
    memset(&job, 0, sizeof(job));
    job.buf = buf;
    job.len = n;
    ASSERT_LT(job.len, 1024 * 1024);
    decode_on_small_stack(&job);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, job.status);
    free(buf);
}

/* An event whose payload is an array of `inner` empty containers: inner + 2
 * containers in all. */
static char *wide_event(size_t inner, const char *item, size_t *prefix_len) {
    static const char prefix[] =
        "{\"id\":\"w\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":[";
    size_t il = strlen(item);
    char *s = malloc(sizeof(prefix) + inner * (il + 1) + 3);
    ASSERT_NOT_NULL(s);
    char *p = s;
    memcpy(p, prefix, sizeof(prefix) - 1);
    p += sizeof(prefix) - 1;
    for (size_t i = 0; i < inner; i++) {
        if (i > 0)
            *p++ = ',';
        memcpy(p, item, il);
        p += il;
    }
    strcpy(p, "]}");
    if (prefix_len != NULL)
        *prefix_len = sizeof(prefix) - 1;
    return s;
}

TEST(containers_65536_accepted_65537_rejected) {
    size_t plen;
    char *s = wide_event(65536 - 2, "[]", &plen);
    cmdipc_msg_t *m = DECODE_OK(s);
    ASSERT_UEQ(json_array_size(cmdipc_msg_payload(m)), 65534);
    cmdipc_msg_free(m);
    free(s);

    cmdipc_decode_error_t err;
    s = wide_event(65537 - 2, "[]", &plen);
    ASSERT_STATUS(CMDIPC_EJSONSIZE, decode_fail(s, strlen(s), NULL, &err));
    ASSERT_UEQ(err.position, plen + 3 * 65534); /* the last inner container */
    free(s);
    /* Objects count too. */
    s = wide_event(65537 - 2, "{}", &plen);
    ASSERT_STATUS(CMDIPC_EJSONSIZE, decode_fail(s, strlen(s), NULL, &err));
    free(s);
}

TEST(containers_custom_limit) {
    cmdipc_limits_t lim;
    cmdipc_decode_error_t err;
    cmdipc_limits_init(&lim);
    lim.max_containers = 10;
    char *s = wide_event(8, "{}", NULL);
    cmdipc_msg_t *m = decode_ok_n(__FILE__, __LINE__, s, strlen(s), &lim);
    cmdipc_msg_free(m);
    free(s);
    s = wide_event(9, "[]", NULL);
    ASSERT_STATUS(CMDIPC_EJSONSIZE, decode_fail(s, strlen(s), &lim, &err));
    free(s);
    /* Brackets inside strings are not containers. */
    s = wide_event(30, "\"[]{}\"", NULL);
    m = decode_ok_n(__FILE__, __LINE__, s, strlen(s), &lim);
    cmdipc_msg_free(m);
    free(s);
    /* With the default limits the 11-container line is fine. */
    s = wide_event(9, "[]", NULL);
    m = DECODE_OK(s);
    cmdipc_msg_free(m);
    free(s);
}

/* An event line of exactly `total` bytes, ending with `nl`; its payload is a
 * string of total - LINE_FIXED - strlen(nl) bytes. */
static const char line_prefix[] =
    "{\"id\":\"l\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":\"";
#define LINE_FIXED (sizeof(line_prefix) - 1 + 2)

static char *line_of(size_t total, const char *nl) {
    size_t fixed = LINE_FIXED + strlen(nl);
    ASSERT_GT(total, fixed);
    char *s = malloc(total + 1);
    ASSERT_NOT_NULL(s);
    memcpy(s, line_prefix, sizeof(line_prefix) - 1);
    memset(s + sizeof(line_prefix) - 1, 'x', total - fixed);
    strcpy(s + total - 2 - strlen(nl), "\"}");
    strcpy(s + total - strlen(nl), nl);
    ASSERT_UEQ(strlen(s), total);
    return s;
}

TEST(line_limit_custom) {
    cmdipc_limits_t lim;
    cmdipc_decode_error_t err;
    cmdipc_limits_init(&lim);
    lim.max_line = 4096;

    /* Exactly max_line bytes including the newline: accepted. */
    char *s = line_of(4096, "\n");
    cmdipc_msg_t *m = decode_ok_n(__FILE__, __LINE__, s, 4096, &lim);
    ASSERT_UEQ(json_string_length(cmdipc_msg_payload(m)), 4096 - LINE_FIXED - 1);
    cmdipc_msg_free(m);
    free(s);
    /* One byte more: refused. */
    s = line_of(4097, "\n");
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, decode_fail(s, 4097, &lim, &err));
    ASSERT_STR_EQ(err.execute_id, "");
    free(s);
    /* Without the newline, the message counts as if it had one. */
    s = line_of(4095, "");
    m = decode_ok_n(__FILE__, __LINE__, s, 4095, &lim);
    cmdipc_msg_free(m);
    free(s);
    s = line_of(4096, "");
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, decode_fail(s, 4096, &lim, &err));
    free(s);
    /* Far over the limit, invalid or not, the length is checked first. */
    s = malloc(100000);
    ASSERT_NOT_NULL(s);
    memset(s, '[', 100000);
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, decode_fail(s, 100000, &lim, &err));
    free(s);
}

TEST(line_limit_default_1mib) {
    cmdipc_decode_error_t err;
    char *s = line_of(1024 * 1024, "\n");
    cmdipc_msg_t *m = decode_ok_n(__FILE__, __LINE__, s, 1024 * 1024, NULL);
    cmdipc_msg_free(m);
    free(s);
    s = line_of(1024 * 1024 + 1, "\n");
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, decode_fail(s, 1024 * 1024 + 1, NULL, &err));
    free(s);
}

/* ---------------------------------------------------------------------------
 * cmdipc_decode_error_t.execute_id */

static void expect_execute_id(const char *file, int line, const char *buf, size_t len,
                              int status, const char *id) {
    cmdipc_decode_error_t err;
    int rc = decode_fail(buf, len, NULL, &err);
    harness__status(file, line, "decode status", status, rc);
    harness__str(file, line, "err.execute_id", "id", err.execute_id, id, 1);
}
#define EXPECT_ID(status, text, id)                                                      \
    expect_execute_id(__FILE__, __LINE__, (text), strlen(text), (status), (id))
#define EXPECT_ID_LIT(status, lit, id)                                                   \
    expect_execute_id(__FILE__, __LINE__, (lit), sizeof(lit) - 1, (status), (id))

TEST(execute_id_filled_when_readable) {
    /* Valid JSON, invalid message. */
    EXPECT_ID(CMDIPC_EBADMSG, "{\"id\":\"req-1\",\"type\":\"execute.command.request\"}",
              "req-1");
    EXPECT_ID(
        CMDIPC_EBADMSG,
        "{\"id\":\"req-2\",\"type\":\"execute.command.request\",\"commandId\":\"\"}",
        "req-2");
    EXPECT_ID(CMDIPC_EBADMSG,
              "{\"type\":\"execute.command.request\",\"commandId\":7,\"id\":\"req-3\"}",
              "req-3");
    /* A duplicate key inside the request. */
    EXPECT_ID(
        CMDIPC_EDUPKEY,
        "{\"id\":\"req-4\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":{\"a\":1,\"a\":2}}",
        "req-4");
    /* Depth overflow inside the request. */
    char deep[512];
    int n = snprintf(
        deep, sizeof(deep),
        "{\"id\":\"req-5\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":");
    for (int i = 0; i < 70; i++)
        deep[n++] = '[';
    for (int i = 0; i < 70; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    EXPECT_ID(CMDIPC_EJSONDEPTH, deep, "req-5");
    /* Invalid JSON later in the line. */
    EXPECT_ID(
        CMDIPC_EBADJSON,
        "{\"id\":\"req-6\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":{\"a\":tru}}",
        "req-6");
    EXPECT_ID(
        CMDIPC_EBADJSON,
        "{\"type\":\"execute.command.request\",\"id\":\"req-7\",\"commandId\":\"c\"} x",
        "req-7");
    EXPECT_ID(
        CMDIPC_EBADJSON,
        "{\"id\":\"req-8\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":{\"a\":\"unterminated",
        "req-8");
    EXPECT_ID(
        CMDIPC_EBADJSON,
        "{\"id\":\"req-9\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":[\"\xff\"]}",
        "req-9");
    EXPECT_ID(
        CMDIPC_EJSONRANGE,
        "{\"id\":\"req-10\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":{\"n\":1e999}}",
        "req-10");
    EXPECT_ID(
        CMDIPC_EJSONNUL,
        "{\"id\":\"req-11\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":\"\\u0000\"}",
        "req-11");
    EXPECT_ID_LIT(
        CMDIPC_EJSONNUL,
        "{\"id\":\"req-12\",\"type\":\"execute.command.request\",\"commandId\":\"c\","
        "\"request\":\"\0\"}",
        "req-12");
    /* Nested members are skipped, whatever they hold; escapes in the id are
     * decoded. */
    EXPECT_ID(
        CMDIPC_EDUPKEY,
        "{ \"request\" : {\"id\":\"inner\",\"x\":[\"]}\",{\"y\":\"\\\"\"}]} , \"id\" : "
        "\"r\\u00e9q-\\\"13\\\"\" , \"type\" : \"execute.command.request\", "
        "\"commandId\":"
        "\"c\",\"commandId\":\"c\"}",
        "r\xc3\xa9q-\"13\"");
}

TEST(execute_id_read_before_a_syntax_error) {
    /* The type and the id come first and are readable; the line then breaks
     * the JSON syntax (a missing colon, a missing comma). The id can still be
     * read, so the sender must get its invalid_request answer (rule 14). */
    EXPECT_ID(
        CMDIPC_EBADJSON,
        "{\"id\":\"req-20\",\"type\":\"execute.command.request\",\"commandId\" \"c\"}",
        "req-20");
    EXPECT_ID(CMDIPC_EBADJSON,
              "{\"id\":\"req-21\",\"type\":\"execute.command.request\",\"request\"}",
              "req-21");
}

TEST(execute_id_empty_otherwise) {
    /* Other types, valid JSON or not. */
    EXPECT_ID(CMDIPC_EBADMSG, "{\"id\":\"ev-1\",\"type\":\"event\"}", "");
    EXPECT_ID(
        CMDIPC_EDUPKEY,
        "{\"id\":\"ev-2\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{\"a\":1,"
        "\"a\":2}}",
        "");
    EXPECT_ID(CMDIPC_EBADMSG,
              "{\"id\":\"x-1\",\"type\":\"execute.command.response\",\"thid\":\"t\"}",
              "");
    EXPECT_ID(CMDIPC_EBADJSON,
              "{\"id\":\"x-2\",\"type\":\"execute.command.response\",\"thid\":\"t\",tru}",
              "");
    EXPECT_ID(CMDIPC_EBADMSG, "{\"id\":\"r-1\",\"type\":\"register.command.request\"}",
              "");
    EXPECT_ID(
        CMDIPC_EUNKNOWNTYPE,
        "{\"id\":\"u-1\",\"type\":\"execute.command.request.v2\",\"commandId\":\"c\"}",
        "");
    /* No type at all. */
    EXPECT_ID(CMDIPC_EBADMSG, "{\"id\":\"n-1\",\"commandId\":\"c\"}", "");
    EXPECT_ID(CMDIPC_EBADJSON, "{\"id\":\"n-2\",\"commandId\":\"c\",}", "");
    /* The type only inside a nested member. */
    EXPECT_ID(
        CMDIPC_EDUPKEY,
        "{\"id\":\"n-3\",\"request\":{\"type\":\"execute.command.request\"},\"type\":"
        "\"event\",\"eventId\":\"e\",\"payload\":{\"a\":1,\"a\":2}}",
        "");
    /* An id that is not a non-empty string, valid JSON or not. */
    EXPECT_ID(CMDIPC_EBADMSG,
              "{\"id\":5,\"type\":\"execute.command.request\",\"commandId\":\"c\"}", "");
    EXPECT_ID(
        CMDIPC_EDUPKEY,
        "{\"id\":5,\"type\":\"execute.command.request\",\"commandId\":\"c\",\"request\":{"
        "\"a\":1,\"a\":2}}",
        "");
    EXPECT_ID(
        CMDIPC_EDUPKEY,
        "{\"id\":{\"id\":\"inner\"},\"type\":\"execute.command.request\",\"commandId\":"
        "\"c\",\"request\":{\"a\":1,\"a\":2}}",
        "");
    EXPECT_ID(CMDIPC_EBADMSG,
              "{\"id\":null,\"type\":\"execute.command.request\",\"commandId\":\"c\"}",
              "");
    EXPECT_ID(CMDIPC_EBADMSG, "{\"id\":\"\",\"type\":\"execute.command.request\"}", "");
    EXPECT_ID(CMDIPC_EBADJSON, "{\"id\":\"\",\"type\":\"execute.command.request\",x}",
              "");
    EXPECT_ID(
        CMDIPC_EJSONNUL,
        "{\"id\":\"a\\u0000b\",\"type\":\"execute.command.request\",\"commandId\":\"c\"}",
        "");
    /* An id too long for the buffer is not truncated: left empty. */
    char text[1024], id[400];
    memset(id, 'i', 300);
    id[300] = '\0';
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"type\":\"execute.command.request\"}",
             id);
    EXPECT_ID(CMDIPC_EBADMSG, text, "");
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"type\":\"execute.command.request\",x}",
             id);
    EXPECT_ID(CMDIPC_EBADJSON, text, "");
    /* The longest id that fits (159 bytes) is kept. */
    id[159] = '\0';
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"type\":\"execute.command.request\"}",
             id);
    EXPECT_ID(CMDIPC_EBADMSG, text, id);
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"type\":\"execute.command.request\",x}",
             id);
    EXPECT_ID(CMDIPC_EBADJSON, text, id);
    /* Over the line limit: nothing is read. */
    cmdipc_limits_t lim;
    cmdipc_decode_error_t err;
    cmdipc_limits_init(&lim);
    lim.max_line = 32;
    static const char big[] = "{\"id\":\"big\",\"type\":\"execute.command.request\"}";
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, decode_fail(big, sizeof(big) - 1, &lim, &err));
    ASSERT_STR_EQ(err.execute_id, "");
}

/* ---------------------------------------------------------------------------
 * UUIDs (rule 1). */

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

static void assert_v4(const char *s) {
    ASSERT(cmdipc__is_uuid(s));
    ASSERT_UEQ(strlen(s), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ASSERT_EQ(s[i], '-');
        else
            ASSERT(strchr("0123456789abcdef", s[i]) != NULL && s[i] != '\0');
    }
    ASSERT_EQ(s[14], '4');
    ASSERT(strchr("89ab", s[19]) != NULL);
}

TEST(uuid_10000_distinct_v4) {
    enum { N = 10000 };
    char(*ids)[CMDIPC__UUID_LEN + 1] = malloc(N * sizeof(*ids));
    ASSERT_NOT_NULL(ids);
    ASSERT_OK(cmdipc__global_init());
    static const char variant_digits[] = "89ab";
    unsigned variants[4] = {0, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        memset(ids[i], 'Z', sizeof(ids[i]));
        cmdipc__uuid4(ids[i]);
        ASSERT_EQ(ids[i][36], '\0');
        assert_v4(ids[i]);
        variants[strchr(variant_digits, ids[i][19]) - variant_digits]++;
    }
    /* All four variant nibbles occur (the random bits are really used). */
    for (int i = 0; i < 4; i++)
        ASSERT_GT(variants[i], 1000);
    qsort(ids, N, sizeof(*ids), cmp_id);
    for (int i = 1; i < N; i++)
        ASSERT_STR_NE(ids[i - 1], ids[i]);
    free(ids);
}

TEST(uuid_differs_after_fork) {
    char tmp[CMDIPC__UUID_LEN + 1];
    char parent[3][CMDIPC__UUID_LEN + 1], child[3][CMDIPC__UUID_LEN + 1];
    int fds[2];
    ASSERT_OK(cmdipc__global_init());
    /* Consume part of the per-thread buffer, so the child would inherit the
     * rest if it were not discarded. */
    for (int i = 0; i < 10; i++)
        cmdipc__uuid4(tmp);
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) {
        char ids[3][CMDIPC__UUID_LEN + 1];
        close(fds[0]);
        for (int i = 0; i < 3; i++)
            cmdipc__uuid4(ids[i]);
        ssize_t w = write(fds[1], ids, sizeof(ids));
        _exit(w == (ssize_t)sizeof(ids) ? 0 : 1);
    }
    close(fds[1]);
    for (int i = 0; i < 3; i++)
        cmdipc__uuid4(parent[i]);
    size_t got = 0;
    while (got < sizeof(child)) {
        ssize_t r = read(fds[0], (char *)child + got, sizeof(child) - got);
        ASSERT_GT(r, 0);
        got += (size_t)r;
    }
    close(fds[0]);
    int wstatus;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT(WIFEXITED(wstatus));
    ASSERT_EQ(WEXITSTATUS(wstatus), 0);
    for (int i = 0; i < 3; i++) {
        assert_v4(child[i]);
        for (int j = 0; j < 3; j++)
            ASSERT_STR_NE(child[i], parent[j]);
    }
    ASSERT_STR_NE(child[0], parent[0]);
}

TEST(is_uuid) {
    ASSERT(cmdipc__is_uuid("123e4567-e89b-42d3-a456-426614174000"));
    ASSERT(cmdipc__is_uuid("123e4567-e89b-12d3-8456-426614174000")); /* v1 layout */
    ASSERT(cmdipc__is_uuid("123E4567-E89B-42D3-B456-426614174000"));
    static const char *const bad[] = {
        NULL,
        "",
        "123e4567-e89b-42d3-a456-42661417400",   /* 35 */
        "123e4567-e89b-42d3-a456-4266141740000", /* 37 */
        "123e4567e89b-42d3-a456-4266141740000",  /* hyphen missing */
        "123e4567-e89b-42d3-a456_426614174000",
        "123e4567-e89b-02d3-a456-426614174000", /* version 0 */
        "123e4567-e89b-62d3-a456-426614174000", /* version 6 */
        "123e4567-e89b-42d3-c456-426614174000", /* variant c */
        "123e4567-e89b-42d3-7456-426614174000", /* variant 7 */
        "123e4567-e89b-42d3-a456-42661417400g",
        "request-123",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(cmdipc__is_uuid(bad[i]), 0);
}

/* ---------------------------------------------------------------------------
 * cmdipc__json_check: what the library agrees to emit. */

static json_t *nested_arrays(int depth) {
    json_t *root = json_array(), *cur = root;
    for (int i = 1; i < depth; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    return root;
}

TEST(json_check_limits) {
    ASSERT_OK(cmdipc__json_check(NULL, 64));
    json_t *v = json_integer(1);
    ASSERT_OK(cmdipc__json_check(v, 0));
    json_decref(v);

    /* Depth. */
    v = nested_arrays(64);
    ASSERT_OK(cmdipc__json_check(v, 64));
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, cmdipc__json_check(v, 63));
    json_decref(v);
    v = nested_arrays(65);
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, cmdipc__json_check(v, 64));
    json_decref(v);
    v = json_object();
    json_t *cur = v;
    for (int i = 1; i < 65; i++) {
        json_t *next = json_object();
        json_object_set_new(cur, "k", next);
        cur = next;
    }
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, cmdipc__json_check(v, 64));
    ASSERT_OK(cmdipc__json_check(v, 65));
    json_decref(v);
    v = json_array();
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, cmdipc__json_check(v, 0));
    ASSERT_OK(cmdipc__json_check(v, 1));
    json_decref(v);
    v = pj("[1,[2,[3]],{\"a\":{}}]");
    ASSERT_OK(cmdipc__json_check(v, 3));
    ASSERT_STATUS(CMDIPC_EJSONDEPTH, cmdipc__json_check(v, 2));
    json_decref(v);

    /* NUL in a string, at the top or nested. */
    v = json_stringn("a\0b", 3);
    ASSERT_NOT_NULL(v);
    ASSERT_STATUS(CMDIPC_EJSONNUL, cmdipc__json_check(v, 64));
    json_t *outer = json_pack("{s:[i,{s:O}]}", "x", 1, "y", v);
    ASSERT_STATUS(CMDIPC_EJSONNUL, cmdipc__json_check(outer, 64));
    json_decref(outer);
    json_decref(v);
    v = json_stringn("ab", 2);
    ASSERT_OK(cmdipc__json_check(v, 64));
    json_decref(v);

    /* NUL in an object key. */
    v = json_object();
    ASSERT_OK(json_object_setn_nocheck(v, "k\0ey", 4, json_true()));
    ASSERT_STATUS(CMDIPC_EJSONNUL, cmdipc__json_check(v, 64));
    outer = json_pack("[O]", v);
    ASSERT_STATUS(CMDIPC_EJSONNUL, cmdipc__json_check(outer, 64));
    json_decref(outer);
    json_decref(v);

    /* Invalid UTF-8 in a string. */
    static const char *const bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = json_stringn_nocheck(bad[i], strlen(bad[i]));
        ASSERT_NOT_NULL(v);
        ASSERT_STATUS(CMDIPC_EBADJSON, cmdipc__json_check(v, 64));
        outer = json_pack("{s:[O]}", "k", v);
        ASSERT_STATUS(CMDIPC_EBADJSON, cmdipc__json_check(outer, 64));
        json_decref(outer);
        json_decref(v);
    }
}

TEST(json_check_rejects_invalid_utf8_key) {
    /* A key that is not UTF-8 (json_object_set_nocheck) cannot be emitted
     * (jansson refuses to dump it): the check must refuse it like an invalid
     * string value. */
    json_t *v = json_object();
    ASSERT_OK(json_object_set_new_nocheck(v, "k\xff", json_true()));
    ASSERT_NE(cmdipc__json_check(v, 64), 0);
    json_decref(v);
}

/* ---------------------------------------------------------------------------
 * Status codes (include/cmdipc/errno.h, lib/errors.c). */

TEST(error_table) {
    static const struct {
        int status;
        const char *name, *wire, *msg;
    } table[] = {
#define XX(name, value, wire, msg) {CMDIPC_##name, "CMDIPC_" #name, wire, msg},
        CMDIPC_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof(table) / sizeof(table[0]), wires = 0;
    for (size_t i = 0; i < n; i++) {
        int st = table[i].status;
        ASSERT_LE(st, -20000);
        ASSERT_GT(st, CMDIPC__ERRNO_FIRST);
        ASSERT_STR_EQ(cmdipc_err_name(st), table[i].name);
        ASSERT_STR_EQ(cmdipc_strerror(st), table[i].msg);
        ASSERT_NE(cmdipc_strerror(st)[0], '\0');
        ASSERT_STR_EQ(cmdipc_err_wire_code(st), table[i].wire);
        if (table[i].wire != NULL) {
            ASSERT_EQ(cmdipc_err_from_wire_code(table[i].wire), st);
            wires++;
        }
        for (size_t j = 0; j < i; j++) {
            ASSERT_NE(table[j].status, st);
            ASSERT_STR_NE(table[j].msg, table[i].msg);
        }
    }
    ASSERT_UEQ(wires, 6); /* the five execute codes and the register code */

    /* The spec-v1 codes, both ways. */
    static const struct {
        const char *wire;
        int status;
    } wire[] = {{"not_found", CMDIPC_ENOTFOUND},
                {"invalid_request", CMDIPC_EINVALREQ},
                {"internal_error", CMDIPC_EINTERNAL},
                {"timeout", CMDIPC_ETIMEDOUT},
                {"channel_disconnected", CMDIPC_EDISCONNECTED},
                {"duplicate_command", CMDIPC_EDUPLICATE}};
    for (size_t i = 0; i < sizeof(wire) / sizeof(wire[0]); i++) {
        ASSERT_EQ(cmdipc_err_from_wire_code(wire[i].wire), wire[i].status);
        ASSERT_STR_EQ(cmdipc_err_wire_code(wire[i].status), wire[i].wire);
    }
    /* Unknown wire codes read as internal_error. */
    static const char *const unknown[] = {"", "NOT_FOUND", "not_found ", "quota", "ok"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        ASSERT_STATUS(CMDIPC_EINTERNAL, cmdipc_err_from_wire_code(unknown[i]));
    ASSERT_STATUS(CMDIPC_EINTERNAL, cmdipc_err_from_wire_code(NULL));

    /* 0. */
    ASSERT_STR_EQ(cmdipc_strerror(0), "ok");
    ASSERT_STR_EQ(cmdipc_err_name(0), "OK");
    ASSERT_NULL(cmdipc_err_wire_code(0));

    /* libuv's codes pass through. */
    static const int uv[] = {UV_EINVAL,       UV_EOF,    UV_ENOMEM, UV_ECONNREFUSED,
                             UV_EADDRINUSE,   UV_EEXIST, UV_EBUSY,  UV_EALREADY,
                             UV_EAFNOSUPPORT, UV_ENOBUFS};
    for (size_t i = 0; i < sizeof(uv) / sizeof(uv[0]); i++) {
        ASSERT_STR_EQ(cmdipc_strerror(uv[i]), uv_strerror(uv[i]));
        ASSERT_STR_EQ(cmdipc_err_name(uv[i]), uv_err_name(uv[i]));
        ASSERT_NULL(cmdipc_err_wire_code(uv[i]));
    }
    ASSERT_STR_EQ(cmdipc_err_name(UV_EINVAL), "EINVAL");
    ASSERT_STR_EQ(cmdipc_err_name(UV_EOF), "EOF");
    ASSERT_STR_EQ(cmdipc_strerror(UV_EINVAL), "invalid argument");

    /* Far outside every block, or positive: unknown. */
    ASSERT_STR_EQ(cmdipc_strerror(-1000000), "unknown error");
    ASSERT_STR_EQ(cmdipc_strerror(1), "unknown error");
    ASSERT_STR_EQ(cmdipc_err_name(1), "UNKNOWN");
}

TEST(error_unknown_codes_are_static) {
    /* errno.h: cmdipc_strerror() yields "unknown error" for an unknown code,
     * and both strings are static. -20050 is an unassigned code of cmdipc's
     * own block; -200 is no errno value. libuv's uv_strerror()/uv_err_name()
     * return a freshly allocated (leaked) "Unknown system error N" for them. */
    static const int unknown[] = {-20050, CMDIPC__ERRNO_FIRST, -200};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ASSERT_STR_EQ(cmdipc_strerror(unknown[i]), "unknown error");
        ASSERT_PTR_EQ(cmdipc_strerror(unknown[i]), cmdipc_strerror(unknown[i]));
        ASSERT_PTR_EQ(cmdipc_err_name(unknown[i]), cmdipc_err_name(unknown[i]));
    }
}

TEST(drop_reason_names) {
    for (int i = 0; i < CMDIPC_DROP__MAX; i++) {
        const char *name = cmdipc_drop_reason_name((cmdipc_drop_reason_t)i);
        ASSERT_NOT_NULL(name);
        ASSERT_NE(name[0], '\0');
        for (int j = 0; j < i; j++)
            ASSERT_STR_NE(cmdipc_drop_reason_name((cmdipc_drop_reason_t)j), name);
    }
    ASSERT_STR_EQ(cmdipc_drop_reason_name(CMDIPC_DROP_INVALID), "invalid");
    ASSERT_NULL(cmdipc_drop_reason_name(CMDIPC_DROP__MAX));
}

TEST_LIST_BEGIN
TEST_ENTRY(type_names)
TEST_ENTRY(round_trip_register_request)
TEST_ENTRY(round_trip_register_response)
TEST_ENTRY(register_response_any_error_string_is_duplicate)
TEST_ENTRY(round_trip_list_request)
TEST_ENTRY(round_trip_list_response)
TEST_ENTRY(round_trip_execute_request)
TEST_ENTRY(non_object_request_passes_through)
TEST_ENTRY(round_trip_execute_response)
TEST_ENTRY(round_trip_event)
TEST_ENTRY(decode_ignores_trailing_newline_and_whitespace)
TEST_ENTRY(null_payload_is_absent)
TEST_ENTRY(extra_keys_ignored_and_not_emitted)
TEST_ENTRY(error_response_without_message)
TEST_ENTRY(unknown_error_code_reads_internal_error)
TEST_ENTRY(locally_built_messages_encode)
TEST_ENTRY(reject_duplicate_keys)
TEST_ENTRY(reject_nul)
TEST_ENTRY(reject_raw_nul_after_backslash)
TEST_ENTRY(reject_invalid_utf8)
TEST_ENTRY(reject_number_range)
TEST_ENTRY(reject_not_a_message)
TEST_ENTRY(reject_trailing_garbage)
TEST_ENTRY(reject_unknown_type)
TEST_ENTRY(reject_envelope_errors)
TEST_ENTRY(depth_64_accepted_65_rejected)
TEST_ENTRY(depth_500000_on_small_stack)
TEST_ENTRY(containers_65536_accepted_65537_rejected)
TEST_ENTRY(containers_custom_limit)
TEST_ENTRY(line_limit_custom)
TEST_ENTRY(line_limit_default_1mib)
TEST_ENTRY(execute_id_filled_when_readable)
TEST_ENTRY(execute_id_read_before_a_syntax_error)
TEST_ENTRY(execute_id_empty_otherwise)
TEST_ENTRY(uuid_10000_distinct_v4)
TEST_ENTRY(uuid_differs_after_fork)
TEST_ENTRY(is_uuid)
TEST_ENTRY(json_check_limits)
TEST_ENTRY(json_check_rejects_invalid_utf8_key)
TEST_ENTRY(error_table)
TEST_ENTRY(error_unknown_codes_are_static)
TEST_ENTRY(drop_reason_names)
TEST_LIST_END
