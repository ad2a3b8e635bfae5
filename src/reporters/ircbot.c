/*
 * The IRC bot's commands, as Buildbot's words.py (Contact.handleMessage and its
 * command_* methods) and irc.py answer them: what is addressed to the bot, the
 * arguments split as shlex does, authz, the answers that need no state (help,
 * commands, hello, version, dance), the options of `force build` with their
 * checks, the texts of results and intervals, and a command rate per nick.
 * The commands that read or change the engine's state (status, last, list,
 * force, stop, watch) go to the handler the engine gave (src/engine/ircbot.c),
 * those of the chat itself (mute, unmute, notify, join, leave) to the bot's
 * (irc.c).  Pure:
 * irc.c calls it for each PRIVMSG; tests/unit/reporters/test_irc.c and
 * fuzz/fuzz_irc.c drive it directly.
 */
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "util/util.h"

/* ------------------------------------------------------------ addressing and words */

const char *rep_irc_addressed(const char *text, const char *nick, bool private_chat)
{
    if (text[0] == '\x01') /* CTCP (ACTION...): Twisted does not hand it to privmsg */
        return NULL;
    if (!private_chat) {
        size_t n = strlen(nick);
        if (n == 0 || strncasecmp(text, nick, n) != 0 || (text[n] != ':' && text[n] != ','))
            return NULL;
        text += n + 1;
    }
    while (*text == ' ' || *text == '\t')
        text++;
    return *text != '\0' ? text : NULL;
}

static bool shlex_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int rep_irc_split(const char *s, char *out, char **argv, int max, int *argc, const char **error)
{
    int n = 0;
    char *o = out;
    const char *p = s;
    for (;;) {
        while (shlex_space(*p))
            p++;
        if (*p == '\0')
            break;
        if (n == max) {
            *error = "Too many arguments";
            return -1;
        }
        argv[n++] = o;
        while (*p != '\0' && !shlex_space(*p)) {
            char q = *p;
            if (q == '\\') {
                if (p[1] == '\0') {
                    *error = "No escaped character";
                    return -1;
                }
                *o++ = p[1];
                p += 2;
            } else if (q == '\'' || q == '"') {
                p++;
                while (*p != '\0' && *p != q) {
                    if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
                        p++;
                    *o++ = *p++;
                }
                if (*p != q) {
                    *error = "No closing quotation";
                    return -1;
                }
                p++;
            } else {
                *o++ = *p++;
            }
        }
        *o++ = '\0';
    }
    *argc = n;
    return 0;
}

/* ------------------------------------------------------------ the commands */

enum answer { BY_BOT, BY_ENGINE, BY_CHAT };

/* Contact's commands that bbmaster has, sorted as build_commands sorts them: the name, the
   docstring (help's list; irc.py's mute and unmute have none), the usage (help COMMAND),
   dangerous (@dangerousCommand). */
static const struct command {
    const char *name, *doc, *usage;
    bool dangerous;
    enum answer by;
} commands[] = {
    {"commands", "list available commands", "commands - List available commands", false, BY_BOT},
    {"dance", "dance, dance academy...", NULL, false, BY_BOT},
    {"destroy", NULL, NULL, false, BY_CHAT},
    {"force", "force a build", NULL, true, BY_ENGINE}, /* usage: rep_irc_force_usage */
    {"hello", "say hello", NULL, false, BY_BOT},
    {"help", "give help for a command or one of it's arguments",
     "help [_command_ _arg_ [_subarg_ ...]] - Give help for _command_ or one of it's arguments",
     false, BY_BOT},
    {"hustle", NULL, "dondon on #qutebrowser: qutebrowser-bb needs to learn to do the hustle",
     false, BY_CHAT},
    {"join", "join a channel", "join #channel - join a channel #channel", true, BY_CHAT},
    {"last", "list last build status for a builder",
     "last [_which_] - list last build status for builder _which_", false, BY_ENGINE},
    {"leave", "leave a channel", "leave #channel - leave a channel #channel", true, BY_CHAT},
    {"list", "list configured builders or workers",
     "list [all|N] builders|workers|changes - list configured builders, workers, or N recent "
     "changes",
     false, BY_ENGINE},
    {"mute", NULL, "mute - suppress all messages until a corresponding 'unmute' is issued", false,
     BY_CHAT},
    {"notify", "notify me about build events",
     "notify on|off|list [_EVENT_] ... - notify me about build events;  event should be one or "
     "more of: 'started', 'finished', 'failure', 'success', 'exception', 'problem', "
     "'recovery', 'better', or 'worse'",
     false, BY_CHAT},
    {"shutdown", "shutdown the buildbot master",
     "shutdown check|start|stop|now - shutdown the buildbot master", true, BY_ENGINE},
    {"status", "list status of a builder (or all builders)",
     "status [_which_] - list status of a builder (or all builders)", false, BY_ENGINE},
    {"stop", "stop a running build", "stop build _which_ _reason_ - Stop a running build", true,
     BY_ENGINE},
    {"unmute", NULL, "unmute - disable a previous 'mute'", false, BY_CHAT},
    {"version", "show buildbot version", NULL, false, BY_BOT},
    {"watch", "announce the completion of an active build",
     "watch _which_ - announce the completion of an active build", false, BY_ENGINE},
};

