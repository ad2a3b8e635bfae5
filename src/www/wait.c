/*
 * Waiting for the engine without holding a thread.  Once a POST's action is
 * in the control queue, its connection is suspended (MHD_suspend_connection:
 * the request thread goes on serving others) and resumed by whoever settles
 * the wait first:
 *   - the engine's answer (ctl_reply, on the engine thread);
 *   - the watchdog, a thread of its own, when the wait passes its bound
 *     (WWW_ACTION_WAIT_MS): the client is answered 503 and the action is
 *     cancelled if the engine has not taken it yet, so an action answered 503
 *     never runs later;
 *   - the watchdog again when the client closes its connection meanwhile
 *     (poll's POLLRDHUP on the suspended socket): the action is cancelled the
 *     same way;
 *   - www_stop: 503, cancelled.
 * A resumed connection comes back to the request handler, which answers from
 * the outcome (rpc.c).
 *
 * Memory: a wait is the action's client (ctl_action_set_client), freed when
 * the action is, so the engine's late answer always finds it.  Locks, in
 * this order only: the watchdog's (its list), a wait's, an action's.  The
 * engine's answer takes a wait's lock alone; the watchdog holds a reference
 * on the actions whose sockets it polls.
 */
#include "www/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct www_wait {
    pthread_mutex_t lock;
    struct ctl_action *act;      /* not a reference: the wait goes with the action */
    struct MHD_Connection *conn; /* NULL once the request is over */
    int fd;                      /* the connection's socket, polled while suspended */
    uint64_t deadline;           /* util_mono_ms() */
    bool suspended;
    enum www_outcome outcome;
    char *refused;         /* why the queue refused the action */
    struct www_wait *next; /* in the watchdog's list while the request lasts */
};

struct www_watch {
    pthread_mutex_t lock;
    pthread_cond_t drained; /* signalled when the list empties while stopping */
    pthread_t thread;
    bool started, stopping;
    int wake[2]; /* a pipe: written to make the thread look at the list again */
    int wait_ms;
    struct www_wait *list;
    size_t n;
};

/* Resumes a suspended connection; under the wait's lock. */
static void resume(struct www_wait *wt)
{
    if (wt->suspended && wt->conn != NULL)
        MHD_resume_connection(wt->conn);
    wt->suspended = false;
}

static void answered_cb(void *arg)
{
    struct www_wait *wt = arg;
    pthread_mutex_lock(&wt->lock);
    if (wt->outcome == WWW_WAITING) {
        wt->outcome = WWW_ANSWERED;
        resume(wt);
    }
    pthread_mutex_unlock(&wt->lock);
}

static void release_cb(void *arg)
{
    struct www_wait *wt = arg;
    pthread_mutex_destroy(&wt->lock);
    free(wt->refused);
    free(wt);
}

static const struct ctl_client wait_client = {answered_cb, release_cb};

/* Settles a wait the engine has not answered: `why`, the action cancelled if still queued.
   Under the watchdog's lock. */
static void settle(struct www_wait *wt, enum www_outcome why)
{
    pthread_mutex_lock(&wt->lock);
    bool was_waiting = wt->outcome == WWW_WAITING;
    enum ctl_state was = was_waiting ? ctl_action_cancel(wt->act) : CTL_ANSWERED;
    if (was_waiting) {
        wt->outcome = was == CTL_ANSWERED ? WWW_ANSWERED : why;
        resume(wt);
    }
    pthread_mutex_unlock(&wt->lock);
    if (!was_waiting || was == CTL_ANSWERED || why == WWW_SHUTDOWN)
        return;
    log_warn("www: %s action %s; %s", ctl_kind_method(ctl_action_kind(wt->act)),
             why == WWW_GONE ? "abandoned: its client closed the connection"
                             : "not answered in time: its client gets 503",
             was == CTL_RUNNING ? "it was running already and goes on"
                                : "it is cancelled and will not run");
}

