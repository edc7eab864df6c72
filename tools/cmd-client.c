/* cmdipc — the client sub-commands: call, list, emit, listen.
 *
 * Each runs a registry whose router is the peer at ADDR (the channel
 * CLI_PEER), so that every command it does not serve (all of them) is
 * executed there, and the peer's events reach it. The connection is one-shot
 * (no reconnect): a failed connection is exit 69, a lost one 14.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CONNECT_TIMEOUT_DEFAULT 10000

enum {
    OPT_TIMEOUT = 1,
    OPT_CONNECT_TIMEOUT,
    OPT_PRETTY,
    OPT_RAW,
    OPT_JSON,
    OPT_NO_HEADER,
    OPT_COUNT,
};

/* Options every client takes. */
typedef struct client_opts_s {
    uint64_t timeout_ms;
    int has_timeout;
    uint64_t connect_timeout_ms;
    int pretty, raw, json, no_header;
    uint64_t count;
} client_opts_t;

static int client_opt(int key, const char *arg, void *data) {
    client_opts_t *o = data;
    switch (key) {
        case OPT_TIMEOUT:
            o->has_timeout = 1;
            return cli_parse_ms("--timeout", arg, &o->timeout_ms);
        case OPT_CONNECT_TIMEOUT:
            return cli_parse_ms("--connect-timeout", arg, &o->connect_timeout_ms);
        case OPT_PRETTY:
            o->pretty = 1;
            return 0;
        case OPT_RAW:
            o->raw = 1;
            return 0;
        case OPT_JSON:
            o->json = 1;
            return 0;
        case OPT_NO_HEADER:
            o->no_header = 1;
            return 0;
        case OPT_COUNT:
            return cli_parse_count("--count", arg, &o->count);
        default:
            return CLI_EXIT_USAGE;
    }
}

static void client_opts_init(client_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = CONNECT_TIMEOUT_DEFAULT;
}

/* Creates the client registry (router: the peer) and its app. The request
 * deadline is the --timeout, if any. handle_signals: SIGINT/SIGTERM finish
 * with exit 0 (otherwise they kill the process, as usual). */
static int client_init(cli_app_t *app, const char *name, const char *url,
                       const client_opts_t *o, int handle_signals) {
    cmdipc_registry_opts_t ro;
    if (strncmp(url, "stdio://", 8) == 0) /* stdout is ours: results, events */
        return cli_usage(
            "stdio:// is for 'cmdipc serve' run by a host; give a unix:// or "
            "tcp:// address");
    cmdipc_registry_opts_init(&ro);
    ro.id = name;
    ro.router_channel = CLI_PEER;
    ro.log_level = cli_log_level(CMDIPC_LOG_ERROR);
    if (o->has_timeout)
        ro.request_ttl_ms = o->timeout_ms;
    app->url = url;
    app->connect_timeout_ms = o->connect_timeout_ms;
    return cli_app_init(app, &ro, handle_signals);
}

/* A one-shot sub-command (call, list, emit): its registry, on_up (and
 * on_closed, if any) with data, then connect and run to the exit code.
 * owned (a request or payload, may be NULL) is released either way. */
static int client_run(cli_app_t *app, const char *name, const char *url,
                      const client_opts_t *o, void *data,
                      void (*on_up)(cli_app_t *, cmdipc_channel_t *),
                      void (*on_closed)(cli_app_t *, int), json_t *owned) {
    int rc = client_init(app, name, url, o, 0);
    if (rc == 0) {
        app->data = data;
        app->on_up = on_up;
        if (on_closed != NULL)
            app->on_closed = on_closed;
        cli_app_connect(app);
        rc = cli_app_run(app);
    }
    json_decref(owned);
    return rc;
}

#define CONNECT_OPTS                                                                     \
    "  --connect-timeout DURATION   give up connecting after DURATION (default 10s)\n"   \
    "  -v, --verbose                say what happens on stderr (-vv: debug)\n"           \
    "  -h, --help                   this help\n"

#define DURATIONS "DURATION is milliseconds, or a number with ms, s, m or h (1.5s).\n"

/* ===========================================================================
 * call ADDR COMMAND [JSON]
 */

