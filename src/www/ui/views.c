/*
 * What the grid and the console show: the latest changes (on one branch
 * with `branch=`) and, for each, the builds it went into -- the builds of
 * every buildset holding the change's source stamp, as
 * /api/v2/changes/N/builds gives them -- arranged by builder.  As in
 * Buildbot's grid, only the builders with a build in view are kept, after
 * the tag filter and `result=` (the result of the builder's latest build in
 * view).  And what keeps those pages small: a dense view is cut into pages
 * by an estimate of their size, and a pager that names a few pages around
 * the current one.
 */
#include "www/ui/ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BUILD_FIELDS "field=buildid&field=number&field=builderid&field=results&field=complete"
#define MAX_BUILDS 2000
#define CELL_DOTS 3

static const char *const results[] = {"success",   "warnings", "failure",   "skipped",
                                      "exception", "retry",    "cancelled", "running"};

/* "(all)" is what Buildbot's select calls no filter. */
static bool no_result_filter(const char *name)
{
    return name == NULL || *name == '\0' || strcmp(name, "(all)") == 0;
}

bool ui_result_known(const char *name)
{
    if (no_result_filter(name))
        return true;
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        if (strcmp(name, results[i]) == 0)
            return true;
    return false;
}

void ui_result_options(struct buf *b, const char *current)
{
    html_put(b, "<option value=\"\">all</option>");
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        html_put(b, "<option%S>%S</option>",
                 current != NULL && strcmp(current, results[i]) == 0 ? " selected" : "",
                 results[i]);
}

/* The row of `builderid`, made on its first build; JSON null for a builder not shown. */
static json_t *row_of(json_t *by_id, json_t *builders, const struct ui_tags *f, long long id,
                      size_t n_cols)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", id);
    json_t *row = json_object_get(by_id, key);
    if (row != NULL)
        return row;
    json_t *bl = json_object_get(builders, key);
    if (bl == NULL || !ui_tags_pass(f, bl)) {
        json_object_set_new(by_id, key, json_null());
        return json_null();
    }
    json_t *cells = json_array();
    for (size_t i = 0; i < n_cols; i++)
        json_array_append_new(cells, json_array());
    row = json_pack("{sOso}", "builder", bl, "cells", cells);
    json_object_set_new(by_id, key, row);
    return row;
}

/* The builder's latest build in view. */
static const json_t *latest(const json_t *row)
{
    const json_t *best = NULL;
    size_t i, j;
    json_t *cell, *b;
    json_array_foreach(json_object_get(row, "cells"), i, cell)
    {
        json_array_foreach(cell, j, b)
        {
            if (best == NULL || ui_int(b, "buildid") > ui_int(best, "buildid"))
                best = b;
        }
    }
    return best;
}

static int by_name_cb(const void *a, const void *b)
{
    const char *x = ui_str(json_object_get(*(json_t *const *)a, "builder"), "name");
    const char *y = ui_str(json_object_get(*(json_t *const *)b, "builder"), "name");
    int c = strcasecmp(x, y);
    return c != 0 ? c : strcmp(x, y);
}

void ui_sort(json_t *list, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(list);
    json_t **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(list, i));
    qsort(v, n, sizeof *v, cmp);
    json_array_clear(list);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, v[i]);
    free(v);
}

/* The rows of the builders kept, sorted by name. */
static json_t *keep_rows(json_t *by_id, const char *result)
{
    json_t *rows = json_array();
    const char *key;
    json_t *row;
    json_object_foreach(by_id, key, row)
    {
        if (json_is_null(row))
            continue;
        if (!no_result_filter(result) && strcmp(ui_result_name(latest(row)), result) != 0)
            continue;
        json_array_append(rows, row);
    }
    ui_sort(rows, by_name_cb);
    return rows;
}

/* Every builder by its id ("5": {...}). */
static json_t *builders_by_id(json_t *builders)
{
    json_t *by_id = json_object();
    size_t i;
    json_t *bl;
    json_array_foreach(builders, i, bl)
    {
        char key[32];
        snprintf(key, sizeof key, "%lld", ui_int(bl, "builderid"));
        json_object_set(by_id, key, bl);
    }
    return by_id;
}

int ui_view_read(struct ui_page *p, struct ui_view *v, int n_changes, const struct ui_tags *f)
{
    memset(v, 0, sizeof *v);
    if (!ui_result_known(ui_arg(p, "result"))) {
        ui_fail(p, 400,
                "result= takes success, warnings, failure, skipped, exception, retry, "
                "cancelled or running.");
        return -1;
    }
    const char *branch = ui_arg(p, "branch");
    json_t *all = ui_get(p, "builders");
    if (branch != NULL && *branch != '\0')
        v->changes = ui_get(p, "changes?order=-changeid&limit=%d&branch=%s", n_changes,
                            ui_query_value(p, branch));
    else
        v->changes = ui_get(p, "changes?order=-changeid&limit=%d", n_changes);
    if (all == NULL || v->changes == NULL)
        return -1;
    ui_reverse(v->changes);
    v->builders = all;
    json_t *builders = builders_by_id(all), *by_id = json_object();
    size_t n = json_array_size(v->changes);
    int rc = 0;
    for (size_t c = 0; c < n && rc == 0; c++) {
        json_t *builds = ui_get(p, "changes/%lld/builds?order=buildid&limit=%d&" BUILD_FIELDS,
                                ui_int(json_array_get(v->changes, c), "changeid"), MAX_BUILDS);
        if (builds == NULL)
            rc = -1;
        size_t i;
        json_t *b;
        json_array_foreach(builds, i, b)
        {
            json_t *row = row_of(by_id, builders, f, ui_int(b, "builderid"), n);
            if (!json_is_null(row))
                json_array_append(json_array_get(json_object_get(row, "cells"), c), b);
        }
    }
    if (rc == 0)
        v->rows = keep_rows(by_id, ui_arg(p, "result"));
    json_decref(by_id);
    json_decref(builders);
    return rc;
}

