/* Re-entrancy from every callback and notification, through a transport
 * written against the public headers only (cmdipc.h: no internal header is
 * reachable from this file's build target).
 *
 * The test transport ("pt") links two registries on one loop. It never calls
 * the registry from inside ops->send or ops->close: everything it reports (a
 * delivered line, the close, a link going down and up) comes from a libuv
 * callback of its own, a timer, an idle or an async handle depending on the
 * mode, which is how a real transport does it and where the review found
 * the use-after-free (a close reported from a timer, with the application
 * closing the registry from the CLOSED notification).
 *
 * The matrix: for every callback an application can get (channel ATTACHED,
 * UP, DOWN, CLOSED; command ADDED, REMOVED; a response, a registration's
 * completion, a handler, an event listener, a list answer) and every action
 * an application may take there (close the registry, close the channel,
 * execute, register, attach another channel), in each transport mode, a
 * scenario runs to the end, every execute's callback runs exactly once, every
 * close callback exactly once, and the loop closes cleanly. Under ASan and
 * LeakSanitizer (make test's build-asan) that also means no use after free
 * and no leak. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ===========================================================================
 * The test transport. */

enum { M_TIMER, M_IDLE, M_ASYNC, M__COUNT };
static const char *const mode_names[] = {"timer", "idle", "async"};

typedef struct pt_line_s {
    struct pt_line_s *next;
    size_t len;
    char text[];
} pt_line_t;

typedef struct pt_end_s pt_end_t;
struct pt_end_s {
    int mode;
    cmdipc_channel_t *ch;
    pt_end_t *peer;
    uv_loop_t *loop;
    union {
        uv_handle_t h;
        uv_timer_t timer;
        uv_idle_t idle;
        uv_async_t async;
    } u;
    int handle_open;
    int handle_closed; /* its close callback ran */
    int attached;
    int freed;        /* ops->free ran */
    int paused;
    pt_line_t *head, *tail; /* lines from the peer, not yet delivered */
    int closing;      /* ops->close called */
    int peer_gone;    /* the peer closed: report closed (UV_EOF) */
    int reported;     /* cmdipc_channel_closed called */
    int flap;         /* 1: report link down next, 2: then link up */
    int refuse_sends; /* send returns CMDIPC_EOVERLOAD (a full queue) */
};

static void pt_kick(pt_end_t *e);

static void pt_maybe_free(pt_end_t *e) {
    if (!e->freed || (e->handle_open && !e->handle_closed))
        return;
    while (e->head != NULL) {
        pt_line_t *l = e->head;
        e->head = l->next;
        free(l);
    }
    free(e);
}

static void pt_handle_closed(uv_handle_t *h) {
    pt_end_t *e = h->data;
    e->handle_closed = 1;
    pt_maybe_free(e);
}

/* Everything the end reports to its registry happens here. */
static void pt_work(pt_end_t *e) {
    if (e->mode == M_TIMER)
        ; /* one-shot */
    else if (e->mode == M_IDLE)
        uv_idle_stop(&e->u.idle);
    if (e->reported)
        return;
    if (e->flap == 1) {
        e->flap = 2;
        cmdipc_channel_link_down(e->ch, UV_ECONNRESET);
        pt_kick(e);
        return;
    }
    if (e->flap == 2) {
        e->flap = 0;
        cmdipc_channel_link_up(e->ch);
    }
    while (e->head != NULL && !e->paused && !e->closing) {
        pt_line_t *l = e->head;
        e->head = l->next;
        if (e->head == NULL)
            e->tail = NULL;
        cmdipc_channel_deliver_line(e->ch, l->text, l->len);
        free(l);
        if (e->reported)
            return;
    }
    if (e->closing || (e->peer_gone && e->head == NULL)) {
        /* The close is reported from this callback, not a close callback. */
        e->reported = 1;
        cmdipc_channel_closed(e->ch, e->closing ? 0 : UV_EOF);
        /* From here the registry may free the channel on a later turn; the
         * handle goes now. */
        if (e->handle_open && !uv_is_closing(&e->u.h))
            uv_close(&e->u.h, pt_handle_closed);
    }
}

static void pt_timer_cb(uv_timer_t *t) { pt_work(t->data); }
static void pt_idle_cb(uv_idle_t *i) { pt_work(i->data); }
static void pt_async_cb(uv_async_t *a) { pt_work(a->data); }

