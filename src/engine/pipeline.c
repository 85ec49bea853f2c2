/* pipeline.c - dissecting with worker threads: the reader hands each TCP segment to the worker
 * that owns its flow, workers are engines of their own, and a merge puts their records back in
 * the order one thread would give them. The engine sees it through struct mx_pipeline_ops. */
#include "engine/internal.h"

#include "core/idmap.h"
#include "core/ring.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

/* ---- Worker threads ----
 *
 * With cfg.workers > 0 this thread reads and decodes, and hands each TCP
 * segment to the worker that owns its flow (place()) through a ring.
 * Workers are engines of their own (flows, reassembly, nDPI, dissectors)
 * whose sinks pack each record, with its key (struct rkey), into a
 * ring to the merge thread. The merge releases a record once no stream can
 * still produce a smaller key, renumbers flows in the order their flow_start
 * records pass, and hands it to the reporters: the output is that of one
 * thread, whatever the number of workers. */

enum { MSG_PKT, MSG_TICK, MSG_END, MSG_REC, MSG_LEVELS };

/* What a worker's flows and reassembly held while it handled one message:
 * the most at any moment, and at the end. The merge adds the other
 * workers' levels, so its peaks are those of one thread. */
struct levels {
    uint64_t flows_max, flows_end, bytes_max, bytes_end;
};

/* A message's head on a ring; a message too big for the ring is on the heap. */
struct msg {
    uint32_t kind;
    uint32_t wirelen; /* MSG_PKT */
    mx_time_t now;    /* MSG_PKT, MSG_TICK: the capture clock */
    struct rkey key;  /* MSG_TICK: its frame; MSG_REC: the record's key */
    void *heap;       /* the body, when not inline after this head */
};

/* A segment for a worker: the packet with its slices as offsets into the
 * bytes that follow, its flow key and its ports' protocols. */
struct pkt_body {
    struct mx_packet p;
    struct mx_flow_key k;
    const struct mx_proto *sp, *dp;
    uint32_t l3_len, payload_at;
};

/* A lower bound of the keys a worker will still produce, published with a
 * sequence lock so that the merge reads a consistent triple. */
struct key_pub {
    atomic_uint seq;
    atomic_uint_fast64_t frame, k2;
    atomic_uint cls;
};

struct worker {
    struct mx_pipe *pipe;
    struct mx_engine *eng;
    struct mx_sink *sink; /* eng's: packs records into `out` */
    pthread_t th;
    bool started;
    struct mx_ring in, out;
    struct mx_park park; /* this worker waits here */
    struct key_pub cur;
    atomic_uint nflows;          /* flows open, for the progress display */
    struct mx_idmap ids;         /* the merge's: this worker's flow numbers to the run's */
    uint64_t lv_flows, lv_bytes; /* the merge's: its latest levels */
};

struct mx_pipe {
    struct mx_engine *root;
    unsigned n;
    struct worker *w;
    struct mx_ring out;   /* the reader's own records (decode anomalies) */
    struct mx_sink *sink; /* the reader's packing sink */
    struct mx_park reader, merger;
    pthread_t merge_th;
    bool merge_started;
    /* Where the reader is: 2F while frame F's packet is being handed over,
     * 2F+1 while its clock tick is; a worker with nothing to do produces no
     * key below what this allows. */
    atomic_uint_fast64_t stage;
    uint64_t flows;                                        /* the merge's flow numbers */
    uint64_t sum_flows, sum_bytes, peak_flows, peak_bytes; /* the merge's: all workers' levels */
    bool failed;                                           /* the merge ran out of memory */
    /* Where flows go (place()): per bucket of 4-tuples, its worker + 1 (0:
     * none yet) and that worker's ring tail after the bucket's last segment
     * (the reader's), and the flows the worker holds in it (the workers'). */
    uint8_t *place;
    size_t *placed_at;
    atomic_uint *live;
    uint64_t load[MX_MAX_WORKERS]; /* the reader's: bytes handed to each worker lately */
    uint64_t load_sum;
    size_t ring_in;      /* RING_IN (tests: smaller) */
    uint32_t buckets;    /* BUCKETS (tests: fewer) */
    uint32_t flows_busy; /* a worker with this many flows gets new ones last */
};

