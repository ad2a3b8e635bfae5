/*
 * From the table master.lua returned to `struct cfg`, with the checks that
 * need the whole configuration: top-level keys (BuildmasterConfig's names),
 * duplicate names, builders naming unknown workers, schedulers naming unknown
 * builders, ports.  Name lookups go through Lua tables used as hash sets, so
 * a config of thousands of builders is checked in linear time.
 */
#include "config/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const top_keys[] = {"buildbotNetUsageData",
                                       "buildbotURL",
                                       "builders",
                                       "change_source",
                                       "collapseRequests",
                                       "configurators",
                                       "db",
                                       "db_url",
                                       "logCompressionMethod",
                                       "multiMaster",
                                       "prioritizeBuilders",
                                       "projects",
                                       "properties",
                                       "protocols",
                                       "revlink",
                                       "schedulers",
                                       "select_next_worker",
                                       "services",
                                       "title",
                                       "titleURL",
                                       "uploadRoots",
                                       "www",
                                       "workers",
                                       NULL};

/*
 * Buildbot's keys that bbmaster does not implement: a configuration that sets one is
 * refused with why, rather than loaded to do less than it says.
 */
static const struct {
    const char *key, *why;
} refused_keys[] = {
    {"buildCacheSize", "bbmaster keeps no such caches: it reads the database"},
    {"caches", "bbmaster keeps no such caches: it reads the database"},
    {"changeCacheSize", "bbmaster keeps no such caches: it reads the database"},
    {"changeHorizon", "old changes are kept (bbm.configurators.janitor's own changeHorizon "
                      "deletes them by age)"},
    {"codebaseGenerator", "a change keeps the codebase its source gives it"},
    {"logCompressionLimit", "log chunks are compressed whenever that makes them smaller (as in "
                            "Buildbot 4.3, which reads the key and does not use it)"},
    {"logEncoding", "log lines are taken as UTF-8"},
    {"logMaxSize", "logs are kept whole"},
    {"logMaxTailSize", "logs are kept whole"},
    {"machines", "bbmaster has no machines"},
    {"manhole", "bbmaster has no manhole"},
    {"metrics", "bbmaster has no metrics service"},
    {"mq", "the master's events stay in the process, as with Buildbot's 'simple' mq"},
    {"projectName", "use 'title'"},
    {"projectURL", "use 'titleURL'"},
    {"secretsProviders", "secrets come from the settings file (bbm.yaml.load)"},
    {"user_managers", "bbmaster has no user managers"},
    {"validation", "bbmaster takes no validation patterns"},
};

struct reader {
    lua_State *L;
    struct cfg *cfg;
    const char *path;
    const char *source;
    int top; /* stack index of the returned table */
};

/* The line where `key = ` first appears in the source (top-level keys have no call). */
static int key_line(const struct reader *r, const char *key)
{
    size_t klen = strlen(key);
    int line = 1;
    for (const char *p = r->source; *p != '\0'; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        bool start = p == r->source || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                                         (p[-1] >= 'A' && p[-1] <= 'Z') ||
                                         (p[-1] >= '0' && p[-1] <= '9') || p[-1] == '.');
        if (start && strncmp(p, key, klen) == 0) {
            const char *q = p + klen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=' && q[1] != '=')
                return line;
        }
    }
    return 1;
}

static void where(lua_State *L, int idx, const struct reader *r, const char *key, char *file,
                  size_t size, int *line)
{
    util_strcopy(file, size, r->path);
    bool has_line = false;
    if (lua_type(L, idx) == LUA_TTABLE) {
        if (lua_getfield(L, idx, CFG_FILE) == LUA_TSTRING)
            util_strcopy(file, size, lua_tostring(L, -1));
        has_line = lua_getfield(L, idx, CFG_LINE) == LUA_TNUMBER;
        if (has_line)
            *line = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
    }
    if (!has_line) /* the source is searched only for entries no constructor made */
        *line = key_line(r, key);
}

static bool has_kind(lua_State *L, int idx, const char *prefix)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    lua_getfield(L, idx, CFG_KIND);
    const char *k = lua_tostring(L, -1);
    bool ok = k != NULL && strncmp(k, prefix, strlen(prefix)) == 0;
    lua_pop(L, 1);
    return ok;
}

