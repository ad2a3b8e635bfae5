/*
 * workers: the master's side of Buildbot workers, over PB.
 *
 * A registry owns the PB listener and one session per TCP connection.  A
 * session negotiates the dialect, checks the worker's password against the
 * configuration, runs Buildbot's attach sequence (print, getWorkerInfo with
 * the buildslave 0.8 fallbacks, setBuilderList, print per builder) before it
 * answers the login, then keeps the connection alive until either side goes.
 * Everything runs on the engine's libuv loop.
 */
#ifndef BBM_WORKERS_H
#define BBM_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "config/config.h"
#include "pb/pb.h"

struct wk_registry;

/* Seconds a connection may take to log in (a worker needs two round trips). */
#define WK_LOGIN_TIMEOUT 15
/* Seconds a worker whose password was accepted may take to attach. */
#define WK_ATTACH_TIMEOUT 60
/* Seconds a sendchange client may stay idle after its login. */
#define WK_CHANGE_IDLE_TIMEOUT 60
/* Seconds the old connection has to answer when a duplicate login arrives. */
#define WK_DUPLICATE_PING_TIMEOUT 10
/* Bytes sent to one worker and not yet written out before it is judged stuck and dropped. */
#define WK_MAX_WRITE_QUEUE (64u << 20)
/* The same for a connection that has not logged in. */
#define WK_LOGIN_MAX_WRITE_QUEUE (16u << 10)
/* Connections at once, logged in or not, unless wk_set_budget says fewer. */
#define WK_MAX_CONNECTIONS 4096
/* Of which not logged in yet (at most half of the budget). */
#define WK_MAX_PRELOGIN 256
/* Sessions of sendchange clients (bbm.changes.pb) at once. */
#define WK_MAX_CHANGE_CLIENTS 16

/* What the engine hears of workers, on the loop. */
struct wk_events {
    /* The attach sequence is done; `info` is the worker's getWorkerInfo dict. */
    void (*attached)(const char *name, const struct pb_value *info, void *arg);
    /* An attached worker's connection is gone. */
    void (*detached)(const char *name, void *arg);
    /* The worker asked to be shut down once idle (perspective.shutdown, SPEC 5.10). */
    void (*shutdown_requested)(const char *name, void *arg);
    /*
     * An attached worker answered a new builder list (setBuilderList after a
     * reconfig): the builders it has from now on are those wk_has_builder says.
     */
    void (*builders_confirmed)(const char *name, void *arg);
    /*
     * A client logged in as the user of a bbm.changes.pb change source `cs`
     * called addChange with `change` (Buildbot's sendchange dict): 0, or -1
     * with *cause, which the client is told.
     */
    int (*change)(const struct cfg_change_source *cs, const struct pb_value *change, char **cause,
                  void *arg);
    void *arg;
};

/* A registry on `loop` for `cfg` (not owned; see wk_reconfig). */
struct wk_registry *wk_registry_new(uv_loop_t *loop, const struct cfg *cfg);
/* Tells `ev` (copied; its functions may be NULL) of every attach and detach from now on. */
void wk_set_events(struct wk_registry *r, const struct wk_events *ev);
/*
 * At most `max_connections` connections on the worker port at once (0:
 * WK_MAX_CONNECTIONS), of which at most half, and WK_MAX_PRELOGIN, not
 * logged in yet.  The master sets it from its file descriptor budget.
 */
void wk_set_budget(struct wk_registry *r, size_t max_connections);
/* Closes every connection and the listener; frees once they are closed (run the loop). */
void wk_registry_free(struct wk_registry *r);
/*
 * Addresses workers logged in from before, in an earlier run of the master
 * (as wk_address names them): a connection from one of them is never pushed
 * out to make room, so that workers coming back after a restart get in
 * whatever floods the port.  Text that names no address is passed over.
 */
void wk_know_addresses(struct wk_registry *r, const char *const *addrs, size_t n);
/* The address attached worker `name` came from (an IPv4 address, or an IPv6
   "/64"), or NULL; valid until the next call into the registry. */
const char *wk_address(struct wk_registry *r, const char *name);

