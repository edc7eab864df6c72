/* cmdipc — listening and connecting by URL: the scheme table and the part of
 * listeners every scheme shares. lib/ never calls into transports/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"

void cmdipc_listen_opts_init(cmdipc_listen_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_LISTEN_OPTS_VERSION;
    o->id_prefix = "conn-";
    o->max_connections = 1024;
    cmdipc_limits_init(&o->limits);
    o->max_send_queue = 8u * 1024 * 1024;
    o->write_stall_ms = 10000;
    o->soft_send_queue = 2u * 1024 * 1024;
    o->mode = 0600;
}

void cmdipc_connect_opts_init(cmdipc_connect_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_CONNECT_OPTS_VERSION;
    cmdipc_limits_init(&o->limits);
    o->max_send_queue = 8u * 1024 * 1024;
    o->reconnect = 1;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 30000;
    o->jitter_pct = 20;
    o->write_stall_ms = 10000;
    o->soft_send_queue = 2u * 1024 * 1024;
}

/* ---------------------------------------------------------------------------
 * Listeners. */

static void listener_res_close(cmdipc_resource_t *res) {
    cmdipc_listener_t *l = cmdipc_resource_impl(res);
    if (l->closing)
        return;
    l->closing = 1;
    l->close(l);
}

static const cmdipc_resource_ops_t listener_res_ops = {listener_res_close};

int cmdipc__listener_new(cmdipc_registry_t *r, const char *url,
                         const cmdipc_listen_opts_t *opts, cmdipc_listener_t **out) {
    cmdipc_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return UV_ENOMEM;
    if (opts != NULL)
        l->opts = *opts;
    else
        cmdipc_listen_opts_init(&l->opts);
    l->reg = r;
    l->url = strdup(url);
    l->prefix = strdup(l->opts.id_prefix ? l->opts.id_prefix : "conn-");
    l->accept_cb = l->opts.accept_cb;
    l->accept_data = l->opts.accept_data;
    if (l->url == NULL || l->prefix == NULL) {
        free(l->url);
        free(l->prefix);
        free(l);
        return UV_ENOMEM;
    }
    *out = l;
    return 0;
}

static void listener_free(cmdipc_listener_t *l) {
    free(l->url);
    free(l->prefix);
    free(l);
}

void cmdipc__listener_closed(cmdipc_listener_t *l) {
    if (l->res != NULL)
        cmdipc_resource_closed(l->res);
    listener_free(l);
}

int cmdipc__listener_name(cmdipc_listener_t *l, const cmdipc_peer_info_t *peer, char *buf,
                          size_t size) {
    buf[0] = '\0';
    if (l->accept_cb != NULL) {
        int rc = l->accept_cb(l, peer, buf, size, l->accept_data);
        if (rc != 0)
            return rc < 0 ? rc : CMDIPC_EPEERREJECTED;
        buf[size - 1] = '\0';
        if (buf[0] != '\0')
            return cmdipc_id_check(buf);
    }
    /* Unique in the registry, even with several listeners sharing a prefix. */
    do
        snprintf(buf, size, "%s%llu", l->prefix, (unsigned long long)++l->counter);
    while (cmdipc_registry_channel(l->reg, buf) != NULL);
    return 0;
}

void cmdipc_listener_close(cmdipc_listener_t *l) {
    if (l == NULL || l->closing)
        return;
    listener_res_close(l->res);
}

int cmdipc_listener_url(const cmdipc_listener_t *l, char *buf, size_t size) {
    size_t n = strlen(l->url);
    if (n + 1 > size)
        return UV_ENOBUFS;
    memcpy(buf, l->url, n + 1);
    return 0;
}

cmdipc_registry_t *cmdipc_listener_registry(const cmdipc_listener_t *l) { return l->reg; }

/* ---------------------------------------------------------------------------
 * The scheme table. */

