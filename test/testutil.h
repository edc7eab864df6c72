/* Shared helpers for the registry tests: registries on a loop, links, common
 * command handlers, a fake clock, and loop driving. */
#ifndef CMDIPC_TESTUTIL_H
#define CMDIPC_TESTUTIL_H

#include <stdint.h>

#include "harness.h"
#include "internal.h"

/* A fake clock for lib/testing.h. */
typedef struct {
    uint64_t now;
} tu_clock_t;
uint64_t tu_clock_now(void *data);

/* Creates a registry named id (router may be NULL) with defaults otherwise. */
cmdipc_registry_t *tu_registry(uv_loop_t *loop, const char *id, const char *router);
cmdipc_registry_t *tu_registry_opts(uv_loop_t *loop, const cmdipc_registry_opts_t *opts);

/* Links a and b with a memory pair: a knows the link as b's id, b as a's. */
void tu_link(cmdipc_registry_t *a, cmdipc_registry_t *b);

/* Runs the loop (UV_RUN_NOWAIT) until nothing changes: no deferred work in
 * any of the registries and the loop reports no progress for a few turns. */
void tu_settle(uv_loop_t *loop);
/* Runs the loop until *flag is non-zero (asserting it happens within
 * timeout_ms of real time). */
void tu_run_until(uv_loop_t *loop, const int *flag, uint64_t timeout_ms);

/* Stops tracking r (for a registry the test closes itself). */
void tu_forget(cmdipc_registry_t *r);

/* Closes every registry given (NULL-terminated) and runs the loop until the
 * close callbacks ran; asserts uv_loop_close() == 0. */
void tu_close_all(uv_loop_t *loop, cmdipc_registry_t *first, ...);

/* Registers a command; asserts the registration was accepted (returned 0)
 * and, after settling, completed with status 0. */
void tu_register(uv_loop_t *loop, cmdipc_registry_t *r, const char *id, cmdipc_command_fn fn,
                 void *data);

/* The outcome of an execute. */
typedef struct {
    int done;
    int status;
    json_t *result;
    char message[256];
    int calls; /* times the callback ran (must be 1) */
} tu_result_t;

void tu_response_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                    void *data);
/* Executes and returns the status of the call (0 or an immediate error). */
int tu_exec(cmdipc_registry_t *r, const char *id, json_t *request, tu_result_t *out);
/* Executes, settles the loop, asserts completion; returns the status. */
int tu_call(uv_loop_t *loop, cmdipc_registry_t *r, const char *id, const char *request_json,
            tu_result_t *out);
void tu_result_clear(tu_result_t *res);

/* Handlers. math.add: {a,b} -> a+b. echo: request -> request. fail: fails
 * internal_error "boom". never: never answers (the call is stored in a global
 * list; tu_answer_never() answers them all). */
void tu_add_fn(cmdipc_call_t *call, json_t *request, void *data);
void tu_echo_fn(cmdipc_call_t *call, json_t *request, void *data);
void tu_fail_fn(cmdipc_call_t *call, json_t *request, void *data);
void tu_never_fn(cmdipc_call_t *call, json_t *request, void *data);
size_t tu_never_count(void);
void tu_answer_never(void);

/* Event listener counting deliveries; keeps the last payload. */
typedef struct {
    int count;
    json_t *last;
    char last_id[128];
} tu_events_t;
void tu_event_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload, void *data);
void tu_events_clear(tu_events_t *e);

/* Is command id listed in r's commands? (1/0) */
int tu_has_command(cmdipc_registry_t *r, const char *id);

json_t *tu_json(const char *text);

/* A channel that keeps what the registry sends it (as encoded JSON values)
 * and lets the test inject messages and close it from the peer side. */
typedef struct tu_sink_s {
    cmdipc_channel_t *ch;
    json_t *sent;      /* array of every message sent, in order */
    size_t capacity;   /* 0 = unbounded; else send returns CMDIPC_EOVERLOAD beyond it */
    int paused;
    int closed;        /* ops->close called */
    int graceful;
    uv_idle_t idle;    /* reports the close from a later turn */
} tu_sink_t;

/* Creates a sink channel named id and attaches it to r. */
tu_sink_t *tu_sink(cmdipc_registry_t *r, const char *id);
/* Delivers a JSON text line from the sink's peer. */
void tu_sink_inject(tu_sink_t *s, const char *line);
/* The peer closes the link (the registry sees it close with UV_EOF). */
void tu_sink_peer_close(tu_sink_t *s);
/* Number of messages sent of a given type (NULL: all). */
size_t tu_sink_count(tu_sink_t *s, const char *type);
/* The i-th message sent of that type (borrowed), or NULL. */
json_t *tu_sink_get(tu_sink_t *s, const char *type, size_t i);

#endif
