/* proto.h - the protocols the engine dissects, as main hands them over: names, ports, nDPI ids
 * and dissectors. The engine knows no protocol by name; it reads this table. */
#ifndef MX_PROTO_H
#define MX_PROTO_H

#include "engine/dissector.h"

/* A well-known port of a protocol. */
struct mx_port {
    uint16_t port;
    bool tls; /* implicit TLS from the first byte (RFC 8314 §3.3) */
};

/* One protocol. */
struct mx_proto {
    const char *name; /* as in the output: the records' "proto" */
    struct mx_port ports[4];
    size_t n_ports;
    const struct mx_dissector *dissector;     /* for its cleartext ports */
    uint16_t ndpi_plain, ndpi_tls;            /* nDPI's protocol ids, in clear and over TLS */
    const struct mx_dissector *tls_dissector; /* for its implicit-TLS ports, or NULL */
};

/* A carrier: a tunnel (SOCKS, HTTP CONNECT) whose handshake comes before the protocol it
 * carries. Its dissector reads a flow on the carrier's ports (or one nDPI names as the
 * carrier) before the flow is known to be mail: it says what the tunnel carries
 * (mx_ctx_carries), or that it carries no mail (mx_ctx_no_mail), and hands the bytes after
 * the handshake to the mail protocol's dissector (mx_ctx_hand_over). */
struct mx_carrier {
    const char *name; /* what it is, for the documentation */
    uint16_t ports[8];
    size_t n_ports;
    uint16_t ndpi[4]; /* nDPI's ids of the carrier's flows, 0 for none */
    const struct mx_dissector *dissector;
};

#define MX_MAX_NAMED_PORTS 64

/* The table a run uses: the protocols and the ports the user named (--port),
 * which are consulted first. Read-only once the engine starts, so worker
 * threads share it. */
struct mx_protocols {
    const struct mx_proto *protos;
    size_t n;
    const struct mx_carrier *carriers;
    size_t n_carriers;
    struct {
        uint16_t port;
        bool tls;
        const struct mx_proto *proto;
    } named[MX_MAX_NAMED_PORTS];
    size_t n_named;
};

/* A table of the n protocols at `protos` (not copied) and no named port. */
void mx_protocols_init(struct mx_protocols *p, const struct mx_proto *protos, size_t n);

/* Names one more port for a protocol, from "PROTO=PORT" or "PROTO=PORT/tls"
 * (--port). Returns false, with a reason in err, on a bad spec or when the
 * table of named ports is full. */
bool mx_protocols_add_port(struct mx_protocols *p, const char *spec, char *err, size_t errlen);

/* The protocol on `port`, or NULL (p may be NULL: no protocol): the named
 * ports first, then the well-known ones. *tls (may be NULL) is set to whether
 * that port starts in TLS. */
const struct mx_proto *mx_protocols_by_port(const struct mx_protocols *p, uint16_t port, bool *tls);

/* The protocol nDPI calls `id`, or NULL; *tls: the TLS variant (SMTPS, ...). */
const struct mx_proto *mx_protocols_by_ndpi(const struct mx_protocols *p, uint16_t id, bool *tls);

/* The carrier on `port`, or NULL (p may be NULL). A port named with --port is
 * the named protocol's, never a carrier's. */
const struct mx_carrier *mx_protocols_carrier_by_port(const struct mx_protocols *p, uint16_t port);

/* The carrier nDPI calls `id`, or NULL. */
const struct mx_carrier *mx_protocols_carrier_by_ndpi(const struct mx_protocols *p, uint16_t id);

/* The protocol called `name` (n bytes), or NULL. */
const struct mx_proto *mx_protocols_by_name(const struct mx_protocols *p, const char *name, size_t n);

/* The default capture filter: TCP on every port of the table, named ones
 * included ("tcp and (port 25 or port 587 ...)"). */
void mx_protocols_filter(const struct mx_protocols *p, char *buf, size_t len);

#endif
