/* cmdipc — `cmdipc call ADDR COMMAND [JSON]`, and `call --lines`: one request per
 * line of stdin, up to --jobs in flight, one result per line in input order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ===========================================================================
 * call ADDR COMMAND [JSON]
 */

static const char call_help[] =
    "Usage: cmdipc call [OPTIONS] ADDR COMMAND [JSON]\n"
    "       cmdipc call [OPTIONS] --lines ADDR COMMAND < REQUESTS\n"
    "\n"
    "Executes COMMAND wherever it lives in the mesh reached through ADDR (a hub routes\n"
    "it to the registry that serves it) and prints its result as JSON on stdout, one\n"
    "line: null when the command returns no result (no result and a JSON null are\n"
    "the same in cmd-ipc). JSON is the request: any JSON value, '-' to read it from\n"
    "stdin; without it the request is absent. On failure the error code and\n"
    "message go to stderr ('cmdipc call: not_found: ...') and the exit status says\n"
    "which error it was.\n"
    "\n"
    "With --lines, every line of stdin is one request (blank lines are skipped) and\n"
    "every request gets one line on stdout, in the order of the input: the result,\n"
    "or an empty line when it failed (the error goes to stderr with its input line\n"
    "number). Up to --jobs requests are in flight at once, on one connection. The\n"
    "exit status is that of the first request that failed.\n"
    "\n" ADDR_TEXT "\n"
    "Options:\n"
    "  -t, --timeout DURATION       fail a call with timeout after DURATION (default\n"
    "                               30s; 0: wait forever)\n"
    "  -w, --wait                   wait until ADDR answers and serves COMMAND\n"
    "                               (within --connect-timeout) before calling\n"
    "  -l, --lines                  one request per line of stdin, one result per\n"
    "                               line of stdout\n"
    "  -j, --jobs N                 with --lines: N calls in flight (default 1, at\n"
    "                               most 1024); results stay in input order\n"
    "  -p, --pretty                 indent the result\n"
    "  -r, --raw                    print a string result without quotes or "
    "escapes\n" CONNECT_OPTS "\n" DURATIONS "\n" CLI_EXIT_TABLE "\n"
    "Examples:\n"
    "  cmdipc call unix:///tmp/app.sock math.add '{\"a\": 2, \"b\": 3}'\n"
    "  echo '{\"a\": 2, \"b\": 3}' | cmdipc call tcp://127.0.0.1:7400 math.add -\n"
    "  cmdipc call --timeout 2 /tmp/app.sock greet.hello '\"Ada\"'\n"
    "  cmdipc call --wait /tmp/app.sock sys.uptime   # right after starting the hub\n"
    "  name=$(cmdipc call -r /tmp/app.sock user.name) || echo \"failed: $?\"\n"
    "  seq 100 | cmdipc call --lines -j 16 /tmp/app.sock math.square\n";

typedef struct slot_s {
    uint64_t line;
    int state; /* SLOT_FREE, SLOT_PENDING, SLOT_DONE */
    int status;
    json_t *result;
    char *message;
    struct call_s *call;
} slot_t;

enum { SLOT_FREE = 0, SLOT_PENDING, SLOT_DONE };

typedef struct call_s {
    client_t c;
    const char *command;
    json_t *request;
    int sent;
    /* --lines */
    slot_t *slots;
    size_t head, used;
    uint64_t lineno;
    int first_fail;
    int eof, link_lost, reading;
    char *buf;
    size_t len, cap;
    int skipping; /* the rest of an over-long line */
    int in_kind;  /* 0 none, 1 stream, 2 file */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    uv_fs_t fsreq;
    int fs_busy;
    char fsbuf[65536];
} call_t;

static void call_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data) {
    call_t *k = data;
    (void)req;
    if (k->c.app.finishing)
        return;
    if (status != 0) {
        cli_app_fail(&k->c.app, status, message);
        return;
    }
    cli_app_finish(&k->c.app, cli_print_json(result, k->c.o.pretty, k->c.o.raw));
}

static void call_ready(client_t *c) {
    call_t *k = (call_t *)c;
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    if (c->o.has_timeout)
        eo.timeout_ms = c->o.timeout_ms;
    int rc = cmdipc_registry_execute(c->app.reg, k->command, k->request, &eo, call_done,
                                     k, NULL);
    if (rc != 0) {
        if (rc == UV_EINVAL) {
            cli_error("the request cannot be sent: %s", cmdipc_strerror(rc));
            cli_app_finish(&c->app, CLI_EXIT_USAGE);
        } else {
            cli_app_fail(&c->app, rc, NULL);
        }
        return;
    }
    k->sent = 1;
}

