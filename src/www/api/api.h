/*
 * Shared by the /api/v2 endpoint files: a resource's SQL source and the
 * helpers of common.c.  Each resource file defines its types and endpoints;
 * routes.c lists the endpoints in Buildbot's order.
 */
#ifndef BBM_WWW_API_H
#define BBM_WWW_API_H

#include "www/internal.h"

#define API_FIELDS(a) (a), UTIL_NELEM(a)

/* Where a resource type's rows come from. */
struct api_source {
    const struct www_rtype *type;
    const char *from;     /* "builds b" */
    const char *tiebreak; /* default order, "b.id" */
    bool db_paged;        /* Buildbot lets the database filter and page this one */
};

/*
 * Selects the type's SQL fields FROM src->from WHERE `where` (with params p),
 * adding the query's filters and, for a collection (`paged` not NULL) whose
 * filters all map to SQL, its order and paging.  Appends objects to `out`.
 */
int api_rows(struct www_req *req, const struct api_source *src, const char *where,
             const struct db_param *p, size_t n, json_t *out, bool *paged, char **cause);
/*
 * api_rows WHERE `where` (one `?`) = id, for an id found by one of the lookups below:
 * nothing for -1 (no such parent), an error for -2.
 */
int api_rows_by_id(struct www_req *req, const struct api_source *src, const char *where,
                   long long id, json_t *out, bool *paged, char **cause);
/* In a result sorted on its first column (an id), the first row whose id is >= id: rows
   of one parent are found without a scan per parent. */
size_t api_first_row(const struct db_res *r, long long id);
struct db_res *api_select(struct www_req *req, const char *sql, const struct db_param *p, size_t n,
                          char **cause);
/* First column of the first row; -1 if there is no row, -2 on error (*cause). */
long long api_lookup(struct www_req *req, const char *sql, const struct db_param *p, size_t n,
                     char **cause);
/* Ids named by the path (by id, or by name/number through their parents); -1 if none. */
long long api_builderid(struct www_req *req, char **cause);
long long api_buildid(struct www_req *req, char **cause);
long long api_stepid(struct www_req *req, char **cause);
long long api_logid(struct www_req *req, char **cause);
/* Build properties {"name": [value, source]}; names NULL = all, "*" = all. */
json_t *api_build_properties(struct www_req *req, long long buildid, char *const *names, size_t n,
                             char **cause);
/* Sets "properties" on builds [from, from + n) of `builds` (n <= API_PROPS_IDS), one query. */
#define API_PROPS_IDS 200
int api_builds_properties(struct www_req *req, json_t *builds, size_t from, size_t n,
                          char *const *names, size_t n_names, char **cause);
/* Properties stored as JSON [value, source] pairs: sql selects (name, pair) for one id. */
json_t *api_pair_properties(struct www_req *req, const char *sql, long long id, char *const *names,
                            size_t n, char **cause);
json_t *api_int_list(struct www_req *req, const char *sql, long long id, char **cause);
long long api_obj_int(json_t *o, const char *key);
/* The smallest and largest `key` of the objects in `list` (false if it is empty): the rows
   linked to one batch of a collection are read without reading every other's. */
bool api_id_range(json_t *list, const char *key, struct db_param range[2]);

/*
 * The first common ancestor of two commits and the commits from it to each,
 * as Buildbot 4.3 computes it: 1 with *graph {"common", "to1", "to2"}, 0 if
 * none, -1 on error (codebases.c).
 */
int api_commit_graph(struct www_req *req, long long id1, long long id2, json_t **graph,
                     char **cause);

/* Change id with its files, properties and source stamp appended to `out` (nothing if it
   does not exist); -1 on error (changes.c). */
int api_change_rows(struct www_req *req, long long id, json_t *out, char **cause);
/* The changes of a build as Buildbot lists them, appended to `out`; -1 on error
   (buildchanges.c). */
int api_build_changes(struct www_req *req, long long buildid, json_t *out, char **cause);

/* Buildbot's description of the type named by `plural` (JSON text) and its name in *type;
   NULL if it has none (spec_types.c). */
const char *api_type_spec(const char *plural, const char **type);

/* Endpoints, by resource file. */
extern const struct www_endpoint api_builders_eps[], api_builds_eps[], api_steps_eps[],
    api_logs_eps[], api_workers_eps[], api_masters_eps[], api_requests_eps[], api_changes_eps[],
    api_misc_eps[], api_codebases_eps[];

#endif