static void pt_kick(pt_end_t *e) {
    if (!e->handle_open || uv_is_closing(&e->u.h))
        return;
    switch (e->mode) {
        case M_TIMER: uv_timer_start(&e->u.timer, pt_timer_cb, 0, 0); break;
        case M_IDLE: uv_idle_start(&e->u.idle, pt_idle_cb); break;
        default: uv_async_send(&e->u.async); break;
    }
}

static int pt_start(cmdipc_channel_t *ch, uv_loop_t *loop) {
    pt_end_t *e = cmdipc_channel_impl(ch);
    int rc;
    e->loop = loop;
    switch (e->mode) {
        case M_TIMER: rc = uv_timer_init(loop, &e->u.timer); break;
        case M_IDLE: rc = uv_idle_init(loop, &e->u.idle); break;
        default: rc = uv_async_init(loop, &e->u.async, pt_async_cb); break;
    }
    if (rc != 0)
        return rc;
    e->u.h.data = e;
    e->handle_open = 1;
    e->attached = 1;
    if (e->head != NULL || e->peer_gone)
        pt_kick(e);
    return 0;
}

static int pt_send(cmdipc_channel_t *ch, cmdipc_msg_t *m) {
    pt_end_t *e = cmdipc_channel_impl(ch);
    size_t n;
    if (e->refuse_sends) {
        cmdipc_msg_free(m);
        return CMDIPC_EOVERLOAD;
    }
    char *text = cmdipc_msg_encode(m, &n);
    cmdipc_msg_free(m);
    if (text == NULL)
        return UV_ENOMEM;
    pt_end_t *p = e->peer;
    if (e->closing || p == NULL) {
        cmdipc_free(text);
        return CMDIPC_ECLOSED;
    }
    pt_line_t *l = malloc(sizeof(*l) + n + 1);
    ASSERT_NOT_NULL(l);
    memcpy(l->text, text, n + 1);
    l->len = n;
    l->next = NULL;
    cmdipc_free(text);
    if (p->tail != NULL)
        p->tail->next = l;
    else
        p->head = l;
    p->tail = l;
    if (p->attached)
        pt_kick(p); /* delivered from the peer's handle, later */
    return 0;
}

static void pt_pause(cmdipc_channel_t *ch, int pause) {
    pt_end_t *e = cmdipc_channel_impl(ch);
    e->paused = pause;
    if (!pause)
        pt_kick(e);
}

static void pt_detach_peer(pt_end_t *e) {
    pt_end_t *p = e->peer;
    if (p == NULL)
        return;
    p->peer = NULL;
    e->peer = NULL;
    p->peer_gone = 1;
    if (p->attached)
        pt_kick(p);
}

static void pt_close(cmdipc_channel_t *ch, int graceful) {
    pt_end_t *e = cmdipc_channel_impl(ch);
    (void)graceful; /* what was sent is in the peer's queue already */
    e->closing = 1;
    pt_detach_peer(e);
    pt_kick(e); /* reported from the handle, never from inside close */
}

static void pt_free(cmdipc_channel_t *ch) {
    pt_end_t *e = cmdipc_channel_impl(ch);
    pt_detach_peer(e);
    e->freed = 1;
    if (e->handle_open && !uv_is_closing(&e->u.h))
        uv_close(&e->u.h, pt_handle_closed);
    pt_maybe_free(e);
}

static const cmdipc_channel_ops_t pt_ops = {
    .version = CMDIPC_CHANNEL_OPS_VERSION,
    .start = pt_start,
    .send = pt_send,
    .pause_reading = pt_pause,
    .close = pt_close,
    .free = pt_free,
};

/* a knows the link as id_a, b as id_b. */
static void pt_pair(int mode, const char *id_a, const char *id_b, cmdipc_channel_t **a,
                    cmdipc_channel_t **b) {
    pt_end_t *ea = calloc(1, sizeof(*ea)), *eb = calloc(1, sizeof(*eb));
    ASSERT(ea != NULL && eb != NULL);
    ea->mode = eb->mode = mode;
    ea->peer = eb;
    eb->peer = ea;
    ASSERT_OK(cmdipc_channel_new(id_a, &pt_ops, ea, &ea->ch));
    ASSERT_OK(cmdipc_channel_new(id_b, &pt_ops, eb, &eb->ch));
    *a = ea->ch;
    *b = eb->ch;
}

