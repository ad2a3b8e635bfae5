/*
 * Unit tests for cfg_dump (src/config/dump.c): the exact text of a small config, how each
 * kind of Lua value prints, which values are masked as secrets, and the errors for what
 * cannot be printed (a cycle, too deep, too many values).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "util/util.h"

static char dir[] = "/tmp/bbm-dump-XXXXXX";

/* cfg_dump of master.lua `text`: the JSON text, or NULL with *cause. */
static char *dump(const char *text, char **cause)
{
    char *path = xasprintf("%s/master.lua", dir);
    *cause = NULL;
    assert_int_equal(util_write_file(path, text, strlen(text), 0644, cause), 0);
    struct cfg *cfg = NULL;
    if (cfg_load(path, &cfg, cause) != 0)
        fail_msg("%s", *cause);
    free(path);
    char *out = cfg_dump(cfg, cause);
    cfg_free(cfg);
    return out;
}

/* The `properties` of the dump of a config that sets only `properties = PROPS`. */
static json_t *properties(const char *props)
{
    char *text = xasprintf("local bbm = require 'bbm'\nreturn { properties = %s }\n", props);
    char *cause;
    char *out = dump(text, &cause);
    if (out == NULL)
        fail_msg("%s", cause);
    json_t *root = json_loads(out, 0, NULL);
    assert_non_null(root);
    json_t *p = json_incref(json_object_get(root, "properties"));
    json_decref(root);
    free(out);
    free(text);
    return p;
}

static void assert_json(json_t *got, const char *expected)
{
    json_t *want = json_loads(expected, 0, NULL);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        fail_msg("got %s\nwant %s", g, expected);
    }
    json_decref(want);
    json_decref(got);
}

static void test_text(void **state)
{
    (void)state;
    char *cause;
    char *out =
        dump("return { title = 'T', workers = {}, properties = { b = 1.5, a = true } }\n", &cause);
    assert_string_equal(out, "{\n"
                             "  \"builders\": [],\n"
                             "  \"properties\": {\n"
                             "    \"a\": true,\n"
                             "    \"b\": 1.5\n"
                             "  },\n"
                             "  \"schedulers\": [],\n"
                             "  \"title\": \"T\",\n"
                             "  \"workers\": []\n"
                             "}\n");
    free(out);
}

static void test_values(void **state)
{
    (void)state;
    assert_json(properties("{ list = { 'a', 2 }, mixed = { 10, 20, x = 3 }, hole = { 1, nil, 3 },"
                           "  empty = {}, [7] = 'seven', [true] = 'yes', [0.5] = 'half' }"),
                "{\"list\": [\"a\", 2], \"mixed\": {\"1\": 10, \"2\": 20, \"x\": 3},"
                " \"hole\": {\"1\": 1, \"3\": 3}, \"empty\": {}, \"7\": \"seven\","
                " \"true\": \"yes\", \"0.5\": \"half\"}");
    assert_json(properties("{ big = 9007199254740993, f = 0.1, inf = 1/0, ninf = -1/0,"
                           "  nan = 0/0, bytes = 'a\\255b', utf8 = 'caf\\u{e9}' }"),
                "{\"big\": 9007199254740993, \"f\": 0.1, \"inf\": \"inf\", \"ninf\": \"-inf\","
                " \"nan\": \"nan\", \"bytes\": \"a\\ufffdb\", \"utf8\": \"caf\\u00e9\"}");
    assert_json(
        properties("{ fn = print, co = coroutine.create(print),"
                   "  i = bbm.interpolate('%(prop:x)s'),"
                   "  ia = bbm.interpolate('%s-%s', 'a', bbm.interpolate('b')),"
                   "  p = bbm.params.string{ name = 'n', default = 'd' },"
                   "  cb = bbm.params.codebase('c'),"
                   "  cf = bbm.change_filter{ branch = { 'main', '3.x' } } }"),
        "{\"fn\": {\"function\": true}, \"co\": {\"thread\": true},"
        " \"i\": {\"interpolate\": \"%(prop:x)s\"},"
        " \"ia\": {\"interpolate\": \"%s-%s\", \"args\": [\"a\", {\"interpolate\": \"b\"}]},"
        " \"p\": {\"kind\": \"params.string\", \"name\": \"n\", \"default\": \"d\"},"
        " \"cb\": {\"kind\": \"params.codebase\", \"codebase\": \"c\"},"
        " \"cf\": {\"kind\": \"change_filter\", \"branch\": [\"main\", \"3.x\"]}}");
}

static void test_secrets(void **state)
{
    (void)state;
    assert_json(properties("{ Password = 'x', GITHUB_TOKEN = 'x', sshPrivateKey = 'x',"
                           "  db = { passwd = { 'x' } }, populated_secret_list = { { 'a', 'x' } },"
                           "  url = 'https://bot:x@github.com/a/b.git',"
                           "  pg = 'postgresql://bb:x:y@db:5432/bb', user = 'https://bot@h/x',"
                           "  query = 'https://h/x?a=b:c@d', ssh = 'ssh://git@github.com:22/x',"
                           "  plain = 'user:x@host' }"),
                "{\"Password\": \"<secret>\", \"GITHUB_TOKEN\": \"<secret>\","
                " \"sshPrivateKey\": \"<secret>\", \"db\": {\"passwd\": \"<secret>\"},"
                " \"populated_secret_list\": \"<secret>\","
                " \"url\": \"https://bot:<secret>@github.com/a/b.git\","
                " \"pg\": \"postgresql://bb:<secret>@db:5432/bb\", \"user\": \"https://bot@h/x\","
                " \"query\": \"https://h/x?a=b:c@d\", \"ssh\": \"ssh://git@github.com:22/x\","
                " \"plain\": \"user:x@host\"}");
}

static void assert_refused(const char *props, const char *expected)
{
    char *text = xasprintf("local bbm = require 'bbm'\n"
                           "local t = {}\n"
                           "return { properties = %s }\n",
                           props);
    char *cause;
    char *out = dump(text, &cause);
    assert_null(out);
    char *want = xasprintf("%s/master.lua%s", dir, expected);
    assert_string_equal(cause, want);
    free(want);
    free(cause);
    free(text);
}

static void test_limits(void **state)
{
    (void)state;
    /* a cycle through a constructor: the error has the constructor's line */
    assert_refused(
        "(function() local p = bbm.params.string{ name = 'n', default = {} }\n"
        "  p.default.back = p; return { p = p } end)()",
        ":3: properties.p.default.back: the table contains itself (a cycle), which cannot be "
        "printed");
    assert_refused("(function() t.top = t; return t end)()",
                   ": properties.top: the table contains itself (a cycle), which cannot be "
                   "printed");
    assert_refused("(function() for i = 1, 31 do t = { t } end; return t end)()",
                   ": properties[1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]"
                   "[1][1][1][1][1][1][1][1][1][1]: tables are nested more than 32 deep, which "
                   "--dump refuses");
    /* a table shared over and over: 2^22 values from 22 tables */
    char *cause;
    char *out = dump("local t = { 1 }\nfor i = 1, 21 do t = { t, t } end\n"
                     "return { properties = t }\n",
                     &cause);
    assert_null(out);
    char *start = xasprintf("%s/master.lua: properties[1][1][", dir);
    if (!util_startswith(cause, start) ||
        strstr(cause, "]: more than 1000000 values to print (a table shared many times over?)") ==
            NULL)
        fail_msg("%s", cause);
    free(start);
    free(cause);
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
    char *path = xasprintf("%s/master.lua", dir);
    unlink(path);
    free(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
