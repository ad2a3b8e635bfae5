/*
 * Unit tests for what master.lua prints (src/config/messages.c) when it goes to the log:
 * one log line per line of text with the file and line of the call, the levels of print,
 * bbm.log.msg and bbm.log.err, tostring's rules, the cut of a long message, and a function
 * of the config printing after the load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "util/util.h"

static char dir[] = "/tmp/bbm-msg-XXXXXX";

static const char config[] =
    "local bbm = require 'bbm'\n"
    "print('two', 'lines\\nof text', 3, nil, true)\n"
    "print()\n"
    "bbm.log.msg('msg', 1.5, setmetatable({}, { __tostring = function() return 'T' end }))\n"
    "bbm.log.err('err')\n"
    "print(string.rep('x', 10000))\n"
    "return { properties = { later = function() print('called later') end } }\n";

/* The log's lines without their time stamps. */
static char *log_text(const char *path)
{
    char *cause = NULL;
    size_t len;
    char *text = util_read_file(path, 1 << 20, &len, &cause);
    assert_non_null(text);
    struct buf out;
    buf_init(&out, 0);
    for (char *line = text; *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t n = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
        size_t stamp = strlen("2025-01-01 00:00:00+0000 ");
        if (n > stamp)
            buf_add(&out, line + stamp, n - stamp);
        line += n;
    }
    free(text);
    return buf_take(&out);
}

static void test_to_the_log(void **state)
{
    (void)state;
    char *path = xasprintf("%s/master.lua", dir), *logfile = xasprintf("%s/log", dir);
    char *cause = NULL;
    assert_int_equal(util_write_file(path, config, strlen(config), 0644, &cause), 0);
    assert_int_equal(log_open(logfile, 1 << 20, 1, &cause), 0);
    struct cfg_load_opts opts = {.log_messages = true};
    struct cfg *cfg = NULL;
    if (cfg_load_with(path, &opts, &cfg, &cause) != 0)
        fail_msg("%s", cause);
    /* a function of the config, called by the master later */
    lua_State *L = cfg->lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, cfg->properties_ref);
    lua_getfield(L, -1, "later");
    assert_int_equal(cfg_lua_call(L, 0, 0, &cause), 0);
    lua_pop(L, 1);
    log_close();
    char *got = log_text(logfile);
    char *x = xcalloc(1, 8193);
    memset(x, 'x', 8192);
    char *want = xasprintf("[info] %1$s:2: two\tlines\n"
                           "[info] %1$s:2: of text\t3\tnil\ttrue\n"
                           "[info] %1$s:3: \n"
                           "[info] %1$s:4: msg 1.5 T\n"
                           "[error] %1$s:5: err\n"
                           "[info] %1$s:6: %2$s [cut]\n"
                           "[info] %1$s:7: called later\n",
                           path, x);
    assert_string_equal(got, want);
    free(want);
    free(x);
    free(got);
    cfg_free(cfg);
    unlink(path);
    unlink(logfile);
    free(path);
    free(logfile);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_the_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