/* Makes the end's link go down, then come up again (a reconnect). */
static void pt_flap(cmdipc_channel_t *ch) {
    pt_end_t *e = cmdipc_channel_impl(ch);
    e->flap = 1;
    pt_kick(e);
}

/* ===========================================================================
 * The scenario. */

enum {
    E_ATTACHED, E_UP, E_DOWN, E_CLOSED, E_CMD_ADDED, E_CMD_REMOVED, E_RESPONSE,
    E_REGISTERED, E_HANDLER, E_LISTENER, E_LIST, E__COUNT
};
static const char *const event_names[] = {
    "ATTACHED", "UP", "DOWN", "CLOSED", "COMMAND_ADDED", "COMMAND_REMOVED",
    "response", "registered", "handler", "listener", "list"};

enum { A_CLOSE_REGISTRY, A_CLOSE_CHANNEL, A_EXECUTE, A_REGISTER, A_ATTACH, A__COUNT };
static const char *const action_names[] = {"close registry", "close channel", "execute",
                                           "register", "attach"};

typedef struct {
    uv_loop_t loop;
    int mode;
    int event, action;
    int fired;             /* the action ran (once) */
    cmdipc_registry_t *a, *b, *c;
    int a_closed, b_closed, c_closed; /* close callbacks run */
    int a_closes, b_closes, c_closes; /* close calls made */
    cmdipc_channel_t *a_link;          /* a's end towards b */
    int execs, responses;  /* executes accepted, callbacks run */
    int extra_attached;
    int seq;
} sc_t;

static sc_t sc;

static void close_cb(cmdipc_registry_t *r, void *data) {
    int *flag = data;
    (void)r;
    (*flag)++;
}

static void close_registry(cmdipc_registry_t *r) {
    if (r == sc.a) {
        sc.a_closes++;
        cmdipc_registry_close(r, close_cb, &sc.a_closed);
    } else if (r == sc.b) {
        sc.b_closes++;
        cmdipc_registry_close(r, close_cb, &sc.b_closed);
    } else {
        sc.c_closes++;
        cmdipc_registry_close(r, close_cb, &sc.c_closed);
    }
}

static void response_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                        void *data);

static void exec_counted(cmdipc_registry_t *r, const char *id) {
    if (cmdipc_registry_execute(r, id, NULL, NULL, response_cb, NULL, NULL) == 0)
        sc.execs++;
}

static void fn_ok(cmdipc_call_t *call, json_t *request, void *data);

static void act(cmdipc_registry_t *r, cmdipc_channel_t *ch) {
    char id[32];
    cmdipc_channel_t *x, *y;
    switch (sc.action) {
        case A_CLOSE_REGISTRY:
            close_registry(r);
            break;
        case A_CLOSE_CHANNEL:
            if (ch == NULL)
                ch = sc.a_link;
            (void)cmdipc_channel_close(ch); /* may be closed already: UV_EALREADY */
            break;
        case A_EXECUTE:
            exec_counted(r, "b.cmd");
            exec_counted(r, "a.cmd");
            break;
        case A_REGISTER: {
            snprintf(id, sizeof(id), "new.%d", ++sc.seq);
            cmdipc_command_def_t def;
            memset(&def, 0, sizeof(def));
            def.version = CMDIPC_COMMAND_DEF_VERSION;
            def.id = id;
            (void)cmdipc_registry_register(r, &def, fn_ok, NULL, NULL, NULL);
            break;
        }
        case A_ATTACH:
            snprintf(id, sizeof(id), "extra-%d", ++sc.seq);
            pt_pair(sc.mode, id, "a-extra", &x, &y);
            if (cmdipc_registry_attach(r, x) == 0) {
                sc.extra_attached++;
                if (sc.c != NULL && cmdipc_registry_attach(sc.c, y) == 0)
                    break;
                cmdipc_channel_free(y);
            } else {
                cmdipc_channel_free(x);
                cmdipc_channel_free(y);
            }
            break;
    }
}

