/* mime.h - pure MIME decoders: base64, quoted-printable, RFC 2047 words, RFC 2231 parameters, charsets. */
#ifndef MX_MIME_H
#define MX_MIME_H

#include "core/mx.h"

/* A bounded output buffer over caller storage: writes past `cap` are dropped
 * and set `trunc`. A zero-filled struct with p/cap set is empty. */
struct mx_mime_out {
    uint8_t *p;
    size_t len, cap;
    bool trunc;
};

/* Appends n bytes (what fits). */
void mx_mime_out_put(struct mx_mime_out *o, const void *s, size_t n);

/* Base64 decoder state (RFC 2045 §6.8); zero-filled is a valid start. */
struct mx_mime_b64 {
    uint32_t acc; /* pending bits */
    unsigned n;   /* pending sextets (0..3) */
    bool padded;  /* '=' seen: the quantum is over */
    uint64_t bad; /* characters outside the alphabet (whitespace excepted) */
};

/* Decodes `len` bytes of `in` into `out` (room for len * 3 / 4 + 3 bytes);
 * returns the bytes written. Whitespace is skipped, other foreign bytes counted. */
/* The 6-bit value of a base64 character (RFC 4648 §4 alphabet), or -1. */
int mx_base64_value(uint8_t c);

size_t mx_mime_b64_feed(struct mx_mime_b64 *st, const uint8_t *in, size_t len, uint8_t *out);
/* The input ended: a dangling sextet counts as a bad character. */
void mx_mime_b64_end(struct mx_mime_b64 *st);

/* Quoted-printable decoder state (RFC 2045 §6.7); zero-filled is a valid start. */
#define MX_MIME_QP_WS 64 /* trailing whitespace held until the line end decides */
struct mx_mime_qp {
    unsigned pend; /* 0, or 1/2: inside "=X" escape with that many bytes seen */
    uint8_t hi;    /* the first hex digit of a pending escape */
    uint8_t nws;   /* whitespace held: dropped if the line ends after it (rule 3) */
    uint8_t ws[MX_MIME_QP_WS];
    uint64_t bad; /* malformed escapes */
};

/* Decodes the content of (a piece of) one encoded line, without its line
 * end, into `out` (room for len + MX_MIME_QP_WS + 2 bytes). When `line_end`
 * the piece ends the line: trailing whitespace is dropped (rule 3) and a
 * final '=' is a soft break, reported in *soft. The result does not depend
 * on how a line is cut into pieces. Returns the bytes written. */
size_t mx_mime_qp_feed(struct mx_mime_qp *st, const uint8_t *in, size_t len, bool line_end, bool *soft, uint8_t *out);

/* Converts `in` from `charset` to UTF-8 into `o` with iconv; bytes that do not
 * convert become U+FFFD. Returns false (and writes nothing) when iconv does
 * not know the charset. "us-ascii" and "utf-8" are copied as they are. */
bool mx_mime_to_utf8(struct mx_slice charset, struct mx_slice in, struct mx_mime_out *o);

/* Whether `s` is valid UTF-8 (RFC 3629): no overlong forms, no surrogates,
 * nothing past U+10FFFF. ASCII is. */
bool mx_mime_utf8_valid(struct mx_slice s);

/* The charset to read raw 8-bit header text in (RFC 6532 allows only UTF-8
 * there; RFC 5322 §3.2.5 none): `declared`, the charset its entity's
 * Content-Type names, when iconv knows it and it leaves ASCII as it is;
 * Windows-1252 when nothing is declared, when the declared one is UTF-8
 * (the text is not, or it would not be asked) or unusable, and for the
 * labels the WHATWG Encoding Standard §4.2 reads as Windows-1252 (US-ASCII,
 * ISO-8859-1 and their aliases), as mail clients do. Writes the name used,
 * lower case, into name[cap] (cap >= 16). */
void mx_mime_header_charset(struct mx_slice declared, char *name, size_t cap);

/* Converts raw header text `in` from `charset` (a name that
 * mx_mime_header_charset gave) to UTF-8 into `o`. A byte the charset does
 * not define (0x81 in Windows-1252) becomes the text \xNN, the escape the
 * records use for invalid UTF-8. ASCII, encoded words included, comes
 * through as it is. Returns false (nothing written) when iconv does not
 * know the charset. */
bool mx_mime_raw_to_utf8(const char *charset, struct mx_slice in, struct mx_mime_out *o);

/* Decodes RFC 2047 encoded words (B and Q) in a header text into `o` as
 * UTF-8; whitespace between adjacent encoded words is dropped (RFC 2047 §6.2).
 * A word in an unknown charset, or malformed, stays as it is and counts in
 * *unknown_charset or *bad. */
void mx_mime_decode_words(struct mx_slice in, struct mx_mime_out *o, unsigned *unknown_charset, unsigned *bad);

/* The value of parameter `name` (lower case) of a Content-Type or
 * Content-Disposition field body (RFC 2045 §5.1), decoded to UTF-8: RFC 2231
 * continuations (name*0, name*1*...) with charset and language, else a plain
 * or quoted value with RFC 2047 words decoded. Returns false when absent. */
bool mx_mime_param(struct mx_slice field, const char *name, struct mx_mime_out *o, unsigned *unknown_charset);

/* The first token of a field body ("multipart/mixed", "base64"), lower-cased
 * into `o`; comments and whitespace skipped. */
void mx_mime_token(struct mx_slice field, struct mx_mime_out *o);

/* Whether a header line starts with a field name and a colon (RFC 5322
 * §2.2: printable characters but ':'; §4.5.4 whitespace before the colon). */
bool mx_mime_field_start(struct mx_slice line);

/* Case-insensitive equality of a slice and a C literal. */
bool mx_mime_eq(struct mx_slice s, const char *lit);

#endif
