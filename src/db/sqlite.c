/*
 * The SQLite backend, set up the way Buildbot uses SQLite: WAL journal,
 * foreign keys declared but not enforced, ids from rowids.  Readers on other
 * threads open their own connections and wait (busy timeout) while the
 * engine commits.  Locks, a full disk and I/O errors are the database's
 * state, not the statement's: they set db->lost.  A query with a deadline
 * (db_set_allowance) is stopped by the progress handler when it runs past it.
 */
#include "db/internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* How long a statement waits for a lock another connection holds.  The engine's writer
   waits little: a write that finds the database locked waits in its write-behind queue
   instead of freezing the engine (behind.c).  Readers, each on its own thread, wait
   longer; in WAL mode they seldom wait at all. */
#define WRITER_BUSY_MS 100
#define READER_BUSY_MS 2000
#define STMT_CACHE 64
/* A statement with a deadline looks at the clock every this many of its steps (a few
   microseconds' work: the look costs a fraction of a percent). */
#define WATCH_OPS 1000
/* A reader's page cache (SQLite's default is 2 MB): the web has a connection per thread
   that reads, the file's pages are in the kernel's cache anyway, and 2 MB each was most of
   what a flood of page views added to the master's memory (bench/abuse). */
#define READER_CACHE_KB "512"

/* A connection and the statements it prepared last (the web's queries repeat). */
struct sq_conn {
    sqlite3 *h;
    struct {
        char *sql;
        sqlite3_stmt *st;
        unsigned long used;
    } stmts[STMT_CACHE];
    unsigned long clock;
};

static sqlite3 *conn(struct db *db)
{
    return ((struct sq_conn *)db->handle)->h;
}

/* A prepared statement for sql: a cached one (reset), or a new one put in the cache. */
static sqlite3_stmt *prepare(struct db *db, const char *sql)
{
    struct sq_conn *c = db->handle;
    size_t victim = 0;
    for (size_t i = 0; i < STMT_CACHE; i++) {
        if (c->stmts[i].sql != NULL && strcmp(c->stmts[i].sql, sql) == 0) {
            c->stmts[i].used = ++c->clock;
            return c->stmts[i].st;
        }
        if (c->stmts[i].used < c->stmts[victim].used)
            victim = i;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->h, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_finalize(c->stmts[victim].st);
    free(c->stmts[victim].sql);
    c->stmts[victim].sql = xstrdup(sql);
    c->stmts[victim].st = st;
    c->stmts[victim].used = ++c->clock;
    return st;
}

/* Errors that come from the database's state, not from the statement: a lock, a full
   disk, an I/O error, a file that became read-only. */
static bool unavailable(int code)
{
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
        return true;
    default:
        return false;
    }
}

static int fail(struct db *db, const char *what, char **cause)
{
    int code = sqlite3_extended_errcode(conn(db));
    db->lost = unavailable(code);
    db->overran = code == SQLITE_INTERRUPT && db->deadline_ms != 0;
    if (db->overran)
        return util_cause(cause, "sqlite: %s: stopped after %d ms", what, db->allowance_ms);
    return util_cause(cause, "sqlite: %s: %s", what, sqlite3_errmsg(conn(db)));
}

static int bind_all(struct db *db, sqlite3_stmt *st, const struct db_param *p, size_t n,
                    char **cause)
{
    if ((int)n != sqlite3_bind_parameter_count(st))
        return util_cause(cause, "sqlite: statement takes %d parameters, %zu given",
                          sqlite3_bind_parameter_count(st), n);
    for (size_t i = 0; i < n; i++) {
        int col = (int)i + 1, rc = SQLITE_OK;
        switch (p[i].type) {
        case DB_P_NULL:
            rc = sqlite3_bind_null(st, col);
            break;
        case DB_P_INT:
            rc = sqlite3_bind_int64(st, col, p[i].i);
            break;
        case DB_P_TEXT:
            rc = sqlite3_bind_text(st, col, p[i].s, -1, SQLITE_STATIC);
            break;
        case DB_P_BLOB:
            rc = sqlite3_bind_blob64(st, col, p[i].s, p[i].len, SQLITE_STATIC);
            break;
        }
        if (rc != SQLITE_OK)
            return fail(db, "binding a parameter", cause);
    }
    return 0;
}

static void push_column(struct db_res *r, sqlite3_stmt *st, int col)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
        db_res_push(r, NULL, 0, true);
        break;
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, col);
        db_res_push(r, p, (size_t)sqlite3_column_bytes(st, col), false);
        break;
    }
    default: {
        const unsigned char *t = sqlite3_column_text(st, col);
        db_res_push(r, t, (size_t)sqlite3_column_bytes(st, col), false);
        break;
    }
    }
}

