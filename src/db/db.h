/*
 * db: the Buildbot 4.3 database, on SQLite or PostgreSQL.
 *
 * A `struct db` is one connection, used by one thread at a time: the engine
 * thread has the only one that writes, web threads each read on their own.
 * Statements are written once with `?` placeholders and the SQL both engines
 * accept (integer booleans, `LIKE`, `LIMIT ? OFFSET ?`); the PostgreSQL
 * backend renumbers the placeholders.  Values always travel as parameters.
 *
 * Results are fetched whole into a `struct db_res` owned by the caller, so a
 * caller bounds memory with LIMIT (the raw log reader walks chunks a few at a
 * time).  schema.c knows the tables: it creates Buildbot 4.3's schema, brings
 * a 3.x database up to it, and tells a caller whether a database can be used.
 * logchunk.c reads and writes Buildbot's log chunk format.
 */
#ifndef BBM_DB_H
#define BBM_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

enum db_kind {
    DB_SQLITE,
    DB_PG,
};

/* A statement parameter.  Text and blobs are borrowed for the call only. */
enum db_ptype {
    DB_P_NULL,
    DB_P_INT,
    DB_P_TEXT,
    DB_P_BLOB,
};

struct db_param {
    enum db_ptype type;
    long long i;
    const char *s;
    size_t len; /* blobs */
};

#define DB_INT(v) ((struct db_param){.type = DB_P_INT, .i = (v)})
#define DB_TEXT(v) ((struct db_param){.type = (v) != NULL ? DB_P_TEXT : DB_P_NULL, .s = (v)})
#define DB_BLOB(p, n) ((struct db_param){.type = DB_P_BLOB, .s = (const char *)(p), .len = (n)})
#define DB_NULL ((struct db_param){.type = DB_P_NULL})

struct db;
struct db_res;

/*
 * Opens a connection.  `url` is Buildbot's db_url: "sqlite:///state.sqlite"
 * (relative to `basedir`), "sqlite:////abs/path", "sqlite://" (in memory) or
 * "postgresql://user:pass@host:port/dbname" ("postgresql+psycopg2://" too).
 * SQLite connections use WAL mode, as Buildbot does.  `readonly` opens a
 * connection that refuses writes.  Returns NULL with *cause on failure.
 * Freed with db_close.
 */
struct db *db_open(const char *url, const char *basedir, bool readonly, char **cause);
void db_close(struct db *db);
enum db_kind db_kind(const struct db *db);

/* Runs a statement that returns no rows.  Returns 0 or -1 with *cause. */
int db_exec(struct db *db, const char *sql, const struct db_param *params, size_t n, char **cause);
/* db_exec for bulk data (log chunks): with write-behind, it finds no reserve past the
   bound of the writes that wait (db_behind_enable). */
int db_exec_bulk(struct db *db, const char *sql, const struct db_param *params, size_t n,
                 char **cause);
/* Runs several `;`-separated statements without parameters (schema scripts). */
int db_exec_script(struct db *db, const char *sql, char **cause);
/*
 * Runs an INSERT into a table whose key column is `id` and stores the new id
 * in *id.  Returns 0, or -1 with *cause; a unique-constraint violation sets
 * *cause and returns DB_CONFLICT so that callers can retry or give up.
 */
#define DB_CONFLICT (-2)
int db_insert(struct db *db, const char *sql, const struct db_param *params, size_t n,
              long long *id, char **cause);
/* db_insert into a table whose key column is `key` (changes: changeid; users: uid). */
int db_insert_key(struct db *db, const char *sql, const struct db_param *params, size_t n,
                  const char *key, long long *id, char **cause);
/* Runs a query; the result is freed with db_res_free.  NULL with *cause on error. */
struct db_res *db_query(struct db *db, const char *sql, const struct db_param *params, size_t n,
                        char **cause);
/*
 * db_query for results made of integer and blob columns only, which
 * PostgreSQL then sends in binary: log chunks are not hex-encoded by the
 * server and decoded again here.  Another column type is an error.
 */
struct db_res *db_query_binary(struct db *db, const char *sql, const struct db_param *params,
                               size_t n, char **cause);

/* Whether the database's plan for the query sorts all its rows (no index gives the order:
   SQLite's "USE TEMP B-TREE FOR ORDER BY", a PostgreSQL Sort node): 1 or 0, -1 with *cause.
   The query is planned, not run. */
int db_sorts(struct db *db, const char *sql, const struct db_param *params, size_t n, char **cause);

int db_begin(struct db *db, char **cause);
int db_commit(struct db *db, char **cause);
/* Whether a transaction is open on `db` (db_begin without its commit or rollback). */
bool db_in_transaction(const struct db *db);
/*
 * Writes this process has made to `tables` (NULL-terminated; NULL: any), each
 * counted once it is done or, in a transaction, once it is committed: an
 * answer computed while this did not change is still what those tables hold.
 */
