/* registry.c - the mail protocols mxray knows and the ports they use. */
#include "registry.h"

#include "smtp.h"

/* RFC 5321 §4.5.4 / RFC 6409 / RFC 8314 for SMTP; RFC 1939 and RFC 8314 for
 * POP3; RFC 9051 and RFC 8314 for IMAP. The dissectors fill in as they land. */
const struct mx_proto mx_protos[] = {
    { "smtp", { { 25, false }, { 587, false }, { 465, true } }, 3, &mx_smtp_dissector },
    { "pop3", { { 110, false }, { 995, true } }, 2, NULL },
    { "imap", { { 143, false }, { 993, true } }, 2, NULL },
};
const size_t mx_n_protos = MX_ARRAY_LEN(mx_protos);

const struct mx_proto *mx_registry_by_port(uint16_t port, bool *tls)
{
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
