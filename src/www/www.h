/*
 * www: the HTTP side of the master.  libmicrohttpd serves /api/v2 (and the
 * same under /all/api/v2) from its own threads, each request reading the
 * database on a connection of its own; nothing here runs on, or waits for,
 * the engine thread.  A control action or a webhook is posted to the engine
 * through the control queue (control.h) and its connection suspended, to be
 * resumed when the engine answers -- or when a bounded wait is over.
 */
#ifndef BBM_WWW_H
#define BBM_WWW_H

#include <stdbool.h>
#include <stddef.h>

struct www;
struct ctl_queue;
struct ev_bus;

struct www_opts {
    int port;
    const char *interface; /* NULL = all addresses */
    const char *db_url;
    const char *basedir;
    const char *buildbot_url; /* "http://localhost:8010/" */
    int threads;              /* request threads; 0 = a default */
    /* Connections at once on the web port (each takes a file descriptor); 0 = 512.  One
       client address may hold an eighth of them. */
    unsigned max_connections;
    /*
     * Where control actions and webhooks go (NULL: POSTs are refused).  It
     * must outlive the server.
     */
    struct ctl_queue *control;
    /* The engine's events, served live at /events (SSE) and /ws (NULL: not served); it must
       outlive the server. */
    struct ev_bus *events;
};

/* Starts serving; NULL with *cause if the port cannot be had.  Freed with www_stop. */
struct www *www_start(const struct www_opts *opts, char **cause);
/*
 * Stops accepting, answers the POSTs still waiting for the engine 503 (their
 * actions are cancelled if they have not started), finishes or drops the
 * other requests in flight, frees everything.  Never waits for the engine.
 */
void www_stop(struct www *w);

/*
 * The force schedulers' forms (JSON text of a list, see schedulers.h), served at
 * /api/v2/forceschedulers; set by the engine at start and at every reconfig.
 */
void www_set_forceschedulers(struct www *w, const char *json);
/*
 * Buildbot's frontend configuration (JSON text of an object), served at GET /config so
 * that Buildbot's own UI runs on this master; set at start and at every reconfig.
 */
void www_set_frontend_config(struct www *w, const char *json);
/*
 * www.release_cycle: the release-cycle JSON file /release_status reads its branches from
 * (relative to the master's directory; NULL: none).  `source`: the URL the master fetches
 * that file from (the page says the cycle is being fetched while the file does not exist
 * yet), or NULL.  Set at start and at every reconfig.
 */
void www_set_release_cycle(struct www *w, const char *file, const char *source);
/*
 * www.redirects: the short paths (`from`) the web UI sends on to `to` with a 302, copied;
 * set at start and at every reconfig.
 */
void www_set_redirects(struct www *w, const char *const *from, const char *const *to, size_t n);
/*
 * www.release_test_results: the directory of builds' JUnit files
 * (TAG/BUILDER/build_N.xml, as buildbot.python.org's builds upload them) whose failures
 * /release_status shows (relative to the master's directory; NULL: none).  Set at start
 * and at every reconfig.
 */
void www_set_release_results(struct www *w, const char *dir);
/*
 * The webhook dialects of www.change_hook_dialects ("github"): only their
 * routes take a webhook's body.  Set at start and at every reconfig.
 */
void www_set_hook_dialects(struct www *w, const char *const *names, size_t n);
/*
 * Sessions and access: `secret` is Buildbot's session secret (object_state, the hex text
 * as stored, without its JSON quotes); `conf` the JSON text of www.auth, www.authz and
 * www.cookie_expiration_time as config/ keeps them (NULL: no auth, everything allowed).
 * Set at start and at every reconfig.
 */
void www_set_auth(struct www *w, const char *secret, const char *conf);

#endif
