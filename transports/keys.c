/* cmdipc — static X25519 key pairs and public keys for the secure transport:
 * generation, guarded storage of secret keys, base64 text, key files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secure_int.h"

#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL

static int keypair_alloc(cmdipc_keypair_t **out) {
    if ((sodium_init() < 0 ? UV_EIO : 0) != 0)
        return UV_EIO;
    cmdipc_keypair_t *kp = calloc(1, sizeof(*kp));
    if (kp == NULL)
        return UV_ENOMEM;
    kp->sk = sodium_malloc(CMDIPC_KEY_BYTES);
    if (kp->sk == NULL) {
        free(kp);
        return UV_ENOMEM;
    }
    *out = kp;
    return 0;
}

/* The secret key is readable only between these two calls. */
static void sk_open(const cmdipc_keypair_t *kp) { sodium_mprotect_readonly(kp->sk); }
static void sk_close(const cmdipc_keypair_t *kp) { sodium_mprotect_noaccess(kp->sk); }

void cmdipc_keypair_free(cmdipc_keypair_t *kp) {
    if (kp == NULL)
        return;
    sodium_free(kp->sk); /* wipes it */
    free(kp);
}

int cmdipc__pubkey_low_order(const uint8_t pub[32]) {
    static const uint8_t probe[32] = {0x58, 1,  2,  3,  4,  5,  6,  7,  8,  9,   10,
                                      11,   12, 13, 14, 15, 16, 17, 18, 19, 20,  21,
                                      22,   23, 24, 25, 26, 27, 28, 29, 30, 0x41};
    uint8_t out[32];
    /* Any scalar maps a small-subgroup point into it; clamping clears the
     * cofactor, so the result is all zeros, which libsodium refuses. */
    int rc = crypto_scalarmult(out, probe, pub);
    sodium_memzero(out, sizeof(out));
    return rc != 0;
}

static int keypair_finish(cmdipc_keypair_t *kp) {
    crypto_scalarmult_base(kp->pk, kp->sk);
    sk_close(kp);
    if (cmdipc__pubkey_low_order(kp->pk))
        return UV_EINVAL;
    return 0;
}

int cmdipc_keypair_generate(cmdipc_keypair_t **out) {
    cmdipc_keypair_t *kp;
    int rc;
    if (out == NULL)
        return UV_EINVAL;
    *out = NULL;
    if ((rc = keypair_alloc(&kp)) != 0)
        return rc;
    randombytes_buf(kp->sk, CMDIPC_KEY_BYTES);
    if ((rc = keypair_finish(kp)) != 0) {
        cmdipc_keypair_free(kp);
        return rc;
    }
    *out = kp;
    return 0;
}

int cmdipc_keypair_from_secret(const uint8_t secret[CMDIPC_KEY_BYTES],
                               cmdipc_keypair_t **out) {
    cmdipc_keypair_t *kp;
    int rc;
    if (out == NULL || secret == NULL)
        return UV_EINVAL;
    *out = NULL;
    if ((rc = keypair_alloc(&kp)) != 0)
        return rc;
    memcpy(kp->sk, secret, CMDIPC_KEY_BYTES);
    if ((rc = keypair_finish(kp)) != 0) {
        cmdipc_keypair_free(kp);
        return rc;
    }
    *out = kp;
    return 0;
}

int cmdipc__keypair_copy(const cmdipc_keypair_t *kp, cmdipc_keypair_t **out) {
    cmdipc_keypair_t *c;
    int rc = keypair_alloc(&c);
    if (rc != 0)
        return rc;
    sk_open(kp);
    memcpy(c->sk, kp->sk, CMDIPC_KEY_BYTES);
    sk_close(kp);
    memcpy(c->pk, kp->pk, CMDIPC_KEY_BYTES);
    sk_close(c);
    *out = c;
    return 0;
}

int cmdipc__keypair_dh(const cmdipc_keypair_t *kp, uint8_t out[32],
                       const uint8_t pub[32]) {
    sk_open(kp);
    int rc = crypto_scalarmult(out, kp->sk, pub);
    sk_close(kp);
    return rc == 0 ? 0 : CMDIPC_EHSBADKEY;
}

void cmdipc_keypair_public(const cmdipc_keypair_t *kp, cmdipc_pubkey_t *out) {
    memcpy(out->bytes, kp->pk, CMDIPC_KEY_BYTES);
}

/* ---------------------------------------------------------------------------
 * Text and files. */

/* Decodes the base64 text of 32 bytes (white space around it ignored). */
static int b64_key(const char *text, size_t len, uint8_t out[32]) {
    while (len > 0 &&
           (text[0] == ' ' || text[0] == '\t' || text[0] == '\n' || text[0] == '\r'))
        text++, len--;
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' ||
                       text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    size_t n = 0;
    const char *end;
    if (len != CMDIPC_KEY_B64 - 1 ||
        sodium_base642bin(out, 32, text, len, NULL, &n, &end, B64_VARIANT) != 0 ||
        n != 32 || end != text + len)
        return UV_EINVAL;
    return 0;
}

