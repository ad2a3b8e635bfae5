/*
 * The PostgreSQL backend through libpq: `?` placeholders become $1..$n,
 * values travel as parameters (text, or binary for blobs), bytea results
 * are unescaped (or, from db_query_binary, arrive in binary), and a unique
 * violation (SQLSTATE 23505) is DB_CONFLICT.  A connection the server
 * dropped (a restart, a network fault) is re-established at the next call;
 * that and the errors of a server that is going away, out of space or out of
 * connections set db->lost.  A query with a deadline (db_set_allowance) is
 * sent asynchronously and cancelled (PQcancel) when it runs past it.
 */
#include "db/internal.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BYTEA_OID 17
#define INT8_OID 20
#define INT2_OID 21
#define INT4_OID 23

static PGconn *conn(struct db *db)
{
    return db->handle;
}

/* Rewrites ? as $n outside quotes. */
static char *renumber(const char *sql)
{
    struct buf b;
    buf_init(&b, 0);
    int n = 0;
    char quote = 0;
    for (const char *p = sql; *p != '\0'; p++) {
        if (quote != 0) {
            if (*p == quote)
                quote = 0;
            buf_addc(&b, *p);
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            buf_addc(&b, *p);
        } else if (*p == '?') {
            buf_printf(&b, "$%d", ++n);
        } else {
            buf_addc(&b, *p);
        }
    }
    return buf_take(&b);
}

/* libpq's message on one line: its line breaks and tabs become single spaces. */
static char *trimmed(const char *msg)
{
    char *m = xstrdup(msg != NULL ? msg : "unknown error");
    size_t n = 0;
    for (const char *p = m; *p != '\0'; p++) {
        bool space = *p == '\n' || *p == '\t' || *p == ' ';
        if (!space)
            m[n++] = *p;
        else if (n > 0 && m[n - 1] != ' ')
            m[n++] = ' ';
    }
    while (n > 0 && m[n - 1] == ' ')
        n--;
    m[n] = '\0';
    return m;
}

/* Asks the server to stop the statement under way (over a connection of its own). */
static void cancel(PGconn *c)
{
    PGcancel *pc = PQgetCancel(c);
    char err[256];
    if (pc != NULL)
        PQcancel(pc, err, sizeof err);
    PQfreeCancel(pc);
}

/* The statement sent (when `sent`), waited for until db->deadline_ms: past it the server is
   asked to cancel it, and its end is waited for.  The last result, as PQexecParams's. */
static PGresult *watch(struct db *db, bool sent)
{
    PGconn *c = conn(db);
    bool cancelled = false;
    while (sent && PQisBusy(c)) {
        uint64_t now = util_mono_ms();
        if (!cancelled && now >= db->deadline_ms) {
            cancel(c);
            cancelled = true;
        }
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        int ready = poll(&pfd, 1, cancelled ? -1 : (int)(db->deadline_ms - now));
        if ((ready < 0 && errno != EINTR) || (ready > 0 && !PQconsumeInput(c)))
            break;
    }
    PGresult *last = NULL, *r;
    while ((r = PQgetResult(c)) != NULL) {
        PQclear(last);
        last = r;
    }
    const char *state = last != NULL ? PQresultErrorField(last, PG_DIAG_SQLSTATE) : NULL;
    db->overran = cancelled && state != NULL && strcmp(state, "57014") == 0;
    return last;
}

static PGresult *exec_params(struct db *db, const char *sql, const struct db_param *p, size_t n,
                             int result_format)
{
    char *text = renumber(sql);
    const char **values = xcalloc(n + 1, sizeof *values);
    int *lengths = xcalloc(n + 1, sizeof *lengths), *formats = xcalloc(n + 1, sizeof *formats);
    char(*ints)[24] = xcalloc(n + 1, sizeof *ints);
    for (size_t i = 0; i < n; i++) {
        if (p[i].type == DB_P_INT) {
            snprintf(ints[i], sizeof ints[i], "%lld", p[i].i);
            values[i] = ints[i];
        } else if (p[i].type == DB_P_TEXT) {
            values[i] = p[i].s;
        } else if (p[i].type == DB_P_BLOB) {
            values[i] = p[i].len > 0 ? p[i].s : "";
            lengths[i] = (int)p[i].len;
            formats[i] = 1;
        }
    }
    PGresult *res;
    if (db->deadline_ms == 0)
        res = PQexecParams(conn(db), text, (int)n, NULL, values, lengths, formats, result_format);
    else
        res = watch(db, PQsendQueryParams(conn(db), text, (int)n, NULL, values, lengths, formats,
                                          result_format) == 1);
    free(text);
    free(values);
    free(lengths);
    free(formats);
    free(ints);
    return res;
}