static char *opt_string(lua_State *L, int idx, const char *field)
{
    lua_getfield(L, idx, field);
    char *s = lua_type(L, -1) == LUA_TSTRING ? xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

static long opt_int(lua_State *L, int idx, const char *field, long def)
{
    lua_getfield(L, idx, field);
    long v = lua_type(L, -1) == LUA_TNUMBER ? (long)lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

char **cfg_string_list(lua_State *L, int idx, const char *field, size_t *n, bool empty_given)
{
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    int t = lua_getfield(L, idx, field);
    if (t == LUA_TSTRING) {
        v = xgrow(v, &cap, 1, sizeof *v);
        v[(*n)++] = xstrdup(lua_tostring(L, -1));
    } else if (t == LUA_TTABLE) {
        lua_Integer len = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= len; i++) {
            if (lua_geti(L, -1, i) == LUA_TSTRING) {
                v = xgrow(v, &cap, *n + 1, sizeof *v);
                v[(*n)++] = xstrdup(lua_tostring(L, -1));
            }
            lua_pop(L, 1);
        }
        if (v == NULL && empty_given)
            v = xcalloc(1, sizeof *v);
    }
    lua_pop(L, 1);
    return v;
}

/* A string or list of strings at field -> a malloc'd vector (NULL for none). */
static char **string_list(lua_State *L, int idx, const char *field, size_t *n)
{
    return cfg_string_list(L, idx, field, n, false);
}

/*
 * Iterates the list at top-level `key` (a single entry is taken as a list of
 * one), calling `each` with the entry at the top of the stack.
 */
static void each_entry(struct reader *r, const char *key, const char *kind, const char *what,
                       void (*each)(struct reader *r, int idx))
{
    lua_State *L = r->L;
    int t = lua_getfield(L, r->top, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != LUA_TTABLE) {
        cfg_error(L, r->path, key_line(r, key), "'%s' must be a list, not %s", key,
                  luaL_typename(L, -1));
        lua_pop(L, 1);
        return;
    }
    int list = lua_gettop(L);
    bool single = lua_getfield(L, list, CFG_KIND) != LUA_TNIL;
    lua_pop(L, 1);
    lua_Integer n = single ? 1 : luaL_len(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
        if (single)
            lua_pushvalue(L, list);
        else
            lua_geti(L, list, i);
        if (!has_kind(L, -1, kind))
            cfg_error(L, r->path, key_line(r, key), "%s[%lld] is not %s", key, (long long)i, what);
        else
            each(r, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Registers `name` in the set kept in the registry under `set`; false if already there. */
static bool add_name(lua_State *L, const char *set, const char *name, const char *file, int line,
                     char *first, size_t size)
{
    lua_getfield(L, LUA_REGISTRYINDEX, set);
    if (lua_getfield(L, -1, name) == LUA_TSTRING) {
        snprintf(first, size, "%s", lua_tostring(L, -1));
        lua_pop(L, 2);
        return false;
    }
    lua_pop(L, 1);
    lua_pushfstring(L, "%s:%d", file, line);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    return true;
}

static bool has_name(lua_State *L, const char *set, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, set);
    bool found = lua_getfield(L, -1, name) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

/*
 * The name of the entry at `idx`, registered in `set`; NULL (with an error)
 * if another entry of the list already has it.  Sets *file and *line.
 */
static char *take_name(struct reader *r, int idx, const char *list, const char *set,
                       const char *what, char *file, size_t size, int *line)
{
    char first[300];
    where(r->L, idx, r, list, file, size, line);
    char *name = opt_string(r->L, idx, "name");
    if (name != NULL && !add_name(r->L, set, name, file, *line, first, sizeof first)) {
        cfg_error(r->L, file, *line, "duplicate %s name '%s' (first defined at %s)", what, name,
                  first);
        free(name);
        return NULL;
    }
    return name;
}

static void read_worker(struct reader *r, int idx)
{
    struct cfg *cfg = r->cfg;
    char file[256];
    int line;
    char *name = take_name(r, idx, "workers", "bbm.workers", "worker", file, sizeof file, &line);
    if (name == NULL)
        return;
    cfg->workers = xrealloc(cfg->workers, (cfg->n_workers + 1) * sizeof *cfg->workers);
    struct cfg_worker *w = &cfg->workers[cfg->n_workers++];
    memset(w, 0, sizeof *w);
    w->name = name;
    w->password = opt_string(r->L, idx, "password");
    w->max_builds = (int)opt_int(r->L, idx, "max_builds", 0);
    w->keepalive_interval = (int)opt_int(r->L, idx, "keepalive_interval", 3600);
    w->ping_interval = (int)opt_int(r->L, idx, "ping_interval", 0);
    w->ping_timeout = (int)opt_int(r->L, idx, "ping_timeout", CFG_PING_TIMEOUT_DEFAULT);
    w->notify_on_missing = string_list(r->L, idx, "notify_on_missing", &w->n_notify_on_missing);
    w->missing_timeout = (int)opt_int(r->L, idx, "missing_timeout", CFG_MISSING_TIMEOUT_DEFAULT);
    lua_pushvalue(r->L, idx);
    w->ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
    w->file = xstrdup(file);
    w->line = line;
}

/* Buildbot's safeTranslate: characters unsafe in a path become '_'. */
static char *safe_translate(const char *name)
{
    char *s = xstrdup(name);
    for (char *p = s; *p != '\0'; p++) {
        if (strchr("\t !#$%&'()*+,./:;<=>?@[\\]^{|}~", *p) != NULL)
            *p = '_';
    }
    return s;
}

static void check_builder_workers(struct reader *r, struct cfg_builder *b)
{
    if (b->n_workernames == 0)
        cfg_error(r->L, b->file, b->line,
                  "builder '%s': at least one worker is required in "
                  "workernames",
                  b->name);
    for (size_t i = 0; i < b->n_workernames; i++) {
        if (!has_name(r->L, "bbm.workers", b->workernames[i]))
            cfg_error(r->L, b->file, b->line,
                      "builder '%s': workernames names unknown worker "
                      "'%s'",
                      b->name, b->workernames[i]);
    }
}

/* As Buildbot: a tag given twice is an error (builders_tags holds each tag once). */
static void check_builder_tags(struct reader *r, const struct cfg_builder *b)
{
    for (size_t i = 1; i < b->n_tags; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(b->tags[i], b->tags[k]) == 0) {
                cfg_error(r->L, b->file, b->line,
                          "builder '%s': tags list contains duplicate tags: %s", b->name,
                          b->tags[i]);
                break;
            }
        }
    }
}

/* Buildbot's check_locks: two different locks may not share a name.  Checks the `locks`
   of the table at `idx` (a builder or a step, defined at file:line). */
static void check_lock_names(lua_State *L, int idx, const char *file, int line)
{
    int top = lua_gettop(L);
    if (lua_getfield(L, idx, "locks") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "bbm.locks");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        if (cfg_is_lock_access(L, -1) && lua_getfield(L, -1, "lock") == LUA_TTABLE &&
            lua_getfield(L, -1, "name") == LUA_TSTRING) {
            /* top+2: the names seen, +3 the access, +4 its lock, +5 the name */
            const char *name = lua_tostring(L, -1);
            if (lua_getfield(L, top + 2, name) == LUA_TNIL) {
                lua_pushvalue(L, top + 4);
                lua_setfield(L, top + 2, name);
            } else if (!lua_rawequal(L, -1, top + 4)) {
                cfg_error(L, file, line, "two locks share the same name, '%s'", name);
            }
        }
        lua_settop(L, top + 2);
    }
    lua_settop(L, top);
}

static void read_factory(struct reader *r, int idx, struct cfg_builder *b)
{
    lua_State *L = r->L;
    lua_getfield(L, idx, "factory");
    if (!has_kind(L, -1, "factory")) {
        if (!lua_isnil(L, -1))
            cfg_error(L, b->file, b->line, "builder '%s': factory must be a bbm.factory{...}",
                      b->name);
        lua_pop(L, 1);
        b->factory_ref = LUA_NOREF;
        return;
    }
    lua_getfield(L, -1, "steps");
    b->n_steps = (size_t)luaL_len(L, -1);
    for (lua_Integer i = 1; i <= (lua_Integer)b->n_steps; i++) {
        if (lua_rawgeti(L, -1, i) == LUA_TTABLE) {
            lua_getfield(L, -1, CFG_FILE);
            lua_getfield(L, -2, CFG_LINE);
            char file[256];
            util_strcopy(file, sizeof file, lua_isstring(L, -2) ? lua_tostring(L, -2) : b->file);
            int line = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : b->line;
            lua_pop(L, 2);
            check_lock_names(L, -1, file, line);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    b->factory_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void read_builder(struct reader *r, int idx)
{
    struct cfg *cfg = r->cfg;
    char file[256];
    int line;
    char *name = take_name(r, idx, "builders", "bbm.builders", "builder", file, sizeof file, &line);
    if (name == NULL)
        return;
    cfg->builders = xrealloc(cfg->builders, (cfg->n_builders + 1) * sizeof *cfg->builders);
    struct cfg_builder *b = &cfg->builders[cfg->n_builders++];
    memset(b, 0, sizeof *b);
    b->name = name;
    b->file = xstrdup(file);
    b->line = line;
    b->workernames = string_list(r->L, idx, "workernames", &b->n_workernames);
    char *single = opt_string(r->L, idx, "workername");
    if (single != NULL) {
        b->workernames = xrealloc(b->workernames, (b->n_workernames + 1) * sizeof(char *));
        b->workernames[b->n_workernames++] = single;
    }
    b->builddir = opt_string(r->L, idx, "builddir");
    if (b->builddir == NULL)
        b->builddir = safe_translate(name);
    b->workerbuilddir = opt_string(r->L, idx, "workerbuilddir");
    if (b->workerbuilddir == NULL)
        b->workerbuilddir = xstrdup(b->builddir);
    b->tags = string_list(r->L, idx, "tags", &b->n_tags);
    check_builder_tags(r, b);
    b->description = opt_string(r->L, idx, "description");
    b->description_format = opt_string(r->L, idx, "description_format");
    b->project = opt_string(r->L, idx, "project");
    lua_pushvalue(r->L, idx);
    b->ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
    check_builder_workers(r, b);
    check_lock_names(r->L, idx, b->file, b->line);
    cfg_read_locks(r->L, idx, &b->locks, &b->n_locks);
    read_factory(r, idx, b);
}

static void read_scheduler(struct reader *r, int idx)
{
    struct cfg *cfg = r->cfg;
    char file[256];
    int line;
    char *name =
        take_name(r, idx, "schedulers", "bbm.schedulers", "scheduler", file, sizeof file, &line);
    if (name == NULL)
        return;
    cfg->schedulers = xrealloc(cfg->schedulers, (cfg->n_schedulers + 1) * sizeof *cfg->schedulers);
    struct cfg_scheduler *s = &cfg->schedulers[cfg->n_schedulers++];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->file = xstrdup(file);
    s->line = line;
    char *kind = opt_string(r->L, idx, CFG_KIND);
    s->kind = xstrdup(kind + strlen("scheduler."));
    free(kind);
    s->builder_names = string_list(r->L, idx, "builderNames", &s->n_builder_names);
    for (size_t i = 0; i < s->n_builder_names; i++) {
        if (!has_name(r->L, "bbm.builders", s->builder_names[i]))
            cfg_error(r->L, file, line, "scheduler '%s': builderNames names unknown builder '%s'",
                      name, s->builder_names[i]);
    }
    lua_pushvalue(r->L, idx);
    s->ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
}

/* Buildbot's default name for a PBChangeSource: its port= (None on the workers' port, the only
   one bbmaster listens on), after the prefix when there is one. */
static char *pb_change_source_name(lua_State *L, int idx)
{
    char *prefix = opt_string(L, idx, "prefix");
    char *name = prefix != NULL && prefix[0] != '\0' ? xasprintf("PBChangeSource:%s:None", prefix)
                                                     : xstrdup("PBChangeSource:None");
    free(prefix);
    return name;
}

static void read_change_source(struct reader *r, int idx)
{
    struct cfg *cfg = r->cfg;
    char *kind = opt_string(r->L, idx, CFG_KIND);
    bool pb = strcmp(kind, "change_source.pb") == 0;
    char *name = opt_string(r->L, idx, "name");
    if (name == NULL && pb)
        name = pb_change_source_name(r->L, idx);
    else if (name == NULL)
        name = opt_string(r->L, idx, "repourl");
    char file[256];
    int line;
    where(r->L, idx, r, "change_source", file, sizeof file, &line);
    char first[300];
    if (name != NULL &&
        !add_name(r->L, "bbm.change_sources", name, file, line, first, sizeof first)) {
        cfg_error(r->L, file, line, "duplicate change source name '%s' (first defined at %s)", name,
                  first);
        free(name);
        free(kind);
        return;
    }
    cfg->change_sources =
        xrealloc(cfg->change_sources, (cfg->n_change_sources + 1) * sizeof *cfg->change_sources);
    struct cfg_change_source *c = &cfg->change_sources[cfg->n_change_sources++];
    memset(c, 0, sizeof *c);
    c->name = name != NULL ? name : xstrdup("?");
    c->kind = xstrdup(kind + strlen("change_source."));
    free(kind);
    if (pb) {
        c->user = opt_string(r->L, idx, "user");
        c->passwd = opt_string(r->L, idx, "passwd");
        c->prefix = opt_string(r->L, idx, "prefix");
        if (c->user == NULL)
            c->user = xstrdup("change");
        if (c->passwd == NULL)
            c->passwd = xstrdup("changepw");
        if (cfg->pb_port == 0)
            cfg_error(r->L, file, line,
                      "bbm.changes.pb takes changes on the workers' port: set protocols.pb.port");
    }
    lua_pushvalue(r->L, idx);
    c->ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
}

/* ------------------------------------------------------------ the janitor */

static void warn(struct reader *r, int line, const char *msg);

/* One of Nightly's time fields at the top of the stack (a number, a list of numbers or a
   cron string) into j->when; false with an error if it cannot be read. */
static bool janitor_field(struct reader *r, const struct cfg_janitor *j, struct util_cron *c,
                          int field, const char *key, int lo, int hi)
{
    static const char ctor[] = "bbm.configurators.janitor";
    lua_State *L = r->L;
    int t = lua_type(L, -1);
    if (t == LUA_TSTRING) {
        if (util_cron_add_text(c, field, lua_tostring(L, -1)) == 0)
            return true;
        cfg_error(L, j->file, j->line,
                  "%s: '%s' = \"%s\" cannot be read as a cron field (a number, \"*\", "
                  "\"a-b\", \"*/n\" or \"a,b\")",
                  ctor, key, lua_tostring(L, -1));
        return false;
    }
    if (t != LUA_TNUMBER && t != LUA_TTABLE) {
        cfg_error(L, j->file, j->line,
                  "%s: '%s' must be a number, a list of numbers or a cron string, not %s", ctor,
                  key, luaL_typename(L, -1));
        return false;
    }
    lua_Integer n = t == LUA_TTABLE ? luaL_len(L, -1) : 1;
    if (n == 0)
        cfg_error(L, j->file, j->line, "%s: '%s' is an empty list", ctor, key);
    bool ok = n > 0;
    for (lua_Integer i = 1; i <= n && ok; i++) {
        if (t == LUA_TTABLE)
            lua_geti(L, -1, i);
        else
            lua_pushvalue(L, -1);
        ok = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= lo && lua_tointeger(L, -1) <= hi;
        if (!ok)
            cfg_error(L, j->file, j->line,
                      "%s: '%s' must be a whole number between %d and %d%s, "
                      "not %s",
                      ctor, key, lo, hi, field == UTIL_CRON_DOW ? " (Monday 0, as in Python)" : "",
                      luaL_tolstring(L, -1, NULL));
        else
            util_cron_add_value(c, field, (long)lua_tointeger(L, -1));
        lua_settop(L, lua_gettop(L) - (ok ? 1 : 2));
    }
    return ok;
}

/* The janitor's Nightly schedule: its hour defaults to 0 (JanitorConfigurator's), the other
   fields to Nightly's (minute 0, every day of every month). */
static void janitor_when(struct reader *r, int idx, struct cfg_janitor *j)
{
    static const struct {
        const char *key, *def;
        int lo, hi;
    } f[UTIL_CRON_FIELDS] = {{"minute", "0", 0, 59},
                             {"hour", "0", 0, 23},
                             {"dayOfMonth", "*", 1, 31},
                             {"month", "*", 1, 12},
                             {"dayOfWeek", "*", 0, 6}};
    for (int i = 0; i < UTIL_CRON_FIELDS; i++) {
        if (lua_getfield(r->L, idx, f[i].key) == LUA_TNIL) {
            lua_pop(r->L, 1);
            lua_pushstring(r->L, f[i].def);
        }
        janitor_field(r, j, &j->when, i, f[i].key, f[i].lo, f[i].hi);
        lua_pop(r->L, 1);
    }
}

/* One of the janitor's horizons, in seconds (-1: not given): at least 1 (`why` says what 0
   would do), at most CFG_HORIZON_MAX; buildHorizon and changeHorizon are bbmaster's own. */
static long long janitor_horizon(lua_State *L, const struct cfg_janitor *j, int idx,
                                 const char *key, const char *why)
{
    bool given = lua_getfield(L, idx, key) == LUA_TNUMBER;
    lua_pop(L, 1);
    long long v = opt_int(L, idx, key, -1);
    if (!given || v < 0) /* none, or refused by bbm.c as not a number or negative */
        return -1;
    if (v == 0)
        cfg_error(L, j->file, j->line,
                  "bbm.configurators.janitor: '%s' must be at least 1 second (%s)", key, why);
    else if (v > CFG_HORIZON_MAX)
        cfg_error(L, j->file, j->line,
                  "bbm.configurators.janitor: '%s' must be at most %lld seconds (a "
                  "hundred years), not %lld",
                  key, CFG_HORIZON_MAX, v);
    return v;
}

/* bbm.configurators.janitor: one at most (Buildbot would refuse a second __Janitor
   builder); without logHorizon (nor bbmaster's buildHorizon and changeHorizon) it does
   nothing, as Buildbot's. */
static void read_configurator(struct reader *r, int idx)
{
    lua_State *L = r->L;
    struct cfg_janitor *j = xcalloc(1, sizeof *j);
    char file[256], first[300];
    where(L, idx, r, "configurators", file, sizeof file, &j->line);
    j->file = xstrdup(file);
    if (!add_name(L, "bbm.configurators", "janitor", file, j->line, first, sizeof first))
        cfg_error(L, file, j->line,
                  "a second bbm.configurators.janitor (the first is at %s): Buildbot's "
                  "would make a second builder __Janitor",
                  first);
    if (lua_getfield(L, idx, "build_data_horizon") != LUA_TNIL)
        cfg_error(L, file, j->line,
                  "bbm.configurators.janitor: 'build_data_horizon' is not implemented by "
                  "bbmaster (bbmaster's own buildHorizon deletes whole old builds)");
    lua_pop(L, 1);
    j->log_horizon = janitor_horizon(L, j, idx, "logHorizon",
                                     "0 would delete the logs of the steps running now");
    j->build_horizon =
        janitor_horizon(L, j, idx, "buildHorizon", "0 would delete the builds that just finished");
    j->change_horizon =
        janitor_horizon(L, j, idx, "changeHorizon", "0 would delete the changes that just came");
    janitor_when(r, idx, j);
    bool any = j->log_horizon > 0 || j->build_horizon > 0 || j->change_horizon > 0;
    if (j->log_horizon < 0 && j->build_horizon < 0 && j->change_horizon < 0)
        warn(r, j->line,
             "bbm.configurators.janitor without logHorizon deletes nothing (as Buildbot's "
             "JanitorConfigurator)");
    if (!any || r->cfg->janitor != NULL) {
        free(j->file);
        free(j);
        return;
    }
    if (j->log_horizon < 0)
        j->log_horizon = 0;
    if (j->build_horizon < 0)
        j->build_horizon = 0;
    if (j->change_horizon < 0)
        j->change_horizon = 0;
    r->cfg->janitor = j;
}

static void read_project(struct reader *r, int idx)
{
    char file[256];
    int line;
    free(take_name(r, idx, "projects", "bbm.projects", "project", file, sizeof file, &line));
}

/* Splits a strports description at its unescaped colons, in place (a backslashed colon is
   a colon, as Twisted writes an IPv6 interface: tcp:8010:interface=\:\:1); how many parts, at most
   `max`, or max + 1 when there are more. */
static size_t split_strports(char *spec, char **parts, size_t max)
{
    size_t n = 0;
    char *out = spec;
    parts[n++] = out;
    for (char *p = spec; *p != '\0'; p++) {
        if (p[0] == '\\' && p[1] != '\0') {
            *out++ = *++p;
        } else if (*p == ':') {
            *out++ = '\0';
            if (n == max)
                return max + 1;
            parts[n++] = out;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return n;
}

/* The TLS file an "ssl:" option names (advancing *v past "NAME="), or NULL for another option. */
static char **ssl_option(struct cfg *tls, const char **v)
{
    static const char *const names[] = {"privateKey=", "certKey=", "extraCertChain="};
    char **fields[] = {&tls->pb_tls_key, &tls->pb_tls_cert, &tls->pb_tls_chain};
    for (size_t i = 0; i < UTIL_NELEM(names); i++) {
        if (util_startswith(*v, names[i])) {
            *v += strlen(names[i]);
            return fields[i];
        }
    }
    return NULL;
}

/* Reads "[tcp:|tcp6:]PORT|port=PORT[:interface=ADDR]", and with `tls` also Twisted's
   "ssl:PORT[:privateKey=F][:certKey=F][:extraCertChain=F][:interface=ADDR]" (privateKey
   defaults to server.pem, certKey to privateKey, as Twisted's): the port, or -2 when it
   cannot. */
static long parse_strports(const char *text, char **iface, struct cfg *tls)
{
    char *spec = xstrdup(text), *parts[8];
    size_t n = split_strports(spec, parts, 8);
    long port = -2;
    bool ssl = n > 0 && tls != NULL && strcmp(parts[0], "ssl") == 0;
    size_t i = n > 0 && (ssl || strcmp(parts[0], "tcp") == 0 || strcmp(parts[0], "tcp6") == 0);
    for (bool first = true; i < n && n <= 8; i++, first = false) {
        const char *v = parts[i];
        char **file = ssl && !first ? ssl_option(tls, &v) : NULL;
        if (file != NULL) {
            free(*file);
            *file = xstrdup(v);
            continue;
        }
        if (util_startswith(v, "port="))
            v += strlen("port=");
        else if (!first && util_startswith(v, "interface=") && iface != NULL) {
            free(*iface);
            *iface = xstrdup(v + strlen("interface="));
            continue;
        } else if (!first) {
            port = -2;
            break;
        }
        if (util_parse_long(v, -1000000, 1000000, &port) != 0) {
            port = -2;
            break;
        }
    }
    free(spec);
    if (ssl && tls->pb_tls_key == NULL)
        tls->pb_tls_key = xstrdup("server.pem");
    if (ssl && tls->pb_tls_cert == NULL)
        tls->pb_tls_cert = xstrdup(tls->pb_tls_key);
    return port;
}

/* Whether the TLS files of "ssl:" can be read, relative to the master's directory as
   the master reads them; refused at `line` when not. */
static void check_tls_files(struct reader *r, int line)
{
    const char *files[] = {r->cfg->pb_tls_key, r->cfg->pb_tls_cert, r->cfg->pb_tls_chain};
    const char *slash = strrchr(r->path, '/');
    for (size_t i = 0; i < UTIL_NELEM(files); i++) {
        if (files[i] == NULL || (i == 1 && strcmp(files[1], files[0]) == 0))
            continue;
        char *path = files[i][0] == '/' || slash == NULL
                         ? xstrdup(files[i])
                         : xasprintf("%.*s/%s", (int)(slash - r->path), r->path, files[i]);
        if (access(path, R_OK) != 0)
            cfg_error(r->L, r->path, line, "protocols.pb.port: cannot read the TLS file %s: %s",
                      path, strerror(errno));
        free(path);
    }
}

/* A port: a number, or a strports string "tcp:PORT[:interface=ADDR]". */
static int parse_port(struct reader *r, int idx, const char *what, char **iface, struct cfg *tls)
{
    lua_State *L = r->L;
    int line = key_line(r, "port");
    long port = -1;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        port = lua_isinteger(L, idx) ? (long)lua_tointeger(L, idx) : -1;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        port = parse_strports(lua_tostring(L, idx), iface, tls);
    } else {
        cfg_error(L, r->path, line, "%s must be a number or \"tcp:PORT\", not %s", what,
                  luaL_typename(L, idx));
        return 0;
    }
    if (port == -2) {
        cfg_error(L, r->path, line,
                  "%s: cannot understand \"%s\"; use a number or "
                  "\"tcp:PORT[:interface=ADDRESS]\"%s",
                  what, lua_tostring(L, idx),
                  tls != NULL ? " or \"ssl:PORT:privateKey=FILE[:certKey=FILE]"
                                "[:extraCertChain=FILE][:interface=ADDRESS]\""
                              : "");
        return 0;
    }
    unsigned char buf[16];
    if (iface != NULL && *iface != NULL && inet_pton(AF_INET, *iface, buf) != 1 &&
        inet_pton(AF_INET6, *iface, buf) != 1) {
        cfg_error(L, r->path, line,
                  "%s: interface \"%s\" is not an IPv4 or IPv6 address (write an IPv6 "
                  "address's colons as \\:, as Twisted does)",
                  what, *iface);
        return 0;
    }
    if (port < 1 || port > 65535) {
        cfg_error(L, r->path, line, "%s must be between 1 and 65535, not %ld", what, port);
        return 0;
    }
    if (tls != NULL && tls->pb_tls_key != NULL)
        check_tls_files(r, line);
    return (int)port;
}

static void read_protocols(struct reader *r)
{
    static const char no_port[] = "protocols.pb must be a table with a port, like { port = 9989 }";
    lua_State *L = r->L;
    int t = lua_getfield(L, r->top, "protocols");
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            if (strcmp(name, "pb") != 0)
                cfg_error(L, r->path, key_line(r, "protocols"),
                          "protocols: unknown protocol '%s' (bbmaster speaks 'pb')", name);
            else if (lua_type(L, -1) != LUA_TTABLE)
                cfg_error(L, r->path, key_line(r, "protocols"), "%s", no_port);
            else {
                if (lua_getfield(L, -1, "port") == LUA_TNIL)
                    cfg_error(L, r->path, key_line(r, "protocols"), "%s", no_port);
                else
                    r->cfg->pb_port = parse_port(r, lua_gettop(L), "protocols.pb.port",
                                                 &r->cfg->pb_interface, r->cfg);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    } else if (t != LUA_TNIL) {
        cfg_error(L, r->path, key_line(r, "protocols"), "'protocols' must be a table, not %s",
                  luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* Appends "FILE:LINE: sentence" to the configuration's warnings: it loads, but says so. */
static void warn(struct reader *r, int line, const char *msg)
{
    char *old = r->cfg->warnings;
    r->cfg->warnings = xasprintf("%s%s:%d: %s\n", old != NULL ? old : "", r->path, line, msg);
    free(old);
}

/* The options of the GitHub dialect (the table at `idx`), as Buildbot's GitHubHandler takes them.
 */
static void read_github(struct reader *r, int idx)
{
    static const char *const known[] = {"secret",
                                        "strict",
                                        "token",
                                        "pullrequest_ref",
                                        "github_property_whitelist",
                                        "skips",
                                        "github_api_endpoint",
                                        "codebase",
                                        "debug",
                                        "verify",
                                        "pull_request_testing",
                                        NULL};
    lua_State *L = r->L;
    int line = key_line(r, "github");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], k) != 0)
            i++;
        char hint[128];
        cfg_suggest(k, known, hint, sizeof hint);
        if (known[i] == NULL)
            cfg_error(L, r->path, line, "change_hook_dialects.github: unknown option '%s'.%s", k,
                      hint);
        lua_pop(L, 1);
    }
    struct cfg_github *g = xcalloc(1, sizeof *g);
    g->secret = opt_string(L, idx, "secret");
    lua_getfield(L, idx, "strict");
    g->strict = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (g->strict && g->secret == NULL)
        cfg_error(L, r->path, line,
                  "change_hook_dialects.github: strict mode is requested while no secret is "
                  "provided");
    if (g->secret != NULL && !g->strict)
        warn(r, line,
             "change_hook_dialects.github: a secret without strict = true: a webhook that "
             "carries no signature is accepted unchecked (as Buildbot does); set strict = true "
             "to refuse it");
    g->token = opt_string(L, idx, "token");
    g->pullrequest_ref = opt_string(L, idx, "pullrequest_ref");
    if (g->pullrequest_ref == NULL)
        g->pullrequest_ref = xstrdup("merge");
    g->property_whitelist =
        string_list(L, idx, "github_property_whitelist", &g->n_property_whitelist);
    if (lua_getfield(L, idx, "skips") == LUA_TNIL) {
        g->skips = xcalloc(2, sizeof *g->skips);
        g->skips[0] = xstrdup("\\[ *skip *ci *\\]");
        g->skips[1] = xstrdup("\\[ *ci *skip *\\]");
        g->n_skips = 2;
    } else {
        g->skips = string_list(L, idx, "skips", &g->n_skips);
    }
    lua_pop(L, 1);
    g->api_url = opt_string(L, idx, "github_api_endpoint");
    if (g->api_url == NULL)
        g->api_url = xstrdup("https://api.github.com");
    g->codebase = opt_string(L, idx, "codebase");
    int t = lua_getfield(L, idx, "pull_request_testing");
    if (t != LUA_TNIL && t != LUA_TTABLE)
        cfg_error(L, r->path, line,
                  "change_hook_dialects.github.pull_request_testing must be a table of labels, "
                  "command and comments, not %s",
                  luaL_typename(L, -1));
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    g->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->cfg->github = g;
}

static void read_hooks(struct reader *r, int idx)
{
    lua_State *L = r->L;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "github") != 0)
            cfg_error(L, r->path, key_line(r, "change_hook_dialects"),
                      "change_hook_dialects: unknown dialect '%s' (bbmaster has 'github')", k);
        else if (lua_type(L, -1) != LUA_TTABLE)
            cfg_error(L, r->path, key_line(r, "github"),
                      "change_hook_dialects.github must be a table of options, not %s",
                      luaL_typename(L, -1));
        else
            read_github(r, lua_gettop(L));
        lua_pop(L, 1);
    }
}

/* The keys of Buildbot's c['www'] that bbmaster implements; any other is refused. */
static const char *const www_keys[] = {"port",      "change_hook_dialects",   "release_cycle",
                                       "redirects", "release_test_results",   "auth",
                                       "authz",     "cookie_expiration_time", NULL};

static void check_www_keys(struct reader *r, int idx)
{
    lua_State *L = r->L;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        bool known = false;
        for (size_t i = 0; key != NULL && www_keys[i] != NULL && !known; i++)
            known = strcmp(www_keys[i], key) == 0;
        if (known)
            continue;
        char hint[128] = "";
        if (key != NULL)
            cfg_suggest(key, www_keys, hint, sizeof hint);
        cfg_error(L, r->path, key != NULL ? key_line(r, key) : key_line(r, "www"),
                  "www: unknown or unsupported key '%s'%s (bbmaster takes port, "
                  "change_hook_dialects, release_cycle, redirects, release_test_results, auth, "
                  "authz and cookie_expiration_time)",
                  key != NULL ? key : "?", hint);
    }
}

