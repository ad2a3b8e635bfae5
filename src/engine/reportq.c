/*
 * The reports of a finished build and of a completed buildset are the heavy ones: a
 * formatter may read megabytes of logs and run its Lua over them, and a mail joins the
 * reports of every build of a buildset.  Made on the engine's loop, a burst of 150 builds
 * ending together held it for seconds, and even one event per turn made every build's
 * start wait behind 5 to 50 ms of rendering.  So they are made on a thread of their own.
 *
 * Such an event is noted first, cheaply and durably, as a row of REPORTQ_OBJECT (named
 * "q.SEQ.KIND.ID", SEQ counting the events in the order they happened; Buildbot ignores
 * the class), and queued.  The reports thread takes the events in order.  It has an engine
 * of its own (struct engine with only a database connection, a configuration and a batch
 * set): a read-only connection, and the master's master.lua loaded again into a Lua state
 * of its own (again at each reconfig, before its next event).  It reads the build back from
 * the database as it is stored, renders its reports into a batch (src/reporters'
 * rep_batch), and hands the batch to the loop, which stores its notifications in the outbox
 * and removes the row in one transaction.  What a stop or a crash leaves queued is rendered
 * at the next start, in the same order, with the configuration of that time.
 *
 * A build's start and a build request's events are light: they are reported where they
 * happen while the queue is empty, and otherwise queued behind what waits, so that the
 * outbox holds every reporter's notifications in the order of the events (a build's start
 * after the end of the one before it).  The IRC lines stay on the loop (in memory anyway),
 * and so do all reports when the database is SQLite in memory, which no second connection
 * can read.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "engine/report.h"
#include "reporters/reporters.h"

#define REPORTQ_OBJECT "bbmaster", "bbmaster.reporters.Events"
/* Events waiting or made and not yet stored, at most; past that they are rendered where
   they happen. */
#define REPORTQ_MAX 100000
/* After an error (the database, the configuration), the wait before the event is tried
   again, and the tries of one event before it is left to the next start (its row stays). */
#define REPORTQ_RETRY_MS 5000
#define REPORTQ_TRIES 60
/* The thread runs below the loop's priority, as the web's threads do: on a busy machine a
   build's start goes before a report. */
#define REPORTQ_NICE 5
/* The queue empty that long, the arenas' free pages go back (wait_event). */
#define REPORTQ_IDLE_MS 500

/* A build's end, a buildset's completion, a build's start, a build request made or
   cancelled. */
enum rq_kind { RQ_BUILD, RQ_BUILDSET, RQ_START, RQ_REQUEST, RQ_CANCEL };

/* Their rows' KIND, and what the log calls them. */
static const char *const rq_row_kind[] = {"build", "buildset", "start", "request", "cancel"};
static const char *const rq_what[] = {"build", "buildset", "the start of build", "build request",
                                      "the cancel of build request"};

struct rq_event {
    enum rq_kind kind;
    long long id;
    long long seq; /* its place in the order of events; 0 for a row named "KIND.ID" */
};

/* An event made: its notifications, for the loop to store. */
struct rq_made {
    struct rq_made *next;
    struct rq_event ev;
    struct rep_batch *batch;
};

struct reportq {
    /* the loop's */
    long long objectid; /* -1 until the object is found */
    bool loaded;        /* what earlier masters left is queued, and the thread runs */
    uv_async_t made_async;
    char *db_url, *basedir, *cfg_path; /* what the thread opens */
    pthread_t thread;

    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t more; /* an event, a stop (on the monotonic clock) */
    struct rq_event *ev; /* a ring; the head is the one being made */
    size_t head, n, cap;
    struct rq_made *made, **made_tail;
    size_t n_made;
    unsigned long cfg_gen; /* counts reconfigs */
    long long seq;         /* the next event's (the loop's alone) */
    bool stopping;

    /* the thread's */
    struct engine te; /* db, cfg and batch */
    unsigned long te_gen;
};

/* "q.SEQ.KIND.ID", SEQ written in 20 digits so that the rows sort in the order of events.
   Rows named "build.ID" and "buildset.ID" were left by a master of before that order; they
   sort first. */
static void row_name(const struct rq_event *ev, char *out, size_t size)
{
    if (ev->seq > 0)
        snprintf(out, size, "q.%020lld.%s.%lld", ev->seq, rq_row_kind[ev->kind], ev->id);
    else
        snprintf(out, size, "%s.%lld", rq_row_kind[ev->kind], ev->id);
}

