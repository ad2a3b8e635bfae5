/*
 * Collapsing build requests, as Buildbot's BuildRequestCollapser: a new
 * request of a builder takes the place of that builder's older unclaimed
 * requests that the builder's collapseRequests allows (a Lua function, false
 * for never, or Buildbot's default rule: same codebases, repositories,
 * branches and projects, the same revisions unless both stamps have changes,
 * no patch, the same scheduler-given properties); those are claimed and
 * completed SKIPPED.
 *
 * For the default rule the older requests worth comparing are found in
 * memory: pending requests by builder and first source stamp (codebase,
 * repository, project, branch), filled at start from the database and as
 * buildsets are added, pruned as requests finish.  A queue of thousands of
 * requests on other branches then costs nothing per submission.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 1024

struct cand {
    long long brid, bsid;
    char *key; /* builderid and first stamp */
    struct cand *next;
};

struct collapse_index {
    struct cand *buckets[BUCKETS];
    size_t n, prune_at;
};

static size_t bucket(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % BUCKETS);
}

/* "builderid|codebase|repository|project|branch" of a buildset's first stamp (malloc'd), or
   NULL when it has none. */
static char *cand_key(struct engine *e, long long builderid, long long bsid, char **cause)
{
    struct db_param p[] = {DB_INT(bsid)};
    struct db_res *r = db_query(e->db,
                                "SELECT s.codebase, s.repository, s.project, s.branch "
                                "FROM buildset_sourcestamps x JOIN sourcestamps s "
                                "ON s.id = x.sourcestampid WHERE x.buildsetid = ? "
                                "ORDER BY s.id LIMIT 1",
                                p, 1, cause);
    if (r == NULL || db_res_rows(r) == 0) {
        db_res_free(r);
        return NULL;
    }
    const char *branch = db_res_text(r, 0, 3);
    char *key = xasprintf("%lld\x1f%s\x1f%s\x1f%s\x1f%s%s", builderid, db_res_text(r, 0, 0),
                          db_res_text(r, 0, 1), db_res_text(r, 0, 2), branch ? "=" : "null",
                          branch ? branch : "");
    db_res_free(r);
    return key;
}

static void cand_add(struct engine *e, char *key, long long brid, long long bsid)
{
    struct collapse_index *x = e->collapse;
    struct cand *c = xcalloc(1, sizeof *c);
    c->brid = brid;
    c->bsid = bsid;
    c->key = key;
    size_t b = bucket(key);
    c->next = x->buckets[b];
    x->buckets[b] = c;
    x->n++;
}

static void cand_free(struct cand *c)
{
    free(c->key);
    free(c);
}

/* Whether a request is still pending and unclaimed: 1, 0, or -1. */
static int pending(struct engine *e, long long brid, char **cause)
{
    struct db_param p[] = {DB_INT(brid)};
    struct db_res *r = db_query(e->db,
                                "SELECT 1 FROM buildrequests br WHERE br.id = ? AND "
                                "br.complete = 0 AND NOT EXISTS (SELECT 1 FROM "
                                "buildrequest_claims c WHERE c.brid = br.id)",
                                p, 1, cause);
    if (r == NULL)
        return -1;
    int yes = db_res_rows(r) > 0;
    db_res_free(r);
    return yes;
}

/* Drops the entries of requests no longer pending, once the index has doubled. */
static void prune(struct engine *e)
{
    struct collapse_index *x = e->collapse;
    if (x->n < x->prune_at)
        return;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (struct cand **p = &x->buckets[b]; *p != NULL;) {
            char *cause = NULL;
            int yes = pending(e, (*p)->brid, &cause);
            free(cause);
            if (yes == 0) {
                struct cand *c = *p;
                *p = c->next;
                cand_free(c);
                x->n--;
            } else {
                p = &(*p)->next;
            }
        }
    }
    x->prune_at = 2 * x->n + 256;
}

/*
 * A request's buildset, its source stamps and its scheduler-given properties, as one
 * JSON object that compares equal for collapsible requests (Buildbot's canBeCollapsed):
 * per codebase the repository, branch and project, and the revision unless the stamp
 * has changes (two stamps with changes collapse whatever their revisions).
 */
