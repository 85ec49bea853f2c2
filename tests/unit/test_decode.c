/* test_decode.c - Check suite for link/IP/TCP decoding and IP fragment reassembly. */
#include "capture/decode.h"
#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* ---- Packet builder ---- */

struct pb {
    uint8_t b[4096];
    size_t n;
};

static void put8(struct pb *p, unsigned v)
{
    ck_assert_uint_lt(p->n, sizeof p->b);
    p->b[p->n++] = (uint8_t)v;
}

static void put16(struct pb *p, unsigned v)
{
    put8(p, v >> 8);
    put8(p, v);
}

static void put32(struct pb *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p, v & 0xffff);
}

static void putn(struct pb *p, const void *v, size_t n)
{
    ck_assert_uint_le(p->n + n, sizeof p->b);
    memcpy(p->b + p->n, v, n);
    p->n += n;
}

static void putz(struct pb *p, size_t n)
{
    while (n--)
        put8(p, 0);
}

static void set16(struct pb *p, size_t at, unsigned v)
{
    p->b[at] = (uint8_t)(v >> 8);
    p->b[at + 1] = (uint8_t)v;
}

static const uint8_t v4src[4] = { 10, 0, 0, 1 }, v4dst[4] = { 10, 0, 0, 2 };
static const uint8_t v6src[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t v6dst[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };

static void eth(struct pb *p, unsigned type)
{
    static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
    putn(p, macs, sizeof macs);
    put16(p, type);
}

/* IPv4 header with ihl words (options are NOPs); total length is patched by
 * ip4_len(). Returns the header's offset. */
static size_t ip4(struct pb *p, unsigned ihl, unsigned id, unsigned frag, unsigned proto)
{
    size_t at = p->n;
    put8(p, 0x40 | ihl);
    put8(p, 0);
    put16(p, 0);
    put16(p, id);
    put16(p, frag);
    put8(p, 64);
    put8(p, proto);
    put16(p, 0);
    putn(p, v4src, 4);
    putn(p, v4dst, 4);
    for (unsigned i = 5; i < ihl; i++)
        put32(p, 0x01010101);
    return at;
}

static void ip4_len(struct pb *p, size_t at)
{
    set16(p, at + 2, (unsigned)(p->n - at));
}

static size_t ip6(struct pb *p, unsigned nh)
{
    size_t at = p->n;
    put32(p, 0x60000000);
    put16(p, 0);
    put8(p, nh);
    put8(p, 64);
    putn(p, v6src, 16);
    putn(p, v6dst, 16);
    return at;
}

static void ip6_len(struct pb *p, size_t at)
{
    set16(p, at + 4, (unsigned)(p->n - at - 40));
}

/* An IPv6 options/routing-style extension header of (len8 + 1) * 8 bytes. */
static void ext6(struct pb *p, unsigned nh, unsigned len8)
{
    put8(p, nh);
    put8(p, len8);
    putz(p, (len8 + 1) * 8 - 2);
}

/* TCP header with doff words (options are NOPs), ports 1025 -> 25. */
static void tcp(struct pb *p, unsigned doff, unsigned flags)
{
    put16(p, 1025);
    put16(p, 25);
    put32(p, 1000);
    put32(p, 2000);
    put8(p, doff << 4);
    put8(p, flags);
    put16(p, 512);
    put32(p, 0);
    for (unsigned i = 5; i < doff; i++)
        put32(p, 0x01010101);
}

static const char smtp[] = "EHLO client.example\r\n";
#define SMTP_LEN (sizeof smtp - 1)

/* Ethernet / IPv4 / TCP carrying `smtp`. */
static void eth_v4_tcp(struct pb *p)
{
    eth(p, 0x0800);
    size_t ip = ip4(p, 5, 1, 0, 6);
    tcp(p, 5, MX_TCP_PSH | MX_TCP_ACK);
    putn(p, smtp, SMTP_LEN);
    ip4_len(p, ip);
}

static void v6_tcp(struct pb *p)
{
    size_t ip = ip6(p, 6);
    tcp(p, 5, MX_TCP_PSH | MX_TCP_ACK);
    putn(p, smtp, SMTP_LEN);
    ip6_len(p, ip);
}

/* ---- Decoder harness ---- */

static struct mx_decoder *dec;
static struct mx_anomaly_counts cnt;
static uint64_t an;
static struct mx_packet pkt;
static uint8_t *copy; /* exact-size copy of the frame, so ASan sees over-reads */

static void setup(void)
{
    dec = mx_decoder_new(NULL);
    ck_assert_ptr_nonnull(dec);
    memset(&cnt, 0, sizeof cnt);
}

static void teardown(void)
{
    mx_decoder_free(dec);
    dec = NULL;
    free(copy);
    copy = NULL;
}

static void use_limits(uint32_t dgrams, uint64_t bytes, mx_time_t timeout)
{
    struct mx_defrag_limits lim = { dgrams, bytes, timeout };
    mx_decoder_free(dec);
    dec = mx_decoder_new(&lim);
    ck_assert_ptr_nonnull(dec);
}

static enum mx_decode_result run_at(int lt, const uint8_t *b, size_t cap, size_t wire, mx_time_t ts, mx_frame_t frame)
{
    struct mx_raw_packet r = { frame, ts, lt, (uint32_t)cap, (uint32_t)wire, NULL, false };

    free(copy);
    copy = malloc(cap ? cap : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, b, cap);
    r.data = copy;
    an = 0;
    return mx_decode(dec, &r, &pkt, &cnt, &an);
}

static enum mx_decode_result run(int lt, const struct pb *p)
{
    return run_at(lt, p->b, p->n, p->n, 0, 1);
}

#define BIT(a) (UINT64_C(1) << (a))

static void check_smtp_v4(void)
{
    ck_assert_uint_eq(pkt.src.family, 4);
    ck_assert_mem_eq(pkt.src.b, v4src, 4);
    ck_assert_mem_eq(pkt.dst.b, v4dst, 4);
    ck_assert_uint_eq(pkt.sport, 1025);
    ck_assert_uint_eq(pkt.dport, 25);
    ck_assert_uint_eq(pkt.payload.len, SMTP_LEN);
    ck_assert_uint_eq(pkt.payload_len, SMTP_LEN);
    ck_assert_mem_eq(pkt.payload.ptr, smtp, SMTP_LEN);
    ck_assert(!pkt.truncated);
}

static void check_smtp_v6(void)
{
    ck_assert_uint_eq(pkt.src.family, 6);
    ck_assert_mem_eq(pkt.src.b, v6src, 16);
    ck_assert_mem_eq(pkt.dst.b, v6dst, 16);
    ck_assert_uint_eq(pkt.dport, 25);
    ck_assert_uint_eq(pkt.payload.len, SMTP_LEN);
    ck_assert_uint_eq(pkt.payload_len, SMTP_LEN);
    ck_assert_mem_eq(pkt.payload.ptr, smtp, SMTP_LEN);
}

/* ---- Link layers ---- */

START_TEST(test_ethernet_tcp)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, p.n, p.n, 42, 7), MX_DECODE_TCP);
    check_smtp_v4();
    ck_assert_uint_eq(pkt.seq, 1000);
    ck_assert_uint_eq(pkt.ack, 2000);
    ck_assert_uint_eq(pkt.flags, MX_TCP_PSH | MX_TCP_ACK);
    ck_assert_uint_eq(pkt.window, 512);
    ck_assert_uint_eq(pkt.frame, 7);
    ck_assert_uint_eq(pkt.first_frame, 7);
    ck_assert_int_eq(pkt.ts, 42);
    ck_assert(!pkt.defragmented);
    ck_assert_uint_eq(an, 0);
}
END_TEST

/* 6in4 (RFC 4213): IPv6/TCP inside IPv4 protocol 41; IPIP; and a nesting bomb. */
START_TEST(test_ip_in_ip_tunnels)
{
    struct pb p = { .n = 0 };
    eth(&p, 0x0800);
    size_t outer = ip4(&p, 5, 9, 0, 41);
    v6_tcp(&p);
    ip4_len(&p, outer);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    check_smtp_v6();

    struct pb q = { .n = 0 };
    eth(&q, 0x0800);
    size_t o4 = ip4(&q, 5, 9, 0, 4);
    size_t i4 = ip4(&q, 5, 1, 0, 6);
    tcp(&q, 5, MX_TCP_ACK);
    putn(&q, smtp, SMTP_LEN);
    ip4_len(&q, i4);
    ip4_len(&q, o4);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &q), MX_DECODE_TCP);
    check_smtp_v4();

    struct pb r = { .n = 0 };
    size_t at[20];
    for (int i = 0; i < 20; i++)
        at[i] = ip4(&r, 5, 1, 0, 4);
    for (int i = 19; i >= 0; i--)
        ip4_len(&r, at[i]);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &r), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_ENCAP_DEPTH_EXCEEDED));
}
END_TEST

START_TEST(test_ethernet_padding)
{
    struct pb p = { .n = 0 };
    eth(&p, 0x0800);
    size_t ip = ip4(&p, 5, 1, 0, 6);
    tcp(&p, 5, MX_TCP_ACK);
    ip4_len(&p, ip);
    putz(&p, 6); /* 54 bytes padded to the 60-byte minimum */
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    ck_assert_uint_eq(pkt.payload.len, 0);
    ck_assert_uint_eq(pkt.payload_len, 0);
    ck_assert_uint_eq(an, 0);

    /* A two-byte payload, padded, plus a 4-byte FCS. */
    p.n = 0;
    eth(&p, 0x0800);
    ip = ip4(&p, 5, 1, 0, 6);
    tcp(&p, 5, MX_TCP_ACK);
    putn(&p, "ok", 2);
    ip4_len(&p, ip);
    putz(&p, 8);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    ck_assert_uint_eq(pkt.payload.len, 2);
    ck_assert_mem_eq(pkt.payload.ptr, "ok", 2);
    ck_assert_uint_eq(an, 0);
}
END_TEST

