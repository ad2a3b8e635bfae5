/*
 * The message Python 3.11's json.loads gives for a body it cannot read
 * ("Expecting value: line 1 column 1 (char 0)"), which Buildbot returns in
 * its JSON-RPC parse errors.  A scanner that follows CPython's C decoder
 * step by step up to the first error; positions count characters, not
 * bytes, as Python's do.  Bounded: nesting deeper than MAX_DEPTH is
 * reported as Python reports exhausted recursion (where exactly Python runs
 * out depends on how deep its stack already was).
 */
#include "www/internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 900

struct scan {
    const char *s;
    size_t n;
    const char *err; /* the first error, at byte `at` */
    size_t at;
    int depth;
    bool too_deep; /* Python's RecursionError: a message without a position */
};

static int fail(struct scan *c, const char *err, size_t at)
{
    c->err = err;
    c->at = at;
    return -1;
}

static size_t skip_ws(const struct scan *c, size_t i)
{
    while (i < c->n && strchr(" \t\n\r", c->s[i]) != NULL && c->s[i] != '\0')
        i++;
    return i;
}

static bool hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* A string whose opening quote is at `q`; *end gets the index after the closing one. */
static int scan_string(struct scan *c, size_t q, size_t *end)
{
    size_t i = q + 1;
    for (;;) {
        while (i < c->n && c->s[i] != '"' && c->s[i] != '\\' && (unsigned char)c->s[i] > 0x1f)
            i++;
        if (i >= c->n)
            return fail(c, "Unterminated string starting at", q);
        if (c->s[i] == '"') {
            *end = i + 1;
            return 0;
        }
        if (c->s[i] != '\\')
            return fail(c, "Invalid control character at", i);
        if (++i >= c->n)
            return fail(c, "Unterminated string starting at", q);
        if (c->s[i] != 'u') {
            if (strchr("\"\\/bfnrt", c->s[i]) == NULL || c->s[i] == '\0')
                return fail(c, "Invalid \\escape", i - 1);
            i++;
            continue;
        }
        if (i + 5 >= c->n)
            return fail(c, "Invalid \\uXXXX escape", i);
        for (size_t k = 1; k <= 4; k++)
            if (!hex(c->s[i + k]))
                return fail(c, "Invalid \\uXXXX escape", i);
        i += 5;
    }
}

static int scan_value(struct scan *c, size_t i, size_t *end);

/* Python's number pattern: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)? */
static int scan_number(struct scan *c, size_t i, size_t *end)
{
    size_t k = i + (c->s[i] == '-');
    if (k >= c->n || c->s[k] < '0' || c->s[k] > '9')
        return fail(c, "Expecting value", i);
    if (c->s[k] == '0')
        k++;
    else
        while (k < c->n && c->s[k] >= '0' && c->s[k] <= '9')
            k++;
    if (k + 1 < c->n && c->s[k] == '.' && c->s[k + 1] >= '0' && c->s[k + 1] <= '9')
        for (k += 1; k < c->n && c->s[k] >= '0' && c->s[k] <= '9'; k++)
            ;
    size_t e = k + 1 + (k + 1 < c->n && (c->s[k + 1] == '-' || c->s[k + 1] == '+'));
    if (k < c->n && (c->s[k] == 'e' || c->s[k] == 'E') && e < c->n && c->s[e] >= '0' &&
        c->s[e] <= '9')
        for (k = e; k < c->n && c->s[k] >= '0' && c->s[k] <= '9'; k++)
            ;
    *end = k;
    return 0;
}

static int scan_object(struct scan *c, size_t i, size_t *end)
{
    i = skip_ws(c, i + 1);
    if (i < c->n && c->s[i] == '}') {
        *end = i + 1;
        return 0;
    }
    for (;;) {
        if (i >= c->n || c->s[i] != '"')
            return fail(c, "Expecting property name enclosed in double quotes", i);
        if (scan_string(c, i, &i) < 0)
            return -1;
        i = skip_ws(c, i);
        if (i >= c->n || c->s[i] != ':')
            return fail(c, "Expecting ':' delimiter", i);
        if (scan_value(c, skip_ws(c, i + 1), &i) < 0)
            return -1;
        i = skip_ws(c, i);
        if (i < c->n && c->s[i] == '}') {
            *end = i + 1;
            return 0;
        }
        if (i >= c->n || c->s[i] != ',')
            return fail(c, "Expecting ',' delimiter", i);
        i = skip_ws(c, i + 1);
    }
}

