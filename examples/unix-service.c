/* unix-service — a daemon on a Unix socket and a client.
 *
 * One binary, three ways to run it:
 *
 *   unix-service daemon PATH   a root registry listening on unix://PATH. It
 *                              serves kv.set and kv.get, a tiny in-memory
 *                              key-value store (values are any JSON), and
 *                              emits kv.changed after every set. It logs each
 *                              client's uid and pid (cmdipc_channel_peer) and
 *                              stops cleanly on SIGINT or SIGTERM.
 *   unix-service client PATH   connects to the daemon, sets and gets a few
 *                              keys, listens for kv.changed, calls a command
 *                              nobody serves (not_found) and sends a bad
 *                              request (invalid_request), then exits.
 *   unix-service [demo]        both: runs the daemon in this process on a
 *                              socket under $TMPDIR and starts itself as a
 *                              client process (uv_spawn, "client PATH"); when
 *                              the client has exited, the daemon stops.
 *
 *   client (router: "daemon")              daemon (root, unix://PATH)
 *   connect, channel UP ------------------>  ATTACHED: peer pid/uid logged
 *   kv.set {key, value} ------------------>  stores it, answers {created}
 *   kv.changed listener   <----------------  emit kv.changed {key, value}
 *   kv.get {key} ------------------------->  {key, found, value}
 *   kv.delete ---------------------------->  not_found (the daemon is the root)
 *
 * The client forwards every call to its router channel, the socket: it does
 * not need to know which commands the daemon serves. Try it by hand:
 *
 *   build/examples/unix-service daemon /tmp/kv.sock &
 *   build/examples/unix-service client /tmp/kv.sock
 *   kill %1
 *
 * Build and run: ninja -C build && build/examples/unix-service
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmdipc.h>

#define DEMO_TIMEOUT_MS 10000

static void say(const char *who, const char *fmt, ...) {
    va_list ap;
    printf("  [%-6s] ", who);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout); /* the daemon and the client share the terminal */
}

static char *dump(json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(none)");
}

/* ===========================================================================
 * The daemon.
 */

typedef struct {
    cmdipc_registry_t *reg;
    json_t *store; /* the key-value store: a JSON object we own */
    uv_signal_t sigint, sigterm;
    int stopping;
    int failed;
    /* demo mode only: the client process */
    int demo;
    uv_process_t child;
    uv_timer_t guard;
    int child_pid;
    int child_exited;
    int64_t child_status;
    int child_signal;
    int child_seen; /* a connection came from the child's pid */
} daemon_t;

/* kv.set {"key": string, "value": any JSON} -> {"key", "created"} */
static void kv_set(cmdipc_call_t *call, json_t *request, void *data) {
    daemon_t *d = data;
    const char *key = json_string_value(json_object_get(request, "key"));
    json_t *value = json_object_get(request, "value");
    if (key == NULL || value == NULL) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ,
                         "expected {\"key\": string, \"value\": any JSON value}");
        return;
    }
    const char *who =
        cmdipc_call_channel_id(call) ? cmdipc_call_channel_id(call) : "local";
    int created = json_object_get(d->store, key) == NULL;
    /* The request is borrowed: the store takes its own reference to value
     * (values handed to us are frozen; we never modify them). */
    json_object_set(d->store, key, value);
    char *text = dump(value);
    say("daemon", "kv.set %s = %s   (%s, from %s)", key, text,
        created ? "new" : "replaced", who);
    free(text);

    json_t *result = json_pack("{s:s,s:b}", "key", key, "created", created);
    cmdipc_call_reply(call, result); /* borrowed: we still own result */
    json_decref(result);

    /* Every client (and local listener) hears about it. */
    json_t *ev = json_pack("{s:s,s:O,s:s}", "key", key, "value", value, "by", who);
    cmdipc_registry_emit(d->reg, "kv.changed", ev);
    json_decref(ev);
}

/* kv.get {"key": string} -> {"key", "found", "value"?} */
static void kv_get(cmdipc_call_t *call, json_t *request, void *data) {
    daemon_t *d = data;
    const char *key = json_string_value(json_object_get(request, "key"));
    if (key == NULL) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ, "expected {\"key\": string}");
        return;
    }
    json_t *value = json_object_get(d->store, key); /* borrowed from the store */
    json_t *result =
        value ? json_pack("{s:s,s:b,s:O}", "key", key, "found", 1, "value", value)
              : json_pack("{s:s,s:b}", "key", key, "found", 0);
    say("daemon", "kv.get %s (%s)", key, value ? "found" : "not found");
    cmdipc_call_reply(call, result);
    json_decref(result);
}

static void daemon_closed(cmdipc_registry_t *r, void *data) {
    (void)r;
    (void)data;
    say("daemon", "registry closed (the socket file is removed)");
}

