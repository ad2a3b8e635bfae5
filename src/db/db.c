/*
 * The backend-independent half of the db module: opening a db_url, results,
 * transactions and Buildbot's name hashes.
 */
#include "db/internal.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *sqlite_path(const char *rest, const char *basedir)
{
    /* sqlite:///rel (rest "/rel"), sqlite:////abs (rest "//abs"), sqlite:// (memory). */
    if (rest[0] == '\0')
        return xstrdup(":memory:");
    rest++;
    if (rest[0] == '/' || basedir == NULL)
        return xstrdup(rest);
    return xasprintf("%s/%s", basedir, rest);
}

struct db *db_open(const char *url, const char *basedir, bool readonly, char **cause)
{
    if (util_startswith(url, "sqlite://")) {
        const char *rest = url + strlen("sqlite://");
        char *path = sqlite_path(rest, basedir);
        char *q = strchr(path, '?'); /* Buildbot allows ?serialize_access=1 etc. */
        if (q != NULL)
            *q = '\0';
        struct db *db = db_sqlite_open(path, readonly, cause);
        free(path);
        return db;
    }
    const char *schemes[] = {"postgresql://", "postgres://", "postgresql+psycopg2://",
                             "postgresql+psycopg://", "postgresql+pg8000://"};
    for (size_t i = 0; i < UTIL_NELEM(schemes); i++) {
        if (!util_startswith(url, schemes[i]))
            continue;
        char *conninfo = xasprintf("postgresql://%s", url + strlen(schemes[i]));
        struct db *db = db_pg_open(conninfo, readonly, cause);
        free(conninfo);
        return db;
    }
    util_cause(cause,
               "db_url \"%.40s\": unsupported; use sqlite:///FILE or "
               "postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
               url);
    return NULL;
}

void db_close(struct db *db)
{
    if (db == NULL)
        return;
    db_behind_free(db);
    db->be->close(db);
}

bool db_lost(const struct db *db)
{
    return db->lost;
}

void db_set_allowance(struct db *db, int ms)
{
    db->allowance_ms = ms;
    if (db->be->allowance != NULL)
        db->be->allowance(db, ms >= 0);
}

bool db_overran(const struct db *db)
{
    return db->overran;
}

enum db_kind db_kind(const struct db *db)
{
    return db->kind;
}

static int refuse_write(struct db *db, const char *sql, char **cause)
{
    if (!db->readonly)
        return 0;
    while (*sql == ' ' || *sql == '\n')
        sql++;
    if (strncasecmp(sql, "SELECT", 6) == 0 || strncasecmp(sql, "WITH", 4) == 0)
        return 0;
    return util_cause(cause, "this database connection is read-only");
}

static int wrote(struct db *db, const char *sql, int rc)
{
    db_note_write(db, sql);
    return rc;
}

static int exec(struct db *db, const char *sql, const struct db_param *params, size_t n, bool bulk,
                char **cause)
{
    if (refuse_write(db, sql, cause) < 0)
        return -1;
    if (db->behind != NULL)
        return db_behind_exec(db, sql, params, n, bulk, cause);
    db->lost = false;
    return wrote(db, sql, db->be->run(db, sql, params, n, NULL, cause));
}

int db_exec(struct db *db, const char *sql, const struct db_param *params, size_t n, char **cause)
{
    return exec(db, sql, params, n, false, cause);
}

int db_exec_bulk(struct db *db, const char *sql, const struct db_param *params, size_t n,
                 char **cause)
{
    return exec(db, sql, params, n, true, cause);
}

int db_exec_script(struct db *db, const char *sql, char **cause)
{
    if (db->readonly)
        return util_cause(cause, "this database connection is read-only");
    return wrote(db, NULL, db->be->script(db, sql, cause));
}

int db_insert(struct db *db, const char *sql, const struct db_param *params, size_t n,
              long long *id, char **cause)
{
    return db_insert_key(db, sql, params, n, "id", id, cause);
}

