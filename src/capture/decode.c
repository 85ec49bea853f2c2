/* decode.c - link, IPv4/IPv6 and TCP header decoding, with IP fragment reassembly. */
#include "capture/decode_int.h"
#include "core/cursor.h"
#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

/* Ethertypes (IEEE 802.3, 802.1Q §9.5). */
#define MX_ETH_IPV4 0x0800
#define MX_ETH_IPV6 0x86dd
#define MX_ETH_8021Q 0x8100
#define MX_ETH_8021AD 0x88a8
#define MX_ETH_QINQ 0x9100       /* pre-standard QinQ */
#define MX_ETH_MPLS 0x8847       /* RFC 3032 §5: unicast */
#define MX_ETH_MPLS_MCAST 0x8848 /* multicast */
#define MX_ETH_PPPOE 0x8864      /* RFC 2516 §4: session stage (0x8863, discovery, is other) */

/* IP protocol / IPv6 Next Header numbers. */
#define MX_IPPROTO_HOPOPTS 0
#define MX_IPPROTO_IPIP 4 /* IPv4 in IP, RFC 2003 */
#define MX_IPPROTO_TCP 6
#define MX_IPPROTO_UDP 17
#define MX_IPPROTO_IPV6 41 /* IPv6 in IP, RFC 4213 §3.5 (6in4) and RFC 2473 */
#define MX_IPPROTO_GRE 47
#define MX_IPPROTO_ROUTING 43
#define MX_IPPROTO_FRAGMENT 44
#define MX_IPPROTO_AH 51
#define MX_IPPROTO_DSTOPTS 60

#define MX_VLAN_MAX 8        /* stacked VLAN tags followed */
#define MX_IPV6_EXT_MAX 16   /* extension headers followed in one chain */
#define MX_IP_MAXDATA 65535u /* largest reassembled payload */

#define MX_DEFRAG_DATAGRAMS 1024u
#define MX_DEFRAG_BYTES (UINT64_C(16) << 20)
#define MX_DEFRAG_TIMEOUT (30 * MX_NS_PER_SEC)
#define MX_DEFRAG_BUCKETS_MAX 65536u

_Static_assert(MX_AN__COUNT <= 64, "anomaly bits must fit in a uint64_t");

/* Identifies the datagram a fragment belongs to: RFC 791 §3.2 (src, dst, id,
 * protocol), RFC 8200 §4.5 (src, dst, id). Laid out without padding so it can
 * be hashed and compared as bytes. */
struct mx_frag_key {
    uint8_t family;  /* 4 or 6 */
    uint8_t proto;   /* IPv4 protocol; 0 for IPv6 */
    uint8_t pad[2];  /* always zero */
    uint32_t id;     /* Identification */
    uint8_t src[16]; /* IPv4 uses the first 4 bytes */
    uint8_t dst[16];
};

/* A run of fragment bytes. Pieces never overlap: on overlap only the bytes
 * not held yet are stored, so first-seen bytes win. */
struct mx_frag_piece {
    struct mx_frag_piece *next; /* next piece by offset */
    uint32_t off, len;          /* position in the reassembled payload */
    uint8_t data[];
};

/* A datagram whose fragments are being collected. */
struct mx_dgram {
    struct mx_frag_key key;
    struct mx_dgram *hnext;         /* hash bucket chain */
    struct mx_dgram *older, *newer; /* arrival order, for the timeout */
    struct mx_frag_piece *pieces;   /* sorted by offset, disjoint */
    mx_time_t ts;                   /* first fragment's capture time */
    mx_frame_t first_frame;         /* first fragment's frame */
    uint64_t cost;                  /* bytes charged to the decoder */
    uint32_t have;                  /* payload bytes held */
    uint32_t maxend;                /* end of the highest piece */
    uint32_t total;                 /* payload length once last_seen */
    bool last_seen;                 /* the fragment without MF/M is in */
    uint8_t nh;                     /* IPv6: Next Header of the offset-zero fragment */
};

struct mx_decoder {
    struct mx_defrag_limits lim;      /* defaults filled in */
    struct mx_dgram **bucket;         /* hash table of datagrams in progress */
    struct mx_hasher *hasher;         /* its keyed hash */
    size_t nbucket;                   /* a power of two */
    struct mx_dgram *oldest, *newest; /* arrival order */
    uint32_t ndgram;                  /* datagrams in progress */
    uint64_t held;                    /* bytes charged, see mx_dgram.cost */
    uint8_t buf[MX_IP_MAXDATA];       /* the last reassembled payload */
};

