/*
 * The running master: one libuv loop (the engine thread) that owns the
 * configuration and the worker registry, and the signals that drive it:
 * SIGHUP reloads master.lua (atomically: a bad file changes nothing), SIGTERM
 * and SIGINT stop it, SIGUSR1 starts a clean shutdown (no new build; the
 * master stops once the running builds have finished).  Stopping is bounded:
 * connections are closed, and if the loop has not drained within
 * MASTER_STOP_BOUND seconds an alarm ends the process anyway, so `stop` can
 * never hang the way Buildbot's can.
 */
#include "master.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "cyclefetch.h"
#include "db/db.h"
#include "changes/changes.h"
#include "control/control.h"
#include "engine/engine.h"
#include "events/events.h"
#include "reporters/reporters.h"
#include "schedulers/schedulers.h"
#include "workers/workers.h"
#include "www/www.h"

struct master {
    uv_loop_t loop;
    struct cfg *cfg;
    struct wk_registry *workers;
    struct engine *engine;
    struct sched *sched;
    struct chg *changes;
    struct rep *rep; /* the reporters' outbox */
    struct db *db;
    struct db_checkpointer *checkpointer; /* SQLite's WAL, off the loop */
    long long masterid;
    bool registered;        /* m->cfg is in the database whole (register_config) */
    long long *builder_ids; /* the ids of its builders, in its order */
    json_t *addresses;      /* {worker: address it logged in from}, kept in object_state */
    struct www *www;
    struct cyclefetch *cycle;  /* fetches www.release_cycle when it is a URL */
    char *session_secret;      /* Buildbot's, from object_state (read once) */
    struct ctl_queue *control; /* actions from the web threads */
    struct ev_bus *bus;        /* what the engine writes, for the web and reporters */
    uv_thread_t retiring;      /* stops a web server a reconfig replaced */
    bool retiring_started;
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
    uv_timer_t stop_timer; /* bounds the wait for builds to stop */
    bool stopping;
    size_t worker_fds, web_fds; /* each port's share of file descriptors (fd_budget) */
};

/* On the engine thread: the change hooks, the schedulers or the engine answer each action. */
static void control_ready(void *arg)
{
    struct master *m = arg;
    struct ctl_action *a;
    while ((a = ctl_queue_take(m->control)) != NULL) {
        if (m->stopping || m->engine == NULL)
            ctl_reply(a, NULL, 503, -32603, "the master is shutting down");
        else if (ctl_action_kind(a) == CTL_WEBHOOK)
            changes_hook(m->changes, a);
        else if (!sched_control(m->sched, a))
            engine_control(m->engine, a);
    }
}

/* A sendchange client's change (the workers' port). */
static int change_sent(const struct cfg_change_source *cs, const struct pb_value *change,
                       char **cause, void *arg)
{
    struct master *m = arg;
    if (m->changes == NULL)
        return util_cause(cause, "the master is shutting down");
    return changes_pb(m->changes, cs, change, cause);
}

/* A change source stored a change: the schedulers see it. */
static void change_added(const json_t *change, void *arg)
{
    struct master *m = arg;
    json_t *id = json_object_get(change, "changeid");
    if (json_is_integer(id))
        ev_publish(m->bus, EV_CHANGE, json_integer_value(id), EV_NEW);
    if (m->sched != NULL)
        sched_change(m->sched, change);
}

/* The builders' rows and links, and their information (description, project, tags); `ids`
   gets the builders' ids. */
static int register_builders(struct master *m, long long *ids, char **cause)
{
    const struct cfg *c = m->cfg;
    struct db_builder_link *links = xcalloc(c->n_builders + 1, sizeof *links);
    const char **workers = xcalloc(c->n_workers + 1, sizeof *workers);
    struct db_builder_info *info = xcalloc(c->n_builders + 1, sizeof *info);
    for (size_t i = 0; i < c->n_builders; i++) {
        const struct cfg_builder *b = &c->builders[i];
        links[i] = (struct db_builder_link){b->name, b->workernames, b->n_workernames};
    }
    for (size_t i = 0; i < c->n_workers; i++)
        workers[i] = c->workers[i].name;
    int rc =
        db_master_link(m->db, m->masterid, links, c->n_builders, workers, c->n_workers, ids, cause);
    for (size_t i = 0; rc == 0 && i < c->n_builders; i++) {
        const struct cfg_builder *b = &c->builders[i];
        /* held until the commit (db_on_transaction): Buildbot's updateBuilderInfo events */
        ev_publish(m->bus, EV_BUILDER, ids[i], EV_UPDATE);
        info[i] = (struct db_builder_info){ids[i],     b->description, b->description_format,
                                           b->project, b->tags,        b->n_tags};
    }
    if (rc == 0)
        rc = db_builders_info_set(m->db, info, c->n_builders, cause);
    free(links);
    free(workers);
    free(info);
    return rc;
}

