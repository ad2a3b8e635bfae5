/*
 * guard.c: who may use the worker port, and how much of it.
 *
 * The port is open to the world, and until a peer has logged in nothing tells
 * a worker from an attacker.  The guard therefore
 *  - bounds the connections that have not logged in: in all (a share of the
 *    port's file descriptors, wk_set_budget) and per address.  When the port
 *    is full, a new connection pushes out the oldest one still waiting to log
 *    in, but never one from an address a worker has logged in from: a flood
 *    from elsewhere cannot keep known workers out, and a slow flood is undone
 *    by the short login timeout;
 *  - rate-limits failed logins per address with a token bucket
 *    (WK_LOGIN_BURST, then one every WK_LOGIN_REFILL_S).  An address out of
 *    tokens is refused without its password being looked at until the bucket
 *    refills.  buildbot-worker backs off to one attempt a minute after a
 *    refused login, so a worker with a wrong password never runs out, and a
 *    correct login from an address that is not guessing is never refused;
 *  - keeps the log bounded: failed logins are logged one by one while their
 *    address is under its rate, up to WK_LOG_LINES per interval; the rest, and
 *    the connections refused or dropped, are summed up every WK_LOG_INTERVAL_S.
 *
 * An address is an IPv4 address or the /64 of an IPv6 one (what one host
 * usually gets).  The table of addresses is bounded (WK_MAX_ADDRS); when it is
 * full, the address seen least recently with no connection waiting is
 * forgotten, strangers before known ones.
 */