/*
 * Listens for workers as `cfg` says: on pb_interface (NULL: all addresses) and
 * pb_port (0: stop listening), speaking TLS with the pb_tls_* files when they are
 * set.  Called again with another address, it opens the new listener before it
 * closes the old one, so a failure leaves the old one in place.  The TLS files
 * are read at every call: the connections accepted from then on use what they hold.
 */
int wk_listen(struct wk_registry *r, const struct cfg *cfg, char **cause);

/*
 * Applies a new configuration: connected workers that are no longer configured
 * are disconnected, and those whose builders changed get a new setBuilderList
 * (which keeps the builders running builds hold, see wk_build_start).
 * The registry uses `cfg` from now on; the caller frees the old one afterwards.
 */
void wk_reconfig(struct wk_registry *r, const struct cfg *cfg);

/* Drops every connection and stops listening; the registry stays usable for free. */
void wk_close_all(struct wk_registry *r);

/* Tells the worker to stop (Bot.shutdown); -1 with *cause if it is not attached. */
int wk_shutdown(struct wk_registry *r, const char *name, char **cause);

/* Number of attached workers (logged in, attach sequence done). */
size_t wk_attached_count(const struct wk_registry *r);
/* True if the named worker is attached. */
bool wk_is_attached(const struct wk_registry *r, const char *name);
/*
 * True if attached worker `worker` has confirmed builder `builder`: its answer
 * to a setBuilderList that named the builder has arrived (as Buildbot attaches a
 * worker to a builder), so commands for it can run there.
 */
bool wk_has_builder(const struct wk_registry *r, const char *worker, const char *builder);

/* ------------------------------------------------------------ builds */

/*
 * A command running on a worker for a build step (SPEC 5.6-5.8): the master's
 * RemoteCommand object, exported on the worker's connection.
 */
struct wk_command;

struct wk_command_ops {
    /* One update entry from the worker: `key` ("stdout", "rc", ...) and its value. */
    void (*update)(void *arg, const char *key, const struct pb_value *value);
    /*
     * The command is over: `failure` is NULL, the worker's failure, or a
     * PBConnectionLost failure when the connection went first.  The command
     * is freed right after this returns.
     */
    void (*complete)(void *arg, const struct pb_value *failure);
};

/* The outcome of wk_build_start: NULL, or why the worker could not start the build. */
typedef void (*wk_started_cb)(void *arg, const char *error);

/*
 * Prepares worker `worker` for a build of `builder` as Buildbot does: a
 * print("ping") to the worker, then startBuild() on its object for the
 * builder.  `done` is called once, on the loop, unless this returns -1 with
 * *cause (the worker or builder is not attached).  On 0 the build holds the
 * builder in the worker's builder list, with its builddir, until wk_build_done:
 * a reconfig that removes the builder from the worker leaves it there (the
 * worker would kill and silence the running command) until the build is over.
 */
int wk_build_start(struct wk_registry *r, const char *worker, const char *builder,
                   wk_started_cb done, void *arg, char **cause);
/*
 * A build wk_build_start started is over: its hold on the builder goes, and a
 * builder the configuration no longer gives the worker leaves its list.
 */
void wk_build_done(struct wk_registry *r, const char *worker, const char *builder);

/*
 * A master object a transfer command carries (SPEC 5.9): a FileWriter,
 * DirectoryWriter or FileReader the worker calls write/close/utime/unpack or
 * read/close on.  `call` answers each call (pb_call_answer or pb_call_fail)
 * before it returns.
 */
struct wk_command_object {
    const char *key; /* the args entry that carries it: "writer" or "reader" */
    void (*call)(void *arg, struct pb_call *call);
};

/*
 * Starts command `name` (shell, mkdir, ...) with `args` (a PB_DICT, owned)
 * for `builder` on `worker`, with `object` (may be NULL) exported for the
 * command's life.  Returns the command, whose ops (and object calls, with the
 * same `arg`) are called until it completes, or NULL with *cause; no callback
 * follows a NULL.
 */
struct wk_command *wk_command_start(struct wk_registry *r, const char *worker, const char *builder,
                                    const char *name, struct pb_value *args,
                                    const struct wk_command_ops *ops,
                                    const struct wk_command_object *object, void *arg,
                                    char **cause);
/* Asks the worker to kill the command (interruptCommand); completion follows as usual. */
void wk_command_interrupt(struct wk_command *c, const char *why);

#endif