START_TEST(test_vlan)
{
    static const unsigned tpids[] = { 0x8100, 0x88a8, 0x9100 };
    struct pb p = { .n = 0 };

    /* One 802.1Q tag. */
    eth(&p, 0x8100);
    put16(&p, 100);
    put16(&p, 0x0800);
    size_t ip = ip4(&p, 5, 1, 0, 6);
    tcp(&p, 5, MX_TCP_ACK);
    putn(&p, smtp, SMTP_LEN);
    ip4_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    check_smtp_v4();

    /* QinQ: 802.1ad outer, 802.1Q inner; and the old 0x9100 outer. */
    for (size_t i = 1; i < 3; i++) {
        p.n = 0;
        eth(&p, tpids[i]);
        put16(&p, 10);
        put16(&p, 0x8100);
        put16(&p, 20);
        put16(&p, 0x86dd);
        v6_tcp(&p);
        ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
        check_smtp_v6();
    }
}
END_TEST

/* n stacked tags then IPv4/TCP. */
static void vlan_stack(struct pb *p, unsigned n)
{
    p->n = 0;
    eth(p, 0x88a8);
    for (unsigned i = 0; i < n; i++) {
        put16(p, i);
        put16(p, i + 1 < n ? 0x8100 : 0x0800);
    }
    size_t ip = ip4(p, 5, 1, 0, 6);
    tcp(p, 5, MX_TCP_ACK);
    ip4_len(p, ip);
}

START_TEST(test_vlan_depth)
{
    struct pb p;
    vlan_stack(&p, 8);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    vlan_stack(&p, 9);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_VLAN_DEPTH_EXCEEDED));
    ck_assert_uint_eq(cnt.n[MX_AN_VLAN_DEPTH_EXCEEDED], 1);
}
END_TEST

START_TEST(test_sll)
{
    struct pb p = { .n = 0 };
    put16(&p, 0);      /* packet type: to us */
    put16(&p, 1);      /* ARPHRD_ETHER */
    put16(&p, 6);      /* address length */
    putz(&p, 8);       /* address */
    put16(&p, 0x0800); /* protocol */
    size_t ip = ip4(&p, 5, 1, 0, 6);
    tcp(&p, 5, MX_TCP_ACK);
    putn(&p, smtp, SMTP_LEN);
    ip4_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_LINUX_SLL, &p), MX_DECODE_TCP);
    check_smtp_v4();
    ck_assert_uint_eq(an, 0);
}
END_TEST

START_TEST(test_sll2)
{
    struct pb p = { .n = 0 };
    put16(&p, 0x86dd); /* protocol */
    put16(&p, 0);      /* reserved */
    put32(&p, 3);      /* ifindex */
    put16(&p, 1);      /* ARPHRD_ETHER */
    put8(&p, 4);       /* packet type: outgoing */
    put8(&p, 6);       /* address length */
    putz(&p, 8);
    v6_tcp(&p);
    ck_assert_int_eq(run(MX_LINKTYPE_LINUX_SLL2, &p), MX_DECODE_TCP);
    check_smtp_v6();
    ck_assert_uint_eq(an, 0);
}
END_TEST

START_TEST(test_raw)
{
    struct pb p4 = { .n = 0 }, p6 = { .n = 0 };
    size_t ip = ip4(&p4, 5, 1, 0, 6);
    tcp(&p4, 5, MX_TCP_ACK);
    putn(&p4, smtp, SMTP_LEN);
    ip4_len(&p4, ip);
    v6_tcp(&p6);

    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p4), MX_DECODE_TCP);
    check_smtp_v4();
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p6), MX_DECODE_TCP);
    check_smtp_v6();
    ck_assert_int_eq(run(MX_LINKTYPE_IPV4, &p4), MX_DECODE_TCP);
    check_smtp_v4();
    ck_assert_int_eq(run(MX_LINKTYPE_IPV6, &p6), MX_DECODE_TCP);
    check_smtp_v6();
    /* The link type promises IPv4 but the packet is IPv6. */
    ck_assert_int_eq(run(MX_LINKTYPE_IPV4, &p6), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_HEADER_INVALID));
    ck_assert_int_eq(run(MX_LINKTYPE_IPV6, &p4), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_HEADER_INVALID));
}
END_TEST

/* A 4-byte loopback header `af` (as bytes) then IPv4 or IPv6 TCP. */
static void loopback(struct pb *p, const uint8_t af[4], int v6)
{
    p->n = 0;
    putn(p, af, 4);
    if (v6) {
        v6_tcp(p);
    } else {
        size_t ip = ip4(p, 5, 1, 0, 6);
        tcp(p, 5, MX_TCP_ACK);
        putn(p, smtp, SMTP_LEN);
        ip4_len(p, ip);
    }
}

START_TEST(test_null_loop)
{
    static const struct {
        int lt;
        uint8_t af[4];
        int v6;
        enum mx_decode_result want;
    } cases[] = {
        { MX_LINKTYPE_NULL, { 2, 0, 0, 0 }, 0, MX_DECODE_TCP }, /* little-endian writer */
        { MX_LINKTYPE_NULL, { 0, 0, 0, 2 }, 0, MX_DECODE_TCP }, /* big-endian writer */
        { MX_LINKTYPE_NULL, { 24, 0, 0, 0 }, 1, MX_DECODE_TCP },
        { MX_LINKTYPE_NULL, { 28, 0, 0, 0 }, 1, MX_DECODE_TCP },
        { MX_LINKTYPE_NULL, { 0, 0, 0, 30 }, 1, MX_DECODE_TCP },
        { MX_LINKTYPE_NULL, { 7, 0, 0, 0 }, 0, MX_DECODE_OTHER },
        { MX_LINKTYPE_LOOP, { 0, 0, 0, 2 }, 0, MX_DECODE_TCP },
        { MX_LINKTYPE_LOOP, { 0, 0, 0, 24 }, 1, MX_DECODE_TCP },
        { MX_LINKTYPE_LOOP, { 2, 0, 0, 0 }, 0, MX_DECODE_OTHER }, /* LOOP is always big-endian */
    };
    struct pb p;

    for (size_t i = 0; i < MX_ARRAY_LEN(cases); i++) {
        loopback(&p, cases[i].af, cases[i].v6);
        ck_assert_int_eq(run(cases[i].lt, &p), cases[i].want);
        if (cases[i].want == MX_DECODE_TCP) {
            if (cases[i].v6)
                check_smtp_v6();
            else
                check_smtp_v4();
        }
        ck_assert_uint_eq(an, 0);
    }
}
END_TEST

START_TEST(test_unsupported_linktype)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    ck_assert_int_eq(run(105, &p), MX_DECODE_LINKTYPE);
    ck_assert_uint_eq(an, BIT(MX_AN_UNSUPPORTED_LINKTYPE));
    ck_assert_uint_eq(cnt.n[MX_AN_UNSUPPORTED_LINKTYPE], 1);
}
END_TEST

START_TEST(test_link_header_short)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, 10, 10, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_LINK_HEADER_INVALID));
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, 10, p.n, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));
}
END_TEST

START_TEST(test_non_ip_and_udp)
{
    struct pb p = { .n = 0 };
    eth(&p, 0x0806); /* ARP */
    putz(&p, 28);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_OTHER);

    p.n = 0;
    eth(&p, 0x0800);
    size_t ip = ip4(&p, 5, 1, 0, 17);
    put16(&p, 53);
    put16(&p, 53);
    put16(&p, 8);
    put16(&p, 0);
    ip4_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_OTHER);
    ck_assert_uint_eq(an, 0);
}
END_TEST

/* ---- IPv4 ---- */

START_TEST(test_ipv4_options)
{
    struct pb p = { .n = 0 };
    eth(&p, 0x0800);
    size_t ip = ip4(&p, 8, 1, 0, 6);
    tcp(&p, 8, MX_TCP_ACK); /* TCP options too */
    putn(&p, smtp, SMTP_LEN);
    ip4_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    check_smtp_v4();
    ck_assert_uint_eq(an, 0);

    p.n = 0;
    eth(&p, 0x0800);
    ip = ip4(&p, 15, 1, 0, 6); /* the largest IHL */
    tcp(&p, 15, MX_TCP_ACK);
    putn(&p, smtp, SMTP_LEN);
    ip4_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    check_smtp_v4();
}
END_TEST

START_TEST(test_ipv4_ihl_invalid)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    p.b[14] = 0x44; /* IHL 4 */
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_HEADER_INVALID));

    /* IHL 15 in a frame that holds only 24 IP bytes, all captured. */
    p.b[14] = 0x4f;
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, 14 + 24, 14 + 24, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an & BIT(MX_AN_IP_HEADER_INVALID), BIT(MX_AN_IP_HEADER_INVALID));

    /* Total length below the header length. */
    p.b[14] = 0x45;
    set16(&p, 14 + 2, 19);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_HEADER_INVALID));
}
END_TEST

START_TEST(test_ip_length_lies)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    set16(&p, 14 + 2, (unsigned)(p.n - 14 + 50));
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_LENGTH_MISMATCH));
    check_smtp_v4(); /* what is there is used */

    p.n = 0;
    v6_tcp(&p);
    set16(&p, 4, (unsigned)(p.n - 40 + 9));
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_TCP);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_LENGTH_MISMATCH));
    check_smtp_v6();
}
END_TEST

START_TEST(test_snaplen_in_payload)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    size_t cap = 14 + 20 + 20 + 5;
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, cap, p.n, 0, 1), MX_DECODE_TCP);
    ck_assert(pkt.truncated);
    ck_assert_uint_eq(pkt.payload.len, 5);
    ck_assert_uint_eq(pkt.payload_len, SMTP_LEN);
    ck_assert_mem_eq(pkt.payload.ptr, smtp, 5);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));
    ck_assert_uint_eq(cnt.n[MX_AN_SNAPLEN_TRUNCATED], 1);
}
END_TEST

