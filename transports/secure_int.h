/* cmdipc — internals of the secure transport (not installed): keys, the
 * Noise XK handshake state machine (noise.c), the secretstream frame layer
 * (frame.c) and the glue between them and the stream transport (secure.c).
 *
 * The handshake and the frame layer do no I/O: they take and produce bytes,
 * so the tests drive them with the Noise test vector and the fuzz targets
 * feed them arbitrary input. */
#ifndef CMDIPC_SECURE_INT_H
#define CMDIPC_SECURE_INT_H

#include <sodium.h>

#include "transport_int.h"

/* ---------------------------------------------------------------------------
 * Keys (keys.c). */

struct cmdipc_keypair_s {
    uint8_t pk[CMDIPC_KEY_BYTES];
    uint8_t *sk; /* sodium_malloc'd; sodium_mprotect_noaccess while idle */
};

/* DH(our secret, pub) into out. Returns 0 or CMDIPC_EHSBADKEY (libsodium
 * refuses a low-order pub: the result would be all zeros). */
int cmdipc__keypair_dh(const cmdipc_keypair_t *kp, uint8_t out[32],
                       const uint8_t pub[32]);
/* A copy of kp in its own guarded memory. 0 or UV_ENOMEM. */
int cmdipc__keypair_copy(const cmdipc_keypair_t *kp, cmdipc_keypair_t **out);
/* 1 if pub is one of the 14 low-order encodings (tested by a DH with a
 * fixed scalar, which libsodium refuses for exactly those points). */
int cmdipc__pubkey_low_order(const uint8_t pub[32]);

/* ---------------------------------------------------------------------------
 * The handshake (noise.c): Noise_XK_25519_ChaChaPoly_SHA256.
 *
 *   -> e, es        (initiator: act 1)
 *   <- e, ee        (responder: act 2)
 *   -> s, se        (initiator: act 3)
 *
 * The Noise messages carry a payload (the test vector's); on the wire our
 * acts carry an empty one behind a version byte: 49, 49 and 65 bytes. */

#define CMDIPC__PROLOGUE      "cmdipc/xk1"
#define CMDIPC__HS_VERSION    0x01
#define CMDIPC__HS_ACT1       49
#define CMDIPC__HS_ACT2       49
#define CMDIPC__HS_ACT3       65
#define CMDIPC__HS_WIRE_BYTES (CMDIPC__HS_ACT1 + CMDIPC__HS_ACT2 + CMDIPC__HS_ACT3)

enum { CMDIPC__HS_INITIATOR = 1, CMDIPC__HS_RESPONDER = 2 };

/* What the state machine wants next. */
enum {
    CMDIPC__HS_WRITE = 1, /* write the next message */
    CMDIPC__HS_READ,      /* read the next message */
    CMDIPC__HS_SPLIT,     /* done: split into the transport keys */
    CMDIPC__HS_FAILED     /* a step failed: the handshake is dead (wiped) */
};

typedef struct cmdipc__hs_s {
    int role;
    int msgs; /* messages written or read so far (0..3) */
    int failed;
    uint8_t h[32];  /* handshake hash (kept after split: the session id) */
    uint8_t ck[32]; /* chaining key */
    uint8_t k[32];  /* cipher key, when has_k */
    uint64_t n;     /* nonce of k */
    int has_k;
    const cmdipc_keypair_t *s; /* our static key (borrowed) */
    uint8_t e_pk[32], e_sk[32];
    int e_fixed;    /* test hook: e_sk was injected */
    uint8_t rs[32]; /* remote static: known (initiator) or learned (responder) */
    uint8_t re[32];
} cmdipc__hs_t;

/* Initialise for role with the prologue, our static key pair and (initiator
 * only) the responder's static public key. */
void cmdipc__hs_init(cmdipc__hs_t *hs, int role, const uint8_t *prologue,
                     size_t prologue_len, const cmdipc_keypair_t *s,
                     const uint8_t rs[32]);
int cmdipc__hs_action(const cmdipc__hs_t *hs);
/* Writes the next Noise message carrying payload into out (room for cap
 * bytes). Returns 0 with *len, UV_EINVAL (wrong action, no room),
 * CMDIPC_EHSBADKEY. Any failure kills the handshake. */
int cmdipc__hs_write(cmdipc__hs_t *hs, const uint8_t *payload, size_t plen, uint8_t *out,
                     size_t cap, size_t *len);
