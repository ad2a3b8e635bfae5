/*
 * The IRC bot's commands that read or change the engine's state, as words.py
 * answers them: status, last, list (builders, workers, changes), force build,
 * stop build, watch (the running builds a chat will hear of) and shutdown (a
 * clean shutdown started, checked or cancelled, or a stop); and the bots'
 * notify_events kept in object_state as Buildbot's IrcStatusBot keeps them
 * (engine_irc_state_load, _save).  The bot (src/reporters/irc.c) runs on the engine's loop and
 * calls engine_irc_answer at once when such a command comes; the answer is
 * read from the database and the engine's workers here, small indexed
 * queries, and is queued by the bot, which never waits on the server.  A
 * force adds a buildset as the control actions do (buildset_add), a stop
 * stops the builder's running builds as the web's stop does (build_stop).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/internal.h"
#include "reporters/reporters.h"

static const struct cfg_irc *irc_of(struct engine *e, const char *name)
{
    for (size_t i = 0; i < e->cfg->n_ircs; i++)
        if (strcmp(e->cfg->ircs[i].name, name) == 0)
            return &e->cfg->ircs[i];
    return NULL;
}

/* getBuilder: the builder's id by name (-1: none such, -2: the database failed, logged). */
static long long builder_id(struct engine *e, const char *name)
{
    struct db_param p[] = {DB_TEXT(name)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db, "SELECT id FROM builders WHERE name = ?", p, 1, &cause);
    if (r == NULL) {
        engine_db_error("IRC: finding a builder", cause);
        return -2;
    }
    long long id = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : -1;
    db_res_free(r);
    return id;
}

/* getOnlineBuilders: a worker configured on the builder is connected. */
static bool online(struct engine *e, const char *builder)
{
    const struct cfg_builder *bc = cfg_find_builder(e->cfg, builder);
    for (size_t i = 0; bc != NULL && i < bc->n_workernames; i++) {
        struct eng_worker *w = engine_worker(e, bc->workernames[i]);
        if (w != NULL && w->attached)
            return true;
    }
    return false;
}

/* Every builder (getAllBuilders), in the database's order; NULL when it failed (logged). */
static struct db_res *all_builders(struct engine *e)
{
    char *cause = NULL;
    struct db_res *r =
        db_query(e->db, "SELECT id, name FROM builders ORDER BY id", NULL, 0, &cause);
    if (r == NULL)
        engine_db_error("IRC: listing builders", cause);
    return r;
}

static char *url(struct engine *e, long long builderid, long long number)
{
    return xasprintf("%s#/builders/%lld/builds/%lld", e->cfg->buildbot_url, builderid, number);
}

/* The last completed build's text: `last` (long), or `status`'s "  last build ..." part. */
static int last_build(struct engine *e, long long builderid, bool for_status, bool brief,
                      bool colors, struct buf *out)
{
    struct db_param p[] = {DB_INT(builderid)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db,
                                "SELECT number, results, complete_at, state_string FROM builds "
                                "WHERE builderid = ? AND complete_at IS NOT NULL "
                                "ORDER BY number DESC LIMIT 1",
                                p, 1, &cause);
    if (r == NULL) {
        engine_db_error("IRC: reading the last build", cause);
        return -1;
    }
    if (db_res_rows(r) == 0) {
        if (!for_status)
            buf_addstr(out, "no builds run since last restart");
        db_res_free(r);
        return 0;
    }
    char ago[32], res[64];
    int results = (int)db_res_int(r, 0, 1);
    rep_irc_fuzzy((long long)time(NULL) - db_res_int(r, 0, 2), ago, sizeof ago);
    rep_irc_result_text(results, brief, colors, res, sizeof res);
    if (for_status) /* status_string is not a build's field: Buildbot never adds it */
        buf_printf(out, "  last build %s ago%s%s", ago, brief ? "" : ", ", res);
    else
        buf_printf(out, "last build %s (%s ago)", res, ago);
    if (!for_status && results != REP_RES_SUCCESS)
        buf_printf(out, ": %s", db_res_null(r, 0, 3) ? "None" : db_res_text(r, 0, 3));
    db_res_free(r);
    return 0;
}

/* getBuildStatus: "`B`: running: build [#N](URL) (step), ...", "idle  last build ..." or
   "offline". */
