/*
 * The janitor: Buildbot's JanitorConfigurator, which deletes old log chunks so
 * that the logchunks table does not grow without bound.  Buildbot builds it
 * out of a Nightly scheduler named __Janitor, a builder __Janitor on a local
 * worker and a LogChunksJanitor step; bbmaster runs the same schedule and the
 * same deletion on the engine loop, without the builder: each run is logged in
 * bbmaster.log instead of being a build (the README says so).
 *
 * The schedule is Nightly's: its last time is the `last_build` state of the
 * object "__Janitor" of class Nightly, as Buildbot keeps it, so a restart
 * neither repeats a run nor skips one (a time missed while the master was
 * down runs at once).  A run deletes the chunks of the steps started more
 * than logHorizon seconds before it began (db/prune.c), one bounded batch per
 * turn of the loop (an idle handle), so that workers, the web and builds go
 * on meanwhile: a batch reads or writes at most a window of ids or
 * JANITOR_CHUNKS chunks.
 *
 * With bbmaster's own buildHorizon and changeHorizon, the run goes on to
 * delete the complete builds that completed more than buildHorizon seconds
 * before it began, then the changes made (when_timestamp) more than
 * changeHorizon seconds before, each with every row that refers to it
 * (db/horizon.c), one stage of JANITOR_ROWS rows at most per batch.  (Buildbot's
 * own changeHorizon, a top-level key that keeps the newest N changes, is
 * another thing; bbmaster refuses it.)
 */
#include "schedulers/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The bounds of one batch: steps searched, logs marked, chunks deleted. */
#define JANITOR_STEPS 5000
#define JANITOR_LOGS 500
#define JANITOR_CHUNKS 1000
#define JANITOR_ROWS 1000 /* rows of a build's or change's stage */
#define JANITOR_IDS 5000  /* builds or changes searched */

/* Buildbot's JANITOR_NAME, the name of its Nightly scheduler (and builder). */
#define JANITOR_NAME "__Janitor"

struct run {
    long long before;  /* steps started before this (epoch seconds) are old */
    long long step_hi; /* the step search's next window ends here */
    long long stepmax; /* the newest old step, once found (0: none) */
    bool step_found;   /* the search is over */
    long long log_lo;  /* the logs window [log_lo, log_lo + JANITOR_LOGS) */
    long long log_end; /* the highest log id when the run began */
    long long spans[JANITOR_LOGS / 2 + 1][2]; /* the window's runs of deleted logs */
    size_t n_spans, span;                     /* how many; the one being emptied */
    long long from;                           /* the next chunks are of logs from here */
    long long marked;                         /* logs marked deleted */
    long long deleted;                        /* chunks deleted */
    long long batches;                        /* turns of the loop taken */
    struct old {                              /* old builds, then old changes */
        bool on;                              /* a horizon is given: this phase runs */
        long long before;                     /* older than this (epoch seconds) */
        long long after, top;                 /* search ids (after, top] */
        long long id;                         /* the one being deleted (0: searching) */
        int stage;                            /* its stage */
        long long gone, rows;                 /* deleted: how many; their rows */
    } builds, changes;
    uint64_t start_ms;   /* when it began (monotonic) */
    uint64_t longest_ms; /* the longest batch */
};

struct janitor {
    uv_loop_t *loop;
    struct db *db;
    struct cfg_janitor conf; /* its file is not kept */
    uv_timer_t timer;        /* the next run */
    uv_idle_t idle;          /* a run's batches */
    int open;                /* handles not closed yet */
    double last_build;       /* when the last run was due (-1: never) */
    double actuate_at;       /* when the next is due */
    struct run *run;         /* the run going on, or NULL */
};

/* ------------------------------------------------------------ state */

static long long object(struct janitor *j)
{
    char *cause = NULL;
    long long id = db_object_id(j->db, JANITOR_NAME, "Nightly", &cause);
    if (id < 0) {
        log_error("janitor: %s", cause);
        free(cause);
    }
    return id;
}

static double last_build(struct janitor *j)
{
    long long id = object(j);
    char *text = NULL, *cause = NULL;
    if (id < 0 || db_state_get(j->db, id, "last_build", &text, &cause) < 0) {
        if (cause != NULL)
            log_error("janitor: %s", cause);
        free(cause);
        return -1;
    }
    double last = text != NULL ? strtod(text, NULL) : -1;
    free(text);
    return last > 0 ? last : -1;
}

static void set_last_build(struct janitor *j, double when)
{
    long long id = object(j);
    char text[64], *cause = NULL;
    snprintf(text, sizeof text, "%.6f", when);
    if (id >= 0 && db_state_set(j->db, id, "last_build", text, &cause) < 0) {
        log_error("janitor: %s", cause);
        free(cause);
    }
}

