/*
 * The thread that keeps /release_status's model (relmodel.c) current, so
 * that no request ever waits for the database to render the page.
 *
 * It starts with the web server.  Once a release cycle is configured it
 * reads the whole model (one query per builder; the page says "warming up"
 * meanwhile), then follows the engine's event bus with a cursor of its own,
 * as the web's dispatcher does (feed.c): a build's `finished` changes its
 * builder's history (the build read by id), a worker's `connected` or
 * `disconnected` the counts of its builders, a builder's `update` (start
 * and reconfig: tags, workers) makes it read the builder and worker lists
 * again, and the histories only of builders it did not have.  Other events
 * are skipped.  The whole model is read again in the background when the
 * bus dropped events before they were read, when a read failed (after
 * RETRY_MS), and hourly (FULL_MS) with the original's own query; renders go
 * on with the model they have until the new one replaces it.  Events
 * published during a full read are applied after it (applying one twice
 * changes nothing).
 *
 * What it changes it publishes under ui_release.lock: a pointer for a
 * builder's history, a few counts for a worker, the whole model for a full
 * read.  It runs below the engine's priority, like request threads.
 */
#include "www/ui/release.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events/events.h"

#define BATCH 64
#define WAIT_MS 1000
#define RETRY_MS 5000
#define FULL_MS (60 * 60 * 1000)
#define NOBUS_MS 30000 /* without a bus: a full read this often */

struct rel_feed {
    struct ui_release *r;
    struct www *w;
    struct ev_bus *bus;
    pthread_t thread;
    pthread_mutex_t lock; /* stopping */
    pthread_cond_t cond;  /* waits without a bus */
    bool stopping;
    uint64_t cursor;
    char *hold; /* BBM_RELEASE_HOLD: a file whose presence holds the warm-up (tests) */
    /* the loop's state */
    bool need_full, need_set, exact;
    uint64_t full_at, retry_at;
};

