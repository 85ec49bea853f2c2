/* registry.h - the table of mail protocols: names, ports, and their dissectors. */
#ifndef MX_REGISTRY_H
#define MX_REGISTRY_H

#include "dissector.h"

/* A well-known port of a protocol. */
struct mx_port {
    uint16_t port;
    bool tls; /* implicit TLS from the first byte (RFC 8314 §3.3) */
};

/* One mail protocol. The port table lives here, in one place: the flow table,
 * the default capture filter and the documentation all read it. */
struct mx_proto {
    const char *name;                     /* "smtp", "pop3", "imap" */
    struct mx_port ports[4];
    size_t n_ports;
    const struct mx_dissector *dissector; /* NULL until the protocol's dissector lands */
    uint16_t ndpi_plain, ndpi_tls;        /* nDPI's protocol ids, in clear and over TLS */
    const struct mx_dissector *tls_dissector; /* for its implicit-TLS ports (RFC 8314 §3.3), or NULL */
};

extern const struct mx_proto mx_protos[];
extern const size_t mx_n_protos;

/* The protocol on `port`, or NULL: the ports named with mx_registry_add_port()
 * first, then the well-known ones. *tls is set to whether that port starts in
 * TLS (tls may be NULL). */
const struct mx_proto *mx_registry_by_port(uint16_t port, bool *tls);

/* The protocol nDPI calls `id`, or NULL; *tls: the TLS variant (SMTPS, ...). */
const struct mx_proto *mx_registry_by_ndpi(uint16_t id, bool *tls);

/* Names one more port for a protocol, from "PROTO=PORT" or "PROTO=PORT/tls"
 * (--port). Returns false, with a reason in err, on a bad spec or when the
 * table of named ports is full. */
bool mx_registry_add_port(const char *spec, char *err, size_t errlen);

/* The default capture filter: TCP on every port of the table, named ones
 * included ("tcp and (port 25 or port 587 ...)"). */
void mx_registry_filter(char *buf, size_t len);

#endif
