/* decoders.c - micro-benchmark of the content path (issue 28): the base64 and
 * quoted-printable decoders as the message parser calls them (one line at a
 * time), the whole message parser with each --hashes choice, and OpenSSL
 * alone over the same decoded bytes (the digest floor).
 *
 * usage: mx_microbench [MIB]   (build: cmake --build build --target mx_microbench;
 *                               or scripts/microbench.sh)
 * Prints the median of 5 runs of each, in MB/s (10^6 bytes) of input. Not a
 * test: figures depend on the machine; compare them within one run. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "dissectors/message/message.h"
#include "dissectors/message/mime.h"

#define RUNS 5

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint8_t rnd8(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

/* RFC 2045 §6.8 text of n random bytes: 76-character lines, CRLF. */
static size_t b64_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t w = 0, col = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[w++] = (uint8_t)a[v >> 18 & 63];
        out[w++] = (uint8_t)a[v >> 12 & 63];
        out[w++] = i + 1 < n ? (uint8_t)a[v >> 6 & 63] : '=';
        out[w++] = i + 2 < n ? (uint8_t)a[v & 63] : '=';
        if ((col += 4) == 76 || i + 3 >= n) {
            out[w++] = '\r', out[w++] = '\n';
            col = 0;
        }
    }
    return w;
}

/* RFC 2045 §6.7 text: prose with some Latin-1 letters (=E9 and the like),
 * '=' itself escaped, soft breaks at 76 columns. */
static size_t qp_encode(size_t n, uint8_t *out)
{
    static const char words[][8] = { "the", "mail", "of", "caf\xe9", "na\xefve", "=", "Gr\xfc\xdf", "and", "relay" };
    size_t w = 0, col = 0;
    while (w < n) {
        const char *s = words[rnd8() % 9];
        for (; *s; s++) {
            uint8_t c = (uint8_t)*s;
            if (col >= 72) {
                out[w++] = '=', out[w++] = '\r', out[w++] = '\n';
                col = 0;
            }
            if (c == '=' || c >= 128) {
                static const char hx[] = "0123456789ABCDEF";
                out[w++] = '=', out[w++] = (uint8_t)hx[c >> 4], out[w++] = (uint8_t)hx[c & 15];
                col += 3;
            } else
                out[w++] = c, col++;
        }
        out[w++] = ' ', col++;
    }
    out[w++] = '\r', out[w++] = '\n';
    return w;
}

/* Feeds text line by line (without the line end), as message.c does. */
static size_t by_lines(const uint8_t *t, size_t n, uint8_t *out, int qp)
{
    struct mx_mime_b64 b = { 0 };
    struct mx_mime_qp q = { 0 };
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        const uint8_t *lf = memchr(t + i, '\n', n - i);
        size_t e = lf ? (size_t)(lf - t) : n, len = e - i;
        if (len && t[e - 1] == '\r')
            len--;
        bool soft;
        w += qp ? mx_mime_qp_feed(&q, t + i, len, true, &soft, out + w) : mx_mime_b64_feed(&b, t + i, len, out + w);
        i = e + 1;
    }
    return w;
}

typedef double (*bench_fn)(void *);

static double median(bench_fn f, void *arg)
{
    double t[RUNS];
    for (int i = 0; i < RUNS; i++)
        t[i] = f(arg);
    qsort(t, RUNS, sizeof(t[0]), cmp_d);
    return t[RUNS / 2];
}

struct text {
    uint8_t *p, *out;
    size_t n, decoded;
    int qp;
    unsigned hashes;
    const char *md;
};

static double run_lines(void *a)
{
    struct text *x = a;
    double t0 = now();
    x->decoded = by_lines(x->p, x->n, x->out, x->qp);
    return now() - t0;
}

static double run_message(void *a)
{
    struct text *x = a;
    struct mx_message_env env = { .dir = MX_DIR_C2S, .source = "bench", .hashes = x->hashes };
    double t0 = now();
    struct mx_message *m = mx_message_new(&env);
    for (size_t i = 0; i < x->n; i += 1448) /* one TCP segment's worth at a time */
        mx_message_feed(m, mx_slice_make(x->p + i, x->n - i < 1448 ? x->n - i : 1448), i);
    mx_message_end(m);
    mx_message_free(m);
    return now() - t0;
}

