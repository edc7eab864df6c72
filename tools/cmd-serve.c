/* cmdipc — `cmdipc serve ADDR --command ID=SHELL...`: shell commands as
 * cmd-ipc commands. Each call runs `/bin/sh -c SHELL` with the request JSON on
 * its stdin; its stdout, parsed as JSON, is the result; a non-zero exit is an
 * internal_error carrying its stderr. Calls run concurrently, each in its own
 * process group.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "secure-opts.h"

extern char **environ;

#define MAX_STDOUT    (1024 * 1024) /* the default message limit of the peers */
#define MAX_STDERR    4096          /* kept for the error message */
#define KILL_AFTER_MS 2000          /* SIGTERM, then SIGKILL, at shutdown */

static const char serve_help[] =
    "Usage: cmdipc serve [OPTIONS] ADDR --command ID=SHELL-COMMAND...\n"
    "\n"
    "Serves each ID as a cmd-ipc command run by the shell. It connects to ADDR (a hub)\n"
    "and registers the commands there, reconnecting when the link drops; with\n"
    "--listen it listens on ADDR instead, for clients to connect to it directly. With\n"
    "ADDR stdio:// it is a plugin: its stdin and stdout are the link to the host that\n"
    "spawned it (cmdipc_spawn), and it exits 0 when its stdin closes.\n"
    "\n"
    "For each call, /bin/sh -c SHELL-COMMAND runs with the request on its stdin (one\n"
    "line of JSON; 'null' when the request is absent) and CMDIPC_COMMAND=ID in its\n"
    "environment. Exit status 0: its stdout, parsed as one JSON value, is the result\n"
    "(empty stdout: no result). Non-zero exit status: the call fails with\n"
    "internal_error and its stderr as the message ('exit status N' when empty).\n"
    "Stdout that is not JSON is an internal_error too: quote text to return it\n"
    "(printf '\"%s\"' \"$(hostname)\"). Calls run concurrently.\n"
    "\n"
    "ADDR is a URL (unix:///path/app.sock, tcp://host:port), a socket path\n"
    "(/path/app.sock, ./app.sock) or stdio://; without it, $CMDIPC_ADDR.\n"
    "\n"
    "Options:\n"
    "  -c, --command ID=SHELL        serve ID by running SHELL (repeat for more)\n"
    "  -d, --description ID=TEXT     the description of ID, shown by 'cmdipc list'\n"
    "  -s, --schema ID=SCHEMA        the schema of ID: a file holding a JSON object\n"
    "                                {\"request\": JSON Schema, \"response\": JSON "
    "Schema}\n"
    "                                (either may be left out), or that object itself\n"
    "                                when SCHEMA starts with '{'. It is declared to\n"
    "                                the mesh ('cmdipc describe' shows it), not\n"
    "                                enforced: the shell command checks its input\n"
    "  -l, --listen                  listen on ADDR (prints 'listening ADDR' on stdout)\n"
    "  --connect-timeout DURATION    warn when ADDR is not reached within DURATION\n"
    "                                (default 10s; it keeps trying)\n"
    "  -q, --quiet                   no 'listening' line, no warnings\n"
    "  --json                        errors as JSON lines on stderr\n"
    "  -v, --verbose                 log registrations and calls (-vv: debug)\n"
    "  -h, --help                    this help\n"
    "\n"
    "DURATION is seconds, or a number with a unit: 500ms, 2s, 1.5m, 1h.\n"
    "\n"
    "SIGINT or SIGTERM stop it (exit 0): running commands get SIGTERM (SIGKILL 2 s\n"
    "later), their callers an error.\n"
    "\n"
    "Exit status: 0 stopped by a signal, 14 connection closed for good, 15 a command\n"
    "is already served in the mesh (duplicate_command), 64 usage, 69 cannot listen.\n"
    "\n"
    "Examples:\n"
    "  cmdipc serve unix:///tmp/app.sock --command 'sys.uptime=cut -d\" \" -f1 "
    "/proc/uptime'\n"
    "  cmdipc serve /tmp/app.sock -c 'text.upper=tr a-z A-Z' -d "
    "'text.upper=Upper-case a JSON string'\n"
    "  cmdipc serve /tmp/app.sock -c 'text.upper=tr a-z A-Z' -s "
    "'text.upper={\"request\":{\"type\":\"string\"}}'\n"
    "  cmdipc serve tcp://127.0.0.1:7400 -c 'disk.free=df -k / | awk \"NR==2 {print "
    "\\$4}\"'\n"
    "  cmdipc serve --listen unix:///tmp/tools.sock -c 'echo=cat'\n";

