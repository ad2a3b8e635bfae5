/*
 * broker.c: Perspective Broker messages over one connection (SPEC 1.5, 3).
 *
 * The broker sits between the banana/jelly codecs and the application.  It
 * negotiates the "pb" dialect and protocol version 6, then turns incoming
 * `message` expressions into pb_call objects for the application (or for
 * login.c, which serves the root and the login challengers), matches `answer`
 * and `error` to the outgoing calls waiting for them, and keeps the table of
 * exported objects with Twisted's reference counts: every `["remote", luid]`
 * we send adds one, every `decref` from the peer takes one away.
 *
 * It is transport-agnostic: bytes come in through pb_broker_receive, decoded
 * lazily one expression at a time (the peer's dialect choice, version and
 * first call usually arrive in one segment), and go out through ops->send.
 * Where Python drops the connection (unknown request id, bad version, unknown
 * message kind) pb_broker_receive returns -1; decrefs for unknown objects are
 * only logged, as SPEC 7.1 advises.
 */
#include "pb/pb_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PROTOCOL_VERSION 6
#define RECEIVE_SLICE 65536 /* bytes handed to the decoder at a time */

enum state {
    ST_WANT_OFFER,   /* client: waiting for the server's list of dialects */
    ST_WANT_CHOICE,  /* server: waiting for the client's dialect */
    ST_WANT_VERSION, /* "pb" agreed; the peer's ["version", 6] comes next */
    ST_READY,
    ST_FAILED, /* a protocol error was reported: nothing more is read or sent */
};

/* An exported object. */
struct local {
    uint32_t luid;
    uint32_t refs; /* ["remote", luid] tokens sent minus decrefs received */
    void *obj;
    const struct pb_handler *handler; /* NULL: calls go to ops->call */
};

/* An outgoing call waiting for its answer. */
struct pending {
    uint32_t reqid;
    pb_answer_cb cb;
    void *arg;
};

/* An incoming call, linked into its broker until it is answered. */
struct call_node {
    struct pb_call call;
    char *method;
    struct call_node *prev, *next;
};

struct pb_broker {
    bool server;
    enum state state;
    bool vocab;   /* the encoder uses the pb vocabulary */
    bool closing; /* inside pb_broker_free: nothing is sent any more */
    const struct pb_broker_ops *ops;
    void *ctx;
    struct pb_decoder *dec;
    const struct pb_limits *lim;

    struct local *locals; /* sorted by luid, since luids only grow */
    size_t n_locals, cap_locals;
    uint32_t next_luid;

    struct pending *pending; /* sorted by reqid, since reqids only grow */
    size_t n_pending, cap_pending;
    uint32_t next_reqid;

    struct call_node *calls;
    size_t n_calls;

    unsigned char challenge[PB_CHALLENGE_LEN];
    bool fixed_challenge;
};

const char *const pb_parents_pb_error[] = {PB_ERR_PB, "builtins.Exception",
                                           "builtins.BaseException", "builtins.object", NULL};
const char *const pb_parents_no_such_method[] = {PB_ERR_NOSUCHMETHOD,  "builtins.AttributeError",
                                                 "builtins.Exception", "builtins.BaseException",
                                                 "builtins.object",    NULL};
static const char *const parents_connection_lost[] = {PB_ERR_CONNECTION_LOST, "builtins.Exception",
                                                      "builtins.BaseException", "builtins.object",
                                                      NULL};

static const struct pb_handler root_handler = {pb_login_root_call, NULL};

/* ------------------------------------------------------------ helpers */

static bool bytes_equal(const struct pb_value *v, const char *word)
{
    return v != NULL && v->kind == PB_BYTES && v->u.s.len == strlen(word) &&
           memcmp(v->u.s.data, word, v->u.s.len) == 0;
}

/* Sets *cause to "what, got <value>" and returns -1. */
static int bad(char **cause, const char *what, const struct pb_value *v)
{
    struct buf shown;
    buf_init(&shown, 400); /* a repr that would not fit stops short */
    pb_value_repr(&shown, v, 40);
    util_cause(cause, "%s, got %s", what, shown.data != NULL ? shown.data : "nothing");
    buf_free(&shown);
    return -1;
}

