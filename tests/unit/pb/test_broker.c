/*
 * Unit tests for the PB broker and cred login (src/pb/broker.c, login.c).
 *
 * Three set-ups: a server and a client broker wired together in memory (what
 * one sends is queued and fed to the other by pump(), so callbacks never
 * recurse into the peer); a lone server fed hand-made bytes, for protocol
 * errors; and replays of the captured Buildbot sessions, where the worker's
 * real bytes are fed to a server broker in the captured segment sizes (or in
 * small random pieces) while the test plays the master's part from the
 * captured master bytes.  With the captured challenge injected, the bytes the
 * broker sends must equal the real master's, byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb/pb.h"
#include "pb/pb_internal.h"
#include "util/util.h"

#define FIXTURES BBM_SHARED_DIR "/fixtures/pb"
#define MAX_REC 64
#define MAX_ANSWERS 64

static const char *const unauthorized_parents[] = {"twisted.cred.error.UnauthorizedLogin",
                                                   "twisted.cred.error.LoginFailed",
                                                   "twisted.cred.error.Unauthorized",
                                                   "builtins.Exception",
                                                   "builtins.BaseException",
                                                   "builtins.object",
                                                   NULL};
static const char *const value_error_parents[] = {
    "builtins.ValueError", "builtins.Exception", "builtins.BaseException", "builtins.object", NULL};

/* ------------------------------------------------------------ recording peers */

/* What an outgoing call got back. */
struct answer {
    bool done;
    struct pb_value *result;
    struct pb_value *failure;
};

/* One end of a connection, recording what its broker reports. */
struct side {
    struct pb_broker *b;
    struct side *peer;
    struct buf sent;  /* every byte this side sent */
    size_t delivered; /* how much of it the peer has received */
    bool ready;
    struct pb_call *calls[MAX_REC]; /* incoming calls not yet answered */
    size_t n_calls;
    int logins;
    char *login_user;
    uint32_t login_mind;
    struct pb_call *respond;
    uint32_t released[MAX_REC];
    void *released_obj[MAX_REC];
    size_t n_released;
};

static void side_send(void *ctx, const char *data, size_t len)
{
    struct side *s = ctx;
    assert_int_equal(buf_add(&s->sent, data, len), 0);
}

static void side_call(void *ctx, struct pb_call *call)
{
    struct side *s = ctx;
    assert_true(s->n_calls < MAX_REC);
    s->calls[s->n_calls++] = call;
}

static const char *side_password(void *ctx, const char *username)
{
    (void)ctx;
    return util_streq(username, "w1") ? "pass1" : NULL;
}

static void side_login(void *ctx, const char *username, uint32_t mind, struct pb_call *respond)
{
    struct side *s = ctx;
    s->logins++;
    free(s->login_user);
    s->login_user = xstrdup(username);
    s->login_mind = mind;
    s->respond = respond;
}

static void side_ready(void *ctx)
{
    struct side *s = ctx;
    s->ready = true;
}

static void side_released(void *ctx, uint32_t luid, void *obj)
{
    struct side *s = ctx;
    assert_true(s->n_released < MAX_REC);
    s->released_obj[s->n_released] = obj;
    s->released[s->n_released++] = luid;
}

static const struct pb_broker_ops side_ops = {
    .send = side_send,
    .call = side_call,
    .password = side_password,
    .login = side_login,
    .ready = side_ready,
    .released = side_released,
};

static void side_open(struct side *s, bool server)
{
    memset(s, 0, sizeof *s);
    buf_init(&s->sent, 0);
    s->b = pb_broker_new(server, &side_ops, s);
}

static void side_close(struct side *s)
{
    pb_broker_free(s->b);
    s->b = NULL;
    buf_free(&s->sent);
    free(s->login_user);
}

/* Removes and returns the recorded incoming call with this request id. */
static struct pb_call *take_call(struct side *s, uint32_t reqid)
{
    if (s->respond != NULL && s->respond->reqid == reqid) {
        struct pb_call *c = s->respond;
        s->respond = NULL;
        return c;
    }
    for (size_t i = 0; i < s->n_calls; i++) {
        struct pb_call *c = s->calls[i];
        if (c->reqid != reqid)
            continue;
        memmove(&s->calls[i], &s->calls[i + 1], (s->n_calls - i - 1) * sizeof *s->calls);
        s->n_calls--;
        return c;
    }
    return NULL;
}

static void answer_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct answer *a = arg;
    assert_false(a->done);
    a->done = true;
    a->result = result != NULL ? pb_value_dup(result) : NULL;
    a->failure = failure != NULL ? pb_value_dup(failure) : NULL;
}

static void answer_clear(struct answer *a)
{
    pb_value_free(a->result);
    pb_value_free(a->failure);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------ two brokers in memory */

struct pair {
    struct side srv, cli;
};

/* Delivers what each side sent to the other until both are quiet. */
static int pump(struct pair *p, char **cause)
{
    for (;;) {
        struct side *from = p->srv.delivered < p->srv.sent.len   ? &p->srv
                            : p->cli.delivered < p->cli.sent.len ? &p->cli
                                                                 : NULL;
        if (from == NULL)
            return 0;
        size_t n = from->sent.len - from->delivered;
        char *copy = xmalloc(n);
        memcpy(copy, from->sent.data + from->delivered, n);
        from->delivered += n;
        int rc = pb_broker_receive(from->peer->b, copy, n, cause);
        free(copy);
        if (rc != 0)
            return rc;
    }
}

static void pump_ok(struct pair *p)
{
    char *cause = NULL;
    int rc = pump(p, &cause);
    if (rc != 0)
        fail_msg("receive failed: %s", cause);
    free(cause);
}

static void pair_open(struct pair *p)
{
    side_open(&p->srv, true);
    side_open(&p->cli, false);
    p->srv.peer = &p->cli;
    p->cli.peer = &p->srv;
    pump_ok(p);
    assert_true(p->cli.ready);
}

/* A pair whose client counts as logged in: the server holds it to pb_limits_session. */
static void pair_open_trusted(struct pair *p)
{
    pair_open(p);
    pb_broker_set_limits(p->srv.b, &pb_limits_session);
}

static void pair_close(struct pair *p)
{
    side_close(&p->cli);
    side_close(&p->srv);
}

/* Makes a call that must be accepted for sending. */
static void call_ok(struct side *s, uint32_t luid, const char *method, struct pb_value *args,
                    struct pb_value *kwargs, struct answer *a)
{
    char *cause = NULL;
    int rc = pb_broker_call(s->b, luid, method, args, kwargs, answer_cb, a, &cause);
    if (rc != 0)
        fail_msg("call %s failed: %s", method, cause);
}

/* ------------------------------------------------------------ checking values and bytes */

static const struct pb_value *state_of(const struct pb_value *failure)
{
    assert_non_null(failure);
    assert_int_equal(failure->kind, PB_COPY);
    return failure->u.copy.state;
}

static void assert_parents(const struct pb_value *failure, const char *const *want)
{
    const struct pb_value *parents = pb_dict_get(state_of(failure), "parents");
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    assert_int_equal(pb_len(parents), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pb_item(parents, i)->kind, PB_TEXT);
        assert_string_equal(pb_str(pb_item(parents, i)), want[i]);
    }
}

static const char *failure_value(const struct pb_value *failure)
{
    const char *s = pb_str(pb_dict_get(state_of(failure), "value"));
    assert_non_null(s);
    return s;
}

