/*
 * Unit tests for the db module's common half and its two backends:
 * db_url handling, parameters and results, transactions, conflicts,
 * read-only connections, and Buildbot's name hash checked against the
 * hashes in a database Buildbot wrote.  The PostgreSQL tests use the server
 * BBM_TEST_PG_URL names (`make unit` runs them under scripts/with-pg.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"

#define FIXTURE BBM_SHARED_DIR "/fixtures/dataapi/state.sqlite"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bbm-test-db-XXXXXX");
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

static struct db *open_ok(const char *url, bool readonly)
{
    char *cause = NULL;
    struct db *db = db_open(url, tmpdir, readonly, &cause);
    if (db == NULL)
        fail_msg("db_open(%s): %s", url, cause);
    return db;
}

static void test_relative_url_and_round_trip(void **state)
{
    (void)state;
    struct db *db = open_ok("sqlite:///state.sqlite", false);
    char *cause = NULL;
    assert_int_equal(db_kind(db), DB_SQLITE);
    assert_int_equal(db_exec_script(db,
                                    "CREATE TABLE t (id INTEGER PRIMARY KEY, "
                                    "n INTEGER, s TEXT, b BLOB, u VARCHAR(10));"
                                    "CREATE UNIQUE INDEX t_u ON t (u)",
                                    &cause),
                     0);
    const unsigned char blob[] = {0, 1, 255, 0, 7};
    struct db_param p[] = {DB_INT(-42), DB_TEXT("h\xc3\xa9 'x'"), DB_BLOB(blob, sizeof blob),
                           DB_TEXT("a")};
    long long id = 0;
    assert_int_equal(
        db_insert(db, "INSERT INTO t (n, s, b, u) VALUES (?, ?, ?, ?)", p, 4, &id, &cause), 0);
    assert_int_equal(id, 1);
    assert_int_equal(
        db_insert(db, "INSERT INTO t (n, s, b, u) VALUES (?, ?, ?, ?)", p, 4, &id, &cause),
        DB_CONFLICT);
    struct db_param q[] = {DB_NULL, DB_TEXT(NULL), DB_BLOB("", 0), DB_TEXT("b")};
    assert_int_equal(
        db_insert(db, "INSERT INTO t (n, s, b, u) VALUES (?, ?, ?, ?)", q, 4, &id, &cause), 0);
    assert_int_equal(id, 2);
    struct db_res *r = db_query(db, "SELECT n, s, b, u FROM t ORDER BY id", NULL, 0, &cause);
    assert_non_null(r);
    assert_int_equal(db_res_rows(r), 2);
    assert_int_equal(db_res_cols(r), 4);
    assert_int_equal(db_res_int(r, 0, 0), -42);
    assert_string_equal(db_res_text(r, 0, 1), "h\xc3\xa9 'x'");
    size_t len = 0;
    const unsigned char *b = db_res_blob(r, 0, 2, &len);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(b, blob, sizeof blob);
    assert_true(db_res_null(r, 1, 0));
    assert_null(db_res_text(r, 1, 1));
    assert_false(db_res_null(r, 1, 2));
    assert_true(db_res_null(r, 5, 0)); /* out of range reads as NULL */
    db_res_free(r);
    db_close(db);
    char path[128];
    snprintf(path, sizeof path, "%s/state.sqlite", tmpdir);
    assert_int_equal(access(path, F_OK), 0);
    free(cause);
}

static void test_transactions_and_readonly(void **state)
{
    (void)state;
    char url[160], *cause = NULL;
    snprintf(url, sizeof url, "sqlite:////%s/tx.sqlite", tmpdir + 1);
    struct db *db = open_ok(url, false);
    assert_int_equal(db_exec(db, "CREATE TABLE k (v INTEGER)", NULL, 0, &cause), 0);
    assert_int_equal(db_begin(db, &cause), 0);
    assert_int_equal(db_begin(db, &cause), -1);
    struct db_param one = DB_INT(1);
    assert_int_equal(db_exec(db, "INSERT INTO k (v) VALUES (?)", &one, 1, &cause), 0);
    db_rollback(db);
    struct db_res *r = db_query(db, "SELECT count(*) FROM k", NULL, 0, &cause);
    assert_int_equal(db_res_int(r, 0, 0), 0);
    db_res_free(r);
    assert_int_equal(db_exec(db, "INSERT INTO k (v) VALUES (?)", &one, 1, &cause), 0);
    assert_int_equal(db_exec(db, "UPDATE k SET v = ? WHERE v = ?", &one, 1, &cause), -1);
    assert_non_null(strstr(cause, "parameters"));

    struct db *ro = open_ok(url, true);
    assert_int_equal(db_exec(ro, "INSERT INTO k (v) VALUES (?)", &one, 1, &cause), -1);
    assert_string_equal(cause, "this database connection is read-only");
    r = db_query(ro, "SELECT count(*) FROM k", NULL, 0, &cause);
    assert_non_null(r);
    assert_int_equal(db_res_int(r, 0, 0), 1);
    db_res_free(r);
    assert_int_equal(db_has_table(ro, "k", &cause), 1);
    assert_int_equal(db_has_table(ro, "nope", &cause), 0);
    db_close(ro);
    db_close(db);
    free(cause);
}

