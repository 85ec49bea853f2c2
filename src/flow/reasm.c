/* reasm.c - TCP stream reassembly: both directions, in order, exactly once, in dialogue order.
 *
 * Each direction keeps one list of segments sorted by sequence number, and
 * the same segments in a red-black tree to find where one arriving out of
 * order goes. The
 * segments before `next` were delivered and are kept until the peer
 * acknowledges them, so that a retransmission can be compared with what was
 * delivered; the segments from `next` on wait for a hole to fill or for their
 * turn in the dialogue. Segments never overlap: an arriving segment is cut
 * into the pieces nobody has seen yet, and the bytes it shares with earlier
 * segments are compared (first seen wins, RFC 9293 §3.10.7.4 leaves the choice
 * to the receiver; we follow what Linux and Wireshark do).
 *
 * Dialogue order comes from acknowledgements: a segment that acknowledges
 * peer bytes up to A was sent after its sender received them, so it is held
 * until the peer's stream has been delivered up to A. Otherwise delivery
 * follows capture order.
 */
#include "flow/reasm.h"

#include <stdlib.h>
#include <string.h>

/* A sequence distance larger than this is not plausible in one connection. */
#define MX_SEQ_PLAUSIBLE (UINT32_C(1) << 30)
/* Delivered segments further than this behind `next` are dropped: what a
 * direction holds then spans less than 2^31 (retained bytes up to this far
 * back, pending bytes up to MX_SEQ_PLAUSIBLE plus one segment ahead), so
 * serial-number comparison orders it totally (RFC 1982 §3.2) and the tree
 * stays sorted. */
#define MX_SEQ_RETAIN_SPAN (UINT32_C(1) << 29)
/* Segments up to this many bytes come from the pool's free list. */
#define MX_SEG_SMALL 2048u
#define MX_SEG_FREE_MAX 4096u

struct mx_seg {
    struct mx_seg *prev, *next;
    RB_ENTRY(mx_seg) rb;
    uint32_t seq, len;
    uint32_t ack; /* the ACK the segment carried, in the peer's space */
    bool has_ack;
    bool nodata; /* bytes known lost (cut by the snaplen): delivered as a gap */
    mx_frame_t frame;
    mx_time_t ts;
    uint32_t cap;
    uint8_t data[];
};

static inline uint32_t seg_end(const struct mx_seg *s)
{
    return s->seq + s->len;
}

static int seg_cmp(const struct mx_seg *a, const struct mx_seg *b)
{
    return MX_SEQ_LT(a->seq, b->seq) ? -1 : a->seq != b->seq;
}

/* Extern, under the tree's prefix: Debian's libbsd leaves __unused, which
 * RB_GENERATE_STATIC needs, undefined. */
RB_PROTOTYPE(mx_seg_tree, mx_seg, rb, seg_cmp)
RB_GENERATE(mx_seg_tree, mx_seg, rb, seg_cmp)

void mx_reasm_pool_init(struct mx_reasm_pool *pool, const struct mx_reasm_limits *lim)
{
    memset(pool, 0, sizeof(*pool));
    if (lim)
        pool->lim = *lim;
    if (!pool->lim.max_pending_bytes)
        pool->lim.max_pending_bytes = 1u << 20;
    if (!pool->lim.max_segments)
        pool->lim.max_segments = 4096;
    if (!pool->lim.retain_bytes)
        pool->lim.retain_bytes = 64u << 10;
    if (!pool->lim.reorder_window)
        pool->lim.reorder_window = 16;
    if (!pool->lim.max_total_bytes)
        pool->lim.max_total_bytes = UINT64_C(256) << 20;
}

void mx_reasm_pool_destroy(struct mx_reasm_pool *pool)
{
    struct mx_seg *s = pool->free_list;
    while (s) {
        struct mx_seg *n = s->next;
        free(s);
        s = n;
    }
    pool->free_list = NULL;
    pool->n_free = 0;
}

static struct mx_seg *seg_alloc(struct mx_reasm_pool *pool, uint32_t len)
{
    struct mx_seg *s;
    if (len <= MX_SEG_SMALL && pool->free_list) {
        s = pool->free_list;
        pool->free_list = s->next;
        pool->n_free--;
    } else {
        uint32_t cap = len <= MX_SEG_SMALL ? MX_SEG_SMALL : len;
        s = malloc(sizeof(*s) + cap);
        if (!s)
            return NULL;
        s->cap = cap;
    }
    s->prev = s->next = NULL;
    return s;
}

