/* digest.h - the message digests mxray computes (MD5, SHA-1, SHA-256 of
 * messages, parts and TLS fingerprints), each fetched from OpenSSL once:
 * OpenSSL 3 looks an implicit EVP_sha256() up again at every
 * EVP_DigestInit_ex, which cost more than hashing a short part. */
#ifndef MX_DIGEST_H
#define MX_DIGEST_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

enum mx_md { MX_MD_MD5, MX_MD_SHA1, MX_MD_SHA256 };

/* The fetched digest (never NULL: it falls back on the implicit one). */
const EVP_MD *mx_md(enum mx_md which);

/* What --hashes chooses to compute over mail content (docs/manual.md,
 * "Digests"): MD5, SHA-1 and SHA-256 of each MIME part's decoded bytes (and
 * of a uuencoded file: SHA-256), SHA-256 of the whole message, SHA-256 of
 * its body. */
enum {
    MX_HASH_MD5 = 1u << 0,
    MX_HASH_SHA1 = 1u << 1,
    MX_HASH_SHA256 = 1u << 2,
    MX_HASH_MESSAGE = 1u << 3,
    MX_HASH_BODY = 1u << 4,
};
#define MX_HASH_ALL 0x1fu
/* The parts' SHA-256 (what lookup services key on) and the body's (what
 * links one message's hops): see docs/manual.md for why. */
#define MX_HASH_DEFAULT (MX_HASH_SHA256 | MX_HASH_BODY)

/* Parses a comma-separated list of md5, sha1, sha256, message, body, or one
 * of all, none, default. False (with why) on a name it does not know. */
bool mx_hashes_parse(const char *list, unsigned *out, char *why, size_t whylen);

/* The OpenSSL mxray runs with (--version). */
const char *mx_crypto_lib_version(void);

#endif
