/* test_sasl.c - Check suite for SASL exchanges (dissectors/mail/sasl.c) and base64 decoding. */
#include "dissectors/mail/sasl.h"
#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* A slice over a string literal (no strlen on the bytes under test). */
#define SL(lit) mx_slice_make((lit), sizeof(lit) - 1)

/* ---- Helpers ---- */

/* Copies bytes to a heap block of exactly n bytes, so that ASan catches any
 * read past the end of the caller's slice. The caller frees it. */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);

    ck_assert_ptr_nonnull(c);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

static bool client_n(struct mx_sasl *s, const void *b64, size_t n)
{
    uint8_t *c = exact_copy(b64, n);
    bool r = mx_sasl_client(s, mx_slice_make(c, n));

    free(c);
    return r;
}

static void server_n(struct mx_sasl *s, const void *b64, size_t n)
{
    uint8_t *c = exact_copy(b64, n);

    mx_sasl_server(s, mx_slice_make(c, n));
    free(c);
}

#define CLIENT(s, lit) client_n((s), (lit), sizeof(lit) - 1)
#define SERVER(s, lit) server_n((s), (lit), sizeof(lit) - 1)

static void start(struct mx_sasl *s, const char *mech, size_t n, bool keep)
{
    uint8_t *c = exact_copy(mech, n);

    mx_sasl_start(s, mx_slice_make(c, n), keep);
    free(c);
}

#define START(s, lit, keep) start((s), (lit), sizeof(lit) - 1, (keep))

