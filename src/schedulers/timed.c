/*
 * periodic and nightly, as Buildbot's Timed schedulers: the time of the last
 * build is the scheduler's `last_build` state (objects / object_state, under
 * its class name Periodic or Nightly), so a restart neither repeats nor
 * skips a build; the next one is at last + periodicBuildTimer (at once for
 * a periodic scheduler that never built), or at the next minute after the
 * last matching the cron-like fields minute, hour, dayOfMonth, month and
 * dayOfWeek (0 is Monday, as in Python), in local time.  With onlyIfChanged
 * the scheduler classifies the changes its filter takes and builds only if
 * one of them is important (always the first time, the first time after it
 * was given onlyIfChanged, kept as `last_only_if_changed`, and at a minute
 * matching Nightly's force_at_* fields); the buildset then has the newest
 * change's source stamp.  A time missed while the master was down is built
 * at once.
 */
#include "schedulers/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool timed_kind(const char *kind)
{
    return util_streq(kind, "periodic") || util_streq(kind, "nightly");
}

static const char *classname(const struct sched_one *o)
{
    return strcmp(o->kind, "periodic") == 0 ? "Periodic" : "Nightly";
}

/* ------------------------------------------------------------ cron fields */

/* Adds the value at `idx` (a number, a cron string or a list of numbers) to field `f`. */
static int cron_field(lua_State *L, int idx, struct util_cron *c, enum util_cron_field f)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return util_cron_add_text(c, f, lua_tostring(L, idx));
    if (lua_type(L, idx) != LUA_TNUMBER && lua_type(L, idx) != LUA_TTABLE)
        return -1;
    lua_Integer n = lua_type(L, idx) == LUA_TTABLE ? luaL_len(L, idx) : 1;
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_type(L, idx) == LUA_TTABLE)
            lua_geti(L, idx, i);
        else
            lua_pushvalue(L, idx);
        long v = lua_isinteger(L, -1) ? (long)lua_tointeger(L, -1) : -1;
        lua_pop(L, 1);
        if (util_cron_add_value(c, f, v) < 0)
            return -1;
    }
    return 0;
}

/* The cron fields of the scheduler: its own (minute, hour...) or, with `force`, Nightly's
   force_at_* ones.  Returns -1 if one cannot be read, 1 with `force` when none is given
   (force_at is off), else 0. */
static int read_cron(struct sched_one *o, struct util_cron *c, bool force)
{
    static const struct {
        const char *key, *force_key, *def;
    } fields[UTIL_CRON_FIELDS] = {{"minute", "force_at_minute", "0"},
                                  {"hour", "force_at_hour", "*"},
                                  {"dayOfMonth", "force_at_day_of_month", "*"},
                                  {"month", "force_at_month", "*"},
                                  {"dayOfWeek", "force_at_day_of_week", "*"}};
    lua_State *L = sched_table(o);
    int top = lua_gettop(L), rc = 0, given = 0;
    memset(c, 0, sizeof *c);
    for (int i = 0; i < UTIL_CRON_FIELDS && rc == 0; i++) {
        const char *key = force ? fields[i].force_key : fields[i].key;
        if (lua_getfield(L, top, key) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushstring(L, fields[i].def);
        } else {
            given++;
        }
        rc = cron_field(L, -1, c, (enum util_cron_field)i);
        if (rc < 0)
            log_error("scheduler '%s': cannot read %s", o->name, key);
        lua_pop(L, 1);
    }
    lua_settop(L, top - 1);
    return rc == 0 && force && given == 0 ? 1 : rc;
}

/* ------------------------------------------------------------ state */

static long long object(struct sched_one *o)
{
    char *cause = NULL;
    long long id = db_object_id(o->s->db, o->name, classname(o), &cause);
    if (id < 0) {
        log_error("scheduler '%s': %s", o->name, cause);
        free(cause);
    }
    return id;
}

/* The scheduler's state `name` (object_state), parsed; NULL when absent or unreadable. */
static json_t *state_get(struct sched_one *o, const char *name)
{
    long long id = object(o);
    char *text = NULL, *cause = NULL;
    if (id < 0 || db_state_get(o->s->db, id, name, &text, &cause) < 0) {
        if (cause != NULL)
            log_error("scheduler '%s': %s", o->name, cause);
        free(cause);
        return NULL;
    }
    json_t *v = text != NULL ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    free(text);
    return v;
}

static void state_set(struct sched_one *o, const char *name, const char *json)
{
    long long id = object(o);
    char *cause = NULL;
    if (id >= 0 && db_state_set(o->s->db, id, name, json, &cause) < 0) {
        log_error("scheduler '%s': %s", o->name, cause);
        free(cause);
    }
}

static double last_build(struct sched_one *o)
{
    json_t *v = state_get(o, "last_build");
    double last = json_is_number(v) ? json_number_value(v) : -1;
    json_decref(v);
    return last;
}

