/* sizes — what things cost in memory:
 *
 *   sizes/registry            heap per registry (cmdipc_registry_new, default
 *                             options, random id), over 1,000 of them
 *   sizes/memory_channel      heap per attached end of an in-memory pair,
 *                             after the list exchange (1,000 pairs between
 *                             two registries; the pair's shared part split
 *                             between its ends)
 *   sizes/unix_channel        heap per end of a unix:// connection (100
 *                             connections between two registries of this
 *                             process, after the list exchange)
 *   sizes/command             heap per registered command (10,000)
 *   sizes/listener            heap per event listener on its own event id
 *                             (10,000)
 *   sizes/pending_call        heap per pending execute (100,000, through a
 *                             channel whose peer never answers)
 *   sizes/dedup_entry         heap per remembered event id (one registry
 *                             emitted event_dedup_max = 65,536 events to
 *                             another: both remember every id)
 *   sizes/idle_registry_rss   resident set of an idle registry process (a
 *                             fresh exec of this program: a registry with one
 *                             command listening on a unix socket), against
 *                             an idle libuv process listening on one
 *   sizes/heap_growth         heap in use after R in-memory round trips on
 *                             one loop (64 in flight; R = 10,000,000 by
 *                             default, as the target is stated)
 *                             minus after a warm-up of 20,000: must stay a
 *                             small constant
 *
 * Heap figures are mallinfo2 deltas (uordblks + hblkhd: bytes handed out by
 * malloc, its per-chunk overhead included) divided by the count. Then the
 * sizeof of the main internal structs (lib/internal.h, transports/
 * transport_int.h: this benchmark links the uninstalled internal library).
 *
 * Usage: sizes [seconds (unused)] [round trips for heap_growth] */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"
#include "sink.h"
#include "transport_int.h"

static char unix_path[108];

static void die(const char *what, int rc) {
    fprintf(stderr, "sizes: %s: %s\n", what, rc ? cmdipc_strerror(rc) : "failed");
    exit(1);
}

static void line(const char *name, double value, const char *unit, const char *note) {
    printf("%-34s %10.0f %s  %s\n", name, value, unit, note ? note : "");
    fflush(stdout);
}

