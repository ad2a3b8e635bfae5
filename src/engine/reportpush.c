/*
 * The reporters that post a message about a build: Buildbot's HttpStatusPush
 * (the generator's body as JSON to serverUrl) and GitHubCommentPush (the body
 * as a comment on the pull request of the build), and the
 * MessageFormatterFunction their generators may use.  A Lua function of the
 * configuration (a formatter's `function`, GitHubCommentPush's `issue`) is
 * called with Buildbot's {build = ...}: the build's dictionary as the data API
 * gives it (its properties as plain values), with its builder, its URL, its
 * buildset and, bbmaster's own, the changes of its source stamps.  Rendering
 * happens on the engine's thread, where the configuration's Lua state lives;
 * the outbox (src/reporters) delivers.
 */
#include <jansson.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "reporters/reporters.h"

/* Changes listed at most in a function's context. */
#define PUSH_CHANGES_MAX 1000

static json_t *changes(struct build *b, char **cause)
{
    struct db_param p[] = {DB_INT(b->bsid), DB_INT(PUSH_CHANGES_MAX)};
    struct db_res *r =
        db_query(b->e->db,
                 "SELECT c.changeid, c.author, c.comments, c.branch, c.revision, c.revlink, "
                 "c.repository, c.project, c.codebase, c.category, c.when_timestamp "
                 "FROM changes c JOIN buildset_sourcestamps bs ON bs.sourcestampid = "
                 "c.sourcestampid WHERE bs.buildsetid = ? ORDER BY c.changeid LIMIT ?",
                 p, 2, cause);
    if (r == NULL)
        return NULL;
    static const char *const keys[] = {"author",     "comments", "branch",   "revision", "revlink",
                                       "repository", "project",  "codebase", "category"};
    json_t *list = json_array();
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *c = json_pack("{s:I, s:I}", "changeid", db_res_int(r, i, 0), "when_timestamp",
                              db_res_int(r, i, 10));
        for (size_t k = 0; k < UTIL_NELEM(keys); k++)
            json_object_set_new(c, keys[k],
                                db_res_null(r, i, k + 1) ? json_null()
                                                         : json_string(db_res_text(r, i, k + 1)));
        json_array_append_new(list, c);
    }
    db_res_free(r);
    return list;
}

static json_t *builder_of(const struct build *b)
{
    const struct cfg_builder *bc = cfg_find_builder(b->e->cfg, b->builder);
    json_t *tags = json_array();
    for (size_t i = 0; bc != NULL && i < bc->n_tags; i++)
        json_array_append_new(tags, json_string(bc->tags[i]));
    json_t *o = json_pack("{s:I, s:s, s:o}", "builderid", b->builderid, "name", b->builder, "tags",
                          tags);
    json_object_set_new(o, "description", bc != NULL && bc->description != NULL
                                              ? json_string(bc->description)
                                              : json_null());
    return o;
}

/* Buildbot's {build = ...} for MessageFormatterFunction. */
static json_t *function_ctx(struct build *b, const struct cfg_formatter *f, const char *state,
                            bool complete, char **cause)
{
    json_t *build = report_build_object(b, f, state, complete, cause);
    json_t *ch = build != NULL ? changes(b, cause) : NULL;
    if (ch == NULL) {
        json_decref(build);
        return NULL;
    }
    char *url = xasprintf("%s#/builders/%lld/builds/%lld", b->e->cfg->buildbot_url, b->builderid,
                          b->number);
    json_object_set_new(build, "builder", builder_of(b));
    json_object_set_new(build, "url", json_string(url));
    json_object_set_new(build, "buildset", json_pack("{s:I, s:O}", "bsid", b->bsid, "sourcestamps",
                                                     b->sourcestamps));
    json_object_set_new(build, "changes", ch);
    free(url);
    return json_pack("{s:o}", "build", build);
}

/* Calls the function at the top of L's stack with the context; its value (nil: JSON null)
   or NULL with *cause.  The function is popped. */
static json_t *call(lua_State *L, const json_t *ctx, char **cause)
{
    cfg_lua_push_json(L, ctx);
    if (cfg_lua_call(L, 1, 1, cause) < 0)
        return NULL;
    json_t *v = lua_isnil(L, -1) ? json_null() : cfg_lua_to_json(L, -1);
    lua_pop(L, 1);
    if (v == NULL)
        util_cause(cause, "the function's value cannot be made JSON");
    return v;
}

/* Pushes field `key` of field `sub` (or of the table itself when sub is NULL) of the table
   `ref`; its type. */
static int push_field(lua_State *L, int ref, const char *sub, const char *key)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (sub != NULL) {
        lua_getfield(L, -1, sub);
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    int t = lua_getfield(L, -1, key);
    lua_remove(L, -2);
    return t;
}

