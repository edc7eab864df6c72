/* cmdipc — the command-line tool: run a hub, list, call, emit, listen and
 * serve shell commands over any cmdipc address (unix:///path, tcp://host:port).
 *
 *   cmdipc hub unix:///tmp/app.sock tcp://127.0.0.1:7400
 *   cmdipc serve unix:///tmp/app.sock --command 'sys.date=date +%s'
 *   cmdipc call unix:///tmp/app.sock sys.date
 *
 * `cmdipc --help` and `cmdipc COMMAND --help` describe everything.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "secure-opts.h"

static const char main_help[] =
    "Usage: cmdipc [-v] [-q] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Talk to cmd-ipc (spec-v1) registries from the shell: run a hub, call commands,\n"
    "emit and follow events, expose shell commands as cmd-ipc commands.\n"
    "\n"
    "Commands:\n"
    "  hub ADDR...                       run a root registry routing between its peers\n"
    "  list ADDR                         print the commands reachable at ADDR\n"
    "  describe ADDR COMMAND             print one command: owner, description, schema\n"
    "  call ADDR COMMAND [JSON]          execute COMMAND, print its result as JSON\n"
    "  wait ADDR [COMMAND...]            wait until ADDR answers and serves COMMANDs\n"
    "  emit ADDR EVENT [JSON]            emit an event\n"
    "  listen ADDR [EVENT...]            print events as NDJSON lines\n"
    "  serve ADDR --command ID=SHELL...  serve shell commands as cmd-ipc commands\n"
    "  keygen PATH                       a key pair for the secure addresses\n"
    "  help [COMMAND]                    this text, or the help of COMMAND\n"
    "\n"
    "Addresses:\n"
    "  unix:///path/to/app.sock   a Unix socket; a plain path (/path/to/app.sock,\n"
    "                             ./app.sock) means the same\n"
    "  tcp://host:port            TCP, plain text (trusted networks only)\n"
    "  tcp+sodium://host:port     TCP, authenticated and encrypted (also unix+sodium://)\n"
    "  Without ADDR, the environment variable CMDIPC_ADDR gives it.\n"
    "\n" CLI_SECURE_HELP "\n"
    "Options (each also after COMMAND):\n"
    "  -h, --help      help; after a command, its help (cmdipc call --help)\n"
    "  -v, --verbose   more messages on stderr (-vv: debug)\n"
    "  -q, --quiet     no results or listings on stdout, no warnings: the exit\n"
    "                  status (and errors on stderr) say how it went\n"
    "  --json          errors as one JSON line on stderr:\n"
    "                  "
    "{\"level\":\"error\",\"code\":\"not_found\",\"message\":...,\"exit\":10}\n"
    "                  (list and describe also print JSON)\n"
    "  --version       print the version\n"
    "\n"
    "JSON arguments may be any JSON value ('{\"a\":1}', '\"text\"', 42, null); '-'\n"
    "reads it from stdin. Invalid JSON is a usage error, reported before anything\n"
    "is sent. A command without a result prints null (JSON null and no result are\n"
    "the same in cmd-ipc).\n"
    "\n"
    "Durations (--timeout, --connect-timeout) are seconds, or a number with a unit:\n"
    "500ms, 2s, 1.5m, 1h.\n"
    "\n"
    "Environment:\n"
    "  CMDIPC_ADDR    the address used when a command is given none\n"
    "\n" CLI_EXIT_TABLE "\n"
    "Examples:\n"
    "  cmdipc hub unix://$XDG_RUNTIME_DIR/app.sock &\n"
    "  cmdipc serve unix://$XDG_RUNTIME_DIR/app.sock --command 'sys.uptime=cut -d\" \" "
    "-f1 /proc/uptime' &\n"
    "  cmdipc wait unix://$XDG_RUNTIME_DIR/app.sock sys.uptime\n"
    "  cmdipc list unix://$XDG_RUNTIME_DIR/app.sock\n"
    "  export CMDIPC_ADDR=$XDG_RUNTIME_DIR/app.sock\n"
    "  cmdipc call sys.uptime\n"
    "  cmdipc listen 'job.*' | while read -r line; do ...; done\n";

static const char help_help[] =
    "Usage: cmdipc help [COMMAND]\n"
    "\n"
    "Prints the overview of cmdipc, or the help of COMMAND (the same text as\n"
    "'cmdipc COMMAND --help').\n"
    "\n"
    "Exit status: 0, or 64 for an unknown COMMAND.\n"
    "\n"
    "Examples:\n"
    "  cmdipc help\n"
    "  cmdipc help call\n";

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"hub", cmd_hub},       {"list", cmd_list},   {"describe", cmd_describe},
    {"call", cmd_call},     {"wait", cmd_wait},   {"emit", cmd_emit},
    {"listen", cmd_listen}, {"serve", cmd_serve}, {"keygen", cmd_keygen},
};

static char prog_buf[64];

static int find_command(const char *name) {
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int unknown_command(const char *name) {
    cli_error("unknown command '%s'", name);
    if (!cli_json)
        fprintf(stderr, "Try 'cmdipc --help'.\n");
    return CLI_EXIT_USAGE;
}

static int run_command(const char *name, int argc, char **argv) {
    int i = find_command(name);
    if (i < 0)
        return unknown_command(name);
    snprintf(prog_buf, sizeof(prog_buf), "cmdipc %s", name);
    cli_prog = prog_buf;
    return commands[i].fn(argc, argv);
}

/* cmdipc help [COMMAND]: options are those of every command (-h, -v...). */
static int cmd_help(int argc, char **argv) {
    char *pos[1];
    int n;
    cli_prog = "cmdipc help";
    int rc = cli_parse(argc, argv, NULL, NULL, NULL, help_help, pos, 1, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (n == 0) {
        fputs(main_help, stdout);
        return 0;
    }
    if (strcmp(pos[0], "help") == 0) {
        fputs(help_help, stdout);
        return 0;
    }
    if (find_command(pos[0]) < 0) {
        cli_prog = "cmdipc";
        return unknown_command(pos[0]);
    }
    char *help_argv[] = {pos[0], "--help", NULL};
    return run_command(pos[0], 2, help_argv);
}

/* --json must hold for errors found while parsing too: looked for first
 * (up to "--"). */
static void scan_json(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            cli_json = 1;
}

static int run(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(main_help, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("cmdipc %s (libcmdipc %s, protocol %s)\n", CMDIPC_VERSION_STRING,
                   cmdipc_version_string(), CMDIPC_PROTOCOL);
            return 0;
        }
        if (strcmp(a, "--verbose") == 0) {
            cli_verbosity++;
            continue;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            cli_quiet = 1;
            continue;
        }
        if (strcmp(a, "--json") == 0)
            continue; /* scan_json */
        if (a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
            cli_verbosity += (int)strlen(a + 1);
            continue;
        }
        return cli_usage("unknown option '%s'", a);
    }
    if (i == argc) {
        fputs(main_help, stderr);
        cli_error("expected a COMMAND");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return cmd_help(argc - i, argv + i);
    return run_command(argv[i], argc - i, argv + i);
}

int main(int argc, char **argv) {
    /* A peer that goes away must not kill us in the middle of a write. */
    signal(SIGPIPE, SIG_IGN);
    scan_json(argc, argv);
    return cli_exit(run(argc, argv));
}
