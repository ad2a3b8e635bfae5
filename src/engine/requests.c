/*
 * Buildsets, source stamps, build requests and their claims, in the rows
 * Buildbot 4.3 writes: a buildset and its requests are one transaction;
 * properties are stored as JSON [value, source]; a pending request has
 * results -1; a claim is a buildrequest_claims row whose primary key makes a
 * second claim fail, so two masters on one database never run one request
 * twice.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

long long engine_now(void)
{
    return (long long)util_now();
}

static const char *ss_field(const json_t *ss, const char *key)
{
    const char *v = json_string_value(json_object_get(ss, key));
    return v != NULL ? v : "";
}

/* The source stamp's id: branch and revision may be null, as Buildbot's. */
static long long sourcestamp_id(struct engine *e, const json_t *ss, char **cause)
{
    return db_sourcestamp_id(e->db, json_string_value(json_object_get(ss, "branch")),
                             json_string_value(json_object_get(ss, "revision")),
                             ss_field(ss, "repository"), ss_field(ss, "project"),
                             ss_field(ss, "codebase"), engine_now(), cause);
}

/* Python's json.dumps (", " and ": " separators, ASCII only). */
static char *py_dumps(const json_t *v)
{
    return json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
}

static int add_rows(struct engine *e, long long bsid, const json_t *properties,
                    const long long *ssids, size_t n_ss, char **cause)
{
    size_t i;
    const json_t *pr;
    json_array_foreach(properties, i, pr)
    {
        json_t *pair = json_pack("[OO]", json_array_get(pr, 1), json_array_get(pr, 2));
        char *text = py_dumps(pair);
        json_decref(pair);
        struct db_param p[] = {DB_INT(bsid), DB_TEXT(json_string_value(json_array_get(pr, 0))),
                               DB_TEXT(text)};
        int rc = db_exec(e->db,
                         "INSERT INTO buildset_properties (buildsetid, property_name, "
                         "property_value) VALUES (?, ?, ?)",
                         p, 3, cause);
        free(text);
        if (rc != 0)
            return -1;
    }
    for (size_t k = 0; k < n_ss; k++) {
        struct db_param p[] = {DB_INT(bsid), DB_INT(ssids[k])};
        long long id;
        if (db_insert(e->db,
                      "INSERT INTO buildset_sourcestamps (buildsetid, sourcestampid) VALUES (?, ?)",
                      p, 2, &id, cause) != 0)
            return -1;
    }
    return 0;
}

static int add_requests(struct engine *e, long long bsid, const json_t *builders,
                        long long priority, long long now, bool waited_for, json_t *brids,
                        json_t *made, char **cause)
{
    size_t i;
    const json_t *name;
    json_array_foreach(builders, i, name)
    {
        long long builderid = db_builder_id(e->db, json_string_value(name), cause), brid;
        if (builderid < 0)
            return -1;
        struct db_param p[] = {DB_INT(bsid), DB_INT(builderid), DB_INT(priority), DB_INT(now),
                               DB_INT(waited_for)};
        if (db_insert(e->db,
                      "INSERT INTO buildrequests (buildsetid, builderid, priority, complete, "
                      "results, submitted_at, complete_at, waited_for) "
                      "VALUES (?, ?, ?, 0, -1, ?, NULL, ?)",
                      p, 5, &brid, cause) != 0)
            return -1;
        char key[32];
        snprintf(key, sizeof key, "%lld", builderid);
        json_object_set_new(brids, key, json_integer(brid));
        json_array_append_new(made,
                              json_pack("[OII]", name, (json_int_t)builderid, (json_int_t)brid));
    }
    return 0;
}

static struct db_param opt_id(long long id)
{
    return id > 0 ? DB_INT(id) : DB_NULL;
}

