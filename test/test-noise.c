/* The secure transport without sockets: the Noise XK handshake state machine
 * (transports/noise.c) against the cacophony vector and an independent
 * Node.js implementation, low-order keys and bit flips of the handshake, the
 * wiping of secrets, keys and key files (transports/keys.c), and the frame
 * layer (transports/frame.c). SECURITY.md (c) tests 1 (secure frames), 7,
 * 10, 12 and 14; the numbers are in the test names. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "secure_int.h"

/* ---------------------------------------------------------------------------
 * Helpers. */

static void unhex(const char *hex, uint8_t *out, size_t *len) {
    size_t n = 0;
    ASSERT_OK(sodium_hex2bin(out, strlen(hex) / 2, hex, strlen(hex), NULL, &n, NULL));
    *len = n;
}

static void unhex32(const char *hex, uint8_t out[32]) {
    size_t n;
    ASSERT_EQ(strlen(hex), 64);
    unhex(hex, out, &n);
    ASSERT_EQ(n, 32);
}

static cmdipc_keypair_t *keypair_of(const uint8_t sk[32]) {
    cmdipc_keypair_t *kp = NULL;
    ASSERT_OK(cmdipc_keypair_from_secret(sk, &kp));
    return kp;
}

static cmdipc_keypair_t *keypair_new(void) {
    cmdipc_keypair_t *kp = NULL;
    ASSERT_OK(cmdipc_keypair_generate(&kp));
    return kp;
}

/* A full wire handshake between two state machines, in memory. */
typedef struct {
    cmdipc__hs_t i, r;
    uint8_t act[3][CMDIPC__HS_ACT3];
    size_t len[3];
} pair_t;

static void pair_init(pair_t *p, cmdipc_keypair_t *is, cmdipc_keypair_t *rs) {
    cmdipc_pubkey_t pin;
    cmdipc_keypair_public(rs, &pin);
    cmdipc__hs_init(&p->i, CMDIPC__HS_INITIATOR, (const uint8_t *)CMDIPC__PROLOGUE,
                    strlen(CMDIPC__PROLOGUE), is, pin.bytes);
    cmdipc__hs_init(&p->r, CMDIPC__HS_RESPONDER, (const uint8_t *)CMDIPC__PROLOGUE,
                    strlen(CMDIPC__PROLOGUE), rs, NULL);
}

/* ---------------------------------------------------------------------------
 * Test 7: the cacophony vector, byte for byte. */

static json_t *load_vector(void) {
    const char *dir = getenv("CMDIPC_SPEC_DIR");
    const char *ci = getenv("CI");
    char path[4096];
    snprintf(path, sizeof(path), "%s/noise/Noise_XK_25519_ChaChaPoly_SHA256.json",
             dir ? dir : "../shared/spec");
    json_error_t err;
    json_t *v = json_load_file(path, 0, &err);
    if (v == NULL) {
        if (ci != NULL && strcmp(ci, "true") == 0)
            harness__fail(__FILE__, __LINE__,
                          "CI=true and the Noise vector is missing: %s", path);
        fprintf(stderr, "the Noise vector is not there: %s\n", path);
        RETURN_SKIP("the Noise test vector (../shared/spec/noise) is absent");
    }
    return v;
}

static void vec_get(json_t *v, const char *key, uint8_t *out, size_t *len) {
    const char *hex = json_string_value(json_object_get(v, key));
    ASSERT_NOT_NULL(hex);
    unhex(hex, out, len);
}

/* Encrypts a transport message as Noise's CipherState would (ad empty). */
static void cipher_state_encrypt(const uint8_t k[32], uint64_t n, const uint8_t *p,
                                 size_t len, uint8_t *out) {
    uint8_t npub[12] = {0};
    unsigned long long clen;
    for (int i = 0; i < 8; i++)
        npub[4 + i] = (uint8_t)(n >> (8 * i));
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, p, len, NULL, 0, NULL, npub, k);
}

