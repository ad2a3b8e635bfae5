/*
 * Steps that move files or touch the worker's directories, as Buildbot's
 * transfer and worker steps do: file_upload (uploadFile into a FileWriter),
 * directory_upload (uploadDirectory: an archive, put in place by unpack.c),
 * multiple_file_upload (glob, then stat and one of those per file), file_download
 * and string_download (downloadFile from a FileReader), mkdir, rmdir,
 * copy_directory (cpdir), file_exists (stat), remove_worker_file_secret (rmfile),
 * and master_shell_command, which runs on the master itself.
 *
 * Master paths are confined by paths.c.  The worker drives a writer: write* then
 * close (then utime once, with keepstamp) for a file, write* then unpack for a
 * directory.  Anything else (a call out of that order, a second close or unpack, data
 * past the master's ceiling) is a protocol error: the call fails, the command is
 * interrupted and the step ends EXCEPTION once it completes; nothing is renamed into
 * place after it.  Names the worker's glob answers are checked before they become
 * master paths.
 */
#include "engine/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The most an upload may write when its step sets no maxsize. */
#define XFER_MAX_BYTES (16LL << 30)

struct xfer {
    char *path; /* on the master: the destination, or the source read */
    char *tmp;  /* an upload's temporary file, renamed or unpacked at the end */
    int fd;     /* -1 when closed */
    long long maxsize, written;
    int mode; /* -1: leave as created */
    bool dir;
    bool closed;   /* the writer was told close (a file) or unpack (a directory) */
    bool utimed;   /* utime was applied */
    bool finished; /* the file is in place, or the archive unpacked */
    char *label;   /* copy_directory: "SRC to DEST" */
    char *text;    /* string_download: what the reader serves instead of a file */
    size_t text_len, text_off;
    void (*after)(struct step *s, bool ok); /* an upload is over */
    /* multiple_file_upload */
    json_t *patterns, *sources; /* what is left to glob, to upload */
    size_t next;
    char *dest_dir;
    bool any_failed;
    const char *compress; /* NULL, "gz", "bz2" */
    struct wk_command_object object;
    /* unpack: the step waits for it and for the command */
    struct unpack *unpack; /* while it runs */
    char *unpack_error;
    bool command_done;
    /* master_shell_command */
    uv_process_t proc;
    uv_pipe_t out, err;
    int open_handles;
    long long exit_status;
    int term_signal;
};

void transfer_free(struct step *s)
{
    struct xfer *x = s->xfer;
    if (x == NULL)
        return;
    if (x->fd >= 0)
        close(x->fd);
    if (x->tmp != NULL)
        unlink(x->tmp);
    unpack_abandon(x->unpack); /* the step ended first (a lost worker, an error) */
    free(x->unpack_error);
    free(x->tmp);
    free(x->path);
    free(x->label);
    free(x->text);
    json_decref(x->patterns);
    json_decref(x->sources);
    free(x->dest_dir);
    free(x);
    s->xfer = NULL;
}

static struct xfer *xfer_new(struct step *s)
{
    struct xfer *x = xcalloc(1, sizeof *x);
    x->fd = -1;
    x->mode = -1;
    s->xfer = x;
    return x;
}

/* ------------------------------------------------------------ parameters */

static char *text_param(struct step *s, const char *key, char **cause)
{
    json_t *v = NULL;
    if (step_render(s, key, &v, cause) != 0)
        return NULL;
    char *out = v != NULL && !json_is_null(v) ? props_str(v) : NULL;
    json_decref(v);
    if (out == NULL && *cause == NULL)
        util_cause(cause, "'%s' is not set", key);
    return out;
}

static long long int_param(struct step *s, const char *key, long long dflt)
{
    json_t *v = NULL;
    char *cause = NULL;
    if (step_render(s, key, &v, &cause) != 0)
        free(cause);
    long long out = json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
    json_decref(v);
    return out;
}

/* The step's workdir on the worker ("build" by default). */
static char *workdir_of(struct step *s)
{
    char *cause = NULL;
    json_t *workdir = NULL;
    step_render(s, "workdir", &workdir, &cause);
    free(cause);
    char *out = xstrdup(json_is_string(workdir) ? json_string_value(workdir) : "build");
    json_decref(workdir);
    return out;
}

static const char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *p = path + n;
    while (p > path && p[-1] != '/')
        p--;
    return p;
}

static void set_done(struct step *s, const char *text)
{
    free(s->description_done);
    s->description_done = xstrdup(text);
}

