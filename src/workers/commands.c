/*
 * Builds on a worker: the ping and startBuild that open a build, and the
 * commands of its steps (SPEC 5.6-5.8).  Each command is a RemoteCommand
 * object exported on the worker's connection; the worker calls update() on it
 * with lists of [{key: value}, n] pairs and complete(failure) at the end.
 * When the connection goes, every command of the session completes with a
 * PBConnectionLost failure before the engine hears of the detach.
 */
#include "workers/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The transfer object of a command; `kind` first, see session_obj. */
struct transfer {
    enum session_obj kind; /* SESSION_OBJ_TRANSFER */
    struct wk_command *c;
};

struct wk_command {
    enum session_obj kind; /* SESSION_OBJ_COMMAND; first, see session_obj */
    struct session *s;
    struct wk_command *next;
    uint32_t luid;         /* ours, exported */
    uint32_t builder_luid; /* the worker's WorkerForBuilder */
    char id[24];
    struct wk_command_ops ops;
    struct wk_command_object object;
    struct transfer transfer;
    uint32_t object_luid; /* 0: none */
    void *arg;
};

/* The master-wide command counter Buildbot sends as the command id. */
static unsigned long long next_command_id;

static struct session *find_builder(struct wk_registry *r, const char *worker, const char *builder,
                                    const struct session_builder **sb, char **cause)
{
    struct session *s = registry_find_attached(r, worker, NULL);
    if (s == NULL) {
        util_cause(cause, "worker '%s' is not connected", worker);
        return NULL;
    }
    for (size_t i = 0; i < s->n_builders; i++) {
        if (util_streq(s->builders[i].name, builder) && s->builders[i].luid != 0) {
            *sb = &s->builders[i];
            return s;
        }
    }
    util_cause(cause, "worker '%s' has no builder '%s' attached", worker, builder);
    return NULL;
}

/* ------------------------------------------------------------ startBuild */

struct start_call {
    struct session *s;
    uint32_t builder_luid;
    wk_started_cb done;
    void *arg;
};

static void start_finish(struct start_call *c, const char *step, const struct pb_value *failure)
{
    char *why = NULL;
    if (failure != NULL) {
        char *desc = pb_failure_describe(failure);
        why = xasprintf("%s failed: %s", step, desc);
        free(desc);
    }
    c->done(c->arg, why);
    free(why);
    free(c);
}

static void started_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    (void)result;
    start_finish(arg, "startBuild", failure);
}

static void pinged_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    (void)result;
    struct start_call *c = arg;
    char *cause = NULL;
    if (failure != NULL) {
        start_finish(c, "ping", failure);
    } else if (pb_broker_call(c->s->broker, c->builder_luid, "startBuild", NULL, NULL, started_cb,
                              c, &cause) != 0) {
        struct pb_value *f = pb_failure_new(PB_ERR_PB, cause, pb_parents_pb_error);
        start_finish(c, "startBuild", f);
        pb_value_free(f);
    }
    free(cause);
}

