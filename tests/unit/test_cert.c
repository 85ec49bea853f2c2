/* test_cert.c - Check suite for the certificate judge (dissectors/tls/cert.c):
 * certificates made here with OpenSSL, judged at chosen capture times,
 * against chosen names and stores; hostile DER; cipher suite names. */
#include "dissectors/tls/cert.h"
#include "check_main.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T2020 INT64_C(1577836800) /* 2020-01-01T00:00:00Z */
#define DAY INT64_C(86400)
#define NS INT64_C(1000000000)

/* One certificate: DER bytes, for mx.lab.test (SAN) unless `host` says
 * otherwise, valid [T2020, T2020 + 365 days], signed by `issuer_key` (its
 * own key when NULL, with the issuer's name `issuer`). */
struct made {
    unsigned char *der;
    int len;
    EVP_PKEY *key;
    X509 *x;
};

static void make(struct made *m, int bits, const EVP_MD *md, const char *cn, const char *host,
                 const struct made *issuer)
{
    m->key = EVP_RSA_gen((unsigned)bits);
    ck_assert_ptr_nonnull(m->key);
    m->x = X509_new();
    ck_assert_ptr_nonnull(m->x);
    X509_set_version(m->x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(m->x), 4242);
    ASN1_TIME_set(X509_getm_notBefore(m->x), (time_t)T2020);
    ASN1_TIME_set(X509_getm_notAfter(m->x), (time_t)(T2020 + 365 * DAY));
    X509_NAME *n = X509_get_subject_name(m->x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(m->x, issuer ? X509_get_subject_name(issuer->x) : n);
    X509_set_pubkey(m->x, m->key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer->x : m->x, m->x, NULL, NULL, 0);
    char san[128];
    if (host) {
        snprintf(san, sizeof(san), "DNS:%s", host);
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        ck_assert_ptr_nonnull(e);
        X509_add_ext(m->x, e, -1);
        X509_EXTENSION_free(e);
    } else {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(m->x, e, -1);
        X509_EXTENSION_free(e);
    }
    ck_assert_int_gt(X509_sign(m->x, issuer ? issuer->key : m->key, md), 0);
    m->der = NULL;
    m->len = i2d_X509(m->x, &m->der);
    ck_assert_int_gt(m->len, 0);
}

static void unmake(struct made *m)
{
    OPENSSL_free(m->der);
    X509_free(m->x);
    EVP_PKEY_free(m->key);
}

static struct mx_slice der_of(const struct made *m)
{
    return mx_slice_make(m->der, (size_t)m->len);
}

static struct mx_slice name(const char *s)
{
    return mx_slice_make(s, strlen(s));
}

/* Dates against the capture's time, both ends inclusive (RFC 5280 §4.1.2.5);
 * the key, the signature and the name. The same chain again is remembered,
 * and judged at its own time. */
START_TEST(test_dates_key_signature_name)
{
    struct made ca, leaf;
    make(&ca, 2048, EVP_sha256(), "test CA", NULL, NULL);
    make(&leaf, 1024, EVP_sha1(), "mx.lab.test", "mx.lab.test", &ca);
    struct mx_slice chain[2] = { der_of(&leaf), der_of(&ca) };
    struct mx_tls_cert_check c;
    static const struct {
        int64_t at;
        enum mx_tls_validity v;
    } times[] = {
        { T2020 - 1, MX_TLS_NOT_YET_VALID }, { T2020, MX_TLS_VALID },
        { T2020 + 365 * DAY, MX_TLS_VALID }, { T2020 + 365 * DAY + 1, MX_TLS_EXPIRED },
        { T2020 + 100 * DAY, MX_TLS_VALID },
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        mx_tls_cert_check(NULL, chain, 2, false, times[i].at * NS, name("mx.lab.test"), "sni", &c);
        ck_assert(c.judged);
        ck_assert_int_eq(c.validity, times[i].v);
        ck_assert_str_eq(c.key_type, "RSA");
        ck_assert_uint_eq(c.key_bits, 1024);
        ck_assert(c.weak_key);
        ck_assert_str_eq(c.sig_alg, "sha1WithRSAEncryption");
        ck_assert_str_eq(c.weak_sig, "sha1WithRSAEncryption");
        ck_assert_uint_eq(c.weak_sig_depth, 0);
        ck_assert_str_eq(c.name, "mx.lab.test");
        ck_assert_str_eq(c.name_from, "sni");
        ck_assert(c.name_match);
        ck_assert_ptr_null(c.store); /* no trust given: not verified */
        ck_assert_str_eq(c.verify, "");
    }
    mx_tls_cert_check(NULL, chain, 2, false, MX_TIME_NONE, name("other.example"), "greeting", &c);
    ck_assert_int_eq(c.validity, MX_TLS_VALIDITY_UNKNOWN);
    ck_assert_str_eq(c.name_from, "greeting");
    ck_assert(!c.name_match);
    /* an address, a name without a dot: nothing to check */
    mx_tls_cert_check(NULL, chain, 2, false, T2020 * NS, name("127.0.0.1"), "greeting", &c);
    ck_assert_ptr_null(c.name_from);
    mx_tls_cert_check(NULL, chain, 2, false, T2020 * NS, name("localhost"), "greeting", &c);
    ck_assert_ptr_null(c.name_from);
    unmake(&leaf);
    unmake(&ca);
}
END_TEST

/* Trust: none, a file that holds the CA, one that does not; self-signed. */
START_TEST(test_trust)
{
    struct made ca, leaf, self;
    make(&ca, 2048, EVP_sha256(), "test CA", NULL, NULL);
    make(&leaf, 2048, EVP_sha256(), "mx.lab.test", "mx.lab.test", &ca);
    make(&self, 2048, EVP_sha256(), "mx.lab.test", "mx.lab.test", NULL);
    char path[] = "/tmp/mxray-test-cert-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_X509(f, ca.x);
    fclose(f);
    char err[256];
    struct mx_tls_trust *none = mx_tls_trust_load("none", err, sizeof(err));
    struct mx_tls_trust *file = mx_tls_trust_load(path, err, sizeof(err));
    ck_assert_ptr_nonnull(none);
    ck_assert_ptr_nonnull(file);
    ck_assert_ptr_null(mx_tls_trust_load("/nonexistent/ca.pem", err, sizeof(err)));
    struct mx_slice chain[2] = { der_of(&leaf), der_of(&ca) }, alone = der_of(&self);
    struct mx_tls_cert_check c;
    mx_tls_cert_check(none, chain, 2, false, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert_str_eq(c.store, "none");
    ck_assert_str_eq(c.verify, "not checked");
    mx_tls_cert_check(file, chain, 1, false, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert_str_eq(c.store, "file");
    ck_assert_str_eq(c.verify, "ok"); /* the CA is in the file: the leaf alone verifies */
    /* dates aside: the verdict is the same long after the leaf expired */
    mx_tls_cert_check(file, chain, 2, false, (T2020 + 3650 * DAY) * NS, name("mx.lab.test"), "sni", &c);
    ck_assert_str_eq(c.verify, "ok");
    ck_assert_int_eq(c.validity, MX_TLS_EXPIRED);
    mx_tls_cert_check(file, &alone, 1, false, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert_str_eq(c.verify, "self-signed");
    ck_assert_str_eq(c.weak_sig, "");
    mx_tls_trust_free(none);
    mx_tls_trust_free(file);
    unlink(path);
    unmake(&self);
    unmake(&leaf);
    unmake(&ca);
}
END_TEST

/* Hostile: DER that does not parse, intermediates that do not, empty chains. */
START_TEST(test_hostile)
{
    struct made ca, leaf;
    make(&ca, 2048, EVP_sha256(), "test CA", NULL, NULL);
    make(&leaf, 2048, EVP_sha256(), "mx.lab.test", "mx.lab.test", &ca);
    static const uint8_t junk[] = { 0x30, 0x82, 0xff, 0xff, 0x01, 0x02 };
    struct mx_slice bad = mx_slice_make(junk, sizeof(junk)), cut = mx_slice_make(leaf.der, (size_t)leaf.len - 7);
    struct mx_slice chain[MX_TLS_CHAIN_MAX + 2];
    struct mx_tls_cert_check c;
    mx_tls_cert_check(NULL, &bad, 1, false, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert(!c.judged);
    mx_tls_cert_check(NULL, &cut, 1, false, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert(!c.judged);
    mx_tls_cert_check(NULL, chain, 0, false, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert(!c.judged);
    chain[0] = der_of(&leaf);
    for (size_t i = 1; i < MX_TLS_CHAIN_MAX + 2; i++)
        chain[i] = bad;
    mx_tls_cert_check(NULL, chain, MX_TLS_CHAIN_MAX + 2, true, T2020 * NS, name("mx.lab.test"), "sni", &c);
    ck_assert(c.judged);
    ck_assert(c.chain_cut);
    ck_assert(c.name_match);
    unmake(&leaf);
    unmake(&ca);
}
END_TEST

START_TEST(test_cipher_weakness)
{
    static const char *const cases[][2] = {
        { "TLS_RSA_WITH_NULL_SHA256", "NULL" },
        { "TLS_NULL_WITH_NULL_NULL", "NULL" },
        { "TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXPORT" },
        { "TLS_DH_anon_WITH_AES_128_CBC_SHA256", "anonymous" },
        { "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", "anonymous" },
        { "TLS_RSA_WITH_RC4_128_SHA", "RC4" },
        { "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "3DES" },
        { "SSL_CK_DES_192_EDE3_CBC_WITH_MD5", "3DES" },
        { "TLS_RSA_WITH_DES_CBC_SHA", "DES" },
        { "SSL_CK_RC2_128_CBC_WITH_MD5", "RC2" },
        { "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", NULL },
        { "TLS_AES_128_GCM_SHA256", NULL },
        { "TLS_CHACHA20_POLY1305_SHA256", NULL },
        { "0xcc14", NULL },
        { "", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *w = mx_tls_cipher_weakness(cases[i][0]);
        if (cases[i][1])
            ck_assert_msg(w && !strcmp(w, cases[i][1]), "%s: %s", cases[i][0], w ? w : "(none)");
        else
            ck_assert_msg(!w, "%s: %s", cases[i][0], w);
    }
    ck_assert_ptr_null(mx_tls_cipher_weakness(NULL));
}
END_TEST

static Suite *cert_suite(void)
{
    Suite *s = suite_create("cert");
    TCase *tc = tcase_create("cert");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_dates_key_signature_name);
    tcase_add_test(tc, test_trust);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_cipher_weakness);
    suite_add_tcase(s, tc);
    return s;
}

MX_CHECK_MAIN(cert_suite)
