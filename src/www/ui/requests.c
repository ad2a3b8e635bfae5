/*
 * Build requests: the pending ones (/pendingbuildrequests), in the order the
 * botmaster takes them, each with its builder, age, priority, reason and
 * properties read in one query per page (Buildbot's UI makes two per row);
 * and one request (/buildrequests/N), which with ?redirect_to_build=true
 * sends the browser on to its build when there is one.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>

#define PENDING_MAX 500

void ui_page_pending(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    json_t *reqs = ui_get(p,
                          "buildrequests?claimed=false&complete=false&order=-priority"
                          "&order=submitted_at&limit=%d&property=*",
                          PENDING_MAX);
    json_t *builders = ui_builders_of(p, reqs, NULL);
    if (reqs == NULL)
        return;
    struct buf *b = &p->out;
    ui_head(p, "Pending build requests", "/pendingbuildrequests");
    html_put(b,
             "<h1>Pending build requests (%D%S)</h1><div class=\"wrap\"><table><thead><tr>"
             "<th>Request</th><th>Builder</th><th>Priority</th><th>Submitted</th>"
             "<th class=\"hide-s\">Properties</th><th></th></tr></thead><tbody>",
             (long long)json_array_size(reqs),
             json_array_size(reqs) == PENDING_MAX ? " shown" : "");
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        long long bid = ui_int(r, "builderid");
        html_put(b,
                 "<tr><td><a href=\"/buildrequests/%D\">%D</a></td>"
                 "<td><a href=\"/builders/%D\">%s</a></td><td>%D</td><td>",
                 ui_int(r, "buildrequestid"), ui_int(r, "buildrequestid"), bid,
                 ui_builder_name(builders, bid), ui_int(r, "priority"));
        ui_time(b, ui_int(r, "submitted_at"));
        buf_addstr(b, "</td><td class=\"hide-s\">");
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(r, "properties"), name, v)
        {
            json_t *val = json_array_get(v, 0);
            if (json_is_string(val) && *json_string_value(val))
                html_put(b, "<span class=\"tag\">%s: %s</span>", name, json_string_value(val));
        }
        buf_addstr(b, "</td><td>");
        char *here = xasprintf("/buildrequests/%lld", ui_int(r, "buildrequestid"));
        ui_form(p, here, "cancel", "Cancel",
                "<input type=\"hidden\" name=\"back\" value=\"/pendingbuildrequests\">");
        free(here);
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
    ui_foot(p);
}

void ui_page_buildrequest(struct ui_page *p, const struct www_args *a)
{
    long long id = 0;
    www_arg_num(a, "buildrequestid", &id);
    json_t *r = ui_get1(p, "buildrequests/%lld?property=*", id);
    if (r == NULL) {
        ui_fail(p, 404, "There is no such build request.");
        return;
    }
    json_t *builds = ui_get(p, "buildrequests/%lld/builds?order=-buildid", id);
    const char *redirect = ui_arg(p, "redirect_to_build");
    json_t *last = json_array_get(builds, 0);
    if (last != NULL && redirect != NULL && strcmp(redirect, "true") == 0) {
        p->redirect = xasprintf("/builders/%lld/builds/%lld", ui_int(last, "builderid"),
                                ui_int(last, "number"));
        return;
    }
    if (last == NULL && redirect != NULL && !ui_bool(r, "complete"))
        p->refresh = 2; /* the build is not there yet: look again */
    json_t *builder = ui_get1(p, "builders/%lld?field=name", ui_int(r, "builderid"));
    struct buf *b = &p->out;
    char *title = xasprintf("Build request %lld", id);
    ui_head(p, title, "/pendingbuildrequests");
    free(title);
    html_put(b,
             "<h1>Build request %D <span class=\"pill %s\">%S</span></h1><dl class=\"kv\">"
             "<dt>Builder</dt><dd><a href=\"/builders/%D\">%s</a></dd><dt>Priority</dt><dd>%D"
             "</dd><dt>Buildset</dt><dd>%D</dd><dt>Submitted</dt><dd>",
             id, ui_bool(r, "complete") ? ui_result_class(r) : "pending",
             ui_bool(r, "complete")  ? ui_result_name(r)
             : ui_bool(r, "claimed") ? "claimed"
                                     : "waiting",
             ui_int(r, "builderid"), ui_str(builder, "name"), ui_int(r, "priority"),
             ui_int(r, "buildsetid"));
    ui_time(b, ui_int(r, "submitted_at"));
    buf_addstr(b, "</dd></dl>");
    if (!ui_bool(r, "complete")) {
        char *here = xasprintf("/buildrequests/%lld", id);
        char *prio = xasprintf("<input name=\"priority\" inputmode=\"numeric\" size=\"4\" "
                               "aria-label=\"priority\" value=\"%lld\">",
                               ui_int(r, "priority"));
        buf_addstr(b, "<div class=\"bar\">");
        ui_form(p, here, "cancel", "Cancel", NULL);
        ui_form(p, here, "set_priority", "Set priority", prio);
        buf_addstr(b, "</div>");
        free(prio);
        free(here);
    }
    buf_addstr(b, "<h2>Builds</h2><ul>");
    size_t i;
    json_t *o;
    json_array_foreach(builds, i, o)
    {
        html_put(b,
                 "<li><a href=\"/builders/%D/builds/%D\">#%D</a> <span class=\"pill %s\">%s"
                 "</span></li>",
                 ui_int(o, "builderid"), ui_int(o, "number"), ui_int(o, "number"),
                 ui_result_class(o), ui_result_name(o));
    }
    buf_addstr(b, "</ul>");
    ui_foot(p);
}
