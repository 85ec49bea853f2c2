/* test_mime.c - the base64 and quoted-printable decoders' fast paths
 * (dissectors/message/mime.c) give the bytes, counts and states of the
 * careful character-by-character decoding, whatever the input and however
 * it is cut into pieces. The references below are that careful decoding,
 * written plainly (RFC 2045 §6.7, §6.8). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dissectors/message/mime.h"
#include "check_main.h"

/* ---- references: one character at a time ---- */

static int ref_b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static size_t ref_b64(struct mx_mime_b64 *st, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
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
            continue;
        }
        int v = ref_b64_value(c);
        if (v < 0) {
            st->bad++;
            continue;
        }
        st->padded = false;
        st->acc = (st->acc << 6) | (uint32_t)v;
        if (++st->n == 4) {
            out[w++] = (uint8_t)(st->acc >> 16);
            out[w++] = (uint8_t)(st->acc >> 8);
            out[w++] = (uint8_t)st->acc;
            st->n = 0;
            st->acc = 0;
        }
    }
    return w;
}

static int ref_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static size_t ref_qp_ws(struct mx_mime_qp *st, uint8_t *out)
{
    size_t n = st->nws;
    memcpy(out, st->ws, n);
    st->nws = 0;
    return n;
}

static size_t ref_qp(struct mx_mime_qp *st, const uint8_t *in, size_t len, bool line_end, bool *soft, uint8_t *out)
{
    size_t w = 0;
    *soft = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        bool ws = c == ' ' || c == '\t';
        if (st->pend == 2) {
            int lo = ref_hex(c);
            st->pend = 0;
            if (lo >= 0) {
                out[w++] = (uint8_t)(ref_hex(st->hi) << 4 | lo);
                continue;
            }
            st->bad++;
            out[w++] = '=';
            out[w++] = st->hi;
        } else if (st->pend == 1) {
            if (ws && st->nws < MX_MIME_QP_WS) {
                st->ws[st->nws++] = c;
                continue;
            }
            if (!st->nws && ref_hex(c) >= 0) {
                st->hi = c;
                st->pend = 2;
                continue;
            }
            st->bad++;
            out[w++] = '=';
            w += ref_qp_ws(st, out + w);
            st->pend = 0;
        }
        if (ws) {
            if (st->nws == MX_MIME_QP_WS)
                w += ref_qp_ws(st, out + w);
            st->ws[st->nws++] = c;
            continue;
        }
        w += ref_qp_ws(st, out + w);
        if (c == '=')
            st->pend = 1;
        else
            out[w++] = c;
    }
    if (line_end) {
        st->nws = 0;
        if (st->pend == 1)
            *soft = true;
        else if (st->pend == 2) {
            st->bad++;
            out[w++] = '=';
            out[w++] = st->hi;
        }
        st->pend = 0;
    }
    return w;
}

/* ---- random inputs ---- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
    return (uint32_t)(rng % n);
}

/* Base64 text: mostly the alphabet in lines of 76 with CRLF, and, at rate
 * 1/`junk`, whitespace, '=', a bare CR or LF, or a byte outside the alphabet. */
static size_t b64_text(uint8_t *b, size_t cap, uint32_t junk)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char odd[] = " \t=\r\n-.*\0\xff\x80";
    size_t n = 0, col = 0;
    while (n + 2 < cap) {
        if (col == 76) {
            b[n++] = '\r', b[n++] = '\n', col = 0;
            continue;
        }
        b[n++] = junk && !rnd(junk) ? (uint8_t)odd[rnd(sizeof(odd) - 1)] : (uint8_t)alpha[rnd(64)];
        col++;
    }
    return n;
}

/* Quoted-printable content: text with spaces, escapes good and bad, '='
 * at ends, runs of trailing whitespace longer than the decoder holds. */
static size_t qp_text(uint8_t *b, size_t cap)
{
    static const char *bits[] = { "word", " ",  "\t",  "=3D", "=e9", "=C3=A9", "=",   "=4", "=G1",
                                  "= ",   "==", "=\t", "x",   "  ",  ".",      "=0a", "=Zz" };
    size_t n = 0;
    while (n + 8 < cap) {
        if (!rnd(40)) {
            size_t k = 1 + rnd(100); /* a long run of whitespace */
            while (k-- && n + 1 < cap)
                b[n++] = rnd(2) ? ' ' : '\t';
            continue;
        }
        const char *s = bits[rnd(sizeof(bits) / sizeof(bits[0]))];
        size_t l = strlen(s);
        memcpy(b + n, s, l);
        n += l;
    }
    return n;
}

