/*
 * libFuzzer target for the configuration loader: the input is the text of a
 * master.lua, run and validated by cfg_load_text exactly as `checkconfig`
 * does, which must end in a config or in FILE:LINE errors, without crashes or
 * leaks; a config that loads is printed as `checkconfig --dump` does, which
 * must give JSON that parses, or say why it cannot.  Only this harness fences the Lua code in: a
 * million instructions and 64 MiB, no io, os, debug, dofile, loadfile or bytecode, require limited
 * to the preloaded bbm module, and bbm.yaml.load gone, so nothing the fuzzer
 * writes can run for long or touch the filesystem.
 */
#include <jansson.h>
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

/* --dump's text is JSON, or there is a reason why not. */
static void check_dump(const struct cfg *cfg)
{
    char *cause = NULL;
    char *text = cfg_dump(cfg, &cause);
    if (text == NULL && cause == NULL)
        abort();
    json_t *v = text != NULL ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
    if (text != NULL && !json_is_object(v))
        abort();
    json_decref(v);
    free(text);
    free(cause);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct cfg_load_opts opts = {
        .max_memory = 64u << 20, .max_instructions = 1000000, .prepare = prepare};
    struct cfg *cfg = NULL;
    char *cause = NULL;
    log_set_level(LOG_ERROR);
    if (cfg_load_text("/nonexistent/master.lua", (const char *)data, size, &opts, &cfg, &cause) ==
        0) {
        check_dump(cfg);
        cfg_free(cfg);
    } else if (cause == NULL) {
        abort(); /* a refused config always says why */
    }
    free(cause);
    return 0;
}
