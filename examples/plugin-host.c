/* plugin-host — a host spawns two plugin processes over stdio; the plugins
 * call each other's commands through the host; events reach every process
 * exactly once.
 *
 * One binary, two roles:
 *
 *   plugin-host                  the host: a root registry. It spawns itself
 *                                twice with cmdipc_spawn(), as the plugins
 *                                "alpha" and "beta"; each child's stdin and
 *                                stdout are a channel of the host.
 *   plugin-host --plugin NAME    a plugin (started by the host, not by you):
 *                                a registry whose router is the host, linked
 *                                to it with cmdipc_connect(r, "stdio://", ...).
 *
 * What happens:
 *   1. alpha registers alpha.upper, beta registers beta.count. Their router,
 *      the host, records which channel serves which and acknowledges.
 *   2. Once acknowledged, each plugin emits plugin.ready; the host forwards
 *      it to the other plugin.
 *   3. On the other's plugin.ready, alpha calls beta.count and beta calls
 *      alpha.upper, THROUGH the host (see below).
 *   4. Each plugin reports its answer with a plugin.result event.
 *   5. The host has seen all 4 events: it closes its registry. That closes
 *      the plugins' stdin; each sees its channel close, closes its registry
 *      and exits 0; the host logs their exit status.
 *
 * Neither plugin knows the other: a plugin sends every call it cannot serve
 * to its router, the host, which knows which child registered the command.
 * Each process counts the 4 events (ready and result of each plugin) and
 * checks it saw every one exactly once: local listeners see a registry's own
 * emits, the host forwards each event to the other child, and de-duplication
 * by event id guarantees "once".
 *
 * A plugin's stdout IS its channel: plugins never print to stdout. They write
 * their walkthrough lines to stderr, which the host's children inherit, so
 * they appear on the terminal next to the host's lines (on stdout).
 *
 * Build and run: ninja -C build && build/examples/plugin-host
 * (exits 0 when every step happened; it gives up after 10 s with exit 1).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmdipc.h>

#define TIMEOUT_MS 10000

/* The two plugins. */
typedef struct {
    const char *name;    /* its channel id at the host and its registry id */
    const char *command; /* the command it serves */
    const char *description;
    const char *peer;         /* the other plugin ... */
    const char *peer_command; /* ... and the command this one calls */
    const char *text;         /* what it sends there */
    cmdipc_command_fn fn;     /* the handler of command */
} plugin_def_t;

static void alpha_upper(cmdipc_call_t *call, json_t *request, void *data);
static void beta_count(cmdipc_call_t *call, json_t *request, void *data);

static const plugin_def_t plugins[2] = {
    {"alpha", "alpha.upper", "upper-cases an ASCII string", "beta", "beta.count",
     "hello from alpha", alpha_upper},
    {"beta", "beta.count", "counts the characters of a string", "alpha", "alpha.upper",
     "hello from beta", beta_count},
};

static const plugin_def_t *plugin_find(const char *name) {
    for (size_t i = 0; i < 2; i++)
        if (name != NULL && strcmp(plugins[i].name, name) == 0)
            return &plugins[i];
    return NULL;
}

/* Every process counts the events it sees: [event][plugin that emitted it]. */
static const char *const event_names[2] = {"plugin.ready", "plugin.result"};
static unsigned seen[2][2];

/* Counts an event; returns the number of times it has been seen (1 = first). */
static unsigned count_event(const char *event_id, json_t *payload) {
    const char *from = json_string_value(json_object_get(payload, "plugin"));
    for (size_t e = 0; e < 2; e++)
        for (size_t p = 0; p < 2; p++)
            if (strcmp(event_id, event_names[e]) == 0 && from != NULL &&
                strcmp(from, plugins[p].name) == 0)
                return ++seen[e][p];
    return 0; /* not one of ours */
}

static int all_seen_once(void) {
    for (size_t e = 0; e < 2; e++)
        for (size_t p = 0; p < 2; p++)
            if (seen[e][p] != 1)
                return 0;
    return 1;
}

static char *dump(json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(none)");
}

/* ===========================================================================
 * The plugin side. Everything it prints goes to stderr.
 */

static const plugin_def_t *me;
static int plugin_failed;

/* One line to stderr, written at once so the two plugins' lines do not mix. */
static void psay(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    int n = snprintf(line, sizeof(line), "  [%s] ", me->name);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    fputs(line, stderr);
}