/* The common args of a transfer: workdir, blocksize, maxsize, the path on the worker. */
static struct pb_value *transfer_args(struct step *s, const char *path_key, const char *old_key,
                                      const char *command, const char *path, long long blocksize,
                                      char **cause)
{
    json_t *workdir = NULL;
    if (step_render(s, "workdir", &workdir, cause) != 0)
        return NULL;
    struct pb_value *a = pb_dict();
    pb_dict_set(a, "workdir",
                pb_text(json_is_string(workdir) ? json_string_value(workdir) : "build"));
    json_decref(workdir);
    long long maxsize = int_param(s, "maxsize", -1);
    pb_dict_set(a, "maxsize", maxsize >= 0 ? pb_int(maxsize) : pb_none());
    pb_dict_set(a, "blocksize", pb_int(int_param(s, "blocksize", blocksize)));
    pb_dict_set(a, step_worker_has(s, command, 3, 0) ? path_key : old_key, pb_text(path));
    s->xfer->maxsize = maxsize;
    return a;
}

/* ------------------------------------------------------------ writers */

static void call_error(struct pb_call *call, const char *what)
{
    pb_call_fail_with(call, "builtins.OSError",
                      (const char *const[]){"builtins.OSError", "builtins.Exception",
                                            "builtins.BaseException", "builtins.object", NULL},
                      "%s: %s", what, strerror(errno));
}

static const char *const runtime_error_parents[] = {"builtins.RuntimeError", "builtins.Exception",
                                                    "builtins.BaseException", "builtins.object",
                                                    NULL};

/* A writer call the protocol does not allow here: it fails, and the step will end. */
static void refuse(struct step *s, struct pb_call *call, const char *what)
{
    step_abort(s, "the worker broke the upload protocol: %s", what);
    pb_call_fail_with(call, "builtins.RuntimeError", runtime_error_parents, "%s", what);
}

static void write_block(struct step *s, struct pb_call *call)
{
    struct xfer *x = s->xfer;
    const struct pb_value *data = pb_item(call->args, 0);
    if (x->closed || x->fd < 0) {
        refuse(s, call, x->dir ? "write after unpack" : "write after close");
        return;
    }
    if (data == NULL || (data->kind != PB_BYTES && data->kind != PB_TEXT)) {
        refuse(s, call, "write without data");
        return;
    }
    size_t len = data->u.s.len;
    if (x->maxsize >= 0 && x->written + (long long)len > x->maxsize) {
        len = x->written < x->maxsize ? (size_t)(x->maxsize - x->written) : 0; /* Buildbot's */
    } else if (x->maxsize < 0 && x->written + (long long)len > XFER_MAX_BYTES) {
        refuse(s, call, "more data than the master takes without a maxsize");
        return;
    }
    for (size_t done = 0; done < len;) {
        ssize_t n = write(x->fd, data->u.s.data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            call_error(call, x->tmp);
            return;
        }
        done += (size_t)n;
    }
    x->written += (long long)len;
    pb_call_answer(call, NULL);
}

/* close: the file renamed into place (its mode set first), unless the upload broke the
   protocol already. */
static void close_file(struct step *s, struct pb_call *call)
{
    struct xfer *x = s->xfer;
    if (x->closed || x->fd < 0) {
        refuse(s, call, "close after close");
        return;
    }
    x->closed = true;
    if (x->mode >= 0)
        fchmod(x->fd, (mode_t)x->mode);
    close(x->fd);
    x->fd = -1;
    if (s->abort_reason != NULL) {
        refuse(s, call, "close of a failed upload");
        return;
    }
    if (rename(x->tmp, x->path) != 0) {
        call_error(call, x->path);
        return;
    }
    free(x->tmp);
    x->tmp = NULL;
    x->finished = true;
    pb_call_answer(call, NULL);
}

static double seconds(const struct pb_value *v)
{
    return v == NULL ? 0 : v->kind == PB_FLOAT ? v->u.f : v->kind == PB_INT ? (double)v->u.i : 0;
}

/* utime((atime, mtime)) once, after close (keepstamp), never through a link. */
static void utime_file(struct step *s, struct pb_call *call)
{
    struct xfer *x = s->xfer;
    if (!x->finished || x->utimed) {
        refuse(s, call, x->utimed ? "utime twice" : "utime before the file was closed");
        return;
    }
    const struct pb_value *t = pb_item(call->args, 0);
    double at = seconds(pb_item(t, 0)), mt = seconds(pb_item(t, 1));
    struct timespec ts[2] = {{(time_t)at, (long)((at - (double)(time_t)at) * 1e9)},
                             {(time_t)mt, (long)((mt - (double)(time_t)mt) * 1e9)}};
    x->utimed = true;
    if (utimensat(AT_FDCWD, x->path, ts, AT_SYMLINK_NOFOLLOW) != 0) {
        call_error(call, x->path);
        return;
    }
    pb_call_answer(call, NULL);
}

