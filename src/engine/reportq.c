/*
 * The reports of a finished build and of a completed buildset are the heavy ones: a
 * formatter may read megabytes of logs and run its Lua over them, and a mail joins the
 * reports of every build of a buildset.  Made where the build finishes, a burst of 150
 * builds ending together held the loop for seconds: no build started, no worker was
 * answered meanwhile.  So such an event is noted first, cheaply and durably, as a row of
 * REPORTQ_OBJECT ("build.ID" or "buildset.ID"; Buildbot ignores the class), and queued;
 * an idle handle renders one event per turn of the loop, reading the build back from the
 * database as it is stored, and stores its notifications in the outbox and removes the
 * row in one transaction.  What a stop or a crash leaves queued is rendered at the next
 * start, with the configuration of that time.  A build's start and a request's events
 * are light and stay where they happen, as do the IRC lines (in memory anyway).
 */
#include <string.h>

#include "engine/report.h"
#include "reporters/reporters.h"

#define REPORTQ_OBJECT "bbmaster", "bbmaster.reporters.Events"
/* Events waiting in memory at most; past that they are rendered where they happen. */
#define REPORTQ_MAX 100000
/* After a database error, the wait before the event is tried again, and the tries of
   one event before it is left to the next start (its row stays). */
#define REPORTQ_RETRY_MS 5000
#define REPORTQ_TRIES 60

enum rq_kind { RQ_BUILD, RQ_BUILDSET };

struct rq_event {
    enum rq_kind kind;
    long long id;
};

struct reportq {
    struct rq_event *ev; /* a ring */
    size_t head, n, cap;
    long long objectid;           /* -1 until the object is found */
    bool loaded;                  /* what earlier masters left is queued */
    int tries;                    /* of the event at the head */
    struct buildset_mails *mails; /* the head's, a buildset's, being made */
    uv_idle_t idle;
    uv_timer_t retry;
};

static const char *kind_name(enum rq_kind k)
{
    return k == RQ_BUILD ? "build" : "buildset";
}

static void row_name(const struct rq_event *ev, char *out, size_t size)
{
    snprintf(out, size, "%s.%lld", kind_name(ev->kind), ev->id);
}

