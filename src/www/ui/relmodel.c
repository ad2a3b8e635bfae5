/*
 * The builders of /release_status and what their builds say, kept between
 * renders.  As the original dashboard does, the builders are those
 * configured on some worker whose tags name a branch of the release cycle;
 * each has its last complete builds (newest complete_at first), its newest
 * SUCCESS/WARNINGS/FAILURE build, and the first FAILURE of the streak that
 * ends it (looked for in its last 200 complete builds, as the original
 * does: past them the streak's start is unknown).
 *
 * Everything is read through the /api/v2 endpoints (ui_get).  Nothing is
 * read again while the tables it comes from have not been written
 * (db_writes) and RECHECK_MS has not passed (the bound on what another
 * process's writes can hide).  When something was written, the builders and
 * workers are read again (two queries) but the builds only of the builders
 * that finished one since: the builds from the oldest one that was running
 * at the last refresh on (or else from the first id after the newest seen)
 * are read by primary key, and those that are complete now but were running
 * then, or are new, say which.  Every FULL_MS, and whenever the
 * release cycle changes, every builder is read again, which also catches
 * what no build id tells (a build row deleted or rewritten by hand).
 */
#include "www/ui/release.h"

#include <stdlib.h>
#include <string.h>

#define RECHECK_MS 30000
#define FULL_MS (60 * 60 * 1000)
#define STREAK_BUILDS 200 /* the original's N_BUILDS */
#define RECENT_MAX 2000   /* builds read to find what finished; more: read every builder */
#define MAX_CHANGES 50    /* the original's MAX_CHANGES */
#define BUILD_FIELDS                                                                               \
    "field=buildid&field=number&field=builderid&field=results&field=started_at&"                   \
    "field=complete_at&field=complete&field=locks_duration_s"

enum { R_SUCCESS = 0, R_WARNINGS = 1, R_FAILURE = 2 };

/* What the model is read from: a write to one of these may change it. */
static const char *const model_tables[] = {
    "builds",  "builders",           "builders_tags",     "tags", "builder_masters",
    "workers", "configured_workers", "connected_workers", NULL};

static void builder_clear(struct rel_builder *b)
{
    free(b->name);
    for (size_t i = 0; i < b->n_tags; i++)
        free(b->tags[i]);
    free(b->tags);
}

void rel_builders_free(struct ui_release *r)
{
    for (size_t i = 0; i < r->n_builders; i++)
        builder_clear(&r->builders[i]);
    free(r->builders);
    r->builders = NULL;
    r->n_builders = 0;
    for (size_t i = 0; i < r->n_changes; i++)
        free(r->changes[i].html);
    free(r->changes);
    r->changes = NULL;
    r->n_changes = 0;
    free(r->running);
    r->running = NULL;
    r->n_running = 0;
    r->valid = false;
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

/* The first branch of the cycle whose tag the builder has, or -1. */
static int branch_of(const struct ui_release *r, const json_t *builder)
{
    for (size_t i = 0; i < r->n_branches; i++)
        if (has_tag(builder, r->branches[i].tag))
            return (int)i;
    return -1;
}

static int tier_of(const json_t *builder)
{
    static const char *const tiers[] = {"tier-1", "tier-2", "tier-3"};
    for (int i = 0; i < 3; i++)
        if (has_tag(builder, tiers[i]))
            return i + 1;
    return 99;
}

/* Workers: does any configure the builder (`connected` false), or how many of those are
   connected (`connected` true). */
static int workers_of(const json_t *workers, long long builderid, bool connected)
{
    int n = 0;
    size_t i, j;
    json_t *w, *on;
    json_array_foreach(workers, i, w)
    {
        if (connected && json_array_size(json_object_get(w, "connected_to")) == 0)
            continue;
        json_array_foreach(json_object_get(w, "configured_on"), j, on)
        {
            if (ui_int(on, "builderid") == builderid) {
                n++;
                break;
            }
        }
    }
    return n;
}

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

/*
 * The streak in `list` (newest first) that ends at a FAILURE: its first FAILURE if a SUCCESS
 * comes before it (WARNINGS neither break nor start it), else none.  1 found, 0 not: the
 * original's walk in release_dashboard.py, Builder.problems.
 */
static int find_breaking(const json_t *list, struct rel_build *out)
{
    bool have = false;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        long long res = ui_int(o, "results");
        if (res == R_FAILURE) {
            *out = build_of(o);
            have = true;
        } else if (res == R_SUCCESS) {
            return have;
        }
    }
    return 0;
}