char *report_function_body(struct build *b, const struct cfg_generator *g, const char *state,
                           bool complete, char **cause)
{
    lua_State *L = b->e->cfg->lua;
    json_t *ctx = function_ctx(b, g->fmt, state, complete, cause);
    if (ctx == NULL)
        return NULL;
    json_t *v = NULL;
    if (g->ref == LUA_NOREF) { /* HttpStatusPush's default: lambda context: context['build'] */
        v = json_incref(json_object_get(ctx, "build"));
    } else if (push_field(L, g->ref, "message_formatter", "function") == LUA_TFUNCTION) {
        v = call(L, ctx, cause);
    } else {
        lua_pop(L, 1);
        util_cause(cause, "the formatter has no function");
    }
    json_decref(ctx);
    char *text = NULL;
    if (v != NULL && !json_is_null(v)) {
        if (g->fmt->json)
            text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        else if (json_is_string(v))
            text = xstrdup(json_string_value(v));
        else
            util_cause(cause, "the formatter's function returned a %s, not a string",
                       json_is_object(v) ? "table" : "value");
    }
    json_decref(v);
    return text;
}

/* GitHubCommentPush's issue: the `issue` function's number, else Buildbot's
   refs/pull/N/(head|merge) in the branch property.  0: none; -1 with *cause. */
static long long issue_of(struct build *b, const struct cfg_reporter *rc, const char *state,
                          bool complete, char **cause)
{
    lua_State *L = b->e->cfg->lua;
    if (push_field(L, rc->ref, NULL, "issue") == LUA_TFUNCTION) {
        json_t *ctx = function_ctx(b, NULL, state, complete, cause);
        json_t *v = ctx != NULL ? call(L, ctx, cause) : (lua_pop(L, 1), NULL);
        json_decref(ctx);
        if (v == NULL)
            return -1;
        long long n = json_is_integer(v)  ? json_integer_value(v)
                      : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10)
                                          : 0;
        bool bad = !json_is_null(v) && n <= 0;
        json_decref(v);
        if (bad)
            return util_cause(cause, "'issue' returned something that is not an issue number");
        return n;
    }
    lua_pop(L, 1);
    const json_t *br = props_get(&b->props, "branch");
    const char *s = json_is_string(br) ? strstr(json_string_value(br), "refs/pull/") : NULL;
    for (; s != NULL; s = strstr(s + 1, "refs/pull/")) {
        char *end;
        long long n = strtoll(s + 10, &end, 10);
        if (end > s + 10 && n > 0 &&
            (strncmp(end, "/head", 5) == 0 || strncmp(end, "/merge", 6) == 0))
            return n;
    }
    return 0;
}

static void queue(struct build *b, const struct rep_post *p)
{
    char *cause = NULL;
    if (rep_enqueue_post(b->e->rep, p, &cause) < 0) {
        log_error("%s: %s: not queued: %s", p->what, p->reporter, cause);
        free(cause);
    }
}

/* One comment per source stamp with a GitHub repository and a revision, as Buildbot. */
static void comment(struct build *b, const struct cfg_reporter *rc, const char *what,
                    const char *text, bool complete)
{
    char *cause = NULL;
    long long issue = issue_of(b, rc, what, complete, &cause);
    if (issue < 0) {
        log_error("%s: %s: %s", what, rc->name, cause);
        free(cause);
        return;
    }
    size_t i;
    json_t *ss;
    json_array_foreach(b->sourcestamps, i, ss)
    {
        char owner[256], repo[256];
        const json_t *p = json_object_get(ss, "project"), *r = json_object_get(ss, "repository");
        const json_t *sha = json_object_get(ss, "revision");
        if (rep_github_repo(json_string_value(p), json_string_value(r), owner, sizeof owner, repo,
                            sizeof repo) < 0) {
            log_info("%s: %s: skipped status update because required repo information is "
                     "missing",
                     what, rc->name);
            continue;
        }
        if (!json_is_string(sha) || json_string_length(sha) == 0)
            continue;
        if (issue == 0) {
            log_info("%s: %s: skipped status update for repo %s sha %s as issue is not "
                     "specified",
                     what, rc->name, repo, json_string_value(sha));
            continue;
        }
        char *path = xasprintf("/repos/%s/%s/issues/%lld/comments", owner, repo, issue);
        char *desc = xasprintf("%s on %s/%s#%lld", what, owner, repo, issue);
        struct rep_post post = {.reporter = rc->name,
                                .kind = REP_KIND_COMMENT,
                                .path = path,
                                .body = text,
                                .what = desc};
        queue(b, &post);
        free(path);
        free(desc);
    }
}

void report_post(struct build *b, const struct cfg_reporter *rc, const struct cfg_generator *g,
                 const char *what, const char *message, bool complete)
{
    if (rc->kind == CFG_REP_GITHUB_COMMENT) {
        comment(b, rc, what, message, complete);
        return;
    }
    /* a text body is posted as a JSON string (Buildbot posts none at all) */
    bool json = g->fmt != NULL && g->fmt->json;
    json_t *s = json ? NULL : json_string(message);
    char *text = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (!json && text == NULL) {
        log_error("%s: %s: the message is not UTF-8 text; not posted", what, rc->name);
        return;
    }
    struct rep_post post = {.reporter = rc->name,
                            .kind = REP_KIND_HTTP,
                            .path = "",
                            .body = text != NULL ? text : message,
                            .what = what};
    queue(b, &post);
    json_decref(s);
    free(text);
}
