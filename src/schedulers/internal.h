/*
 * Private to src/schedulers.
 *
 *   sched.c       the running schedulers of a configuration, the control actions
 *                 (force, enable), buildsets for changes
 *   basic.c       single_branch and any_branch: changes, tree-stable timers
 *   timed.c       periodic and nightly
 *   janitor.c     bbm.configurators.janitor: old log chunks deleted at its times
 *   filter.c      change filters, fileIsImportant, a change as Lua sees it
 *   force.c       the force schedulers' forms; force_params.c their action
 */
#ifndef BBM_SCHEDULERS_INTERNAL_H
#define BBM_SCHEDULERS_INTERNAL_H

#include <lua.h>
#include <stdbool.h>

#include "schedulers/schedulers.h"
#include "util/util.h"

/* What a force scheduler's form does not show but its action needs. */
struct force_extra {
    json_t *codebases; /* the codebase of each codebase field, in order (all_fields[1..]) */
    char *reason_fmt;  /* reasonString, with %(owner)s and %(reason)s */
};

/* The spec of force scheduler `name` (as sched_force_specs gives it), or NULL. */
json_t *force_spec(const struct cfg *cfg, const char *name, struct force_extra *extra);

struct stable_timer;

/* A scheduler that runs by itself: single_branch, any_branch, periodic, nightly. */
struct sched_one {
    struct sched *s;
    char *name;
    char *kind;
    long long id; /* its schedulers row */
    bool enabled; /* schedulers.enabled */
    bool active;  /* enabled and this master's: it consumes changes, its timers run */
    int ref;      /* its table in s->cfg's Lua state */
    char **builders;
    size_t n_builders;
    struct stable_timer *timers; /* basic.c */
    uv_timer_t *timer;           /* timed.c: the next build */
    double last_build;           /* timed.c: when the last was due (-1: never) */
    double actuate_at;           /* timed.c: when the next is due */
    bool first_build;            /* timed.c: none was ever made */
    struct sched_one *next;
};

struct sched {
    uv_loop_t *loop;
    struct db *db;
    struct engine *e;
    long long masterid;
    const struct cfg *cfg;
    struct sched_one *list;
    struct janitor *janitor; /* NULL: none configured */
};

/* The scheduler's table pushed on its Lua state (pop it with lua_settop). */
lua_State *sched_table(struct sched_one *o);
/* Its number parameter `key` (def when absent). */
double sched_num(struct sched_one *o, const char *key, double def);
bool sched_bool(struct sched_one *o, const char *key);
/* Its codebases (Buildbot's default: the one codebase ""), as {name: {repository, branch,
   revision}} (owned). */
json_t *sched_codebases(struct sched_one *o);
/*
 * Buildbot's addBuildsetForChanges: a buildset for the scheduler's builders
 * with, per codebase, the source stamp of its newest change in `changes`
 * (rows {changeid, codebase, ...}, oldest first) and the properties of those
 * changes after the scheduler's own.  0 or -1 (logged).
 */
int sched_build_changes(struct sched_one *o, const json_t *changes, const char *reason);
/* Whether the change's codebase is one of the scheduler's (logged when not). */
bool sched_takes_codebase(struct sched_one *o, const json_t *change);
/* The scheduler's classified changes, oldest first, as rows {changeid, codebase, branch,
   revision, repository, project, important}: all, or those of `where` ({codebase, project,
   repository, branch}, an any_branch timer's scope).  NULL with *cause. */
json_t *sched_classified(struct sched_one *o, const json_t *where, char **cause);
/* Records the change's importance for the scheduler (scheduler_changes). */
int sched_classify(struct sched_one *o, long long changeid, bool important, char **cause);
/* The scheduler's reason with %(name)s and %(classname)s filled in (malloc'd). */
char *sched_reason(struct sched_one *o, const char *classname);

/* basic.c */
bool basic_kind(const char *kind);
void basic_change(struct sched_one *o, const json_t *change);
void basic_activate(struct sched_one *o);
void basic_deactivate(struct sched_one *o);

/* timed.c */
bool timed_kind(const char *kind);
void timed_change(struct sched_one *o, const json_t *change);
void timed_activate(struct sched_one *o);
void timed_deactivate(struct sched_one *o);

/* janitor.c: the janitor of a configuration, on the engine's loop and connection. */
struct janitor;
struct janitor *janitor_new(uv_loop_t *loop, struct db *db, const struct cfg_janitor *conf);
/* A new configuration of it; a run going on finishes first. */
void janitor_reconfig(struct janitor *j, const struct cfg_janitor *conf);
/* Stops it (a run going on stops between two batches); NULL: nothing. */
void janitor_free(struct janitor *j);

/* filter.c: whether the change passes the scheduler's change_filter (and branch). */
bool filter_accepts(struct sched_one *o, const json_t *change);
/* fileIsImportant: 1, 0, or -1 when it failed (logged). */
int filter_important(struct sched_one *o, const json_t *change);
/* Pushes the change as Buildbot's Change object looks to a Lua function. */
void filter_push_change(lua_State *L, const json_t *change);

#endif
