/*
 * The engine: which workers are attached and how busy, the configurations
 * running builds still use, the log flush timer, and the control actions
 * the web posts (force, stop, cancel, pause, unpause).
 */
#include "engine/internal.h"
#include "reporters/reporters.h"

#include <stdlib.h>
#include <string.h>

/* How often pending log lines are written (ms): a few hundred, as the issue of latency
   against the number of chunks goes. */
#define FLUSH_INTERVAL_MS 200

const char *res_name(int results)
{
    static const char *const names[] = {"success",   "warnings", "failure",  "skipped",
                                        "exception", "retry",    "cancelled"};
    return results >= 0 && results < (int)UTIL_NELEM(names) ? names[results] : "not finished";
}

int res_worst(int a, int b)
{
    static const int order[] = {RES_CANCELLED, RES_RETRY,   RES_EXCEPTION, RES_FAILURE,
                                RES_WARNINGS,  RES_SUCCESS, RES_SKIPPED};
    for (size_t i = 0; i < UTIL_NELEM(order); i++)
        if (a == order[i] || b == order[i])
            return order[i];
    return a;
}

void engine_db_error(const char *what, char *cause)
{
    log_error("database: %s: %s", what, cause != NULL ? cause : "?");
    free(cause);
}

struct eng_worker *engine_worker(struct engine *e, const char *name)
{
    for (size_t i = 0; i < e->n_workers; i++)
        if (util_streq(e->workers[i].name, name))
            return &e->workers[i];
    return NULL;
}

static struct eng_worker *worker_add(struct engine *e, const char *name)
{
    struct eng_worker *w = engine_worker(e, name);
    if (w != NULL)
        return w;
    e->workers = xgrow(e->workers, &e->cap_workers, e->n_workers + 1, sizeof *e->workers);
    w = &e->workers[e->n_workers++];
    memset(w, 0, sizeof *w);
    w->name = xstrdup(name);
    quarantine_worker_init(w);
    return w;
}

/* Trigger steps waiting for requests that may have completed.  A step that ends may end
   its build, which stays in the list until the reaper runs (see internal.h). */
static void poll_triggers(struct engine *e)
{
    for (struct build *b = e->builds; b != NULL; b = b->next)
        if (!b->finished && b->current != NULL && trigger_waiting(b->current))
            trigger_poll(b->current);
}

static void kick_cb(uv_idle_t *h)
{
    struct engine *e = h->data;
    uv_idle_stop(h);
    e->kick_pending = false;
    if (e->stopping)
        return;
    poll_triggers(e);
    locks_run_ready(e->locks);
    botmaster_run(e);
}

void engine_kick(struct engine *e)
{
    if (e->kick_pending || e->stopping)
        return;
    e->kick_pending = true;
    uv_idle_start(&e->kick, kick_cb);
}

/* Requests a canStartBuild refused wait for the next event (a quarantine's end is one),
   or for this (every minute). */
#define RETRY_TICKS (60000 / FLUSH_INTERVAL_MS)
/* Rows left unfinished are repaired this often, and once the database is back. */
#define REPAIR_TICKS (600000 / FLUSH_INTERVAL_MS)

/* Steps whose row waited for the database try again (they fail fast while it is known to
   be unavailable: db_behind's backoff). */
static void resume_steps(struct engine *e)
{
    for (struct build *b = e->builds; b != NULL; b = b->next)
        if (!b->finished && b->current != NULL && b->current->waiting_db)
            step_resume(b->current);
}

static void repair(struct engine *e)
{
    char *cause = NULL;
    if (requests_repair(e, &cause) != 0)
        engine_db_error("repairing rows left unfinished", cause);
}

static void flush_cb(uv_timer_t *t)
{
    struct engine *e = t->data;
    steplogs_flush(e);
    int back = db_behind_retry(e->db, false);
    if (back != -1)
        resume_steps(e);
    if (back == 1) /* what waited is in: requests may wait, rows may be left */
        repair(e);
    if (back == 1 || ++e->ticks % RETRY_TICKS == 0)
        engine_kick(e);
    if (e->ticks % REPAIR_TICKS == 0)
        repair(e);
}

