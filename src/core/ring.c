/* ring.c - the single-producer single-consumer message ring and the park. */
#include "core/ring.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MX_PIPE_STATS
_Thread_local struct mx_pipe_stats mx_pipe_stats;
#endif

#define RING_WRAP UINT32_MAX /* header length of the filler before the wrap */
/* Checks before sleeping. No sched_yield(): with more threads than CPUs a
 * yielding waiter stays runnable and takes turns from the threads it waits
 * for (2 CPUs: the reader, two workers and the merge). */
#define SPINS 32

struct ring_hdr {
    uint32_t len;
    uint32_t pad;
};

bool mx_park_init(struct mx_park *p)
{
    atomic_init(&p->waiting, 0);
    atomic_init(&p->kicks, 0);
    if (pthread_mutex_init(&p->m, NULL))
        return false;
    pthread_condattr_t a;
    bool ok = !pthread_condattr_init(&a);
    ok = ok && !pthread_condattr_setclock(&a, CLOCK_MONOTONIC) && !pthread_cond_init(&p->c, &a);
    pthread_condattr_destroy(&a);
    if (!ok) {
        pthread_mutex_destroy(&p->m);
        return false;
    }
    return true;
}

void mx_park_destroy(struct mx_park *p)
{
    pthread_cond_destroy(&p->c);
    pthread_mutex_destroy(&p->m);
}

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Sleeps until ready(arg), or until `until` (CLOCK_MONOTONIC) when not NULL. */
static bool park_sleep(struct mx_park *p, bool (*ready)(void *arg), void *arg, const struct timespec *until)
{
    for (int i = 0; i < SPINS; i++) {
        if (ready(arg))
            return true;
        relax();
    }
    pthread_mutex_lock(&p->m);
    bool ok;
    for (;;) {
        /* Sequentially consistent: either the waker sees `waiting`, or this
         * thread's next ready() sees what the waker published before looking.
         * A waker clears it: those that follow need not signal again. */
        atomic_store(&p->waiting, 1);
        atomic_thread_fence(memory_order_seq_cst); /* the store above before the loads of ready() */
        if ((ok = ready(arg)))
            break;
        MX_STAT(sleeps, 1);
        if (!until)
            pthread_cond_wait(&p->c, &p->m);
        else if (pthread_cond_timedwait(&p->c, &p->m, until)) {
            ok = ready(arg); /* timed out */
            break;
        }
    }
    atomic_store(&p->waiting, 0);
    pthread_mutex_unlock(&p->m);
    return ok;
}

void mx_park_wait(struct mx_park *p, bool (*ready)(void *arg), void *arg)
{
    park_sleep(p, ready, arg, NULL);
}

bool mx_park_wait_ms(struct mx_park *p, bool (*ready)(void *arg), void *arg, unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return park_sleep(p, ready, arg, &t);
}

void mx_park_wake(struct mx_park *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (p && atomic_load(&p->waiting)) {
        MX_STAT(wakes, 1);
        pthread_mutex_lock(&p->m);
        atomic_store_explicit(&p->waiting, 0, memory_order_relaxed);
        pthread_cond_signal(&p->c);
        pthread_mutex_unlock(&p->m);
    }
}

void mx_park_kick(struct mx_park *p)
{
    atomic_fetch_add(&p->kicks, 1);
    mx_park_wake(p);
}

bool mx_ring_init(struct mx_ring *r, size_t cap, struct mx_park *producer, struct mx_park *consumer)
{
    memset(r, 0, sizeof(*r));
    size_t c = 4096;
    while (c < cap)
        c *= 2;
    r->buf = malloc(c);
    if (!r->buf)
        return false;
    r->cap = c;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->data_wait, 0);
    atomic_init(&r->room_wait, 0);
    r->producer = producer;
    r->consumer = consumer;
    return true;
}

void mx_ring_destroy(struct mx_ring *r)
{
    free(r->buf);
    r->buf = NULL;
}

