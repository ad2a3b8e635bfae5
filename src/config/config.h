/*
 * config: master.lua, loaded into C structs.
 *
 * A master's configuration is a Lua 5.4 file that returns a table, the way
 * master.cfg fills BuildmasterConfig.  The `bbm` module (require "bbm") offers
 * constructors with Buildbot's names and parameter names; each records the
 * file and line of its call so validation can point at it.  cfg_load runs the
 * file in a fresh Lua state, validates the whole table and, if it is good,
 * returns a `struct cfg` that owns that Lua state (Lua functions in the config,
 * such as canStartBuild or fileIsImportant, stay callable through it).
 *
 * Errors are reported all at once, one per line, as "FILE:LINE: sentence".
 * A config is immutable once loaded; reconfig loads a new one and swaps.
 */
#ifndef BBM_CONFIG_H
#define BBM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* The field naming what each bbm constructor made ("scheduler.force", "param.string"...). */
#define CFG_KIND "_kind"
/* The logchunks.compressed code of zstd, Buildbot's default logCompressionMethod; the others
   are 0 raw, 1 gz, 2 bz2, 3 lz4, 5 br, as db.h's DB_CHUNK_*. */
#define CFG_LOG_ZSTD 4

/* Bounds of bbm.worker's ping_interval and ping_timeout (seconds), and the timeout's default. */
#define CFG_PING_INTERVAL_MAX 86400
#define CFG_PING_TIMEOUT_MAX 3600
#define CFG_PING_TIMEOUT_DEFAULT 30
/* bbm.worker's missing_timeout (seconds): Buildbot's default, and a bound of a year; and
   the addresses notify_on_missing may give. */
#define CFG_MISSING_TIMEOUT_DEFAULT 3600
#define CFG_MISSING_TIMEOUT_MAX (366 * 86400)
#define CFG_NOTIFY_MAX 64

struct cfg_worker {
    char *name;
    char *password;
    int max_builds;         /* 0 = no limit */
    int keepalive_interval; /* seconds; Buildbot's default 3600 */
    /* bbmaster's own liveness check, off (0) unless ping_interval is given: every
       ping_interval seconds the master calls the worker's print and drops the connection
       if no answer comes within ping_timeout seconds. */
    int ping_interval, ping_timeout;
    /* Buildbot's missing-worker alert: the addresses told when the worker has been away
       missing_timeout seconds (0: never) */
    char **notify_on_missing;
    size_t n_notify_on_missing;
    int missing_timeout;
    int ref;    /* the bbm.worker table, in the config's Lua state */
    char *file; /* where bbm.worker was called */
    int line;
};

/*
 * A lock's use in a `locks` list (Buildbot's LockAccess): the lock as it was defined
 * (bbm.locks.master or bbm.locks.worker) and how the build or step takes it.
 */
struct cfg_lock_count {
    char *worker;
    int count;
};
struct cfg_lock_access {
    char *name;
    bool worker_lock;                  /* a bbm.locks.worker: one copy per worker */
    int max_count;                     /* maxCount */
    struct cfg_lock_count *per_worker; /* maxCountForWorker */
    size_t n_per_worker;
    bool exclusive; /* "exclusive", else "counting" */
    int count;      /* units a counting access takes (1) */
};

struct cfg_builder {
    char *name;
    char **workernames;
    size_t n_workernames;
    char *builddir;       /* default: the name made safe for a path */
    char *workerbuilddir; /* default: builddir; this is what setBuilderList sends */
    char **tags;
    size_t n_tags;
    char *description;
    char *description_format; /* NULL: plain text */
    char *project;
    int factory_ref; /* the bbm.factory table, a reference in the config's Lua state */
    int ref;         /* the bbm.builder table (properties, env, canStartBuild...) */
    size_t n_steps;
    struct cfg_lock_access *locks; /* the builder's `locks`, held for the whole build */
    size_t n_locks;
    char *file;
    int line;
};

