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
#include <sys/resource.h>
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
static const cmdipc_registry_opts_t *fx_srv_opts; /* NULL: defaults */

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
    f->srv = fx_srv_opts ? tu_registry_opts(&loop, fx_srv_opts)
                         : tu_registry(&loop, "srv", NULL);
    f->cli = tu_registry(&loop, "cli", "hub");
    cmdipc_registry_set_channel_cb(f->cli, cli_channel_cb, f);
    cmdipc_registry_set_channel_cb(f->srv, srv_channel_cb, f);
}

static void fx_listen(fx_t *f, const char *url) {
    ASSERT_OK(cmdipc_listen(f->srv, url, &f->lo, &f->l));
    ASSERT_OK(cmdipc_listener_url(f->l, f->url, sizeof(f->url)));
}

static void fx_connect(fx_t *f) {
    ASSERT_OK(cmdipc_connect(f->cli, f->url, "hub", &f->co, &f->ch));
}

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
    char *dump = json_dumps(res.result, JSON_COMPACT);
    ASSERT_STR_EQ(dump, "{\"x\":[1,2,3]}");
    free(dump);
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
    snprintf(url, sizeof(url), "unix+sodium://%s",
             harness_scratch_path(path, sizeof(path), "s"));
    round_trip(url);
}

TEST(secure_plain_channel_has_no_peer_key) {
    cmdipc_listener_t *l;
    cmdipc_channel_t *ch;
    char url[160];
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *a = tu_registry(&loop, "a", NULL),
                      *b = tu_registry(&loop, "b", NULL);
    ASSERT_OK(cmdipc_listen(a, "tcp://127.0.0.1:0", NULL, &l));
    ASSERT_OK(cmdipc_listener_url(l, url, sizeof(url)));
    ASSERT_OK(cmdipc_connect(b, url, "a", NULL, &ch));
    cmdipc_pubkey_t k;
    ASSERT_STATUS(UV_ENOTSUP, cmdipc_channel_peer_key(ch, &k));
    /* A +sodium address without keys is refused at once. */
    ASSERT_STATUS(UV_EINVAL, cmdipc_listen(a, "tcp+sodium://127.0.0.1:0", NULL, &l));
    ASSERT_STATUS(UV_EINVAL,
                  cmdipc_connect(b, "tcp+sodium://127.0.0.1:1", "x", NULL, &ch));
    /* Closed while the connection is still being made. */
    tu_close_all(&loop, a, b, NULL);
}

/* ---------------------------------------------------------------------------
 * A raw initiator in the test: our state machine over a plain socket, so a
 * test can send exactly the bytes it wants. */

typedef struct {
    rp_t p;
    cmdipc__hs_t hs;
    cmdipc__ftx_t tx;
    cmdipc__frx_t rx;
    cmdipc__buf_t sent; /* every byte written (for replays) */
    int ready;
} raw_t;

static void raw_write(raw_t *r, const void *b, size_t n) {
    cmdipc__buf_put(&r->sent, b, n);
    ASSERT_OK(rp_write_all(&loop, &r->p, b, n, 10000));
}

/* Waits for n more bytes than already taken and takes them. */
static void raw_take(raw_t *r, void *out, size_t n) {
    RP_PUMP_UNTIL(&loop, r->p.fd, (rp_read(&r->p), r->p.len >= n || rp_closed(&r->p)),
                  10000);
    ASSERT_GE(r->p.len, n);
    memcpy(out, r->p.buf, n);
    memmove(r->p.buf, r->p.buf + n, r->p.len - n);
    r->p.len -= n;
}

/* Connects to the unix socket path and runs the handshake as kp pinning
 * spk. Returns 0 when ready was read, else the failure seen (CMDIPC_EHSEOF
 * when the listener closed, CMDIPC_EPEERREJECTED when it refused us). */
static int raw_handshake(raw_t *r, const char *path, const cmdipc_keypair_t *kp,
                         const cmdipc_pubkey_t *spk) {
    uint8_t buf[CMDIPC__HS_ACT3 + CMDIPC__STREAM_HEADER];
    uint8_t i2r[32], r2i[32];
    size_t n;
    memset(r, 0, sizeof(*r));
    cmdipc__buf_init(&r->sent);
    ASSERT_OK(rp_connect(&r->p, path));
    cmdipc__hs_init(&r->hs, CMDIPC__HS_INITIATOR, (const uint8_t *)CMDIPC__PROLOGUE,
                    strlen(CMDIPC__PROLOGUE), kp, spk->bytes);
    ASSERT_OK(cmdipc__hs_write_act(&r->hs, buf, sizeof(buf), &n));
    raw_write(r, buf, n);
    RP_PUMP_UNTIL(&loop, r->p.fd, (rp_read(&r->p), r->p.len >= 49 || rp_closed(&r->p)),
                  10000);
    if (r->p.len < 49)
        return CMDIPC_EHSEOF;
    raw_take(r, buf, 49);
    ASSERT_OK(cmdipc__hs_read_act(&r->hs, buf, 49));
    ASSERT_OK(cmdipc__hs_write_act(&r->hs, buf, sizeof(buf), &n));
    ASSERT_OK(cmdipc__hs_split(&r->hs, i2r, r2i));
    ASSERT_OK(cmdipc__ftx_init(&r->tx, i2r, buf + n, 1000, 0, 0));
    cmdipc__frx_init(&r->rx, r2i, 1024 * 1024);
    raw_write(r, buf, n + CMDIPC__STREAM_HEADER);
    /* hdr_r and the first frame. */
    const uint8_t *m;
    size_t mlen;
    int ctl, fin, rc;
    for (;;) {
        RP_PUMP_UNTIL(&loop, r->p.fd, (rp_read(&r->p), r->p.len > 0 || rp_closed(&r->p)),
                      10000);
        if (r->p.len == 0)
            return CMDIPC_EHSEOF;
        ASSERT_OK(cmdipc__frx_feed(&r->rx, r->p.buf, r->p.len));
        r->p.len = 0;
        rc = cmdipc__frx_next(&r->rx, &m, &mlen, &ctl, &fin);
        if (rc != 0)
            break;
    }
    ASSERT_EQ(rc, 1);
    if (ctl == CMDIPC__CTL_ERROR && fin)
        return CMDIPC_EPEERREJECTED;
    ASSERT_EQ(ctl, CMDIPC__CTL_READY);
    r->ready = 1;
    return 0;
}