void ui_view_form(const struct ui_page *p, struct buf *b, const char *path)
{
    html_put(b,
             "<form class=\"bar\" method=\"get\" action=\"%S\"><label>Branch <input "
             "name=\"branch\" value=\"%s\" placeholder=\"all\"></label><label>Result "
             "<select name=\"result\">",
             path, ui_arg(p, "branch"));
    ui_result_options(b, ui_arg(p, "result"));
    buf_addstr(b, "</select></label>");
    static const char *const keep[] = {"tags", "tag", "limit", NULL};
    ui_hidden_args(p, b, keep);
    buf_addstr(b, "<button>Show</button></form>");
}

void ui_view_free(struct ui_view *v)
{
    json_decref(v->rows);
    v->rows = NULL;
}

size_t ui_cell_dots(const json_t *cell)
{
    size_t n = json_array_size(cell);
    return n > CELL_DOTS ? CELL_DOTS + 1 : n;
}

void ui_cell(struct buf *b, const json_t *cell)
{
    size_t n = json_array_size(cell);
    if (n > CELL_DOTS)
        html_put(b, "<span class=\"mut\">+%D</span>", (long long)(n - CELL_DOTS));
    for (size_t i = n > CELL_DOTS ? n - CELL_DOTS : 0; i < n; i++)
        ui_build_dot(b, json_array_get(cell, i));
}

/* At most `max` bytes of `s`, not cutting a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

void ui_text_cut(struct buf *b, const char *s, size_t max)
{
    size_t n = utf8_prefix(s, max);
    html_text(b, s, n);
    if (s[n] != '\0')
        buf_addstr(b, "\xe2\x80\xa6");
}

void ui_change_summary(struct buf *b, const json_t *c)
{
    const char *comments = ui_str(c, "comments"), *rev = ui_str(c, "revision");
    size_t first = strcspn(comments, "\n");
    char *title = xstrndup(comments, first < 200 ? first : utf8_prefix(comments, 200));
    html_put(b, "<a href=\"/changes/%D\" title=\"%s\">", ui_int(c, "changeid"), title);
    if (*rev != '\0')
        html_text(b, rev, utf8_prefix(rev, 8));
    else
        html_put(b, "#%D", ui_int(c, "changeid"));
    const char *author = ui_str(c, "author");
    const char *mail = strstr(author, " <");
    char *name = xstrndup(author, mail != NULL ? (size_t)(mail - author) : strlen(author));
    buf_addstr(b, "</a> <span class=\"mut\">");
    ui_text_cut(b, name, 24);
    buf_addstr(b, "</span>");
    free(name);
    free(title);
}

size_t ui_cut_pages(const size_t *w, size_t n, size_t max, size_t budget, size_t *starts)
{
    size_t pages = 0, items = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || items == max || (items > 0 && sum + w[i] > budget)) {
            starts[pages++] = i;
            items = 0;
            sum = 0;
        }
        items++;
        sum += w[i];
    }
    starts[pages] = n;
    return pages;
}

long long ui_page_arg(const struct ui_page *p, long long pages)
{
    const char *pg = ui_arg(p, "page");
    long long page = pg != NULL ? atoll(pg) : 0;
    return page < 0 || page >= pages ? 0 : page;
}

static void page_link(const struct ui_page *p, struct buf *b, const char *path, long long k,
                      const char *label)
{
    static const char *const drop[] = {"page", NULL};
    html_put(b, "<a href=\"%S?", path);
    ui_keep_args(p, b, drop);
    html_put(b, "page=%D\">%S</a>", k, label);
}

void ui_pager(const struct ui_page *p, struct buf *b, const char *path, long long page,
              long long pages)
{
    if (pages <= 1)
        return;
    buf_addstr(b, "<nav class=\"pager\" aria-label=\"pages\">");
    if (page > 0)
        page_link(p, b, path, page - 1, "Previous");
    for (long long k = 0; k < pages; k++) {
        bool near = k == 0 || k == pages - 1 || (k >= page - 2 && k <= page + 2);
        if (!near) {
            if (k == page - 3 || k == page + 3)
                buf_addstr(b, "<span class=\"mut\">\xe2\x80\xa6</span>");
            continue;
        }
        char label[24];
        snprintf(label, sizeof label, "%lld", k + 1);
        if (k == page)
            html_put(b, "<strong>%S</strong>", label);
        else
            page_link(p, b, path, k, label);
    }
    if (page + 1 < pages)
        page_link(p, b, path, page + 1, "Next");
    buf_addstr(b, "</nav>");
}

void ui_hidden_args(const struct ui_page *p, struct buf *b, const char *const *keys)
{
    for (size_t i = 0; i < p->n_kv; i++)
        for (const char *const *k = keys; *k != NULL; k++)
            if (strcmp(p->kv[i].key, *k) == 0)
                html_put(b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">", p->kv[i].key,
                         p->kv[i].value);
}
