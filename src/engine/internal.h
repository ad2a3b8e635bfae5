/*
 * Private to src/engine: the engine, its builds, steps and logs, and the
 * pieces the files share.
 *
 *   engine.c    the engine, workers' availability, configurations in use
 *   control.c   control actions from the web
 *   botmaster.c pending requests -> claimed -> builds on free workers
 *   requests.c  buildsets, source stamps, requests, claims
 *   collapse.c  collapsing requests (collapseRequests)
 *   quarantine.c workers held back for a while (putInQuarantine)
 *   build.c     one build: its rows, properties, the sequence of steps, the result
 *   step.c      one step: configuration from Lua, the worker command, its result
 *   git.c       the git step
 *   transfer.c  transfers, worker directory steps, master_shell_command
 *   trigger.c   the trigger step
 *   logs.c      logs and their chunks, batched
 *   props.c     properties and rendering (bbm.interpolate, Lua functions)
 *   paths.c     which master paths a transfer step may use
 *   unpack.c    a directory upload's archive: checked, extracted, moved into place
 *   locks.c     master and worker locks: owners, FIFO queues of waiters
 *
 * Lifetimes.  Stopping, cancelling or polling one build can finish it and others
 * before the call returns (a trigger step cancels its children, a step's end runs the
 * next).  So:
 *   - a finished build stays in e->builds, `finished` set, until the next loop turn,
 *     when engine.c's reaper unlinks and frees it: a loop over e->builds, or a callback
 *     that reached a build, may call anything and go on reading it afterwards, but
 *     skips (or leaves alone) a build whose `finished` is set;
 *   - a step is freed the moment it finishes, so it finishes only once nothing can call
 *     back into it: its worker command has completed (s->cmd is NULL; a peer's
 *     protocol error waits for that too), its master_shell_command's handles are
 *     closed, and an archive still being unpacked is abandoned (unpack.c then frees
 *     itself when tar exits).  After a call that may finish a step (step_interrupt,
 *     trigger_poll, step_finish, a transfer callback) the caller does not touch it.
 */
#ifndef BBM_ENGINE_INTERNAL_H
#define BBM_ENGINE_INTERNAL_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>

#include "engine/engine.h"
#include "util/util.h"

/* Buildbot's result codes. */
enum {
    RES_SUCCESS = 0,
    RES_WARNINGS = 1,
    RES_FAILURE = 2,
    RES_SKIPPED = 3,
    RES_EXCEPTION = 4,
    RES_RETRY = 5,
    RES_CANCELLED = 6,
};
const char *res_name(int results);
/* Buildbot's worst_status. */
int res_worst(int a, int b);

/* ------------------------------------------------------------ properties */

struct prop {
    char *name;
    json_t *value;
    char *source;
    bool stored;  /* a build_properties row exists */
    bool changed; /* since it was last written */
};

struct props {
    struct prop *items; /* in the order they were first set, as Buildbot keeps them */
    size_t n, cap;
};

void props_set(struct props *p, const char *name, json_t *value, const char *source);
const json_t *props_get(const struct props *p, const char *name);
void props_free(struct props *p);

/* What a value is rendered against. */
struct render_ctx {
    const struct props *props;
    const json_t *sourcestamps;    /* [{codebase, branch, ...}] */
    const struct pb_value *worker; /* the worker's info */
    lua_State *L;
};

/* Python's str() of a property value ("True", "None", 3, text). */
char *props_str(const json_t *v);
/*
 * Renders the Lua value at `idx`: strings, numbers and booleans as they are,
 * bbm.interpolate by its format, functions by calling them with a properties
 * object.  The result is JSON (owned), or NULL with *cause.
 */
json_t *render(const struct render_ctx *c, int idx, char **cause);
/*
 * render() for a command a shell will parse (a string master_shell_command): a
 * bbm.interpolate's substituted values (properties, source stamp attributes, kw:,
 * worker:, positional renderables) are shell-quoted as Python's shlex.quote does, so
 * that no value can become shell syntax; its format's own text is not.  Anything else
 * renders as render() does (a Lua function's string is its author's to quote).
 */
