/*
 * The outbox: notifications stored as object_state rows of one object
 * (REP_OBJECT_NAME / REP_OBJECT_CLASS, which Buildbot ignores; a mail's
 * message in a file of REP_MAIL_DIR that its row names), mirrored in
 * memory in the order they were made, and delivered on the loop through the
 * HTTP client.  A row is removed when the peer took it, when the peer refused
 * it for good (a 4xx other than the rate limits: logged), or when it has been
 * retried for REP_MAX_AGE (a dead letter: logged).  A status waits while an
 * older one of the same commit and context is on its way, so a GitHub context
 * never ends on a stale "pending"; one not on its way is superseded.
 *
 * Messages (HttpStatusPush's bodies, GitHubCommentPush's comments) are never
 * superseded: they go one at a time per reporter, in order; a comment that is
 * retried is first looked for among the comments by its hidden marker.
 *
 * Nothing here waits: the engine's thread stores a row and goes on; answers
 * come back through callbacks; one timer wakes the pump when a retry or the
 * rate limiter is due.  The limiters' windows (REP_LIMITS_OBJECT_CLASS) are
 * written at a stop and, while requests go, at most every LIMITS_SAVE_MS, so that
 * the next start, after a stop or a crash, takes them up.
 */
#include "reporters/reporters.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "db/db.h"
#include "http/http.h"
#include "util/util.h"

/* While requests go, the limiters' windows are written at most this often: a master that
   dies forgets at most this much of them. */
enum { LIMITS_SAVE_MS = 1000 };

struct note {
    struct note *next, **prev;
    char name[24]; /* its object_state row */
    char *reporter;
    char *path;            /* /repos/o/r/statuses/sha */
    char *body;            /* the JSON payload (a mail has its file instead) */
    char *key;             /* reporter, path and context: statuses that replace each other */
    char *state, *context; /* a message: what it reports, and "" */
    int kind;              /* enum rep_kind */
    char *marker;          /* a comment's hidden marker */
    char *check_url;       /* a comment being looked for: the page of comments to read */
    int pages;             /* pages of comments read this attempt */
    bool checked;          /* looked for this attempt: not posted yet */
    bool posted;           /* a comment was sent at least once (stored before it goes) */
    char *from;            /* a mail: the envelope sender (path: its Message-ID, context:
                              the subject) */
    char *rcpts;           /* a mail: the envelope recipients, a JSON list */
    char *file;            /* a mail: its message's file in REP_MAIL_DIR */
    size_t file_bytes;     /* and the file's size */
    double created_at;     /* epoch seconds */
    int attempts;
    uint64_t next_at; /* loop ms */
    bool in_flight;
    struct note *fly_next;   /* in rep's list of notes in flight */
    struct rep *r;           /* while in flight */
    struct rep_limiter *lim; /* while in flight: its token's (kept until rep_free) */
};

struct target {
    char *name, *token, *base_url;
    char **headers; /* HttpStatusPush's, NULL-terminated */
    int kind;       /* enum cfg_rep_kind; a mail reporter's token is its SMTP URL */
    bool starttls;
    char *user, *password; /* SMTP AUTH when user is not NULL */
    bool verbose;
};

struct token_limit {
    struct token_limit *next;
    char *token;
    struct rep_limiter lim;
};

struct rep {
    uv_loop_t *loop;
    struct db *db;
    struct http *http;
    uv_timer_t *timer;
    uv_timer_t *save_timer; /* armed while the limiters changed since they were written */
    long long objectid;
    long long limits_id;  /* REP_LIMITS_OBJECT_NAME's object */
    json_t *saved_limits; /* its rows, {reporter name: windows}, until the first reconfig */
    long long seq;
    struct note *head, **tail;
    size_t n;
    size_t mail_bytes;   /* the mails' files' sizes */
    struct note *flying; /* in flight (at most REP_CONCURRENCY per token) */
    struct target *targets;
    size_t n_targets;
    struct token_limit *limits;
    struct rep_irc *irc; /* the IRC bots (irc.c), on the same loop */
};

static void pump(struct rep *r);

/* ------------------------------------------------------------ storage */

/* `s` as a JSON string (quoted, escaped as jansson escapes) appended to `b`, when it is
   ASCII; false at the first byte past ASCII, for jansson to check and escape.  A comment is
   up to 64 KiB, which jansson would check and escape a character at a time. */
static bool ascii_json(struct buf *b, const char *s)
{
    buf_addc(b, '"');
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
            continue;
        buf_add(b, run, (size_t)(s - run));
        run = s + 1;
        if (c == '\0')
            break;
        if (c >= 0x80)
            return false;
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;
        if (esc != NULL)
            buf_addstr(b, esc);
        else
            buf_printf(b, "\\u%04x", c);
    }
    buf_addc(b, '"');
    return true;
}

/* `s` as JSON text, a quoted string (malloc'd), or NULL when it is not UTF-8. */
static char *json_text(const char *s)
{
    struct buf b;
    buf_init(&b, 0);
    if (ascii_json(&b, s))
        return buf_take(&b);
    buf_free(&b);
    json_t *v = json_string(s);
    char *text = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(v);
    return text;
}

static char *note_json(const struct note *n)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:i}", "reporter", n->reporter, "path",
                          n->path, "state", n->state, "context", n->context, "created_at",
                          n->created_at, "attempts", n->attempts);
    if (n->kind != REP_KIND_STATUS)
        json_object_set_new(o, "kind", json_integer(n->kind));
    if (n->posted)
        json_object_set_new(o, "posted", json_true());
    if (n->kind == REP_KIND_MAIL) {
        json_object_set_new(o, "from", json_string(n->from));
        json_object_set_new(o, "to", json_string(n->rcpts));
    }
    if (n->kind == REP_KIND_MAIL)
        json_object_set_new(o, "file", json_string(n->file));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char *payload = n->kind == REP_KIND_MAIL ? NULL : json_text(n->body);
    if (text != NULL && payload != NULL) { /* {...} becomes {...,"payload":"..."} */
        struct buf all;
        buf_init(&all, 0);
        buf_add(&all, text, strlen(text) - 1);
        buf_addstr(&all, ",\"payload\":");
        buf_addstr(&all, payload);
        buf_addc(&all, '}');
        free(text);
        text = buf_take(&all);
    }
    free(payload);
    return text;
}

