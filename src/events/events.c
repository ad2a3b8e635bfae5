/*
 * The event bus: a ring of EV_RING_SIZE fixed-size items under one mutex.
 * The publisher writes the item at `next` and, unless its transaction holds
 * events back, moves `visible` to it and wakes the readers; a reader copies
 * items between its cursor and `visible`.  Nothing is allocated after
 * ev_bus_new, and the publisher holds the mutex for a copy of 24 bytes and a
 * condition broadcast, whatever the readers do.  An item is overwritten when
 * the ring is full; `gone` is the sequence number below which items are no
 * longer in the ring, so a reader behind it learns how many it lost.
 */
#include "events/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util/util.h"

struct ev_bus {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t next;    /* the sequence number the next item gets (the first is 1) */
    uint64_t visible; /* items below it may be read */
    uint64_t gone;    /* items below it were overwritten */
    uint64_t wakes;   /* ev_wake calls, so that a waiting reader sees one */
    bool held;        /* the publisher's transaction is open */
    struct ev_item ring[EV_RING_SIZE];
};

struct ev_bus *ev_bus_new(void)
{
    struct ev_bus *bus = xcalloc(1, sizeof *bus);
    pthread_mutex_init(&bus->lock, NULL);
    util_cond_init_monotonic(&bus->cond);
    bus->next = bus->visible = bus->gone = 1;
    return bus;
}

void ev_bus_free(struct ev_bus *bus)
{
    if (bus == NULL)
        return;
    pthread_cond_destroy(&bus->cond);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}

void ev_publish(struct ev_bus *bus, enum ev_type type, long long id, enum ev_name name)
{
    if (bus == NULL)
        return;
    pthread_mutex_lock(&bus->lock);
    uint64_t seq = bus->next++;
    bus->ring[seq % EV_RING_SIZE] =
        (struct ev_item){.seq = seq, .id = id, .type = (uint8_t)type, .name = (uint8_t)name};
    if (bus->next - bus->gone > EV_RING_SIZE)
        bus->gone = bus->next - EV_RING_SIZE;
    if (!bus->held) {
        bus->visible = bus->next;
        pthread_cond_broadcast(&bus->cond);
    }
    pthread_mutex_unlock(&bus->lock);
}

void ev_hold(struct ev_bus *bus)
{
    if (bus == NULL)
        return;
    pthread_mutex_lock(&bus->lock);
    bus->held = true;
    pthread_mutex_unlock(&bus->lock);
}

void ev_release(struct ev_bus *bus, bool commit)
{
    if (bus == NULL)
        return;
    pthread_mutex_lock(&bus->lock);
    bus->held = false;
    if (commit && bus->visible != bus->next) {
        bus->visible = bus->next;
        pthread_cond_broadcast(&bus->cond);
    } else if (!commit) {
        /* the held items' numbers are given again; those they overwrote stay gone */
        bus->next = bus->visible;
    }
    pthread_mutex_unlock(&bus->lock);
}

uint64_t ev_head(struct ev_bus *bus)
{
    pthread_mutex_lock(&bus->lock);
    uint64_t head = bus->visible;
    pthread_mutex_unlock(&bus->lock);
    return head;
}

size_t ev_read(struct ev_bus *bus, uint64_t *cursor, struct ev_item *out, size_t max,
               uint64_t *lost)
{
    size_t n = 0;
    pthread_mutex_lock(&bus->lock);
    uint64_t at = *cursor;
    if (at > bus->visible) /* a cursor of another bus's life: start again at its head */
        at = bus->visible;
    if (at < bus->gone) {
        *lost += bus->gone - at;
        at = bus->gone;
    }
    for (; at < bus->visible && n < max; at++) {
        const struct ev_item *it = &bus->ring[at % EV_RING_SIZE];
        if (it->seq == at) /* else overwritten by items a rollback dropped */
            out[n++] = *it;
        else
            (*lost)++;
    }
    pthread_mutex_unlock(&bus->lock);
    *cursor = at;
    return n;
}

bool ev_wait(struct ev_bus *bus, uint64_t cursor, unsigned timeout_ms)
{
    struct timespec until = util_deadline(CLOCK_MONOTONIC, timeout_ms);
    pthread_mutex_lock(&bus->lock);
    uint64_t wakes = bus->wakes;
    while (bus->visible <= cursor && bus->wakes == wakes &&
           pthread_cond_timedwait(&bus->cond, &bus->lock, &until) != ETIMEDOUT)
        ;
    bool ready = bus->visible > cursor;
    pthread_mutex_unlock(&bus->lock);
    return ready;
}

void ev_wake(struct ev_bus *bus)
{
    pthread_mutex_lock(&bus->lock);
    bus->wakes++;
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->lock);
}

/* The types: their plural (the API path's first segment) and Buildbot's eventPathPatterns. */
static const struct {
    const char *plural;
    const char *keys[4];
} types[EV_N_TYPES] = {
    [EV_BUILD] = {"builds",
                  {"builders/:builderid/builds/:number", "builds/:buildid",
                   "workers/:workerid/builds/:buildid", NULL}},
    [EV_STEP] = {"steps", {"builds/:buildid/steps/:stepid", "steps/:stepid", NULL}},
    [EV_LOG] = {"logs", {"logs/:logid", "steps/:stepid/logs/:slug", NULL}},
    [EV_BUILDREQUEST] = {"buildrequests",
                         {"buildsets/:buildsetid/builders/:builderid/buildrequests/:buildrequestid",
                          "buildrequests/:buildrequestid",
                          "builders/:builderid/buildrequests/:buildrequestid", NULL}},
    [EV_BUILDSET] = {"buildsets", {"buildsets/:bsid", NULL}},
    [EV_WORKER] = {"workers", {"workers/:workerid", NULL}},
    [EV_CHANGE] = {"changes", {"changes/:changeid", NULL}},
    [EV_MASTER] = {"masters", {"masters/:masterid", NULL}},
    [EV_SCHEDULER] = {"schedulers", {"schedulers/:schedulerid", NULL}},
    [EV_BUILDER] = {"builders", {"builders/:builderid", NULL}},
};

static const char *const names[EV_N_NAMES] = {
    [EV_NEW] = "new",
    [EV_UPDATE] = "update",
    [EV_STARTED] = "started",
    [EV_UPDATED] = "updated",
    [EV_FINISHED] = "finished",
    [EV_APPEND] = "append",
    [EV_CLAIMED] = "claimed",
    [EV_UNCLAIMED] = "unclaimed",
    [EV_COMPLETE] = "complete",
    [EV_CONNECTED] = "connected",
    [EV_DISCONNECTED] = "disconnected",
    [EV_STATE_UPDATED] = "state_updated",
    [EV_STOPPED] = "stopped",
};

const char *ev_type_name(enum ev_type type)
{
    return (unsigned)type < EV_N_TYPES ? types[type].plural : "?";
}

const char *ev_name_text(enum ev_name name)
{
    return (unsigned)name < EV_N_NAMES ? names[name] : "?";
}

void ev_path(enum ev_type type, long long id, char *out, size_t size)
{
    snprintf(out, size, "%s/%lld", ev_type_name(type), id);
}

const char *const *ev_key_patterns(enum ev_type type)
{
    static const char *const none[] = {NULL};
    return (unsigned)type < EV_N_TYPES ? types[type].keys : none;
}
