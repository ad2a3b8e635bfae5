/*
 * Buildbot's IRC reporter: one bot per bbm.reporters.irc, a client of one IRC
 * server on the outbox's libuv loop.  It registers (with SASL PLAIN done as
 * IRCv3 says: CAP LS, CAP REQ :sasl, AUTHENTICATE, 903 then CAP END; on a NAK,
 * 904 or a server without sasl it ends the negotiation and identifies with
 * NickServ instead), joins its channels, answers PING, pings a silent server,
 * says what the engine hands it (rep_irc_notify) to its chats whose events want it, and
 * answers the commands addressed to it (ircbot.c decides what; the engine's
 * handler answers those that read or change its state), each nick within a
 * command rate, each answer within REP_IRC_REPLY_LINES_MAX lines.  Each chat (a
 * channel, a private one) has its own notify_events, as irc.py's IRCChannel:
 * the configured ones, what `notify on|off` changed, and what the database
 * kept of that (rep_irc_set_state); and it can be muted: it is told nothing
 * until unmuted.  In a channel only its operators (asked of the server with
 * NAMES) or the nicks authz lists under the command may mute it or change its
 * events.
 *
 * Bounds: a line read is at most 512 bytes (a longer one is skipped and
 * logged); lines to send wait in a queue of REP_IRC_QUEUE_MAX, sent within a
 * line rate (a burst of REP_IRC_BURST, then one per REP_IRC_LINE_MS) so that the
 * server does not drop the bot for flooding; what overflows the queue is counted
 * and summarised in one line.  A lost connection is made again after an
 * exponential backoff with jitter.  The lines live in memory only, as in
 * Buildbot.
 *
 * With useSSL the connection is TLS (src/tls: OpenSSL over memory buffers, so that libuv
 * keeps the socket): the server's certificate is verified against the system's
 * authorities and the host name (Buildbot's Twisted ClientContextFactory
 * verifies nothing).
 *
 * Lifetime: a bot's handles (its timer, its TCP connection) and its name lookup
 * are counted in `pending`; a bot that is gone (reconfig, free) is freed when
 * the last of them has called back.
 */
#include "reporters/reporters.h"
#include "tls/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "util/util.h"

/* Chats of one bot at most: its configured channels and nicks, and private ones. */
#define REP_IRC_CHATS_MAX (CFG_IRC_TARGETS_MAX + REP_IRC_PRIVATE_CHATS_MAX)

/* B_NEXT: a connection failed and closes; the next address of the lookup follows. */
enum bot_state { B_WAIT, B_RESOLVE, B_NEXT, B_CONNECT, B_REGISTER, B_READY };
enum sasl_state { S_OFF, S_LS, S_REQ, S_AUTH, S_DONE };

/* A chat the bot speaks in: its configured targets first (in their order), then the
   chats that `notify`, `mute` or the saved state made. */
struct chat {
    char *id;
    bool muted;
    uint32_t events;                    /* notify_events (REP_IRC_EV_*) */
    long long watch[REP_IRC_WATCH_MAX]; /* builds `watch` asked for, until they finish */
    size_t n_watch;
    bool joined; /* by `join`: forgotten at the next sign-on, as irc.py's new connection does */
};

/* What a command in a channel does once its NAMES say whether the nick is an operator. */
enum op_action { OP_MUTE, OP_UNMUTE, OP_NOTIFY };

/* A `mute`, `unmute` or `notify on|off` in a channel, waiting for its NAMES. */
struct op_check {
    char channel[REP_IRC_LINE_MAX], nick[64];
    enum op_action action;
    bool op;
    char notify[16]; /* on, off */
    uint32_t events;
    bool bad, none; /* an event Buildbot does not know; no event named */
};

struct bot {
    struct bot *next;
    struct rep_irc *ri;
    char *sig; /* every parameter: a change makes a new bot */
    char *name, *host, *nick, *password;
    int port;
    char **targets, **keys;
    size_t n_channels, n_targets;
    bool notice, use_sasl, use_ssl;
    uint32_t events; /* the configured notify_events */

    enum bot_state state;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    uv_tcp_t tcp;
    bool tcp_open, resolving;
    struct addrinfo *addrs, *addr_next; /* the lookup's answers, tried in order */
    int pending;                        /* open handles and requests in flight */
    bool dead;
    char rbuf[4096];
    char in[REP_IRC_LINE_MAX];
    size_t in_len;
    bool overlong; /* the line being read is past the bound: skipped to its end */
    char nick_now[64];
    enum sasl_state sasl;
    bool sasl_ok, sasl_offered;
    uint64_t deadline; /* B_RESOLVE to B_REGISTER: give up then; B_WAIT: reconnect then */
    uint64_t last_rx, ping_at, ready_at;
    bool ping_sent;
    int attempts;

    struct rep_irc_queue q;
    struct tls_conn *tls; /* with useSSL, while connected */
    bool handshaken;

    struct cfg_irc_acl *authz; /* a copy, replaced by each reconfig */
    size_t n_authz;
    struct rep_irc_rates rates;

    struct chat *chats; /* n_targets + REP_IRC_PRIVATE_CHATS_MAX */
    size_t n_chats;
    struct op_check checks[REP_IRC_OP_CHECKS_MAX];
    size_t n_checks;
};

struct rep_irc {
    uv_loop_t *loop;
    struct bot *bots;
    struct tls_ctx *tls; /* made for the first bot with useSSL */
    rep_irc_handler handler;
    void *handler_arg;
    rep_irc_state_load load;
    rep_irc_state_save save;
    void *state_arg;
};

struct wreq {
    uv_write_t req;
    char data[];
};

static void arm(struct bot *b);
static void try_connect(struct bot *b);
static void drop(struct bot *b, const char *why);
static void take_bytes(struct bot *b, const char *p, size_t n);
static void do_register(struct bot *b);
static void names_done(struct bot *b, const char *channel);
static void load_events(struct bot *b);

/* ------------------------------------------------------------ life */

static void authz_free(struct bot *b)
{
    for (size_t i = 0; i < b->n_authz; i++) {
        for (size_t j = 0; j < b->authz[i].n_nicks; j++)
            free(b->authz[i].nicks[j]);
        free(b->authz[i].nicks);
        free(b->authz[i].command);
    }
    free(b->authz);
    b->authz = NULL;
    b->n_authz = 0;
}

static void authz_copy(struct bot *b, const struct cfg_irc *c)
{
    authz_free(b);
    b->authz = xcalloc(c->n_authz + 1, sizeof *b->authz);
    for (size_t i = 0; i < c->n_authz; i++) {
        const struct cfg_irc_acl *a = &c->authz[i];
        b->authz[i].command = xstrdup(a->command);
        b->authz[i].all = a->all;
        b->authz[i].nicks = xcalloc(a->n_nicks + 1, sizeof(char *));
        for (size_t j = 0; j < a->n_nicks; j++)
            b->authz[i].nicks[j] = xstrdup(a->nicks[j]);
        b->authz[i].n_nicks = a->n_nicks;
    }
    b->n_authz = c->n_authz;
}

