/*
 * Missing workers: Buildbot's missing_timeout and WorkerMissingGenerator.  A
 * worker that has been away for its missing_timeout is reported once, as a mail
 * to its notify_on_missing addresses from each mail_notifier with a
 * worker_missing_generator that wants it, and said by the IRC bots whose
 * notify_events have "worker" (which also say when it is back).
 *
 * Buildbot keeps this in memory: every master start arms the timer of every
 * worker again and the mail's "last disconnected" time is made up as now minus
 * the timeout (buildbot#4234), so a worker that stays away is reported after
 * every restart.  bbmaster keeps each worker's presence as object_state rows of
 * its own object (MISSING_OBJECT, which Buildbot ignores), one per configured
 * worker, named by the worker:
 *
 *   {"connected": true, "since": T}                   attached since T
 *   {"last_seen": T, "told": false}                   away since T (its connection went)
 *   {"last_seen": null, "since": T, "told": false}    not seen by this master since T
 *
 * "told" becomes true in the same transaction that stores the mails in the
 * outbox, so one absence gives one mail whatever the restarts; a worker that
 * attaches again starts afresh.  A master that stops closes its workers'
 * connections, which records when they were last seen; one that died leaves
 * "connected" rows, whose workers are then taken as not seen since the start.
 *
 * One timer, for the earliest alert due; the timeouts are the configuration's
 * at the time, so a reconfig that changes one moves the alert.  After a start,
 * a worker away since an earlier run is reported at its last_seen plus
 * missing_timeout, but not before MISSING_GRACE has let it reconnect.
 */
#include "engine/report.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reporters/reporters.h"

#define MISSING_OBJECT "bbmaster", "bbmaster.workers.Presence"
/* Seconds after a start before a worker away since an earlier run is reported: its time to
   reconnect. */
#define MISSING_GRACE 600

/* ------------------------------------------------------------ rows */

/* The worker's row replaced by `row`, within the caller's transaction. */
static int put(struct engine *e, const char *name, const json_t *row, char **cause)
{
    if (e->presence_id < 0)
        return util_cause(cause, "the presence object could not be read");
    char *text = json_dumps(row, JSON_COMPACT | JSON_SORT_KEYS);
    struct db_param p[] = {DB_INT(e->presence_id), DB_TEXT(name)};
    struct db_param q[] = {DB_INT(e->presence_id), DB_TEXT(name), DB_TEXT(text)};
    int rc =
        db_exec(e->db, "DELETE FROM object_state WHERE objectid = ? AND name = ?", p, 2, cause);
    if (rc >= 0)
        rc =
            db_exec(e->db, "INSERT INTO object_state (objectid, name, value_json) VALUES (?, ?, ?)",
                    q, 3, cause);
    free(text);
    return rc < 0 ? -1 : 0;
}

static void store(struct engine *e, const char *name, const json_t *row)
{
    char *cause = NULL;
    if (db_begin(e->db, &cause) < 0 || put(e, name, row, &cause) < 0 ||
        db_commit(e->db, &cause) < 0) {
        db_rollback(e->db);
        log_error("database: recording the presence of worker '%s': %s", UTIL_ESC(name), cause);
        free(cause);
    }
}

static void drop(struct engine *e, const char *name)
{
    char *cause = NULL;
    struct db_param p[] = {DB_INT(e->presence_id), DB_TEXT(name)};
    if (db_exec(e->db, "DELETE FROM object_state WHERE objectid = ? AND name = ?", p, 2, &cause) <
        0) {
        log_error("database: forgetting the presence of worker '%s': %s", UTIL_ESC(name), cause);
        free(cause);
    }
}

/* The row of a worker not seen by this master since `since`. */
static json_t *unseen_row(double since)
{
    return json_pack("{s:n, s:f, s:b}", "last_seen", "since", since, "told", 0);
}

/* Every configured worker has a row (a new one: not seen since now); rows of workers no
   longer configured go. */
static void match_config(struct engine *e)
{
    double now = util_now();
    for (size_t i = 0; i < e->cfg->n_workers; i++) {
        const char *name = e->cfg->workers[i].name;
        if (json_object_get(e->presence, name) != NULL)
            continue;
        json_t *row = unseen_row(now);
        store(e, name, row);
        json_object_set_new(e->presence, name, row);
    }
    const char *name;
    json_t *row, *tmp;
    json_object_foreach_safe(e->presence, tmp, name, row)
    {
        if (cfg_find_worker(e->cfg, name) == NULL) {
            drop(e, name);
            json_object_del(e->presence, name);
        }
    }
}