static void seg_release(struct mx_reasm_pool *pool, struct mx_seg *s)
{
    if (s->cap == MX_SEG_SMALL && pool->n_free < MX_SEG_FREE_MAX) {
        s->next = pool->free_list;
        pool->free_list = s;
        pool->n_free++;
    } else {
        free(s);
    }
}

/* First segment not yet delivered, or NULL. */
static inline struct mx_seg *first_pending(const struct mx_half *h)
{
    return h->pend;
}

static void unlink_seg(struct mx_reasm_pool *pool, struct mx_half *h, struct mx_seg *s, bool delivered)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        h->tail = s->prev;
    RB_REMOVE(mx_seg_tree, &h->tree, s);
    h->n_segs--;
    if (delivered)
        h->retained -= s->len;
    else
        h->pending -= s->len;
    if (!s->nodata)
        pool->bytes -= s->len;
    seg_release(pool, s);
}

/* Frees delivered segments from the head: all of them, or those the peer
 * acknowledged, or as many as the retention caps demand, or those too far
 * behind `next` to keep the span of h ordered. */
static void drop_retained(struct mx_reasm_pool *pool, struct mx_half *h, const struct mx_half *peer, bool all)
{
    while (h->head && h->head != h->pend) {
        struct mx_seg *s = h->head;
        bool acked = peer->ack_valid && MX_SEQ_GEQ(peer->ack, seg_end(s));
        bool over = h->retained > pool->lim.retain_bytes || pool->bytes > pool->lim.max_total_bytes ||
                    h->next - s->seq > MX_SEQ_RETAIN_SPAN;
        if (!all && !acked && !over)
            break;
        unlink_seg(pool, h, s, true);
    }
}

static void note_anomaly(const struct mx_reasm_ops *ops, void *ud, enum mx_dir d, enum mx_core_anomaly an, mx_frame_t f,
                         mx_time_t ts)
{
    if (ops->anomaly)
        ops->anomaly(ud, d, an, f, ts);
}

/* Declares [next, upto) of direction d a gap (RFC 9293 gives no help here: the
 * bytes were sent but the capture never saw them). */
static bool declare_gap(struct mx_reasm *r, enum mx_dir d, uint32_t upto, const struct mx_reasm_ops *ops, void *ud,
                        mx_frame_t f, mx_time_t ts)
{
    struct mx_half *h = &r->h[d];
    uint32_t len = upto - h->next;
    if (!MX_SEQ_GT(upto, h->next) || len > MX_SEQ_PLAUSIBLE)
        return false;
    /* Its time (docs/manual.md, "Time order"): the missing bytes were sent
     * before the held ones that follow them; f stays the settling packet. */
    const struct mx_seg *p = first_pending(h);
    if (p && p->seq == upto && (!f || p->ts < ts))
        ts = p->ts;
    if (ops->gap)
        ops->gap(ud, d, h->off, len, f, ts);
    h->gaps++;
    h->gap_bytes += len;
    h->gap_lo = h->next;
    h->gap_hi = upto;
    h->had_gap = true;
    h->next = upto;
    h->off += len;
    h->hole_acked = false;
    return true;
}

/* Peer `o` is behind `ack`: the acknowledged bytes have not been delivered. */
static bool behind(const struct mx_half *o, uint32_t ack)
{
    return o->synced && MX_SEQ_GT(ack, o->next) && ack - o->next <= MX_SEQ_PLAUSIBLE;
}

static void deliver_fin(struct mx_half *h, enum mx_dir d, const struct mx_reasm_ops *ops, void *ud, mx_frame_t f,
                        mx_time_t ts)
{
    if (h->fin && !h->fin_done && h->next == h->fin_seq) {
        h->fin_done = true;
        h->next++; /* the FIN occupies one sequence number (RFC 9293 §3.4) */
        if (ops->fin)
            ops->fin(ud, d, f, ts);
    }
}

