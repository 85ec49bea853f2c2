/* message.c - a mail message in transit: size and SHA-256 now; the MIME parser plugs in here. */
#include "message.h"

#include <openssl/evp.h>
#include <stdlib.h>

struct mx_message {
    struct mx_message_env env;
    EVP_MD_CTX *sha;
    uint64_t size;
    uint64_t missing;
    bool ended;
    unsigned char digest[32];
};

struct mx_message *mx_message_new(const struct mx_message_env *env)
{
    struct mx_message *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->env = *env;
    m->sha = EVP_MD_CTX_new();
    if (!m->sha || EVP_DigestInit_ex(m->sha, EVP_sha256(), NULL) != 1) {
        mx_message_free(m);
        return NULL;
    }
    return m;
}

void mx_message_feed(struct mx_message *m, struct mx_slice bytes, uint64_t stream_off)
{
    (void)stream_off;
    if (!m || m->ended || !bytes.len)
        return;
    EVP_DigestUpdate(m->sha, bytes.ptr, bytes.len);
    m->size += bytes.len;
}

void mx_message_gap(struct mx_message *m, uint64_t len)
{
    if (m)
        m->missing += len;
}

void mx_message_end(struct mx_message *m)
{
    if (!m || m->ended)
        return;
    unsigned int n = 0;
    EVP_DigestFinal_ex(m->sha, m->digest, &n);
    m->ended = true;
}

uint64_t mx_message_size(const struct mx_message *m)
{
    return m ? m->size : 0;
}

void mx_message_describe(const struct mx_message *m, struct mx_event *ev, const char *key)
{
    if (!m)
        return;
    mx_ev_obj(ev, key);
    mx_ev_uint(ev, "size", m->size);
    if (m->ended) {
        static const char hex[] = "0123456789abcdef";
        char h[65];
        for (int i = 0; i < 32; i++) {
            h[2 * i] = hex[m->digest[i] >> 4];
            h[2 * i + 1] = hex[m->digest[i] & 15];
        }
        h[64] = '\0';
        mx_ev_str(ev, "sha256", h);
    }
    mx_ev_bool(ev, "partial", m->missing > 0 || !m->ended);
    if (m->missing)
        mx_ev_uint(ev, "missing_bytes", m->missing);
    mx_ev_end(ev);
}

void mx_message_free(struct mx_message *m)
{
    if (!m)
        return;
    EVP_MD_CTX_free(m->sha);
    free(m);
}
