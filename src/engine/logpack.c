/*
 * Log chunks compressed off the loop.  While a build prints fast, compressing
 * its chunks (zstd, or the configured logCompressionMethod) was more than half
 * of the loop's time: the packer's thread compresses the full chunks instead,
 * in the order they are handed over, and the loop writes them, in that order,
 * each with its log's line count, as logs.c wrote them before.
 *
 * The loop writes what is compressed whenever it hands a chunk over and at the
 * flush timer's turn, and waits for a log's chunks before the log is marked
 * complete.  A log's tail (what is pending at its close or at the timer's
 * turn) is compressed and written at once when none of the log's chunks is in
 * the thread's hands, as before: a small log never waits for the thread.
 *
 * At most LOGPACK_JOBS chunks are handed over and not yet written, in a ring
 * by their sequence number.  Where the loop must wait (the ring is full, a log
 * is being closed) it does not wait for the thread's turn on a busy machine:
 * it compresses the oldest chunk nobody has taken itself, and waits only for
 * the one the thread is working on.  Chunks are written in sequence order
 * whoever compressed them.  Without the thread (it could not start) every
 * chunk is compressed on the loop.
 */
#include "engine/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { LOGPACK_JOBS = 8 };

struct pack_job {
    struct steplog *l;
    char *text; /* the chunk's content, LOG_CHUNK_MAX bytes at most */
    size_t len;
    long long first, lines;
    int codec;    /* asked for; then the one used */
    struct buf z; /* the chunk as stored */
    int rc;       /* of its compression */
    char *cause;
};

enum pack_state { PACK_FREE, PACK_QUEUED, PACK_WORKING, PACK_DONE };

struct logpack {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work, done_cond;
    /* chunk `seq` is in slot seq % LOGPACK_JOBS while written <= seq < next */
    struct pack_job *slot[LOGPACK_JOBS];
    enum pack_state state[LOGPACK_JOBS];
    unsigned long next, written;
    bool stop, started;
};

static void compress(struct pack_job *j)
{
    buf_init(&j->z, 2 * LOG_CHUNK_MAX);
    j->rc = db_chunk_encode(j->text, j->len, &j->z, &j->codec, &j->cause);
}

/* The oldest chunk nobody is compressing, now the caller's (WORKING); the lock held. */
static struct pack_job *claim(struct logpack *p, size_t *at)
{
    for (unsigned long seq = p->written; seq != p->next; seq++) {
        size_t i = seq % LOGPACK_JOBS;
        if (p->state[i] == PACK_QUEUED) {
            p->state[i] = PACK_WORKING;
            *at = i;
            return p->slot[i];
        }
    }
    return NULL;
}

static void compressed(struct logpack *p, size_t at)
{
    pthread_mutex_lock(&p->lock);
    p->state[at] = PACK_DONE;
    pthread_cond_broadcast(&p->done_cond);
    pthread_mutex_unlock(&p->lock);
}

