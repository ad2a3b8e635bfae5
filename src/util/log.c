/*
 * The log: one line per event, "YYYY-mm-dd HH:MM:SS+0000 [level] message"
 * (control characters escaped), to stderr or to a file.  A file log is
 * rotated by size the way Twisted's logfile does for buildbot (bbmaster.log
 * -> bbmaster.log.1 -> ... -> .N), so a master left running for months never
 * fills the disk.  The engine, the web's request threads and its watchdog
 * all log: a mutex keeps lines whole and the rotation single.
 */
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum log_level log_current_level = LOG_INFO;

static struct {
    FILE *f;
    char *path;
    size_t rotate_bytes;
    int keep;
    size_t written;
    bool tee;
} logstate;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

int log_open(const char *path, size_t rotate_bytes, int keep, char **cause)
{
    log_close();
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return util_cause(cause, "%s: %s", path, strerror(errno));
    setvbuf(f, NULL, _IOLBF, 0);
    struct stat st;
    logstate.written = fstat(fileno(f), &st) == 0 ? (size_t)st.st_size : 0;
    logstate.f = f;
    logstate.path = xstrdup(path);
    logstate.rotate_bytes = rotate_bytes;
    logstate.keep = keep;
    return 0;
}

void log_tee_stderr(bool on)
{
    logstate.tee = on;
}

void log_close(void)
{
    if (logstate.f != NULL)
        fclose(logstate.f);
    free(logstate.path);
    bool tee = logstate.tee;
    memset(&logstate, 0, sizeof logstate);
    logstate.tee = tee;
}

static void rotate(void)
{
    fclose(logstate.f);
    logstate.f = NULL;
    for (int i = logstate.keep; i >= 1; i--) {
        char *from = i == 1 ? xstrdup(logstate.path) : xasprintf("%s.%d", logstate.path, i - 1);
        char *to = xasprintf("%s.%d", logstate.path, i);
        rename(from, to);
        free(from);
        free(to);
    }
    if (logstate.keep <= 0)
        remove(logstate.path);
    logstate.f = fopen(logstate.path, "a");
    if (logstate.f != NULL)
        setvbuf(logstate.f, NULL, _IOLBF, 0);
    logstate.written = 0;
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
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S+0000", &tm);

    va_list ap;
    va_start(ap, fmt);
    char *msg = one_line(xvasprintf(fmt, ap));
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    FILE *out = logstate.f != NULL ? logstate.f : stderr;
    int n = fprintf(out, "%s [%s] %s\n", stamp, level_names[level], msg);
    if (logstate.tee && logstate.f != NULL)
        fprintf(stderr, "%s [%s] %s\n", stamp, level_names[level], msg);
    free(msg);
    if (logstate.f != NULL && n > 0) {
        logstate.written += (size_t)n;
        if (logstate.rotate_bytes > 0 && logstate.written >= logstate.rotate_bytes)
            rotate();
    }
    pthread_mutex_unlock(&log_lock);
}
