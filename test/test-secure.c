/* The secure transport over real sockets: tcp+sodium:// and unix+sodium://
 * round trips, the peer key, authorization (SECURITY.md (c) 8, 9), stalled
 * handshakes (11), tampered and truncated streams (12), replayed sessions
 * (13), rekeying and wiping over a connection (14), the heartbeat (22,
 * scaled down), a cross-process test. Test names carry the numbers. Peers
 * that misbehave are plain sockets of this process (rawpeer.h) or in-process
 * proxies. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawpeer.h"
#include "secure_int.h"

static uv_loop_t loop;

/* ---------------------------------------------------------------------------
 * Fixture: a listening registry "srv" and a dialing registry "cli" whose
 * router channel "hub" is the secure link. */

typedef struct {
    cmdipc_registry_t *srv, *cli;
    cmdipc_listener_t *l;
    cmdipc_channel_t *ch;
    cmdipc_keypair_t *skey, *ckey;
    cmdipc_secure_opts_t lso, cso;
    cmdipc_listen_opts_t lo;
    cmdipc_connect_opts_t co;
    cmdipc_pubkey_t spk, cpk;
    char url[160];
    int up, down, closed, closed_status, last_down;
    int srv_attached, srv_closed, srv_last_closed;
    int authorize_calls;
} fx_t;

static fx_t *fx;

static void cli_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                           cmdipc_channel_event_t ev, int status, void *data) {
    (void)r;
    (void)ch;
    fx_t *f = data;
    if (ev == CMDIPC_CHANNEL_UP)
        f->up++;
    else if (ev == CMDIPC_CHANNEL_DOWN) {
        f->down++;
        f->last_down = status;
    } else if (ev == CMDIPC_CHANNEL_CLOSED) {
        f->closed++;
        f->closed_status = status;
    }
}

static void srv_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                           cmdipc_channel_event_t ev, int status, void *data) {
    (void)r;
    (void)ch;
    fx_t *f = data;
    if (ev == CMDIPC_CHANNEL_ATTACHED)
        f->srv_attached++;
    else if (ev == CMDIPC_CHANNEL_CLOSED) {
        f->srv_closed++;
        f->srv_last_closed = status;
    }
}

static void fx_init(fx_t *f) {
    memset(f, 0, sizeof(*f));
    fx = f;
    ASSERT_OK(cmdipc_keypair_generate(&f->skey));
    ASSERT_OK(cmdipc_keypair_generate(&f->ckey));
    cmdipc_keypair_public(f->skey, &f->spk);
    cmdipc_keypair_public(f->ckey, &f->cpk);
    cmdipc_secure_opts_init(&f->lso);
    f->lso.key = f->skey;
    f->lso.allow = &f->cpk;
    f->lso.n_allow = 1;
    cmdipc_secure_opts_init(&f->cso);
    f->cso.key = f->ckey;
    f->cso.peer_key = &f->spk;
    cmdipc_listen_opts_init(&f->lo);
    f->lo.secure = &f->lso;
    cmdipc_connect_opts_init(&f->co);
    f->co.secure = &f->cso;
    f->co.reconnect = 0;
    f->srv = tu_registry(&loop, "srv", NULL);
    f->cli = tu_registry(&loop, "cli", "hub");
    cmdipc_registry_set_channel_cb(f->cli, cli_channel_cb, f);
    cmdipc_registry_set_channel_cb(f->srv, srv_channel_cb, f);
}

static void fx_listen(fx_t *f, const char *url) {
    ASSERT_OK(cmdipc_listen(f->srv, url, &f->lo, &f->l));
    ASSERT_OK(cmdipc_listener_url(f->l, f->url, sizeof(f->url)));
}

static void fx_connect(fx_t *f) { ASSERT_OK(cmdipc_connect(f->cli, f->url, "hub", &f->co, &f->ch)); }

static void fx_done(fx_t *f) {
    tu_close_all(&loop, f->srv, f->cli, NULL);
    cmdipc_keypair_free(f->skey);
    cmdipc_keypair_free(f->ckey);
}

/* ---------------------------------------------------------------------------
 * Round trips. */

static tu_events_t got_events;

