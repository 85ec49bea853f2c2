/* smtp.h - the SMTP dissector (RFC 5321 and its extensions). */
#ifndef MX_SMTP_H
#define MX_SMTP_H

#include "engine/dissector.h"

extern const struct mx_dissector mx_smtp_dissector;

#endif