/* ENGINE_BEHIND_MAX, or the environment's BBM_DB_WAIT_MAX bytes (for tests of the bound). */
static size_t behind_max(void)
{
    const char *s = getenv("BBM_DB_WAIT_MAX");
    char *end = NULL;
    unsigned long long v = s != NULL ? strtoull(s, &end, 10) : 0;
    return s != NULL && end != s && *end == '\0' && v >= 4096 && v <= ENGINE_BEHIND_MAX
               ? (size_t)v
               : ENGINE_BEHIND_MAX;
}

static void locks_notify(void *arg)
{
    engine_kick(arg);
}

struct engine *engine_new(uv_loop_t *loop, struct db *db, long long masterid,
                          struct wk_registry *wk, const struct cfg *cfg)
{
    struct engine *e = xcalloc(1, sizeof *e);
    e->loop = loop;
    e->db = db;
    e->masterid = masterid;
    e->wk = wk;
    e->cfg = cfg;
    e->locks = locks_new(locks_notify, e);
    db_behind_enable(db, behind_max());
    e->pack = logpack_new();
    uv_timer_init(loop, &e->flush_timer);
    e->flush_timer.data = e;
    uv_timer_start(&e->flush_timer, flush_cb, FLUSH_INTERVAL_MS, FLUSH_INTERVAL_MS);
    uv_unref((uv_handle_t *)&e->flush_timer);
    quarantine_init(e);
    uv_idle_init(loop, &e->kick);
    e->kick.data = e;
    uv_idle_init(loop, &e->reap);
    e->reap.data = e;
    char *cause = NULL;
    if (requests_housekeeping(e, masterid, &cause) != 0)
        engine_db_error("finishing what the last run left running", cause), cause = NULL;
    repair(e);
    missing_init(e);
    reportq_init(e);
    if (collapse_start(e, &cause) != 0)
        engine_db_error("reading the pending build requests", cause);
    engine_kick(e);
    return e;
}

/* ------------------------------------------------------------ configurations */

static int builds_using(const struct engine *e, const struct cfg *cfg)
{
    int n = 0;
    for (const struct build *b = e->builds; b != NULL; b = b->next)
        n += !b->finished && b->cfg == cfg;
    return n;
}

/*
 * A configuration no build uses any more is freed on libuv's pool, not on the loop: closing
 * cpython/'s Lua state and its 1,036 builders takes about 10 ms, which a reconfig (and a
 * build's end) need not wait for.  Nothing refers to it any more, and a Lua state is only
 * ever used by one thread at a time.  The free pages then go back to the system: glibc
 * keeps freed blocks among the live ones, and cpython/'s master grew from 21 MB to about
 * 31 MB over a dozen reconfigs without malloc_trim (bench/README.md).
 */
static void free_config_work(uv_work_t *w)
{
    cfg_free(w->data);
    util_memory_give_back();
}

static void free_config_done(uv_work_t *w, int status)
{
    (void)status;
    free(w);
}

static void free_unused_configs(struct engine *e)
{
    for (struct eng_cfg **p = &e->retired; *p != NULL;) {
        struct eng_cfg *c = *p;
        if (builds_using(e, c->cfg) == 0) {
            *p = c->next;
            uv_work_t *w = xcalloc(1, sizeof *w);
            w->data = c->cfg;
            uv_queue_work(e->loop, w, free_config_work, free_config_done);
            free(c);
        } else {
            p = &c->next;
        }
    }
}

void engine_reconfig(struct engine *e, const struct cfg *cfg)
{
    e->cfg = cfg;
    e->cfg_version++;
    missing_reconfig(e);
    reportq_reconfig(e);
    engine_kick(e);
}

void engine_release_config(struct engine *e, struct cfg *old)
{
    struct eng_cfg *c = xcalloc(1, sizeof *c);
    c->cfg = old;
    c->next = e->retired;
    e->retired = c;
    free_unused_configs(e);
}

/* ------------------------------------------------------------ workers and builds */

void engine_worker_attached(struct engine *e, const char *name, const struct pb_value *info)
{
    struct eng_worker *w = worker_add(e, name);
    pb_value_free(w->info);
    w->info = pb_value_dup(info);
    w->attached = true;
    missing_attached(e, name);
    /* as Buildbot: a pause outlives the connection and the master, a shutdown does not */
    w->graceful = false;
    char *cause = NULL;
    struct db_param p[] = {DB_TEXT(name)};
    struct db_res *r = db_query(e->db, "SELECT paused FROM workers WHERE name = ?", p, 1, &cause);
    if (r == NULL)
        engine_db_error("reading a worker's pause", cause), cause = NULL;
    else if (db_res_rows(r) > 0)
        w->paused = db_res_int(r, 0, 0) != 0;
    db_res_free(r);
    if (db_exec(e->db, "UPDATE workers SET graceful = 0 WHERE name = ?", p, 1, &cause) != 0)
        engine_db_error("resetting a worker's shutdown", cause);
    engine_kick(e);
}

