/*
 * The `services` key: Buildbot's reporters, read into cfg->reporters:
 * GitHubStatusPush (bbm.reporters.github_status_push), HttpStatusPush and
 * GitHubCommentPush (reporters_push.c reads what is theirs alone; IRC goes into
 * cfg->ircs by irc.c), with
 * BuildStartEndStatusGenerator, BuildRequestGenerator, BuildStatusGenerator and
 * BuildSetStatusGenerator generators (the last two with MessageFormatter, whose templates are
 * compiled here, so that an error in one has its FILE:LINE, or MessageFormatterFunction); bbm.c
 * refuses the
 * other reporters, generators and formatters by name, and this file the
 * parameters of these that bbmaster does not implement, each at the line of
 * its call.  The renderables (context, the formatters' templates) stay in the
 * config's Lua state for the engine to render against a build.
 */
#include "config/internal.h"
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters bbm.c lets through so that they are refused here, with why. */
enum allowed {
    NONE,       /* any value is refused */
    FALSE_ONLY, /* false is what bbmaster does anyway */
    TRUE_ONLY,
};
static const struct {
    const char *kind, *key;
    enum allowed allowed;
    const char *why;
} refused[] = {
    {"reporter.github_status_push", "debug", FALSE_ONLY, "bbmaster's HTTP client has no debug log"},
    {"reporter.github_status_push", "verify", TRUE_ONLY,
     "TLS certificates are always verified against the system's authorities"},
    {"reporter.github_status_push", "startDescription", NONE,
     "Buildbot 3 and later take start_formatter of "
     "bbm.reporters.build_start_end_status_generator"},
    {"reporter.github_status_push", "endDescription", NONE,
     "Buildbot 3 and later take end_formatter of "
     "bbm.reporters.build_start_end_status_generator"},
    {"generator.build_start_end_status", "add_patch", FALSE_ONLY, "GitHub statuses carry no patch"},
    {"formatter.renderable", "subject", NONE, "GitHub statuses have no subject"},
    {"generator.build_status", "add_patch", FALSE_ONLY,
     "patch attachments are not implemented yet"},
    {"generator.build_set_status", "add_patch", FALSE_ONLY,
     "patch attachments are not implemented yet"},
    {"formatter.message", "ctx", NONE, "a Python dict of extra context has no Lua equivalent yet"},
    {"formatter.message", "extra_info_cb", NONE, "extra_info is not implemented"},
    {"formatter.missing_worker", "want_logs_content", FALSE_ONLY,
     "a missing worker's message has no logs"},
    {"formatter.missing_worker", "ctx", NONE,
     "a Python dict of extra context has no Lua equivalent yet"},
    {"reporter.http_status_push", "debug", FALSE_ONLY, "bbmaster's HTTP client has no debug log"},
    {"reporter.http_status_push", "verify", TRUE_ONLY,
     "TLS certificates are always verified against the system's authorities"},
    {"reporter.http_status_push", "cert", NONE, "client certificates are not implemented"},
    {"reporter.http_status_push", "skip_encoding", FALSE_ONLY,
     "the body is always sent as UTF-8 JSON"},
    {"reporter.github_comment_push", "debug", FALSE_ONLY,
     "bbmaster's HTTP client has no debug log"},
    {"reporter.github_comment_push", "verify", TRUE_ONLY,
     "TLS certificates are always verified against the system's authorities"},
    {"reporter.github_comment_push", "context", NONE, "GitHubCommentPush posts no context"},
    {"reporter.github_comment_push", "startDescription", NONE,
     "Buildbot 3 and later take start_formatter of "
     "bbm.reporters.build_start_end_status_generator"},
    {"reporter.github_comment_push", "endDescription", NONE,
     "Buildbot 3 and later take end_formatter of "
     "bbm.reporters.build_start_end_status_generator"},
};

static const char *kind_of(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return NULL;
    lua_getfield(L, idx, CFG_KIND);
    const char *k = lua_tostring(L, -1);
    lua_pop(L, 1);
    return k; /* the string stays referenced by the table */
}

/* How many items the list at `list` holds: 1 when it is one bbm object rather than a list. */
static lua_Integer items_of(lua_State *L, int list)
{
    return kind_of(L, list) != NULL ? 1 : luaL_len(L, list);
}

/* Pushes item `i` of the list at `list` (the object itself when it is not a list). */
static void push_item(lua_State *L, int list, lua_Integer i)
{
    if (kind_of(L, list) != NULL)
        lua_pushvalue(L, list);
    else
        lua_geti(L, list, i);
}