static enum mx_decode_result mx_decode_ipv6_ext(struct mx_dctx *x, struct mx_layer l, uint8_t nh, bool reassembled);

/* An IP packet carried as the payload of another (6in4, IPIP, IPv6 in IPv6):
 * the inner header's addresses are the flow's. Nesting shares the budget of
 * every encapsulation. */
static enum mx_decode_result mx_decode_tunnel(struct mx_dctx *x, struct mx_layer l, uint8_t proto)
{
    if (!mx_encap_enter(x, MX_ENCAP_NONE))
        return MX_DECODE_INVALID;
    return proto == MX_IPPROTO_IPV6 ? mx_decode_ipv6(x, l) : mx_decode_ipv4(x, l);
}

/* What an IP header's protocol (or IPv6 Next Header) `proto` leads to, from
 * the layer after it, when it is neither TCP nor an IPv6 extension header. */
static enum mx_decode_result mx_decode_ip_payload(struct mx_dctx *x, struct mx_layer l, uint8_t proto)
{
    if (proto == MX_IPPROTO_IPV6 || proto == MX_IPPROTO_IPIP)
        return mx_decode_tunnel(x, l, proto);
    if (proto == MX_IPPROTO_GRE)
        return mx_decode_gre(x, l);
    if (proto == MX_IPPROTO_UDP)
        return mx_decode_udp(x, l);
    return MX_DECODE_OTHER;
}

void mx_decode_note(struct mx_dctx *x, enum mx_core_anomaly a)
{
    if (x->counts)
        x->counts->n[a]++;
    if (x->anomalies)
        *x->anomalies |= UINT64_C(1) << a;
}

/* Contract in decode_int.h. */
enum mx_decode_result mx_decode_bad(struct mx_dctx *x, enum mx_core_anomaly a)
{
    mx_decode_note(x, a);
    return MX_DECODE_INVALID;
}

/* A header of `need` bytes does not fit in what was captured: blame the
 * snapshot length if the wire had the bytes, else the header itself. */
enum mx_decode_result mx_decode_short(struct mx_dctx *x, struct mx_layer l, size_t need, enum mx_core_anomaly a)
{
    if (l.cap < need && l.wire >= need)
        a = MX_AN_SNAPLEN_TRUNCATED;
    return mx_decode_bad(x, a);
}

struct mx_layer mx_layer_skip(struct mx_layer l, size_t n)
{
    if (n > l.cap)
        n = l.cap;
    l.ptr += n;
    l.cap -= n;
    l.wire -= n;
    return l;
}

/* Limits the layer to the length an IP header claims: trims link padding, or
 * counts IP_LENGTH_MISMATCH when the claim exceeds the wire and keeps what is there. */
static struct mx_layer mx_layer_fit(struct mx_dctx *x, struct mx_layer l, size_t n)
{
    if (n > l.wire) {
        mx_decode_note(x, MX_AN_IP_LENGTH_MISMATCH);
        n = l.wire;
    }
    l.wire = n;
    if (l.cap > n)
        l.cap = n;
    return l;
}

/* ---- TCP (RFC 9293 §3.1) ---- */

/* Decodes a TCP header and points pkt->payload at the captured payload.
 * Checksums are not verified: loopback captures carry unfinished ones. */
static enum mx_decode_result mx_decode_tcp(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_packet *p = x->pkt;
    struct mx_cursor c;
    size_t hl;

    mx_cursor_init(&c, l.ptr, l.cap);
    p->sport = mx_cursor_be16(&c);
    p->dport = mx_cursor_be16(&c);
    p->seq = mx_cursor_be32(&c);
    p->ack = mx_cursor_be32(&c);
    hl = (size_t)(mx_cursor_u8(&c) >> 4) * 4; /* Data Offset, in 32-bit words */
    p->flags = mx_cursor_u8(&c);
    p->window = mx_cursor_be16(&c);
    mx_cursor_skip(&c, 4); /* Checksum, Urgent Pointer */
    if (c.err)
        return mx_decode_short(x, l, 20, MX_AN_TCP_HEADER_INVALID);
    if (hl < 20 || hl > l.wire)
        return mx_decode_bad(x, MX_AN_TCP_HEADER_INVALID);
    if (!mx_cursor_skip(&c, hl - 20)) /* options */
        return mx_decode_bad(x, MX_AN_SNAPLEN_TRUNCATED);
    p->payload = mx_slice_make(mx_cursor_here(&c), mx_cursor_left(&c));
    p->payload_len = (uint32_t)(l.wire - hl);
    if (p->payload.len < p->payload_len) {
        p->truncated = true;
        mx_decode_note(x, MX_AN_SNAPLEN_TRUNCATED);
    }
    return MX_DECODE_TCP;
}

