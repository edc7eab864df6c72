/* cmdipc — internal test hooks. Not installed; reachable from tests that link
 * the uninstalled cmdipc_internal library. */
#ifndef CMDIPC_TESTING_H
#define CMDIPC_TESTING_H

#include <stdint.h>

#include "cmdipc.h"

/* A clock returning milliseconds. */
typedef uint64_t (*cmdipc__clock_fn)(void *data);

/* Replaces the registry's clock (uv_now of its loop) for deadlines, route
 * expiry, event de-duplication and retry backoff. While an injected clock is
 * set the registry arms no real timer: deadlines are processed only by
 * cmdipc__registry_run_deadlines(). Set it right after cmdipc_registry_new. */
void cmdipc__registry_set_clock(cmdipc_registry_t *r, cmdipc__clock_fn fn, void *data);

/* Processes every deadline that has passed according to the registry's clock
 * (timeouts, route expiry, registration retries). Completions it produces are
 * deferred like all others (run the loop afterwards). */
void cmdipc__registry_run_deadlines(cmdipc_registry_t *r);

/* The earliest pending deadline in clock ms, or UINT64_MAX if none. */
uint64_t cmdipc__registry_next_deadline(const cmdipc_registry_t *r);

#endif /* CMDIPC_TESTING_H */
