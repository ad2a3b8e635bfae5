/*
 * What every /api/v2 endpoint shares: turning a resource type's field table
 * into one SELECT (the path's conditions plus the query's filters, order and
 * paging when the database can do them), rows into JSON objects by field
 * type, and the lookups that nested paths need (a builder by name, a build
 * by builder and number, a step by name or number, a log by slug).
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

static json_t *cell(const struct db_res *r, size_t row, size_t col, enum www_ftype type)
{
    if (db_res_null(r, row, col))
        return json_null();
    switch (type) {
    case WWW_F_INT:
    case WWW_F_EPOCH:
        return json_integer(db_res_int(r, row, col));
    case WWW_F_BOOL:
        return json_boolean(db_res_int(r, row, col) != 0);
    case WWW_F_STR:
        return json_string(db_res_text(r, row, col));
    default: {
        json_t *v = json_loads(db_res_text(r, row, col), JSON_DECODE_ANY, NULL);
        return v != NULL ? v : json_null();
    }
    }
}

static void select_list(const struct www_rtype *t, struct buf *sql)
{
    buf_addstr(sql, "SELECT ");
    bool first = true;
    for (size_t i = 0; i < t->n_fields; i++) {
        if (t->fields[i].sql == NULL)
            continue;
        buf_printf(sql, "%s%s", first ? "" : ", ", t->fields[i].sql);
        first = false;
    }
}

/* The number of columns select_list selects (the sort key of a window follows them). */
static size_t sql_fields(const struct www_rtype *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_fields; i++)
        n += t->fields[i].sql != NULL;
    return n;
}

static void rows_to_json(const struct www_rtype *t, const struct db_res *r, json_t *out)
{
    for (size_t row = 0; row < db_res_rows(r); row++) {
        json_t *o = json_object();
        size_t col = 0;
        for (size_t i = 0; i < t->n_fields; i++) {
            if (t->fields[i].sql == NULL)
                continue;
            json_object_set_new(o, t->fields[i].name, cell(r, row, col++, t->fields[i].type));
        }
        json_array_append_new(out, o);
    }
}

/* The window's order and paging (lookups: every row, in order). */
static int add_window(struct www_req *req, const struct api_source *src, struct www_window *win,
                      bool page, struct buf *sql, struct buf *keys, struct db_param **params,
                      size_t *np, size_t *cap, char **cause)
{
    if (win != NULL)
        return www_query_sql_window(&req->q, win, page, src->tiebreak, db_kind(req->db), sql, keys,
                                    params, np, cap, cause);
    buf_printf(sql, " ORDER BY %s", src->tiebreak);
    return 0;
}

/* Rows of " FROM ... WHERE ..." (`from`, with `n` values), counted up to `max` + 1. */
static long long count_upto(struct www_req *req, const char *from, const struct db_param *p,
                            size_t n, long long max, char **cause)
{
    struct db_param *params = xcalloc(n + 1, sizeof *params);
    memcpy(params, p, n * sizeof *p);
    params[n] = DB_INT(max + 1);
    char *sql = xasprintf("SELECT COUNT(*) FROM (SELECT 1%s LIMIT ?) t", from);
    struct db_res *r = db_query(req->db, sql, params, n + 1, cause);
    free(sql);
    free(params);
    long long rows = r != NULL && db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : -1;
    db_res_free(r);
    return rows;
}

/*
 * Before a PROBE whose answer may be streamed (listing.c): when no index gives the
 * batches' order, the database would sort all the rows for each batch: win->sorts, and
 * win->too_many_to_sort when more than sort_max rows are to be read (the query's limit, or
 * the rows of its conditions), in which case the probe is not run: a refusal costs a plan
 * and a bounded count, not a sort.  Only a query with an order of its own, and a limit past
 * a page (or none), can stream in such an order.  `from`: " FROM ... WHERE ...", with `n`
 * values in `p`.
 */
