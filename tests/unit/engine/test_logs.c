/*
 * Unit tests for step logs (engine/logs.c): text arriving in pieces of any
 * size becomes Buildbot's chunks — whole lines joined by '\n', a channel
 * letter first on stdio logs, no newline after the last line — with chunks
 * of at most 64 KiB, line numbers that follow on, unfinished lines of each
 * channel kept apart and written at the close, over-long lines cut, and
 * num_lines and complete set on the logs row; and the tail of a log that a formatter's
 * want_logs_content reads (engine/reportctx.c), cut at whole lines, and the logs of a
 * formatter's context with their content within the log's and the build's bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "engine/internal.h"
#include "reporters/reporters.h"

struct fixture {
    struct engine e;
    struct cfg cfg;
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
    f->cfg.log_compression = CFG_LOG_ZSTD;
    f->e.cfg = &f->cfg;
    f->e.pack = logpack_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    logpack_free(&f->e);
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

/* What a formatter's want_logs_content reads: the tail of a log of several chunks, whole
   lines within the bound, and the number of its first line. */
static void test_tail_for_formatters(void **state)
{
    struct fixture *f = *state;
    char *cause = NULL;
    struct steplog *l = steplog_open(&f->e, 1, "stdio", 's', &cause);
    long long id = l->id;
    char line[64];
    for (int i = 0; i < 20000; i++) { /* "line 00000\n"...: 11 bytes, 12 with the letter */
        snprintf(line, sizeof line, "line %05d\n", i);
        add(l, 'o', line);
    }
    steplog_close(l);
    assert_true(row_int(f, "SELECT COUNT(*) FROM logchunks WHERE logid = ?", id) >= 3);
    struct buf out;
    long long first = -1;
    /* a bound within a line: the text starts at the next line */
    buf_init(&out, 0);
    assert_int_equal(report_log_tail(f->db, id, 12 * 100 + 5, &out, &first, &cause), 0);
    assert_int_equal(out.len, 12 * 100);
    assert_int_equal(first, 19900);
    buf_addc(&out, '\0');
    assert_memory_equal(out.data, "oline 19900\n", 12);
    assert_string_equal(out.data + out.len - 1 - 12, "oline 19999\n");
    buf_free(&out);
    /* a bound past the first chunk: whole chunks dropped, the lines still counted */
    buf_init(&out, 0);
    assert_int_equal(report_log_tail(f->db, id, 12 * 15000, &out, &first, &cause), 0);
    assert_int_equal(out.len, 12 * 15000);
    assert_int_equal(first, 5000);
    assert_memory_equal(out.data, "oline 05000\n", 12);
    buf_free(&out);
    /* room for all of it */
    buf_init(&out, 0);
    assert_int_equal(report_log_tail(f->db, id, 1 << 20, &out, &first, &cause), 0);
    assert_int_equal(out.len, 12 * 20000);
    assert_int_equal(first, 0);
    assert_memory_equal(out.data, "oline 00000\n", 12);
    buf_free(&out);
    /* a log without chunks */
    l = steplog_open(&f->e, 1, "empty", 't', &cause);
    long long empty = l->id;
    steplog_close(l);
    buf_init(&out, 0);
    assert_int_equal(report_log_tail(f->db, empty, 100, &out, &first, &cause), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(first, 0);
    buf_free(&out);
}

/* A step of build 1 whose stdio log holds `bytes` of lines "NAME line 0000001\n"... */
static void step_with_log(struct fixture *f, int number, const char *name, size_t bytes)
{
    char *cause = NULL;
    struct db_param p[] = {DB_INT(number), DB_INT(number), DB_TEXT(name)};
    if (db_exec(f->db,
                "INSERT INTO steps (id, number, name, buildid, state_string, results, urls_json) "
                "VALUES (?, ?, ?, 1, 'done', 0, '[]')",
                p, 3, &cause) != 0)
        fail_msg("%s", cause);
    struct steplog *l = steplog_open(&f->e, number, "stdio", 's', &cause);
    struct buf text;
    buf_init(&text, 0);
    for (int i = 0; text.len < bytes - 1; i++) /* with the stream letter, one byte more a line */
        buf_printf(&text, "%s line %07d\n", name, i);
    steplog_add(l, 'o', text.data, text.len);
    steplog_close(l);
    buf_free(&text);
}

/* want_logs_content in a formatter's context: the logs named get their content, Buildbot's
   {logid, firstline, content}; a log past REP_LOG_CONTENT_MAX gives its last lines; the
   build's logs stop at REP_BUILD_CONTENT_MAX, the log that meets it cut, later ones empty. */
static void test_logs_content_in_context(void **state)
{
    struct fixture *f = *state;
    struct cfg cfg = {.buildbot_url = "http://bb/", .log_compression = CFG_LOG_ZSTD};
    f->e.cfg = &cfg;
    step_with_log(f, 1, "small", 1000);
    for (int i = 2; i <= 6; i++) { /* 5 x 4.5 MiB: past the build's 16 MiB */
        char name[16];
        snprintf(name, sizeof name, "big%d", i);
        step_with_log(f, i, name, REP_LOG_CONTENT_MAX + REP_LOG_CONTENT_MAX / 8);
    }
    struct build b = {.e = &f->e, .id = 1, .number = 7, .builderid = 3};
    char *names[] = {"small.stdio", "big2.stdio", "stdio"};
    struct cfg_formatter fmt = {.want_logs = true, .logs_content = names, .n_logs_content = 1};
    char *cause = NULL;
    /* only the log named */
    json_t *build = report_build_object(&b, &fmt, "done", true, &cause);
    if (build == NULL)
        fail_msg("%s", cause);
    json_t *steps = json_object_get(build, "steps");
    assert_int_equal(json_array_size(steps), 6);
    json_t *log0 = json_array_get(json_object_get(json_array_get(steps, 0), "logs"), 0);
    json_t *c = json_object_get(log0, "content");
    assert_string_equal(json_string_value(json_object_get(log0, "stepname")), "small");
    assert_string_equal(json_string_value(json_object_get(log0, "url")),
                        "http://bb/#/builders/3/builds/7/steps/1/logs/stdio");
    assert_int_equal(json_integer_value(json_object_get(c, "firstline")), 0);
    const char *text = json_string_value(json_object_get(c, "content"));
    assert_memory_equal(text, "osmall line 0000000\nosmall line 0000001\n", 40);
    assert_null(json_object_get(
        json_array_get(json_object_get(json_array_get(steps, 1), "logs"), 0), "content"));
    json_decref(build);
    /* "stdio": every step's log, within the bounds */
    fmt.logs_content = names + 2;
    build = report_build_object(&b, &fmt, "done", true, &cause);
    steps = json_object_get(build, "steps");
    size_t total = 0;
    for (size_t i = 0; i < 6; i++) {
        json_t *l = json_array_get(json_object_get(json_array_get(steps, i), "logs"), 0);
        c = json_object_get(l, "content");
        size_t len = json_string_length(json_object_get(c, "content"));
        text = json_string_value(json_object_get(c, "content"));
        long long first = json_integer_value(json_object_get(c, "firstline"));
        total += len;
        if (i == 0) {
            assert_int_equal(first, 0);
        } else if (i <= 3) { /* the last 4 MiB, from a line's start, numbered */
            assert_true(len <= REP_LOG_CONTENT_MAX && len > REP_LOG_CONTENT_MAX - 40);
            char want[64];
            snprintf(want, sizeof want, "obig%zu line %07lld\n", i + 1, first);
            assert_memory_equal(text, want, strlen(want));
            assert_true(first > 0);
        } else if (i == 4) { /* what the build's bound leaves */
            assert_true(len < REP_LOG_CONTENT_MAX && len > 0);
        } else {
            assert_int_equal(len, 0);
        }
    }
    assert_true(total <= REP_BUILD_CONTENT_MAX && total > REP_BUILD_CONTENT_MAX - 100);
    json_decref(build);
    f->e.cfg = &f->cfg;
}

/* Chunks written as the log fills (not by the flush timer) go in with the log's new
   num_lines: at every commit the row counts exactly the lines of the chunks stored.  They
   are compressed on the packer's thread and written in order, several to a commit when
   several are ready. */
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
    logpack_wait(&f->e, l); /* what was handed over is written, in order */
    long long chunks_written = row_int(f, "SELECT COUNT(*) FROM logchunks WHERE logid = ?", l->id);
    assert_true(chunks_written >= 4);
    assert_in_range(w.commits, 1, chunks_written);
    assert_int_equal(w.mismatches, 0);
    int commits = w.commits;
    steplogs_flush(&f->e); /* the rest: one chunk, its own transaction */
    assert_int_equal(w.commits, commits + 1);
    assert_int_equal(w.mismatches, 0);
    assert_int_equal(row_int(f, "SELECT num_lines FROM logs WHERE id = ?", l->id), 4000);
    assert_int_equal(row_int(f, "SELECT MIN(first_line) FROM logchunks WHERE logid = ?", l->id), 0);
    db_on_transaction(f->db, NULL, NULL);
    steplog_close(l);
}