void engine_set_events(struct engine *e, struct ev_bus *bus)
{
    e->bus = bus;
}

void engine_set_reporters(struct engine *e, struct rep *rep)
{
    if (rep == NULL)
        reportq_stop(e); /* what it made is stored while the outbox is there */
    if (e->rep != NULL) {
        rep_irc_set_handler(rep_irc_of(e->rep), NULL, NULL);
        rep_irc_set_state(rep_irc_of(e->rep), NULL, NULL, NULL);
    }
    e->rep = rep;
    if (rep != NULL) { /* the bots' engine commands (ircbot.c) and their saved events */
        rep_irc_set_handler(rep_irc_of(rep), engine_irc_answer, e);
        rep_irc_set_state(rep_irc_of(rep), engine_irc_state_load, engine_irc_state_save, e);
        reportq_started(e);
    }
}

struct ev_bus *engine_events(struct engine *e)
{
    return e->bus;
}

void engine_worker_builders(struct engine *e, const char *name)
{
    (void)name;
    engine_kick(e);
}

void engine_worker_detached(struct engine *e, const char *name)
{
    struct eng_worker *w = engine_worker(e, name);
    if (w != NULL)
        w->attached = false;
    missing_detached(e, name);
}

/* A worker shutting down gracefully is told to stop once no build runs on it. */
static void maybe_shutdown(struct engine *e, struct eng_worker *w)
{
    char *cause = NULL;
    if (w->graceful && w->running == 0 && w->attached && wk_shutdown(e->wk, w->name, &cause) != 0) {
        log_warn("%s", cause);
        free(cause);
    }
}

void engine_worker_graceful(struct engine *e, const char *name)
{
    struct eng_worker *w = engine_worker(e, name);
    if (w == NULL)
        return;
    w->graceful = true;
    char *cause = NULL;
    long long id = db_worker_id(e->db, name, &cause);
    struct db_param p[] = {DB_INT(id)};
    if (id < 0 || db_exec(e->db, "UPDATE workers SET graceful = 1 WHERE id = ?", p, 1, &cause) != 0)
        engine_db_error("marking a worker for shutdown", cause);
    else
        engine_publish(e, EV_WORKER, id, EV_STATE_UPDATED);
    log_info("worker '%s' will shut down once idle (%d build(s) running)", name, w->running);
    maybe_shutdown(e, w);
}

/* The builds left running (not yet finished). */
static bool builds_running(const struct engine *e)
{
    for (const struct build *b = e->builds; b != NULL; b = b->next)
        if (!b->finished)
            return true;
    return false;
}

/* A stopping engine whose last build has finished tells the master, once. */
static void maybe_stopped(struct engine *e)
{
    if (e->stopping && e->stopped != NULL && !builds_running(e)) {
        void (*done)(void *) = e->stopped;
        e->stopped = NULL;
        done(e->stopped_arg);
    }
}

/* A clean shutdown with nothing left running tells the master, once. */
static void maybe_drained(struct engine *e)
{
    if (e->draining && !e->drain_told && !e->stopping && e->drained != NULL && !builds_running(e)) {
        log_info("clean shutdown: no build is running any more");
        e->drain_told = true;
        e->drained(e->shutdown_arg);
    }
}

/* The loop turn after builds finished: they leave the list and are freed, nothing on the
   stack of the turn that finished them can still be using them. */
static void reap_cb(uv_idle_t *h)
{
    struct engine *e = h->data;
    uv_idle_stop(h);
    for (struct build **p = &e->builds; *p != NULL;) {
        struct build *b = *p;
        if (b->finished) {
            *p = b->next;
            build_free(b);
        } else {
            p = &b->next;
        }
    }
    maybe_stopped(e);
    maybe_drained(e);
    if (e->stop_asked && e->stop_now != NULL && !e->stopping) {
        e->stop_asked = false;
        e->stop_now(e->shutdown_arg);
    }
}

void engine_stop_soon(struct engine *e)
{
    e->stop_asked = true;
    uv_idle_start(&e->reap, reap_cb);
}

