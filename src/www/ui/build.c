/*
 * A build (/builders/N/builds/M): its result, status, times, neighbours,
 * steps -- a failed step open with the last 40 lines of its logs -- changes
 * and the people responsible, properties and worker.  And a log page
 * (/builders/N/builds/M/steps/S/logs/SLUG): 1,000 lines a page rendered
 * here, colours included, with an anchor on every line (#L123), so a log
 * reads without JavaScript; ui.js turns it into a viewer of the whole log.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>

#define PREVIEW_LINES 40
#define LOG_PAGE 1000

struct lines {
    long long no; /* the next line's number */
    bool stdio;   /* lines start with their channel, o / e / h */
    unsigned ansi;
};

static void line_cb(struct buf *out, const char *line, size_t len, void *arg)
{
    struct lines *l = arg;
    char ch = 'o';
    if (l->stdio && len > 0) {
        ch = line[0] == 'e' || line[0] == 'h' ? line[0] : 'o';
        line++;
        len--;
    }
    buf_printf(out, "<span class=\"ln %c\" id=\"L%lld\"><a class=\"no\" href=\"#L%lld\">%lld</a>",
               ch, l->no + 1, l->no + 1, l->no + 1);
    ansi_line(out, line, len, &l->ansi);
    buf_addstr(out, "</span>");
    l->no++;
}

/* Lines [first, last] of a log into the page. */
static void log_lines(struct ui_page *p, const json_t *log, long long first, long long last)
{
    struct lines l = {.no = first, .stdio = strcmp(ui_str(log, "type"), "s") == 0};
    long long next = first;
    char *cause = NULL;
    html_put(&p->out, "<div class=\"log\" data-logid=\"%D\" data-first=\"%D\">",
             ui_int(log, "logid"), first);
    int rc = 1;
    while (rc == 1 && next <= last) {
        long long before = next;
        l.no = next;
        rc = www_log_lines(p->w, ui_int(log, "logid"), &next, last, &p->out, line_cb, &l, &cause);
        if (rc == 1 && next == before)
            break;
    }
    buf_addstr(&p->out, "</div>");
    if (rc < 0) {
        log_error("www: page: log %lld: %s", ui_int(log, "logid"), cause);
        ui_fail(p, 500, "The log could not be read.");
    }
    free(cause);
}

static void step_item(struct ui_page *p, const json_t *build, const json_t *step)
{
    struct buf *b = &p->out;
    const char *cls = ui_result_class(step);
    bool open = strcmp(cls, "failure") == 0 || strcmp(cls, "exception") == 0;
    html_put(b,
             "<li id=\"step-%D\"><details%S><summary><span class=\"pill %s\">%s</span> %D. %s "
             "<span class=\"mut\">%s</span> ",
             ui_int(step, "number"), open ? " open" : "", cls, ui_result_name(step),
             ui_int(step, "number"), ui_str(step, "name"), ui_str(step, "state_string"));
    if (ui_int(step, "started_at") > 0 && ui_int(step, "complete_at") > 0)
        ui_duration(b, ui_int(step, "complete_at") - ui_int(step, "started_at"));
    buf_addstr(b, "</summary>");
    json_t *logs = ui_get(p, "steps/%lld/logs", ui_int(step, "stepid"));
    size_t i;
    json_t *log;
    json_array_foreach(logs, i, log)
    {
        html_put(b,
                 "<div class=\"bar\"><a href=\"/builders/%D/builds/%D/steps/%D/logs/%U\">%s</a>"
                 "<span class=\"mut\">%D lines</span>"
                 "<a href=\"/api/v2/logs/%D/raw_inline\">raw</a></div>",
                 ui_int(build, "builderid"), ui_int(build, "number"), ui_int(step, "number"),
                 ui_str(log, "slug"), ui_str(log, "name"), ui_int(log, "num_lines"),
                 ui_int(log, "logid"));
        long long n = ui_int(log, "num_lines");
        if (open && n > 0)
            log_lines(p, log, n > PREVIEW_LINES ? n - PREVIEW_LINES : 0, n - 1);
    }
    json_t *urls = json_object_get(step, "urls");
    json_t *u;
    json_array_foreach(urls, i, u)
    {
        html_put(b, "<div><a href=\"%s\" rel=\"nofollow\">%s</a></div>", ui_str(u, "url"),
                 ui_str(u, "name"));
    }
    buf_addstr(b, "</details></li>");
}

