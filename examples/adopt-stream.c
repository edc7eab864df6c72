/* adopt-stream — a libuv server of the application's own hands the
 * connections it accepts to cmdipc, and a worker thread answers the calls.
 *
 * What an embedder does when the process already has its event loop and its
 * listening socket (a web server adding a control channel, a daemon whose
 * socket systemd opened):
 *
 *   uv_tcp_t server (the application's)        cmdipc registry "app"
 *   uv_listen -> on_connection:
 *     uv_accept(server, client)
 *     cmdipc_adopt(app, "peer-N", client) ---->  NDJSON channel on the client
 *                                               stream; release_cb frees it
 *   a call to "work.hash" -------------------->  handler: cmdipc_call_detach(call),
 *                                               queued for the worker thread
 *   worker thread: computes, then
 *     cmdipc_call_reply(call, result) -------->  delivered by the loop
 *
 * In demo mode (the default) the program also connects two client
 * registries of its own over TCP (cmdipc_connect), makes a few calls through
 * each and exits when they are answered. Build and run:
 *
 *   ninja -C build && build/examples/adopt-stream
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmdipc.h>

#define CALLS_PER_CLIENT 5

static void check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "adopt-stream: %s: %s\n", what, cmdipc_strerror(rc));
        exit(1);
    }
}

/* ---------------------------------------------------------------------------
 * The worker thread: a queue of detached calls. */

typedef struct job_s {
    struct job_s *next;
    cmdipc_call_t *call;
    char *text;
} job_t;

static struct {
    uv_mutex_t lock;
    uv_cond_t cond;
    job_t *head, **tail;
    int stop;
    uv_thread_t tid;
} work;

static void worker(void *arg) {
    (void)arg;
    for (;;) {
        uv_mutex_lock(&work.lock);
        while (work.head == NULL && !work.stop)
            uv_cond_wait(&work.cond, &work.lock);
        job_t *j = work.head;
        if (j == NULL) { /* stopping, nothing left */
            uv_mutex_unlock(&work.lock);
            return;
        }
        work.head = j->next;
        if (work.head == NULL)
            work.tail = &work.head;
        uv_mutex_unlock(&work.lock);

        /* The slow part, off the loop: a FNV-1a hash of the text. The result
         * is made on this thread; cmdipc writes it out here too. */
        unsigned long long h = 1469598103934665603ull;
        for (const char *p = j->text; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", h);
        json_t *res = json_pack("{s:s,s:s}", "text", j->text, "fnv1a", hex);
        if (cmdipc_call_reply(j->call, res) != 0)
            fprintf(stderr, "adopt-stream: reply failed\n");
        json_decref(res);
        free(j->text);
        free(j);
    }
}

static void hash_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    const char *text = json_string_value(json_object_get(request, "text"));
    if (text == NULL) {
        (void)cmdipc_call_fail(call, CMDIPC_EINVALREQ, "expected {\"text\": string}");
        return;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->text = strdup(text)) == NULL || cmdipc_call_detach(call) != 0) {
        if (j != NULL)
            free(j->text);
        free(j);
        (void)cmdipc_call_fail(call, CMDIPC_EINTERNAL, "out of memory");
        return;
    }
    j->call = call;
    uv_mutex_lock(&work.lock);
    *work.tail = j;
    work.tail = &j->next;
    uv_cond_signal(&work.cond);
    uv_mutex_unlock(&work.lock);
}

/* ---------------------------------------------------------------------------
 * The application's own TCP server. */

static uv_loop_t *loop;
static uv_tcp_t server;
static cmdipc_registry_t *app;
static int accepted, released;

static void release_cb(uv_stream_t *stream, void *data) {
    (void)data;
    released++;
    free(stream); /* cmdipc closed it: the memory is ours again */
}

