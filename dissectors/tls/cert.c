/* cert.c - the server's certificate chain judged: trust with OpenSSL's
 * X509_verify_cert (RFC 5280 §6) against the system store or --tls-ca,
 * validity at the capture's time (RFC 5280 §4.1.2.5), the host name with
 * X509_check_host (RFC 6125 §6), the key size and the signature hash
 * (RFC 9325 §4.1, §4.2), and the weakness of a cipher suite (RFC 7525 §4.1). */
#include "dissectors/tls/cert.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mx_tls_trust {
    X509_STORE *store; /* NULL: "none" */
    const char *kind;  /* "system", "file", "none" */
    /* The system store is read on first use (reading its bundle costs more
     * than a thousand handshakes): a run without certificates never reads it. */
    pthread_mutex_t lock;
    bool deferred; /* the default paths are still to be set */
};

struct mx_tls_trust *mx_tls_trust_load(const char *ca_file, char *err, size_t errlen)
{
    struct mx_tls_trust *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    if (ca_file && !strcmp(ca_file, "none")) {
        t->kind = "none";
        return t;
    }
    t->store = X509_STORE_new();
    if (!t->store) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!ca_file) {
        t->kind = "system";
        t->deferred = true;
        return t;
    }
    t->kind = "file";
    if (X509_STORE_load_file(t->store, ca_file) != 1) {
        snprintf(err, errlen, "%s: not a readable PEM file of certificates", ca_file);
        goto fail;
    }
    return t;
fail:
    mx_tls_trust_free(t);
    return NULL;
}

/* The store, the system's read now if it was not yet (by one thread, under
 * the lock; the store is read-only after). */
static X509_STORE *trust_store(const struct mx_tls_trust *tr)
{
    struct mx_tls_trust *t = (struct mx_tls_trust *)tr; /* allocated writable by mx_tls_trust_load */
    pthread_mutex_lock(&t->lock);
    if (t->deferred) {
        X509_STORE_set_default_paths(t->store); /* a missing system store is an empty one */
        t->deferred = false;
    }
    pthread_mutex_unlock(&t->lock);
    return t->store;
}

void mx_tls_trust_free(struct mx_tls_trust *t)
{
    if (!t)
        return;
    X509_STORE_free(t->store);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* ---- Small pieces ---- */

/* Seconds since 1970 of a civil UTC time (days_from_civil, H. Hinnant). */
static int64_t utc_secs(const struct tm *tm)
{
    int64_t y = (int64_t)tm->tm_year + 1900, m = tm->tm_mon + 1, d = tm->tm_mday;
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return days * 86400 + tm->tm_hour * 3600 + tm->tm_min * 60 + tm->tm_sec;
}

static bool asn1_secs(const ASN1_TIME *at, int64_t *out)
{
    struct tm tm;
    if (!at || ASN1_TIME_to_tm(at, &tm) != 1)
        return false;
    *out = utc_secs(&tm);
    return true;
}

/* RFC 9325 §4.2: SHA-1 and MD5 signatures are forgeable. */
static bool weak_hash(int sig_nid)
{
    int md = NID_undef, pk = NID_undef;
    if (!OBJ_find_sigid_algs(sig_nid, &md, &pk))
        return false;
    return md == NID_sha1 || md == NID_md5 || md == NID_md4 || md == NID_md2 || md == NID_md5_sha1;
}

static void sig_name(const X509 *x, char *out, size_t cap)
{
    const char *n = OBJ_nid2ln(X509_get_signature_nid(x));
    snprintf(out, cap, "%s", n ? n : "");
}

/* The key of the server's certificate (RFC 9325 §4.1: 2048 bits at least
 * for RSA and DSA, 224 for elliptic curves). */
static void key_of(X509 *leaf, struct mx_tls_cert_check *c)
{
    EVP_PKEY *pk = X509_get0_pubkey(leaf);
    if (!pk)
        return;
    int bits = EVP_PKEY_get_bits(pk);
    c->key_bits = bits > 0 ? (uint32_t)bits : 0;
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        c->key_type = "RSA";
        c->weak_key = c->key_bits && c->key_bits < 2048;
        break;
    case EVP_PKEY_DSA:
        c->key_type = "DSA";
        c->weak_key = c->key_bits && c->key_bits < 2048;
        break;
    case EVP_PKEY_EC:
        c->key_type = "EC";
        c->weak_key = c->key_bits && c->key_bits < 224;
        break;
    case EVP_PKEY_ED25519:
        c->key_type = "Ed25519";
        break;
    case EVP_PKEY_ED448:
        c->key_type = "Ed448";
        break;
    default:
        c->key_type = "other";
        break;
    }
}

