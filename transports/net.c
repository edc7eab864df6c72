/* cmdipc — unix:// and tcp://: listeners (socket permissions, stale socket
 * reclaim, peer credentials and policy, connection cap) and reconnecting
 * dialers (exponential backoff with jitter). The bytes are stream.c's. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "secure_int.h"
#include "transport_int.h"

#define UNIX_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* ---------------------------------------------------------------------------
 * Addresses. */

/* Splits "host:port", "[v6]:port", ":port" into host and port. */
static int split_hostport(const char *hp, char *host, size_t hsize, int *port) {
    const char *colon;
    size_t hlen;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (end == NULL || end[1] != ':')
            return UV_EINVAL;
        hlen = (size_t)(end - hp - 1);
        if (hlen >= hsize)
            return UV_EINVAL;
        memcpy(host, hp + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL)
            return UV_EINVAL;
        hlen = (size_t)(colon - hp);
        if (hlen >= hsize)
            return UV_EINVAL;
        memcpy(host, hp, hlen);
    }
    host[hlen] = '\0';
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || p < 0 || p > 65535)
        return UV_EINVAL;
    *port = (int)p;
    return 0;
}

/* A numeric address (IPv4, IPv6, "localhost", "" or "*" for any). */
static int numeric_addr(const char *host, int port, struct sockaddr_storage *ss) {
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        host = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return UV_EINVAL;
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t size) {
    char ip[64] = "";
    int port = 0;
    if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        snprintf(buf, size, "[%s]:%d", ip, port);
    } else {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        snprintf(buf, size, "%s:%d", ip, port);
    }
}

static void tcp_tune(uv_tcp_t *t) {
    uv_tcp_nodelay(t, 1);
    uv_tcp_keepalive(t, 1, 60);
}

static void fill_peer(cmdipc__link_t *link, cmdipc__conn_t *c, int is_unix) {
    link->peer.remote = link->remote;
    if (is_unix) {
        uv_os_fd_t fd;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (uv_fileno(&c->rio.handle, &fd) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            link->peer.has_creds = 1;
            link->peer.uid = cred.uid;
            link->peer.gid = cred.gid;
            link->peer.pid = cred.pid;
            snprintf(link->remote, sizeof(link->remote), "pid %d uid %u", (int)cred.pid,
                     (unsigned)cred.uid);
        }
    } else {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (uv_tcp_getpeername(&c->rio.tcp, (struct sockaddr *)&ss, &len) == 0)
            format_addr((struct sockaddr *)&ss, link->remote, sizeof(link->remote));
    }
}

/* ---------------------------------------------------------------------------
 * Listeners. */

typedef struct net_listener_s {
    cmdipc_listener_t *l;
    cmdipc__stream_handle_t server;
    int is_unix;
    char *path;
    dev_t dev;
    ino_t ino;
    unsigned nconns;
    cmdipc__queue_t links;
    cmdipc__stream_limits_t lim;
    uint32_t *uids;
    size_t n_uids;
    cmdipc__secure_cfg_t *secure; /* +sodium */
} net_listener_t;

static void accepted_conn_closed(cmdipc__link_t *link, int status) {
    if (link->listener != NULL) {
        net_listener_t *nl = link->listener->impl;
        cmdipc__queue_remove(&link->listener_link);
        nl->nconns--;
        link->listener = NULL;
    }
    link->close_status = status;
    cmdipc__link_settle(link);
}

/* Drops a connection that never became a channel. */
static void refuse(cmdipc__link_t *link) {
    cmdipc__conn_t *c = link->conn;
    link->conn = NULL;
    c->link = NULL;
    cmdipc__conn_close(c, 0, 0);
    free(link);
}

static int uid_allowed(const net_listener_t *nl, const cmdipc_peer_info_t *p) {
    const cmdipc_listen_opts_t *o = &nl->l->opts;
    if (!o->same_uid_only && nl->n_uids == 0)
        return 1;
    if (!p->has_creds)
        return 0;
    if (o->same_uid_only && p->uid == (uint32_t)geteuid())
        return 1;
    for (size_t i = 0; i < nl->n_uids; i++)
        if (nl->uids[i] == p->uid)
            return 1;
    return 0;
}