TEST(secure7_noise_vector) {
    json_t *root = load_vector();
    json_t *v = json_array_get(json_object_get(root, "vectors"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(v, "name")),
                  "Noise_XK_25519_ChaChaPoly_SHA256");
    uint8_t prologue[256], is[32], ie[32], irs[32], rs[32], re[32];
    size_t plen, n;
    vec_get(v, "init_prologue", prologue, &plen);
    vec_get(v, "init_static", is, &n);
    vec_get(v, "init_ephemeral", ie, &n);
    vec_get(v, "init_remote_static", irs, &n);
    vec_get(v, "resp_static", rs, &n);
    vec_get(v, "resp_ephemeral", re, &n);

    cmdipc_keypair_t *ikp = keypair_of(is), *rkp = keypair_of(rs);
    cmdipc_pubkey_t rpub;
    cmdipc_keypair_public(rkp, &rpub);
    ASSERT_MEM_EQ(rpub.bytes, irs, 32); /* the vector's pin is the responder's key */

    cmdipc__hs_t hi, hr;
    cmdipc__hs_init(&hi, CMDIPC__HS_INITIATOR, prologue, plen, ikp, irs);
    cmdipc__hs_init(&hr, CMDIPC__HS_RESPONDER, prologue, plen, rkp, NULL);
    cmdipc__hs_set_ephemeral(&hi, ie);
    cmdipc__hs_set_ephemeral(&hr, re);

    json_t *msgs = json_object_get(v, "messages");
    ASSERT_EQ(json_array_size(msgs), 6);
    for (int i = 0; i < 3; i++) {
        uint8_t payload[256], expect[512], got[512], back[256];
        size_t pl, el, gl, bl;
        vec_get(json_array_get(msgs, (size_t)i), "payload", payload, &pl);
        vec_get(json_array_get(msgs, (size_t)i), "ciphertext", expect, &el);
        cmdipc__hs_t *w = i % 2 == 0 ? &hi : &hr, *rd = i % 2 == 0 ? &hr : &hi;
        ASSERT_EQ(cmdipc__hs_action(w), CMDIPC__HS_WRITE);
        ASSERT_EQ(cmdipc__hs_action(rd), CMDIPC__HS_READ);
        ASSERT_OK(cmdipc__hs_write(w, payload, pl, got, sizeof(got), &gl));
        ASSERT_EQ(gl, el);
        ASSERT_MEM_EQ(got, expect, el); /* byte for byte */
        ASSERT_OK(cmdipc__hs_read(rd, got, gl, back, sizeof(back), &bl));
        ASSERT_EQ(bl, pl);
        ASSERT_MEM_EQ(back, payload, pl);
    }
    ASSERT_EQ(cmdipc__hs_action(&hi), CMDIPC__HS_SPLIT);
    ASSERT_EQ(cmdipc__hs_action(&hr), CMDIPC__HS_SPLIT);
    ASSERT_MEM_EQ(hr.rs, ikp->pk, 32); /* the responder learned s_i */
    ASSERT_MEM_EQ(hi.h, hr.h, 32);
    uint8_t i2r[32], r2i[32], ri2r[32], rr2i[32];
    ASSERT_OK(cmdipc__hs_split(&hi, i2r, r2i));
    ASSERT_OK(cmdipc__hs_split(&hr, ri2r, rr2i));
    ASSERT_MEM_EQ(i2r, ri2r, 32);
    ASSERT_MEM_EQ(r2i, rr2i, 32);
    ASSERT(memcmp(i2r, r2i, 32) != 0);
    /* The split keys are the vector's: its transport messages (the
     * responder sends the 4th, then they alternate) are what Noise's
     * CipherState makes of them, nonces counting from 0 per direction. */
    uint64_t n_i2r = 0, n_r2i = 0;
    for (int i = 3; i < 6; i++) {
        uint8_t payload[256], expect[512], got[512];
        size_t pl, el;
        vec_get(json_array_get(msgs, (size_t)i), "payload", payload, &pl);
        vec_get(json_array_get(msgs, (size_t)i), "ciphertext", expect, &el);
        ASSERT_EQ(el, pl + 16);
        if (i % 2 == 1)
            cipher_state_encrypt(r2i, n_r2i++, payload, pl, got);
        else
            cipher_state_encrypt(i2r, n_i2r++, payload, pl, got);
        ASSERT_MEM_EQ(got, expect, el);
    }
    ASSERT(cmdipc__hs_wiped(&hi));
    ASSERT(cmdipc__hs_wiped(&hr));
    cmdipc_keypair_free(ikp);
    cmdipc_keypair_free(rkp);
    json_decref(root);
}

/* ---------------------------------------------------------------------------
 * Test 7, project-owned: full handshakes against test/noise_ref.js, an
 * independent implementation on Node.js's built-in crypto. */

static void hex_of(const uint8_t *p, size_t n, char *out) {
    sodium_bin2hex(out, 2 * n + 1, p, n);
}

