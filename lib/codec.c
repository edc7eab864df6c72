/* cmdipc — the message codec: text <-> cmdipc_msg_t.
 *
 * Decoding validates completely (JSON within the limits, UTF-8, no duplicate
 * keys, no NUL, a spec-v1 envelope); encoding writes the envelope by hand and
 * the payload as it is held (exact text verbatim, or a json_t dumped
 * compactly). Optional members are omitted, never null. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const type_names[] = {
    NULL,
    "register.command.request",
    "register.command.response",
    "list.commands.request",
    "list.commands.response",
    "execute.command.request",
    "execute.command.response",
    "event",
};

static const size_t type_len[] = {0, 24, 25, 21, 22, 23, 24, 5};

const char *cmdipc_msg_type_name(cmdipc_msg_type_t type) {
    if (type < CMDIPC_MSG_REGISTER_REQUEST || type > CMDIPC_MSG_EVENT)
        return NULL;
    return type_names[type];
}

void cmdipc_limits_init(cmdipc_limits_t *lim) {
    lim->version = CMDIPC_LIMITS_VERSION;
    lim->max_line = 1024 * 1024;
    lim->max_depth = 64;
    lim->max_containers = 65536;
}

/* ---------------------------------------------------------------------------
 * Accessors. */

cmdipc_msg_type_t cmdipc_msg_type(const cmdipc_msg_t *m) { return (cmdipc_msg_type_t)m->type; }
const char *cmdipc_msg_id(const cmdipc_msg_t *m) { return m->id; }
const char *cmdipc_msg_thid(const cmdipc_msg_t *m) { return m->thid; }
const char *cmdipc_msg_name(const cmdipc_msg_t *m) { return m->name; }
int cmdipc_msg_status(const cmdipc_msg_t *m) { return m->status; }

const char *cmdipc_msg_error_message(const cmdipc_msg_t *m) {
    if (m->type != CMDIPC_MSG_EXECUTE_RESPONSE || m->status == 0)
        return NULL;
    return m->message ? m->message : "";
}

json_t *cmdipc_msg_payload(cmdipc_msg_t *m) {
    if (m->body.json == NULL && m->body.text != NULL) {
        /* The text passed the scanner when the message was decoded. */
        m->body.json = cmdipc__json_build(m->body.text, m->body.len);
    }
    return m->body.json;
}

void cmdipc_msg_free(cmdipc_msg_t *m) {
    if (m == NULL)
        return;
    json_decref(m->body.json);
    if (m->body.text_owned)
        free(m->body.text);
    json_decref(m->root);
    cmdipc__pfree(m);
}

/* ---------------------------------------------------------------------------
 * Construction. */

static size_t opt_len(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *opt_copy(char **p, const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    const char *r = *p;
    *p += n;
    return r;
}

cmdipc_msg_t *cmdipc__msg_new(cmdipc_msg_type_t type, const char *id, const char *thid,
                              const char *name, const char *message,
                              const char *description) {
    size_t n = opt_len(id) + opt_len(thid) + opt_len(name) + opt_len(message) +
               opt_len(description);
    cmdipc_msg_t *m = cmdipc__palloc(sizeof(*m) + n);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)type;
    char *p = m->strings;
    if (id != NULL) {
        m->id = opt_copy(&p, id);
    } else {
        cmdipc__uuid4(m->idbuf);
        m->id = m->idbuf;
    }
    m->thid = opt_copy(&p, thid);
    m->name = opt_copy(&p, name);
    m->message = opt_copy(&p, message);
    m->description = opt_copy(&p, description);
    return m;
}

void cmdipc__msg_set_json(cmdipc_msg_t *m, json_t *v) {
    m->raw = NULL; /* the payload changes: the line no longer says it */
    json_decref(m->body.json);
    if (m->body.text_owned)
        free(m->body.text);
    m->body.text_owned = 0;
    m->body.text = NULL;
    m->body.len = 0;
    m->body.json = json_is_null(v) ? NULL : json_incref(v);
}

static cmdipc_msg_t *msg_copy(const cmdipc_msg_t *src, const char *id) {
    cmdipc_msg_t *m = cmdipc__msg_new((cmdipc_msg_type_t)src->type, id, src->thid, src->name,
                                      src->message, src->description);
    if (m == NULL)
        return NULL;
    m->status = src->status;
    m->body.json = json_incref(src->body.json);
    if (src->body.text != NULL) { /* the exact bytes travel on */
        m->body.text = malloc(src->body.len ? src->body.len : 1);
        if (m->body.text == NULL) {
            cmdipc_msg_free(m);
            return NULL;
        }
        memcpy(m->body.text, src->body.text, src->body.len);
        m->body.len = src->body.len;
        m->body.text_owned = 1;
    }
    return m;
}