static size_t unhex(const char *hex, char *out, size_t max)
{
    size_t n = 0;
    unsigned int byte;
    int used;
    while (sscanf(hex, " %2x%n", &byte, &used) == 1) {
        assert_true(n < max);
        out[n++] = (char)byte;
        hex += used;
    }
    return n;
}

static void assert_bytes(const char *got, size_t got_len, const char *want, size_t want_len)
{
    if (got_len == want_len && memcmp(got, want, want_len) == 0)
        return;
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    fail_msg("bytes differ at offset %zu (lengths: got %zu, want %zu; got %02x, want %02x)", i,
             got_len, want_len, i < got_len ? (unsigned char)got[i] : 0,
             i < want_len ? (unsigned char)want[i] : 0);
}

static void assert_hex(const char *got, size_t got_len, const char *hex)
{
    char want[256];
    size_t n = unhex(hex, want, sizeof want);
    assert_bytes(got, got_len, want, n);
}

/* Feeds hand-made bytes to a broker; returns what pb_broker_receive returned. */
static int inject(struct side *s, const char *hex, char **cause)
{
    char bytes[256];
    size_t n = unhex(hex, bytes, sizeof bytes);
    return pb_broker_receive(s->b, bytes, n, cause);
}

/* Every banana expression in a byte range, decoded; returns how many. */
static size_t decode_all(const char *data, size_t len, struct pb_value **out, size_t max)
{
    struct pb_decoder *d = pb_decoder_new(NULL);
    char *cause = NULL;
    size_t n = 0;
    assert_int_equal(pb_decoder_feed(d, data, len, &cause), 0);
    for (;;) {
        struct pb_value *v = NULL;
        int rc = pb_decoder_next(d, &v, &cause);
        if (rc < 0)
            fail_msg("cannot decode: %s", cause);
        if (rc == 0)
            break;
        assert_true(n < max);
        out[n++] = v;
    }
    pb_decoder_free(d);
    return n;
}

static void free_all(struct pb_value **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pb_value_free(v[i]);
}

/* True if a decoded PB message is [kind, n, ...]. */
static bool is_msg(const struct pb_value *tree, const char *kind, int64_t n)
{
    const struct pb_value *k = pb_item(tree, 0), *id = pb_item(tree, 1);
    return k != NULL && k->kind == PB_BYTES && util_streq(k->u.s.data, kind) && id != NULL &&
           id->kind == PB_INT && id->u.i == n;
}

static char *read_fixture(const char *name, size_t *len)
{
    char path[512], *cause = NULL;
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    char *data = util_read_file(path, 1 << 20, len, &cause);
    if (data == NULL)
        fail_msg("%s", cause);
    return data;
}

/* A server broker that has already been sent the client's "pb" and version. */
static void raw_server(struct side *s)
{
    char *cause = NULL;
    side_open(s, true);
    if (inject(s, "02 82 70 62  02 80 13 87 06 81", &cause) != 0)
        fail_msg("negotiation failed: %s", cause);
    buf_reset(&s->sent);
}

/* Logs the client in: exports its mind and runs pb_broker_login. */
static uint32_t start_login(struct pair *p, const char *user, const char *password,
                            struct answer *a)
{
    uint32_t mind = pb_broker_export(p->cli.b, &p->cli);
    char *cause = NULL;
    if (pb_broker_login(p->cli.b, user, password, mind, answer_cb, a, &cause) != 0)
        fail_msg("login failed: %s", cause);
    pump_ok(p);
    return mind;
}

/* ------------------------------------------------------------ negotiation */

static void test_negotiation_bytes(void **state)
{
    (void)state;
    struct pair p;
    size_t m2w_len, w2m_len;
    char *m2w = read_fixture("transcript-master-to-worker.bin", &m2w_len);
    char *w2m = read_fixture("transcript-worker-to-master.bin", &w2m_len);
    side_open(&p.srv, true);
    side_open(&p.cli, false);
    p.srv.peer = &p.cli;
    p.cli.peer = &p.srv;
    assert_hex(p.srv.sent.data, p.srv.sent.len, "02 80 02 82 70 62 04 82 6e 6f 6e 65");
    assert_int_equal(p.cli.sent.len, 0);
    assert_false(p.cli.ready);

    char *cause = NULL;
    assert_int_equal(pb_broker_call(p.cli.b, 0, "login", NULL, NULL, NULL, NULL, &cause), -1);
    assert_non_null(cause);
    free(cause);

    pump_ok(&p);
    assert_true(p.cli.ready);
    /* offer + version from the server, choice + version from the client, as captured */
    assert_bytes(p.srv.sent.data, p.srv.sent.len, m2w, 18);
    assert_bytes(p.cli.sent.data, p.cli.sent.len, w2m, 10);
    pair_close(&p);
    free(m2w);
    free(w2m);
}

static void test_negotiation_errors(void **state)
{
    (void)state;
    static const struct {
        bool server;
        const char *hex;
        const char *what;
    } cases[] = {
        {true, "02 82 70 61", "the dialect \"pa\""},
        {true, "02 80 02 82 70 62 04 82 6e 6f 6e 65", "a list as the dialect choice"},
        {true, "02 82 70 62  02 80 13 87 07 81", "version 7"},
        {true, "02 82 70 62  02 80 1d 87 01 81", "a decref before the version"},
        {false, "01 80 04 82 6e 6f 6e 65", "an offer without pb"},
        {false, "02 82 70 62", "a bare string as the offer"},
        {false, "02 80 02 82 70 62 04 82 6e 6f 6e 65  02 80 13 87 05 81", "version 5"},
    };
    for (size_t i = 0; i < UTIL_NELEM(cases); i++) {
        struct side s;
        char *cause = NULL;
        side_open(&s, cases[i].server);
        int rc = inject(&s, cases[i].hex, &cause);
        if (rc != -1 || cause == NULL)
            fail_msg("%s was accepted", cases[i].what);
        print_message("%s: %s\n", cases[i].what, cause);
        free(cause);
        cause = NULL;
        assert_int_equal(inject(&s, "02 80 13 87 06 81", &cause), -1);
        free(cause);
        side_close(&s);
    }
}

/* The worker sends "pb", its version and its login call in one segment. */
static void test_one_segment(void **state)
{
    (void)state;
    struct side s;
    size_t m2w_len, w2m_len;
    char *m2w = read_fixture("transcript-master-to-worker.bin", &m2w_len);
    char *w2m = read_fixture("transcript-worker-to-master.bin", &w2m_len);
    side_open(&s, true);
    pb_broker_set_challenge(s.b, (const unsigned char *)m2w + 30);
    char *cause = NULL;
    assert_int_equal(pb_broker_receive(s.b, w2m, 38, &cause), 0);
    /* offer, version, then ("tuple", challenge, ["remote", 1]) */
    assert_bytes(s.sent.data, s.sent.len, m2w, 52);
    assert_int_equal(pb_broker_exported(s.b), 1);
    side_close(&s);
    free(m2w);
    free(w2m);
}

/* ------------------------------------------------------------ login */

