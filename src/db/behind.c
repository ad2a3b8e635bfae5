/*
 * Write-behind: the engine's writes outlive an unavailable database.
 *
 * On a connection with write-behind (db_behind_enable), a write the database
 * cannot take because it is unavailable -- a lost connection, a lock held by
 * another process, a full disk -- is not dropped: the statement is copied
 * into a queue and db_exec reports success.  Once anything waits, every
 * later write joins the queue behind it, so writes reach the database in the
 * order they were made.  The queue is applied at the next attempt: the first
 * call on the connection after the backoff (250 ms doubling to 4 s) or
 * db_behind_retry.
 *
 * A transaction is kept whole: its statements are journalled as they run, so
 * that a transaction the database drops half-way (or at COMMIT) goes into the
 * queue as one batch, replayed between BEGIN and COMMIT.  A transaction that
 * handed out ids (db_insert) cannot be replayed, since its caller already used
 * them: it fails as before.  Reads and inserts cannot wait; while writes wait
 * they fail at once with the reason the database is unavailable.
 *
 * The queue is bounded: bulk writes (log chunks, db_exec_bulk) stop at its
 * `max` bytes, other writes have a reserve beyond it, so that the rows that
 * finish steps and builds still fit when log chunks have filled it.  A write
 * past the bound fails with a cause that says so.  (A transaction the database
 * drops at its COMMIT waits whole, past the bound if need be: its statements
 * were taken as done.)
 * A statement the database refuses for itself when it is replayed (not for
 * being unavailable) is logged and dropped, as it would have been at once.
 */
#include "db/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 4000
#define RESERVE (8u << 20)
/* How often a long outage is mentioned in the log. */
#define REMIND_MS 30000

struct db_stmt {
    char *sql;
    struct db_param *p;
    size_t n;
};

struct db_batch {
    struct db_batch *next;
    struct db_stmt *s;
    size_t n, cap;
    size_t bytes;
    bool tx;
};

struct db_behind {
    struct db_batch *head, *tail;
    size_t batches, bytes, max;
    struct db_batch *open; /* the transaction in progress: a journal, or deferred */
    bool deferred;         /* the open transaction was not sent: it is queued at COMMIT */
    bool ids;              /* the open (live) transaction handed out ids */
    bool down;             /* the last attempt found the database unavailable */
    bool recovered;        /* it was down and is back: db_behind_retry says so once */
    long long down_since, next_try, reminded;
    unsigned backoff;
    size_t applied; /* statements applied since the outage began */
    char *cause;    /* why the database is unavailable */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ batches */

static struct db_batch *batch_new(bool tx)
{
    struct db_batch *b = xcalloc(1, sizeof *b);
    b->tx = tx;
    return b;
}

static void batch_free(struct db_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        for (size_t k = 0; k < b->s[i].n; k++)
            free((char *)b->s[i].p[k].s);
        free(b->s[i].p);
        free(b->s[i].sql);
    }
    free(b->s);
    free(b);
}

/* The bytes of a statement's parameters. */
static size_t stmt_bytes(const struct db_param *p, size_t n)
{
    size_t bytes = sizeof(struct db_stmt) + n * sizeof *p;
    for (size_t i = 0; i < n; i++)
        bytes += p[i].type == DB_P_TEXT   ? strlen(p[i].s) + 1
                 : p[i].type == DB_P_BLOB ? p[i].len
                                          : 0;
    return bytes;
}

/* A copy of a statement and its parameters into `b`. */
static void batch_add(struct db_batch *b, const char *sql, const struct db_param *p, size_t n)
{
    b->s = xgrow(b->s, &b->cap, b->n + 1, sizeof *b->s);
    struct db_stmt *s = &b->s[b->n++];
    s->sql = xstrdup(sql);
    s->p = xcalloc(n + 1, sizeof *s->p);
    s->n = n;
    size_t bytes = sizeof *s + strlen(sql) + 1 + n * sizeof *s->p;
    for (size_t i = 0; i < n; i++) {
        s->p[i] = p[i];
        if (p[i].type == DB_P_TEXT) {
            s->p[i].s = xstrdup(p[i].s);
            bytes += strlen(p[i].s) + 1;
        } else if (p[i].type == DB_P_BLOB) {
            char *copy = xmalloc(p[i].len + 1);
            memcpy(copy, p[i].s, p[i].len);
            s->p[i].s = copy;
            bytes += p[i].len;
        }
    }
    b->bytes += bytes;
}

