/*
 * UTF-8 as Python's strict codec reads it: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing past U+10FFFF.  The PB decoder checks every
 * jellied "unicode" string with it and the worker turns a command's output
 * into text with it, both on the log path, where nearly every byte is ASCII:
 * eight bytes are looked at a time until one has its high bit set.
 */
#include "util/util.h"

#include <stdint.h>
#include <string.h>

#define HIGH_BITS 0x8080808080808080ULL

size_t util_utf8_valid(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        while (len - i >= sizeof w) {
            memcpy(&w, p + i, sizeof w);
            if ((w & HIGH_BITS) != 0)
                break;
            i += sizeof w;
        }
        while (i < len && p[i] < 0x80)
            i++;
        if (i == len)
            break;
        unsigned c = p[i];
        size_t need = c >= 0xc2 && c <= 0xdf   ? 2
                      : c >= 0xe0 && c <= 0xef ? 3
                      : c >= 0xf0 && c <= 0xf4 ? 4
                                               : 0;
        if (need == 0 || len - i < need)
            return i;
        unsigned c1 = p[i + 1];
        if ((c1 & 0xc0) != 0x80 || (c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) ||
            (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90))
            return i;
        for (size_t k = 2; k < need; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return i;
        i += need;
    }
    return i;
}