typedef struct serve_s serve_t;

typedef struct serve_cmd_s {
    serve_t *sv;
    char *id;
    const char *shell;
    const char *description;
    json_t *schema; /* owned; NULL = none */
    enum { CMD_NONE, CMD_PENDING, CMD_LIVE } state;
} serve_cmd_t;

typedef struct buf_s {
    char *p;
    size_t len, cap, max;
    int truncated;
} buf_t;

typedef struct job_s {
    struct job_s *prev, *next;
    serve_t *sv;
    serve_cmd_t *cmd;
    cmdipc_call_t *call;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_write_t wreq;
    char *input;
    buf_t obuf, ebuf;
    int spawn_error;
    int pid;
    int exited;
    int64_t exit_status;
    int term_signal;
    int open; /* handles not yet closed */
} job_t;

struct serve_s {
    cli_app_t app;
    serve_cmd_t *cmds;
    size_t n_cmds;
    int listen;
    int announced;
    job_t *jobs;
    uv_timer_t kill_timer;
    int kill_timer_on;
};

enum { OPT_COMMAND = 1, OPT_DESCRIPTION, OPT_SCHEMA, OPT_LISTEN, OPT_CONNECT_TIMEOUT };

static serve_cmd_t *find_cmd(serve_t *sv, const char *id, size_t len) {
    for (size_t i = 0; i < sv->n_cmds; i++)
        if (strlen(sv->cmds[i].id) == len && strncmp(sv->cmds[i].id, id, len) == 0)
            return &sv->cmds[i];
    return NULL;
}

/* --schema ID=SCHEMA: a file, or the JSON itself when it starts with '{'.
 * Checked against spec-v1's command-definition: an object whose members are
 * only "request" and "response". */
static int read_schema(serve_cmd_t *c, const char *spec) {
    char why[512], *text = NULL;
    size_t len;
    const char *src = spec;
    if (spec[0] != '{') {
        if ((text = cli_read_file(spec, &len)) == NULL)
            return cli_usage("--schema %s: cannot read %s: %s", c->id, spec,
                             strerror(errno));
        src = text;
    } else {
        len = strlen(spec);
    }
    int rc = cli_json_from_text(src, len, &c->schema, why, sizeof(why));
    free(text);
    if (rc != 0)
        return cli_usage("--schema %s: %s is %s", c->id,
                         spec[0] == '{' ? "the schema" : spec, why);
    if (!json_is_object(c->schema))
        return cli_usage("--schema %s: expected a JSON object {\"request\": ..., "
                         "\"response\": ...}",
                         c->id);
    const char *key;
    json_t *v;
    json_object_foreach(c->schema, key, v) {
        if (strcmp(key, "request") != 0 && strcmp(key, "response") != 0)
            return cli_usage(
                "--schema %s: unexpected member \"%s\" (a command schema has "
                "only \"request\" and \"response\")",
                c->id, key);
    }
    return 0;
}