/* ------------------------------------------------------------ state */

static void note_down(struct db *db, const char *cause)
{
    struct db_behind *q = db->behind;
    long long now = now_ms();
    if (!q->down) {
        q->down = true;
        q->down_since = q->reminded = now;
        q->backoff = BACKOFF_FIRST_MS;
        q->applied = 0;
        log_error("database: unavailable: %s; writes wait in memory (at most %zu %s) until "
                  "it is back",
                  cause != NULL ? cause : "?", q->max >= 1u << 20 ? q->max >> 20 : q->max >> 10,
                  q->max >= 1u << 20 ? "MiB" : "KiB");
    } else {
        q->backoff = q->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : q->backoff * 2;
    }
    q->next_try = now + q->backoff;
    free(q->cause);
    q->cause = xstrdup(cause != NULL ? cause : "unavailable");
}

static void note_up(struct db *db)
{
    struct db_behind *q = db->behind;
    if (!q->down)
        return;
    q->down = false;
    q->recovered = true;
    log_info("database: available again after %.1f s; %zu writes that waited were applied",
             (double)(now_ms() - q->down_since) / 1000.0, q->applied);
    free(q->cause);
    q->cause = NULL;
}

/* A long outage is mentioned every REMIND_MS. */
static void remind(struct db_behind *q)
{
    long long now = now_ms();
    if (!q->down || now - q->reminded < REMIND_MS)
        return;
    q->reminded = now;
    log_warn("database: still unavailable after %lld s (%s); %zu writes (%zu KiB) wait",
             (now - q->down_since) / 1000, q->cause != NULL ? q->cause : "?", q->batches,
             q->bytes >> 10);
}

/* The cause a read, an insert or a refused write gets while the database is unavailable. */
static int unavailable(struct db *db, char **cause)
{
    struct db_behind *q = db->behind;
    db->lost = true;
    return util_cause(cause, "the database is unavailable (%s); %zu writes wait",
                      q->cause != NULL ? q->cause : "writes wait", q->batches);
}

/* Whether `bytes` more may wait (the open deferred transaction's count already). */
static int room(struct db *db, size_t bytes, bool bulk, char **cause)
{
    struct db_behind *q = db->behind;
    size_t held = q->bytes + (q->deferred && q->open != NULL ? q->open->bytes : 0);
    if (held + bytes <= q->max + (bulk ? 0 : RESERVE))
        return 0;
    db->lost = true;
    return util_cause(cause,
                      "the database is unavailable (%s) and %zu KiB of writes already wait "
                      "for it, the most the master holds: this write is refused",
                      q->cause != NULL ? q->cause : "?", held >> 10);
}

static void enqueue(struct db_behind *q, struct db_batch *b)
{
    if (q->tail != NULL)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->batches++;
    q->bytes += b->bytes;
}

/* ------------------------------------------------------------ replay */

static int run_stmt(struct db *db, const struct db_stmt *s, char **cause)
{
    db->lost = false;
    int rc = db->be->run(db, s->sql, s->p, s->n, NULL, cause);
    db_note_write(db, s->sql);
    return rc;
}

static int apply(struct db *db, const struct db_batch *b, char **cause)
{
    int rc = 0;
    db->lost = false;
    if (b->tx && db->be->run(db, "BEGIN", NULL, 0, NULL, cause) < 0)
        return -1;
    db->depth = b->tx ? 1 : 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        rc = run_stmt(db, &b->s[i], cause);
    if (rc == 0 && b->tx)
        rc = db->be->run(db, "COMMIT", NULL, 0, NULL, cause);
    if (rc != 0 && b->tx) {
        bool lost = db->lost;
        db->be->run(db, "ROLLBACK", NULL, 0, NULL, NULL);
        db->lost = lost;
    }
    db->depth = 0;
    db_note_end(db);
    return rc;
}