static size_t msg_size(size_t n)
{
    return sizeof(struct ring_hdr) + ((n + 7) & ~(size_t)7);
}

struct room {
    struct mx_ring *r;
    size_t need;
};

static size_t ring_free(struct mx_ring *r)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    return r->cap - (tail - head);
}

static bool has_room(void *arg)
{
    struct room *w = arg;
    return ring_free(w->r) >= w->need;
}

/* What the consumer must free before it wakes a waiting producer. */
static size_t low_water(const struct mx_ring *r)
{
    return r->cap / 4;
}

/* The filler before the wrap and the message: the room a message of n bytes takes. */
static size_t room_for(const struct mx_ring *r, size_t n)
{
    size_t total = msg_size(n);
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed) & (r->cap - 1);
    return (pos + total > r->cap ? r->cap - pos : 0) + total;
}

bool mx_ring_fits(struct mx_ring *r, size_t n)
{
    return ring_free(r) >= room_for(r, n);
}

void *mx_ring_reserve(struct mx_ring *r, size_t n)
{
    size_t total = msg_size(n);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t pos = tail & (r->cap - 1);
    size_t skip = pos + total > r->cap ? r->cap - pos : 0; /* the filler up to the end */
    struct room w = { r, skip + total };
    if (!has_room(&w)) {
        mx_ring_flush(r); /* it may sleep on a batch that will not come */
        size_t low = low_water(r);
        w.need = w.need > low ? w.need : low; /* woken once that much is free */
        MX_STAT(room_waits, 1);
        atomic_store(&r->room_wait, 1);
        mx_park_wait(r->producer, has_room, &w);
        atomic_store_explicit(&r->room_wait, 0, memory_order_relaxed);
    }
    if (skip) {
        struct ring_hdr *f = (struct ring_hdr *)(r->buf + pos);
        f->len = RING_WRAP;
        pos = 0;
    }
    struct ring_hdr *h = (struct ring_hdr *)(r->buf + pos);
    h->len = (uint32_t)n;
    r->wpos = tail + skip + total;
    return h + 1;
}

void mx_ring_commit(struct mx_ring *r)
{
    atomic_store_explicit(&r->tail, r->wpos, memory_order_release);
    if (!r->batch) {
        mx_park_wake(r->consumer);
        return;
    }
    /* As in mx_park_wake(): either mx_ring_wait() sees the tail, or this
     * sees data_wait. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->data_wait, memory_order_relaxed) &&
        r->wpos - atomic_load_explicit(&r->head, memory_order_relaxed) >= r->batch)
        mx_park_wake(r->consumer);
}

bool mx_ring_wait(struct mx_ring *r, unsigned ms)
{
    atomic_store(&r->data_wait, 1);
    bool ok = mx_park_wait_ms(r->consumer, mx_ring_ready, r, ms);
    atomic_store_explicit(&r->data_wait, 0, memory_order_relaxed);
    return ok;
}

void mx_ring_set_batch(struct mx_ring *r, size_t bytes)
{
    r->batch = bytes;
}

void mx_ring_flush(struct mx_ring *r)
{
    if (r->consumer)
        mx_park_kick(r->consumer);
}

void *mx_ring_peek(struct mx_ring *r, size_t *n)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head == tail)
        return NULL;
    struct ring_hdr *h = (struct ring_hdr *)(r->buf + (head & (r->cap - 1)));
    if (h->len == RING_WRAP) {
        head += r->cap - (head & (r->cap - 1));
        h = (struct ring_hdr *)r->buf;
    }
    r->rpos = head + msg_size(h->len);
    *n = h->len;
    return h + 1;
}

void mx_ring_release(struct mx_ring *r)
{
    atomic_store_explicit(&r->head, r->rpos, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst); /* either reserve()'s wait sees the head, or this room_wait */
    if (atomic_load_explicit(&r->room_wait, memory_order_relaxed) &&
        r->cap - (atomic_load_explicit(&r->tail, memory_order_acquire) - r->rpos) >= low_water(r))
        mx_park_wake(r->producer);
}