/* Base64-encodes (RFC 4648 §4, padded) into a heap string; *out_n is its length. */
static char *b64_encode(const void *data, size_t n, size_t *out_n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    size_t len = (n + 2) / 3 * 4, o = 0;
    char *r = malloc(len + 1);

    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        r[o++] = a[(v >> 18) & 63];
        r[o++] = a[(v >> 12) & 63];
        r[o++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
        r[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    r[o] = '\0';
    *out_n = o;
    return r;
}

/* Sends raw bytes as a base64 client line. */
static bool client_raw(struct mx_sasl *s, const void *raw, size_t n)
{
    size_t bn;
    char *b = b64_encode(raw, n, &bn);
    bool r = client_n(s, b, bn);

    free(b);
    return r;
}

static void server_raw(struct mx_sasl *s, const void *raw, size_t n)
{
    size_t bn;
    char *b = b64_encode(raw, n, &bn);

    server_n(s, b, bn);
    free(b);
}

#define CLIENT_RAW(s, lit) client_raw((s), (lit), sizeof(lit) - 1)
#define SERVER_RAW(s, lit) server_raw((s), (lit), sizeof(lit) - 1)

static void assert_bytes(const uint8_t *got, size_t got_len, const char *want, size_t want_len)
{
    ck_assert_uint_eq(got_len, want_len);
    ck_assert_msg(memcmp(got, want, want_len) == 0, "bytes differ: got '%.*s', want '%.*s'", (int)got_len,
                  (const char *)got, (int)want_len, want);
}

#define ASSERT_USER(s, lit)                                             \
    do {                                                                \
        ck_assert((s)->user_known);                                     \
        assert_bytes((s)->user, (s)->user_len, (lit), sizeof(lit) - 1); \
    } while (0)
#define ASSERT_AUTHZID(s, lit) assert_bytes((s)->authzid, (s)->authzid_len, (lit), sizeof(lit) - 1)
#define ASSERT_SECRET(s, lit) assert_bytes((s)->secret, (s)->secret_len, (lit), sizeof(lit) - 1)

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

/* ---- Base64 ---- */

static bool dec(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t *c = exact_copy(in, n);
    bool r = mx_base64_decode(mx_slice_make(c, n), out, cap, out_len);

    free(c);
    return r;
}

#define DEC_OK(lit, want)                                                                     \
    do {                                                                                      \
        uint8_t o_[64];                                                                       \
        size_t n_ = 99;                                                                       \
        ck_assert_msg(dec((lit), sizeof(lit) - 1, o_, sizeof o_, &n_), "decode '%s'", (lit)); \
        assert_bytes(o_, n_, (want), sizeof(want) - 1);                                       \
    } while (0)

#define DEC_BAD(lit)                                                                             \
    do {                                                                                         \
        uint8_t o_[64];                                                                          \
        size_t n_ = 99;                                                                          \
        ck_assert_msg(!dec((lit), sizeof(lit) - 1, o_, sizeof o_, &n_), "accepted '%s'", (lit)); \
        ck_assert_uint_eq(n_, 0);                                                                \
    } while (0)

START_TEST(test_b64_valid)
{
    uint8_t o[4];
    size_t n = 99;

    /* RFC 4648 §10 test vectors, padded and unpadded */
    ck_assert(mx_base64_decode(mx_slice_make(NULL, 0), NULL, 0, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert(mx_base64_decode(mx_slice_make(NULL, 0), o, sizeof o, &n));
    ck_assert_uint_eq(n, 0);
    DEC_OK("Zg==", "f");
    DEC_OK("Zm8=", "fo");
    DEC_OK("Zm9v", "foo");
    DEC_OK("Zm9vYg==", "foob");
    DEC_OK("Zm9vYmE=", "fooba");
    DEC_OK("Zm9vYmFy", "foobar");
    DEC_OK("Zg", "f");
    DEC_OK("Zm8", "fo");
    DEC_OK("Zm9vYg", "foob");
    DEC_OK("Zm9vYmE", "fooba");
    DEC_OK("AA==", "\0");
    DEC_OK("+/+/", "\xfb\xff\xbf");
    /* non-zero pad bits are tolerated (RFC 4648 §3.5 leaves it to us) */
    DEC_OK("Zh==", "f");
}
END_TEST

START_TEST(test_b64_invalid)
{
    DEC_BAD("Z");
    DEC_BAD("=");
    DEC_BAD("==");
    DEC_BAD("===");
    DEC_BAD("====");
    DEC_BAD("Z===");
    DEC_BAD("Zm9vY");    /* length mod 4 = 1 */
    DEC_BAD("Zm=v");     /* '=' inside */
    DEC_BAD("Zg=");      /* one '=' where two are needed */
    DEC_BAD("Zg==Zg=="); /* padding in the middle */
    DEC_BAD("Zm9vYg====");
    DEC_BAD("Zm9v\r\n"); /* whitespace is not skipped */
    DEC_BAD(" Zm9v");
    DEC_BAD("Zm 9v");
    DEC_BAD("Zm9v\n");
    DEC_BAD("Zm-_"); /* base64url alphabet */
    DEC_BAD("Zm9\x00");
    DEC_BAD("Zm9\xff");
    DEC_BAD("*");
}
END_TEST

START_TEST(test_b64_cap)
{
    uint8_t o[8];
    size_t n = 99;

    memset(o, 0xaa, sizeof o);
    /* too small: false, nothing written, the needed length reported */
    ck_assert(!dec("Zm9vYmFy", 8, o, 5, &n));
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < sizeof o; i++)
        ck_assert_uint_eq(o[i], 0xaa);
    ck_assert(!dec("Zg", 2, o, 0, &n));
    ck_assert_uint_eq(n, 1);
    /* exactly enough: nothing written beyond */
    ck_assert(dec("Zm9vYmFy", 8, o, 6, &n));
    ck_assert_uint_eq(n, 6);
    ck_assert_uint_eq(o[6], 0xaa);
    memset(o, 0xaa, sizeof o);
    ck_assert(dec("Zm9vYmE", 7, o, 5, &n));
    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(o[5], 0xaa);
    /* NULL pointer with a length is refused, not read */
    ck_assert(!mx_base64_decode(mx_slice_make(NULL, 4), o, sizeof o, &n));
}
END_TEST

START_TEST(test_b64_roundtrip)
{
    uint8_t raw[256], out[256];
    size_t bn, n;

    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(255 - i);
    for (size_t len = 0; len <= sizeof raw; len++) {
        char *b = b64_encode(raw, len, &bn);

        ck_assert(dec(b, bn, out, len, &n));
        ck_assert_uint_eq(n, len);
        ck_assert(len == 0 || memcmp(out, raw, len) == 0);
        /* unpadded form */
        while (bn > 0 && b[bn - 1] == '=')
            bn--;
        ck_assert(dec(b, bn, out, len, &n));
        ck_assert_uint_eq(n, len);
        ck_assert(len == 0 || memcmp(out, raw, len) == 0);
        free(b);
    }
}
END_TEST

/* ---- Mechanism names ---- */

START_TEST(test_start_names)
{
    struct mx_sasl s;

    START(&s, "plain", false);
    ck_assert_int_eq(s.mech, MX_SASL_PLAIN);
    ck_assert_str_eq(s.mech_name, "PLAIN");
    ck_assert(!s.crackable);
    START(&s, "Login", true);
    ck_assert_int_eq(s.mech, MX_SASL_LOGIN);
    ck_assert(s.keep_secret);
    ck_assert_int_eq(s.login_next, 0);
    START(&s, "cram-md5", false);
    ck_assert_int_eq(s.mech, MX_SASL_CRAM_MD5);
    ck_assert(s.crackable);
    START(&s, "DIGEST-MD5", false);
    ck_assert_int_eq(s.mech, MX_SASL_DIGEST_MD5);
    ck_assert(s.crackable);
    START(&s, "ntlm", false);
    ck_assert_int_eq(s.mech, MX_SASL_NTLM);
    ck_assert(s.crackable);
    START(&s, "SCRAM-SHA-1", false);
    ck_assert_int_eq(s.mech, MX_SASL_SCRAM);
    ck_assert(s.crackable);
    START(&s, "scram-sha-256-plus", false);
    ck_assert_int_eq(s.mech, MX_SASL_SCRAM);
    ck_assert_str_eq(s.mech_name, "SCRAM-SHA-256-PLUS");
    START(&s, "SCRAM-SHA-512", false);
    ck_assert_int_eq(s.mech, MX_SASL_SCRAM);
    START(&s, "SCRAM-", false);
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    START(&s, "XOAUTH2", false);
    ck_assert_int_eq(s.mech, MX_SASL_XOAUTH2);
    ck_assert(!s.crackable);
    START(&s, "oauthbearer", false);
    ck_assert_int_eq(s.mech, MX_SASL_OAUTHBEARER);
    START(&s, "GSSAPI", false);
    ck_assert_int_eq(s.mech, MX_SASL_GSSAPI);
    START(&s, "EXTERNAL", false);
    ck_assert_int_eq(s.mech, MX_SASL_EXTERNAL);
    START(&s, "ANONYMOUS", false);
    ck_assert_int_eq(s.mech, MX_SASL_ANONYMOUS);
    START(&s, "X-UNHEARD-OF", false);
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    ck_assert_str_eq(s.mech_name, "X-UNHEARD-OF");
    ck_assert(!s.crackable);
    START(&s, "PLAINX", false);
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    START(&s, "", false);
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    ck_assert_str_eq(s.mech_name, "");
    mx_sasl_start(&s, mx_slice_make(NULL, 5), false);
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    ck_assert_str_eq(s.mech_name, "");
}
END_TEST

START_TEST(test_start_hostile_name)
{
    struct mx_sasl s;
    char name[200];

    /* control bytes and non-ASCII are dropped from the name, and such a
     * name matches nothing */
    START(&s,
          "PL\x01"
          "A\xc3\xa9IN\r\n",
          false);
    ck_assert_str_eq(s.mech_name, "PLAIN");
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    /* capped at MX_SASL_MAX_NAME - 1 */
    memset(name, 'q', sizeof name);
    start(&s, name, sizeof name, false);
    ck_assert_uint_eq(strlen(s.mech_name), MX_SASL_MAX_NAME - 1);
    ck_assert_int_eq(s.mech_name[0], 'Q');
    ck_assert_int_eq(s.mech, MX_SASL_UNKNOWN);
    /* a dirty struct is reset */
    memset(&s, 0xff, sizeof s);
    START(&s, "PLAIN", false);
    ck_assert(!s.user_known);
    ck_assert_uint_eq(s.user_len, 0);
    ck_assert_uint_eq(s.secret_len, 0);
    ck_assert_uint_eq(s.client_steps, 0);
    ck_assert(!s.cancelled && !s.decode_error && !s.secret_in_clear);
    ck_assert(all_zero(s.secret, sizeof s.secret));
}
END_TEST

/* ---- PLAIN ---- */

START_TEST(test_plain_rfc4616)
{
    struct mx_sasl s;

    /* RFC 4616 §4: authcid "tim", passwd "tanstaaftanstaaf" */
    START(&s, "PLAIN", true);
    SERVER(&s, "");
    ck_assert(CLIENT(&s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
    ASSERT_USER(&s, "tim");
    ck_assert_uint_eq(s.authzid_len, 0);
    ASSERT_SECRET(&s, "tanstaaftanstaaf");
    ck_assert(s.secret_in_clear);
    ck_assert(!s.crackable);
    ck_assert(!s.decode_error);
    ck_assert_uint_eq(s.client_steps, 1);
    ck_assert_uint_eq(s.server_steps, 1);

    /* RFC 4616 §4: authzid "Ursel", authcid "Kurt", passwd "xipj3plmq" */
    START(&s, "PLAIN", true);
    ck_assert(CLIENT(&s, "VXJzZWwAS3VydAB4aXBqM3BsbXE="));
    ASSERT_AUTHZID(&s, "Ursel");
    ASSERT_USER(&s, "Kurt");
    ASSERT_SECRET(&s, "xipj3plmq");
    ck_assert(!s.decode_error);
}
END_TEST

START_TEST(test_plain_rfc4954)
{
    struct mx_sasl s;

    /* RFC 4954 §4 / §8: "AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=" */
    START(&s, "PLAIN", true);
    ck_assert(CLIENT(&s, "dGVzdAB0ZXN0ADEyMzQ="));
    ASSERT_AUTHZID(&s, "test");
    ASSERT_USER(&s, "test");
    ASSERT_SECRET(&s, "1234");

    /* the same without an initial response: "AUTH PLAIN", "334 ", response */
    START(&s, "PLAIN", true);
    SERVER(&s, "");
    ck_assert(!s.decode_error);
    ck_assert(CLIENT(&s, "dGVzdAB0ZXN0ADEyMzQ="));
    ASSERT_USER(&s, "test");
    ASSERT_SECRET(&s, "1234");

    /* RFC 4954 §4: "=" is an empty initial response; the credentials come
     * in the next client line, after the server's challenge */
    START(&s, "PLAIN", true);
    ck_assert(!CLIENT(&s, "="));
    ck_assert(!s.user_known);
    ck_assert(!s.decode_error);
    ck_assert(!s.secret_in_clear);
    SERVER(&s, "");
    ck_assert(CLIENT(&s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
    ASSERT_USER(&s, "tim");
    ASSERT_SECRET(&s, "tanstaaftanstaaf");
    ck_assert(!s.decode_error);
    ck_assert_uint_eq(s.client_steps, 2);

    /* "=" later than the initial response is not base64: redact */
    START(&s, "PLAIN", true);
    SERVER(&s, "");
    ck_assert(CLIENT(&s, "="));
    ck_assert(s.decode_error);
}
END_TEST

START_TEST(test_plain_keep_secret_off)
{
    struct mx_sasl s;

    START(&s, "PLAIN", false);
    ck_assert(CLIENT(&s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
    ASSERT_USER(&s, "tim");
    ck_assert_uint_eq(s.secret_len, 16);
    ck_assert(all_zero(s.secret, sizeof s.secret));
    ck_assert(s.secret_in_clear);
}
END_TEST

START_TEST(test_plain_malformed)
{
    struct mx_sasl s;

    /* no NUL at all: maybe a bare password */
    START(&s, "PLAIN", true);
    ck_assert(CLIENT_RAW(&s, "hunter2"));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);
    ASSERT_SECRET(&s, "hunter2");

    /* one NUL: "authcid NUL passwd" */
    START(&s, "PLAIN", true);
    ck_assert(CLIENT_RAW(&s, "bob\0pw"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "bob");
    ASSERT_SECRET(&s, "pw");

    /* empty authcid, NUL inside the password */
    START(&s, "PLAIN", true);
    ck_assert(CLIENT_RAW(&s, "\0\0pw"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "");
    ASSERT_SECRET(&s, "pw");
    START(&s, "PLAIN", true);
    ck_assert(CLIENT_RAW(&s, "\0u\0p\0w"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "u");
    ASSERT_SECRET(&s, "p\0w");

    /* empty password: still a password in clear */
    START(&s, "PLAIN", true);
    ck_assert(CLIENT_RAW(&s, "\0u\0"));
    ASSERT_USER(&s, "u");
    ck_assert_uint_eq(s.secret_len, 0);
    ck_assert(s.secret_in_clear);

    /* an empty response carries nothing */
    START(&s, "PLAIN", true);
    SERVER(&s, "");
    ck_assert(!CLIENT(&s, ""));
    ck_assert(!s.decode_error);
}
END_TEST

/* ---- LOGIN ---- */

START_TEST(test_login_prompts)
{
    struct mx_sasl s;

    START(&s, "LOGIN", true);
    SERVER(&s, "VXNlcm5hbWU6"); /* "Username:" */
    ck_assert_int_eq(s.login_next, 0);
    ck_assert(!CLIENT(&s, "dGlt"));
    ASSERT_USER(&s, "tim");
    ck_assert_int_eq(s.login_next, 1);
    ck_assert(!s.secret_in_clear);
    SERVER(&s, "UGFzc3dvcmQ6"); /* "Password:" */
    ck_assert_int_eq(s.login_next, 1);
    ck_assert(CLIENT(&s, "dGFuc3RhYWZ0YW5zdGFhZg=="));
    ASSERT_SECRET(&s, "tanstaaftanstaaf");
    ck_assert(s.secret_in_clear);
    ck_assert(!s.crackable);
    ck_assert(!s.decode_error);
    ck_assert_uint_eq(s.client_steps, 2);
    ck_assert_uint_eq(s.server_steps, 2);

    /* keep_secret off */
    START(&s, "LOGIN", false);
    SERVER(&s, "VXNlcm5hbWU6");
    ck_assert(!CLIENT(&s, "dGlt"));
    SERVER(&s, "UGFzc3dvcmQ6");
    ck_assert(CLIENT(&s, "dGFuc3RhYWZ0YW5zdGFhZg=="));
    ck_assert_uint_eq(s.secret_len, 16);
    ck_assert(all_zero(s.secret, sizeof s.secret));
}
END_TEST

START_TEST(test_login_variants)
{
    struct mx_sasl s;

    /* initial response with "AUTH LOGIN dGlt" is the user name */
    START(&s, "LOGIN", true);
    ck_assert(!CLIENT(&s, "dGlt"));
    ASSERT_USER(&s, "tim");
    SERVER(&s, "UGFzc3dvcmQ6");
    ck_assert(CLIENT(&s, "cHc="));
    ASSERT_SECRET(&s, "pw");

    /* prompts that do not decode: default order, user then password */
    START(&s, "LOGIN", true);
    SERVER(&s, "User Name");
    ck_assert(s.decode_error);
    ck_assert(!CLIENT(&s, "dGlt"));
    SERVER(&s, "Password:");
    ck_assert(CLIENT(&s, "cHc="));
    ASSERT_USER(&s, "tim");
    ASSERT_SECRET(&s, "pw");

    /* other spellings: "User Name\0" and "password:" */
    START(&s, "LOGIN", true);
    SERVER(&s, "VXNlciBOYW1lAA==");
    ck_assert(!CLIENT(&s, "dGlt"));
    SERVER(&s, "cGFzc3dvcmQ6");
    ck_assert(CLIENT(&s, "cHc="));
    ASSERT_USER(&s, "tim");
    ASSERT_SECRET(&s, "pw");

    /* a server asking for the password first is followed */
    START(&s, "LOGIN", true);
    SERVER(&s, "UGFzc3dvcmQ6");
    ck_assert(CLIENT(&s, "cHc="));
    ASSERT_SECRET(&s, "pw");
    ck_assert(!s.user_known);
    SERVER(&s, "VXNlcm5hbWU6");
    ck_assert(!CLIENT(&s, "dGlt"));
    ASSERT_USER(&s, "tim");

    /* an undecodable answer is redacted, and the step is spent */
    START(&s, "LOGIN", true);
    SERVER(&s, "VXNlcm5hbWU6");
    ck_assert(CLIENT(&s, "t!m"));
    ck_assert(s.decode_error);
    ck_assert_int_eq(s.login_next, 1);
    ck_assert(CLIENT(&s, "cHc="));
    ASSERT_SECRET(&s, "pw");
}
END_TEST

/* ---- CRAM-MD5 ---- */

START_TEST(test_cram_md5)
{
    struct mx_sasl s;

    /* RFC 2195 §2 */
    START(&s, "CRAM-MD5", true);
    SERVER(&s, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
    ck_assert(CLIENT(&s, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"));
    ASSERT_USER(&s, "tim");
    ck_assert(s.crackable);
    ck_assert(!s.secret_in_clear);
    ck_assert_uint_eq(s.secret_len, 0);
    ck_assert(!s.decode_error);

    /* a user name with a space: split at the last one */
    START(&s, "CRAM-MD5", true);
    ck_assert(CLIENT_RAW(&s, "tim smith b913a602c7eda7a495b4e6e7334d3890"));
    ASSERT_USER(&s, "tim smith");
    ck_assert(!s.decode_error);

    /* no space, bad digest */
    START(&s, "CRAM-MD5", true);
    ck_assert(CLIENT_RAW(&s, "timb913a602c7eda7a495b4e6e7334d3890"));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);
    START(&s, "CRAM-MD5", true);
    ck_assert(CLIENT_RAW(&s, "tim xyz"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "tim");
}
END_TEST

/* ---- DIGEST-MD5 ---- */

START_TEST(test_digest_md5)
{
    struct mx_sasl s;

    /* RFC 2831 §4 */
    START(&s, "DIGEST-MD5", true);
    SERVER_RAW(&s, "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\","
                   "algorithm=md5-sess,charset=utf-8");
    ck_assert(CLIENT_RAW(&s, "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\","
                             "nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\","
                             "digest-uri=\"imap/elwood.innosoft.com\","
                             "response=d388dad90d4bbd760a152321f2143af7,qop=auth"));
    ASSERT_USER(&s, "chris");
    ck_assert(s.crackable);
    ck_assert(!s.secret_in_clear);
    ck_assert(!s.decode_error);
    SERVER_RAW(&s, "rspauth=ea40f60335c427b5527b84dbabcdfffd");
    ck_assert(!CLIENT(&s, ""));
    ck_assert(!s.decode_error);
    ck_assert_uint_eq(s.client_steps, 2);
    ck_assert_uint_eq(s.server_steps, 2);
}
END_TEST

START_TEST(test_digest_md5_syntax)
{
    struct mx_sasl s;

    /* escapes, LWS, an unquoted user, authzid */
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, " nc=00000001 , USERNAME = \"ch\\\"r\\\\is\" ,, authzid=\"adm,in\","
                             "response=d388dad90d4bbd760a152321f2143af7"));
    ASSERT_USER(&s, "ch\"r\\is");
    ASSERT_AUTHZID(&s, "adm,in");
    ck_assert(!s.decode_error);
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "username=bob ,qop=auth"));
    ASSERT_USER(&s, "bob");
    ck_assert(!s.decode_error);

    /* no username; an unterminated quoted string; junk after a value */
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "realm=\"x\",response=00"));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "username=\"chris"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "chris");
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "username=\"chris\"x,qop=auth"));
    ck_assert(s.decode_error);
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "username"));
    ck_assert(s.decode_error);
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "=\"x\""));
    ck_assert(s.decode_error);
    START(&s, "DIGEST-MD5", true);
    ck_assert(CLIENT_RAW(&s, "username=\"a\\"));
    ck_assert(s.decode_error);
}
END_TEST

/* ---- XOAUTH2 and OAUTHBEARER ---- */

START_TEST(test_xoauth2)
{
    struct mx_sasl s;

    /* Google's documented example */
    START(&s, "XOAUTH2", true);
    ck_assert(CLIENT(&s, "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRj"
                         "Mk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="));
    ASSERT_USER(&s, "someuser@example.com");
    ASSERT_SECRET(&s, "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
    ck_assert(s.secret_in_clear);
    ck_assert(!s.crackable);
    ck_assert(!s.decode_error);

    /* the server's error challenge, and the client's empty answer */
    SERVER(&s, "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwu"
               "Z29vZ2xlLmNvbS8ifQ==");
    ck_assert(!s.decode_error);
    ck_assert(!CLIENT(&s, ""));
    ck_assert_uint_eq(s.client_steps, 2);

    /* keep_secret off */
    START(&s, "XOAUTH2", false);
    ck_assert(CLIENT_RAW(&s, "user=a@b\x01"
                             "auth=Bearer tok\x01\x01"));
    ASSERT_USER(&s, "a@b");
    ck_assert_uint_eq(s.secret_len, 3);
    ck_assert(all_zero(s.secret, sizeof s.secret));

    /* no auth= pair */
    START(&s, "XOAUTH2", true);
    ck_assert(CLIENT_RAW(&s, "user=a@b\x01\x01"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "a@b");
}
END_TEST

START_TEST(test_oauthbearer)
{
    struct mx_sasl s;

    /* RFC 7628 §4.1 */
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT(&s, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAW"
                         "F1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"));
    ASSERT_USER(&s, "user@example.com");
    ASSERT_SECRET(&s, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
    ck_assert(s.secret_in_clear);
    ck_assert(!s.decode_error);

    /* RFC 7628 §4.3: an error challenge, the client's ^A, then failure */
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "n,a=user@example.com,\x01"
                             "host=server.example.com\x01port=143\x01"
                             "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"));
    SERVER_RAW(&s, "{\"status\":\"invalid_token\",\"scope\":\"example_scope\"}");
    ck_assert(!CLIENT(&s, "AQ=="));
    ck_assert(!s.decode_error);
    ASSERT_SECRET(&s, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");

    /* escaped authzid (RFC 5801 §4); no authzid but a user= pair */
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "n,a=a=2Cb=3Dc,\x01"
                             "auth=Bearer t\x01\x01"));
    ASSERT_USER(&s, "a,b=c");
    ASSERT_SECRET(&s, "t");
    ck_assert(!s.decode_error);
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "y,,\x01user=bob\x01"
                             "auth=bearer  t2\x01\x01"));
    ASSERT_USER(&s, "bob");
    ASSERT_SECRET(&s, "t2");
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "n,,\x01"
                             "auth=Bearer t\x01\x01"));
    ck_assert(!s.user_known);
    ASSERT_SECRET(&s, "t");
    ck_assert(!s.decode_error);

    /* malformed: bad escape, bad GS2 header, no auth= */
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "n,a=x=41,\x01"
                             "auth=Bearer t\x01\x01"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "x=41");
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "q,\x01"
                             "auth=Bearer t\x01\x01"));
    ck_assert(s.decode_error);
    ASSERT_SECRET(&s, "t");
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "n,,\x01host=h\x01\x01"));
    ck_assert(s.decode_error);
    START(&s, "OAUTHBEARER", true);
    ck_assert(CLIENT_RAW(&s, "n,,auth=Bearer t"));
    ck_assert(s.decode_error);
}
END_TEST

