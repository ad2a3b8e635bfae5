/*
 * Unit tests for bbm.re (src/config/luare.c): test_re.lua, run as a master.lua, checks the
 * module against Python's answers (an assertion that fails is the load's error); then a
 * run-time call that loops over matches ends with the call's budget error rather than
 * running on, and a scan over a big subject, valid UTF-8 or not, stays within one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "util/util.h"

static struct cfg *load(void)
{
    struct cfg *cfg = NULL;
    char *cause = NULL;
    if (cfg_load(BBM_SOURCE_DIR "/tests/unit/config/test_re.lua", &cfg, &cause) != 0)
        fail_msg("%s", cause);
    return cfg;
}

static void test_python_answers(void **state)
{
    (void)state;
    cfg_free(load());
}

static void test_matching_is_charged_to_the_call(void **state)
{
    (void)state;
    struct cfg *cfg = load();
    lua_State *L = cfg->lua;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lua_getglobal(L, "spin");
    char *cause = NULL;
    assert_int_equal(cfg_lua_call(L, 0, 0, &cause), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (strstr(cause, "budget") == NULL && strstr(cause, "too long") == NULL)
        fail_msg("cause: %s", cause);
    if (secs > 5)
        fail_msg("the call ran %.1f s before its budget stopped it", secs);
    free(cause);
    /* the state is usable again: a call with a fresh budget */
    lua_getglobal(L, "tostring");
    lua_pushinteger(L, 1);
    assert_int_equal(cfg_lua_call(L, 1, 1, &cause), 0);
    lua_pop(L, 1);
    cfg_free(cfg);
}

/* A scan over 100,000 lines, valid UTF-8 or not, within one run-time call's budget. */
static void test_scans_are_linear(void **state)
{
    (void)state;
    struct cfg *cfg = load();
    lua_State *L = cfg->lua;
    for (int bad = 0; bad <= 1; bad++) {
        lua_getglobal(L, "many_lines");
        lua_pushboolean(L, bad);
        char *cause = NULL;
        if (cfg_lua_call(L, 1, 1, &cause) != 0)
            fail_msg("bad=%d: %s", bad, cause);
        assert_int_equal(lua_tointeger(L, -1), 100001 + bad + 100000);
        lua_pop(L, 1);
    }
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_answers),
        cmocka_unit_test(test_matching_is_charged_to_the_call),
        cmocka_unit_test(test_scans_are_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