cmdipc_msg_t *cmdipc__msg_reid(const cmdipc_msg_t *m) { return msg_copy(m, NULL); }

cmdipc_msg_t *cmdipc__msg_clone(const cmdipc_msg_t *m) { return msg_copy(m, m->id); }

/* ---------------------------------------------------------------------------
 * Encoding. */

static int put_body(cmdipc__buf_t *b, const cmdipc_msg_t *m) {
    if (m->body.text != NULL)
        return cmdipc__buf_put(b, m->body.text, m->body.len);
    return cmdipc__buf_put_json(b, m->body.json);
}

static int has_body(const cmdipc_msg_t *m) {
    return m->body.json != NULL || m->body.text != NULL;
}

/* Appends a string literal (its length known at compile time). */
#define LIT(b, lit) cmdipc__buf_put((b), (lit), sizeof(lit) - 1)

int cmdipc__msg_encode_buf(const cmdipc_msg_t *m, cmdipc__buf_t *b) {
    int rc = 0;
    if (m->raw != NULL) {
        if (m->id == m->raw_id) /* forwarded as it came */
            return cmdipc__buf_put(b, m->raw, m->raw_len);
        /* The same line with a new id. */
        rc |= cmdipc__buf_put(b, m->raw, m->raw_id_off);
        rc |= cmdipc__buf_put_jstr(b, m->id);
        rc |= cmdipc__buf_put(b, m->raw + m->raw_id_off + m->raw_id_len,
                              m->raw_len - m->raw_id_off - m->raw_id_len);
        return rc ? UV_ENOMEM : 0;
    }
    /* One reservation for the envelope (payloads reserve their own). */
    if (cmdipc__buf_reserve(b, 160 + (m->thid ? strlen(m->thid) : 0) +
                                  (m->name ? strlen(m->name) : 0)))
        return UV_ENOMEM;
    rc |= LIT(b, "{\"id\":");
    rc |= cmdipc__buf_put_jstr(b, m->id);
    rc |= LIT(b, ",\"type\":\"");
    rc |= cmdipc__buf_put(b, type_names[m->type], type_len[m->type]);
    rc |= cmdipc__buf_putc(b, '"');
    if (m->thid != NULL) {
        rc |= LIT(b, ",\"thid\":");
        rc |= cmdipc__buf_put_jstr(b, m->thid);
    }
    switch (m->type) {
        case CMDIPC_MSG_REGISTER_REQUEST:
            rc |= LIT(b, ",\"command\":{\"id\":");
            rc |= cmdipc__buf_put_jstr(b, m->name);
            if (m->description != NULL) {
                rc |= LIT(b, ",\"description\":");
                rc |= cmdipc__buf_put_jstr(b, m->description);
            }
            if (has_body(m)) {
                rc |= LIT(b, ",\"schema\":");
                rc |= put_body(b, m);
            }
            rc |= cmdipc__buf_putc(b, '}');
            break;
        case CMDIPC_MSG_REGISTER_RESPONSE:
            if (m->status == 0)
                rc |= LIT(b, ",\"response\":{\"ok\":true}");
            else
                rc |= LIT(b, ",\"response\":{\"ok\":false,\"error\":\"duplicate_command\"}");
            break;
        case CMDIPC_MSG_LIST_REQUEST:
            break;
        case CMDIPC_MSG_LIST_RESPONSE:
            rc |= LIT(b, ",\"commands\":");
            if (has_body(m))
                rc |= put_body(b, m);
            else
                rc |= LIT(b, "[]");
            break;
        case CMDIPC_MSG_EXECUTE_REQUEST:
            rc |= LIT(b, ",\"commandId\":");
            rc |= cmdipc__buf_put_jstr(b, m->name);
            if (has_body(m)) {
                rc |= LIT(b, ",\"request\":");
                rc |= put_body(b, m);
            }
            break;
        case CMDIPC_MSG_EXECUTE_RESPONSE:
            if (m->status == 0) {
                rc |= LIT(b, ",\"response\":{\"ok\":true");
                if (has_body(m)) {
                    rc |= LIT(b, ",\"result\":");
                    rc |= put_body(b, m);
                }
                rc |= cmdipc__buf_putc(b, '}');
            } else {
                const char *code = cmdipc_err_wire_code(m->status);
                if (code == NULL || m->status == CMDIPC_EDUPLICATE)
                    code = "internal_error";
                rc |= LIT(b, ",\"response\":{\"ok\":false,\"error\":{\"code\":\"");
                rc |= cmdipc__buf_puts(b, code);
                rc |= LIT(b, "\",\"message\":");
                rc |= cmdipc__buf_put_jstr(b, m->message ? m->message : "");
                rc |= LIT(b, "}}");
            }
            break;
        case CMDIPC_MSG_EVENT:
            rc |= LIT(b, ",\"eventId\":");
            rc |= cmdipc__buf_put_jstr(b, m->name);
            if (has_body(m)) {
                rc |= LIT(b, ",\"payload\":");
                rc |= put_body(b, m);
            }
            break;
        default:
            return UV_EINVAL;
    }
    rc |= cmdipc__buf_putc(b, '}');
    return rc ? UV_ENOMEM : 0;
}

