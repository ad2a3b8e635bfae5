/*
 * The console (/console, Buildbot's console view): the latest changes down
 * (newest first), builders across grouped by their first tag, each cell the
 * dots of the builds that included that change.  Builder names stand
 * upright in narrow headers, cut short, whole in their title.  Only the
 * builders with a build in view are columns; `branch=`, `tags=` / `tag=`,
 * `result=` and `limit=` (30 changes, at most 100) work as on the grid.
 * Columns are cut into pages by size.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHANGES 30
#define CHANGES_MAX 100
#define COLS_MAX 40
#define PAGE_BYTES 34000
#define DOT_BYTES 90
#define NAME_BYTES 20

static const char *group_of(const json_t *row)
{
    const char *t = json_string_value(
        json_array_get(json_object_get(json_object_get(row, "builder"), "tags"), 0));
    return t != NULL ? t : "";
}

/* By first tag (untagged last), then by name. */
static int by_group_cb(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *gx = group_of(x), *gy = group_of(y);
    if (strcmp(gx, gy) != 0) {
        if (*gx == '\0' || *gy == '\0')
            return *gx == '\0' ? 1 : -1;
        return strcmp(gx, gy);
    }
    const char *nx = ui_str(json_object_get(x, "builder"), "name");
    const char *ny = ui_str(json_object_get(y, "builder"), "name");
    int c = strcasecmp(nx, ny);
    return c != 0 ? c : strcmp(nx, ny);
}

static size_t col_bytes(const json_t *r)
{
    size_t n = 90 + strlen(ui_str(json_object_get(r, "builder"), "name")) + NAME_BYTES;
    size_t i;
    json_t *cell;
    json_array_foreach(json_object_get(r, "cells"), i, cell)
    {
        n += 9 + DOT_BYTES * ui_cell_dots(cell);
    }
    return n;
}

/* The two header rows: the groups, then the builders of columns [from, to). */
static void head(struct buf *b, json_t *rows, size_t from, size_t to)
{
    buf_addstr(b, "<thead><tr><th rowspan=\"2\">Change</th>");
    for (size_t k = from; k < to;) {
        const char *g = group_of(json_array_get(rows, k));
        size_t span = 1;
        while (k + span < to && strcmp(group_of(json_array_get(rows, k + span)), g) == 0)
            span++;
        if (*g == '\0')
            g = "other";
        html_put(b, "<th class=\"grp\" colspan=\"%D\" title=\"%s\">", (long long)span, g);
        ui_text_cut(b, g, span * 4 + 4);
        buf_addstr(b, "</th>");
        k += span;
    }
    buf_addstr(b, "</tr><tr>");
    for (size_t k = from; k < to; k++) {
        const json_t *bl = json_object_get(json_array_get(rows, k), "builder");
        html_put(b, "<th class=\"vh\"><a href=\"/builders/%D\" title=\"%s\"><span>",
                 ui_int(bl, "builderid"), ui_str(bl, "name"));
        ui_text_cut(b, ui_str(bl, "name"), NAME_BYTES);
        buf_addstr(b, "</span></a></th>");
    }
    buf_addstr(b, "</tr></thead>");
}

static void body(struct buf *b, const struct ui_view *v, size_t from, size_t to)
{
    buf_addstr(b, "<tbody>");
    size_t i;
    json_t *c;
    json_array_foreach(v->changes, i, c)
    {
        const char *comments = ui_str(c, "comments");
        char *title = xstrndup(comments, strcspn(comments, "\n"));
        buf_addstr(b, "<tr><th class=\"chg\">");
        ui_change_summary(b, c);
        buf_addstr(b, "<br><span class=\"mut\">");
        ui_text_cut(b, title, 48);
        buf_addstr(b, "</span></th>");
        free(title);
        for (size_t k = from; k < to; k++) {
            buf_addstr(b, "<td>");
            ui_cell(b, json_array_get(json_object_get(json_array_get(v->rows, k), "cells"), i));
            buf_addstr(b, "</td>");
        }
        buf_addstr(b, "</tr>");
    }
    buf_addstr(b, "</tbody>");
}

static void table(struct ui_page *p, struct buf *b, const struct ui_view *v)
{
    size_t n = json_array_size(v->rows);
    size_t *w = xcalloc(n + 1, sizeof *w), *starts = xcalloc(n + 1, sizeof *starts);
    for (size_t i = 0; i < n; i++)
        w[i] = col_bytes(json_array_get(v->rows, i));
    long long pages = (long long)ui_cut_pages(w, n, COLS_MAX, PAGE_BYTES, starts);
    long long page = ui_page_arg(p, pages);
    buf_addstr(b, "<div class=\"wrap\"><table class=\"console\">");
    head(b, v->rows, starts[page], starts[page + 1]);
    body(b, v, starts[page], starts[page + 1]);
    buf_addstr(b, "</table></div>");
    ui_pager(p, b, "/console", page, pages);
    free(w);
    free(starts);
}

void ui_page_console(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    struct ui_tags f;
    ui_tags_read(p, &f);
    const char *l = ui_arg(p, "limit");
    int limit = l != NULL ? atoi(l) : CHANGES;
    limit = limit < 1 ? CHANGES : limit > CHANGES_MAX ? CHANGES_MAX : limit;
    struct ui_view v;
    if (ui_view_read(p, &v, limit, &f) < 0)
        return;
    ui_sort(v.rows, by_group_cb);
    struct buf *b = &p->out;
    ui_head(p, "Console", "/console");
    buf_addstr(b, "<h1>Console</h1>");
    ui_view_form(p, b, "/console");
    ui_tags_bar(p, b, v.builders, &f, "/console");
    if (json_array_size(v.changes) == 0)
        buf_addstr(b, "<p class=\"mut\">No change.</p>");
    else if (json_array_size(v.rows) == 0)
        buf_addstr(b, "<p class=\"mut\">No builder matches.</p>");
    else {
        html_put(b, "<p class=\"mut\">%D builders, the last %D changes.</p>",
                 (long long)json_array_size(v.rows), (long long)json_array_size(v.changes));
        table(p, b, &v);
    }
    ui_view_free(&v);
    ui_foot(p);
}
