/*
 * Unit tests for the outbox's decisions: which answers are retried, dropped or
 * delivered (GitHub's rate-limit 403s among them), the backoff's bounds and
 * growth, the per-token limiter (80 a minute, Retry-After pauses, the
 * concurrency cap), Buildbot's owner/repo parsing, and the UTF-8 cut of a
 * description.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "reporters/reporters.h"

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(rep_classify(201, "{}", -1), REP_DELIVERED);
    assert_int_equal(rep_classify(200, "", -1), REP_DELIVERED);
    assert_int_equal(rep_classify(0, NULL, -1), REP_RETRY); /* no answer, timeout */
    assert_int_equal(rep_classify(500, "", -1), REP_RETRY);
    assert_int_equal(rep_classify(502, "", -1), REP_RETRY);
    assert_int_equal(rep_classify(503, "", 30), REP_RETRY);
    assert_int_equal(rep_classify(408, "", -1), REP_RETRY);
    assert_int_equal(rep_classify(429, "", -1), REP_RETRY);
    assert_int_equal(
        rep_classify(403, "{\"message\":\"You have exceeded a secondary rate limit.\"}", -1),
        REP_RETRY);
    assert_int_equal(rep_classify(403, "{\"message\":\"x\"}", 60), REP_RETRY);
    assert_int_equal(rep_classify(403, "{\"message\":\"Resource not accessible\"}", -1), REP_DROP);
    assert_int_equal(rep_classify(401, "{\"message\":\"Bad credentials\"}", -1), REP_DROP);
    assert_int_equal(rep_classify(404, "", -1), REP_DROP);
    assert_int_equal(
        rep_classify(422, "This SHA and context has reached the maximum number of statuses.", -1),
        REP_DROP);
    assert_int_equal(rep_classify(301, "", -1), REP_DROP);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(rep_backoff_ms(1, 0.0), 0);
    assert_int_equal(rep_backoff_ms(1, 0.5), REP_BACKOFF_BASE_MS / 2);
    assert_int_equal(rep_backoff_ms(2, 0.5), REP_BACKOFF_BASE_MS);
    assert_int_equal(rep_backoff_ms(3, 0.5), REP_BACKOFF_BASE_MS * 2);
    assert_true(rep_backoff_ms(1, 0.999999) < REP_BACKOFF_BASE_MS);
    /* capped, however many attempts */
    assert_true(rep_backoff_ms(30, 0.999999) <= REP_BACKOFF_MAX_MS);
    assert_true(rep_backoff_ms(30, 0.999999) > REP_BACKOFF_MAX_MS - 10);
    assert_true(rep_backoff_ms(1000000, 0.5) == REP_BACKOFF_MAX_MS / 2);
    assert_true(rep_backoff_ms(1, 7.0) < REP_BACKOFF_BASE_MS); /* a bad random is clamped */
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(rep_retry_after_ms(0), 1000);
    assert_int_equal(rep_retry_after_ms(1), 1000);
    assert_int_equal(rep_retry_after_ms(60), 60000);
    assert_int_equal(rep_retry_after_ms(31536000), 3600000);
}

static void test_limiter(void **state)
{
    (void)state;
    struct rep_limiter l;
    memset(&l, 0, sizeof l);
    uint64_t t = 1000000;
    for (int i = 0; i < REP_RATE_PER_MINUTE; i++) {
        assert_int_equal(rep_limiter_wait(&l, t + (uint64_t)i * 10), 0);
        rep_limiter_take(&l, t + (uint64_t)i * 10);
        l.in_flight--; /* answered at once */
    }
    /* the 81st waits until the first of the window is a minute old */
    assert_int_equal(rep_limiter_wait(&l, t + 1000), 59000);
    assert_int_equal(rep_limiter_wait(&l, t + 60000), 0);
    rep_limiter_take(&l, t + 60000);
    l.in_flight--;
    assert_int_equal(rep_limiter_wait(&l, t + 60000), 10); /* the second sent at t+10 */
    /* Retry-After */
    rep_limiter_pause(&l, t + 200000, 30000);
    assert_int_equal(rep_limiter_wait(&l, t + 200000), 30000);
    rep_limiter_pause(&l, t + 200000, 5000); /* a shorter pause does not shorten it */
    assert_int_equal(rep_limiter_wait(&l, t + 220000), 10000);
    assert_int_equal(rep_limiter_wait(&l, t + 230000), 0);
    /* at most REP_CONCURRENCY in flight */
    l.in_flight = REP_CONCURRENCY;
    assert_true(rep_limiter_wait(&l, t + 300000) > 0);
    l.in_flight--;
    assert_int_equal(rep_limiter_wait(&l, t + 300000), 0);
}

