/* classify.h - protocol classification of flows with nDPI: which flows are mail, and their risks. */
#ifndef MX_CLASSIFY_H
#define MX_CLASSIFY_H

#include "event/event.h"
#include "core/mx.h"

struct mx_classifier;

/* A flow's classification state and result. */
struct mx_classify_flow {
    void *nf;             /* nDPI's flow state while packets are still wanted */
    uint16_t master, app; /* nDPI protocol ids (NDPI_PROTOCOL_UNKNOWN = 0) */
    uint64_t risk;        /* nDPI risk bitmask */
    uint32_t pkts;
    bool done; /* no more packets wanted */
};

/* Bytes nDPI holds for a flow while it classifies it (for the memory cap). */
size_t mx_classify_flow_bytes(void);

/* The nDPI detection module with every protocol enabled; NULL on failure. */
struct mx_classifier *mx_classifier_new(void);
void mx_classifier_free(struct mx_classifier *c);

/* Feeds one packet (l3: the IP header on) of the flow. Returns true when the
 * classification is settled: a protocol is known and nDPI wants no more, or
 * `max_pkts` packets were seen (then nDPI's guess is taken). Returns false
 * on out-of-memory as well, with done set. */
bool mx_classify_packet(struct mx_classifier *c, struct mx_classify_flow *cf, struct mx_slice l3, mx_time_t ts,
                        uint32_t max_pkts);

/* Settles a flow that ends before its classification did, and frees nDPI's state. */
void mx_classify_finish(struct mx_classifier *c, struct mx_classify_flow *cf);

/* nDPI's name of the flow's protocol so far ("IMAPS", "TLS.ntop"), written
 * NUL-terminated into buf (cap bytes); empty before nDPI saw a packet. */
void mx_classify_name(struct mx_classifier *c, const struct mx_classify_flow *cf, char *buf, size_t cap);

/* Adds "ndpi": {"protocol", "risks": [...]} to an open event. */
void mx_classify_describe(struct mx_classifier *c, const struct mx_classify_flow *cf, struct mx_event *ev);

/* The nDPI mxray runs with (--version). */
const char *mx_classify_lib_version(void);

#endif
