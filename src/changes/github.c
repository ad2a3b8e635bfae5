/*
 * GitHub's webhook, as Buildbot's GitHubEventHandler reads it.  The body is
 * checked against the secret first (X-Hub-Signature-256, HMAC-SHA256, or
 * Buildbot's X-Hub-Signature, HMAC-SHA1, compared in constant time); then
 * the event becomes changes: `push` one per commit (the head commit alone
 * for a new branch) unless the head commit message matches a skip pattern;
 * `pull_request` (opened, reopened, synchronize) one on refs/pull/N/merge;
 * `ping` none.  Properties named by github_property_whitelist
 * ("github.pusher.name"...) are taken from the payload.
 */
#include "changes/internal.h"

#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

/* Whether `sig` ("sha256=HEX") is the HMAC of the body with the secret. */
static int check_signature(const char *secret, const char *sig, const char *want, const EVP_MD *md,
                           const char *body, size_t len, char **cause)
{
    size_t n = strlen(want);
    if (strncmp(sig, want, n) != 0 || sig[n] != '=') {
        const char *eq = strchr(sig, '=');
        if (eq == NULL)
            return util_cause(cause, "Wrong signature format: %.80s", sig);
        return util_cause(cause, "Unknown hash type: %.*s", (int)(eq - sig < 20 ? eq - sig : 20),
                          sig);
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(md, secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &maclen);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    const char *given = sig + n + 1;
    if (strlen(given) != 2 * maclen || CRYPTO_memcmp(hex, given, 2 * maclen) != 0)
        return util_cause(cause, "Hash mismatch");
    return 0;
}

static int verify(const struct cfg_github *gh, const struct chg_request *req, char **cause)
{
    const char *sig = req->signature256 != NULL ? req->signature256 : req->signature;
    if (sig == NULL && gh->strict)
        return util_cause(cause, "Request has no required signature");
    if (gh->secret == NULL || sig == NULL)
        return 0;
    if (req->signature256 != NULL)
        return check_signature(gh->secret, sig, "sha256", EVP_sha256(), req->body, req->len, cause);
    return check_signature(gh->secret, sig, "sha1", EVP_sha1(), req->body, req->len, cause);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The `payload` field of a form body, decoded (malloc'd), or NULL. */
static char *form_payload(const char *body, size_t len, size_t *out_len)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) >= 8 && memcmp(p, "payload=", 8) == 0) {
            char *out = xmalloc((size_t)(stop - p));
            size_t n = 0;
            for (const char *q = p + 8; q < stop; q++) {
                if (*q == '+') {
                    out[n++] = ' ';
                } else if (*q == '%' && q + 2 < stop && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
                    out[n++] = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    q += 2;
                } else {
                    out[n++] = *q;
                }
            }
            *out_len = n;
            return out;
        }
        p = stop + 1;
    }
    return NULL;
}

/* Refuses a payload that would cost more than CHG_HOOK_PARSE_MAX (-1) or `budget`
   (CHG_BUSY) parsed; else 0 with its cost in *cost. */
static int check_size(const char *text, size_t len, size_t budget, size_t *cost, char **cause)
{
    size_t values, objects;
    util_json_count(text, len, &values, &objects);
    *cost = values * CHG_HOOK_VALUE_COST + objects * CHG_HOOK_OBJECT_COST;
    if (*cost > CHG_HOOK_PARSE_MAX)
        return util_cause(cause,
                          "the payload is too big: %zu JSON values and %zu objects would take "
                          "%zu MiB parsed (at most %zu)",
                          values, objects, *cost >> 20, CHG_HOOK_PARSE_MAX >> 20);
    if (*cost > budget) {
        util_cause(cause, "webhooks in progress hold too much; try again later");
        return CHG_BUSY;
    }
    return 0;
}

