/* message.h - a mail message as a session carries it, streamed to the message parser. */
#ifndef MX_MESSAGE_H
#define MX_MESSAGE_H

#include "event.h"
#include "mx.h"

/* One message (RFC 5322) in transit: SMTP DATA/BDAT, POP3 RETR/TOP, IMAP
 * FETCH/APPEND. It is fed in order and never held whole: what is kept is
 * bounded whatever the message's size. The RFC 5322/MIME parser plugs in here. */
struct mx_message;

/* A new message; NULL when out of memory. */
struct mx_message *mx_message_new(void);
/* Message bytes in order (SMTP: already dot-unstuffed). */
void mx_message_feed(struct mx_message *m, struct mx_slice bytes);
/* `len` bytes of the message were never captured: the message is partial. */
void mx_message_gap(struct mx_message *m, uint64_t len);
/* No more bytes come. */
void mx_message_end(struct mx_message *m);
/* Adds the message's fields to an open event, as an object under `key`:
 * "size", "sha256" (of the bytes seen), "partial". */
void mx_message_describe(const struct mx_message *m, struct mx_event *ev, const char *key);
uint64_t mx_message_size(const struct mx_message *m);
void mx_message_free(struct mx_message *m);

#endif
