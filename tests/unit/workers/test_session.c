/*
 * Unit tests for src/workers: a registry listening on loopback, and scripted
 * workers made of a client pb_broker on a real TCP connection.  They cover
 * what the real buildbot-worker 3.7 of the integration tests cannot show: the
 * buildslave 0.8 fallback chain, the exact order of the attach calls, the
 * duplicate-login arbitration and builder-list updates on reconfig.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "pb/pb.h"
#include "util/util.h"
#include "workers/workers.h"

/* ------------------------------------------------------------ a scripted worker */

struct fake_worker {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct pb_broker *broker;
    const char *name;
    const char *password;
    bool old_slave; /* answer getWorkerInfo with NoSuchMethod, like buildslave 0.8 */
    bool mute;      /* never answer calls (a hung connection) */
    uint32_t mind;
    struct buf calls;  /* "method,method,..." received on the mind */
    int logged_in;     /* 1 accepted, -1 refused */
    char failure[128]; /* the refusal's type */
    int builder_lists; /* setBuilderList calls received */
    char last_builders[256];
    bool closed;
    bool tcp_closed;
};

static uv_loop_t loop;

static void fw_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

static void fw_send(void *ctx, const char *data, size_t len)
{
    struct fake_worker *w = ctx;
    if (w->closed)
        return;
    uv_buf_t b = uv_buf_init(xstrndup(data, len), (unsigned)len);
    uv_write_t *req = xmalloc(sizeof *req);
    req->data = b.base;
    uv_write(req, (uv_stream_t *)&w->tcp, &b, 1, fw_written);
}

static struct pb_value *builder_refs(struct fake_worker *w, const struct pb_value *list)
{
    struct pb_value *answer = pb_dict();
    struct buf names;
    buf_init(&names, 0);
    for (size_t i = 0; i < pb_len(list); i++) {
        const struct pb_value *pair = pb_item(list, i);
        const char *name = pb_str(pb_item(pair, 0));
        buf_printf(&names, "%s%s:%s", i ? "," : "", name, pb_str(pb_item(pair, 1)));
        pb_dict_set(answer, name, pb_remote(pb_broker_export(w->broker, w)));
    }
    snprintf(w->last_builders, sizeof w->last_builders, "%s", names.data ? names.data : "");
    buf_free(&names);
    return answer;
}

static void fw_call(void *ctx, struct pb_call *call)
{
    struct fake_worker *w = ctx;
    buf_printf(&w->calls, "%s%s", w->calls.len ? "," : "", call->method);
    if (w->mute)
        return; /* the broker frees the call when the connection goes */
    const char *m = call->method;
    if (util_streq(m, "print")) {
        pb_call_answer(call, NULL);
    } else if (util_streq(m, "getWorkerInfo") && w->old_slave) {
        static const char *const parents[] = {PB_ERR_NOSUCHMETHOD, NULL};
        pb_call_fail(call, pb_failure_new(PB_ERR_NOSUCHMETHOD, "no such method", parents));
    } else if (util_streq(m, "getWorkerInfo") || util_streq(m, "getSlaveInfo")) {
        struct pb_value *info = pb_dict();
        pb_dict_set(info, "admin", pb_text("someone"));
        pb_dict_set(info, "host", pb_text("a test host"));
        if (!w->old_slave)
            pb_dict_set(info, "version", pb_text("3.7.0"));
        pb_call_answer(call, info);
    } else if (util_streq(m, "getCommands")) {
        pb_call_answer(call, pb_dict_set(pb_dict(), "shell", pb_text("2.16")));
    } else if (util_streq(m, "getVersion")) {
        pb_call_answer(call, pb_text("0.8.12"));
    } else if (util_streq(m, "setBuilderList")) {
        w->builder_lists++;
        pb_call_answer(call, builder_refs(w, pb_item(call->args, 0)));
    } else {
        pb_call_fail(call, pb_failure_new(PB_ERR_NOSUCHMETHOD, m, NULL));
    }
}

static void fw_logged_in(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct fake_worker *w = arg;
    if (failure == NULL && result != NULL && result->kind == PB_REMOTE) {
        w->logged_in = 1;
        return;
    }
    w->logged_in = -1;
    const struct pb_value *type = pb_dict_get(failure->u.copy.state, "type");
    snprintf(w->failure, sizeof w->failure, "%s", pb_str(type) ? pb_str(type) : "?");
}

