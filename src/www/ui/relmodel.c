/*
 * The model behind /release_status: as the original dashboard has them, the
 * builders configured on some worker, and for each its last REL_WINDOW
 * complete builds by complete_at, its newest SUCCESS/WARNINGS/FAILURE build,
 * the first FAILURE of the streak that ends it, how many of its workers are
 * connected.  Everything is read through the /api/v2 endpoints (ui_get).
 *
 * A builder's history is one query: its last REL_WINDOW complete builds by
 * number, which the builds_number index (builderid, number) answers without
 * visiting the rest of its history, sorted by complete_at here.  The two
 * orders differ only where builds of the builder ran at the same time and
 * finished out of order; when they differ inside a full window, the window
 * is read again ordered by complete_at, the original's query (Buildbot's
 * schema has no index on complete_at: that query visits every build of the
 * builder).  The hourly safety read uses the original's query for every
 * builder.
 *
 * After that, one finished build changes one builder: the build is read by
 * its id, put in its place in a copy of the window, and the verdict fields
 * worked out again (rel_model_finished).  A worker that connects or
 * disconnects changes the counts of the builders it is configured on.  The
 * model thread (relfeed.c) calls these and publishes what they return.
 */
#include "www/ui/release.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CHANGES 50 /* the original's MAX_CHANGES */
#define BUILD_FIELDS                                                                               \
    "field=buildid&field=number&field=builderid&field=results&field=started_at&"                   \
    "field=complete_at&field=complete&field=locks_duration_s"

enum { R_SUCCESS = 0, R_WARNINGS = 1, R_FAILURE = 2 };

/* ------------------------------------------------------------ pieces */

/* A history with room for `n` builds (at most REL_WINDOW). */
static struct rel_hist *hist_new(size_t n)
{
    struct rel_hist *h =
        xcalloc(1, sizeof *h + (n < REL_WINDOW ? n : REL_WINDOW) * sizeof(struct rel_build));
    atomic_init(&h->refs, 1);
    return h;
}

void rel_hist_unref(struct rel_hist *h)
{
    if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    free(h->latest_changes);
    free(h->breaking_changes);
    free(h->latest_junit);
    free(h->breaking_junit);
    free(h);
}

void rel_set_unref(struct rel_set *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        for (size_t k = 0; k < s->v[i].n_tags; k++)
            free(s->v[i].tags[k]);
        free(s->v[i].tags);
    }
    free(s->v);
    free(s);
}

void rel_model_free(struct rel_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; m->set != NULL && i < m->set->n; i++)
        rel_hist_unref(m->hist[i]);
    rel_set_unref(m->set);
    free(m->hist);
    free(m->connected);
    free(m->by_id);
    for (size_t i = 0; i < m->n_workers; i++)
        free(m->workers[i].builders);
    free(m->workers);
    free(m);
}

