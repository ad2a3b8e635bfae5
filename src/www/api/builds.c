/*
 * Builders and builds: /builders..., /builds..., and the builds of a
 * request, a change or a worker.
 */
#include "www/api/api.h"

#include <string.h>

static const struct www_field builder_fields[] = {
    {"builderid", WWW_F_INT, "b.id"},
    {"name", WWW_F_STR, "b.name"},
    {"description", WWW_F_STR, "b.description"},
    {"description_format", WWW_F_STR, "b.description_format"},
    {"description_html", WWW_F_STR, "b.description_html"},
    {"projectid", WWW_F_INT, "b.projectid"},
    {"masterids", WWW_F_INTS, NULL},
    {"tags", WWW_F_STRS, NULL},
};
static const struct www_rtype builder_type = {"builders", API_FIELDS(builder_fields)};
static const struct api_source builders_src = {&builder_type, "builders b", "b.id", false};

/* Adds masterids and tags with one query each for the whole list. */
static int builder_links(struct www_req *req, json_t *list, char **cause)
{
    struct db_param range[2];
    if (!api_id_range(list, "builderid", range))
        return 0;
    struct db_res *m = api_select(req,
                                  "SELECT builderid, masterid FROM builder_masters "
                                  "WHERE builderid BETWEEN ? AND ? ORDER BY builderid, id",
                                  range, 2, cause);
    struct db_res *t = m == NULL ? NULL
                                 : api_select(req,
                                              "SELECT bt.builderid, t.name FROM builders_tags bt "
                                              "JOIN tags t ON t.id = bt.tagid "
                                              "WHERE bt.builderid BETWEEN ? AND ? "
                                              "ORDER BY bt.builderid, bt.id",
                                              range, 2, cause);
    if (t == NULL) {
        db_res_free(m);
        return -1;
    }
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        long long id = api_obj_int(b, "builderid");
        json_t *mids = json_array(), *tags = json_array();
        for (size_t r = api_first_row(m, id); r < db_res_rows(m) && db_res_int(m, r, 0) == id; r++)
            json_array_append_new(mids, json_integer(db_res_int(m, r, 1)));
        for (size_t r = api_first_row(t, id); r < db_res_rows(t) && db_res_int(t, r, 0) == id; r++)
            json_array_append_new(tags, json_string(db_res_text(t, r, 1)));
        json_object_set_new(b, "masterids", mids);
        json_object_set_new(b, "tags", tags);
    }
    db_res_free(m);
    db_res_free(t);
    return 0;
}

static int get_builder(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = api_builderid(req, cause), masterid;
    if (id < 0)
        return id == -2 ? -1 : 0;
    struct db_param p[] = {DB_INT(id), DB_INT(0)};
    const char *where = "b.id = ?";
    if (www_arg_num(&req->args, "masterid", &masterid)) {
        p[1] = DB_INT(masterid);
        where = "b.id = ? AND b.id IN (SELECT builderid FROM builder_masters WHERE masterid = ?)";
    }
    if (api_rows(req, &builders_src, where, p, p[1].i ? 2 : 1, out, paged, cause) < 0)
        return -1;
    return builder_links(req, out, cause);
}

static int get_builders(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    const char *where = "1 = 1";
    if (www_arg_num(&req->args, "masterid", &id))
        where = "b.id IN (SELECT builderid FROM builder_masters WHERE masterid = ?)";
    else if (www_arg_num(&req->args, "projectid", &id))
        where = "b.projectid = ?";
    else if (www_arg_num(&req->args, "workerid", &id))
        where = "b.id IN (SELECT bm.builderid FROM configured_workers cw JOIN builder_masters bm "
                "ON bm.id = cw.buildermasterid WHERE cw.workerid = ?)";
    struct db_param p = DB_INT(id);
    if (api_rows(req, &builders_src, where, &p, strchr(where, '?') ? 1 : 0, out, paged, cause) < 0)
        return -1;
    return builder_links(req, out, cause);
}

json_t *www_builders_between(struct www *w, struct db *db, long long lo, long long hi, char **cause)
{
    struct www_req req = {.db = db,
                          .path = "builders",
                          .buildbot_url = w->buildbot_url,
                          .www = w,
                          .style = WWW_JSON_COMPACT};
    if (www_query_parse(NULL, 0, &builder_type, true, &req.q, cause) < 0)
        return NULL;
    json_t *out = json_array();
    struct db_param p[] = {DB_INT(lo), DB_INT(hi)};
    if (api_rows(&req, &builders_src, "b.id BETWEEN ? AND ?", p, 2, out, NULL, cause) < 0 ||
        builder_links(&req, out, cause) < 0) {
        json_decref(out);
        out = NULL;
    }
    www_query_free(&req.q);
    return out;
}