/* ---- IP fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5) ---- */

/* Keyed with the decoder's random key: hostile fragments cannot aim at one
 * chain. */
static size_t mx_defrag_hash(const struct mx_decoder *d, const struct mx_frag_key *k)
{
    return (size_t)mx_hash(d->hasher, k, sizeof *k);
}

static struct mx_dgram *mx_defrag_find(const struct mx_decoder *d, const struct mx_frag_key *k)
{
    struct mx_dgram *g = d->bucket[mx_defrag_hash(d, k) & (d->nbucket - 1)];

    while (g && memcmp(&g->key, k, sizeof *k) != 0)
        g = g->hnext;
    return g;
}

/* Unlinks a datagram from the table and the arrival list and frees it. */
static void mx_defrag_drop(struct mx_decoder *d, struct mx_dgram *g)
{
    struct mx_dgram **pp = &d->bucket[mx_defrag_hash(d, &g->key) & (d->nbucket - 1)];

    while (*pp != g)
        pp = &(*pp)->hnext;
    *pp = g->hnext;
    if (g->older)
        g->older->newer = g->newer;
    else
        d->oldest = g->newer;
    if (g->newer)
        g->newer->older = g->older;
    else
        d->newest = g->older;
    while (g->pieces) {
        struct mx_frag_piece *p = g->pieces;
        g->pieces = p->next;
        free(p);
    }
    d->held -= g->cost;
    d->ndgram--;
    free(g);
}

/* Frees datagrams whose first fragment is older than the timeout. The list is
 * in arrival order, so only its head needs looking at. */
static void mx_defrag_expire(struct mx_dctx *x)
{
    struct mx_decoder *d = x->d;
    mx_time_t now = x->raw->ts;

    while (d->oldest && now > d->oldest->ts && (uint64_t)now - (uint64_t)d->oldest->ts > (uint64_t)d->lim.timeout) {
        mx_decode_note(x, MX_AN_FRAG_TIMEOUT);
        mx_defrag_drop(d, d->oldest);
    }
}

/* Creates an empty datagram, or returns NULL when over the datagram cap or
 * out of memory. */
static struct mx_dgram *mx_defrag_create(struct mx_dctx *x, const struct mx_frag_key *k)
{
    struct mx_decoder *d = x->d;
    struct mx_dgram *g = NULL;
    size_t b;

    if (d->ndgram >= d->lim.max_datagrams || d->held + sizeof *g > d->lim.max_bytes)
        goto out;
    g = calloc(1, sizeof *g);
    if (!g)
        goto out;
    g->key = *k;
    g->ts = x->raw->ts;
    g->first_frame = x->raw->frame;
    g->cost = sizeof *g;
    b = mx_defrag_hash(d, k) & (d->nbucket - 1);
    g->hnext = d->bucket[b];
    d->bucket[b] = g;
    g->older = d->newest;
    if (d->newest)
        d->newest->newer = g;
    else
        d->oldest = g;
    d->newest = g;
    d->ndgram++;
    d->held += g->cost;
out:
    return g;
}

/* What storing [off, end) into a datagram would do. */
struct mx_frag_scan {
    bool dup;      /* an exact copy of a held piece */
    bool overlap;  /* touches held bytes (and is no exact copy) */
    uint64_t cost; /* bytes charged for the pieces to add */
};

static void mx_defrag_scan(const struct mx_dgram *g, uint32_t off, uint32_t end, const uint8_t *data,
                           struct mx_frag_scan *s)
{
    uint32_t cur = off;

    memset(s, 0, sizeof *s);
    for (const struct mx_frag_piece *p = g->pieces; p && p->off < end; p = p->next) {
        uint32_t pend = p->off + p->len;
        if (pend <= cur)
            continue;
        /* RFC 8200 §4.5: exact duplicates may be dropped without more ado. */
        if (p->off == off && pend == end && memcmp(p->data, data, end - off) == 0) {
            s->dup = true;
            return;
        }
        s->overlap = true;
        if (p->off > cur)
            s->cost += sizeof *p + (p->off - cur);
        cur = pend;
    }
    if (cur < end)
        s->cost += sizeof(struct mx_frag_piece) + (end - cur);
}

