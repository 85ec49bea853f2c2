/* test_reasm.c - TCP reassembly from crafted segment sequences. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/reasm.h"
#include "check_main.h"

#define C MX_DIR_C2S
#define S MX_DIR_S2C
#define A MX_TCP_ACK

/* What reassembly delivered, and in which order. */
struct rec {
    char data[2][8192];
    size_t len[2];
    char log[4096]; /* e.g. "c:EHLO|s:250|gc:5|fc|" in delivery order */
    int an[MX_AN__COUNT];
    uint64_t gap_bytes[2];
    int fins[2];
    uint64_t last_off[2];
};

static void r_data(void *ud, enum mx_dir d, uint64_t off, struct mx_slice b, mx_frame_t f, mx_time_t ts)
{
    struct rec *r = ud;
    (void)f;
    (void)ts;
    ck_assert_uint_eq(off, r->last_off[d]); /* offsets are contiguous */
    r->last_off[d] = off + b.len;
    memcpy(r->data[d] + r->len[d], b.ptr, b.len);
    r->len[d] += b.len;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "%c:%.*s|", d == C ? 'c' : 's', (int)b.len, (const char *)b.ptr);
}

static void r_gap(void *ud, enum mx_dir d, uint64_t off, uint64_t len, mx_frame_t f, mx_time_t ts)
{
    struct rec *r = ud;
    (void)f;
    (void)ts;
    ck_assert_uint_eq(off, r->last_off[d]);
    r->last_off[d] = off + len;
    r->gap_bytes[d] += len;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "g%c:%llu|", d == C ? 'c' : 's', (unsigned long long)len);
}

static void r_fin(void *ud, enum mx_dir d, mx_frame_t f, mx_time_t ts)
{
    struct rec *r = ud;
    (void)f;
    (void)ts;
    r->fins[d]++;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "f%c|", d == C ? 'c' : 's');
}

static void r_an(void *ud, enum mx_dir d, enum mx_core_anomaly a, mx_frame_t f, mx_time_t ts)
{
    struct rec *r = ud;
    (void)d;
    (void)f;
    (void)ts;
    r->an[a]++;
}

static const struct mx_reasm_ops ops = { r_data, r_gap, r_fin, r_an };

/* One test's world: a connection, a pool and a recorder. */
struct world {
    struct mx_reasm r;
    struct mx_reasm_pool pool;
    struct rec rec;
    mx_frame_t frame;
};

static struct world *world_new(const struct mx_reasm_limits *lim)
{
    struct world *w = calloc(1, sizeof(*w));
    ck_assert_ptr_nonnull(w);
    mx_reasm_pool_init(&w->pool, lim);
    return w;
}

static void world_free(struct world *w)
{
    mx_reasm_finish(&w->r, &w->pool, &ops, &w->rec);
    ck_assert_uint_eq(w->pool.bytes, 0); /* every segment was returned */
    mx_reasm_pool_destroy(&w->pool);
    free(w);
}

/* Sends a segment: `data` may be NULL; `cut` bytes of it are left uncaptured. */
static void send_cut(struct world *w, enum mx_dir d, uint32_t seq, uint32_t ack, uint8_t flags, const char *data,
                     uint32_t cut)
{
    struct mx_packet p;
    memset(&p, 0, sizeof(p));
    p.frame = ++w->frame;
    p.ts = (mx_time_t)w->frame * 1000;
    p.seq = seq;
    p.ack = ack;
    p.flags = flags;
    size_t n = data ? strlen(data) : 0;
    p.payload = mx_slice_make(data, n - cut);
    p.payload_len = (uint32_t)n;
    p.truncated = cut > 0;
    ck_assert(mx_reasm_segment(&w->r, &w->pool, d, &p, &ops, &w->rec));
}

static void send(struct world *w, enum mx_dir d, uint32_t seq, uint32_t ack, uint8_t flags, const char *data)
{
    send_cut(w, d, seq, ack, flags, data, 0);
}

/* Client ISN 1000, server ISN 5000. */
static void handshake(struct world *w, uint32_t cisn, uint32_t sisn)
{
    send(w, C, cisn, 0, MX_TCP_SYN, NULL);
    send(w, S, sisn, cisn + 1, MX_TCP_SYN | A, NULL);
    send(w, C, cisn + 1, sisn + 1, A, NULL);
}