static int build_status(struct engine *e, const char *name, long long id, bool brief, bool colors,
                        struct buf *out)
{
    struct db_param p[] = {DB_INT(id)};
    char *cause = NULL;
    struct db_res *r =
        db_query(e->db,
                 "SELECT b.number, (SELECT s.state_string FROM steps s WHERE s.buildid = b.id "
                 "AND s.complete_at IS NULL ORDER BY s.number LIMIT 1), (SELECT COUNT(*) FROM "
                 "steps s WHERE s.buildid = b.id AND s.complete_at IS NULL) FROM builds b "
                 "WHERE b.builderid = ? AND b.complete_at IS NULL ORDER BY b.id",
                 p, 1, &cause);
    if (r == NULL) {
        engine_db_error("IRC: reading running builds", cause);
        return -1;
    }
    buf_printf(out, "`%s`: ", name);
    int rc = 0;
    if (db_res_rows(r) > 0) {
        buf_addstr(out, "running:");
        for (size_t i = 0; i < db_res_rows(r); i++) {
            char *u = url(e, id, db_res_int(r, i, 0));
            bool step = db_res_int(r, i, 2) > 0;
            buf_printf(out, "%s build [#%lld](%s) (%s)", i > 0 ? "," : "", db_res_int(r, i, 0), u,
                       step ? db_res_text(r, i, 1) : "no current step");
            free(u);
        }
    } else if (online(e, name)) {
        buf_addstr(out, "idle");
        rc = last_build(e, id, true, brief, colors, out);
    } else {
        buf_addstr(out, "offline");
    }
    db_res_free(r);
    return rc;
}

/* The line of `status` (short with `brief`) or `last` for one builder. */
static int one_builder(struct engine *e, const char *name, long long id, bool status, bool brief,
                       bool colors, struct buf *out)
{
    if (status)
        return build_status(e, name, id, brief, colors, out);
    buf_printf(out, "`%s`: ", name);
    return last_build(e, id, false, false, colors, out);
}

/* status and last over the online builders (no argument), every builder ("all") or one.
   Lines past what the bot shows are only names: it counts them, it never shows them. */
static char *each_builder(struct engine *e, const struct rep_irc_request *req, bool colors,
                          bool status)
{
    if (req->argc > 1)
        return xasprintf("Try '%s _builder_'.", status ? "status" : "last");
    struct buf out;
    buf_init(&out, 0);
    int rc = 0;
    if (req->argc == 1 && strcmp(req->argv[0], "all") != 0) {
        long long id = builder_id(e, req->argv[0]);
        if (id == -1) {
            buf_free(&out);
            return xasprintf("no such builder '%s'", req->argv[0]);
        }
        rc = id < 0 ? -1 : one_builder(e, req->argv[0], id, status, false, colors, &out);
    } else {
        struct db_res *r = all_builders(e);
        size_t lines = 0;
        for (size_t i = 0; r != NULL && rc == 0 && i < db_res_rows(r); i++) {
            const char *name = db_res_text(r, i, 1);
            if (req->argc == 0 && !online(e, name))
                continue;
            if (lines > 0)
                buf_addc(&out, '\n');
            if (lines++ >= REP_IRC_REPLY_LINES_MAX)
                buf_addstr(&out, name);
            else
                rc = one_builder(e, name, db_res_int(r, i, 0), status, true, colors, &out);
        }
        rc = r == NULL ? -1 : rc;
        db_res_free(r);
    }
    if (rc != 0) {
        buf_free(&out);
        return xstrdup("Something bad happened (see logs)");
    }
    return out.len > 0 ? buf_take(&out) : (buf_free(&out), NULL);
}

/* ------------------------------------------------------------ list */

static bool worker_in_use(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_builders; i++)
        for (size_t j = 0; j < cfg->builders[i].n_workernames; j++)
            if (strcmp(cfg->builders[i].workernames[j], name) == 0)
                return true;
    return false;
}