TEST(secure7_noise_xk_matches_node) {
    const char *srcdir = getenv("CMDIPC_TEST_SRCDIR");
    const char *ci = getenv("CI");
    char script[4096], in[HARNESS_PATH_MAX], cmd[8192];
    snprintf(script, sizeof(script), "%s/noise_ref.js", srcdir ? srcdir : "test");
    if (system("node --version >/dev/null 2>&1") != 0) {
        if (ci != NULL && strcmp(ci, "true") == 0)
            harness__fail(__FILE__, __LINE__, "CI=true and node is not installed");
        RETURN_SKIP("node is not installed (apt-get install nodejs)");
    }
    enum { ROUNDS = 8 };
    uint8_t keys[ROUNDS][4][32];
    uint8_t payloads[ROUNDS][3][40];
    size_t plens[ROUNDS][3];
    harness_scratch_path(in, sizeof(in), "noise-in");
    FILE *f = fopen(in, "w");
    ASSERT_NOT_NULL(f);
    for (int r = 0; r < ROUNDS; r++) {
        char hx[4][65], ph[3][81], pro[65];
        for (int k = 0; k < 4; k++) {
            randombytes_buf(keys[r][k], 32);
            hex_of(keys[r][k], 32, hx[k]);
        }
        for (int k = 0; k < 3; k++) {
            /* Empty payloads (our wire acts) in the even rounds. */
            plens[r][k] = r % 2 == 0 ? 0 : randombytes_uniform(40);
            randombytes_buf(payloads[r][k], plens[r][k]);
            hex_of(payloads[r][k], plens[r][k], ph[k]);
        }
        hex_of((const uint8_t *)CMDIPC__PROLOGUE, strlen(CMDIPC__PROLOGUE), pro);
        fprintf(f,
                "{\"prologue\":\"%s\",\"init_static\":\"%s\",\"init_ephemeral\":\"%s\","
                "\"resp_static\":\"%s\",\"resp_ephemeral\":\"%s\",\"payloads\":[\"%s\","
                "\"%s\","
                "\"%s\"]}\n",
                pro, hx[0], hx[1], hx[2], hx[3], ph[0], ph[1], ph[2]);
    }
    fclose(f);
    snprintf(cmd, sizeof(cmd), "node '%s' < '%s'", script, in);
    FILE *out = popen(cmd, "r");
    ASSERT_NOT_NULL(out);
    char line[4096];
    for (int r = 0; r < ROUNDS; r++) {
        ASSERT_NOT_NULL(fgets(line, sizeof(line), out));
        json_error_t err;
        json_t *js = json_loads(line, 0, &err);
        ASSERT_NOT_NULL(js);
        cmdipc_keypair_t *ikp = keypair_of(keys[r][0]), *rkp = keypair_of(keys[r][2]);
        cmdipc_pubkey_t pin;
        cmdipc_keypair_public(rkp, &pin);
        cmdipc__hs_t hi, hr;
        const uint8_t *pro = (const uint8_t *)CMDIPC__PROLOGUE;
        cmdipc__hs_init(&hi, CMDIPC__HS_INITIATOR, pro, strlen(CMDIPC__PROLOGUE), ikp,
                        pin.bytes);
        cmdipc__hs_init(&hr, CMDIPC__HS_RESPONDER, pro, strlen(CMDIPC__PROLOGUE), rkp,
                        NULL);
        cmdipc__hs_set_ephemeral(&hi, keys[r][1]);
        cmdipc__hs_set_ephemeral(&hr, keys[r][3]);
        for (int i = 0; i < 3; i++) {
            uint8_t got[256], expect[256], back[64];
            size_t gl, el, bl;
            cmdipc__hs_t *w = i % 2 == 0 ? &hi : &hr, *rd = i % 2 == 0 ? &hr : &hi;
            ASSERT_OK(
                cmdipc__hs_write(w, payloads[r][i], plens[r][i], got, sizeof(got), &gl));
            unhex(json_string_value(
                      json_array_get(json_object_get(js, "messages"), (size_t)i)),
                  expect, &el);
            ASSERT_EQ(gl, el);
            ASSERT_MEM_EQ(got, expect, el);
            ASSERT_OK(cmdipc__hs_read(rd, expect, el, back, sizeof(back), &bl));
            ASSERT_EQ(bl, plens[r][i]);
        }
        uint8_t i2r[32], r2i[32], e2[32];
        size_t n;
        ASSERT_MEM_EQ(hi.h, hr.h, 32);
        unhex(json_string_value(json_object_get(js, "h")), e2, &n);
        ASSERT_MEM_EQ(hi.h, e2, 32);
        ASSERT_OK(cmdipc__hs_split(&hi, i2r, r2i));
        unhex(json_string_value(json_object_get(js, "i2r")), e2, &n);
        ASSERT_MEM_EQ(i2r, e2, 32);
        unhex(json_string_value(json_object_get(js, "r2i")), e2, &n);
        ASSERT_MEM_EQ(r2i, e2, 32);
        json_decref(js);
        cmdipc_keypair_free(ikp);
        cmdipc_keypair_free(rkp);
    }
    ASSERT_EQ(pclose(out), 0);
    unlink(in);
}

/* ---------------------------------------------------------------------------
 * Test 10: low-order keys, single-bit flips. */

/* The 14 encodings of the 7 low-order u-coordinates (0, 1, the two points
 * of order 8, p-1, p, p+1), top bit clear and set. */
static const char *const low_order_hex[7] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};

static void low_order(int i, uint8_t out[32]) {
    unhex32(low_order_hex[i / 2], out);
    if (i % 2)
        out[31] |= 0x80;
}

