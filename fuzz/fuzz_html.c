/*
 * libFuzzer target for the web UI's writer: any bytes as text (html_text),
 * as a URL component (html_url) and as a log line with terminal escapes
 * (ansi_line, its state carried to a second line).  What comes out must be
 * UTF-8 with no markup character the input could have smuggled: no '<',
 * '>', quote or stray '&' from text, only unreserved bytes and %XX from URLs,
 * and from a log line only the spans the converter itself writes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/ui/ui.h"

static void check_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '<' || s[i] == '>' || s[i] == '"' || s[i] == '\'')
            abort();
        if (s[i] == '&' && strncmp(s + i, "&amp;", 5) != 0 && strncmp(s + i, "&lt;", 4) != 0 &&
            strncmp(s + i, "&gt;", 4) != 0 && strncmp(s + i, "&quot;", 6) != 0 &&
            strncmp(s + i, "&#39;", 5) != 0)
            abort();
    }
}

static void check_url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
        if (!ok)
            abort();
    }
}

/* Removes the converter's own tags (<span class="...">, </span>): the rest is text. */
static size_t strip_spans(char *s, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        if (strncmp(s + i, "<span class=\"", 13) == 0) {
            char *end = memchr(s + i, '>', n - i);
            if (end == NULL)
                abort();
            for (char *c = s + i + 13; c < end - 1; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                      *c == ' '))
                    abort();
            i = (size_t)(end - s) + 1;
        } else if (strncmp(s + i, "</span>", 7) == 0) {
            i += 7;
        } else {
            s[out++] = s[i++];
        }
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf b;
    buf_init(&b, 0);
    html_text(&b, (const char *)data, size);
    check_text(b.data != NULL ? b.data : "", b.len);
    buf_reset(&b);
    html_url(&b, (const char *)data, size);
    check_url(b.data != NULL ? b.data : "", b.len);
    buf_reset(&b);
    unsigned st = 0;
    size_t half = size / 2;
    ansi_line(&b, (const char *)data, half, &st);
    ansi_line(&b, (const char *)data + half, size - half, &st);
    if (b.data != NULL) {
        size_t n = strip_spans(b.data, b.len);
        check_text(b.data, n);
    }
    buf_free(&b);
    return 0;
}
