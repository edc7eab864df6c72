/* cmdipc — `cmdipc emit ADDR EVENT [JSON]` and `cmdipc listen ADDR [EVENT...]`. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

/* ===========================================================================
 * emit ADDR EVENT [JSON]
 */

static const char emit_help[] =
    "Usage: cmdipc emit [OPTIONS] ADDR EVENT [JSON]\n"
    "\n"
    "Emits EVENT with the payload JSON (any JSON value, '-' for stdin; none without\n"
    "it) to the registry at ADDR, which passes it on to the whole mesh (a hub, to\n"
    "everything connected to it). Exits once the peer has confirmed it took the\n"
    "event in: it answers a request sent after the event on the same connection.\n"
    "Events whose id starts with '_' are private (never forwarded) and refused\n"
    "here.\n"
    "\n" ADDR_TEXT "\n"
    "Options:\n"
    "  -t, --timeout DURATION       wait at most DURATION for the confirmation\n"
    "                               (default 30s; 0: wait forever)\n" CONNECT_OPTS
    "\n" DURATIONS "\n"
    "Exit status: 0 sent and confirmed, 13 sent but not confirmed in time, 14\n"
    "connection lost before the confirmation, 64 usage, 69 cannot connect (see\n"
    "'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc emit unix:///tmp/app.sock job.done '{\"id\": 42}'\n"
    "  cmdipc emit --timeout 2 tcp://127.0.0.1:7400 app.reload\n"
    "  date +%s | cmdipc emit /tmp/app.sock clock.tick -\n";

typedef struct emit_s {
    client_t c;
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
    char d[32];
    (void)r;
    (void)commands;
    if (e->c.app.finishing)
        return;
    if (status == CMDIPC_ETIMEDOUT) {
        cli_error_code("timeout");
        cli_error(
            "%s was sent, but %s did not confirm it within %s", e->event, e->c.app.url,
            cli_fmt_ms(e->c.o.has_timeout ? e->c.o.timeout_ms : 30000, d, sizeof(d)));
        cli_app_finish(&e->c.app, CLI_EXIT_TIMEOUT);
        return;
    }
    if (status != 0) {
        cli_error_code(cli_status_code(status));
        cli_error(
            "%s was sent, but the connection to %s was lost before it was confirmed "
            "(%s)",
            e->event, e->c.app.url, cmdipc_strerror(status));
        cli_app_finish(&e->c.app, status == CMDIPC_EDISCONNECTED ? CLI_EXIT_DISCONNECTED
                                                                 : cli_exit_code(status));
        return;
    }
    cli_info(1, "emitted %s", e->event);
    cli_app_finish(&e->c.app, CLI_EXIT_OK);
}

static void emit_ready(client_t *c) {
    emit_t *e = (emit_t *)c;
    cmdipc_channel_t *ch = cmdipc_registry_channel(c->app.reg, CLI_PEER);
    int rc = cmdipc_registry_emit(c->app.reg, e->event, e->payload);
    if (rc == 0)
        rc = ch ? cmdipc_channel_list_commands(ch, emit_confirmed, e)
                : CMDIPC_EDISCONNECTED;
    if (rc != 0)
        cli_app_fail(&c->app, rc, NULL);
}