static int store(struct rep *r, const struct note *n, bool update, char **cause)
{
    char *text = note_json(n);
    struct db_param p[] = {DB_TEXT(text), DB_INT(r->objectid), DB_TEXT(n->name)};
    int rc = update ? db_exec(r->db,
                              "UPDATE object_state SET value_json = ? WHERE objectid = ? AND "
                              "name = ?",
                              p, 3, cause)
                    : db_exec(r->db,
                              "INSERT INTO object_state (value_json, objectid, name) VALUES "
                              "(?, ?, ?)",
                              p, 3, cause);
    free(text);
    return rc;
}

static void note_free(struct note *n)
{
    free(n->reporter);
    free(n->path);
    free(n->body);
    free(n->key);
    free(n->state);
    free(n->context);
    free(n->marker);
    free(n->check_url);
    free(n->from);
    free(n->rcpts);
    free(n->file);
    free(n);
}

static void link_note(struct rep *r, struct note *n)
{
    n->next = NULL;
    n->prev = r->tail;
    *r->tail = n;
    r->tail = &n->next;
    r->n++;
    r->mail_bytes += n->file_bytes;
}

static void unlink_note(struct rep *r, struct note *n)
{
    *n->prev = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        r->tail = n->prev;
    r->n--;
    r->mail_bytes -= n->file_bytes;
}

/* The path of `file`, an entry of REP_MAIL_DIR, written into `out`. */
enum { MAIL_PATH_MAX = sizeof REP_MAIL_DIR + NAME_MAX + 1 };
static const char *mail_path(char out[MAIL_PATH_MAX], const char *file)
{
    snprintf(out, MAIL_PATH_MAX, REP_MAIL_DIR "/%s", file);
    return out;
}

/* A file of REP_MAIL_DIR removed. */
static void remove_file(const char *file)
{
    char path[MAIL_PATH_MAX];
    if (unlink(mail_path(path, file)) != 0 && errno != ENOENT)
        log_error("reporters: removing %s: %s", path, strerror(errno));
}

/* The row goes and the note with it (and a mail's file, once its row is gone). */
static void forget(struct rep *r, struct note *n)
{
    struct db_param p[] = {DB_INT(r->objectid), DB_TEXT(n->name)};
    char *cause = NULL;
    if (db_exec(r->db, "DELETE FROM object_state WHERE objectid = ? AND name = ?", p, 2, &cause) <
        0) {
        log_error("reporters: removing notification %s from the outbox: %s", n->name, cause);
        free(cause);
    } else if (n->file != NULL) {
        remove_file(n->file);
    }
    unlink_note(r, n);
    note_free(n);
}

/* The size of the file a mail's row names, or -1 when it names none or the file is not
   there. */