static void step_continue(struct step *s);

/* unpack.c is done with the archive. */
static void unpacked_cb(void *arg, const char *error)
{
    struct step *s = arg;
    struct xfer *x = s->xfer;
    x->unpack = NULL;
    if (error != NULL)
        x->unpack_error = xstrdup(error);
    x->finished = error == NULL;
    unlink(x->tmp);
    free(x->tmp);
    x->tmp = NULL;
    if (x->command_done)
        step_continue(s);
}

/* unpack: the archive is complete; unpack.c checks it and puts it in place while the
   command ends. */
static void unpack(struct step *s, struct pb_call *call)
{
    struct xfer *x = s->xfer;
    if (x->closed || x->fd < 0) {
        refuse(s, call, "unpack after unpack");
        return;
    }
    x->closed = true;
    close(x->fd);
    x->fd = -1;
    if (s->abort_reason != NULL) {
        refuse(s, call, "unpack of a failed upload");
        return;
    }
    char *cause = NULL;
    x->unpack = unpack_start(s->b->e->loop, x->tmp, x->compress, x->path, unpacked_cb, s, &cause);
    if (x->unpack == NULL) {
        step_abort(s, "%s", cause);
        pb_call_fail_with(call, "builtins.RuntimeError", runtime_error_parents, "%s", cause);
        free(cause);
        return;
    }
    pb_call_answer(call, NULL);
}

static void writer_call(void *arg, struct pb_call *call)
{
    struct step *s = arg;
    struct xfer *x = s->xfer;
    if (util_streq(call->method, "write")) {
        write_block(s, call);
    } else if (util_streq(call->method, "close") && !x->dir) {
        close_file(s, call);
    } else if (util_streq(call->method, "utime") && !x->dir) {
        utime_file(s, call);
    } else if (util_streq(call->method, "unpack") && x->dir) {
        unpack(s, call);
    } else {
        step_abort(s, "the worker broke the upload protocol: %s on a %s writer",
                   UTIL_ESC(call->method), x->dir ? "directory" : "file");
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", call->method);
    }
}

static void reader_call(void *arg, struct pb_call *call)
{
    struct step *s = arg;
    struct xfer *x = s->xfer;
    if (util_streq(call->method, "read")) {
        const struct pb_value *n = pb_item(call->args, 0);
        long long want = n != NULL && n->kind == PB_INT ? n->u.i : 0;
        if (want < 0 || want > PB_MAX_LENGTH)
            want = PB_MAX_LENGTH;
        if (x->text != NULL) {
            size_t left = x->text_len - x->text_off;
            size_t take = left < (size_t)want ? left : (size_t)want;
            pb_call_answer(call, pb_bytes(x->text + x->text_off, take));
            x->text_off += take;
            return;
        }
        char *buf = xmalloc((size_t)want + 1);
        ssize_t got = x->fd >= 0 ? read(x->fd, buf, (size_t)want) : 0;
        if (got < 0)
            call_error(call, x->path);
        else
            pb_call_answer(call, pb_bytes(buf, (size_t)got));
        free(buf);
    } else if (util_streq(call->method, "close")) {
        if (x->fd >= 0)
            close(x->fd);
        x->fd = -1;
        pb_call_answer(call, NULL);
    } else {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", call->method);
    }
}

/* ------------------------------------------------------------ results */

static void upload_done(struct step *s)
{
    struct xfer *x = s->xfer;
    x->command_done = true;
    if (x->unpack != NULL)
        return; /* unpacked_cb continues */
    step_continue(s);
}

/* The command and any unpack are over: an archive refused ends the step, else the
   upload counts if the worker said rc 0 and the file or directory is in place. */
static void step_continue(struct step *s)
{
    struct xfer *x = s->xfer;
    if (x->unpack_error != NULL) {
        step_fail(s, RES_EXCEPTION, x->unpack_error);
        return;
    }
    bool ok = s->have_rc && s->rc == 0 && x->finished;
    if (!ok && x->path != NULL && !x->dir && x->finished)
        unlink(x->path); /* Buildbot's writer.purge() */
    x->after(s, ok);
}