static void changes(struct ui_page *p, long long buildid)
{
    json_t *ch = ui_get(p, "builds/%lld/changes?limit=50", buildid);
    if (json_array_size(ch) == 0)
        return;
    struct buf *b = &p->out;
    buf_addstr(b, "<h2>Changes and responsible users</h2><ul>");
    size_t i;
    json_t *c;
    json_array_foreach(ch, i, c)
    {
        const char *comments = ui_str(c, "comments");
        size_t first = strcspn(comments, "\n");
        char *title = xstrndup(comments, first);
        html_put(b, "<li><a href=\"/changes/%D\">%s</a> %s <span class=\"mut\">%s</span></li>",
                 ui_int(c, "changeid"), ui_str(c, "revision"), title, ui_str(c, "author"));
        free(title);
    }
    buf_addstr(b, "</ul>");
}

static void properties(struct ui_page *p, const json_t *build)
{
    json_t *props = json_object_get(build, "properties");
    if (json_object_size(props) == 0)
        return;
    struct buf *b = &p->out;
    buf_addstr(b, "<h2>Properties</h2><div class=\"wrap\"><table><thead><tr><th>Name</th>"
                  "<th>Value</th><th class=\"hide-s\">Source</th></tr></thead><tbody>");
    const char *name;
    json_t *v;
    json_object_foreach(props, name, v)
    {
        json_t *value = json_array_get(v, 0);
        char *text = json_is_string(value) ? xstrdup(json_string_value(value))
                                           : json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        html_put(b, "<tr><td>%s</td><td>%s</td><td class=\"hide-s\">%s</td></tr>", name, text,
                 json_string_value(json_array_get(v, 1)));
        free(text);
    }
    buf_addstr(b, "</tbody></table></div>");
}

static void neighbours(struct ui_page *p, long long builderid, long long number)
{
    json_t *near = ui_get(p,
                          "builders/%lld/builds?number__eq=%lld&number__eq=%lld"
                          "&field=number",
                          builderid, number - 1, number + 1);
    struct buf *b = &p->out;
    buf_addstr(b, "<nav class=\"pager\">");
    size_t i;
    json_t *o;
    json_array_foreach(near, i, o)
    {
        long long n = ui_int(o, "number");
        html_put(b, "<a href=\"/builders/%D/builds/%D\" rel=\"%S\">%S #%D</a>", builderid, n,
                 n < number ? "prev" : "next", n < number ? "Previous" : "Next", n);
    }
    buf_addstr(b, "</nav>");
}

static void summary(struct ui_page *p, const json_t *build, const json_t *builder)
{
    struct buf *b = &p->out;
    long long started = ui_int(build, "started_at"), done = ui_int(build, "complete_at");
    html_put(b,
             "<h1><a href=\"/builders/%D\">%s</a> #%D <span class=\"pill %s\" id=\"result\">%s"
             "</span></h1><dl class=\"kv\"><dt>Status</dt><dd id=\"state\">%s</dd>"
             "<dt>Started</dt><dd>",
             ui_int(build, "builderid"), ui_str(builder, "name"), ui_int(build, "number"),
             ui_result_class(build), ui_result_name(build), ui_str(build, "state_string"));
    ui_time(b, started);
    buf_addstr(b, "</dd><dt>Finished</dt><dd>");
    ui_time(b, done);
    buf_addstr(b, "</dd>");
    if (done > 0) {
        buf_addstr(b, "<dt>Duration</dt><dd>");
        ui_duration(b, done - started);
        buf_addstr(b, "</dd>");
    }
    json_t *worker =
        ui_get1(p, "workers/%lld?field=name&field=workerid", ui_int(build, "workerid"));
    if (worker != NULL)
        html_put(b, "<dt>Worker</dt><dd><a href=\"/workers/%D\">%s</a></dd>",
                 ui_int(worker, "workerid"), ui_str(worker, "name"));
    html_put(b, "<dt>Request</dt><dd><a href=\"/buildrequests/%D\">%D</a></dd></dl>",
             ui_int(build, "buildrequestid"), ui_int(build, "buildrequestid"));
}

