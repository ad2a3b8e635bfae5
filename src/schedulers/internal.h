/*
 * Private to src/schedulers: what force.c (the forms) gives force_params.c
 * (the force action that submits them).
 */
#ifndef BBM_SCHEDULERS_INTERNAL_H
#define BBM_SCHEDULERS_INTERNAL_H

#include "schedulers/schedulers.h"
#include "util/util.h"

/* What a force scheduler's form does not show but its action needs. */
struct force_extra {
    json_t *codebases; /* the codebase of each codebase field, in order (all_fields[1..]) */
    char *reason_fmt;  /* reasonString, with %(owner)s and %(reason)s */
};

/* The spec of force scheduler `name` (as sched_force_specs gives it), or NULL. */
json_t *force_spec(const struct cfg *cfg, const char *name, struct force_extra *extra);

#endif