/* Called by every callback on registry a: acts the first time. */
static void maybe_act(int event, cmdipc_registry_t *r, cmdipc_channel_t *ch) {
    if (event != sc.event || sc.fired || r != sc.a)
        return;
    sc.fired = 1;
    act(r, ch);
}

static void fn_ok(cmdipc_call_t *call, json_t *request, void *data) {
    (void)request;
    (void)data;
    cmdipc_registry_t *r = cmdipc_call_registry(call);
    /* Act first, then answer: the call must stay answerable. */
    if (r != NULL)
        maybe_act(E_HANDLER, r, NULL);
    json_t *v = json_integer(1);
    ASSERT_OK(cmdipc_call_reply(call, v));
    json_decref(v);
}

static void response_cb(cmdipc_req_t *req, int status, json_t *result, const char *message,
                        void *data) {
    (void)status;
    (void)result;
    (void)message;
    (void)data;
    sc.responses++;
    maybe_act(E_RESPONSE, cmdipc_req_registry(req), NULL);
}

static void registered_cb(cmdipc_registry_t *r, int status, const char *id, void *data) {
    (void)status;
    (void)id;
    (void)data;
    maybe_act(E_REGISTERED, r, NULL);
}

static void listener_cb(cmdipc_registry_t *r, const char *event_id, json_t *payload,
                        void *data) {
    (void)event_id;
    (void)payload;
    (void)data;
    maybe_act(E_LISTENER, r, NULL);
}

static void list_cb(cmdipc_registry_t *r, int status, json_t *commands, void *data) {
    (void)status;
    (void)commands;
    (void)data;
    maybe_act(E_LIST, r, NULL);
}

static void channel_cb(cmdipc_registry_t *r, cmdipc_channel_t *ch, cmdipc_channel_event_t ev,
                       int status, void *data) {
    (void)status;
    (void)data;
    static const int map[] = {0, E_ATTACHED, E_CLOSED, E_UP, E_DOWN};
    /* The channel is valid during the call: read it. */
    ASSERT_NOT_NULL(cmdipc_channel_id(ch));
    maybe_act(map[ev], r, ch);
}

static void command_cb(cmdipc_registry_t *r, cmdipc_command_event_t ev, const char *id,
                       const char *channel_id, void *data) {
    (void)id;
    (void)channel_id;
    (void)data;
    maybe_act(ev == CMDIPC_COMMAND_ADDED ? E_CMD_ADDED : E_CMD_REMOVED, r, NULL);
}

static int alive(cmdipc_registry_t *r, int closes) { return r != NULL && closes == 0; }

/* Runs the loop until no registry has deferred work and the loop made no
 * visible progress for a few turns. */
static void settle(void) {
    int quiet = 0;
    for (int i = 0; i < 10000 && quiet < 5; i++) {
        size_t pending = 0;
        if (alive(sc.a, sc.a_closes))
            pending += cmdipc_registry_deferred_count(sc.a);
        if (alive(sc.b, sc.b_closes))
            pending += cmdipc_registry_deferred_count(sc.b);
        if (alive(sc.c, sc.c_closes))
            pending += cmdipc_registry_deferred_count(sc.c);
        uv_run(&sc.loop, UV_RUN_NOWAIT);
        quiet = pending == 0 ? quiet + 1 : 0;
    }
}

static cmdipc_registry_t *new_registry(const char *id, const char *router) {
    cmdipc_registry_opts_t o;
    cmdipc_registry_t *r;
    cmdipc_registry_opts_init(&o);
    o.id = id;
    o.router_channel = router;
    o.request_ttl_ms = 5000;
    ASSERT_OK(cmdipc_registry_new(&sc.loop, &o, &r));
    return r;
}

static void reg_cmd(cmdipc_registry_t *r, const char *id, cmdipc_register_cb done) {
    cmdipc_command_def_t def;
    memset(&def, 0, sizeof(def));
    def.version = CMDIPC_COMMAND_DEF_VERSION;
    def.id = id;
    (void)cmdipc_registry_register(r, &def, fn_ok, NULL, done, NULL);
}

