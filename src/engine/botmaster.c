/*
 * The botmaster: pending build requests handed to free workers in Buildbot's order.
 * Builders come first by the highest priority of their pending requests, then by their
 * oldest request, then by name (Buildbot's prioritizeBuilders default; a Lua
 * `prioritizeBuilders(master, builders)` in master.lua replaces it), and each builder in
 * turn starts all it can before the next: its requests by priority, oldest first (a
 * builder's `nextBuild(builder, requests)` replaces that), each on a worker that is
 * attached, configured for the builder and has confirmed it (the worker answered a builder
 * list naming it), not already building for it, not paused, not in quarantine
 * (quarantine.c) and under its max_builds (the least busy such worker first, or the one the
 * builder's `nextWorker(builder, workers, request)`, or else master.lua's `select_next_worker`,
 * picks), and that the builder's canStartBuild
 * allows.  A request is claimed in buildrequest_claims before its build starts; a claim
 * another master won is skipped.  Runs whenever something may have freed a worker or
 * added a request (engine_kick).
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* Requests looked at per run; a run that starts builds is followed by another. */
#define BOTMASTER_BATCH 500

/* The columns of the pending requests' query. */
enum {
    COL_ID,
    COL_BSID,
    COL_BUILDERID,
    COL_NAME,
    COL_PRIORITY,
    COL_SUBMITTED,
    COL_TOP,
    COL_OLDEST
};

/* A builder's share of the pending requests: rows [first, first + n) of the answer. */
struct group {
    size_t first, n;
    const struct cfg_builder *bc; /* NULL: a builder of another master, or unconfigured */
};

/* Pushes the function `key` of the table behind registry reference `ref`; false (nothing
   pushed) when it is not a function. */
static bool push_fn(lua_State *L, int ref, const char *key)
{
    if (ref == LUA_NOREF || ref == LUA_REFNIL)
        return false;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, ref) != LUA_TTABLE) {
        lua_pop(L, 1);
        return false;
    }
    if (lua_getfield(L, -1, key) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return false;
    }
    lua_remove(L, -2);
    return true;
}

static bool has_fn(lua_State *L, int ref, const char *key)
{
    bool yes = push_fn(L, ref, key);
    if (yes)
        lua_pop(L, 1);
    return yes;
}