json_t *render_shell(const struct render_ctx *c, int idx, char **cause);
/* Pushes the properties object Lua renderables get (props:getProperty(name[, default])). */
void props_push_lua(const struct render_ctx *c);

/* ------------------------------------------------------------ logs */

struct steplog {
    struct engine *e;
    struct step *step; /* its step, told when lines are lost (step_abort) */
    char *name;
    long long id;
    char type;             /* 's' stdio (lines carry a channel), 't' text, 'h' html */
    struct buf partial[3]; /* an unfinished line per channel: o, e, h */
    struct buf pending;    /* whole lines not yet in the database, joined by '\n' */
    long long pending_lines;
    long long num_lines; /* in chunks (in the database, or on their way) */
    int packing;         /* its chunks handed to the packer's thread, not yet written */
    long long unsure;    /* lines written in a transaction still open (steplog_unsure) */
    struct steplog *next_unsure;
    struct steplog *next_dirty;
    bool dirty;
    /* Optional: told of every whole line (warning patterns, set_property_from_command). */
    void (*on_line)(void *arg, char channel, const char *line, size_t len);
    void *on_line_arg;
};

/* A log row for step `stepid`; NULL with *cause.  Its `step`, when set, is aborted if
   lines are lost. */
struct steplog *steplog_open(struct engine *e, long long stepid, const char *name, char type,
                             char **cause);
/* steplog_open for step `s`, which is told of lost lines. */
struct steplog *step_log_open(struct step *s, const char *name, char type, char **cause);
/* Appends text on `channel` ('o', 'e', 'h'; 0 for a log without channels). */
void steplog_add(struct steplog *l, char channel, const char *text, size_t len);
/* Writes what is pending, marks the log complete and frees it. */
void steplog_close(struct steplog *l);
/* Writes every pending log chunk (the engine's flush timer). */
void steplogs_flush(struct engine *e);
/* `lines` of `l` were written in a transaction its writer did not open: they are the
   log's when it commits (engine_transaction_ended). */
void steplog_unsure(struct steplog *l, long long lines);

/* logpack.c: log chunks compressed on a thread of their own and written by the loop, in
   the order they were handed over.  logpack_put takes `text` (malloc'd, `len` bytes,
   `lines` lines from l->num_lines on), and writes it at once if `tail` and no chunk of its
   log is in the thread's hands; it may write chunks compressed before it, as
   logpack_collect does.  logpack_wait writes every chunk of `l` handed over;
   logpack_free writes them all and stops the thread. */
#define LOG_CHUNK_MAX 65536 /* bytes of content in one chunk (Buildbot's limit) */
struct logpack *logpack_new(void);
void logpack_put(struct engine *e, struct steplog *l, char *text, size_t len, long long lines,
                 bool tail);
void logpack_collect(struct engine *e);
void logpack_wait(struct engine *e, struct steplog *l);
void logpack_free(struct engine *e);

/* ------------------------------------------------------------ locks */

/* locks.c: every lock of the engine, kept by kind and name across reconfigs.  `notify` is
   called when waiters may take their locks: its owner then calls locks_run_ready soon
   (never from inside the call that notified). */
struct locks;
struct lockreq;
struct locks *locks_new(void (*notify)(void *arg), void *arg);
void locks_free(struct locks *reg);
/* Buildbot's canStartBuild pre-check: whether accesses `a` could be taken now on `worker`
   by a newcomer (behind every waiter).  `version` is the configuration's (see locks.c). */
bool locks_available(struct locks *reg, const struct cfg_lock_access *a, size_t n,
                     const char *worker, unsigned long version);
/* A request for all of `a` on `worker` (free with lockreq_free, which releases or stops
   waiting, whichever applies). */
struct lockreq *lockreq_new(struct locks *reg, const struct cfg_lock_access *a, size_t n,
                            const char *worker, unsigned long version);
/* Takes the locks now (true) or queues; `cb(arg)` is called from locks_run_ready once
   they are taken. */
