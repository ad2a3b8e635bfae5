/*
 * The builders: the list (/builders) with Buildbot's tag filter (tags.c), a
 * name search, builders grouped by their branch tag and shown 100 to a page,
 * each with its last results as dots and its workers; and one builder
 * (/builders/N) with its history, pending requests, workers and force
 * buttons.
 */
#include "www/ui/ui.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_BUILDERS 100
#define DOTS 15
#define HISTORY 50

/* A branch tag: "main", "3.x", "3.14"... (the group a builder is shown under). */
static bool is_branch(const char *t)
{
    if (strcmp(t, "main") == 0 || strcmp(t, "master") == 0 || strcmp(t, "trunk") == 0)
        return true;
    if (!isdigit((unsigned char)t[0]))
        return false;
    const char *dot = strchr(t, '.');
    return dot != NULL && (strcmp(dot, ".x") == 0 || isdigit((unsigned char)dot[1]));
}

static const char *branch_of(const json_t *builder)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(builder, "tags"), i, t)
    {
        if (json_is_string(t) && is_branch(json_string_value(t)))
            return json_string_value(t);
    }
    return "";
}

/* Groups by branch tag (newest version first, untagged last), then by name. */
static int by_branch_cb(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *bx = branch_of(x), *by = branch_of(y);
    if (strcmp(bx, by) != 0) {
        if (*bx == '\0' || *by == '\0')
            return *bx == '\0' ? 1 : -1;
        return strverscmp(by, bx);
    }
    return strcasecmp(ui_str(x, "name"), ui_str(y, "name"));
}

static void worker_names(struct buf *b, json_t *workers, long long builderid)
{
    size_t i, j;
    json_t *w, *on;
    json_array_foreach(workers, i, w)
    {
        json_array_foreach(json_object_get(w, "configured_on"), j, on)
        {
            if (ui_int(on, "builderid") == builderid) {
                bool up = json_array_size(json_object_get(w, "connected_to")) > 0;
                html_put(b, "<a class=\"tag%S\" href=\"/workers/%D\" title=\"%S\">%s</a>",
                         up ? "" : " off", ui_int(w, "workerid"), up ? "connected" : "disconnected",
                         ui_str(w, "name"));
                break;
            }
        }
    }
}

static void builder_row(struct ui_page *p, json_t *bl, json_t *workers)
{
    struct buf *b = &p->out;
    long long id = ui_int(bl, "builderid");
    html_put(b, "<tr><td><a href=\"/builders/%D\">%s</a></td><td class=\"dots\">", id,
             ui_str(bl, "name"));
    json_t *builds = ui_get(p,
                            "builders/%lld/builds?order=-number&limit=%d&field=builderid&"
                            "field=number&field=results&field=complete",
                            id, DOTS);
    for (size_t i = json_array_size(builds); i-- > 0;)
        ui_build_dot(b, json_array_get(builds, i));
    ui_drop(p, builds);
    buf_addstr(b, "</td><td class=\"hide-s\">");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(bl, "tags"), i, t)
    {
        html_put(b, "<span class=\"tag\">%s</span>", json_string_value(t));
    }
    buf_addstr(b, "</td><td class=\"hide-s\">");
    worker_names(b, workers, id);
    buf_addstr(b, "</td></tr>");
}

/* The builders that pass the filters, sorted for display (a new list). */
static json_t *select_builders(struct ui_page *p, json_t *all, const struct ui_tags *f)
{
    const char *q = ui_arg(p, "q");
    bool old = ui_arg(p, "all") != NULL;
    json_t *keep = json_array();
    size_t i;
    json_t *bl;
    json_array_foreach(all, i, bl)
    {
        if (!old && json_array_size(json_object_get(bl, "masterids")) == 0)
            continue;
        if (q != NULL && *q != '\0' && strcasestr(ui_str(bl, "name"), q) == NULL)
            continue;
        if (ui_tags_pass(f, bl))
            json_array_append(keep, bl);
    }
    size_t n = json_array_size(keep);
    json_t **v = xcalloc(n + 1, sizeof *v);
    for (i = 0; i < n; i++)
        v[i] = json_array_get(keep, i);
    qsort(v, n, sizeof *v, by_branch_cb);
    json_t *sorted = json_array();
    for (i = 0; i < n; i++)
        json_array_append(sorted, v[i]);
    free(v);
    json_decref(keep);
    return sorted;
}

