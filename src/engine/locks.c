/*
 * Locks as Buildbot's BaseLock keeps them: a master lock is one lock, a worker lock one
 * copy per worker (maxCountForWorker, else maxCount).  A lock has exclusive and counting
 * owners (one exclusive, or counting accesses up to maxCount units) and a FIFO queue of
 * waiters; a waiter is never overtaken: an access is available only if it fits together
 * with every waiter ahead of it, and a counting access never passes an exclusive waiter.
 *
 * A build or a step asks for all its locks at once (a lockreq).  It takes them all when
 * all are available, else it queues on the first that is not, as Buildbot's acquireLocks
 * does, and keeps that place once woken until it takes its locks or gives up.  A release
 * wakes the waiters that now fit; they try again on the next loop turn (locks_run_ready,
 * which the registry's notify function schedules), never from inside the release.
 *
 * Locks are kept by kind and name for the engine's life, so that a reconfig keeps them
 * (Buildbot's getLockByID): a configuration newer than the one that last set a lock's
 * maxCount sets it again, and a larger maxCount wakes waiters.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

struct lock {
    char *name;
    bool worker_lock;
    char *worker; /* the worker of a worker lock's copy */
    int max_count;
    unsigned long version; /* of the configuration that set max_count */
    int excl, counting;    /* owners' units */
    struct lock_claim *head, *tail;
    struct lock *next;
};

/* One access of a request: its place in its lock's queue, and whether it is held. */
struct lock_claim {
    struct lock *lock;
    bool exclusive;
    int count;
    bool queued, woken;
    struct lock_claim *prev, *next;
    struct lockreq *req;
};

struct lockreq {
    struct locks *reg;
    struct lock_claim *claims;
    size_t n;
    bool owned;
    bool ready; /* on the registry's ready list */
    void (*cb)(void *arg);
    void *arg;
    struct lockreq *next_ready;
};

struct locks {
    struct lock *all;
    struct lockreq *ready, *ready_tail;
    void (*notify)(void *arg);
    void *notify_arg;
};

struct locks *locks_new(void (*notify)(void *arg), void *arg)
{
    struct locks *reg = xcalloc(1, sizeof *reg);
    reg->notify = notify;
    reg->notify_arg = arg;
    return reg;
}

void locks_free(struct locks *reg)
{
    if (reg == NULL)
        return;
    while (reg->all != NULL) {
        struct lock *l = reg->all;
        reg->all = l->next;
        free(l->name);
        free(l->worker);
        free(l);
    }
    free(reg);
}

static void notify(struct locks *reg)
{
    if (reg->notify != NULL)
        reg->notify(reg->notify_arg);
}

/* BaseLock._tryWakeUp: the waiters, in order, that fit are told to try again. */
static void wake(struct lock *l, struct locks *reg)
{
    int excl = l->excl, counting = l->counting;
    for (struct lock_claim *c = l->head; c != NULL; c = c->next) {
        if (!c->exclusive) {
            if (excl > 0 || counting >= l->max_count)
                break;
            counting += c->count;
        } else {
            if (excl > 0 || counting > 0)
                break;
            excl++;
        }
        if (!c->woken) {
            c->woken = true;
            if (!c->req->ready) {
                c->req->ready = true;
                c->req->next_ready = NULL;
                if (reg->ready_tail != NULL)
                    reg->ready_tail->next_ready = c->req;
                else
                    reg->ready = c->req;
                reg->ready_tail = c->req;
            }
        }
    }
    notify(reg);
}

/* The lock for access `a` on `worker`, made or updated for configuration `version`. */
static struct lock *lock_for(struct locks *reg, const struct cfg_lock_access *a, const char *worker,
                             unsigned long version)
{
    const char *w = a->worker_lock ? worker : NULL;
    struct lock *l = reg->all;
    while (l != NULL && !(l->worker_lock == a->worker_lock && util_streq(l->name, a->name) &&
                          (w == NULL || util_streq(l->worker, w))))
        l = l->next;
    if (l == NULL) {
        l = xcalloc(1, sizeof *l);
        l->name = xstrdup(a->name);
        l->worker_lock = a->worker_lock;
        l->worker = w != NULL ? xstrdup(w) : NULL;
        l->max_count = cfg_lock_max(a, w);
        l->version = version;
        l->next = reg->all;
        reg->all = l;
    } else if (version > l->version) {
        int old = l->max_count;
        l->max_count = cfg_lock_max(a, w);
        l->version = version;
        if (l->max_count > old)
            wake(l, reg);
    }
    return l;
}

