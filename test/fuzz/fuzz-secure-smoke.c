/* fuzz-secure-smoke — runs the secure transport's fuzz targets without
 * libFuzzer, as part of make test: valid seeds (a frame stream, a handshake
 * transcript, both made with the targets' fixed keys and randomness), every
 * truncation and single-bit flip of them, then seeded random mutations for a
 * few seconds (CMDIPC_FUZZ_SECONDS, default 5, shared between the two).
 * Prints TAP.
 *
 *   fuzz-secure-smoke                    run
 *   fuzz-secure-smoke --corpus DIR KIND  write the seeds of KIND (frame or
 *                                        handshake) for libFuzzer and exit */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "fuzz_secure.h"
#include "secure_int.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A valid stream after the header: lines, controls, enough frames to re-key,
 * the FINAL frame; behind the split byte. */
static void frame_seed(cmdipc__buf_t *out, int frames, int final) {
    cmdipc__ftx_t tx;
    uint8_t hdr[CMDIPC__STREAM_HEADER];
    cmdipc_fuzz_rng_reset();
    if (cmdipc__ftx_init(&tx, cmdipc_fuzz_frame_key, hdr, 1000, 0, 0) != 0)
        abort();
    out->len = 0;
    cmdipc__buf_putc(out, (char)(next_rand() & 0xff));
    cmdipc__ftx_control(&tx, CMDIPC__CTL_READY, NULL, 0, 0, out);
    for (int i = 0; i < frames; i++) {
        char line[128];
        int n = snprintf(line, sizeof(line),
                         "{\"id\":\"e%d\",\"type\":\"event\",\"eventId\":\"x\"}\n", i);
        cmdipc__ftx_seal_lines(&tx, line, (size_t)n, 0, out);
        if (i % 7 == 3)
            cmdipc__ftx_control(&tx, CMDIPC__CTL_PING, NULL, 0, 0, out);
    }
    if (final)
        cmdipc__ftx_control(&tx, CMDIPC__CTL_BYE, NULL, 1, 0, out);
}

/* A valid transcript: act 1 and act 3 for the target's responder. */
static void handshake_seed(cmdipc__buf_t *out) {
    cmdipc_keypair_t *ik, *rk;
    cmdipc_pubkey_t pin;
    cmdipc__hs_t i, r;
    uint8_t a1[CMDIPC__HS_ACT1], a2[CMDIPC__HS_ACT2], a3[CMDIPC__HS_ACT3];
    size_t n;
    if (cmdipc_keypair_from_secret(cmdipc_fuzz_init_secret, &ik) != 0 ||
        cmdipc_keypair_from_secret(cmdipc_fuzz_resp_secret, &rk) != 0)
        abort();
    cmdipc_keypair_public(rk, &pin);
    cmdipc_fuzz_rng_reset();
    const uint8_t *pro = (const uint8_t *)CMDIPC__PROLOGUE;
    cmdipc__hs_init(&i, CMDIPC__HS_INITIATOR, pro, strlen(CMDIPC__PROLOGUE), ik,
                    pin.bytes);
    cmdipc__hs_init(&r, CMDIPC__HS_RESPONDER, pro, strlen(CMDIPC__PROLOGUE), rk, NULL);
    cmdipc__hs_set_ephemeral(&i, cmdipc_fuzz_init_ephemeral); /* no draw: r draws first */
    if (cmdipc__hs_write_act(&i, a1, sizeof(a1), &n) || cmdipc__hs_read_act(&r, a1, n) ||
        cmdipc__hs_write_act(&r, a2, sizeof(a2), &n) || cmdipc__hs_read_act(&i, a2, n) ||
        cmdipc__hs_write_act(&i, a3, sizeof(a3), &n) || cmdipc__hs_read_act(&r, a3, n))
        abort();
    out->len = 0;
    cmdipc__buf_put(out, a1, sizeof(a1));
    cmdipc__buf_put(out, a3, sizeof(a3));
    cmdipc_keypair_free(ik);
    cmdipc_keypair_free(rk);
}

static uint64_t inputs;

