/*
 * session.c: the worker's life: pid file and log, the connection to the
 * master (resolve, connect, PB login with the tac's name and password), the
 * Bot object the master calls (print, getWorkerInfo, setBuilderList,
 * shutdown, getCommands, getVersion), application keepalives and reconnecting
 * with Twisted's backoffPolicy, as buildbot-worker does (SPEC 5.2-5.5, 5.10).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bbw_internal.h"
#include "tls/tls.h"
#include "util/util.h"

extern char **environ;

struct drain {
    void (*cb)(void *arg);
    void *arg;
};

struct bbw_conn {
    struct bbw *w;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    struct pb_broker *broker;
    uint32_t perspective; /* the master's perspective; 0 until logged in */
    bool tcp_open, closing, resolving;
    bool tunneling;       /* through a proxy: its answer to CONNECT is awaited */
    struct buf reply;     /* the proxy's answer so far */
    struct tls_conn *tls; /* use_tls: what goes both ways passes through it */
    size_t queued;
    struct drain *drains;
    size_t ndrains, drains_cap;
};

struct wreq {
    uv_write_t req;
    struct bbw_conn *c;
    size_t len;
    char data[];
};

static void schedule_retry(struct bbw *w);
static void conn_close(struct bbw_conn *c);

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/*
 * Stopping: the worker's own handles close, and the loop ends once the
 * commands killed with the connection have been reaped and closed theirs.
 */
static void wind_down(struct bbw *w)
{
    close_if_open((uv_handle_t *)&w->retry);
    close_if_open((uv_handle_t *)&w->keepalive);
    close_if_open((uv_handle_t *)&w->connect_timer);
    close_if_open((uv_handle_t *)&w->sigterm);
    close_if_open((uv_handle_t *)&w->sigint);
    close_if_open((uv_handle_t *)&w->sighup);
    close_if_open((uv_handle_t *)&w->shutdown_poll);
}

bool bbw_connected(const struct bbw *w)
{
    return w->conn && !w->conn->closing && w->conn->perspective != 0;
}

struct pb_broker *bbw_broker(const struct bbw *w)
{
    return w->conn && !w->conn->closing ? w->conn->broker : NULL;
}

size_t bbw_send_queued(const struct bbw *w)
{
    return w->conn ? w->conn->queued : 0;
}

static void run_drains(struct bbw_conn *c)
{
    struct drain *d = c->drains;
    size_t n = c->ndrains;
    c->drains = NULL;
    c->ndrains = c->drains_cap = 0;
    for (size_t i = 0; i < n; i++)
        d[i].cb(d[i].arg);
    free(d);
}

void bbw_on_drain(struct bbw *w, void (*cb)(void *arg), void *arg)
{
    struct bbw_conn *c = w->conn;
    if (!c || c->closing || c->queued < BBW_SEND_HIGH) {
        cb(arg);
        return;
    }
    c->drains = xgrow(c->drains, &c->drains_cap, c->ndrains + 1, sizeof(*c->drains));
    c->drains[c->ndrains++] = (struct drain){cb, arg};
}

/* ------------------------------------------------------------- transport */

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *r = (struct wreq *)req;
    struct bbw_conn *c = r->c;
    c->queued -= r->len;
    free(r);
    if (status < 0 && !c->closing) {
        log_info("lost connection to the master: %s", uv_strerror(status));
        conn_close(c);
        return;
    }
    if (c->queued < BBW_SEND_HIGH / 2 && c->ndrains)
        run_drains(c);
}

/* Puts bytes on the wire (counted in `queued` until written); false when the connection
   was closed instead. */
static bool write_raw(struct bbw_conn *c, const char *data, size_t len)
{
    struct wreq *r = xmalloc(sizeof(*r) + len);
    memcpy(r->data, data, len);
    r->c = c;
    r->len = len;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
    c->queued += len;
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
        c->queued -= len;
        free(r);
        conn_close(c);
        return false;
    }
    return true;
}

/* Writes what TLS has encrypted for the master. */
static void flush_tls(struct bbw_conn *c)
{
    char out[64 * 1024];
    size_t n;
    while (!c->closing && (n = tls_conn_take(c->tls, out, sizeof(out))) > 0) {
        if (!write_raw(c, out, n))
            return;
    }
}

