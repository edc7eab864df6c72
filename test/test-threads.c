/* Registries on several threads, linked by memory channels: a message that
 * crosses to another loop is owned by that loop alone. Built with the public
 * headers only; run under ThreadSanitizer by `make test` (build-tsan), where
 * a json_t shared across threads (a request, a result, an event payload, a
 * command's schema) is a reported race that fails the test.
 *
 * The shapes that shared a json_t before: the caller keeps its request and
 * re-uses it for every call; a handler replies with one cached result; an
 * emitter fans one payload out to channels on two other threads; a worker
 * escalates a command whose schema its command table keeps; a call is
 * forwarded from one worker to another through the main thread. */
#include <string.h>

#include "harness.h"

#define N_CALLS  400
#define N_EVENTS 300
#define WINDOW   32

typedef struct worker_s {
    const char *name;
    uv_thread_t tid;
    uv_loop_t loop;
    uv_sem_t ready;
    uv_async_t stop;
    cmdipc_registry_t *r;
    cmdipc_channel_t *end; /* the worker's end of the pair, attached there */
    json_t *cached;        /* the one result every echo reply carries */
    json_t *schema;
    int events;            /* "main.tick" events received */
    int bad_payloads;
    int forwarded_ok;      /* w1: calls to w2.sum through main that came back right */
    int forwarded_done;
    int run_rc, close_rc;
} worker_t;

static worker_t w1 = {.name = "w1"}, w2 = {.name = "w2"};

/* ---- worker side ---------------------------------------------------------- */

static void echo_fn(cmdipc_call_t *call, json_t *request, void *data) {
    worker_t *w = data;
    /* The request is borrowed; the reply is a cached value this thread keeps
     * using (and changes nothing of: values handed over are frozen). */
    json_t *got = json_object_get(request, "n");
    if (!json_is_integer(got)) {
        ASSERT_OK(cmdipc_call_fail(call, CMDIPC_EINVALREQ, "n missing"));
        return;
    }
    json_t *res = json_pack("{s:O,s:O}", "n", got, "cached", w->cached);
    ASSERT_OK(cmdipc_call_reply(call, res));
    json_decref(res);
}

static void sum_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    json_int_t s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(request, i, v) s += json_integer_value(v);
    json_t *res = json_integer(s);
    ASSERT_OK(cmdipc_call_reply(call, res));
    json_decref(res);
}

static void tick_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload, void *data) {
    worker_t *w = data;
    (void)r;
    (void)event_id;
    if (!json_is_object(payload) || json_array_size(json_object_get(payload, "list")) != 3)
        w->bad_payloads++;
    w->events++;
}

static void fwd_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                   void *data) {
    worker_t *w = data;
    (void)req;
    (void)message;
    if (status == 0 && json_integer_value(result) == 6)
        w->forwarded_ok++;
    __atomic_add_fetch(&w->forwarded_done, 1, __ATOMIC_RELEASE);
}

static void stop_cb(uv_async_t *h) {
    worker_t *w = h->data;
    uv_close((uv_handle_t *)&w->stop, NULL);
    cmdipc_registry_close(w->r, NULL, NULL);
}

/* w1 calls w2.sum through main once it is reachable (from an event of main). */
static void go_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload, void *data) {
    (void)event_id;
    (void)payload;
    json_t *req = json_pack("[i,i,i]", 1, 2, 3);
    for (int i = 0; i < 50; i++)
        ASSERT_OK(cmdipc_registry_execute(r, "w2.sum", req, NULL, fwd_cb, data, NULL));
    json_decref(req);
}

static void worker_thread(void *arg) {
    worker_t *w = arg;
    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = w->name;
    o.router_channel = "main";
    ASSERT_OK(uv_loop_init(&w->loop));
    ASSERT_OK(cmdipc_registry_new(&w->loop, &o, &w->r));
    ASSERT_OK(cmdipc_registry_attach(w->r, w->end));
    w->cached = json_pack("{s:s,s:[i,i,i]}", "from", w->name, "list", 1, 2, 3);
    w->schema = json_pack("{s:{s:s}}", "request", "type", "object");
    char id[32];
    snprintf(id, sizeof(id), "%s.%s", w->name, w == &w1 ? "echo" : "sum");
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, id, "test", w->schema};
    ASSERT_OK(cmdipc_registry_register(w->r, &def, w == &w1 ? echo_fn : sum_fn, w, NULL,
                                       NULL));
    ASSERT_OK(cmdipc_registry_on(w->r, "main.tick", tick_cb, w, NULL));
    if (w == &w1)
        ASSERT_OK(cmdipc_registry_on(w->r, "go", go_cb, w, NULL));
    w->stop.data = w;
    ASSERT_OK(uv_async_init(&w->loop, &w->stop, stop_cb));
    uv_sem_post(&w->ready);
    w->run_rc = uv_run(&w->loop, UV_RUN_DEFAULT);
    json_decref(w->cached);
    json_decref(w->schema);
    w->close_rc = uv_loop_close(&w->loop);
}