/* ---- NTLM ---- */

struct msg {
    uint8_t b[2048];
    size_t n;
};

static void put_le16(struct msg *m, size_t at, unsigned v)
{
    m->b[at] = (uint8_t)v;
    m->b[at + 1] = (uint8_t)(v >> 8);
}

static void put_le32(struct msg *m, size_t at, uint32_t v)
{
    put_le16(m, at, v & 0xffff);
    put_le16(m, at + 2, v >> 16);
}

/* Appends a payload and points the security buffer at `field` to it. */
static void ntlm_payload(struct msg *m, size_t field, const void *p, size_t n)
{
    ck_assert_uint_le(m->n + n, sizeof m->b);
    put_le16(m, field, (unsigned)n);
    put_le16(m, field + 2, (unsigned)n);
    put_le32(m, field + 4, (uint32_t)m->n);
    if (n > 0)
        memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* ASCII to UTF-16LE */
static size_t utf16(uint8_t *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)s[i];
        out[2 * i + 1] = 0;
    }
    return 2 * n;
}

/* An AUTHENTICATE_MESSAGE (MS-NLMP §2.2.1.3) with a 64-byte header, then
 * NTLMv2-shaped responses, domain, user and workstation. */
static void ntlm_type3(struct msg *m, uint32_t flags, const void *dom, size_t dn, const void *usr, size_t un)
{
    static const uint8_t lm[24] = { 1, 2, 3 }, nt[48] = { 4, 5, 6 };
    uint8_t ws[16];
    size_t wn = flags & 1 ? utf16(ws, "WS", 2) : 2;

    if (!(flags & 1))
        memcpy(ws, "WS", 2);
    memset(m, 0, sizeof *m);
    memcpy(m->b, "NTLMSSP\0", 8);
    put_le32(m, 8, 3);
    put_le32(m, 60, flags);
    m->n = 64;
    ntlm_payload(m, 28, dom, dn);
    ntlm_payload(m, 36, usr, un);
    ntlm_payload(m, 44, ws, wn);
    ntlm_payload(m, 12, lm, sizeof lm);
    ntlm_payload(m, 20, nt, sizeof nt);
    ntlm_payload(m, 52, NULL, 0);
}

