/*
 * What schedulers produce: changes, source stamps, buildsets, build requests,
 * and the properties attached to buildsets and builds.
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

static const struct www_field ss_fields[] = {
    {"ssid", WWW_F_INT, "ss.id"},
    {"branch", WWW_F_STR, "ss.branch"},
    {"revision", WWW_F_STR, "ss.revision"},
    {"project", WWW_F_STR, "ss.project"},
    {"repository", WWW_F_STR, "ss.repository"},
    {"codebase", WWW_F_STR, "ss.codebase"},
    {"created_at", WWW_F_EPOCH, "ss.created_at"},
    {"patch", WWW_F_OBJECT, NULL},
    {"_patchid", WWW_F_INT, "ss.patchid"},
};
static const struct www_rtype ss_type = {"sourcestamps", ss_fields, 8};
static const struct www_rtype ss_rows = {"sourcestamps", API_FIELDS(ss_fields)};
static const struct api_source ss_src = {&ss_rows, "sourcestamps ss", "ss.id", false};

static int add_patches(struct www_req *req, json_t *list, char **cause)
{
    size_t i;
    json_t *ss;
    json_array_foreach(list, i, ss)
    {
        json_t *pid = json_object_get(ss, "_patchid");
        json_t *patch = json_null();
        if (json_is_integer(pid)) {
            struct db_param p = DB_INT(json_integer_value(pid));
            struct db_res *r = api_select(req,
                                          "SELECT id, patchlevel, subdir, patch_author, "
                                          "patch_comment, patch_base64 FROM patches WHERE id = ?",
                                          &p, 1, cause);
            if (r == NULL)
                return -1;
            if (db_res_rows(r) > 0)
                patch = json_pack("{sIsIss?ss?ss?ss?}", "patchid", db_res_int(r, 0, 0), "level",
                                  db_res_int(r, 0, 1), "subdir", db_res_text(r, 0, 2), "author",
                                  db_res_text(r, 0, 3), "comment", db_res_text(r, 0, 4), "body",
                                  db_res_text(r, 0, 5));
            db_res_free(r);
        }
        json_object_del(ss, "_patchid");
        json_object_set_new(ss, "patch", patch != NULL ? patch : json_null());
    }
    return 0;
}

int api_sourcestamps(struct www_req *req, const char *where, const struct db_param *p, size_t n,
                     json_t *out, bool *paged, char **cause)
{
    if (api_rows(req, &ss_src, where, p, n, out, paged, cause) < 0)
        return -1;
    return add_patches(req, out, cause);
}

static int get_sourcestamp(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id = 0;
    www_arg_num(&req->args, "ssid", &id);
    struct db_param p = DB_INT(id);
    return api_sourcestamps(req, "ss.id = ?", &p, 1, out, paged, cause);
}

static int get_sourcestamps(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    const char *bsid = www_arg_str(&req->args, "buildsetid");
    if (bsid == NULL)
        return api_sourcestamps(req, NULL, NULL, 0, out, paged, cause);
    long long id;
    if (!www_parse_int(bsid, &id))
        return util_cause(cause, "ValueError(\"invalid literal for int() with base 10: '%s'\")",
                          bsid);
    struct db_param p = DB_INT(id);
    return api_sourcestamps(req,
                            "ss.id IN (SELECT sourcestampid FROM buildset_sourcestamps "
                            "WHERE buildsetid = ?)",
                            &p, 1, out, paged, cause);
}

static const struct www_field bs_fields[] = {
    {"bsid", WWW_F_INT, "bs.id"},
    {"external_idstring", WWW_F_STR, "bs.external_idstring"},
    {"reason", WWW_F_STR, "bs.reason"},
    {"submitted_at", WWW_F_INT, "bs.submitted_at"},
    {"complete", WWW_F_BOOL, "(CASE WHEN bs.complete = 1 THEN 1 ELSE 0 END)"},
    {"complete_at", WWW_F_INT, "bs.complete_at"},
    {"results", WWW_F_INT, "bs.results"},
    {"parent_buildid", WWW_F_INT, "bs.parent_buildid"},
    {"parent_relationship", WWW_F_STR, "bs.parent_relationship"},
    {"rebuilt_buildid", WWW_F_INT, "bs.rebuilt_buildid"},
    {"sourcestamps", WWW_F_OBJECT, NULL},
};
static const struct www_rtype bs_type = {"buildsets", API_FIELDS(bs_fields)};
static const struct api_source bs_src = {&bs_type, "buildsets bs", "bs.id", true};

static int add_sourcestamps(struct www_req *req, json_t *list, char **cause)
{
    size_t i;
    json_t *bs;
    json_array_foreach(list, i, bs)
    {
        struct db_param p = DB_INT(api_obj_int(bs, "bsid"));
        json_t *sss = json_array();
        if (api_sourcestamps(req,
                             "ss.id IN (SELECT sourcestampid FROM buildset_sourcestamps "
                             "WHERE buildsetid = ?)",
                             &p, 1, sss, NULL, cause) < 0) {
            json_decref(sss);
            return -1;
        }
        json_object_set_new(bs, "sourcestamps", sss);
    }
    return 0;
}

static int get_buildsets(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    struct db_param p = DB_INT(0);
    const char *where = NULL;
    if (www_arg_num(&req->args, "bsid", &id)) {
        p = DB_INT(id);
        where = "bs.id = ?";
    }
    if (api_rows(req, &bs_src, where, &p, where ? 1 : 0, out, paged, cause) < 0)
        return -1;
    return add_sourcestamps(req, out, cause);
}

static const struct www_field br_fields[] = {
    {"buildrequestid", WWW_F_INT, "br.id"},
    {"buildsetid", WWW_F_INT, "br.buildsetid"},
    {"builderid", WWW_F_INT, "br.builderid"},
    {"priority", WWW_F_INT, "br.priority"},
    {"claimed", WWW_F_BOOL, "(CASE WHEN c.brid IS NULL THEN 0 ELSE 1 END)"},
    {"claimed_at", WWW_F_EPOCH, "c.claimed_at"},
    {"claimed_by_masterid", WWW_F_INT, "c.masterid"},
    {"complete", WWW_F_BOOL, "(CASE WHEN br.complete = 1 THEN 1 ELSE 0 END)"},
    {"results", WWW_F_INT, "br.results"},
    {"submitted_at", WWW_F_EPOCH, "br.submitted_at"},
    {"complete_at", WWW_F_EPOCH, "br.complete_at"},
    {"waited_for", WWW_F_BOOL, "br.waited_for"},
    {"properties", WWW_F_OBJECT, NULL},
};
static const struct www_rtype br_type = {"buildrequests", API_FIELDS(br_fields)};
static const struct api_source br_src = {
    &br_type, "buildrequests br LEFT JOIN buildrequest_claims c ON c.brid = br.id", "br.id", true};

static int add_request_props(struct www_req *req, json_t *list, char **cause)
{
    size_t i;
    json_t *br;
    json_array_foreach(list, i, br)
    {
        json_t *props = NULL;
        if (req->q.n_props > 0) {
            props = api_pair_properties(req,
                                        "SELECT property_name, property_value FROM "
                                        "buildset_properties WHERE buildsetid = ?",
                                        api_obj_int(br, "buildsetid"), req->q.props, req->q.n_props,
                                        cause);
            if (props == NULL)
                return -1;
        }
        json_object_set_new(br, "properties", props != NULL ? props : json_null());
    }
    return 0;
}

static int get_buildrequests(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    struct db_param p = DB_INT(0);
    const char *where = NULL;
    if (www_arg_num(&req->args, "buildrequestid", &id))
        where = "br.id = ?";
    else if (www_arg_num(&req->args, "builderid", &id))
        where = "br.builderid = ?";
    if (where != NULL)
        p = DB_INT(id);
    /* claimed=false means unclaimed and incomplete, as in Buildbot. */
    json_t *claimed = www_query_take_eq(&req->q, "claimed");
    char *w = NULL;
    if (claimed != NULL)
        w = xasprintf("%s AND %s", where ? where : "1 = 1",
                      json_is_true(claimed) ? "c.brid IS NOT NULL"
                                            : "c.brid IS NULL AND br.complete = 0");
    json_decref(claimed);
    int rc = api_rows(req, &br_src, w ? w : where, &p, where ? 1 : 0, out, paged, cause);
    free(w);
    if (rc == 0)
        rc = add_request_props(req, out, cause);
    return rc;
}

