/* tcpa.c - the network's part of a connection, as Wireshark's tcp.analysis reads it.
 *
 * The rules are those of Wireshark's packet-tcp.c (tcp_analyze_sequence_number),
 * read for their definitions and written anew, so that the counts can be
 * checked against tshark's on the same capture (tests/transport_tshark.py):
 *  - zero window: window 0 on a segment without SYN, FIN or RST;
 *  - duplicate ACK: no payload, the same window (not 0), sequence number and
 *    ACK as the direction's last segment, no SYN, FIN or RST;
 *  - a segment with data (or SYN or FIN) whose sequence number is below the
 *    highest one sent (nextseq) is, in this order: a spurious retransmission
 *    when the peer had acknowledged all of it; a fast retransmission when the
 *    peer sent two or more duplicate ACKs for it, the last under 20 ms
 *    before; out of order when it came within the first round trip (3 ms
 *    without a handshake) of the highest one and does not end where it does;
 *    else a retransmission. Keep-alives (0 or 1 byte at nextseq - 1) and zero
 *    window probes are none of these.
 * Wireshark's tcp.analysis.retransmission marks all three kinds of
 * retransmission; so does `retransmissions` here.
 *
 * A stall (mxray's own): the time a direction made no progress (sent no new
 * data, and the peer acknowledged no more of it) while some of its data was
 * unacknowledged or the peer's window was 0. It ends at the segment that
 * makes progress again. */
#include "flow/tcpa.h"
#include "flow/reasm.h"

#include <string.h>

/* Analysis flags of one segment (Wireshark's TCP_A_*). */
enum {
    A_RETRANSMISSION = 1u << 0,
    A_LOST_PACKET = 1u << 1,
    A_ACK_LOST_PACKET = 1u << 2,
    A_KEEP_ALIVE = 1u << 3,
    A_DUPLICATE_ACK = 1u << 4,
    A_ZERO_WINDOW = 1u << 5,
    A_ZERO_WINDOW_PROBE = 1u << 6,
    A_OUT_OF_ORDER = 1u << 7,
    A_FAST_RETRANSMISSION = 1u << 8,
    A_SPURIOUS_RETRANSMISSION = 1u << 9,
};

#define FAST_RETX_WINDOW \
    ((uint64_t)MX_NS_PER_SEC / 50)             /* a fast retransmission follows the last duplicate ACK this soon */
#define OOO_DEFAULT (3 * MX_NS_PER_SEC / 1000) /* out-of-order threshold without a handshake round trip */

void mx_tcpa_init(struct mx_tcpa *a)
{
    memset(a, 0, sizeof(*a));
    a->h[0].window = a->h[1].window = UINT32_MAX;
    a->syn_ts = a->synack_ts = a->ack_ts = MX_TIME_NONE;
}

static void note(struct mx_tcpa *a, enum mx_tcpa_kind k, enum mx_dir d, mx_frame_t frame, mx_time_t ts,
                 mx_frame_t from_frame, mx_time_t from_ts)
{
    uint32_t i = a->n_ev % MX_TCPA_EVENTS;
    a->ev[i] = (struct mx_tcpa_event){ frame, from_frame, ts, from_ts, (uint8_t)k, (uint8_t)d };
    if (a->n_cum[k] < UINT32_MAX)
        a->n_cum[k]++;
    memcpy(a->cum[i], a->n_cum, sizeof(a->n_cum));
    if (a->n_ev < UINT32_MAX)
        a->n_ev++;
}