static void test_login_success(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0}, printed = {0}, kept = {0};
    pair_open(&p);
    uint32_t mind = start_login(&p, "w1", "pass1", &a);
    assert_int_equal(p.srv.logins, 1);
    assert_string_equal(p.srv.login_user, "w1");
    assert_int_equal(p.srv.login_mind, mind);
    assert_non_null(p.srv.respond);
    assert_false(a.done);
    assert_int_equal(pb_broker_exported(p.srv.b), 0); /* the challenger is gone */

    /* While respond is pending the master calls the mind (README surprise 3). */
    call_ok(&p.srv, mind, "print", NULL, pb_dict_set(pb_dict(), "message", pb_text("attached")),
            &printed);
    pump_ok(&p);
    assert_int_equal(p.cli.n_calls, 1);
    struct pb_call *c = take_call(&p.cli, p.cli.calls[0]->reqid);
    assert_string_equal(c->method, "print");
    assert_int_equal(c->luid, mind);
    assert_ptr_equal(c->obj, &p.cli);
    assert_string_equal(pb_str(pb_dict_get(c->kwargs, "message")), "attached");
    pb_call_answer(c, NULL);
    pump_ok(&p);
    assert_true(printed.done);
    assert_int_equal(printed.result->kind, PB_NONE);

    uint32_t perspective = pb_broker_export(p.srv.b, &p.srv);
    pb_call_answer(p.srv.respond, pb_remote(perspective));
    p.srv.respond = NULL;
    pump_ok(&p);
    assert_true(a.done);
    assert_null(a.failure);
    assert_int_equal(a.result->kind, PB_REMOTE);
    assert_int_equal(a.result->u.luid, perspective);

    call_ok(&p.cli, perspective, "keepalive", NULL, NULL, &kept);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 1);
    assert_ptr_equal(p.srv.calls[0]->obj, &p.srv);
    pb_call_answer(take_call(&p.srv, p.srv.calls[0]->reqid), NULL);
    pump_ok(&p);
    assert_true(kept.done);

    /* The client dropped the challenger (luid 1) right after responding. */
    struct pb_value *msgs[16];
    size_t n = decode_all(p.cli.sent.data, p.cli.sent.len, msgs, 16);
    assert_true(n >= 5);
    assert_true(is_msg(msgs[3], "message", 2));
    assert_true(is_msg(msgs[4], "decref", 1));
    free_all(msgs, n);
    answer_clear(&a);
    answer_clear(&printed);
    answer_clear(&kept);
    pair_close(&p);
}

static void check_refused(const char *user, const char *password)
{
    struct pair p;
    struct answer a = {0};
    pair_open(&p);
    uint32_t mind = start_login(&p, user, password, &a);
    assert_int_equal(p.srv.logins, 0);
    assert_true(a.done);
    assert_null(a.result);
    assert_true(pb_failure_is(a.failure, PB_ERR_UNAUTHORIZED));
    assert_parents(a.failure, unauthorized_parents);
    assert_string_equal(failure_value(a.failure), "");
    struct pb_value *type = pb_dict_get(state_of(a.failure), "type");
    assert_int_equal(type->kind, PB_BYTES);
    assert_string_equal(type->u.s.data, PB_ERR_UNAUTHORIZED);

    /* The server dropped the mind, and did so before sending the error. */
    assert_int_equal(p.cli.n_released, 1);
    assert_int_equal(p.cli.released[0], mind);
    assert_int_equal(pb_broker_exported(p.cli.b), 0);
    struct pb_value *msgs[16];
    size_t n = decode_all(p.srv.sent.data, p.srv.sent.len, msgs, 16);
    assert_int_equal(n, 5);
    assert_true(is_msg(msgs[3], "decref", mind));
    assert_true(is_msg(msgs[4], "error", 2));
    free_all(msgs, n);
    assert_int_equal(pb_broker_exported(p.srv.b), 0);
    answer_clear(&a);
    pair_close(&p);
}

static void test_login_wrong_password(void **state)
{
    (void)state;
    check_refused("w1", "wrongpass");
}

static void test_login_unknown_user(void **state)
{
    (void)state;
    check_refused("nobody", "pass1");
}

/* A challenger answers one respond; the next one finds no object. */
static void test_challenger_used_once(void **state)
{
    (void)state;
    struct pair p;
    struct answer login = {0}, first = {0}, second = {0};
    pair_open(&p);
    call_ok(&p.cli, 0, "login", pb_append(pb_tuple(), pb_text("w1")), NULL, &login);
    pump_ok(&p);
    assert_true(login.done);
    const struct pb_value *challenge = pb_item(login.result, 0);
    const struct pb_value *challenger = pb_item(login.result, 1);
    assert_int_equal(challenge->kind, PB_BYTES);
    assert_int_equal(challenge->u.s.len, PB_CHALLENGE_LEN);
    assert_int_equal(challenger->kind, PB_REMOTE);
    uint32_t luid = challenger->u.luid;
    for (int i = 0; i < 2; i++) {
        struct pb_value *args = pb_append(pb_tuple(), pb_bytes("0123456789abcdef", 16));
        call_ok(&p.cli, luid, "respond", pb_append(args, pb_none()), NULL,
                i == 0 ? &first : &second);
    }
    pump_ok(&p);
    assert_true(pb_failure_is(first.failure, PB_ERR_UNAUTHORIZED));
    assert_true(pb_failure_is(second.failure, PB_ERR_PB));
    assert_string_equal(failure_value(second.failure), "Invalid Object ID");
    answer_clear(&login);
    answer_clear(&first);
    answer_clear(&second);
    pair_close(&p);
}

static void test_root_no_such_method(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0}, bad = {0};
    pair_open(&p);
    call_ok(&p.cli, 0, "loginAnonymous", pb_append(pb_tuple(), pb_none()), NULL, &a);
    call_ok(&p.cli, 0, "login", pb_append(pb_tuple(), pb_int(3)), NULL, &bad);
    pump_ok(&p);
    assert_true(pb_failure_is(a.failure, PB_ERR_NOSUCHMETHOD));
    assert_string_equal(failure_value(a.failure), "No such method: remote_loginAnonymous");
    assert_true(pb_failure_is(bad.failure, PB_ERR_PB));
    assert_int_equal(p.srv.n_calls, 0);
    answer_clear(&a);
    answer_clear(&bad);
    pair_close(&p);
}

/* A client has no root object. */
static void test_client_has_no_root(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0};
    pair_open_trusted(&p);
    call_ok(&p.srv, 0, "login", pb_append(pb_tuple(), pb_bytes("w1", 2)), NULL, &a);
    pump_ok(&p);
    assert_true(pb_failure_is(a.failure, PB_ERR_PB));
    assert_string_equal(failure_value(a.failure), "Invalid Object ID");
    answer_clear(&a);
    pair_close(&p);
}

/* ------------------------------------------------------------ calls */