static void deliver(struct mx_reasm *r, struct mx_reasm_pool *pool, enum mx_dir d, struct mx_seg *s,
                    const struct mx_reasm_ops *ops, void *ud)
{
    struct mx_half *h = &r->h[d];
    const struct mx_half *o = &r->h[mx_dir_other(d)];
    if (s->nodata) {
        if (ops->gap)
            ops->gap(ud, d, h->off, s->len, s->frame, s->ts);
        h->gaps++;
        h->gap_bytes += s->len;
        h->had_gap = true;
    } else {
        if (ops->data)
            ops->data(ud, d, h->off, mx_slice_make(s->data, s->len), s->frame, s->ts);
        h->delivered += s->len;
    }
    h->pend = s->next;
    h->next += s->len;
    h->off += s->len;
    h->pending -= s->len;
    h->retained += s->len;
    /* The segment may be freed below: its frame and time are read first. */
    mx_frame_t frame = s->frame;
    mx_time_t ts = s->ts;
    if (s->nodata || (o->ack_valid && MX_SEQ_GEQ(o->ack, seg_end(s))))
        unlink_seg(pool, h, s, true);
    drop_retained(pool, h, o, false);
    deliver_fin(h, d, ops, ud, frame, ts);
}

/* Delivers whatever is deliverable, in dialogue order. With `force` (the end
 * of the flow), holes that block delivery become gaps. */
static void pump(struct mx_reasm *r, struct mx_reasm_pool *pool, const struct mx_reasm_ops *ops, void *ud, mx_frame_t f,
                 mx_time_t ts, bool force)
{
    for (;;) {
        struct mx_seg *c[2];
        bool ready[2], blocked[2];
        for (int d = 0; d < 2; d++) {
            struct mx_half *h = &r->h[d];
            deliver_fin(h, (enum mx_dir)d, ops, ud, f, ts);
            c[d] = first_pending(h);
            ready[d] = c[d] && c[d]->seq == h->next;
            blocked[d] = ready[d] && c[d]->has_ack && behind(&r->h[!d], c[d]->ack);
        }
        int pick = -1;
        if (ready[0] && !blocked[0] && ready[1] && !blocked[1])
            pick = c[1]->frame < c[0]->frame ? 1 : 0;
        else if (ready[0] && !blocked[0])
            pick = 0;
        else if (ready[1] && !blocked[1])
            pick = 1;
        else if (ready[0] && ready[1])
            pick = c[1]->frame < c[0]->frame ? 1 : 0; /* each waits for the other: capture order */
        if (pick >= 0) {
            deliver(r, pool, (enum mx_dir)pick, c[pick], ops, ud);
            continue;
        }
        if (!force)
            return;
        /* End of flow: settle one hole, then try again. Holes in front of
         * held data first; then bytes a held segment acknowledged that the
         * peer's stream never carried. */
        bool settled = false;
        for (int d = 0; d < 2 && !settled; d++) {
            struct mx_half *h = &r->h[d];
            if (c[d] && !ready[d])
                settled = declare_gap(r, (enum mx_dir)d, c[d]->seq, ops, ud, f, ts);
            else if (!c[d] && h->fin && !h->fin_done)
                settled = declare_gap(r, (enum mx_dir)d, h->fin_seq, ops, ud, f, ts);
        }
        for (int d = 0; d < 2 && !settled; d++)
            if (blocked[d])
                settled = declare_gap(r, (enum mx_dir) !d, c[d]->ack, ops, ud, f, ts);
        if (!settled)
            return;
    }
}

/* Records or clears the evidence that the capture missed bytes of h: the
 * peer acknowledged past `next` while no segment starts there. */
static void update_hole(struct mx_reasm *r, enum mx_dir d)
{
    struct mx_half *h = &r->h[d];
    const struct mx_half *o = &r->h[!d];
    struct mx_seg *p = first_pending(h);
    bool hole = o->ack_valid && behind(h, o->ack) && !(p && p->seq == h->next);
    if (hole && !h->hole_acked) {
        h->hole_acked = true;
        h->hole_since = r->pkts;
    } else if (!hole) {
        h->hole_acked = false;
    }
}

/* Settles holes that the peer acknowledged long enough ago, or that hold
 * back more than the limits allow. */