static long long mail_file_bytes(const char *file)
{
    char path[MAIL_PATH_MAX];
    struct stat st;
    if (!rep_mail_name_ok(file))
        return -1;
    return stat(mail_path(path, file), &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size
                                                                        : -1;
}

/* A mail's envelope and file from its row.  A row of an earlier bbmaster holds the
   message whole: it is written to a file now, and *rewrite says the row is to be stored
   again. */
static bool mail_from_json(struct note *n, json_t *o, const char *file, const char *body,
                           bool *rewrite)
{
    const char *from = NULL, *to = NULL;
    if (json_unpack(o, "{s:s, s:s}", "from", &from, "to", &to) != 0)
        return false; /* a mail without its envelope cannot be sent */
    n->from = xstrdup(from);
    n->rcpts = xstrdup(to);
    if (file != NULL) {
        long long bytes = mail_file_bytes(file);
        n->file = bytes >= 0 ? xstrdup(file) : NULL;
        n->file_bytes = bytes >= 0 ? (size_t)bytes : 0;
        return bytes >= 0;
    }
    char name[REP_MAIL_NAME_MAX], *cause = NULL;
    if (body == NULL || strlen(body) > REP_MAIL_MAX ||
        rep_mail_save(body, name, &n->file_bytes, &cause) != 0) {
        if (cause != NULL)
            log_error("reporters: outbox row '%s': %s", n->name, cause);
        free(cause);
        return false;
    }
    n->file = xstrdup(name);
    *rewrite = true;
    return true;
}

static struct note *note_from_json(const char *name, const char *text, bool *rewrite)
{
    json_t *o = json_loads(text, 0, NULL);
    const char *rep = NULL, *path = NULL, *body = NULL, *file = NULL, *state = NULL,
               *context = NULL;
    double at = 0;
    int attempts = 0, kind = REP_KIND_STATUS, posted = 0;
    struct note *n = NULL;
    if (o != NULL &&
        json_unpack(o, "{s:s, s:s, s?s, s?s, s:s, s:s, s:F, s:i, s?i, s?b}", "reporter", &rep,
                    "path", &path, "payload", &body, "file", &file, "state", &state, "context",
                    &context, "created_at", &at, "attempts", &attempts, "kind", &kind, "posted",
                    &posted) == 0 &&
        kind >= REP_KIND_STATUS && kind <= REP_KIND_MAIL &&
        (kind == REP_KIND_MAIL || body != NULL)) {
        n = xcalloc(1, sizeof *n);
        snprintf(n->name, sizeof n->name, "%s", name);
        n->reporter = xstrdup(rep);
        n->path = xstrdup(path);
        if (kind != REP_KIND_MAIL)
            n->body = xstrdup(body);
        n->state = xstrdup(state);
        n->context = xstrdup(context);
        n->created_at = at;
        n->attempts = attempts;
        n->kind = kind;
        n->posted = posted;
        /* a message's key is its own: never superseded */
        n->key = kind == REP_KIND_STATUS ? xasprintf("%s\n%s\n%s", rep, path, context)
                                         : xasprintf("\n%s", name);
        if (kind == REP_KIND_COMMENT)
            n->marker = rep_comment_marker(name, at);
        if (kind == REP_KIND_MAIL && !mail_from_json(n, o, file, body, rewrite)) {
            note_free(n);
            n = NULL;
        }
    }
    json_decref(o);
    return n;
}

/* Of the notes loaded, only the newest of each commit and context is sent: the older ones
   (a "pending" the outage kept) are deleted.  Linear: a hash of each key's last position. */
static void drop_superseded(struct rep *r)
{
    json_t *last = json_object();
    json_int_t i = 0;
    for (struct note *n = r->head; n != NULL; n = n->next)
        json_object_set_new(last, n->key, json_integer(i++));
    i = 0;
    struct note *next;
    for (struct note *n = r->head; n != NULL; n = next, i++) {
        next = n->next;
        if (json_integer_value(json_object_get(last, n->key)) != i)
            forget(r, n);
    }
    json_decref(last);
}

/* Whether `entry` of REP_MAIL_DIR is a mail's file, or one half written (util_write_file's
   NAME.tmp.PID). */
static bool mail_entry(const char *entry)
{
    const char *tmp = strstr(entry, ".tmp.");
    size_t len = tmp != NULL ? (size_t)(tmp - entry) : strlen(entry);
    char name[REP_MAIL_NAME_MAX];
    if (len >= sizeof name)
        return false;
    memcpy(name, entry, len);
    name[len] = '\0';
    return rep_mail_name_ok(name);
}

/* The mails' files that no row names: those of mails made and not stored before a stop or
   a crash, or half written. */
static void sweep_files(struct rep *r)
{
    DIR *d = opendir(REP_MAIL_DIR);
    if (d == NULL)
        return;
    json_t *named = json_object();
    for (struct note *n = r->head; n != NULL; n = n->next)
        if (n->file != NULL)
            json_object_set_new(named, n->file, json_true());
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (mail_entry(de->d_name) && json_object_get(named, de->d_name) == NULL)
            remove_file(de->d_name);
    closedir(d);
    json_decref(named);
}

/* What earlier masters left: sent at once (a restart is a reason to try again). */
static int load(struct rep *r, char **cause)
{
    struct db_param p[] = {DB_INT(r->objectid)};
    struct db_res *res = db_query(r->db,
                                  "SELECT name, value_json FROM object_state WHERE objectid = ? "
                                  "ORDER BY name",
                                  p, 1, cause);
    if (res == NULL)
        return -1;
    for (size_t i = 0; i < db_res_rows(res); i++) {
        const char *name = db_res_text(res, i, 0);
        long long seq = strtoll(name, NULL, 10);
        if (seq >= r->seq)
            r->seq = seq + 1;
        bool rewrite = false;
        struct note *n = strlen(name) < sizeof n->name
                             ? note_from_json(name, db_res_text(res, i, 1), &rewrite)
                             : NULL;
        if (n == NULL) {
            log_error("reporters: outbox row '%s' cannot be read; it stays in the database", name);
            continue;
        }
        char *why = NULL;
        if (rewrite && store(r, n, true, &why) != 0) { /* its new file goes at the next start */
            log_error("reporters: outbox row '%s' stays as an earlier bbmaster wrote it: %s", name,
                      why);
            free(why);
        }
        link_note(r, n);
    }
    db_res_free(res);
    drop_superseded(r);
    sweep_files(r);
    if (r->n > 0)
        log_info("reporters: %zu notification(s) left undelivered by the last run, sending", r->n);
    return 0;
}

/* ------------------------------------------------------------ targets and limits */

static const struct target *find_target(const struct rep *r, const char *name)
{
    for (size_t i = 0; i < r->n_targets; i++)
        if (strcmp(r->targets[i].name, name) == 0)
            return &r->targets[i];
    return NULL;
}

static struct rep_limiter *limiter(struct rep *r, const char *token, bool hourly)
{
    for (struct token_limit *t = r->limits; t != NULL; t = t->next)
        if (strcmp(t->token, token) == 0)
            return &t->lim;
    struct token_limit *t = xcalloc(1, sizeof *t);
    t->token = xstrdup(token);
    t->lim.hourly = hourly;
    t->next = r->limits;
    r->limits = t;
    return &t->lim;
}

static void free_targets(struct rep *r)
{
    for (size_t i = 0; i < r->n_targets; i++) {
        free(r->targets[i].name);
        free(r->targets[i].token);
        free(r->targets[i].base_url);
        for (size_t j = 0; r->targets[i].headers != NULL && r->targets[i].headers[j] != NULL; j++)
            free(r->targets[i].headers[j]);
        free(r->targets[i].headers);
        free(r->targets[i].user);
        free(r->targets[i].password);
    }
    free(r->targets);
    r->targets = NULL;
    r->n_targets = 0;
}

/* ------------------------------------------------------------ limiters across restarts */

/* The limiter's key: its GitHub or mail token, or "\n" and the URL of an HttpStatusPush. */
static char *limit_key(const struct target *t)
{
    return t->kind == CFG_REP_HTTP ? xasprintf("\n%s", t->base_url) : xstrdup(t->token);
}

static struct rep_limiter *limiter_of(struct rep *r, const struct target *t);
static void save_timer_cb(uv_timer_t *t);

/* Epoch ms of loop time `at`. */
static double wall_of(const struct rep *r, uint64_t at)
{
    return util_now() * 1000 - (double)(uv_now(r->loop) - at);
}

static json_t *window_json(const struct rep *r, const struct rep_limiter *l, bool hour)
{
    const uint64_t *ring;
    size_t head, cap = hour ? REP_RATE_PER_HOUR : REP_RATE_PER_MINUTE;
    size_t n = rep_limiter_times(l, hour, &ring, &head);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((json_int_t)wall_of(r, ring[(head + i) % cap])));
    return a;
}

/* Each limiter's windows and pause, as epoch ms, under the name of the first reporter that
   uses it (a token is not written), in one transaction. */
