/* flowpcap.h - `--write-flows DIR`: one pcap per chosen session, its packets as captured. */
#ifndef MX_FLOWPCAP_H
#define MX_FLOWPCAP_H

#include "event/event.h"

#include <stdio.h>

#define MX_FLOWPCAP_MAX_SESSIONS 1024             /* sessions written in one run */
#define MX_FLOWPCAP_MAX_OPEN 64                   /* session files open at once */
#define MX_FLOWPCAP_MAX_BYTES (UINT64_C(1) << 30) /* bytes written in all (1 GiB) */

struct mx_flowpcap;

/* Prepares DIR (created if absent; it must be empty) and subscribes to the
 * sink a reporter that notes the sessions to write: every session whose
 * flow record reaches it (those --flow or -f chose), or with failed_only
 * those with a `failure` record (failure.h). The sink owns the state; call
 * mx_flowpcap_write before freeing the sink. NULL with err on failure. */
struct mx_flowpcap *mx_flowpcap_new(struct mx_sink *s, const char *dir, bool failed_only, char *err, size_t errlen);

/* Reads the capture files again, numbered as the run numbered them (bpf:
 * -f's filter, or NULL), and writes each noted session's packets to
 * DIR/flowN-<client>.<port>-<server>.<port>.pcap with their times, lengths
 * and link type. The sessions are known only once the run has seen them
 * (a failure comes at the end of a transaction): hence a second pass,
 * which live capture cannot have. What was written, and any cap reached,
 * is said on `msg` (NULL: nothing said). False when a file could not be
 * written or an input could not be read again. */
bool mx_flowpcap_write(struct mx_flowpcap *fp, char *const *files, int n_files, const char *bpf, FILE *msg);

#endif
