/* Not a meson test: a test binary whose tests fail on purpose (an assert, a crash, a
 * timeout) next to one that passes and one that skips. test-harness.c runs it and
 * checks the runner's TAP output and exit status. */
#include "harness.h"

#include <signal.h>
#include <unistd.h>

TEST(passes) { ASSERT_EQ(2, 1 + 1); }

TEST(fails) {
    int two = 2;
    ASSERT_EQ(two, 3);
}

TEST(crashes) { raise(SIGSEGV); }

TEST(skips) { RETURN_SKIP("not today"); }

/* Leaves a grandchild in its process group: the timeout must kill both. */
TEST(hangs) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        for (;;)
            pause();
    printf("grandchild %ld\n", (long)pid);
    fflush(stdout);
    for (;;)
        pause();
}

HELPER(echo) {
    for (int i = 0; i < argc; i++)
        printf("%s%s", i > 0 ? " " : "", argv[i]);
    printf("\n");
    return 3;
}

TEST_LIST_BEGIN
TEST_ENTRY(passes)
TEST_ENTRY(fails)
TEST_ENTRY(crashes)
TEST_ENTRY(skips)
TEST_HELPER(echo)
TEST_ENTRY_TIMEOUT(hangs, 300)
TEST_LIST_END