const char rep_irc_force_usage[] =
    "force build [--codebase=CODEBASE] [--branch=branch] [--revision=revision] "
    "[--props=prop1=val1,prop2=val2...] _which_ _reason_ - Force a build";

/* help COMMAND ARG: the usages words.py keeps per argument (shutdown's dictionary). */
static const struct {
    const char *command, *arg, *usage;
} arg_usages[] = {
    {"shutdown", "check",
     "shutdown check - check if the buildbot master is running or shutting down"},
    {"shutdown", "start", "shutdown start - start a clean shutdown"},
    {"shutdown", "stop", "shutdown cancel - stop the clean shutdown"},
    {"shutdown", "now",
     "shutdown now - shutdown immediately without waiting for the builders to finish"},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < UTIL_NELEM(commands); i++)
        if (strcasecmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static const struct cfg_irc_acl *acl_of(const struct cfg_irc_acl *authz, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(authz[i].command, key) == 0)
            return &authz[i];
    return NULL;
}

bool rep_irc_allowed(const struct cfg_irc_acl *authz, size_t n, const char *command,
                     const char *nick)
{
    const struct command *c = find_command(command);
    const struct cfg_irc_acl *acl = acl_of(authz, n, command);
    if (acl == NULL) {
        acl = acl_of(authz, n, c != NULL && c->dangerous ? "!" : "");
        const struct cfg_irc_acl *star = acl_of(authz, n, "*");
        if (star != NULL)
            acl = star;
        if (acl == NULL)
            return c == NULL || !c->dangerous;
    }
    if (acl->all)
        return true;
    for (size_t i = 0; i < acl->n_nicks; i++)
        if (strcasecmp(acl->nicks[i], nick) == 0)
            return true;
    return false;
}

static const char *const greetings[] = {
    "Hello",  "Hi",         "Bonjour",  "Salut",    "Hola",      "Hallo",   "Ciao",
    "Olá",    "Hej",        "Hei",      "Ahoj",     "Cześć",     "Szia",    "Merhaba",
    "Jambo",  "Aloha",      "Shalom",   "Salaam",   "Namaste",   "Kia ora", "Sawubona",
    "Ni hao", "Konnichiwa", "Annyeong", "Xin chào", "Sawasdee",  "Privet",  "Dobrý den",
    "Moien",  "Tere",       "Labas",    "Sveiki",   "Dia dhuit", "Helo",    "Kaixo",
};

const char *rep_irc_greeting(void)
{
    return greetings[(size_t)random() % UTIL_NELEM(greetings)];
}

static char *help(int argc, char **argv)
{
    struct buf out;
    buf_init(&out, 0);
    if (argc == 0) {
        for (size_t i = 0; i < UTIL_NELEM(commands); i++)
            if (commands[i].doc != NULL)
                buf_printf(&out, "%s%s - %s", out.len > 0 ? "\n" : "", commands[i].name,
                           commands[i].doc);
        return buf_take(&out);
    }
    const struct command *c = find_command(argv[0]);
    if (c == NULL) {
        buf_free(&out);
        return xasprintf("There is no such command '%s'.", argv[0]);
    }
    const char *usage = strcmp(c->name, "force") == 0 ? rep_irc_force_usage : c->usage;
    for (size_t i = 0; i < UTIL_NELEM(arg_usages) && argc > 1; i++) {
        if (strcmp(arg_usages[i].command, c->name) != 0)
            continue;
        usage = NULL; /* a dictionary: the argument's usage or none */
        if (argc == 2 && strcmp(arg_usages[i].arg, argv[1]) == 0) {
            usage = arg_usages[i].usage;
            break;
        }
    }
    if (usage != NULL) {
        buf_printf(&out, "Usage: %s", usage);
        return buf_take(&out);
    }
    buf_addstr(&out, "No usage info for");
    for (int i = 0; i < argc; i++)
        buf_printf(&out, " '%s'", argv[i]);
    return buf_take(&out);
}

