/*
 * The /api/v2 query language: field=, order=, limit=, offset=, property=
 * and field__op=value filters, parsed with Buildbot's rules and messages
 * (API.md §4), turned into SQL over whitelisted columns when the database
 * can do the work, and otherwise applied to the answer in memory with
 * Python's semantics (None sorts first, slices like a Python list).
 */
#include "www/internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const op_names[] = {"eq", "ne",       "lt", "le",   "gt",
                                       "ge", "contains", "in", "notin"};

const struct www_field *www_rtype_field(const struct www_rtype *t, const char *name)
{
    for (size_t i = 0; i < t->n_fields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

/* Python's int(): *big when the value does not fit in 64 bits (then saturated). */
static bool parse_py_int(const char *s, long long *out, bool *big)
{
    while (isspace((unsigned char)*s))
        s++;
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!isdigit((unsigned char)*s))
        return false;
    long long v = 0;
    bool prev_digit = false;
    *big = false;
    for (; *s != '\0' && !isspace((unsigned char)*s); s++) {
        if (*s == '_' && prev_digit && isdigit((unsigned char)s[1])) {
            prev_digit = false;
            continue;
        }
        if (!isdigit((unsigned char)*s))
            return false;
        if (v > (LLONG_MAX - (*s - '0')) / 10)
            *big = true;
        v = *big ? LLONG_MAX : v * 10 + (*s - '0');
        prev_digit = true;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '\0')
        return false;
    *out = neg ? -v : v;
    return true;
}

bool www_parse_int(const char *s, long long *out)
{
    bool big;
    long long v;
    if (!parse_py_int(s, &v, &big) || big)
        return false;
    *out = v;
    return true;
}

long long www_query_add(long long a, long long b, bool *big)
{
    long long sum;
    if (!__builtin_add_overflow(a, b, &sum))
        return sum;
    *big = true;
    return a > 0 ? LLONG_MAX : LLONG_MIN;
}

/* Buildbot's string2boolean. */
static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

static json_t *convert(const struct www_field *f, const char *s)
{
    long long i;
    bool b;
    switch (f->type) {
    case WWW_F_INT:
    case WWW_F_EPOCH:
    case WWW_F_INTS:
        return www_parse_int(s, &i) ? json_integer(i) : NULL;
    case WWW_F_BOOL:
        return parse_bool(s, &b) == 0 ? json_boolean(b) : NULL;
    case WWW_F_STR:
    case WWW_F_STRS:
        return json_string(s); /* NULL if not UTF-8 */
    case WWW_F_OBJECT:
        return NULL;
    }
    return NULL;
}

static int find_op(const char *s)
{
    for (size_t i = 0; i < UTIL_NELEM(op_names); i++)
        if (strcmp(op_names[i], s) == 0)
            return (int)i;
    return -1;
}

/* Collects the values of every parameter named `key`, in order. */
static size_t values_of(const struct www_kv *kv, size_t n, const char *key, const char **out,
                        size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        if (strcmp(kv[i].key, key) == 0)
            out[k++] = kv[i].value;
    return k;
}

static bool seen_before(const struct www_kv *kv, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(kv[j].key, kv[i].key) == 0)
            return true;
    return false;
}

static int add_filter(struct www_query *q, const struct www_field *f, enum www_op op,
                      const char **vals, size_t nv, const char *arg, char **cause)
{
    json_t *values = json_array();
    for (size_t i = 0; i < nv; i++) {
        json_t *v = convert(f, vals[i]);
        if (v == NULL) {
            json_decref(values);
            return util_cause(cause, "invalid filter value for %s", arg);
        }
        json_array_append_new(values, v);
    }
    q->filters = xrealloc(q->filters, (q->n_filters + 1) * sizeof *q->filters);
    q->filters[q->n_filters++] = (struct www_filter){.field = f, .op = op, .values = values};
    return 0;
}

static int check_field(const struct www_rtype *t, const char *name, char **cause)
{
    if (www_rtype_field(t, name) == NULL)
        return util_cause(cause, "no such field '%s'", name);
    return 0;
}

