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
 * revision, as GitHubStatusPush.sendMessage does.  Rendering happens in the
 * Lua state of a configuration: the engine's, where a build starts or a request
 * is made; the reports' thread's own for a finished build, and for a start or a
 * request that waits behind other events (reportq.c), whose notifications go into a
 * batch (report_out_*).  Delivery is the outbox's
 * (src/reporters), which never waits.
 * Mail reporters get the same events (and buildsets that completed, for
 * BuildSetStatusGenerator) through reportmail.c.
 */
#include <jansson.h>
#include <lauxlib.h>
#include <string.h>
#include <time.h>

#include "engine/report.h"
#include "reporters/reporters.h"

/* The builders of one buildset read to know whether a generator wants it. */
#define REPORT_BUILDSET_BUILDERS_MAX 10000

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

/* The generator's builders and tags filters want a build of `builder` (bc: its
   configuration, or NULL). */
static bool builder_wanted(const struct cfg_generator *g, const char *builder,
                           const struct cfg_builder *bc)
{
    if (g->builders != NULL && !listed(g->builders, g->n_builders, builder))
        return false;
    if (g->tags == NULL)
        return true;
    for (size_t i = 0; bc != NULL && i < bc->n_tags; i++)
        if (listed(g->tags, g->n_tags, bc->tags[i]))
            return true;
    return false;
}

/* is_message_needed_by_props: a list given (even empty) must contain the build's value. */
bool report_wanted(const struct build *b, const struct cfg_generator *g,
                   const struct cfg_builder *bc)
{
    if (g->schedulers != NULL && !listed(g->schedulers, g->n_schedulers, prop_text(b, "scheduler")))
        return false;
    if (g->branches != NULL && !listed(g->branches, g->n_branches, prop_text(b, "branch")))
        return false;
    return builder_wanted(g, b->builder, bc);
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

/* One status per source stamp that names a GitHub repository and has a revision. */
static void post_statuses(const struct report_event *ev, const struct cfg_reporter *rc,
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
        if (report_out_status(ev->b->e, st, &cause) < 0) {
            log_error("%s: %s: status \"%s\" for %s/%s at %s not queued: %s", ev->what, rc->name,
                      st->state, owner, repo, sha, cause);
            free(cause);
        }
    }
}

/* The generator's formatter for the event, and its default text. */
static const char *formatter_of(const struct report_event *ev, const char **def)
{
    if (ev->request) {
        *def = "Build pending.";
        return "formatter";
    }
    *def = ev->complete ? "Build done." : "Build started.";
    return ev->complete ? "end_formatter" : "start_formatter";
}

/* BuildStatusGenerator's report of the event (report.h). */
int report_status_message(const struct report_event *ev, const struct cfg_generator *g,
                          lua_State *L, char **body, char **subject, char **cause)
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
        /* the generator's subject when the formatter gives none: a buildset's names its
           results and "whole buildset" */
        int res = ev->buildset ? ev->buildset_results : ev->complete ? b->results : -1;
        if (*body != NULL && subject != NULL)
            *subject = xasprintf("Buildbot %s in %s on %s", rep_result_name(res),
                                 b->e->cfg->title != NULL ? b->e->cfg->title : "",
                                 ev->buildset ? "whole buildset" : b->builder);
        return *body != NULL ? 1 : *cause != NULL ? -1 : 0;
    }
    json_t *ctx = report_context(b, g, prev, ev->state, ev->complete, ev->buildset, cause);
    if (ctx != NULL && g->fmt->additional_context &&
        report_additional_context(b, g, &ctx, cause) < 0) {
        json_decref(ctx);
        ctx = NULL;
    }
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

static char *status_body(const struct report_event *ev, const struct cfg_generator *g, lua_State *L,
                         char **cause)
{
    char *body = NULL;
    report_status_message(ev, g, L, &body, NULL, cause);
    return body;
}

/* The generator's message for the event; NULL with *cause NULL when it has none. */
static char *message_of(const struct report_event *ev, const struct cfg_generator *g, lua_State *L,
                        char **cause)
{
    if (g->kind == CFG_GEN_STATUS)
        return status_body(ev, g, L, cause);
    const char *def_desc;
    const char *key = formatter_of(ev, &def_desc);
    return render_field(ev->b, L, g->ref, key, def_desc, cause);
}

