/* Channels over streams the application already has (cmdipc_adopt,
 * cmdipc_adopt_fd): a socketpair, the application's own uv_pipe_t and
 * uv_tcp_t handles (a connection accepted by its own libuv server), a
 * read/write pair of pipes; ownership, release callbacks, peer
 * credentials, refusals that leave the streams untouched. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static int add_ready(cmdipc_registry_t *r) { return tu_has_command(r, "math.add"); }

static void run_until_known(uv_loop_t *loop, cmdipc_registry_t *r) {
    uint64_t t0 = uv_hrtime();
    while (!add_ready(r)) {
        uv_run(loop, UV_RUN_NOWAIT);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
        uv_sleep(1);
    }
}

static void call_add(uv_loop_t *loop, cmdipc_registry_t *r) {
    tu_result_t res = {0};
    json_t *rq = tu_json("{\"a\":20,\"b\":22}");
    ASSERT_OK(tu_exec(r, "math.add", rq, &res));
    json_decref(rq);
    uint64_t t0 = uv_hrtime();
    while (!res.done) {
        uv_run(loop, UV_RUN_NOWAIT);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
        uv_sleep(1);
    }
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), 42);
    tu_result_clear(&res);
}

static int fd_open(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

TEST(adopt_fd_socketpair) {
    uv_loop_t loop;
    int sv[2];
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    cmdipc_registry_t *srv = tu_registry(&loop, "srv", NULL);
    cmdipc_registry_t *cli = tu_registry(&loop, "cli", "srv");
    tu_register(&loop, srv, "math.add", tu_add_fn, NULL);
    cmdipc_channel_t *a, *b;
    /* cmdipc owns them from there: the caller's descriptor is closed (the
     * next one opened may reuse its number, so look at once). */
    ASSERT_OK(cmdipc_adopt_fd(srv, "cli", sv[0], -1, NULL, &a));
    ASSERT(!fd_open(sv[0]));
    ASSERT_OK(cmdipc_adopt_fd(cli, "srv", sv[1], -1, NULL, &b));
    ASSERT(!fd_open(sv[1]));
    ASSERT(cmdipc_channel_is_up(a));
    cmdipc_peer_info_t pi;
    ASSERT_OK(cmdipc_channel_peer(a, &pi));
    ASSERT_EQ(pi.has_creds, 1);
    ASSERT_EQ(pi.pid, getpid());
    ASSERT_UEQ(pi.uid, getuid());
    run_until_known(&loop, cli);
    call_add(&loop, cli);
    tu_close_all(&loop, cli, srv, NULL);
}

/* ---- the application's own handles ---------------------------------------- */

typedef struct {
    int released;
    uv_stream_t *last;
    void *data_seen; /* the data field when given back */
} rel_t;

static void release_cb(uv_stream_t *s, void *data) {
    rel_t *r = data;
    r->released++;
    r->last = s;
    r->data_seen = s->data;
    free(s);
}

static uv_pipe_t *app_pipe(uv_loop_t *loop, int fd, void *tag) {
    uv_pipe_t *p = malloc(sizeof(*p));
    ASSERT_NOT_NULL(p);
    ASSERT_OK(uv_pipe_init(loop, p, 0));
    ASSERT_OK(uv_pipe_open(p, fd));
    p->data = tag;
    return p;
}

