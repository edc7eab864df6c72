/* Stream transports against hostile and broken input: SECURITY.md section c,
 * tests 2-6 (NDJSON framing, the line splitter, JSON limits), the defaults of
 * section d, write batching and half-closed peers. Overload, connections,
 * reconnect and Unix socket rules are in test-connections.c. Each test name
 * starts with its SECURITY number. The peer is usually a plain POSIX socket
 * in this process (rawpeer.h), driven between turns of the registry's loop.
 * Sizes are scaled down where SECURITY.md allows; each place says so. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "rawpeer.h"
#include "schema_check.h"

static uv_loop_t loop;

typedef rp_hub_t hub_t;

static void hub_new(hub_t *h, const char *tag, const cmdipc_listen_opts_t *lo) {
    rp_hub_new(&loop, h, tag, lo);
}
static void peer_open(hub_t *h, rp_t *p) { rp_peer_open(&loop, h, p); }
static json_t *peer_call(rp_t *p, const char *id, const char *cmd, const char *request) {
    return rp_peer_call(&loop, p, id, cmd, request);
}
static void peer_ping(rp_t *p, int n) { rp_peer_ping(&loop, p, n); }

/* Builds "{"type":"event","id":id,"eventId":"pad","payload":"xxx..."}\n" of
 * exactly total bytes (newline included). */
static char *padded_event(const char *id, size_t total) {
    char head[160];
    int h = snprintf(
        head, sizeof(head),
        "{\"type\":\"event\",\"id\":\"%s\",\"eventId\":\"pad\",\"payload\":\"", id);
    ASSERT_GT(total, (size_t)h + 3);
    char *s = malloc(total + 1);
    ASSERT_NOT_NULL(s);
    memcpy(s, head, (size_t)h);
    memset(s + h, 'x', total - (size_t)h - 3);
    memcpy(s + total - 3, "\"}\n", 3);
    s[total] = '\0';
    return s;
}

/* ---------------------------------------------------------------------------
 * SECURITY.md section d: the defaults of the stream transports. */

TEST(d_default_limits) {
    cmdipc_listen_opts_t lo;
    cmdipc_connect_opts_t co;
    cmdipc_spawn_opts_t so;
    cmdipc_listen_opts_init(&lo);
    cmdipc_connect_opts_init(&co);
    cmdipc_spawn_opts_init(&so);
    const cmdipc_limits_t *lims[] = {&lo.limits, &co.limits, &so.limits};
    for (int i = 0; i < 3; i++) {
        ASSERT_UEQ(lims[i]->max_line, 1024 * 1024);
        ASSERT_EQ(lims[i]->max_depth, 64);
        ASSERT_UEQ(lims[i]->max_containers, 65536);
    }
    ASSERT_EQ(lo.max_connections, 1024);
    ASSERT_EQ(lo.mode, 0600);
    ASSERT_EQ(lo.same_uid_only, 0);
    ASSERT_UEQ(lo.max_send_queue, 8 * 1024 * 1024);
    ASSERT_UEQ(co.max_send_queue, 8 * 1024 * 1024);
    ASSERT_UEQ(so.max_send_queue, 8 * 1024 * 1024);
    ASSERT_UEQ(lo.soft_send_queue, 2 * 1024 * 1024);
    ASSERT_UEQ(co.soft_send_queue, 2 * 1024 * 1024);
    ASSERT_UEQ(lo.write_stall_ms, 10000);
    ASSERT_UEQ(co.write_stall_ms, 10000);
    ASSERT_EQ(co.reconnect, 1);
    ASSERT_UEQ(co.reconnect_min_ms, 100);
    ASSERT_UEQ(co.reconnect_max_ms, 30000);
    ASSERT_EQ(co.jitter_pct, 20);
    cmdipc_registry_opts_t ro;
    cmdipc_registry_opts_init(&ro);
    ASSERT_EQ(ro.max_inbound_in_flight, 128);
    ASSERT_EQ(ro.max_outbound_pending, 1024);
    ASSERT_UEQ(ro.request_ttl_ms, 30000);
}

/* ---------------------------------------------------------------------------
 * 2. NDJSON line limit. */

static cmdipc_registry_t *rcap_reg;
static const char *rcap_channel;
static size_t rcap_peak;

static void sample_rcap(void) {
    cmdipc_channel_t *ch =
        rcap_reg ? cmdipc_registry_channel(rcap_reg, rcap_channel) : NULL;
    if (ch != NULL && rp_conn(ch) != NULL && rp_conn(ch)->rcap > rcap_peak)
        rcap_peak = rp_conn(ch)->rcap;
}

/* The connection is cut from inside the transport's read callback; its
 * buffer is still there when the reason is logged. */
static void rcap_log_hook(cmdipc_registry_t *r, const char *message) {
    (void)r;
    if (strstr(message, "closing the connection") != NULL)
        sample_rcap();
}

static tu_events_t pad_events;

TEST(c2_endless_line_closes_only_that_connection) {
    /* SECURITY c.2 with the default 1 MiB limit; the 64 MiB line is scaled
     * down to 16 MiB (the cut happens after ~1 MiB either way). */
    hub_t h;
    rp_t good, bad;
    const size_t max_line = 1024 * 1024;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c2", NULL);
    ASSERT_OK(cmdipc_registry_on(h.r, "pad", tu_event_cb, &pad_events, NULL));
    peer_open(&h, &good);
    peer_open(&h, &bad);
    ASSERT_UEQ(rp_stats(h.r).channels, 2);
    rcap_reg = h.r;
    rcap_channel = "conn-2";
    rcap_peak = 0;
    rp_log_hook = rcap_log_hook;

    size_t flood = 16u * 1024 * 1024;
    char *big = malloc(flood);
    ASSERT_NOT_NULL(big);
    const char *head =
        "{\"type\":\"event\",\"id\":\"big\",\"eventId\":\"pad\",\"payload\":\"";
    memset(big, 'x', flood);
    memcpy(big, head, strlen(head));
    int rc = rp_write_all(&loop, &bad, big, flood, 20000);
    free(big);
    ASSERT(rc == -EPIPE || rc == -ECONNRESET); /* cut before 16 MiB went through */
    rp_wait_closed(&loop, &bad, 10000);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 1, 10000);
    rp_log_hook = NULL;

    ASSERT_STR_EQ(rp_chev.last_closed_id, "conn-2");
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, rp_chev.last_closed_status);
    ASSERT_GE(rp_log_count("conn-2: closing the connection: line longer than the limit"),
              1);
    /* Peak input buffer: at most the limit plus one 64 KiB read chunk. */
    ASSERT_GT(rcap_peak, 0);
    ASSERT_LE(rcap_peak, max_line + 64 * 1024);
    cmdipc_stats_t s = rp_stats(h.r);
    ASSERT_UEQ(s.disconnects, 1);
    ASSERT_UEQ(s.channels, 1);
    ASSERT_UEQ(s.events_received, 0);
    ASSERT_EQ(pad_events.count, 0);

    /* The other connection and the registry are unaffected. */
    peer_ping(&good, 1);

    /* Exactly 1 MiB including the newline is accepted... */
    rp_t edge;
    peer_open(&h, &edge);
    char *line = padded_event("edge-1", max_line);
    ASSERT_OK(rp_write_all(&loop, &edge, line, max_line, 10000));
    free(line);
    RP_PUMP_UNTIL(&loop, edge.fd, pad_events.count == 1, 10000);
    ASSERT_STR_EQ(pad_events.last_id, "pad");
    ASSERT_EQ(json_string_length(pad_events.last),
              max_line - 3 -
                  strlen("{\"type\":\"event\",\"id\":\"edge-1\",\"eventId\":\"pad\","
                         "\"payload\":\""));
    peer_ping(&edge, 2);
    /* ...one byte more is refused, and closes that connection. */
    line = padded_event("edge-2", max_line + 1);
    rc = rp_write_all(&loop, &edge, line, max_line + 1, 10000);
    free(line);
    ASSERT(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    rp_wait_closed(&loop, &edge, 10000);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 2, 10000);
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, rp_chev.last_closed_status);
    ASSERT_EQ(pad_events.count, 1);
    peer_ping(&good, 3);

    rp_close(&good);
    rp_close(&bad);
    rp_close(&edge);
    tu_events_clear(&pad_events);
    tu_close_all(&loop, h.r, NULL);
}

