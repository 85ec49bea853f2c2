/* test_proxy.c - Check suite for the PROXY protocol header (dissectors/mail/proxy.c):
 * crafted version 1 and 2 headers, every prefix of each, malformed variants, and
 * whole dialogues behind a header split at every byte through the engine. */
#include "dissectors/mail/proxy.h"
#include "dialogue/harness.h"
#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define SL(lit) mx_slice_make((lit), sizeof(lit) - 1)

static const uint8_t SIG[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* Appends a TLV to b at *n. */
static void tlv(uint8_t *b, size_t *n, uint8_t type, const void *v, size_t len)
{
    b[(*n)++] = type;
    b[(*n)++] = (uint8_t)(len >> 8);
    b[(*n)++] = (uint8_t)len;
    memcpy(b + *n, v, len);
    *n += len;
}

/* A v2 PROXY TCP4 header 192.0.2.7:40000 -> 198.51.100.1:25 with a unique
 * id, an SSL TLV and a CRC32C (computed), into b; returns its length. */
static size_t v2_header(uint8_t *b, bool crc)
{
    size_t n = 16;
    memcpy(b, SIG, 12);
    b[12] = 0x21; /* version 2, PROXY */
    b[13] = 0x11; /* AF_INET, STREAM */
    static const uint8_t addrs[12] = { 192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 25 };
    memcpy(b + n, addrs, 12);
    n += 12;
    tlv(b, &n, 0x05, "uid-1", 5);
    uint8_t ssl[64];
    size_t sn = 5;
    memset(ssl, 0, 5);
    ssl[0] = 1;
    tlv(ssl, &sn, 0x21, "TLSv1.3", 7);
    tlv(b, &n, 0x20, ssl, sn);
    size_t crc_at = n + 3;
    if (crc)
        tlv(b, &n, 0x03, "\0\0\0\0", 4);
    b[14] = (uint8_t)((n - 16) >> 8);
    b[15] = (uint8_t)(n - 16);
    if (crc) {
        uint32_t c = mx_proxy_crc32c(0, b, n);
        b[crc_at] = (uint8_t)(c >> 24);
        b[crc_at + 1] = (uint8_t)(c >> 16);
        b[crc_at + 2] = (uint8_t)(c >> 8);
        b[crc_at + 3] = (uint8_t)c;
    }
    return n;
}

START_TEST(crc32c_known_value)
{
    /* RFC 3720 §B.4: 32 bytes of zeros. */
    static const uint8_t z[32];
    ck_assert_uint_eq(mx_proxy_crc32c(0, z, 32), 0x8A9136AA);
    ck_assert_uint_eq(mx_proxy_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283);
}
END_TEST

START_TEST(v1_tcp4_and_every_prefix)
{
    static const char h1[] = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n";
    size_t hl = sizeof("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n") - 1;
    struct mx_proxy_header h;
    size_t need;
    ck_assert_int_eq(mx_proxy_parse(SL(h1), false, &h, &need), MX_PROXY_OK);
    ck_assert_uint_eq(h.len, hl);
    ck_assert_uint_eq(h.version, 1);
    ck_assert_uint_eq(h.family, 4);
    ck_assert_uint_eq(h.src_port, 40000);
    ck_assert_uint_eq(h.dst_port, 25);
    ck_assert_uint_eq(h.src.b[0], 192);
    ck_assert_uint_eq(h.dst.b[3], 1);
    for (size_t k = 1; k < hl; k++) {
        ck_assert_int_eq(mx_proxy_parse(mx_slice_make(h1, k), false, &h, &need), MX_PROXY_MORE);
        ck_assert_int_ne(mx_proxy_parse(mx_slice_make(h1, k), true, &h, &need), MX_PROXY_OK);
    }
    /* "PROXY" cut before its SP at the end is no header: the protocol's bytes. */
    ck_assert_int_eq(mx_proxy_parse(SL("PROX"), true, &h, &need), MX_PROXY_NO);
    ck_assert_int_eq(mx_proxy_parse(SL("PROXY TCP4 1.2"), true, &h, &need), MX_PROXY_CUT);
}
END_TEST

START_TEST(v1_tcp6_unknown)
{
    struct mx_proxy_header h;
    size_t need;
    ck_assert_int_eq(mx_proxy_parse(SL("PROXY TCP6 2001:db8::1 2001:db8::2 4000 143\r\n"), false, &h, &need),
                     MX_PROXY_OK);
    ck_assert_uint_eq(h.family, 6);
    ck_assert_uint_eq(h.src.b[0], 0x20);
    ck_assert_uint_eq(h.src.b[15], 1);
    ck_assert_int_eq(mx_proxy_parse(SL("PROXY UNKNOWN\r\n"), false, &h, &need), MX_PROXY_OK);
    ck_assert_uint_eq(h.family, 0);
    ck_assert_int_eq(mx_proxy_parse(SL("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), false, &h, &need), MX_PROXY_OK);
}
END_TEST

START_TEST(v1_malformed)
{
    static const char *const bad[] = {
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",   "PROXY TCP4 ::1 ::2 1 2\r\n",
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",   "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 x 2\r\n", "PROXY TCP4 300.2.3.4 5.6.7.8 1 2\r\n",
    };
    struct mx_proxy_header h;
    size_t need;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(mx_proxy_parse(mx_slice_make(bad[i], strlen(bad[i])), false, &h, &need) == MX_PROXY_INVALID, "%s",
                      bad[i]);
        ck_assert_uint_eq(h.len, strlen(bad[i]));
    }
    char longl[200];
    memset(longl, 'a', sizeof(longl));
    memcpy(longl, "PROXY ", 6);
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(longl, sizeof(longl)), false, &h, &need), MX_PROXY_TOO_LONG);
    ck_assert_uint_eq(h.len, MX_PROXY_V1_MAX);
}
END_TEST

START_TEST(v2_tlvs_crc_and_every_prefix)
{
    uint8_t b[256];
    size_t n = v2_header(b, true);
    struct mx_proxy_header h;
    size_t need;
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, n), false, &h, &need), MX_PROXY_OK);
    ck_assert_uint_eq(h.len, n);
    ck_assert_uint_eq(h.version, 2);
    ck_assert(!h.local);
    ck_assert_uint_eq(h.family, 4);
    ck_assert_uint_eq(h.src_port, 40000);
    ck_assert(h.has_crc && h.crc_ok);
    struct mx_slice area = h.tlvs;
    struct mx_proxy_tlv t;
    int types = 0;
    while (mx_proxy_tlv_next(&area, &t))
        types++;
    ck_assert_int_eq(types, 3);
    ck_assert_str_eq(mx_proxy_tlv_name(0x20, false), "ssl");
    ck_assert_str_eq(mx_proxy_tlv_name(0x21, true), "version");
    ck_assert_str_eq(mx_proxy_tlv_name(0xEA, false), "aws");
    ck_assert_str_eq(mx_proxy_tlv_name(0xE3, false), "custom");
    for (size_t k = 1; k < n; k++) {
        ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, k), false, &h, &need), MX_PROXY_MORE);
        ck_assert_uint_ge(need, 1);
        ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, k), true, &h, &need), k < 12 ? MX_PROXY_NO : MX_PROXY_CUT);
    }
    b[n - 1] ^= 1; /* the CRC no longer matches */
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, n), false, &h, &need), MX_PROXY_OK);
    ck_assert(h.has_crc && !h.crc_ok);
}
END_TEST