TEST(adopt_app_pipes_and_release) {
    uv_loop_t loop;
    int sv[2], up[2], down[2];
    static int tag_a, tag_r, tag_w;
    rel_t rel = {0};
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    ASSERT_OK(pipe(up));   /* cli -> srv */
    ASSERT_OK(pipe(down)); /* srv -> cli */
    cmdipc_registry_t *srv = tu_registry(&loop, "srv", NULL);
    cmdipc_registry_t *cli = tu_registry(&loop, "cli", "srv");
    cmdipc_registry_t *cli2 = tu_registry(&loop, "cli2", "srv");
    tu_register(&loop, srv, "math.add", tu_add_fn, NULL);
    cmdipc_adopt_opts_t ao;
    cmdipc_adopt_opts_init(&ao);
    ao.release_cb = release_cb;
    ao.release_data = &rel;
    /* One socket both ways on each side. */
    uv_pipe_t *pa = app_pipe(&loop, sv[0], &tag_a), *pb = app_pipe(&loop, sv[1], &tag_a);
    ASSERT_OK(cmdipc_adopt(srv, "cli", (uv_stream_t *)pa, NULL, &ao, NULL));
    ASSERT_OK(cmdipc_adopt(cli, "srv", (uv_stream_t *)pb, NULL, &ao, NULL));
    /* A pair of pipes, one per direction. */
    uv_pipe_t *sr = app_pipe(&loop, up[0], &tag_r), *sw = app_pipe(&loop, down[1], &tag_w);
    uv_pipe_t *cr = app_pipe(&loop, down[0], &tag_r), *cw = app_pipe(&loop, up[1], &tag_w);
    ASSERT_OK(cmdipc_adopt(srv, "cli2", (uv_stream_t *)sr, (uv_stream_t *)sw, &ao, NULL));
    ASSERT_OK(cmdipc_adopt(cli2, "srv", (uv_stream_t *)cr, (uv_stream_t *)cw, &ao, NULL));
    run_until_known(&loop, cli);
    run_until_known(&loop, cli2);
    call_add(&loop, cli);
    call_add(&loop, cli2);
    ASSERT_EQ(rel.released, 0);
    tu_close_all(&loop, cli, cli2, srv, NULL);
    ASSERT_EQ(rel.released, 6); /* every stream given back once, after its close */
}