static void save_limits(struct rep *r)
{
    char *cause = NULL;
    if (db_in_transaction(r->db)) { /* not ours to commit: the timer tries again */
        uv_timer_start(r->save_timer, save_timer_cb, LIMITS_SAVE_MS, 0);
        return;
    }
    if (db_begin(r->db, &cause) < 0)
        goto failed;
    struct db_param del[] = {DB_INT(r->limits_id)};
    if (db_exec(r->db, "DELETE FROM object_state WHERE objectid = ?", del, 1, &cause) < 0)
        goto rollback;
    for (size_t i = 0; i < r->n_targets; i++) {
        char *key = limit_key(&r->targets[i]);
        bool first = true;
        for (size_t j = 0; j < i && first; j++) {
            char *other = limit_key(&r->targets[j]);
            first = strcmp(key, other) != 0;
            free(other);
        }
        const struct token_limit *t = r->limits;
        while (t != NULL && strcmp(t->token, key) != 0)
            t = t->next;
        free(key);
        if (!first || t == NULL)
            continue;
        const struct rep_limiter *l = &t->lim;
        json_t *v = json_pack(
            "{s:o, s:o, s:I}", "minute", window_json(r, l, false), "hour", window_json(r, l, true),
            "paused_until",
            (json_int_t)(l->paused_until > uv_now(r->loop) ? wall_of(r, l->paused_until) : 0));
        char *text = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        struct db_param p[] = {DB_INT(r->limits_id), DB_TEXT(r->targets[i].name), DB_TEXT(text)};
        int rc =
            db_exec(r->db, "INSERT INTO object_state (objectid, name, value_json) VALUES (?, ?, ?)",
                    p, 3, &cause);
        free(text);
        if (rc < 0)
            goto rollback;
    }
    if (db_commit(r->db, &cause) == 0)
        return;
    goto failed;
rollback:
    db_rollback(r->db);
failed:
    log_warn("reporters: the rate limiters' windows could not be kept for the next start: %s",
             cause);
    free(cause);
}

static void save_timer_cb(uv_timer_t *t)
{
    save_limits(t->data);
}

/* A limiter changed: its windows are written within LIMITS_SAVE_MS. */
static void limits_changed(struct rep *r)
{
    if (!uv_is_active((uv_handle_t *)r->save_timer))
        uv_timer_start(r->save_timer, save_timer_cb, LIMITS_SAVE_MS, 0);
}

/* At a start: what an earlier master saved (at most one row per reporter it had). */
static void load_limits(struct rep *r)
{
    char *cause = NULL;
    struct db_param p[] = {DB_INT(r->limits_id), DB_INT(CFG_REPORTERS_MAX)};
    struct db_res *res =
        db_query(r->db, "SELECT name, value_json FROM object_state WHERE objectid = ? LIMIT ?", p,
                 2, &cause);
    if (res == NULL) {
        log_warn("reporters: the rate limiters' windows of the last run cannot be read: %s", cause);
        free(cause);
        return;
    }
    r->saved_limits = json_object();
    for (size_t i = 0; i < db_res_rows(res); i++) {
        json_t *v = json_loads(db_res_text(res, i, 1), 0, NULL);
        if (json_is_object(v))
            json_object_set(r->saved_limits, db_res_text(res, i, 0), v);
        json_decref(v);
    }
    db_res_free(res);
}

/* The times of a saved window, oldest first, that are still within `span` ms. */
static void restore_window(struct rep *r, struct rep_limiter *l, const json_t *times)
{
    uint64_t now = uv_now(r->loop);
    double wall = util_now() * 1000;
    size_t i;
    const json_t *t;
    json_array_foreach(times, i, t)
    {
        double age = wall - (double)json_integer_value(t);
        if (i >= REP_RATE_PER_HOUR || !json_is_integer(t))
            break;
        if (age >= 0 && age < 3600000 && age < (double)now)
            rep_limiter_sent(l, now - (uint64_t)age, now);
    }
}

/* At the first reconfig after a start: each reporter's limiter takes up its saved windows. */
static void restore_limits(struct rep *r)
{
    if (r->saved_limits == NULL)
        return;
    for (size_t i = 0; i < r->n_targets; i++) {
        const json_t *v = json_object_get(r->saved_limits, r->targets[i].name);
        if (v == NULL)
            continue;
        struct rep_limiter *l = limiter_of(r, &r->targets[i]);
        restore_window(r, l, json_object_get(v, l->hourly ? "hour" : "minute"));
        double until = (double)json_integer_value(json_object_get(v, "paused_until"));
        double left = until - util_now() * 1000;
        if (left > 0)
            rep_limiter_pause(l, uv_now(r->loop), (uint64_t)(left < 3600000 ? left : 3600000));
    }
    json_decref(r->saved_limits);
    r->saved_limits = NULL;
}

void rep_reconfig(struct rep *r, const struct cfg *cfg)
{
    free_targets(r);
    r->targets = xcalloc(cfg->n_reporters + 1, sizeof *r->targets);
    for (size_t i = 0; i < cfg->n_reporters; i++) {
        const struct cfg_reporter *c = &cfg->reporters[i];
        r->targets[i] = (struct target){.name = xstrdup(c->name),
                                        .token = xstrdup(c->token),
                                        .base_url = xstrdup(c->base_url),
                                        .kind = c->kind,
                                        .verbose = c->verbose};
        size_t nh = 0;
        while (c->headers != NULL && c->headers[nh] != NULL)
            nh++;
        r->targets[i].headers = xcalloc(nh + 1, sizeof *r->targets[i].headers);
        for (size_t j = 0; j < nh; j++)
            r->targets[i].headers[j] = xstrdup(c->headers[j]);
        if (c->kind == CFG_REP_MAIL) {
            struct target *t = &r->targets[i];
            free(t->token);
            t->token = xasprintf("%s://%s:%d", c->mail->use_smtps ? "smtps" : "smtp",
                                 c->mail->relayhost, c->mail->smtp_port);
            t->starttls = c->mail->use_tls;
            const char *u = c->mail->smtp_user, *pw = c->mail->smtp_password;
            if (u != NULL && pw != NULL && u[0] != '\0' && pw[0] != '\0') { /* Buildbot's useAuth */
                t->user = xstrdup(u);
                t->password = xstrdup(pw);
            }
        }
    }
    r->n_targets = cfg->n_reporters;
    restore_limits(r);
    rep_irc_reconfig(r->irc, cfg);
    pump(r);
}

struct rep_irc *rep_irc_of(struct rep *r)
{
    return r->irc;
}

/* ------------------------------------------------------------ delivery */

static double random01(void)
{
    uint32_t v = 0;
    if (uv_random(NULL, NULL, &v, sizeof v, 0, NULL) != 0)
        v = (uint32_t)uv_hrtime();
    return (double)v / 4294967296.0;
}

