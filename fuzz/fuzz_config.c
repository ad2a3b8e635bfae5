/*
 * libFuzzer target for the configuration loader: the input is the text of a
 * master.lua, run and validated by cfg_load_text exactly as `checkconfig`
 * does, which must end in a config or in FILE:LINE errors, without crashes or
 * leaks.  Only this harness fences the Lua code in: a million instructions
 * and 64 MiB, no io, os, debug, dofile, loadfile or bytecode, require limited
 * to the preloaded bbm module, and bbm.yaml.load gone, so nothing the fuzzer
 * writes can run for long or touch the filesystem.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"
#include "util/util.h"

static const char fence[] =
    "local real_bbm = package.preload.bbm\n"
    "package.preload.bbm = function(...)\n"
    "  local m = real_bbm(...)\n"
    "  m.yaml = nil\n"
    "  return m\n"
    "end\n"
    "package.searchers = { package.searchers[1] }\n"
    "package.loadlib, package.searchpath = nil, nil\n"
    "local text_load = load\n"
    "load = function(chunk, name, mode, env) return text_load(chunk, name, 't', env) end\n"
    "io, os, debug, dofile, loadfile = nil, nil, nil, nil, nil\n";

static void prepare(struct lua_State *L)
{
    if (luaL_dostring(L, fence) != LUA_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct cfg_load_opts opts = {
        .max_memory = 64u << 20, .max_instructions = 1000000, .prepare = prepare};
    struct cfg *cfg = NULL;
    char *cause = NULL;
    log_set_level(LOG_ERROR);
    if (cfg_load_text("/nonexistent/master.lua", (const char *)data, size, &opts, &cfg, &cause) ==
        0)
        cfg_free(cfg);
    else if (cause == NULL)
        abort(); /* a refused config always says why */
    free(cause);
    return 0;
}
