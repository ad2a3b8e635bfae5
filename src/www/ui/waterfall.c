/*
 * The waterfall (/waterfall): builders across, 40 to a page, sorted by name
 * and filtered by tags (`tags=` / `tag=`; `all=1` adds the builders no
 * master runs any more), time down from `until=` (an epoch, now by default)
 * over the `hours=` before it (6, at most 48), each build a block from its
 * start to its end linking to it.  The picture is an inline SVG: no script
 * and no inline style (the page's Content-Security-Policy allows neither),
 * positions are attributes.  A page draws at most 240 blocks: a column
 * shows its builder's last 6 builds in the window when the page has 40
 * columns, up to 24 when it has fewer, and marks that there are more.
 */
#include "www/ui/ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PER_PAGE 40
#define BLOCKS_PAGE 240 /* ~120 bytes each */
#define PER_COLUMN_MIN 3
#define PER_COLUMN_MAX 24
#define HOURS 6
#define HOURS_MAX 48
#define AXIS_W 74
#define COL_W 22
#define BLOCK_W 18
#define HEAD_H 126 /* the names above, then the window */
#define BODY_H 720
#define NAME_BYTES 22

struct frame {
    long long t0, t1, now; /* the window [t0, t1] */
    double scale;          /* pixels a second */
};

static double y_of(const struct frame *fr, long long t)
{
    if (t > fr->t1)
        t = fr->t1;
    if (t < fr->t0)
        t = fr->t0;
    return HEAD_H + (double)(fr->t1 - t) * fr->scale;
}

/* Hour lines every 1, 3 or 6 hours, labelled in UTC, with the date on the first line and at
   midnight ("11-23 00:00"). */
static void axis(struct buf *b, const struct frame *fr, int hours, int width)
{
    long long step = hours <= 8 ? 3600 : hours <= 24 ? 3 * 3600 : 6 * 3600;
    for (long long t = fr->t1 - fr->t1 % step; t >= fr->t0; t -= step) {
        double y = y_of(fr, t);
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        char label[32];
        bool first = t > fr->t1 - step;
        strftime(label, sizeof label, tm.tm_hour == 0 || first ? "%m-%d %H:%M" : "%H:%M", &tm);
        buf_printf(b,
                   "<line class=\"hr\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"ax\" x=\"2\" y=\"%.1f\">%s</text>",
                   AXIS_W - 4, width, y, y, y + 4, label);
    }
}

static void utc(struct buf *b, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char text[32];
    strftime(text, sizeof text, "%Y-%m-%d %H:%M", &tm);
    buf_addstr(b, text);
}

static void header(struct buf *b, const json_t *bl, int x)
{
    html_put(b, "<a href=\"/builders/%D\"><text class=\"bn\" transform=\"translate(%d %d) ",
             ui_int(bl, "builderid"), x + COL_W / 2 + 3, HEAD_H - 14);
    buf_addstr(b, "rotate(-45)\">");
    const char *name = ui_str(bl, "name");
    ui_text_cut(b, name, NAME_BYTES);
    if (strlen(name) > NAME_BYTES)
        html_put(b, "<title>%s</title>", name);
    buf_addstr(b, "</text></a>");
}

/* One build's block; false when it ended before the window. */
static bool block(struct buf *b, const struct frame *fr, const json_t *o)
{
    long long start = ui_int(o, "started_at"), end = ui_int(o, "complete_at");
    if (end <= 0)
        end = fr->now;
    if (end < fr->t0 || start > fr->t1)
        return false;
    double top = y_of(fr, end), bottom = y_of(fr, start);
    double h = bottom - top < 2 ? 2 : bottom - top;
    html_put(b, "<a href=\"/builders/%D/builds/%D\"><rect class=\"%S\" y=\"",
             ui_int(o, "builderid"), ui_int(o, "number"), ui_result_class(o));
    buf_printf(b, "%.0f\" width=\"%d\" height=\"%.0f\"/>", top, BLOCK_W, h);
    html_put(b, "<title>#%D %s</title></a>", ui_int(o, "number"), ui_result_name(o));
    return true;
}

static void column(struct ui_page *p, struct buf *b, const struct frame *fr, const json_t *bl,
                   int x, int cap)
{
    long long id = ui_int(bl, "builderid");
    json_t *builds = ui_get(p,
                            "builders/%lld/builds?order=-number&limit=%d&started_at__lt=%lld"
                            "&field=buildid&field=number&field=builderid&field=results"
                            "&field=complete&field=started_at&field=complete_at",
                            id, cap + 1, fr->t1 + 1);
    buf_printf(b, "<g transform=\"translate(%d 0)\">", x + (COL_W - BLOCK_W) / 2);
    size_t i;
    json_t *o;
    double low = HEAD_H;
    json_array_foreach(builds, i, o)
    {
        if (i == (size_t)cap) {
            long long end = ui_int(o, "complete_at");
            if (end <= 0 || end >= fr->t0)
                buf_printf(b,
                           "<a href=\"/builders/%lld\"><text class=\"ax\" y=\"%.0f\">"
                           "\xe2\x80\xa6</text></a>",
                           id, low + 12);
            break;
        }
        if (block(b, fr, o))
            low = y_of(fr, ui_int(o, "started_at"));
    }
    buf_addstr(b, "</g>");
}

