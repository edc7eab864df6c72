/* cmdipc — answering a call from another thread (cmdipc_call_detach).
 *
 * A handler that hands its work to a worker thread detaches the call; the
 * worker answers it with cmdipc_call_reply() or cmdipc_call_fail() as usual.
 * The answer is made ready on the worker's thread (the result written as
 * JSON text there, so no json_t crosses threads), queued under a mutex and
 * the registry's loop woken with a uv_async; the loop then delivers it as
 * any answer. What nng's aio gives its users, without every application
 * writing its own uv_async hop.
 *
 * The queue outlives the registry if it must: it is reference counted (the
 * registry, and every detached call not yet answered), and once the registry
 * has closed an answer from a worker is dropped there and then, and the call
 * freed on the worker's thread. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct cmdipc__xt_s {
    uv_mutex_t lock;
    uv_async_t async;     /* on the registry's loop */
    cmdipc_registry_t *reg; /* loop thread only */
    uv_close_cb then;     /* the registry's handle close callback */
    /* Under the lock: */
    int alive;            /* the registry takes answers */
    unsigned refs;        /* the registry's, and one per detached call unanswered */
    cmdipc__queue_t done; /* answered calls for the loop */
};

static void xt_unref_locked(cmdipc__xt_t *xt, int *last) {
    *last = --xt->refs == 0;
}

static void xt_destroy(cmdipc__xt_t *xt) {
    uv_mutex_destroy(&xt->lock);
    cmdipc__free(xt);
}

/* The loop's side: deliver what the workers answered. */
static void xt_async_cb(uv_async_t *h) {
    cmdipc__xt_t *xt = cmdipc__container_of(h, cmdipc__xt_t, async);
    cmdipc__queue_t batch;
    cmdipc__queue_init(&batch);
    uv_mutex_lock(&xt->lock);
    cmdipc__queue_move(&xt->done, &batch);
    uv_mutex_unlock(&xt->lock);
    cmdipc_registry_t *r = xt->reg;
    r->busy++; /* a close from inside waits for the batch */
    while (!cmdipc__queue_empty(&batch)) {
        cmdipc_call_t *c = cmdipc__container_of(batch.next, cmdipc_call_t, xt_link);
        cmdipc__queue_remove(&c->xt_link);
        char *message = c->xt_message;
        cmdipc__call_answer_text(c, c->xt_status, c->xt_text, c->xt_len,
                                 message ? message : cmdipc_strerror(c->xt_status));
        cmdipc__free(message);
        int last;
        uv_mutex_lock(&xt->lock);
        xt_unref_locked(xt, &last); /* the registry holds one: never the last here */
        uv_mutex_unlock(&xt->lock);
    }
    cmdipc__busy_leave(r);
}

int cmdipc_call_detach(cmdipc_call_t *call) {
    if (call == NULL)
        return UV_EINVAL;
    if (call->xt != NULL)
        return UV_EALREADY;
    cmdipc_registry_t *r = call->reg;
    if (r == NULL || r->handles_closing)
        return CMDIPC_ECLOSED;
    if (r->xt == NULL) {
        cmdipc__xt_t *xt = cmdipc__calloc(1, sizeof(*xt));
        if (xt == NULL)
            return UV_ENOMEM;
        if (uv_mutex_init(&xt->lock) != 0) {
            cmdipc__free(xt);
            return UV_ENOMEM;
        }
        int rc = uv_async_init(r->loop, &xt->async, xt_async_cb);
        if (rc != 0) {
            xt_destroy(xt);
            return rc;
        }
        xt->reg = r;
        xt->alive = 1;
        xt->refs = 1;
        cmdipc__queue_init(&xt->done);
        r->xt = xt;
        r->handles_open++;
        if (r->unref)
            uv_unref((uv_handle_t *)&xt->async);
    }
    uv_mutex_lock(&r->xt->lock);
    r->xt->refs++;
    uv_mutex_unlock(&r->xt->lock);
    call->xt = r->xt;
    return 0;
}