static void pager(struct ui_page *p, long long page, size_t n)
{
    struct buf *b = &p->out;
    if (n <= PAGE_BUILDERS)
        return;
    buf_addstr(b, "<nav class=\"pager\">");
    for (long long k = 0; k * PAGE_BUILDERS < (long long)n; k++) {
        if (k == page) {
            html_put(b, "<strong>%D</strong>", k + 1);
            continue;
        }
        html_put(b, "<a href=\"/builders?page=%D", k);
        for (size_t i = 0; i < p->n_kv; i++)
            if (strcmp(p->kv[i].key, "page") != 0)
                html_put(b, "&amp;%U=%U", p->kv[i].key, p->kv[i].value);
        html_put(b, "\">%D</a>", k + 1);
    }
    buf_addstr(b, "</nav>");
}

void ui_page_builders(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    struct ui_tags f;
    ui_tags_read(p, &f);
    json_t *all = ui_get(p, "builders?field=builderid&field=name&field=tags&field=masterids");
    json_t *workers = ui_get(p, "workers?field=workerid&field=name&field=configured_on"
                                "&field=connected_to");
    if (all == NULL || workers == NULL)
        return;
    json_t *shown = select_builders(p, all, &f);
    const char *pg = ui_arg(p, "page");
    long long page = pg != NULL ? atoll(pg) : 0;
    size_t n = json_array_size(shown);
    if (page < 0 || page * PAGE_BUILDERS >= (long long)n)
        page = 0;
    struct buf *b = &p->out;
    ui_head(p, "Builders", "/builders");
    html_put(b, "<h1>Builders (%D)</h1><form class=\"bar\" method=\"get\" action=\"/builders\">",
             (long long)n);
    for (size_t i = 0; i < p->n_kv; i++)
        if (strcmp(p->kv[i].key, "tags") == 0 || strcmp(p->kv[i].key, "tag") == 0)
            html_put(b, "<input type=\"hidden\" name=\"tags\" value=\"%s\">", p->kv[i].value);
    html_put(b,
             "<input type=\"search\" name=\"q\" placeholder=\"name contains\" value=\"%s\" "
             "aria-label=\"name contains\"><button>Search</button></form>",
             ui_arg(p, "q"));
    ui_tags_bar(p, b, all, &f, "/builders");
    const char *group = NULL;
    for (size_t i = (size_t)page * PAGE_BUILDERS; i < n && i < (size_t)(page + 1) * PAGE_BUILDERS;
         i++) {
        json_t *bl = json_array_get(shown, i);
        if (group == NULL || strcmp(group, branch_of(bl)) != 0) {
            if (group != NULL)
                buf_addstr(b, "</tbody></table></div>");
            group = branch_of(bl);
            html_put(b,
                     "<h2>%s</h2><div class=\"wrap\"><table><thead><tr><th>Builder</th>"
                     "<th>Last builds</th><th class=\"hide-s\">Tags</th>"
                     "<th class=\"hide-s\">Workers</th></tr></thead><tbody>",
                     *group != '\0' ? group : "Other builders");
        }
        builder_row(p, bl, workers);
    }
    if (group != NULL)
        buf_addstr(b, "</tbody></table></div>");
    else
        buf_addstr(b, "<p class=\"mut\">No builder matches.</p>");
    pager(p, page, n);
    json_decref(shown);
    ui_foot(p);
}

/* One builder. */

static void history(struct ui_page *p, long long id, long long page)
{
    struct buf *b = &p->out;
    json_t *builds = ui_get(p,
                            "builders/%lld/builds?order=-number&limit=%d&offset=%lld"
                            "&property=owners&property=branch&property=revision",
                            id, HISTORY + 1, page * HISTORY);
    buf_addstr(b, "<h2>Builds</h2><div class=\"wrap\"><table><thead><tr><th>#</th><th>Result"
                  "</th><th>Status</th><th>Started</th><th>Duration</th>"
                  "<th class=\"hide-s\">Branch</th></tr></thead><tbody>");
    for (size_t i = 0; i < json_array_size(builds) && i < HISTORY; i++) {
        json_t *o = json_array_get(builds, i);
        json_t *branch =
            json_array_get(json_object_get(json_object_get(o, "properties"), "branch"), 0);
        html_put(b,
                 "<tr><td><a href=\"/builders/%D/builds/%D\">#%D</a></td>"
                 "<td><span class=\"pill %s\">%s</span></td><td>%s</td><td>",
                 id, ui_int(o, "number"), ui_int(o, "number"), ui_result_class(o),
                 ui_result_name(o), ui_str(o, "state_string"));
        ui_time(b, ui_int(o, "started_at"));
        buf_addstr(b, "</td><td>");
        if (ui_int(o, "complete_at") > 0)
            ui_duration(b, ui_int(o, "complete_at") - ui_int(o, "started_at"));
        html_put(b, "</td><td class=\"hide-s\">%s</td></tr>", json_string_value(branch));
    }
    buf_addstr(b, "</tbody></table></div><nav class=\"pager\">");
    if (page > 0)
        html_put(b, "<a href=\"/builders/%D?page=%D\">Newer</a>", id, page - 1);
    if (json_array_size(builds) > HISTORY)
        html_put(b, "<a href=\"/builders/%D?page=%D\">Older</a>", id, page + 1);
    buf_addstr(b, "</nav>");
}

