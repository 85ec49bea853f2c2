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

#define MX_MAX_NAMED_PORTS 64

/* The table a run uses: the protocols and the ports the user named (--port),
 * which are consulted first. Read-only once the engine starts, so worker
 * threads share it. */
struct mx_protocols {
    const struct mx_proto *protos;
    size_t n;
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

/* The default capture filter: TCP on every port of the table, named ones
 * included ("tcp and (port 25 or port 587 ...)"). */
void mx_protocols_filter(const struct mx_protocols *p, char *buf, size_t len);

#endif