/* Properties of one build or buildset: {"properties": [{"name": [value, source]}]}. */
static const struct www_field props_fields[] = {{"*", WWW_F_OBJECT, NULL}};
static const struct www_rtype props_type = {"properties", API_FIELDS(props_fields)};

static int get_properties(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    long long id;
    json_t *props;
    if (www_arg_num(&req->args, "bsid", &id)) {
        struct db_param p = DB_INT(id);
        if (api_lookup(req, "SELECT id FROM buildsets WHERE id = ?", &p, 1, cause) < 0)
            return 0;
        props = api_pair_properties(req,
                                    "SELECT property_name, property_value FROM "
                                    "buildset_properties WHERE buildsetid = ?",
                                    id, NULL, 0, cause);
    } else {
        id = api_buildid(req, cause);
        if (id < 0)
            return id == -2 ? -1 : 0;
        props = api_build_properties(req, id, NULL, 0, cause);
    }
    if (props == NULL)
        return -1;
    json_array_append_new(out, props);
    return 0;
}

static const struct www_field plist_fields[] = {
    {"name", WWW_F_STR, NULL},
    {"source", WWW_F_STR, NULL},
    {"value", WWW_F_STR, NULL},
};
static const struct www_rtype plist_type = {"_properties", API_FIELDS(plist_fields)};

