/*
 * Changes, and the smaller resources: projects, build data, test results.
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

int api_sourcestamps(struct www_req *req, const char *where, const struct db_param *p, size_t n,
                     json_t *out, bool *paged, char **cause);

static const struct www_field change_fields[] = {
    {"changeid", WWW_F_INT, "c.changeid"},
    {"author", WWW_F_STR, "c.author"},
    {"committer", WWW_F_STR, "c.committer"},
    {"comments", WWW_F_STR, "c.comments"},
    {"branch", WWW_F_STR, "c.branch"},
    {"revision", WWW_F_STR, "c.revision"},
    {"revlink", WWW_F_STR, "c.revlink"},
    {"when_timestamp", WWW_F_INT, "c.when_timestamp"},
    {"category", WWW_F_STR, "c.category"},
    {"repository", WWW_F_STR, "c.repository"},
    {"codebase", WWW_F_STR, "c.codebase"},
    {"project", WWW_F_STR, "c.project"},
    {"files", WWW_F_STRS, NULL},
    {"parent_changeids", WWW_F_INTS, NULL},
    {"properties", WWW_F_OBJECT, NULL},
    {"sourcestamp", WWW_F_OBJECT, NULL},
    {"_ssid", WWW_F_INT, "c.sourcestampid"},
    {"_parent", WWW_F_INT, "c.parent_changeids"},
};
static const struct www_rtype change_type = {"changes", change_fields, 16};
static const struct www_rtype change_rows = {"changes", API_FIELDS(change_fields)};
static const struct api_source changes_src = {&change_rows, "changes c", "c.changeid", true};

static int change_details(struct www_req *req, json_t *c, char **cause)
{
    long long id = api_obj_int(c, "changeid");
    struct db_param p = DB_INT(id);
    struct db_res *r =
        api_select(req, "SELECT filename FROM change_files WHERE changeid = ?", &p, 1, cause);
    if (r == NULL)
        return -1;
    json_t *files = json_array();
    for (size_t i = 0; i < db_res_rows(r); i++)
        json_array_append_new(files, json_string(db_res_text(r, i, 0)));
    db_res_free(r);
    json_object_set_new(c, "files", files);
    json_t *props = api_pair_properties(req,
                                        "SELECT property_name, property_value FROM "
                                        "change_properties WHERE changeid = ?",
                                        id, NULL, 0, cause);
    if (props == NULL)
        return -1;
    json_object_set_new(c, "properties", props);
    json_t *parent = json_object_get(c, "_parent");
    json_object_set_new(c, "parent_changeids",
                        json_is_integer(parent) ? json_pack("[O]", parent) : json_array());
    json_t *ss = json_array();
    p = DB_INT(api_obj_int(c, "_ssid"));
    if (api_sourcestamps(req, "ss.id = ?", &p, 1, ss, NULL, cause) < 0) {
        json_decref(ss);
        return -1;
    }
    json_object_set(c, "sourcestamp", json_array_size(ss) ? json_array_get(ss, 0) : json_null());
    json_decref(ss);
    json_object_del(c, "_parent");
    json_object_del(c, "_ssid");
    return 0;
}

/* The change rows WHERE `where` (one `?`: id) with their details, every one: the query's
   filters and paging apply to the list afterwards. */
static int changes_where(struct www_req *req, const char *where, long long id, json_t *out,
                         char **cause)
{
    struct db_param p = DB_INT(id);
    json_t *rows = json_array();
    int rc = api_rows(req, &changes_src, where, &p, 1, rows, NULL, cause);
    size_t i;
    json_t *c;
    json_array_foreach(rows, i, c)
    {
        if (rc == 0)
            rc = change_details(req, c, cause);
    }
    if (rc == 0)
        json_array_extend(out, rows);
    json_decref(rows);
    return rc;
}

int api_change_rows(struct www_req *req, long long id, json_t *out, char **cause)
{
    return changes_where(req, "c.changeid = ?", id, out, cause);
}