static void single_after(struct step *s, bool ok)
{
    step_finish(s, ok ? RES_SUCCESS : RES_FAILURE);
}

static void rc_done(struct step *s)
{
    step_finish(s, s->have_rc && s->rc == 0 ? RES_SUCCESS : RES_FAILURE);
}

/* ------------------------------------------------------------ the steps */

/* Starts one upload of `src` on the worker to the checked master path `dest`. */
static int begin_upload(struct step *s, const char *src, const char *dest, bool dir, char **cause)
{
    struct xfer *x = s->xfer;
    if (x->fd >= 0) /* what a failed upload before this one left */
        close(x->fd);
    if (x->tmp != NULL)
        unlink(x->tmp);
    free(x->path);
    free(x->tmp);
    x->path = xstrdup(dest);
    x->dir = dir;
    x->closed = x->utimed = x->finished = x->command_done = false;
    x->written = 0;
    x->tmp = dir ? xasprintf("%s.XXXXXX.tar", x->path) : xasprintf("%s.XXXXXX", x->path);
    x->fd = dir ? mkostemps(x->tmp, 4, O_CLOEXEC) : mkostemp(x->tmp, O_CLOEXEC);
    if (x->fd < 0) {
        util_cause(cause, "%s: %s", x->tmp, strerror(errno));
        free(x->tmp);
        x->tmp = NULL;
        return -1;
    }
    const char *cmd = dir ? "uploadDirectory" : "uploadFile";
    long long blocksize = dir || util_streq(s->kind, "step.multiple_file_upload") ? 16384 : 262144;
    struct pb_value *a = transfer_args(s, "workersrc", "slavesrc", cmd, src, blocksize, cause);
    if (a == NULL)
        return -1;
    if (dir) {
        json_t *c = NULL;
        step_render(s, "compress", &c, cause);
        x->compress = util_streq(json_string_value(c), "gz")    ? "gz"
                      : util_streq(json_string_value(c), "bz2") ? "bz2"
                                                                : NULL;
        json_decref(c);
        pb_dict_set(a, "compress", x->compress != NULL ? pb_text(x->compress) : pb_none());
    } else {
        json_t *k = NULL;
        step_render(s, "keepstamp", &k, cause);
        pb_dict_set(a, "keepstamp", pb_bool(json_is_true(k)));
        json_decref(k);
    }
    x->object = (struct wk_command_object){"writer", writer_call};
    s->object = &x->object;
    step_remote(s, cmd, a, upload_done);
    return 0;
}

static int file_upload(struct step *s, bool dir, char **cause)
{
    struct xfer *x = xfer_new(s);
    x->after = single_after;
    char *src = text_param(s, "workersrc", cause);
    char *dest = src != NULL ? text_param(s, "masterdest", cause) : NULL;
    char *path = dest != NULL ? path_confine(s->b->cfg, dest, PATH_WRITE, cause) : NULL;
    free(dest);
    if (path == NULL) {
        free(src);
        return -1;
    }
    char *what = xasprintf("uploading %s", base_name(src));
    set_done(s, what);
    if (!dir) {
        free(s->description);
        s->description = what;
    } else {
        free(what);
    }
    x->mode = (int)int_param(s, "mode", -1);
    int rc = begin_upload(s, src, path, dir, cause);
    free(src);
    free(path);
    return rc;
}

/* ------------------------------------------------------------ multiple_file_upload */

static void next_source(struct step *s);

static void multi_after(struct step *s, bool ok)
{
    s->xfer->any_failed = s->xfer->any_failed || !ok;
    next_source(s);
}

static bool worker_nt(const struct step *s)
{
    const struct eng_worker *w = engine_worker(s->b->e, s->b->worker);
    return w != NULL && util_streq(pb_str(pb_dict_get(w->info, "system")), "nt");
}

/* The last component of a worker's path (its separators), or NULL if it has no plain one:
   it becomes a name on the master. */
static const char *last_component(const char *path, bool nt)
{
    const char *last = path;
    for (const char *p = path; *p != '\0'; p++)
        if (*p == '/' || (nt && *p == '\\'))
            last = p + 1;
    bool plain = *last != '\0' && strcmp(last, ".") != 0 && strcmp(last, "..") != 0;
    return plain ? last : NULL;
}