static int check_sort(struct www_req *req, const struct api_source *src, bool page,
                      const char *from, const struct db_param *p, size_t n, char **cause)
{
    const struct www_query *q = &req->q;
    if (q->n_orders == 0 || (page && q->has_limit && q->limit >= 0 && q->limit < req->win.rows))
        return 0;
    for (size_t i = 0; i < q->n_orders; i++)
        if (q->orders[i].field->sql == NULL)
            return 0; /* ordered in memory, if at all (listing.c) */
    struct www_window batch = {.mode = WWW_WIN_BATCH, .rows = 1, .python_order = !page};
    size_t np = n, cap = n + 2;
    struct db_param *params = xcalloc(cap, sizeof *params);
    memcpy(params, p, n * sizeof *p);
    struct buf sql, keys;
    buf_init(&sql, 0);
    buf_init(&keys, 0);
    buf_printf(&sql, "SELECT 1%s", from);
    int rc = www_query_sql_window(&req->q, &batch, page, src->tiebreak, db_kind(req->db), &sql,
                                  &keys, &params, &np, &cap, cause);
    if (rc == 0)
        rc = db_sorts(req->db, sql.data, params, np, cause);
    buf_free(&sql);
    buf_free(&keys);
    free(params);
    if (rc <= 0)
        return rc;
    long long max = req->www->sort_max;
    req->win.sorts = true;
    if (page && q->has_limit && q->limit >= 0 && q->limit <= max)
        return 0;
    long long rows = count_upto(req, from, p, n, max, cause);
    req->win.too_many_to_sort = rows > max;
    return rows < 0 ? -1 : 0;
}

int api_rows(struct www_req *req, const struct api_source *src, const char *where,
             const struct db_param *p, size_t n, json_t *out, bool *paged, char **cause)
{
    const struct www_rtype *t = src->type;
    /* The collection's own query reads the request's window; lookups read everything. */
    struct www_window *win = paged != NULL && req->win.mode != WWW_WIN_ALL ? &req->win : NULL;
    struct buf sql, keys, tail;
    buf_init(&sql, 0);
    buf_init(&keys, 0);
    buf_init(&tail, 0);
    select_list(t, &sql);
    buf_printf(&tail, " FROM %s WHERE %s", src->from, where != NULL ? where : "1 = 1");
    size_t cap = n + WWW_QUERY_MAX_PARAMS, np = n;
    struct db_param *params = xcalloc(cap, sizeof *params);
    if (n > 0)
        memcpy(params, p, n * sizeof *p);
    bool filter = paged != NULL && src->db_paged;
    bool page = filter && www_query_sql_ok(&req->q);
    int rc = -1;
    if (filter && www_query_sql(&req->q, &tail, params, &np, cause) < 0)
        goto out;
    if (win != NULL && win->mode == WWW_WIN_PROBE && win->may_stream) {
        if (check_sort(req, src, page, tail.data, params, np, cause) < 0)
            goto out;
        if (win->too_many_to_sort) { /* refused (listing.c): nothing is read */
            rc = 0;
            goto out;
        }
    }
    if (add_window(req, src, win, page, &tail, &keys, &params, &np, &cap, cause) < 0)
        goto out;
    buf_add(&sql, keys.data, keys.len);
    buf_add(&sql, tail.data, tail.len);
    struct db_res *r = db_query(req->db, sql.data, params, np, cause);
    if (r == NULL)
        goto out;
    rows_to_json(t, r, out);
    if (win != NULL)
        win->got = (long long)db_res_rows(r);
    if (win != NULL && win->mode == WWW_WIN_BATCH && db_res_rows(r) > 0)
        www_window_set_key(win, &req->q, src->tiebreak, r, db_res_rows(r) - 1, sql_fields(t));
    db_res_free(r);
    if (paged != NULL)
        *paged = page;
    rc = 0;
out:
    free(params);
    buf_free(&tail);
    buf_free(&keys);
    buf_free(&sql);
    return rc;
}

