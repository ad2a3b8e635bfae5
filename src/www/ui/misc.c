/*
 * The smaller pages: masters, schedulers, the versions (/about), and the
 * force form of a builder (/builders/N/force/NAME), drawn from the force
 * scheduler's parameters as /api/v2/forceschedulers gives them.
 */
#include "www/ui/ui.h"

#include <jansson.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

void ui_page_masters(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    json_t *masters = ui_get(p, "masters");
    if (masters == NULL)
        return;
    struct buf *b = &p->out;
    ui_head(p, "Masters", "/masters");
    buf_addstr(b, "<h1>Masters</h1><div class=\"wrap\"><table><thead><tr><th>Name</th><th>State"
                  "</th><th>Last active</th></tr></thead><tbody>");
    size_t i;
    json_t *m;
    json_array_foreach(masters, i, m)
    {
        bool on = ui_bool(m, "active");
        html_put(b, "<tr><td>%s</td><td><span class=\"pill %S\">%S</span></td><td>",
                 ui_str(m, "name"), on ? "success" : "skipped", on ? "active" : "inactive");
        ui_time(b, ui_int(m, "last_active"));
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
    ui_foot(p);
}

void ui_page_schedulers(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    json_t *scheds = ui_get(p, "schedulers");
    if (scheds == NULL)
        return;
    struct buf *b = &p->out;
    ui_head(p, "Schedulers", "/schedulers");
    buf_addstr(b, "<h1>Schedulers</h1><div class=\"wrap\"><table><thead><tr><th>Name</th>"
                  "<th>Enabled</th><th>Master</th><th></th></tr></thead><tbody>");
    size_t i;
    json_t *s;
    json_array_foreach(scheds, i, s)
    {
        bool on = ui_bool(s, "enabled");
        html_put(b, "<tr><td>%s</td><td><span class=\"pill %S\">%S</span></td><td>%s</td><td>",
                 ui_str(s, "name"), on ? "success" : "skipped", on ? "enabled" : "disabled",
                 ui_str(json_object_get(s, "master"), "name"));
        char *here = xasprintf("/schedulers/%lld", ui_int(s, "schedulerid"));
        ui_form(p, here, "enable", on ? "Disable" : "Enable",
                on ? "<input type=\"hidden\" name=\"enabled\" value=\"false\"><input "
                     "type=\"hidden\" name=\"back\" value=\"/schedulers\">"
                   : "<input type=\"hidden\" name=\"enabled\" value=\"true\"><input "
                     "type=\"hidden\" name=\"back\" value=\"/schedulers\">");
        free(here);
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
    ui_foot(p);
}

void ui_page_about(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    struct buf *b = &p->out;
    ui_head(p, "About", "/about");
    html_put(b,
             "<h1>About</h1><dl class=\"kv\"><dt>bbmaster</dt><dd>%S</dd>"
             "<dt>Data API</dt><dd><a href=\"/api/v2\">/api/v2</a> (Buildbot 4.3)</dd>"
             "<dt>libmicrohttpd</dt><dd>%s</dd><dt>jansson</dt><dd>%S</dd>"
             "<dt>SQLite</dt><dd>%s</dd><dt>URL</dt><dd>%s</dd></dl>",
             BBM_VERSION, MHD_get_version(), JANSSON_VERSION, sqlite3_libversion(),
             p->w->buildbot_url);
    ui_foot(p);
}

/* The force form. */

static void field(struct buf *b, const json_t *f, int depth);

static void fields(struct buf *b, const json_t *list, int depth)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        field(b, f, depth + 1);
    }
}

static void field(struct buf *b, const json_t *f, int depth)
{
    if (depth > 8 || ui_bool(f, "hide"))
        return;
    const char *type = ui_str(f, "type"), *full = ui_str(f, "fullName");
    const char *label = *ui_str(f, "label") ? ui_str(f, "label") : ui_str(f, "name");
    json_t *dflt = json_object_get(f, "default");
    if (strcmp(type, "nested") == 0) {
        fields(b, json_object_get(f, "fields"), depth);
        return;
    }
    if (strcmp(type, "fixed") == 0)
        return;
    html_put(b, "<div class=\"bar\"><label for=\"f-%s\">%s</label>", full, label);
    if (strcmp(type, "bool") == 0) {
        html_put(b, "<input type=\"checkbox\" id=\"f-%s\" name=\"%s\" value=\"true\"%S>", full,
                 full, json_is_true(dflt) ? " checked" : "");
    } else if (strcmp(type, "list") == 0) {
        html_put(b, "<select id=\"f-%s\" name=\"%s\"%S>", full, full,
                 ui_bool(f, "multiple") ? " multiple" : "");
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(f, "choices"), i, c)
        {
            const char *v = json_string_value(c);
            html_put(b, "<option%S>%s</option>",
                     v != NULL && json_string_value(dflt) != NULL &&
                             strcmp(v, json_string_value(dflt)) == 0
                         ? " selected"
                         : "",
                     v);
        }
        buf_addstr(b, "</select>");
    } else {
        char *text = json_is_string(dflt) ? xstrdup(json_string_value(dflt))
                     : json_is_null(dflt) || dflt == NULL
                         ? xstrdup("")
                         : json_dumps(dflt, JSON_ENCODE_ANY | JSON_COMPACT);
        html_put(b, "<input id=\"f-%s\" name=\"%s\" value=\"%s\"%S>", full, full, text,
                 strcmp(type, "int") == 0 ? " inputmode=\"numeric\"" : "");
        free(text);
    }
    buf_addstr(b, "</div>");
}

void ui_page_force(struct ui_page *p, const struct www_args *a)
{
    long long id = 0;
    www_arg_num(a, "builderid", &id);
    const char *name = www_arg_str(a, "scheduler");
    json_t *builder = ui_get1(p, "builders/%lld?field=name", id);
    json_t *list = ui_get(p, "builders/%lld/forceschedulers", id);
    json_t *fs = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        if (strcmp(ui_str(o, "name"), name) == 0)
            fs = o;
    }
    if (builder == NULL || fs == NULL) {
        ui_fail(p, 404, "There is no such force scheduler for this builder.");
        return;
    }
    char *url = xasprintf("/builders/%lld/force/%s", id, name);
    bool may = ui_may(p, url, NULL);
    free(url);
    if (!may) {
        ui_fail(p, 403, "You may not start builds with this form.");
        return;
    }
    struct buf *b = &p->out;
    ui_head(p, ui_str(fs, "label"), "/builders");
    html_put(b,
             "<h1>%s: <a href=\"/builders/%D\">%s</a></h1><form method=\"post\" "
             "action=\"/builders/%D/force/%U\">",
             *ui_str(fs, "label") ? ui_str(fs, "label") : name, id, ui_str(builder, "name"), id,
             name);
    fields(b, json_object_get(fs, "all_fields"), 0);
    html_put(b,
             "<input type=\"hidden\" name=\"builderid\" value=\"%D\"><input type=\"hidden\" "
             "name=\"csrf\" value=\"%s\"><button>%s</button></form>",
             id, p->csrf, *ui_str(fs, "button_name") ? ui_str(fs, "button_name") : "Start build");
    ui_foot(p);
}
