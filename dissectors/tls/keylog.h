/* keylog.h - the NSS key log (--tls-keylog): the secrets a TLS client or
 * server wrote for each session, found by the ClientHello's random. The
 * format is the one browsers, curl, OpenSSL's -keylogfile, Python's
 * ssl.keylog_filename and Wireshark use (draft-ietf-tls-keylogfile). */
#ifndef MX_TLS_KEYLOG_H
#define MX_TLS_KEYLOG_H

#include "core/mx.h"

#include <stdio.h>

/* The labels mxray reads; others are counted and passed over. */
enum mx_keylog_label {
    MX_KL_CLIENT_RANDOM = 0, /* TLS <= 1.2: the 48-byte master secret */
    MX_KL_CLIENT_HS_TRAFFIC, /* TLS 1.3 (RFC 8446 §7.1): client_handshake_traffic_secret */
    MX_KL_SERVER_HS_TRAFFIC, /* server_handshake_traffic_secret */
    MX_KL_CLIENT_TRAFFIC_0,  /* client_application_traffic_secret_0 */
    MX_KL_SERVER_TRAFFIC_0,  /* server_application_traffic_secret_0 */
    MX_KL__LABELS,
};

#define MX_KEYLOG_MAX_SECRET 64          /* a secret's bytes: the hash length, SHA-384 at most here */
#define MX_KEYLOG_MAX_ENTRIES (1u << 22) /* entries kept of a file; more are counted */

/* A key log, read-only once loaded: the run's workers share it. */
struct mx_keylog;

/* What loading found, for the warning on stderr. */
struct mx_keylog_stats {
    uint64_t lines, entries, other_labels, malformed, dropped;
};

/* Reads the key log at `path`. NULL with a message in err when the file
 * cannot be read (a line that is not a key-log line is counted, not fatal). */
struct mx_keylog *mx_keylog_load(const char *path, struct mx_keylog_stats *st, char *err, size_t errlen);

/* Reads a key log from an open stream (the same rules). NULL when out of memory. */
struct mx_keylog *mx_keylog_read(FILE *f, struct mx_keylog_stats *st);

void mx_keylog_free(struct mx_keylog *k);

/* The secret `label` for the session whose ClientHello.random is
 * `client_random` (32 bytes): its length, 0 when the log has none. */
size_t mx_keylog_find(const struct mx_keylog *k, enum mx_keylog_label label, const uint8_t client_random[32],
                      uint8_t out[MX_KEYLOG_MAX_SECRET]);

/* Whether the log holds anything for this client random. */
bool mx_keylog_knows(const struct mx_keylog *k, const uint8_t client_random[32]);

#endif