TEST(c2_configured_line_limit_is_exact) {
    /* The same boundary with limits.max_line set to 64 KiB (scaled). */
    hub_t h;
    rp_t p;
    cmdipc_listen_opts_t lo;
    const size_t max_line = 64 * 1024;
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_listen_opts_init(&lo);
    lo.limits.max_line = max_line;
    hub_new(&h, "c2b", &lo);
    ASSERT_OK(cmdipc_registry_on(h.r, "pad", tu_event_cb, &pad_events, NULL));
    peer_open(&h, &p);
    /* Two lines in one write: exactly the limit, then one byte over. */
    char *a = padded_event("ok-1", max_line);
    char *b = padded_event("no-1", max_line + 1);
    char *both = malloc(2 * max_line + 1);
    ASSERT_NOT_NULL(both);
    memcpy(both, a, max_line);
    memcpy(both + max_line, b, max_line + 1);
    rcap_reg = h.r;
    rcap_channel = "conn-1";
    rcap_peak = 0;
    rp_log_hook = rcap_log_hook;
    int rc = rp_write_all(&loop, &p, both, 2 * max_line + 1, 10000);
    ASSERT(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    free(a);
    free(b);
    free(both);
    rp_wait_closed(&loop, &p, 10000);
    RP_PUMP_UNTIL(&loop, -1, rp_chev.closed == 1, 10000);
    rp_log_hook = NULL;
    ASSERT_STATUS(CMDIPC_ELINETOOLONG, rp_chev.last_closed_status);
    ASSERT_EQ(pad_events.count, 1); /* the first line only */
    ASSERT_LE(rcap_peak, max_line + 64 * 1024);
    rp_close(&p);
    tu_events_clear(&pad_events);
    tu_close_all(&loop, h.r, NULL);
}

/* ---------------------------------------------------------------------------
 * 3. Split invariance. */

/* Line i of the corpus: the 7 message types, valid and invalid, in 21 kinds
 * (i % 21). Kinds 4 and 17 refer to the lines 1 and 12 before them. */
static void corpus_line(cmdipc__buf_t *b, int i) {
    char s[1024];
    int depth;
    switch (i % 21) {
        case 0: /* valid execute: echoed */
            snprintf(s, sizeof(s),
                     "{\"type\":\"execute.command.request\",\"id\":\"x%d\",\"commandId\":"
                     "\"echo\","
                     "\"request\":{\"i\":%d,\"s\":\"h\\u00e9llo \\\"q\\\" \xc3\xa9\"}}\n",
                     i, i);
            break;
        case 1: /* unknown command: not_found */
            snprintf(s, sizeof(s),
                     "{\"type\":\"execute.command.request\",\"id\":\"u%d\",\"commandId\":"
                     "\"nope.%d\"}\n",
                     i, i);
            break;
        case 2: /* no commandId: invalid_request */
            snprintf(
                s, sizeof(s),
                "{\"type\":\"execute.command.request\",\"id\":\"m%d\",\"request\":1}\n",
                i);
            break;
        case 3:
            snprintf(s, sizeof(s),
                     "{\"type\":\"event\",\"id\":\"ev%d\",\"eventId\":\"news\","
                     "\"payload\":[%d,true,null,{\"k\":\"v\"}]}\n",
                     i, i);
            break;
        case 4: /* the previous event again: a duplicate */
            snprintf(s, sizeof(s),
                     "{\"type\":\"event\",\"id\":\"ev%d\",\"eventId\":\"news\","
                     "\"payload\":0}\n",
                     i - 1);
            break;
        case 5:
            snprintf(s, sizeof(s),
                     "{\"type\":\"register.command.request\",\"id\":\"rg%d\",\"command\":"
                     "{\"id\":\"ext.%d\",\"description\":\"d %d\"}}\n",
                     i, i, i);
            break;
        case 6: /* duplicate_command */
            snprintf(s, sizeof(s),
                     "{\"type\":\"register.command.request\",\"id\":\"rd%d\",\"command\":"
                     "{\"id\":\"echo\"}}\n",
                     i);
            break;
        case 7: /* nobody waits for it */
            snprintf(s, sizeof(s),
                     "{\"type\":\"register.command.response\",\"id\":\"rr%d\",\"thid\":"
                     "\"nope%d\",\"response\":{\"ok\":true}}\n",
                     i, i);
            break;
        case 8:
            snprintf(s, sizeof(s),
                     "{\"type\":\"list.commands.request\",\"id\":\"lr%d\"}\n", i);
            break;
        case 9:
            snprintf(s, sizeof(s),
                     "{\"type\":\"list.commands.response\",\"id\":\"ls%d\","
                     "\"thid\":\"zz%d\",\"commands\":[{\"id\":\"peer.%d\"}]}\n",
                     i, i, i);
            break;
        case 10:
            snprintf(s, sizeof(s),
                     "{\"type\":\"execute.command.response\",\"id\":\"er%d\",\"thid\":"
                     "\"nope\",\"response\":{\"ok\":true,\"result\":1}}\n",
                     i);
            break;
        case 11:
            snprintf(s, sizeof(s), "not json at all %d\n", i);
            break;
        case 12:
            snprintf(s, sizeof(s), "{\"type\":\"progress\",\"id\":\"p%d\"}\n", i);
            break;
        case 13: /* bad UTF-8 */
            snprintf(s, sizeof(s),
                     "{\"type\":\"event\",\"id\":\"bu%d\",\"eventId\":\"news\","
                     "\"payload\":\"\xff\xfe\"}\n",
                     i);
            break;
        case 14: /* duplicate key */
            snprintf(s, sizeof(s),
                     "{\"type\":\"event\",\"id\":\"dk%d\",\"eventId\":\"news\","
                     "\"eventId\":\"x\"}\n",
                     i);
            break;
        case 15: /* CRLF */
            snprintf(s, sizeof(s),
                     "{\"type\":\"execute.command.request\",\"id\":\"c%d\",\"commandId\":"
                     "\"echo\",\"request\":[%d]}\r\n",
                     i, i);
            break;
        case 16: /* blank lines: not messages */
            snprintf(s, sizeof(s), "%s", (i / 21) % 2 ? "\n" : "\r\n");
            break;
        case 17: /* a command this very channel registered: not_found (loop guard) */
            snprintf(s, sizeof(s),
                     "{\"type\":\"execute.command.request\",\"id\":\"lg%d\","
                     "\"commandId\":\"ext.%d\"}\n",
                     i, i - 12);
            break;
        case 18:
            snprintf(s, sizeof(s),
                     "{\"type\":\"event\",\"id\":\"pv%d\",\"eventId\":\"_private\"}\n",
                     i);
            break;
        case 19:
            snprintf(s, sizeof(s),
                     "{\"type\":\"execute.command.request\",\"id\":\"f%d\",\"commandId\":"
                     "\"fail\"}\n",
                     i);
            break;
        default: /* 20: request nested 64 deep, the line 65: invalid_request */
            depth = snprintf(s, sizeof(s),
                             "{\"type\":\"execute.command.request\",\"id\":\"dp%d\","
                             "\"commandId\":\"echo\",\"request\":",
                             i);
            for (int k = 0; k < 64; k++)
                s[depth++] = '[';
            for (int k = 0; k < 64; k++)
                s[depth++] = ']';
            memcpy(s + depth, "}\n", 3);
            break;
    }
    ASSERT_OK(cmdipc__buf_puts(b, s));
}

#define CORPUS_LINES (21 * 51) /* 1,071 lines, 1,020 of them messages */
#define CORPUS_MSGS  (CORPUS_LINES - 51)

typedef struct {
    cmdipc_stats_t st;
    json_t *answers; /* what the hub sent, ids removed */
    json_t *events;  /* [eventId, payload] delivered to the hub's listener */
    uint64_t moved;
} run_out_t;

static run_out_t *cur_run;

static void record_event(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                         void *data) {
    (void)r, (void)data;
    json_array_append_new(cur_run->events, json_pack("[s,O?]", event_id, payload));
}

/* Takes every complete line from p, checks it and keeps it without its id. */
static void take_answers(rp_t *p, json_t *into) {
    char *line;
    while ((line = rp_line(p, NULL)) != NULL) {
        json_t *v = rp_check_line(line);
        ASSERT(cmdipc__is_uuid(rp_str(v, "id")));
        json_object_del(v, "id");
        json_array_append_new(into, v);
        free(line);
    }
}

static void corpus_run(const char *data, size_t len, int one_byte, run_out_t *out) {
    hub_t h;
    rp_t p;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, one_byte ? "c3a" : "c3b", NULL);
    out->answers = json_array();
    out->events = json_array();
    cur_run = out;
    ASSERT_OK(cmdipc_registry_on(h.r, NULL, record_event, NULL, NULL));
    peer_open(&h, &p);
    uint64_t moved0 = cmdipc__stream_bytes_moved();
    if (one_byte) {
        /* One byte per read: each byte is written alone and read by the
         * hub before the next one is written. */
        for (size_t i = 0; i < len; i++) {
            ASSERT_EQ(send(p.fd, data + i, 1, MSG_NOSIGNAL), 1);
            if (i == 0)
                ASSERT_GT(rp_unread(&p), 0); /* SIOCOUTQ sees what the hub has not read */
            rp_wait_consumed(&loop, &p, 10000);
            if (i % 512 == 0) {
                rp_read(&p);
                take_answers(&p, out->answers);
            }
        }
    } else {
        ASSERT_OK(rp_write_all(&loop, &p, data, len, 10000));
    }
    out->moved = cmdipc__stream_bytes_moved() - moved0;
    /* Answers come in order: the one to this marker comes last. */
    const char *end =
        "{\"type\":\"execute.command.request\",\"id\":\"END\",\"commandId\":\"echo\"}\n";
    ASSERT_OK(rp_write_str(&loop, &p, end));
    for (int got_end = 0; !got_end;) {
        char *l = rp_wait_line(&loop, &p, 10000);
        json_t *v = rp_check_line(l);
        free(l);
        ASSERT(cmdipc__is_uuid(rp_str(v, "id")));
        json_object_del(v, "id");
        got_end = rp_str(v, "thid") != NULL && strcmp(rp_str(v, "thid"), "END") == 0;
        json_array_append_new(out->answers, v);
    }
    cmdipc_registry_stats(h.r, &out->st);
    ASSERT_UEQ(out->st.msgs_in, CORPUS_MSGS + 1);
    ASSERT_UEQ(out->st.channels, 1); /* never cut off */
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

static void run_out_clear(run_out_t *o) {
    json_decref(o->answers);
    json_decref(o->events);
    memset(o, 0, sizeof(*o));
}

TEST(c3_split_invariance_one_byte_per_read) {
    /* SECURITY c.3: 1,020 messages of all 7 types, valid and invalid, fed
     * one byte per read and all at once, dispatch the same. */
    cmdipc__buf_t corpus;
    run_out_t a = {0}, b = {0};
    cmdipc__buf_init(&corpus);
    for (int i = 0; i < CORPUS_LINES; i++)
        corpus_line(&corpus, i);
    corpus_run(corpus.data, corpus.len, 1, &a);
    corpus_run(corpus.data, corpus.len, 0, &b);

    /* The same answers, events and counters. */
    ASSERT_JSON_EQ(a.answers, b.answers);
    ASSERT_JSON_EQ(a.events, b.events);
    ASSERT_UEQ(a.st.msgs_in, b.st.msgs_in);
    ASSERT_UEQ(a.st.msgs_out, b.st.msgs_out);
    for (int i = 0; i < CMDIPC_DROP__MAX; i++)
        ASSERT_UEQ(a.st.dropped[i], b.st.dropped[i]);
    ASSERT_UEQ(a.st.invalid_request_replies, b.st.invalid_request_replies);
    ASSERT_UEQ(a.st.handled, b.st.handled);
    ASSERT_UEQ(a.st.events_received, b.st.events_received);
    ASSERT_UEQ(a.st.commands_remote, b.st.commands_remote);
    ASSERT_MEM_EQ(&a.st, &b.st, sizeof(a.st));

    /* And what that dispatch is (51 lines of each kind). */
    ASSERT_UEQ(a.st.dropped[CMDIPC_DROP_INVALID], 5 * 51); /* 2, 11, 13, 14, 20 */
    ASSERT_UEQ(a.st.dropped[CMDIPC_DROP_UNKNOWN_TYPE], 51);
    ASSERT_UEQ(a.st.dropped[CMDIPC_DROP_DUPLICATE_EVENT], 51);
    ASSERT_UEQ(a.st.dropped[CMDIPC_DROP_UNMATCHED], 2 * 51); /* 7, 10 */
    ASSERT_UEQ(a.st.invalid_request_replies, 2 * 51);        /* 2, 20 */
    ASSERT_UEQ(a.st.events_received, 2 * 51);                /* 3, 18 */
    ASSERT_EQ(json_array_size(a.events), 2 * 51);
    /* Answers: 0,1,2,5,6,8,15,17,19,20 each 51 times, plus END. */
    ASSERT_EQ(json_array_size(a.answers), 10 * 51 + 1);
    /* No quadratic copying in either run. */
    ASSERT_LT(a.moved, 2 * corpus.len);
    ASSERT_LT(b.moved, 2 * corpus.len);
    run_out_clear(&a);
    run_out_clear(&b);
    cmdipc__buf_free(&corpus);
}

static int split_events;
static void split_event_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                           void *data) {
    (void)r, (void)data;
    ASSERT_STR_EQ(event_id, "split");
    ASSERT_EQ(json_integer_value(json_object_get(payload, "k")), split_events);
    split_events++;
}