static int parse_number(const char *s, long long *out, bool *big, const char *what, char **cause)
{
    if (!parse_py_int(s, out, big))
        return util_cause(cause, "invalid %s", what);
    return 0;
}

static int parse_order(struct www_query *q, const struct www_rtype *t, const char **vals, size_t nv,
                       char **cause)
{
    q->orders = xcalloc(nv, sizeof *q->orders);
    for (size_t i = 0; i < nv; i++) {
        bool desc = vals[i][0] == '-';
        const char *name = vals[i] + (desc ? 1 : 0);
        if (check_field(t, name, cause) < 0)
            return -1;
        q->orders[q->n_orders++] = (struct www_order){www_rtype_field(t, name), desc};
    }
    return 0;
}

static char **copy_strings(const char **vals, size_t nv)
{
    char **v = xcalloc(nv + 1, sizeof *v);
    for (size_t i = 0; i < nv; i++)
        v[i] = xstrdup(vals[i]);
    return v;
}

static int parse_filter(struct www_query *q, const struct www_rtype *t, const char *key,
                        const char **vals, size_t nv, char **cause)
{
    const struct www_field *f = www_rtype_field(t, key);
    if (f != NULL)
        return add_filter(q, f, WWW_EQ, vals, nv, key, cause);
    const char *sep = NULL;
    for (const char *p = strstr(key, "__"); p != NULL; p = strstr(p + 1, "__"))
        sep = p;
    if (sep == NULL)
        return util_cause(cause, "unrecognized query parameter '%s'", key);
    char *name = xstrndup(key, (size_t)(sep - key));
    f = www_rtype_field(t, name);
    free(name);
    int op = find_op(sep + 2);
    bool plural_ok =
        op == WWW_EQ || op == WWW_NE || op == WWW_CONTAINS || op == WWW_IN || op == WWW_NOTIN;
    /* Unknown operators, fields and plural lt/le/gt/ge are ignored, as Buildbot does. */
    if (f == NULL || op < 0 || (nv > 1 && !plural_ok))
        return 0;
    return add_filter(q, f, (enum www_op)op, vals, nv, key, cause);
}

static int parse_one(struct www_query *q, const struct www_rtype *t, const struct www_kv *kv,
                     size_t n, size_t i, char **cause)
{
    const char *vals[WWW_QUERY_MAX_ITEMS];
    const char *key = kv[i].key;
    size_t nv = values_of(kv, n, key, vals, WWW_QUERY_MAX_ITEMS);
    if (strcmp(key, "order") == 0)
        return parse_order(q, t, vals, nv, cause);
    if (strcmp(key, "field") == 0) {
        for (size_t k = 0; k < nv; k++)
            if (check_field(t, vals[k], cause) < 0)
                return -1;
        q->fields = copy_strings(vals, nv);
        q->n_fields = nv;
        return 0;
    }
    if (strcmp(key, "limit") == 0) {
        q->has_limit = true;
        return parse_number(vals[0], &q->limit, &q->limit_big, "limit", cause);
    }
    if (strcmp(key, "offset") == 0) {
        q->has_offset = true;
        return parse_number(vals[0], &q->offset, &q->offset_big, "offset", cause);
    }
    if (strcmp(key, "property") == 0) {
        q->props = copy_strings(vals, nv);
        q->n_props = nv;
        return 0;
    }
    return parse_filter(q, t, key, vals, nv, cause);
}

static int check_selected(const struct www_query *q, char **cause)
{
    if (q->fields == NULL || q->n_fields == 0)
        return 0;
    for (size_t i = 0; i < q->n_orders; i++)
        if (!www_query_wants(q, q->orders[i].field->name))
            return util_cause(cause, "cannot order on un-selected fields");
    for (size_t i = 0; i < q->n_filters; i++)
        if (!www_query_wants(q, q->filters[i].field->name))
            return util_cause(cause, "cannot filter on un-selected fields");
    return 0;
}