static void *pack_main(void *arg)
{
    struct logpack *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        size_t at;
        struct pack_job *j = claim(p, &at);
        if (j == NULL && p->stop)
            break;
        if (j == NULL) {
            pthread_cond_wait(&p->work, &p->lock);
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        compress(j);
        compressed(p, at);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct logpack *logpack_new(void)
{
    struct logpack *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    int err = pthread_create(&p->thread, NULL, pack_main, p);
    p->started = err == 0;
    if (!p->started)
        log_warn("engine: no thread to compress log chunks (%s): the loop compresses them",
                 strerror(err));
    return p;
}

/* The chunk's row and its log's line count, in one transaction (the caller's, if open). */
static void store(struct engine *e, struct pack_job *j)
{
    struct db *db = e->db;
    struct steplog *l = j->l;
    char *cause = j->cause;
    int rc = j->rc;
    long long last = j->first + j->lines - 1;
    struct db_param p[] = {DB_INT(l->id), DB_INT(j->first), DB_INT(last),
                           DB_BLOB(j->z.data, j->z.len), DB_INT(j->codec)};
    bool own_tx = false;
    if (rc == 0 && !db_in_transaction(db)) {
        rc = db_begin(db, &cause);
        own_tx = rc == 0;
    }
    if (rc == 0)
        rc = db_exec_bulk(
            db,
            "INSERT INTO logchunks (logid, first_line, last_line, content, compressed) "
            "VALUES (?, ?, ?, ?, ?)",
            p, 5, &cause);
    struct db_param u[] = {DB_INT(last + 1), DB_INT(l->id)};
    if (rc == 0)
        rc = db_exec(db, "UPDATE logs SET num_lines = ? WHERE id = ?", u, 2, &cause);
    if (own_tx) {
        if (rc == 0)
            rc = db_commit(db, &cause);
        else
            db_rollback(db);
    }
    if (rc == 0 && !own_tx)
        steplog_unsure(l, j->lines); /* a batch of chunks, the flush timer's, a step's end */
    if (rc == 0)
        engine_publish(e, EV_LOG, l->id, EV_APPEND);
    /* A chunk the database refused, or that found no room to wait for it, is lost: the
       step does not end as if its log were whole. */
    if (rc != 0 && l->step != NULL)
        step_abort(l->step, "%lld lines of log '%s' could not be stored: %s", j->lines, l->name,
                   cause != NULL ? cause : "?");
    if (rc != 0)
        engine_db_error("writing a log chunk", cause);
    else
        free(cause);
    buf_free(&j->z);
    free(j->text);
    free(j);
}

/* Compressed and written now, on the loop. */
static void store_now(struct engine *e, struct pack_job *j)
{
    compress(j);
    store(e, j);
}

/* Writes the chunks compressed so far, in sequence order, up to the first that is not. */
static void collect(struct engine *e, struct logpack *p)
{
    struct pack_job *ready[LOGPACK_JOBS];
    size_t n = 0;
    pthread_mutex_lock(&p->lock);
    while (p->written != p->next && p->state[p->written % LOGPACK_JOBS] == PACK_DONE) {
        size_t i = p->written++ % LOGPACK_JOBS;
        ready[n++] = p->slot[i];
        p->state[i] = PACK_FREE;
    }
    pthread_mutex_unlock(&p->lock);
    bool tx = n > 1 && !db_in_transaction(e->db);
    char *cause = NULL;
    if (tx && db_begin(e->db, &cause) != 0) {
        free(cause);
        tx = false; /* each chunk tries its own */
    }
    for (size_t k = 0; k < n; k++) {
        ready[k]->l->packing--;
        store(e, ready[k]);
    }
    if (tx && db_commit(e->db, &cause) != 0) {
        engine_db_error("writing log chunks", cause);
        db_rollback(e->db);
    }
}

/* Brings the oldest chunk nearer to being written: compresses a chunk nobody has taken,
   or waits for the thread to finish one; then writes what is ready. */
static void help(struct engine *e, struct logpack *p)
{
    size_t at;
    pthread_mutex_lock(&p->lock);
    struct pack_job *j = claim(p, &at);
    while (j == NULL && p->written != p->next && p->state[p->written % LOGPACK_JOBS] != PACK_DONE)
        pthread_cond_wait(&p->done_cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    if (j != NULL) {
        compress(j);
        compressed(p, at);
    }
    collect(e, p);
}

void logpack_put(struct engine *e, struct steplog *l, char *text, size_t len, long long lines,
                 bool tail)
{
    struct logpack *p = e->pack;
    struct pack_job *j = xcalloc(1, sizeof *j);
    j->l = l;
    j->text = text;
    j->len = len;
    j->first = l->num_lines;
    j->lines = lines;
    _Static_assert(CFG_LOG_ZSTD == DB_CHUNK_ZSTD, "config.h and db.h name zstd alike");
    j->codec = e->cfg->log_compression; /* read at each chunk, as Buildbot does */
    if (!p->started || (tail && l->packing == 0)) {
        store_now(e, j);
        return;
    }
    collect(e, p);
    while (p->next - p->written == LOGPACK_JOBS)
        help(e, p);
    pthread_mutex_lock(&p->lock);
    size_t i = p->next++ % LOGPACK_JOBS;
    p->slot[i] = j;
    p->state[i] = PACK_QUEUED;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    l->packing++;
}

void logpack_collect(struct engine *e)
{
    collect(e, e->pack);
}

void logpack_wait(struct engine *e, struct steplog *l)
{
    while (l->packing > 0)
        help(e, e->pack);
}

void logpack_free(struct engine *e)
{
    struct logpack *p = e->pack;
    if (p == NULL)
        return;
    while (p->next != p->written)
        help(e, p);
    if (p->started) {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    pthread_cond_destroy(&p->done_cond);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
    e->pack = NULL;
}
