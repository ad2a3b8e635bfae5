/*
 * What the reporters hear of a build: Buildbot's BuildStartEndStatusGenerator
 * for GitHubStatusPush.  As a build starts (builds new) and as it finishes
 * (builds finished), each configured reporter runs its generators in order;
 * the first that wants the build (its builders, tags, schedulers and branches
 * filters, as is_message_needed_by_props) gives the description (its
 * start_formatter or end_formatter rendered against the build's properties,
 * "Build started." and "Build done." by default), and one commit status is
 * stored in the outbox for each source stamp with a GitHub repository and a
 * revision, as GitHubStatusPush.sendMessage does.  Rendering happens here,
 * on the engine's thread, because the renderables live in the configuration's
 * Lua state; delivery is the outbox's (src/reporters), which never waits.
 */
#include <jansson.h>
#include <string.h>

#include "engine/internal.h"
#include "reporters/reporters.h"

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static const char *prop_text(const struct build *b, const char *name)
{
    const json_t *v = props_get(&b->props, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* is_message_needed_by_props: a list given (even empty) must contain the build's value. */
static bool wanted(const struct build *b, const struct cfg_generator *g,
                   const struct cfg_builder *bc)
{
    if (g->builders != NULL && !listed(g->builders, g->n_builders, b->builder))
        return false;
    if (g->schedulers != NULL && !listed(g->schedulers, g->n_schedulers, prop_text(b, "scheduler")))
        return false;
    if (g->branches != NULL && !listed(g->branches, g->n_branches, prop_text(b, "branch")))
        return false;
    if (g->tags != NULL) {
        bool any = false;
        for (size_t i = 0; bc != NULL && i < bc->n_tags && !any; i++)
            any = listed(g->tags, g->n_tags, bc->tags[i]);
        if (!any)
            return false;
    }
    return true;
}

/* Renders field `key` of the table `ref` (or, for a formatter, its template) as text; `def`
   when it is absent.  NULL with *cause when rendering failed. */
static char *render_field(struct build *b, lua_State *L, int ref, const char *key, const char *def,
                          char **cause)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    int t = lua_getfield(L, -1, key);
    if (t == LUA_TTABLE && strcmp(key, "context") != 0) {
        lua_getfield(L, -1, "template"); /* a message_formatter_renderable */
        lua_remove(L, -2);
        t = lua_type(L, -1);
    }
    char *text = NULL;
    if (t == LUA_TNIL) {
        text = xstrdup(def);
    } else {
        struct render_ctx c = build_render_ctx(b);
        c.L = L;
        json_t *v = render(&c, lua_gettop(L), cause);
        if (v != NULL)
            text = json_is_string(v) ? xstrdup(json_string_value(v)) : props_str(v);
        json_decref(v);
    }
    lua_pop(L, 2);
    return text;
}

static const char *state_of(const struct build *b, bool complete)
{
    if (!complete)
        return "pending";
    switch (b->results) {
    case RES_SUCCESS:
    case RES_WARNINGS:
    case RES_SKIPPED:
        return "success";
    case RES_FAILURE:
        return "failure";
    case RES_RETRY:
        return "pending";
    default: /* EXCEPTION, CANCELLED */
        return "error";
    }
}

static const char *ss_field(const json_t *ss, const char *key)
{
    const json_t *v = json_object_get(ss, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* One status per source stamp that names a GitHub repository and has a revision. */
static void post_statuses(struct build *b, const struct cfg_reporter *rc, struct rep_status *st)
{
    size_t i;
    json_t *ss;
    json_array_foreach(b->sourcestamps, i, ss)
    {
        char owner[256], repo[256];
        const char *sha = ss_field(ss, "revision");
        if (rep_github_repo(ss_field(ss, "project"), ss_field(ss, "repository"), owner,
                            sizeof owner, repo, sizeof repo) < 0) {
            log_info("build %lld: %s: skipped status update because required repo "
                     "information is missing",
                     b->id, rc->name);
            continue;
        }
        if (sha == NULL || sha[0] == '\0') {
            const char *cb = ss_field(ss, "codebase");
            log_info("build %lld: %s: skipped status update for codebase %s, context '%s'", b->id,
                     rc->name, cb != NULL ? cb : "", st->context);
            continue;
        }
        st->owner = owner;
        st->repo = repo;
        st->sha = sha;
        char *cause = NULL;
        if (rep_enqueue(b->e->rep, st, &cause) < 0) {
            log_error("build %lld: %s: status \"%s\" for %s/%s at %s not queued: %s", b->id,
                      rc->name, st->state, owner, repo, sha, cause);
            free(cause);
        }
    }
}

static void report_one(struct build *b, const struct cfg_reporter *rc, bool complete)
{
    const struct cfg *cfg = b->e->cfg;
    lua_State *L = cfg->lua;
    int top = lua_gettop(L);
    const struct cfg_builder *bc = cfg_find_builder(cfg, b->builder);
    for (size_t i = 0; i < rc->n_generators; i++) {
        const struct cfg_generator *g = &rc->generators[i];
        if (!wanted(b, g, bc))
            continue;
        char *cause = NULL;
        char *desc = render_field(b, L, g->ref, complete ? "end_formatter" : "start_formatter",
                                  complete ? "Build done." : "Build started.", &cause);
        /* the default context: Interpolate('buildbot/%(prop:buildername)s') */
        char *def = xasprintf("buildbot/%s", b->builder);
        char *context = desc == NULL ? NULL : render_field(b, L, rc->ref, "context", def, &cause);
        free(def);
        lua_settop(L, top);
        if (desc == NULL || context == NULL) {
            log_error("build %lld: %s: %s", b->id, rc->name, cause);
        } else {
            char *url = xasprintf("%s#/builders/%lld/builds/%lld", cfg->buildbot_url, b->builderid,
                                  b->number);
            struct rep_status st = {.reporter = rc->name,
                                    .state = state_of(b, complete),
                                    .description = desc,
                                    .target_url = url,
                                    .context = context};
            post_statuses(b, rc, &st);
            free(url);
        }
        free(cause);
        free(desc);
        free(context);
        return; /* sendMessage posts the first report only */
    }
}

void report_build(struct build *b, bool complete)
{
    struct engine *e = b->e;
    if (e->rep == NULL || e->cfg == NULL || b->sourcestamps == NULL)
        return;
    for (size_t i = 0; i < e->cfg->n_reporters; i++)
        report_one(b, &e->cfg->reporters[i], complete);
}