static int serve_opt(int key, const char *arg, void *data) {
    serve_t *sv = data;
    const char *eq;
    int rc;
    switch (key) {
        case OPT_LISTEN:
            sv->listen = 1;
            return 0;
        case OPT_CONNECT_TIMEOUT:
            return cli_parse_ms("--connect-timeout", arg, &sv->app.connect_timeout_ms);
        case OPT_COMMAND:
            eq = strchr(arg, '=');
            if (eq == NULL || eq == arg || eq[1] == '\0')
                return cli_usage("invalid --command '%s': expected ID=SHELL-COMMAND",
                                 arg);
            if (find_cmd(sv, arg, (size_t)(eq - arg)) != NULL)
                return cli_usage("command '%.*s' is given twice", (int)(eq - arg), arg);
            serve_cmd_t *v = realloc(sv->cmds, (sv->n_cmds + 1) * sizeof(*v));
            if (v == NULL)
                return CLI_EXIT_OTHER;
            sv->cmds = v;
            v = &sv->cmds[sv->n_cmds];
            memset(v, 0, sizeof(*v));
            v->id = strndup(arg, (size_t)(eq - arg));
            v->shell = eq + 1;
            if (v->id == NULL)
                return CLI_EXIT_OTHER;
            sv->n_cmds++;
            if ((rc = cli_check_id("the command id", v->id)) != 0)
                return rc;
            return 0;
        case OPT_DESCRIPTION:
            eq = strchr(arg, '=');
            if (eq == NULL || eq == arg)
                return cli_usage("invalid --description '%s': expected ID=TEXT", arg);
            serve_cmd_t *c = find_cmd(sv, arg, (size_t)(eq - arg));
            if (c == NULL)
                return cli_usage("--description %.*s: no --command %.*s before it",
                                 (int)(eq - arg), arg, (int)(eq - arg), arg);
            c->description = eq + 1;
            return 0;
        case OPT_SCHEMA:
            eq = strchr(arg, '=');
            if (eq == NULL || eq == arg || eq[1] == '\0')
                return cli_usage("invalid --schema '%s': expected ID=SCHEMA.json", arg);
            c = find_cmd(sv, arg, (size_t)(eq - arg));
            if (c == NULL)
                return cli_usage("--schema %.*s: no --command %.*s before it",
                                 (int)(eq - arg), arg, (int)(eq - arg), arg);
            if (c->schema != NULL)
                return cli_usage("--schema %.*s is given twice", (int)(eq - arg), arg);
            return read_schema(c, eq + 1);
        default:
            return CLI_EXIT_USAGE;
    }
}

/* ---------------------------------------------------------------------------
 * Running one call.
 */

static void buf_add(buf_t *b, const char *p, size_t n) {
    if (b->len + n > b->max) {
        b->truncated = 1;
        n = b->max - b->len;
    }
    if (n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->truncated = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Makes text fit for a JSON string: invalid UTF-8 and control characters
 * other than newline and tab become '?'; trailing whitespace goes. */
static void sanitize(char *s, size_t len) {
    size_t i = 0, n;
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\t' ||
                       s[len - 1] == '\r'))
        s[--len] = '\0';
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        n = cli_utf8_seq(s + i, len - i);
        if (n == 0 || (c < 0x20 && c != '\n' && c != '\t')) {
            s[i++] = '?';
            continue;
        }
        i += n;
    }
}

static int all_space(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
    return 1;
}

static void job_answer(job_t *j) {
    char msg[MAX_STDERR + 64];
    const char *id = j->cmd->id;
    if (j->spawn_error != 0) {
        snprintf(msg, sizeof(msg), "%s: cannot run /bin/sh: %s", id,
                 uv_strerror(j->spawn_error));
        cmdipc_call_fail(j->call, CMDIPC_EINTERNAL, msg);
        return;
    }
    if (j->term_signal != 0 || j->exit_status != 0) {
        if (j->ebuf.len > 0) {
            sanitize(j->ebuf.p, j->ebuf.len);
            if (j->ebuf.p[0] != '\0') {
                cmdipc_call_fail(j->call, CMDIPC_EINTERNAL, j->ebuf.p);
                return;
            }
        }
        if (j->term_signal != 0)
            snprintf(msg, sizeof(msg), "%s: killed by signal %d", id, j->term_signal);
        else
            snprintf(msg, sizeof(msg), "%s: exit status %lld", id,
                     (long long)j->exit_status);
        cmdipc_call_fail(j->call, CMDIPC_EINTERNAL, msg);
        return;
    }
    if (j->obuf.truncated) {
        snprintf(msg, sizeof(msg), "%s: output larger than %d bytes", id, MAX_STDOUT);
        cmdipc_call_fail(j->call, CMDIPC_EINTERNAL, msg);
        return;
    }
    if (all_space(j->obuf.p, j->obuf.len)) {
        cmdipc_call_reply(j->call, NULL);
        return;
    }
    json_error_t err;
    json_t *v = json_loadb(j->obuf.p, j->obuf.len,
                           JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        snprintf(msg, sizeof(msg), "%s: output is not JSON: %s at line %d, column %d", id,
                 cli_json_error_text(&err), err.line, err.column);
        cmdipc_call_fail(j->call, CMDIPC_EINTERNAL, msg);
        return;
    }
    if (cmdipc_call_reply(j->call, v) != 0) /* the caller got internal_error */
        cli_warn("%s: the output cannot be sent (too deeply nested)", id);
    json_decref(v);
}

