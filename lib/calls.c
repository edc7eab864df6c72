/* cmdipc — calls: outbound executes (cmdipc_req_t, the future) and inbound
 * calls served by local handlers (cmdipc_call_t). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define xstrdup cmdipc__strdup

/* ---------------------------------------------------------------------------
 * Outbound requests. */

static void req_free(cmdipc_req_t *req) {
    json_decref(req->result);
    json_decref(req->wait_request);
    if (req->message_owned)
        cmdipc__free(req->message);
    cmdipc__pfree(req);
}

static void req_deliver_cb(cmdipc__deferred_t *d) {
    cmdipc_req_t *req = cmdipc__container_of(d, cmdipc_req_t, deferred);
    req->cb(req, req->status, req->status == 0 ? req->result : NULL,
            req->status == 0 ? NULL : (req->message ? req->message : cmdipc_strerror(req->status)),
            req->data);
    req_free(req);
}

/* Marks req done and takes it off its queue, the deadline heap and its
 * channel's out map. Returns -1 if it was done already. */
static inline int req_settle(cmdipc_req_t *req) {
    if (req->done)
        return -1;
    req->done = 1;
    cmdipc__queue_remove(&req->link);
    if (req->waiting) {
        req->waiting = 0;
        cmdipc__queue_remove(&req->wait_link);
    }
    cmdipc__deadline_cancel(req->reg, &req->out.timer);
    if (req->out.target != NULL) {
        cmdipc__map_del(&req->out.target->out, &req->out.node);
        req->out.target = NULL;
    }
    return 0;
}

/* An answer from the wire: the callback runs now. We are in a transport's
 * read callback, never inside the execute that started the call, and the
 * dispatch in progress holds the registry (a close from the callback waits
 * for its end). */
void cmdipc__req_answer(cmdipc_req_t *req, int status, json_t *result, const char *message) {
    if (req_settle(req) != 0)
        return;
    req->cb(req, status, status == 0 ? result : NULL,
            status == 0 ? NULL : (message ? message : cmdipc_strerror(status)), req->data);
    req_free(req);
}

/* Records the outcome of req once and schedules its callback. Returns 0, or
 * UV_EALREADY if it had completed already. */
int cmdipc__req_complete(cmdipc_req_t *req, int status, json_t *result, const char *message) {
    cmdipc_registry_t *r = req->reg;
    if (req_settle(req) != 0)
        return UV_EALREADY;
    if (req->call != NULL) { /* the local handler's answer will be dropped */
        req->call->req = NULL;
        req->call = NULL;
    }
    req->status = status;
    req->result = status == 0 ? json_incref(result) : NULL;
    if (status != 0) {
        if (message == NULL) {
            req->message = (char *)cmdipc_strerror(status); /* static */
        } else {
            req->message = xstrdup(message);
            req->message_owned = req->message != NULL;
        }
    }
    cmdipc__defer(r, &req->deferred);
    return 0;
}

static void req_timeout(cmdipc_registry_t *r, cmdipc__timer_t *t) {
    cmdipc_req_t *req = cmdipc__container_of(t, cmdipc_req_t, out.timer);
    r->stats.timeouts++;
    cmdipc__log(r, CMDIPC_LOG_DEBUG, "execute %s: request %s timed out", req->command_id,
                req->id);
    if (req->waiting) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no route to \"%.150s\" before the deadline",
                 req->command_id);
        cmdipc__req_complete(req, CMDIPC_ETIMEDOUT, NULL, msg);
        return;
    }
    /* A static message: expiring a million calls must not format a million. */
    cmdipc__req_complete(req, CMDIPC_ETIMEDOUT, NULL, NULL);
}

static void waiting_retry_cb(cmdipc__deferred_t *d);

void cmdipc__reqs_cancel_all(cmdipc_registry_t *r) {
    while (!cmdipc__queue_empty(&r->reqs)) {
        cmdipc_req_t *req = cmdipc__container_of(r->reqs.next, cmdipc_req_t, link);
        r->stats.canceled++;
        cmdipc__req_complete(req, CMDIPC_ECANCELED, NULL, "registry closed");
    }
}

void cmdipc_req_cancel(cmdipc_req_t *req) {
    assert(req != NULL);
    if (req == NULL || req->done)
        return;
    req->reg->stats.canceled++;
    cmdipc__req_complete(req, CMDIPC_ECANCELED, NULL, "canceled");
}

