/*
 * One build, as Buildbot's Build runs it: a builds row numbered after the
 * builder's last, a worker_preparation step while the worker is pinged and
 * told startBuild, the properties (the configuration's, the buildset's, then
 * buildername and the builder's, the worker's and workername, buildnumber, the
 * source stamp's, owners, builddir), then the
 * factory's steps in order (after haltOnFailure only those with alwaysRun),
 * each result merged with computeResultAndTermination, and the build's
 * state_string made of the words Buildbot would write ("build successful",
 * "failed compile (failure)", "retry lost connection ...").
 *
 * A builder with `locks` gets Buildbot's locks_acquire step (number 1) and the
 * "acquiring locks" phase once the worker is ready.  bbmaster takes the locks when
 * the build starts, in the botmaster's turn that found them free, so that another
 * request in the same turn sees them taken; the phase then waits only if they were
 * not free, as Buildbot's does.  They are released when the build finishes, however
 * it finishes.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

/* The name Buildbot gives as the source of c['properties'] (its file's). */
#define MASTER_CONFIG_NAME "master.lua"

static void next_step(struct build *b);
static void build_finished(struct build *b, const char *text, int results);
static void acquire_locks(struct build *b);

static void db_build(struct build *b, const char *what, const char *sql, const struct db_param *p,
                     size_t n)
{
    char *cause = NULL;
    if (db_exec(b->e->db, sql, p, n, &cause) != 0)
        engine_db_error(what, cause);
}

static void set_state(struct build *b, const char *text)
{
    struct db_param p[] = {DB_TEXT(text), DB_INT(b->id)};
    db_build(b, "setting a build's state", "UPDATE builds SET state_string = ? WHERE id = ?", p, 2);
    engine_publish(b->e, EV_BUILD, b->id, EV_UPDATE);
}

struct render_ctx build_render_ctx(struct build *b)
{
    struct eng_worker *w = b->worker != NULL ? engine_worker(b->e, b->worker) : NULL;
    return (struct render_ctx){&b->props, b->sourcestamps, w != NULL ? w->info : NULL, b->cfg->lua};
}

