/*
 * One worker connection: the TCP stream, its PB broker, and Buildbot's attach
 * sequence (SPEC 5.2).  After the password check the master calls, in order,
 * print("attached"), getWorkerInfo() (falling back to getSlaveInfo,
 * getCommands and getVersion for buildslave 0.8), setBuilderList() and one
 * print("attached") per builder, and only then answers the worker's login with
 * the perspective.  A duplicate login is arbitrated as Buildbot does: the old
 * connection is pinged; if it answers within WK_DUPLICATE_PING_TIMEOUT the new
 * one is refused, otherwise the old one is dropped.
 *
 * Until the password is accepted the session is a stranger: the PB broker
 * holds it to pb_limits_login, it may queue WK_LOGIN_MAX_WRITE_QUEUE bytes and
 * has WK_LOGIN_TIMEOUT seconds, and the guard (guard.c) counts it and its
 * failed logins.  Everything a peer chose (names, failures, methods) is
 * escaped before it is logged.
 *
 * Lifetime: a session is freed when its TCP and timer handles are closed.
 * PB callbacks never free it directly; session_close defers while the broker
 * is inside pb_broker_receive.
 */
#include "workers/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void attach_begin(struct session *s);
static void login_timeout_cb(uv_timer_t *t);

/* ------------------------------------------------------------ transport */

/*
 * A write and its bytes.  They stay allocated until libuv calls back, which
 * for a write the kernel took at once is the next loop iteration: what a
 * session may hold is counted here (s->writing), not by libuv's queue size,
 * which leaves those out.
 */
struct write_req {
    uv_write_t req;
    size_t len;
    char data[];
};

static void write_cb(uv_write_t *req, int status)
{
    struct session *s = req->handle->data;
    s->writing -= ((struct write_req *)req)->len;
    free(req);
    if (status < 0 && status != UV_ECANCELED && s->state != SESSION_CLOSING)
        session_close(s, uv_strerror(status));
}

/* Puts bytes on the wire; false when the session was closed instead. */
static bool write_raw(struct session *s, const char *data, size_t len)
{
    struct write_req *w = xmalloc(sizeof *w + len);
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, write_cb);
    if (rc != 0) {
        free(w);
        session_close(s, uv_strerror(rc));
        return false;
    }
    s->writing += len;
    return true;
}

/* Writes what TLS has encrypted for the worker; false when the session was closed. */
static bool flush_tls(struct session *s)
{
    char out[65536];
    size_t n;
    while ((n = tls_conn_take(s->tls, out, sizeof out)) > 0) {
        if (!write_raw(s, out, n))
            return false;
    }
    return true;
}

static void broker_send(void *ctx, const char *data, size_t len)
{
    struct session *s = ctx;
    if (s->state == SESSION_CLOSING || s->close_after_receive)
        return; /* closing, or about to once pb_broker_receive returns */
    size_t max = s->prelogin ? WK_LOGIN_MAX_WRITE_QUEUE : WK_MAX_WRITE_QUEUE;
    if (s->writing + len > max) {
        if (s->prelogin)
            guard_count(s->reg, GUARD_UNREAD, NULL);
        session_close(s, "the worker does not read what is sent to it");
        return;
    }
    if (s->tls == NULL) {
        write_raw(s, data, len);
        return;
    }
    char *cause = NULL;
    if (tls_conn_send(s->tls, data, len, &cause) != 0) {
        session_close(s, cause);
        free(cause);
        return;
    }
    flush_tls(s);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536]; /* the loop is single-threaded and read_cb consumes it all */
    *buf = uv_buf_init(slab, sizeof slab);
}

/* Plain bytes from the worker to the broker: a stranger's go in a login's worth at a
   time, and none after a close was asked.  0, or -1 with *cause. */
static int receive_plain(struct session *s, const char *data, size_t len, char **cause)
{
    int rc = 0;
    size_t n;
    for (size_t off = 0; rc == 0 && off < len && !s->close_after_receive; off += n) {
        n = s->prelogin && len - off > PB_LOGIN_MAX_EXPR ? PB_LOGIN_MAX_EXPR : len - off;
        rc = pb_broker_receive(s->broker, data + off, n, cause);
    }
    return rc;
}

struct tls_receive {
    struct session *s;
    char *cause;
};