TEST(c3_every_split_point_of_a_pair) {
    /* SECURITY c.3: an event and an execute request (together < 512 B),
     * split at every byte: each half read on its own. */
    hub_t h;
    rp_t p;
    char pair[600];
    json_t *reference = NULL;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c3s", NULL);
    ASSERT_OK(cmdipc_registry_on(h.r, "split", split_event_cb, NULL, NULL));
    peer_open(&h, &p);
    int len0 = -1;
    for (int k = 0; k < 600; k++) {
        int len = snprintf(
            pair, sizeof(pair),
            "{\"type\":\"event\",\"id\":\"sp%04d\",\"eventId\":\"split\",\"payload\":{"
            "\"k\":%4d,"
            "\"text\":\"\\u00e9t\\u00e9 \\\\ \\\" \xe2\x82\xac "
            "0123456789abcdefghijklmnopqrstuvwxyz\"}}\n"
            "{\"type\":\"execute.command.request\",\"id\":\"se%04d\",\"commandId\":"
            "\"echo\",\"request\":"
            "{\"nested\":[1,2,{\"deep\":[true,false,null]}],\"s\":\"\\n\\t\\u2028\","
            "\"k\":%4d,"
            "\"pad\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\"}}"
            "\n",
            k, k, k, k);
        ASSERT_LT(len, 512);
        if (len0 < 0)
            len0 = len;
        ASSERT_EQ(len, len0);
        if (k >= len)
            break;
        /* k == 0: in one piece (the reference); else split after k bytes. */
        if (k > 0) {
            ASSERT_EQ(send(p.fd, pair, (size_t)k, MSG_NOSIGNAL), k);
            rp_wait_consumed(&loop, &p, 10000);
        }
        ASSERT_EQ(send(p.fd, pair + k, (size_t)(len - k), MSG_NOSIGNAL), len - k);
        rp_wait_consumed(&loop, &p, 10000);
        char *line = rp_wait_line(&loop, &p, 10000);
        json_t *v = rp_check_line(line);
        free(line);
        char thid[16];
        snprintf(thid, sizeof(thid), "se%04d", k);
        ASSERT_STR_EQ(rp_str(v, "thid"), thid);
        json_t *result = json_object_get(json_object_get(v, "response"), "result");
        ASSERT_EQ(json_integer_value(json_object_get(result, "k")), k);
        json_object_del(result, "k");
        if (reference == NULL)
            reference = json_incref(result);
        ASSERT_JSON_EQ(result, reference);
        ASSERT_EQ(split_events, k + 1);
        json_decref(v);
    }
    ASSERT_EQ(split_events, len0);
    cmdipc_stats_t s = rp_stats(h.r);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID], 0);
    ASSERT_UEQ(s.msgs_in, 2 * (uint64_t)len0);
    json_decref(reference);
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

