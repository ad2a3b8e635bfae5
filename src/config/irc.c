/*
 * bbm.reporters.irc: Buildbot's IRC reporter, read into cfg->ircs.  bbm.c checks
 * the types of its parameters; this file takes their values, refuses the
 * parameters bbmaster does not implement (useRevisions,
 * Twisted's fixed reconnect delays) at the line of the call, checks
 * notify_events against the names Buildbot takes, and reads the commands'
 * authz (or the deprecated allowForce and allowShutdown) as Buildbot's checkConfig does.  The bot
 * itself is src/reporters/irc.c; what it says is decided in src/engine/reportirc.c.
 */
#include "config/internal.h"
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters bbm.c lets through to be refused here; `false_ok` when false is what
   bbmaster does anyway. */
static const struct {
    const char *key;
    bool false_ok;
    const char *why;
} refused[] = {
    {"useRevisions", true, "messages name builds, not revisions"},
    {"lostDelay", false, "bbmaster reconnects with exponential backoff"},
    {"failedDelay", false, "bbmaster reconnects with exponential backoff"},
};

#define CTOR "bbm.reporters.irc"

static void check_refused(lua_State *L, int idx, const char *file, int line)
{
    for (size_t i = 0; i < UTIL_NELEM(refused); i++) {
        int t = lua_getfield(L, idx, refused[i].key);
        bool ok =
            t == LUA_TNIL || (refused[i].false_ok && t == LUA_TBOOLEAN && !lua_toboolean(L, -1));
        if (!ok)
            cfg_error(L, file, line, CTOR ": '%s' is not implemented by bbmaster: %s",
                      refused[i].key, refused[i].why);
        lua_pop(L, 1);
    }
}

static char *opt_string(lua_State *L, int idx, const char *key, const char *def)
{
    lua_getfield(L, idx, key);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : def;
    char *v = s != NULL ? xstrdup(s) : NULL;
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int idx, const char *key, bool def)
{
    bool v = lua_getfield(L, idx, key) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

/* A name that a line cannot abuse: no space, comma, CR, LF or NUL, and not empty. */
static bool plain_word(const char *s)
{
    return s[0] != '\0' && strlen(s) < 200 && strpbrk(s, " ,\r\n\a") == NULL;
}

static void add_target(lua_State *L, struct cfg_irc *irc, const char *name, const char *key,
                       const char *file, int line)
{
    if (irc->n_targets == CFG_IRC_TARGETS_MAX) {
        cfg_error(L, file, line, CTOR ": more than %d channels and nicks", CFG_IRC_TARGETS_MAX);
        return;
    }
    if (!plain_word(name) || (key != NULL && !plain_word(key))) {
        cfg_error(L, file, line, CTOR ": \"%s\" is not a channel or nick name", name);
        return;
    }
    irc->targets[irc->n_targets] = xstrdup(name);
    irc->keys[irc->n_targets++] = key != NULL ? xstrdup(key) : NULL;
}

/* channels: names, or {channel = ..., password = ...} as Buildbot's dicts. */
static void read_channels(lua_State *L, int idx, struct cfg_irc *irc, const char *file, int line)
{
    lua_Integer n = lua_getfield(L, idx, "channels") == LUA_TTABLE ? luaL_len(L, -1) : 0;
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_geti(L, -1, i);
        if (t == LUA_TSTRING) {
            add_target(L, irc, lua_tostring(L, -1), NULL, file, line);
        } else if (t == LUA_TTABLE && lua_getfield(L, -1, "channel") == LUA_TSTRING) {
            const char *key =
                lua_getfield(L, -2, "password") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            add_target(L, irc, lua_tostring(L, -2), key, file, line);
            lua_pop(L, 2);
        } else {
            if (t == LUA_TTABLE)
                lua_pop(L, 1);
            cfg_error(L, file, line,
                      CTOR ": channels[%lld] must be a name or {channel = ..., password = ...}",
                      (long long)i);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    irc->n_channels = irc->n_targets;
    if (lua_getfield(L, idx, "pm_to_nicks") == LUA_TTABLE) {
        n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti(L, -1, i) == LUA_TSTRING)
                add_target(L, irc, lua_tostring(L, -1), NULL, file, line);
            lua_pop(L, 1);
        }
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        add_target(L, irc, lua_tostring(L, -1), NULL, file, line);
    }
    lua_pop(L, 1);
}

