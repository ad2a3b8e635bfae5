/*
 * Fuzz target for the IRC reporter's line parser: whatever a server sends, as one
 * line, must parse or be refused within its 512 bytes, and what parses must be a
 * command with at most 15 parameters inside the message's own buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reporters/reporters.h"

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
    }
    uint32_t ev = rep_irc_event(size > 0 && data[size - 1] == '\0' ? (const char *)data : "x");
    (void)ev;
    return 0;
}
