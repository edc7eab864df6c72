/* cmdipc — version and export macros. */
#ifndef CMDIPC_VERSION_H
#define CMDIPC_VERSION_H

#define CMDIPC_VERSION_MAJOR 0
#define CMDIPC_VERSION_MINOR 1
#define CMDIPC_VERSION_PATCH 0
#define CMDIPC_VERSION_HEX                                                             \
    ((CMDIPC_VERSION_MAJOR << 16) | (CMDIPC_VERSION_MINOR << 8) | CMDIPC_VERSION_PATCH)
#define CMDIPC_VERSION_STRING "0.1.0"

/* The wire protocol this library speaks. */
#define CMDIPC_PROTOCOL "spec-v1"

#if defined(_WIN32)
#if defined(CMDIPC_BUILDING)
#define CMDIPC_EXTERN __declspec(dllexport)
#else
#define CMDIPC_EXTERN
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define CMDIPC_EXTERN __attribute__((visibility("default")))
#else
#define CMDIPC_EXTERN
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CMDIPC_WUR __attribute__((warn_unused_result))
#else
#define CMDIPC_WUR
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually linked (CMDIPC_VERSION_HEX and
 * CMDIPC_VERSION_STRING describe the headers compiled against). */
CMDIPC_EXTERN unsigned cmdipc_version(void);
CMDIPC_EXTERN const char *cmdipc_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* CMDIPC_VERSION_H */