/* Once the request is out, a lost connection fails it with
 * channel_disconnected (call_done reports it); before, it is exit 69. */
static void call_closed(cli_app_t *app, int status) {
    call_t *k = app->data;
    if (k->sent)
        return;
    cli_error("%s %s: %s", app->up ? "connection to" : "cannot connect to", app->url,
              status ? cmdipc_strerror(status) : "closed");
    cli_app_finish(app, CLI_EXIT_CONNECT);
}

/* --- call --lines --------------------------------------------------------- */

static void lines_pump(call_t *k);

static void slot_free(slot_t *s) {
    json_decref(s->result);
    free(s->message);
    s->result = NULL;
    s->message = NULL;
    s->state = SLOT_FREE;
}

static void slot_set(slot_t *s, int status, json_t *result, const char *message) {
    s->state = SLOT_DONE;
    s->status = status;
    s->result = result ? json_incref(result) : NULL;
    s->message = message ? strdup(message) : NULL;
}

/* Prints the finished slots at the head, in input order. */
static void lines_flush(call_t *k) {
    size_t jobs = (size_t)k->c.o.jobs;
    while (k->used > 0 && k->slots[k->head].state == SLOT_DONE) {
        slot_t *s = &k->slots[k->head];
        int rc = 0;
        if (s->status == 0) {
            rc = cli_print_json(s->result, k->c.o.pretty, k->c.o.raw);
        } else {
            int code = s->status > 0 ? s->status : cli_exit_code(s->status);
            const char *name =
                s->status > 0 ? cli_exit_name(code) : cli_status_code(s->status);
            if (!cli_quiet) {
                fputc('\n', stdout);
                rc = cli_flush();
            }
            cli_line_error(s->line, name, code, "%s",
                           s->message && s->message[0] ? s->message
                                                       : cmdipc_strerror(s->status));
            if (k->first_fail == 0)
                k->first_fail = code;
        }
        slot_free(s);
        k->head = (k->head + 1) % jobs;
        k->used--;
        if (rc != 0) { /* stdout is gone: stop */
            cli_app_finish(&k->c.app, rc);
            return;
        }
    }
}

static void lines_check_end(call_t *k) {
    if (k->c.app.finishing || k->used > 0 || !(k->eof || k->link_lost) ||
        (k->len > 0 && !k->link_lost))
        return;
    int code = k->first_fail;
    if (code == 0 && k->link_lost)
        code = CLI_EXIT_DISCONNECTED;
    cli_app_finish(&k->c.app, code);
}

static void line_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data) {
    slot_t *s = data;
    call_t *k = s->call;
    (void)req;
    slot_set(s, status, result, message);
    if (!k->c.app.finishing)
        lines_pump(k);
}

/* One request line (without its newline): a slot, then the call. A line
 * that cannot be sent is finished at once. */
static void line_start(call_t *k, const char *p, size_t n) {
    size_t jobs = (size_t)k->c.o.jobs;
    slot_t *s = &k->slots[(k->head + k->used) % jobs];
    char why[512];
    json_t *req;
    k->used++;
    s->call = k;
    s->line = k->lineno;
    s->state = SLOT_PENDING;
    if (n > LINE_MAX_BYTES) {
        slot_set(s, CLI_EXIT_USAGE, NULL, "the request is longer than 1 MiB");
        return;
    }
    if (cli_json_from_text(p, n, &req, why, sizeof(why)) != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "the request is %s", why);
        slot_set(s, CLI_EXIT_USAGE, NULL, msg);
        return;
    }
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    if (k->c.o.has_timeout)
        eo.timeout_ms = k->c.o.timeout_ms;
    int rc =
        cmdipc_registry_execute(k->c.app.reg, k->command, req, &eo, line_done, s, NULL);
    json_decref(req);
    if (rc == UV_EINVAL)
        slot_set(s, CLI_EXIT_USAGE, NULL, "the request cannot be sent: invalid argument");
    else if (rc != 0)
        slot_set(s, rc, NULL, NULL);
}

static int blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* Starts a call for each complete line buffered while a slot is free.
 * Returns how many lines it consumed. */
