/*
 * Unit tests for the IRC reporter's pure parts: the line parser (prefixes, the trailing
 * parameter, the bounds, what it refuses), notify_events and words.py's meaning of them
 * for a finished build (severity order, RETRY, the deprecated "xToY" events), the texts
 * with and without mIRC colours, cutting at UTF-8 boundaries, and the queue of
 * lines: its burst, its rate, its ceiling and the count of what overflowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reporters/reporters.h"
#include "util/util.h"

static int parse(const char *line, struct rep_irc_msg *m)
{
    return rep_irc_parse(line, strlen(line), m);
}

static void test_parse(void **state)
{
    (void)state;
    struct rep_irc_msg m;
    assert_int_equal(parse(":irc.test 001 bot :Welcome to the net", &m), 0);
    assert_string_equal(m.prefix, "irc.test");
    assert_string_equal(m.command, "001");
    assert_int_equal(m.n_params, 2);
    assert_string_equal(m.params[0], "bot");
    assert_string_equal(m.params[1], "Welcome to the net");
    assert_int_equal(parse("PING :tok en", &m), 0);
    assert_null(m.prefix);
    assert_string_equal(m.command, "PING");
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "tok en");
    assert_int_equal(parse(":s CAP * LS * :multi-prefix sasl", &m), 0);
    assert_int_equal(m.n_params, 4);
    assert_string_equal(m.params[2], "*");
    assert_string_equal(m.params[3], "multi-prefix sasl");
    assert_int_equal(parse("AUTHENTICATE +", &m), 0);
    assert_string_equal(m.params[0], "+");
    assert_int_equal(parse("CMD  a   b", &m), 0); /* runs of spaces */
    assert_int_equal(m.n_params, 2);
    assert_string_equal(m.params[1], "b");
    /* the 15th parameter takes the rest, as RFC 2812 says */
    assert_int_equal(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", &m), 0);
    assert_int_equal(m.n_params, 15);
    assert_string_equal(m.params[14], "15 16 17");
    assert_int_equal(parse("", &m), -1);
    assert_int_equal(parse(":prefix-only", &m), -1);
    assert_int_equal(parse(": 001", &m), -1);
    assert_int_equal(parse("   ", &m), -1);
    assert_int_equal(rep_irc_parse("PING\0x", 6, &m), -1);
    assert_int_equal(parse("PING\r", &m), -1);
    char big[REP_IRC_LINE_MAX + 8];
    memset(big, 'a', sizeof big);
    assert_int_equal(rep_irc_parse(big, REP_IRC_LINE_MAX - 2, &m), 0);
    assert_int_equal(rep_irc_parse(big, REP_IRC_LINE_MAX - 1, &m), -1);
}

static void test_events(void **state)
{
    (void)state;
    assert_int_equal(rep_irc_event("better"), REP_IRC_EV_BETTER);
    assert_int_equal(rep_irc_event("started"), REP_IRC_EV_STARTED);
    assert_int_equal(rep_irc_event("worker"), REP_IRC_EV_WORKER);
    assert_int_not_equal(rep_irc_event("successToFailure"), 0);
    assert_int_not_equal(rep_irc_event("exceptionToWarnings"), 0);
    assert_int_equal(rep_irc_event("skipped"), 0); /* not one of Buildbot's events */
    assert_int_equal(rep_irc_event("retry"), 0);
    assert_int_equal(rep_irc_event("successTofailure"), 0);
    assert_int_equal(rep_irc_event("cancelledToSuccess"), 0);
    assert_int_equal(rep_irc_event("To"), 0);
    assert_int_equal(rep_irc_event("successTo"), 0);
    assert_int_equal(rep_irc_event(""), 0);
    /* back to names, sorted as Python sorts strings */
    char *names = rep_irc_event_names(rep_irc_event("worse") | rep_irc_event("better") |
                                          rep_irc_event("failureToSuccess") |
                                          rep_irc_event("finished") | rep_irc_event("worker"),
                                      ", ");
    assert_string_equal(names, "better, failureToSuccess, finished, worker, worse");
    free(names);
    names = rep_irc_event_names(0, ", ");
    assert_string_equal(names, "");
    free(names);
    names = rep_irc_event_names(UINT32_MAX, " ");
    assert_int_equal(strlen(names) > 0, 1);
    for (char *p = names, *end;; p = end + 1) { /* every name a name */
        end = p + strcspn(p, " ");
        char one[32];
        snprintf(one, sizeof one, "%.*s", (int)(end - p), p);
        assert_int_not_equal(rep_irc_event(one), 0);
        if (*end == '\0')
            break;
    }
    free(names);
}