static void wake(struct www_watch *wd)
{
    ssize_t n = write(wd->wake[1], "x", 1);
    (void)n; /* a full pipe wakes the thread as well */
}

/* What to poll: the wake pipe and every suspended socket (a reference held on each action).
   Returns how many; *timeout gets the time to the nearest deadline.  Under the lock. */
static size_t poll_set(struct www_watch *wd, struct pollfd **fds, struct www_wait ***who,
                       size_t *cap, int *timeout)
{
    if (*cap < wd->n + 1) {
        *cap = wd->n + 1;
        *fds = xrealloc(*fds, *cap * sizeof **fds);
        *who = xrealloc(*who, *cap * sizeof **who);
    }
    uint64_t now = util_mono_ms();
    size_t n = 0;
    (*fds)[n++] = (struct pollfd){.fd = wd->wake[0], .events = POLLIN};
    *timeout = -1;
    for (struct www_wait *wt = wd->list; wt != NULL; wt = wt->next) {
        pthread_mutex_lock(&wt->lock);
        if (wt->outcome == WWW_WAITING) {
            int left = wt->deadline > now ? (int)(wt->deadline - now) : 0;
            *timeout = *timeout < 0 || left < *timeout ? left : *timeout;
        }
        if (wt->outcome == WWW_WAITING && wt->suspended && wt->fd >= 0) {
            ctl_action_ref(wt->act);
            (*who)[n] = wt;
            (*fds)[n++] = (struct pollfd){.fd = wt->fd, .events = POLLRDHUP};
        }
        pthread_mutex_unlock(&wt->lock);
    }
    return n;
}

static void expire(struct www_watch *wd)
{
    uint64_t now = util_mono_ms();
    for (struct www_wait *wt = wd->list; wt != NULL; wt = wt->next)
        if (wt->deadline <= now)
            settle(wt, WWW_TIMED_OUT);
}

static void *watch_main(void *arg)
{
    struct www_watch *wd = arg;
    struct pollfd *fds = NULL;
    struct www_wait **who = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&wd->lock);
    while (!wd->stopping) {
        int timeout;
        size_t n = poll_set(wd, &fds, &who, &cap, &timeout);
        pthread_mutex_unlock(&wd->lock);
        if (poll(fds, n, timeout) > 0 && (fds[0].revents & POLLIN)) {
            char drain[64];
            while (read(wd->wake[0], drain, sizeof drain) > 0)
                ;
        }
        pthread_mutex_lock(&wd->lock);
        for (size_t i = 1; i < n; i++)
            if (fds[i].revents != 0) /* the peer hung up, reset or errored */
                settle(who[i], WWW_GONE);
        expire(wd);
        pthread_mutex_unlock(&wd->lock);
        for (size_t i = 1; i < n; i++)
            ctl_action_unref(who[i]->act); /* may free who[i] */
        pthread_mutex_lock(&wd->lock);
    }
    pthread_mutex_unlock(&wd->lock);
    free(fds);
    free(who);
    return NULL;
}

struct www_watch *www_watch_start(int wait_ms, char **cause)
{
    struct www_watch *wd = xcalloc(1, sizeof *wd);
    pthread_mutex_init(&wd->lock, NULL);
    pthread_cond_init(&wd->drained, NULL);
    wd->wait_ms = wait_ms;
    wd->wake[0] = wd->wake[1] = -1;
    if (pipe2(wd->wake, O_NONBLOCK | O_CLOEXEC) != 0 ||
        pthread_create(&wd->thread, NULL, watch_main, wd) != 0) {
        util_cause(cause, "www: cannot start the watchdog: %s", strerror(errno));
        www_watch_free(wd);
        return NULL;
    }
    wd->started = true;
    return wd;
}

