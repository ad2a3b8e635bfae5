/*
 * The git step, as Buildbot 4.3's Git source step drives the worker: every
 * git command is a `shell` command run in the step's workdir (SIGTERM a
 * second before the kill), the worker's directory is inspected with `stat`
 * and `listdir` and removed with `rmdir`.  Modes and methods:
 *
 *   incremental      fetch + checkout when the workdir is a repository,
 *                    a clone when it is empty, rmdir + clone otherwise
 *   full/fresh       `git clean -f -f -d -x`, then fetch + checkout
 *   full/clean       `git clean -f -f -d`, then fetch + checkout
 *   full/clobber     rmdir + clone
 *   full/copy        incremental in `source`, then cpdir to the workdir
 *
 * then `git rev-parse HEAD` sets got_revision.  The branch and revision come
 * from the build's source stamp for the step's codebase, else the step's own
 * branch.  Each stage is a function the previous command's completion calls.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct git {
    char *repourl;
    char *branch;   /* "HEAD" when none */
    char *revision; /* NULL: the branch's head */
    char *mode, *method;
    char *workdir;       /* where the repository goes */
    char *final_workdir; /* copy: where it is copied to */
    char *codebase;
    json_t *filters;
    bool progress, clobber_on_failure, retry_fetch, fetch_retried, supports_filters;
    void (*after_fetch)(struct step *s); /* fetch: what a success leads to */
};

static void got_revision(struct step *s);
static void do_fetch(struct step *s);
static void do_clone(struct step *s);
static void clobber(struct step *s);

void git_free(struct step *s)
{
    struct git *g = s->git;
    if (g == NULL)
        return;
    free(g->repourl);
    free(g->branch);
    free(g->revision);
    free(g->mode);
    free(g->method);
    free(g->workdir);
    free(g->final_workdir);
    free(g->codebase);
    json_decref(g->filters);
    free(g);
    s->git = NULL;
}

/* A git command line: "git" and the words given (NULL-terminated), as a JSON list. */
static json_t *git_words(const char *first, ...)
{
    json_t *cmd = json_pack("[s]", "git");
    va_list ap;
    va_start(ap, first);
    for (const char *w = first; w != NULL; w = va_arg(ap, const char *))
        json_array_append_new(cmd, json_string(w));
    va_end(ap);
    return cmd;
}

/* Runs `git ...` (taking `cmd`) in the repository's directory, then `then`. */
static void vc(struct step *s, json_t *cmd, void (*then)(struct step *s))
{
    char *cause = NULL;
    struct pb_value *args = step_shell_args(s, cmd, pb_int(1), &cause);
    if (args != NULL)
        pb_dict_set(args, "workdir", pb_text(s->git->workdir));
    json_decref(cmd);
    if (args == NULL) {
        step_fail(s, RES_EXCEPTION, cause);
        free(cause);
        return;
    }
    step_remote(s, "shell", args, then);
}

static bool ok(const struct step *s)
{
    return s->have_rc && s->rc == 0;
}

static void fail(struct step *s)
{
    step_finish(s, RES_FAILURE);
}

/* A directory command (rmdir, listdir, stat) with Buildbot's logEnviron False. */
static void dir_command(struct step *s, const char *name, const char *key, const char *path,
                        void (*then)(struct step *s))
{
    struct pb_value *args = pb_dict();
    pb_dict_set(args, key, pb_text(path));
    pb_dict_set(args, "logEnviron", pb_bool(false));
    step_remote(s, name, args, then);
}

/* ------------------------------------------------------------ fetch */

static void renamed(struct step *s)
{
    s->git->after_fetch(s);
}

static void checked_out(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s)) {
        if (g->retry_fetch && !g->fetch_retried) {
            g->fetch_retried = true;
            do_fetch(s);
        } else if (g->clobber_on_failure) {
            clobber(s);
        } else {
            fail(s);
        }
        return;
    }
    if (strcmp(g->branch, "HEAD") != 0) /* errors ignored, as Buildbot does */
        vc(s, git_words("checkout", "-B", g->branch, NULL), renamed);
    else
        g->after_fetch(s);
}