static void test_calls_both_ways(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0}, b = {0};
    int srv_obj, cli_obj;
    pair_open_trusted(&p);
    uint32_t on_srv = pb_broker_export(p.srv.b, &srv_obj);
    uint32_t on_cli = pb_broker_export(p.cli.b, &cli_obj);
    assert_int_equal(on_srv, 1);
    assert_int_equal(on_cli, 1);

    struct pb_value *args = pb_append(pb_append(pb_tuple(), pb_int(1)), pb_text("two"));
    pb_append(args, pb_bytes("three", 5));
    struct pb_value *kwargs = pb_dict_set(pb_dict(), "flag", pb_bool(true));
    pb_dict_set(kwargs, "nothing", pb_none());
    struct pb_value *want_args = pb_value_dup(args), *want_kwargs = pb_value_dup(kwargs);
    call_ok(&p.cli, on_srv, "echo", args, kwargs, &a);
    assert_int_equal(pb_broker_pending(p.cli.b), 1);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 1);
    struct pb_call *c = take_call(&p.srv, 1);
    assert_non_null(c);
    assert_string_equal(c->method, "echo");
    assert_int_equal(c->luid, on_srv);
    assert_ptr_equal(c->obj, &srv_obj);
    assert_true(c->answer_required);
    assert_true(pb_value_equal(c->args, want_args));
    assert_true(pb_value_equal(c->kwargs, want_kwargs));
    pb_call_answer(c, pb_dict_set(pb_dict(), "sum", pb_int(3)));
    pump_ok(&p);
    assert_true(a.done);
    assert_null(a.failure);
    assert_int_equal(pb_dict_get(a.result, "sum")->u.i, 3);
    assert_int_equal(pb_broker_pending(p.cli.b), 0);

    call_ok(&p.srv, on_cli, "boom", NULL, NULL, &b);
    pump_ok(&p);
    c = take_call(&p.cli, 1);
    assert_non_null(c);
    assert_ptr_equal(c->obj, &cli_obj);
    assert_int_equal(pb_len(c->args), 0);
    assert_int_equal(c->kwargs->kind, PB_DICT);
    assert_int_equal(c->kwargs->u.list.n, 0);
    pb_call_fail(c, pb_failure_new("builtins.ValueError", "boom", value_error_parents));
    pump_ok(&p);
    assert_true(b.done);
    assert_null(b.result);
    assert_true(pb_failure_is(b.failure, "builtins.ValueError"));
    assert_false(pb_failure_is(b.failure, PB_ERR_NOSUCHMETHOD));
    assert_string_equal(failure_value(b.failure), "boom");

    pb_value_free(want_args);
    pb_value_free(want_kwargs);
    answer_clear(&a);
    answer_clear(&b);
    pair_close(&p);
}

/* Three calls in flight at once, answered in another order. */
static void test_pipelined_reordered(void **state)
{
    (void)state;
    struct pair p;
    struct answer a[3] = {0};
    int obj;
    pair_open_trusted(&p);
    uint32_t luid = pb_broker_export(p.srv.b, &obj);
    for (int i = 0; i < 3; i++)
        call_ok(&p.cli, luid, "get", pb_append(pb_tuple(), pb_int(i)), NULL, &a[i]);
    assert_int_equal(pb_broker_pending(p.cli.b), 3);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 3);
    static const uint32_t order[] = {3, 1, 2};
    for (int i = 0; i < 3; i++) {
        struct pb_call *c = take_call(&p.srv, order[i]);
        assert_non_null(c);
        int64_t n = pb_item(c->args, 0)->u.i;
        pb_call_answer(c, pb_int(n * 10));
        pump_ok(&p);
        assert_true(a[order[i] - 1].done);
        assert_int_equal(pb_broker_pending(p.cli.b), 2 - i);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].result->u.i, i * 10);
        answer_clear(&a[i]);
    }
    pair_close(&p);
}

/* Every ["remote", X] sent counts, in calls and in answers; the last decref releases X. */
static void test_refcounts(void **state)
{
    (void)state;
    struct pair p;
    struct answer a[2] = {0}, got = {0};
    int thing, mind_obj;
    pair_open(&p);
    uint32_t x = pb_broker_export(p.srv.b, &thing);
    uint32_t mind = pb_broker_export(p.cli.b, &mind_obj);
    for (int i = 0; i < 2; i++)
        call_ok(&p.srv, mind, "take", pb_append(pb_tuple(), pb_remote(x)), NULL, &a[i]);
    pump_ok(&p);
    assert_int_equal(p.cli.n_calls, 2);
    for (int i = 0; i < 2; i++) {
        struct pb_call *c = take_call(&p.cli, (uint32_t)i + 1);
        assert_int_equal(pb_item(c->args, 0)->kind, PB_REMOTE);
        assert_int_equal(pb_item(c->args, 0)->u.luid, x);
        pb_call_answer(c, NULL);
    }
    /* and once more in an answer */
    call_ok(&p.cli, x, "self", NULL, NULL, &got);
    pump_ok(&p);
    pb_call_answer(take_call(&p.srv, 1), pb_remote(x));
    pump_ok(&p);
    assert_int_equal(got.result->kind, PB_REMOTE);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(p.srv.n_released, 0);
        pb_broker_decref(p.cli.b, x);
        pump_ok(&p);
    }
    assert_int_equal(p.srv.n_released, 1);
    assert_int_equal(p.srv.released[0], x);
    assert_ptr_equal(p.srv.released_obj[0], &thing);
    assert_int_equal(pb_broker_exported(p.srv.b), 0);
    /* one decref too many is ignored (SPEC 7.1), and luids are not reused */
    pb_broker_decref(p.cli.b, x);
    pump_ok(&p);
    assert_int_equal(p.srv.n_released, 1);
    assert_int_equal(pb_broker_export(p.srv.b, &thing), x + 1);
    for (int i = 0; i < 2; i++)
        answer_clear(&a[i]);
    answer_clear(&got);
    pair_close(&p);
}

/* An object never sent is not released by a decref; unexport forgets it at once. */
static void test_unexport(void **state)
{
    (void)state;
    struct side s;
    char *cause = NULL;
    int obj;
    raw_server(&s);
    uint32_t luid = pb_broker_export(s.b, &obj);
    assert_int_equal(luid, 1);
    assert_int_equal(inject(&s, "02 80 1d 87 01 81", &cause), 0);
    assert_int_equal(pb_broker_exported(s.b), 1);
    pb_broker_unexport(s.b, luid);
    assert_int_equal(pb_broker_exported(s.b), 0);
    assert_int_equal(inject(&s, "02 80 1d 87 01 81", &cause), 0);
    assert_int_equal(s.n_released, 0);
    side_close(&s);
}

static void test_decref_unknown_ignored(void **state)
{
    (void)state;
    struct side s;
    char *cause = NULL;
    raw_server(&s);
    assert_int_equal(inject(&s, "02 80 1d 87 63 81", &cause), 0);             /* 99 */
    assert_int_equal(inject(&s, "02 80 1d 87 04 82 72 6f 6f 74", &cause), 0); /* "root" */
    assert_null(cause);
    assert_int_equal(s.sent.len, 0);
    side_close(&s);
}

static void test_result_unknown_reqid(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "03 80 1b 87 2a 81 01 80 01 87", /* ["answer", 42, None] */
        "03 80 1c 87 2a 81 01 80 01 87", /* ["error", 42, None] */
    };
    for (size_t i = 0; i < UTIL_NELEM(cases); i++) {
        struct side s;
        char *cause = NULL;
        raw_server(&s);
        assert_int_equal(inject(&s, cases[i], &cause), -1);
        assert_non_null(cause);
        print_message("%s\n", cause);
        free(cause);
        cause = NULL;
        assert_int_equal(inject(&s, "02 80 1d 87 63 81", &cause), -1);
        free(cause);
        side_close(&s);
    }
}

static void test_invalid_object_id(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0};
    pair_open(&p);
    call_ok(&p.cli, 77, "anything", NULL, NULL, &a);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 0);
    assert_true(pb_failure_is(a.failure, PB_ERR_PB));
    assert_string_equal(failure_value(a.failure), "Invalid Object ID");
    answer_clear(&a);
    pair_close(&p);
}

