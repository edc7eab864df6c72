/* cmdipc — handing a message to another loop.
 *
 * A message that crosses to another loop is owned by that loop alone
 * (DESIGN.md, Threads): jansson's values are not thread-safe (a json_t
 * shared by two threads races on its reference count and its free), so
 * before a memory channel hands a message to a loop on another thread, the
 * message is made to hold no json_t: its payload goes as the JSON text it
 * arrived in or as text written from its json_t here, on the sender's
 * thread; the receiver builds its own json_t from that text when a handler
 * or listener asks for it. Text rather than a deep copy: it is what a
 * forwarding registry on the other side passes on byte for byte without
 * parsing, and our writer and builder cost less than jansson's deep copy
 * (docs/design-notes.md has the figures). */
#include <string.h>

#include "internal.h"

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
    return payload_to_text(m);
}