/* The seed, each truncation, each single-bit flip. */
static void deterministic(int (*target)(const uint8_t *, size_t),
                          const cmdipc__buf_t *seed, size_t max_flips) {
    uint8_t *b = malloc(seed->len + 1);
    inputs++;
    for (size_t cut = 0; cut < seed->len; cut++, inputs++)
        target((const uint8_t *)seed->data, cut);
    size_t bits = seed->len * 8 < max_flips ? seed->len * 8 : max_flips;
    for (size_t bit = 0; bit < bits; bit++, inputs++) {
        memcpy(b, seed->data, seed->len);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        target(b, seed->len);
    }
    free(b);
}

static void random_for(int (*target)(const uint8_t *, size_t), const cmdipc__buf_t *seed,
                       double seconds) {
    uint64_t t0 = uv_hrtime();
    uint8_t *b = malloc(seed->len + 64);
    while ((double)(uv_hrtime() - t0) / 1e9 < seconds) {
        for (int k = 0; k < 100; k++, inputs++) {
            size_t n = seed->len;
            memcpy(b, seed->data, n);
            unsigned muts = (unsigned)(next_rand() % 4) + 1;
            for (unsigned m = 0; m < muts; m++) {
                switch (next_rand() % 4) {
                    case 0:
                        b[next_rand() % n] = (uint8_t)next_rand();
                        break;
                    case 1:
                        b[next_rand() % n] ^= (uint8_t)(1u << (next_rand() % 8));
                        break;
                    case 2:
                        n = (size_t)(next_rand() % n) + 1;
                        break;
                    default: { /* a length prefix rewritten */
                        size_t at = next_rand() % n;
                        for (size_t j = 0; j < 4 && at + j < n; j++)
                            b[at + j] = (uint8_t)next_rand();
                    }
                }
            }
            target(b, n);
        }
    }
    free(b);
}

static int write_corpus(const char *dir, const char *kind) {
    char path[4096];
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    mkdir(dir, 0755);
    for (int i = 0; i < 32; i++) {
        if (strcmp(kind, "frame") == 0)
            frame_seed(&b, i * 40 + 1, i % 2);
        else
            handshake_seed(&b);
        snprintf(path, sizeof(path), "%s/%s-%02d", dir, kind, i);
        FILE *f = fopen(path, "wb");
        if (f == NULL)
            return 1;
        fwrite(b.data, 1, b.len, f);
        fclose(f);
        if (strcmp(kind, "frame") != 0)
            break;
    }
    cmdipc__buf_free(&b);
    return 0;
}

int main(int argc, char **argv) {
    cmdipc_fuzz_secure_init();
    if (argc == 4 && strcmp(argv[1], "--corpus") == 0)
        return write_corpus(argv[2], argv[3]);
    const char *env = getenv("CMDIPC_FUZZ_SECONDS");
    double seconds = env ? atof(env) : 5.0;
    cmdipc__buf_t seed;
    cmdipc__buf_init(&seed);
    printf("1..2\n");
    fflush(stdout);

    /* Frames: a short stream (every flip), a long one that re-keys. */
    inputs = 0;
    frame_seed(&seed, 12, 1);
    int ok = cmdipc_fuzz_frame((const uint8_t *)seed.data, seed.len) == 12 + 1 + 1 + 2;
    deterministic(cmdipc_fuzz_frame, &seed, SIZE_MAX);
    frame_seed(&seed, 1100, 1);
    ok = ok &&
         cmdipc_fuzz_frame((const uint8_t *)seed.data, seed.len) == 1100 + 1 + 1 + 157;
    frame_seed(&seed, 30, 0);
    random_for(cmdipc_fuzz_frame, &seed, seconds / 2);
    printf("%s 1 - fuzz_frame: %llu inputs; the valid seeds read whole\n",
           ok ? "ok" : "not ok", (unsigned long long)inputs);

    /* The handshake: the valid transcript is accepted; every flip is not. */
    inputs = 0;
    handshake_seed(&seed);
    ok = cmdipc_fuzz_handshake((const uint8_t *)seed.data, seed.len) == 1;
    deterministic(cmdipc_fuzz_handshake, &seed, SIZE_MAX);
    random_for(cmdipc_fuzz_handshake, &seed, seconds / 2);
    printf("%s 2 - fuzz_handshake: %llu inputs; the valid transcript completes\n",
           ok ? "ok" : "not ok", (unsigned long long)inputs);
    cmdipc__buf_free(&seed);
    return ok ? 0 : 1;
}