/* The event a row's name stands for; false for a name that is not one. */
static bool parse_row(const char *name, struct rq_event *ev)
{
    char *end;
    *ev = (struct rq_event){0};
    if (strncmp(name, "q.", 2) == 0) {
        ev->seq = strtoll(name + 2, &end, 10);
        if (end != name + 22 || *end != '.' || ev->seq <= 0)
            return false;
        name = end + 1;
    }
    for (size_t k = 0; k < UTIL_NELEM(rq_row_kind); k++) {
        size_t len = strlen(rq_row_kind[k]);
        if (strncmp(name, rq_row_kind[k], len) == 0 && name[len] == '.' &&
            (ev->seq > 0 || k == RQ_BUILD || k == RQ_BUILDSET)) {
            ev->kind = (enum rq_kind)k;
            ev->id = strtoll(name + len + 1, &end, 10);
            return *end == '\0' && ev->id > 0 && end != name + len + 1;
        }
    }
    return false;
}

/* Under the lock. */
static bool push(struct reportq *q, struct rq_event ev)
{
    if (q->n + q->n_made >= REPORTQ_MAX)
        return false;
    if (q->n == q->cap) {
        size_t cap = q->cap == 0 ? 64 : q->cap * 2 > REPORTQ_MAX ? REPORTQ_MAX : q->cap * 2;
        struct rq_event *v = xcalloc(cap, sizeof *v);
        for (size_t i = 0; i < q->n; i++)
            v[i] = q->ev[(q->head + i) % q->cap];
        free(q->ev);
        q->ev = v;
        q->head = 0;
        q->cap = cap;
    }
    q->ev[(q->head + q->n) % q->cap] = ev;
    q->n++;
    return true;
}

/* ------------------------------------------------------------ the thread: rendering */

/* Build `id` as its reports see it: its row, properties and source stamps (`end`: as it
   finished).  0; 1 when there is no such build; -1 with *cause (its end not stored yet,
   too). */
static int read_build(struct engine *e, long long id, bool end, struct build *b, char **state,
                      char **cause)
{
    struct db_param p[] = {DB_INT(id)};
    struct db_res *r = db_query(
        e->db,
        "SELECT b.number, b.builderid, bl.name, b.results, b.state_string, b.buildrequestid, "
        "br.buildsetid, w.name, b.complete_at FROM builds b JOIN builders bl ON bl.id = "
        "b.builderid JOIN buildrequests br ON br.id = b.buildrequestid LEFT JOIN workers w ON "
        "w.id = b.workerid WHERE b.id = ?",
        p, 1, cause);
    if (r == NULL)
        return -1;
    if (db_res_rows(r) == 0 || (end && db_res_null(r, 0, 8))) {
        bool none = db_res_rows(r) == 0;
        db_res_free(r);
        return none ? 1 : util_cause(cause, "its end is not in the database yet");
    }
    *b = (struct build){.e = e,
                        .cfg = e->cfg,
                        .id = id,
                        .number = db_res_int(r, 0, 0),
                        .builderid = db_res_int(r, 0, 1),
                        .builder = xstrdup(db_res_text(r, 0, 2)),
                        .results = db_res_null(r, 0, 3) ? RES_SUCCESS : (int)db_res_int(r, 0, 3),
                        .brid = db_res_int(r, 0, 5),
                        .bsid = db_res_int(r, 0, 6),
                        .worker = db_res_null(r, 0, 7) ? NULL : xstrdup(db_res_text(r, 0, 7))};
    /* a start's state is the one report_build was given then */
    *state = xstrdup(!end ? "created" : db_res_null(r, 0, 4) ? "" : db_res_text(r, 0, 4));
    db_res_free(r);
    b->sourcestamps = requests_sourcestamps(e, b->bsid, cause);
    if (b->sourcestamps == NULL || report_load_props(e->db, b, cause) != 0)
        return -1;
    return 0;
}

static void free_build(struct build *b, char *state)
{
    props_free(&b->props);
    json_decref(b->sourcestamps);
    free(b->builder);
    free(b->worker);
    free(state);
}

static bool stopping(struct reportq *q)
{
    pthread_mutex_lock(&q->lock);
    bool s = q->stopping;
    pthread_mutex_unlock(&q->lock);
    return s;
}

