/*
 * logfiles.c: the files a shell command's `logfiles` names, followed while
 * the command runs and sent as `log` updates (name, text), as
 * buildbot-worker's LogFileWatcher does: each file is polled every
 * BBW_LOGFILE_POLL_MS and once more when the process has ended; a file
 * that has not changed since the command started (a previous build's) is not
 * read; once it changes it is read from its start, or with `follow` from the
 * size it had then.  At most BBW_BATCH_MAX bytes are sent per update.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bbw_internal.h"
#include "util/util.h"

struct logfile {
    char *name;
    char *path;
    bool follow;
    bool existed;    /* the file was there when the command started */
    struct stat old; /* ... and this is what it was */
    int fd;          /* -1 until it changed */
    char carry[4];   /* the start of a UTF-8 character the last read split */
    size_t ncarry;
};

struct bbw_logfiles {
    struct bbw_cmd *cmd;
    struct logfile *files;
    size_t n;
};

static void repr_value(struct buf *b, const struct pb_value *v)
{
    if (pb_is_str(v)) {
        char *r = bbw_py_repr(pb_str(v));
        buf_addstr(b, r);
        free(r);
    } else if (v && v->kind == PB_BOOL) {
        buf_addstr(b, v->u.b ? "True" : "False");
    } else if (v && v->kind == PB_INT) {
        buf_printf(b, "%lld", (long long)v->u.i);
    } else if (v && v->kind == PB_DICT) {
        buf_addc(b, '{');
        for (size_t i = 0; i + 1 < v->u.list.n; i += 2) {
            buf_addstr(b, i ? ", " : "");
            repr_value(b, v->u.list.items[i]);
            buf_addstr(b, ": ");
            repr_value(b, v->u.list.items[i + 1]);
        }
        buf_addc(b, '}');
    } else {
        buf_addstr(b, "None");
    }
}

void bbw_logfiles_repr(struct buf *b, const struct pb_value *logfiles)
{
    if (logfiles && logfiles->kind == PB_DICT)
        repr_value(b, logfiles);
    else
        buf_addstr(b, "{}");
}

int bbw_logfiles_check(const struct pb_value *logfiles, char **cause)
{
    if (!logfiles || logfiles->kind == PB_NONE)
        return 0;
    if (logfiles->kind != PB_DICT || logfiles->u.list.n / 2 > BBW_LOGFILES_MAX)
        return util_cause(cause, "shell: 'logfiles' must be a dict of at most %d files",
                          BBW_LOGFILES_MAX);
    for (size_t i = 0; i + 1 < logfiles->u.list.n; i += 2) {
        const struct pb_value *k = logfiles->u.list.items[i], *v = logfiles->u.list.items[i + 1];
        const struct pb_value *f = v && v->kind == PB_DICT ? pb_dict_get(v, "filename") : v;
        if (!pb_is_str(k) || !pb_is_str(f))
            return util_cause(cause, "shell: logfiles: each entry must be name: filename or "
                                     "name: {'filename': ..., 'follow': ...}");
    }
    return 0;
}

struct bbw_logfiles *bbw_logfiles_new(struct bbw_cmd *c, const struct pb_value *logfiles,
                                      const char *workdir)
{
    size_t n = logfiles && logfiles->kind == PB_DICT ? logfiles->u.list.n / 2
                                                     : 0; /* pb_len is 0 for a dict */
    if (n == 0)
        return NULL;
    struct bbw_logfiles *l = xcalloc(1, sizeof(*l));
    l->cmd = c;
    l->files = xcalloc(n, sizeof(*l->files));
    for (size_t i = 0; i < n; i++) {
        const struct pb_value *v = logfiles->u.list.items[2 * i + 1];
        const struct pb_value *f = v->kind == PB_DICT ? pb_dict_get(v, "filename") : v;
        const struct pb_value *follow = v->kind == PB_DICT ? pb_dict_get(v, "follow") : NULL;
        struct logfile *lf = &l->files[l->n++];
        lf->name = xstrdup(pb_str(logfiles->u.list.items[2 * i]));
        lf->path =
            pb_str(f)[0] == '/' ? xstrdup(pb_str(f)) : xasprintf("%s/%s", workdir, pb_str(f));
        lf->follow = follow && ((follow->kind == PB_BOOL && follow->u.b) ||
                                (follow->kind == PB_INT && follow->u.i));
        lf->existed = stat(lf->path, &lf->old) == 0;
        lf->fd = -1;
    }
    return l;
}

static bool changed(const struct logfile *lf, const struct stat *st)
{
    return !lf->existed || st->st_ino != lf->old.st_ino || st->st_dev != lf->old.st_dev ||
           st->st_size != lf->old.st_size || st->st_mtim.tv_sec != lf->old.st_mtim.tv_sec ||
           st->st_mtim.tv_nsec != lf->old.st_mtim.tv_nsec;
}

static void poll_one(struct bbw_cmd *c, struct logfile *lf)
{
    if (lf->fd < 0) {
        struct stat st;
        if (stat(lf->path, &st) < 0) {
            lf->existed = false; /* deleted: whatever comes next is new */
            return;
        }
        if (!S_ISREG(st.st_mode) || !changed(lf, &st))
            return;
        lf->fd = open(lf->path, O_RDONLY | O_CLOEXEC);
        if (lf->fd < 0)
            return;
        if (lf->follow)
            lseek(lf->fd, st.st_size, SEEK_SET);
    }
    static char chunk[BBW_BATCH_MAX + 4];
    ssize_t got;
    /* bounded per poll: a file that grows faster than it is sent waits for the next one */
    for (int i = 0; i < 16; i++) {
        memcpy(chunk, lf->carry, lf->ncarry);
        got = read(lf->fd, chunk + lf->ncarry, BBW_BATCH_MAX);
        if (got <= 0)
            break;
        size_t n = lf->ncarry + (size_t)got, cut = bbw_utf8_cut(chunk, n);
        lf->ncarry = n - cut; /* a character split by the read waits for its end */
        memcpy(lf->carry, chunk + cut, lf->ncarry);
        struct pb_value *t = pb_tuple();
        pb_append(t, pb_text(lf->name));
        pb_append(t, bbw_utf8_text(chunk, cut));
        bbw_cmd_update(c, "log", t);
    }
}

void bbw_logfiles_poll(struct bbw_logfiles *l, bool last)
{
    for (size_t i = 0; l && i < l->n; i++) {
        struct logfile *lf = &l->files[i];
        poll_one(l->cmd, lf);
        if (last && lf->ncarry) { /* the file ends inside a character */
            struct pb_value *t = pb_tuple();
            pb_append(t, pb_text(lf->name));
            pb_append(t, bbw_utf8_text(lf->carry, lf->ncarry));
            bbw_cmd_update(l->cmd, "log", t);
            lf->ncarry = 0;
        }
    }
}

void bbw_logfiles_free(struct bbw_logfiles *l)
{
    for (size_t i = 0; l && i < l->n; i++) {
        if (l->files[i].fd >= 0)
            close(l->files[i].fd);
        free(l->files[i].name);
        free(l->files[i].path);
    }
    if (l)
        free(l->files);
    free(l);
}
