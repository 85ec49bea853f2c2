/* encap.c - tunnels and shims around IP: GRE, ERSPAN, VXLAN, Geneve, GTP-U, MPLS and PPPoE. */
#include "capture/decode_int.h"
#include "core/cursor.h"

/* Caps: encapsulation layers in one packet (MX_ENCAP_MAX, decode.h, shared
 * with IP-in-IP), MPLS labels in one stack, GTP-U extension headers in one
 * chain. Geneve options need no cap: their total length is 6 bits. */
#define MX_MPLS_LABELS_MAX 8
#define MX_GTP_EXT_MAX 16

/* GRE flags and version (RFC 2784 §2.1, RFC 2890 §2). */
#define MX_GRE_C 0x8000 /* Checksum Present */
#define MX_GRE_K 0x2000 /* Key Present */
#define MX_GRE_S 0x1000 /* Sequence Number Present */
/* RFC 2784 §2.3: bits 1-5 must be zero unless RFC 1701 is implemented; bits
 * 2 and 3 are RFC 2890's K and S, which leaves 1 (Routing), 4 (Strict
 * Source Route) and 5 (the top bit of RFC 1701's Recursion Control). */
#define MX_GRE_RFC1701 0x4c00
#define MX_GRE_VERSION 0x0007
#define MX_GRE_VERSION_PPTP 1 /* RFC 2637 §4.1: enhanced GRE, carries PPP */

/* GRE Protocol Types (Ethertypes) that are not Ethertypes of a frame. */
#define MX_GRE_TEB 0x6558         /* Transparent Ethernet Bridging (RFC 1701 §3.3 list) */
#define MX_GRE_ERSPAN_I_II 0x88be /* draft-foschiano-erspan-03 §4.1, §4.2 */
#define MX_GRE_ERSPAN_III 0x22eb  /* draft-foschiano-erspan-03 §4.3 */

/* UDP destination ports of the tunnels (IANA). */
#define MX_PORT_VXLAN 4789  /* RFC 7348 §5 */
#define MX_PORT_GENEVE 6081 /* RFC 8926 §3.3 */
#define MX_PORT_GTPU 2152   /* 3GPP TS 29.281 §4.4.2 */

static const char *const mx_encap_names[] = {
    [MX_ENCAP_NONE] = "",         [MX_ENCAP_GRE] = "gre",   [MX_ENCAP_ERSPAN] = "erspan", [MX_ENCAP_VXLAN] = "vxlan",
    [MX_ENCAP_GENEVE] = "geneve", [MX_ENCAP_GTPU] = "gtpu", [MX_ENCAP_MPLS] = "mpls",     [MX_ENCAP_PPPOE] = "pppoe",
};

/* Contract in decode.h. */
const char *mx_encap_name(enum mx_encap e)
{
    return (size_t)e < MX_ARRAY_LEN(mx_encap_names) ? mx_encap_names[e] : "";
}

/* Contract in decode_int.h. */
bool mx_encap_enter(struct mx_dctx *x, enum mx_encap e)
{
    struct mx_packet *p = x->pkt;

    if (x->depth >= MX_ENCAP_MAX) {
        mx_decode_note(x, MX_AN_ENCAP_DEPTH_EXCEEDED);
        return false;
    }
    x->depth++;
    if (e != MX_ENCAP_NONE && p->nencap < MX_ENCAP_MAX)
        p->encap[p->nencap++] = (uint8_t)e;
    return true;
}

/* The layer limited to the `n` bytes a header says follow it; false when the
 * wire holds fewer (the header lies). Trailing bytes (padding) are dropped. */
static bool mx_layer_limit(struct mx_layer *l, size_t n)
{
    if (n > l->wire)
        return false;
    l->wire = n;
    if (l->cap > n)
        l->cap = n;
    return true;
}

/* An IP packet whose version the first nibble tells (GTP-U T-PDU, MPLS
 * payload); anything else is OTHER. */