static void test_limiter_hourly(void **state)
{
    (void)state;
    static struct rep_limiter l; /* 4.6 KB: not on the stack */
    memset(&l, 0, sizeof l);
    l.hourly = true;
    uint64_t t = 1000000;
    /* 500 sends, 80 a minute: the 501st waits for the first to be an hour old */
    for (int i = 0; i < REP_RATE_PER_HOUR; i++) {
        uint64_t at = t + (uint64_t)i * 1000;
        assert_int_equal(rep_limiter_wait(&l, at), 0);
        rep_limiter_take(&l, at);
        l.in_flight--;
    }
    uint64_t later = t + 600000; /* the minute's window is long clear */
    assert_int_equal(rep_limiter_wait(&l, later), 3600000 - 600000);
    assert_int_equal(rep_limiter_wait(&l, t + 3600000), 0);
    /* the same sends without the hourly bound */
    l.hourly = false;
    assert_int_equal(rep_limiter_wait(&l, later), 0);
}

/* An earlier master's sends read back: the hour's ring in order, the minute's only those of
   its last minute; the in-flight count is not touched. */
static void test_limiter_restored(void **state)
{
    (void)state;
    static struct rep_limiter l, copy;
    memset(&l, 0, sizeof l);
    memset(&copy, 0, sizeof copy);
    l.hourly = copy.hourly = true;
    uint64_t t = 10000000;
    for (int i = 0; i < 120; i++) { /* 40 a minute ago and more, 80 in the last minute */
        uint64_t at = t + (uint64_t)(i < 40 ? i * 100 : 70000 + i * 100);
        rep_limiter_take(&l, at);
        l.in_flight--;
    }
    uint64_t now = t + 90000;
    const uint64_t *ring;
    size_t head;
    size_t n = rep_limiter_times(&l, true, &ring, &head);
    assert_int_equal(n, 120);
    for (size_t i = 0; i < n; i++)
        rep_limiter_sent(&copy, ring[(head + i) % REP_RATE_PER_HOUR], now);
    assert_int_equal(copy.in_flight, 0);
    assert_int_equal(rep_limiter_times(&copy, false, &ring, &head), 80);
    assert_int_equal(ring[head], t + 70000 + 4000); /* the minute's oldest: the 41st */
    assert_int_equal(rep_limiter_wait(&copy, now), rep_limiter_wait(&l, now));
    assert_true(rep_limiter_wait(&copy, now) > 0);
}

