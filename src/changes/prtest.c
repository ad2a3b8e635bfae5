/*
 * Pull-request testing on request, as buildbot.python.org runs it: with
 * `pull_request_testing` in the GitHub dialect, a label from `labels` added
 * to a pull request, or a comment "COMMAND REGEX" (COMMAND is "!buildbot"
 * unless configured), makes a change on refs/pull/N/merge that the
 * pull_request schedulers build.  On the way, GitHub's API is asked (with
 * the dialect's token, at its github_api_endpoint), for a comment only,
 * whether the sender may write to the repository (write or admin; otherwise
 * a comment says so and nothing is built: adding a label is already
 * restricted by GitHub to triagers and up, so buildbot.python.org asks
 * nothing then), for the head commit's message (a skip pattern stops it),
 * and for the pull request itself (a comment carries little of it); a
 * comment whose regex matches no pull-request builder is answered and
 * ignored; otherwise a comment names what was scheduled and the label is
 * removed.  The change's properties say what to build: builderfilter (the
 * label's or the comment's regex) and event ("pull_request" builds only
 * stable builders, "issue_comment" may pick unstable ones).
 *
 * Without pull_request_testing, a pull_request event (opened, reopened,
 * synchronize) goes through GitHub's API as in Buildbot's handler: the head
 * commit's message (a skip pattern drops the change), then the files.
 *
 * The webhook's answer waits for the flow, as Buildbot's does for its API
 * calls; the calls are asynchronous on the engine loop.
 */
#include "changes/internal.h"

#include <lua.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static const char default_label_comment[] =
    ":robot: New build scheduled with the buildbot fleet by @{user} for commit {commit} "
    ":robot:\n\nResults will be shown at:\n\n{buildbot_url}#/grid?branch=refs%2Fpull%2F"
    "{pr_number}%2Fmerge\n\nIf you want to schedule another build, you need to add the "
    "<kbd>{label}</kbd> label again.\n";
static const char default_command_comment[] =
    ":robot: New build scheduled with the buildbot fleet by @{user} for commit {commit} "
    ":robot:\n\nResults will be shown at:\n\n{buildbot_url}#/grid?branch=refs%2Fpull%2F"
    "{pr_number}%2Fmerge\n\nThe command will test the builders whose names match following "
    "regular expression: `{filter}`\n\nThe builders matched are:\n{builders}\n";
static const char default_no_permission[] = "You don't have write permissions to trigger a build";
static const char default_no_match[] =
    "The regex '{filter}' did not match any buildbot builder. Is the requested builder in the "
    "list of stable builders?";

struct prflow;
typedef void (*pr_step)(struct prflow *f, const struct http_response *r);

struct prflow {
    struct chg *c;
    struct ctl_action *act;
    json_t *payload, *opts;
    size_t cost; /* of its payload (CHG_HOOK_PARSE_MAX), part of c->held */
    const char *event;
    bool comment;
    char *label, *filter, *user, *repo;
    json_t *pr; /* the pull request */
    json_t *builders;
    json_t *change; /* a plain pull_request event's change, waiting for its files */
    pr_step next;
    struct prflow *more;
};

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void flow_end(struct prflow *f, int status, const char *text)
{
    for (struct prflow **p = &f->c->flows; *p != NULL; p = &(*p)->more)
        if (*p == f) {
            *p = f->more;
            f->c->n_flows--;
            break;
        }
    f->c->held -= f->cost;
    ctl_reply_text(f->act, status, text);
    json_decref(f->payload);
    json_decref(f->opts);
    json_decref(f->pr);
    json_decref(f->builders);
    json_decref(f->change);
    free(f->label);
    free(f->filter);
    free(f->user);
    free(f->repo);
    free(f);
}

static void nothing(struct prflow *f, const char *why)
{
    log_info("github hook: pull request testing: %s", why);
    flow_end(f, 202, "no change found");
}

