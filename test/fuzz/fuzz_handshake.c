/* The handshake responder fuzz target (SECURITY.md (c) 24,
 * handshake_responder_fuzzer): the responder's state machine with a fixed
 * static key and deterministic randomness (randombytes_set_implementation,
 * fuzz_rng.c) reads act 1, writes act 2, reads act 3. A failure must leave
 * the handshake dead and wiped, with the status one of the documented ones;
 * a success must have learned the initiator's key. Built for libFuzzer
 * (clang -fsanitize=fuzzer -DCMDIPC_LIBFUZZER, with fuzz_rng.c) and linked
 * into fuzz-secure-smoke for make test. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_secure.h"
#include "secure_int.h"

static int expected_failure(int rc) {
    return rc == CMDIPC_EHSAUTH || rc == CMDIPC_EHSVERSION || rc == CMDIPC_EHSBADKEY ||
           rc == UV_EINVAL;
}

int cmdipc_fuzz_handshake(const uint8_t *data, size_t size) {
    static cmdipc_keypair_t *key;
    cmdipc__hs_t hs;
    uint8_t act2[CMDIPC__HS_ACT2], i2r[32], r2i[32];
    size_t n;
    if (key == NULL && cmdipc_keypair_from_secret(cmdipc_fuzz_resp_secret, &key) != 0)
        abort();
    cmdipc_fuzz_rng_reset();
    cmdipc__hs_init(&hs, CMDIPC__HS_RESPONDER, (const uint8_t *)CMDIPC__PROLOGUE,
                    strlen(CMDIPC__PROLOGUE), key, NULL);
    size_t len1 = size < CMDIPC__HS_ACT1 ? size : CMDIPC__HS_ACT1;
    int rc = cmdipc__hs_read_act(&hs, data, len1);
    if (rc == 0) {
        if (cmdipc__hs_write_act(&hs, act2, sizeof(act2), &n) != 0 || n != sizeof(act2))
            abort();
        rc = cmdipc__hs_read_act(&hs, data + len1, size - len1);
        if (rc == 0) {
            if (cmdipc__hs_action(&hs) != CMDIPC__HS_SPLIT || sodium_is_zero(hs.rs, 32))
                abort();
            if (cmdipc__hs_split(&hs, i2r, r2i) != 0 || !cmdipc__hs_wiped(&hs))
                abort();
            return 1;
        }
    }
    if (!expected_failure(rc) || cmdipc__hs_action(&hs) != CMDIPC__HS_FAILED ||
        !cmdipc__hs_wiped(&hs))
        abort();
    return 0;
}

#ifdef CMDIPC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cmdipc_fuzz_secure_init();
    cmdipc_fuzz_handshake(data, size);
    return 0;
}
#endif