const char *cmdipc_req_id(const cmdipc_req_t *req) { return req->id; }
const char *cmdipc_req_command_id(const cmdipc_req_t *req) { return req->command_id; }
cmdipc_registry_t *cmdipc_req_registry(const cmdipc_req_t *req) { return req->reg; }

/* ---------------------------------------------------------------------------
 * Inbound calls. */

static void call_free(cmdipc_call_t *c) {
    json_decref(c->request);
    cmdipc__pfree(c);
}

void cmdipc__call_free(cmdipc_call_t *c) { call_free(c); }

static int call_answer(cmdipc_call_t *c, int status, json_t *result, char *text, size_t len,
                       const char *message);

void cmdipc__call_answer_text(cmdipc_call_t *c, int status, char *text, size_t len,
                              const char *message) {
    call_answer(c, status, NULL, text, len, message);
}

static void call_run_cb(cmdipc__deferred_t *d) {
    cmdipc_call_t *c = cmdipc__container_of(d, cmdipc_call_t, deferred);
    json_t *request = c->request;
    c->request = NULL;
    if (c->req == NULL || c->reg == NULL || c->reg->closing) {
        /* Canceled, timed out or the registry closed before the handler
         * got to run: nobody waits for an answer, so the handler is not
         * called and the call, never handed out, is freed here. */
        if (c->reg != NULL)
            cmdipc__queue_remove(&c->link);
        json_decref(request);
        call_free(c);
        return;
    }
    c->reg->stats.handled++;
    /* The handler owns the call from here; request is borrowed for its
     * duration. */
    c->fn(c, request, c->fn_data);
    json_decref(request);
}

static cmdipc_call_t *call_new(cmdipc_registry_t *r, const char *thid, cmdipc__cmd_t *cmd) {
    size_t nt = strlen(thid) + 1, nc = strlen(cmd->id) + 1;
    cmdipc_call_t *c = cmdipc__palloc(sizeof(*c) + nt + nc);
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    c->reg = r;
    c->thid = c->strings;
    memcpy(c->thid, thid, nt);
    c->command_id = c->strings + nt;
    memcpy(c->command_id, cmd->id, nc);
    c->fn = cmd->fn;
    c->fn_data = cmd->data;
    cmdipc__queue_init(&c->link);
    return c;
}

/* An execute from origin for the local command cmd: runs the handler now
 * (we are in a transport callback, not inside an API call). */
void cmdipc__call_start(cmdipc_registry_t *r, cmdipc_channel_t *origin, cmdipc_msg_t *m,
                        cmdipc__cmd_t *cmd) {
    cmdipc_call_t *c = call_new(r, m->id, cmd);
    if (c == NULL) {
        cmdipc__reply_error(origin, m->id, CMDIPC_EINTERNAL, "out of memory");
        cmdipc_msg_free(m);
        return;
    }
    c->origin = origin;
    cmdipc__queue_insert_tail(&origin->calls, &c->link);
    cmdipc__in_flight_inc(origin);
    r->stats.handled++;
    json_t *request = cmdipc_msg_payload(m);
    cmdipc_command_fn fn = c->fn;
    void *fn_data = c->fn_data;
    fn(c, request, fn_data);
    cmdipc_msg_free(m);
}

/* Detaches every call of the list from its caller (their answers will be
 * dropped) and keeps them on r->calls, so the registry can tell them it is
 * gone when it is freed. */
void cmdipc__calls_orphan(cmdipc_registry_t *r, cmdipc__queue_t *calls) {
    cmdipc__queue_t tmp;
    cmdipc__queue_init(&tmp);
    cmdipc__queue_move(calls, &tmp);
    while (!cmdipc__queue_empty(&tmp)) {
        cmdipc_call_t *c = cmdipc__container_of(tmp.next, cmdipc_call_t, link);
        cmdipc__queue_remove(&c->link);
        c->origin = NULL;
        if (c->req != NULL) {
            c->req->call = NULL;
            c->req = NULL;
        }
        cmdipc__queue_insert_tail(&r->calls, &c->link);
    }
}

void cmdipc__reply_error(cmdipc_channel_t *ch, const char *thid, int status,
                         const char *message) {
    cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_EXECUTE_RESPONSE, NULL, thid, NULL,
                                      message ? message : cmdipc_strerror(status), NULL);
    if (m == NULL) {
        cmdipc__channel_fail(ch, UV_ENOMEM);
        return;
    }
    m->status = status;
    cmdipc__send_or_fail(ch, m);
}

