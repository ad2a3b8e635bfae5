/*
 * Control actions and their queue (see control.h for who owns what).  An
 * action's state moves queued -> running -> answered, or queued ->
 * cancelled, always under its mutex; the queue is a fixed ring under the
 * queue's mutex, and uv_async_send is called with that mutex held so that
 * it can never race the handle's closing.
 */
#include "control/control.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

struct ctl_action {
    pthread_mutex_t lock;
    int refs;
    enum ctl_state state;
    enum ctl_kind kind;
    struct ctl_target target; /* its name is `name` */
    char *name;
    char *params;
    char **headers; /* name, value, name, value... */
    size_t n_headers;
    char *body;
    size_t body_len;
    /* the answer */
    int status, code;
    char *result, *message;
    bool message_json;
    const struct ctl_client *client;
    void *client_arg;
};

struct ctl_action *ctl_action_new(enum ctl_kind kind, const struct ctl_target *target,
                                  const char *params)
{
    struct ctl_action *a = xcalloc(1, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->refs = 1;
    a->state = CTL_QUEUED;
    a->kind = kind;
    a->target = *target;
    a->name = target->name != NULL ? xstrdup(target->name) : NULL;
    a->target.name = a->name;
    a->params = xstrdup(params != NULL ? params : "{}");
    return a;
}

void ctl_action_ref(struct ctl_action *a)
{
    pthread_mutex_lock(&a->lock);
    a->refs++;
    pthread_mutex_unlock(&a->lock);
}

/* What only a run needs; freed as soon as the action cannot run any more. Under the lock. */
static void free_request(struct ctl_action *a)
{
    free(a->params);
    a->params = NULL;
    for (size_t i = 0; i < a->n_headers; i++)
        free(a->headers[i]);
    free(a->headers);
    a->headers = NULL;
    a->n_headers = 0;
    free(a->body);
    a->body = NULL;
    a->body_len = 0;
}

void ctl_action_unref(struct ctl_action *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    bool last = --a->refs == 0;
    pthread_mutex_unlock(&a->lock);
    if (!last)
        return;
    if (a->client != NULL && a->client->release != NULL)
        a->client->release(a->client_arg);
    free_request(a);
    pthread_mutex_destroy(&a->lock);
    free(a->name);
    free(a->result);
    free(a->message);
    free(a);
}

void ctl_action_add_header(struct ctl_action *a, const char *name, const char *value)
{
    if (a->n_headers >= 2 * CTL_MAX_HEADERS)
        return;
    a->headers = xrealloc(a->headers, (a->n_headers + 2) * sizeof *a->headers);
    a->headers[a->n_headers++] = xstrdup(name);
    a->headers[a->n_headers++] = xstrdup(value);
}

void ctl_action_set_body(struct ctl_action *a, char *body, size_t len)
{
    free(a->body);
    a->body = body;
    a->body_len = len;
}

enum ctl_kind ctl_action_kind(const struct ctl_action *a)
{
    return a->kind;
}

const struct ctl_target *ctl_action_target(const struct ctl_action *a)
{
    return &a->target;
}

const char *ctl_action_params(const struct ctl_action *a)
{
    return a->params != NULL ? a->params : "{}";
}

const char *ctl_action_header(const struct ctl_action *a, const char *name)
{
    for (size_t i = 0; i + 1 < a->n_headers; i += 2)
        if (strcasecmp(a->headers[i], name) == 0)
            return a->headers[i + 1];
    return NULL;
}

const char *ctl_action_body(const struct ctl_action *a, size_t *len)
{
    *len = a->body_len;
    return a->body != NULL ? a->body : "";
}

const char *ctl_kind_method(enum ctl_kind kind)
{
    static const char *const names[] = {
        [CTL_FORCE] = "force",           [CTL_SCHEDULER_ENABLE] = "enable",
        [CTL_BUILD_STOP] = "stop",       [CTL_BUILD_REBUILD] = "rebuild",
        [CTL_REQUEST_CANCEL] = "cancel", [CTL_REQUEST_SET_PRIORITY] = "set_priority",
        [CTL_WORKER_STOP] = "stop",      [CTL_WORKER_KILL] = "kill",
        [CTL_WORKER_PAUSE] = "pause",    [CTL_WORKER_UNPAUSE] = "unpause",
        [CTL_WEBHOOK] = "hook",
    };
    return (size_t)kind < UTIL_NELEM(names) && names[kind] != NULL ? names[kind] : "?";
}

void ctl_action_set_client(struct ctl_action *a, const struct ctl_client *client, void *arg)
{
    pthread_mutex_lock(&a->lock);
    a->client = client;
    a->client_arg = arg;
    pthread_mutex_unlock(&a->lock);
}

/* Stores the answer, tells the client, gives back the engine's reference. */
static void answer(struct ctl_action *a, const char *result, int status, int code,
                   const char *message, bool message_json)
{
    pthread_mutex_lock(&a->lock);
    assert(a->state == CTL_RUNNING); /* answered once, after ctl_queue_take */
    a->result = result != NULL ? xstrdup(result) : NULL;
    a->message = message != NULL ? xstrdup(message) : NULL;
    a->status = status;
    a->code = code;
    a->message_json = message_json;
    a->state = CTL_ANSWERED;
    free_request(a);
    const struct ctl_client *client = a->client;
    void *arg = a->client_arg;
    pthread_mutex_unlock(&a->lock);
    if (client != NULL && client->answered != NULL)
        client->answered(arg);
    ctl_action_unref(a);
}

void ctl_reply(struct ctl_action *a, const char *result_json, int http_status, int rpc_code,
               const char *message)
{
    answer(a, result_json, http_status, rpc_code, message, false);
}

void ctl_reply_json(struct ctl_action *a, int http_status, int rpc_code, const char *message_json)
{
    answer(a, NULL, http_status, rpc_code, message_json, true);
}

void ctl_reply_text(struct ctl_action *a, int status, const char *text)
{
    answer(a, text, status, 0, NULL, false);
}

enum ctl_state ctl_action_cancel(struct ctl_action *a)
{
    pthread_mutex_lock(&a->lock);
    enum ctl_state was = a->state;
    if (was == CTL_QUEUED) {
        a->state = CTL_CANCELLED;
        free_request(a);
    }
    pthread_mutex_unlock(&a->lock);
    return was;
}

bool ctl_action_answer(struct ctl_action *a, struct ctl_answer *out)
{
    pthread_mutex_lock(&a->lock);
    bool done = a->state == CTL_ANSWERED;
    if (done)
        *out = (struct ctl_answer){a->status, a->code, a->result, a->message, a->message_json};
    pthread_mutex_unlock(&a->lock);
    return done;
}

/* ------------------------------------------------------------ the queue */

struct ctl_queue {
    uv_async_t async;
    pthread_mutex_t lock;
    struct ctl_action *items[CTL_QUEUE_MAX]; /* a ring: n items from head */
    size_t head, n;
    bool closed;
    void (*ready)(void *arg);
    void *arg;
};

static void async_cb(uv_async_t *h)
{
    struct ctl_queue *q = h->data;
    q->ready(q->arg);
}

struct ctl_queue *ctl_queue_new(uv_loop_t *loop, void (*ready)(void *arg), void *arg)
{
    struct ctl_queue *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    q->ready = ready;
    q->arg = arg;
    uv_async_init(loop, &q->async, async_cb);
    q->async.data = q;
    return q;
}

int ctl_queue_push(struct ctl_queue *q, struct ctl_action *a, char **cause)
{
    int rc = 0;
    ctl_action_ref(a);
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        rc = util_cause(cause, "the master is shutting down");
    } else if (q->n == CTL_QUEUE_MAX) {
        rc = util_cause(cause, "the master is busy: %d control actions are waiting already",
                        CTL_QUEUE_MAX);
    } else {
        q->items[(q->head + q->n++) % CTL_QUEUE_MAX] = a;
        uv_async_send(&q->async);
    }
    pthread_mutex_unlock(&q->lock);
    if (rc < 0)
        ctl_action_unref(a);
    return rc;
}