/* Stores the parts of [off, end) no piece holds yet; returns false when out of
 * memory (what was stored stays consistent). */
static bool mx_defrag_fill(struct mx_decoder *d, struct mx_dgram *g, uint32_t off, uint32_t end, const uint8_t *data)
{
    struct mx_frag_piece **pp = &g->pieces;
    uint32_t cur = off;

    while (cur < end) {
        struct mx_frag_piece *p = *pp, *n;
        uint32_t stop = end;
        if (p && p->off + p->len <= cur) {
            pp = &p->next;
            continue;
        }
        if (p && p->off <= cur) {
            cur = p->off + p->len;
            pp = &p->next;
            continue;
        }
        if (p && p->off < end)
            stop = p->off;
        n = malloc(sizeof *n + (stop - cur));
        if (!n)
            return false;
        n->off = cur;
        n->len = stop - cur;
        memcpy(n->data, data + (cur - off), n->len);
        n->next = p;
        *pp = n;
        pp = &n->next;
        g->have += n->len;
        g->cost += sizeof *n + n->len;
        d->held += sizeof *n + n->len;
        cur = stop;
    }
    if (end > g->maxend)
        g->maxend = end;
    return true;
}

/* Adds one fragment whose data is `l` at byte `off` of the datagram `k`.
 * `nh` is the IPv6 Fragment header's Next Header. When this completes the
 * datagram, decodes the reassembled payload from d->buf. */
static enum mx_decode_result mx_defrag_add(struct mx_dctx *x, const struct mx_frag_key *k, struct mx_layer l,
                                           uint32_t off, bool more, uint8_t nh)
{
    struct mx_decoder *d = x->d;
    struct mx_frag_scan s;
    struct mx_dgram *g;
    uint32_t end, total;
    bool fresh = false;

    if (l.cap < l.wire)
        return mx_decode_bad(x, MX_AN_SNAPLEN_TRUNCATED);
    /* RFC 791 §3.2, RFC 8200 §4.5: every fragment but the last carries a
     * non-zero multiple of 8 octets; the payload is at most 65535 octets. */
    if (l.wire > MX_IP_MAXDATA || off + l.wire > MX_IP_MAXDATA || (more && (l.wire == 0 || l.wire % 8 != 0)))
        return mx_decode_bad(x, MX_AN_FRAG_INVALID);
    end = off + (uint32_t)l.wire;
    g = mx_defrag_find(d, k);
    if (g && ((g->last_seen && (end > g->total || (!more && end != g->total))) || (!more && g->maxend > end)))
        return mx_decode_bad(x, MX_AN_FRAG_INVALID);
    if (!g) {
        g = mx_defrag_create(x, k);
        fresh = true;
    }
    if (!g)
        return mx_decode_bad(x, MX_AN_FRAG_LIMIT);
    mx_defrag_scan(g, off, end, l.ptr, &s);
    if (s.dup)
        return MX_DECODE_FRAG_HELD;
    if (s.overlap) {
        mx_decode_note(x, MX_AN_FRAG_OVERLAP);
        /* IPv6: RFC 5722 §4 discards the whole datagram. IPv4: keep the bytes
         * seen first and store only the new ones. */
        if (k->family == 6) {
            mx_defrag_drop(d, g);
            return MX_DECODE_INVALID;
        }
    }
    /* Over the byte cap the newcomer is dropped: work in progress is kept and
     * the timeout frees the table. An out-of-memory fill counts the same. */
    if (d->held + s.cost > d->lim.max_bytes || !mx_defrag_fill(d, g, off, end, l.ptr)) {
        if (fresh)
            mx_defrag_drop(d, g);
        return mx_decode_bad(x, MX_AN_FRAG_LIMIT);
    }
    if (off == 0)
        g->nh = nh;
    if (!more) {
        g->last_seen = true;
        g->total = end;
    }
    if (!g->last_seen || g->have != g->total)
        return MX_DECODE_FRAG_HELD;

    /* Pieces are disjoint and lie in [0, total): all bytes are in. */
    for (const struct mx_frag_piece *p = g->pieces; p; p = p->next)
        memcpy(d->buf + p->off, p->data, p->len);
    total = g->total;
    nh = g->nh;
    x->pkt->defragmented = true;
    x->pkt->l3 = mx_slice_make(NULL, 0);
    x->pkt->first_frame = g->first_frame;
    mx_defrag_drop(d, g);
    l.ptr = d->buf;
    l.cap = l.wire = total;
    if (k->family == 6)
        return mx_decode_ipv6_ext(x, l, nh, true);
    if (k->proto != MX_IPPROTO_TCP)
        return MX_DECODE_OTHER;
    return mx_decode_tcp(x, l);
}