long long requests_add_buildset(struct engine *e, const char *reason, json_t *properties,
                                const json_t *sourcestamps, const json_t *builders,
                                long long priority, const struct bs_extra *extra, json_t **brids,
                                char **cause)
{
    static const struct bs_extra none = {0};
    const struct bs_extra *x = extra != NULL ? extra : &none;
    size_t n_ss = json_array_size(sourcestamps);
    long long *ssids = xcalloc(n_ss + 1, sizeof *ssids);
    for (size_t i = 0; i < n_ss; i++) {
        ssids[i] = sourcestamp_id(e, json_array_get(sourcestamps, i), cause);
        if (ssids[i] < 0) {
            free(ssids);
            return -1;
        }
    }
    long long now = engine_now(), bsid = -1;
    *brids = json_object();
    json_t *made = json_array(); /* [builder, builderid, brid] of each request */
    struct db_param p[] = {DB_TEXT(x->external_idstring),
                           DB_TEXT(reason),
                           DB_INT(now),
                           opt_id(x->parent_buildid),
                           DB_TEXT(x->parent_relationship),
                           opt_id(x->rebuilt_buildid)};
    if (db_begin(e->db, cause) != 0)
        goto fail;
    if (db_insert(e->db,
                  "INSERT INTO buildsets (external_idstring, reason, submitted_at, complete, "
                  "complete_at, results, parent_buildid, parent_relationship, rebuilt_buildid) "
                  "VALUES (?, ?, ?, 0, NULL, -1, ?, ?, ?)",
                  p, 6, &bsid, cause) != 0 ||
        add_rows(e, bsid, properties, ssids, n_ss, cause) != 0 ||
        add_requests(e, bsid, builders, priority, now, x->waited_for, *brids, made, cause) != 0 ||
        db_commit(e->db, cause) != 0) {
        db_rollback(e->db);
        goto fail;
    }
    free(ssids);
    const char *key;
    json_t *brid;
    json_object_foreach(*brids, key, brid)
    {
        engine_publish(e, EV_BUILDREQUEST, json_integer_value(brid), EV_NEW);
    }
    engine_publish(e, EV_BUILDSET, bsid, EV_NEW);
    size_t i;
    json_t *m;
    json_array_foreach(made, i, m)
    {
        report_request(e, json_integer_value(json_array_get(m, 2)), bsid,
                       json_string_value(json_array_get(m, 0)),
                       json_integer_value(json_array_get(m, 1)), false);
    }
    json_decref(made);
    return bsid;
fail:
    json_decref(made);
    free(ssids);
    json_decref(*brids);
    *brids = NULL;
    return -1;
}

long long buildset_add(struct engine *e, const struct eng_buildset *bs,
                       const struct bs_extra *extra, json_t **brids, char **cause)
{
    json_t *ids = NULL;
    long long bsid = requests_add_buildset(e, bs->reason, bs->properties, bs->sourcestamps,
                                           bs->builders, bs->priority, extra, &ids, cause);
    if (bsid < 0)
        return -1;
    log_info("%s: buildset %lld added (%s)", bs->who, bsid, bs->reason);
    char *why = NULL;
    int collapsed = requests_collapse(e, ids, &why);
    if (collapsed < 0)
        engine_db_error("collapsing build requests", why);
    else if (collapsed > 0)
        log_info("%d older build request(s) collapsed into buildset %lld", collapsed, bsid);
    if (brids != NULL)
        *brids = ids;
    else
        json_decref(ids);
    engine_kick(e);
    return bsid;
}

long long engine_add_buildset(struct engine *e, const struct eng_buildset *bs, json_t **brids,
                              char **cause)
{
    return buildset_add(e, bs, NULL, brids, cause);
}

int requests_claim(struct engine *e, long long brid, char **cause)
{
    struct db_param p[] = {DB_INT(brid), DB_INT(e->masterid), DB_INT(engine_now())};
    int rc = db_exec(e->db,
                     "INSERT INTO buildrequest_claims (brid, masterid, claimed_at) "
                     "VALUES (?, ?, ?)",
                     p, 3, cause);
    if (rc == DB_CONFLICT) {
        free(*cause);
        *cause = NULL;
        return 0;
    }
    if (rc != 0)
        return -1;
    engine_publish(e, EV_BUILDREQUEST, brid, EV_CLAIMED);
    return 1;
}

struct db_res *requests_row(struct engine *e, long long brid, char **cause)
{
    struct db_param p[] = {DB_INT(brid)};
    return db_query(e->db,
                    "SELECT br.buildsetid, br.builderid, b.name FROM buildrequests br "
                    "JOIN builders b ON b.id = br.builderid WHERE br.id = ?",
                    p, 1, cause);
}

int requests_unclaim(struct engine *e, long long brid, char **cause)
{
    struct db_param p[] = {DB_INT(brid), DB_INT(e->masterid)};
    if (db_exec(e->db, "DELETE FROM buildrequest_claims WHERE brid = ? AND masterid = ?", p, 2,
                cause) != 0)
        return -1;
    engine_publish(e, EV_BUILDREQUEST, brid, EV_UNCLAIMED);
    return 0;
}

/* The buildset's complete event and its reports (BuildSetStatusGenerator), once its last
   request is complete (read back: the statement that completes it does not say whether it
   did). */
