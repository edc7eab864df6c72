/* cmdipc — the command-line tool: helpers the sub-commands share. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "secure-opts.h"

const char *cli_prog = "cmdipc";
int cli_verbosity;
int cli_quiet;
int cli_json;

int cli_exit_code(int status) {
    switch (status) {
        case 0:
            return CLI_EXIT_OK;
        case CMDIPC_ENOTFOUND:
            return CLI_EXIT_NOTFOUND;
        case CMDIPC_EINVALREQ:
            return CLI_EXIT_INVALIDREQ;
        case CMDIPC_EINTERNAL:
            return CLI_EXIT_INTERNAL;
        case CMDIPC_ETIMEDOUT:
            return CLI_EXIT_TIMEOUT;
        case CMDIPC_EDISCONNECTED:
            return CLI_EXIT_DISCONNECTED;
        case CMDIPC_EDUPLICATE:
            return CLI_EXIT_DUPLICATE;
        default:
            return CLI_EXIT_OTHER;
    }
}

const char *cli_status_code(int status) {
    const char *wire = cmdipc_err_wire_code(status);
    return wire != NULL ? wire : cmdipc_err_name(status);
}

const char *cli_exit_name(int exit_code) {
    switch (exit_code) {
        case CLI_EXIT_NOTFOUND:
            return "not_found";
        case CLI_EXIT_INVALIDREQ:
            return "invalid_request";
        case CLI_EXIT_INTERNAL:
            return "internal_error";
        case CLI_EXIT_TIMEOUT:
            return "timeout";
        case CLI_EXIT_DISCONNECTED:
            return "channel_disconnected";
        case CLI_EXIT_DUPLICATE:
            return "duplicate_command";
        case CLI_EXIT_USAGE:
            return "usage";
        case CLI_EXIT_CONNECT:
            return "unavailable";
        default:
            return "failed";
    }
}

/* ---------------------------------------------------------------------------
 * Messages.
 */

/* The error that ends the process, kept for --json (printed by cli_exit). */
static char error_message[1024];
static char error_code[64];
static int error_set;
static int line_errors; /* failures already reported line by line */

static void vformat(char *buf, size_t size, const char *fmt, va_list ap) CLI_PRINTF(3, 0);

static void vformat(char *buf, size_t size, const char *fmt, va_list ap) {
    vsnprintf(buf, size, fmt, ap);
}

/* One JSON line on stderr: {"level":..., members..., "message":...}. */
static void json_line(const char *level, json_t *extra, const char *message) {
    json_t *o = json_pack("{s:s}", "level", level);
    if (o == NULL)
        return;
    if (extra != NULL)
        json_object_update(o, extra);
    /* Messages quote peers' text: keep what is not valid UTF-8 printable. */
    json_t *m = json_string(message);
    if (m == NULL) {
        char *copy = strdup(message);
        if (copy != NULL) {
            for (size_t i = 0, n; copy[i] != '\0'; i += n)
                if ((n = cli_utf8_seq(copy + i, strlen(copy + i))) == 0)
                    copy[i] = '?', n = 1;
            m = json_string(copy);
            free(copy);
        }
    }
    json_object_set_new(o, "message", m != NULL ? m : json_string("?"));
    json_dumpf(o, stderr, JSON_COMPACT | JSON_ENSURE_ASCII);
    fputc('\n', stderr);
    json_decref(o);
}

static void say(const char *level, const char *prefix, const char *message) {
    if (cli_json) {
        json_line(level, NULL, message);
        return;
    }
    fprintf(stderr, "%s: %s%s\n", cli_prog, prefix, message);
}

void cli_error(const char *fmt, ...) {
    char msg[sizeof(error_message)];
    va_list ap;
    va_start(ap, fmt);
    vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!cli_json) {
        fprintf(stderr, "%s: %s\n", cli_prog, msg);
        return;
    }
    if (!error_set) { /* the first error is what went wrong; printed at exit */
        error_set = 1;
        snprintf(error_message, sizeof(error_message), "%s", msg);
    }
}

void cli_error_code(const char *code) {
    if (error_code[0] == '\0')
        snprintf(error_code, sizeof(error_code), "%s", code);
}

