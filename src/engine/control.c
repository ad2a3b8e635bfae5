/*
 * Control actions from the web, as Buildbot's data API answers them:
 * `stop` and `rebuild` on a build, `cancel` and `set_priority` on a build
 * request, `pause`, `unpause`, `stop` (graceful shutdown) and `kill` on a
 * worker.  The target comes parsed from the web's route (a build by id, or by its builder and
 * number; a worker by id or name, within the master and builder its path names).  Each is answered
 * exactly once with ctl_reply.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

static void reply_null(struct ctl_action *act)
{
    ctl_reply(act, "null", 200, 0, NULL);
}

/* Adds a buildset, collapses older requests into it, answers [bsid, {builderid: brid}]. */
static void submit(struct engine *e, struct ctl_action *act, const char *who, const char *reason,
                   json_t *props, const json_t *sourcestamps, const json_t *builders,
                   long long priority, const struct bs_extra *extra)
{
    json_t *brids = NULL;
    char *cause = NULL;
    struct eng_buildset bs = {who, reason, props, sourcestamps, builders, priority};
    long long bsid = buildset_add(e, &bs, extra, &brids, &cause);
    if (bsid < 0) {
        ctl_reply(act, NULL, 500, -32603, cause);
        engine_db_error("adding a buildset", cause);
        return;
    }
    json_t *result = json_pack("[Io]", (json_int_t)bsid, brids);
    char *text = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ctl_reply(act, text, 200, 0, NULL);
    free(text);
    json_decref(result);
}

/* Buildbot's rebuildBuildrequest: a copy of the build's buildset for its builder. */
static void rebuild(struct engine *e, struct ctl_action *act, long long buildid)
{
    struct db_param p[] = {DB_INT(buildid)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db,
                                "SELECT bs.id, bs.external_idstring, bs.parent_buildid, "
                                "bs.parent_relationship, bs.rebuilt_buildid, b.name, "
                                "(SELECT MIN(id) FROM builds WHERE buildrequestid = br.id) "
                                "FROM builds x JOIN buildrequests br ON br.id = x.buildrequestid "
                                "JOIN buildsets bs ON bs.id = br.buildsetid "
                                "JOIN builders b ON b.id = br.builderid WHERE x.id = ?",
                                p, 1, &cause);
    if (r == NULL || db_res_rows(r) == 0) {
        ctl_reply(act, NULL, r == NULL ? 500 : 404, -32603, r == NULL ? cause : "no such build");
        if (r == NULL)
            engine_db_error("rebuilding", cause);
        db_res_free(r);
        return;
    }
    long long bsid = db_res_int(r, 0, 0);
    struct bs_extra x = {db_res_text(r, 0, 1), db_res_int(r, 0, 2), db_res_text(r, 0, 3),
                         db_res_null(r, 0, 4) ? db_res_int(r, 0, 6) : db_res_int(r, 0, 4), false};
    struct props bp = {0};
    json_t *stamps = requests_sourcestamps(e, bsid, &cause);
    json_t *props = json_array(), *builders = json_pack("[s]", db_res_text(r, 0, 5));
    if (stamps == NULL || requests_properties(e, bsid, &bp, &cause) != 0) {
        ctl_reply(act, NULL, 500, -32603, cause);
        engine_db_error("rebuilding", cause);
    } else {
        for (size_t i = 0; i < bp.n; i++)
            if (!util_streq(bp.items[i].name, "scheduler"))
                json_array_append_new(props, json_pack("[sOs]", bp.items[i].name, bp.items[i].value,
                                                       bp.items[i].source));
        json_array_append_new(props, json_pack("[sss]", "scheduler", "rebuild", "Scheduler"));
        char *who = xasprintf("rebuild of build %lld", buildid);
        submit(e, act, who, "rebuild", props, stamps, builders, 0, &x);
        free(who);
    }
    props_free(&bp);
    json_decref(stamps);
    json_decref(props);
    json_decref(builders);
    db_res_free(r);
}

static const char *reason_of(const json_t *params, const char *dflt)
{
    const char *r = json_string_value(json_object_get(params, "reason"));
    return r != NULL ? r : dflt;
}

static void stop_build(struct engine *e, struct ctl_action *act, long long id, json_t *params)
{
    for (struct build *b = e->builds; b != NULL; b = b->next)
        if (b->id == id)
            build_stop(b, reason_of(params, "<no reason given>"), RES_CANCELLED);
    reply_null(act);
}

