/* decrypt.c - TLS record decryption with the session's keys (decrypt.h). */
#include "dissectors/tls/decrypt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <string.h>

/* The bulk part of a suite's IANA name, after "_WITH_" (TLS <= 1.2) or
 * "TLS_" (TLS 1.3, RFC 8446 §B.4). */
static const struct {
    const char *bulk;
    struct mx_tls_suite s;
} bulks[] = {
    { "AES_128_GCM_SHA256", { MX_BULK_GCM, 16, 16, 0, 0, NULL, "SHA256", "AES-128-GCM" } },
    { "AES_256_GCM_SHA384", { MX_BULK_GCM, 32, 16, 0, 0, NULL, "SHA384", "AES-256-GCM" } },
    { "CHACHA20_POLY1305_SHA256", { MX_BULK_CHACHA, 32, 16, 0, 0, NULL, "SHA256", "ChaCha20-Poly1305" } },
    { "AES_128_CCM", { MX_BULK_CCM, 16, 16, 0, 0, NULL, "SHA256", "AES-128-CCM" } },
    { "AES_256_CCM", { MX_BULK_CCM, 32, 16, 0, 0, NULL, "SHA256", "AES-256-CCM" } },
    { "AES_128_CCM_8", { MX_BULK_CCM, 16, 8, 0, 0, NULL, "SHA256", "AES-128-CCM" } },
    { "AES_256_CCM_8", { MX_BULK_CCM, 32, 8, 0, 0, NULL, "SHA256", "AES-256-CCM" } },
    { "AES_128_CCM_SHA256", { MX_BULK_CCM, 16, 16, 0, 0, NULL, "SHA256", "AES-128-CCM" } },
    { "AES_128_CCM_8_SHA256", { MX_BULK_CCM, 16, 8, 0, 0, NULL, "SHA256", "AES-128-CCM" } },
    { "AES_128_CBC_SHA", { MX_BULK_CBC, 16, 0, 20, 16, "SHA1", "SHA256", "AES-128-CBC" } },
    { "AES_256_CBC_SHA", { MX_BULK_CBC, 32, 0, 20, 16, "SHA1", "SHA256", "AES-256-CBC" } },
    { "AES_128_CBC_SHA256", { MX_BULK_CBC, 16, 0, 32, 16, "SHA256", "SHA256", "AES-128-CBC" } },
    { "AES_256_CBC_SHA256", { MX_BULK_CBC, 32, 0, 32, 16, "SHA256", "SHA256", "AES-256-CBC" } },
    { "AES_256_CBC_SHA384", { MX_BULK_CBC, 32, 0, 48, 16, "SHA384", "SHA384", "AES-256-CBC" } },
    { "3DES_EDE_CBC_SHA", { MX_BULK_CBC, 24, 0, 20, 8, "SHA1", "SHA256", "DES-EDE3-CBC" } },
};

bool mx_tls_suite_of(uint16_t id, const char *name, struct mx_tls_suite *s)
{
    memset(s, 0, sizeof(*s));
    if (!name)
        return false;
    const char *with = strstr(name, "_WITH_");
    const char *bulk = with ? with + 6 : (id >> 8) == 0x13 && !strncmp(name, "TLS_", 4) ? name + 4 : NULL;
    if (!bulk)
        return false;
    for (size_t i = 0; i < MX_ARRAY_LEN(bulks); i++) {
        if (!strcmp(bulk, bulks[i].bulk)) {
            *s = bulks[i].s;
            return true;
        }
    }
    return false;
}

/* OpenSSL's KDF `name` with params, out_len bytes into out. */
static bool kdf(const char *name, OSSL_PARAM *params, uint8_t *out, size_t out_len)
{
    EVP_KDF *k = EVP_KDF_fetch(NULL, name, NULL);
    EVP_KDF_CTX *c = k ? EVP_KDF_CTX_new(k) : NULL;
    bool ok = c && EVP_KDF_derive(c, out, out_len, params) > 0;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(k);
    return ok;
}