static void op_send(void *ctx, const char *data, size_t len)
{
    struct bbw_conn *c = ctx;
    if (c->closing || !c->tcp_open)
        return;
    if (c->tls == NULL) {
        write_raw(c, data, len);
        return;
    }
    char *cause = NULL;
    if (tls_conn_send(c->tls, data, len, &cause) < 0) {
        log_error("closing the connection: %s", cause);
        free(cause);
        conn_close(c);
        return;
    }
    flush_tls(c);
}

static void closed_cb(uv_handle_t *h)
{
    struct bbw_conn *c = h->data;
    struct bbw *w = c->w;
    pb_broker_free(c->broker);
    tls_conn_free(c->tls);
    buf_free(&c->reply);
    run_drains(c);
    free(c);
    if (!w->stopping)
        schedule_retry(w);
    else if (w->conn == NULL)
        wind_down(w);
}

/* Ends a connection: commands are killed, builders forget their luids. */
static void conn_close(struct bbw_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct bbw *w = c->w;
    if (w->conn == c)
        w->conn = NULL;
    uv_timer_stop(&w->keepalive);
    uv_timer_stop(&w->connect_timer);
    for (size_t i = 0; i < w->nbuilders; i++) {
        bbw_cmd_abandon(w->builders[i]);
        w->builders[i]->luid = 0;
    }
    if (c->tcp_open) {
        uv_close((uv_handle_t *)&c->tcp, closed_cb);
    } else if (c->resolving) {
        uv_cancel((uv_req_t *)&c->gai); /* resolved_cb frees c */
    } else {
        pb_broker_free(c->broker);
        buf_free(&c->reply);
        free(c);
        if (!w->stopping)
            schedule_retry(w);
        else
            wind_down(w);
    }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    static char chunk[64 * 1024];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Plain bytes from the master to the broker; 0, or -1 with the connection closed. */
static int receive_plain(void *arg, const char *data, size_t len)
{
    struct bbw_conn *c = arg;
    if (c->closing)
        return 0;
    char *cause = NULL;
    if (pb_broker_receive(c->broker, data, len, &cause) < 0) {
        char shown[300];
        log_error("closing the connection: the master sent what bbworker cannot accept: %s",
                  util_escape_str(shown, sizeof(shown), cause));
        free(cause);
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Bytes from the master: through TLS when there is TLS, then to the broker. */
static void receive(struct bbw_conn *c, const char *data, size_t len)
{
    if (c->tls == NULL) {
        receive_plain(c, data, len);
        return;
    }
    char *cause = NULL;
    if (tls_conn_receive(c->tls, data, len, receive_plain, c, &cause) < 0) {
        if (cause != NULL) /* else the broker's refusal, logged */
            log_error("closing the connection to %s:%d: %s", c->w->tac->master.host,
                      c->w->tac->master.port, cause);
        free(cause);
        conn_close(c);
        return;
    }
    flush_tls(c); /* the handshake's answers */
}

static void start_session(struct bbw_conn *c);

/*
 * The proxy's answer to CONNECT, kept until its blank line: a 200 opens the tunnel
 * and what follows the answer is the master's.  *data and *len are left at those
 * bytes; -1 when the connection was closed (a refusal, an answer too long).
 */
static int tunnel_reply(struct bbw_conn *c, const char **data, size_t *len)
{
    const struct bbw_tac *t = c->w->tac;
    size_t before = c->reply.len;
    if (buf_add(&c->reply, *data, *len) < 0) {
        log_error("closing the connection to the proxy %s:%d: its answer to CONNECT is longer "
                  "than %d bytes",
                  t->proxy.host, t->proxy.port, BBW_PROXY_REPLY_MAX);
        conn_close(c);
        return -1;
    }
    long head = bbw_proxy_answer(c->reply.data, c->reply.len);
    if (head == 0) {
        *len = 0;
        return 0;
    }
    if (head < 0) {
        char shown[200];
        log_error("the proxy %s:%d refused the tunnel to %s:%d: %s", t->proxy.host, t->proxy.port,
                  t->master.host, t->master.port,
                  util_escape(shown, sizeof(shown), c->reply.data, strcspn(c->reply.data, "\r\n")));
        conn_close(c);
        return -1;
    }
    log_info("tunnel to %s:%d open through the proxy %s:%d", t->master.host, t->master.port,
             t->proxy.host, t->proxy.port);
    c->tunneling = false;
    *data += (size_t)head - before;
    *len -= (size_t)head - before;
    start_session(c);
    return c->closing ? -1 : 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct bbw_conn *c = s->data;
    if (n == 0 || c->closing)
        return;
    if (n < 0) {
        log_info("lost connection to the master: %s",
                 n == UV_EOF ? "connection closed" : uv_strerror((int)n));
        conn_close(c);
        return;
    }
    const char *data = buf->base;
    size_t len = (size_t)n;
    if (c->tunneling && tunnel_reply(c, &data, &len) < 0)
        return;
    if (len > 0)
        receive(c, data, len);
}

/* ------------------------------------------------------------------ login */

static void keepalive_cb(uv_timer_t *t)
{
    struct bbw *w = t->data;
    if (!bbw_connected(w))
        return;
    log_debug("sending app-level keepalive");
    char *cause = NULL;
    if (pb_broker_call(w->conn->broker, w->conn->perspective, "keepalive", NULL, NULL, NULL, NULL,
                       &cause) < 0) {
        log_warn("keepalive: %s", cause);
        free(cause);
    }
}

static void login_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct bbw_conn *c = arg;
    struct bbw *w = c->w;
    if (c->closing)
        return;
    if (result && result->kind == PB_REMOTE) {
        c->perspective = result->u.luid;
        w->attempts = 0;
        log_info("Connected to buildmaster; worker is ready");
        if (w->tac->keepalive > 0) {
            log_info("sending application-level keepalives every %ld seconds", w->tac->keepalive);
            uint64_t ms = (uint64_t)w->tac->keepalive * 1000;
            uv_timer_start(&w->keepalive, keepalive_cb, ms, ms);
        }
        return;
    }
    if (failure && (pb_failure_is(failure, PB_ERR_UNAUTHORIZED) ||
                    pb_failure_is(failure, PB_ERR_CONNECTION_LOST))) {
        log_error("unauthorized login; check worker name and password");
        conn_close(c);
        return;
    }
    char *what = failure ? pb_failure_describe(failure)
                         : xstrdup("a login answer that is not a perspective");
    char shown[300];
    log_error("login failed, stopping: %s", util_escape_str(shown, sizeof(shown), what));
    free(what);
    w->stopping = true;
    w->exit_rc = 1;
    conn_close(c);
}

static void op_ready(void *ctx)
{
    struct bbw_conn *c = ctx;
    uint32_t bot = pb_broker_export(c->broker, c->w);
    char *cause = NULL;
    if (pb_broker_login(c->broker, c->w->tac->name, c->w->tac->passwd, bot, login_cb, c, &cause) <
        0) {
        log_error("login: %s", cause);
        free(cause);
        conn_close(c);
    }
}

static void op_released(void *ctx, uint32_t luid, void *obj)
{
    struct bbw_conn *c = ctx;
    for (size_t i = 0; i < c->w->nbuilders; i++)
        if (c->w->builders[i] == obj && c->w->builders[i]->luid == luid)
            c->w->builders[i]->luid = 0;
}

static void op_call(void *ctx, struct pb_call *call);

static const struct pb_broker_ops ops = {
    .send = op_send, .call = op_call, .ready = op_ready, .released = op_released};

/* Where the connection goes first: the proxy, or the master. */
static const struct bbw_endpoint *dialled(const struct bbw *w)
{
    return w->tac->proxy.host != NULL ? &w->tac->proxy : &w->tac->master;
}

/* The connection reaches the master: PB (over TLS when asked) starts. */
static void start_session(struct bbw_conn *c)
{
    c->broker = pb_broker_new(false, &ops, c);
    if (c->w->tls != NULL) {
        c->tls = tls_conn_client(c->w->tls, c->w->tac->master.host);
        flush_tls(c); /* the ClientHello */
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct bbw_conn *c = req->data;
    if (c->closing)
        return;
    const struct bbw_endpoint *ep = dialled(c->w);
    uv_timer_stop(&c->w->connect_timer);
    if (status < 0) {
        log_info("connection to %s:%d failed: %s", ep->host, ep->port, uv_strerror(status));
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 600);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (ep == &c->w->tac->proxy) {
        /* buildbot-worker's HTTPTunnelClient: CONNECT, then the master's bytes */
        char *req_text = xasprintf("CONNECT %s:%d HTTP/1.1\r\n\r\n", c->w->tac->master.host,
                                   c->w->tac->master.port);
        c->tunneling = true;
        buf_init(&c->reply, BBW_PROXY_REPLY_MAX);
        write_raw(c, req_text, strlen(req_text));
        free(req_text);
        return;
    }
    start_session(c);
}

static void connect_timeout_cb(uv_timer_t *t)
{
    struct bbw *w = t->data;
    if (w->conn == NULL || w->conn->closing)
        return;
    const struct bbw_endpoint *ep = dialled(w);
    log_info("connection to %s:%d failed: no answer in %ld seconds", ep->host, ep->port,
             ep->timeout);
    conn_close(w->conn);
}

/* bindAddress: the connection leaves from that address (any port). */
static int bind_local(struct bbw_conn *c, const char *addr)
{
    struct sockaddr_storage sa;
    int rc = uv_ip4_addr(addr, 0, (struct sockaddr_in *)&sa);
    if (rc < 0)
        rc = uv_ip6_addr(addr, 0, (struct sockaddr_in6 *)&sa);
    if (rc == 0)
        rc = uv_tcp_bind(&c->tcp, (struct sockaddr *)&sa, 0);
    if (rc < 0)
        log_info("cannot connect from %s (bindAddress): %s", addr, uv_strerror(rc));
    return rc;
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct bbw_conn *c = req->data;
    struct bbw *w = c->w;
    c->resolving = false;
    if (c->closing) {
        uv_freeaddrinfo(res);
        c->closing = false;
        conn_close(c); /* closed while resolving: now it can go */
        return;
    }
    const struct bbw_endpoint *ep = dialled(w);
    if (status < 0) {
        log_info("cannot resolve %s: %s", ep->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        conn_close(c);
        return;
    }
    uv_tcp_init(w->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = true;
    c->creq.data = c;
    int rc = ep->bind != NULL ? bind_local(c, ep->bind) : 0;
    if (rc == 0)
        rc = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, connect_cb);
    uv_freeaddrinfo(res);
    if (rc < 0) {
        log_info("connection to %s:%d failed: %s", ep->host, ep->port, uv_strerror(rc));
        conn_close(c);
        return;
    }
    uv_timer_start(&w->connect_timer, connect_timeout_cb, (uint64_t)ep->timeout * 1000, 0);
}

static void attempt(uv_timer_t *t)
{
    struct bbw *w = t->data;
    if (w->stopping || w->conn)
        return;
    struct bbw_conn *c = xcalloc(1, sizeof(*c));
    c->w = w;
    c->gai.data = c;
    w->conn = c;
    const struct bbw_endpoint *ep = dialled(w);
    char port[16];
    snprintf(port, sizeof(port), "%d", ep->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (ep->bind != NULL) /* the master's address of the family bindAddress is in */
        hints.ai_family = strchr(ep->bind, ':') != NULL ? AF_INET6 : AF_INET;
    if (ep == &w->tac->proxy)
        log_info("Connecting to %s:%d through the proxy %s:%d", w->tac->master.host,
                 w->tac->master.port, ep->host, ep->port);
    else
        log_info("Connecting to %s:%d", ep->host, ep->port);
    c->resolving = true;
    if (uv_getaddrinfo(w->loop, &c->gai, resolved_cb, ep->host, port, &hints) < 0) {
        c->resolving = false;
        conn_close(c);
    }
}

/* Twisted's backoffPolicy: 1 s x 1.5^n, at most 60 s (or maxdelay), plus up to 1 s. */
static void schedule_retry(struct bbw *w)
{
    w->attempts++;
    if (w->tac->maxretries >= 0 && w->attempts > (unsigned)w->tac->maxretries) {
        log_error("giving up after %u attempts (maxretries %ld)", w->attempts - 1,
                  w->tac->maxretries);
        w->stopping = true;
        w->exit_rc = 1;
        wind_down(w);
        return;
    }
    double cap = 60.0;
    if (w->tac->maxdelay > 0 && w->tac->maxdelay < cap)
        cap = (double)w->tac->maxdelay;
    double delay = fmin(pow(1.5, w->attempts - 1), cap) + (double)rand() / RAND_MAX;
    log_info("will retry in %.0f seconds", delay);
    uv_timer_start(&w->retry, attempt, (uint64_t)(delay * 1000), 0);
}

/* ------------------------------------------------------------ the Bot */

static struct pb_value *arg(const struct pb_call *call, size_t i, const char *kw)
{
    struct pb_value *v = pb_item(call->args, i);
    return v ? v : pb_dict_get(call->kwargs, kw);
}

static void add_info_files(struct bbw *w, struct pb_value *d)
{
    char *path = xasprintf("%s/info", w->dir);
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char *f = xasprintf("%s/%s", path, e->d_name);
        size_t len;
        char *text = util_is_file(f) ? util_read_file(f, BBW_INFO_MAX, &len, NULL) : NULL;
        if (text)
            pb_dict_set(d, e->d_name, bbw_utf8_text(text, len)); /* text: never bad UTF-8 */
        free(text);
        free(f);
    }
    if (dir)
        closedir(dir);
    free(path);
}

static void add_os_release(struct pb_value *d)
{
    FILE *f = fopen("/etc/os-release", "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!line[0] || line[0] == '#' || !eq || !eq[1])
            continue;
        *eq = 0;
        char *v = eq + 1;
        size_t n = strlen(v);
        while (n && v[n - 1] == '"')
            v[--n] = 0;
        while (*v == '"')
            v++;
        char key[1100];
        snprintf(key, sizeof(key), "os_%s", line);
        for (char *k = key; *k; k++)
            *k = (char)(*k >= 'A' && *k <= 'Z' ? *k + 32 : *k);
        pb_dict_set(d, key, bbw_utf8_text(v, strlen(v)));
    }
    if (f)
        fclose(f);
}

static struct pb_value *commands_dict(void)
{
    struct pb_value *d = pb_dict();
    for (const char *const *n = bbw_cmd_names; *n; n++)
        pb_dict_set(d, *n, pb_text(BBW_CMD_VERSION));
    return d;
}

static struct pb_value *worker_info(struct bbw *w)
{
    struct pb_value *d = pb_dict();
    add_info_files(w, d);
    add_os_release(d);
    struct pb_value *env = pb_dict();
    for (char **e = environ; *e; e++) {
        char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char *k = xstrndup(*e, (size_t)(eq - *e));
        pb_dict_set(env, k, bbw_utf8_text(eq + 1, strlen(eq + 1)));
        free(k);
    }
    pb_dict_set(d, "environ", env);
    pb_dict_set(d, "system", pb_text("posix"));
    pb_dict_set(d, "basedir", pb_text(w->dir));
    long n = w->tac->numcpus > 0 ? w->tac->numcpus : sysconf(_SC_NPROCESSORS_ONLN);
    pb_dict_set(d, "numcpus", pb_int(n > 0 ? n : 1));
    pb_dict_set(d, "version", pb_text(BBW_VERSION));
    pb_dict_set(d, "worker_commands", commands_dict());
    /* the tac's value as Python sends it: create-worker writes 0 or 1 */
    pb_dict_set(d, "delete_leftover_dirs", pb_int(w->tac->delete_leftover_dirs ? 1 : 0));
    return d;
}

static struct bbw_builder *find_builder(struct bbw *w, const char *name)
{
    for (size_t i = 0; i < w->nbuilders; i++)
        if (w->builders[i] && strcmp(w->builders[i]->name, name) == 0)
            return w->builders[i];
    return NULL;
}

/* mkdir -p of basedir/rel. */
static void make_builddir(struct bbw *w, const char *rel)
{
    char *p = rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", w->dir, rel);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        mkdir(p, 0777);
        *s = '/';
    }
    if (mkdir(p, 0777) < 0 && errno != EEXIST)
        log_warn("cannot create builder directory %s: %s", p, strerror(errno));
    free(p);
}

static void rm_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    (void)status;
    (void)sig;
    uv_close((uv_handle_t *)p, (uv_close_cb)free);
}

/* A directory of basedir that no builder uses: reported, or removed with delete_leftover_dirs. */
static void leftover_dirs(struct bbw *w)
{
    DIR *dir = opendir(w->dir);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char *p = xasprintf("%s/%s", w->dir, e->d_name);
        bool used = strcmp(e->d_name, "info") == 0;
        for (size_t i = 0; !used && i < w->nbuilders; i++)
            used = strcmp(w->builders[i]->builddir, e->d_name) == 0;
        if (!used && util_is_dir(p)) {
            if (w->tac->delete_leftover_dirs) {
                log_info("Deleting directory '%s' that is not being used by the buildmaster",
                         e->d_name);
                char *argv[] = {"rm", "-rf", "--", p, NULL};
                uv_process_options_t o = {.file = "rm", .args = argv, .exit_cb = rm_exit_cb};
                uv_process_t *proc = xcalloc(1, sizeof(*proc));
                if (uv_spawn(w->loop, proc, &o) < 0) /* closed at exit, to be reaped */
                    uv_close((uv_handle_t *)proc, (uv_close_cb)free);
            } else {
                log_info("I have a leftover directory '%s' that is not being used by the "
                         "buildmaster: you can delete it now",
                         e->d_name);
            }
        }
        free(p);
    }
    if (dir)
        closedir(dir);
}

static void builder_free(struct bbw_builder *b)
{
    bbw_cmd_abandon(b);
    free(b->name);
    free(b->builddir);
    free(b);
}

static void set_builder_list(struct bbw *w, struct pb_call *call)
{
    struct pb_value *list = arg(call, 0, "wanted");
    size_t n = pb_len(list);
    if (!list || (list->kind != PB_LIST && list->kind != PB_TUPLE) || n > BBW_MAX_BUILDERS) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error, "setBuilderList needs a list");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct pb_value *e = pb_item(list, i);
        if (pb_len(e) != 2 || !pb_is_str(pb_item(e, 0)) || !pb_is_str(pb_item(e, 1))) {
            pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error,
                              "setBuilderList needs (name, builddir) pairs");
            return;
        }
    }
    struct bbw_builder **keep = xcalloc(n + 1, sizeof(*keep));
    struct pb_value *answer = pb_dict();
    size_t nkeep = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = pb_str(pb_item(pb_item(list, i), 0));
        const char *dir = pb_str(pb_item(pb_item(list, i), 1));
        bool again = false; /* a name given twice: the first one counts, as in a dict */
        for (size_t k = 0; k < nkeep && !again; k++)
            again = strcmp(keep[k]->name, name) == 0;
        if (again)
            continue;
        struct bbw_builder *b = find_builder(w, name);
        if (!b) {
            b = xcalloc(1, sizeof(*b));
            b->w = w;
            b->name = xstrdup(name);
            b->builddir = xstrdup(dir);
        } else if (strcmp(b->builddir, dir) != 0) {
            log_info("changing builddir for builder %s from %s to %s", name, b->builddir, dir);
            free(b->builddir);
            b->builddir = xstrdup(dir);
        }
        for (size_t j = 0; j < w->nbuilders; j++)
            if (w->builders[j] == b)
                w->builders[j] = NULL;
        make_builddir(w, dir);
        if (b->luid == 0)
            b->luid = pb_broker_export(call->broker, b);
        keep[nkeep++] = b;
        pb_dict_set(answer, name, pb_remote(b->luid));
    }
    for (size_t j = 0; j < w->nbuilders; j++)
        if (w->builders[j]) {
            if (w->builders[j]->luid)
                pb_broker_unexport(call->broker, w->builders[j]->luid);
            builder_free(w->builders[j]);
        }
    free(w->builders);
    w->builders = keep;
    w->nbuilders = nkeep;
    leftover_dirs(w);
    pb_call_answer(call, answer);
}