char *cmdipc_msg_encode(const cmdipc_msg_t *m, size_t *len) {
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    if (m == NULL || cmdipc__msg_encode_buf(m, &b) != 0 || cmdipc__buf_putc(&b, '\0') != 0) {
        cmdipc__buf_free(&b);
        return NULL;
    }
    if (len != NULL)
        *len = b.len - 1;
    return b.data;
}

/* ---------------------------------------------------------------------------
 * JSON checks. */

static int json_check_rec(const json_t *v, unsigned depth, unsigned max_depth) {
    switch (json_typeof(v)) {
        case JSON_OBJECT: {
            if (depth + 1 > max_depth)
                return CMDIPC_EJSONDEPTH;
            void *it = json_object_iter((json_t *)v);
            while (it != NULL) {
                const char *k = json_object_iter_key(it);
                size_t klen = json_object_iter_key_len(it);
                if (strlen(k) != klen)
                    return CMDIPC_EJSONNUL;
                if (!cmdipc__utf8_valid(k, klen))
                    return CMDIPC_EBADJSON;
                int rc = json_check_rec(json_object_iter_value(it), depth + 1, max_depth);
                if (rc)
                    return rc;
                it = json_object_iter_next((json_t *)v, it);
            }
            return 0;
        }
        case JSON_ARRAY: {
            if (depth + 1 > max_depth)
                return CMDIPC_EJSONDEPTH;
            size_t n = json_array_size(v);
            for (size_t i = 0; i < n; i++) {
                int rc = json_check_rec(json_array_get(v, i), depth + 1, max_depth);
                if (rc)
                    return rc;
            }
            return 0;
        }
        case JSON_STRING: {
            const char *s = json_string_value(v);
            size_t n = json_string_length(v);
            if (memchr(s, 0, n) != NULL)
                return CMDIPC_EJSONNUL;
            return cmdipc__utf8_valid(s, n) ? 0 : CMDIPC_EBADJSON;
        }
        default:
            return 0;
    }
}

int cmdipc__json_check(const json_t *v, unsigned max_depth) {
    if (v == NULL)
        return 0;
    return json_check_rec(v, 0, max_depth);
}

