/*
 * Unit tests for bbworker's buildbot.tac: the text create-worker writes is
 * buildbot-worker 3.7's byte for byte (the expected text below is what
 * Debian's `buildbot-worker create-worker` wrote), it reads back to the same
 * settings, an owner's edits (last assignment wins, comments, double quotes,
 * octal umask) are read, and a computed value is refused with FILE:LINE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "worker.h"

static const char expected_default[] =
    "\nimport os\n\nfrom buildbot_worker.bot import Worker\nfrom twisted.application import "
    "service\n\nbasedir = '/tmp/reftac'\nrotateLength = 10000000\nmaxRotatedFiles = 10\n\n"
    "# if this is a relocatable tac file, get the directory containing the TAC\n"
    "if basedir == '.':\n    import os.path\n"
    "    basedir = os.path.abspath(os.path.dirname(__file__))\n\n"
    "# note: this line is matched against to check that this is a worker\n"
    "# directory; do not edit it.\napplication = service.Application('buildbot-worker')\n\n"
    "from twisted.python.logfile import LogFile\n"
    "from twisted.python.log import ILogObserver, FileLogObserver\n"
    "logfile = LogFile.fromFullPath(\n"
    "    os.path.join(basedir, \"twistd.log\"), rotateLength=rotateLength,\n"
    "    maxRotatedFiles=maxRotatedFiles)\n"
    "application.setComponent(ILogObserver, FileLogObserver(logfile).emit)\n\n"
    "buildmaster_host = 'localhost'\nport = 1234\nworkername = 'wname'\npasswd = 'pa ss'\n"
    "keepalive = 600\numask = None\nmaxdelay = 300\nnumcpus = None\nallow_shutdown = None\n"
    "maxretries = None\nuse_tls = 0\ndelete_leftover_dirs = 0\n"
    "proxy_connection_string = None\nprotocol = 'pb'\n\n"
    "s = Worker(buildmaster_host, port, workername, passwd, basedir,\n"
    "           keepalive, umask=umask, maxdelay=maxdelay,\n"
    "           numcpus=numcpus, allow_shutdown=allow_shutdown,\n"
    "           maxRetries=maxretries, protocol=protocol, useTls=use_tls,\n"
    "           delete_leftover_dirs=delete_leftover_dirs,\n"
    "           proxy_connection_string=proxy_connection_string)\n"
    "s.setServiceParent(application)\n";

static void test_render_default(void **state)
{
    (void)state;
    struct bbw_tac t;
    bbw_tac_defaults(&t);
    t.basedir = strdup("/tmp/reftac");
    t.host = strdup("localhost");
    t.port = 1234;
    t.name = strdup("wname");
    t.passwd = strdup("pa ss");
    t.protocol = strdup("pb");
    char *text = bbw_tac_render(&t);
    assert_string_equal(text, expected_default);

    struct bbw_tac r;
    bbw_tac_defaults(&r);
    char *cause = NULL;
    assert_int_equal(bbw_tac_parse(&r, text, strlen(text), "buildbot.tac", &cause), 0);
    assert_string_equal(r.basedir, "/tmp/reftac");
    assert_string_equal(r.host, "localhost");
    assert_int_equal(r.port, 1234);
    assert_string_equal(r.name, "wname");
    assert_string_equal(r.passwd, "pa ss");
    assert_int_equal(r.keepalive, 600);
    assert_int_equal(r.umask, -1);
    assert_int_equal(r.maxretries, -1);
    assert_int_equal(r.numcpus, 0);
    assert_null(r.allow_shutdown);
    assert_true(r.log_rotation);
    assert_int_equal(r.rotate_length, 10000000);
    assert_int_equal(r.max_rotated_files, 10);
    bbw_tac_free(&r);
    free(text);
    bbw_tac_free(&t);
}

static void test_owner_edits(void **state)
{
    (void)state;
    const char *text = "from buildbot_worker.bot import Worker\n"
                       "buildmaster_host = 'old.example'\n"
                       "buildmaster_host = \"buildbot.python.org\"  # moved\n"
                       "port = 9020\nworkername = 'it\\'s'\npasswd = r'a\\b'\n"
                       "keepalive = None\numask = 0o022\nmaxretries = 5\nuse_tls = True\n"
                       "allow_shutdown = 'file'\nif x:\n    passwd = compute()\n"
                       "s = Worker(buildmaster_host, port, workername, passwd, basedir)\n";
    struct bbw_tac t;
    bbw_tac_defaults(&t);
    char *cause = NULL;
    assert_int_equal(bbw_tac_parse(&t, text, strlen(text), "x.tac", &cause), 0);
    assert_string_equal(t.host, "buildbot.python.org");
    assert_int_equal(t.port, 9020);
    assert_string_equal(t.name, "it's");
    assert_string_equal(t.passwd, "a\\b");
    assert_int_equal(t.keepalive, 0);
    assert_int_equal(t.umask, 022);
    assert_int_equal(t.maxretries, 5);
    assert_true(t.use_tls);
    assert_string_equal(t.allow_shutdown, "file");
    assert_false(t.log_rotation);
    bbw_tac_free(&t);
}

static void expect_error(const char *text, const char *want)
{
    struct bbw_tac t;
    bbw_tac_defaults(&t);
    char *cause = NULL;
    assert_int_equal(bbw_tac_parse(&t, text, strlen(text), "w/buildbot.tac", &cause), -1);
    if (!strstr(cause, want))
        fail_msg("error '%s' does not contain '%s'", cause, want);
    free(cause);
    bbw_tac_free(&t);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_error("s = Worker()\nbuildmaster_host = 'h'\nworkername = 'w'\n"
                 "passwd = os.environ['PW']\n",
                 "w/buildbot.tac:4: passwd is not a literal");
    expect_error("s = Worker()\nbuildmaster_host = 'h'\nworkername = 'w'\npasswd = 'p'\n"
                 "port = 70000\n",
                 "w/buildbot.tac:5: port: 70000 is out of range");
    expect_error("s = Worker()\nbuildmaster_host = 'h'\nworkername = 'w'\npasswd = 'p'\n"
                 "umask = 022\n",
                 "w/buildbot.tac:5: umask is not a literal");
    expect_error("buildmaster_host = 'h'\nworkername = 'w'\npasswd = 'p'\n",
                 "not a worker's buildbot.tac");
    expect_error("s = Worker()\nbuildmaster_host = 'h'\nworkername = 'w'\n", "passwd is not set");
    expect_error("s = Worker()\nbuildmaster_host = 'h'\nworkername = 'w'\npasswd = 'p'\n"
                 "protocol = 'msgpack_experimental_v7'\n",
                 "protocol 'msgpack_experimental_v7' is not supported");
}

/* A 4.x tac's connection_string, parsed as Twisted's clientFromString reads it. */
static void parse_ok(const char *settings, struct bbw_tac *t)
{
    char *text = xasprintf("s = Worker()\nworkername = 'w'\npasswd = 'p'\n%s", settings);
    char *cause = NULL;
    bbw_tac_defaults(t);
    if (bbw_tac_parse(t, text, strlen(text), "w/buildbot.tac", &cause) < 0)
        fail_msg("%s: %s", settings, cause);
    free(text);
}