/* {name} replaced by values[name] (Python's str.format with names only). */
static char *format(const char *tmpl, const json_t *values)
{
    struct buf b;
    buf_init(&b, 256 * 1024);
    for (const char *p = tmpl; *p != '\0'; p++) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (end != NULL && end - p < 64) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
            const json_t *v = json_object_get(values, name);
            if (json_is_string(v))
                buf_addstr(&b, json_string_value(v));
            else if (json_is_integer(v))
                buf_printf(&b, "%lld", (long long)json_integer_value(v));
            else
                buf_add(&b, p, (size_t)(end - p + 1));
            p = end;
        } else {
            buf_addc(&b, *p);
        }
    }
    return buf_take(&b);
}

static void http_done(void *arg, const struct http_response *r)
{
    struct prflow *f = arg;
    if (r->status == 0)
        log_warn("github API: %s", r->error ? r->error : "no answer");
    f->next(f, r);
}

/* Calls GitHub's API: `url` is a path or a GitHub URL whose path is kept. */
static void api(struct prflow *f, const char *method, const char *url, const json_t *body,
                pr_step next)
{
    const struct cfg_github *gh = f->c->cfg->github;
    if (gh == NULL || url == NULL) { /* a reconfig took the dialect away, or no URL */
        f->next = next;
        struct http_response r = {.error = gh == NULL ? "no GitHub dialect" : "no URL"};
        f->next(f, &r);
        return;
    }
    const char *path = url;
    if (util_startswith(url, "http://") || util_startswith(url, "https://")) {
        path = strchr(strstr(url, "://") + 3, '/');
        path = path != NULL ? path : "/";
    }
    size_t n = strlen(gh->api_url);
    while (n > 0 && gh->api_url[n - 1] == '/')
        n--;
    char *full = xasprintf("%.*s%s", (int)n, gh->api_url, path);
    char *auth = gh->token != NULL ? xasprintf("Authorization: token %s", gh->token) : NULL;
    const char *headers[] = {"User-Agent: Buildbot", "Accept: application/vnd.github+json",
                             "Content-Type: application/json", auth, NULL};
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL, *cause = NULL;
    f->next = next;
    if (http_request(f->c->http, method, full, headers, text, http_done, f, &cause) < 0) {
        struct http_response r = {.error = cause};
        f->next(f, &r);
        free(cause);
    }
    free(text);
    free(auth);
    free(full);
}