/* Sends one frame of lines. */
static void raw_lines(raw_t *r, const char *lines) {
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    ASSERT_OK(cmdipc__ftx_seal_lines(&r->tx, lines, strlen(lines), 0, &b));
    raw_write(r, b.data, b.len);
    cmdipc__buf_free(&b);
}

/* The next frame the listener sent (pumping until it is complete): 1, or
 * 0 if the connection closed first. */
static int raw_frame(raw_t *r, const uint8_t **m, size_t *n, int *ctl, int *fin) {
    for (;;) {
        int rc = cmdipc__frx_next(&r->rx, m, n, ctl, fin);
        ASSERT(rc >= 0);
        if (rc == 1)
            return 1;
        RP_PUMP_UNTIL(&loop, r->p.fd, (rp_read(&r->p), r->p.len > 0 || rp_closed(&r->p)),
                      10000);
        if (r->p.len == 0)
            return 0;
        ASSERT_OK(cmdipc__frx_feed(&r->rx, r->p.buf, r->p.len));
        r->p.len = 0;
    }
}

static void raw_close(raw_t *r) {
    rp_close(&r->p);
    cmdipc__frx_free(&r->rx);
    cmdipc__buf_free(&r->sent);
}

/* A listener fixture on a unix+sodium socket. */
static void fx_listen_unix(fx_t *f, char *path) {
    char url[HARNESS_PATH_MAX + 32];
    harness_scratch_path(path, HARNESS_PATH_MAX, "sec");
    snprintf(url, sizeof(url), "unix+sodium://%s", path);
    fx_listen(f, url);
}

static int executed;
static void count_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    executed++;
    ASSERT_OK(cmdipc_call_reply(call, NULL));
}

static const char exec_line[] = "{\"id\":\"11111111-1111-4111-8111-111111111111\","
                                "\"type\":\"execute.command.request\","
                                "\"commandId\":\"count\"}\n";

/* ---------------------------------------------------------------------------
 * 8. Wrong pinned key; a man in the middle. */

TEST(secure8_wrong_pinned_key) {
    fx_t f;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    fx_listen(&f, "tcp+sodium://127.0.0.1:0");
    cmdipc_keypair_t *other;
    ASSERT_OK(cmdipc_keypair_generate(&other));
    cmdipc_pubkey_t wrong;
    cmdipc_keypair_public(other, &wrong);
    f.cso.peer_key = &wrong;
    fx_connect(&f);
    tu_run_until(&loop, &f.closed, 10000);
    ASSERT_STATUS(CMDIPC_EHSEOF, f.closed_status);
    ASSERT_EQ(f.up, 0);
    ASSERT_EQ(f.srv_attached, 0);
    cmdipc_stats_t st;
    cmdipc_registry_stats(f.srv, &st);
    ASSERT_UEQ(st.msgs_in, 0); /* 0 frames dispatched */
    cmdipc_registry_stats(f.cli, &st);
    ASSERT_UEQ(st.msgs_in, 0);
    cmdipc_keypair_free(other);
    fx_done(&f);
}

/* A listener that answers Act 1 with an Act 2 of its own making. */
typedef struct {
    uv_tcp_t server, conn;
    int accepted, closed;
    int silent; /* never answers */
    size_t received;
    uv_write_t w;
    uint8_t act2[CMDIPC__HS_ACT2];
} mitm_t;

static void mitm_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
    static char buf[4096];
    (void)h;
    (void)s;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void mitm_closed(uv_handle_t *h) { ((mitm_t *)h->data)->closed++; }

static void mitm_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    (void)b;
    mitm_t *m = st->data;
    if (n < 0) {
        uv_close((uv_handle_t *)st, mitm_closed);
        return;
    }
    size_t before = m->received;
    m->received += (size_t)n;
    if (!m->silent && before < CMDIPC__HS_ACT1 && m->received >= CMDIPC__HS_ACT1) {
        /* Its own act 2: a fresh ephemeral key and a tag it cannot make
         * right without the pinned key's secret. */
        uint8_t e[32];
        randombytes_buf(e, sizeof(e));
        m->act2[0] = CMDIPC__HS_VERSION;
        crypto_scalarmult_base(m->act2 + 1, e);
        randombytes_buf(m->act2 + 33, 16);
        uv_buf_t w = uv_buf_init((char *)m->act2, sizeof(m->act2));
        ASSERT_OK(uv_write(&m->w, st, &w, 1, NULL));
    }
}

static void mitm_conn(uv_stream_t *server, int status) {
    mitm_t *m = server->data;
    ASSERT_OK(status);
    ASSERT_OK(uv_tcp_init(server->loop, &m->conn));
    m->conn.data = m;
    ASSERT_OK(uv_accept(server, (uv_stream_t *)&m->conn));
    m->accepted++;
    ASSERT_OK(uv_read_start((uv_stream_t *)&m->conn, mitm_alloc, mitm_read));
}

