/* cmdipc — handing a message to another loop.
 *
 * A message that crosses to another loop is owned by that loop alone
 * (DESIGN.md, Threads). A json_t shared by two threads is a data race even
 * with jansson's atomic reference counts (the last decrement frees without
 * an acquire: ThreadSanitizer reports it), so before a memory channel hands
 * a message to a loop on another thread, the message is made to share
 * nothing with the sender's thread:
 * - a payload json_t the message holds alone (every node of the tree has
 *   one reference, the message's) is handed over as it is: nobody on the
 *   sender's thread can reach it any more. The memory channel hands over at
 *   the end of the sender's loop iteration, by when a caller has usually
 *   dropped its own reference to the request it passed (and a handler to
 *   its result), so this is the common case and costs a walk of the tree;
 * - any other json_t payload (kept by the application, cached, a command's
 *   schema, an event payload fanned out) goes as its JSON text, written
 *   here, on the sender's thread; the receiver builds its own json_t when a
 *   handler or listener asks for it; a payload that has its text already
 *   (received from a stream) goes as that text;
 * - a message decoded by jansson (its strings point into a json_t tree) is
 *   replaced by a copy holding them in its own arena.
 * Text rather than a deep copy for the shared case: what a forwarding
 * registry on the other side passes on byte for byte without parsing, and
 * it costs about what jansson's deep copy does (docs/design-notes.md). */
#include <string.h>

#include "internal.h"

/* 1 if the message's reference is the only one to v and to everything in
 * it. Values with a reference count of -1 (true, false, null) are static
 * and never freed: they may be shared. */
static int exclusive(json_t *v, unsigned depth) {
    size_t refs = __atomic_load_n(&v->refcount, __ATOMIC_ACQUIRE);
    if (refs == (size_t)-1)
        return 1;
    if (refs != 1 || depth > CMDIPC__MAX_DEPTH)
        return 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) {
            if (!exclusive(m, depth + 1))
                return 0;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            if (!exclusive(m, depth + 1))
                return 0;
        }
    }
    return 1;
}

/* Gives m's payload as owned text, dropping its json_t. */
static int payload_to_text(cmdipc_msg_t *m) {
    if (m->body.json == NULL)
        return 0;
    if (m->body.text == NULL) {
        cmdipc__buf_t b;
        cmdipc__buf_init(&b);
        if (cmdipc__buf_put_json(&b, m->body.json) != 0) {
            cmdipc__buf_free(&b);
            return UV_ENOMEM;
        }
        m->body.text = b.data;
        m->body.len = b.len;
        m->body.text_owned = 1;
    }
    json_decref(m->body.json);
    m->body.json = NULL;
    return 0;
}

int cmdipc__msg_detach(cmdipc_msg_t **pm) {
    cmdipc_msg_t *m = *pm;
    if (m->root != NULL) {
        /* Decoded by jansson: its strings point into a json_t tree. A copy
         * holds them in its own arena. */
        cmdipc_msg_t *c = cmdipc__msg_clone(m);
        if (c == NULL)
            return UV_ENOMEM;
        cmdipc_msg_free(m);
        *pm = m = c;
    }
    if (m->body.json != NULL && m->body.text == NULL && exclusive(m->body.json, 0))
        return 0; /* handed over as it is */
    return payload_to_text(m);
}

int cmdipc_msg_detach(cmdipc_msg_t **m) {
    if (m == NULL || *m == NULL)
        return UV_EINVAL;
    return cmdipc__msg_detach(m);
}

cmdipc_msg_t *cmdipc_msg_next(const cmdipc_msg_t *m) { return m->next; }
void cmdipc_msg_set_next(cmdipc_msg_t *m, cmdipc_msg_t *next) { m->next = next; }

int cmdipc_msg_encode_to(const cmdipc_msg_t *m, cmdipc_buf_t *b) {
    if (m == NULL || b == NULL)
        return UV_EINVAL;
    size_t len = b->len;
    int rc = cmdipc__msg_encode_buf(m, b);
    if (rc != 0)
        b->len = len; /* nothing half-written stays */
    return rc;
}

void cmdipc_buf_free(cmdipc_buf_t *b) {
    if (b != NULL)
        cmdipc__buf_free(b);
}

int cmdipc_limits_valid(const cmdipc_limits_t *lim) {
    return lim != NULL && cmdipc__limits_valid(lim);
}
