/* pop3.h - the POP3 dissector (RFC 1939 and its extensions). */
#ifndef MX_POP3_H
#define MX_POP3_H

#include "engine/dissector.h"

extern const struct mx_dissector mx_pop3_dissector;

struct mx_mail_proto;
/* What the shared session layer knows of POP3 (dissectors/mail/session.h). */
extern const struct mx_mail_proto mx_pop3_mail;

#endif
