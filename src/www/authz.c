/*
 * Buildbot's authorization (www/authz/authz.py, endpointmatchers.py, roles.py):
 * roles from the role matchers, then the allow rules in order; the first rule
 * whose endpoint matcher matches and one of whose roles the user has (fnmatch)
 * allows, a matching rule with defaultDeny refuses with "you need to have
 * role 'X'", and when no rule decides the action is allowed.  The owner role
 * (roles_from_owner) is computed only for a rule that matched a build, from
 * its buildset's `owner` property, as Buildbot's Match.getOwner.
 */
#include "www/authz.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "www/internal.h"

enum matcher {
    M_NONE, /* branch_endpoint_matcher, view_builds_endpoint_matcher: Buildbot's never match */
    M_ANY,
    M_CONTROL,
    M_STOP,
    M_REBUILD,
    M_FORCE,
    M_ENABLE,
};

struct rule {
    enum matcher m;
    const char *role, *builder; /* builder: an fnmatch pattern, or NULL */
    bool default_deny;
};

struct www_authz {
    json_t *conf; /* holds the strings */
    struct rule *rules;
    size_t n_rules;
};

static const struct {
    const char *kind;
    enum matcher m;
} matchers[] = {
    {"www.any_endpoint_matcher", M_ANY},
    {"www.any_control_endpoint_matcher", M_CONTROL},
    {"www.stop_build_endpoint_matcher", M_STOP},
    {"www.rebuild_build_endpoint_matcher", M_REBUILD},
    {"www.force_build_endpoint_matcher", M_FORCE},
    {"www.enable_scheduler_endpoint_matcher", M_ENABLE},
    {"www.branch_endpoint_matcher", M_NONE},
    {"www.view_builds_endpoint_matcher", M_NONE},
};

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

struct www_authz *www_authz_new(const json_t *conf)
{
    if (!json_is_object(conf))
        return NULL;
    struct www_authz *z = xcalloc(1, sizeof *z);
    z->conf = json_incref((json_t *)conf);
    const json_t *rules = json_object_get(conf, "allowRules");
    z->rules = xcalloc(json_array_size(rules) + 1, sizeof *z->rules);
    for (size_t i = 0; i < json_array_size(rules); i++) {
        const json_t *r = json_array_get(rules, i);
        const char *kind = str(r, CFG_KIND_KEY);
        struct rule *out = &z->rules[z->n_rules];
        for (size_t k = 0; kind != NULL && k < UTIL_NELEM(matchers); k++)
            if (strcmp(kind, matchers[k].kind) == 0)
                out->m = matchers[k].m;
        out->role = str(r, "role") != NULL ? str(r, "role") : "";
        out->builder = str(r, "builder");
        const json_t *dd = json_object_get(r, "defaultDeny");
        out->default_deny = dd == NULL || json_is_true(dd);
        z->n_rules++;
    }
    return z;
}

void www_authz_free(struct www_authz *z)
{
    if (z == NULL)
        return;
    json_decref(z->conf);
    free(z->rules);
    free(z);
}

bool www_authz_active(const struct www_authz *z)
{
    return z != NULL && z->n_rules > 0;
}

/* A set of roles, as Python's set: each once. */
static void add_role(json_t *roles, const char *role)
{
    for (size_t i = 0; i < json_array_size(roles); i++)
        if (strcmp(json_string_value(json_array_get(roles, i)), role) == 0)
            return;
    json_array_append_new(roles, json_string(role));
}

static void add_roles(json_t *roles, const json_t *list)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (json_is_string(json_array_get(list, i)))
            add_role(roles, json_string_value(json_array_get(list, i)));
}

/* roles_from_emails / roles_from_domain: {role = {emails or domains}}; the key looked up. */
static void roles_by_key(json_t *roles, const json_t *m, const char *key)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v)
    {
        if (k[0] == '_')
            continue;
        for (size_t i = 0; i < json_array_size(v); i++)
            if (util_streq(json_string_value(json_array_get(v, i)), key))
                add_role(roles, k);
    }
}

/* The roles of the matchers other than roles_from_owner. */
static json_t *user_roles(const struct www_authz *z, const json_t *user)
{
    json_t *roles = json_array();
    const json_t *ms = json_object_get(z->conf, "roleMatchers");
    const char *email = str(user, "email");
    for (size_t i = 0; i < json_array_size(ms); i++) {
        const json_t *m = json_array_get(ms, i);
        const char *kind = str(m, CFG_KIND_KEY);
        if (util_streq(kind, "www.roles_from_groups")) {
            const char *prefix = str(m, "groupPrefix") != NULL ? str(m, "groupPrefix") : "";
            const json_t *groups = json_object_get(user, "groups");
            for (size_t g = 0; g < json_array_size(groups); g++) {
                const char *name = json_string_value(json_array_get(groups, g));
                if (name != NULL && util_startswith(name, prefix))
                    add_role(roles, name + strlen(prefix));
            }
        } else if (util_streq(kind, "www.roles_from_emails") && email != NULL) {
            roles_by_key(roles, m, email);
        } else if (util_streq(kind, "www.roles_from_domain") && email != NULL) {
            const char *at = strrchr(email, '@');
            roles_by_key(roles, m, at != NULL ? at + 1 : email);
        } else if (util_streq(kind, "www.roles_from_username")) {
            const char *name = str(user, "username");
            const json_t *names = json_object_get(m, "usernames");
            for (size_t u = 0; name != NULL && u < json_array_size(names); u++)
                if (util_streq(json_string_value(json_array_get(names, u)), name))
                    add_roles(roles, json_object_get(m, "roles"));
        }
    }
    return roles;
}

