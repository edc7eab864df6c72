/* cmdipc — what the client sub-commands share (client.h): their options,
 * the connection, the command list of the peer, and waiting for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

int client_opt(int key, const char *arg, void *data) {
    client_opts_t *o = data;
    switch (key) {
        case OPT_TIMEOUT:
            o->has_timeout = 1;
            return cli_parse_ms("--timeout", arg, &o->timeout_ms);
        case OPT_CONNECT_TIMEOUT:
            o->has_connect_timeout = 1;
            return cli_parse_ms("--connect-timeout", arg, &o->connect_timeout_ms);
        case OPT_PRETTY:
            o->pretty = 1;
            return 0;
        case OPT_RAW:
            o->raw = 1;
            return 0;
        case OPT_NO_HEADER:
            o->no_header = 1;
            return 0;
        case OPT_COUNT:
            return cli_parse_count("--count", arg, &o->count);
        case OPT_WAIT:
            o->wait = 1;
            return 0;
        case OPT_LINES:
            o->lines = 1;
            return 0;
        case OPT_JOBS:
            if (cli_parse_count("--jobs", arg, &o->jobs) != 0)
                return CLI_EXIT_USAGE;
            if (o->jobs > JOBS_MAX)
                return cli_usage("--jobs %s: at most %d calls can be in flight", arg,
                                 JOBS_MAX);
            return 0;
        case OPT_SCHEMA:
            o->schema = 1;
            return 0;
        case OPT_TIMESTAMPS:
            o->timestamps = 1;
            return 0;
        default:
            return CLI_EXIT_USAGE;
    }
}

void client_opts_init(client_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = CONNECT_TIMEOUT_DEFAULT;
    o->jobs = 1;
}

/* ---------------------------------------------------------------------------
 * The client: an app, and what `wait` and `call --wait` poll for.
 */

/* Creates the client registry (router: the peer) and its app. The request
 * deadline is the --timeout, if any. handle_signals: SIGINT/SIGTERM finish
 * with exit 0 (otherwise they kill the process, as usual). */
int client_init(client_t *c, const char *name, const char *url, int handle_signals) {
    cmdipc_registry_opts_t ro;
    if (strncmp(url, "stdio://", 8) == 0) /* stdout is ours: results, events */
        return cli_usage(
            "stdio:// is for 'cmdipc serve' run by a host; give a unix:// or "
            "tcp:// address");
    cmdipc_registry_opts_init(&ro);
    ro.id = name;
    ro.router_channel = CLI_PEER;
    ro.log_level = cli_log_level(CMDIPC_LOG_ERROR);
    if (c->waiting && cli_verbosity < 2) /* not every attempt to connect */
        ro.log_level = CMDIPC_LOG_ERROR;
    if (c->o.has_timeout)
        ro.request_ttl_ms = c->o.timeout_ms;
    c->app.url = url;
    c->app.connect_timeout_ms = c->o.connect_timeout_ms;
    c->app.data = c;
    return cli_app_init(&c->app, &ro, handle_signals);
}

/* Fetches the commands reachable at the peer: the hub's cmdipc.commands
 * (every command of the mesh, with owners), else the peer's own commands
 * (list.commands.request). cb gets a JSON array (borrowed) of
 * {id, description?, schema?, channel?, peer?, local}, sorted by id. */
