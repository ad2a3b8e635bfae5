/*
 * Private to src/workers: the registry and session structs shared by
 * registry.c (listener, bookkeeping, reconfig) and session.c (one connection).
 */
#ifndef BBM_WORKERS_INTERNAL_H
#define BBM_WORKERS_INTERNAL_H

#include "tls/tls.h"
#include "workers/workers.h"

/* What one address may do on the worker port (guard.c); the port's totals are in workers.h. */
#define WK_MAX_PRELOGIN_PER_ADDR 16 /* connections not logged in yet, from one address */
#define WK_MAX_ADDRS 1024           /* addresses remembered (pre-login counts, failures, known) */
#define WK_LOGIN_BURST 10           /* failed logins an address may make at once */
#define WK_LOGIN_REFILL_S 30        /* then one more every this many seconds */
#define WK_LOG_INTERVAL_S 10        /* what is not logged one by one is summed up this often */
#define WK_LOG_LINES 20             /* failed logins logged one by one per interval */
#define WK_LOG_ADDRS 10             /* addresses named in one summary; the rest are summed */

/* An address as the guard counts it: IPv4, or the /64 of an IPv6 address. */
struct guard_key {
    unsigned char b[16];
};

/* Why the guard turned a connection away, for the summary. */
enum guard_event {
    GUARD_REFUSED_ADDR,   /* its address had WK_MAX_PRELOGIN_PER_ADDR waiting already */
    GUARD_REFUSED_FULL,   /* the port was full and nothing could make room */
    GUARD_EVICTED,        /* closed unlogged to make room for a newer connection */
    GUARD_TIMED_OUT,      /* did not log in within WK_LOGIN_TIMEOUT */
    GUARD_PROTOCOL_ERROR, /* sent something a login does not contain */
    GUARD_UNREAD,         /* left WK_LOGIN_MAX_WRITE_QUEUE bytes of answers unread */
    GUARD_ACCEPT_ERROR,   /* accept() failed (file descriptors?) */
    GUARD_N_EVENTS,
};

/* What to do with a failed login (guard_failed). */
enum guard_verdict {
    GUARD_LOG,      /* log it */
    GUARD_LOG_LAST, /* log it, and that its address is now over the rate */
    GUARD_QUIET,    /* counted for the summary */
};

struct guard_addr {
    struct guard_key key;
    char text[48];      /* as logged */
    bool used;          /* the slot holds an address */
    bool known;         /* a worker or a change client logged in from it */
    uint32_t prelogin;  /* its connections not logged in yet */
    double tokens;      /* failed logins it may still make */
    uint64_t tokens_ms; /* when `tokens` was brought up to date */
    uint32_t failed;    /* failed logins not logged one by one since the last summary */
    uint64_t used_ms;   /* its last connection or login */
};

/* The worker port's admission and login accounting, in the registry. */
struct guard {
    struct guard_addr *addrs;        /* WK_MAX_ADDRS slots, made on first use */
    struct session *oldest, *newest; /* connections not logged in yet, oldest first */
    size_t prelogin;
    size_t open;            /* connections not closing */
    size_t max_connections; /* all connections at once */
    size_t max_prelogin;    /* of which not logged in */
    size_t change_clients;  /* sessions of sendchange clients */
    uv_timer_t timer;       /* the next summary */
    bool timer_on;
    uint64_t since_ms; /* the first event the next summary covers */
    uint32_t events[GUARD_N_EVENTS];
    uint64_t forgotten_failed; /* failed logins of addresses forgotten before the summary */
    size_t forgotten_addrs;
    const char *accept_error;
    uint32_t lines;    /* failed logins logged one by one in this interval */
    uint64_t lines_ms; /* when the interval began */
};

enum session_state {
    SESSION_LOGIN,     /* negotiating and logging in */
    SESSION_ATTACHING, /* password accepted, attach sequence running */
    SESSION_ATTACHED,  /* login answered; the worker is usable */
    SESSION_CHANGES,   /* a change source's client (sendchange) logged in: it calls addChange */
    SESSION_CLOSING,   /* uv_close requested */
};

/* What an object exported on a connection is, other than the perspective (the session). */
enum session_obj {
    SESSION_OBJ_COMMAND = 0x636d64,  /* a struct wk_command */
    SESSION_OBJ_TRANSFER = 0x786672, /* a command's writer or reader (commands.c) */
};

/* A builder on this worker: the name and builddir sent, the worker's object for it. */
struct session_builder {
    char *name;
    char *builddir;
    uint32_t luid; /* the WorkerForBuilder reference; 0 until setBuilderList answered */
};