static void stat_for_upload(struct step *s)
{
    struct xfer *x = s->xfer;
    const char *src = json_string_value(json_array_get(x->sources, x->next - 1));
    const struct pb_value *mode = pb_item(s->stat, 0);
    bool dir = mode != NULL && mode->kind == PB_INT && S_ISDIR((mode_t)mode->u.i);
    const char *name = last_component(src, worker_nt(s));
    char *dest = name != NULL ? xasprintf("%s/%s", x->dest_dir, name) : NULL;
    char *cause = NULL;
    if (!(s->have_rc && s->rc == 0)) {
        multi_after(s, false);
    } else if (dest == NULL) {
        cause = xasprintf("'%s' has no file name to upload to", UTIL_ESC(src));
        step_fail(s, RES_EXCEPTION, cause);
    } else if (begin_upload(s, src, dest, dir, &cause) != 0) {
        step_fail(s, RES_EXCEPTION, cause);
    }
    free(cause);
    free(dest);
}

static void next_source(struct step *s)
{
    struct xfer *x = s->xfer;
    if (x->next >= json_array_size(x->sources)) {
        step_finish(s, json_array_size(x->sources) == 0 ? RES_SKIPPED
                       : x->any_failed                  ? RES_FAILURE
                                                        : RES_SUCCESS);
        return;
    }
    const char *src = json_string_value(json_array_get(x->sources, x->next++));
    char *workdir = workdir_of(s);
    struct pb_value *a = pb_dict();
    pb_dict_set(a, "file", pb_text(src));
    pb_dict_set(a, "workdir", pb_text(workdir));
    free(workdir);
    step_remote(s, "stat", a, stat_for_upload);
}

static void uploads_begin(struct step *s)
{
    struct xfer *x = s->xfer;
    size_t n = json_array_size(x->sources);
    char *what = xasprintf("uploading %zu %s", n, n == 1 ? "file" : "files");
    set_done(s, what);
    free(what);
    next_source(s);
}

/* The directory a glob pattern is matched in on the worker: the builder's directory
   joined with the step's workdir, as the worker joins them. */
static char *glob_dir(struct step *s, const char *workdir)
{
    bool nt = worker_nt(s);
    const char *base = json_string_value(props_get(&s->b->props, "builddir"));
    if (base == NULL || workdir[0] == '/' || (nt && (workdir[0] == '\\' || workdir[1] == ':')))
        return xstrdup(workdir);
    return xasprintf("%s%c%s", base, nt ? '\\' : '/', workdir);
}

/* The worker's answer to one glob: every name a plain path under the pattern's
   directory (they become names on the master), or the step ends EXCEPTION. */
static bool glob_answer_ok(struct step *s, const char *workdir)
{
    char *dir = glob_dir(s, workdir);
    bool nt = worker_nt(s);
    size_t i;
    json_t *v;
    json_array_foreach(s->files, i, v)
    {
        if (path_globbed(json_string_value(v), dir, nt) == NULL) {
            char *why = xasprintf("the worker's glob answered '%s', which is not a path under '%s'",
                                  UTIL_ESC(json_string_value(v)), UTIL_ESC(dir));
            free(dir);
            step_fail(s, RES_EXCEPTION, why);
            free(why);
            return false;
        }
    }
    free(dir);
    return true;
}

/* glob: each pattern (under the workdir) in turn, its matches added to the sources. */
static void globbed(struct step *s)
{
    struct xfer *x = s->xfer;
    char *workdir = workdir_of(s);
    if (s->files != NULL && !glob_answer_ok(s, workdir)) {
        free(workdir);
        return;
    }
    if (s->files != NULL)
        json_array_extend(x->sources, s->files);
    if (x->next >= json_array_size(x->patterns)) {
        free(workdir);
        x->next = 0;
        uploads_begin(s);
        return;
    }
    const char *pattern = json_string_value(json_array_get(x->patterns, x->next++));
    char *path = xasprintf("%s/%s", workdir, pattern);
    free(workdir);
    struct pb_value *a = pb_dict();
    pb_dict_set(a, "path", pb_text(path));
    pb_dict_set(a, "logEnviron", pb_bool(false));
    free(path);
    json_decref(s->files);
    s->files = NULL;
    step_remote(s, "glob", a, globbed);
}

/* The directory files are uploaded into: made if missing, never a symbolic link. */
static int make_dest_dir(const char *path, char **cause)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return util_cause(cause, "'%s': %s", path, strerror(errno));
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return util_cause(cause, "'%s' is a symbolic link or not a directory", path);
    close(fd);
    return 0;
}

