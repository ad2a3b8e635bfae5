/*
 * control: the one door from the web threads into the engine.  A control
 * action (force, stop, rebuild, cancel, pause, a webhook...) is a typed
 * message whose target was parsed once, by the web's route matcher; the
 * engine never reads a URL.  Actions travel through a bounded queue: a web
 * thread pushes (a full or closed queue refuses at once, the web answers
 * 503), the engine loop is woken with uv_async_send and takes them.
 *
 * Ownership across threads.  An action is reference counted.  The web
 * thread that makes it holds one reference until its request is over; a
 * successful ctl_queue_push adds one for the engine, which gives it back by
 * answering (ctl_reply*, exactly once) -- or the queue gives it back when
 * it drops an action that was cancelled while it waited.  The state
 * (queued, running, answered, cancelled) and the answer are under the
 * action's own mutex.  The web learns of the answer through the client
 * hooks it attached (ctl_action_set_client): `answered` runs once, on the
 * thread that answered, with no lock of the action held; `release` runs when
 * the last reference goes, so whatever the web keeps for the action lives
 * exactly as long as the action.
 *
 * Uses util and libuv only; www, engine, schedulers, changes and master.c
 * use it.
 */
#ifndef BBM_CONTROL_H
#define BBM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Actions the queue holds at most; one more is refused (the web answers 503). */
#define CTL_QUEUE_MAX 32
/* Headers a webhook action keeps (the rest are dropped). */
#define CTL_MAX_HEADERS 64

enum ctl_kind {
    CTL_FORCE,                /* forceschedulers/NAME: force */
    CTL_SCHEDULER_ENABLE,     /* schedulers/ID: enable */
    CTL_BUILD_STOP,           /* builds/ID (or builders/B/builds/N): stop */
    CTL_BUILD_REBUILD,        /* ... rebuild */
    CTL_REQUEST_CANCEL,       /* buildrequests/ID: cancel */
    CTL_REQUEST_SET_PRIORITY, /* buildrequests/ID: set_priority */
    CTL_WORKER_STOP,          /* workers/ID or NAME: stop (graceful shutdown) */
    CTL_WORKER_KILL,
    CTL_WORKER_PAUSE,
    CTL_WORKER_UNPAUSE,
    CTL_WEBHOOK, /* change_hook/DIALECT: headers and body */
};

/* What an action is about, as the route named it: -1 / NULL where the path had nothing. */
struct ctl_target {
    long long id;        /* buildid, buildrequestid, schedulerid or workerid */
    long long builderid; /* a build's builder (with number), or a worker's (a constraint) */
    long long masterid;  /* /masters/N/...: the worker must be configured on master N */
    long long number;    /* a build's number on its builder */
    const char *name;    /* force scheduler, worker, builder (with number) or dialect name */
};

enum ctl_state {
    CTL_QUEUED,    /* made, or waiting in the queue: may still be cancelled */
    CTL_RUNNING,   /* taken by the engine: it will be answered */
    CTL_ANSWERED,  /* the answer is in */
    CTL_CANCELLED, /* its client was answered otherwise: it never runs */
};

struct ctl_action;

/*
 * A new action (one reference, the caller's) of `kind` on `target` (copied)
 * with the JSON-RPC params as JSON text (copied; "{}" for NULL).
 */
struct ctl_action *ctl_action_new(enum ctl_kind kind, const struct ctl_target *target,
                                  const char *params);
void ctl_action_ref(struct ctl_action *a);
/* Drops a reference; the last one frees the action (and calls the client's release). */
void ctl_action_unref(struct ctl_action *a);

/* A webhook's request header (at most CTL_MAX_HEADERS kept) and body (taken, malloc'd). */
void ctl_action_add_header(struct ctl_action *a, const char *name, const char *value);
void ctl_action_set_body(struct ctl_action *a, char *body, size_t len);

/* Read by the engine once it has taken the action (they do not change then). */
enum ctl_kind ctl_action_kind(const struct ctl_action *a);
const struct ctl_target *ctl_action_target(const struct ctl_action *a);
const char *ctl_action_params(const struct ctl_action *a);
/* A header, case-insensitive (NULL when absent), and the body ("" when none). */
const char *ctl_action_header(const struct ctl_action *a, const char *name);
const char *ctl_action_body(const struct ctl_action *a, size_t *len);
/* "force", "stop"...: the action's JSON-RPC method, for messages. */
const char *ctl_kind_method(enum ctl_kind kind);

/*
 * Answers, on any thread, exactly once: `result_json` (JSON text, e.g.
 * "null") on success, or an HTTP status, JSON-RPC error code and message.
 * Gives back the engine's reference: do not touch the action afterwards.
 */
void ctl_reply(struct ctl_action *a, const char *result_json, int http_status, int rpc_code,
               const char *message);
/* An error whose message is a JSON object (Buildbot's per-field errors). */
void ctl_reply_json(struct ctl_action *a, int http_status, int rpc_code, const char *message_json);
/* A webhook's answer: `status` and `text` as a plain-text body. */
void ctl_reply_text(struct ctl_action *a, int status, const char *text);

/* How the web follows its action (see the top of this file). */
struct ctl_client {
    void (*answered)(void *arg);
    void (*release)(void *arg);
};
/* Before the action is pushed; `client` must outlive it (a static table). */
void ctl_action_set_client(struct ctl_action *a, const struct ctl_client *client, void *arg);

/*
 * The client gives up (its request timed out, closed, or the server stops):
 * an action still queued is cancelled -- it will never run and its params,
 * headers and body are freed now.  Returns the state it was in: CTL_QUEUED
 * (now cancelled), CTL_RUNNING (it runs; its answer will be ignored),
 * CTL_ANSWERED (the answer is there to use), CTL_CANCELLED.
 */
enum ctl_state ctl_action_cancel(struct ctl_action *a);

/* The answer, once ctl_action_cancel or the answered hook says it is in. */
struct ctl_answer {
    int status, code;
    const char *result;  /* JSON text or a webhook's text; NULL for an error */
    const char *message; /* the error's message (JSON text when message_json) */
    bool message_json;
};
/* Fills *out and returns true when answered; the strings live as long as the action. */
bool ctl_action_answer(struct ctl_action *a, struct ctl_answer *out);

/* The queue: bounded, pushed from any thread, taken on the engine's loop. */
struct ctl_queue;

/* A queue on `loop`; `ready(arg)` runs on the loop when actions wait.  Freed with
   ctl_queue_free once ctl_queue_close's handle has closed. */
struct ctl_queue *ctl_queue_new(uv_loop_t *loop, void (*ready)(void *arg), void *arg);
/*
 * Hands `a` to the engine (adds the engine's reference).  Returns 0, or -1
 * with *cause when the queue is full (CTL_QUEUE_MAX) or closed; nothing is
 * kept then.  Any thread.
 */
int ctl_queue_push(struct ctl_queue *q, struct ctl_action *a, char **cause);
/*
 * The next action to run, now CTL_RUNNING (answer it with ctl_reply*), or
 * NULL when none waits.  Actions cancelled while they waited are dropped
 * here.  Engine loop only.
 */
struct ctl_action *ctl_queue_take(struct ctl_queue *q);
/* Refuses every later push, answers those still queued 503, closes the handle. Loop only. */
void ctl_queue_close(struct ctl_queue *q);
/* After the loop has closed the handle, and once nobody pushes any more. */
void ctl_queue_free(struct ctl_queue *q);

#endif