/* Strict UTF-8 without NUL bytes: Python decodes method names so, outside its error path. */
static bool valid_name(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 0 : c < 0xc2 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf5 ? 3 : 9;
        if (c == 0 || n > len - i - 1)
            return false;
        unsigned char c1 = n > 0 ? s[i + 1] : 0x80;
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f))
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        }
        i += n + 1;
    }
    return true;
}

/* A request id or object id: an INT in [0, 2^32). */
static bool get_id(const struct pb_value *v, uint32_t *out)
{
    if (v == NULL || v->kind != PB_INT || v->u.i < 0 || v->u.i > (int64_t)UINT32_MAX)
        return false;
    *out = (uint32_t)v->u.i;
    return true;
}

static bool can_send(const struct pb_broker *b)
{
    return !b->closing && b->state != ST_FAILED;
}

/* Calls fn for every remote reference inside a jelly value. */
static void each_remote(struct pb_broker *b, const struct pb_value *v,
                        void (*fn)(struct pb_broker *b, uint32_t luid))
{
    if (v == NULL)
        return;
    switch (v->kind) {
    case PB_REMOTE:
        fn(b, v->u.luid);
        break;
    case PB_LIST:
    case PB_TUPLE:
    case PB_DICT:
    case PB_SET:
    case PB_FROZENSET:
        for (size_t i = 0; i < v->u.list.n; i++)
            each_remote(b, v->u.list.items[i], fn);
        break;
    case PB_COPY:
        each_remote(b, v->u.copy.state, fn);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ exported objects */

static struct local *find_local(struct pb_broker *b, uint32_t luid, size_t *index)
{
    size_t lo = 0, hi = b->n_locals;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->locals[mid].luid == luid) {
            if (index != NULL)
                *index = mid;
            return &b->locals[mid];
        }
        if (b->locals[mid].luid < luid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static uint32_t add_local(struct pb_broker *b, void *obj, const struct pb_handler *handler)
{
    if (b->n_locals >= b->lim->max_objects || b->next_luid == 0) {
        /* a peer can cause this (logins without respond): the caller reports it */
        log_debug("pb: cannot export more than %zu objects on this connection",
                  b->lim->max_objects);
        return 0;
    }
    b->locals = xgrow(b->locals, &b->cap_locals, b->n_locals + 1, sizeof *b->locals);
    struct local *l = &b->locals[b->n_locals++];
    *l = (struct local){.luid = b->next_luid++, .obj = obj, .handler = handler};
    return l->luid;
}

/* Takes entry `i` out of the table; returns it. */
static struct local remove_local(struct pb_broker *b, size_t i)
{
    struct local l = b->locals[i];
    memmove(&b->locals[i], &b->locals[i + 1], (b->n_locals - i - 1) * sizeof *b->locals);
    b->n_locals--;
    return l;
}

static void count_sent(struct pb_broker *b, uint32_t luid)
{
    struct local *l = find_local(b, luid, NULL);
    if (l != NULL)
        l->refs++;
    else
        log_debug("pb: sending a reference to object %u, which is not exported", luid);
}

uint32_t pb_broker_export(struct pb_broker *b, void *obj)
{
    return add_local(b, obj, NULL);
}

uint32_t pb_broker_export_handler(struct pb_broker *b, const struct pb_handler *h, void *obj)
{
    return add_local(b, obj, h);
}

void pb_broker_unexport(struct pb_broker *b, uint32_t luid)
{
    size_t i;
    if (find_local(b, luid, &i) == NULL)
        return;
    struct local l = remove_local(b, i);
    if (l.handler != NULL && l.handler->free != NULL)
        l.handler->free(l.obj);
}

size_t pb_broker_exported(const struct pb_broker *b)
{
    return b->n_locals;
}

/* ------------------------------------------------------------ sending */

/* Encodes one PB message (a banana tree, freed here) into `out`. */
static int encode(struct pb_broker *b, struct pb_value *tree, struct buf *out, char **cause)
{
    buf_init(out, 0);
    int rc = pb_banana_encode(out, tree, b->vocab, cause);
    pb_value_free(tree);
    if (rc != 0)
        buf_free(out);
    return rc;
}

static void deliver(struct pb_broker *b, struct buf *out)
{
    if (can_send(b) && out->len > 0)
        b->ops->send(b->ctx, out->data, out->len);
    buf_free(out);
}

static int send_tree(struct pb_broker *b, struct pb_value *tree, char **cause)
{
    struct buf out;
    if (encode(b, tree, &out, cause) != 0)
        return -1;
    deliver(b, &out);
    return 0;
}

/* [kind, n, value]: answer, error and decref; takes `value` (may be NULL). */
static struct pb_value *envelope(const char *kind, uint32_t n, struct pb_value *value)
{
    struct pb_value *tree = pb_append(pb_list(), pb_bytes(kind, strlen(kind)));
    pb_append(tree, pb_int(n));
    return value != NULL ? pb_append(tree, value) : tree;
}

void pb_broker_decref(struct pb_broker *b, uint32_t luid)
{
    if (!can_send(b) || !b->vocab)
        return;
    char *cause = NULL;
    if (send_tree(b, envelope("decref", luid, NULL), &cause) != 0)
        log_error("pb: cannot encode a decref: %s", cause);
    free(cause);
}

static void drop_remote(struct pb_broker *b, uint32_t luid)
{
    pb_broker_decref(b, luid);
}

void pb_broker_drop_remotes(struct pb_broker *b, const struct pb_value *v)
{
    each_remote(b, v, drop_remote);
}

/* ------------------------------------------------------------ outgoing calls */

static struct pending *find_pending(struct pb_broker *b, uint32_t reqid, size_t *index)
{
    size_t lo = 0, hi = b->n_pending;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->pending[mid].reqid == reqid) {
            *index = mid;
            return &b->pending[mid];
        }
        if (b->pending[mid].reqid < reqid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct pending remove_pending(struct pb_broker *b, size_t i)
{
    struct pending p = b->pending[i];
    memmove(&b->pending[i], &b->pending[i + 1], (b->n_pending - i - 1) * sizeof *b->pending);
    b->n_pending--;
    return p;
}

static struct pb_value *call_tree(uint32_t reqid, uint32_t luid, const char *method,
                                  const struct pb_value *args, const struct pb_value *kwargs)
{
    struct pb_value *tree = envelope("message", reqid, NULL);
    pb_append(tree, luid == 0 ? pb_bytes("root", 4) : pb_int(luid));
    pb_append(tree, pb_bytes(method, strlen(method)));
    pb_append(tree, pb_int(1));
    pb_append(tree, pb_jelly(args));
    return pb_append(tree, pb_jelly(kwargs));
}

static int check_can_call(const struct pb_broker *b, char **cause)
{
    if (!can_send(b))
        return util_cause(cause, "the PB connection is closed");
    if (!b->vocab)
        return util_cause(cause, "the PB dialect has not been negotiated yet");
    if (b->n_pending >= PB_MAX_PENDING)
        return util_cause(cause, "%d calls are already waiting for answers", PB_MAX_PENDING);
    return 0;
}

int pb_broker_call(struct pb_broker *b, uint32_t luid, const char *method, struct pb_value *args,
                   struct pb_value *kwargs, pb_answer_cb cb, void *arg, char **cause)
{
    args = args != NULL ? args : pb_tuple();
    kwargs = kwargs != NULL ? kwargs : pb_dict();
    struct buf out;
    int rc = check_can_call(b, cause);
    if (rc == 0)
        rc = encode(b, call_tree(b->next_reqid, luid, method, args, kwargs), &out, cause);
    if (rc == 0) {
        b->pending = xgrow(b->pending, &b->cap_pending, b->n_pending + 1, sizeof *b->pending);
        b->pending[b->n_pending++] = (struct pending){b->next_reqid++, cb, arg};
        each_remote(b, args, count_sent);
        each_remote(b, kwargs, count_sent);
        deliver(b, &out);
    }
    pb_value_free(args);
    pb_value_free(kwargs);
    return rc;
}

size_t pb_broker_pending(const struct pb_broker *b)
{
    return b->n_pending;
}

/* Fails every outgoing call still waiting with PBConnectionLost. */
static void fail_pending(struct pb_broker *b)
{
    if (b->n_pending == 0)
        return;
    struct pb_value *lost =
        pb_failure_new(PB_ERR_CONNECTION_LOST, "Connection lost", parents_connection_lost);
    while (b->n_pending > 0) {
        struct pending p = remove_pending(b, 0);
        if (p.cb != NULL)
            p.cb(p.arg, NULL, lost);
    }
    pb_value_free(lost);
}

/* ------------------------------------------------------------ incoming calls */

static struct call_node *node_of(struct pb_call *call)
{
    return (struct call_node *)((char *)call - offsetof(struct call_node, call));
}

static struct pb_call *new_call(struct pb_broker *b, uint32_t reqid, const struct pb_value *method,
                                bool answer_required)
{
    struct call_node *n = xcalloc(1, sizeof *n);
    n->method = xstrndup(method->u.s.data, method->u.s.len);
    n->call = (struct pb_call){
        .broker = b, .reqid = reqid, .answer_required = answer_required, .method = n->method};
    n->next = b->calls;
    if (b->calls != NULL)
        b->calls->prev = n;
    b->calls = n;
    b->n_calls++;
    return &n->call;
}

static void free_call(struct pb_call *call)
{
    struct call_node *n = node_of(call);
    struct pb_broker *b = call->broker;
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        b->calls = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    b->n_calls--;
    pb_value_free(call->args);
    pb_value_free(call->kwargs);
    free(n->method);
    free(n);
}

/* Sends [kind, reqid, value] for a call; an answer that cannot be encoded becomes an error. */
static void reply(struct pb_call *call, const char *kind, struct pb_value *value)
{
    struct pb_broker *b = call->broker;
    struct buf out;
    char *cause = NULL;
    if (encode(b, envelope(kind, call->reqid, pb_jelly(value)), &out, &cause) == 0) {
        each_remote(b, value, count_sent);
        deliver(b, &out);
    } else {
        log_error("pb: cannot encode the %s to call %u (%s): %s", kind, call->reqid,
                  UTIL_ESC(call->method), cause);
        struct pb_value *f =
            pb_failure_new(PB_ERR_PB, "the result could not be encoded", pb_parents_pb_error);
        if (send_tree(b, envelope("error", call->reqid, pb_jelly(f)), NULL) != 0)
            log_error("pb: cannot encode a failure for call %u", call->reqid);
        pb_value_free(f);
    }
    free(cause);
}

void pb_call_answer(struct pb_call *call, struct pb_value *result)
{
    if (call->answer_required && can_send(call->broker)) {
        if (result == NULL)
            result = pb_none();
        reply(call, "answer", result);
    }
    pb_value_free(result);
    free_call(call);
}

void pb_call_fail(struct pb_call *call, struct pb_value *failure)
{
    if (call->answer_required && can_send(call->broker)) {
        if (failure == NULL)
            failure = pb_failure_new(PB_ERR_PB, "", pb_parents_pb_error);
        reply(call, "error", failure);
    }
    pb_value_free(failure);
    free_call(call);
}

void pb_call_fail_with(struct pb_call *call, const char *type, const char *const *parents,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    pb_broker_drop_remotes(call->broker, call->args);
    pb_broker_drop_remotes(call->broker, call->kwargs);
    pb_call_fail(call, pb_failure_new(type, msg, parents));
    free(msg);
}

/* Finds the object a message is for; NULL handler and obj for an application object. */
static bool find_target(struct pb_broker *b, const struct pb_value *objid, struct pb_call *call,
                        const struct pb_handler **handler)
{
    uint32_t luid;
    struct local *l;
    if (b->server && bytes_equal(objid, "root")) {
        *handler = &root_handler;
        return true;
    }
    if (!get_id(objid, &luid) || (l = find_local(b, luid, NULL)) == NULL)
        return false;
    call->luid = luid;
    call->obj = l->obj;
    *handler = l->handler;
    return true;
}

/* Unjellies a call's arguments; fails the call (and returns -1) when they are unusable. */
static int unjelly_args(struct pb_call *call, const struct pb_value *args,
                        const struct pb_value *kwargs)
{
    char *cause = NULL;
    size_t max = call->broker->lim->max_nodes;
    if (pb_unjelly(args, max, &call->args, &cause) != 0 ||
        pb_unjelly(kwargs, max, &call->kwargs, &cause) != 0) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error,
                          "the arguments of %s could not be decoded: %s", call->method, cause);
        free(cause);
        return -1;
    }
    bool tuple = call->args->kind == PB_TUPLE || call->args->kind == PB_LIST;
    if (!tuple || call->kwargs->kind != PB_DICT) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error,
                          "the arguments of %s are not a tuple and a dictionary", call->method);
        return -1;
    }
    return 0;
}

