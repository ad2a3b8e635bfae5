/*
 * Deleting old log chunks, as Buildbot 4.3's deleteOldLogChunks does, in
 * steps small enough that the engine's loop, whose connection this runs on,
 * goes on between them.  Buildbot finds the newest step (by id) that started
 * before the horizon, marks every log of that step or an older one deleted
 * (type 'd', num_lines left as it was) and then deletes the chunks of every
 * log marked so, in three statements of any size.  Here the same is done a
 * window of ids at a time: the step is searched for downwards from the newest
 * in windows of steps, the logs are marked a window of log ids at a time, and
 * the chunks of a window's deleted logs go at most `max` rows per statement.
 *
 * Chunks are read and deleted by ranges of log ids that hold deleted logs only
 * (spans), never joined with `logs`: the planner then has nothing to guess
 * (PostgreSQL's statistics say no log is deleted until they are taken again,
 * and a join it believes small had it sort a whole window's chunks for each
 * batch).  Chunks of a log id no row of `logs` has, left between two deleted
 * logs, go with them.
 *
 * Each statement is a write of its own (no transaction spans two), so a run
 * stopped half-way leaves logs marked or emptied, never a half-written one,
 * and the next run finishes the work.  Bounds in queries name columns as
 * "+column" where an index on that column must not be chosen over the
 * primary key's range: the unary plus is plain SQL for both engines.
 */
#include "db/internal.h"

static long long one_int(struct db *db, const char *sql, const struct db_param *p, size_t n,
                         long long *out, char **cause)
{
    struct db_res *r = db_query(db, sql, p, n, cause);
    if (r == NULL)
        return -1;
    *out = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    return 0;
}

int db_prune_step_window(struct db *db, long long hi, long long window, long long before,
                         long long *found, char **cause)
{
    struct db_param p[] = {DB_INT(hi - window), DB_INT(hi), DB_INT(before)};
    return (int)one_int(db,
                        "SELECT MAX(id) FROM steps WHERE id > ? AND id <= ? AND +started_at < ?", p,
                        3, found, cause);
}

int db_prune_log_ids(struct db *db, long long *first, long long *last, char **cause)
{
    struct db_res *r = db_query(db, "SELECT MIN(id), MAX(id) FROM logs", NULL, 0, cause);
    if (r == NULL)
        return -1;
    *first = db_res_int(r, 0, 0);
    *last = db_res_int(r, 0, 1);
    db_res_free(r);
    return 0;
}

int db_prune_steps_top(struct db *db, long long *top, char **cause)
{
    return (int)one_int(db, "SELECT MAX(id) FROM steps", NULL, 0, top, cause);
}

int db_prune_mark_logs(struct db *db, long long lo, long long hi, long long stepmax,
                       long long *marked, char **cause)
{
    struct db_param p[] = {DB_INT(lo), DB_INT(hi), DB_INT(stepmax)};
    long long mark;
    if (one_int(db,
                "SELECT COUNT(*) FROM logs WHERE id >= ? AND id < ? AND +stepid <= ? "
                "AND type <> 'd'",
                p, 3, &mark, cause) < 0)
        return -1;
    if (mark > 0 && db_exec(db,
                            "UPDATE logs SET type = 'd' WHERE id >= ? AND id < ? AND +stepid <= ? "
                            "AND type <> 'd'",
                            p, 3, cause) < 0)
        return -1;
    *marked = mark;
    return 0;
}

int db_prune_deleted_spans(struct db *db, long long lo, long long hi, long long (*spans)[2],
                           size_t *n, char **cause)
{
    struct db_param p[] = {DB_INT(lo), DB_INT(hi)};
    struct db_res *r = db_query(db,
                                "SELECT id, CASE WHEN type = 'd' THEN 1 ELSE 0 END FROM logs "
                                "WHERE id >= ? AND id < ? ORDER BY id",
                                p, 2, cause);
    if (r == NULL)
        return -1;
    size_t k = 0;
    bool open = false;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        bool gone = db_res_int(r, i, 1) != 0;
        if (gone && !open)
            spans[k++][0] = db_res_int(r, i, 0);
        if (gone)
            spans[k - 1][1] = db_res_int(r, i, 0);
        open = gone;
    }
    db_res_free(r);
    *n = k;
    return 0;
}

/* The index in `r` (rows logid, first_line) of the first row equal to row `k`. */
static size_t first_equal(const struct db_res *r, size_t k)
{
    size_t i = k;
    while (i > 0 && db_res_int(r, i - 1, 0) == db_res_int(r, k, 0) &&
           db_res_int(r, i - 1, 1) == db_res_int(r, k, 1))
        i--;
    return i;
}

/* Deletes the chunks of logs [from, logid) and those of log `logid` whose first line is
   below `line` (at most `line`, with `upto`): index ranges only. */
static int delete_upto(struct db *db, long long from, long long logid, long long line, bool upto,
                       char **cause)
{
    struct db_param w[] = {DB_INT(from), DB_INT(logid)};
    if (from < logid &&
        db_exec(db, "DELETE FROM logchunks WHERE logid >= ? AND logid < ?", w, 2, cause) < 0)
        return -1;
    struct db_param p[] = {DB_INT(logid), DB_INT(line)};
    return db_exec(db,
                   upto ? "DELETE FROM logchunks WHERE logid = ? AND first_line <= ?"
                        : "DELETE FROM logchunks WHERE logid = ? AND first_line < ?",
                   p, 2, cause);
}

int db_prune_chunks(struct db *db, long long from, long long to, long long max, long long *deleted,
                    long long *next, char **cause)
{
    struct db_param p[] = {DB_INT(from), DB_INT(to), DB_INT(max + 1)};
    struct db_res *r = db_query(db,
                                "SELECT logid, first_line FROM logchunks WHERE logid >= ? "
                                "AND logid <= ? ORDER BY logid, first_line LIMIT ?",
                                p, 3, cause);
    if (r == NULL)
        return -1;
    size_t n = db_res_rows(r);
    int rc = 0;
    *deleted = 0;
    *next = 0;
    if (n > 0 && n <= (size_t)max) {
        /* the span's last chunks, up to the last one found */
        rc = delete_upto(db, from, db_res_int(r, n - 1, 0), db_res_int(r, n - 1, 1), true, cause);
        *deleted = (long long)n;
    } else if (n > 0) {
        /* up to the first chunk past `max` (rows with its key wait for the next batch,
           unless the batch holds nothing else) */
        size_t k = first_equal(r, (size_t)max);
        long long logid = db_res_int(r, (size_t)max, 0);
        rc = delete_upto(db, from, logid, db_res_int(r, (size_t)max, 1), k == 0, cause);
        *deleted = k > 0 ? (long long)k : max + 1;
        *next = logid;
    }
    db_res_free(r);
    return rc < 0 ? -1 : 0;
}
