/* fuzz_keylog.c - libFuzzer target: the key log reader (dissectors/tls/keylog.c) on any
 * text, and record decryption (decrypt.c) of any bytes as a record body under keys of every
 * kind mxray decrypts (AEAD tags, CBC padding and MAC, TLS 1.0's chained IV, TLS 1.3's inner
 * type), with the key log's first secret when it has one. Checked: nothing is read or written
 * outside the record, and a record that opens has its content within it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dissectors/tls/decrypt.h"
#include "dissectors/tls/keylog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* IANA names of one suite per kind (decrypt.c reads the bulk part). */
static const struct {
    uint16_t id, version;
    const char *name;
    bool etm;
} kinds[] = {
    { 0x1301, 0x0304, "TLS_AES_128_GCM_SHA256", false },
    { 0x1303, 0x0304, "TLS_CHACHA20_POLY1305_SHA256", false },
    { 0x1304, 0x0304, "TLS_AES_128_CCM_SHA256", false },
    { 0xc02f, 0x0303, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false },
    { 0xcca8, 0x0303, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false },
    { 0xc027, 0x0303, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", true },
    { 0xc027, 0x0303, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false },
    { 0x0035, 0x0301, "TLS_RSA_WITH_AES_256_CBC_SHA", false },
    { 0x000a, 0x0302, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", false },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size, "r");
    struct mx_keylog_stats st;
    struct mx_keylog *k = f ? mx_keylog_read(f, &st) : NULL;
    if (f)
        fclose(f);
    uint8_t random[32], secret[MX_KEYLOG_MAX_SECRET];
    memset(random, size ? data[0] : 0, sizeof(random));
    memset(secret, 0x42, sizeof(secret));
    size_t n = mx_keylog_find(k, MX_KL_CLIENT_RANDOM, random, secret);
    if (n > MX_KEYLOG_MAX_SECRET)
        abort();
    (void)mx_keylog_knows(k, random);
    mx_keylog_free(k);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && size <= (1u << 14) + 2048; i++) {
        struct mx_tls_suite s;
        if (!mx_tls_suite_of(kinds[i].id, kinds[i].name, &s))
            abort();
        struct mx_tls_keys c, srv;
        memset(&c, 0, sizeof(c));
        memset(&srv, 0, sizeof(srv));
        bool ok = kinds[i].version == 0x0304
                      ? mx_tls13_keys(&s, secret, 32, &c)
                      : mx_tls12_keys(&s, kinds[i].version, kinds[i].etm, secret, random, random, &c, &srv);
        uint8_t *body = malloc(size ? size : 1);
        if (ok && body) {
            memcpy(body, data, size);
            uint8_t *plain = NULL, type = 0;
            size_t len = 0;
            if (mx_tls_decrypt(&c, 23, body, size, &plain, &len, &type) && (plain < body || plain + len > body + size))
                abort();
            if (kinds[i].version == 0x0304)
                (void)mx_tls13_key_update(&c);
        }
        free(body);
        mx_tls_keys_free(&c);
        mx_tls_keys_free(&srv);
    }
    return 0;
}
