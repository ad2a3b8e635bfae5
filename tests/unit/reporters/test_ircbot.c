/*
 * Unit tests for the IRC bot's commands (src/reporters/ircbot.c): what is addressed to the
 * bot, shlex's splitting and its errors, authz as Buildbot's getCommandMethod reads it, the
 * answers the bot gives by itself in words.py's words (help, commands, version, dance, the
 * unknown and refused commands), what it hands the engine, fuzzyInterval with Python's
 * rounding, the result texts, the options and checks of `force build`, and the rate per nick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "reporters/reporters.h"
#include "util/util.h"

static void test_addressed(void **state)
{
    (void)state;
    assert_string_equal(rep_irc_addressed("cmdbot: status", "cmdbot", false), "status");
    assert_string_equal(rep_irc_addressed("CmdBot,  last x", "cmdbot", false), "last x");
    assert_string_equal(rep_irc_addressed("  help", "cmdbot", true), "help");
    assert_null(rep_irc_addressed("cmdbotx: status", "cmdbot", false));
    assert_null(rep_irc_addressed("status", "cmdbot", false));
    assert_null(rep_irc_addressed("cmdbot:   ", "cmdbot", false));
    assert_null(rep_irc_addressed("\x01"
                                  "ACTION waves\x01",
                                  "cmdbot", true));
}

static int split(const char *s, char **argv, int max, const char **error)
{
    static char out[REP_IRC_LINE_MAX + 1];
    int argc = -1;
    int rc = rep_irc_split(s, out, argv, max, &argc, error);
    return rc == 0 ? argc : -1;
}

static void test_split(void **state)
{
    (void)state;
    char *argv[REP_IRC_ARGS_MAX];
    const char *error = NULL;
    assert_int_equal(split("  a \"b c\"  d'e f' ''", argv, REP_IRC_ARGS_MAX, &error), 4);
    assert_string_equal(argv[0], "a");
    assert_string_equal(argv[1], "b c");
    assert_string_equal(argv[2], "de f");
    assert_string_equal(argv[3], "");
    assert_int_equal(split("x\\ y \"q\\\"\\\\\\n\" 'a\\b'", argv, REP_IRC_ARGS_MAX, &error), 3);
    assert_string_equal(argv[0], "x y");
    assert_string_equal(argv[1], "q\"\\\\n"); /* in "...", \ escapes only " and \ */
    assert_string_equal(argv[2], "a\\b");     /* in '...', nothing is escaped */
    assert_int_equal(split("", argv, REP_IRC_ARGS_MAX, &error), 0);
    assert_int_equal(split("a 'b", argv, REP_IRC_ARGS_MAX, &error), -1);
    assert_string_equal(error, "No closing quotation");
    assert_int_equal(split("a\\", argv, REP_IRC_ARGS_MAX, &error), -1);
    assert_string_equal(error, "No escaped character");
    assert_int_equal(split("1 2 3 4", argv, 3, &error), -1);
    assert_string_equal(error, "Too many arguments");
}

static void test_authz(void **state)
{
    (void)state;
    /* no authz: the harmless commands for everyone, force and stop for nobody */
    assert_true(rep_irc_allowed(NULL, 0, "status", "al"));
    assert_false(rep_irc_allowed(NULL, 0, "force", "al"));
    assert_false(rep_irc_allowed(NULL, 0, "stop", "al"));
    char *al[] = {"al"};
    struct cfg_irc_acl a[] = {{"force", false, al, 1}, {"!", true, NULL, 0}};
    assert_true(rep_irc_allowed(a, 1, "force", "AL"));
    assert_false(rep_irc_allowed(a, 1, "force", "bo"));
    assert_false(rep_irc_allowed(a, 1, "stop", "al"));
    assert_true(rep_irc_allowed(a, 2, "stop", "bo"));   /* "!": the dangerous ones */
    assert_false(rep_irc_allowed(a, 2, "force", "bo")); /* its own entry first */
    struct cfg_irc_acl b[] = {{"*", false, NULL, 0}, {"help", true, NULL, 0}};
    assert_false(rep_irc_allowed(b, 2, "status", "al")); /* "*": every command */
    assert_true(rep_irc_allowed(b, 2, "help", "al"));
    struct cfg_irc_acl c[] = {{"", false, al, 1}};
    assert_true(rep_irc_allowed(c, 1, "list", "al")); /* "": the harmless ones */
    assert_false(rep_irc_allowed(c, 1, "list", "bo"));
    assert_false(rep_irc_allowed(c, 1, "force", "al"));
}

