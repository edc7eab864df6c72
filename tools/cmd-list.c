/* cmdipc — `cmdipc list ADDR` and `cmdipc describe ADDR COMMAND`: the commands
 * reachable at ADDR, with their owners and schemas. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ===========================================================================
 * list ADDR, describe ADDR COMMAND
 */

static const char list_help[] =
    "Usage: cmdipc list [OPTIONS] ADDR\n"
    "\n"
    "Prints the commands reachable at ADDR, one per line, sorted by id: the id, the\n"
    "owner and the description. The owner is the process serving the command as\n"
    "the hub knows it: name[pid] for a peer on a Unix socket (its pid and\n"
    "/proc/PID/comm), host:port for a TCP peer, 'local' for the registry at ADDR\n"
    "itself. A hub answers with every command of the mesh (its command\n"
    "cmdipc.commands); any other registry is asked with list.commands.request and\n"
    "answers with its own commands.\n"
    "\n" ADDR_TEXT "\n"
    "Options:\n"
    "  --json                       one JSON object per line (NDJSON):\n"
    "                               {\"id\", \"description\"?, \"schema\"?, "
    "\"channel\"?,\n"
    "                               \"peer\"?: {\"pid\", \"uid\", \"gid\", "
    "\"name\"} or {\"address\"},\n"
    "                               \"local\"}\n"
    "  -s, --schema                 also print each command's schema (request and\n"
    "                               response JSON Schemas, as declared)\n"
    "  --no-header                  no header line\n"
    "  -t, --timeout DURATION       give up after DURATION (default 30s)\n" CONNECT_OPTS
    "\n" DURATIONS "\n"
    "Exit status: 0 ok, 13 timeout, 14 connection lost, 64 usage, 69 cannot connect\n"
    "(the table in 'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc list unix:///tmp/app.sock\n"
    "  cmdipc list --schema /tmp/app.sock\n"
    "  cmdipc list --json tcp://127.0.0.1:7400 | grep '\"math\\.'\n";

static const char describe_help[] =
    "Usage: cmdipc describe [OPTIONS] ADDR COMMAND\n"
    "\n"
    "Prints what ADDR knows of COMMAND: its id, description, owner (see 'cmdipc\n"
    "list --help') and schema, indented. With --json, the command as one JSON\n"
    "object (the line 'cmdipc list --json' prints for it).\n"
    "\n" ADDR_TEXT "\n"
    "Options:\n"
    "  -t, --timeout DURATION       give up after DURATION (default 30s)\n" CONNECT_OPTS
    "\n" DURATIONS "\n"
    "Exit status: 0 ok, 10 COMMAND is not reachable at ADDR, 13 timeout, 14\n"
    "connection lost, 64 usage, 69 cannot connect (see 'cmdipc --help').\n"
    "\n"
    "Examples:\n"
    "  cmdipc describe unix:///tmp/app.sock math.add\n"
    "  cmdipc describe --json /tmp/app.sock math.add | jq .schema.request\n";

typedef struct list_s {
    client_t c;
    const char *command; /* describe */
} list_t;

/* The owner as printed: "local", name[pid], host:port, or the channel. */
static void owner_text(json_t *cmd, char *buf, size_t size) {
    json_t *peer = json_object_get(cmd, "peer");
    const char *channel = json_string_value(json_object_get(cmd, "channel"));
    const char *name = json_string_value(json_object_get(peer, "name"));
    const char *address = json_string_value(json_object_get(peer, "address"));
    json_t *pid = json_object_get(peer, "pid");
    if (json_is_true(json_object_get(cmd, "local")) && channel == NULL)
        snprintf(buf, size, "local");
    else if (json_is_integer(pid))
        snprintf(buf, size, "%s[%lld]", name ? name : "?",
                 (long long)json_integer_value(pid));
    else if (address != NULL)
        snprintf(buf, size, "%s", address);
    else
        snprintf(buf, size, "%s", channel ? channel : "-");
}

static int print_line_json(json_t *v) {
    if (cli_quiet)
        return 0;
    json_dumpf(v, stdout, cli_json_flags(v, 0));
    fputc('\n', stdout);
    return 0;
}

