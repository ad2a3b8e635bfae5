/*
 * pb_internal.h: what broker.c and login.c share, and one hook for tests.
 *
 * The broker serves a few objects itself rather than handing their calls to
 * the application: the root (login.c answers `login`) and each login
 * challenger (login.c answers `respond`).  Such an object is exported with a
 * handler; the broker frees it with the handler when the peer drops it, when
 * it is unexported, or when the connection ends.  Nothing outside src/pb
 * includes this header.
 */
#ifndef BBM_PB_INTERNAL_H
#define BBM_PB_INTERNAL_H

#include "pb/pb.h"

#define PB_CHALLENGE_LEN 16

/* An object the broker serves itself. */
struct pb_handler {
    /* A call on the object; must answer or fail it (now or later). */
    void (*call)(struct pb_call *call);
    /* Frees the object's state. */
    void (*free)(void *obj);
};

/* broker.c, for login.c */

/* Like pb_broker_export, for an object served by `h`; 0 if the table is full. */
uint32_t pb_broker_export_handler(struct pb_broker *b, const struct pb_handler *h, void *obj);
/* The callbacks and context the broker was created with. */
const struct pb_broker_ops *pb_broker_ops(const struct pb_broker *b, void **ctx);
/* Sends one decref for every remote reference (PB_REMOTE) inside `v`. */
void pb_broker_drop_remotes(struct pb_broker *b, const struct pb_value *v);
/* The challenge set by pb_broker_set_challenge, or NULL. */
const unsigned char *pb_broker_fixed_challenge(const struct pb_broker *b);

/* login.c, for broker.c */

/* A call on the server's root object (`login`; anything else is NoSuchMethod). */
void pb_login_root_call(struct pb_call *call);

/*
 * For tests: makes every later login on `b` use this challenge instead of
 * random bytes, so captured sessions can be replayed.
 */
void pb_broker_set_challenge(struct pb_broker *b, const unsigned char challenge[PB_CHALLENGE_LEN]);

#endif