static void fetched(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s)) {
        checked_out(s); /* the same fallbacks */
        return;
    }
    vc(s, git_words("checkout", "-f", g->revision != NULL ? g->revision : "FETCH_HEAD", NULL),
       checked_out);
}

static void do_fetch(struct step *s)
{
    struct git *g = s->git;
    json_t *cmd = git_words("fetch", "-f", NULL);
    if (g->progress)
        json_array_append_new(cmd, json_string("--progress"));
    json_array_append_new(cmd, json_string(g->repourl));
    json_array_append_new(cmd, json_string(g->branch));
    vc(s, cmd, fetched);
}

static void revision_known(struct step *s)
{
    if (ok(s))
        fetched(s); /* the revision is there: no fetch */
    else
        do_fetch(s);
}

static void fetch(struct step *s, void (*then)(struct step *s))
{
    struct git *g = s->git;
    g->after_fetch = then;
    if (g->revision != NULL)
        vc(s, git_words("cat-file", "-e", g->revision, NULL), revision_known);
    else
        do_fetch(s);
}

/* ------------------------------------------------------------ clone */

static void cloned_checkout(struct step *s)
{
    if (!ok(s)) {
        if (s->git->clobber_on_failure && !s->git->fetch_retried) {
            s->git->fetch_retried = true; /* one clobber, not a loop */
            clobber(s);
        } else {
            fail(s);
        }
        return;
    }
    s->git->after_fetch(s);
}

static void cloned(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s)) {
        cloned_checkout(s);
        return;
    }
    if (util_startswith(g->branch, "refs/")) {
        fetch(s, g->after_fetch);
        return;
    }
    if (g->revision != NULL)
        vc(s, git_words("checkout", "-f", g->revision, NULL), cloned_checkout);
    else
        g->after_fetch(s);
}

static void do_clone(struct step *s)
{
    struct git *g = s->git;
    json_t *cmd = git_words("clone", NULL);
    if (strcmp(g->branch, "HEAD") != 0) {
        if (util_startswith(g->branch, "refs/")) {
            json_array_append_new(cmd, json_string("--no-checkout"));
        } else {
            json_array_append_new(cmd, json_string("--branch"));
            json_array_append_new(cmd, json_string(g->branch));
        }
    }
    size_t i;
    json_t *f;
    json_array_foreach(g->supports_filters ? g->filters : NULL, i, f)
    {
        json_array_append_new(cmd, json_string("--filter"));
        json_array_append(cmd, f);
    }
    json_array_append_new(cmd, json_string(g->repourl));
    json_array_append_new(cmd, json_string("."));
    if (g->progress)
        json_array_append_new(cmd, json_string("--progress"));
    vc(s, cmd, cloned);
}

static void removed(struct step *s)
{
    if (!ok(s)) {
        step_fail(s, RES_EXCEPTION, "Failed to delete directory");
        return;
    }
    do_clone(s);
}

static void clobber(struct step *s)
{
    dir_command(s, "rmdir", "dir", s->git->workdir, removed);
}

/* ------------------------------------------------------------ modes */

static void cleaned(struct step *s)
{
    struct git *g = s->git;
    if (ok(s))
        fetch(s, g->after_fetch);
    else if (util_streq(g->method, "clean"))
        fail(s);
    else
        clobber(s); /* fresh: a clean that fails means a new clone */
}

/* _sourcedirIsUpdatable: listdir's answer says clone, update or clobber. */
static void updatable(struct step *s)
{
    struct git *g = s->git;
    bool has_git = false;
    size_t i;
    json_t *f;
    json_array_foreach(s->files, i, f)
    {
        has_git = has_git || util_streq(json_string_value(f), ".git");
    }
    if (s->files == NULL || json_array_size(s->files) == 0)
        do_clone(s);
    else if (!has_git)
        clobber(s);
    else if (util_streq(g->mode, "incremental") || util_streq(g->method, "copy"))
        fetch(s, g->after_fetch);
    else
        vc(s,
           util_streq(g->method, "clean") ? git_words("clean", "-f", "-f", "-d", NULL)
                                          : git_words("clean", "-f", "-f", "-d", "-x", NULL),
           cleaned);
}

