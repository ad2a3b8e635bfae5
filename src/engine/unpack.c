/*
 * A directory upload's archive put in place, as Buildbot 4.3's DirectoryWriter does
 * with tarfile's 'data' filter, and stricter, since the archive is the worker's to
 * make.  Three stages, none of which follows a link:
 *
 *   list     `tar -tv` reads the archive; one absolute name, '..' component,
 *            symbolic or hard link, device or other special file, path deeper than
 *            UNPACK_MAX_DEPTH, entry past UNPACK_MAX_ENTRIES or byte past
 *            UNPACK_MAX_BYTES refuses the whole archive before anything is written;
 *   extract  `tar -x` into a new directory beside the destination, which nothing
 *            else writes to;
 *   move     (on the loop's thread pool) the new tree is checked again (directories
 *            and single-link regular files only, modes without set-id bits or write
 *            for group and others), compared with the destination (a destination
 *            entry that is a symbolic link, or not of the upload's type, refuses the
 *            upload before anything moves), then moved in with renameat: directories
 *            present on both sides merged, files replaced, as extracting over the
 *            destination would.  The destination itself must not be a symbolic link.
 *
 * The new directory is removed whatever happens.  The caller is told once, on the
 * loop, unless it abandons the unpack first (the step ended): then tar is killed and
 * the unpack frees itself once its processes and work are over.
 */
#include "engine/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A line of the listing: mode, owner, size, date, time and a C-quoted name. */
#define LISTING_LINE_MAX (4 * PATH_MAX + 256)
/* What one archive may hold: entries, bytes of files, depth of a path. */
#define UNPACK_MAX_ENTRIES 100000
#define UNPACK_MAX_BYTES (16LL << 30)
#define UNPACK_MAX_DEPTH 32

enum stage { LISTING, EXTRACTING, MOVING };

struct unpack {
    uv_loop_t *loop;
    char *archive, *dest, *staging; /* staging: NULL until made */
    const char *zflag;              /* NULL, "-z", "-j" */
    unpack_done_cb done;            /* NULL once abandoned */
    void *arg;
    atomic_bool abandoned; /* read by the move stage on the thread pool */
    enum stage stage;
    uv_process_t proc;
    uv_pipe_t out;
    int open_handles;
    bool running; /* tar has not exited */
    int64_t status;
    int term_signal;
    struct buf line; /* the listing's unfinished line */
    long long entries, bytes;
    char *error;
    uv_work_t work;
};

static void set_error(struct unpack *u, const char *fmt, ...) UTIL_PRINTF(2, 3);

static void set_error(struct unpack *u, const char *fmt, ...)
{
    if (u->error != NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    u->error = xvasprintf(fmt, ap);
    va_end(ap);
}

static void unpack_free(struct unpack *u)
{
    free(u->archive);
    free(u->dest);
    free(u->staging);
    buf_free(&u->line);
    free(u->error);
    free(u);
}

/* ------------------------------------------------------------ the listing */

/* The C-quoted name at `p` ("..." with tar's escapes) into `out`; the end, or NULL. */
static const char *unquote(const char *p, struct buf *out)
{
    static const char from[] = "abfnrtv\\\"'?", to[] = "\a\b\f\n\r\t\v\\\"'?";
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        char c = *p++;
        if (c == '\0')
            return NULL;
        if (c == '\\' && *p >= '0' && *p <= '7') {
            int v = 0;
            for (int i = 0; i < 3 && *p >= '0' && *p <= '7'; i++)
                v = v * 8 + (*p++ - '0');
            c = (char)v;
        } else if (c == '\\') {
            const char *k = *p != '\0' ? strchr(from, *p) : NULL;
            if (k == NULL)
                return NULL;
            c = to[k - from];
            p++;
        }
        if (c == '\0' || buf_addc(out, c) != 0)
            return NULL;
    }
    return p + 1;
}

/* How deep `name` lies under the archive's root (0: the root itself), or -1 for an
   absolute name, -2 for one with a '..' component. */
static int name_depth(const char *name)
{
    int depth = 0;
    bool absolute = name[0] == '/';
    for (const char *p = name; *p != '\0';) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -2;
        if (n > 0 && !(n == 1 && p[0] == '.'))
            depth++;
        p += n + (p[n] == '/');
    }
    return absolute && depth > 0 ? -1 : depth;
}

