/* anomaly.h - the core's table of anomaly names: what a peer or a capture did wrong. */
#ifndef MX_ANOMALY_H
#define MX_ANOMALY_H

#include <stdint.h>

/* One named anomaly. Names are stable UPPER_SNAKE strings: scripts and golden
 * files rely on them, so a name is never reused for another meaning. */
struct mx_anomaly_def {
    const char *name;
    const char *desc;
};

/* A table of anomalies as an X-macro list of X(NAME, "description") lines
 * gives both its enum, A_NAME, and its table of struct mx_anomaly_def:
 *   enum { LIST(MX_ANOMALY_ENUM) };
 *   static const struct mx_anomaly_def table[] = { LIST(MX_ANOMALY_DEF) }; */
#define MX_ANOMALY_ENUM(name, desc) A_##name,
#define MX_ANOMALY_DEF(name, desc) { #name, desc },

/* The core's anomalies: capture input, packet decode, IP reassembly, flows and
 * TCP reassembly. Dissectors carry their own tables (dissector.h). */
#define MX_CORE_ANOMALIES(X)                                                                                      \
    X(FILE_TRUNCATED, "the capture file ends in the middle of a record")                                          \
    X(FILE_READ_ERROR, "the capture file could not be read further")                                              \
    X(UNSUPPORTED_LINKTYPE, "packets of a link type mxray does not decode were skipped")                          \
    X(SNAPLEN_TRUNCATED, "a packet was cut by the capture's snapshot length")                                     \
    X(LINK_HEADER_INVALID, "a link-layer header is shorter than its type requires")                               \
    X(VLAN_DEPTH_EXCEEDED, "more stacked VLAN tags than mxray follows")                                           \
    X(IP_HEADER_INVALID, "an IP header whose version or length fields lie")                                       \
    X(IP_LENGTH_MISMATCH, "the IP total length is larger than the frame carries")                                 \
    X(IPV6_EXT_INVALID, "an IPv6 extension header chain that is cut or too long")                                 \
    X(TCP_HEADER_INVALID, "a TCP header whose data offset lies")                                                  \
    X(FRAG_OVERLAP, "IP fragments overlap")                                                                       \
    X(FRAG_INVALID, "an IP fragment with an impossible offset or length")                                         \
    X(FRAG_TIMEOUT, "an IP datagram's fragments never all arrived")                                               \
    X(FRAG_LIMIT, "IP fragment memory or datagram cap reached; fragments dropped")                                \
    X(FLOW_EVICTED, "the flow table or the memory cap was full; the least recently active flow was closed early") \
    X(TCP_OVERLAP_DIFFERENT, "a TCP segment overlaps earlier bytes with different data")                          \
    X(TCP_SEGMENT_OUT_OF_WINDOW, "a TCP segment lies far outside the expected sequence range")                    \
    X(TCP_DATA_AFTER_FIN, "TCP data beyond the sequence number of the FIN")                                       \
    X(TCP_REASSEMBLY_LIMIT, "out-of-order data exceeded its cap; the hole became a gap")                          \
    X(TCP_GAP, "bytes of the stream were never captured")                                                         \
    X(TCP_LATE_SEGMENT, "a segment arrived for bytes already declared a gap")                                     \
    X(DISSECTOR_BUFFER_LIMIT, "a dissector left more unconsumed bytes than the cap allows")                       \
    X(SYN_UNANSWERED, "the client's SYN got no answer: the server was silent or the capture missed it")           \
    X(TIMESTAMP_OUT_OF_RANGE, "a packet's time lay before 1970 or after 2116 (a damaged header or a hostile "     \
                              "pcapng if_tsoffset); it was clamped")                                              \
    X(IP_LENGTH_FROM_FRAME, "an IP length of 0, as segmentation offload (TSO/GSO, BIG TCP) leaves it in a "       \
                            "capture on the sending host: the length was taken from the frame")                   \
    X(ENCAP_DEPTH_EXCEEDED, "more nested encapsulations (tunnels, label stacks, IP-in-IP) than mxray follows")    \
    X(GRE_HEADER_INVALID, "a GRE header with a version, reserved bits or a length that lie")                      \
    X(ERSPAN_HEADER_INVALID, "an ERSPAN header of an unknown version, or cut")                                    \
    X(VXLAN_HEADER_INVALID, "a datagram to the VXLAN port that is no VXLAN (I flag clear), or cut")               \
    X(GENEVE_HEADER_INVALID, "a Geneve header of an unknown version or whose options overrun it")                 \
    X(GTP_HEADER_INVALID, "a GTP-U header whose version, type, length or extension headers lie")                  \
    X(MPLS_HEADER_INVALID, "an MPLS label stack that is cut or has no bottom within 8 labels")                    \
    X(PPPOE_HEADER_INVALID, "a PPPoE session header whose version, type, code or length lie")

enum mx_core_anomaly {
#define MX_X(n, d) MX_AN_##n,
    MX_CORE_ANOMALIES(MX_X)
#undef MX_X
        MX_AN__COUNT
};

extern const struct mx_anomaly_def mx_core_anomalies[MX_AN__COUNT];

/* Per-kind counters of core anomalies. */
struct mx_anomaly_counts {
    uint64_t n[MX_AN__COUNT];
};

#endif
