/*
 * Unit tests for BuildStatusGenerator's modes (Buildbot's shortcuts, its refusals, which
 * results and previous results are reported), the status and summary texts, and
 * bbmaster's template language: what it renders, what it refuses (with the line), and
 * Buildbot's default subject and body rendered for a failing build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "reporters/reporters.h"

static unsigned modes_of(const char *const *names, size_t n, bool one)
{
    unsigned m = 0;
    char *cause = NULL;
    assert_int_equal(rep_modes_parse(names, n, one, &m, &cause), 0);
    return m;
}

static void test_modes_parse(void **state)
{
    (void)state;
    const char *all[] = {"all"}, *warn[] = {"warnings"}, *prob[] = {"problem"};
    assert_int_equal(modes_of(all, 1, true), REP_MODE_FAILING | REP_MODE_PASSING |
                                                 REP_MODE_WARNINGS | REP_MODE_EXCEPTION |
                                                 REP_MODE_CANCELLED);
    assert_int_equal(modes_of(warn, 1, true), REP_MODE_FAILING | REP_MODE_WARNINGS);
    assert_int_equal(modes_of(warn, 1, false), REP_MODE_WARNINGS); /* a list: no shortcut */
    assert_int_equal(modes_of(prob, 1, true), REP_MODE_PROBLEM);
    const char *two[] = {"change", "exception"};
    assert_int_equal(modes_of(two, 2, false), REP_MODE_CHANGE | REP_MODE_EXCEPTION);
    unsigned m;
    char *cause = NULL;
    assert_int_equal(rep_modes_parse(all, 1, false, &m, &cause), -1);
    assert_string_equal(cause, "mode 'all' is not valid in an iterator and must be passed in as "
                               "a separate string");
    free(cause);
    const char *bad[] = {"failures"};
    assert_int_equal(rep_modes_parse(bad, 1, true, &m, &cause), -1);
    assert_string_equal(cause, "mode failures is not a valid mode");
    free(cause);
}

static void test_mode_wants(void **state)
{
    (void)state;
    unsigned def = REP_MODE_FAILING | REP_MODE_PASSING | REP_MODE_WARNINGS;
    assert_true(rep_mode_wants(def, REP_RES_FAILURE, -1));
    assert_true(rep_mode_wants(def, REP_RES_SUCCESS, -1));
    assert_true(rep_mode_wants(def, REP_RES_WARNINGS, -1));
    assert_false(rep_mode_wants(def, REP_RES_EXCEPTION, -1));
    assert_false(rep_mode_wants(def, REP_RES_CANCELLED, -1));
    assert_false(rep_mode_wants(def, REP_RES_SKIPPED, -1));
    /* problem: a failure after something else; no previous build, no message */
    assert_true(rep_mode_wants(REP_MODE_PROBLEM, REP_RES_FAILURE, REP_RES_SUCCESS));
    assert_true(rep_mode_wants(REP_MODE_PROBLEM, REP_RES_FAILURE, REP_RES_EXCEPTION));
    assert_true(rep_mode_wants(REP_MODE_PROBLEM, REP_RES_FAILURE, REP_RES_WARNINGS));
    assert_false(rep_mode_wants(REP_MODE_PROBLEM, REP_RES_FAILURE, REP_RES_FAILURE));
    assert_false(rep_mode_wants(REP_MODE_PROBLEM, REP_RES_FAILURE, -1));
    assert_false(rep_mode_wants(REP_MODE_PROBLEM, REP_RES_EXCEPTION, REP_RES_SUCCESS));
    /* change: any change of results, either way */
    assert_true(rep_mode_wants(REP_MODE_CHANGE, REP_RES_SUCCESS, REP_RES_FAILURE));
    assert_true(rep_mode_wants(REP_MODE_CHANGE, REP_RES_CANCELLED, REP_RES_SUCCESS));
    assert_false(rep_mode_wants(REP_MODE_CHANGE, REP_RES_SUCCESS, REP_RES_SUCCESS));
    assert_false(rep_mode_wants(REP_MODE_CHANGE, REP_RES_FAILURE, -1));
    assert_true(rep_mode_wants(REP_MODE_EXCEPTION, REP_RES_EXCEPTION, -1));
    assert_true(rep_mode_wants(REP_MODE_CANCELLED, REP_RES_CANCELLED, -1));
    assert_true(rep_mode_needs_previous(REP_MODE_PROBLEM));
    assert_true(rep_mode_needs_previous(REP_MODE_CHANGE | REP_MODE_FAILING));
    assert_false(rep_mode_needs_previous(def));
}