static void pop(struct db_behind *q)
{
    struct db_batch *b = q->head;
    q->head = b->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->batches--;
    q->bytes -= b->bytes;
    q->applied += b->n;
    batch_free(b);
}

/* Applies what waits; 0 when nothing waits any more, -1 (db->lost) when the database is
   still unavailable. */
static int drain(struct db *db)
{
    struct db_behind *q = db->behind;
    while (q->head != NULL) {
        char *cause = NULL;
        if (apply(db, q->head, &cause) == 0) {
            pop(q);
        } else if (db->lost) {
            note_down(db, cause);
            free(cause);
            return -1;
        } else {
            log_error("database: a write that waited was refused: %s: %s",
                      q->head->n > 0 ? q->head->s[0].sql : "COMMIT", cause != NULL ? cause : "?");
            free(cause);
            q->applied -= q->head->n;
            pop(q);
        }
    }
    return 0;
}

/* Whether the database may be tried now: nothing waits, or what waited is applied. */
static bool ready(struct db *db)
{
    struct db_behind *q = db->behind;
    if (q->down && now_ms() < q->next_try)
        return false;
    if (drain(db) != 0)
        return false;
    return true;
}

/* After a real attempt outside a transaction: the database's state follows its answer. */
static int attempted(struct db *db, int rc, const char *cause)
{
    if (rc == 0 || !db->lost)
        note_up(db);
    else
        note_down(db, cause);
    return rc;
}

/* ------------------------------------------------------------ the connection's calls */

void db_behind_enable(struct db *db, size_t max_bytes)
{
    if (db->behind == NULL)
        db->behind = xcalloc(1, sizeof *db->behind);
    db->behind->max = max_bytes;
}

void db_behind_free(struct db *db)
{
    struct db_behind *q = db->behind;
    if (q == NULL)
        return;
    while (q->head != NULL)
        pop(q);
    batch_free(q->open);
    free(q->cause);
    free(q);
    db->behind = NULL;
}

size_t db_behind_waiting(const struct db *db)
{
    return db->behind != NULL ? db->behind->batches : 0;
}

size_t db_behind_bytes(const struct db *db)
{
    return db->behind != NULL ? db->behind->bytes : 0;
}

bool db_behind_down(const struct db *db, const char **cause)
{
    struct db_behind *q = db->behind;
    if (cause != NULL)
        *cause = q != NULL ? q->cause : NULL;
    return q != NULL && q->down;
}

int db_behind_retry(struct db *db, bool now)
{
    struct db_behind *q = db->behind;
    if (q == NULL || db->depth > 0)
        return 0;
    if (q->head != NULL || q->down) {
        remind(q);
        if (now)
            q->next_try = 0;
        if (!ready(db))
            return -1;
        if (q->down) { /* nothing waited: ask the database itself */
            char *why = NULL;
            db->lost = false;
            int rc = db->be->run(db, "SELECT 1", NULL, 0, NULL, &why);
            attempted(db, rc, why);
            free(why);
            if (rc != 0 && db->lost)
                return -1;
        }
        note_up(db);
    }
    bool back = q->recovered;
    q->recovered = false;
    return back ? 1 : 0;
}

/* A statement run now; *lost tells a failure for want of the database. */
static int run_now(struct db *db, const char *sql, const struct db_param *p, size_t n, char **why)
{
    return run_stmt(db, &(struct db_stmt){(char *)sql, (struct db_param *)p, n}, why);
}

