/*
 * fs.c: the file system commands of SPEC 5.8: mkdir, stat, glob, listdir and
 * rmfile run at once (they are single system calls or directory reads);
 * rmdir and cpdir run `rm -rf` and `cp -R -P -p -v` as buildbot-worker does,
 * through shell.c.  Paths are relative to the builder's directory.  A failed
 * call reports "NAME: STRERROR: PATH" in the header and the errno as rc.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bbw_internal.h"
#include "util/util.h"

#define BBW_GLOB_MAX 100000 /* paths one glob answers; more is an error (E2BIG) */

static void fail_errno(struct bbw_cmd *c, const char *what, int err, const char *path)
{
    char *text = xasprintf("%s: %s: %s\n", what, strerror(err), path);
    bbw_cmd_output(c, BBW_HEADER, text, strlen(text));
    free(text);
    bbw_cmd_update(c, "rc", pb_int(err));
}

/* rc was sent; elapsed and complete follow. */
static void done(struct bbw_cmd *c)
{
    if (!c->interrupted)
        bbw_cmd_update(c, "elapsed", pb_float((double)(uv_hrtime() - c->started_ns) / 1e9));
    bbw_cmd_finish(c, NULL);
}

static int mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *q = p + 1; *q && rc == 0; q++) {
        if (*q != '/')
            continue;
        *q = 0;
        if (mkdir(p, 0777) < 0 && errno != EEXIST)
            rc = errno;
        *q = '/';
    }
    if (rc == 0 && mkdir(p, 0777) < 0 && (errno != EEXIST || !util_is_dir(p)))
        rc = errno;
    free(p);
    return rc;
}

/* `dir` may be a text or a list of texts (newer masters). */
static void cmd_mkdir(struct bbw_cmd *c, const struct pb_value *dirs)
{
    size_t n = pb_is_str(dirs) ? 1 : pb_len(dirs);
    for (size_t i = 0; i < n; i++) {
        const char *rel = pb_is_str(dirs) ? pb_str(dirs) : pb_str(pb_item(dirs, i));
        char *path = bbw_cmd_path(c, rel ? rel : "");
        int err = rel ? mkdir_p(path) : EINVAL;
        if (err) {
            fail_errno(c, "mkdir", err, path);
            free(path);
            done(c);
            return;
        }
        free(path);
    }
    bbw_cmd_update(c, "rc", pb_int(0));
    done(c);
}

static void cmd_stat(struct bbw_cmd *c, const struct pb_value *args)
{
    const char *workdir = pb_str(pb_dict_get(args, "workdir"));
    const char *file = pb_str(pb_dict_get(args, "file"));
    /* as os.path.join: an absolute file (glob's answers) stands alone */
    char *rel = workdir && !(file && file[0] == '/') ? xasprintf("%s/%s", workdir, file ? file : "")
                                                     : xstrdup(file ? file : "");
    char *path = bbw_cmd_path(c, rel);
    free(rel);
    struct stat st;
    if (stat(path, &st) < 0) {
        fail_errno(c, "stat", errno, path);
    } else {
        struct pb_value *t = pb_tuple();
        pb_append(t, pb_int(st.st_mode));
        pb_append(t, pb_int((int64_t)st.st_ino));
        pb_append(t, pb_int((int64_t)st.st_dev));
        pb_append(t, pb_int((int64_t)st.st_nlink));
        pb_append(t, pb_int(st.st_uid));
        pb_append(t, pb_int(st.st_gid));
        pb_append(t, pb_int(st.st_size));
        pb_append(t, pb_int(st.st_atime));
        pb_append(t, pb_int(st.st_mtime));
        pb_append(t, pb_int(st.st_ctime));
        bbw_cmd_update(c, "stat", t);
        bbw_cmd_update(c, "rc", pb_int(0));
    }
    free(path);
    done(c);
}

