/* The frame decoder fuzz target (SECURITY.md (c) 24, frame_fuzzer): length
 * prefix and secretstream pull under a fixed key, the input fed in reads of
 * fuzzer-chosen sizes. Whatever it returns, a frame handed out is within
 * the limits and whole lines end with a newline; nothing is allocated
 * beyond the largest frame allowed. Built for libFuzzer (clang
 * -fsanitize=fuzzer -DCMDIPC_LIBFUZZER, with fuzz_rng.c) and linked into
 * fuzz-secure-smoke for make test. */
#include <stdlib.h>

#include "fuzz_secure.h"
#include "secure_int.h"

#define MAX_LINE 4096

int cmdipc_fuzz_frame(const uint8_t *data, size_t size) {
    cmdipc__ftx_t tx;
    cmdipc__frx_t rx;
    uint8_t hdr[CMDIPC__STREAM_HEADER];
    cmdipc_fuzz_rng_reset();
    if (cmdipc__ftx_init(&tx, cmdipc_fuzz_frame_key, hdr, 1000, 0, 0) != 0)
        abort();
    cmdipc__frx_init(&rx, cmdipc_fuzz_frame_key, MAX_LINE);
    if (cmdipc__frx_feed(&rx, hdr, sizeof(hdr)) != 0)
        abort();
    size_t step = size > 0 ? (size_t)data[0] % 64 + 1 : 1, at = size > 0 ? 1 : 0;
    int rc = 0, final = 0, frames = 0;
    while (at < size && rc >= 0) {
        size_t n = size - at < step ? size - at : step;
        if (cmdipc__frx_feed(&rx, data + at, n) != 0)
            abort();
        at += n;
        for (;;) {
            const uint8_t *m;
            size_t len;
            int ctl, fin;
            rc = cmdipc__frx_next(&rx, &m, &len, &ctl, &fin);
            if (rc <= 0)
                break;
            if (final || len > cmdipc__frame_max(MAX_LINE))
                abort(); /* a frame after FINAL, or over the limit */
            if (ctl == CMDIPC__CTL_NONE && (len == 0 || m[len - 1] != '\n'))
                abort();
            final = fin;
            frames++;
        }
        if (rc < 0 && rc != CMDIPC_EFRAMESIZE && rc != CMDIPC_EFRAMEAUTH &&
            rc != CMDIPC_EFRAMETAG && rc != CMDIPC_EPROTO)
            abort();
    }
    if (cmdipc__frame_max_alloc() > cmdipc__frame_max(MAX_LINE) + 65536)
        abort();
    cmdipc__frx_free(&rx);
    return frames;
}

#ifdef CMDIPC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cmdipc_fuzz_secure_init();
    cmdipc_fuzz_frame(data, size);
    return 0;
}
#endif
