/*
 * The loaded configuration as JSON (`bbmaster checkconfig --dump`), so that two
 * versions of a master.lua can be compared with diff: "which builders does this
 * change touch?".
 *
 * The output is read from the config's own Lua tables (the ones validate.c kept
 * references to), so it shows every parameter that was set, not only those
 * struct cfg holds.  Workers, builders, their steps and schedulers keep their
 * configuration order; keys within an object are sorted, and nothing depends on
 * where in the file a thing was written (no _file or _line), so moving a builder
 * down the file changes nothing but its position.  Renderables print as
 * {"interpolate": FORMAT}, functions as {"function": true}; a constructor's
 * _kind becomes "step" (a step), "kind" (a scheduler: its name in
 * bbm.schedulers; anything else nested: its name under bbm.).  Passwords and
 * other secrets never appear: a value under a key that names a secret
 * (password, passwd, secret, token, private key...) and the password of a URL
 * ("scheme://user:PASSWORD@host") are replaced by CFG_SECRET_MARK.
 *
 * Printing is bounded: a table that contains itself, nesting deeper than
 * MAX_DEPTH tables or more than MAX_VALUES values (tables shared many times
 * over) is an error naming where it is.  Tables are read raw (no metamethods
 * run), so no Lua code runs while the configuration is printed.
 */
#include "config/internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MAX_DEPTH = 32, MAX_VALUES = 1000000, TRAIL_MAX = 400 };

struct dumper {
    lua_State *L;
    const struct cfg *cfg;
    const void *open[MAX_DEPTH]; /* the tables being printed, outermost first */
    int depth;
    size_t values;
    char label[300];       /* what is being printed: "builder 'x'", or "" at the top */
    char trail[TRAIL_MAX]; /* the keys down to the value: "steps[2].env.PATH" */
    char where[300];       /* FILE:LINE of the innermost constructor, or the file */
    char *cause;
};

static json_t *value(struct dumper *d, int idx);

/* ------------------------------------------------------------ errors */

static json_t *fail(struct dumper *d, const char *why)
{
    if (d->cause == NULL)
        d->cause = xasprintf("%s: %s%s%s: %s", d->where, d->label,
                             d->label[0] != '\0' && d->trail[0] != '\0' ? ": " : "", d->trail, why);
    return NULL;
}

/* Appends a key (".key", or "key" first) or a list index ("[i]") to the trail; returns the
   length to cut it back to. */
static size_t trail_push(struct dumper *d, const char *key, lua_Integer index)
{
    size_t len = strlen(d->trail);
    char *end = d->trail + len;
    size_t room = sizeof d->trail - len;
    if (key != NULL)
        snprintf(end, room, "%s%s", len > 0 ? "." : "", key);
    else
        snprintf(end, room, "[%lld]", (long long)index);
    return len;
}

/* ------------------------------------------------------------ scalars */

/* The length of the valid UTF-8 sequence at `p` (at most `n` bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80                   ? 1
                 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2
                 : (p[0] & 0xf0) == 0xe0       ? 3
                 : p[0] >= 0xf0 && p[0] < 0xf5 ? 4
                                               : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((len == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (len == 3 && p[0] == 0xed && p[1] >= 0xa0) ||
        (len == 4 && p[0] == 0xf0 && p[1] < 0x90) || (len == 4 && p[0] == 0xf4 && p[1] >= 0x90))
        return 0; /* overlong, a surrogate, past U+10FFFF */
    return len;
}

/* A Lua string as a JSON string: bytes that are not UTF-8 become U+FFFD each. */
static json_t *string(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j != NULL)
        return j;
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (len == 0)
            buf_addstr(&b, "\xef\xbf\xbd"), i++;
        else
            buf_add(&b, s + i, len), i += len;
    }
    j = json_stringn(b.data != NULL ? b.data : "", b.len);
    buf_free(&b);
    return j;
}