/* The changed properties in one transaction (a build starts with a dozen). */
void build_write_props(struct build *b)
{
    size_t changed = 0;
    for (size_t i = 0; i < b->props.n; i++)
        changed += b->props.items[i].changed;
    if (changed == 0)
        return;
    char *cause = NULL;
    bool tx = changed > 1 && db_begin(b->e->db, &cause) == 0;
    if (cause != NULL)
        engine_db_error("writing build properties", cause), cause = NULL;
    for (size_t i = 0; i < b->props.n; i++) {
        struct prop *p = &b->props.items[i];
        if (!p->changed)
            continue;
        char *value =
            json_dumps(p->value, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
        struct db_param q[] = {DB_TEXT(value), DB_TEXT(p->source), DB_INT(b->id), DB_TEXT(p->name)};
        if (p->stored)
            db_build(b, "writing build properties",
                     "UPDATE build_properties SET value = ?, source = ? "
                     "WHERE buildid = ? AND name = ?",
                     q, 4);
        else
            db_build(b, "writing build properties",
                     "INSERT INTO build_properties (value, source, buildid, name) "
                     "VALUES (?, ?, ?, ?)",
                     q, 4);
        free(value);
        p->stored = true;
        p->changed = false;
    }
    if (tx && db_commit(b->e->db, &cause) != 0) {
        engine_db_error("writing build properties", cause);
        db_rollback(b->e->db);
    }
}

/* addBuild: the next number of the builder, retried if another master took it. */
static int insert_build(struct build *b, char **cause)
{
    struct db_param q[] = {DB_INT(b->builderid)};
    struct db_res *r =
        db_query(b->e->db, "SELECT MAX(number) FROM builds WHERE builderid = ?", q, 1, cause);
    if (r == NULL)
        return -1;
    b->number = db_res_null(r, 0, 0) ? 1 : db_res_int(r, 0, 0) + 1;
    db_res_free(r);
    for (int tries = 0; tries < 100; tries++, b->number++) {
        struct db_param p[] = {DB_INT(b->number),   DB_INT(b->builderid),   DB_INT(b->brid),
                               DB_INT(b->workerid), DB_INT(b->e->masterid), DB_INT(engine_now())};
        int rc = db_insert(b->e->db,
                           "INSERT INTO builds (number, builderid, buildrequestid, workerid, "
                           "masterid, started_at, complete_at, state_string, results, "
                           "locks_duration_s) VALUES (?, ?, ?, ?, ?, ?, NULL, 'created', NULL, 0)",
                           p, 6, &b->id, cause);
        if (rc != DB_CONFLICT)
            return rc;
        free(*cause);
        *cause = NULL;
    }
    return util_cause(cause, "no free build number for builder %lld", b->builderid);
}

/* The `properties` table of a config entry (bbm.builder, bbm.worker; or the table itself
   for the configuration's global properties) into the build's. */
static void table_props(struct build *b, int ref, bool global, const char *source)
{
    lua_State *L = b->cfg->lua;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (lua_istable(L, -1) && (global || lua_getfield(L, -1, "properties") == LUA_TTABLE)) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                struct render_ctx c = build_render_ctx(b);
                char *cause = NULL;
                json_t *v = render(&c, -1, &cause);
                if (v != NULL)
                    props_set(&b->props, lua_tostring(L, -2), v, source);
                free(cause);
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
}

/* Build.setupBuildProperties and setupBuild: the builder, the worker, the number, the
   first source stamp, the owners. */
static void setup_props(struct build *b)
{
    props_set(&b->props, "buildername", json_string(b->builder), "Builder");
    const struct cfg_builder *bc = cfg_find_builder(b->cfg, b->builder);
    const struct cfg_worker *wc = cfg_find_worker(b->cfg, b->worker);
    if (bc != NULL)
        table_props(b, bc->ref, false, "Builder");
    if (wc != NULL)
        table_props(b, wc->ref, false, "Worker");
    props_set(&b->props, "workername", json_string(b->worker), "Worker");
    props_set(&b->props, "buildnumber", json_integer(b->number), "Build");
    static const char *const keys[] = {"branch", "revision", "repository", "codebase", "project"};
    const json_t *ss = json_array_get(b->sourcestamps, 0);
    for (size_t i = 0; ss != NULL && i < UTIL_NELEM(keys); i++) {
        const json_t *v = json_object_get(ss, keys[i]);
        props_set(&b->props, keys[i], v != NULL ? json_incref((json_t *)v) : json_null(), "Build");
    }
    const json_t *owner = props_get(&b->props, "owner");
    if (owner != NULL)
        props_set(&b->props, "owners", json_pack("[O]", owner), "Build");
}

int build_partial_props(struct build *b, long long bsid, char **cause)
{
    if (b->cfg->properties_ref != LUA_NOREF)
        table_props(b, b->cfg->properties_ref, true, MASTER_CONFIG_NAME);
    if (requests_properties(b->e, bsid, &b->props, cause) != 0)
        return -1;
    props_set(&b->props, "buildername", json_string(b->builder), "Builder");
    const struct cfg_builder *bc = cfg_find_builder(b->cfg, b->builder);
    if (bc != NULL)
        table_props(b, bc->ref, false, "Builder");
    props_set(&b->props, "buildnumber", json_null(), "Build");
    static const char *const keys[] = {"branch", "revision", "repository", "codebase", "project"};
    const json_t *ss =
        json_array_size(b->sourcestamps) == 1 ? json_array_get(b->sourcestamps, 0) : NULL;
    for (size_t i = 0; ss != NULL && i < UTIL_NELEM(keys); i++) {
        const json_t *v = json_object_get(ss, keys[i]);
        props_set(&b->props, keys[i], v != NULL ? json_incref((json_t *)v) : json_null(), "Build");
    }
    return 0;
}

/* os.path.join of the worker's basedir and the builder's directory on the worker. */
static char *builddir(const struct build *b, const struct eng_worker *w)
{
    const struct cfg_builder *bc = cfg_find_builder(b->cfg, b->builder);
    const char *dir = bc != NULL ? bc->workerbuilddir : b->builder;
    const char *base = w != NULL ? pb_str(pb_dict_get(w->info, "basedir")) : NULL;
    bool nt = w != NULL && util_streq(pb_str(pb_dict_get(w->info, "system")), "nt");
    if (base == NULL || dir[0] == '/' || (nt && dir[0] != '\0' && dir[1] == ':'))
        return xstrdup(dir);
    size_t n = strlen(base);
    char sep = nt ? '\\' : '/';
    bool has_sep = n > 0 && (base[n - 1] == '/' || (nt && base[n - 1] == '\\'));
    return xasprintf("%s%s%s", base, has_sep ? "" : (char[]){sep, 0}, dir);
}

static void finish_prep(struct build *b, const char *state, int results)
{
    struct db_param p[] = {DB_TEXT(state), DB_INT(engine_now()), DB_INT(results),
                           DB_INT(b->prep_stepid)};
    db_build(b, "finishing a step",
             "UPDATE steps SET state_string = ?, complete_at = ?, results = ?, hidden = 0 "
             "WHERE id = ?",
             p, 4);
    engine_publish(b->e, EV_STEP, b->prep_stepid, EV_FINISHED);
}

static void started_cb(void *arg, const char *error)
{
    struct build *b = arg;
    if (error != NULL) {
        log_warn("build %lld of '%s' on worker '%s': %s", b->id, b->builder, b->worker, error);
        finish_prep(b, b->stopped ? "worker cancelled" : "error while worker_ping",
                    b->stopped ? RES_CANCELLED : RES_EXCEPTION);
        build_finished(b, b->stopped ? "worker cancelled" : "worker not pinged",
                       b->stopped ? b->results : RES_RETRY);
        return;
    }
    char *ready = xasprintf("worker %s ready", b->worker);
    finish_prep(b, ready, RES_SUCCESS);
    free(ready);
    if (b->stopped) {
        build_finished(b, "worker cancelled", b->results);
        return;
    }
    char *dir = builddir(b, engine_worker(b->e, b->worker));
    props_set(&b->props, "builddir", json_string(dir), "Worker");
    free(dir);
    build_write_props(b);
    acquire_locks(b);
}

/* ------------------------------------------------------------ locks */

static void locks_acquired(struct build *b)
{
    b->waiting_locks = false;
    long long now = engine_now();
    struct db_param p[] = {DB_INT(now), DB_INT(b->locks_stepid)};
    db_build(b, "setting a step's locks", "UPDATE steps SET locks_acquired_at = ? WHERE id = ?", p,
             2);
    struct db_param q[] = {DB_INT(now - b->locks_started_at), DB_INT(b->id)};
    db_build(b, "adding to a build's locks duration",
             "UPDATE builds SET locks_duration_s = locks_duration_s + ? WHERE id = ?", q, 2);
    struct db_param f[] = {DB_INT(now), DB_INT(b->locks_stepid)};
    db_build(b, "finishing a step",
             "UPDATE steps SET state_string = 'locks acquired', complete_at = ?, results = 0, "
             "hidden = 0 WHERE id = ?",
             f, 2);
    engine_publish(b->e, EV_STEP, b->locks_stepid, EV_FINISHED);
    set_state(b, "building");
    next_step(b);
}

static void locks_cb(void *arg)
{
    struct build *b = arg;
    if (b->waiting_locks)
        locks_acquired(b);
}

/* The locks_acquire phase (Build.startBuild after remoteStartBuild). */
static void acquire_locks(struct build *b)
{
    if (b->locks == NULL) {
        set_state(b, "building");
        next_step(b);
        return;
    }
    set_state(b, "acquiring locks");
    b->locks_started_at = engine_now();
    struct db_param p[] = {DB_INT(b->locks_started_at), DB_INT(b->locks_stepid)};
    db_build(b, "starting a step", "UPDATE steps SET started_at = ? WHERE id = ?", p, 2);
    engine_publish(b->e, EV_STEP, b->locks_stepid, EV_STARTED);
    b->waiting_locks = true;
    if (lockreq_owned(b->locks))
        locks_acquired(b);
    else
        log_info("build %lld: '%s' #%lld waits for its locks", b->id, b->builder, b->number);
}

/* Buildbot's locks_acquire step, added before the build's steps; its locks are asked for
   now (see the top of the file). */
static int add_locks_step(struct build *b, const struct cfg_builder *bc, char **cause)
{
    if (bc->n_locks == 0)
        return 0;
    struct db_param p[] = {DB_INT(b->id)};
    if (db_insert(b->e->db,
                  "INSERT INTO steps (number, name, buildid, started_at, complete_at, "
                  "state_string, results, urls_json, hidden, locks_acquired_at) "
                  "VALUES (1, 'locks_acquire', ?, NULL, NULL, 'pending', NULL, '[]', 0, NULL)",
                  p, 1, &b->locks_stepid, cause) != 0)
        return -1;
    b->steps_run = 1;
    b->locks = lockreq_new(b->e->locks, bc->locks, bc->n_locks, b->worker, b->cfg_version);
    lockreq_acquire(b->locks, locks_cb, b);
    return 0;
}

static int add_prep_step(struct build *b, char **cause)
{
    long long now = engine_now();
    struct db_param p[] = {DB_INT(b->id), DB_INT(now), DB_INT(now)};
    return db_insert(b->e->db,
                     "INSERT INTO steps (number, name, buildid, started_at, complete_at, "
                     "state_string, results, urls_json, hidden, locks_acquired_at) "
                     "VALUES (0, 'worker_preparation', ?, ?, NULL, 'pending', NULL, '[]', 0, ?)",
                     p, 3, &b->prep_stepid, cause);
}

int build_start(struct engine *e, const struct cfg_builder *bc, const char *worker, long long brid,
                long long bsid, long long builderid, char **cause)
{
    struct build *b = xcalloc(1, sizeof *b);
    b->e = e;
    b->cfg = e->cfg;
    b->builder = xstrdup(bc->name);
    b->worker = xstrdup(worker);
    b->brid = brid;
    b->bsid = bsid;
    b->builderid = builderid;
    b->results = RES_SUCCESS;
    b->n_steps = (int)bc->n_steps;
    b->step_names = json_object();
    b->cfg_version = e->cfg_version;
    buf_init(&b->text, 1u << 16);
    b->workerid = db_worker_id(e->db, worker, cause);
    /* Buildbot starts from the configuration's properties, source: the file's name */
    if (e->cfg->properties_ref != LUA_NOREF)
        table_props(b, e->cfg->properties_ref, true, MASTER_CONFIG_NAME);
    b->sourcestamps = b->workerid < 0 ? NULL : requests_sourcestamps(e, bsid, cause);
    if (b->sourcestamps == NULL || requests_properties(e, bsid, &b->props, cause) != 0 ||
        insert_build(b, cause) != 0 || add_prep_step(b, cause) != 0 ||
        add_locks_step(b, bc, cause) != 0) {
        /* nothing of the build was written, or only its row: give the request back */
        if (b->id > 0) {
            struct db_param p[] = {DB_INT(engine_now()), DB_INT(RES_EXCEPTION), DB_INT(b->id)};
            db_build(b, "finishing a build",
                     "UPDATE builds SET complete_at = ?, results = ? WHERE id = ?", p, 3);
        }
        build_free(b);
        return -1;
    }
    b->next = e->builds;
    e->builds = b;
    engine_publish(e, EV_BUILD, b->id, EV_NEW);
    engine_publish(e, EV_STEP, b->prep_stepid, EV_NEW);
    engine_publish(e, EV_STEP, b->prep_stepid, EV_STARTED);
    if (b->locks_stepid > 0)
        engine_publish(e, EV_STEP, b->locks_stepid, EV_NEW);
    log_info("build %lld: '%s' #%lld starting on worker '%s' (request %lld)", b->id, b->builder,
             b->number, worker, brid);
    setup_props(b);
    build_write_props(b);
    report_build(b, false, "created");
    set_state(b, "pinging worker");
    b->held = wk_build_start(e->wk, worker, b->builder, started_cb, b, cause) == 0;
    if (!b->held) {
        log_warn("build %lld: %s", b->id, *cause);
        free(*cause);
        *cause = NULL;
        finish_prep(b, "error while worker_ping", RES_EXCEPTION);
        build_finished(b, "worker not pinged", RES_RETRY);
    }
    return 0;
}

/* ------------------------------------------------------------ steps */

/* Build.setUniqueStepName. */
static char *unique_name(struct build *b, const char *name)
{
    json_t *count = json_object_get(b->step_names, name);
    if (count == NULL) {
        json_object_set_new(b->step_names, name, json_integer(0));
        return xstrdup(name);
    }
    json_int_t n = json_integer_value(count) + 1;
    json_integer_set(count, n);
    return xasprintf("%s_%lld", name, (long long)n);
}

static char *step_name(struct build *b, struct step *s)
{
    lua_State *L = b->cfg->lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
    lua_getfield(L, -1, "name");
    char *name = NULL;
    if (!lua_isnil(L, -1)) {
        struct render_ctx c = build_render_ctx(b);
        char *cause = NULL;
        json_t *v = render(&c, -1, &cause);
        name = v != NULL ? props_str(v) : NULL;
        json_decref(v);
        free(cause);
    }
    lua_pop(L, 2);
    if (name == NULL)
        name = xstrdup(step_default_name(s->kind));
    char *unique = unique_name(b, name);
    free(name);
    return unique;
}

/* The factory's step `index` as a new step, or NULL. */
static struct step *factory_step(struct build *b, int index)
{
    const struct cfg_builder *bc = cfg_find_builder(b->cfg, b->builder);
    if (bc == NULL)
        return NULL;
    lua_State *L = b->cfg->lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, bc->factory_ref);
    lua_getfield(L, -1, "steps");
    lua_rawgeti(L, -1, index + 1);
    lua_remove(L, -2);
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    return step_new(b, index); /* pops the table */
}

