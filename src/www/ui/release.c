/*
 * /release_status: the problems of each branch's builders and the verdict
 * they add up to, with the rules, words and order of buildbot.python.org's
 * Release Status dashboard (release_dashboard.py and its template):
 *
 * - a builder's newest SUCCESS/WARNINGS/FAILURE build decides: none is "No
 *   builds"; FAILURE is "Tier-N build failed" (release-blocking for tiers 1
 *   and 2), or "Unstable build failed" without the `stable` tag; WARNINGS is
 *   "Warnings from Tier-N build" / "Warnings from unstable build";
 * - a builder no connected worker can run is "Disconnected Tier-N builder"
 *   (or "... unstable builder"), "(with recent build)" when its newest such
 *   build started under 6 hours ago;
 * - problems are ordered by severity, then description, then builder name,
 *   and grouped by description; the first is the branch's featured problem,
 *   whose severity gives the verdict: Unreleasable, Concern or Releasable.
 *
 * The severities are the original's, in its order, including the levels
 * its "(with recent build)" downgrade tests for.
 */
#include "www/ui/release.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a render reads: the cycle's branches and the model's builders, copied or
   referenced once under their locks. */
struct rel_page {
    struct rel_branch *branches;
    size_t n_branches;
    char *path, *cycle_error, *pending;
    struct rel_builder *builders; /* sorted by name */
    size_t n_builders;
};

enum sev {
    NO_INFO = 1,
    NO_PROBLEM,
    DISCONNECTED_UNSTABLE,
    UNSTABLE_WARNINGS,
    UNSTABLE_FAILURE,
    TRIVIAL,
    STABLE_WARNINGS,
    DISCONNECTED_STABLE,
    DISCONNECTED_BLOCKING,
    CONCERNING,
    NONBLOCKING_FAILURE,
    BLOCKING,
    RELEASE_BLOCKING_FAILURE,
};

enum kind { P_FAILURE, P_WARNING, P_DISCONNECTED, P_NO_PROBLEM, P_NO_BUILDS };

struct problem {
    enum kind kind;
    enum sev sev;
    char desc[96];
    const struct rel_builder *b; /* NULL: the featured problem of a branch without builders */
    size_t seq;                  /* keeps the builders' order among equals (a stable sort) */
};

#define RECENT_S (6 * 3600)

static const char *tier_title(int tier)
{
    static const char *const t[] = {"Tier-1", "Tier-2", "Tier-3"};
    return tier >= 1 && tier <= 3 ? t[tier - 1] : "Tierless";
}

static bool blocking(const struct rel_builder *b)
{
    return b->def->tier == 1 || b->def->tier == 2;
}

static void build_problem(const struct rel_builder *b, struct problem *p)
{
    bool failed = b->h->latest.results == 2;
    p->kind = failed ? P_FAILURE : P_WARNING;
    if (!b->def->stable) {
        p->sev = failed ? UNSTABLE_FAILURE : UNSTABLE_WARNINGS;
        snprintf(p->desc, sizeof p->desc, "%s",
                 failed ? "Unstable build failed" : "Warnings from unstable build");
    } else if (failed) {
        p->sev = blocking(b) ? RELEASE_BLOCKING_FAILURE : NONBLOCKING_FAILURE;
        snprintf(p->desc, sizeof p->desc, "%s build failed", tier_title(b->def->tier));
    } else {
        p->sev = STABLE_WARNINGS;
        snprintf(p->desc, sizeof p->desc, "Warnings from %s build", tier_title(b->def->tier));
    }
}

static void disconnected_problem(const struct rel_builder *b, long long now, struct problem *p)
{
    p->kind = P_DISCONNECTED;
    if (!b->def->stable) {
        p->sev = DISCONNECTED_UNSTABLE;
        snprintf(p->desc, sizeof p->desc, "Disconnected unstable builder");
    } else {
        p->sev = blocking(b) ? DISCONNECTED_BLOCKING : DISCONNECTED_STABLE;
        snprintf(p->desc, sizeof p->desc, "Disconnected %s builder", tier_title(b->def->tier));
    }
    long long age = now - b->h->latest.started_at;
    if (b->h->has_latest && b->h->latest.started_at > 0 && age != 0 && age < RECENT_S) {
        strncat(p->desc, " (with recent build)", sizeof p->desc - strlen(p->desc) - 1);
        if (p->sev >= BLOCKING)
            p->sev = CONCERNING;
        if (p->sev >= CONCERNING)
            p->sev = TRIVIAL;
    }
}