static void accept_finish(net_listener_t *nl, cmdipc__link_t *link);

/* +sodium: the handshake's outcome (secure.c). */
static void accepted_secure_done(cmdipc__link_t *link, int status) {
    if (status != 0) {
        refuse(link);
        return;
    }
    accept_finish(link->kind_data, link);
}

static void connection_cb(uv_stream_t *server, int status) {
    net_listener_t *nl = server->data;
    cmdipc_listener_t *l = nl->l;
    cmdipc_registry_t *r = l->reg;
    if (status < 0) {
        /* EMFILE and friends: libuv already dropped the pending connection. */
        cmdipc_log(r, CMDIPC_LOG_WARN, "%s: accept failed: %s", l->url,
                    cmdipc_strerror(status));
        return;
    }
    cmdipc__link_t *link = cmdipc__link_new(CMDIPC__LINK_ACCEPTED, &nl->lim);
    cmdipc__conn_t *c = link ? cmdipc__conn_new(link, server->loop) : NULL;
    if (c == NULL) {
        free(link);
        cmdipc_log(r, CMDIPC_LOG_ERROR, "%s: out of memory accepting", l->url);
        return;
    }
    link->conn = c;
    link->conn_closed = accepted_conn_closed;
    if (nl->is_unix)
        uv_pipe_init(server->loop, &c->rio.pipe, 0);
    else
        uv_tcp_init(server->loop, &c->rio.tcp);
    cmdipc__conn_handles_ready(c);
    int rc = uv_accept(server, c->rs);
    if (rc != 0) {
        cmdipc_log(r, CMDIPC_LOG_WARN, "%s: accept: %s", l->url, cmdipc_strerror(rc));
        refuse(link);
        return;
    }
    if (!nl->is_unix)
        tcp_tune(&c->rio.tcp);
    fill_peer(link, c, nl->is_unix);
    link->peer.url = l->url;
    if (nl->secure != NULL) {
        /* +sodium: the channel is made once the peer's key is proven. */
        const char *why = NULL;
        if (l->closing)
            why = "listener closing";
        else if (l->opts.max_connections && nl->nconns >= l->opts.max_connections)
            why = "too many connections";
        else if (!uid_allowed(nl, &link->peer))
            why = "peer uid not allowed";
        if (why == NULL) {
            link->secure = 1;
            link->kind_data = nl;
            if (cmdipc__secure_start(nl->secure, c, 0, accepted_secure_done) == 0)
                return;
            why = "out of memory";
        }
        cmdipc_log(r, CMDIPC_LOG_INFO, "%s: connection from %s refused: %s", l->url,
                    link->remote[0] ? link->remote : "?", why);
        refuse(link);
        return;
    }
    accept_finish(nl, link);
}

/* Names the connection and makes it a channel. */
static void accept_finish(net_listener_t *nl, cmdipc__link_t *link) {
    cmdipc_listener_t *l = nl->l;
    cmdipc_registry_t *r = l->reg;
    char name[256];
    int rc;
    const char *why = NULL;
    if (l->closing)
        why = "listener closing";
    else if (l->opts.max_connections && nl->nconns >= l->opts.max_connections)
        why = "too many connections";
    else if (!uid_allowed(nl, &link->peer))
        why = "peer uid not allowed";
    else if ((rc = cmdipc__listener_name(l, &link->peer, name, sizeof(name))) != 0)
        why = rc == CMDIPC_EPEERREJECTED || rc < 0 ? "refused by the accept callback" : "";
    if (why != NULL) {
        cmdipc_log(r, CMDIPC_LOG_INFO, "%s: connection from %s refused: %s", l->url,
                    link->remote[0] ? link->remote : "?", why);
        refuse(link);
        return;
    }
    cmdipc_channel_t *ch;
    rc = cmdipc_channel_new(name, &cmdipc__stream_ops, link, &ch);
    if (rc != 0) {
        refuse(link);
        return;
    }
    link->ch = ch;
    cmdipc_channel_set_limits(ch, &nl->lim.limits);
    rc = cmdipc_registry_attach(r, ch);
    if (rc != 0) {
        cmdipc_log(r, CMDIPC_LOG_WARN, "%s: connection %s refused: %s", l->url, name,
                    cmdipc_strerror(rc));
        cmdipc_channel_free(ch); /* closes the connection */
        return;
    }
    link->listener = l;
    cmdipc__queue_insert_tail(&nl->links, &link->listener_link);
    nl->nconns++;
    cmdipc_log(r, CMDIPC_LOG_INFO, "%s: accepted %s as channel %s", l->url,
                link->remote[0] ? link->remote : "a connection", name);
    cmdipc__link_attached(link);
}

