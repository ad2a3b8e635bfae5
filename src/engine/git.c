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
 * then `git rev-parse HEAD` sets got_revision, and `git describe` sets
 * commit-description when getDescription asks.  `config` puts `-c name=value`
 * on every git command, `shallow` gives clones and fetches a `--depth`,
 * `submodules` initialises, syncs, updates (and for fresh/clean cleans) the
 * submodules where Buildbot does.  The branch and revision come from the
 * build's source stamp for the step's codebase, else the step's own branch.
 * Each stage is a function the previous command's completion calls; the
 * stages that Buildbot calls from several places (a fetch, a full clone) take
 * what follows their success and their failure.
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
    char *origin;      /* clone --origin, or NULL */
    json_t *filters;   /* clone --filter */
    json_t *config;    /* the "-c", "name=value" words after "git" */
    json_t *describe;  /* getDescription: the `git describe` words; NULL: none */
    long long shallow; /* clones and fetches with --depth this; 0: whole histories */
    bool submodules;
    bool progress, clobber_on_failure, retry_fetch, fetch_retried;
    bool supports_filters, supports_submodule_force, supports_submodule_checkout;
    void (*fetch_then)(struct step *s), (*fetch_failed)(struct step *s); /* _fetch's ends */
    void (*clone_then)(struct step *s), (*clone_failed)(struct step *s); /* _fullClone's */
    void (*update_then)(struct step *s); /* what a fetch or clone with fallbacks leads to */
    void (*next)(struct step *s);        /* after the mode: got_revision, or copy_over */
};

static void got_revision(struct step *s);
static void do_clone(struct step *s);
static void clobber(struct step *s, void (*then)(struct step *s));
static void submodules_update(struct step *s);

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
    free(g->origin);
    json_decref(g->filters);
    json_decref(g->config);
    json_decref(g->describe);
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

static void add_word(json_t *cmd, const char *w)
{
    json_array_append_new(cmd, json_string(w));
}

/* `--depth N` when the step is shallow. */
static void add_depth(const struct git *g, json_t *cmd)
{
    if (g->shallow <= 0)
        return;
    char depth[32];
    snprintf(depth, sizeof depth, "%lld", g->shallow);
    add_word(cmd, "--depth");
    add_word(cmd, depth);
}

/* Runs `git ...` (taking `cmd`, the step's `-c` options put after "git") in the
   repository's directory, then `then`. */
static void vc(struct step *s, json_t *cmd, void (*then)(struct step *s))
{
    char *cause = NULL;
    for (size_t i = json_array_size(s->git->config); i > 0; i--)
        json_array_insert(cmd, 1, json_array_get(s->git->config, i - 1));
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

static void checked_out(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s))
        g->fetch_failed(s);
    else if (strcmp(g->branch, "HEAD") != 0) /* errors ignored, as Buildbot does */
        vc(s, git_words("checkout", "-B", g->branch, NULL), g->fetch_then);
    else
        g->fetch_then(s);
}

static void check_out(struct step *s)
{
    struct git *g = s->git;
    vc(s, git_words("checkout", "-f", g->revision != NULL ? g->revision : "FETCH_HEAD", NULL),
       checked_out);
}

static void fetched(struct step *s)
{
    if (ok(s))
        check_out(s);
    else
        s->git->fetch_failed(s);
}

static void do_fetch(struct step *s)
{
    struct git *g = s->git;
    json_t *cmd = git_words("fetch", "-f", NULL);
    add_depth(g, cmd);
    if (g->progress)
        add_word(cmd, "--progress");
    add_word(cmd, g->repourl);
    add_word(cmd, g->branch);
    vc(s, cmd, fetched);
}

static void revision_known(struct step *s)
{
    if (ok(s))
        check_out(s); /* the revision is there: no fetch */
    else
        do_fetch(s);
}

/* _fetch: the branch fetched (unless the revision is there) and checked out. */
static void fetch(struct step *s, void (*then)(struct step *s), void (*failed)(struct step *s))
{
    struct git *g = s->git;
    g->fetch_then = then;
    g->fetch_failed = failed;
    if (g->revision != NULL)
        vc(s, git_words("cat-file", "-e", g->revision, NULL), revision_known);
    else
        do_fetch(s);
}

/* _fetchOrFallback's fallbacks: the fetch once more (retryFetch), then a clobber
   (clobberOnFailure). */
static void fetch_fallback(struct step *s)
{
    struct git *g = s->git;
    if (g->retry_fetch && !g->fetch_retried) {
        g->fetch_retried = true;
        fetch(s, g->update_then, fetch_fallback);
    } else if (g->clobber_on_failure) {
        clobber(s, g->update_then);
    } else {
        fail(s);
    }
}

