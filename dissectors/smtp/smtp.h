/* smtp.h - the SMTP dissector (RFC 5321 and its extensions). */
#ifndef MX_SMTP_H
#define MX_SMTP_H

#include "engine/dissector.h"

extern const struct mx_dissector mx_smtp_dissector;

struct mx_mail_proto;
/* What the shared session layer knows of SMTP (dissectors/mail/session.h). */
extern const struct mx_mail_proto mx_smtp_mail;

#endif