static bool same_strings(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!util_same_text(a[i], b[i]))
            return false;
    return true;
}

/* Whether `b` would write to the database what `a` did: the same builders in the same order
   with the same workers, description, project and tags, the same workers, schedulers and
   change sources. */
static bool same_registration(const struct cfg *a, const struct cfg *b)
{
    if (a->n_builders != b->n_builders || a->n_workers != b->n_workers ||
        a->n_schedulers != b->n_schedulers || a->n_change_sources != b->n_change_sources)
        return false;
    for (size_t i = 0; i < a->n_builders; i++) {
        const struct cfg_builder *x = &a->builders[i], *y = &b->builders[i];
        if (!util_same_text(x->name, y->name) || !util_same_text(x->description, y->description) ||
            !util_same_text(x->description_format, y->description_format) ||
            !util_same_text(x->project, y->project) ||
            !same_strings(x->workernames, x->n_workernames, y->workernames, y->n_workernames) ||
            !same_strings(x->tags, x->n_tags, y->tags, y->n_tags))
            return false;
    }
    for (size_t i = 0; i < a->n_workers; i++)
        if (!util_same_text(a->workers[i].name, b->workers[i].name))
            return false;
    for (size_t i = 0; i < a->n_schedulers; i++)
        if (!util_same_text(a->schedulers[i].name, b->schedulers[i].name))
            return false;
    for (size_t i = 0; i < a->n_change_sources; i++)
        if (!util_same_text(a->change_sources[i].name, b->change_sources[i].name))
            return false;
    return true;
}

/* Records this master, its builders (with their description, project and tags) and their
   workers, and its schedulers in the database, in one transaction.  A reconfig that would
   write what the last one wrote (say, only passwords changed) reads and writes nothing: this
   master is the database's only one (multiMaster is refused).  Either way each builder has
   its update event, as Buildbot's updateBuilderInfo sends at every reconfig. */
static int register_config(struct master *m, const struct cfg *old, char **cause)
{
    const struct cfg *c = m->cfg;
    bool same = old != NULL && m->registered && same_registration(old, c);
    m->registered = false;
    if (same) {
        for (size_t i = 0; i < c->n_builders; i++)
            ev_publish(m->bus, EV_BUILDER, m->builder_ids[i], EV_UPDATE);
        m->registered = true;
        return 0;
    }
    free(m->builder_ids);
    m->builder_ids = xcalloc(c->n_builders + 1, sizeof *m->builder_ids);
    const char **names = xcalloc(c->n_schedulers + c->n_change_sources + 1, sizeof *names);
    for (size_t i = 0; i < c->n_schedulers; i++)
        names[i] = c->schedulers[i].name;
    for (size_t i = 0; i < c->n_change_sources; i++)
        names[c->n_schedulers + i] = c->change_sources[i].name;
    int rc = db_begin(m->db, cause);
    if (rc == 0 &&
        (register_builders(m, m->builder_ids, cause) < 0 ||
         db_master_claim(m->db, m->masterid, DB_SCHEDULERS, names, c->n_schedulers, cause) < 0 ||
         db_master_claim(m->db, m->masterid, DB_CHANGESOURCES, names + c->n_schedulers,
                         c->n_change_sources, cause) < 0)) {
        db_rollback(m->db);
        rc = -1;
    } else if (rc == 0) {
        rc = db_commit(m->db, cause);
    }
    free(names);
    m->registered = rc == 0;
    return rc;
}

/* Workers in the database as Buildbot records them: connected_workers, and workers.info
   with the four keys Buildbot keeps of the worker's info, in its order. */
/* Where workers logged in from is kept across restarts (object_state of the object
   "bbmaster", class "WorkerAddresses"), so that a flood of strangers on the workers' port
   cannot keep them out after a restart (wk_know_addresses). */
#define ADDRESSES_OBJECT "bbmaster", "WorkerAddresses"

static void load_addresses(struct master *m)
{
    char *cause = NULL, *text = NULL;
    long long id = db_object_id(m->db, ADDRESSES_OBJECT, &cause);
    if (id < 0 || db_state_get(m->db, id, "addresses", &text, &cause) < 0) {
        log_error("database: reading the workers' addresses: %s", cause);
        free(cause);
    }
    json_t *known = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    m->addresses = json_is_object(known) ? known : json_object();
    if (known != NULL && !json_is_object(known))
        json_decref(known);
    const char *addrs[256], *name;
    size_t n = 0;
    json_t *v;
    json_object_foreach(m->addresses, name, v)
    {
        if (json_is_string(v) && n < UTIL_NELEM(addrs))
            addrs[n++] = json_string_value(v);
    }
    wk_know_addresses(m->workers, addrs, n);
}