static json_t *collapse_key(struct engine *e, long long bsid, char **cause)
{
    struct db_param p[] = {DB_INT(bsid)};
    struct db_res *r = db_query(e->db,
                                "SELECT ss.codebase, ss.repository, ss.branch, ss.project, "
                                "ss.revision, ss.patchid, EXISTS (SELECT 1 FROM changes c "
                                "WHERE c.sourcestampid = ss.id) FROM buildset_sourcestamps bs "
                                "JOIN sourcestamps ss ON ss.id = bs.sourcestampid "
                                "WHERE bs.buildsetid = ?",
                                p, 1, cause);
    if (r == NULL)
        return NULL;
    json_t *key = json_object(), *stamps = json_object();
    bool patched = false;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        json_t *ss = json_array();
        for (size_t c = 1; c < 5; c++) {
            const char *v = db_res_text(r, i, c);
            bool changes = c == 4 && db_res_int(r, i, 6) != 0;
            json_array_append_new(ss, changes     ? json_true()
                                      : v != NULL ? json_string(v)
                                                  : json_null());
        }
        patched = patched || !db_res_null(r, i, 5);
        const char *cb = db_res_text(r, i, 0);
        json_object_set_new(stamps, cb != NULL ? cb : "", ss);
    }
    db_res_free(r);
    json_object_set_new(key, "sourcestamps", stamps);
    struct props props = {0};
    if (requests_properties(e, bsid, &props, cause) != 0) {
        json_decref(key);
        return NULL;
    }
    json_t *given = json_object();
    for (size_t i = 0; i < props.n; i++)
        if (util_streq(props.items[i].source, "Scheduler") &&
            !util_streq(props.items[i].name, "scheduler"))
            json_object_set(given, props.items[i].name, props.items[i].value);
    props_free(&props);
    json_object_set_new(key, "properties", given);
    if (patched) /* anything with a patch is never collapsed */
        json_object_set_new(key, "patched", json_integer(bsid));
    return key;
}

/* Pushes the collapseRequests that applies to the builder: its own, or else master.lua's
   top-level one (nil without either).  Returns its Lua type. */
static int push_collapse(struct engine *e, const struct cfg_builder *bc)
{
    lua_State *L = e->cfg->lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, bc->ref);
    int t = lua_istable(L, -1) ? lua_getfield(L, -1, "collapseRequests") : LUA_TNIL;
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        if (lua_rawgeti(L, LUA_REGISTRYINDEX, e->cfg->top_ref) == LUA_TTABLE)
            t = lua_getfield(L, -1, "collapseRequests");
    }
    return t;
}

/* A request as collapseRequests(master, builder, new, old) sees it. */
static void push_request(lua_State *L, const struct cfg_builder *bc, long long brid, long long bsid)
{
    lua_newtable(L);
    lua_pushinteger(L, brid);
    lua_setfield(L, -2, "buildrequestid");
    lua_pushinteger(L, bsid);
    lua_setfield(L, -2, "buildsetid");
    lua_pushstring(L, bc->name);
    lua_setfield(L, -2, "buildername");
}

/* The builder's collapseRequests: a Lua function, false (never) or true / absent (Buildbot's
   default rule).  1 collapse, 0 not, -1 the default rule decides. */
static int collapse_fn(struct engine *e, const struct cfg_builder *bc, long long brid,
                       long long bsid, long long old, long long old_bsid)
{
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L), rc = -1;
    int t = push_collapse(e, bc);
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        rc = 0;
    } else if (t == LUA_TFUNCTION) {
        botmaster_lua_master(e);
        botmaster_lua_builder(L, bc);
        push_request(L, bc, brid, bsid);
        push_request(L, bc, old, old_bsid);
        char *cause = NULL;
        if (cfg_lua_call(L, 4, 1, &cause) == 0) {
            rc = lua_toboolean(L, -1) ? 1 : 0;
        } else {
            log_warn("builder '%s': collapseRequests: %s", bc->name, cause);
            free(cause);
            rc = 0;
        }
    }
    lua_settop(L, top);
    return rc;
}

enum { COLLAPSE_NEVER, COLLAPSE_CUSTOM, COLLAPSE_DEFAULT };

/* What the builder's collapseRequests is: false, a function, or true / absent. */
static int collapse_mode(struct engine *e, const struct cfg_builder *bc)
{
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    int t = push_collapse(e, bc);
    int mode = t == LUA_TFUNCTION                           ? COLLAPSE_CUSTOM
               : t == LUA_TBOOLEAN && !lua_toboolean(L, -1) ? COLLAPSE_NEVER
                                                            : COLLAPSE_DEFAULT;
    lua_settop(L, top);
    return mode;
}

/* Claims and completes `old` SKIPPED if it may be collapsed into the new request: 1 if it
   was, 0 if not, -1 on error. */
static int maybe_collapse(struct engine *e, const struct cfg_builder *bc, long long brid,
                          long long bsid, json_t **mine, long long old, long long old_bsid,
                          char **cause)
{
    int yes = collapse_fn(e, bc, brid, bsid, old, old_bsid);
    if (yes < 0 && old_bsid == bsid) {
        yes = 1;
    } else if (yes < 0) {
        *mine = *mine != NULL ? *mine : collapse_key(e, bsid, cause);
        json_t *theirs = *mine != NULL ? collapse_key(e, old_bsid, cause) : NULL;
        if (theirs == NULL)
            return -1;
        yes = json_equal(*mine, theirs);
        json_decref(theirs);
    }
    int claimed = yes ? requests_claim(e, old, cause) : 0;
    if (claimed > 0 && requests_complete(e, old, old_bsid, RES_SKIPPED, cause) != 0)
        return -1;
    return claimed;
}

