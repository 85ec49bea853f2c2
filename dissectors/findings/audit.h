/* audit.h - findings about mail servers, derived from the records of every
 * session (SMTP, POP3, IMAP, TLS): TLS posture, authentication in clear,
 * probing and relaying signals, STARTTLS abuse, weak mechanisms. */
#ifndef MX_AUDIT_H
#define MX_AUDIT_H

#include "event/event.h"

#include <stdio.h>

/* Subscribes the auditor to a sink: it reads the records as they are
 * emitted and, at the end of the run, emits one `audit.server` record per
 * server and one `finding` record per finding. With `table` non-NULL it also
 * prints the posture table there when the run finishes (mxray audit).
 * Returns false when out of memory. */
bool mx_audit_add(struct mx_sink *s, FILE *table, bool color);

/* The finding kinds, for tests and docs: the id, the severity and the title
 * of kind i (i < mx_audit_n_kinds()), or NULL. */
size_t mx_audit_n_kinds(void);
const char *mx_audit_kind_id(size_t i);

#endif
