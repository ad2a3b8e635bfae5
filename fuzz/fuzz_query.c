/*
 * libFuzzer target for the /api/v2 query string: the parameters (split on
 * '&' and '=' as the server hands them over) go through the parser, the SQL
 * builder (filters and a first window), the in-memory filter, sort, page and
 * field selection, and Python's slice of a streamed answer.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static const struct www_field fields[] = {
    {"buildid", WWW_F_INT, "b.id"},     {"complete", WWW_F_BOOL, "b.complete"},
    {"state_string", WWW_F_STR, NULL},  {"started_at", WWW_F_EPOCH, "b.started_at"},
    {"tags", WWW_F_STRS, NULL},         {"workerids", WWW_F_INTS, NULL},
    {"properties", WWW_F_OBJECT, NULL},
};
static const struct www_rtype builds = {"builds", fields, UTIL_NELEM(fields)};

static const char rows[] =
    "[{\"buildid\": 1, \"complete\": true, \"state_string\": \"ok\", \"started_at\": 5,"
    "  \"tags\": [\"a\"], \"workerids\": [1, 2], \"properties\": {}},"
    " {\"buildid\": 2, \"complete\": false, \"state_string\": null, \"started_at\": null,"
    "  \"tags\": [], \"workerids\": [], \"properties\": null},"
    " {\"buildid\": 3, \"complete\": true, \"state_string\": \"\\u00e9\", \"started_at\": 1,"
    "  \"tags\": [\"b\", \"a\"], \"workerids\": [3], \"properties\": {\"x\": [1, \"s\"]}}]";

static void run(const struct www_kv *kv, size_t n, bool single)
{
    struct www_query q;
    char *cause = NULL;
    if (www_query_parse(kv, n, &builds, single, &q, &cause) != 0) {
        if (cause == NULL)
            abort(); /* every refusal has a message */
        free(cause);
        return;
    }
    if (www_query_sql_ok(&q)) {
        struct buf sql, keys;
        buf_init(&sql, 0);
        buf_init(&keys, 0);
        size_t cap = WWW_QUERY_MAX_PARAMS, np = 0;
        struct db_param *params = calloc(cap, sizeof *params);
        struct www_window probe = {.mode = WWW_WIN_PROBE, .rows = 2001};
        if (www_query_sql(&q, &sql, params, &np, &cause) != 0 ||
            www_query_sql_window(&q, &probe, true, "b.id", DB_PG, &sql, &keys, &params, &np, &cap,
                                 &cause) != 0)
            free(cause);
        free(params);
        buf_free(&keys);
        buf_free(&sql);
    }
    long long start, end;
    www_query_slice(&q, www_query_slice_needs_n(&q) ? 3 : LLONG_MAX, &start, &end);
    json_t *list = json_loads(rows, 0, NULL);
    www_query_apply(&q, list, true);
    for (size_t i = 0; i < json_array_size(list); i++)
        www_query_select(&q, json_array_get(list, i));
    json_decref(list);
    www_query_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct www_kv kv[128];
    size_t n = 0;
    for (char *save = NULL, *p = strtok_r(text, "&", &save); p != NULL && n < 128;
         p = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(p, '=');
        if (eq != NULL)
            *eq++ = '\0';
        kv[n++] = (struct www_kv){p, eq != NULL ? eq : ""};
    }
    run(kv, n, data[0] & 1);
    free(text);
    return 0;
}
