/* codes.h - what SMTP reply codes (RFC 5321 §4.2) and enhanced status codes (RFC 3463, IANA registry) mean. */
#ifndef MX_SMTP_CODES_H
#define MX_SMTP_CODES_H

#include "core/mx.h"

/*
 * The tables behind these functions are generated at build time by
 * scripts/build/gen-codes.py from dissectors/smtp/smtp-enhanced-status-codes.csv (the IANA
 * "SMTP Enhanced Status Codes" registry, RFC 5248) and
 * dissectors/smtp/smtp-reply-codes.csv. All strings are static, NUL-terminated
 * ASCII, never NULL (an empty registry field is ""), with the registry's line
 * breaks and runs of spaces folded into single spaces.
 */

/* An enhanced status code as parsed: class.subject.detail (RFC 3463 §2),
 * with its text as the reply wrote it (digits as sent, leading zeros kept). */
struct mx_enhanced_code {
    int cls;       /* 2, 4 or 5; 0: no code */
    int subject;   /* 0..999; -1: no code */
    int detail;    /* 0..999; -1: no code */
    char text[12]; /* "5.1.1", NUL-terminated; "" with no code */
};

/* No enhanced code. */
#define MX_ENHANCED_NONE \
    {                    \
        0, -1, -1, ""    \
    }

/* One row of the registry's "Enumerated Status Codes" (X.subject.detail). */
struct mx_enhanced_info {
    const char *code;        /* "X.1.1", as the registry writes it */
    int subject, detail;     /* 1, 1 */
    const char *sample;      /* sample text: "Bad destination mailbox address" */
    const char *basic;       /* associated basic status codes, as written:
                                      "451, 550", "Not given", "Any", "5XX" */
    const char *description; /* the registry's description */
    const char *reference;   /* "[RFC3463] (Standards Track)" */
    const char *submitter;
    const char *change_controller;
};

/* One row of the "Class Sub-Codes" (2.XXX.YYY) or "Subject Sub-Codes"
 * (X.1.YYY) registry. */
struct mx_enhanced_part {
    const char *code;    /* "5.XXX.YYY", "X.7.YYY" */
    int value;           /* the class (2, 4, 5) or the subject (0..7) */
    const char *summary; /* "Permanent Failure", "Security or Policy Status" */
    const char *description;
    const char *reference;
    const char *submitter;
    const char *change_controller;
};

/* One meaning of a reply code. */
struct mx_reply_info {
    int code;              /* 250 */
    const char *command;   /* "" for the general meaning, else the verb the meaning
                              applies to ("AUTH", "STARTTLS", "ETRN", "ATRN", "MAIL") */
    const char *text;      /* the RFC's reply text: "Requested mail action okay, completed" */
    const char *reference; /* "RFC 5321, Section 4.2.3" */
};

/* ---- Enhanced status codes (RFC 3463, RFC 5248 registry) ---- */

/* The registered meaning of X.subject.detail (any class), or NULL if that
 * subject/detail pair is not registered. */
const struct mx_enhanced_info *mx_enhanced_lookup(int subject, int detail);

/* Rows in the enumerated-codes table, and row i of it (NULL past the end);
 * rows are sorted by subject, then detail. */
size_t mx_enhanced_count(void);
const struct mx_enhanced_info *mx_enhanced_at(size_t i);

/* The registry's class row for cls (2, 4, 5), or NULL; and its summary:
 * "Success", "Persistent Transient Failure", "Permanent Failure" (NULL for
 * other values). */
const struct mx_enhanced_part *mx_enhanced_class(int cls);
const char *mx_enhanced_class_text(int cls);

/* The registry's subject row for subject (0..7), or NULL; and its summary:
 * "Addressing Status", ... (NULL when unregistered). */
const struct mx_enhanced_part *mx_enhanced_subject(int subject);
const char *mx_enhanced_subject_text(int subject);

/* Rows in the class and subject tables (3 and 8 today). */
size_t mx_enhanced_class_count(void);
size_t mx_enhanced_subject_count(void);

/* Reads an enhanced status code at the start of s: a class digit 2, 4 or 5,
 * '.', 1 to 3 digits, '.', 1 to 3 digits (RFC 3463 §2), not followed by
 * another digit or '.'. On success fills *out and returns the bytes it
 * spans (5 to 9); otherwise returns 0 and leaves *out alone. Use it on reply
 * text, where the code is followed by SP (RFC 2034 §4). */
size_t mx_enhanced_scan(struct mx_slice s, struct mx_enhanced_code *out);

/* True when all of s is one enhanced status code ("5.7.1"), which *out gets. */
bool mx_enhanced_parse(struct mx_slice s, struct mx_enhanced_code *out);

/* ---- Reply codes (RFC 5321 §4.2.2, §4.2.3 and the extensions) ---- */

/* The meaning of reply code `code` in reply to `verb` (NUL-terminated ASCII,
 * any case, or NULL): the row for that verb if the code has one, else the
 * code's default meaning (its first row); NULL when the code has no row. */
const struct mx_reply_info *mx_reply_lookup(int code, const char *verb);

/* The default meaning of a reply code ("Requested mail action okay,
 * completed" for 250), or NULL when no RFC gives the code one. */
const char *mx_reply_code_text(int code);

/* All rows for `code`: sets *first to the first (NULL if none) and returns
 * how many follow it contiguously in the table. */
size_t mx_reply_meanings(int code, const struct mx_reply_info **first);

/* Rows in the reply-code table, and row i of it (NULL past the end); rows are
 * sorted by code, keeping the CSV's order within a code. */
size_t mx_reply_count(void);
const struct mx_reply_info *mx_reply_at(size_t i);

#endif