/* OpenSSL's verdict in mxray's own words, stable across OpenSSL versions. */
static void verdict(int err, char *out, size_t cap)
{
    const char *w;
    switch (err) {
    case X509_V_OK:
        w = "ok";
        break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        w = "self-signed";
        break;
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        w = "untrusted root";
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        w = "unknown issuer";
        break;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
        w = "bad signature";
        break;
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
        w = "invalid CA";
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        w = "not for servers";
        break;
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        w = "rejected";
        break;
    default:
        snprintf(out, cap, "error %d", err);
        return;
    }
    snprintf(out, cap, "%s", w);
}

/* RFC 5280 §6 against the store, dates aside (they are judged against the
 * capture's time, not the clock: see validity below); a partial chain ends
 * at any certificate of the store (X509_V_FLAG_PARTIAL_CHAIN). */
static void verify(const struct mx_tls_trust *tr, X509 *leaf, STACK_OF(X509) * sent, struct mx_tls_cert_check *c)
{
    if (!tr->store) {
        snprintf(c->verify, sizeof(c->verify), "not checked");
        return;
    }
    X509_STORE_CTX *x = X509_STORE_CTX_new();
    if (!x || X509_STORE_CTX_init(x, trust_store(tr), leaf, sent) != 1)
        goto out; /* out of memory: verify stays null */
    X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(x);
    X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
    X509_STORE_CTX_set_purpose(x, X509_PURPOSE_SSL_SERVER); /* RFC 5280 §4.2.1.12 serverAuth */
    int ok = X509_verify_cert(x);
    verdict(ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(x), c->verify, sizeof(c->verify));
out:
    X509_STORE_CTX_free(x);
}

/* RFC 6125 §6.4: the name against the SAN dNSNames (the CN when there are
 * none), wildcards only as a whole left-most label. */
