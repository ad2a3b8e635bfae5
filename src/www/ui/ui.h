/*
 * The web UI: server-rendered HTML pages at Buildbot's hash routes without
 * the '#' (/builders/5/builds/7), also under /all/.  A page reads its data
 * through the same endpoints that answer /api/v2 (ui_get), so a page never
 * disagrees with the API, and writes HTML through one escaping writer
 * (html.c).  The CSS and the small JS file are embedded in the binary
 * (assets.c); every page reads without JavaScript.
 */
#ifndef BBM_WWW_UI_H
#define BBM_WWW_UI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "www/internal.h"

/*
 * html.c: appends `fmt` to `b`, where %s is text escaped for HTML (text and attribute
 * values alike; NULL writes nothing), %S is trusted markup written as is, %U a string
 * percent-encoded as a URL component, %d an int, %D a long long, %% a '%'.
 */
void html_put(struct buf *b, const char *fmt, ...);
void html_text(struct buf *b, const char *s, size_t len);
void html_url(struct buf *b, const char *s, size_t len);

/*
 * ansi.c: one log line as HTML: SGR colours and styles as classes, other escape
 * sequences dropped, a carriage return keeps what follows it, text escaped.  `state`
 * carries the style from one line to the next (start it at 0).
 */
void ansi_line(struct buf *b, const char *line, size_t len, unsigned *state);

/* assets.c: the embedded files, by their content-hashed names. */
struct ui_asset {
    const char *name; /* "ui.3f2a9c1b.css" */
    const char *type;
    const unsigned char *data;
    size_t len;
};
const struct ui_asset *ui_asset(const char *name);
/* The URL path of the stylesheet and the script ("/ui.3f2a9c1b.css"). */
const char *ui_css_path(void);
const char *ui_js_path(void);

/* A page being written (page.c). */
struct ui_page {
    struct www *w;
    struct db *db;
    struct buf out;
    int status;
    char *cause;             /* what failed, for the page that says so */
    bool lost;               /* a read failed: the database is away */
    const struct www_kv *kv; /* the query parameters */
    size_t n_kv;
    json_t *held;   /* everything ui_get returned, freed with the page */
    char *redirect; /* a 302 instead of the page */
    int refresh;    /* > 0: the page reloads itself after this many seconds */
    char csrf[33];  /* the token its forms carry (actions.c) */
    json_t *user;   /* who asks (the session's user_info): the forms it may use */
    char *warning;  /* remote_user_auth's word on a missing or unmatched header, or NULL */
};

/* The query parameters of a page: the values of `key` in order (NULL-terminated is not
   guaranteed: use ui_arg / ui_args). */
const char *ui_arg(const struct ui_page *p, const char *key);
size_t ui_args(const struct ui_page *p, const char *key, const char **out, size_t max);

/*
 * The items of an /api/v2 path with its query ("builders/5/builds?order=-number&limit=20";
 * values are percent-decoded: pass a name through ui_query_value).  A collection
 * gives at most 2,000 items.  Borrowed from the page; NULL after a failed read (the page
 * then answers 500 or 503).  A path that names nothing gives an empty list.
 */
json_t *ui_get(struct ui_page *p, const char *fmt, ...) UTIL_PRINTF(2, 3);
/* Frees `v`, the last thing ui_get returned, before the page ends: a page that reads for
   each of its rows holds one row's reads at a time. */
void ui_drop(struct ui_page *p, json_t *v);
/* `s` percent-encoded for a query of ui_get (held by the page). */
const char *ui_query_value(struct ui_page *p, const char *s);
/* Turns `list` around: /changes answers a window of the order asked for backwards, as
   Buildbot's does, and a page wants the newest first. */
void ui_reverse(json_t *list);
/* The first item of ui_get, or NULL. */
json_t *ui_get1(struct ui_page *p, const char *fmt, ...) UTIL_PRINTF(2, 3);
/* A page failed: `status` and a message in the page body. */
void ui_fail(struct ui_page *p, int status, const char *msg);

/* The page frame: <head> (with the hash-route script first), the navigation, then the
   page's own content between ui_head and ui_foot.  `nav`: the menu entry to mark. */
void ui_head(struct ui_page *p, const char *title, const char *nav);
void ui_foot(struct ui_page *p);

/* Fields of an API object (jansson), with defaults. */
const char *ui_str(const json_t *o, const char *key); /* "" if absent or not a string */
long long ui_int(const json_t *o, const char *key);   /* -1 if absent or not a number */
bool ui_bool(const json_t *o, const char *key);
/* Builds/steps result: "success", "warnings", "failure", "skipped", "exception",
   "retry", "cancelled", or "pending" for null / not complete. */
const char *ui_result_class(const json_t *o);
const char *ui_result_name(const json_t *o);
/* A time: <time datetime=ISO>UTC text</time> (the JS shows it in the viewer's zone). */
void ui_time(struct buf *b, long long epoch);
/* A duration "1 h 2 min", "35 s". */
void ui_duration(struct buf *b, long long seconds);
/* The builders (id and name) that the objects of lists `a` and `b` (NULL: none) name by
   builderid, from one query (at most 1,000 of them). */
json_t *ui_builders_of(struct ui_page *p, const json_t *a, const json_t *b);
/* The name of builder `id` in a list of builders, "?" if absent. */
const char *ui_builder_name(const json_t *builders, long long id);
/* A result dot linking to a build. */
void ui_build_dot(struct buf *b, const json_t *build);

/* actions.c: the token this master's forms carry now (hex). */
void ui_csrf(char out[33]);
/* A form posting `method` to the page at `action`, with a button `label`. */
/* The /api/v2 path (malloc'd) a form posted to page `url` acts on, and the method a force
   form implies in *method (else left); NULL when the page has no action. */
