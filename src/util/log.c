/*
 * The log: one line per event, "YYYY-mm-dd HH:MM:SS+0000 [level] message"
 * (control characters escaped), to stderr or to a file.  The engine, the
 * web's request threads and its watchdog all log; every line is formatted by
 * its caller, then handed under one mutex to the single write path, which
 * owns the file, its rotation and every counter below (log_open, log_close,
 * log_tee_stderr and log_set_repeat take the same mutex).  The level is read
 * without it: it is set before other threads start.
 *
 * A file log is rotated by size the way Twisted's logfile does for buildbot
 * (bbmaster.log -> bbmaster.log.1 -> ... -> .N), so a master left running
 * for months never fills the disk.  It is written with write(2), no stdio
 * buffer between, so a failed write is seen on the line that failed.
 *
 * Floods: the same warning or error (same level and same format string, so
 * texts that differ only by a request's path or id count as one) is written
 * LOG_REPEAT_MAX times in a window of LOG_REPEAT_WINDOW_S seconds; later ones
 * are counted, and when the window is over one line gives the last of them
 * and how many were not written.  The log has no timer: a window is closed by
 * the next call to the log after it ends, or by log_close.  Info and debug
 * lines record work done and are never held back.  The table of messages is
 * fixed (LOG_REPEAT_SLOTS); when it is full the least recently seen one is
 * closed early.
 *
 * Full disk: a line the file does not take is kept in a ring of the last
 * LOG_KEPT_LINES lines (at most LOG_KEPT_BYTES), the failure is said once on
 * stderr, and every later line first tries to write the kept ones, after a
 * line saying how many were kept and how many were lost past the ring.
 * log_open to another file carries the kept lines over; log_close gives
 * those it still cannot write to stderr.
 */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_INFO;

/* One message being counted: the key is (fmt, level). */
struct repeat {
    const char *fmt; /* NULL: free slot */
    enum log_level level;
    uint64_t since_ms, seen_ms; /* the window's start, the last call */
    unsigned count, held;       /* calls in the window, calls not written */
    char *last;                 /* the last held message */
};

/* Lines the file did not take, oldest first. */
struct kept {
    char *lines[LOG_KEPT_LINES];
    size_t first, n, bytes;
    unsigned long lost;
    char *path; /* the file that failed */
};

static struct {
    char *path; /* NULL: stderr */
    int fd;     /* -1: to be (re)opened */
    size_t rotate_bytes;
    int keep;
    size_t written;
    bool tee;
    bool failing; /* said on stderr; the next line written says what was kept */
    bool partial; /* the failed write left part of a line in the file */
    int error;
    char failed_at[32];
    struct kept kept;
    struct repeat repeats[LOG_REPEAT_SLOTS];
    unsigned repeat_max;
    uint64_t window_ms;
} logstate = {.fd = -1, .repeat_max = LOG_REPEAT_MAX, .window_ms = LOG_REPEAT_WINDOW_S * 1000u};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"error", "warn", "info", "debug"};

static void stamp(char out[32])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S+0000", &tm);
}

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

void log_set_repeat(unsigned max, unsigned window_ms)
{
    pthread_mutex_lock(&log_lock);
    logstate.repeat_max = max;
    logstate.window_ms = window_ms;
    pthread_mutex_unlock(&log_lock);
}

void log_tee_stderr(bool on)
{
    pthread_mutex_lock(&log_lock);
    logstate.tee = on;
    pthread_mutex_unlock(&log_lock);
}

/* Kept lines. */

static void kept_pop(struct kept *k)
{
    k->bytes -= strlen(k->lines[k->first]);
    free(k->lines[k->first]);
    k->lines[k->first] = NULL;
    k->first = (k->first + 1) % LOG_KEPT_LINES;
    k->n--;
}

static void kept_push(struct kept *k, const char *line, size_t len)
{
    if (len > LOG_KEPT_BYTES) {
        k->lost++;
        return;
    }
    while (k->n == LOG_KEPT_LINES || k->bytes + len > LOG_KEPT_BYTES) {
        kept_pop(k);
        k->lost++;
    }
    k->lines[(k->first + k->n) % LOG_KEPT_LINES] = xstrndup(line, len);
    k->n++;
    k->bytes += len;
}

