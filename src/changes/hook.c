/*
 * The change sources of a configuration, on the engine loop (the git
 * pollers live in poller.c), and the answer to POST /change_hook/DIALECT (GitHub's so far), which
 * stores the changes the request makes and hands each to the listener, and answers as Buildbot's
 * ChangeHookResource does: 202 with "N change found" or "no change found",
 * 400 with the reason for a request it refuses (nothing is stored then).
 */
#include "changes/internal.h"

#include <stdlib.h>
#include <string.h>

#include "http/http.h"

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
    poller_reconfig(c);
    return c;
}

void changes_reconfig(struct chg *c, const struct cfg *cfg)
{
    c->cfg = cfg;
    poller_reconfig(c);
}

void changes_free(struct chg *c)
{
    if (c == NULL)
        return;
    poller_stop_all(c);
    changes_pr_abort(c);
    http_free(c->http);
    free(c);
}

int chg_store(struct chg *c, json_t *changes, const char *src)
{
    size_t i;
    json_t *change;
    json_array_foreach(changes, i, change)
    {
        char *cause = NULL;
        long long id = changes_add(c->db, change, src, &cause);
        if (id < 0) {
            log_error("adding a change: %s", UTIL_ESC(cause));
            free(cause);
            return -1;
        }
        const char *rev = json_string_value(json_object_get(change, "revision"));
        log_info("added change %lld with revision %s to database", id,
                 UTIL_ESC(rev ? rev : "None"));
        if (c->listener != NULL)
            c->listener(change, c->arg);
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

static void github(struct chg *c, struct www_action *act)
{
    size_t len = 0;
    const char *body = www_action_body(act, &len);
    struct chg_request req = {www_action_header(act, "X-GitHub-Event"),
                              www_action_header(act, "X-Hub-Signature"),
                              www_action_header(act, "X-Hub-Signature-256"),
                              www_action_header(act, "Content-Type"),
                              body,
                              len};
    json_t *changes = NULL, *payload = NULL;
    char *cause = NULL;
    if (changes_github(c->cfg->github, &req, &changes, &payload, &cause) < 0 ||
        check_all(changes, &cause) < 0) {
        log_warn("github hook refused a request: %s", UTIL_ESC(cause));
        www_action_reply_text(act, 400, cause);
        free(cause);
        json_decref(changes);
        json_decref(payload);
        return;
    }
    if (changes_pr_testing(c, act, req.event, payload, changes)) { /* the flow answers */
        json_decref(changes);
        json_decref(payload);
        return;
    }
    int n = chg_store(c, changes, "git");
    if (n < 0) {
        www_action_reply_text(act, 500, "Error processing changes.");
    } else if (n == 0) {
        www_action_reply_text(act, 202, "no change found");
    } else {
        char text[64];
        snprintf(text, sizeof text, "%d change found", n);
        www_action_reply_text(act, 202, text);
    }
    json_decref(changes);
    json_decref(payload);
}

void changes_hook(struct chg *c, struct www_action *act)
{
    const char *path = www_action_path(act);
    const char *dialect = util_startswith(path, "change_hook/") ? path + 12 : "";
    if (*dialect == '\0')
        dialect = "base";
    if (strcmp(dialect, "github") == 0 && c->cfg->github != NULL) {
        github(c, act);
        return;
    }
    char *msg =
        xasprintf("The dialect specified, '%.64s', wasn't whitelisted in change_hook", dialect);
    www_action_reply_text(act, 400, msg);
    free(msg);
}
