/*
 * Which changes a scheduler takes, as Buildbot's ChangeFilter decides: for
 * each of branch, repository, project, category and codebase, FIELD (one of
 * its values), FIELD_not_eq (none of them), FIELD_re and FIELD_not_re (a
 * regular expression matching at the start, as Python's re.match) and
 * FIELD_fn (a Lua function of the value); property_eq, property_not_eq,
 * property_re and property_not_re on the change's properties; filter_fn on
 * the whole change.  A single_branch scheduler's
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

static int is_match(const char *want, const char *value, bool re)
{
    return value != NULL && (re ? re_match(want, value) : strcmp(want, value) == 0);
}

/* Whether `value` is one of the strings at `key` of the table at absolute index `idx` (a
   string or a list), or with `re` matches one of those regular expressions at its start;
   -1 when `key` is absent.  A null value is never one of them. */
static int match_any(lua_State *L, int idx, const char *key, const char *value, bool re)
{
    int t = lua_getfield(L, idx, key), found = t == LUA_TNIL ? -1 : 0;
    if (t == LUA_TSTRING) {
        found = is_match(lua_tostring(L, -1), value, re);
    } else if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n && found == 0; i++) {
            if (lua_geti(L, -1, i) == LUA_TSTRING)
                found = is_match(lua_tostring(L, -1), value, re);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return found;
}

/* Buildbot's four kinds of filter on a value: equal to one, equal to none, matching one,
   matching none. */
static const struct {
    const char *suffix;
    bool re, negate;
} kinds[] = {
    {"", false, false}, {"_not_eq", false, true}, {"_re", true, false}, {"_not_re", true, true}};

/* FIELD, FIELD_not_eq, FIELD_re and FIELD_not_re of the filter at `f`, each absent or
   satisfied by `value`. */
static bool field_ok(lua_State *L, int f, const char *field, const char *value)
{
    for (size_t i = 0; i < UTIL_NELEM(kinds); i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%s", field, kinds[i].suffix);
        int m = match_any(L, f, key, value, kinds[i].re);
        if (m >= 0 && m == kinds[i].negate)
            return false;
    }
    return true;
}

/* property_eq, property_not_eq, property_re, property_not_re: tables of property name ->
   value(s); a property the change lacks is "" (Buildbot's getProperty(name, '')), one that
   is not a string is never equal to nor matches anything. */
static bool properties_ok(lua_State *L, int f, const json_t *props)
{
    bool ok = true;
    for (size_t i = 0; i < UTIL_NELEM(kinds) && ok; i++) {
        char key[32];
        snprintf(key, sizeof key, "property%s", i == 0 ? "_eq" : kinds[i].suffix);
        int t = lua_getfield(L, f, key) == LUA_TTABLE ? lua_gettop(L) : 0;
        lua_pushnil(L);
        while (t > 0 && ok && lua_next(L, t) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                continue;
            const json_t *v = json_object_get(props, lua_tostring(L, -1));
            int m = match_any(L, t, lua_tostring(L, -1), v == NULL ? "" : json_string_value(v),
                              kinds[i].re);
            ok = !(m >= 0 && m == kinds[i].negate);
        }
        lua_settop(L, f);
    }
    return ok;
}

/* Calls the function at `idx` with the change; its truth, false if it failed. */
static bool call_fn(lua_State *L, int idx, const json_t *change, const char *what, bool *failed)
{
    lua_pushvalue(L, idx);
    filter_push_change(L, change);
    char *cause = NULL;
    if (cfg_lua_call(L, 1, 1, &cause) != 0) {
        log_error("%s: %s", what, cause);
        free(cause);
        *failed = true;
        return false;
    }
    bool yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* FIELD_fn(value) of the filter at `f`: absent, or true. */
static bool field_fn_ok(lua_State *L, int f, const char *field, const char *value)
{
    char key[32];
    snprintf(key, sizeof key, "%s_fn", field);
    bool ok = true;
    if (lua_getfield(L, f, key) == LUA_TFUNCTION) {
        lua_pushstring(L, value);
        char *cause = NULL;
        int rc = cfg_lua_call(L, 1, 1, &cause);
        if (rc != 0)
            log_error("change_filter %s: %s", key, cause);
        free(cause);
        ok = rc == 0 && lua_toboolean(L, -1);
    }
    lua_settop(L, f);
    return ok;
}

/* Buildbot's ChangeFilter.filter_change, in its order: filter_fn, the *_fn, the fields'
   filters, the properties'. */
static bool filter_table(lua_State *L, int f, const json_t *change)
{
    static const char *const fns[] = {"project", "codebase", "repository", "category", "branch"};
    static const char *const fields[] = {"project", "repository", "branch", "category", "codebase"};
    bool ok = true, failed = false;
    if (lua_getfield(L, f, "filter_fn") == LUA_TFUNCTION)
        ok = call_fn(L, lua_gettop(L), change, "change_filter filter_fn", &failed);
    lua_settop(L, f);
    for (size_t i = 0; i < UTIL_NELEM(fns) && ok; i++)
        ok = field_fn_ok(L, f, fns[i], json_string_value(json_object_get(change, fns[i])));
    for (size_t i = 0; i < UTIL_NELEM(fields) && ok; i++)
        ok = field_ok(L, f, fields[i], json_string_value(json_object_get(change, fields[i])));
    return ok && properties_ok(L, f, json_object_get(change, "properties"));
}

bool filter_accepts(struct sched_one *o, const json_t *change)
{
    lua_State *L = o->s->cfg->lua;
    int top = lua_gettop(L);
    sched_table(o);
    int t = lua_gettop(L);
    bool ok =
        match_any(L, t, "branch", json_string_value(json_object_get(change, "branch")), false) != 0;
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
