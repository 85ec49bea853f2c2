/* line.h - the line reader and small helpers shared by SMTP, POP3 and IMAP:
 * case-insensitive matching of wire bytes, trimming, dot-stuffing, frame spans. */
#ifndef MX_LINEPROTO_H
#define MX_LINEPROTO_H

#include "engine/dissector.h"
#include "core/mx.h"

#include <string.h>

static inline uint8_t mx_upc(uint8_t c)
{
    return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
}

/* Case-insensitive comparison of wire bytes with an upper-case literal. */
static inline bool mx_ieq(const uint8_t *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (mx_upc(p[i]) != (uint8_t)lit[i])
            return false;
    return true;
}

static inline bool mx_iprefix(const uint8_t *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && mx_ieq(p, m, lit);
}

/* One line of a line protocol (RFC 5321 §2.3.8, RFC 1939 §3, RFC 9051
 * §2.2): CRLF ends it; a bare LF ends it too, and is flagged. */
struct mx_line {
    struct mx_slice text; /* without its CR LF; MX_LINE_TOO_LONG: its first `cap` bytes */
    size_t raw;           /* the bytes it takes, its line end included (without one: all of d) */
    bool lf;              /* it ended with LF */
    bool bare_lf;         /* ...without a CR before it */
};

enum mx_line_status {
    MX_LINE_OK,       /* *l is a line */
    MX_LINE_MORE,     /* no line end yet: call again with more bytes */
    MX_LINE_TOO_LONG, /* more than cap bytes before the line end (which may not have come: !l->lf) */
};

/* The line at the start of d. With `end`, no more bytes will come: bytes
 * without a line end are a line. Nothing is copied: l->text points into d. */
static inline enum mx_line_status mx_line_next(struct mx_slice d, size_t cap, bool end, struct mx_line *l)
{
    const uint8_t *lf = memchr(d.ptr, '\n', d.len);
    size_t n = lf ? (size_t)(lf - d.ptr) : d.len; /* before the LF, a CR included */
    l->lf = lf != NULL;
    l->raw = lf ? n + 1 : d.len;
    l->bare_lf = false;
    if (n > cap) {
        l->text = mx_slice_make(d.ptr, cap);
        return MX_LINE_TOO_LONG;
    }
    if (!lf && !end)
        return MX_LINE_MORE;
    bool cr = n && d.ptr[n - 1] == '\r';
    l->bare_lf = lf && !cr;
    l->text = mx_slice_make(d.ptr, cr ? n - 1 : n);
    return MX_LINE_OK;
}

/* The rest of a line cut as too long: the bytes of d up to and including
 * its LF, or all of d when the LF has not come (*lf false). */
static inline size_t mx_line_skip(struct mx_slice d, bool *lf)
{
    const uint8_t *p = memchr(d.ptr, '\n', d.len);
    *lf = p != NULL;
    return p ? (size_t)(p - d.ptr) + 1 : d.len;
}

/* Without leading and trailing spaces and tabs. */
static inline struct mx_slice mx_trim(struct mx_slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
        s.ptr++, s.len--;
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* A byte that may end a command's verb or argument. Servers split command
 * lines on more than the SP the RFCs write (RFC 5321 §4.1.1, RFC 1939 §3,
 * RFC 9051 §9): postfix's smtpd_token skips ISSPACE runs (SP, HTAB, VT, FF,
 * CR) before and between words, Cyrus's pop3d splits AUTH's mechanism from
 * its initial response on isspace, an IMAP atom ends at any CTL (RFC 9051
 * §9 atom-specials; Dovecot's IS_ATOM_SPECIAL_INPUT: c <= 32). A NUL ends a
 * C server's string there (the verb is seen alone); another may split on
 * it: either way what follows may be a secret, so it splits here too. */
static inline bool mx_is_cmd_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\0';
}

