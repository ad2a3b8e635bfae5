/*
 * The configuration of the reporters that post a message rather than a commit
 * status: HttpStatusPush (bbm.reporters.http_status_push: serverUrl, headers and
 * auth, read into "Name: value" lines the outbox sends) and GitHubCommentPush
 * (whose token and baseURL reporters.c reads as GitHubStatusPush's), the
 * MessageFormatterFunction their generators may use, and Buildbot 4.3's default
 * generators of both.  Everything a header line carries is checked here, so
 * that a value cannot add a line of its own to a request.
 */
#include "config/internal.h"
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTOR "bbm.reporters.http_status_push"

static char *base64(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    util_base64(s, n, out);
    return out;
}

/* A header name is an HTTP token; a value has no control characters (no CR, no LF). */
static bool header_ok(const char *name, const char *value)
{
    if (name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p) != NULL)
            return false;
    for (const char *p = value; *p != '\0'; p++)
        if ((unsigned char)*p < ' ' && *p != '\t')
            return false;
    return true;
}

static void add_header(struct cfg_reporter *rep, size_t *n, char *line)
{
    rep->headers = xrealloc(rep->headers, (*n + 2) * sizeof *rep->headers);
    rep->headers[(*n)++] = line;
    rep->headers[*n] = NULL;
}

/* headers = { ["Name"] = "value", ... } */
static void read_headers(lua_State *L, int idx, struct cfg_reporter *rep, size_t *n,
                         const char *file, int line)
{
    if (lua_getfield(L, idx, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (k == NULL || v == NULL || !header_ok(k, v))
                cfg_error(L, file, line,
                          CTOR ": 'headers' must map header names to values without line "
                               "breaks");
            else if (*n >= CFG_REP_HEADERS_MAX)
                cfg_error(L, file, line, CTOR ": more than %d headers", CFG_REP_HEADERS_MAX);
            else
                add_header(rep, n, xasprintf("%s: %s", k, v));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* auth = { "user", "password" }: requests' HTTP basic authentication. */
static void read_auth(lua_State *L, int idx, struct cfg_reporter *rep, size_t *n, const char *file,
                      int line)
{
    if (lua_getfield(L, idx, "auth") == LUA_TTABLE) {
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING ||
            luaL_len(L, -3) != 2 || strchr(lua_tostring(L, -2), ':') != NULL) {
            cfg_error(L, file, line,
                      CTOR ": 'auth' must be { user, password } (HTTP basic authentication; "
                           "the user without ':')");
        } else {
            char *pair = xasprintf("%s:%s", lua_tostring(L, -2), lua_tostring(L, -1));
            char *b64 = base64(pair);
            add_header(rep, n, xasprintf("Authorization: Basic %s", b64));
            free(b64);
            free(pair);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

void cfg_read_http_push(lua_State *L, int idx, struct cfg_reporter *rep, const char *file, int line)
{
    lua_getfield(L, idx, "serverUrl");
    const char *url = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    rep->base_url = xstrdup(url);
    rep->token = xstrdup("");
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        strlen(url) > 2048 || strpbrk(url, " \t\r\n") != NULL)
        cfg_error(L, file, line,
                  CTOR ": 'serverUrl' must be an http:// or https:// URL (at most 2048 bytes, "
                       "no spaces), not \"%.100s\"",
                  url);
    lua_pop(L, 1);
    size_t n = 0;
    rep->headers = xcalloc(1, sizeof *rep->headers);
    read_headers(L, idx, rep, &n, file, line);
    read_auth(L, idx, rep, &n, file, line);
    rep->verbose = true; /* Buildbot logs every refused post */
}

struct cfg_formatter *cfg_read_function_formatter(lua_State *L, int idx, const char *file, int line)
{
    struct cfg_formatter *f = xcalloc(1, sizeof *f);
    f->function = true;
    f->want_properties = true;
    lua_getfield(L, idx, "template_type");
    const char *tt = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    f->json = strcmp(tt, "json") == 0;
    f->html = strcmp(tt, "html") == 0;
    if (!f->json && !f->html && strcmp(tt, "plain") != 0)
        cfg_error(L, file, line,
                  "bbm.reporters.message_formatter_function: template_type \"%s\" is not "
                  "\"plain\", \"html\" or \"json\"",
                  tt);
    lua_pop(L, 1);
    static const char *const flags[] = {"want_properties", "want_steps", "want_logs"};
    bool *vals[] = {&f->want_properties, &f->want_steps, &f->want_logs};
    for (size_t i = 0; i < UTIL_NELEM(flags); i++) {
        if (lua_getfield(L, idx, flags[i]) == LUA_TBOOLEAN)
            *vals[i] = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    cfg_read_logs_content(L, idx, f, file, line);
    return f;
}

void cfg_read_logs_content(lua_State *L, int idx, struct cfg_formatter *f, const char *file,
                           int line)
{
    int t = lua_getfield(L, idx, "want_logs_content");
    if (t == LUA_TBOOLEAN) {
        f->logs_content_all = lua_toboolean(L, -1);
    } else if (t == LUA_TSTRING || t == LUA_TTABLE) {
        f->logs_content = cfg_string_list(L, idx, "want_logs_content", &f->n_logs_content, true);
        if (f->logs_content == NULL)
            f->logs_content = xcalloc(1, sizeof *f->logs_content);
    } else if (t != LUA_TNIL) {
        cfg_error(L, file, line,
                  "want_logs_content must be true, false or a list of log names (\"name\" or "
                  "\"step.name\"), not a %s",
                  luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    if (f->logs_content_all || f->logs_content != NULL)
        f->want_steps = f->want_logs = true;
}

/*
 * HttpStatusPush: BuildStatusGenerator(message_formatter=MessageFormatterFunction(lambda
 * context: context['build'], 'json'), report_new=True) for every builder.
 * GitHubCommentPush: BuildStartEndStatusGenerator with no start text and "Build done.".
 * Their `ref` is LUA_NOREF: the engine knows them by that.
 */
void cfg_push_default_generators(struct cfg_reporter *rep)
{
    rep->generators = xcalloc(1, sizeof *rep->generators);
    rep->n_generators = 1;
    struct cfg_generator *g = &rep->generators[0];
    g->ref = LUA_NOREF;
    if (rep->kind == CFG_REP_GITHUB_COMMENT) {
        g->kind = CFG_GEN_START_END;
        return;
    }
    static const char *const def[] = {"failing", "passing", "warnings"};
    g->kind = CFG_GEN_STATUS;
    g->report_new = true;
    g->mode_names = xcalloc(UTIL_NELEM(def), sizeof *g->mode_names);
    for (size_t i = 0; i < UTIL_NELEM(def); i++)
        g->mode_names[g->n_mode_names++] = xstrdup(def[i]);
    char *cause = NULL;
    rep_modes_parse(def, UTIL_NELEM(def), false, &g->modes, &cause);
    free(cause);
    g->fmt = xcalloc(1, sizeof *g->fmt);
    g->fmt->function = g->fmt->json = g->fmt->want_properties = true;
}