int cmd_emit(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"timeout", 't', 1, OPT_TIMEOUT},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    emit_t e;
    memset(&e, 0, sizeof(e));
    client_opts_init(&e.c.o);
    char *pos[3];
    const char *url;
    int n, rc = cli_parse(argc, argv, opts, client_opt, &e.c.o, emit_help, pos, 3, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if ((rc = cli_take_addr(pos, &n, &url)) != 0)
        return rc;
    if (n < 1 || n > 2)
        return cli_usage("expected ADDR EVENT [JSON] (ADDR may come from CMDIPC_ADDR)");
    e.event = pos[0];
    if ((rc = cli_check_id("EVENT", e.event)) != 0)
        return rc;
    if (e.event[0] == '_')
        return cli_usage("event '%s' is private ('_' prefix): it would never leave this "
                         "process",
                         e.event);
    if (n == 2 && (rc = cli_parse_json("the payload", pos[1], &e.payload)) != 0)
        return rc;
    return client_run(&e.c, "cmdipc-emit", url, emit_ready, NULL, e.payload);
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
    "With -v it says on stderr when it is listening ('listening on ADDR'): events\n"
    "emitted from then on reach it.\n"
    "\n" ADDR_TEXT "\n"
    "Options:\n"
    "  -n, --count N                exit after N events\n"
    "  -T, --timestamps             add \"time\": when the event arrived, UTC\n"
    "                               (\"2025-05-16T09:30:00.125Z\")\n" CONNECT_OPTS
    "\n" DURATIONS "\n"
    "Exit status: 0 done, 14 connection lost, 64 usage, 69 cannot connect\n"
    "(see 'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc listen unix:///tmp/app.sock\n"
    "  cmdipc listen --count 1 --timestamps tcp://127.0.0.1:7400 job.done\n"
    "  cmdipc listen -q -n 1 /tmp/app.sock job.done   # wait for one event\n"
    "  cmdipc listen /tmp/app.sock 'math.*' | while read -r ev; do echo \"got $ev\"; "
    "done\n";

typedef struct listen_s {
    client_t c;
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

static json_t *timestamp(void) {
    struct timespec ts;
    struct tm tm;
    char buf[64];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return NULL;
    time_t t = (time_t)ts.tv_sec;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    return json_string(buf);
}

static void listen_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                         void *data) {
    listen_t *l = data;
    (void)r;
    if (l->c.app.finishing || !listen_matches(l, event_id))
        return;
    json_t *line = json_object();
    if (line == NULL)
        return;
    if (l->c.o.timestamps)
        json_object_set_new(line, "time", timestamp());
    json_object_set_new(line, "eventId", json_string(event_id));
    if (payload != NULL)
        json_object_set(line, "payload", payload);
    int rc = cli_print_json(line, 0, 0);
    json_decref(line);
    if (rc != 0) { /* stdout is gone (the reader of the pipe left): done */
        cli_app_finish(&l->c.app, CLI_EXIT_OK);
        return;
    }
    if (l->c.o.count > 0 && ++l->seen >= l->c.o.count)
        cli_app_finish(&l->c.app, CLI_EXIT_OK);
}

/* The peer answered a list request: it has attached our channel, so the
 * events emitted from now on reach us. */
static void listen_ready_cb(cmdipc_registry_t *r, int status, json_t *commands,
                            void *data) {
    listen_t *l = data;
    (void)r;
    (void)commands;
    if (status == 0 && !l->c.app.finishing)
        cli_info(1, "listening on %s", l->c.app.url);
}

static void listen_up(cli_app_t *app, cmdipc_channel_t *ch) {
    listen_t *l = app->data;
    if (cmdipc_channel_list_commands(ch, listen_ready_cb, l) != 0)
        cli_info(1, "listening on %s", app->url);
}

int cmd_listen(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"count", 'n', 1, OPT_COUNT},
        {"timestamps", 'T', 0, OPT_TIMESTAMPS},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    listen_t l;
    memset(&l, 0, sizeof(l));
    client_opts_init(&l.c.o);
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    const char *url = NULL;
    if (pos == NULL)
        return CLI_EXIT_OTHER;
    int n,
        rc = cli_parse(argc, argv, opts, client_opt, &l.c.o, listen_help, pos, argc, &n);
    if (rc == 0)
        rc = cli_take_addr(pos, &n, &url);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = cli_check_id("EVENT", pos[i]);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? 0 : rc;
    }
    l.patterns = pos;
    l.n_patterns = n;
    if ((rc = client_init(&l.c, "cmdipc-listen", url, 1)) != 0) {
        free(pos);
        return rc;
    }
    l.c.app.on_up = listen_up;
    rc = cmdipc_registry_on(l.c.app.reg, NULL, listen_event, &l, NULL);
    if (rc != 0) {
        cli_error("cannot listen: %s", cmdipc_strerror(rc));
        cli_app_finish(&l.c.app, CLI_EXIT_OTHER);
    } else {
        cli_app_connect(&l.c.app);
    }
    rc = cli_app_run(&l.c.app);
    free(pos);
    return rc;
}
