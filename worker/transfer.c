/*
 * transfer.c: uploadFile, uploadDirectory and downloadFile (SPEC 5.9), as
 * buildbot-worker runs them: strictly one call at a time on the master's
 * FileWriter or FileReader (write/read, then close, utime or unpack), at
 * most min(blocksize, 655360) bytes per block and `maxsize` in all ("Maximum
 * filesize reached, truncating file ..." and rc 1 past it), an interrupt
 * stopping at the next block with rc 1.  uploadDirectory first makes a tar
 * archive (gz/bz2 on request) of the directory's entries in a temporary file
 * with the `tar` program, then uploads it and calls unpack.  The writer or
 * reader reference is released at the end, like the RemoteCommand's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bbw_internal.h"
#include "util/util.h"

#define MAX_BLOCK PB_MAX_LENGTH /* what one banana string may hold */
#define TAR_MAX_ARGS 4096       /* entries named on tar's command line, else "." */

enum xfer_kind { UPLOAD, UPLOAD_DIR, DOWNLOAD };

struct bbw_transfer {
    struct bbw_cmd *cmd;
    enum xfer_kind kind;
    char *path; /* the worker's file or directory */
    char *tmp;  /* uploadDirectory's archive */
    int fd;
    uint32_t remote;   /* the writer or reader */
    int64_t remaining; /* -1: no maxsize */
    size_t blocksize;
    bool keepstamp;
    int mode; /* downloadFile: -1 = leave */
    int rc;
    char *stderr_text;
    char *compress; /* NULL, "gz" or "bz2" */
    uv_process_t tar;
    struct stat st; /* the uploaded file, for keepstamp */
};

static void xfer_free(struct bbw_transfer *x)
{
    if (x->fd >= 0)
        close(x->fd);
    if (x->tmp) {
        unlink(x->tmp);
        free(x->tmp);
    }
    free(x->path);
    free(x->stderr_text);
    free(x->compress);
    free(x);
}

/* The end: stderr, rc, elapsed, complete; the remote object is released. */
static void xfer_end(struct bbw_transfer *x)
{
    struct bbw_cmd *c = x->cmd;
    if (!c->abandoned) {
        if (x->stderr_text)
            bbw_cmd_update(c, "stderr", pb_text(x->stderr_text));
        bbw_cmd_update(c, "rc", pb_int(x->rc));
        if (!c->interrupted)
            bbw_cmd_update(c, "elapsed", pb_float((double)(uv_hrtime() - c->started_ns) / 1e9));
        pb_broker_decref(c->broker, x->remote);
    }
    bbw_cmd_finish(c, NULL);
    xfer_free(x);
    bbw_cmd_release(c);
}

static void fail(struct bbw_transfer *x, const char *fmt, const char *path)
{
    if (!x->stderr_text)
        x->stderr_text = xasprintf(fmt, path);
    x->rc = 1;
}

static void step(struct bbw_transfer *x);

/* One call on the writer/reader; `cb` runs with its answer (or the connection's end). */
static void call(struct bbw_transfer *x, const char *method, struct pb_value *args, pb_answer_cb cb)
{
    char *cause = NULL;
    if (x->cmd->abandoned ||
        pb_broker_call(x->cmd->broker, x->remote, method, args, NULL, cb, x, &cause) < 0) {
        free(cause);
        xfer_end(x);
    }
}

static bool lost(struct bbw_transfer *x, const struct pb_value *failure)
{
    if (x->cmd->abandoned || x->cmd->finished) {
        xfer_end(x);
        return true;
    }
    if (failure) {
        char *why = pb_failure_describe(failure);
        x->stderr_text = x->stderr_text ? x->stderr_text : xasprintf("transfer failed: %s", why);
        x->rc = 1;
        free(why);
    }
    return false;
}

static void ended_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct bbw_transfer *x = arg;
    (void)result;
    if (!lost(x, failure))
        xfer_end(x);
}

static void closed_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct bbw_transfer *x = arg;
    (void)result;
    if (lost(x, failure))
        return;
    if (x->kind == UPLOAD && x->keepstamp && x->fd >= 0 && x->rc == 0) {
        struct pb_value *times = pb_tuple();
        pb_append(times, pb_float((double)x->st.st_atim.tv_sec + x->st.st_atim.tv_nsec / 1e9));
        pb_append(times, pb_float((double)x->st.st_mtim.tv_sec + x->st.st_mtim.tv_nsec / 1e9));
        call(x, "utime", pb_append(pb_tuple(), times), ended_cb);
        return;
    }
    if (x->kind == DOWNLOAD && x->fd >= 0 && x->mode >= 0 && fchmod(x->fd, (mode_t)x->mode) < 0)
        fail(x, "Cannot set the mode of '%s'", x->path);
    xfer_end(x);
}