static void settle_holes(struct mx_reasm *r, struct mx_reasm_pool *pool, const struct mx_reasm_ops *ops, void *ud,
                         mx_frame_t f, mx_time_t ts)
{
    for (int d = 0; d < 2; d++) {
        struct mx_half *h = &r->h[d];
        update_hole(r, (enum mx_dir)d);
        struct mx_seg *p = first_pending(h);
        bool over = h->pending > pool->lim.max_pending_bytes || h->n_segs >= pool->lim.max_segments;
        if (p && p->seq != h->next && over) {
            note_anomaly(ops, ud, (enum mx_dir)d, MX_AN_TCP_REASSEMBLY_LIMIT, f, ts);
            declare_gap(r, (enum mx_dir)d, p->seq, ops, ud, f, ts);
            pump(r, pool, ops, ud, f, ts, false);
        } else if (h->hole_acked && r->pkts - h->hole_since + 1 >= pool->lim.reorder_window) {
            uint32_t upto = p ? p->seq : r->h[!d].ack;
            if (h->fin && MX_SEQ_LT(h->fin_seq, upto))
                upto = h->fin_seq;
            declare_gap(r, (enum mx_dir)d, upto, ops, ud, f, ts);
            pump(r, pool, ops, ud, f, ts, false);
        }
    }
}

/* Compares [s, s+len) of `bytes` with what segment x holds over the same range. */
static bool same_bytes(const struct mx_seg *x, uint32_t s, const uint8_t *bytes, uint32_t lo, uint32_t hi)
{
    if (x->nodata || !bytes)
        return true;
    return memcmp(bytes + (lo - s), x->data + (lo - x->seq), hi - lo) == 0;
}

/* Inserts the unseen pieces of [s, s+len) into h after `before`. `bytes` is
 * NULL for a range known lost. Returns false when out of memory. */
static bool insert_piece(struct mx_reasm_pool *pool, struct mx_half *h, struct mx_seg **before, uint32_t lo,
                         uint32_t hi, uint32_t s, const uint8_t *bytes, const struct mx_packet *pkt)
{
    if (MX_SEQ_LT(lo, h->next))
        lo = h->next; /* below next is delivered or a gap: never inserted again */
    if (!MX_SEQ_LT(lo, hi))
        return true;
    uint32_t n = hi - lo;
    struct mx_seg *x = seg_alloc(pool, bytes ? n : 0);
    if (!x)
        return false;
    x->seq = lo;
    x->len = n;
    x->ack = pkt->ack;
    x->has_ack = (pkt->flags & MX_TCP_ACK) != 0;
    x->nodata = bytes == NULL;
    x->frame = pkt->frame;
    x->ts = pkt->ts;
    if (bytes)
        memcpy(x->data, bytes + (lo - s), n);
    x->prev = *before;
    x->next = *before ? (*before)->next : h->head;
    if (x->next)
        x->next->prev = x;
    else
        h->tail = x;
    if (*before)
        (*before)->next = x;
    else
        h->head = x;
    *before = x;
    RB_INSERT(mx_seg_tree, &h->tree, x); /* seqs never repeat: segments do not overlap */
    if (!h->pend || MX_SEQ_LT(x->seq, h->pend->seq))
        h->pend = x;
    h->n_segs++;
    h->pending += n;
    if (bytes) {
        pool->bytes += n;
        if (pool->bytes > pool->peak_bytes)
            pool->peak_bytes = pool->bytes;
    }
    return true;
}

