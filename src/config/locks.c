/*
 * Locks in master.lua, as Buildbot's util.MasterLock, util.WorkerLock and LockAccess:
 *
 *   local db = bbm.locks.master{ name = "database", maxCount = 1 }
 *   local cpu = bbm.locks.worker{ name = "cpu", maxCount = 2, maxCountForWorker = { big = 8 } }
 *   bbm.builder{ ..., locks = { cpu:access("counting") } }
 *   bbm.steps.shell{ ..., locks = { db:access("exclusive") } }
 *
 * A lock is a table (_kind "locks.master" or "locks.worker", its name under bbm) whose
 * :access(mode[, count]) makes a "lock_access" table naming it.  Mistakes are recorded with the
 * file and line of the call, as the other constructors do; validate.c checks that two different
 * locks do not share a name, and the engine reads a `locks` list with cfg_read_locks.
 */
#include "config/internal.h"

#include <stdlib.h>
#include <string.h>

#define KIND_MASTER "locks.master"
#define KIND_WORKER "locks.worker"
#define KIND_ACCESS "lock_access"

static bool kind_is(lua_State *L, int idx, const char *kind)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    lua_getfield(L, idx, CFG_KIND);
    bool yes = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), kind) == 0;
    lua_pop(L, 1);
    return yes;
}

bool cfg_is_lock(lua_State *L, int idx)
{
    return kind_is(L, idx, KIND_MASTER) || kind_is(L, idx, KIND_WORKER);
}

bool cfg_is_lock_access(lua_State *L, int idx)
{
    return kind_is(L, idx, KIND_ACCESS);
}

static bool whole(lua_State *L, int idx)
{
    return lua_isinteger(L, idx) || (lua_type(L, idx) == LUA_TNUMBER &&
                                     lua_tonumber(L, idx) == (lua_Integer)lua_tonumber(L, idx));
}

/* lock:access(mode[, count]) */
static int access_fn(lua_State *L)
{
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    if (!cfg_is_lock(L, 1)) {
        cfg_error(L, file, line, "access: call it on a lock, as lock:access(\"counting\")");
        lua_newtable(L);
        return 1;
    }
    const char *mode = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    bool counting = mode != NULL && strcmp(mode, "counting") == 0;
    if (!counting && (mode == NULL || strcmp(mode, "exclusive") != 0))
        cfg_error(L, file, line,
                  "access: unknown access mode %s%s%s; it must be \"counting\" or \"exclusive\"",
                  mode != NULL ? "'" : "", mode != NULL ? mode : luaL_typename(L, 2),
                  mode != NULL ? "'" : "");
    lua_Integer count = 1;
    if (!lua_isnoneornil(L, 3)) {
        if (!whole(L, 3) || lua_tonumber(L, 3) < 0)
            cfg_error(L, file, line, "access: the count must be a whole number, not negative");
        else
            count = (lua_Integer)lua_tonumber(L, 3);
        if (count > 1000000)
            cfg_error(L, file, line, "access: the count must be at most 1000000");
    }
    if (!counting && count != 1)
        cfg_error(L, file, line, "access: an exclusive access counts 1");
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "lock");
    lua_pushstring(L, counting ? "counting" : "exclusive");
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "count");
    lua_pushstring(L, KIND_ACCESS);
    lua_setfield(L, -2, CFG_KIND);
    lua_pushstring(L, file);
    lua_setfield(L, -2, CFG_FILE);
    lua_pushinteger(L, line);
    lua_setfield(L, -2, CFG_LINE);
    return 1;
}

/* maxCount and maxCountForWorker's values: whole, 0 to a million. */
static bool good_count(lua_State *L, int idx)
{
    return whole(L, idx) && lua_tonumber(L, idx) >= 0 && lua_tonumber(L, idx) <= 1000000;
}

static void check_params(lua_State *L, const char *ctor, bool worker, const char *file, int line)
{
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (key == NULL) {
            cfg_error(L, file, line, "%s: positional values are not allowed here", ctor);
        } else if (strcmp(key, "name") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
                cfg_error(L, file, line, "%s: 'name' must be a non-empty string", ctor);
        } else if (strcmp(key, "maxCount") == 0) {
            if (!good_count(L, -1))
                cfg_error(L, file, line, "%s: 'maxCount' must be a whole number from 0 to 1000000",
                          ctor);
        } else if (worker && strcmp(key, "maxCountForWorker") == 0 && lua_istable(L, -1)) {
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                if (lua_type(L, -2) != LUA_TSTRING || !good_count(L, -1))
                    cfg_error(L, file, line,
                              "%s: 'maxCountForWorker' maps worker names to whole numbers from 0 "
                              "to 1000000",
                              ctor);
                lua_pop(L, 1);
            }
        } else if (worker && strcmp(key, "maxCountForWorker") == 0) {
            cfg_error(L, file, line, "%s: 'maxCountForWorker' must be a table", ctor);
        } else {
            cfg_error(L, file, line, "%s: unknown parameter '%s'", ctor, key);
        }
        lua_pop(L, 1);
    }
    if (lua_getfield(L, 1, "name") == LUA_TNIL)
        cfg_error(L, file, line, "%s: missing required parameter 'name'", ctor);
    lua_pop(L, 1);
}