/* A master shutdown hands the request back to run again, whatever the step became. */
static int final_results(const struct build *b, int results)
{
    return b->stopped && b->stop_results == RES_RETRY && !b->lost ? RES_RETRY : results;
}

static void next_step(struct build *b)
{
    while (b->next_step < b->n_steps) {
        struct step *s = factory_step(b, b->next_step++);
        if (s == NULL)
            continue;
        if (b->lost || ((b->terminate || b->stopped) && !s->always_run)) {
            step_free(s);
            continue;
        }
        s->name = step_name(b, s);
        s->number = ++b->steps_run;
        b->current = s;
        step_run(s);
        return;
    }
    static const char *const words[] = {"build successful", "warnings", "failed",   "skipped",
                                        "exception",        "retry",    "cancelled"};
    int r = b->results = final_results(b, b->results);
    struct buf text;
    buf_init(&text, 1u << 16);
    buf_addstr(&text, r >= 0 && r < (int)UTIL_NELEM(words) ? words[r] : "build successful");
    if (b->stopped_reason != NULL)
        buf_printf(&text, " (%s)", b->stopped_reason);
    if (b->text.len > 0)
        buf_printf(&text, " %.*s", (int)b->text.len, b->text.data);
    buf_addc(&text, '\0');
    build_finished(b, text.data, b->results);
    buf_free(&text);
}

