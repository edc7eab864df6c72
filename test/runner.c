/* cmdipc — the test runner: main() of every test executable (see harness.h). */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP_REASON_MAX 256

static char exe_path[4096];
static const harness_entry_t *current; /* the test being run, if any */
static int in_child;                   /* this is a forked test child */
static char *skip_reason; /* MAP_SHARED: the child writes, the runner reads */

/* ---- asserts and helpers ------------------------------------------------------ */

void harness__fail(const char *file, int line, const char *fmt, ...) {
    char msg[16384];
    int n = snprintf(msg, sizeof msg, "%s:%d: assertion failed: ", file, line);
    n = n > 0 && (size_t)n < sizeof msg ? n : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s\n", msg);
    abort();
}

void harness__skip(const char *file, int line, const char *why) {
    fflush(stdout);
    fprintf(stderr, "skip: %s (%s:%d)\n", why, file, line);
    if (in_child) {
        if (skip_reason != NULL)
            snprintf(skip_reason, SKIP_REASON_MAX, "%s", why);
    } else if (current != NULL) {
        printf("ok 1 - %s # SKIP %s\n", current->name, why);
    }
    exit(HARNESS_SKIP_EXIT);
}

void harness__status(const char *file, int line, const char *expr, int expected,
                     int actual) {
    if (expected != actual)
        harness__fail(file, line, "%s: expected %s (%d), got %s (%d: %s)", expr,
                      cmdipc_err_name(expected), expected, cmdipc_err_name(actual),
                      actual, cmdipc_strerror(actual));
}

#define QUOTED(s) (s) ? "\"" : "", (s) ? (s) : "NULL", (s) ? "\"" : ""