static void serve_check_stopped(serve_t *sv);

static void job_closed(uv_handle_t *h) {
    job_t *j = h->data;
    if (--j->open > 0)
        return;
    serve_t *sv = j->sv;
    cli_info(2, "%s: done (exit status %lld, signal %d)", j->cmd->id,
             (long long)j->exit_status, j->term_signal);
    job_answer(j);
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        sv->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    free(j->input);
    free(j->obuf.p);
    free(j->ebuf.p);
    free(j);
    serve_check_stopped(sv);
}

static void job_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
    job_t *j = p->data;
    j->exited = 1;
    j->exit_status = exit_status;
    j->term_signal = term_signal;
    uv_close((uv_handle_t *)p, job_closed);
}

static void job_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char chunk[65536];
    (void)h;
    (void)suggested;
    buf->base = chunk; /* copied into the job's buffer at once */
    buf->len = sizeof(chunk);
}

static void job_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    job_t *j = s->data;
    if (nread > 0) {
        buf_add(s == (uv_stream_t *)&j->out ? &j->obuf : &j->ebuf, buf->base,
                (size_t)nread);
        return;
    }
    if (nread < 0) /* UV_EOF or an error: that stream is done */
        uv_close((uv_handle_t *)s, job_closed);
}

static void job_written(uv_write_t *w, int status) {
    job_t *j = w->data;
    (void)status; /* a child that does not read its stdin is fine */
    uv_close((uv_handle_t *)&j->in, job_closed);
}

static char **job_env(const char *id) {
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 2, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CMDIPC_COMMAND=", 15) != 0)
            env[k++] = environ[i];
    size_t len = strlen(id) + 16;
    env[k] = malloc(len);
    if (env[k] == NULL) {
        free(env);
        return NULL;
    }
    snprintf(env[k], len, "CMDIPC_COMMAND=%s", id);
    return env;
}

static void env_free(char **env) {
    if (env == NULL)
        return;
    size_t k = 0;
    while (env[k + 1] != NULL)
        k++;
    free(env[k]); /* the one we allocated is last */
    free(env);
}