/* The payload as JSON, or NULL with *cause and *rc -1 or CHG_BUSY (check_size). */
static json_t *parse_body(const struct chg_request *req, size_t budget, size_t *cost, int *rc,
                          char **cause)
{
    const char *type = req->content_type != NULL ? req->content_type : "";
    json_error_t err;
    json_t *payload = NULL;
    if (strcmp(type, "application/json") == 0) {
        if ((*rc = check_size(req->body, req->len, budget, cost, cause)) < 0)
            return NULL;
        payload = json_loadb(req->body, req->len, 0, &err);
    } else if (strcmp(type, "application/x-www-form-urlencoded") == 0) {
        size_t n = 0;
        char *text = form_payload(req->body, req->len, &n);
        if (text == NULL) {
            util_cause(cause, "the form has no 'payload' field");
            return NULL;
        }
        if ((*rc = check_size(text, n, budget, cost, cause)) < 0) {
            free(text);
            return NULL;
        }
        payload = json_loadb(text, n, 0, &err);
        free(text);
    } else {
        util_cause(cause, "Unknown content type: %.100s", type);
        return NULL;
    }
    if (payload == NULL)
        util_cause(cause, "the payload is not JSON: %s (at byte %d)", err.text, err.position);
    else if (!json_is_object(payload)) {
        util_cause(cause, "the payload is not a JSON object");
        json_decref(payload);
        payload = NULL;
    }
    return payload;
}

/* A string at a path of keys ("repository", "html_url", NULL), or NULL. */
static const char *str_at(const json_t *o, ...)
{
    va_list ap;
    va_start(ap, o);
    for (const char *k = va_arg(ap, const char *); k != NULL && o != NULL;
         k = va_arg(ap, const char *))
        o = json_object_get(o, k);
    va_end(ap);
    return json_string_value(o);
}

/* ISO 8601 (GitHub's "2026-11-30T01:02:03+01:00", "...Z", fractions) as epoch seconds. */
static long long parse_time(const char *s)
{
    struct tm tm = {0};
    int consumed = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return (long long)util_now();
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long long t = (long long)timegm(&tm);
    const char *z = s + consumed;
    if (*z == '.')
        while (*++z >= '0' && *z <= '9')
            ;
    int hh = 0, mm = 0;
    if ((*z == '+' || *z == '-') && sscanf(z + 1, "%2d:%2d", &hh, &mm) >= 1)
        t -= (*z == '+' ? 1 : -1) * (hh * 3600LL + mm * 60LL);
    return t;
}

/* Buildbot's extractProperties: whitelisted leaves of `info` as "github.a.b". */
static void flatten(const struct cfg_github *gh, json_t *props, const char *base,
                    const json_t *info, int depth)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)info, k, v)
    {
        char *name = xasprintf("%s.%s", base, k);
        if (json_is_object(v) && depth < 16) {
            flatten(gh, props, name, v, depth + 1);
        } else if (!json_is_object(v)) {
            for (size_t i = 0; i < gh->n_property_whitelist; i++)
                if (fnmatch(gh->property_whitelist[i], name, 0) == 0) {
                    json_object_set(props, name, v);
                    break;
                }
        }
        free(name);
    }
}

static bool has_skip(const struct cfg_github *gh, const char *msg)
{
    for (size_t i = 0; msg != NULL && i < gh->n_skips; i++) {
        int err;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)gh->skips[i], PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
        if (re == NULL)
            continue;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        int rc = pcre2_match(re, (PCRE2_SPTR)msg, strlen(msg), 0, 0, md, NULL);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (rc >= 0)
            return true;
    }
    return false;
}

/* key = s, or null when s is NULL (or not UTF-8). */
static void set_str(json_t *o, const char *key, const char *s)
{
    json_t *v = s != NULL ? json_string(s) : NULL;
    json_object_set_new(o, key, v != NULL ? v : json_null());
}

static void set_codebase(const struct cfg_github *gh, json_t *change)
{
    if (gh->codebase != NULL)
        json_object_set_new(change, "codebase", json_string(gh->codebase));
}

static json_t *person(const json_t *who)
{
    const char *name = str_at(who, "name", NULL), *email = str_at(who, "email", NULL);
    char *s = xasprintf("%s <%s>", name ? name : "", email ? email : "");
    json_t *v = json_string(s);
    free(s);
    return v != NULL ? v : json_string("");
}