TEST(secure10_low_order_keys) {
    cmdipc_keypair_t *is = keypair_new(), *rs = keypair_new();
    for (int i = 0; i < 14; i++) {
        uint8_t bad[32];
        char b64[CMDIPC_KEY_B64];
        cmdipc_pubkey_t pk;
        low_order(i, bad);
        ASSERT(cmdipc__pubkey_low_order(bad));
        memcpy(pk.bytes, bad, 32);
        cmdipc_pubkey_to_base64(&pk, b64);
        ASSERT_STATUS(CMDIPC_EHSBADKEY, cmdipc_pubkey_from_base64(b64, &pk));

        /* As e_i: act 1 carries it; the responder's DH refuses it. */
        pair_t p;
        pair_init(&p, is, rs);
        ASSERT_OK(cmdipc__hs_write_act(&p.i, p.act[0], sizeof(p.act[0]), &p.len[0]));
        memcpy(p.act[0] + 1, bad, 32);
        ASSERT_STATUS(CMDIPC_EHSBADKEY, cmdipc__hs_read_act(&p.r, p.act[0], p.len[0]));
        ASSERT_EQ(cmdipc__hs_action(&p.r), CMDIPC__HS_FAILED);
        ASSERT(cmdipc__hs_wiped(&p.r));

        /* As e_r: act 2 carries it; the initiator refuses it. */
        pair_init(&p, is, rs);
        ASSERT_OK(cmdipc__hs_write_act(&p.i, p.act[0], sizeof(p.act[0]), &p.len[0]));
        ASSERT_OK(cmdipc__hs_read_act(&p.r, p.act[0], p.len[0]));
        ASSERT_OK(cmdipc__hs_write_act(&p.r, p.act[1], sizeof(p.act[1]), &p.len[1]));
        memcpy(p.act[1] + 1, bad, 32);
        ASSERT_STATUS(CMDIPC_EHSBADKEY, cmdipc__hs_read_act(&p.i, p.act[1], p.len[1]));
        ASSERT(cmdipc__hs_wiped(&p.i));

        /* As s_i: an initiator whose static public key is low order (its
         * secret is any scalar); the responder decrypts it in act 3 and
         * its DH refuses it. */
        cmdipc_keypair_t fake;
        memcpy(fake.pk, bad, 32);
        fake.sk = sodium_malloc(32);
        randombytes_buf(fake.sk, 32);
        sodium_mprotect_noaccess(fake.sk);
        pair_init(&p, &fake, rs);
        for (int a = 0; a < 2; a++) {
            cmdipc__hs_t *w = a == 0 ? &p.i : &p.r, *rd = a == 0 ? &p.r : &p.i;
            ASSERT_OK(cmdipc__hs_write_act(w, p.act[a], sizeof(p.act[a]), &p.len[a]));
            ASSERT_OK(cmdipc__hs_read_act(rd, p.act[a], p.len[a]));
        }
        ASSERT_OK(cmdipc__hs_write_act(&p.i, p.act[2], sizeof(p.act[2]), &p.len[2]));
        ASSERT_STATUS(CMDIPC_EHSBADKEY, cmdipc__hs_read_act(&p.r, p.act[2], p.len[2]));
        ASSERT(cmdipc__hs_wiped(&p.r));
        sodium_free(fake.sk);
    }
    cmdipc_keypair_free(is);
    cmdipc_keypair_free(rs);
}

TEST(secure10_single_bit_flips) {
    cmdipc_keypair_t *is = keypair_new(), *rs = keypair_new();
    unsigned flips = 0, version = 0;
    for (int a = 0; a < 3; a++) {
        size_t size = a == 2 ? CMDIPC__HS_ACT3 : CMDIPC__HS_ACT1;
        for (size_t bit = 0; bit < size * 8; bit++) {
            pair_t p;
            pair_init(&p, is, rs);
            int rc = 0;
            for (int k = 0; k < 3; k++) {
                cmdipc__hs_t *w = k % 2 == 0 ? &p.i : &p.r,
                             *rd = k % 2 == 0 ? &p.r : &p.i;
                ASSERT_OK(cmdipc__hs_write_act(w, p.act[k], sizeof(p.act[k]), &p.len[k]));
                if (k == a)
                    p.act[k][bit / 8] ^= (uint8_t)(1u << (bit % 8));
                rc = cmdipc__hs_read_act(rd, p.act[k], p.len[k]);
                if (k == a)
                    break;
                ASSERT_OK(rc);
            }
            /* The receiver of the damaged act fails; the responder never
             * completes, so authorize() would never be called. */
            ASSERT(rc == CMDIPC_EHSAUTH || rc == CMDIPC_EHSVERSION ||
                   rc == CMDIPC_EHSBADKEY);
            version += rc == CMDIPC_EHSVERSION;
            ASSERT_NE(cmdipc__hs_action(&p.r), CMDIPC__HS_SPLIT);
            ASSERT(cmdipc__hs_wiped(a == 1 ? &p.i : &p.r));
            flips++;
        }
    }
    ASSERT_EQ(flips, 1304); /* 163 bytes */
    ASSERT_EQ(version, 24); /* the version byte of each act */
    cmdipc_keypair_free(is);
    cmdipc_keypair_free(rs);
}

/* ---------------------------------------------------------------------------
 * Test 14 (secrets wiped) and the wire sizes. */