/* A release-cycle file that cannot be read now is a warning: a cron job may be about to write
   it, and the page keeps the last copy it read. */
static void check_release_cycle(struct reader *r, int line)
{
    const char *f = r->cfg->release_cycle;
    char *path = NULL;
    if (f[0] != '/') {
        const char *slash = strrchr(r->path, '/');
        path =
            slash != NULL ? xasprintf("%.*s/%s", (int)(slash - r->path), r->path, f) : xstrdup(f);
    }
    json_error_t err;
    json_t *v = json_load_file(path != NULL ? path : f, 0, &err);
    char *msg = NULL;
    if (v == NULL)
        msg = xasprintf("www.release_cycle: %s: %s; /release_status shows no branches until it "
                        "can be read",
                        f, err.text);
    else if (!json_is_object(v))
        msg = xasprintf("www.release_cycle: %s is not a JSON object of branches", f);
    if (msg != NULL)
        warn(r, line, msg);
    free(msg);
    json_decref(v);
    free(path);
}

static bool is_http_url(const char *v)
{
    return strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0;
}

/*
 * www.release_cycle (bbmaster's own): the Python release cycle
 * (peps.python.org/api/release-cycle.json's format) that /release_status reads its branches
 * from: a file relative to the master's directory, or an http(s) URL the master fetches in
 * the background (master.c, cyclefetch.c).  A URL is not fetched here: checkconfig does not
 * reach out to the network.
 */