/* Adds the range [s, s+len) of h; returns false when out of memory. */
static bool add_range(struct mx_reasm *r, struct mx_reasm_pool *pool, enum mx_dir d, uint32_t s, uint32_t len,
                      const uint8_t *bytes, const struct mx_packet *pkt, const struct mx_reasm_ops *ops, void *ud)
{
    struct mx_half *h = &r->h[d];
    uint32_t e = s + len;
    if (MX_SEQ_LEQ(e, h->next)) {
        /* Wholly old. A keep-alive re-sends the byte before `next` (RFC 9293 §3.8.4). */
        if (len <= 1 && e == h->next)
            return true;
    }
    if (h->had_gap && MX_SEQ_LT(s, h->gap_hi) && MX_SEQ_GT(e, h->gap_lo))
        note_anomaly(ops, ud, d, MX_AN_TCP_LATE_SEGMENT, pkt->frame, pkt->ts);

    /* Last segment that ends at or before s: none when s is at or before the
     * head, the tail when s is at or past its end (in order), else the one
     * before the first segment starting at or after s (the tree finds it, in
     * O(log n) whatever the order of arrival), or the one before that when
     * it covers s. Segments are sorted and never overlap, so their ends are
     * sorted too. */
    drop_retained(pool, h, &r->h[!d], false); /* keeps the span ordered */
    struct mx_seg *before;
    if (!h->head || MX_SEQ_LEQ(s, h->head->seq)) {
        before = NULL;
    } else if (MX_SEQ_LEQ(seg_end(h->tail), s)) {
        before = h->tail;
    } else {
        struct mx_seg key = { .seq = s };
        struct mx_seg *at = RB_NFIND(mx_seg_tree, &h->tree, &key);
        before = at ? at->prev : h->tail;
        if (before && MX_SEQ_GT(seg_end(before), s))
            before = before->prev;
    }
    struct mx_seg *x = before ? before->next : h->head;
    uint32_t pos = s;
    bool differ = false;
    while (MX_SEQ_LT(pos, e)) {
        if (!x || MX_SEQ_GEQ(x->seq, e)) {
            if (!insert_piece(pool, h, &before, pos, e, s, bytes, pkt))
                return false;
            break;
        }
        if (MX_SEQ_LT(pos, x->seq)) {
            if (!insert_piece(pool, h, &before, pos, x->seq, s, bytes, pkt))
                return false;
            pos = x->seq;
        }
        uint32_t oe = MX_SEQ_LT(e, seg_end(x)) ? e : seg_end(x);
        if (MX_SEQ_LT(pos, oe) && !same_bytes(x, s, bytes, pos, oe))
            differ = true;
        if (MX_SEQ_LT(pos, oe))
            pos = oe;
        before = x;
        x = x->next;
    }
    if (differ)
        note_anomaly(ops, ud, d, MX_AN_TCP_OVERLAP_DIFFERENT, pkt->frame, pkt->ts);
    return true;
}

/* Makes room for `need` more bytes in h: drops retained copies first, then
 * settles the hole in front of pending data. Returns whether it fits. */
static bool fits(const struct mx_reasm_pool *pool, const struct mx_half *h, uint32_t need)
{
    const struct mx_reasm_limits *L = &pool->lim;
    return h->pending + need <= L->max_pending_bytes && h->n_segs < L->max_segments &&
           pool->bytes + need <= L->max_total_bytes;
}

static bool make_room(struct mx_reasm *r, struct mx_reasm_pool *pool, enum mx_dir d, uint32_t need,
                      const struct mx_reasm_ops *ops, void *ud, const struct mx_packet *pkt)
{
    struct mx_half *h = &r->h[d];
    if (fits(pool, h, need))
        return true;
    drop_retained(pool, h, &r->h[!d], true);
    struct mx_seg *p = first_pending(h);
    if (!fits(pool, h, need) && p && p->seq != h->next) {
        note_anomaly(ops, ud, d, MX_AN_TCP_REASSEMBLY_LIMIT, pkt->frame, pkt->ts);
        declare_gap(r, d, p->seq, ops, ud, pkt->frame, pkt->ts);
        pump(r, pool, ops, ud, pkt->frame, pkt->ts, false);
        drop_retained(pool, h, &r->h[!d], true);
    }
    return fits(pool, h, need);
}

