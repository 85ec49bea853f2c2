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
    ck_assert_int_eq(run(MX_LINKTYPE_RAW, &r), MX_DECODE_OTHER);
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
    ck_assert_str_eq(mx_core_anomalies[MX_AN__COUNT - 1].name, "IP_LENGTH_FROM_FRAME");
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
    suite_add_tcase(s, rob);

    tcase_add_test(misc, test_addr_str);
    tcase_add_test(misc, test_anomaly_table);
    suite_add_tcase(s, misc);
    return s;
}

MX_CHECK_MAIN(decode_suite)