static void cmd_listdir(struct bbw_cmd *c, const struct pb_value *args)
{
    const char *rel = pb_str(pb_dict_get(args, "dir"));
    char *path = bbw_cmd_path(c, rel ? rel : "");
    DIR *d = opendir(path);
    if (!d) {
        fail_errno(c, "listdir", errno, path);
    } else {
        struct pb_value *files = pb_list();
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                pb_append(files, pb_text(e->d_name));
        closedir(d);
        bbw_cmd_update(c, "files", files);
        bbw_cmd_update(c, "rc", pb_int(0));
    }
    free(path);
    done(c);
}

/* Python's glob(recursive=True) for a pattern with a `**` component (glob(3) has none). */
struct walk {
    struct pb_value *files;
    size_t n;
};

static bool is_real_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode); /* links are not followed: no loops */
}

static void walk(struct walk *g, const char *dir, char **comps, size_t i, size_t n)
{
    if (g->n >= BBW_GLOB_MAX)
        return;
    if (i == n) {
        pb_append(g->files, pb_text(dir[0] ? dir : "/"));
        g->n++;
        return;
    }
    const char *comp = comps[i];
    bool any = strcmp(comp, "**") == 0, magic = strpbrk(comp, "*?[") != NULL;
    if (any)
        walk(g, dir, comps, i + 1, n); /* `**` matches no directory too */
    if (!magic) {
        char *p = xasprintf("%s/%s", dir, comp);
        struct stat st;
        if (lstat(p, &st) == 0)
            walk(g, p, comps, i + 1, n);
        free(p);
        return;
    }
    DIR *d = opendir(dir[0] ? dir : "/");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && g->n < BBW_GLOB_MAX) {
        if (e->d_name[0] == '.' && (any || comp[0] != '.'))
            continue; /* hidden entries only for a pattern that starts with '.' */
        if (!any && fnmatch(comp, e->d_name, FNM_PERIOD) != 0)
            continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        if (!any)
            walk(g, p, comps, i + 1, n);
        else if (is_real_dir(p) || i + 1 == n)
            walk(g, p, comps, i, n); /* one more directory (or, last, any file) */
        free(p);
    }
    if (d)
        closedir(d);
}

static struct pb_value *glob_recursive(const char *pattern)
{
    char *copy = xstrdup(pattern), *save = NULL;
    char **comps = NULL;
    size_t n = 0, cap = 0;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        comps = xgrow(comps, &cap, n + 1, sizeof(*comps));
        comps[n++] = t;
    }
    struct walk g = {pb_list(), 0};
    walk(&g, "", comps, 0, n);
    free(comps);
    free(copy);
    return g.files;
}

static void cmd_glob(struct bbw_cmd *c, const struct pb_value *args)
{
    const char *rel = pb_str(pb_dict_get(args, "path"));
    char *pattern = bbw_cmd_path(c, rel ? rel : "");
    if (strstr(pattern, "/**/") ||
        (strlen(pattern) >= 3 && strcmp(pattern + strlen(pattern) - 3, "/**") == 0)) {
        struct pb_value *files = glob_recursive(pattern);
        if (pb_len(files) >= BBW_GLOB_MAX) {
            pb_value_free(files);
            fail_errno(c, "glob", E2BIG, pattern);
        } else {
            bbw_cmd_update(c, "files", files);
            bbw_cmd_update(c, "rc", pb_int(0));
        }
        free(pattern);
        done(c);
        return;
    }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    struct pb_value *files = pb_list();
    for (size_t i = 0; rc == 0 && i < g.gl_pathc && i < BBW_GLOB_MAX; i++)
        pb_append(files, pb_text(g.gl_pathv[i]));
    if (rc == 0 && g.gl_pathc >= BBW_GLOB_MAX) {
        pb_value_free(files);
        fail_errno(c, "glob", E2BIG, pattern);
    } else if (rc == 0 || rc == GLOB_NOMATCH) {
        bbw_cmd_update(c, "files", files);
        bbw_cmd_update(c, "rc", pb_int(0));
    } else {
        pb_value_free(files);
        fail_errno(c, "glob", rc == GLOB_NOSPACE ? ENOMEM : EIO, pattern);
    }
    if (rc == 0)
        globfree(&g);
    free(pattern);
    done(c);
}

