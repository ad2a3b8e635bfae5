/*
 * The master process: master.c wires the configuration, the worker registry
 * and the signals onto one libuv loop; lifecycle.c holds the command-line
 * verbs that start, stop and reconfigure a master from outside (pidfile,
 * daemonizing, waiting for the outcome, printing the log).
 */
#ifndef BBM_MASTER_H
#define BBM_MASTER_H

#include <stdbool.h>

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

#endif
