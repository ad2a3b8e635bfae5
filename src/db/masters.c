/*
 * The masters table group: a master registers itself under Buildbot's name
 * "<hostname>:<basedir>" and marks itself inactive, removing its links to
 * builders, workers and services, when it stops (links.c makes them).  The
 * rows other groups find or add by name (builders, workers, schedulers) or by
 * a hash of their fields (source stamps), and objects and their state, are
 * here too.
 */
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The id `find` reads with the first `n_find` of `p`, or the row `add` makes with all `n`. */
static long long find_or_add(struct db *db, const char *find, size_t n_find, const char *add,
                             const struct db_param *p, size_t n, char **cause)
{
    struct db_res *r = db_query(db, find, p, n_find, cause);
    if (r == NULL)
        return -1;
    long long id = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : -1;
    db_res_free(r);
    if (id >= 0)
        return id;
    if (db_insert(db, add, p, n, &id, cause) < 0)
        return -1;
    return id;
}

long long db_master_register(struct db *db, const char *name, long long now, char **cause)
{
    char hash[41];
    db_hash(&name, 1, hash);
    struct db_param p[] = {DB_TEXT(hash), DB_TEXT(name), DB_INT(now)};
    long long id = find_or_add(db, "SELECT id FROM masters WHERE name_hash = ?", 1,
                               "INSERT INTO masters (name_hash, name, active, last_active) "
                               "VALUES (?, ?, 1, ?)",
                               p, 3, cause);
    if (id < 0)
        return -1;
    struct db_param u[] = {DB_INT(now), DB_INT(id)};
    if (db_exec(db, "UPDATE masters SET active = 1, last_active = ? WHERE id = ?", u, 2, cause) < 0)
        return -1;
    /* no worker is connected to a master that is starting (rows left by a crash) */
    if (db_exec(db, "DELETE FROM connected_workers WHERE masterid = ?", &u[1], 1, cause) < 0)
        return -1;
    return id;
}

/* The row of `table` named `name` (by Buildbot's name_hash), added if new with `extra`
   columns set (", enabled" / ", 1"). */
static long long named_id(struct db *db, const char *table, const char *extra_cols,
                          const char *extra_vals, const char *name, char **cause)
{
    char hash[41], find[128], add[256];
    db_hash(&name, 1, hash);
    struct db_param p[] = {DB_TEXT(hash), DB_TEXT(name)};
    snprintf(find, sizeof find, "SELECT id FROM %s WHERE name_hash = ?", table);
    snprintf(add, sizeof add, "INSERT INTO %s (name_hash, name%s) VALUES (?, ?%s)", table,
             extra_cols, extra_vals);
    return find_or_add(db, find, 1, add, p, 2, cause);
}

long long db_builder_id(struct db *db, const char *name, char **cause)
{
    return named_id(db, "builders", "", "", name, cause);
}

long long db_worker_id(struct db *db, const char *name, char **cause)
{
    struct db_param p[] = {DB_TEXT(name)};
    return find_or_add(db, "SELECT id FROM workers WHERE name = ?", 1,
                       "INSERT INTO workers (name, info, paused, graceful) VALUES (?, '{}', 0, 0)",
                       p, 1, cause);
}

static int release_services(struct db *db, long long masterid, char **cause)
{
    struct db_param p = DB_INT(masterid);
    if (db_exec(db, "DELETE FROM scheduler_masters WHERE masterid = ?", &p, 1, cause) < 0 ||
        db_exec(db, "DELETE FROM changesource_masters WHERE masterid = ?", &p, 1, cause) < 0)
        return -1;
    return 0;
}

int db_master_unlink(struct db *db, long long masterid, char **cause)
{
    struct db_param p = DB_INT(masterid);
    if (db_exec(db,
                "DELETE FROM configured_workers WHERE buildermasterid IN "
                "(SELECT id FROM builder_masters WHERE masterid = ?)",
                &p, 1, cause) < 0 ||
        db_exec(db, "DELETE FROM builder_masters WHERE masterid = ?", &p, 1, cause) < 0)
        return -1;
    return release_services(db, masterid, cause);
}

long long db_scheduler_id(struct db *db, const char *name, char **cause)
{
    return named_id(db, "schedulers", ", enabled", ", 1", name, cause);
}

int db_master_deactivate(struct db *db, long long masterid, char **cause)
{
    if (db_master_unlink(db, masterid, cause) < 0)
        return -1;
    struct db_param p = DB_INT(masterid);
    if (db_exec(db, "DELETE FROM connected_workers WHERE masterid = ?", &p, 1, cause) < 0)
        return -1;
    return db_exec(db, "UPDATE masters SET active = 0 WHERE id = ?", &p, 1, cause);
}

