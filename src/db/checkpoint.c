/*
 * SQLite's WAL checkpoint, off the engine's thread.  SQLite copies the WAL
 * back into the database file when a commit finds it past 1,000 pages, on
 * the committing connection: the engine would stop for as long as that
 * copy and its fsync take.  With a checkpointer, the writer's automatic
 * checkpoint is turned off and a thread of its own runs a PASSIVE
 * checkpoint (it never waits for readers or the writer) on its own
 * connection every few seconds.  PostgreSQL needs none.
 */
#include "db/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct db_checkpointer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop, started;
    struct db *db;
    unsigned interval_ms;
};

static void *run(void *arg)
{
    struct db_checkpointer *k = arg;
    bool failing = false;
    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        struct timespec until = util_deadline(CLOCK_MONOTONIC, k->interval_ms);
        while (!k->stop && pthread_cond_timedwait(&k->wake, &k->lock, &until) != ETIMEDOUT)
            ;
        if (k->stop)
            break;
        pthread_mutex_unlock(&k->lock);
        char *cause = NULL;
        int rc = k->db->be->script(k->db, "PRAGMA wal_checkpoint(PASSIVE)", &cause);
        if (rc != 0 && !failing)
            log_warn("database: the WAL checkpoint failed: %s", cause);
        failing = rc != 0;
        free(cause);
        pthread_mutex_lock(&k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

struct db_checkpointer *db_checkpointer_start(struct db *writer, const char *url,
                                              const char *basedir, unsigned interval_ms,
                                              char **cause)
{
    if (writer->kind != DB_SQLITE)
        return NULL;
    struct db *db = db_open(url, basedir, false, cause);
    if (db == NULL)
        return NULL;
    if (db_exec_script(writer, "PRAGMA wal_autocheckpoint = 0", cause) != 0) {
        db_close(db);
        return NULL;
    }
    struct db_checkpointer *k = xcalloc(1, sizeof *k);
    k->db = db;
    k->interval_ms = interval_ms;
    pthread_mutex_init(&k->lock, NULL);
    util_cond_init_monotonic(&k->wake);
    k->started = pthread_create(&k->thread, NULL, run, k) == 0;
    if (!k->started) {
        util_cause(cause, "cannot start the checkpoint thread");
        db_exec_script(writer, "PRAGMA wal_autocheckpoint = 1000", NULL);
        db_checkpointer_stop(k);
        return NULL;
    }
    return k;
}

void db_checkpointer_stop(struct db_checkpointer *k)
{
    if (k == NULL)
        return;
    if (k->started) {
        pthread_mutex_lock(&k->lock);
        k->stop = true;
        pthread_cond_signal(&k->wake);
        pthread_mutex_unlock(&k->lock);
        pthread_join(k->thread, NULL);
    }
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->wake);
    db_close(k->db);
    free(k);
}