/* One of the three shapes (see the top of the file). */
static bool row_valid(const json_t *row)
{
    if (!json_is_object(row))
        return false;
    if (json_is_true(json_object_get(row, "connected")))
        return true;
    const json_t *seen = json_object_get(row, "last_seen");
    return json_is_boolean(json_object_get(row, "told")) &&
           (json_is_number(seen) ||
            (json_is_null(seen) && json_is_number(json_object_get(row, "since"))));
}

static void load(struct engine *e)
{
    char *cause = NULL;
    e->presence_id = db_object_id(e->db, MISSING_OBJECT, &cause);
    struct db_param p[] = {DB_INT(e->presence_id)};
    struct db_res *r =
        e->presence_id < 0
            ? NULL
            : db_query(e->db, "SELECT name, value_json FROM object_state WHERE objectid = ?", p, 1,
                       &cause);
    if (r == NULL) {
        log_error("database: reading the workers' presence: %s", cause);
        free(cause);
        return;
    }
    double now = util_now();
    for (size_t i = 0; i < db_res_rows(r); i++) {
        const char *name = db_res_text(r, i, 0);
        json_t *row = json_loads(db_res_text(r, i, 1), 0, NULL);
        if (!row_valid(row)) {
            log_error("workers: presence row '%s' cannot be read; taken as not seen",
                      UTIL_ESC(name));
            json_decref(row);
            row = NULL;
        } else if (json_is_true(json_object_get(row, "connected"))) {
            /* the last master died with the worker attached: when it went is not known */
            json_decref(row);
            row = NULL;
        }
        if (row == NULL) {
            row = unseen_row(now);
            store(e, name, row);
        }
        json_object_set_new(e->presence, name, row);
    }
    db_res_free(r);
}

/* ------------------------------------------------------------ due times */

static void timer_cb(uv_timer_t *t);

/* When the worker's alert is due (epoch seconds): missing_timeout after it went, but not
   before MISSING_GRACE (or the timeout, if shorter) after this master started; or -1: attached,
   told, not configured, or no missing_timeout. */
static double due_at(const struct engine *e, const char *name, const json_t *row)
{
    const struct cfg_worker *wc = cfg_find_worker(e->cfg, name);
    if (wc == NULL || wc->missing_timeout <= 0 || json_is_true(json_object_get(row, "connected")) ||
        json_is_true(json_object_get(row, "told")))
        return -1;
    const json_t *seen = json_object_get(row, "last_seen");
    double from = json_is_number(seen) ? json_number_value(seen)
                                       : json_number_value(json_object_get(row, "since"));
    /* workers reconnect after a start (a buildbot-worker tries again at least once a minute): a
       master that was down for longer than the timeout does not report them all at once */
    double due = from + wc->missing_timeout;
    double grace = e->missing_started +
                   (wc->missing_timeout < MISSING_GRACE ? wc->missing_timeout : MISSING_GRACE);
    return due > grace ? due : grace;
}

static void arm(struct engine *e)
{
    if (e->presence == NULL || e->stopping)
        return;
    double next = -1;
    const char *name;
    json_t *row;
    json_object_foreach(e->presence, name, row)
    {
        double d = due_at(e, name, row);
        if (d >= 0 && (next < 0 || d < next))
            next = d;
    }
    if (next < 0) {
        uv_timer_stop(&e->missing_timer);
        return;
    }
    double wait = next - util_now();
    uint64_t ms = wait <= 0 ? 0 : (uint64_t)(wait * 1000) + 1;
    uv_timer_start(&e->missing_timer, timer_cb, ms, 0);
}

/* ------------------------------------------------------------ the mail */

/* time.ctime's text, in local time: "Wed Aug  5 18:44:43 2026". */
static void ctime_text(double t, char *out, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(out, size, "%a %b %e %H:%M:%S %Y", &tm);
}

/* The worker as Buildbot's data API gives it to the formatter (workers/N with
   last_connection and notify), from its workers row; NULL with *cause. */