static int has_scheme(const char *url, const char *scheme, const char **rest) {
    size_t n = strlen(scheme);
    if (strncmp(url, scheme, n) != 0)
        return 0;
    *rest = url + n;
    return 1;
}

int cmdipc_listen(cmdipc_registry_t *r, const char *url, const cmdipc_listen_opts_t *opts,
                  cmdipc_listener_t **out) {
    const char *rest;
    cmdipc_listener_t *l;
    int rc;
    if (out != NULL)
        *out = NULL;
    if (r == NULL || url == NULL ||
        (opts != NULL && (opts->version == 0 || opts->version > CMDIPC_LISTEN_OPTS_VERSION ||
                          !cmdipc_limits_valid(&opts->limits))))
        return UV_EINVAL;
    if (cmdipc_registry_is_closing(r))
        return CMDIPC_ECLOSED;
    if ((rc = cmdipc__listener_new(r, url, opts, &l)) != 0)
        return rc;
    if (has_scheme(url, "inproc://", &rest))
        rc = cmdipc__inproc_listen(l, rest);
    else if (has_scheme(url, "unix://", &rest))
        rc = cmdipc__unix_listen(l, rest);
    else if (has_scheme(url, "tcp://", &rest))
        rc = cmdipc__tcp_listen(l, rest);
    else if (has_scheme(url, "fd://", &rest))
        rc = cmdipc__fd_listen(l, rest);
    else if (has_scheme(url, "unix+sodium://", &rest)) /* secure: net.c reads l->url */
        rc = cmdipc__unix_listen(l, rest);
    else if (has_scheme(url, "tcp+sodium://", &rest))
        rc = cmdipc__tcp_listen(l, rest);
    else if (strstr(url, "://") == NULL)
        rc = UV_EINVAL;
    else
        rc = UV_EAFNOSUPPORT;
    if (rc == 0) {
        rc = cmdipc_resource_add(r, &listener_res_ops, l, &l->res);
        if (rc != 0) { /* the registry is closing: undo */
            l->closing = 1;
            l->close(l);
            return rc;
        }
    } else {
        listener_free(l);
        return rc;
    }
    if (out != NULL)
        *out = l;
    return 0;
}

int cmdipc_connect(cmdipc_registry_t *r, const char *url, const char *channel_id,
                   const cmdipc_connect_opts_t *opts, cmdipc_channel_t **out) {
    const char *rest;
    if (out != NULL)
        *out = NULL;
    if (r == NULL || url == NULL || cmdipc_id_check(channel_id) ||
        (opts != NULL && (opts->version == 0 || opts->version > CMDIPC_CONNECT_OPTS_VERSION ||
                          !cmdipc_limits_valid(&opts->limits))))
        return UV_EINVAL;
    if (cmdipc_registry_is_closing(r))
        return CMDIPC_ECLOSED;
    if (cmdipc_registry_channel(r, channel_id) != NULL)
        return UV_EEXIST;
    if (has_scheme(url, "inproc://", &rest))
        return rest[0] ? cmdipc__inproc_connect(r, rest, channel_id, out) : UV_EINVAL;
    if (has_scheme(url, "unix://", &rest) || has_scheme(url, "tcp://", &rest) ||
        has_scheme(url, "unix+sodium://", &rest) ||
        has_scheme(url, "tcp+sodium://", &rest))
        return cmdipc__net_connect(r, url, channel_id, opts, out);
    if (has_scheme(url, "stdio://", &rest))
        return rest[0] ? UV_EINVAL : cmdipc__stdio_connect(r, channel_id, opts, out);
    if (strstr(url, "://") == NULL)
        return UV_EINVAL;
    return UV_EAFNOSUPPORT;
}

void cmdipc_listener_ref(cmdipc_listener_t *l) {
    if (l != NULL && !l->closing && l->set_ref != NULL)
        l->set_ref(l, 1);
}

void cmdipc_listener_unref(cmdipc_listener_t *l) {
    if (l != NULL && !l->closing && l->set_ref != NULL)
        l->set_ref(l, 0);
}
