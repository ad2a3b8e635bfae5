/*
 * The release cycle behind /release_status: www.release_cycle names a file
 * (or a URL the master fetches into a file of its directory: cyclefetch.c)
 * in the format of https://peps.python.org/api/release-cycle.json, an
 * object of branches in the order the page shows them:
 *
 *   {"3.14": {"branch": "3.14", "pep": 745, "status": "bugfix",
 *             "first_release": "2025-10-07", "end_of_life": "2030-10",
 *             "release_manager": "Hugo van Kemenade"}, ...}
 *
 * The file is read at start and reconfig, then again whenever it changes on
 * disk (a stat per render, under a lock of its own that nothing else holds
 * longer), so a cron job that refreshes it is seen at the next render.  A file that cannot be read
 * or does not parse leaves the last good copy in place, and the page says why; a fetched file
 * that is not there yet only makes the page say the cycle is being fetched.  End-of-life
 * branches are left out; the branch "main" is the builder tag "3.x", as at buildbot.python.org.
 */
#include "www/ui/release.h"

#include <stdlib.h>
#include <string.h>

void rel_branches_free(struct rel_branch *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].version);
        free(b[i].tag);
        free(b[i].branch);
        free(b[i].status);
        free(b[i].rm);
    }
    free(b);
}

static char *opt_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? xstrdup(s) : NULL;
}