/* Which tables a write counts against, and when (the web's cache relies on it). */
static void test_write_counts(void **state)
{
    (void)state;
    struct db *db = open_ok("sqlite:///writes.sqlite", false);
    char *cause = NULL;
    static const char *const builders[] = {"builders", "tags", NULL};
    static const char *const builds[] = {"builds", NULL};
    assert_int_equal(db_exec_script(db,
                                    "CREATE TABLE builds (id INTEGER PRIMARY KEY);"
                                    "CREATE TABLE builders (id INTEGER PRIMARY KEY)",
                                    &cause),
                     0);
    unsigned long b0 = db_writes(builders), s0 = db_writes(builds), all0 = db_writes(NULL);
    long long id;
    assert_int_equal(db_insert(db, "INSERT INTO builds (id) VALUES (1)", NULL, 0, &id, &cause), 0);
    assert_int_equal(db_writes(builders), b0);
    assert_true(db_writes(builds) > s0 && db_writes(NULL) > all0);
    /* in a transaction: counted again when it ends */
    assert_int_equal(db_begin(db, &cause), 0);
    assert_int_equal(db_exec(db, " update \"builders\" SET id = 2", NULL, 0, &cause), 0);
    unsigned long b1 = db_writes(builders);
    assert_true(b1 > b0);
    assert_int_equal(db_commit(db, &cause), 0);
    assert_true(db_writes(builders) > b1);
    /* what names no table it knows counts against every table */
    s0 = db_writes(builds);
    assert_int_equal(db_exec_script(db, "DELETE FROM builders", &cause), 0);
    assert_true(db_writes(builds) > s0);
    db_close(db);
    free(cause);
}

static void test_bad_urls(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_null(db_open("mysql://x@y/z", tmpdir, false, &cause));
    assert_non_null(strstr(cause, "unsupported"));
    assert_null(db_open("sqlite:////nonexistent-dir/x/y.sqlite", tmpdir, false, &cause));
    assert_non_null(strstr(cause, "cannot open"));
    free(cause);
}

/* Buildbot's builders.name_hash and sourcestamps.ss_hash, as Buildbot 3.7 wrote them. */
static void test_hash_matches_buildbot(void **state)
{
    (void)state;
    char cmd[512], *cause = NULL;
    /* a copy: opening a WAL database even read-only creates files beside it */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/fixture.sqlite'", FIXTURE, tmpdir);
    assert_int_equal(system(cmd), 0);
    struct db *db = db_open("sqlite:///fixture.sqlite", tmpdir, true, &cause);
    assert_non_null(db);
    struct db_res *r = db_query(db, "SELECT name, name_hash FROM builders", NULL, 0, &cause);
    assert_true(db_res_rows(r) >= 4);
    for (size_t i = 0; i < db_res_rows(r); i++) {
        const char *name = db_res_text(r, i, 0);
        char hash[41];
        db_hash(&name, 1, hash);
        assert_string_equal(hash, db_res_text(r, i, 1));
    }
    db_res_free(r);
    r = db_query(db,
                 "SELECT branch, revision, repository, project, codebase, patchid, ss_hash "
                 "FROM sourcestamps",
                 NULL, 0, &cause);
    assert_true(db_res_rows(r) >= 1);
    for (size_t i = 0; i < db_res_rows(r); i++) {
        const char *v[6];
        for (int c = 0; c < 6; c++)
            v[c] = db_res_text(r, i, (size_t)c);
        char hash[41];
        db_hash(v, 6, hash);
        assert_string_equal(hash, db_res_text(r, i, 6));
    }
    db_res_free(r);
    db_close(db);
    free(cause);
}

/* The same round trip through libpq: placeholders renumbered (not inside a
   literal), bytea both ways, RETURNING ids, unique violations, NULLs. */