static bool push(struct reportq *q, struct rq_event ev)
{
    if (q->n == q->cap) {
        if (q->cap == REPORTQ_MAX)
            return false;
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

/* ------------------------------------------------------------ rendering */

/* The finished build `id` as its reports see it: its row, properties and source stamps.
   0; 1 when there is no such build; -1 with *cause. */
static int read_build(struct engine *e, long long id, struct build *b, char **state, char **cause)
{
    struct db_param p[] = {DB_INT(id)};
    struct db_res *r = db_query(
        e->db,
        "SELECT b.number, b.builderid, bl.name, b.results, b.state_string, b.buildrequestid, "
        "br.buildsetid, w.name FROM builds b JOIN builders bl ON bl.id = b.builderid JOIN "
        "buildrequests br ON br.id = b.buildrequestid LEFT JOIN workers w ON w.id = b.workerid "
        "WHERE b.id = ?",
        p, 1, cause);
    if (r == NULL)
        return -1;
    if (db_res_rows(r) == 0) {
        db_res_free(r);
        return 1;
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
    *state = xstrdup(db_res_null(r, 0, 4) ? "" : db_res_text(r, 0, 4));
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

/* 0 when the event is done with (rendered, or there is nothing to render), 1 when a
   buildset's mails have more builds to report, -1 with *cause when the database could not
   be read: it is tried again later. */
static int make_reports(struct engine *e, const struct rq_event *ev, char **cause)
{
    struct reportq *q = e->rq;
    if (ev->kind == RQ_BUILDSET) {
        if (!report_buildset_wanted(e))
            return 0;
        if (q->mails == NULL && (q->mails = report_buildset_begin(e, ev->id, cause)) == NULL)
            return -1;
        if (report_buildset_step(q->mails) == 1)
            return 1;
        report_buildset_free(q->mails);
        q->mails = NULL;
        return 0;
    }
    struct build b = {0};
    char *state = NULL;
    int rc = read_build(e, ev->id, &b, &state, cause);
    if (rc == 0)
        report_build_now(&b, true, state);
    else if (rc == 1)
        log_warn("reporters: build %lld is not in the database: it is not reported", ev->id);
    free_build(&b, state);
    return rc < 0 ? -1 : 0;
}

static int forget(struct engine *e, const struct rq_event *ev, char **cause)
{
    char name[48];
    row_name(ev, name, sizeof name);
    struct db_param p[] = {DB_INT(e->rq->objectid), DB_TEXT(name)};
    return db_exec(e->db, "DELETE FROM object_state WHERE objectid = ? AND name = ?", p, 2, cause);
}

static void idle_cb(uv_idle_t *h);

static void retry_cb(uv_timer_t *t)
{
    struct engine *e = t->data;
    if (e->rq->n > 0)
        uv_idle_start(&e->rq->idle, idle_cb);
}

static void pop(struct reportq *q)
{
    q->head = (q->head + 1) % q->cap;
    q->n--;
    q->tries = 0;
}

/* One event per turn of the loop: what the loop has to do besides goes between them. */
static void idle_cb(uv_idle_t *h)
{
    struct engine *e = h->data;
    struct reportq *q = e->rq;
    if (q->n == 0 || e->rep == NULL || e->cfg == NULL) {
        uv_idle_stop(h);
        return;
    }
    struct rq_event ev = q->ev[q->head];
    char *cause = NULL;
    bool tx = db_begin(e->db, &cause) == 0;
    free(cause);
    cause = NULL;
    int rc = make_reports(e, &ev, &cause);
    if (rc == 1) { /* read, nothing written yet: the next turn goes on */
        if (tx)
            db_rollback(e->db);
        return;
    }
    if (rc != 0) {
        if (tx)
            db_rollback(e->db);
        bool last = ++q->tries >= REPORTQ_TRIES;
        log_error("reporters: %s %lld: its reports are not made now (%s): %s", kind_name(ev.kind),
                  ev.id, last ? "the next start makes them" : "tried again soon", cause);
        free(cause);
        if (last)
            pop(q);
        uv_idle_stop(h);
        uv_timer_start(&q->retry, retry_cb, REPORTQ_RETRY_MS, 0);
        return;
    }
    /* made, and in the outbox's memory: not made again now, whatever the row becomes */
    if (forget(e, &ev, &cause) != 0 || (tx && db_commit(e->db, &cause) != 0)) {
        if (tx && db_in_transaction(e->db))
            db_rollback(e->db);
        log_error("reporters: %s %lld: its reports are made, but its row stays (the next start "
                  "makes them again): %s",
                  kind_name(ev.kind), ev.id, cause);
        free(cause);
    }
    pop(q);
    if (q->n == 0)
        uv_idle_stop(h);
}

/* ------------------------------------------------------------ the engine's calls */

/* The events earlier masters left, oldest first (builds and buildsets by id). */
static void load(struct engine *e)
{
    struct reportq *q = e->rq;
    char *cause = NULL;
    q->objectid = db_object_id(e->db, REPORTQ_OBJECT, &cause);
    struct db_param p[] = {DB_INT(q->objectid), DB_INT(REPORTQ_MAX)};
    struct db_res *r = q->objectid < 0
                           ? NULL
                           : db_query(e->db,
                                      "SELECT name FROM object_state WHERE objectid = ? ORDER BY "
                                      "name LIMIT ?",
                                      p, 2, &cause);
    if (r == NULL) {
        log_error("reporters: the reports left to make cannot be read; they are made at the "
                  "next start: %s",
                  cause);
        free(cause);
        return;
    }
    q->loaded = true;
    size_t n = 0;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        const char *name = db_res_text(r, i, 0);
        struct rq_event ev;
        char *end;
        if (strncmp(name, "build.", 6) == 0) {
            ev = (struct rq_event){RQ_BUILD, strtoll(name + 6, &end, 10)};
        } else if (strncmp(name, "buildset.", 9) == 0) {
            ev = (struct rq_event){RQ_BUILDSET, strtoll(name + 9, &end, 10)};
        } else {
            continue;
        }
        if (*end == '\0' && ev.id > 0 && push(q, ev))
            n++;
    }
    db_res_free(r);
    if (n > 0) {
        log_info("reporters: the reports of %zu build(s) or buildset(s) an earlier master left "
                 "are made now",
                 n);
        uv_idle_start(&q->idle, idle_cb);
    }
}

void reportq_init(struct engine *e)
{
    struct reportq *q = xcalloc(1, sizeof *q);
    q->objectid = -1;
    uv_idle_init(e->loop, &q->idle);
    q->idle.data = e;
    uv_timer_init(e->loop, &q->retry);
    q->retry.data = e;
    uv_unref((uv_handle_t *)&q->retry);
    e->rq = q;
}

void reportq_reconfig(struct engine *e)
{
    report_buildset_free(e->rq->mails);
    e->rq->mails = NULL;
}

void reportq_started(struct engine *e)
{
    if (!e->rq->loaded && e->rep != NULL)
        load(e);
}

/* Queues the event, its row stored first; -1 when it must be rendered now. */
static int add(struct engine *e, enum rq_kind kind, long long id)
{
    struct reportq *q = e->rq;
    if (!q->loaded || q->n == REPORTQ_MAX)
        return -1;
    struct rq_event ev = {kind, id};
    char name[48], *cause = NULL;
    row_name(&ev, name, sizeof name);
    if (db_state_set(e->db, q->objectid, name, "{}", &cause) != 0) {
        log_error("reporters: %s %lld: reported now: %s", kind_name(kind), id, cause);
        free(cause);
        return -1;
    }
    push(q, ev);
    if (!uv_is_active((uv_handle_t *)&q->retry))
        uv_idle_start(&q->idle, idle_cb);
    return 0;
}

int reportq_build(struct engine *e, long long buildid)
{
    return add(e, RQ_BUILD, buildid);
}

int reportq_buildset(struct engine *e, long long bsid)
{
    return add(e, RQ_BUILDSET, bsid);
}

void reportq_free(struct engine *e)
{
    struct reportq *q = e->rq;
    if (q == NULL)
        return;
    report_buildset_free(q->mails);
    free(q->ev);
    free(q);
    e->rq = NULL;
}
