/* harness.h - runs a dialogue transcript through the whole engine as one TCP connection. */
#ifndef MX_TEST_HARNESS_H
#define MX_TEST_HARNESS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mx.h"

/* One turn of a dialogue: bytes one side sends. len 0 means strlen(data). */
struct mx_turn {
    enum mx_dir dir;
    const char *data;
    size_t len;
};

struct mx_harness_opts {
    uint16_t server_port; /* 25 when 0 */
    bool show_secrets;
    bool explain;            /* --explain */
    bool no_handshake;       /* start midstream */
    bool no_fin;             /* end without FINs (capture end) */
    const char *extract_dir; /* --extract DIR */
    uint64_t extract_max;    /* --extract-max, in bytes (0: the default) */
    uint64_t extract_total;  /* --extract-total, in bytes (0: the default) */
    const char *hashes;      /* --hashes LIST (NULL: the default) */
};

/* Writes an Ethernet/IPv4/TCP frame from 10.0.0.a:sport to 10.0.0.b:dport
 * carrying n bytes into f (at least 54 + n bytes); returns its length. */
size_t mx_harness_tcp_frame(uint8_t *f, uint8_t a, uint16_t sport, uint8_t b, uint16_t dport, uint32_t seq,
                            uint32_t ack, uint8_t flags, const void *data, size_t n);

struct mx_protocols;
/* The registry's protocols, for a test's mx_config (cfg.protocols). */
const struct mx_protocols *mx_harness_protocols(void);

struct mx_dissector;
/* The registry's ports with `dis` dissecting every cleartext one, and the
 * TLS ones left undissected: for a test of the engine with a dissector of
 * its own. One table at a time (each call replaces the last). */
const struct mx_protocols *mx_harness_protocols_with(const struct mx_dissector *dis);

/* Total bytes of a transcript. */
size_t mx_harness_len(const struct mx_turn *t, size_t n);

/* Runs the transcript: a handshake, then each turn as segments acknowledging
 * everything the peer sent before, then FINs. The byte at global position
 * `split` (counting all turns' bytes in order) starts a new segment; with
 * split == SIZE_MAX nothing is split beyond turns, and with `every_byte` each
 * byte is its own segment. Returns the NDJSON output (free() it). */
char *mx_harness_run(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o, size_t split, bool every_byte);

/* The same, and *status (status may be NULL): the run's exit status (0,
 * 1 when mxray failed, 3 for damaged input), 1 when a reporter could not
 * write, -1 when mxray could not even start (out of memory). */
char *mx_harness_run_status(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o, size_t split,
                            bool every_byte, int *status);

/* The output without what depends on segmentation (times, frames, packet
 * counts) and without the core's records: comparable across splits. */
char *mx_harness_normalize(const char *ndjson);

/* Whether every line of `ndjson` is one valid JSON object ending in a newline. */
bool mx_harness_all_json(const char *ndjson);

/* The nth record (0-based) of `type`, or NULL; json_object_put() it. */
json_object *mx_harness_record(const char *ndjson, const char *type, int nth);

/* Number of records of `type`. */
int mx_harness_count(const char *ndjson, const char *type);

/* A field by dotted path ("recipients.1.code": array indexes allowed) as a
 * string (numbers and booleans in their JSON text), or NULL. The pointer
 * lives as long as the object. */
const char *mx_harness_get(json_object *o, const char *path);

/* Checks that every split position, and one byte per segment, give the same
 * normalized records as the unsplit run. Returns the first failing split
 * position, or SIZE_MAX when all agree. */
size_t mx_harness_split_check(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o);

#endif