/* BaseLock.isAvailable for claim `c`, or for a newcomer when c's lock is given alone. */
static bool available(const struct lock *l, const struct lock_claim *c, bool exclusive, int count)
{
    if (count == 0)
        return true;
    int ahead = 0;
    bool all_counting = true;
    for (const struct lock_claim *w = l->head; w != NULL && w != c; w = w->next) {
        ahead++;
        all_counting = all_counting && !w->exclusive;
    }
    if (!exclusive)
        return l->excl == 0 && l->counting + ahead + count <= l->max_count && all_counting;
    return l->excl == 0 && l->counting == 0 && ahead == 0;
}

bool locks_available(struct locks *reg, const struct cfg_lock_access *a, size_t n,
                     const char *worker, unsigned long version)
{
    for (size_t i = 0; i < n; i++) {
        struct lock *l = lock_for(reg, &a[i], worker, version);
        if (!available(l, NULL, a[i].exclusive, a[i].exclusive ? 1 : a[i].count))
            return false;
    }
    return true;
}

struct lockreq *lockreq_new(struct locks *reg, const struct cfg_lock_access *a, size_t n,
                            const char *worker, unsigned long version)
{
    struct lockreq *r = xcalloc(1, sizeof *r);
    r->reg = reg;
    r->n = n;
    r->claims = xcalloc(n + 1, sizeof *r->claims);
    for (size_t i = 0; i < n; i++) {
        struct lock_claim *c = &r->claims[i];
        c->lock = lock_for(reg, &a[i], worker, version);
        c->exclusive = a[i].exclusive;
        c->count = a[i].exclusive ? 1 : a[i].count;
        c->req = r;
    }
    return r;
}

static void dequeue(struct lock_claim *c)
{
    if (!c->queued)
        return;
    struct lock *l = c->lock;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->queued = c->woken = false;
}

static void enqueue(struct lock_claim *c)
{
    struct lock *l = c->lock;
    c->queued = true;
    c->woken = false;
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

/* Takes every lock if all are available; else waits on the first that is not. */
static bool try_take(struct lockreq *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct lock_claim *c = &r->claims[i];
        if (available(c->lock, c->queued ? c : NULL, c->exclusive, c->count))
            continue;
        if (c->queued)
            c->woken = false; /* waits again, in its place */
        else
            enqueue(c);
        return false;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct lock_claim *c = &r->claims[i];
        dequeue(c);
        if (c->count == 0)
            continue;
        if (c->exclusive)
            c->lock->excl++;
        else
            c->lock->counting += c->count;
    }
    r->owned = true;
    return true;
}

bool lockreq_acquire(struct lockreq *r, void (*cb)(void *arg), void *arg)
{
    r->cb = cb;
    r->arg = arg;
    return r->owned || try_take(r);
}

bool lockreq_owned(const struct lockreq *r)
{
    return r != NULL && r->owned;
}

const char *lockreq_shared(const struct lockreq *a, const struct lockreq *b)
{
    for (size_t i = 0; a != NULL && b != NULL && i < a->n; i++)
        for (size_t k = 0; k < b->n; k++)
            if (a->claims[i].lock == b->claims[k].lock)
                return a->claims[i].lock->name;
    return NULL;
}

static void unready(struct lockreq *r)
{
    if (!r->ready)
        return;
    struct locks *reg = r->reg;
    struct lockreq *prev = NULL;
    for (struct lockreq *x = reg->ready; x != NULL; prev = x, x = x->next_ready) {
        if (x != r)
            continue;
        if (prev != NULL)
            prev->next_ready = x->next_ready;
        else
            reg->ready = x->next_ready;
        if (reg->ready_tail == x)
            reg->ready_tail = prev;
        break;
    }
    r->ready = false;
}

void lockreq_free(struct lockreq *r)
{
    if (r == NULL)
        return;
    unready(r);
    for (size_t i = 0; i < r->n; i++) {
        struct lock_claim *c = &r->claims[i];
        bool was_queued = c->queued;
        dequeue(c);
        if (r->owned && c->count > 0) {
            if (c->exclusive)
                c->lock->excl--;
            else
                c->lock->counting -= c->count;
        }
        if (r->owned || was_queued)
            wake(c->lock, r->reg); /* a place in the queue freed counts as a release */
    }
    free(r->claims);
    free(r);
}

void locks_run_ready(struct locks *reg)
{
    /* one at a time off the list: a callback may free requests still on it (they leave it
       as they are freed) or wake others (added at its end) */
    while (reg->ready != NULL) {
        struct lockreq *r = reg->ready;
        reg->ready = r->next_ready;
        if (reg->ready == NULL)
            reg->ready_tail = NULL;
        r->next_ready = NULL;
        r->ready = false;
        if (!r->owned && try_take(r) && r->cb != NULL)
            r->cb(r->arg);
    }
}
