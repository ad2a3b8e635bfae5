/*
 * The home page (/): what is running now with an estimate of when it ends
 * (the mean duration of the builder's last five builds), the last completed
 * builds, how many requests wait, and which workers are away.
 */
#include "www/ui/ui.h"

#include <stdio.h>
#include <time.h>

#define RECENT 20
#define RUNNING_MAX 200
#define RUNNING_WINDOW 10000

/*
 * The mean duration of each running builder's last five complete builds among the builds
 * after `from` (the same window as the running builds: past it the query would sort every
 * build of those builders), by builder id (a JSON object), from one query.
 */
static json_t *mean_durations(struct ui_page *p, json_t *run, long long from)
{
    struct buf q;
    buf_init(&q, 0);
    buf_printf(&q,
               "builds?complete=true&buildid__gt=%lld&order=-buildid&limit=%zu&field=buildid&field="
               "builderid"
               "&field=started_at&field=complete_at&field=complete",
               from, json_array_size(run) * 5);
    size_t i;
    json_t *o;
    json_array_foreach(run, i, o)
    {
        buf_printf(&q, "&builderid__eq=%lld", ui_int(o, "builderid"));
    }
    json_t *done = ui_get(p, "%s", q.data);
    buf_free(&q);
    json_t *sums = json_object(), *means = json_object();
    json_array_foreach(done, i, o)
    {
        long long s = ui_int(o, "started_at"), e = ui_int(o, "complete_at");
        char key[32];
        snprintf(key, sizeof key, "%lld", ui_int(o, "builderid"));
        json_t *acc = json_object_get(sums, key);
        if (acc == NULL)
            json_object_set_new(sums, key, acc = json_pack("[II]", (json_int_t)0, (json_int_t)0));
        long long n = json_integer_value(json_array_get(acc, 1));
        if (s <= 0 || e < s || n >= 5)
            continue;
        json_array_set_new(acc, 0,
                           json_integer(json_integer_value(json_array_get(acc, 0)) + (e - s)));
        json_array_set_new(acc, 1, json_integer(n + 1));
    }
    const char *key;
    json_object_foreach(sums, key, o)
    {
        long long n = json_integer_value(json_array_get(o, 1));
        if (n > 0)
            json_object_set_new(means, key,
                                json_integer(json_integer_value(json_array_get(o, 0)) / n));
    }
    json_decref(sums);
    json_array_append_new(p->held, means);
    return means;
}

/*
 * The running builds, newest first.  The database has no index on whether a build is
 * complete, so the search stays among the last RUNNING_WINDOW builds (more than a week
 * of buildbot.python.org's): a build older than that still running is one a crash left,
 * which the master's repair finishes.
 */
static json_t *running_builds(struct ui_page *p, long long *from)
{
    json_t *last = ui_get1(p, "builds?order=-buildid&limit=1&field=buildid");
    *from = last != NULL ? ui_int(last, "buildid") - RUNNING_WINDOW : 0;
    return ui_get(p, "builds?complete=false&buildid__gt=%lld&order=-buildid&limit=%d", *from,
                  RUNNING_MAX);
}

static void running(struct ui_page *p, json_t *run, long long from, json_t *builders)
{
    if (run == NULL)
        return;
    struct buf *b = &p->out;
    html_put(b, "<section id=\"running\"><h2>Running builds (%d)</h2>", (int)json_array_size(run));
    if (json_array_size(run) == 0) {
        buf_addstr(b, "<p class=\"mut\">Nothing is running.</p></section>");
        return;
    }
    buf_addstr(b, "<div class=\"wrap\"><table><thead><tr><th>Builder</th><th>Build</th>"
                  "<th>Status</th><th>Started</th><th>Expected end</th></tr></thead><tbody>");
    long long now = (long long)time(NULL);
    json_t *means = mean_durations(p, run, from);
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
        char key[32];
        snprintf(key, sizeof key, "%lld", bid);
        json_t *m = json_object_get(means, key);
        long long mean = m != NULL ? (long long)json_integer_value(m) : -1;
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
    buf_addstr(b, "</tbody></table></div></section>");
}

static void recent(struct ui_page *p, json_t *done, json_t *builders)
{
    if (done == NULL)
        return;
    struct buf *b = &p->out;
    buf_addstr(b, "<section id=\"recent\"><h2>Last completed builds</h2><div class=\"wrap\">"
                  "<table><thead><tr>"
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
    buf_addstr(b, "</tbody></table></div></section>");
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
    long long from;
    json_t *run = running_builds(p, &from);
    json_t *done = ui_get(p, "builds?complete=true&order=-buildid&limit=%d", RECENT);
    json_t *builders = ui_builders_of(p, run, done);
    ui_head(p, "Home", "/");
    buf_addstr(&p->out, "<h1>Build master</h1>");
    ui_release_panels(p);
    running(p, run, from, builders);
    summary(p);
    recent(p, done, builders);
    ui_foot(p);
}