int cmdipc__json_prescan(const char *buf, size_t len, unsigned max_depth,
                         size_t max_containers, size_t *pos) {
    unsigned depth = 0;
    size_t containers = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\0') {
            *pos = i;
            return CMDIPC_EJSONNUL;
        }
        if (in_str) {
            if (c == '\\') {
                if (++i < len && buf[i] == '\0') {
                    *pos = i;
                    return CMDIPC_EJSONNUL;
                }
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        switch (c) {
            case '"':
                in_str = 1;
                break;
            case '{':
            case '[':
                if (++depth > max_depth) {
                    *pos = i;
                    return CMDIPC_EJSONDEPTH;
                }
                if (++containers > max_containers) {
                    *pos = i;
                    return CMDIPC_EJSONSIZE;
                }
                break;
            case '}':
            case ']':
                if (depth > 0)
                    depth--;
                break;
            default:
                break;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Decoding. */

static void set_err(cmdipc_decode_error_t *err, int status, size_t pos, const char *text) {
    if (err == NULL)
        return;
    err->status = status;
    err->position = pos;
    snprintf(err->text, sizeof(err->text), "%.119s", text);
}

/* What both decoders do first: reset *err (the rest of it is filled on
 * failure only), default the limits, strip the line's end and check its
 * length. Returns 0 or the status to return. */
static inline int decode_begin(const char *buf, size_t *len, const cmdipc_limits_t **lim,
                               cmdipc_limits_t *defaults, cmdipc_decode_error_t *err) {
    if (err != NULL) {
        err->status = 0;
        err->position = 0;
        err->text[0] = '\0';
        err->execute_id[0] = '\0';
    }
    if (*lim == NULL) {
        cmdipc_limits_init(defaults);
        *lim = defaults;
    }
    if (buf == NULL) {
        set_err(err, CMDIPC_EBADJSON, 0, "no input");
        return CMDIPC_EBADJSON;
    }
    size_t n = *len;
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    *len = n;
    if (n >= (*lim)->max_line) {
        set_err(err, CMDIPC_ELINETOOLONG, (*lim)->max_line, "line longer than the limit");
        return CMDIPC_ELINETOOLONG;
    }
    return 0;
}

/* Member k of o as a string: required (present, string, non-empty if
 * nonempty) or optional (absent/null -> NULL). Returns 0 or -1. */
static int get_str(json_t *o, const char *k, int required, int nonempty, const char **out) {
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (v == NULL || (!required && json_is_null(v)))
        return required ? -1 : 0;
    if (!json_is_string(v))
        return -1;
    if (nonempty && json_string_length(v) == 0)
        return -1;
    *out = json_string_value(v);
    return 0;
}

static json_t *get_payload(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return (v == NULL || json_is_null(v)) ? NULL : v;
}

/* A command definition: {id, description?, schema?}. Returns the schema to
 * carry (only its request/response members), a new reference via *schema. */
static int check_def(json_t *def, const char **id, const char **description, json_t **schema) {
    *schema = NULL;
    if (!json_is_object(def))
        return -1;
    if (get_str(def, "id", 1, 1, id) || get_str(def, "description", 0, 0, description))
        return -1;
    json_t *s = json_object_get(def, "schema");
    if (s == NULL || json_is_null(s))
        return 0;
    if (!json_is_object(s))
        return -1;
    json_t *req = json_object_get(s, "request");
    json_t *res = json_object_get(s, "response");
    if (json_object_size(s) == (size_t)(req != NULL) + (size_t)(res != NULL)) {
        *schema = json_incref(s);
        return 0;
    }
    /* Extra members are ignored on receipt and never re-emitted. */
    *schema = json_object();
    if (*schema == NULL)
        return -1;
    if (req != NULL)
        json_object_set(*schema, "request", req);
    if (res != NULL)
        json_object_set(*schema, "response", res);
    return 0;
}

/* Validates the commands of a list response; returns the array to carry
 * (a new reference), or NULL if invalid. */
static json_t *check_commands(json_t *cmds) {
    if (!json_is_array(cmds))
        return NULL;
    size_t n = json_array_size(cmds);
    int clean = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(cmds, i);
        const char *id, *desc;
        json_t *schema;
        if (check_def(d, &id, &desc, &schema))
            return NULL;
        if (json_object_size(d) != 1 + (size_t)(desc != NULL) + (size_t)(schema != NULL) ||
            (schema != NULL && schema != json_object_get(d, "schema")))
            clean = 0;
        json_decref(schema);
    }
    if (clean)
        return json_incref(cmds);
    /* Rebuild without extra members. */
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < n; i++) {
        json_t *d = json_array_get(cmds, i);
        const char *id, *desc;
        json_t *schema;
        json_t *o = json_object();
        if (o == NULL || check_def(d, &id, &desc, &schema)) {
            json_decref(o);
            json_decref(out);
            return NULL;
        }
        json_object_set_new(o, "id", json_string(id));
        if (desc != NULL)
            json_object_set_new(o, "description", json_string(desc));
        if (schema != NULL)
            json_object_set_new(o, "schema", schema);
        json_array_append_new(out, o);
    }
    return out;
}

static int status_of_jansson(const json_error_t *e) {
    switch (json_error_code(e)) {
        case json_error_duplicate_key:
            return CMDIPC_EDUPKEY;
        case json_error_null_character:
        case json_error_null_byte_in_key:
            return CMDIPC_EJSONNUL;
        case json_error_numeric_overflow:
            return CMDIPC_EJSONRANGE;
        case json_error_stack_overflow:
            return CMDIPC_EJSONDEPTH;
        case json_error_out_of_memory:
            return UV_ENOMEM;
        default:
            return CMDIPC_EBADJSON;
    }
}

static void note_execute_id(cmdipc_decode_error_t *err, json_t *root, const char *buf,
                            size_t len) {
    if (err == NULL)
        return;
    err->execute_id[0] = '\0';
    if (root != NULL) {
        const char *type = NULL, *id = NULL;
        if (json_is_object(root) && get_str(root, "type", 1, 1, &type) == 0 &&
            strcmp(type, "execute.command.request") == 0 &&
            get_str(root, "id", 1, 1, &id) == 0 && strlen(id) < sizeof(err->execute_id))
            memcpy(err->execute_id, id, strlen(id) + 1);
        return;
    }
    cmdipc__scan_execute_id(buf, len, err->execute_id, sizeof(err->execute_id));
}

int cmdipc__msg_decode_jansson(const char *buf, size_t len, const cmdipc_limits_t *lim,
                               cmdipc_msg_t **out, cmdipc_decode_error_t *err) {
    cmdipc_limits_t defaults;
    json_error_t jerr;
    const char *what = "invalid message";
    int status;
    size_t pos = 0;

    *out = NULL;
    status = decode_begin(buf, &len, &lim, &defaults, err);
    if (status != 0)
        return status;
    status = cmdipc__json_prescan(buf, len, lim->max_depth, lim->max_containers, &pos);
    if (status != 0) {
        set_err(err, status, pos, cmdipc_strerror(status));
        note_execute_id(err, NULL, buf, len);
        return status;
    }
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        status = status_of_jansson(&jerr);
        set_err(err, status, (size_t)jerr.position, jerr.text);
        note_execute_id(err, NULL, buf, len);
        return status;
    }

    const char *type = NULL, *id = NULL, *thid = NULL, *name = NULL, *message = NULL,
               *description = NULL;
    json_t *body = NULL; /* new reference */
    int msg_status = 0;
    int t = 0;

    status = CMDIPC_EBADMSG;
    if (!json_is_object(root)) {
        what = "not a JSON object";
        goto fail;
    }
    if (get_str(root, "type", 1, 0, &type)) {
        what = "\"type\" missing or not a string";
        goto fail;
    }
    for (int i = CMDIPC_MSG_REGISTER_REQUEST; i <= CMDIPC_MSG_EVENT; i++)
        if (strcmp(type, type_names[i]) == 0)
            t = i;
    if (t == 0) {
        status = CMDIPC_EUNKNOWNTYPE;
        what = "unknown message type";
        goto fail;
    }
    if (get_str(root, "id", 1, 1, &id)) {
        what = "\"id\" missing, empty or not a string";
        goto fail;
    }
    switch (t) {
        case CMDIPC_MSG_REGISTER_REQUEST:
            if (check_def(json_object_get(root, "command"), &name, &description, &body)) {
                what = "\"command\" is not a valid command definition";
                goto fail;
            }
            break;
        case CMDIPC_MSG_LIST_REQUEST:
            break;
        case CMDIPC_MSG_LIST_RESPONSE:
        case CMDIPC_MSG_REGISTER_RESPONSE:
        case CMDIPC_MSG_EXECUTE_RESPONSE: {
            if (get_str(root, "thid", 1, 1, &thid)) {
                what = "\"thid\" missing, empty or not a string";
                goto fail;
            }
            if (t == CMDIPC_MSG_LIST_RESPONSE) {
                body = check_commands(json_object_get(root, "commands"));
                if (body == NULL) {
                    what = "\"commands\" is not an array of command definitions";
                    goto fail;
                }
                break;
            }
            json_t *resp = json_object_get(root, "response");
            json_t *ok = json_object_get(resp, "ok");
            if (!json_is_object(resp) || !json_is_boolean(ok)) {
                what = "\"response.ok\" missing or not a boolean";
                goto fail;
            }
            if (json_is_true(ok)) {
                if (t == CMDIPC_MSG_EXECUTE_RESPONSE)
                    body = json_incref(get_payload(resp, "result"));
                break;
            }
            json_t *e = json_object_get(resp, "error");
            if (t == CMDIPC_MSG_REGISTER_RESPONSE) {
                if (!json_is_string(e)) {
                    what = "\"response.error\" missing or not a string";
                    goto fail;
                }
                msg_status = CMDIPC_EDUPLICATE;
                break;
            }
            const char *code;
            if (!json_is_object(e) || get_str(e, "code", 1, 0, &code) ||
                get_str(e, "message", 0, 0, &message)) {
                what = "\"response.error\" is not {code, message}";
                goto fail;
            }
            msg_status = cmdipc_err_from_wire_code(code);
            if (msg_status == CMDIPC_EDUPLICATE) /* not an execute code */
                msg_status = CMDIPC_EINTERNAL;
            if (message == NULL)
                message = "";
            break;
        }
        case CMDIPC_MSG_EXECUTE_REQUEST:
            if (get_str(root, "commandId", 1, 1, &name)) {
                what = "\"commandId\" missing, empty or not a string";
                goto fail;
            }
            body = json_incref(get_payload(root, "request"));
            break;
        case CMDIPC_MSG_EVENT:
            if (get_str(root, "eventId", 1, 1, &name)) {
                what = "\"eventId\" missing, empty or not a string";
                goto fail;
            }
            body = json_incref(get_payload(root, "payload"));
            break;
        default:
            break;
    }

    cmdipc_msg_t *m = cmdipc__palloc(sizeof(*m));
    if (m == NULL) {
        json_decref(body);
        json_decref(root);
        set_err(err, UV_ENOMEM, 0, "out of memory");
        return UV_ENOMEM;
    }
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)t;
    m->status = msg_status;
    m->id = id;
    m->thid = thid;
    m->name = name;
    m->message = message;
    m->description = description;
    m->root = root;
    m->body.json = body;
    *out = m;
    return 0;