/* The changes the query's filters select (SQL filters only: the window is SQL-paged). */
static long long count_changes(struct www_req *req, char **cause)
{
    struct buf sql;
    buf_init(&sql, 0);
    buf_addstr(&sql, "SELECT count(*) FROM changes c WHERE 1 = 1");
    struct db_param p[WWW_QUERY_MAX_PARAMS];
    size_t n = 0;
    long long total = www_query_sql(&req->q, &sql, p, &n, cause) < 0
                          ? -2
                          : api_lookup(req, sql.data, p, n, cause);
    buf_free(&sql);
    return total;
}

/*
 * Rows [off, off + limit) of the query's order, reversed, are rows [N - end, N - off) of the
 * opposite order (N matching rows, end = min(off + limit, N)), which is what the window
 * becomes.  Negative bounds read as SQLite reads them; PostgreSQL refuses them (so does it
 * for Buildbot), and so does SQL a bound past 64 bits: such windows are left alone.
 */
static int reverse_window(struct www_req *req, char **cause)
{
    struct www_query *q = &req->q;
    bool pg = db_kind(req->db) == DB_PG;
    if ((q->has_limit && (q->limit_big || (pg && q->limit < 0))) ||
        (q->has_offset && (q->offset_big || (pg && q->offset < 0))))
        return 0;
    long long n = count_changes(req, cause);
    if (n < 0)
        return n == -2 ? -1 : 0;
    long long off = q->has_offset && q->offset > 0 ? q->offset : 0;
    long long a = off < n ? off : n, b = n;
    if (q->has_limit && q->limit >= 0 && q->limit < n - a)
        b = a + q->limit;
    q->has_offset = q->has_limit = true;
    q->offset = n - b;
    q->limit = b - a;
    return 0;
}

/*
 * The order of rows the query's SQL orders leave tied, as the database gives them to
 * Buildbot (its query has no tiebreak): stored order, except when the first order is
 * on an indexed column, read backwards for a descending order.
 */
static bool ties_descending(const struct www_query *q)
{
    static const char *const indexed[] = {"author",   "branch",         "category",
                                          "revision", "when_timestamp", NULL};
    for (size_t i = 0; i < q->n_orders; i++) {
        if (q->orders[i].field->sql == NULL)
            continue;
        for (size_t k = 0; indexed[k] != NULL; k++)
            if (strcmp(q->orders[i].field->name, indexed[k]) == 0)
                return q->orders[i].desc;
        return false;
    }
    return false;
}

/*
 * Buildbot's getChanges reverses what its query gives: the database's filters, order
 * (none by default: the changes as stored, changeid's order) and paging, reversed, and
 * then what the database could not do (filters, then a stable sort on the orders it
 * could not give, the paging) in memory.  So the query here becomes: the orders SQL
 * cannot give, then the others turned around, then changeid against its order in ties;
 * and a window SQL pages becomes its mirror image.  Done once: a long answer calls again
 * per batch.
 */
static int buildbot_reversal(struct www_req *req, char **cause)
{
    struct www_query *q = &req->q;
    if (q->rewritten)
        return 0;
    q->rewritten = true;
    if (www_query_sql_ok(q) && (q->has_limit || q->has_offset) && reverse_window(req, cause) < 0)
        return -1;
    bool ties_desc = ties_descending(q);
    struct www_order *o = xcalloc(q->n_orders + 1, sizeof *o);
    size_t n = 0;
    for (size_t i = 0; i < q->n_orders; i++)
        if (q->orders[i].field->sql == NULL)
            o[n++] = q->orders[i];
    for (size_t i = 0; i < q->n_orders; i++)
        if (q->orders[i].field->sql != NULL)
            o[n++] = (struct www_order){q->orders[i].field, !q->orders[i].desc};
    o[n++] = (struct www_order){www_rtype_field(&change_type, "changeid"), !ties_desc};
    free(q->orders);
    q->orders = o;
    q->n_orders = n;
    return 0;
}