/* Close (or unpack): the last call on the writer/reader. */
static void finish(struct bbw_transfer *x)
{
    call(x, x->kind == UPLOAD_DIR ? "unpack" : "close", NULL, closed_cb);
}

static void wrote_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct bbw_transfer *x = arg;
    (void)result;
    if (lost(x, failure))
        return;
    if (failure)
        finish(x);
    else
        step(x);
}

static void read_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct bbw_transfer *x = arg;
    if (lost(x, failure))
        return;
    if (failure || !result || (result->kind != PB_BYTES && result->kind != PB_TEXT)) {
        if (!failure)
            fail(x, "the master's reader sent something else than bytes for '%s'", x->path);
        finish(x);
        return;
    }
    size_t n = result->u.s.len;
    if (n == 0) {
        finish(x);
        return;
    }
    if (x->remaining >= 0 && (int64_t)n > x->remaining)
        n = (size_t)x->remaining;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(x->fd, result->u.s.data + off, n - off);
        if (w < 0) {
            char *msg = xasprintf("Cannot write '%%s': %s", strerror(errno));
            fail(x, msg, x->path);
            free(msg);
            finish(x);
            return;
        }
        off += (size_t)w;
    }
    if (x->remaining >= 0)
        x->remaining -= (int64_t)n;
    step(x);
}

/* The next block, as buildbot-worker's _writeBlock / _readBlock. */
static void step(struct bbw_transfer *x)
{
    if (x->cmd->interrupted) {
        x->rc = 1;
        finish(x);
        return;
    }
    size_t len = x->blocksize;
    if (x->remaining >= 0 && (int64_t)len > x->remaining)
        len = (size_t)x->remaining;
    if (len == 0) {
        fail(x, "Maximum filesize reached, truncating file '%s'", x->path);
        finish(x);
        return;
    }
    if (x->kind == DOWNLOAD) {
        call(x, "read", pb_append(pb_tuple(), pb_int((int64_t)len)), read_cb);
        return;
    }
    char *block = xmalloc(len);
    ssize_t got = read(x->fd, block, len);
    if (got <= 0) {
        free(block);
        if (got < 0)
            fail(x, "Cannot read file '%s' for upload", x->path);
        finish(x);
        return;
    }
    if (x->remaining >= 0)
        x->remaining -= got;
    call(x, "write", pb_append(pb_tuple(), pb_bytes(block, (size_t)got)), wrote_cb);
    free(block);
}

static void start_upload(struct bbw_transfer *x, const char *file)
{
    x->fd = open(file, O_RDONLY | O_CLOEXEC);
    if (x->fd < 0 || fstat(x->fd, &x->st) < 0) {
        fail(x, "Cannot open file '%s' for upload", x->path);
        finish(x);
        return;
    }
    step(x);
}

static void tar_closed_cb(uv_handle_t *h)
{
    struct bbw_transfer *x = h->data;
    start_upload(x, x->tmp);
}

static void tar_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct bbw_transfer *x = p->data;
    if (status != 0 || sig != 0)
        fail(x, "Cannot archive directory '%s' for upload (tar failed)", x->path);
    uv_close((uv_handle_t *)p, tar_closed_cb);
}

static void tar_failed_cb(uv_handle_t *h)
{
    finish(h->data);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* tar -c[z|j]f TMP -C DIR <entries>: member names relative to the directory, as Buildbot's. */
static void start_tar(struct bbw_transfer *x)
{
    char **argv = xcalloc(TAR_MAX_ARGS + 10, sizeof(char *));
    size_t n = 0;
    argv[n++] = xstrdup("tar");
    argv[n++] = xstrdup(!x->compress ? "-cf" : strcmp(x->compress, "gz") == 0 ? "-czf" : "-cjf");
    argv[n++] = xstrdup(x->tmp);
    argv[n++] = xstrdup("-C");
    argv[n++] = xstrdup(x->path);
    argv[n++] = xstrdup("--");
    size_t first = n;
    DIR *d = opendir(x->path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n - first <= TAR_MAX_ARGS)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            argv[n++] = xstrdup(e->d_name);
    if (d)
        closedir(d);
    if (n - first > TAR_MAX_ARGS) {
        while (n > first)
            free(argv[--n]);
        argv[n++] = xstrdup(".");
    }
    qsort(argv + first, n - first, sizeof(char *), cmp_names);
    if (n == first) { /* an empty directory: an empty archive */
        free(argv[first - 1]);
        argv[first - 1] = xstrdup("-T");
        argv[n++] = xstrdup("/dev/null");
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_IGNORE}};
    uv_process_options_t o = {
        .exit_cb = tar_exit_cb, .file = "tar", .args = argv, .stdio_count = 3, .stdio = stdio};
    x->tar.data = x;
    int rc = util_is_dir(x->path) ? uv_spawn(x->cmd->w->loop, &x->tar, &o) : UV_ENOTDIR;
    x->tar.data = x;
    if (rc < 0) {
        fail(x, "Cannot read directory '%s' for upload", x->path);
        if (rc != UV_ENOTDIR)
            uv_close((uv_handle_t *)&x->tar, tar_failed_cb); /* the handle was initialised */
        else
            finish(x);
    }
    for (size_t i = 0; i < n; i++)
        free(argv[i]);
    free(argv);
}