/* Without leading and trailing mx_is_cmd_space bytes. */
static inline struct mx_slice mx_trim_cmd(struct mx_slice s)
{
    while (s.len && mx_is_cmd_space(s.ptr[0]))
        s.ptr++, s.len--;
    while (s.len && mx_is_cmd_space(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/* The first word of a command line, split as the servers that accept it
 * split it (mx_is_cmd_space): leading whitespace skipped, the word up to
 * the next whitespace byte, and *rest what follows that one byte (as
 * written: "MAIL FROM:<a>" gives "FROM:<a>").
 * Returns true when the spacing is not the RFCs' one SP (leading
 * whitespace, another byte, or a run): COMMAND_SPACING, since a filter
 * that splits on SP alone reads another command. */
static inline bool mx_split_command(struct mx_slice line, struct mx_slice *word, struct mx_slice *rest)
{
    size_t i = 0, n;
    while (i < line.len && mx_is_cmd_space(line.ptr[i]))
        i++;
    for (n = i; n < line.len && !mx_is_cmd_space(line.ptr[n]);)
        n++;
    *word = mx_slice_make(line.ptr + i, n - i);
    *rest = n < line.len ? mx_slice_make(line.ptr + n + 1, line.len - n - 1) : mx_slice_make(line.ptr + line.len, 0);
    return i > 0 || (n < line.len && line.ptr[n] != ' ') || (rest->len && mx_is_cmd_space(rest->ptr[0]));
}

/* A line of base64 characters (RFC 4648 §4), or "*" (cancel) / "=" (empty). */
static inline bool mx_is_base64_line(struct mx_slice l)
{
    if (l.len == 1 && (l.ptr[0] == '*' || l.ptr[0] == '='))
        return true;
    for (size_t i = 0; i < l.len; i++) {
        uint8_t c = l.ptr[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              c == '='))
            return false;
    }
    return true;
}

/* Dot-stuffed data (RFC 5321 §4.5.2, RFC 1939 §3): lines until "." CRLF, a
 * leading dot removed from every other line that starts with one. */
enum mx_dot_step {
    MX_DOT_DATA,        /* *out holds data bytes (possibly none: a stuffed dot) */
    MX_DOT_END,         /* "." CRLF: the data ended */
    MX_DOT_END_BARE_LF, /* "." LF: ended, by a terminator a strict peer refuses */
    MX_DOT_MORE,        /* nothing decidable yet: call again with more bytes */
};

/* One step over d (non-empty). *bol says whether d starts a line; *consumed
 * is what the step used. With `end`, no more bytes will come. */
static inline enum mx_dot_step mx_dot_step(bool *bol, struct mx_slice d, bool end, size_t *consumed,
                                           struct mx_slice *out)
{
    *out = mx_slice_make(d.ptr, 0);
    *consumed = 0;
    if (*bol && d.ptr[0] == '.') {
        if (d.len >= 3 && d.ptr[1] == '\r' && d.ptr[2] == '\n') {
            *consumed = 3;
            return MX_DOT_END;
        }
        if (d.len >= 2 && d.ptr[1] == '\n') {
            *consumed = 2;
            return MX_DOT_END_BARE_LF;
        }
        if (d.len < 3 && !end && (d.len == 1 || d.ptr[1] == '\r'))
            return MX_DOT_MORE; /* "." "\r" "\n" may still come */
        *bol = false;
        *consumed = 1; /* the stuffed dot */
        return MX_DOT_DATA;
    }
    const uint8_t *lf = memchr(d.ptr, '\n', d.len);
    size_t n = lf ? (size_t)(lf - d.ptr) + 1 : d.len;
    *out = mx_slice_make(d.ptr, n);
    *consumed = n;
    *bol = lf != NULL;
    return MX_DOT_DATA;
}

/* As mx_dot_step, but whole lines at once: the data up to the next line
 * that starts with a dot (the only lines unstuffing touches), found by
 * memchr for '.', which base64 never holds. */
static inline enum mx_dot_step mx_dot_run(bool *bol, struct mx_slice d, bool end, size_t *consumed,
                                          struct mx_slice *out)
{
    if (*bol && d.ptr[0] == '.')
        return mx_dot_step(bol, d, end, consumed, out);
    size_t n = d.len;
    const uint8_t *e = d.ptr + d.len;
    for (const uint8_t *p = d.ptr + 1; p < e && (p = memchr(p, '.', (size_t)(e - p))) != NULL; p++)
        if (p[-1] == '\n') {
            n = (size_t)(p - d.ptr);
            break;
        }
    *out = mx_slice_make(d.ptr, n);
    *consumed = n;
    *bol = d.ptr[n - 1] == '\n';
    return MX_DOT_DATA;
}

/* A bounded copy of wire text (a reply text, an address, a mailbox name):
 * longer text is cut at MX_TEXT bytes, and `wire` keeps its real length so
 * that a record says it was cut and how long it was (mx_ev_text_cut). */
#define MX_TEXT 256
struct mx_text {
    uint16_t len;
    uint32_t wire; /* the text's length on the wire (saturates at UINT32_MAX) */
    uint8_t b[MX_TEXT];
};

static inline uint32_t mx_text_sat(uint64_t a, uint64_t b)
{
    return a + b > UINT32_MAX ? UINT32_MAX : (uint32_t)(a + b);
}

static inline void mx_text_set(struct mx_text *t, struct mx_slice s)
{
    size_t n = s.len < MX_TEXT ? s.len : MX_TEXT;
    memcpy(t->b, s.ptr, n);
    t->len = (uint16_t)n;
    t->wire = mx_text_sat(s.len, 0);
}

/* Appends sep (unless it is 0), then s: a multi-line reply's lines joined
 * by '\n'. Once the text is cut nothing more is kept, only counted. */
static inline void mx_text_append(struct mx_text *t, char sep, struct mx_slice s)
{
    if (sep) {
        if (t->len < MX_TEXT && t->len == t->wire)
            t->b[t->len++] = (uint8_t)sep;
        t->wire = mx_text_sat(t->wire, 1);
    }
    size_t n = s.len;
    if (t->len != t->wire || n > (size_t)(MX_TEXT - t->len))
        n = t->len == t->wire ? (size_t)(MX_TEXT - t->len) : 0; /* once cut, nothing after the cut */
    memcpy(t->b + t->len, s.ptr, n);
    t->len = (uint16_t)(t->len + n);
    t->wire = mx_text_sat(t->wire, s.len);
}

static inline struct mx_slice mx_text_slice(const struct mx_text *t)
{
    return mx_slice_make(t->b, t->len);
}

/* The text as a record field: "key", and "key_len", "key_truncated" when it
 * was cut (mx_ev_wire_cut). key must be a string literal. */
#define mx_ev_text_cut(ev, key, t) mx_ev_wire_cut((ev), key, mx_text_slice(t), (t)->wire)

/* The frames carrying [off, off+len) of dir, and the time of the first. */
static inline void mx_span(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, size_t len, mx_frame_t *a,
                           mx_frame_t *b, mx_time_t *ts)
{
    struct mx_frame_ref fa = mx_ctx_frame_at(ctx, d, off);
    struct mx_frame_ref fb = mx_ctx_frame_at(ctx, d, len ? off + len - 1 : off);
    *a = fa.frame;
    *b = fb.frame;
    if (ts)
        *ts = fa.ts;
}

#endif