/* The handshake's times (RFC 9293 §3.5), and Wireshark's first RTT. */
static void handshake(struct mx_tcpa *a, enum mx_dir d, const struct mx_packet *p)
{
    uint8_t sa = p->flags & (MX_TCP_SYN | MX_TCP_ACK);
    if (sa == MX_TCP_SYN && d == MX_DIR_C2S) {
        a->syn_ts = p->ts; /* the last SYN, if it was sent again */
        a->syn_frame = p->frame;
        a->synack_ts = a->ack_ts = MX_TIME_NONE;
    } else if (sa == (MX_TCP_SYN | MX_TCP_ACK) && d == MX_DIR_S2C && a->syn_ts != MX_TIME_NONE &&
               a->ack_ts == MX_TIME_NONE) {
        a->synack_ts = p->ts;
        a->synack_frame = p->frame;
    } else if (sa == MX_TCP_ACK && d == MX_DIR_C2S && a->synack_ts != MX_TIME_NONE && a->ack_ts == MX_TIME_NONE) {
        a->ack_ts = p->ts;
        a->ack_frame = p->frame;
    }
    if (sa == MX_TCP_ACK && a->syn_ts != MX_TIME_NONE && !a->first_rtt && p->ts > a->syn_ts)
        a->first_rtt = p->ts - a->syn_ts;
}

bool mx_tcpa_has_rtt(const struct mx_tcpa *a)
{
    /* In order: a capture clock that stepped back gives no round trip. */
    return a->ack_ts != MX_TIME_NONE && a->synack_ts != MX_TIME_NONE && a->syn_ts != MX_TIME_NONE &&
           a->syn_ts <= a->synack_ts && a->synack_ts <= a->ack_ts;
}

/* Direction d's data is waiting: some unacknowledged, or the peer's window is 0. */
static bool waiting(const struct mx_tcpa *a, enum mx_dir d)
{
    const struct mx_tcpa_half *h = &a->h[d];
    if (!h->has_high)
        return false;
    if (a->h[!d].window == 0)
        return true;
    return !h->has_acked || MX_SEQ_GT(h->high, h->acked);
}

/* Progress of d at p: the stall before it, if d was waiting. */
static void progress(struct mx_tcpa *a, enum mx_dir d, const struct mx_packet *p, bool was_waiting)
{
    struct mx_tcpa_half *h = &a->h[d];
    if (was_waiting && h->progress_frame && p->ts > h->progress_ts) {
        mx_time_t gap = p->ts - h->progress_ts;
        if (gap > h->stall) {
            h->stall = gap;
            h->stall_from = h->progress_frame;
            h->stall_to = p->frame;
        }
        if (gap >= MX_TCPA_STALL_NOTE)
            note(a, MX_TCPA_STALL, d, p->frame, p->ts, h->progress_frame, h->progress_ts);
    }
    h->progress_frame = p->frame;
    h->progress_ts = p->ts;
}

static void stalls(struct mx_tcpa *a, enum mx_dir d, const struct mx_packet *p, uint32_t seglen)
{
    struct mx_tcpa_half *h = &a->h[d], *o = &a->h[!d];
    bool w_self = waiting(a, d), w_peer = waiting(a, !d);
    uint32_t dseq = p->seq + ((p->flags & MX_TCP_SYN) ? 1 : 0);
    if (seglen && (!h->has_high || MX_SEQ_GT(dseq + seglen, h->high))) {
        h->high = dseq + seglen;
        h->has_high = true;
        progress(a, d, p, w_self);
    } else if (seglen && !h->progress_frame) {
        progress(a, d, p, false);
    }
    /* This segment's ACK is the peer's progress when it covers more of its data. */
    if ((p->flags & MX_TCP_ACK) && o->has_high && (!o->has_acked || MX_SEQ_GT(p->ack, o->acked)) &&
        MX_SEQ_LEQ(p->ack, o->high + 1)) {
        o->acked = p->ack;
        o->has_acked = true;
        progress(a, !d, p, w_peer);
    }
}

