/*
 * The verbs that need the master's own code, with Buildbot's behaviour:
 * create-master, checkconfig, upgrade-master, start (daemonize, pidfile, wait
 * until the master is up or has failed, print the log of the attempt) and
 * restart; master_core runs them for main.c in `bbmaster-core`.  stop and
 * reconfig are in control.c.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "db/db.h"
#include "util/util.h"

/* How long `start` waits for the master to report, and the log's rotation. */
enum { START_WAIT_S = 60, LOG_ROTATE_BYTES = 10000000, LOG_KEEP = 10 };

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
    char *path = master_path(dir, MASTER_CONFIG);
    char *sample = master_path(dir, MASTER_CONFIG ".sample");
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
    char *file = util_is_dir(path) ? master_path(path, MASTER_CONFIG) : xstrdup(path);
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
    char *file = master_path(dir, MASTER_CONFIG);
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

/* Creates the pidfile exclusively; 0, or -1 with a message printed. */
static int write_pidfile(const char *dir)
{
    char *path = master_path(dir, MASTER_PIDFILE);
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

/* ------------------------------------------------------------ start */

static int check_startable(const char *dir)
{
    char *cfg = master_path(dir, MASTER_CONFIG);
    bool ok = util_is_file(cfg);
    free(cfg);
    if (!ok) {
        fprintf(stderr, "%s does not look like a bbmaster directory: no %s in it\n", dir,
                MASTER_CONFIG);
        return -1;
    }
    pid_t pid = master_read_pid(dir);
    if (master_is_running(pid)) {
        fprintf(stderr, "bbmaster is already running in %s (pid %ld)\n", dir, (long)pid);
        return -1;
    }
    char *pidfile = master_path(dir, MASTER_PIDFILE);
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
    master_remove_pidfile(".");
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
    char *log = master_path(dir, MASTER_LOGFILE);
    long offset = master_log_size(log);
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
    master_print_log_since(log, offset);
    free(log);
    if (ok) {
        printf("The buildmaster appears to have (re)started correctly.\n");
        return 0;
    }
    printf("The buildmaster appears to have failed to start; see the log above.\n");
    return 1;
}

int master_restart(const char *dir, bool nodaemon, int timeout, bool clean)
{
    if (master_stop(dir, timeout, clean) != 0)
        return 1;
    printf("now restarting bbmaster\n");
    return master_start(dir, nodaemon);
}

int master_core(const char *verb, const struct master_args *a, int argc, char **argv)
{
    if (util_streq(verb, "sendchange"))
        return master_sendchange(argc - 1, argv + 1);
    if (util_streq(verb, "create-master"))
        return master_create(a->dir);
    if (util_streq(verb, "checkconfig"))
        return master_checkconfig(a->dir, a->dump);
    if (util_streq(verb, "upgrade-master"))
        return master_upgrade(a->dir);
    if (util_streq(verb, "start"))
        return master_start(a->dir, a->nodaemon);
    if (util_streq(verb, "restart"))
        return master_restart(a->dir, a->nodaemon, a->timeout, a->clean);
    fprintf(stderr, "bbmaster: unknown command '%s'\n", verb);
    return 2;
}
