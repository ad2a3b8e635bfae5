/*
 * Escaping what a peer sent before it goes into the log.  A worker name, a
 * login name, a PB method name or a change author is whatever bytes the peer
 * chose; printed as they are, a newline forges a log line and a terminal
 * escape rewrites what an operator sees.  util_escape turns any bytes into
 * bounded printable ASCII, and log_write (log.c) applies the same rule to
 * control characters as a last line of defence, so one event is one line.
 */
#include "util/util.h"

#include <string.h>

/* Appends the escaped form of byte `c` to out[*n]; false if it does not fit before `end`. */
static bool put(char *out, size_t *n, size_t end, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[4];
    size_t len = 0;
    const char *named = c == '\n'   ? "\\n"
                        : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t"
                        : c == '\\' ? "\\\\"
                        : c == '\'' ? "\\'"
                        : c == '"'  ? "\\\""
                                    : NULL;
    if (named != NULL) {
        len = strlen(named);
        memcpy(tmp, named, len);
    } else if (c < 0x20 || c > 0x7e) {
        tmp[0] = '\\', tmp[1] = 'x', tmp[2] = hex[c >> 4], tmp[3] = hex[c & 15];
        len = 4;
    } else {
        tmp[0] = (char)c;
        len = 1;
    }
    if (*n + len > end)
        return false;
    memcpy(out + *n, tmp, len);
    *n += len;
    return true;
}

const char *util_escape(char *out, size_t size, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = 0, mark = 0, i = 0;
    if (size < 4) { /* not even room for "..." */
        if (size > 0)
            out[0] = '\0';
        return out;
    }
    for (; i < len && put(out, &n, size - 1, p[i]); i++) {
        if (n + 3 <= size - 1)
            mark = n; /* "..." still fits after what is written so far */
    }
    if (i < len) {
        memcpy(out + mark, "...", 3);
        n = mark + 3;
    }
    out[n] = '\0';
    return out;
}

const char *util_escape_str(char *out, size_t size, const char *s)
{
    if (s == NULL)
        s = "(null)";
    return util_escape(out, size, s, strlen(s));
}