static int multiple_upload(struct step *s, char **cause)
{
    struct xfer *x = xfer_new(s);
    x->after = multi_after;
    json_t *srcs = NULL;
    if (step_render(s, "workersrcs", &srcs, cause) != 0)
        return -1;
    json_t *list = json_is_string(srcs) ? json_pack("[O]", srcs) : json_incref(srcs);
    json_decref(srcs);
    char *dest = text_param(s, "masterdest", cause);
    char *checked = dest != NULL ? path_confine(s->b->cfg, dest, PATH_WRITE, cause) : NULL;
    free(dest);
    if (checked == NULL || make_dest_dir(checked, cause) != 0 || !json_is_array(list)) {
        json_decref(list);
        free(checked);
        return *cause != NULL ? -1 : util_cause(cause, "workersrcs must be a list of paths");
    }
    x->dest_dir = checked;
    x->mode = (int)int_param(s, "mode", -1);
    x->sources = json_array();
    json_t *glob = NULL;
    step_render(s, "glob", &glob, cause);
    if (json_is_true(glob)) {
        x->patterns = list;
        globbed(s);
    } else {
        json_decref(x->sources);
        x->sources = list;
        uploads_begin(s);
    }
    json_decref(glob);
    return 0;
}

static int download(struct step *s, bool string, char **cause)
{
    struct xfer *x = xfer_new(s);
    char *dest = text_param(s, "workerdest", cause);
    if (dest == NULL)
        return -1;
    char *done = xasprintf("downloading to %s", base_name(dest));
    set_done(s, done);
    free(done);
    if (string) {
        x->text = text_param(s, "s", cause); /* served from memory by the reader */
        if (x->text == NULL) {
            free(dest);
            return -1;
        }
        x->text_len = strlen(x->text);
    } else {
        char *src = text_param(s, "mastersrc", cause);
        x->path = src != NULL ? path_confine(s->b->cfg, src, PATH_READ, cause) : NULL;
        free(src);
        x->fd = x->path != NULL ? open(x->path, O_RDONLY | O_CLOEXEC) : -1;
        if (x->path != NULL && x->fd < 0) { /* Buildbot: a stderr log and FAILURE */
            char *msg = xasprintf("File '%s' not available at master", x->path);
            free(dest);
            step_fail(s, RES_FAILURE, msg);
            free(msg);
            return 0;
        }
    }
    if (x->fd < 0 && x->text == NULL) {
        free(dest);
        return *cause != NULL ? -1 : util_cause(cause, "cannot read the download's source");
    }
    struct pb_value *a =
        transfer_args(s, "workerdest", "slavedest", "downloadFile", dest, 16384, cause);
    free(dest);
    if (a == NULL)
        return -1;
    long long mode = int_param(s, "mode", -1);
    pb_dict_set(a, "mode", mode >= 0 ? pb_int(mode) : pb_none());
    x->object = (struct wk_command_object){"reader", reader_call};
    s->object = &x->object;
    step_remote(s, "downloadFile", a, rc_done);
    return 0;
}

static void dir_done(struct step *s)
{
    bool ok = s->have_rc && s->rc == 0;
    if (util_streq(s->kind, "step.mkdir"))
        set_done(s, ok ? "Created" : "Create failed.");
    else if (util_streq(s->kind, "step.rmdir"))
        set_done(s, ok ? "Deleted" : "Delete failed.");
    step_finish(s, ok ? RES_SUCCESS : RES_FAILURE);
}

static void copied(struct step *s)
{
    bool ok = s->have_rc && s->rc == 0;
    char *text = ok ? xasprintf("Copied %s", s->xfer->label)
                    : xasprintf("Copying %s failed.", s->xfer->label);
    set_done(s, text);
    free(text);
    step_finish(s, ok ? RES_SUCCESS : RES_FAILURE);
}

static void stat_done(struct step *s)
{
    const struct pb_value *st = s->stat;
    const struct pb_value *mode = pb_item(st, 0);
    bool found = s->have_rc && s->rc == 0 && mode != NULL && mode->kind == PB_INT;
    bool regular = found && S_ISREG((mode_t)mode->u.i);
    set_done(s, !found ? "File not found." : regular ? "File found." : "Not a file.");
    step_finish(s, regular ? RES_SUCCESS : RES_FAILURE);
}