/* The configuration of the master's last (re)config, and the database; 0 or -1. */
static int ready(struct reportq *q, unsigned long gen, char **cause)
{
    struct engine *e = &q->te;
    if (e->db == NULL && (e->db = db_open(q->db_url, q->basedir, true, cause)) == NULL)
        return -1;
    if (e->cfg != NULL && q->te_gen == gen)
        return 0;
    static const struct cfg_load_opts opts = {.log_messages = true, .quiet_load = true};
    struct cfg *next = NULL;
    if (cfg_load_with(q->cfg_path, &opts, &next, cause) != 0) {
        if (e->cfg == NULL)
            return -1;
        log_error("reporters: %s cannot be loaded again for the reports; they are made with "
                  "the configuration loaded before: %s",
                  q->cfg_path, *cause);
        free(*cause);
        *cause = NULL;
    } else {
        log_info("reporters: %s loaded again for the reports' thread (%lu ms)", q->cfg_path,
                 next->lua_ms);
        cfg_free((struct cfg *)e->cfg);
        e->cfg = next;
    }
    q->te_gen = gen;
    return 0;
}

/* The statuses of a build request made or cancelled, as report_request would have made
   them then; 0 or -1 with *cause. */
static int make_request(struct engine *e, const struct rq_event *ev, char **cause)
{
    struct db_res *r = requests_row(e, ev->id, cause);
    if (r == NULL)
        return -1;
    if (db_res_rows(r) == 0)
        log_warn("reporters: build request %lld is not in the database: it is not reported",
                 ev->id);
    else
        report_request_now(e, ev->id, db_res_int(r, 0, 0), db_res_text(r, 0, 2),
                           db_res_int(r, 0, 1), ev->kind == RQ_CANCEL);
    db_res_free(r);
    return 0;
}

/* The event's notifications into e->batch: 0 when the event is done with (made, or there
   is nothing to make), -1 with *cause when it is to be tried again, 1 when a stop came
   half-way. */
static int make_reports(struct reportq *q, const struct rq_event *ev, char **cause)
{
    struct engine *e = &q->te;
    if (ev->kind == RQ_BUILDSET) {
        if (!report_buildset_wanted(e))
            return 0;
        struct buildset_mails *j = report_buildset_begin(e, ev->id, cause);
        if (j == NULL)
            return -1;
        int rc;
        while ((rc = report_buildset_step(j)) == 1 && !stopping(q))
            ;
        report_buildset_free(j);
        return rc;
    }
    if (ev->kind == RQ_REQUEST || ev->kind == RQ_CANCEL)
        return make_request(e, ev, cause);
    struct build b = {0};
    char *state = NULL;
    bool end = ev->kind == RQ_BUILD;
    int rc = read_build(e, ev->id, end, &b, &state, cause);
    if (rc == 0)
        report_build_now(&b, end, state);
    else if (rc == 1)
        log_warn("reporters: build %lld is not in the database: it is not reported", ev->id);
    free_build(&b, state);
    return rc < 0 ? -1 : 0;
}

/* Waits `ms` or until a stop; under the lock. */
static void pause_locked(struct reportq *q, unsigned ms)
{
    struct timespec until = util_deadline(CLOCK_MONOTONIC, ms);
    while (!q->stopping && pthread_cond_timedwait(&q->more, &q->lock, &until) == 0)
        ;
}

/* The event at the head, made (or given up); under the lock, which it lets go meanwhile. */
static void make_head(struct reportq *q)
{
    struct rq_event ev = q->ev[q->head];
    for (int tries = 1; !q->stopping; tries++) {
        unsigned long gen = q->cfg_gen;
        pthread_mutex_unlock(&q->lock);
        char *cause = NULL;
        q->te.batch = rep_batch_new();
        int rc = ready(q, gen, &cause) != 0 ? -1 : make_reports(q, &ev, &cause);
        pthread_mutex_lock(&q->lock);
        if (rc == 0) {
            struct rq_made *m = xcalloc(1, sizeof *m);
            *m = (struct rq_made){.ev = ev, .batch = q->te.batch};
            *q->made_tail = m;
            q->made_tail = &m->next;
            q->n_made++;
            uv_async_send(&q->made_async);
        } else {
            rep_batch_free(q->te.batch);
        }
        q->te.batch = NULL;
        if (rc == 1 || q->stopping) { /* its row stays: the next start makes it */
            free(cause);
            return;
        }
        if (rc < 0) {
            bool last = tries >= REPORTQ_TRIES;
            log_error("reporters: %s %lld: its reports are not made now (%s): %s", rq_what[ev.kind],
                      ev.id, last ? "the next start makes them" : "tried again soon", cause);
            free(cause);
            if (!last) {
                pause_locked(q, REPORTQ_RETRY_MS);
                continue;
            }
        }
        q->head = (q->head + 1) % q->cap;
        q->n--;
        return;
    }
}

