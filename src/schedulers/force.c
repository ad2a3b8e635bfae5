/*
 * Force schedulers as /api/v2/forceschedulers shows them: each scheduler's
 * form, a tree of parameter specs built with the defaults and rules of
 * Buildbot 4.3's parameter classes (StringParameter, UserNameParameter,
 * NestedParameter, CodebaseParameter...), from the bbm.schedulers.force and
 * bbm.params.* tables of the configuration.  Runs on the engine thread (the
 * configuration's Lua state is the engine's); the web serves the result.
 */
#include "schedulers/internal.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

/* What a parameter kind brings beyond BaseParameter's attributes. */
struct kind {
    const char *name; /* param.<name> */
    const char *type;
    int size;       /* StringParameter and subclasses: > 0 */
    bool text_area; /* cols, rows */
    bool choices;
    bool hide;
    bool need_email;
    json_t *(*deflt)(void);
};

static json_t *empty_string(void)
{
    return json_string("");
}

static json_t *zero(void)
{
    return json_integer(0);
}

static const struct kind kinds[] = {
    {"string", "text", 10, false, false, false, false, empty_string},
    {"text", "textarea", 10, true, false, false, false, empty_string},
    {"int", "int", 10, false, false, false, false, zero},
    {"bool", "bool", 0, false, false, false, false, empty_string},
    {"username", "username", 30, false, false, false, true, empty_string},
    {"choice_string", "list", 0, false, true, false, false, empty_string},
    {"fixed", "fixed", 0, false, false, true, false, empty_string},
};

/* How deep a value or a nest of parameters may go (a table may even contain itself). */
#define MAX_DEPTH 16

static json_t *lua_to_json(lua_State *L, int idx, int depth);

static json_t *table_to_json(lua_State *L, int idx, int depth)
{
    if (depth > MAX_DEPTH)
        return json_null();
    idx = lua_absindex(L, idx);
    lua_Integer n = luaL_len(L, idx);
    json_t *out = n > 0 ? json_array() : json_object();
    if (n > 0) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            json_array_append_new(out, lua_to_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
        return out;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_tostring(L, -2)[0] != '_')
            json_object_set_new(out, lua_tostring(L, -2), lua_to_json(L, -1, depth + 1));
        lua_pop(L, 1);
    }
    return out;
}

static json_t *lua_to_json(lua_State *L, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        return lua_isinteger(L, idx) ? json_integer(lua_tointeger(L, idx))
                                     : json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        json_t *s = json_string(lua_tostring(L, idx));
        return s != NULL ? s : json_null();
    }
    case LUA_TTABLE:
        return table_to_json(L, idx, depth);
    default:
        return json_null();
    }
}

/* Field `key` of the table at idx as JSON, or `dflt` (stolen) when absent. */
static json_t *field(lua_State *L, int idx, const char *key, json_t *dflt)
{
    lua_getfield(L, idx, key);
    json_t *v = lua_isnil(L, -1) ? dflt : lua_to_json(L, -1, 0);
    if (v != dflt)
        json_decref(dflt);
    lua_pop(L, 1);
    return v;
}

static const char *str_field(lua_State *L, int idx, const char *key, char *buf, size_t cap)
{
    lua_getfield(L, idx, key);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (s != NULL)
        snprintf(buf, cap, "%s", s);
    lua_pop(L, 1);
    return s != NULL ? buf : NULL;
}

/* BaseParameter's attributes: name, fullName (under `parent`), label, tablabel... */
static json_t *base_spec(lua_State *L, int idx, const char *name, const char *label,
                         const char *parent, const char *type, json_t *deflt, bool hide)
{
    char buf[256], tab[256];
    const char *l = idx != 0 ? str_field(L, idx, "label", buf, sizeof buf) : NULL;
    l = l != NULL ? l : label != NULL ? label : name;
    const char *t = idx != 0 ? str_field(L, idx, "tablabel", tab, sizeof tab) : NULL;
    json_t *full = parent != NULL && *parent != '\0' && *name != '\0'
                       ? json_sprintf("%s_%s", parent, name)
                   : *name != '\0'                     ? json_string(name)
                   : parent != NULL && *parent != '\0' ? json_string(parent)
                                                       : json_null();
    json_t *o = json_pack("{sssossssssss}", "name", name, "fullName", full, "label", l, "tablabel",
                          t != NULL ? t : l, "type", type, "tooltip", "");
    bool has = idx != 0;
    json_object_set_new(o, "default", has ? field(L, idx, "default", deflt) : deflt);
    json_object_set_new(o, "required",
                        has ? field(L, idx, "required", json_false()) : json_false());
    json_object_set_new(o, "multiple",
                        has ? field(L, idx, "multiple", json_false()) : json_false());
    json_object_set_new(o, "regex", has ? field(L, idx, "regex", json_null()) : json_null());
    json_object_set_new(o, "hide",
                        has ? field(L, idx, "hide", json_boolean(hide)) : json_boolean(hide));
    json_object_set_new(o, "maxsize", has ? field(L, idx, "maxsize", json_null()) : json_null());
    json_object_set_new(o, "autopopulate",
                        has ? field(L, idx, "autopopulate", json_null()) : json_null());
    return o;
}

