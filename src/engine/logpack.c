/*
 * Log chunks compressed off the loop.  While a build prints fast, compressing
 * its chunks (zstd, or the configured logCompressionMethod) was more than half
 * of the loop's time: the packer's thread does it instead, in the order the
 * chunks are handed over, and the loop writes them, in that order, each with
 * its log's line count, as logs.c wrote them before.
 *
 * The loop writes what is compressed whenever it hands a chunk over, and
 * waits for the rest where the rows must be there: at the flush timer's turn
 * (so a log's lines reach the database within its interval, as before) and
 * before a log is marked complete.  At most LOGPACK_JOBS chunks are handed
 * over and not yet written; the next one waits for the oldest (the loop then
 * reads its workers no faster than the thread compresses).  Without the
 * thread (it could not start) chunks are compressed on the loop.
 */
#include "engine/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { LOGPACK_JOBS = 8 };

struct pack_job {
    struct pack_job *next;
    struct steplog *l;
    char *text; /* the chunk's content, LOG_CHUNK_MAX bytes at most */
    size_t len;
    long long first, lines;
    int codec;    /* asked for; then the one used */
    struct buf z; /* the chunk as stored */
    int rc;       /* of its compression */
    char *cause;
};

struct logpack {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work, done_cond;
    struct pack_job *todo, **todo_tail; /* for the thread, oldest first */
    struct pack_job *done, **done_tail; /* compressed, for the loop to write */
    size_t n;                           /* handed over, not yet written */
    bool stop, started;
};

static void compress(struct pack_job *j)
{
    buf_init(&j->z, 2 * LOG_CHUNK_MAX);
    j->rc = db_chunk_encode(j->text, j->len, &j->z, &j->codec, &j->cause);
}

static void *pack_main(void *arg)
{
    struct logpack *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->todo == NULL)
            pthread_cond_wait(&p->work, &p->lock);
        struct pack_job *j = p->todo;
        if (j == NULL)
            break;
        p->todo = j->next;
        if (p->todo == NULL)
            p->todo_tail = &p->todo;
        pthread_mutex_unlock(&p->lock);
        compress(j);
        pthread_mutex_lock(&p->lock);
        j->next = NULL;
        *p->done_tail = j;
        p->done_tail = &j->next;
        pthread_cond_broadcast(&p->done_cond);
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
    p->todo_tail = &p->todo;
    p->done_tail = &p->done;
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

/* Writes the chunks compressed so far, oldest first; with `wait`, first waits until there
   is one (or, `all`, until every chunk handed over is). */
static void collect(struct engine *e, struct logpack *p, bool wait, bool all)
{
    pthread_mutex_lock(&p->lock);
    while (wait && (p->done == NULL || (all && p->todo != NULL)))
        pthread_cond_wait(&p->done_cond, &p->lock);
    struct pack_job *done = p->done;
    p->done = NULL;
    p->done_tail = &p->done;
    pthread_mutex_unlock(&p->lock);
    if (done == NULL)
        return;
    bool tx = done->next != NULL && !db_in_transaction(e->db);
    char *cause = NULL;
    if (tx && db_begin(e->db, &cause) != 0) {
        free(cause);
        tx = false; /* each chunk tries its own */
    }
    while (done != NULL) {
        struct pack_job *j = done;
        done = j->next;
        p->n--;
        store(e, j);
    }
    if (tx && db_commit(e->db, &cause) != 0) {
        engine_db_error("writing log chunks", cause);
        db_rollback(e->db);
    }
}

void logpack_put(struct engine *e, struct steplog *l, char *text, size_t len, long long lines)
{
    struct logpack *p = e->pack;
    struct pack_job *j = xcalloc(1, sizeof *j);
    j->l = l;
    j->text = text;
    j->len = len;
    j->first = l->num_lines;
    j->lines = lines;
    j->codec = e->cfg->log_compression; /* read at each chunk, as Buildbot does */
    if (!p->started) {
        compress(j);
        store(e, j);
        return;
    }
    collect(e, p, p->n >= LOGPACK_JOBS, false);
    pthread_mutex_lock(&p->lock);
    *p->todo_tail = j;
    p->todo_tail = &j->next;
    p->n++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void logpack_drain(struct engine *e)
{
    struct logpack *p = e->pack;
    while (p->n > 0)
        collect(e, p, true, true);
}

void logpack_free(struct engine *e)
{
    struct logpack *p = e->pack;
    if (p == NULL)
        return;
    logpack_drain(e);
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