/* Records the address a configured worker attached from, when it is a new one. */
static void remember_address(struct master *m, const char *name)
{
    const char *addr = wk_address(m->workers, name);
    if (addr == NULL || util_streq(json_string_value(json_object_get(m->addresses, name)), addr))
        return;
    json_object_set_new(m->addresses, name, json_string(addr));
    const char *key;
    json_t *v, *tmp;
    json_object_foreach_safe(m->addresses, tmp, key, v)
    {
        if (cfg_find_worker(m->cfg, key) == NULL)
            json_object_del(m->addresses, key);
    }
    char *text = json_dumps(m->addresses, JSON_COMPACT | JSON_SORT_KEYS);
    char *cause = NULL;
    long long id = db_object_id(m->db, ADDRESSES_OBJECT, &cause);
    if (id < 0 || db_state_set(m->db, id, "addresses", text, &cause) < 0) {
        log_error("database: recording the address of worker '%s': %s", UTIL_ESC(name), cause);
        free(cause);
    }
    free(text);
}

/* A worker's event, by the id of its row. */
static void publish_worker(struct master *m, const char *name, enum ev_name what)
{
    char *cause = NULL;
    long long id = db_worker_id(m->db, name, &cause);
    if (id >= 0)
        ev_publish(m->bus, EV_WORKER, id, what);
    free(cause);
}

static void worker_attached(const char *name, const struct pb_value *info, void *arg)
{
    struct master *m = arg;
    static const char *const keys[] = {"admin", "host", "access_uri", "version"};
    json_t *o = json_object();
    for (size_t i = 0; i < UTIL_NELEM(keys); i++) {
        const char *v = pb_str(pb_dict_get(info, keys[i]));
        json_t *j = v != NULL ? json_string(v) : NULL; /* NULL too when not UTF-8 */
        json_object_set_new(o, keys[i], j != NULL ? j : json_null());
    }
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    char *cause = NULL;
    if (db_worker_connected(m->db, m->masterid, name, text, &cause) < 0) {
        log_error("database: worker '%s' connected: %s", name, cause);
        free(cause);
    } else {
        publish_worker(m, name, EV_CONNECTED);
    }
    free(text);
    json_decref(o);
    remember_address(m, name);
    engine_worker_attached(m->engine, name, info);
}

static void worker_detached(const char *name, void *arg)
{
    struct master *m = arg;
    char *cause = NULL;
    if (!m->stopping && db_worker_disconnected(m->db, m->masterid, name, &cause) < 0) {
        log_error("database: worker '%s' disconnected: %s", name, cause);
        free(cause);
    } else if (!m->stopping) {
        publish_worker(m, name, EV_DISCONNECTED);
    }
    engine_worker_detached(m->engine, name);
}

static void worker_builders(const char *name, void *arg)
{
    struct master *m = arg;
    engine_worker_builders(m->engine, name);
}

static void worker_graceful(const char *name, void *arg)
{
    struct master *m = arg;
    engine_worker_graceful(m->engine, name);
}

/* The engine's connection opened or ended a transaction: its events wait for the commit,
   and the log lines written in it are the engine's to settle. */
static void transaction_cb(void *arg, bool open, bool committed)
{
    struct master *m = arg;
    if (open) {
        ev_hold(m->bus);
        return;
    }
    ev_release(m->bus, committed);
    if (m->engine != NULL)
        engine_transaction_ended(m->engine, committed);
}

/* How often SQLite's WAL is checkpointed (db_checkpointer_start). */
#define CHECKPOINT_MS 5000