void engine_cancel_request(struct engine *e, long long brid, const char *reason)
{
    for (struct build *b = e->builds; b != NULL; b = b->next) {
        if (b->brid == brid && !b->finished) {
            build_stop(b, reason, RES_CANCELLED);
            return;
        }
    }
    char *cause = NULL;
    struct db_res *r = requests_row(e, brid, &cause);
    if (r != NULL && db_res_rows(r) > 0) {
        long long bsid = db_res_int(r, 0, 0);
        int claimed = requests_claim(e, brid, &cause);
        if (claimed > 0 && requests_complete(e, brid, bsid, RES_CANCELLED, &cause) != 0)
            engine_db_error("cancelling a build request", cause), cause = NULL;
        else if (claimed > 0) /* the botmaster's ('buildrequests', brid, 'cancel') */
            report_request(e, brid, bsid, db_res_text(r, 0, 2), db_res_int(r, 0, 1), true);
    }
    if (cause != NULL)
        engine_db_error("cancelling a build request", cause);
    db_res_free(r);
    engine_kick(e);
}

/* A request still pending is claimed and completed CANCELLED; a running one's build stops. */
static void cancel_request(struct engine *e, struct ctl_action *act, long long brid, json_t *params)
{
    engine_cancel_request(e, brid, reason_of(params, "<no reason given>"));
    reply_null(act);
}

/* What Buildbot 4.3's set_priority means to do (its own raises a TypeError): a new
   priority for a request not yet complete. */
static void set_priority(struct engine *e, struct ctl_action *act, long long brid, json_t *params)
{
    const json_t *prio = json_object_get(params, "priority");
    if (!json_is_integer(prio)) {
        ctl_reply(act, NULL, 400, -32602, "priority must be an integer");
        return;
    }
    struct db_param p[] = {DB_INT(json_integer_value(prio)), DB_INT(brid)};
    char *cause = NULL;
    if (db_exec(e->db, "UPDATE buildrequests SET priority = ? WHERE id = ? AND complete = 0", p, 2,
                &cause) != 0) {
        ctl_reply(act, NULL, 500, -32603, cause);
        engine_db_error("setting a request's priority", cause);
        return;
    }
    reply_null(act);
    engine_kick(e);
}

/* The SQL that finds the worker a target names, as Buildbot's getWorker: by id or name,
   configured on the path's master and builder when the path names them. */
static int worker_sql(const struct ctl_target *t, struct buf *sql, struct db_param *p, size_t *n)
{
    *n = 0;
    buf_addstr(sql, "SELECT w.name FROM workers w WHERE ");
    buf_addstr(sql, t->name != NULL ? "w.name = ?" : "w.id = ?");
    p[(*n)++] = t->name != NULL ? DB_TEXT(t->name) : DB_INT(t->id);
    if (t->masterid < 0 && t->builderid < 0)
        return 0;
    buf_addstr(sql, " AND EXISTS (SELECT 1 FROM configured_workers cw JOIN builder_masters bm "
                    "ON bm.id = cw.buildermasterid WHERE cw.workerid = w.id");
    if (t->masterid >= 0) {
        buf_addstr(sql, " AND bm.masterid = ?");
        p[(*n)++] = DB_INT(t->masterid);
    }
    if (t->builderid >= 0) {
        buf_addstr(sql, " AND bm.builderid = ?");
        p[(*n)++] = DB_INT(t->builderid);
    }
    return buf_addc(sql, ')');
}

/* The configured worker an action names, copied into `buf` (NULL: none such). */
static const char *worker_name(struct engine *e, const struct ctl_target *t, char *buf, size_t cap)
{
    bool plain = t->masterid < 0 && t->builderid < 0;
    if (plain && t->name != NULL)
        return cfg_find_worker(e->cfg, t->name) != NULL ? t->name : NULL;
    if (t->name == NULL && t->id < 0)
        return NULL;
    struct buf sql;
    buf_init(&sql, 0);
    struct db_param p[3];
    size_t n;
    worker_sql(t, &sql, p, &n);
    char *cause = NULL;
    struct db_res *r = db_query(e->db, sql.data, p, n, &cause);
    buf_free(&sql);
    if (r == NULL)
        engine_db_error("finding a worker", cause);
    const char *name = r != NULL && db_res_rows(r) > 0 ? db_res_text(r, 0, 0) : NULL;
    if (name != NULL && cfg_find_worker(e->cfg, name) != NULL)
        snprintf(buf, cap, "%s", name);
    else
        name = NULL;
    db_res_free(r);
    return name != NULL ? buf : NULL;
}