static void round_trip(const char *listen_url) {
    fx_t f;
    tu_result_t res;
    memset(&res, 0, sizeof(res));
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    fx_listen(&f, listen_url);
    ASSERT(strstr(f.url, "+sodium://") != NULL);
    tu_register(&loop, f.srv, "math.add", tu_add_fn, NULL);
    fx_connect(&f);
    tu_run_until(&loop, &f.up, 10000);
    /* cli -> srv */
    ASSERT_OK(tu_call(&loop, f.cli, "math.add", "{\"a\":2,\"b\":3}", &res));
    ASSERT_EQ(json_integer_value(res.result), 5);
    tu_result_clear(&res);
    /* srv -> cli: a command of cli escalated to srv, called there */
    tu_register(&loop, f.cli, "echo", tu_echo_fn, NULL);
    tu_settle(&loop);
    ASSERT_OK(tu_call(&loop, f.srv, "echo", "{\"x\":[1,2,3]}", &res));
    ASSERT_STR_EQ(json_dumps(res.result, JSON_COMPACT), "{\"x\":[1,2,3]}");
    tu_result_clear(&res);
    /* events both ways */
    tu_events_clear(&got_events);
    ASSERT_OK(cmdipc_registry_on(f.srv, "ping", tu_event_cb, &got_events, NULL));
    ASSERT_OK(cmdipc_registry_on(f.cli, "pong", tu_event_cb, &got_events, NULL));
    json_t *p = tu_json("{\"n\":1}");
    ASSERT_OK(cmdipc_registry_emit(f.cli, "ping", p));
    ASSERT_OK(cmdipc_registry_emit(f.srv, "pong", p));
    json_decref(p);
    tu_settle(&loop);
    ASSERT_EQ(got_events.count, 2);
    /* The authenticated keys, each side. */
    cmdipc_pubkey_t k;
    ASSERT_OK(cmdipc_channel_peer_key(f.ch, &k));
    ASSERT(cmdipc_pubkey_equal(&k, &f.spk));
    cmdipc_channel_t *sch = cmdipc_registry_channel(f.srv, "conn-1");
    ASSERT_NOT_NULL(sch);
    ASSERT_OK(cmdipc_channel_peer_key(sch, &k));
    ASSERT(cmdipc_pubkey_equal(&k, &f.cpk));
    ASSERT_EQ(f.down, 0);
    /* A graceful close ends with FINAL: the server sees a clean EOF. */
    ASSERT_OK(cmdipc_channel_close(f.ch));
    tu_run_until(&loop, &f.srv_closed, 10000);
    ASSERT_STATUS(UV_EOF, f.srv_last_closed);
    ASSERT_EQ(f.closed, 1);
    ASSERT_OK(f.closed_status);
    tu_events_clear(&got_events);
    fx_done(&f);
}

TEST(secure_tcp_round_trip) { round_trip("tcp+sodium://127.0.0.1:0"); }

TEST(secure_unix_round_trip) {
    char path[HARNESS_PATH_MAX], url[HARNESS_PATH_MAX + 32];
    snprintf(url, sizeof(url), "unix+sodium://%s", harness_scratch_path(path, sizeof(path), "s"));
    round_trip(url);
}

TEST(secure_plain_channel_has_no_peer_key) {
    cmdipc_listener_t *l;
    cmdipc_channel_t *ch;
    char url[160];
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL), *b = tu_registry(&loop, "b", NULL);
    ASSERT_OK(cmdipc_listen(a, "tcp://127.0.0.1:0", NULL, &l));
    ASSERT_OK(cmdipc_listener_url(l, url, sizeof(url)));
    ASSERT_OK(cmdipc_connect(b, url, "a", NULL, &ch));
    cmdipc_pubkey_t k;
    ASSERT_STATUS(UV_ENOTSUP, cmdipc_channel_peer_key(ch, &k));
    /* A +sodium address without keys is refused at once. */
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(a, "tcp+sodium://127.0.0.1:0", NULL, &l));
    ASSERT_STATUS(UV_EINVAL, cmdipc_connect(b, "tcp+sodium://127.0.0.1:1", "x", NULL, &ch));
    /* Closed while the connection is still being made. */
    tu_close_all(&loop, a, b, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(secure_tcp_round_trip)
TEST_ENTRY(secure_unix_round_trip)
TEST_ENTRY(secure_plain_channel_has_no_peer_key)
TEST_LIST_END