static void expect(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_texts(void **state)
{
    (void)state;
    expect(rep_status_detected(REP_MODE_PROBLEM, REP_RES_FAILURE, REP_RES_SUCCESS), "new failure");
    expect(rep_status_detected(REP_MODE_FAILING, REP_RES_FAILURE, REP_RES_SUCCESS), "failed build");
    expect(rep_status_detected(REP_MODE_CHANGE, REP_RES_FAILURE, -1), "failed build");
    expect(rep_status_detected(REP_MODE_CHANGE, REP_RES_SUCCESS, REP_RES_FAILURE),
           "restored build");
    expect(rep_status_detected(REP_MODE_PASSING, REP_RES_SUCCESS, REP_RES_FAILURE),
           "passing build");
    expect(rep_status_detected(0, REP_RES_WARNINGS, -1), "problem in the build");
    expect(rep_status_detected(0, REP_RES_EXCEPTION, -1), "build exception");
    expect(rep_status_detected(0, REP_RES_CANCELLED, -1), "cancelled build");
    expect(rep_summary(REP_RES_SUCCESS, "build successful"), "Build succeeded!");
    expect(rep_summary(REP_RES_FAILURE, "failed test"), "BUILD FAILED: failed test");
    expect(rep_summary(REP_RES_EXCEPTION, ""), "BUILD FAILED");
    expect(rep_summary(REP_RES_WARNINGS, "warnings compile"),
           "Build Had Warnings: warnings compile");
    expect(rep_summary(REP_RES_CANCELLED, "x"), "Build was cancelled");
    assert_string_equal(rep_result_name(REP_RES_RETRY), "retry");
    assert_string_equal(rep_result_name(-1), "not finished");
}

static char *render(const char *src, const char *ctx_json)
{
    char *cause = NULL;
    struct rep_tmpl *t = rep_tmpl_compile(src, &cause);
    if (t == NULL)
        fail_msg("%s: %s", src, cause);
    json_t *ctx = json_loads(ctx_json, 0, NULL);
    assert_non_null(ctx);
    char *out = rep_tmpl_render(t, ctx, &cause);
    json_decref(ctx);
    rep_tmpl_free(t);
    return out;
}

static void test_template(void **state)
{
    (void)state;
    expect(render("plain text\n", "{}"), "plain text"); /* as Jinja */
    expect(render("two\n\n", "{}"), "two\n");
    expect(render("a {{ x }} b {{y}}", "{\"x\": \"1\", \"y\": 2}"), "a 1 b 2");
    expect(render("{{ b.p.reason or \"(unknown)\" }}|{{ b.p.w or 'none' }}",
                  "{\"b\": {\"p\": {\"reason\": \"forced\"}}}"),
           "forced|none");
    expect(render("{{ missing }}{{ n }}{{ t }}{{ l }}", "{\"n\": null, \"t\": true, "
                                                        "\"l\": [\"A <a@x>\", \"B\"]}"),
           "TrueA <a@x>, B");
    expect(render("{% if x %}yes{% elif y == \"2\" %}two{% else %}no{% endif %}",
                  "{\"x\": \"\", \"y\": 2}"),
           "two");
    expect(render("{% if not x %}empty{% endif %}{% if y != 'a' %}!{% endif %}",
                  "{\"x\": [], \"y\": \"a\"}"),
           "empty");
    expect(render("{% for s in steps %}[{{ s.n }}{% for l in s.logs %} {{ l }}{% endfor %}]"
                  "{% endfor %}{# a comment #}",
                  "{\"steps\": [{\"n\": 1, \"logs\": [\"stdio\"]}, {\"n\": 2}]}"),
           "[1 stdio][2]");
    /* a loop's variable hides the context's key of that name, inside the loop only */
    expect(render("{{ s }}{% for s in l %}{{ s }}{% endfor %}{{ s }}",
                  "{\"s\": \"o\", \"l\": [\"i\"]}"),
           "oio");
}

static void refused(const char *src, const char *want)
{
    char *cause = NULL;
    struct rep_tmpl *t = rep_tmpl_compile(src, &cause);
    assert_null(t);
    assert_non_null(cause);
    if (strstr(cause, want) == NULL)
        fail_msg("%s: got \"%s\", wanted \"%s\"", src, cause, want);
    free(cause);
}

static void test_template_refused(void **state)
{
    (void)state;
    refused("{{ x | upper }}", "line 1: '|' is not part");
    refused("a\n\n{{ build['x'] }}", "line 3: '['");
    refused("{% include x %}", "'{% include %}' is not part");
    refused("{% if x %}open", "this if has no {% endif %}");
    refused("{% for x in l %}", "this loop has no {% endfor %}");
    refused("{% for x.y in l %}{% endfor %}", "a loop is {% for name in path %}");
    refused("{{ x", "'{{' is not closed");
    refused("{% if a and b %}{% endif %}", "a condition is");
    refused("{% if a %}{% else %}{% elif b %}{% endif %}", "nothing may follow else");
    refused("{% endif %}", "'{% endif %}' is not part");
    refused("{{ x = 1 }}", "only == and != compare");
}

static void test_defaults(void **state)
{
    (void)state;
    const char *ctx = "{\"result_name\": \"failure\", \"buildbot_title\": \"Python\","
                      " \"subject_project\": \"b1\", \"branch_or_revision\": \"main\","
                      " \"status_detected\": \"new failure\", \"buildername\": \"b1\","
                      " \"projects\": \"python/cpython\", \"build_url\": \"U\","
                      " \"workername\": \"w\", \"blamelist\": [\"Jane <j@x>\"],"
                      " \"build\": {\"state_string\": \"failed test\", \"properties\": {},"
                      " \"steps\": [{\"number\": 0, \"name\": \"git\", \"result_name\":"
                      " \"success\", \"logs\": [{\"name\": \"stdio\", \"url\": \"L\"}]},"
                      " {\"number\": 1, \"name\": \"test\", \"result_name\": \"failure\","
                      " \"logs\": []}]}}";
    expect(render(rep_default_subject, ctx),
           "\xe2\x98\xa0 Buildbot (Python): b1 - failed test (main)");
    expect(render(rep_default_body_plain, ctx),
           "A new failure has been detected on builder b1 while building python/cpython.\n\n"
           "Full details are available at:\n    U\n\n"
           "Build state: failed test\nRevision: (unknown)\nWorker: w\n"
           "Build Reason: (unknown)\nBlamelist: Jane <j@x>\n\nSteps:\n\n"
           "- 0: git ( success )\n    Logs:\n        - stdio: L\n\n"
           "- 1: test ( failure )\n\n");
    char *cause = NULL;
    struct rep_tmpl *t = rep_tmpl_compile(rep_default_body_html, &cause);
    assert_non_null(t);
    rep_tmpl_free(t);
}

/* MessageFormatterMissingWorker's defaults render as Buildbot 4.3's Jinja renders them (its
   output for these contexts, with and without an admin). */
static void test_missing_defaults(void **state)
{
    (void)state;
    const char *admin = "{\"buildbot_title\": \"Python\", \"worker\": {\"name\": \"w1\","
                        " \"last_connection\": \"Wed Aug  5 18:44:43 2026\","
                        " \"workerinfo\": {\"admin\": \"Chris <c@example.org>\"}}}";
    const char *none = "{\"buildbot_title\": \"Python\", \"worker\": {\"name\": \"w1\","
                       " \"last_connection\": \"Wed Aug  5 18:44:43 2026\","
                       " \"workerinfo\": {\"admin\": null}}}";
    expect(render(rep_missing_subject, admin), "Buildbot Python worker w1 missing");
    expect(render(rep_missing_body_plain, admin),
           "The Buildbot worker named w1 went away.\n\nIt last disconnected at Wed Aug  5 "
           "18:44:43 2026.\n\n\nThe admin on record (as reported by WORKER:info/admin) was "
           "Chris <c@example.org>.\n");
    expect(render(rep_missing_body_plain, none),
           "The Buildbot worker named w1 went away.\n\nIt last disconnected at Wed Aug  5 "
           "18:44:43 2026.\n\n");
    expect(render(rep_missing_body_html, admin),
           "<p>The Buildbot worker named w1 went away.</p>\n<p>It last disconnected at Wed Aug  "
           "5 18:44:43 2026.</p>\n\n\n<p>The admin on record (as reported by WORKER:info/admin) "
           "was Chris <c@example.org>.</p>\n");
    expect(render(rep_missing_body_html, none),
           "<p>The Buildbot worker named w1 went away.</p>\n<p>It last disconnected at Wed Aug  "
           "5 18:44:43 2026.</p>\n\n");
}

static void test_smtp_classify(void **state)
{
    (void)state;
    assert_int_equal(rep_classify_smtp(250), REP_DELIVERED);
    assert_int_equal(rep_classify_smtp(0), REP_RETRY);   /* no connection, a timeout */
    assert_int_equal(rep_classify_smtp(421), REP_RETRY); /* service not available */
    assert_int_equal(rep_classify_smtp(451), REP_RETRY);
    assert_int_equal(rep_classify_smtp(550), REP_DROP); /* mailbox unavailable */
    assert_int_equal(rep_classify_smtp(554), REP_DROP);
}

static void test_mail_compose(void **state)
{
    (void)state;
    const char *to[] = {"Jane Doe <j@x.org>", "k@x.org"}, *extra[] = {"Reply-To: l@x.org"};
    struct rep_mail_parts p = {.from = "bb@x.org",
                               .subject = "\xe2\x98\xa0 Buildbot (T): b - failed",
                               .body = "body\n",
                               .date = "Fri, 04 Dec 2026 16:00:00 +0000",
                               .message_id = "<m@x.org>",
                               .to = to,
                               .n_to = 1,
                               .cc = to + 1,
                               .n_cc = 1,
                               .extra = extra,
                               .n_extra = 1};
    char *cause = NULL;
    expect(rep_mail_compose(&p, &cause),
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
           "Content-Transfer-Encoding: base64\r\nDate: Fri, 04 Dec 2026 16:00:00 +0000\r\n"
           "Subject: =?utf-8?b?4pigIEJ1aWxkYm90IChUKTogYiAtIGZhaWxlZA==?=\r\n"
           "From: bb@x.org\r\nReply-To: l@x.org\r\nTo: \"Jane Doe\" <j@x.org>\r\n"
           "CC: k@x.org\r\nMessage-ID: <m@x.org>\r\n\r\nYm9keQoKCg==\r\n");
    p.subject = "two\nlines";
    assert_null(rep_mail_compose(&p, &cause));
    assert_string_equal(cause, "Subject cannot contain newlines");
    free(cause);
    /* a long subject: encoded words of at most 75 characters, on folded lines */
    char subject[400] = "";
    for (int i = 0; i < 40; i++)
        strcat(subject, "\xc3\xa9x");
    p.subject = subject;
    char *m = rep_mail_compose(&p, &cause);
    assert_non_null(m);
    const char *subj = strstr(m, "Subject: "), *end = strstr(subj, "\r\nFrom:");
    for (const char *l = subj + 9; l < end;) {
        const char *e = strstr(l, "\r\n");
        assert_true(e - l <= 76);
        l = e + 3; /* CRLF and the folding space */
    }
    free(m);
    expect(rep_mail_address("J\xc3\xa9 <j@x.org>"), "\"=?utf-8?b?SsOp?=\" <j@x.org>");
}

static void test_mail_attachments(void **state)
{
    (void)state;
    const char *to[] = {"j@x.org"};
    struct rep_attachment att[] = {{"test.stdio", "ohi\n", 4}, {"t\xc3\xa9st \"x\".log", "", 0}};
    struct rep_mail_parts p = {.from = "bb@x.org",
                               .subject = "s",
                               .body = "body\n\n",
                               .html = true,
                               .date = "D",
                               .message_id = "<m@x.org>",
                               .to = to,
                               .n_to = 1,
                               .att = att,
                               .n_att = 2};
    char *cause = NULL;
    expect(rep_mail_compose(&p, &cause),
           "Content-Type: multipart/mixed; boundary=\"===============bbmaster==\"\r\n"
           "MIME-Version: 1.0\r\nDate: D\r\nSubject: s\r\nFrom: bb@x.org\r\nTo: j@x.org\r\n"
           "Message-ID: <m@x.org>\r\n\r\n"
           "--===============bbmaster==\r\n"
           "Content-Type: text/html; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nYm9keQoK\r\n"
           "--===============bbmaster==\r\n"
           "Content-Type: text/plain; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           "Content-Disposition: attachment; filename=\"test.stdio\"\r\n\r\nb2hpCg==\r\n"
           "--===============bbmaster==\r\n"
           "Content-Type: text/plain; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           "Content-Disposition: attachment; filename*=utf-8''t%C3%A9st%20%22x%22.log\r\n\r\n"
           "\r\n--===============bbmaster==--\r\n");
}

static void test_mail_valid(void **state)
{
    (void)state; /* Buildbot's VALID_EMAIL */
    const char *good[] = {"a@b.org",     "a.b+c@d-e.f.g", "a@b.org.",
                          "<a@b.org>",   "J <a@b.c>",     "Jane Doe <a@b.c>  ",
                          "x <a<b@c.d>", "a@b@c.org",     "<a@b.c"};
    const char *bad[] = {"a@b",      "a@localhost", "@b.org",   "a b@c.org", "a@b..org",
                         "a@b.org ", "J<a@b.c>",    " <a@b.c>", "a@b_c.org", "Jane <a@b>",
                         "",         "a@.b.org",    "a@b.org.."};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(rep_mail_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(rep_mail_valid(bad[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_parse),
        cmocka_unit_test(test_mode_wants),
        cmocka_unit_test(test_texts),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_template_refused),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_missing_defaults),
        cmocka_unit_test(test_smtp_classify),
        cmocka_unit_test(test_mail_compose),
        cmocka_unit_test(test_mail_valid),
        cmocka_unit_test(test_mail_attachments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
