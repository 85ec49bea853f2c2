/* tls.c - mxray's own TLS observer: a bounded, resumable reader of TLS records
 * (RFC 8446 §5, RFC 5246 §6.2) and of the handshake messages that cross in
 * clear (ClientHello, ServerHello, the TLS <= 1.2 Certificate), with the JA3,
 * JA3S and JA4 fingerprints. Application data is only counted, never kept,
 * unless the run has the session's keys (--tls-keylog): then records are
 * decrypted one at a time and their content handed to the host. */
#include "dissectors/tls/tls.h"

#include "core/cursor.h"
#include "dissectors/tls/cert.h"
#include "dissectors/tls/decrypt.h"
#include "dissectors/tls/keylog.h"
#include "core/digest.h"
#include "event/event.h"
#include "event/text.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <inttypes.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Caps (STYLE.md rule 4). */
#define TLS_MAX_RECORD ((1u << 14) + 2048) /* TLSCiphertext.length (RFC 5246 §6.2.3) */
#define TLS_MAX_HANDSHAKE (64u << 10)      /* a handshake message buffered whole; longer is skipped */
#define TLS_MAX_CIPHERS 512                /* cipher suites kept of a ClientHello */
#define TLS_MAX_EXTS 128                   /* extensions kept of a hello */
#define TLS_MAX_GROUPS 128                 /* supported_groups values */
#define TLS_MAX_FORMATS 32                 /* ec_point_formats values */
#define TLS_MAX_SIGALGS 128                /* signature_algorithms values */
#define TLS_MAX_VERSIONS 32                /* supported_versions values */
#define TLS_MAX_ALPN 16                    /* ALPN protocol names kept */
#define TLS_ALPN_BYTES 1024                /* their bytes */
#define TLS_MAX_SNI 1024                   /* bytes kept of the server name */
#define TLS_MAX_ALERTS 16                  /* alerts listed; more are not */
#define TLS_MAX_NAME 1024                  /* bytes kept of a subject or issuer */
#define TLS_ANOMALY_EMIT 8                 /* anomaly events per name per session */

/* Record content types (RFC 8446 §5.1, RFC 6520 §2). */
enum {
    CT_CHANGE_CIPHER_SPEC = 20,
    CT_ALERT = 21,
    CT_HANDSHAKE = 22,
    CT_APPLICATION_DATA = 23,
    CT_HEARTBEAT = 24,
};

/* Handshake message types (RFC 8446 §4). */
enum {
    HS_CLIENT_HELLO = 1,
    HS_SERVER_HELLO = 2,
    HS_CERTIFICATE = 11,
    HS_FINISHED = 20,
    HS_KEY_UPDATE = 24,
};

/* Extension types (RFC 8446 §4.2, RFC 6066 §3, RFC 7301 §3.1, RFC 8422 §5.1). */
enum {
    EXT_SERVER_NAME = 0,
    EXT_SUPPORTED_GROUPS = 10,
    EXT_EC_POINT_FORMATS = 11,
    EXT_SIGNATURE_ALGORITHMS = 13,
    EXT_ALPN = 16,
    EXT_ENCRYPT_THEN_MAC = 22,
    EXT_SUPPORTED_VERSIONS = 43,
};

/* Anomalies: stable names (STYLE.md rule 6), in the order of this list. */
#define TLS_ANOMALIES(X)                                                                                           \
    X(TLS_NOT_TLS, "the first bytes of a direction are not a TLS record (RFC 8446 §5.1); the rest of it is only " \
                   "counted")                                                                                      \
    X(TLS_RECORD_INVALID,                                                                                          \
      "a TLS record header with an unknown content type, a version other than 3.x or a length over "               \
      "2^14+2048 (RFC 5246 §6.2.3); the rest of that direction is only counted")                                   \
    X(TLS_HANDSHAKE_TOO_LONG, "a TLS handshake message longer than the 64 KiB cap: skipped, never buffered")       \
    X(TLS_HANDSHAKE_INVALID,                                                                                       \
      "a TLS handshake message cut by another record type (RFC 8446 §5.1), or a Certificate message whose "       \
      "lengths lie (RFC 5246 §7.4.2)")                                                                             \
    X(TLS_HELLO_INVALID,                                                                                           \
      "a ClientHello or ServerHello whose inner lengths lie (RFC 8446 §4.1.2); its fingerprints are left "        \
      "out")                                                                                                       \
    X(TLS_HELLO_LIMIT,                                                                                             \
      "a ClientHello or ServerHello with more ciphers, extensions or list values than mxray keeps; its "           \
      "fingerprints are left out")                                                                                 \
    X(TLS_CERTIFICATE_INVALID, "the server's certificate is not DER X.509 that OpenSSL can read (RFC 5280 §4.1)")  \
    X(SSLV2_CLIENT_HELLO, "the client opened with an SSL 2.0 ClientHello (RFC 6176 prohibits SSL 2.0)")            \
    X(TLS_HEARTBEAT, "a TLS heartbeat record (RFC 6520): unusual in mail, and the vector of Heartbleed")           \
    X(TLS_TRUNCATED, "the stream ended inside a TLS record")                                                       \
    X(TLS_DECRYPT_FAILED,                                                                                          \
      "a TLS record did not decrypt with the key log's secrets for its session (a wrong or stale key log, or a "   \
      "damaged record): the rest of that direction stays encrypted")                                               \
    X(TLS_CHAIN_LIMIT,                                                                                             \
      "the server's Certificate message holds more than 10 certificates: the chain is verified with the first "    \
      "10 only (certificate.chain_truncated)")

enum { TLS_ANOMALIES(MX_ANOMALY_ENUM) A__COUNT };

/* Raised through mx_ctx_anomaly_def: the table is not the calling dissector's
 * own when a mail dissector runs TLS after STARTTLS. */
static const struct mx_anomaly_def tls_anomalies[A__COUNT] = { TLS_ANOMALIES(MX_ANOMALY_DEF) };

/* The IANA TLS Cipher Suites registry (RFC 8447 §8), sorted by value. */
struct cipher_name {
    uint16_t id;
    const char *name;
};