static const char call_help[] =
    "Usage: cmdipc call [OPTIONS] ADDR COMMAND [JSON]\n"
    "\n"
    "Executes COMMAND wherever it lives in the mesh reached through ADDR (a hub routes\n"
    "it to the registry that serves it) and prints its result as JSON on stdout, one\n"
    "line (nothing when the command returns no result). JSON is the request: any JSON\n"
    "value, '-' to read it from stdin; without it the request is absent. On failure\n"
    "the error code and message go to stderr ('cmdipc call: not_found: ...') and the\n"
    "exit status says which error it was.\n"
    "\n"
    "Options:\n"
    "  -t, --timeout DURATION       fail with timeout after DURATION (default 30s;\n"
    "                               0: wait forever)\n"
    "  -p, --pretty                 indent the result\n"
    "  -r, --raw                    print a string result without quotes or "
    "escapes\n" CONNECT_OPTS "\n" DURATIONS "\n" CLI_EXIT_TABLE "\n"
    "Examples:\n"
    "  cmdipc call unix:///tmp/app.sock math.add '{\"a\": 2, \"b\": 3}'\n"
    "  echo '{\"a\": 2, \"b\": 3}' | cmdipc call tcp://127.0.0.1:7400 math.add -\n"
    "  cmdipc call --timeout 2s unix:///tmp/app.sock greet.hello '\"Ada\"'\n"
    "  name=$(cmdipc call -r unix:///tmp/app.sock user.name) || echo \"failed: $?\"\n";

typedef struct call_s {
    cli_app_t app;
    client_opts_t o;
    const char *command;
    json_t *request;
    int sent;
} call_t;

static void call_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data) {
    call_t *c = data;
    (void)req;
    if (c->app.finishing)
        return;
    if (status != 0) {
        cli_app_fail(&c->app, status, message);
        return;
    }
    int rc = result != NULL ? cli_print_json(result, c->o.pretty, c->o.raw) : 0;
    cli_app_finish(&c->app, rc);
}

static void call_up(cli_app_t *app, cmdipc_channel_t *ch) {
    call_t *c = app->data;
    (void)ch;
    if (c->sent)
        return;
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    if (c->o.has_timeout)
        eo.timeout_ms = c->o.timeout_ms;
    int rc = cmdipc_registry_execute(app->reg, c->command, c->request, &eo, call_done, c,
                                     NULL);
    if (rc != 0) {
        if (rc == UV_EINVAL) {
            cli_error("the request cannot be sent: %s", cmdipc_strerror(rc));
            cli_app_finish(app, CLI_EXIT_USAGE);
        } else {
            cli_app_fail(app, rc, NULL);
        }
        return;
    }
    c->sent = 1;
}

/* Once the request is out, a lost connection fails it with
 * channel_disconnected (call_done reports it); before, it is exit 69. */
static void call_closed(cli_app_t *app, int status) {
    call_t *c = app->data;
    if (c->sent)
        return;
    cli_error("%s %s: %s", app->up ? "connection to" : "cannot connect to", app->url,
              status ? cmdipc_strerror(status) : "closed");
    cli_app_finish(app, CLI_EXIT_CONNECT);
}

int cmd_call(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"timeout", 't', 1, OPT_TIMEOUT},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {"pretty", 'p', 0, OPT_PRETTY},
        {"raw", 'r', 0, OPT_RAW},
        {NULL, 0, 0, 0},
    };
    call_t c;
    memset(&c, 0, sizeof(c));
    client_opts_init(&c.o);
    char *pos[3];
    int n, rc = cli_parse(argc, argv, opts, client_opt, &c.o, call_help, pos, 3, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (n < 2)
        return cli_usage("expected ADDR COMMAND [JSON]");
    c.command = pos[1];
    if ((rc = cli_check_id("COMMAND", c.command)) != 0)
        return rc;
    if (n == 3 && (rc = cli_parse_json("the request", pos[2], &c.request)) != 0)
        return rc;
    return client_run(&c.app, "cmdipc-call", pos[0], &c.o, &c, call_up, call_closed,
                      c.request);
}

/* ===========================================================================
 * list ADDR
 */

