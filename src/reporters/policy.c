/*
 * The outbox's decisions, kept free of I/O so that they can be tested alone:
 * what an HTTP answer means (delivered, retry, drop), how long to wait before
 * the next attempt (exponential backoff with full jitter), the per-token rate
 * limiter, and where a source stamp's GitHub repository is (Buildbot's
 * giturlparse, whose regular expression is used as it is).
 */
#include "reporters/reporters.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest repository URL parsed, and the regular expression's match limit. */
#define REP_URL_MAX 2048
#define REP_MATCH_LIMIT 1000000

enum rep_outcome rep_classify(long status, const char *body, long retry_after)
{
    if (status >= 200 && status < 300)
        return REP_DELIVERED;
    if (status == 0 || status >= 500 || status == 408 || status == 429)
        return REP_RETRY;
    /* GitHub answers its rate limits (primary and secondary) with 403, saying so in the
       body, often with Retry-After; any other 403 is a refusal */
    if (status == 403 && (retry_after >= 0 || (body != NULL && strstr(body, "rate limit") != NULL)))
        return REP_RETRY;
    return REP_DROP;
}

enum rep_outcome rep_classify_smtp(long code)
{
    if (code >= 200 && code < 300)
        return REP_DELIVERED;
    if (code == 0 || (code >= 400 && code < 500)) /* no answer, a timeout, a transient reply */
        return REP_RETRY;
    return REP_DROP; /* 5xx: the server refuses it for good */
}

uint64_t rep_backoff_ms(int attempts, double r01)
{
    uint64_t cap = REP_BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && cap < REP_BACKOFF_MAX_MS; i++)
        cap *= 2;
    if (cap > REP_BACKOFF_MAX_MS)
        cap = REP_BACKOFF_MAX_MS;
    if (r01 < 0)
        r01 = 0;
    if (r01 >= 1)
        r01 = 0.999999;
    return (uint64_t)((double)cap * r01);
}

uint64_t rep_retry_after_ms(long seconds)
{
    if (seconds < REP_RETRY_AFTER_MIN)
        seconds = REP_RETRY_AFTER_MIN;
    if (seconds > REP_RETRY_AFTER_MAX)
        seconds = REP_RETRY_AFTER_MAX;
    return (uint64_t)seconds * 1000;
}

/* The wait until the oldest of a full window of `cap` sends is `span` ms old. */
static uint64_t window_wait(const uint64_t *ring, size_t cap, size_t n, size_t head, uint64_t span,
                            uint64_t now)
{
    if (n < cap || ring[head] + span <= now) /* a full ring's head is its oldest */
        return 0;
    return ring[head] + span - now;
}

static void window_take(uint64_t *ring, size_t cap, size_t *n, size_t *head, uint64_t now)
{
    if (*n < cap) {
        ring[(*head + *n) % cap] = now;
        (*n)++;
    } else {
        ring[*head] = now;
        *head = (*head + 1) % cap;
    }
}

uint64_t rep_limiter_wait(const struct rep_limiter *l, uint64_t now)
{
    uint64_t wait = l->paused_until > now ? l->paused_until - now : 0;
    uint64_t w = window_wait(l->sent, REP_RATE_PER_MINUTE, l->n, l->head, 60000, now);
    wait = w > wait ? w : wait;
    if (l->hourly) {
        w = window_wait(l->hour, REP_RATE_PER_HOUR, l->hour_n, l->hour_head, 3600000, now);
        wait = w > wait ? w : wait;
    }
    if (wait == 0 && l->in_flight >= REP_CONCURRENCY)
        wait = 1; /* until an answer comes */
    return wait;
}

void rep_limiter_take(struct rep_limiter *l, uint64_t now)
{
    window_take(l->sent, REP_RATE_PER_MINUTE, &l->n, &l->head, now);
    if (l->hourly)
        window_take(l->hour, REP_RATE_PER_HOUR, &l->hour_n, &l->hour_head, now);
    l->in_flight++;
}

void rep_limiter_sent(struct rep_limiter *l, uint64_t at, uint64_t now)
{
    if (at + 60000 > now)
        window_take(l->sent, REP_RATE_PER_MINUTE, &l->n, &l->head, at);
    if (l->hourly && at + 3600000 > now)
        window_take(l->hour, REP_RATE_PER_HOUR, &l->hour_n, &l->hour_head, at);
}