static int open_db(struct master *m, char **cause)
{
    char cwd[4096], host[256] = "localhost";
    if (getcwd(cwd, sizeof cwd) == NULL)
        return util_cause(cause, "cannot read the current directory");
    gethostname(host, sizeof host - 1);
    m->db = db_open(m->cfg->db_url, cwd, false, cause);
    if (m->db == NULL)
        return -1;
    db_on_transaction(m->db, transaction_cb, m);
    char *why = NULL;
    m->checkpointer = db_checkpointer_start(m->db, m->cfg->db_url, cwd, CHECKPOINT_MS, &why);
    if (why != NULL) /* SQLite checkpoints on the engine's connection then */
        log_warn("database: %s", why);
    free(why);
    char *version = NULL;
    int state = db_schema_check(m->db, &version, cause);
    free(version);
    if (state != DB_SCHEMA_CURRENT) {
        if (state == DB_SCHEMA_EMPTY)
            util_cause(cause,
                       "the database is empty; run `bbmaster upgrade-master %s` to "
                       "create it",
                       cwd);
        return -1;
    }
    char *name = xasprintf("%s:%s", host, cwd);
    m->masterid = db_master_register(m->db, name, (long long)time(NULL), cause);
    free(name);
    if (m->masterid < 0)
        return -1;
    ev_publish(m->bus, EV_MASTER, m->masterid, EV_STARTED);
    if (register_config(m, NULL, cause) < 0)
        return -1;
    log_info("database %s: master id %lld", db_kind(m->db) == DB_PG ? "postgresql" : "sqlite",
             m->masterid);
    return 0;
}

/*
 * GET /config: Buildbot's frontend configuration, in its order and JSON (Python's
 * separators, ASCII): the www settings with their defaults (the webhook dialects left
 * out, as they may hold secrets), the versions, the URLs and titles, the user.
 */
/* www.auth's class name, as Buildbot's AuthBase.getConfigDict gives it. */
static const char *auth_name(const struct cfg *c)
{
    static const struct {
        const char *kind, *name;
    } names[] = {{"www.user_password_auth", "UserPasswordAuth"},
                 {"www.htpasswd_auth", "HTPasswdAuth"},
                 {"www.remote_user_auth", "RemoteUserAuth"},
                 {"www.github_auth", "GitHub"}};
    json_t *conf = c->www_auth != NULL ? json_loads(c->www_auth, 0, NULL) : NULL;
    const char *kind = json_string_value(json_object_get(json_object_get(conf, "auth"), "_kind"));
    const char *name = "NoAuth";
    for (size_t i = 0; kind != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(kind, names[i].kind) == 0)
            name = names[i].name;
    json_decref(conf);
    return name;
}

static char *frontend_config(const struct cfg *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "port", json_integer(c->www_port));
    json_object_set_new(o, "plugins", json_object());
    const char *auth = auth_name(c);
    if (strcmp(auth, "GitHub") == 0) /* OAuth2Auth.getConfigDict */
        json_object_set_new(o, "auth",
                            json_pack("{sssbsssb}", "name", auth, "oauth2", 1, "fa_icon",
                                      "fa-github", "autologin", 0));
    else
        json_object_set_new(o, "auth", json_pack("{ss}", "name", auth));
    json_object_set_new(o, "authz", json_object());
    json_object_set_new(o, "avatar_methods", json_pack("{ss}", "name", "gravatar"));
    json_object_set_new(o, "logfileName", json_string("http.log"));
    json_object_set_new(
        o, "versions",
        json_pack("[[ss][ss]]", "bbmaster", BBM_VERSION, "Buildbot data API", "4.3"));
    json_object_set_new(o, "buildbotURL",
                        json_string(c->buildbot_url ? c->buildbot_url : "http://localhost:8010/"));
    json_object_set_new(o, "title", json_string(c->title ? c->title : "Buildbot"));
    json_object_set_new(o, "titleURL",
                        json_string(c->title_url ? c->title_url : "http://buildbot.net/"));
    json_object_set_new(o, "multiMaster", json_false());
    json_object_set_new(o, "user", json_pack("{sb}", "anonymous", 1));
    char *text = json_dumps(o, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* www.release_cycle for the web: a file as it is; a URL is fetched in the background (again
   when a reconfig changes it) and the web reads the copy it keeps. */
static void follow_release_cycle(struct master *m)
{
    const char *v = m->cfg->release_cycle;
    bool fetch = m->cfg->release_cycle_url && m->www != NULL && !m->stopping;
    if (m->cycle != NULL && (!fetch || strcmp(cyclefetch_url(m->cycle), v) != 0)) {
        cyclefetch_free(m->cycle);
        m->cycle = NULL;
    }
    if (fetch && m->cycle == NULL)
        m->cycle = cyclefetch_new(&m->loop, v);
    www_set_release_cycle(m->www, fetch ? CYCLEFETCH_FILE : v, fetch ? v : NULL);
}

/*
 * Buildbot's session secret: object_state of object ("www",
 * "buildbot.www.service.WWWService"), key session_secret, a JSON string of 32 hex
 * characters, created atomically when missing (WWWService._get_session_secret), so
 * sessions are good on every master of the database and across restarts.
 */
static char *session_secret(struct master *m)
{
    if (m->session_secret != NULL)
        return m->session_secret;
    unsigned char raw[16];
    char hex[2 * sizeof raw + 3] = "\"", *text = NULL, *cause = NULL;
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        log_error("www: no randomness for the session secret: sessions are off");
        return NULL;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 1 + 2 * i, 3, "%02x", raw[i]);
    strcat(hex, "\"");
    long long id = db_object_id(m->db, "www", "buildbot.www.service.WWWService", &cause);
    json_t *v = NULL;
    if (id >= 0 && db_state_create(m->db, id, "session_secret", hex, &text, &cause) == 0)
        v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (json_is_string(v))
        m->session_secret = xstrdup(json_string_value(v));
    else
        log_error("www: the session secret: %s; sessions are off",
                  cause != NULL ? cause : "not a JSON string");
    json_decref(v);
    free(text);
    free(cause);
    return m->session_secret;
}