/* Reads a builder's builds; -1 when a read failed. */
static int read_builds(struct ui_page *p, struct rel_builder *b)
{
    json_t *list =
        ui_get(p, "builders/%lld/builds?complete=true&order=-complete_at&limit=%d&" BUILD_FIELDS,
               b->id, REL_DOTS + 1);
    if (list == NULL)
        return -1;
    b->n_builds = 0;
    b->has_latest = b->has_breaking = false;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        if (b->n_builds < REL_DOTS + 1)
            b->builds[b->n_builds++] = build_of(o);
        if (!b->has_latest && interesting(ui_int(o, "results"))) {
            b->latest = build_of(o);
            b->has_latest = true;
        }
    }
    if (!b->has_latest || b->latest.results != R_FAILURE)
        return 0;
    if (find_breaking(list, &b->breaking) == 0 && json_array_size(list) == REL_DOTS + 1) {
        /* no SUCCESS in the builds read: look as far back as the original does */
        list = ui_get(
            p, "builders/%lld/builds?complete=true&order=-complete_at&limit=%d&" BUILD_FIELDS,
            b->id, STREAK_BUILDS);
        if (list == NULL)
            return -1;
        b->has_breaking = find_breaking(list, &b->breaking) == 1;
        return 0;
    }
    b->has_breaking = find_breaking(list, &b->breaking) == 1;
    return 0;
}

static int by_id_cb(const void *a, const void *b)
{
    long long x = ((const struct rel_builder *)a)->id, y = ((const struct rel_builder *)b)->id;
    return x < y ? -1 : x > y;
}

static int by_name_cb(const void *a, const void *b)
{
    return strcmp(((const struct rel_builder *)a)->name, ((const struct rel_builder *)b)->name);
}

static int ids_cb(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Was build `id` running at the last refresh? */
static bool was_running(const struct ui_release *r, long long id)
{
    return bsearch(&id, r->running, r->n_running, sizeof *r->running, ids_cb) != NULL;
}

/* Remembers the builds of `list` (by id) still running, and the newest id seen. */
static void note_running(struct ui_release *r, const json_t *list, long long top)
{
    free(r->running);
    r->running = xcalloc(json_array_size(list) + 1, sizeof *r->running);
    r->n_running = 0;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        long long id = ui_int(o, "buildid");
        top = id > top ? id : top;
        if (ui_int(o, "complete_at") < 0)
            r->running[r->n_running++] = id;
    }
    qsort(r->running, r->n_running, sizeof *r->running, ids_cb);
    r->top_buildid = top;
}

/* The oldest build that may have finished since the last refresh. */
static long long low_buildid(const struct ui_release *r)
{
    return r->n_running > 0 ? r->running[0] : r->top_buildid + 1;
}

/*
 * The builders that finished a build since the last refresh -- a build newer than any
 * seen then, or one running then -- as sorted ids in *ids, their number returned; -1 when
 * a read failed, -2 when there were too many builds to say (read every builder).
 */
static long long finished_since(struct ui_release *r, struct ui_page *p, long long **ids)
{
    json_t *list = ui_get(p,
                          "builds?buildid__ge=%lld&order=buildid&limit=%d&field=buildid&"
                          "field=builderid&field=complete_at",
                          low_buildid(r), RECENT_MAX);
    if (list == NULL)
        return -1;
    size_t n = json_array_size(list);
    if (n >= RECENT_MAX)
        return -2;
    *ids = xcalloc(n + 1, sizeof **ids);
    long long k = 0;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        long long id = ui_int(o, "buildid");
        if (ui_int(o, "complete_at") >= 0 && (id > r->top_buildid || was_running(r, id)))
            (*ids)[k++] = ui_int(o, "builderid");
    }
    note_running(r, list, r->top_buildid);
    qsort(*ids, (size_t)k, sizeof **ids, ids_cb);
    return k;
}

/* The running builds and the newest id, when every builder is read. */
static int find_running(struct ui_release *r, struct ui_page *p)
{
    json_t *run = ui_get(p,
                         "builds?complete=false&order=buildid&limit=%d&field=buildid&"
                         "field=complete&field=complete_at",
                         RECENT_MAX);
    json_t *top = ui_get1(p, "builds?order=-buildid&limit=1&field=buildid");
    if (p->status != 200)
        return -1;
    note_running(r, run, top != NULL ? ui_int(top, "buildid") : 0);
    return 0;
}

/* What was read of a builder's builds before (its name and tags are read again). */
static void keep_builds(struct rel_builder *b, const struct rel_builder *was)
{
    memcpy(b->builds, was->builds, sizeof b->builds);
    b->n_builds = was->n_builds;
    b->has_latest = was->has_latest;
    b->latest = was->latest;
    b->has_breaking = was->has_breaking;
    b->breaking = was->breaking;
}