static char *list_changes(struct engine *e, long long num, bool all, struct buf *out)
{
    if (all)
        buf_addstr(out, "Do you really want me to list all changes? It can be thousands!\n"
                        "If you want to be flooded, specify the maximum number of changes to "
                        "show.\nRight now, I will show up to 100 recent changes.\n");
    struct db_param p[] = {DB_INT(num)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db,
                                "SELECT comments, author, when_timestamp, repository, branch, "
                                "revision FROM changes ORDER BY changeid DESC LIMIT ?",
                                p, 1, &cause);
    if (r == NULL) {
        engine_db_error("IRC: listing changes", cause);
        buf_free(out);
        return xstrdup("Something bad happened (see logs)");
    }
    buf_addstr(out, "I found the following recent changes:");
    for (size_t i = db_res_rows(r); i-- > 0;) {
        const char *v[6];
        for (size_t c = 0; c < 6; c++)
            v[c] = db_res_null(r, i, c) ? "None" : db_res_text(r, i, c);
        char date[32];
        time_t when = (time_t)db_res_int(r, i, 2);
        struct tm tm;
        gmtime_r(&when, &tm);
        strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
        buf_printf(out,
                   "\n\n%.*s)\nAuthor: %s\nDate: %s\nRepository: %s\nBranch: %s\n"
                   "Revision: %s\n",
                   (int)strcspn(v[0], "\n"), v[0], v[1], date, v[3], v[4], v[5]);
    }
    db_res_free(r);
    return buf_take(out);
}

static char *list(struct engine *e, const struct rep_irc_request *req)
{
    int i = 0;
    bool all = false;
    long long num = 10;
    char *end = NULL;
    if (req->argc > 0) {
        long long n = strtoll(req->argv[0], &end, 10);
        if (end != req->argv[0] && *end == '\0') {
            num = n < 0 ? 0 : n > REP_IRC_CHANGES_MAX ? REP_IRC_CHANGES_MAX : n;
            i++;
        } else if (strcmp(req->argv[0], "all") == 0) {
            all = true;
            i++;
        }
    }
    if (i == req->argc)
        return xstrdup("Try 'list [all|N] builders|workers|changes'.");
    const char *what = req->argv[i];
    struct buf out;
    buf_init(&out, 0);
    char *cause = NULL;
    struct db_res *r = NULL;
    if (strcmp(what, "changes") == 0)
        return list_changes(e, all ? REP_IRC_CHANGES_MAX : num, all, &out);
    bool builders = strcmp(what, "builders") == 0;
    if (!builders && strcmp(what, "workers") != 0) {
        buf_free(&out);
        return NULL; /* words.py says nothing */
    }
    r = builders ? all_builders(e)
                 : db_query(e->db, "SELECT name FROM workers ORDER BY id", NULL, 0, &cause);
    if (r == NULL) {
        if (!builders)
            engine_db_error("IRC: listing workers", cause);
        buf_free(&out);
        return xstrdup("Something bad happened (see logs)");
    }
    buf_printf(&out, "I found the following %s:", what);
    for (size_t k = 0; k < db_res_rows(r); k++) {
        const char *name = db_res_text(r, k, builders ? 1 : 0);
        struct eng_worker *w = builders ? NULL : engine_worker(e, name);
        if (builders && online(e, name))
            buf_printf(&out, " %s", name);
        else if (!builders && cfg_find_worker(e->cfg, name) != NULL && worker_in_use(e->cfg, name))
            buf_printf(&out, " %s%s", name, w != NULL && w->attached ? "" : " [disconnected]");
        else if (all)
            buf_printf(&out, " %s [offline]", name);
    }
    db_res_free(r);
    return buf_take(&out);
}

/* ------------------------------------------------------------ force and stop */