static void stop_cb(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the loop for ms milliseconds. */
static void settle(uv_loop_t *loop, uint64_t ms) {
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, stop_cb, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static size_t heap_now(void) {
    malloc_trim(0);
    return bench_heap_bytes();
}

static cmdipc_registry_t *new_registry(uv_loop_t *loop, const char *id) {
    cmdipc_registry_t *r;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    if (cmdipc_registry_new(loop, &o, &r) != 0)
        die("registry", 0);
    return r;
}

/* Closes r and runs the loop until it is gone. */
static void close_registry(uv_loop_t *loop, cmdipc_registry_t *r) {
    cmdipc_registry_close(r, NULL, NULL);
    settle(loop, 20);
}

/* ===========================================================================
 * Registries, channels, commands, listeners. */

static void size_registries(uv_loop_t *loop) {
    enum { COUNT = 1000 };
    static cmdipc_registry_t *rs[COUNT];
    size_t h0 = heap_now();
    for (int i = 0; i < COUNT; i++)
        if (cmdipc_registry_new(loop, NULL, &rs[i]) != 0)
            die("registry", 0);
    size_t h1 = heap_now();
    line("sizes/registry", (double)(h1 - h0) / COUNT, "bytes/registry",
         "(1,000 registries)");
    for (int i = 0; i < COUNT; i++)
        cmdipc_registry_close(rs[i], NULL, NULL);
    settle(loop, 20);
}

static void size_memory_channels(uv_loop_t *loop) {
    enum { COUNT = 1000 };
    char ida[32], idb[32];
    cmdipc_registry_t *a = new_registry(loop, "a"), *b = new_registry(loop, "b");
    size_t h0 = heap_now();
    for (int i = 0; i < COUNT; i++) {
        cmdipc_channel_t *ea, *eb;
        snprintf(ida, sizeof(ida), "b-%d", i);
        snprintf(idb, sizeof(idb), "a-%d", i);
        if (cmdipc_memory_pair(ida, idb, &ea, &eb) != 0 ||
            cmdipc_registry_attach(a, ea) != 0 || cmdipc_registry_attach(b, eb) != 0)
            die("pair", 0);
    }
    settle(loop, 50);
    size_t h1 = heap_now();
    line("sizes/memory_channel", (double)(h1 - h0) / (2 * COUNT), "bytes/channel end",
         "(1,000 in-memory pairs, list exchange done)");
    close_registry(loop, a);
    close_registry(loop, b);
}

static int unix_up;

static void count_up(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                     cmdipc_channel_event_t ev, int status, void *data) {
    (void)r, (void)ch, (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_UP)
        unix_up++;
}

static void size_unix_channels(uv_loop_t *loop) {
    enum { COUNT = 100 };
    char url[200], id[32];
    cmdipc_registry_t *s = new_registry(loop, "server"),
                      *c = new_registry(loop, "client");
    snprintf(url, sizeof(url), "unix://%s", unix_path);
    unlink(unix_path);
    int rc = cmdipc_listen(s, url, NULL, NULL);
    if (rc != 0)
        die("listen", rc);
    cmdipc_registry_set_channel_cb(c, count_up, NULL);
    settle(loop, 10);
    unix_up = 0;
    size_t h0 = heap_now();
    cmdipc_connect_opts_t co;
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0;
    for (int i = 0; i < COUNT; i++) {
        snprintf(id, sizeof(id), "server-%d", i);
        if ((rc = cmdipc_connect(c, url, id, &co, NULL)) != 0)
            die("connect", rc);
    }
    for (int i = 0; i < 100 && unix_up < COUNT; i++)
        settle(loop, 10);
    settle(loop, 50);
    size_t h1 = heap_now();
    if (unix_up < COUNT)
        die("connections", 0);
    line("sizes/unix_channel", (double)(h1 - h0) / (2 * COUNT), "bytes/channel end",
         "(100 unix:// connections, both ends in this process, list exchange done)");
    close_registry(loop, c);
    close_registry(loop, s);
    unlink(unix_path);
}

static void noop_fn(cmdipc_call_t *call, json_t *req, void *data) {
    (void)req, (void)data;
    cmdipc_call_reply(call, NULL);
}

static void noop_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                       void *data) {
    (void)r, (void)event_id, (void)payload, (void)data;
}

static void size_commands_and_listeners(uv_loop_t *loop) {
    enum { COUNT = 10000 };
    char id[64];
    cmdipc_registry_t *r = new_registry(loop, "r");
    size_t h0 = heap_now();
    for (int i = 0; i < COUNT; i++) {
        snprintf(id, sizeof(id), "service.command.%d", i);
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, id, "A command", NULL};
        if (cmdipc_registry_register(r, &def, noop_fn, NULL, NULL, NULL) != 0)
            die("register", 0);
    }
    settle(loop, 10);
    size_t h1 = heap_now();
    line("sizes/command", (double)(h1 - h0) / COUNT, "bytes/command",
         "(10,000 commands \"service.command.N\", with a description)");
    for (int i = 0; i < COUNT; i++) {
        snprintf(id, sizeof(id), "service.event.%d", i);
        if (cmdipc_registry_on(r, id, noop_event, NULL, NULL) != 0)
            die("on", 0);
    }
    size_t h2 = heap_now();
    line("sizes/listener", (double)(h2 - h1) / COUNT, "bytes/listener",
         "(10,000 listeners, each on its own event id)");
    close_registry(loop, r);
}

/* ===========================================================================
 * Pending calls: through a channel that swallows everything. */

static size_t canceled;

static void exec_done(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                      void *data) {
    (void)req, (void)result, (void)msg, (void)data;
    if (status == CMDIPC_ECANCELED)
        canceled++;
}

static void size_pending_calls(uv_loop_t *loop) {
    enum { COUNT = 100000 };
    cmdipc_registry_t *r;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "caller";
    o.router_channel = "sink";
    o.max_outbound_pending = 0;
    if (cmdipc_registry_new(loop, &o, &r) != 0)
        die("registry", 0);
    if (bench_sink_attach(r, "sink") != 0)
        die("sink", 0);
    settle(loop, 10);
    json_t *request = json_pack("{s:i,s:i}", "a", 1, "b", 2);
    size_t h0 = heap_now();
    for (int i = 0; i < COUNT; i++)
        if (cmdipc_registry_execute(r, "math.add", request, NULL, exec_done, NULL,
                                    NULL) != 0)
            die("execute", 0);
    size_t h1 = heap_now();
    json_decref(request);
    char note[160];
    snprintf(
        note, sizeof(note),
        "(100,000 executes awaiting an answer; %.2fx a uv_timer_t's %zu bytes; target "
        "<= 300)",
        (double)(h1 - h0) / COUNT / (double)sizeof(uv_timer_t), sizeof(uv_timer_t));
    line("sizes/pending_call", (double)(h1 - h0) / COUNT, "bytes/call", note);
    canceled = 0;
    close_registry(loop, r);
    if (canceled != COUNT)
        die("pending calls not canceled", 0);
}

/* ===========================================================================
 * De-duplication cache: a registry that received event_dedup_max events. */