static void bot_release(struct bot *b)
{
    if (--b->pending > 0 || !b->dead)
        return;
    authz_free(b);
    for (size_t i = 0; i < b->n_chats; i++)
        free(b->chats[i].id);
    free(b->chats);
    rep_irc_queue_clear(&b->q);
    tls_conn_free(b->tls);
    uv_freeaddrinfo(b->addrs);
    for (size_t i = 0; i < b->n_targets; i++) {
        free(b->targets[i]);
        free(b->keys[i]);
    }
    free(b->targets);
    free(b->keys);
    free(b->sig);
    free(b->name);
    free(b->host);
    free(b->nick);
    free(b->password);
    free(b);
}

static void handle_closed(uv_handle_t *h)
{
    struct bot *b = h->data;
    if ((uv_handle_t *)&b->tcp == h) {
        b->tcp_open = false;
        tls_conn_free(b->tls);
        b->tls = NULL;
        b->handshaken = false;
    }
    bool dead = b->dead;
    bot_release(b);
    if (!dead && b->state == B_NEXT)
        try_connect(b);
    else if (!dead)
        arm(b);
}

static void close_tcp(struct bot *b)
{
    if (b->tcp_open && !uv_is_closing((uv_handle_t *)&b->tcp))
        uv_close((uv_handle_t *)&b->tcp, handle_closed);
}

static char *signature(const struct cfg_irc *c)
{
    struct buf s;
    buf_init(&s, 0);
    buf_printf(&s, "%s\x1f%s\x1f%d\x1f%s\x1f%s\x1f%d%d", c->host, c->nick, c->port,
               c->password ? c->password : "\x1e", c->name, c->notice, c->use_sasl);
    for (size_t i = 0; i < c->n_targets; i++)
        buf_printf(&s, "\x1f%s\x1e%s", c->targets[i], c->keys[i] ? c->keys[i] : "");
    buf_printf(&s, "\x1f%zu\x1f%d\x1f%u", c->n_channels, c->use_ssl, (unsigned)c->events);
    return buf_take(&s);
}

static struct bot *bot_new(struct rep_irc *ri, const struct cfg_irc *c)
{
    struct bot *b = xcalloc(1, sizeof *b);
    b->ri = ri;
    b->sig = signature(c);
    b->name = xstrdup(c->name);
    b->host = xstrdup(c->host);
    b->nick = xstrdup(c->nick);
    b->password = c->password ? xstrdup(c->password) : NULL;
    b->port = c->port;
    b->notice = c->notice;
    b->use_sasl = c->use_sasl;
    b->use_ssl = c->use_ssl;
    b->events = c->events;
    b->targets = xcalloc(c->n_targets + 1, sizeof *b->targets);
    b->keys = xcalloc(c->n_targets + 1, sizeof *b->keys);
    for (size_t i = 0; i < c->n_targets; i++) {
        b->targets[i] = xstrdup(c->targets[i]);
        b->keys[i] = c->keys[i] ? xstrdup(c->keys[i]) : NULL;
    }
    b->n_targets = c->n_targets;
    b->n_channels = c->n_channels;
    b->chats = xcalloc(c->n_targets + REP_IRC_PRIVATE_CHATS_MAX, sizeof *b->chats);
    for (size_t i = 0; i < c->n_targets; i++) {
        b->chats[b->n_chats].events = c->events;
        b->chats[b->n_chats++].id = xstrdup(c->targets[i]);
    }
    authz_copy(b, c);
    rep_irc_queue_init(&b->q, uv_now(ri->loop));
    uv_timer_init(ri->loop, &b->timer);
    b->timer.data = b;
    b->pending = 1;
    b->state = B_WAIT;
    b->deadline = uv_now(ri->loop);
    return b;
}

static void flush(struct bot *b);

/* Says a last burst of what waits for the line rate (the answer to `shutdown now`, say) and
   QUIT when it can do so at once, and lets the bot go. */
static void bot_kill(struct bot *b, const char *why)
{
    if (!b->dead && b->state == B_READY) {
        b->q.tokens = REP_IRC_BURST;
        flush(b);
    }
    b->dead = true;
    if (b->tcp_open && b->state >= B_REGISTER && !uv_is_closing((uv_handle_t *)&b->tcp)) {
        char line[128], out[512];
        int n = snprintf(line, sizeof line, "QUIT :%s\r\n", why);
        uv_buf_t buf = uv_buf_init(line, (unsigned)n);
        if (b->tls != NULL) {
            size_t m = b->handshaken && tls_conn_send(b->tls, line, (size_t)n, NULL) == 0
                           ? tls_conn_take(b->tls, out, sizeof out)
                           : 0;
            buf = uv_buf_init(out, (unsigned)m);
        }
        if (buf.len > 0)
            uv_try_write((uv_stream_t *)&b->tcp, &buf, 1);
    }
    if (b->resolving)
        uv_cancel((uv_req_t *)&b->gai);
    close_tcp(b);
    uv_close((uv_handle_t *)&b->timer, handle_closed);
}

/* ------------------------------------------------------------ TLS */

static void write_cb(uv_write_t *req, int status);

/* What TLS has to send goes to the socket. */
static void tls_flush(struct bot *b)
{
    char out[16384];
    size_t n;
    while ((n = tls_conn_take(b->tls, out, sizeof out)) > 0) {
        struct wreq *q = xmalloc(sizeof *q + n);
        memcpy(q->data, out, n);
        uv_buf_t buf = uv_buf_init(q->data, (unsigned)n);
        if (uv_write(&q->req, (uv_stream_t *)&b->tcp, &buf, 1, write_cb) < 0) {
            free(q);
            return;
        }
    }
}

/* The handshake is over: the bot registers (once per connection). */
static void tls_ready(struct bot *b)
{
    if (b->handshaken)
        return;
    b->handshaken = true;
    log_info("%s: TLS (%s) with %s:%d, certificate verified", b->name, tls_conn_version(b->tls),
             b->host, b->port);
    do_register(b);
}

static int tls_plain(void *arg, const char *data, size_t len)
{
    struct bot *b = arg;
    tls_ready(b);
    if (b->tls == NULL || b->dead || b->state < B_REGISTER)
        return 0;
    take_bytes(b, data, len);
    return 0;
}

/* Bytes from the server: the handshake, then the plain text of what came. */
static void tls_pump(struct bot *b, const char *data, size_t len)
{
    char *cause = NULL;
    if (tls_conn_receive(b->tls, data, len, tls_plain, b, &cause) != 0) {
        drop(b, cause);
        free(cause);
        return;
    }
    if (b->tls == NULL || b->dead)
        return;
    if (tls_conn_ready(b->tls))
        tls_ready(b);
    tls_flush(b);
}

