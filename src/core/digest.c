/* digest.c - see digest.h. */
#include "core/digest.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const EVP_MD *fetched[3];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void fetch_all(void)
{
    fetched[MX_MD_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
    fetched[MX_MD_SHA1] = EVP_MD_fetch(NULL, "SHA1", NULL);
    fetched[MX_MD_SHA256] = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *mx_md(enum mx_md which)
{
    pthread_once(&once, fetch_all);
    if (fetched[which])
        return fetched[which];
    return which == MX_MD_MD5 ? EVP_md5() : which == MX_MD_SHA1 ? EVP_sha1() : EVP_sha256();
}

bool mx_hashes_parse(const char *list, unsigned *out, char *why, size_t whylen)
{
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = { { "md5", MX_HASH_MD5 },
                  { "sha1", MX_HASH_SHA1 },
                  { "sha256", MX_HASH_SHA256 },
                  { "message", MX_HASH_MESSAGE },
                  { "body", MX_HASH_BODY },
                  { "all", MX_HASH_ALL },
                  { "none", 0 },
                  { "default", MX_HASH_DEFAULT } };
    unsigned bits = 0;
    const char *p = list;
    do {
        size_t n = strcspn(p, ",");
        size_t k = 0;
        while (k < sizeof(names) / sizeof(names[0]) && !(strlen(names[k].name) == n && !strncmp(p, names[k].name, n)))
            k++;
        if (k == sizeof(names) / sizeof(names[0])) {
            snprintf(why, whylen, "--hashes: '%.*s' is none of md5, sha1, sha256, message, body, all, none, default",
                     (int)(n > 40 ? 40 : n), p);
            return false;
        }
        bits |= names[k].bits;
        p += n;
    } while (*p++ == ',');
    *out = bits;
    return true;
}

const char *mx_crypto_lib_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}
