/* anomaly.c - the core's anomaly table, built from MX_CORE_ANOMALIES in anomaly.h. */
#include "core/anomaly.h"

/* Indexed by enum mx_core_anomaly; the name is the enum name without MX_AN_. */
const struct mx_anomaly_def mx_core_anomalies[MX_AN__COUNT] = {
#define MX_X(n, d) [MX_AN_##n] = { #n, d },
    MX_CORE_ANOMALIES(MX_X)
#undef MX_X
};