/* Messages Python would drop the connection for. */
static void test_protocol_errors(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        const char *what;
    } cases[] = {
        {"07 80 1a 87 01 81 04 82 72 6f 6f 74 02 80 07 82 75 6e 69 63 6f 64 65 14 87 01 81 "
         "01 80 0b 87 01 80 05 87",
         "a unicode method name"},
        {"07 80 1a 87 01 81 04 82 72 6f 6f 74 06 82 6c 6f 00 67 69 6e 01 81 01 80 0b 87 01 80 05 "
         "87",
         "a method name with a NUL byte"},
        {"07 80 1a 87 01 81 04 82 72 6f 6f 74 02 82 c3 28 01 81 01 80 0b 87 01 80 05 87",
         "a method name that is not UTF-8"},
        {"07 80 19 87 01 81 04 82 72 6f 6f 74 14 87 01 81 01 80 0b 87 01 80 05 87", "cachemessage"},
        {"02 80 1e 87 01 81", "decache"},
        {"02 80 1f 87 01 81", "uncache"},
        {"02 80 05 82 62 6f 67 75 73 01 81", "an unknown kind"},
        {"02 80 10 82 64 69 64 4e 6f 74 55 6e 64 65 72 73 74 61 6e 64 01 81", "didNotUnderstand"},
        {"01 81", "a top-level integer"},
        {"00 80", "an empty list"},
        {"02 80 01 81 01 81", "a list not starting with a kind"},
        {"02 80 1b 87 01 81", "an answer without a result"},
        {"06 80 1a 87 01 81 04 82 72 6f 6f 74 14 87 01 81 01 80 0b 87", "a short message"},
        {"07 80 1a 87 01 83 04 82 72 6f 6f 74 14 87 01 81 01 80 0b 87 01 80 05 87",
         "a negative request id"},
        {"02 80 13 87 05 81", "version 5"},
        {"02 80 1d 87 01 80 01 87", "a decref of None"},
    };
    for (size_t i = 0; i < UTIL_NELEM(cases); i++) {
        struct side s;
        char *cause = NULL;
        raw_server(&s);
        if (inject(&s, cases[i].hex, &cause) != -1)
            fail_msg("%s was accepted", cases[i].what);
        assert_non_null(cause);
        print_message("%s: %s\n", cases[i].what, cause);
        free(cause);
        assert_int_equal(s.sent.len, 0);
        side_close(&s);
    }
}

/* A call whose arguments use a refused jelly tag is answered with an error. */
static void test_bad_arguments_answered(void **state)
{
    (void)state;
    struct side s;
    char *cause = NULL;
    int obj;
    raw_server(&s);
    pb_broker_export(s.b, &obj);
    /* ["message", 1, 1, "ping", 1, ["tuple", ["module", "os"]], ["dictionary"]] */
    int rc = inject(&s,
                    "07 80 1a 87 01 81 01 81 04 82 70 69 6e 67 01 81 02 80 0b 87 02 80 09 87 02 "
                    "82 6f 73 01 80 05 87",
                    &cause);
    assert_int_equal(rc, 0);
    assert_int_equal(s.n_calls, 0);
    struct pb_value *msgs[4], *failure = NULL;
    size_t n = decode_all(s.sent.data, s.sent.len, msgs, 4);
    assert_int_equal(n, 1);
    assert_true(is_msg(msgs[0], "error", 1));
    assert_int_equal(pb_unjelly(pb_item(msgs[0], 2), PB_MAX_NODES, &failure, &cause), 0);
    assert_true(pb_failure_is(failure, PB_ERR_PB));
    print_message("%s\n", failure_value(failure));
    pb_value_free(failure);
    free_all(msgs, n);
    side_close(&s);
}

/* answerRequired 0: the call is delivered, and nothing is ever sent back. */
static void test_no_answer_required(void **state)
{
    (void)state;
    struct side s;
    char *cause = NULL;
    int obj;
    raw_server(&s);
    pb_broker_export(s.b, &obj);
    int rc = inject(&s,
                    "07 80 1a 87 05 81 01 81 04 82 70 69 6e 67 00 81 01 80 0b 87 01 80 05 87 "
                    "07 80 1a 87 06 81 01 81 04 82 70 69 6e 67 00 81 01 80 0b 87 01 80 05 87",
                    &cause);
    assert_int_equal(rc, 0);
    assert_int_equal(s.n_calls, 2);
    assert_false(s.calls[0]->answer_required);
    assert_int_equal(s.calls[0]->reqid, 5);
    pb_call_answer(take_call(&s, 5), pb_remote(1));
    pb_call_fail(take_call(&s, 6), NULL);
    assert_int_equal(s.sent.len, 0);
    side_close(&s);
}

/* The sender's object table and pending table are bounded. */
static void test_limits(void **state)
{
    (void)state;
    struct pair p;
    char *cause = NULL;
    int obj;
    pair_open_trusted(&p);
    for (uint32_t i = 1; i <= PB_MAX_LOCAL_OBJECTS; i++)
        assert_int_equal(pb_broker_export(p.srv.b, &obj), i);
    assert_int_equal(pb_broker_export(p.srv.b, &obj), 0);
    assert_int_equal(pb_broker_exported(p.srv.b), PB_MAX_LOCAL_OBJECTS);

    /* calls on an object the server does not have, answered with errors */
    for (int i = 0; i < PB_MAX_PENDING; i++)
        assert_int_equal(pb_broker_call(p.cli.b, 99999, "x", NULL, NULL, NULL, NULL, &cause), 0);
    assert_int_equal(pb_broker_call(p.cli.b, 99999, "x", NULL, NULL, NULL, NULL, &cause), -1);
    assert_non_null(cause);
    print_message("%s\n", cause);
    free(cause);
    assert_int_equal(pb_broker_pending(p.cli.b), PB_MAX_PENDING);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 0);
    assert_int_equal(pb_broker_pending(p.cli.b), 0);
    pair_close(&p);
}

static void sink_send(void *ctx, const char *data, size_t len)
{
    assert_int_equal(buf_add(ctx, data, len), 0);
}

static void hold_call(void *ctx, struct pb_call *call)
{
    (void)ctx;
    (void)call; /* left for pb_broker_free */
}

/* A peer may not leave more than PB_MAX_PENDING calls unanswered. */
static void test_incoming_limit(void **state)
{
    (void)state;
    static const struct pb_broker_ops hold_ops = {.send = sink_send, .call = hold_call};
    struct buf sink, msgs;
    char *cause = NULL;
    int obj;
    buf_init(&sink, 0);
    buf_init(&msgs, 0);
    struct pb_broker *b = pb_broker_new(true, &hold_ops, &sink);
    pb_broker_set_limits(b, &pb_limits_session);
    assert_int_equal(pb_broker_receive(b, "\x02\x82pb\x02\x80\x13\x87\x06\x81", 10, &cause), 0);
    assert_int_equal(pb_broker_export(b, &obj), 1);
    for (int i = 1; i <= PB_MAX_PENDING + 1; i++) {
        struct pb_value *tree = pb_append(pb_list(), pb_bytes("message", 7));
        pb_append(pb_append(tree, pb_int(i)), pb_int(1));
        pb_append(pb_append(tree, pb_bytes("wait", 4)), pb_int(1));
        pb_append(tree, pb_append(pb_list(), pb_bytes("tuple", 5)));
        pb_append(tree, pb_append(pb_list(), pb_bytes("dictionary", 10)));
        assert_int_equal(pb_banana_encode(&msgs, tree, true, &cause), 0);
        pb_value_free(tree);
    }
    assert_int_equal(pb_broker_receive(b, msgs.data, msgs.len, &cause), -1);
    assert_non_null(cause);
    print_message("%s\n", cause);
    free(cause);
    pb_broker_free(b);
    buf_free(&sink);
    buf_free(&msgs);
}