TEST(secure14_handshake_secrets_wiped) {
    cmdipc_keypair_t *is = keypair_new(), *rs = keypair_new();
    pair_t p;
    pair_init(&p, is, rs);
    for (int k = 0; k < 3; k++) {
        cmdipc__hs_t *w = k % 2 == 0 ? &p.i : &p.r, *rd = k % 2 == 0 ? &p.r : &p.i;
        ASSERT_EQ(cmdipc__hs_act_size(w), k == 2 ? CMDIPC__HS_ACT3 : CMDIPC__HS_ACT1);
        ASSERT_OK(cmdipc__hs_write_act(w, p.act[k], sizeof(p.act[k]), &p.len[k]));
        ASSERT_EQ(p.len[k], cmdipc__hs_act_size(rd));
        ASSERT_EQ(p.act[k][0], CMDIPC__HS_VERSION);
        ASSERT(!cmdipc__hs_wiped(w));
        ASSERT_OK(cmdipc__hs_read_act(rd, p.act[k], p.len[k]));
    }
    ASSERT_EQ(p.len[0] + p.len[1] + p.len[2], 163);
    cmdipc_pubkey_t ipk;
    cmdipc_keypair_public(is, &ipk);
    ASSERT_MEM_EQ(p.r.rs, ipk.bytes, 32);
    uint8_t a[32], b[32], c[32], d[32];
    ASSERT_OK(cmdipc__hs_split(&p.i, a, b));
    ASSERT_OK(cmdipc__hs_split(&p.r, c, d));
    ASSERT_MEM_EQ(a, c, 32);
    ASSERT_MEM_EQ(b, d, 32);
    ASSERT(cmdipc__hs_wiped(&p.i));
    ASSERT(cmdipc__hs_wiped(&p.r));
    ASSERT_STATUS(UV_EINVAL, cmdipc__hs_split(&p.i, a, b)); /* once */
    /* A dialer that pinned another key: the responder rejects tag1. */
    cmdipc_keypair_t *other = keypair_new();
    pair_init(&p, is, other);
    cmdipc__hs_init(&p.r, CMDIPC__HS_RESPONDER, (const uint8_t *)CMDIPC__PROLOGUE,
                    strlen(CMDIPC__PROLOGUE), rs, NULL);
    ASSERT_OK(cmdipc__hs_write_act(&p.i, p.act[0], sizeof(p.act[0]), &p.len[0]));
    ASSERT_STATUS(CMDIPC_EHSAUTH, cmdipc__hs_read_act(&p.r, p.act[0], p.len[0]));
    ASSERT(cmdipc__hs_wiped(&p.r));
    /* Another prologue (a downgrade or another protocol) fails the same way. */
    pair_init(&p, is, rs);
    cmdipc__hs_init(&p.r, CMDIPC__HS_RESPONDER, (const uint8_t *)"cmdipc/xk0", 10, rs,
                    NULL);
    ASSERT_OK(cmdipc__hs_write_act(&p.i, p.act[0], sizeof(p.act[0]), &p.len[0]));
    ASSERT_STATUS(CMDIPC_EHSAUTH, cmdipc__hs_read_act(&p.r, p.act[0], p.len[0]));
    cmdipc_keypair_free(other);
    cmdipc_keypair_free(is);
    cmdipc_keypair_free(rs);
}

/* ---------------------------------------------------------------------------
 * Keys and key files. */

TEST(secure_keys_base64_and_files) {
    cmdipc_keypair_t *kp = keypair_new(), *back = NULL;
    cmdipc_pubkey_t pk, pk2;
    char b64[CMDIPC_KEY_B64], text[80], path[HARNESS_PATH_MAX];
    cmdipc_keypair_public(kp, &pk);
    cmdipc_pubkey_to_base64(&pk, b64);
    ASSERT_EQ(strlen(b64), 44);
    ASSERT_OK(cmdipc_pubkey_from_base64(b64, &pk2));
    ASSERT(cmdipc_pubkey_equal(&pk, &pk2));
    snprintf(text, sizeof(text), "  %s\n", b64);
    ASSERT_OK(cmdipc_pubkey_from_base64(text, &pk2));
    ASSERT_STATUS(UV_EINVAL, cmdipc_pubkey_from_base64("AAAA", &pk2));
    b64[10] = '*';
    ASSERT_STATUS(UV_EINVAL, cmdipc_pubkey_from_base64(b64, &pk2));

    /* Save: mode 0600, never over an existing file; load it back. */
    harness_scratch_path(path, sizeof(path), "key");
    mode_t old = umask(0);
    ASSERT_OK(cmdipc_keypair_save(kp, path));
    umask(old);
    struct stat st;
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_STATUS(UV_EEXIST, cmdipc_keypair_save(kp, path));
    ASSERT_OK(cmdipc_keypair_load(path, &back));
    cmdipc_keypair_public(back, &pk2);
    ASSERT(cmdipc_pubkey_equal(&pk, &pk2));
    cmdipc_keypair_free(back);
    /* Readable by group or others: refused. */
    ASSERT_OK(chmod(path, 0640));
    ASSERT_STATUS(CMDIPC_EKEYFILE, cmdipc_keypair_load(path, &back));
    ASSERT_NULL(back);
    ASSERT_OK(chmod(path, 0604));
    ASSERT_STATUS(CMDIPC_EKEYFILE, cmdipc_keypair_load(path, &back));
    ASSERT_OK(chmod(path, 0400));
    ASSERT_OK(cmdipc_keypair_load(path, &back));
    cmdipc_keypair_free(back);
    unlink(path);
    ASSERT_STATUS(UV_ENOENT, cmdipc_keypair_load(path, &back));
    /* Not a key. */
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, "hello\n", 6), 6);
    close(fd);
    ASSERT_STATUS(UV_EINVAL, cmdipc_keypair_load(path, &back));
    unlink(path);
    /* A public key from text or from a file. */
    cmdipc_pubkey_to_base64(&pk, b64);
    ASSERT_OK(cmdipc_pubkey_parse(b64, &pk2));
    fd = open(path, O_WRONLY | O_CREAT, 0644);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, b64, 44), 44);
    ASSERT_EQ(write(fd, "\n", 1), 1);
    close(fd);
    memset(&pk2, 0, sizeof(pk2));
    ASSERT_OK(cmdipc_pubkey_parse(path, &pk2));
    ASSERT(cmdipc_pubkey_equal(&pk, &pk2));
    unlink(path);
    ASSERT_STATUS(UV_EINVAL, cmdipc_pubkey_parse(path, &pk2));
    cmdipc_keypair_free(kp);
}