/* A TLS session over the new connection, its first bytes sent; 0, or -1 with *cause. */
static int tls_start(struct bot *b, char **cause)
{
    struct rep_irc *ri = b->ri;
    if (ri->tls == NULL && (ri->tls = tls_client_ctx(NULL, cause)) == NULL)
        return -1;
    b->tls = tls_conn_client(ri->tls, b->host);
    b->handshaken = false;
    tls_flush(b);
    return 0;
}

/* ------------------------------------------------------------ sending */

static void write_cb(uv_write_t *req, int status)
{
    (void)status; /* a broken connection is noticed by the read side */
    free(req);
}

/* One line now, past the queue and the line rate (registration, PONG, JOIN). */
static void send_line(struct bot *b, const char *fmt, ...) UTIL_PRINTF(2, 3);
static void send_line(struct bot *b, const char *fmt, ...)
{
    if (!b->tcp_open || uv_is_closing((uv_handle_t *)&b->tcp))
        return;
    char line[REP_IRC_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, REP_IRC_LINE_MAX - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > REP_IRC_LINE_MAX - 2)
        n = REP_IRC_LINE_MAX - 2;
    struct wreq *w = xmalloc(sizeof *w + (size_t)n + 2);
    memcpy(w->data, line, (size_t)n);
    memcpy(w->data + n, "\r\n", 2);
    if (b->tls != NULL) {
        char *cause = NULL;
        if (tls_conn_send(b->tls, w->data, (size_t)n + 2, &cause) == 0)
            tls_flush(b);
        else
            log_warn("%s: %s", b->name, cause);
        free(cause);
        free(w);
        return;
    }
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)n + 2);
    if (uv_write(&w->req, (uv_stream_t *)&b->tcp, &buf, 1, write_cb) < 0)
        free(w);
}

/* irc.py's IRCChannel.send: groupSend (a NOTICE with noticeOnChannel) to a channel, msg to
   a nick. */
static const char *verb(const struct bot *b, const char *chat)
{
    return b->notice && strchr("&#!+", chat[0]) != NULL ? "NOTICE" : "PRIVMSG";
}

/* After the queue emptied: one line to each chat that hears notifications says how many lines
   overflowed it. */
static void summarise_dropped(struct bot *b)
{
    log_warn("%s: %zu lines not sent: more than %d were waiting for the line rate", b->name,
             b->q.dropped, REP_IRC_QUEUE_MAX);
    for (size_t i = 0; i < b->n_chats; i++) {
        const struct chat *c = &b->chats[i];
        if (!c->muted && c->events != 0)
            rep_irc_queue_push(&b->q, xasprintf("%s %s :(%zu more lines not sent: over the "
                                                "line rate)",
                                                verb(b, c->id), c->id, b->q.dropped));
    }
    b->q.dropped = 0;
}

/* The queue's lines, as the line rate lets them go. */
static void flush(struct bot *b)
{
    if (b->state != B_READY)
        return;
    char *line;
    while ((line = rep_irc_queue_pop(&b->q, uv_now(b->ri->loop))) != NULL) {
        send_line(b, "%s", line);
        free(line);
        if (b->q.n == 0 && b->q.dropped > 0)
            summarise_dropped(b);
    }
    arm(b);
}

/* A line to the queue; the first one past its ceiling is logged. */
static void push(struct bot *b, char *line)
{
    if (b->q.n == REP_IRC_QUEUE_MAX && b->q.dropped == 0)
        log_warn("%s: %d lines wait for the line rate: more are dropped, and counted, until "
                 "they have gone",
                 b->name, REP_IRC_QUEUE_MAX);
    rep_irc_queue_push(&b->q, line);
}

/* One piece of text (no line break in it) to the chats wanted, cut to REP_IRC_TEXT_MAX. */
static void say_piece(struct bot *b, const bool *to, const char *p, size_t len)
{
    for (size_t off = 0; off < len;) {
        size_t n = rep_irc_cut(p + off, len - off, REP_IRC_TEXT_MAX);
        if (n == 0) /* not UTF-8: cut anywhere */
            n = len - off < REP_IRC_TEXT_MAX ? len - off : REP_IRC_TEXT_MAX;
        for (size_t i = 0; i < b->n_chats; i++)
            if (to[i])
                push(b, xasprintf("%s %s :%.*s", verb(b, b->chats[i].id), b->chats[i].id, (int)n,
                                  p + off));
        off += n;
    }
}

/* The chat watches the build: it hears of it, once. */
static bool watched(struct chat *c, long long buildid)
{
    for (size_t i = 0; buildid >= 0 && i < c->n_watch; i++)
        if (c->watch[i] == buildid) {
            c->watch[i] = c->watch[--c->n_watch];
            return true;
        }
    return false;
}

void rep_irc_notify(struct rep_irc *ri, const char *name, const char *text, rep_irc_wants_fn wants,
                    void *arg, long long buildid)
{
    struct bot *b = ri->bots;
    while (b != NULL && (b->dead || strcmp(b->name, name) != 0))
        b = b->next;
    if (b == NULL)
        return;
    bool to[REP_IRC_CHATS_MAX], any = false;
    for (size_t i = 0; i < b->n_chats; i++) {
        struct chat *c = &b->chats[i];
        bool watching = watched(c, buildid); /* forgotten even when muted */
        to[i] = !c->muted && ((c->events != 0 && wants(c->events, arg)) || watching);
        any = any || to[i];
    }
    for (const char *p = text; any && *p != '\0';) {
        size_t len = strcspn(p, "\r\n");
        say_piece(b, to, p, len);
        p += len;
        p += strspn(p, "\r\n");
    }
    flush(b);
}

/* ------------------------------------------------------------ the connection */

static uint64_t backoff_ms(int attempts)
{
    uint64_t d = REP_IRC_BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && d < REP_IRC_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > REP_IRC_BACKOFF_MAX_MS)
        d = REP_IRC_BACKOFF_MAX_MS;
    return d / 2 + (uint64_t)((double)random() / ((double)RAND_MAX + 1) * (double)(d / 2));
}

/* The connection is gone or given up: another one after the backoff. */
static void drop(struct bot *b, const char *why)
{
    uint64_t now = uv_now(b->ri->loop);
    if (b->state == B_READY && now - b->ready_at >= 60 * 1000)
        b->attempts = 0; /* it worked for a while: start the backoff again */
    uint64_t wait = backoff_ms(++b->attempts);
    log_warn("%s: %s:%d: %s; connecting again in %.1f s", b->name, b->host, b->port, why,
             (double)wait / 1000);
    if (b->resolving)
        uv_cancel((uv_req_t *)&b->gai);
    uv_freeaddrinfo(b->addrs);
    b->addrs = b->addr_next = NULL;
    b->state = B_WAIT;
    b->deadline = now + wait;
    b->n_checks = 0; /* their NAMES will not come */
    close_tcp(b);
    arm(b);
}

