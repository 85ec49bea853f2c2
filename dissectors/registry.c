/* registry.c - the mail protocols mxray knows and the ports they use. */
#include "dissectors/registry.h"

#include "dissectors/imap/imap.h"
#include "dissectors/pop3/pop3.h"
#include "dissectors/smtp/smtp.h"
#include "dissectors/tls/tls.h"
#include "dissectors/tunnel/tunnel.h"

#include <ndpi/ndpi_protocol_ids.h>

/* RFC 5321 §4.5.4 / RFC 6409 / RFC 8314 for SMTP; RFC 1939 and RFC 8314 for
 * POP3; RFC 9051 and RFC 8314 for IMAP; RFC 2033 §4 for LMTP (port 24: "any private mail
 * system", never 25). nDPI has no id for LMTP: it calls it SMTP, and the SMTP dissector reads
 * a flow whose client greets with LHLO by LMTP's rules. */
const struct mx_proto mx_registry[] = {
    { .name = "smtp",
      .ports = { { 25, false }, { 587, false }, { 465, true } },
      .n_ports = 3,
      .dissector = &mx_smtp_dissector,
      .ndpi_plain = NDPI_PROTOCOL_MAIL_SMTP,
      .ndpi_tls = NDPI_PROTOCOL_MAIL_SMTPS,
      .tls_dissector = &mx_tls_dissector },
    { .name = "pop3",
      .ports = { { 110, false }, { 995, true } },
      .n_ports = 2,
      .dissector = &mx_pop3_dissector,
      .ndpi_plain = NDPI_PROTOCOL_MAIL_POP,
      .ndpi_tls = NDPI_PROTOCOL_MAIL_POPS,
      .tls_dissector = &mx_tls_dissector },
    { .name = "imap",
      .ports = { { 143, false }, { 993, true } },
      .n_ports = 2,
      .dissector = &mx_imap_dissector,
      .ndpi_plain = NDPI_PROTOCOL_MAIL_IMAP,
      .ndpi_tls = NDPI_PROTOCOL_MAIL_IMAPS,
      .tls_dissector = &mx_tls_dissector },
    { .name = "lmtp",
      .ports = { { 24, false } },
      .n_ports = 1,
      .dissector = &mx_lmtp_dissector,
      .tls_dissector = &mx_tls_dissector },
};
const size_t mx_registry_len = MX_ARRAY_LEN(mx_registry);

/* Tunnels in front of them: SOCKS on 1080 (RFC 1928 §3), HTTP proxies on 3128 (squid), 8080
 * and 8888 (tinyproxy); off these ports, flows nDPI names SOCKS or HTTP CONNECT. */
const struct mx_carrier mx_registry_carriers[] = {
    { .name = "tunnel",
      .ports = { 1080, 3128, 8080, 8888 },
      .n_ports = 4,
      .ndpi = { NDPI_PROTOCOL_SOCKS, NDPI_PROTOCOL_HTTP_CONNECT, NDPI_PROTOCOL_HTTP_PROXY },
      .dissector = &mx_tunnel_dissector },
};

void mx_registry_protocols(struct mx_protocols *p)
{
    mx_protocols_init(p, mx_registry, mx_registry_len);
    p->carriers = mx_registry_carriers;
    p->n_carriers = MX_ARRAY_LEN(mx_registry_carriers);
}
