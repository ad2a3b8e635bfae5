/*
 * Unit tests for step logs (engine/logs.c): text arriving in pieces of any
 * size becomes Buildbot's chunks — whole lines joined by '\n', a channel
 * letter first on stdio logs, no newline after the last line — with chunks
 * of at most 64 KiB, line numbers that follow on, unfinished lines of each
 * channel kept apart and written at the close, over-long lines cut, and
 * num_lines and complete set on the logs row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

struct fixture {
    struct engine e;
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    char *cause = NULL;
    f->db = db_open("sqlite://", ".", false, &cause);
    if (f->db == NULL || db_schema_upgrade(f->db, NULL, NULL, &cause) != 0)
        fail_msg("%s", cause);
    f->e.db = f->db;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    free(f);
    return 0;
}

/* The log's chunks: content decoded and joined by '|', and each chunk's line range. */
static char *chunks(struct fixture *f, long long logid, char *ranges, size_t cap)
{
    struct db_param p[] = {DB_INT(logid)};
    char *cause = NULL;
    struct db_res *r = db_query_binary(f->db,
                                       "SELECT first_line, last_line, compressed, content "
                                       "FROM logchunks WHERE logid = ? ORDER BY first_line",
                                       p, 1, &cause);
    if (r == NULL)
        fail_msg("%s", cause);
    struct buf out;
    buf_init(&out, 0);
    ranges[0] = '\0';
    for (size_t i = 0; i < db_res_rows(r); i++) {
        size_t len = 0;
        const unsigned char *data = db_res_blob(r, i, 3, &len);
        if (i > 0)
            buf_addc(&out, '|');
        if (db_chunk_decode((int)db_res_int(r, i, 2), data, len, &out, &cause) != 0)
            fail_msg("%s", cause);
        size_t n = strlen(ranges);
        snprintf(ranges + n, cap - n, "%s%lld-%lld", i > 0 ? " " : "", db_res_int(r, i, 0),
                 db_res_int(r, i, 1));
    }
    db_res_free(r);
    buf_addc(&out, '\0');
    return buf_take(&out);
}

static long long row_int(struct fixture *f, const char *sql, long long id)
{
    struct db_param p[] = {DB_INT(id)};
    char *cause = NULL;
    struct db_res *r = db_query(f->db, sql, p, 1, &cause);
    assert_non_null(r);
    long long v = db_res_int(r, 0, 0);
    db_res_free(r);
    return v;
}

static void add(struct steplog *l, char channel, const char *text)
{
    steplog_add(l, channel, text, strlen(text));
}

static void test_pieces_and_channels(void **state)
{
    struct fixture *f = *state;
    char *cause = NULL;
    struct steplog *l = steplog_open(&f->e, 1, "stdio", 's', &cause);
    assert_non_null(l);
    long long id = l->id;
    add(l, 'h', "sh -c 'make'\n in dir /w\n");
    add(l, 'o', "hel");
    add(l, 'e', "warn");
    add(l, 'o', "lo\nwor");
    add(l, 'e', "ing\n");
    add(l, 'o', "ld\n\nno newline");
    steplogs_flush(&f->e);
    char ranges[256];
    char *text = chunks(f, id, ranges, sizeof ranges);
    assert_string_equal(text, "hsh -c 'make'\nh in dir /w\nohello\newarning\noworld\no");
    assert_string_equal(ranges, "0-5");
    free(text);
    add(l, 'h', "program finished with exit code 0\n");
    steplog_close(l);
    text = chunks(f, id, ranges, sizeof ranges);
    assert_string_equal(text, "hsh -c 'make'\nh in dir /w\nohello\newarning\noworld\no|"
                              "hprogram finished with exit code 0\nono newline");
    assert_string_equal(ranges, "0-5 6-7");
    assert_int_equal(row_int(f, "SELECT num_lines FROM logs WHERE id = ?", id), 8);
    assert_int_equal(row_int(f, "SELECT complete FROM logs WHERE id = ?", id), 1);
    free(text);
}

