/*
 * Request headers that change how an answer is sent, not what it says: Range
 * (a slice of a raw log, RFC 9110 §14).  They come from any client, so they
 * are read in place, without allocating,
 * every number saturated; what cannot be read is ignored, as the RFC lets a
 * server ignore a Range it does not understand (the whole body is sent).
 */
#include "www/internal.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* 1*DIGIT, saturated at UINT64_MAX; false when there is no digit. */
static bool read_number(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *pp = p;
    *out = v;
    return true;
}

/* One range-spec: "a-b", "a-" or "-n"; *suffix says which.  False if unreadable. */
static bool read_spec(const char **pp, uint64_t *a, uint64_t *b, bool *has_b, bool *suffix)
{
    const char *p = *pp;
    *suffix = *p == '-';
    if (*suffix) {
        p++;
        if (!read_number(&p, a))
            return false;
        *pp = p;
        return true;
    }
    if (!read_number(&p, a) || *p != '-')
        return false;
    p++;
    *has_b = read_number(&p, b);
    *pp = p;
    return !*has_b || *b >= *a;
}

enum www_range_result www_range_parse(const char *header, uint64_t len, uint64_t *first,
                                      uint64_t *last)
{
    if (header == NULL || len == 0 || strncasecmp(header, "bytes=", 6) != 0)
        return WWW_RANGE_WHOLE;
    const char *p = header + 6;
    while (*p == ',' || *p == ' ' || *p == '\t') /* 1#range-spec allows empty elements */
        p++;
    uint64_t a = 0, b = 0;
    bool has_b = false, suffix = false;
    if (!read_spec(&p, &a, &b, &has_b, &suffix))
        return WWW_RANGE_WHOLE;
    while (*p == ',' || *p == ' ' || *p == '\t')
        p++;
    if (*p != '\0') /* more than one range: answered whole */
        return WWW_RANGE_WHOLE;
    if (suffix) {
        if (a == 0)
            return WWW_RANGE_UNSATISFIABLE;
        *first = a >= len ? 0 : len - a;
        *last = len - 1;
        return WWW_RANGE_PART;
    }
    if (a >= len)
        return WWW_RANGE_UNSATISFIABLE;
    *first = a;
    *last = has_b && b < len - 1 ? b : len - 1;
    return WWW_RANGE_PART;
}