/* A key pair's secret key is not accessible while idle: reading it
 * faults (a child process shows it). */
TEST(secure_keys_guarded_memory) {
    cmdipc_keypair_t *kp = keypair_new();
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        volatile uint8_t x = kp->sk[0];
        (void)x;
        _exit(0);
    }
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    /* SIGSEGV or SIGBUS; under a sanitizer, which catches the fault, its
     * report and a non-zero exit. */
    ASSERT(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
    cmdipc_keypair_free(kp);
}

/* ---------------------------------------------------------------------------
 * Frames: test 1 (sizes checked before allocating), 12, 14 (rekey). */

typedef struct {
    cmdipc__ftx_t tx;
    cmdipc__frx_t rx;
    uint8_t hdr[CMDIPC__STREAM_HEADER];
} stream_t;

static void stream_init(stream_t *s, unsigned rekey_frames) {
    uint8_t key[32];
    randombytes_buf(key, 32);
    ASSERT_OK(cmdipc__ftx_init(&s->tx, key, s->hdr, rekey_frames, 0, 0));
    cmdipc__frx_init(&s->rx, key, 1024 * 1024);
    ASSERT_OK(cmdipc__frx_feed(&s->rx, s->hdr, sizeof(s->hdr)));
}

/* Feeds n bytes and returns the status of the next frame. */
static int feed_next(stream_t *s, const void *p, size_t n, const uint8_t **m, size_t *len,
                     int *ctl, int *fin) {
    ASSERT_OK(cmdipc__frx_feed(&s->rx, p, n));
    return cmdipc__frx_next(&s->rx, m, len, ctl, fin);
}

TEST(secure1_frame_size_checked_before_allocating) {
    static const uint32_t bad[] = {0x40000000u, 0xffffffffu, 0, 16, 19};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        stream_t s;
        stream_init(&s, 1000);
        uint8_t l[4] = {(uint8_t)(bad[i] >> 24), (uint8_t)(bad[i] >> 16),
                        (uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        const uint8_t *m;
        size_t n;
        int ctl, fin;
        /* Three bytes: not decided yet. The fourth: closed. */
        ASSERT_EQ(feed_next(&s, l, 3, &m, &n, &ctl, &fin), 0);
        ASSERT_STATUS(CMDIPC_EFRAMESIZE, feed_next(&s, l + 3, 1, &m, &n, &ctl, &fin));
        cmdipc__frx_free(&s.rx);
    }
    /* The largest allowed frame is max(64 KiB, max_line + 1) + 17. */
    ASSERT_EQ(cmdipc__frame_max(1024 * 1024), 1024 * 1024 + 1 + 17);
    ASSERT_EQ(cmdipc__frame_max(1000), 64 * 1024 + 17);
    ASSERT_LE(cmdipc__frame_max_alloc(), 64 * 1024);
}

/* Seals count frames of one line each into out, recording where each one
 * starts. */
static void seal_frames(stream_t *s, int count, cmdipc__buf_t *out, size_t *starts) {
    for (int i = 0; i < count; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "{\"n\":%d}\n", i);
        starts[i] = out->len;
        ASSERT_OK(cmdipc__ftx_seal_lines(&s->tx, line, (size_t)n, 0, out));
    }
    starts[count] = out->len;
}

/* Feeds bytes and counts the frames read before the first error. */
static int read_all(stream_t *s, const char *p, size_t n, int *frames) {
    const uint8_t *m;
    size_t len;
    int ctl, fin, rc;
    *frames = 0;
    ASSERT_OK(cmdipc__frx_feed(&s->rx, p, n));
    while ((rc = cmdipc__frx_next(&s->rx, &m, &len, &ctl, &fin)) == 1) {
        char expect[64];
        snprintf(expect, sizeof(expect), "{\"n\":%d}\n", *frames);
        ASSERT_EQ(len, strlen(expect));
        ASSERT_MEM_EQ(m, expect, len);
        (*frames)++;
    }
    return rc;
}

