/*
 * The change sources of a configuration, on the engine loop (the git
 * pollers live in poller.c), and the answer to POST /change_hook/DIALECT
 * (GitHub's so far), which stores the changes the request makes and hands
 * each to the listener, and answers as Buildbot's ChangeHookResource does:
 * 202 with "N change found" or "no change found", 400 with the reason for a
 * request it refuses (nothing is stored then).
 *
 * A push of thousands of commits must not hold the engine loop: its changes
 * are stored CHG_HOOK_SLICE per loop turn (an idle handle runs the next
 * slice once the loop has served whatever else came), webhooks one after the
 * other in their order, and the webhook is answered when the last slice is
 * in, as Buildbot answers once every addChange has finished.
 */
#include "changes/internal.h"

#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/* A webhook's changes, stored a slice at a time. */
struct hook_job {
    struct ctl_action *act;
    json_t *changes;
    size_t cost; /* its payload's (CHG_HOOK_PARSE_MAX) */
    size_t next; /* the first change not stored yet */
    struct hook_job *more;
};

static void free_slicer_cb(uv_handle_t *h)
{
    free(h);
}

struct chg *changes_new(uv_loop_t *loop, struct db *db, const struct cfg *cfg,
                        chg_listener listener, void *arg)
{
    struct chg *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->db = db;
    c->cfg = cfg;
    c->listener = listener;
    c->arg = arg;
    c->http = http_new(loop);
    c->slicer = xcalloc(1, sizeof *c->slicer);
    uv_idle_init(loop, c->slicer);
    c->slicer->data = c;
    poller_reconfig(c);
    return c;
}

void changes_reconfig(struct chg *c, const struct cfg *cfg)
{
    c->cfg = cfg;
    poller_reconfig(c);
}

int chg_store_one(struct chg *c, json_t *change, const char *src)
{
    char *cause = NULL;
    long long id = changes_add(c->db, change, src, &cause);
    if (id < 0) {
        log_error("adding a change: %s", UTIL_ESC(cause));
        free(cause);
        return -1;
    }
    const char *rev = json_string_value(json_object_get(change, "revision"));
    log_info("added change %lld with revision %s to database", id, UTIL_ESC(rev ? rev : "None"));
    if (c->listener != NULL)
        c->listener(change, c->arg);
    return 0;
}

int chg_store(struct chg *c, json_t *changes, const char *src)
{
    size_t i;
    json_t *change;
    json_array_foreach(changes, i, change)
    {
        if (chg_store_one(c, change, src) < 0)
            return -1;
    }
    return (int)i;
}

/* Whether every change can be stored: none is, unless all can. */
static int check_all(const json_t *changes, char **cause)
{
    size_t i;
    const json_t *change;
    json_array_foreach(changes, i, change)
    {
        if (changes_check(change, cause) < 0)
            return -1;
    }
    return 0;
}

/* Answers the oldest job and forgets it. */
static void job_end(struct chg *c, int status, const char *text)
{
    struct hook_job *j = c->jobs;
    c->jobs = j->more;
    c->n_jobs--;
    c->held -= j->cost;
    ctl_reply_text(j->act, status, text);
    json_decref(j->changes);
    free(j);
}

/* One slice of the oldest job; the job is answered once its last change is in. */
static void run_slice(struct chg *c)
{
    struct hook_job *j = c->jobs;
    size_t n = json_array_size(j->changes);
    size_t end = j->next + CHG_HOOK_SLICE < n ? j->next + CHG_HOOK_SLICE : n;
    for (; j->next < end; j->next++) {
        if (chg_store_one(c, json_array_get(j->changes, j->next), "git") < 0) {
            job_end(c, 500, "Error processing changes.");
            return;
        }
    }
    if (j->next < n)
        return;
    char text[64];
    snprintf(text, sizeof text, "%zu change found", n);
    job_end(c, 202, n > 0 ? text : "no change found");
}

static void slicer_cb(uv_idle_t *h)
{
    struct chg *c = h->data;
    if (c->jobs != NULL)
        run_slice(c);
    if (c->jobs == NULL)
        uv_idle_stop(h);
}

/* Queues a webhook's changes (taken); the first slice runs now when nothing is ahead. */
static void add_job(struct chg *c, struct ctl_action *act, json_t *changes)
{
    struct hook_job *j = xcalloc(1, sizeof *j), **p = &c->jobs;
    j->act = act;
    j->changes = changes;
    j->cost = c->admitted;
    c->held += j->cost;
    c->admitted = 0;
    while (*p != NULL)
        p = &(*p)->more;
    *p = j;
    c->n_jobs++;
    if (c->jobs == j)
        run_slice(c);
    if (c->jobs != NULL)
        uv_idle_start(c->slicer, slicer_cb);
}

static void github(struct chg *c, struct ctl_action *act)
{
    size_t len = 0;
    const char *body = ctl_action_body(act, &len);
    struct chg_request req = {ctl_action_header(act, "X-GitHub-Event"),
                              ctl_action_header(act, "X-Hub-Signature"),
                              ctl_action_header(act, "X-Hub-Signature-256"),
                              ctl_action_header(act, "Content-Type"),
                              body,
                              len};
    json_t *changes = NULL, *payload = NULL;
    char *cause = NULL;
    int rc = changes_github(c->cfg->github, &req, CHG_HOOK_PARSE_MAX - c->held, &changes, &payload,
                            &c->admitted, &cause);
    if (rc < 0 || check_all(changes, &cause) < 0) {
        log_warn("github hook refused a request: %s", UTIL_ESC(cause));
        ctl_reply_text(act, rc == CHG_BUSY ? 503 : 400, cause);
        c->admitted = 0;
        free(cause);
        json_decref(changes);
        json_decref(payload);
        return;
    }
    if (changes_pr_testing(c, act, req.event, payload, changes)) /* the flow answers */
        json_decref(changes);
    else
        add_job(c, act, changes);
    c->admitted = 0; /* a flow that answered at once has given its cost back already */
    json_decref(payload);
}

void changes_hook(struct chg *c, struct ctl_action *act)
{
    const char *dialect = ctl_action_target(act)->name;
    if (dialect == NULL || *dialect == '\0')
        dialect = "base";
    if (strcmp(dialect, "github") != 0 || c->cfg->github == NULL) {
        /* a reconfig dropped it since the web took the request */
        char *msg =
            xasprintf("The dialect specified, '%.64s', wasn't whitelisted in change_hook", dialect);
        ctl_reply_text(act, 400, msg);
        free(msg);
    } else if (c->n_jobs + c->n_flows >= CHG_HOOK_JOBS) {
        log_warn("github hook: %zu webhooks are in progress already; refusing another",
                 c->n_jobs + c->n_flows);
        ctl_reply_text(act, 503, "too many webhooks in progress; try again later");
    } else {
        github(c, act);
    }
}

void changes_free(struct chg *c)
{
    if (c == NULL)
        return;
    poller_stop_all(c);
    changes_pr_abort(c);
    while (c->jobs != NULL)
        job_end(c, 503, "the master is shutting down");
    uv_close((uv_handle_t *)c->slicer, free_slicer_cb);
    http_free(c->http);
    free(c);
}
