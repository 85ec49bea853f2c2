/* text.c - text helpers for records and reporters: UTF-8 made valid (RFC 3629), control
 * characters escaped for terminals, ISO 8601 times. */
#include "event/text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* RFC 3629 §4: the length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

size_t mx_utf8_sanitize(struct mx_slice s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i = 0;
    while (i < s.len) {
        size_t n = utf8_seq_len(s.ptr + i, s.len - i);
        if (n) {
            if (o + n > cap)
                break;
            memcpy(out + o, s.ptr + i, n);
            o += n;
            i += n;
        } else {
            if (o + 4 > cap)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s.ptr[i] >> 4];
            out[o++] = hex[s.ptr[i] & 15];
            i++;
        }
    }
    return o;
}

void mx_time_iso(mx_time_t t, char *buf, size_t len)
{
    /* The date and time of the last second formatted: records come in
     * time order, so gmtime and strftime run about once a second. */
    static _Thread_local time_t last_sec = (time_t)-1;
    static _Thread_local char base[24];
    time_t sec = (time_t)(t / MX_NS_PER_SEC);
    long us = (long)((t % MX_NS_PER_SEC) / 1000);
    if (us < 0) {
        us += 1000000;
        sec--;
    }
    if (sec != last_sec || !base[0]) {
        struct tm tm;
        if (!gmtime_r(&sec, &tm) || strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
            base[0] = 0;
            snprintf(buf, len, "invalid");
            return;
        }
        last_sec = sec;
    }
    size_t b = strlen(base);
    if (len < b + 9) { /* callers give 32 bytes or more */
        if (len)
            buf[0] = 0;
        return;
    }
    memcpy(buf, base, b);
    buf[b] = '.';
    for (int i = 6; i >= 1; i--, us /= 10)
        buf[b + (size_t)i] = (char)('0' + us % 10);
    buf[b + 7] = 'Z';
    buf[b + 8] = 0;
}

size_t mx_escape_char(const uint8_t *p, size_t n, char rep[MX_ESC_MAX], size_t *len)
{
    size_t k = utf8_seq_len(p, n);
    *len = k ? k : 1;
    if (!k || (k == 1 && (p[0] < 0x20 || p[0] == 0x7f))) {
        snprintf(rep, MX_ESC_MAX, "\\x%02x", p[0]);
        return 4;
    }
    uint32_t cp = k == 1 ? p[0] : (uint32_t)(p[0] & (0x7F >> k));
    for (size_t i = 1; i < k; i++)
        cp = cp << 6 | (p[i] & 0x3F);
    if ((cp >= 0x80 && cp <= 0x9F) || mx_is_bidi_control(cp)) {
        snprintf(rep, MX_ESC_MAX, "\\u%04x", (unsigned)cp);
        return 6;
    }
    return 0;
}

void mx_fput_escaped(FILE *out, struct mx_slice s)
{
    size_t run = 0; /* bytes shown as they are, not yet written */
    char rep[MX_ESC_MAX];
    for (size_t i = 0, len; i < s.len; i += len) {
        size_t r = mx_escape_char(s.ptr + i, s.len - i, rep, &len);
        if (!r) {
            run += len;
            continue;
        }
        fwrite(s.ptr + i - run, 1, run, out);
        run = 0;
        fputs(rep, out);
    }
    fwrite(s.ptr + s.len - run, 1, run, out);
}

size_t mx_text_escape(const char *s, char *out, size_t cap)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), o = 0;
    char rep[MX_ESC_MAX];
    for (size_t i = 0, len; i < n; i += len) {
        size_t r = mx_escape_char(p + i, n - i, rep, &len);
        const char *from = r ? rep : s + i;
        size_t w = r ? r : len;
        if (o + w >= cap)
            break;
        memcpy(out + o, from, w);
        o += w;
    }
    out[o] = '\0';
    return o;
}
