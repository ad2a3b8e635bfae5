/*
 * events: the engine's event bus.  After each database write the engine (and
 * master.c for workers, changes, masters and builders) publishes what changed:
 * a resource type, the id of one entity and what happened to it ("builds",
 * 123, "finished"), Buildbot's data layer events.  The bus holds them in a
 * ring of fixed-size items with sequence numbers, under a mutex: publishing
 * never allocates, never waits for a reader, and a full ring drops its oldest
 * item.  Readers (the web's dispatcher, later the reporters) each keep a
 * cursor, wait on the bus and are told how many items they lost.
 *
 * The message a subscriber gets is not built here: a reader reads the entity
 * at its API path (ev_path) once, and Buildbot's routing keys come from the
 * entity's fields (ev_key_patterns), as Buildbot's produceEvent makes them.
 *
 * Events published while the engine's transaction is open are held
 * (ev_hold) and become visible when it commits, or are dropped when it rolls
 * back (ev_release): a reader never sees an event before its write.
 *
 * Uses util only; the engine, master.c and www use it.  See
 * docs/internals/events.md.
 */
#ifndef BBM_EVENTS_H
#define BBM_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Items the ring holds (a few minutes of a busy master's events). */
#define EV_RING_SIZE 8192

enum ev_type {
    EV_BUILD,
    EV_STEP,
    EV_LOG,
    EV_BUILDREQUEST,
    EV_BUILDSET,
    EV_WORKER,
    EV_CHANGE,
    EV_MASTER,
    EV_SCHEDULER,
    EV_BUILDER,
    EV_N_TYPES,
};

/* Buildbot's event names (the last segment of a routing key). */
enum ev_name {
    EV_NEW,
    EV_UPDATE,   /* builds, builders */
    EV_STARTED,  /* steps, masters */
    EV_UPDATED,  /* steps, schedulers */
    EV_FINISHED, /* builds, steps, logs */
    EV_APPEND,   /* logs: lines were added (the entity has the new num_lines) */
    EV_CLAIMED,  /* build requests */
    EV_UNCLAIMED,
    EV_COMPLETE, /* build requests, buildsets */
    EV_CONNECTED,
    EV_DISCONNECTED,
    EV_STATE_UPDATED, /* workers: paused, graceful */
    EV_STOPPED,       /* masters */
    EV_N_NAMES,
};

struct ev_item {
    uint64_t seq;
    long long id;
    uint8_t type; /* enum ev_type */
    uint8_t name; /* enum ev_name */
};

struct ev_bus;

/* A new bus; freed with ev_bus_free (after every reader and publisher is done). */
struct ev_bus *ev_bus_new(void);
void ev_bus_free(struct ev_bus *bus);

/* Publishes an event (bus NULL: nothing).  Never blocks on a reader. */
void ev_publish(struct ev_bus *bus, enum ev_type type, long long id, enum ev_name name);
/*
 * The publisher's transaction opened (ev_hold): what it publishes waits.  It
 * closed (ev_release): `commit` makes the held events visible, else they are
 * dropped.  Holds do not nest; both are for the publishing thread only.
 */
void ev_hold(struct ev_bus *bus);
void ev_release(struct ev_bus *bus, bool commit);

/* The sequence number the next visible event will have: a new reader's cursor. */
uint64_t ev_head(struct ev_bus *bus);
/*
 * Copies up to `max` visible events from *cursor on into `out` and moves the
 * cursor past them.  Events the ring dropped before they were read are
 * skipped and counted in *lost.  Returns how many were copied.
 */
size_t ev_read(struct ev_bus *bus, uint64_t *cursor, struct ev_item *out, size_t max,
               uint64_t *lost);
/*
 * Waits until an event at or past `cursor` is visible, ev_wake is called, or
 * `timeout_ms` passes.  True when an event is there.
 */
bool ev_wait(struct ev_bus *bus, uint64_t cursor, unsigned timeout_ms);
/* Wakes every waiting reader (one that is stopping). */
void ev_wake(struct ev_bus *bus);

/* Names: "builds", "new"... */
const char *ev_type_name(enum ev_type type);
const char *ev_name_text(enum ev_name name);
/* The entity's path under /api/v2 ("builds/123") into out (at least 64 bytes). */
void ev_path(enum ev_type type, long long id, char *out, size_t size);
/*
 * Buildbot's eventPathPatterns of the type, NULL-terminated (at most 3):
 * "builders/:builderid/builds/:number", where `:field` is the entity's field.
 */
const char *const *ev_key_patterns(enum ev_type type);

#endif
