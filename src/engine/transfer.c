/*
 * Steps that move files or touch the worker's directories, as Buildbot's
 * transfer and worker steps do: file_upload (uploadFile into a FileWriter),
 * directory_upload (uploadDirectory: a tarball unpacked with tar),
 * multiple_file_upload (glob, then stat and one of those per file), file_download
 * and string_download (downloadFile from a FileReader), mkdir, rmdir,
 * copy_directory (cpdir), file_exists (stat), remove_worker_file_secret (rmfile),
 * and master_shell_command, which runs on the master itself.
 *
 * Master paths are confined: a relative path stays inside the master's
 * directory, an absolute one must lie inside one of the configuration's
 * uploadRoots, and no path may have a ".." component; the check is made on
 * the real path of the directory, so a symbolic link cannot lead out.
 */
#include "engine/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

struct xfer {
    char *path; /* on the master: the destination, or the source read */
    char *tmp;  /* an upload's temporary file, renamed or unpacked at the end */
    int fd;     /* -1 when closed */
    long long maxsize, written;
    int mode; /* -1: leave as created */
    bool have_times, finished, dir;
    char *label; /* copy_directory: "SRC to DEST" */
    char *text;  /* string_download: what the reader serves instead of a file */
    size_t text_len, text_off;
    void (*after)(struct step *s, bool ok); /* an upload is over */
    /* multiple_file_upload */
    json_t *patterns, *sources; /* what is left to glob, to upload */
    size_t next;
    char *dest_dir;
    bool any_failed;
    double atime, mtime;
    const char *compress; /* NULL, "gz", "bz2" */
    struct wk_command_object object;
    /* unpack: tar runs on the loop; the step waits for it and for the command */
    uv_process_t *tar; /* while it runs */
    bool tar_running, tar_failed, command_done;
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
    if (x->tar != NULL) /* the step ended first (a lost worker): tar finishes alone */
        x->tar->data = NULL;
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

/* ------------------------------------------------------------ master paths */

static bool has_dotdot(const char *path)
{
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
        bool start = p == path || p[-1] == '/';
        bool end = p[2] == '\0' || p[2] == '/';
        if (start && end)
            return true;
    }
    return false;
}

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The master path `path` if the configuration allows it (its directory made when
   `make_dir`), else NULL with *cause. */
static char *master_path(struct step *s, const char *path, bool make_dir, char **cause)
{
    if (*path == '\0' || has_dotdot(path)) {
        util_cause(cause, "'%s': a master path may not be empty or contain '..'", path);
        return NULL;
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        util_cause(cause, "cannot read the master's directory");
        return NULL;
    }
    char *full = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", cwd, path);
    char *slash = strrchr(full, '/');
    char *dir = slash == full ? xstrdup("/") : xstrndup(full, (size_t)(slash - full));
    if (make_dir) {
        for (char *p = dir + 1; *p != '\0'; p++)
            if (*p == '/') {
                *p = '\0';
                mkdir(dir, 0755);
                *p = '/';
            }
        mkdir(dir, 0755);
    }
    char real[PATH_MAX];
    bool ok = realpath(dir, real) != NULL;
    bool allowed = ok && under(real, cwd);
    for (size_t i = 0; ok && !allowed && i < s->b->cfg->n_upload_roots; i++) {
        char root[PATH_MAX];
        allowed = realpath(s->b->cfg->upload_roots[i], root) != NULL && under(real, root);
    }
    char *out = NULL;
    if (!ok)
        util_cause(cause, "'%s': %s", dir, strerror(errno));
    else if (!allowed)
        util_cause(cause,
                   "'%s' is outside the master's directory and the configuration's "
                   "uploadRoots",
                   path);
    else
        out = xasprintf("%s/%s", real, slash + 1);
    free(dir);
    free(full);
    return out;
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

static void write_block(struct xfer *x, struct pb_call *call)
{
    const struct pb_value *data = pb_item(call->args, 0);
    if (data == NULL || (data->kind != PB_BYTES && data->kind != PB_TEXT) || x->fd < 0) {
        pb_call_answer(call, NULL);
        return;
    }
    size_t len = data->u.s.len;
    if (x->maxsize >= 0 && x->written + (long long)len > x->maxsize)
        len = x->written < x->maxsize ? (size_t)(x->maxsize - x->written) : 0;
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

static void apply_times(struct xfer *x)
{
    struct timeval tv[2] = {{(time_t)x->atime, (suseconds_t)((x->atime - (time_t)x->atime) * 1e6)},
                            {(time_t)x->mtime, (suseconds_t)((x->mtime - (time_t)x->mtime) * 1e6)}};
    utimes(x->path, tv);
}

static void close_file(struct xfer *x, struct pb_call *call)
{
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
        if (rename(x->tmp, x->path) != 0) {
            call_error(call, x->path);
            return;
        }
        free(x->tmp);
        x->tmp = NULL;
        if (x->mode >= 0)
            chmod(x->path, (mode_t)x->mode);
        x->finished = true;
        if (x->have_times)
            apply_times(x);
    }
    pb_call_answer(call, NULL);
}

static void step_continue(struct step *s);

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

static void tar_exit_cb(uv_process_t *p, int64_t status, int signal)
{
    struct step *s = p->data;
    uv_close((uv_handle_t *)p, free_handle_cb);
    if (s == NULL)
        return;
    struct xfer *x = s->xfer;
    x->tar = NULL;
    x->tar_running = false;
    x->tar_failed = status != 0 || signal != 0;
    x->finished = !x->tar_failed;
    if (x->tar_failed)
        log_warn("build %lld step '%s': tar could not unpack the upload into %s", s->b->id, s->name,
                 x->path);
    unlink(x->tmp);
    if (x->command_done)
        step_continue(s);
}

static void unpack(struct step *s, struct pb_call *call)
{
    struct xfer *x = s->xfer;
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
    }
    mkdir(x->path, 0755);
    const char *flag = x->compress == NULL ? "-x" : util_streq(x->compress, "gz") ? "-xz" : "-xj";
    char *argv[] = {"tar", (char *)flag, "--no-same-owner", "-f", x->tmp, "-C", x->path, NULL};
    uv_process_options_t o = {.exit_cb = tar_exit_cb, .file = "tar", .args = argv};
    uv_process_t *tar = xcalloc(1, sizeof *tar);
    tar->data = s;
    int rc = uv_spawn(s->b->e->loop, tar, &o);
    if (rc != 0) {
        uv_close((uv_handle_t *)tar, free_handle_cb);
        x->tar_failed = true;
        errno = -rc;
        call_error(call, "tar");
        return;
    }
    x->tar_running = true;
    x->tar = tar;
    pb_call_answer(call, NULL);
}