static int get_changes(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    if (www_arg_num(&req->args, "changeid", &id))
        return changes_where(req, "c.changeid = ?", id, out, cause);
    if (www_arg_num(&req->args, "ssid", &id)) /* Buildbot: the source stamp's newest change */
        return changes_where(req,
                             "c.changeid = (SELECT max(changeid) FROM changes "
                             "WHERE sourcestampid = ?)",
                             id, out, cause);
    if (www_arg_str(&req->args, "buildid") || www_arg_str(&req->args, "build_number")) {
        id = api_buildid(req, cause);
        if (id < 0)
            return id == -2 ? -1 : 0;
        if (api_build_changes(req, id, out, cause) < 0)
            return -1;
        www_query_sort(&req->q, out); /* a streamed answer is filtered and sliced, not sorted */
        return 0;
    }
    if (paged != NULL && buildbot_reversal(req, cause) < 0)
        return -1;
    if (api_rows(req, &changes_src, NULL, NULL, 0, out, paged, cause) < 0)
        return -1;
    size_t i;
    json_t *c;
    json_array_foreach(out, i, c)
    {
        if (change_details(req, c, cause) < 0)
            return -1;
    }
    return 0;
}

static const struct www_field project_fields[] = {
    {"projectid", WWW_F_INT, "p.id"},
    {"name", WWW_F_STR, "p.name"},
    {"slug", WWW_F_STR, "p.slug"},
    {"description", WWW_F_STR, "p.description"},
    {"description_format", WWW_F_STR, "p.description_format"},
    {"description_html", WWW_F_STR, "p.description_html"},
    {"active", WWW_F_BOOL, NULL},
};
static const struct www_rtype project_type = {"projects", API_FIELDS(project_fields)};
static const struct api_source projects_src = {&project_type, "projects p", "p.id", false};

static int get_projects(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    const char *name = www_arg_str(&req->args, "projectname");
    struct db_param p = DB_INT(0);
    const char *where = NULL;
    if (www_arg_num(&req->args, "projectid", &id)) {
        p = DB_INT(id);
        where = "p.id = ?";
    } else if (name != NULL) {
        p = DB_TEXT(name);
        where = "p.name = ?";
    }
    /* active= is the projects endpoint's own filter: projects with builders on a master. */
    json_t *active = www_query_take_eq(&req->q, "active");
    char *w = NULL;
    if (active != NULL)
        w = xasprintf("%s AND %s p.id IN (SELECT b.projectid FROM builders b JOIN builder_masters "
                      "bm ON bm.builderid = b.id WHERE b.projectid IS NOT NULL)",
                      where ? where : "1 = 1", json_is_true(active) ? "" : "NOT");
    int rc = api_rows(req, &projects_src, w ? w : where, &p, where ? 1 : 0, out, paged, cause);
    free(w);
    size_t i;
    json_t *o;
    json_array_foreach(out, i, o)
    {
        json_object_set(o, "active", active ? active : json_null());
    }
    json_decref(active);
    return rc;
}

static const struct www_field data_fields[] = {
    {"buildid", WWW_F_INT, "d.buildid"}, {"name", WWW_F_STR, "d.name"},
    {"length", WWW_F_INT, "d.length"},   {"source", WWW_F_STR, "d.source"},
    {"value", WWW_F_OBJECT, NULL},
};
static const struct www_rtype data_type = {"build_data", API_FIELDS(data_fields)};
static const struct api_source data_src = {&data_type, "build_data d", "d.id", false};

static int get_data(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = api_buildid(req, cause);
    if (id < 0)
        return id == -2 ? -1 : 0;
    const char *name = www_arg_str(&req->args, "name");
    struct db_param p[] = {DB_INT(id), DB_TEXT(name)};
    int rc = api_rows(req, &data_src, name ? "d.buildid = ? AND d.name = ?" : "d.buildid = ?", p,
                      name ? 2 : 1, out, paged, cause);
    size_t i;
    json_t *o;
    json_array_foreach(out, i, o)
    {
        json_object_set_new(o, "value", json_null());
    }
    return rc;
}