void cli_warn(const char *fmt, ...) {
    char msg[1024];
    if (cli_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say("warning", "warning: ", msg);
}

void cli_info(int level, const char *fmt, ...) {
    char msg[1024];
    if (cli_verbosity < level || (cli_quiet && level == 0))
        return;
    va_list ap;
    va_start(ap, fmt);
    vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(level >= 2 ? "debug" : "info", "", msg);
}

int cli_usage(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cli_error("%s", msg);
    if (!cli_json)
        fprintf(stderr, "Try '%s --help'.\n", cli_prog);
    return CLI_EXIT_USAGE;
}

void cli_line_error(uint64_t line, const char *code, int exit_code, const char *fmt,
                    ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vformat(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    line_errors = 1;
    if (!cli_json) {
        fprintf(stderr, "%s: line %llu: %s: %s\n", cli_prog, (unsigned long long)line,
                code, msg);
        return;
    }
    json_t *extra = json_pack("{s:I,s:s,s:i}", "line", (json_int_t)line, "code", code,
                              "exit", exit_code);
    json_line("error", extra, msg);
    json_decref(extra);
}

int cli_exit(int exit_code) {
    fflush(stdout);
    if (!cli_json || exit_code == 0 || (line_errors && !error_set))
        return exit_code;
    json_t *extra = json_pack("{s:s,s:i}", "code",
                              error_code[0] ? error_code : cli_exit_name(exit_code),
                              "exit", exit_code);
    json_line("error", extra, error_set ? error_message : "failed");
    json_decref(extra);
    return exit_code;
}

void cli_log(cmdipc_registry_t *r, cmdipc_log_level_t level, const char *message,
             void *data) {
    static const char *const levels[] = {"error", "warning", "info", "debug"};
    static const char *const prefixes[] = {"error: ", "warning: ", "", ""};
    (void)r;
    (void)data;
    unsigned i = level <= CMDIPC_LOG_DEBUG ? (unsigned)level : 3;
    if (cli_quiet && i <= 1 && level != CMDIPC_LOG_ERROR)
        return;
    say(levels[i], prefixes[i], message);
}

cmdipc_log_level_t cli_log_level(cmdipc_log_level_t base) {
    if (cli_verbosity >= 2)
        return CMDIPC_LOG_DEBUG;
    if (cli_verbosity == 1)
        return CMDIPC_LOG_INFO;
    return base;
}

/* ---------------------------------------------------------------------------
 * Arguments.
 */

static int is_operand(const char *a) {
    /* "-" (stdin) and negative numbers ("-1", "-.5") are operands. */
    return a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9') || a[1] == '.';
}

static const cli_opt_t *find_long(const cli_opt_t *opts, const char *name, size_t len) {
    for (const cli_opt_t *o = opts; o != NULL && o->long_name != NULL; o++)
        if (strlen(o->long_name) == len && strncmp(o->long_name, name, len) == 0)
            return o;
    return NULL;
}

static const cli_opt_t *find_short(const cli_opt_t *opts, char c) {
    for (const cli_opt_t *o = opts; o != NULL && o->long_name != NULL; o++)
        if (o->short_name == c)
            return o;
    return NULL;
}

int cli_parse(int argc, char **argv, const cli_opt_t *opts, cli_opt_fn fn, void *data,
              const char *help, char **pos, int max_pos, int *n_pos) {
    int only_operands = 0, rc;
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_operands || is_operand(a)) {
            if (*n_pos == max_pos)
                return cli_usage("unexpected argument '%s'", a);
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_operands = 1;
            continue;
        }
        if (a[1] == '-') { /* --name, --name=value, --name value */
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            if (len == 4 && strncmp(name, "help", 4) == 0 && eq == NULL) {
                fputs(help, stdout);
                return -1;
            }
            if (len == 7 && strncmp(name, "verbose", 7) == 0 && eq == NULL) {
                cli_verbosity++;
                continue;
            }
            if (len == 5 && strncmp(name, "quiet", 5) == 0 && eq == NULL) {
                cli_quiet = 1;
                continue;
            }
            if (len == 4 && strncmp(name, "json", 4) == 0 && eq == NULL) {
                cli_json = 1;
            continue;
        }
            /* --key, --peer-key, --allow (secure-opts.c) */
            int sr = cli_secure_option(name, len, eq, argc, argv, &i);
            if (sr >= 0) {
                if (sr != 0)
                    return sr;
                continue;
            }
            const cli_opt_t *o = find_long(opts, name, len);
            if (o == NULL)
                return cli_usage("unknown option '--%.*s'", (int)len, name);
            const char *arg = NULL;
            if (o->has_arg) {
                if (eq != NULL)
                    arg = eq + 1;
                else if (i + 1 < argc)
                    arg = argv[++i];
                else
                    return cli_usage("option '--%s' needs a value", o->long_name);
            } else if (eq != NULL) {
                return cli_usage("option '--%s' takes no value", o->long_name);
            }
            if ((rc = fn(o->key, arg, data)) != 0)
                return rc;
            continue;
        }
        for (const char *c = a + 1; *c != '\0'; c++) { /* -v, -vv, -t 5, -t5 */
            if (*c == 'h') {
                fputs(help, stdout);
                return -1;
            }
            if (*c == 'v') {
                cli_verbosity++;
                continue;
            }
            if (*c == 'q') {
                cli_quiet = 1;
                continue;
            }
            const cli_opt_t *o = find_short(opts, *c);
            if (o == NULL)
                return cli_usage("unknown option '-%c'", *c);
            const char *arg = NULL;
            if (o->has_arg) {
                if (c[1] != '\0')
                    arg = c + 1;
                else if (i + 1 < argc)
                    arg = argv[++i];
                else
                    return cli_usage("option '-%c' needs a value", *c);
            }
            if ((rc = fn(o->key, arg, data)) != 0)
                return rc;
            if (arg != NULL)
                break;
        }
    }
    return 0;
}