char *ui_action_api(const char *url, const char **method);
/* Whether the page's user may use the form of `method` posted to `url` (www.authz). */
bool ui_may(struct ui_page *p, const char *url, const char *method);
void ui_form(struct ui_page *p, const char *action, const char *method, const char *label,
             const char *extra);
/*
 * tags.c: Buildbot's tag filter on builders -- `+tag` must have it, `-tag` must not, a bare
 * tag is one of those wanted -- from the page's `tags=` and `tag=` parameters (borrowed).
 */
#define UI_MAX_TAGS 32
struct ui_tags {
    const char *must[UI_MAX_TAGS], *must_not[UI_MAX_TAGS], *any[UI_MAX_TAGS];
    size_t n_must, n_must_not, n_any;
};
void ui_tags_read(const struct ui_page *p, struct ui_tags *f);
bool ui_tags_pass(const struct ui_tags *f, const json_t *builder);
/* The tags of `builders` as links to `path` ("/grid"), each with its state cycled and the
   page's other parameters kept (but `page`). */
void ui_tags_bar(const struct ui_page *p, struct buf *b, const json_t *builders,
                 const struct ui_tags *f, const char *path);
/* The page's parameters but those named in `drop` (NULL-terminated), as "k=v&amp;" each. */
void ui_keep_args(const struct ui_page *p, struct buf *b, const char *const *drop);

/*
 * views.c: the latest changes (on the page's `branch=`) and the builds each went into, by
 * builder, for the grid and the console; the builders kept pass the tag filter and the
 * page's `result=` (the result of their latest build in view).
 */
struct ui_view {
    json_t *builders; /* every builder (borrowed from the page) */
    json_t *changes;  /* the changes, newest first (borrowed) */
    json_t *rows;     /* [{"builder": {...}, "cells": [[builds of change i, by id]...]}] by name */
};
int ui_view_read(struct ui_page *p, struct ui_view *v, int n_changes, const struct ui_tags *f);
void ui_view_free(struct ui_view *v);
/* The form of `branch=` and `result=` for `path`, keeping the tags and the limit. */
void ui_view_form(const struct ui_page *p, struct buf *b, const char *path);
/* A cell: the dots of its last builds, "+n" before them for the others. */
void ui_cell(struct buf *b, const json_t *cell);
size_t ui_cell_dots(const json_t *cell);
/* A change in a few words: its short revision linking to it (the comment's first line as
   its title) and its author's name. */
void ui_change_summary(struct buf *b, const json_t *change);
/* At most `max` bytes of `s` as text, an ellipsis when cut. */
void ui_text_cut(struct buf *b, const char *s, size_t max);
/* Result names (ui_result_name's, or none: "" or "(all)") for `result=`, and the <option>s of
   a select of them. */
bool ui_result_known(const char *name);
void ui_result_options(struct buf *b, const char *current);
/* Sorts a JSON array with a qsort comparator of json_t * const *. */
void ui_sort(json_t *list, int (*cmp)(const void *, const void *));
/*
 * Cuts n items of estimated sizes w[] into pages of at most `max` items and about `budget`
 * bytes (an item is never split): starts[k] is page k's first item, starts[pages] = n
 * (starts holds n + 1).  Returns the number of pages.
 */
size_t ui_cut_pages(const size_t *w, size_t n, size_t max, size_t budget, size_t *starts);
/* The page's `page=` (0-based), 0 when out of [0, pages). */
long long ui_page_arg(const struct ui_page *p, long long pages);
/* Previous, the first, last and nearby pages, Next: links to `path` keeping the other
   parameters. */
void ui_pager(const struct ui_page *p, struct buf *b, const char *path, long long page,
              long long pages);
/* Hidden inputs for the page's parameters named in `keys` (NULL-terminated). */
void ui_hidden_args(const struct ui_page *p, struct buf *b, const char *const *keys);

/* The pages (each in its own file): each writes p->out, or fails. */
typedef void (*ui_page_fn)(struct ui_page *p, const struct www_args *a);
void ui_page_home(struct ui_page *p, const struct www_args *a);
void ui_page_builders(struct ui_page *p, const struct www_args *a);
void ui_page_builder(struct ui_page *p, const struct www_args *a);
void ui_page_build(struct ui_page *p, const struct www_args *a);
void ui_page_log(struct ui_page *p, const struct www_args *a);
void ui_page_workers(struct ui_page *p, const struct www_args *a);
void ui_page_worker(struct ui_page *p, const struct www_args *a);
void ui_page_pending(struct ui_page *p, const struct www_args *a);
void ui_page_buildrequest(struct ui_page *p, const struct www_args *a);
void ui_page_changes(struct ui_page *p, const struct www_args *a);
void ui_page_change(struct ui_page *p, const struct www_args *a);
void ui_page_masters(struct ui_page *p, const struct www_args *a);
void ui_page_schedulers(struct ui_page *p, const struct www_args *a);
void ui_page_about(struct ui_page *p, const struct www_args *a);
void ui_page_force(struct ui_page *p, const struct www_args *a);
void ui_page_release(struct ui_page *p, const struct www_args *a);
/* release.c: each branch's verdict as on /release_status (the home page's branch health);
   nothing when no release cycle is configured. */
void ui_release_panels(struct ui_page *p);
void ui_page_release_old(struct ui_page *p, const struct www_args *a);
void ui_page_grid(struct ui_page *p, const struct www_args *a);
void ui_page_console(struct ui_page *p, const struct www_args *a);
void ui_page_waterfall(struct ui_page *p, const struct www_args *a);

#endif
