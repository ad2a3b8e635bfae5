/*
 * The Release Status page (/release_status), a port of buildbot.python.org's
 * dashboard (python/buildmaster-config, master/custom/release_dashboard.py):
 * for each branch of the Python release cycle that is not end-of-life, whether
 * it can be released, and the problems of its builders -- grouped, ordered by
 * severity and worded as the original words them, so that release managers
 * read the same verdicts.
 *
 * Three parts: the release cycle's branches, read from a file
 * (relcycle.c); the state of each builder, read through the /api/v2
 * endpoints and kept between renders (relmodel.c); the problems found in it
 * and the page (release.c).  One `struct ui_release` per web server holds
 * all of it under one lock.
 */
#ifndef BBM_WWW_UI_RELEASE_H
#define BBM_WWW_UI_RELEASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
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

/* What the dots show of a builder's history, and the builds its problems name. */
#define REL_DOTS 50

struct rel_builder {
    long long id;
    char *name;
    char **tags;
    size_t n_tags;
    int branch; /* index in the cycle's branches */
    int tier;   /* 1..3, or 99 (tierless) */
    bool stable;
    int connected; /* workers configured for it and connected */
    /* complete builds, newest complete_at first: at most REL_DOTS + 1 (one more says "more") */
    struct rel_build builds[REL_DOTS + 1];
    size_t n_builds;
    bool has_latest;   /* `latest`: the newest SUCCESS, WARNINGS or FAILURE */
    bool has_breaking; /* `breaking`: the first FAILURE of the streak, when a SUCCESS ends it */
    struct rel_build latest, breaking;
    bool fresh; /* read again in the current refresh */
};

/* A build's changes as HTML, kept while the build is named by a problem (changes do not
   change). */
struct rel_changes {
    long long buildid;
    char *html; /* "" when there are none, or too many to say */
    bool used;
};

struct ui_release {
    pthread_mutex_t lock; /* held while the model is read and the page written */
    /* The last page written, for requests that come while the lock is held: a refresh
       can take seconds on a long history, and no request thread waits for it. */
    pthread_mutex_t last_lock;
    char *last;
    size_t last_len;
    /* Also under last_lock: the file a reconfig named, taken by the next render (the
       engine thread that sets it never waits for a refresh). */
    char *want;
    bool want_set;
    /* relcycle.c */
    char *path;       /* the file (absolute), or NULL when www.release_cycle is not set */
    struct stat seen; /* of the last read, good or not */
    bool read_once;
    struct rel_branch *branches; /* the last good copy */
    size_t n_branches;
    char *cycle_error; /* why the last read failed, or NULL */
    unsigned long cycle_version;
    /* relmodel.c: builders on the branches, sorted by name */
    struct rel_builder *builders;
    size_t n_builders;
    unsigned long writes; /* db_writes of the model's tables at the last refresh */
    unsigned long built_for_cycle;
    uint64_t checked_ms, full_ms; /* last refresh, last refresh of every builder */
    long long *running;           /* ids of the builds running at the last refresh, sorted */
    size_t n_running;
    long long top_buildid; /* the newest build id seen then */
    bool valid;
    struct rel_changes *changes;
    size_t n_changes;
};

/* relcycle.c: takes the file a reconfig named (under r->lock). */
void rel_cycle_take(struct ui_release *r);
/* relcycle.c: reads the file again if it changed on disk (or was never read). */
void rel_cycle_check(struct ui_release *r);
void rel_branches_free(struct rel_branch *b, size_t n);

/* relmodel.c: brings the builders up to date; 0, or -1 when a read failed (the page
   then says so, through ui_fail).  Holds r->lock. */
int rel_refresh(struct ui_release *r, struct ui_page *p);
/* The changes of build `buildid` as HTML ("" if none), read once. */
const char *rel_changes(struct ui_release *r, struct ui_page *p, long long buildid);
/* Forgets the changes of builds no render named since the last call. */
void rel_changes_prune(struct ui_release *r);
void rel_builders_free(struct ui_release *r);

#endif
