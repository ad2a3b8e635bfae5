/*
 * Inside the db module: what a backend (sqlite.c, pg.c) provides, and the
 * result set both fill the same way.
 */
#ifndef BBM_DB_INTERNAL_H
#define BBM_DB_INTERNAL_H

#include <stdint.h>

#include "db/db.h"

/* One cell of a result: its bytes at `off` in the result's text (NUL-terminated, blobs
   too); SQL NULL when null. */
struct db_cell {
    size_t off;
    size_t len;
    bool null;
};

struct db_res {
    size_t rows;
    size_t cols;
    size_t cap;    /* cells allocated */
    size_t filled; /* cells pushed */
    struct db_cell *cells;
    struct buf text; /* every cell's bytes, one after the other */
};

/* Result building (db.c). */
struct db_res *db_res_new(size_t cols);
/* Appends a cell to the row being filled; rows fill left to right. */
void db_res_push(struct db_res *r, const void *data, size_t len, bool null);
/* Closes the row just filled. */
void db_res_end_row(struct db_res *r);

struct db_backend {
    const char *name;
    void (*close)(struct db *db);
    /* Runs one statement; fills *res (if res is not NULL and it returns rows). */
    int (*run)(struct db *db, const char *sql, const struct db_param *params, size_t n,
               struct db_res **res, char **cause);
    /* The same with integer and blob columns in binary; NULL: run serves. */
    int (*run_binary)(struct db *db, const char *sql, const struct db_param *params, size_t n,
                      struct db_res **res, char **cause);
    int (*script)(struct db *db, const char *sql, char **cause);
    /* Runs an INSERT and reads the new id; DB_CONFLICT on unique violation. */
    int (*insert)(struct db *db, const char *sql, const struct db_param *params, size_t n,
                  const char *key, long long *id, char **cause);
    int (*has_table)(struct db *db, const char *table, char **cause);
    /* db_set_allowance: queries are watched from now on (on) or no longer; NULL: the
       backend watches each query that has a deadline by itself. */
    void (*allowance)(struct db *db, bool on);
};

struct db {
    enum db_kind kind;
    const struct db_backend *be;
    void *handle; /* sqlite3 * or PGconn * */
    bool readonly;
    int depth;                /* open transactions (0 or 1) */
    uint64_t touched;         /* tables written in the open transaction (writes.c) */
    bool lost;                /* the last call failed for want of the database (the backend says) */
    int allowance_ms;         /* db_set_allowance: a query's bound, negative: none */
    uint64_t deadline_ms;     /* the running query's end (util_mono_ms), 0: none */
    bool overran;             /* the last query was stopped at its deadline (the backend says) */
    struct db_behind *behind; /* write-behind (behind.c), or NULL */
    void (*tx_cb)(void *arg, bool open, bool committed); /* db_on_transaction */
    void *tx_arg;
};

/* Write counting (writes.c): after a statement (sql NULL: a script), and at the end of a
   transaction. */
void db_note_write(struct db *db, const char *sql);
void db_note_end(struct db *db);

/* Write-behind (behind.c), for a connection that has it.  db_behind_gate before a read
   or an insert (-1: the database is unavailable), db_behind_after with its result. */
int db_behind_exec(struct db *db, const char *sql, const struct db_param *p, size_t n, bool bulk,
                   char **cause);
int db_behind_gate(struct db *db, char **cause);
void db_behind_after(struct db *db, int rc, const char *cause, bool insert);
int db_behind_begin(struct db *db, char **cause);
int db_behind_commit(struct db *db, char **cause);
void db_behind_rollback(struct db *db);
void db_behind_free(struct db *db);

/* Named rows (names.c): a table's rows by name, read at once and kept sorted by name. */
struct db_named {
    const char *load; /* SELECT id, name of every row */
    const char *add;  /* its parameters: name, name_hash, name (the first n_add of them) */
    size_t n_add;
};
struct db_name_id {
    char *name;
    long long id;
};
struct db_names {
    struct db_name_id *v;
    size_t n, cap;
};
int db_names_load(struct db *db, const struct db_named *table, struct db_names *t, char **cause);
/* The id of `name`, its row added (and put in `t`) if there is none. */
long long db_names_id(struct db *db, struct db_names *t, const struct db_named *table,
                      const char *name, char **cause);
void db_names_free(struct db_names *t);
/* Runs `head`, groups `group` (of `per` parameters each) joined by ", ", then `tail`, for
   the `n` parameters `p`: DB_BATCH groups a statement.  0, or -1 with *cause. */
#define DB_BATCH 500
int db_exec_batched(struct db *db, const char *head, const char *group, const char *tail,
                    size_t per, const struct db_param *p, size_t n, char **cause);

/* Backends: return NULL with *cause. */
struct db *db_sqlite_open(const char *path, bool readonly, char **cause);
struct db *db_pg_open(const char *conninfo, bool readonly, char **cause);

#endif