static int plain_from_tls(void *arg, const char *data, size_t len)
{
    struct tls_receive *t = arg;
    if (t->s->close_after_receive)
        return 0;
    return receive_plain(t->s, data, len, &t->cause);
}

/* What the worker sent, through TLS when the session speaks it.  0, or -1 with *cause;
 *tls_failed tells a TLS failure from the broker's. */
static int receive(struct session *s, const char *data, size_t len, bool *tls_failed, char **cause)
{
    *tls_failed = false;
    if (s->tls == NULL)
        return receive_plain(s, data, len, cause);
    struct tls_receive t = {.s = s};
    char *tls_cause = NULL;
    int rc = tls_conn_receive(s->tls, data, len, plain_from_tls, &t, &tls_cause);
    if (rc != 0 && t.cause == NULL) {
        *tls_failed = true;
        *cause = tls_cause;
        return -1;
    }
    free(tls_cause);
    *cause = t.cause;
    return rc;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct session *s = stream->data;
    if (nread == UV_EOF) {
        session_close(s, "connection closed by the worker");
        return;
    }
    if (nread < 0) {
        session_close(s, uv_strerror((int)nread));
        return;
    }
    char *cause = NULL;
    bool tls_failed;
    s->in_receive = true;
    int rc = receive(s, buf->base, (size_t)nread, &tls_failed, &cause);
    s->in_receive = false;
    if (rc != 0) {
        char *why = tls_failed ? xstrdup(cause) : xasprintf("protocol error: %s", cause);
        if (s->prelogin)
            guard_count(s->reg, GUARD_PROTOCOL_ERROR, NULL);
        session_close(s, why);
        free(why);
    } else if (s->close_after_receive) {
        session_close(s, NULL);
    } else if (s->tls != NULL && s->state != SESSION_CLOSING) {
        flush_tls(s); /* the handshake's answers */
    }
    free(cause);
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct session *s = h->data;
    if (--s->handles_open > 0)
        return;
    registry_remove(s->reg, s);
    session_free_builders(s->builders, s->n_builders);
    pb_value_free(s->info);
    tls_conn_free(s->tls);
    free(s->name);
    free(s->close_reason);
    free(s);
}

static const char *who(const struct session *s)
{
    return s->name != NULL ? s->name : "(not logged in)";
}

void session_close(struct session *s, const char *why)
{
    if (s->state == SESSION_CLOSING)
        return;
    if (why != NULL && s->close_reason == NULL)
        s->close_reason = xstrdup(why);
    if (s->in_receive) {
        s->close_after_receive = true;
        return;
    }
    bool was_attached = s->state == SESSION_ATTACHED;
    bool stranger = s->prelogin;
    s->state = SESSION_CLOSING;
    guard_closed(s->reg, s);
    const char *reason = s->close_reason != NULL ? s->close_reason : "closed";
    session_commands_lost(s);
    if (was_attached) { /* the engine's records first, then the log line that says so */
        if (s->reg->events.detached != NULL)
            s->reg->events.detached(s->name, s->reg->events.arg);
        log_info("worker '%s' detached (%s): %s", UTIL_ESC(s->name), s->peer, reason);
    } else if (stranger) { /* counted by the guard, which sums them up */
        log_debug("connection from %s (not logged in) closed: %s", s->peer, reason);
    } else {
        log_info("connection from %s (%s) closed: %s", s->peer, UTIL_ESC(who(s)), reason);
    }
    s->respond = NULL; /* freed by the broker */
    pb_broker_free(s->broker);
    s->broker = NULL;
    uv_read_stop((uv_stream_t *)&s->tcp);
    uv_close((uv_handle_t *)&s->tcp, handle_closed_cb);
    uv_close((uv_handle_t *)&s->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&s->ping_timer, handle_closed_cb);
}

/* ------------------------------------------------------------ calls */

static bool closing(const struct session *s)
{
    return s->state == SESSION_CLOSING;
}

static void call_mind(struct session *s, const char *method, struct pb_value *args,
                      struct pb_value *kwargs, pb_answer_cb cb)
{
    char *cause = NULL;
    if (pb_broker_call(s->broker, s->mind, method, args, kwargs, cb, s, &cause) != 0) {
        char *why = xasprintf("calling %s: %s", method, cause);
        session_close(s, why);
        free(why);
    }
    free(cause);
}