int cmdipc_pubkey_from_base64(const char *text, cmdipc_pubkey_t *out) {
    uint8_t k[32];
    if (text == NULL || out == NULL)
        return UV_EINVAL;
    if ((sodium_init() < 0 ? UV_EIO : 0) != 0)
        return UV_EIO;
    if (b64_key(text, strlen(text), k) != 0)
        return UV_EINVAL;
    if (cmdipc__pubkey_low_order(k))
        return CMDIPC_EHSBADKEY;
    memcpy(out->bytes, k, 32);
    return 0;
}

void cmdipc_pubkey_to_base64(const cmdipc_pubkey_t *pk, char out[CMDIPC_KEY_B64]) {
    sodium_bin2base64(out, CMDIPC_KEY_B64, pk->bytes, CMDIPC_KEY_BYTES, B64_VARIANT);
}

int cmdipc_pubkey_equal(const cmdipc_pubkey_t *a, const cmdipc_pubkey_t *b) {
    return sodium_memcmp(a->bytes, b->bytes, CMDIPC_KEY_BYTES) == 0;
}

/* Reads a small text file (at most 255 bytes) into buf, NUL-terminated. */
static int read_small(int fd, char *buf, size_t size, size_t *len) {
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return uv_translate_sys_error(errno);
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == size - 1)
            return UV_EINVAL; /* too long to be a key */
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}

int cmdipc_keypair_load(const char *path, cmdipc_keypair_t **out) {
    char *text = NULL;
    cmdipc_keypair_t *kp = NULL;
    struct stat st;
    size_t len = 0;
    int rc, fd;
    if (path == NULL || out == NULL)
        return UV_EINVAL;
    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return uv_translate_sys_error(errno);
    if (fstat(fd, &st) != 0) {
        rc = uv_translate_sys_error(errno);
        goto done;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        rc = CMDIPC_EKEYFILE;
        goto done;
    }
    if ((rc = keypair_alloc(&kp)) != 0)
        goto done;
    /* The text passes through guarded memory too. */
    if ((text = sodium_malloc(256)) == NULL) {
        rc = UV_ENOMEM;
        goto done;
    }
    if ((rc = read_small(fd, text, 256, &len)) != 0)
        goto done;
    if ((rc = b64_key(text, len, kp->sk)) != 0)
        goto done;
    if ((rc = keypair_finish(kp)) != 0)
        goto done;
    *out = kp;
    kp = NULL;
done:
    close(fd);
    if (text != NULL)
        sodium_free(text);
    cmdipc_keypair_free(kp);
    return rc;
}

int cmdipc_keypair_save(const cmdipc_keypair_t *kp, const char *path) {
    char *text;
    int rc = 0;
    if (kp == NULL || path == NULL)
        return UV_EINVAL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    /* The mode given to open() is masked by the umask: make sure. */
    if (fchmod(fd, 0600) != 0) {
        rc = uv_translate_sys_error(errno);
        goto done;
    }
    if ((text = sodium_malloc(CMDIPC_KEY_B64 + 1)) == NULL) {
        rc = UV_ENOMEM;
        goto done;
    }
    sk_open(kp);
    sodium_bin2base64(text, CMDIPC_KEY_B64, kp->sk, CMDIPC_KEY_BYTES, B64_VARIANT);
    sk_close(kp);
    text[CMDIPC_KEY_B64 - 1] = '\n';
    size_t off = 0;
    while (off < CMDIPC_KEY_B64) {
        ssize_t w = write(fd, text + off, CMDIPC_KEY_B64 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = uv_translate_sys_error(errno);
            break;
        }
        off += (size_t)w;
    }
    sodium_free(text);
    if (rc == 0 && fsync(fd) != 0)
        rc = uv_translate_sys_error(errno);
done:
    close(fd);
    if (rc != 0)
        unlink(path);
    return rc;
}

int cmdipc_pubkey_parse(const char *text_or_path, cmdipc_pubkey_t *out) {
    char buf[256];
    size_t len;
    if (text_or_path == NULL || out == NULL)
        return UV_EINVAL;
    int rc = cmdipc_pubkey_from_base64(text_or_path, out);
    if (rc != UV_EINVAL)
        return rc;
    int fd = open(text_or_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? UV_EINVAL : uv_translate_sys_error(errno);
    rc = read_small(fd, buf, sizeof(buf), &len);
    close(fd);
    if (rc != 0)
        return rc;
    return cmdipc_pubkey_from_base64(buf, out);
}
