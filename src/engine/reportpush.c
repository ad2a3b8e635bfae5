/*
 * The reporters that post a message about a build: Buildbot's HttpStatusPush
 * (the generator's body as JSON to serverUrl) and GitHubCommentPush (the body
 * as a comment on the pull request of the build), and the
 * MessageFormatterFunction their generators may use.  A Lua function of the
 * configuration (a formatter's `function`, GitHubCommentPush's `issue`) is
 * called with Buildbot's {build = ...}: the build's dictionary as the data API
 * gives it (its properties as plain values), with its builder, its URL, its
 * buildset and, bbmaster's own, its changes (Buildbot's data API
 * builds/N/changes: getChangesForBuild, the changes back to the previous
 * successful build's).  Rendering
 * happens where the configuration's Lua state lives: on the reports' thread
 * for a finished build (reportq.c); the outbox (src/reporters) delivers.
 */
#include <jansson.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "engine/report.h"
#include "reporters/reporters.h"

/* Changes listed at most in a function's context; source stamps of earlier successful
   builds read, at most, to find the previous one. */
#define PUSH_CHANGES_MAX 1000
#define PUSH_SCAN_MAX 10000

/* The newest change of source stamp `ssid` (getChangeFromSSid): its id, or 0; -1 on an
   error. */
static long long change_of_stamp(struct build *b, long long ssid, char **cause)
{
    struct db_param p[] = {DB_INT(ssid)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT changeid FROM changes WHERE sourcestampid = ? ORDER BY "
                                "changeid DESC LIMIT 1",
                                p, 1, cause);
    if (r == NULL)
        return -1;
    long long id = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    return id;
}

/* The source stamps of build `number` or of the buildset: {"repository\nbranch\ncodebase":
   ssid}.  The previous successful build's of the builder (getPrevSuccessfulBuild: the newest
   below `b` with the same repositories, branches and codebases) when `prev`; NULL without one
   (*cause NULL) or on an error. */
static const char *const STAMPS_SQL =
    "SELECT b.number, ss.id, ss.repository, ss.branch, ss.codebase FROM builds b "
    "JOIN buildrequests br ON br.id = b.buildrequestid "
    "JOIN buildset_sourcestamps bs ON bs.buildsetid = br.buildsetid "
    "JOIN sourcestamps ss ON ss.id = bs.sourcestampid "
    "WHERE b.builderid = ? AND b.number < ? AND b.results = 0 ORDER BY b.number DESC LIMIT ?";

static json_t *stamp_set(struct db_res *r, size_t *i)
{
    json_t *set = json_object();
    long long number = db_res_int(r, *i, 0);
    for (; *i < db_res_rows(r) && db_res_int(r, *i, 0) == number; (*i)++) {
        char *key =
            xasprintf("%s\n%s\n%s", db_res_text(r, *i, 2),
                      db_res_null(r, *i, 3) ? "" : db_res_text(r, *i, 3), db_res_text(r, *i, 4));
        json_object_set_new(set, key, json_integer(db_res_int(r, *i, 1)));
        free(key);
    }
    return set;
}

static bool same_keys(const json_t *a, const json_t *b)
{
    const char *k;
    json_t *v;
    if (json_object_size(a) != json_object_size(b))
        return false;
    json_object_foreach((json_t *)a, k, v) if (json_object_get(b, k) == NULL) return false;
    return true;
}

static json_t *build_stamps(struct build *b, char **cause)
{
    struct db_param p[] = {DB_INT(b->bsid)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT 0, ss.id, ss.repository, ss.branch, ss.codebase FROM "
                                "sourcestamps ss JOIN buildset_sourcestamps bs ON "
                                "bs.sourcestampid = ss.id WHERE bs.buildsetid = ?",
                                p, 1, cause);
    if (r == NULL)
        return NULL;
    size_t i = 0;
    json_t *set = db_res_rows(r) > 0 ? stamp_set(r, &i) : json_object();
    db_res_free(r);
    return set;
}

static json_t *previous_stamps(struct build *b, const json_t *mine, char **cause)
{
    struct db_param p[] = {DB_INT(b->builderid), DB_INT(b->number), DB_INT(PUSH_SCAN_MAX)};
    struct db_res *r = db_query(b->e->db, STAMPS_SQL, p, 3, cause);
    if (r == NULL)
        return NULL;
    json_t *found = NULL;
    for (size_t i = 0; i < db_res_rows(r) && found == NULL;) {
        json_t *set = stamp_set(r, &i);
        if (same_keys(set, mine))
            found = json_incref(set);
        json_decref(set);
    }
    db_res_free(r);
    return found;
}

/* Change `from` and its parents (parent_changeids) back to, not including, `to`: at most
   `?` of them, newest first, in one query however far back `to` is. */
static const char *const CHAIN_SQL =
    "WITH RECURSIVE chain(id, n) AS (SELECT CAST(? AS INTEGER), 0 UNION ALL "
    "SELECT c.parent_changeids, chain.n + 1 FROM changes c JOIN chain ON c.changeid = chain.id "
    "WHERE c.parent_changeids > 0 AND c.parent_changeids <> ? AND chain.n + 1 < ?) "
    "SELECT c.changeid, c.author, c.comments, c.branch, c.revision, c.revlink, c.repository, "
    "c.project, c.codebase, c.category, c.when_timestamp FROM chain JOIN changes c ON "
    "c.changeid = chain.id ORDER BY chain.n";