/* Buckets of 4-tuples that place() places; LOAD_HALF bytes handed over
 * halve the workers' loads, so a load is about the last 2 * LOAD_HALF. */
#define BUCKETS (1u << 15)
#define LOAD_HALF (8u << 20)

/* Measured with 2 workers on the 1 GiB benchmarks (docs/bench.md): RING_IN
 * of 2 MiB left a worker idle while the other's ring was full (content: 4.1 s
 * against 3.5 with 4 MiB); RING_OUT of 4 or 2 MiB only added peak RSS. */
#define RING_IN (4u << 20)     /* bytes of segments queued for a worker */
#define RING_OUT (1u << 20)    /* bytes of records queued for the merge */
#define RING_READER (1u << 20) /* the reader's records (decode anomalies) */
/* A worker is woken when this much waits for it (or when the reader itself
 * waits, or at the end), not at every segment; the merge is never woken by
 * records. Both sleep a nap at most, from 1 ms doubling to 64 ms while
 * nothing happens: records wait that long at most in a quiet live capture. */
#define NAP_MIN_MS 1
#define NAP_MAX_MS 64

static struct rkey key_read(struct key_pub *p)
{
    struct rkey k;
    unsigned s1, s2;
    do {
        s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
        k.frame = atomic_load_explicit(&p->frame, memory_order_relaxed);
        k.k2 = atomic_load_explicit(&p->k2, memory_order_relaxed);
        k.cls = atomic_load_explicit(&p->cls, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&p->seq, memory_order_relaxed);
    } while ((s1 & 1) || s1 != s2);
    return k;
}

static void key_write(struct key_pub *p, const struct rkey *k)
{
    unsigned s = atomic_load_explicit(&p->seq, memory_order_relaxed);
    atomic_store_explicit(&p->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&p->frame, k->frame, memory_order_relaxed);
    atomic_store_explicit(&p->k2, k->k2, memory_order_relaxed);
    atomic_store_explicit(&p->cls, k->cls, memory_order_relaxed);
    atomic_store_explicit(&p->seq, s + 2, memory_order_release);
}

static int key_cmp(const struct rkey *a, const struct rkey *b)
{
    if (a->frame != b->frame)
        return a->frame < b->frame ? -1 : 1;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->k2 != b->k2)
        return a->k2 < b->k2 ? -1 : 1;
    return 0;
}

#ifdef MX_PIPE_STATS
#include <time.h>