/* Listens for the fake listener; f->url is its address. */
static void mitm_listen(mitm_t *m, fx_t *f) {
    struct sockaddr_in sa;
    ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &sa));
    ASSERT_OK(uv_tcp_init(&loop, &m->server));
    m->server.data = m;
    ASSERT_OK(uv_tcp_bind(&m->server, (struct sockaddr *)&sa, 0));
    ASSERT_OK(uv_listen((uv_stream_t *)&m->server, 8, mitm_conn));
    int len = sizeof(sa);
    ASSERT_OK(uv_tcp_getsockname(&m->server, (struct sockaddr *)&sa, &len));
    snprintf(f->url, sizeof(f->url), "tcp+sodium://127.0.0.1:%d", ntohs(sa.sin_port));
}

TEST(secure8_man_in_the_middle) {
    fx_t f;
    mitm_t m;
    memset(&m, 0, sizeof(m));
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    mitm_listen(&m, &f);
    fx_connect(&f); /* pins the real listener's key, reaches the MITM */
    tu_run_until(&loop, &f.closed, 10000);
    ASSERT_STATUS(CMDIPC_EHSAUTH, f.closed_status);
    tu_run_until(&loop, &m.closed, 10000);
    ASSERT_EQ(m.accepted, 1);
    ASSERT_UEQ(m.received, CMDIPC__HS_ACT1); /* no act 3 */
    cmdipc_stats_t st;
    cmdipc_registry_stats(f.cli, &st);
    ASSERT_UEQ(st.msgs_in, 0);
    uv_close((uv_handle_t *)&m.server, NULL);
    fx_done(&f);
}

/* A listener that accepts and never answers: the dialer's handshake times
 * out (scaled: 10 s to 200 ms); closing the registry during one is clean. */
TEST(secure11_dialer_handshake_timeout_and_close) {
    for (int close_early = 0; close_early < 2; close_early++) {
        fx_t f;
        mitm_t m;
        memset(&m, 0, sizeof(m));
        m.silent = 1;
        ASSERT_OK(uv_loop_init(&loop));
        fx_init(&f);
        f.cso.handshake_timeout_ms = 200;
        mitm_listen(&m, &f);
        uint64_t t0 = uv_hrtime();
        fx_connect(&f);
        if (close_early) {
            RP_PUMP_UNTIL(&loop, -1, m.received >= CMDIPC__HS_ACT1, 10000);
        } else {
            tu_run_until(&loop, &f.closed, 10000);
            ASSERT_STATUS(CMDIPC_EHSTIMEOUT, f.closed_status);
            ASSERT_GE((uv_hrtime() - t0) / 1000000, 150);
        }
        ASSERT_EQ(f.up, 0);
        if (m.accepted && !uv_is_closing((uv_handle_t *)&m.conn))
            uv_close((uv_handle_t *)&m.conn, NULL);
        uv_close((uv_handle_t *)&m.server, NULL);
        fx_done(&f); /* with the handshake in progress when close_early */
    }
}

/* ---------------------------------------------------------------------------
 * 9. Not allowed: rejected for good; an empty list admits nobody. */

static int deny_calls;
static int deny_cb(const cmdipc_pubkey_t *key, const cmdipc_peer_info_t *peer,
                   void *data) {
    (void)key;
    (void)data;
    ASSERT_NOT_NULL(peer);
    deny_calls++;
    return -1;
}

TEST(secure9_key_not_allowed_never_reconnects) {
    fx_t f;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    f.lso.n_allow = 0;
    f.lso.allow = NULL;
    f.lso.authorize = deny_cb;
    fx_listen(&f, "tcp+sodium://127.0.0.1:0");
    /* Reconnects every 1-2 ms if it did reconnect: 60 s of the default
     * schedule (at most 11 attempts) is well covered by 500 ms of this. */
    f.co.reconnect = 1;
    f.co.reconnect_min_ms = 1;
    f.co.reconnect_max_ms = 2;
    fx_connect(&f);
    tu_run_until(&loop, &f.closed, 10000);
    ASSERT_STATUS(CMDIPC_EPEERREJECTED, f.closed_status);
    rp_run_for(&loop, -1, 500);
    ASSERT_EQ(deny_calls, 1); /* 0 reconnect attempts */
    ASSERT_EQ(f.up, 0);
    ASSERT_EQ(f.srv_attached, 0);
    fx_done(&f);
}

static int rejected_count, closed_count;
static void many_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                    int status, void *data) {
    (void)r;
    (void)ch;
    (void)data;
    if (ev == CMDIPC_CHANNEL_CLOSED) {
        closed_count++;
        rejected_count += status == CMDIPC_EPEERREJECTED;
    }
    ASSERT(ev != CMDIPC_CHANNEL_UP);
}

TEST(secure9_empty_allow_list_rejects_everyone) {
    fx_t f;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    f.lso.n_allow = 0;
    f.lso.allow = NULL;
    fx_listen(&f, "tcp+sodium://127.0.0.1:0");
    cmdipc_registry_set_channel_cb(f.cli, many_cb, NULL);
    for (int batch = 0; batch < 5; batch++) {
        cmdipc_keypair_t *keys[20];
        for (int i = 0; i < 20; i++) {
            char id[32];
            cmdipc_channel_t *ch;
            ASSERT_OK(cmdipc_keypair_generate(&keys[i]));
            cmdipc_secure_opts_t so = f.cso;
            so.key = keys[i];
            cmdipc_connect_opts_t co = f.co;
            co.secure = &so;
            snprintf(id, sizeof(id), "k%d", batch * 20 + i);
            ASSERT_OK(cmdipc_connect(f.cli, f.url, id, &co, &ch));
        }
        int want = (batch + 1) * 20;
        RP_PUMP_UNTIL(&loop, -1, closed_count >= want, 20000);
        for (int i = 0; i < 20; i++)
            cmdipc_keypair_free(keys[i]);
    }
    ASSERT_EQ(closed_count, 100);
    ASSERT_EQ(rejected_count, 100); /* 100 % of 100 distinct keys */
    ASSERT_EQ(f.srv_attached, 0);
    fx_done(&f);
}