unsigned long db_writes(const char *const *tables);
/* Rolls back the open transaction, if any; never fails visibly. */
void db_rollback(struct db *db);
/*
 * `cb` is called when a transaction of `db` opens (open true) and when it ends
 * (open false; `committed` when db_commit succeeded, which with write-behind
 * may mean queued).  The engine holds back its events meanwhile (events.h).
 */
void db_on_transaction(struct db *db, void (*cb)(void *arg, bool open, bool committed), void *arg);

/*
 * Did the last call fail for want of the database -- a lost connection, a
 * lock another process holds, a full disk -- rather than for its statement?
 * A PostgreSQL connection found lost is re-established at its next call.
 */
bool db_lost(const struct db *db);

/*
 * A bound on each query of `db` from now on: one that runs past `ms`
 * milliseconds is stopped (SQLite's progress handler, PostgreSQL's cancel)
 * and fails, and db_overran says so; a query that ends in time is not
 * touched.  0 stops each query before it starts (for tests); negative: no
 * bound, as a connection starts.  The web's request threads read with one,
 * to hand what is slow to threads of its own.
 */
void db_set_allowance(struct db *db, int ms);
/* Was the last query stopped at its allowance's end (and not for anything else)? */
bool db_overran(const struct db *db);

/*
 * Write-behind, for the engine's connection (behind.c): from now on a write
 * (db_exec, or a transaction of them) that the database cannot take for
 * being unavailable waits in memory, with every write after it, and is
 * applied in order once the database is back; db_exec then returns 0.  Reads
 * and inserts fail at once while writes wait (db_lost is true).  Bulk writes
 * (db_exec_bulk) wait up to `max_bytes`, others up to 8 MiB more; past that a
 * write fails with a cause that says so.
 */
void db_behind_enable(struct db *db, size_t max_bytes);
/* Batches of writes waiting, and their bytes. */
size_t db_behind_waiting(const struct db *db);
size_t db_behind_bytes(const struct db *db);
/* Whether the last attempt found the database unavailable; *cause (may be NULL) gets why
   (borrowed until the next call). */
bool db_behind_down(const struct db *db, const char **cause);
/* Applies the writes that wait if their next attempt is due (`now`: at once, backoff or
   not), and asks the database whether it is back when nothing waits: 1 once the database
   is back after being unavailable (however that was found), -1 while it is unavailable,
   0 otherwise. */
int db_behind_retry(struct db *db, bool now);

/*
 * SQLite: turns the automatic WAL checkpoint of `writer` off and starts a
 * thread that checkpoints the database of `url` on its own connection every
 * `interval_ms` (checkpoint.c).  NULL for PostgreSQL, or with *cause.
 */
struct db_checkpointer;
struct db_checkpointer *db_checkpointer_start(struct db *writer, const char *url,
                                              const char *basedir, unsigned interval_ms,
                                              char **cause);
/* Stops the thread and closes its connection (NULL: nothing). */
void db_checkpointer_stop(struct db_checkpointer *k);

/* Does the table exist?  (-1 with *cause on error.) */
int db_has_table(struct db *db, const char *table, char **cause);

/* Reading a result.  Rows and columns count from 0. */
size_t db_res_rows(const struct db_res *r);
size_t db_res_cols(const struct db_res *r);
bool db_res_null(const struct db_res *r, size_t row, size_t col);
/* An integer column (0 when NULL or not a number). */
long long db_res_int(const struct db_res *r, size_t row, size_t col);
/* In a result ordered by its integer column 0: the first row whose column 0 is at least `v`
   (the number of rows when none is). */
size_t db_res_lower_bound(const struct db_res *r, long long v);
/* A text column, NUL-terminated; NULL when the value is NULL. */
const char *db_res_text(const struct db_res *r, size_t row, size_t col);
/* A blob column; *len gets its size.  NULL when the value is NULL. */
const unsigned char *db_res_blob(const struct db_res *r, size_t row, size_t col, size_t *len);
void db_res_free(struct db_res *r);

/*
 * The lower-case hex SHA-1 that Buildbot stores in name_hash / ss_hash columns,
 * of the values joined by NUL bytes; a NULL value counts as the byte 0xF5.
 * `out` gets 41 bytes.
 */
void db_hash(const char *const *values, size_t n, char out[41]);

/* Masters, builders and workers (masters.c).  Ids, or -1 with *cause. */

/* Finds or adds the master row named "<hostname>:<basedir>", marks it active and with no
   connected workers. */
