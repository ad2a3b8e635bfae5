/*
 * struct buf: a growable byte buffer with a hard bound.  Every buffer fed by
 * a peer (a PB connection, an HTTP body, a file read) sets `max`, and an
 * append that would pass it fails without changing the buffer, so the caller
 * can report "too big" instead of growing without limit; its allocation never
 * passes the bound either.
 */
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

int buf_reserve(struct buf *b, size_t len)
{
    if (b->max != 0 && (len > b->max || b->len > b->max - len))
        return -1;
    if (b->len + len + 1 > b->cap) {
        b->cap = b->len + len + 1;
        b->data = xrealloc(b->data, b->cap);
    }
    return 0;
}

int buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->max != 0 && (len > b->max || b->len > b->max - len))
        return -1;
    if (b->len + len + 1 > b->cap) {
        /* doubling, but never past the bound: a bounded buffer holds at most max + 1 bytes */
        size_t cap = b->cap < 8 ? 8 : b->cap;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->cap = b->max != 0 && cap > b->max + 1 ? b->max + 1 : cap;
        b->data = xrealloc(b->data, b->cap);
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_addc(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

int buf_addstr(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    int rc = buf_addstr(b, s);
    free(s);
    return rc;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *buf_take(struct buf *b)
{
    char *p = b->data != NULL ? b->data : xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