static void shutdown_cb(uv_timer_t *t)
{
    struct bbw *w = t->data;
    w->stopping = true;
    if (w->conn)
        conn_close(w->conn);
    else
        wind_down(w);
}

static void bot_call(struct bbw *w, struct pb_call *call)
{
    const char *m = call->method;
    char shown[300];
    if (strcmp(m, "print") == 0) {
        log_info("message from master: %s",
                 util_escape_str(shown, sizeof(shown), pb_str(arg(call, 0, "message"))));
        pb_call_answer(call, NULL);
    } else if (strcmp(m, "getWorkerInfo") == 0) {
        pb_call_answer(call, worker_info(w));
    } else if (strcmp(m, "setBuilderList") == 0) {
        set_builder_list(w, call);
    } else if (strcmp(m, "getCommands") == 0) {
        pb_call_answer(call, commands_dict());
    } else if (strcmp(m, "getVersion") == 0) {
        pb_call_answer(call, pb_text(BBW_VERSION));
    } else if (strcmp(m, "shutdown") == 0) {
        log_info("worker shutting down on command from master");
        pb_call_answer(call, NULL);
        uv_timer_start(&w->retry, shutdown_cb, 200, 0);
    } else {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", m);
    }
}

static void builder_call(struct bbw_builder *b, struct pb_call *call)
{
    const char *m = call->method;
    char shown[300];
    if (strcmp(m, "startBuild") == 0) {
        pb_call_answer(call, NULL);
    } else if (strcmp(m, "startCommand") == 0) {
        bbw_cmd_start(b, call);
    } else if (strcmp(m, "interruptCommand") == 0) {
        bbw_cmd_interrupt(b, call);
    } else if (strcmp(m, "print") == 0) {
        log_info("WorkerForBuilder.remote_print(%s): message from master: %s", b->name,
                 util_escape_str(shown, sizeof(shown), pb_str(arg(call, 0, "message"))));
        pb_call_answer(call, NULL);
    } else {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", m);
    }
}

