/*
 * Unit tests for engine/locks.c: exclusive and counting access, maxCount and
 * maxCountForWorker, the FIFO queue (a waiter is not overtaken, a counting access does not
 * pass an exclusive waiter), a waiter giving up its place, and a reconfig that raises
 * maxCount.  Callbacks record the order in which requests get their locks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "engine/internal.h"

static int notified;
static char order[64];

static void notify(void *arg)
{
    (void)arg;
    notified++;
}

static void took(void *arg)
{
    strncat(order, arg, sizeof order - strlen(order) - 1);
}

static struct cfg_lock_access master_lock(const char *name, int max, bool exclusive, int count)
{
    return (struct cfg_lock_access){
        .name = (char *)name, .max_count = max, .exclusive = exclusive, .count = count};
}

static struct lockreq *ask(struct locks *reg, struct cfg_lock_access *a, size_t n,
                           const char *worker, const char *tag, bool expect)
{
    struct lockreq *r = lockreq_new(reg, a, n, worker, 0);
    assert_int_equal(lockreq_acquire(r, took, (void *)tag), expect);
    return r;
}

static void test_exclusive_and_counting(void **state)
{
    (void)state;
    order[0] = '\0';
    struct locks *reg = locks_new(notify, NULL);
    struct cfg_lock_access ex = master_lock("db", 2, true, 1);
    struct cfg_lock_access co = master_lock("db", 2, false, 1);
    struct lockreq *a = ask(reg, &co, 1, "w", "a", true);
    struct lockreq *b = ask(reg, &co, 1, "w", "b", true);
    assert_false(locks_available(reg, &co, 1, "w", 0)); /* maxCount 2 */
    struct lockreq *c = ask(reg, &ex, 1, "w", "c", false);
    lockreq_free(a);
    locks_run_ready(reg);
    assert_string_equal(order, ""); /* b still counts */
    lockreq_free(b);
    locks_run_ready(reg);
    assert_string_equal(order, "c");
    assert_true(lockreq_owned(c));
    assert_false(locks_available(reg, &co, 1, "w", 0));
    lockreq_free(c);
    assert_true(locks_available(reg, &co, 1, "w", 0));
    struct cfg_lock_access zero = master_lock("db", 2, false, 0);
    struct lockreq *d = ask(reg, &ex, 1, "w", "d", true);
    struct lockreq *z = ask(reg, &zero, 1, "w", "z", true); /* count 0 always succeeds */
    lockreq_free(z);
    lockreq_free(d);
    locks_free(reg);
}

static void test_fifo(void **state)
{
    (void)state;
    order[0] = '\0';
    struct locks *reg = locks_new(notify, NULL);
    struct cfg_lock_access ex = master_lock("db", 3, true, 1);
    struct cfg_lock_access co = master_lock("db", 3, false, 1);
    struct lockreq *holder = ask(reg, &co, 1, "w", "h", true);
    struct lockreq *x = ask(reg, &ex, 1, "w", "x", false);
    /* a counting access would fit (1 of 3) but does not pass the exclusive waiter */
    assert_false(locks_available(reg, &co, 1, "w", 0));
    struct lockreq *y = ask(reg, &co, 1, "w", "y", false);
    struct lockreq *z = ask(reg, &co, 1, "w", "z", false);
    lockreq_free(holder);
    notified = 0;
    locks_run_ready(reg);
    assert_string_equal(order, "x");
    lockreq_free(x);
    assert_true(notified > 0);
    locks_run_ready(reg);
    assert_string_equal(order, "xyz"); /* both counting waiters fit together */
    lockreq_free(y);
    lockreq_free(z);
    locks_free(reg);
}

static void test_giving_up_a_place(void **state)
{
    (void)state;
    order[0] = '\0';
    struct locks *reg = locks_new(notify, NULL);
    struct cfg_lock_access ex = master_lock("db", 1, true, 1);
    struct lockreq *h = ask(reg, &ex, 1, "w", "h", true);
    struct lockreq *a = ask(reg, &ex, 1, "w", "a", false);
    struct lockreq *b = ask(reg, &ex, 1, "w", "b", false);
    lockreq_free(h); /* a is woken ... */
    lockreq_free(a); /* ... but stops waiting before its turn: b goes next */
    locks_run_ready(reg);
    assert_string_equal(order, "b");
    lockreq_free(b);
    locks_free(reg);
}

static void test_worker_locks(void **state)
{
    (void)state;
    order[0] = '\0';
    struct locks *reg = locks_new(notify, NULL);
    struct cfg_lock_count big = {(char *)"big", 2};
    struct cfg_lock_access cpu = {.name = (char *)"cpu",
                                  .worker_lock = true,
                                  .max_count = 1,
                                  .per_worker = &big,
                                  .n_per_worker = 1,
                                  .count = 1};
    struct lockreq *s1 = ask(reg, &cpu, 1, "small", "1", true);
    assert_false(locks_available(reg, &cpu, 1, "small", 0));  /* maxCount 1 */
    struct lockreq *b1 = ask(reg, &cpu, 1, "big", "2", true); /* a copy per worker */
    struct lockreq *b2 = ask(reg, &cpu, 1, "big", "3", true); /* maxCountForWorker 2 */
    assert_false(locks_available(reg, &cpu, 1, "big", 0));
    /* a master lock of the same name is another lock */
    struct cfg_lock_access m = master_lock("cpu", 1, true, 1);
    assert_true(locks_available(reg, &m, 1, "big", 0));
    /* both locks or none: the request waits on the first it cannot have */
    struct cfg_lock_access both[] = {m, cpu};
    struct lockreq *r = ask(reg, both, 2, "small", "r", false);
    assert_true(locks_available(reg, &m, 1, "small", 0)); /* nobody waits for m */
    lockreq_free(s1);
    locks_run_ready(reg);
    assert_string_equal(order, "r");
    assert_false(locks_available(reg, &m, 1, "small", 0));
    lockreq_free(r);
    lockreq_free(b1);
    lockreq_free(b2);
    locks_free(reg);
}

static void test_reconfig_raises_max(void **state)
{
    (void)state;
    order[0] = '\0';
    struct locks *reg = locks_new(notify, NULL);
    struct cfg_lock_access one = master_lock("db", 1, false, 1);
    struct lockreq *a = lockreq_new(reg, &one, 1, "w", 1);
    assert_true(lockreq_acquire(a, took, "a"));
    struct lockreq *b = lockreq_new(reg, &one, 1, "w", 1);
    assert_false(lockreq_acquire(b, took, "b"));
    /* an older configuration does not change the lock */
    struct cfg_lock_access two = master_lock("db", 2, false, 1);
    assert_false(locks_available(reg, &two, 1, "w", 0));
    /* a newer one does, and the waiter fits now */
    assert_false(locks_available(reg, &two, 1, "w", 2)); /* b waits ahead of a newcomer */
    locks_run_ready(reg);
    assert_string_equal(order, "b");
    lockreq_free(a);
    lockreq_free(b);
    locks_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusive_and_counting), cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_giving_up_a_place),      cmocka_unit_test(test_worker_locks),
        cmocka_unit_test(test_reconfig_raises_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