START_TEST(in_order_dialogue)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, S, 5001, 1001, A, "220 hi\r\n");
    send(w, C, 1001, 5009, A, "EHLO x\r\n");
    send(w, S, 5009, 1009, A, "250 ok\r\n");
    send(w, C, 1009, 5017, A | MX_TCP_FIN, "QUIT\r\n");
    send(w, S, 5017, 1016, A | MX_TCP_FIN, NULL);
    ck_assert_str_eq(w->rec.log, "s:220 hi\r\n|c:EHLO x\r\n|s:250 ok\r\n|c:QUIT\r\n|fc|fs|");
    ck_assert_int_eq(w->rec.fins[C], 1);
    ck_assert_int_eq(w->rec.fins[S], 1);
    ck_assert_uint_eq(w->r.h[C].delivered, 14);
    world_free(w);
}
END_TEST

START_TEST(reordered_segments)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1005, 5001, A, "BBBB");
    send(w, C, 1009, 5001, A, "CCCC");
    ck_assert_uint_eq(w->rec.len[C], 0);
    send(w, C, 1001, 5001, A, "AAAA");
    ck_assert_str_eq(w->rec.log, "c:AAAA|c:BBBB|c:CCCC|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 0);
    world_free(w);
}
END_TEST

START_TEST(duplicates_dropped)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "AAAA");
    send(w, C, 1001, 5001, A, "AAAA");
    send(w, C, 1005, 5001, A, "BBBB");
    send(w, C, 1005, 5001, A, "BBBB");
    send(w, C, 1001, 5001, A, "AAAABBBB");
    ck_assert_str_eq(w->rec.log, "c:AAAA|c:BBBB|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 0);
    world_free(w);
}
END_TEST

START_TEST(overlap_same_data)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1003, 5001, A, "CDEF");     /* held */
    send(w, C, 1001, 5001, A, "ABCDEFGH"); /* covers it and more */
    ck_assert_str_eq(w->rec.log, "c:AB|c:CDEF|c:GH|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 0);
    world_free(w);
}
END_TEST

START_TEST(overlap_different_data_first_wins)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1005, 5001, A, "EFGH");       /* held out of order */
    send(w, C, 1001, 5001, A, "abcdXXXXij"); /* overlaps with other bytes */
    ck_assert_str_eq(w->rec.log, "c:abcd|c:EFGH|c:ij|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 1);
    /* A retransmission of delivered, unacknowledged bytes is compared too. */
    send(w, C, 1001, 5001, A, "abcZ");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 2);
    ck_assert_str_eq(w->rec.log, "c:abcd|c:EFGH|c:ij|");
    world_free(w);
}
END_TEST

START_TEST(lost_segment_becomes_gap_after_ack)
{
    struct mx_reasm_limits lim = { .reorder_window = 3 };
    struct world *w = world_new(&lim);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "AAAA");
    /* "BBBB" at 1005 is never captured */
    send(w, C, 1009, 5001, A, "CCCC");
    send(w, S, 5001, 1013, A, NULL); /* the server has it all */
    ck_assert_str_eq(w->rec.log, "c:AAAA|");
    send(w, S, 5001, 1013, A, NULL);
    send(w, S, 5001, 1013, A, NULL);
    ck_assert_str_eq(w->rec.log, "c:AAAA|gc:4|c:CCCC|");
    ck_assert_uint_eq(w->r.h[C].gaps, 1);
    /* The lost segment finally shows up: it is late, never delivered. */
    send(w, C, 1005, 5001, A, "BBBB");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_LATE_SEGMENT], 1);
    ck_assert_str_eq(w->rec.log, "c:AAAA|gc:4|c:CCCC|");
    world_free(w);
}
END_TEST

START_TEST(hole_filled_by_retransmission_is_no_gap)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "AAAA");
    send(w, C, 1009, 5001, A, "CCCC");
    send(w, S, 5001, 1005, A, NULL); /* duplicate ACKs: the receiver lacks 1005 */
    send(w, S, 5001, 1005, A, NULL);
    send(w, C, 1005, 5001, A, "BBBB"); /* fast retransmit */
    ck_assert_str_eq(w->rec.log, "c:AAAA|c:BBBB|c:CCCC|");
    ck_assert_uint_eq(w->r.h[C].gaps, 0);
    world_free(w);
}
END_TEST

START_TEST(gap_at_end_of_flow)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "AAAA");
    send(w, C, 1009, 5001, A, "CCCC");
    mx_reasm_finish(&w->r, &w->pool, &ops, &w->rec);
    ck_assert_str_eq(w->rec.log, "c:AAAA|gc:4|c:CCCC|");
    world_free(w);
}
END_TEST