static void read_release_cycle(struct reader *r, int idx)
{
    lua_State *L = r->L;
    int t = lua_getfield(L, idx, "release_cycle");
    int line = key_line(r, "release_cycle");
    const char *v = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (t != LUA_TNIL && t != LUA_TSTRING)
        cfg_error(L, r->path, line,
                  "www.release_cycle must be a string (a file path or an http(s) URL), not %s",
                  luaL_typename(L, -1));
    else if (v != NULL && *v == '\0')
        cfg_error(L, r->path, line,
                  "www.release_cycle is empty: give the path of a file or an http(s) URL");
    else if (v != NULL && strstr(v, "://") != NULL && !is_http_url(v))
        cfg_error(L, r->path, line,
                  "www.release_cycle: '%s' is a URL bbmaster cannot fetch; give an http:// or "
                  "https:// URL, or the path of a file",
                  v);
    else if (v != NULL)
        r->cfg->release_cycle = xstrdup(v);
    lua_pop(L, 1);
    if (r->cfg->release_cycle != NULL && is_http_url(r->cfg->release_cycle))
        r->cfg->release_cycle_url = true;
    else if (r->cfg->release_cycle != NULL)
        check_release_cycle(r, line);
}

/* Checks one www.redirects entry: NULL, or why it is refused. */
static const char *bad_redirect(const char *from, const char *to)
{
    if (from[0] != '/' || strpbrk(from, "?#") != NULL || strlen(from) > CFG_REDIRECT_MAX)
        return "its path must start with '/' and have no '?' or '#'";
    if (strcmp(from, "/") == 0 || util_startswith(from, "/api/") || strcmp(from, "/api") == 0 ||
        util_startswith(from, "/all/"))
        return "it would hide the home page, the API or /all/";
    if (!(to[0] == '/' || util_startswith(to, "http://") || util_startswith(to, "https://")) ||
        strpbrk(to, "\r\n") != NULL || strlen(to) > CFG_REDIRECT_MAX)
        return "its target must be a path ('/...') or an http(s) URL on one line";
    return NULL;
}