START_TEST(v2_malformed)
{
    uint8_t b[256];
    struct mx_proxy_header h;
    size_t need, n;
    n = v2_header(b, false);
    b[12] = 0x31; /* version 3 */
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, n), false, &h, &need), MX_PROXY_INVALID);
    n = v2_header(b, false);
    b[12] = 0x22; /* command 2 */
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, n), false, &h, &need), MX_PROXY_INVALID);
    n = v2_header(b, false);
    b[13] = 0x41; /* family 4 */
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, n), false, &h, &need), MX_PROXY_INVALID);
    n = v2_header(b, false);
    b[13] = 0x21; /* INET6 needs 36 bytes of addresses: more than the header has */
    b[14] = 0;
    b[15] = 12;
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, 28), false, &h, &need), MX_PROXY_INVALID);
    ck_assert_uint_eq(h.len, 28);
    n = v2_header(b, false);
    b[28 + 2] = 200; /* the first TLV overruns the header */
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, n), false, &h, &need), MX_PROXY_INVALID);
    /* LOCAL, UNSPEC, no addresses: fine, names no client. */
    memcpy(b, SIG, 12);
    b[12] = 0x20;
    b[13] = 0x00;
    b[14] = b[15] = 0;
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, 16), false, &h, &need), MX_PROXY_OK);
    ck_assert(h.local);
    /* The whole 16-bit length is honoured: 65535 bytes are waited for. */
    b[14] = b[15] = 0xff;
    ck_assert_int_eq(mx_proxy_parse(mx_slice_make(b, 16), false, &h, &need), MX_PROXY_MORE);
    ck_assert_uint_eq(need, 65535);
}
END_TEST

/* ---- Through the engine ---- */