/* stop: a graceful shutdown (Buildbot's); kill: at once. */
static void stop_worker(struct engine *e, struct ctl_action *act, bool kill)
{
    char buf[256];
    const char *name = worker_name(e, ctl_action_target(act), buf, sizeof buf);
    char *cause = NULL;
    if (name != NULL && kill && wk_shutdown(e->wk, name, &cause) != 0) {
        log_warn("%s", cause);
        free(cause);
    } else if (name != NULL && !kill && engine_worker(e, name) != NULL) {
        engine_worker_graceful(e, name);
    }
    reply_null(act);
}

/* A pause is kept in the workers row, so it holds for a worker not connected yet too. */
static void pause_worker(struct engine *e, struct ctl_action *act, bool pause, json_t *params)
{
    char buf[256];
    const char *name = worker_name(e, ctl_action_target(act), buf, sizeof buf);
    if (name != NULL) {
        struct eng_worker *w = engine_worker(e, name);
        if (w != NULL)
            w->paused = pause;
        if (w != NULL && !pause) /* as Buildbot's unpause */
            quarantine_stop(e, w);
        const char *reason = pause ? json_string_value(json_object_get(params, "reason")) : NULL;
        char *cause = NULL;
        struct db_param p[] = {DB_INT(pause), DB_TEXT(reason), DB_TEXT(name)};
        long long id = -1;
        if (db_exec(e->db, "UPDATE workers SET paused = ?, pause_reason = ? WHERE name = ?", p, 3,
                    &cause) != 0 ||
            (id = db_worker_id(e->db, name, &cause)) < 0)
            engine_db_error("pausing a worker", cause);
        else
            engine_publish(e, EV_WORKER, id, EV_STATE_UPDATED);
        log_info("worker '%s' %s", name, pause ? "paused" : "unpaused");
        if (!pause)
            engine_kick(e);
    }
    reply_null(act);
}

/*
 * The build a target names: its id, or Buildbot's getBuildByNumber on the builder the path
 * names by id or by name.  0 and *id, or -1 when there is none such (or a database error,
 * logged).
 */
static int build_id(struct engine *e, const struct ctl_target *t, long long *id)
{
    if (t->id >= 0) {
        *id = t->id;
        return 0;
    }
    struct db_param p[] = {t->name != NULL ? DB_TEXT(t->name) : DB_INT(t->builderid),
                           DB_INT(t->number)};
    char *cause = NULL;
    struct db_res *r =
        db_query(e->db,
                 t->name != NULL ? "SELECT b.id FROM builds b JOIN builders r ON r.id = "
                                   "b.builderid WHERE r.name = ? AND b.number = ?"
                                 : "SELECT id FROM builds WHERE builderid = ? AND number = ?",
                 p, 2, &cause);
    if (r == NULL)
        engine_db_error("finding a build by number", cause);
    int rc = r != NULL && db_res_rows(r) > 0 ? 0 : -1;
    if (rc == 0)
        *id = db_res_int(r, 0, 0);
    db_res_free(r);
    return rc;
}

static void build_action(struct engine *e, struct ctl_action *act, json_t *params)
{
    long long id = -1;
    bool found = build_id(e, ctl_action_target(act), &id) == 0;
    if (ctl_action_kind(act) == CTL_BUILD_REBUILD && found)
        rebuild(e, act, id);
    else if (ctl_action_kind(act) == CTL_BUILD_REBUILD)
        ctl_reply(act, NULL, 404, -32603, "no such build");
    else if (found)
        stop_build(e, act, id, params);
    else
        reply_null(act); /* as a stop of a build that is not running */
}

void engine_control(struct engine *e, struct ctl_action *act)
{
    json_t *params = json_loads(ctl_action_params(act), 0, NULL);
    if (params == NULL)
        params = json_object();
    long long id = ctl_action_target(act)->id;
    switch (ctl_action_kind(act)) {
    case CTL_BUILD_STOP:
    case CTL_BUILD_REBUILD:
        build_action(e, act, params);
        break;
    case CTL_REQUEST_CANCEL:
        cancel_request(e, act, id, params);
        break;
    case CTL_REQUEST_SET_PRIORITY:
        set_priority(e, act, id, params);
        break;
    case CTL_WORKER_STOP:
    case CTL_WORKER_KILL:
        stop_worker(e, act, ctl_action_kind(act) == CTL_WORKER_KILL);
        break;
    case CTL_WORKER_PAUSE:
    case CTL_WORKER_UNPAUSE:
        pause_worker(e, act, ctl_action_kind(act) == CTL_WORKER_PAUSE, params);
        break;
    default: {
        char *msg = xasprintf("action: %s is not supported", ctl_kind_method(ctl_action_kind(act)));
        ctl_reply(act, NULL, 501, -32601, msg);
        free(msg);
    }
    }
    json_decref(params);
}
