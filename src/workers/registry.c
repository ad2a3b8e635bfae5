/*
 * The worker registry: the PB listener, the list of live sessions, and what a
 * reconfig means for them.  Accepting is bounded by the guard (guard.c): the
 * port's share of file descriptors, and what strangers may hold before they
 * log in.  Each accepted socket gets TCP keepalive so a worker that vanished
 * without a FIN (a powered-off machine, a dropped NAT entry) is noticed within
 * minutes, as Buildbot relies on the same mechanism (SPEC 5.10).
 */
#include "workers/internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * TCP keepalive: first probe after this much idle time, then every interval;
 * and a bound on how long sent data may stay unacknowledged (keepalive probes
 * are not sent while data is in flight).  A dead peer is noticed in ~3 min.
 */
enum { KEEPALIVE_IDLE = 60, KEEPALIVE_INTERVAL = 20, KEEPALIVE_COUNT = 6 };
enum { UNACKED_TIMEOUT_MS = 180 * 1000 };

struct wk_registry *wk_registry_new(uv_loop_t *loop, const struct cfg *cfg)
{
    struct wk_registry *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->cfg = cfg;
    guard_init(r);
    return r;
}

void wk_set_events(struct wk_registry *r, const struct wk_events *ev)
{
    r->events = *ev;
}

static void hold_free(struct hold *h)
{
    free(h->worker);
    free(h->builder);
    free(h->builddir);
    free(h);
}

void registry_maybe_free(struct wk_registry *r)
{
    if (r->closing && r->sessions == NULL && r->listeners_open == 0 && r->timers_open == 0) {
        while (r->holds != NULL) {
            struct hold *h = r->holds;
            r->holds = h->next;
            hold_free(h);
        }
        free(r->listen_iface);
        tls_ctx_free(r->tls);
        free(r);
    }
}

static void listener_closed_cb(uv_handle_t *h)
{
    struct wk_registry *r = h->data;
    free(h);
    r->listeners_open--;
    registry_maybe_free(r);
}

static void close_listener(struct wk_registry *r)
{
    if (r->listener != NULL)
        uv_close((uv_handle_t *)r->listener, listener_closed_cb);
    r->listener = NULL;
    r->listen_port = 0;
}

void wk_close_all(struct wk_registry *r)
{
    close_listener(r);
    for (struct session *s = r->sessions; s != NULL; s = s->next)
        session_close(s, "master shutting down");
}

void wk_registry_free(struct wk_registry *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    wk_close_all(r);
    guard_close(r);
    registry_maybe_free(r);
}

void registry_remove(struct wk_registry *r, struct session *s)
{
    for (struct session **p = &r->sessions; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            r->n_sessions--;
            break;
        }
    }
    registry_maybe_free(r);
}

struct session *registry_find_attached(struct wk_registry *r, const char *name,
                                       const struct session *except)
{
    for (struct session *s = r->sessions; s != NULL; s = s->next) {
        if (s != except && s->state == SESSION_ATTACHED && util_streq(s->name, name))
            return s;
    }
    return NULL;
}

static void set_keepalive(uv_tcp_t *tcp)
{
    uv_tcp_keepalive(tcp, 1, KEEPALIVE_IDLE);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)tcp, &fd) != 0)
        return;
    int interval = KEEPALIVE_INTERVAL, count = KEEPALIVE_COUNT;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    unsigned int unacked = UNACKED_TIMEOUT_MS;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &unacked, sizeof unacked);
}

static void refused_closed_cb(uv_handle_t *h)
{
    free(h);
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct wk_registry *r = server->data;
    if (status < 0) {
        guard_count(r, GUARD_ACCEPT_ERROR, uv_strerror(status));
        return;
    }
    struct session *s = xcalloc(1, sizeof *s);
    uv_tcp_init(r->loop, &s->tcp);
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0 || r->closing ||
        guard_peer(&s->tcp, &s->addr, s->peer, sizeof s->peer) != 0 || !guard_admit(r, s)) {
        uv_close((uv_handle_t *)&s->tcp, refused_closed_cb);
        return;
    }
    set_keepalive(&s->tcp);
    uv_tcp_nodelay(&s->tcp, 1);
    s->next = r->sessions;
    r->sessions = s;
    r->n_sessions++;
    s->id = ++r->next_id;
    s->tls = r->tls != NULL ? tls_conn_new(r->tls) : NULL;
    session_start(r, s);
}

/* A context of `cfg`'s TLS files in *ctx (NULL for plain TCP), read again on every
   call so that a renewed certificate is taken by a reconfig; 0, or -1 when they cannot
   be loaded. */
static int tls_prepare(const struct cfg *cfg, struct tls_ctx **ctx, char **cause)
{
    *ctx = NULL;
    if (cfg->pb_tls_key == NULL)
        return 0;
    *ctx = tls_server_ctx(cfg->pb_tls_cert, cfg->pb_tls_key, cfg->pb_tls_chain, cause);
    return *ctx != NULL ? 0 : -1;
}

/* The connections accepted from now on speak TLS with `ctx` (those open keep theirs). */
static void tls_commit(struct wk_registry *r, struct tls_ctx *ctx)
{
    tls_ctx_free(r->tls);
    r->tls = ctx;
}

