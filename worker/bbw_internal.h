/*
 * What the files of bbworker share: the running worker (struct bbw), its
 * builders and the connection of the moment.  session.c owns the connection
 * and the Bot object; command.c runs the commands of one builder.
 */
#ifndef BBW_INTERNAL_H
#define BBW_INTERNAL_H

#include <uv.h>

#include "pb/pb.h"
#include "worker.h"

#define BBW_MAX_BUILDERS 4096
#define BBW_INFO_MAX (64 * 1024) /* bytes of one info/ file sent to the master */
#define BBW_SEND_HIGH (4u << 20) /* bytes queued on the socket before a child's output waits */
#define BBW_PROXY_REPLY_MAX (16 * 1024) /* the longest answer of a proxy to CONNECT */

struct bbw_cmd;
struct bbw_shell;

/* One WorkerForBuilder: a builder name, its directory and the command it runs. */
struct bbw_builder {
    struct bbw *w;
    char *name;
    char *builddir; /* relative to the worker's basedir, as the master sent it */
    uint32_t luid;  /* exported on the current connection; 0 = not yet */
    struct bbw_cmd *cmd;
};

struct bbw_conn;

struct bbw {
    uv_loop_t *loop;
    const struct bbw_tac *tac;
    const char *dir;
    struct bbw_conn *conn; /* the connection of the moment, or NULL */
    struct bbw_builder **builders;
    size_t nbuilders;
    uv_timer_t retry;
    uv_timer_t keepalive;
    uv_timer_t connect_timer; /* the endpoint's timeout for a connection attempt */
    uv_signal_t sigterm, sigint;
    uv_signal_t sighup;       /* allow_shutdown = 'signal' */
    uv_timer_t shutdown_poll; /* allow_shutdown = 'file': shutdown.stamp's mtime */
    double shutdown_mtime;
    struct tls_ctx *tls; /* use_tls: the master's certificate is checked with it */
    unsigned attempts;   /* failed attempts since the last login */
    bool stopping;
    int exit_rc;
};

/* True while a connection is logged in and can carry calls. */
bool bbw_connected(const struct bbw *w);
/* The broker of the current connection (NULL when none). */
struct pb_broker *bbw_broker(const struct bbw *w);
/* Bytes waiting to be written to the master on the current connection. */
size_t bbw_send_queued(const struct bbw *w);
/* Runs `cb(arg)` once the send queue drains below BBW_SEND_HIGH (or the connection goes). */
void bbw_on_drain(struct bbw *w, void (*cb)(void *arg), void *arg);

/* Output streams of a command, in the order of bbw_cmd_output's batches. */
enum bbw_stream { BBW_HEADER, BBW_STDOUT, BBW_STDERR };

#define BBW_BATCH_MAX (64 * 1024) /* bytes of one stdout/stderr/header update */
#define BBW_LINE_MAX 4096         /* a partial line held back longer than this is sent */
#define BBW_FLUSH_MS 50           /* the longest output waits before it is sent */
#define BBW_PENDING_HIGH 1024     /* unanswered calls before a child's output waits */

/*
 * One command the master started on a builder (SPEC 5.6): the master's
 * RemoteCommand it reports to, output batching, and the running work (a
 * shell process, shell.c).  Freed once finished and every handle is closed.
 */
struct bbw_cmd {
    struct bbw *w;
    struct bbw_builder *b; /* NULL once abandoned */
    struct pb_broker *broker;
    uint32_t remote; /* the master's RemoteCommand */
    char *id;
    char *name;
    uint64_t started_ns;
    bool finished;         /* complete sent (or abandoned) */
    bool abandoned;        /* the connection or the builder is gone: send nothing */
    bool interrupted;      /* interruptCommand: elapsed is not reported */
    int holds;             /* open handles + the running work + drain waits */
    struct buf partial[3]; /* the unfinished last line of each stream */
    struct buf batch;      /* output not yet sent, all of stream batch_stream */
    enum bbw_stream batch_stream;
    uv_timer_t flush;
    struct bbw_shell *shell; /* the process of a shell/rmdir/cpdir command */
};