static const char *type_name(char type)
{
    switch (type) {
    case 'l':
        return "a symbolic link";
    case 'h':
        return "a hard link";
    case 'c':
    case 'b':
        return "a device file";
    case 'p':
        return "a named pipe";
    default:
        return "a special file";
    }
}

/* One line of `tar -tv --quoting-style=c`; false once the archive is refused. */
static bool check_entry(struct unpack *u, const char *line)
{
    const char *quoted = strchr(line, '"');
    struct buf name;
    buf_init(&name, PATH_MAX);
    const char *end = quoted != NULL ? unquote(quoted, &name) : NULL;
    long long size = 0;
    char type = line[0];
    int depth = end != NULL ? name_depth(name.data != NULL ? name.data : "") : 0;
    int shown = quoted != NULL ? (int)strnlen(quoted, 200) : 0;
    if (end == NULL || (type != 'l' && type != 'h' && *end != '\0'))
        set_error(u, "the archive's listing could not be read: %.200s", line);
    else if (type != '-' && type != 'd')
        set_error(u, "the archive holds %s, %.*s", type_name(type), shown, quoted);
    else if (depth == -1)
        set_error(u, "the archive holds an absolute name, %.*s", shown, quoted);
    else if (depth == -2)
        set_error(u, "the archive holds a name with a '..' component, %.*s", shown, quoted);
    else if (depth == 0 && type != 'd')
        set_error(u, "the archive holds a file in place of its root, %.*s", shown, quoted);
    else if (depth > UNPACK_MAX_DEPTH)
        set_error(u, "the archive holds a path deeper than %d, %.*s", UNPACK_MAX_DEPTH, shown,
                  quoted);
    else if (type == '-' && (sscanf(line, "%*s %*s %lld", &size) != 1 || size < 0))
        set_error(u, "the archive's listing could not be read: %.200s", line);
    else if (++u->entries > UNPACK_MAX_ENTRIES)
        set_error(u, "the archive holds more than %d entries", UNPACK_MAX_ENTRIES);
    else if ((u->bytes += size) > UNPACK_MAX_BYTES)
        set_error(u, "the archive's files hold more than %lld bytes", (long long)UNPACK_MAX_BYTES);
    buf_free(&name);
    return u->error == NULL;
}

static void stage_done(struct unpack *u);

static void handle_closed_cb(uv_handle_t *h)
{
    struct unpack *u = h->data;
    if (--u->open_handles == 0)
        stage_done(u);
}

static void exit_cb(uv_process_t *p, int64_t status, int signal)
{
    struct unpack *u = p->data;
    u->running = false;
    u->status = status;
    u->term_signal = signal;
    uv_close((uv_handle_t *)p, handle_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    static char slab[65536];
    *b = uv_buf_init(slab, sizeof slab);
}

/* Stops reading the listing and kills tar: the archive is refused. */
static void stop_listing(struct unpack *u)
{
    uv_read_stop((uv_stream_t *)&u->out);
    uv_close((uv_handle_t *)&u->out, handle_closed_cb);
    if (u->running)
        uv_process_kill(&u->proc, SIGKILL);
}

static void listing_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct unpack *u = s->data;
    if (n < 0) {
        if (u->line.len > 0 && u->error == NULL)
            check_entry(u, u->line.data);
        uv_close((uv_handle_t *)&u->out, handle_closed_cb);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] != '\n') {
            if (buf_addc(&u->line, b->base[i]) != 0) {
                set_error(u, "the archive's listing has a line longer than %d bytes",
                          LISTING_LINE_MAX);
                stop_listing(u);
                return;
            }
            continue;
        }
        bool ok = check_entry(u, u->line.data != NULL ? u->line.data : "");
        buf_reset(&u->line);
        if (!ok) {
            stop_listing(u);
            return;
        }
    }
}

/* ------------------------------------------------------------ tar */

/* Runs tar with `args` (after "tar", ending with NULL); its stdout into u->out when
   `listing`.  0, or a libuv error. */
