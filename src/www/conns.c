/*
 * The connections of the web port, and the watchdog that keeps slow clients
 * from holding them.  libmicrohttpd's own timeout closes a connection that
 * sends and reads nothing for a while, but a client trickling one header
 * byte every few seconds would keep its connection forever, and a few
 * hundred such clients would lock everyone out.  So each connection that is
 * still sending a request has a deadline: the whole head within head_ms of
 * connecting (on a kept-alive connection, within idle_ms of its last
 * answer), the body within body_ms of the head.  A thread looks at the
 * deadlines every second and shuts down the socket of a connection past its
 * own; libmicrohttpd then sees the connection end and closes it on its own
 * thread (the socket is closed only after our NOTIFY_CLOSED callback, which
 * takes the same lock, so it is never another connection's).  While an
 * answer is written there is no deadline: a client that stops reading is
 * closed by libmicrohttpd's idle timeout.  A connection shut down and still
 * open a second later is shut down again (see sweep).  And when the
 * connections come near the limit, those that have been waiting more than a
 * second for a request head go first, so that a new client always gets in.
 */
#include "www/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define TICK_MS 1000
#define EVICT_AFTER_MS 1000

struct www_conn {
    struct www_conns *all;
    int fd;
    enum www_conn_state state;
    uint64_t since_ms, deadline_ms; /* deadline 0: none */
    struct www_conn *prev, *next;
};

struct www_conns {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stop;
    struct www_conn *list;
    size_t n;
    struct www_limits lim;
};

static void set_state(struct www_conn *k, enum www_conn_state state, uint64_t now)
{
    const struct www_limits *lim = &k->all->lim;
    k->state = state;
    k->since_ms = now;
    k->deadline_ms = state == WWW_CONN_HEAD   ? now + lim->head_ms
                     : state == WWW_CONN_IDLE ? now + lim->idle_ms
                     : state == WWW_CONN_BODY ? now + lim->body_ms
                                              : 0;
}

void www_conns_notify_cb(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    struct www_conns *all = cls;
    struct www_conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k = xcalloc(1, sizeof *k);
        k->all = all;
        k->fd = ci != NULL ? ci->connect_fd : -1;
        pthread_mutex_lock(&all->lock);
        set_state(k, WWW_CONN_HEAD, util_mono_ms());
        k->next = all->list;
        if (all->list != NULL)
            all->list->prev = k;
        all->list = k;
        all->n++;
        pthread_mutex_unlock(&all->lock);
        *socket_context = k;
        return;
    }
    if (k == NULL)
        return;
    pthread_mutex_lock(&all->lock);
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        all->list = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    all->n--;
    pthread_mutex_unlock(&all->lock);
    free(k);
    *socket_context = NULL;
}

void www_conn_state(struct MHD_Connection *c, enum www_conn_state state)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct www_conn *k = ci != NULL ? ci->socket_context : NULL;
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->all->lock);
    if (k->state != WWW_CONN_CLOSING) /* shut down: it only has to close */
        set_state(k, state, util_mono_ms());
    pthread_mutex_unlock(&k->all->lock);
}

static bool waiting(const struct www_conn *k)
{
    return k->state == WWW_CONN_HEAD || k->state == WWW_CONN_IDLE;
}

/*
 * Under the lock: shuts down what is past its deadline, or waiting when the port is full.
 * A connection shut down before and still open is shut down again: under load,
 * libmicrohttpd's edge-triggered epoll has been seen to miss the end of every connection of
 * one of its threads, which then stayed open until its idle timeout; each shutdown wakes it
 * again.
 */
static size_t sweep(struct www_conns *all, uint64_t now)
{
    bool crowded = all->n >= all->lim.max - all->lim.max / 8;
    size_t closed = 0;
    for (struct www_conn *k = all->list; k != NULL; k = k->next) {
        bool late = k->deadline_ms != 0 && now >= k->deadline_ms;
        bool evict = crowded && waiting(k) && now - k->since_ms >= EVICT_AFTER_MS;
        if (k->fd < 0 || !(late || evict || k->state == WWW_CONN_CLOSING))
            continue;
        shutdown(k->fd, SHUT_RDWR);
        if (k->state == WWW_CONN_CLOSING)
            continue;
        k->deadline_ms = 0;
        k->state = WWW_CONN_CLOSING;
        closed++;
    }
    return closed;
}

static void *watchdog(void *arg)
{
    struct www_conns *all = arg;
    pthread_mutex_lock(&all->lock);
    while (!all->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += TICK_MS / 1000;
        while (!all->stop && pthread_cond_timedwait(&all->wake, &all->lock, &until) != ETIMEDOUT)
            ;
        size_t n = all->stop ? 0 : sweep(all, util_mono_ms());
        if (n > 0)
            log_info("www: closed %zu connection%s too slow to send a request (%zu open)", n,
                     n == 1 ? "" : "s", all->n);
    }
    pthread_mutex_unlock(&all->lock);
    return NULL;
}

struct www_conns *www_conns_start(const struct www_limits *lim, char **cause)
{
    struct www_conns *all = xcalloc(1, sizeof *all);
    all->lim = *lim;
    pthread_mutex_init(&all->lock, NULL);
    util_cond_init_monotonic(&all->wake);
    int err = pthread_create(&all->thread, NULL, watchdog, all);
    if (err != 0) {
        util_cause(cause, "www: cannot start the connection watchdog: %s", strerror(err));
        www_conns_free(all);
        return NULL;
    }
    all->running = true;
    return all;
}

void www_conns_stop(struct www_conns *all)
{
    if (all == NULL || !all->running)
        return;
    pthread_mutex_lock(&all->lock);
    all->stop = true;
    pthread_cond_signal(&all->wake);
    pthread_mutex_unlock(&all->lock);
    pthread_join(all->thread, NULL);
    all->running = false;
}

void www_conns_free(struct www_conns *all)
{
    if (all == NULL)
        return;
    www_conns_stop(all);
    pthread_cond_destroy(&all->wake);
    pthread_mutex_destroy(&all->lock);
    free(all);
}