static void op_call(void *ctx, struct pb_call *call)
{
    struct bbw_conn *c = ctx;
    if (call->obj == c->w) {
        bot_call(c->w, call);
        return;
    }
    for (size_t i = 0; i < c->w->nbuilders; i++)
        if (call->obj == c->w->builders[i]) {
            builder_call(c->w->builders[i], call);
            return;
        }
    pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error, "Invalid Object ID");
}

/* -------------------------------------------------------------- the run */

static void signal_cb(uv_signal_t *s, int signum)
{
    struct bbw *w = s->data;
    log_info("Received SIG%s, shutting down.", signum == SIGINT ? "INT" : "TERM");
    w->stopping = true;
    uv_timer_stop(&w->retry);
    if (w->conn)
        conn_close(w->conn);
    else
        wind_down(w);
}

/* ------------------------------------------- shutdown asked by the owner */

static void shutdown_answer_cb(void *arg, const struct pb_value *result,
                               const struct pb_value *failure)
{
    (void)arg;
    (void)result;
    if (failure && !pb_failure_is(failure, PB_ERR_CONNECTION_LOST)) {
        char *why = pb_failure_describe(failure);
        char shown[300];
        log_warn("callRemote(\"shutdown\") failed: %s", util_escape_str(shown, sizeof(shown), why));
        free(why);
    }
}

