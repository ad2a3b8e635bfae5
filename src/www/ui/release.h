/*
 * The Release Status page (/release_status), a port of buildbot.python.org's
 * dashboard (python/buildmaster-config, master/custom/release_dashboard.py):
 * for each branch of the Python release cycle that is not end-of-life, whether
 * it can be released, and the problems of its builders -- grouped, ordered by
 * severity and worded as the original words them, so that release managers
 * read the same verdicts.
 *
 * Four parts: the release cycle's branches, read from a file (relcycle.c);
 * the model, what each configured builder's builds say, read through the
 * /api/v2 endpoints (relmodel.c); the thread that keeps the model: it reads
 * it once in the background when the server starts, then follows the
 * engine's events, one builder per finished build (relfeed.c); the problems
 * found in it and the page (release.c).  A render never reads the database:
 * it takes references to the model's immutable pieces under a short lock.
 */
#ifndef BBM_WWW_UI_RELEASE_H
#define BBM_WWW_UI_RELEASE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "www/ui/ui.h"

/* A branch of the release cycle that is not end-of-life. */
struct rel_branch {
    char *version; /* the key: "3.14" */
    char *tag;     /* the builder tag: the version, or "3.x" for the branch "main" */
    char *branch;  /* "3.14", "main"; NULL if absent */
    char *status;  /* "bugfix", "feature", "prerelease", "security"; NULL if absent */
    char *rm;      /* release_manager, or NULL */
    long long pep; /* -1: none */
};

/* Builds as the page needs them (a build row's fields; -1 for null). */
struct rel_build {
    long long buildid, number, builderid, results, started_at, complete_at, locks;
};

/* The dots a builder with problems shows; the builds its streak is looked for in (the
   original's N_BUILDS: past them the streak's start is unknown). */
#define REL_DOTS 50
#define REL_WINDOW 200

/*
 * What a builder's complete builds say: its last REL_WINDOW of them by complete_at,
 * the newest SUCCESS/WARNINGS/FAILURE (`latest`), the first FAILURE of the streak
 * that ends it when a SUCCESS comes before it (`breaking`), and their changes as HTML.
 * Immutable once published: an update makes a new one.  Reference counted: a render
 * holds it while the model moves on.
 */
struct rel_hist {
    atomic_int refs;
    bool has_latest, has_breaking;
    struct rel_build latest, breaking;
    char *latest_changes, *breaking_changes; /* "" when none or not shown */
    char *latest_junit, *breaking_junit;     /* their JUnit failures (reljunit.c), or "" */
    size_t n_builds;
    struct rel_build builds[]; /* newest complete_at first (ties: lower id); as many as the
                                  builder has, up to REL_WINDOW (a full array for each of
                                  1,036 builders was 11 MB on an empty database) */
};

/* A configured builder (its row and tags). */
struct rel_bdef {
    long long id;
    char *name;
    char **tags;
    size_t n_tags;
    int tier; /* 1..3, or 99 (tierless) */
    bool stable;
};

/* The builders configured on some worker, sorted by name; immutable, reference counted. */
struct rel_set {
    atomic_int refs;
    struct rel_bdef *v;
    size_t n;
};

/* A worker, as far as the model needs it (the model thread's alone). */
struct rel_worker {
    long long id;
    bool connected;
    long long *builders; /* configured on, sorted */
    size_t n_builders;
};

struct rel_key {
    long long id;
    size_t at;
};

/*
 * The model: the set, each builder's history and how many of its workers are
 * connected.  Written by the model thread only; `hist` slots and `connected` change
 * under ui_release.lock, the whole model is replaced under it.
 */
struct rel_model {
    struct rel_set *set;
    struct rel_hist **hist; /* per set->v[i] */
    int *connected;         /* per set->v[i] */
    struct rel_key *by_id;  /* builder ids and their index in set->v, by id */
    struct rel_worker *workers;
    size_t n_workers;
};

/* A builder as a render sees it. */
struct rel_builder {
    const struct rel_bdef *def;
    const struct rel_hist *h;
    int connected;
    int branch; /* index in the cycle's branches, -1: none */
};

/* What a render copies under the lock (references, not data). */
struct rel_view {
    struct rel_set *set;
    struct rel_hist **hist;
    int *connected;
};

struct rel_feed;

