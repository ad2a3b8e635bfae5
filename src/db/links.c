/*
 * Which builders a master has and which workers each may run on
 * (builder_masters, configured_workers), made to say what the configuration
 * says at start and at every reconfig, as Buildbot's updateBuilderList and
 * workerConfigured do: the links the configuration no longer has are removed,
 * new ones added, the rest left as they are.  A reconfig that changes nothing
 * reads four tables and writes nothing, where removing every link and adding
 * it again was some 5,000 statements for a thousand builders.  The services
 * the master holds (schedulers, change sources) are claimed the same way:
 * their holders read at once, only what changes written.
 */
#include "db/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_named builders_table = {
    "SELECT id, name FROM builders", "INSERT INTO builders (name, name_hash) VALUES (?, ?)", 2};
static const struct db_named workers_table = {
    "SELECT id, name FROM workers",
    "INSERT INTO workers (name, info, paused, graceful) VALUES (?, '{}', 0, 0)", 1};

/* The master's links as they are, and which of them the configuration keeps. */
struct links {
    struct db_res *bm;  /* builderid, id: ordered by builderid */
    struct db_res *now; /* the same once new rows are added (NULL: none was) */
    struct db_res *cw;  /* buildermasterid, workerid, id: ordered by both */
    bool *bm_kept, *cw_kept;
    struct db_names builders, workers;
    struct db_param *add; /* buildermasterid, workerid of configured_workers rows to add */
    size_t n_add, cap_add;
};

static int links_load(struct db *db, long long masterid, struct links *l, char **cause)
{
    struct db_param p = DB_INT(masterid);
    l->bm = db_query(db,
                     "SELECT builderid, id FROM builder_masters WHERE masterid = ? "
                     "ORDER BY builderid",
                     &p, 1, cause);
    if (l->bm == NULL)
        return -1;
    l->cw = db_query(db,
                     "SELECT cw.buildermasterid, cw.workerid, cw.id FROM configured_workers cw "
                     "JOIN builder_masters bm ON bm.id = cw.buildermasterid "
                     "WHERE bm.masterid = ? ORDER BY cw.buildermasterid, cw.workerid",
                     &p, 1, cause);
    if (l->cw == NULL)
        return -1;
    l->bm_kept = xcalloc(db_res_rows(l->bm) + 1, sizeof *l->bm_kept);
    l->cw_kept = xcalloc(db_res_rows(l->cw) + 1, sizeof *l->cw_kept);
    if (db_names_load(db, &builders_table, &l->builders, cause) < 0 ||
        db_names_load(db, &workers_table, &l->workers, cause) < 0)
        return -1;
    return 0;
}

static void links_free(struct links *l)
{
    db_res_free(l->bm);
    db_res_free(l->now);
    db_res_free(l->cw);
    free(l->bm_kept);
    free(l->cw_kept);
    db_names_free(&l->builders);
    db_names_free(&l->workers);
    free(l->add);
}

/* The row of `r` (ordered by column 0) whose column 0 is `v`, or its number of rows. */
static size_t row_of(const struct db_res *r, long long v)
{
    size_t at = db_res_lower_bound(r, v);
    return at < db_res_rows(r) && db_res_int(r, at, 0) == v ? at : db_res_rows(r);
}

/* Keeps the builder_masters rows of the builders `bids` and adds the missing ones, one
   statement for DB_BATCH of them (after a clean stop, all of them), then reads the rows
   again if it added any. */
static int builder_masters(struct db *db, long long masterid, struct links *l,
                           const long long *bids, size_t n, char **cause)
{
    struct db_param *add = xcalloc(2 * n + 1, sizeof *add);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t row = row_of(l->bm, bids[i]);
        if (row < db_res_rows(l->bm)) {
            l->bm_kept[row] = true;
        } else {
            add[k++] = DB_INT(bids[i]);
            add[k++] = DB_INT(masterid);
        }
    }
    int rc = db_exec_batched(db, "INSERT INTO builder_masters (builderid, masterid) VALUES ",
                             "(?, ?)", "", 2, add, k, cause);
    free(add);
    if (rc < 0 || k == 0)
        return rc;
    struct db_param m = DB_INT(masterid);
    l->now = db_query(db,
                      "SELECT builderid, id FROM builder_masters WHERE masterid = ? "
                      "ORDER BY builderid",
                      &m, 1, cause);
    return l->now == NULL ? -1 : 0;
}

