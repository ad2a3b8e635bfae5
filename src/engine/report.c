/*
 * What the reporters hear of builds: Buildbot's BuildStartEndStatusGenerator and
 * BuildRequestGenerator for GitHubStatusPush.  As a build starts (builds new)
 * and as it finishes (builds finished), and as a build request is made
 * (buildrequests new) or cancelled before it started (buildrequests cancel),
 * each configured reporter runs its generators of that event in order;
 * the first that wants the build (its builders, tags, schedulers and branches
 * filters, as is_message_needed_by_props) gives the description (its
 * start_formatter or end_formatter rendered against the build's properties,
 * "Build started." and "Build done." by default; a request's formatter, "Build
 * pending.", against the properties known before a build starts), and one commit
 * status is
 * stored in the outbox for each source stamp with a GitHub repository and a
 * revision, as GitHubStatusPush.sendMessage does.  Rendering happens here,
 * on the engine's thread, because the renderables live in the configuration's
 * Lua state; delivery is the outbox's (src/reporters), which never waits.
 */
#include <ctype.h>
#include <jansson.h>
#include <lauxlib.h>
#include <string.h>
#include <time.h>

#include "engine/internal.h"
#include "reporters/reporters.h"

static bool listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static const char *prop_text(const struct build *b, const char *name)
{
    const json_t *v = props_get(&b->props, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* is_message_needed_by_props: a list given (even empty) must contain the build's value. */
static bool wanted(const struct build *b, const struct cfg_generator *g,
                   const struct cfg_builder *bc)
{
    if (g->builders != NULL && !listed(g->builders, g->n_builders, b->builder))
        return false;
    if (g->schedulers != NULL && !listed(g->schedulers, g->n_schedulers, prop_text(b, "scheduler")))
        return false;
    if (g->branches != NULL && !listed(g->branches, g->n_branches, prop_text(b, "branch")))
        return false;
    if (g->tags != NULL) {
        bool any = false;
        for (size_t i = 0; bc != NULL && i < bc->n_tags && !any; i++)
            any = listed(g->tags, g->n_tags, bc->tags[i]);
        if (!any)
            return false;
    }
    return true;
}

/* Renders field `key` of the table `ref` (or, for a formatter, its template) as text; `def`
   when it is absent.  NULL with *cause when rendering failed. */
static char *render_field(struct build *b, lua_State *L, int ref, const char *key, const char *def,
                          char **cause)
{
    if (ref == LUA_NOREF) /* one of Buildbot's default generators */
        return xstrdup(def);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    int t = lua_getfield(L, -1, key);
    if (t == LUA_TTABLE && strcmp(key, "context") != 0) {
        lua_getfield(L, -1, "template"); /* a message_formatter_renderable */
        lua_remove(L, -2);
        t = lua_type(L, -1);
    }
    char *text = NULL;
    if (t == LUA_TNIL) {
        text = xstrdup(def);
    } else {
        struct render_ctx c = build_render_ctx(b);
        c.L = L;
        json_t *v = render(&c, lua_gettop(L), cause);
        if (v != NULL)
            text = json_is_string(v) ? xstrdup(json_string_value(v)) : props_str(v);
        json_decref(v);
    }
    lua_pop(L, 2);
    return text;
}

static const char *state_of(const struct build *b, bool complete)
{
    if (!complete)
        return "pending";
    switch (b->results) {
    case RES_SUCCESS:
    case RES_WARNINGS:
    case RES_SKIPPED:
        return "success";
    case RES_FAILURE:
        return "failure";
    case RES_RETRY:
        return "pending";
    default: /* EXCEPTION, CANCELLED */
        return "error";
    }
}

static const char *ss_field(const json_t *ss, const char *key)
{
    const json_t *v = json_object_get(ss, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* What is reported: a build that started or finished, or a build request (a partial build
   with the properties known before it starts) that was made or cancelled. */
struct event {
    struct build *b;
    const char *state; /* the build's state_string */
    bool request;      /* BuildRequestGenerator's events, else BuildStartEndStatusGenerator's */
    bool complete;     /* finished, or cancelled */
    char what[48];     /* "build 12", "build request 7": for the log */
    char *url;         /* target_url */
};

/* One status per source stamp that names a GitHub repository and has a revision. */
static void post_statuses(const struct event *ev, const struct cfg_reporter *rc,
                          struct rep_status *st)
{
    size_t i;
    json_t *ss;
    json_array_foreach(ev->b->sourcestamps, i, ss)
    {
        char owner[256], repo[256];
        const char *sha = ss_field(ss, "revision");
        if (rep_github_repo(ss_field(ss, "project"), ss_field(ss, "repository"), owner,
                            sizeof owner, repo, sizeof repo) < 0) {
            log_info("%s: %s: skipped status update because required repo information is "
                     "missing",
                     ev->what, rc->name);
            continue;
        }
        if (sha == NULL || sha[0] == '\0') {
            const char *cb = ss_field(ss, "codebase");
            log_info("%s: %s: skipped status update for codebase %s, context '%s'", ev->what,
                     rc->name, cb != NULL ? cb : "", st->context);
            continue;
        }
        st->owner = owner;
        st->repo = repo;
        st->sha = sha;
        char *cause = NULL;
        if (rep_enqueue(ev->b->e->rep, st, &cause) < 0) {
            log_error("%s: %s: status \"%s\" for %s/%s at %s not queued: %s", ev->what, rc->name,
                      st->state, owner, repo, sha, cause);
            free(cause);
        }
    }
}

/* The generator's formatter for the event, and its default text. */
static const char *formatter_of(const struct event *ev, const char **def)
{
    if (ev->request) {
        *def = "Build pending.";
        return "formatter";
    }
    *def = ev->complete ? "Build done." : "Build started.";
    return ev->complete ? "end_formatter" : "start_formatter";
}

/* BuildStatusGenerator's report of the event: 1 with *body (and *subject when asked), 0 when
   its modes do not want the finished build, -1 with *cause. */
static int status_message(const struct event *ev, const struct cfg_generator *g, lua_State *L,
                          char **body, char **subject, char **cause)
{
    struct build *b = ev->b;
    int prev = REP_PREV_NONE;
    if (ev->complete && rep_mode_needs_previous(g->modes)) {
        prev = report_previous_results(b, cause);
        if (prev == -3)
            return -1;
    }
    if (ev->complete && !rep_mode_wants(g->modes, b->results, prev))
        return 0;
    if (g->fmt == NULL || g->fmt->function) { /* a renderable or a function: Buildbot's subject */
        *body = g->fmt == NULL ? render_field(b, L, g->ref, "message_formatter", "", cause)
                               : report_function_body(b, g, ev->state, ev->complete, cause);
        if (*body != NULL && subject != NULL)
            *subject = xasprintf("Buildbot %s in %s on %s",
                                 rep_result_name(ev->complete ? b->results : -1),
                                 b->e->cfg->title != NULL ? b->e->cfg->title : "", b->builder);
        return *body != NULL ? 1 : *cause != NULL ? -1 : 0;
    }
    json_t *ctx = report_context(b, g, prev, ev->state, ev->complete, cause);
    *body = ctx != NULL ? rep_tmpl_render(g->fmt->body, ctx, cause) : NULL;
    if (*body != NULL && subject != NULL) {
        *subject = rep_tmpl_render(g->fmt->subject, ctx, cause);
        if (*subject == NULL) {
            free(*body);
            *body = NULL;
        }
    }
    json_decref(ctx);
    return *body != NULL ? 1 : -1;
}

static char *status_body(const struct event *ev, const struct cfg_generator *g, lua_State *L,
                         char **cause)
{
    char *body = NULL;
    status_message(ev, g, L, &body, NULL, cause);
    return body;
}

/* The generator's message for the event; NULL with *cause NULL when it has none. */
static char *message_of(const struct event *ev, const struct cfg_generator *g, lua_State *L,
                        char **cause)
{
    if (g->kind == CFG_GEN_STATUS)
        return status_body(ev, g, L, cause);
    const char *def_desc;
    const char *key = formatter_of(ev, &def_desc);
    return render_field(ev->b, L, g->ref, key, def_desc, cause);
}

/* The generator hears the event: BuildStatusGenerator hears finished builds, and new ones
   with report_new. */
static bool hears(const struct event *ev, const struct cfg_generator *g)
{
    if (g->request != ev->request || g->kind == CFG_GEN_MISSING)
        return false;
    return g->kind != CFG_GEN_STATUS || ev->complete || g->report_new;
}

static void report_one(const struct event *ev, const struct cfg_reporter *rc)
{
    struct build *b = ev->b;
    const struct cfg *cfg = b->e->cfg;
    lua_State *L = cfg->lua;
    int top = lua_gettop(L);
    const struct cfg_builder *bc = cfg_find_builder(cfg, b->builder);
    for (size_t i = 0; i < rc->n_generators; i++) {
        const struct cfg_generator *g = &rc->generators[i];
        if (!hears(ev, g) || !wanted(b, g, bc))
            continue;
        char *cause = NULL;
        if (rc->kind == CFG_REP_GITHUB_COMMENT && g->ref == LUA_NOREF && !ev->complete)
            continue; /* GitHubCommentPush's default start_formatter renders None */
        char *desc = message_of(ev, g, L, &cause);
        if (desc == NULL && cause == NULL)
            continue; /* this generator has no report: the next one may */
        if (rc->kind != CFG_REP_GITHUB_STATUS) {
            char what[80];
            snprintf(what, sizeof what, "%s %s", ev->what,
                     ev->request ? (ev->complete ? "cancelled" : "made")
                                 : (ev->complete ? "finished" : "started"));
            if (desc != NULL)
                report_post(b, rc, g, what, desc, ev->complete);
            else
                log_error("%s: %s: %s", ev->what, rc->name, cause);
            lua_settop(L, top);
            free(cause);
            free(desc);
            return;
        }
        /* the default context: Interpolate('buildbot/%(prop:buildername)s') */
        char *def = xasprintf("buildbot/%s", b->builder);
        char *context = desc == NULL ? NULL : render_field(b, L, rc->ref, "context", def, &cause);
        free(def);
        lua_settop(L, top);
        if (desc == NULL || context == NULL) {
            log_error("%s: %s: %s", ev->what, rc->name, cause);
        } else {
            struct rep_status st = {.reporter = rc->name,
                                    .state = state_of(b, ev->complete),
                                    .description = desc,
                                    .target_url = ev->url,
                                    .context = context};
            post_statuses(ev, rc, &st);
        }
        free(cause);
        free(desc);
        free(context);
        return; /* sendMessage posts the first report only */
    }
}

/* ------------------------------------------------------------ mail */

/* The reports of the mail reporter's generators, merged as MailNotifier.sendMessage
   merges them: the bodies joined, the first subject and type. */
struct mail_report {
    struct buf body;
    char *subject;
    bool html, any;
    struct rep_attachment *att; /* the logs of add_logs */
    size_t n_att, cap_att, att_bytes;
};

/* Buildbot's should_attach_log: add_logs true, or the log's name or "step.log" listed. */
static bool attached(const struct cfg_generator *g, const char *name, const char *long_name)
{
    if (g->logs_all)
        return true;
    for (size_t i = 0; i < g->n_log_names; i++)
        if (strcmp(g->log_names[i], name) == 0 || strcmp(g->log_names[i], long_name) == 0)
            return true;
    return false;
}

/* The text of log `logid` as Buildbot's logs/N/contents gives it (stdio lines keep their
   stream letter), read a few chunks at a time up to `room` bytes; *cut when there was more. */
static int log_text(struct db *db, long long logid, size_t room, struct buf *out, bool *cut,
                    char **cause)
{
    struct buf chunk;
    buf_init(&chunk, DB_CHUNK_MAX);
    long long from = 0;
    int rc = 0;
    for (bool more = true; more && rc == 0 && !*cut;) {
        struct db_param p[] = {DB_INT(logid), DB_INT(from)};
        struct db_res *r = db_query_binary(db,
                                           "SELECT first_line, last_line, compressed, content "
                                           "FROM logchunks WHERE logid = ? AND first_line >= ? "
                                           "ORDER BY first_line LIMIT 8",
                                           p, 2, cause);
        if (r == NULL) {
            rc = -1;
            break;
        }
        more = db_res_rows(r) == 8;
        for (size_t i = 0; i < db_res_rows(r) && rc == 0 && !*cut; i++) {
            size_t len;
            const unsigned char *data = db_res_blob(r, i, 3, &len);
            buf_reset(&chunk);
            rc = db_chunk_decode((int)db_res_int(r, i, 2), data, len, &chunk, cause);
            if (rc == 0 && chunk.len > 0 && chunk.data[chunk.len - 1] != '\n')
                buf_addc(&chunk, '\n');
            size_t take = chunk.len <= room - out->len ? chunk.len : room - out->len;
            while (take > 0 && take < chunk.len && ((unsigned char)chunk.data[take] & 0xC0) == 0x80)
                take--; /* not within a UTF-8 character */
            if (rc == 0 && buf_add(out, chunk.data, take) < 0)
                rc = util_cause(cause, "out of memory for a log");
            *cut = take < chunk.len;
            from = db_res_int(r, i, 1) + 1;
        }
        db_res_free(r);
    }
    buf_free(&chunk);
    return rc;
}

static void add_attachment(struct mail_report *m, char *name, struct buf *text)
{
    m->att = xgrow(m->att, &m->cap_att, m->n_att + 1, sizeof *m->att);
    m->att_bytes += text->len;
    m->att[m->n_att].len = text->len;
    m->att[m->n_att].data = buf_take(text);
    m->att[m->n_att++].name = name;
}

/* The build's logs that the generator's add_logs names, as attachments "step.log", in step
   and log order, at most REP_MAIL_LOGS_MAX bytes in all: a log past it is cut, with a line
   that says so, and the logs after it are left out. */
static int attach_logs(const struct build *b, const struct cfg_generator *g, struct mail_report *m,
                       char **cause)
{
    struct db_param p[] = {DB_INT(b->id)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT s.name, l.name, l.id FROM logs l JOIN steps s ON "
                                "s.id = l.stepid WHERE s.buildid = ? ORDER BY s.number, l.id",
                                p, 1, cause);
    if (r == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < db_res_rows(r) && rc == 0; i++) {
        char *name = xasprintf("%s.%s", db_res_text(r, i, 0), db_res_text(r, i, 1));
        if (!attached(g, db_res_text(r, i, 1), name) || m->att_bytes >= REP_MAIL_LOGS_MAX) {
            if (attached(g, db_res_text(r, i, 1), name))
                log_warn("build %lld: log '%s' not attached: the mail's logs are at most %d "
                         "bytes",
                         b->id, UTIL_ESC(name), REP_MAIL_LOGS_MAX);
            free(name);
            continue;
        }
        struct buf text;
        buf_init(&text, 0);
        bool cut = false;
        rc = log_text(b->e->db, db_res_int(r, i, 2), REP_MAIL_LOGS_MAX - m->att_bytes, &text, &cut,
                      cause);
        if (rc == 0 && cut)
            buf_printf(&text,
                       "\n[bbmaster: the log is cut here: the logs of a mail are at most "
                       "%d bytes]\n",
                       REP_MAIL_LOGS_MAX);
        if (rc == 0)
            add_attachment(m, name, &text);
        else
            free(name);
        buf_free(&text);
    }
    db_res_free(r);
    return rc;
}

static int collect(const struct event *ev, const struct cfg_reporter *rc, struct mail_report *m,
                   char **cause)
{
    struct build *b = ev->b;
    const struct cfg *cfg = b->e->cfg;
    const struct cfg_builder *bc = cfg_find_builder(cfg, b->builder);
    int top = lua_gettop(cfg->lua);
    for (size_t i = 0; i < rc->n_generators; i++) {
        const struct cfg_generator *g = &rc->generators[i];
        if (!hears(ev, g) || !wanted(b, g, bc))
            continue;
        char *body = NULL, *subject = NULL;
        int rc2 = status_message(ev, g, cfg->lua, &body, &subject, cause);
        lua_settop(cfg->lua, top);
        if (rc2 < 0)
            return -1;
        if (rc2 == 0)
            continue;
        if (buf_addstr(&m->body, body) < 0) {
            free(body);
            free(subject);
            return util_cause(cause, "the mail's body is more than %d bytes", REP_TMPL_OUT_MAX);
        }
        if (!m->any) {
            m->subject = subject;
            m->html = g->fmt != NULL && g->fmt->html;
            subject = NULL;
        }
        m->any = true;
        free(body);
        free(subject);
        if ((g->logs_all || g->n_log_names > 0) && attach_logs(b, g, m, cause) < 0)
            return -1;
    }
    return 0;
}

/* findInterrestedUsersEmails: the users with lookup's domain added to names without '@',
   cut at a second '@', kept when they look like addresses. */
static json_t *interested(const struct build *b, const struct cfg_mail *mc, char **cause)
{
    json_t *out = json_array();
    if (!mc->send_to_interested)
        return out;
    json_t *users = report_blamelist((struct build *)b, cause);
    if (users == NULL) {
        json_decref(out);
        return NULL;
    }
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u)
    {
        const char *s = json_string_value(u);
        char *a = strchr(s, '@') == NULL && mc->lookup != NULL ? xasprintf("%s@%s", s, mc->lookup)
                                                               : xstrdup(s);
        char *last = strrchr(a, '@');
        if (last != NULL && strchr(a, '@') != last) /* 'User' <u@foo.com>@foo.com */
            *last = '\0';
        if (rep_mail_valid(a) && strpbrk(a, "\r\n") == NULL)
            json_array_append_new(out, json_string(a));
        else
            log_warn("%s: INVALID EMAIL: %s", "MailNotifier", UTIL_ESC(a));
        free(a);
    }
    json_decref(users);
    return out;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t report_sorted_set(const char **v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, by_text);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[k - 1]) != 0)
            v[k++] = v[i];
    return k;
}

char *report_bare(const char *addr)
{
    const char *lt = strrchr(addr, '<');
    if (lt == NULL)
        return xstrdup(addr);
    return xasprintf("%.*s", (int)strcspn(lt + 1, ">"), lt + 1);
}

char *report_message_id(const char *left, const char *fromaddr)
{
    const char *at = strrchr(fromaddr, '@');
    const char *dom = at != NULL ? at + 1 : "localhost";
    char *l = xstrdup(left);
    char *right = xasprintf("%.*s", (int)strcspn(dom, ">"), dom);
    char *parts[] = {l, right};
    for (size_t i = 0; i < UTIL_NELEM(parts); i++)
        for (char *p = parts[i]; *p != '\0'; p++)
            if (!isalnum((unsigned char)*p) && strchr(".-_", *p) == NULL)
                *p = '_';
    char *mid = xasprintf("<%s@%s>", l, right[0] != '\0' ? right : "localhost");
    free(l);
    free(right);
    return mid;
}

/* The Message-ID that every attempt of the event's mail shares:
   <bbmaster.{new|finished}.{buildid}.{reporter}@{fromaddr's domain}>. */
static char *message_id(const struct event *ev, const char *reporter, const char *fromaddr)
{
    char *left =
        xasprintf("bbmaster.%s.%lld.%s", ev->complete ? "finished" : "new", ev->b->id, reporter);
    char *mid = report_message_id(left, fromaddr);
    free(left);
    return mid;
}

void report_mail_date(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* processRecipients: To the interested users, CC the extra recipients; To the extra
   recipients alone when there are no users (or they are not wanted). */
static void send_mail(const struct event *ev, const struct cfg_reporter *rc, struct mail_report *m,
                      json_t *users, char **headers)
{
    const struct cfg_mail *mc = rc->mail;
    size_t nu = json_array_size(users), n_all = nu + mc->n_extra_recipients;
    const char **to = xcalloc(n_all + 1, sizeof *to), **rcpts = xcalloc(n_all + 1, sizeof *rcpts);
    for (size_t i = 0; i < nu; i++)
        to[i] = json_string_value(json_array_get(users, i));
    bool cc = nu > 0;
    for (size_t i = 0; i < mc->n_extra_recipients; i++)
        to[nu + i] = mc->extra_recipients[i];
    /* To the users and CC the extras, or To the extras; each sorted, without repeats */
    size_t n_to = cc ? report_sorted_set(to, nu) : report_sorted_set(to, n_all);
    size_t n_cc = cc ? report_sorted_set(to + nu, mc->n_extra_recipients) : 0;
    if (cc && n_to < nu)
        memmove(to + n_to, to + nu, n_cc * sizeof *to);
    n_all = n_to + n_cc;
    char date[64];
    report_mail_date(date, sizeof date);
    char *mid = message_id(ev, rc->name, mc->fromaddr);
    struct rep_mail_parts parts = {.from = mc->fromaddr,
                                   .subject = m->subject != NULL ? m->subject : "",
                                   .body = m->body.data != NULL ? m->body.data : "",
                                   .html = m->html,
                                   .date = date,
                                   .message_id = mid,
                                   .to = to,
                                   .n_to = n_to,
                                   .cc = to + n_to,
                                   .n_cc = n_cc,
                                   .extra = (const char *const *)headers,
                                   .n_extra = mc->n_headers,
                                   .att = m->att,
                                   .n_att = m->n_att};
    char *cause = NULL;
    char *text = rep_mail_compose(&parts, &cause);
    for (size_t i = 0; i < n_all; i++)
        rcpts[i] = report_bare(to[i]);
    char *from = report_bare(mc->fromaddr);
    struct rep_mail mail = {.reporter = rc->name,
                            .from = from,
                            .message_id = mid,
                            .subject = parts.subject,
                            .rcpts = rcpts,
                            .n_rcpts = n_all,
                            .message = text};
    if (text != NULL && mc->dump) /* Buildbot's dumpMailsToLog: the whole message */
        log_info("%s: %s: mail data:\n%s", ev->what, rc->name, text);
    if (n_all == 0)
        log_info("%s: %s: no recipients for the mail", ev->what, rc->name);
    else if (text == NULL || rep_enqueue_mail(ev->b->e->rep, &mail, &cause) < 0)
        log_error("%s: %s: mail not queued: %s", ev->what, rc->name, cause);
    free(cause);
    free(text);
    free(from);
    for (size_t i = 0; i < n_all; i++)
        free((char *)rcpts[i]);
    free(rcpts);
    free(to);
    free(mid);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

/* extraHeaders, each rendered against the build's properties (createEmail renders them
   for a single build), as "Name: value"; NULL with *cause. */
static char **render_headers(struct build *b, const struct cfg_reporter *rc, char **cause)
{
    const struct cfg_mail *mc = rc->mail;
    lua_State *L = b->e->cfg->lua;
    int top = lua_gettop(L);
    char **v = xcalloc(mc->n_headers + 1, sizeof *v);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rc->ref);
    lua_getfield(L, -1, "extraHeaders");
    int tab = lua_gettop(L);
    bool ok = true;
    for (size_t i = 0; i < mc->n_headers && ok; i++) {
        lua_getfield(L, tab, mc->header_names[i]);
        struct render_ctx c = build_render_ctx(b);
        c.L = L;
        json_t *j = render(&c, lua_gettop(L), cause);
        char *text = j == NULL           ? NULL
                     : json_is_string(j) ? xstrdup(json_string_value(j))
                                         : props_str(j);
        json_decref(j);
        ok = text != NULL && strpbrk(text, "\r\n") == NULL;
        if (text != NULL && !ok)
            util_cause(cause, "extraHeaders' %s is more than one line", mc->header_names[i]);
        else if (ok)
            v[i] = xasprintf("%s: %s", mc->header_names[i], text);
        free(text);
        lua_settop(L, tab);
    }
    lua_settop(L, top);
    if (!ok) {
        free_list(v, mc->n_headers);
        return NULL;
    }
    return v;
}

static void report_mail(const struct event *ev, const struct cfg_reporter *rc)
{
    struct mail_report m = {0};
    buf_init(&m.body, REP_TMPL_OUT_MAX);
    char *cause = NULL;
    json_t *users = NULL;
    char **headers = NULL;
    if (collect(ev, rc, &m, &cause) < 0 ||
        (m.any && (users = interested(ev->b, rc->mail, &cause)) == NULL) ||
        (m.any && (headers = render_headers(ev->b, rc, &cause)) == NULL))
        log_error("%s: %s: %s", ev->what, rc->name, cause);
    else if (m.any)
        send_mail(ev, rc, &m, users, headers);
    free_list(headers, rc->mail->n_headers);
    json_decref(users);
    free(cause);
    free(m.subject);
    buf_free(&m.body);
    for (size_t i = 0; i < m.n_att; i++) {
        free(m.att[i].name);
        free(m.att[i].data);
    }
    free(m.att);
}

static void report(const struct event *ev)
{
    const struct cfg *cfg = ev->b->e->cfg;
    for (size_t i = 0; i < cfg->n_reporters; i++) {
        if (cfg->reporters[i].kind == CFG_REP_MAIL)
            report_mail(ev, &cfg->reporters[i]);
        else
            report_one(ev, &cfg->reporters[i]);
    }
}

/* Some reporter has a generator of that kind: the work of a report is worth doing. */
static bool any_generator(const struct engine *e, bool request)
{
    for (size_t i = 0; e->rep != NULL && e->cfg != NULL && i < e->cfg->n_reporters; i++)
        for (size_t j = 0; j < e->cfg->reporters[i].n_generators; j++)
            if (e->cfg->reporters[i].generators[j].request == request &&
                e->cfg->reporters[i].generators[j].kind != CFG_GEN_MISSING)
                return true;
    return false;
}

void report_build(struct build *b, bool complete, const char *state_string)
{
    report_irc(b, complete, state_string);
    if (b->sourcestamps == NULL || !any_generator(b->e, false))
        return;
    struct event ev = {.b = b, .complete = complete, .state = state_string};
    snprintf(ev.what, sizeof ev.what, "build %lld", b->id);
    ev.url = xasprintf("%s#/builders/%lld/builds/%lld", b->e->cfg->buildbot_url, b->builderid,
                       b->number);
    report(&ev);
    free(ev.url);
}

void report_request(struct engine *e, long long brid, long long bsid, const char *builder,
                    long long builderid, bool cancelled)
{
    if (!any_generator(e, true))
        return;
    struct build b = {.e = e,
                      .cfg = e->cfg,
                      .builder = (char *)builder,
                      .brid = brid,
                      .bsid = bsid,
                      .builderid = builderid,
                      .results = RES_CANCELLED};
    char *cause = NULL;
    b.sourcestamps = requests_sourcestamps(e, bsid, &cause);
    if (b.sourcestamps == NULL || build_partial_props(&b, bsid, &cause) != 0) {
        log_error("build request %lld: its statuses are not reported: %s", brid, cause);
        free(cause);
    } else {
        struct event ev = {.b = &b, .request = true, .complete = cancelled};
        snprintf(ev.what, sizeof ev.what, "build request %lld", brid);
        ev.url = xasprintf("%s#/buildrequests/%lld", e->cfg->buildbot_url, brid);
        report(&ev);
        free(ev.url);
    }
    props_free(&b.props);
    json_decref(b.sourcestamps);
}