/* Build properties are stored as (name, value, source); buildset and change ones as
   (name, "[value, source]").  Buildbot 4.3 answers the change list with a 500 (it calls a
   method its changes connector lacks); this answers what it means to. */
static int get_property_list(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    long long id = 0;
    bool build = www_arg_num(&req->args, "buildid", &id);
    const char *sql = "SELECT name, value, source FROM build_properties WHERE buildid = ?";
    if (www_arg_num(&req->args, "bsid", &id))
        sql = "SELECT property_name, property_value, NULL FROM buildset_properties "
              "WHERE buildsetid = ?";
    else if (www_arg_num(&req->args, "changeid", &id))
        sql = "SELECT property_name, property_value, NULL FROM change_properties "
              "WHERE changeid = ?";
    struct db_param p = DB_INT(id);
    struct db_res *r = api_select(req, sql, &p, 1, cause);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *value = NULL;
        const char *source = db_res_text(r, i, 2);
        if (!build) { /* stored as [value, source] */
            json_t *pair = json_loads(db_res_text(r, i, 1), JSON_DECODE_ANY, NULL);
            value = json_incref(json_array_get(pair, 0));
            char *src = xstrdup(json_string_value(json_array_get(pair, 1)) ?: "");
            char *text = www_json_dump(value ? value : json_null(), WWW_JSON_SPACED, NULL);
            json_array_append_new(out, json_pack("{ssssss}", "name", db_res_text(r, i, 0), "source",
                                                 src, "value", text));
            free(text);
            free(src);
            json_decref(value);
            json_decref(pair);
            continue;
        }
        json_array_append_new(out, json_pack("{ssssss}", "name", db_res_text(r, i, 0), "source",
                                             source ? source : "", "value", db_res_text(r, i, 1)));
    }
    db_res_free(r);
    return 0;
}

#define BR_PATHS "/buildrequests,/builders/n:builderid/buildrequests"
#define PROPS_PATHS                                                                                \
    "/builders/n:builderid/builds/n:build_number/properties,/builds/n:buildid/properties"

static const char *const br_actions[] = {"cancel", "set_priority", NULL};

const struct www_endpoint api_requests_eps[] = {
    {"/buildrequests/n:buildrequestid", &br_type, WWW_SINGLE, get_buildrequests, br_actions, NULL},
    {BR_PATHS, &br_type, WWW_COLLECTION, get_buildrequests, NULL, NULL},
    {"/buildsets/n:bsid", &bs_type, WWW_SINGLE, get_buildsets, NULL, NULL},
    {"/buildsets", &bs_type, WWW_COLLECTION, get_buildsets, NULL, NULL},
    {"/buildsets/:buildsetid/sourcestamps", &ss_type, WWW_COLLECTION, get_sourcestamps, NULL, NULL},
    {"/sourcestamps/n:ssid", &ss_type, WWW_SINGLE, get_sourcestamp, NULL, NULL},
    {"/sourcestamps", &ss_type, WWW_COLLECTION, get_sourcestamps, NULL, NULL},
    {"/buildsets/n:bsid/properties", &props_type, WWW_SINGLE, get_properties, NULL, NULL},
    {PROPS_PATHS, &props_type, WWW_SINGLE, get_properties, NULL, NULL},
    {"/builds/n:buildid/property_list,/buildsets/n:bsid/properties_list,/changes/n:changeid/"
     "properties_list",
     &plist_type, WWW_COLLECTION, get_property_list, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};