/* alpha.upper "text" -> "TEXT" */
static void alpha_upper(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    if (!json_is_string(request)) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ, "expected a string");
        return;
    }
    char *s = strdup(json_string_value(request));
    for (char *c = s; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    psay("alpha.upper(\"%s\") = \"%s\"   (the call came in on channel %s)",
         json_string_value(request), s, cmdipc_call_channel_id(call));
    json_t *result = json_string(s);
    cmdipc_call_reply(call, result); /* borrowed: we still own result */
    json_decref(result);
    free(s);
}

/* beta.count "text" -> the number of characters (UTF-8 code points) */
static void beta_count(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    if (!json_is_string(request)) {
        cmdipc_call_fail(call, CMDIPC_EINVALREQ, "expected a string");
        return;
    }
    json_int_t n = 0;
    for (const char *c = json_string_value(request); *c; c++)
        if (((unsigned char)*c & 0xC0) != 0x80) /* not a continuation byte */
            n++;
    psay("beta.count(\"%s\") = %lld   (the call came in on channel %s)",
         json_string_value(request), (long long)n, cmdipc_call_channel_id(call));
    json_t *result = json_integer(n);
    cmdipc_call_reply(call, result);
    json_decref(result);
}

/* The answer of the other plugin's command: report it to everyone. */
static void peer_answered(cmdipc_req_t *req, int status, json_t *result,
                          const char *message, void *data) {
    (void)data;
    cmdipc_registry_t *r = cmdipc_req_registry(req);
    if (status != 0) {
        psay("%s failed: %s (%s)", me->peer_command, message, cmdipc_err_name(status));
        plugin_failed = 1;
        return;
    }
    char *text = dump(result);
    psay("%s(\"%s\") -> %s   (served by %s, through the host)", me->peer_command,
         me->text, text, me->peer);
    free(text);
    json_t *p = json_pack("{s:s,s:s,s:s,s:O}", "plugin", me->name, "command",
                          me->peer_command, "request", me->text, "result", result);
    psay("emit plugin.result");
    if (cmdipc_registry_emit(r, "plugin.result", p) != 0)
        plugin_failed = 1;
    json_decref(p);
}

static void plugin_on_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                            void *data) {
    (void)data;
    const char *from = json_string_value(json_object_get(payload, "plugin"));
    unsigned n = count_event(event_id, payload);
    if (from != NULL && strcmp(from, me->name) == 0)
        return; /* our own emit, seen by our local listener: counted, not shown */
    char *text = dump(payload);
    psay("event %s from %s (seen %u time%s): %s", event_id, from ? from : "?", n,
         n == 1 ? "" : "s", text);
    free(text);
    if (strcmp(event_id, "plugin.ready") == 0 && from != NULL &&
        strcmp(from, me->peer) == 0 && n == 1) {
        /* We do not know where peer_command lives: the router (the host) does. */
        json_t *req = json_string(me->text);
        psay("-> calling %s(\"%s\")", me->peer_command, me->text);
        int rc = cmdipc_registry_execute(r, me->peer_command, req, NULL, peer_answered,
                                         NULL, NULL);
        json_decref(req);
        if (rc != 0) {
            psay("execute %s: %s", me->peer_command, cmdipc_strerror(rc));
            plugin_failed = 1;
        }
    }
}

static void plugin_registered(cmdipc_registry_t *r, int status, const char *command_id,
                              void *data) {
    (void)data;
    if (status != 0) {
        psay("register %s: %s", command_id, cmdipc_strerror(status));
        plugin_failed = 1;
        return;
    }
    psay("%s is live (the host acknowledged it); emit plugin.ready", command_id);
    json_t *p = json_pack("{s:s,s:s}", "plugin", me->name, "command", command_id);
    if (cmdipc_registry_emit(r, "plugin.ready", p) != 0)
        plugin_failed = 1;
    json_decref(p);
}

static void plugin_channel_event(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                                 cmdipc_channel_event_t event, int status, void *data) {
    (void)data;
    if (event != CMDIPC_CHANNEL_CLOSED)
        return;
    /* The host closed our stdin (UV_EOF), or went away: we are done. */
    psay("channel %s closed (%s): closing", cmdipc_channel_id(ch),
         status ? cmdipc_strerror(status) : "by us");
    cmdipc_registry_close(r, NULL, NULL);
}

