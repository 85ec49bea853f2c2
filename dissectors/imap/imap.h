/* imap.h - the IMAP dissector (RFC 3501, RFC 9051 and common extensions). */
#ifndef MX_IMAP_H
#define MX_IMAP_H

#include "engine/dissector.h"

extern const struct mx_dissector mx_imap_dissector;

#endif