/* ---- IPv6 (RFC 8200) ---- */

/* Whether `nh` may lead to TCP: TCP itself or a header the chain walk follows. */
static bool mx_ipv6_may_be_tcp(uint8_t nh)
{
    return nh == MX_IPPROTO_TCP || nh == MX_IPPROTO_HOPOPTS || nh == MX_IPPROTO_ROUTING || nh == MX_IPPROTO_DSTOPTS ||
           nh == MX_IPPROTO_AH;
}

/* Walks the extension header chain starting with `nh` (RFC 8200 §4) up to
 * TCP. `reassembled` is set when `l` is a reassembled fragmentable part, in
 * which a Hop-by-Hop or another Fragment header has no place. */
static enum mx_decode_result mx_decode_ipv6_ext(struct mx_dctx *x, struct mx_layer l, uint8_t nh, bool reassembled)
{
    struct mx_cursor c;

    mx_cursor_init(&c, l.ptr, l.cap);
    for (unsigned n = 0;; n++) {
        size_t start = c.pos, hlen;
        uint8_t next;

        if (nh == MX_IPPROTO_TCP)
            return mx_decode_tcp(x, mx_layer_skip(l, c.pos));
        if (!mx_ipv6_may_be_tcp(nh) && nh != MX_IPPROTO_FRAGMENT) /* ESP (50), No Next Header (59), ICMPv6, ... */
            return reassembled ? MX_DECODE_OTHER : mx_decode_ip_payload(x, mx_layer_skip(l, c.pos), nh);
        if (n >= MX_IPV6_EXT_MAX)
            return mx_decode_bad(x, MX_AN_IPV6_EXT_INVALID);
        /* RFC 8200 §4.1: Hop-by-Hop Options only right after the IPv6 header. */
        if (nh == MX_IPPROTO_HOPOPTS && (n > 0 || reassembled))
            return mx_decode_bad(x, MX_AN_IPV6_EXT_INVALID);
        next = mx_cursor_u8(&c);
        if (nh == MX_IPPROTO_FRAGMENT) {
            /* RFC 8200 §4.5: Next Header, Reserved, Offset|Res|M, Identification. */
            struct mx_frag_key k;
            uint16_t offm;
            mx_cursor_skip(&c, 1);
            offm = mx_cursor_be16(&c);
            memset(&k, 0, sizeof k);
            k.family = 6;
            k.id = mx_cursor_be32(&c);
            if (c.err)
                return mx_decode_short(x, l, start + 8, MX_AN_IPV6_EXT_INVALID);
            if (reassembled)
                return mx_decode_bad(x, MX_AN_FRAG_INVALID);
            /* RFC 6946 §4: an atomic fragment is processed as a whole packet. */
            if ((offm & 0xfff8) == 0 && !(offm & 1)) {
                nh = next;
                continue;
            }
            /* Every fragment names the first header of the fragmentable part;
             * only what may be TCP is worth holding. */
            if (!mx_ipv6_may_be_tcp(next))
                return MX_DECODE_OTHER;
            memcpy(k.src, x->pkt->src.b, 16);
            memcpy(k.dst, x->pkt->dst.b, 16);
            return mx_defrag_add(x, &k, mx_layer_skip(l, c.pos), offm & 0xfff8, offm & 1, next);
        }
        if (nh == MX_IPPROTO_AH)
            hlen = ((size_t)mx_cursor_u8(&c) + 2) * 4; /* RFC 4302 §2.2: 4-octet units, minus 2 */
        else
            hlen = ((size_t)mx_cursor_u8(&c) + 1) * 8; /* RFC 8200 §4.3-4.6: 8-octet units, minus 1 */
        if (c.err || !mx_cursor_skip(&c, hlen - 2))
            return mx_decode_short(x, l, start + hlen, MX_AN_IPV6_EXT_INVALID);
        nh = next;
    }
}

/* The Jumbo Payload length (RFC 2675 §2) of an IPv6 packet whose
 * Hop-by-Hop header follows its fixed header, or 0: the option is type
 * 0xC2, 4 bytes, its value above 65,535. */
