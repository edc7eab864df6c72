/* cmdipc — the Noise_XK_25519_ChaChaPoly_SHA256 handshake as a state machine
 * without I/O, made of libsodium 1.0.18 primitives:
 *
 *   DH     crypto_scalarmult (X25519; a non-zero return is fatal)
 *   HASH   crypto_hash_sha256
 *   HKDF   written with crypto_auth_hmacsha256 (1.0.18 has no crypto_kdf_hkdf)
 *   AEAD   crypto_aead_chacha20poly1305_ietf, nonce = 4 zero bytes || LE64(n)
 *
 * As in noise-c's action loop, the caller asks what to do next
 * (cmdipc__hs_action: write, read, split or failed) and calls the matching
 * function; each message has a function of its own below. */
#include <string.h>

#include "secure_int.h"

#define PROTOCOL_NAME "Noise_XK_25519_ChaChaPoly_SHA256" /* exactly 32 bytes */
#define TAG           crypto_aead_chacha20poly1305_ietf_ABYTES

/* ---------------------------------------------------------------------------
 * Symmetric state. */

static void mix_hash(cmdipc__hs_t *hs, const uint8_t *data, size_t len) {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, hs->h, 32);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, hs->h);
}

static void hmac(const uint8_t key[32], const uint8_t *a, size_t alen, const uint8_t *b,
                 size_t blen, uint8_t out[32]) {
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, 32);
    crypto_auth_hmacsha256_update(&st, a, alen);
    if (blen)
        crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

/* HKDF(ck, ikm) -> (o1, o2): t = HMAC(ck, ikm); o1 = HMAC(t, 0x01);
 * o2 = HMAC(t, o1 || 0x02). */
static void hkdf2(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len,
                  uint8_t o1[32], uint8_t o2[32]) {
    static const uint8_t one = 0x01, two = 0x02;
    uint8_t t[32], t1[32];
    hmac(ck, ikm, ikm_len, NULL, 0, t);
    hmac(t, &one, 1, NULL, 0, t1);
    hmac(t, t1, 32, &two, 1, o2);
    memcpy(o1, t1, 32);
    sodium_memzero(t, sizeof(t));
    sodium_memzero(t1, sizeof(t1));
}

static void mix_key(cmdipc__hs_t *hs, const uint8_t dh[32]) {
    uint8_t ck[32];
    hkdf2(hs->ck, dh, 32, ck, hs->k);
    memcpy(hs->ck, ck, 32);
    sodium_memzero(ck, sizeof(ck));
    hs->n = 0;
    hs->has_k = 1;
}

static void nonce(uint64_t n, uint8_t out[12]) {
    memset(out, 0, 4);
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(n >> (8 * i));
}

/* EncryptAndHash: c = AEAD(k, n++, h, p); MixHash(c). Writes plen + 16. */
static void encrypt_and_hash(cmdipc__hs_t *hs, const uint8_t *p, size_t plen,
                             uint8_t *out) {
    uint8_t npub[12];
    unsigned long long clen;
    nonce(hs->n++, npub);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, p, plen, hs->h, 32, NULL, npub,
                                              hs->k);
    mix_hash(hs, out, (size_t)clen);
}

/* DecryptAndHash: p = AEAD-open(k, n++, h, c); MixHash(c). */
static int decrypt_and_hash(cmdipc__hs_t *hs, const uint8_t *c, size_t clen,
                            uint8_t *out) {
    uint8_t npub[12];
    unsigned long long plen;
    nonce(hs->n++, npub);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, NULL, c, clen, hs->h, 32,
                                                  npub, hs->k) != 0)
        return CMDIPC_EHSAUTH;
    mix_hash(hs, c, clen);
    return 0;
}

static int dh_mix(cmdipc__hs_t *hs, const uint8_t sk[32], const uint8_t pk[32]) {
    uint8_t out[32];
    int rc = crypto_scalarmult(out, sk, pk) == 0 ? 0 : CMDIPC_EHSBADKEY;
    if (rc == 0)
        mix_key(hs, out);
    sodium_memzero(out, sizeof(out));
    return rc;
}

static int dh_static_mix(cmdipc__hs_t *hs, const uint8_t pk[32]) {
    uint8_t out[32];
    int rc = cmdipc__keypair_dh(hs->s, out, pk);
    if (rc == 0)
        mix_key(hs, out);
    sodium_memzero(out, sizeof(out));
    return rc;
}

