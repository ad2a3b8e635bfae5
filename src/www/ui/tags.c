/*
 * Buildbot's tag filter, shared by the pages that list builders (builders,
 * grid, console, waterfall): `+tag` must have it, `-tag` must not, a bare
 * tag is one of those wanted; read from `tags=` (or `tag=`, which the old
 * shortcut links use).  And the bar of tag links that cycles one tag's state
 * (none -> +tag -> -tag -> none) while keeping the page's other parameters.
 */
#include "www/ui/ui.h"

#include <string.h>

void ui_tags_read(const struct ui_page *p, struct ui_tags *f)
{
    memset(f, 0, sizeof *f);
    const char *v[UI_MAX_TAGS * 2];
    size_t n = ui_args(p, "tags", v, UI_MAX_TAGS);
    n += ui_args(p, "tag", v + n, UI_MAX_TAGS);
    for (size_t i = 0; i < n; i++) {
        if (v[i][0] == '+' && f->n_must < UI_MAX_TAGS)
            f->must[f->n_must++] = v[i] + 1;
        else if (v[i][0] == '-' && f->n_must_not < UI_MAX_TAGS)
            f->must_not[f->n_must_not++] = v[i] + 1;
        else if (v[i][0] != '\0' && f->n_any < UI_MAX_TAGS)
            f->any[f->n_any++] = v[i];
    }
}

static bool has_tag(const json_t *builder, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(builder, "tags"), i, t)
    {
        if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0)
            return true;
    }
    return false;
}

bool ui_tags_pass(const struct ui_tags *f, const json_t *builder)
{
    for (size_t i = 0; i < f->n_must; i++)
        if (!has_tag(builder, f->must[i]))
            return false;
    for (size_t i = 0; i < f->n_must_not; i++)
        if (has_tag(builder, f->must_not[i]))
            return false;
    if (f->n_any == 0)
        return true;
    for (size_t i = 0; i < f->n_any; i++)
        if (has_tag(builder, f->any[i]))
            return true;
    return false;
}

void ui_keep_args(const struct ui_page *p, struct buf *b, const char *const *drop)
{
    for (size_t i = 0; i < p->n_kv; i++) {
        bool skip = false;
        for (const char *const *d = drop; *d != NULL && !skip; d++)
            skip = strcmp(p->kv[i].key, *d) == 0;
        if (!skip)
            html_put(b, "%U=%U&amp;", p->kv[i].key, p->kv[i].value);
    }
}

/* The link to `path` with one tag's state cycled: none -> +tag -> -tag -> none. */
static void tag_link(const struct ui_page *p, struct buf *b, const struct ui_tags *f,
                     const char *path, const char *tag)
{
    int state = 0; /* 0 none, 1 must, 2 must not, 3 any */
    for (size_t i = 0; i < f->n_must; i++)
        state = strcmp(f->must[i], tag) == 0 ? 1 : state;
    for (size_t i = 0; i < f->n_must_not; i++)
        state = strcmp(f->must_not[i], tag) == 0 ? 2 : state;
    for (size_t i = 0; i < f->n_any; i++)
        state = strcmp(f->any[i], tag) == 0 ? 3 : state;
    html_put(b, "<a class=\"tag%S\" href=\"%S?",
             state == 1 || state == 3 ? " on"
             : state == 2             ? " off"
                                      : "",
             path);
    static const char *const drop[] = {"tags", "tag", "page", NULL};
    ui_keep_args(p, b, drop);
    const char *const *sets[3] = {f->must, f->must_not, f->any};
    size_t ns[3] = {f->n_must, f->n_must_not, f->n_any};
    static const char *const signs[] = {"%2B", "-", ""};
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < ns[s]; i++)
            if (strcmp(sets[s][i], tag) != 0)
                html_put(b, "tags=%S%U&amp;", signs[s], sets[s][i]);
    if (state == 0 || state == 3)
        html_put(b, "tags=%%2B%U", tag);
    else if (state == 1)
        html_put(b, "tags=-%U", tag);
    html_put(b, "\">%s</a>", tag);
}

void ui_tags_bar(const struct ui_page *p, struct buf *b, const json_t *builders,
                 const struct ui_tags *f, const char *path)
{
    json_t *seen = json_object();
    size_t i, j;
    json_t *bl, *t;
    json_array_foreach(builders, i, bl)
    {
        json_array_foreach(json_object_get(bl, "tags"), j, t)
        {
            if (json_is_string(t))
                json_object_set_new(seen, json_string_value(t), json_true());
        }
    }
    if (json_object_size(seen) > 0) {
        buf_addstr(b, "<div class=\"bar\" id=\"tags\"><span class=\"mut\">Tags:</span>");
        const char *name;
        json_t *v;
        json_object_foreach(seen, name, v)
        {
            tag_link(p, b, f, path, name);
        }
        buf_addstr(b, "</div>");
    }
    json_decref(seen);
}