static uint32_t mx_jumbo_length(struct mx_layer l)
{
    struct mx_cursor c;
    mx_cursor_init(&c, l.ptr, l.cap);
    mx_cursor_skip(&c, 41); /* the fixed header and the next-header byte */
    size_t end = 40 + ((size_t)mx_cursor_u8(&c) + 1) * 8;
    while (!c.err && c.pos + 2 <= end) {
        uint8_t type = mx_cursor_u8(&c);
        if (type == 0) /* Pad1 */
            continue;
        uint8_t olen = mx_cursor_u8(&c);
        if (type == 0xc2 && olen == 4) {
            uint32_t v = mx_cursor_be32(&c);
            return !c.err && v > UINT16_MAX ? v : 0;
        }
        mx_cursor_skip(&c, olen);
    }
    return 0;
}

/* RFC 8200 §3: the fixed 40-byte header. */
enum mx_decode_result mx_decode_ipv6(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_packet *p = x->pkt;
    struct mx_cursor c;
    uint32_t vtf;
    uint16_t plen;
    uint8_t nh;

    mx_cursor_init(&c, l.ptr, l.cap);
    vtf = mx_cursor_be32(&c); /* Version, Traffic Class, Flow Label */
    plen = mx_cursor_be16(&c);
    nh = mx_cursor_u8(&c);
    mx_cursor_skip(&c, 1); /* Hop Limit */
    mx_cursor_copy(&c, p->src.b, 16);
    mx_cursor_copy(&c, p->dst.b, 16);
    if (c.err)
        return mx_decode_short(x, l, 40, MX_AN_IP_HEADER_INVALID);
    if (vtf >> 28 != 6)
        return mx_decode_bad(x, MX_AN_IP_HEADER_INVALID);
    size_t len = 40 + (size_t)plen;
    if (plen == 0 && l.wire > 40) {
        /* A jumbogram (RFC 2675 §2: a Hop-by-Hop Jumbo Payload option of
         * type 0xC2 gives the length), or Linux BIG TCP's super-frame, which
         * carries no option: the frame gives the length (noted per flow). */
        uint32_t jumbo = nh == MX_IPPROTO_HOPOPTS ? mx_jumbo_length(l) : 0;
        if (nh == MX_IPPROTO_HOPOPTS && !jumbo)
            return mx_decode_bad(x, MX_AN_IPV6_EXT_INVALID); /* length 0 and no Jumbo option */
        len = jumbo ? 40 + (size_t)jumbo : l.wire;
        p->len_from_frame = !jumbo;
    }
    p->src.family = p->dst.family = 6;
    l = mx_layer_fit(x, l, len);
    p->l3 = mx_slice_make(l.ptr, l.cap);
    return mx_decode_ipv6_ext(x, mx_layer_skip(l, 40), nh, false);
}

/* ---- IPv4 (RFC 791 §3.1) ---- */

enum mx_decode_result mx_decode_ipv4(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_packet *p = x->pkt;
    struct mx_cursor c;
    struct mx_frag_key k;
    uint8_t vihl;
    uint16_t tot, frag;
    size_t hl, len;
    uint32_t off;

    memset(&k, 0, sizeof k);
    mx_cursor_init(&c, l.ptr, l.cap);
    vihl = mx_cursor_u8(&c);
    mx_cursor_skip(&c, 1); /* Type of Service */
    tot = mx_cursor_be16(&c);
    k.id = mx_cursor_be16(&c);
    frag = mx_cursor_be16(&c); /* Flags, Fragment Offset */
    mx_cursor_skip(&c, 1);     /* Time to Live */
    k.proto = mx_cursor_u8(&c);
    mx_cursor_skip(&c, 2); /* Header Checksum */
    mx_cursor_copy(&c, p->src.b, 4);
    mx_cursor_copy(&c, p->dst.b, 4);
    if (c.err)
        return mx_decode_short(x, l, 20, MX_AN_IP_HEADER_INVALID);
    hl = (size_t)(vihl & 0x0f) * 4;
    if (tot == 0 && vihl >> 4 == 4 && hl >= 20 && !(frag & 0x3fff) && l.wire > hl) {
        /* Segmentation offload: the capture on the sending host holds the
         * super-frame the card will cut, its Total Length left 0 (Windows,
         * some cards; Linux BIG TCP above 64 KiB). Not a fragment: the
         * frame gives the length, and it is noted once per flow. */
        len = l.wire;
        p->len_from_frame = true;
    } else {
        len = tot;
    }
    if (vihl >> 4 != 4 || hl < 20 || len < hl)
        return mx_decode_bad(x, MX_AN_IP_HEADER_INVALID);
    if (!mx_cursor_skip(&c, hl - 20)) /* options */
        return mx_decode_short(x, l, hl, MX_AN_IP_HEADER_INVALID);
    p->src.family = p->dst.family = 4;
    l = mx_layer_fit(x, l, len);
    p->l3 = mx_slice_make(l.ptr, l.cap);
    l = mx_layer_skip(l, hl);
    off = (uint32_t)(frag & 0x1fff) * 8;
    if (off == 0 && !(frag & 0x2000))
        return k.proto == MX_IPPROTO_TCP ? mx_decode_tcp(x, l) : mx_decode_ip_payload(x, l, k.proto);
    /* A fragment (RFC 791 §3.2). Only TCP is worth holding. */
    if (k.proto != MX_IPPROTO_TCP)
        return MX_DECODE_OTHER;
    k.family = 4;
    memcpy(k.src, p->src.b, 4);
    memcpy(k.dst, p->dst.b, 4);
    return mx_defrag_add(x, &k, l, off, frag & 0x2000, 0);
}