static enum mx_decode_result mx_decode_ip_by_nibble(struct mx_dctx *x, struct mx_layer l)
{
    if (l.cap < 1)
        return l.wire ? mx_decode_short(x, l, 1, MX_AN_IP_HEADER_INVALID) : MX_DECODE_OTHER;
    if (l.ptr[0] >> 4 == 4)
        return mx_decode_ipv4(x, l);
    if (l.ptr[0] >> 4 == 6)
        return mx_decode_ipv6(x, l);
    return MX_DECODE_OTHER;
}

/* ---- ERSPAN (draft-foschiano-erspan-03 §4) ---- */

/* Type I: no header, the mirrored Ethernet frame right after GRE. Types II
 * and III: the header's version says which (1: 8 bytes; 2: 12 bytes, and the
 * 8-byte platform-specific subheader when O is set), as Wireshark reads it
 * whatever the GRE Protocol Type; a type III frame that is not Ethernet
 * (Frame Type other than 0) is OTHER. */
static enum mx_decode_result mx_decode_erspan(struct mx_dctx *x, struct mx_layer l, bool header)
{
    struct mx_cursor c;
    size_t hl;
    unsigned ver;

    if (!mx_encap_enter(x, MX_ENCAP_ERSPAN))
        return MX_DECODE_INVALID;
    if (!header)
        return mx_decode_ether(x, l);
    mx_cursor_init(&c, l.ptr, l.cap);
    ver = mx_cursor_be16(&c) >> 12; /* Ver, VLAN */
    mx_cursor_skip(&c, 2);          /* COS, En/BSO, T, Session ID */
    if (c.err)
        return mx_decode_short(x, l, 4, MX_AN_ERSPAN_HEADER_INVALID);
    if (ver == 1) {
        hl = 8; /* Reserved, Index */
    } else if (ver == 2) {
        mx_cursor_skip(&c, 6); /* Timestamp, Security Group Tag */
        uint16_t w = mx_cursor_be16(&c);
        if (c.err)
            return mx_decode_short(x, l, 12, MX_AN_ERSPAN_HEADER_INVALID);
        hl = w & 0x0001 ? 20 : 12; /* O: the platform-specific subheader follows */
        if ((w >> 10) & 0x1f)      /* Frame Type: 0 Ethernet, 2 IP */
            return l.cap < hl ? mx_decode_short(x, l, hl, MX_AN_ERSPAN_HEADER_INVALID) : MX_DECODE_OTHER;
    } else {
        return mx_decode_bad(x, MX_AN_ERSPAN_HEADER_INVALID);
    }
    if (l.cap < hl)
        return mx_decode_short(x, l, hl, MX_AN_ERSPAN_HEADER_INVALID);
    return mx_decode_ether(x, mx_layer_skip(l, hl));
}

/* ---- GRE (RFC 2784 §2, RFC 2890 §2) ---- */

/* Contract in decode_int.h. Version 1 (PPTP's PPP) is OTHER; the Protocol
 * Type is an Ethertype, plus Ethernet bridging and ERSPAN. */
