/*
 * schedulers: what turns changes and requests into build requests.  So far
 * the force scheduler's form, as the web shows it (force.c); the schedulers
 * themselves come with the build engine.
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

#endif