static void buildset_completed(struct engine *e, long long bsid)
{
    struct db_param p[] = {DB_INT(bsid)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db, "SELECT complete FROM buildsets WHERE id = ?", p, 1, &cause);
    if (r == NULL) { /* the database is away: the event is not published */
        log_error("buildset %lld: its completion is neither published nor reported: %s", bsid,
                  cause);
        free(cause);
        return;
    }
    bool complete = db_res_rows(r) > 0 && db_res_int(r, 0, 0) != 0;
    db_res_free(r);
    if (complete && e->bus != NULL)
        engine_publish(e, EV_BUILDSET, bsid, EV_COMPLETE);
    if (complete)
        report_buildset(e, bsid);
}

/*
 * The buildset is complete when its last request is; its results are the worst of theirs
 * (res_worst's order: skipped, success, warnings, failure, exception, retry, cancelled).
 * One statement that only writes, so that it can wait for an unavailable database with
 * the write before it (db_behind_enable).
 */
static int maybe_buildset_complete(struct engine *e, long long bsid, long long now, char **cause)
{
    struct db_param u[] = {DB_INT(now), DB_INT(bsid), DB_INT(bsid), DB_INT(bsid)};
    return db_exec(e->db,
                   "UPDATE buildsets SET complete = 1, complete_at = ?, results = "
                   "(SELECT CASE MAX(CASE results WHEN 3 THEN 0 WHEN 0 THEN 1 WHEN 1 THEN 2 "
                   "WHEN 2 THEN 3 ELSE results END) WHEN 0 THEN 3 WHEN 1 THEN 0 WHEN 2 THEN 1 "
                   "WHEN 3 THEN 2 ELSE MAX(results) END FROM buildrequests WHERE buildsetid = ?) "
                   "WHERE id = ? AND complete = 0 AND NOT EXISTS "
                   "(SELECT 1 FROM buildrequests WHERE buildsetid = ? AND complete = 0)",
                   u, 4, cause);
}

int requests_complete(struct engine *e, long long brid, long long bsid, int results, char **cause)
{
    long long now = engine_now();
    struct db_param p[] = {DB_INT(results), DB_INT(now), DB_INT(brid)};
    if (db_begin(e->db, cause) != 0)
        return -1;
    if (db_exec(e->db,
                "UPDATE buildrequests SET complete = 1, results = ?, complete_at = ? "
                "WHERE id = ? AND complete = 0",
                p, 3, cause) != 0 ||
        maybe_buildset_complete(e, bsid, now, cause) != 0 || db_commit(e->db, cause) != 0) {
        db_rollback(e->db);
        return -1;
    }
    engine_publish(e, EV_BUILDREQUEST, brid, EV_COMPLETE);
    if (e->bus != NULL || report_buildset_wanted(e))
        buildset_completed(e, bsid);
    return 0;
}

json_t *requests_sourcestamps(struct engine *e, long long bsid, char **cause)
{
    struct db_param p[] = {DB_INT(bsid)};
    struct db_res *r = db_query(e->db,
                                "SELECT ss.codebase, ss.branch, ss.revision, ss.repository, "
                                "ss.project FROM buildset_sourcestamps bs JOIN sourcestamps ss "
                                "ON ss.id = bs.sourcestampid WHERE bs.buildsetid = ? "
                                "ORDER BY bs.id",
                                p, 1, cause);
    if (r == NULL)
        return NULL;
    static const char *const keys[] = {"codebase", "branch", "revision", "repository", "project"};
    json_t *list = json_array();
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *ss = json_object();
        for (size_t k = 0; k < UTIL_NELEM(keys); k++) {
            const char *v = db_res_text(r, i, k);
            json_object_set_new(ss, keys[k], v != NULL ? json_string(v) : json_null());
        }
        json_array_append_new(list, ss);
    }
    db_res_free(r);
    return list;
}

int requests_properties(struct engine *e, long long bsid, struct props *p, char **cause)
{
    struct db_param q[] = {DB_INT(bsid)};
    struct db_res *r = db_query(e->db,
                                "SELECT property_name, property_value FROM buildset_properties "
                                "WHERE buildsetid = ?",
                                q, 1, cause);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        const char *text = db_res_text(r, i, 1);
        json_t *pair = text != NULL ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
        if (json_is_array(pair) && json_array_size(pair) == 2)
            props_set(p, db_res_text(r, i, 0), json_incref(json_array_get(pair, 0)),
                      json_string_value(json_array_get(pair, 1)));
        json_decref(pair);
    }
    db_res_free(r);
    return 0;
}

