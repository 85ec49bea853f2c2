/* teach.h - what --explain adds to mail records beyond a line each: the
 * capabilities a server lists, one line per item with what it means and its
 * RFC, and SASL challenges decoded when they are text. */
#ifndef MX_MAIL_TEACH_H
#define MX_MAIL_TEACH_H

#include "core/mx.h"
#include "event/event.h"

struct mx_caps;

/* Whose capability list: EHLO keywords (RFC 5321 §4.1.1.1), POP3 CAPA tags
 * (RFC 2449 §6), IMAP capability atoms (RFC 9051 §7.2.2). */
enum mx_teach_proto { MX_TEACH_SMTP, MX_TEACH_POP3, MX_TEACH_IMAP };

/* What the capability `item` means (an EHLO line or a CAPA line: its first
 * word decides; an IMAP atom: whole, or its part up to '='), with its RFC;
 * NULL for one mxray does not describe. The text is static. */
const char *mx_teach_cap_meaning(enum mx_teach_proto p, struct mx_slice item);

/* Adds the array "explain_lines" to ev: one string per entry of c, "ITEM:
 * meaning" (the item as the server sent it), and a last line saying how
 * many were not kept when c dropped some. Nothing when c is empty. */
void mx_teach_caps(struct mx_event *ev, enum mx_teach_proto p, const struct mx_caps *c);

/* A SASL challenge in base64 (after "334 " or "+ "), decoded into buf
 * (cap bytes, NUL-terminated) when it is printable ASCII text, as the
 * LOGIN mechanism's prompts are ("VXNlcm5hbWU6" is "Username:"); false
 * when it is empty, not base64, binary or longer than buf. */
bool mx_teach_challenge(struct mx_slice b64, char *buf, size_t cap);

/* Adds "explain_lines" to ev with the challenge b64 decoded (and what a
 * LOGIN prompt asks for) when mx_teach_challenge decodes it; else nothing.
 * Only server challenges come here: a client's answers may be secrets. */
void mx_teach_challenge_lines(struct mx_event *ev, struct mx_slice b64);

/* A pipelined command's explanation (RFC 2920 §3, RFC 2449 §6.6): its own
 * `explain`, then that it was sent while `waiting` commands awaited their
 * `reply` ("reply", "response"; `replies` its plural; rfc names the section), so the server reads
 * it after them and the state shown is the one they lead to. Written to buf
 * (cap bytes); returns buf. */
const char *mx_teach_pipelined(char *buf, size_t cap, const char *explain, unsigned waiting, const char *rfc,
                               const char *reply, const char *replies);

#endif