bool lockreq_acquire(struct lockreq *r, void (*cb)(void *arg), void *arg);
bool lockreq_owned(const struct lockreq *r);
/* The name of a lock both requests use, or NULL. */
const char *lockreq_shared(const struct lockreq *a, const struct lockreq *b);
void lockreq_free(struct lockreq *r);
/* Waiters that were woken try again; those that take their locks are called back. */
void locks_run_ready(struct locks *reg);

/* ------------------------------------------------------------ builds */

struct build;

struct step {
    struct build *b;
    int index;  /* in the factory */
    int number; /* in the build */
    long long id;
    char *name;
    int ref;    /* the step's table in the config's Lua state */
    char *kind; /* "step.shell", ... */
    bool halt_on_failure, flunk_on_failure, flunk_on_warnings, warn_on_warnings, warn_on_failure,
        always_run;
    json_t *command;          /* as rendered: a list of strings or a string */
    char *description;        /* joined; NULL: from the command */
    char *description_done;   /* joined; NULL: the description */
    char *description_suffix; /* joined, appended to either; NULL: none */
    json_t *decode_rc;        /* {"rc": result} */
    struct steplog *stdio;
    json_t *declared_logs;     /* the step's `logfiles` ({name: file}); others are ignored */
    struct steplog **logfiles; /* the `logfiles` the worker sends, by name */
    char **logfile_names;
    size_t n_logfiles;
    bool undeclared_warned; /* a worker's output for an undeclared log was logged */
    char *abort_reason;     /* step_abort's: the step ends EXCEPTION with it */
    struct wk_command *cmd;
    long long rc;
    bool have_rc;
    bool interrupted;
    bool lost;
    bool timed_out, max_lines; /* the worker's failure_reason (4.x) */
    int results;
    void *warn_re; /* pcre2_code of warningPattern, for compile and test */
    long long warn_count;
    long long max_warn_count; /* maxWarnCount: more warnings fail the step; -1: none */
    bool summary_policy;      /* updateBuildSummaryPolicy given: then only results in */
    unsigned summary_results; /* this set (bit N: result N) go into the build's summary */
    struct buf warn_lines;
    char *set_property; /* set_property_from_command: the property, from stdout */
    bool strip;
    bool collect; /* keep the running command's stdout in `captured` */
    struct buf captured;
    json_t *files;                /* the running command's `files` update (glob, listdir) */
    void (*then)(struct step *s); /* what follows the running command */
    struct git *git;              /* the git step's state (git.c) */
    struct xfer *xfer;            /* transfer.c's state */
    const struct wk_command_object *object; /* the next command's writer or reader */
    struct pb_value *stat;                  /* the running command's `stat` update */
    bool local;                             /* a master_shell_command process is running */
    struct trigger *trigger;                /* trigger.c state */
    int setup_rc;                           /* the command's setup, done before the row */
    char *setup_error;
    bool waiting_db;                     /* its row waits for the database: step_resume starts it */
    struct cfg_lock_access *lock_access; /* the step's `locks` */
    size_t n_lock_access;
    struct lockreq *locks;
    bool waiting_locks;   /* queued for its locks: they start it */
    long long started_at; /* its row's */
    char *unlogged;       /* a log that found no database (err.text...), for its state_string */
};

struct build {
    struct engine *e;
    struct build *next;
    const struct cfg *cfg; /* the configuration it started under (its Lua state) */
    char *builder;
    char *worker;
    long long id, number, brid, bsid, builderid, workerid;
    json_t *sourcestamps;
    struct props props;
    int n_steps;   /* in the factory */
    int next_step; /* index of the next to consider */
    int steps_run; /* numbers given so far (worker_preparation is 0) */
    struct step *current;
    long long prep_stepid;
    struct buf text; /* Buildbot's build.text, words joined */
    int results;
    bool terminate, stopped, finished;
    bool lost;        /* the worker went: no further step runs, alwaysRun or not */
    bool held;        /* wk_build_start took: wk_build_done when it is over */
    int stop_results; /* build_stop's; RETRY (master shutdown) stays RETRY */
    char *stopped_reason;
    json_t *step_names;               /* for unique step names */
    unsigned long cfg_version;        /* the engine's configuration it started under */
    struct lockreq *locks;            /* the builder's locks, taken as the build starts */
    long long locks_stepid;           /* the locks_acquire step */
    long long locks_started_at;       /* when the build began to wait for them */
    bool waiting_locks;               /* in the locks_acquire phase, waiting */
    struct report_contents *contents; /* while a build's reports are made (report.c) */
};

