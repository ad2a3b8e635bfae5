/*
 * www: the HTTP side of the master.  libmicrohttpd serves /api/v2 (and the
 * same under /all/api/v2) from its own threads, each request reading the
 * database on a connection of its own; nothing here runs on, or waits for,
 * the engine thread except a control action, which is posted to the engine
 * and answered when the engine replies.
 */
#ifndef BBM_WWW_H
#define BBM_WWW_H

#include <stdbool.h>
#include <stddef.h>

struct www;
struct www_action;

struct www_opts {
    int port;
    const char *interface; /* NULL = all addresses */
    const char *db_url;
    const char *basedir;
    const char *buildbot_url; /* "http://localhost:8010/" */
    int threads;              /* request threads; 0 = a default */
    /* Connections at once on the web port (each takes a file descriptor); 0 = 512.  One
       client address may hold an eighth of them. */
    int max_connections;
    /*
     * Posts a control action to the engine (called on a web thread).  The
     * engine must later call www_action_reply exactly once, from any thread.
     */
    void (*post)(struct www_action *act, void *arg);
    void *post_arg;
};

/* Starts serving; NULL with *cause if the port cannot be had.  Freed with www_stop. */
struct www *www_start(const struct www_opts *opts, char **cause);
/* Stops accepting, finishes or drops requests in flight, frees everything. */
void www_stop(struct www *w);

/*
 * The force schedulers' forms (JSON text of a list, see schedulers.h), served at
 * /api/v2/forceschedulers; set by the engine at start and at every reconfig.
 */
void www_set_forceschedulers(struct www *w, const char *json);

/* A control action, as the engine sees it. */
const char *www_action_path(const struct www_action *act);   /* "builds/3" */
const char *www_action_method(const struct www_action *act); /* "stop" */
/* The params object as JSON text. */
const char *www_action_params(const struct www_action *act);
/*
 * Answers an action: `result_json` (JSON text, e.g. "null") on success, or an
 * HTTP status, JSON-RPC error code and message.  The action is freed by the
 * web side afterwards; do not touch it again.
 */
void www_action_reply(struct www_action *act, const char *result_json, int http_status,
                      int rpc_code, const char *message);
/*
 * A webhook (POST /change_hook/DIALECT, path "change_hook/DIALECT", method
 * "hook"): a request header (case-insensitive; NULL when absent) and the raw
 * body.  It is answered with www_action_reply_text.
 */
const char *www_action_header(const struct www_action *act, const char *name);
const char *www_action_body(const struct www_action *act, size_t *len);
/* Answers a webhook: `status` and `text` as a plain-text body. */
void www_action_reply_text(struct www_action *act, int status, const char *text);
/* Answers with an error whose message is a JSON object (Buildbot's per-field errors). */
void www_action_reply_json(struct www_action *act, int http_status, int rpc_code,
                           const char *message_json);

#endif