/* A builder's problems (at most two) in their order; 0 when it has none. */
static size_t builder_problems(const struct rel_builder *b, long long now, struct problem out[2])
{
    memset(out, 0, 2 * sizeof *out);
    out[0].b = out[1].b = b;
    if (!b->h->has_latest) {
        out[0].kind = P_NO_BUILDS;
        out[0].sev = NO_INFO;
        snprintf(out[0].desc, sizeof out[0].desc, "No builds");
        return 1;
    }
    size_t n = 0;
    if (b->h->latest.results != 0)
        build_problem(b, &out[n++]);
    if (b->connected == 0)
        disconnected_problem(b, now, &out[n++]);
    if (n == 2 && (out[1].sev > out[0].sev ||
                   (out[1].sev == out[0].sev && strcmp(out[1].desc, out[0].desc) < 0))) {
        struct problem t = out[0];
        out[0] = out[1];
        out[1] = t;
    }
    return n;
}

static int order_cb(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->sev != y->sev)
        return x->sev > y->sev ? -1 : 1;
    int c = strcmp(x->desc, y->desc);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A branch's problems, in order (the builders are sorted by name); `*n` of them. */
static struct problem *branch_problems(const struct rel_page *r, int branch, long long now,
                                       size_t *n)
{
    struct problem *v = xcalloc(2 * r->n_builders + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < r->n_builders; i++) {
        const struct rel_builder *b = &r->builders[i];
        if (b->branch != branch)
            continue;
        size_t got = builder_problems(b, now, &v[k]);
        if (got == 0) {
            v[k] = (struct problem){.kind = P_NO_PROBLEM, .sev = NO_PROBLEM, .b = b};
            snprintf(v[k].desc, sizeof v[k].desc, "No problem detected");
            got = 1;
        }
        for (size_t j = 0; j < got; j++)
            v[k + j].seq = k + j;
        k += got;
    }
    qsort(v, k, sizeof *v, order_cb);
    *n = k;
    return v;
}

static const char *verdict(enum sev s)
{
    return s == NO_INFO      ? "N/A"
           : s >= BLOCKING   ? "Unreleasable"
           : s >= CONCERNING ? "Concern"
                             : "Releasable";
}

static const char *sev_class(enum sev s)
{
    return s == NO_INFO      ? "none"
           : s >= BLOCKING   ? "danger"
           : s >= CONCERNING ? "warning"
                             : "success";
}

static const char *sev_symbol(enum sev s)
{
    return s == NO_INFO ? "" : s >= BLOCKING ? "\u2718" : s >= CONCERNING ? "\u26a0" : "\u2714";
}

static const char *const result_names[] = {"success",   "warnings", "failure",  "skipped",
                                           "exception", "retry",    "cancelled"};

static const char *result_name(long long r)
{
    return r >= 0 && r <= 6 ? result_names[r] : "unknown";
}

static void dot(struct buf *out, const struct rel_build *b)
{
    html_put(out, "<a class=\"dot %s\" href=\"/builders/%D/builds/%D\" title=\"#%D %s\"></a>",
             result_name(b->results), b->builderid, b->number, b->number, result_name(b->results));
}

/* "#12 (failure, <time>; took 5 min 2 s)" and, for a stable builder, its JUnit failures and
   its changes. */
static void build_info(struct ui_page *p, const struct rel_builder *bl, const struct rel_build *b,
                       const char *junit, const char *changes)
{
    struct buf *out = &p->out;
    dot(out, b);
    html_put(out, " <a href=\"/builders/%D/builds/%D\">#%D</a> (%s, ", b->builderid, b->number,
             b->number, result_name(b->results));
    ui_time(out, b->started_at);
    if (b->started_at >= 0 && b->complete_at >= 0 && b->locks >= 0) {
        buf_addstr(out, "; took ");
        ui_duration(out, b->complete_at - b->started_at - b->locks);
    }
    buf_addstr(out, ")");
    if (bl->def->stable && junit != NULL)
        buf_addstr(out, junit);
    if (bl->def->stable && changes != NULL)
        buf_addstr(out, changes);
}