static void writer_call(void *arg, struct pb_call *call)
{
    struct step *s = arg;
    struct xfer *x = s->xfer;
    if (util_streq(call->method, "write")) {
        write_block(x, call);
    } else if (util_streq(call->method, "close") && !x->dir) {
        close_file(x, call);
    } else if (util_streq(call->method, "utime") && !x->dir) {
        const struct pb_value *t = pb_item(call->args, 0);
        const struct pb_value *a = pb_item(t, 0), *m = pb_item(t, 1);
        x->atime = a != NULL && a->kind == PB_FLOAT ? a->u.f : a != NULL ? (double)a->u.i : 0;
        x->mtime = m != NULL && m->kind == PB_FLOAT ? m->u.f : m != NULL ? (double)m->u.i : 0;
        x->have_times = true;
        if (x->finished)
            apply_times(x);
        pb_call_answer(call, NULL);
    } else if (util_streq(call->method, "unpack") && x->dir) {
        unpack(s, call);
    } else {
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
    if (x->tar_running)
        return; /* tar_exit_cb continues */
    step_continue(s);
}

static void step_continue(struct step *s)
{
    struct xfer *x = s->xfer;
    bool ok = s->have_rc && s->rc == 0 && !x->tar_failed && (x->finished || !x->dir);
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
    x->finished = x->tar_failed = x->command_done = false;
    x->written = 0;
    x->tmp = dir ? xasprintf("%s.XXXXXX.tar", x->path) : xasprintf("%s.XXXXXX", x->path);
    x->fd = dir ? mkstemps(x->tmp, 4) : mkstemp(x->tmp);
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
    char *path = dest != NULL ? master_path(s, dest, true, cause) : NULL;
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

static void stat_for_upload(struct step *s)
{
    struct xfer *x = s->xfer;
    const char *src = json_string_value(json_array_get(x->sources, x->next - 1));
    const struct pb_value *mode = pb_item(s->stat, 0);
    bool dir = mode != NULL && mode->kind == PB_INT && S_ISDIR((mode_t)mode->u.i);
    char *dest = xasprintf("%s/%s", x->dest_dir, base_name(src));
    char *cause = NULL;
    if (!(s->have_rc && s->rc == 0)) {
        multi_after(s, false);
    } else if (begin_upload(s, src, dest, dir, &cause) != 0) {
        step_fail(s, RES_EXCEPTION, cause);
        free(cause);
    }
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
    char *cause = NULL;
    json_t *workdir = NULL;
    step_render(s, "workdir", &workdir, &cause);
    free(cause);
    struct pb_value *a = pb_dict();
    pb_dict_set(a, "file", pb_text(src));
    pb_dict_set(a, "workdir",
                pb_text(json_is_string(workdir) ? json_string_value(workdir) : "build"));
    json_decref(workdir);
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

/* glob: each pattern (under the workdir) in turn, its matches added to the sources. */
static void globbed(struct step *s)
{
    struct xfer *x = s->xfer;
    if (s->files != NULL)
        json_array_extend(x->sources, s->files);
    if (x->next >= json_array_size(x->patterns)) {
        x->next = 0;
        uploads_begin(s);
        return;
    }
    char *cause = NULL;
    json_t *workdir = NULL;
    step_render(s, "workdir", &workdir, &cause);
    free(cause);
    const char *pattern = json_string_value(json_array_get(x->patterns, x->next++));
    char *path =
        xasprintf("%s/%s", json_is_string(workdir) ? json_string_value(workdir) : "build", pattern);
    json_decref(workdir);
    struct pb_value *a = pb_dict();
    pb_dict_set(a, "path", pb_text(path));
    pb_dict_set(a, "logEnviron", pb_bool(false));
    free(path);
    json_decref(s->files);
    s->files = NULL;
    step_remote(s, "glob", a, globbed);
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
    char *probe = dest != NULL ? xasprintf("%s/.", dest) : NULL;
    char *checked = probe != NULL ? master_path(s, probe, true, cause) : NULL;
    free(dest);
    free(probe);
    if (checked == NULL || !json_is_array(list)) {
        json_decref(list);
        free(checked);
        return *cause != NULL ? -1 : util_cause(cause, "workersrcs must be a list of paths");
    }
    checked[strlen(checked) - 2] = '\0'; /* the directory itself */
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
        x->path = src != NULL ? master_path(s, src, false, cause) : NULL;
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
    s->stdio = steplog_open(s->b->e, s->id, "stdio", 's', &cause_log);
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
