/* cmdipc — the secure transport: mutually authenticated, encrypted channels.
 *
 * Addresses tcp+sodium://host:port and unix+sodium:///path run a
 * Noise_XK_25519_ChaChaPoly_SHA256 handshake (built from libsodium 1.0.18
 * primitives) on connect, then carry the same NDJSON lines as tcp:// and
 * unix:// inside crypto_secretstream_xchacha20poly1305 frames, one stream per
 * direction. Limits, reconnect and everything the registry does are those of
 * the plain stream transports (cmdipc/transport.h).
 *
 * What is authenticated: the dialer knows the listener's public key in
 * advance (the pin) and the handshake proves the listener holds the matching
 * secret key; the listener learns the dialer's public key, proven the same
 * way, and admits it only if its policy says so (allow-list, callback, or an
 * explicit allow-any). Every frame is encrypted and authenticated; a changed,
 * replayed, reordered, dropped or truncated frame closes the connection.
 * What is not: the network addresses, the timing and sizes of frames, and
 * anything about the peer beyond its key.
 *
 * Keys are static X25519 key pairs, one per registry or process. Their text
 * form is standard base64 (44 characters). Secret keys are kept in
 * sodium_malloc'd memory, inaccessible (sodium_mprotect_noaccess) while not
 * in use, and wiped when freed. A key pair is used from one thread at a time;
 * listeners and dialers keep their own copy, so the one given in the options
 * may be freed once cmdipc_listen()/cmdipc_connect() returned.
 *
 * Secure options are passed through the `secure` member of
 * cmdipc_listen_opts_t and cmdipc_connect_opts_t; a +sodium address without
 * them is refused with UV_EINVAL.
 */
#ifndef CMDIPC_SECURE_H
#define CMDIPC_SECURE_H

#include <stddef.h>
#include <stdint.h>

#include "cmdipc/channel.h"
#include "cmdipc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CMDIPC_KEY_BYTES 32 /* an X25519 public or secret key */
#define CMDIPC_KEY_B64   45 /* base64 text of a key, NUL included */

/* A public key: 32 bytes. */
typedef struct cmdipc_pubkey_s {
    uint8_t bytes[CMDIPC_KEY_BYTES];
} cmdipc_pubkey_t;

/* A static key pair (opaque): the public key and the secret key, the latter
 * in guarded memory. */
typedef struct cmdipc_keypair_s cmdipc_keypair_t;

/* A fresh key pair from libsodium's CSPRNG. Returns 0, UV_ENOMEM, UV_EIO
 * (libsodium could not be initialised). */
CMDIPC_EXTERN int cmdipc_keypair_generate(cmdipc_keypair_t **out) CMDIPC_WUR;

/* The key pair of a 32-byte secret key (copied; wipe your copy). Returns 0,
 * UV_EINVAL (NULL, or a secret key whose public key is of low order),
 * UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_keypair_from_secret(const uint8_t secret[CMDIPC_KEY_BYTES],
                                             cmdipc_keypair_t **out) CMDIPC_WUR;

/* Loads a secret key file: the base64 text of the 32-byte secret key (a
 * trailing newline is allowed). The file must be a regular file not readable
 * or writable by group or others (mode 0600 or stricter): otherwise
 * CMDIPC_EKEYFILE and nothing is read. Returns 0, CMDIPC_EKEYFILE, UV_EINVAL
 * (not a key), UV_ENOENT and other open/read errors, UV_ENOMEM. */
CMDIPC_EXTERN int cmdipc_keypair_load(const char *path,
                                      cmdipc_keypair_t **out) CMDIPC_WUR;

/* Writes the secret key to path (created with mode 0600; an existing file is
 * refused with UV_EEXIST) as base64 text and a newline. Returns 0 or an
 * open/write error. */
CMDIPC_EXTERN int cmdipc_keypair_save(const cmdipc_keypair_t *kp,
                                      const char *path) CMDIPC_WUR;

/* The public key of kp. */
CMDIPC_EXTERN void cmdipc_keypair_public(const cmdipc_keypair_t *kp,
                                         cmdipc_pubkey_t *out);

/* Wipes and frees a key pair. NULL is ignored. */
CMDIPC_EXTERN void cmdipc_keypair_free(cmdipc_keypair_t *kp);