static bool has_owner_matchers(const struct www_authz *z)
{
    const json_t *ms = json_object_get(z->conf, "roleMatchers");
    for (size_t i = 0; i < json_array_size(ms); i++)
        if (util_streq(str(json_array_get(ms, i), CFG_KIND_KEY), "www.roles_from_owner"))
            return true;
    return false;
}

/* One text of a query on build `id` (malloc'd), or NULL. */
static char *build_text(struct www *w, const char *sql, long long id)
{
    char *cause = NULL;
    struct db *db = www_pool_get(w, &cause);
    struct db_param p[] = {DB_INT(id)};
    struct db_res *r = db != NULL ? db_query(db, sql, p, 1, &cause) : NULL;
    char *v = r != NULL && db_res_rows(r) > 0 && db_res_text(r, 0, 0) != NULL
                  ? xstrdup(db_res_text(r, 0, 0))
                  : NULL;
    db_res_free(r);
    if (db != NULL)
        www_pool_put(w, db);
    if (cause != NULL)
        log_warn("www: authz: %s", cause);
    free(cause);
    return v;
}

/* The owner of a build: its buildset's `owner` property (Match.getOwnerFromBuild). */
static char *build_owner(struct www *w, long long buildid)
{
    char *text = build_text(w,
                            "SELECT p.property_value FROM builds b JOIN buildrequests r ON "
                            "r.id = b.buildrequestid JOIN buildset_properties p ON p.buildsetid "
                            "= r.buildsetid AND p.property_name = 'owner' WHERE b.id = ?",
                            buildid);
    json_t *v = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *s = json_string_value(json_array_get(v, 0));
    char *owner = s != NULL ? xstrdup(s) : NULL;
    json_decref(v);
    free(text);
    return owner;
}

static bool builder_matches(struct www *w, const char *pattern, const struct www_authz_target *t)
{
    if (t->single && strcmp(t->plural, "builds") == 0) {
        char *name = build_text(
            w, "SELECT n.name FROM builds b JOIN builders n ON n.id = b.builderid WHERE b.id = ?",
            t->buildid);
        bool ok = name != NULL && fnmatch(pattern, name, FNM_NOESCAPE) == 0;
        free(name);
        return ok;
    }
    /* a force: the builders it would start (builderNames, else all of the scheduler's) */
    const json_t *names = json_object_get(t->params, "builderNames");
    json_t *specs = NULL;
    const json_t *builderid = json_object_get(t->params, "builderid");
    if (json_is_integer(builderid)) { /* computeBuilderNames: that builder */
        char *name = build_text(w, "SELECT name FROM builders WHERE id = ?",
                                (long long)json_integer_value(builderid));
        bool ok = name != NULL && fnmatch(pattern, name, FNM_NOESCAPE) == 0;
        free(name);
        return ok;
    }
    if (!json_is_array(names)) {
        pthread_mutex_lock(&w->lock);
        specs = w->forceschedulers != NULL ? json_loads(w->forceschedulers, 0, NULL) : NULL;
        pthread_mutex_unlock(&w->lock);
        for (size_t i = 0; i < json_array_size(specs); i++)
            if (util_streq(str(json_array_get(specs, i), "name"), t->forcescheduler))
                names = json_object_get(json_array_get(specs, i), "builder_names");
    }
    bool ok = false;
    for (size_t i = 0; !ok && i < json_array_size(names); i++) {
        const char *n = json_string_value(json_array_get(names, i));
        ok = n != NULL && fnmatch(pattern, n, FNM_NOESCAPE) == 0;
    }
    json_decref(specs);
    return ok;
}

/* Whether rule r's endpoint matcher matches; *build: the match carries a build. */
static bool rule_matches(struct www *w, const struct rule *r, const struct www_authz_target *t,
                         const char *action, bool *build)
{
    const char *plural = t->plural != NULL ? t->plural : "";
    bool builds = strcmp(plural, "builds") == 0 && t->single; /* a BuildEndpoint */
    bool m = false;
    *build = false;
    switch (r->m) {
    case M_ANY:
        return true;
    case M_CONTROL:
        return strcasecmp(action, "get") != 0;
    case M_STOP:
    case M_REBUILD:
        m = builds && strcmp(action, r->m == M_STOP ? "stop" : "rebuild") == 0;
        *build = m;
        break;
    case M_FORCE:
        m = strcmp(plural, "forceschedulers") == 0 && t->forcescheduler != NULL &&
            strcmp(action, "force") == 0;
        break;
    case M_ENABLE:
        return strcmp(plural, "schedulers") == 0 && strcmp(action, "enable") == 0;
    case M_NONE:
        return false;
    }
    return m && (r->builder == NULL || builder_matches(w, r->builder, t));
}

