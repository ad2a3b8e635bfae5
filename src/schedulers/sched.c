/*
 * The schedulers of the running configuration.  Each single_branch and
 * any_branch scheduler gets a runtime here, keyed by name, that lives
 * across reconfigs as long as the configuration keeps a scheduler of that
 * name and kind (its timers and classified changes stay); it is active when
 * its schedulers row is enabled and this master holds it.  Changes are
 * handed to every active one.  The control actions on schedulers come here
 * too: `force` on a force scheduler, `enable` on any scheduler.
 */
#include "schedulers/internal.h"

#include <lauxlib.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

lua_State *sched_table(struct sched_one *o)
{
    lua_State *L = o->s->cfg->lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, o->ref);
    return L;
}

double sched_num(struct sched_one *o, const char *key, double def)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    double v = lua_getfield(L, -1, key) == LUA_TNUMBER ? lua_tonumber(L, -1) : def;
    lua_settop(L, top - 1);
    return v;
}

bool sched_bool(struct sched_one *o, const char *key)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    lua_getfield(L, -1, key);
    bool v = lua_toboolean(L, -1);
    lua_settop(L, top - 1);
    return v;
}

json_t *sched_codebases(struct sched_one *o)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    json_t *out = json_object();
    if (lua_getfield(L, -1, "codebases") == LUA_TTABLE) {
        json_t *v = cfg_lua_to_json(L, -1);
        size_t i;
        json_t *name;
        if (json_is_array(v)) {
            json_array_foreach(v, i, name)
            {
                if (json_is_string(name))
                    json_object_set_new(out, json_string_value(name), json_object());
            }
        } else {
            json_object_update(out, v);
        }
        json_decref(v);
    }
    if (json_object_size(out) == 0)
        json_object_set_new(out, "", json_object());
    lua_settop(L, top - 1);
    return out;
}

bool sched_takes_codebase(struct sched_one *o, const json_t *change)
{
    const char *cb = json_string_value(json_object_get(change, "codebase"));
    json_t *codebases = sched_codebases(o);
    bool known = json_object_get(codebases, cb ? cb : "") != NULL;
    json_decref(codebases);
    if (!known)
        log_info("change contains codebase %s that is not processed by scheduler %s",
                 UTIL_ESC(cb ? cb : ""), o->name);
    return known;
}

/* The keys of a JSON object, sorted (free the array only). */
static const char **sorted_keys(const json_t *o, size_t *n)
{
    const char **keys = xcalloc(json_object_size(o) + 1, sizeof *keys);
    const char *k;
    json_t *v;
    *n = 0;
    json_object_foreach((json_t *)o, k, v)
    {
        keys[(*n)++] = k;
    }
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

char *sched_reason(struct sched_one *o, const char *classname)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    const char *fmt = lua_getfield(L, -1, "reason") == LUA_TSTRING
                          ? lua_tostring(L, -1)
                          : "The %(classname)s scheduler named '%(name)s' triggered this build";
    struct buf b;
    buf_init(&b, 64 * 1024);
    for (const char *p = fmt; *p != '\0'; p++) {
        if (util_startswith(p, "%(name)s")) {
            buf_addstr(&b, o->name);
            p += 7;
        } else if (util_startswith(p, "%(classname)s")) {
            buf_addstr(&b, classname);
            p += 12;
        } else {
            buf_addc(&b, *p);
        }
    }
    lua_settop(L, top - 1);
    return buf_take(&b);
}

/* The scheduler's own properties ("Scheduler", sorted by name), then `scheduler`. */
static json_t *own_properties(struct sched_one *o)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    json_t *props = json_array();
    if (lua_getfield(L, -1, "properties") == LUA_TTABLE) {
        json_t *v = cfg_lua_to_json(L, -1);
        size_t n;
        const char **keys = sorted_keys(v, &n);
        for (size_t i = 0; i < n; i++)
            if (strcmp(keys[i], "scheduler") != 0)
                json_array_append_new(
                    props, json_pack("[sOs]", keys[i], json_object_get(v, keys[i]), "Scheduler"));
        free(keys);
        json_decref(v);
    }
    lua_settop(L, top - 1);
    json_array_append_new(props, json_pack("[sss]", "scheduler", o->name, "Scheduler"));
    return props;
}

