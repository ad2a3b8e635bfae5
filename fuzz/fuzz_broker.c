/*
 * libFuzzer target for a PB broker as a worker port's server sees its peer:
 * the input's bytes arrive as from the network (in pieces whose size the
 * first byte picks), either on a fresh connection that has not logged in
 * (pb_limits_login) or after a client broker logged in with the right
 * password and the server asked it two questions (pb_limits_session, and
 * request ids 1 and 2 waiting for an answer, so "answer" and "error" reach
 * their handlers).  The application callbacks answer, fail or hold calls the
 * way a session does.  With bit 0x40 of the first byte the input is a
 * hostile master instead, as bbworker meets one: a client broker that took a
 * real server's dialect offer and sent its login gets the bytes (answers and
 * errors to its login and respond, calls on its Bot).  Whatever the bytes,
 * the broker must end in a protocol error or keep going, within its limits
 * and without leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb/pb.h"

struct peer {
    struct pb_broker *b;
    struct buf out; /* what the broker sent, until the other side takes it */
    bool logged_in;
    uint32_t mind;
    struct pb_call *respond;
    int obj; /* the object exported after login */
};

static void send_cb(void *ctx, const char *data, size_t len)
{
    struct peer *p = ctx;
    if (buf_add(&p->out, data, len) != 0)
        buf_reset(&p->out); /* a sink: only the handshake is read back */
}

/* Answers with the arguments, fails, or holds the call for pb_broker_free. */
static void call_cb(void *ctx, struct pb_call *call)
{
    (void)ctx;
    if (strcmp(call->method, "hold") == 0)
        return;
    if (strcmp(call->method, "fail") == 0) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error, "failed %s", call->method);
        return;
    }
    pb_call_answer(call, pb_value_dup(call->args));
}

static const char *password_cb(void *ctx, const char *username)
{
    (void)ctx;
    return strcmp(username, "w1") == 0 ? "pass1" : NULL;
}

static void login_cb(void *ctx, const char *username, uint32_t mind, struct pb_call *respond)
{
    struct peer *p = ctx;
    (void)username;
    p->mind = mind;
    p->respond = respond;
}

static void ignore_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    (void)arg;
    (void)result;
    (void)failure;
}

static const struct pb_broker_ops server_ops = {
    .send = send_cb, .call = call_cb, .password = password_cb, .login = login_cb};
static const struct pb_broker_ops client_ops = {.send = send_cb, .call = call_cb};

/* Moves what `from` sent to `to`; -1 on a protocol error. */
static int deliver(struct peer *from, struct peer *to)
{
    char *cause = NULL;
    int rc = 0;
    if (from->out.len > 0) {
        struct buf in = from->out;
        buf_init(&from->out, 1 << 20);
        rc = pb_broker_receive(to->b, in.data, in.len, &cause);
        buf_free(&in);
    }
    free(cause);
    return rc;
}

/* Logs a client in to the server, then has the server call the client's mind twice. */
static int log_in(struct peer *srv)
{
    struct peer cli = {0};
    char *cause = NULL;
    int rc = -1;
    buf_init(&cli.out, 1 << 20);
    cli.b = pb_broker_new(false, &client_ops, &cli);
    if (deliver(srv, &cli) != 0)
        goto out;
    uint32_t mind = pb_broker_export(cli.b, &cli);
    if (pb_broker_login(cli.b, "w1", "pass1", mind, ignore_cb, NULL, &cause) != 0)
        goto out;
    for (int i = 0; i < 3 && srv->respond == NULL; i++) {
        if (deliver(&cli, srv) != 0 || deliver(srv, &cli) != 0)
            goto out;
    }
    if (srv->respond == NULL)
        goto out;
    pb_call_answer(srv->respond, pb_remote(pb_broker_export(srv->b, &srv->obj)));
    srv->respond = NULL;
    for (int i = 0; i < 2; i++)
        pb_broker_call(srv->b, srv->mind, "print", NULL, NULL, ignore_cb, NULL, &cause);
    srv->logged_in = true;
    rc = 0;
out:
    free(cause);
    pb_broker_free(cli.b);
    buf_free(&cli.out);
    return rc;
}

/* Feeds the input to a client broker that sent its login, as a master would answer. */
static void as_master(const uint8_t *data, size_t size, size_t piece)
{
    struct peer srv = {0}, cli = {0};
    char *cause = NULL;
    buf_init(&srv.out, 1 << 20);
    buf_init(&cli.out, 1 << 20);
    srv.b = pb_broker_new(true, &server_ops, &srv);
    cli.b = pb_broker_new(false, &client_ops, &cli);
    if (deliver(&srv, &cli) != 0)
        abort(); /* a real dialect offer must be taken */
    uint32_t mind = pb_broker_export(cli.b, &cli);
    if (pb_broker_login(cli.b, "w1", "pass1", mind, ignore_cb, NULL, &cause) != 0)
        abort();
    buf_reset(&cli.out);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (pb_broker_receive(cli.b, data + off, n, &cause) != 0)
            break;
        buf_reset(&cli.out);
    }
    free(cause);
    pb_broker_free(cli.b);
    pb_broker_free(srv.b);
    buf_free(&cli.out);
    buf_free(&srv.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool after_login = data[0] & 0x80;
    size_t piece = 1 + (data[0] & 0x3f);
    if (data[0] & 0x40) {
        as_master(data + 1, size - 1, piece);
        return 0;
    }
    data++, size--;
    struct peer srv = {0};
    buf_init(&srv.out, 1 << 20);
    srv.b = pb_broker_new(true, &server_ops, &srv);
    if (after_login && log_in(&srv) != 0)
        abort(); /* a correct login must always succeed */
    buf_reset(&srv.out);
    char *cause = NULL;
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (pb_broker_receive(srv.b, data + off, n, &cause) != 0)
            break;
        buf_reset(&srv.out);
    }
    free(cause);
    if (srv.respond != NULL) /* the input logged in itself */
        pb_call_fail_with(srv.respond, PB_ERR_UNAUTHORIZED, pb_parents_unauthorized, "%s", "");
    pb_broker_free(srv.b);
    buf_free(&srv.out);
    return 0;
}