static bool has_role(const json_t *roles, const char *pattern)
{
    for (size_t i = 0; i < json_array_size(roles); i++)
        if (fnmatch(pattern, json_string_value(json_array_get(roles, i)), FNM_NOESCAPE) == 0)
            return true;
    return false;
}

/* roles_from_owner: its role when the user's email is the owner. */
static void add_owner_roles(const struct www_authz *z, json_t *roles, const json_t *user,
                            const char *owner)
{
    const json_t *ms = json_object_get(z->conf, "roleMatchers");
    const char *email = str(user, "email");
    for (size_t i = 0; i < json_array_size(ms); i++) {
        const json_t *m = json_array_get(ms, i);
        if (util_streq(str(m, CFG_KIND_KEY), "www.roles_from_owner") && email != NULL &&
            strcmp(email, owner) == 0 && str(m, "role") != NULL)
            add_role(roles, str(m, "role"));
    }
}

char *www_authz_check(struct www *w, const struct www_authz *z, const json_t *user,
                      const struct www_authz_target *t, const char *action)
{
    if (!www_authz_active(z))
        return NULL;
    json_t *roles = user_roles(z, user);
    char *deny = NULL;
    bool owners = has_owner_matchers(z), owner_done = false;
    for (size_t i = 0; i < z->n_rules; i++) {
        const struct rule *r = &z->rules[i];
        bool build;
        if (!rule_matches(w, r, t, action, &build))
            continue;
        if (owners && build && !owner_done && t->buildid >= 0) {
            char *owner = build_owner(w, t->buildid);
            if (owner != NULL)
                add_owner_roles(z, roles, user, owner);
            free(owner);
            owner_done = true;
        }
        if (has_role(roles, r->role))
            break;
        if (r->default_deny) {
            deny = xasprintf("you need to have role '%s'", r->role);
            break;
        }
    }
    json_decref(roles);
    return deny;
}

long long www_build_of(struct www *w, const struct www_args *args)
{
    long long id = -1, number;
    if (www_arg_num(args, "buildid", &id))
        return id;
    if (!www_arg_num(args, "build_number", &number))
        return -1;
    long long builderid;
    const char *name = www_arg_str(args, "buildername");
    bool by_id = www_arg_num(args, "builderid", &builderid);
    if (!by_id && name == NULL)
        return -1;
    char *cause = NULL;
    struct db *db = www_pool_get(w, &cause);
    struct db_param p[] = {by_id ? DB_INT(builderid) : DB_TEXT(name), DB_INT(number)};
    struct db_res *r =
        db == NULL ? NULL
        : by_id
            ? db_query(db, "SELECT id FROM builds WHERE builderid = ? AND number = ?", p, 2, &cause)
            : db_query(db,
                       "SELECT b.id FROM builds b JOIN builders n ON n.id = b.builderid "
                       "WHERE n.name = ? AND b.number = ?",
                       p, 2, &cause);
    if (r != NULL && db_res_rows(r) > 0 && db_res_text(r, 0, 0) != NULL)
        id = db_res_int(r, 0, 0);
    db_res_free(r);
    if (db != NULL)
        www_pool_put(w, db);
    free(cause);
    return id;
}

/* The refusal of `path`'s read for `user` under `a`'s rules (logged), or NULL. */
static char *read_denied(struct www *w, const struct www_auth *a, const json_t *user,
                         const char *path)
{
    char *copy = xstrdup(path);
    struct www_args args;
    const struct www_endpoint *ep = www_route_path(copy, &args);
    struct www_authz_target t = {.plural = ep != NULL ? ep->type->plural : NULL,
                                 .single = ep != NULL && ep->kind != WWW_COLLECTION,
                                 .buildid = -1};
    /* an unknown path is Buildbot's 404 before any check */
    char *deny = ep != NULL ? www_authz_check(w, www_auth_authz(a), user, &t, "get") : NULL;
    if (deny != NULL)
        log_info("www: GET %s by %s refused: %s", path, UTIL_ESC(www_user_name(user)), deny);
    free(copy);
    return deny;
}

char *www_read_denied(struct www *w, struct MHD_Connection *c, const char *path)
{
    struct www_auth *a = www_auth_get(w);
    char *deny = NULL;
    if (www_authz_active(www_auth_authz(a))) {
        json_t *user = www_session_user(w, c);
        deny = read_denied(w, a, user, path);
        json_decref(user);
    }
    www_auth_put(a);
    return deny;
}

char *www_user_read_denied(struct www *w, const json_t *user, const char *path)
{
    struct www_auth *a = www_auth_get(w);
    char *deny = www_authz_active(www_auth_authz(a)) ? read_denied(w, a, user, path) : NULL;
    www_auth_put(a);
    return deny;
}