/*
 * www.redirects (bbmaster's own): short paths sent on to a page, as buildbot.python.org's
 * nginx sends /3.x to the grid of that branch: { ["/3.x"] = "/grid?branch=main&tags=stable" }.
 */
static void read_redirects(struct reader *r, int idx)
{
    lua_State *L = r->L;
    int t = lua_getfield(L, idx, "redirects");
    int line = key_line(r, "redirects");
    if (t != LUA_TNIL && t != LUA_TTABLE)
        cfg_error(L, r->path, line, "www.redirects must be a table of path = target, not %s",
                  luaL_typename(L, -1));
    struct cfg *c = r->cfg;
    for (bool more = t == LUA_TTABLE && (lua_pushnil(L), true); more && lua_next(L, -2) != 0;) {
        const char *from = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        const char *to = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        const char *why =
            from == NULL || to == NULL ? "path and target must be strings" : bad_redirect(from, to);
        if (why != NULL)
            cfg_error(L, r->path, line, "www.redirects: '%s': %s", from != NULL ? from : "?", why);
        if (c->n_redirects == CFG_REDIRECTS_MAX)
            cfg_error(L, r->path, line, "www.redirects: more than %d entries", CFG_REDIRECTS_MAX);
        c->redirects = xrealloc(c->redirects, (c->n_redirects + 1) * sizeof *c->redirects);
        c->redirects[c->n_redirects].from = xstrdup(from);
        c->redirects[c->n_redirects].to = xstrdup(to);
        c->n_redirects++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/*
 * www.release_test_results (bbmaster's own; the original dashboard's test_result_dir): the
 * directory where builds upload their JUnit files as TAG/BUILDER/build_N.xml, relative to
 * the master's directory.  It need not exist yet: the first upload makes it.
 */
static void read_test_results(struct reader *r, int idx)
{
    lua_State *L = r->L;
    int t = lua_getfield(L, idx, "release_test_results");
    int line = key_line(r, "release_test_results");
    const char *v = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (t != LUA_TNIL && t != LUA_TSTRING)
        cfg_error(L, r->path, line,
                  "www.release_test_results must be a string (a directory), not %s",
                  luaL_typename(L, -1));
    else if (v != NULL && *v == '\0')
        cfg_error(L, r->path, line, "www.release_test_results is empty: give a directory");
    else if (v != NULL)
        r->cfg->release_test_results = xstrdup(v);
    lua_pop(L, 1);
}

/* Whether the value at the top is a constructor's table of a kind with this prefix (and
   one of `kinds` when given). */
static bool is_kind(lua_State *L, const char *const *kinds)
{
    if (lua_type(L, -1) != LUA_TTABLE)
        return false;
    bool ok = false;
    if (lua_getfield(L, -1, CFG_KIND) == LUA_TSTRING)
        for (size_t i = 0; kinds[i] != NULL && !ok; i++)
            ok = strcmp(lua_tostring(L, -1), kinds[i]) == 0;
    lua_pop(L, 1);
    return ok;
}

static const char *const auth_kinds[] = {"www.no_auth",       "www.user_password_auth",
                                         "www.htpasswd_auth", "www.remote_user_auth",
                                         "www.github_auth",   NULL};
static const char *const rule_kinds[] = {"www.any_endpoint_matcher",
                                         "www.any_control_endpoint_matcher",
                                         "www.force_build_endpoint_matcher",
                                         "www.stop_build_endpoint_matcher",
                                         "www.rebuild_build_endpoint_matcher",
                                         "www.enable_scheduler_endpoint_matcher",
                                         "www.branch_endpoint_matcher",
                                         "www.view_builds_endpoint_matcher",
                                         NULL};
static const char *const role_kinds[] = {"www.roles_from_groups",   "www.roles_from_emails",
                                         "www.roles_from_domain",   "www.roles_from_owner",
                                         "www.roles_from_username", NULL};

/* authz.allowRules or authz.roleMatchers: a list of matchers of `kinds`. */
static void check_matchers(struct reader *r, int idx, const char *key, const char *const *kinds,
                           const char *what)
{
    lua_State *L = r->L;
    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL && t != LUA_TTABLE)
        cfg_error(L, r->path, key_line(r, "authz"), "www.authz: '%s' must be a list of %s", key,
                  what);
    for (lua_Integer i = 1; t == LUA_TTABLE && i <= (lua_Integer)lua_rawlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        if (!is_kind(L, kinds))
            cfg_error(L, r->path, key_line(r, "authz"), "www.authz: %s[%lld] is not %s", key,
                      (long long)i, what);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* user_password_auth{users}: names and passwords are strings. */
static void check_users(struct reader *r, int idx)
{
    lua_State *L = r->L;
    if (lua_getfield(L, idx, "users") == LUA_TTABLE) {
        size_t n = 0;
        for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING ||
                ++n > CFG_AUTH_USERS_MAX)
                cfg_error(L, r->path, key_line(r, "auth"),
                          "bbm.www.user_password_auth: users must be at most %d name = "
                          "\"password\" strings",
                          CFG_AUTH_USERS_MAX);
    }
    lua_pop(L, 1);
}

/* remote_user_auth{headerRegex}: a PCRE2 pattern (Python's re syntax for named groups) with
   the username group Buildbot's documentation asks for (without it, Buildbot fails every
   page at request time). */
static void check_header_regex(struct reader *r, int idx)
{
    lua_State *L = r->L;
    if (lua_getfield(L, idx, "headerRegex") == LUA_TSTRING) {
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)lua_tostring(L, -1), PCRE2_ZERO_TERMINATED,
                                       PCRE2_ANCHORED, &err, &off, NULL);
        if (re == NULL) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            cfg_error(L, r->path, key_line(r, "auth"),
                      "bbm.www.remote_user_auth: headerRegex does not compile: %s at offset %zu",
                      (const char *)msg, (size_t)off);
        } else if (pcre2_substring_number_from_name(re, (PCRE2_SPTR) "username") < 0) {
            cfg_error(L, r->path, key_line(r, "auth"),
                      "bbm.www.remote_user_auth: headerRegex has no (?P<username>...) group");
        }
        pcre2_code_free(re);
    }
    lua_pop(L, 1);
}