/* Common tail of reply and fail: delivers the answer where it is awaited.
 * The result is a json_t (borrowed) or, for an answer made on another
 * thread, JSON text (text: owned, malloc'd; consumed). */
static int call_answer(cmdipc_call_t *c, int status, json_t *result, char *text, size_t len,
                       const char *message) {
    cmdipc_registry_t *r = c->reg;
    if (r == NULL) { /* registry gone */
        free(text);
        call_free(c);
        return 0;
    }
    cmdipc__queue_remove(&c->link);
    if (c->origin != NULL) {
        cmdipc_channel_t *ch = c->origin;
        cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_EXECUTE_RESPONSE, NULL, c->thid, NULL,
                                          status ? message : NULL, NULL);
        if (m == NULL) {
            free(text);
            cmdipc__channel_fail(ch, UV_ENOMEM);
        } else {
            m->status = status;
            if (status == 0 && result != NULL) {
                cmdipc__msg_set_json(m, result);
            } else if (status == 0 && text != NULL) {
                m->body.text = text; /* the message owns it now */
                m->body.len = len;
                m->body.text_owned = 1;
            } else {
                free(text);
            }
            cmdipc__send_or_fail(ch, m);
        }
        cmdipc__in_flight_dec(ch);
    } else if (c->req != NULL) {
        cmdipc_req_t *req = c->req;
        c->req = NULL;
        req->call = NULL;
        json_t *built = NULL;
        if (status == 0 && result == NULL && text != NULL) {
            built = cmdipc__json_build(text, len);
            if (built == NULL) {
                status = UV_ENOMEM;
                message = "out of memory";
            }
        }
        free(text);
        cmdipc__req_complete(req, status, result ? result : built, message);
        json_decref(built);
    } else {
        free(text);
        r->stats.dropped[CMDIPC_DROP_LATE_ANSWER]++;
        cmdipc__log(r, CMDIPC_LOG_DEBUG, "call %s (%s) answered after its caller left",
                    c->thid, c->command_id);
    }
    call_free(c);
    return 0;
}

int cmdipc_call_reply(cmdipc_call_t *call, json_t *result) {
    if (call == NULL)
        return UV_EINVAL;
    if (json_is_null(result))
        result = NULL; /* absent: "result" is omitted */
    int rc = cmdipc__json_check(result, CMDIPC__RESULT_DEPTH);
    if (rc != 0) {
        static const char why[] =
            "handler result cannot be encoded (nested too deep or holding NUL)";
        if (call->xt != NULL)
            cmdipc__xt_answer(call, CMDIPC_EINTERNAL, NULL, why);
        else
            call_answer(call, CMDIPC_EINTERNAL, NULL, NULL, 0, why);
        return UV_EINVAL;
    }
    if (call->xt != NULL)
        return cmdipc__xt_answer(call, 0, result, NULL);
    return call_answer(call, 0, result, NULL, 0, NULL);
}

int cmdipc_call_fail(cmdipc_call_t *call, int status, const char *message) {
    if (call == NULL)
        return UV_EINVAL;
    const char *code = cmdipc_err_wire_code(status);
    if (code == NULL || status == CMDIPC_EDUPLICATE)
        status = CMDIPC_EINTERNAL;
    int rc = 0;
    if (message != NULL && !cmdipc__utf8_valid(message, strlen(message))) {
        message = "handler error message is not valid UTF-8";
        status = CMDIPC_EINTERNAL;
        rc = UV_EINVAL;
    }
    message = message ? message : cmdipc_strerror(status);
    if (call->xt != NULL)
        cmdipc__xt_answer(call, status, NULL, message);
    else
        call_answer(call, status, NULL, NULL, 0, message);
    return rc;
}

const char *cmdipc_call_command_id(const cmdipc_call_t *c) { return c->command_id; }
const char *cmdipc_call_request_id(const cmdipc_call_t *c) { return c->thid; }
const char *cmdipc_call_channel_id(const cmdipc_call_t *c) {
    return c->origin ? c->origin->id : NULL;
}
cmdipc_registry_t *cmdipc_call_registry(const cmdipc_call_t *c) { return c->reg; }
int cmdipc_call_is_live(const cmdipc_call_t *c) {
    return c->reg != NULL && !c->reg->closing && (c->origin != NULL || c->req != NULL);
}