static uint64_t now_ns(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* This thread's CPU time and counters; n[] as `names` says. */
static void stats_print(const char *who, const char *names)
{
    struct mx_pipe_stats *s = &mx_pipe_stats;
    fprintf(stderr,
            "pipe-stats %s cpu_s %.3f sleeps %" PRIu64 " wakes %" PRIu64 " room_waits %" PRIu64 " (%s) %" PRIu64
            " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
            who, now_ns(CLOCK_THREAD_CPUTIME_ID) / 1e9, s->sleeps, s->wakes, s->room_waits, names, s->n[0], s->n[1],
            s->n[2], s->n[3]);
}
#endif

/* Starts a message of `body` bytes: the body's address, or NULL when the
 * heap is out of memory. msg_end() publishes it. */
static void *msg_begin(struct mx_ring *r, uint32_t kind, size_t body, struct msg **mp)
{
    void *heap = NULL;
    size_t inl = body;
    *mp = NULL;
    if (sizeof(struct msg) + body > MX_RING_MAX_MSG(r)) {
        heap = malloc(body);
        if (!heap)
            return NULL;
        inl = 0;
    }
    struct msg *m = mx_ring_reserve(r, sizeof(*m) + inl);
    m->kind = kind;
    m->heap = heap;
    *mp = m;
    return heap ? heap : (void *)(m + 1);
}

/* A message without a body: a clock tick or the end of a stream (which
 * wakes the consumer). */
static void msg_signal(struct mx_ring *r, uint32_t kind, mx_time_t now, uint64_t frame)
{
    struct msg *m = mx_ring_reserve(r, sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    m->now = now;
    m->key.frame = frame;
    mx_ring_commit(r);
    if (kind == MSG_END)
        mx_ring_flush(r);
}

/* The next nap after one: doubled while nothing happened, else the least. */
static unsigned next_nap(unsigned nap, bool idle)
{
    if (!idle)
        return NAP_MIN_MS;
    return nap * 2 < NAP_MAX_MS ? nap * 2 : NAP_MAX_MS;
}

static void *msg_body(struct msg *m)
{
    return m->heap ? m->heap : (void *)(m + 1);
}

static void msg_done(struct mx_ring *r, struct msg *m)
{
    free(m->heap);
    mx_ring_release(r);
}

/* The packing reporter of a worker's (or the reader's) sink. */
struct packer {
    struct mx_ring *ring;
    const struct rkey *key;
    struct mx_engine *eng;
};

static void pack_event(void *ctx, const struct mx_event *ev)
{
    struct packer *pk = ctx;
    struct msg *m;
    void *b = msg_begin(pk->ring, MSG_REC, mx_event_packed_size(ev), &m);
    if (!b) {
        pk->eng->failed = true;
        return;
    }
    m->key = *pk->key;
    mx_event_pack(ev, b);
    mx_ring_commit(pk->ring);
}

static void pack_free(void *ctx)
{
    free(ctx);
}

static const struct mx_reporter_ops packer_ops = {
    .event = pack_event,
    .free = pack_free,
};

static struct mx_sink *packing_sink(struct mx_ring *ring, struct mx_engine *eng, bool wants_text)
{
    struct mx_sink *s = mx_sink_new();
    struct packer *pk = calloc(1, sizeof(*pk));
    if (!s || !pk || !mx_sink_add(s, &packer_ops, pk)) {
        free(pk);
        mx_sink_free(s);
        return NULL;
    }
    pk->ring = ring;
    pk->key = &eng->key;
    pk->eng = eng;
    mx_sink_set_wants_text(s, wants_text);
    return s;
}

void mx_pipeline_key(struct mx_engine *e)
{
    if (e->root != e)
        key_write(&e->root->pipe->w[e->shard].cur, &e->key);
}

/* The reader enters frame F's packet, or (tick) its clock tick. */
static void pipe_stage(struct mx_engine *e, uint64_t frame, bool tick)
{
    atomic_store_explicit(&e->pipe->stage, frame * 2 + tick, memory_order_release); /* the merge polls it */
}

static void send_levels(struct worker *w, uint32_t flows)
{
    struct mx_engine *e = w->eng;
    struct msg *m;
    struct levels *l = msg_begin(&w->out, MSG_LEVELS, sizeof(*l), &m);
    if (!l)
        return;
    m->key = e->key;
    l->flows_max = e->peak_flows > flows ? e->peak_flows : flows;
    l->flows_end = flows;
    l->bytes_max = e->pool.peak_bytes > e->pool.bytes ? e->pool.peak_bytes : e->pool.bytes;
    l->bytes_end = e->pool.bytes;
    mx_ring_commit(&w->out);
}

/* A worker: segments, clock ticks, then the end. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mx_engine *e = w->eng;
    char name[16];
    snprintf(name, sizeof(name), "mxray-w%u", e->shard);
    prctl(PR_SET_NAME, name); /* for top and perf */
    unsigned nap = NAP_MIN_MS;
    for (;;) {
        size_t n;
        struct msg *m;
        while (!(m = mx_ring_peek(&w->in, &n)))
            nap = next_nap(nap, !mx_ring_wait(&w->in, nap));
        nap = NAP_MIN_MS;
        e->now = m->now;
        uint32_t flows0 = mx_flow_count(e->flows);
        uint64_t bytes0 = e->pool.bytes;
        e->peak_flows = flows0; /* the peaks of this message alone */
        e->pool.peak_bytes = bytes0;
        if (m->kind == MSG_PKT) {
            struct pkt_body *b = msg_body(m);
            const uint8_t *bytes = (const uint8_t *)(b + 1);
            b->p.l3 = mx_slice_make(bytes, b->l3_len);
            b->p.payload.ptr = bytes + b->payload_at;
            mx_engine_set_key(e, b->p.frame, 0, 0);
            mx_pipeline_key(e);
            mx_engine_segment(e, &b->p, m->wirelen, &b->k, b->sp, b->dp);
        } else if (m->kind == MSG_TICK) {
            mx_engine_set_key(e, m->key.frame, 1, 0);
            mx_pipeline_key(e);
            mx_engine_expire(e, m->key.frame, m->now);
        } else {
            mx_engine_finish_flows(e);
            msg_signal(&w->out, MSG_END, e->now, FIN_FRAME);
            msg_done(&w->in, m);
#ifdef MX_PIPE_STATS
            stats_print(name, "-");
#endif
            return NULL;
        }
        uint32_t flows1 = mx_flow_count(e->flows);
        if (flows1 != flows0 || e->peak_flows != flows0 || e->pool.bytes != bytes0 || e->pool.peak_bytes != bytes0)
            send_levels(w, flows1);
        atomic_store_explicit(&w->nflows, flows1, memory_order_relaxed);
        msg_done(&w->in, m); /* the merge polls whether this worker is idle */
    }
}

/* Wakes every worker that sleeps with segments waiting. */
static void pipe_wake_workers(struct mx_pipe *pp)
{
    for (unsigned i = 0; i < pp->n; i++)
        if (!mx_ring_drained(&pp->w[i].in))
            mx_ring_flush(&pp->w[i].in);
}

static void pipe_send(struct mx_engine *e, unsigned wi, uint32_t kind, const struct mx_packet *p, uint32_t wirelen,
                      const struct mx_flow_key *k, const struct mx_proto *sp, const struct mx_proto *dp, uint64_t frame)
{
    struct worker *w = &e->pipe->w[wi];
    struct msg *m;
    if (kind != MSG_PKT) {
        msg_signal(&w->in, kind, e->now, frame);
        return;
    }
    /* The IP packet goes along for nDPI, with the payload inside it;
     * a defragmented datagram has only its payload. */
    uintptr_t l3p = (uintptr_t)p->l3.ptr, pp = (uintptr_t)p->payload.ptr;
    bool in_l3 = p->l3.len && (!p->payload.len || (pp >= l3p && pp + p->payload.len <= l3p + p->l3.len));
    size_t l3 = in_l3 ? p->l3.len : 0;
    size_t data = in_l3 ? l3 : p->payload.len;
    size_t inl = sizeof(struct msg) + sizeof(struct pkt_body) + data;
    if (!mx_ring_fits(&w->in, inl > MX_RING_MAX_MSG(&w->in) ? sizeof(struct msg) : inl))
        pipe_wake_workers(e->pipe); /* none sleeps on a part batch while this thread waits */
    struct pkt_body *b = msg_begin(&w->in, MSG_PKT, sizeof(*b) + data, &m);
    if (!b) {
        e->failed = true;
        return;
    }
    m->wirelen = wirelen;
    m->now = e->now;
    b->p = *p;
    b->k = *k;
    b->sp = sp;
    b->dp = dp;
    b->l3_len = (uint32_t)l3;
    b->payload_at = in_l3 && p->payload.len ? (uint32_t)(pp - l3p) : 0;
    if (data)
        memcpy(b + 1, in_l3 ? p->l3.ptr : p->payload.ptr, data);
    MX_STAT(n[0], 1);
    MX_STAT(n[1], data);
    mx_ring_commit(&w->in);
}

static uint32_t bucket_of(const struct mx_pipe *pp, const struct mx_flow_key *k)
{
    return mx_flow_key_shard(k) & (pp->buckets - 1);
}

/* Which worker owns flow k's bucket b. A bucket goes to the worker with the
 * fewest bytes handed to it lately and still on its ring, among those with
 * room for a quarter more of their share of flows (a full table would evict
 * flows one thread keeps). It stays there while that worker may hold one of
 * its flows: a segment still on the ring, or a flow open or lingering (the
 * workers count them, mx_pipeline_flow()). A hash alone shared out the few
 * flows that carry most bytes unevenly: one of two workers did twice the
 * other's work on mail with attachments. A segment of a bucket that had one
 * within the ring's size (the ring cannot still hold older ones) stays put
 * without reading what the workers write. */
static unsigned place(struct mx_pipe *pp, uint32_t b)
{
    unsigned w = pp->place[b];
    if (w) {
        struct worker *wk = &pp->w[w - 1];
        size_t at = pp->placed_at[b];
        if (atomic_load_explicit(&wk->in.tail, memory_order_relaxed) - at < pp->ring_in ||
            atomic_load_explicit(&wk->in.head, memory_order_acquire) < at ||
            atomic_load_explicit(&pp->live[b], memory_order_relaxed))
            return w - 1;
    }
    w = 0;
    uint64_t best = UINT64_MAX;
    for (unsigned i = 0; i < pp->n; i++) {
        struct mx_ring *r = &pp->w[i].in;
        uint64_t v = pp->load[i] + atomic_load_explicit(&r->tail, memory_order_relaxed) -
                     atomic_load_explicit(&r->head, memory_order_relaxed);
        if (atomic_load_explicit(&pp->w[i].nflows, memory_order_relaxed) >= pp->flows_busy)
            v += UINT64_MAX / 2;
        if (v < best) {
            best = v;
            w = i;
        }
    }
    MX_STAT(n[2], pp->place[b] != 0); /* placed again */
    pp->place[b] = (uint8_t)(w + 1);
    return w;
}

/* The reader handed `bytes` of bucket b to worker w. */
static void placed(struct mx_pipe *pp, uint32_t b, unsigned w, size_t bytes)
{
    pp->placed_at[b] = atomic_load_explicit(&pp->w[w].in.tail, memory_order_relaxed);
    pp->load[w] += bytes;
    pp->load_sum += bytes;
    if (pp->load_sum >= LOAD_HALF) {
        pp->load_sum = 0;
        for (unsigned i = 0; i < pp->n; i++)
            pp->load[i] /= 2;
    }
}

void mx_pipeline_flow(struct mx_engine *e, const struct mx_flow_key *k, int delta)
{
    if (e->root != e && e->root->pipe)
        atomic_fetch_add_explicit(&e->root->pipe->live[bucket_of(e->root->pipe, k)], (unsigned)delta,
                                  memory_order_release);
}

/* The fingerprint of everything the merge may wait for: each term only grows. */
static uint64_t merge_state(struct mx_pipe *pp)
{
    uint64_t v = atomic_load(&pp->stage) + atomic_load(&pp->out.tail);
    for (unsigned i = 0; i < pp->n; i++)
        v += atomic_load(&pp->w[i].out.tail) + atomic_load(&pp->w[i].in.head) + atomic_load(&pp->w[i].cur.seq);
    return v;
}

/* The merge sleeps until kicked: a producer waits for room, or a stream ends. */
struct merge_wait {
    struct mx_pipe *pp;
    unsigned kicks;
};

static bool merge_kicked(void *arg)
{
    struct merge_wait *mw = arg;
    return atomic_load(&mw->pp->merger.kicks) != mw->kicks;
}

/* Hands a worker's record to the reporters with the run's flow number: flows
 * are numbered as their flow_start records pass, which is the order one
 * thread gives them; a flow's last record is its "flow" record. */
static void merge_deliver(struct mx_pipe *pp, unsigned src, void *body)
{
    struct mx_event ev;
    mx_event_unpack(body, &ev);
    struct mx_idmap *ids = src ? &pp->w[src - 1].ids : NULL;
    uint64_t local = ev.flow;
    if (ids && local) {
        uint64_t g;
        if (!strcmp(ev.type, "flow_start")) {
            g = ++pp->flows;
            if (!mx_idmap_put(ids, local, (void *)(uintptr_t)g))
                pp->failed = true;
        } else {
            g = (uintptr_t)mx_idmap_get(ids, local);
        }
        ev.flow = g;
        struct mx_ev_field *f1 = ev.fields.n > 1 ? mx_buf_at(&ev.fields, 1) : NULL;
        if (f1 && f1->kind == MX_EV_UINT && f1->key && !strcmp(f1->key, "flow"))
            f1->v.u = g;
    }
    mx_sink_deliver(pp->root->out, &ev);
    if (ids && local && !strcmp(ev.type, "flow"))
        mx_idmap_take(ids, local);
}

/* A worker's levels, in the run's order: the run's peaks are the other
 * workers' levels plus this one's most, as one thread would have counted. */
static void merge_levels(struct mx_pipe *pp, struct worker *w, const struct levels *l)
{
    uint64_t of = pp->sum_flows - w->lv_flows, ob = pp->sum_bytes - w->lv_bytes;
    if (of + l->flows_max > pp->peak_flows)
        pp->peak_flows = of + l->flows_max;
    if (ob + l->bytes_max > pp->peak_bytes)
        pp->peak_bytes = ob + l->bytes_max;
    w->lv_flows = l->flows_end;
    w->lv_bytes = l->bytes_end;
    pp->sum_flows = of + l->flows_end;
    pp->sum_bytes = ob + l->bytes_end;
}

/* Stream i's bound: the least key it may still produce. A worker with
 * nothing to do can only receive the packet or tick the reader hands over. */
static struct rkey merge_bound(struct mx_pipe *pp, unsigned i)
{
    uint64_t stage = atomic_load_explicit(&pp->stage, memory_order_acquire);
    if (!i)
        return (struct rkey){ stage / 2 + (stage & 1), 0, 0 }; /* the reader */
    struct worker *w = &pp->w[i - 1];
    if (mx_ring_drained(&w->in))
        return (struct rkey){ stage / 2, 0, (uint32_t)(stage & 1) };
    return key_read(&w->cur);
}

/* Whether head h of stream b goes before all that stream i may produce
 * from bound lb on (ties: the lower stream first). */
static bool merge_before(const struct rkey *h, unsigned b, const struct rkey *lb, unsigned i)
{
    int c = key_cmp(h, lb);
    return c < 0 || (c == 0 && b < i);
}

/* The merge: stream 0 is the reader's records, 1..n the workers'. Each
 * stream's keys only grow. The least head is released once every empty
 * stream's bound (what it may still produce) is above it. Heads stay where
 * they were seen and bounds only grow, so a release looks again at its own
 * stream only, and at the bound of an empty stream that holds it back: no
 * other thread's cache lines are read per record but those. */
static void *merge_main(void *arg)
{
    struct mx_pipe *pp = arg;
    unsigned ns = pp->n + 1, live = ns;
    bool ended[MX_MAX_WORKERS + 1] = { false };
    for (unsigned i = 1; i < ns; i++)
        if (!pp->w[i - 1].started) {
            ended[i] = true; /* it never ran: a failed start */
            live--;
        }
    struct msg *head[MX_MAX_WORKERS + 1] = { NULL };
    struct rkey lb[MX_MAX_WORKERS + 1]; /* empty streams' bounds, as last read */
    memset(lb, 0, sizeof(lb));          /* below every key: read when needed */
    unsigned nap = NAP_MIN_MS;
    while (live) {
#ifdef MX_PIPE_STATS
        uint64_t s0 = now_ns(CLOCK_MONOTONIC);
#endif
        struct merge_wait mw = { pp, atomic_load(&pp->merger.kicks) };
        int best = -1;
        for (unsigned i = 0; i < ns; i++)
            if (head[i] && (best < 0 || key_cmp(&head[i]->key, &head[best]->key) < 0))
                best = (int)i;
        bool go = best >= 0, seen = false;
        for (unsigned i = 0; i < ns && !seen; i++) {
            if (ended[i] || head[i] || (best >= 0 && merge_before(&head[best]->key, (unsigned)best, &lb[i], i)))
                continue;
            /* The bound first, then the ring: what was produced meanwhile is seen. */
            lb[i] = merge_bound(pp, i);
            struct mx_ring *r = i ? &pp->w[i - 1].out : &pp->out;
            size_t n;
            struct msg *m = mx_ring_peek(r, &n);
            if (m && m->kind == MSG_END) {
                msg_done(r, m);
                ended[i] = true;
                live--;
                seen = true;
            } else if (m) {
                head[i] = m;
                seen = true; /* a new head: choose again */
            } else if (best < 0 || !merge_before(&head[best]->key, (unsigned)best, &lb[i], i)) {
                go = false;
            }
        }
        MX_STAT(n[3], now_ns(CLOCK_MONOTONIC) - s0);
        if (seen)
            continue;
        if (go) {
            struct mx_ring *r = best ? &pp->w[best - 1].out : &pp->out;
            if (head[best]->kind == MSG_LEVELS) {
                merge_levels(pp, &pp->w[best - 1], msg_body(head[best]));
                MX_STAT(n[0], 1);
            } else {
#ifdef MX_PIPE_STATS
                uint64_t t0 = now_ns(CLOCK_MONOTONIC);
#endif
                merge_deliver(pp, (unsigned)best, msg_body(head[best]));
                MX_STAT(n[1], 1);
                MX_STAT(n[2], now_ns(CLOCK_MONOTONIC) - t0);
            }
            msg_done(r, head[best]);
            /* Its next head, if one waits; else its bound is read again
             * before its ring (the bound read before this head is stale:
             * what followed it may lie below). */
            size_t n;
            struct msg *m = mx_ring_peek(r, &n);
            head[best] = m && m->kind != MSG_END ? m : NULL;
            memset(&lb[best], 0, sizeof(lb[best]));
            continue;
        }
        if (!live)
            break;
        uint64_t before = merge_state(pp);
        pipe_wake_workers(pp); /* the least head may wait for one that sleeps */
        mx_park_wait_ms(&pp->merger, merge_kicked, &mw, nap);
        nap = next_nap(nap, merge_state(pp) == before);
    }
#ifdef MX_PIPE_STATS
    stats_print("merge", "levels records deliver_ns scan_ns");
#endif
    return NULL;
}

static void *merge_thread(void *arg)
{
    prctl(PR_SET_NAME, "mxray-merge"); /* for top and perf */
    return merge_main(arg);
}

/* Zeroed memory for n objects whose type is aligned to cache lines (the
 * rings' indexes are _Alignas(64)): malloc only promises max_align_t. */
static void *calloc_lines(size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - 63) / size)
        return NULL;
    size_t bytes = (n * size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes ? bytes : 64);
    return p;
}