static void dispatch(struct pb_broker *b, struct pb_call *call, const struct pb_handler *handler)
{
    if (handler != NULL)
        handler->call(call);
    else if (b->ops->call != NULL)
        b->ops->call(b->ctx, call);
    else
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", call->method);
}

/* ["message", reqid, objid, method, answerRequired, args, kwargs] */
static int got_call(struct pb_broker *b, struct pb_value **item, char **cause)
{
    uint32_t reqid;
    const struct pb_handler *handler = NULL;
    if (!get_id(item[1], &reqid))
        return bad(cause, "a PB message needs a request id", item[1]);
    if (item[3]->kind != PB_BYTES)
        return bad(cause, "a PB method name must be a byte string", item[3]);
    if (!valid_name((const unsigned char *)item[3]->u.s.data, item[3]->u.s.len))
        return bad(cause, "a PB method name must be UTF-8 without NUL bytes", item[3]);
    if (item[4]->kind != PB_INT)
        return bad(cause, "the answerRequired flag of a PB message must be an integer", item[4]);
    if (b->n_calls >= b->lim->max_calls)
        return util_cause(cause, "the peer has more than %zu calls waiting for answers",
                          b->lim->max_calls);
    struct pb_call *call = new_call(b, reqid, item[3], item[4]->u.i != 0);
    if (!find_target(b, item[2], call, &handler)) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error, "Invalid Object ID");
        return 0;
    }
    if (unjelly_args(call, item[5], item[6]) != 0)
        return 0;
    dispatch(b, call, handler);
    return 0;
}