/* ---------------------------------------------------------------------------
 * 11. Stalled handshakes: at most 64 slots, each cut by the timeout, and a
 * good client still gets in. */

TEST(secure11_stalled_handshakes_and_a_good_client) {
    fx_t f;
    char path[HARNESS_PATH_MAX];
    enum { STALLS = 1000 };
    static rp_t stall[STALLS];
    struct rlimit rl;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < STALLS + 200 && rl.rlim_max >= STALLS + 200) {
        rl.rlim_cur = STALLS + 200;
        ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
    }
    if (rl.rlim_cur < STALLS + 200)
        RETURN_SKIP("needs 1,200 file descriptors");
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    /* The 10 s handshake timeout scaled down to 1 s. */
    f.lso.handshake_timeout_ms = 1000;
    fx_listen_unix(&f, path);
    tu_register(&loop, f.srv, "math.add", tu_add_fn, NULL);
    uint8_t partial[48];
    memset(partial, 0, sizeof(partial));
    partial[0] = CMDIPC__HS_VERSION;
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < STALLS; i++) {
        ASSERT_OK(rp_connect(&stall[i], path));
        if (i % 2)
            ASSERT_OK(rp_write_all(&loop, &stall[i], partial, sizeof(partial), 10000));
        if (i % 50 == 49)
            for (int k = 0; k < 20; k++)
                uv_run(&loop, UV_RUN_NOWAIT);
    }
    /* Meanwhile a good client. */
    fx_connect(&f);
    tu_run_until(&loop, &f.up, 10000);
    tu_result_t res;
    memset(&res, 0, sizeof(res));
    ASSERT_OK(tu_call(&loop, f.cli, "math.add", "{\"a\":1,\"b\":1}", &res));
    ASSERT_EQ(json_integer_value(res.result), 2);
    tu_result_clear(&res);
    ASSERT_LT((uv_hrtime() - t0) / 1000000, 10000); /* (loaded machines: generous) */
    /* Every stalled connection gets closed: evicted (oldest first) or timed
     * out; never more than 64 held a slot. */
    int open = STALLS;
    uint64_t t1 = uv_hrtime();
    while (open > 0) {
        rp_pump(&loop, -1, 5);
        open = 0;
        for (int i = 0; i < STALLS; i++) {
            if (stall[i].fd >= 0 && !rp_closed(&stall[i]))
                rp_read(&stall[i]);
            open += stall[i].fd >= 0 && !rp_closed(&stall[i]);
        }
        ASSERT_LT((uv_hrtime() - t1) / 1000000, 20000);
    }
    unsigned peak;
    cmdipc__secure_cfg_t *cfg = cmdipc__net_listener_secure(f.l);
    ASSERT_NOT_NULL(cfg);
    ASSERT_EQ(cmdipc__secure_in_progress(cfg, &peak), 0);
    ASSERT_EQ(peak, 64);          /* full, never more */
    ASSERT_EQ(f.srv_attached, 1); /* only the good client became a channel */
    for (int i = 0; i < STALLS; i++)
        rp_close(&stall[i]);
    fx_done(&f);
}

/* ---------------------------------------------------------------------------
 * 12. Tampered streams over a real connection: detected on the first bad
 * frame; truncation; data after FINAL. */

static tu_events_t seen;

static void send_events(raw_t *r, int from, int to, cmdipc__buf_t *out) {
    for (int i = from; i < to; i++) {
        char line[160];
        int n =
            snprintf(line, sizeof(line),
                     "{\"id\":\"ev-%d\",\"type\":\"event\",\"eventId\":\"tick\"}\n", i);
        ASSERT_OK(cmdipc__ftx_seal_lines(&r->tx, line, (size_t)n, 0, out));
    }
}

