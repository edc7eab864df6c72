/* cmdipc — declarations shared by the transports (not installed). */
#ifndef CMDIPC_TRANSPORT_INT_H
#define CMDIPC_TRANSPORT_INT_H

#include "internal.h"

/* The common part of every listener. The scheme's code sets close (called
 * once, from cmdipc_listener_close() or the registry's close) and must call
 * cmdipc__listener_closed() when it has released its handles. */
struct cmdipc_listener_s {
    cmdipc_registry_t *reg;
    cmdipc_resource_t *res;
    char *url;
    char *prefix;
    cmdipc_accept_cb accept_cb;
    void *accept_data;
    uint64_t counter;
    int closing;
    cmdipc_listen_opts_t opts;
    void (*close)(cmdipc_listener_t *l);
    void *impl;
};

/* Allocates a listener for r and ties it to r. */
int cmdipc__listener_new(cmdipc_registry_t *r, const char *url,
                         const cmdipc_listen_opts_t *opts, cmdipc_listener_t **out);
/* The scheme finished closing l: frees it. */
void cmdipc__listener_closed(cmdipc_listener_t *l);
/* Names a new connection: the accept callback's choice or <prefix><n>.
 * Returns 0 with the name in buf, or the callback's refusal status. */
int cmdipc__listener_name(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *buf,
                          size_t size);



/* inproc:// (memory.c) */
int cmdipc__inproc_listen(cmdipc_listener_t *l, const char *name);
int cmdipc__inproc_connect(cmdipc_registry_t *r, const char *name, const char *channel_id,
                           cmdipc_channel_t **out);

#endif /* CMDIPC_TRANSPORT_INT_H */