void harness__str(const char *file, int line, const char *ea, const char *eb,
                  const char *a, const char *b, int want_equal) {
    int equal = (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
    const char *op = want_equal ? "==" : "!=";
    if (equal != want_equal)
        harness__fail(file, line, "%s %s %s (%s%s%s %s %s%s%s)", ea, op, eb, QUOTED(a),
                      op, QUOTED(b));
}

static void hex(char *out, size_t size, const unsigned char *p, size_t n) {
    out[0] = '\0';
    for (size_t i = 0, len = 0; i < n && len + 4 < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%02x ", p[i]);
}

void harness__mem(const char *file, int line, const char *ea, const char *eb,
                  const void *a, const void *b, size_t n) {
    if (n == 0 || (a != NULL && b != NULL && memcmp(a, b, n) == 0))
        return;
    if (a == NULL || b == NULL)
        harness__fail(file, line, "memcmp(%s, %s, %zu) == 0 (%p, %p)", ea, eb, n, a, b);
    const unsigned char *pa = a, *pb = b;
    size_t at = 0;
    while (pa[at] == pb[at])
        at++;
    size_t len = n - at < 16 ? n - at : 16;
    char ha[64], hb[64];
    hex(ha, sizeof ha, pa + at, len);
    hex(hb, sizeof hb, pb + at, len);
    harness__fail(file, line,
                  "memcmp(%s, %s, %zu) == 0: first difference at offset %zu\n"
                  "  %s + %zu: %s\n  %s + %zu: %s",
                  ea, eb, n, at, ea, at, ha, eb, at, hb);
}

void harness__json(const char *file, int line, const char *ea, const char *eb,
                   const json_t *a, const json_t *b) {
    if ((a == NULL || b == NULL) ? a == b : json_equal(a, b))
        return;
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    char *da = a != NULL ? json_dumps(a, flags) : NULL;
    char *db = b != NULL ? json_dumps(b, flags) : NULL;
    harness__fail(file, line, "json_equal(%s, %s)\n  %s = %s\n  %s = %s", ea, eb, ea,
                  da != NULL ? da : "NULL", eb, db != NULL ? db : "NULL");
}

void harness__loop_closes(const char *file, int line, const char *expr, uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(loop);
    if (rc == 0)
        return;
    fflush(stdout);
    fprintf(stderr, "handles still open on %s:\n", expr);
    uv_print_all_handles(loop, stderr);
    harness__fail(file, line, "uv_loop_close(%s) == 0 (%s == 0)", expr, uv_err_name(rc));
}

char *harness_scratch_path(char *buf, size_t size, const char *tag) {
    static atomic_uint counter;
    unsigned rnd = 0;
    if (getentropy(&rnd, sizeof rnd) != 0)
        rnd = (unsigned)uv_hrtime();
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0' || strlen(dir) > 40)
        dir = "/tmp";
    int n = snprintf(buf, size, "%s/cmdipc-%ld-%u-%08x-%s", dir, (long)getpid(),
                     atomic_fetch_add(&counter, 1), rnd, tag != NULL ? tag : "");
    if (n < 0 || (size_t)n >= size || n >= HARNESS_PATH_MAX)
        harness__fail(__FILE__, __LINE__, "scratch path for tag \"%s\" shorter than %d",
                      tag, HARNESS_PATH_MAX);
    return buf;
}

const char *harness_exe_path(void) {
    if (exe_path[0] == '\0')
        harness__fail(__FILE__, __LINE__, "readlink(\"/proc/self/exe\") succeeded");
    return exe_path;
}

/* ---- the runner ---------------------------------------------------------------- */

/* Prints the captured output of a test as TAP comments. */
static void print_captured(FILE *out) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    rewind(out);
    while ((n = getline(&line, &cap, out)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        printf("# %s\n", line);
    }
    free(line);
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Runs test number num in a forked child; prints its TAP line; returns 1 if it failed. */
static int run_forked(const harness_entry_t *e, int num, double multiplier) {
    unsigned long timeout =
        (unsigned long)((e->timeout_ms ? e->timeout_ms : HARNESS_DEFAULT_TIMEOUT_MS) *
                        multiplier);
    FILE *out = tmpfile();
    if (out == NULL) {
        printf("not ok %d - %s\n# tmpfile: %s\n", num, e->name, strerror(errno));
        return 1;
    }
    if (skip_reason != NULL)
        skip_reason[0] = '\0';
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        printf("not ok %d - %s\n# fork: %s\n", num, e->name, strerror(errno));
        fclose(out);
        return 1;
    }
    if (pid == 0) {
        setpgid(0, 0); /* a group of its own: a timeout kills its helpers too */
        if (freopen("/dev/null", "r", stdin) == NULL)
            exit(2);
        dup2(fileno(out), STDOUT_FILENO);
        dup2(fileno(out), STDERR_FILENO);
        fclose(out);
        setvbuf(stdout, NULL, _IOLBF, 0);
        in_child = 1;
        current = e;
        e->test();
        exit(0);
    }
    setpgid(pid, pid);

    /* Wait without reaping (WNOWAIT), so the group id stays ours until killed. */
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout * 1000000;
    int timed_out = 0;
    long delay = 50;
    for (;;) {
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid)
            break;
        if (uv_hrtime() >= deadline) {
            timed_out = 1;
            break;
        }
        sleep_us(delay);
        delay = delay < 10000 ? delay * 2 : 10000;
    }
    kill(-pid, SIGKILL); /* the test on timeout, and any helper it left behind */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;

    char reason[64] = ""; /* empty: passed or skipped */
    int skipped =
        !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == HARNESS_SKIP_EXIT;
    if (timed_out) {
        snprintf(reason, sizeof reason, "timeout after %lu ms", timeout);
    } else if (WIFSIGNALED(status)) {
        const char *sig = sigabbrev_np(WTERMSIG(status));
        snprintf(reason, sizeof reason, "killed by signal SIG%s (%d)",
                 sig != NULL ? sig : "?", WTERMSIG(status));
    } else if (WEXITSTATUS(status) != 0 && !skipped) {
        snprintf(reason, sizeof reason, "exit code %d", WEXITSTATUS(status));
    }
    if (skipped) {
        const char *why = "skipped";
        if (skip_reason != NULL && skip_reason[0] != '\0') {
            skip_reason[strcspn(skip_reason, "\r\n")] = '\0';
            why = skip_reason;
        }
        printf("ok %d - %s # SKIP %s\n", num, e->name, why);
    } else if (reason[0] != '\0') {
        printf("not ok %d - %s\n# %s\n", num, e->name, reason);
    } else {
        printf("ok %d - %s\n", num, e->name);
    }
    if (skipped || reason[0] != '\0')
        print_captured(out);
    fclose(out);
    fflush(stdout);
    return reason[0] != '\0';
}

static double timeout_multiplier(void) {
    const char *s = getenv("CMDIPC_TEST_TIMEOUT_MULTIPLIER");
    char *end;
    double m = s != NULL ? strtod(s, &end) : 0;
    return s != NULL && end != s && *end == '\0' && m > 0 ? m : 1.0;
}

static const harness_entry_t *find(const char *name, int helper) {
    for (const harness_entry_t *e = harness_entries; e->name != NULL; e++)
        if (strcmp(e->name, name) == 0 && (helper ? e->helper != NULL : e->test != NULL))
            return e;
    fprintf(stderr, "no %s named \"%s\" (try --list)\n", helper ? "helper" : "test",
            name);
    return NULL;
}

int main(int argc, char **argv) {
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = '\0';

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (const harness_entry_t *e = harness_entries; e->name != NULL; e++)
            if (e->test != NULL)
                printf("%s\n", e->name);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--helper") == 0) {
        const harness_entry_t *e = find(argv[2], 1);
        return e != NULL ? e->helper(argc - 2, argv + 2) : 2;
    }
    if (argc == 2 && argv[1][0] != '-') {
        if ((current = find(argv[1], 0)) == NULL)
            return 2;
        printf("1..1\n");
        fflush(stdout);
        current->test();
        printf("ok 1 - %s\n", current->name);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--list | NAME | --helper NAME [ARGS...]]\n", argv[0]);
        return 2;
    }

    int total = 0, failed = 0, num = 0;
    for (const harness_entry_t *e = harness_entries; e->name != NULL; e++)
        total += e->test != NULL;
    void *shared = mmap(NULL, SKIP_REASON_MAX, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    skip_reason = shared != MAP_FAILED ? shared : NULL;
    double multiplier = timeout_multiplier();

    printf("1..%d\n", total);
    fflush(stdout);
    for (const harness_entry_t *e = harness_entries; e->name != NULL; e++)
        if (e->test != NULL)
            failed += run_forked(e, ++num, multiplier);
    if (skip_reason != NULL)
        munmap(skip_reason, SKIP_REASON_MAX);
    return failed > 0;
}