static size_t lines_start(call_t *k) {
    size_t jobs = (size_t)k->c.o.jobs, off = 0, consumed = 0;
    while (!k->c.app.finishing && !k->link_lost && k->used < jobs) {
        char *nl = memchr(k->buf + off, '\n', k->len - off);
        size_t n;
        if (nl != NULL)
            n = (size_t)(nl - (k->buf + off));
        else if (k->eof && k->len > off)
            n = k->len - off; /* the last line, without a newline */
        else
            break;
        const char *p = k->buf + off;
        off += n + (nl != NULL);
        consumed++;
        if (k->skipping) { /* the end of an over-long line, already failed */
            k->skipping = 0;
            continue;
        }
        k->lineno++;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (!blank(p, n))
            line_start(k, p, n);
    }
    memmove(k->buf, k->buf + off, k->len - off);
    k->len -= off;
    /* A line longer than any message, still without its end: fail it now and
     * drop the rest of it as it comes, rather than buffer it. */
    if (k->len > LINE_MAX_BYTES && !k->link_lost && k->used < jobs) {
        if (!k->skipping) {
            k->lineno++;
            slot_t *s = &k->slots[(k->head + k->used) % jobs];
            k->used++;
            s->call = k;
            s->line = k->lineno;
            slot_set(s, CLI_EXIT_USAGE, NULL, "the request is longer than 1 MiB");
            k->skipping = 1;
            consumed++;
        }
        k->len = 0;
    }
    return consumed;
}

static void lines_read_more(call_t *k);

/* Everything that can move: start calls, print what finished in order,
 * again while that frees slots; then read more input or stop reading, and
 * finish at the end of the input. */
static void lines_pump(call_t *k) {
    for (;;) {
        size_t used = k->used;
        size_t consumed = lines_start(k);
        lines_flush(k);
        if (k->c.app.finishing)
            return;
        if (consumed == 0 && k->used >= used)
            break;
    }
    size_t jobs = (size_t)k->c.o.jobs;
    if (k->used < jobs && !k->eof && !k->link_lost) {
        lines_read_more(k);
    } else if (k->reading && k->in_kind == 1) {
        uv_read_stop((uv_stream_t *)&k->in);
        k->reading = 0;
    }
    lines_check_end(k);
}

static int lines_append(call_t *k, const char *p, size_t n) {
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap : 65536;
        while (cap < k->len + n)
            cap *= 2;
        char *b = realloc(k->buf, cap);
        if (b == NULL)
            return UV_ENOMEM;
        k->buf = b;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    return 0;
}

static void lines_input_error(call_t *k, int status) {
    cli_error("cannot read the requests from stdin: %s", uv_strerror(status));
    cli_app_finish(&k->c.app, CLI_EXIT_OTHER);
}

static void lines_got(call_t *k, const char *p, ssize_t n) {
    if (n < 0) {
        if (n != UV_EOF) {
            lines_input_error(k, (int)n);
            return;
        }
        k->eof = 1;
        if (k->reading && k->in_kind == 1)
            uv_read_stop((uv_stream_t *)&k->in);
        k->reading = 0;
    } else if (n > 0 && lines_append(k, p, (size_t)n) != 0) {
        lines_input_error(k, UV_ENOMEM);
        return;
    }
    lines_pump(k);
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    call_t *k = h->data;
    (void)suggested;
    buf->base = k->fsbuf;
    buf->len = sizeof(k->fsbuf);
}

static void in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    call_t *k = s->data;
    if (k->c.app.finishing)
        return;
    lines_got(k, buf->base, nread == 0 ? 0 : nread);
}

static void fs_read_done(uv_fs_t *req) {
    call_t *k = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    k->fs_busy = 0;
    if (k->c.app.finishing)
        return;
    lines_got(k, k->fsbuf, n == 0 ? UV_EOF : n);
}

static void lines_read_more(call_t *k) {
    if (k->in_kind == 1 && !k->reading) {
        int rc = uv_read_start((uv_stream_t *)&k->in, in_alloc, in_read);
        if (rc != 0) {
            lines_input_error(k, rc);
            return;
        }
        k->reading = 1;
    } else if (k->in_kind == 2 && !k->fs_busy) {
        uv_buf_t b = uv_buf_init(k->fsbuf, sizeof(k->fsbuf));
        k->fsreq.data = k;
        int rc = uv_fs_read(&k->c.app.loop, &k->fsreq, 0, &b, 1, -1, fs_read_done);
        if (rc != 0) {
            lines_input_error(k, rc);
            return;
        }
        k->fs_busy = 1;
    }
}

