/*
 * Unit tests for the log: a flood of one warning or error is held back and
 * summed up, lines a full disk (/dev/full) does not take are kept and written
 * when a file takes lines again, and threads logging through rotations while
 * the file is reopened lose or tear no line (run under ThreadSanitizer by
 * `make tsan`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

struct tmp {
    char dir[32];
    char *path;
};

static void tmp_make(struct tmp *t)
{
    strcpy(t->dir, "/tmp/bbm-test-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    t->path = xasprintf("%s/bbmaster.log", t->dir);
}

static void tmp_remove(struct tmp *t)
{
    char *cmd = xasprintf("rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(t->path);
}

static char *read_all(const char *path)
{
    char *cause = NULL;
    char *text = util_read_file(path, 64 << 20, NULL, &cause);
    if (text == NULL)
        fail_msg("%s", cause);
    return text;
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(text, what); p != NULL; p = strstr(p + 1, what))
        n++;
    return n;
}

/* stderr goes to a file while a test looks at what the log says there. */
struct capture {
    int saved;
    char *path;
};

static void capture_start(struct capture *c, const struct tmp *t)
{
    c->path = xasprintf("%s/stderr", t->dir);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

static char *capture_end(struct capture *c)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved, 2), 2);
    close(c->saved);
    char *text = read_all(c->path);
    free(c->path);
    return text;
}

/* 16 threads' worth of one error: 10 lines, then one that sums up the rest. */
static void test_repeat_held_and_summed(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    char *cause = NULL;
    assert_int_equal(log_open(t.path, 0, 0, &cause), 0);
    for (int i = 0; i < 1000; i++) {
        log_error("www: GET /api/v2/builds/%d: database is locked", i);
        if (i % 100 == 0)
            log_info("info line %d", i);
    }
    log_warn("www: GET /api/v2/builds/%d: database is locked", 7); /* another level, another key */
    log_close();
    char *text = read_all(t.path);
    assert_int_equal(count(text, "[error] www: GET"), LOG_REPEAT_MAX + 1);
    assert_int_equal(count(text, "[warn] www: GET"), 1);
    assert_int_equal(count(text, "info line"), 10);
    char *sum = strstr(text, "[error] www: GET /api/v2/builds/999: database is locked (990 more "
                             "like this within 10 s were not written; this was the last)\n");
    if (sum == NULL)
        fail_msg("no summary in:\n%s", text);
    assert_non_null(strstr(text, "/api/v2/builds/9: database is locked\n"));
    assert_null(strstr(text, "/api/v2/builds/10: database is locked\n"));
    free(text);
    tmp_remove(&t);
}

/* A window that is over is summed up by the next call to the log, whatever it logs. */
static void test_repeat_window_closed_by_next_call(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    char *cause = NULL;
    assert_int_equal(log_open(t.path, 0, 0, &cause), 0);
    log_set_repeat(3, 300);
    for (int i = 0; i < 10; i++)
        log_warn("worker %d: lost", i);
    usleep(400 * 1000);
    log_info("something else");
    char *text = read_all(t.path); /* before log_close: the summary is already there */
    log_set_repeat(LOG_REPEAT_MAX, LOG_REPEAT_WINDOW_S * 1000);
    log_close();
    char *sum = strstr(text, "[warn] worker 9: lost (7 more like this within 1 s were not "
                             "written; this was the last)\n");
    if (sum == NULL)
        fail_msg("no summary in:\n%s", text);
    char *other = strstr(text, "something else");
    assert_non_null(other);
    assert_true(sum < other);
    assert_int_equal(count(text, ": lost"), 4);
    free(text);
    tmp_remove(&t);
}

/*
 * A full disk: the file takes nothing, stderr says so once, the last lines are
 * kept and written first to the file the log is opened on next.
 */
static void test_kept_through_full_disk(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct capture c;
    capture_start(&c, &t);
    char *cause = NULL;
    assert_int_equal(log_open("/dev/full", 0, 0, &cause), 0);
    int total = LOG_KEPT_LINES + 500;
    for (int i = 0; i < total; i++)
        log_info("kept %d", i);
    assert_int_equal(log_open(t.path, 0, 0, &cause), 0);
    log_info("after");
    log_close();
    char *err = capture_end(&c);
    assert_int_equal(count(err, "log: cannot write /dev/full: No space left on device"), 1);
    assert_int_equal(count(err, "] kept "), 0);
    char *text = read_all(t.path);
    const char *head = strstr(text, "[warn] log: /dev/full could not be written from ");
    if (head == NULL || head != strchr(text, '['))
        fail_msg("not first: the kept lines' header, in:\n%.2000s", text);
    assert_non_null(strstr(head, "(No space left on device): the 1000 lines kept in memory "
                                 "follow; 500 more were lost\n"));
    assert_int_equal(count(text, "] kept "), LOG_KEPT_LINES);
    assert_null(strstr(text, "] kept 499\n"));
    char *first = strstr(text, "] kept 500\n"), *last = strstr(text, "] kept 1499\n");
    char *after = strstr(text, "] after\n");
    assert_non_null(first);
    assert_non_null(last);
    assert_non_null(after);
    assert_true(head < first && first < last && last < after);
    free(text);
    free(err);
    tmp_remove(&t);
}

