/* dsn.h - delivery status notifications (RFC 3464, RFC 6533): the fields of a message/delivery-status part, streamed. */
#ifndef MX_DSN_H
#define MX_DSN_H

#include "core/mx.h"
#include "event/event.h"

/* The report of one bounce: what its delivery-status part says (one
 * per-message group, then per-recipient groups, RFC 3464 §2.1), and the
 * Message-ID of the message it returns (RFC 6522 §3, the part after it).
 * Bounded whatever the input: a fixed number of recipients, each field cut
 * at a cap. A zero-filled struct is not valid: use mx_dsn_new. */
struct mx_dsn;

/* The anomalies the report's parser finds, as bits of what mx_dsn_feed and
 * mx_dsn_end return (message.c names them). */
enum {
    MX_DSN_NOT_A_FIELD = 1u << 0,         /* a line that is neither a field nor a continuation */
    MX_DSN_TOO_MANY_RECIPIENTS = 1u << 1, /* more per-recipient groups than kept */
    MX_DSN_MISSING_FIELD = 1u << 2,       /* a required field absent (§2.2, §2.3) */
    MX_DSN_BAD_VALUE = 1u << 3,           /* an Action or a Status that is not one (§2.3.3, §2.3.4) */
};

/* A new, empty report; NULL when out of memory. */
struct mx_dsn *mx_dsn_new(void);
void mx_dsn_free(struct mx_dsn *d);
/* Bytes it holds (for the memory cap). */
size_t mx_dsn_bytes(const struct mx_dsn *d);

/* A part's body begins: the delivery-status fields when !headers
 * (`global`: message/global-delivery-status, RFC 6533 §6: UTF-8 allowed),
 * else a returned header block (text/rfc822-headers, message/global-headers,
 * RFC 6522 §3) whose Message-ID is wanted. `path` is the part's (copied). */
void mx_dsn_begin(struct mx_dsn *d, bool headers, bool global, const char *path);
/* The part's (decoded) body bytes, in order, split anywhere. Returns the
 * MX_DSN_* anomalies met for the first time in this report. */
unsigned mx_dsn_feed(struct mx_dsn *d, const uint8_t *p, size_t n);
/* The part ended (a last line without line end counts). Returns anomalies
 * as mx_dsn_feed. */
unsigned mx_dsn_end(struct mx_dsn *d);
/* Bytes of the part were never captured: the line under way is dropped
 * (the message parser resumes at the next line). */
void mx_dsn_gap(struct mx_dsn *d);
/* The returned message's Message-ID, from an embedded message's header
 * block (message/rfc822, message/global); the first one given wins. */
void mx_dsn_returned_id(struct mx_dsn *d, struct mx_slice id, const char *content_type);
/* Whether the returned message's Message-ID is known already. */
bool mx_dsn_has_returned(const struct mx_dsn *d);

/* Adds the report to an open event as the object "delivery_status" (keys in
 * docs/schema.json), each failed or delayed recipient with what its status
 * and diagnostic code mean and the likely cause (dissectors/smtp/diagnosis.h). */
void mx_dsn_emit(const struct mx_dsn *d, struct mx_event *ev);
/* Recipients by Action: failed, delayed (for the record's one-line text). */
void mx_dsn_counts(const struct mx_dsn *d, uint32_t *failed, uint32_t *delayed, uint32_t *total);

#endif