static void lines_ready(client_t *c) {
    call_t *k = (call_t *)c;
    uv_loop_t *loop = &c->app.loop;
    int rc = 0;
    k->sent = 1;
    switch (uv_guess_handle(0)) {
        case UV_TTY:
            rc = uv_tty_init(loop, &k->in.tty, 0, 1);
            k->in_kind = rc == 0 ? 1 : 0;
            break;
        case UV_NAMED_PIPE:
            rc = uv_pipe_init(loop, &k->in.pipe, 0);
            if (rc == 0) {
                k->in_kind = 1;
                rc = uv_pipe_open(&k->in.pipe, 0);
            }
            break;
        default: /* a file, /dev/null: read in the thread pool (never blocks) */
            k->in_kind = 2;
            break;
    }
    if (k->in_kind == 1)
        k->in.pipe.data = k;
    if (rc != 0) {
        lines_input_error(k, rc);
        return;
    }
    lines_pump(k);
}

static void lines_finish(cli_app_t *app) {
    call_t *k = app->data;
    client_finish(app);
    if (k->in_kind == 1)
        uv_close((uv_handle_t *)&k->in, NULL);
    k->in_kind = 0;
}

/* The link closed for good: the calls in flight fail on their own
 * (channel_disconnected), no more lines are read. Before it was ever up,
 * it is exit 69. */
static void lines_closed(cli_app_t *app, int status) {
    call_t *k = app->data;
    if (!k->sent) {
        call_closed(app, status);
        return;
    }
    k->link_lost = 1;
    lines_pump(k);
}

int cmd_call(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"timeout", 't', 1, OPT_TIMEOUT}, {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {"pretty", 'p', 0, OPT_PRETTY},   {"raw", 'r', 0, OPT_RAW},
        {"wait", 'w', 0, OPT_WAIT},       {"lines", 'l', 0, OPT_LINES},
        {"jobs", 'j', 1, OPT_JOBS},       {NULL, 0, 0, 0},
    };
    call_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return CLI_EXIT_OTHER;
    client_opts_init(&k->c.o);
    char *pos[3];
    const char *url;
    int n, rc = cli_parse(argc, argv, opts, client_opt, &k->c.o, call_help, pos, 3, &n);
    if (rc != 0)
        goto out;
    if ((rc = cli_take_addr(pos, &n, &url)) != 0)
        goto out;
    if (n < 1 || n > (k->c.o.lines ? 1 : 2)) {
        rc = cli_usage(
            k->c.o.lines
                ? "expected ADDR COMMAND (--lines reads the requests "
                  "from stdin)"
                : "expected ADDR COMMAND [JSON] (ADDR may come from CMDIPC_ADDR)");
        goto out;
    }
    if (k->c.o.jobs > 1 && !k->c.o.lines) {
        rc = cli_usage("--jobs goes with --lines");
        goto out;
    }
    k->command = pos[0];
    if ((rc = cli_check_id("COMMAND", k->command)) != 0)
        goto out;
    if (n == 2 && (rc = cli_parse_json("the request", pos[1], &k->request)) != 0)
        goto out;
    if (k->c.o.wait) {
        k->c.waiting = 1;
        k->c.need = (char **)&k->command;
        k->c.n_need = 1;
        k->c.wait_ms = k->c.o.connect_timeout_ms;
    }
    if (k->c.o.lines) {
        k->slots = calloc((size_t)k->c.o.jobs, sizeof(*k->slots));
        k->cap = 65536;
        k->buf = malloc(k->cap); /* never NULL while reading: memchr, memmove */
        if (k->slots == NULL || k->buf == NULL) {
            rc = CLI_EXIT_OTHER;
            goto out;
        }
        k->c.app.on_finish = lines_finish;
    }
    rc = client_run(&k->c, "cmdipc-call", url, k->c.o.lines ? lines_ready : call_ready,
                    k->c.o.lines ? lines_closed : call_closed, k->request);
    k->request = NULL;
out:
    if (k->slots != NULL) {
        for (uint64_t i = 0; i < k->c.o.jobs; i++)
            slot_free(&k->slots[i]);
        free(k->slots);
    }
    free(k->buf);
    json_decref(k->request);
    free(k);
    return rc < 0 ? 0 : rc;
}
