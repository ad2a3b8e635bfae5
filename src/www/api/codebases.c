/*
 * Buildbot 4.3's experimental codebase resources: /codebases..., their
 * branches and commits, read from the codebases, codebase_branches and
 * codebase_commits tables (the database pages them, as Buildbot's do), and
 * the commit graph between two commits.
 */
#include "www/api/api.h"

static const struct www_field codebase_fields[] = {
    {"codebaseid", WWW_F_INT, "c.id"},
    {"projectid", WWW_F_INT, "c.projectid"},
    {"name", WWW_F_STR, "c.name"},
    {"slug", WWW_F_STR, "c.slug"},
};
static const struct www_rtype codebase_type = {"codebases", API_FIELDS(codebase_fields)};
static const struct api_source codebases_src = {&codebase_type, "codebases c", "c.id", true};

static int get_codebases(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    const char *name = www_arg_str(&req->args, "codebasename");
    if (www_arg_num(&req->args, "codebaseid", &id)) {
        struct db_param p = DB_INT(id);
        return api_rows(req, &codebases_src, "c.id = ?", &p, 1, out, paged, cause);
    }
    if (name != NULL && www_arg_num(&req->args, "projectid", &id)) {
        struct db_param p[] = {DB_INT(id), DB_TEXT(name)};
        return api_rows(req, &codebases_src, "c.projectid = ? AND c.name = ?", p, 2, out, paged,
                        cause);
    }
    return api_rows(req, &codebases_src, NULL, NULL, 0, out, paged, cause);
}

static const struct www_field branch_fields[] = {
    {"branchid", WWW_F_INT, "br.id"},
    {"codebaseid", WWW_F_INT, "br.codebaseid"},
    {"name", WWW_F_STR, "br.name"},
    {"commitid", WWW_F_INT, "br.commitid"},
    {"last_timestamp", WWW_F_INT, "br.last_timestamp"},
};
static const struct www_rtype branch_type = {"branches", API_FIELDS(branch_fields)};
static const struct api_source branches_src = {&branch_type, "codebase_branches br", "br.id", true};

static int get_branches(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    bool one = www_arg_num(&req->args, "branchid", &id);
    if (!one && !www_arg_num(&req->args, "codebaseid", &id))
        return 0;
    struct db_param p = DB_INT(id);
    return api_rows(req, &branches_src, one ? "br.id = ?" : "br.codebaseid = ?", &p, 1, out, paged,
                    cause);
}

static const struct www_field commit_fields[] = {
    {"commitid", WWW_F_INT, "cc.id"},       {"codebaseid", WWW_F_INT, "cc.codebaseid"},
    {"author", WWW_F_STR, "cc.author"},     {"committer", WWW_F_STR, "cc.committer"},
    {"comments", WWW_F_STR, "cc.comments"}, {"when_timestamp", WWW_F_INT, "cc.when_timestamp"},
    {"revision", WWW_F_STR, "cc.revision"}, {"parent_commitid", WWW_F_INT, "cc.parent_commitid"},
};
static const struct www_rtype commit_type = {"commits", API_FIELDS(commit_fields)};
static const struct api_source commits_src = {&commit_type, "codebase_commits cc", "cc.id", true};

static int get_commits(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id, codebase;
    const char *revision = www_arg_str(&req->args, "revision");
    if (www_arg_num(&req->args, "commitid", &id)) {
        struct db_param p = DB_INT(id);
        return api_rows(req, &commits_src, "cc.id = ?", &p, 1, out, paged, cause);
    }
    if (!www_arg_num(&req->args, "codebaseid", &codebase))
        return 0;
    struct db_param p[] = {DB_INT(codebase), DB_TEXT(revision)};
    return api_rows(req, &commits_src,
                    revision != NULL ? "cc.codebaseid = ? AND cc.revision = ?"
                                     : "cc.codebaseid = ?",
                    p, revision != NULL ? 2 : 1, out, paged, cause);
}

/* The parent of commit `id`: 1 with *parent (0 = none), 0 if there is no such commit. */
static int parent_of(struct www_req *req, long long id, long long *parent, char **cause)
{
    struct db_param p = DB_INT(id);
    struct db_res *r =
        api_select(req, "SELECT parent_commitid FROM codebase_commits WHERE id = ?", &p, 1, cause);
    if (r == NULL)
        return -1;
    int found = db_res_rows(r) > 0;
    *parent = found && !db_res_null(r, 0, 0) ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    return found;
}

