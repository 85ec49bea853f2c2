/* fuzz_reasm.c - libFuzzer target: the TCP reassembly layer fed segment
 * sequences (retransmissions, overlaps, holes, wrap-around, SYN/FIN/RST).
 *
 * Input: records of 8 bytes: flags (bit 0 direction, 1 SYN, 2 FIN, 3 RST,
 * 4 ACK, 5 far), sequence offset (3 bytes, from the direction's base), ack
 * offset (2 bytes, from the peer's base), payload length (2 bytes, at most
 * 4096). "Far" shifts both offsets left by 8 bits, to sequence distances past
 * the plausible window and the span of delivered bytes kept.
 * The bases start near 2^32 so that sequence numbers wrap. A payload byte is
 * a function of its sequence number, so every retransmission and overlap
 * carries the same bytes and delivered data can be checked.
 *
 * Invariants checked (abort on failure): per direction, data and gaps come
 * at contiguous offsets, each range exactly once; delivered bytes are those
 * of their sequence numbers (the direction's next sequence number when they
 * are handed over); no segment memory is left after the finish; the pool
 * never holds more than its limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow/reasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t byte_at(uint32_t seq, int dir)
{
    return (uint8_t)(seq ^ (seq >> 8) ^ (uint32_t)(dir * 0x55));
}

struct check {
    uint64_t next_off[2]; /* where the next data or gap must start */
    const struct mx_reasm *r;
};

static void on_data(void *ud, enum mx_dir dir, uint64_t off, struct mx_slice b, mx_frame_t frame, mx_time_t ts)
{
    struct check *c = ud;
    (void)frame;
    (void)ts;
    if (off != c->next_off[dir] || !b.len)
        abort();
    uint32_t seq = c->r->h[dir].next; /* the first byte's sequence number */
    for (size_t i = 0; i < b.len; i++)
        if (b.ptr[i] != byte_at(seq + (uint32_t)i, (int)dir))
            abort();
    c->next_off[dir] = off + b.len;
}

static void on_gap(void *ud, enum mx_dir dir, uint64_t off, uint64_t len, mx_frame_t frame, mx_time_t ts)
{
    struct check *c = ud;
    (void)frame;
    (void)ts;
    if (off != c->next_off[dir] || !len)
        abort();
    c->next_off[dir] = off + len;
}

static void on_fin(void *ud, enum mx_dir dir, mx_frame_t frame, mx_time_t ts)
{
    (void)ud;
    (void)dir;
    (void)frame;
    (void)ts;
}

static void on_anomaly(void *ud, enum mx_dir dir, enum mx_core_anomaly an, mx_frame_t frame, mx_time_t ts)
{
    (void)ud;
    (void)dir;
    (void)an;
    (void)frame;
    (void)ts;
}

static const struct mx_reasm_ops ops = { on_data, on_gap, on_fin, on_anomaly };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits, so that the caps are reached by short inputs. */
    struct mx_reasm_limits lim = {
        .max_pending_bytes = 16384,
        .max_segments = 64,
        .retain_bytes = 4096,
        .reorder_window = 8,
        .max_total_bytes = 65536,
    };
    struct mx_reasm_pool pool;
    mx_reasm_pool_init(&pool, &lim);
    struct mx_reasm r;
    memset(&r, 0, sizeof(r));
    struct check c;
    memset(&c, 0, sizeof(c));
    c.r = &r;
    const uint32_t base[2] = { 0xFFFFF000u, 0x7FFFFF00u };
    static uint8_t payload[4096];
    for (size_t pos = 0, frame = 1; pos + 8 <= size; pos += 8, frame++) {
        const uint8_t *rec = data + pos;
        int dir = rec[0] & 1;
        struct mx_packet p;
        memset(&p, 0, sizeof(p));
        p.frame = frame;
        p.ts = (mx_time_t)frame * 1000;
        unsigned far = (rec[0] & 32) ? 8 : 0;
        p.seq = base[dir] + (((uint32_t)rec[1] << 16 | (uint32_t)rec[2] << 8 | rec[3]) << far);
        p.ack = base[!dir] + (((uint32_t)rec[4] << 8 | rec[5]) << far);
        p.flags = (uint8_t)(((rec[0] & 2) ? MX_TCP_SYN : 0) | ((rec[0] & 4) ? MX_TCP_FIN : 0) |
                            ((rec[0] & 8) ? MX_TCP_RST : 0) | ((rec[0] & 16) ? MX_TCP_ACK : 0));
        size_t len = ((size_t)rec[6] << 8 | rec[7]) % 4097; /* over 2 KiB: freed, not recycled */
        if (p.flags & MX_TCP_SYN)
            len = 0;
        for (size_t i = 0; i < len; i++)
            payload[i] = byte_at(p.seq + (uint32_t)i, dir);
        p.payload = mx_slice_make(payload, len);
        p.payload_len = (uint32_t)len;
        mx_reasm_segment(&r, &pool, (enum mx_dir)dir, &p, &ops, &c);
        if (pool.bytes > lim.max_total_bytes)
            abort();
    }
    mx_reasm_finish(&r, &pool, &ops, &c);
    mx_reasm_release(&r, &pool);
    if (pool.bytes != 0)
        abort();
    mx_reasm_pool_destroy(&pool);
    return 0;
}