/* SQLSTATEs of the server's state rather than the statement's: connection exceptions
   (08), insufficient resources (53100 disk full, 53200 out of memory, 53300 too many
   connections), a server shutting down or starting (57P01-57P03), I/O errors (58030), a
   read-only standby (25006), serialization failures and deadlocks (40001, 40P01).  A
   cancelled statement (57014, statement_timeout) is not: it would fail again each time. */
static bool unavailable_state(const char *state)
{
    static const char *const states[] = {"53100", "53200", "53300", "57P01", "57P02",
                                         "57P03", "58030", "25006", "40001", "40P01"};
    if (state == NULL)
        return false;
    if (strncmp(state, "08", 2) == 0)
        return true;
    for (size_t i = 0; i < UTIL_NELEM(states); i++)
        if (strcmp(state, states[i]) == 0)
            return true;
    return false;
}

static int result_error(struct db *db, PGresult *res, char **cause)
{
    ExecStatusType st = PQresultStatus(res);
    if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
        return 0;
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *text = res != NULL ? PQresultErrorMessage(res) : "";
    if (text == NULL || text[0] == '\0')
        text = PQerrorMessage(conn(db)); /* a connection lost has no result text */
    char *msg = trimmed(text[0] != '\0' ? text : "the connection failed with no message");
    util_cause(cause, "postgresql: %s", msg);
    free(msg);
    db->lost = PQstatus(conn(db)) == CONNECTION_BAD || unavailable_state(state);
    return state != NULL && strcmp(state, "23505") == 0 ? DB_CONFLICT : -1;
}

static int session_setup(struct db *db, char **cause);

/* A connection the server dropped is made again (libpq's PQreset, with the same
   parameters) before `sql` runs; -1 with db->lost when the server still cannot be
   reached.  Never inside a transaction: what it did is gone with the old session, and
   its remaining statements, or its COMMIT, must fail rather than run on their own. */
static int reconnect(struct db *db, const char *sql, char **cause)
{
    if (PQstatus(conn(db)) != CONNECTION_BAD)
        return 0;
    if (db->depth > 0 || strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0) {
        db->lost = true;
        return util_cause(cause, "postgresql: the connection was lost in a transaction");
    }
    PQreset(conn(db));
    if (PQstatus(conn(db)) != CONNECTION_OK) {
        char *msg = trimmed(PQerrorMessage(conn(db)));
        util_cause(cause, "postgresql: the connection is lost and cannot be made again: %s", msg);
        free(msg);
        db->lost = true;
        return -1;
    }
    log_info("postgresql: connection re-established");
    return session_setup(db, cause);
}

static struct db_res *to_res(PGresult *res)
{
    int rows = PQntuples(res), cols = PQnfields(res);
    struct db_res *r = db_res_new((size_t)cols);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            if (PQgetisnull(res, i, c)) {
                db_res_push(r, NULL, 0, true);
            } else if (PQftype(res, c) == BYTEA_OID) {
                size_t len = 0;
                unsigned char *v =
                    PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, c), &len);
                db_res_push(r, v, len, false);
                PQfreemem(v);
            } else {
                db_res_push(r, PQgetvalue(res, i, c), (size_t)PQgetlength(res, i, c), false);
            }
        }
        db_res_end_row(r);
    }
    return r;
}

static int pg_run(struct db *db, const char *sql, const struct db_param *params, size_t n,
                  struct db_res **res, char **cause)
{
    if (reconnect(db, sql, cause) < 0)
        return -1;
    PGresult *pr = exec_params(db, sql, params, n, 0);
    int rc = result_error(db, pr, cause);
    if (rc == 0 && res != NULL && PQresultStatus(pr) == PGRES_TUPLES_OK)
        *res = to_res(pr);
    PQclear(pr);
    return rc;
}

/* A binary integer cell (int2, int4, int8: big-endian) as decimal text. */
static int binary_int(const char *v, int len, char out[24])
{
    if (len != 2 && len != 4 && len != 8)
        return -1;
    uint64_t u = 0;
    for (int i = 0; i < len; i++)
        u = u << 8 | (unsigned char)v[i];
    int64_t x = len == 2 ? (int16_t)u : len == 4 ? (int32_t)u : (int64_t)u;
    return snprintf(out, 24, "%lld", (long long)x);
}

