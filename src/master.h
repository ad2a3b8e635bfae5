/*
 * The master process: master.c wires the configuration, the worker registry
 * and the signals onto one libuv loop; main.c reads the command line;
 * lifecycle.c holds the verbs that need the master's code (create-master,
 * checkconfig, upgrade-master, start with its daemonizing, restart) and
 * control.c those that act on a running master from outside (stop, reconfig:
 * pidfile, signals, waiting for the outcome, printing the log), which the
 * light `bbmaster` program runs without the master's libraries (front.c).
 */
#ifndef BBM_MASTER_H
#define BBM_MASTER_H

#include <stdbool.h>
#include <sys/types.h>

/* Names of the files in a master directory. */
#define MASTER_CONFIG "master.lua"
#define MASTER_PIDFILE "bbmaster.pid"
#define MASTER_LOGFILE "bbmaster.log"

/* The lines the master logs that the lifecycle verbs wait for (Buildbot's words). */
#define MASTER_MSG_RUNNING "BuildMaster is running"
#define MASTER_MSG_START_FAILED "BuildMaster startup failed"
#define MASTER_MSG_RECONFIG_OK "configuration update complete"
#define MASTER_MSG_RECONFIG_FAILED "reconfig aborted without making any changes"

/* Seconds the master gives itself to stop after SIGTERM before it exits hard. */
#define MASTER_STOP_BOUND 8
/* Seconds running builds get to stop before their workers' connections are dropped. */
#define MASTER_BUILD_STOP_WAIT 5

/*
 * Runs a master in the current directory until SIGTERM or SIGINT.  When
 * `ready_fd` is not negative, "ok\n" or "fail\n" is written to it once the
 * master is up or has failed, and it is closed.  Returns 0 after a clean stop,
 * -1 with *cause if it could not start.
 */
int master_run(int ready_fd, char **cause);

/* The command line's options (main.c). */
struct master_args {
    bool nodaemon;
    bool dump;
    bool clean;
    int timeout;
    const char *dir;
};

/*
 * Runs `verb`, one that needs the master's code, with its options `a` (NULL for sendchange,
 * which reads its own) and main's argc and argv.  In `bbmaster-core`, lifecycle.c runs it
 * and returns the exit code; in `bbmaster`, front.c replaces the process with
 * `bbmaster-core` and the same argv, and returns only if that cannot be done (exit code 1,
 * with a message).
 */
int master_core(const char *verb, const struct master_args *a, int argc, char **argv);

/* The verbs; each returns the process exit code and prints for a person. */
int master_create(const char *dir);
/* With `dump`, the configuration is printed as JSON on stdout (cfg_dump), and every
   message goes to stderr. */
int master_checkconfig(const char *path, bool dump);
int master_upgrade(const char *dir);
int master_start(const char *dir, bool nodaemon);
/* With `clean`, Buildbot's `stop --clean`: SIGUSR1 (a clean shutdown), and a wait without
   bound for the running builds to finish and the master to stop. */
int master_stop(const char *dir, int timeout, bool clean);
int master_restart(const char *dir, bool nodaemon, int timeout, bool clean);
int master_reconfig(const char *dir, int timeout);
/* `bbmaster sendchange ...` (sendchange.c): argv[0] is "sendchange". */
int master_sendchange(int argc, char **argv);

/* What start and the verbs of control.c share (control.c): "DIR/NAME" (to free); the pid
   in DIR's pidfile, or 0; whether `pid` runs and is a bbmaster (so a recycled pid is not
   mistaken); the pidfile removed; the size of a file (the log), 0 if there is none; and what
   the log gained since `offset` printed on stdout (all of it if it has rotated since). */
char *master_path(const char *dir, const char *name);
pid_t master_read_pid(const char *dir);
bool master_is_running(pid_t pid);
void master_remove_pidfile(const char *dir);
long master_log_size(const char *path);
void master_print_log_since(const char *log, long offset);

#endif
