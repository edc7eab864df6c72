/* The harness itself: the asserts' passing paths, the helpers, and the runner's TAP
 * output (checked by running harness-selftest, whose tests fail on purpose). */
#include "harness.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

TEST(harness_asserts_pass) {
    int x = 0;
    ASSERT(1 + 1 == 2);
    ASSERT_EQ(-1, -1);
    ASSERT_NE(1, 2);
    ASSERT_LT(INT64_MIN, 0);
    ASSERT_LE(2, 2);
    ASSERT_GT(INT64_MAX, 0);
    ASSERT_GE(0, 0);
    ASSERT_UEQ(UINT64_MAX, ~(uint64_t)0);
    ASSERT_OK(0);
    ASSERT_STATUS(CMDIPC_ENOTFOUND, CMDIPC_ENOTFOUND);
    ASSERT_STR_EQ("abc", "abc");
    ASSERT_STR_EQ(NULL, NULL);
    ASSERT_STR_NE("abc", NULL);
    ASSERT_STR_NE("a", "b");
    ASSERT_NULL(NULL);
    ASSERT_NOT_NULL(&x);
    ASSERT_PTR_EQ(&x, &x);
    ASSERT_PTR_NE(&x, NULL);
    ASSERT_MEM_EQ("abc", "abd", 2);
    ASSERT_MEM_EQ(NULL, NULL, 0);

    json_t *a = json_pack("{s:i, s:[s, f]}", "a", 5, "b", "x", 1.5);
    json_t *b = json_loads("{\"b\": [\"x\", 1.5], \"a\": 5}", 0, NULL);
    ASSERT_JSON_EQ(a, b);
    ASSERT_JSON_EQ(NULL, NULL);
    json_decref(a);
    json_decref(b);
}

TEST(harness_asserts_evaluate_once) {
    int i = 0;
    const char *s = "x";
    ASSERT_EQ(i++, 0);
    ASSERT_UEQ(i++, 1);
    ASSERT_PTR_NE(s++, NULL);
    ASSERT_STR_EQ(s--, "");
    ASSERT_OK(i -= 2);
    ASSERT_EQ(0, i);
    ASSERT_STR_EQ(s, "x");
}

static int timer_called;

static void on_timer(uv_timer_t *timer) {
    timer_called++;
    uv_close((uv_handle_t *)timer, NULL);
}

TEST(harness_loop_closes) {
    uv_loop_t loop;
    uv_timer_t timer;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_timer_init(&loop, &timer));
    ASSERT_OK(uv_timer_start(&timer, on_timer, 1, 0));
    ASSERT_LOOP_CLOSES(&loop);
    ASSERT_EQ(1, timer_called);
}

TEST(harness_scratch_path) {
    char a[HARNESS_PATH_MAX], b[HARNESS_PATH_MAX];
    ASSERT_PTR_EQ(a, harness_scratch_path(a, sizeof a, "sock"));
    harness_scratch_path(b, sizeof b, "sock");
    ASSERT_STR_NE(a, b);
    ASSERT_LT(strlen(a), 100);
    struct stat st;
    ASSERT_EQ(-1, stat(a, &st));
    ASSERT_EQ(ENOENT, errno);

    /* Usable as a Unix socket address. */
    uv_loop_t loop;
    uv_pipe_t pipe;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_pipe_init(&loop, &pipe, 0));
    ASSERT_OK(uv_pipe_bind(&pipe, a));
    ASSERT_EQ(0, stat(a, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    uv_close((uv_handle_t *)&pipe, NULL); /* libuv unlinks the socket file */
    ASSERT_LOOP_CLOSES(&loop);

    /* Under $TMPDIR, unless that is too long for a socket path. */
    char *saved = getenv("TMPDIR") != NULL ? strdup(getenv("TMPDIR")) : NULL;
    ASSERT_EQ(0, setenv("TMPDIR", "/var/tmp", 1));
    ASSERT_EQ(0, strncmp(harness_scratch_path(a, sizeof a, "x"), "/var/tmp/cmdipc-", 16));
    ASSERT_EQ(
        0, setenv("TMPDIR", "/tmp/a-directory-name-much-too-long-for-a-socket-path", 1));
    ASSERT_EQ(0, strncmp(harness_scratch_path(a, sizeof a, "x"), "/tmp/cmdipc-", 12));
    ASSERT_EQ(0, saved != NULL ? setenv("TMPDIR", saved, 1) : unsetenv("TMPDIR"));
    free(saved);
}

TEST(harness_exe_path) {
    const char *path = harness_exe_path();
    ASSERT_EQ('/', path[0]);
    ASSERT_STR_EQ("test-harness", strrchr(path, '/') + 1);
    ASSERT_EQ(0, access(path, X_OK));
}

/* ---- the runner, seen from outside through harness-selftest ------------------- */

typedef struct {
    uv_process_t process;
    uv_pipe_t out;
    char buf[16384];
    size_t len;
    int64_t exit_status;
    int term_signal;
} run_t;

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    run_t *r = handle->data;
    *buf = uv_buf_init(r->buf + r->len, (unsigned)(sizeof r->buf - 1 - r->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    run_t *r = stream->data;
    if (nread > 0)
        r->len += (size_t)nread;
    if (nread < 0) {
        ASSERT_EQ(UV_EOF, nread);
        uv_close((uv_handle_t *)stream, NULL);
    }
}

static void on_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal) {
    run_t *r = process->data;
    r->exit_status = exit_status;
    r->term_signal = term_signal;
    uv_close((uv_handle_t *)process, NULL);
}

/* Runs harness-selftest (built beside this executable) with args; its stdout lands in
 * r->buf. */
static void run_selftest(run_t *r, const char *a1, const char *a2, const char *a3,
                         const char *a4) {
    char path[4096];
    snprintf(path, sizeof path, "%s", harness_exe_path());
    strcpy(strrchr(path, '/') + 1, "harness-selftest");
    char *args[] = {path, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};

    uv_loop_t loop;
    memset(r, 0, sizeof *r);
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_pipe_init(&loop, &r->out, 0));
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
         .data.stream = (uv_stream_t *)&r->out},
        {.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO},
    };
    uv_process_options_t options = {
        .file = path,
        .args = args,
        .exit_cb = on_exit_cb,
        .stdio = stdio,
        .stdio_count = 3,
    };
    r->process.data = r;
    r->out.data = r;
    ASSERT_OK(uv_spawn(&loop, &r->process, &options));
    ASSERT_OK(uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read));
    ASSERT_LOOP_CLOSES(&loop);
    r->buf[r->len] = '\0';
}