static json_t *commit_change(const struct cfg_github *gh, const json_t *commit,
                             const json_t *payload, const char *branch, const char *event,
                             const json_t *props)
{
    json_t *files = json_array();
    static const char *const kinds[] = {"added", "modified", "removed"};
    for (size_t k = 0; k < 3; k++) {
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(commit, kinds[k]), i, f)
        {
            if (json_is_string(f))
                json_array_append(files, f);
        }
    }
    const json_t *distinct = json_object_get(commit, "distinct");
    json_t *cprops = json_pack("{sbss}", "github_distinct",
                               distinct == NULL || json_is_true(distinct), "event", event);
    json_object_update(cprops, (json_t *)props);
    const char *ref = str_at(payload, "ref", NULL);
    const json_t *message = json_object_get(commit, "message");
    json_t *c = json_object();
    json_object_set_new(c, "author", person(json_object_get(commit, "author")));
    json_object_set_new(c, "committer", person(json_object_get(commit, "committer")));
    json_object_set(c, "files", files);
    json_object_set_new(c, "comments",
                        json_is_string(message) ? json_incref((json_t *)message) : json_string(""));
    set_str(c, "revision", str_at(commit, "id", NULL));
    set_str(c, "revlink", str_at(commit, "url", NULL));
    json_object_set_new(c, "when_timestamp",
                        json_integer(parse_time(str_at(commit, "timestamp", NULL))));
    set_str(c, "branch", branch);
    set_str(c, "repository", str_at(payload, "repository", "html_url", NULL));
    set_str(c, "project", str_at(payload, "repository", "full_name", NULL));
    json_object_set_new(c, "category",
                        util_startswith(ref, "refs/tags/") ? json_string("tag") : json_null());
    json_object_set(c, "properties", cprops);
    json_decref(files);
    json_decref(cprops);
    set_codebase(gh, c);
    return c;
}

static int push(const struct cfg_github *gh, const json_t *payload, const char *event, json_t *out,
                char **cause)
{
    const char *ref = str_at(payload, "ref", NULL);
    if (ref == NULL || str_at(payload, "repository", "html_url", NULL) == NULL ||
        str_at(payload, "repository", "full_name", NULL) == NULL)
        return util_cause(cause, "a push event needs 'ref' and 'repository' (html_url, "
                                 "full_name)");
    const char *branch = util_startswith(ref, "refs/heads/")  ? ref + 11
                         : util_startswith(ref, "refs/tags/") ? ref + 10
                                                              : NULL;
    if (branch == NULL || *branch == '\0') {
        log_info("github hook: ignoring refname '%s': not a branch", UTIL_ESC(ref));
        return 0;
    }
    if (json_is_true(json_object_get(payload, "deleted"))) {
        log_info("github hook: branch '%s' deleted, ignoring", UTIL_ESC(branch));
        return 0;
    }
    const json_t *head = json_object_get(payload, "head_commit");
    if (has_skip(gh, str_at(head, "message", NULL)))
        return 0;
    json_t *props = json_object();
    flatten(gh, props, "github", payload, 0);
    json_t *commits = json_is_true(json_object_get(payload, "created")) && json_is_object(head)
                          ? json_pack("[O]", head)
                          : json_incref(json_object_get(payload, "commits"));
    size_t i;
    json_t *commit;
    json_array_foreach(commits, i, commit)
    {
        json_t *c = json_is_object(commit)
                        ? commit_change(gh, commit, payload, branch, event, props)
                        : NULL;
        if (c == NULL) {
            json_decref(commits);
            json_decref(props);
            return util_cause(cause, "commit %zu of the push event is not a commit object", i);
        }
        json_array_append_new(out, c);
    }
    json_decref(commits);
    json_decref(props);
    return 0;
}

