/*
 * The decisions of the reporters that post messages (HttpStatusPush and
 * GitHubCommentPush), apart from the outbox so that they are tested alone:
 * what a Discord webhook URL is and how it is asked to answer (`wait=true`),
 * Discord's 2,000-character `content` and GitHub's 65,536-character comment
 * trimmed with a visible mark rather than refused, the hidden marker that
 * names a comment's outbox record, and the decoders of what the peers answer
 * (a 429's `retry_after`, a page of comments, a Link header's next page).
 */
#include "reporters/reporters.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

bool rep_is_discord(const char *url)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? strchr(p + 3, '/') : NULL;
    return p != NULL && strncmp(p, "/api/webhooks/", 14) == 0;
}

char *rep_post_url(const char *url)
{
    if (!rep_is_discord(url) || strstr(url, "wait=") != NULL)
        return xstrdup(url);
    return xasprintf("%s%swait=true", url, strchr(url, '?') != NULL ? "&" : "?");
}

/* Characters (UTF-8) in s. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The first `keep` characters of s (to the end of a line when one ends in the last 200
   bytes kept), then a mark of how many characters went, of `total`. */
static char *cut(const char *s, size_t keep, size_t total)
{
    size_t bytes = rep_utf8_prefix(s, keep);
    for (size_t b = bytes; b > 0 && bytes - b < 200; b--) {
        if (s[b - 1] == '\n') {
            bytes = b - 1;
            break;
        }
    }
    char *head = xasprintf("%.*s", (int)bytes, s);
    /* a cut inside a ``` block closes it, so the mark is not taken for code */
    size_t fences = 0;
    for (const char *p = head; (p = strstr(p, "```")) != NULL; p += 3)
        fences++;
    char *out = xasprintf("%s%s\n… (%zu more characters not shown)", head,
                          fences % 2 ? "\n```" : "", total - chars(head));
    free(head);
    return out;
}

char *rep_trim_text(const char *s, size_t max)
{
    size_t n = chars(s);
    if (n <= max)
        return xstrdup(s);
    return cut(s, max > 60 ? max - 60 : 0, n); /* the mark takes at most 45 characters */
}

char *rep_discord_body(const char *json_text)
{
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
    json_t *c = json_object_get(v, "content");
    char *out = NULL;
    if (json_is_string(c) && chars(json_string_value(c)) > REP_DISCORD_CONTENT_MAX) {
        char *t = rep_trim_text(json_string_value(c), REP_DISCORD_CONTENT_MAX);
        json_object_set_new(v, "content", json_string(t));
        free(t);
        out = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    }
    json_decref(v);
    return out != NULL ? out : xstrdup(json_text);
}

char *rep_comment_marker(const char *record, double created_at)
{
    return xasprintf("<!-- bbmaster:outbox %s %.3f -->", record, created_at);
}

char *rep_comment_body(const char *text, const char *marker)
{
    size_t room = REP_COMMENT_MAX - chars(marker) - 2;
    char *t = rep_trim_text(text, room);
    char *body = xasprintf("%s\n\n%s", t, marker);
    free(t);
    return body;
}

long rep_retry_after_body(const char *body)
{
    json_t *v = json_loads(body != NULL ? body : "", 0, NULL);
    json_t *ra = json_object_get(v, "retry_after");
    long s = -1;
    if (json_is_number(ra) && json_number_value(ra) >= 0 && json_number_value(ra) < 1e6) {
        double x = json_number_value(ra);
        s = (long)x + ((double)(long)x < x); /* rounded up */
    }
    json_decref(v);
    return s;
}

long rep_retry_after_header_seconds(const char *value)
{
    if (value == NULL)
        return -1;
    char *end;
    double x = strtod(value, &end);
    if (end == value || *end != '\0' || !(x >= 0) || x >= 1e6)
        return -1;
    return (long)x + ((double)(long)x < x); /* rounded up */
}

int rep_comments_have(const char *body, const char *marker)
{
    json_t *v = json_loads(body != NULL ? body : "", 0, NULL);
    int found = json_is_array(v) ? 0 : -1;
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c)
    {
        json_t *b = json_object_get(c, "body");
        if (json_is_string(b) && strstr(json_string_value(b), marker) != NULL) {
            found = 1;
            break;
        }
    }
    json_decref(v);
    return found;
}

char *rep_link_next(const char *link)
{
    /* <https://api.github.com/...&page=2>; rel="next", <...>; rel="last" */
    for (const char *p = link; p != NULL && (p = strchr(p, '<')) != NULL;) {
        const char *end = strchr(p, '>');
        if (end == NULL)
            return NULL;
        const char *next = strchr(end, ',');
        const char *rel = strstr(end, "rel=\"next\"");
        if (rel != NULL && (next == NULL || rel < next)) {
            size_t len = (size_t)(end - p - 1);
            if (len == 0 || len > 2048 || memchr(p + 1, ' ', len) != NULL)
                return NULL;
            return xasprintf("%.*s", (int)len, p + 1);
        }
        p = next;
    }
    return NULL;
}