static void new_ephemeral(cmdipc__hs_t *hs) {
    if (!hs->e_fixed)
        randombytes_buf(hs->e_sk, 32);
    hs->e_fixed = 0;
    crypto_scalarmult_base(hs->e_pk, hs->e_sk);
}

/* ---------------------------------------------------------------------------
 * State. */

void cmdipc__hs_init(cmdipc__hs_t *hs, int role, const uint8_t *prologue,
                     size_t prologue_len, const cmdipc_keypair_t *s,
                     const uint8_t rs[32]) {
    memset(hs, 0, sizeof(*hs));
    hs->role = role;
    hs->s = s;
    memcpy(hs->h, PROTOCOL_NAME, 32);
    memcpy(hs->ck, hs->h, 32);
    mix_hash(hs, prologue, prologue_len);
    /* Pre-message pattern "<- s": the responder's static key. */
    if (role == CMDIPC__HS_INITIATOR) {
        memcpy(hs->rs, rs, 32);
        mix_hash(hs, rs, 32);
    } else {
        mix_hash(hs, s->pk, 32);
    }
}

void cmdipc__hs_wipe(cmdipc__hs_t *hs) {
    sodium_memzero(hs->e_sk, sizeof(hs->e_sk));
    sodium_memzero(hs->ck, sizeof(hs->ck));
    sodium_memzero(hs->k, sizeof(hs->k));
    hs->has_k = 0;
}

int cmdipc__hs_wiped(const cmdipc__hs_t *hs) {
    return sodium_is_zero(hs->e_sk, 32) && sodium_is_zero(hs->ck, 32) &&
           sodium_is_zero(hs->k, 32);
}

void cmdipc__hs_set_ephemeral(cmdipc__hs_t *hs, const uint8_t sk[32]) {
    memcpy(hs->e_sk, sk, 32);
    hs->e_fixed = 1;
}

static int fail(cmdipc__hs_t *hs, int rc) {
    hs->failed = 1;
    cmdipc__hs_wipe(hs);
    return rc;
}

int cmdipc__hs_action(const cmdipc__hs_t *hs) {
    if (hs->failed)
        return CMDIPC__HS_FAILED;
    if (hs->msgs == 3)
        return CMDIPC__HS_SPLIT;
    /* The initiator writes messages 0 and 2, the responder message 1. */
    int writes = (hs->msgs % 2 == 0) == (hs->role == CMDIPC__HS_INITIATOR);
    return writes ? CMDIPC__HS_WRITE : CMDIPC__HS_READ;
}

/* ---------------------------------------------------------------------------
 * The three messages, one function each way. */

/* -> e, es */
static int act1_write(cmdipc__hs_t *hs, const uint8_t *p, size_t plen, uint8_t *out) {
    new_ephemeral(hs);
    memcpy(out, hs->e_pk, 32);
    mix_hash(hs, hs->e_pk, 32);
    int rc = dh_mix(hs, hs->e_sk, hs->rs);
    if (rc != 0)
        return rc;
    encrypt_and_hash(hs, p, plen, out + 32);
    return 0;
}

static int act1_read(cmdipc__hs_t *hs, const uint8_t *m, size_t len, uint8_t *p) {
    memcpy(hs->re, m, 32);
    mix_hash(hs, hs->re, 32);
    int rc = dh_static_mix(hs, hs->re);
    if (rc != 0)
        return rc;
    return decrypt_and_hash(hs, m + 32, len - 32, p);
}

/* <- e, ee */
static int act2_write(cmdipc__hs_t *hs, const uint8_t *p, size_t plen, uint8_t *out) {
    new_ephemeral(hs);
    memcpy(out, hs->e_pk, 32);
    mix_hash(hs, hs->e_pk, 32);
    int rc = dh_mix(hs, hs->e_sk, hs->re);
    if (rc != 0)
        return rc;
    encrypt_and_hash(hs, p, plen, out + 32);
    return 0;
}

static int act2_read(cmdipc__hs_t *hs, const uint8_t *m, size_t len, uint8_t *p) {
    memcpy(hs->re, m, 32);
    mix_hash(hs, hs->re, 32);
    int rc = dh_mix(hs, hs->e_sk, hs->re);
    if (rc != 0)
        return rc;
    return decrypt_and_hash(hs, m + 32, len - 32, p);
}

