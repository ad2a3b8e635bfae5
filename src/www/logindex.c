/*
 * Byte offsets in raw logs, for Range requests (raw.c).  A raw download is the
 * log's lines, each without its channel character when stripped and with a
 * newline: neither its length nor the line at a byte offset is stored, and a
 * compressed chunk says nothing of its text's length.  The first ranged request
 * on a log reads it through once, a few chunks at a time as the download
 * would (www_log_lines), and keeps its length and some checkpoints, "line L
 * starts at byte B"; a later request starts reading at the checkpoint before
 * its range.  A log that has grown since is read on from where its count
 * stopped (lines, once written, do not change).
 *
 * Memory is bounded: WWW_LOGIDX_SLOTS logs (by id, a newer one takes the slot),
 * each at most WWW_LOGIDX_POINTS checkpoints; when they are all used, every
 * other one is dropped and the gap between them doubles.
 */
#include "www/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct point {
    long long line;
    uint64_t offset;
};

struct entry {
    long long logid;
    bool strip;
    long long lines; /* lines [0, lines) are counted */
    uint64_t bytes;  /* their length */
    uint64_t gap;    /* the least distance between two checkpoints */
    size_t n;        /* points[0] is line 0 at byte 0 */
    struct point points[WWW_LOGIDX_POINTS];
};

struct www_logidx {
    pthread_mutex_t lock;
    struct entry *slots[WWW_LOGIDX_SLOTS];
};

struct www_logidx *www_logidx_new(void)
{
    struct www_logidx *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    return x;
}

void www_logidx_free(struct www_logidx *x)
{
    if (x == NULL)
        return;
    for (size_t i = 0; i < WWW_LOGIDX_SLOTS; i++)
        free(x->slots[i]);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

static struct entry **slot_of(struct www_logidx *x, long long logid)
{
    return &x->slots[(unsigned long long)logid % WWW_LOGIDX_SLOTS];
}

/* The kept entry of a log, if it still holds (a log shorter than counted was replaced). */
static const struct entry *kept(struct www_logidx *x, long long logid, bool strip,
                                long long num_lines)
{
    const struct entry *e = *slot_of(x, logid);
    return e != NULL && e->logid == logid && e->strip == strip && e->lines <= num_lines ? e : NULL;
}

static void add_point(struct entry *e, long long line, uint64_t offset)
{
    if (offset - e->points[e->n - 1].offset < e->gap || offset == e->points[e->n - 1].offset)
        return;
    if (e->n == WWW_LOGIDX_POINTS) {
        for (size_t i = 0; 2 * i < e->n; i++)
            e->points[i] = e->points[2 * i];
        e->n = (e->n + 1) / 2;
        e->gap = e->gap > 0 ? 2 * e->gap : offset / e->n;
        if (offset - e->points[e->n - 1].offset < e->gap)
            return;
    }
    e->points[e->n++] = (struct point){line, offset};
}

/* A line's length in the download. */
static void count_line(struct buf *out, const char *line, size_t len, void *arg)
{
    (void)out;
    (void)line;
    struct entry *e = arg;
    e->bytes += len - (e->strip && len > 0 ? 1 : 0) + 1;
}

/* Counts lines [e->lines, num_lines), a batch of chunks at a time. */
static int count(struct www *w, struct entry *e, long long num_lines, char **cause)
{
    long long next = e->lines;
    struct buf none = {0};
    int rc = 1;
    while (rc == 1) {
        rc = www_log_lines(w, e->logid, &next, num_lines - 1, &none, count_line, e, cause);
        if (rc >= 0 && next < num_lines)
            add_point(e, next, e->bytes);
    }
    e->lines = num_lines;
    return rc;
}

int www_logidx_length(struct www *w, long long logid, bool strip, long long num_lines,
                      uint64_t *total, char **cause)
{
    struct www_logidx *x = w->logidx;
    struct entry *e = xmalloc(sizeof *e);
    pthread_mutex_lock(&x->lock);
    const struct entry *k = kept(x, logid, strip, num_lines);
    if (k != NULL)
        memcpy(e, k, sizeof *e);
    pthread_mutex_unlock(&x->lock);
    if (k == NULL) {
        *e = (struct entry){.logid = logid, .strip = strip, .n = 1};
        e->points[0] = (struct point){0, 0};
    }
    if (e->lines < num_lines && count(w, e, num_lines, cause) < 0) {
        free(e);
        return -1;
    }
    *total = e->bytes;
    pthread_mutex_lock(&x->lock);
    struct entry **slot = slot_of(x, logid);
    if (kept(x, logid, strip, num_lines) == NULL || (*slot)->lines < e->lines) {
        free(*slot);
        *slot = e;
        e = NULL;
    }
    pthread_mutex_unlock(&x->lock);
    free(e);
    return 0;
}

void www_logidx_seek(struct www *w, long long logid, bool strip, long long num_lines, uint64_t at,
                     long long *line, uint64_t *offset)
{
    struct www_logidx *x = w->logidx;
    *line = 0;
    *offset = 0;
    pthread_mutex_lock(&x->lock);
    const struct entry *e = kept(x, logid, strip, num_lines);
    if (e != NULL) {
        size_t lo = 0, hi = e->n; /* the last point at or before `at` */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (e->points[mid].offset <= at)
                lo = mid;
            else
                hi = mid;
        }
        *line = e->points[lo].line;
        *offset = e->points[lo].offset;
    }
    pthread_mutex_unlock(&x->lock);
}