/* ------------------------------------------------------------ other messages */

/* ["answer", reqid, result] and ["error", reqid, failure] */
static int got_result(struct pb_broker *b, struct pb_value **item, bool error, char **cause)
{
    uint32_t reqid;
    size_t i;
    const char *kind = error ? "error" : "answer";
    if (!get_id(item[1], &reqid))
        return bad(cause,
                   error ? "a PB error needs a request id" : "a PB answer needs a request id",
                   item[1]);
    if (find_pending(b, reqid, &i) == NULL)
        return util_cause(cause, "a PB %s names request %u, which is not pending", kind, reqid);
    struct pb_value *v = NULL;
    char *why = NULL;
    if (pb_unjelly(item[2], b->lim->max_nodes, &v, &why) != 0) {
        util_cause(cause, "the %s to request %u cannot be decoded: %s", kind, reqid, why);
        free(why);
        return -1;
    }
    struct pending p = remove_pending(b, i);
    if (p.cb != NULL)
        p.cb(p.arg, error ? NULL : v, error ? v : NULL);
    pb_value_free(v);
    return 0;
}

static int got_answer(struct pb_broker *b, struct pb_value **item, char **cause)
{
    return got_result(b, item, false, cause);
}

static int got_error(struct pb_broker *b, struct pb_value **item, char **cause)
{
    return got_result(b, item, true, cause);
}