bool mx_pipeline_start(struct mx_engine *e, unsigned n, char *err, size_t errlen)
{
    struct mx_pipe *pp = calloc_lines(1, sizeof(*pp));
    if (!pp)
        goto oom;
    e->pipe = pp;
    pp->root = e;
    pp->w = calloc_lines(n, sizeof(*pp->w));
    if (!pp->w || !mx_park_init(&pp->reader) || !mx_park_init(&pp->merger))
        goto oom;
    atomic_init(&pp->stage, 0);
    /* tests/workers.sh: rings that fill at once, and 16 buckets that many
     * flows share, so that buckets are placed again all the time. */
    bool small = getenv("MXRAY_PIPE_SMALL") != NULL;
    pp->ring_in = small ? 4096 : RING_IN;
    pp->buckets = small ? 16 : BUCKETS;
    pp->place = calloc(pp->buckets, sizeof(*pp->place));
    pp->placed_at = calloc(pp->buckets, sizeof(*pp->placed_at));
    pp->live = calloc(pp->buckets, sizeof(*pp->live));
    if (!pp->place || !pp->placed_at || !pp->live)
        goto oom;
    if (!mx_ring_init(&pp->out, RING_READER, &pp->reader, &pp->merger))
        goto oom;
    mx_ring_set_batch(&pp->out, SIZE_MAX);
    pp->sink = packing_sink(&pp->out, e, mx_sink_wants_text(e->out));
    if (!pp->sink)
        goto oom;
    struct mx_config wc = e->cfg;
    wc.workers = 0;
    wc.progress = NULL;
    wc.max_flows = (e->cfg.max_flows + n - 1) / n;
    pp->flows_busy = wc.max_flows - wc.max_flows / 4;
    wc.memory = e->cfg.memory / n;
    uint64_t total = e->cfg.reasm.max_total_bytes ? e->cfg.reasm.max_total_bytes : UINT64_C(256) << 20;
    wc.reasm.max_total_bytes = total / n ? total / n : 1;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &pp->w[i];
        w->pipe = pp;
        pp->n = i + 1;
        if (!mx_park_init(&w->park))
            goto oom;
        if (!mx_ring_init(&w->in, pp->ring_in, &pp->reader, &w->park) ||
            !mx_ring_init(&w->out, RING_OUT, &w->park, &pp->merger))
            goto oom;
        mx_ring_set_batch(&w->in, pp->ring_in / 16);
        mx_ring_set_batch(&w->out, SIZE_MAX);
        w->eng = mx_engine_new(&wc, NULL, err, errlen);
        if (!w->eng)
            return false;
        w->eng->root = e;
        w->eng->shard = i;
        w->sink = packing_sink(&w->out, w->eng, mx_sink_wants_text(e->out));
        if (!w->sink)
            goto oom;
        w->eng->sink = w->eng->out = w->sink;
    }
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&pp->w[i].th, NULL, worker_main, &pp->w[i]))
            goto threads;
        pp->w[i].started = true;
    }
    if (pthread_create(&pp->merge_th, NULL, merge_thread, pp))
        goto threads;
    pp->merge_started = true;
    e->sink = pp->sink;
    e->pl = &mx_pipeline_threads;
    return true;
