/* ring.h - a single-producer single-consumer ring of variable-size messages,
 * and a parking place for a thread that waits on rings. Lock-free on the
 * fast path: the producer owns `tail`, the consumer `head`; each publishes
 * its index with a release store and reads the other's with an acquire load. */
#ifndef MX_RING_H
#define MX_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a thread sleeps when it cannot go on: waking costs one atomic load
 * when nobody sleeps. */
struct mx_park {
    pthread_mutex_t m;
    pthread_cond_t c;
    atomic_int waiting;
};

bool mx_park_init(struct mx_park *p);
void mx_park_destroy(struct mx_park *p);
/* Returns once ready(arg) is true: spins a little, then sleeps until woken. */
void mx_park_wait(struct mx_park *p, bool (*ready)(void *arg), void *arg);
/* Wakes p's thread if it sleeps; call after publishing what it waits for. */
void mx_park_wake(struct mx_park *p);

struct mx_ring {
    uint8_t *buf;
    size_t cap;                          /* a power of two */
    _Alignas(64) atomic_size_t head;     /* consumer: bytes released so far */
    _Alignas(64) atomic_size_t tail;     /* producer: bytes published so far */
    _Alignas(64) size_t wpos;            /* producer: end of the reserved message */
    _Alignas(64) size_t rpos;            /* consumer: end of the message peeked at */
    struct mx_park *producer, *consumer; /* who to wake (not owned) */
};

/* Messages are 8-byte aligned; one may take at most cap/4 bytes. */
#define MX_RING_MAX_MSG(r) ((r)->cap / 4)

bool mx_ring_init(struct mx_ring *r, size_t cap, struct mx_park *producer, struct mx_park *consumer);
void mx_ring_destroy(struct mx_ring *r);

/* Producer: room for a message of n bytes (n <= MX_RING_MAX_MSG), waiting
 * while the ring is full; then mx_ring_commit() publishes it. */
void *mx_ring_reserve(struct mx_ring *r, size_t n);
void mx_ring_commit(struct mx_ring *r);

/* Consumer: the oldest message and its length, or NULL when the ring is
 * empty; mx_ring_release() frees it. */
void *mx_ring_peek(struct mx_ring *r, size_t *n);
void mx_ring_release(struct mx_ring *r);

/* Whether a message waits (for mx_park_wait; r is the ring). */
static inline bool mx_ring_ready(void *r)
{
    struct mx_ring *q = r;
    return atomic_load_explicit(&q->head, memory_order_relaxed) != atomic_load_explicit(&q->tail, memory_order_acquire);
}

/* Whether every published message has been released (acquire). */
static inline bool mx_ring_drained(struct mx_ring *r)
{
    return atomic_load_explicit(&r->head, memory_order_acquire) == atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