long long db_master_register(struct db *db, const char *name, long long now, char **cause);
long long db_builder_id(struct db *db, const char *name, char **cause);
long long db_worker_id(struct db *db, const char *name, char **cause);
/* Removes a master's builder_masters, configured_workers, scheduler_masters and
   changesource_masters rows. */
int db_master_unlink(struct db *db, long long masterid, char **cause);
long long db_scheduler_id(struct db *db, const char *name, char **cause);
/* A configured builder and the workers it may run on. */
struct db_builder_link {
    const char *name;
    char *const *workernames;
    size_t n_workernames;
};
/*
 * Makes the master's builder_masters and configured_workers rows say `b` (links.c), as
 * Buildbot's updateBuilderList and workerConfigured do: builders and workers are found by
 * name or added (the `workers` too, configured or not on a builder), links the
 * configuration no longer has are removed, new ones added, the others left as they are.
 * builderids[i] receives the id of b[i].  Run it inside the caller's transaction.
 * 0, or -1 with *cause.
 */
int db_master_link(struct db *db, long long masterid, const struct db_builder_link *b, size_t n,
                   const char *const *workers, size_t n_workers, long long *builderids,
                   char **cause);
/*
 * Makes the master the holder of the services (schedulers or change sources) named
 * `names`, found by name or added (links.c), as claiming each in turn would: one held by
 * an active master stays that master's, one held by an inactive master becomes this one's;
 * and releases those it holds that are not named.  0, or -1 with *cause.
 */
enum db_service { DB_SCHEDULERS, DB_CHANGESOURCES };
int db_master_claim(struct db *db, long long masterid, enum db_service kind,
                    const char *const *names, size_t n, char **cause);
/*
 * What the configuration says of builders (builder_info.c), written as Buildbot's
 * updateBuilderInfo writes it: description, description_format (description_html NULL),
 * projectid (the project found or added by name) and the tags, whose builders_tags links
 * are replaced in the order given.  Builders whose rows already say this are not written.
 * Run it inside the caller's transaction.  0, or -1 with *cause.
 */
struct db_builder_info {
    long long builderid;
    const char *description;        /* NULL: none */
    const char *description_format; /* NULL: none */
    const char *project;            /* a project name; NULL: none */
    char *const *tags;              /* distinct names */
    size_t n_tags;
};
int db_builders_info_set(struct db *db, const struct db_builder_info *b, size_t n, char **cause);
/* Unlinks the master, forgets its connected workers and marks it inactive (a clean stop). */
int db_master_deactivate(struct db *db, long long masterid, char **cause);
/* A worker attached to this master: its connected_workers row, and its info (JSON text). */
int db_worker_connected(struct db *db, long long masterid, const char *name, const char *info,
                        char **cause);
int db_worker_disconnected(struct db *db, long long masterid, const char *name, char **cause);
/*
 * Buildbot's findSourceStampId (no patch): the source stamp with these fields,
 * added if new.  `branch` and `revision` may be NULL (stored NULL, hashed as
 * Buildbot hashes None); the others are text.
 */
/* Buildbot's state of an object (a scheduler, a change source): the objects row named
   `name` of class `class_name` ("Nightly"...), added if new. */
long long db_object_id(struct db *db, const char *name, const char *class_name, char **cause);
/* The JSON text stored under `name` in *value (malloc'd; NULL when none).  0 or -1. */
int db_state_get(struct db *db, long long objectid, const char *name, char **value, char **cause);
int db_state_set(struct db *db, long long objectid, const char *name, const char *value,
                 char **cause);
/* Buildbot's atomicCreateState: the JSON text under `name` in *out (malloc'd), stored as
   `value` first if there is none (another master's value wins a race).  0 or -1. */
int db_state_create(struct db *db, long long objectid, const char *name, const char *value,
                    char **out, char **cause);
long long db_sourcestamp_id(struct db *db, const char *branch, const char *revision,
                            const char *repository, const char *project, const char *codebase,
                            long long now, char **cause);

/*
 * Old log chunks (prune.c): Buildbot's deleteOldLogChunks in bounded steps, for the janitor.
 * Each returns 0, or -1 with *cause; none holds the database longer than its window.
 */
/* The newest id of the steps (hi - window, hi] started before `before` (epoch seconds) in
 *found, 0 if none. */
int db_prune_step_window(struct db *db, long long hi, long long window, long long before,
                         long long *found, char **cause);
/* The highest step id (0: none). */
int db_prune_steps_top(struct db *db, long long *top, char **cause);
/* The lowest and highest log ids (0 and 0: no logs). */
int db_prune_log_ids(struct db *db, long long *first, long long *last, char **cause);
/* Marks the logs [lo, hi) of steps up to `stepmax` deleted (type 'd'); *marked gets how
   many were marked now. */