static void sign_on(struct bot *b)
{
    b->state = B_READY;
    b->ready_at = uv_now(b->ri->loop);
    log_info("%s: signed on to %s:%d as %s%s", b->name, b->host, b->port, b->nick_now,
             b->sasl_ok ? " (SASL)" : "");
    if (b->password != NULL && !b->sasl_ok)
        send_line(b, "PRIVMSG NickServ :IDENTIFY %s", b->password);
    for (size_t i = 0; i < b->n_channels; i++) {
        if (b->keys[i] != NULL)
            send_line(b, "JOIN %s %s", b->targets[i], b->keys[i]);
        else
            send_line(b, "JOIN %s", b->targets[i]);
    }
    for (size_t i = 0; i < b->n_chats; i++)
        if (b->chats[i].joined) { /* not joined again */
            b->chats[i].joined = false;
            b->chats[i].events = 0;
        }
    load_events(b);
    flush(b);
}

/* SASL is over (or was never to be): registration goes on; without success NickServ is
   asked after the welcome. */
static void sasl_end(struct bot *b, const char *why)
{
    if (why != NULL)
        log_warn("%s: %s:%d: %s; identifying with NickServ instead", b->name, b->host, b->port,
                 why);
    b->sasl = S_DONE;
    send_line(b, "CAP END");
}

static bool has_cap(const char *list, const char *cap)
{
    size_t n = strlen(cap);
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, " ");
        if (len >= n && strncmp(p, cap, n) == 0 && (len == n || p[n] == '='))
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

static void on_cap(struct bot *b, const struct rep_irc_msg *m)
{
    if (m->n_params < 3 || b->sasl == S_DONE || b->sasl == S_OFF)
        return;
    const char *sub = m->params[1];
    if (strcmp(sub, "LS") == 0 && b->sasl == S_LS) {
        if (has_cap(m->params[m->n_params - 1], "sasl"))
            b->sasl_offered = true;
        if (m->n_params >= 4 && strcmp(m->params[2], "*") == 0)
            return; /* more LS lines follow */
        if (!b->sasl_offered) {
            sasl_end(b, "the server offers no SASL");
            return;
        }
        b->sasl = S_REQ;
        send_line(b, "CAP REQ :sasl");
    } else if (strcmp(sub, "ACK") == 0 && b->sasl == S_REQ && has_cap(m->params[2], "sasl")) {
        b->sasl = S_AUTH;
        send_line(b, "AUTHENTICATE PLAIN");
    } else if (strcmp(sub, "NAK") == 0 && b->sasl == S_REQ) {
        sasl_end(b, "the server refused the sasl capability");
    }
}

/* AUTHENTICATE +: nick \0 nick \0 password, in base64, in pieces of 400 as IRCv3 says. */
static void on_authenticate(struct bot *b, const struct rep_irc_msg *m)
{
    if (b->sasl != S_AUTH || m->n_params < 1 || strcmp(m->params[0], "+") != 0)
        return;
    char plain[600];
    size_t nl = strlen(b->nick), pl = strlen(b->password);
    if (2 * nl + pl + 2 > sizeof plain) {
        sasl_end(b, "the nick and password are too long for SASL PLAIN");
        return;
    }
    memcpy(plain, b->nick, nl);
    plain[nl] = '\0';
    memcpy(plain + nl + 1, b->nick, nl);
    plain[2 * nl + 1] = '\0';
    memcpy(plain + 2 * nl + 2, b->password, pl);
    char enc[4 * (sizeof plain / 3 + 1) + 1];
    size_t len = util_base64(plain, 2 * nl + pl + 2, enc);
    size_t off = 0;
    do {
        size_t n = len - off > 400 ? 400 : len - off;
        send_line(b, "AUTHENTICATE %.*s", (int)n, enc + off);
        off += n;
        if (n == 400 && off == len)
            send_line(b, "AUTHENTICATE +");
    } while (off < len);
}

static void on_numeric(struct bot *b, int code, const struct rep_irc_msg *m)
{
    switch (code) {
    case 1: /* RPL_WELCOME */
        if (m->n_params >= 1)
            snprintf(b->nick_now, sizeof b->nick_now, "%s", m->params[0]);
        b->sasl = S_DONE;
        sign_on(b);
        break;
    case 903: /* RPL_SASLSUCCESS */
        if (b->sasl == S_AUTH) {
            b->sasl_ok = true;
            log_info("%s: SASL authentication succeeded", b->name);
            sasl_end(b, NULL);
        }
        break;
    case 902: /* ERR_NICKLOCKED */
    case 904: /* ERR_SASLFAIL */
    case 905: /* ERR_SASLTOOLONG */
    case 906: /* ERR_SASLABORTED */
    case 907: /* ERR_SASLALREADY */
        if (b->sasl != S_DONE && b->sasl != S_OFF)
            sasl_end(b, code == 904 ? "SASL authentication failed" : "SASL did not succeed");
        break;
    case 421: /* ERR_UNKNOWNCOMMAND: CAP, on a server that has none */
        if (m->n_params >= 2 && strcmp(m->params[1], "CAP") == 0)
            b->sasl = S_DONE;
        break;
    case 433: /* ERR_NICKNAMEINUSE: Twisted's alterCollidedNick */
        if (b->state == B_REGISTER && strlen(b->nick_now) + 2 < 31) {
            strcat(b->nick_now, "_");
            send_line(b, "NICK %s", b->nick_now);
        }
        break;
    case 353: /* RPL_NAMREPLY: me, symbol, channel, names */
        for (size_t i = 0; m->n_params >= 4 && i < b->n_checks; i++)
            if (strcasecmp(b->checks[i].channel, m->params[2]) == 0 &&
                rep_irc_names_op(m->params[3], b->checks[i].nick))
                b->checks[i].op = true;
        break;
    case 366: /* RPL_ENDOFNAMES: me, channel */
        if (m->n_params >= 2)
            names_done(b, m->params[1]);
        break;
    case 403: /* ERR_NOSUCHCHANNEL and the other refusals of a JOIN */
    case 405:
    case 471:
    case 473:
    case 474:
    case 475:
    case 477:
        log_warn("%s: cannot join %s: %s", b->name, UTIL_ESC(m->n_params >= 2 ? m->params[1] : "?"),
                 UTIL_ESC(m->n_params >= 3 ? m->params[m->n_params - 1] : ""));
        break;
    default:
        break;
    }
}

static struct chat *find_chat(struct bot *b, const char *id)
{
    for (size_t i = 0; i < b->n_chats; i++)
        if (strcasecmp(b->chats[i].id, id) == 0)
            return &b->chats[i];
    return NULL;
}

/* An answer to `target`: its lines cut to REP_IRC_TEXT_MAX, at most REP_IRC_REPLY_LINES_MAX
   of them and a line that counts the rest; nothing to a muted chat. */
