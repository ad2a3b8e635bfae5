/*
 * Deleting old builds and old changes with every row that refers to them, for
 * the janitor's buildHorizon and changeHorizon (bbmaster's own parameters).
 * A build or change goes in stages, children first, so that no foreign key
 * of Buildbot 4.3's schema is ever left pointing at a missing row: a build's
 * log chunks and logs, its test results and result sets, its steps,
 * properties and data, the buildsets that name it as parent or rebuilt
 * build (set to NULL, as the schema's ON DELETE SET NULL would), then the
 * build; a change's files, properties, users and scheduler rows, the changes
 * whose parent it is (set to NULL), then the change.
 *
 * A stage statement touches at most `max` rows: the rows are taken in the
 * order of a key, the last key of the first `max` found and the count read
 * first, then the rows up to that key changed (for keys that are not unique,
 * the rows sharing the last key go with it).  Each statement is its own
 * write, as in prune.c, so a run stopped between two leaves whole rows only.
 */
#include "db/internal.h"

#include <stdio.h>
#include <string.h>

/* One stage: `act` on the rows of `cond` (its `?` are all the parent's id), `max` at a
   time in the order of `key`, an integer column unless `text`. */
struct stage {
    const char *act, *table, *cond, *key;
    int nparams;
    bool text;
};

static const struct stage build_stages[] = {
    {"DELETE FROM", "test_results",
     "test_result_setid IN (SELECT id FROM test_result_sets WHERE buildid = ? OR stepid IN "
     "(SELECT id FROM steps WHERE buildid = ?))",
     "id", 2, false},
    {"DELETE FROM", "test_result_sets",
     "buildid = ? OR stepid IN (SELECT id FROM steps WHERE buildid = ?)", "id", 2, false},
    {"DELETE FROM", "steps", "buildid = ?", "id", 1, false},
    {"DELETE FROM", "build_properties", "buildid = ?", "name", 1, true},
    {"DELETE FROM", "build_data", "buildid = ?", "id", 1, false},
    {"UPDATE", "buildsets SET parent_buildid = NULL", "parent_buildid = ?", "id", 1, false},
    {"UPDATE", "buildsets SET rebuilt_buildid = NULL", "rebuilt_buildid = ?", "id", 1, false},
    {"DELETE FROM", "builds", "id = ?", "id", 1, false},
};

static const struct stage change_stages[] = {
    {"DELETE FROM", "change_files", "changeid = ?", "filename", 1, true},
    {"DELETE FROM", "change_properties", "changeid = ?", "property_name", 1, true},
    {"DELETE FROM", "change_users", "changeid = ?", "uid", 1, false},
    {"DELETE FROM", "scheduler_changes", "changeid = ?", "schedulerid", 1, false},
    {"UPDATE", "changes SET parent_changeids = NULL", "parent_changeids = ?", "changeid", 1, false},
    {"DELETE FROM", "changes", "changeid = ?", "changeid", 1, false},
};

/* The table's name alone (an UPDATE's `table` goes on with its SET). */
static void table_name(const struct stage *s, char *out, size_t size)
{
    size_t n = strcspn(s->table, " ");
    snprintf(out, size, "%.*s", (int)n, s->table);
}

static int run_stage(struct db *db, const struct stage *s, long long id, long long max,
                     long long *rows, bool *more, char **cause)
{
    char sql[768], table[64];
    struct db_param p[4];
    for (int i = 0; i < s->nparams; i++)
        p[i] = DB_INT(id);
    p[s->nparams] = DB_INT(max);
    table_name(s, table, sizeof table);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*), MAX(k) FROM (SELECT %s AS k FROM %s WHERE %s ORDER BY %s "
             "LIMIT ?) x",
             s->key, table, s->cond, s->key);
    struct db_res *r = db_query(db, sql, p, (size_t)s->nparams + 1, cause);
    if (r == NULL)
        return -1;
    long long n = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : 0;
    char last[1100] = "";
    long long last_id = 0;
    if (n > 0 && s->text)
        snprintf(last, sizeof last, "%s", db_res_text(r, 0, 1));
    else if (n > 0)
        last_id = db_res_int(r, 0, 1);
    db_res_free(r);
    *rows = n;
    *more = n >= max;
    if (n == 0)
        return 0;
    p[s->nparams] = s->text ? DB_TEXT(last) : DB_INT(last_id);
    snprintf(sql, sizeof sql, "%s %s WHERE (%s) AND %s <= ?", s->act, s->table, s->cond, s->key);
    return db_exec(db, sql, p, (size_t)s->nparams + 1, cause) < 0 ? -1 : 0;
}

/* A build's first log: up to `max` of its chunks go, the log with its last ones. */
static int build_log(struct db *db, long long buildid, long long max, long long *rows, bool *more,
                     char **cause)
{
    struct db_param p[] = {DB_INT(buildid)};
    struct db_res *r = db_query(
        db, "SELECT MIN(id) FROM logs WHERE stepid IN (SELECT id FROM steps WHERE buildid = ?)", p,
        1, cause);
    if (r == NULL)
        return -1;
    long long logid = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    *rows = 0;
    *more = logid > 0;
    if (logid <= 0)
        return 0;
    long long next;
    if (db_prune_chunks(db, logid, logid, max, rows, &next, cause) < 0)
        return -1;
    if (next != 0)
        return 0;
    struct db_param l[] = {DB_INT(logid)};
    if (db_exec(db, "DELETE FROM logs WHERE id = ?", l, 1, cause) < 0)
        return -1;
    (*rows)++;
    return 0;
}

int db_horizon_build_stage(struct db *db, int stage, long long buildid, long long max,
                           long long *rows, bool *more, char **cause)
{
    if (stage == 0)
        return build_log(db, buildid, max, rows, more, cause);
    return run_stage(db, &build_stages[stage - 1], buildid, max, rows, more, cause);
}

int db_horizon_change_stage(struct db *db, int stage, long long changeid, long long max,
                            long long *rows, bool *more, char **cause)
{
    return run_stage(db, &change_stages[stage], changeid, max, rows, more, cause);
}

int db_horizon_top(struct db *db, bool changes, long long *top, char **cause)
{
    struct db_res *r =
        db_query(db, changes ? "SELECT MAX(changeid) FROM changes" : "SELECT MAX(id) FROM builds",
                 NULL, 0, cause);
    if (r == NULL)
        return -1;
    *top = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    return 0;
}

int db_horizon_next_old(struct db *db, bool changes, long long after, long long window,
                        long long before, long long *found, char **cause)
{
    struct db_param p[] = {DB_INT(after), DB_INT(after + window), DB_INT(before)};
    struct db_res *r =
        db_query(db,
                 changes ? "SELECT MIN(changeid) FROM changes WHERE changeid > ? AND changeid <= ? "
                           "AND +when_timestamp < ?"
                         : "SELECT MIN(id) FROM builds WHERE id > ? AND id <= ? "
                           "AND complete_at IS NOT NULL AND +complete_at < ?",
                 p, 3, cause);
    if (r == NULL)
        return -1;
    *found = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    return 0;
}

_Static_assert(sizeof build_stages / sizeof *build_stages + 1 == DB_HORIZON_BUILD_STAGES,
               "the build's stages");
_Static_assert(sizeof change_stages / sizeof *change_stages == DB_HORIZON_CHANGE_STAGES,
               "the change's stages");
