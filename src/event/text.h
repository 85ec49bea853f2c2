/* text.h - text helpers for records and reporters: valid UTF-8, escaped control characters, times. */
#ifndef MX_TEXT_H
#define MX_TEXT_H

#include "core/mx.h"

#include <stdbool.h>
#include <stdio.h>

/* The length of the longest prefix of p[0..n) that does not end inside a
 * UTF-8 sequence (RFC 3629): where to cut valid text so it stays valid. */
static inline size_t mx_utf8_cut(const uint8_t *p, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && (p[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n - back;
    uint8_t lead = p[i - 1];
    size_t need = lead < 0x80             ? 1
                  : (lead & 0xE0) == 0xC0 ? 2
                  : (lead & 0xF0) == 0xE0 ? 3
                  : (lead & 0xF8) == 0xF0 ? 4
                                          : 1;
    return back + 1 >= need ? n : i - 1;
}

/* Copies record text (valid UTF-8) into dst[cap] as a C string, cut short
 * at a character boundary when it does not fit. */
static inline void mx_text_copy(char *dst, size_t cap, struct mx_slice s)
{
    size_t n = s.len < cap - 1 ? s.len : mx_utf8_cut(s.ptr, cap - 1);
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)s.ptr[i];
    dst[n] = '\0';
}

/* Appends `s` to `out` (capacity `cap`, returns bytes written, never more
 * than cap) as valid UTF-8, writing each invalid byte as the text \xNN. */
size_t mx_utf8_sanitize(struct mx_slice s, char *out, size_t cap);

/* Unicode TR#9 §2: the directional formatting characters, which reorder
 * the text shown around them: the marks (U+061C ALM, U+200E LRM, U+200F
 * RLM), embeddings and overrides (U+202A-U+202E) and isolates
 * (U+2066-U+2069). */
static inline bool mx_is_bidi_control(uint32_t cp)
{
    return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* The room an escape of one character takes, with its NUL. */
#define MX_ESC_MAX 8

/* How the character at p[0..n) (n > 0) is shown to people, the one rule
 * every view follows: an invalid UTF-8 byte (RFC 3629) and a C0 control or
 * DEL as \xNN, a C1 control as \u00NN, a bidirectional control as \uNNNN;
 * anything else as it is. Sets *len to the bytes the character takes and
 * returns the length of its escape written to rep (NUL-terminated), or 0
 * when it is shown as it is. */
size_t mx_escape_char(const uint8_t *p, size_t n, char rep[MX_ESC_MAX], size_t *len);

/* Writes any bytes (wire text, a file name) escaped by mx_escape_char, so
 * that no byte drives a terminal or reorders the line it is on. */
void mx_fput_escaped(FILE *out, struct mx_slice s);

/* The same into out[cap] (cap > 0) as a C string, cut at a character
 * boundary when it does not fit; returns its length. For a name in a
 * message: mx_text_escape(name, buf, sizeof(buf)). */
size_t mx_text_escape(const char *s, char *out, size_t cap);

/* Formats t as ISO 8601 UTC with microseconds into buf (>= 32 bytes). */
void mx_time_iso(mx_time_t t, char *buf, size_t len);

#endif