static void test_wants(void **state)
{
    (void)state;
    uint32_t bw = REP_IRC_EV_BETTER | REP_IRC_EV_WORSE | REP_IRC_EV_EXCEPTION; /* BPO's */
    assert_true(rep_irc_wants(bw, REP_RES_FAILURE, REP_RES_SUCCESS));
    assert_true(rep_irc_wants(bw, REP_RES_SUCCESS, REP_RES_WARNINGS));
    assert_false(rep_irc_wants(bw, REP_RES_FAILURE, REP_RES_FAILURE));
    assert_true(rep_irc_wants(bw, REP_RES_CANCELLED, REP_RES_FAILURE)); /* "worse" */
    assert_true(rep_irc_wants(bw, REP_RES_SUCCESS, REP_RES_SKIPPED));   /* SKIPPED ranks first */
    assert_true(rep_irc_wants(bw, REP_RES_EXCEPTION, REP_PREV_NONE));   /* its own name */
    assert_false(rep_irc_wants(bw, REP_RES_FAILURE, REP_PREV_NONE));
    assert_false(rep_irc_wants(bw, REP_RES_FAILURE, REP_PREV_RUNNING));
    assert_false(rep_irc_wants(bw, REP_RES_FAILURE, REP_RES_RETRY)); /* RETRY not skipped */
    assert_false(rep_irc_wants(bw, REP_RES_RETRY, REP_RES_SUCCESS));
    uint32_t pr = REP_IRC_EV_PROBLEM | REP_IRC_EV_RECOVERY;
    assert_true(rep_irc_wants(pr, REP_RES_EXCEPTION, REP_RES_WARNINGS));
    assert_false(rep_irc_wants(pr, REP_RES_CANCELLED, REP_RES_SUCCESS));
    assert_true(rep_irc_wants(pr, REP_RES_WARNINGS, REP_RES_FAILURE));
    assert_false(rep_irc_wants(pr, REP_RES_SUCCESS, REP_RES_CANCELLED));
    assert_true(rep_irc_wants(REP_IRC_EV_FINISHED, REP_RES_RETRY, REP_PREV_NONE));
    assert_true(rep_irc_wants(REP_IRC_EV_CANCELLED, REP_RES_CANCELLED, REP_PREV_NONE));
    assert_false(rep_irc_wants(REP_IRC_EV_STARTED, REP_RES_SUCCESS, REP_PREV_NONE));
    uint32_t to = rep_irc_event("successToFailure");
    assert_true(rep_irc_wants(to, REP_RES_FAILURE, REP_RES_SUCCESS));
    assert_false(rep_irc_wants(to, REP_RES_FAILURE, REP_RES_WARNINGS));
    assert_false(rep_irc_wants(to, REP_RES_SUCCESS, REP_RES_FAILURE));
}