/* Sets name = value (source "Change"), in the place the name already has. */
static void set_prop(json_t *props, const char *name, json_t *value)
{
    size_t i;
    json_t *p;
    json_array_foreach(props, i, p)
    {
        if (util_streq(json_string_value(json_array_get(p, 0)), name)) {
            json_array_set(p, 1, value);
            json_array_set_new(p, 2, json_string("Change"));
            return;
        }
    }
    json_array_append_new(props, json_pack("[sOs]", name, value, "Change"));
}

static int change_properties(struct sched_one *o, long long changeid, json_t *props)
{
    struct db_param p = DB_INT(changeid);
    char *cause = NULL;
    struct db_res *r = db_query(o->s->db,
                                "SELECT property_name, property_value FROM change_properties "
                                "WHERE changeid = ?",
                                &p, 1, &cause);
    if (r == NULL) {
        log_error("scheduler '%s': reading change %lld: %s", o->name, changeid, cause);
        free(cause);
        return -1;
    }
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *pair = json_loads(db_res_text(r, i, 1), JSON_DECODE_ANY, NULL);
        if (json_is_array(pair))
            set_prop(props, db_res_text(r, i, 0), json_array_get(pair, 0));
        json_decref(pair);
    }
    db_res_free(r);
    return 0;
}

/* A change property's value (owned), or NULL. */
static json_t *change_property(struct sched_one *o, long long changeid, const char *name)
{
    struct db_param p[] = {DB_INT(changeid), DB_TEXT(name)};
    char *cause = NULL;
    struct db_res *r = db_query(o->s->db,
                                "SELECT property_value FROM change_properties WHERE changeid = ? "
                                "AND property_name = ?",
                                p, 2, &cause);
    if (r == NULL) {
        log_error("scheduler '%s': %s", o->name, cause);
        free(cause);
        return NULL;
    }
    json_t *pair = db_res_rows(r) > 0 ? json_loads(db_res_text(r, 0, 0), 0, NULL) : NULL;
    db_res_free(r);
    json_t *v = json_incref(json_array_get(pair, 0));
    json_decref(pair);
    return v;
}

static bool stable(struct sched_one *o, const char *builder)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    bool listed = lua_getfield(L, -1, "stableBuilderNames") == LUA_TTABLE, found = false;
    for (lua_Integer i = 1; listed && i <= luaL_len(L, -1) && !found; i++) {
        lua_geti(L, -1, i);
        found = util_streq(lua_tostring(L, -1), builder);
        lua_pop(L, 1);
    }
    lua_settop(L, top - 1);
    if (listed)
        return found;
    const struct cfg_builder *b = cfg_find_builder(o->s->cfg, builder);
    for (size_t i = 0; b != NULL && i < b->n_tags; i++)
        found = found || strcmp(b->tags[i], "stable") == 0;
    return found;
}

/*
 * A pull_request scheduler's builders for `changes`, as CPython's
 * GitHubPrScheduler picks them: those the first change's builderfilter finds
 * (a case-insensitive search), only stable ones (stableBuilderNames, or the
 * builders tagged "stable") unless the change came from a comment.
 */
static json_t *pr_builders(struct sched_one *o, const json_t *changes)
{
    long long id =
        (long long)json_integer_value(json_object_get(json_array_get(changes, 0), "changeid"));
    json_t *filter = change_property(o, id, "builderfilter"),
           *event = change_property(o, id, "event"), *out = json_array();
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = json_is_string(filter)
                         ? pcre2_compile((PCRE2_SPTR)json_string_value(filter),
                                         PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err, &off, NULL)
                         : NULL;
    pcre2_match_data *md = re != NULL ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    bool any = util_streq(json_string_value(event), "issue_comment");
    for (size_t i = 0; i < o->n_builders; i++) {
        const char *name = o->builders[i];
        if ((any || stable(o, name)) &&
            (re == NULL || pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL) >= 0))
            json_array_append_new(out, json_string(name));
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    json_decref(filter);
    json_decref(event);
    return out;
}