static int seq_next, seq_bad;
static void seq_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                   void *data) {
    (void)r, (void)event_id, (void)data;
    if (json_integer_value(json_object_get(payload, "n")) != seq_next)
        seq_bad++;
    seq_next++;
}

TEST(c3_ten_thousand_lines_in_one_write) {
    /* SECURITY c.3: 10,000 lines of 100 B written at once: all dispatched,
     * in order; the splitter moves less than 2x the input. */
    hub_t h;
    rp_t p;
    cmdipc__buf_t in;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c3t", NULL);
    ASSERT_OK(cmdipc_registry_on(h.r, "seq", seq_cb, NULL, NULL));
    peer_open(&h, &p);
    cmdipc__buf_init(&in);
    for (int i = 0; i < 10000; i++) {
        /* Padded to exactly 100 bytes (the pad shrinks as n grows). */
        char line[128];
        int pad = 100 - 74 - (i > 9) - (i > 99) - (i > 999);
        snprintf(line, sizeof(line),
                 "{\"type\":\"event\",\"id\":\"q%05d\",\"eventId\":\"seq\",\"payload\":{"
                 "\"n\":%d,\"pad\":\"%.*s\"}}\n",
                 i, i, pad, "..............................");
        ASSERT_EQ(strlen(line), 100);
        ASSERT_OK(cmdipc__buf_puts(&in, line));
    }
    uint64_t moved0 = cmdipc__stream_bytes_moved();
    ASSERT_OK(rp_write_all(&loop, &p, in.data, in.len, 20000));
    RP_PUMP_UNTIL(&loop, -1, seq_next == 10000, 20000);
    uint64_t moved = cmdipc__stream_bytes_moved() - moved0;
    ASSERT_EQ(seq_bad, 0);
    ASSERT_UEQ(rp_stats(h.r).events_received, 10000);
    ASSERT_LT(moved, 2 * (uint64_t)in.len);
    cmdipc__buf_free(&in);
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

TEST(c3_long_lines_across_reads_are_not_copied_quadratically) {
    /* 40 lines of 200 KB in one write: each spans several reads. */
    hub_t h;
    rp_t p;
    cmdipc__buf_t in;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c3l", NULL);
    ASSERT_OK(cmdipc_registry_on(h.r, "pad", tu_event_cb, &pad_events, NULL));
    peer_open(&h, &p);
    cmdipc__buf_init(&in);
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof(id), "long%02d", i);
        char *line = padded_event(id, 200 * 1000 + (size_t)i * 777);
        ASSERT_OK(cmdipc__buf_puts(&in, line));
        free(line);
    }
    uint64_t moved0 = cmdipc__stream_bytes_moved();
    ASSERT_OK(rp_write_all(&loop, &p, in.data, in.len, 20000));
    RP_PUMP_UNTIL(&loop, -1, pad_events.count == 40, 20000);
    uint64_t moved = cmdipc__stream_bytes_moved() - moved0;
    fprintf(stderr, "%zu bytes in, %llu moved\n", in.len, (unsigned long long)moved);
    ASSERT_LT(moved, 2 * (uint64_t)in.len);
    ASSERT_LE(rp_conn(cmdipc_registry_channel(h.r, "conn-1"))->rcap,
              1024 * 1024 + 64 * 1024);
    cmdipc__buf_free(&in);
    tu_events_clear(&pad_events);
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

/* Answers its calls 20 ms later. */
static uv_timer_t later_timer;
static cmdipc_call_t *later_calls[16];
static int n_later;
static void later_timer_cb(uv_timer_t *t) {
    (void)t;
    for (int i = 0; i < n_later; i++)
        ASSERT_OK(cmdipc_call_reply(later_calls[i], NULL));
    n_later = 0;
}
static void later_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request, (void)data;
    ASSERT_LT(n_later, 16);
    later_calls[n_later++] = call;
    ASSERT_OK(uv_timer_start(&later_timer, later_timer_cb, 20, 0));
}