TEST(adopt_refusals_leave_streams_untouched) {
    uv_loop_t loop, other;
    int sv[2];
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_loop_init(&other));
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    cmdipc_registry_t *r = tu_registry(&loop, "r", NULL);
    uv_pipe_t *p = app_pipe(&loop, sv[0], NULL);
    uv_pipe_t *q = app_pipe(&other, sv[1], NULL);
    cmdipc_channel_t *ch;
    ASSERT_STATUS(UV_EINVAL, cmdipc_adopt(r, "x", (uv_stream_t *)q, NULL, NULL, &ch));
    ASSERT_NULL(ch);
    tu_sink(r, "taken");
    ASSERT_STATUS(UV_EEXIST, cmdipc_adopt(r, "taken", (uv_stream_t *)p, NULL, NULL, NULL));
    cmdipc_adopt_opts_t ao;
    memset(&ao, 0, sizeof(ao));
    ASSERT_STATUS(UV_EINVAL, cmdipc_adopt(r, "y", (uv_stream_t *)p, NULL, &ao, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_adopt(r, "", (uv_stream_t *)p, NULL, NULL, NULL));
    /* Still ours and usable: it writes to its peer. */
    uv_buf_t b = uv_buf_init("hi\n", 3);
    ASSERT_EQ(uv_try_write((uv_stream_t *)p, &b, 1), 3);
    char got[4] = {0};
    ASSERT_EQ(read(sv[1], got, 3), 3);
    ASSERT_STR_EQ(got, "hi\n");
    /* A regular file is not a stream: refused, the descriptor still open. */
    char path[HARNESS_PATH_MAX];
    harness_scratch_path(path, sizeof(path), "file");
    int fd = open(path, O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_STATUS(UV_EINVAL, cmdipc_adopt_fd(r, "f", fd, -1, NULL, NULL));
    ASSERT(fd_open(fd));
    close(fd);
    uv_close((uv_handle_t *)p, (uv_close_cb)free);
    uv_close((uv_handle_t *)q, (uv_close_cb)free);
    ASSERT_EQ(uv_run(&other, UV_RUN_DEFAULT), 0);
    ASSERT_OK(uv_loop_close(&other));
    tu_close_all(&loop, r, NULL);
}

/* The shape of examples/adopt-stream.c: the application's own libuv TCP
 * server hands the connections it accepts to cmdipc. */
typedef struct {
    uv_tcp_t server;
    cmdipc_registry_t *r;
    rel_t rel;
    int accepted;
} app_server_t;

static void on_connection(uv_stream_t *server, int status) {
    app_server_t *s = server->data;
    ASSERT_OK(status);
    uv_tcp_t *client = malloc(sizeof(*client));
    ASSERT_NOT_NULL(client);
    ASSERT_OK(uv_tcp_init(server->loop, client));
    ASSERT_OK(uv_accept(server, (uv_stream_t *)client));
    char id[32];
    snprintf(id, sizeof(id), "tcp-%d", ++s->accepted);
    cmdipc_adopt_opts_t ao;
    cmdipc_adopt_opts_init(&ao);
    ao.release_cb = release_cb;
    ao.release_data = &s->rel;
    cmdipc_channel_t *ch;
    ASSERT_OK(cmdipc_adopt(s->r, id, (uv_stream_t *)client, NULL, &ao, &ch));
    cmdipc_peer_info_t pi;
    ASSERT_OK(cmdipc_channel_peer(ch, &pi));
    ASSERT_NOT_NULL(strstr(pi.remote, "127.0.0.1:"));
}

TEST(adopt_connections_of_the_apps_tcp_server) {
    uv_loop_t loop;
    app_server_t s;
    memset(&s, 0, sizeof(s));
    ASSERT_OK(uv_loop_init(&loop));
    s.r = tu_registry(&loop, "srv", NULL);
    tu_register(&loop, s.r, "math.add", tu_add_fn, NULL);
    struct sockaddr_in a;
    ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &a));
    ASSERT_OK(uv_tcp_init(&loop, &s.server));
    s.server.data = &s;
    ASSERT_OK(uv_tcp_bind(&s.server, (struct sockaddr *)&a, 0));
    ASSERT_OK(uv_listen((uv_stream_t *)&s.server, 16, on_connection));
    int len = sizeof(a);
    ASSERT_OK(uv_tcp_getsockname(&s.server, (struct sockaddr *)&a, &len));
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    cmdipc_registry_t *c1 = tu_registry(&loop, "c1", "srv");
    cmdipc_registry_t *c2 = tu_registry(&loop, "c2", "srv");
    ASSERT_OK(cmdipc_connect(c1, url, "srv", NULL, NULL));
    ASSERT_OK(cmdipc_connect(c2, url, "srv", NULL, NULL));
    run_until_known(&loop, c1);
    run_until_known(&loop, c2);
    call_add(&loop, c1);
    call_add(&loop, c2);
    ASSERT_EQ(s.accepted, 2);
    uv_close((uv_handle_t *)&s.server, NULL);
    tu_close_all(&loop, c1, c2, s.r, NULL);
    ASSERT_EQ(s.rel.released, 2);
}

/* cmdipc_spawn with what plugin hosts take from uv_process_options_t: a
 * descriptor beyond stdio (fd 3), the child's stderr captured, another uid
 * and gid (when running as root, as make test in CI does). */
static int spawn_exited;
static int64_t spawn_status;
static void spawn_exit(cmdipc_registry_t *r, const char *id, int64_t status, int sig,
                       void *data) {
    (void)r, (void)id, (void)sig, (void)data;
    spawn_exited = 1;
    spawn_status = status;
}

