/*
 * The grid (/grid, Buildbot's grid view): builders down, the latest changes
 * across (newest first), each cell the dots of the builds that change went
 * into on that builder.  `branch=` keeps the changes of one branch (the
 * links CPython posts on every pull request are /grid?branch=refs/pull/N/merge),
 * `tags=` / `tag=` filter the builders as on /builders, `result=` keeps the
 * builders whose latest build in view has that result, `limit=` sets the
 * number of changes (20, at most 50).  Rows are cut into pages by size.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>

#define CHANGES 20
#define CHANGES_MAX 50
#define ROWS_MAX 50
#define PAGE_BYTES 34000
#define DOT_BYTES 90

/* The header of a change's column; with every branch shown, its branch links to its grid. */
static void change_head(struct ui_page *p, struct buf *b, const json_t *c, bool branches)
{
    buf_addstr(b, "<th class=\"ch\">");
    ui_change_summary(b, c);
    const char *branch = ui_str(c, "branch");
    if (branches && *branch != '\0') {
        static const char *const drop[] = {"branch", "page", NULL};
        buf_addstr(b, "<br><a class=\"mut\" href=\"/grid?");
        ui_keep_args(p, b, drop);
        html_put(b, "branch=%U\">", branch);
        ui_text_cut(b, branch, 24);
        buf_addstr(b, "</a>");
    }
    buf_addstr(b, "</th>");
}

static void row(struct buf *b, const json_t *r)
{
    const json_t *bl = json_object_get(r, "builder");
    html_put(b, "<tr><th><a href=\"/builders/%D\">%s</a></th>", ui_int(bl, "builderid"),
             ui_str(bl, "name"));
    size_t i;
    json_t *cell;
    json_array_foreach(json_object_get(r, "cells"), i, cell)
    {
        buf_addstr(b, "<td>");
        ui_cell(b, cell);
        buf_addstr(b, "</td>");
    }
    buf_addstr(b, "</tr>");
}

static size_t row_bytes(const json_t *r)
{
    size_t n = 60 + strlen(ui_str(json_object_get(r, "builder"), "name"));
    size_t i;
    json_t *cell;
    json_array_foreach(json_object_get(r, "cells"), i, cell)
    {
        n += 9 + DOT_BYTES * ui_cell_dots(cell);
    }
    return n;
}

static void table(struct ui_page *p, struct buf *b, const struct ui_view *v, bool branches)
{
    size_t n = json_array_size(v->rows);
    size_t *w = xcalloc(n + 1, sizeof *w), *starts = xcalloc(n + 1, sizeof *starts);
    for (size_t i = 0; i < n; i++)
        w[i] = row_bytes(json_array_get(v->rows, i));
    long long pages = (long long)ui_cut_pages(w, n, ROWS_MAX, PAGE_BYTES, starts);
    long long page = ui_page_arg(p, pages);
    buf_addstr(b, "<div class=\"wrap\"><table class=\"grid\"><thead><tr><th>Builder</th>");
    size_t i;
    json_t *c;
    json_array_foreach(v->changes, i, c)
    {
        change_head(p, b, c, branches);
    }
    buf_addstr(b, "</tr></thead><tbody>");
    for (size_t k = starts[page]; k < starts[page + 1]; k++)
        row(b, json_array_get(v->rows, k));
    buf_addstr(b, "</tbody></table></div>");
    ui_pager(p, b, "/grid", page, pages);
    free(w);
    free(starts);
}

static int changes_arg(const struct ui_page *p)
{
    const char *l = ui_arg(p, "limit");
    int n = l != NULL ? atoi(l) : CHANGES;
    return n < 1 ? CHANGES : n > CHANGES_MAX ? CHANGES_MAX : n;
}

void ui_page_grid(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    struct ui_tags f;
    ui_tags_read(p, &f);
    const char *branch = ui_arg(p, "branch");
    bool one_branch = branch != NULL && *branch != '\0';
    struct ui_view v;
    if (ui_view_read(p, &v, changes_arg(p), &f) < 0)
        return;
    struct buf *b = &p->out;
    ui_head(p, "Grid", "/grid");
    buf_addstr(b, "<h1>Grid</h1>");
    ui_view_form(p, b, "/grid");
    ui_tags_bar(p, b, v.builders, &f, "/grid");
    size_t nc = json_array_size(v.changes), nr = json_array_size(v.rows);
    if (nc == 0) {
        html_put(b, "<p class=\"mut\">No change%S%s.</p>", one_branch ? " on branch " : "",
                 one_branch ? branch : NULL);
    } else if (nr == 0) {
        html_put(b, "<p class=\"mut\">No builder matches for the last %D changes.</p>",
                 (long long)nc);
    } else {
        html_put(b, "<p class=\"mut\">%D builders, the last %D changes%S%s.</p>", (long long)nr,
                 (long long)nc, one_branch ? " on branch " : "", one_branch ? branch : NULL);
        table(p, b, &v, !one_branch);
    }
    ui_view_free(&v);
    ui_foot(p);
}
