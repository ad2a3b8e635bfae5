/*
 * Buildbot's worker quarantine (AbstractWorker.putInQuarantine): a worker in quarantine
 * takes no build, for any builder, until its timeout expires; then the botmaster looks at
 * the pending requests again at once.  Each quarantine doubles the next one's timeout,
 * from 10 s up to an hour; resetQuarantine, and a build that ends neither EXCEPTION nor
 * RETRY, bring it back to 10 s.  A worker already in quarantine stays in the one it is in;
 * unpausing a worker ends its quarantine.
 *
 * master.lua reaches it through the worker a builder's canStartBuild(builder, wfb,
 * request) and nextWorker(builder, wfbs, request) are given: wfb.worker:putInQuarantine(),
 * wfb.worker:resetQuarantine() and wfb.worker.quarantine_timeout (read and written, in
 * seconds), as buildbot.python.org's planned downtime uses them.  The worker table's
 * metatable reaches the engine's worker by the table's name.  One timer serves every
 * worker: it is armed for the earliest end.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <string.h>
#include <uv.h>

/* Buildbot's quarantine_initial_timeout and quarantine_max_timeout, in seconds. */
#define QUARANTINE_INITIAL 10.0
#define QUARANTINE_MAX 3600.0

/* The registry key of the worker tables' metatable. */
#define WORKER_META "bbm.engine.worker"

static void arm(struct engine *e);

static void quarantine_cb(uv_timer_t *t)
{
    struct engine *e = t->data;
    uint64_t now = uv_now(e->loop);
    bool left = false;
    for (size_t i = 0; i < e->n_workers; i++) {
        struct eng_worker *w = &e->workers[i];
        if (w->quarantined && w->quarantine_end <= now) {
            w->quarantined = false;
            log_info("worker '%s' has left quarantine", w->name);
            left = true;
        }
    }
    arm(e);
    if (left)
        engine_kick(e);
}

/* The timer, for the earliest end of a quarantine (stopped when none is left). */
static void arm(struct engine *e)
{
    bool any = false;
    uint64_t first = 0;
    for (size_t i = 0; i < e->n_workers; i++) {
        const struct eng_worker *w = &e->workers[i];
        if (w->quarantined && (!any || w->quarantine_end < first))
            first = w->quarantine_end;
        any = any || w->quarantined;
    }
    uint64_t now = uv_now(e->loop);
    if (!any)
        uv_timer_stop(&e->quarantine_timer);
    else
        uv_timer_start(&e->quarantine_timer, quarantine_cb, first > now ? first - now : 0, 0);
}

void quarantine_init(struct engine *e)
{
    uv_timer_init(e->loop, &e->quarantine_timer);
    e->quarantine_timer.data = e;
    uv_unref((uv_handle_t *)&e->quarantine_timer);
}

void quarantine_worker_init(struct eng_worker *w)
{
    w->quarantine_timeout = QUARANTINE_INITIAL;
}

bool quarantine_holds(const struct eng_worker *w)
{
    return w->quarantined;
}

void quarantine_put(struct engine *e, struct eng_worker *w)
{
    if (quarantine_holds(w))
        return;
    double timeout = w->quarantine_timeout > 0 ? w->quarantine_timeout : 0; /* NaN too */
    double ms = timeout < 1e12 ? timeout * 1000 : 1e15;
    w->quarantined = true;
    w->quarantine_end = uv_now(e->loop) + (uint64_t)(ms + 0.5);
    log_info("worker '%s' has been put in quarantine for %gs", w->name, timeout);
    /* next we will wait twice as long, unless we hit the max timeout */
    w->quarantine_timeout = timeout * 2 < QUARANTINE_MAX ? timeout * 2 : QUARANTINE_MAX;
    arm(e);
}

void quarantine_reset(struct eng_worker *w)
{
    w->quarantine_timeout = QUARANTINE_INITIAL;
}

void quarantine_stop(struct engine *e, struct eng_worker *w)
{
    if (!quarantine_holds(w))
        return;
    w->quarantined = false;
    log_info("worker '%s' has left quarantine", w->name);
    arm(e);
    engine_kick(e);
}

/* ------------------------------------------------------------ the Lua worker */

/* The engine's worker the table at `idx` stands for, or NULL (a worker not attached
   since the master started, a table that is not a worker). */
static struct eng_worker *worker_of(lua_State *L, int idx, struct engine **ep)
{
    struct engine *e = lua_touserdata(L, lua_upvalueindex(1));
    *ep = e;
    if (lua_type(L, idx) != LUA_TTABLE)
        return NULL;
    lua_pushstring(L, "name");
    lua_rawget(L, idx);
    struct eng_worker *w =
        lua_type(L, -1) == LUA_TSTRING ? engine_worker(e, lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return w;
}

static int put_in_quarantine(lua_State *L)
{
    struct engine *e;
    struct eng_worker *w = worker_of(L, 1, &e);
    if (w != NULL)
        quarantine_put(e, w);
    return 0;
}

static int reset_quarantine(lua_State *L)
{
    struct engine *e;
    struct eng_worker *w = worker_of(L, 1, &e);
    if (w != NULL)
        quarantine_reset(w);
    return 0;
}

/* __index: the methods, quarantine_timeout and Buildbot's two class constants. */
static int worker_index(lua_State *L)
{
    struct engine *e;
    struct eng_worker *w = worker_of(L, 1, &e);
    const char *key = lua_tostring(L, 2);
    if (key == NULL)
        lua_pushnil(L);
    else if (strcmp(key, "putInQuarantine") == 0 || strcmp(key, "resetQuarantine") == 0)
        lua_pushvalue(L, lua_upvalueindex(key[0] == 'p' ? 2 : 3));
    else if (strcmp(key, "quarantine_timeout") == 0 && w != NULL)
        lua_pushnumber(L, w->quarantine_timeout);
    else if (strcmp(key, "quarantine_initial_timeout") == 0)
        lua_pushnumber(L, QUARANTINE_INITIAL);
    else if (strcmp(key, "quarantine_max_timeout") == 0)
        lua_pushnumber(L, QUARANTINE_MAX);
    else
        lua_pushnil(L);
    return 1;
}

/* __newindex: quarantine_timeout goes to the worker; anything else into the table. */
static int worker_newindex(lua_State *L)
{
    struct engine *e;
    struct eng_worker *w = worker_of(L, 1, &e);
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (key == NULL || strcmp(key, "quarantine_timeout") != 0) {
        lua_rawset(L, 1);
        return 0;
    }
    if (lua_type(L, 3) != LUA_TNUMBER)
        return luaL_error(L, "quarantine_timeout must be a number of seconds, not %s",
                          luaL_typename(L, 3));
    if (w != NULL)
        w->quarantine_timeout = lua_tonumber(L, 3);
    return 0;
}

void quarantine_set_worker_meta(struct engine *e, lua_State *L)
{
    if (luaL_newmetatable(L, WORKER_META)) {
        lua_pushlightuserdata(L, e);
        lua_pushlightuserdata(L, e);
        lua_pushcclosure(L, put_in_quarantine, 1);
        lua_pushlightuserdata(L, e);
        lua_pushcclosure(L, reset_quarantine, 1);
        lua_pushcclosure(L, worker_index, 3);
        lua_setfield(L, -2, "__index");
        lua_pushlightuserdata(L, e);
        lua_pushcclosure(L, worker_newindex, 1);
        lua_setfield(L, -2, "__newindex");
        lua_pushliteral(L, "worker");
        lua_setfield(L, -2, "__name");
        cfg_own_metatable(L, -1);
    }
    lua_setmetatable(L, -2);
}