/* The scheduler's priority: a number, or Buildbot's callable priority(builderNames,
   changesByCodebase) -> integer; 0 without one, or when the function fails. */
static long long priority_of(struct sched_one *o, const json_t *builders, const json_t *changes)
{
    lua_State *L = sched_table(o);
    int top = lua_gettop(L);
    long long p = 0;
    int t = lua_getfield(L, -1, "priority");
    if (t == LUA_TNUMBER) {
        p = (long long)lua_tonumber(L, -1);
    } else if (t == LUA_TFUNCTION) {
        cfg_lua_push_json(L, builders);
        lua_newtable(L);
        size_t i;
        const json_t *c;
        json_array_foreach(changes, i, c)
        {
            const char *cb = json_string_value(json_object_get(c, "codebase"));
            if (lua_getfield(L, -1, cb != NULL ? cb : "") != LUA_TTABLE) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_setfield(L, -3, cb != NULL ? cb : "");
            }
            filter_push_change(L, c);
            lua_rawseti(L, -2, luaL_len(L, -2) + 1);
            lua_pop(L, 1);
        }
        char *cause = NULL;
        if (cfg_lua_call(L, 2, 1, &cause) != 0)
            log_error("scheduler '%s': priority: %s", o->name, cause);
        else if (lua_isinteger(L, -1))
            p = lua_tointeger(L, -1);
        else
            log_error("scheduler '%s': priority returned no integer", o->name);
        free(cause);
    }
    lua_settop(L, top - 1);
    return p;
}

int sched_build_changes(struct sched_one *o, const json_t *changes, const char *reason)
{
    json_t *builders = json_array();
    if (strcmp(o->kind, "pull_request") == 0 && json_array_size(changes) > 0) {
        json_decref(builders);
        builders = pr_builders(o, changes);
        if (json_array_size(builders) == 0) {
            log_info("scheduler '%s': no matching builders after filtering", o->name);
            json_decref(builders);
            return 0;
        }
    } else {
        for (size_t j = 0; j < o->n_builders; j++)
            json_array_append_new(builders, json_string(o->builders[j]));
    }
    json_t *codebases = sched_codebases(o), *last = json_object();
    size_t i;
    const json_t *c;
    json_array_foreach(changes, i, c)
    {
        const char *cb = json_string_value(json_object_get(c, "codebase"));
        json_object_set(last, cb ? cb : "", (json_t *)c);
    }
    json_t *stamps = json_array(), *props = own_properties(o);
    size_t n;
    const char **names = sorted_keys(codebases, &n);
    int rc = 0;
    for (size_t j = 0; j < n && rc == 0; j++) {
        const json_t *ch = json_object_get(last, names[j]);
        const json_t *cb = json_object_get(codebases, names[j]);
        if (ch == NULL) {
            const char *repo = json_string_value(json_object_get(cb, "repository"));
            json_array_append_new(
                stamps,
                json_pack(
                    "{sssssOsOss}", "codebase", names[j], "repository", repo ? repo : "", "branch",
                    json_object_get(cb, "branch") ? json_object_get(cb, "branch") : json_null(),
                    "revision",
                    json_object_get(cb, "revision") ? json_object_get(cb, "revision") : json_null(),
                    "project", ""));
            continue;
        }
        json_array_append_new(stamps,
                              json_pack("{sOsOsOsOsO}", "codebase", json_object_get(ch, "codebase"),
                                        "branch", json_object_get(ch, "branch"), "revision",
                                        json_object_get(ch, "revision"), "repository",
                                        json_object_get(ch, "repository"), "project",
                                        json_object_get(ch, "project")));
        rc = change_properties(o, (long long)json_integer_value(json_object_get(ch, "changeid")),
                               props);
    }
    free(names);
    char *who = xasprintf("scheduler '%s'", o->name);
    struct eng_buildset bs = {who,    reason,   props,
                              stamps, builders, priority_of(o, builders, changes)};
    char *cause = NULL;
    if (rc == 0 && engine_add_buildset(o->s->e, &bs, NULL, &cause) < 0) {
        log_error("%s: adding a buildset: %s", who, cause);
        free(cause);
        rc = -1;
    }
    free(who);
    json_decref(builders);
    json_decref(stamps);
    json_decref(props);
    json_decref(last);
    json_decref(codebases);
    return rc;
}