struct cfg_scheduler {
    char *name;
    char *kind; /* single_branch, any_branch, force, periodic, nightly, triggerable */
    char **builder_names;
    size_t n_builder_names;
    int ref; /* the scheduler's table in the config's Lua state */
    char *file;
    int line;
};

/* www.change_hook_dialects.github: Buildbot's GitHub webhook options. */
struct cfg_github {
    char *secret;              /* NULL: signatures are not checked */
    bool strict;               /* refuse a request without a good signature */
    char *token;               /* for GitHub's API */
    char *pullrequest_ref;     /* "merge": changes of a pull request are on refs/pull/N/merge */
    char **property_whitelist; /* github_property_whitelist: fnmatch patterns of "github.x.y" */
    size_t n_property_whitelist;
    char **skips; /* regular expressions; a head commit message matching one is not built */
    size_t n_skips;
    char *api_url;  /* github_api_endpoint */
    char *codebase; /* NULL: "" */
    int ref;        /* the options table, in the config's Lua state */
};

struct cfg_change_source {
    char *name; /* name=; default: the repository URL (git_poller), PBChangeSource:[PREFIX:]None
                   (pb) */
    char *kind; /* git_poller, pb */
    char *user, *passwd, *prefix; /* pb: the login sendchange uses; files outside prefix go */
    int ref;                      /* its table in the config's Lua state */
};

/*
 * bbm.configurators.janitor: Buildbot's JanitorConfigurator.  At the times of `when` (a
 * Nightly schedule: hour, by default 0, minute 0, dayOfMonth, month and dayOfWeek) the
 * log chunks of steps started more than log_horizon seconds before are deleted, and, with
 * bbmaster's own build_horizon and change_horizon, the builds completed and the changes
 * made more than so many seconds before, with every row that refers to them.
 */
#define CFG_HORIZON_MAX 3153600000LL /* a hundred years, in seconds */
struct cfg_janitor {
    long long log_horizon;    /* logHorizon, seconds; 0: none given, logs are kept */
    long long build_horizon;  /* buildHorizon, seconds; 0: none, builds are kept */
    long long change_horizon; /* changeHorizon, seconds; 0: none, changes are kept */
    struct util_cron when;
    char *file; /* where bbm.configurators.janitor was called */
    int line;
};

/*
 * services: Buildbot's reporters.  bbm.reporters.github_status_push (GitHubStatusPush),
 * bbm.reporters.http_status_push (HttpStatusPush) and bbm.reporters.github_comment_push
 * (GitHubCommentPush) with their generators, each a bbm.reporters.build_start_end_status_generator
 * (BuildStartEndStatusGenerator) or bbm.reporters.build_request_generator
 * (BuildRequestGenerator): which builds or requests it reports, and the renderables that
 * make the description.
 */
