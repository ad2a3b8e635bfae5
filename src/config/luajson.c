/*
 * Lua values as JSON and back, for what crosses between the configuration's
 * Lua functions and the engine (properties, changes): strings, numbers,
 * booleans, lists (tables with a length) and objects (string keys), nested
 * at most MAX_DEPTH deep; anything else is null.
 */
#include "config/config.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#define MAX_DEPTH 16

static void push_json(lua_State *L, const json_t *v, int depth)
{
    if (json_is_string(v)) {
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
    } else if (json_is_real(v)) {
        lua_pushnumber(L, json_real_value(v));
    } else if (json_is_boolean(v)) {
        lua_pushboolean(L, json_is_true(v));
    } else if ((json_is_array(v) || json_is_object(v)) && depth < MAX_DEPTH) {
        lua_newtable(L);
        if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                push_json(L, json_array_get(v, i), depth + 1);
                lua_rawseti(L, -2, (lua_Integer)i + 1);
            }
        } else {
            const char *k;
            json_t *x;
            json_object_foreach((json_t *)v, k, x)
            {
                push_json(L, x, depth + 1);
                lua_setfield(L, -2, k);
            }
        }
    } else {
        lua_pushnil(L);
    }
}

static json_t *lua_json(lua_State *L, int idx, int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        /* checked a word at a time, not a character at a time by jansson: a formatter's
           message holds lines of a test log */
        json_t *j = util_utf8_valid(s, n) == n ? json_stringn_nocheck(s, n) : NULL;
        return j != NULL ? j : json_string("\xef\xbf\xbd");
    }
    case LUA_TNUMBER:
        return lua_isinteger(L, idx) ? json_integer(lua_tointeger(L, idx))
                                     : json_real(lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TTABLE:
        break;
    default:
        return json_null();
    }
    if (depth > MAX_DEPTH)
        return json_null();
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx); /* no __len: may be outside a protected call */
    if (n > 0) {
        json_t *a = json_array();
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            json_array_append_new(a, lua_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
        return a;
    }
    json_t *o = json_object();
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING)
            json_object_set_new(o, lua_tostring(L, -2), lua_json(L, -1, depth + 1));
        lua_pop(L, 1);
    }
    return o;
}

void cfg_lua_push_json(lua_State *L, const json_t *v)
{
    push_json(L, v, 0);
}

json_t *cfg_lua_to_json(lua_State *L, int idx)
{
    return lua_json(L, idx, 0);
}
