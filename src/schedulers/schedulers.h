/*
 * schedulers: what turns changes and requests into build requests.  So far
 * the force scheduler: its form, as the web shows it (force.c), and the
 * force action that submits it (force_params.c).
 */
#ifndef BBM_SCHEDULERS_H
#define BBM_SCHEDULERS_H

#include <jansson.h>

#include "config/config.h"

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