START_TEST(b64_fast_path_equals_careful)
{
    static uint8_t in[20000], a[20000], b[20000];
    static const uint32_t junk[] = { 0, 0, 3, 20, 200, 5000 };
    for (int round = 0; round < 600; round++) {
        size_t len = b64_text(in, 1 + rnd(sizeof(in) - 1), junk[round % 6]);
        struct mx_mime_b64 s1 = { 0 }, s2 = { 0 };
        size_t w1 = 0, w2 = 0;
        /* both in the same random pieces (many of a few bytes): the states agree after each */
        for (size_t i = 0; i < len;) {
            size_t k = rnd(3) ? 1 + rnd(9) : 1 + rnd((uint32_t)(len - i));
            if (k > len - i)
                k = len - i;
            w1 += mx_mime_b64_feed(&s1, in + i, k, a + w1);
            w2 += ref_b64(&s2, in + i, k, b + w2);
            ck_assert_int_eq(s1.padded, s2.padded);
            ck_assert_uint_eq(s1.n, s2.n);
            i += k;
        }
        ck_assert_uint_eq(w1, w2);
        ck_assert_int_eq(memcmp(a, b, w1), 0);
        ck_assert_uint_eq(s1.bad, s2.bad);
        ck_assert_uint_eq(s1.n, s2.n);
        ck_assert_uint_eq(s1.acc, s2.acc);
        ck_assert_int_eq(s1.padded, s2.padded);
    }
}
END_TEST

START_TEST(b64_lines)
{
    /* 57 bytes per 76-character line; padding at the end; one junk byte counted */
    static const uint8_t t[] = "TWFu\r\nTWE=\r\nTQ==\r\nTW*Fu\r\n";
    struct mx_mime_b64 st = { 0 };
    uint8_t o[32];
    size_t w = mx_mime_b64_feed(&st, t, sizeof(t) - 1, o);
    ck_assert_uint_eq(w, 9);
    ck_assert_int_eq(memcmp(o, "ManMaMMan", 9), 0);
    ck_assert_uint_eq(st.bad, 1);
    ck_assert_int_eq(mx_base64_value('/'), 63);
    ck_assert_int_eq(mx_base64_value('='), -1);
}
END_TEST

START_TEST(qp_fast_path_equals_careful)
{
    static uint8_t in[4096], a[3 * (4096 + MX_MIME_QP_WS + 2)], b[sizeof(a)];
    for (int round = 0; round < 4000; round++) {
        struct mx_mime_qp s1 = { 0 }, s2 = { 0 };
        size_t w1 = 0, w2 = 0;
        /* a few lines, each cut in random pieces for the fast decoder */
        for (int line = 0; line < 3; line++) {
            size_t len = qp_text(in, 9 + rnd(sizeof(in) - 9));
            bool soft1 = false, soft2 = false;
            for (size_t i = 0; i < len;) {
                size_t k = rnd(2) ? 1 + rnd(7) : 1 + rnd((uint32_t)(len - i));
                if (k > len - i)
                    k = len - i;
                w1 += mx_mime_qp_feed(&s1, in + i, k, i + k == len, &soft1, a + w1);
                i += k;
            }
            w2 += ref_qp(&s2, in, len, true, &soft2, b + w2);
            ck_assert_int_eq(soft1, soft2);
            ck_assert_uint_eq(w1, w2);
        }
        ck_assert_int_eq(memcmp(a, b, w1), 0);
        ck_assert_uint_eq(s1.bad, s2.bad);
    }
}
END_TEST

static Suite *mime_suite(void)
{
    Suite *s = suite_create("mime");
    TCase *t = tcase_create("decoders");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, b64_fast_path_equals_careful);
    tcase_add_test(t, b64_lines);
    tcase_add_test(t, qp_fast_path_equals_careful);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(mime_suite)