static void problem_builder(struct ui_page *p, const struct problem *pr, bool has_problems)
{
    struct buf *out = &p->out;
    const struct rel_builder *b = pr->b;
    const struct rel_hist *h = b->h;
    html_put(out, "<h4><a href=\"/builders/%D\">%s</a>", b->def->id, b->def->name);
    for (size_t i = 0; i < b->def->n_tags; i++)
        html_put(out, " <span class=\"tag\">%s</span>", b->def->tags[i]);
    buf_addstr(out, "</h4>");
    if (b->connected == 0) {
        buf_addstr(out, "<div>Disconnected! \xf0\x9f\x94\x8c");
        if (h->n_builds > 0) {
            buf_addstr(out, " Last build ");
            ui_time(out, h->builds[0].started_at);
        }
        buf_addstr(out, "</div>");
    }
    size_t show = has_problems ? REL_DOTS : 3;
    buf_addstr(out, "<div class=\"dots\">");
    for (size_t i = 0; i < h->n_builds && i < show; i++)
        dot(out, &h->builds[i]);
    if (h->n_builds > show)
        buf_addstr(out, " \u22ef");
    buf_addstr(out, "</div>");
    if (pr->kind == P_FAILURE) {
        buf_addstr(out, "<div>Latest build: ");
        build_info(p, b, &h->latest, h->latest_junit, h->latest_changes);
        buf_addstr(out, "</div>");
        if (h->has_breaking && h->breaking.buildid != h->latest.buildid) {
            buf_addstr(out, "<div>Breaking build: ");
            build_info(p, b, &h->breaking, h->breaking_junit, h->breaking_changes);
            buf_addstr(out, "</div>");
        }
    } else if (pr->kind == P_WARNING) {
        buf_addstr(out, "<div>Warning build: ");
        build_info(p, b, &h->latest, h->latest_junit, h->latest_changes);
        buf_addstr(out, "</div>");
    }
}

/* Has the builder any problem (not "No problem detected")?  It then shows 50 dots. */
static bool has_problems(const struct rel_builder *b, long long now)
{
    struct problem two[2];
    return builder_problems(b, now, two) > 0;
}

static void branch_section(const struct rel_page *r, struct ui_page *p, size_t bi,
                           const struct problem *v, size_t n, long long now)
{
    struct buf *out = &p->out;
    const struct rel_branch *br = &r->branches[bi];
    const char *title = strcmp(br->tag, "3.x") == 0 ? "main" : br->tag;
    html_put(out, "<section class=\"rel-branch sev-%S\" id=\"branch-section-%s\"><h3>%s",
             sev_class(v[0].sev), br->tag, title);
    if (strcmp(br->version, title) != 0)
        html_put(out, " (%s)", br->version);
    buf_addstr(out, "</h3>");
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(v[j].desc, v[i].desc) == 0)
            j++;
        html_put(out, "<details class=\"rel-group\"%S><summary>%s (%D)</summary>",
                 v[i].sev > TRIVIAL ? " open" : "", v[i].desc, (long long)(j - i));
        for (size_t k = i; k < j; k++) {
            buf_addstr(out, "<section class=\"rel-problem\">");
            if (v[k].b != NULL)
                problem_builder(p, &v[k], has_problems(v[k].b, now));
            else
                html_put(out, "%s", v[k].desc);
            buf_addstr(out, "</section>");
        }
        buf_addstr(out, "</details>");
        i = j;
    }
    buf_addstr(out, "</section>");
}

/* Jinja's `title`: each word capitalised ("bugfix" -> "Bugfix"). */
static void title_case(struct buf *out, const char *s)
{
    char t[64];
    snprintf(t, sizeof t, "%s", s);
    bool start = true;
    for (char *c = t; *c != '\0'; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
        if (alpha)
            *c = start ? (char)(*c & ~0x20) : (char)(*c | 0x20);
        start = !alpha && !(*c >= '0' && *c <= '9');
    }
    html_put(out, "%s", t);
}