/* The reports' copies of logs leave free blocks of up to 1 MiB in the arenas
   (bound_malloc, master.c): once the queue has stayed empty for REPORTQ_IDLE_MS after an
   event was made, their pages go back to the system.  Not at once: the trim discards the
   pages of every free block, which the next event faults in again, and each discard
   interrupts the other processors (their TLBs are flushed) where the loop runs. */
static void wait_event(struct reportq *q, bool *made)
{
    struct timespec idle = util_deadline(CLOCK_MONOTONIC, REPORTQ_IDLE_MS);
    while (*made && !q->stopping && q->n == 0)
        if (pthread_cond_timedwait(&q->more, &q->lock, &idle) == ETIMEDOUT && q->n == 0) {
            pthread_mutex_unlock(&q->lock);
            util_memory_give_back();
            pthread_mutex_lock(&q->lock);
            *made = false;
        }
    while (!q->stopping && q->n == 0)
        pthread_cond_wait(&q->more, &q->lock);
}

static void *thread_main(void *arg)
{
    struct reportq *q = arg;
    util_thread_nice(REPORTQ_NICE);
    pthread_mutex_lock(&q->lock);
    bool made = false;
    for (;;) {
        wait_event(q, &made);
        if (q->stopping)
            break;
        make_head(q);
        made = true;
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ------------------------------------------------------------ the loop: storing */

static int forget(struct engine *e, const struct rq_event *ev, char **cause)
{
    char name[80];
    row_name(ev, name, sizeof name);
    struct db_param p[] = {DB_INT(e->rq->objectid), DB_TEXT(name)};
    return db_exec(e->db, "DELETE FROM object_state WHERE objectid = ? AND name = ?", p, 2, cause);
}

/* The notifications in the outbox and the row gone, in one transaction. */
static void store(struct engine *e, const struct rq_made *m)
{
    char what[48], *cause = NULL;
    snprintf(what, sizeof what, "%s %lld", rq_what[m->ev.kind], m->ev.id);
    bool tx = db_begin(e->db, &cause) == 0;
    free(cause);
    cause = NULL;
    rep_batch_enqueue(e->rep, m->batch, what);
    /* in the outbox's memory now: not made again by this master, whatever the row becomes */
    if (forget(e, &m->ev, &cause) != 0 || (tx && db_commit(e->db, &cause) != 0)) {
        if (tx && db_in_transaction(e->db))
            db_rollback(e->db);
        log_error("reporters: %s: its reports are made, but its row stays (the next start "
                  "makes them again): %s",
                  what, cause);
        free(cause);
    }
}

static void made_cb(uv_async_t *h)
{
    struct engine *e = h->data;
    struct reportq *q = e->rq;
    pthread_mutex_lock(&q->lock);
    struct rq_made *m = q->made;
    q->made = NULL;
    q->made_tail = &q->made;
    q->n_made = 0;
    pthread_mutex_unlock(&q->lock);
    while (m != NULL) {
        struct rq_made *next = m->next;
        if (e->rep != NULL) /* else a stop came: the row stays for the next start */
            store(e, m);
        rep_batch_free(m->batch);
        free(m);
        m = next;
    }
}

/* ------------------------------------------------------------ the engine's calls */

/* The next event's place: after every row's, those not loaded too (past REPORTQ_MAX). */
static int next_seq(struct engine *e, char **cause)
{
    struct db_param p[] = {DB_INT(e->rq->objectid)};
    struct db_res *r = db_query(e->db,
                                "SELECT name FROM object_state WHERE objectid = ? ORDER BY name "
                                "DESC LIMIT 1",
                                p, 1, cause);
    if (r == NULL)
        return -1;
    struct rq_event ev = {0};
    if (db_res_rows(r) > 0)
        parse_row(db_res_text(r, 0, 0), &ev);
    e->rq->seq = ev.seq + 1;
    db_res_free(r);
    return 0;
}

/* The events earlier masters left, in the order they happened; under the lock.  0, or -1
   when they cannot be read. */
static int load(struct engine *e)
{
    struct reportq *q = e->rq;
    char *cause = NULL;
    q->objectid = db_object_id(e->db, REPORTQ_OBJECT, &cause);
    struct db_param p[] = {DB_INT(q->objectid), DB_INT(REPORTQ_MAX)};
    struct db_res *r =
        q->objectid < 0 || next_seq(e, &cause) != 0
            ? NULL
            : db_query(e->db,
                       "SELECT name FROM object_state WHERE objectid = ? ORDER BY name LIMIT ?", p,
                       2, &cause);
    if (r == NULL) {
        log_error("reporters: the reports left to make cannot be read; they are made at the "
                  "next start: %s",
                  cause);
        free(cause);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        struct rq_event ev;
        if (parse_row(db_res_text(r, i, 0), &ev) && push(q, ev))
            n++;
    }
    db_res_free(r);
    if (n > 0)
        log_info("reporters: the reports of %zu event(s) an earlier master left are made now", n);
    return 0;
}

void reportq_init(struct engine *e)
{
    struct reportq *q = xcalloc(1, sizeof *q);
    q->objectid = -1;
    q->made_tail = &q->made;
    pthread_mutex_init(&q->lock, NULL);
    util_cond_init_monotonic(&q->more);
    uv_async_init(e->loop, &q->made_async, made_cb);
    q->made_async.data = e;
    uv_unref((uv_handle_t *)&q->made_async);
    e->rq = q;
}

void reportq_reconfig(struct engine *e)
{
    pthread_mutex_lock(&e->rq->lock);
    e->rq->cfg_gen++;
    pthread_mutex_unlock(&e->rq->lock);
}

/* An SQLite database in memory is the engine's connection's alone. */
static bool shared_db(const char *url)
{
    return url != NULL && strcmp(url, "sqlite://") != 0 && strstr(url, ":memory:") == NULL;
}

void reportq_started(struct engine *e)
{
    struct reportq *q = e->rq;
    char cwd[4096];
    if (q->db_url != NULL || e->rep == NULL || !shared_db(e->cfg->db_url) ||
        getcwd(cwd, sizeof cwd) == NULL)
        return;
    q->db_url = xstrdup(e->cfg->db_url);
    q->basedir = xstrdup(cwd);
    q->cfg_path = xstrdup(e->cfg->path);
    pthread_mutex_lock(&q->lock);
    bool ok = load(e) == 0;
    pthread_mutex_unlock(&q->lock);
    int err = ok ? pthread_create(&q->thread, NULL, thread_main, q) : 0;
    if (ok && err == 0)
        pthread_setname_np(q->thread, "bbm-reports"); /* as top -H and perf show it */
    if (err != 0)
        log_error("reporters: no thread for the reports (%s): they are made where they happen",
                  strerror(err));
    q->loaded = ok && err == 0;
}

/* Queues the event, its row stored first; -1 when it must be rendered now.  A light event
   (`behind`) is queued only behind others: when none waits, what came before it is in the
   outbox already. */
static int add(struct engine *e, enum rq_kind kind, long long id, bool behind)
{
    struct reportq *q = e->rq;
    pthread_mutex_lock(&q->lock);
    bool room = q->loaded && !q->stopping && q->n + q->n_made < REPORTQ_MAX &&
                (!behind || q->n + q->n_made > 0);
    pthread_mutex_unlock(&q->lock);
    if (!room)
        return -1;
    struct rq_event ev = {kind, id, q->seq++};
    char name[80], *cause = NULL;
    row_name(&ev, name, sizeof name);
    if (db_state_set(e->db, q->objectid, name, "{}", &cause) != 0) {
        log_error("reporters: %s %lld: reported now: %s", rq_what[kind], id, cause);
        free(cause);
        return -1;
    }
    pthread_mutex_lock(&q->lock);
    push(q, ev); /* room was made sure of, and only the loop adds */
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int reportq_build(struct engine *e, long long buildid, bool complete)
{
    return add(e, complete ? RQ_BUILD : RQ_START, buildid, !complete);
}

int reportq_buildset(struct engine *e, long long bsid)
{
    return add(e, RQ_BUILDSET, bsid, false);
}

int reportq_request(struct engine *e, long long brid, bool cancelled)
{
    return add(e, cancelled ? RQ_CANCEL : RQ_REQUEST, brid, true);
}

void reportq_stop(struct engine *e)
{
    struct reportq *q = e->rq;
    if (q == NULL || !q->loaded)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    q->loaded = false;
    made_cb(&q->made_async); /* stored if the reporters are still there, else dropped */
}

void reportq_free(struct engine *e)
{
    struct reportq *q = e->rq;
    if (q == NULL)
        return;
    reportq_stop(e);
    cfg_free((struct cfg *)q->te.cfg);
    db_close(q->te.db);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->more);
    free(q->ev);
    free(q->db_url);
    free(q->basedir);
    free(q->cfg_path);
    free(q);
    e->rq = NULL;
}