struct ui_release {
    /* the model and the warm-up's progress: held only to copy or swap pointers */
    pthread_mutex_t lock;
    struct rel_model *model; /* NULL until the first full read is done */
    size_t warm_read, warm_total;
    char *warm_error; /* why the last full read failed, or NULL */
    unsigned long full_reads, events_applied;
    /* relcycle.c, under cycle_lock: held for a stat and, when the file changed, a parse */
    pthread_mutex_t cycle_lock;
    char *path;       /* the file (absolute), or NULL when www.release_cycle is not set */
    char *source;     /* the URL the master fetches the file from, or NULL */
    bool pending;     /* source is set and the file is not there yet */
    struct stat seen; /* of the last read, good or not */
    bool read_once;
    struct rel_branch *branches; /* the last good copy */
    size_t n_branches;
    char *cycle_error; /* why the last read failed, or NULL */
    char *results_dir; /* www.release_test_results (absolute), or NULL */
    struct rel_feed *feed;
};

/* relcycle.c: reads the file again if it changed on disk (or was never read) and gives a
   copy of the branches (to free with rel_branches_free), the path and the error (to free)
   in *path and *error, and in *pending the URL the file is still being fetched from (to
   free; NULL once the file exists or when it is not fetched); false when no release cycle
   is configured. */
bool rel_cycle_get(struct ui_release *r, struct rel_branch **out, size_t *n, char **path,
                   char **error, char **pending);
void rel_branches_free(struct rel_branch *b, size_t n);
/* Is a release cycle configured (is there anything to warm up)? */
bool rel_cycle_configured(struct ui_release *r);

/* Where the JUnit files of builds are: the results directory and the cycle's branches
   (a builder's files are under the tag of its branch).  Copies, taken by the model thread
   before it reads (rel_files_free). */
struct rel_files {
    char *dir; /* NULL: none */
    struct rel_branch *branches;
    size_t n_branches;
};
void rel_files_get(struct ui_release *r, struct rel_files *out);
void rel_files_free(struct rel_files *f);

/* reljunit.c: the JUnit failures of build `number` of `builder` (DIR/TAG/BUILDER/
   build_N.xml) as the page shows them: HTML, "" when there is no such file or it does not
   parse.  The caller frees it. */
char *rel_junit_html(const char *dir, const char *tag, const char *builder, long long number);
/* The same from an open file (read to its end, not closed). */
char *rel_junit_html_file(FILE *f);

/* relmodel.c */
void rel_hist_unref(struct rel_hist *h);
void rel_set_unref(struct rel_set *s);
void rel_model_free(struct rel_model *m);
/* The index of builder `id` in m->set, or -1. */
long rel_model_find(const struct rel_model *m, long long id);
/*
 * A new model read through the API with page `p` (its reads are freed as it goes):
 * the builders and workers (two queries), then the builds of each builder (one query,
 * two where builds finished out of number order), or, when `old` has the builder, its
 * history from there.  `exact`: order by complete_at in the database (the original's
 * query) rather than by number.  `step` is called after each builder read (its
 * arguments: done, total); false from it stops the read.  NULL when a read failed.
 */
typedef bool (*rel_step_cb)(void *arg, size_t done, size_t total);
struct rel_model *rel_model_read(struct ui_page *p, const struct rel_files *files,
                                 const struct rel_model *old, bool exact, rel_step_cb step,
                                 void *arg);
/*
 * Build `buildid` finished: its builder's new history (O(REL_WINDOW)), or NULL when it
 * changes nothing (not complete, builder not in the model) or a read failed (p->status).
 * *index gets the builder's index.
 */
struct rel_hist *rel_model_finished(struct ui_page *p, const struct rel_files *files,
                                    const struct rel_model *m, long long buildid, long *index);
/*
 * Worker `workerid` (dis)connected: 1 when its connected state changed (m->workers is
 * updated; *delta, +1 or -1, is to be added to the count of each builder of *w, under
 * the lock), 0 when nothing changed, 2 when the builders it is configured on changed
 * (the set must be read again), -1 when a read failed.
 */
int rel_model_worker(struct ui_page *p, struct rel_model *m, long long workerid,
                     const struct rel_worker **w, int *delta);

/* relfeed.c (www_release_start and _stop in www/internal.h): the cycle was set or changed: the
 * thread looks at it now. */
void rel_feed_poke(struct ui_release *r);
/* A render's view: references to the model's pieces, taken under the lock; false while
   the model is not read yet (then *done and *total say how far the warm-up is). */
bool rel_view_take(struct ui_release *r, struct rel_view *v, size_t *done, size_t *total,
                   char **error);
void rel_view_drop(struct rel_view *v);

#endif
