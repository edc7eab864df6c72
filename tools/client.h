/* cmdipc — the client sub-commands (call, wait, list, describe, emit,
 * listen): what they share.
 *
 * Each runs a registry whose router is the peer at ADDR (the channel
 * CLI_PEER), so that every command it does not serve (all of them) is
 * executed there, and the peer's events reach it. The connection is one-shot
 * (no reconnect): a failed connection is exit 69, a lost one 14. Waiting
 * (`wait`, `call --wait`), the dialer reconnects instead and the client
 * polls until the peer answers and serves the commands asked for.
 */
#ifndef CMDIPC_CLIENT_H
#define CMDIPC_CLIENT_H

#include "cli.h"

#define CONNECT_TIMEOUT_DEFAULT 10000   /* --connect-timeout */
#define WAIT_TIMEOUT_DEFAULT    30000   /* wait --timeout */
#define POLL_MS                 100     /* waiting: between two looks at the commands */
#define LINE_MAX_BYTES          1048576 /* call --lines: the protocol's message limit */
#define JOBS_MAX                1024 /* call --jobs: the library's max_outbound_pending */

/* The keys of the options client_opt() parses. */
enum {
    OPT_TIMEOUT = 1,
    OPT_CONNECT_TIMEOUT,
    OPT_PRETTY,
    OPT_RAW,
    OPT_NO_HEADER,
    OPT_COUNT,
    OPT_WAIT,
    OPT_LINES,
    OPT_JOBS,
    OPT_SCHEMA,
    OPT_TIMESTAMPS,
};

/* The options of every client (each sub-command lists those it takes). */
typedef struct client_opts_s {
    uint64_t timeout_ms;
    int has_timeout;
    uint64_t connect_timeout_ms;
    int has_connect_timeout;
    int pretty, raw, no_header, wait, lines, schema, timestamps;
    uint64_t count;
    uint64_t jobs;
} client_opts_t;

/* A cli_opt_fn for client_opts_t. */
int client_opt(int key, const char *arg, void *data);
/* The defaults: connect timeout 10 s, 1 job, nothing else. */
void client_opts_init(client_opts_t *o);

typedef struct client_s client_t;

/* The commands reachable at the peer: status 0 and a JSON array (borrowed)
 * of {id, description?, schema?, channel?, peer?, local} sorted by id, or a
 * status (and the peer's message, if any). */
typedef void (*commands_cb)(client_t *c, int status, json_t *commands,
                            const char *message);

/* A client: embed it first in the sub-command's struct (app.data points to
 * it, so to the whole struct). */
struct client_s {
    cli_app_t app;
    client_opts_t o;
    /* Called once the peer is up (and, waiting, serves every `need`). */
    void (*on_ready)(client_t *c);
    int ready;
    /* Waiting: the commands that must be reachable, the deadline, the poll. */
    int waiting;
    char **need;
    int n_need;
    uint64_t wait_ms; /* 0: no deadline */
    uv_timer_t deadline, poll;
    int timers_on;
    const char *missing;  /* the first of `need` not reachable at the last look */
    int answered;         /* the peer answered a look at least once */
    commands_cb fetch_cb; /* the command list being fetched (one at a time) */
};

/* Creates the client's registry (router: the peer at url) and app; the
 * request deadline is o.timeout_ms when o.has_timeout. handle_signals:
 * SIGINT/SIGTERM finish with exit 0 (otherwise they kill the process, as
 * usual). Returns 0 or an exit status. */
int client_init(client_t *c, const char *name, const char *url, int handle_signals);

/* client_init(), then connects and runs the loop to the end; returns the
 * exit status. on_ready is called once the peer is up, or, waiting, once it
 * answers and serves c->need (within c->wait_ms, else exit 69 when it never
 * answered, 10 when a command is still missing). on_closed (NULL: the
 * default, see cli_app_t) is called if the link closes for good. owned (a
 * request or payload, may be NULL) is released at the end. */
int client_run(client_t *c, const char *name, const char *url,
               void (*on_ready)(client_t *), void (*on_closed)(cli_app_t *, int),
               json_t *owned);

/* The app's on_up and on_finish as client_run() sets them (a sub-command
 * with handles of its own calls client_finish() from its on_finish). */
void client_up(cli_app_t *app, cmdipc_channel_t *ch);
void client_finish(cli_app_t *app);

/* Asks the peer for the commands reachable there: the hub's cmdipc.commands
 * (every command of the mesh, with owners), or, when the peer has none, its
 * own commands (list.commands.request). cb is called once. */
void fetch_commands(client_t *c, commands_cb cb);

/* The entry of commands with that id, or NULL. */
json_t *find_command(json_t *commands, const char *id);

/* Help text shared by the sub-commands. */
#define CONNECT_OPTS                                                                     \
    "  --connect-timeout DURATION   give up connecting after DURATION (default 10s)\n"   \
    "  -q, --quiet                  print nothing on stdout\n"                           \
    "  --json                       errors as JSON lines on stderr\n"                    \
    "  -v, --verbose                say what happens on stderr (-vv: debug)\n"           \
    "  -h, --help                   this help\n"

#define DURATIONS "DURATION is seconds, or a number with a unit: 500ms, 2s, 1.5m, 1h.\n"

#define ADDR_TEXT                                                                        \
    "ADDR is a URL (unix:///path/app.sock, tcp://host:port) or a socket path\n"          \
    "(/path/app.sock, ./app.sock); without it, $CMDIPC_ADDR.\n"

#endif /* CMDIPC_CLIENT_H */
