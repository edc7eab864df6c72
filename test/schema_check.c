/* cmdipc tests — spec-v1 schema constraints, compiled in (see schema_check.h). */
#include "schema_check.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *text;
    json_t *schema; /* parsed once */
} schema_file_t;

/* The spec-v1 schema files, verbatim from the upstream spec/schemas
 * (CoralStackCom/cmd-ipc at 01658a4). Regenerate this table when the spec
 * changes; the checker refuses keywords it does not implement. */
/* clang-format off */
static schema_file_t schema_files[] = {
    {"command-definition.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/command-definition.json\",\n"
     "  \"title\": \"CommandDefinitionBase\",\n"
     "  \"description\": \"Shared shape for a command entry as carried on the wire (in register/list messages).\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": {\n"
     "      \"type\": \"string\",\n"
     "      \"minLength\": 1,\n"
     "      \"description\": \"Command ID. IDs prefixed with '_' are private and MUST NOT appear in wire messages.\"\n"
     "    },\n"
     "    \"description\": {\n"
     "      \"type\": \"string\"\n"
     "    },\n"
     "    \"schema\": {\n"
     "      \"type\": \"object\",\n"
     "      \"additionalProperties\": false,\n"
     "      \"properties\": {\n"
     "        \"request\": {\n"
     "          \"description\": \"JSON Schema for the request payload (implementation-defined shape)\"\n"
     "        },\n"
     "        \"response\": { \"description\": \"JSON Schema for the response result\" }\n"
     "      }\n"
     "    }\n"
     "  }\n"
     "}\n",
     NULL},
    {"event.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/event.json\",\n"
     "  \"title\": \"Event\",\n"
     "  \"description\": \"Fire-and-forget event. Events with 'eventId' prefixed by '_' are private and MUST NOT be broadcast on any channel.\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\", \"eventId\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": {\n"
     "      \"type\": \"string\",\n"
     "      \"minLength\": 1,\n"
     "      \"description\": \"Message ID, also used by receivers for dedup on broadcast fan-out.\"\n"
     "    },\n"
     "    \"type\": { \"const\": \"event\" },\n"
     "    \"eventId\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"payload\": {\n"
     "      \"description\": \"Event payload. Shape is defined by the EventSchemaMap entry (if any).\"\n"
     "    }\n"
     "  }\n"
     "}\n",
     NULL},
    {"execute.command.request.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/execute.command.request.json\",\n"
     "  \"title\": \"ExecuteCommandRequest\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\", \"commandId\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"type\": { \"const\": \"execute.command.request\" },\n"
     "    \"commandId\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"request\": {\n"
     "      \"type\": \"object\",\n"
     "      \"description\": \"Command-specific request payload. Shape is defined by the target command's schema (if any).\",\n"
     "      \"additionalProperties\": true\n"
     "    }\n"
     "  }\n"
     "}\n",
     NULL},
    {"execute.command.response.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/execute.command.response.json\",\n"
     "  \"title\": \"ExecuteCommandResponse\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\", \"thid\", \"response\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"type\": { \"const\": \"execute.command.response\" },\n"
     "    \"thid\": {\n"
     "      \"type\": \"string\",\n"
     "      \"minLength\": 1,\n"
     "      \"description\": \"Echoes the 'id' of the execute.command.request being responded to.\"\n"
     "    },\n"
     "    \"response\": {\n"
     "      \"oneOf\": [\n"
     "        {\n"
     "          \"type\": \"object\",\n"
     "          \"required\": [\"ok\"],\n"
     "          \"additionalProperties\": false,\n"
     "          \"properties\": {\n"
     "            \"ok\": { \"const\": true },\n"
     "            \"result\": {\n"
     "              \"description\": \"Command-specific result; shape is defined by the target command's schema (if any).\"\n"
     "            }\n"
     "          }\n"
     "        },\n"
     "        {\n"
     "          \"type\": \"object\",\n"
     "          \"required\": [\"ok\", \"error\"],\n"
     "          \"additionalProperties\": false,\n"
     "          \"properties\": {\n"
     "            \"ok\": { \"const\": false },\n"
     "            \"error\": {\n"
     "              \"type\": \"object\",\n"
     "              \"required\": [\"code\", \"message\"],\n"
     "              \"additionalProperties\": false,\n"
     "              \"properties\": {\n"
     "                \"code\": {\n"
     "                  \"enum\": [\n"
     "                    \"not_found\",\n"
     "                    \"invalid_request\",\n"
     "                    \"internal_error\",\n"
     "                    \"timeout\",\n"
     "                    \"channel_disconnected\"\n"
     "                  ]\n"
     "                },\n"
     "                \"message\": { \"type\": \"string\" }\n"
     "              }\n"
     "            }\n"
     "          }\n"
     "        }\n"
     "      ]\n"
     "    }\n"
     "  }\n"
     "}\n",
     NULL},
    {"list.commands.request.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/list.commands.request.json\",\n"
     "  \"title\": \"ListCommandsRequest\",\n"
     "  \"description\": \"Asks a peer to enumerate the commands it exposes (private commands excluded).\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"type\": { \"const\": \"list.commands.request\" }\n"
     "  }\n"
     "}\n",
     NULL},
    {"list.commands.response.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/list.commands.response.json\",\n"
     "  \"title\": \"ListCommandsResponse\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\", \"thid\", \"commands\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"type\": { \"const\": \"list.commands.response\" },\n"
     "    \"thid\": {\n"
     "      \"type\": \"string\",\n"
     "      \"minLength\": 1,\n"
     "      \"description\": \"Echoes the 'id' of the list.commands.request being responded to.\"\n"
     "    },\n"
     "    \"commands\": {\n"
     "      \"type\": \"array\",\n"
     "      \"items\": { \"$ref\": \"command-definition.json\" }\n"
     "    }\n"
     "  }\n"
     "}\n",
     NULL},
    {"message.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/message.json\",\n"
     "  \"title\": \"CommandMessage\",\n"
     "  \"description\": \"Any message on the cmd-ipc wire. Discriminated union by 'type'.\",\n"
     "  \"oneOf\": [\n"
     "    { \"$ref\": \"register.command.request.json\" },\n"
     "    { \"$ref\": \"register.command.response.json\" },\n"
     "    { \"$ref\": \"list.commands.request.json\" },\n"
     "    { \"$ref\": \"list.commands.response.json\" },\n"
     "    { \"$ref\": \"execute.command.request.json\" },\n"
     "    { \"$ref\": \"execute.command.response.json\" },\n"
     "    { \"$ref\": \"event.json\" }\n"
     "  ]\n"
     "}\n",
     NULL},
    {"register.command.request.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/register.command.request.json\",\n"
     "  \"title\": \"RegisterCommandRequest\",\n"
     "  \"description\": \"Announces a single command that the sender can execute on behalf of the receiver.\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\", \"command\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": {\n"
     "      \"type\": \"string\",\n"
     "      \"minLength\": 1,\n"
     "      \"description\": \"Message ID. Echoed as 'thid' on the response.\"\n"
     "    },\n"
     "    \"type\": { \"const\": \"register.command.request\" },\n"
     "    \"command\": { \"$ref\": \"command-definition.json\" }\n"
     "  }\n"
     "}\n",
     NULL},
    {"register.command.response.json",
     "{\n"
     "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
     "  \"$id\": \"https://coralstack.com/cmd-ipc/spec/v1/register.command.response.json\",\n"
     "  \"title\": \"RegisterCommandResponse\",\n"
     "  \"type\": \"object\",\n"
     "  \"required\": [\"id\", \"type\", \"thid\", \"response\"],\n"
     "  \"additionalProperties\": false,\n"
     "  \"properties\": {\n"
     "    \"id\": { \"type\": \"string\", \"minLength\": 1 },\n"
     "    \"type\": { \"const\": \"register.command.response\" },\n"
     "    \"thid\": {\n"
     "      \"type\": \"string\",\n"
     "      \"minLength\": 1,\n"
     "      \"description\": \"Echoes the 'id' of the register.command.request being responded to.\"\n"
     "    },\n"
     "    \"response\": {\n"
     "      \"oneOf\": [\n"
     "        {\n"
     "          \"type\": \"object\",\n"
     "          \"required\": [\"ok\"],\n"
     "          \"additionalProperties\": false,\n"
     "          \"properties\": { \"ok\": { \"const\": true } }\n"
     "        },\n"
     "        {\n"
     "          \"type\": \"object\",\n"
     "          \"required\": [\"ok\", \"error\"],\n"
     "          \"additionalProperties\": false,\n"
     "          \"properties\": {\n"
     "            \"ok\": { \"const\": false },\n"
     "            \"error\": { \"enum\": [\"duplicate_command\"] }\n"
     "          }\n"
     "        }\n"
     "      ]\n"
     "    }\n"
     "  }\n"
     "}\n",
     NULL},
};
/* clang-format on */

#define N_SCHEMAS (sizeof(schema_files) / sizeof(schema_files[0]))

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];

/* Keywords the validator implements; annotations are accepted and ignored. */
static const char *const implemented[] = {
    "type",  "required", "properties", "additionalProperties",
    "const", "enum",     "minLength",  "oneOf",
    "items", "$ref"};
static const char *const annotations[] = {"$schema", "$id", "title", "description"};

static int in_list(const char *key, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0)
            return 1;
    return 0;
}

/* Verifies that a schema uses only implemented keywords (recursively through
 * the subschema positions). */
static int audit(const json_t *schema, const char *where) {
    const char *key;
    json_t *value;

    if (!json_is_object(schema)) {
        snprintf(load_error, sizeof(load_error), "%s: a schema is not an object", where);
        return -1;
    }
    json_object_foreach((json_t *)schema, key, value) {
        if (in_list(key, annotations, sizeof(annotations) / sizeof(annotations[0])))
            continue;
        if (!in_list(key, implemented, sizeof(implemented) / sizeof(implemented[0]))) {
            snprintf(load_error, sizeof(load_error), "%s: unsupported keyword \"%s\"",
                     where, key);
            return -1;
        }
        if (strcmp(key, "properties") == 0) {
            const char *pk;
            json_t *pv;
            if (!json_is_object(value))
                goto bad;
            json_object_foreach(value, pk, pv) {
                if (audit(pv, where) != 0)
                    return -1;
            }
        } else if (strcmp(key, "oneOf") == 0) {
            size_t i;
            json_t *sv;
            if (!json_is_array(value))
                goto bad;
            json_array_foreach(value, i, sv) {
                if (audit(sv, where) != 0)
                    return -1;
            }
        } else if (strcmp(key, "items") == 0 ||
                   (strcmp(key, "additionalProperties") == 0 && json_is_object(value))) {
            if (audit(value, where) != 0)
                return -1;
        } else if (strcmp(key, "$ref") == 0 || strcmp(key, "required") == 0 ||
                   strcmp(key, "enum") == 0 || strcmp(key, "minLength") == 0) {
            if ((strcmp(key, "$ref") == 0 && !json_is_string(value)) ||
                (strcmp(key, "required") == 0 && !json_is_array(value)) ||
                (strcmp(key, "enum") == 0 && !json_is_array(value)) ||
                (strcmp(key, "minLength") == 0 && !json_is_integer(value)))
                goto bad;
        }
    }
    return 0;
bad:
    snprintf(load_error, sizeof(load_error), "%s: malformed keyword \"%s\"", where, key);
    return -1;
}

static void load_all(void) {
    for (size_t i = 0; i < N_SCHEMAS; i++) {
        json_error_t jerr;
        json_t *s = json_loads(schema_files[i].text, JSON_REJECT_DUPLICATES, &jerr);
        if (s == NULL) {
            snprintf(load_error, sizeof(load_error), "%s: %s", schema_files[i].name,
                     jerr.text);
            return;
        }
        schema_files[i].schema = s;
        if (audit(s, schema_files[i].name) != 0)
            return;
    }
    /* PROTOCOL.md section 0 rules 13 and 15: `request` may be any JSON value.
     * Its subschema keeps its annotation only. */
    for (size_t i = 0; i < N_SCHEMAS; i++) {
        if (strcmp(schema_files[i].name, "execute.command.request.json") == 0) {
            json_t *props = json_object_get(schema_files[i].schema, "properties");
            json_t *req = json_object_get(props, "request");
            if (req == NULL) {
                snprintf(load_error, sizeof(load_error),
                         "execute.command.request.json: no properties.request");
                return;
            }
            json_object_del(req, "type");
            json_object_del(req, "additionalProperties");
        }
    }
}

static const json_t *find_schema(const char *name) {
    if (name == NULL)
        return NULL;
    if (strncmp(name, "./", 2) == 0)
        name += 2;
    for (size_t i = 0; i < N_SCHEMAS; i++)
        if (strcmp(schema_files[i].name, name) == 0)
            return schema_files[i].schema;
    return NULL;
}

int cmdipc_test_json_equal(const json_t *a, const json_t *b) {
    if (a == NULL || b == NULL)
        return a == b;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!cmdipc_test_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *key;
        json_t *av;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, key, av) {
            if (!cmdipc_test_json_equal(av, json_object_get(b, key)))
                return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static int type_ok(const char *type, const json_t *v) {
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "integer") == 0) {
        if (json_is_integer(v))
            return 1;
        if (json_is_real(v)) {
            double d = json_real_value(v);
            return d == (double)(long long)d;
        }
        return 0;
    }
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "null") == 0)
        return json_is_null(v);
    return 0;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
        case JSON_OBJECT:
            return "object";
        case JSON_ARRAY:
            return "array";
        case JSON_STRING:
            return "string";
        case JSON_INTEGER:
            return "integer";
        case JSON_REAL:
            return "number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "boolean";
        case JSON_NULL:
            return "null";
    }
    return "?";
}