static void fw_ready(void *ctx)
{
    struct fake_worker *w = ctx;
    w->mind = pb_broker_export(w->broker, w);
    char *cause = NULL;
    int rc = pb_broker_login(w->broker, w->name, w->password, w->mind, fw_logged_in, w, &cause);
    assert_int_equal(rc, 0);
    free(cause);
}

static const struct pb_broker_ops fw_ops = {.send = fw_send, .call = fw_call, .ready = fw_ready};

static void fw_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    *buf = uv_buf_init(xmalloc(size), (unsigned)size);
}

static void fw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fake_worker *w = s->data;
    if (n < 0) {
        w->closed = true;
        uv_read_stop(s);
    } else if (n > 0 && !w->closed) {
        char *cause = NULL;
        assert_int_equal(pb_broker_receive(w->broker, buf->base, (size_t)n, &cause), 0);
        free(cause);
    }
    free(buf->base);
}

static void fw_connected(uv_connect_t *req, int status)
{
    struct fake_worker *w = req->data;
    assert_int_equal(status, 0);
    w->broker = pb_broker_new(false, &fw_ops, w);
    uv_read_start((uv_stream_t *)&w->tcp, fw_alloc, fw_read);
}

static void fw_start(struct fake_worker *w, int port)
{
    buf_init(&w->calls, 0);
    uv_tcp_init(&loop, &w->tcp);
    w->tcp.data = w;
    w->connect.data = w;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_connect(&w->connect, &w->tcp, (struct sockaddr *)&addr, fw_connected);
}

static bool run_until(bool (*done)(void *), void *arg);

static void fw_closed(uv_handle_t *h)
{
    ((struct fake_worker *)h->data)->tcp_closed = true;
}

static bool tcp_is_closed(void *arg)
{
    return ((struct fake_worker *)arg)->tcp_closed;
}

/* Closes the connection and waits for libuv to let go of `w` (it lives on the stack). */
static void fw_stop(struct fake_worker *w)
{
    w->closed = true;
    pb_broker_free(w->broker);
    w->broker = NULL;
    uv_close((uv_handle_t *)&w->tcp, fw_closed);
    run_until(tcp_is_closed, w);
    buf_free(&w->calls);
}

/* Runs the loop until `done` is true or ~10 s passed; returns `done`. */
static bool run_until(bool (*done)(void *), void *arg)
{
    uint64_t deadline = util_mono_ms() + 10000;
    while (!done(arg) && util_mono_ms() < deadline)
        uv_run(&loop, UV_RUN_NOWAIT);
    return done(arg);
}

static bool has_answer(void *arg)
{
    return ((struct fake_worker *)arg)->logged_in != 0;
}

static bool is_closed(void *arg)
{
    return ((struct fake_worker *)arg)->closed;
}

/* ------------------------------------------------------------ a config by hand */

static char *w1_builders[] = {"w1"};
static char *both_builders[] = {"w1", "w2"};

static struct cfg_worker workers[] = {
    {.name = "w1", .password = "pass1", .keepalive_interval = 3600},
    {.name = "w2", .password = "pass2", .keepalive_interval = 3600},
};

static struct cfg_builder builders[] = {
    {.name = "b1", .workernames = w1_builders, .n_workernames = 1, .workerbuilddir = "b1"},
    {.name = "b2", .workernames = both_builders, .n_workernames = 2, .workerbuilddir = "b2dir"},
};

static struct cfg config = {
    .workers = workers, .n_workers = 2, .builders = builders, .n_builders = 2};

struct fixture {
    struct wk_registry *reg;
    int port;
};