int api_rows_by_id(struct www_req *req, const struct api_source *src, const char *where,
                   long long id, json_t *out, bool *paged, char **cause)
{
    if (id < 0)
        return id == -2 ? -1 : 0;
    struct db_param p = DB_INT(id);
    return api_rows(req, src, where, &p, 1, out, paged, cause);
}

size_t api_first_row(const struct db_res *r, long long id)
{
    return db_res_lower_bound(r, id);
}

struct db_res *api_select(struct www_req *req, const char *sql, const struct db_param *p, size_t n,
                          char **cause)
{
    return db_query(req->db, sql, p, n, cause);
}

/* Looks up one integer: the first column of the first row, or -1 when there is none. */
long long api_lookup(struct www_req *req, const char *sql, const struct db_param *p, size_t n,
                     char **cause)
{
    struct db_res *r = db_query(req->db, sql, p, n, cause);
    if (r == NULL)
        return -2;
    long long v = db_res_rows(r) > 0 && !db_res_null(r, 0, 0) ? db_res_int(r, 0, 0) : -1;
    db_res_free(r);
    return v;
}

long long api_builderid(struct www_req *req, char **cause)
{
    long long id;
    if (www_arg_num(&req->args, "builderid", &id))
        return id;
    const char *name = www_arg_str(&req->args, "buildername");
    if (name == NULL)
        return -1;
    char hash[41];
    db_hash(&name, 1, hash);
    struct db_param p = DB_TEXT(hash);
    return api_lookup(req, "SELECT id FROM builders WHERE name_hash = ?", &p, 1, cause);
}

long long api_buildid(struct www_req *req, char **cause)
{
    long long id, number;
    if (www_arg_num(&req->args, "buildid", &id))
        return id;
    if (!www_arg_num(&req->args, "build_number", &number))
        return -1;
    long long builderid = api_builderid(req, cause);
    if (builderid < 0)
        return builderid;
    struct db_param p[] = {DB_INT(builderid), DB_INT(number)};
    return api_lookup(req, "SELECT id FROM builds WHERE builderid = ? AND number = ?", p, 2, cause);
}

long long api_stepid(struct www_req *req, char **cause)
{
    long long id, number;
    if (www_arg_num(&req->args, "stepid", &id))
        return id;
    long long buildid = api_buildid(req, cause);
    if (buildid < 0)
        return buildid;
    const char *name = www_arg_str(&req->args, "step_name");
    if (name != NULL) {
        struct db_param p[] = {DB_INT(buildid), DB_TEXT(name)};
        return api_lookup(req, "SELECT id FROM steps WHERE buildid = ? AND name = ?", p, 2, cause);
    }
    if (!www_arg_num(&req->args, "step_number", &number))
        return -1;
    struct db_param p[] = {DB_INT(buildid), DB_INT(number)};
    return api_lookup(req, "SELECT id FROM steps WHERE buildid = ? AND number = ?", p, 2, cause);
}

long long api_logid(struct www_req *req, char **cause)
{
    long long id;
    if (www_arg_num(&req->args, "logid", &id))
        return id;
    long long stepid = api_stepid(req, cause);
    const char *slug = www_arg_str(&req->args, "log_slug");
    if (stepid < 0 || slug == NULL)
        return stepid < 0 ? stepid : -1;
    struct db_param p[] = {DB_INT(stepid), DB_TEXT(slug)};
    return api_lookup(req, "SELECT id FROM logs WHERE stepid = ? AND slug = ?", p, 2, cause);
}

/* Properties: {"name": [value, source]}. */

/* Is property `name` among `names` (NULL: all; "*" matches any)? */
static bool wanted(const char *name, char *const *names, size_t n)
{
    if (names == NULL)
        return true;
    for (size_t k = 0; k < n; k++)
        if (strcmp(names[k], "*") == 0 || strcmp(names[k], name) == 0)
            return true;
    return false;
}

