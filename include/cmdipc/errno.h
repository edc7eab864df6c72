/* cmdipc — status codes.
 *
 * Every cmdipc function that can fail returns an int: 0 on success or a
 * negative status. libuv's codes (UV_E*, negative errno values and the
 * -3000..-4095 block) pass through unchanged, so uv_strerror() works on them
 * too. cmdipc's own codes sit in the block -20000..-20099 and are generated,
 * with their names and messages, from the single table below.
 *
 * A status means the same whether it arose locally or came from a peer: a
 * remote "not_found" answer reaches the caller as CMDIPC_ENOTFOUND, exactly
 * like a not_found decided by this registry.
 */
#ifndef CMDIPC_ERRNO_H
#define CMDIPC_ERRNO_H

#include "cmdipc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, wire code or NULL, message)
 *
 * The first six carry a spec-v1 wire code: the five execute error codes and
 * the one register error code. The others are local to this process. */
#define CMDIPC_ERRNO_MAP(XX)                                                           \
    XX(ENOTFOUND, -20001, "not_found", "command not found")                            \
    XX(EINVALREQ, -20002, "invalid_request", "invalid request")                        \
    XX(EINTERNAL, -20003, "internal_error", "internal error")                          \
    XX(ETIMEDOUT, -20004, "timeout", "request timed out")                              \
    XX(EDISCONNECTED, -20005, "channel_disconnected", "channel disconnected")          \
    XX(EDUPLICATE, -20006, "duplicate_command", "duplicate command")                   \
    XX(ECANCELED, -20010, NULL, "operation canceled")                                  \
    XX(EOVERLOAD, -20011, NULL, "overloaded: queue or pending-call cap reached")       \
    XX(ECLOSED, -20012, NULL, "registry or channel is closing or closed")              \
    XX(EPROTO, -20013, NULL, "protocol error")                                         \
    XX(ESLOWCONSUMER, -20014, NULL, "peer does not keep up: send queue limit reached") \
    XX(ELINETOOLONG, -20020, NULL, "line longer than the limit")                       \
    XX(EJSONDEPTH, -20021, NULL, "JSON nested deeper than the limit")                  \
    XX(EJSONSIZE, -20022, NULL, "JSON holds more containers than the limit")           \
    XX(EBADJSON, -20023, NULL, "invalid JSON or invalid UTF-8")                        \
    XX(EDUPKEY, -20024, NULL, "JSON object with a duplicate key")                      \
    XX(EJSONNUL, -20025, NULL, "JSON string holding a NUL character")                  \
    XX(EJSONRANGE, -20026, NULL, "JSON number out of range")                           \
    XX(EBADMSG, -20027, NULL, "not a valid spec-v1 message")                           \
    XX(EUNKNOWNTYPE, -20028, NULL, "unknown message type")                             \
    XX(EPEERREJECTED, -20030, NULL, "peer rejected by policy")                         \
    /* The secure transport (cmdipc/secure.h). */                                      \
    XX(EKEYFILE, -20039, NULL, "key file readable or writable by group or others")     \
    XX(EHSTIMEOUT, -20040, NULL, "secure handshake timed out")                         \
    XX(EHSVERSION, -20041, NULL, "secure handshake: unknown version")                  \
    XX(EHSBADKEY, -20042, NULL, "low-order public key refused")                        \
    XX(EHSAUTH, -20043, NULL, "secure handshake: the peer failed to authenticate")     \
    XX(EHSEOF, -20044, NULL, "connection closed during the secure handshake")          \
    XX(EUNAUTHORIZED, -20045, NULL, "peer key not authorized")                         \
    XX(EFRAMESIZE, -20046, NULL, "secure frame length out of range")                   \
    XX(EFRAMEAUTH, -20047, NULL, "secure frame failed authentication")                 \
    XX(EFRAMETAG, -20048, NULL, "secure frame with a forbidden tag")                   \
    XX(ETRUNCATED, -20049, NULL, "secure stream ended without its final frame")

typedef enum {
#define CMDIPC__ERRNO_ENUM(name, value, wire, msg) CMDIPC_##name = value,
    CMDIPC_ERRNO_MAP(CMDIPC__ERRNO_ENUM)
#undef CMDIPC__ERRNO_ENUM
        CMDIPC__ERRNO_FIRST = -20099 /* lowest value of the block (not a status) */
} cmdipc_errno_t;

/* The message of a status: cmdipc's own codes, libuv's codes (through
 * uv_strerror) and 0 ("ok"). Never NULL; an unknown code yields
 * "unknown error". The string is static. */
CMDIPC_EXTERN const char *cmdipc_strerror(int status);

/* The symbolic name of a status ("CMDIPC_ENOTFOUND", "EINVAL" for libuv's,
 * "OK" for 0). Never NULL; static. */
CMDIPC_EXTERN const char *cmdipc_err_name(int status);

/* The spec-v1 wire code of a status ("not_found", ..., "duplicate_command"),
 * or NULL when the status has none. */
CMDIPC_EXTERN const char *cmdipc_err_wire_code(int status);

/* The status of a wire code. An unknown or NULL code yields
 * CMDIPC_EINTERNAL, as the protocol requires of receivers. */
CMDIPC_EXTERN int cmdipc_err_from_wire_code(const char *code);

#ifdef __cplusplus
}
#endif
#endif /* CMDIPC_ERRNO_H */