/* remove_worker_file_secret: rmfile for each path in turn (rmdir before rmfile existed). */
static void next_removal(struct step *s)
{
    struct xfer *x = s->xfer;
    if (x->next > 0 && !(s->have_rc && s->rc == 0))
        x->any_failed = true;
    if (x->next >= json_array_size(x->sources)) {
        step_finish(s, x->any_failed ? RES_FAILURE : RES_SUCCESS);
        return;
    }
    const char *path = json_string_value(json_array_get(x->sources, x->next++));
    bool rmfile = step_worker_has(s, "rmfile", 3, 1);
    struct pb_value *a = pb_dict();
    pb_dict_set(a, rmfile ? "path" : "dir", pb_text(path));
    pb_dict_set(a, "logEnviron", pb_bool(false));
    step_remote(s, rmfile ? "rmfile" : "rmdir", a, next_removal);
}

static int remove_secrets(struct step *s, char **cause)
{
    struct xfer *x = xfer_new(s);
    json_t *list = NULL;
    if (step_render(s, "populated_secret_list", &list, cause) != 0)
        return -1;
    x->sources = json_array();
    size_t i;
    json_t *pair;
    json_array_foreach(list, i, pair)
    {
        json_t *path = json_is_array(pair) ? json_array_get(pair, 0) : NULL;
        if (!json_is_string(path)) {
            json_decref(list);
            return util_cause(cause, "populated_secret_list: entry %zu is not {path, secret}",
                              i + 1);
        }
        json_array_append(x->sources, path);
    }
    json_decref(list);
    next_removal(s);
    return 0;
}

static int worker_dir_step(struct step *s, char **cause)
{
    struct pb_value *a = pb_dict();
    const char *name = NULL;
    void (*then)(struct step *) = dir_done;
    if (util_streq(s->kind, "step.copy_directory")) {
        char *src = text_param(s, "src", cause), *dest = src ? text_param(s, "dest", cause) : NULL;
        if (dest != NULL) {
            xfer_new(s)->label = xasprintf("%s to %s", src, dest);
            pb_dict_set(a, "fromdir", pb_text(src));
            pb_dict_set(a, "todir", pb_text(dest));
            pb_dict_set(a, "timeout", pb_int(int_param(s, "timeout", 120)));
        }
        free(src);
        free(dest);
        name = "cpdir";
        then = copied;
    } else if (util_streq(s->kind, "step.file_exists")) {
        char *file = text_param(s, "file", cause);
        if (file != NULL)
            pb_dict_set(a, "file", pb_text(file));
        free(file);
        name = "stat";
        then = stat_done;
    } else {
        char *dir = text_param(s, "dir", cause);
        if (dir != NULL)
            pb_dict_set(a, "dir", pb_text(dir));
        free(dir);
        name = util_streq(s->kind, "step.mkdir") ? "mkdir" : "rmdir";
    }
    if (*cause != NULL) {
        pb_value_free(a);
        return -1;
    }
    step_remote(s, name, a, then);
    return 0;
}

/* ------------------------------------------------------------ on the master */

static void proc_closed(uv_handle_t *h)
{
    struct step *s = h->data;
    struct xfer *x = s->xfer;
    if (--x->open_handles > 0)
        return;
    s->local = false;
    int results = RES_SUCCESS;
    char line[64];
    if (s->interrupted) {
        results = RES_CANCELLED;
    } else if (x->term_signal != 0 || x->exit_status != 0) { /* MasterShellCommand's words */
        bool sig = x->term_signal != 0;
        long long v = sig ? x->term_signal : x->exit_status;
        snprintf(line, sizeof line, "%s %lld\n", sig ? "signal" : "exit status", v);
        if (s->stdio != NULL)
            steplog_add(s->stdio, 'h', line, strlen(line));
        snprintf(line, sizeof line, "%s (%lld)", sig ? "killed" : "failed", v);
        set_done(s, line);
        results = RES_FAILURE;
    }
    step_finish(s, results);
}

static void proc_exit(uv_process_t *p, int64_t status, int signal)
{
    struct step *s = p->data;
    s->xfer->exit_status = status;
    s->xfer->term_signal = signal;
    uv_close((uv_handle_t *)p, proc_closed);
}

static void pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void pipe_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    struct step *s = stream->data;
    struct xfer *x = s->xfer;
    if (n > 0) {
        steplog_add(s->stdio, (uv_pipe_t *)stream == &x->out ? 'o' : 'e', buf->base, (size_t)n);
    } else if (n < 0) {
        uv_read_stop(stream);
        uv_close((uv_handle_t *)stream, proc_closed);
    }
}