static const char list_help[] =
    "Usage: cmdipc list [OPTIONS] ADDR\n"
    "\n"
    "Prints the commands reachable at ADDR: id, owner and description, one per line,\n"
    "sorted by id. The owner is the channel the registry at ADDR reaches the command\n"
    "through ('local' when it serves it itself). A hub (and any registry created with\n"
    "builtin_commands) answers with every command it knows, through its built-in\n"
    "command cmdipc.commands; any other peer is asked with list.commands.request,\n"
    "which returns its own commands.\n"
    "\n"
    "Options:\n"
    "  -j, --json                   one JSON object per line (NDJSON):\n"
    "                               {\"id\", \"description\"?, \"schema\"?, "
    "\"channel\"?,\n"
    "                               \"local\"}\n"
    "  --no-header                  no header line\n"
    "  -t, --timeout DURATION       give up after DURATION (default 30s)\n" CONNECT_OPTS
    "\n" DURATIONS "\n"
    "Exit status: 0 ok, 13 timeout, 14 connection lost, 64 usage, 69 cannot connect\n"
    "(the table in 'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc list unix:///tmp/app.sock\n"
    "  cmdipc list --json tcp://127.0.0.1:7400 | grep '\"math\\.'\n";

typedef struct list_s {
    cli_app_t app;
    client_opts_t o;
} list_t;

static int print_commands(list_t *l, json_t *cmds, int all_local) {
    size_t i, width = 7;
    json_t *c;
    json_array_foreach(cmds, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id != NULL && strlen(id) > width)
            width = strlen(id);
    }
    if (width > 40)
        width = 40;
    if (!l->o.json && !l->o.no_header)
        printf("%-*s  %-10s  %s\n", (int)width, "COMMAND", "OWNER", "DESCRIPTION");
    json_array_foreach(cmds, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (!json_is_object(c) || id == NULL)
            continue;
        if (all_local && json_object_get(c, "local") == NULL)
            json_object_set_new(c, "local", json_true());
        if (l->o.json) {
            json_dumpf(c, stdout, cli_json_flags(c, 0));
            fputc('\n', stdout);
            continue;
        }
        const char *owner = json_string_value(json_object_get(c, "channel"));
        const char *desc = json_string_value(json_object_get(c, "description"));
        if (owner == NULL)
            owner = json_is_true(json_object_get(c, "local")) ? "local" : "-";
        printf("%-*s  %-10s  %s\n", (int)width, id, owner, desc ? desc : "");
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        return CLI_EXIT_OTHER;
    return 0;
}

static void list_answer(cmdipc_registry_t *r, int status, json_t *commands, void *data) {
    list_t *l = data;
    (void)r;
    if (l->app.finishing)
        return;
    if (status != 0) {
        cli_app_fail(&l->app, status, NULL);
        return;
    }
    json_t *copy = json_deep_copy(commands); /* borrowed: we add "local" */
    int rc = print_commands(l, copy ? copy : commands, 1);
    json_decref(copy);
    cli_app_finish(&l->app, rc);
}

static void list_builtin_done(cmdipc_req_t *req, int status, json_t *result,
                              const char *message, void *data) {
    list_t *l = data;
    (void)req;
    if (l->app.finishing)
        return;
    json_t *cmds = json_object_get(result, "commands");
    if (status == 0 && json_is_array(cmds)) {
        cli_app_finish(&l->app, print_commands(l, cmds, 0));
        return;
    }
    if (status != 0 && status != CMDIPC_ENOTFOUND) {
        cli_app_fail(&l->app, status, message);
        return;
    }
    /* Not a hub: ask the peer for its own commands. */
    cli_info(2, "no cmdipc.commands at %s: asking with list.commands.request",
             l->app.url);
    cmdipc_channel_t *ch = cmdipc_registry_channel(l->app.reg, CLI_PEER);
    int rc = ch ? cmdipc_channel_list_commands(ch, list_answer, l) : CMDIPC_EDISCONNECTED;
    if (rc != 0)
        cli_app_fail(&l->app, rc, NULL);
}

static void list_up(cli_app_t *app, cmdipc_channel_t *ch) {
    list_t *l = app->data;
    (void)ch;
    int rc = cmdipc_registry_execute(app->reg, "cmdipc.commands", NULL, NULL,
                                     list_builtin_done, l, NULL);
    if (rc != 0)
        cli_app_fail(app, rc, NULL);
}

