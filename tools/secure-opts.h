/* cmdipc — the command-line tool's secure options (secure-opts.c), shared by
 * every sub-command that connects or listens:
 *
 *   --key FILE          this side's secret key (written by `cmdipc keygen`)
 *   --peer-key B64|FILE the listener's public key (dialers: the pin)
 *   --allow B64|FILE    a dialer key the listener admits (repeatable)
 *
 * They apply to tcp+sodium:// and unix+sodium:// addresses. */
#ifndef CMDIPC_CLI_SECURE_OPTS_H
#define CMDIPC_CLI_SECURE_OPTS_H

#include <stddef.h>

#include <cmdipc.h>

#define CLI_SECURE_HELP                                                                  \
    "Secure addresses (tcp+sodium://host:port, unix+sodium:///path):\n"                  \
    "  --key FILE            this side's secret key (cmdipc keygen FILE)\n"              \
    "  --peer-key B64|FILE   dialing: the listener's public key (required)\n"            \
    "  --allow B64|FILE      listening: a dialer key to admit (repeatable; none\n"       \
    "                        given: every dialer is refused)\n"

/* Called by cli_parse() for each long option: -1 when name (len bytes, eq
 * the '=' in it or NULL) is not one of the three, 0 when it was taken (its
 * value from eq or argv[++*i]), else an exit status after printing why. */
int cli_secure_option(const char *name, size_t len, const char *eq, int argc, char **argv,
                      int *i);

/* The secure options for listening on (dialer 0) or dialing (1) url: NULL
 * for a plain address; for a +sodium address the key, pin and allow-list
 * given (loaded now). On a missing --key or --peer-key, or a key that cannot
 * be read, prints why and sets *rc to the exit status (else 0). The result
 * stays valid until exit. */
const cmdipc_secure_opts_t *cli_secure_opts(const char *url, int dialer, int *rc);

#endif
