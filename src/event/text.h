/* text.h - text helpers for records and reporters: valid UTF-8, escaped control characters, times. */
#ifndef MX_TEXT_H
#define MX_TEXT_H

#include "core/mx.h"

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

/* Writes valid UTF-8 text with every control character (C0, DEL, C1) shown
 * as \xNN or \u00NN, so that no byte from the wire drives a terminal. */
void mx_fput_escaped(FILE *out, struct mx_slice utf8);

/* Formats t as ISO 8601 UTC with microseconds into buf (>= 32 bytes). */
void mx_time_iso(mx_time_t t, char *buf, size_t len);

#endif