static void run_scenario(int mode, int event, int action) {
    memset(&sc, 0, sizeof(sc));
    sc.mode = mode;
    sc.event = event;
    sc.action = action;
    ASSERT_OK(uv_loop_init(&sc.loop));
    sc.a = new_registry("a", "b"); /* b is a's router */
    sc.b = new_registry("b", NULL);
    sc.c = new_registry("c", NULL);
    cmdipc_registry_set_channel_cb(sc.a, channel_cb, NULL);
    cmdipc_registry_set_command_cb(sc.a, command_cb, NULL);
    ASSERT_OK(cmdipc_registry_on(sc.a, NULL, listener_cb, NULL, NULL));
    reg_cmd(sc.b, "b.cmd", NULL);

    /* Attach: ATTACHED, UP on a; a learns b.cmd (COMMAND_ADDED). */
    cmdipc_channel_t *ab, *ba;
    pt_pair(mode, "b", "a", &ab, &ba);
    sc.a_link = ab;
    ASSERT_OK(cmdipc_registry_attach(sc.a, ab));
    ASSERT_OK(cmdipc_registry_attach(sc.b, ba));
    settle();
    /* a registers a.cmd: escalated to b, acked (registered). */
    if (alive(sc.a, sc.a_closes))
        reg_cmd(sc.a, "a.cmd", registered_cb);
    settle();
    /* a calls b (response); b calls a (handler on a). */
    if (alive(sc.a, sc.a_closes))
        exec_counted(sc.a, "b.cmd");
    exec_counted(sc.b, "a.cmd");
    settle();
    /* b emits: a's listener. a asks b for its list. */
    (void)cmdipc_registry_emit(sc.b, "tick", NULL);
    if (alive(sc.a, sc.a_closes)) {
        cmdipc_channel_t *ch = cmdipc_registry_channel(sc.a, "b");
        if (ch != NULL)
            (void)cmdipc_channel_list_commands(ch, list_cb, NULL);
    }
    settle();
    /* The link flaps: DOWN (b.cmd removed: COMMAND_REMOVED), UP again. */
    if (alive(sc.a, sc.a_closes) && cmdipc_registry_channel(sc.a, "b") != NULL)
        pt_flap(ab);
    settle();
    /* b closes its end: CLOSED on a. */
    cmdipc_channel_t *bch = cmdipc_registry_channel(sc.b, "a");
    if (bch != NULL)
        (void)cmdipc_channel_close(bch);
    settle();

    if (!sc.fired)
        fprintf(stderr, "# %s/%s/%s: the event did not occur\n", mode_names[mode],
                event_names[event], action_names[action]);
    ASSERT(sc.fired);

    /* Close everything still open, and check every promise. */
    if (sc.a_closes == 0)
        close_registry(sc.a);
    if (sc.b_closes == 0)
        close_registry(sc.b);
    if (sc.c_closes == 0)
        close_registry(sc.c);
    ASSERT_LOOP_CLOSES(&sc.loop);
    ASSERT_EQ(sc.a_closed, sc.a_closes); /* each close callback exactly once */
    ASSERT_EQ(sc.b_closed, sc.b_closes);
    ASSERT_EQ(sc.c_closed, sc.c_closes);
    ASSERT_EQ(sc.responses, sc.execs); /* each execute's callback exactly once */
}

static void run_event(int event) {
    for (int mode = 0; mode < M__COUNT; mode++)
        for (int action = 0; action < A__COUNT; action++)
            run_scenario(mode, event, action);
}

/* ===========================================================================
 * The two sequences the review reproduced, on their own. */

static int minimal_closes, minimal_close_cbs;

static void minimal_close_cb(cmdipc_registry_t *r, void *data) {
    (void)r;
    (void)data;
    minimal_close_cbs++;
}

static void close_on_closed(cmdipc_registry_t *r, cmdipc_channel_t *ch,
                            cmdipc_channel_event_t ev, int status, void *data) {
    (void)ch;
    (void)status;
    (void)data;
    if (ev != CMDIPC_CHANNEL_CLOSED)
        return;
    minimal_closes++;
    cmdipc_registry_close(r, minimal_close_cb, NULL);
}

/* A registry with nothing else pending closes itself from the CLOSED
 * notification of a channel whose transport reported the close from a
 * timer, idle or async callback (what examples/multi-service.c does). */
