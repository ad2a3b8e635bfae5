/*
 * The IRC reporter's pure parts: the line parser (RFC 2812's message syntax,
 * bounded to 512 bytes, fuzzed in fuzz/fuzz_irc.c), Buildbot's notify_events and
 * their meaning for a finished build (words.py's notify_for_finished), the texts
 * words.py says and irc.py colours, and the queue of lines with its line rate.
 * irc.c runs the connection; the engine decides what to say with these.
 */
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static char *skip_spaces(char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

/* Cuts the word at `p` with a NUL and returns what follows its spaces. */
static char *word(char *p)
{
    char *sp = strchr(p, ' ');
    if (sp == NULL)
        return p + strlen(p);
    *sp = '\0';
    return skip_spaces(sp + 1);
}

int rep_irc_parse(const char *line, size_t len, struct rep_irc_msg *m)
{
    if (len == 0 || len > REP_IRC_LINE_MAX - 2)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
            return -1;
    memcpy(m->buf, line, len);
    m->buf[len] = '\0';
    m->prefix = NULL;
    m->n_params = 0;
    char *p = skip_spaces(m->buf);
    if (*p == ':') {
        m->prefix = p + 1;
        p = word(p);
        if (m->prefix[0] == '\0')
            return -1;
    }
    if (*p == '\0')
        return -1;
    m->command = p;
    p = word(p);
    while (*p != '\0' && m->n_params < REP_IRC_PARAMS_MAX) {
        if (*p == ':' || m->n_params == REP_IRC_PARAMS_MAX - 1) {
            m->params[m->n_params++] = *p == ':' ? p + 1 : p; /* the trailing one */
            break;
        }
        m->params[m->n_params++] = p;
        p = word(p);
    }
    return 0;
}

/* ------------------------------------------------------------ notify_events */

static const struct {
    const char *name;
    uint32_t bit;
} events[] = {
    {"started", REP_IRC_EV_STARTED},     {"finished", REP_IRC_EV_FINISHED},
    {"success", REP_IRC_EV_SUCCESS},     {"warnings", REP_IRC_EV_WARNINGS},
    {"failure", REP_IRC_EV_FAILURE},     {"exception", REP_IRC_EV_EXCEPTION},
    {"cancelled", REP_IRC_EV_CANCELLED}, {"problem", REP_IRC_EV_PROBLEM},
    {"recovery", REP_IRC_EV_RECOVERY},   {"worse", REP_IRC_EV_WORSE},
    {"better", REP_IRC_EV_BETTER},       {"worker", REP_IRC_EV_WORKER},
};

/* The four results of the deprecated "prevToNow" events, in the order of their bits. */
static const char *const to_names[] = {"success", "warnings", "failure", "exception"};
static const int to_results[] = {REP_RES_SUCCESS, REP_RES_WARNINGS, REP_RES_FAILURE,
                                 REP_RES_EXCEPTION};

static int to_index(const char *name, size_t len, bool capital)
{
    for (int i = 0; i < 4; i++) {
        const char *n = to_names[i];
        if (strlen(n) == len && (capital ? n[0] - 'a' + 'A' : n[0]) == name[0] &&
            strncmp(n + 1, name + 1, len - 1) == 0)
            return i;
    }
    return -1;
}

uint32_t rep_irc_event(const char *name)
{
    for (size_t i = 0; i < UTIL_NELEM(events); i++)
        if (strcmp(events[i].name, name) == 0)
            return events[i].bit;
    const char *to = strstr(name, "To");
    if (to == NULL || to == name || to[2] == '\0')
        return 0;
    int prev = to_index(name, (size_t)(to - name), false);
    int now = to_index(to + 2, strlen(to + 2), true);
    if (prev < 0 || now < 0)
        return 0;
    return 1u << (REP_IRC_EV_TO_SHIFT + 4 * prev + now);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *rep_irc_event_names(uint32_t mask, const char *sep)
{
    char combos[16][24];
    const char *names[UTIL_NELEM(events) + 16];
    size_t n = 0;
    for (size_t i = 0; i < UTIL_NELEM(events); i++)
        if (mask & events[i].bit)
            names[n++] = events[i].name;
    for (int p = 0; p < 4; p++)
        for (int q = 0; q < 4; q++) {
            if (!(mask & (1u << (REP_IRC_EV_TO_SHIFT + 4 * p + q))))
                continue;
            char *c = combos[4 * p + q];
            snprintf(c, sizeof combos[0], "%sTo%c%s", to_names[p], to_names[q][0] - 'a' + 'A',
                     to_names[q] + 1);
            names[n++] = c;
        }
    qsort(names, n, sizeof *names, cmp_name);
    struct buf out;
    buf_init(&out, 0);
    for (size_t i = 0; i < n; i++)
        buf_printf(&out, "%s%s", i > 0 ? sep : "", names[i]);
    return out.data != NULL ? buf_take(&out) : xstrdup("");
}

/* words.py's results_severity: SKIPPED, SUCCESS, WARNINGS, FAILURE, CANCELLED, EXCEPTION;
   -1 for RETRY and what is not a result. */
static int severity(int results)
{
    static const int order[] = {REP_RES_SKIPPED, REP_RES_SUCCESS,   REP_RES_WARNINGS,
                                REP_RES_FAILURE, REP_RES_CANCELLED, REP_RES_EXCEPTION};
    for (int i = 0; i < (int)UTIL_NELEM(order); i++)
        if (order[i] == results)
            return i;
    return -1;
}

static int to_slot(int results)
{
    for (int i = 0; i < 4; i++)
        if (to_results[i] == results)
            return i;
    return -1;
}

static uint32_t result_event(int results)
{
    switch (results) {
    case REP_RES_SUCCESS:
        return REP_IRC_EV_SUCCESS;
    case REP_RES_WARNINGS:
        return REP_IRC_EV_WARNINGS;
    case REP_RES_FAILURE:
        return REP_IRC_EV_FAILURE;
    case REP_RES_EXCEPTION:
        return REP_IRC_EV_EXCEPTION;
    case REP_RES_CANCELLED:
        return REP_IRC_EV_CANCELLED;
    default: /* "skipped" and "retry" are not events Buildbot takes */
        return 0;
    }
}

static bool ok_result(int r)
{
    return r == REP_RES_SUCCESS || r == REP_RES_WARNINGS;
}

static bool bad_result(int r)
{
    return r == REP_RES_FAILURE || r == REP_RES_EXCEPTION;
}

bool rep_irc_wants(uint32_t ev, int results, int prev)
{
    if ((ev & REP_IRC_EV_FINISHED) || (ev & result_event(results)))
        return true;
    int now = severity(results), before = prev >= 0 ? severity(prev) : -1;
    if (now < 0 || before < 0) /* RETRY, no previous build, or one still running */
        return false;
    if ((ev & REP_IRC_EV_BETTER) && now < before)
        return true;
    if ((ev & REP_IRC_EV_WORSE) && now > before)
        return true;
    if ((ev & REP_IRC_EV_PROBLEM) && ok_result(prev) && bad_result(results))
        return true;
    if ((ev & REP_IRC_EV_RECOVERY) && bad_result(prev) && ok_result(results))
        return true;
    int a = to_slot(prev), b = to_slot(results);
    return a >= 0 && b >= 0 && (ev & (1u << (REP_IRC_EV_TO_SHIFT + 4 * a + b)));
}

/* ------------------------------------------------------------ texts */

char *rep_irc_started_text(long long number, const char *url, const char *builder)
{
    return xasprintf("Build [#%lld](%s) of `%s` started.", number, url, builder);
}

/* irc.py's results_descriptions and results_colors (the mIRC colour numbers). */
static const char *description(int results, int *color)
{
    static const struct {
        const char *text;
        int color;
    } d[] = {
        [REP_RES_SUCCESS] = {"completed successfully", 3},   /* GREEN */
        [REP_RES_WARNINGS] = {"completed with warnings", 8}, /* YELLOW */
        [REP_RES_FAILURE] = {"failed", 4},                   /* RED */
        [REP_RES_SKIPPED] = {"was skipped", 12},             /* ROYAL_BLUE */
        [REP_RES_EXCEPTION] = {"stopped with exception", 6}, /* PURPLE */
        [REP_RES_RETRY] = {"has been retried", 11},          /* AQUA_LIGHT */
        [REP_RES_CANCELLED] = {"was cancelled", 13},         /* PINK */
    };
    if (results < 0 || results >= (int)UTIL_NELEM(d)) {
        *color = 1;
        return "finished";
    }
    *color = d[results].color;
    return d[results].text;
}

char *rep_irc_finished_text(long long number, const char *url, const char *builder, int results,
                            const char *state_string, bool colors)
{
    int color;
    const char *text = description(results, &color);
    char status[64];
    if (colors)
        snprintf(status, sizeof status, "\x03%d%s\x0f", color, text);
    else
        snprintf(status, sizeof status, "%s", text);
    if (results != REP_RES_SUCCESS && state_string != NULL)
        return xasprintf("Build [#%lld](%s) of `%s` %s: %s", number, url, builder, status,
                         state_string);
    return xasprintf("Build [#%lld](%s) of `%s` %s.", number, url, builder, status);
}

size_t rep_irc_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--; /* s[n] continues a character: cut before the character */
    return n;
}

/* ------------------------------------------------------------ the queue */

void rep_irc_queue_init(struct rep_irc_queue *q, uint64_t now)
{
    memset(q, 0, sizeof *q);
    q->tokens = REP_IRC_BURST;
    q->refill_at = now;
}

void rep_irc_queue_push(struct rep_irc_queue *q, char *line)
{
    if (q->n == REP_IRC_QUEUE_MAX) {
        q->dropped++;
        free(line);
        return;
    }
    q->lines[(q->head + q->n++) % REP_IRC_QUEUE_MAX] = line;
}

static void refill(struct rep_irc_queue *q, uint64_t now)
{
    if (now > q->refill_at)
        q->tokens += (double)(now - q->refill_at) / REP_IRC_LINE_MS;
    if (q->tokens > REP_IRC_BURST)
        q->tokens = REP_IRC_BURST;
    q->refill_at = now > q->refill_at ? now : q->refill_at;
}

char *rep_irc_queue_pop(struct rep_irc_queue *q, uint64_t now)
{
    refill(q, now);
    if (q->n == 0 || q->tokens < 1)
        return NULL;
    char *line = q->lines[q->head];
    q->head = (q->head + 1) % REP_IRC_QUEUE_MAX;
    q->n--;
    q->tokens -= 1;
    return line;
}

uint64_t rep_irc_queue_wait(const struct rep_irc_queue *q, uint64_t now)
{
    if (q->n == 0)
        return 0;
    double tokens = q->tokens;
    if (now > q->refill_at)
        tokens += (double)(now - q->refill_at) / REP_IRC_LINE_MS;
    if (tokens >= 1)
        return 0;
    return (uint64_t)((1 - tokens) * REP_IRC_LINE_MS) + 1;
}

void rep_irc_queue_clear(struct rep_irc_queue *q)
{
    while (q->n > 0) {
        free(q->lines[q->head]);
        q->head = (q->head + 1) % REP_IRC_QUEUE_MAX;
        q->n--;
    }
}