TEST(secure12_transport_tampering) {
    char path[HARNESS_PATH_MAX];
    for (int kind = 0; kind < 7; kind++) {
        fx_t f;
        raw_t r;
        ASSERT_OK(uv_loop_init(&loop));
        fx_init(&f);
        fx_listen_unix(&f, path);
        tu_events_clear(&seen);
        ASSERT_OK(cmdipc_registry_on(f.srv, "tick", tu_event_cb, &seen, NULL));
        ASSERT_OK(raw_handshake(&r, path, f.ckey, &f.spk));
        cmdipc__buf_t b, t;
        cmdipc__buf_init(&b);
        cmdipc__buf_init(&t);
        size_t at[6];
        for (int i = 0; i < 5; i++) {
            at[i] = b.len;
            send_events(&r, i, i + 1, &b);
        }
        at[5] = b.len;
        int expect = CMDIPC_EFRAMEAUTH, good = 3;
        cmdipc__buf_put(&t, b.data, at[3]); /* frames 0..2 intact */
        switch (kind) {
            case 0: /* bit flip in frame 3 */
                cmdipc__buf_put(&t, b.data + at[3], at[5] - at[3]);
                t.data[at[3] + 10] ^= 0x04;
                break;
            case 1: /* replay of frame 2 */
                cmdipc__buf_put(&t, b.data + at[2], at[3] - at[2]);
                break;
            case 2: /* frames 3 and 4 swapped */
                cmdipc__buf_put(&t, b.data + at[4], at[5] - at[4]);
                cmdipc__buf_put(&t, b.data + at[3], at[4] - at[3]);
                break;
            case 3: /* frame 3 dropped */
                cmdipc__buf_put(&t, b.data + at[4], at[5] - at[4]);
                break;
            case 4: /* a length byte flipped */
                cmdipc__buf_put(&t, b.data + at[3], at[5] - at[3]);
                t.data[at[3] + 3] ^= 0x02;
                break;
            case 5: /* FIN without FINAL */
                cmdipc__buf_put(&t, b.data + at[3], at[5] - at[3]);
                expect = CMDIPC_ETRUNCATED;
                good = 5;
                break;
            case 6: { /* data after FINAL */
                cmdipc__buf_put(&t, b.data + at[3], at[5] - at[3]);
                ASSERT_OK(cmdipc__ftx_control(&r.tx, CMDIPC__CTL_BYE, NULL, 1, 0, &t));
                cmdipc__buf_put(&t, "garbage!", 8);
                expect = CMDIPC_EPROTO;
                good = 5;
                break;
            }
        }
        raw_write(&r, t.data, t.len);
        if (kind == 5)
            shutdown(r.p.fd, SHUT_WR);
        tu_run_until(&loop, &f.srv_closed, 10000);
        ASSERT_STATUS(expect, f.srv_last_closed);
        ASSERT_EQ(seen.count, good); /* nothing after the first bad frame */
        raw_close(&r);
        cmdipc__buf_free(&b);
        cmdipc__buf_free(&t);
        tu_events_clear(&seen);
        fx_done(&f);
    }
}

/* A peer that says goodbye properly: FINAL, then FIN. */
TEST(secure12_final_then_eof_is_a_clean_close) {
    char path[HARNESS_PATH_MAX];
    fx_t f;
    raw_t r;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    fx_listen_unix(&f, path);
    tu_events_clear(&seen);
    ASSERT_OK(cmdipc_registry_on(f.srv, "tick", tu_event_cb, &seen, NULL));
    ASSERT_OK(raw_handshake(&r, path, f.ckey, &f.spk));
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    send_events(&r, 0, 3, &b);
    ASSERT_OK(cmdipc__ftx_control(&r.tx, CMDIPC__CTL_BYE, NULL, 1, 0, &b));
    raw_write(&r, b.data, b.len);
    shutdown(r.p.fd, SHUT_WR);
    tu_run_until(&loop, &f.srv_closed, 10000);
    ASSERT_STATUS(UV_EOF, f.srv_last_closed);
    ASSERT_EQ(seen.count, 3);
    /* It answered with its own FINAL before closing. */
    const uint8_t *m;
    size_t n;
    int ctl, fin = 0, got;
    while ((got = raw_frame(&r, &m, &n, &ctl, &fin)) == 1 && !fin)
        ;
    ASSERT_EQ(got, 1);
    ASSERT_EQ(fin, 1);
    ASSERT_EQ(ctl, CMDIPC__CTL_BYE);
    raw_close(&r);
    cmdipc__buf_free(&b);
    tu_events_clear(&seen);
    fx_done(&f);
}

/* ---------------------------------------------------------------------------
 * 13. A recorded session replayed executes nothing. */

TEST(secure13_replayed_session_executes_nothing) {
    char path[HARNESS_PATH_MAX];
    fx_t f;
    raw_t r;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    fx_listen_unix(&f, path);
    executed = 0;
    tu_register(&loop, f.srv, "count", count_fn, NULL);
    ASSERT_OK(raw_handshake(&r, path, f.ckey, &f.spk));
    raw_lines(&r, exec_line);
    RP_PUMP_UNTIL(&loop, r.p.fd, executed == 1, 10000);
    /* The recording: every byte the client sent (acts and frames). */
    cmdipc__buf_t rec;
    cmdipc__buf_init(&rec);
    cmdipc__buf_put(&rec, r.sent.data, r.sent.len);
    raw_close(&r);
    for (int i = 0; i < 3; i++) {
        rp_t p;
        ASSERT_OK(rp_connect(&p, path));
        ASSERT_OK(rp_write_all(&loop, &p, rec.data, rec.len, 10000));
        rp_wait_closed(&loop, &p, 10000); /* act 3 fails against a fresh e_r */
        rp_close(&p);
    }
    rp_run_for(&loop, -1, 50);
    ASSERT_EQ(executed, 1); /* the original call only */
    ASSERT_EQ(f.srv_attached, 1);
    cmdipc__buf_free(&rec);
    fx_done(&f);
}

/* ---------------------------------------------------------------------------
 * 14. 10,000 frames over a connection, re-keyed every 1,000; secrets wiped. */

TEST(secure14_ten_thousand_frames_rekeyed) {
    char path[HARNESS_PATH_MAX];
    fx_t f;
    raw_t r;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    fx_listen_unix(&f, path);
    tu_events_clear(&seen);
    ASSERT_OK(cmdipc_registry_on(f.srv, "tick", tu_event_cb, &seen, NULL));
    unsigned wiped = cmdipc__secure_wiped_total();
    ASSERT_OK(raw_handshake(&r, path, f.ckey, &f.spk));
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    send_events(&r, 0, 10000, &b); /* one frame each */
    ASSERT_UEQ(r.tx.frames, 10000);
    raw_write(&r, b.data, b.len);
    RP_PUMP_UNTIL(&loop, r.p.fd, seen.count == 10000 || f.srv_closed, 30000);
    ASSERT_EQ(seen.count, 10000);
    ASSERT_EQ(f.srv_closed, 0);
    /* The listener's handshake ended with its secrets wiped. */
    ASSERT_EQ(cmdipc__secure_wiped_total(), wiped + 1);
    ASSERT(cmdipc__hs_wiped(&r.hs));
    raw_close(&r);
    cmdipc__buf_free(&b);
    tu_events_clear(&seen);
    fx_done(&f);
}