size_t rep_limiter_times(const struct rep_limiter *l, bool hour, const uint64_t **ring,
                         size_t *head)
{
    *ring = hour ? l->hour : l->sent;
    *head = hour ? l->hour_head : l->head;
    return hour ? l->hour_n : l->n;
}

void rep_limiter_pause(struct rep_limiter *l, uint64_t now, uint64_t ms)
{
    if (now + ms > l->paused_until)
        l->paused_until = now + ms;
}

long rep_github_pause(long status, const char *body, long retry_after, const char *remaining,
                      const char *reset, double now)
{
    bool limited =
        status == 429 || (status == 403 && rep_classify(status, body, retry_after) == REP_RETRY);
    if (limited && retry_after >= 0)
        return retry_after;
    char *end;
    errno = 0;
    long long at = reset != NULL ? strtoll(reset, &end, 10) : 0;
    if (remaining != NULL && strcmp(remaining, "0") == 0 && reset != NULL && end != reset &&
        *end == '\0' && errno == 0 && at > 0) {
        double left = (double)at - now;
        return left < 1 ? 1 : left > REP_RETRY_AFTER_MAX ? REP_RETRY_AFTER_MAX : (long)left + 1;
    }
    return limited ? REP_RATE_LIMIT_PAUSE : -1;
}

static void copy(char *out, size_t size, const char *s, size_t len)
{
    snprintf(out, size, "%.*s", (int)len, s);
}

/* Buildbot's giturlparse: owner and repo of a git URL; -1 when it has no owner. */
static int giturl(const char *url, char *owner, size_t osize, char *repo, size_t rsize)
{
    static const char re[] = "(?P<proto>(https?://|ssh://|git://|))"
                             "((?P<user>[^:@]*)(:(?P<password>.*))?@)?"
                             "(?P<domain>[^\\/:]+)(:((?P<port>[0-9]+)/)?|/)"
                             "((?P<owner>.+)/)?(?P<repo>[^/]+?)(\\.git)?$";
    if (strlen(url) > REP_URL_MAX) /* its '.*' and '.+' backtrack: the work is bounded */
        return -1;
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (code == NULL)
        return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(mc, REP_MATCH_LIMIT);
    int rc = -1;
    /* Python's re.match: anchored at the start; '$' also before a final newline */
    if (pcre2_match(code, (PCRE2_SPTR)url, PCRE2_ZERO_TERMINATED, 0, PCRE2_ANCHORED, md, mc) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int o = pcre2_substring_number_from_name(code, (PCRE2_SPTR) "owner");
        int r = pcre2_substring_number_from_name(code, (PCRE2_SPTR) "repo");
        if (o > 0 && r > 0 && ov[2 * o] != PCRE2_UNSET && ov[2 * r] != PCRE2_UNSET) {
            copy(owner, osize, url + ov[2 * o], ov[2 * o + 1] - ov[2 * o]);
            copy(repo, rsize, url + ov[2 * r], ov[2 * r + 1] - ov[2 * r]);
            rc = owner[0] != '\0' && repo[0] != '\0' ? 0 : -1;
        }
    }
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return rc;
}

int rep_github_repo(const char *project, const char *repository, char *owner, size_t osize,
                    char *repo, size_t rsize)
{
    const char *slash = project != NULL ? strchr(project, '/') : NULL;
    if (slash != NULL) {
        /* Python's project.split('/') into two: a second '/' raises, and nothing is sent */
        if (strchr(slash + 1, '/') != NULL || slash == project || slash[1] == '\0')
            return -1;
        copy(owner, osize, project, (size_t)(slash - project));
        copy(repo, rsize, slash + 1, strlen(slash + 1));
        return 0;
    }
    if (repository == NULL || repository[0] == '\0')
        return -1;
    return giturl(repository, owner, osize, repo, rsize);
}

size_t rep_utf8_prefix(const char *s, size_t max)
{
    size_t i = 0, chars = 0;
    while (s[i] != '\0' && chars < max) {
        i++;
        while ((s[i] & 0xC0) == 0x80) /* continuation bytes belong to the character */
            i++;
        chars++;
    }
    return i;
}
