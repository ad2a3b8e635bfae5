/*
 * Properties (name, value, source, in the order first set, as Buildbot's
 * Properties keeps them) and rendering: what a step's parameters become at
 * the time the step starts.  bbm.interpolate takes Buildbot's Interpolate
 * keys: %(prop:name)s with the :-, :~, :+ and :?|a|b forms, %(src:codebase:
 * attr)s, %(kw:key)s, %(worker:key)s, and %s for its positional renderables;
 * a Lua function is called with a properties object (props:getProperty(name,
 * default)).  For a command a shell parses, render_shell quotes every value an
 * interpolation substitutes, so that none can become shell syntax.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16

void props_set(struct props *p, const char *name, json_t *value, const char *source)
{
    for (size_t i = 0; i < p->n; i++) {
        if (util_streq(p->items[i].name, name)) {
            json_decref(p->items[i].value);
            free(p->items[i].source);
            p->items[i].value = value;
            p->items[i].source = xstrdup(source != NULL ? source : "");
            p->items[i].changed = true;
            return;
        }
    }
    p->items = xgrow(p->items, &p->cap, p->n + 1, sizeof *p->items);
    p->items[p->n++] =
        (struct prop){xstrdup(name), value, xstrdup(source != NULL ? source : ""), false, true};
}

const json_t *props_get(const struct props *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (util_streq(p->items[i].name, name))
            return p->items[i].value;
    return NULL;
}

void props_free(struct props *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].name);
        json_decref(p->items[i].value);
        free(p->items[i].source);
    }
    free(p->items);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------ Python's str() */

static void repr(struct buf *b, const json_t *v, bool top, int depth)
{
    if (depth > MAX_DEPTH) {
        buf_addstr(b, "...");
    } else if (json_is_string(v)) {
        if (top)
            buf_add(b, json_string_value(v), json_string_length(v));
        else
            buf_printf(b, "'%s'", json_string_value(v));
    } else if (json_is_true(v) || json_is_false(v)) {
        buf_addstr(b, json_is_true(v) ? "True" : "False");
    } else if (json_is_integer(v)) {
        buf_printf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        buf_printf(b, "%.17g", json_real_value(v));
    } else if (json_is_array(v)) {
        buf_addc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            buf_addstr(b, i > 0 ? ", " : "");
            repr(b, json_array_get(v, i), false, depth + 1);
        }
        buf_addc(b, ']');
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        bool first = true;
        buf_addc(b, '{');
        json_object_foreach((json_t *)v, k, x)
        {
            buf_printf(b, "%s'%s': ", first ? "" : ", ", k);
            repr(b, x, false, depth + 1);
            first = false;
        }
        buf_addc(b, '}');
    } else {
        buf_addstr(b, "None");
    }
}

char *props_str(const json_t *v)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    repr(&b, v, true, 0);
    return buf_take(&b);
}

static int get_property(lua_State *L)
{
    /* props:getProperty(name[, default]): nil for a property not set, without a default */
    int nargs = lua_gettop(L);
    lua_getfield(L, 1, "_values");
    lua_getfield(L, -1, luaL_checkstring(L, 2));
    if (lua_isnil(L, -1) && nargs >= 3)
        lua_pushvalue(L, 3);
    return 1;
}

static int has_property(lua_State *L)
{
    lua_getfield(L, 1, "_values");
    lua_getfield(L, -1, luaL_checkstring(L, 2));
    lua_pushboolean(L, !lua_isnil(L, -1));
    return 1;
}

void props_push_lua(const struct render_ctx *c)
{
    lua_State *L = c->L;
    lua_newtable(L);
    lua_newtable(L);
    for (size_t i = 0; i < c->props->n; i++) {
        cfg_lua_push_json(L, c->props->items[i].value);
        lua_setfield(L, -2, c->props->items[i].name);
    }
    lua_setfield(L, -2, "_values");
    lua_pushcfunction(L, get_property);
    lua_setfield(L, -2, "getProperty");
    lua_pushcfunction(L, has_property);
    lua_setfield(L, -2, "hasProperty");
}

/* ------------------------------------------------------------ rendering */

/* Values of the configuration are read without their metamethods, here and below: Lua code
   run outside a call (an __index, a __len) would have no protected call to fail in. */
static int raw_field(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, name);
    return lua_rawget(L, idx);
}

static bool is_interpolate(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    raw_field(L, idx, "_kind");
    bool yes = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "interpolate") == 0;
    lua_pop(L, 1);
    return yes;
}

