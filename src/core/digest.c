/* digest.c - see digest.h. */
#include "core/digest.h"

#include <pthread.h>

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
