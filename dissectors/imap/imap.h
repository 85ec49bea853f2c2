/* imap.h - the IMAP dissector (RFC 3501, RFC 9051 and common extensions). */
#ifndef MX_IMAP_H
#define MX_IMAP_H

#include "engine/dissector.h"

extern const struct mx_dissector mx_imap_dissector;

struct mx_mail_proto;
/* What the shared session layer knows of IMAP (dissectors/mail/session.h). */
extern const struct mx_mail_proto mx_imap_mail;

#endif