/* ---- Link layer ---- */

/* Follows VLAN tags (IEEE 802.1Q §9.6: TCI, then the inner Ethertype) and
 * dispatches on the final Ethertype. Inner Ethernet frames of tunnels come
 * here too, so their tags are followed alike. */
enum mx_decode_result mx_decode_ethertype(struct mx_dctx *x, struct mx_layer l, uint16_t type)
{
    struct mx_cursor c;
    unsigned depth = 0;

    mx_cursor_init(&c, l.ptr, l.cap);
    while (type == MX_ETH_8021Q || type == MX_ETH_8021AD || type == MX_ETH_QINQ) {
        depth++;
        if (depth > MX_VLAN_MAX)
            return mx_decode_bad(x, MX_AN_VLAN_DEPTH_EXCEEDED);
        mx_cursor_skip(&c, 2);
        type = mx_cursor_be16(&c);
        if (c.err)
            return mx_decode_short(x, l, (size_t)depth * 4, MX_AN_LINK_HEADER_INVALID);
    }
    l = mx_layer_skip(l, c.pos);
    if (type == MX_ETH_IPV4)
        return mx_decode_ipv4(x, l);
    if (type == MX_ETH_IPV6)
        return mx_decode_ipv6(x, l);
    if (type == MX_ETH_MPLS || type == MX_ETH_MPLS_MCAST)
        return mx_decode_mpls(x, l);
    if (type == MX_ETH_PPPOE)
        return mx_decode_pppoe(x, l);
    return MX_DECODE_OTHER;
}

/* Contract in decode_int.h (IEEE 802.3 §3.1.1, Ethernet II framing). */
enum mx_decode_result mx_decode_ether(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint16_t type;

    mx_cursor_init(&c, l.ptr, l.cap);
    mx_cursor_skip(&c, 12); /* destination, source */
    type = mx_cursor_be16(&c);
    if (c.err)
        return mx_decode_short(x, l, 14, MX_AN_LINK_HEADER_INVALID);
    return mx_decode_ethertype(x, mx_layer_skip(l, 14), type);
}

/* BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 is 24
 * (NetBSD, OpenBSD), 28 (FreeBSD) or 30 (macOS). */
static enum mx_decode_result mx_decode_af(struct mx_dctx *x, struct mx_layer l, uint32_t af)
{
    l = mx_layer_skip(l, 4);
    if (af == 2)
        return mx_decode_ipv4(x, l);
    if (af == 24 || af == 28 || af == 30)
        return mx_decode_ipv6(x, l);
    return MX_DECODE_OTHER;
}

static enum mx_decode_result mx_decode_link(struct mx_dctx *x, struct mx_layer l)
{
    struct mx_cursor c;
    uint16_t type;
    uint32_t af;
    size_t hl;

