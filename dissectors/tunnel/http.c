/* http.c - HTTP CONNECT (RFC 9110 §9.3.6): the request head with its Proxy-Authorization
 * (RFC 9110 §11.7.2, Basic RFC 7617), and the proxy's reply head, each read whole or
 * reported incomplete (RFC 9112 §2-§6). */
#include "dissectors/tunnel/internal.h"

#include "dissectors/mail/sasl.h"

#include <string.h>

static struct tun_res res(enum tun_status st, size_t len, size_t need)
{
    struct tun_res r = { st, len, need };
    return r;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Whether s starts with the n bytes of lit, ignoring ASCII case. */
static bool iprefix(struct mx_slice s, const char *lit, size_t n)
{
    if (s.len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s.ptr[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

static struct mx_slice trim(struct mx_slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
        s = mx_slice_make(s.ptr + 1, s.len - 1);
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* A decimal of at most `digits` digits and at most `max`; -1 if not. */
static long decimal(struct mx_slice s, size_t digits, long max)
{
    if (!s.len || s.len > digits)
        return -1;
    long v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v <= max ? v : -1;
}

/* The lines of a head: calls line() for each, without its CR LF (a bare LF
 * ends a line too, RFC 9112 §2.2), up to the empty line that ends it. */
struct head {
    struct mx_slice in;
    size_t pos;
};

/* The next line of the head: TUN_OK with *line (an empty one ends the head),
 * TUN_MORE, or TUN_TOO_LONG past TUN_HEAD_MAX. */
static enum tun_status next_line(struct head *h, struct mx_slice *line)
{
    size_t cap = h->in.len < TUN_HEAD_MAX ? h->in.len : TUN_HEAD_MAX;
    const uint8_t *lf = h->pos < cap ? memchr(h->in.ptr + h->pos, '\n', cap - h->pos) : NULL;
    if (!lf)
        return h->in.len >= TUN_HEAD_MAX ? TUN_TOO_LONG : TUN_MORE;
    size_t end = (size_t)(lf - h->in.ptr);
    *line = mx_slice_make(h->in.ptr + h->pos, end - h->pos);
    if (line->len && line->ptr[line->len - 1] == '\r')
        line->len--;
    h->pos = end + 1;
    return TUN_OK;
}

/* RFC 9110 §11.7.2, RFC 7617 §2: "Basic" base64(user-id ":" password). */
static void proxy_authorization(struct mx_slice v, struct tun_request *rq)
{
    size_t sp = 0;
    while (sp < v.len && v.ptr[sp] != ' ')
        sp++;
    mx_tun_text_set(&rq->scheme, v.ptr, sp);
    struct mx_slice cred = trim(mx_slice_make(v.ptr + sp, v.len - sp));
    if (sp != 5 || !iprefix(v, "basic", 5))
        return;
    rq->has_secret = true;
    uint8_t dec[3 * TUN_TEXT_MAX];
    size_t n = 0;
    const uint8_t *colon = NULL;
    if (cred.len <= 4 * TUN_TEXT_MAX && mx_base64_decode(cred, dec, sizeof(dec), &n))
        colon = memchr(dec, ':', n);
    if (!colon) {
        rq->auth_invalid = true;
        mx_tun_text_set(&rq->secret, cred.ptr, cred.len);
        return;
    }
    mx_tun_text_set(&rq->user, dec, (size_t)(colon - dec));
    mx_tun_text_set(&rq->secret, colon + 1, n - (size_t)(colon - dec) - 1);
}

/* RFC 9112 §3.2.3: authority-form, host ":" port; an IPv6 host in brackets. */
static bool authority(struct mx_slice t, struct tun_request *rq)
{
    size_t colon = t.len;
    while (colon > 0 && t.ptr[colon - 1] != ':')
        colon--;
    if (!colon)
        return false;
    long port = decimal(mx_slice_make(t.ptr + colon, t.len - colon), 5, 65535);
    struct mx_slice host = mx_slice_make(t.ptr, colon - 1);
    if (host.len >= 2 && host.ptr[0] == '[' && host.ptr[host.len - 1] == ']')
        host = mx_slice_make(host.ptr + 1, host.len - 2);
    if (port <= 0 || !host.len)
        return false;
    mx_tun_text_set(&rq->host, host.ptr, host.len);
    rq->port = (uint16_t)port;
    return true;
}

struct tun_res mx_http_connect_request(struct mx_slice in, struct tun_request *rq)
{
    /* The method first: anything but CONNECT is another use of the proxy. */
    size_t n = in.len < 8 ? in.len : 8;
    if (memcmp(in.ptr, "CONNECT ", n))
        return res(TUN_OTHER, 0, 0);
    struct head h = { in, 0 };
    struct mx_slice line;
    enum tun_status st = next_line(&h, &line);
    if (st != TUN_OK)
        return res(st, 0, 0);
    if (line.len < 8 || memcmp(line.ptr, "CONNECT ", 8))
        return res(TUN_INVALID, 0, 0);
    /* RFC 9112 §3: method SP request-target SP HTTP-version. Read as the
     * proxies that answer them read it: the target is the first word, the
     * version the last, and words between them (a bot's "host:25 / HTTP/1.0")
     * are passed over. */
    struct mx_slice rest = mx_slice_make(line.ptr + 8, line.len - 8);
    const uint8_t *sp = memchr(rest.ptr, ' ', rest.len);
    size_t last = rest.len;
    while (last > 0 && rest.ptr[last - 1] != ' ')
        last--;
    if (!sp || !iprefix(mx_slice_make(rest.ptr + last, rest.len - last), "HTTP/1.", 7) ||
        !authority(mx_slice_make(rest.ptr, (size_t)(sp - rest.ptr)), rq))
        return res(TUN_INVALID, 0, 0);
    rq->kind = TUN_HTTP;
    rq->cmd = 1;
    for (;;) {
        st = next_line(&h, &line);
        if (st != TUN_OK)
            return res(st, 0, 0);
        if (!line.len)
            return res(TUN_OK, h.pos, 0);
        /* RFC 9112 §5: field-name ":" OWS field-value OWS; a line without
         * its colon (a bot's bare "Mozilla 4.0 (...)") is passed over, as the
         * proxies that answer such requests do. */
        const uint8_t *c = memchr(line.ptr, ':', line.len);
        if (!c)
            continue;
        struct mx_slice name = mx_slice_make(line.ptr, (size_t)(c - line.ptr));
        struct mx_slice value = trim(mx_slice_make(c + 1, line.len - name.len - 1));
        if (name.len == 19 && iprefix(name, "proxy-authorization", 19))
            proxy_authorization(value, rq);
    }
}

struct tun_res mx_http_connect_reply(struct mx_slice in, struct tun_reply *rp)
{
    struct head h = { in, 0 };
    struct mx_slice line;
    enum tun_status st = next_line(&h, &line);
    if (st == TUN_MORE && in.len >= 5 && !iprefix(in, "HTTP/", 5))
        return res(TUN_INVALID, 0, 0);
    if (st != TUN_OK)
        return res(st, 0, 0);
    /* RFC 9112 §4: HTTP-version SP status-code SP [reason-phrase]. */
    if (line.len < 12 || !iprefix(line, "HTTP/1.", 7) || line.ptr[8] != ' ' || (line.len > 12 && line.ptr[12] != ' '))
        return res(TUN_INVALID, 0, 0);
    long code = decimal(mx_slice_make(line.ptr + 9, 3), 3, 999);
    if (code < 100)
        return res(TUN_INVALID, 0, 0);
    rp->code = (int)code;
    mx_tun_text_set(&rp->reason, line.ptr + (line.len > 12 ? 13 : 12), line.len > 12 ? line.len - 13 : 0);
    rp->body = 0;
    /* RFC 9112 §6.3: a 2xx to CONNECT has no body whatever it says (the
     * tunnel starts after the head); 1xx, 204, 304 none; else Content-Length,
     * and failing that (or chunked, not followed here) the close. */
    bool none = code / 100 == 2 || code / 100 == 1 || code == 204 || code == 304, length = false;
    rp->body_to_close = false;
    for (;;) {
        st = next_line(&h, &line);
        if (st != TUN_OK)
            return res(st, 0, 0);
        if (!line.len)
            break;
        const uint8_t *c = memchr(line.ptr, ':', line.len);
        if (!c)
            return res(TUN_INVALID, 0, 0);
        struct mx_slice name = mx_slice_make(line.ptr, (size_t)(c - line.ptr));
        struct mx_slice value = trim(mx_slice_make(c + 1, line.len - name.len - 1));
        if (name.len == 14 && iprefix(name, "content-length", 14)) {
            long v = decimal(value, 12, 999999999999L);
            if (v < 0)
                return res(TUN_INVALID, 0, 0);
            rp->body = (uint64_t)v;
            length = true;
        } else if (name.len == 17 && iprefix(name, "transfer-encoding", 17)) {
            rp->body_to_close = true;
        }
    }
    if (none) {
        rp->body = 0;
        rp->body_to_close = false;
    } else if (!length) {
        rp->body_to_close = true;
    }
    return res(TUN_OK, h.pos, 0);
}

/* RFC 9110 §15 and §9.3.6, for a CONNECT. */
const char *mx_http_status_meaning(int code)
{
    switch (code) {
    case 200:
        return "the proxy opened the tunnel";
    case 400:
        return "bad request: the proxy could not read the CONNECT";
    case 403:
        return "forbidden: the proxy refuses tunnels to this target";
    case 405:
        return "method not allowed: the proxy does not allow CONNECT";
    case 407:
        return "proxy authentication required";
    case 502:
        return "bad gateway: the proxy could not connect to the target";
    case 503:
        return "service unavailable";
    case 504:
        return "gateway timeout: the target did not answer the proxy";
    default:
        break;
    }
    switch (code / 100) {
    case 1:
        return "informational: the final reply follows";
    case 2:
        return "success: the proxy opened the tunnel";
    case 3:
        return "redirection: no tunnel";
    case 4:
        return "client error: no tunnel";
    case 5:
        return "proxy error: no tunnel";
    default:
        return NULL;
    }
}
