/*
 * The configuration's tables stay plain.  The master reads what master.lua
 * returned from C while builds run, outside any protected call: a metamethod
 * there (a "strict" table's __index that raises an error for a missing key,
 * an __index chain that loops) would abort the master, and one that answers
 * would make a field mean something else to lua_getfield than to lua_next.
 * So, at the end of validation, every table reachable from the returned table
 * (through tables, not through functions) is checked: one with a metatable
 * that is not bbm's own is an error of the configuration, at the nearest bbm
 * object's FILE:LINE.  Each is also remembered, by its address, in a set kept
 * in the state (a userdata), and setmetatable refuses those tables afterwards,
 * when the configuration's functions run; the master keeps the returned table,
 * so they stay where they are.  A function's result is checked the same way
 * after each run-time call (cfg_lua_call).  The walk writes nothing for a
 * table but its address: a path and a place are found only for an error.
 *
 * bbm's own metatables (a factory's addStep, a lock's access) carry a
 * __metatable field holding a light userdata, which Lua code cannot make:
 * that marks them, and keeps Lua code from reading or replacing them.
 */
#include "config/internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    MAX_DEPTH = 64,             /* tables within tables: deeper is an error */
    MAX_RESULT_NODES = 1 << 16, /* the tables of one function's result */
    PATH_MAX_LEN = 200,
    SET_MIN = 256, /* slots a set of tables starts with */
};

static const char frozen_key = 'f';
static const char own_key = 'o';

void cfg_own_metatable(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushlightuserdata(L, (void *)&own_key);
    lua_setfield(L, idx, "__metatable");
}

/* The table at `idx` has a metatable that is not bbm's own. */
static bool foreign_metatable(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_pushliteral(L, "__metatable");
    lua_rawget(L, -2);
    bool own = lua_touserdata(L, -1) == &own_key;
    lua_pop(L, 2);
    return !own;
}

/* ------------------------------------------------------------ sets of tables */

/* Tables by address, open addressing, at most half full; in a userdata of the state. */
struct tset {
    size_t cap, n; /* cap a power of two */
    const void *slot[];
};

static size_t slot_of(const struct tset *s, const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15u;
    size_t i = (size_t)(h >> 32) & (s->cap - 1);
    while (s->slot[i] != NULL && s->slot[i] != p)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static struct tset *tset_new(lua_State *L, size_t cap)
{
    struct tset *s = lua_newuserdatauv(L, sizeof *s + cap * sizeof s->slot[0], 0);
    s->cap = cap;
    s->n = 0;
    memset(s->slot, 0, cap * sizeof s->slot[0]);
    return s;
}

static bool tset_has(const struct tset *s, const void *p)
{
    return s->slot[slot_of(s, p)] == p;
}

/* Adds p to the set at stack index `at` (replaced there when it grows): false if it was in. */
static bool tset_add(lua_State *L, int at, const void *p)
{
    struct tset *s = lua_touserdata(L, at);
    size_t i = slot_of(s, p);
    if (s->slot[i] == p)
        return false;
    if (2 * (s->n + 1) > s->cap) {
        struct tset *g = tset_new(L, 2 * s->cap);
        for (size_t j = 0; j < s->cap; j++)
            if (s->slot[j] != NULL)
                g->slot[slot_of(g, s->slot[j])] = s->slot[j];
        g->n = s->n;
        lua_replace(L, at);
        s = g;
        i = slot_of(s, p);
    }
    s->slot[i] = p;
    s->n++;
    return true;
}

bool cfg_frozen(lua_State *L, int idx)
{
    bool frozen = false;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key) == LUA_TUSERDATA)
        frozen = tset_has(lua_touserdata(L, -1), lua_topointer(L, idx));
    lua_pop(L, 1);
    return frozen;
}

/* ------------------------------------------------------------ the walk */

struct walk {
    lua_State *L;
    int seen;         /* the stack index of the set of tables walked */
    bool freeze;      /* the configuration (errors go to its list), not a function's result */
    const char *name; /* the configuration's key walked */
    const char *file; /* its place, when no bbm object holds the table */
    int line;
    int tables[MAX_DEPTH + 1]; /* the stack index of the table at each level */
    int keys[MAX_DEPTH + 1];   /* and of the key it is at, or -that for a table used as a key */
    size_t nodes;
    const char *bad; /* a result's first fault */
};

static void walk_table(struct walk *w, int idx, int depth);

