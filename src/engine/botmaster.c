/*
 * The botmaster: pending build requests, oldest first within their priority,
 * each handed to a worker that is attached, configured for the builder, not
 * already building for it, not paused and under its max_builds (the least busy such worker first),
 * and that the builder's canStartBuild (a Lua function) allows.  A request is claimed in
 * buildrequest_claims before its build starts; a claim another master won is skipped.  Runs
 * whenever something may have freed a worker or added a request (engine_kick).
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>

/* Requests looked at per run; a run that starts builds is followed by another. */
#define BOTMASTER_BATCH 500

/* The builder's canStartBuild(builder, worker, request), a Lua function; true without one. */
static bool can_start(struct engine *e, const struct cfg_builder *bc, const char *worker,
                      long long brid)
{
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, bc->ref);
    bool yes = true;
    if (lua_istable(L, -1) && lua_getfield(L, -1, "canStartBuild") == LUA_TFUNCTION) {
        lua_newtable(L);
        lua_pushstring(L, bc->name);
        lua_setfield(L, -2, "name");
        lua_newtable(L); /* Buildbot's WorkerForBuilder: .worker.workername */
        lua_pushstring(L, worker);
        lua_setfield(L, -2, "name");
        lua_newtable(L);
        lua_pushstring(L, worker);
        lua_setfield(L, -2, "workername");
        lua_pushstring(L, worker);
        lua_setfield(L, -2, "name");
        lua_setfield(L, -2, "worker");
        lua_newtable(L);
        lua_pushinteger(L, brid);
        lua_setfield(L, -2, "buildrequestid");
        if (lua_pcall(L, 3, 1, 0) == LUA_OK) {
            yes = lua_toboolean(L, -1);
        } else {
            log_warn("builder '%s': canStartBuild: %s", bc->name, lua_tostring(L, -1));
            yes = false;
        }
    }
    lua_settop(L, top);
    return yes;
}

/* A worker runs one build of a builder at a time (Buildbot's WorkerForBuilder). */
static bool building(const struct engine *e, const char *worker, const char *builder)
{
    for (const struct build *b = e->builds; b != NULL; b = b->next)
        if (util_streq(b->worker, worker) && util_streq(b->builder, builder))
            return true;
    return false;
}

static struct eng_worker *pick_worker(struct engine *e, const struct cfg_builder *bc,
                                      long long brid)
{
    struct eng_worker *best = NULL;
    for (size_t i = 0; i < bc->n_workernames; i++) {
        struct eng_worker *w = engine_worker(e, bc->workernames[i]);
        const struct cfg_worker *wc = cfg_find_worker(e->cfg, bc->workernames[i]);
        if (w == NULL || wc == NULL || !w->attached || w->paused || w->graceful ||
            !wk_is_attached(e->wk, w->name))
            continue;
        if ((wc->max_builds > 0 && w->running >= wc->max_builds) || building(e, w->name, bc->name))
            continue;
        if ((best == NULL || w->running < best->running) && can_start(e, bc, w->name, brid))
            best = w;
    }
    return best;
}

/* Starts request row `i` of `r` if a worker is free: 1 started, 0 not, -1 on error. */
static int try_request(struct engine *e, struct db_res *r, size_t i)
{
    long long brid = db_res_int(r, i, 0), bsid = db_res_int(r, i, 1),
              builderid = db_res_int(r, i, 2);
    const struct cfg_builder *bc = cfg_find_builder(e->cfg, db_res_text(r, i, 3));
    if (bc == NULL)
        return 0; /* a builder of another master, or no longer configured */
    struct eng_worker *w = pick_worker(e, bc, brid);
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
    if (build_start(e, bc, w->name, brid, bsid, builderid, &cause) != 0) {
        w->running--;
        engine_db_error("starting a build", cause);
        cause = NULL;
        if (requests_unclaim(e, brid, &cause) != 0)
            engine_db_error("giving back a build request", cause);
        return -1;
    }
    return 1;
}

/* Whether some worker could take a build of `bc` now (canStartBuild aside). */
static bool has_free_worker(struct engine *e, const struct cfg_builder *bc)
{
    for (size_t i = 0; i < bc->n_workernames; i++) {
        struct eng_worker *w = engine_worker(e, bc->workernames[i]);
        const struct cfg_worker *wc = cfg_find_worker(e->cfg, bc->workernames[i]);
        if (w != NULL && wc != NULL && w->attached && !w->paused && !w->graceful &&
            (wc->max_builds <= 0 || w->running < wc->max_builds) && !building(e, w->name, bc->name))
            return true;
    }
    return false;
}

void botmaster_run(struct engine *e)
{
    /* only the requests of builders a worker is free for: when every worker is busy (a
       long queue), a finished build costs one small query, not a scan of the queue */
    struct buf sql;
    buf_init(&sql, 1u << 20);
    buf_addstr(&sql, "SELECT br.id, br.buildsetid, br.builderid, b.name "
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
    buf_addstr(&sql, ") AND NOT EXISTS (SELECT 1 FROM buildrequest_claims c "
                     "WHERE c.brid = br.id) ORDER BY br.priority DESC, br.submitted_at, br.id "
                     "LIMIT ?");
    buf_addc(&sql, '\0');
    p[n] = DB_INT(BOTMASTER_BATCH);
    char *cause = NULL;
    struct db_res *r = n > 0 ? db_query(e->db, sql.data, p, n + 1, &cause) : NULL;
    if (n > 0 && r == NULL)
        engine_db_error("reading pending build requests", cause);
    for (size_t i = 0; r != NULL && i < db_res_rows(r) && !e->stopping; i++)
        if (try_request(e, r, i) < 0)
            break;
    db_res_free(r);
    free(p);
    buf_free(&sql);
}