START_TEST(test_ntlm_type3_unicode)
{
    struct mx_sasl s;
    struct msg m;
    uint8_t d[16], u[16];
    size_t dn = utf16(d, "DOM", 3), un = utf16(u, "bob", 3);
    static const uint8_t type1[] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 1, 0, 0, 0, 0x07, 0x82, 0x08, 0xa2,
                                     0,   0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0,    0,    0,    0 };
    static const uint8_t type2[] = { 'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 2, 0, 0, 0 };

    START(&s, "NTLM", true);
    ck_assert(!client_raw(&s, type1, sizeof type1));
    ck_assert(!s.decode_error);
    server_raw(&s, type2, sizeof type2);
    ntlm_type3(&m, 0xa2888205u, d, dn, u, un); /* UNICODE set */
    ck_assert(client_raw(&s, m.b, m.n));
    ASSERT_USER(&s, "DOM\\bob");
    ck_assert(s.crackable);
    ck_assert(!s.secret_in_clear);
    ck_assert_uint_eq(s.secret_len, 0);
    ck_assert(!s.decode_error);
    ck_assert_uint_eq(s.client_steps, 2);

    /* the same without a domain */
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, NULL, 0, u, un);
    ck_assert(client_raw(&s, m.b, m.n));
    ASSERT_USER(&s, "bob");
}
END_TEST