/* db_exec in a transaction: journalled while it runs, queued whole once it cannot. */
static int exec_in_tx(struct db *db, const char *sql, const struct db_param *p, size_t n, bool bulk,
                      char **cause)
{
    struct db_behind *q = db->behind;
    if (!q->deferred) {
        char *why = NULL;
        int rc = run_now(db, sql, p, n, &why);
        if (rc != 0 && (!db->lost || q->ids)) {
            util_cause(cause, "%s", why);
            free(why);
            return rc;
        }
        if (rc != 0) { /* lost half-way: the transaction waits whole */
            db->be->run(db, "ROLLBACK", NULL, 0, NULL, NULL);
            note_down(db, why);
            q->deferred = true;
        }
        free(why);
        if (rc == 0 && q->ids)
            return 0; /* it cannot wait: no journal */
    }
    if (q->deferred && room(db, strlen(sql) + stmt_bytes(p, n), bulk, cause) != 0)
        return -1;
    batch_add(q->open, sql, p, n);
    return 0;
}

int db_behind_exec(struct db *db, const char *sql, const struct db_param *p, size_t n, bool bulk,
                   char **cause)
{
    if (db->depth > 0)
        return exec_in_tx(db, sql, p, n, bulk, cause);
    if (ready(db)) {
        char *why = NULL;
        int rc = run_now(db, sql, p, n, &why);
        attempted(db, rc, why);
        if (rc != 0 && !db->lost)
            util_cause(cause, "%s", why);
        free(why);
        if (rc == 0 || !db->lost)
            return rc;
    }
    struct db_batch *b = batch_new(false);
    batch_add(b, sql, p, n);
    if (room(db, b->bytes, bulk, cause) != 0) {
        batch_free(b);
        return -1;
    }
    enqueue(db->behind, b);
    return 0;
}

int db_behind_gate(struct db *db, char **cause)
{
    struct db_behind *q = db->behind;
    if (db->depth > 0)
        return q->deferred ? unavailable(db, cause) : 0;
    return ready(db) ? 0 : unavailable(db, cause);
}

void db_behind_after(struct db *db, int rc, const char *cause, bool insert)
{
    struct db_behind *q = db->behind;
    if (db->depth > 0) {
        q->ids = q->ids || (insert && rc == 0);
        return;
    }
    attempted(db, rc, cause);
}

int db_behind_begin(struct db *db, char **cause)
{
    struct db_behind *q = db->behind;
    q->ids = false;
    q->open = batch_new(true);
    q->deferred = !ready(db);
    if (!q->deferred) {
        char *why = NULL;
        int rc = db->be->run(db, "BEGIN", NULL, 0, NULL, &why);
        if (attempted(db, rc, why) != 0) {
            if (!db->lost) {
                batch_free(q->open);
                q->open = NULL;
                util_cause(cause, "%s", why);
                free(why);
                return -1;
            }
            q->deferred = true;
        }
        free(why);
    }
    db->depth = 1;
    return 0;
}

int db_behind_commit(struct db *db, char **cause)
{
    struct db_behind *q = db->behind;
    struct db_batch *b = q->open;
    q->open = NULL;
    db->depth = 0;
    if (q->deferred) { /* each statement found room as it came */
        if (b->n > 0)
            enqueue(q, b);
        else
            batch_free(b);
        return 0;
    }
    char *why = NULL;
    db->lost = false;
    int rc = db->be->run(db, "COMMIT", NULL, 0, NULL, &why);
    if (rc != 0) {
        bool lost = db->lost;
        db->be->run(db, "ROLLBACK", NULL, 0, NULL, NULL);
        db->lost = lost;
    }
    db_note_end(db);
    if (rc == 0 || !db->lost || q->ids) {
        batch_free(b);
        if (rc != 0)
            util_cause(cause, "%s", why);
        attempted(db, rc, why);
        free(why);
        return rc;
    }
    note_down(db, why);
    free(why);
    if (b->n > 0)
        enqueue(q, b); /* its statements were taken: it waits, past the bound if need be */
    else
        batch_free(b);
    return 0;
}

void db_behind_rollback(struct db *db)
{
    struct db_behind *q = db->behind;
    batch_free(q->open);
    q->open = NULL;
    db->depth = 0;
    if (!q->deferred) {
        db->be->run(db, "ROLLBACK", NULL, 0, NULL, NULL);
        db_note_end(db);
    }
    q->deferred = false;
}