void mx_tcpa_segment(struct mx_tcpa *a, enum mx_dir d, const struct mx_packet *p)
{
    struct mx_tcpa_half *fwd = &a->h[d], *rev = &a->h[!d];
    uint32_t seq = p->seq, ack = p->ack, window = p->window;
    uint32_t seglen = p->payload_len > p->payload.len ? p->payload_len : (uint32_t)p->payload.len;
    uint8_t fl = p->flags;
    bool sfr = (fl & (MX_TCP_SYN | MX_TCP_FIN | MX_TCP_RST)) != 0;
    mx_time_t now = p->ts;
    uint32_t ta = 0;

    handshake(a, d, p);
    stalls(a, d, p, seglen);
    if (p->ts > a->last_ts)
        a->last_ts = p->ts;
    a->last_frame = p->frame;
    if (seglen && now > fwd->data_ts)
        fwd->data_ts = now;

    /* A zero window probe: one byte at nextseq while the peer's window is 0. */
    if (seglen == 1 && seq == fwd->nextseq && rev->window == 0) {
        ta |= A_ZERO_WINDOW_PROBE;
        goto finished_fwd;
    }
    if (window == 0 && !sfr)
        ta |= A_ZERO_WINDOW;
    if (fwd->nextseq && MX_SEQ_GT(seq, fwd->nextseq) && !(fl & MX_TCP_RST))
        ta |= A_LOST_PACKET;
    /* A keep-alive: 0 or 1 byte one before nextseq (RFC 9293 §3.8.4). */
    if (seglen <= 1 && seq == fwd->nextseq - 1 && !sfr)
        ta |= A_KEEP_ALIVE;
    bool same = seglen == 0 && window == fwd->window && seq == fwd->nextseq && ack == fwd->lastack && !sfr;
    /* The ACK of a keep-alive or of a zero window probe repeats the last ACK: no duplicate. */
    if (same && window && (rev->lastflags & A_KEEP_ALIVE))
        goto finished_fwd;
    if (same && !window && (rev->lastflags & A_ZERO_WINDOW_PROBE))
        goto finished_fwd;
    if (same && window) {
        fwd->dupacknum = fwd->dupacknum == -1 ? 1 : fwd->dupacknum + 1;
        ta |= A_DUPLICATE_ACK;
    }

finished_fwd:
    if (ack != fwd->lastack)
        fwd->dupacknum = 0;
    /* An ACK of data the capture never saw in the other direction. */
    if (rev->maxseqtobeacked && MX_SEQ_GT(ack, rev->maxseqtobeacked) && (fl & MX_TCP_ACK)) {
        if (rev->maxseqtobeacked > rev->nextseq) { /* compared as plain numbers, as Wireshark does */
            rev->maxseqtobeacked = rev->nextseq;
            ta |= A_ACK_LOST_PACKET;
        } else {
            if (rev->dupacknum == 0)
                ta |= A_ACK_LOST_PACKET;
            rev->dupacknum = -1;
        }
    }

    if ((seglen > 0 || (fl & (MX_TCP_SYN | MX_TCP_FIN))) && !(ta & A_KEEP_ALIVE)) {
        bool not_advanced = fwd->nextseq && MX_SEQ_LT(seq, fwd->nextseq);
        /* More than one byte just before nextseq: new data after a zero window probe. */
        if (seglen > 1 && fwd->nextseq - 1 == seq)
            not_advanced = false;
        uint32_t end = seq + seglen + ((fl & (MX_TCP_SYN | MX_TCP_FIN)) ? 1 : 0);
        /* Times since, compared as Wireshark does, unsigned: a clock that
         * stepped back gives a huge interval, never a short one. */
        uint64_t thres = (uint64_t)(a->first_rtt ? a->first_rtt : OOO_DEFAULT);
        uint64_t since_ack = (uint64_t)(now - rev->lastack_ts), since_next = (uint64_t)(now - fwd->nextseq_ts);
        if (seglen > 0 && rev->lastack && MX_SEQ_LEQ(seq + seglen, rev->lastack))
            ta |= A_SPURIOUS_RETRANSMISSION;
        else if (not_advanced && rev->dupacknum >= 2 && rev->lastack == seq && since_ack < FAST_RETX_WINDOW)
            ta |= A_FAST_RETRANSMISSION;
        else if (not_advanced && since_next < thres && fwd->nextseq != end)
            ta |= A_OUT_OF_ORDER;
        else if (not_advanced)
            ta |= A_RETRANSMISSION;
    }

    uint32_t nextseq = seq + seglen + ((fl & (MX_TCP_SYN | MX_TCP_FIN)) ? 1 : 0);
    if ((MX_SEQ_GT(nextseq, fwd->nextseq) || !fwd->nextseq) && !(ta & A_ZERO_WINDOW_PROBE)) {
        fwd->nextseq = nextseq;
        fwd->nextseq_ts = now;
    }
    if ((seq == fwd->maxseqtobeacked || !fwd->maxseqtobeacked) && !(ta & A_ZERO_WINDOW_PROBE))
        fwd->maxseqtobeacked = fwd->nextseq;
    fwd->window = window;
    fwd->lastack = ack;
    fwd->lastack_ts = now;
    fwd->lastflags = ta;

    if (ta & (A_RETRANSMISSION | A_FAST_RETRANSMISSION | A_SPURIOUS_RETRANSMISSION)) {
        fwd->retransmissions++;
        note(a, MX_TCPA_RETRANSMISSION, d, p->frame, now, 0, 0);
    }
    fwd->fast_retransmissions += (ta & A_FAST_RETRANSMISSION) != 0;
    fwd->spurious_retransmissions += (ta & A_SPURIOUS_RETRANSMISSION) != 0;
    fwd->out_of_order += (ta & A_OUT_OF_ORDER) != 0;
    fwd->duplicate_acks += (ta & A_DUPLICATE_ACK) != 0;
    if (ta & A_ZERO_WINDOW) {
        fwd->zero_windows++;
        note(a, MX_TCPA_ZERO_WINDOW, d, p->frame, now, 0, 0);
    }
}