/* Closing fails every call still waiting, including a login in progress. */
static void test_free_with_pending(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0}, login = {0};
    int obj;
    pair_open(&p);
    uint32_t luid = pb_broker_export(p.srv.b, &obj);
    call_ok(&p.cli, luid, "wait", pb_append(pb_tuple(), pb_text("forever")), NULL, &a);
    uint32_t mind = pb_broker_export(p.cli.b, &obj);
    char *cause = NULL;
    assert_int_equal(pb_broker_login(p.cli.b, "w1", "pass1", mind, answer_cb, &login, &cause), 0);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 1); /* held: freed with the server broker */
    assert_non_null(p.srv.respond);     /* likewise */
    assert_false(a.done);
    assert_false(login.done);
    pb_broker_free(p.cli.b);
    p.cli.b = NULL;
    assert_true(a.done);
    assert_true(pb_failure_is(a.failure, PB_ERR_CONNECTION_LOST));
    assert_true(login.done);
    assert_true(pb_failure_is(login.failure, PB_ERR_CONNECTION_LOST));
    answer_clear(&a);
    answer_clear(&login);
    pair_close(&p);
}

/* ------------------------------------------------------------ replaying captured sessions */

/*
 * The test plays Buildbot's master: for each captured master->worker
 * expression it makes the broker produce it (a call is made, a held call is
 * answered); expressions the broker makes by itself (offer, version, login
 * answer, the refusal after a bad login) are skipped.
 */
struct replay {
    struct side srv;
    struct pb_decoder *master;
    uint32_t next_luid; /* the next master object the capture will name */
    struct answer answers[MAX_ANSWERS];
    size_t n_answers;
};

/* Exports the master objects a captured value names for the first time. */
static void export_new(struct replay *r, const struct pb_value *v)
{
    if (v == NULL)
        return;
    if (v->kind == PB_REMOTE && v->u.luid >= r->next_luid) {
        assert_int_equal(pb_broker_export(r->srv.b, r), v->u.luid);
        r->next_luid = v->u.luid + 1;
    } else if (v->kind >= PB_LIST && v->kind <= PB_FROZENSET) {
        for (size_t i = 0; i < v->u.list.n; i++)
            export_new(r, v->u.list.items[i]);
    }
}

/* Notes the objects named by something the broker sent by itself (the challenger). */
static void skip_luids(struct replay *r, const struct pb_value *v)
{
    if (v != NULL && v->kind == PB_REMOTE && v->u.luid >= r->next_luid)
        r->next_luid = v->u.luid + 1;
    for (size_t i = 0;
         v != NULL && v->kind >= PB_LIST && v->kind <= PB_FROZENSET && i < v->u.list.n; i++)
        skip_luids(r, v->u.list.items[i]);
}

static struct pb_value *unjelly(const struct pb_value *tree)
{
    struct pb_value *v = NULL;
    char *cause = NULL;
    if (pb_unjelly(tree, PB_MAX_NODES, &v, &cause) != 0)
        fail_msg("cannot unjelly a captured value: %s", cause);
    return v;
}

static void replay_call(struct replay *r, struct pb_value **item)
{
    struct pb_value *args = unjelly(item[5]), *kwargs = unjelly(item[6]);
    export_new(r, args);
    export_new(r, kwargs);
    assert_true(r->n_answers < MAX_ANSWERS);
    assert_int_equal(item[2]->kind, PB_INT);
    call_ok(&r->srv, (uint32_t)item[2]->u.i, item[3]->u.s.data, args, kwargs,
            &r->answers[r->n_answers++]);
}

static void replay_result(struct replay *r, struct pb_value **item, bool error)
{
    struct pb_call *call = take_call(&r->srv, (uint32_t)item[1]->u.i);
    struct pb_value *v = unjelly(item[2]);
    if (call == NULL) {
        skip_luids(r, v);
        pb_value_free(v);
        return;
    }
    export_new(r, v);
    if (error)
        pb_call_fail(call, v);
    else
        pb_call_answer(call, v);
}

static void replay_master(struct replay *r, const char *data, size_t len)
{
    char *cause = NULL;
    struct pb_value *tree;
    assert_int_equal(pb_decoder_feed(r->master, data, len, &cause), 0);
    while (pb_decoder_next(r->master, &tree, &cause) == 1) {
        const struct pb_value *k = pb_item(tree, 0);
        const char *kind = k != NULL && k->kind == PB_BYTES ? k->u.s.data : "";
        if (util_streq(kind, "message"))
            replay_call(r, tree->u.list.items);
        else if (util_streq(kind, "answer") || util_streq(kind, "error"))
            replay_result(r, tree->u.list.items, util_streq(kind, "error"));
        pb_value_free(tree);
    }
    assert_null(cause);
}

static void feed_worker(struct replay *r, const char *data, size_t len, bool random_pieces)
{
    char *cause = NULL;
    while (len > 0) {
        size_t n = random_pieces ? 1 + (size_t)rand() % 7 : len;
        if (n > len)
            n = len;
        if (pb_broker_receive(r->srv.b, data, n, &cause) != 0)
            fail_msg("the server broker refused the worker's bytes: %s", cause);
        data += n;
        len -= n;
    }
}

/*
 * Replays the worker's bytes of a session up to `stop` bytes (0: all) and
 * plays the master's part.  Returns the captured master bytes.
 */
static char *replay_session(struct replay *r, const char *session, bool fix_challenge,
                            bool random_pieces, size_t stop, size_t *m2w_len)
{
    char name[256];
    size_t w2m_len;
    /* session 1 is the one kept at the top of the fixtures directory */
    const char *prefix = util_streq(session, "session1-build") ? "transcript" : session;
    const char *dir = util_streq(session, "session1-build") ? "" : "captures/";
    snprintf(name, sizeof name, "%s%s-master-to-worker.bin", dir, prefix);
    char *m2w = read_fixture(name, m2w_len);
    snprintf(name, sizeof name, "%s%s-worker-to-master.bin", dir, prefix);
    char *w2m = read_fixture(name, &w2m_len);
    snprintf(name, sizeof name, "%s/captures/%s-chunks.jsonl", FIXTURES, session);
    FILE *chunks = fopen(name, "r");
    assert_non_null(chunks);

    memset(r, 0, sizeof *r);
    side_open(&r->srv, true);
    r->master = pb_decoder_new(NULL);
    r->next_luid = 1;
    if (fix_challenge)
        pb_broker_set_challenge(r->srv.b, (const unsigned char *)m2w + 30);
    srand(12345);
    char line[512];
    while (fgets(line, sizeof line, chunks) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        size_t off = (size_t)json_integer_value(json_object_get(j, "off"));
        size_t len = (size_t)json_integer_value(json_object_get(j, "len"));
        bool to_master = util_streq(json_string_value(json_object_get(j, "dir")), "c2s");
        json_decref(j);
        if (stop != 0 && (!to_master || off >= stop))
            continue;
        if (to_master)
            feed_worker(r, w2m + off, stop != 0 && off + len > stop ? stop - off : len,
                        random_pieces);
        else
            replay_master(r, m2w + off, len);
    }
    fclose(chunks);
    free(w2m);
    return m2w;
}