TEST(secure12_frames_tampering_detected_on_first_bad_frame) {
    enum { N = 6, BAD = 3 };
    size_t at[N + 1];
    int frames;
    for (int kind = 0; kind < 5; kind++) {
        stream_t s;
        cmdipc__buf_t b, t;
        cmdipc__buf_init(&b);
        cmdipc__buf_init(&t);
        stream_init(&s, 1000);
        seal_frames(&s, N, &b, at);
        /* t: frames 0..BAD-1 intact, then the damage. */
        cmdipc__buf_put(&t, b.data, at[BAD]);
        switch (kind) {
            case 0: /* a bit flipped inside frame BAD */
                cmdipc__buf_put(&t, b.data + at[BAD], at[BAD + 1] - at[BAD]);
                t.data[at[BAD] + 9] ^= 0x10;
                break;
            case 1: /* frame BAD-1 replayed */
                cmdipc__buf_put(&t, b.data + at[BAD - 1], at[BAD] - at[BAD - 1]);
                break;
            case 2: /* frames BAD and BAD+1 swapped */
                cmdipc__buf_put(&t, b.data + at[BAD + 1], at[BAD + 2] - at[BAD + 1]);
                cmdipc__buf_put(&t, b.data + at[BAD], at[BAD + 1] - at[BAD]);
                break;
            case 3: /* frame BAD dropped */
                cmdipc__buf_put(&t, b.data + at[BAD + 1], at[BAD + 2] - at[BAD + 1]);
                break;
            case 4: /* a length byte flipped (still a valid size) */
                cmdipc__buf_put(&t, b.data + at[BAD], at[N] - at[BAD]);
                t.data[at[BAD] + 3] ^= 0x01;
                break;
        }
        cmdipc__buf_put(&t, b.data + at[BAD + 2], at[N] - at[BAD + 2]);
        ASSERT_STATUS(CMDIPC_EFRAMEAUTH, read_all(&s, t.data, t.len, &frames));
        ASSERT_EQ(frames, BAD); /* detected on the first bad frame */
        cmdipc__frx_free(&s.rx);
        cmdipc__buf_free(&b);
        cmdipc__buf_free(&t);
    }
    /* The wrong stream header. */
    stream_t s;
    stream_init(&s, 1000);
    cmdipc__frx_free(&s.rx);
    uint8_t key[32];
    randombytes_buf(key, 32);
    cmdipc__frx_init(&s.rx, key, 1024);
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    cmdipc__buf_put(&b, s.hdr, sizeof(s.hdr));
    seal_frames(&s, 1, &b, at);
    ASSERT_STATUS(CMDIPC_EFRAMEAUTH, read_all(&s, b.data, b.len, &frames));
    ASSERT_EQ(frames, 0);
    cmdipc__frx_free(&s.rx);
    cmdipc__buf_free(&b);
}

TEST(secure12_frames_final_and_tags) {
    stream_t s;
    cmdipc__buf_t b;
    const uint8_t *m;
    size_t n;
    int ctl, fin;
    cmdipc__buf_init(&b);
    stream_init(&s, 1000);
    ASSERT_OK(cmdipc__ftx_control(&s.tx, CMDIPC__CTL_READY, NULL, 0, 0, &b));
    ASSERT_OK(cmdipc__ftx_seal_lines(&s.tx, "{\"a\":1}\n{\"b\":2}\n", 16, 0, &b));
    ASSERT_OK(cmdipc__ftx_control(&s.tx, CMDIPC__CTL_PING, NULL, 0, 0, &b));
    ASSERT_OK(cmdipc__ftx_control(&s.tx, CMDIPC__CTL_ERROR, "E_UNAUTHORIZED", 1, 0, &b));
    ASSERT_STATUS(CMDIPC_ECLOSED,
                  cmdipc__ftx_control(&s.tx, CMDIPC__CTL_BYE, NULL, 1, 0, &b));
    ASSERT_OK(cmdipc__frx_feed(&s.rx, b.data, b.len));
    ASSERT_EQ(cmdipc__frx_next(&s.rx, &m, &n, &ctl, &fin), 1);
    ASSERT_EQ(ctl, CMDIPC__CTL_READY);
    ASSERT_EQ(cmdipc__frx_next(&s.rx, &m, &n, &ctl, &fin), 1);
    ASSERT_EQ(ctl, CMDIPC__CTL_NONE); /* two whole lines in one frame */
    ASSERT_EQ(n, 16);
    ASSERT_EQ(cmdipc__frx_next(&s.rx, &m, &n, &ctl, &fin), 1);
    ASSERT_EQ(ctl, CMDIPC__CTL_PING);
    ASSERT_EQ(fin, 0);
    ASSERT_EQ(cmdipc__frx_next(&s.rx, &m, &n, &ctl, &fin), 1);
    ASSERT_EQ(ctl, CMDIPC__CTL_ERROR);
    ASSERT_EQ(fin, 1);
    char code[32];
    cmdipc__frame_error_code(m, n, code, sizeof(code));
    ASSERT_STR_EQ(code, "E_UNAUTHORIZED");
    ASSERT_EQ(cmdipc__frx_next(&s.rx, &m, &n, &ctl, &fin), 0);
    /* Anything after FINAL. */
    ASSERT_STATUS(CMDIPC_EPROTO, feed_next(&s, "x", 1, &m, &n, &ctl, &fin));
    cmdipc__frx_free(&s.rx);

    /* A PUSH tag, and lines without their newline. */
    stream_init(&s, 1000);
    b.len = 0;
    uint8_t *p;
    ASSERT_OK(cmdipc__buf_reserve(&b, 64));
    p = (uint8_t *)b.data;
    p[0] = p[1] = p[2] = 0;
    p[3] = 3 + 17;
    crypto_secretstream_xchacha20poly1305_push(
        &s.tx.st, p + 4, NULL, (const uint8_t *)"{}\n", 3, p, 4,
        crypto_secretstream_xchacha20poly1305_TAG_PUSH);
    ASSERT_STATUS(CMDIPC_EFRAMETAG, feed_next(&s, p, 24, &m, &n, &ctl, &fin));
    cmdipc__frx_free(&s.rx);
    stream_init(&s, 1000);
    b.len = 0;
    ASSERT_OK(cmdipc__ftx_seal(&s.tx, "{\"a\":1}", 7, 0, 0, &b));
    ASSERT_STATUS(CMDIPC_EPROTO, feed_next(&s, b.data, b.len, &m, &n, &ctl, &fin));
    cmdipc__frx_free(&s.rx);
    cmdipc__buf_free(&b);
}

