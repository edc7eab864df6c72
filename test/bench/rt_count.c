/* rt_count — a deterministic round-trip program for counting instructions
 * (test/bench/callgrind.sh runs it under callgrind): a client and a server in
 * ONE process on ONE loop, linked by a Unix socket, doing a warm-up then N
 * round trips one at a time (a single thread makes the sequence of reads and
 * writes the same on every run, so the count repeats).
 *
 *   rt_count cmdipc N   two registries: math.add {"a":1,"b":2} -> 3
 *   rt_count hub N      the same through a hub: client -> hub -> server, three
 *                       registries, two Unix sockets (the difference from
 *                       cmdipc is what a hub costs per forwarded round trip)
 *   rt_count floor N    the naive JSON floor, same bytes on the wire: raw
 *                       libuv, jansson parses every line (json_loadb) and
 *                       builds and dumps every message (json_pack +
 *                       json_dumps) on both sides, with fresh UUIDv4 ids
 *
 * callgrind.sh subtracts a run of N/2 from a run of N, cancelling set-up,
 * warm-up and teardown. jansson's hash seed is fixed (see main): with the
 * same heap history every run, the count repeats to a few instructions. Prints
 * the round trips done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmdipc.h>
#include <sodium.h>

#include "bench.h"

#define WARMUP 200

static char unix_path[108];
static uint64_t target, done;

static void die(const char *what, int rc) {
    fprintf(stderr, "rt_count: %s: %s\n", what, rc ? cmdipc_strerror(rc) : "failed");
    exit(1);
}

/* ===========================================================================
 * cmdipc. */

static cmdipc_registry_t *client, *server, *hub;
static json_t *request;

static void add_fn(cmdipc_call_t *call, json_t *req, void *data) {
    (void)data;
    json_int_t a = json_integer_value(json_object_get(req, "a"));
    json_int_t b = json_integer_value(json_object_get(req, "b"));
    json_t *sum = json_integer(a + b);
    cmdipc_call_reply(call, sum);
    json_decref(sum);
}

static void issue(void);

static void answered(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                     void *data) {
    (void)req, (void)data;
    if (status != 0 || json_integer_value(result) != 3) {
        fprintf(stderr, "rt_count: bad answer: %s\n", msg ? msg : "wrong result");
        exit(1);
    }
    if (++done < target) {
        issue();
    } else {
        cmdipc_registry_close(client, NULL, NULL);
        cmdipc_registry_close(server, NULL, NULL);
        if (hub != NULL)
            cmdipc_registry_close(hub, NULL, NULL);
    }
}

static void issue(void) {
    int rc =
        cmdipc_registry_execute(client, "math.add", request, NULL, answered, NULL, NULL);
    if (rc != 0)
        die("execute", rc);
}

static void client_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                           cmdipc_channel_event_t ev, int status, void *data) {
    (void)r, (void)ch, (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_UP && done == 0)
        issue();
}

static void server_channel(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                           cmdipc_channel_event_t ev, int status, void *data) {
    (void)ch, (void)status, (void)data;
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
    if (ev == CMDIPC_CHANNEL_UP && cmdipc_registry_register(r, &def, add_fn, NULL, NULL, NULL))
        die("register", 0);
}

static void run_cmdipc(uv_loop_t *loop, int with_hub) {
    char url[200];
    int rc;
    cmdipc_registry_opts_t o;
    cmdipc_connect_opts_t co;
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0;
    cmdipc_registry_opts_init(&o);
    snprintf(url, sizeof(url), "unix://%s", unix_path);
    if (with_hub) {
        /* The server registers math.add with the hub once linked. */
        o.id = "hub";
        if (cmdipc_registry_new(loop, &o, &hub) != 0 || cmdipc_listen(hub, url, NULL, NULL))
            die("hub", 0);
        o.id = "server";
        o.router_channel = "hub";
        if (cmdipc_registry_new(loop, &o, &server) != 0)
            die("registry", 0);
        cmdipc_registry_set_channel_cb(server, server_channel, NULL);
        if ((rc = cmdipc_connect(server, url, "hub", &co, NULL)) != 0)
            die("connect", rc);
        while (!cmdipc_registry_channel(hub, "conn-1") ||
               cmdipc_registry_list_commands(hub, &(cmdipc_command_info_t *){NULL},
                                             &(size_t){0}) != 0)
            uv_run(loop, UV_RUN_ONCE);
        for (int i = 0; i < 100; i++)
            uv_run(loop, UV_RUN_NOWAIT);
        o.router_channel = "hub";
    } else {
        o.id = "server";
        if (cmdipc_registry_new(loop, &o, &server) != 0)
            die("registry", 0);
        cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "math.add", NULL, NULL};
        if (cmdipc_registry_register(server, &def, add_fn, NULL, NULL, NULL) != 0)
            die("register", 0);
        rc = cmdipc_listen(server, url, NULL, NULL);
        if (rc != 0)
            die("listen", rc);
        o.router_channel = "server";
    }
    o.id = "client";
    if (cmdipc_registry_new(loop, &o, &client) != 0)
        die("registry", 0);
    cmdipc_registry_set_channel_cb(client, client_channel, NULL);
    request = json_pack("{s:i,s:i}", "a", 1, "b", 2);
    if ((rc = cmdipc_connect(client, url, o.router_channel, &co, NULL)) != 0)
        die("connect", rc);
    uv_run(loop, UV_RUN_DEFAULT);
    json_decref(request);
}

