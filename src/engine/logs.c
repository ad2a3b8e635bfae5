/*
 * Logs as Buildbot stores them: a logs row, and the text in logchunks rows
 * of whole lines joined by '\n' (no newline after the last), each line of a
 * stdio log starting with its channel: 'o' stdout, 'e' stderr, 'h' header.
 * Text arrives in pieces of any size; each channel keeps its unfinished line.
 * Whole lines wait in memory until LOG_CHUNK_MAX bytes are pending or the
 * engine's flush timer fires, then go out as one chunk, compressed on the
 * packer's thread and written in order (logpack.c), so a running log never
 * holds more than a chunk and a line per channel however much its command
 * prints, and the packer at most a few chunks of all logs.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of content in one line. */
#define LOG_LINE_MAX (LOG_CHUNK_MAX - 2)

/* Buildbot's forceIdentifier(50, name): the slug in URLs. */
static void slugify(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *c = name; *c != '\0' && n + 1 < cap && n < 50; c++) {
        unsigned char u = (unsigned char)*c;
        bool ok = u >= 0x80 || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' ||
                  u == '-' || (n > 0 && u >= '0' && u <= '9');
        out[n++] = ok ? (char)u : '_';
    }
    out[n] = '\0';
}

struct steplog *steplog_open(struct engine *e, long long stepid, const char *name, char type,
                             char **cause)
{
    char slug[64], t[2] = {type, 0};
    slugify(name, slug, sizeof slug);
    long long id;
    struct db_param p[] = {DB_TEXT(name), DB_TEXT(slug), DB_INT(stepid), DB_TEXT(t)};
    if (db_insert(e->db,
                  "INSERT INTO logs (name, slug, stepid, complete, num_lines, type) "
                  "VALUES (?, ?, ?, 0, 0, ?)",
                  p, 4, &id, cause) != 0)
        return NULL;
    engine_publish(e, EV_LOG, id, EV_NEW);
    struct steplog *l = xcalloc(1, sizeof *l);
    l->e = e;
    l->id = id;
    l->type = type;
    for (size_t i = 0; i < UTIL_NELEM(l->partial); i++)
        buf_init(&l->partial[i], LOG_LINE_MAX + 1);
    buf_init(&l->pending, LOG_CHUNK_MAX + 1);
    l->name = xstrdup(name);
    return l;
}

/* The pending lines become a chunk (logpack.c): a full one goes to the packer's thread; a
   log's tail (`tail`: at its close, at the flush timer's turn) is written at once unless
   chunks of the same log are still there. */
static void flush_one(struct steplog *l, bool tail)
{
    if (l->pending_lines == 0)
        return;
    /* a copy of its size: the pending buffer, grown to a chunk, is kept for the next */
    char *text = xmalloc(l->pending.len);
    memcpy(text, l->pending.data, l->pending.len);
    logpack_put(l->e, l, text, l->pending.len, l->pending_lines, tail);
    buf_reset(&l->pending);
    l->num_lines += l->pending_lines;
    l->pending_lines = 0;
}

static void mark_dirty(struct steplog *l)
{
    if (l->dirty)
        return;
    l->dirty = true;
    l->next_dirty = l->e->dirty;
    l->e->dirty = l;
}

void steplog_unsure(struct steplog *l, long long lines)
{
    if (l->unsure == 0) {
        l->next_unsure = l->e->unsure;
        l->e->unsure = l;
    }
    l->unsure += lines;
}

static void forget_unsure(struct steplog *l)
{
    for (struct steplog **p = &l->e->unsure; *p != NULL; p = &(*p)->next_unsure) {
        if (*p == l) {
            *p = l->next_unsure;
            break;
        }
    }
}

void engine_transaction_ended(struct engine *e, bool committed)
{
    struct steplog *next;
    for (struct steplog *l = e->unsure; l != NULL; l = next) {
        next = l->next_unsure;
        if (!committed && l->step != NULL) /* the command is told; nothing is freed now */
            step_abort(l->step, "%lld lines of log '%s' could not be stored: %s", l->unsure,
                       l->name, "the database refused the transaction that wrote them");
        l->unsure = 0;
        l->next_unsure = NULL;
    }
    e->unsure = NULL;
}