int db_insert_key(struct db *db, const char *sql, const struct db_param *params, size_t n,
                  const char *key, long long *id, char **cause)
{
    if (refuse_write(db, sql, cause) < 0)
        return -1;
    if (db->behind != NULL && db_behind_gate(db, cause) < 0)
        return -1;
    db->lost = false;
    int rc = wrote(db, sql, db->be->insert(db, sql, params, n, key, id, cause));
    if (db->behind != NULL)
        db_behind_after(db, rc, cause != NULL ? *cause : NULL, true);
    return rc;
}

static struct db_res *query(struct db *db, const char *sql, const struct db_param *params, size_t n,
                            bool binary, char **cause)
{
    struct db_res *res = NULL;
    int (*run)(struct db *, const char *, const struct db_param *, size_t, struct db_res **,
               char **) = binary && db->be->run_binary != NULL ? db->be->run_binary : db->be->run;
    if (db->behind != NULL && db_behind_gate(db, cause) < 0)
        return NULL;
    db->lost = false;
    db->overran = db->allowance_ms == 0; /* a bound of 0 ms (tests): nothing runs */
    if (db->overran) {
        util_cause(cause, "%s: a query with no time to run", db->be->name);
        return NULL;
    }
    db->deadline_ms = db->allowance_ms >= 0 ? util_mono_ms() + (uint64_t)db->allowance_ms : 0;
    int rc = run(db, sql, params, n, &res, cause);
    db->deadline_ms = 0;
    if (db->behind != NULL)
        db_behind_after(db, rc, cause != NULL ? *cause : NULL, false);
    if (rc < 0) {
        db_res_free(res);
        return NULL;
    }
    if (res == NULL)
        res = db_res_new(0);
    return res;
}

struct db_res *db_query(struct db *db, const char *sql, const struct db_param *params, size_t n,
                        char **cause)
{
    return query(db, sql, params, n, false, cause);
}

struct db_res *db_query_binary(struct db *db, const char *sql, const struct db_param *params,
                               size_t n, char **cause)
{
    return query(db, sql, params, n, true, cause);
}

/* A line of PostgreSQL's EXPLAIN that is a Sort node (not an Incremental Sort). */
static bool pg_sort_node(const char *line)
{
    line += strspn(line, " ");
    if (strncmp(line, "->", 2) == 0)
        line += 2 + strspn(line + 2, " ");
    return strncmp(line, "Sort  (", 7) == 0;
}

int db_sorts(struct db *db, const char *sql, const struct db_param *params, size_t n, char **cause)
{
    bool pg = db_kind(db) == DB_PG;
    char *text = xasprintf("%s%s", pg ? "EXPLAIN " : "EXPLAIN QUERY PLAN ", sql);
    struct db_res *r = db_query(db, text, params, n, cause);
    free(text);
    if (r == NULL)
        return -1;
    int sorts = 0;
    for (size_t i = 0; i < db_res_rows(r) && !sorts; i++) {
        const char *line = db_res_text(r, i, db_res_cols(r) - 1); /* the plan's words */
        sorts = pg ? pg_sort_node(line) : strcmp(line, "USE TEMP B-TREE FOR ORDER BY") == 0;
    }
    db_res_free(r);
    return sorts;
}

static int tx_begin(struct db *db, char **cause)
{
    if (db->depth > 0)
        return util_cause(cause, "a transaction is already open");
    if (db->behind != NULL)
        return db_behind_begin(db, cause);
    db->lost = false;
    if (db->be->run(db, "BEGIN", NULL, 0, NULL, cause) < 0)
        return -1;
    db->depth = 1;
    return 0;
}

static int tx_commit(struct db *db, char **cause)
{
    if (db->depth == 0)
        return util_cause(cause, "no transaction is open");
    if (db->behind != NULL)
        return db_behind_commit(db, cause);
    db->depth = 0;
    db->lost = false;
    int rc = 0;
    if (db->be->run(db, "COMMIT", NULL, 0, NULL, cause) < 0) {
        db->be->run(db, "ROLLBACK", NULL, 0, NULL, NULL);
        rc = -1;
    }
    db_note_end(db);
    return rc;
}

