/* cmdipc — status codes, names, messages and wire codes, from one table. */
#include <string.h>

#include "internal.h"

const char *cmdipc_strerror(int status) {
    switch (status) {
        case 0:
            return "ok";
#define XX(name, value, wire, msg)                                                     \
    case value:                                                                        \
        return msg;
            CMDIPC_ERRNO_MAP(XX)
#undef XX
        default:
            break;
    }
    switch (status) {
#define XX(code, _) case UV_##code:
        UV_ERRNO_MAP(XX)
#undef XX
        return uv_strerror(status); /* static for the codes libuv defines */
        default:
            return "unknown error";
    }
}

const char *cmdipc_err_name(int status) {
    switch (status) {
        case 0:
            return "OK";
#define XX(name, value, wire, msg)                                                     \
    case value:                                                                        \
        return "CMDIPC_" #name;
            CMDIPC_ERRNO_MAP(XX)
#undef XX
        default:
            break;
    }
    switch (status) {
#define XX(code, _) case UV_##code:
        UV_ERRNO_MAP(XX)
#undef XX
        return uv_err_name(status);
        default:
            return "UNKNOWN";
    }
}

const char *cmdipc_err_wire_code(int status) {
    switch (status) {
#define XX(name, value, wire, msg)                                                     \
    case value:                                                                        \
        return wire;
        CMDIPC_ERRNO_MAP(XX)
#undef XX
        default:
            return NULL;
    }
}

static const struct {
    int status;
    const char *wire;
} wire_codes[] = {
#define XX(name, value, wire, msg) {value, wire},
    CMDIPC_ERRNO_MAP(XX)
#undef XX
};

int cmdipc_err_from_wire_code(const char *code) {
    if (code == NULL)
        return CMDIPC_EINTERNAL;
    for (size_t i = 0; i < sizeof(wire_codes) / sizeof(wire_codes[0]); i++)
        if (wire_codes[i].wire != NULL && strcmp(code, wire_codes[i].wire) == 0)
            return wire_codes[i].status;
    return CMDIPC_EINTERNAL;
}

unsigned cmdipc_version(void) { return CMDIPC_VERSION_HEX; }

const char *cmdipc_version_string(void) { return CMDIPC_VERSION_STRING; }

const char *cmdipc_drop_reason_name(cmdipc_drop_reason_t reason) {
    switch (reason) {
        case CMDIPC_DROP_INVALID:
            return "invalid";
        case CMDIPC_DROP_UNKNOWN_TYPE:
            return "unknown_type";
        case CMDIPC_DROP_UNMATCHED:
            return "unmatched";
        case CMDIPC_DROP_DUPLICATE_EVENT:
            return "duplicate_event";
        case CMDIPC_DROP_LATE_ANSWER:
            return "late_answer";
        case CMDIPC_DROP_CLOSED:
            return "closed";
        case CMDIPC_DROP_UNSENT:
            return "unsent";
        default:
            return NULL;
    }
}