/* A branch's panel; `page`: the address of the release page ("" on the page itself). */
static void branch_panel(struct buf *out, const struct rel_branch *br, const struct problem *f,
                         const char *page)
{
    html_put(out,
             "<div class=\"rel-panel sev-%S\" data-branch=\"%s\"><h3><a "
             "href=\"%S#branch-section-%s\">%s</a></h3><div class=\"rel-verdict\"><span "
             "aria-hidden=\"true\">%S</span> %S</div><div class=\"rel-featured\">%s</div>"
             "<div class=\"mut\">",
             sev_class(f->sev), br->tag, page, br->tag, br->version, sev_symbol(f->sev),
             verdict(f->sev), f->desc);
    if (br->branch != NULL) {
        buf_addstr(out, "<div>");
        title_case(out, br->status);
        html_put(out, " branch <code>%s</code></div>", br->branch);
    } else {
        buf_addstr(out, "<div>No branch</div>");
    }
    if (br->pep >= 0)
        html_put(out, "<div>Schedule: <a href=\"https://peps.python.org/pep-%D/\">PEP %D</a></div>",
                 br->pep, br->pep);
    if (br->rm != NULL) {
        const char *sp = strchr(br->rm, ' ');
        buf_addstr(out, "<div><abbr title=\"Release Manager\">RM</abbr>: ");
        html_text(out, br->rm, sp != NULL ? (size_t)(sp - br->rm) : strlen(br->rm));
        buf_addstr(out, "</div>");
    }
    buf_addstr(out, "</div></div>");
}

static void cycle_notice(const struct rel_page *r, struct buf *out)
{
    if (r->path == NULL)
        buf_addstr(out, "<p class=\"mut\">No release cycle is configured: set "
                        "<code>www.release_cycle</code> in master.lua to the path of a file, or "
                        "to an http(s) URL, in the format of "
                        "https://peps.python.org/api/release-cycle.json.</p>");
    else if (r->pending != NULL)
        html_put(out,
                 "<p class=\"mut\">The release cycle is being fetched from %s: no branches "
                 "yet. This page shows them once the first copy has arrived (the master's log "
                 "says why if a fetch fails).</p>",
                 r->pending);
    else if (r->cycle_error != NULL)
        html_put(out, "<p class=\"rel-error\">The release cycle %s could not be read (%s)%S.</p>",
                 r->path, r->cycle_error,
                 r->n_branches > 0 ? "; these are the branches of the last good copy" : "");
}

static void render(const struct rel_page *r, struct ui_page *p)
{
    struct buf *out = &p->out;
    long long now = (long long)time(NULL);
    size_t nb = r->n_branches;
    struct problem **probs = xcalloc(nb + 1, sizeof *probs);
    size_t *counts = xcalloc(nb + 1, sizeof *counts);
    ui_head(p, "Release status", "/release_status");
    buf_addstr(out, "<h1>Python Release Status Dashboard</h1>");
    cycle_notice(r, out);
    buf_addstr(out, "<div class=\"rel-panels\">");
    for (size_t i = 0; i < nb; i++) {
        probs[i] = branch_problems(r, (int)i, now, &counts[i]);
        struct problem none = {.kind = P_NO_BUILDS, .sev = NO_INFO, .desc = "No builds"};
        branch_panel(out, &r->branches[i], counts[i] > 0 ? &probs[i][0] : &none, "");
    }
    buf_addstr(out, "</div><h2>Problems by Branch</h2>");
    for (size_t i = 0; i < nb; i++)
        if (counts[i] > 0)
            branch_section(r, p, i, probs[i], counts[i], now);
    buf_addstr(out, "<p class=\"mut\">Generated ");
    ui_time(out, now);
    buf_addstr(out, "</p>");
    ui_foot(p);
    for (size_t i = 0; i < nb; i++)
        free(probs[i]);
    free(probs);
    free(counts);
}