int wk_listen(struct wk_registry *r, const struct cfg *cfg, char **cause)
{
    const char *iface = cfg->pb_interface;
    int port = cfg->pb_port;
    struct tls_ctx *ctx;
    if (tls_prepare(cfg, &ctx, cause) != 0)
        return -1;
    if (port == 0)
        close_listener(r);
    if (port == 0 ||
        (r->listener != NULL && port == r->listen_port &&
         util_streq(iface != NULL ? iface : "", r->listen_iface != NULL ? r->listen_iface : ""))) {
        tls_commit(r, ctx);
        return 0;
    }
    struct sockaddr_storage addr;
    const char *host = iface != NULL ? iface : "0.0.0.0";
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    uv_tcp_t *l = NULL;
    if (rc == 0) {
        l = xcalloc(1, sizeof *l);
        uv_tcp_init(r->loop, l);
        l->data = r;
        r->listeners_open++;
        rc = uv_tcp_bind(l, (struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)l, 128, accept_cb);
        if (rc != 0)
            uv_close((uv_handle_t *)l, listener_closed_cb);
    }
    if (rc != 0) {
        tls_ctx_free(ctx);
        return l == NULL ? util_cause(cause, "PB port: bad interface address '%s'", host)
                         : util_cause(cause, "cannot listen for workers on %s:%d: %s", host, port,
                                      uv_strerror(rc));
    }
    tls_commit(r, ctx);
    close_listener(r);
    r->listener = l;
    r->listen_port = port;
    free(r->listen_iface);
    r->listen_iface = iface != NULL ? xstrdup(iface) : NULL;
    log_info("listening for workers on %s:%d%s", host, port, r->tls != NULL ? " (TLS)" : "");
    return 0;
}

struct session *registry_find_id(struct wk_registry *r, uint64_t id)
{
    for (struct session *s = r->sessions; s != NULL; s = s->next) {
        if (s->id == id)
            return s;
    }
    return NULL;
}

static bool same_builders(const struct session *s, const struct session_builder *b, size_t n)
{
    if (n != s->n_builders)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!util_streq(b[i].name, s->builders[i].name) ||
            !util_streq(b[i].builddir, s->builders[i].builddir))
            return false;
    }
    return true;
}

/* A new setBuilderList if what the worker is to have differs from what it has confirmed,
   or may differ from what is in flight (sent again once that is answered). */
static void refresh_builders(struct session *s)
{
    struct session_builder *b = NULL;
    size_t n = session_config_builders(s->reg, s->name, &b);
    bool same = same_builders(s, b, n) && !s->builder_list_pending;
    session_free_builders(b, n);
    if (!same && s->state == SESSION_ATTACHED)
        session_update_builders(s);
    else if (!same)
        s->builder_list_stale = true;
}

void wk_reconfig(struct wk_registry *r, const struct cfg *cfg)
{
    r->cfg = cfg;
    for (struct session *s = r->sessions; s != NULL; s = s->next) {
        if (s->name == NULL || s->state == SESSION_CLOSING || s->state == SESSION_CHANGES)
            continue;
        if (cfg_find_worker(cfg, s->name) == NULL) {
            log_info("worker '%s' is no longer configured: disconnecting it", s->name);
            session_close(s, "removed from the configuration");
            continue;
        }
        refresh_builders(s);
        session_ping_reconfig(s);
    }
}

void registry_hold(struct wk_registry *r, const char *worker, const char *builder,
                   const char *builddir)
{
    for (struct hold *h = r->holds; h != NULL; h = h->next) {
        if (util_streq(h->worker, worker) && util_streq(h->builder, builder)) {
            h->builds++;
            return;
        }
    }
    struct hold *h = xcalloc(1, sizeof *h);
    *h = (struct hold){xstrdup(worker), xstrdup(builder), xstrdup(builddir), 1, r->holds};
    r->holds = h;
}

void wk_build_done(struct wk_registry *r, const char *worker, const char *builder)
{
    for (struct hold **p = &r->holds; *p != NULL; p = &(*p)->next) {
        struct hold *h = *p;
        if (!util_streq(h->worker, worker) || !util_streq(h->builder, builder))
            continue;
        if (--h->builds > 0)
            return;
        *p = h->next;
        hold_free(h);
        /* the attached session, or one attaching (a worker back while its lost build ended) */
        for (struct session *s = r->sessions; s != NULL && !r->closing; s = s->next)
            if (util_streq(s->name, worker) && s->state != SESSION_CLOSING &&
                s->state != SESSION_CHANGES)
                refresh_builders(s);
        return;
    }
}

size_t wk_attached_count(const struct wk_registry *r)
{
    size_t n = 0;
    for (const struct session *s = r->sessions; s != NULL; s = s->next)
        n += s->state == SESSION_ATTACHED;
    return n;
}

bool wk_is_attached(const struct wk_registry *r, const char *name)
{
    return registry_find_attached((struct wk_registry *)r, name, NULL) != NULL;
}

bool wk_has_builder(const struct wk_registry *r, const char *worker, const char *builder)
{
    const struct session *s = registry_find_attached((struct wk_registry *)r, worker, NULL);
    for (size_t i = 0; s != NULL && i < s->n_builders; i++)
        if (util_streq(s->builders[i].name, builder))
            return s->builders[i].luid != 0;
    return false;
}