static bool stopping(struct rel_feed *f)
{
    pthread_mutex_lock(&f->lock);
    bool stop = f->stopping;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits for events, a poke or stop, or WAIT_MS. */
static void wait_for_work(struct rel_feed *f, unsigned ms)
{
    if (f->bus != NULL) {
        ev_wait(f->bus, f->cursor, ms);
        return;
    }
    struct timespec until = util_deadline(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&f->lock);
    if (!f->stopping)
        pthread_cond_timedwait(&f->cond, &f->lock, &until);
    pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------ reads */

/* After a read: the page's reads freed, a failure's message taken (NULL if none), the
   connection given back (a lost one is closed by the pool). */
static char *page_done(struct ui_page *p)
{
    char *cause = p->status != 200 ? p->cause : NULL;
    if (p->status == 200)
        free(p->cause);
    p->cause = NULL;
    p->status = 200;
    p->lost = false;
    json_decref(p->held);
    p->held = json_array();
    if (p->db != NULL)
        www_pool_put(p->w, p->db);
    p->db = NULL;
    return cause;
}

/* A read failed: the page says why while it has no model; a full read follows. */
static void failed(struct rel_feed *f, struct ui_page *p, const char *what)
{
    char *cause = page_done(p);
    if (cause == NULL)
        cause = xstrdup("stopped");
    log_warn("www: release status: %s: %s; everything is read again in %d s", what, cause,
             RETRY_MS / 1000);
    pthread_mutex_lock(&f->r->lock);
    free(f->r->warm_error);
    f->r->warm_error = cause;
    pthread_mutex_unlock(&f->r->lock);
    f->need_full = true;
    f->retry_at = util_mono_ms() + RETRY_MS;
}

static bool step_cb(void *arg, size_t done, size_t total)
{
    struct rel_feed *f = arg;
    if (f->r->model == NULL) { /* the model thread is its only writer */
        pthread_mutex_lock(&f->r->lock);
        f->r->warm_read = done;
        f->r->warm_total = total;
        pthread_mutex_unlock(&f->r->lock);
    }
    while (f->hold != NULL && access(f->hold, F_OK) == 0 && !stopping(f))
        pause_ms(50);
    return !stopping(f);
}

/* Replaces the model with `m`. */
static void publish(struct ui_release *r, struct rel_model *m, bool full)
{
    pthread_mutex_lock(&r->lock);
    struct rel_model *old = r->model;
    r->model = m;
    if (m == NULL)
        r->warm_read = r->warm_total = 0;
    if (full)
        r->full_reads++;
    free(r->warm_error);
    r->warm_error = NULL;
    pthread_mutex_unlock(&r->lock);
    rel_model_free(old);
}

/* Every builder's history read again; events from the bus's head at the start on follow. */
static void full_read(struct rel_feed *f, struct ui_page *p)
{
    uint64_t t0 = util_mono_ms(), cursor = f->bus != NULL ? ev_head(f->bus) : 0;
    const char *why = f->r->model == NULL ? "warm-up" : f->exact ? "hourly" : "again";
    struct rel_files files;
    rel_files_get(f->r, &files);
    struct rel_model *m = rel_model_read(p, &files, NULL, f->exact, step_cb, f);
    rel_files_free(&files);
    if (m == NULL && stopping(f)) {
        free(page_done(p));
        return;
    }
    if (m == NULL) {
        failed(f, p, "reading every builder");
        return;
    }
    page_done(p);
    size_t n = m->set->n;
    publish(f->r, m, true);
    f->cursor = cursor;
    f->need_full = f->need_set = f->exact = false;
    f->full_at = util_mono_ms();
    log_info("www: release status: %zu builders read in %llu ms (%s)", n,
             (unsigned long long)(f->full_at - t0), why);
}

/* The builder and worker lists read again; new builders' histories read. */
static void set_read(struct rel_feed *f, struct ui_page *p)
{
    struct rel_files files;
    rel_files_get(f->r, &files);
    struct rel_model *m = rel_model_read(p, &files, f->r->model, false, NULL, NULL);
    rel_files_free(&files);
    if (m == NULL) {
        failed(f, p, "reading the builders");
        return;
    }
    page_done(p);
    publish(f->r, m, false);
    f->need_set = false;
    log_debug("www: release status: the builders read again (%zu)", m->set->n);
}

/* ------------------------------------------------------------ events */

static void build_finished(struct rel_feed *f, struct ui_page *p, long long buildid)
{
    struct ui_release *r = f->r;
    long at;
    struct rel_files files;
    rel_files_get(r, &files);
    struct rel_hist *h = rel_model_finished(p, &files, r->model, buildid, &at);
    rel_files_free(&files);
    if (h == NULL) {
        if (p->status != 200)
            failed(f, p, "reading a finished build");
        else
            page_done(p);
        return;
    }
    page_done(p);
    pthread_mutex_lock(&r->lock);
    struct rel_hist *old = r->model->hist[at];
    r->model->hist[at] = h;
    r->events_applied++;
    pthread_mutex_unlock(&r->lock);
    rel_hist_unref(old);
    log_debug("www: release status: build %lld of builder '%s' applied from its event", buildid,
              r->model->set->v[at].name);
}

static void worker_changed(struct rel_feed *f, struct ui_page *p, long long workerid)
{
    struct ui_release *r = f->r;
    const struct rel_worker *w = NULL;
    int delta = 0;
    int rc = rel_model_worker(p, r->model, workerid, &w, &delta);
    if (rc < 0) {
        failed(f, p, "reading a worker");
        return;
    }
    page_done(p);
    if (rc == 2)
        f->need_set = true;
    if (rc != 1)
        return;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < w->n_builders; i++) {
        long at = rel_model_find(r->model, w->builders[i]);
        if (at >= 0)
            r->model->connected[at] += delta;
    }
    r->events_applied++;
    pthread_mutex_unlock(&r->lock);
    log_debug("www: release status: worker %lld %s, applied from its event", workerid,
              delta > 0 ? "connected" : "disconnected");
}

static void handle(struct rel_feed *f, struct ui_page *p, const struct ev_item *it)
{
    if (f->r->model == NULL || f->need_full)
        return; /* the next full read sees it */
    if (it->type == EV_BUILD && it->name == EV_FINISHED)
        build_finished(f, p, it->id);
    else if (it->type == EV_WORKER && (it->name == EV_CONNECTED || it->name == EV_DISCONNECTED))
        worker_changed(f, p, it->id);
    else if (it->type == EV_BUILDER && it->name == EV_UPDATE)
        f->need_set = true; /* once, after the batch: a reconfig sends one per builder */
}

/* Every event visible now. */
static void drain(struct rel_feed *f, struct ui_page *p)
{
    for (;;) {
        struct ev_item items[BATCH];
        uint64_t lost = 0;
        size_t n = ev_read(f->bus, &f->cursor, items, BATCH, &lost);
        if (lost > 0 && f->r->model != NULL && !f->need_full) {
            log_warn("www: release status: %llu events were lost before they were read; "
                     "everything is read again",
                     (unsigned long long)lost);
            f->need_full = true;
        }
        for (size_t i = 0; i < n; i++)
            handle(f, p, &items[i]);
        if (n < BATCH || stopping(f))
            return;
    }
}

/* ------------------------------------------------------------ the thread */

/* One turn of the loop. */
static void turn(struct rel_feed *f, struct ui_page *p)
{
    uint64_t now = util_mono_ms();
    if (!rel_cycle_configured(f->r)) { /* nothing to show: nothing kept, nothing read */
        if (f->r->model != NULL)
            publish(f->r, NULL, false);
        f->need_full = true;
        if (f->bus != NULL)
            f->cursor = ev_head(f->bus);
        wait_for_work(f, WAIT_MS);
        return;
    }
    if (f->r->model != NULL && !f->need_full &&
        now - f->full_at >= (f->bus != NULL ? FULL_MS : NOBUS_MS)) {
        f->need_full = true;
        f->exact = f->bus != NULL;
    }
    if (f->need_full && now >= f->retry_at) {
        full_read(f, p);
        return;
    }
    if (f->bus == NULL) {
        wait_for_work(f, WAIT_MS);
        return;
    }
    wait_for_work(f, f->need_full ? (unsigned)(f->retry_at - now) : WAIT_MS);
    drain(f, p);
    if (f->need_set && !f->need_full && !stopping(f))
        set_read(f, p);
}

static void *feed_main(void *arg)
{
    struct rel_feed *f = arg;
    util_thread_nice(WWW_NICE);
    struct ui_page p = {.w = f->w, .status = 200, .held = json_array()};
    buf_init(&p.out, 0);
    f->need_full = true;
    while (!stopping(f))
        turn(f, &p);
    free(page_done(&p));
    json_decref(p.held);
    buf_free(&p.out);
    return NULL;
}

void www_release_start(struct ui_release *r, struct www *w, struct ev_bus *bus)
{
    struct rel_feed *f = xcalloc(1, sizeof *f);
    f->r = r;
    f->w = w;
    f->bus = bus;
    f->cursor = bus != NULL ? ev_head(bus) : 0;
    const char *hold = getenv("BBM_RELEASE_HOLD");
    f->hold = hold != NULL && hold[0] != '\0' ? xstrdup(hold) : NULL;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    int err = pthread_create(&f->thread, NULL, feed_main, f);
    if (err != 0) { /* the page then says "warming up" for ever, and the log why */
        log_error("www: release status: cannot start its thread: %s", strerror(err));
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        free(f->hold);
        free(f);
        return;
    }
    r->feed = f;
}

void rel_feed_poke(struct ui_release *r)
{
    struct rel_feed *f = r->feed;
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->bus != NULL)
        ev_wake(f->bus);
}