static const struct cipher_name cipher_names[] = {
    { .id = 0x0000, .name = "TLS_NULL_WITH_NULL_NULL" },
    { .id = 0x0001, .name = "TLS_RSA_WITH_NULL_MD5" },
    { .id = 0x0002, .name = "TLS_RSA_WITH_NULL_SHA" },
    { .id = 0x0003, .name = "TLS_RSA_EXPORT_WITH_RC4_40_MD5" },
    { .id = 0x0004, .name = "TLS_RSA_WITH_RC4_128_MD5" },
    { .id = 0x0005, .name = "TLS_RSA_WITH_RC4_128_SHA" },
    { .id = 0x0006, .name = "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5" },
    { .id = 0x0007, .name = "TLS_RSA_WITH_IDEA_CBC_SHA" },
    { .id = 0x0008, .name = "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA" },
    { .id = 0x0009, .name = "TLS_RSA_WITH_DES_CBC_SHA" },
    { .id = 0x000a, .name = "TLS_RSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x000b, .name = "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA" },
    { .id = 0x000c, .name = "TLS_DH_DSS_WITH_DES_CBC_SHA" },
    { .id = 0x000d, .name = "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x000e, .name = "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA" },
    { .id = 0x000f, .name = "TLS_DH_RSA_WITH_DES_CBC_SHA" },
    { .id = 0x0010, .name = "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x0011, .name = "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA" },
    { .id = 0x0012, .name = "TLS_DHE_DSS_WITH_DES_CBC_SHA" },
    { .id = 0x0013, .name = "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x0014, .name = "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA" },
    { .id = 0x0015, .name = "TLS_DHE_RSA_WITH_DES_CBC_SHA" },
    { .id = 0x0016, .name = "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x0017, .name = "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5" },
    { .id = 0x0018, .name = "TLS_DH_anon_WITH_RC4_128_MD5" },
    { .id = 0x0019, .name = "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA" },
    { .id = 0x001a, .name = "TLS_DH_anon_WITH_DES_CBC_SHA" },
    { .id = 0x001b, .name = "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x001e, .name = "TLS_KRB5_WITH_DES_CBC_SHA" },
    { .id = 0x001f, .name = "TLS_KRB5_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x0020, .name = "TLS_KRB5_WITH_RC4_128_SHA" },
    { .id = 0x0021, .name = "TLS_KRB5_WITH_IDEA_CBC_SHA" },
    { .id = 0x0022, .name = "TLS_KRB5_WITH_DES_CBC_MD5" },
    { .id = 0x0023, .name = "TLS_KRB5_WITH_3DES_EDE_CBC_MD5" },
    { .id = 0x0024, .name = "TLS_KRB5_WITH_RC4_128_MD5" },
    { .id = 0x0025, .name = "TLS_KRB5_WITH_IDEA_CBC_MD5" },
    { .id = 0x0026, .name = "TLS_KRB5_EXPORT_WITH_DES_CBC_40_SHA" },
    { .id = 0x0027, .name = "TLS_KRB5_EXPORT_WITH_RC2_CBC_40_SHA" },
    { .id = 0x0028, .name = "TLS_KRB5_EXPORT_WITH_RC4_40_SHA" },
    { .id = 0x0029, .name = "TLS_KRB5_EXPORT_WITH_DES_CBC_40_MD5" },
    { .id = 0x002a, .name = "TLS_KRB5_EXPORT_WITH_RC2_CBC_40_MD5" },
    { .id = 0x002b, .name = "TLS_KRB5_EXPORT_WITH_RC4_40_MD5" },
    { .id = 0x002c, .name = "TLS_PSK_WITH_NULL_SHA" },
    { .id = 0x002d, .name = "TLS_DHE_PSK_WITH_NULL_SHA" },
    { .id = 0x002e, .name = "TLS_RSA_PSK_WITH_NULL_SHA" },
    { .id = 0x002f, .name = "TLS_RSA_WITH_AES_128_CBC_SHA" },
    { .id = 0x0030, .name = "TLS_DH_DSS_WITH_AES_128_CBC_SHA" },
    { .id = 0x0031, .name = "TLS_DH_RSA_WITH_AES_128_CBC_SHA" },
    { .id = 0x0032, .name = "TLS_DHE_DSS_WITH_AES_128_CBC_SHA" },
    { .id = 0x0033, .name = "TLS_DHE_RSA_WITH_AES_128_CBC_SHA" },
    { .id = 0x0034, .name = "TLS_DH_anon_WITH_AES_128_CBC_SHA" },
    { .id = 0x0035, .name = "TLS_RSA_WITH_AES_256_CBC_SHA" },
    { .id = 0x0036, .name = "TLS_DH_DSS_WITH_AES_256_CBC_SHA" },
    { .id = 0x0037, .name = "TLS_DH_RSA_WITH_AES_256_CBC_SHA" },
    { .id = 0x0038, .name = "TLS_DHE_DSS_WITH_AES_256_CBC_SHA" },
    { .id = 0x0039, .name = "TLS_DHE_RSA_WITH_AES_256_CBC_SHA" },
    { .id = 0x003a, .name = "TLS_DH_anon_WITH_AES_256_CBC_SHA" },
    { .id = 0x003b, .name = "TLS_RSA_WITH_NULL_SHA256" },
    { .id = 0x003c, .name = "TLS_RSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0x003d, .name = "TLS_RSA_WITH_AES_256_CBC_SHA256" },
    { .id = 0x003e, .name = "TLS_DH_DSS_WITH_AES_128_CBC_SHA256" },
    { .id = 0x003f, .name = "TLS_DH_RSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0x0040, .name = "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256" },
    { .id = 0x0041, .name = "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA" },
    { .id = 0x0042, .name = "TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA" },
    { .id = 0x0043, .name = "TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA" },
    { .id = 0x0044, .name = "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA" },
    { .id = 0x0045, .name = "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA" },
    { .id = 0x0046, .name = "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA" },
    { .id = 0x0067, .name = "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0x0068, .name = "TLS_DH_DSS_WITH_AES_256_CBC_SHA256" },
    { .id = 0x0069, .name = "TLS_DH_RSA_WITH_AES_256_CBC_SHA256" },
    { .id = 0x006a, .name = "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256" },
    { .id = 0x006b, .name = "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256" },
    { .id = 0x006c, .name = "TLS_DH_anon_WITH_AES_128_CBC_SHA256" },
    { .id = 0x006d, .name = "TLS_DH_anon_WITH_AES_256_CBC_SHA256" },
    { .id = 0x0084, .name = "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA" },
    { .id = 0x0085, .name = "TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA" },
    { .id = 0x0086, .name = "TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA" },
    { .id = 0x0087, .name = "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA" },
    { .id = 0x0088, .name = "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA" },
    { .id = 0x0089, .name = "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA" },
    { .id = 0x008a, .name = "TLS_PSK_WITH_RC4_128_SHA" },
    { .id = 0x008b, .name = "TLS_PSK_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x008c, .name = "TLS_PSK_WITH_AES_128_CBC_SHA" },
    { .id = 0x008d, .name = "TLS_PSK_WITH_AES_256_CBC_SHA" },
    { .id = 0x008e, .name = "TLS_DHE_PSK_WITH_RC4_128_SHA" },
    { .id = 0x008f, .name = "TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x0090, .name = "TLS_DHE_PSK_WITH_AES_128_CBC_SHA" },
    { .id = 0x0091, .name = "TLS_DHE_PSK_WITH_AES_256_CBC_SHA" },
    { .id = 0x0092, .name = "TLS_RSA_PSK_WITH_RC4_128_SHA" },
    { .id = 0x0093, .name = "TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0x0094, .name = "TLS_RSA_PSK_WITH_AES_128_CBC_SHA" },
    { .id = 0x0095, .name = "TLS_RSA_PSK_WITH_AES_256_CBC_SHA" },
    { .id = 0x0096, .name = "TLS_RSA_WITH_SEED_CBC_SHA" },
    { .id = 0x0097, .name = "TLS_DH_DSS_WITH_SEED_CBC_SHA" },
    { .id = 0x0098, .name = "TLS_DH_RSA_WITH_SEED_CBC_SHA" },
    { .id = 0x0099, .name = "TLS_DHE_DSS_WITH_SEED_CBC_SHA" },
    { .id = 0x009a, .name = "TLS_DHE_RSA_WITH_SEED_CBC_SHA" },
    { .id = 0x009b, .name = "TLS_DH_anon_WITH_SEED_CBC_SHA" },
    { .id = 0x009c, .name = "TLS_RSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0x009d, .name = "TLS_RSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0x009e, .name = "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0x009f, .name = "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00a0, .name = "TLS_DH_RSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00a1, .name = "TLS_DH_RSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00a2, .name = "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00a3, .name = "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00a4, .name = "TLS_DH_DSS_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00a5, .name = "TLS_DH_DSS_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00a6, .name = "TLS_DH_anon_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00a7, .name = "TLS_DH_anon_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00a8, .name = "TLS_PSK_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00a9, .name = "TLS_PSK_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00aa, .name = "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00ab, .name = "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00ac, .name = "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256" },
    { .id = 0x00ad, .name = "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384" },
    { .id = 0x00ae, .name = "TLS_PSK_WITH_AES_128_CBC_SHA256" },
    { .id = 0x00af, .name = "TLS_PSK_WITH_AES_256_CBC_SHA384" },
    { .id = 0x00b0, .name = "TLS_PSK_WITH_NULL_SHA256" },
    { .id = 0x00b1, .name = "TLS_PSK_WITH_NULL_SHA384" },
    { .id = 0x00b2, .name = "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256" },
    { .id = 0x00b3, .name = "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384" },
    { .id = 0x00b4, .name = "TLS_DHE_PSK_WITH_NULL_SHA256" },
    { .id = 0x00b5, .name = "TLS_DHE_PSK_WITH_NULL_SHA384" },
    { .id = 0x00b6, .name = "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256" },
    { .id = 0x00b7, .name = "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384" },
    { .id = 0x00b8, .name = "TLS_RSA_PSK_WITH_NULL_SHA256" },
    { .id = 0x00b9, .name = "TLS_RSA_PSK_WITH_NULL_SHA384" },
    { .id = 0x00ba, .name = "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0x00bb, .name = "TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0x00bc, .name = "TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0x00bd, .name = "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0x00be, .name = "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0x00bf, .name = "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0x00c0, .name = "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256" },
    { .id = 0x00c1, .name = "TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA256" },
    { .id = 0x00c2, .name = "TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA256" },
    { .id = 0x00c3, .name = "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256" },
    { .id = 0x00c4, .name = "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256" },
    { .id = 0x00c5, .name = "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256" },
    { .id = 0x00c6, .name = "TLS_SM4_GCM_SM3" },
    { .id = 0x00c7, .name = "TLS_SM4_CCM_SM3" },
    { .id = 0x00ff, .name = "TLS_EMPTY_RENEGOTIATION_INFO_SCSV" },
    { .id = 0x1301, .name = "TLS_AES_128_GCM_SHA256" },
    { .id = 0x1302, .name = "TLS_AES_256_GCM_SHA384" },
    { .id = 0x1303, .name = "TLS_CHACHA20_POLY1305_SHA256" },
    { .id = 0x1304, .name = "TLS_AES_128_CCM_SHA256" },
    { .id = 0x1305, .name = "TLS_AES_128_CCM_8_SHA256" },
    { .id = 0x1306, .name = "TLS_AEGIS_256_SHA512" },
    { .id = 0x1307, .name = "TLS_AEGIS_128L_SHA256" },
    { .id = 0x5600, .name = "TLS_FALLBACK_SCSV" },
    { .id = 0xc001, .name = "TLS_ECDH_ECDSA_WITH_NULL_SHA" },
    { .id = 0xc002, .name = "TLS_ECDH_ECDSA_WITH_RC4_128_SHA" },
    { .id = 0xc003, .name = "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc004, .name = "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA" },
    { .id = 0xc005, .name = "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA" },
    { .id = 0xc006, .name = "TLS_ECDHE_ECDSA_WITH_NULL_SHA" },
    { .id = 0xc007, .name = "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA" },
    { .id = 0xc008, .name = "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc009, .name = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" },
    { .id = 0xc00a, .name = "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA" },
    { .id = 0xc00b, .name = "TLS_ECDH_RSA_WITH_NULL_SHA" },
    { .id = 0xc00c, .name = "TLS_ECDH_RSA_WITH_RC4_128_SHA" },
    { .id = 0xc00d, .name = "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc00e, .name = "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA" },
    { .id = 0xc00f, .name = "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA" },
    { .id = 0xc010, .name = "TLS_ECDHE_RSA_WITH_NULL_SHA" },
    { .id = 0xc011, .name = "TLS_ECDHE_RSA_WITH_RC4_128_SHA" },
    { .id = 0xc012, .name = "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc013, .name = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" },
    { .id = 0xc014, .name = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" },
    { .id = 0xc015, .name = "TLS_ECDH_anon_WITH_NULL_SHA" },
    { .id = 0xc016, .name = "TLS_ECDH_anon_WITH_RC4_128_SHA" },
    { .id = 0xc017, .name = "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc018, .name = "TLS_ECDH_anon_WITH_AES_128_CBC_SHA" },
    { .id = 0xc019, .name = "TLS_ECDH_anon_WITH_AES_256_CBC_SHA" },
    { .id = 0xc01a, .name = "TLS_SRP_SHA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc01b, .name = "TLS_SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc01c, .name = "TLS_SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc01d, .name = "TLS_SRP_SHA_WITH_AES_128_CBC_SHA" },
    { .id = 0xc01e, .name = "TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA" },
    { .id = 0xc01f, .name = "TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA" },
    { .id = 0xc020, .name = "TLS_SRP_SHA_WITH_AES_256_CBC_SHA" },
    { .id = 0xc021, .name = "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA" },
    { .id = 0xc022, .name = "TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA" },
    { .id = 0xc023, .name = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0xc024, .name = "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384" },
    { .id = 0xc025, .name = "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0xc026, .name = "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384" },
    { .id = 0xc027, .name = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0xc028, .name = "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384" },
    { .id = 0xc029, .name = "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256" },
    { .id = 0xc02a, .name = "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384" },
    { .id = 0xc02b, .name = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0xc02c, .name = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0xc02d, .name = "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0xc02e, .name = "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0xc02f, .name = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0xc030, .name = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0xc031, .name = "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256" },
    { .id = 0xc032, .name = "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384" },
    { .id = 0xc033, .name = "TLS_ECDHE_PSK_WITH_RC4_128_SHA" },
    { .id = 0xc034, .name = "TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA" },
    { .id = 0xc035, .name = "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA" },
    { .id = 0xc036, .name = "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA" },
    { .id = 0xc037, .name = "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256" },
    { .id = 0xc038, .name = "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384" },
    { .id = 0xc039, .name = "TLS_ECDHE_PSK_WITH_NULL_SHA" },
    { .id = 0xc03a, .name = "TLS_ECDHE_PSK_WITH_NULL_SHA256" },
    { .id = 0xc03b, .name = "TLS_ECDHE_PSK_WITH_NULL_SHA384" },
    { .id = 0xc03c, .name = "TLS_RSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc03d, .name = "TLS_RSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc03e, .name = "TLS_DH_DSS_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc03f, .name = "TLS_DH_DSS_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc040, .name = "TLS_DH_RSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc041, .name = "TLS_DH_RSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc042, .name = "TLS_DHE_DSS_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc043, .name = "TLS_DHE_DSS_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc044, .name = "TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc045, .name = "TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc046, .name = "TLS_DH_anon_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc047, .name = "TLS_DH_anon_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc048, .name = "TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc049, .name = "TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc04a, .name = "TLS_ECDH_ECDSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc04b, .name = "TLS_ECDH_ECDSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc04c, .name = "TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc04d, .name = "TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc04e, .name = "TLS_ECDH_RSA_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc04f, .name = "TLS_ECDH_RSA_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc050, .name = "TLS_RSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc051, .name = "TLS_RSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc052, .name = "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc053, .name = "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc054, .name = "TLS_DH_RSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc055, .name = "TLS_DH_RSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc056, .name = "TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc057, .name = "TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc058, .name = "TLS_DH_DSS_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc059, .name = "TLS_DH_DSS_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc05a, .name = "TLS_DH_anon_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc05b, .name = "TLS_DH_anon_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc05c, .name = "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc05d, .name = "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc05e, .name = "TLS_ECDH_ECDSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc05f, .name = "TLS_ECDH_ECDSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc060, .name = "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc061, .name = "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc062, .name = "TLS_ECDH_RSA_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc063, .name = "TLS_ECDH_RSA_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc064, .name = "TLS_PSK_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc065, .name = "TLS_PSK_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc066, .name = "TLS_DHE_PSK_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc067, .name = "TLS_DHE_PSK_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc068, .name = "TLS_RSA_PSK_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc069, .name = "TLS_RSA_PSK_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc06a, .name = "TLS_PSK_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc06b, .name = "TLS_PSK_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc06c, .name = "TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc06d, .name = "TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc06e, .name = "TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256" },
    { .id = 0xc06f, .name = "TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384" },
    { .id = 0xc070, .name = "TLS_ECDHE_PSK_WITH_ARIA_128_CBC_SHA256" },
    { .id = 0xc071, .name = "TLS_ECDHE_PSK_WITH_ARIA_256_CBC_SHA384" },
    { .id = 0xc072, .name = "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc073, .name = "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc074, .name = "TLS_ECDH_ECDSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc075, .name = "TLS_ECDH_ECDSA_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc076, .name = "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc077, .name = "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc078, .name = "TLS_ECDH_RSA_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc079, .name = "TLS_ECDH_RSA_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc07a, .name = "TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc07b, .name = "TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc07c, .name = "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc07d, .name = "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc07e, .name = "TLS_DH_RSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc07f, .name = "TLS_DH_RSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc080, .name = "TLS_DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc081, .name = "TLS_DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc082, .name = "TLS_DH_DSS_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc083, .name = "TLS_DH_DSS_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc084, .name = "TLS_DH_anon_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc085, .name = "TLS_DH_anon_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc086, .name = "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc087, .name = "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc088, .name = "TLS_ECDH_ECDSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc089, .name = "TLS_ECDH_ECDSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc08a, .name = "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc08b, .name = "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc08c, .name = "TLS_ECDH_RSA_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc08d, .name = "TLS_ECDH_RSA_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc08e, .name = "TLS_PSK_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc08f, .name = "TLS_PSK_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc090, .name = "TLS_DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc091, .name = "TLS_DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc092, .name = "TLS_RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256" },
    { .id = 0xc093, .name = "TLS_RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384" },
    { .id = 0xc094, .name = "TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc095, .name = "TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc096, .name = "TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc097, .name = "TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc098, .name = "TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc099, .name = "TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc09a, .name = "TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256" },
    { .id = 0xc09b, .name = "TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384" },
    { .id = 0xc09c, .name = "TLS_RSA_WITH_AES_128_CCM" },
    { .id = 0xc09d, .name = "TLS_RSA_WITH_AES_256_CCM" },
    { .id = 0xc09e, .name = "TLS_DHE_RSA_WITH_AES_128_CCM" },
    { .id = 0xc09f, .name = "TLS_DHE_RSA_WITH_AES_256_CCM" },
    { .id = 0xc0a0, .name = "TLS_RSA_WITH_AES_128_CCM_8" },
    { .id = 0xc0a1, .name = "TLS_RSA_WITH_AES_256_CCM_8" },
    { .id = 0xc0a2, .name = "TLS_DHE_RSA_WITH_AES_128_CCM_8" },
    { .id = 0xc0a3, .name = "TLS_DHE_RSA_WITH_AES_256_CCM_8" },
    { .id = 0xc0a4, .name = "TLS_PSK_WITH_AES_128_CCM" },
    { .id = 0xc0a5, .name = "TLS_PSK_WITH_AES_256_CCM" },
    { .id = 0xc0a6, .name = "TLS_DHE_PSK_WITH_AES_128_CCM" },
    { .id = 0xc0a7, .name = "TLS_DHE_PSK_WITH_AES_256_CCM" },
    { .id = 0xc0a8, .name = "TLS_PSK_WITH_AES_128_CCM_8" },
    { .id = 0xc0a9, .name = "TLS_PSK_WITH_AES_256_CCM_8" },
    { .id = 0xc0aa, .name = "TLS_PSK_DHE_WITH_AES_128_CCM_8" },
    { .id = 0xc0ab, .name = "TLS_PSK_DHE_WITH_AES_256_CCM_8" },
    { .id = 0xc0ac, .name = "TLS_ECDHE_ECDSA_WITH_AES_128_CCM" },
    { .id = 0xc0ad, .name = "TLS_ECDHE_ECDSA_WITH_AES_256_CCM" },
    { .id = 0xc0ae, .name = "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8" },
    { .id = 0xc0af, .name = "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8" },
    { .id = 0xc0b0, .name = "TLS_ECCPWD_WITH_AES_128_GCM_SHA256" },
    { .id = 0xc0b1, .name = "TLS_ECCPWD_WITH_AES_256_GCM_SHA384" },
    { .id = 0xc0b2, .name = "TLS_ECCPWD_WITH_AES_128_CCM_SHA256" },
    { .id = 0xc0b3, .name = "TLS_ECCPWD_WITH_AES_256_CCM_SHA384" },
    { .id = 0xc0b4, .name = "TLS_SHA256_SHA256" },
    { .id = 0xc0b5, .name = "TLS_SHA384_SHA384" },
    { .id = 0xc100, .name = "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC" },
    { .id = 0xc101, .name = "TLS_GOSTR341112_256_WITH_MAGMA_CTR_OMAC" },
    { .id = 0xc102, .name = "TLS_GOSTR341112_256_WITH_28147_CNT_IMIT" },
    { .id = 0xc103, .name = "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L" },
    { .id = 0xc104, .name = "TLS_GOSTR341112_256_WITH_MAGMA_MGM_L" },
    { .id = 0xc105, .name = "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_S" },
    { .id = 0xc106, .name = "TLS_GOSTR341112_256_WITH_MAGMA_MGM_S" },
    { .id = 0xcca8, .name = "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xcca9, .name = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xccaa, .name = "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xccab, .name = "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xccac, .name = "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xccad, .name = "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xccae, .name = "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256" },
    { .id = 0xd001, .name = "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256" },
    { .id = 0xd002, .name = "TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384" },
    { .id = 0xd003, .name = "TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256" },
    { .id = 0xd005, .name = "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256" },
};

/* SSL 2.0 cipher kinds (draft-hickman-netscape-ssl-00, appendix C). */
static const struct {
    uint32_t id;
    const char *name;
} sslv2_cipher_names[] = {
    { .id = 0x010080, .name = "SSL_CK_RC4_128_WITH_MD5" },
    { .id = 0x020080, .name = "SSL_CK_RC4_128_EXPORT40_WITH_MD5" },
    { .id = 0x030080, .name = "SSL_CK_RC2_128_CBC_WITH_MD5" },
    { .id = 0x040080, .name = "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5" },
    { .id = 0x050080, .name = "SSL_CK_IDEA_128_CBC_WITH_MD5" },
    { .id = 0x060040, .name = "SSL_CK_DES_64_CBC_WITH_MD5" },
    { .id = 0x0700c0, .name = "SSL_CK_DES_192_EDE3_CBC_WITH_MD5" },
};

/* Alert descriptions (RFC 8446 §6, RFC 5246 §7.2, RFC 6066 §5, RFC 7301 §3.2). */
static const struct {
    uint8_t id;
    const char *name;
} alert_names[] = {
    { .id = 0, .name = "close_notify" },
    { .id = 10, .name = "unexpected_message" },
    { .id = 20, .name = "bad_record_mac" },
    { .id = 21, .name = "decryption_failed" },
    { .id = 22, .name = "record_overflow" },
    { .id = 30, .name = "decompression_failure" },
    { .id = 40, .name = "handshake_failure" },
    { .id = 41, .name = "no_certificate" },
    { .id = 42, .name = "bad_certificate" },
    { .id = 43, .name = "unsupported_certificate" },
    { .id = 44, .name = "certificate_revoked" },
    { .id = 45, .name = "certificate_expired" },
    { .id = 46, .name = "certificate_unknown" },
    { .id = 47, .name = "illegal_parameter" },
    { .id = 48, .name = "unknown_ca" },
    { .id = 49, .name = "access_denied" },
    { .id = 50, .name = "decode_error" },
    { .id = 51, .name = "decrypt_error" },
    { .id = 60, .name = "export_restriction" },
    { .id = 70, .name = "protocol_version" },
    { .id = 71, .name = "insufficient_security" },
    { .id = 80, .name = "internal_error" },
    { .id = 86, .name = "inappropriate_fallback" },
    { .id = 90, .name = "user_canceled" },
    { .id = 100, .name = "no_renegotiation" },
    { .id = 109, .name = "missing_extension" },
    { .id = 110, .name = "unsupported_extension" },
    { .id = 111, .name = "certificate_unobtainable" },
    { .id = 112, .name = "unrecognized_name" },
    { .id = 113, .name = "bad_certificate_status_response" },
    { .id = 114, .name = "bad_certificate_hash_value" },
    { .id = 115, .name = "unknown_psk_identity" },
    { .id = 116, .name = "certificate_required" },
    { .id = 120, .name = "no_application_protocol" },
    { .id = 121, .name = "ech_required" },
};

static void keys_set(struct mx_tls *t);
static void keys_after(struct mx_tls *t, enum mx_dir d, uint8_t type);

/* HelloRetryRequest's ServerHello.random: SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3). */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

/* A ClientHello as read: a scratch allocation while it is parsed and
 * fingerprinted; struct offer keeps what the record shows. */
struct client_hello {
    bool v2;      /* in SSL 2.0 format */
    bool valid;   /* read to its end, every inner length consistent */
    bool limited; /* a list was longer than its cap */
    bool has_sni, has_alpn, has_versions;
    uint16_t version; /* legacy_version (RFC 8446 §4.1.2) */
    uint16_t n_ciphers, n_exts, n_groups, n_formats, n_sigalgs, n_versions, sni_len, alpn_used;
    uint16_t sni_wire; /* the name's length on the wire: more than sni_len when cut */
    uint8_t n_alpn;
    uint32_t ciphers[TLS_MAX_CIPHERS]; /* SSL 2.0 kinds are 24-bit */
    uint16_t exts[TLS_MAX_EXTS];
    uint16_t groups[TLS_MAX_GROUPS];
    uint8_t formats[TLS_MAX_FORMATS];
    uint16_t sigalgs[TLS_MAX_SIGALGS];
    uint16_t versions[TLS_MAX_VERSIONS];
    uint8_t sni[TLS_MAX_SNI];
    uint8_t alpn[TLS_ALPN_BYTES];
    uint16_t alpn_off[TLS_MAX_ALPN];
    uint8_t alpn_len[TLS_MAX_ALPN];
};

/* What the record keeps of the (first) ClientHello: about 150 bytes and the
 * exact lists, so that a flow costs little once its handshake is read. */
struct offer {
    bool seen; /* the first ClientHello was read (one after HelloRetryRequest is not) */
    bool v2, has_versions, has_sni;
    uint8_t n_alpn;
    uint16_t version, n_versions, n_ciphers, sni_len, alpn_used;
    uint16_t sni_wire; /* the name's length on the wire: more than sni_len when cut */
    uint16_t versions[TLS_MAX_VERSIONS];
    uint16_t alpn_off[TLS_MAX_ALPN];
    uint8_t alpn_len[TLS_MAX_ALPN];
    uint32_t *ciphers; /* n_ciphers; SSL 2.0 kinds are 24-bit */
    uint8_t *sni;      /* sni_len bytes */
    uint8_t *alpn;     /* alpn_used bytes: the names, alpn_off/alpn_len each */
};

/* What the server chose. */
struct server_hello {
    bool seen; /* a ServerHello (possibly only a HelloRetryRequest) was read */
    bool hrr;  /* the last one read was a HelloRetryRequest */
    bool valid, limited, has_alpn, has_version;
    uint16_t legacy_version, version, cipher, n_exts;
    uint8_t alpn_len;
    uint16_t exts[TLS_MAX_EXTS];
    uint8_t alpn[255];
    mx_frame_t first, last; /* the frames of the last one read */
};

/* The server's certificate (TLS <= 1.2, RFC 5246 §7.4.2). */
struct cert_info {
    bool seen, parsed, self_signed, has_times;
    uint32_t chain_length;
    uint16_t subject_len, issuer_len;
    uint32_t subject_wire, issuer_wire; /* their full lengths: more than kept when cut */
    char *subject, *issuer;             /* RFC 4514 text, at most TLS_MAX_NAME bytes each */
    char not_before[64], not_after[64];
    char sha256[65];
    mx_frame_t first, last;         /* the Certificate message's frames */
    struct mx_tls_cert_check check; /* trust, validity, name, key, signature (cert.c) */
};

struct alert {
    uint8_t dir, level, desc;
    mx_frame_t first, last;
};

enum dir_mode {
    M_START = 0, /* no byte yet, or the first header being read */
    M_RECORDS,   /* TLS records */
    M_V2,        /* the body of an SSL 2.0 ClientHello */
    M_DEAD,      /* not TLS, or a header lied: the rest is only counted */
};

/* One direction's reader. */
struct tls_dir {
    uint8_t mode;
    uint8_t hdr[5], hdr_have;
    uint8_t type;   /* content type of the current record */
    bool in_body;   /* hdr is complete: rec_left body bytes to come */
    bool enc;       /* TLS <= 1.2: records after our ChangeCipherSpec are encrypted */
    bool ccs;       /* a ChangeCipherSpec went by */
    bool count_app; /* the current record's bytes count as application data */
    bool lost;      /* a gap broke the record framing: nothing more is read */
    bool ended;
    bool hs_desync; /* a gap cut the handshake layer: ignore it to the record's end */
    bool hs_keep;   /* the current handshake message is buffered (else skipped) */
    bool alert_half;
    uint8_t alert0;
    uint8_t hs_hdr[4], hs_hdr_have;
    uint32_t rec_len, rec_left;
    uint32_t hs_len, hs_have;
    uint64_t off;       /* stream offset of the next byte */
    uint64_t rec_off;   /* of the current record's header */
    uint64_t hs_off;    /* of the current handshake message's header */
    uint64_t after_ccs; /* records after our ChangeCipherSpec */
    uint64_t app;       /* application data bytes */
    mx_frame_t alert_frame;
    uint8_t *hs_buf; /* the message being buffered (hs_len bytes) */
    /* Decryption (--tls-keylog) */
    bool dec;         /* the current record is read whole, to be decrypted */
    bool dec_damaged; /* a gap cut it: it cannot be decrypted */
    bool dec_failed;  /* a record did not decrypt: the rest of the direction is not read */
    uint8_t *rec_buf; /* the record (TLS_MAX_RECORD bytes) */
    uint32_t rec_have;
    uint64_t plain; /* bytes of application data decrypted */
    struct mx_tls_keys keys;
    struct mx_tls_keys next; /* TLS 1.3: the traffic keys after this side's Finished */
};

/* Where decryption stands (the record's "decryption", with --tls-keylog). */
enum dec_state {
    DEC_NONE = 0,    /* no key log */
    DEC_WAITING,     /* the hellos have not both been read */
    DEC_NO_KEY,      /* the key log has no secret for the session */
    DEC_UNSUPPORTED, /* a version or cipher suite mxray does not decrypt */
    DEC_ON,          /* the keys are set */
    DEC_FAILED,      /* a record did not decrypt with them */
};

struct mx_tls {
    struct mx_dissect_ctx *ctx;
    const char *how;
    const struct mx_keylog *keylog;
    enum dec_state dec;
    bool etm_offered, etm; /* encrypt_then_mac (RFC 7366 §2) in the ClientHello, and in the ServerHello */
    uint8_t client_random[32], server_random[32];
    bool midstream; /* the flow was picked up midstream: the first bytes may be mid-record */
    bool done;      /* the record was emitted */
    bool oom;
    bool tls13;          /* the server chose TLS 1.3 */
    bool cfin;           /* TLS 1.3: the client's first encrypted record (its Finished) went by */
    bool fatal;          /* a fatal alert crossed in clear */
    uint32_t s_flight;   /* TLS 1.3: encrypted server records before the client's Finished */
    uint64_t after_cfin; /* TLS 1.3: encrypted records either way after it */
    struct tls_dir dir[2];
    struct offer ch;
    struct server_hello sh;
    struct cert_info cert;
    char *ja3_string;
    size_t ja3_cap; /* bytes allocated for ja3_string */
    char ja3[33], ja3s[33], ja4[40];
    struct alert alerts[TLS_MAX_ALERTS];
    uint8_t n_alerts;
    uint8_t an_emitted[A__COUNT];
    mx_frame_t first, last;
    mx_time_t ts;
};

/* ---- Small helpers ---- */

/* RFC 8701 §2: GREASE values are 0x?A?A with both bytes equal. */
static bool is_grease(uint16_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static void hex_lower(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A digest of `n` bytes as lower-case hex into out (2 * size + 1 bytes). */
static bool digest_hex(const EVP_MD *md, const void *p, size_t n, char *out)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(p, n, d, &len, md, NULL))
        return false;
    hex_lower(d, len, out);
    return true;
}

static void version_name(uint16_t v, char *buf, size_t len)
{
    switch (v) {
    case 0x0002:
        snprintf(buf, len, "SSL 2.0");
        return;
    case 0x0300:
        snprintf(buf, len, "SSL 3.0");
        return;
    case 0x0301:
    case 0x0302:
    case 0x0303:
    case 0x0304:
        snprintf(buf, len, "TLS 1.%u", (unsigned)(v & 0xff) - 1);
        return;
    default:
        if ((v >> 8) == 0x7f) /* draft-ietf-tls-tls13 versions */
            snprintf(buf, len, "TLS 1.3 draft %u", (unsigned)(v & 0xff));
        else
            snprintf(buf, len, "0x%04x", (unsigned)v);
    }
}

/* A suite's IANA name, or NULL when the registry has none. */
static const char *cipher_iana(uint16_t id)
{
    size_t lo = 0, hi = MX_ARRAY_LEN(cipher_names);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cipher_names[mid].id == id)
            return cipher_names[mid].name;
        if (cipher_names[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void cipher_name(uint32_t id, char *buf, size_t len)
{
    if (id <= 0xffff) {
        const char *name = cipher_iana((uint16_t)id);
        if (name)
            mx_text_copy(buf, len, mx_slice_make(name, strlen(name)));
        else
            snprintf(buf, len, "0x%04x", (unsigned)id);
        return;
    }
    for (size_t i = 0; i < MX_ARRAY_LEN(sslv2_cipher_names); i++) {
        if (sslv2_cipher_names[i].id == id) {
            mx_text_copy(buf, len, mx_slice_make(sslv2_cipher_names[i].name, strlen(sslv2_cipher_names[i].name)));
            return;
        }
    }
    snprintf(buf, len, "0x%06x", (unsigned)id);
}

static void alert_name(uint8_t id, char *buf, size_t len)
{
    for (size_t i = 0; i < MX_ARRAY_LEN(alert_names); i++) {
        if (alert_names[i].id == id) {
            mx_text_copy(buf, len, mx_slice_make(alert_names[i].name, strlen(alert_names[i].name)));
            return;
        }
    }
    snprintf(buf, len, "unknown (%u)", (unsigned)id);
}

/* A sub-cursor over the next n bytes of c; sets c->err when they are not there. */
static struct mx_cursor cursor_take(struct mx_cursor *c, size_t n)
{
    struct mx_cursor sub;
    if (!mx_cursor_has(c, n)) {
        c->err = true;
        mx_cursor_init(&sub, NULL, 0);
        sub.err = true;
        return sub;
    }
    mx_cursor_init(&sub, mx_cursor_here(c), n);
    c->pos += n;
    return sub;
}

static uint32_t cursor_be24(struct mx_cursor *c)
{
    uint32_t hi = mx_cursor_u8(c);
    return (hi << 16) | mx_cursor_be16(c);
}

static void anomaly(struct mx_tls *t, enum mx_dir d, int a, uint64_t off, uint64_t len)
{
    if (t->an_emitted[a] >= TLS_ANOMALY_EMIT)
        return;
    t->an_emitted[a]++;
    mx_ctx_anomaly_def(t->ctx, d, &tls_anomalies[a], off, len);
}

static void hs_reset(struct tls_dir *s)
{
    free(s->hs_buf);
    s->hs_buf = NULL;
    s->hs_hdr_have = 0;
    s->hs_len = s->hs_have = 0;
    s->hs_keep = false;
}

/* ---- Fingerprints ---- */

static int cmp_u16(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

/* Fingerprint text, built without printf (it ran some fifty times per
 * handshake): a separator, then a number in decimal or four hex digits. The
 * callers size the buffers for their largest lists. */
static size_t put_dec(char *s, size_t n, const char *sep, unsigned v)
{
    char d[10];
    size_t k = 0;
    while (*sep)
        s[n++] = *sep++;
    do {
        d[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        s[n++] = d[--k];
    return n;
}

static size_t put_hex4(char *s, size_t n, const char *sep, unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    while (*sep)
        s[n++] = *sep++;
    for (int sh = 12; sh >= 0; sh -= 4)
        s[n++] = digits[(v >> sh) & 15];
    return n;
}

/* JA3 (Salesforce): legacy_version, ciphers, extensions, groups and point
 * formats in decimal, as sent, GREASE left out; its MD5. */
static void make_ja3(struct mx_tls *t, const struct client_hello *ch)
{
    /* Each value: at most 8 digits (ciphers are 24-bit for SSLv2) and a '-'. */
    size_t cap = 16 + 9 * ((size_t)ch->n_ciphers + ch->n_exts + ch->n_groups + ch->n_formats);
    char *s = malloc(cap);
    if (!s) {
        t->oom = true;
        return;
    }
    size_t n = put_dec(s, 0, "", (unsigned)ch->version);
    const char *sep = ",";
    for (size_t i = 0; i < ch->n_ciphers; i++)
        if (!is_grease((uint16_t)ch->ciphers[i])) {
            n = put_dec(s, n, sep, (unsigned)ch->ciphers[i]);
            sep = "-";
        }
    if (*sep == ',')
        s[n++] = ',';
    sep = ",";
    for (size_t i = 0; i < ch->n_exts; i++)
        if (!is_grease(ch->exts[i])) {
            n = put_dec(s, n, sep, (unsigned)ch->exts[i]);
            sep = "-";
        }
    if (*sep == ',')
        s[n++] = ',';
    sep = ",";
    for (size_t i = 0; i < ch->n_groups; i++)
        if (!is_grease(ch->groups[i])) {
            n = put_dec(s, n, sep, (unsigned)ch->groups[i]);
            sep = "-";
        }
    if (*sep == ',')
        s[n++] = ',';
    sep = ",";
    for (size_t i = 0; i < ch->n_formats; i++, sep = "-")
        n = put_dec(s, n, sep, (unsigned)ch->formats[i]);
    if (!ch->n_formats)
        s[n++] = ',';
    s[n] = '\0';
    t->ja3_string = s;
    t->ja3_cap = cap;
    if (!digest_hex(mx_md(MX_MD_MD5), s, n, t->ja3))
        t->ja3[0] = '\0';
}

/* The first 12 hex digits of SHA-256 of text (JA4's b and c parts). */
static void ja4_hash(const char *text, size_t n, char out[13])
{
    char full[65];
    if (!digest_hex(mx_md(MX_MD_SHA256), text, n, full)) {
        snprintf(out, 13, "000000000000");
        return;
    }
    memcpy(out, full, 12);
    out[12] = '\0';
}

static bool is_alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* JA4 (FoxIO, technical_details/JA4.md): t, version, d/i, cipher and
 * extension counts, ALPN first+last, then hashes of the sorted ciphers and of
 * the sorted extensions (SNI and ALPN left out) + "_" + signature algorithms
 * in order. GREASE is left out everywhere. */
static void make_ja4(struct mx_tls *t, const struct client_hello *ch)
{
    uint16_t v = 0;
    for (size_t i = 0; i < ch->n_versions; i++)
        if (!is_grease(ch->versions[i]) && ch->versions[i] > v)
            v = ch->versions[i];
    if (!ch->has_versions)
        v = ch->version;
    const char *ver = "00";
    switch (v) {
    case 0x0304:
        ver = "13";
        break;
    case 0x0303:
        ver = "12";
        break;
    case 0x0302:
        ver = "11";
        break;
    case 0x0301:
        ver = "10";
        break;
    case 0x0300:
        ver = "s3";
        break;
    case 0x0002:
        ver = "s2";
        break;
    default:
        break;
    }
    uint16_t ciphers[TLS_MAX_CIPHERS], exts[TLS_MAX_EXTS];
    size_t nc = 0, ne = 0, ne_all = 0;
    bool sni = false; /* the extension, whatever it holds */
    for (size_t i = 0; i < ch->n_ciphers; i++)
        if (!is_grease((uint16_t)ch->ciphers[i]))
            ciphers[nc++] = (uint16_t)ch->ciphers[i];
    for (size_t i = 0; i < ch->n_exts; i++) {
        if (is_grease(ch->exts[i]))
            continue;
        ne_all++;
        sni |= ch->exts[i] == EXT_SERVER_NAME;
        if (ch->exts[i] != EXT_SERVER_NAME && ch->exts[i] != EXT_ALPN)
            exts[ne++] = ch->exts[i];
    }
    char alpn[3] = "00";
    if (ch->n_alpn && ch->alpn_len[0]) {
        const uint8_t *a = ch->alpn + ch->alpn_off[0];
        uint8_t f = a[0], l = a[ch->alpn_len[0] - 1];
        if (is_alnum(f) && is_alnum(l)) {
            alpn[0] = (char)f;
            alpn[1] = (char)l;
        } else {
            static const char digits[] = "0123456789abcdef";
            alpn[0] = digits[f >> 4];
            alpn[1] = digits[l & 15];
        }
    }
    qsort(ciphers, nc, sizeof(ciphers[0]), cmp_u16);
    qsort(exts, ne, sizeof(exts[0]), cmp_u16);
    /* 5 bytes per value ("1301,"), plus "_" and the signature algorithms. */
    size_t cap = 5 * ((size_t)TLS_MAX_EXTS + TLS_MAX_SIGALGS + TLS_MAX_CIPHERS) + 8;
    char *text = malloc(cap);
    if (!text) {
        t->oom = true;
        return;
    }
    char b[13] = "000000000000", c[13] = "000000000000";
    size_t n = 0;
    for (size_t i = 0; i < nc; i++)
        n = put_hex4(text, n, i ? "," : "", ciphers[i]);
    if (nc)
        ja4_hash(text, n, b);
    n = 0;
    for (size_t i = 0; i < ne; i++)
        n = put_hex4(text, n, i ? "," : "", exts[i]);
    const char *sep = "_";
    for (size_t i = 0; i < ch->n_sigalgs; i++) {
        if (is_grease(ch->sigalgs[i]))
            continue;
        n = put_hex4(text, n, sep, ch->sigalgs[i]);
        sep = ",";
    }
    if (ne)
        ja4_hash(text, n, c);
    free(text);
    snprintf(t->ja4, sizeof(t->ja4), "t%s%c%02u%02u%s_%s_%s", ver, sni ? 'd' : 'i', (unsigned)(nc > 99 ? 99 : nc),
             (unsigned)(ne_all > 99 ? 99 : ne_all), alpn, b, c);
}

/* JA3S: the ServerHello's legacy_version, cipher and extensions in decimal; its MD5. */
static void make_ja3s(struct mx_tls *t)
{
    const struct server_hello *sh = &t->sh;
    char s[24 + 6 * TLS_MAX_EXTS];
    size_t n = put_dec(s, 0, "", (unsigned)sh->legacy_version);
    n = put_dec(s, n, ",", (unsigned)sh->cipher);
    s[n++] = ',';
    for (size_t i = 0; i < sh->n_exts; i++)
        n = put_dec(s, n, i ? "-" : "", (unsigned)sh->exts[i]);
    if (!digest_hex(mx_md(MX_MD_MD5), s, n, t->ja3s))
        t->ja3s[0] = '\0';
}

/* ---- Handshake messages ---- */

/* Appends v to a capped list, or sets `limited` when it is full. v is
 * evaluated either way: it is usually a cursor read that must advance. */
#define PUSH(arr, n, v, limited)     \
    do {                             \
        uint32_t push_v_ = (v);      \
        if ((n) < MX_ARRAY_LEN(arr)) \
            (arr)[(n)++] = push_v_;  \
        else                         \
            (limited) = true;        \
    } while (0)

/* The extensions of a ClientHello that the record and the fingerprints use. */
static void client_ext(struct client_hello *ch, uint16_t type, struct mx_cursor *e)
{
    switch (type) {
    case EXT_SERVER_NAME: { /* RFC 6066 §3: a list of (name_type, HostName) */
        struct mx_cursor l = cursor_take(e, mx_cursor_be16(e));
        while (!l.err && mx_cursor_left(&l)) {
            uint8_t nt = mx_cursor_u8(&l);
            struct mx_cursor name = cursor_take(&l, mx_cursor_be16(&l));
            if (!name.err && nt == 0 && !ch->has_sni) {
                ch->has_sni = true;
                size_t n = name.len < TLS_MAX_SNI ? name.len : TLS_MAX_SNI;
                memcpy(ch->sni, name.ptr, n);
                ch->sni_len = (uint16_t)n;
                ch->sni_wire = (uint16_t)name.len;
            }
        }
        if (l.err)
            e->err = true;
        break;
    }
    case EXT_SUPPORTED_GROUPS: { /* RFC 8446 §4.2.7 */
        struct mx_cursor l = cursor_take(e, mx_cursor_be16(e));
        if (l.len % 2)
            e->err = true;
        while (!e->err && mx_cursor_left(&l) >= 2)
            PUSH(ch->groups, ch->n_groups, mx_cursor_be16(&l), ch->limited);
        break;
    }
    case EXT_EC_POINT_FORMATS: { /* RFC 8422 §5.1.2 */
        struct mx_cursor l = cursor_take(e, mx_cursor_u8(e));
        while (!e->err && mx_cursor_left(&l))
            PUSH(ch->formats, ch->n_formats, mx_cursor_u8(&l), ch->limited);
        break;
    }
    case EXT_SIGNATURE_ALGORITHMS: { /* RFC 8446 §4.2.3 */
        struct mx_cursor l = cursor_take(e, mx_cursor_be16(e));
        if (l.len % 2)
            e->err = true;
        while (!e->err && mx_cursor_left(&l) >= 2)
            PUSH(ch->sigalgs, ch->n_sigalgs, mx_cursor_be16(&l), ch->limited);
        break;
    }
    case EXT_ALPN: { /* RFC 7301 §3.1: ProtocolName<1..2^8-1> list */
        ch->has_alpn = true;
        struct mx_cursor l = cursor_take(e, mx_cursor_be16(e));
        while (!l.err && mx_cursor_left(&l)) {
            struct mx_cursor name = cursor_take(&l, mx_cursor_u8(&l));
            if (name.err)
                break;
            if (ch->n_alpn < TLS_MAX_ALPN && ch->alpn_used + name.len <= TLS_ALPN_BYTES) {
                memcpy(ch->alpn + ch->alpn_used, name.ptr, name.len);
                ch->alpn_off[ch->n_alpn] = ch->alpn_used;
                ch->alpn_len[ch->n_alpn] = (uint8_t)name.len;
                ch->alpn_used = (uint16_t)(ch->alpn_used + name.len);
                ch->n_alpn++;
            }
        }
        if (l.err)
            e->err = true;
        break;
    }
    case EXT_SUPPORTED_VERSIONS: { /* RFC 8446 §4.2.1: versions<2..254> */
        ch->has_versions = true;
        struct mx_cursor l = cursor_take(e, mx_cursor_u8(e));
        if (l.len % 2)
            e->err = true;
        while (!e->err && mx_cursor_left(&l) >= 2)
            PUSH(ch->versions, ch->n_versions, mx_cursor_be16(&l), ch->limited);
        break;
    }
    default:
        mx_cursor_skip(e, mx_cursor_left(e));
        break;
    }
}

/* Keeps what the record shows of a parsed ClientHello. */
static void keep_offer(struct mx_tls *t, const struct client_hello *ch)
{
    struct offer *o = &t->ch;
    o->seen = true;
    o->v2 = ch->v2;
    o->version = ch->version;
    o->has_versions = ch->has_versions;
    o->n_versions = ch->n_versions;
    memcpy(o->versions, ch->versions, sizeof(o->versions));
    o->ciphers = malloc(((size_t)ch->n_ciphers + 1) * sizeof(*o->ciphers));
    o->sni = malloc((size_t)ch->sni_len + 1);
    o->alpn = malloc((size_t)ch->alpn_used + 1);
    if (!o->ciphers || !o->sni || !o->alpn) {
        t->oom = true;
        return;
    }
    o->n_ciphers = ch->n_ciphers;
    memcpy(o->ciphers, ch->ciphers, ch->n_ciphers * sizeof(*o->ciphers));
    o->has_sni = ch->has_sni;
    o->sni_len = ch->sni_len;
    o->sni_wire = ch->sni_wire;
    memcpy(o->sni, ch->sni, ch->sni_len);
    o->n_alpn = ch->n_alpn;
    o->alpn_used = ch->alpn_used;
    memcpy(o->alpn, ch->alpn, ch->alpn_used);
    memcpy(o->alpn_off, ch->alpn_off, sizeof(o->alpn_off));
    memcpy(o->alpn_len, ch->alpn_len, sizeof(o->alpn_len));
}

/* RFC 8446 §4.1.2, RFC 5246 §7.4.1.2. */
static void client_hello(struct mx_tls *t, const uint8_t *p, size_t n, uint64_t off)
{
    struct client_hello *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        t->oom = true;
        return;
    }
    struct mx_cursor c;
    mx_cursor_init(&c, p, n);
    ch->version = mx_cursor_be16(&c);
    uint8_t random[32];
    mx_cursor_copy(&c, random, sizeof(random));
    if (!c.err && !t->ch.seen)
        memcpy(t->client_random, random, sizeof(random)); /* the key log's index */
    uint8_t sid = mx_cursor_u8(&c);
    if (sid > 32)
        c.err = true;
    mx_cursor_skip(&c, sid);
    struct mx_cursor cs = cursor_take(&c, mx_cursor_be16(&c));
    if (cs.len % 2)
        c.err = true;
    while (!c.err && mx_cursor_left(&cs) >= 2)
        PUSH(ch->ciphers, ch->n_ciphers, mx_cursor_be16(&cs), ch->limited);
    mx_cursor_skip(&c, mx_cursor_u8(&c)); /* compression methods */
    if (!c.err && mx_cursor_left(&c)) {   /* extensions may be absent before TLS 1.3 */
        struct mx_cursor ext = cursor_take(&c, mx_cursor_be16(&c));
        while (!c.err && mx_cursor_left(&ext)) {
            uint16_t type = mx_cursor_be16(&ext);
            struct mx_cursor e = cursor_take(&ext, mx_cursor_be16(&ext));
            if (ext.err) {
                c.err = true;
                break;
            }
            PUSH(ch->exts, ch->n_exts, type, ch->limited);
            client_ext(ch, type, &e);
            if (e.err || mx_cursor_left(&e)) /* the inner lengths lie */
                c.err = true;
        }
        if (mx_cursor_left(&c))
            c.err = true; /* bytes after the extensions */
    }
    ch->valid = !c.err;
    if (!ch->valid)
        anomaly(t, MX_DIR_C2S, A_TLS_HELLO_INVALID, off, n + 4);
    else if (ch->limited)
        anomaly(t, MX_DIR_C2S, A_TLS_HELLO_LIMIT, off, n + 4);
    if (ch->valid && !ch->limited) {
        make_ja3(t, ch);
        make_ja4(t, ch);
    }
    for (size_t i = 0; i < ch->n_exts && !t->ch.seen; i++)
        t->etm_offered |= ch->exts[i] == EXT_ENCRYPT_THEN_MAC;
    keep_offer(t, ch);
    free(ch);
}

/* An SSL 2.0 CLIENT-HELLO body (after the 2-byte header): msg_type, version,
 * the three lengths, cipher specs of 3 bytes, session id, challenge. */
static void client_hello_v2(struct mx_tls *t, const uint8_t *p, size_t n, uint64_t off)
{
    struct client_hello *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        t->oom = true;
        return;
    }
    struct mx_cursor c;
    mx_cursor_init(&c, p, n);
    ch->v2 = true;
    mx_cursor_u8(&c); /* msg_type 1, checked before */
    ch->version = mx_cursor_be16(&c);
    uint16_t specs = mx_cursor_be16(&c), sid = mx_cursor_be16(&c), chal = mx_cursor_be16(&c);
    struct mx_cursor cs = cursor_take(&c, specs);
    if (specs % 3)
        c.err = true;
    while (!c.err && mx_cursor_left(&cs) >= 3) {
        uint32_t hi = mx_cursor_u8(&cs);
        uint32_t v = (hi << 16) | mx_cursor_be16(&cs);
        PUSH(ch->ciphers, ch->n_ciphers, v, ch->limited); /* 0x00xxxx is a TLS suite */
    }
    mx_cursor_skip(&c, sid);
    mx_cursor_skip(&c, chal);
    ch->valid = !c.err && !mx_cursor_left(&c);
    anomaly(t, MX_DIR_C2S, A_SSLV2_CLIENT_HELLO, off, n + 2);
    if (!ch->valid)
        anomaly(t, MX_DIR_C2S, A_TLS_HELLO_INVALID, off, n + 2);
    keep_offer(t, ch);
    free(ch);
}

/* The frames of a handshake message: its 4-byte header at `off`, n bytes of body. */
static void msg_frames(struct mx_tls *t, uint64_t off, size_t n, mx_frame_t *first, mx_frame_t *last)
{
    *first = mx_ctx_frame_at(t->ctx, MX_DIR_S2C, off).frame;
    *last = mx_ctx_frame_at(t->ctx, MX_DIR_S2C, off + n + 3).frame;
}

/* RFC 8446 §4.1.3, RFC 5246 §7.4.1.3. */
static void server_hello(struct mx_tls *t, const uint8_t *p, size_t n, uint64_t off)
{
    struct server_hello *sh = &t->sh;
    struct mx_cursor c;
    mx_cursor_init(&c, p, n);
    memset(sh, 0, sizeof(*sh));
    sh->seen = true;
    msg_frames(t, off, n, &sh->first, &sh->last);
    sh->legacy_version = mx_cursor_be16(&c);
    uint8_t random[32];
    mx_cursor_copy(&c, random, sizeof(random));
    sh->hrr = !c.err && !memcmp(random, hrr_random, sizeof(random));
    memcpy(t->server_random, random, sizeof(random));
    uint8_t sid = mx_cursor_u8(&c);
    if (sid > 32)
        c.err = true;
    mx_cursor_skip(&c, sid);
    sh->cipher = mx_cursor_be16(&c);
    mx_cursor_u8(&c); /* compression method */
    if (!c.err && mx_cursor_left(&c)) {
        struct mx_cursor ext = cursor_take(&c, mx_cursor_be16(&c));
        while (!c.err && mx_cursor_left(&ext)) {
            uint16_t type = mx_cursor_be16(&ext);
            struct mx_cursor e = cursor_take(&ext, mx_cursor_be16(&ext));
            if (ext.err) {
                c.err = true;
                break;
            }
            PUSH(sh->exts, sh->n_exts, type, sh->limited);
            if (type == EXT_SUPPORTED_VERSIONS) { /* RFC 8446 §4.2.1: selected_version */
                sh->version = mx_cursor_be16(&e);
                sh->has_version = !e.err;
            } else if (type == EXT_ALPN) { /* RFC 7301 §3.1: exactly one name */
                struct mx_cursor l = cursor_take(&e, mx_cursor_be16(&e));
                struct mx_cursor name = cursor_take(&l, mx_cursor_u8(&l));
                if (!name.err && !mx_cursor_left(&l)) {
                    sh->has_alpn = true;
                    sh->alpn_len = (uint8_t)name.len;
                    memcpy(sh->alpn, name.ptr, name.len);
                } else {
                    e.err = true;
                }
            } else {
                mx_cursor_skip(&e, mx_cursor_left(&e));
            }
            if (e.err || mx_cursor_left(&e))
                c.err = true;
        }
        if (mx_cursor_left(&c))
            c.err = true;
    }
    if (!sh->has_version)
        sh->version = sh->legacy_version;
    sh->valid = !c.err;
    if (!sh->valid)
        anomaly(t, MX_DIR_S2C, A_TLS_HELLO_INVALID, off, n + 4);
    else if (sh->limited)
        anomaly(t, MX_DIR_S2C, A_TLS_HELLO_LIMIT, off, n + 4);
    t->ja3s[0] = '\0';
    if (sh->valid && !sh->limited)
        make_ja3s(t);
    if (!sh->hrr && (sh->version == 0x0304 || (sh->version >> 8) == 0x7f))
        t->tls13 = true; /* RFC 8446 §2: everything after the ServerHello is encrypted */
    t->etm = false;
    for (size_t i = 0; i < sh->n_exts; i++)
        t->etm |= sh->exts[i] == EXT_ENCRYPT_THEN_MAC && t->etm_offered;
    if (sh->valid && !sh->hrr)
        keys_set(t);
}

/* A subject or issuer as RFC 4514 text, UTF-8 kept (the event layer escapes
 * what is not valid), at most TLS_MAX_NAME bytes, *wire its full length;
 * *out is NULL when out of memory. */
static uint16_t name_text(const X509_NAME *name, char **out, uint32_t *wire)
{
    char buf[TLS_MAX_NAME];
    BIO *b = BIO_new(BIO_s_mem());
    int n = 0;
    *wire = 0;
    if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        size_t all = BIO_ctrl_pending(b);
        *wire = all > UINT32_MAX ? UINT32_MAX : (uint32_t)all;
        n = BIO_read(b, buf, (int)sizeof(buf));
    }
    BIO_free(b);
    if (n < 0)
        n = 0;
    *out = malloc((size_t)n + 1);
    if (*out)
        memcpy(*out, buf, (size_t)n);
    return (uint16_t)n;
}

static bool time_text(const ASN1_TIME *at, char *out, size_t cap)
{
    struct tm tm;
    if (!at || ASN1_TIME_to_tm(at, &tm) != 1)
        return false;
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    return true;
}

/* Decoded certificates by SHA-256: a server shows the same certificate to
 * every client, and d2i_X509 costs over a million instructions (more than
 * the rest of a handshake). Bounded: TLS_CERT_CACHE entries, replaced in
 * turn; one for the process, shared by worker threads under a lock (what it
 * holds depends only on the certificate, so the output does not depend on
 * which thread filled it). */
#define TLS_CERT_CACHE 16
struct cert_memo {
    char sha256[65]; /* "" when empty */
    bool self_signed, has_times;
    uint16_t subject_len, issuer_len;
    uint32_t subject_wire, issuer_wire;
    char subject[TLS_MAX_NAME], issuer[TLS_MAX_NAME];
    char not_before[64], not_after[64];
};
static struct cert_memo cert_memo[TLS_CERT_CACHE];
static unsigned cert_memo_next;
static pthread_mutex_t cert_memo_lock = PTHREAD_MUTEX_INITIALIZER;

static char *dup_text(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* Fills ci from the cache; false when the certificate is not there. */
static bool cert_recall(struct cert_info *ci)
{
    pthread_mutex_lock(&cert_memo_lock);
    for (unsigned i = 0; i < TLS_CERT_CACHE; i++) {
        const struct cert_memo *m = &cert_memo[i];
        if (!m->sha256[0] || strcmp(m->sha256, ci->sha256))
            continue;
        ci->parsed = true;
        ci->subject_len = m->subject_len;
        ci->issuer_len = m->issuer_len;
        ci->subject_wire = m->subject_wire;
        ci->issuer_wire = m->issuer_wire;
        ci->subject = dup_text(m->subject, m->subject_len);
        ci->issuer = dup_text(m->issuer, m->issuer_len);
        memcpy(ci->not_before, m->not_before, sizeof(ci->not_before));
        memcpy(ci->not_after, m->not_after, sizeof(ci->not_after));
        ci->has_times = m->has_times;
        ci->self_signed = m->self_signed;
        pthread_mutex_unlock(&cert_memo_lock);
        return true;
    }
    pthread_mutex_unlock(&cert_memo_lock);
    return false;
}

static void cert_remember(const struct cert_info *ci)
{
    if (!ci->sha256[0] || !ci->subject || !ci->issuer)
        return;
    pthread_mutex_lock(&cert_memo_lock);
    struct cert_memo *m = &cert_memo[cert_memo_next++ % TLS_CERT_CACHE];
    memcpy(m->sha256, ci->sha256, sizeof(m->sha256));
    m->subject_len = ci->subject_len;
    m->issuer_len = ci->issuer_len;
    m->subject_wire = ci->subject_wire;
    m->issuer_wire = ci->issuer_wire;
    memcpy(m->subject, ci->subject, ci->subject_len);
    memcpy(m->issuer, ci->issuer, ci->issuer_len);
    memcpy(m->not_before, ci->not_before, sizeof(m->not_before));
    memcpy(m->not_after, ci->not_after, sizeof(m->not_after));
    m->has_times = ci->has_times;
    m->self_signed = ci->self_signed;
    pthread_mutex_unlock(&cert_memo_lock);
}

/* The chain judged (cert.c): the name checked is the SNI, else the one the
 * server announced before STARTTLS (its greeting), the time the capture's. */
static void certificate_check(struct mx_tls *t, const struct mx_slice *chain, size_t n, bool cut, uint64_t off)
{
    struct mx_slice name = mx_slice_make("", 0);
    const char *from = NULL;
    if (t->ch.has_sni && t->ch.sni_len == t->ch.sni_wire) {
        name = mx_slice_make(t->ch.sni, t->ch.sni_len);
        from = "sni";
    } else if (!t->ch.has_sni && mx_ctx_tls_name(t->ctx).len) {
        name = mx_ctx_tls_name(t->ctx);
        from = "greeting";
    }
    mx_time_t at = mx_ctx_frame_at(t->ctx, MX_DIR_S2C, off).ts;
    mx_tls_cert_check(mx_ctx_tls_trust(t->ctx), chain, n, cut, at, name, from, &t->cert.check);
}

/* RFC 5246 §7.4.2: certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>, the
 * server's own first. Only the first is decoded here (libcrypto's d2i_X509);
 * the first MX_TLS_CHAIN_MAX are judged (certificate_check). */
/* The server's Certificate message: RFC 5246 §7.4.2, or in TLS 1.3 (read
 * decrypted) RFC 8446 §4.4.2, with a request context first and extensions
 * after each certificate. */
static void certificate(struct mx_tls *t, const uint8_t *p, size_t n, uint64_t off, bool tls13)
{
    struct cert_info *ci = &t->cert;
    struct mx_cursor c;
    mx_cursor_init(&c, p, n);
    ci->seen = true;
    msg_frames(t, off, n, &ci->first, &ci->last);
    if (tls13)
        mx_cursor_skip(&c, mx_cursor_u8(&c)); /* certificate_request_context */
    struct mx_cursor list = cursor_take(&c, cursor_be24(&c));
    struct mx_slice leaf = { NULL, 0 }, chain[MX_TLS_CHAIN_MAX];
    while (!c.err && mx_cursor_left(&list)) {
        struct mx_cursor one = cursor_take(&list, cursor_be24(&list));
        if (tls13)
            cursor_take(&list, mx_cursor_be16(&list)); /* the entry's extensions */
        if (list.err || !one.len) {
            c.err = true;
            break;
        }
        if (!ci->chain_length)
            leaf = mx_slice_make(one.ptr, one.len);
        if (ci->chain_length < MX_TLS_CHAIN_MAX)
            chain[ci->chain_length] = mx_slice_make(one.ptr, one.len);
        ci->chain_length++;
    }
    if (c.err || mx_cursor_left(&c))
        anomaly(t, MX_DIR_S2C, A_TLS_HANDSHAKE_INVALID, off, n + 4);
    if (!leaf.len)
        return;
    bool cut = ci->chain_length > MX_TLS_CHAIN_MAX;
    if (cut)
        anomaly(t, MX_DIR_S2C, A_TLS_CHAIN_LIMIT, off, n + 4);
    certificate_check(t, chain, cut ? MX_TLS_CHAIN_MAX : ci->chain_length, cut, off);
    if (!digest_hex(mx_md(MX_MD_SHA256), leaf.ptr, leaf.len, ci->sha256))
        ci->sha256[0] = '\0';
    if (ci->sha256[0] && cert_recall(ci)) {
        if (!ci->subject || !ci->issuer)
            t->oom = true;
        return;
    }
    const unsigned char *q = leaf.ptr;
    X509 *x = d2i_X509(NULL, &q, (long)leaf.len);
    if (!x) {
        anomaly(t, MX_DIR_S2C, A_TLS_CERTIFICATE_INVALID, off, n + 4);
        return;
    }
    ci->parsed = true;
    ci->subject_len = name_text(X509_get_subject_name(x), &ci->subject, &ci->subject_wire);
    ci->issuer_len = name_text(X509_get_issuer_name(x), &ci->issuer, &ci->issuer_wire);
    if (!ci->subject || !ci->issuer)
        t->oom = true;
    bool nb = time_text(X509_get0_notBefore(x), ci->not_before, sizeof(ci->not_before));
    bool na = time_text(X509_get0_notAfter(x), ci->not_after, sizeof(ci->not_after));
    ci->has_times = nb && na;
    ci->self_signed = X509_self_signed(x, 1) == 1; /* names match and its own key verifies it */
    X509_free(x);
    cert_remember(ci);
}

/* Whether a handshake message of `type` from `d` is worth buffering. */
static bool hs_wanted(const struct mx_tls *t, enum mx_dir d, uint8_t type)
{
    if (d == MX_DIR_C2S)
        return type == HS_CLIENT_HELLO && !t->ch.seen;
    if (type == HS_SERVER_HELLO)
        return !t->sh.seen || t->sh.hrr;
    /* TLS 1.3 encrypts the Certificate: read when the session's keys decrypt it. */
    return type == HS_CERTIFICATE && !t->cert.seen && (!t->tls13 || t->dir[MX_DIR_S2C].keys.on);
}

static void hs_done(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    if (s->hs_keep) {
        const uint8_t *b = s->hs_buf ? s->hs_buf : (const uint8_t *)"";
        switch (s->hs_hdr[0]) {
        case HS_CLIENT_HELLO:
            client_hello(t, b, s->hs_len, s->hs_off);
            break;
        case HS_SERVER_HELLO:
            server_hello(t, b, s->hs_len, s->hs_off);
            break;
        case HS_CERTIFICATE:
            certificate(t, b, s->hs_len, s->hs_off, t->tls13);
            break;
        default:
            break;
        }
    }
    if (t->tls13)
        keys_after(t, d, s->hs_hdr[0]);
    hs_reset(s);
}

/* The header of a handshake message is complete (RFC 8446 §4: type, uint24 length). */
static void hs_begin(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    s->hs_len = ((uint32_t)s->hs_hdr[1] << 16) | ((uint32_t)s->hs_hdr[2] << 8) | s->hs_hdr[3];
    s->hs_have = 0;
    s->hs_keep = false;
    if (s->hs_len > TLS_MAX_HANDSHAKE) {
        anomaly(t, d, A_TLS_HANDSHAKE_TOO_LONG, s->hs_off, 4);
    } else if (hs_wanted(t, d, s->hs_hdr[0])) {
        s->hs_keep = true;
        if (s->hs_len) {
            s->hs_buf = malloc(s->hs_len);
            if (!s->hs_buf) {
                t->oom = true;
                s->hs_keep = false;
            }
        }
    }
    if (!s->hs_len)
        hs_done(t, d);
}

/* Bytes of handshake records in clear: messages may span records, and a
 * record may hold several (RFC 8446 §5.1). */
static void hs_bytes(struct mx_tls *t, enum mx_dir d, const uint8_t *p, size_t n, uint64_t off)
{
    struct tls_dir *s = &t->dir[d];
    while (n) {
        if (s->hs_hdr_have < 4) {
            if (!s->hs_hdr_have)
                s->hs_off = off;
            s->hs_hdr[s->hs_hdr_have++] = *p++;
            n--;
            off++;
            if (s->hs_hdr_have == 4)
                hs_begin(t, d);
            continue;
        }
        size_t k = s->hs_len - s->hs_have;
        if (k > n)
            k = n;
        if (s->hs_keep)
            memcpy(s->hs_buf + s->hs_have, p, k);
        s->hs_have += (uint32_t)k;
        p += k;
        n -= k;
        off += k;
        if (s->hs_have == s->hs_len)
            hs_done(t, d);
    }
}

/* ---- Alerts ---- */

static void alert_bytes(struct mx_tls *t, enum mx_dir d, const uint8_t *p, size_t n, uint64_t off)
{
    struct tls_dir *s = &t->dir[d];
    for (size_t i = 0; i < n; i++) {
        if (!s->alert_half) {
            s->alert0 = p[i];
            s->alert_half = true;
            s->alert_frame = mx_ctx_frame_at(t->ctx, d, off + i).frame;
            continue;
        }
        s->alert_half = false;
        if (s->alert0 == 2)
            t->fatal = true; /* RFC 8446 §6: AlertLevel fatal(2) */
        if (t->n_alerts < TLS_MAX_ALERTS) {
            struct alert *a = &t->alerts[t->n_alerts++];
            a->dir = (uint8_t)d;
            a->level = s->alert0;
            a->desc = p[i];
            a->first = s->alert_frame;
            a->last = mx_ctx_frame_at(t->ctx, d, off + i).frame;
        }
    }
}

/* ---- Decryption (--tls-keylog) ---- */

/* Both hellos were read: the keys from the key log, if it has the session's. */
static void keys_set(struct mx_tls *t)
{
    if (t->dec != DEC_WAITING || !t->ch.seen || t->ch.v2)
        return;
    const struct server_hello *sh = &t->sh;
    struct mx_tls_suite suite;
    uint16_t v = sh->version;
    if (!mx_keylog_knows(t->keylog, t->client_random)) {
        t->dec = DEC_NO_KEY;
        return;
    }
    if (v < 0x0301 || v > 0x0304 || !mx_tls_suite_of(sh->cipher, cipher_iana(sh->cipher), &suite)) {
        t->dec = DEC_UNSUPPORTED;
        return;
    }
    struct tls_dir *c = &t->dir[MX_DIR_C2S], *s = &t->dir[MX_DIR_S2C];
    uint8_t sec[MX_KEYLOG_MAX_SECRET];
    bool ok;
    if (v == 0x0304) {
        /* RFC 8446 §7.1: handshake traffic secrets from the ServerHello on, the
         * application traffic secrets after each side's Finished. */
        static const enum mx_keylog_label labels[4] = { MX_KL_CLIENT_HS_TRAFFIC, MX_KL_SERVER_HS_TRAFFIC,
                                                        MX_KL_CLIENT_TRAFFIC_0, MX_KL_SERVER_TRAFFIC_0 };
        struct mx_tls_keys *k[4] = { &c->keys, &s->keys, &c->next, &s->next };
        ok = true;
        for (int i = 0; i < 4 && ok; i++) {
            size_t n = mx_keylog_find(t->keylog, labels[i], t->client_random, sec);
            if (!n) {
                t->dec = DEC_NO_KEY;
                OPENSSL_cleanse(sec, sizeof(sec));
                return;
            }
            ok = mx_tls13_keys(&suite, sec, n, k[i]);
        }
    } else {
        size_t n = mx_keylog_find(t->keylog, MX_KL_CLIENT_RANDOM, t->client_random, sec);
        if (n != 48) {
            t->dec = DEC_NO_KEY;
            OPENSSL_cleanse(sec, sizeof(sec));
            return;
        }
        ok = mx_tls12_keys(&suite, v, t->etm, sec, t->client_random, t->server_random, &c->keys, &s->keys);
    }
    OPENSSL_cleanse(sec, sizeof(sec));
    t->dec = ok ? DEC_ON : DEC_FAILED;
}

/* TLS 1.3: d's handshake message of `type` ended (hs_done): after its
 * Finished d sends under its application traffic secret (RFC 8446 §7.1),
 * after a KeyUpdate under the next one (§4.6.3). */
static void keys_after(struct mx_tls *t, enum mx_dir d, uint8_t type)
{
    struct tls_dir *s = &t->dir[d];
    if (type == HS_FINISHED && s->next.on) {
        mx_tls_keys_free(&s->keys);
        s->keys = s->next;
        memset(&s->next, 0, sizeof(s->next));
    } else if (type == HS_KEY_UPDATE && s->keys.on && !mx_tls13_key_update(&s->keys)) {
        t->oom = true;
    }
}

/* The record read whole for decryption (s->rec_buf) is complete. */
static void record_decrypt(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    uint64_t end = s->rec_off + 5 + s->rec_len;
    s->dec = false;
    if (s->dec_failed || s->dec_damaged || !s->rec_buf) {
        /* Its content is lost to the dissector: a gap of its size. */
        if (s->dec_damaged && !s->dec_failed)
            s->keys.seq++; /* the next record's nonce counts this one (RFC 8446 §5.3) */
        s->dec_damaged = false;
        mx_ctx_tls_plain(t->ctx, d, mx_slice_make(NULL, s->rec_len), end - 1);
        return;
    }
    uint8_t *plain = NULL, type = 0;
    size_t n = 0;
    if (!mx_tls_decrypt(&s->keys, s->type, s->rec_buf, s->rec_len, &plain, &n, &type)) {
        s->dec_failed = true;
        t->dec = DEC_FAILED;
        anomaly(t, d, A_TLS_DECRYPT_FAILED, s->rec_off, 5 + (uint64_t)s->rec_len);
        mx_ctx_tls_plain(t->ctx, d, mx_slice_make(NULL, s->rec_len), end - 1);
        return;
    }
    switch (type) {
    case CT_APPLICATION_DATA:
        s->plain += n;
        mx_ctx_tls_plain(t->ctx, d, mx_slice_make(plain, n), end - 1);
        break;
    case CT_ALERT: /* RFC 8446 §6: alerts after the handshake are encrypted */
        alert_bytes(t, d, plain, n, s->rec_off);
        break;
    case CT_HANDSHAKE:
        if (t->tls13) /* its messages may span records, as in clear */
            hs_bytes(t, d, plain, n, s->rec_off);
        break;
    default:
        break;
    }
}

/* Body bytes of a record to be decrypted: kept until the record is whole. */
static void record_keep(struct mx_tls *t, enum mx_dir d, const uint8_t *p, size_t n)
{
    struct tls_dir *s = &t->dir[d];
    if (s->dec_failed || s->dec_damaged)
        return;
    if (!s->rec_buf && !(s->rec_buf = malloc(TLS_MAX_RECORD))) {
        t->oom = true;
        s->dec_damaged = true;
        return;
    }
    memcpy(s->rec_buf + s->rec_have, p, n);
    s->rec_have += (uint32_t)n;
}

/* The current record of d ended (its body read, or cut by a gap inside it). */
static void record_done(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    s->in_body = false;
    s->hdr_have = 0;
    if (s->dec)
        record_decrypt(t, d);
}

/* ---- Records ---- */

/* The record header in s->hdr is complete and valid. */
static void record_start(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    s->type = s->hdr[0];
    s->rec_len = s->rec_left = ((uint32_t)s->hdr[3] << 8) | s->hdr[4];
    s->in_body = true;
    s->count_app = false;
    s->hs_desync = false;
    if (s->ccs)
        s->after_ccs++;
    bool clear = t->tls13 || !s->enc; /* TLS 1.3 encrypts under type 23 only (RFC 8446 §5.2) */
    /* With the session's keys: TLS 1.3 protects records under type 23
     * (RFC 8446 §5.2), TLS <= 1.2 every record after the ChangeCipherSpec. */
    s->dec = t->dec >= DEC_ON && (s->keys.on || s->dec_failed) &&
             (t->tls13 ? s->type == CT_APPLICATION_DATA : s->enc && s->type != CT_CHANGE_CIPHER_SPEC);
    s->rec_have = 0;
    if (s->hs_hdr_have && !(s->type == CT_HANDSHAKE && clear) && !(t->tls13 && s->dec)) {
        /* RFC 8446 §5.1: handshake messages are not interleaved with other records. */
        anomaly(t, d, A_TLS_HANDSHAKE_INVALID, s->rec_off, 5);
        hs_reset(s);
    }
    switch (s->type) {
    case CT_CHANGE_CIPHER_SPEC:
        if (!t->tls13 && !t->sh.hrr) { /* RFC 5246 §7.1; TLS 1.3 sends it for middleboxes only (RFC 8446 §D.4) */
            s->ccs = true;
            s->enc = true;
            hs_reset(s);
        }
        break;
    case CT_APPLICATION_DATA:
        if (!t->tls13) {
            s->count_app = true;
        } else if (t->cfin) {
            t->after_cfin++;
            s->count_app = true;
        } else if (d == MX_DIR_C2S) {
            t->cfin = true; /* RFC 8446 §4.4.4: the client's Finished, encrypted */
        } else {
            t->s_flight++; /* EncryptedExtensions .. Finished (RFC 8446 §2) */
        }
        break;
    case CT_HEARTBEAT:
        anomaly(t, d, A_TLS_HEARTBEAT, s->rec_off, 5 + (uint64_t)s->rec_len);
        break;
    default:
        break;
    }
}

static void record_body(struct mx_tls *t, enum mx_dir d, const uint8_t *p, size_t n, uint64_t off)
{
    struct tls_dir *s = &t->dir[d];
    bool clear = t->tls13 || !s->enc;
    if (s->dec)
        record_keep(t, d, p, n);
    if (s->type == CT_HANDSHAKE && clear && !s->hs_desync)
        hs_bytes(t, d, p, n, off);
    else if (s->type == CT_ALERT && clear)
        alert_bytes(t, d, p, n, off);
    else if (s->count_app)
        s->app += n;
}

/* Whether the first bytes of a direction can still begin TLS: 1 a record
 * header, 2 an SSL 2.0 ClientHello, 0 not yet known, -1 neither. */
static int first_bytes(enum mx_dir d, const uint8_t *h, size_t have)
{
    if (h[0] >= CT_CHANGE_CIPHER_SPEC && h[0] <= CT_HEARTBEAT) {
        if (have >= 2 && h[1] != 3) /* RFC 8446 §5.1: legacy_record_version 0x03xx */
            return -1;
        if (have >= 3 && h[2] > 4)
            return -1;
        if (have >= 5) {
            uint32_t len = ((uint32_t)h[3] << 8) | h[4];
            return len > TLS_MAX_RECORD ? -1 : 1;
        }
        return 0;
    }
    /* SSL 2.0 record header with its top bit set, then MSG-CLIENT-HELLO (1)
     * and a version 0x0002 or 0x03xx (RFC 6101 appendix E.2). */
    if (d != MX_DIR_C2S || !(h[0] & 0x80))
        return -1;
    if (have >= 2 && ((((uint32_t)h[0] & 0x7f) << 8) | h[1]) < 9)
        return -1;
    if (have >= 3 && h[2] != 1)
        return -1;
    if (have >= 4 && h[3] != 0 && h[3] != 3)
        return -1;
    if (have >= 5)
        return (h[3] == 0 && h[4] != 2) || (h[3] == 3 && h[4] > 4) ? -1 : 2;
    return 0;
}

static void dir_dead(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    s->mode = M_DEAD;
    s->in_body = false;
    hs_reset(s);
}

/* The first header bytes decided: TLS records or SSL 2.0. */
static void first_decided(struct mx_tls *t, enum mx_dir d, int kind)
{
    struct tls_dir *s = &t->dir[d];
    if (kind == 1) {
        s->mode = M_RECORDS;
        record_start(t, d);
        return;
    }
    /* SSL 2.0: the 2-byte header, then a body whose first 3 bytes are read. */
    uint32_t len = (((uint32_t)s->hdr[0] & 0x7f) << 8) | s->hdr[1];
    s->mode = M_V2;
    s->hs_len = len;
    s->hs_have = 3;
    s->hs_off = s->rec_off;
    s->hs_buf = malloc(len);
    if (!s->hs_buf) {
        t->oom = true;
        dir_dead(t, d);
        return;
    }
    memcpy(s->hs_buf, s->hdr + 2, 3);
}

/* Feeds n bytes starting at stream offset s->off. */
static void dir_bytes(struct mx_tls *t, enum mx_dir d, const uint8_t *p, size_t n)
{
    struct tls_dir *s = &t->dir[d];
    while (n && s->mode != M_DEAD && !s->lost) {
        if (s->mode == M_V2) {
            size_t k = s->hs_len - s->hs_have;
            if (k > n)
                k = n;
            memcpy(s->hs_buf + s->hs_have, p, k);
            s->hs_have += (uint32_t)k;
            p += k, n -= k, s->off += k;
            if (s->hs_have == s->hs_len) {
                client_hello_v2(t, s->hs_buf, s->hs_len, s->hs_off);
                hs_reset(s);
                s->mode = M_RECORDS; /* the client goes on in TLS records */
                s->hdr_have = 0;
            }
            continue;
        }
        if (s->in_body) {
            size_t k = s->rec_left < n ? s->rec_left : n;
            record_body(t, d, p, k, s->off);
            s->rec_left -= (uint32_t)k;
            p += k, n -= k, s->off += k;
            if (!s->rec_left)
                record_done(t, d);
            continue;
        }
        if (!s->hdr_have)
            s->rec_off = s->off;
        s->hdr[s->hdr_have++] = *p++;
        n--, s->off++;
        if (s->mode == M_START) {
            int kind = first_bytes(d, s->hdr, s->hdr_have);
            if (kind < 0) {
                if (!t->midstream) /* midstream, the capture may begin inside a record */
                    anomaly(t, d, A_TLS_NOT_TLS, s->rec_off, s->hdr_have);
                dir_dead(t, d);
            } else if (kind > 0) {
                first_decided(t, d, kind);
                if (s->in_body && !s->rec_left)
                    record_done(t, d);
            }
            continue;
        }
        if (s->hdr_have < 5)
            continue;
        uint32_t len = ((uint32_t)s->hdr[3] << 8) | s->hdr[4];
        if (s->hdr[0] < CT_CHANGE_CIPHER_SPEC || s->hdr[0] > CT_HEARTBEAT || s->hdr[1] != 3 || len > TLS_MAX_RECORD) {
            anomaly(t, d, A_TLS_RECORD_INVALID, s->rec_off, 5);
            dir_dead(t, d);
            continue;
        }
        record_start(t, d);
        if (!s->rec_left)
            record_done(t, d);
    }
}

/* ---- The public interface ---- */

size_t mx_tls_bytes(const struct mx_tls *t)
{
    if (!t)
        return 0;
    size_t n = sizeof(*t);
    for (int d = 0; d < 2; d++) {
        if (t->dir[d].hs_buf)
            n += t->dir[d].hs_len;
        if (t->dir[d].rec_buf)
            n += TLS_MAX_RECORD;
    }
    if (t->ch.ciphers)
        n += ((size_t)t->ch.n_ciphers + 1) * sizeof(*t->ch.ciphers);
    if (t->ch.sni)
        n += (size_t)t->ch.sni_len + 1;
    if (t->ch.alpn)
        n += (size_t)t->ch.alpn_used + 1;
    if (t->ja3_string)
        n += t->ja3_cap;
    if (t->cert.subject)
        n += (size_t)t->cert.subject_len + 1;
    if (t->cert.issuer)
        n += (size_t)t->cert.issuer_len + 1;
    return n;
}

struct mx_tls *mx_tls_new(struct mx_dissect_ctx *ctx, const char *how)
{
    struct mx_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ctx = ctx;
    t->how = how;
    t->ts = MX_TIME_NONE;
    t->keylog = mx_ctx_keylog(ctx);
    t->dec = t->keylog ? DEC_WAITING : DEC_NONE;
    return t;
}

void mx_tls_feed(struct mx_tls *t, enum mx_dir d, struct mx_slice bytes, uint64_t stream_off)
{
    if (!t || t->done || !bytes.len || !bytes.ptr || t->dir[d].ended)
        return;
    struct tls_dir *s = &t->dir[d];
    struct mx_frame_ref a = mx_ctx_frame_at(t->ctx, d, stream_off);
    struct mx_frame_ref b = mx_ctx_frame_at(t->ctx, d, stream_off + bytes.len - 1);
    if (a.frame && (!t->first || a.frame < t->first)) {
        t->first = a.frame;
        t->ts = a.ts;
    }
    if (b.frame > t->last)
        t->last = b.frame;
    s->off = stream_off;
    dir_bytes(t, d, bytes.ptr, bytes.len);
}

void mx_tls_gap(struct mx_tls *t, enum mx_dir d, uint64_t len)
{
    if (!t || t->done || !len)
        return;
    struct tls_dir *s = &t->dir[d];
    s->off += len;
    if (s->mode == M_DEAD || s->lost)
        return;
    if (s->mode != M_RECORDS || !s->in_body || len > s->rec_left) {
        s->lost = true; /* the record framing is gone: nothing to resynchronise on */
        hs_reset(s);
        if (s->keys.on || s->dec_failed) /* the dissector reading the cleartext loses it too */
            mx_ctx_tls_plain(t->ctx, d, mx_slice_make(NULL, len), s->off - 1);
        return;
    }
    /* Inside one record: its framing holds; what the gap cut is dropped. */
    s->rec_left -= (uint32_t)len;
    s->alert_half = false;
    s->dec_damaged |= s->dec;
    if (s->type == CT_HANDSHAKE && s->hs_hdr_have == 4 && len <= (uint64_t)(s->hs_len - s->hs_have)) {
        s->hs_have += (uint32_t)len; /* the message is skipped to its known end */
        free(s->hs_buf);
        s->hs_buf = NULL;
        s->hs_keep = false;
        if (s->hs_have == s->hs_len)
            hs_done(t, d);
    } else if (s->type == CT_HANDSHAKE) {
        hs_reset(s);
        s->hs_desync = true; /* until the record ends */
    }
    if (!s->rec_left)
        record_done(t, d);
}

/* The direction ended: a record cut short is TLS_TRUNCATED. */
static void dir_end(struct mx_tls *t, enum mx_dir d)
{
    struct tls_dir *s = &t->dir[d];
    if (s->ended)
        return;
    s->ended = true;
    if (s->mode == M_DEAD || s->lost)
        return;
    if (s->mode == M_V2 || s->in_body || s->hdr_have)
        anomaly(t, d, A_TLS_TRUNCATED, s->rec_off, s->off - s->rec_off);
    hs_reset(s);
}

bool mx_tls_completed(const struct mx_tls *t)
{
    if (!t || !t->sh.seen || t->sh.hrr || t->fatal)
        return false;
    if (t->tls13) /* server flight, client Finished, then records after it */
        return t->s_flight && t->cfin && t->after_cfin;
    const struct tls_dir *c = &t->dir[MX_DIR_C2S], *s = &t->dir[MX_DIR_S2C];
    return c->ccs && s->ccs && c->after_ccs && s->after_ccs; /* RFC 5246 §7.4.9: each side's Finished */
}

uint64_t mx_tls_app_bytes(const struct mx_tls *t, enum mx_dir d)
{
    return t ? t->dir[d].app : 0;
}

/* The record's "decryption": "no_handshake" (the hellos were not both
 * seen), "no_key", "unsupported", "ok" or "failed"; NULL without a key log. */
static const char *dec_name(const struct mx_tls *t)
{
    static const char *const names[] = {
        [DEC_NONE] = NULL, [DEC_WAITING] = "no_handshake", [DEC_NO_KEY] = "no_key", [DEC_UNSUPPORTED] = "unsupported",
        [DEC_ON] = "ok",   [DEC_FAILED] = "failed",
    };
    return t ? names[t->dec] : NULL;
}

void mx_tls_describe(const struct mx_tls *t, struct mx_event *ev, const char *key)
{
    char buf[64];
    mx_ev_obj(ev, key);
    if (t && t->sh.seen) {
        version_name(t->sh.version, buf, sizeof(buf));
        mx_ev_str(ev, "version", buf);
    } else {
        mx_ev_null(ev, "version");
    }
    if (t && t->ch.has_sni)
        mx_ev_wire_cut(ev, "sni", mx_slice_make(t->ch.sni, t->ch.sni_len), t->ch.sni_wire);
    else
        mx_ev_null(ev, "sni");
    if (t && t->sh.seen && !t->sh.hrr) {
        cipher_name(t->sh.cipher, buf, sizeof(buf));
        mx_ev_str(ev, "cipher", buf);
    } else {
        mx_ev_null(ev, "cipher");
    }
    mx_ev_bool(ev, "completed", mx_tls_completed(t));
    if (dec_name(t))
        mx_ev_str(ev, "decryption", dec_name(t));
    mx_ev_end(ev);
}

static void emit_str_or_null(struct mx_event *ev, const char *key, const char *s)
{
    if (s && *s)
        mx_ev_str(ev, key, s);
    else
        mx_ev_null(ev, key);
}

/* RFC 7525 §4.1, RFC 9325 §4.1: a suite the server should never choose,
 * with the ServerHello's frames; nothing for a sound one. */
static void emit_cipher_weakness(struct mx_event *ev, const struct server_hello *sh, const char *cipher)
{
    const char *w = mx_tls_cipher_weakness(cipher);
    if (!w)
        return;
    mx_ev_obj(ev, "cipher_weakness");
    mx_ev_str(ev, "class", w);
    mx_ev_frames(ev, sh->first, sh->last);
    mx_ev_end(ev);
}

static void emit_record(struct mx_tls *t)
{
    const struct offer *ch = &t->ch;
    const struct server_hello *sh = &t->sh;
    const struct cert_info *ci = &t->cert;
    char buf[64], version[64] = "", cipher[64] = "";
    mx_time_t ts = t->ts != MX_TIME_NONE ? t->ts : mx_ctx_flow(t->ctx)->start;
    /* The record describes the TLS session, not bytes it carried. */
    uint64_t was = mx_sink_decrypted(mx_ctx_sink(t->ctx), 0);
    struct mx_event *ev = mx_ctx_begin(t->ctx, "tls", ts);
    mx_ev_str(ev, "how", t->how);
    mx_ev_arr(ev, "versions_offered");
    if (ch->has_versions) {
        for (size_t i = 0; i < ch->n_versions; i++) {
            if (is_grease(ch->versions[i]))
                continue;
            version_name(ch->versions[i], buf, sizeof(buf));
            mx_ev_str(ev, NULL, buf);
        }
    } else if (ch->seen) {
        version_name(ch->version, buf, sizeof(buf));
        mx_ev_str(ev, NULL, buf);
    }
    mx_ev_end(ev);
    if (sh->seen)
        version_name(sh->version, version, sizeof(version));
    emit_str_or_null(ev, "version", version);
    if (ch->has_sni)
        mx_ev_wire_cut(ev, "sni", mx_slice_make(ch->sni, ch->sni_len), ch->sni_wire);
    else
        mx_ev_null(ev, "sni");
    mx_ev_arr(ev, "alpn_offered");
    for (size_t i = 0; i < ch->n_alpn; i++)
        mx_ev_wire(ev, NULL, mx_slice_make(ch->alpn + ch->alpn_off[i], ch->alpn_len[i]));
    mx_ev_end(ev);
    if (sh->has_alpn && !sh->hrr)
        mx_ev_wire(ev, "alpn", mx_slice_make(sh->alpn, sh->alpn_len));
    else
        mx_ev_null(ev, "alpn");
    mx_ev_arr(ev, "ciphers_offered");
    for (size_t i = 0; i < ch->n_ciphers; i++) {
        if (ch->ciphers[i] <= 0xffff && is_grease((uint16_t)ch->ciphers[i]))
            continue;
        cipher_name(ch->ciphers[i], buf, sizeof(buf));
        mx_ev_str(ev, NULL, buf);
    }
    mx_ev_end(ev);
    if (sh->seen && !sh->hrr)
        cipher_name(sh->cipher, cipher, sizeof(cipher));
    emit_str_or_null(ev, "cipher", cipher);
    emit_cipher_weakness(ev, sh, cipher);
    bool completed = mx_tls_completed(t);
    mx_ev_bool(ev, "completed", completed);
    mx_ev_arr(ev, "alerts");
    for (size_t i = 0; i < t->n_alerts; i++) {
        const struct alert *a = &t->alerts[i];
        mx_ev_obj(ev, NULL);
        mx_ev_str(ev, "dir", a->dir == MX_DIR_C2S ? "c2s" : "s2c");
        mx_ev_str(ev, "level", a->level == 1 ? "warning" : a->level == 2 ? "fatal" : "unknown");
        if (a->level != 1 && a->level != 2)
            mx_ev_uint(ev, "level_value", a->level);
        alert_name(a->desc, buf, sizeof(buf));
        mx_ev_str(ev, "description", buf);
        mx_ev_frames(ev, a->first, a->last);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    if (t->tls13 && !ci->seen) {
        mx_ev_str(ev, "certificate_hidden", "TLS 1.3 encrypts the certificate");
    } else if (ci->seen) { /* in TLS 1.3, read decrypted (--tls-keylog) */
        mx_ev_obj(ev, "certificate");
        if (ci->parsed && ci->subject && ci->issuer) {
            mx_ev_wire_cut(ev, "subject", mx_slice_make(ci->subject, ci->subject_len), ci->subject_wire);
            mx_ev_wire_cut(ev, "issuer", mx_slice_make(ci->issuer, ci->issuer_len), ci->issuer_wire);
        } else {
            mx_ev_null(ev, "subject");
            mx_ev_null(ev, "issuer");
        }
        emit_str_or_null(ev, "not_before", ci->parsed && ci->has_times ? ci->not_before : NULL);
        emit_str_or_null(ev, "not_after", ci->parsed && ci->has_times ? ci->not_after : NULL);
        if (ci->parsed)
            mx_ev_bool(ev, "self_signed", ci->self_signed);
        else
            mx_ev_null(ev, "self_signed");
        emit_str_or_null(ev, "sha256", ci->sha256);
        mx_ev_uint(ev, "chain_length", ci->chain_length);
        mx_tls_cert_describe(&ci->check, ev);
        mx_ev_frames(ev, ci->first, ci->last);
        mx_ev_end(ev);
    } else {
        mx_ev_null(ev, "certificate");
    }
    emit_str_or_null(ev, "ja3", t->ja3);
    emit_str_or_null(ev, "ja3_string", t->ja3_string);
    emit_str_or_null(ev, "ja3s", t->ja3s);
    emit_str_or_null(ev, "ja4", t->ja4);
    mx_ev_obj(ev, "app_bytes");
    mx_ev_uint(ev, "c2s", t->dir[MX_DIR_C2S].app);
    mx_ev_uint(ev, "s2c", t->dir[MX_DIR_S2C].app);
    mx_ev_end(ev);
    const char *dec = dec_name(t);
    if (dec) {
        mx_ev_str(ev, "decryption", dec);
        mx_ev_obj(ev, "decrypted_bytes");
        mx_ev_uint(ev, "c2s", t->dir[MX_DIR_C2S].plain);
        mx_ev_uint(ev, "s2c", t->dir[MX_DIR_S2C].plain);
        mx_ev_end(ev);
    }
    mx_ev_frames(ev, t->first, t->last);
    if (sh->seen || ch->seen)
        mx_ev_text(ev,
                   "TLS (%s)%s%s%s%s%s%.*s: handshake %s; %" PRIu64 " application bytes from the client, %" PRIu64
                   " from the server%s%s",
                   t->how, *version ? " " : "", version, *cipher ? ", " : "", cipher, ch->has_sni ? ", SNI " : "",
                   ch->has_sni ? (int)ch->sni_len : 0, ch->has_sni ? (const char *)ch->sni : "",
                   completed ? "completed" : "not completed", t->dir[MX_DIR_C2S].app, t->dir[MX_DIR_S2C].app,
                   dec ? "; decryption: " : "", dec ? dec : "");
    else
        mx_ev_text(ev, "TLS (%s): no handshake seen", t->how);
    mx_ev_tone(ev, completed ? MX_TONE_GOOD : (t->fatal ? MX_TONE_BAD : MX_TONE_WARN));
    mx_event_emit(mx_ctx_sink(t->ctx), ev);
    mx_sink_decrypted(mx_ctx_sink(t->ctx), was);
}

void mx_tls_end(struct mx_tls *t)
{
    if (!t || t->done)
        return;
    dir_end(t, MX_DIR_C2S);
    dir_end(t, MX_DIR_S2C);
    emit_record(t);
    t->done = true;
}

void mx_tls_free(struct mx_tls *t)
{
    if (!t)
        return;
    for (int d = 0; d < 2; d++) {
        hs_reset(&t->dir[d]);
        free(t->dir[d].rec_buf);
        mx_tls_keys_free(&t->dir[d].keys);
        mx_tls_keys_free(&t->dir[d].next);
    }
    free(t->ja3_string);
    free(t->ch.ciphers);
    free(t->ch.sni);
    free(t->ch.alpn);
    free(t->cert.subject);
    free(t->cert.issuer);
    free(t);
}

/* ---- The dissector: implicit TLS, and the observer after STARTTLS ---- */

static void *tls_state_new(struct mx_dissect_ctx *ctx)
{
    bool implicit = mx_ctx_flow(ctx)->tls_port;
    struct mx_tls *t = mx_tls_new(ctx, implicit ? "implicit" : "starttls");
    if (t && implicit)
        t->midstream = !mx_ctx_flow(ctx)->handshake;
    return t;
}

static void tls_state_free(void *state)
{
    mx_tls_free(state);
}

static size_t tls_state_bytes(const void *state)
{
    return mx_tls_bytes(state);
}

static struct mx_parse_result tls_parse(void *state, struct mx_dissect_ctx *ctx, enum mx_dir dir, struct mx_slice data,
                                        unsigned flags)
{
    struct mx_tls *t = state;
    struct mx_parse_result r = { .status = MX_PARSE_OK, .consumed = data.len, .needed = 0 };
    if (flags & MX_CHUNK_GAP) {
        mx_tls_gap(t, dir, data.len);
        return r;
    }
    if (data.ptr && data.len)
        mx_tls_feed(t, dir, data, mx_ctx_offset(ctx, dir));
    if (flags & MX_CHUNK_END) {
        dir_end(t, dir);
        if (t->dir[mx_dir_other(dir)].ended)
            mx_tls_end(t);
    }
    if (t->oom)
        r.status = MX_PARSE_ERROR;
    return r;
}

/* TLS from the first byte (RFC 8314 §3.3), and the observer the host feeds
 * after STARTTLS (mx_ctx_starttls), whose record the mail dissector emits
 * (mx_tls_end) before its session record. Its anomalies are raised through
 * mx_ctx_anomaly_def, so the dissector itself names none. */
const struct mx_dissector mx_tls_dissector = {
    .name = "tls",
    .state_new = tls_state_new,
    .state_free = tls_state_free,
    .parse = tls_parse,
    .anomalies = NULL,
    .n_anomalies = 0,
    .state_bytes = tls_state_bytes,
};