static void replay_free(struct replay *r)
{
    for (size_t i = 0; i < r->n_answers; i++)
        answer_clear(&r->answers[i]);
    pb_decoder_free(r->master);
    side_close(&r->srv);
}

/* Every call the master made was answered without a failure. */
static void assert_all_answered(struct replay *r)
{
    for (size_t i = 0; i < r->n_answers; i++) {
        assert_true(r->answers[i].done);
        assert_null(r->answers[i].failure);
    }
    assert_int_equal(pb_broker_pending(r->srv.b), 0);
}

static void check_session1(bool random_pieces)
{
    struct replay r;
    size_t m2w_len;
    char *m2w = replay_session(&r, "session1-build", true, random_pieces, 0, &m2w_len);
    assert_int_equal(r.srv.logins, 1);
    assert_string_equal(r.srv.login_user, "w1");
    assert_int_equal(r.srv.login_mind, 1);
    assert_int_equal(r.n_answers, 11);
    assert_all_answered(&r);
    assert_bytes(r.srv.sent.data, r.srv.sent.len, m2w, m2w_len);
    /* the worker's late decrefs released the eight command objects, 3..10 */
    assert_int_equal(r.srv.n_released, 8);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(r.srv.released[i], i + 3);
    assert_int_equal(pb_broker_exported(r.srv.b), 1); /* the perspective */
    assert_int_equal(r.srv.n_calls, 0);
    free(m2w);
    replay_free(&r);
}

static void test_replay_session1(void **state)
{
    (void)state;
    check_session1(false);
}

static void test_replay_session1_random_pieces(void **state)
{
    (void)state;
    check_session1(true);
}

static void test_replay_sessions_3_and_4(void **state)
{
    (void)state;
    static const char *const sessions[] = {"session3-interrupt", "session4-worker-shutdown"};
    for (size_t i = 0; i < UTIL_NELEM(sessions); i++) {
        struct replay r;
        size_t m2w_len;
        char *m2w = replay_session(&r, sessions[i], true, i == 1, 0, &m2w_len);
        assert_int_equal(r.srv.logins, 1);
        assert_all_answered(&r);
        assert_bytes(r.srv.sent.data, r.srv.sent.len, m2w, m2w_len);
        free(m2w);
        replay_free(&r);
    }
}

/* Without the captured challenge the captured response cannot match. */
static void test_replay_random_challenge_refused(void **state)
{
    (void)state;
    struct replay r;
    size_t m2w_len;
    char *m2w = replay_session(&r, "session1-build", false, true, 95, &m2w_len);
    assert_int_equal(r.srv.logins, 0);
    struct pb_value *msgs[8], *failure;
    size_t n = decode_all(r.srv.sent.data, r.srv.sent.len, msgs, 8);
    assert_int_equal(n, 5);
    assert_false(memcmp(r.srv.sent.data + 30, m2w + 30, PB_CHALLENGE_LEN) == 0);
    assert_true(is_msg(msgs[3], "decref", 1));
    assert_true(is_msg(msgs[4], "error", 2));
    failure = unjelly(pb_item(msgs[4], 2));
    assert_true(pb_failure_is(failure, PB_ERR_UNAUTHORIZED));
    pb_value_free(failure);
    free_all(msgs, n);
    free(m2w);
    replay_free(&r);
}

/* Session 2 (wrong password): our refusal has the real master's layout. */
static void test_replay_bad_login(void **state)
{
    (void)state;
    struct replay r;
    size_t m2w_len;
    char *m2w = replay_session(&r, "session2-badlogin", true, false, 0, &m2w_len);
    assert_int_equal(r.srv.logins, 0);
    /* offer, version, login answer and the mind's decref: byte for byte */
    assert_true(r.srv.sent.len > 58);
    assert_bytes(r.srv.sent.data, 58, m2w, 58);

    struct pb_value *ours[2], *theirs[2];
    assert_int_equal(decode_all(r.srv.sent.data + 58, r.srv.sent.len - 58, ours, 2), 1);
    assert_int_equal(decode_all(m2w + 58, m2w_len - 58, theirs, 2), 1);
    assert_true(is_msg(ours[0], "error", 2));
    struct pb_value *f = unjelly(pb_item(ours[0], 2)), *g = unjelly(pb_item(theirs[0], 2));
    assert_string_equal(f->u.copy.type, g->u.copy.type);
    const struct pb_value *fs = state_of(f), *gs = state_of(g);
    static const char *const same[] = {"type", "value", "parents", "tb", "frames", "stack"};
    for (size_t i = 0; i < UTIL_NELEM(same); i++) {
        if (!pb_value_equal(pb_dict_get(fs, same[i]), pb_dict_get(gs, same[i])))
            fail_msg("failure key '%s' differs from the real master's", same[i]);
    }
    assert_int_equal(gs->kind, PB_DICT);
    for (size_t i = 0; i < gs->u.list.n; i += 2) {
        const char *key = pb_str(gs->u.list.items[i]);
        if (pb_dict_get(fs, key) == NULL)
            fail_msg("our failure lacks the key '%s'", key);
        assert_int_equal(pb_dict_get(fs, key)->kind, pb_dict_get(gs, key)->kind);
    }
    pb_value_free(f);
    pb_value_free(g);
    free_all(ours, 1);
    free_all(theirs, 1);
    free(m2w);
    replay_free(&r);
}

/* ------------------------------------------------------------ limits before login */

/* ["message", reqid, objid, method, 1, ("tuple", args...), {}] with `args` (owned) as items. */
static struct pb_value *message_tree(int reqid, struct pb_value *objid, const char *method,
                                     struct pb_value *args)
{
    struct pb_value *tree = pb_append(pb_list(), pb_bytes("message", 7));
    pb_append(pb_append(tree, pb_int(reqid)), objid);
    pb_append(pb_append(tree, pb_bytes(method, strlen(method))), pb_int(1));
    struct pb_value *tuple = pb_append(pb_list(), pb_bytes("tuple", 5));
    for (size_t i = 0; args != NULL && i < args->u.list.n; i++)
        pb_append(tuple, pb_value_dup(args->u.list.items[i]));
    pb_value_free(args);
    pb_append(tree, tuple);
    return pb_append(tree, pb_append(pb_list(), pb_bytes("dictionary", 10)));
}

/* Encodes a banana tree (freed) and feeds it to a broker. */
static int feed_tree(struct pb_broker *b, struct pb_value *tree, char **cause)
{
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(pb_banana_encode(&out, tree, true, cause), 0);
    pb_value_free(tree);
    int rc = pb_broker_receive(b, out.data, out.len, cause);
    buf_free(&out);
    return rc;
}

static struct pb_value *login_of(int reqid, struct pb_value *name)
{
    return message_tree(reqid, pb_bytes("root", 4), "login", pb_append(pb_list(), name));
}