static void tx_rollback(struct db *db)
{
    if (db->behind != NULL) {
        db_behind_rollback(db);
        return;
    }
    db->depth = 0;
    db->be->run(db, "ROLLBACK", NULL, 0, NULL, NULL);
    db_note_end(db);
}

void db_on_transaction(struct db *db, void (*cb)(void *arg, bool open, bool committed), void *arg)
{
    db->tx_cb = cb;
    db->tx_arg = arg;
}

int db_begin(struct db *db, char **cause)
{
    int rc = tx_begin(db, cause);
    if (rc == 0 && db->tx_cb != NULL)
        db->tx_cb(db->tx_arg, true, false);
    return rc;
}

int db_commit(struct db *db, char **cause)
{
    if (db->depth == 0)
        return util_cause(cause, "no transaction is open");
    int rc = tx_commit(db, cause);
    if (db->tx_cb != NULL)
        db->tx_cb(db->tx_arg, false, rc == 0);
    return rc;
}

bool db_in_transaction(const struct db *db)
{
    return db->depth > 0;
}

void db_rollback(struct db *db)
{
    if (db->depth == 0)
        return;
    tx_rollback(db);
    if (db->tx_cb != NULL)
        db->tx_cb(db->tx_arg, false, false);
}

int db_has_table(struct db *db, const char *table, char **cause)
{
    return db->be->has_table(db, table, cause);
}

/* Results. */

struct db_res *db_res_new(size_t cols)
{
    struct db_res *r = xcalloc(1, sizeof *r);
    r->cols = cols;
    return r;
}

void db_res_push(struct db_res *r, const void *data, size_t len, bool null)
{
    r->cells = xgrow(r->cells, &r->cap, r->filled + 1, sizeof *r->cells);
    r->cells[r->filled++] = (struct db_cell){r->text.len, null ? 0 : len, null};
    if (!null) {
        buf_add(&r->text, data, len);
        buf_addc(&r->text, '\0');
    }
}

void db_res_end_row(struct db_res *r)
{
    r->rows++;
}

size_t db_res_rows(const struct db_res *r)
{
    return r->rows;
}

size_t db_res_cols(const struct db_res *r)
{
    return r->cols;
}

static const struct db_cell *cell(const struct db_res *r, size_t row, size_t col)
{
    if (row >= r->rows || col >= r->cols)
        return NULL;
    return &r->cells[row * r->cols + col];
}

bool db_res_null(const struct db_res *r, size_t row, size_t col)
{
    const struct db_cell *c = cell(r, row, col);
    return c == NULL || c->null;
}

const char *db_res_text(const struct db_res *r, size_t row, size_t col)
{
    const struct db_cell *c = cell(r, row, col);
    return c != NULL && !c->null ? r->text.data + c->off : NULL;
}

long long db_res_int(const struct db_res *r, size_t row, size_t col)
{
    const char *s = db_res_text(r, row, col);
    return s != NULL ? strtoll(s, NULL, 10) : 0;
}

size_t db_res_lower_bound(const struct db_res *r, long long v)
{
    size_t lo = 0, hi = db_res_rows(r);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (db_res_int(r, mid, 0) < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const unsigned char *db_res_blob(const struct db_res *r, size_t row, size_t col, size_t *len)
{
    const char *s = db_res_text(r, row, col);
    *len = s != NULL ? cell(r, row, col)->len : 0;
    return (const unsigned char *)s;
}

void db_res_free(struct db_res *r)
{
    if (r == NULL)
        return;
    buf_free(&r->text);
    free(r->cells);
    free(r);
}

void db_hash(const char *const *values, size_t n, char out[41])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            EVP_DigestUpdate(ctx, "\0", 1);
        if (values[i] == NULL)
            EVP_DigestUpdate(ctx, "\xf5", 1);
        else
            EVP_DigestUpdate(ctx, values[i], strlen(values[i]));
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; i < mdlen && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