static void add_text(struct build *b, const char *words)
{
    if (b->text.len > 0)
        buf_addc(&b->text, ' ');
    buf_addstr(&b->text, words);
}

/* Build.stepDone: the step's words into the build's, and computeResultAndTermination. */
void build_step_done(struct step *s)
{
    struct build *b = s->b;
    b->current = NULL;
    build_write_props(b);
    if (s->lost) {
        buf_reset(&b->text);
        add_text(b, "lost connection");
    }
    if (step_in_build_summary(s)) {
        char *summary = step_summary(s, true);
        add_text(b, summary);
        buf_addc(&b->text, '\0');
        b->text.len--;
        set_state(b, b->text.data);
        free(summary);
    }
    int r = s->results, possible = r;
    if (r == RES_FAILURE) {
        possible = s->flunk_on_failure  ? RES_FAILURE
                   : s->warn_on_failure ? RES_WARNINGS
                                        : RES_SUCCESS;
        b->terminate = b->terminate || s->halt_on_failure;
    } else if (r == RES_WARNINGS) {
        possible = s->flunk_on_warnings  ? RES_FAILURE
                   : s->warn_on_warnings ? RES_WARNINGS
                                         : RES_SUCCESS;
    } else if (r == RES_EXCEPTION || r == RES_RETRY || r == RES_CANCELLED) {
        b->terminate = true;
    }
    b->results = res_worst(b->results, possible);
    if (s->lost) {
        b->results = RES_RETRY;
        b->terminate = true;
        b->lost = true;
    }
    step_free(s);
    next_step(b);
}