/* ---------------------------------------------------------------------------
 * 22. Heartbeat, scaled down: a peer that stops answering is closed; one
 * that answers stays. */

TEST(secure22_silent_peer_is_closed) {
    char path[HARNESS_PATH_MAX];
    fx_t f;
    raw_t r;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    /* 20 s and 60 s scaled down to 100 ms and 300 ms. */
    f.lso.ping_idle_ms = 100;
    f.lso.silence_ms = 300;
    fx_listen_unix(&f, path);
    ASSERT_OK(raw_handshake(&r, path, f.ckey, &f.spk));
    uint64_t t0 = uv_hrtime();
    /* It pings us after the idle time; we do not answer. */
    const uint8_t *m;
    size_t n;
    int ctl, fin;
    do /* (the registry's own list request comes first) */
        ASSERT_EQ(raw_frame(&r, &m, &n, &ctl, &fin), 1);
    while (ctl == CMDIPC__CTL_NONE);
    ASSERT_EQ(ctl, CMDIPC__CTL_PING);
    tu_run_until(&loop, &f.srv_closed, 10000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    ASSERT_STATUS(CMDIPC_ETIMEDOUT, f.srv_last_closed);
    ASSERT_GE(ms, 250);
    raw_close(&r);
    fx_done(&f);
}

TEST(secure22_answering_peer_stays_up) {
    fx_t f;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    f.lso.ping_idle_ms = f.cso.ping_idle_ms = 20;
    f.lso.silence_ms = f.cso.silence_ms = 200;
    fx_listen(&f, "tcp+sodium://127.0.0.1:0");
    fx_connect(&f);
    tu_run_until(&loop, &f.up, 10000);
    rp_run_for(&loop, -1, 1000); /* five times the silence limit */
    ASSERT_EQ(f.closed, 0);
    ASSERT_EQ(f.down, 0);
    ASSERT_EQ(f.srv_closed, 0);
    fx_done(&f);
}

/* A handshake the peer never finishes is cut off by the timeout; closing the
 * registry during one is clean. */
TEST(secure11_handshake_timeout_and_close_during_handshake) {
    char path[HARNESS_PATH_MAX];
    fx_t f;
    rp_t p, q;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    f.lso.handshake_timeout_ms = 200;
    fx_listen_unix(&f, path);
    ASSERT_OK(rp_connect(&p, path));
    uint64_t t0 = uv_hrtime();
    rp_wait_closed(&loop, &p, 10000);
    ASSERT_GE((uv_hrtime() - t0) / 1000000, 150);
    rp_close(&p);
    /* A plain NDJSON peer is refused at its first byte. */
    ASSERT_OK(rp_connect(&q, path));
    ASSERT_OK(
        rp_write_str(&loop, &q, "{\"id\":\"1\",\"type\":\"list.commands.request\"}\n"));
    rp_wait_closed(&loop, &q, 10000);
    rp_close(&q);
    ASSERT_OK(rp_connect(&p, path));
    rp_run_for(&loop, -1, 20);
    fx_done(&f); /* closes the registry with that handshake in progress */
    rp_close(&p);
}

/* ---------------------------------------------------------------------------
 * Two processes: mutual authentication, commands both ways, events. The
 * child loads its key from a 0600 file and pins the parent's key; the parent
 * admits only the child's key. */

static cmdipc_pubkey_t child_pin;
static cmdipc_registry_t *child_reg;
static int child_peer_ok, child_got;

static void child_sum_cb(cmdipc_req_t *req, int status, json_t *result, const char *msg,
                         void *data) {
    (void)req, (void)msg, (void)data;
    json_t *p =
        json_pack("{s:i,s:b}", "sum", status == 0 ? (int)json_integer_value(result) : -1,
                  "peer_ok", child_peer_ok);
    ASSERT_OK(cmdipc_registry_emit(child_reg, "child.sum", p));
    json_decref(p);
}

static void child_ch_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                        cmdipc_channel_event_t ev, int status, void *data) {
    (void)status, (void)data;
    if (ev == CMDIPC_CHANNEL_UP) {
        cmdipc_pubkey_t k;
        child_peer_ok =
            cmdipc_channel_peer_key(ch, &k) == 0 && cmdipc_pubkey_equal(&k, &child_pin);
        json_t *req = json_pack("{s:i,s:i}", "a", 2, "b", 3);
        ASSERT_OK(cmdipc_registry_execute(r, "parent.add", req, NULL, child_sum_cb, NULL,
                                          NULL));
        json_decref(req);
    } else if (ev == CMDIPC_CHANNEL_CLOSED) {
        cmdipc_registry_close(r, NULL, NULL); /* the parent let go: done */
    }
}

static void child_mul_fn(cmdipc_call_t *call, json_t *req, void *data) {
    (void)data;
    json_t *v = json_integer(json_integer_value(json_object_get(req, "a")) *
                             json_integer_value(json_object_get(req, "b")));
    ASSERT_OK(cmdipc_call_reply(call, v));
    json_decref(v);
}

static void child_to_child(cmdipc_registry_t *r, const char *id, json_t *payload,
                           void *data) {
    (void)id, (void)data;
    child_got++;
    ASSERT_OK(cmdipc_registry_emit(r, "child.got", payload));
}