static char *command_list(void)
{
    struct buf out;
    buf_init(&out, 0);
    buf_addstr(&out, "Buildbot commands: ");
    for (size_t i = 0; i < UTIL_NELEM(commands); i++)
        buf_printf(&out, "%s%s", i > 0 ? ", " : "", commands[i].name);
    return buf_take(&out);
}

/* What the bot answers by itself. */
static char *own_answer(const struct command *c, int argc, char **argv)
{
    if (strcmp(c->name, "help") == 0)
        return help(argc, argv);
    if (strcmp(c->name, "commands") == 0)
        return command_list();
    if (strcmp(c->name, "hello") == 0)
        return xstrdup(rep_irc_greeting());
    if (strcmp(c->name, "version") == 0)
        return xasprintf("This is bbmaster-%s at your service", BBM_VERSION);
    /* dance: irc.py says these over five seconds; the line rate spaces them here */
    return xstrdup("<(^.^<)\n<(^.^)>\n(>^.^)>\n(7^.^)7\n(>^.^<)");
}

static void lower(char *s)
{
    for (; *s != '\0'; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

char *rep_irc_command(const struct rep_irc_said *said, const struct cfg_irc_acl *authz,
                      size_t n_authz, rep_irc_handler h, void *arg)
{
    const char *message = said->message;
    while (*message == ' ' || *message == '\t')
        message++;
    size_t mlen = strlen(message);
    if (mlen == 0 || mlen > REP_IRC_LINE_MAX)
        return NULL;
    char word[REP_IRC_LINE_MAX + 1], nick[64], channel[REP_IRC_LINE_MAX + 1];
    size_t wlen = strcspn(message, " ");
    snprintf(word, sizeof word, "%.*s", (int)wlen, message);
    snprintf(nick, sizeof nick, "%s", said->nick);
    lower(nick);
    const char *args = message + wlen;
    const struct command *c = find_command(word);
    if (c == NULL && message[mlen - 1] == '!')
        return xstrdup("What you say!");
    if (c == NULL) {
        char *list = command_list();
        char *text = xasprintf("I don't get this '%s'...\n%s", word, list);
        free(list);
        return text;
    }
    if (!rep_irc_allowed(authz, n_authz, c->name, nick))
        return xasprintf("Thou shall not pass, %s!!!", nick);
    char split[REP_IRC_LINE_MAX + 1];
    char *argv[REP_IRC_ARGS_MAX];
    int argc = 0;
    const char *error = NULL;
    if (rep_irc_split(args, split, argv, REP_IRC_ARGS_MAX, &argc, &error) != 0)
        return xstrdup(error);
    if (c->by == BY_BOT)
        return own_answer(c, argc, argv);
    if (c->by == BY_CHAT) {
        h = said->chat;
        arg = said->chat_arg;
    }
    if (h == NULL)
        return xstrdup("Something bad happened (see logs)");
    char user[REP_IRC_LINE_MAX + 80];
    if (said->channel != NULL) {
        snprintf(channel, sizeof channel, "%s", said->channel);
        lower(channel);
        snprintf(user, sizeof user, "%s on %s", nick, channel);
    } else {
        snprintf(user, sizeof user, "%s", nick);
    }
    struct rep_irc_request req = {.bot = said->bot,
                                  .nick = nick,
                                  .user = user,
                                  .channel = said->channel != NULL ? channel : NULL,
                                  .watched = said->watched,
                                  .n_watched = said->n_watched,
                                  .command = c->name,
                                  .argv = argv,
                                  .argc = argc};
    return h(arg, &req);
}

bool rep_irc_names_op(const char *names, const char *nick)
{
    size_t n = strlen(nick);
    for (const char *p = names; *p != '\0';) {
        size_t len = strcspn(p, " ");
        if (len > 1 && strchr("@&~%", p[0]) != NULL && len - 1 == n &&
            strncasecmp(p + 1, nick, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

bool rep_irc_op_required(const struct cfg_irc_acl *authz, size_t n, const char *command,
                         const char *nick)
{
    const struct cfg_irc_acl *acl = acl_of(authz, n, command);
    if (acl == NULL)
        return true;
    if (acl->all)
        return false; /* irc.py raises here ('in True'); bbmaster reads it as everyone */
    for (size_t i = 0; i < acl->n_nicks; i++)
        if (strcasecmp(acl->nicks[i], nick) == 0)
            return false;
    return true;
}

/* ------------------------------------------------------------ texts */

/* Python's round(): halves to even. */
static long long round_even(double x)
{
    double f = (double)(long long)x;
    if (f > x)
        f -= 1;
    double d = x - f;
    long long n = (long long)f;
    if (d > 0.5 || (d == 0.5 && (n % 2) != 0))
        n++;
    return n;
}

const char *rep_irc_fuzzy(long long s, char *buf, size_t cap)
{
    if (s <= 1)
        return snprintf(buf, cap, "a moment"), buf;
    if (s < 20)
        return snprintf(buf, cap, "%lld seconds", s), buf;
    if (s < 55)
        return snprintf(buf, cap, "%lld seconds", round_even((double)s / 10.0) * 10), buf;
    long long minutes = round_even((double)s / 60.0);
    if (minutes == 1)
        return snprintf(buf, cap, "a minute"), buf;
    if (minutes < 20)
        return snprintf(buf, cap, "%lld minutes", minutes), buf;
    if (minutes < 55)
        return snprintf(buf, cap, "%lld minutes", round_even((double)minutes / 10.0) * 10), buf;
    long long hours = round_even((double)minutes / 60.0);
    if (hours == 1)
        return snprintf(buf, cap, "an hour"), buf;
    if (hours < 24)
        return snprintf(buf, cap, "%lld hours", hours), buf;
    long long days = (hours + 6) / 24;
    if (days == 1)
        return snprintf(buf, cap, "a day"), buf;
    if (days < 30)
        return snprintf(buf, cap, "%lld days", days), buf;
    long long months = (long long)((double)(days + 10) / 30.5);
    if (months == 1)
        return snprintf(buf, cap, "a month"), buf;
    if (months < 12)
        return snprintf(buf, cap, "%lld months", months), buf;
    long long years = round_even((double)days / 365.25);
    if (years == 1)
        return snprintf(buf, cap, "a year"), buf;
    return snprintf(buf, cap, "%lld years", years), buf;
}

const char *rep_irc_result_text(int results, bool brief, bool colors, char *buf, size_t cap)
{
    static const struct {
        const char *text, *brief;
        int color;
    } d[] = {
        [REP_RES_SUCCESS] = {"completed successfully", ", Success", 3},
        [REP_RES_WARNINGS] = {"completed with warnings", ", Warnings", 8},
        [REP_RES_FAILURE] = {"failed", ", Failure", 4},
        [REP_RES_SKIPPED] = {"was skipped", ", Skipped", 12},
        [REP_RES_EXCEPTION] = {"stopped with exception", ", Exception", 6},
        [REP_RES_RETRY] = {"has been retried", ", Retry", 11},
        [REP_RES_CANCELLED] = {"was cancelled", ", Cancelled", 13},
    };
    if (results < 0 || results >= (int)UTIL_NELEM(d)) {
        snprintf(buf, cap, "%s", brief ? ", ??" : "finished");
        return buf;
    }
    const char *text = brief ? d[results].brief : d[results].text;
    if (colors)
        snprintf(buf, cap, "\x03%d%s\x0f", d[results].color, text);
    else
        snprintf(buf, cap, "%s", text);
    return buf;
}

/* ------------------------------------------------------------ force build */

static const char *const force_options[] = {"builder", "codebase", "branch", "revision",
                                            "project", "reason",   "props"};

/* The option a `--name` names: exact, or a unique prefix (getopt's); -1 unknown, -2 ambiguous. */
static int force_option(const char *name, size_t len)
{
    int found = -1;
    for (int i = 0; i < (int)UTIL_NELEM(force_options); i++) {
        if (strncmp(force_options[i], name, len) != 0)
            continue;
        if (strlen(force_options[i]) == len)
            return i;
        found = found == -1 ? i : -2;
    }
    return found;
}

static void join_words(struct buf *b, int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        buf_printf(b, "%s%s", i > 0 ? " " : "", argv[i]);
}

int rep_irc_force_parse(int argc, char **argv, struct rep_irc_force *f, char **reply, char **log)
{
    memset(f, 0, sizeof *f);
    const char *v[UTIL_NELEM(force_options)] = {NULL, "", "master", "HEAD", "", NULL, NULL};
    int i = 0;
    for (; i < argc && strncmp(argv[i], "-", 1) == 0 && strcmp(argv[i], "-") != 0; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        const char *name = argv[i] + 2, *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        int opt = strncmp(argv[i], "--", 2) == 0 ? force_option(name, len) : -1;
        if (opt < 0 || (eq == NULL && i + 1 == argc)) {
            *log = xasprintf(opt == -2   ? "option %s not a unique prefix"
                             : opt == -1 ? "option %s not recognized"
                                         : "option %s requires argument",
                             argv[i]);
            *reply = xstrdup("Something bad happened (see logs)");
            return -1;
        }
        v[opt] = eq != NULL ? eq + 1 : argv[++i];
    }
    if (i < argc && v[0] != NULL) {
        *reply = xstrdup("--builder provided in two ways");
        return -1;
    }
    if (i < argc)
        v[0] = argv[i++];
    if (i < argc && v[5] != NULL) {
        *reply = xstrdup("--reason provided in two ways");
        return -1;
    }
    f->builder = v[0];
    f->codebase = v[1];
    f->branch = v[2];
    f->revision = v[3];
    f->project = v[4];
    f->props = v[6];
    if (i < argc) {
        struct buf r;
        buf_init(&r, 0);
        join_words(&r, argc - i, argv + i);
        f->reason = buf_take(&r);
    } else if (v[5] != NULL) {
        f->reason = xstrdup(v[5]);
    }
    return 0;
}

void rep_irc_force_clear(struct rep_irc_force *f)
{
    free(f->reason);
    f->reason = NULL;
}

/* Python's \w on text: letters, digits, '_' and (approximately) every non-ASCII byte. */
static bool matches(const char *s, const char *extra)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p >= 0x80 || strchr(extra, *p) != NULL))
            return false;
    return true;
}

char *rep_irc_force_check(const struct rep_irc_force *f, json_t **props, char **log)
{
    if (f->branch[0] != '\0' && !matches(f->branch, ".+/~-"))
        return xasprintf("Sorry, bad branch '%s'", f->branch);
    if (f->revision[0] != '\0' && !matches(f->revision, " .-/"))
        return xasprintf("Sorry, bad revision '%s'", f->revision);
    json_t *list = json_array();
    for (const char *p = f->props; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        char *item = xstrndup(p, len), *eq = strchr(item, '=');
        if (eq == NULL) { /* Python's IndexError */
            *log = xasprintf("force: property '%s' has no '='", item);
            free(item);
            json_decref(list);
            return xstrdup("Something bad happened (see logs)");
        }
        *eq = '\0';
        bool replaced = false; /* a dict: the last value, at the first one's place */
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *t = json_array_get(list, i);
            if (strcmp(json_string_value(json_array_get(t, 0)), item) == 0) {
                json_array_set_new(t, 1, json_string(eq + 1));
                replaced = true;
            }
        }
        if (!replaced)
            json_array_append_new(list, json_pack("[sss]", item, eq + 1, "Force Build Chat"));
        free(item);
        p += len;
        if (*p == ',')
            p++;
        else
            break;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *t = json_array_get(list, i);
        const char *n = json_string_value(json_array_get(t, 0));
        const char *v = json_string_value(json_array_get(t, 1));
        if (!matches(n, ".-/~:") || !matches(v, ".-/~:")) {
            char *text = xasprintf("Sorry, bad property name='%s', value='%s'", n, v);
            json_decref(list);
            return text;
        }
    }
    *props = list;
    return NULL;
}

/* ------------------------------------------------------------ the rate */

static double tokens_at(const struct rep_irc_rates *r, size_t i, uint64_t now)
{
    double t = r->e[i].tokens;
    if (now > r->e[i].at)
        t += (double)(now - r->e[i].at) / REP_IRC_CMD_MS;
    return t > REP_IRC_CMD_BURST ? REP_IRC_CMD_BURST : t;
}

int rep_irc_rate_take(struct rep_irc_rates *r, const char *nick, uint64_t now)
{
    size_t i = 0;
    while (i < r->n && strcasecmp(r->e[i].nick, nick) != 0)
        i++;
    if (i == r->n) {
        if (r->n < REP_IRC_NICKS_MAX) {
            r->n++;
        } else { /* full: the idlest nick is forgotten */
            i = 0;
            for (size_t j = 1; j < r->n; j++)
                if (tokens_at(r, j, now) > tokens_at(r, i, now))
                    i = j;
        }
        snprintf(r->e[i].nick, sizeof r->e[i].nick, "%s", nick);
        r->e[i].tokens = REP_IRC_CMD_BURST;
        r->e[i].at = now;
        r->e[i].warned = false;
    }
    double t = tokens_at(r, i, now);
    r->e[i].at = now > r->e[i].at ? now : r->e[i].at;
    if (t >= 1) {
        r->e[i].tokens = t - 1;
        r->e[i].warned = false;
        return 1;
    }
    r->e[i].tokens = t;
    if (r->e[i].warned)
        return -1;
    r->e[i].warned = true;
    return 0;
}