static void answer(struct bot *b, const char *verb_, const char *target, const char *text)
{
    const struct chat *chat = find_chat(b, target);
    if (chat != NULL && chat->muted)
        return;
    size_t lines = 0, more = 0;
    for (const char *p = text; *p != '\0';) {
        size_t len = strcspn(p, "\r\n");
        for (size_t off = 0; off < len;) {
            size_t n = rep_irc_cut(p + off, len - off, REP_IRC_TEXT_MAX);
            if (n == 0)
                n = len - off < REP_IRC_TEXT_MAX ? len - off : REP_IRC_TEXT_MAX;
            if (lines < REP_IRC_REPLY_LINES_MAX)
                push(b, xasprintf("%s %s :%.*s", verb_, target, (int)n, p + off));
            else
                more++;
            lines++;
            off += n;
        }
        p += len;
        p += strspn(p, "\r\n");
    }
    if (more > 0)
        push(b, xasprintf("%s %s :(%zu more lines not shown)", verb_, target, more));
    flush(b);
}

/* An answer to a command said in `channel` (NULL: privately, by `nick`). */
static void reply(struct bot *b, const char *channel, const char *nick, const char *text)
{
    bool group = channel != NULL && strchr("&#!+", channel[0]) != NULL;
    answer(b, group && b->notice ? "NOTICE" : "PRIVMSG", channel != NULL ? channel : nick, text);
}

/* The chat of a command: the channel's, or the nick's private one; with `make`, one is made
   while there is room. */
static struct chat *chat_of(struct bot *b, const char *channel, const char *nick, bool make)
{
    const char *id = channel != NULL ? channel : nick;
    struct chat *c = find_chat(b, id);
    if (c != NULL || !make || b->n_chats == b->n_targets + REP_IRC_PRIVATE_CHATS_MAX)
        return c;
    c = &b->chats[b->n_chats++];
    c->id = xstrdup(id);
    c->muted = false;
    return c;
}

/* irc.py's command_MUTE once allowed: said, then silent. */
static void mute(struct bot *b, const char *channel, const char *nick)
{
    struct chat *c = chat_of(b, channel, nick, true);
    if (c == NULL) {
        log_warn("%s: %d private chats are muted already: %s's is not", b->name,
                 REP_IRC_PRIVATE_CHATS_MAX, UTIL_ESC(nick));
        return;
    }
    reply(b, channel, nick, REP_IRC_MUTED);
    c->muted = true;
    log_info("%s: muted in %s by %s", b->name, UTIL_ESC(c->id), UTIL_ESC(nick));
}

static void unmute(struct bot *b, struct chat *c, const char *channel, const char *nick)
{
    c->muted = false;
    log_info("%s: unmuted in %s by %s", b->name, UTIL_ESC(c->id), UTIL_ESC(nick));
    reply(b, channel, nick, REP_IRC_UNMUTED);
}

/* The chats' notify_events to the database, as irc.py's saveNotifyEvents: each chat that has
   some, [[chat, [event, ...]], ...]. */
static void save_events(struct bot *b)
{
    if (b->ri->save == NULL)
        return;
    json_t *list = json_array();
    for (size_t i = 0; i < b->n_chats; i++) {
        if (b->chats[i].events == 0)
            continue;
        char *names = rep_irc_event_names(b->chats[i].events, "\n");
        json_t *events = json_array();
        for (char *p = names, *end; *p != '\0'; p = *end != '\0' ? end + 1 : end) {
            end = p + strcspn(p, "\n");
            json_array_append_new(events, json_stringn(p, (size_t)(end - p)));
        }
        free(names);
        json_array_append_new(list, json_pack("[s, o]", b->chats[i].id, events));
    }
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (text != NULL)
        b->ri->save(b->ri->state_arg, b->nick, text);
    free(text);
}

/* irc.py's loadState at sign-on: the saved events are added to each chat's (a chat not
   configured is made, while there is room); what is not a chat and its events is skipped,
   logged. */
static void load_events(struct bot *b)
{
    char *text = b->ri->load != NULL ? b->ri->load(b->ri->state_arg, b->nick) : NULL;
    if (text == NULL)
        return;
    json_t *list = json_loads(text, 0, NULL);
    free(text);
    size_t i;
    json_t *item;
    if (!json_is_array(list))
        log_warn("%s: the saved notify_events are not a list: left aside", b->name);
    json_array_foreach(list, i, item)
    {
        if (i == REP_IRC_CHATS_MAX) {
            log_warn("%s: the saved notify_events name more than %d chats: the rest are left "
                     "aside",
                     b->name, REP_IRC_CHATS_MAX);
            break;
        }
        const char *id = json_string_value(json_array_get(item, 0));
        json_t *events = json_array_get(item, 1);
        struct chat *c =
            id != NULL && strlen(id) < REP_IRC_LINE_MAX / 2 ? chat_of(b, id, id, true) : NULL;
        if (c == NULL || !json_is_array(events)) {
            log_warn("%s: saved notify_events #%zu left aside: not a chat and its events, or "
                     "no room for another chat",
                     b->name, i);
            continue;
        }
        size_t j;
        json_t *ev;
        json_array_foreach(events, j, ev)
        {
            if (j == 64)
                break; /* Buildbot has 28 events */
            uint32_t bit = json_is_string(ev) ? rep_irc_event(json_string_value(ev)) : 0;
            if (bit == 0)
                log_warn("%s: saved notify_events of %s: %s is not an event", b->name,
                         UTIL_ESC(c->id),
                         json_is_string(ev) ? UTIL_ESC(json_string_value(ev)) : "?");
            c->events |= bit;
        }
    }
    json_decref(list);
}

/* irc.py's list_notified_events. */
static char *events_text(const struct chat *c)
{
    if (c->events == 0)
        return xstrdup("No events are being notified.");
    char *names = rep_irc_event_names(c->events, ", ");
    char *text = xasprintf("The following events are being notified: %s.", names);
    free(names);
    return text;
}

/* `notify on|off` (with -quiet) once allowed, as words.py's command_NOTIFY. */
static void notify(struct bot *b, const struct op_check *k, const char *channel, const char *nick)
{
    struct chat *c = chat_of(b, channel, nick, true);
    if (c == NULL) {
        log_warn("%s: %d private chats are kept already: %s's notify is not", b->name,
                 REP_IRC_PRIVATE_CHATS_MAX, UTIL_ESC(nick));
        reply(b, channel, nick, "Something bad happened (see logs)");
        return;
    }
    if (k->bad) {
        reply(b, channel, nick, "Try 'notify on|off _EVENT_'.");
        return;
    }
    bool on = strncmp(k->notify, "on", 2) == 0;
    if (on) {
        c->events |= k->none ? REP_IRC_EV_STARTED | REP_IRC_EV_FINISHED : k->events;
    } else if (k->none) {
        c->events = 0;
    } else {
        bool missing = (k->events & ~c->events) != 0;
        c->events &= ~k->events;
        if (missing) { /* Python's set.remove raises, and nothing is saved */
            log_warn("%s: notify off: %s's chat did not have every event named", b->name,
                     UTIL_ESC(nick));
            reply(b, channel, nick, "Something bad happened (see logs)");
            return;
        }
    }
    if (strchr(k->notify, '-') == NULL) {
        char *text = events_text(c);
        reply(b, channel, nick, text);
        free(text);
    }
    save_events(b);
}

