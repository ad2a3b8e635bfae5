/*
 * The one HTML writer every page uses.  Text from the database -- a builder
 * name, a change comment, a property, a log line -- is whatever someone
 * wrote, so html_put escapes by default (%s) and markup has to be asked for
 * (%S, for the page's own literals).  The same escaping serves element text
 * and quoted attribute values; URLs built from names go through %U.  A byte
 * that is not UTF-8 becomes U+FFFD, so a page is always valid UTF-8.
 */
#include "www/ui/ui.h"

#include <stdarg.h>
#include <string.h>

/* The length of the UTF-8 sequence at s (at most n bytes), 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80                    ? 1
                 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                 : (s[0] & 0xf0) == 0xe0        ? 3
                 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (len == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)))
        return 0;
    return len;
}

void html_text(struct buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        const char *ent = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '"'  ? "&quot;"
                          : c == '\'' ? "&#39;"
                                      : NULL;
        if (ent != NULL) {
            buf_addstr(b, ent);
            i++;
        } else if (c < 0x20 && c != '\n' && c != '\t') {
            buf_addstr(b, "\xef\xbf\xbd"); /* control characters are not allowed in HTML */
            i++;
        } else if (c < 0x80) {
            buf_addc(b, (char)c);
            i++;
        } else {
            size_t n = utf8_len(p + i, len - i);
            if (n == 0) {
                buf_addstr(b, "\xef\xbf\xbd");
                i++;
            } else {
                buf_add(b, p + i, n);
                i += n;
            }
        }
    }
}

void html_url(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c != 0 && strchr("-._~", c) != NULL)) {
            buf_addc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_add(b, e, 3);
        }
    }
}

void html_put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p != '\0'; p++) {
        const char *pct = strchr(p, '%');
        if (pct == NULL) {
            buf_addstr(b, p);
            break;
        }
        buf_add(b, p, (size_t)(pct - p));
        p = pct + 1;
        const char *s;
        switch (*p) {
        case 's':
            s = va_arg(ap, const char *);
            if (s != NULL)
                html_text(b, s, strlen(s));
            break;
        case 'S':
            s = va_arg(ap, const char *);
            if (s != NULL)
                buf_addstr(b, s);
            break;
        case 'U':
            s = va_arg(ap, const char *);
            if (s != NULL)
                html_url(b, s, strlen(s));
            break;
        case 'd':
            buf_printf(b, "%d", va_arg(ap, int));
            break;
        case 'D':
            buf_printf(b, "%lld", va_arg(ap, long long));
            break;
        case '%':
            buf_addc(b, '%');
            break;
        default: /* a programming error: show it rather than crash */
            buf_addstr(b, "(bad format)");
            if (*p == '\0')
                p--;
            break;
        }
    }
    va_end(ap);
}