TEST(stream_half_closed_peer_gets_every_answer) {
    /* A peer writes its requests, the last without a newline, and shuts
     * down its sending side (echo ... | nc -N): it still gets every answer,
     * also from a handler that answers later, then EOF. */
    hub_t h;
    rp_t p;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(uv_timer_init(&loop, &later_timer));
    hub_new(&h, "half", NULL);
    tu_register(&loop, h.r, "later", later_fn, NULL);
    peer_open(&h, &p);
    const char *in =
        "{\"type\":\"execute.command.request\",\"id\":\"a1\",\"commandId\":\"echo\","
        "\"request\":1}\n"
        "{\"type\":\"execute.command.request\",\"id\":\"a2\",\"commandId\":\"later\"}\n"
        "{\"type\":\"execute.command.request\",\"id\":\"a3\",\"commandId\":\"echo\","
        "\"request\":3}";
    ASSERT_OK(rp_write_str(&loop, &p, in));
    ASSERT_OK(shutdown(p.fd, SHUT_WR));
    /* Everything the hub sends until it closes. */
    RP_PUMP_UNTIL(&loop, p.fd, (rp_read(&p), rp_closed(&p)), 10000);
    int got[4] = {0};
    char *l;
    while ((l = rp_line(&p, NULL)) != NULL) {
        json_t *v = rp_check_line(l);
        free(l);
        const char *thid = rp_str(v, "thid");
        ASSERT(json_is_true(json_object_get(json_object_get(v, "response"), "ok")));
        got[thid[1] - '0']++;
        json_decref(v);
    }
    ASSERT_EQ(p.len, 0);
    ASSERT_EQ(got[1], 1);
    ASSERT_EQ(got[3], 1); /* the last line, without its newline */
    ASSERT_EQ(got[2], 1); /* the answer given 20 ms later */
    rp_close(&p);
    uv_close((uv_handle_t *)&later_timer, NULL);
    tu_close_all(&loop, h.r, NULL);
}

/* ---------------------------------------------------------------------------
 * 4-6. JSON limits over a socket. */

/* An event line whose payload nests payload_depth arrays (the line nests
 * one more: the envelope). */
static char *deep_event(const char *id, unsigned payload_depth, size_t *len) {
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    char head[128];
    snprintf(head, sizeof(head),
             "{\"type\":\"event\",\"id\":\"%s\",\"eventId\":\"deep\",\"payload\":", id);
    ASSERT_OK(cmdipc__buf_puts(&b, head));
    for (unsigned i = 0; i < payload_depth; i++)
        ASSERT_OK(cmdipc__buf_putc(&b, '['));
    for (unsigned i = 0; i < payload_depth; i++)
        ASSERT_OK(cmdipc__buf_putc(&b, ']'));
    ASSERT_OK(cmdipc__buf_puts(&b, "}\n"));
    *len = b.len;
    return b.data;
}

static tu_events_t deep_events;

static void c4_body(void *arg) {
    (void)arg;
    hub_t h;
    rp_t p;
    size_t len;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c4", NULL);
    ASSERT_OK(cmdipc_registry_on(h.r, "deep", tu_event_cb, &deep_events, NULL));
    peer_open(&h, &p);

    /* Depth 64 (63 in the payload) is accepted... */
    char *line = deep_event("d64", 63, &len);
    ASSERT_OK(rp_write_all(&loop, &p, line, len, 10000));
    free(line);
    RP_PUMP_UNTIL(&loop, p.fd, deep_events.count == 1, 10000);
    /* ...depth 65 is dropped by the pre-scan, the connection stays. */
    line = deep_event("d65", 64, &len);
    ASSERT_OK(rp_write_all(&loop, &p, line, len, 10000));
    free(line);
    peer_ping(&p, 1);
    ASSERT_EQ(deep_events.count, 1);
    ASSERT_UEQ(rp_stats(h.r).dropped[CMDIPC_DROP_INVALID], 1);
    ASSERT_EQ(rp_log_count("CMDIPC_EJSONDEPTH"), 1);

    /* 500,000 '[' in one line (inside 1 MiB): dropped, no crash; an execute
     * request that deep is answered invalid_request. */
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    ASSERT_OK(cmdipc__buf_puts(
        &b, "{\"type\":\"event\",\"id\":\"d5e5\",\"eventId\":\"deep\",\"payload\":"));
    for (int i = 0; i < 500000; i++)
        ASSERT_OK(cmdipc__buf_putc(&b, '['));
    ASSERT_OK(cmdipc__buf_puts(&b, "}\n"
                                   "{\"type\":\"execute.command.request\",\"id\":\"deep-"
                                   "x\",\"commandId\":\"echo\",\"request\":"));
    for (int i = 0; i < 500000; i++)
        ASSERT_OK(cmdipc__buf_putc(&b, '['));
    ASSERT_OK(cmdipc__buf_puts(&b, "}\n"));
    ASSERT_OK(rp_write_all(&loop, &p, b.data, b.len, 10000));
    cmdipc__buf_free(&b);
    char *resp = rp_wait_line(&loop, &p, 10000);
    json_t *v = rp_check_line(resp);
    free(resp);
    ASSERT_STR_EQ(rp_str(v, "thid"), "deep-x");
    json_t *err = json_object_get(json_object_get(v, "response"), "error");
    ASSERT_STR_EQ(rp_str(err, "code"), "invalid_request");
    json_decref(v);
    peer_ping(&p, 2);
    cmdipc_stats_t s = rp_stats(h.r);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID], 3);
    ASSERT_UEQ(s.invalid_request_replies, 1);
    ASSERT_UEQ(s.channels, 1);
    ASSERT_EQ(deep_events.count, 1);
    ASSERT_EQ(rp_log_count("CMDIPC_EJSONDEPTH"), 3);
    rp_close(&p);
    tu_events_clear(&deep_events);
    tu_close_all(&loop, h.r, NULL);
}

TEST(c4_depth_limit_on_a_64k_stack_thread) {
    /* SECURITY c.4: the whole registry, transport and peer run on a thread
     * with a 64 KiB stack. */
    uv_thread_t tid;
    uv_thread_options_t to;
    to.flags = UV_THREAD_HAS_STACK_SIZE;
    to.stack_size = 64 * 1024;
    ASSERT_OK(uv_thread_create_ex(&tid, &to, c4_body, NULL));
    ASSERT_OK(uv_thread_join(&tid));
}