/* Whether the nick is an operator of the channel is asked of the server (irc.py's
   getChannelOps): the command waits for the NAMES reply. */
static void ask_names(struct bot *b, const char *channel, struct op_check *k)
{
    if (b->n_checks == REP_IRC_OP_CHECKS_MAX) {
        log_warn("%s: %d commands wait for the server's NAMES: %s's is dropped", b->name,
                 REP_IRC_OP_CHECKS_MAX, UTIL_ESC(b->checks[0].nick));
        memmove(b->checks, b->checks + 1, (REP_IRC_OP_CHECKS_MAX - 1) * sizeof *b->checks);
        b->n_checks--;
    }
    snprintf(k->channel, sizeof k->channel, "%s", channel);
    k->op = false;
    b->checks[b->n_checks++] = *k;
    send_line(b, "NAMES %s", channel);
}

/* The channel's NAMES are all in: the commands that waited for them go on. */
static void names_done(struct bot *b, const char *channel)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->n_checks; i++) {
        struct op_check k = b->checks[i];
        if (strcasecmp(k.channel, channel) != 0) {
            b->checks[kept++] = k;
            continue;
        }
        struct chat *c = chat_of(b, k.channel, k.nick, false);
        char *no = NULL;
        if (k.action == OP_UNMUTE && k.op && c != NULL && c->muted)
            unmute(b, c, k.channel, k.nick);
        else if (k.action == OP_MUTE && k.op)
            mute(b, k.channel, k.nick);
        else if (k.action == OP_NOTIFY && k.op)
            notify(b, &k, k.channel, k.nick);
        else if (k.action == OP_MUTE)
            no = xasprintf("Only channel operators or explicitly allowed users can mute me "
                           "here, %s... Blah, blah, blah...",
                           k.nick);
        else if (k.action == OP_NOTIFY)
            no = xasprintf("Only channel operators can change notified events for this "
                           "channel. And you, %s, are neither!",
                           k.nick);
        if (no != NULL)
            reply(b, k.channel, k.nick, no);
        free(no);
    }
    b->n_checks = kept;
}

/* Context of a command for the chat's handler. */
struct said_ctx {
    struct bot *b;
    const char *channel, *nick; /* as the server gave them */
};

/* words.py's command_NOTIFY, with irc.py's operator check for on and off in a channel. */
static char *notify_command(struct said_ctx *s, const struct rep_irc_request *req)
{
    struct bot *b = s->b;
    const char *action = req->argc > 0 ? req->argv[0] : "";
    bool on_off = strcmp(action, "on") == 0 || strcmp(action, "off") == 0;
    if (!on_off && strcmp(action, "on-quiet") != 0 && strcmp(action, "off-quiet") != 0) {
        if (strcmp(action, "list") != 0)
            return xstrdup("Try 'notify on|off|list [_EVENT_]'.");
        struct chat *c = chat_of(b, s->channel, s->nick, false);
        return c != NULL ? events_text(c) : xstrdup("No events are being notified.");
    }
    struct op_check k = {.action = OP_NOTIFY, .none = req->argc == 1};
    snprintf(k.notify, sizeof k.notify, "%s", action);
    snprintf(k.nick, sizeof k.nick, "%s", req->nick);
    for (int i = 1; i < req->argc; i++) {
        uint32_t bit = rep_irc_event(req->argv[i]);
        k.bad = k.bad || bit == 0;
        k.events |= bit;
    }
    if (s->channel != NULL && on_off &&
        rep_irc_op_required(b->authz, b->n_authz, "notify", req->nick))
        ask_names(b, s->channel, &k);
    else
        notify(b, &k, s->channel, s->nick);
    return NULL;
}

/* irc.py's join and leave: JOIN or PART each channel named; a channel joined hears the
   configured notify_events, as irc.py's joined() gives them. */
static char *join_leave(struct bot *b, const struct rep_irc_request *req)
{
    bool join = strcmp(req->command, "join") == 0;
    for (int i = 0; i < req->argc; i++) {
        const char *ch = req->argv[i];
        if (ch[0] == '\0' || strcspn(ch, " ,\a") != strlen(ch) || strlen(ch) > 200) {
            log_warn("%s: %s %s: not a channel name", b->name, req->command, UTIL_ESC(ch));
            continue;
        }
        log_info("%s: %s %s (asked by %s)", b->name, join ? "joining" : "leaving", UTIL_ESC(ch),
                 UTIL_ESC(req->user));
        send_line(b, "%s %s", join ? "JOIN" : "PART", ch);
        struct chat *c = chat_of(b, ch, ch, join);
        if (c != NULL && join) {
            c->events |= b->events;
            c->joined = true;
        } else if (c != NULL) {
            c->events = 0; /* a channel left hears nothing more */
        } else if (join) {
            log_warn("%s: %d chats are kept already: %s hears nothing", b->name,
                     REP_IRC_PRIVATE_CHATS_MAX, UTIL_ESC(ch));
        }
    }
    return NULL;
}

/* irc.py's act: a CTCP ACTION to the chat (/me), always a PRIVMSG. */
static void act(struct bot *b, const char *channel, const char *nick, const char *action)
{
    char *text = xasprintf("\001ACTION %s\001", action);
    answer(b, "PRIVMSG", channel != NULL ? channel : nick, text);
    free(text);
}

/* irc.py's destroy (unless the bot's own nick is named) and hustle. */
static char *joke(struct said_ctx *s, const struct rep_irc_request *req)
{
    bool self = false;
    for (int i = 0; i < req->argc && !self; i++)
        self = strstr(req->argv[i], s->b->nick_now) != NULL;
    if (strcmp(req->command, "destroy") == 0 && self)
        return xasprintf("Better destroy yourself, %s!", req->nick);
    act(s->b, s->channel, s->nick,
        strcmp(req->command, "destroy") == 0 ? "readies phasers" : "does the hustle");
    return NULL;
}