/* The path of the table at `depth`: name.field[3]... */
static void path_of(const struct walk *w, int depth, char *out, size_t size)
{
    lua_State *L = w->L;
    size_t len = (size_t)snprintf(out, size, "%s", w->name);
    for (int d = 1; d <= depth && len < size; d++) {
        int k = w->keys[d] < 0 ? -w->keys[d] : w->keys[d];
        if (w->keys[d] < 0)
            len += (size_t)snprintf(out + len, size - len, "[a key]");
        else if (lua_type(L, k) == LUA_TSTRING)
            len += (size_t)snprintf(out + len, size - len, ".%.60s", lua_tostring(L, k));
        else if (lua_isinteger(L, k))
            len +=
                (size_t)snprintf(out + len, size - len, "[%lld]", (long long)lua_tointeger(L, k));
        else
            len += (size_t)snprintf(out + len, size - len, "[%s]", luaL_typename(L, k));
    }
}

/* The place of the nearest bbm object (its raw _file and _line) holding the table at `depth`,
   or the walk's own. */
static void place_of(const struct walk *w, int depth, char *file, size_t size, int *line)
{
    lua_State *L = w->L;
    snprintf(file, size, "%s", w->file);
    *line = w->line;
    for (int d = depth; d >= 0; d--) {
        lua_pushliteral(L, CFG_FILE);
        lua_pushliteral(L, CFG_LINE);
        bool found = lua_rawget(L, w->tables[d]) == LUA_TNUMBER &&
                     (lua_rotate(L, -2, 1), lua_rawget(L, w->tables[d])) == LUA_TSTRING;
        if (found) {
            snprintf(file, size, "%s", lua_tostring(L, -1));
            *line = (int)lua_tointeger(L, -2);
        }
        lua_pop(L, 2);
        if (found)
            return;
    }
}

static void fault(struct walk *w, int depth, const char *what)
{
    if (!w->freeze) {
        w->bad = what;
        return;
    }
    char path[PATH_MAX_LEN], file[256];
    int line;
    path_of(w, depth, path, sizeof path);
    place_of(w, depth, file, sizeof file, &line);
    if (strcmp(what, "deep") == 0)
        cfg_error(w->L, file, line, "%s is nested more than %d tables deep", path, MAX_DEPTH);
    else
        cfg_error(w->L, file, line,
                  "%s has a metatable: the master reads the configuration's tables as they "
                  "are, without metamethods; give it its fields instead",
                  path);
}

/* The tables of the table at `idx`: its values, then its keys. */
static void walk_entries(struct walk *w, int idx, int depth)
{
    lua_State *L = w->L;
    luaL_checkstack(L, 4, "walking the configuration");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            w->keys[depth + 1] = lua_gettop(L) - 1;
            walk_table(w, lua_gettop(L), depth + 1);
        }
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TTABLE && w->bad == NULL) {
            w->keys[depth + 1] = -lua_gettop(L);
            walk_table(w, lua_gettop(L), depth + 1);
        }
        if (w->bad != NULL) {
            lua_pop(L, 1);
            return;
        }
    }
}

static void walk_table(struct walk *w, int idx, int depth)
{
    lua_State *L = w->L;
    if (!tset_add(L, w->seen, lua_topointer(L, idx)))
        return; /* walked already */
    if (!w->freeze && ++w->nodes > MAX_RESULT_NODES) {
        w->bad = "large";
        return;
    }
    w->tables[depth] = idx;
    if (foreign_metatable(L, idx))
        fault(w, depth, "metatable");
    else if (depth >= MAX_DEPTH)
        fault(w, depth, "deep");
    else
        walk_entries(w, idx, depth);
}

void cfg_check_plain(lua_State *L, int idx, const char *name, const char *file, int line)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        return;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        tset_new(L, SET_MIN);
    }
    struct walk w = {
        .L = L, .seen = lua_gettop(L), .freeze = true, .name = name, .file = file, .line = line};
    walk_table(&w, idx, 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &frozen_key); /* the set, grown or not */
}

const char *cfg_plain_result(lua_State *L, int first, int n)
{
    first = lua_absindex(L, first);
    bool any = false;
    for (int i = 0; i < n && !any; i++)
        any = lua_type(L, first + i) == LUA_TTABLE;
    if (!any)
        return NULL; /* most calls: a string, a boolean, a number */
    tset_new(L, SET_MIN);
    struct walk w = {.L = L, .seen = lua_gettop(L), .name = "", .file = "?"};
    for (int i = 0; i < n && w.bad == NULL; i++)
        if (lua_type(L, first + i) == LUA_TTABLE)
            walk_table(&w, first + i, 0);
    lua_pop(L, 1);
    if (w.bad == NULL)
        return NULL;
    return strcmp(w.bad, "metatable") == 0 ? "a table with a metatable"
           : strcmp(w.bad, "deep") == 0    ? "tables nested too deep"
                                           : "too many tables";
}