threads:
    snprintf(err, errlen, "cannot start threads");
    return false;
oom:
    snprintf(err, errlen, "out of memory");
    return false;
}

static void pipe_free(struct mx_pipe *pp)
{
    if (!pp)
        return;
    for (unsigned i = 0; i < pp->n; i++) {
        struct worker *w = &pp->w[i];
        mx_engine_free(w->eng);
        mx_sink_free(w->sink);
        mx_idmap_free(&w->ids);
        mx_ring_destroy(&w->in);
        mx_ring_destroy(&w->out);
        mx_park_destroy(&w->park);
    }
    free(pp->w);
    free(pp->place);
    free(pp->placed_at);
    free(pp->live);
    mx_sink_free(pp->sink);
    mx_ring_destroy(&pp->out);
    mx_park_destroy(&pp->reader);
    mx_park_destroy(&pp->merger);
    free(pp);
}

/* Ends the workers (they close their flows) and the merge, and adds the
 * workers' counters to the run's. */
static void pipe_finish(struct mx_engine *e)
{
    struct mx_pipe *pp = e->pipe;
    pipe_stage(e, FIN_FRAME, false);
    for (unsigned i = 0; i < pp->n; i++)
        if (pp->w[i].started)
            pipe_send(e, i, MSG_END, NULL, 0, NULL, NULL, NULL, FIN_FRAME);
    msg_signal(&pp->out, MSG_END, e->now, FIN_FRAME);
#ifdef MX_PIPE_STATS
    stats_print("reader", "segments bytes_copied buckets_placed_again -");
#endif
    for (unsigned i = 0; i < pp->n; i++)
        if (pp->w[i].started)
            pthread_join(pp->w[i].th, NULL);
    if (pp->merge_started)
        pthread_join(pp->merge_th, NULL);
    else
        merge_main(pp); /* it failed to start: what the workers wrote is merged here */
    for (unsigned i = 0; i < pp->n; i++) {
        struct mx_engine *w = pp->w[i].eng;
        mx_counters_add(&e->c, &w->c);
        e->failed |= w->failed || mx_sink_dropped(pp->w[i].sink) > 0;
    }
    e->c.flows_total = pp->flows; /* a worker's count numbered its own flows */
    e->peak_flows = (uint32_t)pp->peak_flows;
    e->pool.peak_bytes = pp->peak_bytes;
    e->failed |= pp->failed || mx_sink_dropped(pp->sink) > 0;
    e->sink = e->out;
    e->pipe = NULL;
    e->pl = &mx_pipeline_inline;
    pipe_free(pp);
}