static int by_id(const void *a, const void *b) {
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

/* A sorted copy of the entries of cmds that are objects with a string id;
 * all_local: the peer's own commands (a list response), marked local. */
static json_t *sorted_commands(json_t *cmds, int all_local) {
    size_t n = json_array_size(cmds), k = 0, i;
    json_t **v = calloc(n + 1, sizeof(*v)), *e;
    json_t *out = json_array();
    if (v == NULL || out == NULL) {
        free(v);
        json_decref(out);
        return NULL;
    }
    json_array_foreach(cmds, i, e) {
        if (json_is_object(e) && json_is_string(json_object_get(e, "id")))
            v[k++] = e;
    }
    qsort(v, k, sizeof(*v), by_id);
    for (i = 0; i < k; i++) {
        json_t *copy = json_copy(v[i]); /* shallow: we may add "local" */
        if (copy == NULL)
            continue;
        if (all_local && json_object_get(copy, "local") == NULL)
            json_object_set_new(copy, "local", json_true());
        json_array_append_new(out, copy);
    }
    free(v);
    return out;
}

static void fetch_finish(client_t *c, int status, json_t *cmds, int all_local,
                         const char *message) {
    commands_cb cb = c->fetch_cb;
    c->fetch_cb = NULL;
    json_t *sorted = status == 0 ? sorted_commands(cmds, all_local) : NULL;
    if (status == 0 && sorted == NULL)
        status = UV_ENOMEM;
    if (cb != NULL && !c->app.finishing)
        cb(c, status, sorted, message);
    json_decref(sorted);
}

static void fetch_listed(cmdipc_registry_t *r, int status, json_t *commands, void *data) {
    (void)r;
    fetch_finish(data, status, commands, 1, NULL);
}

static void fetch_builtin(cmdipc_req_t *req, int status, json_t *result,
                          const char *message, void *data) {
    client_t *c = data;
    (void)req;
    if (c->app.finishing)
        return;
    json_t *cmds = json_object_get(result, "commands");
    if (status == 0 && json_is_array(cmds)) {
        fetch_finish(c, 0, cmds, 0, NULL);
        return;
    }
    if (status != 0 && status != CMDIPC_ENOTFOUND) {
        fetch_finish(c, status, NULL, 0, message);
        return;
    }
    /* Not a hub: ask the peer for its own commands. */
    cli_info(2, "no cmdipc.commands at %s: asking with list.commands.request",
             c->app.url);
    cmdipc_channel_t *ch = cmdipc_registry_channel(c->app.reg, CLI_PEER);
    int rc =
        ch ? cmdipc_channel_list_commands(ch, fetch_listed, c) : CMDIPC_EDISCONNECTED;
    if (rc != 0)
        fetch_finish(c, rc, NULL, 0, NULL);
}

void fetch_commands(client_t *c, commands_cb cb) {
    c->fetch_cb = cb;
    int rc = cmdipc_registry_execute(c->app.reg, "cmdipc.commands", NULL, NULL,
                                     fetch_builtin, c, NULL);
    if (rc != 0)
        fetch_finish(c, rc, NULL, 0, NULL);
}

json_t *find_command(json_t *cmds, const char *id) {
    size_t i;
    json_t *e;
    json_array_foreach(cmds, i, e) {
        const char *x = json_string_value(json_object_get(e, "id"));
        if (x != NULL && strcmp(x, id) == 0)
            return e;
    }
    return NULL;
}

/* --- Waiting ------------------------------------------------------------ */

static void client_ready(client_t *c) {
    if (c->ready || c->app.finishing)
        return;
    c->ready = 1;
    if (c->timers_on) {
        uv_timer_stop(&c->deadline);
        uv_timer_stop(&c->poll);
    }
    c->on_ready(c);
}

static void wait_look(client_t *c);
static void wait_poll(uv_timer_t *t);

static void wait_looked(client_t *c, int status, json_t *cmds, const char *message) {
    (void)message;
    if (c->ready)
        return;
    if (status == 0) {
        c->answered = 1;
        c->missing = NULL;
        for (int i = 0; i < c->n_need && c->missing == NULL; i++)
            if (find_command(cmds, c->need[i]) == NULL)
                c->missing = c->need[i];
        if (c->missing == NULL) {
            client_ready(c);
            return;
        }
        cli_info(2, "%s is not reachable yet", c->missing);
    } else {
        cli_info(2, "looking at the commands failed: %s", cmdipc_strerror(status));
    }
    uv_timer_start(&c->poll, wait_poll, POLL_MS, 0);
}

static void wait_poll(uv_timer_t *t) { wait_look(t->data); }

static void wait_look(client_t *c) {
    cmdipc_channel_t *ch = cmdipc_registry_channel(c->app.reg, CLI_PEER);
    if (c->ready || c->app.finishing || c->fetch_cb != NULL || ch == NULL ||
        !cmdipc_channel_is_up(ch))
        return; /* the next UP looks again */
    fetch_commands(c, wait_looked);
}

static void wait_expired(uv_timer_t *t) {
    client_t *c = t->data;
    char d[32];
    if (c->ready || c->app.finishing)
        return;
    cli_fmt_ms(c->wait_ms, d, sizeof(d));
    if (!c->answered) {
        cli_error("%s did not answer within %s", c->app.url, d);
        cli_app_finish(&c->app, CLI_EXIT_CONNECT);
        return;
    }
    cli_error_code("not_found");
    cli_error("%s is not reachable at %s: still not served after %s", c->missing,
              c->app.url, d);
    cli_app_finish(&c->app, CLI_EXIT_NOTFOUND);
}

void client_up(cli_app_t *app, cmdipc_channel_t *ch) {
    client_t *c = app->data;
    (void)ch;
    if (!c->waiting) {
        client_ready(c);
        return;
    }
    wait_look(c);
}

void client_finish(cli_app_t *app) {
    client_t *c = app->data;
    if (c->timers_on) {
        uv_close((uv_handle_t *)&c->deadline, NULL);
        uv_close((uv_handle_t *)&c->poll, NULL);
        c->timers_on = 0;
    }
}

/* Connects and runs to the exit code. Waiting (c->waiting), the dialer
 * reconnects until the peer answers and serves c->need, within c->wait_ms
 * (0: forever). owned (a request or payload, may be NULL) is released. */
int client_run(client_t *c, const char *name, const char *url,
               void (*on_ready)(client_t *), void (*on_closed)(cli_app_t *, int),
               json_t *owned) {
    int rc = client_init(c, name, url, 0);
    if (rc == 0) {
        c->on_ready = on_ready;
        c->app.on_up = client_up;
        if (c->app.on_finish == NULL)
            c->app.on_finish = client_finish;
        if (on_closed != NULL)
            c->app.on_closed = on_closed;
        if (c->waiting) {
            c->app.reconnect = 1;
            c->app.reconnect_min_ms = 20;
            c->app.reconnect_max_ms = 500;
            c->app.connect_timeout_ms = 0; /* the wait's deadline instead */
            uv_timer_init(&c->app.loop, &c->deadline);
            uv_timer_init(&c->app.loop, &c->poll);
            c->deadline.data = c->poll.data = c;
            c->timers_on = 1;
            if (c->wait_ms > 0)
                uv_timer_start(&c->deadline, wait_expired, c->wait_ms, 0);
        }
        cli_app_connect(&c->app);
        rc = cli_app_run(&c->app);
    }
    json_decref(owned);
    return rc;
}