int cmd_list(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"json", 'j', 0, OPT_JSON},
        {"no-header", 0, 0, OPT_NO_HEADER},
        {"timeout", 't', 1, OPT_TIMEOUT},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    list_t l;
    memset(&l, 0, sizeof(l));
    client_opts_init(&l.o);
    char *pos[1];
    int n, rc = cli_parse(argc, argv, opts, client_opt, &l.o, list_help, pos, 1, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (n < 1)
        return cli_usage("expected ADDR");
    return client_run(&l.app, "cmdipc-list", pos[0], &l.o, &l, list_up, NULL, NULL);
}

/* ===========================================================================
 * emit ADDR EVENT [JSON]
 */

static const char emit_help[] =
    "Usage: cmdipc emit [OPTIONS] ADDR EVENT [JSON]\n"
    "\n"
    "Emits EVENT with the payload JSON (any JSON value, '-' for stdin; none without\n"
    "it) to the registry at ADDR, which passes it on to the whole mesh (a hub, to\n"
    "everything connected to it). Exits once the peer has taken it in (it answers a\n"
    "request sent after the event). Events whose id starts with '_' are private\n"
    "(never forwarded) and refused here.\n"
    "\n"
    "Options:\n" CONNECT_OPTS "\n" DURATIONS "\n"
    "Exit status: 0 sent, 13 no confirmation in time, 14 connection lost, 64 usage,\n"
    "69 cannot connect (see 'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc emit unix:///tmp/app.sock job.done '{\"id\": 42}'\n"
    "  cmdipc emit tcp://127.0.0.1:7400 app.reload\n"
    "  date +%s | cmdipc emit unix:///tmp/app.sock clock.tick -\n";

typedef struct emit_s {
    cli_app_t app;
    client_opts_t o;
    const char *event;
    json_t *payload;
} emit_t;

/* The peer answered our list request, sent after the event on the same
 * connection: it has taken the event in (and passed it on). Only now is it
 * safe to close: a peer that finds the connection closed while it answers
 * may drop what it had not read yet. */
static void emit_confirmed(cmdipc_registry_t *r, int status, json_t *commands,
                           void *data) {
    emit_t *e = data;
    (void)r;
    (void)commands;
    if (e->app.finishing)
        return;
    if (status != 0) {
        cli_error("connection to %s lost before it confirmed the event: %s", e->app.url,
                  cmdipc_strerror(status));
        cli_app_finish(&e->app, cli_exit_code(status));
        return;
    }
    cli_info(1, "emitted %s", e->event);
    cli_app_finish(&e->app, CLI_EXIT_OK);
}

static void emit_up(cli_app_t *app, cmdipc_channel_t *ch) {
    emit_t *e = app->data;
    int rc = cmdipc_registry_emit(app->reg, e->event, e->payload);
    if (rc == 0)
        rc = cmdipc_channel_list_commands(ch, emit_confirmed, e);
    if (rc != 0)
        cli_app_fail(app, rc, NULL);
}