static size_t utf8_length(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

typedef struct {
    char *err;
    size_t errlen;
} report_t;

static void fail(report_t *rep, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(report_t *rep, const char *path, const char *fmt, ...) {
    char reason[400];
    va_list ap;

    if (rep->err == NULL || rep->errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    snprintf(rep->err, rep->errlen, "%s: %s", path[0] ? path : "(root)", reason);
}

static void short_dump(const json_t *v, char *out, size_t outlen) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        snprintf(out, outlen, "?");
        return;
    }
    if (strlen(s) > 60)
        snprintf(out, outlen, "%.57s...", s);
    else
        snprintf(out, outlen, "%s", s);
    free(s);
}

static int validate(const json_t *schema, const json_t *v, const char *path,
                    report_t *rep, int depth);

static int validate_one_of(const json_t *branches, const json_t *v, const char *path,
                           report_t *rep, int depth) {
    char reasons[600] = "";
    size_t matched = 0, i;
    json_t *branch;

    json_array_foreach((json_t *)branches, i, branch) {
        char buf[300] = "";
        report_t sub = {buf, sizeof(buf)};
        if (validate(branch, v, path, &sub, depth + 1) == 0) {
            matched++;
        } else {
            size_t used = strlen(reasons);
            snprintf(reasons + used, sizeof(reasons) - used, "%s[%zu] %s",
                     used ? "; " : "", i, buf);
        }
    }
    if (matched == 1)
        return 0;
    if (matched == 0)
        fail(rep, path, "matches none of oneOf (%s)", reasons);
    else
        fail(rep, path, "matches %zu branches of oneOf, exactly one required", matched);
    return -1;
}

static int validate(const json_t *schema, const json_t *v, const char *path,
                    report_t *rep, int depth) {
    json_t *kw;
    char shown[80];

    if (depth > 32) {
        fail(rep, path, "schema nesting too deep");
        return -1;
    }
    if ((kw = json_object_get(schema, "$ref")) != NULL) {
        const json_t *target = find_schema(json_string_value(kw));
        if (target == NULL) {
            fail(rep, path, "unresolvable $ref \"%s\"", json_string_value(kw));
            return -1;
        }
        if (validate(target, v, path, rep, depth + 1) != 0)
            return -1;
    }
    if ((kw = json_object_get(schema, "type")) != NULL) {
        int ok = 0;
        if (json_is_string(kw)) {
            ok = type_ok(json_string_value(kw), v);
        } else if (json_is_array(kw)) {
            size_t i;
            json_t *t;
            json_array_foreach(kw, i, t) {
                if (json_is_string(t) && type_ok(json_string_value(t), v))
                    ok = 1;
            }
        }
        if (!ok) {
            char want[80];
            short_dump(kw, want, sizeof(want));
            fail(rep, path, "is %s, schema requires type %s", type_name(v), want);
            return -1;
        }
    }
    if ((kw = json_object_get(schema, "const")) != NULL && !cmdipc_test_json_equal(kw, v)) {
        char want[80];
        short_dump(kw, want, sizeof(want));
        short_dump(v, shown, sizeof(shown));
        fail(rep, path, "is %s, schema requires const %s", shown, want);
        return -1;
    }
    if ((kw = json_object_get(schema, "enum")) != NULL) {
        size_t i;
        json_t *e;
        int ok = 0;
        json_array_foreach(kw, i, e) {
            if (cmdipc_test_json_equal(e, v))
                ok = 1;
        }
        if (!ok) {
            char want[80];
            short_dump(kw, want, sizeof(want));
            short_dump(v, shown, sizeof(shown));
            fail(rep, path, "is %s, not one of enum %s", shown, want);
            return -1;
        }
    }
    if ((kw = json_object_get(schema, "minLength")) != NULL && json_is_string(v) &&
        utf8_length(json_string_value(v), json_string_length(v)) <
            (size_t)json_integer_value(kw)) {
        fail(rep, path, "string shorter than minLength %lld",
             (long long)json_integer_value(kw));
        return -1;
    }
    if (json_is_object(v)) {
        json_t *props = json_object_get(schema, "properties");
        json_t *addl = json_object_get(schema, "additionalProperties");
        const char *key;
        json_t *member;

        if ((kw = json_object_get(schema, "required")) != NULL) {
            size_t i;
            json_t *name;
            json_array_foreach(kw, i, name) {
                if (json_is_string(name) &&
                    json_object_get(v, json_string_value(name)) == NULL) {
                    fail(rep, path, "required member \"%s\" missing",
                         json_string_value(name));
                    return -1;
                }
            }
        }
        json_object_foreach((json_t *)v, key, member) {
            char sub[512];
            json_t *ps = props ? json_object_get(props, key) : NULL;
            snprintf(sub, sizeof(sub), "%s/%s", path, key);
            if (ps != NULL) {
                if (validate(ps, member, sub, rep, depth + 1) != 0)
                    return -1;
            } else if (json_is_false(addl)) {
                fail(rep, path, "member \"%s\" not allowed (additionalProperties: false)",
                     key);
                return -1;
            } else if (json_is_object(addl)) {
                if (validate(addl, member, sub, rep, depth + 1) != 0)
                    return -1;
            }
        }
    }
    if (json_is_array(v) && (kw = json_object_get(schema, "items")) != NULL) {
        size_t i;
        json_t *item;
        json_array_foreach((json_t *)v, i, item) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s/%zu", path, i);
            if (validate(kw, item, sub, rep, depth + 1) != 0)
                return -1;
        }
    }
    if ((kw = json_object_get(schema, "oneOf")) != NULL &&
        validate_one_of(kw, v, path, rep, depth) != 0)
        return -1;
    return 0;
}

