/*
 * engine: what makes builds happen.  Buildsets and build requests written as
 * Buildbot writes them, the botmaster that hands pending requests to free
 * workers (claiming each in buildrequest_claims), and the builds themselves:
 * properties, steps run as commands on the worker, logs, results.  Control
 * actions from the web (force, stop, cancel, ...) arrive here too.
 *
 * Everything runs on the master's libuv loop and writes through the
 * master's one database connection.
 */
#ifndef BBM_ENGINE_H
#define BBM_ENGINE_H

#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "control/control.h"
#include "db/db.h"
#include "events/events.h"
#include "pb/pb.h"
#include "workers/workers.h"

struct engine;

/*
 * An engine on `loop` for configuration `cfg` (borrowed until
 * engine_release_config), writing to `db` as master `masterid`, running
 * builds on the workers of `wk`.  Requests left claimed by this master (a
 * crash) are given back and its builds left running are finished, as
 * Buildbot does when a master comes back.
 */
struct engine *engine_new(uv_loop_t *loop, struct db *db, long long masterid,
                          struct wk_registry *wk, const struct cfg *cfg);

/*
 * Where the engine publishes what it writes (builds, steps, logs, requests,
 * buildsets, workers' pause and shutdown); NULL: nowhere.  The bus outlives
 * the engine.
 */
void engine_set_events(struct engine *e, struct ev_bus *bus);
/* Where the reporters' notifications go (reporters.h); NULL: nowhere.  It outlives the
   engine's builds. */
struct rep;
void engine_set_reporters(struct engine *e, struct rep *rep);
/* That bus (the schedulers publish on it too). */
struct ev_bus *engine_events(struct engine *e);

/* The configuration to use for builds that start from now on. */
void engine_reconfig(struct engine *e, const struct cfg *cfg);
/*
 * Frees `old` (a configuration replaced by engine_reconfig) once no build
 * started under it is still running: its Lua state holds their steps.
 */
void engine_release_config(struct engine *e, struct cfg *old);

/* Workers as they come and go (from wk_events). */
void engine_worker_attached(struct engine *e, const char *name, const struct pb_value *info);
void engine_worker_detached(struct engine *e, const char *name);
/* A worker confirmed a new builder list: requests for builders it has now may start. */
void engine_worker_builders(struct engine *e, const char *name);
/* A graceful shutdown: no new build on the worker; it is told to stop once idle. */
void engine_worker_graceful(struct engine *e, const char *name);

/* A buildset as a scheduler submits it. */
struct eng_buildset {
    const char *who; /* for the log: "scheduler 'X'" */
    const char *reason;
    json_t *properties;         /* [[name, value, source], ...], in Buildbot's order */
    const json_t *sourcestamps; /* [{codebase, branch, revision, repository, project}, ...] */
    const json_t *builders;     /* builder names */
    long long priority;
};
/*
 * Adds a buildset and its build requests, collapses older requests into them
 * and runs the botmaster: Buildbot's addBuildset.  Returns the buildset's id
 * and, when `brids` is not NULL, {"builderid": brid} in *brids (owned); or -1
 * with *cause.
 */
long long engine_add_buildset(struct engine *e, const struct eng_buildset *bs, json_t **brids,
                              char **cause);

/*
 * A control action taken from the queue (a build, a build request or a
 * worker); answered with ctl_reply, now or later.
 */
void engine_control(struct engine *e, struct ctl_action *act);

/*
 * Buildbot's clean shutdown (botmaster.cleanShutdown): while one is under way no build
 * starts but those a trigger step waits for, and `drained(arg)` is called on a later
 * turn of the loop once no build runs.  `now(arg)` is the master's ordinary stop, which
 * IRC's `shutdown now` asks for.
 */
void engine_set_shutdown(struct engine *e, void (*drained)(void *arg), void (*now)(void *arg),
                         void *arg);
/* Starts a clean shutdown: 1, or 0 when one is already under way. */
int engine_shutdown_start(struct engine *e);
/* Cancels it (requests start again): 1, or 0 when none was under way or `drained` was
   already called. */
int engine_shutdown_cancel(struct engine *e);
bool engine_shutting_down(const struct engine *e);

/*
 * The master is stopping: no build starts any more and running builds are
 * interrupted; `done` is called once the last has finished (at once if none).
 */
void engine_stop(struct engine *e, void (*done)(void *arg), void *arg);
/* Frees the engine, once the loop has closed every handle (its timers are on it). */
void engine_free(struct engine *e);
/*
 * The engine's database connection ended a transaction (db_on_transaction).  The
 * log lines written in it are stored if it `committed`; if not they are lost, and
 * each of their steps is stopped and ends EXCEPTION saying so (step_abort).
 */
void engine_transaction_ended(struct engine *e, bool committed);

#endif