static int get_data_value(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    long long id = api_buildid(req, cause);
    if (id < 0)
        return id == -2 ? -1 : 0;
    const char *name = www_arg_str(&req->args, "name");
    struct db_param p[] = {DB_INT(id), DB_TEXT(name)};
    struct db_res *r =
        api_select(req, "SELECT value FROM build_data WHERE buildid = ? AND name = ?", p, 2, cause);
    if (r == NULL)
        return -1;
    if (db_res_rows(r) > 0) {
        struct www_raw *raw = xcalloc(1, sizeof *raw);
        size_t len;
        const unsigned char *v = db_res_blob(r, 0, 0, &len);
        raw->bytes = xmalloc(len + 1);
        memcpy(raw->bytes, v, len);
        raw->n_bytes = len;
        raw->content_type = xstrdup("application/octet-stream");
        raw->filename = xstrdup(name);
        req->raw = raw;
        json_array_append_new(out, json_true());
    }
    db_res_free(r);
    return 0;
}

static const struct www_field trs_fields[] = {
    {"test_result_setid", WWW_F_INT, "t.id"},      {"builderid", WWW_F_INT, "t.builderid"},
    {"buildid", WWW_F_INT, "t.buildid"},           {"stepid", WWW_F_INT, "t.stepid"},
    {"description", WWW_F_STR, "t.description"},   {"category", WWW_F_STR, "t.category"},
    {"value_unit", WWW_F_STR, "t.value_unit"},     {"tests_passed", WWW_F_INT, "t.tests_passed"},
    {"tests_failed", WWW_F_INT, "t.tests_failed"}, {"complete", WWW_F_BOOL, "t.complete"},
};
static const struct www_rtype trs_type = {"test_result_sets", API_FIELDS(trs_fields)};
static const struct api_source trs_src = {&trs_type, "test_result_sets t", "t.id", true};
#define GRAPH_IDS_MAX 101 /* a commit and its ancestors as far as the graph walk goes */

static int get_result_sets(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = 0;
    const char *where = NULL;
    if (www_arg_num(&req->args, "test_result_setid", &id))
        where = "t.id = ?";
    else if (www_arg_num(&req->args, "stepid", &id))
        where = "t.stepid = ?";
    else if (www_arg_num(&req->args, "buildid", &id))
        where = "t.buildid = ?";
    else if (www_arg_str(&req->args, "builderid") || www_arg_str(&req->args, "buildername")) {
        id = api_builderid(req, cause);
        if (id < 0)
            return id == -2 ? -1 : 0;
        where = "t.builderid = ?";
    }
    struct db_param p = DB_INT(id);
    return api_rows(req, &trs_src, where, &p, where ? 1 : 0, out, paged, cause);
}

/* Test result sets of the builds of the commits from commitid1 back to their common
   ancestor with commitid2, matched by revision (Buildbot 4.3's own caveat). */
static int get_range_result_sets(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long from = 0, to = 0;
    www_arg_num(&req->args, "commitid1", &from);
    www_arg_num(&req->args, "commitid2", &to);
    json_t *graph = NULL;
    int rc = api_commit_graph(req, from, to, &graph, cause);
    json_t *ids = json_object_get(graph, "to2");
    if (rc <= 0 || json_integer_value(json_array_get(ids, 0)) != from) {
        json_decref(graph);
        return rc < 0 ? -1 : 0;
    }
    struct db_param p[GRAPH_IDS_MAX];
    struct buf in;
    buf_init(&in, 0);
    size_t n = 0, i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (n == GRAPH_IDS_MAX)
            break;
        p[n++] = DB_INT(json_integer_value(id));
        buf_addstr(&in, n > 1 ? ", ?" : "?");
    }
    char *where = xasprintf("cc.id IN (%s)", in.data);
    static const struct api_source range_src = {
        &trs_type,
        "test_result_sets t JOIN builds b ON b.id = t.buildid "
        "JOIN buildrequests br ON br.id = b.buildrequestid "
        "JOIN buildsets bs ON bs.id = br.buildsetid "
        "JOIN buildset_sourcestamps bss ON bss.buildsetid = bs.id "
        "JOIN sourcestamps ss ON ss.id = bss.sourcestampid "
        "JOIN codebase_commits cc ON cc.revision = ss.revision",
        "t.id", false};
    rc = api_rows(req, &range_src, where, p, n, out, paged, cause);
    free(where);
    buf_free(&in);
    json_decref(graph);
    return rc;
}

