/*
 * Unit tests for the /api/v2 query language (www/query.c): parsing with
 * Buildbot's rules and 400 messages, the SQL it produces (whitelisted
 * expressions only, every value a parameter), and the in-memory evaluation
 * with Python's ordering and slicing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static const struct www_field fields[] = {
    {"buildid", WWW_F_INT, "b.id"},
    {"complete", WWW_F_BOOL, "b.complete_at IS NOT NULL"},
    {"state_string", WWW_F_STR, "b.state_string"},
    {"started_at", WWW_F_EPOCH, "b.started_at"},
    {"tags", WWW_F_STRS, NULL},
    {"properties", WWW_F_OBJECT, NULL},
};
static const struct www_rtype builds = {"builds", fields, UTIL_NELEM(fields)};

/* Splits "a=1&b=2" the way the server hands parameters over (no decoding here). */
static size_t split(char *qs, struct www_kv *kv, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *p = strtok_r(qs, "&", &save); p != NULL && n < max;
         p = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(p, '=');
        if (eq != NULL)
            *eq++ = '\0';
        kv[n++] = (struct www_kv){p, eq != NULL ? eq : ""};
    }
    return n;
}

/* Parses `qs`; returns the error message (caller frees) or NULL on success. */
static char *parse(const char *qs, bool single, struct www_query *q)
{
    char *copy = strdup(qs), *cause = NULL;
    struct www_kv kv[128];
    size_t n = split(copy, kv, 128);
    int rc = www_query_parse(kv, n, &builds, single, q, &cause);
    free(copy);
    return rc == 0 ? NULL : cause;
}

static void expect_error(const char *qs, const char *message)
{
    struct www_query q;
    char *cause = parse(qs, false, &q);
    if (cause == NULL)
        fail_msg("%s: accepted", qs);
    assert_string_equal(cause, message);
    free(cause);
}

/* The SQL of the first window on `qs` (paged by the database, as for builds); the text
   parameters point into *q (free it after use), *params is the caller's to free. */
static char *sql_of(const char *qs, struct www_query *q, struct db_param **params, size_t *n)
{
    char *cause = parse(qs, false, q);
    if (cause != NULL)
        fail_msg("%s: %s", qs, cause);
    assert_true(www_query_sql_ok(q));
    struct buf sql = {0}, keys = {0};
    buf_addstr(&sql, "SELECT b.id FROM builds b WHERE 1=1");
    size_t cap = WWW_QUERY_MAX_PARAMS;
    *params = calloc(cap, sizeof **params);
    *n = 0;
    assert_int_equal(www_query_sql(q, &sql, *params, n, &cause), 0);
    struct www_window probe = {.mode = WWW_WIN_PROBE, .rows = 2001};
    assert_int_equal(www_query_sql_window(q, &probe, true, "b.id", DB_SQLITE, &sql, &keys, params,
                                          n, &cap, &cause),
                     0);
    assert_null(keys.data);
    return sql.data;
}

static void test_sql_filters_order_and_paging(void **state)
{
    (void)state;
    struct db_param *p;
    size_t n;
    struct www_query q;
    char *sql = sql_of("buildid__gt=3&order=-started_at&limit=10&offset=5&&"
                       "state_string__in=a&state_string__in=b&complete=True",
                       &q, &p, &n);
    /* ties of the query's order go by the tiebreak, so that a streamed answer reads the same */
    assert_string_equal(sql, "SELECT b.id FROM builds b WHERE 1=1 AND b.id > ?"
                             " AND b.state_string IN (?, ?) AND b.complete_at IS NOT NULL = ?"
                             " ORDER BY b.started_at DESC, b.id LIMIT ? OFFSET ?");
    assert_int_equal(n, 6);
    assert_int_equal(p[0].i, 3);
    assert_string_equal(p[1].s, "a");
    assert_string_equal(p[2].s, "b");
    assert_int_equal(p[3].i, 1);
    assert_int_equal(p[4].i, 10);
    assert_int_equal(p[5].i, 5);
    free(sql);
    free(p);
    www_query_free(&q);
    /* no order: the tiebreak; repeated eq becomes IN; a hostile value stays a parameter; a
       probe reads at most its rows */
    sql = sql_of("buildid=1&buildid=2&state_string__ne='; DROP TABLE builds; --&limit=5000", &q, &p,
                 &n);
    assert_string_equal(sql, "SELECT b.id FROM builds b WHERE 1=1 AND b.id IN (?, ?)"
                             " AND b.state_string != ? ORDER BY b.id LIMIT ? OFFSET ?");
    assert_string_equal(p[2].s, "'; DROP TABLE builds; --");
    assert_int_equal(p[3].i, 2001);
    free(sql);
    free(p);
    www_query_free(&q);
    sql = sql_of("state_string__contains=x&offset=2&order=-buildid", &q, &p, &n);
    assert_string_equal(sql, "SELECT b.id FROM builds b WHERE 1=1 AND (b.state_string LIKE '%' "
                             "|| ? || '%') ORDER BY b.id DESC LIMIT ? OFFSET ?");
    assert_int_equal(p[2].i, 2);
    free(sql);
    free(p);
    www_query_free(&q);
    /* an int past 64 bits: Buildbot's SQL refuses it */
    char *cause = parse("limit=99999999999999999999", false, &q);
    assert_null(cause);
    assert_true(q.limit_big);
    struct buf text = {0}, keys = {0};
    size_t cap = 4;
    p = calloc(cap, sizeof *p);
    n = 0;
    struct www_window probe = {.mode = WWW_WIN_PROBE, .rows = 10};
    assert_int_equal(www_query_sql_window(&q, &probe, true, "b.id", DB_SQLITE, &text, &keys, &p, &n,
                                          &cap, &cause),
                     -1);
    assert_string_equal(cause, WWW_OVERFLOW_TEXT);
    free(cause);
    free(p);
    www_query_free(&q);
}

