/*
 * What the files of bbworker share: the running worker (struct bbw), its
 * builders and the connection of the moment.  session.c owns the connection
 * and the Bot object; command.c runs the commands of one builder.
 */
#ifndef BBW_INTERNAL_H
#define BBW_INTERNAL_H

#include <uv.h>

#include "pb/pb.h"
#include "worker.h"

#define BBW_MAX_BUILDERS 4096
#define BBW_INFO_MAX (64 * 1024) /* bytes of one info/ file sent to the master */
#define BBW_SEND_HIGH (4u << 20) /* bytes queued on the socket before a child's output waits */

struct bbw_cmd;

/* One WorkerForBuilder: a builder name, its directory and the command it runs. */
struct bbw_builder {
    struct bbw *w;
    char *name;
    char *builddir; /* relative to the worker's basedir, as the master sent it */
    uint32_t luid;  /* exported on the current connection; 0 = not yet */
    struct bbw_cmd *cmd;
};

struct bbw_conn;

struct bbw {
    uv_loop_t *loop;
    const struct bbw_tac *tac;
    const char *dir;
    struct bbw_conn *conn; /* the connection of the moment, or NULL */
    struct bbw_builder **builders;
    size_t nbuilders;
    uv_timer_t retry;
    uv_timer_t keepalive;
    uv_signal_t sigterm, sigint;
    unsigned attempts; /* failed attempts since the last login */
    bool stopping;
    int exit_rc;
};

/* True while a connection is logged in and can carry calls. */
bool bbw_connected(const struct bbw *w);
/* The broker of the current connection (NULL when none). */
struct pb_broker *bbw_broker(const struct bbw *w);
/* Bytes waiting to be written to the master on the current connection. */
size_t bbw_send_queued(const struct bbw *w);
/* Runs `cb(arg)` once the send queue drains below BBW_SEND_HIGH (or the connection goes). */
void bbw_on_drain(struct bbw *w, void (*cb)(void *arg), void *arg);

/* command.c: the builder's calls startCommand / interruptCommand. */
void bbw_cmd_start(struct bbw_builder *b, struct pb_call *call);
void bbw_cmd_interrupt(struct bbw_builder *b, struct pb_call *call);
/* The connection is gone: kill the builder's command without reporting. */
void bbw_cmd_abandon(struct bbw_builder *b);
/* The names of the commands implemented, and their version, for worker_commands. */
extern const char *const bbw_cmd_names[];
#define BBW_CMD_VERSION "3.1"

#endif