#include "workers/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int guard_peer(uv_tcp_t *tcp, struct guard_key *key, char *peer, size_t size)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    memset(key, 0, sizeof *key);
    snprintf(peer, size, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    if (sa.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        memcpy(key->b, v4_mapped, sizeof v4_mapped);
        memcpy(key->b + 12, &in->sin_addr, 4);
        uv_ip4_name(in, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        memcpy(key->b, &in6->sin6_addr, 16);
        if (memcmp(key->b, v4_mapped, sizeof v4_mapped) != 0)
            memset(key->b + 8, 0, 8); /* the host's /64 */
        uv_ip6_name(in6, host, sizeof host);
        port = ntohs(in6->sin6_port);
    } else {
        return -1;
    }
    snprintf(peer, size, "%s:%d", host, port);
    return 0;
}

static void key_text(const struct guard_key *k, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (memcmp(k->b, v4_mapped, sizeof v4_mapped) == 0) {
        inet_ntop(AF_INET, k->b + 12, host, sizeof host);
        snprintf(out, size, "%s", host);
    } else {
        inet_ntop(AF_INET6, k->b, host, sizeof host);
        snprintf(out, size, "%s/64", host);
    }
}

/* The key of an address as key_text writes it; false if `text` is none. */
static bool key_parse(const char *text, struct guard_key *k)
{
    char host[INET6_ADDRSTRLEN];
    size_t n = strlen(text);
    memset(k, 0, sizeof *k);
    if (inet_pton(AF_INET, text, k->b + 12) == 1) {
        memcpy(k->b, v4_mapped, sizeof v4_mapped);
        return true;
    }
    if (n <= 3 || n - 3 >= sizeof host || strcmp(text + n - 3, "/64") != 0)
        return false;
    memcpy(host, text, n - 3);
    host[n - 3] = '\0';
    if (inet_pton(AF_INET6, host, k->b) != 1 || memcmp(k->b, v4_mapped, sizeof v4_mapped) == 0)
        return false;
    memset(k->b + 8, 0, 8);
    return true;
}

/* ------------------------------------------------------------ the table of addresses */

/* True if `a` should be forgotten before `b`. */
static bool forget_first(const struct guard_addr *a, const struct guard_addr *b)
{
    if (a->known != b->known)
        return !a->known;
    return a->used_ms < b->used_ms;
}

/* Forgets a slot's address; its failures not yet summed up still count. */
static void forget(struct guard *g, struct guard_addr *a)
{
    if (a->failed > 0) {
        g->forgotten_failed += a->failed;
        g->forgotten_addrs++;
    }
    memset(a, 0, sizeof *a);
}

/* The address `k`, made if `make` (NULL if not found, or if nothing can be forgotten). */
static struct guard_addr *find(struct wk_registry *r, const struct guard_key *k, bool make)
{
    struct guard *g = &r->guard;
    struct guard_addr *empty = NULL, *old = NULL;
    if (g->addrs == NULL) {
        if (!make)
            return NULL;
        g->addrs = xcalloc(WK_MAX_ADDRS, sizeof *g->addrs);
    }
    for (size_t i = 0; i < WK_MAX_ADDRS; i++) {
        struct guard_addr *a = &g->addrs[i];
        if (!a->used) {
            empty = empty != NULL ? empty : a;
        } else if (memcmp(&a->key, k, sizeof *k) == 0) {
            return a;
        } else if (a->prelogin == 0 && (old == NULL || forget_first(a, old))) {
            old = a;
        }
    }
    struct guard_addr *a = empty != NULL ? empty : old;
    if (!make || a == NULL)
        return NULL;
    if (a == old)
        forget(g, a);
    uint64_t now = uv_now(r->loop);
    *a = (struct guard_addr){
        .key = *k, .used = true, .tokens = WK_LOGIN_BURST, .tokens_ms = now, .used_ms = now};
    key_text(k, a->text, sizeof a->text);
    return a;
}

/* Brings an address's login tokens up to date. */
static void refill(struct wk_registry *r, struct guard_addr *a)
{
    uint64_t now = uv_now(r->loop);
    double tokens = a->tokens + (double)(now - a->tokens_ms) / (WK_LOGIN_REFILL_S * 1000.0);
    a->tokens = tokens < WK_LOGIN_BURST ? tokens : WK_LOGIN_BURST;
    a->tokens_ms = now;
}

/* ------------------------------------------------------------ summaries */

static void summary_cb(uv_timer_t *t);

static void schedule(struct wk_registry *r)
{
    struct guard *g = &r->guard;
    if (g->timer_on || r->closing)
        return;
    g->timer_on = true;
    g->since_ms = uv_now(r->loop);
    uv_timer_start(&g->timer, summary_cb, WK_LOG_INTERVAL_S * 1000, 0);
}

static void summarize_failures(struct guard *g, unsigned secs)
{
    unsigned named = 0;
    uint64_t other = g->forgotten_failed;
    size_t others = g->forgotten_addrs;
    for (size_t i = 0; g->addrs != NULL && i < WK_MAX_ADDRS; i++) {
        struct guard_addr *a = &g->addrs[i];
        if (!a->used || a->failed == 0)
            continue;
        if (named++ < WK_LOG_ADDRS) {
            log_warn("%u failed logins from %s in the last %u s", a->failed, a->text, secs);
        } else {
            other += a->failed;
            others++;
        }
        a->failed = 0;
    }
    if (other > 0)
        log_warn("%llu failed logins from %zu other addresses in the last %u s",
                 (unsigned long long)other, others, secs);
    g->forgotten_failed = 0;
    g->forgotten_addrs = 0;
}

static void summarize_events(struct guard *g, unsigned secs)
{
    static const char *const what[GUARD_N_EVENTS] = {
        [GUARD_REFUSED_ADDR] = "refused (too many waiting to log in from one address)",
        [GUARD_REFUSED_FULL] = "refused (the port was full)",
        [GUARD_EVICTED] = "dropped before login to make room",
        [GUARD_TIMED_OUT] = "closed by the login timeout",
        [GUARD_PROTOCOL_ERROR] = "closed for a protocol error before login",
        [GUARD_UNREAD] = "closed with answers left unread before login",
        [GUARD_ACCEPT_ERROR] = "not accepted",
    };
    struct buf b;
    buf_init(&b, 1024);
    for (int i = 0; i < GUARD_N_EVENTS; i++) {
        if (g->events[i] == 0)
            continue;
        buf_printf(&b, "%s%u %s", b.len > 0 ? "; " : "", g->events[i], what[i]);
        if (i == GUARD_ACCEPT_ERROR && g->accept_error != NULL)
            buf_printf(&b, " (%s)", g->accept_error);
    }
    if (b.len > 0)
        log_warn("worker port, connections in the last %u s: %s", secs, b.data);
    buf_free(&b);
    memset(g->events, 0, sizeof g->events);
    g->accept_error = NULL;
}

static void summarize(struct wk_registry *r)
{
    struct guard *g = &r->guard;
    uint64_t elapsed = uv_now(r->loop) - g->since_ms;
    unsigned secs = (unsigned)((elapsed + 999) / 1000);
    secs = secs > 0 ? secs : 1;
    summarize_failures(g, secs);
    summarize_events(g, secs);
}

static void summary_cb(uv_timer_t *t)
{
    struct wk_registry *r = t->data;
    r->guard.timer_on = false;
    summarize(r);
}

void guard_count(struct wk_registry *r, enum guard_event ev, const char *detail)
{
    r->guard.events[ev]++;
    if (detail != NULL)
        r->guard.accept_error = detail;
    schedule(r);
}

/* ------------------------------------------------------------ admission */

static void queue_remove(struct guard *g, struct session *s)
{
    if (s->pre_prev != NULL)
        s->pre_prev->pre_next = s->pre_next;
    else
        g->oldest = s->pre_next;
    if (s->pre_next != NULL)
        s->pre_next->pre_prev = s->pre_prev;
    else
        g->newest = s->pre_prev;
    s->pre_prev = s->pre_next = NULL;
}

static void queue_append(struct guard *g, struct session *s)
{
    s->pre_prev = g->newest;
    s->pre_next = NULL;
    if (g->newest != NULL)
        g->newest->pre_next = s;
    else
        g->oldest = s;
    g->newest = s;
}

/* The oldest connection waiting to log in from an address no worker logged in from. */
static struct session *oldest_stranger(struct guard *g)
{
    for (struct session *s = g->oldest; s != NULL; s = s->pre_next) {
        if (!s->addr_known)
            return s;
    }
    return NULL;
}

bool guard_admit(struct wk_registry *r, struct session *s)
{
    struct guard *g = &r->guard;
    struct guard_addr *a = find(r, &s->addr, true);
    if (a == NULL) {
        guard_count(r, GUARD_REFUSED_FULL, NULL);
        return false;
    }
    a->used_ms = uv_now(r->loop);
    if (a->prelogin >= WK_MAX_PRELOGIN_PER_ADDR) {
        guard_count(r, GUARD_REFUSED_ADDR, NULL);
        return false;
    }
    if (g->prelogin >= g->max_prelogin || g->open >= g->max_connections) {
        struct session *victim = oldest_stranger(g);
        if (victim == NULL) {
            guard_count(r, GUARD_REFUSED_FULL, NULL);
            return false;
        }
        guard_count(r, GUARD_EVICTED, NULL);
        session_close(victim, "dropped to make room: the port is full of connections that have "
                              "not logged in");
    }
    s->addr_known = a->known;
    s->prelogin = true;
    a->prelogin++;
    g->prelogin++;
    g->open++;
    queue_append(g, s);
    return true;
}

void guard_release(struct wk_registry *r, struct session *s)
{
    if (!s->prelogin)
        return;
    struct guard *g = &r->guard;
    struct guard_addr *a = find(r, &s->addr, false);
    if (a != NULL && a->prelogin > 0)
        a->prelogin--;
    g->prelogin--;
    queue_remove(g, s);
    s->prelogin = false;
}

void guard_closed(struct wk_registry *r, struct session *s)
{
    guard_release(r, s);
    r->guard.open--;
    if (s->change_client)
        r->guard.change_clients--;
    s->change_client = false;
}

/* ------------------------------------------------------------ logins */

bool guard_may_try(struct wk_registry *r, struct session *s)
{
    struct guard_addr *a = find(r, &s->addr, true);
    if (a == NULL)
        return true; /* every slot has a connection waiting: cannot happen (WK_MAX_PRELOGIN) */
    refill(r, a);
    if (a->tokens >= 1)
        return true;
    a->failed++;
    schedule(r);
    return false;
}

enum guard_verdict guard_failed(struct wk_registry *r, struct session *s)
{
    struct guard *g = &r->guard;
    struct guard_addr *a = find(r, &s->addr, true);
    uint64_t now = uv_now(r->loop);
    if (a == NULL)
        return GUARD_QUIET;
    refill(r, a);
    a->tokens = a->tokens >= 1 ? a->tokens - 1 : 0;
    if (now - g->lines_ms >= WK_LOG_INTERVAL_S * 1000u) {
        g->lines_ms = now;
        g->lines = 0;
    }
    if (g->lines < WK_LOG_LINES) {
        g->lines++;
        return a->tokens < 1 ? GUARD_LOG_LAST : GUARD_LOG;
    }
    a->failed++;
    schedule(r);
    return GUARD_QUIET;
}

const char *guard_addr_text(struct wk_registry *r, struct session *s)
{
    struct guard_addr *a = find(r, &s->addr, false);
    return a != NULL ? a->text : s->peer;
}

void wk_know_addresses(struct wk_registry *r, const char *const *addrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct guard_key k;
        struct guard_addr *a = key_parse(addrs[i], &k) ? find(r, &k, true) : NULL;
        if (a != NULL)
            a->known = true;
    }
}