/* "scheme://user:PASSWORD@host..." with the password masked, or NULL if `s` has none. */
static char *mask_url(const char *s, size_t n)
{
    const char *scheme = memmem(s, n, "://", 3);
    if (scheme == NULL)
        return NULL;
    const char *auth = scheme + 3, *end = s + n;
    const char *stop = auth;
    while (stop < end && *stop != '/' && *stop != '?' && *stop != '#')
        stop++;
    const char *at = NULL, *colon = NULL;
    for (const char *p = auth; p < stop; p++)
        if (*p == '@')
            at = p;
    for (const char *p = auth; at != NULL && p < at && colon == NULL; p++)
        if (*p == ':')
            colon = p;
    if (colon == NULL)
        return NULL;
    return xasprintf("%.*s" CFG_SECRET_MARK "%.*s", (int)(colon + 1 - s), s, (int)(end - at), at);
}

static json_t *lua_string(lua_State *L, int idx)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char *masked = mask_url(s, n);
    if (masked == NULL)
        return string(s, n);
    json_t *j = string(masked, strlen(masked));
    free(masked);
    return j;
}

static json_t *number(lua_State *L, int idx)
{
    if (lua_isinteger(L, idx))
        return json_integer((json_int_t)lua_tointeger(L, idx));
    double v = lua_tonumber(L, idx);
    if (isnan(v))
        return json_string("nan");
    if (isinf(v))
        return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

/* {"function": true}, {"userdata": true}... for what has no JSON form. */
static json_t *opaque(const char *type)
{
    json_t *o = json_object();
    json_object_set_new(o, type, json_true());
    return o;
}

/* A key of a Lua table as a JSON object's key (a UTF-8 string); NULL for an internal field. */
static char *key_text(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        const char *k = lua_tostring(L, idx);
        if (strcmp(k, CFG_KIND) == 0 || strcmp(k, CFG_FILE) == 0 || strcmp(k, CFG_LINE) == 0)
            return NULL;
        json_t *j = lua_string(L, idx);
        char *s = xstrdup(json_string_value(j));
        json_decref(j);
        return s;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return xasprintf("%lld", (long long)lua_tointeger(L, idx));
        return xasprintf("%.14g", lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
        return xstrdup(lua_toboolean(L, idx) ? "true" : "false");
    default:
        return xasprintf("<%s>", luaL_typename(L, idx));
    }
}

/* A key of HttpStatusPush whose value is a secret: its auth pair, its headers
   (Authorization), its URL (a webhook's path is its key). */
static bool http_push_secret(lua_State *L, int idx, const char *key)
{
    if (strcmp(key, "auth") != 0 && strcmp(key, "headers") != 0 && strcmp(key, "serverUrl") != 0)
        return false;
    lua_getfield(L, idx, CFG_KIND);
    bool is = lua_type(L, -1) == LUA_TSTRING &&
              strcmp(lua_tostring(L, -1), "reporter.http_status_push") == 0;
    lua_pop(L, 1);
    return is;
}

/* A key whose value is a secret: a password, a token, a private key... */
static bool secret_key(const char *key)
{
    static const char *const words[] = {"password",   "passwd",     "secret",
                                        "token",      "privatekey", "private_key",
                                        "credential", "apikey",     "api_key"};
    char low[128];
    size_t i;
    for (i = 0; key[i] != '\0' && i < sizeof low - 1; i++)
        low[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
    low[i] = '\0';
    for (size_t w = 0; w < UTIL_NELEM(words); w++)
        if (strstr(low, words[w]) != NULL)
            return true;
    return false;
}

/* ------------------------------------------------------------ tables */

/* The fields of the table at `idx` into `obj` but internal ones and those in `skip`
   (NULL-terminated, or NULL).  Returns obj, or NULL (obj freed) on an error. */
static json_t *fields(struct dumper *d, int idx, json_t *obj, const char *const *skip)
{
    lua_State *L = d->L;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        char *key = key_text(L, -2);
        bool skipped = key == NULL;
        for (const char *const *s = skip; !skipped && s != NULL && *s != NULL; s++)
            skipped = strcmp(*s, key) == 0;
        json_t *v = NULL;
        if (!skipped) {
            size_t cut = trail_push(d, key, 0);
            v = secret_key(key) || http_push_secret(L, idx, key) ? json_string(CFG_SECRET_MARK)
                                                                 : value(d, lua_gettop(L));
            d->trail[cut] = '\0';
            if (v == NULL) {
                free(key);
                lua_pop(L, 2);
                json_decref(obj);
                return NULL;
            }
            json_object_set_new(obj, key, v);
        }
        free(key);
        lua_pop(L, 1);
    }
    return obj;
}

/* The length of the table at `idx` if its keys are exactly 1..n (n > 0), else 0. */
static lua_Integer list_length(lua_State *L, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), keys = 0;
    if (n == 0)
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        keys++;
    }
    if (keys != n)
        return 0;
    for (lua_Integer i = 1; i <= n; i++) {
        bool hole = lua_rawgeti(L, idx, i) == LUA_TNIL;
        lua_pop(L, 1);
        if (hole)
            return 0;
    }
    return n;
}

