/* registry.c - the mail protocols mxray knows and the ports they use. */
#include "registry.h"

#include "imap.h"
#include "pop3.h"
#include "smtp.h"
#include "tls.h"

#include <ndpi/ndpi_protocol_ids.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5321 §4.5.4 / RFC 6409 / RFC 8314 for SMTP; RFC 1939 and RFC 8314 for
 * POP3; RFC 9051 and RFC 8314 for IMAP. The dissectors fill in as they land. */
const struct mx_proto mx_protos[] = {
    { .name = "smtp", .ports = { { 25, false }, { 587, false }, { 465, true } }, .n_ports = 3,
      .dissector = &mx_smtp_dissector, .ndpi_plain = NDPI_PROTOCOL_MAIL_SMTP, .ndpi_tls = NDPI_PROTOCOL_MAIL_SMTPS,
      .tls_dissector = &mx_tls_dissector },
    { .name = "pop3", .ports = { { 110, false }, { 995, true } }, .n_ports = 2, .dissector = &mx_pop3_dissector,
      .ndpi_plain = NDPI_PROTOCOL_MAIL_POP, .ndpi_tls = NDPI_PROTOCOL_MAIL_POPS, .tls_dissector = &mx_tls_dissector },
    { .name = "imap", .ports = { { 143, false }, { 993, true } }, .n_ports = 2, .dissector = &mx_imap_dissector,
      .ndpi_plain = NDPI_PROTOCOL_MAIL_IMAP, .ndpi_tls = NDPI_PROTOCOL_MAIL_IMAPS, .tls_dissector = &mx_tls_dissector },
};
const size_t mx_n_protos = MX_ARRAY_LEN(mx_protos);

/* Ports the user named (--port): consulted before the well-known ones. */
#define MX_MAX_NAMED_PORTS 64
static struct {
    uint16_t port;
    bool tls;
    const struct mx_proto *proto;
} named[MX_MAX_NAMED_PORTS];
static size_t n_named;

bool mx_registry_add_port(const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    const struct mx_proto *p = NULL;
    for (size_t i = 0; eq && i < mx_n_protos; i++)
        if (strlen(mx_protos[i].name) == (size_t)(eq - spec) && !strncmp(spec, mx_protos[i].name, (size_t)(eq - spec)))
            p = &mx_protos[i];
    if (!p) {
        snprintf(err, errlen, "--port wants PROTO=PORT[/tls] with PROTO smtp, pop3 or imap, not \"%s\"", spec);
        return false;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(eq + 1, &end, 10);
    bool tls = !strcmp(end, "/tls");
    if (errno || end == eq + 1 || v == 0 || v > 65535 || (*end && !tls)) {
        snprintf(err, errlen, "--port: \"%s\" is not a port from 1 to 65535", eq + 1);
        return false;
    }
    if (n_named == MX_MAX_NAMED_PORTS) {
        snprintf(err, errlen, "--port: at most %d ports can be named", MX_MAX_NAMED_PORTS);
        return false;
    }
    named[n_named].port = (uint16_t)v;
    named[n_named].tls = tls;
    named[n_named].proto = p;
    n_named++;
    return true;
}

const struct mx_proto *mx_registry_by_port(uint16_t port, bool *tls)
{
    for (size_t i = n_named; i-- > 0;) {
        if (named[i].port == port) {
            if (tls)
                *tls = named[i].tls;
            return named[i].proto;
        }
    }
    for (size_t i = 0; i < mx_n_protos; i++) {
        for (size_t j = 0; j < mx_protos[i].n_ports; j++) {
            if (mx_protos[i].ports[j].port == port) {
                if (tls)
                    *tls = mx_protos[i].ports[j].tls;
                return &mx_protos[i];
            }
        }
    }
    return NULL;
}

void mx_registry_filter(char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "tcp and (");
    const char *sep = "";
    for (size_t i = 0; i < mx_n_protos && n < len; i++)
        for (size_t j = 0; j < mx_protos[i].n_ports && n < len; j++, sep = " or ")
            n += (size_t)snprintf(buf + n, len - n, "%sport %u", sep, mx_protos[i].ports[j].port);
    for (size_t i = 0; i < n_named && n < len; i++, sep = " or ")
        n += (size_t)snprintf(buf + n, len - n, "%sport %u", sep, named[i].port);
    if (n < len)
        snprintf(buf + n, len - n, ")");
}

const struct mx_proto *mx_registry_by_ndpi(uint16_t id, bool *tls)
{
    for (size_t i = 0; id && i < mx_n_protos; i++) {
        if (mx_protos[i].ndpi_plain == id || mx_protos[i].ndpi_tls == id) {
            if (tls)
                *tls = mx_protos[i].ndpi_tls == id;
            return &mx_protos[i];
        }
    }
    return NULL;
}