static void where(lua_State *L, int idx, const char *path, int def_line, char *file, size_t size,
                  int *line)
{
    snprintf(file, size, "%s", path);
    *line = def_line;
    if (!lua_istable(L, idx))
        return;
    if (lua_getfield(L, idx, CFG_FILE) == LUA_TSTRING)
        snprintf(file, size, "%s", lua_tostring(L, -1));
    if (lua_getfield(L, idx, CFG_LINE) == LUA_TNUMBER)
        *line = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
}

static void check_refused(lua_State *L, int idx, const char *kind, const char *file, int line)
{
    for (size_t i = 0; i < UTIL_NELEM(refused); i++) {
        if (strcmp(refused[i].kind, kind) != 0)
            continue;
        int t = lua_getfield(L, idx, refused[i].key);
        bool b = t == LUA_TBOOLEAN && lua_toboolean(L, -1);
        bool ok = t == LUA_TNIL || (t == LUA_TBOOLEAN && refused[i].allowed == FALSE_ONLY && !b) ||
                  (t == LUA_TBOOLEAN && refused[i].allowed == TRUE_ONLY && b);
        if (!ok)
            cfg_error(L, file, line, "%s: '%s' is not implemented by bbmaster: %s",
                      cfg_kind_display(kind), refused[i].key, refused[i].why);
        lua_pop(L, 1);
    }
}

/* A string or list of strings at field; an empty list given is a vector of none, not
   NULL: nothing matches it, as in Buildbot. */
static char **strings(lua_State *L, int idx, const char *field, size_t *n)
{
    return cfg_string_list(L, idx, field, n, true);
}

/* A start_formatter or end_formatter: absent, or a bbm.reporters.message_formatter_renderable. */
static void check_formatter(lua_State *L, int gen, const char *ctor, const char *key,
                            const char *file, int line)
{
    if (lua_getfield(L, gen, key) != LUA_TNIL) {
        const char *k = kind_of(L, -1);
        if (k == NULL || strcmp(k, "formatter.renderable") != 0) {
            if (k == NULL || strcmp(k, "unimplemented") != 0)
                cfg_error(L, file, line,
                          "%s: '%s' must be a "
                          "bbm.reporters.message_formatter_renderable{template = ...}",
                          ctor, key);
        } else {
            char ffile[256];
            int fline;
            where(L, lua_gettop(L), file, line, ffile, sizeof ffile, &fline);
            check_refused(L, lua_gettop(L), k, ffile, fline);
        }
    }
    lua_pop(L, 1);
}

static struct rep_tmpl *compile_as(lua_State *L, const char *ctor, const char *src, const char *key,
                                   const char *file, int line)
{
    char *cause = NULL;
    struct rep_tmpl *t = rep_tmpl_compile(src, &cause);
    if (t == NULL) {
        cfg_error(L, file, line, "%s: '%s', %s", ctor, key, cause);
        free(cause);
    }
    return t;
}

static struct rep_tmpl *compile(lua_State *L, const char *src, const char *key, const char *file,
                                int line)
{
    return compile_as(L, "bbm.reporters.message_formatter", src, key, file, line);
}

/* A bbm.reporters.message_formatter at the top of the stack, or Buildbot's default (nil). */
static struct cfg_formatter *read_formatter(lua_State *L, int idx, const char *file, int line)
{
    struct cfg_formatter *f = xcalloc(1, sizeof *f);
    f->want_properties = true;
    if (idx == 0) {
        f->default_body = f->want_steps = f->want_logs = true;
        f->body = rep_tmpl_compile(rep_default_body_plain, &(char *){NULL});
        f->subject = rep_tmpl_compile(rep_default_subject, &(char *){NULL});
        return f;
    }
    char ffile[256];
    int fline;
    where(L, idx, file, line, ffile, sizeof ffile, &fline);
    check_refused(L, idx, "formatter.message", ffile, fline);
    if (lua_getfield(L, idx, "template_type") == LUA_TSTRING) {
        const char *tt = lua_tostring(L, -1);
        f->html = strcmp(tt, "html") == 0;
        if (!f->html && strcmp(tt, "plain") != 0)
            cfg_error(L, ffile, fline,
                      "bbm.reporters.message_formatter: template_type \"%s\" is not implemented "
                      "(\"plain\" or \"html\")",
                      tt);
    }
    static const char *const flags[] = {"want_properties", "want_steps", "want_logs"};
    bool *vals[] = {&f->want_properties, &f->want_steps, &f->want_logs};
    for (size_t i = 0; i < UTIL_NELEM(flags); i++) {
        if (lua_getfield(L, idx, flags[i]) == LUA_TBOOLEAN)
            *vals[i] = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    cfg_read_logs_content(L, idx, f, ffile, fline);
    f->additional_context = lua_getfield(L, idx, "build_additional_context") == LUA_TFUNCTION;
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "template") == LUA_TSTRING) {
        f->body = compile(L, lua_tostring(L, -1), "template", ffile, fline);
    } else {
        f->default_body = f->want_steps = f->want_logs = true; /* as Buildbot forces them */
        f->body = rep_tmpl_compile(f->html ? rep_default_body_html : rep_default_body_plain,
                                   &(char *){NULL});
    }
    if (lua_getfield(L, idx, "subject") == LUA_TSTRING)
        f->subject = compile(L, lua_tostring(L, -1), "subject", ffile, fline);
    else
        f->subject = rep_tmpl_compile(rep_default_subject, &(char *){NULL});
    lua_pop(L, 3);
    return f;
}

