/*
 * Notifications made away from the outbox.  The outbox lives on the loop and
 * writes through the engine's connection; the engine's reports thread
 * (src/engine/reportq.c) renders a build's reports elsewhere, with a
 * configuration and a connection of its own.  What it would enqueue is copied
 * into a batch instead, handed to the loop, and enqueued there, in order, by
 * rep_batch_enqueue, in the transaction that forgets the event.  A batch holds
 * one event's notifications: as many as its reporters' generators make of it.
 * A mail's message is written to its file (rep_mail_save) here, on the thread
 * that made it; a batch dropped at a stop, never enqueued, leaves its files to
 * the next start, which removes them.
 */
#include <stdlib.h>
#include <string.h>

#include "reporters/reporters.h"

enum { FIELDS = 8 };

struct item {
    struct item *next;
    enum rep_kind kind; /* REP_KIND_STATUS, a post's kind or REP_KIND_MAIL */
    char *f[FIELDS];    /* the struct's strings, in its order */
    char **rcpts;
    size_t n_rcpts;
    size_t bytes; /* a mail: its file's size */
};

struct rep_batch {
    struct item *head, **tail;
};

struct rep_batch *rep_batch_new(void)
{
    struct rep_batch *b = xcalloc(1, sizeof *b);
    b->tail = &b->head;
    return b;
}

static struct item *add(struct rep_batch *b, enum rep_kind kind, const char *const *f, size_t n)
{
    struct item *it = xcalloc(1, sizeof *it);
    it->kind = kind;
    for (size_t i = 0; i < n; i++)
        it->f[i] = f[i] != NULL ? xstrdup(f[i]) : NULL;
    *b->tail = it;
    b->tail = &it->next;
    return it;
}

void rep_batch_status(struct rep_batch *b, const struct rep_status *st)
{
    const char *f[] = {st->reporter, st->owner,       st->repo,       st->sha,
                       st->state,    st->description, st->target_url, st->context};
    add(b, REP_KIND_STATUS, f, sizeof f / sizeof *f);
}

void rep_batch_post(struct rep_batch *b, const struct rep_post *p)
{
    const char *f[] = {p->reporter, p->path, p->body, p->what};
    add(b, p->kind, f, sizeof f / sizeof *f);
}

void rep_batch_mail(struct rep_batch *b, const struct rep_mail *m)
{
    char file[REP_MAIL_NAME_MAX], *cause = NULL;
    size_t bytes = 0;
    if (rep_mail_save(m->message, file, &bytes, &cause) != 0) { /* here, not on the loop */
        log_error("reporters: %s: a mail not queued: %s", m->reporter, cause);
        free(cause);
        return;
    }
    const char *f[] = {m->reporter, m->from, m->message_id, m->subject, file};
    struct item *it = add(b, REP_KIND_MAIL, f, sizeof f / sizeof *f);
    it->bytes = bytes;
    it->rcpts = xcalloc(m->n_rcpts + 1, sizeof *it->rcpts);
    for (size_t i = 0; i < m->n_rcpts; i++)
        it->rcpts[i] = xstrdup(m->rcpts[i]);
    it->n_rcpts = m->n_rcpts;
}

static int enqueue(struct rep *r, const struct item *it, char **cause)
{
    char *const *f = it->f;
    if (it->kind == REP_KIND_STATUS) {
        struct rep_status st = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
        return rep_enqueue(r, &st, cause);
    }
    if (it->kind == REP_KIND_MAIL) {
        struct rep_mail m = {.reporter = f[0],
                             .from = f[1],
                             .message_id = f[2],
                             .subject = f[3],
                             .file = f[4],
                             .file_bytes = it->bytes,
                             .rcpts = (const char *const *)it->rcpts,
                             .n_rcpts = it->n_rcpts};
        return rep_enqueue_mail(r, &m, cause);
    }
    struct rep_post p = {
        .reporter = f[0], .kind = it->kind, .path = f[1], .body = f[2], .what = f[3]};
    return rep_enqueue_post(r, &p, cause);
}

void rep_batch_enqueue(struct rep *r, const struct rep_batch *b, const char *what)
{
    static const char *const kinds[] = {"a status", "a message", "a comment", "a mail"};
    for (const struct item *it = b->head; it != NULL; it = it->next) {
        char *cause = NULL;
        if (enqueue(r, it, &cause) < 0) {
            log_error("%s: %s: %s not queued: %s", what, it->f[0], kinds[it->kind], cause);
            free(cause);
        }
    }
}

void rep_batch_free(struct rep_batch *b)
{
    if (b == NULL)
        return;
    struct item *next;
    for (struct item *it = b->head; it != NULL; it = next) {
        next = it->next;
        for (size_t i = 0; i < FIELDS; i++)
            free(it->f[i]);
        for (size_t i = 0; i < it->n_rcpts; i++)
            free(it->rcpts[i]);
        free(it->rcpts);
        free(it);
    }
    free(b);
}