/* ["decref", luid]: unknown objects are ignored, unlike Python (SPEC 7.1). */
static int got_decref(struct pb_broker *b, struct pb_value **item, char **cause)
{
    uint32_t luid;
    size_t i;
    if (item[1]->kind != PB_INT && item[1]->kind != PB_BYTES)
        return bad(cause, "a PB decref needs an object id", item[1]);
    struct local *l = get_id(item[1], &luid) ? find_local(b, luid, &i) : NULL;
    if (l == NULL || l->refs == 0) {
        if (item[1]->kind == PB_INT)
            log_debug("pb: ignoring a decref for object %lld, which the peer does not hold",
                      (long long)item[1]->u.i);
        else
            log_debug("pb: ignoring a decref for a named object");
        return 0;
    }
    if (--l->refs > 0)
        return 0;
    struct local gone = remove_local(b, i);
    if (gone.handler != NULL) {
        if (gone.handler->free != NULL)
            gone.handler->free(gone.obj);
    } else if (b->ops->released != NULL) {
        b->ops->released(b->ctx, gone.luid, gone.obj);
    }
    return 0;
}

static int got_version(struct pb_broker *b, struct pb_value **item, char **cause)
{
    if (item[1]->kind != PB_INT || item[1]->u.i != PROTOCOL_VERSION)
        return bad(cause, "the peer must speak PB protocol version 6", item[1]);
    if (b->state == ST_WANT_VERSION)
        b->state = ST_READY;
    return 0;
}