static void describe(const struct note *n, char *out, size_t size)
{
    if (n->kind == REP_KIND_MAIL) {
        snprintf(out, size, "%s to %s", n->path, n->rcpts);
        return;
    }
    if (n->kind != REP_KIND_STATUS) {
        snprintf(out, size, "the message of %s (notification %s)", n->state, n->name);
        return;
    }
    const char *p = n->path + strlen("/repos/");
    const char *at = strstr(p, "/statuses/");
    if (strncmp(n->path, "/repos/", 7) != 0 || at == NULL)
        snprintf(out, size, "%s, context \"%s\"", n->path, n->context);
    else
        snprintf(out, size, "%.*s at %s, context \"%s\"", (int)(at - p), p,
                 at + strlen("/statuses/"), n->context);
}

/* A note of the same commit and context is on its way (an older one: rep_enqueue and
   superseded() leave no other older one). */
static bool same_key_flying(const struct rep *r, const struct note *n)
{
    for (const struct note *o = r->flying; o != NULL; o = o->fly_next)
        if (o != n && strcmp(o->key, n->key) == 0)
            return true;
    return false;
}

/* A newer note of the same commit and context waits: this one need not be sent again. */
static bool superseded(const struct note *n)
{
    for (const struct note *o = n->next; o != NULL; o = o->next)
        if (strcmp(o->key, n->key) == 0)
            return true;
    return false;
}

static void fly(struct rep *r, struct note *n, bool on)
{
    n->in_flight = on;
    if (on) {
        n->fly_next = r->flying;
        r->flying = n;
        return;
    }
    for (struct note **p = &r->flying; *p != NULL; p = &(*p)->fly_next) {
        if (*p == n) {
            *p = n->fly_next;
            break;
        }
    }
}

static void retry_later(struct rep *r, struct note *n, const struct http_response *resp,
                        struct rep_limiter *lim, const char *what)
{
    char where[512];
    describe(n, where, sizeof where);
    n->attempts++;
    if (util_now() - n->created_at > REP_MAX_AGE) {
        log_error("reporters: dead letter: %s: %s%s%s%s not delivered in %d hours (%d "
                  "attempts; last: %s)",
                  n->reporter, n->kind == REP_KIND_STATUS ? "\"" : "",
                  n->kind == REP_KIND_STATUS ? n->state : "",
                  n->kind == REP_KIND_STATUS ? "\" for " : "", where, REP_MAX_AGE / 3600,
                  n->attempts, what);
        forget(r, n);
        return;
    }
    uint64_t wait = resp->retry_after >= 0 ? rep_retry_after_ms(resp->retry_after)
                                           : rep_backoff_ms(n->attempts, random01());
    if (resp->retry_after >= 0 && lim != NULL && (resp->status == 429 || resp->status == 403)) {
        rep_limiter_pause(lim, uv_now(r->loop), wait);
        limits_changed(r);
    }
    n->next_at = uv_now(r->loop) + wait;
    if (n->kind == REP_KIND_STATUS)
        log_warn("reporters: %s: \"%s\" for %s: %s; attempt %d failed, next in %.1f s", n->reporter,
                 n->state, where, what, n->attempts, (double)wait / 1000);
    else
        log_warn("reporters: %s: %s: %s; attempt %d failed, next in %.1f s", n->reporter, where,
                 what, n->attempts, (double)wait / 1000);
    char *cause = NULL;
    if (store(r, n, true, &cause) < 0) {
        log_error("reporters: outbox: %s", cause);
        free(cause);
    }
}

static void log_delivered(const struct note *n, const struct target *t, const char *where)
{
    if (n->kind == REP_KIND_MAIL) {
        log_info("reporters: %s: sent mail %s", n->reporter, where);
        return;
    }
    if (t != NULL && !t->verbose)
        return;
    if (n->kind == REP_KIND_STATUS)
        log_info("reporters: %s: updated status with \"%s\" for %s", n->reporter, n->state, where);
    else
        log_info("reporters: %s: %s %s", n->reporter,
                 n->kind == REP_KIND_COMMENT ? "commented" : "posted", where);
}

static void log_refused(const struct note *n, const char *where, const char *what)
{
    if (n->kind == REP_KIND_MAIL) {
        log_error("reporters: %s: mail %s refused: %s; not retried", n->reporter, where, what);
        return;
    }
    if (n->kind == REP_KIND_STATUS)
        log_error("reporters: %s: failed to update \"%s\" for %s: %s; not retried", n->reporter,
                  n->state, where, what);
    else
        log_error("reporters: %s: unable to %s %s: %s; not retried", n->reporter,
                  n->kind == REP_KIND_COMMENT ? "comment" : "upload status", where, what);
}

/* The answer to a page of the comments, read before a comment is posted again. */
static void checked_page(struct rep *r, struct note *n, const struct http_response *resp,
                         const struct target *t, char *where)
{
    int have = rep_comments_have(resp->body, n->marker);
    if (have == 1) {
        log_info("reporters: %s: %s was posted already (its marker is on the issue); not "
                 "posted again",
                 n->reporter, where);
        forget(r, n);
        return;
    }
    char *h = have == 0 ? http_header(resp, "Link") : NULL;
    char *next = h != NULL ? rep_link_next(h) : NULL;
    free(h);
    free(n->check_url);
    n->check_url = NULL;
    if (next != NULL && t != NULL && strncmp(next, t->base_url, strlen(t->base_url)) == 0 &&
        ++n->pages < REP_COMMENT_PAGES_MAX) {
        n->check_url = next; /* the next page, from the same API only */
        return;
    }
    free(next);
    n->checked = true; /* not there: post it */
}

/* A pause GitHub asks of the token (a spent quota even on a 2xx, a rate-limit answer):
   the token waits, and a retry of this note waits as long. */
static void github_pause(struct rep *r, const struct note *n, struct http_response *resp,
                         struct rep_limiter *lim)
{
    char *remaining = http_header(resp, "X-RateLimit-Remaining");
    char *reset = http_header(resp, "X-RateLimit-Reset");
    long secs =
        rep_github_pause(resp->status, resp->body, resp->retry_after, remaining, reset, util_now());
    free(remaining);
    free(reset);
    if (secs < 0)
        return;
    uint64_t ms = rep_retry_after_ms(secs);
    rep_limiter_pause(lim, uv_now(r->loop), ms);
    limits_changed(r);
    if (resp->retry_after < 0)
        resp->retry_after = secs;
    if (resp->status >= 200 && resp->status < 300)
        log_info("reporters: %s: the token's rate limit is spent; its next request in %.1f s",
                 n->reporter, (double)ms / 1000);
}

