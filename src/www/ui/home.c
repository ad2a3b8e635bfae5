/*
 * The home page (/): what is running now with an estimate of when it ends
 * (the mean duration of the builder's last five builds), the last completed
 * builds, how many requests wait, and which workers are away.
 */
#include "www/ui/ui.h"

#include <time.h>

#define RECENT 20
#define RUNNING_MAX 200

/* Mean seconds of the builder's last complete builds, or -1. */
static long long mean_duration(struct ui_page *p, long long builderid)
{
    json_t *done = ui_get(p, "builders/%lld/builds?complete=true&order=-number&limit=5", builderid);
    long long sum = 0, n = 0;
    size_t i;
    json_t *b;
    json_array_foreach(done, i, b)
    {
        long long s = ui_int(b, "started_at"), e = ui_int(b, "complete_at");
        if (s > 0 && e >= s) {
            sum += e - s;
            n++;
        }
    }
    return n > 0 ? sum / n : -1;
}

static void running(struct ui_page *p, json_t *builders)
{
    json_t *run = ui_get(p, "builds?complete=false&order=-started_at&limit=%d", RUNNING_MAX);
    if (run == NULL)
        return;
    struct buf *b = &p->out;
    html_put(b, "<h2 id=\"running\">Running builds (%d)</h2>", (int)json_array_size(run));
    if (json_array_size(run) == 0) {
        buf_addstr(b, "<p class=\"mut\">Nothing is running.</p>");
        return;
    }
    buf_addstr(b, "<div class=\"wrap\"><table><thead><tr><th>Builder</th><th>Build</th>"
                  "<th>Status</th><th>Started</th><th>Expected end</th></tr></thead><tbody>");
    long long now = (long long)time(NULL);
    size_t i;
    json_t *o;
    json_array_foreach(run, i, o)
    {
        long long bid = ui_int(o, "builderid"), started = ui_int(o, "started_at");
        html_put(b,
                 "<tr data-build=\"%D\"><td><a href=\"/builders/%D\">%s</a></td>"
                 "<td><a href=\"/builders/%D/builds/%D\">#%D</a></td><td>%s</td><td>",
                 ui_int(o, "buildid"), bid, ui_builder_name(builders, bid), bid,
                 ui_int(o, "number"), ui_int(o, "number"), ui_str(o, "state_string"));
        ui_time(b, started);
        buf_addstr(b, "</td><td>");
        long long mean = mean_duration(p, bid);
        if (mean < 0) {
            buf_addstr(b, "<span class=\"mut\">unknown</span>");
        } else if (started + mean <= now) {
            buf_addstr(b, "overdue (usually ");
            ui_duration(b, mean);
            buf_addstr(b, ")");
        } else {
            ui_time(b, started + mean);
        }
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
}

static void recent(struct ui_page *p, json_t *builders)
{
    json_t *done = ui_get(p, "builds?complete=true&order=-buildid&limit=%d", RECENT);
    if (done == NULL)
        return;
    struct buf *b = &p->out;
    buf_addstr(b, "<h2>Last completed builds</h2><div class=\"wrap\"><table><thead><tr>"
                  "<th>Builder</th><th>Build</th><th>Result</th><th>Status</th>"
                  "<th>Finished</th></tr></thead><tbody>");
    size_t i;
    json_t *o;
    json_array_foreach(done, i, o)
    {
        long long bid = ui_int(o, "builderid");
        html_put(b,
                 "<tr><td><a href=\"/builders/%D\">%s</a></td>"
                 "<td><a href=\"/builders/%D/builds/%D\">#%D</a></td>"
                 "<td><span class=\"pill %s\">%s</span></td><td>%s</td><td>",
                 bid, ui_builder_name(builders, bid), bid, ui_int(o, "number"), ui_int(o, "number"),
                 ui_result_class(o), ui_result_name(o), ui_str(o, "state_string"));
        ui_time(b, ui_int(o, "complete_at"));
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
}

static void summary(struct ui_page *p)
{
    json_t *pending = ui_get(p, "buildrequests?claimed=false&complete=false&field=buildrequestid&"
                                "field=claimed&field=complete");
    json_t *workers = ui_get(p, "workers?field=workerid&field=name&field=connected_to");
    if (pending == NULL || workers == NULL)
        return;
    struct buf *b = &p->out;
    size_t n = json_array_size(pending);
    html_put(b, "<p><a href=\"/pendingbuildrequests\">%D%S pending build requests</a></p>",
             (long long)(n > p->w->page ? p->w->page : n), n > p->w->page ? "+" : "");
    size_t away = 0, i;
    json_t *o;
    json_array_foreach(workers, i, o)
    {
        away += json_array_size(json_object_get(o, "connected_to")) == 0;
    }
    html_put(b, "<h2>Disconnected workers (%D of %D)</h2>", (long long)away,
             (long long)json_array_size(workers));
    if (away == 0) {
        buf_addstr(b, "<p class=\"mut\">Every worker is connected.</p>");
        return;
    }
    buf_addstr(b, "<p>");
    json_array_foreach(workers, i, o)
    {
        if (json_array_size(json_object_get(o, "connected_to")) == 0)
            html_put(b, "<a class=\"tag\" href=\"/workers/%D\">%s</a> ", ui_int(o, "workerid"),
                     ui_str(o, "name"));
    }
    buf_addstr(b, "</p>");
}

void ui_page_home(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    json_t *builders = ui_get(p, "builders?field=builderid&field=name");
    ui_head(p, "Home", "/");
    buf_addstr(&p->out, "<h1>Build master</h1>");
    running(p, builders);
    summary(p);
    recent(p, builders);
    ui_foot(p);
}
