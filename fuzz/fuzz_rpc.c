/*
 * libFuzzer target for JSON-RPC bodies that do not parse: the Python-style
 * error locator (www/pyjson.c) must stay within the body and the message
 * buffer, whatever the bytes and however deep the nesting.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char msg[224];
    www_json_py_error((const char *)data, size, msg, sizeof msg);
    if (strnlen(msg, sizeof msg) == sizeof msg)
        abort(); /* always a terminated message */
    return 0;
}