/* The OpenSSL context and cipher of k's suite, made once. */
static bool cipher_ctx(struct mx_tls_keys *k)
{
    if (!k->evp)
        k->evp = EVP_CIPHER_CTX_new();
    if (!k->ciph)
        k->ciph = EVP_CIPHER_fetch(NULL, k->suite.cipher, NULL);
    if (!k->mac && k->suite.bulk == MX_BULK_CBC)
        k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return k->evp && k->ciph && (k->mac || k->suite.bulk != MX_BULK_CBC);
}

bool mx_tls12_keys(const struct mx_tls_suite *s, uint16_t version, bool etm, const uint8_t *master,
                   const uint8_t client_random[32], const uint8_t server_random[32], struct mx_tls_keys *c2s,
                   struct mx_tls_keys *s2c)
{
    /* RFC 5246 §6.3: key_block = PRF(master_secret, "key expansion",
     * server_random + client_random), cut into the MAC keys, the write
     * keys, then the implicit IVs. TLS 1.0 and 1.1 use MD5 with SHA-1
     * (RFC 2246 §5); TLS 1.0's CBC IVs come from the key block too. */
    size_t fixed_iv = s->bulk == MX_BULK_CHACHA                          ? 12
                      : s->bulk == MX_BULK_GCM || s->bulk == MX_BULK_CCM ? 4
                      : version == 0x0301                                ? s->block
                                                                         : 0;
    size_t need = 2 * ((size_t)s->mac_len + s->key_len + fixed_iv);
    uint8_t block[2 * (48 + 32 + 16)];
    uint8_t seed[13 + 64];
    memcpy(seed, "key expansion", 13);
    memcpy(seed + 13, server_random, 32);
    memcpy(seed + 45, client_random, 32);
    const char *md = version >= 0x0303 ? s->prf : "MD5-SHA1";
    OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SECRET, (void *)master, 48),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
        OSSL_PARAM_END,
    };
    if (need > sizeof(block) || !kdf("TLS1-PRF", p, block, need))
        return false;
    struct mx_tls_keys *dir[2] = { c2s, s2c };
    size_t at = 2 * (size_t)s->mac_len; /* after the MAC keys */
    for (int i = 0; i < 2; i++) {
        memcpy(dir[i]->mac_key, block + (size_t)i * s->mac_len, s->mac_len);
        memcpy(dir[i]->key, block + at + (size_t)i * s->key_len, s->key_len);
        memcpy(dir[i]->iv, block + at + 2 * (size_t)s->key_len + (size_t)i * fixed_iv, fixed_iv);
        dir[i]->suite = *s;
        dir[i]->version = version;
        dir[i]->etm = etm;
        dir[i]->seq = 0;
        dir[i]->on = cipher_ctx(dir[i]);
        if (!dir[i]->on)
            return false;
    }
    OPENSSL_cleanse(block, sizeof(block));
    return true;
}

/* RFC 8446 §7.1: HKDF-Expand-Label(secret, label, "", len). */
static bool expand_label(const char *md, const uint8_t *secret, size_t slen, const char *label, uint8_t *out,
                         size_t len)
{
    uint8_t info[2 + 1 + 6 + 32 + 1];
    size_t ll = strlen(label);
    if (ll > 32)
        return false;
    info[0] = (uint8_t)(len >> 8);
    info[1] = (uint8_t)len;
    info[2] = (uint8_t)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0; /* an empty context */
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM p[] = {
        OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + ll),
        OSSL_PARAM_END,
    };
    return kdf("HKDF", p, out, len);
}

bool mx_tls13_keys(const struct mx_tls_suite *s, const uint8_t *secret, size_t len, struct mx_tls_keys *k)
{
    if (len > sizeof(k->secret))
        return false;
    k->suite = *s;
    k->version = 0x0304;
    k->etm = false;
    k->seq = 0;
    memcpy(k->secret, secret, len);
    k->secret_len = (uint8_t)len;
    k->on = expand_label(s->prf, secret, len, "key", k->key, s->key_len) &&
            expand_label(s->prf, secret, len, "iv", k->iv, 12) && cipher_ctx(k);
    return k->on;
}

bool mx_tls13_key_update(struct mx_tls_keys *k)
{
    uint8_t next[64];
    struct mx_tls_suite s = k->suite;
    bool ok = expand_label(s.prf, k->secret, k->secret_len, "traffic upd", next, k->secret_len) &&
              mx_tls13_keys(&s, next, k->secret_len, k);
    OPENSSL_cleanse(next, sizeof(next));
    return ok;
}