int www_query_parse(const struct www_kv *kv, size_t n, const struct www_rtype *t, bool single,
                    struct www_query *q, char **cause)
{
    memset(q, 0, sizeof *q);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (kv[i].key[0] == '\0' || seen_before(kv, i))
            continue;
        if (++distinct > WWW_QUERY_MAX_ITEMS)
            goto fail_many;
        if (parse_one(q, t, kv, n, i, cause) < 0)
            goto fail;
    }
    if (check_selected(q, cause) < 0)
        goto fail;
    if (single && q->n_filters > 0) {
        util_cause(cause, "this is not a collection");
        goto fail;
    }
    return 0;
fail_many:
    util_cause(cause, "too many query parameters (at most %d)", WWW_QUERY_MAX_ITEMS);
fail:
    www_query_free(q);
    return -1;
}

void www_query_free(struct www_query *q)
{
    for (size_t i = 0; q->fields != NULL && i < q->n_fields; i++)
        free(q->fields[i]);
    free(q->fields);
    for (size_t i = 0; i < q->n_filters; i++)
        json_decref(q->filters[i].values);
    free(q->filters);
    free(q->orders);
    for (size_t i = 0; q->props != NULL && i < q->n_props; i++)
        free(q->props[i]);
    free(q->props);
    memset(q, 0, sizeof *q);
}

bool www_query_wants(const struct www_query *q, const char *name)
{
    if (q->fields == NULL || q->n_fields == 0)
        return true;
    for (size_t i = 0; i < q->n_fields; i++)
        if (strcmp(q->fields[i], name) == 0)
            return true;
    return false;
}

json_t *www_query_take_eq(struct www_query *q, const char *name)
{
    for (size_t i = 0; i < q->n_filters; i++) {
        struct www_filter *f = &q->filters[i];
        if (f->op != WWW_EQ || strcmp(f->field->name, name) != 0)
            continue;
        f->taken = true;
        return json_incref(json_array_get(f->values, 0));
    }
    return NULL;
}

bool www_query_sql_ok(const struct www_query *q)
{
    for (size_t i = 0; i < q->n_filters; i++)
        if (q->filters[i].field->sql == NULL && !q->filters[i].taken)
            return false;
    for (size_t i = 0; i < q->n_orders; i++)
        if (q->orders[i].field->sql == NULL)
            return false;
    return true;
}

static struct db_param to_param(json_t *v)
{
    if (json_is_integer(v))
        return DB_INT(json_integer_value(v));
    if (json_is_boolean(v))
        return DB_INT(json_is_true(v) ? 1 : 0);
    return DB_TEXT(json_string_value(v));
}

static void sql_list(struct buf *sql, const struct www_filter *f, const char *op,
                     struct db_param *params, size_t *n)
{
    buf_printf(sql, " AND %s %s (", f->field->sql, op);
    for (size_t i = 0; i < json_array_size(f->values); i++) {
        buf_addstr(sql, i > 0 ? ", ?" : "?");
        params[(*n)++] = to_param(json_array_get(f->values, i));
    }
    buf_addc(sql, ')');
}

static void sql_filter(struct buf *sql, const struct www_filter *f, struct db_param *params,
                       size_t *n)
{
    static const char *const cmp[] = {"=", "!=", "<", "<=", ">", ">="};
    size_t nv = json_array_size(f->values);
    if (f->op == WWW_CONTAINS) {
        buf_addstr(sql, " AND (");
        for (size_t i = 0; i < nv; i++) {
            buf_printf(sql, "%s%s LIKE '%%' || ? || '%%'", i > 0 ? " OR " : "", f->field->sql);
            params[(*n)++] = to_param(json_array_get(f->values, i));
        }
        buf_addc(sql, ')');
    } else if (nv == 1 && f->op <= WWW_GE) {
        buf_printf(sql, " AND %s %s ?", f->field->sql, cmp[f->op]);
        params[(*n)++] = to_param(json_array_get(f->values, 0));
    } else {
        bool neg = f->op == WWW_NE || f->op == WWW_NOTIN;
        sql_list(sql, f, neg ? "NOT IN" : "IN", params, n);
    }
}