HELPER(secure_child) {
    ASSERT_EQ(argc, 4); /* url, key file, parent's public key */
    uv_loop_t l;
    cmdipc_registry_opts_t o;
    cmdipc_connect_opts_t co;
    cmdipc_secure_opts_t so;
    cmdipc_keypair_t *key;
    signal(SIGPIPE, SIG_IGN);
    ASSERT_OK(cmdipc_keypair_load(argv[2], &key));
    ASSERT_OK(cmdipc_pubkey_parse(argv[3], &child_pin));
    ASSERT_OK(uv_loop_init(&l));
    cmdipc_registry_opts_init(&o);
    o.id = "child";
    o.router_channel = "parent";
    ASSERT_OK(cmdipc_registry_new(&l, &o, &child_reg));
    cmdipc_registry_set_channel_cb(child_reg, child_ch_cb, NULL);
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "child.mul", "a * b", NULL};
    ASSERT_OK(cmdipc_registry_register(child_reg, &def, child_mul_fn, NULL, NULL, NULL));
    ASSERT_OK(cmdipc_registry_on(child_reg, "to.child", child_to_child, NULL, NULL));
    cmdipc_secure_opts_init(&so);
    so.key = key;
    so.peer_key = &child_pin;
    cmdipc_connect_opts_init(&co);
    co.reconnect = 0;
    co.secure = &so;
    ASSERT_OK(cmdipc_connect(child_reg, argv[1], "parent", &co, NULL));
    cmdipc_keypair_free(key); /* the dialer keeps its own copy */
    ASSERT_EQ(uv_run(&l, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&l), 0);
    return child_peer_ok && child_got == 1 ? 0 : 3;
}

typedef struct {
    uv_process_t proc;
    int exited;
    int64_t status;
} proc_t;

static void proc_exit_cb(uv_process_t *p, int64_t status, int sig) {
    proc_t *c = p->data;
    (void)sig;
    c->exited = 1;
    c->status = sig ? 128 + sig : status;
    uv_close((uv_handle_t *)p, NULL);
}

static int name_child(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *name,
                      size_t size, void *data) {
    (void)l, (void)peer, (void)data;
    snprintf(name, size, "child");
    return 0;
}

TEST(secure_two_processes) {
    fx_t f;
    proc_t c;
    char keyfile[HARNESS_PATH_MAX], pin[CMDIPC_KEY_B64];
    tu_events_t sum, got;
    tu_result_t res;
    memset(&res, 0, sizeof(res));
    memset(&c, 0, sizeof(c));
    memset(&sum, 0, sizeof(sum));
    memset(&got, 0, sizeof(got));
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    f.lo.accept_cb = name_child;
    harness_scratch_path(keyfile, sizeof(keyfile), "childkey");
    ASSERT_OK(cmdipc_keypair_save(f.ckey, keyfile)); /* the child's key (admitted) */
    cmdipc_pubkey_to_base64(&f.spk, pin);
    tu_register(&loop, f.srv, "parent.add", tu_add_fn, NULL);
    ASSERT_OK(cmdipc_registry_on(f.srv, "child.sum", tu_event_cb, &sum, NULL));
    ASSERT_OK(cmdipc_registry_on(f.srv, "child.got", tu_event_cb, &got, NULL));
    fx_listen(&f, "tcp+sodium://127.0.0.1:0");
    char *args[] = {(char *)harness_exe_path(),
                    "--helper",
                    "secure_child",
                    f.url,
                    keyfile,
                    pin,
                    NULL};
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    memset(&po, 0, sizeof(po));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    po.file = args[0];
    po.args = args;
    po.exit_cb = proc_exit_cb;
    po.stdio = stdio;
    po.stdio_count = 3;
    c.proc.data = &c;
    ASSERT_OK(uv_spawn(&loop, &c.proc, &po));
    /* Child -> parent: parent.add, answered, reported by an event. */
    RP_PUMP_UNTIL(&loop, -1, sum.count == 1 && tu_has_command(f.srv, "child.mul"), 20000);
    ASSERT_EQ(json_integer_value(json_object_get(sum.last, "sum")), 5);
    ASSERT(json_is_true(json_object_get(sum.last, "peer_ok"))); /* it authenticated us */
    cmdipc_channel_t *ch = cmdipc_registry_channel(f.srv, "child");
    ASSERT_NOT_NULL(ch);
    cmdipc_pubkey_t k;
    ASSERT_OK(cmdipc_channel_peer_key(ch, &k));
    ASSERT(cmdipc_pubkey_equal(&k, &f.cpk)); /* we authenticated it */
    /* Parent -> child. */
    json_t *req = json_pack("{s:i,s:i}", "a", 6, "b", 7);
    ASSERT_OK(tu_exec(f.srv, "child.mul", req, &res));
    json_decref(req);
    RP_PUMP_UNTIL(&loop, -1, res.done, 20000);
    ASSERT_OK(res.status);
    ASSERT_EQ(json_integer_value(res.result), 42);
    tu_result_clear(&res);
    /* An event there and one back. */
    json_t *p = json_pack("{s:i}", "n", 9);
    ASSERT_OK(cmdipc_registry_emit(f.srv, "to.child", p));
    json_decref(p);
    RP_PUMP_UNTIL(&loop, -1, got.count == 1, 20000);
    ASSERT_EQ(json_integer_value(json_object_get(got.last, "n")), 9);
    /* Let go: the child exits 0 once its link closed. */
    ASSERT_OK(cmdipc_channel_close(ch));
    RP_PUMP_UNTIL(&loop, -1, c.exited, 20000);
    ASSERT_EQ(c.status, 0);
    unlink(keyfile);
    tu_events_clear(&sum);
    tu_events_clear(&got);
    fx_done(&f);
}

