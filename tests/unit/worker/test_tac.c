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
        cmocka_unit_test(test_repr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