static json_t *nested_arrays(unsigned depth) {
    json_t *v = json_integer(1);
    for (unsigned i = 0; i < depth; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    return v;
}

/* The API accepts values nested 64 deep (SECURITY c.4: the cap applied to
 * locally built values too); on the wire the envelope adds levels. What one
 * cmdipc registry accepts to send must reach a cmdipc peer with the same
 * default limits, or be refused where it is sent: never be dropped silently
 * on arrival. */
typedef struct {
    hub_t h;
    cmdipc_registry_t *cli;
    cmdipc_channel_t *ch;
} wire_t;

static void wire_setup(wire_t *w, tu_events_t *ev) {
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&w->h, "c4w", NULL);
    w->cli = rp_registry(&loop, "cli", "hub");
    ASSERT_OK(cmdipc_registry_on(w->cli, "deep", tu_event_cb, ev, NULL));
    ASSERT_OK(cmdipc_connect(w->cli, w->h.url, "hub", NULL, &w->ch));
    RP_PUMP_UNTIL(&loop, -1, cmdipc_channel_is_up(w->ch), 10000);
}

static int lenient_echo_rc = 1;
static void lenient_echo_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)data;
    lenient_echo_rc = cmdipc_call_reply(call, request);
}

TEST(c4_a_result_the_api_accepts_reaches_the_caller) {
    /* A request nested 63 deep travels in a line nested 64 deep: the hub
     * takes it, and echo answers the same value. The answer arrives, or the
     * reply is refused at the hub (internal_error): no dropped line, no
     * caller left waiting for its deadline. */
    wire_t w;
    tu_result_t res = {0};
    tu_events_t ev = {0};
    cmdipc_exec_opts_t eo;
    wire_setup(&w, &ev);
    /* An echo that may be refused: the reply of a 63-deep value needs 65
     * levels with its envelope, so cmdipc_call_reply refuses it (UV_EINVAL)
     * and the caller gets internal_error. */
    ASSERT_OK(cmdipc_registry_unregister(w.h.r, "echo"));
    tu_register(&loop, w.h.r, "echo", lenient_echo_fn, NULL);
    json_t *v63 = nested_arrays(63);
    cmdipc_exec_opts_init(&eo);
    eo.timeout_ms = 0;
    ASSERT_OK(
        cmdipc_registry_execute(w.cli, "echo", v63, &eo, tu_response_cb, &res, NULL));
    RP_PUMP_UNTIL(&loop, -1, res.done || rp_stats(w.cli).dropped[CMDIPC_DROP_INVALID] > 0,
                  10000);
    ASSERT_UEQ(rp_stats(w.cli).dropped[CMDIPC_DROP_INVALID], 0);
    ASSERT(res.done);
    if (res.status == 0) {
        ASSERT_JSON_EQ(res.result, v63);
    } else {
        ASSERT_STATUS(CMDIPC_EINTERNAL, res.status);
        ASSERT_STATUS(UV_EINVAL, lenient_echo_rc);
    }
    json_decref(v63);
    tu_result_clear(&res);
    tu_close_all(&loop, w.h.r, w.cli, NULL);
}

TEST(c4_an_event_the_api_accepts_reaches_listeners) {
    /* An event payload nested 64 deep: emit accepts it, or refuses it. */
    wire_t w;
    tu_events_t ev = {0};
    wire_setup(&w, &ev);
    json_t *v64 = nested_arrays(64);
    int rc = cmdipc_registry_emit(w.h.r, "deep", v64);
    if (rc == 0) {
        RP_PUMP_UNTIL(&loop, -1,
                      ev.count == 1 || rp_stats(w.cli).dropped[CMDIPC_DROP_INVALID] > 0,
                      10000);
        ASSERT_UEQ(rp_stats(w.cli).dropped[CMDIPC_DROP_INVALID], 0);
        ASSERT_EQ(ev.count, 1);
        ASSERT_JSON_EQ(ev.last, v64);
    } else {
        ASSERT_STATUS(UV_EINVAL, rc);
    }
    json_decref(v64);
    tu_events_clear(&ev);
    tu_close_all(&loop, w.h.r, w.cli, NULL);
}

typedef struct {
    const char *text;
    size_t len;
    const char *reply_thid; /* an invalid_request answer is expected */
} bad_line_t;

#define BAD(s, thid)                                                                     \
    { s "\n", sizeof(s), thid }

TEST(c5_rejected_messages_are_dropped_counted_and_answered) {
    /* SECURITY c.5 over a Unix socket: each line is dropped and counted, the
     * connection stays; an execute request whose id can be read is answered
     * invalid_request (checked line by line against the schema). */
    static const bad_line_t bad[] = {
        BAD("{\"type\":\"execute.command.request\",\"id\":\"dk\",\"commandId\":\"echo\","
            "\"request\":{\"a\":1,\"a\":2}}",
            "dk"),
        BAD("{\"type\":\"event\",\"id\":\"e1\",\"id\":\"e2\",\"eventId\":\"x\"}", NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"u0\",\"commandId\":\"echo\","
            "\"request\":\"a\\u0000b\"}",
            "u0"),
        BAD("{\"type\":\"event\",\"id\":\"u1\",\"eventId\":\"x\",\"payload\":{"
            "\"k\\u0000\":1}}",
            NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"n0\",\"commandId\":\"echo\","
            "\"request\":\"a\0b\"}",
            "n0"),
        BAD("{\"type\":\"event\",\"id\":\"n1\",\"eventId\":\"x\",\"payload\":\"\0\"}",
            NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"ff\",\"commandId\":\"echo\","
            "\"request\":\"a\xff"
            "b\"}",
            "ff"),
        BAD("{\"type\":\"event\",\"id\":\"f1\",\"eventId\":\"x\",\"payload\":{\"\xff\":1}"
            "}",
            NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"sd\",\"commandId\":\"echo\","
            "\"request\":\"\\ud800\"}",
            "sd"),
        BAD("{\"type\":\"event\",\"id\":\"s1\",\"eventId\":\"x\",\"payload\":"
            "\"\\udc00x\"}",
            NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"big\",\"commandId\":\"echo\","
            "\"request\":99999999999999999999}",
            "big"),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"inf\",\"commandId\":\"echo\","
            "\"request\":1e400}",
            "inf"),
        BAD("{\"type\":\"event\",\"id\":\"i1\",\"eventId\":\"x\",\"payload\":-1e400}",
            NULL),
        BAD("42", NULL),
        BAD("[]", NULL),
        BAD("\"execute.command.request\"", NULL),
        BAD("null", NULL),
        BAD("{\"a\":1} x", NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"tg\",\"commandId\":\"echo\"} "
            "x",
            "tg"),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"tg2\",\"commandId\":\"echo\"}"
            "{}",
            "tg2"),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"\",\"commandId\":\"echo\"}",
            NULL),
        BAD("{\"type\":\"execute.command.request\",\"id\":\"nc\",\"commandId\":7}", "nc"),
        BAD("{\"type\":\"execute.command.request\",\"id\":7,\"commandId\":\"echo\"}",
            NULL),
        BAD("{\"type\":\"execute.command.response\",\"id\":\"r\",\"thid\":\"t\","
            "\"response\":{}}",
            NULL),
        BAD("{\"type\":\"event\",\"id\":\"trunc\",\"eventId\":\"x\",\"payload\":[1,2",
            NULL),
    };
    hub_t h;
    rp_t p;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c5", NULL);
    peer_open(&h, &p);
    uint64_t replies = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t before = rp_stats(h.r).dropped[CMDIPC_DROP_INVALID];
        ASSERT_OK(rp_write_all(&loop, &p, bad[i].text, bad[i].len, 10000));
        if (bad[i].reply_thid != NULL) {
            char *line = rp_wait_line(&loop, &p, 10000);
            json_t *v = rp_check_line(line);
            /* {"id":<uuid>,"type":"execute.command.response","thid":...,
             *  "response":{"ok":false,"error":{"code":"invalid_request",
             *  "message":"invalid request: ..."}}} and nothing else. */
            ASSERT_EQ(json_object_size(v), 4);
            ASSERT_STR_EQ(rp_str(v, "type"), "execute.command.response");
            ASSERT(cmdipc__is_uuid(rp_str(v, "id")));
            ASSERT_STR_EQ(rp_str(v, "thid"), bad[i].reply_thid);
            json_t *resp = json_object_get(v, "response");
            ASSERT_EQ(json_object_size(resp), 2);
            ASSERT(json_is_false(json_object_get(resp, "ok")));
            json_t *err = json_object_get(resp, "error");
            ASSERT_EQ(json_object_size(err), 2);
            ASSERT_STR_EQ(rp_str(err, "code"), "invalid_request");
            ASSERT_EQ(strncmp(rp_str(err, "message"), "invalid request: ", 17), 0);
            char expect[1024];
            snprintf(
                expect, sizeof(expect),
                "{\"id\":\"%s\",\"type\":\"execute.command.response\",\"thid\":\"%s\","
                "\"response\":{\"ok\":false,\"error\":{\"code\":\"invalid_request\","
                "\"message\":\"invalid request: ",
                rp_str(v, "id"), bad[i].reply_thid);
            if (strncmp(line, expect, strlen(expect)) != 0)
                fprintf(stderr, "got:  %s\nwant: %s...\n", line, expect);
            ASSERT_EQ(strncmp(line, expect, strlen(expect)), 0);
            ASSERT_STR_EQ(line + strlen(line) - 4, "\"}}}");
            json_decref(v);
            free(line);
            replies++;
        }
        /* Nothing else came back: the next line answers this ping. */
        peer_ping(&p, (int)i);
        cmdipc_stats_t s = rp_stats(h.r);
        if (s.dropped[CMDIPC_DROP_INVALID] != before + 1)
            fprintf(stderr, "line %zu: %s\n", i, bad[i].text);
        ASSERT_UEQ(s.dropped[CMDIPC_DROP_INVALID], before + 1);
        ASSERT_UEQ(s.invalid_request_replies, replies);
        ASSERT_UEQ(s.channels, 1);
        ASSERT_UEQ(s.events_received, 0);
    }
    cmdipc_stats_t s = rp_stats(h.r);
    ASSERT_UEQ(s.dropped[CMDIPC_DROP_UNKNOWN_TYPE] + s.dropped[CMDIPC_DROP_UNMATCHED] +
                   s.dropped[CMDIPC_DROP_DUPLICATE_EVENT] + s.dropped[CMDIPC_DROP_CLOSED],
               0);
    ASSERT(!rp_closed(&p));
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

