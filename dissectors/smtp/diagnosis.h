/* diagnosis.h - what an SMTP reply means and why a delivery step likely
 * failed, in plain language, with the evidence (RFC 5321 §4.2, RFC 3463). */
#ifndef MX_DIAGNOSIS_H
#define MX_DIAGNOSIS_H

#include "core/mx.h"
#include "engine/dissector.h"
#include "dissectors/smtp/codes.h"
#include "dissectors/smtp/words.h"

#include <stdio.h>

/* One reply to one step of a delivery. */
struct mx_diag_reply {
    const char *step;                        /* the command answered: "MAIL", "RCPT", "DATA", "(end of data)", "BDAT",
                                "AUTH", "(connect)", "EHLO", "STARTTLS", ... */
    int code;                                /* 250, 550, ... */
    const struct mx_enhanced_code *enhanced; /* its enhanced code (cls 0 or NULL: none) */
    struct mx_slice text;                    /* the reply text after the codes */
    uint64_t size_limit;                     /* the SIZE the server advertised (RFC 1870), 0 when unknown */
    uint64_t message_size;                   /* bytes of the message sent, 0 when unknown */
    uint64_t declared_size;                  /* SIZE= given with MAIL FROM, 0 when none */
    bool mail_refused;                       /* the transaction's MAIL was refused before this step */
    bool no_recipient;                       /* no recipient had been accepted before this step */
    bool per_recipient;                      /* LMTP: one recipient's reply after the data (RFC 2033 §4.2) */
    bool spoke_first;                        /* the client spoke before the greeting (CLIENT_SPOKE_FIRST) */
};

/* The RFC meaning of the reply code in answer to `step` ("Requested action
 * not taken: mailbox unavailable"), without RFC 5321's leading "<domain> ",
 * or NULL when no RFC gives one. */
const char *mx_diag_reply_meaning(int code, const char *step);

/* The registry meaning of an enhanced status code, written to out:
 * "Bad destination mailbox address (Addressing Status; Permanent Failure)".
 * Empty without a code (NULL, or cls 0). */
void mx_diag_enhanced_meaning(const struct mx_enhanced_code *c, char *out, size_t cap);

/* What a diagnosis concluded, for the records: the kind of cause, and, when
 * the reply's codes say another thing than its words, what the codes say. */
struct mx_diag_verdict {
    enum mx_cause_kind kind;      /* the cause given (MX_CAUSE_NONE for a success) */
    enum mx_cause_kind code_kind; /* what the codes alone say, when the words disagree; else MX_CAUSE_NONE */
    const char *words;            /* the phrase of the text that named the cause (static), or NULL */
};

/* The likely cause of a failed step (4xx, 5xx), one or two sentences, with
 * the numbers that prove it (sizes); empty for a success. Reads the codes and
 * the words of the text (mx_words_match): when they disagree (a 5.2.1
 * "mailbox disabled" whose text asks to solve a puzzle), says both. v (may be
 * NULL) gets the kinds. */
void mx_diag_cause_kind(const struct mx_diag_reply *r, char *out, size_t cap, struct mx_diag_verdict *v);

/* mx_diag_cause_kind without the kinds. */
void mx_diag_cause(const struct mx_diag_reply *r, char *out, size_t cap);

/* --explain for a reply: what it means here, in answer to `step` (the
 * command, or "(connect)", "(end of data)", "(auth data)"; NULL: none seen),
 * with the RFC's meaning (placeholders filled from the text, or left out)
 * and the enhanced code's, and, for a failure, what its words say. Starts
 * with "<code>: "; holds no '<'. */
void mx_diag_explain(int code, const char *step, const struct mx_enhanced_code *enh, struct mx_slice text, char *out,
                     size_t cap);

/* For a failure's --explain in any protocol (POP3 -ERR, IMAP NO): " The
 * server's words (\"[in-use]\") say: the mailbox is in use." when the
 * text holds a phrase of the table (mx_words_match), else "". */
void mx_diag_words_note(struct mx_slice text, char *out, size_t cap);

/* The kind of cause mx_diag_unfinished gives. */
enum mx_cause_kind mx_diag_unfinished_kind(enum mx_close close, bool tls_failed);

/* The cause for a transaction that never got its final reply: how the
 * connection ended ("fin", "rst", "timeout", "evicted", "capture_end") and
 * whether a TLS handshake failed. */
const char *mx_diag_unfinished(enum mx_close close, bool tls_failed);

#endif
