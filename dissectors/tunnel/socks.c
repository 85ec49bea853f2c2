/* socks.c - SOCKS4, SOCKS4a and SOCKS5 (RFC 1928, RFC 1929) handshake messages, each read
 * whole from the start of its input or reported incomplete: the caller keeps the bytes. */
#include "dissectors/tunnel/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static struct tun_res res(enum tun_status st, size_t len, size_t need)
{
    struct tun_res r = { st, len, need };
    return r;
}

void mx_tun_text_set(struct tun_text *t, const uint8_t *p, size_t n)
{
    t->wire = n;
    t->len = n > sizeof(t->b) ? sizeof(t->b) : n;
    memcpy(t->b, p, t->len);
}

/* A NUL-ended field of SOCKS4 from `at`: its length, or TUN_MORE / TUN_TOO_LONG. */
static struct tun_res nul_field(struct mx_slice in, size_t at)
{
    size_t room = in.len - at;
    const uint8_t *z = memchr(in.ptr + at, 0, room < TUN_TEXT_MAX + 1 ? room : TUN_TEXT_MAX + 1);
    if (z)
        return res(TUN_OK, (size_t)(z - (in.ptr + at)), 0);
    return room > TUN_TEXT_MAX ? res(TUN_TOO_LONG, 0, 0) : res(TUN_MORE, 0, 1);
}

static void ipv4_text(struct tun_text *t, const uint8_t *a)
{
    t->len = (size_t)snprintf((char *)t->b, sizeof(t->b), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    t->wire = t->len;
}

/* SOCKS 4 (Ying-Da Lee, "SOCKS: A protocol for TCP proxy across firewalls"):
 * VN 4, CD, DSTPORT, DSTIP, USERID, NUL; SOCKS 4A: a DSTIP of 0.0.0.x (x not
 * 0) says a NUL-ended domain name follows. */
struct tun_res mx_socks4_request(struct mx_slice in, struct tun_request *rq)
{
    if (in.len < 9)
        return res(TUN_MORE, 0, 9 - in.len);
    if (in.ptr[0] != 4 || (in.ptr[1] != 1 && in.ptr[1] != 2))
        return res(TUN_INVALID, 0, 0);
    struct tun_res u = nul_field(in, 8);
    if (u.st != TUN_OK)
        return u;
    rq->kind = TUN_SOCKS4;
    rq->cmd = in.ptr[1];
    rq->port = (uint16_t)(in.ptr[2] << 8 | in.ptr[3]);
    const uint8_t *ip = in.ptr + 4;
    size_t end = 8 + u.len + 1;
    if (!ip[0] && !ip[1] && !ip[2] && ip[3]) {
        if (end >= in.len)
            return res(TUN_MORE, 0, 1);
        struct tun_res h = nul_field(in, end);
        if (h.st != TUN_OK)
            return h;
        if (!h.len)
            return res(TUN_INVALID, 0, 0);
        rq->kind = TUN_SOCKS4A;
        mx_tun_text_set(&rq->host, in.ptr + end, h.len);
        end += h.len + 1;
    } else {
        ipv4_text(&rq->host, ip);
    }
    mx_tun_text_set(&rq->user, in.ptr + 8, u.len);
    return res(TUN_OK, end, 0);
}

/* VN (0; some servers write 4), CD, DSTPORT, DSTIP. */
struct tun_res mx_socks4_reply(struct mx_slice in, struct tun_reply *rp)
{
    if (in.len < 8)
        return res(TUN_MORE, 0, 8 - in.len);
    if (in.ptr[0] != 0 && in.ptr[0] != 4)
        return res(TUN_INVALID, 0, 0);
    rp->code = in.ptr[1];
    return res(TUN_OK, 8, 0);
}

/* RFC 1928 §3: VER 5, NMETHODS (at least 1), METHODS. */
struct tun_res mx_socks5_methods(struct mx_slice in, struct tun_request *rq)
{
    if (in.len < 2)
        return res(TUN_MORE, 0, 2 - in.len);
    if (in.ptr[0] != 5 || !in.ptr[1])
        return res(TUN_INVALID, 0, 0);
    size_t n = in.ptr[1];
    if (in.len < 2 + n)
        return res(TUN_MORE, 0, 2 + n - in.len);
    rq->kind = TUN_SOCKS5;
    rq->n_methods = n < TUN_METHODS_MAX ? n : TUN_METHODS_MAX;
    memcpy(rq->methods, in.ptr + 2, rq->n_methods);
    return res(TUN_OK, 2 + n, 0);
}

/* A two-byte reply: version `ver`, then the value that goes to *v. */
static struct tun_res two_bytes(struct mx_slice in, uint8_t ver, int *v)
{
    if (in.len < 2)
        return res(TUN_MORE, 0, 2 - in.len);
    if (in.ptr[0] != ver)
        return res(TUN_INVALID, 0, 0);
    *v = in.ptr[1];
    return res(TUN_OK, 2, 0);
}

/* RFC 1928 §3: VER 5, METHOD. */
struct tun_res mx_socks5_method_reply(struct mx_slice in, struct tun_reply *rp)
{
    return two_bytes(in, 5, &rp->method);
}

/* RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD (lengths of 1 to 255). */
struct tun_res mx_socks5_userpass(struct mx_slice in, struct tun_request *rq)
{
    if (in.len < 2)
        return res(TUN_MORE, 0, 2 - in.len);
    if (in.ptr[0] != 1)
        return res(TUN_INVALID, 0, 0);
    size_t ulen = in.ptr[1];
    if (in.len < 3 + ulen)
        return res(TUN_MORE, 0, 3 + ulen - in.len);
    size_t plen = in.ptr[2 + ulen];
    if (in.len < 3 + ulen + plen)
        return res(TUN_MORE, 0, 3 + ulen + plen - in.len);
    mx_tun_text_set(&rq->user, in.ptr + 2, ulen);
    mx_tun_text_set(&rq->secret, in.ptr + 3 + ulen, plen);
    rq->has_secret = true;
    return res(TUN_OK, 3 + ulen + plen, 0);
}

/* RFC 1929 §2: VER 1, STATUS (0 success). */
struct tun_res mx_socks5_userpass_reply(struct mx_slice in, struct tun_reply *rp)
{
    return two_bytes(in, 1, &rp->auth_status);
}

/* RFC 1928 §4, §5: the address after ATYP at `at`: 1 IPv4 (4 bytes), 3 a
 * name (a length byte, then the name), 4 IPv6 (16 bytes); then the port.
 * The address's text goes to `host` (may be NULL). */
static struct tun_res socks5_addr(struct mx_slice in, size_t at, struct tun_text *host, uint16_t *port)
{
    if (in.len < at + 2)
        return res(TUN_MORE, 0, at + 2 - in.len);
    uint8_t atyp = in.ptr[at];
    size_t alen = atyp == 1 ? 4 : atyp == 4 ? 16 : atyp == 3 ? (size_t)in.ptr[at + 1] + 1 : 0;
    if (!alen || (atyp == 3 && alen == 1))
        return res(TUN_INVALID, 0, 0);
    size_t end = at + 1 + alen + 2;
    if (in.len < end)
        return res(TUN_MORE, 0, end - in.len);
    const uint8_t *a = in.ptr + at + 1;
    if (host && atyp == 1) {
        ipv4_text(host, a);
    } else if (host && atyp == 4) {
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, a, buf, sizeof(buf));
        mx_tun_text_set(host, (const uint8_t *)buf, strlen(buf));
    } else if (host) {
        mx_tun_text_set(host, a + 1, alen - 1);
    }
    if (port)
        *port = (uint16_t)(in.ptr[end - 2] << 8 | in.ptr[end - 1]);
    return res(TUN_OK, end, 0);
}