/* ---- main side ------------------------------------------------------------ */

static cmdipc_registry_t *main_r;
static json_t *shared_request;
static int started, completed, correct;

static void echo_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data);

static void start_one(void) {
    /* The same frozen request for every call (never modified once handed
     * over): the library holds a reference to it on this thread while the
     * call crosses to w1's. */
    started++;
    ASSERT_OK(cmdipc_registry_execute(main_r, "w1.echo", shared_request, NULL, echo_done,
                                      NULL, NULL));
}

static void echo_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                      void *data) {
    (void)req;
    (void)data;
    if (status != 0)
        fprintf(stderr, "echo failed: %s\n", message);
    else if (json_integer_value(json_object_get(result, "n")) == 7 &&
             json_array_size(json_object_get(json_object_get(result, "cached"), "list")) == 3)
        correct++;
    completed++;
    if (started < N_CALLS)
        start_one();
}

static int knows(const char *id) {
    cmdipc_command_info_t *info;
    size_t n;
    int found = 0;
    ASSERT_OK(cmdipc_registry_list_commands(main_r, &info, &n));
    for (size_t i = 0; i < n; i++)
        found |= strcmp(info[i].id, id) == 0;
    cmdipc_command_info_free(info, n);
    return found;
}

static void run_until(uv_loop_t *loop, int (*cond)(void), unsigned ms) {
    uint64_t t0 = uv_hrtime();
    while (!cond()) {
        uv_run(loop, UV_RUN_NOWAIT);
        ASSERT_LT((uv_hrtime() - t0) / 1000000, ms);
        uv_sleep(1);
    }
}

static int both_known(void) { return knows("w1.echo") && knows("w2.sum"); }
static int calls_done(void) { return completed == N_CALLS; }
static int w1_forward_done(void) {
    return __atomic_load_n(&w1.forwarded_done, __ATOMIC_ACQUIRE) == 50;
}

static void start_worker(worker_t *w, uv_loop_t *loop) {
    cmdipc_channel_t *mine;
    ASSERT_OK(cmdipc_memory_pair(w->name, "main", &mine, &w->end));
    ASSERT_OK(cmdipc_registry_attach(main_r, mine));
    ASSERT_OK(uv_sem_init(&w->ready, 0));
    ASSERT_OK(uv_thread_create(&w->tid, worker_thread, w));
    uv_sem_wait(&w->ready);
    (void)loop;
}