/* One batch of a streamed answer after the key of the previous one. */
static char *batch_sql(const char *qs, bool python, enum db_kind kind, struct db_res *last,
                       struct www_query *q, struct db_param **p, size_t *n, char **keys)
{
    assert_null(parse(qs, false, q));
    struct www_window win = {.mode = WWW_WIN_BATCH, .rows = 200, .python_order = python};
    www_window_set_key(&win, q, "b.id", last, 0, 0);
    struct buf sql = {0}, cols = {0};
    size_t cap = 1;
    *p = calloc(cap, sizeof **p);
    *n = 0;
    char *cause = NULL;
    assert_int_equal(
        www_query_sql_window(q, &win, !python, "b.id", kind, &sql, &cols, p, n, &cap, &cause), 0);
    for (size_t i = 0; i < *n; i++) /* the key's text is the window's: keep copies */
        if ((*p)[i].type == DB_P_TEXT)
            (*p)[i].s = strdup((*p)[i].s);
    www_window_clear_key(&win);
    *keys = cols.data;
    return sql.data;
}

static void free_params(struct db_param *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].type == DB_P_TEXT)
            free((char *)p[i].s);
    free(p);
}

static void test_stream_batches_follow_the_key(void **state)
{
    (void)state;
    char *cause = NULL;
    struct db *db = db_open("sqlite://", "/", false, &cause);
    assert_non_null(db);
    /* the last row read: state_string "b", started_at NULL, buildid 7 */
    struct db_res *last = db_query(db, "SELECT 'b', NULL, 7", NULL, 0, &cause);
    assert_non_null(last);
    struct www_query q;
    struct db_param *p;
    size_t n;
    char *keys;
    /* SQLite's own order (NULL first ascending): after ("b", NULL, 7) */
    char *sql =
        batch_sql("order=state_string&order=started_at", false, DB_SQLITE, last, &q, &p, &n, &keys);
    assert_string_equal(sql, " AND ((b.state_string > ?) OR (b.state_string = ? AND "
                             "b.started_at IS NOT NULL) OR (b.state_string = ? AND "
                             "b.started_at IS NULL AND b.id > ?)) ORDER BY b.state_string, "
                             "b.started_at, b.id LIMIT ? OFFSET ?");
    assert_string_equal(keys, ", b.state_string, b.started_at, b.id");
    assert_int_equal(n, 6);
    assert_string_equal(p[0].s, "b");
    assert_int_equal(p[3].i, 7);
    assert_int_equal(p[4].i, 200);
    free(sql);
    free(keys);
    free_params(p, n);
    www_query_free(&q);
    /* PostgreSQL sorting as Python does: NULL first ascending and last descending, strings by
       code point; nothing comes after a NULL that sorts last */
    sql = batch_sql("order=-state_string&order=-started_at", true, DB_PG, last, &q, &p, &n, &keys);
    assert_string_equal(sql,
                        " AND (((b.state_string COLLATE \"C\" < ? OR b.state_string COLLATE \"C\" "
                        "IS NULL)) OR (b.state_string COLLATE \"C\" = ? AND 1 = 0) OR "
                        "(b.state_string COLLATE \"C\" = ? AND b.started_at IS NULL AND "
                        "b.id > ?)) ORDER BY b.state_string COLLATE \"C\" DESC NULLS LAST, "
                        "b.started_at DESC NULLS LAST, b.id NULLS FIRST LIMIT ? OFFSET ?");
    free(sql);
    free(keys);
    free_params(p, n);
    www_query_free(&q);
    db_res_free(last);
    db_close(db);
}

static void test_python_slices_of_any_int(void **state)
{
    (void)state;
    struct www_query q;
    long long start, end;
    /* past 64 bits: saturated, flagged, and a slice still reads as Python's */
    assert_null(parse("offset=-99999999999999999999", false, &q));
    assert_true(q.offset_big);
    assert_int_equal(q.offset, -LLONG_MAX);
    www_query_slice(&q, 4, &start, &end);
    assert_int_equal(start, 0);
    assert_int_equal(end, 4);
    assert_true(www_query_slice_needs_n(&q));
    www_query_free(&q);
    /* offset + limit past LLONG_MAX: no overflow, an empty slice */
    assert_null(parse("offset=9223372036854775807&limit=9223372036854775807", false, &q));
    assert_false(q.offset_big || q.limit_big);
    www_query_slice(&q, 4, &start, &end);
    assert_int_equal(start, 4);
    assert_int_equal(end, 4);
    assert_false(www_query_slice_needs_n(&q));
    www_query_free(&q);
    assert_null(parse("offset=1&limit=-2", false, &q));
    assert_true(www_query_slice_needs_n(&q));
    www_query_slice(&q, 4, &start, &end);
    assert_int_equal(start, 1);
    assert_int_equal(end, 3); /* [1:-1] */
    www_query_free(&q);
    bool big = false;
    assert_int_equal(www_query_add(LLONG_MIN + 1, -5, &big), LLONG_MIN);
    assert_true(big);
}

