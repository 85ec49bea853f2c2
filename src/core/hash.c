/* hash.c - see hash.h. SipHash (Aumasson and Bernstein, 2012) with one
 * compression and three finalisation rounds, as OpenSSL's EVP_MAC "SIPHASH"
 * computes it: one context per hasher, keyed once and then re-initialised
 * with the same key for each message (about 70 ns for a flow key, against
 * about 2.8 us per packet for the whole of mxray). */
#include "core/hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct mx_hasher {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    uint8_t key[16];
    bool rekey; /* this OpenSSL forgets the key on re-initialisation */
};

void mx_hasher_free(struct mx_hasher *h)
{
    if (!h)
        return;
    EVP_MAC_CTX_free(h->ctx);
    EVP_MAC_free(h->mac);
    free(h);
}

struct mx_hasher *mx_hasher_new_key(const uint8_t key[16])
{
    struct mx_hasher *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    unsigned c_rounds = 1, d_rounds = 3;
    size_t size = 8;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_C_ROUNDS, &c_rounds),
        OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_D_ROUNDS, &d_rounds),
        OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
        OSSL_PARAM_construct_end(),
    };
    h->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    h->ctx = h->mac ? EVP_MAC_CTX_new(h->mac) : NULL;
    if (!h->ctx || !EVP_MAC_init(h->ctx, key, 16, params)) {
        mx_hasher_free(h);
        return NULL;
    }
    memcpy(h->key, key, 16);
    /* Re-initialising with a NULL key keeps the key (OpenSSL 3.0 since its
     * fix of 2022, "Avoid undefined behavior of provided macs on EVP_MAC
     * reinitialization"); an older one gets the key every time. */
    uint64_t kept = mx_hash(h, "mxray", 5);
    h->rekey = true;
    if (mx_hash(h, "mxray", 5) == kept)
        h->rekey = false;
    return h;
}

struct mx_hasher *mx_hasher_new(void)
{
    uint8_t key[16];
    if (RAND_bytes(key, sizeof(key)) != 1)
        return NULL;
    return mx_hasher_new_key(key);
}

uint64_t mx_hash(struct mx_hasher *h, const void *p, size_t n)
{
    uint8_t out[8] = { 0 };
    size_t len = 0;
    if (!EVP_MAC_init(h->ctx, h->rekey ? h->key : NULL, h->rekey ? 16 : 0, NULL) || !EVP_MAC_update(h->ctx, p, n) ||
        !EVP_MAC_final(h->ctx, out, &len, sizeof(out)))
        return 0;
    return (uint64_t)out[0] | (uint64_t)out[1] << 8 | (uint64_t)out[2] << 16 | (uint64_t)out[3] << 24 |
           (uint64_t)out[4] << 32 | (uint64_t)out[5] << 40 | (uint64_t)out[6] << 48 | (uint64_t)out[7] << 56;
}