static void fetch_or_fallback(struct step *s, void (*then)(struct step *s))
{
    s->git->update_then = then;
    fetch(s, then, fetch_fallback);
}

/* ------------------------------------------------------------ clone */

/* _fullClone's outcome: what a shallow clone fails on fails the step. */
static void clone_done(struct step *s)
{
    struct git *g = s->git;
    if (ok(s))
        g->clone_then(s);
    else if (g->shallow > 0)
        fail(s);
    else
        g->clone_failed(s);
}

static void init_submodules(struct step *s)
{
    json_t *cmd = git_words("submodule", "update", "--init", "--recursive", NULL);
    add_depth(s->git, cmd);
    vc(s, cmd, clone_done);
}

static void revision_checked_out(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s) && g->shallow > 0)
        fail(s);
    else if (g->submodules) /* its result is the clone's, as in Buildbot */
        init_submodules(s);
    else
        clone_done(s);
}

static void clone_checkout(struct step *s)
{
    struct git *g = s->git;
    if (g->revision != NULL)
        vc(s, git_words("checkout", "-f", g->revision, NULL), revision_checked_out);
    else if (g->submodules)
        init_submodules(s);
    else
        g->clone_then(s);
}

static void cloned(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s))
        clone_done(s);
    else if (util_startswith(g->branch, "refs/")) /* a ref `clone --branch` cannot take */
        fetch(s, clone_checkout, fail);
    else
        clone_checkout(s);
}

static void do_clone(struct step *s)
{
    struct git *g = s->git;
    json_t *cmd = git_words("clone", NULL);
    if (strcmp(g->branch, "HEAD") != 0) {
        if (util_startswith(g->branch, "refs/")) {
            add_word(cmd, "--no-checkout");
        } else {
            add_word(cmd, "--branch");
            add_word(cmd, g->branch);
        }
    }
    add_depth(g, cmd);
    if (g->origin != NULL) {
        add_word(cmd, "--origin");
        add_word(cmd, g->origin);
    }
    size_t i;
    json_t *f;
    json_array_foreach(g->supports_filters ? g->filters : NULL, i, f)
    {
        add_word(cmd, "--filter");
        json_array_append(cmd, f);
    }
    add_word(cmd, g->repourl);
    add_word(cmd, ".");
    if (g->progress)
        add_word(cmd, "--progress");
    vc(s, cmd, cloned);
}

/* _fullClone: clone, the revision checked out, the submodules initialised. */
static void full_clone(struct step *s, void (*then)(struct step *s), void (*failed)(struct step *s))
{
    s->git->clone_then = then;
    s->git->clone_failed = failed;
    do_clone(s);
}

/* _fullCloneOrFallback: a failed clone is clobbered once (clobberOnFailure). */
static void clone_fallback(struct step *s)
{
    if (s->git->clobber_on_failure)
        clobber(s, s->git->update_then);
    else
        fail(s);
}

static void clone_or_fallback(struct step *s, void (*then)(struct step *s))
{
    s->git->update_then = then;
    full_clone(s, then, clone_fallback);
}

static void removed(struct step *s)
{
    if (!ok(s)) {
        step_fail(s, RES_EXCEPTION, "Failed to delete directory");
        return;
    }
    do_clone(s); /* clone_then and clone_failed are set */
}

/* clobber: rmdir, then a full clone without fallback. */
static void clobber(struct step *s, void (*then)(struct step *s))
{
    s->git->clone_then = then;
    s->git->clone_failed = fail;
    dir_command(s, "rmdir", "dir", s->git->workdir, removed);
}

/* ------------------------------------------------------------ submodules */

static void top_cleaned(struct step *s)
{
    if (ok(s))
        s->git->next(s);
    else
        fail(s);
}

static json_t *clean_words(const struct git *g)
{
    return util_streq(g->method, "fresh") ? git_words("clean", "-f", "-f", "-d", "-x", NULL)
                                          : git_words("clean", "-f", "-f", "-d", NULL);
}

static void submodules_cleaned(struct step *s)
{
    if (ok(s))
        vc(s, clean_words(s->git), top_cleaned); /* what the submodules' clean left */
    else
        fail(s);
}

static void submodules_updated(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s)) {
        fail(s);
    } else if (g->method == NULL || util_streq(g->method, "copy")) { /* incremental */
        g->next(s);
    } else {
        const char *clean =
            util_streq(g->method, "fresh") ? "git clean -f -f -d -x" : "git clean -f -f -d";
        vc(s, git_words("submodule", "foreach", "--recursive", clean, NULL), submodules_cleaned);
    }
}