long rel_model_find(const struct rel_model *m, long long id)
{
    size_t lo = 0, hi = m->set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        long long at = m->by_id[mid].id;
        if (at == id)
            return (long)m->by_id[mid].at;
        if (at < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The page's reads so far are freed (a full read holds one builder's at a time). */
static void page_reset(struct ui_page *p)
{
    json_decref(p->held);
    p->held = json_array();
}

/* ------------------------------------------------------------ a builder's history */

static struct rel_build build_of(const json_t *o)
{
    return (struct rel_build){.buildid = ui_int(o, "buildid"),
                              .number = ui_int(o, "number"),
                              .builderid = ui_int(o, "builderid"),
                              .results = ui_int(o, "results"),
                              .started_at = ui_int(o, "started_at"),
                              .complete_at = ui_int(o, "complete_at"),
                              .locks = ui_int(o, "locks_duration_s")};
}

static bool interesting(long long results)
{
    return results == R_SUCCESS || results == R_WARNINGS || results == R_FAILURE;
}

/* The API's order=-complete_at: newest first, ties by id (the listing's tiebreak). */
static int newest_cb(const void *a, const void *b)
{
    const struct rel_build *x = a, *y = b;
    if (x->complete_at != y->complete_at)
        return x->complete_at > y->complete_at ? -1 : 1;
    return x->buildid < y->buildid ? -1 : x->buildid > y->buildid;
}

/*
 * `latest` and `breaking` from the window: the original's walk (release_dashboard.py,
 * Builder.problems): the streak that ends at a FAILURE starts at its first FAILURE if a
 * SUCCESS comes before it (WARNINGS neither break nor start it), else it is unknown.
 */
static void settle(struct rel_hist *h)
{
    h->has_latest = h->has_breaking = false;
    size_t i = 0;
    while (i < h->n_builds && !interesting(h->builds[i].results))
        i++;
    if (i == h->n_builds)
        return;
    h->latest = h->builds[i];
    h->has_latest = true;
    if (h->latest.results != R_FAILURE)
        return;
    const struct rel_build *first = &h->builds[i];
    for (; i < h->n_builds; i++) {
        if (h->builds[i].results == R_FAILURE) {
            first = &h->builds[i];
        } else if (h->builds[i].results == R_SUCCESS) {
            h->breaking = *first;
            h->has_breaking = true;
            return;
        }
    }
}

/* A change as the original lists it: the first line of its comments linked to the
   revision, the author's name without the address, the files. */
static void change_html(struct buf *b, const json_t *c)
{
    const char *comments = ui_str(c, "comments"), *author = ui_str(c, "author");
    const char *nl = strchr(comments, '\n'), *lt = strstr(author, " <");
    html_put(b, "<li><a href=\"%s\" title=\"%s\">", ui_str(c, "revlink"), ui_str(c, "revision"));
    html_text(b, comments, nl != NULL ? (size_t)(nl - comments) : strlen(comments));
    buf_addstr(b, "</a> by ");
    html_text(b, author, lt != NULL ? (size_t)(lt - author) : strlen(author));
    json_t *files = json_object_get(c, "files");
    size_t n = json_array_size(files);
    if (n > 0) {
        html_put(b, "<details%S><summary>%D file%S changed</summary><ul>", n <= 3 ? " open" : "",
                 (long long)n, n != 1 ? "s" : "");
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f)
        {
            html_put(b, "<li>%s</li>", json_string_value(f));
        }
        buf_addstr(b, "</ul></details>");
    }
    buf_addstr(b, "</li>");
}

/* The changes of build `buildid` as HTML ("" if none, or as many as the limit: a long
   failing streak, better said as nothing, as the original does); NULL if the read failed. */
static char *changes_html(struct ui_page *p, long long buildid)
{
    json_t *list = ui_get(p, "builds/%lld/changes?limit=%d", buildid, MAX_CHANGES);
    if (list == NULL)
        return NULL;
    struct buf b;
    buf_init(&b, 0);
    size_t n = json_array_size(list);
    if (n > 0 && n < MAX_CHANGES) {
        html_put(&b, "<details%S><summary>%D change%S</summary><ul>", n <= 3 ? " open" : "",
                 (long long)n, n != 1 ? "s" : "");
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c)
        {
            change_html(&b, c);
        }
        buf_addstr(&b, "</ul></details>");
    }
    char *s = buf_take(&b);
    return s != NULL ? s : xstrdup("");
}

/* The changes of `b` (shown or not): from `old` when it has them, else read. */
static char *changes_for(struct ui_page *p, const struct rel_hist *old, const struct rel_build *b,
                         bool shown)
{
    if (!shown)
        return xstrdup("");
    if (old != NULL && old->has_latest && old->latest.buildid == b->buildid &&
        old->latest_changes != NULL)
        return xstrdup(old->latest_changes);
    if (old != NULL && old->has_breaking && old->breaking.buildid == b->buildid &&
        old->breaking_changes != NULL)
        return xstrdup(old->breaking_changes);
    return changes_html(p, b->buildid);
}