int db_worker_connected(struct db *db, long long masterid, const char *name, const char *info,
                        char **cause)
{
    long long id = db_worker_id(db, name, cause);
    if (id < 0)
        return -1;
    struct db_param c[] = {DB_INT(masterid), DB_INT(id)};
    long long row;
    int rc = db_insert(db, "INSERT INTO connected_workers (masterid, workerid) VALUES (?, ?)", c, 2,
                       &row, cause);
    if (rc < 0 && rc != DB_CONFLICT) /* already there: as Buildbot, nothing to do */
        return -1;
    struct db_param u[] = {DB_TEXT(info), DB_INT(id)};
    return db_exec(db, "UPDATE workers SET info = ? WHERE id = ?", u, 2, cause);
}

int db_worker_disconnected(struct db *db, long long masterid, const char *name, char **cause)
{
    struct db_param p[] = {DB_INT(masterid), DB_TEXT(name)};
    return db_exec(db,
                   "DELETE FROM connected_workers WHERE masterid = ? AND workerid IN "
                   "(SELECT id FROM workers WHERE name = ?)",
                   p, 2, cause);
}

long long db_sourcestamp_id(struct db *db, const char *branch, const char *revision,
                            const char *repository, const char *project, const char *codebase,
                            long long now, char **cause)
{
    const char *cols[] = {branch, revision, repository, project, codebase, NULL};
    char hash[41];
    db_hash(cols, 6, hash);
    struct db_param p[] = {DB_TEXT(hash),       DB_TEXT(branch),   DB_TEXT(revision),
                           DB_TEXT(repository), DB_TEXT(codebase), DB_TEXT(project),
                           DB_INT(now)};
    return find_or_add(db, "SELECT id FROM sourcestamps WHERE ss_hash = ?", 1,
                       "INSERT INTO sourcestamps (ss_hash, branch, revision, repository, "
                       "codebase, project, patchid, created_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                       p, 7, cause);
}

long long db_object_id(struct db *db, const char *name, const char *class_name, char **cause)
{
    struct db_param p[] = {DB_TEXT(name), DB_TEXT(class_name)};
    return find_or_add(db, "SELECT id FROM objects WHERE name = ? AND class_name = ?", 2,
                       "INSERT INTO objects (name, class_name) VALUES (?, ?)", p, 2, cause);
}

int db_state_get(struct db *db, long long objectid, const char *name, char **value, char **cause)
{
    struct db_param p[] = {DB_INT(objectid), DB_TEXT(name)};
    struct db_res *r = db_query(
        db, "SELECT value_json FROM object_state WHERE objectid = ? AND name = ?", p, 2, cause);
    if (r == NULL)
        return -1;
    *value = db_res_rows(r) > 0 ? xstrdup(db_res_text(r, 0, 0)) : NULL;
    db_res_free(r);
    return 0;
}

int db_state_set(struct db *db, long long objectid, const char *name, const char *value,
                 char **cause)
{
    struct db_param p[] = {DB_INT(objectid), DB_TEXT(name)};
    struct db_param q[] = {DB_INT(objectid), DB_TEXT(name), DB_TEXT(value)};
    if (db_begin(db, cause) < 0)
        return -1;
    if (db_exec(db, "DELETE FROM object_state WHERE objectid = ? AND name = ?", p, 2, cause) < 0 ||
        db_exec(db, "INSERT INTO object_state (objectid, name, value_json) VALUES (?, ?, ?)", q, 3,
                cause) < 0 ||
        db_commit(db, cause) < 0) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

int db_state_create(struct db *db, long long objectid, const char *name, const char *value,
                    char **out, char **cause)
{
    if (db_state_get(db, objectid, name, out, cause) < 0 || *out != NULL)
        return *out != NULL ? 0 : -1;
    struct db_param q[] = {DB_INT(objectid), DB_TEXT(name), DB_TEXT(value), DB_INT(objectid),
                           DB_TEXT(name)};
    char *why = NULL; /* another master may have added it first: then its value is read */
    db_exec(db,
            "INSERT INTO object_state (objectid, name, value_json) SELECT ?, ?, ? WHERE NOT "
            "EXISTS (SELECT 1 FROM object_state WHERE objectid = ? AND name = ?)",
            q, 5, &why);
    if (db_state_get(db, objectid, name, out, cause) < 0)
        return -1;
    if (*out == NULL)
        util_cause(cause, "cannot store %s: %s", name, why != NULL ? why : "?");
    free(why);
    return *out != NULL ? 0 : -1;
}