START_TEST(test_snaplen_in_headers)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    /* Inside the TCP header. */
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, 14 + 20 + 12, p.n, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));
    /* Inside the IP header. */
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, 14 + 10, p.n, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));

    /* Inside TCP options. */
    p.n = 0;
    eth(&p, 0x0800);
    size_t ip = ip4(&p, 5, 1, 0, 6);
    tcp(&p, 10, MX_TCP_SYN);
    ip4_len(&p, ip);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, 14 + 20 + 30, p.n, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));
    ck_assert_uint_eq(cnt.n[MX_AN_SNAPLEN_TRUNCATED], 3);
}
END_TEST

START_TEST(test_tcp_offset_lies)
{
    struct pb p = { .n = 0 };
    eth_v4_tcp(&p);
    p.b[14 + 20 + 12] = 4 << 4;
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_TCP_HEADER_INVALID));

    /* 60 bytes of header in a 41-byte segment. */
    p.b[14 + 20 + 12] = 15 << 4;
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_TCP_HEADER_INVALID));

    /* A segment shorter than a TCP header. */
    p.n = 0;
    eth(&p, 0x0800);
    size_t ip = ip4(&p, 5, 1, 0, 6);
    putz(&p, 12);
    ip4_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_TCP_HEADER_INVALID));
    ck_assert_uint_eq(cnt.n[MX_AN_TCP_HEADER_INVALID], 3);
}
END_TEST

START_TEST(test_null_counters)
{
    struct pb p = { .n = 0 };
    struct mx_raw_packet r = { 1, 0, 105, 0, 0, NULL, false };
    eth_v4_tcp(&p);
    r.caplen = r.wirelen = (uint32_t)p.n;
    r.data = p.b;
    ck_assert_int_eq(mx_decode(dec, &r, &pkt, NULL, NULL), MX_DECODE_LINKTYPE);
    r.linktype = MX_LINKTYPE_ETHERNET;
    r.caplen = 40;
    ck_assert_int_eq(mx_decode(dec, &r, &pkt, NULL, NULL), MX_DECODE_INVALID);
}
END_TEST

/* ---- IPv6 ---- */

START_TEST(test_ipv6_ext_chain)
{
    struct pb p = { .n = 0 };
    eth(&p, 0x86dd);
    size_t ip = ip6(&p, 0);
    ext6(&p, 60, 0); /* hop-by-hop */
    ext6(&p, 43, 1); /* destination options, 16 bytes */
    put8(&p, 6);     /* routing: type 4 (SRH) with no segments */
    put8(&p, 0);
    put8(&p, 4);
    put8(&p, 0);
    put32(&p, 0);
    tcp(&p, 5, MX_TCP_ACK | MX_TCP_PSH);
    putn(&p, smtp, SMTP_LEN);
    ip6_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    check_smtp_v6();
    ck_assert_uint_eq(an, 0);
}
END_TEST

START_TEST(test_ipv6_ah_esp)
{
    struct pb p = { .n = 0 };
    size_t ip = ip6(&p, 51);
    put8(&p, 6); /* AH: next header, payload length 4 -> 24 bytes */
    put8(&p, 4);
    put16(&p, 0);
    put32(&p, 0x1234); /* SPI */
    put32(&p, 1);      /* sequence */
    putz(&p, 12);      /* ICV */
    tcp(&p, 5, MX_TCP_ACK);
    putn(&p, smtp, SMTP_LEN);
    ip6_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_TCP);
    check_smtp_v6();

    p.n = 0;
    ip = ip6(&p, 50);
    putz(&p, 40);
    ip6_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_OTHER);

    p.n = 0;
    ip = ip6(&p, 60);
    ext6(&p, 59, 0);
    ip6_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_OTHER);
    ck_assert_uint_eq(an, 0);
}
END_TEST

/* IPv6 with n destination options headers before TCP. */
static void v6_dstopts(struct pb *p, unsigned n)
{
    p->n = 0;
    size_t ip = ip6(p, n ? 60 : 6);
    for (unsigned i = 0; i < n; i++)
        ext6(p, i + 1 < n ? 60 : 6, 0);
    tcp(p, 5, MX_TCP_ACK);
    ip6_len(p, ip);
}

/* Segmentation offload (TSO/GSO, BIG TCP): a capture on the sending host
 * holds super-frames whose IP length is 0; the frame gives it, noted as
 * IP_LENGTH_FROM_FRAME on the packet (not as damage). */
START_TEST(test_offload_length_zero)
{
    static struct pb p;
    p.n = 0;
    eth(&p, 0x0800);
    size_t ip = ip4(&p, 5, 1, 0x4000, 6); /* DF, as TSO sends */
    tcp(&p, 5, MX_TCP_PSH | MX_TCP_ACK);
    for (int i = 0; i < 150; i++)
        putn(&p, smtp, SMTP_LEN); /* 3,150 bytes: more than one MTU */
    (void)ip;                     /* Total Length stays 0 */
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    ck_assert_uint_eq(an, 0);
    ck_assert(pkt.len_from_frame);
    ck_assert_uint_eq(pkt.payload_len, 150 * SMTP_LEN);
    ck_assert_uint_eq(pkt.payload.len, 150 * SMTP_LEN);
    ck_assert(!pkt.truncated);

    /* IPv6: payload length 0 without a Hop-by-Hop header (Linux BIG TCP). */
    p.n = 0;
    ip6(&p, 6);
    tcp(&p, 5, MX_TCP_PSH | MX_TCP_ACK);
    for (int i = 0; i < 150; i++)
        putn(&p, smtp, SMTP_LEN);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_TCP);
    ck_assert_uint_eq(an, 0);
    ck_assert(pkt.len_from_frame);
    ck_assert_uint_eq(pkt.payload_len, 150 * SMTP_LEN);

    /* A real length is kept: link padding is trimmed, no note. */
    p.n = 0;
    eth_v4_tcp(&p);
    putz(&p, 6);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    ck_assert(!pkt.len_from_frame);
    ck_assert_uint_eq(pkt.payload_len, SMTP_LEN);

    /* Length 0 on a fragment is no offload: still invalid. */
    p.n = 0;
    eth(&p, 0x0800);
    ip4(&p, 5, 1, 0x2000, 6);
    tcp(&p, 5, MX_TCP_ACK);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_HEADER_INVALID));
}
END_TEST

/* An RFC 2675 jumbogram: payload length 0, a Hop-by-Hop Jumbo Payload
 * option (0xC2) with the length; more than the frame holds here, so the
 * rest is IP_LENGTH_MISMATCH, and no offload note. */
START_TEST(test_ipv6_jumbogram)
{
    static struct pb p;
    p.n = 0;
    ip6(&p, 0);
    put8(&p, 6);    /* next header: TCP */
    put8(&p, 0);    /* 8 bytes */
    put8(&p, 0xc2); /* Jumbo Payload */
    put8(&p, 4);
    put32(&p, 70000); /* > 65,535 */
    tcp(&p, 5, MX_TCP_ACK);
    putn(&p, smtp, SMTP_LEN);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_TCP);
    ck_assert(!pkt.len_from_frame);
    ck_assert_uint_eq(an, BIT(MX_AN_IP_LENGTH_MISMATCH));
    ck_assert_uint_eq(pkt.payload.len, SMTP_LEN);
}
END_TEST

START_TEST(test_ipv6_ext_invalid)
{
    struct pb p = { .n = 0 };
    v6_dstopts(&p, 16);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_TCP);
    v6_dstopts(&p, 17);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IPV6_EXT_INVALID));

    /* Payload length 0 and hop-by-hop, without a Jumbo Payload option. */
    p.n = 0;
    ip6(&p, 0);
    ext6(&p, 6, 0);
    tcp(&p, 5, MX_TCP_ACK);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IPV6_EXT_INVALID));

    /* Hop-by-hop anywhere but first. */
    p.n = 0;
    size_t ip = ip6(&p, 60);
    ext6(&p, 0, 0);
    ext6(&p, 6, 0);
    tcp(&p, 5, MX_TCP_ACK);
    ip6_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IPV6_EXT_INVALID));

    /* An extension header longer than the packet. */
    p.n = 0;
    ip = ip6(&p, 60);
    put8(&p, 6);
    put8(&p, 8);
    putz(&p, 6);
    ip6_len(&p, ip);
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_IPV6_EXT_INVALID));
    /* ... unless the IP length covers it and the snapshot length cut it. */
    set16(&p, 4, 72);
    ck_assert_int_eq(run_at(MX_LINKTYPE_RAW, p.b, p.n, p.n + 64, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));
}
END_TEST

/* ---- Fragments ---- */

/* A TCP segment carrying `n` bytes of a fixed pattern; returns its length. */
static size_t segment(uint8_t *out, size_t n)
{
    struct pb p = { .n = 0 };
    tcp(&p, 5, MX_TCP_ACK | MX_TCP_PSH);
    for (size_t i = 0; i < n; i++)
        put8(&p, 'a' + i % 26);
    memcpy(out, p.b, p.n);
    return p.n;
}

static void frag4(struct pb *p, unsigned id, unsigned off, int mf, unsigned proto, const uint8_t *data, size_t n)
{
    p->n = 0;
    eth(p, 0x0800);
    size_t ip = ip4(p, 5, id, (mf ? 0x2000 : 0) | (off / 8), proto);
    putn(p, data, n);
    ip4_len(p, ip);
}

/* IPv6 fragment, with a hop-by-hop header before the Fragment header. */
static void frag6(struct pb *p, uint32_t id, unsigned off, int m, unsigned nh, const uint8_t *data, size_t n)
{
    p->n = 0;
    eth(p, 0x86dd);
    size_t ip = ip6(p, 0);
    ext6(p, 44, 0);
    put8(p, nh);
    put8(p, 0);
    put16(p, off | (m ? 1 : 0));
    put32(p, id);
    putn(p, data, n);
    ip6_len(p, ip);
}

