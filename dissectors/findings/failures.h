/* failures.h - the --failures view: what failed, for the engineer diagnosing a delivery. */
#ifndef MX_FAILURES_H
#define MX_FAILURES_H

#include "core/mx.h"

#include <stdio.h>

struct mx_sink;
struct mx_event;
/* mxray --failures: a reporter that prints one block per failed recipient
 * (refused at RCPT, or accepted and then lost with the message), with the
 * step, the reply, what both codes mean and the likely cause. */
bool mx_failures_add(struct mx_sink *s, FILE *out, bool color);
/* Whether --failures shows blocks for the record: an smtp.transaction or
 * lmtp.transaction with a recipient refused or deferred at RCPT or (LMTP)
 * after the data, or that failed as a whole (a reset one aside). */
bool mx_failures_failed(const struct mx_event *e);

#endif
