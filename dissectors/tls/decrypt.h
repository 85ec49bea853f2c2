/* decrypt.h - reading TLS records with the session's keys (--tls-keylog):
 * the key schedules of TLS 1.0-1.2 (RFC 5246 §6.3, the PRF of §5) and TLS
 * 1.3 (RFC 8446 §7.1-7.3), and the record protection of AEAD (RFC 5288,
 * RFC 6655, RFC 7905, RFC 8446 §5.2) and CBC suites (RFC 5246 §6.2.3.2,
 * RFC 7366). Every primitive is OpenSSL's EVP: nothing here is crypto of its own. */
#ifndef MX_TLS_DECRYPT_H
#define MX_TLS_DECRYPT_H

#include "core/mx.h"

enum mx_tls_bulk {
    MX_BULK_NONE = 0, /* a suite mxray does not decrypt (RC4, Camellia, ARIA, NULL, export) */
    MX_BULK_GCM,
    MX_BULK_CCM,
    MX_BULK_CHACHA,
    MX_BULK_CBC,
};

/* What a cipher suite means for its records. */
struct mx_tls_suite {
    enum mx_tls_bulk bulk;
    uint8_t key_len;    /* bytes of the write key */
    uint8_t tag_len;    /* AEAD: bytes of the tag */
    uint8_t mac_len;    /* CBC: bytes of the HMAC */
    uint8_t block;      /* CBC: the block size */
    const char *mac;    /* CBC: the HMAC's digest; "SHA1", "SHA256", "SHA384" */
    const char *prf;    /* TLS 1.2's PRF digest, TLS 1.3's HKDF digest */
    const char *cipher; /* OpenSSL's name of the bulk cipher */
};

/* The parameters of suite `id`, from its IANA name (`name`, as tls.c names
 * it): false when mxray does not decrypt it. */
bool mx_tls_suite_of(uint16_t id, const char *name, struct mx_tls_suite *s);

/* One direction's read state: keys, the next sequence number (RFC 5246
 * §6.1, RFC 8446 §5.3), and the OpenSSL context. */
struct mx_tls_keys {
    struct mx_tls_suite suite;
    uint16_t version; /* the negotiated version: 0x0301..0x0304 */
    bool etm;         /* encrypt_then_mac was negotiated (RFC 7366) */
    bool on;          /* the keys are set */
    uint8_t key[32];
    uint8_t mac_key[48]; /* CBC: the HMAC key */
    uint8_t iv[16];      /* AEAD: the fixed or implicit IV; TLS 1.0 CBC: the chained IV */
    uint8_t secret[64];  /* TLS 1.3: the traffic secret, for a KeyUpdate */
    uint8_t secret_len;
    uint64_t seq;
    void *evp;  /* EVP_CIPHER_CTX */
    void *ciph; /* EVP_CIPHER */
    void *mac;  /* CBC: EVP_MAC, HMAC */
};

/* TLS 1.0-1.2: both directions' keys from the master secret (48 bytes) and
 * the two randoms (RFC 5246 §6.3). False when OpenSSL fails. */
bool mx_tls12_keys(const struct mx_tls_suite *s, uint16_t version, bool etm, const uint8_t *master,
                   const uint8_t client_random[32], const uint8_t server_random[32], struct mx_tls_keys *c2s,
                   struct mx_tls_keys *s2c);

/* TLS 1.3: a direction's keys from a traffic secret (RFC 8446 §7.3); the
 * sequence number starts again at 0. */
bool mx_tls13_keys(const struct mx_tls_suite *s, const uint8_t *secret, size_t len, struct mx_tls_keys *k);

/* TLS 1.3 KeyUpdate (RFC 8446 §7.2): the next traffic secret and its keys. */
bool mx_tls13_key_update(struct mx_tls_keys *k);

/* Decrypts one record in place: `type` and `len` from its header, `body`
 * its bytes. On success *plain and *plain_len give the content within
 * body, and *inner_type its true type (TLS 1.3 hides it, RFC 8446 §5.2).
 * False when the record does not decrypt (a wrong key, a damaged record). */
bool mx_tls_decrypt(struct mx_tls_keys *k, uint8_t type, uint8_t *body, size_t len, uint8_t **plain, size_t *plain_len,
                    uint8_t *inner_type);

/* Frees the OpenSSL context; the keys are wiped. */
void mx_tls_keys_free(struct mx_tls_keys *k);

#endif