static json_t *list(struct dumper *d, int idx, lua_Integer n)
{
    json_t *a = json_array();
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(d->L, idx, i);
        size_t cut = trail_push(d, NULL, i);
        json_t *v = value(d, lua_gettop(d->L));
        d->trail[cut] = '\0';
        lua_pop(d->L, 1);
        if (v == NULL) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, v);
    }
    return a;
}

/* The string field `key` of the table at `idx`, or NULL; valid while the table is. */
static const char *raw_string(lua_State *L, int idx, const char *key)
{
    idx = lua_absindex(L, idx);
    lua_pushstring(L, key);
    const char *s = lua_rawget(L, idx) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return s;
}

/* bbm.interpolate(fmt, ...): {"interpolate": fmt}, and its arguments if it has any. */
static json_t *interpolate(struct dumper *d, int idx)
{
    lua_State *L = d->L;
    json_t *o = json_object();
    lua_pushliteral(L, "fmt");
    bool has_fmt = lua_rawget(L, idx) == LUA_TSTRING;
    json_object_set_new(o, "interpolate", has_fmt ? lua_string(L, -1) : json_null());
    lua_pop(L, 1);
    lua_pushliteral(L, "args");
    if (lua_rawget(L, idx) == LUA_TTABLE && lua_rawlen(L, -1) > 0) {
        json_t *args = list(d, lua_gettop(L), (lua_Integer)lua_rawlen(L, -1));
        if (args == NULL) {
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "args", args);
    }
    lua_pop(L, 1);
    return o;
}

/* A table built by a bbm constructor: its fields, and its constructor's name under
   `kind_key` when that is not NULL. */
static json_t *constructed(struct dumper *d, int idx, const char *kind_key, const char *kind,
                           const char *const *skip)
{
    json_t *o = json_object();
    if (kind_key != NULL)
        json_object_set_new(o, kind_key, json_string(kind));
    return fields(d, idx, o, skip);
}

/* The name of a constructor under bbm. for its _kind ("params.string" for "param.string"). */
static const char *ctor_name(const char *kind)
{
    const char *display = cfg_kind_display(kind);
    return display != NULL ? display + strlen("bbm.") : kind;
}

static json_t *table_body(struct dumper *d, int idx)
{
    lua_State *L = d->L;
    const char *kind = raw_string(L, idx, CFG_KIND);
    if (kind != NULL && strcmp(kind, "interpolate") == 0)
        return interpolate(d, idx);
    if (kind != NULL)
        return constructed(d, idx, "kind", ctor_name(kind), NULL);
    lua_Integer n = list_length(L, idx);
    return n > 0 ? list(d, idx, n) : fields(d, idx, json_object(), NULL);
}

/*
 * Enters the table at `idx`: refuses one that is already being printed (it contains
 * itself) and nesting past MAX_DEPTH, and makes a constructor's FILE:LINE the place errors
 * name.  Returns false (an error set) if the table cannot be printed.
 */