/* A custom collapseRequests sees every older unclaimed request of the builder. */
static int collapse_custom(struct engine *e, const struct cfg_builder *bc, long long builderid,
                           long long brid, long long bsid, char **cause)
{
    struct db_param q[] = {DB_INT(builderid), DB_INT(brid)};
    struct db_res *r = db_query(e->db,
                                "SELECT br.id, br.buildsetid FROM buildrequests br "
                                "WHERE br.complete = 0 AND +br.builderid = ? AND br.id < ? "
                                "AND NOT EXISTS (SELECT 1 FROM buildrequest_claims c "
                                "WHERE c.brid = br.id) ORDER BY br.submitted_at, br.id",
                                q, 2, cause);
    if (r == NULL)
        return -1;
    json_t *mine = NULL;
    int n = 0;
    for (size_t i = 0; i < db_res_rows(r) && n >= 0; i++) {
        int k = maybe_collapse(e, bc, brid, bsid, &mine, db_res_int(r, i, 0), db_res_int(r, i, 1),
                               cause);
        n = k < 0 ? -1 : n + k;
    }
    json_decref(mine);
    db_res_free(r);
    return n;
}

/* Buildbot's default rule: only the indexed requests of the same builder and first stamp. */
static int collapse_default(struct engine *e, const struct cfg_builder *bc, long long builderid,
                            long long brid, long long bsid, char **cause)
{
    char *key = cand_key(e, builderid, bsid, cause);
    if (key == NULL)
        return *cause != NULL ? -1 : 0;
    struct collapse_index *x = e->collapse;
    json_t *mine = NULL;
    int n = 0;
    for (struct cand **p = &x->buckets[bucket(key)]; *p != NULL && n >= 0;) {
        struct cand *c = *p;
        int k = 0, alive = 1;
        if (strcmp(c->key, key) == 0 && c->brid < brid) {
            alive = pending(e, c->brid, cause);
            k = alive > 0 ? maybe_collapse(e, bc, brid, bsid, &mine, c->brid, c->bsid, cause)
                          : alive;
        }
        if (k < 0) {
            n = -1;
        } else if (alive == 0 || k > 0) { /* gone: built, cancelled or collapsed */
            *p = c->next;
            cand_free(c);
            x->n--;
            n += k;
        } else {
            p = &c->next;
        }
    }
    json_decref(mine);
    if (n >= 0)
        cand_add(e, key, brid, bsid);
    else
        free(key);
    return n;
}

static int collapse_one(struct engine *e, long long builderid, long long brid, char **cause)
{
    struct db_res *me = requests_row(e, brid, cause);
    if (me == NULL)
        return -1;
    const struct cfg_builder *bc =
        db_res_rows(me) > 0 ? cfg_find_builder(e->cfg, db_res_text(me, 0, 2)) : NULL;
    long long bsid = db_res_rows(me) > 0 ? db_res_int(me, 0, 0) : 0;
    db_res_free(me);
    if (bc == NULL)
        return 0;
    int mode = collapse_mode(e, bc);
    return mode == COLLAPSE_NEVER    ? 0
           : mode == COLLAPSE_CUSTOM ? collapse_custom(e, bc, builderid, brid, bsid, cause)
                                     : collapse_default(e, bc, builderid, brid, bsid, cause);
}

int requests_collapse(struct engine *e, const json_t *brids, char **cause)
{
    prune(e);
    int total = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)brids, key, v)
    {
        int n = collapse_one(e, atoll(key), (long long)json_integer_value(v), cause);
        if (n < 0)
            return -1;
        total += n;
    }
    return total;
}

int collapse_start(struct engine *e, char **cause)
{
    e->collapse = xcalloc(1, sizeof *e->collapse);
    e->collapse->prune_at = 256;
    struct db_res *r = db_query(e->db,
                                "SELECT br.id, br.buildsetid, br.builderid FROM buildrequests br "
                                "WHERE br.complete = 0 AND NOT EXISTS (SELECT 1 FROM "
                                "buildrequest_claims c WHERE c.brid = br.id) ORDER BY br.id",
                                NULL, 0, cause);
    if (r == NULL)
        return -1;
    for (size_t i = 0; i < db_res_rows(r); i++) {
        char *key = cand_key(e, db_res_int(r, i, 2), db_res_int(r, i, 1), cause);
        if (key != NULL)
            cand_add(e, key, db_res_int(r, i, 0), db_res_int(r, i, 1));
        else if (*cause != NULL)
            break;
    }
    db_res_free(r);
    e->collapse->prune_at = 2 * e->collapse->n + 256;
    return *cause != NULL ? -1 : 0;
}

void collapse_free(struct engine *e)
{
    if (e->collapse == NULL)
        return;
    for (size_t b = 0; b < BUCKETS; b++)
        while (e->collapse->buckets[b] != NULL) {
            struct cand *c = e->collapse->buckets[b];
            e->collapse->buckets[b] = c->next;
            cand_free(c);
        }
    free(e->collapse);
    e->collapse = NULL;
}
