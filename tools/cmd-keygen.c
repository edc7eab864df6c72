/* cmdipc keygen PATH — a static key pair for the secure transport: the
 * secret key to PATH (mode 0600, never over an existing file), the public
 * key as base64 text to PATH.pub, and the public key printed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char keygen_help[] =
    "Usage: cmdipc keygen PATH\n"
    "\n"
    "Makes a static X25519 key pair for tcp+sodium:// and unix+sodium:// addresses:\n"
    "the secret key goes to PATH (mode 0600; an existing file is never replaced),\n"
    "the public key, base64, to PATH.pub and to stdout. Give PATH to --key, and the\n"
    "public key (or PATH.pub) to the other side's --peer-key or --allow.\n"
    "\n"
    "Options:\n"
    "  -q, --quiet                  do not print the public key\n"
    "  -v, --verbose                say what happens on stderr\n"
    "  -h, --help                   this help\n"
    "\n"
    "Exit status: 0 written, 64 usage, 1 the files could not be written (an\n"
    "existing PATH is never replaced).\n"
    "\n"
    "Examples:\n"
    "  cmdipc keygen ~/.config/cmdipc/hub.key\n"
    "  cmdipc hub tcp+sodium://0.0.0.0:7400 --key ~/.config/cmdipc/hub.key \\\n"
    "      --allow \"$(cat client.key.pub)\"\n";

static int no_opt(int key, const char *arg, void *data) {
    (void)key, (void)arg, (void)data;
    return CLI_EXIT_USAGE;
}

int cmd_keygen(int argc, char **argv) {
    static const cli_opt_t opts[] = {{NULL, 0, 0, 0}};
    char *pos[1], b64[CMDIPC_KEY_B64];
    int n, rc = cli_parse(argc, argv, opts, no_opt, NULL, keygen_help, pos, 1, &n);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (n != 1)
        return cli_usage("expected PATH");
    size_t len = strlen(pos[0]);
    char *pub = malloc(len + 5);
    if (pub == NULL)
        return CLI_EXIT_OTHER;
    memcpy(pub, pos[0], len);
    memcpy(pub + len, ".pub", 5);
    cmdipc_keypair_t *kp = NULL;
    cmdipc_pubkey_t pk;
    int fd = -1;
    if ((rc = cmdipc_keypair_generate(&kp)) != 0) {
        cli_error("cannot make a key: %s", cmdipc_strerror(rc));
        rc = CLI_EXIT_OTHER;
        goto out;
    }
    cmdipc_keypair_public(kp, &pk);
    cmdipc_pubkey_to_base64(&pk, b64);
    /* PATH.pub first: nothing is left behind when PATH cannot be made. */
    fd = open(pub, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        cli_error("cannot create %s: %s", pub, strerror(errno));
        rc = CLI_EXIT_OTHER;
        goto out;
    }
    if (write(fd, b64, strlen(b64)) != (ssize_t)strlen(b64) || write(fd, "\n", 1) != 1 ||
        close(fd) != 0) {
        fd = -1;
        cli_error("cannot write %s: %s", pub, strerror(errno));
        unlink(pub);
        rc = CLI_EXIT_OTHER;
        goto out;
    }
    fd = -1;
    if ((rc = cmdipc_keypair_save(kp, pos[0])) != 0) {
        cli_error("cannot write the secret key to %s: %s", pos[0], cmdipc_strerror(rc));
        unlink(pub);
        rc = CLI_EXIT_OTHER;
        goto out;
    }
    if (!cli_quiet)
        printf("%s\n", b64);
    cli_info(1, "secret key in %s (mode 0600), public key in %s", pos[0], pub);
    rc = fflush(stdout) == 0 ? 0 : CLI_EXIT_OTHER;
out:
    if (fd >= 0)
        close(fd);
    cmdipc_keypair_free(kp);
    free(pub);
    return rc;
}