/* The force schedulers' forms, the webhook dialects and the frontend configuration for the
   web, from the current configuration. */
static void publish_forms(struct master *m)
{
    if (m->www != NULL)
        www_set_auth(m->www, session_secret(m), m->cfg->www_auth);
    const char **from = xcalloc(m->cfg->n_redirects + 1, sizeof *from);
    const char **to = xcalloc(m->cfg->n_redirects + 1, sizeof *to);
    for (size_t i = 0; i < m->cfg->n_redirects; i++) {
        from[i] = m->cfg->redirects[i].from;
        to[i] = m->cfg->redirects[i].to;
    }
    www_set_redirects(m->www, from, to, m->cfg->n_redirects);
    free(from);
    free(to);
    char *frontend = frontend_config(m->cfg);
    www_set_frontend_config(m->www, frontend);
    free(frontend);
    const char *dialects[] = {"github"};
    www_set_hook_dialects(m->www, dialects, m->cfg->github != NULL ? 1 : 0);
    json_t *specs = sched_force_specs(m->cfg);
    char *text = json_dumps(specs, JSON_COMPACT);
    www_set_forceschedulers(m->www, text);
    www_set_release_results(m->www, m->cfg->release_test_results);
    follow_release_cycle(m);
    free(text);
    json_decref(specs);
}

/* A web server for configuration `c` in *out (NULL when c has no www port). */
static int open_www(struct master *m, const struct cfg *c, struct www **out, char **cause)
{
    *out = NULL;
    if (c->www_port <= 0)
        return 0;
    char cwd[4096];
    char *url = c->buildbot_url != NULL ? xstrdup(c->buildbot_url)
                                        : xasprintf("http://localhost:%d/", c->www_port);
    struct www_opts o = {.port = c->www_port,
                         .interface = c->www_interface,
                         .max_connections = (unsigned)m->web_fds,
                         .db_url = c->db_url,
                         .basedir = getcwd(cwd, sizeof cwd),
                         .buildbot_url = url,
                         .control = m->control,
                         .events = m->bus};
    *out = www_start(&o, cause);
    free(url);
    if (*out == NULL)
        return -1;
    log_info("web server listening on %s%s%sport %d", c->www_interface ? "interface " : "",
             c->www_interface ? c->www_interface : "", c->www_interface ? ", " : "", c->www_port);
    return 0;
}

static int start_www(struct master *m, char **cause)
{
    if (open_www(m, m->cfg, &m->www, cause) < 0)
        return -1;
    publish_forms(m);
    return 0;
}

static void stop_www_cb(void *arg)
{
    www_stop(arg);
}

/* Stops a web server that a reconfig replaced, on a thread of its own: the GETs it is still
   answering finish there while the engine goes on.  The previous one is waited for first. */
static void retire_www(struct master *m, struct www *old)
{
    if (old == NULL)
        return;
    if (m->retiring_started)
        uv_thread_join(&m->retiring);
    m->retiring_started = uv_thread_create(&m->retiring, stop_www_cb, old) == 0;
    if (!m->retiring_started)
        www_stop(old);
}

static void notify(int *fd, const char *msg)
{
    if (*fd < 0)
        return;
    ssize_t n = write(*fd, msg, strlen(msg));
    (void)n;
    close(*fd);
    *fd = -1;
}

static void log_config_errors(enum log_level level, const char *errors)
{
    char *copy = xstrdup(errors), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        log_write(level, "%s", line);
    free(copy);
}

/* What a configuration says that loads but is unwise, in the log. */
static void log_config_warnings(const struct cfg *c)
{
    if (c->warnings != NULL)
        log_config_errors(LOG_WARN, c->warnings);
}

/* What master.lua prints goes to the log, at start, at reconfig and from its functions. */
static const struct cfg_load_opts load_opts = {.log_messages = true};

static void reconfig_apply(struct master *m);