START_TEST(dialogue_v1_every_split)
{
    static const struct mx_turn t[] = {
        { MX_DIR_C2S, "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", 0 },
        { MX_DIR_S2C, "220 mx ESMTP\r\n", 0 },
        { MX_DIR_C2S, "EHLO x\r\n", 0 },
        { MX_DIR_S2C, "250 ok\r\n", 0 },
        { MX_DIR_C2S, "QUIT\r\n", 0 },
        { MX_DIR_S2C, "221 bye\r\n", 0 },
    };
    struct mx_harness_opts o = { 0 };
    ck_assert_uint_eq(mx_harness_split_check(t, 6, &o), SIZE_MAX);
    char *out = mx_harness_run(t, 6, &o, SIZE_MAX, false);
    json_object *p = mx_harness_record(out, "proxy", 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(mx_harness_get(p, "proxy_source"), "192.0.2.7");
    ck_assert_str_eq(mx_harness_get(p, "proxy_source_port"), "40000");
    json_object_put(p);
    json_object *r = mx_harness_record(out, "smtp.reply", 1);
    ck_assert_str_eq(mx_harness_get(r, "answers.command"), "EHLO");
    json_object_put(r);
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(mx_harness_get(s, "proxy.source"), "192.0.2.7");
    json_object_put(s);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    free(out);
}
END_TEST

START_TEST(dialogue_v2_every_split)
{
    static uint8_t hdr[256];
    size_t n = v2_header(hdr, true);
    struct mx_turn t[] = {
        { MX_DIR_C2S, (const char *)hdr, n }, { MX_DIR_S2C, "* OK hi\r\n", 0 },
        { MX_DIR_C2S, "a1 NOOP\r\n", 0 },     { MX_DIR_S2C, "a1 OK done\r\n", 0 },
        { MX_DIR_C2S, "a2 LOGOUT\r\n", 0 },   { MX_DIR_S2C, "* BYE\r\na2 OK bye\r\n", 0 },
    };
    struct mx_harness_opts o = { .server_port = 143 };
    ck_assert_uint_eq(mx_harness_split_check(t, 6, &o), SIZE_MAX);
    char *out = mx_harness_run(t, 6, &o, SIZE_MAX, true);
    json_object *p = mx_harness_record(out, "proxy", 0);
    ck_assert_str_eq(mx_harness_get(p, "proxy_version"), "2");
    ck_assert_str_eq(mx_harness_get(p, "tlvs.0.value"), "uid-1");
    ck_assert_str_eq(mx_harness_get(p, "tlvs.1.tlvs.0.value"), "TLSv1.3");
    ck_assert_str_eq(mx_harness_get(p, "tlvs.2.valid"), "true");
    json_object_put(p);
    json_object *r = mx_harness_record(out, "imap.response", 0);
    ck_assert_str_eq(mx_harness_get(r, "answers.command"), "NOOP");
    json_object_put(r);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    free(out);
}
END_TEST

/* Hostile headers: each a named anomaly, and the dialogue after it read. */
START_TEST(dialogue_anomalies)
{
    static const struct {
        const char *c1, *name;
    } cases[] = {
        { "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "PROXY_HEADER_INVALID" },
        { "PROXY aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
          "PROXY_HEADER_TOO_LONG" },
        { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY_HEADER_MISPLACED" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mx_turn t[] = {
            { MX_DIR_C2S, cases[i].c1, 0 },
            { MX_DIR_S2C, "+OK hi\r\n", 0 },
            { MX_DIR_C2S, "QUIT\r\n", 0 },
            { MX_DIR_S2C, "+OK bye\r\n", 0 },
        };
        struct mx_harness_opts o = { .server_port = 110 };
        ck_assert_uint_eq(mx_harness_split_check(t, 4, &o), SIZE_MAX);
        char *out = mx_harness_run(t, 4, &o, SIZE_MAX, false);
        json_object *a = mx_harness_record(out, "anomaly", 0);
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(mx_harness_get(a, "name"), cases[i].name);
        json_object_put(a);
        json_object *q = mx_harness_record(out, "pop3.command", 0);
        ck_assert_str_eq(mx_harness_get(q, "verb"), i == 2 ? "PROXY" : "QUIT");
        json_object_put(q);
        free(out);
    }
    /* The stream ends inside a header. */
    struct mx_turn cut[] = { { MX_DIR_C2S, "PROXY TCP4 1.2.3.4", 0 } };
    struct mx_harness_opts o = { .server_port = 110 };
    char *out = mx_harness_run(cut, 1, &o, SIZE_MAX, false);
    json_object *a = mx_harness_record(out, "anomaly", 0);
    ck_assert_str_eq(mx_harness_get(a, "name"), "PROXY_HEADER_CUT");
    json_object_put(a);
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, crc32c_known_value);
    tcase_add_test(t, v1_tcp4_and_every_prefix);
    tcase_add_test(t, v1_tcp6_unknown);
    tcase_add_test(t, v1_malformed);
    tcase_add_test(t, v2_tlvs_crc_and_every_prefix);
    tcase_add_test(t, v2_malformed);
    tcase_add_test(t, dialogue_v1_every_split);
    tcase_add_test(t, dialogue_v2_every_split);
    tcase_add_test(t, dialogue_anomalies);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(suite)