static void read_all(int fd, char *buf, size_t size) {
    size_t n = 0;
    ssize_t k;
    while (n + 1 < size && (k = read(fd, buf + n, size - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = '\0';
}

TEST(spawn_with_extra_stdio_stderr_and_uid) {
    uv_loop_t loop;
    int fd3[2], err[2];
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(pipe(fd3));
    ASSERT_OK(pipe(err));
    cmdipc_registry_t *r = tu_registry(&loop, "host", NULL);
    cmdipc_spawn_opts_t so;
    char *args[] = {"sh", "-c", "id -u >&3; id -g >&3; echo to-stderr >&2", NULL};
    cmdipc_spawn_opts_init(&so);
    so.file = "sh";
    so.args = args;
    so.exit_cb = spawn_exit;
    uv_stdio_container_t extra[1];
    extra[0].flags = UV_INHERIT_FD;
    extra[0].data.fd = fd3[1];
    so.extra_stdio = extra;
    so.extra_stdio_count = 1;
    so.has_stderr_io = 1;
    so.stderr_io.flags = UV_INHERIT_FD;
    so.stderr_io.data.fd = err[1];
    int as_root = geteuid() == 0;
    if (as_root) {
        so.flags = UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        so.uid = 65534;
        so.gid = 65534;
    }
    ASSERT_OK(cmdipc_spawn(r, "kid", &so, NULL, NULL));
    close(fd3[1]);
    close(err[1]);
    uint64_t t0 = uv_hrtime();
    while (!spawn_exited) {
        uv_run(&loop, UV_RUN_ONCE);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000);
    }
    ASSERT_EQ(spawn_status, 0);
    char out[64], errs[64], want[64];
    read_all(fd3[0], out, sizeof(out));
    read_all(err[0], errs, sizeof(errs));
    if (as_root)
        snprintf(want, sizeof(want), "65534\n65534\n");
    else
        snprintf(want, sizeof(want), "%u\n%u\n", (unsigned)getuid(), (unsigned)getgid());
    ASSERT_STR_EQ(out, want);
    ASSERT_STR_EQ(errs, "to-stderr\n");
    close(fd3[0]);
    close(err[0]);
    /* More descriptors than uv_spawn can take, or a count without entries:
     * refused before anything starts. */
    so.extra_stdio_count = 62;
    ASSERT_STATUS(UV_EINVAL, cmdipc_spawn(r, "kid2", &so, NULL, NULL));
    so.extra_stdio_count = 1;
    so.extra_stdio = NULL;
    ASSERT_STATUS(UV_EINVAL, cmdipc_spawn(r, "kid2", &so, NULL, NULL));
    tu_close_all(&loop, r, NULL);
}

/* fd://N: a listening socket the application (or systemd: LISTEN_FDS)
 * made. */
TEST(listen_on_an_inherited_socket) {
    uv_loop_t loop;
    char dir[HARNESS_PATH_MAX], url[160];
    ASSERT_OK(uv_loop_init(&loop));
    harness_scratch_path(dir, sizeof(dir), "fdl");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", dir);
    ASSERT_OK(bind(s, (struct sockaddr *)&sun, sizeof(sun)));
    int not_listening = socket(AF_UNIX, SOCK_STREAM, 0);
    cmdipc_registry_t *srv = tu_registry(&loop, "srv", NULL);
    tu_register(&loop, srv, "math.add", tu_add_fn, NULL);
    /* Bound, not listening yet: refused, left open. */
    snprintf(url, sizeof(url), "fd://%d", s);
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(srv, url, NULL, NULL));
    ASSERT(fd_open(s));
    ASSERT_OK(listen(s, 16));
    cmdipc_listener_t *l;
    ASSERT_OK(cmdipc_listen(srv, url, NULL, &l));
    ASSERT(!fd_open(s)); /* taken over */
    char got[64];
    ASSERT_OK(cmdipc_listener_url(l, got, sizeof(got)));
    ASSERT_STR_EQ(got, url);
    snprintf(url, sizeof(url), "unix://%s", dir);
    cmdipc_registry_t *cli = tu_registry(&loop, "cli", "srv");
    ASSERT_OK(cmdipc_connect(cli, url, "srv", NULL, NULL));
    run_until_known(&loop, cli);
    call_add(&loop, cli);
    cmdipc_listener_close(l);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    struct stat st;
    ASSERT_OK(lstat(dir, &st)); /* not ours to remove */
    unlink(dir);
    /* Not a socket, not a number. */
    char bad[32];
    snprintf(bad, sizeof(bad), "fd://%d", not_listening);
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(srv, bad, NULL, NULL));
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(srv, "fd://x", NULL, NULL));
    ASSERT_STATUS(UV_EBADF, cmdipc_listen(srv, "fd://987", NULL, NULL));
    close(not_listening);
    tu_close_all(&loop, cli, srv, NULL);
}