/* Starts a build of request `brid` on `worker` (already claimed).  0 or -1 with *cause. */
int build_start(struct engine *e, const struct cfg_builder *bc, const char *worker, long long brid,
                long long bsid, long long builderid, char **cause);
/* Stops a running build (Buildbot's stopBuild) with `results` (CANCELLED, RETRY).  The
   build, and others, may finish before this returns; none is freed. */
void build_stop(struct build *b, const char *reason, int results);
/* Frees a build taken out of e->builds (the reaper, engine_free). */
void build_free(struct build *b);

/* step.c: a step of the factory (its table on top of the Lua stack). */
struct step *step_new(struct build *b, int index);
/* Runs step `s`; build_step_done(s) follows, now or later. */
void step_run(struct step *s);
/* A step whose row waited for an unavailable database (waiting_db) tries again. */
void step_resume(struct step *s);
void step_interrupt(struct step *s, const char *reason);
void step_free(struct step *s);
/*
 * Runs worker command `name` with `args` (owned) for the step, its output into
 * the step's stdio log; `then` is called when it completed normally, with the
 * step's rc / captured / files filled in.  An interrupt, a lost connection or
 * a failure finishes the step instead.
 */
void step_remote(struct step *s, const char *name, struct pb_value *args,
                 void (*then)(struct step *s));
/* The step is over with `results`: logs closed, row final, the build goes on. */
void step_finish(struct step *s, int results);
/* The step is over with `results` and `why` in an err.text log. */
void step_fail(struct step *s, int results, const char *why);
/* The running command cannot end well (the worker broke its protocol, the master cannot
   take what it sends): the command is interrupted and the step ends EXCEPTION with the
   reason once it completes.  The first reason is kept. */
void step_abort(struct step *s, const char *fmt, ...) UTIL_PRINTF(2, 3);
/* The step's parameter `key`, rendered (*out NULL when absent); 0 or -1 with *cause. */
int step_render(struct step *s, const char *key, json_t **out, char **cause);
/* The worker's version of command `name` at least major.minor. */
bool step_worker_has(const struct step *s, const char *name, int major, int minor);
/* The `shell` command's args for `command` with the step's parameters (workdir, env,
   timeout...); `sigterm_time` (owned) when the step sets none.  NULL with *cause. */
struct pb_value *step_shell_args(struct step *s, const json_t *command,
                                 struct pb_value *sigterm_time, char **cause);
/* Buildbot's util.command_to_string (malloc'd; NULL for no words). */
char *step_command_string(const json_t *command);

/* transfer.c: transfers, worker directory steps, master_shell_command. */
bool transfer_kind(const char *kind);
int transfer_run(struct step *s, char **cause);
/* Kills a running master_shell_command; false if the step has none. */
bool transfer_interrupt(struct step *s);
void transfer_free(struct step *s);
/* The name a step of `kind` has when the configuration gives none. */
const char *step_default_name(const char *kind);

/* paths.c: master paths (see there).  The path a transfer step may use for `path`
   (malloc'd): for PATH_WRITE its missing directories made, for PATH_READ the file's
   resolved path (its name when it is not there); NULL with *cause, nothing made, for a
   path outside the roots. */
enum path_use { PATH_READ, PATH_WRITE };
char *path_confine(const struct cfg *cfg, const char *path, enum path_use use, char **cause);
/* A name the worker's glob answered for a pattern in directory `dir` (on the worker, with
   Windows separators when `nt`): its part under `dir`, or NULL if it is not a plain path
   under it (absolute elsewhere, a '..' component, a last component "." or none). */