int wk_build_start(struct wk_registry *r, const char *worker, const char *builder,
                   wk_started_cb done, void *arg, char **cause)
{
    const struct session_builder *sb = NULL;
    struct session *s = find_builder(r, worker, builder, &sb, cause);
    if (s == NULL)
        return -1;
    struct start_call *c = xcalloc(1, sizeof *c);
    *c = (struct start_call){s, sb->luid, done, arg};
    registry_hold(r, worker, builder, sb->builddir);
    struct pb_value *kw = pb_dict_set(pb_dict(), "message", pb_text("ping"));
    if (pb_broker_call(s->broker, s->mind, "print", NULL, kw, pinged_cb, c, cause) != 0) {
        free(c);
        wk_build_done(r, worker, builder);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ commands */

static void unlink_command(struct wk_command *c)
{
    for (struct wk_command **p = &c->s->commands; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    if (c->s->broker != NULL) {
        pb_broker_unexport(c->s->broker, c->luid);
        if (c->object_luid != 0)
            pb_broker_unexport(c->s->broker, c->object_luid);
    }
}

static void finish(struct wk_command *c, const struct pb_value *failure)
{
    unlink_command(c);
    c->ops.complete(c->arg, failure);
    free(c);
}

/* Which command a startCommand answer is for: found again by ids, as the command may be
   gone by then (a connection lost finishes every command first). */
struct started {
    struct wk_registry *r;
    uint64_t session;
    uint32_t luid;
};

/*
 * startCommand's answer.  Success only says the command started: its end comes through
 * complete().  A failure (buildbot-worker's UnknownCommand, or an exception while it set
 * the command up) means complete() will never come: the command ends with that failure
 * now, as Buildbot's RemoteCommand ends on the errback of its startCommand.
 */
static void command_started_cb(void *arg, const struct pb_value *result,
                               const struct pb_value *failure)
{
    (void)result;
    struct started st = *(struct started *)arg;
    free(arg);
    if (failure == NULL)
        return;
    struct session *s = registry_find_id(st.r, st.session);
    for (struct wk_command *c = s != NULL ? s->commands : NULL; c != NULL; c = c->next) {
        if (c->luid == st.luid) {
            finish(c, failure);
            return;
        }
    }
}

struct wk_command *wk_command_start(struct wk_registry *r, const char *worker, const char *builder,
                                    const char *name, struct pb_value *args,
                                    const struct wk_command_ops *ops,
                                    const struct wk_command_object *object, void *arg, char **cause)
{
    const struct session_builder *sb = NULL;
    struct session *s = find_builder(r, worker, builder, &sb, cause);
    if (s == NULL) {
        pb_value_free(args);
        return NULL;
    }
    uint32_t builder_luid = sb->luid;
    struct wk_command *c = xcalloc(1, sizeof *c);
    c->kind = SESSION_OBJ_COMMAND;
    c->s = s;
    c->builder_luid = builder_luid;
    c->ops = *ops;
    c->arg = arg;
    snprintf(c->id, sizeof c->id, "%llu", next_command_id++);
    c->luid = pb_broker_export(s->broker, c);
    if (object != NULL) {
        c->object = *object;
        c->transfer = (struct transfer){SESSION_OBJ_TRANSFER, c};
        c->object_luid = pb_broker_export(s->broker, &c->transfer);
        pb_dict_set(args, object->key, pb_remote(c->object_luid));
    }
    struct pb_value *a = pb_tuple();
    pb_append(a, pb_remote(c->luid));
    pb_append(a, pb_text(c->id));
    pb_append(a, pb_text(name));
    pb_append(a, args);
    int rc = c->luid == 0 || (object != NULL && c->object_luid == 0)
                 ? util_cause(cause, "worker '%s' holds too many of the master's objects",
                              UTIL_ESC(s->name))
                 : 0;
    if (rc != 0)
        pb_value_free(a);
    struct started *st = rc == 0 ? xmalloc(sizeof *st) : NULL;
    if (st != NULL)
        *st = (struct started){r, s->id, c->luid};
    if (rc != 0 || pb_broker_call(s->broker, builder_luid, "startCommand", a, NULL,
                                  command_started_cb, st, cause) != 0) {
        free(st);
        pb_broker_unexport(s->broker, c->luid);
        if (c->object_luid != 0)
            pb_broker_unexport(s->broker, c->object_luid);
        free(c);
        return NULL;
    }
    c->next = s->commands;
    s->commands = c;
    return c;
}

void wk_command_interrupt(struct wk_command *c, const char *why)
{
    struct pb_value *a = pb_tuple();
    pb_append(a, pb_text(c->id));
    pb_append(a, pb_text(why));
    char *cause = NULL;
    if (pb_broker_call(c->s->broker, c->builder_luid, "interruptCommand", a, NULL, NULL, NULL,
                       &cause) != 0) {
        log_warn("worker '%s': interrupting command %s: %s", UTIL_ESC(c->s->name), c->id, cause);
        free(cause);
    }
}

/* update([[{key: value, ...}, n], ...]): every key of every pair, in order; answers 0. */
static void command_update(struct wk_command *c, struct pb_call *call)
{
    const struct pb_value *list = pb_item(call->args, 0);
    for (size_t i = 0; i < pb_len(list); i++) {
        const struct pb_value *d = pb_item(pb_item(list, i), 0);
        if (d == NULL || d->kind != PB_DICT)
            continue;
        for (size_t k = 0; k + 1 < d->u.list.n; k += 2) {
            const char *key = pb_str(d->u.list.items[k]);
            if (key != NULL)
                c->ops.update(c->arg, key, d->u.list.items[k + 1]);
        }
    }
    pb_call_answer(call, pb_int(0));
}

void session_object_call(struct session *s, void *obj, struct pb_call *call)
{
    (void)s;
    if (*(enum session_obj *)obj == SESSION_OBJ_TRANSFER) {
        struct wk_command *t = ((struct transfer *)obj)->c;
        t->object.call(t->arg, call);
        return;
    }
    struct wk_command *c = obj;
    if (util_streq(call->method, "update")) {
        command_update(c, call);
    } else if (util_streq(call->method, "complete")) {
        const struct pb_value *f = pb_item(call->args, 0);
        struct pb_value *failure = f != NULL && f->kind == PB_COPY ? pb_value_dup(f) : NULL;
        pb_call_answer(call, NULL); /* frees the call and its args */
        finish(c, failure);
        pb_value_free(failure);
    } else {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", call->method);
    }
}

void session_commands_lost(struct session *s)
{
    struct pb_value *f =
        pb_failure_new(PB_ERR_CONNECTION_LOST, "Connection was lost", pb_parents_pb_error);
    while (s->commands != NULL)
        finish(s->commands, f);
    pb_value_free(f);
}