static void listener_free(net_listener_t *nl) {
    cmdipc__secure_cfg_free(nl->secure);
    free(nl->path);
    free(nl->uids);
    free(nl);
}

static void server_closed(uv_handle_t *h) {
    net_listener_t *nl = h->data;
    cmdipc_listener_t *l = nl->l;
    if (nl->is_unix && nl->path != NULL) {
        /* Remove our socket file, not one somebody put there since. */
        struct stat st;
        if (lstat(nl->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == nl->ino &&
            st.st_dev == nl->dev)
            unlink(nl->path);
    }
    while (!cmdipc__queue_empty(&nl->links)) {
        cmdipc__link_t *link =
            cmdipc__container_of(nl->links.next, cmdipc__link_t, listener_link);
        cmdipc__queue_remove(&link->listener_link);
        link->listener = NULL;
    }
    listener_free(nl);
    if (l != NULL)
        cmdipc__listener_closed(l);
}

static void net_listener_close(cmdipc_listener_t *l) {
    net_listener_t *nl = l->impl;
    if (nl->secure != NULL)
        cmdipc__secure_abort_all(nl->secure); /* handshakes in progress */
    nl->server.handle.data = nl;
    uv_close(&nl->server.handle, server_closed);
}

static void net_listener_set_ref(cmdipc_listener_t *l, int ref) {
    net_listener_t *nl = l->impl;
    if (uv_is_closing(&nl->server.handle))
        return;
    if (ref)
        uv_ref(&nl->server.handle);
    else
        uv_unref(&nl->server.handle);
}

static net_listener_t *net_listener_new(cmdipc_listener_t *l, int is_unix) {
    net_listener_t *nl = calloc(1, sizeof(*nl));
    if (nl == NULL)
        return NULL;
    nl->l = l;
    nl->is_unix = is_unix;
    cmdipc__queue_init(&nl->links);
    cmdipc__stream_limits_default(&nl->lim);
    nl->lim.limits = l->opts.limits;
    if (l->opts.max_send_queue)
        nl->lim.max_send_queue = l->opts.max_send_queue;
    if (l->opts.soft_send_queue)
        nl->lim.soft_send_queue = l->opts.soft_send_queue;
    if (l->opts.write_stall_ms)
        nl->lim.write_stall_ms = l->opts.write_stall_ms;
    if (l->opts.n_allowed_uids > 0 && l->opts.allowed_uids != NULL) {
        nl->uids = malloc(l->opts.n_allowed_uids * sizeof(*nl->uids));
        if (nl->uids == NULL) {
            free(nl);
            return NULL;
        }
        memcpy(nl->uids, l->opts.allowed_uids, l->opts.n_allowed_uids * sizeof(*nl->uids));
        nl->n_uids = l->opts.n_allowed_uids;
    }
    return nl;
}

/* +sodium://: the keys and policy of the listener's handshakes. */
static int secure_setup(net_listener_t *nl) {
    cmdipc_listener_t *l = nl->l;
    if (strstr(l->url, "+sodium://") == NULL)
        return 0;
    if (l->opts.version < 2 || l->opts.secure == NULL)
        return UV_EINVAL;
    return cmdipc__secure_cfg_new(l->reg, l->opts.secure, 0, &nl->secure);
}

cmdipc__secure_cfg_t *cmdipc__net_listener_secure(cmdipc_listener_t *l) {
    net_listener_t *nl = l->impl;
    return strstr(l->url, "+sodium://") != NULL && nl != NULL ? nl->secure : NULL;
}

/* A failed listen: the handle was initialised, so it is closed (the
 * listener base is freed by the caller). */
static int listen_fail(net_listener_t *nl, int rc) {
    nl->l = NULL;
    free(nl->path);
    nl->path = NULL; /* never unlink on a failed listen */
    nl->server.handle.data = nl;
    uv_close(&nl->server.handle, server_closed);
    return rc;
}

/* EADDRINUSE on bind: a socket file nobody accepts on is stale and is
 * removed; a live socket or anything that is not a socket is left alone. */
static int reclaim_stale(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return UV_EADDRINUSE;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return UV_EADDRINUSE;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    int err = errno;
    close(fd);
    if (rc == 0 || err != ECONNREFUSED)
        return UV_EADDRINUSE; /* somebody is listening (or we cannot tell) */
    return unlink(path) == 0 ? 0 : UV_EADDRINUSE;
}

int cmdipc__unix_listen(cmdipc_listener_t *l, const char *path) {
    uv_loop_t *loop = cmdipc_registry_loop(l->reg);
    if (path[0] == '\0')
        return UV_EINVAL;
    if (strlen(path) >= UNIX_PATH_MAX)
        return UV_ENAMETOOLONG; /* libuv 1.44 would truncate it silently */
    net_listener_t *nl = net_listener_new(l, 1);
    if (nl == NULL || (nl->path = strdup(path)) == NULL) {
        if (nl)
            listener_free(nl);
        return UV_ENOMEM;
    }
    int rc = secure_setup(nl);
    if (rc != 0) {
        listener_free(nl);
        return rc;
    }
    rc = uv_pipe_init(loop, &nl->server.pipe, 0);
    if (rc != 0) {
        listener_free(nl);
        return rc;
    }
    nl->server.handle.data = nl;
    rc = uv_pipe_bind(&nl->server.pipe, path);
    if (rc == UV_EADDRINUSE && reclaim_stale(path) == 0) {
        cmdipc_log(l->reg, CMDIPC_LOG_INFO, "%s: removed a stale socket", l->url);
        rc = uv_pipe_bind(&nl->server.pipe, path);
    }
    if (rc != 0)
        return listen_fail(nl, rc);
    /* Before listen() nobody can connect, so the mode is set in time. */
    if (chmod(path, (mode_t)(l->opts.mode ? l->opts.mode : 0600)) != 0) {
        rc = uv_translate_sys_error(errno);
        unlink(path);
        return listen_fail(nl, rc);
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        nl->dev = st.st_dev;
        nl->ino = st.st_ino;
    }
    rc = uv_listen(&nl->server.stream, 511, connection_cb);
    if (rc != 0) {
        unlink(path);
        return listen_fail(nl, rc);
    }
    l->impl = nl;
    l->close = net_listener_close;
    l->set_ref = net_listener_set_ref;
    return 0;
}

int cmdipc__tcp_listen(cmdipc_listener_t *l, const char *hostport) {
    uv_loop_t *loop = cmdipc_registry_loop(l->reg);
    char host[256];
    int port;
    struct sockaddr_storage ss;
    int rc = split_hostport(hostport, host, sizeof(host), &port);
    if (rc == 0)
        rc = numeric_addr(host, port, &ss);
    if (rc != 0)
        return rc;
    net_listener_t *nl = net_listener_new(l, 0);
    if (nl == NULL)
        return UV_ENOMEM;
    if ((rc = secure_setup(nl)) != 0) {
        listener_free(nl);
        return rc;
    }
    rc = uv_tcp_init(loop, &nl->server.tcp);
    if (rc != 0) {
        listener_free(nl);
        return rc;
    }
    nl->server.handle.data = nl;
    rc = uv_tcp_bind(&nl->server.tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen(&nl->server.stream, 511, connection_cb);
    if (rc != 0)
        return listen_fail(nl, rc);
    /* The address actually bound (port 0 picks one). */
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&nl->server.tcp, (struct sockaddr *)&ss, &len) == 0) {
        char addr[96], url[128];
        format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
        snprintf(url, sizeof(url), "%s://%s", nl->secure ? "tcp+sodium" : "tcp", addr);
        char *u = strdup(url);
        if (u != NULL) {
            free(l->url);
            l->url = u;
        }
    }
    l->impl = nl;
    l->close = net_listener_close;
    l->set_ref = net_listener_set_ref;
    return 0;
}

