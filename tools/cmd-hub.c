/* cmdipc — `cmdipc hub ADDR...`: a root registry listening on every ADDR,
 * routing commands and events between everything that connects, serving
 * cmdipc.commands: the library's built-in answer, plus who each owner is
 * (pid and process name of a Unix-socket peer, address of a TCP peer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "secure-opts.h"

static const char hub_help[] =
    "Usage: cmdipc hub [OPTIONS] ADDR...\n"
    "\n"
    "Runs a root registry listening on every ADDR. Everything that connects (services,\n"
    "'cmdipc serve', clients) is linked through it: commands registered by one peer are\n"
    "callable by all the others, events reach every peer. It serves the command\n"
    "cmdipc.commands: every command it knows with its owner, the channel and, where\n"
    "the hub knows it, the peer: pid, uid, gid and process name (/proc/PID/comm) of\n"
    "a Unix-socket peer, the address of a TCP peer ('cmdipc list' prints it).\n"
    "\n"
    "Once listening it prints one line per address on stdout, with the port chosen\n"
    "for tcp://host:0:\n"
    "  listening unix:///tmp/app.sock\n"
    "  listening tcp://127.0.0.1:40123\n"
    "('cmdipc wait ADDR' returns once it answers.) Errors go to stderr; -v adds\n"
    "connections and registrations, -vv everything. SIGINT or SIGTERM stop it cleanly\n"
    "(exit 0): calls in flight fail with channel_disconnected on the callers' side,\n"
    "connections are closed, its socket files removed.\n"
    "\n"
    "ADDR is a URL (unix:///path/app.sock, tcp://host:port) or a socket path\n"
    "(/path/app.sock, ./app.sock); without any, $CMDIPC_ADDR.\n"
    "\n"
    "Options:\n"
    "  --mode MODE        file mode of Unix sockets, octal (default 0600: this user)\n"
    "  -q, --quiet        no 'listening' lines, no warnings\n"
    "  --json             errors as JSON lines on stderr\n"
    "  -v, --verbose      log connections and registrations (-vv: debug)\n"
    "  -h, --help         this help\n"
    "\n"
    "Exit status: 0 stopped by a signal, 64 usage (bad address), 69 cannot listen.\n"
    "\n"
    "Examples:\n"
    "  cmdipc hub unix://$XDG_RUNTIME_DIR/app.sock\n"
    "  cmdipc hub -v /tmp/app.sock tcp://127.0.0.1:7400\n"
    "  cmdipc hub --mode 0660 unix:///run/app/hub.sock\n";

typedef struct hub_s {
    cli_app_t app;
    unsigned mode;
    int has_mode;
    uint64_t connections;
    /* -v: registrations, found by watching the command table (see watch). */
    uv_prepare_t watcher;
    int watching;
    cmdipc_stats_t last;
    cmdipc_command_info_t *known;
    size_t n_known;
} hub_t;

enum { OPT_MODE = 1 };

static int hub_opt(int key, const char *arg, void *data) {
    hub_t *h = data;
    char *end;
    if (key != OPT_MODE)
        return CLI_EXIT_USAGE;
    unsigned long m = strtoul(arg, &end, 8);
    if (arg[0] == '\0' || *end != '\0' || m > 0777)
        return cli_usage("invalid --mode '%s': expected octal permissions like 0660",
                         arg);
    h->mode = (unsigned)m;
    h->has_mode = 1;
    return 0;
}

/* Names each new connection conn-<n> with one counter for all the listeners
 * (each listener counting on its own would give two peers the same id). The
 * library logs the connection itself (-v). */
static int hub_accept(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *name,
                      size_t size, void *data) {
    hub_t *h = data;
    (void)l;
    (void)peer;
    snprintf(name, size, "conn-%llu", (unsigned long long)++h->connections);
    return 0;
}

/* /proc/PID/comm: the process name (at most 15 bytes), or "" when it cannot
 * be read (another user's process without the right to, gone, no /proc). */
