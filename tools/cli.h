/* cmdipc — the command-line tool: what the sub-commands share.
 *
 * The tool uses the public API only (<cmdipc.h>). Each sub-command is one
 * function cmd_<name>(argc, argv) returning the process's exit status; the
 * helpers below parse arguments and JSON, run a registry on a loop with the
 * signals handled, and connect a one-shot client.
 */
#ifndef CMDIPC_CLI_H
#define CMDIPC_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <cmdipc.h>

/* Exit statuses (documented in `cmdipc --help`, `cmdipc call --help` and the
 * README). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_OTHER = 1,         /* any other failure (canceled, overload, I/O) */
    CLI_EXIT_NOTFOUND = 10,     /* not_found */
    CLI_EXIT_INVALIDREQ = 11,   /* invalid_request */
    CLI_EXIT_INTERNAL = 12,     /* internal_error */
    CLI_EXIT_TIMEOUT = 13,      /* timeout */
    CLI_EXIT_DISCONNECTED = 14, /* channel_disconnected, or the connection was lost */
    CLI_EXIT_DUPLICATE = 15,    /* duplicate_command (serve) */
    CLI_EXIT_USAGE = 64,        /* bad arguments, bad JSON, bad address */
    CLI_EXIT_CONNECT = 69       /* cannot connect / listen; lost before sending */
};

/* The exit-code table, as printed by the help texts. */
#define CLI_EXIT_TABLE                                                                   \
    "Exit status:\n"                                                                     \
    "   0  ok\n"                                                                         \
    "   1  other failure (canceled, overloaded, output error)\n"                         \
    "  10  not_found             no registry on the route serves the command\n"          \
    "  11  invalid_request       the request was refused\n"                              \
    "  12  internal_error        the handler failed\n"                                   \
    "  13  timeout               no answer before the deadline (--timeout)\n"            \
    "  14  channel_disconnected  a channel on the route closed during the call,\n"       \
    "                            or the connection was lost\n"                           \
    "  15  duplicate_command     (serve) a command is already served in the mesh\n"      \
    "  64  usage                 bad arguments, invalid JSON, bad address\n"             \
    "  69  unavailable           cannot connect or listen, or the connection closed\n"   \
    "                            before anything was sent\n"

/* The exit status of a cmdipc status (0 -> 0, CMDIPC_ENOTFOUND -> 10, ...). */
int cli_exit_code(int status);

/* "not_found", ... for statuses with a wire code, else the status's name. */
const char *cli_status_code(int status);

/* The code --json prints for an exit status: "not_found" ... "duplicate_command",
 * "usage" (64), "unavailable" (69), "failed" (1 and anything else). */
const char *cli_exit_name(int exit_code);

/* ---------------------------------------------------------------------------
 * Messages: every line on stderr starts "cmdipc <sub-command>: ", or with
 * --json is one JSON object:
 *   {"level":"error","code":"not_found","message":"...","exit":10}
 *   {"level":"warning"|"info"|"debug","message":"..."}
 * In JSON mode the error that ends the process is printed once, by
 * cli_exit(), with the exit status it ends with.
 */

extern const char *cli_prog; /* "cmdipc call", ... */
extern int cli_verbosity;    /* -v count */
extern int cli_quiet;        /* -q: no results on stdout, no warnings */
extern int cli_json;         /* --json: errors (and list/describe output) as JSON */

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* The error that ends the process (the first one given is the one --json
 * prints). */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Sets the code --json prints with the error (default: from the exit status). */