static void set_last_build(struct sched_one *o, double when)
{
    char text[64];
    snprintf(text, sizeof text, "%.6f", when);
    state_set(o, "last_build", text);
}

/* Nightly's last_only_if_changed: onlyIfChanged when the scheduler last decided (true when
   never); a scheduler that has just been given onlyIfChanged builds once whatever changed. */
static bool last_only_if_changed(struct sched_one *o)
{
    json_t *v = state_get(o, "last_only_if_changed");
    bool yes = !json_is_false(v);
    json_decref(v);
    return yes;
}

/* Nightly's force_at_*: whether this actuation's minute is one that builds whatever
   changed. */
static bool forced_now(struct sched_one *o)
{
    struct util_cron c;
    return strcmp(o->kind, "nightly") == 0 && read_cron(o, &c, true) == 0 &&
           util_cron_matches(&c, o->actuate_at);
}

/* ------------------------------------------------------------ actuation */

static void schedule_next(struct sched_one *o);

static void start_build(struct sched_one *o)
{
    char *cause = NULL;
    json_t *rows = sched_classified(o, NULL, &cause);
    if (rows == NULL) {
        log_error("scheduler '%s': %s", o->name, cause);
        free(cause);
        return;
    }
    bool important = false;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) important =
        important || json_is_true(json_object_get(row, "important"));
    bool only = sched_bool(o, "onlyIfChanged"), last = last_only_if_changed(o);
    if (last && only && !important && !o->first_build && !forced_now(o)) {
        log_info("%s scheduler <%s>: skipping build - No important changes", classname(o), o->name);
        o->first_build = false;
        json_decref(rows);
        return;
    }
    if (last != only)
        state_set(o, "last_only_if_changed", only ? "true" : "false");
    o->first_build = false;
    char *reason = sched_reason(o, classname(o));
    if (sched_build_changes(o, rows, reason) == 0 && json_array_size(rows) > 0) {
        struct db_param p[] = {DB_INT(o->id),
                               DB_INT(json_integer_value(json_object_get(
                                   json_array_get(rows, json_array_size(rows) - 1), "changeid")))};
        char *cause = NULL;
        if (db_exec(o->s->db,
                    "DELETE FROM scheduler_changes WHERE schedulerid = ? AND changeid <= ?", p, 2,
                    &cause) < 0) {
            log_error("scheduler '%s': %s", o->name, cause);
            free(cause);
        }
    }
    free(reason);
    json_decref(rows);
}

static void actuate(uv_timer_t *h)
{
    struct sched_one *o = h->data;
    o->last_build = o->actuate_at;
    set_last_build(o, o->last_build);
    start_build(o);
    schedule_next(o);
}

static void schedule_next(struct sched_one *o)
{
    double now = util_now(), next;
    if (strcmp(o->kind, "periodic") == 0) {
        double every = sched_num(o, "periodicBuildTimer", 0);
        if (every <= 0)
            return;
        next = o->last_build < 0 ? now : o->last_build + every;
    } else {
        struct util_cron c;
        if (read_cron(o, &c, false) < 0)
            return;
        next = util_cron_next(&c, o->last_build < 0 ? now : o->last_build);
        if (next < 0)
            return;
    }
    if (next <= now) {
        if (o->last_build >= 0)
            log_info("%s scheduler <%s>: missed scheduled build time - building immediately",
                     classname(o), o->name);
        next = now;
    }
    o->actuate_at = next;
    if (o->timer == NULL) {
        o->timer = xcalloc(1, sizeof *o->timer);
        uv_timer_init(o->s->loop, o->timer);
        o->timer->data = o;
    }
    uv_timer_start(o->timer, actuate, (uint64_t)((next - now) * 1000), 0);
}

void timed_activate(struct sched_one *o)
{
    o->last_build = last_build(o);
    o->first_build = o->last_build < 0;
    schedule_next(o);
    if (!sched_bool(o, "onlyIfChanged")) {
        struct db_param p = DB_INT(o->id);
        char *cause = NULL;
        if (db_exec(o->s->db, "DELETE FROM scheduler_changes WHERE schedulerid = ?", &p, 1,
                    &cause) < 0) {
            log_error("scheduler '%s': %s", o->name, cause);
            free(cause);
        }
    }
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void timed_deactivate(struct sched_one *o)
{
    if (o->timer != NULL)
        uv_close((uv_handle_t *)o->timer, timer_closed);
    o->timer = NULL;
}

void timed_change(struct sched_one *o, const json_t *change)
{
    if (!sched_bool(o, "onlyIfChanged") || !filter_accepts(o, change) ||
        !sched_takes_codebase(o, change))
        return;
    int important = filter_important(o, change);
    if (important < 0 || (important == 0 && sched_bool(o, "onlyImportant")))
        return;
    long long id = (long long)json_integer_value(json_object_get(change, "changeid"));
    char *cause = NULL;
    if (sched_classify(o, id, important == 1, &cause) < 0) {
        log_error("scheduler '%s': classifying change %lld: %s", o->name, id, cause);
        free(cause);
    }
}
