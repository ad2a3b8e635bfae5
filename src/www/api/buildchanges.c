/*
 * The changes of a build (/builds/N/changes), as Buildbot's getChangesForBuild
 * finds them: for each codebase of the build's source stamps, the newest change
 * of that source stamp and its parents, one by one, back to the change the
 * builder's previous successful build on the same repositories, branches and
 * codebases was made of (every ancestor when there is no such build).  A source
 * stamp without a change of its own (a forced build) brings none, and a build
 * of the very change the previous successful build had lists nothing.
 */
#include "www/api/api.h"

#include <stdlib.h>
#include <string.h>

/* Changes listed per codebase (Buildbot walks to the root of a history that has no end in a
   corrupted database: a parent that points back into the chain). */
#define WALK_MAX 1000
/* Source stamps of a build that count (its buildset's, rarely more than a few). */
#define SS_MAX 64
/* Previous successful builds read per query while looking for the one to stop at. */
#define PREV_BATCH 200

struct codebase {
    const char *name; /* into the result it was read from */
    long long from;   /* the change of the build's source stamp, -1: none */
    long long to;     /* the change of the previous build's, -1: none */
};

/* "repository branch codebase" of row i, with None apart from any branch name. */
static char *stamp_key(const struct db_res *r, size_t row, size_t col)
{
    bool none = db_res_null(r, row, col + 1);
    return xasprintf("%s%c%c%s%c%s", db_res_text(r, row, col), 0x1f, none ? 'N' : 'V',
                     none ? "" : db_res_text(r, row, col + 1), 0x1f, db_res_text(r, row, col + 2));
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The set of (repository, branch, codebase) of rows [from, to) of r: sorted, unique. */
static size_t stamp_set(const struct db_res *r, size_t from, size_t to, size_t col, char **keys)
{
    size_t n = 0;
    for (size_t i = from; i < to && n < SS_MAX; i++)
        keys[n++] = stamp_key(r, i, col);
    qsort(keys, n, sizeof *keys, cmp_key);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u > 0 && strcmp(keys[u - 1], keys[i]) == 0)
            free(keys[i]);
        else
            keys[u++] = keys[i];
    }
    return u;
}

static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
}

#define SS_OF_BUILDS                                                                               \
    "FROM builds b JOIN buildrequests br ON br.id = b.buildrequestid "                             \
    "JOIN buildsets bs ON bs.id = br.buildsetid "                                                  \
    "JOIN buildset_sourcestamps bss ON bss.buildsetid = bs.id "                                    \
    "JOIN sourcestamps ss ON ss.id = bss.sourcestampid "

/* A build's source stamps as Buildbot's getSourceStampsForBuild reads them: id, codebase,
   then (repository, branch, codebase) from column 2.  Its query has no ORDER BY: SQLite
   reads them through the (buildsetid, sourcestampid) index, in source stamp order. */
static struct db_res *build_stamps(struct www_req *req, long long buildid, char **cause)
{
    struct db_param p = DB_INT(buildid);
    return api_select(
        req,
        "SELECT ss.id, ss.codebase, ss.repository, ss.branch, ss.codebase " SS_OF_BUILDS
        "WHERE b.id = ? ORDER BY ss.id",
        &p, 1, cause);
}

/* The newest change made with source stamp ssid: its id, -1 if none, -2 on error. */
static long long stamp_change(struct www_req *req, long long ssid, char **cause)
{
    struct db_param p = DB_INT(ssid);
    return api_lookup(req, "SELECT max(changeid) FROM changes WHERE sourcestampid = ?", &p, 1,
                      cause);
}

/* The codebases of the build's stamps in their first order, each with its last stamp's
   change; returns how many have a change, -1 on error. */
static int from_changes(struct www_req *req, const struct db_res *r, struct codebase *cb, size_t *n,
                        char **cause)
{
    int with_change = 0;
    *n = 0;
    for (size_t i = 0; i < db_res_rows(r) && i < SS_MAX; i++) {
        long long ch = stamp_change(req, db_res_int(r, i, 0), cause);
        if (ch == -2)
            return -1;
        const char *name = db_res_text(r, i, 1);
        size_t k = 0;
        while (k < *n && strcmp(cb[k].name, name) != 0)
            k++;
        if (k == *n)
            cb[(*n)++] = (struct codebase){name, -1, -1};
        cb[k].from = ch;
    }
    for (size_t k = 0; k < *n; k++)
        with_change += cb[k].from >= 0;
    return with_change;
}

/* Does build id's set of (repository, branch, codebase) equal keys?  -1 on error. */
static int same_stamps(struct www_req *req, long long id, char *const *keys, size_t n_keys,
                       char **cause)
{
    struct db_res *r = build_stamps(req, id, cause);
    if (r == NULL)
        return -1;
    char *theirs[SS_MAX];
    size_t n = stamp_set(r, 0, db_res_rows(r), 2, theirs);
    db_res_free(r);
    bool same = n == n_keys;
    for (size_t k = 0; same && k < n; k++)
        same = strcmp(theirs[k], keys[k]) == 0;
    free_keys(theirs, n);
    return same;
}

