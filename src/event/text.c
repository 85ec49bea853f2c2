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

void mx_fput_escaped(FILE *out, struct mx_slice s)
{
    const uint8_t *p = s.ptr;
    size_t n = s.len;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
        } else if (c == 0xC2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F) {
            fprintf(out, "\\u%04x", p[i + 1]); /* C1 control, U+0080..U+009F */
            i++;
        } else {
            fputc(c, out);
        }
    }
}