/* BuildStatusGenerator's mode: a string (with Buildbot's shortcuts) or a list. */
static void read_modes(lua_State *L, int idx, struct cfg_generator *g, const char *ctor,
                       const char *file, int line)
{
    static const char *const def[] = {"failing", "passing", "warnings"};
    int t = lua_getfield(L, idx, "mode");
    lua_pop(L, 1);
    g->mode_names = strings(L, idx, "mode", &g->n_mode_names);
    if (g->mode_names == NULL) {
        g->mode_names = xcalloc(UTIL_NELEM(def), sizeof *g->mode_names);
        for (size_t i = 0; i < UTIL_NELEM(def); i++)
            g->mode_names[g->n_mode_names++] = xstrdup(def[i]);
    }
    char *cause = NULL;
    if (rep_modes_parse((const char *const *)g->mode_names, g->n_mode_names, t == LUA_TSTRING,
                        &g->modes, &cause) < 0) {
        cfg_error(L, file, line, "%s: %s", ctor, cause);
        free(cause);
    }
}

/* add_logs: false, true (every log) or a list of log names, "name" or "step.name"
   (Buildbot's should_attach_log). */
static void read_add_logs(lua_State *L, int idx, struct cfg_generator *g, const char *ctor,
                          const char *file, int line)
{
    int t = lua_getfield(L, idx, "add_logs");
    bool ok = t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TTABLE;
    if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n && ok; i++) {
            ok = lua_geti(L, -1, i) == LUA_TSTRING;
            lua_pop(L, 1);
        }
    }
    g->add_logs = t != LUA_TNIL;
    g->logs_all = t == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!ok)
        cfg_error(L, file, line, "%s: 'add_logs' must be true, false or a list of log names", ctor);
    if (t == LUA_TTABLE)
        g->log_names = strings(L, idx, "add_logs", &g->n_log_names);
}

/* Buildbot reads the contents of the logs add_logs names when it is given, else of those
   the formatter's want_logs_content names (and a mail attaches what was read): add_logs
   takes the formatter's place. */
static void add_logs_to_formatter(struct cfg_generator *g)
{
    struct cfg_formatter *f = g->fmt;
    if (!g->add_logs || f == NULL)
        return;
    for (size_t i = 0; i < f->n_logs_content; i++)
        free(f->logs_content[i]);
    free(f->logs_content);
    f->logs_content = NULL;
    f->n_logs_content = 0;
    f->logs_content_all = g->logs_all;
    if (g->log_names != NULL) {
        f->logs_content = xcalloc(g->n_log_names + 1, sizeof *f->logs_content);
        for (size_t i = 0; i < g->n_log_names; i++)
            f->logs_content[f->n_logs_content++] = xstrdup(g->log_names[i]);
    }
    if (f->logs_content_all || f->logs_content != NULL)
        f->want_steps = f->want_logs = true;
}

/* BuildStatusGenerator's parameters, and BuildSetStatusGenerator's (the same but report_new,
   which bbm.c does not let through for it). */
