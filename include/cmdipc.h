/* cmdipc — run commands and exchange events across registries, threads,
 * processes and hosts, speaking the cmd-ipc wire protocol (spec-v1).
 *
 * The umbrella header: include this one.
 *
 *   cmdipc/errno.h      status codes and their wire codes
 *   cmdipc/registry.h   registries, commands, calls, events
 *   cmdipc/channel.h    the channel interface, messages, codec (transport writers)
 *   cmdipc/transport.h  in-memory pairs, listen/connect by URL
 *   cmdipc/secure.h     keys and options of the secure transport (+sodium)
 */
#ifndef CMDIPC_H
#define CMDIPC_H

#include "cmdipc/version.h"
#include "cmdipc/errno.h"
#include "cmdipc/registry.h"
#include "cmdipc/channel.h"
#include "cmdipc/transport.h"
#include "cmdipc/secure.h"

#endif /* CMDIPC_H */