static struct rep_irc_request seen;
static char seen_args[8][64];
static int handled;

static char *handler(void *arg, const struct rep_irc_request *req)
{
    (void)arg;
    handled++;
    seen = *req;
    for (int i = 0; i < req->argc && i < 8; i++)
        snprintf(seen_args[i], sizeof seen_args[i], "%s", req->argv[i]);
    static char user[128], nick[64], command[32];
    snprintf(user, sizeof user, "%s", req->user);
    snprintf(nick, sizeof nick, "%s", req->nick);
    snprintf(command, sizeof command, "%s", req->command);
    seen.user = user;
    seen.nick = nick;
    seen.command = command;
    return xstrdup("engine's answer");
}

static int chatted;
static char chat_channel[64], chat_command[16];

/* The bot's handler of mute and unmute. */
static char *chat(void *arg, const struct rep_irc_request *req)
{
    (void)arg;
    chatted++;
    snprintf(chat_channel, sizeof chat_channel, "%s", req->channel ? req->channel : "(private)");
    snprintf(chat_command, sizeof chat_command, "%s", req->command);
    return NULL;
}

static char *say(const char *channel, const char *message)
{
    struct rep_irc_said s = {
        .bot = "IRC", .nick = "Al", .channel = channel, .message = message, .chat = chat};
    return rep_irc_command(&s, NULL, 0, handler, NULL);
}

static void expect(const char *channel, const char *message, const char *answer)
{
    char *text = say(channel, message);
    if (answer == NULL)
        assert_null(text);
    else
        assert_string_equal(text, answer);
    free(text);
}

static void test_own_answers(void **state)
{
    (void)state;
    char *text = say(NULL, "help");
    assert_string_equal(text, "commands - list available commands\n"
                              "dance - dance, dance academy...\n"
                              "force - force a build\n"
                              "hello - say hello\n"
                              "help - give help for a command or one of it's arguments\n"
                              "join - join a channel\n"
                              "last - list last build status for a builder\n"
                              "leave - leave a channel\n"
                              "list - list configured builders or workers\n"
                              "notify - notify me about build events\n"
                              "shutdown - shutdown the buildbot master\n"
                              "status - list status of a builder (or all builders)\n"
                              "stop - stop a running build\n"
                              "version - show buildbot version\n"
                              "watch - announce the completion of an active build");
    free(text);
    expect(NULL, "help force",
           "Usage: force build [--codebase=CODEBASE] [--branch=branch] [--revision=revision] "
           "[--props=prop1=val1,prop2=val2...] _which_ _reason_ - Force a build");
    expect(NULL, "HELP status",
           "Usage: status [_which_] - list status of a builder (or all "
           "builders)");
    expect(NULL, "help hello", "No usage info for 'hello'");
    expect(NULL, "help hello x", "No usage info for 'hello' 'x'");
    expect(NULL, "help source", "There is no such command 'source'.");
    expect(NULL, "help destroy", "No usage info for 'destroy'");
    expect(NULL, "help shutdown start", "Usage: shutdown start - start a clean shutdown");
    expect(NULL, "help shutdown later", "No usage info for 'shutdown' 'later'");
    expect(NULL, "help shutdown",
           "Usage: shutdown check|start|stop|now - shutdown the buildbot "
           "master");
    expect(NULL, "help shutdown stop now", "No usage info for 'shutdown' 'stop' 'now'");
    expect(NULL, "help notify",
           "Usage: notify on|off|list [_EVENT_] ... - notify me about build events;  event "
           "should be one or more of: 'started', 'finished', 'failure', 'success', "
           "'exception', 'problem', 'recovery', 'better', or 'worse'");
    expect(NULL, "help mute",
           "Usage: mute - suppress all messages until a corresponding 'unmute' is issued");
    const char *list = "Buildbot commands: commands, dance, destroy, force, hello, help, hustle, "
                       "join, last, leave, list, mute, notify, shutdown, status, stop, unmute, "
                       "version, watch";
    expect("#c", "commands", list);
    char want[256];
    snprintf(want, sizeof want, "I don't get this 'fly'...\n%s", list);
    expect("#c", "fly me", want);
    expect("#c", "fly me!", "What you say!");
    expect("#c", "force build alpha", "Thou shall not pass, al!!!");
    expect("#c", "stop build alpha now", "Thou shall not pass, al!!!");
    expect("#c", "join #other", "Thou shall not pass, al!!!"); /* dangerous, as in irc.py */
    expect("#c", "leave #c", "Thou shall not pass, al!!!");
    expect("#c", "shutdown check", "Thou shall not pass, al!!!");
    expect(NULL, "version", "This is bbmaster-" BBM_VERSION " at your service");
    expect(NULL, "dance", "<(^.^<)\n<(^.^)>\n(>^.^)>\n(7^.^)7\n(>^.^<)");
    text = say(NULL, "hello");
    assert_true(strlen(text) > 0 && strchr(text, '\n') == NULL);
    free(text);
    expect(NULL, "help 'x", "No closing quotation");
    assert_int_equal(handled, 0);
}

