/*
 * The verbs that act on a running master from outside, and what start shares
 * with them: the pidfile (is the master running, and is it a bbmaster), the
 * log's tail, stop (SIGTERM, wait, SIGKILL after a bound: it always returns;
 * with --clean, SIGUSR1 and a wait for the builds to finish, as long as they
 * take) and reconfig (SIGHUP, then report from the log whether the new
 * configuration was applied).  Nothing here needs more than libc and util:
 * the `bbmaster` command runs stop and reconfig itself, without the master's
 * libraries (front.c).
 */
#include "master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

char *master_path(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

/* ------------------------------------------------------------ pidfile */

pid_t master_read_pid(const char *dir)
{
    char *path = master_path(dir, MASTER_PIDFILE);
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

bool master_is_running(pid_t pid)
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

void master_remove_pidfile(const char *dir)
{
    char *path = master_path(dir, MASTER_PIDFILE);
    unlink(path);
    free(path);
}

/* ------------------------------------------------------------ log tail */

long master_log_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

void master_print_log_since(const char *log, long offset)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return;
    if (master_log_size(log) >= offset)
        fseek(f, offset, SEEK_SET);
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stdout);
    fclose(f);
    fflush(stdout);
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
    pid_t pid = master_read_pid(dir);
    if (!master_is_running(pid)) {
        if (pid > 0)
            master_remove_pidfile(dir);
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
    master_remove_pidfile(dir);
    if (!gone) {
        fprintf(stderr, "pid %ld survived SIGKILL\n", (long)pid);
        return 1;
    }
    printf("bbmaster process %ld is dead\n", (long)pid);
    return 0;
}

/* ------------------------------------------------------------ reconfig */

/* Looks in the log after `offset` for the outcome of a reconfig: 1 ok, 0 failed, -1 none yet. */
static int reconfig_outcome(const char *log, long offset)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return -1;
    if (master_log_size(log) >= offset)
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
    pid_t pid = master_read_pid(dir);
    if (!master_is_running(pid)) {
        fprintf(stderr, "bbmaster not running in %s; nothing to reconfigure\n", dir);
        return 1;
    }
    char *log = master_path(dir, MASTER_LOGFILE);
    long offset = master_log_size(log);
    kill(pid, SIGHUP);
    printf("sent SIGHUP to bbmaster (pid %ld)\n", (long)pid);
    int outcome = wait_outcome(log, offset, timeout);
    master_print_log_since(log, offset);
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