/* The generator hears the event: BuildStatusGenerator hears finished builds, and new ones
   with report_new; BuildSetStatusGenerator the builds of completed buildsets. */
bool report_hears(const struct report_event *ev, const struct cfg_generator *g)
{
    if (g->request != ev->request || (g->kind == CFG_GEN_BUILDSET) != ev->buildset ||
        g->kind == CFG_GEN_MISSING)
        return false;
    return g->kind != CFG_GEN_STATUS || ev->complete || g->report_new;
}

static void report_one(const struct report_event *ev, const struct cfg_reporter *rc)
{
    struct build *b = ev->b;
    const struct cfg *cfg = b->e->cfg;
    lua_State *L = cfg->lua;
    int top = lua_gettop(L);
    const struct cfg_builder *bc = cfg_find_builder(cfg, b->builder);
    for (size_t i = 0; i < rc->n_generators; i++) {
        const struct cfg_generator *g = &rc->generators[i];
        if (!report_hears(ev, g) || !report_wanted(b, g, bc))
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

static void report(const struct report_event *ev)
{
    const struct cfg *cfg = ev->b->e->cfg;
    struct report_contents contents = {0};
    ev->b->contents = &contents;
    for (size_t i = 0; i < cfg->n_reporters; i++) {
        if (cfg->reporters[i].kind == CFG_REP_MAIL)
            report_mail(ev, &cfg->reporters[i]);
        else
            report_one(ev, &cfg->reporters[i]);
    }
    ev->b->contents = NULL;
    report_contents_free(&contents);
}

/* ------------------------------------------------------------ where notifications go */

int report_out_status(struct engine *e, const struct rep_status *st, char **cause)
{
    if (e->batch == NULL)
        return rep_enqueue(e->rep, st, cause);
    rep_batch_status(e->batch, st);
    return 0;
}

int report_out_post(struct engine *e, const struct rep_post *p, char **cause)
{
    if (e->batch == NULL)
        return rep_enqueue_post(e->rep, p, cause);
    rep_batch_post(e->batch, p);
    return 0;
}

int report_out_mail(struct engine *e, const struct rep_mail *m, char **cause)
{
    if (e->batch == NULL)
        return rep_enqueue_mail(e->rep, m, cause);
    rep_batch_mail(e->batch, m);
    return 0;
}

/* Some reporter has a generator of that kind (of requests, of builds, of buildsets): the
   work of a report is worth doing. */
static bool any_generator(const struct engine *e, bool request, bool buildset)
{
    bool out = e->rep != NULL || e->batch != NULL;
    for (size_t i = 0; out && e->cfg != NULL && i < e->cfg->n_reporters; i++)
        for (size_t j = 0; j < e->cfg->reporters[i].n_generators; j++) {
            const struct cfg_generator *g = &e->cfg->reporters[i].generators[j];
            if (g->request == request && (g->kind == CFG_GEN_BUILDSET) == buildset &&
                g->kind != CFG_GEN_MISSING)
                return true;
        }
    return false;
}

bool report_buildset_wanted(const struct engine *e)
{
    return any_generator(e, false, true);
}

/* Some generator hears the build's event and its filters want the build: nothing is
   queued or made for a build no report can come from (a builder no generator lists). */
static bool build_wanted(const struct build *b, bool complete)
{
    const struct cfg *cfg = b->e->cfg;
    const struct cfg_builder *bc = cfg_find_builder(cfg, b->builder);
    const struct report_event ev = {.b = (struct build *)b, .complete = complete};
    for (size_t i = 0; i < cfg->n_reporters; i++)
        for (size_t j = 0; j < cfg->reporters[i].n_generators; j++) {
            const struct cfg_generator *g = &cfg->reporters[i].generators[j];
            if (report_hears(&ev, g) && report_wanted(b, g, bc))
                return true;
        }
    return false;
}

/* A buildset generator hears the event, and its builders and tags filters want builder
   `name` (or `name` is NULL and the generator has neither filter). */
static bool buildset_generator_wants(const struct cfg *cfg, const char *name)
{
    const struct cfg_builder *bc = name != NULL ? cfg_find_builder(cfg, name) : NULL;
    const struct report_event ev = {.complete = true, .buildset = true};
    for (size_t i = 0; i < cfg->n_reporters; i++)
        for (size_t j = 0; j < cfg->reporters[i].n_generators; j++) {
            const struct cfg_generator *g = &cfg->reporters[i].generators[j];
            if (!report_hears(&ev, g))
                continue;
            if (name == NULL ? g->builders == NULL && g->tags == NULL : builder_wanted(g, name, bc))
                return true;
        }
    return false;
}

/* Some buildset generator's builders and tags filters want one of the buildset's
   builders (its schedulers and branches filters are the report's to apply); true when
   that cannot be read. */
static bool buildset_wanted(struct engine *e, long long bsid)
{
    if (buildset_generator_wants(e->cfg, NULL))
        return true;
    struct db_param p[] = {DB_INT(bsid), DB_INT(REPORT_BUILDSET_BUILDERS_MAX)};
    char *cause = NULL;
    struct db_res *r = db_query(e->db,
                                "SELECT DISTINCT bl.name FROM buildrequests br JOIN builders bl "
                                "ON bl.id = br.builderid WHERE br.buildsetid = ? LIMIT ?",
                                p, 2, &cause);
    if (r == NULL) {
        free(cause);
        return true;
    }
    bool out = db_res_rows(r) == REPORT_BUILDSET_BUILDERS_MAX;
    for (size_t i = 0; !out && i < db_res_rows(r); i++)
        out = buildset_generator_wants(e->cfg, db_res_text(r, i, 0));
    db_res_free(r);
    return out;
}

void report_buildset(struct engine *e, long long bsid)
{
    if (report_buildset_wanted(e) && buildset_wanted(e, bsid) && reportq_buildset(e, bsid) != 0)
        report_buildset_now(e, bsid);
}

void report_buildset_now(struct engine *e, long long bsid)
{
    if (!report_buildset_wanted(e))
        return;
    char *cause = NULL;
    struct buildset_mails *j = report_buildset_begin(e, bsid, &cause);
    if (j == NULL) {
        log_error("buildset %lld: its mails are not made: %s", bsid, cause);
        free(cause);
    }
    while (j != NULL && report_buildset_step(j) == 1)
        ;
    report_buildset_free(j);
}

void report_build(struct build *b, bool complete, const char *state_string)
{
    report_irc(b, complete, state_string);
    if (b->sourcestamps == NULL || !any_generator(b->e, false, false) || !build_wanted(b, complete))
        return;
    if (reportq_build(b->e, b->id, complete) != 0)
        report_build_now(b, complete, state_string);
}

void report_build_now(struct build *b, bool complete, const char *state_string)
{
    if (b->sourcestamps == NULL || !any_generator(b->e, false, false))
        return;
    struct report_event ev = {.b = b, .complete = complete, .state = state_string};
    snprintf(ev.what, sizeof ev.what, "build %lld", b->id);
    ev.url = xasprintf("%s#/builders/%lld/builds/%lld", b->e->cfg->buildbot_url, b->builderid,
                       b->number);
    report(&ev);
    free(ev.url);
}

void report_request(struct engine *e, long long brid, long long bsid, const char *builder,
                    long long builderid, bool cancelled)
{
    if (any_generator(e, true, false) && reportq_request(e, brid, cancelled) != 0)
        report_request_now(e, brid, bsid, builder, builderid, cancelled);
}

void report_request_now(struct engine *e, long long brid, long long bsid, const char *builder,
                        long long builderid, bool cancelled)
{
    if (!any_generator(e, true, false))
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
        struct report_event ev = {.b = &b, .request = true, .complete = cancelled};
        snprintf(ev.what, sizeof ev.what, "build request %lld", brid);
        ev.url = xasprintf("%s#/buildrequests/%lld", e->cfg->buildbot_url, brid);
        report(&ev);
        free(ev.url);
    }
    props_free(&b.props);
    json_decref(b.sourcestamps);
}
