/*
 * Unit tests for the config module: the sample loads, a realistic config
 * lands in the right C fields, every broken config gives its exact message
 * with the line of the offending call, settings.yaml is read with PyYAML's
 * typing, a fleet-sized config (100 workers, 1,000 builders) loads, and a run-time
 * call into the config's Lua stays within its instruction budget and memory cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>

#include "config/config.h"
#include "util/util.h"

static char dir[] = "/tmp/bbm-cfg-XXXXXX";

static char *write_tmp(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    char *cause = NULL;
    assert_int_equal(util_write_file(path, text, strlen(text), 0644, &cause), 0);
    return path;
}

/* Loads `text` as master.lua; returns the config or NULL with *errors. */
static struct cfg *load_with(const char *text, const struct cfg_load_opts *opts, char **errors)
{
    char *path = write_tmp("master.lua", text);
    struct cfg *cfg = NULL;
    *errors = NULL;
    if (cfg_load_with(path, opts, &cfg, errors) != 0)
        cfg = NULL;
    free(path);
    return cfg;
}

static struct cfg *load(const char *text, char **errors)
{
    return load_with(text, NULL, errors);
}

static void test_sample_loads(void **state)
{
    (void)state;
    char *errors;
    struct cfg *cfg = load(cfg_sample_master_lua, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_int_equal(cfg->pb_port, 9989);
    assert_int_equal(cfg->www_port, 8010);
    assert_string_equal(cfg->workers[0].name, "example-worker");
    assert_string_equal(cfg->db_url, "sqlite:///state.sqlite");
    cfg_free(cfg);
}

static const char good[] =
    "local bbm = require 'bbm'\n"
    "local f = bbm.factory{ bbm.steps.shell{ command = {'make'}, haltOnFailure = true } }\n"
    "f:addStep(bbm.steps.test{ command = 'make test', timeout = 1200 })\n"
    "return {\n"
    "  title = 'CPython', protocols = { pb = { port = 'tcp:9990:interface=127.0.0.1' } },\n"
    "  workers = { bbm.worker('w1', 'p1', { max_builds = 2,\n"
    "                                       ping_interval = 60 }),\n"
    "              bbm.worker('w2', 'p2') },\n"
    "  builders = { bbm.builder{ name = 'x86 Debian 3.x', workernames = {'w1', 'w2'},\n"
    "                            factory = f, tags = {'3.x', 'stable'},\n"
    "                            description = 'd', description_format = 'markdown' },\n"
    "               bbm.builder{ name = 'b2', workername = 'w2', builddir = 'bd',\n"
    "                            factory = f } },\n"
    "  schedulers = { bbm.schedulers.single_branch{ name = 's', builderNames = {'b2'},\n"
    "                   treeStableTimer = 60, change_filter = bbm.change_filter{ branch = 'main' "
    "},\n"
    "                   fileIsImportant = function(c) return true end } },\n"
    "}\n";

static void test_model(void **state)
{
    (void)state;
    char *errors;
    struct cfg *cfg = load(good, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_string_equal(cfg->title, "CPython");
    assert_int_equal(cfg->pb_port, 9990);
    assert_string_equal(cfg->pb_interface, "127.0.0.1");
    assert_int_equal(cfg->n_workers, 2);
    assert_int_equal(cfg->workers[0].max_builds, 2);
    assert_int_equal(cfg->workers[1].keepalive_interval, 3600);
    assert_int_equal(cfg->workers[0].ping_interval, 60);
    assert_int_equal(cfg->workers[0].ping_timeout, CFG_PING_TIMEOUT_DEFAULT);
    assert_int_equal(cfg->workers[1].ping_interval, 0); /* off unless given */
    assert_int_equal(cfg->workers[0].line, 6);
    const struct cfg_builder *b = cfg_find_builder(cfg, "x86 Debian 3.x");
    assert_non_null(b);
    assert_string_equal(b->builddir, "x86_Debian_3_x"); /* Buildbot's safeTranslate */
    assert_string_equal(b->workerbuilddir, "x86_Debian_3_x");
    assert_int_equal(b->n_workernames, 2);
    assert_int_equal(b->n_tags, 2);
    assert_string_equal(b->description_format, "markdown");
    assert_int_equal(b->n_steps, 2);
    b = cfg_find_builder(cfg, "b2");
    assert_string_equal(b->workernames[0], "w2");
    assert_string_equal(b->workerbuilddir, "bd");
    assert_int_equal(cfg->n_schedulers, 1);
    assert_string_equal(cfg->schedulers[0].kind, "single_branch");
    assert_null(cfg_find_worker(cfg, "w3"));
    assert_string_equal(cfg->title_url, "http://buildbot.net/");
    cfg_free(cfg);
}

/* www.release_cycle: a file relative to master.lua's directory; one that cannot be read now
   loads with a warning (a cron job may be about to write it). */
static void test_release_cycle(void **state)
{
    (void)state;
    static const char text[] = "return {\n  workers = {},\n"
                               "  www = { port = 8010,\n    release_cycle = 'cycle.json' },\n}\n";
    char *errors;
    char *cycle = xasprintf("%s/cycle.json", dir);
    unlink(cycle);
    struct cfg *cfg = load(text, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_string_equal(cfg->release_cycle, "cycle.json");
    assert_non_null(cfg->warnings);
    assert_non_null(strstr(cfg->warnings, "master.lua:4: www.release_cycle: cycle.json: "));
    cfg_free(cfg);
    free(write_tmp("cycle.json", "{\"3.14\": {\"branch\": \"3.14\", \"status\": \"bugfix\"}}"));
    cfg = load(text, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_null(cfg->warnings);
    assert_false(cfg->release_cycle_url);
    cfg_free(cfg);
    unlink(cycle);
    free(cycle);
}

/* www.release_cycle as an http(s) URL: accepted without a fetch (the master fetches it in the
   background), no warning. */
/* The janitor's horizon and its Nightly schedule: hour 0 unless given (JanitorConfigurator's
   default), minute 0, dayOfWeek as Python counts (Monday 0). */
static void test_janitor(void **state)
{
    (void)state;
    char *errors;
    struct cfg *cfg = load("local bbm = require 'bbm'\nreturn {\n  configurators = {\n"
                           "    bbm.configurators.janitor{ logHorizon = 604800, dayOfWeek = 6,\n"
                           "      minute = '*/30' } },\n}\n",
                           &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_non_null(cfg->janitor);
    assert_int_equal(cfg->janitor->log_horizon, 604800);
    assert_int_equal(cfg->janitor->line, 4);
    assert_int_equal(cfg->janitor->when.hour, 1);
    assert_int_equal(cfg->janitor->when.minute, (1ULL << 0) | (1ULL << 30));
    assert_int_equal(cfg->janitor->when.dow, 1); /* Python's Sunday 6 is cron's 0 */
    assert_true(cfg->janitor->when.dom_any);
    assert_false(cfg->janitor->when.dow_any);
    assert_null(cfg->warnings);
    assert_int_equal(cfg->janitor->build_horizon, 0);
    assert_int_equal(cfg->janitor->change_horizon, 0);
    cfg_free(cfg);
    /* bbmaster's own buildHorizon and changeHorizon make a janitor without logHorizon */
    cfg = load("local bbm = require 'bbm'\nreturn {\n  configurators = {\n"
               "    bbm.configurators.janitor{ buildHorizon = 100, changeHorizon = 200 } },\n}\n",
               &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_non_null(cfg->janitor);
    assert_int_equal(cfg->janitor->log_horizon, 0);
    assert_int_equal(cfg->janitor->build_horizon, 100);
    assert_int_equal(cfg->janitor->change_horizon, 200);
    assert_null(cfg->warnings);
    cfg_free(cfg);
    /* without logHorizon it does nothing, and says so */
    cfg = load("local bbm = require 'bbm'\nreturn {\n"
               "  configurators = { bbm.configurators.janitor{ hour = 3 } },\n}\n",
               &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_null(cfg->janitor);
    char *want = xasprintf("%s/master.lua:3: bbm.configurators.janitor without logHorizon "
                           "deletes nothing (as Buildbot's JanitorConfigurator)\n",
                           dir);
    assert_string_equal(cfg->warnings, want);
    free(want);
    cfg_free(cfg);
}

static void test_release_cycle_url(void **state)
{
    (void)state;
    static const char *const urls[] = {"https://peps.python.org/api/release-cycle.json",
                                       "http://127.0.0.1:1/cycle.json"};
    for (size_t i = 0; i < 2; i++) {
        char *text = xasprintf("return {\n  workers = {},\n  www = { port = 8010,\n"
                               "    release_cycle = '%s' },\n}\n",
                               urls[i]);
        char *errors;
        struct cfg *cfg = load(text, &errors);
        if (cfg == NULL)
            fail_msg("%s", errors);
        assert_string_equal(cfg->release_cycle, urls[i]);
        assert_true(cfg->release_cycle_url);
        assert_null(cfg->warnings);
        cfg_free(cfg);
        free(text);
    }
}

struct broken {
    const char *body;     /* inside `return { ... }`, from line 3 */
    const char *expected; /* the full error text, {F} standing for the file */
};

#define W "  workers = { bbm.worker('w1', 'p') },\n"
#define B(extra)                                                                                   \
    "  builders = { bbm.builder{ name = 'b1', workernames = {'w1'}, factory = "                    \
    "bbm.factory{} " extra "} },\n"

static const struct broken broken[] = {
    {"  titel = 'x',\n", "{F}:3: unknown configuration key 'titel'; did you mean 'title'?\n"},
    /* a Buildbot www option bbmaster does not implement is refused, not ignored */
    {W "  www = { port = 8010,\n    avatar_methods = {} },\n",
     "{F}:5: www: unknown or unsupported key 'avatar_methods' (bbmaster takes port, "
     "change_hook_dialects, release_cycle, redirects, release_test_results, auth, authz and "
     "cookie_expiration_time)\n"},
    /* the web port binds where it is told, as protocols.pb.port does (IPv6 as Twisted
       writes it, its colons backslashed) */
    {W "  www = { port = 'tcp:8010:interface=127.0.0.1' },\n", ""},
    {W "  www = { port = 'tcp:port=8010:interface=\\\\:\\\\:1' },\n", ""},
    {W "  www = { port = 'tcp:8010:interface=nope' },\n",
     "{F}:4: www.port: interface \"nope\" is not an IPv4 or IPv6 address (write an IPv6 "
     "address's colons as \\:, as Twisted does)\n"},
    {W "  www = { prot = 8010 },\n",
     "{F}:4: www: unknown or unsupported key 'prot'; did you mean 'port'? (bbmaster takes port, "
     "change_hook_dialects, release_cycle, redirects, release_test_results, auth, authz and "
     "cookie_expiration_time)\n"},
    {W "  www = { port = 8010,\n    auth = {} },\n",
     "{F}:5: www.auth must be bbm.www.no_auth{}, user_password_auth{users}, "
     "htpasswd_auth{passwdFile}, remote_user_auth{header, headerRegex} or "
     "github_auth{clientId, clientSecret}\n"},
    {W "  www = { release_test_results = 5 },\n",
     "{F}:4: www.release_test_results must be a string (a directory), not number\n"},
    {W "  www = { release_test_results = '' },\n",
     "{F}:4: www.release_test_results is empty: give a directory\n"},
    /* the master fetches http(s) only; another scheme would never be read */
    {W "  www = { port = 8010,\n    release_cycle = 'ftp://example.org/release-cycle.json' },\n",
     "{F}:5: www.release_cycle: 'ftp://example.org/release-cycle.json' is a URL bbmaster cannot "
     "fetch; give an http:// or https:// URL, or the path of a file\n"},
    {W "  www = { release_cycle = true },\n",
     "{F}:4: www.release_cycle must be a string (a file path or an http(s) URL), not boolean\n"},
    {W "  www = { release_cycle = '' },\n",
     "{F}:4: www.release_cycle is empty: give the path of a file or an http(s) URL\n"},
    {W "  protocols = { pb = { port = 70000 } },\n",
     "{F}:4: protocols.pb.port must be between 1 and 65535, not 70000\n"},
    /* found by fuzz_config: the nil port was left on the Lua stack, and lua_next crashed */
    {W "  protocols = { pb = { prot = 9989 } },\n",
     "{F}:4: protocols.pb must be a table with a port, like { port = 9989 }\n"},
    {W "  protocols = { pb = 9989 },\n",
     "{F}:4: protocols.pb must be a table with a port, like { port = 9989 }\n"},
    {W "  protocols = { pb = { port = 'udp:x' } },\n",
     "{F}:4: protocols.pb.port: cannot understand \"udp:x\"; use a number or "
     "\"tcp:PORT[:interface=ADDRESS]\" or \"ssl:PORT:privateKey=FILE[:certKey=FILE]"
     "[:extraCertChain=FILE][:interface=ADDRESS]\"\n"},
    {W "  protocols = { pb = { port = 'ssl:9989:privateKey=k.pem:sslmethod=TLSv1_METHOD' } },\n",
     "{F}:4: protocols.pb.port: cannot understand "
     "\"ssl:9989:privateKey=k.pem:sslmethod=TLSv1_METHOD\"; use a number or "
     "\"tcp:PORT[:interface=ADDRESS]\" or \"ssl:PORT:privateKey=FILE[:certKey=FILE]"
     "[:extraCertChain=FILE][:interface=ADDRESS]\"\n"},
    {W "  protocols = { pb = { port = 'ssl:9989:privateKey=/nonexistent/k.pem' } },\n",
     "{F}:4: protocols.pb.port: cannot read the TLS file /nonexistent/k.pem: No such file "
     "or directory\n"},
    {"  workers = { bbm.worker('w1', 'p', { max_build = 1 }) },\n",
     "{F}:3: bbm.worker: unknown parameter 'max_build'; did you mean 'max_builds'?\n"},
    {"  workers = { bbm.worker('w1', 'p', { keepalive_interval = 'x' }) },\n",
     "{F}:3: bbm.worker: 'keepalive_interval' must be a whole number, not string\n"},
    /* bbmaster's own liveness check: types and bounds */
    {"  workers = { bbm.worker('w1', 'p', { ping_interval = '60' }) },\n",
     "{F}:3: bbm.worker: 'ping_interval' must be a whole number, not string\n"},
    {"  workers = { bbm.worker('w1', 'p', { ping_interval = 1.5 }) },\n",
     "{F}:3: bbm.worker: 'ping_interval' must be a whole number, not number\n"},
    {"  workers = { bbm.worker('w1', 'p', { ping_interval = 0 }) },\n",
     "{F}:3: bbm.worker: 'ping_interval' must be between 1 and 86400, not 0\n"},
    {"  workers = { bbm.worker('w1', 'p', { ping_interval = 60, ping_timeout = 3601 }) },\n",
     "{F}:3: bbm.worker: 'ping_timeout' must be between 1 and 3600, not 3601\n"},
    {"  workers = { bbm.worker('w1', 'p', { ping_timeout = -1 }) },\n",
     "{F}:3: bbm.worker: 'ping_timeout' must not be negative\n"
     "{F}:3: bbm.worker: 'ping_timeout' needs 'ping_interval' (without it workers are not "
     "pinged)\n"},
    {"  workers = { bbm.worker('w1', 'p', { ping_interval = 86400, ping_timeout = 1 }) },\n", ""},
    /* found by fuzz_config: one argument left no slot for the options table */
    {"  workers = { bbm.worker('w1') },\n",
     "{F}:3: bbm.worker: the password must be a string, not nil\n"},
    {"  workers = { bbm.worker('w1', 42) },\n",
     "{F}:3: bbm.worker: the password must be a string, not number\n"},
    {"  workers = { bbm.worker('w1', 'p'),\n  bbm.worker('w1', 'q') },\n",
     "{F}:4: duplicate worker name 'w1' (first defined at {F}:3)\n"},
    {W B(), ""},
    /* found by fuzz_config: without arguments there was no slot for the options table */
    {W B() "  schedulers = { bbm.schedulers.force{ name = 'f', builderNames = {'b1'},\n"
           "    codebases = { bbm.params.codebase() } } },\n",
     ""},
    {W "  builders = { bbm.builder{ name = 'b1', workernames = {'w9'}, factory = bbm.factory{} } "
       "},\n",
     "{F}:4: builder 'b1': workernames names unknown worker 'w9'\n"},
    {W "  builders = { bbm.builder{ name = 'b1', workernames = {'w1'}, factory = bbm.factory{},\n"
       "    tags = {'unix', '3.x', 'unix'} } },\n",
     "{F}:4: builder 'b1': tags list contains duplicate tags: unix\n"},
    {W "  builders = { bbm.builder{ name = 'b1', factory = bbm.factory{} } },\n",
     "{F}:4: builder 'b1': at least one worker is required in workernames\n"},
    {W "  builders = { bbm.builder{ workernames = {'w1'}, factory = bbm.factory{} } },\n",
     "{F}:4: bbm.builder: missing required parameter 'name'\n"},
    {W "  builders = { bbm.builder{ name = 'b1', workernames = {'w1'} } },\n",
     "{F}:4: bbm.builder: missing required parameter 'factory'\n"},
    {W "  builders = { bbm.builder{ name = 'b1', workernames = {'w1'},\n"
       "    factory = bbm.factory{ bbm.steps.shell{ command = 'x', timeout = -5 } } } },\n",
     "{F}:5: bbm.steps.shell: 'timeout' must not be negative\n"},
    {W "  builders = { bbm.builder{ name = 'b1', workernames = {'w1'},\n"
       "    factory = bbm.factory{ bbm.steps.shell{ haltOnFailure = 'yes' } } } },\n",
     "{F}:5: bbm.steps.shell: 'haltOnFailure' must be a boolean, not string\n"
     "{F}:5: bbm.steps.shell: missing required parameter 'command'\n"},
    /* the Git step's checks: shallow only with full/clobber once a method is named, the
       types Buildbot takes for shallow, getDescription and config */
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'r', mode = 'full', method = "
         "'clobber', shallow = true, getDescription = { tags = true }, config = { ['a.b'] = 1 "
         "} } }"),
     ""},
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'r', shallow = 2, "
         "getDescription = {} } }"),
     ""},
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'r', mode = 'full', method = "
         "'fresh', shallow = 1 } }"),
     "{F}:4: Git: in mode 'full' shallow only possible with method 'clobber'.\n"},
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'r', method = 'clobber', shallow "
         "= true, getDescription = { 'tags' }, config = { 'a.b=1' } } }"),
     "{F}:4: Git: in mode 'full' shallow only possible with method 'clobber'.\n"
     "{F}:4: Git: getDescription must be a boolean or a dict.\n"
     "{F}:4: bbm.steps.git: 'config' must be a table of name = value\n"},
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'r', shallow = -1 } }"),
     "{F}:4: bbm.steps.git: 'shallow' must be a boolean or a depth (a whole number), not -1\n"},
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'r', shallow = 'yes', "
         "getDescription = 'yes' } }"),
     "{F}:4: bbm.steps.git: 'shallow' must be a boolean or a depth (a whole number), not yes\n"
     "{F}:4: Git: getDescription must be a boolean or a dict.\n"},
    {W B() "  schedulers = { bbm.schedulers.single_branch{ name = 's', builderNames = {'b9'} } "
           "},\n",
     "{F}:5: scheduler 's': builderNames names unknown builder 'b9'\n"},
    {W B() "  schedulers = { bbm.schedulers.single_branch{ name = 's', builderNames = {'b1'},\n"
           "    treestabletimer = 5 } },\n",
     "{F}:5: bbm.schedulers.single_branch: unknown parameter 'treestabletimer'; did you mean "
     "'treeStableTimer'?\n"},
    {W B() "  schedulers = { bbm.schedulers.force{ name = 's', builderNames = {'b1'} },\n"
           "    bbm.schedulers.force{ name = 's', builderNames = {'b1'} } },\n",
     "{F}:6: duplicate scheduler name 's' (first defined at {F}:5)\n"},
    /* bbm.configurators.janitor: Buildbot's JanitorConfigurator, the horizon in seconds */
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 86400, hour = 3,\n"
     "    minute = 30, dayOfWeek = { 5, 6 }, dayOfMonth = '*', month = '1-12' } },\n",
     ""},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 'P1W' } },\n",
     "{F}:3: bbm.configurators.janitor: 'logHorizon' must be a whole number, not string\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = -1 } },\n",
     "{F}:3: bbm.configurators.janitor: 'logHorizon' must not be negative\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 0 } },\n",
     "{F}:3: bbm.configurators.janitor: 'logHorizon' must be at least 1 second (0 would delete "
     "the logs of the steps running now)\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 4e9 } },\n",
     "{F}:3: bbm.configurators.janitor: 'logHorizon' must be at most 3153600000 seconds (a "
     "hundred years), not 4000000000\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, hour = 24 } },\n",
     "{F}:3: bbm.configurators.janitor: 'hour' must be a whole number between 0 and 23, not "
     "24\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, minute = { 0, 60 } } },\n",
     "{F}:3: bbm.configurators.janitor: 'minute' must be a whole number between 0 and 59, not "
     "60\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, dayOfWeek = 7 } },\n",
     "{F}:3: bbm.configurators.janitor: 'dayOfWeek' must be a whole number between 0 and 6 "
     "(Monday 0, as in Python), not 7\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, month = 1.5 } },\n",
     "{F}:3: bbm.configurators.janitor: 'month' must be a whole number between 1 and 12, not "
     "1.5\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, dayOfMonth = {} } },\n",
     "{F}:3: bbm.configurators.janitor: 'dayOfMonth' is an empty list\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, hour = 'noon' } },\n",
     "{F}:3: bbm.configurators.janitor: 'hour' = \"noon\" cannot be read as a cron field (a "
     "number, \"*\", \"a-b\", \"*/n\" or \"a,b\")\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, minute = '*/0' } },\n",
     "{F}:3: bbm.configurators.janitor: 'minute' = \"*/0\" cannot be read as a cron field (a "
     "number, \"*\", \"a-b\", \"*/n\" or \"a,b\")\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, hour = true } },\n",
     "{F}:3: bbm.configurators.janitor: 'hour' must be a number, a list of numbers or a cron "
     "string, not boolean\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60, hours = 3 } },\n",
     "{F}:3: bbm.configurators.janitor: unknown parameter 'hours'; did you mean 'hour'?\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60,\n"
     "    build_data_horizon = 60 } },\n",
     "{F}:3: bbm.configurators.janitor: 'build_data_horizon' is not implemented by bbmaster "
     "(bbmaster's own buildHorizon deletes whole old builds)\n"},
    /* bbmaster's own buildHorizon and changeHorizon, as logHorizon */
    {"  configurators = { bbm.configurators.janitor{ buildHorizon = 86400,\n"
     "    changeHorizon = 3153600000 } },\n",
     ""},
    {"  configurators = { bbm.configurators.janitor{ buildHorizon = 0 } },\n",
     "{F}:3: bbm.configurators.janitor: 'buildHorizon' must be at least 1 second (0 would "
     "delete the builds that just finished)\n"},
    {"  configurators = { bbm.configurators.janitor{ changeHorizon = 0 } },\n",
     "{F}:3: bbm.configurators.janitor: 'changeHorizon' must be at least 1 second (0 would "
     "delete the changes that just came)\n"},
    {"  configurators = { bbm.configurators.janitor{ changeHorizon = -5 } },\n",
     "{F}:3: bbm.configurators.janitor: 'changeHorizon' must not be negative\n"},
    {"  configurators = { bbm.configurators.janitor{ buildHorizon = 4e9 } },\n",
     "{F}:3: bbm.configurators.janitor: 'buildHorizon' must be at most 3153600000 seconds (a "
     "hundred years), not 4000000000\n"},
    {"  configurators = { bbm.configurators.janitor{ changeHorizon = 'P1D' } },\n",
     "{F}:3: bbm.configurators.janitor: 'changeHorizon' must be a whole number, not string\n"},
    {"  configurators = { bbm.configurators.janitor{ logHorizon = 60 },\n"
     "    bbm.configurators.janitor{ logHorizon = 120 } },\n",
     "{F}:4: a second bbm.configurators.janitor (the first is at {F}:3): Buildbot's would "
     "make a second builder __Janitor\n"},
    {"  configurators = { { logHorizon = 60 } },\n",
     "{F}:3: configurators[1] is not a bbm.configurators.* configurator\n"},
    {"  workers = { { name = 'w1' } },\n", "{F}:3: workers[1] is not a bbm.worker(...)\n"},
    {"  workers = 5,\n", "{F}:3: 'workers' must be a list, not number\n"},
    {"  title = 5,\n", "{F}:3: 'title' must be a string, not number\n"},
    {"  prioritizeBuilders = 'name',\n",
     "{F}:3: 'prioritizeBuilders' must be a function, not string\n"},
    {"  collapseRequests = 0,\n",
     "{F}:3: 'collapseRequests' must be true, false or a function, not number\n"},
    {"  collapseRequests = false, prioritizeBuilders = function(m, b) return b end,\n", ""},
    {W B(", priority = 1"), "{F}:4: bbm.builder: unknown parameter 'priority'\n"},
    /* Buildbot keys and parameters bbmaster does not implement are refused, saying why */
    {"  caches = { Builds = 100 },\n",
     "{F}:3: 'caches' is a Buildbot key bbmaster does not implement: bbmaster keeps no such "
     "caches: it reads the database\n"},
    {"  logCompressionMethod = 'lz4',\n", ""},
    {"  logCompressionMethod = 'xz',\n",
     "{F}:3: c['logCompressionMethod'] must be 'raw', 'bz2', 'gz', 'lz4', 'br' or 'zstd'\n"},
    {"  logCompressionLimit = 4096,\n",
     "{F}:3: 'logCompressionLimit' is a Buildbot key bbmaster does not implement: log chunks "
     "are compressed whenever that makes them smaller (as in Buildbot 4.3, which reads the key "
     "and does not use it)\n"},
    {"  changeHorizon = 100,\n",
     "{F}:3: 'changeHorizon' is a Buildbot key bbmaster does not implement: old changes are "
     "kept (bbm.configurators.janitor's own changeHorizon deletes them by age)\n"},
    {"  services = { bbm.reporters.telegram_bot{ bot_token = 'x' } },\n",
     "{F}:3: bbm.reporters.telegram_bot (Buildbot's TelegramBot) is not implemented yet: bbmaster "
     "reports through bbm.reporters.github_status_push, bbm.reporters.http_status_push, "
     "bbm.reporters.github_comment_push, bbm.reporters.irc and bbm.reporters.mail_notifier with "
     "bbm.reporters.build_start_end_status_generator, "
     "bbm.reporters.build_request_generator, "
     "bbm.reporters.build_status_generator, "
     "bbm.reporters.build_set_status_generator and "
     "bbm.reporters.worker_missing_generator\n"},
    /* found by fuzz_config: a number among the services aborted the master */
    {"  services = { 7 },\n",
     "{F}:3: services[1] is not a reporter (bbm.reporters.github_status_push{...}, "
     "bbm.reporters.http_status_push{...}, bbm.reporters.github_comment_push{...}, "
     "bbm.reporters.irc{...}, bbm.reporters.mail_notifier{...})\n"},
    {"  services = { bbm.reporters.irc{ host = 'irc.example' } },\n",
     "{F}:3: bbm.reporters.irc: missing required parameter 'nick'\n"
     "{F}:3: bbm.reporters.irc: missing required parameter 'channels'\n"},
    {"  services = { bbm.reporters.github_status_push{ token = 't', debug = true,\n"
     "    generators = { bbm.reporters.build_start_end_status_generator{ add_patch = true } } } "
     "},\n",
     "{F}:3: bbm.reporters.github_status_push: 'debug' is not implemented by bbmaster: "
     "bbmaster's HTTP client has no debug log\n"
     "{F}:4: bbm.reporters.build_start_end_status_generator: 'add_patch' is not implemented "
     "by bbmaster: GitHub statuses carry no patch\n"},
    {"  buildbotNetUsageData = 'basic',\n",
     "{F}:3: 'buildbotNetUsageData' may only be false: bbmaster sends no usage data\n"},
    {"  buildbotNetUsageData = false, multiMaster = false,\n", ""},
    {"  multiMaster = true,\n",
     "{F}:3: 'multiMaster' may only be false: bbmaster runs as a single master\n"},
    /* missing workers: Buildbot's notify_on_missing, missing_timeout and generator */
    {"  workers = { bbm.worker('w1', 'p', { notify_on_missing = 'a@b.c' }) },\n", ""},
    {"  workers = { bbm.worker('w1', 'p', { notify_on_missing = { 'A <a@b.c>', 'd@e.f' },\n"
     "    missing_timeout = 0 }) },\n",
     ""},
    {"  workers = { bbm.worker('w1', 'p', { notify_on_missing = { 'a@b.c', 'nobody' } }) },\n",
     "{F}:3: bbm.worker: notify_on_missing arg 'nobody' is not a valid email\n"},
    {"  workers = { bbm.worker('w1', 'p', { notify_on_missing = { 'a@b.c', 5 } }) },\n",
     "{F}:3: bbm.worker: 'notify_on_missing' must be a string or a list of strings, not "
     "table\n"},
    {"  workers = { bbm.worker('w1', 'p', { notify_on_missing = 'a@b.c\\r\\nBcc: x@y.z' }) "
     "},\n",
     "{F}:3: bbm.worker: notify_on_missing arg 'a@b.c\\r\\nBcc: x@y.z' is not a valid email\n"},
    {"  workers = { bbm.worker('w1', 'p', { missing_timeout = 40000000 }) },\n",
     "{F}:3: bbm.worker: 'missing_timeout' must be between 0 and 31622400, not 40000000\n"},
    {"  workers = { bbm.worker('w1', 'p', { missing_timeout = 'soon' }) },\n",
     "{F}:3: bbm.worker: 'missing_timeout' must be a whole number, not string\n"},
    {"  services = { bbm.reporters.mail_notifier{ fromaddr = 'b@x.org', generators = {\n"
     "    bbm.reporters.worker_missing_generator{ workers = 'all' },\n"
     "    bbm.reporters.worker_missing_generator{ workers = { 'w1' },\n"
     "      message_formatter = bbm.reporters.message_formatter_missing_worker{\n"
     "        template = '{{ worker.name }} at {{ worker.last_connection }}',\n"
     "        subject = 'gone: {{ worker.name }}', template_type = 'html' } } } } },\n",
     ""},
    {"  services = { bbm.reporters.mail_notifier{ fromaddr = 'b@x.org', generators = {\n"
     "    bbm.reporters.worker_missing_generator{ workers = 'w1' } } } },\n",
     "{F}:4: bbm.reporters.worker_missing_generator: workers must be 'all', or list of worker "
     "names\n"},
    {"  services = { bbm.reporters.mail_notifier{ fromaddr = 'b@x.org', generators = {\n"
     "    bbm.reporters.worker_missing_generator{\n"
     "      message_formatter = bbm.reporters.message_formatter{ template = 'x' } } } } },\n",
     "{F}:4: bbm.reporters.worker_missing_generator: 'message_formatter' must be a "
     "bbm.reporters.message_formatter_missing_worker{...}\n"},
    {"  services = { bbm.reporters.mail_notifier{ fromaddr = 'b@x.org', generators = {\n"
     "    bbm.reporters.worker_missing_generator{\n"
     "      message_formatter = bbm.reporters.message_formatter_missing_worker{\n"
     "        template = '{% if %}', template_type = 'json', ctx = {} } } } } },\n",
     "{F}:5: bbm.reporters.message_formatter_missing_worker: 'ctx' is not implemented by "
     "bbmaster: a Python dict of extra context has no Lua equivalent yet\n"
     "{F}:5: MessageFormatterMissingWorker: template type json is not known to pick default "
     "template\n"
     "{F}:5: bbm.reporters.message_formatter_missing_worker: 'template', line 1: a condition "
     "is a path, 'not' path, or path == \"text\" (or !=)\n"},
    /* MessageFormatter.buildAdditionalContext: a function of the context, nothing else */
    {"  services = { bbm.reporters.mail_notifier{ fromaddr = 'b@x.org', generators = {\n"
     "    bbm.reporters.build_status_generator{\n"
     "      message_formatter = bbm.reporters.message_formatter{ template = 'x',\n"
     "        build_additional_context = 'ctx' } } } } },\n",
     "{F}:5: bbm.reporters.message_formatter: 'build_additional_context' must be a function, "
     "not string\n"},
    {"  services = { bbm.reporters.mail_notifier{ fromaddr = 'b@x.org', generators = {\n"
     "    bbm.reporters.build_status_generator{\n"
     "      message_formatter = bbm.reporters.message_formatter{ template = 'x',\n"
     "        build_additional_context = function(ctx) end } } } } },\n",
     ""},
    {"  services = { bbm.reporters.github_status_push{ token = 't', generators = {\n"
     "    bbm.reporters.worker_missing_generator{} } } },\n",
     "{F}:4: bbm.reporters.github_status_push: bbm.reporters.worker_missing_generator reports "
     "only through bbm.reporters.mail_notifier (Buildbot's other reporters fail on its "
     "reports; IRC has the 'worker' event)\n"},
    /* locks: Buildbot's access modes, a lock always taken through an access, one lock a
       name */
    {W B(", locks = { bbm.locks.master{ name = 'x' }:access('bogus') }"),
     "{F}:4: access: unknown access mode 'bogus'; it must be \"counting\" or \"exclusive\"\n"},
    {W B(", factory = bbm.factory{ bbm.steps.shell{ command = 'x', locks = { "
         "bbm.locks.master{ name = 'x' } } } }"),
     "{F}:4: bbm.steps.shell: 'locks' names a lock without saying how it is taken; write "
     "lock:access(\"counting\") or lock:access(\"exclusive\")\n"},
    {W B(", locks = { bbm.locks.master{ name = 'x' }:access('counting'), "
         "bbm.locks.worker{ name = 'x' }:access('counting') }"),
     "{F}:4: two locks share the same name, 'x'\n"},
    {W B(", locks = { bbm.locks.worker{ name = 'x', maxCountForWorker = { w1 = -1 } }"
         ":access('exclusive', 2) }"),
     "{F}:4: bbm.locks.worker: 'maxCountForWorker' maps worker names to whole numbers from 0 "
     "to 1000000\n{F}:4: access: an exclusive access counts 1\n"},
    {W B(", locks = { bbm.locks.master{ name = 'x', maxcount = 2 }:access('counting') }"),
     "{F}:4: bbm.locks.master: unknown parameter 'maxcount'\n"},
    {W B(", factory = bbm.factory{ bbm.steps.git{ repourl = 'x', sshPrivateKey = 'k' } }"),
     "{F}:4: bbm.steps.git: 'sshPrivateKey' is a Buildbot parameter bbmaster does not "
     "implement: the git step uses the worker's own ssh setup\n"},
    {W B(", factory = bbm.factory{ bbm.steps.shell{ command = 'x', updateBuildSummaryPolicy "
         "= { 'failure' } } }"),
     "{F}:4: bbm.steps.shell: 'updateBuildSummaryPolicy' must be true, false or a list of "
     "results (bbm.results.*), not table\n"},
    {W B(", factory = bbm.factory{ bbm.steps.mkdir{ dir = 'x', evaluateCommand = print } }"),
     "{F}:4: bbm.steps.mkdir: unknown parameter 'evaluateCommand'\n"},
};