/* systemd (Type=notify-reload) hears of a reconfig from start to end, applied or not. */
static void reconfig(struct master *m)
{
    util_sd_notify("RELOADING=1");
    reconfig_apply(m);
    util_sd_notify("READY=1");
}

static void reconfig_apply(struct master *m)
{
    log_info("loading configuration from %s", MASTER_CONFIG);
    struct cfg *next = NULL;
    char *cause = NULL;
    uint64_t t0 = util_mono_ms(), cpu0 = util_thread_cpu_ms();
    if (cfg_load_with(MASTER_CONFIG, &load_opts, &next, &cause) != 0) {
        log_error("error while parsing config file:");
        log_config_errors(LOG_ERROR, cause);
        log_error(MASTER_MSG_RECONFIG_FAILED);
        free(cause);
        return;
    }
    /* Buildbot's rule: the database stays the one the master started with */
    bool www_moves = next->www_port != m->cfg->www_port ||
                     !util_streq(next->www_interface ? next->www_interface : "",
                                 m->cfg->www_interface ? m->cfg->www_interface : "");
    struct www *www = NULL;
    if (!util_streq(next->db_url, m->cfg->db_url))
        cause = xstrdup("Cannot change c['db']['db_url'] after the master has started");
    else if (www_moves && next->www_port == m->cfg->www_port)
        /* the new server listens before the old one closes: one port cannot be both */
        cause = xasprintf("www.port: port %d cannot move to another interface while it "
                          "listens; restart the master to move it",
                          next->www_port);
    else if (www_moves && open_www(m, next, &www, &cause) < 0)
        ;
    else if (wk_listen(m->workers, next, &cause) != 0)
        www_stop(www);
    if (cause != NULL) {
        log_error("%s", cause);
        log_error(MASTER_MSG_RECONFIG_FAILED);
        free(cause);
        cfg_free(next);
        return;
    }
    if (www_moves) {
        retire_www(m, m->www);
        m->www = www;
    }
    log_config_warnings(next);
    wk_reconfig(m->workers, next);
    engine_reconfig(m->engine, next);
    struct cfg *old = m->cfg;
    m->cfg = next;
    if (register_config(m, old, &cause) < 0) {
        log_error("database: %s", cause);
        free(cause);
    }
    sched_reconfig(m->sched, next);
    changes_reconfig(m->changes, next);
    if (m->rep != NULL)
        rep_reconfig(m->rep, next);
    engine_release_config(m->engine, old);
    publish_forms(m);
    log_info(MASTER_MSG_RECONFIG_OK " (%llu ms, master.lua itself %lu ms; CPU %llu ms, "
                                    "master.lua's %lu ms)",
             (unsigned long long)(util_mono_ms() - t0), next->lua_ms,
             (unsigned long long)(util_thread_cpu_ms() - cpu0), next->lua_cpu_ms);
}

/* The builds have stopped (or the wait is over): the connections and the rest go. */
static void finish_stop(struct master *m)
{
    uv_close((uv_handle_t *)&m->stop_timer, NULL);
    /* the builds' last statuses are stored: what is in flight stays for the next start */
    engine_set_reporters(m->engine, NULL);
    rep_free(m->rep);
    m->rep = NULL;
    wk_close_all(m->workers);
    char *cause = NULL;
    if (m->db != NULL && db_master_deactivate(m->db, m->masterid, &cause) < 0) {
        log_error("database: %s", cause);
        free(cause);
    } else if (m->db != NULL) {
        ev_publish(m->bus, EV_MASTER, m->masterid, EV_STOPPED);
    }
    uv_close((uv_handle_t *)&m->sig_term, NULL);
    uv_close((uv_handle_t *)&m->sig_int, NULL);
    uv_close((uv_handle_t *)&m->sig_hup, NULL);
    uv_close((uv_handle_t *)&m->sig_usr1, NULL);
}

static void builds_stopped(void *arg)
{
    struct master *m = arg;
    if (!uv_is_closing((uv_handle_t *)&m->stop_timer))
        finish_stop(m);
}

/* Buildbot's bound: workers that do not stop their builds in time lose their connection. */
static void stop_timeout_cb(uv_timer_t *t)
{
    struct master *m = t->data;
    log_warn("builds did not stop within %d s; dropping the workers' connections",
             MASTER_BUILD_STOP_WAIT);
    wk_close_all(m->workers);
}