void mx_pipeline_stop(struct mx_engine *e)
{
    if (e->pipe)
        pipe_finish(e); /* not finished: the threads still end */
}

/* A segment goes to the worker that owns its flow. */
static void threads_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen,
                            const struct mx_flow_key *k, const struct mx_proto *sp, const struct mx_proto *dp)
{
    uint32_t b = bucket_of(e->pipe, k);
    unsigned w = place(e->pipe, b);
    pipe_send(e, w, MSG_PKT, p, wirelen, k, sp, dp, p->frame);
    placed(e->pipe, b, w, sizeof(struct pkt_body) + p->payload.len);
}

/* Every worker expires its flows at the same frame. */
static void threads_tick(struct mx_engine *e, uint64_t frame)
{
    for (unsigned i = 0; i < e->pipe->n; i++)
        pipe_send(e, i, MSG_TICK, NULL, 0, NULL, NULL, NULL, frame);
}

static uint32_t threads_flows(struct mx_engine *e)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < e->pipe->n; i++)
        n += atomic_load_explicit(&e->pipe->w[i].nflows, memory_order_relaxed);
    return n;
}

const struct mx_pipeline_ops mx_pipeline_threads = {
    .segment = threads_segment,
    .tick = threads_tick,
    .stage = pipe_stage,
    .finish = pipe_finish,
    .flows = threads_flows,
};
