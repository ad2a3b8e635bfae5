/*
 * The route table: every endpoint, tried in Buildbot's order (numeric
 * placeholders before names), the root links of GET /api/v2, and
 * /application.spec, which describes every path from this same table.
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

static int get_spec(struct www_req *req, json_t *out, bool *paged, char **cause);

static const struct www_field spec_fields[] = {
    {"path", WWW_F_STR, NULL},
    {"type", WWW_F_STR, NULL},
    {"plural", WWW_F_STR, NULL},
    {"type_spec", WWW_F_OBJECT, NULL},
};
static const struct www_rtype spec_type = {"specs", API_FIELDS(spec_fields)};

static const struct www_endpoint spec_eps[] = {
    {"/application.spec", &spec_type, WWW_COLLECTION, get_spec, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

static const struct www_endpoint *const groups[] = {
    api_builders_eps, api_builds_eps,    api_steps_eps,    api_logs_eps,
    api_workers_eps,  api_masters_eps,   api_requests_eps, api_changes_eps,
    api_misc_eps,     api_codebases_eps, spec_eps,
};

static bool match_any(const char *patterns, char *const *segs, size_t nsegs, struct www_args *args)
{
    for (const char *p = patterns; p != NULL && *p != '\0';) {
        if (*p == '/')
            p++;
        if (www_path_match(p, segs, nsegs, args))
            return true;
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return false;
}

const struct www_endpoint *www_route(char *const *segs, size_t nsegs, struct www_args *args)
{
    for (size_t g = 0; g < UTIL_NELEM(groups); g++)
        for (const struct www_endpoint *ep = groups[g]; ep->patterns != NULL; ep++)
            if (match_any(ep->patterns, segs, nsegs, args))
                return ep;
    return NULL;
}

const struct www_endpoint *www_route_path(char *path, struct www_args *args)
{
    char *segs[WWW_PATH_MAX_SEGS + 1];
    size_t nsegs = www_split_path(path, segs, WWW_PATH_MAX_SEGS);
    return nsegs > 0 && nsegs <= WWW_PATH_MAX_SEGS ? www_route(segs, nsegs, args) : NULL;
}

json_t *www_root_links(void)
{
    static const char *const names[] = {
        "builders",     "builds",     "buildrequests",   "codebases",     "workers",
        "logchunks",    "buildsets",  "changes",         "changesources", "masters",
        "sourcestamps", "schedulers", "forceschedulers", "projects",
    };
    json_t *list = json_array();
    for (size_t i = 0; i < UTIL_NELEM(names); i++)
        json_array_append_new(list, json_pack("{ss}", "name", names[i]));
    return list;
}

static json_t *spec_entry(const char *path, size_t len, const char *plural)
{
    const char *type = NULL;
    const char *spec = api_type_spec(plural, &type);
    json_t *ts = spec != NULL ? json_loads(spec, 0, NULL) : NULL;
    return json_pack("{ss%ssssso}", "path", path, len, "type", type != NULL ? type : plural,
                     "plural", plural, "type_spec", ts != NULL ? ts : json_object());
}

/* Buildbot sorts the paths as tuples of segments: "builders" < "builders/x" < "builders_tags". */
static int cmp_paths(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "path"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "path"));
    for (; *x != '\0' && *x == *y; x++, y++)
        ;
    int cx = *x == '/' ? 1 : (unsigned char)*x + 1, cy = *y == '/' ? 1 : (unsigned char)*y + 1;
    return (*x == '\0' ? 0 : cx) - (*y == '\0' ? 0 : cy);
}

static int get_spec(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)req;
    (void)paged;
    (void)cause;
    size_t n = 0, cap = 0;
    json_t **all = NULL;
    all = xgrow(all, &cap, 2, sizeof *all);
    all[n++] = spec_entry("", 0, "rootlinks");
    for (size_t g = 0; g < UTIL_NELEM(groups); g++)
        for (const struct www_endpoint *ep = groups[g]; ep->patterns != NULL; ep++)
            for (const char *p = ep->patterns; p != NULL && *p != '\0';) {
                p += *p == '/';
                size_t len = strcspn(p, ",");
                all = xgrow(all, &cap, n + 1, sizeof *all);
                all[n++] = spec_entry(p, len, ep->type->plural);
                p = p[len] == ',' ? p + len + 1 : NULL;
            }
    qsort(all, n, sizeof *all, cmp_paths);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, all[i]);
    free(all);
    return 0;
}
