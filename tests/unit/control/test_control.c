/*
 * Unit tests for control: an action's states and references, the client's
 * hooks (answered once, released with the action), the queue's bound and
 * closing, and pushes from several threads at once taken on a libuv loop
 * (run under ThreadSanitizer by `make tsan`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"

static const struct ctl_target none = {-1, -1, -1, -1, NULL};

struct client {
    pthread_mutex_t lock;
    int answered, released;
};

static void answered_cb(void *arg)
{
    struct client *c = arg;
    pthread_mutex_lock(&c->lock);
    c->answered++;
    pthread_mutex_unlock(&c->lock);
}

static void released_cb(void *arg)
{
    struct client *c = arg;
    pthread_mutex_lock(&c->lock);
    c->released++;
    pthread_mutex_unlock(&c->lock);
}

static const struct ctl_client hooks = {answered_cb, released_cb};

static void nothing(void *arg)
{
    (void)arg;
}

static void test_action_fields(void **state)
{
    (void)state;
    struct ctl_target t = {7, 3, -1, 12, "w1"};
    struct ctl_action *a = ctl_action_new(CTL_WORKER_PAUSE, &t, "{\"reason\": \"x\"}");
    t.name = "changed after";
    assert_int_equal(ctl_action_kind(a), CTL_WORKER_PAUSE);
    assert_string_equal(ctl_action_target(a)->name, "w1");
    assert_int_equal(ctl_action_target(a)->id, 7);
    assert_int_equal(ctl_action_target(a)->number, 12);
    assert_string_equal(ctl_action_params(a), "{\"reason\": \"x\"}");
    assert_string_equal(ctl_kind_method(CTL_WORKER_PAUSE), "pause");
    for (int i = 0; i < CTL_MAX_HEADERS + 10; i++)
        ctl_action_add_header(a, i == 0 ? "X-GitHub-Event" : "X-Other", "push");
    assert_string_equal(ctl_action_header(a, "x-github-event"), "push");
    assert_null(ctl_action_header(a, "X-Hub-Signature"));
    ctl_action_set_body(a, strdup("{}"), 2);
    size_t len = 0;
    assert_string_equal(ctl_action_body(a, &len), "{}");
    assert_int_equal(len, 2);
    ctl_action_unref(a);
}

/* Pushed, taken, answered: the hook runs once, the answer reads back, the release comes
   with the last reference. */
static void test_answer_and_references(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ctl_queue *q = ctl_queue_new(&loop, nothing, NULL);
    struct client c = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    struct ctl_action *a = ctl_action_new(CTL_FORCE, &none, NULL);
    ctl_action_set_client(a, &hooks, &c);
    assert_int_equal(ctl_queue_push(q, a, NULL), 0);
    struct ctl_action *taken = ctl_queue_take(q);
    assert_ptr_equal(taken, a);
    assert_null(ctl_queue_take(q));
    struct ctl_answer ans;
    assert_false(ctl_action_answer(a, &ans));
    assert_int_equal(ctl_action_cancel(a), CTL_RUNNING); /* too late: it runs */
    ctl_reply(taken, "[1, {}]", 200, 0, NULL);
    assert_int_equal(c.answered, 1);
    assert_int_equal(c.released, 0); /* the web still holds it */
    assert_true(ctl_action_answer(a, &ans));
    assert_int_equal(ans.status, 200);
    assert_string_equal(ans.result, "[1, {}]");
    assert_int_equal(ctl_action_cancel(a), CTL_ANSWERED);
    ctl_action_unref(a);
    assert_int_equal(c.released, 1);
    ctl_queue_close(q);
    uv_run(&loop, UV_RUN_DEFAULT);
    ctl_queue_free(q);
    uv_loop_close(&loop);
}

/* A full queue refuses at once and keeps nothing; a cancelled action is dropped by take
   and never answered; closing answers what waits 503 and refuses later pushes. */
static void test_bound_cancel_and_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ctl_queue *q = ctl_queue_new(&loop, nothing, NULL);
    struct client c = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    struct ctl_action *a[CTL_QUEUE_MAX + 1];
    for (int i = 0; i <= CTL_QUEUE_MAX; i++) {
        a[i] = ctl_action_new(CTL_BUILD_STOP, &none, NULL);
        ctl_action_set_client(a[i], &hooks, &c);
    }
    for (int i = 0; i < CTL_QUEUE_MAX; i++)
        assert_int_equal(ctl_queue_push(q, a[i], NULL), 0);
    char *cause = NULL;
    assert_int_equal(ctl_queue_push(q, a[CTL_QUEUE_MAX], &cause), -1);
    assert_non_null(strstr(cause, "busy"));
    free(cause);
    cause = NULL;
    assert_int_equal(ctl_action_cancel(a[0]), CTL_QUEUED); /* now cancelled */
    assert_string_equal(ctl_action_params(a[0]), "{}");    /* its request is freed */
    assert_ptr_equal(ctl_queue_take(q), a[1]);             /* a[0] dropped */
    ctl_reply(a[1], "null", 200, 0, NULL);
    ctl_queue_close(q);
    assert_int_equal(c.answered, CTL_QUEUE_MAX - 1); /* a[1], and 30 answered 503 */
    struct ctl_answer ans;
    assert_true(ctl_action_answer(a[2], &ans));
    assert_int_equal(ans.status, 503);
    assert_string_equal(ans.message, "the master is shutting down");
    assert_false(ctl_action_answer(a[0], &ans));
    assert_int_equal(ctl_queue_push(q, a[CTL_QUEUE_MAX], &cause), -1);
    free(cause);
    for (int i = 0; i <= CTL_QUEUE_MAX; i++)
        ctl_action_unref(a[i]);
    assert_int_equal(c.released, CTL_QUEUE_MAX + 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ctl_queue_free(q);
    uv_loop_close(&loop);
}

/* Threads push (retrying while the queue is full), the loop takes and answers: every
   action is answered exactly once and every one is released. */
#define PUSHERS 4
#define PER_PUSHER 500

struct run {
    struct ctl_queue *q;
    struct client c;
    int taken;
};

static void ready(void *arg)
{
    struct run *r = arg;
    struct ctl_action *a;
    while ((a = ctl_queue_take(r->q)) != NULL) {
        ctl_reply(a, "null", 200, 0, NULL);
        if (++r->taken == PUSHERS * PER_PUSHER)
            ctl_queue_close(r->q);
    }
}

static void *pusher(void *arg)
{
    struct run *r = arg;
    for (int i = 0; i < PER_PUSHER; i++) {
        struct ctl_action *a = ctl_action_new(CTL_FORCE, &none, "{}");
        ctl_action_set_client(a, &hooks, &r->c);
        while (ctl_queue_push(r->q, a, NULL) < 0)
            sched_yield();
        ctl_action_unref(a);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct run r = {NULL, {PTHREAD_MUTEX_INITIALIZER, 0, 0}, 0};
    r.q = ctl_queue_new(&loop, ready, &r);
    pthread_t t[PUSHERS];
    for (int i = 0; i < PUSHERS; i++)
        pthread_create(&t[i], NULL, pusher, &r);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends when the queue is closed */
    for (int i = 0; i < PUSHERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(r.taken, PUSHERS * PER_PUSHER);
    assert_int_equal(r.c.answered, PUSHERS * PER_PUSHER);
    assert_int_equal(r.c.released, PUSHERS * PER_PUSHER);
    ctl_queue_free(r.q);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_fields),
        cmocka_unit_test(test_answer_and_references),
        cmocka_unit_test(test_bound_cancel_and_close),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