static void print_to(struct session *s, uint32_t luid, const char *message, pb_answer_cb cb)
{
    struct pb_value *kw = pb_dict_set(pb_dict(), "message", pb_text(message));
    char *cause = NULL;
    if (pb_broker_call(s->broker, luid, "print", NULL, kw, cb, s, &cause) != 0) {
        char *why = xasprintf("calling print: %s", cause);
        session_close(s, why);
        free(why);
    }
    free(cause);
}

static void fail_attach(struct session *s, const char *step, const struct pb_value *failure)
{
    char *desc = pb_failure_describe(failure);
    char *why = xasprintf("%s failed: %s", step, UTIL_ESC(desc));
    log_warn("worker '%s' (%s): %s", UTIL_ESC(who(s)), s->peer, why);
    session_close(s, why);
    free(why);
    free(desc);
}

/* ------------------------------------------------------------ builders */

void session_free_builders(struct session_builder *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].name);
        free(b[i].builddir);
    }
    free(b);
}

static void add_builder(struct session_builder **b, size_t *n, size_t *cap, const char *name,
                        const char *builddir)
{
    *b = xgrow(*b, cap, *n + 1, sizeof **b);
    (*b)[*n] = (struct session_builder){xstrdup(name), xstrdup(builddir), 0};
    (*n)++;
}

static bool has_builder(const struct session_builder *b, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (util_streq(b[i].name, name))
            return true;
    return false;
}

size_t session_config_builders(const struct wk_registry *r, const char *name,
                               struct session_builder **out)
{
    struct session_builder *b = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < r->cfg->n_builders; i++) {
        const struct cfg_builder *cb = &r->cfg->builders[i];
        for (size_t j = 0; j < cb->n_workernames; j++) {
            if (util_streq(cb->workernames[j], name)) {
                add_builder(&b, &n, &cap, cb->name, cb->workerbuilddir);
                break;
            }
        }
    }
    /* a removed builder's build runs to its end, as in Buildbot: the worker keeps it */
    for (const struct hold *h = r->holds; h != NULL; h = h->next)
        if (util_streq(h->worker, name) && !has_builder(b, n, h->builder))
            add_builder(&b, &n, &cap, h->builder, h->builddir);
    *out = b;
    return n;
}

static struct pb_value *builder_list_arg(const struct session_builder *b, size_t n)
{
    struct pb_value *list = pb_list();
    for (size_t i = 0; i < n; i++) {
        struct pb_value *pair = pb_tuple();
        pb_append(pair, pb_text(b[i].name));
        pb_append(pair, pb_text(b[i].builddir));
        pb_append(list, pair);
    }
    return pb_append(pb_tuple(), list);
}

/* Fills in the worker's object for each builder from setBuilderList's answer. */
static void take_builder_refs(struct session *s, struct session_builder *b, size_t n,
                              const struct pb_value *answer)
{
    for (size_t i = 0; i < n; i++) {
        struct pb_value *ref = pb_dict_get(answer, b[i].name);
        if (ref != NULL && ref->kind == PB_REMOTE)
            b[i].luid = ref->u.luid;
        else
            log_warn("worker '%s' did not attach builder '%s'", UTIL_ESC(s->name),
                     UTIL_ESC(b[i].name));
    }
    session_free_builders(s->builders, s->n_builders);
    s->builders = b;
    s->n_builders = n;
}

struct builder_list_call {
    struct session *s;
    struct session_builder *b;
    size_t n;
    void (*then)(struct session *s);
};

static void builder_list_cb(void *arg, const struct pb_value *result,
                            const struct pb_value *failure)
{
    struct builder_list_call *c = arg;
    struct session *s = c->s;
    s->builder_list_pending = false;
    if (closing(s)) {
        session_free_builders(c->b, c->n);
    } else if (failure != NULL) {
        session_free_builders(c->b, c->n);
        fail_attach(s, "setBuilderList", failure);
    } else {
        take_builder_refs(s, c->b, c->n, result);
        if (c->then != NULL) {
            c->then(s);
        } else {
            /* builders the worker did not have are usable now: the engine may start them */
            if (s->reg->events.builders_confirmed != NULL)
                s->reg->events.builders_confirmed(s->name, s->reg->events.arg);
            if (s->builder_list_stale)
                session_update_builders(s);
        }
    }
    free(c);
}