static void nul_reply_fn(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request, (void)data;
    json_t *s = json_stringn("a\0b", 3);
    ASSERT_STATUS(UV_EINVAL, cmdipc_call_reply(call, s));
    json_decref(s);
}

TEST(c5_sender_never_emits_nul) {
    /* SECURITY c.5, last sentence: strings holding NUL are refused on the
     * way out: execute, emit, and a handler's result (the caller gets
     * internal_error instead). */
    hub_t h;
    rp_t p;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c5n", NULL);
    tu_register(&loop, h.r, "nul", nul_reply_fn, NULL);
    peer_open(&h, &p);
    json_t *s = json_stringn("a\0b", 3);
    json_t *o = json_object();
    ASSERT_OK(json_object_setn_new_nocheck(o, "k\0", 2, json_true()));
    tu_result_t res = {0};
    ASSERT_STATUS(UV_EINVAL, tu_exec(h.r, "echo", s, &res));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_emit(h.r, "x", s));
    ASSERT_STATUS(UV_EINVAL, cmdipc_registry_emit(h.r, "x", o));
    json_t *v = peer_call(&p, "nr", "nul", NULL);
    json_t *err = json_object_get(json_object_get(v, "response"), "error");
    ASSERT_STR_EQ(rp_str(err, "code"), "internal_error");
    json_decref(v);
    peer_ping(&p, 1); /* nothing else was sent */
    json_decref(s);
    json_decref(o);
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

/* A jansson allocation hook (this test binary only): live and peak bytes.
 * Sizes come from malloc_usable_size, so memory from either side may be
 * freed by the other. */
static int64_t heap_cur, heap_peak;
static void *count_malloc(size_t n) {
    void *p = malloc(n);
    if (p != NULL) {
        heap_cur += (int64_t)malloc_usable_size(p);
        if (heap_cur > heap_peak)
            heap_peak = heap_cur;
    }
    return p;
}
static void count_free(void *p) {
    if (p != NULL)
        heap_cur -= (int64_t)malloc_usable_size(p);
    free(p);
}

static tu_events_t amp_events;

/* Sends an event line carrying payload text and returns the peak jansson
 * heap (bytes above what was live before) until it was dispatched or
 * dropped. */
static int64_t amp_send(rp_t *p, cmdipc_registry_t *r, const char *id,
                        const char *payload, size_t plen, int accepted) {
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    char head[128];
    snprintf(head, sizeof(head),
             "{\"type\":\"event\",\"id\":\"%s\",\"eventId\":\"amp\",\"payload\":", id);
    ASSERT_OK(cmdipc__buf_puts(&b, head));
    ASSERT_OK(cmdipc__buf_put(&b, payload, plen));
    ASSERT_OK(cmdipc__buf_puts(&b, "}\n"));
    ASSERT_LE(b.len, 1024 * 1024);
    int count0 = amp_events.count;
    uint64_t dropped0 = rp_stats(r).dropped[CMDIPC_DROP_INVALID];
    int64_t base = heap_cur;
    heap_peak = heap_cur;
    ASSERT_OK(rp_write_all(&loop, p, b.data, b.len, 10000));
    cmdipc__buf_free(&b);
    if (accepted)
        RP_PUMP_UNTIL(&loop, p->fd, amp_events.count == count0 + 1, 10000);
    else
        RP_PUMP_UNTIL(&loop, p->fd,
                      rp_stats(r).dropped[CMDIPC_DROP_INVALID] == dropped0 + 1, 10000);
    return heap_peak - base;
}

/* "[" item "," item ... "]" of about size bytes; the first n_first items
 * are first, the others rest. */
static char *array_of(const char *first, size_t n_first, const char *rest, size_t size,
                      size_t *len) {
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    ASSERT_OK(cmdipc__buf_putc(&b, '['));
    for (size_t i = 0; b.len + 8 < size; i++) {
        if (i > 0)
            ASSERT_OK(cmdipc__buf_putc(&b, ','));
        ASSERT_OK(cmdipc__buf_puts(&b, i < n_first ? first : rest));
    }
    ASSERT_OK(cmdipc__buf_putc(&b, ']'));
    *len = b.len;
    return b.data;
}