static void test_buildbot_messages(void **state)
{
    (void)state;
    expect_error("order=nope", "no such field 'nope'");
    expect_error("field=buildid&field=nope", "no such field 'nope'");
    expect_error("foo=1", "unrecognized query parameter 'foo'");
    expect_error("buildid=abc", "invalid filter value for buildid");
    expect_error("buildid__lt=1.5", "invalid filter value for buildid__lt");
    expect_error("complete=maybe", "invalid filter value for complete");
    expect_error("properties=x", "invalid filter value for properties");
    expect_error("limit=ten", "invalid limit");
    expect_error("offset=", "invalid offset");
    expect_error("field=buildid&order=started_at", "cannot order on un-selected fields");
    expect_error("field=buildid&state_string=x", "cannot filter on un-selected fields");
    struct www_query q;
    char *cause = parse("buildid=1", true, &q);
    assert_string_equal(cause, "this is not a collection");
    free(cause);
}

static void test_tolerated_input(void **state)
{
    (void)state;
    struct www_query q;
    /* empty parameters from "&&", unknown operators and fields after "__" are ignored,
       ints as Python's int() reads them, booleans in any case */
    assert_null(parse("&&limit= 1_0 &&nope__eq=1&buildid__like=2&complete=TRUE&&", false, &q));
    assert_true(q.has_limit);
    assert_int_equal(q.limit, 10);
    assert_int_equal(q.n_filters, 1);
    assert_true(json_is_true(json_array_get(q.filters[0].values, 0)));
    www_query_free(&q);
    /* lt/le/gt/ge with several values are ignored, as Buildbot does */
    assert_null(parse("buildid__lt=1&buildid__lt=2", false, &q));
    assert_int_equal(q.n_filters, 0);
    www_query_free(&q);
    /* a bounded number of distinct parameters */
    char qs[2048] = "";
    for (int i = 0; i <= WWW_QUERY_MAX_ITEMS; i++)
        snprintf(qs + strlen(qs), sizeof qs - strlen(qs), "x%d__eq=1&", i);
    char *cause = parse(qs, false, &q);
    assert_non_null(strstr(cause, "too many query parameters"));
    free(cause);
}

static void test_in_memory_like_python(void **state)
{
    (void)state;
    json_t *list = json_loads("[{\"buildid\": 1, \"started_at\": 30, \"tags\": [\"a\", \"b\"]},"
                              " {\"buildid\": 2, \"started_at\": null, \"tags\": [\"b\"]},"
                              " {\"buildid\": 3, \"started_at\": 10, \"tags\": []},"
                              " {\"buildid\": 4, \"started_at\": 20, \"tags\": [\"b\", \"c\"]}]",
                              0, NULL);
    struct www_query q;
    assert_null(parse("tags__contains=b&order=started_at&offset=1&limit=5", false, &q));
    assert_false(www_query_sql_ok(&q));
    assert_int_equal(www_query_apply(&q, list, true), 3);
    /* None sorts first: 2 (null), 4 (20), 1 (30); offset 1 drops build 2 */
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "buildid")), 4);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "buildid")), 1);
    www_query_free(&q);
    assert_null(parse("field=buildid", false, &q));
    www_query_select(&q, json_array_get(list, 0));
    char *text = www_json_dump(json_array_get(list, 0), WWW_JSON_COMPACT, NULL);
    assert_string_equal(text, "{\"buildid\":4}");
    free(text);
    www_query_free(&q);
    json_decref(list);
    /* strings by code point, whatever strcmp's magnitude ("a8" - "a6" is 2) */
    list = json_loads("[{\"state_string\": \"a6\"}, {\"state_string\": \"a8\"},"
                      " {\"state_string\": \"a7\"}]",
                      0, NULL);
    assert_null(parse("order=-state_string", false, &q));
    www_query_apply(&q, list, true);
    text = www_json_dump(list, WWW_JSON_COMPACT, NULL);
    assert_string_equal(text, "[{\"state_string\":\"a8\"},{\"state_string\":\"a7\"},"
                              "{\"state_string\":\"a6\"}]");
    free(text);
    www_query_free(&q);
    json_decref(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_filters_order_and_paging),
        cmocka_unit_test(test_stream_batches_follow_the_key),
        cmocka_unit_test(test_python_slices_of_any_int),
        cmocka_unit_test(test_buildbot_messages),
        cmocka_unit_test(test_tolerated_input),
        cmocka_unit_test(test_in_memory_like_python),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