static void test_engine_answers(void **state)
{
    (void)state;
    handled = 0;
    expect("#Chan", "STATUS 'a b'", "engine's answer");
    assert_int_equal(handled, 1);
    assert_string_equal(seen.command, "status");
    assert_string_equal(seen.nick, "al");
    assert_string_equal(seen.user, "al on #chan");
    assert_string_equal(seen.bot, "IRC");
    assert_int_equal(seen.argc, 1);
    assert_string_equal(seen_args[0], "a b");
    expect(NULL, "  last", "engine's answer");
    assert_string_equal(seen.user, "al");
    assert_int_equal(seen.argc, 0);
    char *al[] = {"al"};
    struct cfg_irc_acl a[] = {{"force", false, al, 1}};
    struct rep_irc_said s = {
        .bot = "IRC", .nick = "AL", .channel = "#c", .message = "force build x"};
    char *text = rep_irc_command(&s, a, 1, handler, NULL);
    assert_string_equal(text, "engine's answer");
    free(text);
    assert_string_equal(seen.command, "force");
    assert_int_equal(seen.argc, 2);
    text = rep_irc_command(&s, a, 1, NULL, NULL); /* no engine */
    assert_string_equal(text, "Something bad happened (see logs)");
    free(text);
    expect(NULL, "status \"x", "No closing quotation");
    assert_int_equal(handled, 3);
}

/* mute and unmute go to the chat's handler, with the channel; who must be an operator. */
static void test_chat_answers(void **state)
{
    (void)state;
    chatted = 0;
    expect("#Chan", "MUTE", NULL);
    assert_string_equal(chat_channel, "#chan");
    assert_string_equal(chat_command, "mute");
    expect(NULL, "unmute", NULL);
    assert_string_equal(chat_channel, "(private)");
    assert_string_equal(chat_command, "unmute");
    assert_int_equal(chatted, 2);
    struct rep_irc_said s = {.bot = "IRC", .nick = "al", .channel = "#c", .message = "mute"};
    char *text = rep_irc_command(&s, NULL, 0, handler, NULL); /* no chat handler */
    assert_string_equal(text, "Something bad happened (see logs)");
    free(text);
    char *none[] = {"bo"};
    struct cfg_irc_acl deny[] = {{"mute", false, none, 1}};
    text = rep_irc_command(&s, deny, 1, handler, NULL); /* authz on mute itself */
    assert_string_equal(text, "Thou shall not pass, al!!!");
    free(text);

    assert_true(rep_irc_names_op("@Al bo +cy", "al"));
    assert_true(rep_irc_names_op("bo %al", "AL"));
    assert_true(rep_irc_names_op("~al", "al") && rep_irc_names_op("&al", "al"));
    assert_false(rep_irc_names_op("+al @bo", "al"));
    assert_false(rep_irc_names_op("@alice al", "al"));
    assert_false(rep_irc_names_op("@", "al"));
    assert_false(rep_irc_names_op("", "al"));
    char *al[] = {"Al"};
    struct cfg_irc_acl a[] = {{"mute", false, al, 1}, {"notify", true, NULL, 0}};
    assert_false(rep_irc_op_required(a, 2, "mute", "al"));
    assert_true(rep_irc_op_required(a, 2, "mute", "bo"));
    assert_false(rep_irc_op_required(a, 2, "notify", "bo"));
    assert_true(rep_irc_op_required(NULL, 0, "mute", "al"));
}