static const struct www_field tr_fields[] = {
    {"test_resultid", WWW_F_INT, "r.id"},
    {"builderid", WWW_F_INT, "r.builderid"},
    {"test_result_setid", WWW_F_INT, "r.test_result_setid"},
    {"test_name", WWW_F_STR, "n.name"},
    {"test_code_path", WWW_F_STR, "cp.path"},
    {"line", WWW_F_INT, "r.line"},
    {"duration_ns", WWW_F_INT, "r.duration_ns"},
    {"value", WWW_F_STR, "r.value"},
};
static const struct www_rtype tr_type = {"test_results", API_FIELDS(tr_fields)};
static const struct api_source tr_src = {
    &tr_type,
    "test_results r LEFT JOIN test_names n ON n.id = r.test_nameid "
    "LEFT JOIN test_code_paths cp ON cp.id = r.test_code_pathid",
    "r.id", true};

static int get_results(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = 0;
    www_arg_num(&req->args, "test_result_setid", &id);
    struct db_param p = DB_INT(id);
    return api_rows(req, &tr_src, "r.test_result_setid = ?", &p, 1, out, paged, cause);
}

#define CHANGES_PATHS                                                                              \
    "/changes,/builders/n:builderid/builds/n:build_number/changes,/builds/n:buildid/changes,/"     \
    "sourcestamps/n:ssid/changes"
#define DATA_PATHS(x)                                                                              \
    "/builders/n:builderid/builds/n:build_number/data" x                                           \
    ",/builders/s:buildername/builds/n:build_number/data" x ",/builds/n:buildid/data" x
#define TRS_PATHS                                                                                  \
    "/builders/n:builderid/test_result_sets,/builders/s:buildername/test_result_sets,/builds/"     \
    "n:buildid/test_result_sets,/steps/n:stepid/test_result_sets,/test_result_sets"

const struct www_endpoint api_changes_eps[] = {
    {"/changes/n:changeid", &change_type, WWW_SINGLE, get_changes, NULL, NULL},
    {CHANGES_PATHS, &change_type, WWW_COLLECTION, get_changes, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

const struct www_endpoint api_misc_eps[] = {
    {"/projects/n:projectid,/projects/i:projectname", &project_type, WWW_SINGLE, get_projects, NULL,
     NULL},
    {"/projects", &project_type, WWW_COLLECTION, get_projects, NULL, NULL},
    {DATA_PATHS(""), &data_type, WWW_COLLECTION, get_data, NULL, NULL},
    {DATA_PATHS("/i:name"), &data_type, WWW_SINGLE, get_data, NULL, NULL},
    {DATA_PATHS("/i:name/value"), &data_type, WWW_RAW, get_data_value, NULL, NULL},
    {TRS_PATHS, &trs_type, WWW_COLLECTION, get_result_sets, NULL, NULL},
    {"/test_result_sets/n:test_result_setid", &trs_type, WWW_SINGLE, get_result_sets, NULL, NULL},
    {"/codebases/n:codebaseid/commit_range/n:commitid1/n:commitid2/test_result_sets", &trs_type,
     WWW_COLLECTION, get_range_result_sets, NULL, NULL},
    {"/test_result_sets/n:test_result_setid/results", &tr_type, WWW_COLLECTION, get_results, NULL,
     NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};