static json_t *answer_json(const struct http_response *r)
{
    return r->status >= 200 && r->status < 300 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

static void post_comment(struct prflow *f, const char *url, const char *text, pr_step next)
{
    json_t *body = json_pack("{ss}", "body", text);
    api(f, "POST", url, body, next);
    json_decref(body);
}

static json_t *template_values(struct prflow *f)
{
    const char *url = f->c->cfg->buildbot_url, *sha = str(json_object_get(f->pr, "head"), "sha");
    json_t *v = json_object();
    json_object_set_new(v, "user", json_string(f->user));
    json_object_set_new(v, "commit", json_string(sha ? sha : ""));
    json_object_set_new(v, "buildbot_url", json_string(url ? url : ""));
    json_object_set(v, "pr_number", json_object_get(f->pr, "number"));
    json_object_set_new(v, "label", json_string(f->label ? f->label : ""));
    json_object_set_new(v, "filter", json_string(f->filter ? f->filter : ""));
    json_object_set_new(v, "builders", json_string(""));
    return v;
}

static const char *template(struct prflow *f, const char *key, const char *def)
{
    const char *t = str(json_object_get(f->opts, "comments"), key);
    return t != NULL ? t : def;
}

/* The change Buildbot's GitHub handler would make of the pull request, marked for testing. */
static void make_change(struct prflow *f)
{
    const struct cfg_github *gh = f->c->cfg->github;
    if (gh == NULL) {
        nothing(f, "the GitHub dialect is no longer configured");
        return;
    }
    json_t *pr = f->pr;
    long long number = (long long)json_integer_value(json_object_get(pr, "number"));
    json_t *props = json_object();
    changes_github_properties(gh, pr, props);
    json_object_set_new(props, "should_test_pr", json_true());
    json_object_set_new(props, "event", json_string(f->event));
    json_object_set(props, "basename", json_object_get(json_object_get(pr, "base"), "ref"));
    json_object_set_new(props, "builderfilter", json_string(f->filter));
    json_t *change = changes_github_pr_change(gh, f->payload, pr, props);
    json_t *list = json_pack("[o]", change);
    char *cause = NULL;
    if (changes_check(change, &cause) < 0) {
        log_warn("github hook: pull request #%lld: %s", number, cause);
        flow_end(f, 400, cause);
        free(cause);
    } else if (chg_store(f->c, list, "git") < 0) {
        flow_end(f, 500, "Error processing changes.");
    } else {
        flow_end(f, 202, "1 change found");
    }
    json_decref(list);
}

/* ------------------------------------------------------------ the label */

static void label_removed(struct prflow *f, const struct http_response *r)
{
    if (r->status < 200 || r->status >= 300)
        log_warn("github hook: removing the label '%s' answered %ld", f->label, r->status);
    make_change(f);
}

static void label_commented(struct prflow *f, const struct http_response *r)
{
    (void)r;
    char *label = xmalloc(3 * strlen(f->label) + 1), *q = label;
    for (const unsigned char *p = (const unsigned char *)f->label; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p) != NULL)
            *q++ = (char)*p;
        else
            q += sprintf(q, "%%%02X", *p);
    }
    *q = '\0';
    char *url =
        xasprintf("%s/labels/%s", str(f->pr, "issue_url") ? str(f->pr, "issue_url") : "", label);
    api(f, "DELETE", url, NULL, label_removed);
    free(url);
    free(label);
}

static void scheduled_comment(struct prflow *f, pr_step next)
{
    json_t *values = template_values(f);
    if (f->comment) {
        struct buf b;
        buf_init(&b, 1024 * 1024);
        size_t i;
        json_t *name;
        json_array_foreach(f->builders, i, name)
        {
            buf_printf(&b, "%s- `%s`", i > 0 ? "\n" : "", json_string_value(name));
        }
        json_object_set_new(values, "builders", json_string(b.data ? b.data : ""));
        buf_free(&b);
    }
    char *text = format(f->comment ? template(f, "command", default_command_comment)
                                   : template(f, "label", default_label_comment),
                        values);
    const char *url = f->comment ? str(json_object_get(f->payload, "issue"), "comments_url")
                                 : str(f->pr, "comments_url");
    post_comment(f, url ? url : "", text, next);
    free(text);
    json_decref(values);
}

/* ------------------------------------------------------------ shared steps */

static void commented_then_change(struct prflow *f, const struct http_response *r)
{
    (void)r;
    make_change(f);
}

static void ignored_after_comment(struct prflow *f, const struct http_response *r)
{
    (void)r;
    nothing(f, "answered with a comment");
}

/* The builders of the pull_request schedulers whose name the filter finds (case-insensitive). */
static json_t *matching_builders(struct prflow *f)
{
    json_t *out = json_array();
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)f->filter, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
                                   &err, &off, NULL);
    if (re == NULL)
        return out;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    const struct cfg *cfg = f->c->cfg;
    for (size_t i = 0; i < cfg->n_schedulers; i++) {
        if (strcmp(cfg->schedulers[i].kind, "pull_request") != 0)
            continue;
        for (size_t k = 0; k < cfg->schedulers[i].n_builder_names; k++) {
            const char *name = cfg->schedulers[i].builder_names[k];
            bool dup = false;
            size_t j;
            json_t *x;
            json_array_foreach(out, j, x) dup = dup || strcmp(json_string_value(x), name) == 0;
            if (!dup && pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL) >= 0)
                json_array_append_new(out, json_string(name));
        }
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return out;
}

/* ------------------------------------------------------------ a plain pull request */

