/* cmdipc — channels over streams the application already has
 * (cmdipc_adopt, cmdipc_adopt_fd): the NDJSON stream layer on handles or
 * descriptors it did not open itself. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport_int.h"

void cmdipc_adopt_opts_init(cmdipc_adopt_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->version = CMDIPC_ADOPT_OPTS_VERSION;
    cmdipc_limits_init(&o->limits);
    o->max_send_queue = 8u * 1024 * 1024;
    o->soft_send_queue = 2u * 1024 * 1024;
    o->write_stall_ms = 10000;
}

static void adopted_conn_closed(cmdipc__link_t *link, int status) {
    link->close_status = status;
    cmdipc__link_settle(link);
}

static int check_args(cmdipc_registry_t *r, const char *channel_id,
                      const cmdipc_adopt_opts_t *opts) {
    if (r == NULL || cmdipc_id_check(channel_id) != 0 ||
        (opts != NULL && (opts->version == 0 || opts->version > CMDIPC_ADOPT_OPTS_VERSION ||
                          !cmdipc_limits_valid(&opts->limits))))
        return UV_EINVAL;
    if (cmdipc_registry_is_closing(r))
        return CMDIPC_ECLOSED;
    if (cmdipc_registry_channel(r, channel_id) != NULL)
        return UV_EEXIST;
    return 0;
}

/* The link and its conn, with the limits of opts; NULL when out of memory. */
static cmdipc__link_t *adopted_link(cmdipc_registry_t *r, const cmdipc_adopt_opts_t *opts) {
    cmdipc__stream_limits_t lim;
    cmdipc__stream_limits_default(&lim);
    if (opts != NULL) {
        lim.limits = opts->limits;
        if (opts->max_send_queue)
            lim.max_send_queue = opts->max_send_queue;
        if (opts->soft_send_queue)
            lim.soft_send_queue = opts->soft_send_queue;
        if (opts->write_stall_ms)
            lim.write_stall_ms = opts->write_stall_ms;
    }
    cmdipc__link_t *link = cmdipc__link_new(CMDIPC__LINK_ADOPTED, &lim);
    if (link == NULL)
        return NULL;
    cmdipc__conn_t *c = cmdipc__conn_new(link, cmdipc_registry_loop(r));
    if (c == NULL) {
        free(link);
        return NULL;
    }
    link->conn = c;
    link->conn_closed = adopted_conn_closed;
    link->peer.url = "adopted";
    return link;
}

/* Names, attaches and starts the link whose conn has its handles. On
 * failure everything is undone (the conn closed, handles given back). */
static int adopted_attach(cmdipc_registry_t *r, const char *channel_id, cmdipc__link_t *link,
                          cmdipc_channel_t **out) {
    cmdipc_channel_t *ch = NULL;
    cmdipc__conn_fill_peer(link, link->conn);
    int rc = cmdipc_channel_new(channel_id, &cmdipc__stream_ops, link, &ch);
    if (rc == 0) {
        link->ch = ch;
        cmdipc_channel_set_limits(ch, &link->lim.limits);
        rc = cmdipc_registry_attach(r, ch);
        if (rc != 0) {
            cmdipc_channel_free(ch); /* closes the conn, releases the link */
            return rc;
        }
        cmdipc__link_attached(link);
        if (out != NULL)
            *out = ch;
        return 0;
    }
    cmdipc__conn_t *c = link->conn;
    link->conn = NULL;
    c->link = NULL;
    cmdipc__conn_close(c, 0, rc);
    free(link);
    return rc;
}

int cmdipc_adopt(cmdipc_registry_t *r, const char *channel_id, uv_stream_t *rd,
                 uv_stream_t *wr, const cmdipc_adopt_opts_t *opts, cmdipc_channel_t **out) {
    if (out != NULL)
        *out = NULL;
    int rc = check_args(r, channel_id, opts);
    if (rc != 0)
        return rc;
    if (wr == NULL)
        wr = rd;
    uv_loop_t *loop = cmdipc_registry_loop(r);
    if (rd == NULL || rd->loop != loop || wr->loop != loop || !uv_is_readable(rd) ||
        !uv_is_writable(wr) || uv_is_closing((uv_handle_t *)rd) ||
        uv_is_closing((uv_handle_t *)wr) || uv_is_active((uv_handle_t *)rd))
        return UV_EINVAL;
    cmdipc__link_t *link = adopted_link(r, opts);
    if (link == NULL)
        return UV_ENOMEM;
    /* From here the streams are ours, whatever happens: a failure closes
     * them and gives them back through release_cb, as a close would. */
    cmdipc__conn_handles_external(link->conn, rd, wr, opts ? opts->release_cb : NULL,
                                  opts ? opts->release_data : NULL);
    return adopted_attach(r, channel_id, link, out);
}

int cmdipc_adopt_fd(cmdipc_registry_t *r, const char *channel_id, int rfd, int wfd,
                    const cmdipc_adopt_opts_t *opts, cmdipc_channel_t **out) {
    if (out != NULL)
        *out = NULL;
    int rc = check_args(r, channel_id, opts);
    if (rc != 0)
        return rc;
    if (wfd == rfd)
        wfd = -1;
    if (rfd < 0)
        return UV_EINVAL;
    /* The handles work on duplicates: on failure the caller's descriptors
     * are untouched; on success they are closed (cmdipc owns the streams). */
    int my_r = dup(rfd), my_w = wfd >= 0 ? dup(wfd) : -1;
    if (my_r < 0 || (wfd >= 0 && my_w < 0)) {
        if (my_r >= 0)
            close(my_r);
        return UV_EMFILE;
    }
    cmdipc__link_t *link = adopted_link(r, opts);
    if (link == NULL) {
        close(my_r);
        if (my_w >= 0)
            close(my_w);
        return UV_ENOMEM;
    }
    cmdipc__conn_t *c = link->conn;
    uv_loop_t *loop = cmdipc_registry_loop(r);
    c->two = my_w >= 0;
    int r_owned = 0, w_owned = 0;
    rc = cmdipc__open_fd_stream(loop, &c->rio, my_r, 1);
    r_owned = rc == 0;
    if (rc == 0 && c->two) {
        rc = cmdipc__open_fd_stream(loop, &c->wio, my_w, 0);
        w_owned = rc == 0;
    }
    cmdipc__conn_handles_ready(c);
    if (rc != 0) {
        if (!r_owned)
            close(my_r);
        if (my_w >= 0 && !w_owned)
            close(my_w);
        link->conn = NULL;
        c->link = NULL;
        cmdipc__conn_close(c, 0, rc); /* closes what the handles own */
        free(link);
        return rc;
    }
    rc = adopted_attach(r, channel_id, link, out);
    if (rc == 0) {
        close(rfd);
        if (wfd >= 0)
            close(wfd);
    }
    return rc;
}