/* github_auth{apiVersion, getTeamsMembership, serverURL}: Buildbot's checks. */
static void check_github(struct reader *r, int idx)
{
    lua_State *L = r->L;
    if (!is_kind(L, (const char *const[]){"www.github_auth", NULL}))
        return;
    lua_Integer v = 3;
    if (lua_getfield(L, idx, "apiVersion") != LUA_TNIL)
        v = lua_tointeger(L, -1);
    bool teams = lua_getfield(L, idx, "getTeamsMembership") != LUA_TNIL && lua_toboolean(L, -1);
    int url = lua_getfield(L, idx, "serverURL");
    if (v != 3 && v != 4)
        cfg_error(L, r->path, key_line(r, "auth"), "GitHubAuth apiVersion must be 3 or 4 not %lld",
                  (long long)v);
    else if (v == 3 && teams)
        cfg_error(L, r->path, key_line(r, "auth"),
                  "Retrieving team membership information using GitHubAuth is only possible "
                  "using GitHub api v4.");
    else if (url != LUA_TNIL && !util_startswith(lua_tostring(L, -1), "http://") &&
             !util_startswith(lua_tostring(L, -1), "https://"))
        cfg_error(L, r->path, key_line(r, "auth"),
                  "bbm.www.github_auth: serverURL must be an http:// or https:// URL");
    lua_pop(L, 3);
}