/* Buildbot's _get_pr_files: each file's name, and the name it had before a move. */
static void got_files(struct prflow *f, const struct http_response *r)
{
    json_t *list = answer_json(r), *files = json_array();
    if (!json_is_array(list))
        log_warn("github hook: failed fetching PR files: response code %ld", r->status);
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        static const char *const keys[] = {"filename", "previous_filename"};
        for (size_t k = 0; k < 2 && json_array_size(files) < CHG_MAX_FILES; k++)
            if (json_is_string(json_object_get(x, keys[k])))
                json_array_append(files, json_object_get(x, keys[k]));
    }
    json_decref(list);
    json_object_set_new(f->change, "files", files);
    json_t *one = json_pack("[O]", f->change);
    char *cause = NULL;
    if (changes_check(f->change, &cause) < 0) {
        flow_end(f, 400, cause);
        free(cause);
    } else if (chg_store(f->c, one, "git") < 0) {
        flow_end(f, 500, "Error processing changes.");
    } else {
        flow_end(f, 202, "1 change found");
    }
    json_decref(one);
}

static void got_message(struct prflow *f, const struct http_response *r)
{
    json_t *commit = answer_json(r);
    const char *msg = str(json_object_get(commit, "commit"), "message");
    bool skip = changes_github_skip(f->c->cfg->github, msg ? msg : "No message field");
    json_decref(commit);
    if (skip) {
        nothing(f, "the head commit message has a skip pattern");
        return;
    }
    if (f->change != NULL) {
        char *path =
            xasprintf("/repos/%s/pulls/%lld/files", f->repo,
                      (long long)json_integer_value(json_object_get(f->payload, "number")));
        api(f, "GET", path, NULL, got_files);
        free(path);
        return;
    }
    if (!f->comment) {
        scheduled_comment(f, label_commented);
        return;
    }
    f->builders = matching_builders(f);
    if (json_array_size(f->builders) == 0) {
        json_t *values = template_values(f);
        char *text = format(template(f, "no_match", default_no_match), values);
        post_comment(f, str(json_object_get(f->payload, "issue"), "comments_url"), text,
                     ignored_after_comment);
        free(text);
        json_decref(values);
        return;
    }
    scheduled_comment(f, commented_then_change);
}

static void ask_message(struct prflow *f)
{
    const char *sha = str(json_object_get(f->pr, "head"), "sha");
    char *path = xasprintf("/repos/%s/commits/%s", f->repo, sha ? sha : "");
    api(f, "GET", path, NULL, got_message);
    free(path);
}

static void got_pull(struct prflow *f, const struct http_response *r)
{
    f->pr = answer_json(r);
    if (!json_is_object(f->pr) || !json_is_integer(json_object_get(f->pr, "number"))) {
        nothing(f, "the pull request could not be read");
        return;
    }
    ask_message(f);
}

static void got_permission(struct prflow *f, const struct http_response *r)
{
    json_t *p = answer_json(r);
    const char *level = str(p, "permission");
    bool ok = util_streq(level, "write") || util_streq(level, "admin");
    log_info("github hook: user %s has permission %s on %s", UTIL_ESC(f->user),
             UTIL_ESC(level ? level : "none"), UTIL_ESC(f->repo));
    json_decref(p);
    if (!ok) {
        const char *url = str(json_object_get(f->payload, "issue"), "comments_url");
        post_comment(f, url ? url : "", template(f, "no_permission", default_no_permission),
                     ignored_after_comment);
        return;
    }
    api(f, "GET", str(json_object_get(json_object_get(f->payload, "issue"), "pull_request"), "url"),
        NULL, got_pull);
}

/* ------------------------------------------------------------ start */

/* The label's regex, or NULL when the label is not one of `labels`. */
static const char *label_filter(const json_t *opts, const char *label)
{
    return label != NULL ? str(json_object_get(opts, "labels"), label) : NULL;
}

