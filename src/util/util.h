/*
 * util: the small pieces every other module stands on.
 *
 * Memory: allocation failure aborts (x* functions), so error paths stay about
 * I/O, peers and data.  Buffers: `struct buf` is a growable byte buffer with a
 * hard upper bound, for anything fed by a peer.  Logging: levelled macros that
 * skip argument evaluation when the level is off, writing to stderr or to a log
 * file that is rotated by size, holding back floods of one message and keeping
 * the last lines in memory while the file cannot be written.  Errors a person reads are passed back
 * as a malloc'd string through a `char **cause` out-parameter (see util_cause).
 */
#ifndef BBM_UTIL_H
#define BBM_UTIL_H

#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define UTIL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UTIL_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Memory.  All abort on exhaustion; the results are freed with free(). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* Grows an array of `*cap` elements of `size` bytes so it holds at least `need`. */
void *xgrow(void *p, size_t *cap, size_t need, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) UTIL_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap);

/*
 * Sets *cause (if cause is not NULL) to a new formatted message, freeing any
 * message it held.  Returns -1 so that error paths can `return util_cause(...)`.
 */
int util_cause(char **cause, const char *fmt, ...) UTIL_PRINTF(2, 3);

/*
 * A growable byte buffer that refuses to grow past `max` bytes.  The data is
 * always followed by a NUL byte (not counted in len) so text can be used as a
 * C string.  A zeroed struct with max 0 means "no bound" (for internal use
 * only; peer-fed buffers must set a bound).
 */
struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Makes room for `len` more bytes at once, where the size is known (no doubling, no copies
   as it grows); 0, or -1 (buffer unchanged) if the bound would be passed. */
int buf_reserve(struct buf *b, size_t len);
/* Appends; returns 0, or -1 (buffer unchanged) if the bound would be passed. */
int buf_add(struct buf *b, const void *data, size_t len);
int buf_addc(struct buf *b, char c);
int buf_addstr(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) UTIL_PRINTF(2, 3);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Takes the data out as a malloc'd C string (never NULL); the buffer is reset. */
char *buf_take(struct buf *b);

/* systemd: `state` ("READY=1", "RELOADING=1", "STOPPING=1") to $NOTIFY_SOCKET when the
   service manager set it (sdnotify.c); nothing otherwise. */
void util_sd_notify(const char *state);

/* Strings. */
bool util_streq(const char *a, const char *b);
/* Equal strings, or both NULL. */
bool util_same_text(const char *a, const char *b);
bool util_startswith(const char *s, const char *prefix);
/* `src` into the `size` bytes of `dst`, cut to fit, always terminated (size > 0). */
void util_strcopy(char *dst, size_t size, const char *src);
/*
 * `len` bytes a peer sent, as printable ASCII for a log line: backslash,
 * quotes and every byte outside 0x20..0x7e escaped (\\, \', \", \n, \r, \t,
 * \xNN), cut with "..." so that the result and its NUL fit in `size` bytes.
 * Returns `out`.
 */
const char *util_escape(char *out, size_t size, const void *data, size_t len);
/* The same for a C string; NULL prints as "(null)". */
const char *util_escape_str(char *out, size_t size, const char *s);
/* Bytes of escaped text UTIL_ESC keeps, the NUL included. */
#define UTIL_ESCAPE_MAX 256
/*
 * A C string escaped into a buffer that lives until the end of the enclosing
 * block, for log arguments: log_info("worker '%s'", UTIL_ESC(name)).
 */
#define UTIL_ESC(s) util_escape_str((char[UTIL_ESCAPE_MAX]){0}, UTIL_ESCAPE_MAX, (s))
/* Base64 (base64.c) of `n` bytes into `out` (4 * ((n + 2) / 3) + 1 bytes); its length. */
size_t util_base64(const void *in, size_t n, char *out);
/*
 * The length of the longest prefix of [data, len) that is whole, strict UTF-8
 * (utf8.c: Python's codec, no surrogates or overlong forms): `len` when all of it
 * is; otherwise the offset of the first byte that does not start a valid character
 * there, or of a character cut short by the end.
 */
size_t util_utf8_valid(const void *data, size_t len);
/* Levenshtein distance between two short strings (capped at 64 characters each). */
int util_edit_distance(const char *a, const char *b);
/* Parses a whole decimal integer in [min, max]; returns 0 or -1. */
int util_parse_long(const char *s, long min, long max, long *out);
/*
 * What parsing JSON `text` would allocate, counted without parsing it: values
 * (one, and one more per ',' '[' '{' ':' outside strings) and objects ('{').
 * A parser's memory grows with these, not with the text's length: 1 MB of
 * "{}," is 350,000 objects.
 */
void util_json_count(const char *text, size_t len, size_t *values, size_t *objects);

