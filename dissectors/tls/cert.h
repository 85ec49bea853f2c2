/* cert.h - the server's certificate chain judged as an auditor would: trust
 * (OpenSSL's X509_verify_cert against a store, RFC 5280 §6), validity at the
 * capture's time (RFC 5280 §4.1.2.5), the name (RFC 6125 §6), the key and the
 * signature (RFC 9325 §4), and the weakness of a chosen cipher suite. */
#ifndef MX_TLS_CERT_H
#define MX_TLS_CERT_H

#include "event/event.h"
#include "core/mx.h"

/* Certificates of a Certificate message that are verified; more are
 * dropped (TLS_CHAIN_LIMIT). Their bytes are bounded by the handshake cap. */
#define MX_TLS_CHAIN_MAX 10
#define MX_TLS_NAME_MAX 255 /* bytes of the name checked (RFC 1035 §2.3.4) */

/* Trust anchors, read-only once loaded and shared by every worker thread. */
struct mx_tls_trust;

/* Loads the trust anchors (--tls-ca): `ca_file` a PEM file of certificates,
 * "none" for no store at all (trust is then "not checked"), or NULL for
 * OpenSSL's default paths (the system store, /etc/ssl/certs). NULL with a
 * message in err when the file cannot be read or holds no certificate. */
struct mx_tls_trust *mx_tls_trust_load(const char *ca_file, char *err, size_t errlen);
void mx_tls_trust_free(struct mx_tls_trust *t);

enum mx_tls_validity {
    MX_TLS_VALIDITY_UNKNOWN = 0, /* no usable dates, or no capture time */
    MX_TLS_VALID,
    MX_TLS_EXPIRED,
    MX_TLS_NOT_YET_VALID,
};

/* What was judged of one chain; plain data (static strings, fixed buffers). */
struct mx_tls_cert_check {
    bool judged;          /* the server's certificate was read */
    bool chain_cut;       /* more than MX_TLS_CHAIN_MAX certificates: the rest were not verified */
    const char *store;    /* "system", "file", "none"; NULL: no trust was given (verify is null) */
    char verify[32];      /* "ok", a reason ("self-signed", "unknown issuer", ...), "not checked"; "" null */
    const char *key_type; /* "RSA", "EC", "DSA", "Ed25519", ...; NULL unknown */
    uint32_t key_bits;
    bool weak_key;          /* RSA or DSA under 2048 bits, EC under 224 (RFC 9325 §4.1) */
    char sig_alg[48];       /* the server's certificate's signature algorithm, "" unknown */
    char weak_sig[48];      /* the first MD5 or SHA-1 signature of the chain sent (a root's own aside) */
    uint8_t weak_sig_depth; /* its place in the chain, 0: the server's own */
    enum mx_tls_validity validity;
    char name[MX_TLS_NAME_MAX + 1]; /* the name checked, "" none */
    const char *name_from;          /* "sni" or "greeting"; NULL: no name to check */
    bool name_match;
};

/* Judges a chain: `chain` the n DER certificates of the Certificate message,
 * the server's own first (n <= MX_TLS_CHAIN_MAX; `cut` when more were sent);
 * `trust` the anchors or NULL; `at` the capture time of the Certificate
 * message (MX_TIME_NONE: unknown); `name` the host name to check (SNI, or
 * the name the server announced), with `name_from` naming its source, or an
 * empty slice. Never fails: what cannot be read is left unknown. Results
 * are remembered by chain and name (a few entries, shared by threads). */
void mx_tls_cert_check(const struct mx_tls_trust *trust, const struct mx_slice *chain, size_t n, bool cut, mx_time_t at,
                       struct mx_slice name, const char *name_from, struct mx_tls_cert_check *out);

/* Adds the check's fields to an open `certificate` object (docs/schema.json):
 * key, signature_algorithm, weak_signature, validity, name_checked,
 * verify_store, verify. */
void mx_tls_cert_describe(const struct mx_tls_cert_check *c, struct mx_event *ev);

/* A cipher suite's weakness by its IANA name (RFC 7525 §4.1, RFC 9325 §4.1):
 * "NULL", "EXPORT", "anonymous", "RC4", "DES", "3DES", "RC2", or NULL when
 * none of these. */
const char *mx_tls_cipher_weakness(const char *name);

#endif