static int to_res_binary(PGresult *res, struct db_res **out, char **cause)
{
    int rows = PQntuples(res), cols = PQnfields(res);
    for (int c = 0; c < cols; c++) {
        Oid t = PQftype(res, c);
        if (t != BYTEA_OID && t != INT2_OID && t != INT4_OID && t != INT8_OID)
            return util_cause(cause, "postgresql: column %d has type %u, not integer or bytea",
                              c + 1, (unsigned)t);
    }
    struct db_res *r = db_res_new((size_t)cols);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            const char *v = PQgetvalue(res, i, c);
            int len = PQgetlength(res, i, c);
            char num[24];
            int n = 0;
            if (PQgetisnull(res, i, c))
                db_res_push(r, NULL, 0, true);
            else if (PQftype(res, c) == BYTEA_OID)
                db_res_push(r, v, (size_t)len, false);
            else if ((n = binary_int(v, len, num)) > 0)
                db_res_push(r, num, (size_t)n, false);
            else {
                db_res_free(r);
                return util_cause(cause, "postgresql: an integer of %d bytes in column %d", len,
                                  c + 1);
            }
        }
        db_res_end_row(r);
    }
    *out = r;
    return 0;
}

static int pg_run_binary(struct db *db, const char *sql, const struct db_param *params, size_t n,
                         struct db_res **res, char **cause)
{
    if (reconnect(db, sql, cause) < 0)
        return -1;
    PGresult *pr = exec_params(db, sql, params, n, 1);
    int rc = result_error(db, pr, cause);
    if (rc == 0 && res != NULL && PQresultStatus(pr) == PGRES_TUPLES_OK)
        rc = to_res_binary(pr, res, cause);
    PQclear(pr);
    return rc;
}

static int pg_script(struct db *db, const char *sql, char **cause)
{
    if (reconnect(db, sql, cause) < 0)
        return -1;
    PGresult *pr = PQexec(conn(db), sql);
    int rc = result_error(db, pr, cause);
    PQclear(pr);
    return rc < 0 ? -1 : 0;
}

static int pg_insert(struct db *db, const char *sql, const struct db_param *params, size_t n,
                     const char *key, long long *id, char **cause)
{
    char *text = xasprintf("%s RETURNING %s", sql, key);
    struct db_res *r = NULL;
    int rc = pg_run(db, text, params, n, &r, cause);
    free(text);
    if (rc == 0)
        *id = db_res_int(r, 0, 0);
    db_res_free(r);
    return rc;
}

static int pg_has_table(struct db *db, const char *table, char **cause)
{
    struct db_param p = DB_TEXT(table);
    struct db_res *r = NULL;
    if (pg_run(db,
               "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
               "AND table_name = ?",
               &p, 1, &r, cause) < 0)
        return -1;
    int found = r != NULL && db_res_rows(r) > 0;
    db_res_free(r);
    return found;
}

static void pg_close(struct db *db)
{
    PQfinish(conn(db));
    free(db);
}

/* What every connection sets for its session, again after a reconnection. */
static int session_setup(struct db *db, char **cause)
{
    if (db->readonly &&
        pg_script(db, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", cause) < 0)
        return -1;
    pg_script(db, "SET client_min_messages = warning", NULL);
    return 0;
}

static const struct db_backend pg_backend = {
    .name = "postgresql",
    .close = pg_close,
    .run = pg_run,
    .run_binary = pg_run_binary,
    .script = pg_script,
    .insert = pg_insert,
    .has_table = pg_has_table,
};

struct db *db_pg_open(const char *conninfo, bool readonly, char **cause)
{
    /* A server that vanishes without closing (a network fault) is noticed within about
       30 s, not after TCP's own 15 minutes. */
    const char *keys[] = {"dbname",
                          "connect_timeout",
                          "client_encoding",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          NULL};
    const char *values[] = {conninfo, "5", "UTF8", "10", "5", "3", "30000", NULL};
    PGconn *c = PQconnectdbParams(keys, values, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char *msg = trimmed(PQerrorMessage(c));
        util_cause(cause, "postgresql: cannot connect: %s", msg);
        free(msg);
        PQfinish(c);
        return NULL;
    }
    struct db *db = xcalloc(1, sizeof *db);
    db->kind = DB_PG;
    db->be = &pg_backend;
    db->handle = c;
    db->readonly = readonly;
    db->allowance_ms = -1;
    if (session_setup(db, cause) < 0) {
        pg_close(db);
        return NULL;
    }
    return db;
}