int db_prune_mark_logs(struct db *db, long long lo, long long hi, long long stepmax,
                       long long *marked, char **cause);
/* The runs of consecutive deleted logs among the logs [lo, hi), as [first, last] ids in
   spans (room for (hi - lo + 1) / 2 + 1); *n gets how many. */
int db_prune_deleted_spans(struct db *db, long long lo, long long hi, long long (*spans)[2],
                           size_t *n, char **cause);
/* Deletes up to `max` chunks of the logs [from, to] (a span), in the order of their log and
   lines: *deleted gets how many, *next the log to start from next time (0: none left). */
int db_prune_chunks(struct db *db, long long from, long long to, long long max, long long *deleted,
                    long long *next, char **cause);

/*
 * Old builds and changes (horizon.c), for the janitor's buildHorizon and changeHorizon:
 * each stage changes at most `max` rows and returns 0, or -1 with *cause.
 */
#define DB_HORIZON_BUILD_STAGES 9  /* log chunks and logs, ..., the build */
#define DB_HORIZON_CHANGE_STAGES 6 /* files, ..., the change */
/* Stage `stage` of deleting build `buildid`: *rows gets the rows deleted or set, *more
   whether the stage has more to do. */
int db_horizon_build_stage(struct db *db, int stage, long long buildid, long long max,
                           long long *rows, bool *more, char **cause);
int db_horizon_change_stage(struct db *db, int stage, long long changeid, long long max,
                            long long *rows, bool *more, char **cause);
/* The highest build id (changes: change id), 0 if none. */
int db_horizon_top(struct db *db, bool changes, long long *top, char **cause);
/* The lowest id in (after, after + window] of a complete build that completed before
   `before` (changes: of a change whose when_timestamp is before it), 0 if none. */
int db_horizon_next_old(struct db *db, bool changes, long long after, long long window,
                        long long before, long long *found, char **cause);

/* Schema (schema.c). */

/* The alembic revision Buildbot 4.3 writes, and the oldest this can upgrade. */
#define DB_SCHEMA_HEAD "067"
#define DB_SCHEMA_OLDEST "059"

enum db_schema_state {
    DB_SCHEMA_EMPTY,   /* no tables at all: upgrade-master creates them */
    DB_SCHEMA_OLD,     /* a Buildbot database older than 4.3: upgrade-master upgrades */
    DB_SCHEMA_CURRENT, /* Buildbot 4.3's: ready */
    DB_SCHEMA_NEWER,   /* a newer Buildbot's: refused */
    DB_SCHEMA_FOREIGN, /* tables, but not Buildbot's, or too old: refused */
};

/*
 * Looks at the database.  *version gets the alembic revision found (a
 * malloc'd string, or NULL when there is none); *cause says, for OLD, NEWER
 * and FOREIGN, what was found and what to do.  Returns the state, or -1 with
 * *cause if the database could not be read.
 */
int db_schema_check(struct db *db, char **version, char **cause);
/*
 * Creates Buildbot 4.3's schema in an empty database, or runs the migrations
 * from the found revision up to 4.3, in one transaction where the engine
 * allows it.  Does nothing on a current database.  `say` (may be NULL) gets
 * one line per step for the operator.  Returns 0 or -1 with *cause; a refused
 * database is left untouched.
 */
int db_schema_upgrade(struct db *db, void (*say)(const char *line, void *arg), void *arg,
                      char **cause);

/* Log chunks (logchunk.c). */

/* Buildbot's `logchunks.compressed` codes. */
enum db_chunk_codec {
    DB_CHUNK_RAW = 0,
    DB_CHUNK_ZLIB = 1, /* "gz" */
    DB_CHUNK_BZ2 = 2,
    DB_CHUNK_LZ4 = 3, /* python-lz4 block: 4-byte LE size, then the block */
    DB_CHUNK_ZSTD = 4,
    DB_CHUNK_BROTLI = 5,
};

/* The largest decompressed chunk accepted (Buildbot writes at most 64 KiB). */
#define DB_CHUNK_MAX (1024 * 1024)

/*
 * Appends the decompressed content of a chunk stored with `codec` to `out`.
 * Returns 0, or -1 with *cause for an unknown codec, corrupt data or content
 * past DB_CHUNK_MAX.
 */
int db_chunk_decode(int codec, const unsigned char *in, size_t len, struct buf *out, char **cause);
/*
 * Encodes `len` bytes of chunk content as Buildbot 4.3 does: with the codec *codec
 * names (DB_CHUNK_ZSTD: a zstd frame at level 1, with its content size), or raw when
 * that is not smaller; *codec gets the code stored with it.  Thread-safe: each thread
 * keeps its own zstd contexts.
 */
int db_chunk_encode(const char *in, size_t len, struct buf *out, int *codec, char **cause);

#endif