const char *path_globbed(const char *answer, const char *dir, bool nt);

/* unpack.c: a directory upload's archive checked, extracted and moved into `dest` (an
   absolute path whose directory is checked already).  `done` is called once on the loop
   with NULL or why the archive was refused, unless the unpack is abandoned first. */
struct unpack;
typedef void (*unpack_done_cb)(void *arg, const char *error);
struct unpack *unpack_start(uv_loop_t *loop, const char *archive, const char *compress,
                            const char *dest, unpack_done_cb done, void *arg, char **cause);
/* The caller no longer waits (NULL: nothing): tar is killed, `done` never called. */
void unpack_abandon(struct unpack *u);

/* trigger.c: the trigger step. */
void trigger_run(struct step *s);
/* Finishes a waiting trigger step whose requests are all complete. */
void trigger_poll(struct step *s);
bool trigger_waiting(const struct step *s);
/* Cancels what a waiting trigger step triggered and finishes it; false if not waiting. */
bool trigger_interrupt(struct step *s);
void trigger_free(struct step *s);

/* git.c: the git step. */
void git_run(struct step *s);
void git_free(struct step *s);
/* The step kinds git.c runs: bbm.steps.git and bbm.steps.github. */
bool git_kind(const char *kind);

/* Buildbot's getResultSummary (done) or getCurrentSummary for the step (malloc'd). */
char *step_summary(const struct step *s, bool done);
/* Whether a step's result goes into the build's summary (updateBuildSummaryPolicy). */
bool step_in_build_summary(const struct step *s);
/* The render context for the build's current state. */
struct render_ctx build_render_ctx(struct build *b);
/* Writes the build's changed properties to build_properties. */
void build_write_props(struct build *b);
/* Called by step.c when a step has finished (its row is written). */
void build_step_done(struct step *s);

/* ------------------------------------------------------------ requests */

/* A buildset as a scheduler submits it; returns its id and the requests' ids in *brids
   ({"builderid": brid}), or -1 with *cause. */
/* What a buildset may carry beyond its reason and properties (0 / NULL: none). */
struct bs_extra {
    const char *external_idstring;
    long long parent_buildid;
    const char *parent_relationship;
    long long rebuilt_buildid;
    bool waited_for; /* a trigger step waits for its requests */
};
long long requests_add_buildset(struct engine *e, const char *reason, json_t *properties,
                                const json_t *sourcestamps, const json_t *builders,
                                long long priority, const struct bs_extra *extra, json_t **brids,
                                char **cause);
/* engine_add_buildset with `extra` (NULL: none). */
long long buildset_add(struct engine *e, const struct eng_buildset *bs,
                       const struct bs_extra *extra, json_t **brids, char **cause);
/* Claims a request for this master: 1, 0 if another has it, -1 on error. */
int requests_claim(struct engine *e, long long brid, char **cause);
int requests_unclaim(struct engine *e, long long brid, char **cause);
/* Build request `brid`'s row: columns buildsetid, builderid and the builder's name; no row
   when there is no such request.  NULL with *cause. */
struct db_res *requests_row(struct engine *e, long long brid, char **cause);
/* Completes a request and, if it was the last of its buildset, the buildset. */
int requests_complete(struct engine *e, long long brid, long long bsid, int results, char **cause);
/* The source stamps of a buildset as JSON objects. */
json_t *requests_sourcestamps(struct engine *e, long long bsid, char **cause);
/* The buildset's properties, added to `p`. */
int requests_properties(struct engine *e, long long bsid, struct props *p, char **cause);
/*
 * Buildbot's BuildRequestCollapser for the new requests `brids` ({"builderid":
 * brid}): older unclaimed requests of the same builders that the builder's
 * collapseRequests allows (by default: same codebases, repository, branch,
 * project and revision, and the same scheduler-given properties) are claimed
 * and completed SKIPPED.  Returns how many, or -1 with *cause.
 */