struct session {
    uv_tcp_t tcp;
    struct guard_key addr;               /* where it comes from (guard.c) */
    bool addr_known;                     /* a login succeeded from there before this connection */
    bool prelogin;                       /* counted by the guard as not logged in yet */
    struct session *pre_prev, *pre_next; /* in the guard's queue while `prelogin` */
    bool change_client;                  /* counted among the guard's change clients */
    uv_timer_t timer;                    /* login timeout, then the master's keepalive */
    uv_timer_t ping_timer;               /* the liveness check (ping.c): next ping, or timeout */
    int ping_interval;                   /* seconds the ping timer runs with; 0: off */
    int ping_timeout;                    /* seconds the ping out has to be answered */
    bool ping_waiting;                   /* a ping is out */
    bool ping_last_chance;               /* its timeout fired once: the next loop turn decides */
    struct wk_registry *reg;
    struct session *next;
    struct pb_broker *broker;
    enum session_state state;
    char peer[64];
    char *name;              /* the worker's name, once logged in */
    uint32_t mind;           /* the worker's Bot object */
    uint32_t perspective;    /* our object the worker calls keepalive/shutdown on */
    struct pb_call *respond; /* the login answer, held during attach */
    struct pb_value *info;   /* getWorkerInfo's answer (or the 0.8 equivalent) */
    struct session_builder *builders;
    size_t n_builders;
    struct wk_command *commands; /* running on this worker (commands.c) */
    bool builder_list_pending;   /* a setBuilderList is in flight */
    bool builder_list_stale;     /* the config changed while it was */
    bool graceful_shutdown;      /* the worker asked to be shut down */
    bool close_after_receive;    /* a callback asked to drop the connection */
    bool in_receive;
    char *close_reason;
    uint64_t id;            /* unique in this process, for lookups across callbacks */
    uint64_t duplicate_of;  /* a newer login waits for this session's ping answer */
    bool waiting_duplicate; /* this login waits for an older session's answer */
    size_t prints_pending;  /* per-builder "attached" prints before the login answer */
    int handles_open;       /* tcp + timer + ping_timer; freed when all are closed */
    size_t writing;         /* bytes of writes libuv has not called back for yet */
    struct tls_conn *tls;   /* on a TLS listener's connection; NULL for plain TCP */
};

/* A builder that running builds keep in a worker's builder list (wk_build_start). */
struct hold {
    char *worker, *builder, *builddir;
    int builds;
    struct hold *next;
};

struct wk_registry {
    uv_loop_t *loop;
    const struct cfg *cfg;
    uv_tcp_t *listener; /* NULL when not listening */
    int listeners_open; /* listener handles not yet closed (a reconfig may swap them) */
    char *listen_iface;
    int listen_port;
    struct tls_ctx *tls; /* "ssl:" listeners: new connections speak TLS with it */
    bool closing;
    struct wk_events events;
    struct session *sessions;
    size_t n_sessions;
    struct hold *holds;
    uint64_t next_id;
    struct guard guard;
    int timers_open; /* the guard's timer, until closed */
};

/* session.c */
void session_start(struct wk_registry *r, struct session *s);
void session_close(struct session *s, const char *why);
void session_update_builders(struct session *s);
void session_free_builders(struct session_builder *b, size_t n);
/* The (name, builddir) pairs worker `name` is to have: those the config assigns to it,
   then those its running builds hold that the config no longer does. */
size_t session_config_builders(const struct wk_registry *r, const char *name,
                               struct session_builder **out);

/* ping.c: the liveness check (bbm.worker's ping_interval), from the attach on. */
void session_ping_start(struct session *s);
/* A reconfig: the check follows the worker's new ping_interval. */
void session_ping_reconfig(struct session *s);

/* commands.c */
/* A call on a command or on its transfer object. */
void session_object_call(struct session *s, void *obj, struct pb_call *call);
/* Completes every running command with a lost-connection failure. */
void session_commands_lost(struct session *s);

/* guard.c */
/* The peer of an accepted connection as a key, and "host:port" for the log; -1 if unknown. */
int guard_peer(uv_tcp_t *tcp, struct guard_key *key, char *peer, size_t size);
/*
 * Admits a new connection from s->addr, closing the oldest connection that
 * has not logged in if the port is full and that makes room; false: refuse
 * it (counted for the summary).
 */
bool guard_admit(struct wk_registry *r, struct session *s);
/* The session is no longer waiting to log in (it logged in). */
void guard_release(struct wk_registry *r, struct session *s);
/* The session is closing: it no longer counts at all. */
void guard_closed(struct wk_registry *r, struct session *s);
/* True if its address may try a password now; false (counted) while it is over the rate. */
bool guard_may_try(struct wk_registry *r, struct session *s);
/* A failed login from the session's address: whether to log it. */
enum guard_verdict guard_failed(struct wk_registry *r, struct session *s);
/* The session's address as the guard names it (IPv4, or an IPv6 /64). */
const char *guard_addr_text(struct wk_registry *r, struct session *s);
/* A login succeeded from the session's address: it is known from now on. */
void guard_logged_in(struct wk_registry *r, struct session *s);
/* Counts a sendchange client's session; false when WK_MAX_CHANGE_CLIENTS are connected. */
bool guard_change_client(struct wk_registry *r, struct session *s);
/* Counts an event for the next summary. */
void guard_count(struct wk_registry *r, enum guard_event ev, const char *detail);
void guard_init(struct wk_registry *r);
/* Logs what is pending and closes the timer (the registry is going). */
void guard_close(struct wk_registry *r);

/* registry.c */
void registry_remove(struct wk_registry *r, struct session *s);
/* Frees the registry if it is being freed and nothing of it is left open. */
void registry_maybe_free(struct wk_registry *r);
struct session *registry_find_attached(struct wk_registry *r, const char *name,
                                       const struct session *except);
struct session *registry_find_id(struct wk_registry *r, uint64_t id);
/* A build of `builder` (its builddir on the worker) starts on `worker`: the builder stays. */
void registry_hold(struct wk_registry *r, const char *worker, const char *builder,
                   const char *builddir);

#endif