static char *expand(const char *tmpl, const char *file)
{
    struct buf b;
    buf_init(&b, 0);
    for (const char *p = tmpl; *p != '\0'; p++) {
        if (strncmp(p, "{F}", 3) == 0) {
            buf_addstr(&b, file);
            p += 2;
        } else {
            buf_addc(&b, *p);
        }
    }
    return buf_take(&b);
}

static void test_broken_configs(void **state)
{
    (void)state;
    char *file = xasprintf("%s/master.lua", dir);
    for (size_t i = 0; i < UTIL_NELEM(broken); i++) {
        char *text = xasprintf("local bbm = require 'bbm'\nreturn {\n%s}\n", broken[i].body);
        char *errors = NULL;
        struct cfg *cfg = load(text, &errors);
        char *want = expand(broken[i].expected, file);
        if (want[0] == '\0') {
            if (cfg == NULL)
                fail_msg("case %zu should load, got:\n%s", i, errors);
        } else if (cfg != NULL || strcmp(errors, want) != 0) {
            fail_msg("case %zu:\nwant: %sgot:  %s", i, want, cfg ? "(loaded)\n" : errors);
        }
        cfg_free(cfg);
        free(want);
        free(errors);
        free(text);
    }
    free(file);
}

static void test_lua_errors(void **state)
{
    (void)state;
    char *errors;
    assert_null(load("local x = nil\nreturn x.y\n", &errors));
    assert_non_null(strstr(errors, "master.lua:2: attempt to index a nil value (local 'x')"));
    assert_non_null(strstr(errors, "stack traceback:"));
    free(errors);
    assert_null(load("return {\n", &errors));
    assert_non_null(strstr(errors, "master.lua:2:"));
    free(errors);
    assert_null(load("return 42\n", &errors));
    assert_non_null(strstr(errors, "the file must return a table"));
    free(errors);
    /* the file's own run is stopped by its CPU time: in a loop, in one that catches the error,
       in a coroutine's */
    const char *endless[][2] = {
        {"local t = {}\nwhile true do t[1] = 1 end\n", "master.lua:2:"},
        {"local n = 0\nwhile true do\n  pcall(function() while true do n = n + 1 end end)\nend\n",
         "master.lua:"},
        {"local co = coroutine.wrap(function()\n  while true do end\nend)\nco()\n",
         "master.lua:2:"},
    };
    for (size_t i = 0; i < UTIL_NELEM(endless); i++) {
        assert_null(load_with(endless[i][0], &(struct cfg_load_opts){.load_cpu_ms = 300}, &errors));
        assert_non_null(strstr(errors, endless[i][1]));
        assert_non_null(strstr(errors, "the configuration ran for too long"));
        free(errors);
    }
    /* 32 MiB, so that the cap comes before the CPU time even where the code runs slowly */
    assert_null(load_with("local t = {}\nfor i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\n",
                          &(struct cfg_load_opts){.max_memory = 32 << 20}, &errors));
    assert_non_null(strstr(errors, "not enough memory"));
    free(errors);
    /* the file's metamethods would run while its table is read: a table with a metatable is
       refused before (test_plain_tables), and reading is protected besides, so an error or an
       endless loop there is the configuration's error, not an abort or a hang */
    assert_null(load("local boom = { __index = function(t, k) error('no ' .. k) end }\n"
                     "return setmetatable({}, boom)\n",
                     &errors));
    assert_non_null(strstr(errors, "master.lua:1: the configuration table has a metatable"));
    free(errors);
    assert_null(load("return setmetatable({}, { __index = function()\n"
                     "  while true do end end })\n",
                     &errors));
    assert_non_null(strstr(errors, "master.lua:1: the configuration table has a metatable"));
    free(errors);
    assert_null(load("local bbm = require 'bbm'\n"
                     "setmetatable(bbm.worker('w1', 'p'), {})\nreturn {}\n",
                     &errors));
    assert_non_null(strstr(errors, "master.lua:2: setmetatable: a bbm object's metatable"));
    free(errors);
    /* found by fuzz_config: a constructor called without end reported every call */
    assert_null(load("local bbm = require 'bbm'\nfor i = 1, 5000 do bbm.worker('w' .. i, 1) end\n"
                     "return {}\n",
                     &errors));
    size_t lines = 0;
    for (const char *p = errors; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 201);
    assert_non_null(
        strstr(errors, "master.lua:2: more errors follow; only the first 200 are shown\n"));
    free(errors);
}

