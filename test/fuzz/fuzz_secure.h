/* The secure transport's fuzz targets (frame decoder, handshake responder)
 * and the fixed randomness they run with. Callable from libFuzzer and from
 * the fuzz-secure-smoke driver. */
#ifndef CMDIPC_FUZZ_SECURE_H
#define CMDIPC_FUZZ_SECURE_H

#include <stddef.h>
#include <stdint.h>

#include "cmdipc.h"

/* Installs a deterministic randombytes implementation (as OSS-Fuzz's
 * libsodium fake_random.h does) and initialises the library. Call before
 * anything else touches libsodium. */
void cmdipc_fuzz_secure_init(void);
/* Restarts the deterministic stream: every input sees the same "random"
 * bytes, so a seed made from that stream stays valid. */
void cmdipc_fuzz_rng_reset(void);

/* Frame decoder: the input is what follows the stream header of a stream
 * under a fixed key; its first byte chooses how the rest is split into
 * reads. */
int cmdipc_fuzz_frame(const uint8_t *data, size_t size); /* frames read */
/* Handshake responder with a fixed static key: the input is act 1 then
 * act 3 (49 + 65 bytes); act 2 is made with the fixed randomness. */
int cmdipc_fuzz_handshake(const uint8_t *data, size_t size); /* 1: completed */

/* Fixed material for seeds: the frame key, and the responder's and the
 * initiator's static secret keys. */
extern const uint8_t cmdipc_fuzz_frame_key[32];
extern const uint8_t cmdipc_fuzz_resp_secret[32];
extern const uint8_t cmdipc_fuzz_init_secret[32];
extern const uint8_t cmdipc_fuzz_init_ephemeral[32];

#endif
