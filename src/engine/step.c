/*
 * One build step: its parameters read from the bbm.steps.* table and
 * rendered when it starts, its row in `steps`, the command it runs on the
 * worker, and its result as Buildbot computes it (decodeRC, interrupts, a
 * lost connection, warning patterns).  Shell-like steps (shell, configure,
 * compile, test, set_property_from_command) run the worker's `shell`
 * command with the arguments a Buildbot 4.3 master sends (SPEC 5.8).
 */
#include "engine/internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <assert.h>
#include <lauxlib.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* What each kind of step is by default (Buildbot's class attributes). */
struct step_kind {
    const char *kind;
    const char *name;
    bool halt, warn_on_failure, warnings;
    const char *description, *description_done;
    const char *command[3];
};

static const struct step_kind kinds[] = {
    {"step.shell", "shell", false, false, false, NULL, NULL, {NULL}},
    {"step.configure",
     "configure",
     true,
     false,
     false,
     "configuring",
     "configure",
     {"./configure", NULL}},
    {"step.compile", "compile", true, false, true, "compiling", "compile", {"make", "all", NULL}},
    {"step.test", "test", false, true, true, "testing", "test", {"make", "test", NULL}},
    {"step.set_property_from_command", "setproperty", false, false, false, NULL, NULL, {NULL}},
    {"step.git", "git", true, false, false, "updating", "update", {NULL}},
    {"step.github", "git", true, false, false, "updating", "update", {NULL}},
    {"step.file_upload", "upload", true, false, false, NULL, NULL, {NULL}},
    {"step.directory_upload", "upload", true, false, false, NULL, NULL, {NULL}},
    {"step.multiple_file_upload", "upload", true, false, false, NULL, NULL, {NULL}},
    {"step.trigger", "trigger", false, false, false, NULL, NULL, {NULL}},
    {"step.remove_worker_file_secret",
     "RemoveWorkerFileSecret",
     false,
     false,
     false,
     NULL,
     NULL,
     {NULL}},
    {"step.file_download", "download", true, false, false, NULL, NULL, {NULL}},
    {"step.string_download", "string_download", true, false, false, NULL, NULL, {NULL}},
    {"step.mkdir", "MakeDirectory", false, false, false, "Creating", "Created", {NULL}},
    {"step.rmdir", "RemoveDirectory", false, false, false, "Deleting", "Deleted", {NULL}},
    {"step.copy_directory", "CopyDirectory", false, false, false, "Copying", "Copied", {NULL}},
    {"step.file_exists", "FileExists", false, false, false, NULL, NULL, {NULL}},
    {"step.master_shell_command",
     "MasterShellCommand",
     false,
     false,
     false,
     "Running",
     "Ran",
     {NULL}},
};

/* WarningCountingShellCommand's default pattern. */
#define DEFAULT_WARNING_PATTERN "(?i).*warning[: ].*"
/* Bytes of warning lines and of captured stdout kept for a step. */
#define WARN_LINES_MAX (1u << 20)
#define CAPTURE_MAX (1u << 20)
/* Logs a step's `logfiles` may add; more declared names get nothing. */
#define STEP_MAX_LOGFILES 64

static const struct step_kind *kind_of(const char *kind)
{
    for (size_t i = 0; i < UTIL_NELEM(kinds); i++)
        if (util_streq(kinds[i].kind, kind))
            return &kinds[i];
    return NULL;
}

const char *step_default_name(const char *kind)
{
    const struct step_kind *k = kind_of(kind);
    return k != NULL ? k->name : "generic";
}

static lua_State *lua_of(const struct step *s)
{
    return s->b->cfg->lua;
}

/* Pushes the step's field `key`. */
static int push_field(const struct step *s, const char *key)
{
    lua_State *L = lua_of(s);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
    lua_getfield(L, -1, key);
    lua_remove(L, -2);
    return lua_type(L, -1);
}

