/*
 * single_branch and any_branch, as Buildbot's BaseBasicScheduler: a change
 * the filter takes is classified important or not (fileIsImportant) in
 * scheduler_changes; an important one (re)starts the tree-stable timer, an
 * unimportant one restarts it only if it runs.  When the timer fires, one
 * buildset is made of the classified changes of that timer (the newest
 * change's source stamp) and they are forgotten.  Without treeStableTimer an
 * important change is built at once and nothing is classified.
 * any_branch keeps one timer per codebase, project, repository and branch;
 * single_branch one.  The classifications outlive the master: at start the
 * timers of the pending changes start again, so a restart during a wait
 * neither drops nor repeats a build.
 */
#include "schedulers/internal.h"

#include <stdlib.h>
#include <string.h>

struct stable_timer {
    uv_timer_t t;
    struct sched_one *o; /* NULL once the scheduler is gone */
    json_t *where;       /* any_branch: {codebase, project, repository, branch}; NULL: all */
    struct stable_timer *next;
};

bool basic_kind(const char *kind)
{
    return util_streq(kind, "single_branch") || util_streq(kind, "any_branch") ||
           util_streq(kind, "pull_request");
}

static bool any_branch(const struct sched_one *o)
{
    return strcmp(o->kind, "single_branch") != 0;
}

static const char *classname(const struct sched_one *o)
{
    return strcmp(o->kind, "pull_request") == 0 ? "GitHubPrScheduler"
           : any_branch(o)                      ? "AnyBranchScheduler"
                                                : "SingleBranchScheduler";
}

static json_t *timer_key(const struct sched_one *o, const json_t *change)
{
    if (!any_branch(o))
        return NULL;
    return json_pack("{sOsOsOsO}", "codebase", json_object_get(change, "codebase"), "project",
                     json_object_get(change, "project"), "repository",
                     json_object_get(change, "repository"), "branch",
                     json_object_get(change, "branch") ? json_object_get(change, "branch")
                                                       : json_null());
}

static struct stable_timer *find_timer(struct sched_one *o, const json_t *key)
{
    for (struct stable_timer *t = o->timers; t != NULL; t = t->next)
        if (key == NULL || json_equal(t->where, key))
            return t;
    return NULL;
}

static void timer_closed(uv_handle_t *h)
{
    struct stable_timer *t = h->data;
    json_decref(t->where);
    free(t);
}

static void drop_timer(struct sched_one *o, struct stable_timer *t)
{
    for (struct stable_timer **p = &o->timers; *p != NULL; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    uv_timer_stop(&t->t);
    uv_close((uv_handle_t *)&t->t, timer_closed);
}

/* Forgets the classifications that went into a buildset. */
static void flush(struct sched_one *o, const json_t *rows)
{
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        struct db_param p[] = {DB_INT(o->id),
                               DB_INT(json_integer_value(json_object_get(row, "changeid")))};
        char *cause = NULL;
        if (db_exec(o->s->db,
                    "DELETE FROM scheduler_changes WHERE schedulerid = ? AND changeid = ?", p, 2,
                    &cause) < 0) {
            log_error("scheduler '%s': forgetting changes: %s", o->name, cause);
            free(cause);
            return;
        }
    }
}

static void fired(uv_timer_t *h)
{
    struct stable_timer *t = h->data;
    struct sched_one *o = t->o;
    char *cause = NULL;
    json_t *rows = sched_classified(o, t->where, &cause);
    drop_timer(o, t);
    if (rows == NULL) {
        log_error("scheduler '%s': reading its changes: %s", o->name, cause);
        free(cause);
        return;
    }
    if (json_array_size(rows) > 0) {
        char *reason = sched_reason(o, classname(o));
        if (sched_build_changes(o, rows, reason) == 0)
            flush(o, rows);
        free(reason);
    }
    json_decref(rows);
}

static void start_timer(struct sched_one *o, json_t *key, double seconds)
{
    struct stable_timer *t = find_timer(o, key);
    if (t == NULL) {
        t = xcalloc(1, sizeof *t);
        uv_timer_init(o->s->loop, &t->t);
        t->t.data = t;
        t->o = o;
        t->where = json_incref(key);
        t->next = o->timers;
        o->timers = t;
    }
    uv_timer_start(&t->t, fired, (uint64_t)(seconds * 1000), 0);
}

/* gotChange: the change is classified, timers started, or built at once. */
static void got_change(struct sched_one *o, const json_t *change, bool important, bool record)
{
    double stable = sched_num(o, "treeStableTimer", 0);
    if (stable <= 0) {
        if (important) {
            json_t *rows = json_pack("[O]", change);
            char *reason = sched_reason(o, classname(o));
            sched_build_changes(o, rows, reason);
            free(reason);
            json_decref(rows);
        }
        return;
    }
    json_t *key = timer_key(o, change);
    if (important || find_timer(o, key) != NULL)
        start_timer(o, key, stable);
    json_decref(key);
    char *cause = NULL;
    long long id = (long long)json_integer_value(json_object_get(change, "changeid"));
    if (record && sched_classify(o, id, important, &cause) < 0) {
        log_error("scheduler '%s': classifying change %lld: %s", o->name, id, cause);
        free(cause);
    }
}

void basic_change(struct sched_one *o, const json_t *change)
{
    bool pr = strcmp(o->kind, "pull_request") == 0;
    if (pr &&
        !json_is_true(json_object_get(json_object_get(change, "properties"), "should_test_pr")))
        return; /* only what pull-request testing asked for */
    if (!filter_accepts(o, change))
        return;
    if (!sched_takes_codebase(o, change))
        return;
    int important = filter_important(o, change);
    if (important < 0 || (important == 0 && sched_bool(o, "onlyImportant")))
        return;
    got_change(o, change, important == 1, true);
}

void basic_activate(struct sched_one *o)
{
    char *cause = NULL;
    if (sched_num(o, "treeStableTimer", 0) <= 0) {
        struct db_param p = DB_INT(o->id);
        if (db_exec(o->s->db, "DELETE FROM scheduler_changes WHERE schedulerid = ?", &p, 1,
                    &cause) < 0) {
            log_error("scheduler '%s': %s", o->name, cause);
            free(cause);
        }
        return;
    }
    json_t *rows = sched_classified(o, NULL, &cause);
    if (rows == NULL) {
        log_error("scheduler '%s': reading its changes: %s", o->name, cause);
        free(cause);
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        got_change(o, row, json_is_true(json_object_get(row, "important")), false);
    }
    if (json_array_size(rows) > 0)
        log_info("scheduler '%s': %zu change(s) waiting for the tree to be stable", o->name,
                 json_array_size(rows));
    json_decref(rows);
}

void basic_deactivate(struct sched_one *o)
{
    while (o->timers != NULL)
        drop_timer(o, o->timers);
}