void cli_error_code(const char *code);
/* Something worth saying that does not end the process (not with -q). */
void cli_warn(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Printed with -v (level 1) or -vv (level 2); level 0 always (not with -q). */
void cli_info(int level, const char *fmt, ...) CLI_PRINTF(2, 3);
/* A usage error: prints the message and a hint; returns CLI_EXIT_USAGE. */
int cli_usage(const char *fmt, ...) CLI_PRINTF(1, 2);
/* One failure among several (call --lines): printed at once, with the input
 * line it belongs to ("line 3: not_found: ..."; --json adds "line":3). */
void cli_line_error(uint64_t line, const char *code, int exit_code, const char *fmt, ...)
    CLI_PRINTF(4, 5);
/* Ends the process's output: with --json and a non-zero exit status, prints
 * the error line. Returns exit_code. */
int cli_exit(int exit_code);

/* The registry log sink (log_data unused): same line prefix as above. */
void cli_log(cmdipc_registry_t *r, cmdipc_log_level_t level, const char *message,
             void *data);
/* The registry log level for the verbosity: base at -v0, then INFO, DEBUG. */
cmdipc_log_level_t cli_log_level(cmdipc_log_level_t base);

/* ---------------------------------------------------------------------------
 * Arguments.
 */

typedef struct cli_opt_s {
    const char *long_name; /* without "--" */
    char short_name;       /* 0: none */
    int has_arg;
    int key; /* passed to the handler */
} cli_opt_t;

/* Called for each option; arg is NULL when it takes none. Returns 0, or an
 * exit status (after printing why). */
typedef int (*cli_opt_fn)(int key, const char *arg, void *data);

/* Parses argv[1..argc): options anywhere (GNU style, "--" ends them;
 * "-" and negative numbers are operands), -h/--help, -v/--verbose,
 * -q/--quiet and --json built in. Operands go to pos (at most max_pos, else
 * a usage error). Returns 0, an exit status, or -1 when --help was printed
 * (exit 0). */
int cli_parse(int argc, char **argv, const cli_opt_t *opts, cli_opt_fn fn, void *data,
              const char *help, char **pos, int max_pos, int *n_pos);

/* Parses a duration into ms: a bare number is seconds ("5", "0.5"), or a
 * number with ms, s, m or h ("250ms", "1.5s", "2m"). 0 is 0 (the option
 * says what it means). */
int cli_parse_ms(const char *opt, const char *s, uint64_t *ms);
/* Formats ms as cli_parse_ms reads it back: "250ms", "1.5s", "2m". */
const char *cli_fmt_ms(uint64_t ms, char *buf, size_t size);
/* Parses a positive integer. */
int cli_parse_count(const char *opt, const char *s, uint64_t *n);

/* ---------------------------------------------------------------------------
 * Addresses. ADDR operands are URLs (unix:///path, tcp://host:port, ...) or
 * plain socket paths ("/run/app.sock", "./app.sock": a path that starts with
 * "/", "./" or "../"), read as unix:// URLs. Where ADDR is the first operand
 * and it does not look like an address (no "://", not such a path), the
 * environment variable CMDIPC_ADDR gives it.
 */

/* 1 when s is a URL or a socket path as above. */
int cli_is_addr(const char *s);
/* The URL for an ADDR operand: a path becomes unix://<absolute path>; a URL
 * is returned as it is. The string lives until the process exits. */
const char *cli_addr_url(const char *addr);
/* Takes the address from pos[0] (when it is one, or CMDIPC_ADDR is unset) or
 * from CMDIPC_ADDR, and removes it from pos. Returns 0, or a usage error
 * when there is neither. */
int cli_take_addr(char **pos, int *n_pos, const char **url);

/* Parses a JSON operand (any value; "-" reads stdin). what names the
 * operand in messages ("the request"). Returns 0 with *out (a new reference, NULL for
 * JSON null: absent), or CLI_EXIT_USAGE after printing the error with its position. */
int cli_parse_json(const char *what, const char *text, json_t **out);

/* Parses len bytes of JSON text (any value) as cli_parse_json does. Returns
 * 0 with *out (NULL for null), or -1 with the reason in why ("not valid
 * JSON: ..."). */
int cli_json_from_text(const char *buf, size_t len, json_t **out, char *why, size_t size);

/* jansson's message for a decoding error, in the CLI's words. */
const char *cli_json_error_text(const json_error_t *err);

/* The length of the valid UTF-8 sequence at p (at most avail bytes), or 0
 * when it is not one. */
size_t cli_utf8_seq(const char *p, size_t avail);

/* Checks an id operand (command or event id): non-empty, valid UTF-8. */
int cli_check_id(const char *what, const char *id);

/* The jansson flags to print v: any value, compact or indented, reals with
 * the fewest digits that read back exactly. */
size_t cli_json_flags(json_t *v, int pretty);

/* Prints v on stdout as one line (compact, or indented with pretty; a
 * string without quotes with raw; NULL, which is no result, as null). Nothing
 * with -q. Returns 0 or CLI_EXIT_OTHER. */
int cli_print_json(json_t *v, int pretty, int raw);
/* Flushes stdout; CLI_EXIT_OTHER (said once) when it cannot be written. */
int cli_flush(void);

/* Reads a whole file (for options taking a file). Returns a buffer to free
 * and its length, or NULL with errno set. */
char *cli_read_file(const char *path, size_t *len);

/* ---------------------------------------------------------------------------
 * A registry on a loop, with SIGINT/SIGTERM and a connect deadline.
 */

typedef struct cli_app_s cli_app_t;

struct cli_app_s {
    uv_loop_t loop;
    cmdipc_registry_t *reg;
    int exit_code;
    int finishing;
    /* SIGINT/SIGTERM: called once when handle_signals is set (default: finish
     * with exit 0). */
    void (*on_signal)(cli_app_t *app, int signum);
    /* One-shot clients: the peer's channel ("peer"). */
    const char *url;
    int up; /* the link came up at least once */
    int reconnect;
    uint64_t reconnect_min_ms, reconnect_max_ms; /* 0: the library's defaults */
    uint64_t connect_timeout_ms;
    void (*on_up)(cli_app_t *app, cmdipc_channel_t *ch);
    void (*on_down)(cli_app_t *app, int status); /* link dropped (reconnecting) */
    /* The channel closed for good while not finishing; default: an error
     * exit (CLI_EXIT_CONNECT before on_up, else CLI_EXIT_DISCONNECTED). */
    void (*on_closed)(cli_app_t *app, int status);
    /* Called once, after the registry closed. */
    void (*on_registry_closed)(cli_app_t *app);
    /* Called once by cli_app_finish(): close the sub-command's own handles. */
    void (*on_finish)(cli_app_t *app);
    void *data;
    /* private */
    uv_signal_t sigint, sigterm;
    uv_timer_t timer;
    int signals_on;
};

/* The channel id the clients give their link to the peer. */
#define CLI_PEER "peer"

/* Initialises the loop and creates the registry (opts may set id, router,
 * builtin_commands; log_cb and log_level are set here). handle_signals:
 * catch SIGINT/SIGTERM. Returns 0 or an exit status. */
int cli_app_init(cli_app_t *app, cmdipc_registry_opts_t *opts, int handle_signals);

/* Connects the registry to app->url as the channel CLI_PEER and watches it
 * (on_up, on_closed ...), with app->connect_timeout_ms. Returns 0, or an
 * exit status after printing why and finishing the app (run it to close). */
int cli_app_connect(cli_app_t *app);

/* Records code (the first one wins) and closes everything: the registry
 * (gracefully: queued messages are flushed), the timer, the signals. */
void cli_app_finish(cli_app_t *app, int code);

/* Runs the loop until everything is closed; returns the exit code. */
int cli_app_run(cli_app_t *app);

/* Prints an error for a failed call or operation and finishes with its
 * exit code. */
void cli_app_fail(cli_app_t *app, int status, const char *message);

/* Says why cmdipc_listen(url) failed with rc; returns the exit status
 * (CLI_EXIT_USAGE for a bad address, else CLI_EXIT_CONNECT). */
int cli_listen_failed(const char *url, int rc);

/* ---------------------------------------------------------------------------
 * The sub-commands.
 */

int cmd_hub(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_keygen(int argc, char **argv); /* cmd-keygen.c */
int cmd_wait(int argc, char **argv);
int cmd_describe(int argc, char **argv);

#endif /* CMDIPC_CLI_H */
