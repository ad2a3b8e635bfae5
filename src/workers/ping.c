/*
 * bbmaster's own liveness check of attached workers (Buildbot has none), off unless a
 * worker's configuration gives ping_interval.  A worker that stops answering while its
 * TCP connection stays up (a stopped process, a hung machine whose kernel still
 * acknowledges) is otherwise never noticed: Buildbot's keepalives expect no answer, and
 * TCP keepalive only notices a peer whose kernel is gone.  So every ping_interval
 * seconds the master calls the worker's print, as Buildbot's own ping of a worker does
 * (remote_print, which every buildbot-worker has), and if no answer comes within
 * ping_timeout seconds the connection is dropped as lost: the worker's running builds
 * end RETRY and the worker is detached, as when its connection closes.  One ping is out
 * at a time; the next is sent an interval after the answer.
 */
#include "workers/internal.h"

#include <stdio.h>
#include <stdlib.h>

static void ping_cb(uv_timer_t *t);

static int interval_of(const struct session *s)
{
    const struct cfg_worker *w = cfg_find_worker(s->reg->cfg, s->name);
    return w != NULL ? w->ping_interval : 0;
}

/* The next ping after the worker's current interval, or none when the check is off. */
static void schedule(struct session *s)
{
    s->ping_interval = interval_of(s);
    if (s->ping_interval > 0)
        uv_timer_start(&s->ping_timer, ping_cb, (uint64_t)s->ping_interval * 1000, 0);
    else
        uv_timer_stop(&s->ping_timer);
}

/* Any answer, a failure too, says the worker is there. */
static void answer_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct session *s = arg;
    (void)result;
    (void)failure;
    if (s->state != SESSION_ATTACHED)
        return;
    s->ping_waiting = false;
    schedule(s);
}

static void timeout_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->state != SESSION_ATTACHED || !s->ping_waiting)
        return;
    if (interval_of(s) == 0) { /* a reconfig turned the check off meanwhile */
        s->ping_waiting = false;
        s->ping_interval = 0;
        return;
    }
    if (!s->ping_last_chance) {
        /* libuv runs timers before it reads: after a stall of the loop the answer may be
           in the socket already; one more turn reads it */
        s->ping_last_chance = true;
        uv_timer_start(&s->ping_timer, timeout_cb, 1, 0);
        return;
    }
    char why[128];
    snprintf(why, sizeof why, "no answer to a ping within %d s", s->ping_timeout);
    log_warn("worker '%s' (%s): %s: dropping its connection", UTIL_ESC(s->name), s->peer, why);
    session_close(s, why);
}

static void ping_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    const struct cfg_worker *w = cfg_find_worker(s->reg->cfg, s->name);
    if (s->state != SESSION_ATTACHED || w == NULL || w->ping_interval == 0)
        return;
    struct pb_value *kw = pb_dict_set(pb_dict(), "message", pb_text("ping"));
    char *cause = NULL;
    if (pb_broker_call(s->broker, s->mind, "print", NULL, kw, answer_cb, s, &cause) != 0) {
        char *why = xasprintf("calling print: %s", cause);
        session_close(s, why);
        free(why);
        free(cause);
        return;
    }
    s->ping_waiting = true;
    s->ping_last_chance = false;
    s->ping_timeout = w->ping_timeout;
    uv_timer_start(&s->ping_timer, timeout_cb, (uint64_t)s->ping_timeout * 1000, 0);
}

void session_ping_start(struct session *s)
{
    s->ping_waiting = false;
    schedule(s);
}

void session_ping_reconfig(struct session *s)
{
    /* a ping out finishes on its own terms; an unchanged interval keeps its countdown */
    if (s->state == SESSION_ATTACHED && !s->ping_waiting && interval_of(s) != s->ping_interval)
        schedule(s);
}