/* mute, unmute, notify, join, leave, destroy and hustle (irc.py's IRCContact). */
static char *chat_command(void *arg, const struct rep_irc_request *req)
{
    struct said_ctx *s = arg;
    struct bot *b = s->b;
    if (strcmp(req->command, "notify") == 0)
        return notify_command(s, req);
    if (strcmp(req->command, "destroy") == 0 || strcmp(req->command, "hustle") == 0)
        return joke(s, req);
    if (strcmp(req->command, "join") == 0 || strcmp(req->command, "leave") == 0)
        return join_leave(b, req);
    bool unmuting = strcmp(req->command, "unmute") == 0;
    struct chat *c = chat_of(b, s->channel, s->nick, false);
    if (unmuting && (c == NULL || !c->muted))
        return xstrdup(REP_IRC_NOT_MUTED);
    struct op_check k = {.action = unmuting ? OP_UNMUTE : OP_MUTE};
    snprintf(k.nick, sizeof k.nick, "%s", req->nick);
    if (s->channel != NULL && rep_irc_op_required(b->authz, b->n_authz, "mute", req->nick))
        ask_names(b, s->channel, &k);
    else if (unmuting)
        unmute(b, c, s->channel, s->nick);
    else
        mute(b, s->channel, s->nick);
    return NULL;
}

/* A PRIVMSG: a command when it is addressed to the bot (privately, or "nick: ..." in a
   channel), answered where it was said. */
static void on_privmsg(struct bot *b, const struct rep_irc_msg *m)
{
    if (m->prefix == NULL || m->n_params < 2 || b->state != B_READY)
        return;
    char nick[64];
    snprintf(nick, sizeof nick, "%.*s", (int)strcspn(m->prefix, "!@"), m->prefix);
    bool private_chat = strcasecmp(m->params[0], b->nick_now) == 0;
    const char *message = rep_irc_addressed(m->params[1], b->nick_now, private_chat);
    if (message == NULL || nick[0] == '\0')
        return;
    const char *channel = private_chat ? NULL : m->params[0];
    int rate = rep_irc_rate_take(&b->rates, nick, uv_now(b->ri->loop));
    if (rate <= 0) {
        if (rate == 0)
            log_warn("%s: %s gives commands faster than %d, then one per %d s: ignored", b->name,
                     UTIL_ESC(nick), REP_IRC_CMD_BURST, REP_IRC_CMD_MS / 1000);
        return;
    }
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(message, " "), message);
    log_info("%s: received command `%s` from %s%s%s", b->name, UTIL_ESC(word), UTIL_ESC(nick),
             channel != NULL ? " on " : "", channel != NULL ? UTIL_ESC(channel) : "");
    struct said_ctx ctx = {b, channel, nick};
    long long builds[REP_IRC_WATCH_MAX];
    size_t n_builds = 0;
    struct rep_irc_said said = {.bot = b->name,
                                .nick = nick,
                                .channel = channel,
                                .message = message,
                                .chat = chat_command,
                                .chat_arg = &ctx,
                                .watched = builds,
                                .n_watched = &n_builds};
    char *text = rep_irc_command(&said, b->authz, b->n_authz, b->ri->handler, b->ri->handler_arg);
    struct chat *c = n_builds > 0 ? chat_of(b, channel, nick, true) : NULL;
    if (n_builds > 0 && c == NULL)
        log_warn("%s: %d private chats are kept already: %s's watch is not", b->name,
                 REP_IRC_PRIVATE_CHATS_MAX, UTIL_ESC(nick));
    for (size_t i = 0; c != NULL && i < n_builds && i < REP_IRC_WATCH_MAX; i++) {
        if (c->n_watch == REP_IRC_WATCH_MAX) { /* the oldest is forgotten */
            memmove(c->watch, c->watch + 1, (REP_IRC_WATCH_MAX - 1) * sizeof *c->watch);
            c->n_watch--;
        }
        c->watch[c->n_watch++] = builds[i];
    }
    if (text != NULL && !b->dead)
        reply(b, channel, nick, text);
    free(text);
}

static void on_line(struct bot *b, const char *line, size_t len)
{
    struct rep_irc_msg m;
    if (rep_irc_parse(line, len, &m) < 0)
        return;
    b->last_rx = uv_now(b->ri->loop);
    b->ping_sent = false;
    const char *c = m.command;
    if (strcmp(c, "PING") == 0)
        send_line(b, "PONG :%s", m.n_params > 0 ? m.params[0] : "");
    else if (strcmp(c, "CAP") == 0)
        on_cap(b, &m);
    else if (strcmp(c, "AUTHENTICATE") == 0)
        on_authenticate(b, &m);
    else if (strcmp(c, "PRIVMSG") == 0)
        on_privmsg(b, &m);
    else if (strcmp(c, "ERROR") == 0)
        log_warn("%s: the server says: %s", b->name, UTIL_ESC(m.n_params > 0 ? m.params[0] : ""));
    else if (strlen(c) == 3 && c[0] >= '0' && c[0] <= '9')
        on_numeric(b, atoi(c), &m);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct bot *b = h->data;
    *buf = uv_buf_init(b->rbuf, sizeof b->rbuf);
}

/* Bytes into lines; a line past REP_IRC_LINE_MAX is skipped to its end. */
static void take_bytes(struct bot *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !b->dead && b->state >= B_REGISTER; i++) {
        if (p[i] == '\n') {
            size_t len = b->in_len;
            if (len > 0 && b->in[len - 1] == '\r')
                len--;
            if (!b->overlong && len > 0)
                on_line(b, b->in, len);
            b->in_len = 0;
            b->overlong = false;
        } else if (b->in_len == sizeof b->in - 1) {
            if (!b->overlong)
                log_warn("%s: a line of the server longer than %d bytes skipped", b->name,
                         REP_IRC_LINE_MAX);
            b->overlong = true;
        } else if (!b->overlong) {
            b->in[b->in_len++] = p[i];
        }
    }
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct bot *b = s->data;
    if (n > 0 && b->tls != NULL) {
        tls_pump(b, buf->base, (size_t)n);
    } else if (n > 0) {
        take_bytes(b, buf->base, (size_t)n);
    } else if (n < 0 && !b->dead && b->state >= B_CONNECT)
        drop(b, n == UV_EOF ? "the server closed the connection" : uv_strerror((int)n));
}

