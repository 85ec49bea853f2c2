/* test_ring.c - the SPSC message ring: order, sizes, wrap-around, and a
 * producer and a consumer thread that each wait on a full or empty ring. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ring.h"
#include "check_main.h"

/* Message k: its length and bytes follow from k alone. */
static size_t msg_len(uint32_t k)
{
    return (k * 2654435761u) % 1021 + (k % 7 == 0 ? 1000 : 0);
}

static void fill(uint8_t *p, uint32_t k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(k + i * 31);
}

static bool same(const uint8_t *p, uint32_t k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(k + i * 31))
            return false;
    return true;
}

START_TEST(order_sizes_and_wrap)
{
    struct mx_park prod, cons;
    struct mx_ring r;
    ck_assert(mx_park_init(&prod) && mx_park_init(&cons));
    ck_assert(mx_ring_init(&r, 4096 * 2, &prod, &cons));
    size_t n;
    ck_assert_ptr_null(mx_ring_peek(&r, &n));
    ck_assert(mx_ring_drained(&r));
    /* Many times round the ring, a few messages in flight at once. */
    uint32_t in = 0, out = 0;
    while (out < 5000) {
        while (in < 5000 && in - out < 3) {
            size_t len = msg_len(in) % MX_RING_MAX_MSG(&r);
            uint8_t *p = mx_ring_reserve(&r, len);
            fill(p, in, len);
            mx_ring_commit(&r);
            in++;
        }
        uint8_t *p = mx_ring_peek(&r, &n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(n, msg_len(out) % MX_RING_MAX_MSG(&r));
        ck_assert(same(p, out, n));
        mx_ring_release(&r);
        out++;
    }
    ck_assert_ptr_null(mx_ring_peek(&r, &n));
    ck_assert(mx_ring_drained(&r));
    mx_ring_destroy(&r);
    mx_park_destroy(&prod);
    mx_park_destroy(&cons);
}
END_TEST

#define N_THREADED 20000

struct pc {
    struct mx_ring r;
    struct mx_park prod, cons;
};

static void *producer(void *arg)
{
    struct pc *pc = arg;
    for (uint32_t k = 0; k < N_THREADED; k++) {
        size_t len = msg_len(k);
        uint8_t *p = mx_ring_reserve(&pc->r, len); /* waits while the ring is full */
        fill(p, k, len);
        mx_ring_commit(&pc->r);
    }
    mx_ring_flush(&pc->r); /* the last part batch */
    return NULL;
}

/* A producer thread and this one as consumer. Without a batch the consumer
 * sleeps in its park, woken at every message; with one it sleeps in
 * mx_ring_wait() with a 1 ms nap, woken by a full batch, by the producer
 * waiting for room, or by the nap. */
static void threaded(size_t batch)
{
    struct pc pc;
    ck_assert(mx_park_init(&pc.prod) && mx_park_init(&pc.cons));
    ck_assert(mx_ring_init(&pc.r, 16384, &pc.prod, &pc.cons));
    mx_ring_set_batch(&pc.r, batch);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, producer, &pc), 0);
    for (uint32_t k = 0; k < N_THREADED; k++) {
        size_t n;
        uint8_t *p;
        while (!(p = mx_ring_peek(&pc.r, &n))) {
            if (batch)
                mx_ring_wait(&pc.r, 1);
            else
                mx_park_wait(&pc.cons, mx_ring_ready, &pc.r); /* sleeps while it is empty */
        }
        ck_assert_uint_eq(n, msg_len(k));
        ck_assert(same(p, k, n));
        mx_ring_release(&pc.r);
    }
    pthread_join(th, NULL);
    ck_assert(mx_ring_drained(&pc.r));
    mx_ring_destroy(&pc.r);
    mx_park_destroy(&pc.prod);
    mx_park_destroy(&pc.cons);
}

START_TEST(producer_and_consumer_threads)
{
    threaded(0);
}
END_TEST

START_TEST(batched_consumer)
{
    threaded(4096);
}
END_TEST

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One message, below the batch: the commit does not wake the consumer, the
 * flush does (long before its 20 s nap ends). */
static void *one_then_flush(void *arg)
{
    struct pc *pc = arg;
    struct timespec d = { 0, 50 * 1000000L };
    nanosleep(&d, NULL); /* the consumer is asleep by now, most likely */
    uint8_t *p = mx_ring_reserve(&pc->r, 8);
    fill(p, 1, 8);
    mx_ring_commit(&pc->r);
    mx_ring_flush(&pc->r);
    return NULL;
}

START_TEST(flush_wakes_a_batched_consumer)
{
    struct pc pc;
    ck_assert(mx_park_init(&pc.prod) && mx_park_init(&pc.cons));
    ck_assert(mx_ring_init(&pc.r, 16384, &pc.prod, &pc.cons));
    mx_ring_set_batch(&pc.r, SIZE_MAX);
    ck_assert(!mx_ring_wait(&pc.r, 1)); /* empty: the nap ends */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, one_then_flush, &pc), 0);
    double t0 = seconds();
    ck_assert(mx_ring_wait(&pc.r, 20000));
    ck_assert(seconds() - t0 < 10);
    size_t n;
    uint8_t *p = mx_ring_peek(&pc.r, &n);
    ck_assert_ptr_nonnull(p);
    ck_assert(n == 8 && same(p, 1, 8));
    mx_ring_release(&pc.r);
    pthread_join(th, NULL);
    mx_ring_destroy(&pc.r);
    mx_park_destroy(&pc.prod);
    mx_park_destroy(&pc.cons);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, order_sizes_and_wrap);
    tcase_add_test(t, producer_and_consumer_threads);
    tcase_add_test(t, batched_consumer);
    tcase_add_test(t, flush_wakes_a_batched_consumer);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(ring_suite)
