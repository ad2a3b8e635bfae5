/*
 * Which changes a scheduler takes, as Buildbot's ChangeFilter decides:
 * every given field (branch, repository, project, category, codebase) must
 * be one of its values, every *_re field must match at the start (Python's
 * re.match), and filter_fn must say yes.  A single_branch scheduler's
 * `branch` is a filter on the branch.  fileIsImportant and filter_fn get the
 * change as a table with Buildbot's Change attributes (files, comments, who,
 * branch, revision, ...).
 */
#include "schedulers/internal.h"

#include <lauxlib.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

void filter_push_change(lua_State *L, const json_t *change)
{
    cfg_lua_push_json(L, change);
    static const char *const alias[][2] = {
        {"who", "author"}, {"when", "when_timestamp"}, {"number", "changeid"}};
    for (size_t i = 0; i < UTIL_NELEM(alias); i++) {
        lua_getfield(L, -1, alias[i][1]);
        lua_setfield(L, -2, alias[i][0]);
    }
}

/* A string, a list of strings, or absent (true). */
static bool value_in(lua_State *L, int idx, const char *key, const char *value)
{
    int t = lua_getfield(L, idx, key);
    bool ok = t == LUA_TNIL;
    if (t == LUA_TSTRING) {
        ok = value != NULL && strcmp(lua_tostring(L, -1), value) == 0;
    } else if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n && !ok; i++) {
            if (lua_geti(L, -1, i) == LUA_TSTRING)
                ok = value != NULL && strcmp(lua_tostring(L, -1), value) == 0;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return ok;
}

static bool re_match(const char *pattern, const char *value)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED, &err, &off, NULL);
    if (re == NULL) {
        log_warn("change_filter: bad regular expression \"%s\"", pattern);
        return false;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)value, strlen(value), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

/* A regular expression or a list of them, or absent (true); a null value never matches. */
static bool matches(lua_State *L, int idx, const char *key, const char *value)
{
    int t = lua_getfield(L, idx, key);
    bool ok = t == LUA_TNIL;
    if (t == LUA_TSTRING) {
        ok = value != NULL && re_match(lua_tostring(L, -1), value);
    } else if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n && !ok; i++) {
            if (lua_geti(L, -1, i) == LUA_TSTRING)
                ok = value != NULL && re_match(lua_tostring(L, -1), value);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return ok;
}

/* Calls the function at `idx` with the change; its truth, false if it failed. */
static bool call_fn(lua_State *L, int idx, const json_t *change, const char *what, bool *failed)
{
    lua_pushvalue(L, idx);
    filter_push_change(L, change);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        log_error("%s: %s", what, lua_tostring(L, -1));
        lua_pop(L, 1);
        *failed = true;
        return false;
    }
    bool yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

static bool filter_table(lua_State *L, int f, const json_t *change)
{
    static const char *const fields[] = {"branch", "repository", "project", "category", "codebase"};
    for (size_t i = 0; i < UTIL_NELEM(fields); i++) {
        const char *v = json_string_value(json_object_get(change, fields[i]));
        char re[32];
        snprintf(re, sizeof re, "%s_re", fields[i]);
        if (!value_in(L, f, fields[i], v) || !matches(L, f, re, v))
            return false;
    }
    bool ok = true, failed = false;
    if (lua_getfield(L, f, "filter_fn") == LUA_TFUNCTION)
        ok = call_fn(L, lua_gettop(L), change, "change_filter filter_fn", &failed);
    lua_pop(L, 1);
    return ok;
}

bool filter_accepts(struct sched_one *o, const json_t *change)
{
    lua_State *L = o->s->cfg->lua;
    int top = lua_gettop(L);
    sched_table(o);
    int t = lua_gettop(L);
    bool ok = value_in(L, t, "branch", json_string_value(json_object_get(change, "branch")));
    if (ok && lua_getfield(L, t, "change_filter") == LUA_TTABLE)
        ok = filter_table(L, lua_gettop(L), change);
    lua_settop(L, top);
    return ok;
}

int filter_important(struct sched_one *o, const json_t *change)
{
    lua_State *L = o->s->cfg->lua;
    int top = lua_gettop(L);
    sched_table(o);
    int rc = 1;
    if (lua_getfield(L, -1, "fileIsImportant") == LUA_TFUNCTION) {
        bool failed = false;
        char what[300];
        snprintf(what, sizeof what, "scheduler '%s': fileIsImportant", o->name);
        rc = call_fn(L, lua_gettop(L), change, what, &failed) ? 1 : 0;
        if (failed)
            rc = -1;
    }
    lua_settop(L, top);
    return rc;
}
