/* Stream transports end to end on one loop: unix:// and tcp:// listeners and
 * dialers, spawned children over stdio. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static uv_loop_t loop;

static int up_count, down_count, closed_count, last_closed_status;
static void channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                       int status, void *data) {
    (void)r, (void)ch, (void)data;
    if (ev == CMDIPC_CHANNEL_UP)
        up_count++;
    else if (ev == CMDIPC_CHANNEL_DOWN)
        down_count++;
    else if (ev == CMDIPC_CHANNEL_CLOSED) {
        closed_count++;
        last_closed_status = status;
    }
}

static void run_until_up(cmdipc_channel_t *ch) {
    for (int i = 0; i < 10000 && !cmdipc_channel_is_up(ch); i++)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT(cmdipc_channel_is_up(ch));
}

static void exchange(int is_unix) {
    char path[HARNESS_PATH_MAX], url[200];
    tu_result_t res = {0};
    tu_events_t ev = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_t *child = tu_registry(&loop, "child", "hub");
    tu_register(&loop, hub, "math.add", tu_add_fn, NULL);
    if (is_unix)
        snprintf(url, sizeof(url), "unix://%s", harness_scratch_path(path, sizeof(path), "s"));
    else
        snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
    cmdipc_listener_t *l;
    ASSERT_OK(cmdipc_listen(hub, url, NULL, &l));
    char actual[200];
    ASSERT_OK(cmdipc_listener_url(l, actual, sizeof(actual)));
    cmdipc_channel_t *ch;
    ASSERT_OK(cmdipc_connect(child, actual, "hub", NULL, &ch));
    ASSERT_EQ(cmdipc_channel_is_up(ch), 0);
    run_until_up(ch);
    tu_register(&loop, child, "child.echo", tu_echo_fn, NULL);
    ASSERT(tu_has_command(hub, "child.echo"));
    /* Both ways. */
    ASSERT_OK(tu_call(&loop, child, "math.add", "{\"a\":2,\"b\":40}", &res));
    ASSERT_EQ(json_integer_value(res.result), 42);
    ASSERT_OK(tu_call(&loop, hub, "child.echo", "[\"x\",{\"y\":null}]", &res));
    ASSERT_EQ(json_array_size(res.result), 2);
    ASSERT_OK(cmdipc_registry_on(child, "news", tu_event_cb, &ev, NULL));
    json_t *p = tu_json("{\"n\":1}");
    ASSERT_OK(cmdipc_registry_emit(hub, "news", p));
    tu_settle(&loop);
    ASSERT_EQ(ev.count, 1);
    ASSERT_JSON_EQ(ev.last, p);
    json_decref(p);
    tu_events_clear(&ev);
    tu_result_clear(&res);
    tu_close_all(&loop, hub, child, NULL);
}

TEST(unix_socket_exchange) { exchange(1); }
TEST(tcp_exchange) { exchange(0); }

