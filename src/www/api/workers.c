/*
 * Workers, masters, schedulers and change sources: the resources that say
 * which master runs what.
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

static const struct www_field worker_fields[] = {
    {"workerid", WWW_F_INT, "w.id"},
    {"name", WWW_F_STR, "w.name"},
    {"workerinfo", WWW_F_OBJECT, "w.info"},
    {"paused", WWW_F_BOOL, "w.paused"},
    {"pause_reason", WWW_F_STR, "w.pause_reason"},
    {"graceful", WWW_F_BOOL, "w.graceful"},
    {"configured_on", WWW_F_OBJECT, NULL},
    {"connected_to", WWW_F_OBJECT, NULL},
};
static const struct www_rtype worker_type = {"workers", API_FIELDS(worker_fields)};
static const struct api_source workers_src = {&worker_type, "workers w", "w.id", false};

/*
 * configured_on and connected_to.  As in Buildbot, where the path names a master or a
 * builder, configured_on lists only that master's or that builder's entries (the worker
 * query's own conditions select them), and connected_to only that master.
 */
static int worker_links(struct www_req *req, json_t *list, char **cause)
{
    long long masterid = -1, builderid = -1;
    www_arg_num(&req->args, "masterid", &masterid);
    www_arg_num(&req->args, "builderid", &builderid);
    struct db_param p[6] = {DB_INT(masterid), DB_INT(masterid), DB_INT(builderid),
                            DB_INT(builderid)};
    if (!api_id_range(list, "workerid", p + 4))
        return 0;
    struct db_res *cfg = api_select(req,
                                    "SELECT cw.workerid, bm.builderid, bm.masterid "
                                    "FROM configured_workers cw JOIN builder_masters bm "
                                    "ON bm.id = cw.buildermasterid "
                                    "WHERE (? < 0 OR bm.masterid = ?) "
                                    "AND (? < 0 OR bm.builderid = ?) "
                                    "AND cw.workerid BETWEEN ? AND ? "
                                    "ORDER BY cw.workerid, cw.id",
                                    p, 6, cause);
    struct db_param pc[4] = {p[0], p[1], p[4], p[5]};
    struct db_res *con = cfg == NULL
                             ? NULL
                             : api_select(req,
                                          "SELECT workerid, masterid FROM connected_workers "
                                          "WHERE (? < 0 OR masterid = ?) "
                                          "AND workerid BETWEEN ? AND ? "
                                          "ORDER BY workerid, id",
                                          pc, 4, cause);
    if (con == NULL) {
        db_res_free(cfg);
        return -1;
    }
    size_t i;
    json_t *w;
    json_array_foreach(list, i, w)
    {
        long long id = api_obj_int(w, "workerid");
        json_t *on = json_array(), *to = json_array();
        for (size_t r = api_first_row(cfg, id); r < db_res_rows(cfg) && db_res_int(cfg, r, 0) == id;
             r++)
            json_array_append_new(on, json_pack("{sIsI}", "builderid", db_res_int(cfg, r, 1),
                                                "masterid", db_res_int(cfg, r, 2)));
        for (size_t r = api_first_row(con, id); r < db_res_rows(con) && db_res_int(con, r, 0) == id;
             r++)
            json_array_append_new(to, json_pack("{sI}", "masterid", db_res_int(con, r, 1)));
        json_object_set_new(w, "configured_on", on);
        json_object_set_new(w, "connected_to", to);
    }
    db_res_free(cfg);
    db_res_free(con);
    return 0;
}

/* The path's master and builder narrow the workers to those configured there. */
static void worker_where(struct www_req *req, struct buf *where, struct db_param *p, size_t *n)
{
    long long masterid, builderid;
    bool m = www_arg_num(&req->args, "masterid", &masterid);
    bool b = www_arg_num(&req->args, "builderid", &builderid);
    if (!m && !b)
        return;
    buf_addstr(where, " AND w.id IN (SELECT cw.workerid FROM configured_workers cw "
                      "JOIN builder_masters bm ON bm.id = cw.buildermasterid WHERE 1 = 1");
    if (m) {
        buf_addstr(where, " AND bm.masterid = ?");
        p[(*n)++] = DB_INT(masterid);
    }
    if (b) {
        buf_addstr(where, " AND bm.builderid = ?");
        p[(*n)++] = DB_INT(builderid);
    }
    buf_addc(where, ')');
}

static int get_workers_common(struct www_req *req, json_t *out, bool *paged, bool single,
                              char **cause)
{
    struct buf where;
    buf_init(&where, 0);
    struct db_param p[4];
    size_t n = 0;
    buf_addstr(&where, "1 = 1");
    long long id;
    const char *name = www_arg_str(&req->args, "name");
    if (single && www_arg_num(&req->args, "workerid", &id)) {
        buf_addstr(&where, " AND w.id = ?");
        p[n++] = DB_INT(id);
    } else if (single && name != NULL) {
        buf_addstr(&where, " AND w.name = ?");
        p[n++] = DB_TEXT(name);
    }
    worker_where(req, &where, p, &n);
    int rc = api_rows(req, &workers_src, where.data, p, n, out, paged, cause);
    buf_free(&where);
    if (rc == 0)
        rc = worker_links(req, out, cause);
    return rc;
}