static int setup(void **state)
{
    static struct fixture f;
    uv_loop_init(&loop);
    config.n_workers = 2;
    config.n_builders = 2;
    f.reg = wk_registry_new(&loop, &config);
    char *cause = NULL;
    config.pb_interface = "127.0.0.1";
    for (f.port = 29300; f.port < 29400; f.port++) {
        config.pb_port = f.port;
        if (wk_listen(f.reg, &config, &cause) == 0)
            break;
    }
    free(cause);
    assert_true(f.port < 29400);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wk_registry_free(f->reg);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ------------------------------------------------------------ tests */

static void test_attach_sequence(void **state)
{
    struct fixture *f = *state;
    struct fake_worker w = {.name = "w1", .password = "pass1"};
    fw_start(&w, f->port);
    assert_true(run_until(has_answer, &w));
    assert_int_equal(w.logged_in, 1);
    assert_string_equal(w.calls.data, "print,getWorkerInfo,setBuilderList,print,print");
    assert_string_equal(w.last_builders, "b1:b1,b2:b2dir");
    assert_true(wk_is_attached(f->reg, "w1"));
    assert_int_equal(wk_attached_count(f->reg), 1);
    fw_stop(&w);
}

static void test_buildslave_fallbacks(void **state)
{
    struct fixture *f = *state;
    struct fake_worker w = {.name = "w2", .password = "pass2", .old_slave = true};
    fw_start(&w, f->port);
    assert_true(run_until(has_answer, &w));
    assert_int_equal(w.logged_in, 1);
    assert_string_equal(w.calls.data, "print,getWorkerInfo,print,getSlaveInfo,getCommands,"
                                      "getVersion,setBuilderList,print");
    assert_string_equal(w.last_builders, "b2:b2dir");
    fw_stop(&w);
}

static void test_wrong_password(void **state)
{
    struct fixture *f = *state;
    struct fake_worker w = {.name = "w1", .password = "nope"};
    fw_start(&w, f->port);
    assert_true(run_until(has_answer, &w));
    assert_int_equal(w.logged_in, -1);
    assert_string_equal(w.failure, PB_ERR_UNAUTHORIZED);
    assert_false(wk_is_attached(f->reg, "w1"));
    fw_stop(&w);
}

static void test_unknown_worker(void **state)
{
    struct fixture *f = *state;
    struct fake_worker w = {.name = "nobody", .password = "pass1"};
    fw_start(&w, f->port);
    assert_true(run_until(has_answer, &w));
    assert_int_equal(w.logged_in, -1);
    assert_string_equal(w.failure, PB_ERR_UNAUTHORIZED);
    fw_stop(&w);
}

static void test_duplicate_refused_while_old_answers(void **state)
{
    struct fixture *f = *state;
    struct fake_worker a = {.name = "w1", .password = "pass1"};
    struct fake_worker b = {.name = "w1", .password = "pass1"};
    fw_start(&a, f->port);
    assert_true(run_until(has_answer, &a));
    fw_start(&b, f->port);
    assert_true(run_until(has_answer, &b));
    assert_int_equal(b.logged_in, -1);
    assert_string_equal(b.failure, "builtins.RuntimeError");
    assert_non_null(strstr(a.calls.data, "print,print,print"));
    assert_true(wk_is_attached(f->reg, "w1"));
    fw_stop(&b);
    fw_stop(&a);
}

static void test_duplicate_replaces_dead_connection(void **state)
{
    struct fixture *f = *state;
    struct fake_worker a = {.name = "w1", .password = "pass1"};
    struct fake_worker b = {.name = "w1", .password = "pass1"};
    fw_start(&a, f->port);
    assert_true(run_until(has_answer, &a));
    a.closed = true; /* stop reading: the old connection hangs */
    uv_read_stop((uv_stream_t *)&a.tcp);
    fw_start(&b, f->port);
    /* The old one does not answer: after the ping timeout the new one is attached. */
    uint64_t deadline = util_mono_ms() + (WK_DUPLICATE_PING_TIMEOUT + 5) * 1000;
    while (b.logged_in == 0 && util_mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(b.logged_in, 1);
    assert_int_equal(wk_attached_count(f->reg), 1);
    fw_stop(&b);
    fw_stop(&a);
}

static bool two_builder_lists(void *arg)
{
    return ((struct fake_worker *)arg)->builder_lists >= 2;
}

static void test_reconfig(void **state)
{
    struct fixture *f = *state;
    struct fake_worker w1 = {.name = "w1", .password = "pass1"};
    struct fake_worker w2 = {.name = "w2", .password = "pass2"};
    fw_start(&w1, f->port);
    fw_start(&w2, f->port);
    assert_true(run_until(has_answer, &w1));
    assert_true(run_until(has_answer, &w2));
    /* Drop builder b2 and worker w2: w1 gets a new list, w2 is disconnected. */
    struct cfg next = config;
    next.n_builders = 1;
    next.n_workers = 1;
    wk_reconfig(f->reg, &next);
    assert_true(run_until(two_builder_lists, &w1));
    assert_string_equal(w1.last_builders, "b1:b1");
    assert_true(run_until(is_closed, &w2));
    assert_false(wk_is_attached(f->reg, "w2"));
    assert_true(wk_is_attached(f->reg, "w1"));
    wk_reconfig(f->reg, &config);
    fw_stop(&w2);
    fw_stop(&w1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attach_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buildslave_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_refused_while_old_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_replaces_dead_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfig, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