static void test_fuzzy(void **state)
{
    (void)state;
    static const struct {
        long long s;
        const char *text;
    } cases[] = {
        {-5, "a moment"},          {1, "a moment"},         {2, "2 seconds"},
        {19, "19 seconds"},        {25, "20 seconds"},      {35, "40 seconds"},
        {54, "50 seconds"},        {55, "a minute"},        {90, "2 minutes"},
        {150, "2 minutes"},        {1140, "19 minutes"},    {1500, "20 minutes"},
        {2100, "40 minutes"},      {3300, "an hour"},       {7200, "2 hours"},
        {86400, "a day"},          {3 * 86400, "3 days"},   {40 * 86400, "a month"},
        {100 * 86400, "3 months"}, {400 * 86400, "a year"}, {1000 * 86400, "3 years"},
    };
    char buf[32];
    for (size_t i = 0; i < UTIL_NELEM(cases); i++)
        assert_string_equal(rep_irc_fuzzy(cases[i].s, buf, sizeof buf), cases[i].text);
}

static void test_result_text(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(rep_irc_result_text(0, true, false, buf, sizeof buf), ", Success");
    assert_string_equal(rep_irc_result_text(0, true, true, buf, sizeof buf), "\x03"
                                                                             "3, Success\x0f");
    assert_string_equal(rep_irc_result_text(2, false, false, buf, sizeof buf), "failed");
    assert_string_equal(rep_irc_result_text(6, false, true, buf, sizeof buf),
                        "\x03"
                        "13was cancelled\x0f");
    assert_string_equal(rep_irc_result_text(9, false, true, buf, sizeof buf), "finished");
}

static int force(const char *args, struct rep_irc_force *f, char **reply, char **log)
{
    static char out[REP_IRC_LINE_MAX + 1];
    static char *argv[REP_IRC_ARGS_MAX];
    int argc = 0;
    const char *error;
    assert_int_equal(rep_irc_split(args, out, argv, REP_IRC_ARGS_MAX, &argc, &error), 0);
    *reply = *log = NULL;
    return rep_irc_force_parse(argc, argv, f, reply, log);
}

static void force_refused(const char *args, const char *reply_text, const char *log_text)
{
    struct rep_irc_force f;
    char *reply, *log;
    assert_int_equal(force(args, &f, &reply, &log), -1);
    assert_string_equal(reply, reply_text);
    if (log_text == NULL)
        assert_null(log);
    else
        assert_string_equal(log, log_text);
    free(reply);
    free(log);
    rep_irc_force_clear(&f);
}

static void test_force_options(void **state)
{
    (void)state;
    struct rep_irc_force f;
    char *reply, *log;
    assert_int_equal(force("--branch=main alpha because 'it is' time", &f, &reply, &log), 0);
    assert_string_equal(f.builder, "alpha");
    assert_string_equal(f.branch, "main");
    assert_string_equal(f.revision, "HEAD");
    assert_string_equal(f.codebase, "");
    assert_string_equal(f.project, "");
    assert_null(f.props);
    assert_string_equal(f.reason, "because it is time");
    rep_irc_force_clear(&f);
    assert_int_equal(force("--rev abc --proj p --props=a=1 -- --alpha", &f, &reply, &log), 0);
    assert_string_equal(f.revision, "abc");
    assert_string_equal(f.project, "p");
    assert_string_equal(f.props, "a=1");
    assert_string_equal(f.builder, "--alpha");
    assert_null(f.reason);
    rep_irc_force_clear(&f);
    assert_int_equal(force("alpha --branch=x", &f, &reply, &log), 0); /* getopt stops */
    assert_string_equal(f.branch, "master");
    assert_string_equal(f.reason, "--branch=x");
    rep_irc_force_clear(&f);
    assert_int_equal(force("--reason=why --builder=b", &f, &reply, &log), 0);
    assert_string_equal(f.builder, "b");
    assert_string_equal(f.reason, "why");
    rep_irc_force_clear(&f);
    assert_int_equal(force("", &f, &reply, &log), 0);
    assert_null(f.builder);
    force_refused("--b=x a", "Something bad happened (see logs)",
                  "option --b=x not a unique prefix");
    force_refused("--nope=1 a", "Something bad happened (see logs)",
                  "option --nope=1 not recognized");
    force_refused("-x a", "Something bad happened (see logs)", "option -x not recognized");
    force_refused("--branch", "Something bad happened (see logs)",
                  "option --branch requires argument");
    force_refused("--builder=a b", "--builder provided in two ways", NULL);
    force_refused("--reason=r a b", "--reason provided in two ways", NULL);
}

