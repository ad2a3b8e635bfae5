/*
 * ANSI terminal colours in log lines, as HTML.  Test suites colour their
 * output with SGR sequences (ESC [ ... m); a colour set on one line lasts
 * into the next, so the style is carried in `state` from line to line.  The
 * 8 and 16-colour palettes map to classes (a-f1..a-f16, a-b1..a-b16, a-bold,
 * a-dim, a-it, a-ul) that the stylesheet colours for both themes; 256-colour
 * and RGB codes are read and ignored; any other escape sequence is dropped.
 * A carriage return inside a line (a progress bar) keeps what follows it, as
 * a terminal would show it.  The text itself goes through html_text.
 */
#include "www/ui/ui.h"

#include <stdlib.h>
#include <string.h>

/* state: bits 0-4 foreground (0 none, 1-16), 5-9 background, then the attributes. */
#define FG_MASK 0x1fu
#define BG_SHIFT 5
#define BG_MASK (0x1fu << BG_SHIFT)
#define A_BOLD (1u << 10)
#define A_DIM (1u << 11)
#define A_IT (1u << 12)
#define A_UL (1u << 13)

static void open_span(struct buf *b, unsigned st)
{
    if (st == 0)
        return;
    buf_addstr(b, "<span class=\"");
    const char *sep = "";
    if (st & FG_MASK) {
        buf_printf(b, "a-f%u", st & FG_MASK);
        sep = " ";
    }
    if (st & BG_MASK) {
        buf_printf(b, "%sa-b%u", sep, (st & BG_MASK) >> BG_SHIFT);
        sep = " ";
    }
    static const struct {
        unsigned bit;
        const char *cls;
    } attrs[] = {{A_BOLD, "a-bold"}, {A_DIM, "a-dim"}, {A_IT, "a-it"}, {A_UL, "a-ul"}};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        if (st & attrs[i].bit) {
            buf_printf(b, "%s%s", sep, attrs[i].cls);
            sep = " ";
        }
    buf_addstr(b, "\">");
}

/* Applies the SGR parameters `p` (n of them) to *st. */
static void sgr(unsigned *st, const long *p, size_t n)
{
    if (n == 0) {
        *st = 0;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        long v = p[i];
        if (v == 0)
            *st = 0;
        else if (v == 1)
            *st |= A_BOLD;
        else if (v == 2)
            *st |= A_DIM;
        else if (v == 3)
            *st |= A_IT;
        else if (v == 4)
            *st |= A_UL;
        else if (v == 22)
            *st &= ~(A_BOLD | A_DIM);
        else if (v == 23)
            *st &= ~A_IT;
        else if (v == 24)
            *st &= ~A_UL;
        else if (v >= 30 && v <= 37)
            *st = (*st & ~FG_MASK) | (unsigned)(v - 30 + 1);
        else if (v >= 90 && v <= 97)
            *st = (*st & ~FG_MASK) | (unsigned)(v - 90 + 9);
        else if (v == 39)
            *st &= ~FG_MASK;
        else if (v >= 40 && v <= 47)
            *st = (*st & ~BG_MASK) | ((unsigned)(v - 40 + 1) << BG_SHIFT);
        else if (v >= 100 && v <= 107)
            *st = (*st & ~BG_MASK) | ((unsigned)(v - 100 + 9) << BG_SHIFT);
        else if (v == 49)
            *st &= ~BG_MASK;
        else if ((v == 38 || v == 48) && i + 1 < n) /* 256 colours or RGB: skipped */
            i += p[i + 1] == 5 ? 2 : p[i + 1] == 2 ? 4 : 1;
    }
}

/* The end of the escape sequence at line[i] (line[i] is ESC), and for SGR its parameters. */
static size_t escape_end(const char *line, size_t len, size_t i, long *p, size_t *n, bool *is_sgr)
{
    *n = 0;
    *is_sgr = false;
    if (i + 1 >= len)
        return len;
    char kind = line[i + 1];
    if (kind == ']') { /* OSC: up to BEL or ESC \ */
        for (size_t j = i + 2; j < len; j++) {
            if (line[j] == '\a')
                return j + 1;
            if (line[j] == 0x1b && j + 1 < len && line[j + 1] == '\\')
                return j + 2;
        }
        return len;
    }
    if (kind == '(' || kind == ')' || kind == '*' || kind == '+')
        return i + 3 < len ? i + 3 : len; /* a character set: one more byte */
    if (kind != '[')
        return i + 2;
    long cur = 0;
    bool have = false;
    for (size_t j = i + 2; j < len; j++) {
        unsigned char c = (unsigned char)line[j];
        if (c >= '0' && c <= '9') {
            if (cur < 100000)
                cur = cur * 10 + (c - '0');
            have = true;
        } else if (c == ';' || c == ':') {
            if (*n < 16)
                p[(*n)++] = have ? cur : 0;
            cur = 0;
            have = false;
        } else if (c >= 0x40 && c <= 0x7e) {
            if ((have || *n > 0) && *n < 16)
                p[(*n)++] = cur;
            *is_sgr = c == 'm';
            return j + 1;
        } else if (c < 0x20 || c > 0x7e) {
            return j; /* not a sequence after all */
        }
    }
    return len;
}

void ansi_line(struct buf *b, const char *line, size_t len, unsigned *state)
{
    size_t start = b->len; /* where the line began, for a carriage return */
    unsigned st = *state;
    bool open = false; /* a span is open: spans open with their first text */
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && line[j] != 0x1b && line[j] != '\r')
            j++;
        if (j > i && st != 0 && !open) {
            open_span(b, st);
            open = true;
        }
        html_text(b, line + i, j - i);
        if (j == len)
            break;
        if (line[j] == '\r') {
            i = j + 1;
            if (i < len) { /* what follows overwrites the line */
                b->len = start;
                b->data[start] = '\0';
                open = false;
            }
            continue;
        }
        long p[16];
        size_t n;
        bool is_sgr;
        i = escape_end(line, len, j, p, &n, &is_sgr);
        unsigned next = st;
        if (is_sgr)
            sgr(&next, p, n);
        if (next != st && open) {
            buf_addstr(b, "</span>");
            open = false;
        }
        st = next;
    }
    if (open)
        buf_addstr(b, "</span>");
    *state = st;
}