/* Calls global `name` of the config's state with one integer argument; 0 and its result in
 *out, or -1 and *cause. */
static int call_global(struct cfg *cfg, const char *name, lua_Integer arg, lua_Integer *out,
                       char **cause)
{
    lua_State *L = cfg->lua;
    int top = lua_gettop(L);
    lua_getglobal(L, name);
    lua_pushinteger(L, arg);
    int rc = cfg_lua_call(L, 1, 1, cause);
    if (rc == 0)
        *out = lua_tointeger(L, -1);
    lua_settop(L, top);
    return rc;
}

/* Calling global `name` with `arg` fails with a cause that holds `want`. */
static void expect_call_fails(struct cfg *cfg, const char *name, lua_Integer arg, const char *want)
{
    char *cause = NULL;
    lua_Integer n = 0;
    assert_int_equal(call_global(cfg, name, arg, &n, &cause), -1);
    if (strstr(cause, want) == NULL)
        fail_msg("%s:\nwant: %s\ngot:  %s", name, want, cause);
    free(cause);
}

static void test_run_time_budget(void **state)
{
    (void)state;
    char *errors = NULL;
    struct cfg *cfg = load("function double(n) return 2 * n end\n"
                           "function spin(n)\n  while true do end\nend\n"
                           "function sneaky(n)\n"
                           "  while true do pcall(function() while true do end end) end\nend\n"
                           "function spin_co(n)\n"
                           "  local co = coroutine.wrap(function() while true do end end)\n"
                           "  while true do pcall(co) end\nend\n"
                           "function hungry(n)\n  local s = 'x'\n"
                           "  while true do s = s .. s end\nend\n"
                           "function boom(n) error('boom ' .. n) end\n"
                           "function litter(n)\n"
                           "  setmetatable({}, { __gc = function() while true do end end })\n"
                           "end\n"
                           "function unhook(n) debug.sethook() while true do end end\n"
                           "function file_gc(n)\n"
                           "  getmetatable(io.stdout).__gc = function() while true do end end\n"
                           "end\n"
                           "function many_co(n)\n"
                           "  while true do\n"
                           "    coroutine.wrap(function() for i = 1, 24000 do end end)()\n"
                           "    coroutine.resume(coroutine.create(function() end))\n"
                           "  end\n"
                           "end\n"
                           "return {}\n",
                           &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    lua_State *L = cfg->lua;
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"spin", "master.lua:2: the function ran past its budget of 10000000 instructions (an "
                 "endless loop? it was at "},
        {"sneaky", "master.lua:5: the function ran past its budget of 10000000 instructions"},
        {"spin_co", "master.lua:8: the function ran past its budget of 10000000 instructions"},
        {"hungry", "master.lua:12: the function went past 512 MiB, the memory Lua may use"},
        {"boom", "master.lua:16: the function failed: "},
        /* finalizers run with hooks off: none; nor can the hook be taken away */
        {"litter", "master.lua:17: the function failed: /tmp/bbm-cfg-"},
        {"unhook", "master.lua:20: the function failed: "},
        {"file_gc", "master.lua:21: the function failed: "},
        /* coroutines too short for a check of their own pay for one up front */
        {"many_co", "master.lua:24: the function ran past its budget of 10000000 instructions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lua_Integer n = 0;
        int top = lua_gettop(L);
        expect_call_fails(cfg, cases[i].name, 7, cases[i].want);
        assert_int_equal(lua_gettop(L), top);
        /* the state is usable, with a whole budget, and what the call held is given back */
        assert_int_equal(call_global(cfg, "double", 21, &n, NULL), 0);
        assert_int_equal(n, 42);
        assert_true(lua_gc(L, LUA_GCCOUNT) < 16 << 10); /* KiB */
    }
    expect_call_fails(cfg, "boom", 3, "master.lua:16: boom 3");
    expect_call_fails(cfg, "litter", 3, "__gc finalizers are not supported in master.lua");
    expect_call_fails(cfg, "unhook", 3, "attempt to call a nil value (field 'sethook')");
    expect_call_fails(cfg, "file_gc", 3, "attempt to index a string value");
    cfg_free(cfg);
}