/* The first branch of the cycle whose tag the builder has, or -1. */
static int branch_of(const struct rel_page *r, const struct rel_bdef *b)
{
    for (size_t i = 0; i < r->n_branches; i++)
        for (size_t k = 0; k < b->n_tags; k++)
            if (strcmp(b->tags[k], r->branches[i].tag) == 0)
                return (int)i;
    return -1;
}

/* The builders on the cycle's branches, from the view. */
static void page_builders(struct rel_page *r, const struct rel_view *v)
{
    r->builders = xcalloc(v->set->n + 1, sizeof *r->builders);
    for (size_t i = 0; i < v->set->n; i++) {
        int branch = branch_of(r, &v->set->v[i]);
        if (branch >= 0)
            r->builders[r->n_builders++] =
                (struct rel_builder){&v->set->v[i], v->hist[i], v->connected[i], branch};
    }
}

/* 503 with Retry-After and a page that reloads itself: what it shows is not there yet, and
   no client (a monitor, a cache, a script) should take it for the verdicts. */
static void warming_up(struct ui_page *p, size_t done, size_t total, const char *error)
{
    char msg[512];
    if (total == 0)
        snprintf(msg, sizeof msg, "The release status is warming up (reading the builders)");
    else
        snprintf(msg, sizeof msg, "The release status is warming up (%zu of %zu builders read)",
                 done, total);
    if (error != NULL)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "; the last read failed: %s", error);
    strncat(msg, ". This page reloads itself.", sizeof msg - strlen(msg) - 1);
    p->refresh = 5;
    ui_fail(p, 503, msg);
}

void ui_page_release(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    struct ui_release *rel = p->w->release;
    struct rel_page r = {0};
    struct rel_view v;
    size_t done = 0, total = 0;
    char *error = NULL;
    bool configured =
        rel_cycle_get(rel, &r.branches, &r.n_branches, &r.path, &r.cycle_error, &r.pending);
    if (configured && !rel_view_take(rel, &v, &done, &total, &error)) {
        warming_up(p, done, total, error);
    } else {
        if (configured)
            page_builders(&r, &v);
        render(&r, p);
        if (configured)
            rel_view_drop(&v);
    }
    free(error);
    free(r.builders);
    rel_branches_free(r.branches, r.n_branches);
    free(r.path);
    free(r.cycle_error);
    free(r.pending);
}

void ui_release_panels(struct ui_page *p)
{
    struct ui_release *rel = p->w->release;
    struct rel_page r = {0};
    struct rel_view v;
    size_t done = 0, total = 0;
    char *error = NULL;
    if (!rel_cycle_get(rel, &r.branches, &r.n_branches, &r.path, &r.cycle_error, &r.pending)) {
        /* no release cycle configured: no branch to judge */
    } else if (!rel_view_take(rel, &v, &done, &total, &error)) {
        html_put(&p->out,
                 "<h2>Branch health</h2><p class=\"mut\"><a href=\"/release_status\">The release "
                 "status</a> is warming up (%D of %D builders read).</p>",
                 (long long)done, (long long)total);
    } else {
        page_builders(&r, &v);
        long long now = (long long)time(NULL);
        buf_addstr(&p->out, "<h2>Branch health</h2><div class=\"rel-panels\">");
        for (size_t i = 0; i < r.n_branches; i++) {
            size_t n = 0;
            struct problem *probs = branch_problems(&r, (int)i, now, &n);
            struct problem none = {.kind = P_NO_BUILDS, .sev = NO_INFO, .desc = "No builds"};
            branch_panel(&p->out, &r.branches[i], n > 0 ? &probs[0] : &none, "/release_status");
            free(probs);
        }
        buf_addstr(&p->out, "</div>");
        rel_view_drop(&v);
    }
    free(error);
    free(r.builders);
    rel_branches_free(r.branches, r.n_branches);
    free(r.path);
    free(r.cycle_error);
    free(r.pending);
}

/* buildbot.python.org's old addresses of the page: the wsgi_dashboards plugin's. */
void ui_page_release_old(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    p->redirect = xstrdup("/release_status");
}
