/* A foreign peer for the stream transport tests: a plain POSIX socket in the
 * test process, driven between turns of the registry's loop, plus helpers to
 * reach the internals of stream channels (their conn, fd, buffers) and to
 * capture a registry's log. */
#ifndef CMDIPC_TEST_RAWPEER_H
#define CMDIPC_TEST_RAWPEER_H

#include <stddef.h>
#include <stdint.h>

#include "testutil.h"
#include "transport_int.h"

typedef struct rp_s {
    int fd;
    char *buf; /* received bytes not yet taken as lines */
    size_t len, cap;
    int eof;        /* read returned 0 */
    int err;        /* a read error (negative errno: -ECONNRESET...) */
    uint64_t total; /* bytes read so far */
} rp_t;

/* Connects a non-blocking AF_UNIX stream socket to path. Returns 0 or -errno
 * (p->fd is -1 then). */
int rp_connect(rp_t *p, const char *path);
/* Wraps an fd already connected (made non-blocking). */
void rp_wrap(rp_t *p, int fd);
void rp_close(rp_t *p);
/* Reads what is available now. Returns the number of bytes read. */
size_t rp_read(rp_t *p);
/* The next complete line (without its '\n'), malloc'd (free() it), its length
 * in *n when n is not NULL; NULL when no complete line is buffered. */
char *rp_line(rp_t *p, size_t *n);
/* 1 once the other end closed (EOF or a read error). */
int rp_closed(const rp_t *p);
/* Non-zero while the other end has not read everything we wrote (SIOCOUTQ:
 * for Unix sockets the memory of the unread buffers, not a byte count). */
int rp_unread(const rp_t *p);

/* One turn: waits (at most max_ms) for the loop's backend or fd (-1: none)
 * to become readable, then runs the loop once without blocking. */
void rp_pump(uv_loop_t *loop, int fd, int max_ms);
/* Writes every byte, pumping loop while the socket is full. Returns 0 or
 * -errno (EPIPE, ECONNRESET: the other end closed). Fails the test if it
 * takes longer than timeout_ms. Reads what arrives meanwhile into p. */
int rp_write_all(uv_loop_t *loop, rp_t *p, const void *buf, size_t len,
                 uint64_t timeout_ms);
int rp_write_str(uv_loop_t *loop, rp_t *p, const char *s);
/* Pumps until a line arrives (returned as by rp_line) or fails the test. */
char *rp_wait_line(uv_loop_t *loop, rp_t *p, uint64_t timeout_ms);
/* Pumps until the other end closed (reading and discarding what arrives) or
 * fails the test. */
void rp_wait_closed(uv_loop_t *loop, rp_t *p, uint64_t timeout_ms);
/* Pumps until every byte we wrote was read by the other end. */
void rp_wait_consumed(uv_loop_t *loop, rp_t *p, uint64_t timeout_ms);

/* Pumps loop (watching fd, -1 for none) until cond holds; fails the test
 * after ms milliseconds of real time. */
#define RP_PUMP_UNTIL(loop, fd, cond, ms)                                                \
    do {                                                                                 \
        uint64_t rp_t0_ = uv_hrtime();                                                   \
        while (!(cond)) {                                                                \
            rp_pump((loop), (fd), 5);                                                    \
            if ((uv_hrtime() - rp_t0_) / 1000000 > (uint64_t)(ms) && !(cond)) {          \
                fprintf(stderr, "%s:%d: not reached within %d ms: %s\n", __FILE__,       \
                        __LINE__, (int)(ms), #cond);                                     \
                ASSERT(cond);                                                            \
            }                                                                            \
        }                                                                                \
    } while (0)

/* Runs loop for ms milliseconds of real time (a bounded wait for something
 * that must NOT happen). */
void rp_run_for(uv_loop_t *loop, int fd, uint64_t ms);

/* Stream channel internals. */
cmdipc__link_t *rp_link(cmdipc_channel_t *ch);
cmdipc__conn_t *rp_conn(cmdipc_channel_t *ch); /* NULL while it has none */
int rp_channel_fd(cmdipc_channel_t *ch);       /* -1 without a conn */

/* Open file descriptors of this process (entries of /proc/self/fd). */
int rp_fd_count(void);

/* A log sink keeping the messages of every registry created with
 * rp_registry() (ring of the last RP_LOG_MAX). */
#define RP_LOG_MAX 512
void rp_log_cb(cmdipc_registry_t *r, cmdipc_log_level_t level, const char *message,
               void *data);
/* Number of kept messages containing needle. */
int rp_log_count(const char *needle);
void rp_log_clear(void);
/* Called for every message rp_log_cb receives (NULL: none). */
extern void (*rp_log_hook)(cmdipc_registry_t *r, const char *message);
/* A registry logging to rp_log_cb at INFO (router may be NULL). */
cmdipc_registry_t *rp_registry(uv_loop_t *loop, const char *id, const char *router);

/* Channel events of every registry given rp_channel_cb (data unused). */
typedef struct {
    int attached, up, down, closed;
    int last_closed_status;
    int last_down_status;
    char last_closed_id[64];
} rp_chev_t;
extern rp_chev_t rp_chev;
void rp_channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                   int status, void *data);

/* A unix:// URL for a fresh scratch path (path receives the path). */
void rp_unix_url(char *url, size_t url_size, char *path, const char *tag);

/* ---------------------------------------------------------------------------
 * A hub and its peers. */

/* A root registry "hub" (logging to rp_log_cb, channel events to
 * rp_channel_cb, rp_chev reset) serving echo, fail and hold, listening on a
 * fresh Unix socket with lo (may be NULL). */
typedef struct {
    cmdipc_registry_t *r;
    cmdipc_listener_t *l;
    char path[HARNESS_PATH_MAX];
    char url[160];
} rp_hub_t;
void rp_hub_new(uv_loop_t *loop, rp_hub_t *h, const char *tag,
                const cmdipc_listen_opts_t *lo);
/* Connects p to the hub and takes the list.commands.request every new
 * channel receives first. */
void rp_peer_open(uv_loop_t *loop, rp_hub_t *h, rp_t *p);
/* Sends an execute request (request: JSON text or NULL) and returns the
 * parsed, checked answer, which must carry thid == id (events other peers
 * sent may come before it; they are skipped). */
json_t *rp_peer_call(uv_loop_t *loop, rp_t *p, const char *id, const char *cmd,
                     const char *request);
/* A round trip through echo. */
void rp_peer_ping(uv_loop_t *loop, rp_t *p, int n);

/* "hold": its calls wait until the test answers them. */
#define RP_HELD_MAX 16384
extern size_t rp_n_held;       /* held now */
extern uint64_t rp_held_total; /* held ever */
void rp_hold_fn(cmdipc_call_t *call, json_t *request, void *data);
/* Answers the n calls held last (ok, no result). */
void rp_answer_held(size_t n);

cmdipc_stats_t rp_stats(const cmdipc_registry_t *r);
/* Member k of v as a string, or NULL. */
const char *rp_str(const json_t *v, const char *k);

/* Checks that line is one compact JSON object (as jansson would dump it,
 * members in the same order), valid per the spec-v1 schemas as cmdipc emits
 * (no null optional members), and returns it parsed (new reference). */
json_t *rp_check_line(const char *line);

#endif
