/* smtp.h - the SMTP dissector (RFC 5321 and its extensions), and LMTP's (RFC 2033), the same code. */
#ifndef MX_SMTP_H
#define MX_SMTP_H

#include "engine/dissector.h"

extern const struct mx_dissector mx_smtp_dissector;
/* LMTP: SMTP's dissector with LHLO and one reply per recipient after the data (RFC 2033 §4). */
extern const struct mx_dissector mx_lmtp_dissector;

struct mx_mail_proto;
/* What the shared session layer knows of SMTP (dissectors/mail/session.h). */
extern const struct mx_mail_proto mx_smtp_mail;
extern const struct mx_mail_proto mx_lmtp_mail;

#endif