/* ---------------------------------------------------------------------------
 * Execute. */

/* Where a call to command_id goes now: *local (served here), a channel, or
 * NULL with the status it fails with (a message in why). */
static cmdipc_channel_t *route_of(cmdipc_registry_t *r, const char *command_id,
                                  cmdipc__cmd_t **local, int *immediate, char *why,
                                  size_t why_size) {
    cmdipc__cmd_t *cmd = cmdipc__cmd_find(r, command_id);
    cmdipc_channel_t *target = NULL;
    *local = NULL;
    *immediate = 0;
    if (cmd != NULL && cmd->state == CMDIPC__CMD_LOCAL) {
        *local = cmd;
        return NULL;
    }
    if (cmd != NULL && cmd->state == CMDIPC__CMD_REMOTE) {
        target = cmd->owner;
    } else if (r->router_id != NULL) {
        if (r->router == NULL) {
            *immediate = CMDIPC_EDISCONNECTED;
            snprintf(why, why_size, "router channel %.150s is not connected", r->router_id);
            return NULL;
        }
        target = r->router;
    } else {
        *immediate = CMDIPC_ENOTFOUND;
        snprintf(why, why_size, "command \"%.150s\" not found", command_id);
        return NULL;
    }
    if (target->failing || target->state != CMDIPC__CH_ATTACHED || target->down) {
        *immediate = CMDIPC_EDISCONNECTED;
        snprintf(why, why_size, "channel %.150s is closing", target->id);
        return NULL;
    }
    return target;
}

/* Starts req on its route: sends it to target, or queues the local handler.
 * Returns 0 (started, or completed with CMDIPC_EDISCONNECTED when the
 * transport saw the link go first), or a status with nothing started. */
static int req_start(cmdipc_registry_t *r, cmdipc_req_t *req, cmdipc_channel_t *target,
                     cmdipc__cmd_t *local, json_t *request) {
    if (target != NULL) {
        if (r->max_out && target->out.count >= r->max_out) {
            r->stats.overloads++;
            return CMDIPC_EOVERLOAD;
        }
        cmdipc_msg_t *m = cmdipc__msg_new(CMDIPC_MSG_EXECUTE_REQUEST, req->id, NULL,
                                          req->command_id, NULL, NULL);
        if (m == NULL)
            return UV_ENOMEM;
        cmdipc__msg_set_json(m, request);
        /* The pending entry exists before the message leaves. */
        req->out.node.key = req->id;
        if (cmdipc__map_put(&target->out, &req->out.node) != 0) {
            cmdipc_msg_free(m);
            return UV_ENOMEM;
        }
        req->out.target = target;
        int rc = cmdipc__send(target, m);
        if (rc == CMDIPC_ECLOSED) { /* the transport saw the link go first */
            char msg[200];
            snprintf(msg, sizeof(msg), "channel %.150s disconnected", target->id);
            cmdipc__req_complete(req, CMDIPC_EDISCONNECTED, NULL, msg);
            return 0;
        }
        if (rc != 0) {
            cmdipc__map_del(&target->out, &req->out.node);
            req->out.target = NULL;
            if (rc == CMDIPC_EOVERLOAD)
                r->stats.overloads++;
            return rc;
        }
        return 0;
    }
    cmdipc_call_t *c = call_new(r, req->id, local);
    if (c == NULL)
        return UV_ENOMEM;
    c->req = req;
    c->request = json_incref(request);
    req->call = c;
    c->deferred.fn = call_run_cb;
    cmdipc__queue_insert_tail(&r->calls, &c->link);
    cmdipc__defer(r, &c->deferred);
    return 0;
}

/* Calls waiting for their route (exec option wait_for_route): tried again
 * from the loop after a command became reachable or a channel came up. */
