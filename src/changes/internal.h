/*
 * Private to src/changes.
 *
 *   store.c   a change written as Buildbot's addChange writes it
 *   github.c  GitHub's webhook events as changes
 *   hook.c    the change sources of a configuration; /change_hook answers
 *   poller.c  the git poller
 *   pbchange.c changes sent by sendchange
 *   prtest.c  pull-request testing on request (a label, a comment)
 */
#ifndef BBM_CHANGES_INTERNAL_H
#define BBM_CHANGES_INTERNAL_H

#include "changes/changes.h"
#include "util/util.h"

struct poller;
struct prflow;
struct hook_job;

struct chg {
    uv_loop_t *loop;
    struct db *db;
    const struct cfg *cfg;
    chg_listener listener;
    void *arg;
    struct poller *pollers;
    struct http *http;    /* GitHub's API */
    struct prflow *flows; /* pull-request testing requests in progress */
    size_t n_flows;
    struct hook_job *jobs; /* pushes being stored, a slice per loop turn, oldest first */
    size_t n_jobs;
    size_t held;       /* what the payloads of the jobs and flows cost (CHG_HOOK_PARSE_MAX) */
    size_t admitted;   /* the cost of the webhook being taken, until a job or flow holds it */
    uv_idle_t *slicer; /* runs while jobs wait (its memory goes in its close callback) */
};

/* Stores each change of the list and tells the listener: how many, or -1 (logged). */
int chg_store(struct chg *c, json_t *changes, const char *src);
/* Stores one change and tells the listener: 0, or -1 (logged). */
int chg_store_one(struct chg *c, json_t *change, const char *src);

/* github.c: the whitelisted properties of `info` ("github.a.b") added to `props`. */
void changes_github_properties(const struct cfg_github *gh, const json_t *info, json_t *props);
/* Whether a head commit message has one of the skip patterns. */
bool changes_github_skip(const struct cfg_github *gh, const char *message);
/* The change of pull request `pr` (its number in it) of the event `payload` (owned; takes
   props): on refs/pull/N/<pullrequest_ref>, category "pull", by the sender. */
json_t *changes_github_pr_change(const struct cfg_github *gh, const json_t *payload,
                                 const json_t *pr, json_t *props);

/*
 * prtest.c: the events that need GitHub's API: pull-request testing (a label,
 * a comment) when the dialect has it, else a pull_request event's `changes`
 * (one), completed with the files and checked for skip patterns.  True when a
 * flow has started: it answers `act`.
 */
/* A flow started here holds c->admitted (see struct chg). */
bool changes_pr_testing(struct chg *c, struct ctl_action *act, const char *event, json_t *payload,
                        json_t *changes);
/* Answers every flow in progress (the master stops). */
void changes_pr_abort(struct chg *c);

/* poller.c: the git pollers of c->cfg, those of the same name kept. */
void poller_reconfig(struct chg *c);
/* Stops every poller (a running git is killed); they are freed once their handles close. */
void poller_stop_all(struct chg *c);

#endif