/* The master reads the configuration's tables from C, unprotected: none may have a metatable
   (a "strict" table's __index that raises would abort it), at load or later. */
static void test_plain_tables(void **state)
{
    (void)state;
    char *errors = NULL;
    static const char head[] =
        "local bbm = require 'bbm'\n"
        "local strict = { __index = function(t, k) error('no field ' .. k) end }\n";
    char *text = xasprintf("%s"
                           "return {\n"
                           "  workers = { bbm.worker('w1', 'p') },\n"
                           "  builders = { bbm.builder{ name = 'b', workernames = { 'w1' },\n"
                           "    factory = bbm.factory{\n"
                           "      bbm.steps.shell{ command = 'make',\n"
                           "        env = setmetatable({ CC = 'gcc' }, strict) } } } },\n"
                           "  www = setmetatable({ port = 8010 }, strict),\n"
                           "}\n",
                           head);
    assert_null(load(text, &errors));
    free(text);
    assert_non_null(strstr(errors, "master.lua:7: builders[1].factory.steps[1].env has a "
                                   "metatable: the master reads the configuration's tables as "
                                   "they are, without metamethods; give it its fields instead\n"));
    assert_non_null(strstr(errors, "master.lua:9: www has a metatable"));
    free(errors);
    text = xasprintf("%s"
                     "local shared = { 'make' }\n"
                     "function freeze(n) setmetatable(shared, strict) return n end\n"
                     "function returns(n) return setmetatable({}, strict) end\n"
                     "function deep(n) local t = {} for i = 1, 100 do t = { t } end return t end\n"
                     "function own(n)\n"
                     "  local f = bbm.factory{}\n"
                     "  assert(type(getmetatable(f)) ~= 'table')\n"
                     "  local ok = pcall(setmetatable, f, nil)\n"
                     "  local v = setmetatable({}, strict) -- kept to itself: allowed\n"
                     "  return ok and 0 or n + #getmetatable(v) + (f.addStep and 1 or 0)\n"
                     "end\n"
                     "return { builders = { bbm.builder{ name = 'b', workernames = { 'w1' },\n"
                     "  factory = bbm.factory{ bbm.steps.shell{ command = shared } } } },\n"
                     "  workers = { bbm.worker('w1', 'p') } }\n",
                     head);
    struct cfg *cfg = load(text, &errors);
    free(text);
    if (cfg == NULL)
        fail_msg("%s", errors);
    expect_call_fails(cfg, "freeze", 1,
                      "master.lua:4: setmetatable: a table of the configuration cannot be given "
                      "a metatable: the master reads it as it is");
    expect_call_fails(cfg, "returns", 1,
                      "master.lua:5: the function failed: it returned a table with a metatable: "
                      "the master reads what functions return as it is, without metamethods");
    expect_call_fails(cfg, "deep", 1, "it returned tables nested too deep");
    lua_Integer n = 0;
    assert_int_equal(call_global(cfg, "own", 1, &n, NULL), 0);
    assert_int_equal(n, 2);
    cfg_free(cfg);
}

