/* ring.c - the single-producer single-consumer message ring and the park. */
#include "core/ring.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define RING_WRAP UINT32_MAX /* header length of the filler before the wrap */
#define SPINS 64

struct ring_hdr {
    uint32_t len;
    uint32_t pad;
};

bool mx_park_init(struct mx_park *p)
{
    atomic_init(&p->waiting, 0);
    if (pthread_mutex_init(&p->m, NULL))
        return false;
    if (pthread_cond_init(&p->c, NULL)) {
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

void mx_park_wait(struct mx_park *p, bool (*ready)(void *arg), void *arg)
{
    for (int i = 0; i < SPINS; i++) {
        if (ready(arg))
            return;
        sched_yield();
    }
    pthread_mutex_lock(&p->m);
    /* Sequentially consistent: either the waker sees `waiting`, or this
     * thread's next ready() sees what the waker published before looking. */
    atomic_store(&p->waiting, 1);
    atomic_thread_fence(memory_order_seq_cst); /* the store above before the loads of ready() */
    while (!ready(arg))
        pthread_cond_wait(&p->c, &p->m);
    atomic_store(&p->waiting, 0);
    pthread_mutex_unlock(&p->m);
}

void mx_park_wake(struct mx_park *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (p && atomic_load(&p->waiting)) {
        pthread_mutex_lock(&p->m);
        pthread_cond_signal(&p->c);
        pthread_mutex_unlock(&p->m);
    }
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

static bool has_room(void *arg)
{
    struct room *w = arg;
    size_t tail = atomic_load_explicit(&w->r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&w->r->head, memory_order_acquire);
    return w->r->cap - (tail - head) >= w->need;
}

void *mx_ring_reserve(struct mx_ring *r, size_t n)
{
    size_t total = msg_size(n);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t pos = tail & (r->cap - 1);
    size_t skip = pos + total > r->cap ? r->cap - pos : 0; /* the filler up to the end */
    struct room w = { r, skip + total };
    if (!has_room(&w))
        mx_park_wait(r->producer, has_room, &w);
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
    mx_park_wake(r->consumer);
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
    mx_park_wake(r->producer);
}