static enum mx_decode_result send4(unsigned id, unsigned off, int mf, const uint8_t *seg, size_t n, mx_time_t ts,
                                   mx_frame_t frame)
{
    struct pb p;
    frag4(&p, id, off, mf, 6, seg + off, n);
    return run_at(MX_LINKTYPE_ETHERNET, p.b, p.n, p.n, ts, frame);
}

static void check_segment(const uint8_t *seg, size_t n)
{
    ck_assert_uint_eq(pkt.payload.len, n - 20);
    ck_assert_uint_eq(pkt.payload_len, n - 20);
    ck_assert_mem_eq(pkt.payload.ptr, seg + 20, n - 20);
    ck_assert(pkt.defragmented);
}

START_TEST(test_frag4_in_order)
{
    uint8_t seg[100];
    size_t n = segment(seg, 60); /* 80 bytes */

    ck_assert_int_eq(send4(7, 0, 1, seg, 24, 0, 3), MX_DECODE_FRAG_HELD);
    ck_assert_uint_gt(mx_decoder_held_bytes(dec), 24);
    ck_assert_int_eq(send4(7, 24, 1, seg, 24, 1, 4), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(7, 48, 0, seg, 32, 2, 5), MX_DECODE_TCP);
    check_segment(seg, n);
    ck_assert_uint_eq(pkt.frame, 5);
    ck_assert_uint_eq(pkt.first_frame, 3);
    ck_assert_uint_eq(pkt.sport, 1025);
    ck_assert_uint_eq(pkt.src.family, 4);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
    ck_assert_uint_eq(an, 0);
}
END_TEST

START_TEST(test_frag4_out_of_order)
{
    uint8_t seg[100];
    size_t n = segment(seg, 60);

    ck_assert_int_eq(send4(9, 48, 0, seg, 32, 0, 10), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(9, 0, 1, seg, 24, 0, 11), MX_DECODE_FRAG_HELD);
    /* Another datagram interleaved. */
    ck_assert_int_eq(send4(10, 0, 1, seg, 24, 0, 12), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(9, 24, 1, seg, 24, 0, 13), MX_DECODE_TCP);
    check_segment(seg, n);
    ck_assert_uint_eq(pkt.frame, 13);
    ck_assert_uint_eq(pkt.first_frame, 10);
    ck_assert_uint_gt(mx_decoder_held_bytes(dec), 0);
    ck_assert_uint_eq(cnt.n[MX_AN_FRAG_OVERLAP] + cnt.n[MX_AN_FRAG_INVALID], 0);
}
END_TEST

START_TEST(test_frag4_hole)
{
    uint8_t seg[100];
    segment(seg, 60);
    ck_assert_int_eq(send4(1, 0, 1, seg, 24, 0, 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(1, 48, 0, seg, 32, 0, 2), MX_DECODE_FRAG_HELD);
    /* A second, different last fragment. */
    ck_assert_int_eq(send4(1, 40, 0, seg, 8, 0, 3), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_INVALID));
}
END_TEST

START_TEST(test_frag4_overlap)
{
    uint8_t seg[100], bad[100];
    size_t n = segment(seg, 60);
    struct pb p;

    memset(bad, 'X', sizeof bad);
    memcpy(bad + 24, seg + 24, 24);
    ck_assert_int_eq(send4(5, 0, 1, seg, 24, 0, 1), MX_DECODE_FRAG_HELD);
    /* [16, 48): bytes 16..23 differ from the first-seen ones. */
    frag4(&p, 5, 16, 1, 6, bad + 16, 32);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_FRAG_HELD);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_OVERLAP));
    ck_assert_int_eq(send4(5, 48, 0, seg, 32, 0, 3), MX_DECODE_TCP);
    check_segment(seg, n); /* first-seen bytes won */
    ck_assert_uint_eq(cnt.n[MX_AN_FRAG_OVERLAP], 1);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);

    /* A later fragment spanning two held ones and the hole between. */
    ck_assert_int_eq(send4(6, 0, 1, seg, 16, 0, 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(6, 32, 1, seg, 16, 0, 2), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(6, 64, 0, seg, 16, 0, 3), MX_DECODE_FRAG_HELD);
    frag4(&p, 6, 8, 1, 6, bad + 8, 40);      /* [8, 48) */
    memcpy(p.b + 14 + 20 + 8, seg + 16, 16); /* bytes 16..31 fill the hole */
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_FRAG_HELD);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_OVERLAP));
    ck_assert_int_eq(send4(6, 48, 1, seg, 16, 0, 5), MX_DECODE_TCP);
    check_segment(seg, n);
}
END_TEST

START_TEST(test_frag_duplicate)
{
    uint8_t seg[100];
    size_t n = segment(seg, 60);
    ck_assert_int_eq(send4(5, 0, 1, seg, 24, 0, 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(5, 0, 1, seg, 24, 0, 2), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(5, 24, 1, seg, 24, 0, 3), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(5, 48, 0, seg, 32, 0, 4), MX_DECODE_TCP);
    check_segment(seg, n);
    ck_assert_uint_eq(cnt.n[MX_AN_FRAG_OVERLAP], 0);
}
END_TEST

START_TEST(test_frag4_invalid)
{
    uint8_t data[64] = { 0 };
    struct pb p;

    frag4(&p, 1, 65528, 0, 6, data, 16); /* ends past 65535 */
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_INVALID));
    frag4(&p, 1, 0, 1, 6, data, 20); /* MF and not a multiple of 8 */
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_INVALID));
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag4_not_tcp)
{
    uint8_t data[64] = { 0 };
    struct pb p;
    frag4(&p, 1, 0, 1, 17, data, 32);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_OTHER);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag_snaplen)
{
    uint8_t seg[100];
    struct pb p;
    segment(seg, 60);
    frag4(&p, 1, 0, 1, 6, seg, 24);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, p.n - 4, p.n, 0, 1), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_SNAPLEN_TRUNCATED));
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag6)
{
    uint8_t seg[100];
    size_t n = segment(seg, 60);
    struct pb p;

    frag6(&p, 0xdeadbeef, 40, 0, 6, seg + 40, 40);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, p.n, p.n, 0, 20), MX_DECODE_FRAG_HELD);
    frag6(&p, 0xdeadbeef, 0, 1, 6, seg, 40);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, p.b, p.n, p.n, 0, 21), MX_DECODE_TCP);
    check_segment(seg, n);
    ck_assert_uint_eq(pkt.src.family, 6);
    ck_assert_mem_eq(pkt.dst.b, v6dst, 16);
    ck_assert_uint_eq(pkt.frame, 21);
    ck_assert_uint_eq(pkt.first_frame, 20);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
    ck_assert_uint_eq(an, 0);
}
END_TEST

START_TEST(test_frag6_dstopts_in_fragmentable_part)
{
    uint8_t seg[100], whole[200];
    size_t n = segment(seg, 60);
    struct pb p = { .n = 0 }, q;

    ext6(&p, 6, 0); /* destination options, then TCP */
    putn(&p, seg, n);
    memcpy(whole, p.b, p.n);
    frag6(&q, 1, 0, 1, 60, whole, 48);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &q), MX_DECODE_FRAG_HELD);
    frag6(&q, 1, 48, 0, 60, whole + 48, p.n - 48);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &q), MX_DECODE_TCP);
    check_segment(seg, n);
}
END_TEST

START_TEST(test_frag6_nested)
{
    /* The reassembled payload holds another Fragment header. */
    uint8_t inner[64] = { 0 };
    struct pb p = { .n = 0 }, q;

    ext6(&p, 44, 0);
    putn(&p, (const uint8_t[]){ 6, 0, 0, 0, 0, 0, 0, 9 }, 8);
    putn(&p, inner, 32);
    frag6(&q, 4, 0, 1, 60, p.b, 24);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &q), MX_DECODE_FRAG_HELD);
    frag6(&q, 4, 24, 0, 60, p.b + 24, p.n - 24);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &q), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_INVALID));
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag6_overlap_drops)
{
    uint8_t seg[100];
    segment(seg, 60);
    struct pb p;

    frag6(&p, 2, 0, 1, 6, seg, 40);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_FRAG_HELD);
    frag6(&p, 2, 32, 0, 6, seg + 32, 48);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_OVERLAP));
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag6_atomic)
{
    uint8_t seg[100];
    size_t n = segment(seg, 10);
    struct pb p;
    frag6(&p, 3, 0, 0, 6, seg, n);
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, &p), MX_DECODE_TCP);
    ck_assert(!pkt.defragmented);
    ck_assert_uint_eq(pkt.payload.len, 10);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag_timeout)
{
    uint8_t seg[100];
    struct pb other = { .n = 0 };
    segment(seg, 60);
    eth_v4_tcp(&other);

    ck_assert_int_eq(send4(1, 0, 1, seg, 24, 0, 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(2, 0, 1, seg, 24, 10 * MX_NS_PER_SEC, 2), MX_DECODE_FRAG_HELD);
    /* Exactly 30 s later: not yet. */
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, other.b, other.n, other.n, 30 * MX_NS_PER_SEC, 3), MX_DECODE_TCP);
    ck_assert_uint_eq(an, 0);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, other.b, other.n, other.n, 30 * MX_NS_PER_SEC + 1, 4), MX_DECODE_TCP);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_TIMEOUT));
    ck_assert_uint_eq(cnt.n[MX_AN_FRAG_TIMEOUT], 1);
    ck_assert_uint_gt(mx_decoder_held_bytes(dec), 0); /* datagram 2 is younger */
    /* The rest of datagram 1 starts afresh and cannot complete. */
    ck_assert_int_eq(send4(1, 24, 1, seg, 24, 31 * MX_NS_PER_SEC, 5), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(1, 48, 0, seg, 32, 31 * MX_NS_PER_SEC, 6), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(run_at(MX_LINKTYPE_ETHERNET, other.b, other.n, other.n, 100 * MX_NS_PER_SEC, 7), MX_DECODE_TCP);
    ck_assert_uint_eq(cnt.n[MX_AN_FRAG_TIMEOUT], 3);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);

    /* A configured timeout. */
    use_limits(0, 0, MX_NS_PER_SEC);
    ck_assert_int_eq(send4(1, 0, 1, seg, 24, 0, 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(1, 24, 1, seg, 24, 2 * MX_NS_PER_SEC, 2), MX_DECODE_FRAG_HELD);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_TIMEOUT));
}
END_TEST

