/* proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a
 * proxy or load balancer sends first on its connection to a mail server, to name the original
 * client: read once, for SMTP, POP3 and IMAP alike, at the start of the client's stream.
 *
 * Caps: a version 1 line is at most 107 bytes (§2.1); a version 2 header at most 16 + 65535
 * (its length field, §2.2), and a record lists at most MX_PROXY_MAX_TLVS of its TLVs. */
#ifndef MX_MAIL_PROXY_H
#define MX_MAIL_PROXY_H

#include "core/anomaly.h"
#include "core/mx.h"

#define MX_PROXY_V1_MAX 107  /* §2.1: the longest version 1 line, its CRLF included */
#define MX_PROXY_V2_FIXED 16 /* §2.2: signature (12), version and command, family, length (2) */
#define MX_PROXY_MAX_TLVS 32 /* TLVs (sub-TLVs of SSL included) a record lists; more are counted */
#define MX_PROXY_UNIX 1      /* family: AF_UNIX (v2 0x3_) */

/* The anomalies of the PROXY header, one table for the three protocols. */
#define MX_PROXY_ANOMALIES(X)                                                                                   \
    X(PROXY_HEADER_INVALID, "a PROXY protocol header that breaks its specification (proxy-protocol.txt §2.1, " \
                            "§2.2): an unknown version, command, family or protocol, a bad address or port, "  \
                            "addresses longer than the header, or TLVs that overrun it")                        \
    X(PROXY_HEADER_TOO_LONG, "a PROXY protocol version 1 line longer than 107 bytes (proxy-protocol.txt §2.1)") \
    X(PROXY_HEADER_CUT, "the client's stream ended, or lost bytes, inside a PROXY protocol header")             \
    X(PROXY_HEADER_MISPLACED, "a PROXY protocol header that is not the first bytes of the client's stream, or " \
                              "a second one (proxy-protocol.txt §2: only one, at the start)")                   \
    X(PROXY_CRC_MISMATCH, "a PROXY protocol version 2 header whose CRC32C TLV does not match its bytes "        \
                          "(proxy-protocol.txt §2.2.4)")

enum mx_proxy_anomaly {
#define MX_PROXY_AN_ENUM(name, desc) MX_##name,
    MX_PROXY_ANOMALIES(MX_PROXY_AN_ENUM)
#undef MX_PROXY_AN_ENUM
        MX_PROXY__ANOMALIES,
};

/* The table, indexed by enum mx_proxy_anomaly (raised with mx_ctx_anomaly_def). */
extern const struct mx_anomaly_def mx_proxy_anomalies[MX_PROXY__ANOMALIES];

enum mx_proxy_result {
    MX_PROXY_NO,       /* the bytes are no PROXY header: they are the protocol's */
    MX_PROXY_MORE,     /* the beginning of one: call again with *need more bytes */
    MX_PROXY_OK,       /* a header of h->len bytes, read into *h */
    MX_PROXY_INVALID,  /* a header of h->len bytes that breaks the spec; h->why says how */
    MX_PROXY_TOO_LONG, /* a version 1 line without its CRLF within 107 bytes */
    MX_PROXY_CUT,      /* `final`, and the header is not whole: h->len is what there is of it */
};

/* One TLV (§2.2.1): its type and value, pointing into the parsed bytes. */
struct mx_proxy_tlv {
    uint8_t type;
    struct mx_slice value;
};

/* A parsed header. Slices point into the bytes given to mx_proxy_parse. */
struct mx_proxy_header {
    uint8_t version;         /* 1 or 2 */
    bool local;              /* v2 LOCAL, v1 UNKNOWN: the proxy's own connection, no client named */
    uint8_t family;          /* 0 unspecified, 4, 6 or MX_PROXY_UNIX */
    uint8_t transport;       /* 0 unspecified, 1 stream (TCP), 2 datagram */
    struct mx_addr src, dst; /* family 4 or 6: the original client and the address it connected to */
    uint16_t src_port, dst_port;
    struct mx_slice src_path, dst_path; /* MX_PROXY_UNIX: the socket paths, up to their NUL */
    struct mx_slice tlvs;               /* v2: the TLV area (mx_proxy_tlv_next) */
    bool has_crc;                       /* v2: a CRC32C TLV came... */
    bool crc_ok;                        /* ...and it matches (§2.2.4) */
    size_t len;                         /* bytes of the header */
    const char *why;                    /* MX_PROXY_INVALID: what is wrong */
};

/* Reads a PROXY header at the start of data (a client's first bytes).
 * `final`: no more bytes will come before a gap or the end. Nothing is
 * copied. Returns what data starts with; MX_PROXY_MORE sets *need (bytes
 * wanted beyond data, 0 when unknown). The header is read whole or not at
 * all, so any split of the bytes gives the same result. */
enum mx_proxy_result mx_proxy_parse(struct mx_slice data, bool final, struct mx_proxy_header *h, size_t *need);

/* The TLV at the start of *area, which moves past it; false at the end, or
 * when the TLV overruns the area (mx_proxy_parse has checked that it does not). */
bool mx_proxy_tlv_next(struct mx_slice *area, struct mx_proxy_tlv *t);

/* The name of a TLV type (§2.2.1 to §2.2.8; 0xEA AWS and 0xEE Azure, custom types of
 * 0xE0-0xEF), or NULL for a type of its own meaning: "custom", "experiment", "future". */
const char *mx_proxy_tlv_name(uint8_t type, bool sub);

/* CRC32C (Castagnoli, RFC 3720 §B.4) of n bytes, continuing from crc (0 to start). */
uint32_t mx_proxy_crc32c(uint32_t crc, const uint8_t *p, size_t n);

/* Whether data (a command line) is a version 1 header, or the start of the
 * version 2 signature: for a header that comes where none may. */
bool mx_proxy_looks_like_header(struct mx_slice data);

struct mx_event;
/* From a "proxy" record: the original client as "addr:port" ("[addr]:port"
 * for IPv6) into buf. False (buf "") when the header named no client. */
bool mx_proxy_client_of(const struct mx_event *e, char *buf, size_t cap);
/* Whether a "proxy" record's SSL TLV says the client reached the proxy over
 * TLS (PP2_CLIENT_SSL, §2.2.5): the cleartext leg behind it is the proxy's. */
bool mx_proxy_client_tls(const struct mx_event *e);

#endif