#define GRAPH_DEPTH 100

/* Appends ids[from], ids[from - 1], ... ids[0] (Python's ids[from::-1]) to list. */
static json_t *reversed_from(const long long *ids, size_t n, size_t from)
{
    json_t *list = json_array();
    for (size_t i = from < n ? from + 1 : n; i-- > 0;)
        json_array_append_new(list, json_integer(ids[i]));
    return list;
}

static long long index_of(const long long *ids, size_t n, long long id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return (long long)i;
    return -1;
}

/* Walks up to GRAPH_DEPTH parents of both commits, as Buildbot 4.3 does, to their first
   common one: 1 with *graph {common, to1, to2}, 0 if there is none, -1 on error. */
int api_commit_graph(struct www_req *req, long long id1, long long id2, json_t **graph,
                     char **cause)
{
    long long known1[GRAPH_DEPTH + 1] = {id1}, known2[GRAPH_DEPTH + 1] = {id2}, parent;
    size_t n1 = 1, n2 = 1;
    if (id1 == id2) {
        int found = parent_of(req, id1, &parent, cause);
        if (found > 0)
            *graph = json_pack("{sIs[I]s[I]}", "common", id1, "to1", id1, "to2", id1);
        return found;
    }
    for (int i = 0; i < GRAPH_DEPTH; i++) {
        int found = parent_of(req, known1[n1 - 1], &parent, cause);
        if (found < 0)
            return -1;
        if (found == 0 || parent == 0)
            break;
        known1[n1++] = parent;
    }
    long long at = index_of(known1, n1, id2);
    if (at >= 0) {
        /* Buildbot's known1[at + 1::-1]: from the common commit's parent, if any */
        *graph = json_pack("{sIsos[I]}", "common", id2, "to1",
                           reversed_from(known1, n1, (size_t)at + 1), "to2", id2);
        return 1;
    }
    for (int i = 0; i < GRAPH_DEPTH; i++) {
        int found = parent_of(req, known2[n2 - 1], &parent, cause);
        if (found < 0)
            return -1;
        if (found == 0 || parent == 0)
            break;
        known2[n2++] = parent;
        at = index_of(known1, n1, parent);
        if (at >= 0) {
            *graph = json_pack("{sIsoso}", "common", parent, "to1",
                               reversed_from(known1, n1, (size_t)at), "to2",
                               reversed_from(known2, n2, n2 - 1));
            return 1;
        }
    }
    return 0;
}

static const struct www_field graph_fields[] = {
    {"common", WWW_F_INT, NULL},
    {"to1", WWW_F_INTS, NULL},
    {"to2", WWW_F_INTS, NULL},
};
static const struct www_rtype graph_type = {"commit_graphs", API_FIELDS(graph_fields)};

static int get_graph(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    (void)paged;
    long long id1 = 0, id2 = 0;
    www_arg_num(&req->args, "commitid1", &id1);
    www_arg_num(&req->args, "commitid2", &id2);
    json_t *graph = NULL;
    int rc = api_commit_graph(req, id1, id2, &graph, cause);
    if (rc > 0)
        json_array_append_new(out, graph);
    return rc < 0 ? -1 : 0;
}

const struct www_endpoint api_codebases_eps[] = {
    {"/codebases/n:codebaseid,/projects/n:projectid/codebases/i:codebasename", &codebase_type,
     WWW_SINGLE, get_codebases, NULL, NULL},
    {"/codebases", &codebase_type, WWW_COLLECTION, get_codebases, NULL, NULL},
    {"/branches/n:branchid", &branch_type, WWW_SINGLE, get_branches, NULL, NULL},
    {"/codebases/n:codebaseid/branches", &branch_type, WWW_COLLECTION, get_branches, NULL, NULL},
    /* two endpoints to Buildbot: each names only its own pattern in a 404 */
    {"/commits/n:commitid", &commit_type, WWW_SINGLE, get_commits, NULL, NULL},
    {"/codebases/n:codebaseid/commits_by_revision/s:revision", &commit_type, WWW_SINGLE,
     get_commits, NULL, NULL},
    {"/codebases/n:codebaseid/commits", &commit_type, WWW_COLLECTION, get_commits, NULL, NULL},
    {"/codebases/n:codebaseid/commit_range/n:commitid1/n:commitid2/commits_common_parent",
     &graph_type, WWW_SINGLE, get_graph, NULL, NULL},
    {NULL, NULL, 0, NULL, NULL, NULL},
};