/* RFC 1928 §4: VER 5, CMD, RSV 0, ATYP, DST.ADDR, DST.PORT. */
struct tun_res mx_socks5_request(struct mx_slice in, struct tun_request *rq)
{
    if (in.len < 4)
        return res(TUN_MORE, 0, 4 - in.len);
    if (in.ptr[0] != 5 || in.ptr[1] < 1 || in.ptr[1] > 3 || in.ptr[2] != 0)
        return res(TUN_INVALID, 0, 0);
    struct tun_res r = socks5_addr(in, 3, &rq->host, &rq->port);
    if (r.st == TUN_OK)
        rq->cmd = in.ptr[1];
    return r;
}

/* RFC 1928 §6: VER 5, REP, RSV 0, ATYP, BND.ADDR, BND.PORT. */
struct tun_res mx_socks5_reply(struct mx_slice in, struct tun_reply *rp)
{
    if (in.len < 4)
        return res(TUN_MORE, 0, 4 - in.len);
    if (in.ptr[0] != 5 || in.ptr[2] != 0)
        return res(TUN_INVALID, 0, 0);
    struct tun_res r = socks5_addr(in, 3, NULL, NULL);
    if (r.st == TUN_OK)
        rp->code = in.ptr[1];
    return r;
}

/* RFC 1928 §6. */
const char *mx_socks5_rep_meaning(int rep)
{
    static const char *const m[] = {
        "succeeded",
        "general SOCKS server failure",
        "connection not allowed by ruleset",
        "network unreachable",
        "host unreachable",
        "connection refused",
        "TTL expired",
        "command not supported",
        "address type not supported",
    };
    return rep >= 0 && (size_t)rep < MX_ARRAY_LEN(m) ? m[rep] : NULL;
}

/* SOCKS 4: CD of the reply. */
const char *mx_socks4_cd_meaning(int cd)
{
    switch (cd) {
    case 90:
        return "request granted";
    case 91:
        return "request rejected or failed";
    case 92:
        return "request rejected: the SOCKS server cannot connect to identd on the client";
    case 93:
        return "request rejected: the client program and identd report different user-ids";
    default:
        return NULL;
    }
}

/* RFC 1928 §3 and the IANA registry of SOCKS methods. */
const char *mx_socks5_method_name(int method)
{
    switch (method) {
    case 0:
        return "none";
    case 1:
        return "gssapi";
    case 2:
        return "username/password";
    case 0xFF:
        return "no acceptable methods";
    default:
        return NULL;
    }
}