/* ------------------------------------------------------------ a run */

static void schedule_next(struct janitor *j);

static void finish(struct janitor *j, const char *cause)
{
    struct run *r = j->run;
    double secs = (double)(util_mono_ms() - r->start_ms) / 1000;
    if (cause != NULL)
        log_error("janitor: %s; the run stops after deleting %lld log chunks (%lld batches), "
                  "the next one is at its time",
                  cause, r->deleted, r->batches);
    else
        log_info("janitor: deleted %lld log chunks; %lld logs marked deleted; %lld batches "
                 "in %.1f s, the longest %llu ms; %lld old builds deleted (%lld rows), "
                 "%lld old changes deleted (%lld rows)",
                 r->deleted, r->marked, r->batches, secs, (unsigned long long)r->longest_ms,
                 r->builds.gone, r->builds.rows, r->changes.gone, r->changes.rows);
    uv_idle_stop(&j->idle);
    free(r);
    j->run = NULL;
}

/* The search for the newest step started before the horizon, a window at a time. */
static int find_step(struct janitor *j, struct run *r, char **cause)
{
    long long found;
    if (db_prune_step_window(j->db, r->step_hi, JANITOR_STEPS, r->before, &found, cause) < 0)
        return -1;
    r->step_hi -= JANITOR_STEPS;
    if (found > 0 || r->step_hi <= 0) {
        r->stepmax = found;
        r->step_found = true;
    }
    return 1;
}

/* Marks the window's old logs and finds its runs of deleted logs. */
static int mark_window(struct janitor *j, struct run *r, char **cause)
{
    long long marked, hi = r->log_lo + JANITOR_LOGS;
    if (db_prune_mark_logs(j->db, r->log_lo, hi, r->stepmax, &marked, cause) < 0 ||
        db_prune_deleted_spans(j->db, r->log_lo, hi, r->spans, &r->n_spans, cause) < 0)
        return -1;
    r->marked += marked;
    r->span = 0;
    r->from = r->n_spans > 0 ? r->spans[0][0] : 0;
    if (r->n_spans == 0)
        r->log_lo = hi;
    return 1;
}

/* One batch of old builds (changes): the search for the next one, a window of ids, or a
   stage of deleting it; 0 when none is left. */
static int old_batch(struct janitor *j, struct old *o, bool changes, char **cause)
{
    if (o->id == 0) {
        if (o->after >= o->top)
            return 0;
        if (db_horizon_next_old(j->db, changes, o->after, JANITOR_IDS, o->before, &o->id, cause) <
            0)
            return -1;
        o->after = o->id > 0 ? o->id : o->after + JANITOR_IDS;
        o->stage = 0;
        return 1;
    }
    long long rows;
    bool more;
    int rc =
        changes ? db_horizon_change_stage(j->db, o->stage, o->id, JANITOR_ROWS, &rows, &more, cause)
                : db_horizon_build_stage(j->db, o->stage, o->id, JANITOR_ROWS, &rows, &more, cause);
    if (rc < 0)
        return -1;
    o->rows += rows;
    if (!more && ++o->stage == (changes ? DB_HORIZON_CHANGE_STAGES : DB_HORIZON_BUILD_STAGES)) {
        o->gone++;
        o->id = 0;
    }
    return 1;
}

/* One batch: 1 while there is more to do, 0 when the run is over, -1 with *cause. */
static int batch(struct janitor *j, struct run *r, char **cause)
{
    if (!r->step_found)
        return find_step(j, r, cause);
    if (r->log_lo > r->log_end) {
        int rc = r->builds.on ? old_batch(j, &r->builds, false, cause) : 0;
        if (rc != 0)
            return rc;
        r->builds.on = false;
        rc = r->changes.on ? old_batch(j, &r->changes, true, cause) : 0;
        if (rc == 0)
            r->changes.on = false;
        return rc;
    }
    if (r->span >= r->n_spans)
        return mark_window(j, r, cause);
    long long deleted, next;
    if (db_prune_chunks(j->db, r->from, r->spans[r->span][1], JANITOR_CHUNKS, &deleted, &next,
                        cause) < 0)
        return -1;
    r->deleted += deleted;
    r->from = next;
    if (next == 0 && ++r->span < r->n_spans)
        r->from = r->spans[r->span][0];
    if (r->span == r->n_spans)
        r->log_lo += JANITOR_LOGS;
    return 1;
}

static void idle_cb(uv_idle_t *h)
{
    struct janitor *j = h->data;
    struct run *r = j->run;
    char *cause = NULL;
    uint64_t t0 = util_mono_ms();
    int rc = batch(j, r, &cause);
    uint64_t took = util_mono_ms() - t0;
    r->batches++;
    if (took > r->longest_ms)
        r->longest_ms = took;
    if (rc <= 0) {
        finish(j, cause);
        schedule_next(j);
    }
    free(cause);
}