/*
 * www.auth, www.authz and www.cookie_expiration_time (seconds; Buildbot's is a timedelta):
 * checked here, handed to the web as JSON (cfg->www_auth).
 */
static void read_auth(struct reader *r, int idx)
{
    lua_State *L = r->L;
    json_t *o = json_object();
    int t = lua_getfield(L, idx, "auth");
    if (t != LUA_TNIL && !is_kind(L, auth_kinds))
        cfg_error(L, r->path, key_line(r, "auth"),
                  "www.auth must be bbm.www.no_auth{}, user_password_auth{users}, "
                  "htpasswd_auth{passwdFile}, remote_user_auth{header, headerRegex} or "
                  "github_auth{clientId, clientSecret}");
    else if (t != LUA_TNIL) {
        check_users(r, lua_gettop(L));
        check_header_regex(r, lua_gettop(L));
        check_github(r, lua_gettop(L));
    }
    if (t != LUA_TNIL)
        json_object_set_new(o, "auth", cfg_lua_to_json(L, -1));
    lua_pop(L, 1);
    static const char *const authz_kind[] = {"www.authz", NULL};
    t = lua_getfield(L, idx, "authz");
    if (t != LUA_TNIL && !is_kind(L, authz_kind))
        cfg_error(L, r->path, key_line(r, "authz"),
                  "www.authz must be bbm.www.authz{allowRules = {...}, roleMatchers = {...}}");
    else if (t != LUA_TNIL) {
        check_matchers(r, lua_gettop(L), "allowRules", rule_kinds, "an endpoint matcher");
        check_matchers(r, lua_gettop(L), "roleMatchers", role_kinds, "a role matcher");
        json_object_set_new(o, "authz", cfg_lua_to_json(L, -1));
    }
    lua_pop(L, 1);
    t = lua_getfield(L, idx, "cookie_expiration_time");
    if (t != LUA_TNIL && (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0))
        cfg_error(L, r->path, key_line(r, "cookie_expiration_time"),
                  "www.cookie_expiration_time must be a positive whole number of seconds");
    else if (t != LUA_TNIL)
        json_object_set_new(o, "cookie_expiration_time", json_integer(lua_tointeger(L, -1)));
    lua_pop(L, 1);
    r->cfg->www_auth = json_dumps(o, JSON_COMPACT);
    json_decref(o);
}