static int spawn_tar(struct unpack *u, const char *const *args, bool listing)
{
    const char *argv[16] = {"tar"};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n + 2 < UTIL_NELEM(argv); i++)
        argv[n++] = args[i];
    const char *path = getenv("PATH");
    char *env_path = xasprintf("PATH=%s", path != NULL ? path : "/usr/bin:/bin");
    char *env[] = {"LC_ALL=C", env_path, NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_IGNORE}};
    if (listing) {
        uv_pipe_init(u->loop, &u->out, 0);
        u->out.data = u;
        io[1] = (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
                                       .data.stream = (uv_stream_t *)&u->out};
    }
    uv_process_options_t o = {.exit_cb = exit_cb,
                              .file = "tar",
                              .args = (char **)argv,
                              .env = env,
                              .stdio = io,
                              .stdio_count = 3};
    u->proc.data = u;
    int rc = uv_spawn(u->loop, &u->proc, &o);
    free(env_path);
    u->open_handles = listing ? 2 : 1;
    u->running = rc == 0;
    if (rc != 0) { /* the handles are initialized all the same: closing them ends the stage */
        uv_close((uv_handle_t *)&u->proc, handle_closed_cb);
        if (listing)
            uv_close((uv_handle_t *)&u->out, handle_closed_cb);
        return rc;
    }
    if (listing)
        uv_read_start((uv_stream_t *)&u->out, alloc_cb, listing_cb);
    return 0;
}

static int start_listing(struct unpack *u)
{
    const char *args[] = {"-t",     "-v", "--quoting-style=c", "--numeric-owner", "-f", u->archive,
                          u->zflag, NULL};
    u->stage = LISTING;
    return spawn_tar(u, args, true);
}

/* A new directory beside the destination, "DIR/.NAME.XXXXXX". */
static int make_staging(struct unpack *u)
{
    const char *slash = strrchr(u->dest, '/');
    u->staging = xasprintf("%.*s/.%s.XXXXXX", (int)(slash - u->dest), u->dest, slash + 1);
    if (mkdtemp(u->staging) == NULL) {
        set_error(u, "%s: %s", u->staging, strerror(errno));
        free(u->staging);
        u->staging = NULL;
        return -1;
    }
    return 0;
}

static void start_extracting(struct unpack *u)
{
    if (make_staging(u) != 0) {
        stage_done(u);
        return;
    }
    const char *args[] = {"-x",       "--no-same-owner", "--no-same-permissions",
                          "-f",       u->archive,        "-C",
                          u->staging, u->zflag,          NULL};
    u->stage = EXTRACTING;
    int rc = spawn_tar(u, args, false);
    if (rc != 0)
        set_error(u, "cannot run tar: %s", uv_strerror(rc));
}

/* ------------------------------------------------------------ the move (thread pool) */

/* Where a walk is, for its messages. */
struct walk {
    char path[PATH_MAX];
    size_t len;
    char *error;
    long long entries, bytes;
};

static int walk_error(struct walk *w, const char *fmt, ...) UTIL_PRINTF(2, 3);

