/*
 * Which paths the transfer steps may use.  On the master: a relative path lies in
 * the master's directory, an absolute one must lie in it or in one of the
 * configuration's uploadRoots.  The path is normalised first (no '..' component is
 * accepted at all), then the deepest part of it that exists is resolved with its
 * symbolic links and checked against the roots, resolved the same way; only then are
 * the missing directories made, one at a time, never through a link.  So a refused
 * path creates nothing.  From the worker: a name its `glob` answered must lie under
 * the directory the pattern was given in and have a plain last component, since that
 * component becomes a name on the master.
 */
#include "engine/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The components of a normalised absolute path. */
struct parts {
    char *copy; /* the components, NUL-separated */
    const char *items[PATH_MAX / 2];
    size_t n;
};

/* `path` (relative to `cwd`) split into components, "" and "." dropped. */
static int split(const char *path, const char *cwd, struct parts *p, char **cause)
{
    p->copy = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", cwd, path);
    p->n = 0;
    char *save = NULL;
    for (char *c = strtok_r(p->copy, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, "..") == 0)
            return util_cause(cause, "'%s': a master path may not contain '..'", path);
        if (strcmp(c, ".") == 0)
            continue;
        if (p->n == UTIL_NELEM(p->items))
            return util_cause(cause, "'%s': the path is too long", path);
        p->items[p->n++] = c;
    }
    if (p->n == 0)
        return util_cause(cause, "'%s' names no file", path);
    return 0;
}

/* "/" and the first `n` components. */
static char *join(const struct parts *p, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "/%s", p->items[i]);
    if (n == 0)
        buf_addc(&b, '/');
    return buf_take(&b);
}

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n == 1 && root[0] == '/')
        return true;
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Whether the resolved path `real` lies in the master's directory or an uploadRoot. */
static bool allowed(const struct cfg *cfg, const char *cwd, const char *real)
{
    if (under(real, cwd))
        return true;
    for (size_t i = 0; i < cfg->n_upload_roots; i++) {
        char root[PATH_MAX];
        if (realpath(cfg->upload_roots[i], root) != NULL && under(real, root))
            return true;
    }
    return false;
}

/* Makes the missing directories `p->items[from..to)` under the existing directory `real`,
   each opened without following a link: the directory reached ("" for "/"), or NULL. */
static char *make_dirs(const char *real, const struct parts *p, size_t from, size_t to,
                       const char *path, char **cause)
{
    int fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = errno;
    struct buf out;
    buf_init(&out, 0);
    buf_addstr(&out, real[1] == '\0' ? "" : real);
    for (size_t i = from; fd >= 0 && i < to; i++) {
        int sub = -1;
        if (mkdirat(fd, p->items[i], 0755) == 0 || errno == EEXIST)
            sub = openat(fd, p->items[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        err = errno;
        close(fd);
        fd = sub;
        buf_printf(&out, "/%s", p->items[i]);
    }
    if (fd < 0) {
        util_cause(cause, "'%s': cannot make its directory: %s", path, strerror(err));
        buf_free(&out);
        return NULL;
    }
    close(fd);
    return buf_take(&out);
}

/* A file to read under the allowed directory `real` (the first `have` components of `p`
   resolved): its resolved path, which must be allowed too; a file that is not there
   keeps its name (opening it fails as Buildbot's does). */
static char *read_path(const struct cfg *cfg, const char *cwd, const char *real,
                       const struct parts *p, size_t have, const char *path, char **cause)
{
    struct buf full;
    buf_init(&full, 0);
    buf_addstr(&full, real[1] == '\0' ? "" : real);
    for (size_t i = have; i < p->n; i++)
        buf_printf(&full, "/%s", p->items[i]);
    char file[PATH_MAX];
    if (realpath(full.data, file) == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return buf_take(&full);
        util_cause(cause, "'%s': %s", path, strerror(errno));
    } else if (!allowed(cfg, cwd, file)) {
        util_cause(cause, "'%s' leads outside the master's directory and uploadRoots", path);
    } else {
        buf_free(&full);
        return xstrdup(file);
    }
    buf_free(&full);
    return NULL;
}

char *path_confine(const struct cfg *cfg, const char *path, enum path_use use, char **cause)
{
    char cwd[PATH_MAX], real[PATH_MAX];
    struct parts p = {0};
    char *out = NULL, *dir = NULL;
    if (*path == '\0') {
        util_cause(cause, "a master path may not be empty");
        return NULL;
    }
    if (getcwd(cwd, sizeof cwd) == NULL || split(path, cwd, &p, cause) != 0)
        goto out;
    /* the deepest existing directory above the file: resolved, then checked */
    size_t have = p.n - 1;
    struct stat st;
    dir = join(&p, have);
    while (have > 0 && lstat(dir, &st) != 0) {
        free(dir);
        dir = join(&p, --have);
    }
    if (realpath(dir, real) == NULL) {
        util_cause(cause, "'%s': %s", path, strerror(errno));
        goto out;
    }
    if (!allowed(cfg, cwd, real)) {
        util_cause(cause,
                   "'%s' is outside the master's directory and the configuration's uploadRoots",
                   path);
        goto out;
    }
    if (use == PATH_READ) {
        out = read_path(cfg, cwd, real, &p, have, path, cause);
        goto out;
    }
    char *made = make_dirs(real, &p, have, p.n - 1, path, cause);
    if (made != NULL)
        out = xasprintf("%s/%s", made, p.items[p.n - 1]);
    free(made);
out:
    free(dir);
    free(p.copy);
    return out;
}

/* ------------------------------------------------------------ the worker's answers */

static bool is_sep(char c, bool nt)
{
    return c == '/' || (nt && c == '\\');
}

const char *path_globbed(const char *answer, const char *dir, bool nt)
{
    size_t n = strlen(dir);
    while (n > 0 && is_sep(dir[n - 1], nt))
        n--;
    size_t same = 0;
    while (same < n &&
           (answer[same] == dir[same] || (is_sep(answer[same], nt) && is_sep(dir[same], nt))))
        same++;
    const char *rest = answer;
    if (n > 0 && same == n && is_sep(answer[n], nt))
        rest = answer + n + 1;
    else if (is_sep(answer[0], nt) || (nt && answer[0] != '\0' && answer[1] == ':'))
        return NULL; /* absolute, and not under the directory */
    const char *last = NULL;
    for (const char *p = rest; *p != '\0';) {
        size_t len = 0;
        while (p[len] != '\0' && !is_sep(p[len], nt))
            len++;
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return NULL;
        if (len > 0)
            last = p;
        p += len + (p[len] != '\0');
    }
    if (last == NULL || (last[0] == '.' && (last[1] == '\0' || is_sep(last[1], nt))))
        return NULL;
    return rest;
}