static json_t *worker_object(struct engine *e, const struct cfg_worker *wc, const json_t *row,
                             char **cause)
{
    struct db_param p[] = {DB_TEXT(wc->name)};
    struct db_res *r = db_query(
        e->db, "SELECT id, info, paused, pause_reason, graceful FROM workers WHERE name = ?", p, 1,
        cause);
    if (r == NULL)
        return NULL;
    json_t *info = db_res_rows(r) > 0 ? json_loads(db_res_text(r, 0, 1), 0, NULL) : NULL;
    if (!json_is_object(info)) {
        json_decref(info);
        info = json_object();
    }
    char when[64], since[64];
    const json_t *seen = json_object_get(row, "last_seen");
    char *last;
    if (json_is_number(seen)) {
        ctime_text(json_number_value(seen), when, sizeof when);
        last = xstrdup(when);
    } else { /* bbmaster's words where Buildbot would make a time up */
        ctime_text(json_number_value(json_object_get(row, "since")), since, sizeof since);
        last = xasprintf("an unknown time (not connected since the master started on %s)", since);
    }
    json_t *notify = json_array();
    for (size_t i = 0; i < wc->n_notify_on_missing; i++)
        json_array_append_new(notify, json_string(wc->notify_on_missing[i]));
    bool known = db_res_rows(r) > 0;
    const char *reason = known ? db_res_text(r, 0, 3) : NULL;
    json_t *w =
        json_pack("{s:I, s:s, s:o, s:b, s:s?, s:b, s:[], s:[], s:s, s:o}", "workerid",
                  (json_int_t)(known ? db_res_int(r, 0, 0) : 0), "name", wc->name, "workerinfo",
                  info, "paused", known && db_res_int(r, 0, 2) != 0, "pause_reason", reason,
                  "graceful", known && db_res_int(r, 0, 4) != 0, "connected_to", "configured_on",
                  "last_connection", last, "notify", notify);
    free(last);
    db_res_free(r);
    return w;
}

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* The reports of the reporter's generators that want the worker, merged as
   MailNotifier.sendMessage merges them: 1 with the body and the first subject, 0 when none
   wants it, -1 with *cause. */
static int collect(const struct cfg_reporter *rc, const struct cfg_worker *wc, const json_t *ctx,
                   struct buf *body, char **subject, bool *html, char **cause)
{
    bool any = false;
    for (size_t i = 0; i < rc->n_generators; i++) {
        const struct cfg_generator *g = &rc->generators[i];
        /* _is_message_needed: the workers, and someone to tell */
        if (g->kind != CFG_GEN_MISSING || wc->n_notify_on_missing == 0 ||
            (g->workers != NULL && !listed(g->workers, g->n_workers, wc->name)))
            continue;
        char *text = rep_tmpl_render(g->fmt->body, ctx, cause);
        if (text == NULL)
            return -1;
        int rc2 = buf_addstr(body, text);
        free(text);
        if (rc2 < 0)
            return util_cause(cause, "the mail's body is more than %d bytes", REP_TMPL_OUT_MAX);
        if (!any) {
            *subject = rep_tmpl_render(g->fmt->subject, ctx, cause);
            if (*subject == NULL)
                return -1;
            *html = g->fmt->html;
        }
        any = true;
    }
    size_t len = body->len;
    if (any && (len < 2 || strcmp(body->data + len - 2, "\n\n") != 0) &&
        buf_addstr(body, "\n\n") < 0)
        return util_cause(cause, "the mail's body is more than %d bytes", REP_TMPL_OUT_MAX);
    return any ? 1 : 0;
}

/* extraHeaders as "Name: value": the strings (Buildbot renders them only for a mail about
   one build; a renderable is left out, logged). */
static char **plain_headers(const struct engine *e, const struct cfg_reporter *rc)
{
    const struct cfg_mail *mc = rc->mail;
    lua_State *L = e->cfg->lua;
    int top = lua_gettop(L);
    char **v = xcalloc(mc->n_headers + 1, sizeof *v);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rc->ref);
    lua_getfield(L, -1, "extraHeaders");
    size_t n = 0;
    for (size_t i = 0; i < mc->n_headers; i++) {
        if (lua_getfield(L, -1, mc->header_names[i]) == LUA_TSTRING)
            v[n++] = xasprintf("%s: %s", mc->header_names[i], lua_tostring(L, -1));
        else
            log_warn("%s: extraHeaders' %s is a renderable: left out of the missing-worker "
                     "mail, which has no build to render it against",
                     rc->name, mc->header_names[i]);
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return v;
}