static int walk_error(struct walk *w, const char *fmt, ...)
{
    if (w->error == NULL) {
        va_list ap;
        va_start(ap, fmt);
        w->error = xvasprintf(fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Appends `name` to the walk's path; the length to restore, or -1 when too long. */
static long walk_push(struct walk *w, const char *name)
{
    size_t before = w->len, n = strlen(name);
    if (before + n + 2 > sizeof w->path)
        return walk_error(w, "a path of the upload is too long");
    if (before > 0)
        w->path[w->len++] = '/';
    memcpy(w->path + w->len, name, n + 1);
    w->len += n;
    return (long)before;
}

static void walk_pop(struct walk *w, long before)
{
    w->len = (size_t)before;
    w->path[w->len] = '\0';
}

/* The entries of directory `fd` (not `.` and `..`), one at a time; NULL at the end. */
static const char *next_entry(DIR *d)
{
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            return e->d_name;
    return NULL;
}

/* A reader of directory `fd` with a position of its own (a dup would share fd's). */
static DIR *open_dir(struct walk *w, int fd)
{
    int copy = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
    if (d == NULL) {
        if (copy >= 0)
            close(copy);
        walk_error(w, "cannot read '%s': %s", w->path, strerror(errno));
    }
    return d;
}

/* The subdirectory `name` of `fd`, never through a link; -1 with the walk's error. */
static int open_sub(struct walk *w, int fd, const char *name)
{
    int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        walk_error(w, "cannot open '%s': %s", w->path, strerror(errno));
    return sub;
}

/* The extracted tree (the entries of `fd` lie `depth` deep): directories and single-link
   regular files only, set-id bits and group/other write cleared (directories kept open
   to their owner). */
static int verify(struct walk *w, int fd, int depth)
{
    DIR *d = open_dir(w, fd);
    int rc = d == NULL ? -1 : 0;
    for (const char *name; rc == 0 && (name = next_entry(d)) != NULL;) {
        long before = walk_push(w, name);
        struct stat st;
        if (before < 0 || fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = walk_error(w, "cannot read '%s'", w->path);
        } else if (++w->entries > UNPACK_MAX_ENTRIES ||
                   (w->bytes += st.st_size) > UNPACK_MAX_BYTES || depth > UNPACK_MAX_DEPTH) {
            rc = walk_error(w, "the extracted upload is larger than its listing said");
        } else if (S_ISDIR(st.st_mode)) {
            fchmodat(fd, name, (st.st_mode & 0755) | 0700, 0);
            int sub = open_sub(w, fd, name);
            rc = sub < 0 ? -1 : verify(w, sub, depth + 1);
            if (sub >= 0)
                close(sub);
        } else if (S_ISREG(st.st_mode) && st.st_nlink == 1) {
            fchmodat(fd, name, st.st_mode & 0755, 0);
        } else {
            rc = walk_error(w, "the extracted upload holds '%s', not a plain file or directory",
                            w->path);
        }
        if (before >= 0)
            walk_pop(w, before);
    }
    if (d != NULL)
        closedir(d);
    return rc;
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISREG(m) ? "a file" : "a special file";
}

/* One entry `name` of the upload (in `src`) against the destination `dst`: moved in when
   `apply`, only compared otherwise. */
static int merge(struct walk *w, int src, int dst, bool apply);

static int merge_entry(struct walk *w, int src, int dst, const char *name, bool apply)
{
    struct stat ss, ds;
    if (fstatat(src, name, &ss, AT_SYMLINK_NOFOLLOW) != 0)
        return walk_error(w, "cannot read '%s': %s", w->path, strerror(errno));
    if (fstatat(dst, name, &ds, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT)
            return walk_error(w, "cannot read the destination's '%s': %s", w->path,
                              strerror(errno));
        if (apply && renameat(src, name, dst, name) != 0)
            return walk_error(w, "cannot move '%s' into place: %s", w->path, strerror(errno));
        return 0;
    }
    if (S_ISLNK(ds.st_mode))
        return walk_error(w, "the destination's '%s' is a symbolic link", w->path);
    if (S_ISREG(ss.st_mode) && S_ISREG(ds.st_mode)) {
        if (apply && renameat(src, name, dst, name) != 0)
            return walk_error(w, "cannot move '%s' into place: %s", w->path, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(ss.st_mode) || !S_ISDIR(ds.st_mode))
        return walk_error(w, "'%s' is %s in the upload and %s at the destination", w->path,
                          kind_of(ss.st_mode), kind_of(ds.st_mode));
    int s2 = open_sub(w, src, name), d2 = s2 >= 0 ? open_sub(w, dst, name) : -1;
    int rc = d2 < 0 ? -1 : merge(w, s2, d2, apply);
    if (s2 >= 0)
        close(s2);
    if (d2 >= 0)
        close(d2);
    return rc;
}

static int merge(struct walk *w, int src, int dst, bool apply)
{
    DIR *d = open_dir(w, src);
    int rc = d == NULL ? -1 : 0;
    for (const char *name; rc == 0 && (name = next_entry(d)) != NULL;) {
        long before = walk_push(w, name);
        rc = before < 0 ? -1 : merge_entry(w, src, dst, name, apply);
        if (before >= 0)
            walk_pop(w, before);
    }
    if (d != NULL)
        closedir(d);
    return rc;
}

/* Removes `name` in `fd` and all under it, following nothing. */
static void remove_tree(int fd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlinkat(fd, name, 0);
        return;
    }
    fchmodat(fd, name, 0700, 0);
    int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = sub >= 0 && depth < UNPACK_MAX_DEPTH + 2 ? fdopendir(sub) : NULL;
    if (d == NULL && sub >= 0)
        close(sub);
    for (const char *e; d != NULL && (e = next_entry(d)) != NULL;)
        remove_tree(sub, e, depth + 1);
    if (d != NULL)
        closedir(d);
    unlinkat(fd, name, AT_REMOVEDIR);
}

/* The destination directory, made if missing, opened without following a link. */
static int open_dest(struct walk *w, const char *dest)
{
    const char *slash = strrchr(dest, '/');
    char *parent = slash == dest ? xstrdup("/") : xstrndup(dest, (size_t)(slash - dest));
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(parent);
    if (pfd < 0)
        return walk_error(w, "cannot open the destination's directory: %s", strerror(errno));
    if (mkdirat(pfd, slash + 1, 0755) != 0 && errno != EEXIST) {
        close(pfd);
        return walk_error(w, "cannot make the destination '%s': %s", dest, strerror(errno));
    }
    int fd = openat(pfd, slash + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(pfd);
    if (fd < 0)
        return walk_error(w, "the destination '%s' %s", dest,
                          err == ELOOP || err == ENOTDIR ? "is a symbolic link or not a directory"
                                                         : strerror(err));
    return fd;
}

static void move_work_cb(uv_work_t *req)
{
    struct unpack *u = req->data;
    struct walk *w = xcalloc(1, sizeof *w);
    int sfd = -1, dfd = -1;
    if (u->error == NULL && !atomic_load(&u->abandoned)) {
        sfd = open(u->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
            walk_error(w, "cannot open '%s': %s", u->staging, strerror(errno));
        else if (verify(w, sfd, 1) == 0)
            dfd = open_dest(w, u->dest);
        /* every entry compared before the first moves: a refusal leaves nothing half done */
        if (dfd >= 0 && merge(w, sfd, dfd, false) == 0)
            merge(w, sfd, dfd, true);
    }
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    remove_tree(AT_FDCWD, u->staging, 0);
    if (w->error != NULL && u->error == NULL)
        u->error = w->error;
    else
        free(w->error);
    free(w);
}

/* ------------------------------------------------------------ stages */

static void finish(struct unpack *u)
{
    if (u->done != NULL)
        u->done(u->arg, u->error);
    unpack_free(u);
}

static void after_move_cb(uv_work_t *req, int status)
{
    (void)status;
    finish(req->data);
}

/* Every handle of the stage is closed: the next stage, or the end. */
static void stage_done(struct unpack *u)
{
    bool failed = u->status != 0 || u->term_signal != 0;
    if (u->error == NULL && failed)
        set_error(u, "tar could not %s the archive (exit status %lld, signal %d)",
                  u->stage == LISTING ? "read" : "extract", (long long)u->status, u->term_signal);
    if (u->stage == LISTING && u->error == NULL && !atomic_load(&u->abandoned)) {
        start_extracting(u);
        return;
    }
    if (u->staging == NULL) {
        finish(u);
        return;
    }
    u->stage = MOVING;
    u->work.data = u;
    uv_queue_work(u->loop, &u->work, move_work_cb, after_move_cb);
}

struct unpack *unpack_start(uv_loop_t *loop, const char *archive, const char *compress,
                            const char *dest, unpack_done_cb done, void *arg, char **cause)
{
    struct unpack *u = xcalloc(1, sizeof *u);
    u->loop = loop;
    u->archive = xstrdup(archive);
    u->dest = xstrdup(dest);
    u->zflag = compress == NULL ? NULL : util_streq(compress, "gz") ? "-z" : "-j";
    u->done = done;
    u->arg = arg;
    atomic_init(&u->abandoned, false);
    buf_init(&u->line, LISTING_LINE_MAX);
    if (strchr(dest, '/') == NULL) {
        util_cause(cause, "'%s' is not an absolute path", dest);
        unpack_free(u);
        return NULL;
    }
    int rc = start_listing(u);
    if (rc != 0) { /* the closing handles end the unpack; the caller is not told */
        util_cause(cause, "cannot run tar: %s", uv_strerror(rc));
        u->done = NULL;
        atomic_store(&u->abandoned, true);
        return NULL;
    }
    return u;
}

void unpack_abandon(struct unpack *u)
{
    if (u == NULL)
        return;
    u->done = NULL;
    atomic_store(&u->abandoned, true);
    if (u->running)
        uv_process_kill(&u->proc, SIGKILL);
}
