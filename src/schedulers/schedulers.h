/*
 * schedulers: what turns changes and requests into buildsets.  The
 * schedulers of the running configuration (single_branch, any_branch) take
 * the changes the change sources store; the force scheduler's form is shown
 * by the web (force.c) and its action submitted here (force_params.c); the
 * control actions `force` and `enable` are answered here.  All of it runs on
 * the engine loop.
 */
#ifndef BBM_SCHEDULERS_H
#define BBM_SCHEDULERS_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "config/config.h"
#include "db/db.h"
#include "engine/engine.h"

struct sched;

/*
 * The schedulers of `cfg` (borrowed until the next sched_reconfig), writing
 * to `db` as master `masterid` and submitting to `e`.  Changes classified
 * before a restart start their tree-stable timers again.
 */
struct sched *sched_new(uv_loop_t *loop, struct db *db, struct engine *e, long long masterid,
                        const struct cfg *cfg);
/* Schedulers kept by name and kind keep their timers and pending changes. */
void sched_reconfig(struct sched *s, const struct cfg *cfg);
/* A change has been stored (a changes_add object). */
void sched_change(struct sched *s, const json_t *change);
/* Answers CTL_FORCE (scheduler by name) and CTL_SCHEDULER_ENABLE (by id); false for others. */
bool sched_control(struct sched *s, struct ctl_action *act);
void sched_free(struct sched *s);

/*
 * Every bbm.schedulers.force of `cfg` as Buildbot's data API describes a
 * force scheduler (name, label, button_name, builder_names, enabled,
 * all_fields), in configuration order.  On the engine thread.
 */
json_t *sched_force_specs(const struct cfg *cfg);

/* A force action, checked as Buildbot's ForceScheduler.force checks it. */
struct sched_force_req {
    json_t *builders;     /* names, sorted, each one the scheduler's */
    char *reason;         /* the buildset's reason (reasonString filled in) */
    long long priority;   /* of the build requests */
    json_t *properties;   /* [[name, value], ...] in Buildbot's order, from the form */
    json_t *sourcestamps; /* [{codebase, branch, revision, repository, project}, ...] */
};

enum {
    SCHED_FORCE_OK = 0,
    SCHED_FORCE_INVALID = -1,    /* *errors: {fullName: message}; Buildbot answers 400 */
    SCHED_FORCE_NO_BUILDER = -2, /* Buildbot's KeyError: a 500 */
    SCHED_FORCE_UNKNOWN = -3,    /* no force scheduler of that name */
};

/*
 * Checks the `params` of a force action on scheduler `name` (the JSON-RPC
 * params: builderNames, the form's fields by fullName, owner) and fills *out
 * (free with sched_force_req_free).  Returns one of SCHED_FORCE_*.  On the
 * engine thread.
 */
int sched_force_parse(const struct cfg *cfg, const char *name, const json_t *params,
                      struct sched_force_req *out, json_t **errors);
void sched_force_req_free(struct sched_force_req *r);

#endif