static json_t *param_spec(lua_State *L, int idx, const char *parent);

/* A StringParameter made by Buildbot itself (codebase fields, the default reason...). */
static json_t *implicit_string(const char *name, const char *label, const char *parent,
                               const char *dflt, int size)
{
    json_t *o = base_spec(NULL, 0, name, label, parent, "text", json_string(dflt), false);
    json_object_set_new(o, "size", json_integer(size));
    return o;
}

/* NestedParameter: layout, columns (2 when 4 or more children show, else 1), fields. */
static json_t *nested(lua_State *L, int idx, json_t *o, json_t *fields)
{
    size_t i, visible = 0;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        visible += !json_is_true(json_object_get(f, "hide"));
    }
    json_object_set_new(o, "layout",
                        idx != 0 ? field(L, idx, "layout", json_string("vertical"))
                                 : json_string("vertical"));
    json_t *cols = json_integer(visible >= 4 ? 2 : 1);
    json_object_set_new(o, "columns", idx != 0 ? field(L, idx, "columns", cols) : cols);
    json_object_set_new(o, "fields", fields);
    return o;
}

static int nest_depth; /* of nested_spec calls (engine thread only) */

static json_t *nested_spec(lua_State *L, int idx, const char *parent)
{
    char name[128] = "";
    str_field(L, idx, "name", name, sizeof name);
    json_t *o = base_spec(L, idx, name, NULL, parent, "nested", json_string(""), false);
    const char *full = json_string_value(json_object_get(o, "fullName"));
    char mine[256];
    snprintf(mine, sizeof mine, "%s", full != NULL ? full : "");
    json_t *fields = json_array();
    lua_getfield(L, idx, "fields");
    for (lua_Integer i = 1; nest_depth < MAX_DEPTH && lua_istable(L, -1) && i <= luaL_len(L, -1);
         i++) {
        lua_rawgeti(L, -1, i);
        nest_depth++;
        json_array_append_new(fields, param_spec(L, lua_gettop(L), mine));
        nest_depth--;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return nested(L, idx, o, fields);
}

/* CodebaseParameter: branch, project, repository, revision (sorted), each a string field
   by default, fixed when given as a string, left out when false, or the given param. */
static json_t *codebase_spec(lua_State *L, int idx, const char *codebase)
{
    static const char *const keys[] = {"branch", "project", "repository", "revision"};
    static const char *const labels[] = {"Branch:", "Project:", "Repository:", "Revision:"};
    char name[128], label[256];
    const char *n = idx != 0 ? str_field(L, idx, "name", name, sizeof name) : NULL;
    n = n != NULL ? n : codebase;
    snprintf(label, sizeof label, "Codebase: %s", codebase);
    json_t *o = base_spec(L, idx, n, *codebase != '\0' ? label : NULL, NULL, "nested",
                          json_string(""), false);
    json_t *fields = json_array();
    for (size_t k = 0; k < UTIL_NELEM(keys); k++) {
        int t = LUA_TNIL;
        if (idx != 0) {
            lua_getfield(L, idx, keys[k]);
            t = lua_type(L, -1);
        }
        if (t == LUA_TNIL)
            json_array_append_new(fields, implicit_string(keys[k], labels[k], n, "", 10));
        else if (t == LUA_TSTRING)
            json_array_append_new(fields, base_spec(NULL, 0, keys[k], NULL, n, "fixed",
                                                    json_string(lua_tostring(L, -1)), true));
        else if (t == LUA_TTABLE)
            json_array_append_new(fields, param_spec(L, lua_gettop(L), n));
        if (idx != 0)
            lua_pop(L, 1);
    }
    return nested(L, idx, o, fields);
}

static json_t *param_spec(lua_State *L, int idx, const char *parent)
{
    char kind[64] = "", name[128] = "";
    str_field(L, idx, CFG_KIND, kind, sizeof kind);
    str_field(L, idx, "name", name, sizeof name);
    const char *k = strncmp(kind, "param.", 6) == 0 ? kind + 6 : kind;
    if (strcmp(k, "nested") == 0)
        return nested_spec(L, idx, parent);
    if (strcmp(k, "codebase") == 0) {
        char cb[128] = "";
        str_field(L, idx, "codebase", cb, sizeof cb);
        return codebase_spec(L, idx, cb);
    }
    const struct kind *p = &kinds[0];
    for (size_t i = 0; i < UTIL_NELEM(kinds); i++)
        if (strcmp(kinds[i].name, k) == 0)
            p = &kinds[i];
    const char *label = strcmp(k, "username") == 0 ? "Your name:" : NULL;
    if (strcmp(k, "username") == 0 && *name == '\0')
        snprintf(name, sizeof name, "username");
    json_t *o = base_spec(L, idx, name, label, parent, p->type, p->deflt(), p->hide);
    if (p->size > 0)
        json_object_set_new(o, "size", field(L, idx, "size", json_integer(p->size)));
    if (p->text_area) {
        json_object_set_new(o, "cols", field(L, idx, "cols", json_integer(80)));
        json_object_set_new(o, "rows", field(L, idx, "rows", json_integer(20)));
    }
    if (p->choices) {
        json_object_set_new(o, "choices", field(L, idx, "choices", json_array()));
        json_object_set_new(o, "strict", field(L, idx, "strict", json_true()));
    }
    if (p->need_email)
        json_object_set_new(o, "need_email", json_true());
    return o;
}

/* A force scheduler's own parameter `key`, or Buildbot's default for it. */
static json_t *own_param(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    json_t *spec = NULL;
    if (lua_istable(L, -1))
        spec = param_spec(L, lua_gettop(L), NULL);
    lua_pop(L, 1);
    if (spec != NULL)
        return spec;
    if (strcmp(key, "reason") == 0)
        return implicit_string("reason", NULL, NULL, "force build", 20);
    if (strcmp(key, "priority") == 0) {
        json_t *o = base_spec(NULL, 0, "priority", NULL, NULL, "int", json_integer(0), false);
        json_object_set_new(o, "size", json_integer(10));
        return o;
    }
    json_t *o = implicit_string("username", "Your name:", NULL, "", 30);
    json_object_set_new(o, "type", json_string("username"));
    json_object_set_new(o, "need_email", json_true());
    return o;
}

static json_t *scheduler_spec(lua_State *L, int idx, const struct cfg_scheduler *s)
{
    json_t *first = json_array();
    json_array_append_new(first, own_param(L, idx, "username"));
    json_array_append_new(first, own_param(L, idx, "reason"));
    json_array_append_new(first, own_param(L, idx, "priority"));
    json_t *all = json_array();
    json_array_append_new(
        all,
        nested(L, 0, base_spec(NULL, 0, "", NULL, NULL, "nested", json_string(""), false), first));
    lua_getfield(L, idx, "codebases");
    if (!lua_istable(L, -1) || luaL_len(L, -1) == 0)
        json_array_append_new(all, codebase_spec(L, 0, ""));
    for (lua_Integer i = 1; lua_istable(L, -1) && i <= luaL_len(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        json_array_append_new(all, lua_type(L, -1) == LUA_TSTRING
                                       ? codebase_spec(L, 0, lua_tostring(L, -1))
                                       : param_spec(L, lua_gettop(L), NULL));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "properties");
    for (lua_Integer i = 1; lua_istable(L, -1) && i <= luaL_len(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        json_array_append_new(all, param_spec(L, lua_gettop(L), NULL));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    json_t *names = json_array();
    for (size_t i = 0; i < s->n_builder_names; i++)
        json_array_append_new(names, json_string(s->builder_names[i]));
    char label[256], button[256];
    const char *l = str_field(L, idx, "label", label, sizeof label);
    const char *b = str_field(L, idx, "buttonName", button, sizeof button);
    return json_pack("{sssssssosbso}", "name", s->name, "label", l != NULL ? l : s->name,
                     "button_name", b != NULL ? b : s->name, "builder_names", names, "enabled", 1,
                     "all_fields", all);
}

json_t *force_spec(const struct cfg *cfg, const char *name, struct force_extra *extra)
{
    lua_State *L = cfg->lua;
    for (size_t i = 0; i < cfg->n_schedulers; i++) {
        const struct cfg_scheduler *s = &cfg->schedulers[i];
        if (strcmp(s->kind, "force") != 0 || strcmp(s->name, name) != 0)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
        json_t *spec = scheduler_spec(L, lua_gettop(L), s);
        lua_getfield(L, -1, "codebases");
        extra->codebases = json_array();
        for (lua_Integer k = 1; lua_istable(L, -1) && k <= luaL_len(L, -1); k++) {
            char cb[128] = "";
            lua_rawgeti(L, -1, k);
            if (lua_type(L, -1) == LUA_TSTRING)
                snprintf(cb, sizeof cb, "%s", lua_tostring(L, -1));
            else if (lua_istable(L, -1))
                str_field(L, -1, "codebase", cb, sizeof cb);
            json_array_append_new(extra->codebases, json_string(cb));
            lua_pop(L, 1);
        }
        if (json_array_size(extra->codebases) == 0)
            json_array_append_new(extra->codebases, json_string(""));
        lua_pop(L, 1);
        char fmt[1024];
        const char *f = str_field(L, -1, "reasonString", fmt, sizeof fmt);
        extra->reason_fmt =
            xstrdup(f != NULL ? f : "A build was forced by '%(owner)s': %(reason)s");
        lua_pop(L, 1);
        return spec;
    }
    return NULL;
}

json_t *sched_force_specs(const struct cfg *cfg)
{
    lua_State *L = cfg->lua;
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->n_schedulers; i++) {
        const struct cfg_scheduler *s = &cfg->schedulers[i];
        if (strcmp(s->kind, "force") != 0)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
        json_array_append_new(list, scheduler_spec(L, lua_gettop(L), s));
        lua_pop(L, 1);
    }
    return list;
}