START_TEST(test_ntlm_type3_oem)
{
    struct mx_sasl s;
    struct msg m;

    START(&s, "NTLM", true);
    ntlm_type3(&m, 0x2, "DOM", 3, "bob", 3); /* NTLM_NEGOTIATE_OEM only */
    ck_assert(client_raw(&s, m.b, m.n));
    ASSERT_USER(&s, "DOM\\bob");
    ck_assert(!s.decode_error);

    /* anonymous: no user name */
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, NULL, 0, NULL, 0);
    ck_assert(client_raw(&s, m.b, m.n));
    ck_assert(!s.user_known);
}
END_TEST

START_TEST(test_ntlm_utf16)
{
    struct mx_sasl s;
    struct msg m;
    /* "é", U+1F600 as a surrogate pair, a lone high surrogate followed by
     * 'x', a lone low surrogate, and a high surrogate at the end */
    static const uint8_t u[] = { 0xe9, 0x00, 0x3d, 0xd8, 0x00, 0xde, 0x00, 0xd8, 'x', 0, 0x00, 0xdc, 0x00, 0xd8 };
    static const char want[] = "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd";
    uint8_t euro[600];
    size_t i;

    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, NULL, 0, u, sizeof u);
    ck_assert(client_raw(&s, m.b, m.n));
    ASSERT_USER(&s, want);
    ck_assert(!s.decode_error);

    /* odd length */
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, NULL, 0, "b\0o\0b", 5);
    ck_assert(client_raw(&s, m.b, m.n));
    ASSERT_USER(&s, "bo");
    ck_assert(s.decode_error);

    /* 300 x U+20AC (3 UTF-8 bytes each): truncated at a character boundary */
    for (i = 0; i < 300; i++) {
        euro[2 * i] = 0xac;
        euro[2 * i + 1] = 0x20;
    }
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, NULL, 0, euro, 600);
    ck_assert(client_raw(&s, m.b, m.n));
    ck_assert(s.user_known);
    ck_assert_uint_eq(s.user_len, MX_SASL_MAX_USER / 3 * 3);
    for (i = 0; i < s.user_len; i += 3)
        ck_assert(memcmp(s.user + i, "\xe2\x82\xac", 3) == 0);
}
END_TEST