fail:
    json_decref(body);
    set_err(err, status, 0, what);
    note_execute_id(err, root, buf, len);
    json_decref(root);
    return status;
}

/* ---------------------------------------------------------------------------
 * The fast decoder: the scanner validates the line and finds the envelope;
 * strings are unescaped and the payload kept as text, all in one allocation.
 * Registrations and list responses (rare, structured) go through jansson. */

static int span_is_str(const cmdipc__span_t *sp) {
    return sp->present && (sp->type == 's' || sp->type == 'S');
}

/* Copies the decoded string of sp into *arena; returns it. */
static const char *put_str(const char *buf, const cmdipc__span_t *sp, char **arena) {
    char *o = *arena;
    size_t n;
    if (sp->type == 's') {
        n = sp->len - 2;
        memcpy(o, buf + sp->off + 1, n);
    } else {
        n = cmdipc__json_unescape(buf + sp->off, sp->len, o);
    }
    o[n] = '\0';
    *arena = o + n + 1;
    return o;
}

static size_t str_room(const cmdipc__span_t *sp) { return sp->present ? sp->len : 0; }

/* The message type named by the "type" string span, or 0. */
static int type_of(const char *buf, const cmdipc__span_t *sp) {
    char tmp[32];
    const char *p;
    size_t n;
    if (sp->type == 's') {
        p = buf + sp->off + 1;
        n = sp->len - 2;
    } else { /* escaped: decode it first */
        if (sp->len > sizeof(tmp))
            return 0;
        char *o = tmp;
        p = put_str(buf, sp, &o);
        n = strlen(p);
    }
    for (int i = CMDIPC_MSG_REGISTER_REQUEST; i <= CMDIPC_MSG_EVENT; i++)
        if (type_len[i] == n && memcmp(p, type_names[i], n) == 0)
            return i;
    return 0;
}