bool mx_reasm_segment(struct mx_reasm *r, struct mx_reasm_pool *pool, enum mx_dir dir, const struct mx_packet *pkt,
                      const struct mx_reasm_ops *ops, void *ud)
{
    bool ok = true;
    if (r->closed || (pkt->flags & MX_TCP_RST))
        goto out; /* the caller ends the flow on RST */
    r->pkts++;
    struct mx_half *h = &r->h[dir];

    if (pkt->flags & MX_TCP_ACK) {
        if (!h->ack_valid || MX_SEQ_GT(pkt->ack, h->ack)) {
            h->ack = pkt->ack;
            h->ack_valid = true;
        }
        drop_retained(pool, &r->h[!dir], h, false);
    }

    uint32_t dseq = pkt->seq;
    if (pkt->flags & MX_TCP_SYN) {
        dseq = pkt->seq + 1; /* data on a SYN follows the ISN (RFC 9293 §3.4) */
        if (!h->syn && h->head == NULL && h->off == 0) {
            h->next = dseq;
            h->synced = true;
        }
        if (!h->syn)
            h->isn = pkt->seq;
        h->syn = true;
    } else if (!h->synced) {
        h->next = dseq; /* picked up midstream: the stream starts here */
        h->synced = true;
    }

    uint32_t have = (uint32_t)pkt->payload.len;
    uint32_t wire = pkt->payload_len > have ? pkt->payload_len : have;
    if (pkt->flags & MX_TCP_FIN) {
        uint32_t fs = dseq + wire;
        if (!h->fin) {
            h->fin = true;
            h->fin_seq = fs;
        }
    }
    if (wire == 0)
        goto settle;
    int32_t ahead = (int32_t)(dseq - h->next);
    if (ahead > (int32_t)MX_SEQ_PLAUSIBLE || ahead < -(int32_t)MX_SEQ_PLAUSIBLE) {
        note_anomaly(ops, ud, dir, MX_AN_TCP_SEGMENT_OUT_OF_WINDOW, pkt->frame, pkt->ts);
        goto settle;
    }
    if (h->fin && MX_SEQ_GT(dseq + wire, h->fin_seq)) {
        note_anomaly(ops, ud, dir, MX_AN_TCP_DATA_AFTER_FIN, pkt->frame, pkt->ts);
        uint32_t keep = MX_SEQ_GT(h->fin_seq, dseq) ? h->fin_seq - dseq : 0;
        if (have > keep)
            have = keep;
        wire = keep;
    }
    uint32_t need = wire;
    if (MX_SEQ_LT(dseq, h->next))
        need = MX_SEQ_GT(dseq + wire, h->next) ? dseq + wire - h->next : 0;
    if (need && !make_room(r, pool, dir, need, ops, ud, pkt) && MX_SEQ_GT(dseq, h->next)) {
        /* Out of order and over every cap: drop it; the hole becomes a gap. */
        note_anomaly(ops, ud, dir, MX_AN_TCP_REASSEMBLY_LIMIT, pkt->frame, pkt->ts);
        goto settle;
    }
    if (have && !add_range(r, pool, dir, dseq, have, pkt->payload.ptr, pkt, ops, ud))
        ok = false;
    if (wire > have && !add_range(r, pool, dir, dseq + have, wire - have, NULL, pkt, ops, ud))
        ok = false;

settle:
    pump(r, pool, ops, ud, pkt->frame, pkt->ts, false);
    settle_holes(r, pool, ops, ud, pkt->frame, pkt->ts);
out:
    return ok;
}

bool mx_reasm_new_syn(const struct mx_reasm *r, enum mx_dir dir, uint32_t seq)
{
    const struct mx_half *h = &r->h[dir];
    if (!h->synced)
        return false;
    if (h->syn)
        return seq != h->isn;
    return h->off > 0 || r->h[!dir].off > 0;
}

void mx_reasm_release(struct mx_reasm *r, struct mx_reasm_pool *pool)
{
    for (int d = 0; d < 2; d++) {
        struct mx_half *h = &r->h[d];
        while (h->head) {
            struct mx_seg *s = h->head;
            unlink_seg(pool, h, s, false);
        }
        h->pending = h->retained = 0;
        h->pend = NULL;
    }
}

void mx_reasm_finish(struct mx_reasm *r, struct mx_reasm_pool *pool, const struct mx_reasm_ops *ops, void *ud)
{
    if (r->closed)
        return;
    pump(r, pool, ops, ud, 0, 0, true);
    /* Bytes the peer acknowledged that the capture never held. */
    for (int d = 0; d < 2; d++) {
        const struct mx_half *o = &r->h[!d];
        if (o->ack_valid && !r->h[d].fin_done && behind(&r->h[d], o->ack))
            declare_gap(r, (enum mx_dir)d, o->ack, ops, ud, 0, 0);
    }
    mx_reasm_release(r, pool);
    r->closed = true;
}