START_TEST(test_ntlm_hostile)
{
    struct mx_sasl s;
    struct msg m, t;
    uint8_t u[16];
    size_t un = utf16(u, "bob", 3);

    /* the user buffer points past the end */
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, "D\0", 2, u, un);
    put_le32(&m, 40, (uint32_t)m.n - 2);
    ck_assert(client_raw(&s, m.b, m.n));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);

    /* offsets that overflow 32-bit arithmetic */
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, "D\0", 2, u, un);
    put_le32(&m, 40, 0xffffffffu);
    put_le32(&m, 32, 0xfffffff0u);
    ck_assert(client_raw(&s, m.b, m.n));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);

    /* a bad LM response field alone: the user is still read */
    START(&s, "NTLM", true);
    ntlm_type3(&m, 1, NULL, 0, u, un);
    put_le16(&m, 12, 0xffff);
    ck_assert(client_raw(&s, m.b, m.n));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "bob");

    /* every truncation of a valid message, re-pointed or not */
    ntlm_type3(&m, 1, "D\0", 2, u, un);
    for (size_t len = 0; len < m.n; len++) {
        START(&s, "NTLM", true);
        t = m;
        t.n = len;
        if (len == 0) {
            ck_assert(!client_raw(&s, t.b, t.n));
            continue;
        }
        ck_assert(client_raw(&s, t.b, t.n));
        ck_assert_msg(s.decode_error, "length %zu accepted", len);
    }

    /* bad signature, unexpected types */
    START(&s, "NTLM", true);
    memcpy(t.b, "NTLMSSX\0\3\0\0\0", 12);
    ck_assert(client_raw(&s, t.b, 12));
    ck_assert(s.decode_error);
    START(&s, "NTLM", true);
    memcpy(t.b, "NTLMSSP\0\2\0\0\0", 12);
    ck_assert(client_raw(&s, t.b, 12));
    ck_assert(s.decode_error);
    START(&s, "NTLM", true);
    memcpy(t.b, "NTLMSSP\0\3\0\0\0", 12);
    ck_assert(client_raw(&s, t.b, 12));
    ck_assert(s.decode_error);
}
END_TEST

/* ---- SCRAM ---- */