static void daemon_stop(daemon_t *d, const char *why) {
    if (d->stopping)
        return;
    d->stopping = 1;
    say("daemon", "%s: shutting down", why);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    if (d->demo)
        uv_close((uv_handle_t *)&d->guard, NULL);
    /* Closes the listener and every client connection. */
    cmdipc_registry_close(d->reg, daemon_closed, d);
}

static void on_signal(uv_signal_t *s, int signum) {
    daemon_t *d = s->data;
    daemon_stop(d, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void daemon_channel_event(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                                 cmdipc_channel_event_t event, int status, void *data) {
    (void)r;
    daemon_t *d = data;
    if (event == CMDIPC_CHANNEL_ATTACHED) {
        cmdipc_peer_info_t peer;
        if (cmdipc_channel_peer(ch, &peer) == 0 && peer.has_creds) {
            say("daemon", "client connected as channel %s: pid %d, uid %u, gid %u",
                cmdipc_channel_id(ch), (int)peer.pid, (unsigned)peer.uid,
                (unsigned)peer.gid);
            if (d->demo && peer.pid == d->child_pid) {
                d->child_seen = 1;
                say("daemon", "(pid %d is the client process we started)", (int)peer.pid);
            }
        } else {
            say("daemon", "client connected as channel %s (credentials unknown)",
                cmdipc_channel_id(ch));
        }
    } else if (event == CMDIPC_CHANNEL_CLOSED) {
        say("daemon", "channel %s closed (%s)", cmdipc_channel_id(ch),
            status ? cmdipc_strerror(status) : "by us");
    }
}

/* Sets up the daemon on path; 0 or a status. */
static int daemon_start(daemon_t *d, uv_loop_t *loop, const char *path) {
    char url[512];
    int rc;
    snprintf(url, sizeof(url), "unix://%s", path);

    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "daemon"; /* no router_channel: the daemon is a root */
    if ((rc = cmdipc_registry_new(loop, &o, &d->reg)) != 0)
        return rc;
    d->store = json_object();
    cmdipc_registry_set_channel_cb(d->reg, daemon_channel_event, d);

    cmdipc_command_def_t set = {CMDIPC_COMMAND_DEF_VERSION, "kv.set",
                                "stores {key, value}; emits kv.changed", NULL};
    cmdipc_command_def_t get = {CMDIPC_COMMAND_DEF_VERSION, "kv.get", "reads {key}",
                                NULL};
    rc = cmdipc_registry_register(d->reg, &set, kv_set, d, NULL, NULL);
    if (rc == 0)
        rc = cmdipc_registry_register(d->reg, &get, kv_get, d, NULL, NULL);

    cmdipc_listen_opts_t lo;
    cmdipc_listen_opts_init(&lo);
    lo.id_prefix = "client-";
    lo.same_uid_only = 1; /* the socket is 0600 too: only our own user gets in */
    if (rc == 0)
        rc = cmdipc_listen(d->reg, url, &lo, NULL);

    uv_signal_init(loop, &d->sigint);
    uv_signal_init(loop, &d->sigterm);
    d->sigint.data = d->sigterm.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    if (d->demo)
        uv_timer_init(loop, &d->guard);
    if (rc != 0) {
        d->failed = 1;
        daemon_stop(d, cmdipc_strerror(rc));
        return rc;
    }
    say("daemon", "listening on %s, serving kv.set and kv.get (pid %d)", url,
        (int)uv_os_getpid());
    return 0;
}

static int run_daemon(const char *path) {
    daemon_t d;
    uv_loop_t *loop = uv_default_loop();
    memset(&d, 0, sizeof(d));
    int rc = daemon_start(&d, loop, path);
    if (rc == 0)
        say("daemon", "waiting for clients; stop with Ctrl-C or SIGTERM");
    else
        fprintf(stderr, "unix-service: cannot listen on %s: %s\n", path,
                cmdipc_strerror(rc));
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the registry has closed */
    json_decref(d.store);
    if (uv_loop_close(loop) != 0) {
        fprintf(stderr, "unix-service: handles left open on the loop\n");
        return 1;
    }
    return d.failed ? 1 : 0;
}

/* ===========================================================================
 * The client.
 */

/* What the client does, one call after the other. Requests are JSON text. */
typedef struct {
    const char *command;
    const char *request;
    int expect; /* 0, or the error we expect */
} step_t;

static const step_t steps[] = {
    {"kv.set", "{\"key\": \"color\", \"value\": \"blue\"}", 0},
    {"kv.set", "{\"key\": \"limits\", \"value\": {\"cpu\": 2, \"tags\": [\"a\", \"b\"]}}",
     0},
    {"kv.set", "{\"key\": \"color\", \"value\": \"green\"}", 0},
    {"kv.get", "{\"key\": \"limits\"}", 0},
    {"kv.get", "{\"key\": \"size\"}", 0},
    {"kv.delete", "{\"key\": \"color\"}", CMDIPC_ENOTFOUND}, /* nobody serves it */
    {"kv.set", "{\"value\": 1}", CMDIPC_EINVALREQ},          /* no key */
};
#define N_STEPS          (sizeof(steps) / sizeof(steps[0]))
#define EXPECTED_CHANGES 3 /* one kv.changed per successful kv.set */

typedef struct {
    cmdipc_registry_t *reg;
    size_t next; /* the next step to run */
    unsigned changes;
    int started;
    int closing;
    int failed;
} client_t;

static void run_step(client_t *c);

static void client_finish(client_t *c, int failed) {
    if (c->closing)
        return;
    c->closing = 1;
    c->failed |= failed;
    say("client", failed ? "giving up: closing" : "all done: closing");
    cmdipc_registry_close(c->reg, NULL, NULL);
}

static void client_maybe_done(client_t *c) {
    if (c->next == N_STEPS && c->changes >= EXPECTED_CHANGES)
        client_finish(c, 0);
}

static void step_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data) {
    client_t *c = data;
    const step_t *s = &steps[c->next];
    if (status == 0) {
        char *text = dump(result);
        say("client", "%s -> %s", cmdipc_req_command_id(req), text);
        free(text);
    } else {
        say("client", "%s -> error %s (wire code \"%s\"): %s", cmdipc_req_command_id(req),
            cmdipc_err_name(status),
            cmdipc_err_wire_code(status) ? cmdipc_err_wire_code(status) : "-", message);
    }
    if (status != s->expect) {
        say("client", "FAILED: expected %s",
            s->expect ? cmdipc_err_name(s->expect) : "success");
        client_finish(c, 1);
        return;
    }
    c->next++;
    if (c->next < N_STEPS)
        run_step(c);
    else
        client_maybe_done(c);
}

static void run_step(client_t *c) {
    const step_t *s = &steps[c->next];
    json_error_t err;
    json_t *req = json_loads(s->request, 0, &err);
    say("client", "call %s %s", s->command, s->request);
    int rc = cmdipc_registry_execute(c->reg, s->command, req, NULL, step_done, c, NULL);
    json_decref(req); /* borrowed by execute: still ours */
    if (rc != 0) {
        say("client", "execute %s: %s", s->command, cmdipc_strerror(rc));
        client_finish(c, 1);
    }
}

static void on_changed(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                       void *data) {
    (void)r;
    client_t *c = data;
    char *text = dump(payload);
    c->changes++;
    say("client", "event %s %s", event_id, text);
    free(text);
    client_maybe_done(c);
}

static void client_channel_event(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                                 cmdipc_channel_event_t event, int status, void *data) {
    (void)r;
    client_t *c = data;
    if (event == CMDIPC_CHANNEL_UP && !c->started) {
        c->started = 1;
        say("client", "connected (channel %s is up)", cmdipc_channel_id(ch));
        run_step(c);
    } else if (event == CMDIPC_CHANNEL_CLOSED && !c->closing) {
        /* Without reconnect a failed connect also ends here. */
        say("client", "channel %s closed: %s", cmdipc_channel_id(ch),
            status ? cmdipc_strerror(status) : "by us");
        client_finish(c, 1);
    }
}

static int run_client(const char *path) {
    char url[512];
    client_t c;
    uv_loop_t *loop = uv_default_loop();
    memset(&c, 0, sizeof(c));
    snprintf(url, sizeof(url), "unix://%s", path);

    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "client";
    o.router_channel = "daemon"; /* every call we cannot serve goes there */
    o.request_ttl_ms = 5000;
    int rc = cmdipc_registry_new(loop, &o, &c.reg);
    if (rc != 0) {
        fprintf(stderr, "unix-service: registry: %s\n", cmdipc_strerror(rc));
        return 1;
    }
    cmdipc_registry_set_channel_cb(c.reg, client_channel_event, &c);
    rc = cmdipc_registry_on(c.reg, "kv.changed", on_changed, &c, NULL);

    cmdipc_connect_opts_t co;
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0; /* one attempt: report a missing daemon and stop */
    if (rc == 0)
        rc = cmdipc_connect(c.reg, url, "daemon", &co, NULL);
    if (rc != 0) {
        fprintf(stderr, "unix-service: connect %s: %s\n", url, cmdipc_strerror(rc));
        client_finish(&c, 1);
    } else {
        say("client", "connecting to %s (pid %d)", url, (int)uv_os_getpid());
    }
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the registry has closed */
    if (uv_loop_close(loop) != 0) {
        fprintf(stderr, "unix-service: handles left open on the loop\n");
        return 1;
    }
    if (!c.failed && (c.next != N_STEPS || c.changes < EXPECTED_CHANGES))
        c.failed = 1;
    return c.failed ? 1 : 0;
}

/* ===========================================================================
 * The demo: the daemon here, the client in a child process.
 */

static void child_exited(uv_process_t *p, int64_t exit_status, int term_signal) {
    daemon_t *d = p->data;
    d->child_exited = 1;
    d->child_status = exit_status;
    d->child_signal = term_signal;
    if (term_signal)
        say("daemon", "client process %d was killed by signal %d", d->child_pid,
            term_signal);
    else
        say("daemon", "client process %d exited with status %lld", d->child_pid,
            (long long)exit_status);
    uv_close((uv_handle_t *)p, NULL);
    daemon_stop(d, "the demo is over");
}

static void demo_timeout(uv_timer_t *t) {
    daemon_t *d = t->data;
    fprintf(stderr, "unix-service: FAILED: the client did not finish within %d ms\n",
            DEMO_TIMEOUT_MS);
    d->failed = 1;
    uv_process_kill(&d->child, SIGKILL); /* child_exited stops the daemon */
}

static int run_demo(void) {
    char tmp[512], path[600], exe[4096];
    size_t tmp_len = sizeof(tmp), exe_len = sizeof(exe);
    uv_loop_t *loop = uv_default_loop();
    daemon_t d;
    int rc;

    printf("cmdipc %s unix-service: a daemon on a Unix socket and a client process\n\n",
           cmdipc_version_string());
    fflush(stdout);
    if ((rc = uv_os_tmpdir(tmp, &tmp_len)) != 0 ||
        (rc = uv_exepath(exe, &exe_len)) != 0) {
        fprintf(stderr, "unix-service: %s\n", uv_strerror(rc));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/cmdipc-unix-service-%d.sock", tmp,
             (int)uv_os_getpid());

    memset(&d, 0, sizeof(d));
    d.demo = 1;
    if ((rc = daemon_start(&d, loop, path)) == 0) {
        char *args[] = {exe, "client", path, NULL};
        uv_stdio_container_t stdio[3] = {
            {.flags = UV_IGNORE},
            {.flags = UV_INHERIT_FD, .data.fd = 1},
            {.flags = UV_INHERIT_FD, .data.fd = 2},
        };
        uv_process_options_t po;
        memset(&po, 0, sizeof(po));
        po.file = exe;
        po.args = args;
        po.exit_cb = child_exited;
        po.stdio = stdio;
        po.stdio_count = 3;
        d.child.data = &d;
        rc = uv_spawn(loop, &d.child, &po);
        if (rc == 0) {
            d.child_pid = d.child.pid;
            say("daemon", "started the client: %s client %s (pid %d)", exe, path,
                d.child_pid);
            d.guard.data = &d;
            uv_timer_start(&d.guard, demo_timeout, DEMO_TIMEOUT_MS, 0);
        } else {
            fprintf(stderr, "unix-service: spawn %s: %s\n", exe, uv_strerror(rc));
            uv_close((uv_handle_t *)&d.child, NULL); /* initialised even on failure */
            d.failed = 1;
            daemon_stop(&d, "no client");
        }
    } else {
        fprintf(stderr, "unix-service: cannot listen on %s: %s\n", path,
                cmdipc_strerror(rc));
    }
    uv_run(loop, UV_RUN_DEFAULT);
    json_decref(d.store);

    if (uv_loop_close(loop) != 0) {
        fprintf(stderr, "unix-service: FAILED: handles left open on the loop\n");
        d.failed = 1;
    }
    if (!d.failed && (!d.child_exited || d.child_status != 0 || d.child_signal != 0)) {
        fprintf(stderr, "unix-service: FAILED: the client did not succeed\n");
        d.failed = 1;
    }
    if (!d.failed && !d.child_seen) {
        fprintf(stderr,
                "unix-service: FAILED: no connection came from the client's pid\n");
        d.failed = 1;
    }
    if (d.failed)
        return 1;
    printf("\nthe client did every step; the daemon and both loops closed cleanly.\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "daemon") == 0)
        return run_daemon(argv[2]);
    if (argc == 3 && strcmp(argv[1], "client") == 0)
        return run_client(argv[2]);
    if (argc == 1 || (argc == 2 && strcmp(argv[1], "demo") == 0))
        return run_demo();
    fprintf(stderr,
            "usage: %s daemon PATH   serve kv.set/kv.get on unix://PATH\n"
            "       %s client PATH   talk to that daemon\n"
            "       %s [demo]        both, on a socket under $TMPDIR\n",
            argv[0], argv[0], argv[0]);
    return 2;
}