static void add_property(json_t *props, const struct db_res *r, size_t row, char *const *names,
                         size_t n)
{
    const char *name = db_res_text(r, row, 1);
    if (!wanted(name, names, n))
        return;
    json_t *v = json_loads(db_res_text(r, row, 2), JSON_DECODE_ANY, NULL);
    json_object_set_new(props, name,
                        json_pack("[os]", v != NULL ? v : json_null(), db_res_text(r, row, 3)));
}

/* Rows (buildid, name, value, source) of the builds whose ids are in `ids`, by buildid. */
static struct db_res *property_rows(struct www_req *req, const long long *ids, size_t n,
                                    char **cause)
{
    struct buf sql;
    buf_init(&sql, 0);
    buf_addstr(&sql,
               "SELECT buildid, name, value, source FROM build_properties WHERE buildid IN (");
    struct db_param p[API_PROPS_IDS];
    for (size_t i = 0; i < n; i++) {
        buf_addstr(&sql, i > 0 ? ", ?" : "?");
        p[i] = DB_INT(ids[i]);
    }
    buf_addstr(&sql, ") ORDER BY buildid");
    struct db_res *r = db_query(req->db, sql.data, p, n, cause);
    buf_free(&sql);
    return r;
}

json_t *api_build_properties(struct www_req *req, long long buildid, char *const *names, size_t n,
                             char **cause)
{
    struct db_res *r = property_rows(req, &buildid, 1, cause);
    if (r == NULL)
        return NULL;
    json_t *props = json_object();
    for (size_t i = 0; i < db_res_rows(r); i++)
        add_property(props, r, i, names, n);
    db_res_free(r);
    return props;
}

int api_builds_properties(struct www_req *req, json_t *builds, size_t from, size_t n,
                          char *const *names, size_t n_names, char **cause)
{
    long long ids[API_PROPS_IDS] = {0};
    for (size_t i = 0; i < n; i++)
        ids[i] = api_obj_int(json_array_get(builds, from + i), "buildid");
    struct db_res *r = property_rows(req, ids, n, cause);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *props = json_object();
        for (size_t row = api_first_row(r, ids[i]);
             row < db_res_rows(r) && db_res_int(r, row, 0) == ids[i]; row++)
            add_property(props, r, row, names, n_names);
        json_object_set_new(json_array_get(builds, from + i), "properties", props);
    }
    db_res_free(r);
    return 0;
}

json_t *api_pair_properties(struct www_req *req, const char *sql, long long id, char *const *names,
                            size_t n, char **cause)
{
    struct db_param p = DB_INT(id);
    struct db_res *r = db_query(req->db, sql, &p, 1, cause);
    if (r == NULL)
        return NULL;
    json_t *props = json_object();
    for (size_t i = 0; i < db_res_rows(r); i++) {
        const char *name = db_res_text(r, i, 0);
        json_t *v = json_loads(db_res_text(r, i, 1), JSON_DECODE_ANY, NULL);
        if (wanted(name, names, n) && v != NULL)
            json_object_set(props, name, v);
        json_decref(v);
    }
    db_res_free(r);
    return props;
}

/* A list of integers from a one-column query with one integer parameter. */
json_t *api_int_list(struct www_req *req, const char *sql, long long id, char **cause)
{
    struct db_param p = DB_INT(id);
    struct db_res *r = db_query(req->db, sql, &p, 1, cause);
    if (r == NULL)
        return NULL;
    json_t *list = json_array();
    for (size_t i = 0; i < db_res_rows(r); i++)
        json_array_append_new(list, json_integer(db_res_int(r, i, 0)));
    db_res_free(r);
    return list;
}

bool api_id_range(json_t *list, const char *key, struct db_param range[2])
{
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        long long id = api_obj_int(o, key);
        if (i == 0 || id < range[0].i)
            range[0] = DB_INT(id);
        if (i == 0 || id > range[1].i)
            range[1] = DB_INT(id);
    }
    return json_array_size(list) > 0;
}

long long api_obj_int(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}
