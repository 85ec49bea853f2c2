/* tcpa.h - the network's part of a connection: retransmissions, duplicate ACKs, zero windows and
 * out-of-order segments as Wireshark's tcp.analysis reads them, the handshake's round trip, and the
 * longest stall of each direction. Bounded: a fixed struct per connection, no per-segment list. */
#ifndef MX_TCPA_H
#define MX_TCPA_H

#include "core/mx.h"
#include "capture/decode.h"

/* Notable events kept per connection (the latest ones), for the figures of a
 * command's time span (mx_tcpa_span); older ones are only counted. */
#define MX_TCPA_EVENTS 16
/* A stall this long (ns) or longer enters the event ring; the longest of
 * each direction is kept whatever its length. */
#define MX_TCPA_STALL_NOTE (MX_NS_PER_SEC / 10)

enum mx_tcpa_kind {
    MX_TCPA_RETRANSMISSION, /* a retransmission of any kind (tcp.analysis.retransmission) */
    MX_TCPA_ZERO_WINDOW,    /* a zero window advertised (tcp.analysis.zero_window) */
    MX_TCPA_STALL,          /* a stall of MX_TCPA_STALL_NOTE or more ended */
};

/* One notable event: the frame, its time, and for a stall its start. */
struct mx_tcpa_event {
    mx_frame_t frame, from_frame;
    mx_time_t ts, from_ts;
    uint8_t kind, dir;
};

/* One direction: Wireshark's per-flow state (packet-tcp.c, tcp_analyze_seq_info), its counts,
 * and the progress of its data. */
struct mx_tcpa_half {
    uint32_t nextseq;         /* highest sequence number sent plus one; 0: none seen (as Wireshark) */
    uint32_t maxseqtobeacked; /* highest continuous sequence number seen */
    uint32_t lastack;         /* the ACK field of the last segment sent */
    uint32_t window;          /* the window of the last segment sent; UINT32_MAX: none yet */
    int32_t dupacknum;        /* duplicate ACKs in a row; -1 after an ACK of unseen data */
    uint32_t lastflags;       /* analysis flags of the last segment sent */
    mx_time_t nextseq_ts, lastack_ts;
    /* Counts (each as the tcp.analysis field of the same name). */
    uint64_t retransmissions; /* all: tcp.analysis.retransmission marks fast and spurious ones too */
    uint64_t fast_retransmissions, spurious_retransmissions, out_of_order, duplicate_acks, zero_windows;
    /* Progress: new data sent, or the peer acknowledging more of it. */
    uint32_t high;  /* end of the highest data sent */
    uint32_t acked; /* the peer's highest ACK of it */
    bool has_high, has_acked;
    mx_time_t data_ts; /* the latest segment with payload */
    mx_frame_t progress_frame;
    mx_time_t progress_ts;
    /* The longest stall: no progress while data was unacknowledged or the peer's window was 0. */
    mx_time_t stall;
    mx_frame_t stall_from, stall_to;
};

/* A connection. Zero-filled, then mx_tcpa_init. */
struct mx_tcpa {
    struct mx_tcpa_half h[2];
    /* The handshake (RFC 9293 §3.5): the last SYN, the SYN-ACK after it, the
     * client's first ACK after that. */
    mx_time_t syn_ts, synack_ts, ack_ts;
    mx_frame_t syn_frame, synack_frame, ack_frame;
    mx_time_t last_ts;     /* the latest packet's time (the clock never steps back here) */
    mx_frame_t last_frame; /* the last packet's frame */
    mx_time_t first_rtt;   /* Wireshark's first RTT (SYN to the first pure ACK): its out-of-order threshold */
    struct mx_tcpa_event ev[MX_TCPA_EVENTS];
    uint32_t n_ev;                   /* events noted in all; the ring holds the last MX_TCPA_EVENTS */
    uint32_t n_cum[3];               /* events of each kind noted in all */
    uint32_t cum[MX_TCPA_EVENTS][3]; /* the counts of each kind up to and including each ring entry */
};

void mx_tcpa_init(struct mx_tcpa *a);

/* Reads one segment sent in direction d (every segment, RST and bare ACKs included). */
void mx_tcpa_segment(struct mx_tcpa *a, enum mx_dir d, const struct mx_packet *p);

/* The handshake's round trip was seen whole (SYN, SYN-ACK, ACK). */
bool mx_tcpa_has_rtt(const struct mx_tcpa *a);

/* What happened between two times (a command and the end of its reply). */
struct mx_tcpa_span {
    uint32_t retransmissions, zero_windows;
    bool at_least;   /* older events than the ring holds may belong to it: counts are lower bounds */
    mx_time_t stall; /* the longest stall that overlaps the span (one going on counts up to now) */
    mx_frame_t stall_from, stall_to;
    mx_frame_t frames[8]; /* the frames of the first events */
    uint32_t n_frames;
    mx_time_t data_ts[2]; /* each direction's latest segment with payload so far (any time) */
};

/* Fills *s with the events of [from, to]. `live`: the span is being read as
 * its packets come, so a stall going on and the latest segments count;
 * false for bytes kept and handed over later (a flow classified late). */
void mx_tcpa_span(const struct mx_tcpa *a, mx_time_t from, mx_time_t to, bool live, struct mx_tcpa_span *s);

#endif