static const json_t *find_codebase(const json_t *sourcestamps, const char *codebase)
{
    size_t i;
    const json_t *ss;
    json_array_foreach(sourcestamps, i, ss)
    {
        if (util_streq(json_string_value(json_object_get(ss, "codebase")), codebase))
            return ss;
    }
    return NULL;
}

/* The value a key names (NULL: not set), e.g. "prop:x", "src::revision", "kw:y". */
static json_t *lookup(const struct render_ctx *c, int args, const char *source, const char *name)
{
    lua_State *L = c->L;
    if (strcmp(source, "prop") == 0) {
        const json_t *v = props_get(c->props, name);
        return v != NULL ? json_incref((json_t *)v) : NULL;
    }
    if (strcmp(source, "src") == 0) {
        const char *colon = strchr(name, ':');
        if (colon == NULL)
            return NULL;
        char cb[256];
        snprintf(cb, sizeof cb, "%.*s", (int)(colon - name), name);
        const json_t *v = json_object_get(find_codebase(c->sourcestamps, cb), colon + 1);
        return v != NULL && !json_is_null(v) ? json_incref((json_t *)v) : NULL;
    }
    if (strcmp(source, "worker") == 0) {
        const struct pb_value *v = pb_dict_get(c->worker, name);
        if (v != NULL && v->kind == PB_INT)
            return json_integer(v->u.i);
        return pb_str(v) != NULL ? json_string(pb_str(v)) : NULL;
    }
    if (strcmp(source, "kw") == 0 && args != 0) {
        lua_rawgeti(L, args, 1); /* bbm.interpolate(fmt, {kw = value}) */
        json_t *v = NULL;
        if (lua_istable(L, -1)) {
            raw_field(L, -1, name);
            v = lua_isnil(L, -1) ? NULL : cfg_lua_to_json(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        return v;
    }
    return NULL;
}

static size_t json_size(const json_t *v)
{
    return json_is_array(v) ? json_array_size(v) : json_object_size(v);
}

static bool truthy(const json_t *v)
{
    return v != NULL && !json_is_null(v) && !json_is_false(v) &&
           !(json_is_string(v) && json_string_length(v) == 0) &&
           !(json_is_integer(v) && json_integer_value(v) == 0) &&
           !((json_is_array(v) || json_is_object(v)) && json_size(v) == 0);
}

/* Python's shlex.quote: a word of only [A-Za-z0-9_@%+=:,./-] as it is, anything else in
   single quotes (a quote inside as '"'"'), the empty string as ''. */
static void shell_quote(struct buf *out, const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; plain && *p != '\0'; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("_@%+=:,./-", *p) != NULL;
    if (plain) {
        buf_addstr(out, s);
        return;
    }
    buf_addc(out, '\'');
    for (const char *p = s; *p != '\0'; p++)
        if (*p == '\'')
            buf_addstr(out, "'\"'\"'");
        else
            buf_addc(out, *p);
    buf_addc(out, '\'');
}

/* A value substituted into a format: as str() shows it, shell-quoted when `quote`. */
static void add_value(struct buf *out, const json_t *v, bool quote)
{
    char *s = props_str(v);
    if (quote)
        shell_quote(out, s);
    else
        buf_addstr(out, s);
    free(s);
}

/* One %(key)s: "source:name[:-default|:~default|:+text|:?|yes|no]".  The texts a key
   carries (defaults, alternatives) are the configuration's and never quoted. */
static int expand_key(const struct render_ctx *c, int args, const char *key, bool quote,
                      struct buf *out, char **cause)
{
    char src[32], rest[1024];
    const char *colon = strchr(key, ':');
    if (colon == NULL || (size_t)(colon - key) >= sizeof src)
        return util_cause(cause, "bbm.interpolate: bad key '%s'", key);
    snprintf(src, sizeof src, "%.*s", (int)(colon - key), key);
    snprintf(rest, sizeof rest, "%s", colon + 1);
    /* src keys name a codebase and an attribute; the modifier follows the attribute */
    char *attr = strcmp(src, "src") == 0 ? strchr(rest, ':') : NULL;
    char *mod = strchr(attr != NULL ? attr + 1 : rest, ':');
    char op = 0;
    const char *arg = "";
    if (mod != NULL && mod[1] != '\0' && strchr("-~+?", mod[1]) != NULL) {
        op = mod[1];
        arg = mod + 2;
        *mod = '\0';
    }
    json_t *v = lookup(c, args, src, rest);
    if (op == '?') {
        char sep = *arg;
        const char *yes = arg + 1, *no = sep != 0 ? strchr(yes, sep) : NULL;
        if (no == NULL) {
            json_decref(v);
            return util_cause(cause, "bbm.interpolate: bad '?' alternatives in '%s'", key);
        }
        if (v != NULL)
            buf_add(out, yes, (size_t)(no - yes));
        else
            buf_addstr(out, no + 1);
    } else if (op == '+') {
        if (v != NULL)
            buf_addstr(out, arg);
    } else if ((op == '-' && v == NULL) || (op == '~' && !truthy(v))) {
        buf_addstr(out, arg);
    } else if (v != NULL) {
        add_value(out, v, quote);
    }
    json_decref(v);
    return 0;
}

static json_t *interpolate(const struct render_ctx *c, int idx, bool quote, char **cause)
{
    lua_State *L = c->L;
    raw_field(L, idx, "fmt");
    raw_field(L, idx, "args");
    int args = lua_istable(L, -1) ? lua_gettop(L) : 0;
    const char *fmt = lua_tostring(L, -2);
    struct buf out;
    buf_init(&out, 1u << 20);
    int positional = 1, rc = 0;
    for (const char *p = fmt != NULL ? fmt : ""; rc == 0 && *p != '\0'; p++) {
        if (*p != '%') {
            buf_addc(&out, *p);
        } else if (p[1] == '%') {
            buf_addc(&out, '%');
            p++;
        } else if (p[1] == '(' && strstr(p, ")s") != NULL) {
            const char *end = strstr(p, ")s");
            char key[1200];
            snprintf(key, sizeof key, "%.*s", (int)(end - p - 2), p + 2);
            rc = expand_key(c, args, key, quote, &out, cause);
            p = end + 1;
        } else if (p[1] == 's' && args != 0) {
            lua_rawgeti(L, args, positional++);
            json_t *v = render(c, lua_gettop(L), cause);
            lua_pop(L, 1);
            rc = v != NULL ? 0 : -1;
            if (v != NULL)
                add_value(&out, v, quote);
            json_decref(v);
            p++;
        } else {
            rc = util_cause(cause, "bbm.interpolate: unsupported format at '%s'", p);
        }
    }
    lua_pop(L, 2);
    char *s = buf_take(&out);
    json_t *j = rc == 0 ? json_string(s) : NULL;
    if (rc == 0 && j == NULL)
        j = json_string("\xef\xbf\xbd");
    free(s);
    return j;
}

static json_t *call_function(const struct render_ctx *c, int idx, char **cause)
{
    lua_State *L = c->L;
    lua_pushvalue(L, idx);
    props_push_lua(c);
    if (cfg_lua_call(L, 1, 1, cause) != 0)
        return NULL;
    int top = lua_gettop(L);
    json_t *v = is_interpolate(L, top) || lua_isfunction(L, top) ? NULL : render(c, top, cause);
    if (v == NULL && *cause == NULL)
        util_cause(cause, "a renderable function returned another renderable");
    lua_pop(L, 1);
    return v;
}

json_t *render(const struct render_ctx *c, int idx, char **cause)
{
    lua_State *L = c->L;
    idx = lua_absindex(L, idx);
    if (is_interpolate(L, idx))
        return interpolate(c, idx, false, cause);
    if (lua_isfunction(L, idx))
        return call_function(c, idx, cause);
    if (!lua_istable(L, idx))
        return cfg_lua_to_json(L, idx);
    if (lua_rawlen(L, idx) == 0) { /* a dict: each value rendered */
        json_t *o = json_object();
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            json_t *v = lua_type(L, -2) == LUA_TSTRING ? render(c, -1, cause) : json_null();
            if (v == NULL) {
                lua_pop(L, 2);
                json_decref(o);
                return NULL;
            }
            if (lua_type(L, -2) == LUA_TSTRING && lua_tostring(L, -2)[0] != '_')
                json_object_set_new(o, lua_tostring(L, -2), v);
            else
                json_decref(v);
            lua_pop(L, 1);
        }
        return o;
    }
    json_t *list = json_array();
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, idx); i++) {
        lua_rawgeti(L, idx, i);
        json_t *v = render(c, -1, cause);
        lua_pop(L, 1);
        if (v == NULL) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, v);
    }
    return list;
}

json_t *render_shell(const struct render_ctx *c, int idx, char **cause)
{
    idx = lua_absindex(c->L, idx);
    return is_interpolate(c->L, idx) ? interpolate(c, idx, true, cause) : render(c, idx, cause);
}