static void local_time(long long when, char *out, size_t size)
{
    time_t t = (time_t)when;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static int start_old(struct janitor *j, struct old *o, bool changes, double now, long long horizon,
                     char **cause)
{
    o->on = horizon > 0;
    if (!o->on)
        return 0;
    o->before = (long long)ceil(now - (double)horizon);
    if (db_horizon_top(j->db, changes, &o->top, cause) < 0)
        return -1;
    char when[32];
    local_time(o->before, when, sizeof when);
    log_info(changes ? "janitor: deleting the changes made before %s (changeHorizon %lld s)"
                     : "janitor: deleting the builds completed before %s (buildHorizon %lld s)",
             when, horizon);
    return 0;
}

static int run_start(struct janitor *j, char **cause)
{
    struct run *r = xcalloc(1, sizeof *r);
    /* now, as Buildbot's step takes it; not before the time it was due (a timer may fire a
       little early by the wall clock) */
    double now = util_now() > j->actuate_at ? util_now() : j->actuate_at;
    r->before = (long long)ceil(now - (double)j->conf.log_horizon);
    r->start_ms = util_mono_ms();
    long long first;
    if (db_prune_steps_top(j->db, &r->step_hi, cause) < 0 ||
        db_prune_log_ids(j->db, &first, &r->log_end, cause) < 0) {
        free(r);
        return -1;
    }
    r->log_lo = first > 0 ? first : 1;
    r->n_spans = r->span = 0;
    if (j->conf.log_horizon <= 0) { /* no logHorizon: no log is marked */
        r->step_found = true;
        r->log_lo = r->log_end + 1;
    }
    if (start_old(j, &r->builds, false, now, j->conf.build_horizon, cause) < 0 ||
        start_old(j, &r->changes, true, now, j->conf.change_horizon, cause) < 0) {
        free(r);
        return -1;
    }
    char when[32];
    local_time(r->before, when, sizeof when);
    if (j->conf.log_horizon > 0)
        log_info("janitor: deleting the log chunks of steps started before %s (logHorizon "
                 "%lld s)",
                 when, j->conf.log_horizon);
    j->run = r;
    uv_idle_start(&j->idle, idle_cb);
    return 0;
}

/* ------------------------------------------------------------ the schedule */

static void actuate(uv_timer_t *h)
{
    struct janitor *j = h->data;
    j->last_build = j->actuate_at;
    set_last_build(j, j->last_build);
    char *cause = NULL;
    if (run_start(j, &cause) < 0) {
        log_error("janitor: %s; the next run is at its time", cause);
        free(cause);
        schedule_next(j);
    }
}

static void schedule_next(struct janitor *j)
{
    double now = util_now();
    double next = util_cron_next(&j->conf.when, j->last_build < 0 ? now : j->last_build);
    uv_timer_stop(&j->timer);
    if (next < 0) {
        log_error("janitor: its time never comes (no date matches its fields)");
        return;
    }
    if (next <= now) {
        log_info("janitor: missed its time while the master was down - running now");
        next = now;
    }
    j->actuate_at = next;
    uv_timer_start(&j->timer, actuate, (uint64_t)((next - now) * 1000), 0);
}

struct janitor *janitor_new(uv_loop_t *loop, struct db *db, const struct cfg_janitor *conf)
{
    struct janitor *j = xcalloc(1, sizeof *j);
    j->loop = loop;
    j->db = db;
    j->conf = *conf;
    j->conf.file = NULL;
    uv_timer_init(loop, &j->timer);
    uv_idle_init(loop, &j->idle);
    j->timer.data = j->idle.data = j;
    j->open = 2;
    j->last_build = last_build(j);
    schedule_next(j);
    return j;
}

void janitor_reconfig(struct janitor *j, const struct cfg_janitor *conf)
{
    j->conf = *conf;
    j->conf.file = NULL;
    if (j->run == NULL)
        schedule_next(j);
}

static void closed_cb(uv_handle_t *h)
{
    struct janitor *j = h->data;
    if (--j->open == 0)
        free(j);
}

void janitor_free(struct janitor *j)
{
    if (j == NULL)
        return;
    if (j->run != NULL) {
        log_info("janitor: stopped after deleting %lld log chunks (%lld batches); the next run "
                 "finishes the work",
                 j->run->deleted, j->run->batches);
        free(j->run);
        j->run = NULL;
    }
    uv_close((uv_handle_t *)&j->timer, closed_cb);
    uv_close((uv_handle_t *)&j->idle, closed_cb);
}