/* Backpressure through the filter: the listener's in-flight cap pauses the
 * secure connection (frames wait undecrypted) and resumes it; every call is
 * answered once. */
TEST(secure_paused_connection_resumes) {
    fx_t f;
    cmdipc_registry_opts_t ro;
    cmdipc_registry_opts_init(&ro);
    ro.id = "srv";
    ro.max_inbound_in_flight = 8;
    fx_srv_opts = &ro;
    ASSERT_OK(uv_loop_init(&loop));
    fx_init(&f);
    fx_srv_opts = NULL;
    fx_listen(&f, "tcp+sodium://127.0.0.1:0");
    tu_register(&loop, f.srv, "never", tu_never_fn, NULL);
    fx_connect(&f);
    tu_run_until(&loop, &f.up, 10000);
    enum { N = 200 };
    static tu_result_t res[N];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < N; i++)
        ASSERT_OK(tu_exec(f.cli, "never", NULL, &res[i]));
    RP_PUMP_UNTIL(&loop, -1, tu_never_count() == 8, 10000);
    rp_run_for(&loop, -1, 50);
    ASSERT_EQ(tu_never_count(), 8); /* paused at the cap */
    int done = 0;
    uint64_t t0 = uv_hrtime();
    while (done < N) {
        tu_answer_never();
        rp_pump(&loop, -1, 5);
        done = 0;
        for (int i = 0; i < N; i++)
            done += res[i].done;
        ASSERT_LT((uv_hrtime() - t0) / 1000000, 20000);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_STATUS(CMDIPC_EINTERNAL, res[i].status); /* tu_answer_never()'s answer */
        ASSERT_STR_EQ(res[i].message, "late");
        ASSERT_EQ(res[i].calls, 1);
    }
    ASSERT_EQ(f.srv_closed, 0);
    fx_done(&f);
}

/* The defaults of SECURITY.md (d) for the secure transport. */
TEST(secure_d_default_options) {
    cmdipc_secure_opts_t so;
    cmdipc_secure_opts_init(&so);
    ASSERT_EQ(so.version, CMDIPC_SECURE_OPTS_VERSION);
    ASSERT_UEQ(so.handshake_timeout_ms, 10000);
    ASSERT_EQ(so.max_handshakes, 64);
    ASSERT_UEQ(so.ping_idle_ms, 20000);
    ASSERT_UEQ(so.silence_ms, 60000);
    ASSERT_EQ(so.rekey_frames, 1000);
    ASSERT_UEQ(so.rekey_ms, 600000);
    ASSERT_EQ(so.allow_any, 0); /* fail closed */
    ASSERT_NULL(so.allow);
    ASSERT(so.authorize == NULL);
}

static int allow_calls;
static cmdipc_pubkey_t allow_seen;
static int allow_cb(const cmdipc_pubkey_t *key, const cmdipc_peer_info_t *peer,
                    void *data) {
    (void)peer;
    allow_calls++;
    allow_seen = *key;
    return data == NULL ? 0 : -1;
}

/* A key outside the list admitted by the callback, and by allow_any. */
TEST(secure9_callback_and_allow_any_admit) {
    for (int mode = 0; mode < 2; mode++) {
        fx_t f;
        ASSERT_OK(uv_loop_init(&loop));
        fx_init(&f);
        f.lso.n_allow = 0;
        f.lso.allow = NULL;
        if (mode == 0)
            f.lso.authorize = allow_cb;
        else
            f.lso.allow_any = 1;
        allow_calls = 0;
        fx_listen(&f, "tcp+sodium://127.0.0.1:0");
        fx_connect(&f);
        tu_run_until(&loop, &f.up, 10000);
        ASSERT_EQ(f.srv_attached, 1);
        ASSERT_EQ(allow_calls, mode == 0 ? 1 : 0);
        if (mode == 0)
            ASSERT(cmdipc_pubkey_equal(&allow_seen,
                                       &f.cpk)); /* asked about the proven key */
        fx_done(&f);
    }
}

TEST_LIST_BEGIN
TEST_ENTRY(secure_tcp_round_trip)
TEST_ENTRY(secure_unix_round_trip)
TEST_ENTRY(secure_plain_channel_has_no_peer_key)
TEST_ENTRY(secure8_wrong_pinned_key)
TEST_ENTRY(secure8_man_in_the_middle)
TEST_ENTRY(secure9_key_not_allowed_never_reconnects)
TEST_ENTRY(secure9_empty_allow_list_rejects_everyone)
TEST_ENTRY(secure9_callback_and_allow_any_admit)
TEST_ENTRY(secure_d_default_options)
TEST_ENTRY_TIMEOUT(secure11_stalled_handshakes_and_a_good_client, 60000)
TEST_ENTRY(secure11_handshake_timeout_and_close_during_handshake)
TEST_ENTRY(secure11_dialer_handshake_timeout_and_close)
TEST_ENTRY(secure12_transport_tampering)
TEST_ENTRY(secure12_final_then_eof_is_a_clean_close)
TEST_ENTRY(secure13_replayed_session_executes_nothing)
TEST_ENTRY(secure14_ten_thousand_frames_rekeyed)
TEST_ENTRY(secure22_silent_peer_is_closed)
TEST_ENTRY(secure22_answering_peer_stays_up)
TEST_ENTRY(secure_paused_connection_resumes)
TEST_ENTRY_TIMEOUT(secure_two_processes, 60000)
TEST_HELPER(secure_child)
TEST_LIST_END