/* Keeps the configured_workers row (bmid, wid) if there is one (old: the builder had its
   links), else has it added. */
static void configured_worker(struct links *l, long long bmid, long long wid, bool old)
{
    for (size_t row = old ? row_of(l->cw, bmid) : db_res_rows(l->cw);
         row < db_res_rows(l->cw) && db_res_int(l->cw, row, 0) == bmid; row++) {
        if (db_res_int(l->cw, row, 1) == wid) {
            l->cw_kept[row] = true;
            return;
        }
    }
    for (size_t i = l->n_add; i >= 2 && l->add[i - 2].i == bmid; i -= 2)
        if (l->add[i - 1].i == wid)
            return; /* a worker named twice */
    l->add = xgrow(l->add, &l->cap_add, l->n_add + 2, sizeof *l->add);
    l->add[l->n_add++] = DB_INT(bmid);
    l->add[l->n_add++] = DB_INT(wid);
}

/* Removes the rows nobody kept: `col` (the id) of `r`'s rows in `table`. */
static int remove_unkept(struct db *db, const char *table, const struct db_res *r, size_t col,
                         const bool *kept, char **cause)
{
    struct db_param *ids = xcalloc(db_res_rows(r) + 1, sizeof *ids);
    size_t n = 0;
    for (size_t row = 0; row < db_res_rows(r); row++)
        if (!kept[row])
            ids[n++] = DB_INT(db_res_int(r, row, col));
    char head[128];
    snprintf(head, sizeof head, "DELETE FROM %s WHERE id IN (", table);
    int rc = db_exec_batched(db, head, "?", ")", 1, ids, n, cause);
    free(ids);
    return rc;
}

static int link_all(struct db *db, long long masterid, struct links *l,
                    const struct db_builder_link *b, size_t n, long long *builderids, char **cause)
{
    for (size_t i = 0; i < n; i++) {
        builderids[i] = db_names_id(db, &l->builders, &builders_table, b[i].name, cause);
        if (builderids[i] < 0)
            return -1;
    }
    if (builder_masters(db, masterid, l, builderids, n, cause) < 0)
        return -1;
    const struct db_res *now = l->now != NULL ? l->now : l->bm;
    for (size_t i = 0; i < n; i++) {
        size_t row = row_of(now, builderids[i]);
        if (row == db_res_rows(now))
            return util_cause(cause, "builder %lld has no builder_masters row", builderids[i]);
        long long bmid = db_res_int(now, row, 1);
        bool old = row_of(l->bm, builderids[i]) < db_res_rows(l->bm);
        for (size_t k = 0; k < b[i].n_workernames; k++) {
            long long wid =
                db_names_id(db, &l->workers, &workers_table, b[i].workernames[k], cause);
            if (wid < 0)
                return -1;
            configured_worker(l, bmid, wid, old);
        }
    }
    return 0;
}

int db_master_link(struct db *db, long long masterid, const struct db_builder_link *b, size_t n,
                   const char *const *workers, size_t n_workers, long long *builderids,
                   char **cause)
{
    struct links l = {0};
    int rc = -1;
    if (links_load(db, masterid, &l, cause) < 0 ||
        link_all(db, masterid, &l, b, n, builderids, cause) < 0)
        goto out;
    for (size_t i = 0; i < n_workers; i++)
        if (db_names_id(db, &l.workers, &workers_table, workers[i], cause) < 0)
            goto out;
    /* the links of the builders that went first: they are among the unkept */
    if (remove_unkept(db, "configured_workers", l.cw, 2, l.cw_kept, cause) < 0 ||
        remove_unkept(db, "builder_masters", l.bm, 1, l.bm_kept, cause) < 0)
        goto out;
    rc = db_exec_batched(db, "INSERT INTO configured_workers (buildermasterid, workerid) VALUES ",
                         "(?, ?)", "", 2, l.add, l.n_add, cause);
out:
    links_free(&l);
    return rc;
}