static struct ctl_action *pop(struct ctl_queue *q)
{
    pthread_mutex_lock(&q->lock);
    struct ctl_action *a = NULL;
    if (q->n > 0) {
        a = q->items[q->head];
        q->head = (q->head + 1) % CTL_QUEUE_MAX;
        q->n--;
    }
    pthread_mutex_unlock(&q->lock);
    return a;
}

struct ctl_action *ctl_queue_take(struct ctl_queue *q)
{
    struct ctl_action *a;
    while ((a = pop(q)) != NULL) {
        pthread_mutex_lock(&a->lock);
        bool run = a->state == CTL_QUEUED;
        if (run)
            a->state = CTL_RUNNING;
        pthread_mutex_unlock(&a->lock);
        if (run)
            return a;
        ctl_action_unref(a); /* cancelled while it waited */
    }
    return NULL;
}

void ctl_queue_close(struct ctl_queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool was = q->closed;
    q->closed = true;
    pthread_mutex_unlock(&q->lock);
    if (was)
        return;
    struct ctl_action *a;
    while ((a = ctl_queue_take(q)) != NULL)
        ctl_reply(a, NULL, 503, -32603, "the master is shutting down");
    uv_close((uv_handle_t *)&q->async, NULL);
}

void ctl_queue_free(struct ctl_queue *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->lock);
    free(q);
}