int cmd_emit(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    emit_t e;
    memset(&e, 0, sizeof(e));
    client_opts_init(&e.o);
    char *pos[3];
    int n, rc = cli_parse(argc, argv, opts, client_opt, &e.o, emit_help, pos, 3, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (n < 2)
        return cli_usage("expected ADDR EVENT [JSON]");
    e.event = pos[1];
    if ((rc = cli_check_id("EVENT", e.event)) != 0)
        return rc;
    if (e.event[0] == '_')
        return cli_usage("event '%s' is private ('_' prefix): it would never leave this "
                         "process",
                         e.event);
    if (n == 3 && (rc = cli_parse_json("the payload", pos[2], &e.payload)) != 0)
        return rc;
    return client_run(&e.app, "cmdipc-emit", pos[0], &e.o, &e, emit_up, NULL, e.payload);
}

/* ===========================================================================
 * listen ADDR [EVENT...]
 */

static const char listen_help[] =
    "Usage: cmdipc listen [OPTIONS] ADDR [EVENT...]\n"
    "\n"
    "Prints the events that reach the registry at ADDR (a hub: every event of the\n"
    "mesh) as NDJSON on stdout, one line per event, flushed at once:\n"
    "  {\"eventId\":\"job.done\",\"payload\":{\"id\":42}}\n"
    "(\"payload\" is left out when the event has none). With EVENT arguments, only\n"
    "the events matching one of them (shell patterns: 'job.*'). Runs until --count\n"
    "events were printed, SIGINT/SIGTERM (exit 0), or the connection is lost.\n"
    "With -v it says on stderr when it is listening.\n"
    "\n"
    "Options:\n"
    "  -n, --count N                exit after N events\n" CONNECT_OPTS "\n" DURATIONS
    "\n"
    "Exit status: 0 done, 14 connection lost, 64 usage, 69 cannot connect\n"
    "(see 'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc listen unix:///tmp/app.sock\n"
    "  cmdipc listen --count 1 tcp://127.0.0.1:7400 job.done\n"
    "  cmdipc listen unix:///tmp/app.sock 'math.*' | while read -r ev; do echo \"got "
    "$ev\"; "
    "done\n";

typedef struct listen_s {
    cli_app_t app;
    client_opts_t o;
    char **patterns;
    int n_patterns;
    uint64_t seen;
} listen_t;

static int listen_matches(listen_t *l, const char *event_id) {
    if (l->n_patterns == 0)
        return 1;
    for (int i = 0; i < l->n_patterns; i++)
        if (fnmatch(l->patterns[i], event_id, 0) == 0)
            return 1;
    return 0;
}

static void listen_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                         void *data) {
    listen_t *l = data;
    (void)r;
    if (l->app.finishing || !listen_matches(l, event_id))
        return;
    json_t *line = json_pack("{s:s}", "eventId", event_id);
    if (line == NULL)
        return;
    if (payload != NULL)
        json_object_set(line, "payload", payload);
    int rc = cli_print_json(line, 0, 0);
    json_decref(line);
    if (rc != 0) { /* stdout is gone (the reader of the pipe left): done */
        cli_app_finish(&l->app, CLI_EXIT_OK);
        return;
    }
    if (l->o.count > 0 && ++l->seen >= l->o.count)
        cli_app_finish(&l->app, CLI_EXIT_OK);
}

/* The peer answered a list request: it has attached our channel, so the
 * events emitted from now on reach us. */
static void listen_ready(cmdipc_registry_t *r, int status, json_t *commands, void *data) {
    listen_t *l = data;
    (void)r;
    (void)commands;
    if (status == 0 && !l->app.finishing)
        cli_info(1, "listening on %s", l->app.url);
}

static void listen_up(cli_app_t *app, cmdipc_channel_t *ch) {
    listen_t *l = app->data;
    if (cmdipc_channel_list_commands(ch, listen_ready, l) != 0)
        cli_info(1, "listening on %s", app->url);
}

int cmd_listen(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"count", 'n', 1, OPT_COUNT},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    listen_t l;
    memset(&l, 0, sizeof(l));
    client_opts_init(&l.o);
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    if (pos == NULL)
        return CLI_EXIT_OTHER;
    int n, rc = cli_parse(argc, argv, opts, client_opt, &l.o, listen_help, pos, argc, &n);
    if (rc != 0 || n < 1) {
        free(pos);
        return rc < 0 ? 0 : rc ? rc : cli_usage("expected ADDR [EVENT...]");
    }
    for (int i = 1; i < n; i++) {
        if ((rc = cli_check_id("EVENT", pos[i])) != 0) {
            free(pos);
            return rc;
        }
    }
    l.patterns = pos + 1;
    l.n_patterns = n - 1;
    if ((rc = client_init(&l.app, "cmdipc-listen", pos[0], &l.o, 1)) != 0) {
        free(pos);
        return rc;
    }
    l.app.data = &l;
    l.app.on_up = listen_up;
    rc = cmdipc_registry_on(l.app.reg, NULL, listen_event, &l, NULL);
    if (rc != 0) {
        cli_error("cannot listen: %s", cmdipc_strerror(rc));
        cli_app_finish(&l.app, CLI_EXIT_OTHER);
    } else {
        cli_app_connect(&l.app);
    }
    rc = cli_app_run(&l.app);
    free(pos);
    return rc;
}