static const struct www_field build_fields[] = {
    {"buildid", WWW_F_INT, "b.id"},
    {"number", WWW_F_INT, "b.number"},
    {"builderid", WWW_F_INT, "b.builderid"},
    {"buildrequestid", WWW_F_INT, "b.buildrequestid"},
    {"workerid", WWW_F_INT, "b.workerid"},
    {"masterid", WWW_F_INT, "b.masterid"},
    {"started_at", WWW_F_EPOCH, "b.started_at"},
    {"complete_at", WWW_F_EPOCH, "b.complete_at"},
    {"complete", WWW_F_BOOL, "(CASE WHEN b.complete_at IS NULL THEN 0 ELSE 1 END)"},
    {"locks_duration_s", WWW_F_INT, "b.locks_duration_s"},
    {"results", WWW_F_INT, "b.results"},
    {"state_string", WWW_F_STR, "b.state_string"},
    {"properties", WWW_F_OBJECT, NULL},
};
static const struct www_rtype build_type = {"builds", API_FIELDS(build_fields)};
static const struct api_source builds_src = {&build_type, "builds b", "b.id", true};

/* Every build gets "properties": {} unless property= asked for some. */
static int build_props(struct www_req *req, json_t *list, char **cause)
{
    size_t n = json_array_size(list);
    for (size_t at = 0; at < n; at += API_PROPS_IDS) {
        size_t k = n - at < API_PROPS_IDS ? n - at : API_PROPS_IDS;
        if (req->q.n_props == 0) {
            for (size_t i = at; i < at + k; i++)
                json_object_set_new(json_array_get(list, i), "properties", json_object());
        } else if (api_builds_properties(req, list, at, k, req->q.props, req->q.n_props, cause) <
                   0) {
            return -1;
        }
    }
    return 0;
}

static int get_build(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = api_buildid(req, cause);
    if (id < 0)
        return id == -2 ? -1 : 0;
    struct db_param p = DB_INT(id);
    if (api_rows(req, &builds_src, "b.id = ?", &p, 1, out, paged, cause) < 0)
        return -1;
    return build_props(req, out, cause);
}

static const char *builds_where(struct www_req *req, long long *id, char **cause)
{
    if (www_arg_num(&req->args, "buildrequestid", id))
        return "b.buildrequestid = ?";
    if (www_arg_num(&req->args, "workerid", id))
        return "b.workerid = ?";
    if (www_arg_num(&req->args, "changeid", id))
        return "b.buildrequestid IN (SELECT br.id FROM buildrequests br "
               "JOIN buildset_sourcestamps bss ON bss.buildsetid = br.buildsetid "
               "JOIN changes c ON c.sourcestampid = bss.sourcestampid WHERE c.changeid = ?)";
    if (www_arg_num(&req->args, "buildid", id)) /* triggered_builds */
        return "b.buildrequestid IN (SELECT br.id FROM buildrequests br "
               "JOIN buildsets bs ON bs.id = br.buildsetid WHERE bs.parent_buildid = ?)";
    if (www_arg_str(&req->args, "builderid") == NULL &&
        www_arg_str(&req->args, "buildername") == NULL)
        return "1 = 1";
    *id = api_builderid(req, cause);
    return "b.builderid = ?";
}

static int get_builds(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = 0;
    const char *where = builds_where(req, &id, cause);
    if (id == -2)
        return -1;
    if (id == -1) /* a builder name that does not exist: an empty list */
        return 0;
    struct db_param p = DB_INT(id);
    if (api_rows(req, &builds_src, where, &p, strchr(where, '?') ? 1 : 0, out, paged, cause) < 0)
        return -1;
    return build_props(req, out, cause);
}

#define BUILDER_PATHS                                                                              \
    "/builders/n:builderid,/builders/s:buildername,/masters/n:masterid/builders/n:builderid"
#define BUILDERS_PATHS                                                                             \
    "/builders,/masters/n:masterid/builders,/projects/n:projectid/builders,/workers/n:workerid/"   \
    "builders"
#define BUILD_PATHS                                                                                \
    "/builds/n:buildid,/builders/n:builderid/builds/n:build_number,/builders/s:buildername/"       \
    "builds/n:build_number"
#define BUILDS_PATHS                                                                               \
    "/builds,/builders/n:builderid/builds,/builders/s:buildername/builds,/buildrequests/"          \
    "n:buildrequestid/builds,/changes/n:changeid/builds,/workers/n:workerid/builds,/builds/"       \
    "n:buildid/triggered_builds"

static const char *const build_actions[] = {"stop", "rebuild", NULL};

/* What builder answers read: they stay valid while builds come and go. */
static const char *const builder_tables[] = {"builders", "builder_masters",    "builders_tags",
                                             "tags",     "configured_workers", NULL};

const struct www_endpoint api_builders_eps[] = {
    {BUILDER_PATHS, &builder_type, WWW_SINGLE, get_builder, NULL, builder_tables},
    {BUILDERS_PATHS, &builder_type, WWW_COLLECTION, get_builders, NULL, builder_tables},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

const struct www_endpoint api_builds_eps[] = {
    {BUILD_PATHS, &build_type, WWW_SINGLE, get_build, build_actions, NULL},
    {BUILDS_PATHS, &build_type, WWW_COLLECTION, get_builds, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};