static void longest(struct mx_tcpa_span *s, mx_time_t len, mx_frame_t from, mx_frame_t to)
{
    if (len > s->stall) {
        s->stall = len;
        s->stall_from = from;
        s->stall_to = to;
    }
}

void mx_tcpa_span(const struct mx_tcpa *a, mx_time_t from, mx_time_t to, bool live, struct mx_tcpa_span *s)
{
    memset(s, 0, sizeof(*s));
    if (live) {
        s->data_ts[0] = a->h[0].data_ts;
        s->data_ts[1] = a->h[1].data_ts;
    }
    uint32_t kept = a->n_ev < MX_TCPA_EVENTS ? a->n_ev : MX_TCPA_EVENTS;
    uint32_t before[3] = { 0, 0, 0 }, upto[3] = { 0, 0, 0 };
    bool found_before = a->n_ev <= MX_TCPA_EVENTS; /* nothing was forgotten: 0 before the ring */
    /* Oldest first. */
    for (uint32_t j = 0; j < kept; j++) {
        uint32_t i = (a->n_ev - kept + j) % MX_TCPA_EVENTS;
        const struct mx_tcpa_event *e = &a->ev[i];
        if (e->kind == MX_TCPA_STALL && e->ts >= from && e->from_ts <= to)
            longest(s, e->ts - e->from_ts, e->from_frame, e->frame);
        if (e->ts < from) {
            memcpy(before, a->cum[i], sizeof(before));
            found_before = true;
            continue;
        }
        if (e->ts > to)
            continue;
        memcpy(upto, a->cum[i], sizeof(upto));
        if (e->kind != MX_TCPA_STALL && s->n_frames < sizeof(s->frames) / sizeof(s->frames[0])) {
            s->frames[s->n_frames++] = e->frame;
        }
    }
    /* A stall still going on: the span ends inside it (a reply made whole by a
     * retransmission, before the ACK that ends the stall). */
    for (int d = 0; d < 2 && live; d++) {
        const struct mx_tcpa_half *h = &a->h[d];
        if (waiting(a, (enum mx_dir)d) && h->progress_frame && h->progress_ts <= to && a->last_ts >= from &&
            a->last_ts - h->progress_ts >= MX_TCPA_STALL_NOTE)
            longest(s, a->last_ts - h->progress_ts, h->progress_frame, a->last_frame);
    }
    if (!found_before && kept) {
        /* The ring begins inside the span: what came before it is not known. */
        uint32_t i = (a->n_ev - kept) % MX_TCPA_EVENTS;
        const struct mx_tcpa_event *e = &a->ev[i];
        for (int k = 0; k < 3; k++)
            before[k] = a->cum[i][k] - (e->kind == k);
        s->at_least = true;
    }
    if (upto[0] >= before[0])
        s->retransmissions = upto[0] - before[0];
    if (upto[1] >= before[1])
        s->zero_windows = upto[1] - before[1];
}
