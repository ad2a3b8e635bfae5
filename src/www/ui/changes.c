/*
 * Changes: the latest ones (/changes, paged) and one change (/changes/N)
 * with its comments, files and the builds it went into.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>

#define CHANGES_PAGE 50

static void change_row(struct buf *b, const json_t *c)
{
    const char *comments = ui_str(c, "comments");
    char *title = xstrndup(comments, strcspn(comments, "\n"));
    html_put(b,
             "<tr><td><a href=\"/changes/%D\">%D</a></td><td>%s</td><td>%s</td>"
             "<td class=\"hide-s\">%s</td><td>",
             ui_int(c, "changeid"), ui_int(c, "changeid"), ui_str(c, "author"), title,
             ui_str(c, "branch"));
    ui_time(b, ui_int(c, "when_timestamp"));
    buf_addstr(b, "</td></tr>");
    free(title);
}

void ui_page_changes(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    const char *pg = ui_arg(p, "page");
    long long page = pg != NULL ? atoll(pg) : 0;
    if (page < 0)
        page = 0;
    json_t *ch = ui_get(p, "changes?order=-changeid&limit=%d&offset=%lld", CHANGES_PAGE + 1,
                        page * CHANGES_PAGE);
    if (ch == NULL)
        return;
    ui_reverse(ch);
    struct buf *b = &p->out;
    ui_head(p, "Changes", "/changes");
    buf_addstr(b, "<h1>Changes</h1><div class=\"wrap\"><table><thead><tr><th>#</th><th>Author"
                  "</th><th>Comments</th><th class=\"hide-s\">Branch</th><th>When</th></tr>"
                  "</thead><tbody>");
    for (size_t i = 0; i < json_array_size(ch) && i < CHANGES_PAGE; i++)
        change_row(b, json_array_get(ch, i));
    buf_addstr(b, "</tbody></table></div><nav class=\"pager\">");
    if (page > 0)
        html_put(b, "<a href=\"/changes?page=%D\">Newer</a>", page - 1);
    if (json_array_size(ch) > CHANGES_PAGE)
        html_put(b, "<a href=\"/changes?page=%D\">Older</a>", page + 1);
    buf_addstr(b, "</nav>");
    ui_foot(p);
}

void ui_page_change(struct ui_page *p, const struct www_args *a)
{
    long long id = 0;
    www_arg_num(a, "changeid", &id);
    json_t *c = ui_get1(p, "changes/%lld", id);
    if (c == NULL) {
        ui_fail(p, 404, "There is no such change.");
        return;
    }
    json_t *builds = ui_get(p, "changes/%lld/builds?limit=200", id);
    struct buf *b = &p->out;
    char *title = xasprintf("Change %lld", id);
    ui_head(p, title, "/changes");
    free(title);
    html_put(b,
             "<h1>Change %D</h1><dl class=\"kv\"><dt>Author</dt><dd>%s</dd><dt>Revision</dt>"
             "<dd>",
             id, ui_str(c, "author"));
    if (*ui_str(c, "revlink"))
        html_put(b, "<a href=\"%s\" rel=\"nofollow\">%s</a>", ui_str(c, "revlink"),
                 ui_str(c, "revision"));
    else
        html_put(b, "%s", ui_str(c, "revision"));
    html_put(b,
             "</dd><dt>Branch</dt><dd>%s</dd><dt>Repository</dt><dd>%s</dd><dt>Project</dt>"
             "<dd>%s</dd><dt>When</dt><dd>",
             ui_str(c, "branch"), ui_str(c, "repository"), ui_str(c, "project"));
    ui_time(b, ui_int(c, "when_timestamp"));
    html_put(b, "</dd></dl><h2>Comments</h2><pre class=\"log\">%s</pre><h2>Files</h2><ul>",
             ui_str(c, "comments"));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(c, "files"), i, f)
    {
        html_put(b, "<li>%s</li>", json_string_value(f));
    }
    buf_addstr(b, "</ul><h2>Builds</h2><p>");
    json_array_foreach(builds, i, f)
    {
        ui_build_dot(b, f);
    }
    buf_addstr(b, "</p>");
    ui_foot(p);
}