/* ===========================================================================
 * The naive JSON floor. */

typedef struct fpeer_s {
    uv_pipe_t pipe;
    int is_server;
    bench_rbuf_t in;
} fpeer_t;

static uv_pipe_t listener;
static fpeer_t fclient, fserver;

static void fsend(fpeer_t *p, json_t *msg) {
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: the buffer is n + 1 bytes */
    if (bench_write((uv_stream_t *)&p->pipe, text, n + 1, 1) != 0)
        die("write", 0);
}

static void fclient_send(void) {
    char id[37];
    bench_uuid4(id);
    json_t *m = json_pack("{s:s,s:s,s:s,s:{s:i,s:i}}", "id", id, "type",
                          "execute.command.request", "commandId", "math.add", "request",
                          "a", 1, "b", 2);
    fsend(&fclient, m);
    json_decref(m);
}

static void fclose_all(void) {
    uv_close((uv_handle_t *)&fclient.pipe, NULL);
    uv_close((uv_handle_t *)&fserver.pipe, NULL);
    uv_close((uv_handle_t *)&listener, NULL);
}

static void fline(fpeer_t *p, const char *line, size_t n) {
    json_error_t e;
    json_t *in = json_loadb(line, n, 0, &e);
    if (in == NULL)
        die("bad line", 0);
    if (p->is_server) {
        char id[37];
        bench_uuid4(id);
        json_t *req = json_object_get(in, "request");
        json_int_t a = json_integer_value(json_object_get(req, "a"));
        json_int_t b = json_integer_value(json_object_get(req, "b"));
        json_t *out =
            json_pack("{s:s,s:s,s:O,s:{s:b,s:I}}", "id", id, "type",
                      "execute.command.response", "thid", json_object_get(in, "id"),
                      "response", "ok", 1, "result", (json_int_t)(a + b));
        fsend(p, out);
        json_decref(out);
    } else {
        json_t *res = json_object_get(json_object_get(in, "response"), "result");
        if (json_integer_value(res) != 3)
            die("wrong result", 0);
        if (++done < target)
            fclient_send();
        else
            fclose_all();
    }
    json_decref(in);
}

static void fline_cb(void *ctx, const char *line, size_t n) { fline(ctx, line, n); }

static void falloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
    (void)sz;
    fpeer_t *p = h->data;
    char *base;
    size_t room;
    bench_rbuf_room(&p->in, &base, &room);
    *buf = uv_buf_init(base, (unsigned)room);
}

static void fread_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    fpeer_t *p = s->data;
    if (n < 0)
        return;
    bench_rbuf_lines(&p->in, (size_t)n, fline_cb, p);
}

static void fconnection(uv_stream_t *srv, int status) {
    if (status != 0)
        die("accept", status);
    uv_pipe_init(srv->loop, &fserver.pipe, 0);
    fserver.pipe.data = &fserver;
    fserver.is_server = 1;
    if (uv_accept(srv, (uv_stream_t *)&fserver.pipe) != 0)
        die("accept", 0);
    uv_read_start((uv_stream_t *)&fserver.pipe, falloc, fread_cb);
}

static void fconnected(uv_connect_t *req, int status) {
    (void)req;
    if (status != 0)
        die("connect", status);
    uv_read_start((uv_stream_t *)&fclient.pipe, falloc, fread_cb);
    fclient_send();
}

static void run_floor(uv_loop_t *loop) {
    uv_connect_t creq;
    uv_pipe_init(loop, &listener, 0);
    int rc = uv_pipe_bind(&listener, unix_path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&listener, 16, fconnection);
    if (rc != 0)
        die("listen", rc);
    uv_pipe_init(loop, &fclient.pipe, 0);
    fclient.pipe.data = &fclient;
    uv_pipe_connect(&creq, &fclient.pipe, unix_path, fconnected);
    uv_run(loop, UV_RUN_DEFAULT);
    free(fclient.in.data);
    free(fserver.in.data);
}

int main(int argc, char **argv) {
    if (argc != 3 || atoll(argv[2]) <= 0 ||
        (strcmp(argv[1], "cmdipc") != 0 && strcmp(argv[1], "floor") != 0 &&
         strcmp(argv[1], "hub") != 0)) {
        fprintf(stderr, "usage: rt_count cmdipc|hub|floor N\n");
        return 2;
    }
    target = (uint64_t)atoll(argv[2]) + WARMUP;
    /* jansson frees an object's members in hash order; a random seed would
     * change the heap's free lists, and so malloc's instruction count, from
     * one run to the next. */
    json_object_seed(1);
    if (sodium_init() < 0)
        die("sodium", 0);
    snprintf(unix_path, sizeof(unix_path), "/tmp/cmdipc-rt-%d.sock", (int)getpid());
    unlink(unix_path);
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (strcmp(argv[1], "cmdipc") == 0 || strcmp(argv[1], "hub") == 0)
        run_cmdipc(&loop, strcmp(argv[1], "hub") == 0);
    else
        run_floor(&loop);
    if (uv_loop_close(&loop) != 0)
        die("loop still busy", 0);
    unlink(unix_path);
    printf("%llu round trips\n", (unsigned long long)(done - WARMUP));
    return done == target ? 0 : 1;
}