/* Three logs filled in turns, far past the packer's ring: whoever compressed a chunk (the
   packer's thread, or the loop when it waits), each log's chunks are written in order,
   their line ranges follow one another, and each log holds exactly its lines. */
static void test_many_chunks_of_logs_in_turns(void **state)
{
    struct fixture *f = *state;
    char *cause = NULL;
    struct steplog *logs[3];
    const char *names[] = {"stdio", "test.log", "make.log"};
    for (int k = 0; k < 3; k++)
        assert_non_null(logs[k] = steplog_open(&f->e, 1, names[k], 's', &cause));
    enum { LINES = 30000 }; /* some 30 chunks a log */
    char line[128];
    for (int i = 0; i < LINES; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(line, sizeof line, "log %d line %06d, as long as a test's line of output is\n",
                     k, i);
            add(logs[k], 'o', line);
            if (i % 7000 == 0 && k == 1)
                steplogs_flush(&f->e); /* a partial chunk now and then, as the timer makes */
        }
    long long ids[3];
    for (int k = 0; k < 3; k++) {
        ids[k] = logs[k]->id;
        steplog_close(logs[k]);
    }
    for (int k = 0; k < 3; k++) {
        static char ranges[1 << 14];
        char *text = chunks(f, ids[k], ranges, sizeof ranges);
        long long next = 0, first, last;
        int used;
        for (const char *r = ranges; sscanf(r, "%lld-%lld%n", &first, &last, &used) == 2;
             r += used + (r[used] == ' ')) {
            assert_int_equal(first, next);
            next = last + 1;
        }
        assert_int_equal(next, LINES);
        assert_int_equal(row_int(f, "SELECT num_lines FROM logs WHERE id = ?", ids[k]), LINES);
        assert_int_equal(row_int(f,
                                 "SELECT COUNT(*) FROM logchunks a JOIN logchunks b ON "
                                 "a.logid = b.logid AND a.rowid < b.rowid AND "
                                 "a.first_line > b.first_line WHERE a.logid = ?",
                                 ids[k]),
                         0); /* written in order */
        int i = 0;
        for (char *at = text; *at != '\0'; i++) {
            snprintf(line, sizeof line, "olog %d line %06d, as long as a test's line of output is",
                     k, i);
            assert_memory_equal(at, line, strlen(line));
            at += strlen(line);
            if (*at == '\n' || *at == '|')
                at++;
        }
        assert_int_equal(i, LINES);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pieces_and_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_bounded_and_lines_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_for_formatters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_content_in_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_and_count_in_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_chunks_of_logs_in_turns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
