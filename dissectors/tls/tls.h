/* tls.h - mxray's own TLS observer: records, the handshake in clear, the
 * certificate, JA3/JA3S/JA4, and the application bytes after (RFC 8446, RFC 5246). */
#ifndef MX_TLS_H
#define MX_TLS_H

#include "engine/dissector.h"
#include "event/event.h"
#include "core/mx.h"

/* One TLS session over one TCP flow, seen from outside: both directions are
 * fed in dialogue order, in any split. Memory is bounded per session (a
 * handshake message is buffered up to 64 KiB, application data only counted). */
struct mx_tls;

/* A new observer writing its record and anomalies through `ctx` (the calling
 * dissector's context). `how` is a string literal, "starttls" or "implicit",
 * written as the record's `how`. NULL when out of memory. */
struct mx_tls *mx_tls_new(struct mx_dissect_ctx *ctx, const char *how);

/* Bytes of direction `d`, in stream order, any split: `stream_off` is the
 * stream offset of bytes.ptr[0] in the caller's context (frames are looked up
 * with mx_ctx_frame_at, so they must still be known there). Never fails:
 * anything wrong in the input is an anomaly. */
void mx_tls_feed(struct mx_tls *t, enum mx_dir d, struct mx_slice bytes, uint64_t stream_off);

/* `len` bytes of direction `d` were never captured. */
void mx_tls_gap(struct mx_tls *t, enum mx_dir d, uint64_t len);

/* The flow ended: raises TLS_TRUNCATED for a direction that stopped inside a
 * record, then emits the `tls` record. Only the first call does anything; the
 * record is emitted even when nothing TLS-like was seen. */
void mx_tls_end(struct mx_tls *t);

/* Adds to `ev` an object `key` summarising the session: version, sni,
 * cipher, completed (for the mail dissectors' session records). */
void mx_tls_describe(const struct mx_tls *t, struct mx_event *ev, const char *key);

/* Whether the handshake completed (docs/tls.md, "completed"). */
bool mx_tls_completed(const struct mx_tls *t);

/* Bytes of application_data records after the handshake, in direction `d`. */
uint64_t mx_tls_app_bytes(const struct mx_tls *t, enum mx_dir d);

/* Bytes the observer holds, its allocations included (0 for NULL): charged
 * against the memory cap. */
size_t mx_tls_bytes(const struct mx_tls *t);

/* Frees the observer (NULL is fine). Emits nothing: call mx_tls_end first. */
void mx_tls_free(struct mx_tls *t);

/* The dissector for flows that start in TLS (465, 993, 995, --port x=N/tls):
 * an mx_tls with how "implicit", its record emitted when the flow ends. It is
 * also the observer the host feeds after STARTTLS (mx_ctx_starttls), with how
 * "starttls": then the mail dissector emits its record (mx_tls_end). */
extern const struct mx_dissector mx_tls_dissector;

#endif