#define CFG_REPORTERS_MAX 64
#define CFG_GITHUB_API "https://api.github.com"
enum cfg_gen_kind {
    CFG_GEN_START_END, /* BuildStartEndStatusGenerator */
    CFG_GEN_REQUEST,   /* BuildRequestGenerator ("Build pending.") */
    CFG_GEN_STATUS,    /* BuildStatusGenerator: finished builds by mode, with a formatter */
    CFG_GEN_BUILDSET,  /* BuildSetStatusGenerator: a completed buildset's builds, as STATUS */
    CFG_GEN_MISSING,   /* WorkerMissingGenerator: a worker away for its missing_timeout */
};
/* A MessageFormatter: its templates compiled (bbmaster's template language). */
struct rep_tmpl;
struct cfg_formatter {
    struct rep_tmpl *body, *subject;
    bool html;            /* template_type "html", else "plain" */
    bool default_body;    /* no template given: Buildbot's, with steps and logs */
    bool want_properties; /* true by default */
    bool want_steps, want_logs;
    /* want_logs_content: true (every log), or the logs named ("name" or "step.name"); either
       makes want_steps and want_logs true, as Buildbot does */
    bool logs_content_all;
    char **logs_content;
    size_t n_logs_content;
    bool function;           /* MessageFormatterFunction: the generator's formatter's `function` */
    bool additional_context; /* MessageFormatter's build_additional_context function
                                (buildAdditionalContext): run on the context before rendering */
    bool json;               /* template_type "json" (a function's value is the body as it is) */
};
struct cfg_generator {
    bool request; /* kind == CFG_GEN_REQUEST */
    enum cfg_gen_kind kind;
    unsigned modes;    /* CFG_GEN_STATUS and CFG_GEN_BUILDSET: REP_MODE_* bits */
    char **mode_names; /* as given, for the context's `mode` */
    size_t n_mode_names;
    bool report_new;  /* CFG_GEN_STATUS: also as the build starts */
    bool add_logs;    /* add_logs given: it, not the formatter's want_logs_content, says
                         which logs' contents are read, as in Buildbot */
    bool logs_all;    /* add_logs = true: every log attached (mail) */
    char **log_names; /* add_logs = {...}: the logs named ("name" or "step.name") */
    size_t n_log_names;
    struct cfg_formatter *fmt; /* CFG_GEN_STATUS with a message_formatter (or the default); NULL
                                  with a message_formatter_renderable */
    char **builders, **tags, **schedulers, **branches; /* NULL: any */
    size_t n_builders, n_tags, n_schedulers, n_branches;
    char **workers; /* CFG_GEN_MISSING: the workers reported; NULL: "all" */
    size_t n_workers;
    int ref; /* its table (formatter, start_formatter, end_formatter) in the config's Lua state;
                LUA_NOREF (-2) for Buildbot's default generators */
};
enum cfg_rep_kind {
    CFG_REP_GITHUB_STATUS,  /* GitHubStatusPush */
    CFG_REP_HTTP,           /* HttpStatusPush: base_url is serverUrl */
    CFG_REP_GITHUB_COMMENT, /* GitHubCommentPush */
    CFG_REP_MAIL,           /* MailNotifier: its parameters in mail */
};
/* MailNotifier's parameters. */
struct cfg_mail {
    char *fromaddr, *relayhost;
    int smtp_port;
    bool use_tls, use_smtps, send_to_interested;
    bool dump;                       /* dumpMailsToLog */
    char *smtp_user, *smtp_password; /* NULL: no AUTH */
    char *lookup;                    /* a domain for names without '@', or NULL */
    char **extra_recipients;
    size_t n_extra_recipients;
    char **header_names; /* extraHeaders' names, sorted; the values stay in the Lua table */
    size_t n_headers;
};
#define CFG_REP_HEADERS_MAX 64
struct cfg_reporter {
    enum cfg_rep_kind kind;
    char *name;     /* "GitHubStatusPush" unless name= says otherwise */
    char *token;    /* GitHub's API token ("" for HttpStatusPush) */
    char *base_url; /* baseURL without a trailing '/' (https://api.github.com), or serverUrl */
    char **headers; /* HttpStatusPush: "Name: value" lines (headers, auth), NULL-terminated */
    struct cfg_mail *mail; /* MailNotifier's, NULL for the other kinds */
    bool verbose;
    struct cfg_generator *generators;
    size_t n_generators;
    int ref; /* the reporter's table (its context), in the config's Lua state */
    char *file;
    int line;
};

/* bbm.reporters.irc: Buildbot's IRC reporter (src/config/irc.c reads it). */
#define CFG_IRC_TARGETS_MAX 64 /* channels and pm_to_nicks of one bot */
/* One entry of the IRC bot's authz (Buildbot's, keys upper-cased as expand_authz does): a
   command's name, or "" (the harmless commands), "!" (the dangerous ones), "*" (every
   command); `all` for true, else the nicks allowed (none: false). */
#define CFG_IRC_AUTHZ_MAX 64
#define CFG_IRC_AUTHZ_NICKS_MAX 1000
struct cfg_irc_acl {
    char *command; /* lower-case */
    bool all;
    char **nicks; /* lower-case */
    size_t n_nicks;
};