/* The tag of the builder's branch in the cycle (its test results' directory), or NULL. */
static const char *branch_tag(const struct rel_files *files, const struct rel_bdef *def)
{
    for (size_t i = 0; i < files->n_branches; i++)
        for (size_t k = 0; k < def->n_tags; k++)
            if (strcmp(def->tags[k], files->branches[i].tag) == 0)
                return files->branches[i].tag;
    return NULL;
}

/* The JUnit failures of `b` (shown or not): from `old` when it has them, else read. */
static char *junit_for(const struct rel_files *files, const struct rel_bdef *def,
                       const struct rel_hist *old, const struct rel_build *b, bool shown)
{
    if (!shown || files == NULL || files->dir == NULL)
        return xstrdup("");
    if (old != NULL && old->has_latest && old->latest.buildid == b->buildid &&
        old->latest_junit != NULL)
        return xstrdup(old->latest_junit);
    if (old != NULL && old->has_breaking && old->breaking.buildid == b->buildid &&
        old->breaking_junit != NULL)
        return xstrdup(old->breaking_junit);
    return rel_junit_html(files->dir, branch_tag(files, def), def->name, b->number);
}

/* What the page may show of a latest build that is not a SUCCESS and of the breaking
   build: their changes and JUnit failures.  -1 when a read failed. */
static int add_changes(struct ui_page *p, const struct rel_files *files, const struct rel_bdef *def,
                       struct rel_hist *h, const struct rel_hist *old)
{
    bool latest = h->has_latest && h->latest.results != R_SUCCESS;
    h->latest_changes = changes_for(p, old, &h->latest, latest);
    h->breaking_changes = changes_for(p, old, &h->breaking, h->has_breaking);
    h->latest_junit = junit_for(files, def, old, &h->latest, latest);
    h->breaking_junit = junit_for(files, def, old, &h->breaking, h->has_breaking);
    return h->latest_changes != NULL && h->breaking_changes != NULL ? 0 : -1;
}

/* A builder's last REL_WINDOW complete builds, by number or (exact) by complete_at, in a new
   history; NULL when the read failed. */
static struct rel_hist *read_window(struct ui_page *p, long long id, bool exact)
{
    json_t *list = ui_get(p, "builders/%lld/builds?complete=true&order=%s&limit=%d&" BUILD_FIELDS,
                          id, exact ? "-complete_at" : "-number", REL_WINDOW);
    if (list == NULL)
        return NULL;
    struct rel_hist *h = hist_new(json_array_size(list));
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        if (h->n_builds < REL_WINDOW)
            h->builds[h->n_builds++] = build_of(o);
    }
    ui_drop(p, list);
    return h;
}

static bool in_order(const struct rel_hist *h)
{
    for (size_t i = 1; i < h->n_builds; i++)
        if (newest_cb(&h->builds[i - 1], &h->builds[i]) > 0)
            return false;
    return true;
}

/* A builder's history, read; NULL when a read failed. */
static struct rel_hist *read_hist(struct ui_page *p, const struct rel_files *files,
                                  const struct rel_bdef *def, bool exact)
{
    long long id = def->id;
    struct rel_hist *h = read_window(p, id, exact);
    if (h == NULL)
        return NULL;
    if (!in_order(h)) {
        /* builds finished out of number order: in a full window, one older by number may
           belong to it; the database orders them */
        if (!exact && h->n_builds == REL_WINDOW) {
            rel_hist_unref(h);
            if ((h = read_window(p, id, true)) == NULL)
                return NULL;
        }
        qsort(h->builds, h->n_builds, sizeof *h->builds, newest_cb);
    }
    settle(h);
    if (add_changes(p, files, def, h, NULL) < 0)
        goto fail;
    return h;
fail:
    rel_hist_unref(h);
    return NULL;
}

/* ------------------------------------------------------------ builders and workers */