static void size_dedup(uv_loop_t *loop) {
    cmdipc_registry_t *a = new_registry(loop, "a"), *b = new_registry(loop, "b");
    cmdipc_channel_t *ea, *eb;
    if (cmdipc_memory_pair("b", "a", &ea, &eb) != 0 ||
        cmdipc_registry_attach(a, ea) != 0 || cmdipc_registry_attach(b, eb) != 0)
        die("pair", 0);
    settle(loop, 10);
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    size_t count = o.event_dedup_max;
    json_t *payload = json_pack("{s:i}", "n", 1);
    cmdipc_stats_t st;
    cmdipc_registry_stats(b, &st);
    uint64_t base = st.events_received;
    size_t h0 = heap_now();
    for (size_t sent = 0; sent < count;) {
        for (int i = 0; i < 4096 && sent < count; i++, sent++)
            if (cmdipc_registry_emit(a, "tick", payload) != 0)
                die("emit", 0);
        for (int spin = 0; spin < 1000; spin++) {
            cmdipc_registry_stats(b, &st);
            if (st.events_received - base >= sent)
                break;
            uv_run(loop, UV_RUN_NOWAIT);
        }
    }
    settle(loop, 10);
    size_t h1 = heap_now();
    json_decref(payload);
    cmdipc_registry_stats(b, &st);
    if (st.events_received - base != count || st.slow_consumers != 0)
        die("events lost", 0);
    /* Both registries remember every id: the emitter marks its own. */
    double per = (double)(h1 - h0) / (2.0 * (double)count);
    char note[200];
    snprintf(note, sizeof(note),
             "(%zu ids, kept %llu ms: %.1f MiB in a registry that saw %zu events in that "
             "time)",
             count, (unsigned long long)o.event_ttl_ms, per * (double)count / 1048576.0,
             count);
    line("sizes/dedup_entry", per, "bytes/event id", note);
    close_registry(loop, a);
    close_registry(loop, b);
}

/* ===========================================================================
 * Idle processes: a fresh exec of this program. */

static int idle_main(const char *kind, const char *path, int fd) {
    uv_loop_t *loop = uv_default_loop();
    int rc;
    if (strcmp(kind, "cmdipc") == 0) {
        char url[200];
        cmdipc_registry_t *r;
        if (cmdipc_registry_new(loop, NULL, &r) != 0)
            return 1;
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "svc.ping", NULL, NULL};
        if (cmdipc_registry_register(r, &def, noop_fn, NULL, NULL, NULL) != 0)
            return 1;
        snprintf(url, sizeof(url), "unix://%s", path);
        rc = cmdipc_listen(r, url, NULL, NULL);
    } else {
        static uv_pipe_t server;
        uv_pipe_init(loop, &server, 0);
        rc = uv_pipe_bind(&server, path);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&server, 128, NULL);
    }
    if (rc != 0)
        return 1;
    uv_run(loop, UV_RUN_NOWAIT);
    if (write(fd, "r", 1) != 1)
        return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

typedef struct {
    long rss, anon, file;
} rss_t;

