/* Deterministic randomness for the secure fuzz targets: a ChaCha20
 * keystream under a fixed key, restarted by cmdipc_fuzz_rng_reset(),
 * installed with randombytes_set_implementation(). Fuzz builds only. */
#include <string.h>

#include <sodium.h>

#include "fuzz_secure.h"
#include "internal.h"

static uint64_t counter;

static const char *fake_name(void) { return "cmdipc-fuzz"; }

static void fake_buf(void *buf, size_t n) {
    static const uint8_t key[32] = {'c', 'm', 'd', 'i', 'p', 'c',
                                    '-', 'f', 'u', 'z', 'z'};
    uint8_t nonce[8];
    memcpy(nonce, &counter, sizeof(nonce));
    counter++;
    crypto_stream_chacha20(buf, n, nonce, key);
}

static uint32_t fake_random(void) {
    uint32_t v;
    fake_buf(&v, sizeof(v));
    return v;
}

static randombytes_implementation fake = {
    .implementation_name = fake_name,
    .random = fake_random,
    .stir = NULL,
    .uniform = NULL,
    .buf = fake_buf,
    .close = NULL,
};

void cmdipc_fuzz_rng_reset(void) { counter = 0; }

void cmdipc_fuzz_secure_init(void) {
    static int done;
    if (done)
        return;
    done = 1;
    randombytes_set_implementation(&fake);
    cmdipc__global_init();
}

const uint8_t cmdipc_fuzz_frame_key[32] = {1, 2,  3,  4,  5,  6,  7,  8,
                                           9, 10, 11, 12, 13, 14, 15, 16};
const uint8_t cmdipc_fuzz_resp_secret[32] = {0x52, 0x45, 0x53, 0x50, 7, 7, 7, 7};
const uint8_t cmdipc_fuzz_init_secret[32] = {0x49, 0x4e, 0x49, 0x54, 9, 9, 9, 9};
const uint8_t cmdipc_fuzz_init_ephemeral[32] = {0x45, 0x50, 0x48, 3, 3, 3, 3};
