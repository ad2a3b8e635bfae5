/*
 * Private to src/changes.
 *
 *   store.c   a change written as Buildbot's addChange writes it
 *   github.c  GitHub's webhook events as changes
 *   hook.c    the change sources of a configuration; /change_hook answers
 *   poller.c  the git poller
 *   pbchange.c changes sent by sendchange
 */
#ifndef BBM_CHANGES_INTERNAL_H
#define BBM_CHANGES_INTERNAL_H

#include "changes/changes.h"
#include "util/util.h"

struct poller;

struct chg {
    uv_loop_t *loop;
    struct db *db;
    const struct cfg *cfg;
    chg_listener listener;
    void *arg;
    struct poller *pollers;
};

/* Stores each change of the list and tells the listener: how many, or -1 (logged). */
int chg_store(struct chg *c, json_t *changes, const char *src);

/* poller.c: the git pollers of c->cfg, those of the same name kept. */
void poller_reconfig(struct chg *c);
/* Stops every poller (a running git is killed); they are freed once their handles close. */
void poller_stop_all(struct chg *c);

#endif