int requests_collapse(struct engine *e, const json_t *brids, char **cause);
/* collapse.c: the index of pending requests collapsing reads, from the database. */
int collapse_start(struct engine *e, char **cause);
void collapse_free(struct engine *e);
/* Finishes what a master that stopped without cleaning up left running (Buildbot's
   housekeeping for a deactivated master). */
int requests_housekeeping(struct engine *e, long long masterid, char **cause);
/*
 * Finishes the rows a build of this master left unfinished once it stopped running: its
 * steps and logs (a write the database refused), or the build itself when no build of
 * this engine runs it.  Looks at the builds since the last repair (at first the last
 * thousand).  0 or -1 with *cause.
 */
int requests_repair(struct engine *e, char **cause);

/* ------------------------------------------------------------ engine */

struct eng_worker {
    char *name;
    struct pb_value *info;
    int running;
    bool attached;
    bool paused;
    bool graceful;             /* shut it down once idle; start nothing on it */
    bool quarantined;          /* takes no build until quarantine_end (quarantine.c) */
    uint64_t quarantine_end;   /* in the loop's milliseconds (uv_now) */
    double quarantine_timeout; /* the next quarantine's length, in seconds */
};

/* A replaced configuration kept while builds still use it (builds_using counts them). */
struct eng_cfg {
    struct cfg *cfg;
    struct eng_cfg *next;
};

/* The writes that may wait in memory for an unavailable database (db_behind_enable):
   log chunks to this, the rows that finish steps and builds past it. */
#define ENGINE_BEHIND_MAX (128u << 20)

struct engine {
    uv_loop_t *loop;
    struct db *db;
    long long masterid;
    struct wk_registry *wk;
    const struct cfg *cfg;
    struct eng_cfg *retired; /* replaced configurations still used by builds */
    struct eng_worker *workers;
    size_t n_workers, cap_workers;
    struct build *builds;
    uv_timer_t flush_timer;
    unsigned long ticks;         /* of flush_timer */
    uv_timer_t quarantine_timer; /* the earliest end of a worker's quarantine */
    uv_idle_t kick;
    bool kick_pending;
    uv_idle_t reap;                  /* frees finished builds on the next loop turn */
    struct steplog *dirty;           /* logs with pending chunks */
    struct steplog *unsure;          /* logs with lines in the open transaction */
    struct logpack *pack;            /* logpack.c: where the chunks are compressed */
    struct collapse_index *collapse; /* pending requests by builder and first stamp */
    long long repair_from;           /* requests_repair looks at builds from this id */
    struct ev_bus *bus;              /* where changes are published (engine_set_events), or NULL */
    struct locks *locks;             /* master and worker locks */
    unsigned long cfg_version;       /* counts reconfigs: which maxCount is the newest */
    struct rep *rep;                 /* the reporters' outbox (engine_set_reporters), or NULL */
    uv_timer_t missing_timer;        /* missing.c: the earliest missing-worker alert due */
    json_t *presence;                /* missing.c: worker name -> its presence row */
    long long presence_id;           /* missing.c: their object's id, or -1 */
    double missing_started;          /* missing.c: when this master started (epoch s) */
    struct reportq *rq;              /* reportq.c: the reports waiting to be made */
    struct rep_batch *batch;         /* reportq.c's thread's engine: where its reports go */
    bool stopping;
    void (*stopped)(void *arg);
    void *stopped_arg;
    bool draining;               /* a clean shutdown: only waited-for requests start */
    void (*drained)(void *arg);  /* engine_set_shutdown's, told once nothing runs */
    bool drain_told;             /* drained was called: the master is stopping */
    void (*stop_now)(void *arg); /* engine_set_shutdown's: the master's stop */
    bool stop_asked;             /* engine_stop_soon: stop_now on the next turn */
    void *shutdown_arg;
};

/* report.c: the reporters' statuses of a build that started (complete false) or
   finished, stored in e->rep's outbox. */
void report_build(struct build *b, bool complete, const char *state_string);
/* report.c: the reports of buildset `bsid`, which just completed (BuildSetStatusGenerator);
   report_buildset_wanted: some reporter has such a generator. */
