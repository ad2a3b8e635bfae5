/*
 * The route table: every endpoint, tried in Buildbot's order (numeric
 * placeholders before names), and the root links of GET /api/v2.
 */
#include "www/api/api.h"

#include <string.h>

static const struct www_endpoint *const groups[] = {
    api_builders_eps, api_builds_eps,   api_steps_eps,   api_logs_eps, api_workers_eps,
    api_masters_eps,  api_requests_eps, api_changes_eps, api_misc_eps, api_codebases_eps,
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
