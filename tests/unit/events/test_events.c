/*
 * Unit tests for the event bus: items read in order, a ring that drops its
 * oldest and says how many a reader lost, events held by an open transaction
 * (visible at commit, dropped at rollback), routing key patterns, and a
 * publisher and readers on threads of their own (run under ThreadSanitizer by
 * `make tsan`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "events/events.h"

static void test_read_in_order(void **state)
{
    (void)state;
    struct ev_bus *bus = ev_bus_new();
    uint64_t cursor = ev_head(bus), lost = 0;
    ev_publish(bus, EV_BUILD, 7, EV_NEW);
    ev_publish(bus, EV_STEP, 9, EV_STARTED);
    struct ev_item items[8];
    size_t n = ev_read(bus, &cursor, items, 8, &lost);
    assert_int_equal(n, 2);
    assert_int_equal(lost, 0);
    assert_int_equal(items[0].type, EV_BUILD);
    assert_int_equal(items[0].id, 7);
    assert_int_equal(items[0].name, EV_NEW);
    assert_int_equal(items[1].type, EV_STEP);
    assert_true(items[1].seq == items[0].seq + 1);
    assert_int_equal(ev_read(bus, &cursor, items, 8, &lost), 0);
    char path[64];
    ev_path(EV_BUILD, 7, path, sizeof path);
    assert_string_equal(path, "builds/7");
    assert_string_equal(ev_name_text(EV_STATE_UPDATED), "state_updated");
    assert_string_equal(ev_key_patterns(EV_LOG)[1], "steps/:stepid/logs/:slug");
    assert_null(ev_key_patterns(EV_LOG)[2]);
    ev_bus_free(bus);
}

static void test_overflow_counts_lost(void **state)
{
    (void)state;
    struct ev_bus *bus = ev_bus_new();
    uint64_t cursor = ev_head(bus), lost = 0;
    for (long long i = 0; i < EV_RING_SIZE + 10; i++)
        ev_publish(bus, EV_LOG, i, EV_APPEND);
    struct ev_item item;
    assert_int_equal(ev_read(bus, &cursor, &item, 1, &lost), 1);
    assert_int_equal(lost, 10);
    assert_int_equal(item.id, 10);
    ev_bus_free(bus);
}

static void test_hold_commit_and_rollback(void **state)
{
    (void)state;
    struct ev_bus *bus = ev_bus_new();
    uint64_t cursor = ev_head(bus), lost = 0;
    struct ev_item items[4];
    ev_hold(bus);
    ev_publish(bus, EV_BUILD, 1, EV_UPDATE);
    assert_int_equal(ev_read(bus, &cursor, items, 4, &lost), 0);
    ev_release(bus, false);
    assert_int_equal(ev_read(bus, &cursor, items, 4, &lost), 0);
    ev_hold(bus);
    ev_publish(bus, EV_BUILD, 2, EV_UPDATE);
    assert_false(ev_wait(bus, cursor, 10));
    ev_release(bus, true);
    assert_true(ev_wait(bus, cursor, 10));
    assert_int_equal(ev_read(bus, &cursor, items, 4, &lost), 1);
    assert_int_equal(items[0].id, 2);
    assert_int_equal(lost, 0);
    ev_bus_free(bus);
}

#define THREAD_EVENTS 20000

struct reader {
    struct ev_bus *bus;
    uint64_t cursor, seen, lost;
    long long last;
    bool ordered;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct ev_item items[64];
    while (r->seen + r->lost < THREAD_EVENTS) {
        ev_wait(r->bus, r->cursor, 100);
        size_t n = ev_read(r->bus, &r->cursor, items, 64, &r->lost);
        for (size_t i = 0; i < n; i++) {
            r->ordered = r->ordered && items[i].id > r->last;
            r->last = items[i].id;
        }
        r->seen += n;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct ev_bus *bus = ev_bus_new();
    struct reader readers[3];
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        readers[i] = (struct reader){.bus = bus, .cursor = ev_head(bus), .last = -1, .ordered = 1};
        assert_int_equal(pthread_create(&threads[i], NULL, reader_main, &readers[i]), 0);
    }
    for (long long i = 0; i < THREAD_EVENTS; i++) {
        if (i % 100 == 0)
            ev_hold(bus);
        ev_publish(bus, EV_STEP, i, EV_UPDATED);
        if (i % 100 == 99)
            ev_release(bus, true);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        assert_true(readers[i].ordered);
        assert_int_equal(readers[i].seen + readers[i].lost, THREAD_EVENTS);
    }
    ev_bus_free(bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_in_order),
        cmocka_unit_test(test_overflow_counts_lost),
        cmocka_unit_test(test_hold_commit_and_rollback),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