static void serve_call(cmdipc_call_t *call, json_t *request, void *data) {
    serve_cmd_t *c = data;
    serve_t *sv = c->sv;
    uv_loop_t *loop = &sv->app.loop;
    job_t *j = calloc(1, sizeof(*j));
    char *text = request ? json_dumps(request, cli_json_flags(request, 0)) : NULL;
    if (j == NULL || (request != NULL && text == NULL)) {
        free(j);
        free(text);
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    size_t len = text ? strlen(text) : 4;
    j->input = malloc(len + 2);
    if (j->input == NULL) {
        free(j);
        free(text);
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    memcpy(j->input, text ? text : "null", len);
    j->input[len] = '\n';
    j->input[len + 1] = '\0';
    free(text);
    j->sv = sv;
    j->cmd = c;
    j->call = call;
    j->obuf.max = MAX_STDOUT;
    j->ebuf.max = MAX_STDERR;
    j->next = sv->jobs;
    if (sv->jobs != NULL)
        sv->jobs->prev = j;
    sv->jobs = j;

    uv_pipe_init(loop, &j->in, 0);
    uv_pipe_init(loop, &j->out, 0);
    uv_pipe_init(loop, &j->err, 0);
    j->in.data = j->out.data = j->err.data = j->proc.data = j->wreq.data = j;
    j->open = 4;

    char *args[] = {"/bin/sh", "-c", (char *)c->shell, NULL};
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&j->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&j->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&j->err;
    uv_process_options_t po;
    memset(&po, 0, sizeof(po));
    po.file = args[0];
    po.args = args;
    po.env = job_env(c->id);
    po.exit_cb = job_exit;
    po.stdio = stdio;
    po.stdio_count = 3;
    /* Its own process group (session), so that stopping it stops everything
     * it started. */
    po.flags = UV_PROCESS_DETACHED;
    int rc = UV_ENOMEM;
    if (po.env != NULL) {
        rc = uv_spawn(loop, &j->proc, &po); /* initialises proc, even on failure */
        env_free(po.env);
    }
    if (rc != 0) {
        j->spawn_error = rc;
        cli_warn("%s: cannot run /bin/sh: %s", c->id, uv_strerror(rc));
        if (po.env != NULL)
            uv_close((uv_handle_t *)&j->proc, job_closed);
        else
            j->open--;
        uv_close((uv_handle_t *)&j->in, job_closed);
        uv_close((uv_handle_t *)&j->out, job_closed);
        uv_close((uv_handle_t *)&j->err, job_closed);
        return;
    }
    j->pid = j->proc.pid;
    cli_info(2, "%s: running pid %d", c->id, j->pid);
    uv_buf_t b = uv_buf_init(j->input, (unsigned)(len + 1));
    if (uv_write(&j->wreq, (uv_stream_t *)&j->in, &b, 1, job_written) != 0)
        uv_close((uv_handle_t *)&j->in, job_closed);
    uv_read_start((uv_stream_t *)&j->out, job_alloc, job_read);
    uv_read_start((uv_stream_t *)&j->err, job_alloc, job_read);
}

/* ---------------------------------------------------------------------------
 * Registration and shutdown.
 */

static void serve_register(serve_t *sv);

static void serve_registered(cmdipc_registry_t *r, int status, const char *command_id,
                             void *data) {
    serve_cmd_t *c = data;
    serve_t *sv = c->sv;
    (void)r;
    if (sv->app.finishing)
        return;
    if (status == 0) {
        c->state = CMD_LIVE;
        cli_info(1, "serving %s", command_id);
        size_t live = 0;
        for (size_t i = 0; i < sv->n_cmds; i++)
            live += sv->cmds[i].state == CMD_LIVE;
        if (live == sv->n_cmds && !sv->announced) {
            sv->announced = 1;
            cli_info(1, "ready: serving %zu command%s", live, live == 1 ? "" : "s");
        }
        return;
    }
    c->state = CMD_NONE;
    if (status == CMDIPC_EDUPLICATE) {
        cli_error_code("duplicate_command");
        cli_error("cannot serve %s: it is already served in the mesh", command_id);
        cli_app_finish(&sv->app, CLI_EXIT_DUPLICATE);
        return;
    }
    /* Disconnected or timed out: again now if the link is up, else at the
     * next UP. */
    cli_warn("registration of %s failed (%s); retrying", command_id,
             cmdipc_strerror(status));
    cmdipc_channel_t *ch = cmdipc_registry_channel(sv->app.reg, CLI_PEER);
    if (ch != NULL && cmdipc_channel_is_up(ch))
        serve_register(sv);
}

static void serve_register(serve_t *sv) {
    for (size_t i = 0; i < sv->n_cmds && !sv->app.finishing; i++) {
        serve_cmd_t *c = &sv->cmds[i];
        if (c->state != CMD_NONE)
            continue;
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, c->id, c->description,
                                    c->schema};
        int rc = cmdipc_registry_register(sv->app.reg, &def, serve_call, c,
                                          serve_registered, c);
        if (rc == 0) {
            c->state = CMD_PENDING;
            continue;
        }
        cli_error("cannot serve %s: %s", c->id, cmdipc_strerror(rc));
        cli_app_finish(&sv->app,
                       rc == CMDIPC_EDUPLICATE ? CLI_EXIT_DUPLICATE : CLI_EXIT_OTHER);
    }
}

static void serve_up(cli_app_t *app, cmdipc_channel_t *ch) {
    (void)ch;
    serve_register(app->data);
}

/* A host that spawned us over stdio:// closes our stdin to stop us. */
static void serve_closed_link(cli_app_t *app, int status) {
    if ((status == UV_EOF || status == 0) && strncmp(app->url, "stdio://", 8) == 0) {
        cli_info(1, "stdin closed: stopping");
        cli_app_finish(app, CLI_EXIT_OK);
        return;
    }
    cli_error("connection to %s lost: %s", app->url,
              status ? cmdipc_strerror(status) : "closed");
    cli_app_finish(app, CLI_EXIT_DISCONNECTED);
}

/* The library says so as a warning ("channel peer down (...)"). */
static void serve_down(cli_app_t *app, int status) {
    /* A serve process without its hub is news even without -v. */
    cli_warn("connection to %s lost (%s); reconnecting", app->url,
             cmdipc_strerror(status));
}

static void kill_jobs(serve_t *sv, int signum) {
    for (job_t *j = sv->jobs; j != NULL; j = j->next)
        if (j->pid > 0)
            uv_kill(-j->pid, signum); /* the whole group; ESRCH when gone */
}

static void kill_timer_fired(uv_timer_t *t) {
    serve_t *sv = t->data;
    kill_jobs(sv, SIGKILL);
    uv_close((uv_handle_t *)t, NULL);
    sv->kill_timer_on = 0;
}

static void serve_check_stopped(serve_t *sv) {
    if (sv->jobs == NULL && sv->kill_timer_on) {
        uv_close((uv_handle_t *)&sv->kill_timer, NULL);
        sv->kill_timer_on = 0;
    }
}

/* The registry closed (signal or fatal error): stop what still runs. */
static void serve_closed(cli_app_t *app) {
    serve_t *sv = app->data;
    if (sv->jobs == NULL)
        return;
    cli_info(1, "stopping the running commands");
    kill_jobs(sv, SIGTERM);
    uv_timer_init(&app->loop, &sv->kill_timer);
    sv->kill_timer.data = sv;
    uv_timer_start(&sv->kill_timer, kill_timer_fired, KILL_AFTER_MS, 0);
    sv->kill_timer_on = 1;
}

int cmd_serve(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"command", 'c', 1, OPT_COMMAND},
        {"description", 'd', 1, OPT_DESCRIPTION},
        {"schema", 's', 1, OPT_SCHEMA},
        {"listen", 'l', 0, OPT_LISTEN},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    serve_t sv;
    memset(&sv, 0, sizeof(sv));
    sv.app.connect_timeout_ms = 10000;
    char *pos[1];
    const char *url = NULL;
    int n, rc = cli_parse(argc, argv, opts, serve_opt, &sv, serve_help, pos, 1, &n);
    if (rc == 0)
        rc = cli_take_addr(pos, &n, &url);
    if (rc == 0 && sv.n_cmds == 0)
        rc = cli_usage("nothing to serve: give at least one --command ID=SHELL-COMMAND");
    if (rc != 0)
        goto out;

    cmdipc_registry_opts_t ro;
    cmdipc_registry_opts_init(&ro);
    ro.id = "serve";
    ro.router_channel = sv.listen ? NULL : CLI_PEER;
    ro.log_level = cli_log_level(CMDIPC_LOG_WARN);
    for (size_t i = 0; i < sv.n_cmds; i++)
        sv.cmds[i].sv = &sv;
    if ((rc = cli_app_init(&sv.app, &ro, 1)) != 0)
        goto out;
    sv.app.data = &sv;
    sv.app.url = url;
    sv.app.on_registry_closed = serve_closed;
    if (sv.listen) {
        cmdipc_listener_t *l;
        char actual[512];
        cmdipc_listen_opts_t lo; /* +sodium:// keys */
        cmdipc_listen_opts_init(&lo);
        lo.secure = cli_secure_opts(url, 0, &rc);
        if (rc == 0)
            rc = cmdipc_listen(sv.app.reg, url, &lo, &l);
        else
            rc = UV_EINVAL;
        if (rc == 0)
            rc = cmdipc_listener_url(l, actual, sizeof(actual));
        if (rc != 0) {
            cli_app_finish(&sv.app, cli_listen_failed(url, rc));
        } else {
            /* A root: the commands are live at once. */
            sv.app.url = NULL; /* no peer channel to watch */
            serve_register(&sv);
            if (!cli_quiet) {
                printf("listening %s\n", actual);
                fflush(stdout);
            }
        }
    } else {
        sv.app.reconnect = 1;
        sv.app.on_up = serve_up;
        sv.app.on_down = serve_down;
        sv.app.on_closed = serve_closed_link;
        cli_app_connect(&sv.app);
    }
    rc = cli_app_run(&sv.app);
out:
    for (size_t i = 0; i < sv.n_cmds; i++) {
        free(sv.cmds[i].id);
        json_decref(sv.cmds[i].schema);
    }
    free(sv.cmds);
    return rc < 0 ? 0 : rc;
}