/* The addresses to[0..n) sorted, each mailbox once (by its bare address: "A <a@b>" and
   "a@b" are one); rcpts[i] the bare address of to[i] (malloc'd).  The new count. */
static size_t unique_addresses(const char **to, const char **rcpts, size_t n)
{
    n = report_sorted_set(to, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char *b = report_bare(to[i]);
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(rcpts[j], b) == 0;
        if (seen) {
            free(b);
            continue;
        }
        to[k] = to[i];
        rcpts[k++] = b;
    }
    return k;
}

/* One mail of the reporter about the worker into the outbox: To the notify addresses (each
   once, sorted), the envelope the same.  0 (made, or nothing to send), -1 with *cause. */
static int mail_one(struct engine *e, const struct cfg_reporter *rc, const struct cfg_worker *wc,
                    const json_t *ctx, const char *id_part, char **cause)
{
    struct buf body;
    buf_init(&body, REP_TMPL_OUT_MAX);
    char *subject = NULL, *text = NULL, *mid = NULL, *from = NULL;
    bool html = false;
    const char **to = xcalloc(wc->n_notify_on_missing + 1, sizeof *to);
    const char **rcpts = xcalloc(wc->n_notify_on_missing + 1, sizeof *rcpts);
    char **headers = NULL;
    size_t n_to = 0;
    int rc2 = collect(rc, wc, ctx, &body, &subject, &html, cause);
    if (rc2 <= 0)
        goto out;
    for (size_t i = 0; i < wc->n_notify_on_missing; i++)
        to[i] = wc->notify_on_missing[i];
    n_to = unique_addresses(to, rcpts, wc->n_notify_on_missing);
    headers = plain_headers(e, rc);
    size_t n_headers = 0;
    while (headers[n_headers] != NULL)
        n_headers++;
    char date[64];
    report_mail_date(date, sizeof date);
    char *key = xasprintf("missing.%s.%s", wc->name, id_part);
    mid = report_message_id(key, rc->name, rc->mail->fromaddr);
    free(key);
    struct rep_mail_parts parts = {.from = rc->mail->fromaddr,
                                   .subject = subject,
                                   .body = body.data != NULL ? body.data : "",
                                   .html = html,
                                   .date = date,
                                   .message_id = mid,
                                   .to = to,
                                   .n_to = n_to,
                                   .extra = (const char *const *)headers,
                                   .n_extra = n_headers};
    text = rep_mail_compose(&parts, cause);
    rc2 = text != NULL ? 0 : -1;
    if (text == NULL)
        goto out;
    from = report_bare(rc->mail->fromaddr);
    if (rc->mail->dump)
        log_info("worker '%s' missing: %s: mail data:\n%s", wc->name, rc->name, text);
    struct rep_mail m = {.reporter = rc->name,
                         .from = from,
                         .message_id = mid,
                         .subject = subject,
                         .rcpts = rcpts,
                         .n_rcpts = n_to,
                         .message = text};
    rc2 = rep_enqueue_mail(e->rep, &m, cause);
out:
    for (size_t i = 0; i < n_to; i++)
        free((char *)rcpts[i]);
    free(rcpts);
    free(to);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        free(headers[i]);
    free(headers);
    free(from);
    free(mid);
    free(text);
    free(subject);
    buf_free(&body);
    return rc2 < 0 ? -1 : 0;
}

static bool wants_worker(uint32_t events, void *arg)
{
    (void)arg;
    return (events & REP_IRC_EV_WORKER) != 0;
}

/* Buildbot's IRC `worker` event: what the chats that are notified of it hear. */
static void say_irc(struct engine *e, const char *text)
{
    struct rep_irc *ri = e->rep != NULL ? rep_irc_of(e->rep) : NULL;
    for (size_t i = 0; ri != NULL && i < e->cfg->n_ircs; i++)
        rep_irc_notify(ri, e->cfg->ircs[i].name, text, wants_worker, NULL, -1);
}