static void start_download(struct bbw_transfer *x)
{
    char *dir = xstrdup(x->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        for (char *q = dir + 1; *q; q++) {
            if (*q == '/') {
                *q = 0;
                mkdir(dir, 0777);
                *q = '/';
            }
        }
        mkdir(dir, 0777);
    }
    free(dir);
    x->fd = open(x->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (x->fd < 0) {
        fail(x, "Cannot open file '%s' for download", x->path);
        finish(x);
        return;
    }
    step(x);
}

/* The worker-side path of a transfer: builder dir / workdir / name, `~` expanded. */
static char *xfer_path(struct bbw_cmd *c, const struct pb_value *args, const char *key,
                       const char *old_key)
{
    const char *name = pb_str(pb_dict_get(args, key));
    if (!name)
        name = pb_str(pb_dict_get(args, old_key));
    if (!name)
        return NULL;
    if (name[0] == '~' && (name[1] == '/' || !name[1]) && getenv("HOME"))
        return xasprintf("%s%s", getenv("HOME"), name + 1);
    const char *workdir = pb_str(pb_dict_get(args, "workdir"));
    char *rel = workdir && name[0] != '/' ? xasprintf("%s/%s", workdir, name) : xstrdup(name);
    char *path = bbw_cmd_path(c, rel);
    free(rel);
    return path;
}

int bbw_transfer_run(struct bbw_cmd *c, const char *name, const struct pb_value *args)
{
    enum xfer_kind kind =
        strcmp(name, "downloadFile") == 0 || strcmp(name, "download_file") == 0         ? DOWNLOAD
        : strcmp(name, "uploadDirectory") == 0 || strcmp(name, "upload_directory") == 0 ? UPLOAD_DIR
                                                                                        : UPLOAD;
    const struct pb_value *remote = pb_dict_get(args, kind == DOWNLOAD ? "reader" : "writer");
    char *path = kind == DOWNLOAD ? xfer_path(c, args, "workerdest", "slavedest")
                                  : xfer_path(c, args, "workersrc", "slavesrc");
    if (!remote || remote->kind != PB_REMOTE || !path) {
        free(path);
        return -1;
    }
    struct bbw_transfer *x = xcalloc(1, sizeof(*x));
    x->cmd = c;
    c->holds++; /* until xfer_end */
    x->kind = kind;
    x->path = path;
    x->fd = -1;
    x->remote = remote->u.luid;
    const struct pb_value *v = pb_dict_get(args, "maxsize");
    x->remaining = v && v->kind == PB_INT && v->u.i >= 0 ? v->u.i : -1;
    v = pb_dict_get(args, "blocksize");
    x->blocksize = v && v->kind == PB_INT && v->u.i > 0 ? (size_t)v->u.i : 16384;
    if (x->blocksize > MAX_BLOCK)
        x->blocksize = MAX_BLOCK;
    v = pb_dict_get(args, "keepstamp");
    x->keepstamp = v && ((v->kind == PB_BOOL && v->u.b) || (v->kind == PB_INT && v->u.i));
    v = pb_dict_get(args, "mode");
    x->mode = v && v->kind == PB_INT && v->u.i >= 0 && v->u.i <= 07777 ? (int)v->u.i : -1;
    const char *compress = pb_str(pb_dict_get(args, "compress"));
    if (compress && (strcmp(compress, "gz") == 0 || strcmp(compress, "bz2") == 0))
        x->compress = xstrdup(compress);
    if (kind != DOWNLOAD) {
        char *text = xasprintf("sending %s\n", path);
        bbw_cmd_output(c, BBW_HEADER, text, strlen(text));
        free(text);
    }
    if (kind == UPLOAD) {
        start_upload(x, path);
    } else if (kind == DOWNLOAD) {
        start_download(x);
    } else {
        char tmpl[] = "/tmp/bbworker-upload-XXXXXX";
        int fd = mkstemp(tmpl);
        if (fd >= 0)
            close(fd);
        x->tmp = xstrdup(tmpl);
        if (fd < 0) {
            fail(x, "Cannot create a temporary file to archive '%s'", path);
            finish(x);
        } else {
            start_tar(x);
        }
    }
    return 0;
}