static bool enter(struct dumper *d, int idx, char *saved, size_t size)
{
    const void *t = lua_topointer(d->L, idx);
    for (int i = 0; i < d->depth; i++)
        if (d->open[i] == t)
            return fail(d, "the table contains itself (a cycle), which cannot be printed"), false;
    if (d->depth == MAX_DEPTH) {
        char why[128];
        snprintf(why, sizeof why, "tables are nested more than %d deep, which --dump refuses",
                 MAX_DEPTH);
        return fail(d, why), false;
    }
    d->open[d->depth++] = t;
    snprintf(saved, size, "%s", d->where);
    const char *file = raw_string(d->L, idx, CFG_FILE);
    lua_pushliteral(d->L, CFG_LINE);
    if (file != NULL && lua_rawget(d->L, idx) == LUA_TNUMBER)
        snprintf(d->where, sizeof d->where, "%s:%lld", file, (long long)lua_tointeger(d->L, -1));
    lua_pop(d->L, 1);
    return true;
}

static void leave(struct dumper *d, const char *saved)
{
    d->depth--;
    snprintf(d->where, sizeof d->where, "%s", saved);
}

static json_t *value(struct dumper *d, int idx)
{
    lua_State *L = d->L;
    if (++d->values > MAX_VALUES) {
        char why[128];
        snprintf(why, sizeof why, "more than %d values to print (a table shared many times over?)",
                 MAX_VALUES);
        return fail(d, why);
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        return number(L, idx);
    case LUA_TSTRING:
        return lua_string(L, idx);
    case LUA_TTABLE:
        break;
    default:
        return opaque(lua_type(L, idx) == LUA_TFUNCTION ? "function" : luaL_typename(L, idx));
    }
    char saved[sizeof d->where];
    if (!lua_checkstack(L, 8))
        return fail(d, "no room left on the Lua stack");
    if (!enter(d, idx, saved, sizeof saved))
        return NULL;
    json_t *v = table_body(d, idx);
    leave(d, saved);
    return v;
}

/* ------------------------------------------------------------ the configuration */

/* A list of C strings (the resolved workernames, tags, builderNames). */
static json_t *strings(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, string(v[i], strlen(v[i])));
    return a;
}

/*
 * One entry of the configuration (a worker, a builder, a step, a scheduler): the fields of
 * the table at `idx`, with `kind` under `kind_key` if not NULL.
 */
static json_t *entry_at(struct dumper *d, int idx, const char *kind_key, const char *kind,
                        const char *const *skip)
{
    char saved[sizeof d->where];
    if (!enter(d, idx, saved, sizeof saved))
        return NULL;
    json_t *o = constructed(d, idx, kind_key, kind, skip);
    leave(d, saved);
    return o;
}

/* The same for the table of registry reference `ref`. */
static json_t *entry(struct dumper *d, int ref, const char *kind_key, const char *kind,
                     const char *const *skip)
{
    lua_rawgeti(d->L, LUA_REGISTRYINDEX, ref);
    json_t *o = entry_at(d, lua_gettop(d->L), kind_key, kind, skip);
    lua_pop(d->L, 1);
    return o;
}

static json_t *workers(struct dumper *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < d->cfg->n_workers; i++) {
        const struct cfg_worker *w = &d->cfg->workers[i];
        snprintf(d->label, sizeof d->label, "worker '%s'", w->name);
        json_t *o = entry(d, w->ref, NULL, NULL, NULL);
        if (o == NULL)
            return json_decref(a), NULL;
        if (json_object_get(o, "max_builds") == NULL)
            json_object_set_new(o, "max_builds", json_null()); /* Buildbot's None: no limit */
        if (json_object_get(o, "properties") == NULL)
            json_object_set_new(o, "properties", json_object());
        json_array_append_new(a, o);
    }
    return a;
}