/* A "COMMAND REGEX" comment's regex (malloc'd), or NULL. */
static char *command_filter(const json_t *opts, const char *body)
{
    const char *cmd = str(opts, "command") ? str(opts, "command") : "!buildbot";
    while (body != NULL && strchr(" \t\r\n", *body) != NULL && *body != '\0')
        body++;
    size_t n = strlen(cmd);
    if (body == NULL || strncmp(body, cmd, n) != 0 || body[n] != ' ')
        return NULL;
    const char *s = body + n + 1;
    size_t len = strcspn(s, "\r\n");
    while (len > 0 && strchr(" \t", s[len - 1]) != NULL)
        len--;
    while (len > 0 && strchr(" \t", *s) != NULL)
        s++, len--;
    return len > 0 ? xstrndup(s, len) : NULL;
}

static struct prflow *flow_new(struct chg *c, struct ctl_action *act, json_t *payload)
{
    struct prflow *f = xcalloc(1, sizeof *f);
    f->c = c;
    f->act = act;
    f->payload = json_incref(payload);
    f->cost = c->admitted;
    c->held += f->cost;
    c->admitted = 0;
    f->more = c->flows;
    c->flows = f;
    c->n_flows++;
    const char *user = str(json_object_get(payload, "sender"), "login"),
               *repo = str(json_object_get(payload, "repository"), "full_name");
    f->user = xstrdup(user ? user : "");
    f->repo = xstrdup(repo ? repo : "");
    return f;
}

/* Buildbot's handle_pull_request: the head commit's message (skip patterns), then the files. */
static void plain_pull_request(struct chg *c, struct ctl_action *act, json_t *payload,
                               json_t *change)
{
    struct prflow *f = flow_new(c, act, payload);
    f->event = "pull_request";
    f->change = json_incref(change);
    f->pr = json_incref(json_object_get(payload, "pull_request"));
    ask_message(f);
}

bool changes_pr_testing(struct chg *c, struct ctl_action *act, const char *event, json_t *payload,
                        json_t *changes)
{
    const struct cfg_github *gh = c->cfg->github;
    lua_State *L = c->cfg->lua;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, gh->ref);
    json_t *opts =
        lua_getfield(L, -1, "pull_request_testing") == LUA_TTABLE ? cfg_lua_to_json(L, -1) : NULL;
    lua_settop(L, top);
    bool comment = util_streq(event, "issue_comment");
    if (opts == NULL && util_streq(event, "pull_request") && json_array_size(changes) == 1) {
        plain_pull_request(c, act, payload, json_array_get(changes, 0));
        return true;
    }
    if (opts == NULL || (!comment && !util_streq(event, "pull_request"))) {
        json_decref(opts);
        return false;
    }
    struct prflow *f = flow_new(c, act, payload);
    f->opts = opts;
    f->event = comment ? "issue_comment" : "pull_request";
    f->comment = comment;
    if (comment) {
        const json_t *issue = json_object_get(payload, "issue");
        f->filter = command_filter(opts, str(json_object_get(payload, "comment"), "body"));
        if (!util_streq(str(payload, "action"), "created")) {
            nothing(f, "a comment not just created");
            return true;
        }
        if (json_object_get(issue, "pull_request") == NULL) {
            nothing(f, "a comment on an issue, not a pull request");
            return true;
        }
        if (f->filter == NULL) {
            nothing(f, "a comment that is not a command");
            return true;
        }
    } else {
        f->pr = json_incref(json_object_get(payload, "pull_request"));
        const char *label = str(json_object_get(payload, "label"), "name");
        const char *filter = label_filter(opts, label);
        if (!util_streq(str(payload, "action"), "labeled") || filter == NULL) {
            nothing(f, "not a testing label");
            return true;
        }
        f->label = xstrdup(label);
        f->filter = xstrdup(filter);
        ask_message(f);
        return true;
    }
    char *path = xasprintf("/repos/%s/collaborators/%s/permission", f->repo, f->user);
    api(f, "GET", path, NULL, got_permission);
    free(path);
    return true;
}

void changes_pr_abort(struct chg *c)
{
    while (c->flows != NULL)
        flow_end(c->flows, 503, "the master is shutting down");
}
