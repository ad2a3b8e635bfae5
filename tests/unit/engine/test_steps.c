/*
 * Unit tests for step summaries (engine/step.c) and result merging: the
 * state_string words Buildbot writes for a step — from its command
 * ('sh -c ...'), its description, the result in brackets, the reason a 4.x
 * worker gave for killing it — and which results reach the build's summary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

static void expect(const struct step *s, bool done, const char *want)
{
    char *got = step_summary(s, done);
    assert_string_equal(got, want);
    free(got);
}

static void test_command_words(void **state)
{
    (void)state;
    struct step s = {.results = RES_SUCCESS};
    s.command = json_pack("[s]", "true");
    expect(&s, true, "'true'");
    json_decref(s.command);
    s.command = json_pack("[ss]", "echo", "hi");
    expect(&s, true, "'echo hi'");
    json_decref(s.command);
    s.command = json_pack("[sss]", "sh", "-c", "make all");
    expect(&s, false, "'sh -c ...'");
    s.results = RES_FAILURE;
    expect(&s, true, "'sh -c ...' (failure)");
    json_decref(s.command);
    s.command = json_string("make   -j4 all");
    expect(&s, true, "'make -j4 ...' (failure)");
    json_decref(s.command);
    s.command = NULL;
    s.results = RES_EXCEPTION;
    expect(&s, true, "finished (exception)");
    expect(&s, false, "running");
}

static void test_descriptions_and_reasons(void **state)
{
    (void)state;
    struct step s = {
        .results = RES_SUCCESS, .description = "compiling", .description_done = "compile"};
    expect(&s, false, "compiling");
    expect(&s, true, "compile");
    s.results = RES_WARNINGS;
    expect(&s, true, "compile (warnings)");
    s.results = RES_FAILURE;
    s.timed_out = true;
    expect(&s, true, "compile (failure) (timed out)");
    s.timed_out = false;
    s.max_lines = true;
    expect(&s, true, "compile (failure) (max lines reached)");
    s.description = s.description_done = NULL;
    s.command = json_pack("[ss]", "make", "test");
    expect(&s, true, "'make test' (failure) (max lines)");
    json_decref(s.command);
}

static void test_build_summary_policy(void **state)
{
    (void)state;
    struct step s = {.flunk_on_failure = true};
    s.results = RES_FAILURE;
    assert_true(step_in_build_summary(&s));
    s.flunk_on_failure = false;
    assert_false(step_in_build_summary(&s));
    s.results = RES_WARNINGS;
    assert_false(step_in_build_summary(&s));
    s.warn_on_warnings = true;
    assert_true(step_in_build_summary(&s));
    s.results = RES_CANCELLED;
    assert_true(step_in_build_summary(&s));
    s.results = RES_SUCCESS;
    assert_false(step_in_build_summary(&s));
    /* updateBuildSummaryPolicy = { SUCCESS }: that result only */
    s.summary_policy = true;
    s.summary_results = 1u << RES_SUCCESS;
    assert_true(step_in_build_summary(&s));
    s.results = RES_CANCELLED;
    assert_false(step_in_build_summary(&s));
    assert_int_equal(res_worst(RES_SUCCESS, RES_WARNINGS), RES_WARNINGS);
    assert_int_equal(res_worst(RES_RETRY, RES_CANCELLED), RES_CANCELLED);
    assert_int_equal(res_worst(RES_SKIPPED, RES_SUCCESS), RES_SUCCESS);
    assert_int_equal(res_worst(RES_FAILURE, RES_EXCEPTION), RES_EXCEPTION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_words),
        cmocka_unit_test(test_descriptions_and_reasons),
        cmocka_unit_test(test_build_summary_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
