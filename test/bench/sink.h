/* A channel that swallows everything sent to it, for the benchmarks that
 * need calls to stay pending (million_timers, sizes): written against the
 * public channel API (cmdipc/channel.h). */
#ifndef CMDIPC_BENCH_SINK_H
#define CMDIPC_BENCH_SINK_H

#include <cmdipc.h>

/* Creates a sink channel named name and attaches it to r; 0 or an error
 * code. The registry owns it from then on. */
int bench_sink_attach(cmdipc_registry_t *r, const char *name);

#endif