static void send_builder_list(struct session *s, void (*then)(struct session *s))
{
    struct builder_list_call *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->n = session_config_builders(s->reg, s->name, &c->b);
    c->then = then;
    s->builder_list_pending = true;
    s->builder_list_stale = false;
    char *cause = NULL;
    struct pb_value *args = builder_list_arg(c->b, c->n);
    if (pb_broker_call(s->broker, s->mind, "setBuilderList", args, NULL, builder_list_cb, c,
                       &cause) != 0) {
        s->builder_list_pending = false;
        session_free_builders(c->b, c->n);
        free(c);
        char *why = xasprintf("calling setBuilderList: %s", cause);
        session_close(s, why);
        free(why);
    }
    free(cause);
}

void session_update_builders(struct session *s)
{
    if (closing(s))
        return;
    if (s->builder_list_pending) {
        s->builder_list_stale = true;
        return;
    }
    log_info("worker '%s': builders changed, sending a new builder list", UTIL_ESC(s->name));
    send_builder_list(s, NULL);
}

/* ------------------------------------------------------------ keepalive */

static void ignore_answer_cb(void *arg, const struct pb_value *result,
                             const struct pb_value *failure)
{
    struct session *s = arg;
    (void)result;
    if (failure != NULL && !closing(s)) {
        char *desc = pb_failure_describe(failure);
        log_debug("worker '%s': call failed: %s", UTIL_ESC(who(s)), UTIL_ESC(desc));
        free(desc);
    }
}

static int keepalive_interval(const struct session *s)
{
    const struct cfg_worker *w = cfg_find_worker(s->reg->cfg, s->name);
    return w != NULL && w->keepalive_interval > 0 ? w->keepalive_interval : 3600;
}

static void keepalive_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->state != SESSION_ATTACHED)
        return;
    print_to(s, s->mind, "keepalive", ignore_answer_cb);
    if (!closing(s))
        uv_timer_start(&s->timer, keepalive_cb, (uint64_t)keepalive_interval(s) * 1000, 0);
}

/* ------------------------------------------------------------ perspective */

static void change_call(struct session *s, struct pb_call *call);

static void shutdown_answer_cb(void *arg, const struct pb_value *result,
                               const struct pb_value *failure)
{
    struct session *s = arg;
    (void)result;
    if (closing(s))
        return;
    if (failure != NULL && !pb_failure_is(failure, PB_ERR_CONNECTION_LOST)) {
        char *desc = pb_failure_describe(failure);
        log_warn("worker '%s': shutdown failed: %s", UTIL_ESC(s->name), UTIL_ESC(desc));
        free(desc);
    }
}

static void perspective_call(struct session *s, struct pb_call *call)
{
    if (util_streq(call->method, "keepalive")) {
        log_debug("worker '%s': keepalive", UTIL_ESC(s->name));
        pb_call_answer(call, NULL);
    } else if (util_streq(call->method, "shutdown")) {
        log_info("worker '%s' asked to shut down gracefully", UTIL_ESC(s->name));
        s->graceful_shutdown = true;
        pb_call_answer(call, NULL);
        if (s->reg->events.shutdown_requested != NULL)
            s->reg->events.shutdown_requested(s->name, s->reg->events.arg);
        else
            call_mind(s, "shutdown", NULL, NULL, shutdown_answer_cb);
    } else {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: perspective_%s", call->method);
    }
}

int wk_shutdown(struct wk_registry *r, const char *name, char **cause)
{
    struct session *s = registry_find_attached(r, name, NULL);
    if (s == NULL)
        return util_cause(cause, "worker '%s' is not connected", name);
    log_info("worker '%s': telling it to shut down", UTIL_ESC(name));
    call_mind(s, "shutdown", NULL, NULL, shutdown_answer_cb);
    return 0;
}

static void broker_call(void *ctx, struct pb_call *call)
{
    struct session *s = ctx;
    if (call->obj == s && s->state == SESSION_ATTACHED) {
        perspective_call(s, call);
        return;
    }
    if (call->obj == s && s->state == SESSION_CHANGES) {
        change_call(s, call);
        return;
    }
    if (call->obj != NULL && call->obj != s) {
        session_object_call(s, call->obj, call);
        return;
    }
    pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                      "No such method: remote_%s", call->method);
}

/* ------------------------------------------------------------ attach */