void report_buildset(struct engine *e, long long bsid);
bool report_buildset_wanted(const struct engine *e);
/* reportq.c: the reports of finished builds and completed buildsets wait in a durable queue,
   made on a thread of their own; a build's start and a request's events wait there only
   behind others, so that the reports keep the order of the events.  reportq_started: the
   reporters are there (engine_set_reporters); what earlier masters left is queued and the
   thread starts.  reportq_build, reportq_buildset and reportq_request: 0 when the event is
   queued, -1 when it is to be reported now.  reportq_stop: the thread ends once its event is
   made (that one's notifications are stored; what waits stays for the next start). */
void reportq_init(struct engine *e);
void reportq_started(struct engine *e);
/* A new configuration: the thread loads it again before its next event. */
void reportq_reconfig(struct engine *e);
void reportq_stop(struct engine *e);
int reportq_build(struct engine *e, long long buildid, bool complete);
int reportq_buildset(struct engine *e, long long bsid);
int reportq_request(struct engine *e, long long brid, bool cancelled);
void reportq_free(struct engine *e);
/* reportirc.c: what the IRC bots say of a build that started or finished. */
void report_irc(struct build *b, bool complete, const char *state_string);
/* ircbot.c: the IRC bots' commands that read or change the engine's state (a
   rep_irc_handler; `arg` is the engine). */
struct rep_irc_request;
char *engine_irc_answer(void *arg, const struct rep_irc_request *req);
/* ircbot.c: the bots' notify_events state in object_state (rep_irc_set_state). */
char *engine_irc_state_load(void *arg, const char *nick);
void engine_irc_state_save(void *arg, const char *nick, const char *json);
/* reportctx.c: a MessageFormatter's context for build `b` (Buildbot's
   create_context_for_build; `is_buildset` for BuildSetStatusGenerator's), the previous
   build's results (REP_PREV_* or results; -3 with *cause) and the responsible users. */
struct cfg_generator;
json_t *report_context(struct build *b, const struct cfg_generator *g, int prev, const char *state,
                       bool complete, bool is_buildset, char **cause);
int report_previous_results(struct build *b, char **cause);
json_t *report_blamelist(struct build *b, char **cause);
/* reportctx.c: the context's `build` (properties, and steps and logs as `f` wants them). */
struct cfg_formatter;
json_t *report_build_object(struct build *b, const struct cfg_formatter *f, const char *state,
                            bool complete, char **cause);
/* reportctx.c: Buildbot's should_attach_log (a formatter's want_logs_content, a
   generator's add_logs): every log, or its name or "step.name" listed. */
bool report_log_named(bool all, char *const *names, size_t n_names, const char *step,
                      const char *name);
/* reportctx.c: the last `room` bytes at most of log `logid` (whole lines, stdio lines with
   their stream letter) appended to `out`, and the number of its first line; 0 or -1 with
   *cause. */
int report_log_tail(struct db *db, long long logid, size_t room, struct buf *out,
                    long long *firstline, char **cause);
/* The logs' contents the formatters of one build's reports read (BPO's PR comment, Discord
   message and mail each read its test log): read and decompressed once, and shared by the
   contexts (a reference each) and a mail's attachments.  At most REP_BUILD_CONTENT_MAX
   bytes, what one context may hold; past that a log is read for each context as before. */
struct report_content {
    long long logid, first;
    size_t want; /* the room it was read for */
    json_t *text;
};
struct report_contents {
    struct report_content *items;
    size_t n, cap, bytes;
};
void report_contents_free(struct report_contents *c);
/* Appends the text of the whole log `logid` to `out` when a context of the build read it
   and it fits in `room` bytes; false otherwise. */
bool report_content_whole(const struct build *b, long long logid, size_t room, struct buf *out);
/* reportpush.c: MessageFormatterFunction's body for the build (NULL with *cause NULL when the
   function returned nil), and the messages of HttpStatusPush and GitHubCommentPush. */