/* The builder's entry, from the builders and workers just read. */
static void builder_fill(struct rel_builder *b, const json_t *o, const json_t *workers, int branch)
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
    b->branch = branch;
    b->tier = tier_of(o);
    b->stable = has_tag(o, "stable");
    b->connected = workers_of(workers, b->id, true);
}

/* The new list of builders; their builds read again when `all`, when new, or when listed
   in `changed` (sorted). */
static int rebuild(struct ui_release *r, struct ui_page *p, const json_t *builders,
                   const json_t *workers, bool all, const long long *changed, size_t n_changed)
{
    struct rel_builder *old = r->builders;
    size_t n_old = r->n_builders;
    qsort(old, n_old, sizeof *old, by_id_cb);
    struct rel_builder *v = xcalloc(json_array_size(builders) + 1, sizeof *v);
    size_t n = 0, i;
    json_t *o;
    int rc = 0;
    json_array_foreach(builders, i, o)
    {
        int branch = branch_of(r, o);
        long long id = ui_int(o, "builderid");
        if (branch < 0 || workers_of(workers, id, false) == 0)
            continue;
        struct rel_builder key = {.id = id},
                           *was = bsearch(&key, old, n_old, sizeof *old, by_id_cb);
        struct rel_builder *b = &v[n++];
        if (was != NULL)
            keep_builds(b, was);
        builder_fill(b, o, workers, branch);
        bool again =
            all || was == NULL || bsearch(&id, changed, n_changed, sizeof *changed, ids_cb) != NULL;
        b->fresh = again;
        if (again && rc == 0 && read_builds(p, b) < 0)
            rc = -1;
    }
    qsort(v, n, sizeof *v, by_name_cb);
    for (i = 0; i < n_old; i++)
        builder_clear(&old[i]);
    free(old);
    r->builders = v;
    r->n_builders = n;
    return rc;
}

int rel_refresh(struct ui_release *r, struct ui_page *p)
{
    rel_cycle_check(r);
    uint64_t now = util_mono_ms();
    unsigned long writes = db_writes(model_tables);
    bool same_cycle = r->valid && r->built_for_cycle == r->cycle_version;
    if (same_cycle && writes == r->writes && now - r->checked_ms < RECHECK_MS)
        return 0;
    bool all = !same_cycle || now - r->full_ms >= FULL_MS;
    json_t *builders = ui_get(p, "builders?field=builderid&field=name&field=tags");
    json_t *workers = ui_get(p, "workers?field=workerid&field=configured_on&field=connected_to");
    if (builders == NULL || workers == NULL)
        return -1;
    long long *changed = NULL, n_changed = 0;
    if (!all) {
        n_changed = finished_since(r, p, &changed);
        if (n_changed == -1)
            return -1;
        all = n_changed == -2;
    }
    if (all && find_running(r, p) < 0) {
        free(changed);
        return -1;
    }
    r->valid = false;
    int rc = rebuild(r, p, builders, workers, all, changed, n_changed > 0 ? (size_t)n_changed : 0);
    free(changed);
    if (rc < 0)
        return -1;
    r->valid = true;
    r->writes = writes;
    r->built_for_cycle = r->cycle_version;
    r->checked_ms = now;
    if (all)
        r->full_ms = now;
    return 0;
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

const char *rel_changes(struct ui_release *r, struct ui_page *p, long long buildid)
{
    for (size_t i = 0; i < r->n_changes; i++)
        if (r->changes[i].buildid == buildid) {
            r->changes[i].used = true;
            return r->changes[i].html;
        }
    json_t *list = ui_get(p, "builds/%lld/changes?limit=%d", buildid, MAX_CHANGES);
    if (list == NULL)
        return "";
    struct buf b;
    buf_init(&b, 0);
    size_t n = json_array_size(list);
    /* as many as the limit: a long failing streak, better said as nothing (the original) */
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
    r->changes = xrealloc(r->changes, (r->n_changes + 1) * sizeof *r->changes);
    r->changes[r->n_changes] = (struct rel_changes){buildid, buf_take(&b), true};
    return r->changes[r->n_changes++].html;
}

/* Forgets the changes of builds no render named since the last call. */
void rel_changes_prune(struct ui_release *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_changes; i++) {
        if (r->changes[i].used) {
            r->changes[i].used = false;
            r->changes[k++] = r->changes[i];
        } else {
            free(r->changes[i].html);
        }
    }
    r->n_changes = k;
}
