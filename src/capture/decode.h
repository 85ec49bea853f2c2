/* decode.h - link, IPv4/IPv6 and TCP header decoding, with IP fragment reassembly. */
#ifndef MX_DECODE_H
#define MX_DECODE_H

#include "core/mx.h"
#include "core/anomaly.h"

/* Link types mxray decodes (values are LINKTYPE_* from the pcap/pcapng specs;
 * libpcap maps DLT_RAW/DLT_NULL etc. to these). */
#define MX_LINKTYPE_NULL 0 /* BSD loopback, host byte order AF */
#define MX_LINKTYPE_ETHERNET 1
#define MX_LINKTYPE_RAW 101  /* raw IPv4 or IPv6, version from the first nibble */
#define MX_LINKTYPE_LOOP 108 /* OpenBSD loopback, network byte order AF */
#define MX_LINKTYPE_LINUX_SLL 113
#define MX_LINKTYPE_IPV4 228
#define MX_LINKTYPE_IPV6 229
#define MX_LINKTYPE_LINUX_SLL2 276

/* TCP flags (RFC 9293 §3.1). */
#define MX_TCP_FIN 0x01
#define MX_TCP_SYN 0x02
#define MX_TCP_RST 0x04
#define MX_TCP_PSH 0x08
#define MX_TCP_ACK 0x10
#define MX_TCP_URG 0x20

/* Encapsulations followed to reach a packet (manual, "Encapsulations"), as
 * listed in struct mx_packet.encap; VLAN tags and IP-in-IP are not listed. */
enum mx_encap {
    MX_ENCAP_NONE,   /* not listed (IP-in-IP) */
    MX_ENCAP_GRE,    /* RFC 2784, RFC 2890 */
    MX_ENCAP_ERSPAN, /* ERSPAN types I, II, III inside GRE */
    MX_ENCAP_VXLAN,  /* RFC 7348 */
    MX_ENCAP_GENEVE, /* RFC 8926 */
    MX_ENCAP_GTPU,   /* 3GPP TS 29.281 */
    MX_ENCAP_MPLS,   /* RFC 3032 label stack (with an RFC 4385 pseudowire) */
    MX_ENCAP_PPPOE,  /* RFC 2516 session */
};

/* Encapsulation layers of every kind, IP-in-IP included, followed in one
 * packet; one more is ENCAP_DEPTH_EXCEEDED. */
#define MX_ENCAP_MAX 8

/* The name of an encapsulation in records ("gre", "vxlan", ...); "" for MX_ENCAP_NONE. */
const char *mx_encap_name(enum mx_encap e);

/* One captured frame as the input layer hands it over. */
struct mx_raw_packet {
    mx_frame_t frame;    /* 1-based frame number */
    mx_time_t ts;        /* capture time, ns, in [0, MX_TIME_MAX] */
    int linktype;        /* LINKTYPE_* */
    uint32_t caplen;     /* bytes captured */
    uint32_t wirelen;    /* bytes on the wire */
    const uint8_t *data; /* caplen bytes, owned by the input layer */
    bool ts_clamped;     /* the time read lay outside ts's range */
};

/* A decoded TCP segment. Slices point into the raw packet or, for a
 * reassembled IP datagram, into the decoder's buffer; both stay valid until
 * the next call to mx_decode(). */
struct mx_packet {
    mx_frame_t frame; /* the frame that completed the packet */
    mx_time_t ts;
    struct mx_addr src, dst;
    uint16_t sport, dport;
    uint32_t seq, ack; /* raw sequence and acknowledgement numbers */
    uint8_t flags;     /* MX_TCP_* */
    uint16_t window;
    struct mx_slice payload;     /* TCP payload bytes actually captured */
    uint32_t payload_len;        /* payload length according to the IP header */
    bool truncated;              /* payload.len < payload_len (snaplen cut) */
    bool len_from_frame;         /* the IP length was 0 (an offloaded super-frame): the frame's was taken */
    bool defragmented;           /* carried by several IP fragments */
    struct mx_slice l3;          /* the (innermost) IP header and what follows, as captured; empty
                                when defragmented. For classifiers that want the IP packet. */
    mx_frame_t first_frame;      /* first fragment's frame when defragmented, else frame */
    uint8_t encap[MX_ENCAP_MAX]; /* enum mx_encap of the layers that carried it, outermost first */
    uint8_t nencap;              /* entries of encap[] used */
};

enum mx_decode_result {
    MX_DECODE_TCP,       /* *pkt holds a TCP segment */
    MX_DECODE_OTHER,     /* a valid packet that is not TCP (UDP, ICMP, ARP, ...) */
    MX_DECODE_FRAG_HELD, /* an IP fragment was stored; its datagram is not complete */
    MX_DECODE_LINKTYPE,  /* the link type is not one mxray decodes */
    MX_DECODE_INVALID,   /* a header was invalid; an anomaly was counted */
};

/* Limits of the IP fragment reassembler. A zero-filled struct takes defaults. */
struct mx_defrag_limits {
    uint32_t max_datagrams; /* datagrams in progress at once (default 1024) */
    uint64_t max_bytes;     /* fragment bytes held at once (default 16 MiB) */
    mx_time_t timeout;      /* ns before an incomplete datagram is dropped (default 30 s) */
};

struct mx_decoder;

/* Creates a decoder; returns NULL when out of memory. limits may be NULL. */
struct mx_decoder *mx_decoder_new(const struct mx_defrag_limits *limits);
void mx_decoder_free(struct mx_decoder *d);

/* Decodes one raw packet. On MX_DECODE_TCP, *pkt describes the segment.
 * Every anomaly found is added to `counts` and also or-ed as a bit
 * (1u << MX_AN_x) into *anomalies, so the caller can report the frame.
 * Incomplete fragmented datagrams older than the timeout (relative to raw->ts)
 * are dropped on the way, counting FRAG_TIMEOUT. */
enum mx_decode_result mx_decode(struct mx_decoder *d, const struct mx_raw_packet *raw, struct mx_packet *pkt,
                                struct mx_anomaly_counts *counts, uint64_t *anomalies);

/* Bytes currently held by the fragment reassembler (for memory accounting). */
uint64_t mx_decoder_held_bytes(const struct mx_decoder *d);

#endif