/* command.c */
void bbw_cmd_start(struct bbw_builder *b, struct pb_call *call);
void bbw_cmd_interrupt(struct bbw_builder *b, struct pb_call *call);
/* The connection or builder is gone: kill the builder's command without reporting. */
void bbw_cmd_abandon(struct bbw_builder *b);
/* Output of `stream` (bytes; invalid UTF-8 is replaced when it is sent). */
void bbw_cmd_output(struct bbw_cmd *c, enum bbw_stream stream, const char *data, size_t len);
/* One update {key: value} after the output so far (takes value). */
void bbw_cmd_update(struct bbw_cmd *c, const char *key, struct pb_value *value);
/* Sends what is held, then complete(failure) (takes failure; NULL = None). */
void bbw_cmd_finish(struct bbw_cmd *c, struct pb_value *failure);
/* True when output should wait: the socket or the call window is full. */
bool bbw_cmd_congested(const struct bbw_cmd *c);
/* Drops one hold; frees the command at zero. */
void bbw_cmd_release(struct bbw_cmd *c);
/* The directory `rel` names under the builder's directory (malloc'd). */
char *bbw_cmd_path(const struct bbw_cmd *c, const char *rel);
/* The names of the commands implemented, and their version, for worker_commands. */
extern const char *const bbw_cmd_names[];
#define BBW_CMD_VERSION "3.3" /* buildbot-worker 4.x's: max_lines, failure_reason */

/* shell.c: runs argv (the first `n` items of the master's command) for c. */
struct bbw_shell_opts {
    struct pb_value *command;  /* list (text or obfuscated triples) or text */
    const char *workdir;       /* absolute */
    struct pb_value *env;      /* dict or NULL */
    struct pb_value *logfiles; /* dict or NULL */
    bool want_stdout, want_stderr, log_environ;
    bool use_pty;        /* one terminal for stdin, stdout and stderr (all as stdout) */
    long timeout;        /* seconds without output; <= 0: none */
    long max_time;       /* seconds in all; <= 0: none */
    long max_lines;      /* lines of stdout and stderr sent; < 0: none */
    double sigterm_time; /* < 0: none */
    int interrupt_signal;
    const char *initial_stdin; /* NULL: none */
    size_t initial_stdin_len;
    bool header; /* send the command/dir/argv/env header */
};
/* Starts the process; on failure reports and finishes c itself. */
void bbw_shell_run(struct bbw_cmd *c, const struct bbw_shell_opts *o);
/* interruptCommand: kill with the interrupt signal, reporting. */
void bbw_shell_interrupt(struct bbw_shell *s);
/* Abandon: SIGKILL the process group; nothing more is reported. */
void bbw_shell_abandon(struct bbw_shell *s);
/* Output may flow again (the connection drained). */
void bbw_shell_resume(struct bbw_shell *s);
/* A signal's number from its name ("KILL", "SIGTERM"), or -1. */
int bbw_signal_number(const char *name);

/* logfiles.c: the files of a shell command's `logfiles`, followed while it runs. */
#define BBW_LOGFILES_MAX 64
#define BBW_LOGFILE_POLL_MS 2000 /* buildbot-worker's LogFileWatcher.POLL_INTERVAL */
struct bbw_logfiles;
/* 0, or -1 with *cause if `logfiles` is not a dict of name -> filename or {filename, follow}. */
int bbw_logfiles_check(const struct pb_value *logfiles, char **cause);
/* Notes each file's state before the command runs (NULL when there are none). */
struct bbw_logfiles *bbw_logfiles_new(struct bbw_cmd *c, const struct pb_value *logfiles,
                                      const char *workdir);
/* Sends what the files gained as `log` updates (`last`: the command ended). */
void bbw_logfiles_poll(struct bbw_logfiles *l, bool last);
void bbw_logfiles_free(struct bbw_logfiles *l);
/* Python's repr() of the logfiles dict, for the header. */
void bbw_logfiles_repr(struct buf *b, const struct pb_value *logfiles);

/* Bytes -> text: each byte that does not start valid UTF-8 becomes U+FFFD (command.c). */
struct pb_value *bbw_utf8_text(const char *s, size_t len);
/* The largest length <= len that does not end inside a UTF-8 character (len if none fits). */
size_t bbw_utf8_cut(const char *s, size_t len);

/* transfer.c: uploadFile, uploadDirectory, downloadFile; -1 if the args lack a path or remote. */
int bbw_transfer_run(struct bbw_cmd *c, const char *name, const struct pb_value *args);

/* fs.c: the file system commands, run at once; 0, or -1 if `name` is not one of them. */
int bbw_fs_run(struct bbw_cmd *c, const char *name, const struct pb_value *args);

#endif
