/* cmdipc — the in-tree TAP test harness (modelled on libuv's test runner).
 *
 * A test file defines its tests and ends with their table:
 *
 *     TEST(codec_round_trip) { ... ASSERT_EQ(3, n); ... }
 *     HELPER(echo_peer) { ... return 0; }
 *
 *     TEST_LIST_BEGIN
 *       TEST_ENTRY(codec_round_trip)
 *       TEST_ENTRY_TIMEOUT(slow_thing, 60000)   (ms; the default is 30000)
 *       TEST_HELPER(echo_peer)                  (not a test; see below)
 *     TEST_LIST_END
 *
 * runner.c (the `harness` static library) provides main():
 *
 *     ./test-x                  every test, each in a forked child in its own process
 *                               group, printing TAP; exit 0 when none failed, else 1
 *     ./test-x NAME             that test only, in this process (for gdb)
 *     ./test-x --list           the test names
 *     ./test-x --helper NAME ARGS...
 *                               runs HELPER(NAME) and exits with its return value
 *
 * A test passes by returning. Asserts print file, line, the expression and both
 * values, then abort(): they are safe in uv callbacks and on any thread, since the
 * whole test process dies. RETURN_SKIP(why) ends the test as skipped (exit 77). A
 * test's stdout and stderr are shown, as TAP comments, only if it fails or skips. The
 * environment variable CMDIPC_TEST_TIMEOUT_MULTIPLIER scales every timeout.
 *
 * A helper is `int helper_NAME(int argc, char **argv)`, written HELPER(NAME):
 * argv[0] is NAME and argv[1..argc-1] are the arguments after it. Tests spawn
 * helpers as { harness_exe_path(), "--helper", NAME, args..., NULL }.
 */
#ifndef CMDIPC_TEST_HARNESS_H
#define CMDIPC_TEST_HARNESS_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "cmdipc.h"

typedef struct {
    const char *name;
    void (*test)(void);                   /* NULL for a helper */
    int (*helper)(int argc, char **argv); /* NULL for a test */
    unsigned timeout_ms;                  /* 0: the default */
} harness_entry_t;

/* Defined by TEST_LIST_BEGIN ... TEST_LIST_END in the test file. */
extern const harness_entry_t harness_entries[];

#define HARNESS_DEFAULT_TIMEOUT_MS 30000
#define HARNESS_SKIP_EXIT          77

#define TEST(name)   static void test_##name(void)
#define HELPER(name) static int helper_##name(int argc, char **argv)

/* clang-format off */
#define TEST_LIST_BEGIN              const harness_entry_t harness_entries[] = {
#define TEST_ENTRY(name)             {#name, test_##name, NULL, 0},
#define TEST_ENTRY_TIMEOUT(name, ms) {#name, test_##name, NULL, (ms)},
#define TEST_HELPER(name)            {#name, NULL, helper_##name, 0},
#define TEST_LIST_END                {NULL, NULL, NULL, 0}};
/* clang-format on */

/* ---- helpers ---------------------------------------------------------------- */

/* Writes "$TMPDIR/cmdipc-<pid>-<n>-<random>-<tag>" (/tmp when $TMPDIR is unset or
 * longer than 40 bytes) to buf and returns buf: a fresh path (nothing is created)
 * shorter than HARNESS_PATH_MAX (100), so it fits a Unix socket address. Fails the
 * test if it does not fit. Use char buf[HARNESS_PATH_MAX]. */
#define HARNESS_PATH_MAX 100
char *harness_scratch_path(char *buf, size_t size, const char *tag);

/* The absolute path of the running test executable (static storage). */
const char *harness_exe_path(void);

/* Runs the loop until it has nothing left, then asserts uv_loop_close() == 0 (on
 * failure the handles still open are printed). */
#define ASSERT_LOOP_CLOSES(loop) harness__loop_closes(__FILE__, __LINE__, #loop, (loop))

/* Ends the current test as skipped: prints why and exits 77. */
#define RETURN_SKIP(why) harness__skip(__FILE__, __LINE__, (why))

/* ---- asserts ------------------------------------------------------------------ */