static void test_chunks_bounded_and_lines_cut(void **state)
{
    struct fixture *f = *state;
    char *cause = NULL;
    struct steplog *l = steplog_open(&f->e, 1, "big", 't', &cause);
    long long id = l->id;
    char line[101];
    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = '\0';
    for (int i = 0; i < 3000; i++) /* 300,000 bytes: several chunks */
        add(l, 0, line);
    char *huge = xmalloc(200001);
    memset(huge, 'y', 200000);
    huge[200000] = '\0';
    add(l, 0, huge); /* one line longer than a chunk: cut into pieces that fit */
    add(l, 0, "\nend");
    steplog_close(l);
    char ranges[4096];
    char *text = chunks(f, id, ranges, sizeof ranges);
    long long lines = row_int(f, "SELECT num_lines FROM logs WHERE id = ?", id);
    assert_int_equal(lines, 3000 + 4 + 1);
    struct db_param p[] = {DB_INT(id)};
    struct db_res *r = db_query(f->db,
                                "SELECT MIN(first_line), MAX(last_line), COUNT(*) "
                                "FROM logchunks WHERE logid = ?",
                                p, 1, &cause);
    assert_int_equal(db_res_int(r, 0, 0), 0);
    assert_int_equal(db_res_int(r, 0, 1), lines - 1);
    assert_true(db_res_int(r, 0, 2) >= 8);
    db_res_free(r);
    /* every chunk within 64 KiB, and the y's all there */
    size_t ys = 0, longest = 0, run = 0;
    for (const char *c = text; *c != '\0'; c++) {
        ys += *c == 'y';
        run = *c == '|' ? 0 : run + 1;
        longest = run > longest ? run : longest;
    }
    assert_int_equal(ys, 200000);
    assert_true(longest <= 65536);
    assert_true(strstr(text, "\nend") != NULL);
    free(text);
    free(huge);
}

/* A chunk written as the log fills (not by the flush timer) goes in with the log's new
   num_lines in one transaction of its own: at every commit the row counts exactly the
   lines of the chunks stored. */
struct tx_watch {
    struct fixture *f;
    long long logid;
    int commits, mismatches;
};

static void on_tx(void *arg, bool open, bool committed)
{
    struct tx_watch *w = arg;
    if (open || !committed)
        return;
    w->commits++;
    struct db_param p[] = {DB_INT(w->logid)};
    char *cause = NULL;
    struct db_res *r = db_query(w->f->db,
                                "SELECT (SELECT num_lines FROM logs WHERE id = ?1), "
                                "(SELECT COALESCE(MAX(last_line) + 1, 0) FROM logchunks "
                                "WHERE logid = ?1)",
                                p, 1, &cause);
    assert_non_null(r);
    w->mismatches += db_res_int(r, 0, 0) != db_res_int(r, 0, 1);
    db_res_free(r);
}

static void test_chunk_and_count_in_one_transaction(void **state)
{
    struct fixture *f = *state;
    char *cause = NULL;
    struct steplog *l = steplog_open(&f->e, 1, "stdio", 's', &cause);
    assert_non_null(l);
    struct tx_watch w = {.f = f, .logid = l->id};
    db_on_transaction(f->db, on_tx, &w);
    for (int i = 0; i < 4000; i++) /* about 5 chunks' worth */
        add(l, 'o', "a line of a test run, eighty bytes or so, with its timing 0.012s 1f2e3d\n");
    long long chunks_written = row_int(f, "SELECT COUNT(*) FROM logchunks WHERE logid = ?", l->id);
    assert_true(chunks_written >= 4);
    assert_int_equal(w.commits, chunks_written);
    assert_int_equal(w.mismatches, 0);
    steplogs_flush(&f->e); /* the rest: the timer's own transaction */
    assert_int_equal(w.commits, chunks_written + 1);
    assert_int_equal(w.mismatches, 0);
    assert_int_equal(row_int(f, "SELECT num_lines FROM logs WHERE id = ?", l->id), 4000);
    db_on_transaction(f->db, NULL, NULL);
    steplog_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pieces_and_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_bounded_and_lines_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_and_count_in_one_transaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
