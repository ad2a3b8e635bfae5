/*
 * What master.lua says while it runs: Lua's print, and bbm.log.msg and
 * bbm.log.err, Twisted's log.msg and log.err that Buildbot configurations call
 * (their arguments joined by spaces, as log.msg joins them).
 *
 * Where it goes depends on who loaded the configuration.  At checkconfig (the
 * default) it goes to stderr as the text alone, as print would write it, so
 * that stdout holds nothing but what checkconfig prints (--dump's JSON).  In a
 * running master (cfg_load_opts.log_messages) it goes to the master's log, at
 * start and at every reconfig, as "FILE:LINE: text" at level info (print,
 * log.msg) or error (log.err), one log line per line of text; this holds for
 * the configuration's functions the master calls later too (a doStepIf that
 * prints), since the choice is kept in the Lua state.  A second load of the
 * configuration the master runs (the reports' own, cfg_load_opts.quiet_load)
 * drops what the file says as it runs, which the first load logged already.  A
 * message is cut at MESSAGE_MAX bytes.
 */
#include "config/internal.h"

#include <stdio.h>
#include <string.h>

enum { MESSAGE_MAX = 8192 };

static const char to_log_key = 'm';

void cfg_messages_to(lua_State *L, enum cfg_messages where)
{
    lua_pushinteger(L, where);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &to_log_key);
}

static enum cfg_messages where_to(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &to_log_key);
    enum cfg_messages where = (enum cfg_messages)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return where;
}

/* Every argument through tostring, joined by `sep`; pushes the text. */
static void join(lua_State *L, const char *sep)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addstring(&b, sep);
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

/* Writes the text at the top of the stack where messages go; pops it. */
static void say(lua_State *L, enum log_level level)
{
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    int shown = len > MESSAGE_MAX ? MESSAGE_MAX : (int)len;
    const char *cut = len > MESSAGE_MAX ? " [cut]" : "";
    enum cfg_messages where = where_to(L);
    if (where == CFG_MESSAGES_DROPPED) {
        lua_pop(L, 1);
        return;
    }
    if (where == CFG_MESSAGES_STDERR) {
        fprintf(stderr, "%.*s%s\n", shown, text, cut);
        lua_pop(L, 1);
        return;
    }
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    const char *p = text, *end = text + shown;
    do {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        log_write(level, "%s:%d: %.*s%s", file, line, (int)(stop - p), p, nl != NULL ? "" : cut);
        p = nl != NULL ? nl + 1 : end;
    } while (p < end);
    lua_pop(L, 1);
}

int cfg_print(lua_State *L)
{
    join(L, "\t");
    say(L, LOG_INFO);
    return 0;
}

int cfg_log_msg(lua_State *L)
{
    join(L, " ");
    say(L, LOG_INFO);
    return 0;
}

int cfg_log_err(lua_State *L)
{
    join(L, " ");
    say(L, LOG_ERROR);
    return 0;
}