static void test_postgresql_round_trip(void **state)
{
    (void)state;
    const char *url = getenv("BBM_TEST_PG_URL");
    if (url == NULL || *url == '\0')
        skip();
    struct db *db = open_ok(url, false);
    char *cause = NULL;
    assert_int_equal(db_kind(db), DB_PG);
    assert_int_equal(db_exec_script(db,
                                    "DROP TABLE IF EXISTS bbm_unit_t;"
                                    "CREATE TABLE bbm_unit_t (id SERIAL PRIMARY KEY, n INTEGER, "
                                    "s TEXT, b BYTEA, u VARCHAR(10) UNIQUE)",
                                    &cause),
                     0);
    const unsigned char blob[] = {0, 1, 255, 0, '\\', 7};
    struct db_param p[] = {DB_INT(-42), DB_TEXT("h\xc3\xa9 'x' ?"), DB_BLOB(blob, sizeof blob),
                           DB_TEXT("a")};
    const char *ins = "INSERT INTO bbm_unit_t (n, s, b, u) VALUES (?, ?, ?, ?)";
    long long id = 0;
    assert_int_equal(db_insert(db, ins, p, 4, &id, &cause), 0);
    assert_int_equal(id, 1);
    assert_int_equal(db_insert(db, ins, p, 4, &id, &cause), DB_CONFLICT);
    struct db_param q[] = {DB_NULL, DB_TEXT(NULL), DB_BLOB("", 0), DB_TEXT("b")};
    assert_int_equal(db_insert(db, ins, q, 4, &id, &cause), 0);
    assert_int_equal(id, 3); /* the failed insert used a sequence value, as in PostgreSQL */
    struct db_param like = DB_TEXT("b");
    struct db_res *r =
        db_query(db, "SELECT n, s, b, u, '?' FROM bbm_unit_t WHERE u = ? OR u = 'a' ORDER BY id",
                 &like, 1, &cause);
    assert_non_null(r);
    assert_int_equal(db_res_rows(r), 2);
    assert_int_equal(db_res_int(r, 0, 0), -42);
    assert_string_equal(db_res_text(r, 0, 1), "h\xc3\xa9 'x' ?");
    size_t len = 0;
    const unsigned char *b = db_res_blob(r, 0, 2, &len);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(b, blob, sizeof blob);
    assert_string_equal(db_res_text(r, 0, 4), "?");
    assert_true(db_res_null(r, 1, 0));
    assert_null(db_res_text(r, 1, 1));
    assert_false(db_res_null(r, 1, 2));
    db_res_free(r);
    /* integers and blobs in binary; other types refused */
    r = db_query_binary(db, "SELECT n, b, id::int8, 7::int2 FROM bbm_unit_t ORDER BY id", NULL, 0,
                        &cause);
    assert_non_null(r);
    assert_int_equal(db_res_int(r, 0, 0), -42);
    b = db_res_blob(r, 0, 1, &len);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(b, blob, sizeof blob);
    assert_true(db_res_null(r, 1, 0));
    assert_int_equal(db_res_int(r, 1, 2), 3);
    assert_int_equal(db_res_int(r, 1, 3), 7);
    db_res_free(r);
    assert_null(db_query_binary(db, "SELECT s FROM bbm_unit_t", NULL, 0, &cause));
    assert_non_null(strstr(cause, "not integer or bytea"));

    assert_int_equal(db_begin(db, &cause), 0);
    assert_int_equal(db_exec(db, "DELETE FROM bbm_unit_t", NULL, 0, &cause), 0);
    db_rollback(db);
    struct db *ro = open_ok(url, true);
    r = db_query(ro, "SELECT count(*) FROM bbm_unit_t", NULL, 0, &cause);
    assert_int_equal(db_res_int(r, 0, 0), 2);
    db_res_free(r);
    assert_int_equal(db_exec(ro, "DELETE FROM bbm_unit_t", NULL, 0, &cause), -1);
    assert_int_equal(db_has_table(ro, "bbm_unit_t", &cause), 1);
    assert_int_equal(db_has_table(ro, "nope", &cause), 0);
    db_close(ro);
    assert_int_equal(db_exec(db, "DROP TABLE bbm_unit_t", NULL, 0, &cause), 0);
    db_close(db);
    free(cause);
}

/* A query past its allowance is stopped and says so; the connection goes on; a bound of 0
   runs nothing, a negative one is no bound. */
static void check_allowance(struct db *db, const char *long_query)
{
    char *cause = NULL;
    db_set_allowance(db, 20);
    assert_null(db_query(db, long_query, NULL, 0, &cause));
    assert_true(db_overran(db));
    assert_false(db_lost(db));
    struct db_res *r = db_query(db, "SELECT 1", NULL, 0, &cause);
    assert_non_null(r);
    assert_false(db_overran(db));
    db_res_free(r);
    db_set_allowance(db, 0);
    assert_null(db_query(db, "SELECT 1", NULL, 0, &cause));
    assert_true(db_overran(db));
    db_set_allowance(db, -1);
    r = db_query(db, "SELECT 2", NULL, 0, &cause);
    assert_non_null(r);
    assert_int_equal(db_res_int(r, 0, 0), 2);
    db_res_free(r);
    /* an error of the statement is not an overrun */
    db_set_allowance(db, 60000);
    assert_null(db_query(db, "SELECT * FROM no_such_table", NULL, 0, &cause));
    assert_false(db_overran(db));
    free(cause);
}

static void test_allowance(void **state)
{
    (void)state;
    struct db *db = open_ok("sqlite:///allowance.sqlite", false);
    check_allowance(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                        "WHERE x < 1000000000) SELECT count(*) FROM c");
    db_close(db);
    const char *url = getenv("BBM_TEST_PG_URL");
    if (url == NULL || *url == '\0')
        return;
    db = open_ok(url, true);
    check_allowance(db, "SELECT pg_sleep(600)");
    db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_url_and_round_trip),
        cmocka_unit_test(test_transactions_and_readonly),
        cmocka_unit_test(test_write_counts),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_hash_matches_buildbot),
        cmocka_unit_test(test_postgresql_round_trip),
        cmocka_unit_test(test_allowance),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