/* The steps of a builder's factory, each with "step": its name in bbm.steps. */
static json_t *steps(struct dumper *d, const struct cfg_builder *b)
{
    lua_State *L = d->L;
    json_t *a = json_array();
    if (b->factory_ref == LUA_NOREF)
        return a;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->factory_ref);
    lua_pushliteral(L, "steps");
    lua_rawget(L, -2);
    for (lua_Integer i = 1; i <= (lua_Integer)b->n_steps; i++) {
        const char *kind = lua_rawgeti(L, -1, i) == LUA_TTABLE ? raw_string(L, -1, CFG_KIND) : NULL;
        if (kind != NULL && util_startswith(kind, "step.")) {
            snprintf(d->trail, sizeof d->trail, "steps[%lld]", (long long)i);
            json_t *s = entry_at(d, lua_gettop(L), "step", kind + strlen("step."), NULL);
            d->trail[0] = '\0';
            if (s == NULL) {
                lua_pop(L, 3);
                return json_decref(a), NULL;
            }
            json_array_append_new(a, s);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return a;
}

/* A builder: its parameters, workernames (with workername folded in), tags and builddir as
   the master uses them, and its factory's steps. */
static json_t *builder(struct dumper *d, const struct cfg_builder *b)
{
    static const char *const skip[] = {"factory", "workername", NULL};
    lua_State *L = d->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref);
    char saved[sizeof d->where];
    json_t *o = NULL;
    if (enter(d, lua_gettop(L), saved, sizeof saved)) {
        o = constructed(d, lua_gettop(L), NULL, NULL, skip);
        json_t *s = o != NULL ? steps(d, b) : NULL;
        leave(d, saved);
        if (s == NULL) {
            json_decref(o);
            o = NULL;
        } else {
            json_object_set_new(o, "steps", s);
            json_object_set_new(o, "workernames", strings(b->workernames, b->n_workernames));
            json_object_set_new(o, "tags", strings(b->tags, b->n_tags));
            json_object_set_new(o, "builddir", string(b->builddir, strlen(b->builddir)));
        }
    }
    lua_pop(L, 1);
    return o;
}

static json_t *builders(struct dumper *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < d->cfg->n_builders; i++) {
        const struct cfg_builder *b = &d->cfg->builders[i];
        snprintf(d->label, sizeof d->label, "builder '%s'", b->name);
        json_t *o = builder(d, b);
        if (o == NULL)
            return json_decref(a), NULL;
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *schedulers(struct dumper *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < d->cfg->n_schedulers; i++) {
        const struct cfg_scheduler *s = &d->cfg->schedulers[i];
        snprintf(d->label, sizeof d->label, "scheduler '%s'", s->name);
        json_t *o = entry(d, s->ref, "kind", s->kind, NULL);
        if (o == NULL)
            return json_decref(a), NULL;
        json_object_set_new(o, "builderNames", strings(s->builder_names, s->n_builder_names));
        json_array_append_new(a, o);
    }
    return a;
}

/* The top-level table: every key that is set, with workers, builders and schedulers as
   above. */
static json_t *top(struct dumper *d)
{
    static const char *const skip[] = {"workers", "builders", "schedulers", NULL};
    lua_State *L = d->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->cfg->top_ref);
    char saved[sizeof d->where];
    json_t *o = NULL;
    if (enter(d, lua_gettop(L), saved, sizeof saved)) {
        o = fields(d, lua_gettop(L), json_object(), skip);
        json_t *parts[] = {o != NULL ? workers(d) : NULL, NULL, NULL};
        parts[1] = parts[0] != NULL ? builders(d) : NULL;
        parts[2] = parts[1] != NULL ? schedulers(d) : NULL;
        leave(d, saved);
        for (size_t i = 0; i < UTIL_NELEM(parts); i++)
            if (o != NULL && parts[i] != NULL)
                json_object_set_new(o, skip[i], parts[i]);
            else
                json_decref(parts[i]);
        if (parts[2] == NULL) {
            json_decref(o);
            o = NULL;
        }
    }
    lua_pop(L, 1);
    return o;
}

char *cfg_dump(const struct cfg *cfg, char **cause)
{
    struct dumper d = {.L = cfg->lua, .cfg = cfg};
    snprintf(d.where, sizeof d.where, "%s", cfg->path);
    int base = lua_gettop(d.L);
    json_t *root = top(&d);
    lua_settop(d.L, base);
    if (root == NULL) {
        util_cause(cause, "%s", d.cause != NULL ? d.cause : "the configuration cannot be printed");
        free(d.cause);
        return NULL;
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(root);
    char *out = xasprintf("%s\n", text);
    free(text);
    return out;
}
