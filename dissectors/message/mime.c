/* mime.c - pure MIME decoders: base64, quoted-printable, RFC 2047 words, RFC 2231 parameters, charsets. */
#include "dissectors/message/mime.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

#define MIME_PARAM_SECTIONS 32 /* RFC 2231 continuations kept per parameter */
#define MIME_PARAM_SEG_CAP 512 /* bytes kept per continuation */
#define MIME_CHARSET_CAP 64    /* longest charset name handed to iconv */

void mx_mime_out_put(struct mx_mime_out *o, const void *s, size_t n)
{
    size_t room = o->cap - o->len;
    if (n > room) {
        n = room;
        o->trunc = true;
    }
    if (n)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool mx_mime_eq(struct mx_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s.ptr[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

/* The base64 alphabet (RFC 4648 §4) as four tables, one per place in a
 * quantum, each sextet already shifted to its place in the 24 bits; a byte
 * outside the alphabet (whitespace, '=', junk) sets bit 24 in every table,
 * so one OR of four lookups decodes a quantum and tells whether all four
 * characters were base64. Built at compile time. */
#define B64_BAD 0x01000000u
#define B64_VAL(c)                                           \
    ((c) >= 'A' && (c) <= 'Z'   ? (uint32_t)((c) - 'A')      \
     : (c) >= 'a' && (c) <= 'z' ? (uint32_t)((c) - 'a' + 26) \
     : (c) >= '0' && (c) <= '9' ? (uint32_t)((c) - '0' + 52) \
     : (c) == '+'               ? 62u                        \
     : (c) == '/'               ? 63u                        \
                                : B64_BAD)
#define B64_AT(c, sh) (B64_VAL(c) == B64_BAD ? B64_BAD : B64_VAL(c) << (sh))
#define B64_P0(c) B64_AT(c, 18)
#define B64_P1(c) B64_AT(c, 12)
#define B64_P2(c) B64_AT(c, 6)
#define B64_P3(c) B64_AT(c, 0)
#define B64_R4(m, b) m(b), m((b) + 1), m((b) + 2), m((b) + 3)
#define B64_R16(m, b) B64_R4(m, b), B64_R4(m, (b) + 4), B64_R4(m, (b) + 8), B64_R4(m, (b) + 12)
#define B64_R64(m, b) B64_R16(m, b), B64_R16(m, (b) + 16), B64_R16(m, (b) + 32), B64_R16(m, (b) + 48)
#define B64_R256(m) B64_R64(m, 0), B64_R64(m, 64), B64_R64(m, 128), B64_R64(m, 192)
static const uint32_t b64_p0[256] = { B64_R256(B64_P0) };
static const uint32_t b64_p1[256] = { B64_R256(B64_P1) };
static const uint32_t b64_p2[256] = { B64_R256(B64_P2) };
static const uint32_t b64_p3[256] = { B64_R256(B64_P3) };

static inline uint32_t b64_quantum(const uint8_t *p)
{
    return b64_p0[p[0]] | b64_p1[p[1]] | b64_p2[p[2]] | b64_p3[p[3]];
}

static inline void b64_put3(uint8_t *o, uint32_t x)
{
    o[0] = (uint8_t)(x >> 16);
    o[1] = (uint8_t)(x >> 8);
    o[2] = (uint8_t)x;
}

/* One character the careful way: whitespace skipped, '=' ends the quantum,
 * junk counted. Returns the bytes written to out. */
static size_t b64_step(struct mx_mime_b64 *st, uint8_t c, uint8_t *out)
{
    size_t w = 0;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
        return 0;
    if (c == '=') {
        /* Padding ends the quantum: flush what the pending sextets hold. */
        if (st->n == 2)
            out[w++] = (uint8_t)(st->acc >> 4);
        else if (st->n == 3) {
            out[w++] = (uint8_t)(st->acc >> 10);
            out[w++] = (uint8_t)(st->acc >> 2);
        } else if (st->n == 1)
            st->bad++;
        st->n = 0;
        st->acc = 0;
        st->padded = true;
        return w;
    }
    uint32_t v = b64_p3[c];
    if (v == B64_BAD) {
        st->bad++;
        return 0;
    }
    st->padded = false;
    st->acc = (st->acc << 6) | v;
    if (++st->n == 4) {
        b64_put3(out, st->acc);
        w = 3;
        st->n = 0;
        st->acc = 0;
    }
    return w;
}

/* RFC 2045 §6.8: 4 characters of 6 bits give 3 bytes; '=' pads the last quantum.
 * Whole quanta of alphabet characters (the bulk of a 76-character line) go
 * four at a time through the tables; line ends, padding and junk take the
 * careful path one character at a time, which gives the same bytes. */
size_t mx_mime_b64_feed(struct mx_mime_b64 *st, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t w = 0, i = 0;
    while (i < len) {
        if (st->n == 0) {
            size_t i0 = i;
            while (len - i >= 8) {
                uint32_t x = b64_quantum(in + i), y = b64_quantum(in + i + 4);
                if ((x | y) & B64_BAD)
                    break;
                b64_put3(out + w, x);
                b64_put3(out + w + 3, y);
                w += 6;
                i += 8;
            }
            while (len - i >= 4) {
                uint32_t x = b64_quantum(in + i);
                if (x & B64_BAD)
                    break;
                b64_put3(out + w, x);
                w += 3;
                i += 4;
            }
            if (i != i0)
                st->padded = false;
            if (i == len)
                break;
        }
        w += b64_step(st, in[i++], out + w);
    }
    return w;
}

int mx_base64_value(uint8_t c)
{
    return b64_p3[c] == B64_BAD ? -1 : (int)b64_p3[c];
}

void mx_mime_b64_end(struct mx_mime_b64 *st)
{
    if (st->n == 1)
        st->bad++;
    st->n = 0;
    st->acc = 0;
}

/* RFC 2045 §6.7: "=XX" escapes, soft line breaks ("=" at the end of a line),
 * trailing whitespace removed. A malformed escape is kept literally and counted. */
static size_t qp_flush_ws(struct mx_mime_qp *st, uint8_t *out)
{
    size_t n = st->nws;
    memcpy(out, st->ws, n);
    st->nws = 0;
    return n;
}

/* The bulk of a piece with nothing pending: literal runs copied (long ones
 * found with memchr and copied whole), "=XX" escapes decoded in place, up to the piece's
 * trailing whitespace (which only the line end decides) or to an '=' that
 * is not followed by two hex digits here. Returns the bytes of `in` taken;
 * their output is what the careful loop would give. */
static size_t qp_bulk(const uint8_t *in, size_t len, uint8_t *out, size_t *w)
{
    size_t e = len, i = 0, o = *w;
    while (e && (in[e - 1] == ' ' || in[e - 1] == '\t'))
        e--;
    while (i < e) {
        /* Text other than English has an escape every few bytes: the next
         * 16 are looked at here, memchr only takes longer runs. */
        size_t lim = e - i > 16 ? i + 16 : e;
        while (i < lim && in[i] != '=')
            out[o++] = in[i++];
        if (i == lim && i < e) {
            const uint8_t *q = memchr(in + i, '=', e - i);
            size_t run = q ? (size_t)(q - (in + i)) : e - i;
            memcpy(out + o, in + i, run);
            o += run;
            i += run;
        }
        if (i >= e)
            break;
        int hi = len - i > 2 ? mx_hex_value(in[i + 1]) : -1, lo = hi >= 0 ? mx_hex_value(in[i + 2]) : -1;
        if (lo < 0)
            break;
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 3;
    }
    *w = o;
    return i;
}

size_t mx_mime_qp_feed(struct mx_mime_qp *st, const uint8_t *in, size_t len, bool line_end, bool *soft, uint8_t *out)
{
    size_t w = 0, i0 = 0;
    if (soft)
        *soft = false;
    if (!st->pend && !st->nws && len)
        i0 = qp_bulk(in, len, out, &w);
    for (size_t i = i0; i < len; i++) {
        uint8_t c = in[i];
        bool ws = c == ' ' || c == '\t';
        if (st->pend == 2) {
            int lo = mx_hex_value(c);
            st->pend = 0;
            if (lo >= 0) {
                out[w++] = (uint8_t)(mx_hex_value(st->hi) << 4 | lo);
                continue;
            }
            st->bad++;
            out[w++] = '=';
            out[w++] = st->hi;
            /* c is text: fall through */
        } else if (st->pend == 1) {
            if (ws && st->nws < MX_MIME_QP_WS) {
                st->ws[st->nws++] = c; /* "=" then whitespace: a soft break if the line ends */
                continue;
            }
            if (!st->nws && mx_hex_value(c) >= 0) {
                st->hi = c;
                st->pend = 2;
                continue;
            }
            st->bad++;
            out[w++] = '=';
            w += qp_flush_ws(st, out + w);
            st->pend = 0;
        }
        if (ws) {
            if (st->nws == MX_MIME_QP_WS)
                w += qp_flush_ws(st, out + w);
            st->ws[st->nws++] = c;
            continue;
        }
        w += qp_flush_ws(st, out + w);
        if (c == '=')
            st->pend = 1;
        else
            out[w++] = c;
    }
    if (line_end) {
        st->nws = 0; /* rule 3: trailing whitespace is not content */
        if (st->pend == 1) {
            if (soft)
                *soft = true; /* "=" then the line end: a soft break */
        } else if (st->pend == 2) {
            st->bad++;
            out[w++] = '=';
            out[w++] = st->hi;
        }
        st->pend = 0;
    }
    return w;
}

/* A charset name safe to hand to iconv_open: letters, digits and "-_.:()"
 * only (no '/' that would select iconv options), at most MIME_CHARSET_CAP-1
 * bytes; an RFC 2231 §5 "*language" suffix dropped. */
static bool charset_name(struct mx_slice cs, char *buf)
{
    size_t n = 0;
    for (size_t i = 0; i < cs.len && cs.ptr[i] != '*'; i++) {
        uint8_t c = cs.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.' || c == ':' || c == '(' || c == ')';
        if (!ok || n + 1 >= MIME_CHARSET_CAP)
            return false;
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return n > 0;
}

/* `in`, in charset `cs` (a name iconv knows), converted to UTF-8 into o (glibc's
 * iconv: a well-kept converter for every charset mail declares). A byte the
 * charset does not explain becomes U+FFFD, or with `escape` the four
 * characters \xNN the output layer writes for such a byte; a body's bytes
 * (escape off) are cut where the output is full, a header's where a byte no
 * longer fits. False when iconv does not know cs. */
static bool iconv_utf8(const char *cs, struct mx_slice in, struct mx_mime_out *o, bool escape)
{
    static const char digits[] = "0123456789abcdef";
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1)
        return false;
    char *ip = (char *)(uintptr_t)in.ptr;
    size_t il = in.len;
    while (il > 0 && (escape ? !o->trunc : o->len < o->cap)) {
        char *op = (char *)o->p + o->len;
        size_t ol = o->cap - o->len;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        o->len = (size_t)((uint8_t *)op - o->p);
        if (r != (size_t)-1)
            break;
        if (errno == E2BIG) {
            o->trunc = true;
            break;
        }
        /* EILSEQ / EINVAL: a byte that does not convert */
        uint8_t b = (uint8_t)*ip;
        char esc[4] = { '\\', 'x', digits[b >> 4], digits[b & 15] };
        if (escape) {
            mx_mime_out_put(o, esc, sizeof(esc));
            iconv(cd, NULL, NULL, NULL, NULL);
        } else {
            mx_mime_out_put(o, "\xef\xbf\xbd", 3);
        }
        ip++;
        il--;
    }
    if (!escape) {
        if (il > 0)
            o->trunc = true;
        iconv(cd, NULL, NULL, NULL, NULL);
    }
    iconv_close(cd);
    return true;
}

bool mx_mime_to_utf8(struct mx_slice charset, struct mx_slice in, struct mx_mime_out *o)
{
    char cs[MIME_CHARSET_CAP];
    if (!charset_name(charset, cs))
        return false;
    if (mx_mime_eq(mx_slice_make(cs, strlen(cs)), "utf-8") || mx_mime_eq(mx_slice_make(cs, strlen(cs)), "us-ascii") ||
        mx_mime_eq(mx_slice_make(cs, strlen(cs)), "utf8") || mx_mime_eq(mx_slice_make(cs, strlen(cs)), "ascii")) {
        mx_mime_out_put(o, in.ptr, in.len);
        return true;
    }
    return iconv_utf8(cs, in, o, false);
}

bool mx_mime_utf8_valid(struct mx_slice s)
{
    /* RFC 3629 §4: the well-formed byte sequences */
    size_t i = 0;
    while (i < s.len) {
        uint8_t c = s.ptr[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* past U+10FFFF */
        } else
            return false;
        if (s.len - i <= n)
            return false;
        if (s.ptr[i + 1] < lo || s.ptr[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s.ptr[i + k] & 0xC0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

/* Labels read as another charset by the WHATWG Encoding Standard §4.2, as
 * browsers and mail clients read them: what the text really is. */
static const char *const whatwg_labels[][2] = {
    { "us-ascii", "windows-1252" },
    { "ascii", "windows-1252" },
    { "ansi_x3.4-1968", "windows-1252" },
    { "iso-8859-1", "windows-1252" },
    { "iso8859-1", "windows-1252" },
    { "iso88591", "windows-1252" },
    { "iso_8859-1", "windows-1252" },
    { "latin1", "windows-1252" },
    { "l1", "windows-1252" },
    { "cp819", "windows-1252" },
    { "ibm819", "windows-1252" },
    { "iso-ir-100", "windows-1252" },
    { "cp1252", "windows-1252" },
    { "x-cp1252", "windows-1252" },
    { "iso-8859-9", "windows-1254" },
    { "latin5", "windows-1254" },
    { "iso-8859-11", "windows-874" },
    { "tis-620", "windows-874" },
    { "gb2312", "gbk" },
    { "ks_c_5601-1987", "euc-kr" },
};

/* Whether iconv knows `cs` and it leaves printable ASCII and TAB as they
 * are (not UTF-16, UTF-7, EBCDIC...): the ASCII of header text, encoded
 * words included, must come through. */
static bool ascii_compatible(const char *cs)
{
    char probe[96], got[96 * 4];
    size_t n = 0;
    probe[n++] = '\t';
    for (int c = ' '; c < 127; c++)
        probe[n++] = (char)c;
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1)
        return false;
    char *ip = probe, *op = got;
    size_t il = n, ol = sizeof(got);
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    iconv_close(cd);
    return r != (size_t)-1 && il == 0 && (size_t)(op - got) == n && !memcmp(got, probe, n);
}

void mx_mime_header_charset(struct mx_slice declared, char *name, size_t cap)
{
    char cs[MIME_CHARSET_CAP];
    const char *use = "windows-1252";
    if (charset_name(declared, cs)) {
        for (size_t i = 0; cs[i]; i++)
            cs[i] = (char)lower((unsigned char)cs[i]);
        const char *mapped = cs;
        for (size_t i = 0; i < sizeof(whatwg_labels) / sizeof(whatwg_labels[0]); i++)
            if (!strcmp(cs, whatwg_labels[i][0]))
                mapped = whatwg_labels[i][1];
        bool utf8 = !strcmp(mapped, "utf-8") || !strcmp(mapped, "utf8");
        if (!utf8 && ascii_compatible(mapped))
            use = mapped;
    }
    size_t n = strlen(use);
    if (n >= cap)
        n = cap - 1;
    memcpy(name, use, n);
    name[n] = '\0';
}

bool mx_mime_raw_to_utf8(const char *charset, struct mx_slice in, struct mx_mime_out *o)
{
    return iconv_utf8(charset, in, o, true);
}

/* One encoded word "=?charset?X?text?=" at in[0..]: its length, or 0 if none
 * starts there. RFC 2047 §2: no whitespace inside, at most 75 characters
 * (longer ones tolerated up to 1024). */
static size_t word_len(struct mx_slice in, struct mx_slice *cs, uint8_t *enc, struct mx_slice *text)
{
    if (in.len < 8 || in.ptr[0] != '=' || in.ptr[1] != '?')
        return 0;
    size_t lim = in.len < 1024 ? in.len : 1024;
    size_t i = 2;
    while (i < lim && in.ptr[i] != '?' && in.ptr[i] > ' ')
        i++;
    if (i + 3 >= lim || in.ptr[i] != '?' || i == 2)
        return 0;
    *cs = mx_slice_make(in.ptr + 2, i - 2);
    uint8_t e = (uint8_t)lower(in.ptr[i + 1]);
    if ((e != 'b' && e != 'q') || in.ptr[i + 2] != '?')
        return 0;
    *enc = e;
    size_t t = i + 3, j = t;
    while (j + 1 < lim && !(in.ptr[j] == '?' && in.ptr[j + 1] == '=') && in.ptr[j] > ' ')
        j++;
    if (j + 1 >= lim || in.ptr[j] != '?' || in.ptr[j + 1] != '=')
        return 0;
    *text = mx_slice_make(in.ptr + t, j - t);
    return j + 2;
}

void mx_mime_decode_words(struct mx_slice in, struct mx_mime_out *o, unsigned *unknown_charset, unsigned *bad)
{
    uint8_t raw[1024];
    size_t i = 0, ws_start = 0;
    bool after_word = false;
    while (i < in.len) {
        struct mx_slice cs, text;
        uint8_t enc = 0;
        size_t wl = word_len(mx_slice_make(in.ptr + i, in.len - i), &cs, &enc, &text);
        if (wl) {
            size_t rl = 0;
            if (enc == 'b') {
                struct mx_mime_b64 b = { 0 };
                uint8_t tmp[1024 + 4];
                rl = mx_mime_b64_feed(&b, text.ptr, text.len, tmp);
                mx_mime_b64_end(&b);
                if (b.bad && bad)
                    (*bad)++;
                memcpy(raw, tmp, rl > sizeof(raw) ? sizeof(raw) : rl);
                if (rl > sizeof(raw))
                    rl = sizeof(raw);
            } else {
                /* RFC 2047 §4.2: "_" is a space, "=XX" a byte. */
                for (size_t k = 0; k < text.len && rl < sizeof(raw); k++) {
                    uint8_t c = text.ptr[k];
                    if (c == '_')
                        raw[rl++] = ' ';
                    else if (c == '=' && k + 2 < text.len + 0 && mx_hex_value(text.ptr[k + 1]) >= 0 &&
                             mx_hex_value(text.ptr[k + 2]) >= 0) {
                        raw[rl++] = (uint8_t)(mx_hex_value(text.ptr[k + 1]) << 4 | mx_hex_value(text.ptr[k + 2]));
                        k += 2;
                    } else {
                        if (c == '=' && bad)
                            (*bad)++;
                        raw[rl++] = c;
                    }
                }
            }
            size_t mark = o->len;
            if (!after_word && ws_start < i) {
                /* text before this word, kept */
            }
            if (mx_mime_to_utf8(cs, mx_slice_make(raw, rl), o)) {
                after_word = true;
            } else {
                o->len = mark;
                if (unknown_charset)
                    (*unknown_charset)++;
                mx_mime_out_put(o, in.ptr + i, wl); /* kept as it is */
                after_word = false;
            }
            i += wl;
            ws_start = i;
            continue;
        }
        uint8_t c = in.ptr[i];
        if (after_word && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
            /* Whitespace after a word: dropped if another word follows (§6.2). */
            size_t j = i;
            while (j < in.len && (in.ptr[j] == ' ' || in.ptr[j] == '\t' || in.ptr[j] == '\r' || in.ptr[j] == '\n'))
                j++;
            size_t wl2 = j < in.len ? word_len(mx_slice_make(in.ptr + j, in.len - j), &cs, &enc, &text) : 0;
            if (!wl2)
                mx_mime_out_put(o, in.ptr + i, j - i);
            i = j;
            if (!wl2)
                after_word = false;
            continue;
        }
        after_word = false;
        mx_mime_out_put(o, &c, 1);
        i++;
    }
}

static size_t skip_cfws(struct mx_slice f, size_t i)
{
    for (;;) {
        while (i < f.len && (f.ptr[i] == ' ' || f.ptr[i] == '\t' || f.ptr[i] == '\r' || f.ptr[i] == '\n'))
            i++;
        if (i < f.len && f.ptr[i] == '(') {
            /* RFC 5322 §3.2.2 comment, nested, with quoted pairs */
            int depth = 0;
            while (i < f.len) {
                if (f.ptr[i] == '\\')
                    i++;
                else if (f.ptr[i] == '(')
                    depth++;
                else if (f.ptr[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
                i++;
            }
            continue;
        }
        return i;
    }
}

void mx_mime_token(struct mx_slice field, struct mx_mime_out *o)
{
    size_t i = skip_cfws(field, 0);
    while (i < field.len) {
        uint8_t c = field.ptr[i];
        if (c == ';' || c == ' ' || c == '\t' || c == '(' || c == '\r' || c == '\n' || c < 0x20 || c == '"')
            break;
        uint8_t l = (uint8_t)lower(c);
        mx_mime_out_put(o, &l, 1);
        i++;
    }
}

/* One parameter section (RFC 2231 §3): the value bytes and whether it is
 * extended (percent-encoded, possibly with a charset'language' prefix). */
struct param_seg {
    bool set, ext, trunc; /* trunc: the value was longer than v */
    size_t len;
    uint8_t v[MIME_PARAM_SEG_CAP];
};

static void pct_decode(struct mx_slice s, struct mx_mime_out *o)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '%' && i + 2 < s.len + 0 && mx_hex_value(s.ptr[i + 1]) >= 0 && mx_hex_value(s.ptr[i + 2]) >= 0) {
            c = (uint8_t)(mx_hex_value(s.ptr[i + 1]) << 4 | mx_hex_value(s.ptr[i + 2]));
            i += 2;
        }
        mx_mime_out_put(o, &c, 1);
    }
}

bool mx_mime_param(struct mx_slice f, const char *name, struct mx_mime_out *o, unsigned *unknown_charset)
{
    struct param_seg segs[MIME_PARAM_SECTIONS];
    struct param_seg plain = { 0 };
    bool any_sec = false;
    size_t nlen = strlen(name);
    /* Only the flags: a section's bytes are read only once it is set (this
     * runs for every parameter of every part; the whole array is 17 KiB). */
    for (size_t k = 0; k < MIME_PARAM_SECTIONS; k++)
        segs[k].set = false;
    /* skip the type: up to the first ';' outside quotes */
    size_t i = 0;
    bool q = false;
    while (i < f.len && (q || f.ptr[i] != ';')) {
        if (f.ptr[i] == '"')
            q = !q;
        else if (q && f.ptr[i] == '\\')
            i++;
        i++;
    }
    while (i < f.len) {
        i++; /* the ';' */
        i = skip_cfws(f, i);
        size_t a = i;
        while (i < f.len && f.ptr[i] != '=' && f.ptr[i] != ';' && f.ptr[i] > ' ' && f.ptr[i] != '(')
            i++;
        struct mx_slice attr = mx_slice_make(f.ptr + a, i - a);
        i = skip_cfws(f, i);
        uint8_t val[MIME_PARAM_SEG_CAP];
        struct mx_mime_out v = { val, 0, sizeof(val), false };
        bool has_val = false;
        if (i < f.len && f.ptr[i] == '=') {
            has_val = true;
            i = skip_cfws(f, i + 1);
            if (i < f.len && f.ptr[i] == '"') {
                i++;
                while (i < f.len && f.ptr[i] != '"') {
                    if (f.ptr[i] == '\\' && i + 1 < f.len)
                        i++;
                    mx_mime_out_put(&v, f.ptr + i, 1);
                    i++;
                }
                if (i < f.len)
                    i++;
            } else {
                size_t s = i;
                while (i < f.len && f.ptr[i] != ';' && f.ptr[i] > ' ' && f.ptr[i] != '(')
                    i++;
                mx_mime_out_put(&v, f.ptr + s, i - s);
            }
        }
        /* to the next ';' */
        while (i < f.len && f.ptr[i] != ';') {
            if (f.ptr[i] == '"') {
                i++;
                while (i < f.len && f.ptr[i] != '"')
                    i++;
            }
            if (i < f.len)
                i++;
        }
        if (!has_val || attr.len < nlen)
            continue;
        bool match = true;
        for (size_t k = 0; k < nlen; k++)
            if (lower(attr.ptr[k]) != name[k])
                match = false;
        if (!match)
            continue;
        struct mx_slice rest = mx_slice_make(attr.ptr + nlen, attr.len - nlen);
        struct param_seg *dst = NULL;
        bool ext = false;
        if (rest.len == 0) {
            dst = &plain;
        } else if (rest.ptr[0] == '*') {
            /* RFC 2231 §3-4: name*, name*N, name*N* */
            size_t k = 1;
            unsigned long idx = 0;
            bool digits = false;
            while (k < rest.len && rest.ptr[k] >= '0' && rest.ptr[k] <= '9' && idx < 1000) {
                idx = idx * 10 + (unsigned long)(rest.ptr[k] - '0');
                digits = true;
                k++;
            }
            if (!digits) {
                if (k != rest.len)
                    continue;
                ext = true;
                idx = 0;
            } else if (k < rest.len && rest.ptr[k] == '*' && k + 1 == rest.len)
                ext = true;
            else if (k != rest.len)
                continue;
            if (idx >= MIME_PARAM_SECTIONS)
                continue;
            dst = &segs[idx];
            any_sec = true;
        } else
            continue;
        dst->set = true;
        dst->ext = ext;
        dst->trunc = v.trunc;
        dst->len = v.len;
        memcpy(dst->v, val, v.len);
    }
    if (any_sec && segs[0].set) {
        /* Join the sections in order; the first extended one may carry charset'lang'. */
        uint8_t raw[MIME_PARAM_SECTIONS * 64 + MIME_PARAM_SEG_CAP];
        struct mx_mime_out r = { raw, 0, sizeof(raw), false };
        struct mx_slice cs = { NULL, 0 };
        for (size_t k = 0; k < MIME_PARAM_SECTIONS && segs[k].set; k++) {
            struct mx_slice s = mx_slice_make(segs[k].v, segs[k].len);
            if (segs[k].ext && k == 0) {
                const uint8_t *q1 = memchr(s.ptr, '\'', s.len);
                const uint8_t *q2 = q1 ? memchr(q1 + 1, '\'', s.len - (size_t)(q1 + 1 - s.ptr)) : NULL;
                if (q2) {
                    cs = mx_slice_make(s.ptr, (size_t)(q1 - s.ptr));
                    s = mx_slice_make(q2 + 1, s.len - (size_t)(q2 + 1 - s.ptr));
                }
            }
            if (segs[k].ext)
                pct_decode(s, &r);
            else
                mx_mime_out_put(&r, s.ptr, s.len);
            o->trunc |= segs[k].trunc; /* what the caller gets was cut: it says so */
        }
        o->trunc |= r.trunc;
        if (cs.len) {
            size_t mark = o->len;
            if (!mx_mime_to_utf8(cs, mx_slice_make(raw, r.len), o)) {
                o->len = mark;
                if (unknown_charset)
                    (*unknown_charset)++;
                mx_mime_out_put(o, raw, r.len);
            }
        } else
            mx_mime_out_put(o, raw, r.len);
        return true;
    }
    if (plain.set) {
        mx_mime_decode_words(mx_slice_make(plain.v, plain.len), o, unknown_charset, NULL);
        o->trunc |= plain.trunc;
        return true;
    }
    return false;
}

/* mime.h: RFC 5322 §2.2 field name, then optional whitespace (§4.5.4), then ':'. */
bool mx_mime_field_start(struct mx_slice s)
{
    size_t i = 0;
    while (i < s.len && s.ptr[i] > ' ' && s.ptr[i] < 127 && s.ptr[i] != ':')
        i++;
    if (i == 0)
        return false;
    while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\t'))
        i++;
    return i < s.len && s.ptr[i] == ':';
}