/* Discord's X-RateLimit-Remaining: 0 with X-RateLimit-Reset-After (seconds): the next
   message of the webhook waits until the bucket refills rather than meet a 429. */
static void spent_bucket(struct rep *r, const struct note *n, const struct http_response *resp,
                         struct rep_limiter *lim)
{
    char *remaining = http_header(resp, "X-RateLimit-Remaining");
    char *reset = http_header(resp, "X-RateLimit-Reset-After");
    long secs = rep_retry_after_header_seconds(reset);
    if (remaining != NULL && strcmp(remaining, "0") == 0 && secs >= 0) {
        uint64_t ms = rep_retry_after_ms(secs);
        rep_limiter_pause(lim, uv_now(r->loop), ms);
        limits_changed(r);
        log_info("reporters: %s: the webhook's rate limit is spent; its next message in %.1f s",
                 n->reporter, (double)ms / 1000);
    }
    free(remaining);
    free(reset);
}

static void answered(void *arg, const struct http_response *resp0)
{
    struct note *n = arg;
    struct rep *r = n->r;
    fly(r, n, false);
    const struct target *t = find_target(r, n->reporter);
    struct rep_limiter *lim = n->lim; /* the token it went with, even if reconfig changed it */
    if (lim->in_flight > 0)
        lim->in_flight--;
    struct http_response resp = *resp0;
    if (resp.retry_after < 0 && resp.status == 429)
        resp.retry_after = rep_retry_after_body(resp.body); /* Discord's JSON */
    char where[512], what[300];
    describe(n, where, sizeof where);
    if (n->kind == REP_KIND_MAIL && resp.status == 0 && mail_file_bytes(n->file) < 0) {
        /* its file went (outbox/ emptied): no retry can send it; as at a start, the row
           stays for a file put back */
        log_error("reporters: %s: mail %s: its message, %s/%s, is gone; not sent, its row stays "
                  "in the database",
                  n->reporter, where, REP_MAIL_DIR, n->file);
        unlink_note(r, n);
        note_free(n);
        pump(r);
        return;
    }
    /* the peer's words are escaped: a body cannot forge log lines */
    if (resp.status == 0)
        snprintf(what, sizeof what, "%s", UTIL_ESC(resp.error != NULL ? resp.error : "no answer"));
    else
        snprintf(what, sizeof what, "http %ld, %s", resp.status, UTIL_ESC(resp.body));
    if (n->kind == REP_KIND_MAIL && resp.status != 0)
        snprintf(what, sizeof what, "smtp %ld, %s", resp.status,
                 UTIL_ESC(resp.error != NULL ? resp.error : ""));
    bool checking = n->check_url != NULL;
    if (n->kind == REP_KIND_STATUS || n->kind == REP_KIND_COMMENT)
        github_pause(r, n, &resp, lim);
    enum rep_outcome o = n->kind == REP_KIND_MAIL
                             ? rep_classify_smtp(resp.status)
                             : rep_classify(resp.status, resp.body, resp.retry_after);
    switch (o) {
    case REP_DELIVERED:
        if (checking) {
            checked_page(r, n, &resp, t, where);
            break;
        }
        log_delivered(n, t, where);
        if (n->kind == REP_KIND_HTTP)
            spent_bucket(r, n, &resp, lim);
        forget(r, n);
        break;
    case REP_DROP:
        log_refused(n, where, what);
        forget(r, n);
        break;
    case REP_RETRY:
        free(n->check_url);
        n->check_url = NULL;
        n->checked = false; /* a comment that may have gone is looked for first */
        if (n->kind == REP_KIND_STATUS && superseded(n))
            forget(r, n);
        else
            retry_later(r, n, &resp, lim, what);
        break;
    }
    pump(r);
}

/* The envelope recipients of a mail note: a NULL-terminated list into `list`. */
static const char **recipients(json_t *list)
{
    size_t n = json_array_size(list);
    const char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(list, i));
    return v;
}

static int send_mail(struct rep *r, struct note *n, const struct target *t, char **cause)
{
    json_t *list = json_loads(n->rcpts, 0, NULL);
    const char **rcpts = recipients(list);
    char path[MAIL_PATH_MAX];
    /* read on the mailer's thread, not here */
    int rc = http_smtp(r->http, t->token, t->starttls, t->user, t->password, n->from, rcpts,
                       mail_path(path, n->file), rep_mail_read, answered, n, cause);
    free(rcpts);
    json_decref(list);
    return rc;
}

static char *iso_time(double t)
{
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(buf);
}

/* The method, URL and body of the note's next request (URL malloc'd). */
static const char *request_of(struct rep *r, struct note *n, const struct target *t, char **url)
{
    if (n->kind == REP_KIND_HTTP) {
        *url = rep_post_url(t->base_url);
        return "POST";
    }
    if (n->kind == REP_KIND_COMMENT && n->posted && !n->checked) {
        if (n->check_url == NULL) {
            /* comments made since the notification (a minute early: clocks differ) */
            char *since = iso_time(n->created_at - 60);
            n->check_url = xasprintf("%s%s?since=%s&per_page=100", t->base_url, n->path, since);
            free(since);
            n->pages = 0;
        }
        *url = xstrdup(n->check_url);
        return "GET";
    }
    if (n->kind == REP_KIND_COMMENT && !n->posted) {
        char *cause = NULL;
        n->posted = true; /* stored before it goes: a crash after it makes the next run look */
        if (store(r, n, true, &cause) < 0) {
            log_error("reporters: outbox: %s", cause);
            free(cause);
        }
    }
    *url = xasprintf("%s%s", t->base_url, n->path);
    return "POST";
}