static bool bool_field(const struct step *s, const char *key, bool dflt)
{
    lua_State *L = lua_of(s);
    bool v = push_field(s, key) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

/* util.join_list: a string as it is, a list of strings joined by spaces. */
static char *words_field(const struct step *s, const char *key)
{
    lua_State *L = lua_of(s);
    int t = push_field(s, key);
    char *out = NULL;
    if (t == LUA_TSTRING) {
        out = xstrdup(lua_tostring(L, -1));
    } else if (t == LUA_TTABLE) {
        struct buf b;
        buf_init(&b, 1u << 16);
        for (lua_Integer i = 1; i <= luaL_len(L, -1); i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) == LUA_TSTRING)
                buf_printf(&b, "%s%s", i > 1 ? " " : "", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        out = buf_take(&b);
    }
    lua_pop(L, 1);
    return out;
}

/* Renders field `key` (render_shell when `shell`); *out is NULL when the field is absent.
   0 or -1 with *cause. */
static int render_field(struct step *s, const char *key, bool shell, json_t **out, char **cause)
{
    lua_State *L = lua_of(s);
    *out = NULL;
    if (push_field(s, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    struct render_ctx c = build_render_ctx(s->b);
    *out = shell ? render_shell(&c, -1, cause) : render(&c, -1, cause);
    lua_pop(L, 1);
    if (*out != NULL)
        return 0;
    char *inner = *cause;
    *cause = NULL;
    util_cause(cause, "%s: %s", key, inner != NULL ? inner : "cannot be rendered");
    free(inner);
    return -1;
}

int step_render(struct step *s, const char *key, json_t **out, char **cause)
{
    return render_field(s, key, false, out, cause);
}

/* updateBuildSummaryPolicy: true (every result), false (none) or a list of results. */
static void read_summary_policy(struct step *s)
{
    lua_State *L = lua_of(s);
    int t = push_field(s, "updateBuildSummaryPolicy");
    s->summary_policy = t == LUA_TBOOLEAN || t == LUA_TTABLE;
    s->summary_results = t == LUA_TBOOLEAN && lua_toboolean(L, -1) ? ~0u : 0;
    for (lua_Integer i = 1; t == LUA_TTABLE && i <= (lua_Integer)luaL_len(L, -1); i++) {
        lua_geti(L, -1, i);
        lua_Integer r = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
        if (r >= 0 && r < 32)
            s->summary_results |= 1u << r;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

struct step *step_new(struct build *b, int index)
{
    lua_State *L = b->cfg->lua;
    struct step *s = xcalloc(1, sizeof *s);
    s->b = b;
    s->index = index;
    s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
    lua_getfield(L, -1, "_kind");
    s->kind = xstrdup(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    lua_pop(L, 2);
    const struct step_kind *k = kind_of(s->kind);
    s->halt_on_failure = bool_field(s, "haltOnFailure", k != NULL && k->halt);
    s->flunk_on_failure = bool_field(s, "flunkOnFailure", true);
    s->flunk_on_warnings = bool_field(s, "flunkOnWarnings", false);
    s->warn_on_warnings = bool_field(s, "warnOnWarnings", false);
    s->warn_on_failure = bool_field(s, "warnOnFailure", k != NULL && k->warn_on_failure);
    s->always_run = bool_field(s, "alwaysRun", false);
    s->description = words_field(s, "description");
    s->description_done = words_field(s, "descriptionDone");
    s->description_suffix = words_field(s, "descriptionSuffix");
    read_summary_policy(s);
    s->max_warn_count =
        push_field(s, "maxWarnCount") == LUA_TNUMBER ? lua_tointeger(lua_of(s), -1) : -1;
    lua_pop(lua_of(s), 1);
    if (k != NULL && s->description == NULL && k->description != NULL)
        s->description = xstrdup(k->description);
    if (k != NULL && s->description_done == NULL && k->description_done != NULL)
        s->description_done = xstrdup(k->description_done);
    buf_init(&s->warn_lines, WARN_LINES_MAX);
    buf_init(&s->captured, CAPTURE_MAX);
    s->results = -1;
    return s;
}

void step_free(struct step *s)
{
    if (s == NULL)
        return;
    luaL_unref(s->b->cfg->lua, LUA_REGISTRYINDEX, s->ref);
    lockreq_free(s->locks);
    cfg_lock_accesses_free(s->lock_access, s->n_lock_access);
    if (s->stdio != NULL) /* a step abandoned with the loop: its logs outlive it */
        s->stdio->step = NULL;
    for (size_t i = 0; i < s->n_logfiles; i++)
        s->logfiles[i]->step = NULL;
    free(s->setup_error);
    free(s->unlogged);
    free(s->name);
    free(s->kind);
    json_decref(s->command);
    free(s->description);
    free(s->description_done);
    free(s->description_suffix);
    json_decref(s->decode_rc);
    json_decref(s->declared_logs);
    free(s->abort_reason);
    free(s->logfiles);
    for (size_t i = 0; i < s->n_logfiles; i++)
        free(s->logfile_names[i]);
    free(s->logfile_names);
    if (s->warn_re != NULL)
        pcre2_code_free(s->warn_re);
    buf_free(&s->warn_lines);
    free(s->set_property);
    buf_free(&s->captured);
    json_decref(s->files);
    pb_value_free(s->stat);
    git_free(s);
    transfer_free(s);
    trigger_free(s);
    free(s);
}

/* ------------------------------------------------------------ summaries */

/* Buildbot's util.command_to_string: "'a b'" or "'a b ...'". */
char *step_command_string(const json_t *command)
{
    json_t *words = NULL;
    if (json_is_string(command)) {
        words = json_array();
        char *copy = xstrdup(json_string_value(command)), *save = NULL;
        for (char *w = strtok_r(copy, " \t\n\r\f\v", &save); w != NULL;
             w = strtok_r(NULL, " \t\n\r\f\v", &save))
            json_array_append_new(words, json_string(w));
        free(copy);
    } else if (json_is_array(command)) {
        words = json_incref((json_t *)command);
    }
    size_t n = json_array_size(words);
    char *out = NULL;
    if (n > 0) {
        char *w0 = props_str(json_array_get(words, 0));
        char *w1 = n > 1 ? props_str(json_array_get(words, 1)) : NULL;
        out = n == 1   ? xasprintf("'%s'", w0)
              : n == 2 ? xasprintf("'%s %s'", w0, w1)
                       : xasprintf("'%s %s ...'", w0, w1);
        free(w0);
        free(w1);
    }
    json_decref(words);
    return out;
}

char *step_summary(const struct step *s, bool done)
{
    const char *words = done && s->description_done != NULL ? s->description_done : s->description;
    char *base = words == NULL                   ? step_command_string(s->command)
                 : s->description_suffix != NULL ? xasprintf("%s %s", words, s->description_suffix)
                                                 : xstrdup(words);
    if (base == NULL)
        base = xstrdup(done ? "finished" : "running");
    if (!done || s->results == RES_SUCCESS || s->results < 0)
        return base;
    /* 4.x workers say why they killed a command (failure_reason) */
    const char *why = s->timed_out    ? " (timed out)"
                      : !s->max_lines ? ""
                      : words != NULL ? " (max lines reached)"
                                      : " (max lines)";
    char *out = xasprintf("%s (%s)%s%s%s", base, res_name(s->results), why,
                          s->unlogged != NULL ? " " : "", s->unlogged != NULL ? s->unlogged : "");
    free(base);
    return out;
}

bool step_in_build_summary(const struct step *s)
{
    if (s->summary_policy)
        return s->results >= 0 && s->results < 32 && (s->summary_results >> s->results) & 1;
    switch (s->results) {
    case RES_EXCEPTION:
    case RES_RETRY:
    case RES_CANCELLED:
        return true;
    case RES_FAILURE:
        return s->flunk_on_failure || s->halt_on_failure || s->warn_on_failure;
    case RES_WARNINGS:
        return s->warn_on_warnings || s->flunk_on_warnings;
    default:
        return false;
    }
}

/* ------------------------------------------------------------ rows */

static void db_step(struct step *s, const char *sql, const struct db_param *p, size_t n)
{
    char *cause = NULL;
    if (db_exec(s->b->e->db, sql, p, n, &cause) != 0)
        engine_db_error("writing a step", cause);
}

struct steplog *step_log_open(struct step *s, const char *name, char type, char **cause)
{
    struct steplog *l = steplog_open(s->b->e, s->id, name, type, cause);
    if (l != NULL)
        l->step = s;
    return l;
}

/* A log written whole: a text log of `text`, complete at once. */
static void complete_log(struct step *s, const char *name, const char *text)
{
    char *cause = NULL;
    struct steplog *l = step_log_open(s, name, 't', &cause);
    if (l == NULL && db_lost(s->b->e->db) && s->unlogged == NULL) {
        /* no row for the log now: its text goes into the step's state_string, which
           waits for the database with the step's last row */
        s->unlogged = xasprintf("(%s: %.300s)", name, text);
    }
    if (l == NULL) {
        engine_db_error("adding a log", cause);
        return;
    }
    steplog_add(l, 0, text, strlen(text));
    steplog_close(l);
}

static void close_logs(struct step *s)
{
    if (s->stdio != NULL)
        steplog_close(s->stdio);
    s->stdio = NULL;
    for (size_t i = 0; i < s->n_logfiles; i++)
        steplog_close(s->logfiles[i]);
    s->n_logfiles = 0;
}

static bool hidden(struct step *s)
{
    lua_State *L = lua_of(s);
    int t = push_field(s, "hideStepIf");
    bool hide = t == LUA_TBOOLEAN && lua_toboolean(L, -1);
    if (t == LUA_TFUNCTION) {
        struct render_ctx c = build_render_ctx(s->b);
        lua_pushinteger(L, s->results);
        props_push_lua(&c);
        char *cause = NULL;
        if (cfg_lua_call(L, 2, 1, &cause) == 0) {
            hide = lua_toboolean(L, -1);
        } else {
            log_warn("build %lld step '%s': hideStepIf: %s", s->b->id, s->name, cause);
            free(cause);
            lua_pushnil(L);
        }
    }
    lua_pop(L, 1);
    return hide;
}

/* The step's last row: its state, end and results. */
static void write_end(struct step *s)
{
    char *summary = step_summary(s, true);
    struct db_param p[] = {DB_TEXT(summary), DB_INT(engine_now()), DB_INT(s->results),
                           DB_INT(hidden(s)), DB_INT(s->id)};
    db_step(s,
            "UPDATE steps SET state_string = ?, complete_at = ?, results = ?, hidden = ? "
            "WHERE id = ?",
            p, 5);
    engine_publish(s->b->e, EV_STEP, s->id, EV_FINISHED);
    free(summary);
}

/* The database refused the transaction of the step's last rows (a constraint, a disk full on
   its side): the tails of its logs are lost with them.  The step ends EXCEPTION saying so,
   its rows written again each on its own, as a chunk refused earlier would have made it. */
static void refused_end(struct step *s)
{
    static const char why[] = "the last lines of its logs could not be stored: the database "
                              "refused the transaction that wrote them";
    log_warn("build %lld step '%s': %s", s->b->id, s->name, why);
    s->results = res_worst(s->results, RES_EXCEPTION);
    complete_log(s, "err.text", why);
    struct db_param p[] = {DB_INT(s->id)};
    db_step(s, "UPDATE logs SET complete = 1 WHERE stepid = ?", p, 1);
    write_end(s);
}

void step_finish(struct step *s, int results)
{
    assert(s->cmd == NULL); /* a command's callbacks would outlive the step */
    lockreq_free(s->locks); /* released before the step's row is final, as Buildbot does */
    s->locks = NULL;
    s->waiting_locks = false;
    s->results = results;
    if (s->warn_re != NULL && s->warn_count > 0) { /* a new row: not in the transaction */
        char name[64];
        snprintf(name, sizeof name, "warnings (%lld)", s->warn_count);
        buf_addc(&s->warn_lines, '\0');
        complete_log(s, name, s->warn_lines.data);
    }
    char *cause = NULL;
    bool tx = db_begin(s->b->e->db, &cause) == 0; /* the step's last rows, committed once */
    if (!tx)
        engine_db_error("finishing a step", cause), cause = NULL;
    close_logs(s);
    if (s->abort_reason != NULL) /* lines were lost as the logs closed */
        s->results = res_worst(s->results, RES_EXCEPTION);
    if (s->warn_re != NULL) {
        const json_t *old = props_get(&s->b->props, "warnings-count");
        long long before = json_is_integer(old) ? (long long)json_integer_value(old) : 0;
        props_set(&s->b->props, "warnings-count", json_integer(before + s->warn_count),
                  "WarningCountingShellCommand");
    }
    write_end(s);
    if (tx && db_commit(s->b->e->db, &cause) != 0) {
        engine_db_error("finishing a step", cause);
        db_rollback(s->b->e->db);
        refused_end(s);
    }
    build_step_done(s);
}

void step_fail(struct step *s, int results, const char *why)
{
    log_warn("build %lld step '%s': %s", s->b->id, s->name, why);
    close_logs(s);
    complete_log(s, "err.text", why);
    step_finish(s, results);
}

void step_abort(struct step *s, const char *fmt, ...)
{
    if (s->abort_reason != NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    s->abort_reason = xvasprintf(fmt, ap);
    va_end(ap);
    if (s->cmd != NULL)
        wk_command_interrupt(s->cmd, s->abort_reason);
}

/* ------------------------------------------------------------ the command */

static void on_line(void *arg, char channel, const char *line, size_t len)
{
    struct step *s = arg;
    (void)channel;
    if (s->warn_re != NULL) {
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        if (pcre2_match(s->warn_re, (PCRE2_SPTR)line, len, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                        md, NULL) >= 0) {
            s->warn_count++;
            buf_add(&s->warn_lines, line, len);
            buf_addc(&s->warn_lines, '\n');
        }
        pcre2_match_data_free(md);
    }
}

/* The log a `log` update feeds: only the names of the step's `logfiles` (Buildbot's
   RemoteCommand ignores others), at most STEP_MAX_LOGFILES of them; NULL: ignored. */
static struct steplog *logfile(struct step *s, const char *name)
{
    for (size_t i = 0; i < s->n_logfiles; i++)
        if (util_streq(s->logfile_names[i], name))
            return s->logfiles[i];
    if (json_object_get(s->declared_logs, name) == NULL || s->n_logfiles >= STEP_MAX_LOGFILES) {
        if (!s->undeclared_warned) {
            log_warn("build %lld step '%s': the worker sent output for log '%s', %s; ignored",
                     s->b->id, s->name, UTIL_ESC(name),
                     s->n_logfiles >= STEP_MAX_LOGFILES ? "one log too many"
                                                        : "which the step's logfiles do not name");
            s->undeclared_warned = true;
        }
        return NULL;
    }
    char *cause = NULL;
    struct steplog *l = step_log_open(s, name, 's', &cause);
    if (l == NULL) {
        engine_db_error("adding a log", cause);
        return NULL;
    }
    s->logfiles = xrealloc(s->logfiles, (s->n_logfiles + 1) * sizeof *s->logfiles);
    s->logfile_names = xrealloc(s->logfile_names, (s->n_logfiles + 1) * sizeof *s->logfile_names);
    s->logfiles[s->n_logfiles] = l;
    s->logfile_names[s->n_logfiles++] = xstrdup(name);
    return l;
}

static void add_text(struct steplog *l, char channel, const struct pb_value *v)
{
    if (l != NULL && v != NULL && (v->kind == PB_TEXT || v->kind == PB_BYTES))
        steplog_add(l, channel, v->u.s.data, v->u.s.len);
}

static void on_update(void *arg, const char *key, const struct pb_value *value)
{
    struct step *s = arg;
    if (util_streq(key, "stdout")) {
        add_text(s->stdio, 'o', value);
        if (s->collect && value != NULL && (value->kind == PB_TEXT || value->kind == PB_BYTES))
            buf_add(&s->captured, value->u.s.data, value->u.s.len);
    } else if (util_streq(key, "stderr")) {
        add_text(s->stdio, 'e', value);
    } else if (util_streq(key, "header")) {
        add_text(s->stdio, 'h', value);
    } else if (util_streq(key, "log")) {
        const char *name = pb_str(pb_item(value, 0));
        if (name != NULL) /* Buildbot adds a logfile's text as stdout of its own log */
            add_text(logfile(s, name), 'o', pb_item(value, 1));
    } else if (util_streq(key, "failure_reason")) {
        const char *why = pb_str(value);
        s->timed_out = util_streq(why, "timeout") || util_streq(why, "timeout_without_output");
        s->max_lines = util_streq(why, "max_lines_failure");
    } else if (util_streq(key, "stat") && value != NULL) {
        pb_value_free(s->stat);
        s->stat = pb_value_dup(value);
    } else if (util_streq(key, "files") && value != NULL) {
        json_decref(s->files);
        s->files = json_array();
        for (size_t i = 0; i < pb_len(value); i++)
            if (pb_str(pb_item(value, i)) != NULL)
                json_array_append_new(s->files, json_string(pb_str(pb_item(value, i))));
    } else if (util_streq(key, "rc") && value != NULL && value->kind == PB_INT) {
        s->rc = value->u.i;
        s->have_rc = true;
        char line[64];
        snprintf(line, sizeof line, "program finished with exit code %lld\n", s->rc);
        if (s->stdio != NULL)
            steplog_add(s->stdio, 'h', line, strlen(line));
    }
}

static int decode_rc(const struct step *s)
{
    if (!s->have_rc)
        return RES_FAILURE;
    char key[32];
    snprintf(key, sizeof key, "%lld", s->rc);
    const json_t *v = s->decode_rc != NULL ? json_object_get(s->decode_rc, key) : NULL;
    if (v != NULL)
        return (int)json_integer_value(v);
    return s->decode_rc == NULL && s->rc == 0 ? RES_SUCCESS : RES_FAILURE;
}

static void set_property_from_stdout(struct step *s)
{
    size_t len = s->captured.len;
    const char *text = s->captured.data != NULL ? s->captured.data : "";
    if (s->strip) {
        while (len > 0 && strchr(" \t\n\r\f\v", text[len - 1]) != NULL)
            len--;
        while (len > 0 && strchr(" \t\n\r\f\v", *text) != NULL)
            text++, len--;
    }
    json_t *v = json_stringn(text, len);
    if (v == NULL)
        v = json_string("");
    char *shown = props_str(v), *change = xasprintf("%s: '%s'", s->set_property, shown);
    props_set(&s->b->props, s->set_property, v, "SetPropertyFromCommand Step");
    complete_log(s, "property changes", change);
    free(s->description_done);
    s->description_done = xasprintf("property '%s' set", s->set_property);
    free(shown);
    free(change);
}

static const char lost_text[] =
    "[Failure instance: Traceback (failure with no frames): <class "
    "'twisted.internet.error.ConnectionLost'>: Connection to the other side was lost in a "
    "non-clean fashion.\n]";

static void on_complete(void *arg, const struct pb_value *failure)
{
    struct step *s = arg;
    s->cmd = NULL;
    if (failure != NULL && pb_failure_is(failure, PB_ERR_CONNECTION_LOST)) {
        s->lost = true;
        /* as Buildbot's interrupt, which does nothing for a step a stop interrupted */
        if (!s->interrupted)
            complete_log(s, "cancelled", lost_text);
        step_finish(s, RES_RETRY);
    } else if (s->abort_reason != NULL) {
        step_fail(s, RES_EXCEPTION, s->abort_reason);
    } else if (s->interrupted) {
        step_finish(s, RES_CANCELLED);
    } else if (failure != NULL) {
        char *desc = pb_failure_describe(failure);
        step_fail(s, RES_EXCEPTION, desc);
        free(desc);
    } else {
        s->then(s);
    }
}

static const struct wk_command_ops remote_ops = {on_update, on_complete};

void step_remote(struct step *s, const char *name, struct pb_value *args,
                 void (*then)(struct step *s))
{
    char *cause = NULL;
    s->have_rc = false;
    s->rc = -1;
    buf_reset(&s->captured);
    json_decref(s->files);
    s->files = NULL;
    pb_value_free(s->stat);
    s->stat = NULL;
    s->then = then;
    if (s->stdio == NULL) {
        s->stdio = step_log_open(s, "stdio", 's', &cause);
        if (s->stdio == NULL) {
            pb_value_free(args);
            engine_db_error("adding a log", cause);
            step_fail(s, RES_EXCEPTION, "the stdio log could not be added");
            return;
        }
        s->stdio->on_line = on_line;
        s->stdio->on_line_arg = s;
    }
    s->cmd = wk_command_start(s->b->e->wk, s->b->worker, s->b->builder, name, args, &remote_ops,
                              s->object, s, &cause);
    if (s->cmd == NULL) {
        s->lost = !wk_is_attached(s->b->e->wk, s->b->worker);
        step_fail(s, s->lost ? RES_RETRY : RES_EXCEPTION, cause);
        free(cause);
    }
}

static int set_property(lua_State *L)
{
    /* step:setProperty(name, value[, source]) */
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *name = luaL_checkstring(L, 2);
    luaL_checkany(L, 3);
    const char *source = luaL_optstring(L, 4, "Step");
    lua_getfield(L, 1, "_step");
    struct step *s = lua_touserdata(L, -1);
    if (s == NULL)
        return luaL_error(L, "setProperty: the step is over");
    json_t *v = cfg_lua_to_json(L, 3);
    if (v == NULL)
        return luaL_error(L, "setProperty: '%s' must be a string, number, boolean or table", name);
    props_set(&s->b->props, name, v, source);
    lua_getfield(L, 1, "_values");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, name);
    return 0;
}

/* The step as its evaluateCommand sees it: getProperty, hasProperty, setProperty, name
   and builder (name, tags). */
static void push_step(struct step *s)
{
    lua_State *L = lua_of(s);
    struct render_ctx c = build_render_ctx(s->b);
    props_push_lua(&c);
    lua_pushcfunction(L, set_property);
    lua_setfield(L, -2, "setProperty");
    lua_pushlightuserdata(L, s);
    lua_setfield(L, -2, "_step");
    lua_pushstring(L, s->name);
    lua_setfield(L, -2, "name");
    const struct cfg_builder *bc = cfg_find_builder(s->b->cfg, s->b->builder);
    if (bc != NULL) {
        botmaster_lua_builder(L, bc);
        lua_setfield(L, -2, "builder");
    }
}

/* The step's evaluateCommand(step, cmd), Buildbot's override of it: cmd has rc, didFail
   and results (what Buildbot's own evaluateCommand decides, `results`); the function may
   set properties and returns the step's result (nil keeps `results`).  An error in it is
   the step's EXCEPTION, with the reason in *cause. */
static int evaluate_command(struct step *s, int results, char **cause)
{
    lua_State *L = lua_of(s);
    int top = lua_gettop(L);
    if (push_field(s, "evaluateCommand") != LUA_TFUNCTION) {
        lua_settop(L, top);
        return results;
    }
    push_step(s);
    lua_pushvalue(L, -1); /* kept, to end the step's life in Lua after the call */
    lua_insert(L, top + 1);
    lua_newtable(L);
    lua_pushinteger(L, s->have_rc ? s->rc : -1);
    lua_setfield(L, -2, "rc");
    lua_pushboolean(L, decode_rc(s) == RES_FAILURE);
    lua_setfield(L, -2, "didFail");
    lua_pushinteger(L, results);
    lua_setfield(L, -2, "results");
    char *why = NULL;
    if (cfg_lua_call(L, 2, 1, &why) != 0) {
        util_cause(cause, "evaluateCommand: %s", why);
        free(why);
        results = RES_EXCEPTION;
    } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= RES_SUCCESS &&
               lua_tointeger(L, -1) <= RES_CANCELLED) {
        results = (int)lua_tointeger(L, -1);
    } else if (!lua_isnil(L, -1)) {
        util_cause(cause, "evaluateCommand returned no result");
        results = RES_EXCEPTION;
    }
    lua_pushnil(L);
    lua_setfield(L, top + 1, "_step");
    lua_settop(L, top);
    return results;
}

static void shell_done(struct step *s)
{
    int results = decode_rc(s);
    if (s->max_warn_count >= 0 && s->warn_count > s->max_warn_count)
        results = res_worst(results, RES_FAILURE);
    else if (s->warn_count > 0)
        results = res_worst(results, RES_WARNINGS);
    char *cause = NULL;
    results = evaluate_command(s, results, &cause);
    if (cause != NULL) {
        step_fail(s, results, cause);
        free(cause);
        return;
    }
    if (s->set_property != NULL && results == RES_SUCCESS)
        set_property_from_stdout(s);
    step_finish(s, results);
}

bool step_worker_has(const struct step *s, const char *name, int major, int minor)
{
    struct eng_worker *w = engine_worker(s->b->e, s->b->worker);
    const char *v =
        w != NULL ? pb_str(pb_dict_get(pb_dict_get(w->info, "worker_commands"), name)) : NULL;
    int a = 0, b = 0;
    if (v == NULL || sscanf(v, "%d.%d", &a, &b) < 1)
        return false;
    return a > major || (a == major && b >= minor);
}

static struct pb_value *to_pb(const json_t *v, int depth)
{
    if (json_is_string(v))
        return pb_textn(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return pb_int(json_integer_value(v));
    if (json_is_real(v))
        return pb_float(json_real_value(v));
    if (json_is_boolean(v))
        return pb_bool(json_is_true(v));
    if (json_is_array(v) && depth < 16) {
        struct pb_value *l = pb_list();
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            /* command words are text on the wire, whatever they rendered to */
            if (!json_is_string(x) && depth == 0) {
                char *t = props_str(x);
                pb_append(l, pb_text(t));
                free(t);
            } else {
                pb_append(l, to_pb(x, depth + 1));
            }
        }
        return l;
    }
    if (json_is_object(v) && depth < 16) {
        struct pb_value *d = pb_dict();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            pb_dict_set(d, k, to_pb(x, depth + 1));
        }
        return d;
    }
    return pb_none();
}

static struct pb_value *opt(const json_t *v, struct pb_value *dflt)
{
    if (v == NULL)
        return dflt;
    pb_value_free(dflt);
    return to_pb(v, 1);
}

/* The rendered parameters of a shell command, as the args dict (SPEC 5.8). */
/* decodeRC = { [0] = SUCCESS, [1] = WARNINGS, ... }: {"rc": result}, or NULL. */
static json_t *decode_rc_table(struct step *s)
{
    lua_State *L = lua_of(s);
    json_t *map = NULL;
    if (push_field(s, "decodeRC") == LUA_TTABLE) {
        map = json_object();
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_isinteger(L, -2) && lua_isinteger(L, -1)) {
                char key[32];
                snprintf(key, sizeof key, "%lld", (long long)lua_tointeger(L, -2));
                json_object_set_new(map, key, json_integer(lua_tointeger(L, -1)));
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return map;
}

/* The builder's env (rendered), which a step's own env extends. */
static json_t *builder_env(struct step *s, char **cause)
{
    const struct cfg_builder *bc = cfg_find_builder(s->b->cfg, s->b->builder);
    lua_State *L = lua_of(s);
    json_t *env = NULL;
    int top = lua_gettop(L);
    if (bc != NULL) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, bc->ref);
        if (lua_istable(L, -1) && lua_getfield(L, -1, "env") == LUA_TTABLE) {
            struct render_ctx c = build_render_ctx(s->b);
            env = render(&c, -1, cause);
        }
        lua_settop(L, top);
    }
    if (env != NULL && !json_is_object(env)) {
        json_decref(env);
        env = json_object();
    }
    return env != NULL ? env : (*cause == NULL ? json_object() : NULL);
}

struct pb_value *step_shell_args(struct step *s, const json_t *command,
                                 struct pb_value *sigterm_time, char **cause)
{
    static const char *const keys[] = {
        "workdir",     "env",         "timeout",    "maxTime",      "max_lines",
        "sigtermTime", "usePTY",      "logEnviron", "initialStdin", "interruptSignal",
        "logfiles",    "want_stdout", "want_stderr"};
    json_t *v[UTIL_NELEM(keys)] = {0};
    for (size_t i = 0; i < UTIL_NELEM(keys); i++)
        if (step_render(s, keys[i], &v[i], cause) != 0) {
            for (size_t k = 0; k < i; k++)
                json_decref(v[k]);
            pb_value_free(sigterm_time);
            return NULL;
        }
    json_t *env = builder_env(s, cause);
    if (env == NULL) {
        for (size_t i = 0; i < UTIL_NELEM(keys); i++)
            json_decref(v[i]);
        pb_value_free(sigterm_time);
        return NULL;
    }
    if (json_is_object(v[1]))
        json_object_update(env, v[1]);
    struct pb_value *a = pb_dict();
    pb_dict_set(a, "workdir", opt(v[0], pb_text("build")));
    pb_dict_set(a, "env", to_pb(env, 1));
    json_decref(env);
    pb_dict_set(a, "want_stdout", opt(v[11], pb_bool(true)));
    pb_dict_set(a, "want_stderr", opt(v[12], pb_bool(true)));
    pb_dict_set(a, "logfiles", opt(v[10], pb_dict()));
    json_decref(s->declared_logs);
    s->declared_logs = json_is_object(v[10]) ? json_incref(v[10]) : NULL;
    pb_dict_set(a, "timeout", opt(v[2], pb_int(1200)));
    pb_dict_set(a, "maxTime", opt(v[3], pb_none()));
    if (step_worker_has(s, "shell", 3, 3))
        pb_dict_set(a, "max_lines", opt(v[4], pb_none()));
    pb_dict_set(a, "sigtermTime", opt(v[5], sigterm_time));
    pb_dict_set(a, "usePTY", opt(v[6], pb_bool(false)));
    pb_dict_set(a, "logEnviron", opt(v[7], pb_bool(true)));
    pb_dict_set(a, "initial_stdin", opt(v[8], pb_none()));
    pb_dict_set(a, "interruptSignal", opt(v[9], pb_text("KILL")));
    pb_dict_set(a, "command", to_pb(command, 0));
    json_decref(s->decode_rc);
    s->decode_rc = decode_rc_table(s);
    for (size_t i = 0; i < UTIL_NELEM(keys); i++)
        json_decref(v[i]);
    return a;
}

static int setup_warnings(struct step *s, char **cause)
{
    const struct step_kind *k = kind_of(s->kind);
    lua_State *L = lua_of(s);
    const char *pattern = NULL;
    if (push_field(s, "warningPattern") == LUA_TSTRING)
        pattern = lua_tostring(L, -1);
    else if (k != NULL && k->warnings)
        pattern = DEFAULT_WARNING_PATTERN;
    int rc = 0;
    if (pattern != NULL) {
        int err;
        PCRE2_SIZE at;
        s->warn_re =
            pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &at, NULL);
        if (s->warn_re == NULL) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            rc = util_cause(cause, "warningPattern: %s at offset %zu", (char *)msg, (size_t)at);
        }
    }
    lua_pop(L, 1);
    return rc;
}

static int setup_command(struct step *s, char **cause)
{
    if (git_kind(s->kind) || util_streq(s->kind, "step.trigger") ||
        (transfer_kind(s->kind) && !util_streq(s->kind, "step.master_shell_command")))
        return 0; /* they make their own commands */
    /* a string command the master's shell parses gets its interpolated values quoted */
    bool shell = util_streq(s->kind, "step.master_shell_command");
    if (render_field(s, "command", shell, &s->command, cause) != 0)
        return -1;
    const struct step_kind *k = kind_of(s->kind);
    if (s->command == NULL && k != NULL && k->command[0] != NULL) {
        s->command = json_array();
        for (size_t i = 0; k->command[i] != NULL; i++)
            json_array_append_new(s->command, json_string(k->command[i]));
    }
    if (!json_is_string(s->command) && !json_is_array(s->command))
        return util_cause(cause, "the command must be a string or a list of strings");
    if (util_streq(s->kind, "step.set_property_from_command")) {
        lua_State *L = lua_of(s);
        if (push_field(s, "property") == LUA_TSTRING)
            s->set_property = xstrdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        s->strip = bool_field(s, "strip", true);
        if (s->set_property == NULL)
            return util_cause(cause, "set_property_from_command needs a property");
    }
    return setup_warnings(s, cause);
}

static void run_shell(struct step *s)
{
    char *cause = NULL;
    struct pb_value *args = step_shell_args(s, s->command, pb_none(), &cause);
    if (args == NULL) {
        step_fail(s, RES_EXCEPTION, cause);
        free(cause);
        return;
    }
    s->collect = s->set_property != NULL;
    step_remote(s, "shell", args, shell_done);
}

/* ------------------------------------------------------------ running */

static bool do_step(struct step *s, char **cause)
{
    lua_State *L = lua_of(s);
    int t = push_field(s, "doStepIf");
    bool yes = t != LUA_TBOOLEAN || lua_toboolean(L, -1);
    if (t == LUA_TFUNCTION) {
        struct render_ctx c = build_render_ctx(s->b);
        props_push_lua(&c);
        char *why = NULL;
        if (cfg_lua_call(L, 1, 1, &why) == 0) {
            yes = lua_toboolean(L, -1);
        } else {
            util_cause(cause, "doStepIf: %s", why);
            free(why);
            lua_pushnil(L);
            yes = false;
        }
    }
    lua_pop(L, 1);
    return yes;
}

static int insert_row(struct step *s, char **cause)
{
    long long now = engine_now();
    char *state = step_summary(s, false);
    /* a step with locks has them at locks_acquired_at, once it took them */
    struct db_param p[] = {DB_INT(s->number), DB_TEXT(s->name),
                           DB_INT(s->b->id),  DB_INT(now),
                           DB_TEXT(state),    s->n_lock_access > 0 ? DB_NULL : DB_INT(now)};
    s->started_at = now;
    int rc = db_insert(s->b->e->db,
                       "INSERT INTO steps (number, name, buildid, started_at, complete_at, "
                       "state_string, results, urls_json, hidden, locks_acquired_at) "
                       "VALUES (?, ?, ?, ?, NULL, ?, NULL, '[]', 0, ?)",
                       p, 6, &s->id, cause);
    free(state);
    if (rc == 0) {
        engine_publish(s->b->e, EV_STEP, s->id, EV_NEW);
        engine_publish(s->b->e, EV_STEP, s->id, EV_STARTED);
    }
    return rc;
}

static void run_kind(struct step *s);

/* The step's locks were taken: when, and how long it waited, as Buildbot writes them. */
static void locks_taken(struct step *s)
{
    long long now = engine_now();
    struct db_param p[] = {DB_INT(now), DB_INT(s->id)};
    db_step(s, "UPDATE steps SET locks_acquired_at = ? WHERE id = ?", p, 2);
    struct db_param q[] = {DB_INT(now - s->started_at), DB_INT(s->b->id)};
    db_step(s, "UPDATE builds SET locks_duration_s = locks_duration_s + ? WHERE id = ?", q, 2);
}

static void locks_cb(void *arg)
{
    struct step *s = arg;
    if (!s->waiting_locks)
        return;
    s->waiting_locks = false;
    locks_taken(s);
    run_kind(s);
}

/* BuildStep.acquireLocks: true if the step may run now; else it waits for its locks and
   runs once it has them (or ends, see step_interrupt). */
static bool take_locks(struct step *s)
{
    if (s->n_lock_access == 0)
        return true;
    s->locks = lockreq_new(s->b->e->locks, s->lock_access, s->n_lock_access, s->b->worker,
                           s->b->cfg_version);
    const char *both = lockreq_shared(s->locks, s->b->locks);
    if (both != NULL) {
        char *why = xasprintf("lock claimed by both Step and Build (%s)", both);
        step_fail(s, RES_EXCEPTION, why);
        free(why);
        return false;
    }
    if (!lockreq_acquire(s->locks, locks_cb, s)) {
        log_info("build %lld: step '%s' waits for its locks", s->b->id, s->name);
        s->waiting_locks = true;
        return false;
    }
    locks_taken(s);
    return true;
}

/* Starts the step once its row is in: the step waits for an unavailable database (the
   engine calls step_resume), since everything it writes needs the row's id. */
static void begin(struct step *s)
{
    char *cause = NULL;
    if (insert_row(s, &cause) != 0) {
        if (db_lost(s->b->e->db)) {
            if (!s->waiting_db)
                log_warn("build %lld: step '%s' waits for the database: %s", s->b->id, s->name,
                         cause);
            s->waiting_db = true;
            free(cause);
            return;
        }
        engine_db_error("adding a step", cause);
        s->results = RES_EXCEPTION;
        build_step_done(s);
        return;
    }
    s->waiting_db = false;
    char *setup_error = s->setup_error;
    s->setup_error = NULL;
    if (s->setup_rc != 0) {
        step_fail(s, RES_EXCEPTION, setup_error);
        free(setup_error);
        return;
    }
    bool run = do_step(s, &cause);
    if (cause != NULL) {
        step_fail(s, RES_EXCEPTION, cause);
        free(cause);
    } else if (!run) {
        step_finish(s, RES_SKIPPED);
    } else if (take_locks(s)) {
        run_kind(s);
    }
}

/* What the step's kind runs. */
static void run_kind(struct step *s)
{
    char *cause = NULL;
    if (git_kind(s->kind)) {
        git_run(s);
    } else if (util_streq(s->kind, "step.trigger")) {
        trigger_run(s);
    } else if (transfer_kind(s->kind)) {
        if (transfer_run(s, &cause) != 0) {
            step_fail(s, RES_EXCEPTION, cause);
            free(cause);
        }
    } else {
        run_shell(s);
    }
}

void step_run(struct step *s)
{
    lua_rawgeti(lua_of(s), LUA_REGISTRYINDEX, s->ref);
    cfg_read_locks(lua_of(s), -1, &s->lock_access, &s->n_lock_access);
    lua_pop(lua_of(s), 1);
    s->setup_rc = setup_command(s, &s->setup_error);
    begin(s);
}

void step_resume(struct step *s)
{
    if (s->waiting_db)
        begin(s);
}

void step_interrupt(struct step *s, const char *reason)
{
    if (s->waiting_locks) { /* it gives up its place and ends without its locks */
        s->waiting_locks = false;
        lockreq_free(s->locks);
        s->locks = NULL;
        s->interrupted = true;
        complete_log(s, "cancelled while waiting for locks", reason);
        step_finish(s, RES_CANCELLED);
        return;
    }
    if ((s->cmd == NULL && !s->local && !trigger_waiting(s)) || s->interrupted)
        return;
    s->interrupted = true;
    complete_log(s, "cancelled", reason);
    if (!trigger_interrupt(s) && !transfer_interrupt(s))
        wk_command_interrupt(s->cmd, reason);
}