/* What no file took is given to stderr when the log is closed. */
static void test_kept_to_stderr_at_close(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    struct capture c;
    capture_start(&c, &t);
    char *cause = NULL;
    assert_int_equal(log_open("/dev/full", 0, 0, &cause), 0);
    log_info("first");
    for (int i = 0; i < 20; i++)
        log_error("db: %d", i);
    log_close();
    char *err = capture_end(&c);
    assert_non_null(strstr(err, "log: 12 lines the log file did not take follow; 0 more were "
                                "lost\n"));
    assert_non_null(strstr(err, "] first\n"));
    assert_non_null(strstr(err, "] db: 19 (10 more like this"));
    free(err);
    tmp_remove(&t);
}

enum { THREADS = 4, LINES = 3000, WARN_EVERY = 10, KEEP = 400, ROTATE = 8192 };

struct logger {
    pthread_t th;
    int t;
    bool warn;
};

static void *logger(void *arg)
{
    struct logger *l = arg;
    for (int i = 0; i < LINES; i++) {
        log_info("thread %d line %d", l->t, i);
        if (l->warn && i % WARN_EVERY == 0)
            log_warn("thread %d warn %d", l->t, i);
    }
    return NULL;
}

struct tally {
    unsigned char seen[THREADS][LINES];
    size_t found, dup, lost, warns, held;
};

static void tally_line(struct tally *y, const char *line)
{
    int t, i, end = 0;
    unsigned long n;
    const char *m = strstr(line, "] ");
    if (strlen(line) < 26 || line[4] != '-' || strncmp(line + 19, "+0000 [", 7) != 0 || m == NULL)
        fail_msg("not a whole line: '%s'", line);
    m += 2;
    if (sscanf(m, "thread %d line %d%n", &t, &i, &end) == 2 && m[end] == '\0') {
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < LINES);
        y->dup += y->seen[t][i] > 0;
        y->found += y->seen[t][i]++ == 0;
    } else if (sscanf(m, "thread %d warn %d%n", &t, &i, &end) == 2) {
        const char *more = strstr(m, " (");
        if (more != NULL && sscanf(more, " (%lu more like this", &n) == 1)
            y->held += n;
        else
            y->warns++;
    } else if ((m = strstr(m, "kept in memory follow; ")) != NULL &&
               sscanf(m, "kept in memory follow; %lu more were lost", &n) == 1) {
        y->lost += n;
    }
}

static void tally_file(struct tally *y, const char *path)
{
    char *text = read_all(path);
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        tally_line(y, line);
    }
    free(text);
}

/* Every line of the log and its rotated files, none twice; returns how many files. */
static int tally_all(struct tally *y, const char *path)
{
    tally_file(y, path);
    int files = 1;
    for (; files <= KEEP; files++) {
        char *old = xasprintf("%s.%d", path, files);
        bool there = util_is_file(old);
        if (there)
            tally_file(y, old);
        free(old);
        if (!there)
            break;
    }
    assert_true(files < KEEP);
    assert_int_equal(y->dup, 0);
    return files;
}

/* THREADS loggers, logging warnings (held back past the limit) or info lines. */
static void start_loggers(struct logger *l, bool warn)
{
    for (int i = 0; i < THREADS; i++) {
        l[i] = (struct logger){.t = i, .warn = warn};
        assert_int_equal(pthread_create(&l[i].th, NULL, logger, &l[i]), 0);
    }
}

/*
 * Threads log through many rotations while the main thread reopens the file
 * and turns the copy to stderr on and off: every line is written once and
 * whole, the warnings are held back and summed up.
 */
static void test_threads_through_rotations(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    char *cause = NULL;
    assert_int_equal(log_open(t.path, ROTATE, KEEP, &cause), 0);
    struct logger l[THREADS];
    start_loggers(l, true);
    for (int i = 0; i < 200; i++) {
        log_tee_stderr(i % 50 == 0);
        assert_int_equal(log_open(t.path, ROTATE, KEEP, &cause), 0);
        log_tee_stderr(false);
        usleep(1000);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(l[i].th, NULL), 0);
    log_close();
    struct tally *y = xcalloc(1, sizeof *y);
    assert_true(tally_all(y, t.path) > 10);
    assert_int_equal(y->found, THREADS * LINES);
    assert_int_equal(y->lost, 0);
    assert_int_equal(y->warns + y->held, THREADS * LINES / WARN_EVERY);
    assert_true(y->warns < THREADS * LINES / WARN_EVERY);
    free(y);
    tmp_remove(&t);
}

/*
 * The same with the file on a full disk now and then: every line is written
 * once, whole, or counted as lost past the ring by the line that follows.
 */
static void test_threads_through_full_disk(void **state)
{
    (void)state;
    struct tmp t;
    tmp_make(&t);
    char *cause = NULL;
    assert_int_equal(log_open(t.path, ROTATE, KEEP, &cause), 0);
    struct logger l[THREADS];
    start_loggers(l, false);
    for (int i = 0; i < 200; i++) {
        if (i % 40 == 0) {
            assert_int_equal(log_open("/dev/full", ROTATE, KEEP, &cause), 0);
            usleep(1000);
        }
        assert_int_equal(log_open(t.path, ROTATE, KEEP, &cause), 0);
        usleep(1000);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(l[i].th, NULL), 0);
    log_close();
    struct tally *y = xcalloc(1, sizeof *y);
    tally_all(y, t.path);
    assert_int_equal(y->found + y->lost, THREADS * LINES);
    free(y);
    tmp_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeat_held_and_summed),
        cmocka_unit_test(test_repeat_window_closed_by_next_call),
        cmocka_unit_test(test_kept_through_full_disk),
        cmocka_unit_test(test_kept_to_stderr_at_close),
        cmocka_unit_test(test_threads_through_rotations),
        cmocka_unit_test(test_threads_through_full_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