int cmdipc__xt_answer(cmdipc_call_t *c, int status, json_t *result, const char *message) {
    cmdipc__xt_t *xt = c->xt;
    char *text = NULL;
    size_t len = 0;
    char *msg = NULL;
    int rc = 0;
    /* Made ready here, on the answering thread: text, not a json_t. */
    if (status == 0 && result != NULL) {
        cmdipc__buf_t b;
        cmdipc__buf_init(&b);
        if (cmdipc__buf_put_json(&b, result) == 0) {
            text = b.data;
            len = b.len;
        } else {
            cmdipc__buf_free(&b);
            status = CMDIPC_EINTERNAL;
            message = "out of memory";
            rc = UV_ENOMEM;
        }
    }
    if (status != 0 && message != NULL)
        msg = cmdipc__strdup(message); /* NULL when out of memory: the status's text */
    uv_mutex_lock(&xt->lock);
    int alive = xt->alive, last = 0;
    if (alive) {
        c->xt_status = status;
        c->xt_text = text;
        c->xt_len = len;
        c->xt_message = msg;
        cmdipc__queue_insert_tail(&xt->done, &c->xt_link);
        uv_async_send(&xt->async);
    } else {
        xt_unref_locked(xt, &last);
    }
    uv_mutex_unlock(&xt->lock);
    if (!alive) {
        /* The registry is gone: nobody waits for the answer. */
        free(text);
        cmdipc__free(msg);
        cmdipc__call_free(c);
        if (last)
            xt_destroy(xt);
    }
    return rc;
}

static void xt_handle_closed(uv_handle_t *h) {
    cmdipc__xt_t *xt = cmdipc__container_of((uv_async_t *)h, cmdipc__xt_t, async);
    /* The registry counts its open handles (h->data is the registry; the
     * handle lives in xt, which outlives this call). */
    xt->then(h);
    int last;
    uv_mutex_lock(&xt->lock);
    xt_unref_locked(xt, &last);
    uv_mutex_unlock(&xt->lock);
    if (last)
        xt_destroy(xt);
}

int cmdipc__xt_shutdown(cmdipc_registry_t *r, uv_close_cb handle_closed) {
    cmdipc__xt_t *xt = r->xt;
    if (xt == NULL)
        return 0;
    /* Detached calls not yet answered leave the registry's lists now: once
     * alive is 0 a worker frees its call itself, and the loop must not touch
     * it any more. (Every channel is closed by now: their calls are all on
     * r->calls.) */
    cmdipc__queue_t *q = r->calls.next;
    while (q != &r->calls) {
        cmdipc_call_t *c = cmdipc__container_of(q, cmdipc_call_t, link);
        q = q->next;
        if (c->xt == xt) {
            cmdipc__queue_remove(&c->link);
            c->reg = NULL;
            c->origin = NULL;
            c->req = NULL;
        }
    }
    cmdipc__queue_t batch;
    cmdipc__queue_init(&batch);
    uv_mutex_lock(&xt->lock);
    xt->alive = 0;
    cmdipc__queue_move(&xt->done, &batch);
    uv_mutex_unlock(&xt->lock);
    /* Answered but not delivered: their callers were canceled already. */
    while (!cmdipc__queue_empty(&batch)) {
        cmdipc_call_t *c = cmdipc__container_of(batch.next, cmdipc_call_t, xt_link);
        cmdipc__queue_remove(&c->xt_link);
        cmdipc__call_answer_text(c, c->xt_status, c->xt_text, c->xt_len, "registry closed");
        cmdipc__free(c->xt_message);
        int last;
        uv_mutex_lock(&xt->lock);
        xt_unref_locked(xt, &last);
        uv_mutex_unlock(&xt->lock);
    }
    r->xt = NULL;
    xt->reg = NULL;
    xt->then = handle_closed;
    xt->async.data = r;
    uv_close((uv_handle_t *)&xt->async, xt_handle_closed);
    return 1;
}

void cmdipc__xt_set_ref(cmdipc_registry_t *r, int ref) {
    if (r->xt == NULL)
        return;
    if (ref)
        uv_ref((uv_handle_t *)&r->xt->async);
    else
        uv_unref((uv_handle_t *)&r->xt->async);
}