/* ref/unref as libuv handles have it: a registry with a pending deadline, a
 * dialer waiting to reconnect, a listener, a memory channel: unreferenced,
 * none of them keeps uv_run(UV_RUN_DEFAULT) running. */
static int run_returns_within(uv_loop_t *loop, unsigned ms) {
    uint64_t t0 = uv_hrtime();
    uv_run(loop, UV_RUN_DEFAULT);
    return (uv_hrtime() - t0) / 1000000 < ms;
}

TEST(unref_lets_the_loop_end) {
    uv_loop_t loop;
    char path[HARNESS_PATH_MAX], url[160];
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *r = tu_registry(&loop, "r", "nowhere");
    /* A dialer to a socket that does not exist: it retries forever. */
    harness_scratch_path(path, sizeof(path), "none");
    snprintf(url, sizeof(url), "unix://%s", path);
    cmdipc_channel_t *dialer;
    ASSERT_OK(cmdipc_connect(r, url, "nowhere", NULL, &dialer));
    /* A listener, and a pending call with a long deadline. */
    harness_scratch_path(path, sizeof(path), "lis");
    snprintf(url, sizeof(url), "unix://%s", path);
    cmdipc_listener_t *l;
    ASSERT_OK(cmdipc_listen(r, url, NULL, &l));
    tu_register(&loop, r, "never", tu_never_fn, NULL);
    cmdipc_exec_opts_t eo;
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 60000;
    tu_result_t res = {0};
    ASSERT_OK(cmdipc_registry_execute(r, "never", NULL, &eo, tu_response_cb, &res, NULL));
    /* A memory pair to a registry of the same loop. */
    cmdipc_registry_t *m = tu_registry(&loop, "m", NULL);
    cmdipc_channel_t *a, *b;
    ASSERT_OK(cmdipc_memory_pair("m", "r", &a, &b));
    ASSERT_OK(cmdipc_registry_attach(r, a));
    ASSERT_OK(cmdipc_registry_attach(m, b));
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ASSERT(uv_loop_alive(&loop));
    cmdipc_registry_unref(r);
    cmdipc_registry_unref(m);
    ASSERT_OK(cmdipc_channel_unref(dialer));
    ASSERT_OK(cmdipc_channel_unref(a));
    ASSERT_OK(cmdipc_channel_unref(b));
    cmdipc_listener_unref(l);
    ASSERT(run_returns_within(&loop, 3000)); /* nothing holds it now */
    ASSERT_EQ(res.calls, 0);
    /* Referenced again: the call's deadline keeps the loop (we do not wait
     * for it: closing cancels it). */
    cmdipc_registry_ref(r);
    ASSERT(uv_loop_alive(&loop));
    ASSERT_OK(cmdipc_channel_ref(dialer));
    cmdipc_listener_ref(l);
    tu_answer_never();
    tu_close_all(&loop, r, m, NULL);
    ASSERT_EQ(res.calls, 1);
}

TEST_LIST_BEGIN
TEST_ENTRY(adopt_fd_socketpair)
TEST_ENTRY(adopt_app_pipes_and_release)
TEST_ENTRY(adopt_refusals_leave_streams_untouched)
TEST_ENTRY(adopt_connections_of_the_apps_tcp_server)
TEST_ENTRY(spawn_with_extra_stdio_stderr_and_uid)
TEST_ENTRY(listen_on_an_inherited_socket)
TEST_ENTRY(unref_lets_the_loop_end)
TEST_LIST_END
