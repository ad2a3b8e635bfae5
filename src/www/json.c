/*
 * JSON text exactly as Buildbot's Python writes it: json.dumps with
 * sort_keys, ASCII-only escapes (\uXXXX, surrogate pairs past the BMP), and
 * either compact separators or indent=2 with ", " at line ends (Buildbot
 * 4.3's pretty form).  Clients diff these answers, so the bytes matter.
 */
#include "www/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of the UTF-8 sequence at s (at most `left` bytes) and its code point; 0 if
   it is not one (a stray byte, a truncated, overlong or surrogate sequence). */
static size_t utf8_seq(const unsigned char *s, size_t left, unsigned *cp)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > left || s[0] >= 0xf8)
        return 0;
    unsigned v = s[0] & (n == 4 ? 0x07 : n == 3 ? 0x0f : 0x1f);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    static const unsigned least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static const char *short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    }
    return NULL;
}

/* One character that needs an escape; returns the bytes it took. */
static size_t put_escape(struct buf *b, const unsigned char *s, size_t left)
{
    if (s[0] < 0x80) {
        const char *e = short_escape(s[0]);
        if (e != NULL)
            buf_addstr(b, e);
        else
            buf_printf(b, "\\u%04x", s[0]);
        return 1;
    }
    unsigned cp = 0xfffd; /* what Python's errors="replace" makes of a bad byte */
    size_t n = utf8_seq(s, left, &cp);
    if (cp >= 0x10000) {
        cp -= 0x10000;
        buf_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
        buf_printf(b, "\\u%04x", cp);
    }
    return n > 0 ? n : 1;
}

void www_json_escape(struct buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && plain(u[j]))
            j++;
        buf_add(b, s + i, j - i);
        i = j < len ? j + put_escape(b, u + j, len - j) : j;
    }
}

static void put_escaped(struct buf *b, const char *s, size_t len)
{
    buf_addc(b, '"');
    www_json_escape(b, s, len);
    buf_addc(b, '"');
}

/* Python's repr() of a float, for the values it can reach here. */
static void put_real(struct buf *b, double d)
{
    if (isnan(d) || isinf(d)) {
        buf_addstr(b, isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    buf_addstr(b, tmp);
    if (strpbrk(tmp, ".e") == NULL)
        buf_addstr(b, ".0");
}

/* indent: -1 compact, -2 Python's default (", " and ": " on one line), else spaces. */
static void newline(struct buf *b, int indent, int depth)
{
    if (indent < 0)
        return;
    static const char spaces[] =
        "\n                                                                ";
    size_t n = (size_t)(indent * depth);
    buf_add(b, spaces, 1);
    for (; n > sizeof spaces - 2; n -= sizeof spaces - 2)
        buf_add(b, spaces + 1, sizeof spaces - 2);
    buf_add(b, spaces + 1, n);
}

static void put_int(struct buf *b, json_int_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void dump(struct buf *b, const json_t *v, int indent, int depth);

static void dump_object(struct buf *b, const json_t *v, int indent, int depth)
{
    size_t n = json_object_size(v);
    if (n == 0) {
        buf_addstr(b, "{}");
        return;
    }
    const char **keys = xcalloc(n, sizeof *keys);
    size_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        keys[k++] = key;
    }
    qsort(keys, n, sizeof *keys, cmp_keys);
    buf_addc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_addstr(b, indent == -1 ? "," : ", ");
        newline(b, indent, depth + 1);
        put_escaped(b, keys[i], strlen(keys[i]));
        buf_addstr(b, indent == -1 ? ":" : ": ");
        dump(b, json_object_get(v, keys[i]), indent, depth + 1);
    }
    newline(b, indent, depth);
    buf_addc(b, '}');
    free(keys);
}

static void dump_array(struct buf *b, const json_t *v, int indent, int depth)
{
    size_t n = json_array_size(v);
    if (n == 0) {
        buf_addstr(b, "[]");
        return;
    }
    buf_addc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_addstr(b, indent == -1 ? "," : ", ");
        newline(b, indent, depth + 1);
        dump(b, json_array_get(v, i), indent, depth + 1);
    }
    newline(b, indent, depth);
    buf_addc(b, ']');
}

static void dump(struct buf *b, const json_t *v, int indent, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        dump_object(b, v, indent, depth);
        break;
    case JSON_ARRAY:
        dump_array(b, v, indent, depth);
        break;
    case JSON_STRING:
        put_escaped(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_int(b, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        buf_addstr(b, "true");
        break;
    case JSON_FALSE:
        buf_addstr(b, "false");
        break;
    case JSON_NULL:
        buf_addstr(b, "null");
        break;
    }
}

static int indent_of(enum www_json_style style)
{
    return style == WWW_JSON_COMPACT ? -1 : style == WWW_JSON_SPACED ? -2 : 2;
}

char *www_json_dump(const json_t *v, enum www_json_style style, size_t *len)
{
    struct buf b;
    buf_init(&b, 0);
    dump(&b, v, indent_of(style), 0);
    if (len != NULL)
        *len = b.len;
    return buf_take(&b);
}

/* A document written in pieces: the same bytes as www_json_dump of the whole. */

void www_json_put(struct buf *b, const json_t *v, enum www_json_style style, int depth)
{
    dump(b, v, indent_of(style), depth);
}

void www_json_next(struct buf *b, enum www_json_style style, int depth, char open, bool first)
{
    int indent = indent_of(style);
    if (first)
        buf_addc(b, open);
    else
        buf_addstr(b, indent == -1 ? "," : ", ");
    newline(b, indent, depth);
}

void www_json_key(struct buf *b, enum www_json_style style, const char *key)
{
    put_escaped(b, key, strlen(key));
    buf_addstr(b, indent_of(style) == -1 ? ":" : ": ");
}

void www_json_end(struct buf *b, enum www_json_style style, int depth, char open, char close,
                  bool empty)
{
    if (empty)
        buf_addc(b, open);
    else
        newline(b, indent_of(style), depth);
    buf_addc(b, close);
}