int www_query_sql(const struct www_query *q, struct buf *sql, struct db_param *params, size_t *n,
                  char **cause)
{
    size_t need = 0;
    for (size_t i = 0; i < q->n_filters; i++)
        need += json_array_size(q->filters[i].values);
    if (need > WWW_QUERY_MAX_PARAMS - 2)
        return util_cause(cause, "too many filter values");
    for (size_t i = 0; i < q->n_filters; i++)
        if (q->filters[i].field->sql != NULL && !q->filters[i].taken)
            sql_filter(sql, &q->filters[i], params, n);
    return 0;
}

/*
 * Windows on a collection (listing.c).  A streamed answer is read in batches
 * in a total order, the query's orders and then the source's tiebreak (a
 * unique column), each batch starting after the sort key of the last row of
 * the one before: rows written meanwhile neither shift nor repeat a batch.
 * Without SQL paging the order is Python's (None before any value, strings
 * by code point); with it, the database's own, as Buildbot's.
 */

struct sort_key {
    const char *expr;
    bool desc, text;
    bool never_null; /* the tiebreak: a unique column, never NULL */
};

static size_t batch_keys(const struct www_query *q, const char *tiebreak, struct sort_key *keys)
{
    size_t n = 0;
    bool unique = false;
    for (size_t i = 0; i < q->n_orders; i++) {
        const struct www_field *f = q->orders[i].field;
        bool is_tiebreak = strcmp(f->sql, tiebreak) == 0;
        keys[n++] = (struct sort_key){f->sql, q->orders[i].desc, f->type == WWW_F_STR, is_tiebreak};
        unique = unique || is_tiebreak;
    }
    if (!unique)
        keys[n++] = (struct sort_key){tiebreak, false, false, true};
    return n;
}

static void put_key_expr(struct buf *sql, const struct sort_key *k, bool python, enum db_kind kind)
{
    buf_addstr(sql, k->expr);
    if (python && kind == DB_PG && k->text)
        buf_addstr(sql, " COLLATE \"C\""); /* code point order, whatever the database's locale */
}

static void put_param(struct db_param **params, size_t *n, size_t *cap, struct db_param p)
{
    *params = xgrow(*params, cap, *n + 1, sizeof **params);
    (*params)[(*n)++] = p;
}

/* Key i strictly after its value in the window's key, NULLs where the order puts them. */
static void put_after(const struct www_window *win, const struct sort_key *k, size_t i,
                      enum db_kind kind, struct buf *sql, struct db_param **params, size_t *n,
                      size_t *cap)
{
    bool nulls_low = win->python_order || kind == DB_SQLITE;
    bool nulls_first = k->desc ? !nulls_low : nulls_low;
    if (win->key[i].type == DB_P_NULL && !nulls_first) {
        buf_addstr(sql, "1 = 0"); /* nothing sorts after the last NULL */
        return;
    }
    /* "OR k IS NULL" on a column that cannot be NULL would make SQLite scan from the
       start of the index for every batch instead of seeking to the key */
    bool or_null = !nulls_first && !k->never_null;
    if (or_null)
        buf_addc(sql, '(');
    put_key_expr(sql, k, win->python_order, kind);
    if (win->key[i].type == DB_P_NULL) {
        buf_addstr(sql, " IS NOT NULL");
        return;
    }
    buf_addstr(sql, k->desc ? " < ?" : " > ?");
    put_param(params, n, cap, win->key[i]);
    if (or_null) {
        buf_addstr(sql, " OR ");
        put_key_expr(sql, k, win->python_order, kind);
        buf_addstr(sql, " IS NULL)");
    }
}