static void send_note(struct rep *r, struct note *n, const struct target *t,
                      struct rep_limiter *lim)
{
    char *url = NULL;
    const char *method = request_of(r, n, t, &url);
    char *auth = xasprintf("Authorization: token %s", t->token);
    const char *headers[CFG_REP_HEADERS_MAX + 4] = {"Content-Type: application/json"};
    size_t nh = 1;
    if (n->kind == REP_KIND_HTTP) {
        for (size_t i = 0; t->headers != NULL && t->headers[i] != NULL; i++)
            headers[nh++] = t->headers[i];
    } else {
        headers[nh++] = "User-Agent: Buildbot";
        headers[nh++] = auth;
    }
    headers[nh] = NULL;
    char *cause = NULL;
    n->r = r;
    n->lim = lim;
    fly(r, n, true);
    rep_limiter_take(lim, uv_now(r->loop));
    limits_changed(r);
    int rc = n->kind == REP_KIND_MAIL
                 ? send_mail(r, n, t, &cause)
                 : http_request(r->http, method, url, headers,
                                strcmp(method, "GET") == 0 ? NULL : n->body, answered, n, &cause);
    if (rc < 0) {
        fly(r, n, false);
        lim->in_flight--;
        struct http_response resp = {.error = cause, .retry_after = -1};
        retry_later(r, n, &resp, lim, cause);
        free(cause);
    }
    free(url);
    free(auth);
}

static void timer_cb(uv_timer_t *t)
{
    pump(t->data);
}

/* The limiter of the note's peer: its token's for GitHub (with GitHub's hourly bound)
   and mail, its URL's for HttpStatusPush. */
static struct rep_limiter *limiter_of(struct rep *r, const struct target *t)
{
    char *key = limit_key(t);
    struct rep_limiter *l = limiter(r, key, t->kind != CFG_REP_MAIL && t->kind != CFG_REP_HTTP);
    free(key);
    return l;
}

/* A message of the reporter is ahead of this one (`busy` lists those reporters by their
   target's name, which outlives a note sent and forgotten during the pump). */
static bool queued_behind(const char **busy, size_t *n_busy, const struct note *n,
                          const struct target *t)
{
    if (n->kind == REP_KIND_STATUS || n->kind == REP_KIND_MAIL || t == NULL)
        return false; /* statuses and mails do not wait for each other */
    for (size_t i = 0; i < *n_busy; i++)
        if (strcmp(busy[i], t->name) == 0)
            return true;
    if (*n_busy < CFG_REPORTERS_MAX)
        busy[(*n_busy)++] = t->name;
    return false;
}

/* The kind of reporter that sends a kind of notification. */
static int target_kind(int kind)
{
    return kind == REP_KIND_HTTP      ? CFG_REP_HTTP
           : kind == REP_KIND_COMMENT ? CFG_REP_GITHUB_COMMENT
           : kind == REP_KIND_MAIL    ? CFG_REP_MAIL
                                      : CFG_REP_GITHUB_STATUS;
}

static const char *kind_name(int kind)
{
    return kind == REP_KIND_HTTP      ? "HttpStatusPush"
           : kind == REP_KIND_COMMENT ? "GitHubCommentPush"
           : kind == REP_KIND_MAIL    ? "mail"
                                      : "GitHub status";
}

/* Sends every note that is due and allowed; the timer wakes it for the next one. */
static void pump(struct rep *r)
{
    if (r->http == NULL)
        return;
    uint64_t now = uv_now(r->loop), wake = UINT64_MAX;
    const char *busy[CFG_REPORTERS_MAX];
    size_t n_busy = 0;
    struct note *next;
    for (struct note *n = r->head; n != NULL; n = next) {
        next = n->next;
        if (n->in_flight || same_key_flying(r, n)) {
            queued_behind(busy, &n_busy, n, find_target(r, n->reporter));
            continue;
        }
        const struct target *t = find_target(r, n->reporter);
        if (t == NULL) {
            if (r->n_targets == 0 && r->targets == NULL)
                return; /* not configured yet */
            log_error("reporters: '%s' is no longer configured: its notification %s is "
                      "dropped",
                      n->reporter, n->name);
            forget(r, n);
            continue;
        }
        if (t->kind != target_kind(n->kind)) { /* reconfigured into another kind */
            log_error("reporters: '%s' is no longer a %s reporter: its notification %s is "
                      "dropped",
                      n->reporter, kind_name(n->kind), n->name);
            forget(r, n);
            continue;
        }
        if (queued_behind(busy, &n_busy, n, t))
            continue;
        if (n->next_at > now) {
            wake = n->next_at < wake ? n->next_at : wake;
            continue;
        }
        struct rep_limiter *lim = limiter_of(r, t);
        uint64_t wait = rep_limiter_wait(lim, now);
        if (wait > 0) {
            if (lim->in_flight < REP_CONCURRENCY || wait > 1)
                wake = now + wait < wake ? now + wait : wake;
            continue;
        }
        send_note(r, n, t, lim);
    }
    if (wake != UINT64_MAX)
        uv_timer_start(r->timer, timer_cb, wake - now, 0);
    else
        uv_timer_stop(r->timer);
}

/* ------------------------------------------------------------ the queue */

int rep_enqueue(struct rep *r, const struct rep_status *st, char **cause)
{
    if (r->n >= REP_OUTBOX_MAX)
        return util_cause(cause, "the outbox holds %d notifications already", REP_OUTBOX_MAX);
    const char *desc = st->description != NULL ? st->description : "";
    char *cut = xasprintf("%.*s", (int)rep_utf8_prefix(desc, REP_DESCRIPTION_MAX), desc);
    json_t *payload = json_object();
    json_object_set_new(payload, "state", json_string(st->state));
    json_object_set_new(payload, "description", json_string(cut));
    json_object_set_new(payload, "target_url", json_string(st->target_url));
    json_object_set_new(payload, "context", json_string(st->context));
    free(cut);
    struct note *n = xcalloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%020lld", r->seq++);
    n->reporter = xstrdup(st->reporter);
    n->path = xasprintf("/repos/%s/%s/statuses/%s", st->owner, st->repo, st->sha);
    n->body = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(payload);
    n->state = xstrdup(st->state);
    n->context = xstrdup(st->context);
    n->key = xasprintf("%s\n%s\n%s", n->reporter, n->path, n->context);
    n->created_at = util_now();
    n->next_at = uv_now(r->loop);
    if (n->body == NULL) {
        note_free(n);
        return util_cause(cause, "a status that is not valid JSON text");
    }
    if (store(r, n, false, cause) < 0) {
        note_free(n);
        return -1;
    }
    /* a newer state of the same context replaces one that has not gone yet */
    struct note *next;
    for (struct note *o = r->head; o != NULL; o = next) {
        next = o->next;
        if (!o->in_flight && strcmp(o->key, n->key) == 0)
            forget(r, o);
    }
    link_note(r, n);
    pump(r);
    return 0;
}