/* A peer that has not logged in cannot make the server hold more than a login needs. */
static void test_stranger_limits(void **state)
{
    (void)state;
    struct {
        const char *what;
        struct pb_value *tree;
    } cases[5];
    char name[PB_LOGIN_MAX_LENGTH + 1];
    memset(name, 'w', sizeof name);
    cases[0].what = "a login name one byte too long";
    cases[0].tree = login_of(1, pb_bytes(name, sizeof name));
    struct pb_value *many = pb_list();
    for (int i = 0; i < PB_LOGIN_MAX_NODES; i++)
        pb_append(many, pb_int(i));
    cases[1].what = "more values than a login has";
    cases[1].tree = message_tree(1, pb_bytes("root", 4), "login", pb_append(pb_list(), many));
    struct pb_value *deep = pb_bytes("x", 1);
    for (int i = 0; i < PB_LOGIN_MAX_DEPTH; i++)
        deep = pb_append(pb_list(), deep);
    cases[2].what = "lists nested deeper than a login";
    cases[2].tree = login_of(1, deep);
    struct pb_value *longer = pb_list();
    for (int i = 0; i < 5; i++)
        pb_append(longer, pb_bytes(name, 250));
    cases[3].what = "an expression over the login size";
    cases[3].tree = message_tree(1, pb_bytes("root", 4), "login", pb_append(pb_list(), longer));
    cases[4].what = "an incomplete list header promising a large expression";
    cases[4].tree = NULL;
    for (size_t i = 0; i < UTIL_NELEM(cases); i++) {
        struct side s;
        char *cause = NULL;
        raw_server(&s);
        int rc = cases[i].tree != NULL ? feed_tree(s.b, cases[i].tree, &cause)
                                       : inject(&s, "7f 7f 01 80  01 81 01 81 01 81", &cause);
        if (rc != -1 || cause == NULL)
            fail_msg("%s was accepted before login", cases[i].what);
        print_message("%s: %s\n", cases[i].what, cause);
        free(cause);
        side_close(&s);
    }

    /* calls left unanswered, and challengers, are bounded too */
    struct side s;
    char *cause = NULL;
    raw_server(&s);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(feed_tree(s.b, login_of(i, pb_bytes("w1", 2)), &cause), 0);
    assert_int_equal(pb_broker_exported(s.b), PB_LOGIN_MAX_OBJECTS);
    struct pb_value *msgs[8];
    size_t n = decode_all(s.sent.data, s.sent.len, msgs, 8);
    assert_int_equal(n, 3); /* two challenges, then an error */
    assert_true(is_msg(msgs[2], "error", 3));
    free_all(msgs, n);
    side_close(&s);
}

/* A login call whose shared references expand past the login bound is refused, not expanded. */
static void test_stranger_references(void **state)
{
    (void)state;
    struct side s;
    char *cause = NULL;
    raw_server(&s);
    /* ["reference", 1, ["tuple", 8 strings]] then 8 dereferences of it: 9 + 8 * 9 values */
    struct pb_value *shared = pb_append(pb_list(), pb_bytes("tuple", 5));
    for (int i = 0; i < 8; i++)
        pb_append(shared, pb_bytes("s", 1));
    struct pb_value *ref = pb_append(pb_append(pb_list(), pb_bytes("reference", 9)), pb_int(1));
    struct pb_value *args = pb_append(pb_list(), pb_append(ref, shared));
    for (int i = 0; i < 8; i++)
        pb_append(args, pb_append(pb_append(pb_list(), pb_bytes("dereference", 11)), pb_int(1)));
    assert_int_equal(feed_tree(s.b, message_tree(1, pb_bytes("root", 4), "login", args), &cause),
                     0);
    struct pb_value *msgs[4];
    size_t n = decode_all(s.sent.data, s.sent.len, msgs, 4);
    assert_int_equal(n, 1);
    assert_true(is_msg(msgs[0], "error", 1));
    struct pb_value *failure = NULL;
    assert_int_equal(pb_unjelly(pb_item(msgs[0], 2), PB_MAX_NODES, &failure, &cause), 0);
    print_message("%s\n", failure_value(failure));
    assert_non_null(strstr(failure_value(failure), "expand to too many values"));
    pb_value_free(failure);
    free_all(msgs, n);
    assert_int_equal(pb_broker_exported(s.b), 0);
    side_close(&s);
}

/* Once the password is accepted the peer gets the session's limits. */
static void test_limits_raised_by_login(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0}, big = {0};
    pair_open(&p);
    start_login(&p, "w1", "pass1", &a);
    assert_non_null(p.srv.respond);
    uint32_t perspective = pb_broker_export(p.srv.b, &p.srv);
    pb_call_answer(p.srv.respond, pb_remote(perspective));
    p.srv.respond = NULL;
    pump_ok(&p);
    assert_true(a.done);
    char *text = xcalloc(1, 100000);
    memset(text, 'o', 99999);
    call_ok(&p.cli, perspective, "update", pb_append(pb_tuple(), pb_text(text)), NULL, &big);
    pump_ok(&p);
    assert_int_equal(p.srv.n_calls, 1);
    assert_int_equal(pb_str(pb_item(p.srv.calls[0]->args, 0))[99998], 'o');
    pb_call_answer(take_call(&p.srv, p.srv.calls[0]->reqid), NULL);
    pump_ok(&p);
    assert_true(big.done);
    free(text);
    answer_clear(&a);
    answer_clear(&big);
    pair_close(&p);
}

/* A wrong password leaves the stranger's limits in place. */
static void test_limits_kept_after_refusal(void **state)
{
    (void)state;
    struct pair p;
    struct answer a = {0}, big = {0};
    char *cause = NULL;
    pair_open(&p);
    start_login(&p, "w1", "wrong", &a);
    assert_true(pb_failure_is(a.failure, PB_ERR_UNAUTHORIZED));
    char name[PB_LOGIN_MAX_LENGTH + 1];
    memset(name, 'w', sizeof name);
    call_ok(&p.cli, 0, "login", pb_append(pb_tuple(), pb_bytes(name, sizeof name)), NULL, &big);
    assert_int_equal(pump(&p, &cause), -1);
    print_message("%s\n", cause);
    free(cause);
    pair_close(&p); /* fails the call still waiting */
    assert_true(pb_failure_is(big.failure, PB_ERR_CONNECTION_LOST));
    answer_clear(&a);
    answer_clear(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiation_bytes),
        cmocka_unit_test(test_negotiation_errors),
        cmocka_unit_test(test_one_segment),
        cmocka_unit_test(test_login_success),
        cmocka_unit_test(test_login_wrong_password),
        cmocka_unit_test(test_login_unknown_user),
        cmocka_unit_test(test_challenger_used_once),
        cmocka_unit_test(test_root_no_such_method),
        cmocka_unit_test(test_client_has_no_root),
        cmocka_unit_test(test_calls_both_ways),
        cmocka_unit_test(test_pipelined_reordered),
        cmocka_unit_test(test_refcounts),
        cmocka_unit_test(test_unexport),
        cmocka_unit_test(test_decref_unknown_ignored),
        cmocka_unit_test(test_result_unknown_reqid),
        cmocka_unit_test(test_invalid_object_id),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_bad_arguments_answered),
        cmocka_unit_test(test_no_answer_required),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_incoming_limit),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_replay_session1),
        cmocka_unit_test(test_replay_session1_random_pieces),
        cmocka_unit_test(test_replay_sessions_3_and_4),
        cmocka_unit_test(test_replay_random_challenge_refused),
        cmocka_unit_test(test_replay_bad_login),
        cmocka_unit_test(test_stranger_limits),
        cmocka_unit_test(test_stranger_references),
        cmocka_unit_test(test_limits_raised_by_login),
        cmocka_unit_test(test_limits_kept_after_refusal),
    };
    log_set_level(LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