json_t *sched_classified(struct sched_one *o, const json_t *where, char **cause)
{
    const char *branch = json_string_value(json_object_get(where, "branch"));
    struct db_param p[] = {
        DB_INT(o->id), DB_TEXT(json_string_value(json_object_get(where, "codebase"))),
        DB_TEXT(json_string_value(json_object_get(where, "project"))),
        DB_TEXT(json_string_value(json_object_get(where, "repository"))), DB_TEXT(branch)};
    char sql[640];
    snprintf(sql, sizeof sql,
             "SELECT c.changeid, c.codebase, c.branch, c.revision, c.repository, c.project, "
             "sc.important FROM scheduler_changes sc JOIN changes c ON c.changeid = sc.changeid "
             "WHERE sc.schedulerid = ?%s ORDER BY c.changeid",
             where == NULL    ? ""
             : branch != NULL ? " AND c.codebase = ? AND c.project = ? AND c.repository = ? AND "
                                "c.branch = ?"
                              : " AND c.codebase = ? AND c.project = ? AND c.repository = ? AND "
                                "c.branch IS NULL");
    size_t n = where == NULL ? 1 : branch != NULL ? 5 : 4;
    struct db_res *r = db_query(o->s->db, sql, p, n, cause);
    if (r == NULL)
        return NULL;
    static const char *const cols[] = {"changeid", "codebase",   "branch",
                                       "revision", "repository", "project"};
    json_t *rows = json_array();
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *row = json_object();
        json_object_set_new(row, "changeid", json_integer(db_res_int(r, i, 0)));
        for (size_t k = 1; k < UTIL_NELEM(cols); k++)
            json_object_set_new(row, cols[k],
                                db_res_null(r, i, k) ? json_null()
                                                     : json_string(db_res_text(r, i, k)));
        json_object_set_new(row, "important", json_boolean(db_res_int(r, i, 6) != 0));
        json_array_append_new(rows, row);
    }
    db_res_free(r);
    return rows;
}

int sched_classify(struct sched_one *o, long long changeid, bool important, char **cause)
{
    struct db_param p[] = {DB_INT(o->id), DB_INT(changeid)};
    if (db_exec(o->s->db, "DELETE FROM scheduler_changes WHERE schedulerid = ? AND changeid = ?", p,
                2, cause) < 0)
        return -1;
    struct db_param q[] = {DB_INT(o->id), DB_INT(changeid), DB_INT(important)};
    return db_exec(o->s->db,
                   "INSERT INTO scheduler_changes (schedulerid, changeid, important) "
                   "VALUES (?, ?, ?)",
                   q, 3, cause);
}

/* ------------------------------------------------------------ lifecycle */

static bool runs(const char *kind)
{
    return basic_kind(kind) || timed_kind(kind);
}

static void activate(struct sched_one *o, bool on)
{
    if (o->active == on)
        return;
    o->active = on;
    bool basic = basic_kind(o->kind);
    if (on && basic)
        basic_activate(o);
    else if (on)
        timed_activate(o);
    else if (basic)
        basic_deactivate(o);
    else
        timed_deactivate(o);
}

/* Whether the row is enabled and held by this master. */
static void read_state(struct sched_one *o)
{
    struct db_param p[] = {DB_INT(o->s->masterid), DB_INT(o->id)};
    char *cause = NULL;
    struct db_res *r = db_query(o->s->db,
                                "SELECT s.enabled, (SELECT COUNT(*) FROM scheduler_masters m "
                                "WHERE m.schedulerid = s.id AND m.masterid = ?) "
                                "FROM schedulers s WHERE s.id = ?",
                                p, 2, &cause);
    if (r == NULL) {
        log_error("scheduler '%s': %s", o->name, cause);
        free(cause);
        return;
    }
    bool enabled = db_res_rows(r) > 0 && db_res_int(r, 0, 0) != 0;
    bool mine = db_res_rows(r) > 0 && db_res_int(r, 0, 1) > 0;
    db_res_free(r);
    o->enabled = enabled;
    activate(o, enabled && mine);
}