static void copied(struct step *s)
{
    if (ok(s))
        got_revision(s);
    else
        fail(s);
}

/* full/copy: the repository in `source` is copied over a fresh workdir. */
static void copy_over(struct step *s)
{
    struct git *g = s->git;
    struct pb_value *args = pb_dict();
    pb_dict_set(args, "fromdir", pb_text(g->workdir));
    pb_dict_set(args, "todir", pb_text(g->final_workdir));
    pb_dict_set(args, "logEnviron", pb_bool(false));
    pb_dict_set(args, "timeout", pb_int(1200));
    step_remote(s, "cpdir", args, copied);
}

static void old_workdir_removed(struct step *s)
{
    dir_command(s, "listdir", "dir", s->git->workdir, updatable);
}

static void start_mode(struct step *s)
{
    struct git *g = s->git;
    if (util_streq(g->method, "clobber")) {
        g->after_fetch = got_revision;
        clobber(s);
    } else if (util_streq(g->method, "copy")) {
        g->after_fetch = copy_over;
        g->final_workdir = g->workdir;
        g->workdir = xstrdup("source");
        dir_command(s, "rmdir", "dir", g->final_workdir, old_workdir_removed);
    } else {
        g->after_fetch = got_revision;
        dir_command(s, "listdir", "dir", g->workdir, updatable);
    }
}

static void patched_cleaned(struct step *s)
{
    if (!ok(s))
        fail(s);
    else
        start_mode(s);
}

static void patched(struct step *s)
{
    if (ok(s)) /* a .buildbot-patched tree is cleaned first */
        vc(s, git_words("clean", "-f", "-f", "-d", "-x", NULL), patched_cleaned);
    else
        start_mode(s);
}

static void versioned(struct step *s)
{
    struct git *g = s->git;
    int major = 0, minor = 0, patch = 0;
    char *text =
        s->captured.data != NULL ? xstrndup(s->captured.data, s->captured.len) : xstrdup("");
    int n = sscanf(text, "git version %d.%d.%d", &major, &minor, &patch);
    free(text);
    if (!ok(s) || n < 1) {
        step_fail(s, RES_EXCEPTION, "git is not installed on worker");
        return;
    }
    g->supports_filters = major > 2 || (major == 2 && minor >= 27);
    s->collect = false;
    char *path = xasprintf("%s/.buildbot-patched", g->workdir);
    dir_command(s, "stat", "file", path, patched);
    free(path);
}

/* ------------------------------------------------------------ the end */

static void parsed(struct step *s)
{
    struct git *g = s->git;
    size_t len = s->captured.len;
    const char *rev = s->captured.data != NULL ? s->captured.data : "";
    while (len > 0 && strchr(" \t\r\n", rev[len - 1]) != NULL)
        len--;
    if (!ok(s) || len != 40) {
        fail(s);
        return;
    }
    json_t *value = json_stringn(rev, len);
    if (*g->codebase != '\0') { /* updateSourceProperty: by codebase */
        const json_t *old = props_get(&s->b->props, "got_revision");
        json_t *d = json_is_object(old) ? json_deep_copy(old) : json_object();
        json_object_set_new(d, g->codebase, value);
        value = d;
    }
    props_set(&s->b->props, "got_revision", value, "Git");
    step_finish(s, RES_SUCCESS);
}

static void got_revision(struct step *s)
{
    struct git *g = s->git;
    if (g->final_workdir != NULL) { /* copy: the revision of the copy */
        free(g->workdir);
        g->workdir = g->final_workdir;
        g->final_workdir = NULL;
    }
    s->collect = true;
    vc(s, git_words("rev-parse", "HEAD", NULL), parsed);
}

/* ------------------------------------------------------------ start */