/* A pull request's change (the files and the head commit's message need GitHub's API). */
json_t *changes_github_pr_change(const struct cfg_github *gh, const json_t *payload,
                                 const json_t *pr, json_t *props)
{
    long long n = (long long)json_integer_value(json_object_get(pr, "number"));
    long long commits = (long long)json_integer_value(json_object_get(pr, "commits"));
    const char *title = str_at(pr, "title", NULL), *body = str_at(pr, "body", NULL);
    char *refname = xasprintf("refs/pull/%lld/%s", n, gh->pullrequest_ref);
    char *comments =
        xasprintf("GitHub Pull Request #%lld (%lld commit%s)\n%s\n%s", n, commits,
                  commits != 1 ? "s" : "", title ? title : "None", body ? body : "None");
    json_t *c = json_object();
    set_str(c, "revision", str_at(pr, "head", "sha", NULL));
    json_object_set_new(c, "when_timestamp",
                        json_integer(parse_time(str_at(pr, "created_at", NULL))));
    set_str(c, "branch", refname);
    json_object_set_new(c, "files", json_array());
    set_str(c, "revlink", str_at(pr, "_links", "html", "href", NULL));
    set_str(c, "repository", str_at(payload, "repository", "html_url", NULL));
    set_str(c, "project", str_at(pr, "base", "repo", "full_name", NULL));
    json_object_set_new(c, "category", json_string("pull"));
    set_str(c, "author", str_at(payload, "sender", "login", NULL));
    set_str(c, "comments", comments);
    json_object_set_new(c, "properties", props);
    free(refname);
    free(comments);
    set_codebase(gh, c);
    return c;
}

/* A pull request's change; its files and the skip check come from GitHub's API (prtest.c). */
static int pull_request(const struct cfg_github *gh, const json_t *payload, const char *event,
                        json_t *out, char **cause)
{
    const json_t *pr = json_object_get(payload, "pull_request");
    const json_t *number = json_object_get(payload, "number");
    const char *action = str_at(payload, "action", NULL);
    if (!json_is_object(pr) || !json_is_integer(number))
        return util_cause(cause, "a pull_request event needs 'number' and 'pull_request'");
    if (!util_streq(action, "opened") && !util_streq(action, "reopened") &&
        !util_streq(action, "synchronize")) {
        log_info("github hook: pull request #%lld %s, ignoring",
                 (long long)json_integer_value(number), UTIL_ESC(action ? action : "?"));
        return 0;
    }
    json_t *props = json_object();
    set_str(props, "pullrequesturl", str_at(pr, "_links", "html", "href", NULL));
    set_str(props, "event", event);
    set_str(props, "basename", str_at(pr, "base", "ref", NULL));
    flatten(gh, props, "github", pr, 0);
    json_t *p = json_deep_copy(pr);
    json_object_set(p, "number", (json_t *)number);
    json_array_append_new(out, changes_github_pr_change(gh, payload, p, props));
    json_decref(p);
    return 0;
}

void changes_github_properties(const struct cfg_github *gh, const json_t *info, json_t *props)
{
    flatten(gh, props, "github", info, 0);
}

bool changes_github_skip(const struct cfg_github *gh, const char *message)
{
    return has_skip(gh, message);
}

int changes_github(const struct cfg_github *gh, const struct chg_request *req, size_t budget,
                   json_t **changes, json_t **payload, size_t *cost, char **cause)
{
    *changes = NULL;
    *payload = NULL;
    *cost = 0;
    if (verify(gh, req, cause) < 0)
        return -1;
    int rc = -1;
    json_t *p = parse_body(req, budget, cost, &rc, cause);
    if (p == NULL)
        return rc < 0 ? rc : -1;
    const char *event = req->event != NULL ? req->event : "";
    json_t *out = json_array();
    rc = 0;
    if (strcmp(event, "push") == 0)
        rc = push(gh, p, event, out, cause);
    else if (strcmp(event, "pull_request") == 0)
        rc = pull_request(gh, p, event, out, cause);
    else if (strcmp(event, "ping") != 0 && strcmp(event, "workflow_run") != 0 &&
             strcmp(event, "issue_comment") != 0 && strcmp(event, "pull_request_review") != 0)
        rc = util_cause(cause, "Unknown event: %.100s", event);
    if (rc < 0) {
        json_decref(out);
        json_decref(p);
        return -1;
    }
    *changes = out;
    *payload = p;
    return 0;
}