#define ASSERT(expr)                                                                     \
    do {                                                                                 \
        if (!(expr))                                                                     \
            harness__fail(__FILE__, __LINE__, "ASSERT(%s)", #expr);                      \
    } while (0)

/* Stringified by the callers, before their arguments are macro-expanded. */
#define HARNESS__CMP(type, fmt, a, op, b, sa, sb)                                        \
    do {                                                                                 \
        type harness_a_ = (a);                                                           \
        type harness_b_ = (b);                                                           \
        if (!(harness_a_ op harness_b_))                                                 \
            harness__fail(__FILE__, __LINE__, "%s %s %s (%" fmt " %s %" fmt ")", sa,     \
                          #op, sb, harness_a_, #op, harness_b_);                         \
    } while (0)

#define ASSERT_EQ(a, b)  HARNESS__CMP(int64_t, PRId64, a, ==, b, #a, #b)
#define ASSERT_NE(a, b)  HARNESS__CMP(int64_t, PRId64, a, !=, b, #a, #b)
#define ASSERT_LT(a, b)  HARNESS__CMP(int64_t, PRId64, a, <, b, #a, #b)
#define ASSERT_LE(a, b)  HARNESS__CMP(int64_t, PRId64, a, <=, b, #a, #b)
#define ASSERT_GT(a, b)  HARNESS__CMP(int64_t, PRId64, a, >, b, #a, #b)
#define ASSERT_GE(a, b)  HARNESS__CMP(int64_t, PRId64, a, >=, b, #a, #b)
#define ASSERT_UEQ(a, b) HARNESS__CMP(uint64_t, PRIu64, a, ==, b, #a, #b)

#define ASSERT_PTR_EQ(a, b) HARNESS__CMP(const void *, "p", a, ==, b, #a, #b)
#define ASSERT_PTR_NE(a, b) HARNESS__CMP(const void *, "p", a, !=, b, #a, #b)
#define ASSERT_NULL(p)      HARNESS__CMP(const void *, "p", p, ==, NULL, #p, "NULL")
#define ASSERT_NOT_NULL(p)  HARNESS__CMP(const void *, "p", p, !=, NULL, #p, "NULL")

/* status == 0; a failure prints the status's name and message. */
#define ASSERT_OK(status)                                                                \
    harness__status(__FILE__, __LINE__, "ASSERT_OK(" #status ")", 0, (status))
/* actual == expected; a failure prints both names. */
#define ASSERT_STATUS(expected, actual)                                                  \
    harness__status(__FILE__, __LINE__, "ASSERT_STATUS(" #expected ", " #actual ")",     \
                    (expected), (actual))

/* NULL-safe: two NULLs are equal, NULL and a string are not. */
#define ASSERT_STR_EQ(a, b) harness__str(__FILE__, __LINE__, #a, #b, (a), (b), 1)
#define ASSERT_STR_NE(a, b) harness__str(__FILE__, __LINE__, #a, #b, (a), (b), 0)

#define ASSERT_MEM_EQ(a, b, n) harness__mem(__FILE__, __LINE__, #a, #b, (a), (b), (n))

/* json_equal(); two NULLs are equal. Beware: integer 5 and real 5.0 differ. */
#define ASSERT_JSON_EQ(a, b) harness__json(__FILE__, __LINE__, #a, #b, (a), (b))

/* ---- internals used by the macros --------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define HARNESS__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HARNESS__PRINTF(f, a)
#endif

_Noreturn void harness__fail(const char *file, int line, const char *fmt, ...)
    HARNESS__PRINTF(3, 4);
_Noreturn void harness__skip(const char *file, int line, const char *why);
void harness__status(const char *file, int line, const char *expr, int expected,
                     int actual);
void harness__str(const char *file, int line, const char *ea, const char *eb,
                  const char *a, const char *b, int want_equal);
void harness__mem(const char *file, int line, const char *ea, const char *eb,
                  const void *a, const void *b, size_t n);
void harness__json(const char *file, int line, const char *ea, const char *eb,
                   const json_t *a, const json_t *b);
void harness__loop_closes(const char *file, int line, const char *expr, uv_loop_t *loop);

#endif /* CMDIPC_TEST_HARNESS_H */