static void test_github_pause(void **state)
{
    (void)state;
    const char *secondary = "{\"message\":\"You have exceeded a secondary rate limit.\"}";
    const char *primary = "{\"message\":\"API rate limit exceeded for user ID 1.\"}";
    /* Retry-After on a rate-limit answer */
    assert_int_equal(rep_github_pause(403, secondary, 30, NULL, NULL, 1000), 30);
    assert_int_equal(rep_github_pause(429, "", 7, NULL, NULL, 1000), 7);
    /* a spent quota: until its reset, rounded up, on a refusal or a success */
    assert_int_equal(rep_github_pause(403, primary, -1, "0", "1100", 1000.5), 100);
    assert_int_equal(rep_github_pause(201, "{}", -1, "0", "1100", 1000), 101);
    assert_int_equal(rep_github_pause(201, "{}", -1, "0", "900", 1000), 1); /* already past */
    assert_int_equal(rep_github_pause(201, "{}", -1, "0", "99999999", 1000), REP_RETRY_AFTER_MAX);
    assert_int_equal(rep_github_pause(201, "{}", -1, "1", "1100", 1000), -1);
    assert_int_equal(rep_github_pause(201, "{}", -1, "0", "soon", 1000), -1);
    assert_int_equal(rep_github_pause(201, "{}", -1, "0", "", 1000), -1);
    assert_int_equal(rep_github_pause(201, "{}", -1, "0", NULL, 1000), -1);
    /* a rate limit that names no time: a minute */
    assert_int_equal(rep_github_pause(403, secondary, -1, NULL, NULL, 1000), REP_RATE_LIMIT_PAUSE);
    assert_int_equal(rep_github_pause(429, "", -1, "5", "1100", 1000), REP_RATE_LIMIT_PAUSE);
    /* nothing to do with limits */
    assert_int_equal(rep_github_pause(403, "{\"message\":\"Forbidden\"}", -1, NULL, NULL, 1000),
                     -1);
    assert_int_equal(rep_github_pause(502, "", 5, NULL, NULL, 1000), -1);
    assert_int_equal(rep_github_pause(201, "{}", -1, NULL, NULL, 1000), -1);
}

static void repo_is(const char *project, const char *repository, const char *owner,
                    const char *repo)
{
    char o[64] = "", r[64] = "";
    int rc = rep_github_repo(project, repository, o, sizeof o, r, sizeof r);
    if (owner == NULL) {
        assert_int_equal(rc, -1);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(o, owner);
    assert_string_equal(r, repo);
}

static void test_github_repo(void **state)
{
    (void)state;
    repo_is("python/cpython", "https://github.com/x/y", "python", "cpython");
    repo_is("", "https://github.com/python/cpython", "python", "cpython");
    repo_is(NULL, "https://github.com/python/cpython.git", "python", "cpython");
    repo_is("", "git@github.com:octo/hello.git", "octo", "hello");
    repo_is("", "ssh://git@github.com:22/octo/hello", "octo", "hello");
    repo_is("", "git://github.com/octo/hello.git", "octo", "hello");
    repo_is("", "https://user:pw@gitlab.example/group/sub/proj.git", "group/sub", "proj");
    repo_is("cpython", "https://github.com/python/cpython", "python", "cpython");
    repo_is("", "https://github.com/cpython", NULL, NULL);             /* no owner */
    repo_is("a/b/c", "https://github.com/python/cpython", NULL, NULL); /* split fails */
    repo_is("a/", "", NULL, NULL);
    repo_is("", "", NULL, NULL);
    repo_is(NULL, NULL, NULL, NULL);
    /* a long hostile URL is refused in bounded time */
    static char hostile[4096];
    memset(hostile, ':', sizeof hostile - 1);
    repo_is("", hostile, NULL, NULL);
    char big[2000] = "https://github.com/o/";
    memset(big + strlen(big), 'r', 1500);
    char o[64], r[2048];
    assert_int_equal(rep_github_repo("", big, o, sizeof o, r, sizeof r), 0);
    assert_string_equal(o, "o");
    assert_int_equal(strlen(r), 1500);
}

static void test_utf8_prefix(void **state)
{
    (void)state;
    assert_int_equal(rep_utf8_prefix("abc", 140), 3);
    assert_int_equal(rep_utf8_prefix("abcdef", 4), 4);
    assert_int_equal(rep_utf8_prefix("caf\xc3\xa9 x", 4), 5);            /* é is two bytes */
    assert_int_equal(rep_utf8_prefix("\xe2\x9c\x93\xe2\x9c\x93", 1), 3); /* ✓ */
    assert_int_equal(rep_utf8_prefix("", 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),       cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after),    cmocka_unit_test(test_limiter),
        cmocka_unit_test(test_limiter_hourly), cmocka_unit_test(test_limiter_restored),
        cmocka_unit_test(test_github_pause),   cmocka_unit_test(test_github_repo),
        cmocka_unit_test(test_utf8_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