static void test_connection_string(void **state)
{
    (void)state;
    struct bbw_tac t;
    parse_ok("buildmaster_host = None  # 'h'\nport = None  # 9989\n"
             "connection_string = 'tls:host=\\\\:\\\\:1:port=9990:timeout=5:trustRoots=/c\\\\=a'\n",
             &t);
    assert_true(t.master.tls);
    assert_string_equal(t.master.host, "::1");
    assert_int_equal(t.master.port, 9990);
    assert_int_equal(t.master.timeout, 5);
    assert_string_equal(t.master.trust_roots, "/c=a");
    assert_null(t.proxy.host);
    bbw_tac_free(&t);
    /* positional host and port; "=" inside a value; keys case-insensitive type */
    parse_ok("buildmaster_host = None\nport = None\n"
             "connection_string = 'TCP:master.example:9000:bindAddress=127.0.0.1'\n",
             &t);
    assert_false(t.master.tls);
    assert_string_equal(t.master.host, "master.example");
    assert_int_equal(t.master.port, 9000);
    assert_string_equal(t.master.bind, "127.0.0.1");
    assert_int_equal(t.master.timeout, BBW_CONNECT_TIMEOUT);
    bbw_tac_free(&t);
    parse_ok("buildmaster_host = None\nport = None\nconnection_string = 'tcp:host=h:7'\n", &t);
    assert_string_equal(t.master.host, "h");
    assert_int_equal(t.master.port, 7);
    bbw_tac_free(&t);
    /* without it: buildmaster_host and port, use_tls; the proxy separately */
    parse_ok("buildmaster_host = 'm'\nport = 9989\nuse_tls = 1\n"
             "proxy_connection_string = 'tcp:proxy:3128'\n",
             &t);
    assert_true(t.master.tls);
    assert_string_equal(t.master.host, "m");
    assert_string_equal(t.proxy.host, "proxy");
    assert_int_equal(t.proxy.port, 3128);
    bbw_tac_free(&t);

    const char *head = "s = Worker()\nworkername = 'w'\npasswd = 'p'\n"
                       "buildmaster_host = None\nport = None\n";
    struct {
        const char *line, *error;
    } bad[] = {
        {"connection_string = 'tcp:host=h:port=1:colour=red'",
         "w/buildbot.tac:6: connection_string: unknown key 'colour' for a tcp: endpoint"},
        {"connection_string = 'ssl:host=h:port=1'",
         ":6: connection_string: endpoint type 'ssl' is not supported"},
        {"connection_string = 'tls:host=h:port=1:certificate=c.pem'",
         ":6: connection_string: tls: certificate is not supported"},
        {"connection_string = 'tcp:host=h'", ":6: connection_string: no port"},
        {"connection_string = 'tcp:port=1'", ":6: connection_string: no host"},
        {"connection_string = 'tcp:host=h:port=99999'", "port '99999' is not a number"},
        {"connection_string = 'tcp:host=h:port=1:timeout=x'", "timeout 'x' is not a number"},
        {"connection_string = 'tcp:h:1:2'", "at most 2 arguments"},
        {"connection_string = 'tcp:host=h:port=1\\\\'", "lone backslash"},
        {"connection_string = "
         "'tcp:a:b:c:d:e:f:g:h:i:j:k:l:m:n:o:p:q:r:s:t:u:v:w:x:y:z:0:1:2:3:4:5:6'",
         "more than 32 parts"},
        {"connection_string = ''", "no endpoint type"},
        {"proxy_connection_string = 'tls:host=p:port=1'", ":6: proxy_connection_string: the proxy"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *text = xasprintf("%s%s\n", head, bad[i].line);
        expect_error(text, bad[i].error);
        free(text);
    }
    expect_error("s = Worker()\nworkername = 'w'\npasswd = 'p'\nbuildmaster_host = 'h'\n"
                 "port = None\nconnection_string = 'tcp:host=h:port=1'\n",
                 "w/buildbot.tac:6: connection_string is set, so buildmaster_host and port must "
                 "be None");
    expect_error("s = Worker()\nworkername = 'w'\npasswd = 'p'\nbuildmaster_host = None\n"
                 "port = None\nconnection_string = 'tcp:host=h:port=1'\n"
                 "proxy_connection_string = 'tcp:p:1'\n",
                 "connection_string and proxy_connection_string are both set");
    expect_error("s = Worker()\nworkername = 'w'\npasswd = 'p'\nbuildmaster_host = None\n"
                 "port = 1\n",
                 "buildmaster_host is not set (nor connection_string)");
}

static void test_render_connection_string(void **state)
{
    (void)state;
    struct bbw_tac t;
    bbw_tac_defaults(&t);
    t.basedir = xstrdup("/w");
    t.host = xstrdup("m");
    t.name = xstrdup("n");
    t.passwd = xstrdup("p");
    t.connection_string = xstrdup("tcp:host=m:port=1");
    char *text = bbw_tac_render(&t);
    assert_non_null(strstr(text, "\nbuildmaster_host = None  # 'm'\nport = None  # 9989\n"
                                 "connection_string = 'tcp:host=m:port=1'\nworkername = 'n'\n"));
    assert_non_null(strstr(text, "delete_leftover_dirs=delete_leftover_dirs,\n"
                                 "           connection_string=connection_string,\n"
                                 "           proxy_connection_string="));
    struct bbw_tac back;
    bbw_tac_defaults(&back);
    char *cause = NULL;
    assert_int_equal(bbw_tac_parse(&back, text, strlen(text), "t", &cause), 0);
    assert_string_equal(back.master.host, "m");
    assert_int_equal(back.master.port, 1);
    bbw_tac_free(&back);
    free(text);
    bbw_tac_free(&t);
}

static void test_repr(void **state)
{
    (void)state;
    char *r = bbw_py_repr("it's");
    assert_string_equal(r, "\"it's\"");
    free(r);
    r = bbw_py_repr("a\"b'c\\\n");
    assert_string_equal(r, "'a\"b\\'c\\\\\\n'");
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_default),
        cmocka_unit_test(test_owner_edits),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_connection_string),
        cmocka_unit_test(test_render_connection_string),
        cmocka_unit_test(test_repr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