static void do_register(struct bot *b)
{
    b->state = B_REGISTER;
    b->in_len = 0;
    b->overlong = false;
    b->sasl_ok = b->sasl_offered = false;
    snprintf(b->nick_now, sizeof b->nick_now, "%s", b->nick);
    if (b->use_sasl && b->password != NULL) {
        b->sasl = S_LS;
        send_line(b, "CAP LS 302");
    } else {
        b->sasl = S_OFF;
        if (b->password != NULL)
            send_line(b, "PASS %s", b->password); /* Twisted's register, as Buildbot */
    }
    send_line(b, "NICK %s", b->nick);
    send_line(b, "USER %s foo bar :None", b->nick); /* Buildbot's (Twisted's) words */
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct bot *b = req->data;
    if (b->dead || status == UV_ECANCELED || b->state != B_CONNECT)
        return;
    if (status < 0 && b->addr_next != NULL) {
        b->state = B_NEXT; /* the handle closes, then the next address is tried */
        close_tcp(b);
        return;
    }
    if (status < 0) {
        drop(b, uv_strerror(status));
        return;
    }
    uv_freeaddrinfo(b->addrs);
    b->addrs = b->addr_next = NULL;
    b->last_rx = uv_now(b->ri->loop);
    b->ping_sent = false;
    b->deadline = b->last_rx + REP_IRC_REGISTER_MS;
    uv_read_start((uv_stream_t *)&b->tcp, alloc_cb, read_cb);
    char *cause = NULL;
    if (!b->use_ssl)
        do_register(b);
    else if (tls_start(b, &cause) < 0)
        drop(b, cause);
    free(cause);
    arm(b);
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct bot *b = req->data;
    b->resolving = false;
    if (b->dead || b->state != B_RESOLVE || status < 0) {
        if (!b->dead && b->state == B_RESOLVE)
            drop(b, uv_strerror(status));
        uv_freeaddrinfo(res);
        bool dead = b->dead;
        bot_release(b);
        if (!dead)
            arm(b);
        return;
    }
    b->addrs = b->addr_next = res;
    b->pending--; /* the lookup's count (the bot is alive); the connection takes one */
    try_connect(b);
}

/* A connection to the next address of the lookup (IPv6 and IPv4 of a name, say). */
static void try_connect(struct bot *b)
{
    const struct addrinfo *ai = b->addr_next;
    b->addr_next = ai->ai_next;
    uv_tcp_init(b->ri->loop, &b->tcp);
    b->tcp.data = b;
    b->tcp_open = true;
    b->pending++;
    b->state = B_CONNECT;
    b->conn.data = b;
    int rc = uv_tcp_connect(&b->conn, &b->tcp, ai->ai_addr, connect_cb);
    if (rc < 0 && b->addr_next != NULL) {
        b->state = B_NEXT;
        close_tcp(b);
    } else if (rc < 0) {
        drop(b, uv_strerror(rc));
    }
}

static void connect_now(struct bot *b)
{
    char port[8];
    snprintf(port, sizeof port, "%d", b->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    b->gai.data = b;
    b->state = B_RESOLVE;
    b->deadline = uv_now(b->ri->loop) + REP_IRC_REGISTER_MS;
    log_info("%s: connecting to %s:%d", b->name, b->host, b->port);
    int rc = uv_getaddrinfo(b->ri->loop, &b->gai, resolved_cb, b->host, port, &hints);
    if (rc < 0) {
        drop(b, uv_strerror(rc));
        return;
    }
    b->resolving = true;
    b->pending++;
}

/* ------------------------------------------------------------ the timer */

static void keepalive(struct bot *b, uint64_t now)
{
    if (b->ping_sent && now - b->ping_at >= REP_IRC_IDLE_MS) {
        drop(b, "no answer to PING");
        return;
    }
    if (!b->ping_sent && now - b->last_rx >= REP_IRC_IDLE_MS) {
        send_line(b, "PING :%s", b->nick_now);
        b->ping_sent = true;
        b->ping_at = now;
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct bot *b = t->data;
    uint64_t now = uv_now(b->ri->loop);
    if (b->dead)
        return;
    if (b->state == B_WAIT && now >= b->deadline && !b->tcp_open && !b->resolving)
        connect_now(b);
    else if (b->state > B_WAIT && b->state < B_READY && now >= b->deadline)
        drop(b, "no registration within the time allowed");
    else if (b->state == B_READY)
        keepalive(b, now);
    if (b->state == B_READY)
        flush(b);
    else
        arm(b);
}

/* The timer, at the next thing that is due. */
static void arm(struct bot *b)
{
    if (b->dead)
        return;
    uint64_t now = uv_now(b->ri->loop), at;
    if (b->state == B_WAIT && (b->tcp_open || b->resolving))
        return; /* the close or lookup callback arms it again */
    if (b->state == B_READY) {
        at = (b->ping_sent ? b->ping_at : b->last_rx) + REP_IRC_IDLE_MS;
        if (b->q.n > 0) {
            uint64_t tok = now + rep_irc_queue_wait(&b->q, now);
            at = tok < at ? tok : at;
        }
    } else {
        at = b->deadline;
    }
    uv_timer_start(&b->timer, timer_cb, at > now ? at - now : 0, 0);
}

/* ------------------------------------------------------------ the set */

struct rep_irc *rep_irc_new(uv_loop_t *loop)
{
    struct rep_irc *ri = xcalloc(1, sizeof *ri);
    ri->loop = loop;
    return ri;
}

static void take_queue(struct bot *to, struct bot *from)
{
    while (from->q.n > 0) {
        rep_irc_queue_push(&to->q, from->q.lines[from->q.head]);
        from->q.head = (from->q.head + 1) % REP_IRC_QUEUE_MAX;
        from->q.n--;
    }
}

/* The bot of this configuration: the running one when nothing changed, else a new one
   (taking what the old one of that name had not said yet). */
static struct bot *bot_for(struct rep_irc *ri, const struct cfg_irc *c, struct bot **old)
{
    char *sig = signature(c);
    struct bot *same = NULL;
    for (struct bot **pp = old; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->sig, sig) == 0) {
            same = *pp;
            *pp = same->next;
            break;
        }
    free(sig);
    if (same != NULL) {
        authz_copy(same, c); /* Buildbot restarts the bot for it; nothing else changes */
        return same;
    }
    same = bot_new(ri, c);
    for (struct bot *o = *old; o != NULL; o = o->next)
        if (strcmp(o->name, same->name) == 0)
            take_queue(same, o);
    arm(same);
    return same;
}

void rep_irc_reconfig(struct rep_irc *ri, const struct cfg *cfg)
{
    struct bot *old = ri->bots, *kept = NULL;
    ri->bots = NULL;
    for (size_t i = 0; i < cfg->n_ircs; i++) {
        struct bot *b = bot_for(ri, &cfg->ircs[i], &old);
        b->next = kept;
        kept = b;
    }
    ri->bots = kept;
    while (old != NULL) {
        struct bot *b = old;
        old = b->next;
        bot_kill(b, "buildmaster reconfigured: bot disconnecting");
    }
}

void rep_irc_set_state(struct rep_irc *ri, rep_irc_state_load load, rep_irc_state_save save,
                       void *arg)
{
    ri->load = load;
    ri->save = save;
    ri->state_arg = arg;
}

void rep_irc_set_handler(struct rep_irc *ri, rep_irc_handler h, void *arg)
{
    ri->handler = h;
    ri->handler_arg = arg;
}

void rep_irc_free(struct rep_irc *ri)
{
    if (ri == NULL)
        return;
    while (ri->bots != NULL) {
        struct bot *b = ri->bots;
        ri->bots = b->next;
        bot_kill(b, "buildmaster stopping");
    }
    tls_ctx_free(ri->tls); /* the sessions hold their own references */
    free(ri);
}