/* ------------------------------------------------------------ the end */

static void build_finished(struct build *b, const char *text, int results)
{
    if (b->finished)
        return;
    b->finished = true;
    lockreq_free(b->locks); /* Buildbot's releaseLocks, whatever ended the build */
    b->locks = NULL;
    b->waiting_locks = false;
    b->results = final_results(b, res_worst(b->results, results));
    struct db_param p[] = {DB_TEXT(text), DB_INT(engine_now()), DB_INT(b->results), DB_INT(b->id)};
    db_build(b, "finishing a build",
             "UPDATE builds SET state_string = ?, complete_at = ?, results = ? WHERE id = ?", p, 4);
    engine_publish(b->e, EV_BUILD, b->id, EV_FINISHED);
    report_build(b, true, text);
    char *cause = NULL;
    int rc = b->results == RES_RETRY
                 ? requests_unclaim(b->e, b->brid, &cause)
                 : requests_complete(b->e, b->brid, b->bsid, b->results, &cause);
    if (rc != 0)
        engine_db_error("finishing a build request", cause);
    log_info("build %lld: '%s' #%lld finished: %s (%s)", b->id, b->builder, b->number,
             res_name(b->results), text);
    engine_build_finished(b->e, b);
}

void build_free(struct build *b)
{
    step_free(b->current); /* only a build abandoned with the loop still has one */
    lockreq_free(b->locks);
    json_decref(b->sourcestamps);
    json_decref(b->step_names);
    props_free(&b->props);
    buf_free(&b->text);
    free(b->stopped_reason);
    free(b->builder);
    free(b->worker);
    free(b);
}

void build_stop(struct build *b, const char *reason, int results)
{
    if (b->finished || b->stopped)
        return;
    b->stopped = true;
    free(b->stopped_reason);
    b->stopped_reason = xstrdup(reason);
    b->results = results;
    b->stop_results = results;
    struct step *s = b->current;
    if (b->waiting_locks) { /* Buildbot stops waiting and goes on without the locks */
        lockreq_free(b->locks);
        b->locks = NULL;
        locks_acquired(b);
    } else if (s != NULL && s->waiting_db) { /* it never started: nothing to interrupt */
        b->current = NULL;
        step_free(s);
        next_step(b);
    } else if (s != NULL) {
        step_interrupt(s, reason);
    }
}
