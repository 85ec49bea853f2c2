/* words.h - what a server's reply text says, read from the words real MTAs
 * and mail services write (dissectors/smtp/words.c holds the table and its
 * sources); for SMTP and LMTP replies, and POP3 -ERR and IMAP NO texts. */
#ifndef MX_SMTP_WORDS_H
#define MX_SMTP_WORDS_H

#include "core/mx.h"

/* The kind of cause behind a failure: a stable key of the records
 * ("cause_kind"), named by mx_cause_kind_name. New kinds go at the end. */
enum mx_cause_kind {
    MX_CAUSE_NONE = 0,
    MX_CAUSE_POLICY,              /* refused by the server's policy (access lists, HELO or sender checks) */
    MX_CAUSE_BLOCKLIST,           /* the client's address (or domain) is on a DNS blocklist or the provider's own */
    MX_CAUSE_GREYLISTING,         /* deferred until the sender retries (RFC 6647) */
    MX_CAUSE_RATE_LIMIT,          /* too much mail, too many connections or logins, too fast */
    MX_CAUSE_SPF_DKIM_DMARC,      /* the sender's domain failed SPF, DKIM or DMARC (RFC 7208, 6376, 7489) */
    MX_CAUSE_TLS_REQUIRED,        /* TLS (or a newer TLS) is required first (RFC 3207) */
    MX_CAUSE_QUOTA,               /* the mailbox is full */
    MX_CAUSE_UNKNOWN_USER,        /* no such mailbox */
    MX_CAUSE_RELAY_DENIED,        /* the server does not relay for this client (RFC 5321 §3.6) */
    MX_CAUSE_TOO_BIG,             /* the message is bigger than the server takes (RFC 1870) */
    MX_CAUSE_CONTENT,             /* the content was refused: spam, a virus */
    MX_CAUSE_AUTH_FAILED,         /* the credentials were refused (RFC 4954 §6) */
    MX_CAUSE_AUTH_REQUIRED,       /* authentication is required first */
    MX_CAUSE_MAILBOX_DISABLED,    /* the mailbox exists but takes no mail (RFC 3463 X.2.1) */
    MX_CAUSE_UNKNOWN_DOMAIN,      /* the domain does not exist or takes no mail */
    MX_CAUSE_BAD_ADDRESS,         /* the address is malformed */
    MX_CAUSE_TOO_MANY_RECIPIENTS, /* RFC 3463 X.5.3 */
    MX_CAUSE_IN_USE,              /* the mailbox is locked by another session (RFC 2449 §8.1.2 IN-USE) */
    MX_CAUSE_UNAVAILABLE,         /* the server is busy, shutting down or refusing the connection (421) */
    MX_CAUSE_PREGREET,            /* the client spoke before the greeting (RFC 5321 §3.1) */
    MX_CAUSE_OUT_OF_SEQUENCE,     /* a command out of order (503, RFC 5321 §4.1.4) */
    MX_CAUSE_SYNTAX,              /* a command or parameter the server does not accept (500-504) */
    MX_CAUSE_TEMPORARY,           /* a temporary failure with no more detail */
    MX_CAUSE_REFUSED,             /* a permanent refusal with no more detail */
    MX_CAUSE_CLIENT_RESET,        /* the client reset the transaction (RSET, EHLO, STARTTLS) */
    MX_CAUSE_SERVER_CLOSED,       /* the server ended the session mid-transaction */
    MX_CAUSE_NO_REPLY,            /* no final reply was seen */
    MX_CAUSE_CLOSED,              /* the connection closed (FIN) mid-transaction */
    MX_CAUSE_RESET,               /* the connection was reset (RST) */
    MX_CAUSE_TIMEOUT,             /* the connection went quiet and timed out */
    MX_CAUSE_CAPTURE_END,         /* the capture ended first */
    MX_CAUSE_TLS_FAILED,          /* the TLS handshake after STARTTLS failed */
    MX_CAUSE_EVICTED,             /* mxray's flow table dropped the flow */
    MX_CAUSE_REUSED,              /* the client opened a new connection on the same ports */
    MX_CAUSE_CLIENT_QUIT,         /* the client sent QUIT before any message (RFC 5321 §4.1.1.10) */
    MX_CAUSE_SMUGGLED,            /* a transaction smuggled in a message's data that the server did not run */
    MX_CAUSE_COUNT
};

/* The record key of a kind: "blocklist", "unknown_user", ...; "" for
 * MX_CAUSE_NONE (and out-of-range values). */
const char *mx_cause_kind_name(enum mx_cause_kind k);

/* One row of the table: a phrase a server writes, and the cause it names. */
struct mx_words_row {
    const char *phrase;      /* lower-case ASCII, matched anywhere in the text */
    enum mx_cause_kind kind; /* what the phrase means */
};

/* The first row of the table (rows are in priority order: the specific
 * before the general) whose phrase the text holds, compared without case,
 * with line breaks read as spaces and addresses in angle brackets left out;
 * NULL when none. Reads at most the first
 * MX_WORDS_MAX bytes (a reply's text is at most 256, MX_TEXT); linear in
 * the text for each row whose bytes all occur in it (memmem), never more. */
#define MX_WORDS_MAX 512
const struct mx_words_row *mx_words_match(struct mx_slice text);

/* Rows in the table, and row i (NULL past the end): for the tests. */
size_t mx_words_count(void);
const struct mx_words_row *mx_words_at(size_t i);

#endif