enum mx_decode_result mx_decode_gre(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint16_t fv, proto;
    size_t hl;

    mx_cursor_init(&c, l.ptr, l.cap);
    fv = mx_cursor_be16(&c);
    proto = mx_cursor_be16(&c);
    if (c.err)
        return mx_decode_short(x, l, 4, MX_AN_GRE_HEADER_INVALID);
    if ((fv & MX_GRE_VERSION) == MX_GRE_VERSION_PPTP)
        return MX_DECODE_OTHER;
    if ((fv & MX_GRE_VERSION) || (fv & MX_GRE_RFC1701))
        return mx_decode_bad(x, MX_AN_GRE_HEADER_INVALID);
    /* Checksum and Reserved1 (RFC 2784 §2.5), Key (RFC 2890 §2.1), Sequence Number (§2.2). */
    hl = 4 + (fv & MX_GRE_C ? 4 : 0) + (fv & MX_GRE_K ? 4 : 0) + (fv & MX_GRE_S ? 4 : 0);
    if (l.cap < hl)
        return mx_decode_short(x, l, hl, MX_AN_GRE_HEADER_INVALID);
    if (!mx_encap_enter(x, MX_ENCAP_GRE))
        return MX_DECODE_INVALID;
    l = mx_layer_skip(l, hl);
    switch (proto) {
    case MX_GRE_TEB:
        return mx_decode_ether(x, l);
    case MX_GRE_ERSPAN_I_II: /* type II has the S bit set, type I not */
        return mx_decode_erspan(x, l, (fv & MX_GRE_S) != 0);
    case MX_GRE_ERSPAN_III:
        return mx_decode_erspan(x, l, true);
    default:
        return mx_decode_ethertype(x, l, proto);
    }
}

/* ---- UDP tunnels ---- */

/* VXLAN (RFC 7348 §5): Flags (I, 0x08, must be set), 24 reserved bits, VNI,
 * 8 reserved bits; an Ethernet frame follows. Without I the datagram is not
 * taken for VXLAN at all: counted, and OTHER. */
static enum mx_decode_result mx_decode_vxlan(struct mx_dctx *x, struct mx_layer l)
{
    if (l.cap < 8)
        return mx_decode_short(x, l, 8, MX_AN_VXLAN_HEADER_INVALID);
    if (!(l.ptr[0] & 0x08)) {
        mx_decode_note(x, MX_AN_VXLAN_HEADER_INVALID);
        return MX_DECODE_OTHER;
    }
    if (!mx_encap_enter(x, MX_ENCAP_VXLAN))
        return MX_DECODE_INVALID;
    return mx_decode_ether(x, mx_layer_skip(l, 8));
}

/* Geneve (RFC 8926 §3.4): Ver (0), Opt Len (4-byte units), O, C, Protocol
 * Type, VNI; then the options (§3.5: class, type, and a 5-bit length in
 * 4-byte units each), which must fill Opt Len exactly. Protocol 0x6558 is an
 * Ethernet frame, others an Ethertype (IPv4, IPv6). */
static enum mx_decode_result mx_decode_geneve(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint8_t b0;
    uint16_t proto;
    size_t hl;
    bool lie = false;

    mx_cursor_init(&c, l.ptr, l.cap);
    b0 = mx_cursor_u8(&c);
    mx_cursor_skip(&c, 1); /* O, C, Rsvd. */
    proto = mx_cursor_be16(&c);
    mx_cursor_skip(&c, 4); /* VNI, Reserved */
    if (c.err)
        return mx_decode_short(x, l, 8, MX_AN_GENEVE_HEADER_INVALID);
    if (b0 >> 6) /* §3.4: an unknown version is dropped */
        return mx_decode_bad(x, MX_AN_GENEVE_HEADER_INVALID);
    hl = 8 + (size_t)(b0 & 0x3f) * 4;
    if (l.wire < hl)
        return mx_decode_bad(x, MX_AN_GENEVE_HEADER_INVALID);
    while (!lie && !c.err && c.pos < hl) {
        size_t start = c.pos, olen;
        mx_cursor_skip(&c, 3); /* Option Class, Type */
        olen = 4 + (size_t)(mx_cursor_u8(&c) & 0x1f) * 4;
        if (start + olen > hl)
            lie = true;
        else
            mx_cursor_skip(&c, olen - 4);
    }
    if (lie)
        return mx_decode_bad(x, MX_AN_GENEVE_HEADER_INVALID);
    if (c.err)
        return mx_decode_short(x, l, hl, MX_AN_GENEVE_HEADER_INVALID);
    if (!mx_encap_enter(x, MX_ENCAP_GENEVE))
        return MX_DECODE_INVALID;
    l = mx_layer_skip(l, hl);
    return proto == MX_GRE_TEB ? mx_decode_ether(x, l) : mx_decode_ethertype(x, l, proto);
}