static int step_all(struct db *db, sqlite3_stmt *st, struct db_res **res, char **cause)
{
    int ncols = sqlite3_column_count(st);
    struct db_res *r = NULL;
    if (res != NULL && ncols > 0)
        r = db_res_new((size_t)ncols);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r == NULL)
            continue;
        for (int c = 0; c < ncols; c++)
            push_column(r, st, c);
        db_res_end_row(r);
    }
    if (rc != SQLITE_DONE) {
        db_res_free(r);
        return fail(db, "running a statement", cause);
    }
    if (res != NULL)
        *res = r;
    return 0;
}

static int sq_run(struct db *db, const char *sql, const struct db_param *params, size_t n,
                  struct db_res **res, char **cause)
{
    sqlite3_stmt *st = prepare(db, sql);
    if (st == NULL)
        return fail(db, "preparing a statement", cause);
    int rc = bind_all(db, st, params, n, cause);
    if (rc == 0)
        rc = step_all(db, st, res, cause);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_script(struct db *db, const char *sql, char **cause)
{
    char *err = NULL;
    if (sqlite3_exec(conn(db), sql, NULL, NULL, &err) != SQLITE_OK) {
        db->lost = unavailable(sqlite3_extended_errcode(conn(db)));
        util_cause(cause, "sqlite: %s", err != NULL ? err : "script failed");
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int sq_insert(struct db *db, const char *sql, const struct db_param *params, size_t n,
                     const char *key, long long *id, char **cause)
{
    (void)key; /* the rowid is the integer primary key */
    if (sq_run(db, sql, params, n, NULL, cause) < 0) {
        int ext = sqlite3_extended_errcode(conn(db));
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            return DB_CONFLICT;
        return -1;
    }
    *id = sqlite3_last_insert_rowid(conn(db));
    return 0;
}

static int sq_has_table(struct db *db, const char *table, char **cause)
{
    struct db_res *r = NULL;
    struct db_param p = DB_TEXT(table);
    if (sq_run(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", &p, 1, &r,
               cause) < 0)
        return -1;
    int found = r != NULL && r->rows > 0;
    db_res_free(r);
    return found;
}

static void sq_close(struct db *db)
{
    struct sq_conn *c = db->handle;
    for (size_t i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(c->stmts[i].st);
        free(c->stmts[i].sql);
    }
    sqlite3_close_v2(c->h);
    free(c);
    free(db);
}

/* SQLite's progress handler, every WATCH_OPS steps of a statement: nonzero stops it. */
static int watch_cb(void *arg)
{
    const struct db *db = arg;
    return db->deadline_ms != 0 && util_mono_ms() >= db->deadline_ms;
}

static void sq_allowance(struct db *db, bool on)
{
    sqlite3_progress_handler(conn(db), on ? WATCH_OPS : 0, on ? watch_cb : NULL, db);
}

static const struct db_backend sqlite_backend = {
    .name = "sqlite",
    .close = sq_close,
    .run = sq_run,
    .script = sq_script,
    .insert = sq_insert,
    .has_table = sq_has_table,
    .allowance = sq_allowance,
};

/* A Buildbot database, or an empty one about to become one. */
static bool sq_ours(struct db *db)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT count(*) = 0 OR sum(name = 'alembic_version') > 0 "
                      "FROM sqlite_master WHERE type = 'table'";
    bool ours = sqlite3_prepare_v2(conn(db), sql, -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return ours;
}

struct db *db_sqlite_open(const char *path, bool readonly, char **cause)
{
    sqlite3 *h = NULL;
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &h, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        util_cause(cause, "sqlite: cannot open %s: %s", path,
                   h != NULL ? sqlite3_errmsg(h) : "out of memory");
        sqlite3_close_v2(h);
        return NULL;
    }
    sqlite3_busy_timeout(h, readonly ? READER_BUSY_MS : WRITER_BUSY_MS);
    sqlite3_extended_result_codes(h, 1);
    struct db *db = xcalloc(1, sizeof *db);
    db->kind = DB_SQLITE;
    db->be = &sqlite_backend;
    struct sq_conn *c = xcalloc(1, sizeof *c);
    c->h = h;
    db->handle = c;
    db->readonly = readonly;
    db->allowance_ms = -1;
    /* Sorts and temporary tables in memory: a temporary file per sorted query costs more
       than the query.  (No mmap: mapped pages would count in the master's RSS.) */
    if (sq_script(db, "PRAGMA temp_store = memory", cause) < 0) {
        sq_close(db);
        return NULL;
    }
    /* Buildbot's settings; a read-only connection cannot change the journal, and a
       file that is not (yet) a Buildbot database is left as it is. */
    const char *setup = readonly ? "PRAGMA query_only = 1; PRAGMA cache_size = -" READER_CACHE_KB
                        : sq_ours(db) ? "PRAGMA journal_mode = wal; PRAGMA synchronous = normal; "
                                        "PRAGMA checkpoint_fullfsync = off"
                                      : NULL;
    if (setup != NULL && strcmp(path, ":memory:") != 0 && sq_script(db, setup, cause) < 0) {
        sq_close(db);
        return NULL;
    }
    return db;
}
