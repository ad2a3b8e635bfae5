/*
 * MailNotifier's mails (Buildbot 4.3's reporters/mail.py).  The reports of a mail
 * reporter's generators for one event are merged into one mail as sendMessage merges them:
 * the bodies joined, the first subject and type, the logs read for them attached, the
 * interested users of every build reported.  The event is a build that finished (or
 * started, with report_new) for BuildStatusGenerator, or a buildset whose last request
 * completed for BuildSetStatusGenerator, which reports each of the buildset's builds that
 * its filters and modes want (the previous build looked up for each) in one mail.  Unlike
 * Buildbot's createEmail, which raises KeyError on the attachments of a mail of more than one
 * build (and so sends nothing when one push newly breaks two builders), the logs of such a
 * mail are named "builder.step.log".  The mail is composed here and stored in the outbox,
 * which delivers it.
 */
#include <ctype.h>
#include <jansson.h>
#include <lauxlib.h>
#include <string.h>
#include <time.h>

#include "engine/report.h"
#include "reporters/reporters.h"

/* The builds of one buildset read for its mail: a buildset has a build request per builder,
   and a request a build per retry. */
#define BUILDSET_BUILDS_MAX 10000
/* The reports of the mail reporter's generators, merged as MailNotifier.sendMessage
   merges them: the bodies joined, the first subject and type. */
struct mail_report {
    struct buf body;
    char *subject;
    bool html, any;
    size_t n_builds;            /* the builds reported (with repeats, as Buildbot's list) */
    json_t *users;              /* their interested users, as addresses */
    char **headers;             /* extraHeaders rendered against the first build reported */
    struct rep_attachment *att; /* the logs read for the reports */
    char **att_builder;         /* the builder of each */
    size_t n_att, cap_att, cap_builder, att_bytes;
};

/* The logs whose contents Buildbot reads for the report, which createEmail attaches: those
   the formatter's want_logs_content names, or add_logs (Buildbot's should_attach_log). */