static int got_cache(struct pb_broker *b, struct pb_value **item, char **cause)
{
    (void)b;
    return bad(cause, "PB cacheable objects are not supported", item[0]);
}

static const struct {
    const char *kind;
    size_t n; /* items in the message, kind included */
    int (*fn)(struct pb_broker *b, struct pb_value **item, char **cause);
} kinds[] = {
    {"message", 7, got_call},  {"answer", 3, got_answer},   {"error", 3, got_error},
    {"decref", 2, got_decref}, {"version", 2, got_version}, {"cachemessage", 0, got_cache},
    {"decache", 0, got_cache}, {"uncache", 0, got_cache},
};

static int got_message(struct pb_broker *b, const struct pb_value *tree, char **cause)
{
    if (tree->kind != PB_LIST || tree->u.list.n == 0)
        return bad(cause, "a PB message must be a non-empty list", tree);
    struct pb_value **item = tree->u.list.items;
    if (b->state == ST_WANT_VERSION && !bytes_equal(item[0], "version"))
        return bad(cause, "the peer must send its PB version first", item[0]);
    for (size_t i = 0; i < UTIL_NELEM(kinds); i++) {
        if (!bytes_equal(item[0], kinds[i].kind))
            continue;
        if (kinds[i].n != 0 && tree->u.list.n != kinds[i].n)
            return util_cause(cause, "a PB '%s' must have %zu items, got %zu", kinds[i].kind,
                              kinds[i].n, tree->u.list.n);
        return kinds[i].fn(b, item, cause);
    }
    return bad(cause, "unknown PB message kind", item[0]);
}

/* ------------------------------------------------------------ negotiation */

static int send_version(struct pb_broker *b, char **cause)
{
    b->vocab = true;
    b->state = ST_WANT_VERSION;
    return send_tree(b, envelope("version", PROTOCOL_VERSION, NULL), cause);
}

/* Server: the client's choice, a bare "pb". */
static int got_choice(struct pb_broker *b, const struct pb_value *tree, char **cause)
{
    if (!bytes_equal(tree, "pb"))
        return bad(cause, "the client must choose the \"pb\" dialect", tree);
    return send_version(b, cause);
}

