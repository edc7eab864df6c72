/* Fuzz targets, callable from libFuzzer and from the fuzz-smoke driver. */
#ifndef CMDIPC_FUZZ_H
#define CMDIPC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Cross-checks the envelope scanner against jansson on one input. */
void cmdipc_fuzz_decode(const uint8_t *data, size_t size);

#endif