/* Files. */
/* Reads a whole file of at most `max` bytes into a malloc'd NUL-terminated string. */
char *util_read_file(const char *path, size_t max, size_t *len, char **cause);
/* Writes a file atomically (temp file + rename); returns 0 or -1 with *cause. */
int util_write_file(const char *path, const char *data, size_t len, int mode, char **cause);
bool util_is_dir(const char *path);
bool util_is_file(const char *path);

/* File descriptors. */
/* The highest soft limit util_raise_fd_limit asks for (Linux's default nr_open). */
#define UTIL_FD_LIMIT_MAX 1048576
/*
 * Raises RLIMIT_NOFILE's soft limit to its hard limit (at most
 * UTIL_FD_LIMIT_MAX); returns the soft limit in force afterwards and the one
 * before in *before.
 */
unsigned long util_raise_fd_limit(unsigned long *before);

/* Time. */
/* Seconds since the epoch, with sub-second precision. */
double util_now(void);
/* Milliseconds of a monotonic clock. */
uint64_t util_mono_ms(void);
/* Milliseconds of CPU the calling thread has used. */
uint64_t util_thread_cpu_ms(void);
/* Lowers the calling thread's priority to `nice` (Linux, where a thread has its own, as
   setpriority of its id sets it; elsewhere nothing changes). */
void util_thread_nice(int nice);
/* Gives the allocator's free pages back to the system (glibc's malloc_trim: it keeps freed
   blocks among live ones, and in its arenas blocks under the master's mmap threshold). */
void util_memory_give_back(void);
/* A condition variable whose timed waits are on the monotonic clock (util_deadline's
   CLOCK_MONOTONIC): a clock set back stalls nothing. */
void util_cond_init_monotonic(pthread_cond_t *cond);
/* The time `ms` milliseconds from now on `clock` (a deadline for pthread_cond_timedwait). */
struct timespec util_deadline(clockid_t clock, unsigned ms);

/* Cron-like schedules (cron.c): Buildbot Nightly's minute, hour, dayOfMonth, month and
   dayOfWeek, in local time.  Start from a zeroed struct and add each field's values. */
enum util_cron_field {
    UTIL_CRON_MINUTE,
    UTIL_CRON_HOUR,
    UTIL_CRON_DOM,
    UTIL_CRON_MONTH,
    UTIL_CRON_DOW,
    UTIL_CRON_FIELDS
};
struct util_cron {
    uint64_t minute, hour, dom, month, dow; /* bit v: value v matches (dow: Sunday 0) */
    bool dom_any, dow_any;                  /* the day field was "*" */
};
/* Adds a number (dayOfWeek: Python's, Monday 0) to the field: 0, or -1 if out of range. */
int util_cron_add_value(struct util_cron *c, enum util_cron_field f, long v);
/* Adds a cron string ("*", "5", "1-5", "*" "/10", "0,30"): 0, or -1 if it cannot be read. */
int util_cron_add_text(struct util_cron *c, enum util_cron_field f, const char *spec);
/* Whether the minute of `ts` matches. */
bool util_cron_matches(const struct util_cron *c, double ts);
/* The first minute after `ts` that matches, or -1 if none does within eight years. */
double util_cron_next(const struct util_cron *c, double ts);

/* Logging. */
enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/*
 * The same warning or error (level and format string) is written LOG_REPEAT_MAX
 * times in LOG_REPEAT_WINDOW_S seconds, then counted until one line sums it up;
 * LOG_REPEAT_SLOTS messages are counted at once.  Lines a failing log file does
 * not take are kept, the last LOG_KEPT_LINES of them within LOG_KEPT_BYTES.
 */
enum {
    LOG_REPEAT_MAX = 10,
    LOG_REPEAT_WINDOW_S = 10,
    LOG_REPEAT_SLOTS = 32,
    LOG_KEPT_LINES = 1000,
    LOG_KEPT_BYTES = 256 * 1024,
};

/* Read without a lock: set it before other threads start. */
extern enum log_level log_current_level;

/*
 * Sends the log to `path` (NULL: stderr), rotating it when it passes
 * `rotate_bytes` and keeping `keep` old files (path.1 .. path.N).  Lines kept
 * while the previous file failed are written to the new one first.  Returns 0
 * or -1 with *cause (the log then goes to stderr).
 */
int log_open(const char *path, size_t rotate_bytes, int keep, char **cause);
/* Sums up the held repeats, writes or else gives stderr the kept lines, closes the file. */
void log_close(void);
/* Also copies every line to stderr when a file is open (for --nodaemon). */
void log_tee_stderr(bool on);
void log_set_level(enum log_level level);
/* Another bound for repeats: `max` lines per `window_ms` (0: no bound). */
void log_set_repeat(unsigned max, unsigned window_ms);
void log_write(enum log_level level, const char *fmt, ...) UTIL_PRINTF(2, 3);

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_current_level)                                                            \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)

#endif