/* notify_events: Buildbot's names ("worker": missing workers, src/engine/missing.c). */
static void read_events(lua_State *L, int idx, struct cfg_irc *irc, const char *file, int line)
{
    int t = lua_getfield(L, idx, "notify_events");
    lua_Integer n = t == LUA_TTABLE ? luaL_len(L, -1) : t == LUA_TSTRING ? 1 : 0;
    for (lua_Integer i = 1; i <= n; i++) {
        if (t == LUA_TTABLE)
            lua_geti(L, -1, i);
        else
            lua_pushvalue(L, -1);
        const char *name = lua_tostring(L, -1);
        uint32_t bit = name != NULL ? rep_irc_event(name) : 0;
        if (bit == 0)
            cfg_error(L, file, line, CTOR ": notify_events: \"%s\" is not an event of Buildbot's",
                      name != NULL ? name : "?");
        irc->events |= bit;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void read_tags(lua_State *L, int idx, struct cfg_irc *irc)
{
    int t = lua_getfield(L, idx, "tags");
    if (t == LUA_TTABLE || t == LUA_TSTRING) {
        lua_Integer n = t == LUA_TTABLE ? luaL_len(L, -1) : 1;
        irc->tags = xcalloc(n > 0 ? (size_t)n : 1, sizeof *irc->tags);
        for (lua_Integer i = 1; i <= n; i++) {
            if (t == LUA_TTABLE)
                lua_geti(L, -1, i);
            else
                lua_pushvalue(L, -1);
            if (lua_type(L, -1) == LUA_TSTRING)
                irc->tags[irc->n_tags++] = xstrdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Buildbot's IRC commands that bbmaster's bot does not have. */
static const char *const missing_commands[] = {"source"};

/* An authz key: a command of the bot's, or "", "!", "*". */
static bool authz_key(lua_State *L, const char *key, const char *file, int line)
{
    char lc[64];
    size_t n = strlen(key);
    if (n >= sizeof lc) {
        cfg_error(L, file, line, CTOR ": authz: '%.40s...' is not a command of the bot", key);
        return false;
    }
    for (size_t i = 0; i <= n; i++)
        lc[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] - 'A' + 'a' : key[i]);
    static const char *const known[] = {
        "",         "!",      "*",    "commands", "dance",   "destroy", "hustle", "force",
        "hello",    "help",   "join", "last",     "leave",   "list",    "mute",   "notify",
        "shutdown", "status", "stop", "unmute",   "version", "watch"};
    for (size_t i = 0; i < UTIL_NELEM(known); i++)
        if (strcmp(known[i], lc) == 0)
            return true;
    for (size_t i = 0; i < UTIL_NELEM(missing_commands); i++)
        if (strcmp(missing_commands[i], lc) == 0) {
            cfg_error(L, file, line,
                      CTOR ": authz: the bot's '%s' command is not implemented by "
                           "bbmaster",
                      lc);
            return false;
        }
    cfg_error(L, file, line, CTOR ": authz: '%s' is not a command of the bot", key);
    return false;
}

/* false when the table is full */
static bool add_acl(struct cfg_irc *irc, const char *key, bool all, char **nicks, size_t n)
{
    char *lc = xstrdup(key);
    for (char *p = lc; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    struct cfg_irc_acl *a = NULL;
    for (size_t i = 0; i < irc->n_authz; i++)
        if (strcmp(irc->authz[i].command, lc) == 0)
            a = &irc->authz[i];
    if (a == NULL && irc->n_authz == CFG_IRC_AUTHZ_MAX) {
        free(lc);
        return false;
    }
    if (a == NULL) {
        a = &irc->authz[irc->n_authz++];
        a->command = lc;
    } else {
        free(lc);
        for (size_t j = 0; j < a->n_nicks; j++)
            free(a->nicks[j]);
        free(a->nicks);
    }
    a->all = all;
    a->nicks = xcalloc(n + 1, sizeof *a->nicks);
    for (size_t j = 0; j < n; j++) {
        a->nicks[j] = xstrdup(nicks[j]);
        for (char *p = a->nicks[j]; *p != '\0'; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    a->n_nicks = n;
    return true;
}

/* The value on top of the stack: true, false or a list of nicks; the nicks into `nicks`. */
static int acl_value(lua_State *L, bool *all, char **nicks, size_t *n)
{
    *n = 0;
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
        *all = lua_toboolean(L, -1);
        return 0;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        return -1;
    *all = false;
    lua_Integer len = luaL_len(L, -1);
    if (len > CFG_IRC_AUTHZ_NICKS_MAX)
        return -1;
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        count++;
        lua_pop(L, 1);
    }
    if ((lua_Integer)count != len)
        return -1; /* not a list */
    for (lua_Integer i = 1; i <= len; i++) {
        bool ok = lua_geti(L, -1, i) == LUA_TSTRING && plain_word(lua_tostring(L, -1));
        if (ok)
            nicks[(*n)++] = (char *)lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays referenced by the table */
        if (!ok)
            return -1;
    }
    return 0;
}

/* authz = {command = true | false | {nicks}, [{"force", "stop"}] = ...}: Buildbot's. */
static void read_authz(lua_State *L, int idx, struct cfg_irc *irc, const char *file, int line)
{
    irc->authz = xcalloc(CFG_IRC_AUTHZ_MAX, sizeof *irc->authz);
    int t = lua_getfield(L, idx, "authz");
    lua_getfield(L, idx, "allowForce");
    lua_getfield(L, idx, "allowShutdown");
    bool force_given = !lua_isnil(L, -2), shutdown_given = !lua_isnil(L, -1);
    if (force_given && !lua_isboolean(L, -2))
        cfg_error(L, file, line, CTOR ": allowForce must be boolean, not %s", luaL_typename(L, -2));
    if (t != LUA_TNIL && force_given)
        cfg_error(L, file, line,
                  CTOR ": If you specify authz, you must not use allowForce anymore");
    if (t != LUA_TNIL && shutdown_given)
        cfg_error(L, file, line,
                  CTOR ": If you specify authz, you must not use allowShutdown anymore");
    if (shutdown_given && !lua_isboolean(L, -1))
        cfg_error(L, file, line, CTOR ": allowShutdown must be boolean, not %s",
                  luaL_typename(L, -1));
    if (t == LUA_TNIL && force_given && lua_isboolean(L, -2)) {
        add_acl(irc, "force", lua_toboolean(L, -2), NULL, 0);
        add_acl(irc, "stop", lua_toboolean(L, -2), NULL, 0);
    }
    if (t == LUA_TNIL && shutdown_given && lua_isboolean(L, -1))
        add_acl(irc, "shutdown", lua_toboolean(L, -1), NULL, 0);
    lua_pop(L, 2);
    if (t != LUA_TNIL && t != LUA_TTABLE)
        cfg_error(L, file, line, CTOR ": authz must be a table of commands");
    if (t != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    char **nicks = xcalloc(CFG_IRC_AUTHZ_NICKS_MAX + 1, sizeof *nicks);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        bool all = false;
        size_t n = 0;
        if (acl_value(L, &all, nicks, &n) != 0) {
            cfg_error(L, file, line,
                      CTOR ": authz values must be bool or a list of nicks (at most %d)",
                      CFG_IRC_AUTHZ_NICKS_MAX);
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            if (authz_key(L, lua_tostring(L, -2), file, line) &&
                !add_acl(irc, lua_tostring(L, -2), all, nicks, n))
                cfg_error(L, file, line, CTOR ": authz: more than %d entries", CFG_IRC_AUTHZ_MAX);
        } else if (lua_type(L, -2) == LUA_TTABLE) { /* a tuple of commands */
            lua_Integer len = luaL_len(L, -2);
            for (lua_Integer i = 1; i <= len && i <= CFG_IRC_AUTHZ_MAX; i++) {
                if (lua_geti(L, -2, i) == LUA_TSTRING &&
                    authz_key(L, lua_tostring(L, -1), file, line) &&
                    !add_acl(irc, lua_tostring(L, -1), all, nicks, n))
                    cfg_error(L, file, line, CTOR ": authz: more than %d entries",
                              CFG_IRC_AUTHZ_MAX);
                else if (lua_type(L, -1) != LUA_TSTRING)
                    cfg_error(L, file, line,
                              CTOR ": authz: a key must be a command or a list of "
                                   "commands");
                lua_pop(L, 1);
            }
        } else {
            cfg_error(L, file, line, CTOR ": authz: a key must be a command or a list of commands");
        }
        lua_pop(L, 1);
    }
    free(nicks);
    lua_pop(L, 1);
}

static void check_name(lua_State *L, const struct cfg *cfg, const struct cfg_irc *irc)
{
    for (size_t i = 0; i + 1 < cfg->n_ircs; i++)
        if (strcmp(cfg->ircs[i].name, irc->name) == 0)
            cfg_error(L, irc->file, irc->line,
                      "services: a second reporter named '%s' (the first is at %s:%d); give "
                      "one a name=",
                      irc->name, cfg->ircs[i].file, cfg->ircs[i].line);
    for (size_t i = 0; i < cfg->n_reporters; i++)
        if (strcmp(cfg->reporters[i].name, irc->name) == 0)
            cfg_error(L, irc->file, irc->line,
                      "services: a second reporter named '%s' (the first is at %s:%d); give "
                      "one a name=",
                      irc->name, cfg->reporters[i].file, cfg->reporters[i].line);
}

void cfg_read_irc(lua_State *L, int idx, struct cfg *cfg, const char *file, int line)
{
    struct cfg_irc *irc = &cfg->ircs[cfg->n_ircs++];
    irc->file = xstrdup(file);
    irc->line = line;
    check_refused(L, idx, file, line);
    irc->name = opt_string(L, idx, "name", "IRC");
    irc->host = opt_string(L, idx, "host", "");
    irc->nick = opt_string(L, idx, "nick", "");
    irc->password = opt_string(L, idx, "password", NULL);
    if ((irc->host[0] != '\0' && !plain_word(irc->host)) ||
        (irc->nick[0] != '\0' && !plain_word(irc->nick)) ||
        (irc->password != NULL && strpbrk(irc->password, "\r\n") != NULL))
        cfg_error(L, file, line, CTOR ": 'host', 'nick' and 'password' must be one word each");
    lua_getfield(L, idx, "port");
    irc->port = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 6667;
    lua_pop(L, 1);
    if (irc->port < 1 || irc->port > 65535)
        cfg_error(L, file, line, CTOR ": 'port' must be between 1 and 65535, not %d", irc->port);
    irc->targets = xcalloc(CFG_IRC_TARGETS_MAX, sizeof *irc->targets);
    irc->keys = xcalloc(CFG_IRC_TARGETS_MAX, sizeof *irc->keys);
    read_channels(L, idx, irc, file, line);
    read_events(L, idx, irc, file, line);
    read_tags(L, idx, irc);
    read_authz(L, idx, irc, file, line);
    irc->use_colors = opt_bool(L, idx, "useColors", true);
    irc->notice = opt_bool(L, idx, "noticeOnChannel", false);
    irc->use_sasl = opt_bool(L, idx, "useSASL", false);
    irc->use_ssl = opt_bool(L, idx, "useSSL", false);
    check_name(L, cfg, irc);
}

void cfg_free_irc(struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_ircs; i++) {
        struct cfg_irc *irc = &cfg->ircs[i];
        for (size_t j = 0; j < irc->n_targets; j++) {
            free(irc->targets[j]);
            free(irc->keys[j]);
        }
        for (size_t j = 0; j < irc->n_tags; j++)
            free(irc->tags[j]);
        for (size_t j = 0; j < irc->n_authz; j++) {
            for (size_t k = 0; k < irc->authz[j].n_nicks; k++)
                free(irc->authz[j].nicks[k]);
            free(irc->authz[j].nicks);
            free(irc->authz[j].command);
        }
        free(irc->authz);
        free(irc->targets);
        free(irc->keys);
        free(irc->tags);
        free(irc->name);
        free(irc->host);
        free(irc->nick);
        free(irc->password);
        free(irc->file);
    }
    free(cfg->ircs);
    cfg->ircs = NULL;
    cfg->n_ircs = 0;
}
