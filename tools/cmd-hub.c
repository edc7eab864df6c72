/* cmdipc — `cmdipc hub ADDR...`: a root registry listening on every ADDR,
 * routing commands and events between everything that connects, serving the
 * built-in cmdipc.commands.
 */
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
    "callable by all the others, events reach every peer. It serves the built-in\n"
    "command cmdipc.commands (every command it knows, used by 'cmdipc list').\n"
    "\n"
    "Once listening it prints one line per address on stdout, with the port chosen\n"
    "for tcp://host:0:\n"
    "  listening unix:///tmp/app.sock\n"
    "  listening tcp://127.0.0.1:40123\n"
    "Errors go to stderr; -v adds connections and registrations, -vv everything.\n"
    "SIGINT or SIGTERM stop it cleanly (exit 0): calls in flight fail with\n"
    "channel_disconnected on the callers' side, connections are closed.\n"
    "\n"
    "Options:\n"
    "  --mode MODE        file mode of Unix sockets, octal (default 0600: this user)\n"
    "  -v, --verbose      log connections and registrations (-vv: debug)\n"
    "  -h, --help         this help\n"
    "\n"
    "Exit status: 0 stopped by a signal, 64 usage (bad address), 69 cannot listen.\n"
    "\n"
    "Examples:\n"
    "  cmdipc hub unix://$XDG_RUNTIME_DIR/app.sock\n"
    "  cmdipc hub -v unix:///tmp/app.sock tcp://127.0.0.1:7400\n"
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
    if (rc != 0 || n == 0) {
        free(addrs);
        return rc < 0 ? 0 : rc ? rc : cli_usage("expected at least one ADDR");
    }

    cmdipc_registry_opts_t ro;
    cmdipc_registry_opts_init(&ro);
    ro.id = "hub";
    ro.builtin_commands = 1;
    ro.log_level = cli_log_level(CMDIPC_LOG_WARN);
    if ((rc = cli_app_init(&h.app, &ro, 1)) != 0) {
        free(addrs);
        return rc;
    }
    h.app.data = &h;
    h.app.on_signal = hub_stop;

    cmdipc_listen_opts_t lo;
    cmdipc_listen_opts_init(&lo);
    lo.accept_cb = hub_accept;
    lo.accept_data = &h;
    if (h.has_mode)
        lo.mode = h.mode;
    for (int i = 0; i < n; i++) {
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
            int usage = rc == UV_EINVAL || rc == UV_EAFNOSUPPORT || rc == UV_ENAMETOOLONG;
            cli_error("cannot listen on %s: %s", addrs[i], cmdipc_strerror(rc));
            cli_app_finish(&h.app, usage ? CLI_EXIT_USAGE : CLI_EXIT_CONNECT);
            break;
        }
        printf("listening %s\n", url);
        fflush(stdout);
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