static double run_digest(void *a)
{
    struct text *x = a;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned dl;
    double t0 = now();
    EVP_DigestInit_ex(c, EVP_get_digestbyname(x->md), NULL);
    for (size_t i = 0; i < x->n; i += 8192)
        EVP_DigestUpdate(c, x->p + i, x->n - i < 8192 ? x->n - i : 8192);
    EVP_DigestFinal_ex(c, d, &dl);
    double t = now() - t0;
    EVP_MD_CTX_free(c);
    return t;
}

static void line(const char *what, size_t bytes, double s)
{
    printf("%-52s %9.1f MB/s  (%.3f s for %.1f MB)\n", what, (double)bytes / 1e6 / s, s, (double)bytes / 1e6);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 64;
    if (mib < 1 || mib > 4096) {
        fprintf(stderr, "usage: mx_microbench [MIB, 1..4096]\n");
        return 2;
    }
    size_t n = mib << 20;
    uint8_t *raw = malloc(n), *enc = malloc(n / 3 * 4 + n / 57 * 2 + 16), *qp = malloc(n + 256), *out = malloc(n + 64);
    if (!raw || !enc || !qp || !out)
        return 1;
    for (size_t i = 0; i < n; i++)
        raw[i] = rnd8();
    size_t elen = b64_encode(raw, n, enc), qlen = qp_encode(n, qp);

    struct text b = { .p = enc, .n = elen, .out = out }, q = { .p = qp, .n = qlen, .out = out, .qp = 1 };
    printf("decoders, one line at a time as the message parser feeds them (median of %d):\n", RUNS);
    line("  base64, 76-character lines", elen, median(run_lines, &b));
    if (b.decoded != n || memcmp(out, raw, n)) {
        fprintf(stderr, "base64 decoded wrong\n");
        return 1;
    }
    line("  quoted-printable, 76-column lines", qlen, median(run_lines, &q));

    /* A message: a QP text part and a base64 attachment (about mib MiB in all) */
    static const char head[] =
        "From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"bb\"\r\n\r\n--bb\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
    static const char mid[] = "\r\n--bb\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n"
                              "Content-Transfer-Encoding: base64\r\n\r\n";
    static const char tail[] = "--bb--\r\n";
    size_t qpart = qlen / 4;
    while (qpart && qp[qpart - 1] != '\n')
        qpart--;
    size_t mlen = sizeof(head) - 1 + qpart + sizeof(mid) - 1 + elen + sizeof(tail) - 1;
    uint8_t *msg = malloc(mlen);
    if (!msg)
        return 1;
    size_t w = 0;
    memcpy(msg + w, head, sizeof(head) - 1), w += sizeof(head) - 1;
    memcpy(msg + w, qp, qpart), w += qpart;
    memcpy(msg + w, mid, sizeof(mid) - 1), w += sizeof(mid) - 1;
    memcpy(msg + w, enc, elen), w += elen;
    memcpy(msg + w, tail, sizeof(tail) - 1);
    printf("the message parser over one %.1f MB message (QP text, base64 attachment), by --hashes:\n", mlen / 1e6);
    static const struct {
        const char *name;
        unsigned bits;
    } sets[] = { { "none", 0 },
                 { "default (sha256,body)", MX_HASH_DEFAULT },
                 { "all (md5,sha1,sha256,message,body)", MX_HASH_ALL } };
    for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        struct text x = { .p = msg, .n = mlen, .hashes = sets[k].bits };
        char what[80];
        snprintf(what, sizeof(what), "  --hashes %s", sets[k].name);
        line(what, mlen, median(run_message, &x));
    }
    printf("OpenSSL alone, one digest over %zu MiB in 8 KiB updates (the digest floor):\n", mib);
    static const char *const mds[] = { "MD5", "SHA1", "SHA256" };
    for (size_t k = 0; k < 3; k++) {
        struct text x = { .p = raw, .n = n, .md = mds[k] };
        char what[80];
        snprintf(what, sizeof(what), "  %s", mds[k]);
        line(what, n, median(run_digest, &x));
    }
    free(msg);
    free(raw), free(enc), free(qp), free(out);
    return 0;
}