/* The per-record nonce: the IV XOR the sequence number (RFC 8446 §5.3, RFC 7905 §2). */
static void xor_nonce(const struct mx_tls_keys *k, uint8_t nonce[12])
{
    memcpy(nonce, k->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(k->seq >> (8 * i));
}

static bool aead_open(struct mx_tls_keys *k, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len, uint8_t *ct,
                      size_t ct_len, const uint8_t *tag)
{
    EVP_CIPHER_CTX *c = k->evp;
    const EVP_CIPHER *ciph = k->ciph;
    int n = 0;
    bool ok = EVP_DecryptInit_ex(c, ciph, NULL, NULL, NULL) > 0 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) > 0;
    if (ok && k->suite.bulk == MX_BULK_CCM) {
        /* CCM wants the tag and the length before the data. */
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, k->suite.tag_len, (void *)tag) > 0 &&
             EVP_DecryptInit_ex(c, NULL, NULL, k->key, nonce) > 0 &&
             EVP_DecryptUpdate(c, NULL, &n, NULL, (int)ct_len) > 0 &&
             EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) > 0 && EVP_DecryptUpdate(c, ct, &n, ct, (int)ct_len) > 0;
    } else if (ok) {
        ok = EVP_DecryptInit_ex(c, NULL, NULL, k->key, nonce) > 0 &&
             EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) > 0 &&
             (ct_len == 0 || EVP_DecryptUpdate(c, ct, &n, ct, (int)ct_len) > 0) &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, k->suite.tag_len, (void *)tag) > 0 &&
             EVP_DecryptFinal_ex(c, ct + ct_len, &n) > 0;
    }
    return ok;
}

/* RFC 5246 §6.2.3.1: HMAC(mac_key, seq_num + type + version + length + p)
 * equals `want`. */
static bool mac_ok(struct mx_tls_keys *k, uint8_t type, const uint8_t *p, size_t n, const uint8_t *want)
{
    uint8_t hdr[13], out[EVP_MAX_MD_SIZE];
    for (int i = 0; i < 8; i++)
        hdr[i] = (uint8_t)(k->seq >> (56 - 8 * i));
    hdr[8] = type;
    hdr[9] = (uint8_t)(k->version >> 8);
    hdr[10] = (uint8_t)k->version;
    hdr[11] = (uint8_t)(n >> 8);
    hdr[12] = (uint8_t)n;
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(k->mac);
    OSSL_PARAM p2[] = { OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)k->suite.mac, 0), OSSL_PARAM_END };
    size_t outl = 0;
    bool ok = c && EVP_MAC_init(c, k->mac_key, k->suite.mac_len, p2) > 0 && EVP_MAC_update(c, hdr, 13) > 0 &&
              EVP_MAC_update(c, p, n) > 0 && EVP_MAC_final(c, out, &outl, sizeof(out)) > 0 &&
              outl == k->suite.mac_len && !CRYPTO_memcmp(out, want, outl);
    EVP_MAC_CTX_free(c);
    return ok;
}

/* RFC 5246 §6.2.3.2 (and RFC 7366 with encrypt_then_mac): the record is
 * [IV] ciphertext [MAC]; the plaintext ends with its MAC (unless ETM) and
 * padding. The padding's shape and the MAC are checked. */
