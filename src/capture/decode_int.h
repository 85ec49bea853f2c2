/* decode_int.h - what decode.c shares with encap.c: one decode's state and the header helpers. */
#ifndef MX_DECODE_INT_H
#define MX_DECODE_INT_H

#include "capture/decode.h"

/* Bytes from one protocol layer on: `cap` of them captured at `ptr`, `wire`
 * of them on the wire (wire >= cap). */
struct mx_layer {
    const uint8_t *ptr;
    size_t cap;
    size_t wire;
};

/* State of one mx_decode() call. */
struct mx_dctx {
    struct mx_decoder *d;
    const struct mx_raw_packet *raw;
    struct mx_packet *pkt;
    struct mx_anomaly_counts *counts; /* may be NULL */
    uint64_t *anomalies;              /* may be NULL */
    unsigned depth;                   /* encapsulation layers entered so far (MX_ENCAP_MAX) */
};

/* Counts anomaly `a` for this packet. */
void mx_decode_note(struct mx_dctx *x, enum mx_core_anomaly a);
/* Counts `a` and returns MX_DECODE_INVALID. */
enum mx_decode_result mx_decode_bad(struct mx_dctx *x, enum mx_core_anomaly a);
/* A header of `need` bytes does not fit in what was captured: counts
 * SNAPLEN_TRUNCATED if the wire had the bytes, else `a`; returns MX_DECODE_INVALID. */
enum mx_decode_result mx_decode_short(struct mx_dctx *x, struct mx_layer l, size_t need, enum mx_core_anomaly a);
/* The layer from `n` bytes on (at most what was captured). */
struct mx_layer mx_layer_skip(struct mx_layer l, size_t n);

/* Decoders of what a layer may carry; each returns what mx_decode() does. */
enum mx_decode_result mx_decode_ipv4(struct mx_dctx *x, struct mx_layer l);
enum mx_decode_result mx_decode_ipv6(struct mx_dctx *x, struct mx_layer l);
/* An Ethernet II frame without FCS: destination, source, Ethertype. */
enum mx_decode_result mx_decode_ether(struct mx_dctx *x, struct mx_layer l);
/* What follows an Ethertype (VLAN tags followed). */
enum mx_decode_result mx_decode_ethertype(struct mx_dctx *x, struct mx_layer l, uint16_t type);

/* encap.c. Enters one more encapsulation layer of kind `e` (listed in the
 * packet unless MX_ENCAP_NONE); false, with ENCAP_DEPTH_EXCEEDED counted,
 * when the budget MX_ENCAP_MAX is spent. */
bool mx_encap_enter(struct mx_dctx *x, enum mx_encap e);
/* GRE after an IP header (IP protocol 47). */
enum mx_decode_result mx_decode_gre(struct mx_dctx *x, struct mx_layer l);
/* UDP after an IP header (IP protocol 17): the tunnels on their ports, else OTHER. */
enum mx_decode_result mx_decode_udp(struct mx_dctx *x, struct mx_layer l);
/* An MPLS label stack (Ethertypes 0x8847, 0x8848). */
enum mx_decode_result mx_decode_mpls(struct mx_dctx *x, struct mx_layer l);
/* A PPPoE session frame (Ethertype 0x8864). */
enum mx_decode_result mx_decode_pppoe(struct mx_dctx *x, struct mx_layer l);

#endif