static void read_status_generator(lua_State *L, int idx, struct cfg_generator *g, const char *ctor,
                                  const char *file, int line)
{
    read_modes(L, idx, g, ctor, file, line);
    lua_getfield(L, idx, "report_new");
    g->report_new = lua_toboolean(L, -1);
    lua_pop(L, 1);
    read_add_logs(L, idx, g, ctor, file, line);
    lua_getfield(L, idx, "message_formatter");
    const char *k = kind_of(L, -1);
    if (lua_isnil(L, -1)) {
        g->fmt = read_formatter(L, 0, file, line);
    } else if (k != NULL && strcmp(k, "formatter.message") == 0) {
        g->fmt = read_formatter(L, lua_gettop(L), file, line);
    } else if (k != NULL && strcmp(k, "formatter.function") == 0) {
        char ffile[256];
        int fline;
        where(L, lua_gettop(L), file, line, ffile, sizeof ffile, &fline);
        check_refused(L, lua_gettop(L), k, ffile, fline);
        g->fmt = cfg_read_function_formatter(L, lua_gettop(L), ffile, fline);
    } else if (k != NULL && strcmp(k, "formatter.renderable") == 0) {
        char ffile[256];
        int fline;
        where(L, lua_gettop(L), file, line, ffile, sizeof ffile, &fline);
        check_refused(L, lua_gettop(L), k, ffile, fline);
    } else if (k == NULL || strcmp(k, "unimplemented") != 0) {
        cfg_error(L, file, line,
                  "%s: 'message_formatter' must be a "
                  "bbm.reporters.message_formatter{...}, "
                  "bbm.reporters.message_formatter_function{...} or "
                  "bbm.reporters.message_formatter_renderable{...}",
                  ctor);
    }
    lua_pop(L, 1);
    add_logs_to_formatter(g);
}

#define MISSING_FMT "bbm.reporters.message_formatter_missing_worker"

/* A bbm.reporters.message_formatter_missing_worker at `idx`, or Buildbot's default (idx 0):
   MessageFormatterMissingWorker's templates. */
static struct cfg_formatter *read_missing_formatter(lua_State *L, int idx, const char *file,
                                                    int line)
{
    struct cfg_formatter *f = xcalloc(1, sizeof *f);
    f->want_properties = true;
    char ffile[256];
    int fline = line;
    snprintf(ffile, sizeof ffile, "%s", file);
    if (idx != 0) {
        where(L, idx, file, line, ffile, sizeof ffile, &fline);
        check_refused(L, idx, "formatter.missing_worker", ffile, fline);
    }
    if (idx != 0 && lua_getfield(L, idx, "template_type") == LUA_TSTRING) {
        const char *tt = lua_tostring(L, -1);
        f->html = strcmp(tt, "html") == 0;
        if (!f->html && strcmp(tt, "plain") != 0)
            cfg_error(L, ffile, fline,
                      "MessageFormatterMissingWorker: template type %s is not known to pick "
                      "default template",
                      tt);
    }
    if (idx != 0)
        lua_pop(L, 1);
    if (idx != 0 && lua_getfield(L, idx, "template") == LUA_TSTRING)
        f->body = compile_as(L, MISSING_FMT, lua_tostring(L, -1), "template", ffile, fline);
    else
        f->body = rep_tmpl_compile(f->html ? rep_missing_body_html : rep_missing_body_plain,
                                   &(char *){NULL});
    if (idx != 0 && lua_getfield(L, idx, "subject") == LUA_TSTRING)
        f->subject = compile_as(L, MISSING_FMT, lua_tostring(L, -1), "subject", ffile, fline);
    else
        f->subject = rep_tmpl_compile(rep_missing_subject, &(char *){NULL});
    if (idx != 0)
        lua_pop(L, 2);
    return f;
}

/* WorkerMissingGenerator: workers "all" (the default) or a list of names, and a
   MessageFormatterMissingWorker. */