START_TEST(sequence_wraparound)
{
    struct world *w = world_new(NULL);
    handshake(w, 0xFFFFFFF0u, 0xFFFFFFFEu);
    send(w, C, 0xFFFFFFF1u, 0xFFFFFFFFu, A, "0123456789");
    send(w, C, 0xFFFFFFFBu + 4, 0xFFFFFFFFu, A, "efgh"); /* 0xFFFFFFFF.. wraps: out of order */
    send(w, C, 0xFFFFFFFBu, 0xFFFFFFFFu, A, "abcd");
    send(w, S, 0xFFFFFFFFu, 0x00000003u, A, "ok");
    ck_assert_str_eq(w->rec.log, "c:0123456789|c:abcd|c:efgh|s:ok|");
    world_free(w);
}
END_TEST

START_TEST(midstream_pickup)
{
    struct world *w = world_new(NULL);
    send(w, C, 7000, 9000, A, "RCPT TO:<a@b>\r\n");
    send(w, S, 9000, 7015, A, "250 ok\r\n");
    send(w, C, 7015, 9008, A, "DATA\r\n");
    ck_assert_str_eq(w->rec.log, "c:RCPT TO:<a@b>\r\n|s:250 ok\r\n|c:DATA\r\n|");
    world_free(w);
}
END_TEST

START_TEST(data_on_syn)
{
    struct world *w = world_new(NULL);
    send(w, C, 1000, 0, MX_TCP_SYN, "early");
    send(w, S, 5000, 1006, MX_TCP_SYN | A, NULL);
    send(w, C, 1006, 5001, A, "late");
    ck_assert_str_eq(w->rec.log, "c:early|c:late|");
    world_free(w);
}
END_TEST

START_TEST(fin_both_ways_and_data_after_fin)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A | MX_TCP_FIN, "bye");
    send(w, C, 1004, 5001, A, "more"); /* beyond the FIN */
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_DATA_AFTER_FIN], 1);
    send(w, S, 5001, 1005, A | MX_TCP_FIN, "ok");
    ck_assert_str_eq(w->rec.log, "c:bye|fc|s:ok|fs|");
    world_free(w);
}
END_TEST

START_TEST(fin_before_its_data)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1005, 5001, A | MX_TCP_FIN, "tail"); /* FIN segment first */
    ck_assert_str_eq(w->rec.log, "");
    send(w, C, 1001, 5001, A, "head");
    ck_assert_str_eq(w->rec.log, "c:head|c:tail|fc|");
    world_free(w);
}
END_TEST

START_TEST(dialogue_order_from_acks)
{
    /* The capture saw the client's next command before the server's reply
     * that it acknowledges: delivery follows the acknowledgements. */
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, S, 5001, 1001, A, "220 hi\r\n");
    send(w, C, 1001, 5009, A, "EHLO x\r\n");
    send(w, C, 1009, 5017, A, "MAIL FROM:<a>\r\n"); /* acks the 250 not yet seen */
    send(w, S, 5009, 1009, A, "250 ok\r\n");
    ck_assert_str_eq(w->rec.log, "s:220 hi\r\n|c:EHLO x\r\n|s:250 ok\r\n|c:MAIL FROM:<a>\r\n|");
    world_free(w);
}
END_TEST

START_TEST(missing_reply_is_gap_before_next_command)
{
    /* The server's reply was never captured, but the client acknowledged it:
     * the gap is delivered before the client's next command. */
    struct mx_reasm_limits lim = { .reorder_window = 2 };
    struct world *w = world_new(&lim);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "EHLO x\r\n");
    send(w, C, 1009, 5009, A, "QUIT\r\n");
    send(w, S, 5009, 1015, A, "221 bye\r\n");
    send(w, S, 5018, 1015, A, NULL);
    ck_assert_str_eq(w->rec.log, "c:EHLO x\r\n|gs:8|c:QUIT\r\n|s:221 bye\r\n|");
    world_free(w);
}
END_TEST

START_TEST(keepalive_ignored)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "AAAA");
    send(w, C, 1004, 5001, A, "?"); /* keep-alive: the byte before next, garbage */
    send(w, C, 1004, 5001, A, NULL);
    ck_assert_str_eq(w->rec.log, "c:AAAA|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 0);
    world_free(w);
}
END_TEST

START_TEST(zero_window_probe)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "A");      /* probe: one byte of the next data */
    send(w, C, 1001, 5001, A, "ABCDEF"); /* then the window opens */
    ck_assert_str_eq(w->rec.log, "c:A|c:BCDEF|");
    world_free(w);
}
END_TEST