static rss_t idle_rss(const char *kind) {
    int fds[2];
    char fd_arg[16], c;
    rss_t r;
    unlink(unix_path);
    if (pipe(fds) != 0)
        die("pipe", 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        snprintf(fd_arg, sizeof(fd_arg), "%d", fds[1]);
        execl("/proc/self/exe", "sizes", "--idle", kind, unix_path, fd_arg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1)
        die("idle process did not start", 0);
    close(fds[0]);
    usleep(200000);
    r.rss = bench_status_kib(pid, "VmRSS");
    r.anon = bench_status_kib(pid, "RssAnon");
    r.file = bench_status_kib(pid, "RssFile");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(unix_path);
    return r;
}

static void size_idle_rss(void) {
    rss_t base = idle_rss("uv");
    rss_t c = idle_rss("cmdipc");
    char note[200];
    snprintf(
        note, sizeof(note),
        "(anon %ld KiB, file %ld KiB; %.2fx an idle libuv process listening on a unix "
        "socket: %ld KiB; target <= 4096 KiB)",
        c.anon, c.file, base.rss > 0 ? (double)c.rss / (double)base.rss : 0, base.rss);
    line("sizes/idle_registry_rss", (double)c.rss, "KiB", note);
}

/* ===========================================================================
 * Heap growth over many in-memory round trips. */

static struct {
    cmdipc_registry_t *client, *server;
    json_t *request;
    uint64_t total, issued, done, warm;
    size_t heap_warm;
    long rss_warm;
} hg;

static void hg_issue(void);

static void hg_done(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                    void *data) {
    (void)req, (void)result, (void)data;
    if (status != 0) {
        fprintf(stderr, "sizes: call failed: %s\n", msg);
        exit(1);
    }
    hg.done++;
    if (hg.done == hg.warm) {
        hg.heap_warm = bench_heap_bytes();
        hg.rss_warm = bench_status_kib(0, "VmRSS");
    }
    if (hg.issued < hg.total)
        hg_issue();
    else if (hg.done == hg.total)
        uv_stop(cmdipc_registry_loop(hg.client));
}

static void hg_issue(void) {
    hg.issued++;
    int rc = cmdipc_registry_execute(hg.client, "math.add", hg.request, NULL, hg_done,
                                     NULL, NULL);
    if (rc != 0)
        die("execute", rc);
}

static void add_fn(cmdipc_call_t *call, json_t *req, void *data) {
    (void)data;
    json_int_t a = json_integer_value(json_object_get(req, "a"));
    json_int_t b = json_integer_value(json_object_get(req, "b"));
    json_t *sum = json_integer(a + b);
    cmdipc_call_reply(call, sum);
    json_decref(sum);
}

static void size_heap_growth(uv_loop_t *loop, uint64_t total) {
    cmdipc_channel_t *ec, *es;
    memset(&hg, 0, sizeof(hg));
    hg.total = total;
    hg.warm = total / 50 < 20000 ? total / 50 : 20000;
    hg.server = new_registry(loop, "server");
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "client";
    o.router_channel = "server";
    if (cmdipc_registry_new(loop, &o, &hg.client) != 0)
        die("registry", 0);
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
    if (cmdipc_registry_register(hg.server, &def, add_fn, NULL, NULL, NULL) != 0 ||
        cmdipc_memory_pair("server", "client", &ec, &es) != 0 ||
        cmdipc_registry_attach(hg.client, ec) != 0 ||
        cmdipc_registry_attach(hg.server, es) != 0)
        die("setup", 0);
    settle(loop, 10);
    hg.request = json_pack("{s:i,s:i}", "a", 1, "b", 2);
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < 64; i++)
        hg_issue();
    uv_run(loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    size_t heap_end = bench_heap_bytes();
    long rss_end = bench_status_kib(0, "VmRSS");
    long long delta = (long long)heap_end - (long long)hg.heap_warm;
    char note[200];
    snprintf(note, sizeof(note),
             "(after %llu round trips in %.1f s, minus after %llu; RSS %+ld KiB; %s: "
             "a small constant, < 64 KiB)",
             (unsigned long long)total, secs, (unsigned long long)hg.warm,
             rss_end - hg.rss_warm, delta < 65536 ? "ok" : "MISSED");
    line("sizes/heap_growth", (double)delta, "bytes", note);
    json_decref(hg.request);
    close_registry(loop, hg.client);
    close_registry(loop, hg.server);
}

/* ===========================================================================
 * Main. */

static void sizeof_line(const char *what, size_t n) {
    printf("%-34s %10zu bytes\n", what, n);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--idle") == 0)
        return idle_main(argv[2], argv[3], atoi(argv[4]));
    uint64_t total = 10000000;
    if (argc > 2 && atoll(argv[2]) > 0)
        total = (uint64_t)atoll(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    snprintf(unix_path, sizeof(unix_path), "/tmp/cmdipc-sizes-%d.sock", (int)getpid());

    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Let the library's one-time state (CSPRNG, hash key) settle first. */
    close_registry(&loop, new_registry(&loop, "warm-up"));
    size_registries(&loop);
    size_memory_channels(&loop);
    size_unix_channels(&loop);
    size_commands_and_listeners(&loop);
    size_pending_calls(&loop);
    size_dedup(&loop);
    size_idle_rss();
    size_heap_growth(&loop, total);
    if (uv_loop_close(&loop) != 0)
        die("loop still busy", 0);

    sizeof_line("sizeof(cmdipc_registry_t)", sizeof(struct cmdipc_registry_s));
    sizeof_line("sizeof(cmdipc_channel_t)", sizeof(struct cmdipc_channel_s));
    sizeof_line("sizeof(cmdipc__conn_t)", sizeof(struct cmdipc__conn_s));
    sizeof_line("sizeof(cmdipc__link_t)", sizeof(struct cmdipc__link_s));
    sizeof_line("sizeof(cmdipc_req_t)", sizeof(struct cmdipc_req_s));
    sizeof_line("sizeof(cmdipc_call_t)", sizeof(struct cmdipc_call_s));
    sizeof_line("sizeof(cmdipc__cmd_t)", sizeof(struct cmdipc__cmd_s));
    sizeof_line("sizeof(cmdipc__route_t)", sizeof(cmdipc__route_t));
    sizeof_line("sizeof(cmdipc_msg_t)", sizeof(struct cmdipc_msg_s));
    sizeof_line("sizeof(cmdipc_sub_t)", sizeof(struct cmdipc_sub_s));
    sizeof_line("sizeof(uv_timer_t)", sizeof(uv_timer_t));
    sizeof_line("sizeof(uv_pipe_t)", sizeof(uv_pipe_t));
    return 0;
}