static void submodules_synced(struct step *s)
{
    struct git *g = s->git;
    if (!ok(s)) {
        fail(s);
        return;
    }
    json_t *cmd = git_words("submodule", "update", "--init", "--recursive", NULL);
    if (g->supports_submodule_force)
        add_word(cmd, "--force");
    if (g->supports_submodule_checkout)
        add_word(cmd, "--checkout");
    vc(s, cmd, submodules_updated);
}

/* After a fetch (or fresh's clone): sync, update and, for fresh and clean, clean. */
static void submodules_update(struct step *s)
{
    if (s->git->submodules)
        vc(s, git_words("submodule", "sync", NULL), submodules_synced);
    else
        s->git->next(s);
}

/* ------------------------------------------------------------ modes */

static void cleaned(struct step *s)
{
    struct git *g = s->git;
    if (ok(s)) {
        fetch_or_fallback(s, submodules_update);
    } else if (util_streq(g->method, "clean")) {
        fail(s);
    } else { /* fresh: a clean that fails means a new clone, with its fallback */
        g->update_then = submodules_update;
        g->clone_then = submodules_update;
        g->clone_failed = clone_fallback;
        dir_command(s, "rmdir", "dir", g->workdir, removed);
    }
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
        clone_or_fallback(s, g->next);
    else if (!has_git)
        clobber(s, g->next);
    else if (util_streq(g->mode, "incremental") || util_streq(g->method, "copy"))
        fetch_or_fallback(s, submodules_update);
    else
        vc(s, clean_words(g), cleaned);
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
    g->next = got_revision;
    if (util_streq(g->method, "clobber")) {
        clobber(s, g->next);
    } else if (util_streq(g->method, "copy")) {
        g->next = copy_over;
        g->final_workdir = g->workdir;
        g->workdir = xstrdup("source");
        dir_command(s, "rmdir", "dir", g->final_workdir, old_workdir_removed);
    } else {
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

/* Buildbot's parseGitFeatures: what the worker's git version supports. */
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
    long version = major * 1000000L + minor * 1000L + patch;
    g->supports_filters = version >= 2027000L;
    g->supports_submodule_force = version >= 1007006L;
    g->supports_submodule_checkout = version >= 1007008L;
    s->collect = false;
    char *path = xasprintf("%s/.buildbot-patched", g->workdir);
    dir_command(s, "stat", "file", path, patched);
    free(path);
}

/* ------------------------------------------------------------ the end */

/* updateSourceProperty: the value, or {codebase: value} merged with the property's. */
static void source_property(struct step *s, const char *name, json_t *value)
{
    const char *codebase = s->git->codebase;
    if (*codebase != '\0') {
        const json_t *old = props_get(&s->b->props, name);
        json_t *d = json_is_object(old) ? json_deep_copy(old) : json_object();
        json_object_set_new(d, codebase, value);
        value = d;
    }
    props_set(&s->b->props, name, value, "Git");
}

/* The captured stdout without Python's strip() whitespace around it. */
static json_t *stripped_output(const struct step *s)
{
    const char *text = s->captured.data != NULL ? s->captured.data : "";
    size_t len = s->captured.len;
    while (len > 0 && strchr(" \t\r\n\v\f", text[len - 1]) != NULL)
        len--;
    while (len > 0 && strchr(" \t\r\n\v\f", *text) != NULL)
        text++, len--;
    return json_stringn(text, len);
}

/* A describe that fails sets nothing and fails nothing, as in Buildbot. */
static void described(struct step *s)
{
    if (ok(s))
        source_property(s, "commit-description", stripped_output(s));
    step_finish(s, RES_SUCCESS);
}

static void parsed(struct step *s)
{
    struct git *g = s->git;
    json_t *rev = stripped_output(s);
    if (!ok(s) || json_string_length(rev) != 40) {
        json_decref(rev);
        fail(s);
        return;
    }
    source_property(s, "got_revision", rev);
    if (g->describe != NULL)
        vc(s, json_deep_copy(g->describe), described);
    else
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

/* Python's truth of a value. */
static bool truthy(const json_t *v)
{
    if (v == NULL)
        return false;
    switch (json_typeof(v)) {
    case JSON_TRUE:
        return true;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return false;
    }
}

/* Buildbot's git_describe_flags, in their order: a switch (`--name` when true), a pattern
   (`--name value`), a number (`--name=value`, 0 too) and dirty (`--dirty` when true or
   empty, else `--dirty=mark`). */
enum describe_kind { D_SWITCH, D_PATTERN, D_NUMBER, D_DIRTY };
static const struct {
    const char *name;
    enum describe_kind kind;
} describe_flags[] = {
    {"all", D_SWITCH},      {"always", D_SWITCH},       {"contains", D_SWITCH},
    {"debug", D_SWITCH},    {"long", D_SWITCH},         {"exact-match", D_SWITCH},
    {"tags", D_SWITCH},     {"first-parent", D_SWITCH}, {"match", D_PATTERN},
    {"exclude", D_PATTERN}, {"abbrev", D_NUMBER},       {"candidates", D_NUMBER},
    {"dirty", D_DIRTY},
};

/* The words of flag `i` for value `v` (Python's str() of it), or none. */
static void describe_flag(json_t *cmd, size_t i, const json_t *v)
{
    const char *name = describe_flags[i].name;
    char *value = props_str(v), *word = NULL;
    switch (describe_flags[i].kind) {
    case D_SWITCH:
        word = truthy(v) ? xasprintf("--%s", name) : NULL;
        break;
    case D_PATTERN:
        if (truthy(v)) {
            word = xasprintf("--%s", name);
            add_word(cmd, word);
            free(word);
            word = xstrdup(value);
        }
        break;
    case D_NUMBER:
        word = truthy(v) || json_is_number(v) ? xasprintf("--%s=%s", name, value) : NULL;
        break;
    case D_DIRTY:
        if (json_is_true(v) || (json_is_string(v) && json_string_length(v) == 0))
            word = xstrdup("--dirty");
        else if (truthy(v))
            word = xasprintf("--dirty=%s", value);
        break;
    }
    if (word != NULL)
        add_word(cmd, word);
    free(word);
    free(value);
}

/* getDescription: false (none), true (`git describe HEAD`) or a table of describe's
   options; HEAD is named unless --dirty is given (which takes no commit). */
static int describe_words(struct git *g, const json_t *opts, char **cause)
{
    if (opts == NULL || json_is_false(opts) || json_is_null(opts))
        return 0;
    if (!json_is_true(opts) && !json_is_object(opts))
        return util_cause(cause, "Git: getDescription must be a boolean or a dict.");
    g->describe = git_words("describe", NULL);
    for (size_t i = 0; i < UTIL_NELEM(describe_flags) && json_is_object(opts); i++) {
        const json_t *v = json_object_get(opts, describe_flags[i].name);
        if (v != NULL)
            describe_flag(g->describe, i, v);
    }
    bool dirty = false;
    size_t i;
    json_t *w;
    json_array_foreach(g->describe, i, w)
    {
        dirty = dirty || util_startswith(json_string_value(w), "--dirty");
    }
    if (!dirty)
        add_word(g->describe, "HEAD");
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* config: `-c name=value` for each entry, by name (a Lua table has no order). */
static int config_words(struct git *g, const json_t *config, char **cause)
{
    g->config = json_array();
    if (config == NULL || json_is_null(config))
        return 0;
    if (!json_is_object(config))
        return util_cause(cause, "Git: config must be a table of name = value");
    size_t n = json_object_size(config), k = 0;
    const char **names = xcalloc(n + 1, sizeof *names);
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)config, name, v)
    {
        names[k++] = name;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (k = 0; k < n; k++) {
        char *value = props_str(json_object_get(config, names[k]));
        char *word = xasprintf("%s=%s", names[k], value);
        add_word(g->config, "-c");
        add_word(g->config, word);
        free(word);
        free(value);
    }
    free(names);
    return 0;
}

/* shallow: false, true (a depth of 1) or a depth. */
static int shallow_depth(struct git *g, const json_t *v, char **cause)
{
    if (v == NULL || json_is_null(v) || json_is_boolean(v))
        g->shallow = json_is_true(v) ? 1 : 0;
    else if (json_is_integer(v) || json_is_real(v))
        g->shallow = (long long)json_number_value(v);
    else
        return util_cause(cause, "Git: shallow must be a boolean or a depth");
    return 0;
}

/* shallow, submodules, config, getDescription. */
static int setup_options(struct step *s, char **cause)
{
    struct git *g = s->git;
    json_t *shallow = NULL, *config = NULL, *describe = NULL, *submodules = NULL;
    int rc = -1;
    if (step_render(s, "shallow", &shallow, cause) != 0 ||
        step_render(s, "config", &config, cause) != 0 ||
        step_render(s, "getDescription", &describe, cause) != 0 ||
        step_render(s, "submodules", &submodules, cause) != 0)
        goto out;
    if (shallow_depth(g, shallow, cause) != 0 || config_words(g, config, cause) != 0 ||
        describe_words(g, describe, cause) != 0)
        goto out;
    g->submodules = truthy(submodules);
    rc = 0;
out:
    json_decref(shallow);
    json_decref(config);
    json_decref(describe);
    json_decref(submodules);
    return rc;
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
    g->origin = text_param(s, "origin", NULL, cause);
    char *branch = text_param(s, "branch", "HEAD", cause);
    if (g->codebase == NULL || g->mode == NULL || g->workdir == NULL || branch == NULL ||
        *cause != NULL) {
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
    return setup_options(s, cause);
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