static void read_missing_generator(lua_State *L, int idx, struct cfg_generator *g, const char *file,
                                   int line)
{
    g->kind = CFG_GEN_MISSING;
    int t = lua_getfield(L, idx, "workers");
    bool all = t == LUA_TNIL || (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "all") == 0);
    lua_pop(L, 1);
    if (t == LUA_TSTRING && !all)
        cfg_error(L, file, line,
                  "bbm.reporters.worker_missing_generator: workers must be 'all', or list of "
                  "worker names");
    if (t == LUA_TTABLE)
        g->workers = strings(L, idx, "workers", &g->n_workers);
    lua_getfield(L, idx, "message_formatter");
    const char *k = kind_of(L, -1);
    if (lua_isnil(L, -1))
        g->fmt = read_missing_formatter(L, 0, file, line);
    else if (k != NULL && strcmp(k, "formatter.missing_worker") == 0)
        g->fmt = read_missing_formatter(L, lua_gettop(L), file, line);
    else if (k == NULL || strcmp(k, "unimplemented") != 0)
        cfg_error(L, file, line,
                  "bbm.reporters.worker_missing_generator: 'message_formatter' must be a "
                  "bbm.reporters.message_formatter_missing_worker{...}");
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    g->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void read_generator(lua_State *L, int idx, struct cfg_generator *g, const char *kind,
                           const char *file, int line)
{
    if (strcmp(kind, "generator.worker_missing") == 0) {
        read_missing_generator(L, idx, g, file, line);
        return;
    }
    const char *ctor = cfg_kind_display(kind);
    g->request = strcmp(kind, "generator.build_request") == 0;
    g->kind = g->request ? CFG_GEN_REQUEST : CFG_GEN_START_END;
    check_refused(L, idx, kind, file, line);
    if (strcmp(kind, "generator.build_status") == 0 ||
        strcmp(kind, "generator.build_set_status") == 0) {
        g->kind =
            strcmp(kind, "generator.build_set_status") == 0 ? CFG_GEN_BUILDSET : CFG_GEN_STATUS;
        read_status_generator(L, idx, g, ctor, file, line);
    } else if (g->request) {
        check_formatter(L, idx, ctor, "formatter", file, line);
    } else {
        check_formatter(L, idx, ctor, "start_formatter", file, line);
        check_formatter(L, idx, ctor, "end_formatter", file, line);
    }
    g->builders = strings(L, idx, "builders", &g->n_builders);
    g->tags = strings(L, idx, "tags", &g->n_tags);
    g->schedulers = strings(L, idx, "schedulers", &g->n_schedulers);
    g->branches = strings(L, idx, "branches", &g->n_branches);
    if (g->builders != NULL && g->tags != NULL)
        cfg_error(L, file, line, "%s: Please specify only builders or tags to include - not both.",
                  ctor);
    lua_pushvalue(L, idx);
    g->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Buildbot 4.3's default generators of GitHubStatusPush: a BuildRequestGenerator ("Build
   pending.") and a BuildStartEndStatusGenerator ("Build started.", "Build done."), for every
   builder. */
static void default_generators(struct cfg_reporter *rep)
{
    rep->generators = xcalloc(2, sizeof *rep->generators);
    rep->generators[0] =
        (struct cfg_generator){.request = true, .kind = CFG_GEN_REQUEST, .ref = LUA_NOREF};
    rep->generators[1] =
        (struct cfg_generator){.request = false, .kind = CFG_GEN_START_END, .ref = LUA_NOREF};
    rep->n_generators = 2;
}

static bool is_generator(const char *kind)
{
    return kind != NULL && (strcmp(kind, "generator.build_start_end_status") == 0 ||
                            strcmp(kind, "generator.build_request") == 0 ||
                            strcmp(kind, "generator.build_status") == 0 ||
                            strcmp(kind, "generator.build_set_status") == 0 ||
                            strcmp(kind, "generator.worker_missing") == 0);
}

/* The generators a mail can be made of. */
static bool mail_generator(const char *kind)
{
    return strcmp(kind, "generator.build_status") == 0 ||
           strcmp(kind, "generator.build_set_status") == 0 ||
           strcmp(kind, "generator.worker_missing") == 0;
}

static void read_generators(lua_State *L, int idx, struct cfg_reporter *rep)
{
    if (lua_getfield(L, idx, "generators") == LUA_TNIL) {
        lua_pop(L, 1);
        if (rep->kind == CFG_REP_GITHUB_STATUS)
            default_generators(rep);
        else
            cfg_push_default_generators(rep);
        return;
    }
    int list = lua_gettop(L);
    lua_Integer n = items_of(L, list);
    rep->generators = xcalloc(n > 0 ? (size_t)n : 1, sizeof *rep->generators);
    for (lua_Integer i = 1; i <= n; i++) {
        push_item(L, list, i);
        const char *k = kind_of(L, -1);
        char file[256];
        int line;
        where(L, lua_gettop(L), rep->file, rep->line, file, sizeof file, &line);
        if (rep->kind == CFG_REP_MAIL && is_generator(k) && !mail_generator(k))
            cfg_error(L, file, line,
                      "bbm.reporters.mail_notifier: %s is not implemented for mail yet (give "
                      "bbm.reporters.build_status_generator, "
                      "bbm.reporters.build_set_status_generator or "
                      "bbm.reporters.worker_missing_generator)",
                      cfg_kind_display(k));
        else if (rep->kind != CFG_REP_MAIL && is_generator(k) &&
                 strcmp(k, "generator.build_set_status") == 0)
            cfg_error(L, file, line,
                      "%s: %s is only implemented for bbm.reporters.mail_notifier yet",
                      cfg_kind_display(kind_of(L, idx)), cfg_kind_display(k));
        else if (rep->kind != CFG_REP_MAIL && is_generator(k) &&
                 strcmp(k, "generator.worker_missing") == 0)
            /* its report's body is bytes and it has no builds: Buildbot's HttpStatusPush
               and GitHub reporters raise on it */
            cfg_error(L, file, line,
                      "%s: %s reports only through bbm.reporters.mail_notifier (Buildbot's "
                      "other reporters fail on its reports; IRC has the 'worker' event)",
                      cfg_kind_display(kind_of(L, idx)), cfg_kind_display(k));
        else if (is_generator(k))
            read_generator(L, lua_gettop(L), &rep->generators[rep->n_generators++], k, file, line);
        else if (k == NULL || strcmp(k, "unimplemented") != 0)
            cfg_error(L, rep->file, rep->line,
                      "%s: generators[%lld] is not a "
                      "bbm.reporters.build_start_end_status_generator{...}, "
                      "bbm.reporters.build_request_generator{...}, "
                      "bbm.reporters.build_status_generator{...}, "
                      "bbm.reporters.build_set_status_generator{...} or "
                      "bbm.reporters.worker_missing_generator{...}",
                      cfg_kind_display(kind_of(L, idx)), (long long)i);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* A header's one line of ASCII: fromaddr goes into From as it is (Buildbot does not check
   it; a mail that Python could not encode would not be sent). */
static bool header_line(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80 || *s == '\r' || *s == '\n')
            return false;
    return true;
}

static char *opt_string(lua_State *L, int idx, const char *key, const char *def)
{
    lua_getfield(L, idx, key);
    char *v = lua_type(L, -1) == LUA_TSTRING ? xstrdup(lua_tostring(L, -1))
              : def != NULL                  ? xstrdup(def)
                                             : NULL;
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int idx, const char *key, bool def)
{
    int t = lua_getfield(L, idx, key);
    bool v = t == LUA_TBOOLEAN ? lua_toboolean(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* extraHeaders: {Name = value}, each value a string or a renderable (bbm.interpolate, a
   function) rendered against the build's properties when a mail is made.  The names are
   kept sorted (a Lua table has no order). */
static void read_headers(lua_State *L, int idx, struct cfg_mail *m, const char *file, int line)
{
    int t = lua_getfield(L, idx, "extraHeaders");
    if (t != LUA_TNIL && t != LUA_TTABLE)
        cfg_error(L, file, line, "bbm.reporters.mail_notifier: extraHeaders must be a dictionary");
    if (t == LUA_TTABLE) {
        size_t cap = 0;
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            int vt = lua_type(L, -1);
            bool name_ok = k != NULL && k[0] != '\0';
            for (const char *c = k; name_ok && *c != '\0'; c++)
                name_ok = *c > ' ' && *c < 0x7f && *c != ':';
            if (!name_ok || (vt != LUA_TSTRING && vt != LUA_TTABLE && vt != LUA_TFUNCTION) ||
                (vt == LUA_TSTRING && strpbrk(lua_tostring(L, -1), "\r\n") != NULL))
                cfg_error(L, file, line,
                          "bbm.reporters.mail_notifier: extraHeaders must map header names to "
                          "one-line strings or renderables");
            m->header_names =
                xgrow(m->header_names, &cap, m->n_headers + 1, sizeof *m->header_names);
            m->header_names[m->n_headers++] = xstrdup(k);
            lua_pop(L, 1);
        }
        if (m->n_headers > 0)
            qsort(m->header_names, m->n_headers, sizeof *m->header_names, by_name);
    }
    lua_pop(L, 1);
}

static struct cfg_mail *read_mail(lua_State *L, int idx, const char *file, int line)
{
    struct cfg_mail *m = xcalloc(1, sizeof *m);
    m->fromaddr = opt_string(L, idx, "fromaddr", "");
    m->relayhost = opt_string(L, idx, "relayhost", "localhost");
    m->smtp_user = opt_string(L, idx, "smtpUser", NULL);
    m->smtp_password = opt_string(L, idx, "smtpPassword", NULL);
    m->lookup = opt_string(L, idx, "lookup", NULL);
    m->use_tls = opt_bool(L, idx, "useTls", false);
    m->use_smtps = opt_bool(L, idx, "useSmtps", false);
    m->send_to_interested = opt_bool(L, idx, "sendToInterestedUsers", true);
    m->dump = opt_bool(L, idx, "dumpMailsToLog", false);
    lua_getfield(L, idx, "smtpPort");
    m->smtp_port = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 25;
    lua_pop(L, 1);
    if (m->smtp_port < 1 || m->smtp_port > 65535)
        cfg_error(L, file, line, "bbm.reporters.mail_notifier: smtpPort %d is not a port",
                  m->smtp_port);
    if (strpbrk(m->relayhost, "/@:?# ") != NULL || m->relayhost[0] == '\0')
        cfg_error(L, file, line, "bbm.reporters.mail_notifier: relayhost \"%s\" is not a host name",
                  m->relayhost);
    if (m->lookup != NULL && strchr(m->lookup, '@') != NULL)
        cfg_error(L, file, line, "bbm.reporters.mail_notifier: lookup is a domain, without '@'");
    if (m->fromaddr[0] == '\0' || !header_line(m->fromaddr))
        cfg_error(L, file, line,
                  "bbm.reporters.mail_notifier: fromaddr must be one line of ASCII text");
    m->extra_recipients = strings(L, idx, "extraRecipients", &m->n_extra_recipients);
    for (size_t i = 0; i < m->n_extra_recipients; i++)
        if (!rep_mail_valid(m->extra_recipients[i]))
            cfg_error(L, file, line, "extra recipient %s is not a valid email",
                      m->extra_recipients[i]);
    read_headers(L, idx, m, file, line);
    if (lua_getfield(L, idx, "generators") == LUA_TNIL)
        cfg_error(L, file, line,
                  "bbm.reporters.mail_notifier: give generators (Buildbot's default, "
                  "BuildSetStatusGenerator with add_patch=True and WorkerMissingGenerator, "
                  "needs patch attachments, which are not implemented yet)");
    lua_pop(L, 1);
    return m;
}

static void free_mail(struct cfg_mail *m)
{
    if (m == NULL)
        return;
    free(m->fromaddr);
    free(m->relayhost);
    free(m->smtp_user);
    free(m->smtp_password);
    free(m->lookup);
    for (size_t i = 0; i < m->n_extra_recipients; i++)
        free(m->extra_recipients[i]);
    free(m->extra_recipients);
    for (size_t i = 0; i < m->n_headers; i++)
        free(m->header_names[i]);
    free(m->header_names);
    free(m);
}

/* token, baseURL and verbose of GitHubStatusPush and GitHubCommentPush. */
static void read_github(lua_State *L, int idx, struct cfg_reporter *rep, const char *file, int line)
{
    lua_getfield(L, idx, "token");
    rep->token = xstrdup(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
    lua_getfield(L, idx, "baseURL");
    const char *base = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : CFG_GITHUB_API;
    size_t len = strlen(base);
    if (len > 0 && base[len - 1] == '/')
        len--; /* Buildbot drops one trailing '/' */
    rep->base_url = xasprintf("%.*s", (int)len, base);
    if (strncmp(rep->base_url, "http://", 7) != 0 && strncmp(rep->base_url, "https://", 8) != 0)
        cfg_error(L, file, line, "%s: 'baseURL' must be an http:// or https:// URL, not \"%s\"",
                  rep->kind == CFG_REP_GITHUB_STATUS ? "bbm.reporters.github_status_push"
                                                     : "bbm.reporters.github_comment_push",
                  base);
    lua_getfield(L, idx, "verbose");
    rep->verbose = lua_toboolean(L, -1);
    lua_pop(L, 3);
}

/* MailNotifier: its parameters in rep->mail; no token or URL (the outbox makes the relay's). */
static void read_mail_reporter(lua_State *L, int idx, struct cfg_reporter *rep, const char *file,
                               int line)
{
    rep->mail = read_mail(L, idx, file, line);
    rep->token = xstrdup("");
    rep->base_url = xstrdup("");
}

static void read_reporter(lua_State *L, int idx, struct cfg *cfg, const char *kind,
                          const char *file, int line)
{
    static const char *const names[] = {"GitHubStatusPush", "HttpStatusPush", "GitHubCommentPush",
                                        "MailNotifier"};
    struct cfg_reporter *rep = &cfg->reporters[cfg->n_reporters++];
    rep->file = xstrdup(file);
    rep->line = line;
    rep->kind = strcmp(kind, "reporter.http_status_push") == 0      ? CFG_REP_HTTP
                : strcmp(kind, "reporter.github_comment_push") == 0 ? CFG_REP_GITHUB_COMMENT
                : strcmp(kind, "reporter.mail_notifier") == 0       ? CFG_REP_MAIL
                                                                    : CFG_REP_GITHUB_STATUS;
    check_refused(L, idx, kind, file, line);
    if (rep->kind == CFG_REP_HTTP)
        cfg_read_http_push(L, idx, rep, file, line);
    else if (rep->kind == CFG_REP_MAIL)
        read_mail_reporter(L, idx, rep, file, line);
    else
        read_github(L, idx, rep, file, line);
    lua_getfield(L, idx, "name");
    rep->name = xstrdup(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : names[rep->kind]);
    lua_pop(L, 1);
    for (size_t i = 0; i + 1 < cfg->n_reporters; i++)
        if (strcmp(cfg->reporters[i].name, rep->name) == 0)
            cfg_error(L, file, line,
                      "services: a second reporter named '%s' (the first is at %s:%d); give "
                      "one a name=",
                      rep->name, cfg->reporters[i].file, cfg->reporters[i].line);
    read_generators(L, idx, rep);
    lua_pushvalue(L, idx);
    rep->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void cfg_read_services(lua_State *L, struct cfg *cfg, int top, const char *path, int key_line)
{
    int t = lua_getfield(L, top, "services");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != LUA_TTABLE) {
        cfg_error(L, path, key_line, "'services' must be a list, not %s", luaL_typename(L, -1));
        lua_pop(L, 1);
        return;
    }
    int list = lua_gettop(L);
    lua_Integer n = items_of(L, list);
    if (n > CFG_REPORTERS_MAX) {
        cfg_error(L, path, key_line, "services: more than %d reporters", CFG_REPORTERS_MAX);
        n = CFG_REPORTERS_MAX;
    }
    cfg->reporters = xcalloc(n > 0 ? (size_t)n : 1, sizeof *cfg->reporters);
    cfg->ircs = xcalloc(n > 0 ? (size_t)n : 1, sizeof *cfg->ircs);
    for (lua_Integer i = 1; i <= n; i++) {
        push_item(L, list, i);
        const char *k = kind_of(L, -1);
        char file[256];
        int line;
        where(L, lua_gettop(L), path, key_line, file, sizeof file, &line);
        if (k != NULL && strcmp(k, "reporter.irc") == 0)
            cfg_read_irc(L, lua_gettop(L), cfg, file, line);
        else if (k != NULL && strncmp(k, "reporter.", 9) == 0)
            read_reporter(L, lua_gettop(L), cfg, k, file, line);
        else if (k == NULL || strcmp(k, "unimplemented") != 0)
            cfg_error(L, path, key_line,
                      "services[%lld] is not a reporter (bbm.reporters.github_status_push{...}, "
                      "bbm.reporters.http_status_push{...}, "
                      "bbm.reporters.github_comment_push{...}, bbm.reporters.irc{...}, "
                      "bbm.reporters.mail_notifier{...})",
                      (long long)i);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

void cfg_free_reporters(struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_reporters; i++) {
        struct cfg_reporter *r = &cfg->reporters[i];
        for (size_t j = 0; j < r->n_generators; j++) {
            struct cfg_generator *g = &r->generators[j];
            char **lists[] = {g->builders, g->tags, g->schedulers, g->branches, g->workers};
            size_t ns[] = {g->n_builders, g->n_tags, g->n_schedulers, g->n_branches, g->n_workers};
            for (size_t k = 0; k < UTIL_NELEM(lists); k++) {
                for (size_t m = 0; m < ns[k]; m++)
                    free(lists[k][m]);
                free(lists[k]);
            }
            for (size_t m = 0; m < g->n_log_names; m++)
                free(g->log_names[m]);
            free(g->log_names);
            for (size_t m = 0; m < g->n_mode_names; m++)
                free(g->mode_names[m]);
            free(g->mode_names);
            if (g->fmt != NULL) {
                for (size_t m = 0; m < g->fmt->n_logs_content; m++)
                    free(g->fmt->logs_content[m]);
                free(g->fmt->logs_content);
                rep_tmpl_free(g->fmt->body);
                rep_tmpl_free(g->fmt->subject);
                free(g->fmt);
            }
        }
        free(r->generators);
        for (size_t j = 0; r->headers != NULL && r->headers[j] != NULL; j++)
            free(r->headers[j]);
        free(r->headers);
        free_mail(r->mail);
        free(r->name);
        free(r->token);
        free(r->base_url);
        free(r->file);
    }
    cfg_free_irc(cfg);
    free(cfg->reporters);
    cfg->reporters = NULL;
    cfg->n_reporters = 0;
}