static void process_name(int32_t pid, char *buf, size_t size) {
    char path[64];
    buf[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)size, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    for (char *p = buf; *p != '\0'; p++) /* keep it printable, and valid UTF-8 */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
}

/* What the hub knows of the peer on channel_id: {pid, uid, gid, name} for
 * a Unix-socket peer, {address} for a TCP peer; NULL when nothing. Looked
 * up when asked: the channel is attached, so the peer still holds it. */
static json_t *peer_json(cmdipc_registry_t *r, const char *channel_id) {
    cmdipc_channel_t *ch = cmdipc_registry_channel(r, channel_id);
    cmdipc_peer_info_t p;
    char name[64];
    if (ch == NULL || cmdipc_channel_peer(ch, &p) != 0)
        return NULL;
    if (p.has_creds) {
        json_t *o = json_pack("{s:i,s:I,s:I}", "pid", (int)p.pid, "uid",
                              (json_int_t)p.uid, "gid", (json_int_t)p.gid);
        process_name(p.pid, name, sizeof(name));
        if (o != NULL && name[0] != '\0')
            json_object_set_new(o, "name", json_string(name));
        return o;
    }
    if (p.remote != NULL && p.remote[0] != '\0')
        return json_pack("{s:s}", "address", p.remote);
    return NULL;
}

/* cmdipc.commands, as the library's built-in answers it ({"commands":[{id,
 * description?, schema?, channel?, local}...]}, public commands sorted by
 * id), each remote command with its "peer". */