START_TEST(test_frag_datagram_cap)
{
    uint8_t seg[100];
    size_t n = segment(seg, 60);

    use_limits(2, 0, 0);
    ck_assert_int_eq(send4(1, 0, 1, seg, 24, 0, 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(2, 0, 1, seg, 24, 0, 2), MX_DECODE_FRAG_HELD);
    uint64_t held = mx_decoder_held_bytes(dec);
    ck_assert_int_eq(send4(3, 0, 1, seg, 24, 0, 3), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_LIMIT));
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), held);
    /* Datagrams in progress still complete. */
    ck_assert_int_eq(send4(1, 24, 1, seg, 24, 0, 4), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(1, 48, 0, seg, 32, 0, 5), MX_DECODE_TCP);
    check_segment(seg, n);
    /* ... and free room for a new one. */
    ck_assert_int_eq(send4(3, 0, 1, seg, 24, 0, 6), MX_DECODE_FRAG_HELD);
}
END_TEST

START_TEST(test_frag_byte_cap)
{
    uint8_t seg[1200];
    segment(seg, 1100);

    use_limits(0, 1500, 0);
    ck_assert_int_eq(send4(1, 0, 1, seg, 1000, 0, 1), MX_DECODE_FRAG_HELD);
    uint64_t held = mx_decoder_held_bytes(dec);
    ck_assert_uint_le(held, 1500);
    ck_assert_int_eq(send4(2, 0, 1, seg, 800, 0, 2), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_LIMIT));
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), held);
    ck_assert_int_eq(send4(1, 1000, 0, seg, 120, 0, 4), MX_DECODE_TCP);
    ck_assert_uint_eq(pkt.payload.len, 1100);
    ck_assert_uint_eq(mx_decoder_held_bytes(dec), 0);
}
END_TEST

START_TEST(test_frag_default_cap)
{
    uint8_t seg[100];
    segment(seg, 60);
    for (unsigned id = 0; id < 1024; id++)
        ck_assert_int_eq(send4(id, 0, 1, seg, 8, 0, id + 1), MX_DECODE_FRAG_HELD);
    ck_assert_int_eq(send4(1024, 0, 1, seg, 8, 0, 1025), MX_DECODE_INVALID);
    ck_assert_uint_eq(an, BIT(MX_AN_FRAG_LIMIT));
    /* Lookups still find the right datagram among many. */
    ck_assert_int_eq(send4(512, 8, 0, seg, 72, 0, 1026), MX_DECODE_TCP);
    ck_assert_uint_eq(pkt.first_frame, 513);
}
END_TEST

/* ---- Encapsulations (encap.c) ---- */

static const uint8_t outer_src[4] = { 192, 0, 2, 1 }, outer_dst[4] = { 192, 0, 2, 2 };

/* An outer IPv4 header of protocol `proto` with addresses of its own (the
 * flow must be keyed by the inner ones); its length is patched by ip4_len(). */
static size_t outer4(struct pb *p, unsigned proto)
{
    size_t at = ip4(p, 5, 9, 0, proto);
    memcpy(p->b + at + 12, outer_src, 4);
    memcpy(p->b + at + 16, outer_dst, 4);
    return at;
}

/* IPv4 / TCP carrying `smtp`, without a link header. */
static void v4_tcp(struct pb *p)
{
    size_t ip = ip4(p, 5, 1, 0, 6);
    tcp(p, 5, MX_TCP_PSH | MX_TCP_ACK);
    putn(p, smtp, SMTP_LEN);
    ip4_len(p, ip);
}

/* Ethernet / IPv4 of protocol `proto` / the n bytes b. */
static void over_ip4(struct pb *p, unsigned proto, const uint8_t *b, size_t n)
{
    p->n = 0;
    eth(p, 0x0800);
    size_t o = outer4(p, proto);
    putn(p, b, n);
    ip4_len(p, o);
}

/* A GRE header (RFC 2784, RFC 2890) with the optional fields its flags call for. */
static void gre(struct pb *p, unsigned flags, unsigned proto)
{
    put16(p, flags);
    put16(p, proto);
    if (flags & 0x8000)
        put32(p, 0); /* Checksum, Reserved1 */
    if (flags & 0x2000)
        put32(p, 42); /* Key */
    if (flags & 0x1000)
        put32(p, 7); /* Sequence Number */
}

/* A UDP header to `dport`; its length is patched by udp_len(). */
static size_t udp(struct pb *p, unsigned dport)
{
    size_t at = p->n;
    put16(p, 50000);
    put16(p, dport);
    put16(p, 0);
    put16(p, 0);
    return at;
}

static void udp_len(struct pb *p, size_t at)
{
    set16(p, at + 4, (unsigned)(p->n - at));
}

/* Ethernet / IPv4 / GRE (flags, proto) / then `inner` writes the rest. */
static void over_gre(struct pb *p, unsigned flags, unsigned proto, void (*inner)(struct pb *))
{
    p->n = 0;
    eth(p, 0x0800);
    size_t o = outer4(p, 47);
    gre(p, flags, proto);
    inner(p);
    ip4_len(p, o);
}

/* An inner Ethernet frame with an 802.1Q tag, then IPv4/TCP. */
static void eth_vlan_v4_tcp(struct pb *p)
{
    eth(p, 0x8100);
    put16(p, 100);
    put16(p, 0x0800);
    v4_tcp(p);
}

static void eth_v6_tcp(struct pb *p)
{
    eth(p, 0x86dd);
    v6_tcp(p);
}

/* Decodes p as Ethernet and expects the SMTP segment over IPv4 (v6: IPv6),
 * no anomaly, and the encapsulations listed. */
static void expect_tcp(const struct pb *p, int v6, const uint8_t *encap, size_t nencap)
{
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, p), MX_DECODE_TCP);
    if (v6)
        check_smtp_v6();
    else
        check_smtp_v4();
    ck_assert_uint_eq(an, 0);
    ck_assert_uint_eq(pkt.nencap, nencap);
    if (nencap)
        ck_assert_mem_eq(pkt.encap, encap, nencap);
    ck_assert_ptr_nonnull(pkt.l3.ptr);
    ck_assert_uint_eq(pkt.l3.ptr[0] >> 4, v6 ? 6 : 4);
}

/* Decodes p as Ethernet and expects `r` with exactly the anomaly bits `bits`. */
static void expect(const struct pb *p, enum mx_decode_result r, uint64_t bits)
{
    ck_assert_int_eq(run(MX_LINKTYPE_ETHERNET, p), r);
    ck_assert_uint_eq(an, bits);
}

static const uint8_t E_GRE[] = { MX_ENCAP_GRE }, E_ERSPAN[] = { MX_ENCAP_GRE, MX_ENCAP_ERSPAN },
                     E_VXLAN[] = { MX_ENCAP_VXLAN }, E_GENEVE[] = { MX_ENCAP_GENEVE }, E_GTPU[] = { MX_ENCAP_GTPU },
                     E_MPLS[] = { MX_ENCAP_MPLS }, E_PPPOE[] = { MX_ENCAP_PPPOE };

START_TEST(test_gre)
{
    struct pb p = { .n = 0 };

    over_gre(&p, 0, 0x0800, v4_tcp); /* RFC 2784, no options */
    expect_tcp(&p, 0, E_GRE, 1);
    ck_assert_str_eq(mx_encap_name(MX_ENCAP_GRE), "gre");
    over_gre(&p, 0xb000, 0x0800, v4_tcp); /* C, K, S (RFC 2890) */
    expect_tcp(&p, 0, E_GRE, 1);
    over_gre(&p, 0x2000, 0x86dd, v6_tcp);
    expect_tcp(&p, 1, E_GRE, 1);
    over_gre(&p, 0x1000, 0x6558, eth_vlan_v4_tcp); /* Transparent Ethernet Bridging, a tag inside */
    expect_tcp(&p, 0, E_GRE, 1);

    /* GRE over IPv6. */
    p.n = 0;
    eth(&p, 0x86dd);
    size_t o = ip6(&p, 47);
    gre(&p, 0, 0x0800);
    v4_tcp(&p);
    ip6_len(&p, o);
    expect_tcp(&p, 0, E_GRE, 1);

    over_gre(&p, 0x0001, 0x880b, v4_tcp); /* PPTP's enhanced GRE: not followed, no anomaly */
    expect(&p, MX_DECODE_OTHER, 0);
    over_gre(&p, 0x0002, 0x0800, v4_tcp); /* version 2 */
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GRE_HEADER_INVALID));
    over_gre(&p, 0x4000, 0x0800, v4_tcp); /* RFC 1701 routing */
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GRE_HEADER_INVALID));
    over_gre(&p, 0x0800, 0x0800, v4_tcp); /* strict source route */
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GRE_HEADER_INVALID));
    over_gre(&p, 0x0080, 0x0800, v4_tcp); /* bits 6-12 are ignored (RFC 2784 §2.3) */
    expect_tcp(&p, 0, E_GRE, 1);
    over_gre(&p, 0, 0x0806, v4_tcp); /* ARP: other */
    expect(&p, MX_DECODE_OTHER, 0);

    /* The K and S fields lie beyond the packet. */
    over_ip4(&p, 47, (const uint8_t[]){ 0x30, 0, 0x08, 0, 0, 0, 0, 1 }, 8);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GRE_HEADER_INVALID));
}
END_TEST