/* bbm.locks.master{...} and bbm.locks.worker{...}: a copy of the parameters with the
   defaults filled in, whose metatable offers :access. */
static int lock_ctor(lua_State *L)
{
    bool worker = lua_toboolean(L, lua_upvalueindex(1));
    const char *ctor = worker ? "bbm.locks.worker" : "bbm.locks.master";
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    lua_settop(L, 1);
    lua_newtable(L);
    if (!lua_istable(L, 1)) {
        cfg_error(L, file, line, "%s expects a table of parameters, not %s", ctor,
                  luaL_typename(L, 1));
    } else {
        check_params(L, ctor, worker, file, line);
        lua_getfield(L, 1, "name");
        lua_setfield(L, 2, "name");
        if (lua_getfield(L, 1, "maxCount") == LUA_TNIL)
            lua_pop(L, 1), lua_pushinteger(L, 1);
        lua_setfield(L, 2, "maxCount");
        if (worker && lua_getfield(L, 1, "maxCountForWorker") == LUA_TNIL)
            lua_pop(L, 1), lua_newtable(L);
        if (worker)
            lua_setfield(L, 2, "maxCountForWorker");
    }
    lua_pushstring(L, worker ? KIND_WORKER : KIND_MASTER);
    lua_setfield(L, 2, CFG_KIND);
    lua_pushstring(L, file);
    lua_setfield(L, 2, CFG_FILE);
    lua_pushinteger(L, line);
    lua_setfield(L, 2, CFG_LINE);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, access_fn);
    lua_setfield(L, -2, "access");
    lua_setfield(L, -2, "__index");
    cfg_own_metatable(L, -1);
    lua_setmetatable(L, 2);
    return 1;
}

void cfg_push_locks(lua_State *L)
{
    lua_newtable(L);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, lock_ctor, 1);
    lua_setfield(L, -2, "master");
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, lock_ctor, 1);
    lua_setfield(L, -2, "worker");
}

static int int_field(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int v = whole(L, -1) ? (int)lua_tonumber(L, -1) : 0;
    lua_pop(L, 1);
    return v;
}

/* The access table at the top of the stack into `a`. */
static void read_access(lua_State *L, struct cfg_lock_access *a)
{
    int top = lua_gettop(L);
    a->exclusive = lua_getfield(L, top, "mode") == LUA_TSTRING &&
                   strcmp(lua_tostring(L, -1), "exclusive") == 0;
    a->count = int_field(L, top, "count");
    lua_getfield(L, top, "lock");
    int lock = lua_gettop(L);
    a->worker_lock = kind_is(L, lock, KIND_WORKER);
    lua_getfield(L, lock, "name");
    a->name = xstrdup(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
    a->max_count = int_field(L, lock, "maxCount");
    if (lua_getfield(L, lock, "maxCountForWorker") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING && whole(L, -1)) {
                a->per_worker =
                    xrealloc(a->per_worker, (a->n_per_worker + 1) * sizeof *a->per_worker);
                a->per_worker[a->n_per_worker++] =
                    (struct cfg_lock_count){xstrdup(lua_tostring(L, -2)), (int)lua_tonumber(L, -1)};
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
}

void cfg_read_locks(lua_State *L, int idx, struct cfg_lock_access **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    idx = lua_absindex(L, idx);
    if (lua_getfield(L, idx, "locks") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, i);
        if (cfg_is_lock_access(L, -1)) {
            *out = xrealloc(*out, (*n + 1) * sizeof **out);
            memset(&(*out)[*n], 0, sizeof **out);
            read_access(L, &(*out)[(*n)++]);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

void cfg_lock_accesses_free(struct cfg_lock_access *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].name);
        for (size_t k = 0; k < a[i].n_per_worker; k++)
            free(a[i].per_worker[k].worker);
        free(a[i].per_worker);
    }
    free(a);
}

int cfg_lock_max(const struct cfg_lock_access *a, const char *worker)
{
    for (size_t i = 0; a->worker_lock && worker != NULL && i < a->n_per_worker; i++)
        if (strcmp(a->per_worker[i].worker, worker) == 0)
            return a->per_worker[i].count;
    return a->max_count;
}