/* A kind of service a master holds: its named table and the table of its holders. */
struct service {
    struct db_named named;
    const char *holders; /* SELECT id, masterid, 1 if that master is inactive (by id) */
    const char *drop;    /* DELETE ... WHERE id IN ( */
    const char *add;     /* INSERT ... VALUES */
};

static const struct service services[] = {
    [DB_SCHEDULERS] = {{"SELECT id, name FROM schedulers",
                        "INSERT INTO schedulers (name, name_hash, enabled) VALUES (?, ?, 1)", 2},
                       "SELECT h.schedulerid, h.masterid, CASE WHEN m.active = 0 THEN 1 ELSE 0 END "
                       "FROM scheduler_masters h "
                       "LEFT JOIN masters m ON m.id = h.masterid ORDER BY h.schedulerid",
                       "DELETE FROM scheduler_masters WHERE schedulerid IN (",
                       "INSERT INTO scheduler_masters (schedulerid, masterid) VALUES "},
    [DB_CHANGESOURCES] =
        {{"SELECT id, name FROM changesources",
          "INSERT INTO changesources (name, name_hash) VALUES (?, ?)", 2},
         "SELECT h.changesourceid, h.masterid, CASE WHEN m.active = 0 THEN 1 ELSE 0 END "
         "FROM changesource_masters h LEFT JOIN masters m ON m.id = h.masterid "
         "ORDER BY h.changesourceid",
         "DELETE FROM changesource_masters WHERE changesourceid IN (",
         "INSERT INTO changesource_masters (changesourceid, masterid) VALUES "},
};

/* What to change of the holders `h` for the service `id` this master is configured with:
   nothing if it holds it or an active master does; else it is added (after the row of an
   inactive holder is dropped). */
static void claim_one(const struct db_res *h, long long id, long long masterid, bool *kept,
                      struct db_param **drop, size_t *n_drop, struct db_param **add, size_t *n_add)
{
    size_t row = row_of(h, id);
    if (row < db_res_rows(h)) {
        kept[row] = true;
        if (db_res_int(h, row, 1) == masterid || db_res_int(h, row, 2) == 0)
            return; /* ours already, or an active master's */
        (*drop)[(*n_drop)++] = DB_INT(id);
    }
    (*add)[(*n_add)++] = DB_INT(id);
    (*add)[(*n_add)++] = DB_INT(masterid);
}

int db_master_claim(struct db *db, long long masterid, enum db_service kind,
                    const char *const *names, size_t n, char **cause)
{
    const struct service *s = &services[kind];
    struct db_names ids = {0};
    struct db_res *h = NULL;
    int rc = -1;
    if (db_names_load(db, &s->named, &ids, cause) < 0 ||
        (h = db_query(db, s->holders, NULL, 0, cause)) == NULL)
        goto out;
    bool *kept = xcalloc(db_res_rows(h) + 1, sizeof *kept);
    struct db_param *drop = xcalloc(db_res_rows(h) + n + 1, sizeof *drop);
    struct db_param *add = xcalloc(2 * n + 1, sizeof *add);
    size_t n_drop = 0, n_add = 0;
    for (size_t i = 0; i < n; i++) {
        long long id = db_names_id(db, &ids, &s->named, names[i], cause);
        if (id < 0)
            goto fail;
        claim_one(h, id, masterid, kept, &drop, &n_drop, &add, &n_add);
    }
    for (size_t row = 0; row < db_res_rows(h); row++) /* ours, no longer configured */
        if (!kept[row] && db_res_int(h, row, 1) == masterid)
            drop[n_drop++] = DB_INT(db_res_int(h, row, 0));
    if (db_exec_batched(db, s->drop, "?", ")", 1, drop, n_drop, cause) == 0)
        rc = db_exec_batched(db, s->add, "(?, ?)", "", 2, add, n_add, cause);
fail:
    free(kept);
    free(drop);
    free(add);
out:
    db_res_free(h);
    db_names_free(&ids);
    return rc;
}