static void erspan2_v4(struct pb *p)
{
    put16(p, 0x1000 | 12); /* Ver 1, VLAN 12 */
    put16(p, 0x0007);      /* Session 7 */
    put32(p, 0x123);       /* Index */
    eth_vlan_v4_tcp(p);
}

static unsigned erspan3_last; /* the last 16 bits of the type III header */

static void erspan3_v6(struct pb *p)
{
    put16(p, 0x2000);
    put16(p, 0x0007);
    put32(p, 1000); /* Timestamp */
    put16(p, 0);    /* SGT */
    put16(p, erspan3_last);
    if (erspan3_last & 1) {
        put32(p, (3u << 26) | 5); /* platform ID 3 */
        put32(p, 0);
    }
    eth_v6_tcp(p);
}

START_TEST(test_erspan)
{
    struct pb p = { .n = 0 };

    over_gre(&p, 0, 0x88be, eth_vlan_v4_tcp); /* type I: no S bit, no header */
    expect_tcp(&p, 0, E_ERSPAN, 2);
    over_gre(&p, 0x1000, 0x88be, erspan2_v4); /* type II */
    expect_tcp(&p, 0, E_ERSPAN, 2);
    erspan3_last = 0;
    over_gre(&p, 0x1000, 0x22eb, erspan3_v6); /* type III */
    expect_tcp(&p, 1, E_ERSPAN, 2);
    erspan3_last = 0x0013; /* HW ID 1, Gra 1, O: the platform subheader */
    over_gre(&p, 0x1000, 0x22eb, erspan3_v6);
    expect_tcp(&p, 1, E_ERSPAN, 2);
    erspan3_last = 0x0800; /* Frame Type 2 (IP): not an Ethernet frame */
    over_gre(&p, 0x1000, 0x22eb, erspan3_v6);
    expect(&p, MX_DECODE_OTHER, 0);

    /* Type II with the S bit but a header of version 3. */
    over_gre(&p, 0x1000, 0x88be, erspan2_v4);
    p.b[14 + 20 + 8] = 0x30;
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_ERSPAN_HEADER_INVALID));
    /* Type III's subheader announced, not there. */
    static const uint8_t cut3[] = {
        0x10, 0, 0x22, 0xeb, 0, 0, 0, 7, 0x20, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0
    };
    over_ip4(&p, 47, cut3, sizeof cut3);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_ERSPAN_HEADER_INVALID));
}
END_TEST

/* Ethernet / IPv4 / UDP to dport / then `inner`. */
static void over_udp(struct pb *p, unsigned dport, void (*hdr)(struct pb *), void (*inner)(struct pb *))
{
    p->n = 0;
    eth(p, 0x0800);
    size_t o = outer4(p, 17);
    size_t u = udp(p, dport);
    hdr(p);
    inner(p);
    udp_len(p, u);
    ip4_len(p, o);
}

static uint8_t vxlan_flags = 0x08;

static void vxlan(struct pb *p)
{
    put32(p, (uint32_t)vxlan_flags << 24);
    put32(p, 42u << 8); /* VNI 42 */
}

START_TEST(test_vxlan)
{
    struct pb p = { .n = 0 };

    vxlan_flags = 0x08;
    over_udp(&p, 4789, vxlan, eth_vlan_v4_tcp);
    expect_tcp(&p, 0, E_VXLAN, 1);
    vxlan_flags = 0x88; /* Group Based Policy's G bit as well */
    over_udp(&p, 4789, vxlan, eth_v6_tcp);
    expect_tcp(&p, 1, E_VXLAN, 1);

    /* I clear: no VXLAN, nothing made of it. */
    vxlan_flags = 0x00;
    over_udp(&p, 4789, vxlan, eth_vlan_v4_tcp);
    expect(&p, MX_DECODE_OTHER, BIT(MX_AN_VXLAN_HEADER_INVALID));
    ck_assert_uint_eq(pkt.nencap, 0);
    /* The same bytes to another port: plain UDP. */
    over_udp(&p, 4790, vxlan, eth_vlan_v4_tcp);
    expect(&p, MX_DECODE_OTHER, 0);

    /* The UDP length lies: longer than the packet, shorter than its header. */
    vxlan_flags = 0x08;
    over_udp(&p, 4789, vxlan, eth_vlan_v4_tcp);
    set16(&p, 14 + 20 + 4, (unsigned)(p.n - 14 - 20 + 1));
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_VXLAN_HEADER_INVALID));
    set16(&p, 14 + 20 + 4, 7);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_VXLAN_HEADER_INVALID));
    /* Cut in the VXLAN header (UDP 50000 -> 4789, length 12). */
    over_ip4(&p, 17, (const uint8_t[]){ 0xc3, 0x50, 0x12, 0xb5, 0, 12, 0, 0, 0x08, 0, 0, 0 }, 12);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_VXLAN_HEADER_INVALID));
}
END_TEST

static unsigned geneve_b0, geneve_proto;

/* A Geneve header: b0 (Ver, Opt Len), then as many 4-byte option words as
 * Opt Len says, as one option. */
static void geneve(struct pb *p)
{
    put8(p, geneve_b0);
    put8(p, 0);
    put16(p, geneve_proto);
    put32(p, 42u << 8);
    unsigned words = geneve_b0 & 0x3f;
    if (words) {
        put16(p, 0x0103);
        put8(p, 1);
        put8(p, words - 1);
        putz(p, (words - 1) * 4);
    }
}

START_TEST(test_geneve)
{
    struct pb p = { .n = 0 };

    geneve_b0 = 0, geneve_proto = 0x6558;
    over_udp(&p, 6081, geneve, eth_vlan_v4_tcp);
    expect_tcp(&p, 0, E_GENEVE, 1);
    geneve_b0 = 3; /* one 12-byte option */
    over_udp(&p, 6081, geneve, eth_vlan_v4_tcp);
    expect_tcp(&p, 0, E_GENEVE, 1);
    geneve_proto = 0x0800;
    over_udp(&p, 6081, geneve, v4_tcp);
    expect_tcp(&p, 0, E_GENEVE, 1);
    geneve_proto = 0x86dd;
    over_udp(&p, 6081, geneve, v6_tcp);
    expect_tcp(&p, 1, E_GENEVE, 1);

    geneve_b0 = 0x40; /* version 1 */
    over_udp(&p, 6081, geneve, v6_tcp);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GENEVE_HEADER_INVALID));
    /* An option longer than Opt Len. */
    geneve_b0 = 2, geneve_proto = 0x0800;
    over_udp(&p, 6081, geneve, v4_tcp);
    p.b[14 + 20 + 8 + 8 + 3] = 2;
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GENEVE_HEADER_INVALID));
    /* Opt Len beyond the datagram (UDP 50000 -> 6081, length 16). */
    over_ip4(&p, 17, (const uint8_t[]){ 0xc3, 0x50, 0x17, 0xc1, 0, 16, 0, 0, 0x3f, 0, 0x08, 0, 0, 0, 0, 0 }, 16);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GENEVE_HEADER_INVALID));
}
END_TEST

static unsigned gtp_flags = 0x30, gtp_type = 255, gtp_exts;

/* A GTP-U header; with E, `gtp_exts` extension headers of 4 bytes each.
 * Its Length is patched by gtp_len(). */
static void gtpu(struct pb *p)
{
    put8(p, gtp_flags);
    put8(p, gtp_type);
    put16(p, 0);
    put32(p, 0x1234);
    if (gtp_flags & 7) {
        put16(p, 1);
        put8(p, 0);
        put8(p, gtp_exts ? 0x85 : 0);
        for (unsigned i = 0; i < gtp_exts; i++) {
            put8(p, 1);
            put16(p, 0x0009);
            put8(p, i + 1 < gtp_exts ? 0x85 : 0);
        }
    }
}

static void gtp_len(struct pb *p)
{
    size_t at = 14 + 20 + 8;
    set16(p, at + 2, (unsigned)(p->n - at - 8));
}

START_TEST(test_gtpu)
{
    struct pb p = { .n = 0 };

    gtp_flags = 0x30, gtp_type = 255, gtp_exts = 0;
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect_tcp(&p, 0, E_GTPU, 1);
    gtp_flags = 0x36, gtp_exts = 2; /* E, S: sequence number and two extension headers */
    over_udp(&p, 2152, gtpu, v6_tcp);
    gtp_len(&p);
    expect_tcp(&p, 1, E_GTPU, 1);
    gtp_flags = 0x31, gtp_exts = 0; /* PN alone */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect_tcp(&p, 0, E_GTPU, 1);

    gtp_flags = 0x30, gtp_type = 1; /* Echo Request */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect(&p, MX_DECODE_OTHER, 0);
    gtp_type = 255;
    gtp_flags = 0x50; /* version 2 */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GTP_HEADER_INVALID));
    gtp_flags = 0x20; /* GTP' (PT 0) */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GTP_HEADER_INVALID));
    gtp_flags = 0x30; /* Length past the datagram */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    set16(&p, 14 + 20 + 8 + 2, 1000);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GTP_HEADER_INVALID));
    gtp_flags = 0x34, gtp_exts = 1; /* an extension header of length 0 */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    p.b[14 + 20 + 8 + 12] = 0;
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GTP_HEADER_INVALID));
    gtp_exts = 17; /* more extension headers than followed */
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_GTP_HEADER_INVALID));
    gtp_exts = 16;
    over_udp(&p, 2152, gtpu, v4_tcp);
    gtp_len(&p);
    expect_tcp(&p, 0, E_GTPU, 1);
    gtp_exts = 0;
    /* A T-PDU that is not IP (an Ethernet PDU session): other. */
    gtp_flags = 0x30;
    over_udp(&p, 2152, gtpu, eth_vlan_v4_tcp);
    gtp_len(&p);
    expect(&p, MX_DECODE_OTHER, 0);
}
END_TEST