START_TEST(test_scram)
{
    struct mx_sasl s;

    /* RFC 7677 §3 */
    START(&s, "SCRAM-SHA-256", true);
    ck_assert(!CLIENT_RAW(&s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
    ASSERT_USER(&s, "user");
    ck_assert_uint_eq(s.authzid_len, 0);
    ck_assert(s.crackable);
    ck_assert(!s.decode_error);
    SERVER_RAW(&s, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    ck_assert(CLIENT_RAW(&s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
    ck_assert(!s.decode_error);
    ck_assert(!s.secret_in_clear);
    SERVER_RAW(&s, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    ck_assert(!CLIENT(&s, ""));
    ASSERT_USER(&s, "user");
    ck_assert_uint_eq(s.client_steps, 3);
    ck_assert_uint_eq(s.server_steps, 2);
}
END_TEST

START_TEST(test_scram_syntax)
{
    struct mx_sasl s;

    /* escapes, authzid, channel-binding flags */
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(!CLIENT_RAW(&s, "n,a=ad=2Cmin,n=us=3Der=2C,r=abc"));
    ASSERT_USER(&s, "us=er,");
    ASSERT_AUTHZID(&s, "ad,min");
    ck_assert(!s.decode_error);
    START(&s, "SCRAM-SHA-1-PLUS", true);
    ck_assert(!CLIENT_RAW(&s, "p=tls-unique,,n=bob,r=abc,x=ext"));
    ASSERT_USER(&s, "bob");
    ck_assert(!s.decode_error);
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(!CLIENT_RAW(&s, "y,,n=bob,r=abc"));
    ASSERT_USER(&s, "bob");

    /* malformed first messages */
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(CLIENT_RAW(&s, "x,,n=bob,r=abc"));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(CLIENT_RAW(&s, "n,,"));
    ck_assert(s.decode_error);
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(!CLIENT_RAW(&s, "n,,n=bob"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "bob");
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(!CLIENT_RAW(&s, "n,,n=b=ob,r=1"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "b=ob");
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(!CLIENT_RAW(&s, "n,,m=ext,n=bob,r=1"));
    ck_assert(s.decode_error);
    ASSERT_USER(&s, "bob");
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(CLIENT_RAW(&s, "n,,m=ext"));
    ck_assert(s.decode_error);
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(CLIENT_RAW(&s, "p=,,n=bob,r=1"));
    ck_assert(s.decode_error);
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(CLIENT_RAW(&s, "n,b=x,n=bob,r=1"));
    ck_assert(s.decode_error);
    /* a final message without a proof */
    START(&s, "SCRAM-SHA-1", true);
    ck_assert(CLIENT_RAW(&s, "c=biws,r=abc"));
    ck_assert(s.decode_error);
}
END_TEST

/* ---- GSSAPI, EXTERNAL, ANONYMOUS, unknown ---- */

START_TEST(test_other_mechs)
{
    struct mx_sasl s;

    START(&s, "GSSAPI", true);
    ck_assert(CLIENT(&s, "YIIB9wYJKoZIhvcSAQICAQBuggHmMIIB4qADAgEF"));
    ck_assert(!s.user_known);
    ck_assert(!s.decode_error);
    SERVER(&s, "YGgGCSqGSIb3EgECAgIAb1kwV6ADAgEF");
    ck_assert(!CLIENT(&s, ""));
    ck_assert(CLIENT(&s, "not base64!"));
    ck_assert(s.decode_error);

    /* RFC 4422 App. A: EXTERNAL, with and without an authzid */
    START(&s, "EXTERNAL", true);
    ck_assert(!CLIENT_RAW(&s, "admin"));
    ASSERT_AUTHZID(&s, "admin");
    ck_assert(!s.user_known);
    START(&s, "EXTERNAL", true);
    ck_assert(!CLIENT(&s, "="));
    ck_assert_uint_eq(s.authzid_len, 0);
    ck_assert(!s.decode_error);
    START(&s, "EXTERNAL", true);
    ck_assert(!CLIENT(&s, "%%%%"));
    ck_assert(s.decode_error);

    /* RFC 4505: ANONYMOUS trace information is not stored */
    START(&s, "ANONYMOUS", true);
    ck_assert(!CLIENT_RAW(&s, "sirhc"));
    ck_assert(!s.user_known);
    ck_assert_uint_eq(s.secret_len, 0);
    ck_assert(!CLIENT(&s, "%%%%"));
    ck_assert(s.decode_error);

    /* unknown: redact everything, count the steps */
    START(&s, "X-SECRET-SAUCE", true);
    ck_assert(CLIENT_RAW(&s, "whatever"));
    SERVER(&s, "");
    ck_assert(CLIENT(&s, ""));
    ck_assert(CLIENT(&s, "%%%%"));
    ck_assert(s.decode_error);
    ck_assert_uint_eq(s.client_steps, 3);
    ck_assert_uint_eq(s.server_steps, 1);
    ck_assert(!s.user_known);
}
END_TEST

START_TEST(test_cancel)
{
    static const char *const mechs[] = { "PLAIN", "LOGIN",         "CRAM-MD5", "DIGEST-MD5", "XOAUTH2",   "OAUTHBEARER",
                                         "NTLM",  "SCRAM-SHA-256", "GSSAPI",   "EXTERNAL",   "ANONYMOUS", "X-FOO" };
    struct mx_sasl s;

    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
        start(&s, mechs[i], strlen(mechs[i]), true);
        SERVER(&s, "");
        ck_assert(!CLIENT(&s, "*"));
        ck_assert(s.cancelled);
        ck_assert(!s.decode_error);
        ck_assert_uint_eq(s.client_steps, 1);
    }
    /* "*" as the initial response also cancels (RFC 4954 §4 allows it only
     * as a response, but a cancel is harmless to honour) */
    START(&s, "PLAIN", true);
    ck_assert(!CLIENT(&s, "*"));
    ck_assert(s.cancelled);
}
END_TEST

/* ---- Hostile input ---- */

START_TEST(test_invalid_base64_redacts)
{
    static const char *const mechs[] = { "PLAIN",       "LOGIN", "CRAM-MD5",      "DIGEST-MD5", "XOAUTH2",
                                         "OAUTHBEARER", "NTLM",  "SCRAM-SHA-256", "GSSAPI",     "X-FOO" };
    struct mx_sasl s;

    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
        start(&s, mechs[i], strlen(mechs[i]), true);
        ck_assert_msg(CLIENT(&s, "hunter2 is my password"), "%s", mechs[i]);
        ck_assert(s.decode_error);
        ck_assert_uint_eq(s.secret_len, 0);
        start(&s, mechs[i], strlen(mechs[i]), true);
        SERVER(&s, "");
        ck_assert_msg(CLIENT(&s, "dGlt\r\n"), "%s", mechs[i]);
        ck_assert(s.decode_error);
    }
}
END_TEST

/* A PLAIN message with a user name of ulen bytes and a password of plen,
 * base64-encoded; the caller frees it. */
static char *big_plain(size_t ulen, size_t plen, size_t *bn)
{
    size_t n = 2 + ulen + plen;
    uint8_t *raw = malloc(n);
    char *b;

    ck_assert_ptr_nonnull(raw);
    raw[0] = 0;
    memset(raw + 1, 'u', ulen);
    raw[1 + ulen] = 0;
    memset(raw + 2 + ulen, 'p', plen);
    b = b64_encode(raw, n, bn);
    free(raw);
    return b;
}

START_TEST(test_long_lines)
{
    struct mx_sasl s;
    size_t bn;
    char *b;
    uint8_t user[1000], tok[700];

    /* a 10 KB line: user and secret over their caps */
    b = big_plain(5000, 2678, &bn);
    ck_assert_uint_eq(bn, 10240);
    START(&s, "PLAIN", true);
    ck_assert(client_n(&s, b, bn));
    ck_assert(!s.decode_error);
    ck_assert_uint_eq(s.user_len, MX_SASL_MAX_USER);
    ck_assert(s.user[0] == 'u' && s.user[MX_SASL_MAX_USER - 1] == 'u');
    ck_assert_uint_eq(s.secret_len, 2678);
    ck_assert(s.secret[0] == 'p' && s.secret[MX_SASL_MAX_SECRET - 1] == 'p');
    free(b);

    /* longer than the decode buffer: refused, redacted */
    b = big_plain(6000, 6000, &bn);
    START(&s, "PLAIN", true);
    ck_assert(client_n(&s, b, bn));
    ck_assert(s.decode_error);
    ck_assert(!s.user_known);
    /* ... but a large GSSAPI token is only checked, not buffered */
    START(&s, "GSSAPI", true);
    ck_assert(client_n(&s, b, bn));
    ck_assert(!s.decode_error);
    /* ... and a long server line is fine */
    START(&s, "LOGIN", true);
    server_n(&s, b, bn);
    ck_assert(!s.decode_error);
    ck_assert_int_eq(s.login_next, 0);
    free(b);

    /* user names over the cap in LOGIN and SCRAM; a long bearer token */
    memset(user, 'x', sizeof user);
    START(&s, "LOGIN", true);
    ck_assert(!client_raw(&s, user, sizeof user));
    ck_assert_uint_eq(s.user_len, MX_SASL_MAX_USER);
    memcpy(user, "n,,n=", 5);
    memcpy(user + 900, ",r=abc", 6);
    START(&s, "SCRAM-SHA-256", true);
    ck_assert(!client_raw(&s, user, 906));
    ck_assert_uint_eq(s.user_len, MX_SASL_MAX_USER);
    ck_assert(!s.decode_error);
    memcpy(tok,
           "user=u\x01"
           "auth=Bearer ",
           19);
    memset(tok + 19, 't', sizeof tok - 21);
    tok[sizeof tok - 2] = 1;
    tok[sizeof tok - 1] = 1;
    START(&s, "XOAUTH2", true);
    ck_assert(client_raw(&s, tok, sizeof tok));
    ck_assert_uint_eq(s.secret_len, sizeof tok - 21);
    ck_assert(s.secret[MX_SASL_MAX_SECRET - 1] == 't');
    /* DIGEST-MD5 quoted and unquoted user names over the cap */
    {
        uint8_t d[600];

        memcpy(d, "username=\"", 10);
        memset(d + 10, 'y', 589);
        d[599] = '"';
        START(&s, "DIGEST-MD5", true);
        ck_assert(client_raw(&s, d, sizeof d));
        ck_assert_uint_eq(s.user_len, MX_SASL_MAX_USER);
        ck_assert(!s.decode_error);
        START(&s, "DIGEST-MD5", true);
        ck_assert(client_raw(&s, d, 9)); /* "username=": empty */
        ck_assert(s.user_known);
        ck_assert_uint_eq(s.user_len, 0);
        memcpy(d, "username=", 9);
        memset(d + 9, 'y', sizeof d - 9);
        START(&s, "DIGEST-MD5", true);
        ck_assert(client_raw(&s, d, sizeof d));
        ck_assert_uint_eq(s.user_len, MX_SASL_MAX_USER);
    }
}
END_TEST

/* Deterministic pseudo-random bytes. */
static uint32_t rnd(uint32_t *x)
{
    *x = (uint32_t)(((uint64_t)*x * 1103515245u + 12345u) & 0xffffffffu);
    return *x >> 16;
}

START_TEST(test_garbage)
{
    static const char *const mechs[] = { "PLAIN", "LOGIN",         "CRAM-MD5", "DIGEST-MD5", "XOAUTH2",   "OAUTHBEARER",
                                         "NTLM",  "SCRAM-SHA-256", "GSSAPI",   "EXTERNAL",   "ANONYMOUS", "X-FOO" };
    static const char alphabet[] = "=,\"\\ \x01"
                                   "\0"
                                   "abnpcu=NTLMSSP";
    uint32_t x = 12345;
    uint8_t raw[300];
    struct mx_sasl s;

    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
        for (int round = 0; round < 400; round++) {
            size_t n = rnd(&x) % sizeof raw;

            for (size_t j = 0; j < n; j++) {
                /* half the bytes from a syntax-heavy alphabet */
                raw[j] = rnd(&x) % 2 ? (uint8_t)alphabet[rnd(&x) % (sizeof alphabet - 1)] : (uint8_t)rnd(&x);
            }
            if (round % 3 == 0 && n >= 12) {
                memcpy(raw, "NTLMSSP\0\3\0\0\0", 12);
            }
            start(&s, mechs[i], strlen(mechs[i]), round % 2 == 0);
            (void)client_raw(&s, raw, n);
            server_raw(&s, raw, n);
            (void)client_raw(&s, raw, n);
            (void)client_n(&s, raw, n);
            server_n(&s, raw, n);
            ck_assert(s.user_len <= MX_SASL_MAX_USER);
            ck_assert(s.authzid_len <= MX_SASL_MAX_USER);
            ck_assert(s.keep_secret || all_zero(s.secret, sizeof s.secret));
            ck_assert(memchr(s.mech_name, 0, sizeof s.mech_name) != NULL);
        }
    }
}
END_TEST

static Suite *sasl_suite(void)
{
    Suite *s = suite_create("sasl");
    TCase *b64 = tcase_create("base64");
    TCase *mech = tcase_create("mechanisms");
    TCase *rob = tcase_create("robustness");

    tcase_add_test(b64, test_b64_valid);
    tcase_add_test(b64, test_b64_invalid);
    tcase_add_test(b64, test_b64_cap);
    tcase_add_test(b64, test_b64_roundtrip);
    suite_add_tcase(s, b64);

    tcase_add_test(mech, test_start_names);
    tcase_add_test(mech, test_start_hostile_name);
    tcase_add_test(mech, test_plain_rfc4616);
    tcase_add_test(mech, test_plain_rfc4954);
    tcase_add_test(mech, test_plain_keep_secret_off);
    tcase_add_test(mech, test_plain_malformed);
    tcase_add_test(mech, test_login_prompts);
    tcase_add_test(mech, test_login_variants);
    tcase_add_test(mech, test_cram_md5);
    tcase_add_test(mech, test_digest_md5);
    tcase_add_test(mech, test_digest_md5_syntax);
    tcase_add_test(mech, test_xoauth2);
    tcase_add_test(mech, test_oauthbearer);
    tcase_add_test(mech, test_ntlm_type3_unicode);
    tcase_add_test(mech, test_ntlm_type3_oem);
    tcase_add_test(mech, test_ntlm_utf16);
    tcase_add_test(mech, test_scram);
    tcase_add_test(mech, test_scram_syntax);
    tcase_add_test(mech, test_other_mechs);
    tcase_add_test(mech, test_cancel);
    suite_add_tcase(s, mech);

    tcase_set_timeout(rob, 120);
    tcase_add_test(rob, test_ntlm_hostile);
    tcase_add_test(rob, test_invalid_base64_redacts);
    tcase_add_test(rob, test_long_lines);
    tcase_add_test(rob, test_garbage);
    suite_add_tcase(s, rob);
    return s;
}

MX_CHECK_MAIN(sasl_suite)