void www_watch_stop(struct www_watch *wd, int drain_ms)
{
    if (wd == NULL)
        return;
    pthread_mutex_lock(&wd->lock);
    wd->stopping = true;
    for (struct www_wait *wt = wd->list; wt != NULL; wt = wt->next)
        settle(wt, WWW_SHUTDOWN);
    struct timespec until = util_deadline(CLOCK_REALTIME, drain_ms);
    /* the resumed requests get their 503 before the daemon closes their connections */
    while (wd->n > 0 && pthread_cond_timedwait(&wd->drained, &wd->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&wd->lock);
    if (wd->started) {
        wake(wd);
        pthread_join(wd->thread, NULL);
        wd->started = false;
    }
}

void www_watch_free(struct www_watch *wd)
{
    if (wd == NULL)
        return;
    www_watch_stop(wd, 0);
    for (int i = 0; i < 2; i++)
        if (wd->wake[i] >= 0)
            close(wd->wake[i]);
    pthread_cond_destroy(&wd->drained);
    pthread_mutex_destroy(&wd->lock);
    free(wd);
}

/* One line per action handed to the engine: what, and from where. */
static void log_queued(struct MHD_Connection *c, struct ctl_action *act)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    const struct ctl_target *t = ctl_action_target(act);
    char what[128] = "";
    if (t->name != NULL)
        snprintf(what, sizeof what, " on '%.100s'", t->name);
    else if (t->id >= 0)
        snprintf(what, sizeof what, " on %lld", t->id);
    log_info("www: %s action%s queued for the engine (from %s)",
             ctl_kind_method(ctl_action_kind(act)), what, addr);
}

bool www_wait_post(struct www *w, struct MHD_Connection *c, struct ctl_action *act,
                   struct www_wait **out)
{
    struct www_watch *wd = w->watch;
    struct www_wait *wt = xcalloc(1, sizeof *wt);
    pthread_mutex_init(&wt->lock, NULL);
    wt->act = act;
    wt->conn = c;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    wt->fd = ci != NULL ? ci->connect_fd : -1;
    wt->deadline = util_mono_ms() + (uint64_t)wd->wait_ms;
    ctl_action_set_client(act, &wait_client, wt);
    *out = wt;
    pthread_mutex_lock(&wd->lock);
    bool stopping = wd->stopping;
    if (!stopping) {
        wt->next = wd->list;
        wd->list = wt;
        wd->n++;
    }
    pthread_mutex_unlock(&wd->lock);
    char *cause = NULL;
    int pushed = stopping ? -1 : ctl_queue_push(w->control, act, &cause);
    pthread_mutex_lock(&wt->lock);
    if (stopping) {
        wt->outcome = WWW_SHUTDOWN;
    } else if (pushed < 0) {
        wt->outcome = WWW_REFUSED;
        wt->refused = cause;
    } else if (wt->outcome == WWW_WAITING) {
        MHD_suspend_connection(c);
        wt->suspended = true;
    }
    bool suspended = wt->suspended;
    pthread_mutex_unlock(&wt->lock);
    if (pushed == 0)
        log_queued(c, act);
    if (suspended)
        wake(wd);
    return suspended;
}

enum www_outcome www_wait_outcome(struct www_wait *wt, const char **refused)
{
    pthread_mutex_lock(&wt->lock);
    enum www_outcome o = wt->outcome;
    if (refused != NULL)
        *refused = wt->refused;
    pthread_mutex_unlock(&wt->lock);
    return o;
}

void www_wait_done(struct www *w, struct www_wait *wt)
{
    struct www_watch *wd = w->watch;
    pthread_mutex_lock(&wd->lock);
    for (struct www_wait **p = &wd->list; *p != NULL; p = &(*p)->next)
        if (*p == wt) {
            *p = wt->next;
            wd->n--;
            break;
        }
    if (wd->stopping && wd->n == 0)
        pthread_cond_signal(&wd->drained);
    pthread_mutex_lock(&wt->lock);
    wt->conn = NULL;
    wt->suspended = false;
    pthread_mutex_unlock(&wt->lock);
    settle(wt, WWW_SHUTDOWN); /* a request dropped while it waited: never run it */
    pthread_mutex_unlock(&wd->lock);
}