static int ids_cb(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static bool has_tag(const struct rel_bdef *b, const char *tag)
{
    for (size_t i = 0; i < b->n_tags; i++)
        if (strcmp(b->tags[i], tag) == 0)
            return true;
    return false;
}

static void bdef_fill(struct rel_bdef *b, const json_t *o)
{
    b->id = ui_int(o, "builderid");
    b->name = xstrdup(ui_str(o, "name"));
    json_t *tags = json_object_get(o, "tags");
    b->tags = xcalloc(json_array_size(tags) + 1, sizeof *b->tags);
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        if (json_is_string(t))
            b->tags[b->n_tags++] = xstrdup(json_string_value(t));
    }
    static const char *const tiers[] = {"tier-1", "tier-2", "tier-3"};
    b->tier = 99;
    for (int k = 2; k >= 0; k--)
        if (has_tag(b, tiers[k]))
            b->tier = k + 1;
    b->stable = has_tag(b, "stable");
}

/* A worker's builders (sorted, without repeats) and state, from its API object. */
static void worker_fill(struct rel_worker *w, const json_t *o)
{
    w->id = ui_int(o, "workerid");
    w->connected = json_array_size(json_object_get(o, "connected_to")) > 0;
    json_t *on = json_object_get(o, "configured_on");
    w->builders = xcalloc(json_array_size(on) + 1, sizeof *w->builders);
    w->n_builders = 0;
    size_t i;
    json_t *c;
    json_array_foreach(on, i, c)
    {
        w->builders[w->n_builders++] = ui_int(c, "builderid");
    }
    qsort(w->builders, w->n_builders, sizeof *w->builders, ids_cb);
    size_t k = 0;
    for (i = 0; i < w->n_builders; i++)
        if (k == 0 || w->builders[k - 1] != w->builders[i])
            w->builders[k++] = w->builders[i];
    w->n_builders = k;
}

static int by_name_cb(const void *a, const void *b)
{
    return strcmp(((const struct rel_bdef *)a)->name, ((const struct rel_bdef *)b)->name);
}

static int by_id_cb(const void *a, const void *b)
{
    long long x = ((const struct rel_key *)a)->id, y = ((const struct rel_key *)b)->id;
    return x < y ? -1 : x > y;
}

static bool configured(const struct rel_model *m, long long id)
{
    for (size_t i = 0; i < m->n_workers; i++)
        if (bsearch(&id, m->workers[i].builders, m->workers[i].n_builders, sizeof id, ids_cb))
            return true;
    return false;
}

/* The model's builders and workers (no history yet) from the two lists. */
static struct rel_model *model_of(const json_t *builders, const json_t *workers)
{
    struct rel_model *m = xcalloc(1, sizeof *m);
    m->workers = xcalloc(json_array_size(workers) + 1, sizeof *m->workers);
    size_t i;
    json_t *o;
    json_array_foreach(workers, i, o)
    {
        worker_fill(&m->workers[m->n_workers++], o);
    }
    m->set = xcalloc(1, sizeof *m->set);
    atomic_init(&m->set->refs, 1);
    m->set->v = xcalloc(json_array_size(builders) + 1, sizeof *m->set->v);
    json_array_foreach(builders, i, o)
    {
        if (configured(m, ui_int(o, "builderid")))
            bdef_fill(&m->set->v[m->set->n++], o);
    }
    size_t n = m->set->n;
    qsort(m->set->v, n, sizeof *m->set->v, by_name_cb);
    m->by_id = xcalloc(n + 1, sizeof *m->by_id);
    for (i = 0; i < n; i++)
        m->by_id[i] = (struct rel_key){m->set->v[i].id, i};
    qsort(m->by_id, n, sizeof *m->by_id, by_id_cb);
    m->hist = xcalloc(n + 1, sizeof *m->hist);
    m->connected = xcalloc(n + 1, sizeof *m->connected);
    for (i = 0; i < m->n_workers; i++) {
        const struct rel_worker *w = &m->workers[i];
        for (size_t k = 0; w->connected && k < w->n_builders; k++) {
            long at = rel_model_find(m, w->builders[k]);
            if (at >= 0)
                m->connected[at]++;
        }
    }
    return m;
}

