/* digest.h - the message digests mxray computes (MD5, SHA-1, SHA-256 of
 * messages, parts and TLS fingerprints), each fetched from OpenSSL once:
 * OpenSSL 3 looks an implicit EVP_sha256() up again at every
 * EVP_DigestInit_ex, which cost more than hashing a short part. */
#ifndef MX_DIGEST_H
#define MX_DIGEST_H

#include <openssl/evp.h>

enum mx_md { MX_MD_MD5, MX_MD_SHA1, MX_MD_SHA256 };

/* The fetched digest (never NULL: it falls back on the implicit one). */
const EVP_MD *mx_md(enum mx_md which);

#endif