TEST(close_registry_from_closed_with_nothing_pending) {
    for (int mode = 0; mode < M__COUNT; mode++) {
        uv_loop_t loop;
        cmdipc_registry_t *a, *b;
        cmdipc_channel_t *ab, *ba;
        minimal_closes = minimal_close_cbs = 0;
        ASSERT_OK(uv_loop_init(&loop));
        ASSERT_OK(cmdipc_registry_new(&loop, NULL, &a));
        ASSERT_OK(cmdipc_registry_new(&loop, NULL, &b));
        cmdipc_registry_set_channel_cb(a, close_on_closed, NULL);
        pt_pair(mode, "b", "a", &ab, &ba);
        ASSERT_OK(cmdipc_registry_attach(a, ab));
        ASSERT_OK(cmdipc_registry_attach(b, ba));
        for (int i = 0; i < 20; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
        ASSERT_OK(cmdipc_channel_close(ba)); /* a hears it from its transport */
        for (int i = 0; i < 20; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
        cmdipc_registry_close(b, NULL, NULL);
        ASSERT_LOOP_CLOSES(&loop);
        ASSERT_EQ(minimal_closes, 1);
        ASSERT_EQ(minimal_close_cbs, 1);
    }
}

/* In one loop turn: a send the transport refuses (the channel fails as a
 * slow consumer), the peer's end of input and a close by the application;
 * the transport reports the close from a timer on the next turn, before the
 * registry's queued tasks run. The channel must outlive every task queued
 * for it. */
typedef struct {
    cmdipc_channel_t *ch;
    uv_async_t async;
} storm_t;

static void storm_cb(uv_async_t *h) {
    storm_t *st = h->data;
    pt_end_t *e = cmdipc_channel_impl(st->ch);
    static const char list_req[] = "{\"id\":\"l1\",\"type\":\"list.commands.request\"}";
    e->refuse_sends = 1;
    cmdipc_channel_deliver_line(st->ch, list_req, sizeof(list_req) - 1); /* its answer fails */
    cmdipc_channel_eof(st->ch);
    (void)cmdipc_channel_close(st->ch);
    uv_close((uv_handle_t *)&st->async, NULL);
}

TEST(failure_eof_and_close_in_one_turn) {
    uv_loop_t loop;
    cmdipc_registry_t *a, *b;
    cmdipc_channel_t *ab, *ba;
    storm_t st;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(cmdipc_registry_new(&loop, NULL, &a));
    ASSERT_OK(cmdipc_registry_new(&loop, NULL, &b));
    pt_pair(M_TIMER, "b", "a", &ab, &ba);
    ASSERT_OK(cmdipc_registry_attach(a, ab));
    ASSERT_OK(cmdipc_registry_attach(b, ba));
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    st.ch = ab;
    st.async.data = &st;
    ASSERT_OK(uv_async_init(&loop, &st.async, storm_cb));
    ASSERT_OK(uv_async_send(&st.async)); /* runs in the poll phase, after idle */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ASSERT_NULL(cmdipc_registry_channel(a, "b"));
    cmdipc_registry_close(a, NULL, NULL);
    cmdipc_registry_close(b, NULL, NULL);
    ASSERT_LOOP_CLOSES(&loop);
}

TEST(from_attached) { run_event(E_ATTACHED); }
TEST(from_up) { run_event(E_UP); }
TEST(from_down) { run_event(E_DOWN); }
TEST(from_closed) { run_event(E_CLOSED); }
TEST(from_command_added) { run_event(E_CMD_ADDED); }
TEST(from_command_removed) { run_event(E_CMD_REMOVED); }
TEST(from_response) { run_event(E_RESPONSE); }
TEST(from_registered) { run_event(E_REGISTERED); }
TEST(from_handler) { run_event(E_HANDLER); }
TEST(from_listener) { run_event(E_LISTENER); }
TEST(from_list_answer) { run_event(E_LIST); }

TEST_LIST_BEGIN
TEST_ENTRY(close_registry_from_closed_with_nothing_pending)
TEST_ENTRY(failure_eof_and_close_in_one_turn)
TEST_ENTRY(from_attached)
TEST_ENTRY(from_up)
TEST_ENTRY(from_down)
TEST_ENTRY(from_closed)
TEST_ENTRY(from_command_added)
TEST_ENTRY(from_command_removed)
TEST_ENTRY(from_response)
TEST_ENTRY(from_registered)
TEST_ENTRY(from_handler)
TEST_ENTRY(from_listener)
TEST_ENTRY(from_list_answer)
TEST_LIST_END