/* GTP-U (3GPP TS 29.281 §5.1): Version 1, PT 1, E, S, PN; Message Type;
 * Length (what follows the first 8 bytes); TEID; with any of E, S, PN the
 * Sequence Number, N-PDU Number and Next Extension Header Type; then the
 * extension headers (§5.2: a length in 4-byte units that counts the whole
 * header, contents, the next type; 0 ends the chain). A G-PDU (255) carries
 * a T-PDU, here IPv4 or IPv6 by its version; other messages (echo, error
 * indication, end marker) are OTHER. */
static enum mx_decode_result mx_decode_gtpu(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint8_t flags, type, next = 0;
    uint16_t len;

    mx_cursor_init(&c, l.ptr, l.cap);
    flags = mx_cursor_u8(&c);
    type = mx_cursor_u8(&c);
    len = mx_cursor_be16(&c);
    mx_cursor_skip(&c, 4); /* TEID */
    if (c.err)
        return mx_decode_short(x, l, 8, MX_AN_GTP_HEADER_INVALID);
    if (flags >> 5 != 1 || !(flags & 0x10)) /* Version 1; PT 0 is GTP' (TS 32.295) */
        return mx_decode_bad(x, MX_AN_GTP_HEADER_INVALID);
    if (!mx_layer_limit(&l, 8 + (size_t)len))
        return mx_decode_bad(x, MX_AN_GTP_HEADER_INVALID);
    if (type != 255)
        return MX_DECODE_OTHER;
    if (flags & 0x07) {
        mx_cursor_skip(&c, 3); /* Sequence Number, N-PDU Number */
        next = mx_cursor_u8(&c);
    }
    if (c.err)
        return mx_decode_short(x, l, 12, MX_AN_GTP_HEADER_INVALID);
    for (unsigned n = 0; next; n++) {
        size_t start = c.pos, elen;
        if (n >= MX_GTP_EXT_MAX)
            return mx_decode_bad(x, MX_AN_GTP_HEADER_INVALID);
        elen = (size_t)mx_cursor_u8(&c) * 4;
        if (c.err)
            return mx_decode_short(x, l, start + 1, MX_AN_GTP_HEADER_INVALID);
        if (elen == 0)
            return mx_decode_bad(x, MX_AN_GTP_HEADER_INVALID);
        mx_cursor_skip(&c, elen - 2); /* contents */
        next = mx_cursor_u8(&c);
        if (c.err)
            return mx_decode_short(x, l, start + elen, MX_AN_GTP_HEADER_INVALID);
    }
    if (!mx_encap_enter(x, MX_ENCAP_GTPU))
        return MX_DECODE_INVALID;
    return mx_decode_ip_by_nibble(x, mx_layer_skip(l, c.pos));
}

/* Contract in decode_int.h. UDP (RFC 768): only a datagram to a tunnel's
 * port is read further. Its Length, which counts the header, must fit the
 * wire (0 is an IPv6 jumbogram's, RFC 2675 §4: the IP layer's is taken);
 * else the tunnel's anomaly. */
enum mx_decode_result mx_decode_udp(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    enum mx_core_anomaly an;
    uint16_t dport, ulen;

    mx_cursor_init(&c, l.ptr, l.cap);
    mx_cursor_skip(&c, 2); /* Source Port */
    dport = mx_cursor_be16(&c);
    if (c.err)
        return MX_DECODE_OTHER;
    if (dport == MX_PORT_VXLAN)
        an = MX_AN_VXLAN_HEADER_INVALID;
    else if (dport == MX_PORT_GENEVE)
        an = MX_AN_GENEVE_HEADER_INVALID;
    else if (dport == MX_PORT_GTPU)
        an = MX_AN_GTP_HEADER_INVALID;
    else
        return MX_DECODE_OTHER;
    ulen = mx_cursor_be16(&c);
    mx_cursor_skip(&c, 2); /* Checksum */
    if (c.err)
        return mx_decode_short(x, l, 8, an);
    if ((ulen && ulen < 8) || !mx_layer_limit(&l, ulen ? ulen : l.wire))
        return mx_decode_bad(x, an);
    l = mx_layer_skip(l, 8);
    if (dport == MX_PORT_VXLAN)
        return mx_decode_vxlan(x, l);
    if (dport == MX_PORT_GENEVE)
        return mx_decode_geneve(x, l);
    return mx_decode_gtpu(x, l);
}