static int get_worker(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    return get_workers_common(req, out, paged, true, cause);
}

static int get_workers(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    return get_workers_common(req, out, paged, false, cause);
}

static const struct www_field master_fields[] = {
    {"masterid", WWW_F_INT, "m.id"},
    {"name", WWW_F_STR, "m.name"},
    {"active", WWW_F_BOOL, "m.active"},
    {"last_active", WWW_F_EPOCH, "m.last_active"},
};
static const struct www_rtype master_type = {"masters", API_FIELDS(master_fields)};
static const struct api_source masters_src = {&master_type, "masters m", "m.id", false};

static int get_master(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id, builderid;
    www_arg_num(&req->args, "masterid", &id);
    struct db_param p[] = {DB_INT(id), DB_INT(0)};
    if (www_arg_num(&req->args, "builderid", &builderid)) {
        p[1] = DB_INT(builderid);
        return api_rows(req, &masters_src,
                        "m.id = ? AND m.id IN (SELECT masterid FROM builder_masters "
                        "WHERE builderid = ?)",
                        p, 2, out, paged, cause);
    }
    return api_rows(req, &masters_src, "m.id = ?", p, 1, out, paged, cause);
}

static int get_masters(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long builderid;
    if (!www_arg_num(&req->args, "builderid", &builderid))
        return api_rows(req, &masters_src, NULL, NULL, 0, out, paged, cause);
    struct db_param p = DB_INT(builderid);
    return api_rows(req, &masters_src,
                    "m.id IN (SELECT masterid FROM builder_masters WHERE builderid = ?)", &p, 1,
                    out, paged, cause);
}

/* Schedulers and change sources: the same shape, an embedded master. */

static int embed_master(struct www_req *req, json_t *list, const char *link_sql, char **cause)
{
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        long long id = api_obj_int(o, "_id");
        json_object_del(o, "_id");
        struct db_param p = DB_INT(id);
        json_t *m = json_array();
        char *where = xasprintf("m.id IN (%s)", link_sql);
        int rc = api_rows(req, &masters_src, where, &p, 1, m, NULL, cause);
        free(where);
        if (rc < 0) {
            json_decref(m);
            return -1;
        }
        json_t *first = json_array_get(m, 0);
        json_object_set(o, "master", first != NULL ? first : json_null());
        json_decref(m);
    }
    return 0;
}

static const struct www_field scheduler_fields[] = {
    {"schedulerid", WWW_F_INT, "s.id"},   {"name", WWW_F_STR, "s.name"},
    {"enabled", WWW_F_BOOL, "s.enabled"}, {"master", WWW_F_OBJECT, NULL},
    {"_id", WWW_F_INT, "s.id"},
};
static const struct www_rtype scheduler_type = {"schedulers", scheduler_fields, 4};
static const struct www_rtype scheduler_rows = {"schedulers", API_FIELDS(scheduler_fields)};
static const struct api_source schedulers_src = {&scheduler_rows, "schedulers s", "s.id", false};

/* Force schedulers: their forms come from the configuration, through the engine. */

static const struct www_field force_fields[] = {
    {"name", WWW_F_STR, NULL},     {"button_name", WWW_F_STR, NULL},
    {"label", WWW_F_STR, NULL},    {"builder_names", WWW_F_STRS, NULL},
    {"enabled", WWW_F_BOOL, NULL}, {"all_fields", WWW_F_OBJECT, NULL},
};
static const struct www_rtype force_type = {"forceschedulers", API_FIELDS(force_fields)};

/* Does the scheduler's builder_names hold `name`? */
static bool builds_for(json_t *sched, const char *name)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(sched, "builder_names"), i, b)
    {
        if (util_streq(json_string_value(b), name))
            return true;
    }
    return false;
}

static int get_force(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    const char *name = www_arg_str(&req->args, "schedulername");
    const char *builderid = www_arg_str(&req->args, "builderid"); /* Buildbot: not converted */
    char *builder = NULL;
    if (builderid != NULL) {
        struct db_param p = DB_TEXT(builderid);
        struct db_res *r = api_select(req, "SELECT name FROM builders WHERE id = ?", &p, 1, cause);
        if (r == NULL)
            return -1;
        builder = db_res_rows(r) > 0 ? xstrdup(db_res_text(r, 0, 0)) : NULL;
        db_res_free(r);
        if (builder == NULL)
            return 0;
    }
    json_t *all = www_forceschedulers(req);
    size_t i;
    json_t *sched;
    json_array_foreach(all, i, sched)
    {
        if ((name == NULL || util_streq(json_string_value(json_object_get(sched, "name")), name)) &&
            (builder == NULL || builds_for(sched, builder)))
            json_array_append(out, sched);
    }
    json_decref(all);
    free(builder);
    return 0;
}