static void read_www(struct reader *r)
{
    lua_State *L = r->L;
    int t = lua_getfield(L, r->top, "www");
    if (t == LUA_TTABLE) {
        check_www_keys(r, lua_gettop(L));
        if (lua_getfield(L, -1, "port") != LUA_TNIL)
            r->cfg->www_port =
                parse_port(r, lua_gettop(L), "www.port", &r->cfg->www_interface, NULL);
        lua_pop(L, 1);
        int h = lua_getfield(L, -1, "change_hook_dialects");
        if (h == LUA_TTABLE)
            read_hooks(r, lua_gettop(L));
        else if (h != LUA_TNIL)
            cfg_error(L, r->path, key_line(r, "change_hook_dialects"),
                      "www.change_hook_dialects must be a table, not %s", luaL_typename(L, -1));
        lua_pop(L, 1);
        read_release_cycle(r, lua_gettop(L));
        read_redirects(r, lua_gettop(L));
        read_test_results(r, lua_gettop(L));
        read_auth(r, lua_gettop(L));
    } else if (t != LUA_TNIL) {
        cfg_error(L, r->path, key_line(r, "www"), "'www' must be a table, not %s",
                  luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

static char *string_setting(struct reader *r, int idx, const char *key, const char *def)
{
    lua_State *L = r->L;
    int t = lua_getfield(L, idx, key);
    char *v = NULL;
    if (t == LUA_TSTRING)
        v = xstrdup(lua_tostring(L, -1));
    else if (t != LUA_TNIL)
        cfg_error(L, r->path, key_line(r, key), "'%s' must be a string, not %s", key,
                  luaL_typename(L, -1));
    lua_pop(L, 1);
    return v != NULL ? v : def != NULL ? xstrdup(def) : NULL;
}

/* A top-level `key` is absent or of type `type`. */
static void check_type(struct reader *r, const char *key, int type, const char *what)
{
    int t = lua_getfield(r->L, r->top, key);
    if (t != LUA_TNIL && t != type)
        cfg_error(r->L, r->path, key_line(r, key), "'%s' must be %s, not %s", key, what,
                  luaL_typename(r->L, -1));
    lua_pop(r->L, 1);
}

/* A Buildbot key whose other settings bbmaster does not implement: absent, or false. */
static void only_false(struct reader *r, const char *key, const char *why)
{
    int t = lua_getfield(r->L, r->top, key);
    if (t != LUA_TNIL && !(t == LUA_TBOOLEAN && !lua_toboolean(r->L, -1)))
        cfg_error(r->L, r->path, key_line(r, key), "'%s' may only be false: %s", key, why);
    lua_pop(r->L, 1);
}

/* logCompressionMethod, as Buildbot's logchunks.compressed code; zstd when it is not set, as
   in Buildbot with its zstd extra. */
static int log_compression(struct reader *r)
{
    static const char *const methods[] = {"raw", "gz", "bz2", "lz4", "zstd", "br"};
    int t = lua_getfield(r->L, r->top, "logCompressionMethod");
    const char *name = t == LUA_TSTRING ? lua_tostring(r->L, -1) : NULL;
    int code = t == LUA_TNIL ? CFG_LOG_ZSTD : -1;
    for (int i = 0; name != NULL && i < (int)UTIL_NELEM(methods); i++)
        if (strcmp(methods[i], name) == 0)
            code = i;
    lua_pop(r->L, 1);
    if (code < 0)
        cfg_error(r->L, r->path, key_line(r, "logCompressionMethod"),
                  "c['logCompressionMethod'] must be 'raw', 'bz2', 'gz', 'lz4', 'br' or 'zstd'");
    return code < 0 ? CFG_LOG_ZSTD : code;
}

static void read_scalars(struct reader *r)
{
    struct cfg *cfg = r->cfg;
    cfg->title = string_setting(r, r->top, "title", "Buildbot");
    cfg->title_url = string_setting(r, r->top, "titleURL", "http://buildbot.net/");
    cfg->buildbot_url = string_setting(r, r->top, "buildbotURL", "http://localhost:8080/");
    cfg->db_url = string_setting(r, r->top, "db_url", NULL);
    if (lua_getfield(r->L, r->top, "db") == LUA_TTABLE && cfg->db_url == NULL)
        cfg->db_url = string_setting(r, lua_gettop(r->L), "db_url", NULL);
    lua_pop(r->L, 1);
    if (cfg->db_url == NULL)
        cfg->db_url = xstrdup("sqlite:///state.sqlite");
    cfg->log_compression = log_compression(r);
    lua_pushvalue(r->L, r->top);
    cfg->top_ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
    check_type(r, "prioritizeBuilders", LUA_TFUNCTION, "a function");
    check_type(r, "select_next_worker", LUA_TFUNCTION, "a function");
    only_false(r, "buildbotNetUsageData", "bbmaster sends no usage data");
    only_false(r, "multiMaster", "bbmaster runs as a single master");
    if (lua_getfield(r->L, r->top, "collapseRequests") != LUA_TBOOLEAN)
        check_type(r, "collapseRequests", LUA_TFUNCTION, "true, false or a function");
    lua_pop(r->L, 1);
    cfg->properties_ref = LUA_NOREF;
    if (lua_getfield(r->L, r->top, "properties") == LUA_TTABLE)
        cfg->properties_ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
    else
        lua_pop(r->L, 1);
    cfg->upload_roots = string_list(r->L, r->top, "uploadRoots", &cfg->n_upload_roots);
    for (size_t i = 0; i < cfg->n_upload_roots; i++)
        if (cfg->upload_roots[i][0] != '/')
            cfg_error(r->L, r->path, key_line(r, "uploadRoots"),
                      "uploadRoots: '%s' is not an absolute path", cfg->upload_roots[i]);
}

static void check_top_keys(struct reader *r)
{
    lua_State *L = r->L;
    lua_pushnil(L);
    while (lua_next(L, r->top) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            cfg_error(L, r->path, 1, "the configuration table has a non-string key");
            continue;
        }
        const char *key = lua_tostring(L, -1);
        bool known = false;
        for (size_t i = 0; top_keys[i] != NULL && !known; i++)
            known = strcmp(top_keys[i], key) == 0;
        for (size_t i = 0; i < UTIL_NELEM(refused_keys) && !known; i++) {
            if (strcmp(refused_keys[i].key, key) == 0) {
                cfg_error(L, r->path, key_line(r, key),
                          "'%s' is a Buildbot key bbmaster does not implement: %s", key,
                          refused_keys[i].why);
                known = true;
            }
        }
        if (!known) {
            char hint[128];
            cfg_suggest(key, top_keys, hint, sizeof hint);
            cfg_error(L, r->path, key_line(r, key), "unknown configuration key '%s'%s", key, hint);
        }
    }
}

/* Every table of the configuration is plain, and kept so (plain.c). */
static void check_plain(struct reader *r)
{
    lua_State *L = r->L;
    lua_pushnil(L);
    while (lua_next(L, r->top) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING)
            cfg_check_plain(L, -1, lua_tostring(L, -2), r->path, key_line(r, lua_tostring(L, -2)));
        lua_pop(L, 1);
    }
    cfg_check_plain(L, r->top, "the configuration table", r->path, 1);
}

static void read_entries(struct reader *r)
{
    read_protocols(r); /* first: a pb change source is named after the port */
    each_entry(r, "workers", "worker", "a bbm.worker(...)", read_worker);
    each_entry(r, "projects", "project", "a bbm.project{...}", read_project);
    each_entry(r, "builders", "builder", "a bbm.builder{...}", read_builder);
    each_entry(r, "schedulers", "scheduler.", "a bbm.schedulers.* scheduler", read_scheduler);
    each_entry(r, "change_source", "change_source.", "a bbm.changes.* change source",
               read_change_source);
    each_entry(r, "configurators", "configurator.", "a bbm.configurators.* configurator",
               read_configurator);
    read_www(r);
    read_scalars(r);
    cfg_read_services(r->L, r->cfg, r->top, r->path, key_line(r, "services"));
}

void cfg_read_model(lua_State *L, struct cfg *cfg, const char *path, const char *source)
{
    struct reader r = {.L = L, .cfg = cfg, .path = path, .source = source, .top = lua_gettop(L)};
    static const char *const sets[] = {"bbm.workers",  "bbm.builders",       "bbm.schedulers",
                                       "bbm.projects", "bbm.change_sources", "bbm.configurators",
                                       "bbm.locks"};
    for (size_t i = 0; i < UTIL_NELEM(sets); i++) {
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, sets[i]);
    }
    check_top_keys(&r);
    size_t before = cfg_errors_of(L)->count;
    check_plain(&r);
    if (cfg_errors_of(L)->count == before) /* else reading would run the metamethods */
        read_entries(&r);
    for (size_t i = 0; i < UTIL_NELEM(sets); i++) {
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, sets[i]);
    }
}