/* -> s, se */
static int act3_write(cmdipc__hs_t *hs, const uint8_t *p, size_t plen, uint8_t *out) {
    encrypt_and_hash(hs, hs->s->pk, 32, out);
    int rc = dh_static_mix(hs, hs->re);
    if (rc != 0)
        return rc;
    encrypt_and_hash(hs, p, plen, out + 48);
    return 0;
}

static int act3_read(cmdipc__hs_t *hs, const uint8_t *m, size_t len, uint8_t *p) {
    int rc = decrypt_and_hash(hs, m, 48, hs->rs);
    if (rc != 0)
        return rc;
    if ((rc = dh_mix(hs, hs->e_sk, hs->rs)) != 0)
        return rc;
    return decrypt_and_hash(hs, m + 48, len - 48, p);
}

/* Bytes of Noise message i before its payload. */
static size_t overhead(int i) { return i == 2 ? 32 + TAG + TAG : 32 + TAG; }

int cmdipc__hs_write(cmdipc__hs_t *hs, const uint8_t *payload, size_t plen, uint8_t *out,
                     size_t cap, size_t *len) {
    static int (*const acts[3])(cmdipc__hs_t *, const uint8_t *, size_t,
                                uint8_t *) = {act1_write, act2_write, act3_write};
    if (cmdipc__hs_action(hs) != CMDIPC__HS_WRITE)
        return UV_EINVAL;
    size_t need = overhead(hs->msgs) + plen;
    if (cap < need || plen > 65535)
        return fail(hs, UV_EINVAL);
    int rc = acts[hs->msgs](hs, payload, plen, out);
    if (rc != 0)
        return fail(hs, rc);
    hs->msgs++;
    *len = need;
    return 0;
}

int cmdipc__hs_read(cmdipc__hs_t *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                    size_t cap, size_t *plen) {
    static int (*const acts[3])(cmdipc__hs_t *, const uint8_t *, size_t,
                                uint8_t *) = {act1_read, act2_read, act3_read};
    uint8_t scratch[1];
    if (cmdipc__hs_action(hs) != CMDIPC__HS_READ)
        return UV_EINVAL;
    size_t over = overhead(hs->msgs);
    if (len < over || len - over > cap || len > 65535 + over)
        return fail(hs, UV_EINVAL);
    int rc = acts[hs->msgs](hs, msg, len, payload ? payload : scratch);
    if (rc != 0)
        return fail(hs, rc);
    hs->msgs++;
    if (plen != NULL)
        *plen = len - over;
    return 0;
}

int cmdipc__hs_split(cmdipc__hs_t *hs, uint8_t i2r[32], uint8_t r2i[32]) {
    if (cmdipc__hs_action(hs) != CMDIPC__HS_SPLIT)
        return UV_EINVAL;
    hkdf2(hs->ck, NULL, 0, i2r, r2i);
    cmdipc__hs_wipe(hs);
    hs->msgs = 4; /* nothing more to do */
    return 0;
}

/* ---------------------------------------------------------------------------
 * Wire acts: version byte, empty payload. */

size_t cmdipc__hs_act_size(const cmdipc__hs_t *hs) {
    switch (hs->failed ? -1 : hs->msgs) {
        case 0:
            return CMDIPC__HS_ACT1;
        case 1:
            return CMDIPC__HS_ACT2;
        case 2:
            return CMDIPC__HS_ACT3;
        default:
            return 0;
    }
}

int cmdipc__hs_write_act(cmdipc__hs_t *hs, uint8_t *out, size_t cap, size_t *len) {
    size_t n;
    if (cap < 1)
        return UV_EINVAL;
    out[0] = CMDIPC__HS_VERSION;
    int rc = cmdipc__hs_write(hs, NULL, 0, out + 1, cap - 1, &n);
    if (rc == 0)
        *len = n + 1;
    return rc;
}

int cmdipc__hs_read_act(cmdipc__hs_t *hs, const uint8_t *in, size_t len) {
    if (cmdipc__hs_action(hs) != CMDIPC__HS_READ)
        return UV_EINVAL;
    if (len != cmdipc__hs_act_size(hs))
        return fail(hs, UV_EINVAL);
    if (in[0] != CMDIPC__HS_VERSION)
        return fail(hs, CMDIPC_EHSVERSION);
    return cmdipc__hs_read(hs, in + 1, len - 1, NULL, 0, NULL);
}