const char *wk_address(struct wk_registry *r, const char *name)
{
    struct session *s = registry_find_attached(r, name, NULL);
    struct guard_addr *a = s != NULL ? find(r, &s->addr, false) : NULL;
    return a != NULL ? a->text : NULL;
}

void guard_logged_in(struct wk_registry *r, struct session *s)
{
    struct guard_addr *a = find(r, &s->addr, true);
    if (a != NULL) {
        a->known = true;
        a->used_ms = uv_now(r->loop);
    }
}

bool guard_change_client(struct wk_registry *r, struct session *s)
{
    if (r->guard.change_clients >= WK_MAX_CHANGE_CLIENTS)
        return false;
    r->guard.change_clients++;
    s->change_client = true;
    return true;
}

/* ------------------------------------------------------------ life cycle */

void wk_set_budget(struct wk_registry *r, size_t max_connections)
{
    struct guard *g = &r->guard;
    g->max_connections = max_connections > 0 ? max_connections : WK_MAX_CONNECTIONS;
    size_t half = g->max_connections / 2 > 0 ? g->max_connections / 2 : 1;
    g->max_prelogin = half < WK_MAX_PRELOGIN ? half : WK_MAX_PRELOGIN;
}

void guard_init(struct wk_registry *r)
{
    uv_timer_init(r->loop, &r->guard.timer);
    uv_unref((uv_handle_t *)&r->guard.timer); /* a summary due never keeps the master running */
    r->guard.timer.data = r;
    r->timers_open = 1;
    wk_set_budget(r, 0);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct wk_registry *r = h->data;
    r->timers_open--;
    registry_maybe_free(r);
}

void guard_close(struct wk_registry *r)
{
    struct guard *g = &r->guard;
    if (g->timer_on)
        summarize(r);
    g->timer_on = false;
    free(g->addrs);
    g->addrs = NULL;
    uv_close((uv_handle_t *)&g->timer, timer_closed_cb);
}
