/*
 * The verbs that manage a master from outside, with Buildbot's behaviour:
 * create-master, checkconfig, start (daemonize, pidfile, wait until the
 * master is up or has failed, print the log of the attempt), stop (SIGTERM,
 * wait, SIGKILL after a bound: it always returns; with --clean, SIGUSR1 and a
 * wait for the builds to finish, as long as they take), restart, and reconfig
 * (SIGHUP, then report from the log whether the new config was applied).
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "db/db.h"
#include "util/util.h"

/* How long `start` waits for the master to report, and the log's rotation. */
enum { START_WAIT_S = 60, LOG_ROTATE_BYTES = 10000000, LOG_KEEP = 10 };

static char *in_dir(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

/* ------------------------------------------------------------ create, check */

int master_create(const char *dir)
{
    if (!util_is_dir(dir)) {
        if (mkdir(dir, 0755) != 0) {
            fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
            return 1;
        }
        printf("mkdir %s\n", dir);
    }
    char *cause = NULL;
    char *path = in_dir(dir, MASTER_CONFIG);
    char *sample = in_dir(dir, MASTER_CONFIG ".sample");
    int rc = 0;
    const char *text = cfg_sample_master_lua;
    if (util_write_file(sample, text, strlen(text), 0644, &cause) != 0) {
        rc = 1;
    } else if (util_is_file(path)) {
        printf("%s already exists; kept it (a fresh sample is in %s)\n", path, sample);
    } else if (util_write_file(path, text, strlen(text), 0644, &cause) != 0) {
        rc = 1;
    } else {
        printf("creating %s\n", path);
    }
    if (rc != 0)
        fprintf(stderr, "%s\n", cause);
    else
        printf("buildmaster configured in %s\n", dir);
    free(cause);
    free(path);
    free(sample);
    /* Like Buildbot's create-master, the database is created too. */
    return rc != 0 ? rc : master_upgrade(dir);
}

int master_checkconfig(const char *path, bool dump)
{
    char *file = util_is_dir(path) ? in_dir(path, MASTER_CONFIG) : xstrdup(path);
    struct cfg *cfg = NULL;
    char *cause = NULL, *json = NULL;
    int rc = 0;
    if (cfg_load(file, &cfg, &cause) != 0 || (dump && (json = cfg_dump(cfg, &cause)) == NULL)) {
        fprintf(stderr, "%s", cause);
        if (cause[0] != '\0' && cause[strlen(cause) - 1] != '\n')
            fputc('\n', stderr);
        rc = 1;
    } else {
        if (cfg->warnings != NULL)
            fprintf(stderr, "%s", cfg->warnings);
        fputs("Config file is good!\n", dump ? stderr : stdout);
        if (json != NULL)
            fputs(json, stdout);
    }
    free(json);
    cfg_free(cfg);
    free(cause);
    free(file);
    return rc;
}

/* ------------------------------------------------------------ upgrade-master */

static void say_cb(const char *line, void *arg)
{
    (void)arg;
    printf("%s\n", line);
}

/*
 * Creates Buildbot 4.3's schema in an empty database or upgrades a Buildbot
 * 3.x one, as `buildbot upgrade-master` does; refuses anything else.
 */
int master_upgrade(const char *dir)
{
    char *file = in_dir(dir, MASTER_CONFIG);
    struct cfg *cfg = NULL;
    char *cause = NULL;
    int rc = 1;
    char abs[4096];
    struct db *db = NULL;
    if (cfg_load(file, &cfg, &cause) != 0) {
        fprintf(stderr, "%s", cause);
        goto out;
    }
    if (realpath(dir, abs) == NULL) {
        fprintf(stderr, "bbmaster: %s: %s\n", dir, strerror(errno));
        goto out;
    }
    db = db_open(cfg->db_url, abs, false, &cause);
    if (db == NULL || db_schema_upgrade(db, say_cb, NULL, &cause) != 0) {
        fprintf(stderr, "upgrade-master: %s\n", cause);
        goto out;
    }
    printf("upgrade complete\n");
    rc = 0;
out:
    db_close(db);
    cfg_free(cfg);
    free(cause);
    free(file);
    return rc;
}

/* ------------------------------------------------------------ pidfile */

static pid_t read_pid(const char *dir)
{
    char *path = in_dir(dir, MASTER_PIDFILE);
    char *text = util_read_file(path, 64, NULL, NULL);
    free(path);
    long pid = 0;
    if (text != NULL) {
        text[strcspn(text, "\r\n")] = '\0';
        if (util_parse_long(text, 1, 0x7fffffff, &pid) != 0)
            pid = 0;
    }
    free(text);
    return (pid_t)pid;
}

/* True once `pid` has exited: gone, or a zombie its new parent has not reaped yet. */
static bool exited(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    char *stat = util_read_file(path, 4096, NULL, NULL);
    const char *paren = stat != NULL ? strrchr(stat, ')') : NULL;
    bool zombie = paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
    free(stat);
    return zombie;
}

/* True if `pid` runs and is a bbmaster (so a recycled pid is not mistaken). */
static bool is_master(pid_t pid)
{
    if (pid <= 0 || exited(pid))
        return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    size_t len = 0;
    char *cmd = util_read_file(path, 4096, &len, NULL);
    if (cmd == NULL)
        return true; /* no /proc: trust the pid */
    bool found = memmem(cmd, len, "bbmaster", 8) != NULL;
    free(cmd);
    return found;
}

/* Creates the pidfile exclusively; 0, or -1 with a message printed. */
static int write_pidfile(const char *dir)
{
    char *path = in_dir(dir, MASTER_PIDFILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        log_error("cannot create %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    ssize_t w = write(fd, text, (size_t)n);
    close(fd);
    free(path);
    return w == n ? 0 : -1;
}

static void remove_pidfile(const char *dir)
{
    char *path = in_dir(dir, MASTER_PIDFILE);
    unlink(path);
    free(path);
}

/* ------------------------------------------------------------ log tail */

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Prints what the log gained since `offset` (it may have rotated: then all of it). */
static void print_log_since(const char *log, long offset)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return;
    if (file_size(log) >= offset)
        fseek(f, offset, SEEK_SET);
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stdout);
    fclose(f);
    fflush(stdout);
}

/* ------------------------------------------------------------ start */

static int check_startable(const char *dir)
{
    char *cfg = in_dir(dir, MASTER_CONFIG);
    bool ok = util_is_file(cfg);
    free(cfg);
    if (!ok) {
        fprintf(stderr, "%s does not look like a bbmaster directory: no %s in it\n", dir,
                MASTER_CONFIG);
        return -1;
    }
    pid_t pid = read_pid(dir);
    if (is_master(pid)) {
        fprintf(stderr, "bbmaster is already running in %s (pid %ld)\n", dir, (long)pid);
        return -1;
    }
    char *pidfile = in_dir(dir, MASTER_PIDFILE);
    if (util_is_file(pidfile)) {
        printf("removing stale pidfile %s\n", pidfile);
        unlink(pidfile);
    }
    free(pidfile);
    return 0;
}

/* The master itself, in the directory, logging to its file. */
static int run_here(const char *dir, int ready_fd, bool tee)
{
    if (chdir(dir) != 0) {
        fprintf(stderr, "cannot enter %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *cause = NULL;
    log_tee_stderr(tee);
    if (log_open(MASTER_LOGFILE, LOG_ROTATE_BYTES, LOG_KEEP, &cause) != 0) {
        fprintf(stderr, "%s\n", cause);
        free(cause);
        return 1;
    }
    if (write_pidfile(".") != 0) {
        if (ready_fd >= 0 && write(ready_fd, "fail\n", 5) < 0)
            ready_fd = -1;
        return 1;
    }
    int rc = master_run(ready_fd, &cause);
    remove_pidfile(".");
    free(cause);
    log_close();
    return rc == 0 ? 0 : 1;
}

static void daemon_child(const char *dir, int ready_fd)
{
    setsid();
    if (fork() != 0)
        _exit(0);
    umask(022);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    _exit(run_here(dir, ready_fd, false));
}

/* Waits for the daemon's "ok" or "fail" on `fd`; returns true for ok. */
static bool wait_ready(int fd)
{
    char answer[16] = "";
    size_t got = 0;
    uint64_t deadline = util_mono_ms() + START_WAIT_S * 1000;
    while (got < sizeof answer - 1) {
        uint64_t now = util_mono_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t n = read(fd, answer + got, sizeof answer - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return util_startswith(answer, "ok");
}

int master_start(const char *dir, bool nodaemon)
{
    if (check_startable(dir) != 0)
        return 1;
    if (nodaemon)
        return run_here(dir, -1, true);
    char *log = in_dir(dir, MASTER_LOGFILE);
    long offset = file_size(log);
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "pipe: %s\n", strerror(errno));
        free(log);
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        free(log);
        return 1;
    }
    if (child == 0) {
        close(fds[0]);
        daemon_child(dir, fds[1]);
    }
    close(fds[1]);
    waitpid(child, NULL, 0);
    bool ok = wait_ready(fds[0]);
    close(fds[0]);
    print_log_since(log, offset);
    free(log);
    if (ok) {
        printf("The buildmaster appears to have (re)started correctly.\n");
        return 0;
    }
    printf("The buildmaster appears to have failed to start; see the log above.\n");
    return 1;
}

/* ------------------------------------------------------------ stop */

static bool wait_gone(pid_t pid, int seconds)
{
    uint64_t deadline = util_mono_ms() + (uint64_t)seconds * 1000;
    while (util_mono_ms() < deadline) {
        if (exited(pid))
            return true;
        usleep(20 * 1000);
    }
    return exited(pid);
}

/* stop --clean: the master stops by itself once its builds have finished, however long. */
static int stop_clean(pid_t pid)
{
    if (kill(pid, SIGUSR1) != 0) {
        fprintf(stderr, "cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
        return 1;
    }
    printf("sent SIGUSR1 to pid %ld; waiting for its running builds to finish and for it to "
           "stop\n",
           (long)pid);
    fflush(stdout);
    while (!exited(pid))
        usleep(100 * 1000);
    printf("bbmaster process %ld is dead\n", (long)pid);
    return 0;
}

int master_stop(const char *dir, int timeout, bool clean)
{
    pid_t pid = read_pid(dir);
    if (!is_master(pid)) {
        if (pid > 0)
            remove_pidfile(dir);
        printf("bbmaster not running in %s\n", dir);
        return 0;
    }
    if (clean)
        return stop_clean(pid);
    if (kill(pid, SIGTERM) != 0) {
        fprintf(stderr, "cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
        return 1;
    }
    printf("sent SIGTERM to pid %ld; waiting up to %d s for it to stop\n", (long)pid, timeout);
    fflush(stdout);
    if (wait_gone(pid, timeout)) {
        printf("bbmaster process %ld is dead\n", (long)pid);
        return 0;
    }
    printf("bbmaster did not stop within %d s; sending SIGKILL\n", timeout);
    kill(pid, SIGKILL);
    bool gone = wait_gone(pid, 5);
    remove_pidfile(dir);
    if (!gone) {
        fprintf(stderr, "pid %ld survived SIGKILL\n", (long)pid);
        return 1;
    }
    printf("bbmaster process %ld is dead\n", (long)pid);
    return 0;
}

int master_restart(const char *dir, bool nodaemon, int timeout, bool clean)
{
    if (master_stop(dir, timeout, clean) != 0)
        return 1;
    printf("now restarting bbmaster\n");
    return master_start(dir, nodaemon);
}

/* ------------------------------------------------------------ reconfig */

/* Looks in the log after `offset` for the outcome of a reconfig: 1 ok, 0 failed, -1 none yet. */
static int reconfig_outcome(const char *log, long offset)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return -1;
    if (file_size(log) >= offset)
        fseek(f, offset, SEEK_SET);
    char line[4096];
    int outcome = -1;
    while (outcome < 0 && fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, MASTER_MSG_RECONFIG_OK) != NULL)
            outcome = 1;
        else if (strstr(line, MASTER_MSG_RECONFIG_FAILED) != NULL)
            outcome = 0;
    }
    fclose(f);
    return outcome;
}

/* Waits up to `timeout` s for the outcome in the log: woken as soon as the log is written
   (inotify), and every RECONFIG_POLL_MS anyway (a log rotated meanwhile is another file). */
enum { RECONFIG_POLL_MS = 50 };

static int wait_outcome(const char *log, long offset, int timeout)
{
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd >= 0 && inotify_add_watch(fd, log, IN_MODIFY) < 0) {
        close(fd);
        fd = -1;
    }
    int outcome = reconfig_outcome(log, offset);
    uint64_t deadline = util_mono_ms() + (uint64_t)timeout * 1000;
    while (outcome < 0 && util_mono_ms() < deadline) {
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            char events[4096];
            if (poll(&p, 1, RECONFIG_POLL_MS) > 0)
                while (read(fd, events, sizeof events) > 0)
                    ;
        } else {
            usleep(RECONFIG_POLL_MS * 1000);
        }
        outcome = reconfig_outcome(log, offset);
    }
    if (fd >= 0)
        close(fd);
    return outcome;
}

int master_reconfig(const char *dir, int timeout)
{
    pid_t pid = read_pid(dir);
    if (!is_master(pid)) {
        fprintf(stderr, "bbmaster not running in %s; nothing to reconfigure\n", dir);
        return 1;
    }
    char *log = in_dir(dir, MASTER_LOGFILE);
    long offset = file_size(log);
    kill(pid, SIGHUP);
    printf("sent SIGHUP to bbmaster (pid %ld)\n", (long)pid);
    int outcome = wait_outcome(log, offset, timeout);
    print_log_since(log, offset);
    free(log);
    if (outcome == 1) {
        printf("Reconfiguration appears to have completed successfully\n");
        return 0;
    }
    if (outcome == 0)
        printf("Reconfiguration failed: the master keeps running its previous configuration. "
               "Correct %s and run 'bbmaster reconfig' again.\n",
               MASTER_CONFIG);
    else
        printf("No answer from the master within %d s; see %s/%s\n", timeout, dir, MASTER_LOGFILE);
    return 1;
}