static void one_free(struct sched_one *o)
{
    activate(o, false);
    for (size_t i = 0; i < o->n_builders; i++)
        free(o->builders[i]);
    free(o->builders);
    free(o->name);
    free(o->kind);
    free(o);
}

static struct sched_one *take(struct sched_one **list, const struct cfg_scheduler *sc)
{
    for (struct sched_one **p = list; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->name, sc->name) == 0 && strcmp((*p)->kind, sc->kind) == 0) {
            struct sched_one *o = *p;
            *p = o->next;
            return o;
        }
    }
    return NULL;
}

void sched_reconfig(struct sched *s, const struct cfg *cfg)
{
    struct sched_one *old = s->list, *list = NULL, **tail = &list;
    s->cfg = cfg;
    for (size_t i = 0; i < cfg->n_schedulers; i++) {
        const struct cfg_scheduler *sc = &cfg->schedulers[i];
        if (!runs(sc->kind))
            continue;
        struct sched_one *o = take(&old, sc);
        if (o == NULL) {
            o = xcalloc(1, sizeof *o);
            o->s = s;
            o->name = xstrdup(sc->name);
            o->kind = xstrdup(sc->kind);
        }
        for (size_t k = 0; k < o->n_builders; k++)
            free(o->builders[k]);
        free(o->builders);
        o->builders = xcalloc(sc->n_builder_names + 1, sizeof *o->builders);
        for (size_t k = 0; k < sc->n_builder_names; k++)
            o->builders[k] = xstrdup(sc->builder_names[k]);
        o->n_builders = sc->n_builder_names;
        o->ref = sc->ref;
        o->next = NULL;
        *tail = o;
        tail = &o->next;
        char *cause = NULL;
        o->id = db_scheduler_id(s->db, sc->name, &cause);
        if (o->id < 0) {
            log_error("scheduler '%s': %s", sc->name, cause);
            free(cause);
            continue;
        }
        read_state(o);
    }
    while (old != NULL) {
        struct sched_one *o = old;
        old = o->next;
        one_free(o);
    }
    s->list = list;
    if (cfg->janitor == NULL) {
        janitor_free(s->janitor);
        s->janitor = NULL;
    } else if (s->janitor == NULL) {
        s->janitor = janitor_new(s->loop, s->db, cfg->janitor);
    } else {
        janitor_reconfig(s->janitor, cfg->janitor);
    }
}

struct sched *sched_new(uv_loop_t *loop, struct db *db, struct engine *e, long long masterid,
                        const struct cfg *cfg)
{
    struct sched *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->db = db;
    s->e = e;
    s->masterid = masterid;
    sched_reconfig(s, cfg);
    return s;
}

void sched_change(struct sched *s, const json_t *change)
{
    for (struct sched_one *o = s->list; o != NULL; o = o->next) {
        if (o->active && basic_kind(o->kind))
            basic_change(o, change);
        else if (o->active)
            timed_change(o, change);
    }
}

void sched_free(struct sched *s)
{
    if (s == NULL)
        return;
    janitor_free(s->janitor);
    while (s->list != NULL) {
        struct sched_one *o = s->list;
        s->list = o->next;
        one_free(o);
    }
    free(s);
}

/* ------------------------------------------------------------ control actions */

/* builderid (the form of one builder's page) as builderNames. */
static void builderid_to_names(struct sched *s, json_t *params)
{
    const json_t *id = json_object_get(params, "builderid");
    if (json_object_get(params, "builderNames") != NULL || id == NULL)
        return;
    long long n = json_is_integer(id)  ? (long long)json_integer_value(id)
                  : json_is_string(id) ? atoll(json_string_value(id))
                                       : 0;
    struct db_param p[] = {DB_INT(n)};
    char *cause = NULL;
    struct db_res *r = db_query(s->db, "SELECT name FROM builders WHERE id = ?", p, 1, &cause);
    if (r == NULL) {
        log_error("finding a builder: %s", cause);
        free(cause);
        return;
    }
    json_t *names = json_array();
    if (db_res_rows(r) > 0)
        json_array_append_new(names, json_string(db_res_text(r, 0, 0)));
    json_object_set_new(params, "builderNames", names);
    db_res_free(r);
}