int rep_enqueue_post(struct rep *r, const struct rep_post *p, char **cause)
{
    if (r->n >= REP_OUTBOX_MAX)
        return util_cause(cause, "the outbox holds %d notifications already", REP_OUTBOX_MAX);
    struct note *n = xcalloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%020lld", r->seq++);
    n->kind = p->kind;
    n->reporter = xstrdup(p->reporter);
    n->path = xstrdup(p->path);
    n->state = xstrdup(p->what);
    n->context = xstrdup("");
    n->key = xasprintf("\n%s", n->name);
    n->created_at = util_now();
    n->next_at = uv_now(r->loop);
    if (p->kind == REP_KIND_COMMENT) {
        n->marker = rep_comment_marker(n->name, n->created_at);
        char *text = rep_comment_body(p->body, n->marker);
        json_t *o = json_pack("{s:s}", "body", text);
        n->body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        free(text);
    } else {
        const struct target *t = find_target(r, p->reporter);
        n->body =
            t != NULL && rep_is_discord(t->base_url) ? rep_discord_body(p->body) : xstrdup(p->body);
    }
    if (n->body == NULL) {
        note_free(n);
        return util_cause(cause, "a message that is not valid UTF-8 text");
    }
    if (store(r, n, false, cause) < 0) {
        note_free(n);
        return -1;
    }
    link_note(r, n);
    pump(r);
    return 0;
}

/* The checks of a mail's file before it is queued; 0, or -1 with *cause. */
static int mail_room(const struct rep *r, size_t bytes, char **cause)
{
    if (r->n >= REP_OUTBOX_MAX)
        return util_cause(cause, "the outbox holds %d notifications already", REP_OUTBOX_MAX);
    if (r->mail_bytes + bytes > REP_OUTBOX_MAIL_BYTES)
        return util_cause(cause, "the outbox holds %zu MiB of mails already", r->mail_bytes >> 20);
    return 0;
}

int rep_enqueue_mail(struct rep *r, const struct rep_mail *m, char **cause)
{
    char file[REP_MAIL_NAME_MAX];
    size_t bytes = m->file_bytes;
    if (m->file != NULL)
        snprintf(file, sizeof file, "%s", m->file);
    else if (mail_room(r, 0, cause) != 0 || rep_mail_save(m->message, file, &bytes, cause) != 0)
        return -1;
    if (mail_room(r, bytes, cause) != 0) {
        remove_file(file);
        return -1;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < m->n_rcpts; i++)
        json_array_append_new(list, json_string(m->rcpts[i]));
    struct note *n = xcalloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%020lld", r->seq++);
    n->kind = REP_KIND_MAIL;
    n->reporter = xstrdup(m->reporter);
    n->path = xstrdup(m->message_id);
    n->file = xstrdup(file);
    n->file_bytes = bytes;
    n->state = xstrdup("mail");
    n->context = xstrdup(m->subject);
    n->from = xstrdup(m->from);
    n->rcpts = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    n->key = xasprintf("\n%s", n->name); /* never superseded */
    n->created_at = util_now();
    n->next_at = uv_now(r->loop);
    int stored = n->rcpts != NULL ? store(r, n, false, cause) : -1;
    if (stored < 0) {
        if (n->rcpts == NULL)
            util_cause(cause, "recipients that are not valid text");
        remove_file(file);
        note_free(n);
        return -1;
    }
    link_note(r, n);
    pump(r);
    return 0;
}

size_t rep_pending(const struct rep *r)
{
    return r->n;
}

/* ------------------------------------------------------------ life */

static int make_mail_dir(char **cause)
{
    if (mkdir(REP_MAIL_DIR, 0700) != 0 && errno != EEXIST)
        return util_cause(cause, "%s: %s", REP_MAIL_DIR, strerror(errno));
    if (!util_is_dir(REP_MAIL_DIR))
        return util_cause(cause,
                          "%s is there and is not a folder: the outbox keeps its mails "
                          "in it",
                          REP_MAIL_DIR);
    return 0;
}

struct rep *rep_new(uv_loop_t *loop, struct db *db, char **cause)
{
    long long id = db_object_id(db, REP_OBJECT_NAME, REP_OBJECT_CLASS, cause);
    if (id < 0)
        return NULL;
    struct rep *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->db = db;
    r->objectid = id;
    r->seq = 1;
    r->tail = &r->head;
    r->limits_id = db_object_id(db, REP_LIMITS_OBJECT_NAME, REP_LIMITS_OBJECT_CLASS, cause);
    if (r->limits_id < 0 || make_mail_dir(cause) != 0 || load(r, cause) < 0) {
        rep_free(r);
        return NULL;
    }
    load_limits(r);
    r->timer = xcalloc(1, sizeof *r->timer);
    uv_timer_init(loop, r->timer);
    r->timer->data = r;
    r->save_timer = xcalloc(1, sizeof *r->save_timer);
    uv_timer_init(loop, r->save_timer);
    r->save_timer->data = r;
    r->http = http_new(loop);
    r->irc = rep_irc_new(loop);
    return r;
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void rep_free(struct rep *r)
{
    if (r == NULL)
        return;
    if (r->limits_id > 0 && r->targets != NULL) /* not a start that failed */
        save_limits(r);
    json_decref(r->saved_limits);
    http_free(r->http); /* in-flight callbacks are not called: their rows stay */
    rep_irc_free(r->irc);
    if (r->timer != NULL)
        uv_close((uv_handle_t *)r->timer, timer_closed);
    if (r->save_timer != NULL)
        uv_close((uv_handle_t *)r->save_timer, timer_closed);
    while (r->head != NULL) {
        struct note *n = r->head;
        unlink_note(r, n);
        note_free(n);
    }
    free_targets(r);
    while (r->limits != NULL) {
        struct token_limit *t = r->limits;
        r->limits = t->next;
        free(t->token);
        free(t);
    }
    free(r);
}
