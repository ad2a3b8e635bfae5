/*
 * Private to src/workers: the registry and session structs shared by
 * registry.c (listener, bookkeeping, reconfig) and session.c (one connection).
 */
#ifndef BBM_WORKERS_INTERNAL_H
#define BBM_WORKERS_INTERNAL_H

#include "workers/workers.h"

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
    uv_timer_t timer; /* login timeout, then the master's keepalive */
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
    int handles_open;       /* tcp + timer; freed when both are closed */
};

struct wk_registry {
    uv_loop_t *loop;
    const struct cfg *cfg;
    uv_tcp_t *listener; /* NULL when not listening */
    int listeners_open; /* listener handles not yet closed (a reconfig may swap them) */
    char *listen_iface;
    int listen_port;
    bool closing;
    struct wk_events events;
    struct session *sessions;
    size_t n_sessions;
    uint64_t next_id;
};

/* session.c */
void session_start(struct wk_registry *r, struct session *s);
void session_close(struct session *s, const char *why);
void session_update_builders(struct session *s);
void session_free_builders(struct session_builder *b, size_t n);
/* The (name, builddir) pairs the config assigns to worker `name`. */
size_t session_config_builders(const struct cfg *cfg, const char *name,
                               struct session_builder **out);

/* commands.c */
/* A call on a command or on its transfer object. */
void session_object_call(struct session *s, void *obj, struct pb_call *call);
/* Completes every running command with a lost-connection failure. */
void session_commands_lost(struct session *s);

/* registry.c */
void registry_remove(struct wk_registry *r, struct session *s);
struct session *registry_find_attached(struct wk_registry *r, const char *name,
                                       const struct session *except);
struct session *registry_find_id(struct wk_registry *r, uint64_t id);

#endif
