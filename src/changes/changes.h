/*
 * changes: where changes come from and how they are kept.  A change is a
 * JSON object with the fields of Buildbot's addChange (author, committer,
 * comments, revision, branch, category, revlink, repository, project,
 * codebase, when_timestamp, files, properties); store.c writes it as
 * Buildbot's addChange writes it, github.c makes changes from GitHub's
 * webhook events, hook.c answers /change_hook/DIALECT on the engine loop and
 * hands every new change to whoever listens (the schedulers).
 */
#ifndef BBM_CHANGES_H
#define BBM_CHANGES_H

#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "control/control.h"
#include "db/db.h"

/* The most files one change may list. */
#define CHG_MAX_FILES 10000
/*
 * What a webhook's payload costs parsed, estimated before it is parsed from
 * its JSON values and objects: jansson takes about 40 bytes a value and 850
 * an object (measured), so 25 MB of "{}," would take a gigabyte.  One
 * payload may cost at most CHG_HOOK_PARSE_MAX (a push of 20,000 commits, a
 * million values and 60,000 objects, costs about 90 MB), and so may the
 * webhooks in progress together: what a job stores and a pull-request flow
 * keeps comes from its payload and is counted at its payload's cost.
 */
#define CHG_HOOK_PARSE_MAX ((size_t)128 << 20)
#define CHG_HOOK_VALUE_COST 40
#define CHG_HOOK_OBJECT_COST 850
/* changes_github's answer for a payload that fits CHG_HOOK_PARSE_MAX but not what is left. */
#define CHG_BUSY (-2)

/*
 * Writes `change` (its fields as above; missing ones as Buildbot defaults
 * them) with its files, properties (source "Change") and, when `src` is a
 * version-control name such as "git", the user object of its author.  Adds
 * "changeid", "sourcestampid" and "parent_changeids" to `change`.  Returns
 * the change's id, or -1 with *cause (a field too long, a database error);
 * nothing is stored then.
 */
long long changes_add(struct db *db, json_t *change, const char *src, char **cause);
/* Whether changes_add would take `change` (its fields' types and lengths): 0 or -1 with *cause. */
int changes_check(const json_t *change, char **cause);

/* A webhook request, as it reached the web server. */
struct chg_request {
    const char *event;        /* X-GitHub-Event */
    const char *signature;    /* X-Hub-Signature ("sha1=...") */
    const char *signature256; /* X-Hub-Signature-256 ("sha256=...") */
    const char *content_type;
    const char *body;
    size_t len;
};

/*
 * GitHub's webhook: checks the signature (constant time) against
 * `gh->secret` and turns the event into changes, as Buildbot's
 * GitHubEventHandler does.  *changes gets a list (owned; empty for a ping or
 * an event that makes no change).  *event gets the payload when the caller
 * may want more of it (pull requests, comments), or NULL; *cost what it
 * costs parsed (see CHG_HOOK_PARSE_MAX).  Returns 0; -1 with *cause for a
 * request Buildbot answers 400 (a payload costing more than
 * CHG_HOOK_PARSE_MAX among them); CHG_BUSY with *cause for one that would
 * cost more than `budget`, unparsed.
 */
int changes_github(const struct cfg_github *gh, const struct chg_request *req, size_t budget,
                   json_t **changes, json_t **payload, size_t *cost, char **cause);

struct chg;

/* Told of each change once it is stored (the change as changes_add left it). */
typedef void (*chg_listener)(const json_t *change, void *arg);

/* The change sources of `cfg` on `loop`, storing into `db`. */
struct chg *changes_new(uv_loop_t *loop, struct db *db, const struct cfg *cfg,
                        chg_listener listener, void *arg);
/* The configuration to use from now on. */
void changes_reconfig(struct chg *c, const struct cfg *cfg);
/*
 * A change a sendchange client sent to the bbm.changes.pb source `cs` (a PB
 * dict, as Buildbot's ChangePerspective takes it): stored and handed to the
 * listener.  0, or -1 with *cause for the client.
 */
struct pb_value;
int changes_pb(struct chg *c, const struct cfg_change_source *cs, const struct pb_value *dict,
               char **cause);
/*
 * Answers a webhook (a CTL_WEBHOOK action, its target's name the dialect).
 * A push's changes are stored CHG_HOOK_SLICE per loop turn, webhook after
 * webhook in the order they came, and the webhook is answered once all of
 * its changes are in.  At most CHG_HOOK_JOBS webhooks are in progress
 * (being stored, or waiting for GitHub's API); another is answered 503.
 */
#define CHG_HOOK_SLICE 200
#define CHG_HOOK_JOBS 8
void changes_hook(struct chg *c, struct ctl_action *act);
void changes_free(struct chg *c);

#endif