static int master_shell(struct step *s, char **cause)
{
    struct xfer *x = xfer_new(s);
    if (!json_is_string(s->command) && !json_is_array(s->command))
        return util_cause(cause, "the command must be a string or a list of strings");
    size_t n = json_is_string(s->command) ? 3 : json_array_size(s->command);
    if (n == 0)
        return util_cause(cause, "the command is empty");
    char **argv = xcalloc(n + 1, sizeof *argv);
    struct buf shown;
    buf_init(&shown, 1u << 16);
    if (json_is_string(s->command)) {
        argv[0] = xstrdup("/bin/sh");
        argv[1] = xstrdup("-c");
        argv[2] = xstrdup(json_string_value(s->command));
        buf_printf(&shown, "%s\n\n", json_string_value(s->command));
    } else {
        for (size_t i = 0; i < n; i++) {
            argv[i] = props_str(json_array_get(s->command, i));
            buf_printf(&shown, "%s%s", i > 0 ? " " : "", argv[i]);
        }
        buf_addstr(&shown, "\n\n");
    }
    char *cause_log = NULL;
    s->stdio = step_log_open(s, "stdio", 's', &cause_log);
    if (s->stdio == NULL) {
        engine_db_error("adding a log", cause_log);
    } else {
        char cwd[PATH_MAX] = "?";
        steplog_add(s->stdio, 'h', shown.data, shown.len);
        buf_reset(&shown);
        buf_printf(&shown, "** RUNNING ON BUILDMASTER **\n in dir %s\n",
                   getcwd(cwd, sizeof cwd) != NULL ? cwd : "?");
        steplog_add(s->stdio, 'h', shown.data, shown.len);
    }
    buf_free(&shown);
    uv_loop_t *loop = s->b->e->loop;
    uv_pipe_init(loop, &x->out, 0);
    uv_pipe_init(loop, &x->err, 0);
    x->out.data = x->err.data = x->proc.data = s;
    uv_stdio_container_t io[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->err}};
    uv_process_options_t o = {.exit_cb = proc_exit,
                              .file = argv[0],
                              .args = argv,
                              .stdio = io,
                              .stdio_count = 3,
                              .flags = UV_PROCESS_DETACHED};
    int rc = uv_spawn(loop, &x->proc, &o);
    for (size_t i = 0; i < n; i++)
        free(argv[i]);
    free(argv);
    x->open_handles = 3;
    s->local = true;
    if (rc != 0) { /* the handles are initialized all the same: closing them ends the step */
        char msg[256];
        snprintf(msg, sizeof msg, "cannot run the command: %s\n", uv_strerror(rc));
        if (s->stdio != NULL)
            steplog_add(s->stdio, 'e', msg, strlen(msg));
        x->exit_status = 127;
        uv_close((uv_handle_t *)&x->out, proc_closed);
        uv_close((uv_handle_t *)&x->err, proc_closed);
        uv_close((uv_handle_t *)&x->proc, proc_closed);
        return 0;
    }
    uv_read_start((uv_stream_t *)&x->out, pipe_alloc, pipe_read);
    uv_read_start((uv_stream_t *)&x->err, pipe_alloc, pipe_read);
    return 0;
}

bool transfer_interrupt(struct step *s)
{
    struct xfer *x = s->xfer;
    if (x == NULL || !s->local)
        return false;
    uv_process_kill(&x->proc, SIGKILL);
    return true;
}

bool transfer_kind(const char *kind)
{
    static const char *const kinds[] = {
        "step.file_upload",   "step.directory_upload",    "step.multiple_file_upload",
        "step.file_download", "step.string_download",     "step.mkdir",
        "step.rmdir",         "step.copy_directory",      "step.remove_worker_file_secret",
        "step.file_exists",   "step.master_shell_command"};
    for (size_t i = 0; i < UTIL_NELEM(kinds); i++)
        if (util_streq(kind, kinds[i]))
            return true;
    return false;
}

int transfer_run(struct step *s, char **cause)
{
    const char *k = s->kind;
    if (util_streq(k, "step.file_upload") || util_streq(k, "step.directory_upload"))
        return file_upload(s, util_streq(k, "step.directory_upload"), cause);
    if (util_streq(k, "step.multiple_file_upload"))
        return multiple_upload(s, cause);
    if (util_streq(k, "step.file_download") || util_streq(k, "step.string_download"))
        return download(s, util_streq(k, "step.string_download"), cause);
    if (util_streq(k, "step.master_shell_command"))
        return master_shell(s, cause);
    if (util_streq(k, "step.remove_worker_file_secret"))
        return remove_secrets(s, cause);
    return worker_dir_step(s, cause);
}
