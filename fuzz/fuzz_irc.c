/*
 * Fuzz target for the IRC reporter's line parser and the bot's command parser: whatever a
 * server sends, as one line, must parse or be refused within its 512 bytes, and what parses
 * must be a command with at most 15 parameters inside the message's own buffer; a PRIVMSG's
 * text, addressed to the bot or not, must be split (shlex) within REP_IRC_ARGS_MAX
 * arguments inside its buffer, and the bot's answer (its own commands, authz, `force
 * build`'s options and checks, handed to a handler that parses as the engine does) must be
 * bounded text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "reporters/reporters.h"

/* What the engine does first with a force: its options and checks. */
static char *handler(void *arg, const struct rep_irc_request *req)
{
    (void)arg;
    if (req->argc > REP_IRC_ARGS_MAX || req->nick[0] == '\0')
        __builtin_trap();
    if (strcmp(req->command, "force") != 0 || req->argc == 0)
        return NULL;
    struct rep_irc_force f;
    char *reply = NULL, *log = NULL;
    json_t *props = NULL;
    if (rep_irc_force_parse(req->argc - 1, req->argv + 1, &f, &reply, &log) == 0) {
        if (f.branch == NULL || f.revision == NULL)
            __builtin_trap();
        reply = rep_irc_force_check(&f, &props, &log);
        if (reply == NULL && !json_is_array(props))
            __builtin_trap();
    }
    json_decref(props);
    free(log);
    rep_irc_force_clear(&f);
    return reply;
}

static void command(const struct rep_irc_msg *m)
{
    if (m->n_params >= 4) /* a RPL_NAMREPLY's names, read for a mute */
        (void)rep_irc_names_op(m->params[3], m->params[0]);
    if (m->n_params < 2)
        return;
    bool private_chat = m->params[0][0] != '#';
    const char *text = rep_irc_addressed(m->params[1], "bot", private_chat);
    if (text == NULL)
        return;
    char out[REP_IRC_LINE_MAX + 1];
    char *argv[REP_IRC_ARGS_MAX];
    int argc = -1;
    const char *error = NULL;
    if (rep_irc_split(text, out, argv, REP_IRC_ARGS_MAX, &argc, &error) == 0) {
        if (argc < 0 || argc > REP_IRC_ARGS_MAX)
            __builtin_trap();
        for (int i = 0; i < argc; i++)
            if (argv[i] < out || argv[i] >= out + sizeof out)
                __builtin_trap();
    } else if (error == NULL) {
        __builtin_trap();
    }
    char *nicks[] = {"bot"};
    struct cfg_irc_acl authz[] = {{"force", false, nicks, 1}};
    const char *nick = m->prefix != NULL ? m->prefix : "bot";
    struct rep_irc_said said = {
        .bot = "IRC", .nick = nick, .channel = private_chat ? NULL : m->params[0], .message = text};
    char *answer = rep_irc_command(&said, authz, 1, handler, NULL);
    if (answer != NULL && strlen(answer) > 8 * REP_IRC_LINE_MAX)
        __builtin_trap();
    free(answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rep_irc_msg m;
    if (rep_irc_parse((const char *)data, size, &m) == 0) {
        const char *end = m.buf + sizeof m.buf;
        if (m.command == NULL || m.command[0] == '\0' || m.n_params > REP_IRC_PARAMS_MAX)
            __builtin_trap();
        for (int i = 0; i < m.n_params; i++)
            if (m.params[i] < m.buf || m.params[i] >= end || strlen(m.params[i]) >= sizeof m.buf)
                __builtin_trap();
        if (m.prefix != NULL && (m.prefix[0] == '\0' || strchr(m.prefix, ' ') != NULL))
            __builtin_trap();
        command(&m);
    }
    uint32_t ev = rep_irc_event(size > 0 && data[size - 1] == '\0' ? (const char *)data : "x");
    (void)ev;
    return 0;
}