static void stop(struct master *m, const char *why)
{
    if (m->stopping)
        return;
    m->stopping = true;
    util_sd_notify("STOPPING=1");
    log_info("%s: shutting down", why);
    alarm(MASTER_STOP_BOUND);
    ctl_queue_close(m->control);
    www_stop(m->www);
    m->www = NULL;
    cyclefetch_free(m->cycle);
    m->cycle = NULL;
    free(m->session_secret);
    m->session_secret = NULL;
    sched_free(m->sched);
    m->sched = NULL;
    changes_free(m->changes);
    m->changes = NULL;
    uv_timer_init(&m->loop, &m->stop_timer);
    m->stop_timer.data = m;
    uv_timer_start(&m->stop_timer, stop_timeout_cb, MASTER_BUILD_STOP_WAIT * 1000, 0);
    engine_stop(m->engine, builds_stopped, m);
}

/* A clean shutdown (engine_shutdown_start) with no build left, or IRC's `shutdown now`. */
static void clean_shutdown_done(void *arg)
{
    stop(arg, "clean shutdown");
}

static void stop_now(void *arg)
{
    stop(arg, "asked to stop now");
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct master *m = h->data;
    if (signum == SIGHUP)
        reconfig(m);
    else if (signum == SIGUSR1 && !m->stopping) /* Buildbot's: `stop --clean` sends it */
        engine_shutdown_start(m->engine);
    else if (signum != SIGUSR1)
        stop(m, signum == SIGTERM ? "received SIGTERM" : "received SIGINT");
}

static void watch_signal(struct master *m, uv_signal_t *h, int signum)
{
    uv_signal_init(&m->loop, h);
    h->data = m;
    uv_signal_start(h, signal_cb, signum);
}

/*
 * File descriptors: the soft limit goes up to the hard one, and is shared so
 * that neither port can starve the other or the master.  A reserve covers
 * what the master opens itself (FD_FIXED: stdio, the log, the loop, the
 * listeners, the web threads' event descriptors; FD_CHILDREN: children's
 * pipes, transfer files, outgoing HTTP) and its database connections (the
 * web pool's 32, the engine's, the WAL checkpointer's and the reports' thread's, each
 * three descriptors on SQLite:
 * the file, -wal and -shm).  The worker port and the web get half of the rest
 * each, up to WK_MAX_CONNECTIONS and FD_WEB_MAX.
 */
enum { FD_FIXED = 64, FD_CHILDREN = 32, FD_DB_CONNECTIONS = 35, FD_WEB_MAX = 1024, FD_MIN = 8 };

static void fd_budget(struct master *m)
{
    unsigned long before, limit = util_raise_fd_limit(&before);
    size_t per_db = db_kind(m->db) == DB_PG ? 1 : 3;
    size_t reserve = FD_FIXED + FD_CHILDREN + FD_DB_CONNECTIONS * per_db;
    size_t rest = limit > reserve ? limit - reserve : 0;
    if (rest < 2 * FD_MIN) {
        log_warn("file descriptors: a limit of %lu leaves too few beside the %zu the master "
                 "reserves for itself; raise `ulimit -n` (the ports get %d each)",
                 limit, reserve, FD_MIN);
        rest = 2 * FD_MIN;
    }
    m->worker_fds = rest / 2 < WK_MAX_CONNECTIONS ? rest / 2 : WK_MAX_CONNECTIONS;
    m->web_fds = rest - rest / 2 < FD_WEB_MAX ? rest - rest / 2 : FD_WEB_MAX;
    log_info("file descriptors: limit %lu (was %lu); %zu reserved, %zu for worker connections, "
             "%zu for web connections",
             limit, before, reserve, m->worker_fds, m->web_fds);
    size_t strangers = m->worker_fds / 2 < WK_MAX_PRELOGIN ? m->worker_fds / 2 : WK_MAX_PRELOGIN;
    if (m->worker_fds - strangers < m->cfg->n_workers)
        log_warn("file descriptors: %zu workers are configured but only %zu can be sure to "
                 "connect at once; raise `ulimit -n`",
                 m->cfg->n_workers, m->worker_fds - strangers);
}