static void log_attached(struct session *s)
{
    const struct pb_value *info = s->info;
    struct buf b;
    buf_init(&b, 4096); /* what does not fit is left out */
    buf_printf(&b, "worker '%s' attached from %s", UTIL_ESC(s->name), s->peer);
    static const char *const keys[] = {"version", "system", "os_pretty_name", "basedir",
                                       "numcpus", "host",   "admin"};
    for (size_t i = 0; i < UTIL_NELEM(keys); i++) {
        struct pb_value *v = pb_dict_get(info, keys[i]);
        if (v == NULL)
            continue;
        buf_printf(&b, "%s %s: ", i == 0 ? ";" : ",", keys[i]);
        if (pb_is_str(v))
            pb_value_repr(&b, v, 200);
        else
            pb_value_repr(&b, v, 40);
    }
    buf_printf(&b, "; %zu builder(s)", s->n_builders);
    log_info("%s", b.data);
    buf_free(&b);
}

static void attach_finish(struct session *s)
{
    uint32_t luid = pb_broker_export(s->broker, s);
    s->perspective = luid;
    s->state = SESSION_ATTACHED;
    struct pb_call *respond = s->respond;
    s->respond = NULL;
    pb_call_answer(respond, pb_remote(luid));
    if (s->reg->events.attached != NULL)
        s->reg->events.attached(s->name, s->info, s->reg->events.arg);
    log_attached(s);
    uv_timer_start(&s->timer, keepalive_cb, (uint64_t)keepalive_interval(s) * 1000, 0);
    session_ping_start(s);
    if (s->builder_list_stale)
        session_update_builders(s);
}

static void builder_printed_cb(void *arg, const struct pb_value *result,
                               const struct pb_value *failure)
{
    struct session *s = arg;
    (void)result;
    if (closing(s))
        return;
    if (failure != NULL) {
        fail_attach(s, "print", failure);
        return;
    }
    if (--s->prints_pending == 0)
        attach_finish(s);
}

static void builders_attached(struct session *s)
{
    s->prints_pending = 0;
    for (size_t i = 0; i < s->n_builders; i++)
        s->prints_pending += s->builders[i].luid != 0;
    if (s->prints_pending == 0) {
        attach_finish(s);
        return;
    }
    size_t n = s->prints_pending;
    for (size_t i = 0; i < n && !closing(s); i++)
        print_to(s, s->mind, "attached", builder_printed_cb);
}

static void got_info(struct session *s, const struct pb_value *info)
{
    pb_value_free(s->info);
    s->info = info != NULL && info->kind == PB_DICT ? pb_value_dup(info) : pb_dict();
    send_builder_list(s, builders_attached);
}

/* buildslave 0.8: getSlaveInfo, then getCommands and getVersion if needed. */
static void version_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct session *s = arg;
    if (closing(s))
        return;
    if (failure == NULL && result != NULL)
        pb_dict_set(s->info, "version", pb_value_dup(result));
    send_builder_list(s, builders_attached);
}

static void commands_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct session *s = arg;
    if (closing(s))
        return;
    if (failure == NULL && result != NULL)
        pb_dict_set(s->info, "slave_commands", pb_value_dup(result));
    call_mind(s, "getVersion", NULL, NULL, version_cb);
}

static void slave_info_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct session *s = arg;
    if (closing(s))
        return;
    pb_value_free(s->info);
    s->info = failure == NULL && result != NULL && result->kind == PB_DICT ? pb_value_dup(result)
                                                                           : pb_dict();
    if (pb_dict_get(s->info, "slave_commands") != NULL)
        send_builder_list(s, builders_attached);
    else
        call_mind(s, "getCommands", NULL, NULL, commands_cb);
}

static void worker_info_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct session *s = arg;
    if (closing(s))
        return;
    if (failure == NULL) {
        got_info(s, result);
    } else if (pb_failure_is(failure, PB_ERR_NOSUCHMETHOD)) {
        print_to(s, s->mind,
                 "buildbot-slave detected, failing back to deprecated buildslave API. "
                 "(Ignoring missing getWorkerInfo method.)",
                 ignore_answer_cb);
        if (!closing(s))
            call_mind(s, "getSlaveInfo", NULL, NULL, slave_info_cb);
    } else {
        fail_attach(s, "getWorkerInfo", failure);
    }
}

static void attached_printed_cb(void *arg, const struct pb_value *result,
                                const struct pb_value *failure)
{
    struct session *s = arg;
    (void)result;
    if (closing(s))
        return;
    if (failure != NULL) {
        fail_attach(s, "print", failure);
        return;
    }
    call_mind(s, "getWorkerInfo", NULL, NULL, worker_info_cb);
}