/* " AND ((k1 after v1) OR (k1 = v1 AND k2 after v2) ...)": the rows after the key. */
static void put_keyset(const struct www_window *win, const struct sort_key *keys, size_t nk,
                       enum db_kind kind, struct buf *sql, struct db_param **params, size_t *n,
                       size_t *cap)
{
    buf_addstr(sql, " AND (");
    for (size_t i = 0; i < nk; i++) {
        buf_addstr(sql, i > 0 ? " OR (" : "(");
        for (size_t k = 0; k < i; k++) {
            put_key_expr(sql, &keys[k], win->python_order, kind);
            bool null = win->key[k].type == DB_P_NULL;
            buf_addstr(sql, null ? " IS NULL AND " : " = ? AND ");
            if (!null)
                put_param(params, n, cap, win->key[k]);
        }
        put_after(win, &keys[i], i, kind, sql, params, n, cap);
        buf_addc(sql, ')');
    }
    buf_addc(sql, ')');
}

static void put_batch_order(const struct www_window *win, const struct sort_key *keys, size_t nk,
                            enum db_kind kind, struct buf *sql, struct buf *cols)
{
    for (size_t i = 0; i < nk; i++) {
        buf_addstr(sql, i == 0 ? " ORDER BY " : ", ");
        put_key_expr(sql, &keys[i], win->python_order, kind);
        if (keys[i].desc)
            buf_addstr(sql, " DESC");
        if (win->python_order && kind == DB_PG)
            buf_addstr(sql, keys[i].desc ? " NULLS LAST" : " NULLS FIRST");
        buf_printf(cols, ", %s", keys[i].expr);
    }
}

/*
 * A probe reads what the query asks for, at most win->rows rows of it, in the order a
 * streamed answer would have: ties of the query's orders go by the tiebreak.
 */
static void put_probe(const struct www_query *q, const struct www_window *win, bool page,
                      const char *tiebreak, enum db_kind kind, struct buf *sql,
                      struct db_param **params, size_t *n, size_t *cap)
{
    long long rows = win->rows, skip = 0;
    struct sort_key k[WWW_QUERY_MAX_ITEMS + 1];
    size_t nk = page ? batch_keys(q, tiebreak, k) : 0;
    if (!page)
        k[nk++] = (struct sort_key){tiebreak, false, false, true};
    for (size_t i = 0; i < nk; i++)
        buf_printf(sql, "%s%s%s", i == 0 ? " ORDER BY " : ", ", k[i].expr,
                   k[i].desc ? " DESC" : "");
    if (page && q->has_limit && q->limit >= 0 && q->limit < rows)
        rows = q->limit;
    if (page && q->has_limit && q->limit < 0 && kind == DB_PG)
        rows = q->limit; /* PostgreSQL refuses it, for Buildbot too (SQLite reads all) */
    if (page && q->has_offset)
        skip = q->offset; /* negative: SQLite reads from the start, PostgreSQL refuses it */
    buf_addstr(sql, " LIMIT ? OFFSET ?");
    put_param(params, n, cap, DB_INT(rows));
    put_param(params, n, cap, DB_INT(skip));
}

int www_query_sql_window(const struct www_query *q, const struct www_window *win, bool page,
                         const char *tiebreak, enum db_kind kind, struct buf *sql, struct buf *keys,
                         struct db_param **params, size_t *n, size_t *cap, char **cause)
{
    if (page && ((q->has_limit && q->limit_big) || (q->has_offset && q->offset_big)))
        return util_cause(cause, "%s", WWW_OVERFLOW_TEXT);
    if (win->mode == WWW_WIN_PROBE) {
        put_probe(q, win, page, tiebreak, kind, sql, params, n, cap);
        return 0;
    }
    struct sort_key k[WWW_QUERY_MAX_ITEMS + 1];
    size_t nk = batch_keys(q, tiebreak, k);
    if (win->has_key)
        put_keyset(win, k, nk, kind, sql, params, n, cap);
    put_batch_order(win, k, nk, kind, sql, keys);
    buf_addstr(sql, " LIMIT ? OFFSET ?");
    put_param(params, n, cap, DB_INT(win->rows));
    put_param(params, n, cap, DB_INT(win->skip));
    return 0;
}

