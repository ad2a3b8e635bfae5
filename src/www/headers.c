/*
 * Request headers that change how an answer is sent, not what it says: Range
 * (a slice of a raw log, RFC 9110 §14) and Accept-Encoding (gzip, §12.5.3).
 * Both come from any client, so they are read in place, without allocating,
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

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A qvalue of zero: "0", "0.", "0.000" (anything else accepts). */
static bool q_zero(const char *v, size_t n)
{
    if (n == 0 || v[0] != '0')
        return false;
    for (size_t i = 1; i < n; i++)
        if (v[i] != '0' && (v[i] != '.' || i != 1))
            return false;
    return true;
}

/* The parameters after a coding: is its weight q=0?  *pp moves past them. */
static bool read_weight_zero(const char **pp)
{
    const char *p = *pp;
    bool zero = false;
    for (;;) {
        p = skip_ows(p);
        if (*p != ';')
            break;
        p = skip_ows(p + 1);
        size_t n = strcspn(p, " \t=;,");
        if (n == 1 && (*p == 'q' || *p == 'Q') && p[1] == '=') {
            size_t vn = strcspn(p + 2, " \t;,");
            zero = q_zero(p + 2, vn);
            p += 2 + vn;
        } else {
            p += n;
            if (*p == '=')
                p += 1 + strcspn(p + 1, ";,");
        }
    }
    *pp = p;
    return zero;
}

bool www_gzip_accepted(const char *header)
{
    int gzip = -1, any = -1; /* -1 not named, 0 refused (q=0), 1 accepted */
    const char *p = header != NULL ? header : "";
    while (*p != '\0') {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        size_t n = strcspn(p, " \t;,");
        p += n;
        bool zero = read_weight_zero(&p);
        p += strcspn(p, ",");
        int *which = (n == 4 && strncasecmp(name, "gzip", 4) == 0) ||
                             (n == 6 && strncasecmp(name, "x-gzip", 6) == 0)
                         ? &gzip
                     : n == 1 && *name == '*' ? &any
                                              : NULL;
        if (which != NULL && *which != 0)
            *which = zero ? 0 : 1;
    }
    return gzip == 1 || (gzip == -1 && any == 1);
}