/*
 * Buildbot's getPrevSuccessfulBuild: the builder's builds numbered below this one
 * with results SUCCESS, latest completion first, the first whose source stamps have
 * the same set of (repository, branch, codebase).  Its id, -1 if none, -2 on error.
 */
static long long prev_success(struct www_req *req, long long builderid, long long number,
                              char *const *keys, size_t n_keys, char **cause)
{
    for (long long offset = 0;; offset += PREV_BATCH) {
        struct db_param p[] = {DB_INT(builderid), DB_INT(number), DB_INT(PREV_BATCH),
                               DB_INT(offset)};
        struct db_res *r = api_select(req,
                                      "SELECT id FROM builds WHERE builderid = ? AND number < ? "
                                      "AND results = 0 ORDER BY complete_at DESC, id "
                                      "LIMIT ? OFFSET ?",
                                      p, 4, cause);
        if (r == NULL)
            return -2;
        long long found = -1;
        size_t rows = db_res_rows(r);
        for (size_t i = 0; i < rows && found == -1; i++) {
            int same = same_stamps(req, db_res_int(r, i, 0), keys, n_keys, cause);
            found = same < 0 ? -2 : same ? db_res_int(r, i, 0) : -1;
        }
        db_res_free(r);
        if (found != -1 || rows < PREV_BATCH)
            return found;
    }
}

/* The codebases' changes in the previous build (a stamp without one leaves none). */
static int to_changes(struct www_req *req, long long prev, struct codebase *cb, size_t n,
                      char **cause)
{
    struct db_res *r = build_stamps(req, prev, cause);
    if (r == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < db_res_rows(r) && i < SS_MAX && rc == 0; i++) {
        long long ch = stamp_change(req, db_res_int(r, i, 0), cause);
        for (size_t k = 0; k < n && ch >= 0; k++)
            if (strcmp(cb[k].name, db_res_text(r, i, 1)) == 0)
                cb[k].to = ch;
        rc = ch == -2 ? -1 : 0;
    }
    db_res_free(r);
    return rc;
}

/* Appends change id to out (with its details); its parent in *parent (-1: none). 0 if it
   does not exist, 1 if it does, -1 on error. */
static int add_change(struct www_req *req, long long id, json_t *out, long long *parent,
                      char **cause)
{
    json_t *one = json_array();
    int rc = api_change_rows(req, id, one, cause);
    json_t *c = json_array_get(one, 0);
    if (rc == 0 && c != NULL) {
        json_t *parents = json_object_get(c, "parent_changeids");
        *parent =
            json_array_size(parents) > 0 ? json_integer_value(json_array_get(parents, 0)) : -1;
        json_array_append(out, c);
        rc = 1;
    }
    json_decref(one);
    return rc;
}

/* A codebase's changes: its own, then its parents until the one it was built from. */
static int walk(struct www_req *req, const struct codebase *cb, json_t *out, char **cause)
{
    if (cb->from < 0 || cb->from == cb->to)
        return 0;
    long long id = cb->from, parent = -1;
    for (int n = 0; n < WALK_MAX; n++) {
        int rc = add_change(req, id, out, &parent, cause);
        if (rc <= 0)
            return rc; /* a parent that is gone ends the walk, as in Buildbot */
        if (parent < 0 || parent == cb->to)
            return 0;
        id = parent;
    }
    return 0;
}

int api_build_changes(struct www_req *req, long long buildid, json_t *out, char **cause)
{
    struct db_param p = DB_INT(buildid);
    struct db_res *b =
        api_select(req, "SELECT builderid, number FROM builds WHERE id = ?", &p, 1, cause);
    struct db_res *ss = b != NULL && db_res_rows(b) > 0 ? build_stamps(req, buildid, cause) : NULL;
    struct codebase cb[SS_MAX];
    size_t n = 0;
    char *keys[SS_MAX];
    size_t n_keys = 0;
    int rc = b == NULL || (db_res_rows(b) > 0 && ss == NULL) ? -1 : 0;
    /* a build that does not exist has none (Buildbot fails on it with a 500) */
    if (rc < 0 || ss == NULL)
        goto out;
    int with_change = from_changes(req, ss, cb, &n, cause);
    if (with_change <= 0) {
        rc = with_change;
        goto out;
    }
    n_keys = stamp_set(ss, 0, db_res_rows(ss), 2, keys);
    long long prev =
        prev_success(req, db_res_int(b, 0, 0), db_res_int(b, 0, 1), keys, n_keys, cause);
    rc = prev == -2 ? -1 : prev >= 0 ? to_changes(req, prev, cb, n, cause) : 0;
    for (size_t k = 0; k < n && rc == 0; k++)
        rc = walk(req, &cb[k], out, cause);
out:
    free_keys(keys, n_keys);
    db_res_free(ss);
    db_res_free(b);
    return rc < 0 ? -1 : 0;
}