static void kept_clear(struct kept *k)
{
    while (k->n > 0)
        kept_pop(k);
    k->first = 0;
    k->lost = 0;
    free(k->path);
    k->path = NULL;
}

/* The kept lines the file never took go to stderr. */
static void kept_to_stderr(void)
{
    struct kept *k = &logstate.kept;
    if (k->n == 0 && k->lost == 0)
        return;
    fprintf(stderr, "log: %zu lines the log file did not take follow; %lu more were lost\n", k->n,
            k->lost);
    for (size_t i = 0; i < k->n; i++)
        fputs(k->lines[(k->first + i) % LOG_KEPT_LINES], stderr);
    kept_clear(k);
    logstate.failing = false;
}

/* The file. */

/* Created as fopen(path, "a") would, but not inherited by the steps' children. */
static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
}

static void failed(int err)
{
    if (logstate.failing)
        return;
    logstate.failing = true;
    logstate.error = err;
    stamp(logstate.failed_at);
    free(logstate.kept.path);
    logstate.kept.path = xstrdup(logstate.path);
    fprintf(stderr,
            "%s [error] log: cannot write %s: %s; keeping the last %d lines in memory until it "
            "can be written again\n",
            logstate.failed_at, logstate.path, strerror(err), LOG_KEPT_LINES);
}

/* Writes a whole line to the file: 0, or -1 when it did not take all of it. */
static int put(const char *s, size_t len)
{
    if (logstate.fd < 0 && (logstate.fd = open_file(logstate.path)) < 0) {
        failed(errno);
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(logstate.fd, s + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            logstate.partial = logstate.partial || done > 0;
            logstate.written += done;
            failed(n < 0 ? errno : ENOSPC);
            return -1;
        }
        done += (size_t)n;
    }
    logstate.written += len;
    return 0;
}

/*
 * After a failure, writes what was kept, after a line saying so.  Returns
 * false while the file still does not take them.
 */
static bool put_kept(void)
{
    struct kept *k = &logstate.kept;
    if (!logstate.failing)
        return true;
    if (logstate.partial && put("\n", 1) != 0)
        return false;
    logstate.partial = false;
    char now[32];
    stamp(now);
    char *head =
        xasprintf("%s [warn] log: %s could not be written from %s (%s): the %zu lines "
                  "kept in memory follow; %lu more were lost\n",
                  now, k->path, logstate.failed_at, strerror(logstate.error), k->n, k->lost);
    int rc = put(head, strlen(head));
    free(head);
    while (rc == 0 && k->n > 0) {
        const char *line = k->lines[k->first];
        rc = put(line, strlen(line));
        if (rc == 0)
            kept_pop(k);
    }
    if (rc != 0)
        return false;
    fprintf(stderr, "%s [info] log: %s takes lines again; the kept ones are written to it\n", now,
            logstate.path);
    kept_clear(k);
    logstate.failing = false;
    return true;
}

static void rotate(void)
{
    close(logstate.fd);
    logstate.fd = -1;
    for (int i = logstate.keep; i >= 1; i--) {
        char *from = i == 1 ? xstrdup(logstate.path) : xasprintf("%s.%d", logstate.path, i - 1);
        char *to = xasprintf("%s.%d", logstate.path, i);
        rename(from, to);
        free(from);
        free(to);
    }
    if (logstate.keep <= 0)
        remove(logstate.path);
    logstate.written = 0;
    logstate.fd = open_file(logstate.path); /* or at the next line */
}

/* The write path: one whole line, under the lock. */
static void emit(const char *line, size_t len)
{
    if (logstate.path == NULL) {
        kept_to_stderr();
        fwrite(line, 1, len, stderr);
        return;
    }
    if (logstate.tee)
        fwrite(line, 1, len, stderr);
    if (!put_kept() || put(line, len) != 0) {
        kept_push(&logstate.kept, line, len);
        return;
    }
    if (logstate.rotate_bytes > 0 && logstate.written >= logstate.rotate_bytes)
        rotate();
}

/* Repeats. */

