/*
 * libFuzzer target for bbm.re (src/config/luare.c) over the strings it is run on: the input is
 * a test log as a build writes it, and every call CPython's testsuite_utils makes is run on
 * it (findall of the traceback, failed-tests, leaks and subtests patterns, finditer, search,
 * sub with a template and a function, split).  Each run must end in results or a Lua error
 * of the module's (a limit), never a crash, a leak or a hang past the call's budget.
 */
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/util.h"

static const char script[] =
    "local re = require('bbm').re\n"
    "local T = re.compile([[\n"
    "     Traceback\n"
    "     [\\s\\S]+?\n"
    "     (?=^(?:\\d|test|\\Z|\\n|ok))\n"
    "]], re.MULTILINE | re.VERBOSE)\n"
    "local F = re.compile([[\n"
    "     ^\\d+\\stests?\\sfailed:\n"
    "     [\\s\\S]+?\n"
    "     (?=^(?:\\d|test|\\Z|Total))\n"
    "]], re.MULTILINE | re.VERBOSE)\n"
    "local L = re.compile([[(test_\\w+) leaked \\[.*] (.*),.*]], re.MULTILINE)\n"
    "local S = re.compile([[=+\\n[A-Z]+:\\s(\\w+)\\s\\((.*?)\\).*\\n*.*-+]], re.M | re.X)\n"
    "function run(s)\n"
    "  local n = #T:findall(s) + #F:findall(s) + #L:findall(s) + #S:findall(s)\n"
    "  for m in re.finditer('== Tests result', s) do n = n + m:start() end\n"
    "  local m = re.search('(?P<a>\\\\w+)(\\\\d)?', s)\n"
    "  if m then local _ = m:groups() ; _ = m:span('a') end\n"
    "  local out = re.sub('(\\\\w)(\\\\d)?', '<\\\\1\\\\g<2>>', s)\n"
    "  out = re.sub('x*', function(mm) return mm:group() .. '.' end, s)\n"
    "  return n + #out + #re.split('(e)|o', s)\n"
    "end\n"
    "return { workers = {} }\n";

static struct cfg *cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *cause = NULL;
    if (cfg == NULL && cfg_load_text("fuzz_re.lua", script, strlen(script), NULL, &cfg, &cause)) {
        fprintf(stderr, "%s\n", cause);
        abort();
    }
    lua_State *L = cfg->lua;
    lua_getglobal(L, "run");
    lua_pushlstring(L, (const char *)data, size);
    if (cfg_lua_call(L, 1, 1, &cause) == 0)
        lua_pop(L, 1);
    else if (strstr(cause, "bbm.re") == NULL && strstr(cause, "budget") == NULL) {
        fprintf(stderr, "%s\n", cause); /* an error that is not a limit of the module's */
        abort();
    }
    free(cause);
    return 0;
}