static void attach_begin(struct session *s)
{
    log_info("worker '%s' logged in from %s; attaching", UTIL_ESC(s->name), s->peer);
    print_to(s, s->mind, "attached", attached_printed_cb);
}

/* ------------------------------------------------------------ login */

static void refuse_duplicate(struct session *s)
{
    log_warn("worker '%s': refusing a second connection from %s: the connected one still "
             "answers",
             UTIL_ESC(s->name), s->peer);
    struct pb_call *respond = s->respond;
    s->respond = NULL;
    pb_call_fail_with(respond, "builtins.RuntimeError", pb_parents_runtime_error, "%s",
                      "rejecting duplicate worker");
    s->state = SESSION_LOGIN;
    free(s->name);
    s->name = NULL;
}

/* The old connection answered the duplicate ping (or could not). */
static void duplicate_ping_cb(void *arg, const struct pb_value *result,
                              const struct pb_value *failure)
{
    struct session *old = arg;
    (void)result;
    struct session *s = registry_find_id(old->reg, old->duplicate_of);
    old->duplicate_of = 0;
    if (s == NULL || !s->waiting_duplicate || closing(s))
        return;
    s->waiting_duplicate = false;
    uv_timer_stop(&s->timer);
    uv_timer_start(&s->timer, login_timeout_cb, WK_ATTACH_TIMEOUT * 1000, 0);
    if (failure == NULL) {
        refuse_duplicate(s);
        return;
    }
    log_info("worker '%s': old connection is gone; accepting the new one from %s",
             UTIL_ESC(s->name), s->peer);
    session_close(old, "replaced by a new connection");
    attach_begin(s);
}

static void login_timeout_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->waiting_duplicate) {
        s->waiting_duplicate = false;
        struct session *old = registry_find_attached(s->reg, s->name, s);
        log_info("worker '%s': connected one did not answer in %d s; accepting the new "
                 "connection from %s",
                 UTIL_ESC(s->name), WK_DUPLICATE_PING_TIMEOUT, s->peer);
        if (old != NULL) {
            old->duplicate_of = 0;
            session_close(old, "ping timed out after a duplicate login");
        }
        attach_begin(s);
        uv_timer_start(&s->timer, login_timeout_cb, WK_ATTACH_TIMEOUT * 1000, 0);
        return;
    }
    if (s->prelogin) {
        guard_count(s->reg, GUARD_TIMED_OUT, NULL);
        session_close(s, "did not log in in time");
    } else {
        session_close(s, "did not attach in time");
    }
}

/* The bbm.changes.pb change source whose user is `username`, if no worker has the name. */
static const struct cfg_change_source *change_user(const struct cfg *cfg, const char *username)
{
    if (cfg_find_worker(cfg, username) != NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_change_sources; i++)
        if (util_streq(cfg->change_sources[i].kind, "pb") &&
            util_streq(cfg->change_sources[i].user, username))
            return &cfg->change_sources[i];
    return NULL;
}

/* A failed login: one line if the guard allows it, else counted for its summary. */
static void login_failed(struct session *s, const char *username, const char *why)
{
    enum guard_verdict v = guard_failed(s->reg, s);
    if (v == GUARD_QUIET)
        return;
    if (why != NULL)
        log_info("worker '%s' login refused from %s: %s", UTIL_ESC(username), s->peer, why);
    else
        log_info("login from %s as unknown worker '%s' refused", s->peer, UTIL_ESC(username));
    if (v == GUARD_LOG_LAST)
        log_warn("%d failed logins from %s: further attempts from there are refused unchecked "
                 "(one allowed every %d s) and summed up every %d s",
                 WK_LOGIN_BURST, guard_addr_text(s->reg, s), WK_LOGIN_REFILL_S, WK_LOG_INTERVAL_S);
}

static const char *broker_password(void *ctx, const char *username)
{
    struct session *s = ctx;
    if (!guard_may_try(s->reg, s))
        return NULL; /* over the rate: refused, whatever the password */
    const struct cfg_change_source *cs = change_user(s->reg->cfg, username);
    if (cs != NULL)
        return cs->passwd;
    const struct cfg_worker *w = cfg_find_worker(s->reg->cfg, username);
    if (w == NULL)
        login_failed(s, username, NULL);
    return w != NULL ? w->password : NULL;
}