static void cmd_rmfile(struct bbw_cmd *c, const struct pb_value *args)
{
    const char *rel = pb_str(pb_dict_get(args, "path"));
    char *path = bbw_cmd_path(c, rel ? rel : "");
    if (!rel || unlink(path) < 0)
        fail_errno(c, "rmfile", rel ? errno : EINVAL, path);
    else
        bbw_cmd_update(c, "rc", pb_int(0));
    free(path);
    done(c);
}

static long opt_seconds(const struct pb_value *args, const char *key, long dflt)
{
    struct pb_value *v = pb_dict_get(args, key);
    if (v && v->kind == PB_INT)
        return (long)v->u.i;
    if (v && v->kind == PB_FLOAT)
        return (long)v->u.f;
    return v && v->kind == PB_NONE ? 0 : dflt;
}

/* rmdir and cpdir: rm / cp in the builder's directory, reported as a shell command. */
static void cmd_spawn(struct bbw_cmd *c, const struct pb_value *args, bool copy)
{
    struct pb_value *argv = pb_list();
    if (copy) {
        const char *from = pb_str(pb_dict_get(args, "fromdir"));
        const char *to = pb_str(pb_dict_get(args, "todir"));
        char *f = bbw_cmd_path(c, from ? from : ""), *t = bbw_cmd_path(c, to ? to : "");
        const char *fixed[] = {"cp", "-R", "-P", "-p", "-v", f, t};
        for (size_t i = 0; i < UTIL_NELEM(fixed); i++)
            pb_append(argv, pb_text(fixed[i]));
        free(f);
        free(t);
    } else {
        pb_append(pb_append(argv, pb_text("rm")), pb_text("-rf"));
        struct pb_value *dirs = pb_dict_get(args, "dir");
        size_t n = pb_is_str(dirs) ? 1 : pb_len(dirs);
        for (size_t i = 0; i < n; i++) {
            const char *rel = pb_is_str(dirs) ? pb_str(dirs) : pb_str(pb_item(dirs, i));
            char *p = bbw_cmd_path(c, rel ? rel : "");
            pb_append(argv, pb_text(p));
            free(p);
        }
    }
    char *workdir = bbw_cmd_path(c, "");
    struct pb_value *le = pb_dict_get(args, "logEnviron");
    struct bbw_shell_opts o = {.command = argv,
                               .workdir = workdir,
                               .want_stdout = true,
                               .want_stderr = true,
                               .log_environ = !le || (le->kind == PB_BOOL ? le->u.b : le->u.i != 0),
                               .timeout = opt_seconds(args, "timeout", 120),
                               .max_time = opt_seconds(args, "maxTime", 0),
                               .max_lines = -1,
                               .sigterm_time = -1,
                               .interrupt_signal = 9,
                               .header = true};
    bbw_shell_run(c, &o);
    pb_value_free(argv);
    free(workdir);
}

int bbw_fs_run(struct bbw_cmd *c, const char *name, const struct pb_value *args)
{
    if (strcmp(name, "mkdir") == 0)
        cmd_mkdir(c, pb_dict_get(args, "dir"));
    else if (strcmp(name, "stat") == 0)
        cmd_stat(c, args);
    else if (strcmp(name, "listdir") == 0)
        cmd_listdir(c, args);
    else if (strcmp(name, "glob") == 0)
        cmd_glob(c, args);
    else if (strcmp(name, "rmfile") == 0)
        cmd_rmfile(c, args);
    else if (strcmp(name, "rmdir") == 0)
        cmd_spawn(c, args, false);
    else if (strcmp(name, "cpdir") == 0)
        cmd_spawn(c, args, true);
    else
        return -1;
    return 0;
}