static void pending(struct ui_page *p, long long id)
{
    json_t *reqs = ui_get(p,
                          "buildrequests?builderid=%lld&claimed=false&complete=false"
                          "&order=-priority&order=submitted_at&limit=100",
                          id);
    if (json_array_size(reqs) == 0)
        return;
    struct buf *b = &p->out;
    html_put(b, "<h2>Pending requests (%D)</h2><ul>", (long long)json_array_size(reqs));
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        html_put(b, "<li><a href=\"/buildrequests/%D\">request %D</a>, priority %D, since ",
                 ui_int(r, "buildrequestid"), ui_int(r, "buildrequestid"), ui_int(r, "priority"));
        ui_time(b, ui_int(r, "submitted_at"));
        buf_addstr(b, "</li>");
    }
    buf_addstr(b, "</ul>");
}

static void forces(struct ui_page *p, long long id)
{
    json_t *fs = ui_get(p, "builders/%lld/forceschedulers", id);
    if (json_array_size(fs) == 0)
        return;
    struct buf *b = &p->out;
    buf_addstr(b, "<div class=\"bar\">");
    size_t i;
    json_t *f;
    json_array_foreach(fs, i, f)
    {
        char *url = xasprintf("/builders/%lld/force/%s", id, ui_str(f, "name"));
        bool may = ui_may(p, url, NULL);
        free(url);
        if (!may) /* the user may not force: no button */
            continue;
        html_put(b, "<a class=\"tag\" href=\"/builders/%D/force/%U\">%s</a>", id, ui_str(f, "name"),
                 *ui_str(f, "button_name") ? ui_str(f, "button_name") : ui_str(f, "name"));
    }
    buf_addstr(b, "</div>");
}

void ui_page_builder(struct ui_page *p, const struct www_args *a)
{
    long long id = 0, page = 0;
    www_arg_num(a, "builderid", &id);
    json_t *bl = ui_get1(p, "builders/%lld", id);
    if (bl == NULL) {
        ui_fail(p, 404, "There is no such builder.");
        return;
    }
    const char *pg = ui_arg(p, "page");
    if (pg != NULL && (page = atoll(pg)) < 0)
        page = 0;
    struct buf *b = &p->out;
    ui_head(p, ui_str(bl, "name"), "/builders");
    html_put(b, "<h1>%s</h1>", ui_str(bl, "name"));
    if (*ui_str(bl, "description"))
        html_put(b, "<p>%s</p>", ui_str(bl, "description"));
    buf_addstr(b, "<div class=\"bar\">");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(bl, "tags"), i, t)
    {
        html_put(b, "<a class=\"tag\" href=\"/builders?tags=%%2B%U\">%s</a>", json_string_value(t),
                 json_string_value(t));
    }
    buf_addstr(b, "</div>");
    forces(p, id);
    pending(p, id);
    history(p, id, page);
    json_t *workers = ui_get(p, "builders/%lld/workers", id);
    buf_addstr(b, "<h2>Workers</h2><p>");
    json_t *w;
    json_array_foreach(workers, i, w)
    {
        bool up = json_array_size(json_object_get(w, "connected_to")) > 0;
        html_put(b, "<a class=\"tag%S\" href=\"/workers/%D\">%s</a> ", up ? "" : " off",
                 ui_int(w, "workerid"), ui_str(w, "name"));
    }
    buf_addstr(b, "</p>");
    ui_foot(p);
}