/* Client: the server's list of dialects, which must offer "pb". */
static int got_offer(struct pb_broker *b, const struct pb_value *tree, char **cause)
{
    bool offered = false;
    for (size_t i = 0; tree->kind == PB_LIST && i < tree->u.list.n; i++)
        offered = offered || bytes_equal(tree->u.list.items[i], "pb");
    if (!offered)
        return bad(cause, "the server must offer the \"pb\" dialect", tree);
    if (send_tree(b, pb_bytes("pb", 2), cause) != 0 || send_version(b, cause) != 0)
        return -1;
    if (b->ops->ready != NULL)
        b->ops->ready(b->ctx);
    return 0;
}

/* ------------------------------------------------------------ receiving */

static int handle(struct pb_broker *b, const struct pb_value *tree, char **cause)
{
    switch (b->state) {
    case ST_WANT_OFFER:
        return got_offer(b, tree, cause);
    case ST_WANT_CHOICE:
        return got_choice(b, tree, cause);
    case ST_WANT_VERSION:
    case ST_READY:
        return got_message(b, tree, cause);
    case ST_FAILED:
        break;
    }
    return util_cause(cause, "the PB connection already failed");
}

/* Handles every complete expression the decoder holds. */
static int drain(struct pb_broker *b, char **cause)
{
    for (;;) {
        struct pb_value *tree = NULL;
        int rc = pb_decoder_next(b->dec, &tree, cause);
        if (rc <= 0)
            return rc;
        rc = handle(b, tree, cause);
        pb_value_free(tree);
        if (rc != 0)
            return -1;
    }
}

int pb_broker_receive(struct pb_broker *b, const void *data, size_t len, char **cause)
{
    const char *p = data;
    if (b->state == ST_FAILED)
        return util_cause(cause, "the PB connection already failed");
    do {
        /* a slice never passes one expression: the decoder holds no more than that */
        size_t slice = b->lim->max_expr < RECEIVE_SLICE ? b->lim->max_expr : RECEIVE_SLICE;
        size_t n = len < slice ? len : slice;
        if (pb_decoder_feed(b->dec, p, n, cause) != 0 || drain(b, cause) != 0) {
            b->state = ST_FAILED;
            return -1;
        }
        p += n;
        len -= n;
    } while (len > 0);
    return 0;
}

/* ------------------------------------------------------------ life cycle */

struct pb_broker *pb_broker_new(bool server, const struct pb_broker_ops *ops, void *ctx)
{
    struct pb_broker *b = xcalloc(1, sizeof *b);
    b->server = server;
    b->state = server ? ST_WANT_CHOICE : ST_WANT_OFFER;
    b->ops = ops;
    b->ctx = ctx;
    b->lim = server ? &pb_limits_login : &pb_limits_session;
    b->dec = pb_decoder_new(b->lim);
    b->next_luid = 1;
    b->next_reqid = 1;
    if (server) {
        struct pb_value *offer = pb_list();
        pb_append(offer, pb_bytes("pb", 2));
        pb_append(offer, pb_bytes("none", 4));
        if (send_tree(b, offer, NULL) != 0)
            log_error("pb: cannot encode the dialect offer");
    }
    return b;
}

void pb_broker_free(struct pb_broker *b)
{
    if (b == NULL)
        return;
    b->closing = true;
    fail_pending(b);
    while (b->calls != NULL)
        free_call(&b->calls->call);
    while (b->n_locals > 0)
        pb_broker_unexport(b, b->locals[b->n_locals - 1].luid);
    pb_decoder_free(b->dec);
    free(b->locals);
    free(b->pending);
    free(b);
}

void pb_broker_set_limits(struct pb_broker *b, const struct pb_limits *lim)
{
    b->lim = lim;
    pb_decoder_set_limits(b->dec, lim);
}

const struct pb_broker_ops *pb_broker_ops(const struct pb_broker *b, void **ctx)
{
    *ctx = b->ctx;
    return b->ops;
}

void pb_broker_set_challenge(struct pb_broker *b, const unsigned char challenge[PB_CHALLENGE_LEN])
{
    memcpy(b->challenge, challenge, PB_CHALLENGE_LEN);
    b->fixed_challenge = true;
}

const unsigned char *pb_broker_fixed_challenge(const struct pb_broker *b)
{
    return b->fixed_challenge ? b->challenge : NULL;
}