static void set_str(lua_State *L, const char *key, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

static void set_int(lua_State *L, const char *key, long long v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

void botmaster_lua_builder(lua_State *L, const struct cfg_builder *bc)
{
    lua_newtable(L);
    set_str(L, "name", bc->name);
    lua_createtable(L, (int)bc->n_tags, 0);
    for (size_t i = 0; i < bc->n_tags; i++) {
        lua_pushstring(L, bc->tags[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "tags");
}

/* A worker as Buildbot's WorkerForBuilder: .name and .worker, with .worker.workername,
   :putInQuarantine(), :resetQuarantine() and .quarantine_timeout. */
static void push_wfb(struct engine *e, const char *worker)
{
    lua_State *L = e->cfg->lua;
    lua_newtable(L);
    set_str(L, "name", worker);
    lua_newtable(L);
    set_str(L, "workername", worker);
    set_str(L, "name", worker);
    quarantine_set_worker_meta(e, L);
    lua_setfield(L, -2, "worker");
}

void botmaster_lua_master(struct engine *e)
{
    lua_State *L = e->cfg->lua;
    lua_newtable(L);
    set_str(L, "title", e->cfg->title);
    set_str(L, "buildbotURL", e->cfg->buildbot_url);
}

/* Request row `i`: id (and buildrequestid), bsid, builderid, buildername, priority,
   submittedAt. */
static void push_request(lua_State *L, const struct db_res *r, size_t i)
{
    lua_newtable(L);
    set_int(L, "id", db_res_int(r, i, COL_ID));
    set_int(L, "buildrequestid", db_res_int(r, i, COL_ID));
    set_int(L, "bsid", db_res_int(r, i, COL_BSID));
    set_int(L, "builderid", db_res_int(r, i, COL_BUILDERID));
    set_str(L, "buildername", db_res_text(r, i, COL_NAME));
    set_int(L, "priority", db_res_int(r, i, COL_PRIORITY));
    set_int(L, "submittedAt", db_res_int(r, i, COL_SUBMITTED));
}

/* Calls the function below its `nargs` arguments; false (and a warning naming `what`, of
   builder `bc` or of master.lua when NULL) if it failed or ran past its budget.  Its one
   result is left on the stack. */
static bool call(lua_State *L, int nargs, const struct cfg_builder *bc, const char *what)
{
    char *cause = NULL;
    if (cfg_lua_call(L, nargs, 1, &cause) == 0)
        return true;
    if (bc != NULL)
        log_warn("builder '%s': %s: %s", bc->name, what, cause);
    else
        log_warn("%s: %s", what, cause);
    free(cause);
    return false;
}

/* Field `name` of the table at the top of the stack, pushed without its metamethods: what a
   function returned is read outside its call, where an error in Lua code (an __index that
   runs past its budget) would abort the master. */
static void raw_field(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, -2);
}

/* Whether the builder's locks are free on the worker and its canStartBuild(builder, wfb,
   request), a Lua function, allows the build (true without one). */
static bool can_start(struct engine *e, const struct cfg_builder *bc, const char *worker,
                      const struct db_res *r, size_t i)
{
    /* Buildbot's Builder.canStartBuild: first whether the builder's locks could be taken
       on this worker now, behind everyone waiting for them */
    if (!locks_available(e->locks, bc->locks, bc->n_locks, worker, e->cfg_version))
        return false;
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    bool yes = true;
    if (push_fn(L, bc->ref, "canStartBuild")) {
        botmaster_lua_builder(L, bc);
        push_wfb(e, worker);
        push_request(L, r, i);
        yes = call(L, 3, bc, "canStartBuild") && lua_toboolean(L, -1);
    }
    lua_settop(L, top);
    return yes;
}

/* A worker runs one build of a builder at a time (Buildbot's WorkerForBuilder). */
static bool building(const struct engine *e, const char *worker, const char *builder)
{
    for (const struct build *b = e->builds; b != NULL; b = b->next)
        if (!b->finished && util_streq(b->worker, worker) && util_streq(b->builder, builder))
            return true;
    return false;
}

/* The worker `name` if it could take a build of `bc` now (canStartBuild aside). */
static struct eng_worker *free_worker(struct engine *e, const struct cfg_builder *bc,
                                      const char *name)
{
    struct eng_worker *w = engine_worker(e, name);
    const struct cfg_worker *wc = cfg_find_worker(e->cfg, name);
    /* as Buildbot attaches a worker to a builder: once it answered a builder list with it */
    if (w == NULL || wc == NULL || !w->attached || w->paused || w->graceful ||
        quarantine_holds(w) || !wk_has_builder(e->wk, w->name, bc->name))
        return NULL;
    if ((wc->max_builds > 0 && w->running >= wc->max_builds) || building(e, w->name, bc->name))
        return NULL;
    return w;
}

static bool has_free_worker(struct engine *e, const struct cfg_builder *bc)
{
    for (size_t i = 0; i < bc->n_workernames; i++)
        if (free_worker(e, bc, bc->workernames[i]) != NULL)
            return true;
    return false;
}

/* Pushes the builder's nextWorker, or else master.lua's select_next_worker; false (nothing
   pushed) without either. */
static bool push_next_worker(struct engine *e, const struct cfg_builder *bc)
{
    return push_fn(e->cfg->lua, bc->ref, "nextWorker") ||
           push_fn(e->cfg->lua, e->cfg->top_ref, "select_next_worker");
}

/* The index in `pool` of the worker nextWorker returned (a wfb table or a name), or -1. */
static long next_worker(struct engine *e, const struct cfg_builder *bc, struct eng_worker **pool,
                        size_t n, const struct db_res *r, size_t i)
{
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    long found = -1;
    if (push_next_worker(e, bc)) {
        botmaster_lua_builder(L, bc);
        lua_createtable(L, (int)n, 0);
        for (size_t k = 0; k < n; k++) {
            push_wfb(e, pool[k]->name);
            lua_rawseti(L, -2, (lua_Integer)k + 1);
        }
        push_request(L, r, i);
        if (call(L, 3, bc, "nextWorker")) {
            if (lua_istable(L, -1))
                raw_field(L, "name");
            const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            for (size_t k = 0; name != NULL && k < n && found < 0; k++)
                if (util_streq(pool[k]->name, name))
                    found = (long)k;
        }
    }
    lua_settop(L, top);
    return found;
}

static bool in_pool(struct eng_worker *const *pool, size_t n, const struct eng_worker *w)
{
    for (size_t k = 0; k < n; k++)
        if (pool[k] == w)
            return true;
    return false;
}

/* The worker for request row `i` of builder `bc`, or NULL.  With a nextWorker, the workers
   it picks are tried in turn until canStartBuild allows one (Buildbot's BuildChooser).  A
   worker named twice in workernames is offered once: Buildbot accepts the list as it is,
   and attaches a worker to a builder once. */
static struct eng_worker *pick_worker(struct engine *e, const struct cfg_builder *bc,
                                      const struct db_res *r, size_t i)
{
    struct eng_worker **pool = xcalloc(bc->n_workernames + 1, sizeof *pool), *best = NULL;
    size_t n = 0;
    for (size_t k = 0; k < bc->n_workernames; k++)
        if ((pool[n] = free_worker(e, bc, bc->workernames[k])) != NULL &&
            !in_pool(pool, n, pool[n]))
            n++;
    if (push_next_worker(e, bc)) {
        lua_pop(e->cfg->lua, 1);
        for (long k; best == NULL && n > 0 && (k = next_worker(e, bc, pool, n, r, i)) >= 0;) {
            struct eng_worker *w = pool[k];
            pool[k] = pool[--n];
            if (can_start(e, bc, w->name, r, i))
                best = w;
        }
    } else {
        for (size_t k = 0; k < n; k++)
            if ((best == NULL || pool[k]->running < best->running) &&
                can_start(e, bc, pool[k]->name, r, i))
                best = pool[k];
    }
    free(pool);
    return best;
}

/* Starts request row `i` if a worker is free: 1 started, 0 not, -1 on error. */
static int try_request(struct engine *e, const struct group *g, const struct db_res *r, size_t i)
{
    long long brid = db_res_int(r, i, COL_ID), bsid = db_res_int(r, i, COL_BSID),
              builderid = db_res_int(r, i, COL_BUILDERID);
    struct eng_worker *w = pick_worker(e, g->bc, r, i);
    if (w == NULL)
        return 0;
    char *cause = NULL;
    int claimed = requests_claim(e, brid, &cause);
    if (claimed <= 0) {
        if (claimed < 0)
            engine_db_error("claiming a build request", cause);
        return claimed;
    }
    w->running++;
    if (build_start(e, g->bc, w->name, brid, bsid, builderid, &cause) != 0) {
        w->running--;
        engine_db_error("starting a build", cause);
        cause = NULL;
        if (requests_unclaim(e, brid, &cause) != 0)
            engine_db_error("giving back a build request", cause);
        return -1;
    }
    return 1;
}

/* The row of the request nextBuild returned (a request table or an id) among the group's
   rows not yet `tried`, or -1. */
static long next_build(struct engine *e, const struct group *g, const struct db_res *r,
                       const bool *tried)
{
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    long found = -1;
    if (push_fn(L, g->bc->ref, "nextBuild")) {
        botmaster_lua_builder(L, g->bc);
        lua_newtable(L);
        for (size_t k = 0, n = 0; k < g->n; k++)
            if (!tried[k]) {
                push_request(L, r, g->first + k);
                lua_rawseti(L, -2, (lua_Integer)++n);
            }
        if (call(L, 2, g->bc, "nextBuild")) {
            if (lua_istable(L, -1))
                raw_field(L, "id");
            long long id = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            for (size_t k = 0; id > 0 && k < g->n && found < 0; k++)
                if (!tried[k] && db_res_int(r, g->first + k, COL_ID) == id)
                    found = (long)k;
        }
    }
    lua_settop(L, top);
    return found;
}

/* Starts what the builder can: each request in turn, or in nextBuild's order until it
   returns none or no worker is left.  -1 on error. */
static int run_builder(struct engine *e, const struct group *g, const struct db_res *r)
{
    if (g->bc == NULL)
        return 0;
    if (!has_fn(e->cfg->lua, g->bc->ref, "nextBuild")) {
        for (size_t k = 0; k < g->n && !e->stopping; k++)
            if (try_request(e, g, r, g->first + k) < 0)
                return -1;
        return 0;
    }
    bool *tried = xcalloc(g->n + 1, sizeof *tried);
    int rc = 0;
    for (long k; rc == 0 && !e->stopping && has_free_worker(e, g->bc) &&
                 (k = next_build(e, g, r, tried)) >= 0;) {
        tried[k] = true;
        rc = try_request(e, g, r, g->first + (size_t)k) < 0 ? -1 : 0;
    }
    free(tried);
    return rc;
}

/* master.lua's prioritizeBuilders(master, builders) reorders `g` (builders it leaves out
   wait for the next run); `g` is left as it is if the function fails. */
static void prioritize(struct engine *e, struct group *g, size_t *ng, const struct db_res *r)
{
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    if (!push_fn(L, e->cfg->top_ref, "prioritizeBuilders"))
        return;
    botmaster_lua_master(e);
    lua_newtable(L);
    size_t n = 0;
    for (size_t k = 0; k < *ng; k++) {
        if (g[k].bc == NULL)
            continue;
        botmaster_lua_builder(L, g[k].bc);
        set_int(L, "priority", db_res_int(r, g[k].first, COL_TOP));
        set_int(L, "oldestRequestTime", db_res_int(r, g[k].first, COL_OLDEST));
        lua_rawseti(L, -2, (lua_Integer)++n);
    }
    if (!call(L, 2, NULL, "prioritizeBuilders") || !lua_istable(L, -1)) {
        lua_settop(L, top);
        return;
    }
    struct group *out = xcalloc(*ng + 1, sizeof *out);
    size_t m = 0;
    for (lua_Integer k = 1; lua_rawgeti(L, -1, k) != LUA_TNIL && m < *ng; k++) {
        if (lua_istable(L, -1))
            raw_field(L, "name");
        const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        for (size_t j = 0; j < *ng; j++)
            if (g[j].bc != NULL && util_streq(g[j].bc->name, name)) {
                out[m++] = g[j];
                g[j].bc = NULL; /* each builder once */
            }
        lua_settop(L, top + 1);
    }
    memcpy(g, out, m * sizeof *out);
    *ng = m;
    free(out);
    lua_settop(L, top);
}

/* The answer's rows, builder by builder (a builder's rows are consecutive). */
static struct group *groups_of(struct engine *e, const struct db_res *r, size_t *ng)
{
    size_t rows = db_res_rows(r);
    struct group *g = xcalloc(rows + 1, sizeof *g);
    *ng = 0;
    for (size_t i = 0; i < rows; i++) {
        if (*ng == 0 ||
            db_res_int(r, i, COL_BUILDERID) != db_res_int(r, g[*ng - 1].first, COL_BUILDERID))
            g[(*ng)++] =
                (struct group){i, 0, cfg_find_builder(e->cfg, db_res_text(r, i, COL_NAME))};
        g[*ng - 1].n++;
    }
    return g;
}

void botmaster_run(struct engine *e)
{
    if (db_behind_down(e->db, NULL))
        return; /* claims need the database: the engine kicks once it is back */
    /* only the requests of builders a worker is free for: when every worker is busy (a
       long queue), a finished build costs one small query, not a scan of the queue */
    struct buf sql;
    buf_init(&sql, 1u << 20);
    buf_addstr(
        &sql, "SELECT br.id, br.buildsetid, br.builderid, b.name, br.priority, "
              "br.submitted_at, MAX(br.priority) OVER (PARTITION BY br.builderid) AS top_priority, "
              "MIN(br.submitted_at) OVER (PARTITION BY br.builderid) AS oldest "
              "FROM buildrequests br JOIN builders b ON b.id = br.builderid "
              "WHERE br.complete = 0 AND b.name IN (");
    struct db_param *p = xcalloc(e->cfg->n_builders + 1, sizeof *p);
    size_t n = 0;
    for (size_t i = 0; i < e->cfg->n_builders; i++) {
        if (!has_free_worker(e, &e->cfg->builders[i]))
            continue;
        buf_addstr(&sql, n > 0 ? ", ?" : "?");
        p[n++] = DB_TEXT(e->cfg->builders[i].name);
    }
    buf_addc(&sql, ')');
    if (e->draining) /* a clean shutdown: only what a running trigger step waits for */
        buf_addstr(&sql, " AND br.waited_for <> 0");
    buf_addstr(&sql, " AND NOT EXISTS (SELECT 1 FROM buildrequest_claims c "
                     "WHERE c.brid = br.id) ORDER BY top_priority DESC, oldest, b.name, "
                     "br.priority DESC, br.id LIMIT ?");
    buf_addc(&sql, '\0');
    p[n] = DB_INT(BOTMASTER_BATCH);
    char *cause = NULL;
    struct db_res *r = n > 0 ? db_query(e->db, sql.data, p, n + 1, &cause) : NULL;
    if (n > 0 && r == NULL)
        engine_db_error("reading pending build requests", cause);
    size_t ng = 0;
    struct group *g = r != NULL ? groups_of(e, r, &ng) : NULL;
    if (ng > 0)
        prioritize(e, g, &ng, r);
    for (size_t i = 0; i < ng && !e->stopping; i++)
        if (run_builder(e, &g[i], r) < 0)
            break;
    free(g);
    db_res_free(r);
    free(p);
    buf_free(&sql);
}