static bool name_ok(X509 *leaf, const char *name)
{
    return X509_check_host(leaf, name, strlen(name), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

/* A DNS host name worth checking: letters, digits, '-', '.', with a dot,
 * not an address literal. */
static bool host_name(struct mx_slice n)
{
    bool dot = false, alpha = false;
    if (!n.len || n.len > MX_TLS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n.len; i++) {
        uint8_t ch = n.ptr[i];
        if (ch == '.')
            dot = true;
        else if ((ch | 32) >= 'a' && (ch | 32) <= 'z')
            alpha = true;
        else if (!(ch >= '0' && ch <= '9') && ch != '-' && ch != '_')
            return false;
    }
    return dot && alpha;
}

/* ---- Remembered checks ---- */

/* A server shows the same chain to every client: its check (d2i_X509 of
 * each certificate, signatures verified) is remembered with the chain's
 * bytes, the name and the store, in TLS_CHECK_CACHE entries replaced in
 * turn, one set for the process under a lock; a chain over TLS_CHECK_BYTES
 * is judged each time. A lookup compares bytes (it stops at the first that
 * differs). The capture time is not part of the key: the dates are kept,
 * and validity judged at each use. */
#define TLS_CHECK_CACHE 16
#define TLS_CHECK_BYTES (32u << 10)
struct check_memo {
    const struct mx_tls_trust *trust;
    size_t n;
    bool cut, has_times;
    uint32_t lens[MX_TLS_CHAIN_MAX];
    uint8_t *bytes; /* the chain, concatenated; NULL: the entry is empty */
    char name[MX_TLS_NAME_MAX + 1];
    const char *from;
    struct mx_tls_cert_check c;
    int64_t not_before, not_after;
};
static struct check_memo check_memo[TLS_CHECK_CACHE];
static unsigned check_memo_next;
static pthread_mutex_t check_memo_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether entry m holds this chain, name and store. */
static bool memo_is(const struct check_memo *m, const struct mx_tls_trust *trust, const struct mx_slice *chain,
                    size_t n, bool cut, const char *name, const char *from)
{
    if (!m->bytes || m->trust != trust || m->n != n || m->cut != cut || m->from != from || strcmp(m->name, name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (m->lens[i] != chain[i].len)
            return false;
    const uint8_t *p = m->bytes;
    for (size_t i = 0; i < n; p += chain[i].len, i++)
        if (memcmp(p, chain[i].ptr, chain[i].len))
            return false;
    return true;
}

static bool memo_recall(const struct mx_tls_trust *trust, const struct mx_slice *chain, size_t n, bool cut,
                        const char *name, const char *from, struct mx_tls_cert_check *c, bool *has_times, int64_t *nb,
                        int64_t *na)
{
    bool found = false;
    pthread_mutex_lock(&check_memo_lock);
    for (unsigned i = 0; i < TLS_CHECK_CACHE && !found; i++) {
        const struct check_memo *m = &check_memo[i];
        if (memo_is(m, trust, chain, n, cut, name, from)) {
            *c = m->c;
            *has_times = m->has_times;
            *nb = m->not_before;
            *na = m->not_after;
            found = true;
        }
    }
    pthread_mutex_unlock(&check_memo_lock);
    return found;
}

static void memo_keep(const struct mx_tls_trust *trust, const struct mx_slice *chain, size_t n, bool cut,
                      const char *name, const char *from, const struct mx_tls_cert_check *c, bool has_times, int64_t nb,
                      int64_t na)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += chain[i].len;
    if (total > TLS_CHECK_BYTES)
        return;
    uint8_t *b = malloc(total ? total : 1);
    if (!b)
        return; /* out of memory: judged again next time */
    uint8_t *p = b;
    for (size_t i = 0; i < n; p += chain[i].len, i++)
        memcpy(p, chain[i].ptr, chain[i].len);
    pthread_mutex_lock(&check_memo_lock);
    struct check_memo *m = &check_memo[check_memo_next++ % TLS_CHECK_CACHE];
    free(m->bytes);
    m->bytes = b;
    m->trust = trust;
    m->n = n;
    m->cut = cut;
    for (size_t i = 0; i < n; i++)
        m->lens[i] = (uint32_t)chain[i].len;
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->from = from;
    m->c = *c;
    m->has_times = has_times;
    m->not_before = nb;
    m->not_after = na;
    pthread_mutex_unlock(&check_memo_lock);
}

/* ---- The check ---- */

/* Everything but the validity, which depends on the capture's time. */
static void judge(const struct mx_tls_trust *trust, const struct mx_slice *chain, size_t n, const char *name,
                  struct mx_tls_cert_check *c, bool *has_times, int64_t *nb, int64_t *na)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *sent = sk_X509_new_null();
    if (!sent)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *q = chain[i].ptr;
        X509 *x = d2i_X509(NULL, &q, (long)chain[i].len);
        if (!x) {
            if (!i)
                goto out; /* the server's own does not parse: TLS_CERTIFICATE_INVALID says so */
            continue;     /* an unreadable intermediate: the chain is verified without it */
        }
        if (!sk_X509_push(sent, x)) {
            X509_free(x);
            goto out;
        }
        if (!i)
            leaf = x;
        /* RFC 9325 §4.2: a SHA-1 or MD5 signature, a root's own signature aside (nothing verifies it). */
        if (!c->weak_sig[0] && weak_hash(X509_get_signature_nid(x)) && !(i && X509_self_signed(x, 0) == 1)) {
            sig_name(x, c->weak_sig, sizeof(c->weak_sig));
            c->weak_sig_depth = (uint8_t)i;
        }
    }
    c->judged = true;
    sig_name(leaf, c->sig_alg, sizeof(c->sig_alg));
    key_of(leaf, c);
    *has_times = asn1_secs(X509_get0_notBefore(leaf), nb) && asn1_secs(X509_get0_notAfter(leaf), na);
    if (trust) {
        c->store = trust->kind;
        verify(trust, leaf, sent, c);
    }
    if (name)
        c->name_match = name_ok(leaf, name);
out:
    sk_X509_pop_free(sent, X509_free);
}

void mx_tls_cert_check(const struct mx_tls_trust *trust, const struct mx_slice *chain, size_t n, bool cut, mx_time_t at,
                       struct mx_slice name, const char *name_from, struct mx_tls_cert_check *out)
{
    memset(out, 0, sizeof(*out));
    if (!n)
        return;
    if (n > MX_TLS_CHAIN_MAX)
        n = MX_TLS_CHAIN_MAX;
    char host[MX_TLS_NAME_MAX + 1] = "";
    if (name_from && host_name(name)) {
        memcpy(host, name.ptr, name.len);
        host[name.len] = '\0';
    } else {
        name_from = NULL;
        name = mx_slice_make("", 0);
    }
    bool has_times = false;
    int64_t nb = 0, na = 0;
    if (!memo_recall(trust, chain, n, cut, host, name_from, out, &has_times, &nb, &na)) {
        judge(trust, chain, n, name_from ? host : NULL, out, &has_times, &nb, &na);
        if (name_from) {
            memcpy(out->name, host, sizeof(out->name));
            out->name_from = name_from;
        }
        out->chain_cut = cut;
        memo_keep(trust, chain, n, cut, host, name_from, out, has_times, nb, na);
    }
    /* RFC 5280 §4.1.2.5: valid from notBefore to notAfter inclusive, judged at the capture's time. */
    if (out->judged && has_times && at != MX_TIME_NONE) {
        int64_t s = at / 1000000000;
        out->validity = s < nb ? MX_TLS_NOT_YET_VALID : s > na ? MX_TLS_EXPIRED : MX_TLS_VALID;
    }
}

static void str_or_null(struct mx_event *ev, const char *key, const char *s)
{
    if (s && *s)
        mx_ev_str(ev, key, s);
    else
        mx_ev_null(ev, key);
}

void mx_tls_cert_describe(const struct mx_tls_cert_check *c, struct mx_event *ev)
{
    static const char *const validity[] = { NULL, "valid", "expired", "not_yet_valid" };
    if (c->key_type) {
        mx_ev_obj(ev, "key");
        mx_ev_str(ev, "type", c->key_type);
        mx_ev_uint(ev, "bits", c->key_bits);
        mx_ev_bool(ev, "weak", c->weak_key);
        mx_ev_end(ev);
    } else {
        mx_ev_null(ev, "key");
    }
    str_or_null(ev, "signature_algorithm", c->sig_alg);
    if (c->weak_sig[0]) {
        mx_ev_obj(ev, "weak_signature");
        mx_ev_str(ev, "algorithm", c->weak_sig);
        mx_ev_uint(ev, "depth", c->weak_sig_depth);
        mx_ev_end(ev);
    } else {
        mx_ev_null(ev, "weak_signature");
    }
    str_or_null(ev, "validity", validity[c->validity]);
    if (c->name_from) {
        mx_ev_obj(ev, "name_checked");
        mx_ev_wire(ev, "name", mx_slice_make(c->name, strlen(c->name)));
        mx_ev_str(ev, "from", c->name_from);
        mx_ev_bool(ev, "match", c->name_match);
        mx_ev_end(ev);
    } else {
        mx_ev_null(ev, "name_checked");
    }
    str_or_null(ev, "verify_store", c->store);
    str_or_null(ev, "verify", c->verify);
    if (c->chain_cut)
        mx_ev_bool(ev, "chain_truncated", true);
}

const char *mx_tls_cipher_weakness(const char *name)
{
    /* Most specific first: TLS_RSA_EXPORT_WITH_RC4_40_MD5 is EXPORT, TLS_DH_anon_WITH_3DES_... anonymous. */
    static const char *const pat[][2] = {
        { "WITH_NULL", "NULL" }, { "_NULL_", "NULL" }, { "EXPORT", "EXPORT" }, { "_anon_", "anonymous" },
        { "RC4", "RC4" },        { "3DES", "3DES" },   { "DES_192", "3DES" },  { "_DES_", "DES" },
        { "DES40", "DES" },      { "RC2", "RC2" },
    };
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(pat) / sizeof(pat[0]); i++)
        if (strstr(name, pat[i][0]))
            return pat[i][1];
    return NULL;
}