static char *force(struct engine *e, const struct rep_irc_request *req)
{
    if (req->argc == 0 || strcmp(req->argv[0], "build") != 0)
        return xasprintf("Try '%s'", rep_irc_force_usage);
    struct rep_irc_force f;
    char *reply = NULL, *log = NULL;
    json_t *props = NULL;
    if (rep_irc_force_parse(req->argc - 1, req->argv + 1, &f, &reply, &log) != 0)
        goto out;
    if (f.builder == NULL) {
        reply = xstrdup("no builder specified");
        goto out;
    }
    long long id = builder_id(e, f.builder);
    if (id == -1 || (id >= 0 && cfg_find_builder(e->cfg, f.builder) == NULL)) {
        reply = xasprintf("no such builder '%s'", f.builder);
        goto out;
    }
    if (id < 0 || (reply = rep_irc_force_check(&f, &props, &log)) != NULL) {
        reply = reply != NULL ? reply : xstrdup("Something bad happened (see logs)");
        goto out;
    }
    json_array_append_new(props, json_pack("[sos]", "reason",
                                           f.reason != NULL ? json_string(f.reason) : json_null(),
                                           "Force Build Chat"));
    json_array_append_new(props, json_pack("[sss]", "owner", req->user, "Force Build Chat"));
    json_t *stamps =
        json_pack("[{s:s,s:s,s:s,s:s,s:s}]", "codebase", f.codebase, "branch", f.branch, "revision",
                  f.revision, "project", f.project, "repository", "");
    json_t *builders = json_pack("[s]", f.builder);
    char *reason = xasprintf("forced: by %s: %s", req->user, f.reason != NULL ? f.reason : "None");
    char *who = xasprintf("IRC '%s' (%s)", req->bot, req->user);
    struct eng_buildset bs = {who, reason, props, stamps, builders, 0};
    char *cause = NULL;
    if (engine_add_buildset(e, &bs, NULL, &cause) < 0) {
        engine_db_error("IRC: forcing a build", cause);
        reply = xstrdup("Something bad happened (see logs)");
    } else {
        reply = xstrdup("Force build successfully requested.");
    }
    free(who);
    free(reason);
    json_decref(stamps);
    json_decref(builders);
out:
    if (log != NULL)
        log_warn("IRC '%s': force from %s: %s", req->bot, UTIL_ESC(req->user), log);
    free(log);
    json_decref(props);
    rep_irc_force_clear(&f);
    return reply;
}

static int by_number(const void *a, const void *b)
{
    const struct build *x = *(struct build *const *)a, *y = *(struct build *const *)b;
    return x->number < y->number ? -1 : x->number > y->number;
}

/* The builder's running builds, lowest number first (malloc'd; NULL when none). */
static struct build **running_builds(struct engine *e, const char *builder, size_t *n)
{
    size_t cap = 0;
    struct build **running = NULL;
    *n = 0;
    for (struct build *b = e->builds; b != NULL; b = b->next) {
        if (b->finished || strcmp(b->builder, builder) != 0)
            continue;
        if (*n == cap)
            running = xrealloc(running, (cap = cap ? 2 * cap : 8) * sizeof *running);
        running[(*n)++] = b;
    }
    if (*n > 1)
        qsort(running, *n, sizeof *running, by_number);
    return running;
}

static char *stop(struct engine *e, const struct rep_irc_request *req)
{
    if (req->argc < 3 || strcmp(req->argv[0], "build") != 0)
        return xstrdup("Try 'stop build _which_ _reason_'.");
    const char *which = req->argv[1];
    long long id = builder_id(e, which);
    if (id == -1)
        return xasprintf("no such builder '%s'", which);
    if (id < 0)
        return xstrdup("Something bad happened (see logs)");
    size_t n = 0;
    struct build **running = running_builds(e, which, &n);
    if (n == 0)
        return xstrdup("Sorry, no build is currently running.");
    struct buf reason, out;
    buf_init(&reason, 0);
    buf_init(&out, 0);
    buf_printf(&reason, "stopped: by %s:", req->user);
    for (int i = 2; i < req->argc; i++)
        buf_printf(&reason, " %s", req->argv[i]);
    for (size_t i = 0; i < n; i++) {
        long long number = running[i]->number;
        if (!running[i]->finished) /* a stop may finish the others (a trigger's children) */
            build_stop(running[i], reason.data, RES_CANCELLED);
        char *u = url(e, id, number);
        buf_printf(&out, "%sBuild [#%lld](%s) of `%s` interrupted.", i > 0 ? "\n" : "", number, u,
                   which);
        free(u);
    }
    log_info("IRC '%s': %s stopped %zu build(s) of '%s'", req->bot, UTIL_ESC(req->user), n, which);
    free(running);
    buf_free(&reason);
    return buf_take(&out);
}

