/*
 * libFuzzer target for the request headers read in place (www/headers.c): a
 * Range header against bodies of several lengths, whose answer must lie in the
 * body, and an Accept-Encoding header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static const uint64_t lengths[] = {0, 1, 2, 10, 1000, 104857600, UINT64_MAX};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        uint64_t first, last;
        if (www_range_parse(text, lengths[i], &first, &last) == WWW_RANGE_PART &&
            (first > last || last >= lengths[i]))
            abort();
    }
    (void)www_gzip_accepted(text);
    free(text);
    return 0;
}