static void change_idle_cb(uv_timer_t *t)
{
    session_close(t->data, "idle change source client");
}

/* A sendchange client: its perspective takes addChange. */
static void change_login(struct session *s, const char *username, struct pb_call *respond)
{
    if (!guard_change_client(s->reg, s)) {
        log_warn("login from %s as change source user '%s' refused: %d clients are connected",
                 s->peer, UTIL_ESC(username), WK_MAX_CHANGE_CLIENTS);
        pb_call_fail_with(respond, PB_ERR_UNAUTHORIZED, pb_parents_unauthorized, "%s", "");
        return;
    }
    free(s->name);
    s->name = xstrdup(username);
    s->state = SESSION_CHANGES;
    s->perspective = pb_broker_export(s->broker, s);
    pb_call_answer(respond, pb_remote(s->perspective));
    uv_timer_start(&s->timer, change_idle_cb, WK_CHANGE_IDLE_TIMEOUT * 1000, 0);
}

static void change_call(struct session *s, struct pb_call *call)
{
    const struct cfg_change_source *cs = change_user(s->reg->cfg, s->name);
    if (!util_streq(call->method, "addChange") || cs == NULL) {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: perspective_%s", call->method);
        return;
    }
    char *cause = NULL;
    const struct pb_value *change = pb_item(call->args, 0);
    if (change == NULL || change->kind != PB_DICT)
        cause = xstrdup("addChange takes a dict");
    else if (s->reg->events.change == NULL)
        cause = xstrdup("this master takes no changes");
    else
        s->reg->events.change(cs, change, &cause, s->reg->events.arg);
    if (cause != NULL) {
        pb_call_fail_with(call, PB_ERR_PB, NULL, "%s", cause);
        free(cause);
    } else {
        pb_call_answer(call, NULL);
    }
}

static void broker_login(void *ctx, const char *username, uint32_t mind, struct pb_call *respond)
{
    struct session *s = ctx;
    if (s->state != SESSION_LOGIN || s->reg->closing) {
        pb_call_fail_with(respond, PB_ERR_UNAUTHORIZED, pb_parents_unauthorized, "%s", "");
        return;
    }
    guard_release(s->reg, s);
    guard_logged_in(s->reg, s);
    if (change_user(s->reg->cfg, username) != NULL) {
        change_login(s, username, respond);
        return;
    }
    free(s->name);
    s->name = xstrdup(username);
    s->mind = mind;
    s->respond = respond;
    s->state = SESSION_ATTACHING;
    uv_timer_start(&s->timer, login_timeout_cb, WK_ATTACH_TIMEOUT * 1000, 0);
    struct session *old = registry_find_attached(s->reg, username, s);
    if (old == NULL) {
        attach_begin(s);
        return;
    }
    log_info("worker '%s': got a duplicate connection from %s; checking whether the one from "
             "%s is alive",
             UTIL_ESC(username), s->peer, old->peer);
    s->waiting_duplicate = true;
    old->duplicate_of = s->id;
    uv_timer_start(&s->timer, login_timeout_cb, WK_DUPLICATE_PING_TIMEOUT * 1000, 0);
    print_to(old, old->mind, "master got a duplicate connection", duplicate_ping_cb);
}

static void broker_refused(void *ctx, const char *username)
{
    login_failed(ctx, username, "wrong password");
}

static void broker_released(void *ctx, uint32_t luid, void *obj)
{
    struct session *s = ctx;
    (void)obj;
    log_debug("worker '%s': released object %u", UTIL_ESC(who(s)), luid);
}

static const struct pb_broker_ops session_ops = {
    .send = broker_send,
    .call = broker_call,
    .password = broker_password,
    .login = broker_login,
    .refused = broker_refused,
    .released = broker_released,
};

void session_start(struct wk_registry *r, struct session *s)
{
    s->reg = r;
    s->tcp.data = s;
    uv_timer_init(r->loop, &s->timer);
    s->timer.data = s;
    uv_timer_init(r->loop, &s->ping_timer);
    s->ping_timer.data = s;
    s->handles_open = 3;
    log_debug("connection from %s", s->peer);
    s->state = SESSION_LOGIN;
    s->broker = pb_broker_new(true, &session_ops, s);
    uv_timer_start(&s->timer, login_timeout_cb, WK_LOGIN_TIMEOUT * 1000, 0);
    uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb);
}