int cli_parse_ms(const char *opt, const char *s, uint64_t *ms) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double scale = 1000; /* a bare number is seconds, as for timeout(1) */
    if (end == s || errno != 0 || !(v >= 0) || isinf(v) || s[0] == '+' || s[0] == ' ' ||
        s[0] == '\t')
        return cli_usage("invalid duration '%s' for %s (seconds, or with a unit: 500ms, "
                         "2s, 1.5m, 1h)",
                         s, opt);
    if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "m") == 0)
        scale = 60000;
    else if (strcmp(end, "h") == 0)
        scale = 3600000;
    else if (*end != '\0' && strcmp(end, "s") != 0)
        return cli_usage("invalid duration '%s' for %s (seconds, or with a unit: 500ms, "
                         "2s, 1.5m, 1h)",
                         s, opt);
    v *= scale;
    if (v > 1e15)
        return cli_usage("duration '%s' for %s is too long", s, opt);
    *ms = (uint64_t)(v + 0.5);
    if (*ms == 0 && v > 0)
        *ms = 1;
    return 0;
}

const char *cli_fmt_ms(uint64_t ms, char *buf, size_t size) {
    if (ms % 3600000 == 0 && ms > 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms > 0)
        snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else if (ms > 1000 && ms % 100 == 0)
        snprintf(buf, size, "%.1fs", (double)ms / 1000);
    else
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    return buf;
}

int cli_parse_count(const char *opt, const char *s, uint64_t *n) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v == 0)
        return cli_usage("invalid value '%s' for %s: expected a positive integer", s,
                         opt);
    *n = v;
    return 0;
}

/* The nesting depth of v: a scalar is 0, [] is 1. */
static size_t json_depth(json_t *v) {
    size_t max = 0, d;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if ((d = json_depth(e)) > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            if ((d = json_depth(e)) > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (b == NULL)
                break;
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin))
                break;
            *len = n;
            return buf;
        }
    }
    free(buf);
    return NULL;
}

int cli_json_from_text(const char *buf, size_t len, json_t **out, char *why,
                       size_t size) {
    json_error_t err;
    *out = NULL;
    json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        snprintf(why, size, "not valid JSON: %s, at line %d, column %d (byte %d)",
                 cli_json_error_text(&err), err.line, err.column, err.position);
        return -1;
    }
    if (json_depth(v) > 63) { /* 64 with the message around it: what peers accept */
        json_decref(v);
        snprintf(why, size,
                 "nested deeper than 63 levels (the limit of the protocol's messages)");
        return -1;
    }
    if (json_is_null(v)) { /* null is "absent" in cmd-ipc */
        json_decref(v);
        v = NULL;
    }
    *out = v;
    return 0;
}