int cmdipc_test_schema_check_named(const char *schema, const json_t *value, char *err,
                                   size_t errlen) {
    report_t rep = {err, errlen};
    const json_t *s;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    pthread_once(&load_once, load_all);
    if (load_error[0] != '\0') {
        fail(&rep, "", "embedded schemas unusable: %s", load_error);
        return -1;
    }
    if (value == NULL) {
        fail(&rep, "", "no value");
        return -1;
    }
    s = find_schema(schema);
    if (s == NULL) {
        fail(&rep, "", "unknown schema \"%s\"", schema ? schema : "(null)");
        return -1;
    }
    return validate(s, value, "", &rep, 0);
}

const char *cmdipc_test_schema_for_type(const char *type) {
    static const char *const map[][2] = {
        {"register.command.request", "register.command.request.json"},
        {"register.command.response", "register.command.response.json"},
        {"list.commands.request", "list.commands.request.json"},
        {"list.commands.response", "list.commands.response.json"},
        {"execute.command.request", "execute.command.request.json"},
        {"execute.command.response", "execute.command.response.json"},
        {"event", "event.json"},
    };
    if (type == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(type, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

int cmdipc_test_schema_check(const json_t *msg, char *err, size_t errlen) {
    report_t rep = {err, errlen};
    const json_t *type;
    const char *schema;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!json_is_object(msg)) {
        fail(&rep, "", "a message must be a JSON object, not %s",
             msg ? type_name(msg) : "nothing");
        return -1;
    }
    type = json_object_get(msg, "type");
    if (!json_is_string(type)) {
        fail(&rep, "/type", type ? "not a string" : "missing");
        return -1;
    }
    schema = cmdipc_test_schema_for_type(json_string_value(type));
    if (schema == NULL) {
        fail(&rep, "/type", "\"%s\" is not a spec-v1 message type",
             json_string_value(type));
        return -1;
    }
    return cmdipc_test_schema_check_named(schema, msg, err, errlen);
}

int cmdipc_test_emission_check(const json_t *msg, char *err, size_t errlen) {
    report_t rep = {err, errlen};
    const json_t *response;

    if (cmdipc_test_schema_check(msg, err, errlen) != 0)
        return -1;
    if (json_is_null(json_object_get(msg, "request"))) {
        fail(&rep, "/request", "null (optional members are omitted, never null)");
        return -1;
    }
    if (json_is_null(json_object_get(msg, "payload"))) {
        fail(&rep, "/payload", "null (optional members are omitted, never null)");
        return -1;
    }
    response = json_object_get(msg, "response");
    if (json_is_null(json_object_get(response, "result"))) {
        fail(&rep, "/response/result", "null (optional members are omitted, never null)");
        return -1;
    }
    return 0;
}
