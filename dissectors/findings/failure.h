/* failure.h - the failure model: what mxray calls a failure, defined once. Every view
 * (--failures, the HTML overview, the timeline, --write-flows) takes its list from the
 * `failure` records this emits. */
#ifndef MX_FAILURE_H
#define MX_FAILURE_H

#include "event/event.h"

/* Makes s emit a `failure` record right after each record that shows one:
 *  - recipient_refused: a recipient refused at RCPT (RFC 5321 §3.3), for good or for now;
 *  - message_refused: accepted recipients lost because the server refused the
 *    transaction (MAIL, DATA, the end of data, BDAT; LMTP's per-recipient reply after
 *    the data, RFC 2033 §4.2), or an IMAP APPEND refused;
 *  - transaction_unfinished: accepted recipients whose transaction never got its final
 *    reply because the connection or the server ended it (not when the capture did);
 *  - login_failed: a login the server refused (RFC 4954 §6, RFC 1939 §7, RFC 9051 §6.2.3);
 *  - starttls_refused: STARTTLS or STLS refused (RFC 3207 §4, RFC 2595 §4);
 *  - tls_failed: a TLS handshake ended by a fatal alert;
 *  - session_cut: a session reset or timed out mid-dialogue (before the greeting, or
 *    with commands waiting for their replies, QUIT and LOGOUT aside);
 *  - retrieval_failed: a message or mailbox the server would not give (POP3 RETR/TOP
 *    -ERR, IMAP FETCH/SELECT/EXAMINE NO or BAD);
 *  - bounced: a recipient a delivery status notification (RFC 3464) says failed or was
 *    delayed.
 * Each has a severity: high for a permanent refusal, a failed login or a failed bounce;
 * medium for a temporary one, an unfinished transaction, a cut session, STARTTLS or TLS;
 * low for a retrieval. False when out of memory or a deriver is set already. */
bool mx_failure_attach(struct mx_sink *s);

#endif
