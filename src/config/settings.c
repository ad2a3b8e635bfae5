/*
 * bbm.yaml.load(path): a settings file (secrets: worker passwords, tokens,
 * db_url) read with libyaml into Lua tables, as buildmaster-config reads
 * /etc/buildbot/settings.yaml with PyYAML.  Plain scalars are typed the way
 * PyYAML types them (null, booleans including yes/no/on/off, integers,
 * floats); quoted scalars stay strings.  The file size and nesting are
 * bounded, aliases are refused, and every error names the file and line.
 */
#include "config/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

enum { MAX_SETTINGS_BYTES = 4 << 20, MAX_DEPTH = 64 };

struct yreader {
    lua_State *L;
    yaml_parser_t parser;
    const char *path;
};

static int yfail(struct yreader *y, size_t line, const char *msg)
{
    return luaL_error(y->L, "%s:%d: %s", y->path, (int)line + 1, msg);
}

static bool next_event(struct yreader *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->parser, ev)) {
        char msg[256];
        snprintf(msg, sizeof msg, "YAML error: %s",
                 y->parser.problem != NULL ? y->parser.problem : "unknown");
        yfail(y, y->parser.problem_mark.line, msg);
    }
    return true;
}

static bool one_of(const char *s, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* True if all of `s` parses as an integer (base 10) or, with base 0, as a float. */
static bool whole(const char *s, const char *chars, int base)
{
    if (*s == '\0' || strspn(s, chars) != strlen(s))
        return false;
    char *end;
    if (base != 0)
        strtoll(s, &end, base);
    else
        strtod(s, &end);
    return *end == '\0';
}

static void push_scalar(lua_State *L, const yaml_event_t *ev)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL", "", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                        "YES",  "on",   "On",   "ON",  NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no",  "No",
                                         "NO",    "off",   "Off",   "OFF", NULL};
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        lua_pushlstring(L, s, len);
        return;
    }
    if (one_of(s, nulls)) {
        lua_pushnil(L);
    } else if (one_of(s, trues)) {
        lua_pushboolean(L, 1);
    } else if (one_of(s, falses)) {
        lua_pushboolean(L, 0);
    } else if (whole(s, "+-0123456789", 10)) {
        lua_pushinteger(L, strtoll(s, NULL, 10));
    } else if (whole(s, "+-0123456789.eE", 0)) {
        lua_pushnumber(L, strtod(s, NULL));
    } else {
        lua_pushlstring(L, s, len);
    }
}

static void read_node(struct yreader *y, yaml_event_t *ev, int depth);

static void read_collection(struct yreader *y, bool mapping, int depth)
{
    lua_State *L = y->L;
    lua_newtable(L);
    lua_Integer i = 1;
    yaml_event_t ev;
    for (;;) {
        next_event(y, &ev);
        if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return;
        }
        read_node(y, &ev, depth + 1);
        if (mapping) {
            next_event(y, &ev);
            read_node(y, &ev, depth + 1);
            if (lua_isnil(L, -2))
                lua_pop(L, 2);
            else
                lua_settable(L, -3);
        } else if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
        } else {
            lua_seti(L, -2, i++);
        }
    }
}

/* Pushes the node that starts with `ev` (which it consumes). */
static void read_node(struct yreader *y, yaml_event_t *ev, int depth)
{
    size_t line = ev->start_mark.line;
    yaml_event_type_t type = ev->type;
    if (depth > MAX_DEPTH) {
        yaml_event_delete(ev);
        yfail(y, line, "nested too deeply");
    }
    if (type == YAML_SCALAR_EVENT)
        push_scalar(y->L, ev);
    yaml_event_delete(ev);
    if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT)
        read_collection(y, type == YAML_MAPPING_START_EVENT, depth);
    else if (type == YAML_ALIAS_EVENT)
        yfail(y, line, "YAML aliases are not supported in settings files");
    else if (type != YAML_SCALAR_EVENT)
        yfail(y, line, "unexpected YAML structure");
}

static int load_protected(lua_State *L)
{
    struct yreader *y = lua_touserdata(L, 1);
    yaml_event_t ev;
    do {
        next_event(y, &ev);
        bool start = ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT;
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            lua_newtable(L);
            return 1;
        }
        if (!start)
            break;
        yaml_event_delete(&ev);
    } while (true);
    read_node(y, &ev, 0);
    return 1;
}

int cfg_yaml_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *cause = NULL;
    size_t len = 0;
    char *text = util_read_file(path, MAX_SETTINGS_BYTES, &len, &cause);
    if (text == NULL) {
        lua_pushfstring(L, "bbm.yaml.load: %s", cause);
        free(cause);
        return lua_error(L);
    }
    struct yreader y = {.L = L, .path = path};
    yaml_parser_initialize(&y.parser);
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &y);
    int rc = lua_pcall(L, 1, 1, 0);
    yaml_parser_delete(&y.parser);
    free(text);
    if (rc != LUA_OK)
        return lua_error(L);
    return 1;
}