/* buildbot-worker's gracefulShutdown: ask the master, which calls shutdown once idle. */
static void graceful_shutdown(struct bbw *w)
{
    if (!bbw_connected(w)) {
        log_info("No active connection, shutting down NOW");
        w->stopping = true;
        uv_timer_stop(&w->retry);
        if (w->conn)
            conn_close(w->conn);
        else
            wind_down(w);
        return;
    }
    log_info("Telling the master we want to shutdown after any running builds are finished");
    char *cause = NULL;
    if (pb_broker_call(w->conn->broker, w->conn->perspective, "shutdown", NULL, NULL,
                       shutdown_answer_cb, NULL, &cause) < 0) {
        log_warn("callRemote(\"shutdown\") failed: %s", cause);
        free(cause);
    }
}

static void sighup_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    log_info("Initiating shutdown because we got SIGHUP");
    graceful_shutdown(s->data);
}

static double stamp_mtime(const struct bbw *w)
{
    char *path = xasprintf("%s/shutdown.stamp", w->dir);
    struct stat st;
    double t = stat(path, &st) == 0 ? (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9 : -1;
    free(path);
    return t;
}

static void shutdown_poll_cb(uv_timer_t *t)
{
    struct bbw *w = t->data;
    double m = stamp_mtime(w);
    if (m > w->shutdown_mtime) {
        log_info("Initiating shutdown because %s/shutdown.stamp was touched", w->dir);
        w->shutdown_mtime = m; /* asked once per touch; a later touch asks again */
        graceful_shutdown(w);
    }
}

/* allow_shutdown: SIGHUP, or shutdown.stamp touched (looked at every 10 s, as Python's). */
static void watch_shutdown(struct bbw *w)
{
    uv_signal_init(w->loop, &w->sighup);
    uv_timer_init(w->loop, &w->shutdown_poll);
    w->sighup.data = w->shutdown_poll.data = w;
    if (util_streq(w->tac->allow_shutdown, "signal")) {
        log_info("Setting up SIGHUP handler to initiate shutdown");
        uv_signal_start(&w->sighup, sighup_cb, SIGHUP);
    } else if (util_streq(w->tac->allow_shutdown, "file")) {
        log_info("Watching %s/shutdown.stamp's mtime to initiate shutdown", w->dir);
        w->shutdown_mtime = stamp_mtime(w);
        uv_timer_start(&w->shutdown_poll, shutdown_poll_cb, 10000, 10000);
    }
}

static int write_pid(const char *dir)
{
    char *path = xasprintf("%s/twistd.pid", dir);
    char text[32];
    snprintf(text, sizeof(text), "%ld", (long)getpid());
    char *cause = NULL;
    int rc = util_write_file(path, text, strlen(text), 0644, &cause);
    if (rc < 0) {
        fprintf(stderr, "%s\n", cause);
        free(cause);
    }
    free(path);
    return rc;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int bbw_session_run(const struct bbw_tac *t, const char *dir, bool foreground)
{
    if (t->umask >= 0)
        umask((mode_t)t->umask);
    char *logpath = xasprintf("%s/twistd.log", dir);
    char *cause = NULL;
    if (log_open(logpath, t->log_rotation ? (size_t)t->rotate_length : 0,
                 t->max_rotated_files < 0 ? 1000000 : t->max_rotated_files, &cause) < 0) {
        fprintf(stderr, "%s\n", cause);
        free(cause);
    }
    free(logpath);
    log_tee_stderr(foreground);
    if (write_pid(dir) < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)(getpid() ^ (unsigned)uv_hrtime()));
    struct bbw w = {.loop = uv_default_loop(), .tac = t, .dir = dir};
    log_info("Starting Worker -- version: %s", BBW_VERSION);
    if (t->master.tls) {
        w.tls = t->master.trust_roots != NULL ? tls_client_ctx_dir(t->master.trust_roots, &cause)
                                              : tls_client_ctx(NULL, &cause);
        if (w.tls == NULL) {
            log_error("%s", cause);
            free(cause);
            return 1;
        }
    }
    log_info("using %s as the worker directory, master %s:%d%s, worker name '%s'", dir,
             t->master.host, t->master.port, t->master.tls ? " (TLS)" : "", t->name);
    uv_timer_init(w.loop, &w.retry);
    uv_timer_init(w.loop, &w.keepalive);
    uv_timer_init(w.loop, &w.connect_timer);
    w.retry.data = w.keepalive.data = w.connect_timer.data = &w;
    uv_signal_init(w.loop, &w.sigterm);
    uv_signal_init(w.loop, &w.sigint);
    w.sigterm.data = w.sigint.data = &w;
    uv_signal_start(&w.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&w.sigint, signal_cb, SIGINT);
    watch_shutdown(&w);
    attempt(&w.retry);
    uv_run(w.loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < w.nbuilders; i++)
        builder_free(w.builders[i]);
    free(w.builders);
    uv_walk(w.loop, close_walk, NULL);
    uv_run(w.loop, UV_RUN_DEFAULT);
    uv_loop_close(w.loop);
    tls_ctx_free(w.tls);
    char *pid = xasprintf("%s/twistd.pid", dir);
    unlink(pid);
    free(pid);
    log_info("Main loop terminated.");
    log_close();
    return w.exit_rc;
}