void www_window_clear_key(struct www_window *win)
{
    for (size_t i = 0; i < win->n_key; i++)
        if (win->key[i].type == DB_P_TEXT)
            free((char *)win->key[i].s); /* our own copy */
    free(win->key);
    win->key = NULL;
    win->n_key = 0;
    win->has_key = false;
}

void www_window_copy_key(struct www_window *to, const struct www_window *from)
{
    www_window_clear_key(to);
    to->key = xcalloc(from->n_key + 1, sizeof *to->key);
    for (size_t i = 0; i < from->n_key; i++) {
        to->key[i] = from->key[i];
        if (from->key[i].type == DB_P_TEXT)
            to->key[i].s = xstrdup(from->key[i].s);
    }
    to->n_key = from->n_key;
    to->has_key = from->has_key;
}

void www_window_set_key(struct www_window *win, const struct www_query *q, const char *tiebreak,
                        const struct db_res *r, size_t row, size_t col)
{
    struct sort_key k[WWW_QUERY_MAX_ITEMS + 1];
    size_t nk = batch_keys(q, tiebreak, k);
    www_window_clear_key(win);
    win->key = xcalloc(nk, sizeof *win->key);
    for (size_t i = 0; i < nk; i++, col++) {
        if (db_res_null(r, row, col)) {
            win->key[i] = DB_NULL;
        } else if (k[i].text) {
            char *text = xstrdup(db_res_text(r, row, col));
            win->key[i] = DB_TEXT(text);
        } else {
            win->key[i] = DB_INT(db_res_int(r, row, col));
        }
    }
    win->n_key = nk;
    win->has_key = true;
}

/* In memory, with Python's comparisons. */

static int cmp_values(json_t *a, json_t *b)
{
    if (json_is_null(a) || a == NULL)
        return json_is_null(b) || b == NULL ? 0 : -1;
    if (json_is_null(b) || b == NULL)
        return 1;
    if (json_is_string(a) && json_is_string(b)) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        return c < 0 ? -1 : c > 0; /* 2 means "not comparable" below */
    }
    if ((json_is_integer(a) || json_is_boolean(a)) && (json_is_integer(b) || json_is_boolean(b))) {
        long long x = json_is_boolean(a) ? json_is_true(a) : json_integer_value(a);
        long long y = json_is_boolean(b) ? json_is_true(b) : json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_array(a) && json_is_array(b)) { /* Python's: item by item, then the length */
        size_t na = json_array_size(a), nb = json_array_size(b);
        for (size_t i = 0; i < na && i < nb; i++) {
            int c = cmp_values(json_array_get(a, i), json_array_get(b, i));
            if (c != 0)
                return c;
        }
        return na < nb ? -1 : na > nb;
    }
    return json_equal(a, b) ? 0 : 2; /* 2: not comparable */
}

static bool in_values(json_t *d, json_t *values)
{
    for (size_t i = 0; i < json_array_size(values); i++)
        if (cmp_values(d, json_array_get(values, i)) == 0)
            return true;
    return false;
}

static bool contains(json_t *d, json_t *v)
{
    if (json_is_array(d))
        return in_values(v, d);
    if (json_is_string(d) && json_is_string(v))
        return strstr(json_string_value(d), json_string_value(v)) != NULL;
    return false;
}

static bool match_one(const struct www_filter *f, json_t *d)
{
    json_t *values = f->values;
    json_t *v = json_array_get(values, 0);
    if (json_array_size(values) != 1) {
        switch (f->op) {
        case WWW_EQ:
        case WWW_IN:
            return in_values(d, values);
        case WWW_NE:
        case WWW_NOTIN:
            return !in_values(d, values);
        default: /* contains: any overlap */
            for (size_t i = 0; i < json_array_size(values); i++)
                if (contains(d, json_array_get(values, i)))
                    return true;
            return false;
        }
    }
    int c = cmp_values(d, v);
    switch (f->op) {
    case WWW_EQ:
    case WWW_IN:
        return c == 0;
    case WWW_NE:
    case WWW_NOTIN:
        return c != 0;
    case WWW_LT:
        return c == -1 && !json_is_null(d);
    case WWW_LE:
        return (c == -1 || c == 0) && !json_is_null(d);
    case WWW_GT:
        return c == 1;
    case WWW_GE:
        return c == 1 || c == 0;
    case WWW_CONTAINS:
        return contains(d, v);
    }
    return false;
}

