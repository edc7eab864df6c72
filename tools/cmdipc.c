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
    "Usage: cmdipc [-v] COMMAND [ARGS...]\n"
    "\n"
    "Talk to cmd-ipc (spec-v1) registries from the shell: run a hub, call commands,\n"
    "emit and follow events, expose shell commands as cmd-ipc commands.\n"
    "\n"
    "Commands:\n"
    "  hub ADDR...                       run a root registry routing between its peers\n"
    "  list ADDR                         print the commands reachable at ADDR\n"
    "  call ADDR COMMAND [JSON]          execute COMMAND, print its result as JSON\n"
    "  emit ADDR EVENT [JSON]            emit an event\n"
    "  listen ADDR [EVENT...]            print events as NDJSON lines\n"
    "  serve ADDR --command ID=SHELL...  serve shell commands as cmd-ipc commands\n"
    "  keygen PATH                       a key pair for the secure addresses\n"
    "  help [COMMAND]                    this text, or the help of COMMAND\n"
    "\n"
    "Addresses:\n"
    "  unix:///path/to/app.sock   a Unix socket\n"
    "  tcp://host:port            TCP, plain text (trusted networks only)\n"
    "  tcp+sodium://host:port     TCP, authenticated and encrypted (also unix+sodium://)\n"
    "\n" CLI_SECURE_HELP "\n"
    "Options:\n"
    "  -h, --help      help; also after a command (cmdipc call --help)\n"
    "  -v, --verbose   more messages on stderr (-vv: debug)\n"
    "  --version       print the version\n"
    "\n"
    "JSON arguments may be any JSON value ('{\"a\":1}', '\"text\"', 42, null); '-'\n"
    "reads it from stdin. Invalid JSON is a usage error, reported before anything\n"
    "is sent.\n"
    "\n" CLI_EXIT_TABLE "\n"
    "Examples:\n"
    "  cmdipc hub unix://$XDG_RUNTIME_DIR/app.sock &\n"
    "  cmdipc serve unix://$XDG_RUNTIME_DIR/app.sock --command 'sys.uptime=cat "
    "/proc/uptime "
    "| cut -d\" \" -f1' &\n"
    "  cmdipc list unix://$XDG_RUNTIME_DIR/app.sock\n"
    "  cmdipc call unix://$XDG_RUNTIME_DIR/app.sock sys.uptime\n"
    "  cmdipc listen unix://$XDG_RUNTIME_DIR/app.sock 'job.*' | while read -r line; do "
    "...; "
    "done\n";

static void print_main_help(FILE *f) { fputs(main_help, f); }

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"hub", cmd_hub},   {"list", cmd_list},     {"call", cmd_call},
    {"emit", cmd_emit}, {"listen", cmd_listen}, {"serve", cmd_serve},
    {"keygen", cmd_keygen},
};

static char prog_buf[64];

static int run_command(const char *name, int argc, char **argv) {
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            snprintf(prog_buf, sizeof(prog_buf), "cmdipc %s", name);
            cli_prog = prog_buf;
            return commands[i].fn(argc, argv);
        }
    }
    cli_error("unknown command '%s'", name);
    fprintf(stderr, "Try 'cmdipc --help'.\n");
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
    /* A peer that goes away must not kill us in the middle of a write. */
    signal(SIGPIPE, SIG_IGN);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_main_help(stdout);
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
        if (a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
            cli_verbosity += (int)strlen(a + 1);
            continue;
        }
        return cli_usage("unknown option '%s'", a);
    }
    if (i == argc) {
        print_main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 == argc) {
            print_main_help(stdout);
            return 0;
        }
        char *help_argv[] = {argv[i + 1], "--help", NULL};
        return run_command(argv[i + 1], 2, help_argv);
    }
    return run_command(argv[i], argc - i, argv + i);
}