static void repeat_close(struct repeat *r)
{
    if (r->held > 0) {
        char now[32];
        stamp(now);
        unsigned s = (unsigned)((logstate.window_ms + 999) / 1000);
        char *line = xasprintf("%s [%s] %s (%u more like this within %u s were not written; "
                               "this was the last)\n",
                               now, level_names[r->level], r->last, r->held, s);
        emit(line, strlen(line));
        free(line);
    }
    free(r->last);
    *r = (struct repeat){0};
}

/* Closes the windows that are over (all of them with `all`). */
static void repeats_close(uint64_t now, bool all)
{
    for (size_t i = 0; i < LOG_REPEAT_SLOTS; i++) {
        struct repeat *r = &logstate.repeats[i];
        if (r->fmt != NULL && (all || now - r->since_ms >= logstate.window_ms))
            repeat_close(r);
    }
}

static struct repeat *repeat_find(enum log_level level, const char *fmt, uint64_t now)
{
    struct repeat *lru = &logstate.repeats[0];
    for (size_t i = 0; i < LOG_REPEAT_SLOTS; i++) {
        struct repeat *r = &logstate.repeats[i];
        if (r->fmt == fmt && r->level == level)
            return r;
        if (r->fmt == NULL || (lru->fmt != NULL && r->seen_ms < lru->seen_ms))
            lru = r;
    }
    if (lru->fmt != NULL)
        repeat_close(lru);
    *lru = (struct repeat){.fmt = fmt, .level = level, .since_ms = now};
    return lru;
}

/*
 * Counts a call; true when its line is to be written, false when it is held
 * (then the message is kept as the last one: *msg is taken).
 */
static bool repeat_admit(enum log_level level, const char *fmt, char **msg, uint64_t now)
{
    if (level > LOG_WARN || logstate.repeat_max == 0)
        return true;
    struct repeat *r = repeat_find(level, fmt, now);
    r->seen_ms = now;
    if (++r->count <= logstate.repeat_max)
        return true;
    r->held++;
    free(r->last);
    r->last = *msg;
    *msg = NULL;
    return false;
}

/* Open and close. */

/* Closes the file, keeping the kept lines (they were written nowhere). */
static void close_file(void)
{
    if (logstate.fd >= 0)
        close(logstate.fd);
    logstate.fd = -1;
    free(logstate.path);
    logstate.path = NULL;
    logstate.written = 0;
    logstate.partial = false;
}

int log_open(const char *path, size_t rotate_bytes, int keep, char **cause)
{
    int rc = 0;
    pthread_mutex_lock(&log_lock);
    close_file();
    if (path == NULL) {
        kept_to_stderr();
        goto out;
    }
    int fd = open_file(path);
    if (fd < 0) {
        rc = util_cause(cause, "%s: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    logstate.written = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
    logstate.fd = fd;
    logstate.path = xstrdup(path);
    logstate.rotate_bytes = rotate_bytes;
    logstate.keep = keep;
    put_kept();
out:
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    repeats_close(0, true);
    if (logstate.path != NULL)
        put_kept();
    close_file();
    kept_to_stderr();
    pthread_mutex_unlock(&log_lock);
}

static bool control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/*
 * Control characters in a message (a tab aside) are escaped, so one call is
 * one line whatever a caller forgot to escape (util_escape is the rule at
 * call sites).
 */
static char *one_line(char *msg)
{
    size_t extra = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++)
        extra += control(*p) ? 3 : 0;
    if (extra == 0)
        return msg;
    size_t len = strlen(msg);
    char *out = xmalloc(len + extra + 1);
    char *q = out;
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        if (control(*p))
            q += sprintf(q, "\\x%02x", *p);
        else
            *q++ = (char)*p;
    }
    *q = '\0';
    free(msg);
    return out;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char now[32];
    stamp(now);
    va_list ap;
    va_start(ap, fmt);
    char *msg = one_line(xvasprintf(fmt, ap));
    va_end(ap);
    char *line = xasprintf("%s [%s] %s\n", now, level_names[level], msg);

    pthread_mutex_lock(&log_lock);
    uint64_t mono = util_mono_ms(); /* under the lock: windows never go back */
    repeats_close(mono, false);
    if (repeat_admit(level, fmt, &msg, mono))
        emit(line, strlen(line));
    pthread_mutex_unlock(&log_lock);
    free(line);
    free(msg);
}