struct cfg_reporter;
char *report_function_body(struct build *b, const struct cfg_generator *g, const char *state,
                           bool complete, char **cause);
void report_post(struct build *b, const struct cfg_reporter *rc, const struct cfg_generator *g,
                 const char *what, const char *message, bool complete);
/* reportpush.c: MessageFormatter's build_additional_context (buildAdditionalContext) run on
   the template's context *ctx, replaced by the context as the function left it; 0, or -1
   with *cause (*ctx as it was). */
int report_additional_context(struct build *b, const struct cfg_generator *g, json_t **ctx,
                              char **cause);
/* report.c: the statuses of build request `brid` of `builder`, made or cancelled. */
void report_request(struct engine *e, long long brid, long long bsid, const char *builder,
                    long long builderid, bool cancelled);
/* missing.c: Buildbot's missing-worker alerts, with each worker's presence kept in
   object_state (see the file).  missing_init in engine_new; the others as workers attach
   and detach and as the configuration changes; missing_free in engine_free. */
void missing_init(struct engine *e);
void missing_reconfig(struct engine *e);
void missing_attached(struct engine *e, const char *name);
void missing_detached(struct engine *e, const char *name);
void missing_free(struct engine *e);
/* build.c: the properties a request's build will have before it starts (Buildbot's
   setup_properties_known_before_build_starts and setupBuildProperties without a number),
   for BuildRequestGenerator's partial build `b` (e, cfg, builder, sourcestamps set). */
int build_partial_props(struct build *b, long long bsid, char **cause);

struct eng_worker *engine_worker(struct engine *e, const char *name);
/* Cancels a build request: a running build of it stops, a pending one completes CANCELLED. */
void engine_cancel_request(struct engine *e, long long brid, const char *reason);
/* Runs the botmaster soon (on the next loop turn; several calls run it once). */
void engine_kick(struct engine *e);
/* IRC's `shutdown now`: the master's ordinary stop, on the next turn of the loop. */
void engine_stop_soon(struct engine *e);
/* A build is over (its rows written, `finished` set): frees the worker, runs the
   botmaster, and has the build freed on the next loop turn. */
void engine_build_finished(struct engine *e, struct build *b);
/* botmaster.c: hands pending requests to free workers. */
void botmaster_run(struct engine *e);
/* What master.lua's functions (prioritizeBuilders, collapseRequests...) are given: the
   master as a table (title, buildbotURL) and a builder (name, tags), pushed on the
   configuration's Lua stack. */
void botmaster_lua_master(struct engine *e);
void botmaster_lua_builder(lua_State *L, const struct cfg_builder *bc);
/* quarantine.c: Buildbot's worker quarantine. */
void quarantine_init(struct engine *e);
/* A worker's quarantine state as a new worker's (the first timeout, 10 s). */
void quarantine_worker_init(struct eng_worker *w);
/* True while the worker is in quarantine: it takes no build. */
bool quarantine_holds(const struct eng_worker *w);
/* putInQuarantine: for its quarantine_timeout, which doubles (up to an hour) for the next. */
void quarantine_put(struct engine *e, struct eng_worker *w);
/* resetQuarantine: the next quarantine lasts the first timeout again. */
void quarantine_reset(struct eng_worker *w);
/* Ends the worker's quarantine now (an unpause), and runs the botmaster. */
void quarantine_stop(struct engine *e, struct eng_worker *w);
/* Gives the worker table at the top of L (its `name` set) the metatable with
   putInQuarantine, resetQuarantine and quarantine_timeout. */
void quarantine_set_worker_meta(struct engine *e, lua_State *L);
/* The time Buildbot stores: whole seconds since the epoch. */
long long engine_now(void);

/* Publishes an event of the engine (events.h) on its bus, if it has one. */
static inline void engine_publish(struct engine *e, enum ev_type type, long long id,
                                  enum ev_name name)
{
    ev_publish(e->bus, type, id, name);
}

/* Logs a database error of the engine (they do not stop the engine). */
void engine_db_error(const char *what, char *cause);

#endif