/* Appends the chain's changes to `list` as the data API gives them; 0 or -1. */
static int append_chain(struct build *b, long long from, long long to, json_t *list, char **cause)
{
    static const char *const keys[] = {"author",     "comments", "branch",   "revision", "revlink",
                                       "repository", "project",  "codebase", "category"};
    struct db_param p[] = {DB_INT(from), DB_INT(to),
                           DB_INT((long long)(PUSH_CHANGES_MAX - json_array_size(list)))};
    struct db_res *r = db_query(b->e->db, CHAIN_SQL, p, 3, cause);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *c = json_pack("{s:I}", "changeid", db_res_int(r, i, 0));
        for (size_t k = 0; k < UTIL_NELEM(keys); k++)
            json_object_set_new(c, keys[k],
                                db_res_null(r, i, k + 1) ? json_null()
                                                         : json_string(db_res_text(r, i, k + 1)));
        json_object_set_new(c, "when_timestamp", json_integer(db_res_int(r, i, 10)));
        json_array_append_new(list, c);
    }
    db_res_free(r);
    return 0;
}

/* Buildbot's getChangesForBuild: for each source stamp, its newest change and the parents
   back to the previous successful build's change; NULL on an error. */
static json_t *changes(struct build *b, char **cause)
{
    json_t *mine = build_stamps(b, cause);
    json_t *prev = mine != NULL ? previous_stamps(b, mine, cause) : NULL;
    json_t *list = mine != NULL && *cause == NULL ? json_array() : NULL;
    const char *key;
    json_t *ss;
    json_object_foreach(list != NULL ? mine : NULL, key, ss)
    {
        long long from = change_of_stamp(b, json_integer_value(ss), cause);
        const json_t *pss = json_object_get(prev, key);
        long long to = pss != NULL ? change_of_stamp(b, json_integer_value(pss), cause) : 0;
        if (from < 0 || to < 0 ||
            (from != 0 && from != to && json_array_size(list) < PUSH_CHANGES_MAX &&
             append_chain(b, from, to, list, cause) != 0)) {
            json_decref(list);
            list = NULL;
            break;
        }
    }
    json_decref(mine);
    json_decref(prev);
    return list;
}

static json_t *builder_of(const struct build *b)
{
    const struct cfg_builder *bc = cfg_find_builder(b->e->cfg, b->builder);
    json_t *tags = json_array();
    for (size_t i = 0; bc != NULL && i < bc->n_tags; i++)
        json_array_append_new(tags, json_string(bc->tags[i]));
    json_t *o =
        json_pack("{s:I, s:s, s:o}", "builderid", b->builderid, "name", b->builder, "tags", tags);
    json_object_set_new(o, "description",
                        bc != NULL && bc->description != NULL ? json_string(bc->description)
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
    json_object_set_new(build, "buildset",
                        json_pack("{s:I, s:O}", "bsid", b->bsid, "sourcestamps", b->sourcestamps));
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

/* `now` (a Lua table's value as JSON) laid over `was`, a value of the context: objects key by
   key, lists of the same length item by item, anything else replaced.  An empty table leaves
   a list as it was (Lua cannot tell an empty list from an empty object), and a key Lua could
   not see (a JSON null: nil in Lua) is kept.  `was` is not changed: its parts may be shared
   with the build (its source stamps).  Takes `now`; a new reference. */
static json_t *overlay(json_t *was, json_t *now)
{
    json_t *out = NULL;
    if (json_is_object(was) && json_is_object(now)) {
        out = json_copy(was);
        const char *k;
        json_t *v;
        json_object_foreach(now, k, v)
        {
            json_object_set_new(out, k, overlay(json_object_get(was, k), json_incref(v)));
        }
    } else if (json_is_array(was) && json_is_array(now) &&
               json_array_size(was) == json_array_size(now)) {
        out = json_copy(was);
        for (size_t i = 0; i < json_array_size(now); i++)
            json_array_set_new(
                out, i, overlay(json_array_get(was, i), json_incref(json_array_get(now, i))));
    } else if (json_is_array(was) && json_is_object(now) && json_object_size(now) == 0) {
        out = json_incref(was);
    } else {
        out = json_incref(now);
    }
    json_decref(now);
    return out;
}

int report_additional_context(struct build *b, const struct cfg_generator *g, json_t **ctx,
                              char **cause)
{
    lua_State *L = b->e->cfg->lua;
    int top = lua_gettop(L);
    if (push_field(L, g->ref, "message_formatter", "build_additional_context") != LUA_TFUNCTION) {
        lua_settop(L, top);
        return util_cause(cause, "the formatter has no build_additional_context function");
    }
    cfg_lua_push_json(L, *ctx); /* kept below the call: the function may change it */
    lua_insert(L, -2);
    lua_pushvalue(L, -2);
    if (cfg_lua_call(L, 1, 1, cause) < 0) {
        lua_settop(L, top);
        return -1;
    }
    int t = lua_type(L, -1);
    if (t != LUA_TNIL && t != LUA_TTABLE) {
        util_cause(cause, "build_additional_context returned a %s, not a table or nil",
                   luaL_typename(L, -1));
        lua_settop(L, top);
        return -1;
    }
    json_t *now = overlay(*ctx, cfg_lua_to_json(L, -2));
    if (t == LUA_TTABLE) /* the keys it returned, over the context as it left it */
        now = overlay(now, cfg_lua_to_json(L, -1));
    lua_settop(L, top);
    if (!json_is_object(now)) {
        json_decref(now);
        return util_cause(cause, "build_additional_context left no context");
    }
    json_decref(*ctx);
    *ctx = now;
    return 0;
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
    if (report_out_post(b->e, p, &cause) < 0) {
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