static void test_texts(void **state)
{
    (void)state;
    char *t =
        rep_irc_finished_text(1234, "https://bb/#/builders/42/builds/1234", "AMD64 Debian root 3.x",
                              REP_RES_FAILURE, "failed test (failure)", true);
    assert_string_equal(t, "Build [#1234](https://bb/#/builders/42/builds/1234) of `AMD64 "
                           "Debian root 3.x` \x03"
                           "4failed\x0f: failed test (failure)");
    free(t);
    t = rep_irc_finished_text(7, "u", "b", REP_RES_SUCCESS, "build successful", true);
    assert_string_equal(t, "Build [#7](u) of `b` \x03"
                           "3completed successfully\x0f.");
    free(t);
    t = rep_irc_finished_text(7, "u", "b", REP_RES_CANCELLED, "cancelled", false);
    assert_string_equal(t, "Build [#7](u) of `b` was cancelled: cancelled");
    free(t);
    t = rep_irc_finished_text(7, "u", "b", REP_RES_WARNINGS, NULL, false);
    assert_string_equal(t, "Build [#7](u) of `b` completed with warnings.");
    free(t);
    t = rep_irc_finished_text(7, "u", "b", REP_RES_SKIPPED, "s", true);
    assert_string_equal(t, "Build [#7](u) of `b` \x03"
                           "12was skipped\x0f: s");
    free(t);
    t = rep_irc_started_text(8, "u", "b");
    assert_string_equal(t, "Build [#8](u) of `b` started.");
    free(t);
}

static void test_bytes(void **state)
{
    (void)state;
    const char *s = "ab\xc3\xa9z"; /* é is two bytes */
    assert_int_equal(rep_irc_cut(s, 5, 10), 5);
    assert_int_equal(rep_irc_cut(s, 5, 3), 2);
    assert_int_equal(rep_irc_cut(s, 5, 4), 4);
    assert_int_equal(rep_irc_cut(s, 5, 2), 2);
}

static void test_queue(void **state)
{
    (void)state;
    struct rep_irc_queue q;
    uint64_t t = 1000000;
    rep_irc_queue_init(&q, t);
    assert_null(rep_irc_queue_pop(&q, t));
    assert_int_equal(rep_irc_queue_wait(&q, t), 0);
    for (int i = 0; i < REP_IRC_QUEUE_MAX + 10; i++)
        rep_irc_queue_push(&q, xasprintf("line %d", i));
    assert_int_equal(q.n, REP_IRC_QUEUE_MAX);
    assert_int_equal(q.dropped, 10);          /* past the ceiling: counted, not kept */
    for (int i = 0; i < REP_IRC_BURST; i++) { /* the burst goes at once */
        char *line = rep_irc_queue_pop(&q, t);
        assert_non_null(line);
        char want[32];
        snprintf(want, sizeof want, "line %d", i);
        assert_string_equal(line, want);
        free(line);
    }
    assert_null(rep_irc_queue_pop(&q, t)); /* then one per REP_IRC_LINE_MS */
    uint64_t wait = rep_irc_queue_wait(&q, t);
    assert_true(wait > REP_IRC_LINE_MS - 5 && wait <= REP_IRC_LINE_MS + 1);
    assert_null(rep_irc_queue_pop(&q, t + REP_IRC_LINE_MS - 1));
    char *line = rep_irc_queue_pop(&q, t + REP_IRC_LINE_MS);
    assert_string_equal(line, "line 4");
    free(line);
    assert_null(rep_irc_queue_pop(&q, t + REP_IRC_LINE_MS));
    /* a long silence refills the burst, no more */
    t += 1000 * REP_IRC_LINE_MS;
    for (int i = 0; i < REP_IRC_BURST; i++)
        free(rep_irc_queue_pop(&q, t));
    assert_null(rep_irc_queue_pop(&q, t));
    assert_int_equal(q.n, REP_IRC_QUEUE_MAX - 2 * REP_IRC_BURST - 1);
    rep_irc_queue_clear(&q);
    assert_int_equal(q.n, 0);
    assert_int_equal(rep_irc_queue_wait(&q, t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse), cmocka_unit_test(test_events), cmocka_unit_test(test_wants),
        cmocka_unit_test(test_texts), cmocka_unit_test(test_bytes),  cmocka_unit_test(test_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