int cmdipc_msg_decode(const char *buf, size_t len, const cmdipc_limits_t *lim,
                      cmdipc_msg_t **out, cmdipc_decode_error_t *err) {
    cmdipc_limits_t defaults;
    cmdipc__env_t env;
    size_t pos = 0;
    const char *what = "invalid message";
    int status, t = 0;

    *out = NULL;
    status = decode_begin(buf, &len, &lim, &defaults, err);
    if (status != 0)
        return status;
    status = cmdipc__scan(buf, len, lim, &env, &pos);
    if (status != 0) {
        set_err(err, status, pos, cmdipc_strerror(status));
        if (err != NULL)
            cmdipc__scan_execute_id(buf, len, err->execute_id, sizeof(err->execute_id));
        return status;
    }
    size_t at = 0;
    while (at < len && buf[at] != '{' && buf[at] != '[')
        at++;
    status = CMDIPC_EBADMSG;
    if (buf[at] != '{') {
        what = "not a JSON object";
        goto fail;
    }
    if (!span_is_str(&env.type)) {
        what = "\"type\" missing or not a string";
        goto fail;
    }
    t = type_of(buf, &env.type);
    if (t == 0) {
        status = CMDIPC_EUNKNOWNTYPE;
        what = "unknown message type";
        goto fail;
    }
    if (t == CMDIPC_MSG_REGISTER_REQUEST || t == CMDIPC_MSG_REGISTER_RESPONSE ||
        t == CMDIPC_MSG_LIST_RESPONSE)
        return cmdipc__msg_decode_jansson(buf, len, lim, out, err);

    if (!span_is_str(&env.id) || env.id.len == 2) {
        what = "\"id\" missing, empty or not a string";
        goto fail;
    }
    const cmdipc__span_t *name = NULL, *thid = NULL, *message = NULL, *body = NULL;
    int msg_status = 0;
    switch (t) {
        case CMDIPC_MSG_EXECUTE_REQUEST:
            name = &env.command_id;
            body = &env.request;
            if (!span_is_str(name) || name->len == 2) {
                what = "\"commandId\" missing, empty or not a string";
                goto fail;
            }
            break;
        case CMDIPC_MSG_EVENT:
            name = &env.event_id;
            body = &env.payload;
            if (!span_is_str(name) || name->len == 2) {
                what = "\"eventId\" missing, empty or not a string";
                goto fail;
            }
            break;
        case CMDIPC_MSG_EXECUTE_RESPONSE:
            thid = &env.thid;
            if (!span_is_str(thid) || thid->len == 2) {
                what = "\"thid\" missing, empty or not a string";
                goto fail;
            }
            if (!env.response.present || env.response.type != 'o' ||
                (env.ok.type != 't' && env.ok.type != 'f') || !env.ok.present) {
                what = "\"response.ok\" missing or not a boolean";
                goto fail;
            }
            if (env.ok.type == 't') {
                body = &env.result;
                break;
            }
            if (!env.error.present || env.error.type != 'o' || !span_is_str(&env.code) ||
                (env.message.present && env.message.type != 'z' && !span_is_str(&env.message))) {
                what = "\"response.error\" is not {code, message}";
                goto fail;
            }
            {
                char code[32];
                msg_status = CMDIPC_EINTERNAL;
                if (env.code.len <= sizeof(code)) {
                    char *cp = code;
                    put_str(buf, &env.code, &cp);
                    msg_status = cmdipc_err_from_wire_code(code);
                    if (msg_status == CMDIPC_EDUPLICATE)
                        msg_status = CMDIPC_EINTERNAL;
                }
            }
            message = span_is_str(&env.message) ? &env.message : NULL;
            break;
        default: /* list request */
            break;
    }
    /* Only the members spec-v1 defines, none null, every error code one we
     * would emit as it is: the line itself can be re-sent. */
    int clean = body == NULL || !body->present || body->type != 'z';
    switch (t) {
        case CMDIPC_MSG_EXECUTE_REQUEST:
        case CMDIPC_MSG_EVENT:
            clean = clean && env.n_top == 3u + (body->present ? 1u : 0u);
            break;
        case CMDIPC_MSG_EXECUTE_RESPONSE:
            clean = clean && env.n_top == 4;
            if (env.ok.type == 't')
                clean = clean && env.n_response == 1u + (body->present ? 1u : 0u);
            else
                clean = clean && env.n_response == 2 && env.n_error == 2 && message != NULL &&
                        msg_status != CMDIPC_EINTERNAL;
            break;
        default: /* list request */
            clean = env.n_top == 2;
            break;
    }
    if (body != NULL && (!body->present || body->type == 'z'))
        body = NULL; /* absent or null: absent */

    size_t room = str_room(&env.id) + (name ? str_room(name) : 0) +
                  (thid ? str_room(thid) : 0) + (message ? str_room(message) : 1) + len + 8;
    cmdipc_msg_t *m = cmdipc__palloc(sizeof(*m) + room);
    if (m == NULL) {
        set_err(err, UV_ENOMEM, 0, "out of memory");
        return UV_ENOMEM;
    }
    memset(m, 0, sizeof(*m));
    char *arena = m->strings;
    m->type = (uint8_t)t;
    m->status = msg_status;
    m->id = put_str(buf, &env.id, &arena);
    if (name != NULL)
        m->name = put_str(buf, name, &arena);
    if (thid != NULL)
        m->thid = put_str(buf, thid, &arena);
    if (msg_status != 0) {
        if (message != NULL) {
            m->message = put_str(buf, message, &arena);
        } else {
            *arena = '\0';
            m->message = arena++;
        }
    }
    /* The line itself: the payload is a span of it, and a clean line is
     * re-sent as it is. */
    memcpy(arena, buf, len);
    if (body != NULL) {
        m->body.text = arena + body->off;
        m->body.len = body->len;
    }
    /* A line broken over several (pretty-printed input given to
     * cmdipc_msg_decode) cannot be re-sent as one NDJSON line. */
    if (clean && !env.multiline) {
        m->raw = arena;
        m->raw_len = (uint32_t)len;
        m->raw_id = m->id;
        m->raw_id_off = env.id.off;
        m->raw_id_len = env.id.len;
    }
    *out = m;
    return 0;

fail:
    set_err(err, status, 0, what);
    if (err != NULL && t == CMDIPC_MSG_EXECUTE_REQUEST && span_is_str(&env.id) &&
        env.id.len > 2 && env.id.len - 2 < sizeof(err->execute_id)) {
        char *ep = err->execute_id;
        put_str(buf, &env.id, &ep);
    }
    return status;
}

