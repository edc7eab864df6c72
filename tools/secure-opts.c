/* cmdipc — the command-line tool's --key, --peer-key and --allow (see
 * secure-opts.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "secure-opts.h"

static const char *key_path;
static cmdipc_pubkey_t peer_key;
static int has_peer_key;
static cmdipc_pubkey_t *allow;
static size_t n_allow;
static cmdipc_keypair_t *key;
static cmdipc_secure_opts_t opts;

static int bad_key(const char *opt, const char *arg, int rc) {
    return cli_usage("%s: '%s' is neither a public key (44 base64 characters) nor a "
                     "file holding one (%s)",
                     opt, arg, cmdipc_strerror(rc));
}

int cli_secure_option(const char *name, size_t len, const char *eq, int argc, char **argv,
                      int *i) {
    static const char *const names[] = {"key", "peer-key", "allow"};
    int which = -1;
    for (int k = 0; k < 3; k++)
        if (len == strlen(names[k]) && strncmp(name, names[k], len) == 0)
            which = k;
    if (which < 0)
        return -1;
    const char *arg = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
    if (arg == NULL)
        return cli_usage("option '--%s' needs a value", names[which]);
    int rc;
    switch (which) {
        case 0:
            key_path = arg;
            return 0;
        case 1:
            if ((rc = cmdipc_pubkey_parse(arg, &peer_key)) != 0)
                return bad_key("--peer-key", arg, rc);
            has_peer_key = 1;
            return 0;
        default: {
            cmdipc_pubkey_t k;
            if ((rc = cmdipc_pubkey_parse(arg, &k)) != 0)
                return bad_key("--allow", arg, rc);
            cmdipc_pubkey_t *a = realloc(allow, (n_allow + 1) * sizeof(*a));
            if (a == NULL)
                return CLI_EXIT_OTHER;
            allow = a;
            allow[n_allow++] = k;
            return 0;
        }
    }
}

static void release(void) {
    cmdipc_keypair_free(key);
    free(allow);
}

const cmdipc_secure_opts_t *cli_secure_opts(const char *url, int dialer, int *rc) {
    *rc = 0;
    if (url == NULL || strstr(url, "+sodium://") == NULL)
        return NULL;
    if (key_path == NULL) {
        *rc = cli_usage("%s needs --key FILE (make one with: cmdipc keygen FILE)", url);
        return NULL;
    }
    if (dialer && !has_peer_key) {
        *rc = cli_usage("%s needs --peer-key: the listener's public key (its FILE.pub)",
                        url);
        return NULL;
    }
    if (key == NULL) {
        int st = cmdipc_keypair_load(key_path, &key);
        if (st != 0) {
            cli_error("cannot load the key %s: %s%s", key_path, cmdipc_strerror(st),
                      st == CMDIPC_EKEYFILE ? " (chmod 600 it)" : "");
            *rc = st == CMDIPC_EKEYFILE || st == UV_EINVAL ? CLI_EXIT_USAGE
                                                           : CLI_EXIT_OTHER;
            return NULL;
        }
        atexit(release);
    }
    if (!dialer && n_allow == 0)
        cli_error("warning: %s has no --allow: every dialer will be refused", url);
    cmdipc_secure_opts_init(&opts);
    opts.key = key;
    opts.peer_key = dialer ? &peer_key : NULL;
    opts.allow = allow;
    opts.n_allow = n_allow;
    return &opts;
}