/* The branches of a parsed file, or -1 with *cause. */
static int parse_cycle(json_t *doc, struct rel_branch **out, size_t *n_out, char **cause)
{
    if (!json_is_object(doc)) {
        util_cause(cause, "not a JSON object of branches");
        return -1;
    }
    struct rel_branch *v = xcalloc(json_object_size(doc) + 1, sizeof *v);
    size_t n = 0;
    const char *version;
    json_t *info;
    json_object_foreach(doc, version, info)
    {
        const char *status = json_string_value(json_object_get(info, "status"));
        if (!json_is_object(info) || status == NULL) {
            util_cause(cause, "branch \"%s\" has no \"status\" string", version);
            rel_branches_free(v, n);
            return -1;
        }
        if (strcmp(status, "end-of-life") == 0)
            continue;
        struct rel_branch *b = &v[n++];
        b->version = xstrdup(version);
        b->branch = opt_str(info, "branch");
        b->status = xstrdup(status);
        b->rm = opt_str(info, "release_manager");
        json_t *pep = json_object_get(info, "pep");
        b->pep = json_is_integer(pep) ? (long long)json_integer_value(pep) : -1;
        b->tag = xstrdup(b->branch != NULL && strcmp(b->branch, "main") == 0 ? "3.x" : version);
    }
    *out = v;
    *n_out = n;
    return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void set_error(struct ui_release *r, char *msg)
{
    if (r->cycle_error == NULL || strcmp(r->cycle_error, msg) != 0)
        log_warn("www: release cycle %s: %s", r->path, msg);
    free(r->cycle_error);
    r->cycle_error = msg;
}

/* Reads the file again if it changed on disk (or was never read); under cycle_lock.  A
   fetched file that does not exist yet is not an error: the first fetch has not ended. */
static void cycle_check(struct ui_release *r)
{
    struct stat st;
    int rc = stat(r->path, &st);
    r->pending = rc != 0 && errno == ENOENT && r->source != NULL;
    if (rc != 0) {
        r->read_once = false;
        if (!r->pending)
            set_error(r, xasprintf("%s", strerror(errno)));
        return;
    }
    if (r->read_once && same_file(&st, &r->seen))
        return;
    r->seen = st;
    r->read_once = true;
    json_error_t err;
    json_t *doc = json_load_file(r->path, 0, &err);
    char *cause = NULL;
    struct rel_branch *v = NULL;
    size_t n = 0;
    if (doc == NULL)
        cause = xasprintf("line %d: %s", err.line, err.text);
    else
        parse_cycle(doc, &v, &n, &cause);
    json_decref(doc);
    if (cause != NULL) {
        set_error(r, cause);
        return;
    }
    free(r->cycle_error);
    r->cycle_error = NULL;
    rel_branches_free(r->branches, r->n_branches);
    r->branches = v;
    r->n_branches = n;
}

static char *opt_dup(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

/* A copy of the branches (under cycle_lock). */
static struct rel_branch *branches_copy(const struct ui_release *r)
{
    struct rel_branch *v = xcalloc(r->n_branches + 1, sizeof *v);
    for (size_t i = 0; i < r->n_branches; i++) {
        const struct rel_branch *b = &r->branches[i];
        v[i] = (struct rel_branch){xstrdup(b->version), xstrdup(b->tag), opt_dup(b->branch),
                                   opt_dup(b->status),  opt_dup(b->rm),  b->pep};
    }
    return v;
}

void rel_files_get(struct ui_release *r, struct rel_files *out)
{
    pthread_mutex_lock(&r->cycle_lock);
    if (r->path != NULL)
        cycle_check(r);
    out->dir = opt_dup(r->results_dir);
    out->branches = branches_copy(r);
    out->n_branches = r->n_branches;
    pthread_mutex_unlock(&r->cycle_lock);
}

void rel_files_free(struct rel_files *f)
{
    free(f->dir);
    rel_branches_free(f->branches, f->n_branches);
}

bool rel_cycle_get(struct ui_release *r, struct rel_branch **out, size_t *n, char **path,
                   char **error, char **pending)
{
    pthread_mutex_lock(&r->cycle_lock);
    if (r->path != NULL)
        cycle_check(r);
    *out = branches_copy(r);
    *n = r->n_branches;
    *path = opt_dup(r->path);
    *error = opt_dup(r->cycle_error);
    *pending = r->pending && r->n_branches == 0 ? opt_dup(r->source) : NULL;
    pthread_mutex_unlock(&r->cycle_lock);
    return *path != NULL;
}

bool rel_cycle_configured(struct ui_release *r)
{
    pthread_mutex_lock(&r->cycle_lock);
    bool set = r->path != NULL;
    pthread_mutex_unlock(&r->cycle_lock);
    return set;
}

struct ui_release *www_release_new(void)
{
    struct ui_release *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->cycle_lock, NULL);
    return r;
}

void www_release_free(struct ui_release *r)
{
    if (r == NULL)
        return;
    www_release_stop(r);
    rel_model_free(r->model);
    free(r->warm_error);
    rel_branches_free(r->branches, r->n_branches);
    free(r->cycle_error);
    free(r->path);
    free(r->source);
    free(r->results_dir);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->cycle_lock);
    free(r);
}

static char *in_basedir(const char *basedir, const char *file)
{
    if (file == NULL)
        return NULL;
    return file[0] == '/' || basedir == NULL ? xstrdup(file) : xasprintf("%s/%s", basedir, file);
}

void www_release_set_results(struct ui_release *r, const char *basedir, const char *dir)
{
    char *path = in_basedir(basedir, dir);
    pthread_mutex_lock(&r->cycle_lock);
    free(r->results_dir);
    r->results_dir = path;
    pthread_mutex_unlock(&r->cycle_lock);
}

void www_release_set_cycle(struct ui_release *r, const char *basedir, const char *file,
                           const char *source)
{
    char *path = in_basedir(basedir, file);
    pthread_mutex_lock(&r->cycle_lock);
    free(r->path);
    r->path = path;
    free(r->source);
    r->source = opt_dup(source);
    r->pending = false;
    r->read_once = false;
    free(r->cycle_error);
    r->cycle_error = NULL;
    if (r->path == NULL) {
        rel_branches_free(r->branches, r->n_branches);
        r->branches = NULL;
        r->n_branches = 0;
    }
    pthread_mutex_unlock(&r->cycle_lock);
    rel_feed_poke(r);
}