static char *text_param(struct step *s, const char *key, const char *dflt, char **cause)
{
    json_t *v = NULL;
    if (step_render(s, key, &v, cause) != 0)
        return NULL;
    char *out = v == NULL || json_is_null(v) ? (dflt != NULL ? xstrdup(dflt) : NULL) : props_str(v);
    json_decref(v);
    if (out == NULL && dflt == NULL && *cause == NULL)
        return NULL;
    return out;
}

static const json_t *stamp(const struct step *s, const char *codebase)
{
    size_t i;
    const json_t *ss;
    json_array_foreach(s->b->sourcestamps, i, ss)
    {
        if (util_streq(json_string_value(json_object_get(ss, "codebase")), codebase))
            return ss;
    }
    return NULL;
}

static int setup(struct step *s, char **cause)
{
    struct git *g = s->git = xcalloc(1, sizeof *g);
    g->repourl = text_param(s, "repourl", NULL, cause);
    if (g->repourl == NULL)
        return *cause != NULL ? -1 : util_cause(cause, "the git step needs a repourl");
    g->codebase = text_param(s, "codebase", "", cause);
    g->mode = text_param(s, "mode", "incremental", cause);
    g->method = text_param(s, "method", NULL, cause);
    g->workdir = text_param(s, "workdir", "build", cause);
    char *branch = text_param(s, "branch", "HEAD", cause);
    if (g->codebase == NULL || g->mode == NULL || g->workdir == NULL || branch == NULL) {
        free(branch);
        return -1;
    }
    if (!util_streq(g->mode, "incremental") && !util_streq(g->mode, "full")) {
        free(branch);
        return util_cause(cause, "Git: mode must be full or incremental");
    }
    if (util_streq(g->mode, "incremental")) {
        free(g->method);
        g->method = NULL;
    } else if (g->method == NULL) {
        g->method = xstrdup("fresh");
    }
    /* the source stamp's branch and revision, unless alwaysUseLatest */
    lua_State *L = s->b->cfg->lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
    lua_getfield(L, -1, "alwaysUseLatest");
    bool latest = lua_toboolean(L, -1);
    lua_getfield(L, -2, "progress");
    g->progress = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_getfield(L, -3, "clobberOnFailure");
    g->clobber_on_failure = lua_toboolean(L, -1);
    lua_getfield(L, -4, "retryFetch");
    g->retry_fetch = lua_toboolean(L, -1);
    lua_pop(L, 5);
    const json_t *ss = latest ? NULL : stamp(s, g->codebase);
    const char *ss_branch = json_string_value(json_object_get(ss, "branch"));
    const char *ss_rev = json_string_value(json_object_get(ss, "revision"));
    g->branch = ss_branch != NULL && *ss_branch != '\0' ? xstrdup(ss_branch) : xstrdup(branch);
    g->revision = ss_rev != NULL && *ss_rev != '\0' ? xstrdup(ss_rev) : NULL;
    free(branch);
    /* Buildbot's GitHub step builds GitHub's merge commit of a pull request: on a branch
       ending in /merge it ignores the revision (the pull request's head) */
    size_t n = strlen(g->branch);
    if (util_streq(s->kind, "step.github") && n >= 6 && strcmp(g->branch + n - 6, "/merge") == 0) {
        free(g->revision);
        g->revision = NULL;
    }
    json_t *filters = NULL;
    if (step_render(s, "filters", &filters, cause) != 0)
        return -1;
    g->filters = json_is_string(filters) ? json_pack("[o]", filters) : filters;
    return 0;
}

bool git_kind(const char *kind)
{
    return util_streq(kind, "step.git") || util_streq(kind, "step.github");
}

void git_run(struct step *s)
{
    char *cause = NULL;
    if (setup(s, &cause) != 0) {
        step_fail(s, RES_EXCEPTION, cause != NULL ? cause : "bad git step parameters");
        free(cause);
        return;
    }
    s->collect = true;
    vc(s, git_words("--version", NULL), versioned);
}