static bool attached(const struct cfg_generator *g, const char *step, const char *name)
{
    const struct cfg_formatter *f = g->fmt; /* add_logs is in its place when given */
    return f != NULL ? report_log_named(f->logs_content_all, f->logs_content, f->n_logs_content,
                                        step, name)
                     : report_log_named(g->logs_all, g->log_names, g->n_log_names, step, name);
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

static void add_attachment(struct mail_report *m, char *name, const char *builder, struct buf *text)
{
    m->att = xgrow(m->att, &m->cap_att, m->n_att + 1, sizeof *m->att);
    m->att_builder = xgrow(m->att_builder, &m->cap_builder, m->n_att + 1, sizeof *m->att_builder);
    m->att_builder[m->n_att] = xstrdup(builder);
    m->att_bytes += text->len;
    m->att[m->n_att].len = text->len;
    m->att[m->n_att].data = buf_take(text);
    m->att[m->n_att++].name = name;
}

/* The build's logs that the report read (attached()), as attachments "step.log", in step
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
        bool wanted = attached(g, db_res_text(r, i, 0), db_res_text(r, i, 1));
        if (!wanted || m->att_bytes >= REP_MAIL_LOGS_MAX) {
            if (wanted)
                log_warn("build %lld: log '%s' not attached: the mail's logs are at most %d "
                         "bytes",
                         b->id, UTIL_ESC(name), REP_MAIL_LOGS_MAX);
            free(name);
            continue;
        }
        struct buf text;
        buf_init(&text, 0);
        bool cut = false;
        size_t room = REP_MAIL_LOGS_MAX - m->att_bytes;
        if (!report_content_whole(b, db_res_int(r, i, 2), room, &text))
            rc = log_text(b->e->db, db_res_int(r, i, 2), room, &text, &cut, cause);
        if (rc == 0 && cut)
            buf_printf(&text,
                       "\n[bbmaster: the log is cut here: the logs of a mail are at most "
                       "%d bytes]\n",
                       REP_MAIL_LOGS_MAX);
        if (rc == 0)
            add_attachment(m, name, b->builder, &text);
        else
            free(name);
        buf_free(&text);
    }
    db_res_free(r);
    return rc;
}

/* findInterrestedUsersEmails: the users with lookup's domain added to names without '@',
   cut at a second '@', kept when they look like addresses. */
static int interested(struct build *b, const struct cfg_mail *mc, json_t *out, char **cause)
{
    if (!mc->send_to_interested)
        return 0;
    json_t *users = report_blamelist(b, cause);
    if (users == NULL)
        return -1;
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
    return 0;
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

char *report_message_id(const char *key, const char *reporter, const char *fromaddr)
{
    const char *at = strrchr(fromaddr, '@');
    const char *dom = at != NULL ? at + 1 : "localhost";
    char *left = xasprintf("bbmaster.%s.%s", key, reporter);
    char *right = xasprintf("%.*s", (int)strcspn(dom, ">"), dom);
    char *parts[] = {left, right};
    for (size_t i = 0; i < UTIL_NELEM(parts); i++)
        for (char *p = parts[i]; *p != '\0'; p++)
            if (!isalnum((unsigned char)*p) && strchr(".-_", *p) == NULL)
                *p = '_';
    char *mid = xasprintf("<%s@%s>", left, right[0] != '\0' ? right : "localhost");
    free(left);
    free(right);
    return mid;
}

void report_mail_date(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Where the mail goes and what it is called in the log and its Message-ID. */
struct mail_event {
    struct engine *e;
    const char *what; /* "build 12", "buildset 3" */
    char key[48];     /* message_id's */
};

/* processRecipients: To the interested users, CC the extra recipients; To the extra
   recipients alone when there are no users (or they are not wanted). */
static void send_mail(const struct mail_event *ev, const struct cfg_reporter *rc,
                      struct mail_report *m)
{
    const struct cfg_mail *mc = rc->mail;
    json_t *users = m->users;
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
    char *mid = report_message_id(ev->key, rc->name, mc->fromaddr);
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
                                   .extra = (const char *const *)m->headers,
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
    else if (text == NULL || report_out_mail(ev->e, &mail, &cause) < 0)
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

/* extraHeaders, each rendered against the build's properties, as "Name: value"; NULL with
   *cause.  Buildbot's createEmail renders them for a mail of one build and leaves them
   unrendered for more; bbmaster renders them against the first build reported. */
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

/* One build's report added to the mail: its body joined, the first subject and type kept, its
   logs attached, its interested users added, the headers rendered for the first.  Takes
   body and subject. */
static int add_report(struct build *b, const struct cfg_reporter *rc, const struct cfg_generator *g,
                      struct mail_report *m, char *body, char *subject, char **cause)
{
    int rc2 = 0;
    if (buf_addstr(&m->body, body) < 0) {
        rc2 = util_cause(cause, "the mail's body is more than %d bytes", REP_TMPL_OUT_MAX);
    } else {
        if (!m->any) {
            m->subject = subject;
            m->html = g->fmt != NULL && g->fmt->html;
            subject = NULL;
        }
        m->any = true;
        m->n_builds++;
        const struct cfg_formatter *f = g->fmt;
        if (f != NULL ? f->logs_content_all || f->n_logs_content > 0
                      : g->logs_all || g->n_log_names > 0)
            rc2 = attach_logs(b, g, m, cause);
        if (rc2 == 0)
            rc2 = interested(b, rc->mail, m->users, cause);
        if (rc2 == 0 && m->headers == NULL && (m->headers = render_headers(b, rc, cause)) == NULL)
            rc2 = -1;
    }
    free(body);
    free(subject);
    return rc2;
}

/* The report of generator `g` for the event's build, added to the mail when it has one. */
static int collect_one(const struct report_event *ev, const struct cfg_reporter *rc,
                       const struct cfg_generator *g, struct mail_report *m, char **cause)
{
    const struct cfg *cfg = ev->b->e->cfg;
    if (!report_hears(ev, g) || !report_wanted(ev->b, g, cfg_find_builder(cfg, ev->b->builder)))
        return 0;
    int top = lua_gettop(cfg->lua);
    char *body = NULL, *subject = NULL;
    /* the logs the body reads are attached from that reading (a buildset's builds come
       here, not through report()) */
    struct report_contents contents = {0};
    bool own = ev->b->contents == NULL;
    if (own)
        ev->b->contents = &contents;
    int rc2 = report_status_message(ev, g, cfg->lua, &body, &subject, cause);
    lua_settop(cfg->lua, top);
    if (rc2 > 0)
        rc2 = add_report(ev->b, rc, g, m, body, subject, cause);
    if (own) {
        ev->b->contents = NULL;
        report_contents_free(&contents);
    }
    return rc2;
}

static void mail_init(struct mail_report *m)
{
    *m = (struct mail_report){.users = json_array()};
    buf_init(&m->body, REP_TMPL_OUT_MAX);
}

/* Sends the mail when some generator made a report (the logs of a mail of more than one
   build named "builder.step.log"), and frees it. */
static void mail_finish(const struct mail_event *ev, const struct cfg_reporter *rc,
                        struct mail_report *m, bool failed)
{
    for (size_t i = 0; m->n_builds > 1 && i < m->n_att; i++) {
        char *name = xasprintf("%s.%s", m->att_builder[i], m->att[i].name);
        free(m->att[i].name);
        m->att[i].name = name;
    }
    if (m->any && !failed)
        send_mail(ev, rc, m);
    free_list(m->headers, rc->mail->n_headers);
    json_decref(m->users);
    free(m->subject);
    buf_free(&m->body);
    for (size_t i = 0; i < m->n_att; i++) {
        free(m->att[i].name);
        free(m->att[i].data);
        free(m->att_builder[i]);
    }
    free(m->att);
    free(m->att_builder);
}

void report_mail(const struct report_event *ev, const struct cfg_reporter *rc)
{
    struct mail_report m;
    mail_init(&m);
    char *cause = NULL;
    int rc2 = 0;
    for (size_t i = 0; i < rc->n_generators && rc2 == 0; i++)
        rc2 = collect_one(ev, rc, &rc->generators[i], &m, &cause);
    if (rc2 < 0)
        log_error("%s: %s: %s", ev->what, rc->name, cause);
    struct mail_event me = {.e = ev->b->e, .what = ev->what};
    snprintf(me.key, sizeof me.key, "%s.%lld", ev->complete ? "finished" : "new", ev->b->id);
    mail_finish(&me, rc, &m, rc2 < 0);
    free(cause);
}

/* ------------------------------------------------------------ buildsets */

/* Build `row` of `r` (the buildset's builds) with the properties stored for it, as the
   reports of a finished build see it. */
static int load_build(struct engine *e, struct db_res *r, size_t row, long long bsid,
                      json_t *sourcestamps, struct build *b, char **cause)
{
    *b = (struct build){.e = e,
                        .cfg = e->cfg,
                        .id = db_res_int(r, row, 0),
                        .number = db_res_int(r, row, 1),
                        .builderid = db_res_int(r, row, 2),
                        .builder = (char *)db_res_text(r, row, 3),
                        .results = (int)db_res_int(r, row, 4),
                        .brid = db_res_int(r, row, 6),
                        .bsid = bsid,
                        .sourcestamps = sourcestamps};
    return report_load_props(e->db, b, cause);
}

int report_load_props(struct db *db, struct build *b, char **cause)
{
    struct db_param p[] = {DB_INT(b->id)};
    struct db_res *pr = db_query(
        db, "SELECT name, value, source FROM build_properties WHERE buildid = ?", p, 1, cause);
    if (pr == NULL)
        return -1;
    for (size_t i = 0; i < db_res_rows(pr); i++) {
        json_t *v = json_loads(db_res_text(pr, i, 1), JSON_DECODE_ANY, NULL);
        props_set(&b->props, db_res_text(pr, i, 0), v != NULL ? v : json_null(),
                  db_res_text(pr, i, 2));
    }
    db_res_free(pr);
    return 0;
}

/*
 * A completed buildset's mails, one per mail reporter with a BuildSetStatusGenerator, made a
 * build at a time (report_buildset_step), so that the reports' thread can stop between two
 * builds of a buildset of many, each with its logs and formatter; the mails are stored by
 * the last step.
 */
struct buildset_mails {
    struct engine *e;
    const struct cfg *cfg; /* the configuration they are made with */
    long long bsid;
    char what[48];
    struct db_res *r; /* the buildset's finished builds */
    json_t *stamps;
    struct mail_report *m; /* one per reporter (used by the mail reporters) */
    bool *failed;
    size_t reporter, generator, row; /* the next build to report */
};

static bool is_mail(const struct cfg *cfg, size_t i)
{
    return cfg->reporters[i].kind == CFG_REP_MAIL;
}

/* Stores the mails made (`send`), or only frees them. */
static void end_mails(struct buildset_mails *j, bool send)
{
    struct mail_event me = {.e = j->e, .what = j->what};
    snprintf(me.key, sizeof me.key, "buildset.%lld", j->bsid);
    for (size_t i = 0; j->m != NULL && i < j->cfg->n_reporters; i++)
        if (is_mail(j->cfg, i))
            mail_finish(&me, &j->cfg->reporters[i], &j->m[i], !send || j->failed[i]);
    free(j->m);
    free(j->failed);
    j->m = NULL;
    j->failed = NULL;
}

struct buildset_mails *report_buildset_begin(struct engine *e, long long bsid, char **cause)
{
    /* getDetailsForBuildset: the builds of each of its requests, finished ones, with the
       buildset's results */
    struct db_param p[] = {DB_INT(bsid), DB_INT(BUILDSET_BUILDS_MAX)};
    struct db_res *r =
        db_query(e->db,
                 "SELECT b.id, b.number, b.builderid, bl.name, b.results, b.state_string, "
                 "b.buildrequestid, bs.results FROM builds b JOIN buildrequests br ON br.id = "
                 "b.buildrequestid JOIN builders bl ON bl.id = b.builderid JOIN buildsets bs ON "
                 "bs.id = br.buildsetid WHERE br.buildsetid = ? AND b.complete_at IS NOT NULL "
                 "AND b.results IS NOT NULL ORDER BY br.id, b.id LIMIT ?",
                 p, 2, cause);
    json_t *stamps = r == NULL ? NULL : requests_sourcestamps(e, bsid, cause);
    if (stamps == NULL) {
        db_res_free(r);
        return NULL;
    }
    struct buildset_mails *j = xcalloc(1, sizeof *j);
    *j = (struct buildset_mails){.e = e, .cfg = e->cfg, .bsid = bsid, .r = r, .stamps = stamps};
    snprintf(j->what, sizeof j->what, "buildset %lld", bsid);
    if (db_res_rows(r) == BUILDSET_BUILDS_MAX)
        log_warn("%s: only its first %d builds are reported", j->what, BUILDSET_BUILDS_MAX);
    j->m = xcalloc(j->cfg->n_reporters + 1, sizeof *j->m);
    j->failed = xcalloc(j->cfg->n_reporters + 1, sizeof *j->failed);
    for (size_t i = 0; i < j->cfg->n_reporters; i++)
        if (is_mail(j->cfg, i))
            mail_init(&j->m[i]);
    return j;
}

/* Generator `g` of mail reporter `rc` reports build `row` of the buildset.  Returns 1; 0
   when the build is not one of its builders (its properties are not read then); -1 with
   the reason in *cause. */
static int report_row(struct buildset_mails *j, const struct cfg_reporter *rc,
                      const struct cfg_generator *g, size_t row, char **cause)
{
    const char *builder = db_res_text(j->r, row, 3);
    size_t k = 0;
    while (g->builders != NULL && k < g->n_builders && strcmp(g->builders[k], builder) != 0)
        k++;
    if (g->builders != NULL && k == g->n_builders)
        return 0;
    struct build b;
    int rc2 = load_build(j->e, j->r, row, j->bsid, j->stamps, &b, cause);
    struct report_event ev = {.b = &b,
                              .complete = true,
                              .buildset = true,
                              .buildset_results =
                                  db_res_null(j->r, row, 7) ? -1 : (int)db_res_int(j->r, row, 7),
                              .state = db_res_text(j->r, row, 5)};
    snprintf(ev.what, sizeof ev.what, "%s", j->what);
    if (rc2 == 0)
        rc2 = collect_one(&ev, rc, g, &j->m[j->reporter], cause);
    props_free(&b.props);
    return rc2 < 0 ? -1 : 1;
}

int report_buildset_step(struct buildset_mails *j)
{
    const struct cfg *cfg = j->cfg;
    while (j->reporter < cfg->n_reporters) {
        const struct cfg_reporter *rc = &cfg->reporters[j->reporter];
        if (!is_mail(cfg, j->reporter) || j->generator >= rc->n_generators) {
            j->reporter++;
            j->generator = j->row = 0;
            continue;
        }
        const struct cfg_generator *g = &rc->generators[j->generator];
        if (g->kind != CFG_GEN_BUILDSET || j->failed[j->reporter] || j->row >= db_res_rows(j->r)) {
            j->generator++;
            j->row = 0;
            continue;
        }
        char *cause = NULL;
        int done = report_row(j, rc, g, j->row++, &cause);
        if (done < 0) {
            log_error("%s: %s: %s", j->what, rc->name, cause);
            free(cause);
            j->failed[j->reporter] = true;
        }
        if (done != 0) /* a build read and reported: the next one at the next step */
            return 1;
    }
    end_mails(j, true);
    return 0;
}

void report_buildset_free(struct buildset_mails *j)
{
    if (j == NULL)
        return;
    end_mails(j, false);
    db_res_free(j->r);
    json_decref(j->stamps);
    free(j);
}