/* fd://N: a socket already bound and listening, inherited (systemd socket
 * activation passes them from fd 3 on: LISTEN_FDS) or made by the
 * application. The listener takes it over on success (it works on a
 * duplicate and closes N); on failure N stays the caller's, open. A Unix
 * socket keeps its file on close (it is not ours to remove). */
int cmdipc__fd_listen(cmdipc_listener_t *l, const char *rest) {
    uv_loop_t *loop = cmdipc_registry_loop(l->reg);
    char *end;
    long n = strtol(rest, &end, 10);
    if (rest[0] == '\0' || *end != '\0' || n < 0 || n > INT_MAX)
        return UV_EINVAL;
    int fd = (int)n, listening = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss), il = sizeof(listening);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return uv_translate_sys_error(errno); /* EBADF, ENOTSOCK */
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &il) != 0 || !listening)
        return UV_EINVAL; /* a socket, but not a listening one */
    int is_unix = ss.ss_family == AF_UNIX;
    if (!is_unix && ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        return UV_EAFNOSUPPORT;
    net_listener_t *nl = net_listener_new(l, is_unix);
    if (nl == NULL)
        return UV_ENOMEM;
    int rc = secure_setup(nl);
    if (rc != 0) {
        listener_free(nl);
        return rc;
    }
    int mine = dup(fd);
    if (mine < 0) {
        listener_free(nl);
        return uv_translate_sys_error(errno);
    }
    rc = is_unix ? uv_pipe_init(loop, &nl->server.pipe, 0) : uv_tcp_init(loop, &nl->server.tcp);
    if (rc != 0) {
        close(mine);
        listener_free(nl);
        return rc;
    }
    nl->server.handle.data = nl;
    rc = is_unix ? uv_pipe_open(&nl->server.pipe, mine) : uv_tcp_open(&nl->server.tcp, mine);
    if (rc != 0)
        close(mine); /* not the handle's */
    if (rc == 0)
        rc = uv_listen(&nl->server.stream, 511, connection_cb);
    if (rc != 0)
        return listen_fail(nl, rc);
    close(fd);
    l->impl = nl;
    l->close = net_listener_close;
    l->set_ref = net_listener_set_ref;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Dialers: one channel, reconnected with backoff until closed. */

typedef struct dialer_s {
    cmdipc__link_t *link;
    uv_loop_t *loop;
    int is_unix;
    char *path;
    char host[256];
    int port;
    cmdipc_connect_opts_t opts;
    uv_timer_t retry;
    uv_getaddrinfo_t gai;
    int resolving;
    unsigned attempt;
    cmdipc__secure_cfg_t *secure; /* +sodium */
} dialer_t;

static void dial(dialer_t *d);

static void dialer_maybe_report(cmdipc__link_t *link) { cmdipc__link_settle(link); }

static void retry_closed(uv_handle_t *h) {
    dialer_t *d = h->data;
    d->link->busy--;
    dialer_maybe_report(d->link);
}

/* Stops for good: no more attempts; the channel closes with status. */
static void dialer_stop(dialer_t *d, int status) {
    cmdipc__link_t *link = d->link;
    if (!link->closing) {
        link->closing = 1;
        link->close_status = status;
    }
    if (d->resolving)
        uv_cancel((uv_req_t *)&d->gai);
    if (!uv_is_closing((uv_handle_t *)&d->retry)) {
        d->retry.data = d;
        uv_close((uv_handle_t *)&d->retry, retry_closed);
    }
}

static void retry_cb(uv_timer_t *t) {
    dialer_t *d = t->data;
    dial(d);
}

static void dialer_conn_closed(cmdipc__link_t *link, int status) {
    dialer_t *d = link->kind_data;
    cmdipc_registry_t *r = link->ch ? cmdipc_channel_registry(link->ch) : NULL;
    if (link->closing) {
        dialer_maybe_report(link);
        return;
    }
    if (link->was_up) {
        link->was_up = 0;
        cmdipc_channel_link_down(link->ch, status ? status : UV_EOF);
    }
    if (!d->opts.reconnect || status == CMDIPC_EPEERREJECTED) {
        /* The listener refused our key: final, never retried. */
        dialer_stop(d, status ? status : UV_EOF);
        return;
    }
    uint64_t delay = cmdipc__backoff_ms(d->attempt++, d->opts.reconnect_min_ms,
                                        d->opts.reconnect_max_ms, d->opts.jitter_pct,
                                        (double)randombytes_uniform(1000000) / 1e6);
    if (r != NULL)
        cmdipc_log(r, CMDIPC_LOG_INFO, "channel %s: %s; reconnecting in %llu ms",
                    cmdipc_channel_id(link->ch), cmdipc_strerror(status),
                    (unsigned long long)delay);
    d->retry.data = d;
    uv_timer_start(&d->retry, retry_cb, delay, 0);
}

/* The link is usable: start reading and bring the channel up. */
static void dialer_up(cmdipc__link_t *link) {
    dialer_t *d = link->kind_data;
    if (cmdipc__conn_start(link->conn) != 0) {
        cmdipc__conn_close(link->conn, 0, UV_EIO);
        return;
    }
    d->attempt = 0;
    link->was_up = 1;
    cmdipc_channel_link_up(link->ch);
}

/* +sodium: the handshake's outcome (secure.c). */
static void dialer_secure_done(cmdipc__link_t *link, int status) {
    if (status != 0)
        cmdipc__conn_close(link->conn, 0, status);
    else
        dialer_up(link);
}

static void connect_cb(uv_connect_t *req, int status) {
    cmdipc__conn_t *c = req->data;
    cmdipc__link_t *link = c->link;
    c->connecting = 0;
    if (status == UV_ECANCELED)
        return; /* closing: the conn's close reaches the link */
    if (link == NULL || c->state != 0) {
        /* Closed while connecting: a graceful close's shutdown would wait
         * for a connection that never carried anything; end it now. */
        cmdipc__conn_close(c, 0, 0);
        return;
    }
    dialer_t *d = link->kind_data;
    if (status < 0) {
        cmdipc__conn_close(c, 0, status);
        return;
    }
    if (!d->is_unix)
        tcp_tune(&c->rio.tcp);
    fill_peer(link, c, d->is_unix);
    if (d->secure != NULL) {
        if (cmdipc__secure_start(d->secure, c, 1, dialer_secure_done) != 0)
            cmdipc__conn_close(c, 0, UV_ENOMEM);
        return;
    }
    dialer_up(link);
}

static void connect_addr(dialer_t *d, const struct sockaddr *sa) {
    cmdipc__link_t *link = d->link;
    cmdipc__conn_t *c = link->conn;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->rio.tcp, sa, connect_cb);
    if (rc != 0)
        cmdipc__conn_close(c, 0, rc);
    else
        c->connecting = 1;
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    dialer_t *d = req->data;
    cmdipc__link_t *link = d->link;
    d->resolving = 0;
    link->busy--;
    if (link->closing || status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        if (link->conn != NULL)
            cmdipc__conn_close(link->conn, 0, status ? status : UV_EAI_NONAME);
        else
            dialer_maybe_report(link);
        return;
    }
    connect_addr(d, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void dial(dialer_t *d) {
    cmdipc__link_t *link = d->link;
    if (link->closing || link->conn != NULL)
        return;
    cmdipc__conn_t *c = cmdipc__conn_new(link, d->loop);
    if (c == NULL) {
        dialer_conn_closed(link, UV_ENOMEM);
        return;
    }
    link->conn = c;
    if (d->is_unix) {
        uv_pipe_init(d->loop, &c->rio.pipe, 0);
        cmdipc__conn_handles_ready(c);
        c->creq.data = c;
        c->connecting = 1;
        uv_pipe_connect(&c->creq, &c->rio.pipe, d->path, connect_cb);
        return;
    }
    uv_tcp_init(d->loop, &c->rio.tcp);
    cmdipc__conn_handles_ready(c);
    struct sockaddr_storage ss;
    if (numeric_addr(d->host, d->port, &ss) == 0) {
        connect_addr(d, (struct sockaddr *)&ss);
        return;
    }
    char port[16];
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", d->port);
    d->gai.data = d;
    int rc = uv_getaddrinfo(d->loop, &d->gai, gai_cb, d->host, port, &hints);
    if (rc != 0) {
        cmdipc__conn_close(c, 0, rc);
        return;
    }
    d->resolving = 1;
    link->busy++;
}

static void dialer_closing(cmdipc__link_t *link) { dialer_stop(link->kind_data, 0); }

static void dialer_ref(cmdipc__link_t *link, int ref) {
    dialer_t *d = link->kind_data;
    (void)ref;
    cmdipc__link_apply_ref(link, (uv_handle_t *)&d->retry);
}

static void dialer_free(cmdipc__link_t *link) {
    dialer_t *d = link->kind_data;
    cmdipc__secure_cfg_free(d->secure);
    free(d->path);
    free(d);
}

int cmdipc__net_connect(cmdipc_registry_t *r, const char *url, const char *channel_id,
                        const cmdipc_connect_opts_t *opts, cmdipc_channel_t **out) {
    cmdipc_connect_opts_t defaults;
    cmdipc__stream_limits_t lim;
    int is_unix = strncmp(url, "unix", 4) == 0;
    int secure = strstr(url, "+sodium://") != NULL;
    const char *rest = strstr(url, "://") + 3;
    int rc;

    if (opts == NULL) {
        cmdipc_connect_opts_init(&defaults);
        opts = &defaults;
    }
    dialer_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return UV_ENOMEM;
    d->opts = *opts;
    d->is_unix = is_unix;
    d->loop = cmdipc_registry_loop(r);
    if (is_unix) {
        if (rest[0] == '\0')
            rc = UV_EINVAL;
        else if (strlen(rest) >= UNIX_PATH_MAX)
            rc = UV_ENAMETOOLONG;
        else
            rc = (d->path = strdup(rest)) ? 0 : UV_ENOMEM;
    } else {
        rc = split_hostport(rest, d->host, sizeof(d->host), &d->port);
        if (rc == 0 && (d->host[0] == '\0' || d->port == 0))
            rc = UV_EINVAL;
    }
    if (rc == 0 && secure)
        rc = opts->version < 2 || opts->secure == NULL
                 ? UV_EINVAL
                 : cmdipc__secure_cfg_new(r, opts->secure, 1, &d->secure);
    if (rc != 0) {
        free(d->path);
        free(d);
        return rc;
    }
    cmdipc__stream_limits_default(&lim);
    lim.limits = opts->limits;
    if (opts->max_send_queue)
        lim.max_send_queue = opts->max_send_queue;
    if (opts->soft_send_queue)
        lim.soft_send_queue = opts->soft_send_queue;
    if (opts->write_stall_ms)
        lim.write_stall_ms = opts->write_stall_ms;
    cmdipc__link_t *link = cmdipc__link_new(CMDIPC__LINK_DIALER, &lim);
    cmdipc_channel_t *ch = NULL;
    if (link == NULL || (link->url = strdup(url)) == NULL ||
        (rc = cmdipc_channel_new(channel_id, &cmdipc__stream_ops, link, &ch)) != 0) {
        if (link)
            free(link->url);
        free(link);
        cmdipc__secure_cfg_free(d->secure);
        free(d->path);
        free(d);
        return rc ? rc : UV_ENOMEM;
    }
    link->secure = secure;
    d->link = link;
    link->ch = ch;
    link->kind_data = d;
    link->peer.url = link->url;
    link->conn_closed = dialer_conn_closed;
    link->closing_hook = dialer_closing;
    link->ref_hook = dialer_ref;
    link->free_hook = dialer_free;
    uv_timer_init(d->loop, &d->retry);
    link->busy++;
    cmdipc_channel_set_limits(ch, &lim.limits);
    cmdipc_channel_link_down(ch, 0); /* down until connected */
    rc = cmdipc_registry_attach(r, ch);
    if (rc != 0) {
        /* Never attached: free the channel once the timer has closed. */
        link->closing = 1;
        link->reported = 1;
        d->retry.data = d;
        uv_close((uv_handle_t *)&d->retry, retry_closed);
        cmdipc_channel_free(ch);
        return rc;
    }
    dial(d);
    if (out != NULL)
        *out = ch;
    return 0;
}