static void waiting_retry_cb(cmdipc__deferred_t *d) {
    cmdipc_registry_t *r = cmdipc__container_of(d, cmdipc_registry_t, waiting_task);
    cmdipc__queue_t batch;
    cmdipc__queue_init(&batch);
    cmdipc__queue_move(&r->waiting, &batch);
    while (!cmdipc__queue_empty(&batch) && !r->closing) {
        cmdipc_req_t *req = cmdipc__container_of(batch.next, cmdipc_req_t, wait_link);
        cmdipc__queue_remove(&req->wait_link);
        cmdipc__queue_insert_tail(&r->waiting, &req->wait_link); /* until it goes */
        cmdipc__cmd_t *local;
        int immediate;
        char why[200];
        cmdipc_channel_t *target =
            route_of(r, req->command_id, &local, &immediate, why, sizeof(why));
        if (immediate != 0)
            continue; /* still no route */
        cmdipc__queue_remove(&req->wait_link);
        req->waiting = 0;
        json_t *request = req->wait_request;
        req->wait_request = NULL;
        int rc = req_start(r, req, target, local, request);
        json_decref(request);
        if (rc != 0) {
            char msg[120];
            snprintf(msg, sizeof(msg), "the call could not be sent: %s", cmdipc_strerror(rc));
            cmdipc__req_complete(req, rc == CMDIPC_EOVERLOAD ? CMDIPC_EOVERLOAD : rc, NULL,
                                 msg);
        }
    }
    cmdipc__queue_move(&batch, &r->waiting); /* left over when closing */
}

void cmdipc__routes_changed(cmdipc_registry_t *r) {
    if (cmdipc__queue_empty(&r->waiting) || r->closing)
        return;
    r->waiting_task.fn = waiting_retry_cb;
    cmdipc__defer(r, &r->waiting_task);
}

int cmdipc_registry_execute(cmdipc_registry_t *r, const char *command_id, json_t *request,
                            const cmdipc_exec_opts_t *opts, cmdipc_response_cb cb, void *data,
                            cmdipc_req_t **out) {
    if (out != NULL)
        *out = NULL;
    if (json_is_null(request))
        request = NULL; /* absent: "request" is omitted */
    if (r == NULL || cb == NULL || cmdipc__check_id(command_id) ||
        cmdipc__json_check(request, CMDIPC__PAYLOAD_DEPTH) != 0 ||
        (opts != NULL && (opts->version == 0 || opts->version > CMDIPC_EXEC_OPTS_VERSION)))
        return UV_EINVAL;
    if (r->closing)
        return CMDIPC_ECLOSED;

    uint64_t ttl = r->request_ttl_ms;
    if (opts != NULL && opts->timeout_ms != CMDIPC_TIMEOUT_DEFAULT)
        ttl = opts->timeout_ms;
    int wait = opts != NULL && opts->version >= 2 && opts->wait_for_route;

    /* Where does it go? */
    cmdipc__cmd_t *local;
    int immediate;
    char why[200];
    cmdipc_channel_t *target = route_of(r, command_id, &local, &immediate, why, sizeof(why));
    if (target != NULL && r->max_out && target->out.count >= r->max_out) {
        r->stats.overloads++;
        return CMDIPC_EOVERLOAD;
    }

    size_t nc = strlen(command_id) + 1;
    cmdipc_req_t *req = cmdipc__palloc(sizeof(*req) + nc);
    if (req == NULL)
        return UV_ENOMEM;
    memset(req, 0, sizeof(*req));
    req->reg = r;
    req->cb = cb;
    req->data = data;
    req->command_id = req->strings;
    memcpy(req->command_id, command_id, nc);
    cmdipc__timer_init(&req->out.timer, CMDIPC__T_EXEC, req_timeout);
    req->deferred.fn = req_deliver_cb;
    cmdipc__queue_init(&req->wait_link);
    cmdipc__uuid4(req->id);
    cmdipc__queue_insert_tail(&r->reqs, &req->link);
    r->stats.executes++;

    if (immediate != 0 && wait) {
        /* No route yet: wait for one, within the call's deadline. */
        req->waiting = 1;
        req->wait_request = json_incref(request);
        cmdipc__queue_insert_tail(&r->waiting, &req->wait_link);
    } else if (immediate != 0) {
        cmdipc__req_complete(req, immediate, NULL, why);
        if (out != NULL)
            *out = req;
        return 0;
    } else {
        int rc = req_start(r, req, target, local, request);
        if (rc != 0) {
            cmdipc__queue_remove(&req->link);
            req_free(req);
            return rc;
        }
        if (req->done) { /* completed at once (disconnected) */
            if (out != NULL)
                *out = req;
            return 0;
        }
    }
    if (ttl != 0)
        cmdipc__deadline_arm(r, &req->out.timer, cmdipc__add_sat(cmdipc__now(r), ttl));
    if (out != NULL)
        *out = req;
    return 0;
}