static void test_yaml(void **state)
{
    (void)state;
    char *settings = write_tmp("settings.yaml", "workers:\n  bot1: 's3cret'\n  bot2: 1234\n"
                                                "enabled: yes\nratio: 0.5\nlist: [a, b]\n"
                                                "nothing: ~\n");
    char *text = xasprintf(
        "local bbm = require 'bbm'\nlocal s = bbm.yaml.load('%s')\n"
        "assert(s.workers.bot1 == 's3cret' and s.workers.bot2 == 1234 and s.enabled == true)\n"
        "assert(s.ratio == 0.5 and s.list[2] == 'b' and s.nothing == nil)\n"
        "return { workers = { bbm.worker('bot1', s.workers.bot1) } }\n",
        settings);
    char *errors;
    struct cfg *cfg = load(text, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_string_equal(cfg->workers[0].password, "s3cret");
    cfg_free(cfg);
    free(text);
    char *bad = write_tmp("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n");
    text = xasprintf("local bbm = require 'bbm'\nreturn bbm.yaml.load('%s')\n", bad);
    assert_null(load(text, &errors));
    assert_non_null(strstr(errors, "bad.yaml:"));
    assert_non_null(strstr(errors, "YAML error"));
    free(errors);
    free(text);
    text = xasprintf("local bbm = require 'bbm'\nreturn bbm.yaml.load('%s/missing.yaml')\n", dir);
    assert_null(load(text, &errors));
    assert_non_null(strstr(errors, "missing.yaml: No such file"));
    free(errors);
    free(text);
    unlink(settings);
    unlink(bad);
    free(settings);
    free(bad);
}

static void test_fleet_sized(void **state)
{
    (void)state;
    static const char fleet[] =
        "local bbm = require 'bbm'\n"
        "local workers, builders = {}, {}\n"
        "for i = 1, 100 do workers[#workers + 1] = bbm.worker('w' .. i, 'p' .. i) end\n"
        "local branches = {'main', '3.13', '3.12', '3.11', '3.10', '3.9', 'a', 'b', 'c', 'd'}\n"
        "for t = 1, 100 do for _, br in ipairs(branches) do\n"
        "  builders[#builders + 1] = bbm.builder{ name = 'tmpl' .. t .. ' ' .. br,\n"
        "    workernames = { 'w' .. t, 'w' .. (t % 100 + 1) }, tags = { br },\n"
        "    factory = bbm.factory{ bbm.steps.git{ repourl = 'https://x/y.git', branch = br },\n"
        "      bbm.steps.configure{ command = {'./configure'} },\n"
        "      bbm.steps.compile{ command = {'make'} },\n"
        "      bbm.steps.test{ command = {'make', 'test'}, timeout = 1200 } } }\n"
        "end end\n"
        "return { workers = workers, builders = builders, protocols = { pb = { port = 9989 } } }\n";
    char *errors;
    uint64_t t0 = util_mono_ms();
    struct cfg *cfg = load(fleet, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    printf("fleet config (100 workers, 1000 builders) loaded in %llu ms\n",
           (unsigned long long)(util_mono_ms() - t0));
    assert_int_equal(cfg->n_workers, 100);
    assert_int_equal(cfg->n_builders, 1000);
    assert_int_equal(cfg->builders[999].n_steps, 4);
    cfg_free(cfg);
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
        cmocka_unit_test(test_sample_loads),      cmocka_unit_test(test_model),
        cmocka_unit_test(test_broken_configs),    cmocka_unit_test(test_release_cycle),
        cmocka_unit_test(test_release_cycle_url), cmocka_unit_test(test_janitor),
        cmocka_unit_test(test_lua_errors),        cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_fleet_sized),       cmocka_unit_test(test_run_time_budget),
        cmocka_unit_test(test_plain_tables),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
