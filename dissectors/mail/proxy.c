/* proxy.c - the PROXY protocol header, versions 1 and 2 (proxy.h; HAProxy's proxy-protocol.txt). */
#include "dissectors/mail/proxy.h"

#include "dissectors/mail/session.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

const struct mx_anomaly_def mx_proxy_anomalies[MX_PROXY__ANOMALIES] = { MX_PROXY_ANOMALIES(MX_ANOMALY_DEF) };

/* §2.2: the version 2 signature, which no text protocol starts with. */
static const uint8_t sig_v2[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char sig_v1[] = "PROXY "; /* §2.1 */

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Whether data is a prefix of lit (n bytes), or starts with all of it. */
static bool prefix_of(struct mx_slice data, const void *lit, size_t n)
{
    size_t k = data.len < n ? data.len : n;
    return k && !memcmp(data.ptr, lit, k);
}

/* ---- Version 1 (§2.1) ---- */

/* The word at *p (up to SP or the end of the line), which moves past it and
 * its SP. */
static struct mx_slice word(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *s = *p;
    const uint8_t *sp = memchr(s, ' ', (size_t)(end - s));
    const uint8_t *e = sp ? sp : end;
    *p = sp ? sp + 1 : end;
    return mx_slice_make(s, (size_t)(e - s));
}

/* A port: 1 to 5 decimal digits, at most 65535. */
static bool port_of(struct mx_slice w, uint16_t *port)
{
    uint32_t v = 0;
    if (!w.len || w.len > 5)
        return false;
    for (size_t i = 0; i < w.len; i++) {
        if (w.ptr[i] < '0' || w.ptr[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(w.ptr[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* An address of family 4 or 6, in its text form (§2.1: dotted quad, or RFC 4291 §2.2). */
static bool addr_of(struct mx_slice w, uint8_t family, struct mx_addr *a)
{
    char buf[MX_ADDR_STRLEN];
    if (!w.len || w.len >= sizeof(buf))
        return false;
    memcpy(buf, w.ptr, w.len);
    buf[w.len] = '\0';
    a->family = family;
    return inet_pton(family == 4 ? AF_INET : AF_INET6, buf, a->b) == 1;
}

/* The line [p, end) (without its CRLF): "PROXY" SP proto [SP src SP dst SP sport SP dport]. */
static bool parse_v1_line(const uint8_t *p, const uint8_t *end, struct mx_proxy_header *h)
{
    p += sizeof(sig_v1) - 1;
    struct mx_slice proto = word(&p, end);
    h->version = 1;
    h->transport = 1;
    if (proto.len == 7 && !memcmp(proto.ptr, "UNKNOWN", 7)) {
        h->local = true; /* §2.1: the receiver ignores what follows */
        return true;
    }
    if (proto.len != 4 || (memcmp(proto.ptr, "TCP4", 4) && memcmp(proto.ptr, "TCP6", 4))) {
        h->why = "the protocol is neither TCP4, TCP6 nor UNKNOWN";
        return false;
    }
    h->family = proto.ptr[3] == '4' ? 4 : 6;
    struct mx_slice src = word(&p, end), dst = word(&p, end), sport = word(&p, end), dport = word(&p, end);
    if (!addr_of(src, h->family, &h->src) || !addr_of(dst, h->family, &h->dst)) {
        h->why = "an address that is not of the protocol's family";
        return false;
    }
    if (!port_of(sport, &h->src_port) || !port_of(dport, &h->dst_port) || p != end) {
        h->why = "a port that is no number up to 65535, or words after the ports";
        return false;
    }
    return true;
}

static enum mx_proxy_result parse_v1(struct mx_slice d, bool final, struct mx_proxy_header *h, size_t *need)
{
    size_t look = d.len < MX_PROXY_V1_MAX ? d.len : MX_PROXY_V1_MAX;
    const uint8_t *lf = memchr(d.ptr, '\n', look);
    if (!lf) {
        h->len = look;
        if (look == MX_PROXY_V1_MAX)
            return MX_PROXY_TOO_LONG;
        if (final)
            return MX_PROXY_CUT;
        *need = 1;
        return MX_PROXY_MORE;
    }
    h->len = (size_t)(lf - d.ptr) + 1;
    if (lf == d.ptr || lf[-1] != '\r') {
        h->why = "the line ends in a bare LF";
        return MX_PROXY_INVALID;
    }
    return parse_v1_line(d.ptr, lf - 1, h) ? MX_PROXY_OK : MX_PROXY_INVALID;
}

/* ---- Version 2 (§2.2) ---- */

bool mx_proxy_tlv_next(struct mx_slice *area, struct mx_proxy_tlv *t)
{
    if (area->len < 3)
        return false;
    size_t n = be16(area->ptr + 1);
    if (n > area->len - 3)
        return false;
    t->type = area->ptr[0];
    t->value = mx_slice_make(area->ptr + 3, n);
    area->ptr += 3 + n;
    area->len -= 3 + n;
    return true;
}

uint32_t mx_proxy_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1))); /* the reflected Castagnoli polynomial */
    }
    return ~crc;
}

/* Whether the TLVs fill the area exactly, and the SSL TLV's sub-TLVs its
 * value past the client byte and verify word (§2.2.5). */
static bool tlvs_valid(struct mx_slice area)
{
    struct mx_proxy_tlv t;
    while (mx_proxy_tlv_next(&area, &t)) {
        if (t.type == 0x20) {
            if (t.value.len < 5)
                return false;
            struct mx_slice sub = mx_slice_make(t.value.ptr + 5, t.value.len - 5);
            struct mx_proxy_tlv s;
            while (mx_proxy_tlv_next(&sub, &s))
                ;
            if (sub.len)
                return false;
        }
    }
    return area.len == 0;
}

/* §2.2.4: the CRC32C of the whole header, its own value taken as zero. */
static void check_crc(const uint8_t *hdr, struct mx_proxy_header *h)
{
    struct mx_slice area = h->tlvs;
    struct mx_proxy_tlv t;
    while (mx_proxy_tlv_next(&area, &t)) {
        if (t.type != 0x03)
            continue;
        h->has_crc = true;
        if (t.value.len != 4)
            return;
        static const uint8_t zero[4];
        size_t at = (size_t)(t.value.ptr - hdr);
        uint32_t c = mx_proxy_crc32c(0, hdr, at);
        c = mx_proxy_crc32c(c, zero, 4);
        c = mx_proxy_crc32c(c, hdr + at + 4, h->len - at - 4);
        uint32_t want = (uint32_t)t.value.ptr[0] << 24 | (uint32_t)t.value.ptr[1] << 16 |
                        (uint32_t)t.value.ptr[2] << 8 | t.value.ptr[3];
        h->crc_ok = c == want;
        return;
    }
}

static enum mx_proxy_result parse_v2(struct mx_slice d, bool final, struct mx_proxy_header *h, size_t *need)
{
    if (d.len < MX_PROXY_V2_FIXED) {
        h->len = d.len;
        if (final)
            return MX_PROXY_CUT;
        *need = MX_PROXY_V2_FIXED - d.len;
        return MX_PROXY_MORE;
    }
    size_t total = MX_PROXY_V2_FIXED + be16(d.ptr + 14);
    if (d.len < total) {
        h->len = d.len;
        if (final)
            return MX_PROXY_CUT;
        *need = total - d.len;
        return MX_PROXY_MORE;
    }
    h->len = total;
    h->version = 2;
    uint8_t ver = d.ptr[12] >> 4, cmd = d.ptr[12] & 0x0f, fam = d.ptr[13] >> 4, tr = d.ptr[13] & 0x0f;
    if (ver != 2 || cmd > 1) {
        h->why = "the version is not 2, or the command neither LOCAL nor PROXY";
        return MX_PROXY_INVALID;
    }
    if (fam > 3 || tr > 2) {
        h->why = "an unknown address family or transport protocol";
        return MX_PROXY_INVALID;
    }
    h->local = cmd == 0;
    h->transport = tr;
    static const size_t addr_len[4] = { 0, 12, 36, 216 }; /* §2.2: UNSPEC, INET, INET6, UNIX */
    size_t alen = addr_len[fam];
    const uint8_t *a = d.ptr + MX_PROXY_V2_FIXED;
    if (alen > total - MX_PROXY_V2_FIXED) {
        h->why = "the addresses are longer than the header";
        return MX_PROXY_INVALID;
    }
    if (fam == 1 || fam == 2) {
        size_t n = fam == 1 ? 4 : 16;
        h->family = fam == 1 ? 4 : 6;
        h->src.family = h->dst.family = h->family;
        memcpy(h->src.b, a, n);
        memcpy(h->dst.b, a + n, n);
        h->src_port = be16(a + 2 * n);
        h->dst_port = be16(a + 2 * n + 2);
    } else if (fam == 3) {
        h->family = MX_PROXY_UNIX;
        const uint8_t *z = memchr(a, 0, 108);
        h->src_path = mx_slice_make(a, z ? (size_t)(z - a) : 108);
        z = memchr(a + 108, 0, 108);
        h->dst_path = mx_slice_make(a + 108, z ? (size_t)(z - a - 108) : 108);
    }
    /* §2.2: a LOCAL header's addresses, or UNSPEC's, are to be ignored; the
     * TLVs still follow the address block. */
    h->tlvs = mx_slice_make(a + alen, total - MX_PROXY_V2_FIXED - alen);
    if (!tlvs_valid(h->tlvs)) {
        h->why = "a TLV overruns the header";
        return MX_PROXY_INVALID;
    }
    check_crc(d.ptr, h);
    return MX_PROXY_OK;
}

enum mx_proxy_result mx_proxy_parse(struct mx_slice data, bool final, struct mx_proxy_header *h, size_t *need)
{
    memset(h, 0, sizeof(*h));
    *need = 0;
    if (prefix_of(data, sig_v2, sizeof(sig_v2))) {
        if (data.len >= sizeof(sig_v2))
            return parse_v2(data, final, h, need);
    } else if (prefix_of(data, sig_v1, sizeof(sig_v1) - 1)) {
        if (data.len >= sizeof(sig_v1) - 1)
            return parse_v1(data, final, h, need);
    } else {
        return MX_PROXY_NO;
    }
    /* A prefix of a signature: a header, or the protocol's first bytes. */
    if (final)
        return MX_PROXY_NO;
    *need = 1;
    return MX_PROXY_MORE;
}

const char *mx_proxy_tlv_name(uint8_t type, bool sub)
{
    if (sub) { /* §2.2.5: the SSL TLV's sub-TLVs */
        switch (type) {
        case 0x21:
            return "version";
        case 0x22:
            return "cn";
        case 0x23:
            return "cipher";
        case 0x24:
            return "sig_alg";
        case 0x25:
            return "key_alg";
        default:
            break;
        }
    }
    switch (type) {
    case 0x01:
        return "alpn"; /* §2.2.1 */
    case 0x02:
        return "authority"; /* §2.2.2 */
    case 0x03:
        return "crc32c"; /* §2.2.4 */
    case 0x04:
        return "noop"; /* §2.2.3 */
    case 0x05:
        return "unique_id"; /* §2.2.6 */
    case 0x20:
        return "ssl"; /* §2.2.5 */
    case 0x30:
        return "netns"; /* §2.2.7 */
    case 0xEA:
        return "aws"; /* AWS Elastic Load Balancing: the VPC endpoint ID */
    case 0xEE:
        return "azure"; /* Azure Private Link: the private endpoint's LINKID */
    default:
        break;
    }
    if (type >= 0xE0 && type <= 0xEF)
        return "custom"; /* §2.2.8: PP2_TYPE_MIN_CUSTOM .. MAX_CUSTOM */
    if (type == 0xF0)
        return "experiment";
    return "unknown";
}

bool mx_proxy_looks_like_header(struct mx_slice data)
{
    return (data.len >= sizeof(sig_v1) - 1 && !memcmp(data.ptr, sig_v1, sizeof(sig_v1) - 1)) ||
           (data.len >= sizeof(sig_v2) && !memcmp(data.ptr, sig_v2, sizeof(sig_v2)));
}

/* ---- On a mail session (session.h) ---- */

enum { PROXY_START = 0, PROXY_SKIP, PROXY_DONE };

bool mx_mail_proxy_done(const struct mx_mail *m)
{
    return m->proxy.state == PROXY_DONE;
}

static void proxy_anomaly(struct mx_mail *m, enum mx_proxy_anomaly a, uint64_t off, uint64_t len)
{
    mx_ctx_anomaly_def(m->ctx, MX_DIR_C2S, &mx_proxy_anomalies[a], off, len);
}

static const char *family_name(uint8_t f)
{
    return f == 4 ? "inet" : f == 6 ? "inet6" : f == MX_PROXY_UNIX ? "unix" : "unspec";
}

/* "[addr]:port" or "addr:port" into buf. */
static const char *endpoint(const struct mx_addr *a, uint16_t port, char *buf, size_t cap)
{
    char s[MX_ADDR_STRLEN];
    mx_addr_str(a, s, sizeof(s));
    snprintf(buf, cap, a->family == 6 ? "[%s]:%u" : "%s:%u", s, port);
    return buf;
}

#define PROXY_VALUE_SHOWN 256 /* bytes of a TLV's value a record shows; "value_len" gives the rest */

/* A TLV's value as text from the wire, cut at PROXY_VALUE_SHOWN. */
static void tlv_value(struct mx_event *ev, struct mx_slice v)
{
    mx_ev_wire_cut(ev, "value", mx_slice_make(v.ptr, v.len < PROXY_VALUE_SHOWN ? v.len : PROXY_VALUE_SHOWN), v.len);
}

/* A value of no known meaning, in hex (its first 64 bytes) and its length. */
static void tlv_hex(struct mx_event *ev, struct mx_slice v)
{
    char hex[2 * 64 + 1];
    size_t n = v.len < 64 ? v.len : 64;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", v.ptr[i]);
    hex[2 * n] = '\0';
    mx_ev_str(ev, "hex", hex);
    mx_ev_uint(ev, "len", v.len);
}

/* The TLVs of area as an array of objects (§2.2.1 to §2.2.8), at most
 * MX_PROXY_MAX_TLVS in all (*listed counts them, sub-TLVs included). */
static void describe_tlvs(struct mx_event *ev, const struct mx_proxy_header *h, struct mx_slice area, bool sub,
                          unsigned *listed, unsigned *unlisted)
{
    struct mx_proxy_tlv t;
    mx_ev_arr(ev, "tlvs");
    while (mx_proxy_tlv_next(&area, &t)) {
        if (*listed >= MX_PROXY_MAX_TLVS) {
            (*unlisted)++;
            continue;
        }
        (*listed)++;
        mx_ev_obj(ev, NULL);
        mx_ev_uint(ev, "type", t.type);
        mx_ev_str(ev, "name", mx_proxy_tlv_name(t.type, sub));
        if (sub || t.type == 0x01 || t.type == 0x02 || t.type == 0x05 || t.type == 0x30) {
            tlv_value(ev, t.value); /* text: ALPN, SNI, a unique id, a namespace, TLS names */
        } else if (t.type == 0x03) {
            mx_ev_bool(ev, "valid", h->crc_ok);
        } else if (t.type == 0x04) {
            mx_ev_uint(ev, "len", t.value.len);
        } else if (t.type == 0x20) {
            /* §2.2.5: client (PP2_CLIENT_SSL 1, CERT_CONN 2, CERT_SESS 4), verify (0: verified), sub-TLVs. */
            const uint8_t *p = t.value.ptr;
            mx_ev_bool(ev, "client_ssl", p[0] & 1);
            mx_ev_bool(ev, "client_cert_conn", p[0] & 2);
            mx_ev_bool(ev, "client_cert_sess", p[0] & 4);
            mx_ev_uint(ev, "verify", (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]);
            describe_tlvs(ev, h, mx_slice_make(p + 5, t.value.len - 5), true, listed, unlisted);
        } else if (t.type == 0xEA && t.value.len >= 1 && t.value.ptr[0] == 0x01) {
            /* AWS: subtype PP2_SUBTYPE_AWS_VPCE_ID, then the VPC endpoint ID as text. */
            mx_ev_wire(ev, "vpce_id", mx_slice_make(t.value.ptr + 1, t.value.len - 1));
        } else if (t.type == 0xEE && t.value.len == 5 && t.value.ptr[0] == 0x01) {
            /* Azure: subtype PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID, a 32-bit little-endian LINKID. */
            const uint8_t *p = t.value.ptr + 1;
            mx_ev_uint(ev, "link_id", (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
        } else {
            tlv_hex(ev, t.value);
        }
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
}

static const char proxy_explain[] =
    "A PROXY protocol header (HAProxy's proxy-protocol.txt): a proxy or load balancer accepted the client's "
    "connection and opened this one to the server; before the first command it names the original client. "
    "The server must expect it (Postfix smtpd_upstream_proxy_protocol, Dovecot haproxy_trusted_networks).";

/* The "proxy" record of a header read at stream offset off. */
static void proxy_record(struct mx_mail *m, const struct mx_proxy_header *h, uint64_t off)
{
    struct mx_frame_ref a = mx_ctx_frame_at(m->ctx, MX_DIR_C2S, off);
    struct mx_frame_ref b = mx_ctx_frame_at(m->ctx, MX_DIR_C2S, off + h->len - 1);
    mx_mail_seen(m, a.ts);
    struct mx_sink *sink = mx_ctx_sink(m->ctx);
    struct mx_event *ev = mx_ctx_begin(m->ctx, "proxy", a.ts);
    bool named = !h->local && (h->family == 4 || h->family == 6);
    mx_ev_dir(ev, MX_DIR_C2S);
    mx_ev_frames(ev, a.frame, b.frame);
    mx_ev_uint(ev, "proxy_version", h->version);
    mx_ev_str(ev, "command", h->local ? "LOCAL" : "PROXY");
    mx_ev_str(ev, "family", family_name(h->family));
    mx_ev_str(ev, "transport", h->transport == 1 ? "stream" : h->transport == 2 ? "dgram" : "unspec");
    char cs[MX_ADDR_STRLEN], ss[MX_ADDR_STRLEN], ce[MX_ADDR_STRLEN + 8], se[MX_ADDR_STRLEN + 8];
    if (named) {
        /* the header's source and destination (the original client, and the
         * proxy's address it connected to): the record's client and server
         * are those of this flow, from the proxy to the server */
        mx_ev_str(ev, "proxy_source", mx_addr_str(&h->src, cs, sizeof(cs)));
        mx_ev_uint(ev, "proxy_source_port", h->src_port);
        mx_ev_str(ev, "proxy_destination", mx_addr_str(&h->dst, ss, sizeof(ss)));
        mx_ev_uint(ev, "proxy_destination_port", h->dst_port);
    } else if (!h->local && h->family == MX_PROXY_UNIX) {
        mx_ev_wire(ev, "proxy_source_path", h->src_path);
        mx_ev_wire(ev, "proxy_destination_path", h->dst_path);
    }
    unsigned listed = 0, unlisted = 0;
    if (h->tlvs.len) {
        describe_tlvs(ev, h, h->tlvs, false, &listed, &unlisted);
        if (unlisted)
            mx_ev_uint(ev, "tlvs_not_listed", unlisted);
    }
    mx_ev_uint(ev, "len", h->len);
    if (mx_ctx_flow(m->ctx)->explain)
        mx_ev_str(ev, "explain", proxy_explain);
    if (mx_ev_wants_text(ev)) {
        if (named)
            mx_ev_text(
                ev,
                "PROXY v%u header: the original client is %s, connected to %s; this connection comes from the proxy",
                h->version, endpoint(&h->src, h->src_port, ce, sizeof(ce)),
                endpoint(&h->dst, h->dst_port, se, sizeof(se)));
        else if (h->local)
            mx_ev_text(ev, "PROXY v%u header LOCAL: the proxy's own connection (a health check), no client named",
                       h->version);
        else
            mx_ev_text(ev, "PROXY v%u header: the proxy names no client address (%s)", h->version,
                       h->family == MX_PROXY_UNIX ? "a UNIX socket" : "UNKNOWN");
    }
    mx_event_emit(sink, ev);
}

/* Remembers what the header said, for the session record. */
static void proxy_keep(struct mx_mail *m, const struct mx_proxy_header *h)
{
    struct mx_mail_proxy *p = &m->proxy;
    p->seen = true;
    p->local = h->local;
    p->version = h->version;
    p->family = h->local ? 0 : h->family;
    p->client = h->src;
    p->server = h->dst;
    p->client_port = h->src_port;
    p->server_port = h->dst_port;
}

/* Skips a too-long version 1 line to its LF (the server reads nothing of it). */
static struct mx_parse_result proxy_skip(struct mx_mail *m, struct mx_slice data, size_t from, bool final)
{
    struct mx_parse_result r = { MX_PARSE_OK, data.len, 0 };
    const uint8_t *lf =
        data.len > from ? memchr(data.ptr + from, '\n', data.len - from) : NULL; /* an END call may bring none */
    if (lf) {
        r.consumed = (size_t)(lf - data.ptr) + 1;
        m->proxy.state = PROXY_DONE;
    } else if (final) {
        m->proxy.state = PROXY_DONE;
    }
    return r;
}

struct mx_parse_result mx_mail_proxy_take(struct mx_mail *m, struct mx_slice data, unsigned flags)
{
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    bool final = flags & (MX_CHUNK_END | MX_CHUNK_TRUNCATED);
    uint64_t off = mx_ctx_offset(m->ctx, MX_DIR_C2S);
    if (flags & MX_CHUNK_GAP) {
        m->proxy.state = PROXY_DONE; /* lost bytes: what follows is no start */
        return r;
    }
    if (m->proxy.state == PROXY_SKIP)
        return proxy_skip(m, data, 0, final);
    if (off != 0 || !mx_ctx_flow(m->ctx)->handshake) {
        m->proxy.state = PROXY_DONE; /* midstream: the stream's start was not seen */
        return r;
    }
    struct mx_proxy_header h;
    switch (mx_proxy_parse(data, final, &h, &r.needed)) {
    case MX_PROXY_MORE:
        return r;
    case MX_PROXY_NO:
        break;
    case MX_PROXY_OK:
        proxy_record(m, &h, off);
        proxy_keep(m, &h);
        if (h.has_crc && !h.crc_ok)
            proxy_anomaly(m, MX_PROXY_CRC_MISMATCH, off, h.len);
        /* §2: one header only. A second one goes to the protocol as the
         * server reads it: a command line, flagged there (mx_mail_client_line). */
        r.consumed = h.len;
        break;
    case MX_PROXY_INVALID:
        proxy_anomaly(m, MX_PROXY_HEADER_INVALID, off, h.len);
        r.consumed = h.len;
        break;
    case MX_PROXY_CUT:
        proxy_anomaly(m, MX_PROXY_HEADER_CUT, off, h.len);
        r.consumed = h.len;
        break;
    case MX_PROXY_TOO_LONG:
        proxy_anomaly(m, MX_PROXY_HEADER_TOO_LONG, off, h.len);
        m->proxy.state = PROXY_SKIP;
        return proxy_skip(m, data, h.len, final);
    }
    r.needed = 0;
    m->proxy.state = PROXY_DONE;
    return r;
}

void mx_mail_client_line(struct mx_mail *m, struct mx_slice line, uint64_t off, uint64_t len)
{
    if (mx_proxy_looks_like_header(line))
        proxy_anomaly(m, MX_PROXY_HEADER_MISPLACED, off, len);
}

void mx_mail_describe_proxy(const struct mx_mail *m, struct mx_event *ev)
{
    const struct mx_mail_proxy *p = &m->proxy;
    char s[MX_ADDR_STRLEN];
    if (!p->seen)
        return;
    mx_ev_obj(ev, "proxy");
    mx_ev_uint(ev, "version", p->version);
    mx_ev_str(ev, "command", p->local ? "LOCAL" : "PROXY");
    if (p->family == 4 || p->family == 6) {
        mx_ev_str(ev, "source", mx_addr_str(&p->client, s, sizeof(s)));
        mx_ev_uint(ev, "source_port", p->client_port);
        mx_ev_str(ev, "destination", mx_addr_str(&p->server, s, sizeof(s)));
        mx_ev_uint(ev, "destination_port", p->server_port);
    }
    mx_ev_end(ev);
}

bool mx_proxy_client_of(const struct mx_event *e, char *buf, size_t cap)
{
    char a[MX_ADDR_STRLEN];
    struct mx_slice c = mx_ev_get_str(e, "proxy_source");
    if (cap)
        buf[0] = '\0';
    if (!c.len || c.len >= sizeof(a) || !cap)
        return false;
    memcpy(a, c.ptr, c.len);
    a[c.len] = '\0';
    snprintf(buf, cap, memchr(a, ':', c.len) ? "[%s]:%u" : "%s:%u", a,
             (unsigned)mx_ev_get_int(e, "proxy_source_port", 0));
    return true;
}

bool mx_proxy_client_tls(const struct mx_event *e)
{
    const struct mx_ev_field *t = mx_ev_first(e, mx_ev_get(e, "tlvs"));
    for (unsigned i = 0; t && i < MX_PROXY_MAX_TLVS; i++, t = mx_ev_next(e, t)) {
        char path[32];
        snprintf(path, sizeof(path), "tlvs.%u.client_ssl", i);
        if (mx_ev_get_int(e, path, 0))
            return true;
    }
    return false;
}