static void on_connection(uv_stream_t *srv, int status) {
    if (status != 0) {
        fprintf(stderr, "adopt-stream: accept: %s\n", uv_strerror(status));
        return;
    }
    uv_tcp_t *client = malloc(sizeof(*client));
    if (client == NULL || uv_tcp_init(loop, client) != 0) {
        free(client);
        return;
    }
    if (uv_accept(srv, (uv_stream_t *)client) != 0) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        return;
    }
    char id[32];
    snprintf(id, sizeof(id), "peer-%d", ++accepted);
    cmdipc_adopt_opts_t ao;
    cmdipc_adopt_opts_init(&ao);
    ao.release_cb = release_cb;
    cmdipc_channel_t *ch;
    int rc = cmdipc_adopt(app, id, (uv_stream_t *)client, NULL, &ao, &ch);
    if (rc != 0) { /* still ours */
        fprintf(stderr, "adopt-stream: adopt: %s\n", cmdipc_strerror(rc));
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        return;
    }
    cmdipc_peer_info_t peer;
    if (cmdipc_channel_peer(ch, &peer) == 0)
        printf("server: %s is %s\n", id, peer.remote);
}

/* ---------------------------------------------------------------------------
 * Demo clients. */

static cmdipc_registry_t *clients[2];
static int answered;

static void answered_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                        void *data) {
    (void)data;
    if (status == 0)
        printf("%s: %s -> %s\n", cmdipc_registry_id(cmdipc_req_registry(req)),
               json_string_value(json_object_get(result, "text")),
               json_string_value(json_object_get(result, "fnv1a")));
    else
        printf("call failed: %s\n", message);
    if (++answered == 2 * CALLS_PER_CLIENT) {
        cmdipc_registry_close(clients[0], NULL, NULL);
        cmdipc_registry_close(clients[1], NULL, NULL);
        cmdipc_registry_close(app, NULL, NULL);
        uv_close((uv_handle_t *)&server, NULL);
    }
}

static void client_up(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                      int status, void *data) {
    (void)ch, (void)status, (void)data;
    if (ev != CMDIPC_CHANNEL_UP)
        return;
    /* The calls go to the router, the application's server. */
    for (int i = 0; i < CALLS_PER_CLIENT; i++) {
        char text[64];
        snprintf(text, sizeof(text), "%s says %d", cmdipc_registry_id(r), i);
        json_t *req = json_pack("{s:s}", "text", text);
        check(cmdipc_registry_execute(r, "work.hash", req, NULL, answered_cb, NULL, NULL),
              "execute");
        json_decref(req);
    }
}

int main(void) {
    loop = uv_default_loop();
    uv_mutex_init(&work.lock);
    uv_cond_init(&work.cond);
    work.tail = &work.head;
    check(uv_thread_create(&work.tid, worker, NULL), "worker thread");

    cmdipc_registry_opts_t o;
    cmdipc_registry_opts_init(&o);
    o.id = "app";
    check(cmdipc_registry_new(loop, &o, &app), "registry");
    cmdipc_command_def_t def;
    cmdipc_command_def_init(&def);
    def.id = "work.hash";
    def.description = "FNV-1a of a text, computed on a worker thread";
    check(cmdipc_registry_register(app, &def, hash_fn, NULL, NULL, NULL), "register");

    /* The application's server, on a port the kernel picks. */
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    check(uv_tcp_init(loop, &server), "tcp");
    check(uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0), "bind");
    check(uv_listen((uv_stream_t *)&server, 64, on_connection), "listen");
    int len = sizeof(addr);
    uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ntohs(addr.sin_port));
    printf("server: listening on %s (the application's own uv_tcp_t)\n", url);

    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof(id), "client-%d", i + 1);
        o.id = id;
        o.router_channel = "app";
        check(cmdipc_registry_new(loop, &o, &clients[i]), "client registry");
        cmdipc_registry_set_channel_cb(clients[i], client_up, NULL);
        check(cmdipc_connect(clients[i], url, "app", NULL, NULL), "connect");
    }

    uv_run(loop, UV_RUN_DEFAULT);

    uv_mutex_lock(&work.lock);
    work.stop = 1;
    uv_cond_signal(&work.cond);
    uv_mutex_unlock(&work.lock);
    uv_thread_join(&work.tid);
    printf("done: %d calls answered by the worker, %d connections adopted and released\n",
           answered, released);
    return (answered == 2 * CALLS_PER_CLIENT && released == accepted && accepted == 2 &&
            uv_loop_close(loop) == 0)
               ? 0
               : 1;
}