/* Ethernet 0x8847 with n labels, the last with S. */
static void mpls(struct pb *p, unsigned n)
{
    p->n = 0;
    eth(p, 0x8847);
    for (unsigned i = 0; i < n; i++)
        put32(p, ((1000u + i) << 12) | (i + 1 == n ? 0x100 : 0) | 64);
}

START_TEST(test_mpls)
{
    struct pb p = { .n = 0 };

    mpls(&p, 2);
    v4_tcp(&p);
    expect_tcp(&p, 0, E_MPLS, 1);
    mpls(&p, 8);
    v6_tcp(&p);
    expect_tcp(&p, 1, E_MPLS, 1);
    /* An Ethernet pseudowire with its control word (RFC 4385), a tag inside. */
    mpls(&p, 2);
    put32(&p, 5);
    eth_vlan_v4_tcp(&p);
    expect_tcp(&p, 0, E_MPLS, 1);
    /* Neither IP nor a control word. */
    mpls(&p, 1);
    put32(&p, 0x10000000); /* PW associated channel */
    expect(&p, MX_DECODE_OTHER, 0);

    mpls(&p, 9); /* no bottom within 8 labels */
    v4_tcp(&p);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_MPLS_HEADER_INVALID));
    mpls(&p, 3); /* the bottom never comes */
    p.b[14 + 8 + 2] &= 0xfe;
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_MPLS_HEADER_INVALID));
    mpls(&p, 1); /* a control word cut */
    put16(&p, 0);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_MPLS_HEADER_INVALID));
}
END_TEST

/* Ethernet 0x8864 / PPPoE session / PPP protocol `proto`; its length is patched by pppoe_len(). */
static void pppoe(struct pb *p, unsigned vt, unsigned code, unsigned proto)
{
    p->n = 0;
    eth(p, 0x8864);
    put8(p, vt);
    put8(p, code);
    put16(p, 0x1234);
    put16(p, 0);
    put16(p, proto);
}

static void pppoe_len(struct pb *p)
{
    set16(p, 14 + 4, (unsigned)(p->n - 14 - 6));
}

START_TEST(test_pppoe)
{
    struct pb p = { .n = 0 };

    pppoe(&p, 0x11, 0, 0x0021);
    v4_tcp(&p);
    pppoe_len(&p);
    expect_tcp(&p, 0, E_PPPOE, 1);
    putz(&p, 10); /* link padding after the PPP frame */
    expect_tcp(&p, 0, E_PPPOE, 1);
    pppoe(&p, 0x11, 0, 0x0057);
    v6_tcp(&p);
    pppoe_len(&p);
    expect_tcp(&p, 1, E_PPPOE, 1);
    pppoe(&p, 0x11, 0, 0xc021); /* LCP */
    putz(&p, 4);
    pppoe_len(&p);
    expect(&p, MX_DECODE_OTHER, 0);
    p.n = 0;
    eth(&p, 0x8863); /* discovery */
    putz(&p, 20);
    expect(&p, MX_DECODE_OTHER, 0);

    pppoe(&p, 0x12, 0, 0x0021);
    v4_tcp(&p);
    pppoe_len(&p);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_PPPOE_HEADER_INVALID));
    pppoe(&p, 0x11, 0x09, 0x0021); /* PADI's code in a session frame */
    v4_tcp(&p);
    pppoe_len(&p);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_PPPOE_HEADER_INVALID));
    pppoe(&p, 0x11, 0, 0x0021);
    v4_tcp(&p);
    set16(&p, 14 + 4, 2000); /* longer than the frame */
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_PPPOE_HEADER_INVALID));
    set16(&p, 14 + 4, 1); /* no room for the protocol */
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_PPPOE_HEADER_INVALID));
}
END_TEST

/* GRE in IPv4 `ngre` times over, then IPv4 in IPv4 (IPIP) `nipip` times, then IPv4/TCP. */
static void gre_nest(struct pb *p, unsigned ngre, unsigned nipip)
{
    size_t at[64];
    unsigned n = ngre + nipip;
    ck_assert_uint_le(n, 64);
    p->n = 0;
    eth(p, 0x0800);
    for (unsigned i = 0; i < n; i++) {
        at[i] = outer4(p, i < ngre ? 47 : 4);
        if (i < ngre)
            gre(p, 0, 0x0800);
    }
    v4_tcp(p);
    for (unsigned i = n; i-- > 0;)
        ip4_len(p, at[i]);
}

START_TEST(test_encap_depth)
{
    struct pb p = { .n = 0 };
    uint8_t e8[MX_ENCAP_MAX];

    memset(e8, MX_ENCAP_GRE, sizeof e8);
    gre_nest(&p, MX_ENCAP_MAX, 0);
    expect_tcp(&p, 0, e8, MX_ENCAP_MAX);
    gre_nest(&p, MX_ENCAP_MAX + 1, 0);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_ENCAP_DEPTH_EXCEEDED));
    gre_nest(&p, 30, 0);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_ENCAP_DEPTH_EXCEEDED));
    /* IP-in-IP draws on the same budget, unlisted: 7 GRE and one IPIP; one
     * more IPIP is one too many. */
    gre_nest(&p, 7, 1);
    expect_tcp(&p, 0, e8, 7);
    gre_nest(&p, 7, 2);
    expect(&p, MX_DECODE_INVALID, BIT(MX_AN_ENCAP_DEPTH_EXCEEDED));

    /* A nesting of every kind: VLAN / IPv6 / GRE / IPv4 / UDP / VXLAN /
     * Ethernet / QinQ / PPPoE / IPv4 / UDP / Geneve / MPLS / PW / Ethernet / IPv4. */
    static const uint8_t mix[] = { MX_ENCAP_GRE, MX_ENCAP_VXLAN, MX_ENCAP_PPPOE, MX_ENCAP_GENEVE, MX_ENCAP_MPLS };
    p.n = 0;
    eth(&p, 0x8100);
    put16(&p, 40);
    put16(&p, 0x86dd);
    size_t v6 = ip6(&p, 47);
    gre(&p, 0, 0x0800);
    size_t i1 = outer4(&p, 17);
    size_t u1 = udp(&p, 4789);
    vxlan_flags = 0x08;
    vxlan(&p);
    eth(&p, 0x88a8);
    put16(&p, 1);
    put16(&p, 0x8100);
    put16(&p, 2);
    put16(&p, 0x8864);
    size_t pp = p.n;
    put32(&p, 0x11001234);
    put16(&p, 0);
    put16(&p, 0x0021);
    size_t i2 = outer4(&p, 17);
    size_t u2 = udp(&p, 6081);
    put32(&p, 0x00008847);
    put32(&p, 0);
    put32(&p, (5u << 12) | 0x100 | 64);
    put32(&p, 0); /* control word */
    eth_v4_tcp(&p);
    udp_len(&p, u2);
    ip4_len(&p, i2);
    set16(&p, pp + 4, (unsigned)(p.n - pp - 6));
    udp_len(&p, u1);
    ip4_len(&p, i1);
    ip6_len(&p, v6);
    expect_tcp(&p, 0, mix, sizeof mix);
}
END_TEST

/* ---- Robustness ---- */

/* Decodes every prefix of p, cut by the snapshot length and also as a frame
 * that really is that short; nothing may read out of bounds (ASan). */
static void every_prefix(int lt, const struct pb *p)
{
    for (size_t cap = 0; cap <= p->n; cap++) {
        for (int cut = 0; cut < 2; cut++) {
            enum mx_decode_result r = run_at(lt, p->b, cap, cut ? p->n : cap, 0, 1);
            ck_assert_int_ge(r, MX_DECODE_TCP);
            ck_assert_int_le(r, MX_DECODE_INVALID);
            if (r == MX_DECODE_TCP && !pkt.defragmented) {
                ck_assert(pkt.payload.ptr >= copy);
                ck_assert(pkt.payload.ptr + pkt.payload.len <= copy + cap);
                ck_assert_uint_le(pkt.payload.len, pkt.payload_len);
            }
        }
    }
}

START_TEST(test_every_prefix)
{
    struct pb p = { .n = 0 };
    uint8_t seg[100];
    size_t n = segment(seg, 30);

    eth_v4_tcp(&p);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);

    p.n = 0;
    eth(&p, 0x88a8);
    put16(&p, 1);
    put16(&p, 0x8100);
    put16(&p, 2);
    put16(&p, 0x0800);
    size_t ip = ip4(&p, 9, 1, 0, 6);
    tcp(&p, 12, MX_TCP_SYN);
    putn(&p, smtp, SMTP_LEN);
    ip4_len(&p, ip);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);

    p.n = 0;
    put16(&p, 0x86dd);
    putz(&p, 18);
    ip = ip6(&p, 0);
    ext6(&p, 60, 1);
    ext6(&p, 51, 0);
    put8(&p, 6); /* AH */
    put8(&p, 1);
    putz(&p, 10);
    tcp(&p, 7, MX_TCP_ACK);
    putn(&p, smtp, SMTP_LEN);
    ip6_len(&p, ip);
    every_prefix(MX_LINKTYPE_LINUX_SLL2, &p);

    loopback(&p, (const uint8_t[4]){ 0, 0, 0, 30 }, 1);
    every_prefix(MX_LINKTYPE_NULL, &p);

    /* Fragments: the first half is held, the second completes. */
    frag4(&p, 77, 0, 1, 6, seg, 24);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    frag4(&p, 77, 24, 0, 6, seg + 24, n - 24);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    frag6(&p, 77, 0, 1, 6, seg, 24);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    frag6(&p, 77, 24, 0, 6, seg + 24, n - 24);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
}
END_TEST