void ui_page_build(struct ui_page *p, const struct www_args *a)
{
    long long builderid = 0, number = 0;
    www_arg_num(a, "builderid", &builderid);
    www_arg_num(a, "number", &number);
    json_t *builder = ui_get1(p, "builders/%lld", builderid);
    json_t *build = ui_get1(p, "builders/%lld/builds/%lld?property=*", builderid, number);
    if (builder == NULL || build == NULL) {
        ui_fail(p, 404, "There is no such build.");
        return;
    }
    long long buildid = ui_int(build, "buildid");
    char *title = xasprintf("%s #%lld", ui_str(builder, "name"), number);
    ui_head(p, title, "/builders");
    free(title);
    struct buf *b = &p->out;
    html_put(b, "<div data-build=\"%D\" data-complete=\"%d\">", buildid,
             ui_bool(build, "complete"));
    summary(p, build, builder);
    char *here = xasprintf("/builders/%lld/builds/%lld", builderid, number);
    buf_addstr(b, "<div class=\"bar\" id=\"actions\">");
    if (ui_bool(build, "complete"))
        ui_form(p, here, "rebuild", "Rebuild", NULL);
    else
        ui_form(p, here, "stop", "Stop", NULL);
    buf_addstr(b, "</div>");
    free(here);
    neighbours(p, builderid, number);
    json_t *steps = ui_get(p, "builds/%lld/steps", buildid);
    buf_addstr(b, "<h2>Steps</h2><ol class=\"steps\" id=\"steps\">");
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
    {
        if (!ui_bool(s, "hidden"))
            step_item(p, build, s);
    }
    buf_addstr(b, "</ol>");
    changes(p, buildid);
    properties(p, build);
    buf_addstr(b, "</div>");
    ui_foot(p);
}

/* A log page. */

static void log_pager(struct ui_page *p, const char *base, long long page, long long pages)
{
    struct buf *b = &p->out;
    buf_addstr(b, "<nav class=\"pager\">");
    if (page > 0)
        html_put(b, "<a href=\"%s?page=0\">First</a><a href=\"%s?page=%D\">Previous</a>", base,
                 base, page - 1);
    html_put(b, "<span>page %D of %D</span>", page + 1, pages);
    if (page + 1 < pages)
        html_put(b, "<a href=\"%s?page=%D\">Next</a><a href=\"%s?page=%D\">Last</a>", base,
                 page + 1, base, pages - 1);
    buf_addstr(b, "</nav>");
}

void ui_page_log(struct ui_page *p, const struct www_args *a)
{
    long long builderid = 0, number = 0, stepno = 0;
    www_arg_num(a, "builderid", &builderid);
    www_arg_num(a, "number", &number);
    www_arg_num(a, "step", &stepno);
    const char *slug = www_arg_str(a, "slug");
    json_t *log =
        ui_get1(p, "builders/%lld/builds/%lld/steps/%lld/logs/%s", builderid, number, stepno, slug);
    json_t *builder = ui_get1(p, "builders/%lld?field=name", builderid);
    if (log == NULL || builder == NULL) {
        ui_fail(p, 404, "There is no such log.");
        return;
    }
    long long n = ui_int(log, "num_lines");
    long long pages = n > 0 ? (n + LOG_PAGE - 1) / LOG_PAGE : 1;
    const char *arg = ui_arg(p, "page"), *line = ui_arg(p, "line");
    long long page = arg != NULL ? atoll(arg) : line != NULL ? (atoll(line) - 1) / LOG_PAGE : 0;
    if (page < 0 || page >= pages)
        page = pages - 1;
    char *title = xasprintf("%s #%lld %s", ui_str(builder, "name"), number, ui_str(log, "name"));
    ui_head(p, title, "/builders");
    free(title);
    char *base =
        xasprintf("/builders/%lld/builds/%lld/steps/%lld/logs/%s", builderid, number, stepno, slug);
    struct buf *b = &p->out;
    html_put(b,
             "<h1><a href=\"/builders/%D/builds/%D\">%s #%D</a> %s</h1>"
             "<div class=\"bar\" id=\"logbar\"><span class=\"mut\">%D lines</span>"
             "<a href=\"/api/v2/logs/%D/raw\">download</a>"
             "<a href=\"/api/v2/logs/%D/raw_inline\">raw</a></div>",
             builderid, number, ui_str(builder, "name"), number, ui_str(log, "name"), n,
             ui_int(log, "logid"), ui_int(log, "logid"));
    log_pager(p, base, page, pages);
    html_put(b,
             "<div id=\"viewer\" data-logid=\"%D\" data-lines=\"%D\" data-complete=\"%d\" "
             "data-type=\"%s\">",
             ui_int(log, "logid"), n, ui_bool(log, "complete"), ui_str(log, "type"));
    if (n > 0) {
        long long last = (page + 1) * LOG_PAGE - 1;
        log_lines(p, log, page * LOG_PAGE, last < n ? last : n - 1);
    }
    buf_addstr(b, "</div>");
    log_pager(p, base, page, pages);
    free(base);
    ui_foot(p);
}