void www_release_stop(struct ui_release *r)
{
    struct rel_feed *f = r->feed;
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->bus != NULL)
        ev_wake(f->bus);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f->hold);
    free(f);
    r->feed = NULL;
}

/* ------------------------------------------------------------ renders */

bool rel_view_take(struct ui_release *r, struct rel_view *v, size_t *done, size_t *total,
                   char **error)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&r->lock);
    const struct rel_model *m = r->model;
    if (m == NULL) {
        *done = r->warm_read;
        *total = r->warm_total;
        *error = r->warm_error != NULL ? xstrdup(r->warm_error) : NULL;
        pthread_mutex_unlock(&r->lock);
        return false;
    }
    size_t n = m->set->n;
    v->set = m->set;
    atomic_fetch_add(&v->set->refs, 1);
    v->hist = xcalloc(n + 1, sizeof *v->hist);
    v->connected = xcalloc(n + 1, sizeof *v->connected);
    for (size_t i = 0; i < n; i++) {
        v->hist[i] = m->hist[i];
        atomic_fetch_add(&v->hist[i]->refs, 1);
        v->connected[i] = m->connected[i];
    }
    pthread_mutex_unlock(&r->lock);
    return true;
}

void rel_view_drop(struct rel_view *v)
{
    for (size_t i = 0; v->set != NULL && i < v->set->n; i++)
        rel_hist_unref(v->hist[i]);
    rel_set_unref(v->set);
    free(v->hist);
    free(v->connected);
    memset(v, 0, sizeof *v);
}