/* The worker's absence is reported: its mails stored and the row marked told, in one
   transaction, then said on IRC.  Should the transaction fail (logged), this run does not try
   again; the next start, which finds the row not told, does. */
static void alert(struct engine *e, const char *name, json_t *row)
{
    const struct cfg_worker *wc = cfg_find_worker(e->cfg, name);
    char *cause = NULL;
    json_t *w = worker_object(e, wc, row, &cause);
    if (w == NULL) {
        log_error("worker '%s' missing: reading the worker: %s", UTIL_ESC(name), cause);
        free(cause);
        return;
    }
    log_info("worker '%s' missing: away since %s (missing_timeout %d s)", UTIL_ESC(name),
             json_string_value(json_object_get(w, "last_connection")), wc->missing_timeout);
    json_t *ctx = json_pack("{s:s, s:s, s:o}", "buildbot_title",
                            e->cfg->title != NULL ? e->cfg->title : "", "buildbot_url",
                            e->cfg->buildbot_url != NULL ? e->cfg->buildbot_url : "", "worker", w);
    const json_t *seen = json_object_get(row, "last_seen");
    char id_part[32];
    snprintf(
        id_part, sizeof id_part, "%lld",
        (long long)json_number_value(json_is_number(seen) ? seen : json_object_get(row, "since")));
    bool ok = db_begin(e->db, &cause) == 0;
    for (size_t i = 0; ok && i < e->cfg->n_reporters; i++)
        if (e->cfg->reporters[i].kind == CFG_REP_MAIL)
            ok = mail_one(e, &e->cfg->reporters[i], wc, ctx, id_part, &cause) == 0;
    json_t *told = json_deep_copy(row);
    json_object_set_new(told, "told", json_true());
    if (ok)
        ok = put(e, name, told, &cause) == 0 && db_commit(e->db, &cause) == 0;
    if (!ok) {
        /* what went into the outbox's memory may still be sent; the next start, which finds
           the row not told, reports the absence again: at least once */
        db_rollback(e->db);
        log_error("worker '%s' missing: the mail and the mark are not stored: %s", UTIL_ESC(name),
                  cause);
    }
    json_object_set(e->presence, name, told); /* no second alert from this run */
    char *line = xasprintf("Worker `%s` is missing. It was seen last on %s.", name,
                           json_string_value(json_object_get(w, "last_connection")));
    say_irc(e, line);
    free(line);
    free(cause);
    json_decref(told);
    json_decref(ctx);
}

static void timer_cb(uv_timer_t *t)
{
    struct engine *e = t->data;
    if (e->rep == NULL || e->stopping)
        return;
    double now = util_now();
    const char *name;
    json_t *row, *tmp;
    json_object_foreach_safe(e->presence, tmp, name, row)
    {
        double d = due_at(e, name, row);
        if (d >= 0 && d <= now + 0.01)
            alert(e, name, row);
    }
    arm(e);
}

/* ------------------------------------------------------------ the engine's calls */

void missing_init(struct engine *e)
{
    e->presence = json_object();
    e->presence_id = -1;
    e->missing_started = util_now();
    uv_timer_init(e->loop, &e->missing_timer);
    e->missing_timer.data = e;
    uv_unref((uv_handle_t *)&e->missing_timer);
    load(e);
    if (e->presence_id >= 0)
        match_config(e);
    arm(e);
}

void missing_reconfig(struct engine *e)
{
    if (e->presence_id >= 0)
        match_config(e);
    arm(e);
}

void missing_attached(struct engine *e, const char *name)
{
    /* Buildbot's IRC says when a worker it said was missing is back */
    if (json_is_true(json_object_get(json_object_get(e->presence, name), "told"))) {
        char *line = xasprintf("Worker `%s` is back online.", name);
        say_irc(e, line);
        free(line);
    }
    json_t *row = json_pack("{s:b, s:f}", "connected", 1, "since", util_now());
    store(e, name, row);
    json_object_set_new(e->presence, name, row);
    arm(e);
}

void missing_detached(struct engine *e, const char *name)
{
    json_t *row = json_pack("{s:f, s:b}", "last_seen", util_now(), "told", 0);
    store(e, name, row);
    json_object_set_new(e->presence, name, row);
    arm(e);
}

void missing_free(struct engine *e)
{
    json_decref(e->presence);
    e->presence = NULL;
}