static char *check(const char *args, json_t **props, char **log)
{
    struct rep_irc_force f;
    char *reply;
    assert_int_equal(force(args, &f, &reply, log), 0);
    *props = NULL;
    char *text = rep_irc_force_check(&f, props, log);
    rep_irc_force_clear(&f);
    return text;
}

static void test_force_checks(void **state)
{
    (void)state;
    json_t *props;
    char *log = NULL;
    char *text = check("--branch=a;b x", &props, &log);
    assert_string_equal(text, "Sorry, bad branch 'a;b'");
    free(text);
    text = check("--revision=a*b x", &props, &log);
    assert_string_equal(text, "Sorry, bad revision 'a*b'");
    free(text);
    text = check("--props=a=b\\ c x", &props, &log);
    assert_string_equal(text, "Sorry, bad property name='a', value='b c'");
    free(text);
    text = check("--props=a x", &props, &log);
    assert_string_equal(text, "Something bad happened (see logs)");
    assert_string_equal(log, "force: property 'a' has no '='");
    free(text);
    free(log);
    log = NULL;
    assert_null(
        check("--branch=feature/x-1 --revision='ab 12' --props=a=1,b=x:y,a=3 x", &props, &log));
    char *dump = json_dumps(props, JSON_COMPACT);
    assert_string_equal(dump, "[[\"a\",\"3\",\"Force Build Chat\"],[\"b\",\"x:y\",\"Force Build "
                              "Chat\"]]");
    free(dump);
    json_decref(props);
    assert_null(check("--branch= x", &props, &log)); /* empty: not checked */
    json_decref(props);
    assert_null(log);
}

static void test_rate(void **state)
{
    (void)state;
    struct rep_irc_rates r = {0};
    for (int i = 0; i < REP_IRC_CMD_BURST; i++)
        assert_int_equal(rep_irc_rate_take(&r, "al", 1000), 1);
    assert_int_equal(rep_irc_rate_take(&r, "AL", 1000), 0); /* logged once */
    assert_int_equal(rep_irc_rate_take(&r, "al", 1500), -1);
    assert_int_equal(rep_irc_rate_take(&r, "bo", 1500), 1); /* another nick */
    assert_int_equal(rep_irc_rate_take(&r, "al", 1000 + REP_IRC_CMD_MS), 1);
    assert_int_equal(rep_irc_rate_take(&r, "al", 1000 + REP_IRC_CMD_MS), 0);
    /* a full table forgets the idlest nick, not one that is being limited */
    char nick[16];
    for (int i = 2; i < REP_IRC_NICKS_MAX; i++) {
        snprintf(nick, sizeof nick, "n%d", i);
        assert_int_equal(rep_irc_rate_take(&r, nick, 10000), 1);
    }
    assert_int_equal(r.n, REP_IRC_NICKS_MAX);
    assert_int_equal(rep_irc_rate_take(&r, "new", 10000), 1);
    assert_int_equal(r.n, REP_IRC_NICKS_MAX);
    bool al = false;
    for (size_t i = 0; i < r.n; i++)
        al = al || strcmp(r.e[i].nick, "al") == 0;
    assert_true(al);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addressed),     cmocka_unit_test(test_split),
        cmocka_unit_test(test_authz),         cmocka_unit_test(test_own_answers),
        cmocka_unit_test(test_chat_answers),  cmocka_unit_test(test_engine_answers),
        cmocka_unit_test(test_fuzzy),         cmocka_unit_test(test_result_text),
        cmocka_unit_test(test_force_options), cmocka_unit_test(test_force_checks),
        cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
