/*
 * Unit tests for write-behind (db/behind.c) on a real SQLite database whose
 * write lock another connection holds: writes and transactions wait in
 * order, reads fail at once and say why, the bound refuses bulk writes first,
 * and everything that waited is applied once the lock is gone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bbm-test-behind-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", tmpdir) > 0 && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    free(cmd);
    return 0;
}

/* A database with table t (a Buildbot-looking one, so that it is put in WAL mode). */
static struct db *open_db(const char *name)
{
    char *cause = NULL, *url = NULL;
    assert_true(asprintf(&url, "sqlite:///%s", name) > 0);
    struct db *db = db_open(url, tmpdir, false, &cause);
    free(url);
    if (db == NULL)
        fail_msg("db_open: %s", cause);
    return db;
}

static void exec_ok(struct db *db, const char *sql, long long n)
{
    char *cause = NULL;
    struct db_param p[] = {DB_INT(n)};
    if (db_exec(db, sql, p, n >= 0 ? 1 : 0, &cause) != 0)
        fail_msg("%s: %s", sql, cause);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The values of t, in rowid order, as "1,2,3". */
static char *values(struct db *db)
{
    char *cause = NULL;
    struct db_res *r = db_query(db, "SELECT n FROM t ORDER BY id", NULL, 0, &cause);
    if (r == NULL)
        fail_msg("reading t: %s", cause);
    char *out = calloc(1, 4096);
    for (size_t i = 0; i < db_res_rows(r); i++)
        snprintf(out + strlen(out), 4096 - strlen(out), "%s%lld", i > 0 ? "," : "",
                 db_res_int(r, i, 0));
    db_res_free(r);
    return out;
}

/* Retries until what waited is applied (the backoff is at most 4 s). */
static void drain(struct db *db)
{
    for (int i = 0; i < 100 && db_behind_waiting(db) > 0; i++) {
        db_behind_retry(db, false);
        sleep_ms(100);
    }
    assert_int_equal(db_behind_waiting(db), 0);
}

/* A database `name` with write-behind of `max` bytes on *db, and a second connection on
 *other to lock it with; the table t has an integer n and a blob b. */
static void open_pair(const char *name, size_t max, struct db **db, struct db **other)
{
    char *cause = NULL;
    *db = open_db(name);
    *other = open_db(name);
    if (db_exec_script(*db,
                       "CREATE TABLE alembic_version (v TEXT);"
                       "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, b BLOB)",
                       &cause) != 0)
        fail_msg("%s", cause);
    db_behind_enable(*db, max);
}

static void test_writes_wait_in_order(void **state)
{
    (void)state;
    struct db *db, *other;
    char *cause = NULL;
    open_pair("order.sqlite", 1 << 20, &db, &other);
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 1);

    assert_int_equal(db_exec_script(other, "BEGIN EXCLUSIVE", &cause), 0);
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 2); /* locked: it waits */
    assert_true(db_behind_down(db, NULL));
    assert_int_equal(db_behind_waiting(db), 1);
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 3);
    assert_int_equal(db_begin(db, &cause), 0); /* a transaction waits whole */
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 4);
    exec_ok(db, "UPDATE t SET n = n * 10 WHERE n = ?", 4);
    assert_int_equal(db_commit(db, &cause), 0);
    assert_int_equal(db_begin(db, &cause), 0); /* one given up is not */
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 99);
    db_rollback(db);
    assert_int_equal(db_behind_waiting(db), 3);

    long long id = 0;
    struct db_param p[] = {DB_INT(5)};
    assert_int_equal(db_insert(db, "INSERT INTO t (n) VALUES (?)", p, 1, &id, &cause), -1);
    assert_true(db_lost(db));
    assert_non_null(strstr(cause, "the database is unavailable"));
    free(cause), cause = NULL;
    assert_null(db_query(db, "SELECT 1", NULL, 0, &cause));
    assert_true(db_lost(db));
    free(cause), cause = NULL;

    assert_int_equal(db_exec_script(other, "COMMIT", &cause), 0);
    drain(db);
    assert_false(db_behind_down(db, NULL));
    char *v = values(db);
    assert_string_equal(v, "1,2,3,40");
    free(v);
    db_close(other);
    db_close(db);
}

static void test_bound(void **state)
{
    (void)state;
    struct db *db, *other;
    char *cause = NULL;
    open_pair("bound.sqlite", 64 * 1024, &db, &other);
    assert_int_equal(db_exec_script(other, "BEGIN EXCLUSIVE", &cause), 0);
    static char blob[40 * 1024];
    struct db_param p[] = {DB_INT(1), DB_BLOB(blob, sizeof blob)};
    const char *sql = "INSERT INTO t (n, b) VALUES (?, ?)";
    assert_int_equal(db_exec_bulk(db, sql, p, 2, &cause), 0);
    assert_int_equal(db_exec_bulk(db, sql, p, 2, &cause), -1); /* past 64 KiB */
    assert_true(db_lost(db));
    assert_non_null(strstr(cause, "this write is refused"));
    free(cause), cause = NULL;
    p[0] = DB_INT(2); /* a row that finishes something has the reserve */
    assert_int_equal(db_exec(db, sql, p, 2, &cause), 0);
    assert_int_equal(db_exec_script(other, "COMMIT", &cause), 0);
    drain(db);
    char *v = values(db);
    assert_string_equal(v, "1,2");
    free(v);
    db_close(other);
    db_close(db);
}

/* The database back, found by an ordinary write: the next retry still says so, once (the
   engine then runs the botmaster and the repair). */
static void test_return_told_once(void **state)
{
    (void)state;
    struct db *db, *other;
    char *cause = NULL;
    open_pair("told.sqlite", 1 << 20, &db, &other);
    assert_int_equal(db_exec_script(other, "BEGIN EXCLUSIVE", &cause), 0);
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 1);
    assert_int_equal(db_behind_retry(db, true), -1);
    assert_int_equal(db_exec_script(other, "COMMIT", &cause), 0);
    sleep_ms(1000); /* past the backoff (500 ms after two attempts) */
    exec_ok(db, "INSERT INTO t (n) VALUES (?)", 2);
    assert_int_equal(db_behind_waiting(db), 0);
    assert_int_equal(db_behind_retry(db, false), 1);
    assert_int_equal(db_behind_retry(db, false), 0);
    char *v = values(db);
    assert_string_equal(v, "1,2");
    free(v);
    db_close(other);
    db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_wait_in_order),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_return_told_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