void engine_set_shutdown(struct engine *e, void (*drained)(void *arg), void (*now)(void *arg),
                         void *arg)
{
    e->drained = drained;
    e->stop_now = now;
    e->shutdown_arg = arg;
}

int engine_shutdown_start(struct engine *e)
{
    if (e->draining)
        return 0;
    size_t n = 0;
    for (const struct build *b = e->builds; b != NULL; b = b->next)
        n += !b->finished;
    log_info("clean shutdown: no new build starts; waiting for %zu build(s) to finish", n);
    e->draining = true;
    uv_idle_start(&e->reap, reap_cb); /* drained on the next turn if nothing runs */
    return 1;
}

int engine_shutdown_cancel(struct engine *e)
{
    if (!e->draining || e->drain_told) /* too late once the master was told */
        return 0;
    log_info("clean shutdown cancelled: builds start again");
    e->draining = false;
    engine_kick(e);
    return 1;
}

bool engine_shutting_down(const struct engine *e)
{
    return e->draining || e->stopping;
}

void engine_build_finished(struct engine *e, struct build *b)
{
    if (b->held) { /* a builder a reconfig removed leaves the worker now */
        b->held = false;
        wk_build_done(e->wk, b->worker, b->builder);
    }
    struct eng_worker *w = engine_worker(e, b->worker);
    if (w != NULL && w->running > 0)
        w->running--;
    /* as Buildbot: a worker that ran a build to its end looks sane (an EXCEPTION does not
       put it in quarantine here; see README) */
    if (w != NULL && b->results != RES_EXCEPTION && b->results != RES_RETRY)
        quarantine_reset(w);
    if (w != NULL)
        maybe_shutdown(e, w);
    free_unused_configs(e);
    uv_idle_start(&e->reap, reap_cb);
    engine_kick(e);
}

/* Buildbot's cleanShutdown(quickMode): a build that a trigger step waits for is
   cancelled (its parent decides what happens next), any other goes back to the queue. */
static int shutdown_results(struct engine *e, const struct build *b)
{
    struct db_param p[] = {DB_INT(b->brid)};
    char *cause = NULL;
    struct db_res *r =
        db_query(e->db, "SELECT waited_for FROM buildrequests WHERE id = ?", p, 1, &cause);
    if (r == NULL)
        engine_db_error("reading whether a build is waited for", cause);
    bool waited = r != NULL && db_res_rows(r) > 0 && db_res_int(r, 0, 0) != 0;
    db_res_free(r);
    return waited ? RES_CANCELLED : RES_RETRY;
}

void engine_stop(struct engine *e, void (*done)(void *arg), void *arg)
{
    e->stopping = true;
    uv_idle_stop(&e->kick);
    e->stopped = done;
    e->stopped_arg = arg;
    /* stopping one build can finish others (a trigger step cancels its children): they
       stay in the list, marked finished, until the reaper's turn */
    for (struct build *b = e->builds; b != NULL; b = b->next)
        if (!b->finished)
            build_stop(b, "Master Shutdown", shutdown_results(e, b));
    steplogs_flush(e);
    db_behind_retry(e->db, true);
    if (!builds_running(e)) {
        e->stopped = NULL;
        done(arg);
    }
}

void engine_free(struct engine *e)
{
    if (e == NULL)
        return;
    e->stopping = true;         /* locks released below kick nothing */
    while (e->builds != NULL) { /* finished, or abandoned with the loop */
        struct build *b = e->builds;
        e->builds = b->next;
        build_free(b);
    }
    steplogs_flush(e);
    logpack_free(e);
    if (db_behind_retry(e->db, true) == -1 || db_behind_waiting(e->db) > 0)
        log_error("database: %zu writes (%zu KiB) could not be applied before the master "
                  "stopped; the next start finishes what they would have",
                  db_behind_waiting(e->db), db_behind_bytes(e->db) >> 10);
    collapse_free(e);
    missing_free(e);
    reportq_free(e);
    locks_free(e->locks);
    for (size_t i = 0; i < e->n_workers; i++) {
        free(e->workers[i].name);
        pb_value_free(e->workers[i].info);
    }
    free(e->workers);
    while (e->retired != NULL) {
        struct eng_cfg *c = e->retired;
        e->retired = c->next;
        cfg_free(c->cfg);
        free(c);
    }
    free(e);
}