static void unmark_dirty(struct steplog *l)
{
    for (struct steplog **p = &l->e->dirty; *p != NULL; p = &(*p)->next_dirty) {
        if (*p == l) {
            *p = l->next_dirty;
            break;
        }
    }
    l->dirty = false;
}

/* A whole line: channel prefix (stdio logs), then the text. */
static void add_line(struct steplog *l, char channel, const char *text, size_t len)
{
    size_t need = len + (channel != 0) + (l->pending_lines > 0);
    if (l->pending.len + need > LOG_CHUNK_MAX)
        flush_one(l, false);
    if (l->pending_lines > 0)
        buf_addc(&l->pending, '\n');
    if (channel != 0)
        buf_addc(&l->pending, channel);
    buf_add(&l->pending, text, len);
    if (l->on_line != NULL)
        l->on_line(l->on_line_arg, channel, text, len);
    l->pending_lines++;
    mark_dirty(l);
}

static void add_partial(struct steplog *l, char channel, struct buf *part)
{
    add_line(l, channel, part->data, part->len);
    buf_reset(part);
}

static int channel_index(char channel)
{
    return channel == 'e' ? 1 : channel == 'h' ? 2 : 0;
}

void steplog_add(struct steplog *l, char channel, const char *text, size_t len)
{
    struct buf *part = &l->partial[channel_index(channel)];
    while (len > 0) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - text) : len;
        if (part->len == 0 && nl != NULL && n <= LOG_LINE_MAX) {
            add_line(l, channel, text, n); /* a whole line, nothing held before it */
            text += n + 1;
            len -= n + 1;
            continue;
        }
        size_t room = LOG_LINE_MAX - part->len;
        size_t take = n < room ? n : room;
        buf_add(part, text, take);
        if (take < n || nl != NULL) /* a newline, or a line cut at the limit */
            add_partial(l, channel, part);
        size_t used = take + (take == n && nl != NULL);
        text += used;
        len -= used;
    }
}

void steplog_close(struct steplog *l)
{
    static const char channels[] = {'o', 'e', 'h'};
    for (size_t i = 0; i < UTIL_NELEM(channels); i++)
        if (l->partial[i].len > 0)
            add_partial(l, l->type == 's' ? channels[i] : 0, &l->partial[i]);
    flush_one(l, true);
    unmark_dirty(l);
    logpack_wait(l->e, l); /* its chunks are all in before it says it is complete */
    forget_unsure(l);      /* its step ends in the transaction it is in, or has ended */
    char *cause = NULL;
    struct db_param p[] = {DB_INT(l->id)};
    if (db_exec(l->e->db, "UPDATE logs SET complete = 1 WHERE id = ?", p, 1, &cause) != 0)
        engine_db_error("finishing a log", cause);
    else
        engine_publish(l->e, EV_LOG, l->id, EV_FINISHED);
    for (size_t i = 0; i < UTIL_NELEM(l->partial); i++)
        buf_free(&l->partial[i]);
    buf_free(&l->pending);
    free(l->name);
    free(l);
}

/* Every dirty log's tail and what the packer has ready, in one transaction. */
void steplogs_flush(struct engine *e)
{
    if (e->dirty == NULL) {
        logpack_collect(e);
        return;
    }
    char *cause = NULL;
    bool tx = db_begin(e->db, &cause) == 0;
    if (!tx)
        engine_db_error("flushing logs", cause);
    for (struct steplog *l = e->dirty; l != NULL; l = l->next_dirty) {
        flush_one(l, true);
        l->dirty = false;
    }
    e->dirty = NULL;
    logpack_collect(e);
    cause = NULL;
    if (tx && db_commit(e->db, &cause) != 0) {
        engine_db_error("flushing logs", cause);
        db_rollback(e->db);
    }
}
