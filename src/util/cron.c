/*
 * Cron-like schedules as Buildbot's Nightly scheduler takes them: the fields
 * minute, hour, dayOfMonth, month and dayOfWeek, each a number, a list of
 * numbers or a cron string ("*", "5", "1-5", "*\/10", "0,30"), and the next
 * minute that matches them in local time.  The schedulers' nightly and the
 * janitor read their fields into a `struct util_cron` and ask it when to run.
 *
 * dayOfWeek follows Python, as Buildbot does: a number, alone or in a list,
 * counts from Monday 0; bare numbers in a string are converted the same way,
 * ranges and steps in a string are cron's (Sunday 0 or 7).
 */
#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int lo, hi;
} bounds[UTIL_CRON_FIELDS] = {{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}};

static uint64_t *bits_of(struct util_cron *c, enum util_cron_field f)
{
    uint64_t *bits[UTIL_CRON_FIELDS] = {&c->minute, &c->hour, &c->dom, &c->month, &c->dow};
    return bits[f];
}

/* Adds "a", "a-b", "*", each with an optional "/step", to the bit set. */
static int cron_item(const char *item, int lo, int hi, bool dow, uint64_t *bits)
{
    int a = lo, b = hi, step = 1;
    const char *slash = strchr(item, '/');
    if (slash != NULL && (step = atoi(slash + 1)) <= 0)
        return -1;
    if (item[0] != '*') {
        char *end;
        a = (int)strtol(item, &end, 10);
        if (end == item)
            return -1;
        b = slash != NULL && *end != '-' ? hi : a;
        if (*end == '-')
            b = (int)strtol(end + 1, &end, 10);
        if (*end != '\0' && *end != '/')
            return -1;
    } else if (item[1] != '\0' && item[1] != '/') {
        return -1;
    }
    if (a < lo || a > hi || b < a)
        return -1;
    if (dow && b == 7)
        *bits |= 1; /* cron's 7 is Sunday too */
    for (int v = a; v <= b && v <= hi; v += step)
        *bits |= (uint64_t)1 << v;
    return 0;
}

int util_cron_add_value(struct util_cron *c, enum util_cron_field f, long v)
{
    bool dow = f == UTIL_CRON_DOW;
    if (dow && v >= 0)
        v = (v + 1) % 7; /* Python's Monday 0 -> cron's Sunday 0 */
    if (v < bounds[f].lo || v > bounds[f].hi)
        return -1;
    *bits_of(c, f) |= (uint64_t)1 << v;
    return 0;
}

int util_cron_add_text(struct util_cron *c, enum util_cron_field f, const char *spec)
{
    bool dow = f == UTIL_CRON_DOW;
    if (*spec == '\0')
        return -1;
    if (strcmp(spec, "*") == 0 && f == UTIL_CRON_DOM)
        c->dom_any = true;
    if (strcmp(spec, "*") == 0 && dow)
        c->dow_any = true;
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item != NULL && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(item, &end, 10);
        if (dow && *end == '\0' && end != item)
            rc = util_cron_add_value(c, f, v); /* each bare number, as Buildbot converts */
        else
            rc = cron_item(item, bounds[f].lo, bounds[f].hi, dow, bits_of(c, f));
    }
    free(copy);
    return rc;
}

static bool has(uint64_t bits, int v)
{
    return (bits >> v) & 1;
}

/* Whether the day of `tm` matches (cron's rule: when both day fields are restricted,
   either may match). */
static bool day_matches(const struct util_cron *c, const struct tm *tm)
{
    bool dom = has(c->dom, tm->tm_mday), dow = has(c->dow, tm->tm_wday);
    return c->dom_any && c->dow_any ? true : c->dom_any ? dow : c->dow_any ? dom : dom || dow;
}

bool util_cron_matches(const struct util_cron *c, double ts)
{
    time_t t = (time_t)ts;
    struct tm tm;
    localtime_r(&t, &tm);
    return has(c->month, tm.tm_mon + 1) && day_matches(c, &tm) && has(c->hour, tm.tm_hour) &&
           has(c->minute, tm.tm_min);
}

double util_cron_next(const struct util_cron *c, double ts)
{
    time_t t = (time_t)(floor(ts / 60) * 60 + 60);
    struct tm tm;
    localtime_r(&t, &tm);
    for (int guard = 0; guard < 200000; guard++) {
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        t = mktime(&tm);
        localtime_r(&t, &tm);
        bool day = day_matches(c, &tm);
        if (!has(c->month, tm.tm_mon + 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!has(c->hour, tm.tm_hour)) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!has(c->minute, tm.tm_min)) {
            tm.tm_min++;
        } else {
            return (double)t;
        }
    }
    return -1;
}