TEST(unix_socket_is_0600_and_removed_on_close) {
    char path[HARNESS_PATH_MAX], url[200];
    struct stat st;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = tu_registry(&loop, "hub", NULL);
    snprintf(url, sizeof(url), "unix://%s", harness_scratch_path(path, sizeof(path), "m"));
    ASSERT_OK(cmdipc_listen(hub, url, NULL, NULL));
    ASSERT_OK(stat(path, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    ASSERT_EQ(st.st_mode & 0777, 0600);
    tu_close_all(&loop, hub, NULL);
    ASSERT_NE(stat(path, &st), 0);
}

TEST(reconnect_after_hub_restart) {
    char path[HARNESS_PATH_MAX], url[200];
    tu_result_t res = {0};
    cmdipc_connect_opts_t co;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *hub = tu_registry(&loop, "hub", NULL);
    cmdipc_registry_t *child = tu_registry(&loop, "child", "hub");
    cmdipc_registry_set_channel_cb(child, channel_cb, NULL);
    tu_register(&loop, child, "child.echo", tu_echo_fn, NULL);
    snprintf(url, sizeof(url), "unix://%s", harness_scratch_path(path, sizeof(path), "r"));
    cmdipc_listener_t *l;
    ASSERT_OK(cmdipc_listen(hub, url, NULL, &l));
    cmdipc_connect_opts_init(&co);
    co.reconnect_min_ms = 5;
    co.reconnect_max_ms = 20;
    cmdipc_channel_t *ch;
    ASSERT_OK(cmdipc_connect(child, url, "hub", &co, &ch));
    run_until_up(ch);
    tu_settle(&loop);
    ASSERT(tu_has_command(hub, "child.echo"));
    /* The hub closes its end: the child goes down, then reconnects and
     * escalates again. */
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(hub, "conn-1")));
    for (int i = 0; i < 10000 && down_count == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT_EQ(down_count, 1);
    run_until_up(ch);
    for (int i = 0; i < 10000 && !tu_has_command(hub, "child.echo"); i++)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT(tu_has_command(hub, "child.echo"));
    ASSERT_NOT_NULL(cmdipc_registry_channel(hub, "conn-2"));
    ASSERT_OK(tu_call(&loop, hub, "child.echo", "1", &res));
    ASSERT_EQ(up_count, 2);
    tu_result_clear(&res);
    tu_close_all(&loop, hub, child, NULL);
    ASSERT_EQ(closed_count, 1);
}

/* ---------------------------------------------------------------------------
 * A child process over stdio: the child side is this test binary run as a
 * helper. */

static int child_closed;
static void child_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                             cmdipc_channel_event_t ev, int status, void *data) {
    (void)ch, (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_CLOSED && !child_closed) {
        child_closed = 1;
        cmdipc_registry_close(r, NULL, NULL);
    }
}

HELPER(stdio_child) {
    (void)argc, (void)argv;
    uv_loop_t l;
    cmdipc_registry_t *r;
    cmdipc_registry_opts_t o;
    ASSERT_OK(uv_loop_init(&l));
    cmdipc_registry_opts_init(&o);
    o.id = "plugin";
    o.router_channel = "host";
    ASSERT_OK(cmdipc_registry_new(&l, &o, &r));
    cmdipc_registry_set_channel_cb(r, child_channel_cb, NULL);
    ASSERT_OK(cmdipc_connect(r, "stdio://", "host", NULL, NULL));
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "plugin.add", NULL, NULL};
    ASSERT_OK(cmdipc_registry_register(r, &def, tu_add_fn, NULL, NULL, NULL));
    ASSERT_EQ(uv_run(&l, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&l), 0);
    return 7;
}

static int exits;
static int64_t exit_status;
static void on_exit_cb(cmdipc_registry_t *r, const char *id, int64_t status, int sig,
                       void *data) {
    (void)r, (void)data, (void)sig;
    ASSERT_STR_EQ(id, "plugin");
    exits++;
    exit_status = status;
}

TEST(spawned_child_over_stdio) {
    tu_result_t res = {0};
    cmdipc_spawn_opts_t so;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *host = tu_registry(&loop, "host", NULL);
    cmdipc_spawn_opts_init(&so);
    char *args[] = {(char *)harness_exe_path(), "--helper", "stdio_child", NULL};
    so.file = args[0];
    so.args = args;
    so.exit_cb = on_exit_cb;
    cmdipc_channel_t *ch;
    int pid = 0;
    ASSERT_OK(cmdipc_spawn(host, "plugin", &so, &ch, &pid));
    ASSERT_GT(pid, 0);
    for (int i = 0; i < 20000 && !tu_has_command(host, "plugin.add"); i++)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT(tu_has_command(host, "plugin.add"));
    json_t *req = tu_json("{\"a\":1,\"b\":2}");
    ASSERT_OK(tu_exec(host, "plugin.add", req, &res));
    json_decref(req);
    tu_run_until(&loop, &res.done, 20000);
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), 3);
    /* Closing the channel closes the child's stdin: it exits by itself. */
    ASSERT_OK(cmdipc_channel_close(ch));
    for (int i = 0; i < 20000 && exits == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT_EQ(exits, 1);
    ASSERT_EQ(exit_status, 7);
    tu_result_clear(&res);
    tu_close_all(&loop, host, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(unix_socket_exchange)
TEST_ENTRY(tcp_exchange)
TEST_ENTRY(unix_socket_is_0600_and_removed_on_close)
TEST_ENTRY(reconnect_after_hub_restart)
TEST_ENTRY(spawned_child_over_stdio)
TEST_HELPER(stdio_child)
TEST_LIST_END