START_TEST(snaplen_cut_is_gap)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send_cut(w, C, 1001, 5001, A, "ABCDEFGH", 3);
    send(w, C, 1009, 5001, A, "IJ");
    ck_assert_str_eq(w->rec.log, "c:ABCDE|gc:3|c:IJ|");
    world_free(w);
}
END_TEST

START_TEST(pending_cap_forces_gap)
{
    struct mx_reasm_limits lim = { .max_pending_bytes = 16 };
    struct world *w = world_new(&lim);
    handshake(w, 1000, 5000);
    send(w, C, 1011, 5001, A, "0123456789");
    send(w, C, 1021, 5001, A, "abcdefghij"); /* 20 bytes beyond a hole: over the cap */
    ck_assert_int_ge(w->rec.an[MX_AN_TCP_REASSEMBLY_LIMIT], 1);
    ck_assert_str_eq(w->rec.log, "gc:10|c:0123456789|c:abcdefghij|");
    world_free(w);
}
END_TEST

START_TEST(segment_cap_forces_gap)
{
    struct mx_reasm_limits lim = { .max_segments = 4 };
    struct world *w = world_new(&lim);
    handshake(w, 1000, 5000);
    for (uint32_t i = 0; i < 10; i++)
        send(w, C, 1003 + 2 * i, 5001, A, "x"); /* every other byte: holes everywhere */
    ck_assert_int_ge(w->rec.an[MX_AN_TCP_REASSEMBLY_LIMIT], 1);
    ck_assert_uint_le(w->r.h[C].n_segs, 4);
    world_free(w);
}
END_TEST

START_TEST(global_cap_respected)
{
    struct mx_reasm_limits lim = { .max_total_bytes = 64 };
    struct world *w = world_new(&lim);
    handshake(w, 1000, 5000);
    char big[41];
    memset(big, 'z', 40);
    big[40] = 0;
    send(w, C, 1101, 5001, A, big);
    send(w, C, 1141, 5001, A, big); /* would hold 80 bytes out of order */
    ck_assert_uint_le(w->pool.peak_bytes, 64);
    ck_assert_int_ge(w->rec.an[MX_AN_TCP_REASSEMBLY_LIMIT], 1);
    world_free(w);
}
END_TEST

START_TEST(one_sided_capture)
{
    struct world *w = world_new(NULL);
    send(w, C, 1000, 0, MX_TCP_SYN, NULL);
    send(w, C, 1001, 5001, A, "EHLO x\r\n");
    send(w, C, 1009, 5100, A, "QUIT\r\n"); /* the server's side is never seen */
    ck_assert_str_eq(w->rec.log, "c:EHLO x\r\n|c:QUIT\r\n|");
    world_free(w);
}
END_TEST

START_TEST(out_of_window_segment)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1000 + 0x70000000u, 5001, A, "junk");
    send(w, C, 1001, 5001, A, "real");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_SEGMENT_OUT_OF_WINDOW], 1);
    ck_assert_str_eq(w->rec.log, "c:real|");
    world_free(w);
}
END_TEST

START_TEST(rst_ignored_by_reassembly)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "AAAA");
    send(w, S, 5001, 1005, MX_TCP_RST | A, "reset-text");
    ck_assert_str_eq(w->rec.log, "c:AAAA|");
    world_free(w);
}
END_TEST

START_TEST(many_tiny_segments_reversed)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz";
    char one[2] = { 0, 0 };
    for (int i = 25; i >= 0; i--) {
        one[0] = digits[i];
        send(w, C, 1001 + (uint32_t)i, 5001, A, one);
    }
    ck_assert_uint_eq(w->rec.len[C], 26);
    ck_assert_int_eq(memcmp(w->rec.data[C], digits, 26), 0);
    world_free(w);
}
END_TEST

/* Old data while later data is held: compared with the delivered copy, the
 * unseen part fills the hole, and bytes before all that is held are dropped
 * without a walk over the held segments. */