static bool cbc_open(struct mx_tls_keys *k, uint8_t type, uint8_t *body, size_t len, uint8_t **plain, size_t *plain_len)
{
    size_t bs = k->suite.block, mac = k->suite.mac_len;
    size_t iv_len = k->version >= 0x0302 ? bs : 0; /* TLS 1.1+: an explicit IV (RFC 4346 §6.2.3.2) */
    size_t ct_len = len - iv_len - (k->etm ? mac : 0);
    if (len < iv_len + (k->etm ? mac : 0) + bs || ct_len % bs)
        return false;
    if (k->etm && !mac_ok(k, type, body, len - mac, body + len - mac))
        return false; /* RFC 7366 §3: the MAC covers the IV and the ciphertext */
    uint8_t iv[16], next_iv[16];
    memcpy(iv, iv_len ? body : k->iv, bs);
    uint8_t *ct = body + iv_len;
    memcpy(next_iv, ct + ct_len - bs, bs); /* TLS 1.0 chains the IV (RFC 2246 §6.2.3.2) */
    EVP_CIPHER_CTX *c = k->evp;
    int n = 0, m = 0;
    bool ok = EVP_DecryptInit_ex(c, k->ciph, NULL, k->key, iv) > 0 && EVP_CIPHER_CTX_set_padding(c, 0) > 0 &&
              EVP_DecryptUpdate(c, ct, &n, ct, (int)ct_len) > 0 && EVP_DecryptFinal_ex(c, ct + n, &m) > 0;
    if (!ok)
        return false;
    if (!iv_len)
        memcpy(k->iv, next_iv, bs);
    size_t pad = ct[ct_len - 1];
    size_t tail = pad + 1 + (k->etm ? 0 : mac);
    if (tail > ct_len)
        return false;
    for (size_t i = 0; i < pad; i++)
        if (ct[ct_len - 2 - i] != pad)
            return false;
    *plain = ct;
    *plain_len = ct_len - tail;
    return k->etm || mac_ok(k, type, ct, *plain_len, ct + *plain_len);
}

bool mx_tls_decrypt(struct mx_tls_keys *k, uint8_t type, uint8_t *body, size_t len, uint8_t **plain, size_t *plain_len,
                    uint8_t *inner_type)
{
    if (!k->on)
        return false;
    const struct mx_tls_suite *s = &k->suite;
    bool ok = false;
    uint8_t nonce[12], aad[13];
    *inner_type = type;
    if (k->version == 0x0304) {
        /* RFC 8446 §5.2: the AAD is the record header; the inner plaintext
         * ends with its content type, then zero padding. */
        if (len < s->tag_len || type != 23)
            return false;
        size_t ct_len = len - s->tag_len;
        aad[0] = type;
        aad[1] = 3;
        aad[2] = 3;
        aad[3] = (uint8_t)(len >> 8);
        aad[4] = (uint8_t)len;
        xor_nonce(k, nonce);
        ok = aead_open(k, nonce, aad, 5, body, ct_len, body + ct_len);
        if (ok) {
            size_t n = ct_len;
            while (n && !body[n - 1])
                n--;
            if (!n)
                ok = false; /* no content type: RFC 8446 §5.4 makes it unexpected_message */
            else {
                *inner_type = body[n - 1];
                *plain = body;
                *plain_len = n - 1;
            }
        }
    } else if (s->bulk == MX_BULK_CBC) {
        ok = cbc_open(k, type, body, len, plain, plain_len);
    } else {
        /* RFC 5246 §6.2.3.3: AAD = seq_num + type + version + length of the plaintext. */
        size_t explicit_len = s->bulk == MX_BULK_CHACHA ? 0 : 8;
        if (len < explicit_len + s->tag_len)
            return false;
        size_t ct_len = len - explicit_len - s->tag_len;
        if (explicit_len) {
            memcpy(nonce, k->iv, 4); /* RFC 5288 §3: salt + explicit nonce */
            memcpy(nonce + 4, body, 8);
        } else {
            xor_nonce(k, nonce);
        }
        for (int i = 0; i < 8; i++)
            aad[i] = (uint8_t)(k->seq >> (56 - 8 * i));
        aad[8] = type;
        aad[9] = (uint8_t)(k->version >> 8);
        aad[10] = (uint8_t)k->version;
        aad[11] = (uint8_t)(ct_len >> 8);
        aad[12] = (uint8_t)ct_len;
        uint8_t *ct = body + explicit_len;
        ok = aead_open(k, nonce, aad, 13, ct, ct_len, ct + ct_len);
        if (ok) {
            *plain = ct;
            *plain_len = ct_len;
        }
    }
    k->seq++;
    return ok;
}

void mx_tls_keys_free(struct mx_tls_keys *k)
{
    EVP_CIPHER_CTX_free(k->evp);
    EVP_CIPHER_free(k->ciph);
    EVP_MAC_free(k->mac);
    OPENSSL_cleanse(k, sizeof(*k));
}