static int by_name_cb(const void *a, const void *b)
{
    const char *x = ui_str(*(json_t *const *)a, "name"), *y = ui_str(*(json_t *const *)b, "name");
    int c = strcasecmp(x, y);
    return c != 0 ? c : strcmp(x, y);
}

static json_t *select_builders(struct ui_page *p, json_t *all, const struct ui_tags *f)
{
    bool old = ui_arg(p, "all") != NULL;
    json_t *keep = json_array();
    size_t i;
    json_t *bl;
    json_array_foreach(all, i, bl)
    {
        if ((old || json_array_size(json_object_get(bl, "masterids")) > 0) && ui_tags_pass(f, bl))
            json_array_append(keep, bl);
    }
    ui_sort(keep, by_name_cb);
    return keep;
}

static void picture(struct ui_page *p, struct buf *b, const struct frame *fr, int hours,
                    json_t *shown, size_t from, size_t to)
{
    int width = AXIS_W + (int)(to - from) * COL_W + 120, height = HEAD_H + BODY_H + 8;
    buf_printf(b,
               "<div class=\"wrap\"><svg class=\"wf\" xmlns=\"http://www.w3.org/2000/svg\" "
               "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"builds over time\">",
               width, height, width, height);
    axis(b, fr, hours, width);
    int cap = BLOCKS_PAGE / (int)(to - from);
    cap = cap < PER_COLUMN_MIN ? PER_COLUMN_MIN : cap > PER_COLUMN_MAX ? PER_COLUMN_MAX : cap;
    for (size_t k = from; k < to; k++) {
        int x = AXIS_W + (int)(k - from) * COL_W;
        header(b, json_array_get(shown, k), x);
        column(p, b, fr, json_array_get(shown, k), x, cap);
    }
    buf_addstr(b, "</svg></div>");
}

static void time_link(struct ui_page *p, struct buf *b, long long until, const char *label)
{
    static const char *const drop[] = {"until", NULL};
    buf_addstr(b, "<a href=\"/waterfall?");
    ui_keep_args(p, b, drop);
    if (until > 0)
        html_put(b, "until=%D", until);
    html_put(b, "\">%S</a>", label);
}

static void form(struct ui_page *p, struct buf *b, const struct frame *fr, int hours)
{
    html_put(b,
             "<form class=\"bar\" method=\"get\" action=\"/waterfall\"><label>Hours "
             "<input name=\"hours\" type=\"number\" min=\"1\" max=\"%d\" value=\"%d\"></label>",
             HOURS_MAX, hours);
    static const char *const keep[] = {"tags", "tag", "until", "all", NULL};
    ui_hidden_args(p, b, keep);
    buf_addstr(b, "<button>Show</button>");
    long long span = (long long)hours * 3600;
    time_link(p, b, fr->t1 - span, "Earlier");
    if (fr->t1 < fr->now) {
        time_link(p, b, fr->t1 + span < fr->now ? fr->t1 + span : 0, "Later");
        time_link(p, b, 0, "Now");
    }
    buf_addstr(b, "</form>");
}

static void read_frame(const struct ui_page *p, struct frame *fr, int *hours)
{
    const char *h = ui_arg(p, "hours"), *u = ui_arg(p, "until");
    *hours = h != NULL ? atoi(h) : HOURS;
    if (*hours < 1 || *hours > HOURS_MAX)
        *hours = HOURS;
    fr->now = (long long)time(NULL);
    fr->t1 = u != NULL ? atoll(u) : 0;
    if (fr->t1 <= 0 || fr->t1 > fr->now)
        fr->t1 = fr->now;
    fr->t0 = fr->t1 - (long long)*hours * 3600;
    fr->scale = (double)BODY_H / ((double)*hours * 3600);
}

void ui_page_waterfall(struct ui_page *p, const struct www_args *a)
{
    (void)a;
    struct ui_tags f;
    ui_tags_read(p, &f);
    struct frame fr;
    int hours;
    read_frame(p, &fr, &hours);
    json_t *all = ui_get(p, "builders");
    if (all == NULL)
        return;
    json_t *shown = select_builders(p, all, &f);
    size_t n = json_array_size(shown);
    long long pages = (long long)((n + PER_PAGE - 1) / PER_PAGE);
    long long page = ui_page_arg(p, pages);
    struct buf *b = &p->out;
    ui_head(p, "Waterfall", "/waterfall");
    buf_addstr(b, "<h1>Waterfall</h1>");
    form(p, b, &fr, hours);
    ui_tags_bar(p, b, all, &f, "/waterfall");
    if (n == 0) {
        buf_addstr(b, "<p class=\"mut\">No builder matches.</p>");
    } else {
        size_t from = (size_t)page * PER_PAGE, to = from + PER_PAGE < n ? from + PER_PAGE : n;
        html_put(b, "<p class=\"mut\">Builders %D to %D of %D, builds from ", (long long)from + 1,
                 (long long)to, (long long)n);
        utc(b, fr.t0);
        buf_addstr(b, " to ");
        utc(b, fr.t1);
        buf_addstr(b, " UTC, the newest at the top.</p>");
        picture(p, b, &fr, hours, shown, from, to);
        ui_pager(p, b, "/waterfall", page, pages);
    }
    json_decref(shown);
    ui_foot(p);
}