/* Reads the next Noise message (exactly len bytes) and decrypts its payload
 * into payload (room for cap bytes; may be NULL with cap 0). Returns 0 with
 * *plen, CMDIPC_EHSAUTH (a tag did not verify), CMDIPC_EHSBADKEY, UV_EINVAL
 * (wrong action, size). Any failure kills the handshake. */
int cmdipc__hs_read(cmdipc__hs_t *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                    size_t cap, size_t *plen);
/* After the last message: the initiator->responder and responder->initiator
 * keys, then wipes everything secret (ephemeral keys, ck, k). */
int cmdipc__hs_split(cmdipc__hs_t *hs, uint8_t i2r[32], uint8_t r2i[32]);
/* Wipes the secrets (also done by split and by any failure). */
void cmdipc__hs_wipe(cmdipc__hs_t *hs);
/* Test hook: 1 if the ephemeral secret, ck and k are all zero. */
int cmdipc__hs_wiped(const cmdipc__hs_t *hs);
/* Test hook: the next ephemeral key pair comes from this secret key instead
 * of the CSPRNG (the test vector's). */
void cmdipc__hs_set_ephemeral(cmdipc__hs_t *hs, const uint8_t sk[32]);

/* The wire acts: a version byte and the Noise message with an empty
 * payload. write_act fills out (CMDIPC__HS_ACT1..3 bytes, *len set);
 * read_act takes exactly the act's size and returns CMDIPC_EHSVERSION for
 * another version byte, else what cmdipc__hs_read returns. */
int cmdipc__hs_write_act(cmdipc__hs_t *hs, uint8_t *out, size_t cap, size_t *len);
int cmdipc__hs_read_act(cmdipc__hs_t *hs, const uint8_t *in, size_t len);
/* The size of the act to read or write next, 0 when there is none. */
size_t cmdipc__hs_act_size(const cmdipc__hs_t *hs);

/* ---------------------------------------------------------------------------
 * Frames (frame.c): 4-byte big-endian L, then C = secretstream_push(M, ad =
 * the 4 length bytes, tag). M is one or more whole NDJSON lines, or a control
 * frame: a 0x00 byte (which no line starts with: lines are JSON objects and
 * the line layer refuses NUL) then {"t":"ready"|"ping"|"pong"|"bye"} or
 * {"t":"error","code":"..."}. */

#define CMDIPC__FRAME_HDR     4
#define CMDIPC__FRAME_MIN     20
#define CMDIPC__FRAME_BATCH   (64 * 1024) /* lines per frame, unless one is longer */
#define CMDIPC__STREAM_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define CMDIPC__FRAME_ABYTES  crypto_secretstream_xchacha20poly1305_ABYTES

enum {
    CMDIPC__CTL_NONE = 0,
    CMDIPC__CTL_READY,
    CMDIPC__CTL_PING,
    CMDIPC__CTL_PONG,
    CMDIPC__CTL_BYE,
    CMDIPC__CTL_ERROR,
    CMDIPC__CTL_UNKNOWN
};

/* The largest L accepted with lines up to max_line bytes. */
size_t cmdipc__frame_max(size_t max_line);

typedef struct cmdipc__ftx_s {
    crypto_secretstream_xchacha20poly1305_state st;
    uint64_t frames;
    unsigned rekey_frames; /* 0: never by count */
    uint64_t rekey_ms;     /* 0: never by time */
    uint64_t last_rekey;
    int final_sent;
} cmdipc__ftx_t;

/* Starts a sending stream under key: writes its header into hdr. */
int cmdipc__ftx_init(cmdipc__ftx_t *tx, const uint8_t key[32],
                     uint8_t hdr[CMDIPC__STREAM_HEADER], unsigned rekey_frames,
                     uint64_t rekey_ms, uint64_t now_ms);
/* Appends one frame holding the n bytes at m (final: tag FINAL). Returns 0,
 * UV_ENOMEM, CMDIPC_ECLOSED after the final frame. */
int cmdipc__ftx_seal(cmdipc__ftx_t *tx, const void *m, size_t n, int final,
                     uint64_t now_ms, cmdipc__buf_t *out);
/* Appends frames holding the whole lines at p (n bytes, ending in '\n'):
 * as many lines per frame as fit in CMDIPC__FRAME_BATCH bytes, a longer line
 * alone. */
int cmdipc__ftx_seal_lines(cmdipc__ftx_t *tx, const char *p, size_t n, uint64_t now_ms,
                           cmdipc__buf_t *out);
/* Appends a control frame (CMDIPC__CTL_*; code for an error frame). */
int cmdipc__ftx_control(cmdipc__ftx_t *tx, int ctl, const char *code, int final,
                        uint64_t now_ms, cmdipc__buf_t *out);