int cli_parse_json(const char *what, const char *text, json_t **out) {
    char why[512];
    int rc;
    *out = NULL;
    if (strcmp(text, "-") == 0) {
        size_t len;
        char *buf = read_stdin(&len);
        if (buf == NULL) {
            cli_error("cannot read %s from stdin: %s", what, strerror(errno));
            return CLI_EXIT_USAGE;
        }
        rc = cli_json_from_text(buf, len, out, why, sizeof(why));
        free(buf);
        if (rc != 0)
            return cli_usage("%s (stdin) is %s", what, why);
        return 0;
    }
    if (cli_json_from_text(text, strlen(text), out, why, sizeof(why)) != 0)
        return cli_usage("%s is %s", what, why);
    return 0;
}

const char *cli_json_error_text(const json_error_t *err) {
    /* jansson names its decoding flag there; the CLI has no such option. */
    if (json_error_code(err) == json_error_null_character)
        return "\\u0000 (NUL) inside a string, which cmd-ipc messages cannot carry";
    return err->text;
}

size_t cli_utf8_seq(const char *p, size_t avail) {
    const unsigned char *s = (const unsigned char *)p;
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (avail == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        n = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 3, cp = c & 0x07;
    else
        return 0;
    if (n >= avail)
        return 0;
    for (size_t i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n + 1;
}

static int utf8_valid(const char *s) {
    size_t len = strlen(s), i = 0, n;
    while (i < len) {
        if ((n = cli_utf8_seq(s + i, len - i)) == 0)
            return 0;
        i += n;
    }
    return 1;
}

int cli_check_id(const char *what, const char *id) {
    if (id[0] == '\0')
        return cli_usage("%s must not be empty", what);
    if (!utf8_valid(id))
        return cli_usage("%s '%s' is not valid UTF-8", what, id);
    return 0;
}

/* The fewest significant digits (up to 17) that print every real in v so
 * that it reads back the same: 2635.07 rather than 2635.0700000000002. */
static int real_digits(json_t *v) {
    int max = 1, d;
    if (json_is_real(v)) {
        double x = json_real_value(v);
        char buf[40];
        for (d = 1; d < 17; d++) {
            snprintf(buf, sizeof(buf), "%.*g", d, x);
            if (strtod(buf, NULL) == x)
                break;
        }
        return d;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if ((d = real_digits(e)) > max)
                max = d;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            if ((d = real_digits(e)) > max)
                max = d;
        }
    }
    return max;
}

size_t cli_json_flags(json_t *v, int pretty) {
    return JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT) |
           JSON_REAL_PRECISION(real_digits(v));
}

int cli_print_json(json_t *v, int pretty, int raw) {
    if (cli_quiet)
        return 0;
    if (v == NULL) {
        fputs("null", stdout);
    } else if (raw && json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
    } else if (json_dumpf(v, stdout, cli_json_flags(v, pretty)) != 0) {
        cli_error("cannot encode the result");
        return CLI_EXIT_OTHER;
    }
    fputc('\n', stdout);
    return cli_flush();
}