/* Whether process pid is gone or a zombie, waiting up to 5 s. */
static int process_dies(long pid) {
    for (int i = 0; i < 500; i++) {
        char path[64], state = 0;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return 1;
        int n = fscanf(f, "%*d (%*[^)]) %c", &state);
        fclose(f);
        if (n == 1 && state == 'Z')
            return 1;
        uv_sleep(10);
    }
    return 0;
}

TEST(runner_reports_tap) {
    static run_t r;
    run_selftest(&r, NULL, NULL, NULL, NULL);
    ASSERT_EQ(1, r.exit_status);
    ASSERT_EQ(0, r.term_signal);

    /* The TAP lines, comments left out. */
    static char lines[sizeof r.buf], tap[sizeof r.buf];
    strcpy(lines, r.buf);
    for (char *line = strtok(lines, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (line[0] != '#')
            strcat(strcat(tap, line), "\n");
    ASSERT_STR_EQ("1..5\n"
                  "ok 1 - passes\n"
                  "not ok 2 - fails\n"
                  "not ok 3 - crashes\n"
                  "ok 4 - skips # SKIP not today\n"
                  "not ok 5 - hangs\n",
                  tap);

    /* Reasons and captured output follow failures and skips as comments. */
    ASSERT_NOT_NULL(strstr(r.buf, "not ok 2 - fails\n# killed by signal SIGABRT (6)\n"));
    ASSERT_NOT_NULL(strstr(r.buf, ": assertion failed: two == 3 (2 == 3)\n"));
    ASSERT_NOT_NULL(strstr(r.buf, "ok 4 - skips # SKIP not today\n# skip: not today ("));
    ASSERT_NOT_NULL(strstr(r.buf, "not ok 5 - hangs\n# timeout after "));
    ASSERT_NULL(strstr(r.buf, "passes\n#"));

    /* The timeout killed the test's whole process group. */
    const char *grandchild = strstr(r.buf, "# grandchild ");
    ASSERT_NOT_NULL(grandchild);
    long pid = strtol(grandchild + 13, NULL, 10);
    ASSERT_GT(pid, 1);
    ASSERT(process_dies(pid));
}

TEST(runner_modes) {
    static run_t r;
    run_selftest(&r, "--list", NULL, NULL, NULL);
    ASSERT_EQ(0, r.exit_status);
    ASSERT_STR_EQ("passes\nfails\ncrashes\nskips\nhangs\n", r.buf);

    run_selftest(&r, "--helper", "echo", "a", "b c");
    ASSERT_EQ(3, r.exit_status);
    ASSERT_STR_EQ("echo a b c\n", r.buf);

    run_selftest(&r, "passes", NULL, NULL, NULL);
    ASSERT_EQ(0, r.exit_status);
    ASSERT_STR_EQ("1..1\nok 1 - passes\n", r.buf);

    run_selftest(&r, "skips", NULL, NULL, NULL);
    ASSERT_EQ(77, r.exit_status);
    ASSERT_STR_EQ("1..1\nok 1 - skips # SKIP not today\n", r.buf);

    run_selftest(&r, "no_such_test", NULL, NULL, NULL);
    ASSERT_EQ(2, r.exit_status);
    ASSERT_STR_EQ("", r.buf);
}

TEST_LIST_BEGIN
TEST_ENTRY(harness_asserts_pass)
TEST_ENTRY(harness_asserts_evaluate_once)
TEST_ENTRY(harness_loop_closes)
TEST_ENTRY(harness_scratch_path)
TEST_ENTRY(harness_exe_path)
TEST_ENTRY(runner_reports_tap)
TEST_ENTRY(runner_modes)
TEST_LIST_END