START_TEST(old_data_while_data_is_held)
{
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    send(w, C, 1001, 5001, A, "abcd"); /* delivered, kept until acknowledged */
    send(w, C, 1009, 5001, A, "IJ");   /* held behind the hole 1005-1008 */
    send(w, C, 1001, 5001, A, "abcZ"); /* a retransmission that differs */
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 1);
    send(w, C, 1002, 5001, A, "bcdEFGH"); /* old bytes, then the hole */
    ck_assert_str_eq(w->rec.log, "c:abcd|c:EFGH|c:IJ|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 1);
    send(w, S, 5001, 1011, A, NULL);    /* the server acknowledges it all */
    send(w, C, 1013, 5001, A, "MN");    /* held behind 1011-1012 */
    send(w, C, 1001, 5001, A, "abcdX"); /* before everything held: dropped */
    send(w, C, 1011, 5001, A, "KL");
    ck_assert_str_eq(w->rec.log, "c:abcd|c:EFGH|c:IJ|c:KL|c:MN|");
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 1);
    ck_assert_uint_eq(w->rec.gap_bytes[C], 0);
    world_free(w);
}
END_TEST

/* Pieces of 1 to 3 bytes, and longer ones across their boundaries, all in a
 * shuffled order: the tree puts each where it belongs and the stream comes
 * out whole, once, with no overlap reported as different. */
START_TEST(shuffled_pieces_and_overlaps)
{
    enum { N = 3000, MAXP = 2 * N };
    static char stream[N];
    static struct {
        uint32_t at, len;
    } piece[MAXP];
    uint32_t rnd = 12345, n = 0;
    for (uint32_t i = 0; i < N; i++)
        stream[i] = (char)('a' + i % 26);
    for (uint32_t at = 0; at < N; n++) { /* the cover */
        rnd = rnd * 1103515245u + 12345u;
        uint32_t len = 1 + (rnd >> 16) % 3;
        piece[n].at = at;
        piece[n].len = at + len > N ? N - at : len;
        at += piece[n].len;
    }
    for (uint32_t k = 0; k < N / 4; k++, n++) { /* overlaps */
        rnd = rnd * 1103515245u + 12345u;
        piece[n].at = (rnd >> 8) % (N - 8);
        piece[n].len = 4 + (rnd >> 4) % 5;
    }
    for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        rnd = rnd * 1103515245u + 12345u;
        uint32_t j = (rnd >> 8) % (i + 1);
        uint32_t at = piece[i].at, len = piece[i].len;
        piece[i] = piece[j];
        piece[j].at = at;
        piece[j].len = len;
    }
    struct world *w = world_new(NULL);
    handshake(w, 1000, 5000);
    char buf[16];
    for (uint32_t i = 0; i < n; i++) {
        memcpy(buf, stream + piece[i].at, piece[i].len);
        buf[piece[i].len] = 0;
        send(w, C, 1001 + piece[i].at, 5001, A, buf);
    }
    ck_assert_uint_eq(w->rec.len[C], N);
    ck_assert_int_eq(memcmp(w->rec.data[C], stream, N), 0);
    ck_assert_uint_eq(w->rec.gap_bytes[C], 0);
    ck_assert_int_eq(w->rec.an[MX_AN_TCP_OVERLAP_DIFFERENT], 0);
    world_free(w);
}
END_TEST

static Suite *reasm_suite(void)
{
    Suite *s = suite_create("reasm");
    TCase *t = tcase_create("core");
    tcase_add_test(t, in_order_dialogue);
    tcase_add_test(t, reordered_segments);
    tcase_add_test(t, duplicates_dropped);
    tcase_add_test(t, overlap_same_data);
    tcase_add_test(t, overlap_different_data_first_wins);
    tcase_add_test(t, lost_segment_becomes_gap_after_ack);
    tcase_add_test(t, hole_filled_by_retransmission_is_no_gap);
    tcase_add_test(t, gap_at_end_of_flow);
    tcase_add_test(t, sequence_wraparound);
    tcase_add_test(t, midstream_pickup);
    tcase_add_test(t, data_on_syn);
    tcase_add_test(t, fin_both_ways_and_data_after_fin);
    tcase_add_test(t, fin_before_its_data);
    tcase_add_test(t, dialogue_order_from_acks);
    tcase_add_test(t, missing_reply_is_gap_before_next_command);
    tcase_add_test(t, keepalive_ignored);
    tcase_add_test(t, zero_window_probe);
    tcase_add_test(t, snaplen_cut_is_gap);
    tcase_add_test(t, pending_cap_forces_gap);
    tcase_add_test(t, segment_cap_forces_gap);
    tcase_add_test(t, global_cap_respected);
    tcase_add_test(t, one_sided_capture);
    tcase_add_test(t, out_of_window_segment);
    tcase_add_test(t, rst_ignored_by_reassembly);
    tcase_add_test(t, many_tiny_segments_reversed);
    tcase_add_test(t, old_data_while_data_is_held);
    tcase_add_test(t, shuffled_pieces_and_overlaps);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(reasm_suite)