/* Every encapsulation cut at every byte. */
START_TEST(test_every_prefix_encap)
{
    struct pb p = { .n = 0 };

    over_gre(&p, 0xb000, 0x6558, eth_vlan_v4_tcp);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    over_gre(&p, 0, 0x88be, eth_vlan_v4_tcp);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    over_gre(&p, 0x1000, 0x88be, erspan2_v4);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    erspan3_last = 1;
    over_gre(&p, 0x1000, 0x22eb, erspan3_v6);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    vxlan_flags = 0x08;
    over_udp(&p, 4789, vxlan, eth_vlan_v4_tcp);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    geneve_b0 = 3, geneve_proto = 0x6558;
    over_udp(&p, 6081, geneve, eth_vlan_v4_tcp);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    gtp_flags = 0x36, gtp_type = 255, gtp_exts = 3;
    over_udp(&p, 2152, gtpu, v6_tcp);
    gtp_len(&p);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    gtp_exts = 0;
    mpls(&p, 3);
    put32(&p, 0);
    eth_vlan_v4_tcp(&p);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    mpls(&p, 2);
    v6_tcp(&p);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    pppoe(&p, 0x11, 0, 0x0057);
    v6_tcp(&p);
    pppoe_len(&p);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
    gre_nest(&p, MX_ENCAP_MAX, 1);
    every_prefix(MX_LINKTYPE_ETHERNET, &p);
}
END_TEST

/* Random bytes after a valid outer header of each encapsulation. */
START_TEST(test_garbage_encap)
{
    uint32_t s = 777;
    struct pb p = { .n = 0 };

    for (int iter = 0; iter < 20000; iter++) {
        size_t o = 0, u = 0, n;
        p.n = 0;
        switch (iter % 7) {
        case 0:
        case 1:
            eth(&p, 0x0800);
            o = outer4(&p, 47);
            put16(&p, iter & 0xb000);
            put16(&p, (const unsigned[]){ 0x0800, 0x86dd, 0x6558, 0x88be, 0x22eb, 0x8847 }[iter % 6]);
            break;
        case 2:
        case 3:
        case 4:
            eth(&p, 0x0800);
            o = outer4(&p, 17);
            u = udp(&p, (const unsigned[]){ 4789, 6081, 2152 }[iter % 3]);
            break;
        case 5:
            eth(&p, 0x8847);
            break;
        default:
            eth(&p, 0x8864);
            break;
        }
        s = s * 1103515245u + 12345u;
        n = (s >> 16) % 200;
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            put8(&p, s >> 16);
        }
        /* Often make the first bytes plausible, to go deeper. */
        if (n > 2 && iter % 3 == 0) {
            size_t h = u ? u + 8 : p.n - n;
            if (iter % 7 == 2 && h < p.n)
                p.b[h] = 0x08;
            if (iter % 7 == 4 && h < p.n)
                p.b[h] = 0x30 | (p.b[h] & 7);
            if (iter % 7 == 6 && h + 1 < p.n)
                p.b[h] = 0x11, p.b[h + 1] = 0;
        }
        if (u)
            udp_len(&p, u);
        if (o)
            ip4_len(&p, o);
        enum mx_decode_result r = run_at(MX_LINKTYPE_ETHERNET, p.b, p.n, p.n + (s & 3), iter, 1);
        ck_assert_int_le(r, MX_DECODE_INVALID);
    }
}
END_TEST

START_TEST(test_garbage)
{
    /* Random bytes through every link type; a fixed seed keeps it repeatable. */
    static const int lts[] = { 0, 1, 101, 108, 113, 228, 229, 276 };
    uint32_t s = 12345;
    uint8_t b[256];

    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        for (size_t i = 0; i < sizeof b; i++) {
            s = s * 1103515245u + 12345u;
            b[i] = (uint8_t)(s >> 16);
        }
        n = b[0] % sizeof b;
        /* Make the random bytes look like headers often enough to go deep. */
        b[1] = (b[1] & 0x0f) | (iter & 1 ? 0x40 : 0x60);
        enum mx_decode_result r = run_at(lts[iter % 8], b + 1, n, n + (b[2] & 3), iter, 1);
        ck_assert_int_le(r, MX_DECODE_INVALID);
    }
}
END_TEST

/* ---- util.c and anomaly.c ---- */

START_TEST(test_addr_str)
{
    struct mx_addr a = { .family = 4, .b = { 192, 0, 2, 1 } };
    char buf[MX_ADDR_STRLEN];

    ck_assert_str_eq(mx_addr_str(&a, buf, sizeof buf), "192.0.2.1");
    a.family = 6;
    memcpy(a.b, v6src, 16);
    ck_assert_str_eq(mx_addr_str(&a, buf, sizeof buf), "2001:db8::1");
    ck_assert_str_eq(mx_addr_str(&a, buf, 4), "?");
    a.family = 0;
    ck_assert_str_eq(mx_addr_str(&a, buf, sizeof buf), "?");
}
END_TEST

START_TEST(test_anomaly_table)
{
    for (size_t i = 0; i < MX_AN__COUNT; i++) {
        ck_assert_ptr_nonnull(mx_core_anomalies[i].name);
        ck_assert_ptr_nonnull(mx_core_anomalies[i].desc);
    }
    ck_assert_str_eq(mx_core_anomalies[MX_AN_FILE_TRUNCATED].name, "FILE_TRUNCATED");
    ck_assert_str_eq(mx_core_anomalies[MX_AN_FRAG_OVERLAP].name, "FRAG_OVERLAP");
    ck_assert_str_eq(mx_core_anomalies[MX_AN_DISSECTOR_BUFFER_LIMIT].name, "DISSECTOR_BUFFER_LIMIT");
    ck_assert_str_eq(mx_core_anomalies[MX_AN_IP_LENGTH_FROM_FRAME].name, "IP_LENGTH_FROM_FRAME");
    ck_assert_str_eq(mx_core_anomalies[MX_AN__COUNT - 1].name, "PPPOE_HEADER_INVALID");
}
END_TEST

static Suite *decode_suite(void)
{
    Suite *s = suite_create("decode");
    TCase *link = tcase_create("link"), *ip = tcase_create("ip"), *frag = tcase_create("frag"),
          *rob = tcase_create("robustness"), *misc = tcase_create("misc");

    tcase_add_checked_fixture(link, setup, teardown);
    tcase_add_test(link, test_ethernet_tcp);
    tcase_add_test(link, test_ethernet_padding);
    tcase_add_test(link, test_ip_in_ip_tunnels);
    tcase_add_test(link, test_vlan);
    tcase_add_test(link, test_vlan_depth);
    tcase_add_test(link, test_sll);
    tcase_add_test(link, test_sll2);
    tcase_add_test(link, test_raw);
    tcase_add_test(link, test_null_loop);
    tcase_add_test(link, test_unsupported_linktype);
    tcase_add_test(link, test_link_header_short);
    tcase_add_test(link, test_non_ip_and_udp);
    tcase_add_test(link, test_gre);
    tcase_add_test(link, test_erspan);
    tcase_add_test(link, test_vxlan);
    tcase_add_test(link, test_geneve);
    tcase_add_test(link, test_gtpu);
    tcase_add_test(link, test_mpls);
    tcase_add_test(link, test_pppoe);
    tcase_add_test(link, test_encap_depth);
    suite_add_tcase(s, link);

    tcase_add_checked_fixture(ip, setup, teardown);
    tcase_add_test(ip, test_ipv4_options);
    tcase_add_test(ip, test_ipv4_ihl_invalid);
    tcase_add_test(ip, test_ip_length_lies);
    tcase_add_test(ip, test_snaplen_in_payload);
    tcase_add_test(ip, test_snaplen_in_headers);
    tcase_add_test(ip, test_tcp_offset_lies);
    tcase_add_test(ip, test_null_counters);
    tcase_add_test(ip, test_ipv6_ext_chain);
    tcase_add_test(ip, test_ipv6_ah_esp);
    tcase_add_test(ip, test_ipv6_ext_invalid);
    tcase_add_test(ip, test_offload_length_zero);
    tcase_add_test(ip, test_ipv6_jumbogram);
    suite_add_tcase(s, ip);

    tcase_add_checked_fixture(frag, setup, teardown);
    tcase_add_test(frag, test_frag4_in_order);
    tcase_add_test(frag, test_frag4_out_of_order);
    tcase_add_test(frag, test_frag4_hole);
    tcase_add_test(frag, test_frag4_overlap);
    tcase_add_test(frag, test_frag_duplicate);
    tcase_add_test(frag, test_frag4_invalid);
    tcase_add_test(frag, test_frag4_not_tcp);
    tcase_add_test(frag, test_frag_snaplen);
    tcase_add_test(frag, test_frag6);
    tcase_add_test(frag, test_frag6_dstopts_in_fragmentable_part);
    tcase_add_test(frag, test_frag6_nested);
    tcase_add_test(frag, test_frag6_overlap_drops);
    tcase_add_test(frag, test_frag6_atomic);
    tcase_add_test(frag, test_frag_timeout);
    tcase_add_test(frag, test_frag_datagram_cap);
    tcase_add_test(frag, test_frag_byte_cap);
    tcase_add_test(frag, test_frag_default_cap);
    suite_add_tcase(s, frag);

    tcase_add_checked_fixture(rob, setup, teardown);
    tcase_set_timeout(rob, 120);
    tcase_add_test(rob, test_every_prefix);
    tcase_add_test(rob, test_garbage);
    tcase_add_test(rob, test_every_prefix_encap);
    tcase_add_test(rob, test_garbage_encap);
    suite_add_tcase(s, rob);

    tcase_add_test(misc, test_addr_str);
    tcase_add_test(misc, test_anomaly_table);
    suite_add_tcase(s, misc);
    return s;
}

MX_CHECK_MAIN(decode_suite)