/* One shape for both: rows by id and/or by master, each with its master embedded. */
struct owned {
    const struct api_source *src;
    const char *id_arg, *id_col;       /* "schedulerid", "s.id" */
    const char *link_table, *link_col; /* "scheduler_masters", "schedulerid" */
};

static int get_owned(struct www_req *req, const struct owned *k, json_t *out, bool *paged,
                     char **cause)
{
    long long id, masterid;
    struct buf where;
    buf_init(&where, 0);
    buf_addstr(&where, "1 = 1");
    struct db_param p[2];
    size_t n = 0;
    if (www_arg_num(&req->args, k->id_arg, &id)) {
        buf_printf(&where, " AND %s = ?", k->id_col);
        p[n++] = DB_INT(id);
    }
    if (www_arg_num(&req->args, "masterid", &masterid)) {
        buf_printf(&where, " AND %s IN (SELECT %s FROM %s WHERE masterid = ?)", k->id_col,
                   k->link_col, k->link_table);
        p[n++] = DB_INT(masterid);
    }
    int rc = api_rows(req, k->src, where.data, p, n, out, paged, cause);
    buf_free(&where);
    if (rc == 0) {
        char *link = xasprintf("SELECT masterid FROM %s WHERE %s = ?", k->link_table, k->link_col);
        rc = embed_master(req, out, link, cause);
        free(link);
    }
    return rc;
}

static int get_schedulers_common(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    static const struct owned k = {&schedulers_src, "schedulerid", "s.id", "scheduler_masters",
                                   "schedulerid"};
    return get_owned(req, &k, out, paged, cause);
}

static const struct www_field changesource_fields[] = {
    {"changesourceid", WWW_F_INT, "c.id"},
    {"name", WWW_F_STR, "c.name"},
    {"master", WWW_F_OBJECT, NULL},
    {"_id", WWW_F_INT, "c.id"},
};
static const struct www_rtype changesource_type = {"changesources", changesource_fields, 3};
static const struct www_rtype changesource_rows = {"changesources",
                                                   API_FIELDS(changesource_fields)};
static const struct api_source changesources_src = {&changesource_rows, "changesources c", "c.id",
                                                    false};

static int get_changesources_common(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    static const struct owned k = {&changesources_src, "changesourceid", "c.id",
                                   "changesource_masters", "changesourceid"};
    return get_owned(req, &k, out, paged, cause);
}

#define WORKER_PATHS                                                                               \
    "/workers/n:workerid,/workers/i:name,/masters/n:masterid/workers/n:workerid,/masters/"         \
    "n:masterid/workers/i:name,/masters/n:masterid/builders/n:builderid/workers/n:workerid,/"      \
    "masters/n:masterid/builders/n:builderid/workers/i:name,/builders/n:builderid/workers/"        \
    "n:workerid,/builders/n:builderid/workers/i:name"
#define WORKERS_PATHS                                                                              \
    "/workers,/masters/n:masterid/workers,/masters/n:masterid/builders/n:builderid/workers,/"      \
    "builders/n:builderid/workers"

static const char *const worker_actions[] = {"stop", "pause", "unpause", "kill", NULL};
static const char *const scheduler_actions[] = {"*", NULL};
static const char *const force_actions[] = {"force", NULL};

/* What worker answers read: they stay valid while builds come and go. */
static const char *const worker_tables[] = {
    "workers", "configured_workers", "builder_masters", "connected_workers", "builders", NULL};

const struct www_endpoint api_workers_eps[] = {
    {WORKER_PATHS, &worker_type, WWW_SINGLE, get_worker, worker_actions, worker_tables},
    {WORKERS_PATHS, &worker_type, WWW_COLLECTION, get_workers, NULL, worker_tables},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

const struct www_endpoint api_masters_eps[] = {
    {"/masters/n:masterid,/builders/n:builderid/masters/n:masterid", &master_type, WWW_SINGLE,
     get_master, NULL, NULL},
    {"/masters,/builders/n:builderid/masters", &master_type, WWW_COLLECTION, get_masters, NULL,
     NULL},
    {"/schedulers/n:schedulerid,/masters/n:masterid/schedulers/n:schedulerid", &scheduler_type,
     WWW_SINGLE, get_schedulers_common, scheduler_actions, NULL},
    {"/schedulers,/masters/n:masterid/schedulers", &scheduler_type, WWW_COLLECTION,
     get_schedulers_common, NULL, NULL},
    {"/changesources/n:changesourceid,/masters/n:masterid/changesources/n:changesourceid",
     &changesource_type, WWW_SINGLE, get_changesources_common, NULL, NULL},
    {"/changesources,/masters/n:masterid/changesources", &changesource_type, WWW_COLLECTION,
     get_changesources_common, NULL, NULL},
    {"/forceschedulers/i:schedulername", &force_type, WWW_SINGLE, get_force, force_actions, NULL},
    {"/forceschedulers,/builders/:builderid/forceschedulers", &force_type, WWW_COLLECTION,
     get_force, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};
