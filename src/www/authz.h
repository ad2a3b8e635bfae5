/*
 * www.authz: Buildbot's Authz.assertUserAllowed over bbmaster's endpoints.  A
 * request names its target (the resource, ids, the force scheduler and its
 * params) and the action ("get" for reads, the JSON-RPC method otherwise);
 * the answer is NULL (allowed) or Buildbot's refusal text.
 */
#ifndef BBM_WWW_AUTHZ_H
#define BBM_WWW_AUTHZ_H

#include <jansson.h>
#include <stdbool.h>

#define CFG_KIND_KEY "_kind" /* config/'s _kind of a constructor's table */

struct www;
struct www_authz;

struct www_authz_target {
    const char *plural;         /* the endpoint's resource ("builds"...), NULL for none */
    bool single;                /* one resource's endpoint (builds/N), not a collection's */
    long long buildid;          /* a build endpoint's build, or -1 (none such) */
    const char *forcescheduler; /* forceschedulers/NAME's name, or NULL */
    const json_t *params;       /* the control action's params, or NULL */
};

/* From www.authz's JSON ({"allowRules": [...], "roleMatchers": [...]}); NULL: none. */
struct www_authz *www_authz_new(const json_t *conf);
void www_authz_free(struct www_authz *z);
/* Whether any rule is configured (else everything is allowed). */
bool www_authz_active(const struct www_authz *z);
/* NULL when `user` may do `action` on `t`, else "you need to have role 'X'" (malloc'd).
   Builds' owners and builders are read from the database when a rule needs them. */
char *www_authz_check(struct www *w, const struct www_authz *z, const json_t *user,
                      const struct www_authz_target *t, const char *action);

struct www_args;
/* The build a build endpoint's arguments name (buildid, or a builder and number), or -1. */
long long www_build_of(struct www *w, const struct www_args *args);

#endif