/* Parses the base64 text of a public key (44 characters; surrounding white
 * space ignored). Low-order points (the 14 encodings of X25519's small
 * subgroup, which would make the key exchange predictable) are refused.
 * Returns 0, UV_EINVAL (not a key), CMDIPC_EHSBADKEY (a low-order key). */
CMDIPC_EXTERN int cmdipc_pubkey_from_base64(const char *text,
                                            cmdipc_pubkey_t *out) CMDIPC_WUR;

/* Writes the base64 text of pk (44 characters and a NUL) into out. */
CMDIPC_EXTERN void cmdipc_pubkey_to_base64(const cmdipc_pubkey_t *pk,
                                           char out[CMDIPC_KEY_B64]);

/* A public key given as base64 text, or as the path of a file holding it
 * (such as the PATH.pub that `cmdipc keygen PATH` writes). Returns 0,
 * UV_EINVAL, CMDIPC_EHSBADKEY, or the file's open/read error. */
CMDIPC_EXTERN int cmdipc_pubkey_parse(const char *text_or_path,
                                      cmdipc_pubkey_t *out) CMDIPC_WUR;

/* 1 if a and b are the same key (constant time), else 0. */
CMDIPC_EXTERN int cmdipc_pubkey_equal(const cmdipc_pubkey_t *a, const cmdipc_pubkey_t *b);

/* The listener's decision on a dialer whose key was proven: return 0 to
 * admit it, anything else to refuse it (the dialer gets CMDIPC_EPEERREJECTED
 * and does not reconnect). Called on the listener's loop, inside the
 * handshake; key and peer are valid during the call. */
typedef int (*cmdipc_authorize_cb)(const cmdipc_pubkey_t *key,
                                   const cmdipc_peer_info_t *peer, void *data);

#define CMDIPC_SECURE_OPTS_VERSION 1
typedef struct cmdipc_secure_opts_s {
    unsigned version; /* CMDIPC_SECURE_OPTS_VERSION */
    /* This side's static key pair (required; copied). */
    const cmdipc_keypair_t *key;
    /* Dialers: the listener's public key (required; copied). A listener
     * holding another key fails the handshake (CMDIPC_EHSAUTH, or
     * CMDIPC_EHSEOF when it drops us first). */
    const cmdipc_pubkey_t *peer_key;
    /* Listeners: who may connect. A dialer is admitted if allow_any is set,
     * or its key is one of allow[0..n_allow) (copied), or authorize returns
     * 0 for it (asked only for keys not in the list). An empty list and no
     * callback admit nobody. */
    const cmdipc_pubkey_t *allow;
    size_t n_allow;
    cmdipc_authorize_cb authorize;
    void *authorize_data;
    int allow_any;
    /* A handshake not finished this long after connect or accept is cut off
     * (CMDIPC_EHSTIMEOUT). Default 10000 ms. */
    uint64_t handshake_timeout_ms;
    /* Listeners: handshakes in progress at once; a new connection beyond it
     * closes the oldest incomplete one. Default 64. */
    unsigned max_handshakes;
    /* Liveness inside the encryption: a ping after ping_idle_ms without
     * anything received, and the connection closed after silence_ms without
     * anything received (CMDIPC_ETIMEDOUT). Defaults 20000 and 60000 ms;
     * 0 disables. */
    uint64_t ping_idle_ms;
    uint64_t silence_ms;
    /* Each direction re-keys its stream every rekey_frames frames (default
     * 1000) and on the first frame after rekey_ms (default 600000). */
    unsigned rekey_frames;
    uint64_t rekey_ms;
} cmdipc_secure_opts_t;

CMDIPC_EXTERN void cmdipc_secure_opts_init(cmdipc_secure_opts_t *opts);

/* The public key the peer on ch proved during the handshake. Returns 0, or
 * UV_ENOTSUP for a channel that is not secure, or UV_ENOTCONN while a
 * dialer's link is down. */
CMDIPC_EXTERN int cmdipc_channel_peer_key(const cmdipc_channel_t *ch,
                                          cmdipc_pubkey_t *out);

#ifdef __cplusplus
}
#endif
#endif /* CMDIPC_SECURE_H */
