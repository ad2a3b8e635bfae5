/*
 * The workers (/workers) with where each is connected, its state and its
 * builders; one worker (/workers/N) with its info, builders and last builds.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>

#define WORKER_BUILDS 50

static const char *state(const json_t *w)
{
    if (json_array_size(json_object_get(w, "connected_to")) == 0)
        return "disconnected";
    if (ui_bool(w, "paused"))
        return "paused";
    if (ui_bool(w, "graceful"))
        return "graceful";
    return "connected";
}

void ui_page_workers(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    json_t *workers = ui_get(p, "workers?order=name");
    if (workers == NULL)
        return;
    struct buf *b = &p->out;
    ui_head(p, "Workers", "/workers");
    html_put(b,
             "<h1>Workers (%D)</h1><div class=\"wrap\"><table><thead><tr><th>Name</th>"
             "<th>State</th><th class=\"hide-s\">Admin</th><th class=\"hide-s\">OS</th>"
             "<th>Builders</th></tr></thead><tbody>",
             (long long)json_array_size(workers));
    size_t i;
    json_t *w;
    json_array_foreach(workers, i, w)
    {
        json_t *info = json_object_get(w, "workerinfo");
        const char *st = state(w);
        html_put(b,
                 "<tr><td><a href=\"/workers/%D\">%s</a></td><td><span class=\"pill %S\">%s"
                 "</span></td><td class=\"hide-s\">%s</td><td class=\"hide-s\">%s</td><td>%D"
                 "</td></tr>",
                 ui_int(w, "workerid"), ui_str(w, "name"),
                 strcmp(st, "connected") == 0      ? "success"
                 : strcmp(st, "disconnected") == 0 ? "failure"
                                                   : "warnings",
                 st, ui_str(info, "admin"), ui_str(info, "os_name"),
                 (long long)json_array_size(json_object_get(w, "configured_on")));
    }
    buf_addstr(b, "</tbody></table></div>");
    ui_foot(p);
}

static void info(struct buf *b, const json_t *w)
{
    buf_addstr(b, "<dl class=\"kv\">");
    html_put(b, "<dt>State</dt><dd id=\"wstate\">%s</dd>", state(w));
    if (*ui_str(w, "pause_reason"))
        html_put(b, "<dt>Pause reason</dt><dd>%s</dd>", ui_str(w, "pause_reason"));
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(w, "workerinfo"), key, v)
    {
        char *text = json_is_string(v) ? xstrdup(json_string_value(v))
                                       : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        html_put(b, "<dt>%s</dt><dd>%s</dd>", key, text);
        free(text);
    }
    buf_addstr(b, "</dl>");
}

void ui_page_worker(struct ui_page *p, const struct www_args *a)
{
    long long id = 0;
    www_arg_num(a, "workerid", &id);
    json_t *w = ui_get1(p, "workers/%lld", id);
    if (w == NULL) {
        ui_fail(p, 404, "There is no such worker.");
        return;
    }
    json_t *builds = ui_get(p, "workers/%lld/builds?order=-buildid&limit=%d", id, WORKER_BUILDS);
    json_t *builders = ui_builders_of(p, json_object_get(w, "configured_on"), builds);
    struct buf *b = &p->out;
    ui_head(p, ui_str(w, "name"), "/workers");
    html_put(b, "<h1>Worker %s</h1>", ui_str(w, "name"));
    char *here = xasprintf("/workers/%lld", id);
    buf_addstr(b, "<div class=\"bar\">");
    if (ui_bool(w, "paused"))
        ui_form(p, here, "unpause", "Unpause", NULL);
    else
        ui_form(p, here, "pause", "Pause",
                "<input name=\"reason\" placeholder=\"reason\" aria-label=\"reason\">");
    ui_form(p, here, "stop", "Graceful shutdown", NULL);
    ui_form(p, here, "kill", "Disconnect now", NULL);
    buf_addstr(b, "</div>");
    free(here);
    info(b, w);
    buf_addstr(b, "<h2>Builders</h2><p>");
    size_t i, j;
    json_t *on, *bl;
    json_array_foreach(json_object_get(w, "configured_on"), i, on)
    {
        json_array_foreach(builders, j, bl)
        {
            if (ui_int(bl, "builderid") == ui_int(on, "builderid")) {
                html_put(b, "<a class=\"tag\" href=\"/builders/%D\">%s</a> ",
                         ui_int(bl, "builderid"), ui_str(bl, "name"));
                break;
            }
        }
    }
    buf_addstr(b, "</p><h2>Last builds</h2><div class=\"wrap\"><table><thead><tr><th>Build</th>"
                  "<th>Result</th><th>Status</th><th>Started</th></tr></thead><tbody>");
    json_t *o;
    json_array_foreach(builds, i, o)
    {
        html_put(b,
                 "<tr><td><a href=\"/builders/%D/builds/%D\">%s #%D</a></td><td><span "
                 "class=\"pill %s\">%s</span></td><td>%s</td><td>",
                 ui_int(o, "builderid"), ui_int(o, "number"),
                 ui_builder_name(builders, ui_int(o, "builderid")), ui_int(o, "number"),
                 ui_result_class(o), ui_result_name(o), ui_str(o, "state_string"));
        ui_time(b, ui_int(o, "started_at"));
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
    ui_foot(p);
}