TEST(messages_crossing_loops_share_no_json) {
    uv_loop_t loop;
    cmdipc_registry_opts_t o;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_opts_init(&o);
    o.id = "main";
    ASSERT_OK(cmdipc_registry_new(&loop, &o, &main_r));
    start_worker(&w1, &loop);
    start_worker(&w2, &loop);
    run_until(&loop, both_known, 20000);

    /* Calls to w1 with one request object the caller keeps re-using. */
    shared_request = json_pack("{s:i}", "n", 7);
    for (int i = 0; i < WINDOW; i++)
        start_one();
    /* Meanwhile one payload fans out to both workers' threads, again and
     * again, while this thread keeps it. */
    json_t *payload = json_pack("{s:s,s:[i,i,i]}", "from", "main", "list", 4, 5, 6);
    for (int i = 0; i < N_EVENTS; i++) {
        ASSERT_OK(cmdipc_registry_emit(main_r, "main.tick", payload));
        if (i % 16 == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    run_until(&loop, calls_done, 30000);
    ASSERT_EQ(correct, N_CALLS);

    /* w1 -> main -> w2 and back: the forwarded request and its response
     * cross two threads each way (w1 starts them when it gets "go"). */
    ASSERT_OK(cmdipc_registry_emit(main_r, "go", NULL));
    run_until(&loop, w1_forward_done, 30000);
    json_decref(payload);
    json_decref(shared_request);

    /* Stop the workers; their ends close, main sees them go. */
    uv_async_send(&w1.stop);
    uv_async_send(&w2.stop);
    ASSERT_OK(uv_thread_join(&w1.tid));
    ASSERT_OK(uv_thread_join(&w2.tid));
    ASSERT_EQ(w1.run_rc, 0);
    ASSERT_EQ(w2.run_rc, 0);
    ASSERT_EQ(w1.close_rc, 0);
    ASSERT_EQ(w2.close_rc, 0);
    ASSERT_EQ(w1.bad_payloads + w2.bad_payloads, 0);
    ASSERT_EQ(w1.events, N_EVENTS);
    ASSERT_EQ(w2.events, N_EVENTS);
    ASSERT_EQ(w1.forwarded_ok, 50);
    cmdipc_registry_close(main_r, NULL, NULL);
    ASSERT_LOOP_CLOSES(&loop);
    uv_sem_destroy(&w1.ready);
    uv_sem_destroy(&w2.ready);
}

/* ---------------------------------------------------------------------------
 * A handler hands its call to a worker thread, which answers it there
 * (cmdipc_call_detach). Half the calls are still with the worker when the
 * registry closes: their answers are dropped on the worker's thread. */

#define XT_CALLS 200

typedef struct {
    uv_mutex_t lock;
    uv_cond_t cond;
    cmdipc_call_t *queue[XT_CALLS];
    int head, tail;
    int stop;
    int resume; /* the second half waits for this (set after the close) */
    uv_thread_t tid;
} workq_t;

static workq_t wq;
static int xt_ok, xt_done, xt_canceled;

static void worker_main(void *arg) {
    (void)arg;
    for (;;) {
        uv_mutex_lock(&wq.lock);
        while (wq.head == wq.tail && !wq.stop)
            uv_cond_wait(&wq.cond, &wq.lock);
        if (wq.head == wq.tail && wq.stop) {
            uv_mutex_unlock(&wq.lock);
            return;
        }
        if (wq.head == XT_CALLS / 2)
            while (!wq.resume) /* hold the second half until the registries closed */
                uv_cond_wait(&wq.cond, &wq.lock);
        cmdipc_call_t *call = wq.queue[wq.head++];
        int n = wq.head;
        uv_mutex_unlock(&wq.lock);
        /* The result is made here, on the worker's thread. */
        json_t *res = json_pack("{s:s,s:i}", "by", "worker", "n", n);
        if (n % 10 == 0)
            ASSERT_OK(cmdipc_call_fail(call, CMDIPC_EINVALREQ, "every tenth refused"));
        else
            ASSERT_OK(cmdipc_call_reply(call, res));
        json_decref(res);
    }
}

static void offload_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    ASSERT_OK(cmdipc_call_detach(call));
    ASSERT_STATUS(UV_EALREADY, cmdipc_call_detach(call));
    uv_mutex_lock(&wq.lock);
    wq.queue[wq.tail++] = call;
    uv_cond_signal(&wq.cond);
    uv_mutex_unlock(&wq.lock);
}

static void offload_done(cmdipc_req_t *req, int status, json_t *result, const char *message,
                         void *data) {
    (void)req;
    (void)data;
    if (status == 0 && json_is_string(json_object_get(result, "by")))
        xt_ok++;
    else if (status == CMDIPC_EINVALREQ && strcmp(message, "every tenth refused") == 0)
        xt_ok++;
    else if (status == CMDIPC_ECANCELED)
        xt_canceled++;
    xt_done++;
}

static int half_done(void) { return xt_done == XT_CALLS / 2; }

TEST(calls_answered_from_a_worker_thread) {
    uv_loop_t loop;
    cmdipc_registry_t *srv, *cli;
    cmdipc_registry_opts_t o;
    cmdipc_channel_t *a, *b;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_mutex_init(&wq.lock));
    ASSERT_OK(uv_cond_init(&wq.cond));
    cmdipc_registry_opts_init(&o);
    o.id = "srv";
    ASSERT_OK(cmdipc_registry_new(&loop, &o, &srv));
    o.id = "cli";
    o.router_channel = "srv";
    ASSERT_OK(cmdipc_registry_new(&loop, &o, &cli));
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "slow.work", NULL, NULL};
    ASSERT_OK(cmdipc_registry_register(srv, &def, offload_fn, NULL, NULL, NULL));
    ASSERT_OK(cmdipc_memory_pair("cli", "srv", &a, &b));
    ASSERT_OK(cmdipc_registry_attach(srv, a));
    ASSERT_OK(cmdipc_registry_attach(cli, b));
    /* Half through the channel (answers go back on the wire), half local. */
    for (int i = 0; i < XT_CALLS; i++)
        ASSERT_OK(cmdipc_registry_execute(i % 2 ? cli : srv, "slow.work", NULL, NULL,
                                          offload_done, NULL, NULL));
    /* The worker starts only now: every call is detached and queued. */
    ASSERT_OK(uv_thread_create(&wq.tid, worker_main, NULL));
    run_until(&loop, half_done, 30000);
    /* Close both registries with calls still queued at the worker. */
    cmdipc_registry_close(srv, NULL, NULL);
    cmdipc_registry_close(cli, NULL, NULL);
    ASSERT_LOOP_CLOSES(&loop);
    ASSERT_EQ(xt_done, XT_CALLS);
    ASSERT_EQ(xt_ok, XT_CALLS / 2);
    ASSERT_EQ(xt_canceled, XT_CALLS / 2); /* their callers were canceled by the close */
    /* The worker answers the rest now, registries gone: dropped there. */
    uv_mutex_lock(&wq.lock);
    wq.resume = 1;
    wq.stop = 1;
    uv_cond_broadcast(&wq.cond);
    uv_mutex_unlock(&wq.lock);
    ASSERT_OK(uv_thread_join(&wq.tid));
    ASSERT_EQ(wq.head, XT_CALLS);
    uv_cond_destroy(&wq.cond);
    uv_mutex_destroy(&wq.lock);
}

TEST_LIST_BEGIN
TEST_ENTRY_TIMEOUT(messages_crossing_loops_share_no_json, 90000)
TEST_ENTRY_TIMEOUT(calls_answered_from_a_worker_thread, 60000)
TEST_LIST_END