static int run_plugin(const char *name) {
    me = plugin_find(name);
    if (me == NULL) {
        fprintf(stderr, "plugin-host: unknown plugin \"%s\"\n", name ? name : "");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    cmdipc_registry_t *r;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = me->name;
    o.router_channel = "host"; /* the channel created by cmdipc_connect below */
    int rc = cmdipc_registry_new(loop, &o, &r);
    if (rc != 0) {
        fprintf(stderr, "[%s] registry: %s\n", me->name, cmdipc_strerror(rc));
        return 1;
    }
    cmdipc_registry_set_channel_cb(r, plugin_channel_event, NULL);
    for (size_t e = 0; e < 2 && rc == 0; e++)
        rc = cmdipc_registry_on(r, event_names[e], plugin_on_event, NULL, NULL);
    if (rc == 0)
        rc = cmdipc_connect(r, "stdio://", "host", NULL, NULL);
    if (rc == 0) {
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, me->command,
                                    me->description, NULL};
        rc = cmdipc_registry_register(r, &def, me->fn, NULL, plugin_registered, NULL);
    }
    if (rc != 0) {
        psay("setting up: %s", cmdipc_strerror(rc));
        plugin_failed = 1;
        cmdipc_registry_close(r, NULL, NULL);
    } else {
        psay("started (pid %d), connected to the host over stdio, registering %s",
             (int)uv_os_getpid(), me->command);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the registry has closed */

    if (!all_seen_once()) {
        psay("FAILED: did not see each of the 4 events exactly once");
        plugin_failed = 1;
    }
    if (uv_loop_close(loop) != 0) {
        psay("FAILED: handles left open on the loop");
        plugin_failed = 1;
    }
    if (!plugin_failed)
        psay("saw each of the 4 events exactly once; exiting 0");
    return plugin_failed ? 1 : 0;
}

/* ===========================================================================
 * The host side. It prints to stdout.
 */

typedef struct {
    cmdipc_registry_t *reg;
    uv_timer_t timer; /* the safety timeout, then the deferred shutdown */
    int pid[2];
    int exited[2];
    int64_t exit_status[2];
    int term_signal[2];
    uint64_t forwarded;
    int routes_ok; /* both commands were routed to their plugin */
    int shutting_down;
    int failed;
} host_t;

static host_t host;

static void hsay(const char *fmt, ...) {
    va_list ap;
    printf("  [host]  ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void host_closed(cmdipc_registry_t *r, void *data) {
    (void)r;
    (void)data;
    hsay("registry closed");
}

static void shutdown_now(uv_timer_t *t) {
    (void)t;
    cmdipc_stats_t s;
    cmdipc_registry_stats(host.reg, &s);
    host.forwarded = s.forwarded;
    hsay("stats: %llu requests forwarded between the plugins, %llu events received",
         (unsigned long long)s.forwarded, (unsigned long long)s.events_received);
    hsay("closing: the plugins' stdin closes, they close their registries and exit");
    uv_close((uv_handle_t *)&host.timer, NULL);
    cmdipc_registry_close(host.reg, host_closed, NULL);
}

/* Closes the registry on the next loop turn. Not from inside an event
 * listener: after its listeners return, the host still forwards that event
 * to the other plugin, which a closing registry no longer does. */
static void shutdown_soon(void) {
    if (host.shutting_down)
        return;
    host.shutting_down = 1;
    uv_timer_stop(&host.timer);
    uv_timer_start(&host.timer, shutdown_now, 0, 0);
}

static void timed_out(uv_timer_t *t) {
    (void)t;
    fprintf(stderr,
            "plugin-host: FAILED: not every step happened within %d ms "
            "(events seen: ready alpha %u, beta %u; result alpha %u, beta %u)\n",
            TIMEOUT_MS, seen[0][0], seen[0][1], seen[1][0], seen[1][1]);
    host.failed = 1;
    host.shutting_down = 1;
    shutdown_now(t);
}

/* Shows (and checks) where the host sends each command. */
static void print_routes(void) {
    cmdipc_command_info_t *info;
    size_t n, found = 0;
    if (cmdipc_registry_list_commands(host.reg, &info, &n) != 0)
        return;
    hsay("the host routes %zu command%s:", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        const char *owner = info[i].channel_id ? info[i].channel_id : "(local)";
        hsay("    %-12s -> channel %-6s (%s)", info[i].id, owner,
             info[i].description ? info[i].description : "");
        const plugin_def_t *p = plugin_find(owner);
        if (p != NULL && strcmp(p->command, info[i].id) == 0)
            found++;
    }
    cmdipc_command_info_free(info, n);
    host.routes_ok = found == 2;
}

static void host_on_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                          void *data) {
    (void)r;
    (void)data;
    unsigned n = count_event(event_id, payload);
    char *text = dump(payload);
    hsay("event %s (seen %u time%s): %s", event_id, n, n == 1 ? "" : "s", text);
    free(text);
    if (n != 1) {
        hsay("FAILED: an event arrived %s", n == 0 ? "that nobody sent" : "twice");
        host.failed = 1;
    }
    if (seen[0][0] && seen[0][1] && strcmp(event_id, "plugin.ready") == 0)
        print_routes(); /* both commands are registered now */
    if (all_seen_once())
        shutdown_soon();
}

static void host_channel_event(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                               cmdipc_channel_event_t event, int status, void *data) {
    (void)r;
    (void)data;
    if (event == CMDIPC_CHANNEL_ATTACHED)
        hsay("channel %s attached (the child's stdin/stdout)", cmdipc_channel_id(ch));
    else if (event == CMDIPC_CHANNEL_CLOSED)
        hsay("channel %s closed (%s)", cmdipc_channel_id(ch),
             status ? cmdipc_strerror(status) : "by us");
}

static void plugin_exited(cmdipc_registry_t *r, const char *channel_id,
                          int64_t exit_status, int term_signal, void *data) {
    (void)r;
    (void)data;
    size_t i = (size_t)(plugin_find(channel_id) - plugins);
    host.exited[i] = 1;
    host.exit_status[i] = exit_status;
    host.term_signal[i] = term_signal;
    if (term_signal != 0)
        hsay("plugin %s (pid %d) was killed by signal %d", channel_id, host.pid[i],
             term_signal);
    else
        hsay("plugin %s (pid %d) exited with status %lld", channel_id, host.pid[i],
             (long long)exit_status);
}

static int run_host(void) {
    char exe[4096];
    size_t exe_len = sizeof(exe);
    uv_loop_t *loop = uv_default_loop();
    int rc;

    printf("cmdipc %s plugin-host: a host and two plugin processes over stdio\n\n",
           cmdipc_version_string());
    fflush(stdout);
    if ((rc = uv_exepath(exe, &exe_len)) != 0) {
        fprintf(stderr, "plugin-host: uv_exepath: %s\n", uv_strerror(rc));
        return 1;
    }
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "host"; /* no router_channel: the host is the root */
    if ((rc = cmdipc_registry_new(loop, &o, &host.reg)) != 0) {
        fprintf(stderr, "plugin-host: registry: %s\n", cmdipc_strerror(rc));
        return 1;
    }
    uv_timer_init(loop, &host.timer);
    uv_timer_start(&host.timer, timed_out, TIMEOUT_MS, 0);
    cmdipc_registry_set_channel_cb(host.reg, host_channel_event, NULL);
    for (size_t e = 0; e < 2 && rc == 0; e++)
        rc = cmdipc_registry_on(host.reg, event_names[e], host_on_event, NULL, NULL);

    for (size_t i = 0; i < 2 && rc == 0; i++) {
        char *args[] = {exe, "--plugin", (char *)plugins[i].name, NULL};
        cmdipc_spawn_opts_t so;
        cmdipc_spawn_opts_init(&so);
        so.file = exe;
        so.args = args;
        so.exit_cb = plugin_exited;
        rc = cmdipc_spawn(host.reg, plugins[i].name, &so, NULL, &host.pid[i]);
        if (rc == 0)
            hsay("spawned %s --plugin %s (pid %d)", exe, plugins[i].name, host.pid[i]);
    }
    if (rc != 0) {
        fprintf(stderr, "plugin-host: setting up: %s\n", cmdipc_strerror(rc));
        host.failed = 1;
        host.shutting_down = 1;
        shutdown_now(&host.timer);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the registry has closed */

    for (size_t i = 0; i < 2; i++) {
        if (host.pid[i] != 0 &&
            (!host.exited[i] || host.exit_status[i] != 0 || host.term_signal[i] != 0)) {
            fprintf(stderr, "plugin-host: FAILED: plugin %s did not exit cleanly\n",
                    plugins[i].name);
            host.failed = 1;
        }
    }
    if (!host.failed && !all_seen_once()) {
        fprintf(stderr, "plugin-host: FAILED: the host did not see each event once\n");
        host.failed = 1;
    }
    if (!host.failed && !host.routes_ok) {
        fprintf(stderr,
                "plugin-host: FAILED: the commands were not routed to the plugins\n");
        host.failed = 1;
    }
    if (!host.failed && host.forwarded != 2) {
        fprintf(stderr, "plugin-host: FAILED: expected 2 calls forwarded, got %llu\n",
                (unsigned long long)host.forwarded);
        host.failed = 1;
    }
    if (uv_loop_close(loop) != 0) {
        fprintf(stderr, "plugin-host: FAILED: handles left open on the loop\n");
        host.failed = 1;
    }
    if (host.failed)
        return 1;
    printf("\nevery process saw each event exactly once; both plugins exited 0.\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--plugin") == 0)
        return run_plugin(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s   (the host; it starts the plugins itself)\n",
                argv[0]);
        return 2;
    }
    return run_host();
}
