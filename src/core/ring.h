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
    atomic_uint kicks; /* mx_park_kick()s so far */
};

bool mx_park_init(struct mx_park *p);
void mx_park_destroy(struct mx_park *p);
/* Returns once ready(arg) is true: spins a little, then sleeps until woken. */
void mx_park_wait(struct mx_park *p, bool (*ready)(void *arg), void *arg);
/* The same, but returns after `ms` milliseconds at most: whether ready(arg).
 * For a thread whose wakers do not wake it at every message (batches). */
bool mx_park_wait_ms(struct mx_park *p, bool (*ready)(void *arg), void *arg, unsigned ms);
/* Wakes p's thread if it sleeps; call after publishing what it waits for. */
void mx_park_wake(struct mx_park *p);
/* Counts a kick and wakes p's thread: for a thread that sleeps until its
 * `kicks` change, or a while. */
void mx_park_kick(struct mx_park *p);

struct mx_ring {
    uint8_t *buf;
    size_t cap;                      /* a power of two */
    _Alignas(64) atomic_size_t head; /* consumer: bytes released so far */
    _Alignas(64) atomic_size_t tail; /* producer: bytes published so far */
    /* Written only around sleeps, read at every message: a line of their own. */
    _Alignas(64) atomic_int data_wait;   /* consumer: sleeps in mx_ring_wait() */
    atomic_int room_wait;                /* producer: sleeps until a quarter is free */
    _Alignas(64) size_t wpos;            /* producer: end of the reserved message */
    size_t batch;                        /* producer: bytes waiting that wake the consumer */
    _Alignas(64) size_t rpos;            /* consumer: end of the message peeked at */
    struct mx_park *producer, *consumer; /* who to wake (not owned) */
};

/* Messages are 8-byte aligned; one may take at most cap/4 bytes. */
#define MX_RING_MAX_MSG(r) ((r)->cap / 4)

bool mx_ring_init(struct mx_ring *r, size_t cap, struct mx_park *producer, struct mx_park *consumer);
void mx_ring_destroy(struct mx_ring *r);

/* Producer: room for a message of n bytes (n <= MX_RING_MAX_MSG), waiting
 * while the ring is full; then mx_ring_commit() publishes it. A producer that
 * waits wakes the consumer first, and is woken once a quarter of the ring is
 * free (not at every message the consumer releases). */
void *mx_ring_reserve(struct mx_ring *r, size_t n);
void mx_ring_commit(struct mx_ring *r);
/* Producer: whether a message of n bytes fits without waiting. */
bool mx_ring_fits(struct mx_ring *r, size_t n);
/* Producer: mx_ring_commit() wakes a consumer sleeping in mx_ring_wait()
 * only once `bytes` wait in the ring (SIZE_MAX: never; the consumer polls),
 * so that it wakes once per batch. With the default 0 it wakes the consumer's
 * park at every message. */
void mx_ring_set_batch(struct mx_ring *r, size_t bytes);
/* Producer: kicks the consumer's park, whatever waits (the end, or before
 * the producer itself waits). */
void mx_ring_flush(struct mx_ring *r);

/* Consumer: the oldest message and its length, or NULL when the ring is
 * empty; mx_ring_release() frees it. */
void *mx_ring_peek(struct mx_ring *r, size_t *n);
void mx_ring_release(struct mx_ring *r);

/* Consumer: sleeps until a message waits, `ms` milliseconds at most (the
 * producer may wake it only once a batch waits): whether one waits. */
bool mx_ring_wait(struct mx_ring *r, unsigned ms);

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

#ifdef MX_PIPE_STATS
/* Measurement builds (cmake -DMX_PIPE_STATS=ON): what a thread's waits and
 * hand-overs cost, printed on stderr when it ends (pipeline.c). */
struct mx_pipe_stats {
    uint64_t sleeps, wakes, room_waits, n[4];
};
extern _Thread_local struct mx_pipe_stats mx_pipe_stats;
#define MX_STAT(f, v) (mx_pipe_stats.f += (v))
#else
#define MX_STAT(f, v) ((void)0)
#endif

#endif
