/* reasm.h - TCP stream reassembly: both directions, in order, exactly once, in dialogue order. */
#ifndef MX_REASM_H
#define MX_REASM_H

#include "core/mx.h"
#include "core/anomaly.h"
#include "capture/decode.h"

#include <bsd/sys/tree.h>

/* Serial-number arithmetic on 32-bit sequence numbers (RFC 1982, RFC 9293 §3.4). */
#define MX_SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define MX_SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define MX_SEQ_GT(a, b) MX_SEQ_LT(b, a)
#define MX_SEQ_GEQ(a, b) MX_SEQ_LEQ(b, a)

/* Limits of reassembly. A zero-filled struct takes the defaults in brackets. */
struct mx_reasm_limits {
    uint32_t max_pending_bytes; /* undelivered bytes held per direction [1 MiB] */
    uint32_t max_segments;      /* segments held per direction [4096] */
    uint32_t retain_bytes;      /* delivered, unacknowledged bytes kept per direction to
                                   compare retransmissions with [64 KiB] */
    uint32_t reorder_window;    /* packets of the flow to wait for a hole to fill once the
                                   peer has acknowledged past it [16] */
    uint64_t max_total_bytes;   /* all segments of all flows [256 MiB] */
};

/* What reassembly hands to its user. `ud` is the pointer given to the calls. */
struct mx_reasm_ops {
    /* In-order bytes of `dir` at stream offset `off`, carried by `frame`. */
    void (*data)(void *ud, enum mx_dir dir, uint64_t off, struct mx_slice bytes, mx_frame_t frame, mx_time_t ts);
    /* `len` bytes of `dir` at `off` that will never be seen. `frame` is the
     * packet whose arrival settled it (0 at the flow's end). */
    void (*gap)(void *ud, enum mx_dir dir, uint64_t off, uint64_t len, mx_frame_t frame, mx_time_t ts);
    /* `dir` has ended: its FIN was reached in order. */
    void (*fin)(void *ud, enum mx_dir dir, mx_frame_t frame, mx_time_t ts);
    /* A TCP anomaly attributed to `dir` at `frame`. */
    void (*anomaly)(void *ud, enum mx_dir dir, enum mx_core_anomaly an, mx_frame_t frame, mx_time_t ts);
};

/* Shared by all flows: the segment free list, memory accounting and limits. */
struct mx_reasm_pool {
    struct mx_reasm_limits lim;
    struct mx_seg *free_list;
    uint32_t n_free;
    uint64_t bytes; /* payload bytes held in live segments */
    uint64_t peak_bytes;
};

struct mx_seg;
/* The same segments as a red-black tree by seq (libbsd's <sys/tree.h>): where
 * an out-of-order segment goes, in O(log n). */
RB_HEAD(mx_seg_tree, mx_seg);

/* One direction of a connection. */
struct mx_half {
    struct mx_seg *head, *tail; /* sorted by seq: delivered (retained) first, then pending */
    struct mx_seg *pend;        /* first pending segment, or NULL */
    struct mx_seg_tree tree;    /* head..tail, by seq; zero-filled is empty */
    uint32_t next;              /* next sequence number to deliver */
    uint64_t off;               /* stream offset of `next` (delivered bytes plus gaps) */
    uint32_t ack;               /* highest ACK this direction sent, in the peer's space */
    uint32_t fin_seq;           /* sequence number of the FIN */
    uint32_t isn;               /* initial sequence number, when `syn` */
    uint32_t gap_lo, gap_hi;    /* the last range declared a gap */
    uint32_t pending;           /* undelivered bytes held */
    uint32_t retained;          /* delivered bytes still held */
    uint32_t n_segs;
    uint64_t hole_since; /* packet count when the peer first acknowledged past a hole */
    bool synced;         /* `next` is known */
    bool ack_valid;
    bool syn, fin, fin_done, had_gap, hole_acked;
    /* Statistics. */
    uint64_t delivered; /* bytes delivered */
    uint64_t gaps, gap_bytes;
};

/* Both directions of one connection. Zero-filled is a valid start. */
struct mx_reasm {
    struct mx_half h[2];
    uint64_t pkts; /* packets seen by this connection */
    bool closed;   /* mx_reasm_finish() ran; further segments are ignored */
};

void mx_reasm_pool_init(struct mx_reasm_pool *pool, const struct mx_reasm_limits *lim);
/* Frees the pool's free list; every connection must have been released first. */
void mx_reasm_pool_destroy(struct mx_reasm_pool *pool);

/* Feeds one segment sent in direction `dir`. Delivers, through ops, every byte
 * and gap that this segment settles, in dialogue order. Returns false only
 * when out of memory (the segment's bytes were then treated as a gap). */
bool mx_reasm_segment(struct mx_reasm *r, struct mx_reasm_pool *pool, enum mx_dir dir, const struct mx_packet *pkt,
                      const struct mx_reasm_ops *ops, void *ud);

/* Whether a SYN with sequence number `seq` from `dir` starts another
 * connection on the same 4-tuple: its ISN differs from the one seen, or data
 * has flowed since (a SYN retransmission repeats the ISN before any data). */
bool mx_reasm_new_syn(const struct mx_reasm *r, enum mx_dir dir, uint32_t seq);

/* Ends the connection: delivers all that is held, turns remaining holes into
 * gaps, and frees the segments. Idempotent. */
void mx_reasm_finish(struct mx_reasm *r, struct mx_reasm_pool *pool, const struct mx_reasm_ops *ops, void *ud);

/* Frees every segment without delivering anything. */
void mx_reasm_release(struct mx_reasm *r, struct mx_reasm_pool *pool);

#endif