typedef struct cmdipc__frx_s {
    crypto_secretstream_xchacha20poly1305_state st;
    uint8_t key[32]; /* until the header arrived */
    int have_header;
    int final; /* the FINAL frame was read */
    size_t max_frame;
    uint8_t *in; /* input not yet consumed: in[off..len) */
    size_t off, len, cap;
    uint8_t *plain;
    size_t plain_cap;
    uint64_t frames;
} cmdipc__frx_t;

/* A receiving stream under key, for lines up to max_line bytes; the first
 * CMDIPC__STREAM_HEADER bytes fed are the peer's stream header. */
void cmdipc__frx_init(cmdipc__frx_t *rx, const uint8_t key[32], size_t max_line);
void cmdipc__frx_free(cmdipc__frx_t *rx);
/* Appends n input bytes. 0 or UV_ENOMEM. Never holds more than one partial
 * frame plus what one call adds. */
int cmdipc__frx_feed(cmdipc__frx_t *rx, const void *p, size_t n);
/* The next frame: returns 1 with its plaintext in *m, *n (valid until the
 * next call) and *ctl (CMDIPC__CTL_NONE for lines), 0 when more input is
 * needed, or CMDIPC_EFRAMESIZE (checked on the 4 length bytes, before any
 * allocation), CMDIPC_EFRAMEAUTH (bad header, bit flip, replay, reorder,
 * drop), CMDIPC_EFRAMETAG (PUSH or unknown tag), CMDIPC_EPROTO (data after
 * FINAL, lines not ending in a newline). *final is set on the FINAL frame. */
int cmdipc__frx_next(cmdipc__frx_t *rx, const uint8_t **m, size_t *n, int *ctl,
                     int *final);
/* Bytes fed and not yet consumed. */
static inline size_t cmdipc__frx_buffered(const cmdipc__frx_t *rx) {
    return rx->len - rx->off;
}
/* Takes up to n buffered bytes out (the handshake reads its acts from the
 * same buffer). Returns the count copied. */
size_t cmdipc__frx_take(cmdipc__frx_t *rx, void *out, size_t n);
/* The error code of an error control frame (into out, size n). */
void cmdipc__frame_error_code(const uint8_t *m, size_t len, char *out, size_t n);

/* Test hook: the largest single allocation the frame layer made. */
size_t cmdipc__frame_max_alloc(void);

/* ---------------------------------------------------------------------------
 * The glue (secure.c). */

typedef struct cmdipc__secure_cfg_s cmdipc__secure_cfg_t;

/* Validates and copies secure options (keys, allow-list) for a listener or
 * a dialer of r. Returns 0, UV_EINVAL, CMDIPC_EHSBADKEY (a low-order pin),
 * UV_ENOMEM. */
int cmdipc__secure_cfg_new(cmdipc_registry_t *r, const cmdipc_secure_opts_t *o,
                           int dialer, cmdipc__secure_cfg_t **out);
void cmdipc__secure_cfg_free(cmdipc__secure_cfg_t *cfg);

/* Starts the handshake on a connected conn, as initiator (dialer) or
 * responder (listener: the conn takes one of cfg's handshake slots, the
 * oldest incomplete handshake being cut off when they are all taken).
 * done(link, status) runs exactly once, possibly from inside this call:
 * status 0 when the conn is authenticated and carries frames (then start
 * it with cmdipc__conn_start()), else why it failed (the caller closes the
 * conn). Returns 0 or UV_ENOMEM (done never runs then). */
typedef void (*cmdipc__secure_done_fn)(cmdipc__link_t *link, int status);
int cmdipc__secure_start(cmdipc__secure_cfg_t *cfg, cmdipc__conn_t *c, int initiator,
                         cmdipc__secure_done_fn done);
/* Fails every handshake in progress on cfg (the listener closes). */
void cmdipc__secure_abort_all(cmdipc__secure_cfg_t *cfg);
/* Test hooks: handshakes holding a slot of cfg now (and the most seen);
 * handshakes whose secrets were found wiped when they ended. */
unsigned cmdipc__secure_in_progress(const cmdipc__secure_cfg_t *cfg, unsigned *peak);
unsigned cmdipc__secure_wiped_total(void);
/* net.c: the secure configuration of a +sodium listener, else NULL. */
cmdipc__secure_cfg_t *cmdipc__net_listener_secure(cmdipc_listener_t *l);

#endif /* CMDIPC_SECURE_INT_H */