struct cfg_irc {
    char *name;                   /* "IRC" unless name= says otherwise */
    char *host, *nick, *password; /* password NULL: none */
    int port;
    char **targets; /* the channels, then pm_to_nicks */
    char **keys;    /* a channel's password, or NULL */
    size_t n_channels, n_targets;
    uint32_t events; /* notify_events (REP_IRC_EV_*) */
    char **tags;     /* NULL: every builder */
    size_t n_tags;
    bool use_colors, notice, use_sasl, use_ssl;
    struct cfg_irc_acl *authz; /* authz (or allowForce) */
    size_t n_authz;
    char *file;
    int line;
};

/* www.redirects: a short path sent on to a page (bbmaster's own key). */
#define CFG_AUTH_USERS_MAX 10000 /* www.auth's user_password_auth users */
#define CFG_REDIRECTS_MAX 256
#define CFG_REDIRECT_MAX 1024 /* bytes of a path or target */
struct cfg_redirect {
    char *from, *to;
};

struct cfg {
    char *path; /* the master.lua that was loaded */
    struct cfg_worker *workers;
    size_t n_workers;
    struct cfg_builder *builders;
    size_t n_builders;
    struct cfg_scheduler *schedulers;
    size_t n_schedulers;
    struct cfg_change_source *change_sources;
    size_t n_change_sources;
    int pb_port;                    /* protocols.pb.port; 0 = no PB listener */
    char *pb_interface;             /* from "tcp:PORT:interface=ADDR"; NULL = all */
    char *pb_tls_key;               /* "ssl:PORT:privateKey=F": TLS for workers; NULL = TCP */
    char *pb_tls_cert;              /* its certKey (default: the privateKey file) */
    char *pb_tls_chain;             /* its extraCertChain, or NULL */
    int www_port;                   /* www.port; 0 = no web server */
    char *www_interface;            /* from "tcp:PORT:interface=ADDR"; NULL = all */
    struct cfg_github *github;      /* NULL: no GitHub webhook */
    struct cfg_janitor *janitor;    /* configurators' janitor; NULL: none */
    struct cfg_reporter *reporters; /* services */
    size_t n_reporters;
    struct cfg_irc *ircs; /* services: bbm.reporters.irc */
    size_t n_ircs;
    char *db_url;
    char *title;
    char *title_url;
    char *buildbot_url;
    int log_compression;            /* logCompressionMethod: Buildbot's logchunks.compressed code */
    char *release_cycle;            /* www.release_cycle: the release-cycle JSON file or URL */
    bool release_cycle_url;         /* it is an http(s) URL, which the master fetches */
    struct cfg_redirect *redirects; /* www.redirects */
    size_t n_redirects;
    char *release_test_results; /* www.release_test_results: builds' JUnit files, or NULL */
    /* JSON text {"auth": ..., "authz": ..., "cookie_expiration_time": N} of www's keys of
       those names, each a constructor's table (with _kind), or NULL when none is set */
    char *www_auth;
    /* uploadRoots: the absolute directories transfer steps may write to and read from
       on the master, besides the master's own directory */
    char **upload_roots;
    size_t n_upload_roots;
    char *warnings;           /* "FILE:LINE: sentence\n" for what loads but is unwise, or NULL */
    unsigned long lua_ms;     /* how long master.lua itself ran (its modules included) */
    unsigned long lua_cpu_ms; /* the CPU it used meanwhile */
    int top_ref;              /* the configuration table itself (prioritizeBuilders...) */
    int properties_ref;       /* the top-level `properties` table (Buildbot's c['properties']), or
                                 LUA_NOREF */
    void *lua;                /* the lua_State the config was run in (owned) */
    void *lua_budget;         /* its allocator's accounting (owned) */
};

/*
 * Loads and validates `path`.  On success returns 0 and a config in *out (free
 * with cfg_free).  On failure returns -1 and every error, one per line, in
 * *cause (malloc'd).
 */
int cfg_load(const char *path, struct cfg **out, char **cause);
void cfg_free(struct cfg *cfg);

struct lua_State;