/* ---------------------------------------------------------------------------
 * Best-effort reading of an execute request's id from a line that failed
 * validation, so the sender can be answered invalid_request. Only top-level
 * members are read; nested values are skipped by bracket counting. */

static size_t skip_ws(const char *b, size_t i, size_t n) {
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    return i;
}

/* b[i] == '"': returns the index after the closing quote, or n. */
static size_t skip_str(const char *b, size_t i, size_t n) {
    for (i++; i < n; i++) {
        if (b[i] == '\\')
            i++;
        else if (b[i] == '"')
            return i + 1;
    }
    return n;
}

static size_t skip_value(const char *b, size_t i, size_t n) {
    if (i < n && b[i] == '"')
        return skip_str(b, i, n);
    size_t depth = 0;
    while (i < n) {
        char c = b[i];
        if (c == '"') {
            i = skip_str(b, i, n);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && c == ',') {
            return i;
        }
        i++;
    }
    return n;
}

int cmdipc__scan_execute_id(const char *b, size_t n, char *out, size_t outsz) {
    size_t i = skip_ws(b, 0, n);
    size_t id_at = 0, id_end = 0;
    int is_exec = 0, have_type = 0, have_id = 0;
    if (i >= n || b[i] != '{')
        return 0;
    i = skip_ws(b, i + 1, n);
    while (i < n && b[i] == '"') {
        size_t k = i, kend = skip_str(b, i, n);
        i = skip_ws(b, kend, n);
        if (i >= n || b[i] != ':')
            break; /* broken from here on: use what was read before */
        i = skip_ws(b, i + 1, n);
        size_t v = i;
        i = skip_value(b, i, n);
        size_t klen = kend - k;
        if (klen == 6 && memcmp(b + k, "\"type\"", 6) == 0 && !have_type) {
            have_type = 1;
            static const char want[] = "\"execute.command.request\"";
            is_exec = (i - v == sizeof(want) - 1 && memcmp(b + v, want, i - v) == 0);
        } else if (klen == 4 && memcmp(b + k, "\"id\"", 4) == 0 && !have_id) {
            have_id = 1;
            if (v < n && b[v] == '"') {
                id_at = v;
                id_end = i;
            }
        }
        i = skip_ws(b, i, n);
        if (i < n && b[i] == ',')
            i = skip_ws(b, i + 1, n);
        else
            break;
    }
    if (!is_exec || id_end <= id_at)
        return 0;
    json_error_t e;
    json_t *s = json_loadb(b + id_at, id_end - id_at, JSON_DECODE_ANY, &e);
    int ok = 0;
    if (json_is_string(s)) {
        size_t len = json_string_length(s);
        const char *str = json_string_value(s);
        if (len > 0 && len < outsz && memchr(str, 0, len) == NULL) {
            memcpy(out, str, len + 1);
            ok = 1;
        }
    }
    json_decref(s);
    return ok;
}