static int print_commands(list_t *l, json_t *cmds) {
    size_t i, width = 7, owidth = 5;
    char owner[160];
    json_t *c;
    if (cli_quiet)
        return 0;
    if (cli_json) {
        json_array_foreach(cmds, i, c) { print_line_json(c); }
        return cli_flush();
    }
    json_array_foreach(cmds, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (strlen(id) > width)
            width = strlen(id);
        owner_text(c, owner, sizeof(owner));
        if (strlen(owner) > owidth)
            owidth = strlen(owner);
    }
    if (width > 40)
        width = 40;
    if (owidth > 30)
        owidth = 30;
    if (!l->c.o.no_header)
        printf("%-*s  %-*s  %s\n", (int)width, "COMMAND", (int)owidth, "OWNER",
               "DESCRIPTION");
    json_array_foreach(cmds, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *desc = json_string_value(json_object_get(c, "description"));
        owner_text(c, owner, sizeof(owner));
        printf("%-*s  %-*s  %s\n", (int)width, id, (int)owidth, owner, desc ? desc : "");
        json_t *schema = json_object_get(c, "schema");
        if (l->c.o.schema && schema != NULL) {
            fputs("    schema: ", stdout);
            json_dumpf(schema, stdout, cli_json_flags(schema, 0));
            fputc('\n', stdout);
        }
    }
    return cli_flush();
}

static void list_got(client_t *c, int status, json_t *cmds, const char *message) {
    list_t *l = (list_t *)c;
    if (status != 0) {
        cli_app_fail(&c->app, status, message);
        return;
    }
    cli_app_finish(&c->app, print_commands(l, cmds));
}

static void list_ready(client_t *c) { fetch_commands(c, list_got); }

int cmd_list(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"schema", 's', 0, OPT_SCHEMA},
        {"no-header", 0, 0, OPT_NO_HEADER},
        {"timeout", 't', 1, OPT_TIMEOUT},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    list_t l;
    memset(&l, 0, sizeof(l));
    client_opts_init(&l.c.o);
    char *pos[1];
    const char *url;
    int n, rc = cli_parse(argc, argv, opts, client_opt, &l.c.o, list_help, pos, 1, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if ((rc = cli_take_addr(pos, &n, &url)) != 0)
        return rc;
    return client_run(&l.c, "cmdipc-list", url, list_ready, NULL, NULL);
}

static void describe_got(client_t *c, int status, json_t *cmds, const char *message) {
    list_t *l = (list_t *)c;
    char owner[160];
    if (status != 0) {
        cli_app_fail(&c->app, status, message);
        return;
    }
    json_t *cmd = find_command(cmds, l->command);
    if (cmd == NULL) {
        cli_error_code("not_found");
        cli_error("%s%s is not reachable at %s",
                  cli_json ? "" : "not_found: ", l->command, c->app.url);
        cli_app_finish(&c->app, CLI_EXIT_NOTFOUND);
        return;
    }
    if (cli_json) {
        print_line_json(cmd);
        cli_app_finish(&c->app, cli_flush());
        return;
    }
    if (cli_quiet) {
        cli_app_finish(&c->app, 0);
        return;
    }
    const char *desc = json_string_value(json_object_get(cmd, "description"));
    const char *channel = json_string_value(json_object_get(cmd, "channel"));
    json_t *schema = json_object_get(cmd, "schema");
    owner_text(cmd, owner, sizeof(owner));
    printf("command:     %s\n", l->command);
    printf("description: %s\n", desc ? desc : "(none)");
    if (channel != NULL && strcmp(channel, owner) != 0)
        printf("owner:       %s (channel %s)\n", owner, channel);
    else
        printf("owner:       %s\n", owner);
    if (schema == NULL) {
        printf("schema:      (none)\n");
    } else {
        char *text = json_dumps(schema, cli_json_flags(schema, 1));
        printf("schema:\n");
        for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
            next = strchr(line, '\n');
            if (next != NULL)
                *next++ = '\0';
            printf("  %s\n", line);
        }
        free(text);
    }
    cli_app_finish(&c->app, cli_flush());
}

static void describe_ready(client_t *c) { fetch_commands(c, describe_got); }

int cmd_describe(int argc, char **argv) {
    static const cli_opt_t opts[] = {
        {"timeout", 't', 1, OPT_TIMEOUT},
        {"connect-timeout", 0, 1, OPT_CONNECT_TIMEOUT},
        {NULL, 0, 0, 0},
    };
    list_t l;
    memset(&l, 0, sizeof(l));
    client_opts_init(&l.c.o);
    char *pos[2];
    const char *url;
    int n,
        rc = cli_parse(argc, argv, opts, client_opt, &l.c.o, describe_help, pos, 2, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if ((rc = cli_take_addr(pos, &n, &url)) != 0)
        return rc;
    if (n != 1)
        return cli_usage("expected ADDR COMMAND (ADDR may come from CMDIPC_ADDR)");
    l.command = pos[0];
    if ((rc = cli_check_id("COMMAND", l.command)) != 0)
        return rc;
    return client_run(&l.c, "cmdipc-describe", url, describe_ready, NULL, NULL);
}