    mx_cursor_init(&c, l.ptr, l.cap);
    switch (x->raw->linktype) {
    case MX_LINKTYPE_ETHERNET:
        return mx_decode_ether(x, l);
    case MX_LINKTYPE_LINUX_SLL: /* type, ARPHRD, addr len, addr[8], protocol */
        hl = 16;
        mx_cursor_skip(&c, 14);
        type = mx_cursor_be16(&c);
        break;
    case MX_LINKTYPE_LINUX_SLL2: /* protocol, reserved, ifindex, ARPHRD, type, addr len, addr[8] */
        hl = 20;
        type = mx_cursor_be16(&c);
        mx_cursor_skip(&c, 18);
        break;
    case MX_LINKTYPE_NULL: /* AF in the writer's byte order: the small reading is right */
        af = mx_cursor_le32(&c);
        if (af > 0xffff)
            af = (af >> 24) | ((af >> 8) & 0xff00) | ((af << 8) & 0xff0000) | (af << 24);
        if (c.err)
            return mx_decode_short(x, l, 4, MX_AN_LINK_HEADER_INVALID);
        return mx_decode_af(x, l, af);
    case MX_LINKTYPE_LOOP:
        af = mx_cursor_be32(&c);
        if (c.err)
            return mx_decode_short(x, l, 4, MX_AN_LINK_HEADER_INVALID);
        return mx_decode_af(x, l, af);
    case MX_LINKTYPE_RAW: /* the version nibble tells */
        if (!mx_cursor_has(&c, 1))
            return mx_decode_short(x, l, 1, MX_AN_IP_HEADER_INVALID);
        if (mx_cursor_u8(&c) >> 4 == 6)
            return mx_decode_ipv6(x, l);
        return mx_decode_ipv4(x, l);
    case MX_LINKTYPE_IPV4:
        return mx_decode_ipv4(x, l);
    case MX_LINKTYPE_IPV6:
        return mx_decode_ipv6(x, l);
    default:
        mx_decode_note(x, MX_AN_UNSUPPORTED_LINKTYPE);
        return MX_DECODE_LINKTYPE;
    }
    if (c.err)
        return mx_decode_short(x, l, hl, MX_AN_LINK_HEADER_INVALID);
    return mx_decode_ethertype(x, mx_layer_skip(l, hl), type);
}

/* ---- Public interface ---- */

/* Contract in decode.h. The caller owns the decoder; zero limits take defaults. */
struct mx_decoder *mx_decoder_new(const struct mx_defrag_limits *limits)
{
    struct mx_decoder *d = calloc(1, sizeof *d);

    if (!d)
        goto out;
    if (limits)
        d->lim = *limits;
    if (!d->lim.max_datagrams)
        d->lim.max_datagrams = MX_DEFRAG_DATAGRAMS;
    if (!d->lim.max_bytes)
        d->lim.max_bytes = MX_DEFRAG_BYTES;
    if (!d->lim.timeout)
        d->lim.timeout = MX_DEFRAG_TIMEOUT;
    d->nbucket = 64;
    while (d->nbucket < d->lim.max_datagrams && d->nbucket < MX_DEFRAG_BUCKETS_MAX)
        d->nbucket *= 2;
    d->bucket = calloc(d->nbucket, sizeof *d->bucket);
    d->hasher = mx_hasher_new();
    if (!d->bucket || !d->hasher) {
        mx_hasher_free(d->hasher);
        free(d->bucket);
        free(d);
        d = NULL;
    }
out:
    return d;
}

/* Frees the decoder and every fragment it holds; NULL is a no-op. */
void mx_decoder_free(struct mx_decoder *d)
{
    if (!d)
        return;
    while (d->oldest)
        mx_defrag_drop(d, d->oldest);
    free(d->bucket);
    mx_hasher_free(d->hasher);
    free(d);
}

/* Contract in decode.h. The raw bytes stay the caller's; *pkt may point into
 * them or into d->buf until the next call. counts and anomalies may be NULL. */
enum mx_decode_result mx_decode(struct mx_decoder *d, const struct mx_raw_packet *raw, struct mx_packet *pkt,
                                struct mx_anomaly_counts *counts, uint64_t *anomalies)
{
    struct mx_dctx x = { d, raw, pkt, counts, anomalies, 0 };
    struct mx_layer l;

    memset(pkt, 0, sizeof *pkt);
    pkt->frame = raw->frame;
    pkt->first_frame = raw->frame;
    pkt->ts = raw->ts;
    if (raw->ts_clamped)
        mx_decode_note(&x, MX_AN_TIMESTAMP_OUT_OF_RANGE);
    mx_defrag_expire(&x);
    l.ptr = raw->data;
    l.cap = raw->data ? raw->caplen : 0;
    l.wire = raw->wirelen > l.cap ? raw->wirelen : l.cap; /* some writers store wirelen < caplen */
    return mx_decode_link(&x, l);
}

/* Fragment bytes plus bookkeeping charged against max_bytes. */
uint64_t mx_decoder_held_bytes(const struct mx_decoder *d)
{
    return d->held;
}