TEST(secure14_rekey_every_1000_frames) {
    stream_t s;
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    stream_init(&s, 1000);
    unsigned frames = 0;
    for (int chunk = 0; chunk < 10; chunk++) {
        b.len = 0;
        for (int i = 0; i < 1000; i++)
            ASSERT_OK(cmdipc__ftx_seal_lines(&s.tx, "{\"x\":1}\n", 8, 0, &b));
        const uint8_t *m;
        size_t n;
        int ctl, fin, rc;
        ASSERT_OK(cmdipc__frx_feed(&s.rx, b.data, b.len));
        while ((rc = cmdipc__frx_next(&s.rx, &m, &n, &ctl, &fin)) == 1) {
            ASSERT_EQ(n, 8);
            frames++;
        }
        ASSERT_EQ(rc, 0);
    }
    ASSERT_EQ(frames, 10000);
    ASSERT_EQ(s.tx.frames, 10000);
    /* The 1000th frame carries the REKEY tag (both ends ratchet after it). */
    stream_t t;
    stream_init(&t, 1000);
    size_t at[1002];
    b.len = 0;
    seal_frames(&t, 1001, &b, at);
    crypto_secretstream_xchacha20poly1305_state before;
    const uint8_t *m;
    size_t n;
    int ctl, fin, got;
    ASSERT_EQ(read_all(&t, b.data, at[999], &got), 0);
    ASSERT_EQ(got, 999);
    before = t.rx.st;
    ASSERT_EQ(feed_next(&t, b.data + at[999], at[1000] - at[999], &m, &n, &ctl, &fin), 1);
    ASSERT_EQ(feed_next(&t, b.data + at[1000], at[1001] - at[1000], &m, &n, &ctl, &fin),
              1);
    /* Frame 1000 opened again from the state before it: its tag. */
    unsigned char tag;
    unsigned long long ml;
    uint8_t plain[64];
    crypto_secretstream_xchacha20poly1305_state st = before;
    ASSERT_EQ(crypto_secretstream_xchacha20poly1305_pull(
                  &st, plain, &ml, &tag, (const uint8_t *)b.data + at[999] + 4,
                  at[1000] - at[999] - 4, (const uint8_t *)b.data + at[999], 4),
              0);
    ASSERT_EQ(tag, crypto_secretstream_xchacha20poly1305_TAG_REKEY);
    cmdipc__frx_free(&s.rx);
    cmdipc__frx_free(&t.rx);
    cmdipc__buf_free(&b);
}

TEST_LIST_BEGIN
TEST_ENTRY(secure7_noise_vector)
TEST_ENTRY(secure7_noise_xk_matches_node)
TEST_ENTRY(secure10_low_order_keys)
TEST_ENTRY(secure10_single_bit_flips)
TEST_ENTRY(secure14_handshake_secrets_wiped)
TEST_ENTRY(secure_keys_base64_and_files)
TEST_ENTRY(secure_keys_guarded_memory)
TEST_ENTRY(secure1_frame_size_checked_before_allocating)
TEST_ENTRY(secure12_frames_tampering_detected_on_first_bad_frame)
TEST_ENTRY(secure12_frames_final_and_tags)
TEST_ENTRY(secure14_rekey_every_1000_frames)
TEST_LIST_END