int cli_flush(void) {
    static int said;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    if (errno != EPIPE && !said) {
        said = 1;
        cli_error("cannot write to stdout: %s", strerror(errno));
    }
    return CLI_EXIT_OTHER;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n == cap) {
            char *b = cap > (64u << 20) ? NULL : realloc(buf, (cap *= 2) + 1);
            if (b == NULL) {
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            buf = b;
            continue;
        }
        if (ferror(f)) {
            int e = errno;
            free(buf);
            buf = NULL;
            errno = e;
        }
        break;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* ---------------------------------------------------------------------------
 * Addresses.
 */

int cli_is_addr(const char *s) {
    return strstr(s, "://") != NULL || s[0] == '/' || strncmp(s, "./", 2) == 0 ||
           strncmp(s, "../", 3) == 0;
}

/* The URLs made from paths, kept until exit (few: one per ADDR operand). */
static char *made_urls[64];
static size_t n_made_urls;

const char *cli_addr_url(const char *addr) {
    if (strstr(addr, "://") != NULL || !cli_is_addr(addr) ||
        n_made_urls == sizeof(made_urls) / sizeof(made_urls[0]))
        return addr;
    char cwd[4096] = "";
    if (addr[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL)
        return addr;
    size_t len = strlen(cwd) + strlen(addr) + 16;
    char *url = malloc(len);
    if (url == NULL)
        return addr;
    const char *rel = addr;
    if (strncmp(rel, "./", 2) == 0)
        rel += 2;
    snprintf(url, len, "unix://%s%s%s", cwd, cwd[0] ? "/" : "", rel);
    made_urls[n_made_urls++] = url;
    return url;
}

int cli_take_addr(char **pos, int *n_pos, const char **url) {
    const char *env = getenv("CMDIPC_ADDR");
    if (env != NULL && env[0] == '\0')
        env = NULL;
    if (*n_pos > 0 && (env == NULL || cli_is_addr(pos[0]))) {
        *url = cli_addr_url(pos[0]);
        memmove(pos, pos + 1, (size_t)(*n_pos - 1) * sizeof(*pos));
        (*n_pos)--;
        return 0;
    }
    if (env == NULL)
        return cli_usage("expected ADDR (or set CMDIPC_ADDR)");
    *url = cli_addr_url(env);
    cli_info(2, "address from CMDIPC_ADDR: %s", *url);
    return 0;
}

/* ---------------------------------------------------------------------------
 * The app: a loop, a registry, the signals, a connect deadline.
 */

static void app_signal(uv_signal_t *s, int signum) {
    cli_app_t *app = s->data;
    cli_info(1, "%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    if (app->on_signal != NULL && !app->finishing)
        app->on_signal(app, signum);
    else
        cli_app_finish(app, CLI_EXIT_OK);
}

static void app_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                        cmdipc_channel_event_t ev, int status, void *data);

static void registry_closed(cmdipc_registry_t *r, void *data) {
    cli_app_t *app = data;
    (void)r;
    app->reg = NULL;
    if (app->on_registry_closed != NULL)
        app->on_registry_closed(app);
}

int cli_app_init(cli_app_t *app, cmdipc_registry_opts_t *opts, int handle_signals) {
    int rc = uv_loop_init(&app->loop);
    if (rc != 0) {
        cli_error("cannot start: %s", uv_strerror(rc));
        return CLI_EXIT_OTHER;
    }
    opts->log_cb = cli_log;
    opts->log_data = app;
    rc = cmdipc_registry_new(&app->loop, opts, &app->reg);
    if (rc != 0) {
        cli_error("cannot create a registry: %s", cmdipc_strerror(rc));
        uv_loop_close(&app->loop);
        return CLI_EXIT_OTHER;
    }
    cmdipc_registry_set_data(app->reg, app);
    cmdipc_registry_set_channel_cb(app->reg, app_channel, app);
    uv_timer_init(&app->loop, &app->timer);
    app->timer.data = app;
    if (handle_signals) {
        uv_signal_init(&app->loop, &app->sigint);
        uv_signal_init(&app->loop, &app->sigterm);
        app->sigint.data = app->sigterm.data = app;
        uv_signal_start(&app->sigint, app_signal, SIGINT);
        uv_signal_start(&app->sigterm, app_signal, SIGTERM);
        app->signals_on = 1;
    }
    return 0;
}

void cli_app_finish(cli_app_t *app, int code) {
    if (app->finishing)
        return;
    app->finishing = 1;
    app->exit_code = code;
    if (app->on_finish != NULL)
        app->on_finish(app);
    if (app->reg != NULL)
        cmdipc_registry_close(app->reg, registry_closed, app);
    uv_close((uv_handle_t *)&app->timer, NULL);
    if (app->signals_on) {
        uv_close((uv_handle_t *)&app->sigint, NULL);
        uv_close((uv_handle_t *)&app->sigterm, NULL);
    }
}

void cli_app_fail(cli_app_t *app, int status, const char *message) {
    if (message == NULL || message[0] == '\0')
        message = cmdipc_strerror(status);
    cli_error_code(cli_status_code(status));
    if (cli_json) /* the code is a member of its own */
        cli_error("%s", message);
    else
        cli_error("%s: %s", cli_status_code(status), message);
    cli_app_finish(app, cli_exit_code(status));
}

int cli_app_run(cli_app_t *app) {
    uv_run(&app->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&app->loop);
    if (rc != 0) { /* a handle left open: a bug of ours */
        cli_error("internal error: the loop did not close (%s)", uv_strerror(rc));
        return app->exit_code ? app->exit_code : CLI_EXIT_OTHER;
    }
    return app->exit_code;
}

/* The connect deadline. */
static void connect_timeout(uv_timer_t *t) {
    cli_app_t *app = t->data;
    if (app->up || app->finishing)
        return;
    char d[32];
    if (app->reconnect) { /* keep trying, say so once */
        cli_warn("cannot reach %s yet; still trying", app->url);
        return;
    }
    cli_error("cannot connect to %s: timed out after %s", app->url,
              cli_fmt_ms(app->connect_timeout_ms, d, sizeof(d)));
    cli_app_finish(app, CLI_EXIT_CONNECT);
}

static void app_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                        cmdipc_channel_event_t ev, int status, void *data) {
    cli_app_t *app = data;
    (void)r;
    if (app->url == NULL || strcmp(cmdipc_channel_id(ch), CLI_PEER) != 0)
        return;
    switch (ev) {
        case CMDIPC_CHANNEL_UP:
            if (app->finishing)
                return;
            cli_info(1, "connected to %s", app->url);
            app->up = 1;
            uv_timer_stop(&app->timer); /* the connect deadline */
            if (app->on_up != NULL)
                app->on_up(app, ch);
            break;
        case CMDIPC_CHANNEL_DOWN:
            if (app->finishing)
                return;
            if (app->on_down != NULL)
                app->on_down(app, status);
            break;
        case CMDIPC_CHANNEL_CLOSED:
            if (app->finishing)
                return;
            if (app->on_closed != NULL) {
                app->on_closed(app, status);
            } else if (!app->up) {
                cli_error("cannot connect to %s: %s", app->url, cmdipc_strerror(status));
                cli_app_finish(app, CLI_EXIT_CONNECT);
            } else {
                cli_error("connection to %s lost: %s", app->url,
                          status ? cmdipc_strerror(status) : "closed");
                cli_app_finish(app, CLI_EXIT_DISCONNECTED);
            }
            break;
        default:
            break;
    }
}

int cli_app_connect(cli_app_t *app) {
    cmdipc_connect_opts_t co;
    cmdipc_connect_opts_init(&co);
    co.reconnect = app->reconnect;
    int rc = 0;
    co.secure = cli_secure_opts(app->url, 1, &rc); /* +sodium:// */
    if (rc != 0) {
        cli_app_finish(app, rc);
        return rc;
    }
    if (app->reconnect_min_ms > 0)
        co.reconnect_min_ms = app->reconnect_min_ms;
    if (app->reconnect_max_ms > 0)
        co.reconnect_max_ms = app->reconnect_max_ms;
    if (app->connect_timeout_ms > 0)
        uv_timer_start(&app->timer, connect_timeout, app->connect_timeout_ms, 0);
    rc = cmdipc_connect(app->reg, app->url, CLI_PEER, &co, NULL);
    if (rc == 0)
        return 0;
    if (rc == UV_EINVAL || rc == UV_EAFNOSUPPORT || rc == UV_ENAMETOOLONG) {
        cli_error("invalid address '%s': %s (addresses look like unix:///path/to.sock, "
                  "/path/to.sock or tcp://host:port)",
                  app->url, cmdipc_strerror(rc));
        cli_app_finish(app, CLI_EXIT_USAGE);
        return CLI_EXIT_USAGE;
    }
    cli_error("cannot connect to %s: %s", app->url, cmdipc_strerror(rc));
    cli_app_finish(app, CLI_EXIT_CONNECT);
    return CLI_EXIT_CONNECT;
}

int cli_listen_failed(const char *url, int rc) {
    int usage = rc == UV_EINVAL || rc == UV_EAFNOSUPPORT || rc == UV_ENAMETOOLONG;
    /* libuv's uv_pipe_bind() reports a missing directory as EACCES (as
     * Windows would): say which it is. */
    if (rc == UV_EACCES && strncmp(url, "unix://", 7) == 0) {
        char dir[4096];
        struct stat st;
        snprintf(dir, sizeof(dir), "%s", url + 7);
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            *(slash == dir ? slash + 1 : slash) = '\0';
            if (stat(dir, &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
                cli_error("cannot listen on %s: directory %s does not exist", url, dir);
                return CLI_EXIT_CONNECT;
            }
        }
    }
    cli_error("cannot listen on %s: %s", url, cmdipc_strerror(rc));
    return usage ? CLI_EXIT_USAGE : CLI_EXIT_CONNECT;
}
