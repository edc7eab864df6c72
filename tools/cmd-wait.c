/* cmdipc — `cmdipc wait ADDR [COMMAND...]`: until ADDR answers and serves them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ===========================================================================
 * wait ADDR [COMMAND...]
 */

static const char wait_help[] =
    "Usage: cmdipc wait [OPTIONS] ADDR [COMMAND...]\n"
    "\n"
    "Waits until the registry at ADDR answers and every COMMAND is reachable\n"
    "through it (served by it or, for a hub, by anything connected to it), then\n"
    "exits 0. Meant for scripts that start a hub and services in the background\n"
    "and must not call them before they are up. It keeps trying to connect (a\n"
    "socket that does not exist yet, a refused connection) and looks at the\n"
    "commands every 100 ms.\n"
    "\n" ADDR_TEXT "\n"
    "Options:\n"
    "  -t, --timeout DURATION       give up after DURATION (default 30s; 0: wait\n"
    "                               forever)\n"
    "  -q, --quiet                  no warnings\n"
    "  --json                       errors as JSON lines on stderr\n"
    "  -v, --verbose                say what happens on stderr (-vv: debug)\n"
    "  -h, --help                   this help\n"
    "\n" DURATIONS "\n"
    "Exit status: 0 ready, 10 ADDR answers but a COMMAND is still not reachable\n"
    "when the time is up, 64 usage, 69 ADDR did not answer in time.\n"
    "\n"
    "Examples:\n"
    "  cmdipc hub /tmp/app.sock & cmdipc wait /tmp/app.sock\n"
    "  cmdipc wait --timeout 5 unix:///tmp/app.sock math.add math.mul && ./client\n"
    "  CMDIPC_ADDR=/tmp/app.sock cmdipc wait sys.uptime\n";

static void wait_ready(client_t *c) {
    cli_info(1, "%s is ready", c->app.url);
    cli_app_finish(&c->app, CLI_EXIT_OK);
}

int cmd_wait(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"timeout", 't', 1, OPT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    client_t c;
    memset(&c, 0, sizeof(c));
    client_opts_init(&c.o);
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    const char *url;
    if (pos == NULL)
        return CLI_EXIT_OTHER;
    int n, rc = cli_parse(argc, argv, opts, client_opt, &c.o, wait_help, pos, argc, &n);
    if (rc == 0)
        rc = cli_take_addr(pos, &n, &url);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = cli_check_id("COMMAND", pos[i]);
    if (rc == 0) {
        c.waiting = 1;
        c.need = pos;
        c.n_need = n;
        c.wait_ms = c.o.has_timeout ? c.o.timeout_ms : WAIT_TIMEOUT_DEFAULT;
        c.o.has_timeout = 0; /* the look at the commands has the default deadline */
        rc = client_run(&c, "cmdipc-wait", url, wait_ready, NULL, NULL);
    }
    free(pos);
    return rc < 0 ? 0 : rc;
}
