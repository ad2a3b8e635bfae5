/*
 * Buildbot 4.3's experimental codebase resources: /codebases..., their
 * branches and commits, read from the codebases, codebase_branches and
 * codebase_commits tables (the database pages them, as Buildbot's do).
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
static const struct api_source branches_src = {&branch_type, "codebase_branches br", "br.id",
                                               true};

static int get_branches(struct www_req *req, json_t *out, bool *paged, char **cause)
{
    long long id;
    bool one = www_arg_num(&req->args, "branchid", &id);
    if (!one && !www_arg_num(&req->args, "codebaseid", &id))
        return 0;
    struct db_param p = DB_INT(id);
    return api_rows(req, &branches_src, one ? "br.id = ?" : "br.codebaseid = ?", &p, 1, out,
                    paged, cause);
}

static const struct www_field commit_fields[] = {
    {"commitid", WWW_F_INT, "cc.id"},
    {"codebaseid", WWW_F_INT, "cc.codebaseid"},
    {"author", WWW_F_STR, "cc.author"},
    {"committer", WWW_F_STR, "cc.committer"},
    {"comments", WWW_F_STR, "cc.comments"},
    {"when_timestamp", WWW_F_INT, "cc.when_timestamp"},
    {"revision", WWW_F_STR, "cc.revision"},
    {"parent_commitid", WWW_F_INT, "cc.parent_commitid"},
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

const struct www_endpoint api_codebases_eps[] = {
    {"/codebases/n:codebaseid,/projects/n:projectid/codebases/i:codebasename", &codebase_type,
     WWW_SINGLE, get_codebases, NULL},
    {"/codebases", &codebase_type, WWW_COLLECTION, get_codebases, NULL},
    {"/branches/n:branchid", &branch_type, WWW_SINGLE, get_branches, NULL},
    {"/codebases/n:codebaseid/branches", &branch_type, WWW_COLLECTION, get_branches, NULL},
    {"/commits/n:commitid,/codebases/n:codebaseid/commits_by_revision/s:revision", &commit_type,
     WWW_SINGLE, get_commits, NULL},
    {"/codebases/n:codebaseid/commits", &commit_type, WWW_COLLECTION, get_commits, NULL},
    {NULL, NULL, 0, NULL, NULL},
};