static int compare(const struct www_query *q, json_t *a, json_t *b)
{
    for (size_t i = 0; i < q->n_orders; i++) {
        const struct www_order *o = &q->orders[i];
        int c = cmp_values(json_object_get(a, o->field->name), json_object_get(b, o->field->name));
        if (c == 2)
            c = 0;
        if (c != 0)
            return o->desc ? -c : c;
    }
    return 0;
}

/* A stable merge sort, like Python's sorted(). */
static void sort_list(const struct www_query *q, json_t *list)
{
    size_t n = json_array_size(list);
    if (q->n_orders == 0 || n < 2)
        return;
    json_t **v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(list, i));
    json_t **tmp = xcalloc(n, sizeof *tmp);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = compare(q, v[b], v[a]) < 0 ? v[b++] : v[a++];
            while (a < mid)
                tmp[k++] = v[a++];
            while (b < hi)
                tmp[k++] = v[b++];
        }
        memcpy(v, tmp, n * sizeof *v);
    }
    json_array_clear(list);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, v[i]);
    free(tmp);
    free(v);
}

void www_query_sort(const struct www_query *q, json_t *list)
{
    sort_list(q, list);
}

/* Python's slice index normalisation. */
static long long py_index(long long i, long long n)
{
    if (i < 0)
        i = n + i < 0 ? 0 : n + i;
    return i > n ? n : i;
}

void www_query_slice(const struct www_query *q, long long n, long long *start, long long *end)
{
    bool big = false;
    *start = q->has_offset ? py_index(q->offset, n) : 0;
    *end = n;
    if (q->has_limit)
        *end = py_index(www_query_add(q->has_offset ? q->offset : 0, q->limit, &big), n);
}

bool www_query_slice_needs_n(const struct www_query *q)
{
    bool big = false;
    return (q->has_offset && q->offset < 0) ||
           (q->has_limit && www_query_add(q->has_offset ? q->offset : 0, q->limit, &big) < 0);
}

/* Python's list[offset:offset+limit]. */
static void slice(const struct www_query *q, json_t *list)
{
    long long start, end;
    www_query_slice(q, (long long)json_array_size(list), &start, &end);
    json_t *out = json_array();
    for (long long i = start; i < end; i++)
        json_array_append(out, json_array_get(list, (size_t)i));
    json_array_clear(list);
    json_array_extend(list, out);
    json_decref(out);
}

bool www_query_match(const struct www_query *q, json_t *obj)
{
    for (size_t k = 0; k < q->n_filters; k++)
        if (!q->filters[k].taken &&
            !match_one(&q->filters[k], json_object_get(obj, q->filters[k].field->name)))
            return false;
    return true;
}

size_t www_query_apply(const struct www_query *q, json_t *list, bool page)
{
    for (size_t i = 0; i < json_array_size(list);) {
        if (www_query_match(q, json_array_get(list, i)))
            i++;
        else
            json_array_remove(list, i);
    }
    size_t total = json_array_size(list);
    if (!page)
        return total;
    sort_list(q, list);
    if (q->has_limit || q->has_offset)
        slice(q, list);
    return total;
}

void www_query_select(const struct www_query *q, json_t *obj)
{
    if (q->fields == NULL || q->n_fields == 0)
        return;
    const char *key;
    json_t *value;
    void *tmp;
    json_object_foreach_safe(obj, tmp, key, value)
    {
        if (!www_query_wants(q, key))
            json_object_del(obj, key);
    }
}