static void hub_commands(cmdipc_call_t *call, json_t *request, void *data) {
    hub_t *h = data;
    cmdipc_command_info_t *info;
    size_t n;
    (void)request;
    if (cmdipc_registry_list_commands(h->app.reg, &info, &n) != 0) {
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (info[i].is_private)
            continue;
        json_t *o = json_pack("{s:s}", "id", info[i].id);
        if (o == NULL)
            continue;
        if (info[i].description != NULL)
            json_object_set_new(o, "description", json_string(info[i].description));
        if (info[i].schema != NULL)
            json_object_set(o, "schema", info[i].schema);
        if (info[i].channel_id != NULL) {
            json_object_set_new(o, "channel", json_string(info[i].channel_id));
            json_t *peer = peer_json(h->app.reg, info[i].channel_id);
            if (peer != NULL)
                json_object_set_new(o, "peer", peer);
        }
        json_object_set_new(o, "local", json_boolean(info[i].is_local));
        json_array_append_new(list, o);
    }
    cmdipc_command_info_free(info, n);
    json_t *res = json_pack("{s:o}", "commands", list ? list : json_array());
    if (res == NULL) {
        cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    cmdipc_call_reply(call, res);
    json_decref(res);
}

/* The library has no notification for a peer's registration; with -v the
 * hub compares its command table before each wait for I/O, when a
 * counter that moves with it changed. */
static void watch(uv_prepare_t *c) {
    hub_t *h = c->data;
    cmdipc_stats_t s;
    cmdipc_command_info_t *now;
    size_t n, i = 0, j = 0;
    if (h->app.reg == NULL)
        return;
    cmdipc_registry_stats(h->app.reg, &s);
    if (s.commands_remote == h->last.commands_remote &&
        s.channels_attached == h->last.channels_attached &&
        s.disconnects == h->last.disconnects)
        return;
    h->last = s;
    if (cmdipc_registry_list_commands(h->app.reg, &now, &n) != 0)
        return;
    while (i < h->n_known || j < n) { /* both sorted by id */
        int cmp = i == h->n_known ? 1 : j == n ? -1 : strcmp(h->known[i].id, now[j].id);
        if (cmp < 0 && !h->known[i].is_local)
            cli_info(1, "%s: command %s gone", h->known[i].channel_id, h->known[i].id);
        if (cmp > 0 && !now[j].is_local)
            cli_info(1, "%s: registered %s", now[j].channel_id, now[j].id);
        if (cmp == 0 && !now[j].is_local &&
            (h->known[i].is_local ||
             strcmp(h->known[i].channel_id, now[j].channel_id) != 0))
            cli_info(1, "%s: registered %s (now served there)", now[j].channel_id,
                     now[j].id);
        if (cmp <= 0)
            i++;
        if (cmp >= 0)
            j++;
    }
    cmdipc_command_info_free(h->known, h->n_known);
    h->known = now;
    h->n_known = n;
}

static void hub_stop(cli_app_t *app, int signum) {
    hub_t *h = app->data;
    (void)signum;
    if (h->watching) {
        uv_close((uv_handle_t *)&h->watcher, NULL);
        h->watching = 0;
    }
    cli_app_finish(app, CLI_EXIT_OK);
}

int cmd_hub(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"mode", 0, 1, OPT_MODE},
        {NULL, 0, 0, 0},
    };
    hub_t h;
    memset(&h, 0, sizeof(h));
    char **addrs = calloc((size_t)argc + 1, sizeof(char *));
    if (addrs == NULL)
        return CLI_EXIT_OTHER;
    int n, rc = cli_parse(argc, argv, opts, hub_opt, &h, hub_help, addrs, argc, &n);
    if (rc == 0 && n == 0) {
        const char *env = getenv("CMDIPC_ADDR");
        if (env != NULL && env[0] != '\0')
            addrs[n++] = (char *)env;
        else
            rc = cli_usage("expected at least one ADDR (or set CMDIPC_ADDR)");
    }
    if (rc != 0) {
        free(addrs);
        return rc < 0 ? 0 : rc;
    }
    for (int i = 0; i < n; i++)
        addrs[i] = (char *)cli_addr_url(addrs[i]);

    cmdipc_registry_opts_t ro;
    cmdipc_registry_opts_init(&ro);
    ro.id = "hub";
    ro.log_level = cli_log_level(CMDIPC_LOG_WARN);
    if ((rc = cli_app_init(&h.app, &ro, 1)) != 0) {
        free(addrs);
        return rc;
    }
    h.app.data = &h;
    h.app.on_signal = hub_stop;
    /* A root: live at once, nothing to ask. */
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "cmdipc.commands",
                                "Every public command this hub can reach, with its owner",
                                NULL};
    if ((rc = cmdipc_registry_register(h.app.reg, &def, hub_commands, &h, NULL, NULL)) !=
        0) {
        cli_error("cannot serve cmdipc.commands: %s", cmdipc_strerror(rc));
        cli_app_finish(&h.app, CLI_EXIT_OTHER);
    }

    cmdipc_listen_opts_t lo;
    cmdipc_listen_opts_init(&lo);
    lo.accept_cb = hub_accept;
    lo.accept_data = &h;
    if (h.has_mode)
        lo.mode = h.mode;
    for (int i = 0; i < n && !h.app.finishing; i++) {
        cmdipc_listener_t *l;
        char url[512];
        lo.secure = cli_secure_opts(addrs[i], 0, &rc); /* +sodium:// */
        if (rc != 0) {
            cli_app_finish(&h.app, rc);
            break;
        }
        rc = cmdipc_listen(h.app.reg, addrs[i], &lo, &l);
        if (rc == 0)
            rc = cmdipc_listener_url(l, url, sizeof(url));
        if (rc != 0) {
            cli_app_finish(&h.app, cli_listen_failed(addrs[i], rc));
            break;
        }
        if (!cli_quiet) {
            printf("listening %s\n", url);
            fflush(stdout);
        }
    }
    if (!h.app.finishing && cli_verbosity >= 1) {
        uv_prepare_init(&h.app.loop, &h.watcher);
        h.watcher.data = &h;
        uv_prepare_start(&h.watcher, watch);
        uv_unref((uv_handle_t *)&h.watcher);
        h.watching = 1;
    }
    rc = cli_app_run(&h.app);
    cmdipc_command_info_free(h.known, h.n_known);
    free(addrs);
    return rc;
}
