/*
 * Control actions from the web, as Buildbot's data API answers them:
 * `stop` and `rebuild` on a build, `cancel` and `set_priority` on a build
 * request, `pause`,
 * `unpause`, `stop` (graceful shutdown) and `kill` on a worker.  Each is answered exactly once with
 * www_action_reply.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

static void reply_null(struct www_action *act)
{
    www_action_reply(act, "null", 200, 0, NULL);
}

/* Adds a buildset, collapses older requests into it, answers [bsid, {builderid: brid}]. */
static void submit(struct engine *e, struct www_action *act, const char *who, const char *reason,
                   json_t *props, const json_t *sourcestamps, const json_t *builders,
                   long long priority, const struct bs_extra *extra)
{
    json_t *brids = NULL;
    char *cause = NULL;
    struct eng_buildset bs = {who, reason, props, sourcestamps, builders, priority};
    long long bsid = buildset_add(e, &bs, extra, &brids, &cause);
    if (bsid < 0) {
        www_action_reply(act, NULL, 500, -32603, cause);
        engine_db_error("adding a buildset", cause);
        return;
    }
    json_t *result = json_pack("[Io]", (json_int_t)bsid, brids);
    char *text = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
    www_action_reply(act, text, 200, 0, NULL);
    free(text);
    json_decref(result);
}

/* Buildbot's rebuildBuildrequest: a copy of the build's buildset for its builder. */
static void rebuild(struct engine *e, struct www_action *act, long long buildid)
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
        www_action_reply(act, NULL, r == NULL ? 500 : 404, -32603,
                         r == NULL ? cause : "no such build");
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
        www_action_reply(act, NULL, 500, -32603, cause);
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

static void stop_build(struct engine *e, struct www_action *act, long long id, json_t *params)
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
    struct db_param p[] = {DB_INT(brid)};
    char *cause = NULL;
    struct db_res *r =
        db_query(e->db, "SELECT buildsetid FROM buildrequests WHERE id = ?", p, 1, &cause);
    if (r != NULL && db_res_rows(r) > 0) {
        long long bsid = db_res_int(r, 0, 0);
        if (requests_claim(e, brid, &cause) > 0 &&
            requests_complete(e, brid, bsid, RES_CANCELLED, &cause) != 0)
            engine_db_error("cancelling a build request", cause), cause = NULL;
    }
    if (cause != NULL)
        engine_db_error("cancelling a build request", cause);
    db_res_free(r);
    engine_kick(e);
}

/* A request still pending is claimed and completed CANCELLED; a running one's build stops. */
static void cancel_request(struct engine *e, struct www_action *act, long long brid, json_t *params)
{
    engine_cancel_request(e, brid, reason_of(params, "<no reason given>"));
    reply_null(act);
}

/* What Buildbot 4.3's set_priority means to do (its own raises a TypeError): a new
   priority for a request not yet complete. */
static void set_priority(struct engine *e, struct www_action *act, long long brid, json_t *params)
{
    const json_t *prio = json_object_get(params, "priority");
    if (!json_is_integer(prio)) {
        www_action_reply(act, NULL, 400, -32602, "priority must be an integer");
        return;
    }
    struct db_param p[] = {DB_INT(json_integer_value(prio)), DB_INT(brid)};
    char *cause = NULL;
    if (db_exec(e->db, "UPDATE buildrequests SET priority = ? WHERE id = ? AND complete = 0", p, 2,
                &cause) != 0) {
        www_action_reply(act, NULL, 500, -32603, cause);
        engine_db_error("setting a request's priority", cause);
        return;
    }
    reply_null(act);
    engine_kick(e);
}

/* The configured worker a path names, by name or by id (NULL: none such). */
static const char *worker_name(struct engine *e, const char *ident, char *buf, size_t cap)
{
    if (cfg_find_worker(e->cfg, ident) != NULL)
        return ident;
    char *end = NULL;
    long long id = strtoll(ident, &end, 10);
    if (end == ident || *end != '\0')
        return NULL;
    struct db_param p[] = {DB_INT(id)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db, "SELECT name FROM workers WHERE id = ?", p, 1, &cause);
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
static void stop_worker(struct engine *e, struct www_action *act, const char *ident, bool kill)
{
    char buf[256];
    const char *name = worker_name(e, ident, buf, sizeof buf);
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
static void pause_worker(struct engine *e, struct www_action *act, const char *ident, bool pause,
                         json_t *params)
{
    char buf[256];
    const char *name = worker_name(e, ident, buf, sizeof buf);
    if (name != NULL) {
        struct eng_worker *w = engine_worker(e, name);
        if (w != NULL)
            w->paused = pause;
        const char *reason = pause ? json_string_value(json_object_get(params, "reason")) : NULL;
        char *cause = NULL;
        struct db_param p[] = {DB_INT(pause), DB_TEXT(reason), DB_TEXT(name)};
        if (db_exec(e->db, "UPDATE workers SET paused = ?, pause_reason = ? WHERE name = ?", p, 3,
                    &cause) != 0)
            engine_db_error("pausing a worker", cause);
        log_info("worker '%s' %s", name, pause ? "paused" : "unpaused");
        if (!pause)
            engine_kick(e);
    }
    reply_null(act);
}

void engine_control(struct engine *e, struct www_action *act)
{
    const char *path = www_action_path(act), *method = www_action_method(act);
    json_t *params = json_loads(www_action_params(act), 0, NULL);
    if (params == NULL)
        params = json_object();
    char kind[64] = "", ident[256] = "";
    sscanf(path, "%63[^/]/%255s", kind, ident);
    if (util_streq(kind, "builds") && util_streq(method, "rebuild")) {
        rebuild(e, act, atoll(ident));
    } else if (util_streq(kind, "workers") &&
               (util_streq(method, "stop") || util_streq(method, "kill"))) {
        stop_worker(e, act, ident, util_streq(method, "kill"));
    } else if (util_streq(kind, "builds") && util_streq(method, "stop")) {
        stop_build(e, act, atoll(ident), params);
    } else if (util_streq(kind, "buildrequests") && util_streq(method, "set_priority")) {
        set_priority(e, act, atoll(ident), params);
    } else if (util_streq(kind, "buildrequests") && util_streq(method, "cancel")) {
        cancel_request(e, act, atoll(ident), params);
    } else if (util_streq(kind, "workers") &&
               (util_streq(method, "pause") || util_streq(method, "unpause"))) {
        pause_worker(e, act, ident, util_streq(method, "pause"), params);
    } else {
        char *msg = xasprintf("action: %s is not supported", method);
        www_action_reply(act, NULL, 501, -32601, msg);
        free(msg);
    }
    json_decref(params);
}
