/* failures.h - the --failures view of the failure model (failure.h), for the engineer diagnosing a delivery. */
#ifndef MX_FAILURES_H
#define MX_FAILURES_H

#include "core/mx.h"

#include <stdio.h>

struct mx_sink;
struct mx_event;
/* mxray --failures: a reporter that prints one block per `failure` record
 * (failure.h defines them): what failed, the step, the reply, what its codes
 * mean and the likely cause. */
bool mx_failures_add(struct mx_sink *s, FILE *out, bool color);

#endif
