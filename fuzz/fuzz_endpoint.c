/*
 * libFuzzer target for what reaches bbworker's connection set-up from outside:
 * the answer of an HTTP proxy to CONNECT (bytes from the network, in pieces
 * whose size the first byte picks, as a worker accumulates them) and a tac's
 * endpoint string (the rest of the input as text).  The proxy answer's length
 * must stay within what was received, and an endpoint that parses must have a
 * host and a port in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = (size_t)(data[0] % 16) + 1;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    for (size_t have = 0; have < len;) {
        have = have + piece < len ? have + piece : len;
        long head = bbw_proxy_answer(in, have);
        if (head > (long)have)
            abort();
        if (head != 0)
            break;
    }
    char *text = malloc(len + 1);
    memcpy(text, in, len);
    text[len] = '\0';
    struct bbw_endpoint ep;
    char *cause = NULL;
    if (bbw_endpoint_parse(text, &ep, &cause) == 0) {
        if (ep.host == NULL || ep.host[0] == '\0' || ep.port < 1 || ep.port > 65535 ||
            ep.timeout < 1)
            abort();
        bbw_endpoint_free(&ep);
    } else if (cause == NULL) {
        abort();
    }
    free(cause);
    free(text);
    return 0;
}