static void force_submit(struct sched *s, struct ctl_action *act, const char *name,
                         struct sched_force_req *req)
{
    json_t *props = json_array(), *brids = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(req->properties, i, p)
    {
        json_array_append_new(props, json_pack("[OOs]", json_array_get(p, 0), json_array_get(p, 1),
                                               "Force Build Form"));
    }
    json_array_append_new(props, json_pack("[sss]", "scheduler", name, "Scheduler"));
    char *who = xasprintf("scheduler '%s'", name), *cause = NULL;
    struct eng_buildset bs = {who,           req->reason,  props, req->sourcestamps,
                              req->builders, req->priority};
    long long bsid = engine_add_buildset(s->e, &bs, &brids, &cause);
    if (bsid < 0) {
        log_error("%s: adding a buildset: %s", who, cause);
        ctl_reply(act, NULL, 500, -32603, cause);
        free(cause);
    } else {
        json_t *result = json_pack("[Io]", (json_int_t)bsid, brids);
        char *text = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
        ctl_reply(act, text, 200, 0, NULL);
        free(text);
        json_decref(result);
    }
    free(who);
    json_decref(props);
}

static void force(struct sched *s, struct ctl_action *act, const char *name, json_t *params)
{
    builderid_to_names(s, params);
    struct sched_force_req req;
    json_t *errors = NULL;
    int rc = sched_force_parse(s->cfg, name, params, &req, &errors);
    if (rc == SCHED_FORCE_UNKNOWN) {
        char *msg = xasprintf("no force scheduler named '%s'", name);
        ctl_reply(act, NULL, 404, -32602, msg);
        free(msg);
    } else if (rc == SCHED_FORCE_NO_BUILDER) {
        ctl_reply(act, NULL, 500, -32603,
                  "KeyError('builderNames not specified or not supported')");
    } else if (rc == SCHED_FORCE_INVALID) {
        char *text = json_dumps(errors, JSON_PRESERVE_ORDER);
        ctl_reply_json(act, 400, -32602, text);
        free(text);
        json_decref(errors);
    } else {
        force_submit(s, act, name, &req);
        sched_force_req_free(&req);
    }
}

/* Buildbot's schedulerEnable: the row, and the scheduler's runtime at once. */
static void enable(struct sched *s, struct ctl_action *act, long long id, const json_t *params)
{
    const json_t *v = json_object_get(params, "enabled");
    if (!json_is_boolean(v)) {
        ctl_reply(act, NULL, 500, -32603, "KeyError('enabled')");
        return;
    }
    struct db_param p[] = {DB_INT(json_is_true(v)), DB_INT(id)};
    char *cause = NULL;
    if (db_exec(s->db, "UPDATE schedulers SET enabled = ? WHERE id = ?", p, 2, &cause) < 0) {
        log_error("enabling a scheduler: %s", cause);
        ctl_reply(act, NULL, 500, -32603, cause);
        free(cause);
        return;
    }
    for (struct sched_one *o = s->list; o != NULL; o = o->next)
        if (o->id == id)
            read_state(o);
    ev_publish(engine_events(s->e), EV_SCHEDULER, id, EV_UPDATED);
    log_info("scheduler %lld %s", id, json_is_true(v) ? "enabled" : "disabled");
    ctl_reply(act, "null", 200, 0, NULL);
}

bool sched_control(struct sched *s, struct ctl_action *act)
{
    enum ctl_kind kind = ctl_action_kind(act);
    if (kind != CTL_FORCE && kind != CTL_SCHEDULER_ENABLE)
        return false;
    json_t *params = json_loads(ctl_action_params(act), 0, NULL);
    if (params == NULL)
        params = json_object();
    const struct ctl_target *t = ctl_action_target(act);
    if (kind == CTL_FORCE)
        force(s, act, t->name != NULL ? t->name : "", params);
    else
        enable(s, act, t->id, params);
    json_decref(params);
    return true;
}