TEST(c6_container_limit_and_jansson_heap) {
    /* SECURITY c.6 over a Unix socket, with the default limits (1 MiB,
     * 65,536 containers). */
    json_set_alloc_funcs(count_malloc, count_free);
    hub_t h;
    rp_t p;
    size_t len;
    const size_t room = 1024 * 1024 - 100; /* the envelope around the payload */
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "c6", NULL);
    ASSERT_OK(cmdipc_registry_on(h.r, "amp", tu_event_cb, &amp_events, NULL));
    peer_open(&h, &p);

    /* 1 MiB of [{},{},...]: refused by the container limit, before jansson
     * allocates anything much. */
    char *pl = array_of("{}", SIZE_MAX, "{}", room, &len);
    int64_t peak = amp_send(&p, h.r, "a0", pl, len, 0);
    free(pl);
    ASSERT_EQ(rp_log_count("CMDIPC_EJSONSIZE"), 1);
    ASSERT_LT(peak, 1024 * 1024);
    /* The same with [[],...]. */
    pl = array_of("[]", SIZE_MAX, "[]", room, &len);
    amp_send(&p, h.r, "a1", pl, len, 0);
    free(pl);
    ASSERT_EQ(rp_log_count("CMDIPC_EJSONSIZE"), 2);

    /* The worst accepted inputs of about 1 MiB: as many containers as
     * allowed, the rest small scalars. Peak jansson heap < 48 MiB. */
    static const struct {
        const char *first, *rest;
    } shapes[] = {
        {"{}", "0"}, {"[]", "0"}, {"{}", "\"\""}, {"0", "0"}, {"{\"a\":{}}", "1"}};
    int64_t worst = 0;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        char id[16];
        snprintf(id, sizeof(id), "w%zu", i);
        /* 65,536 containers in all: the envelope and the array are two. */
        size_t n_first = strcmp(shapes[i].first, "{\"a\":{}}") == 0 ? 32767 : 65534;
        pl = array_of(shapes[i].first, n_first, shapes[i].rest, room, &len);
        peak = amp_send(&p, h.r, id, pl, len, 1);
        free(pl);
        fprintf(stderr, "shape %zu: %zu bytes, peak jansson heap %lld bytes\n", i, len,
                (long long)peak);
        ASSERT_LT(peak, 48ll * 1024 * 1024);
        if (peak > worst)
            worst = peak;
    }
    ASSERT_GT(worst, 1024 * 1024); /* the hook does see the parse */
    /* One more container than allowed is refused. */
    pl = array_of("{}", 65535, "0", room, &len);
    amp_send(&p, h.r, "over", pl, len, 0);
    free(pl);
    ASSERT_EQ(rp_log_count("CMDIPC_EJSONSIZE"), 3);

    /* An object with about 87 K distinct keys (1 MiB) parses in < 100 ms;
     * asserted with a 10x margin (timing note), on the decoder alone. */
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    ASSERT_OK(cmdipc__buf_puts(
        &b, "{\"type\":\"event\",\"id\":\"keys\",\"eventId\":\"amp\",\"payload\":{"));
    for (int i = 0; b.len < 1024 * 1024 - 32; i++) {
        char k[32];
        snprintf(k, sizeof(k), "%s\"k%06d\":%d", i ? "," : "", i, i % 10);
        ASSERT_OK(cmdipc__buf_puts(&b, k));
    }
    ASSERT_OK(cmdipc__buf_puts(&b, "}}"));
    cmdipc_msg_t *m;
    uint64_t t0 = uv_hrtime();
    ASSERT_OK(cmdipc_msg_decode(b.data, b.len, NULL, &m, NULL));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    fprintf(stderr, "87K-key object: %llu ms\n", (unsigned long long)ms);
    ASSERT_GT(json_object_size(cmdipc_msg_payload(m)), 80000);
    ASSERT_LT(ms, 1000);
    cmdipc_msg_free(m);
    cmdipc__buf_free(&b);

    ASSERT_UEQ(rp_stats(h.r).channels, 1);
    peer_ping(&p, 1);
    rp_close(&p);
    tu_events_clear(&amp_events);
    tu_close_all(&loop, h.r, NULL);
    json_set_alloc_funcs(malloc, free);
}

/* Counts write(2) and writev(2) calls on one descriptor: these definitions
 * in the test executable take the place of libc's for libuv. */
static int counted_fd = -1;
static int write_calls;

ssize_t write(int fd, const void *buf, size_t n) {
    if (fd == counted_fd)
        write_calls++;
    return syscall(SYS_write, fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    if (fd == counted_fd)
        write_calls++;
    return syscall(SYS_writev, fd, iov, iovcnt);
}

TEST(stream_writes_are_batched) {
    /* 100 events queued in one loop turn leave in a few writes, not 100. */
    hub_t h;
    rp_t p;
    ASSERT_OK(uv_loop_init(&loop));
    hub_new(&h, "wb", NULL);
    peer_open(&h, &p);
    cmdipc_channel_t *ch = cmdipc_registry_channel(h.r, "conn-1");
    RP_PUMP_UNTIL(&loop, -1, rp_conn(ch)->writing == 0,
                  10000); /* the list request is out */
    counted_fd = rp_channel_fd(ch);
    ASSERT_GE(counted_fd, 0);
    write_calls = 0;
    json_t *pl = json_pack("{s:i}", "n", 1);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cmdipc_registry_emit(h.r, "batch", pl));
    json_decref(pl);
    int lines = 0;
    while (lines < 100) {
        char *l = rp_wait_line(&loop, &p, 10000);
        json_t *v = rp_check_line(l);
        ASSERT_STR_EQ(rp_str(v, "type"), "event");
        ASSERT_STR_EQ(rp_str(v, "eventId"), "batch");
        json_decref(v);
        free(l);
        lines++;
    }
    counted_fd = -1;
    fprintf(stderr, "100 events: %d writes\n", write_calls);
    ASSERT_GE(write_calls, 1);
    ASSERT_LE(write_calls, 100 / 8 + 2);
    rp_close(&p);
    tu_close_all(&loop, h.r, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(d_default_limits)
TEST_ENTRY(c2_endless_line_closes_only_that_connection)
TEST_ENTRY(c2_configured_line_limit_is_exact)
TEST_ENTRY(c3_split_invariance_one_byte_per_read)
TEST_ENTRY(c3_every_split_point_of_a_pair)
TEST_ENTRY(c3_ten_thousand_lines_in_one_write)
TEST_ENTRY(c3_long_lines_across_reads_are_not_copied_quadratically)
TEST_ENTRY(stream_half_closed_peer_gets_every_answer)
TEST_ENTRY(c4_depth_limit_on_a_64k_stack_thread)
TEST_ENTRY(c4_a_result_the_api_accepts_reaches_the_caller)
TEST_ENTRY(c4_an_event_the_api_accepts_reaches_listeners)
TEST_ENTRY(c5_rejected_messages_are_dropped_counted_and_answered)
TEST_ENTRY(c5_sender_never_emits_nul)
TEST_ENTRY(c6_container_limit_and_jansson_heap)
TEST_ENTRY(stream_writes_are_batched)
TEST_LIST_END