static int start(struct master *m, char **cause)
{
    char *errors = NULL;
    log_info("bbmaster %s starting in %s", BBM_VERSION, getcwd((char[4096]){0}, 4096));
    if (cfg_load_with(MASTER_CONFIG, &load_opts, &m->cfg, &errors) != 0) {
        log_error("error while parsing config file:");
        log_config_errors(LOG_ERROR, errors);
        util_cause(cause, "%s", errors);
        free(errors);
        return -1;
    }
    log_info("configuration loaded: %zu worker(s), %zu builder(s) (master.lua itself ran %lu ms)",
             m->cfg->n_workers, m->cfg->n_builders, m->cfg->lua_ms);
    log_config_warnings(m->cfg);
    m->bus = ev_bus_new();
    if (open_db(m, cause) < 0) {
        log_error("%s", *cause);
        return -1;
    }
    fd_budget(m);
    m->control = ctl_queue_new(&m->loop, control_ready, m);
    if (start_www(m, cause) < 0) {
        log_error("%s", *cause);
        return -1;
    }
    m->workers = wk_registry_new(&m->loop, m->cfg);
    wk_set_budget(m->workers, m->worker_fds);
    load_addresses(m);
    m->engine = engine_new(&m->loop, m->db, m->masterid, m->workers, m->cfg);
    engine_set_events(m->engine, m->bus);
    m->rep = rep_new(&m->loop, m->db, cause);
    if (m->rep == NULL) {
        log_error("reporters: %s", *cause);
        return -1;
    }
    rep_reconfig(m->rep, m->cfg);
    engine_set_reporters(m->engine, m->rep);
    m->sched = sched_new(&m->loop, m->db, m->engine, m->masterid, m->cfg);
    m->changes = changes_new(&m->loop, m->db, m->cfg, change_added, m);
    wk_set_events(m->workers, &(struct wk_events){.attached = worker_attached,
                                                  .detached = worker_detached,
                                                  .shutdown_requested = worker_graceful,
                                                  .builders_confirmed = worker_builders,
                                                  .change = change_sent,
                                                  .arg = m});
    if (m->cfg->pb_port > 0 && wk_listen(m->workers, m->cfg, cause) != 0) {
        log_error("%s", *cause);
        return -1;
    }
    watch_signal(m, &m->sig_term, SIGTERM);
    watch_signal(m, &m->sig_int, SIGINT);
    watch_signal(m, &m->sig_hup, SIGHUP);
    watch_signal(m, &m->sig_usr1, SIGUSR1);
    engine_set_shutdown(m->engine, clean_shutdown_done, stop_now, m);
    return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/*
 * glibc's allocator keeps what threads free: an arena per thread (up to eight per core),
 * and an mmap threshold that grows to 32 MB after the first large block is freed, so
 * large blocks come from the arenas from then on.  A flood of page views left about
 * 10 MB more held that way by the web's threads (bench/abuse).  Two arenas, and blocks
 * of 1 MiB and more always mapped, so given back when freed.  The threshold was 128 KiB:
 * the reports' thread, which copies logs of a few hundred KiB through several buffers,
 * then took every one of them as fresh pages in some runs and not in others, 130,000
 * page faults against 10,000 for the same reports (bench/reporters); the arenas' free
 * pages go back to the system when its queue is empty (reportq.c).  A threshold set
 * fixes the trim threshold too, at 128 KiB: each free that left that much at the top of
 * an arena gave it back, and the next block faulted it in again (a 100 MB raw log took
 * 67,000 page faults and 1.3 s to send instead of 260 and 0.4 s).  It is 2 MiB, twice
 * the mmap threshold, as glibc's own adjustment would make it.
 */
static void bound_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 2 << 20);
#endif
}

int master_run(int ready_fd, char **cause)
{
    bound_malloc();
    struct master m;
    memset(&m, 0, sizeof m);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&m.loop);
    int rc = start(&m, cause);
    if (rc != 0) {
        log_error(MASTER_MSG_START_FAILED);
        notify(&ready_fd, "fail\n");
        if (m.workers != NULL)
            wk_registry_free(m.workers);
    } else {
        log_info(MASTER_MSG_RUNNING);
        notify(&ready_fd, "ok\n");
        util_sd_notify("READY=1");
        uv_run(&m.loop, UV_RUN_DEFAULT);
        wk_registry_free(m.workers);
    }
    if (m.control != NULL)
        ctl_queue_close(m.control); /* refuses what a web thread still posts */
    sched_free(m.sched);            /* their timers close while the loop still runs */
    m.sched = NULL;
    changes_free(m.changes);
    m.changes = NULL;
    if (m.engine != NULL)
        engine_set_reporters(m.engine, NULL);
    rep_free(m.rep);
    m.rep = NULL;
    cyclefetch_free(m.cycle);
    m.cycle = NULL;
    uv_walk(&m.loop, close_walk_cb, NULL);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    uv_loop_close(&m.loop);
    engine_free(m.engine);
    m.engine = NULL;
    www_stop(m.www);
    if (m.retiring_started)
        uv_thread_join(&m.retiring);
    ctl_queue_free(m.control);
    db_checkpointer_stop(m.checkpointer);
    db_close(m.db);
    ev_bus_free(m.bus);
    json_decref(m.addresses);
    free(m.builder_ids);
    cfg_free(m.cfg);
    if (rc == 0)
        log_info("Server Shut Down.");
    return rc;
}