static int scan_array(struct scan *c, size_t i, size_t *end)
{
    i = skip_ws(c, i + 1);
    if (i < c->n && c->s[i] == ']') {
        *end = i + 1;
        return 0;
    }
    for (;;) {
        if (scan_value(c, i, &i) < 0)
            return -1;
        i = skip_ws(c, i);
        if (i < c->n && c->s[i] == ']') {
            *end = i + 1;
            return 0;
        }
        if (i >= c->n || c->s[i] != ',')
            return fail(c, "Expecting ',' delimiter", i);
        i = skip_ws(c, i + 1);
    }
}

static bool word_at(const struct scan *c, size_t i, const char *w)
{
    size_t n = strlen(w);
    return i + n <= c->n && memcmp(c->s + i, w, n) == 0;
}

static int scan_value(struct scan *c, size_t i, size_t *end)
{
    static const char *const words[] = {"null", "true", "false", "NaN", "Infinity", "-Infinity"};
    if (i >= c->n)
        return fail(c, "Expecting value", i);
    if (c->depth >= MAX_DEPTH && (c->s[i] == '[' || c->s[i] == '{')) {
        c->too_deep = true;
        return fail(c,
                    c->s[i] == '[' ? "maximum recursion depth exceeded while decoding a JSON "
                                     "array from a unicode string"
                                   : "maximum recursion depth exceeded while decoding a JSON "
                                     "object from a unicode string",
                    i);
    }
    int rc;
    c->depth++;
    if (c->s[i] == '"')
        rc = scan_string(c, i, end);
    else if (c->s[i] == '{')
        rc = scan_object(c, i, end);
    else if (c->s[i] == '[')
        rc = scan_array(c, i, end);
    else {
        rc = 1;
        for (size_t k = 0; k < UTIL_NELEM(words) && rc == 1; k++)
            if (word_at(c, i, words[k])) {
                *end = i + strlen(words[k]);
                rc = 0;
            }
        if (rc == 1)
            rc = scan_number(c, i, end);
    }
    c->depth--;
    return rc;
}

/* Python's "'utf-8' codec can't decode byte ..." for a body that is not UTF-8, or NULL. */
static bool utf8_error(const char *s, size_t n, char *msg, size_t cap)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        size_t len = b < 0x80                ? 1
                     : b >= 0xc2 && b < 0xe0 ? 2
                     : b >= 0xe0 && b < 0xf0 ? 3
                     : b >= 0xf0 && b < 0xf5 ? 4
                                             : 0;
        const char *why = len == 0 ? "invalid start byte" : NULL;
        for (size_t k = 1; why == NULL && k < len; k++) {
            unsigned char x = i + k < n ? (unsigned char)s[i + k] : 0;
            /* the second byte's narrower ranges: no overlong forms, surrogates or > U+10FFFF */
            unsigned char lo = k > 1 ? 0x80 : b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80;
            unsigned char hi = k > 1 ? 0xbf : b == 0xed ? 0x9f : b == 0xf4 ? 0x8f : 0xbf;
            if (i + k >= n)
                why = "unexpected end of data";
            else if (x < lo || x > hi)
                why = "invalid continuation byte";
        }
        if (why != NULL && why[0] == 'u' && n - 1 > i) /* a truncated sequence of bytes */
            snprintf(msg, cap, "'utf-8' codec can't decode bytes in position %zu-%zu: %s", i, n - 1,
                     why);
        else if (why != NULL)
            snprintf(msg, cap, "'utf-8' codec can't decode byte 0x%02x in position %zu: %s", b, i,
                     why);
        if (why != NULL)
            return true;
        i += len;
    }
    return false;
}

void www_json_py_error(const char *text, size_t len, char *msg, size_t cap)
{
    if (utf8_error(text, len, msg, cap))
        return;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        snprintf(msg, cap, "%s",
                 "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)");
        return;
    }
    struct scan c = {.s = text, .n = len};
    size_t end = 0;
    if (scan_value(&c, skip_ws(&c, 0), &end) == 0) {
        end = skip_ws(&c, end);
        if (end == len) { /* jansson refused what Python reads: no position to give */
            snprintf(msg, cap, "%s", "Expecting value: line 1 column 1 (char 0)");
            return;
        }
        fail(&c, "Extra data", end);
    }
    if (c.too_deep) {
        snprintf(msg, cap, "%s", c.err);
        return;
    }
    size_t chars = 0, line = 1, col_start = 0; /* in characters, as Python counts */
    for (size_t i = 0; i < c.at && i < len; i++) {
        if (((unsigned char)text[i] & 0xc0) == 0x80)
            continue;
        if (text[i] == '\n') {
            line++;
            col_start = chars + 1;
        }
        chars++;
    }
    snprintf(msg, cap, "%s: line %zu column %zu (char %zu)", c.err, line, chars - col_start + 1,
             chars);
}