struct rel_model *rel_model_read(struct ui_page *p, const struct rel_files *files,
                                 const struct rel_model *old, bool exact, rel_step_cb step,
                                 void *arg)
{
    json_t *builders = ui_get(p, "builders?field=builderid&field=name&field=tags");
    json_t *workers = ui_get(p, "workers?field=workerid&field=configured_on&field=connected_to");
    if (builders == NULL || workers == NULL)
        return NULL;
    struct rel_model *m = model_of(builders, workers);
    page_reset(p);
    size_t n = m->set->n;
    if (step != NULL && !step(arg, 0, n))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        long was = old != NULL ? rel_model_find(old, m->set->v[i].id) : -1;
        if (was >= 0) {
            m->hist[i] = old->hist[was];
            atomic_fetch_add(&m->hist[i]->refs, 1);
        } else if ((m->hist[i] = read_hist(p, files, &m->set->v[i], exact)) == NULL) {
            goto fail;
        }
        page_reset(p);
        if (step != NULL && !step(arg, i + 1, n))
            goto fail;
    }
    return m;
fail:
    rel_model_free(m);
    return NULL;
}

/* ------------------------------------------------------------ events */

struct rel_hist *rel_model_finished(struct ui_page *p, const struct rel_files *files,
                                    const struct rel_model *m, long long buildid, long *index)
{
    json_t *o = ui_get1(p, "builds/%lld?" BUILD_FIELDS, buildid);
    if (o == NULL || !ui_bool(o, "complete") || ui_int(o, "complete_at") < 0)
        return NULL;
    struct rel_build b = build_of(o);
    long at = rel_model_find(m, b.builderid);
    if (at < 0)
        return NULL;
    const struct rel_hist *old = m->hist[at];
    struct rel_hist *h = hist_new(old->n_builds + 1);
    for (size_t i = 0; i < old->n_builds; i++) /* the window without this build */
        if (old->builds[i].buildid != b.buildid)
            h->builds[h->n_builds++] = old->builds[i];
    size_t pos = 0;
    while (pos < h->n_builds && newest_cb(&h->builds[pos], &b) < 0)
        pos++;
    if (pos < REL_WINDOW) {
        size_t keep = h->n_builds < REL_WINDOW ? h->n_builds : REL_WINDOW - 1;
        memmove(&h->builds[pos + 1], &h->builds[pos], (keep - pos) * sizeof b);
        h->builds[pos] = b;
        h->n_builds = keep + 1;
    }
    settle(h);
    if (add_changes(p, files, &m->set->v[at], h, old) < 0) {
        rel_hist_unref(h);
        return NULL;
    }
    *index = at;
    return h;
}

static struct rel_worker *find_worker(struct rel_model *m, long long id)
{
    for (size_t i = 0; i < m->n_workers; i++)
        if (m->workers[i].id == id)
            return &m->workers[i];
    return NULL;
}

int rel_model_worker(struct ui_page *p, struct rel_model *m, long long workerid,
                     const struct rel_worker **out, int *delta)
{
    json_t *o =
        ui_get1(p, "workers/%lld?field=workerid&field=configured_on&field=connected_to", workerid);
    if (o == NULL)
        return p->status != 200 ? -1 : 0;
    struct rel_worker now = {0};
    worker_fill(&now, o);
    struct rel_worker *w = find_worker(m, workerid);
    int rc;
    if (w == NULL || w->n_builders != now.n_builders ||
        memcmp(w->builders, now.builders, now.n_builders * sizeof *now.builders) != 0) {
        rc = 2;
    } else if (w->connected == now.connected) {
        rc = 0;
    } else {
        w->connected = now.connected;
        *delta = now.connected ? 1 : -1;
        *out = w;
        rc = 1;
    }
    free(now.builders);
    return rc;
}