/* The steps left running by builds of `masterid`: logs finished, steps RETRY. */
static int finish_steps(struct engine *e, long long buildid, long long now, char **cause)
{
    struct db_param p[] = {DB_INT(buildid)};
    if (db_exec(e->db,
                "UPDATE logs SET complete = 1 WHERE complete = 0 AND stepid IN "
                "(SELECT id FROM steps WHERE buildid = ? AND results IS NULL)",
                p, 1, cause) != 0)
        return -1;
    struct db_param s[] = {DB_INT(now), DB_INT(RES_RETRY), DB_INT(buildid)};
    return db_exec(e->db,
                   "UPDATE steps SET complete_at = ?, results = ?, hidden = 0 "
                   "WHERE buildid = ? AND results IS NULL",
                   s, 3, cause);
}

int requests_housekeeping(struct engine *e, long long masterid, char **cause)
{
    struct db_param p[] = {DB_INT(masterid)};
    struct db_res *r = db_query(
        e->db, "SELECT id FROM builds WHERE masterid = ? AND complete_at IS NULL", p, 1, cause);
    if (r == NULL)
        return -1;
    long long now = engine_now();
    int rc = db_begin(e->db, cause);
    for (size_t i = 0; rc == 0 && i < db_res_rows(r); i++) {
        long long id = db_res_int(r, i, 0);
        struct db_param b[] = {DB_INT(now), DB_INT(RES_RETRY), DB_INT(id)};
        rc = finish_steps(e, id, now, cause);
        if (rc == 0)
            rc = db_exec(e->db, "UPDATE builds SET complete_at = ?, results = ? WHERE id = ?", b, 3,
                         cause);
    }
    db_res_free(r);
    if (rc == 0)
        rc = db_exec(e->db,
                     "DELETE FROM buildrequest_claims WHERE masterid = ? AND brid IN "
                     "(SELECT id FROM buildrequests WHERE complete = 0)",
                     p, 1, cause);
    if (rc == 0)
        rc = db_commit(e->db, cause);
    if (rc != 0)
        db_rollback(e->db);
    return rc;
}

/* Is build `id` running in this engine? */
static bool running(const struct engine *e, long long id)
{
    for (const struct build *b = e->builds; b != NULL; b = b->next)
        if (!b->finished && b->id == id)
            return true;
    return false;
}

/* A build of this master that is not running any more, with rows left unfinished: its steps
   and logs are finished and, if the build itself was left running, it ends RETRY and its
   request is given back, as at start. */
static int repair_build(struct engine *e, long long id, bool complete, long long brid,
                        long long now, char **cause)
{
    if (finish_steps(e, id, now, cause) != 0)
        return -1;
    if (complete)
        return 0;
    struct db_param b[] = {DB_INT(now), DB_INT(RES_RETRY), DB_INT(id)};
    log_warn("build %lld: finished RETRY by the repair: its rows were left running", id);
    if (db_exec(e->db,
                "UPDATE builds SET complete_at = ?, results = ? WHERE id = ? AND "
                "complete_at IS NULL",
                b, 3, cause) != 0)
        return -1;
    engine_publish(e, EV_BUILD, id, EV_FINISHED);
    return requests_unclaim(e, brid, cause);
}

/* The builds the first repair looks at: the last this many. */
#define REPAIR_FIRST 1000

int requests_repair(struct engine *e, char **cause)
{
    struct db_res *m = db_query(e->db, "SELECT MAX(id) FROM builds", NULL, 0, cause);
    if (m == NULL)
        return -1;
    long long next = db_res_int(m, 0, 0) + 1;
    db_res_free(m);
    if (e->repair_from == 0) /* the first repair: the last REPAIR_FIRST builds */
        e->repair_from = next > REPAIR_FIRST ? next - REPAIR_FIRST : 1;
    /* only builds with something left running: the others cost nothing */
    struct db_param p[] = {DB_INT(e->repair_from), DB_INT(e->masterid)};
    struct db_res *r =
        db_query(e->db,
                 "SELECT b.id, b.complete_at, b.buildrequestid FROM builds b WHERE b.id >= ? AND "
                 "b.masterid = ? AND (b.complete_at IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE "
                 "s.buildid = b.id AND s.results IS NULL)) ORDER BY b.id",
                 p, 2, cause);
    if (r == NULL)
        return -1;
    long long now = engine_now();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < db_res_rows(r); i++) {
        long long id = db_res_int(r, i, 0);
        if (!running(e, id))
            rc = repair_build(e, id, !db_res_null(r, i, 1), db_res_int(r, i, 2), now, cause);
    }
    db_res_free(r);
    for (const struct build *b = e->builds; b != NULL; b = b->next) /* from the oldest running */
        if (!b->finished && b->id < next)
            next = b->id;
    if (rc == 0)
        e->repair_from = next;
    return rc;
}