/* ---- MPLS (RFC 3032 §2.1) ---- */

/* Contract in decode_int.h. Label stack entries (Label, TC, S, TTL) up to
 * the one with S, at most MX_MPLS_LABELS_MAX. The payload is not named by
 * the stack: as tshark guesses it, a first nibble of 4 is IPv4, 6 IPv6, and
 * 0 the RFC 4385 §3 control word of a pseudowire (4 bytes) before an
 * Ethernet frame (RFC 4448); anything else is OTHER. */
enum mx_decode_result mx_decode_mpls(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint32_t e = 0;

    if (!mx_encap_enter(x, MX_ENCAP_MPLS))
        return MX_DECODE_INVALID;
    mx_cursor_init(&c, l.ptr, l.cap);
    for (unsigned n = 0; !(e & 0x100); n++) {
        if (n >= MX_MPLS_LABELS_MAX)
            return mx_decode_bad(x, MX_AN_MPLS_HEADER_INVALID);
        e = mx_cursor_be32(&c);
        if (c.err)
            return mx_decode_short(x, l, (size_t)(n + 1) * 4, MX_AN_MPLS_HEADER_INVALID);
    }
    l = mx_layer_skip(l, c.pos);
    if (l.cap >= 1 && l.ptr[0] >> 4 == 0) {
        if (l.cap < 4)
            return mx_decode_short(x, l, 4, MX_AN_MPLS_HEADER_INVALID);
        return mx_decode_ether(x, mx_layer_skip(l, 4));
    }
    return mx_decode_ip_by_nibble(x, l);
}

/* ---- PPPoE (RFC 2516 §4, §7) ---- */

/* Contract in decode_int.h. VER 1, TYPE 1, CODE 0 (session data), SESSION_ID,
 * LENGTH (of the PPP frame, which must fit the wire; link padding after it
 * is dropped), then the PPP Protocol field (RFC 1661 §2, two bytes: RFC
 * 2516 §7 forbids compressing it): 0x0021 IPv4, 0x0057 IPv6 (RFC 5072 §2);
 * LCP, IPCP and the rest are OTHER. */
enum mx_decode_result mx_decode_pppoe(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint8_t vt, code;
    uint16_t len, proto;

    mx_cursor_init(&c, l.ptr, l.cap);
    vt = mx_cursor_u8(&c);
    code = mx_cursor_u8(&c);
    mx_cursor_skip(&c, 2); /* SESSION_ID */
    len = mx_cursor_be16(&c);
    proto = mx_cursor_be16(&c);
    if (c.err)
        return mx_decode_short(x, l, 8, MX_AN_PPPOE_HEADER_INVALID);
    if (vt != 0x11 || code != 0 || len < 2 || !mx_layer_limit(&l, 6 + (size_t)len))
        return mx_decode_bad(x, MX_AN_PPPOE_HEADER_INVALID);
    if (!mx_encap_enter(x, MX_ENCAP_PPPOE))
        return MX_DECODE_INVALID;
    l = mx_layer_skip(l, 8);
    if (proto == 0x0021)
        return mx_decode_ipv4(x, l);
    if (proto == 0x0057)
        return mx_decode_ipv6(x, l);
    return MX_DECODE_OTHER;
}