/* words.py's command_WATCH: the builder's running builds, which the chat will hear of. */
static char *watch(struct engine *e, const struct rep_irc_request *req)
{
    if (req->argc != 1)
        return xstrdup("Try 'watch _builder_'.");
    const char *which = req->argv[0];
    long long id = builder_id(e, which);
    if (id == -1)
        return xasprintf("no such builder '%s'", which);
    if (id < 0)
        return xstrdup("Something bad happened (see logs)");
    size_t n = 0;
    struct build **running = running_builds(e, which, &n);
    if (n == 0)
        return xstrdup("There are no currently running builds.");
    if (n > REP_IRC_WATCH_MAX) /* the oldest */
        n = REP_IRC_WATCH_MAX;
    struct buf out;
    buf_init(&out, 0);
    for (size_t i = 0; i < n; i++) {
        if (req->watched != NULL && *req->n_watched < REP_IRC_WATCH_MAX)
            req->watched[(*req->n_watched)++] = running[i]->id;
        char *u = url(e, id, running[i]->number);
        buf_printf(&out, "%sWatching build [#%lld](%s) of `%s` until it finishes...",
                   i > 0 ? "\n" : "", running[i]->number, u, which);
        free(u);
    }
    free(running);
    return buf_take(&out);
}

/* words.py's command_SHUTDOWN: a clean shutdown started, checked or cancelled, or the
   master's ordinary stop at once. */
static char *shutdown_cmd(struct engine *e, const struct rep_irc_request *req)
{
    const char *what = req->argc == 1 ? req->argv[0] : "";
    if (strcmp(what, "check") == 0)
        return xstrdup(engine_shutting_down(e) ? "Status: buildbot is shutting down."
                                               : "Status: buildbot is running.");
    if (strcmp(what, "start") == 0) {
        if (engine_shutdown_start(e) == 0)
            return xstrdup("Shutdown already started.");
        log_info("IRC '%s': %s started a clean shutdown", req->bot, UTIL_ESC(req->user));
        return xstrdup("Starting clean shutdown.");
    }
    if (strcmp(what, "stop") == 0) {
        if (!e->draining)
            return xstrdup("There is no ongoing shutdown to stop.");
        if (engine_shutdown_cancel(e) == 0)
            return xstrdup("Too late: the master is stopping.");
        log_info("IRC '%s': %s cancelled the clean shutdown", req->bot, UTIL_ESC(req->user));
        return xstrdup("Stopping clean shutdown.");
    }
    if (strcmp(what, "now") == 0) {
        log_info("IRC '%s': %s stops the master now", req->bot, UTIL_ESC(req->user));
        engine_stop_soon(e);
        return xstrdup("Stopping buildbot.");
    }
    return xstrdup("Try 'shutdown check|start|stop|now'.");
}

char *engine_irc_answer(void *arg, const struct rep_irc_request *req)
{
    struct engine *e = arg;
    const struct cfg_irc *irc = irc_of(e, req->bot);
    bool colors = irc == NULL || irc->use_colors;
    if (strcmp(req->command, "status") == 0)
        return each_builder(e, req, colors, true);
    if (strcmp(req->command, "last") == 0)
        return each_builder(e, req, colors, false);
    if (strcmp(req->command, "list") == 0)
        return list(e, req);
    if (strcmp(req->command, "force") == 0)
        return force(e, req);
    if (strcmp(req->command, "stop") == 0)
        return stop(e, req);
    if (strcmp(req->command, "watch") == 0)
        return watch(e, req);
    if (strcmp(req->command, "shutdown") == 0)
        return shutdown_cmd(e, req);
    return NULL;
}

/* The object of a bot's state: Buildbot's getObjectId(nickname, IrcStatusBot's class). */
static long long state_object(struct engine *e, const char *nick)
{
    char *cause = NULL;
    long long id = db_object_id(e->db, nick, REP_IRC_STATE_CLASS, &cause);
    if (id < 0)
        engine_db_error("IRC: the bot's state", cause);
    return id;
}

char *engine_irc_state_load(void *arg, const char *nick)
{
    struct engine *e = arg;
    long long id = state_object(e, nick);
    char *value = NULL, *cause = NULL;
    if (id >= 0 && db_state_get(e->db, id, "notify_events", &value, &cause) < 0)
        engine_db_error("IRC: reading the bot's notify_events", cause);
    return value;
}

void engine_irc_state_save(void *arg, const char *nick, const char *json)
{
    struct engine *e = arg;
    long long id = state_object(e, nick);
    char *cause = NULL;
    if (id >= 0 && db_state_set(e->db, id, "notify_events", json, &cause) < 0)
        engine_db_error("IRC: saving the bot's notify_events", cause);
}
