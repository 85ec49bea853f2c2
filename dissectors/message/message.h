/* message.h - a mail message as a session carries it, streamed to the message parser. */
#ifndef MX_MESSAGE_H
#define MX_MESSAGE_H

#include "engine/dissector.h"
#include "event/event.h"
#include "core/mx.h"

/* Where a message travels: its records and anomalies name this flow and
 * direction. The fields after `source` are optional: zero or empty means
 * unknown, and the record leaves them out. Initialise the struct with
 * designated initialisers (a positional one that omits the optional fields
 * trips -Wmissing-field-initializers). */
struct mx_message_env {
    struct mx_dissect_ctx *ctx;
    enum mx_dir dir;         /* the direction carrying the message */
    const char *source;      /* how it travelled: "smtp.data", "smtp.bdat", "pop3.retr", "imap.fetch", ... */
    uint32_t number;         /* POP3 message number (RFC 1939 §5) or IMAP sequence number (RFC 9051 §2.3.1.2) */
    uint32_t uid;            /* IMAP UID (RFC 9051 §2.3.1.1) */
    struct mx_slice mailbox; /* IMAP mailbox name as sent; copied by mx_message_new, at most 256 bytes */
    uint64_t mailbox_len;    /* its real length when it was cut before (0: mailbox.len) */
    struct mx_slice section; /* IMAP section spec ("1.2", "HEADER", RFC 9051 §6.4.5); copied, at most 64 bytes */
    unsigned hashes;         /* without ctx: the digests to compute (MX_HASH_*); with ctx: the flow's --hashes */
    bool fragment;           /* the bytes are only part of the message: POP3 TOP, an IMAP partial
                              fetch (<0.1024>), BODY[HEADER], a section */
};

/* One message (RFC 5322) in transit: SMTP DATA/BDAT, POP3 RETR/TOP, IMAP
 * FETCH/APPEND. It is fed in order and never held whole: what is kept is
 * bounded whatever the message's size. */
struct mx_message;

/* A new message; NULL when out of memory. env is copied. */
struct mx_message *mx_message_new(const struct mx_message_env *env);
/* Message bytes in order (SMTP: already dot-unstuffed). `stream_off` is the
 * stream offset of the first of them, for the frames of anomalies. */
void mx_message_feed(struct mx_message *m, struct mx_slice bytes, uint64_t stream_off);
/* `len` bytes of the message were never captured: the message is partial. */
void mx_message_gap(struct mx_message *m, uint64_t len);
/* The session ended (or the transfer was aborted) before the message's end:
 * the message is partial. Call it before mx_message_end; the record then
 * carries "partial": true and "cut": true. Has no effect after mx_message_end. */
void mx_message_cut(struct mx_message *m);
/* No more bytes come: the message's own record is emitted (once). */
void mx_message_end(struct mx_message *m);
/* Adds a summary of the message to an open event, as an object under `key`:
 * "size", "sha256" (of the bytes seen), "partial" (bytes missing, cut, or not
 * ended yet). */
void mx_message_describe(const struct mx_message *m, struct mx_event *ev, const char *key);
uint64_t mx_message_size(const struct mx_message *m);
/* Bytes the parser holds, its allocations included (0 for NULL): charged
 * against the memory cap. */
size_t mx_message_bytes(const struct mx_message *m);
void mx_message_free(struct mx_message *m);

/* The file name --extract uses for a name taken from the wire: its last path
 * component, control characters, '/', '\\', ':' and invalid UTF-8 replaced,
 * no leading dot or space, at most cap - 1 bytes (never cut inside a UTF-8
 * sequence), "part" when nothing usable is left. Writes a NUL-terminated
 * string into out (cap >= 8). */
void mx_message_safe_name(struct mx_slice name, char *out, size_t cap);

#endif