/* How cfg_load_text runs a configuration; zeros mean cfg_load's defaults. */
struct cfg_load_opts {
    size_t max_memory;    /* bytes the Lua state may hold */
    unsigned load_cpu_ms; /* CPU time (ms) the file's own run may use */
    /* Lua instructions its coroutines may run; when set, the file's own run is held to it
       too, in place of load_cpu_ms (a fuzzer wants a budget that does not vary) */
    size_t max_instructions;
    /* Called on the fresh state before the file runs (a fuzzer takes io and os away). */
    void (*prepare)(struct lua_State *L);
    /* What the configuration prints (print, bbm.log.msg, bbm.log.err), while it loads and
       from its functions later, goes to the log (util's log_write) as "FILE:LINE: text";
       false: to stderr, as the text alone. */
    bool log_messages;
    /* With log_messages: what the file says as it runs is dropped, its functions' messages
       later go to the log (a second load, the reports' own, of the master's configuration). */
    bool quiet_load;
};

/* cfg_load with options (NULL: cfg_load's defaults). */
int cfg_load_with(const char *path, const struct cfg_load_opts *opts, struct cfg **out,
                  char **cause);

/* cfg_load for the text of a file named `path` (the name errors and require use). */
int cfg_load_text(const char *path, const char *text, size_t len, const struct cfg_load_opts *opts,
                  struct cfg **out, char **cause);

/*
 * Calls a Lua function of the configuration at run time: lua_pcall(L, nargs, nresults, 0) on
 * the function below its `nargs` arguments, in the state of a config, within a budget of its
 * own: 10 million Lua instructions, and the state's memory cap (512 MiB).  Every call into
 * the configuration's code goes through here, so that an endless loop or allocation in it is
 * that call's error and never hangs or kills the master.  Returns 0 with the results pushed,
 * or -1 with the function and arguments popped and *cause (malloc'd, replaced) as
 * "FILE:LINE: the function ran past its budget of N instructions (...)", "... went past N
 * MiB ..." or "... failed: ERROR", FILE:LINE where the function is defined.  The state
 * stays usable.
 */
int cfg_lua_call(struct lua_State *L, int nargs, int nresults, char **cause);
/* Marks the metatable at `idx` as bbm's own, one the master made (and hides it from Lua
   code): what a function returns may have no other (plain.c), as it is read from C. */
void cfg_own_metatable(struct lua_State *L, int idx);

/*
 * The `locks` list of the bbm table at `idx` (a builder or a step, checked when the
 * configuration loaded) as accesses in *out (free with cfg_lock_accesses_free); none: NULL
 * and 0.
 */
void cfg_read_locks(struct lua_State *L, int idx, struct cfg_lock_access **out, size_t *n);
void cfg_lock_accesses_free(struct cfg_lock_access *a, size_t n);
/* The lock's maxCount for `worker` (maxCountForWorker, else maxCount). */
int cfg_lock_max(const struct cfg_lock_access *a, const char *worker);

const struct cfg_worker *cfg_find_worker(const struct cfg *cfg, const char *name);
const struct cfg_builder *cfg_find_builder(const struct cfg *cfg, const char *name);

/* JSON values in a Lua state and back (luajson.c); on the thread that owns the state. */
struct json_t;
void cfg_lua_push_json(struct lua_State *L, const struct json_t *v);
/* The value at `idx` as JSON (owned). */
struct json_t *cfg_lua_to_json(struct lua_State *L, int idx);

/* What --dump prints in place of a password or another secret. */
#define CFG_SECRET_MARK "<secret>"

/*
 * The configuration as indented JSON text with sorted keys (dump.c): workers, builders
 * (with their steps) and schedulers in configuration order, every top-level key that is
 * set, secrets replaced by CFG_SECRET_MARK.  Returns the text (malloc'd, ending in a
 * newline), or NULL with *cause ("FILE:LINE: ...") for what cannot be printed: a table
 * that contains itself, one nested too deep, too many values.  Runs no Lua code.
 */
char *cfg_dump(const struct cfg *cfg, char **cause);

/* The sample master.lua that `create-master` writes (runs as is). */
extern const char cfg_sample_master_lua[];

#endif
