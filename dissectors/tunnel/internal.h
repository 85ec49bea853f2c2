/* internal.h - what the tunnel carrier's files share: a handshake's messages as the parsers
 * of socks.c and http.c read them, for tunnel.c. */
#ifndef MX_TUNNEL_INTERNAL_H
#define MX_TUNNEL_INTERNAL_H

#include "core/mx.h"

/* Caps: every name and length of SOCKS is one byte (RFC 1928 §4, §5, RFC 1929
 * §2), and SOCKS4's NUL-ended fields get the same; an HTTP CONNECT request or
 * reply head (line and header fields) at most TUN_HEAD_MAX bytes. */
#define TUN_TEXT_MAX 255
#define TUN_HEAD_MAX 8192
#define TUN_METHODS_MAX 16 /* SOCKS5 methods kept of those offered */

enum tun_kind { TUN_NONE, TUN_SOCKS4, TUN_SOCKS4A, TUN_SOCKS5, TUN_HTTP };

/* Wire text copied from a message (capped: longer is cut, wire keeps its
 * real length for the record's "<key>_len" and "<key>_truncated"). */
struct tun_text {
    uint8_t b[TUN_TEXT_MAX];
    size_t len;
    size_t wire;
};

/* What a parse of one message from the start of its input found. */
enum tun_status {
    TUN_OK,       /* a message of `len` bytes */
    TUN_MORE,     /* incomplete: `need` more bytes at least (0: any) */
    TUN_INVALID,  /* not the message it must be */
    TUN_TOO_LONG, /* a field or the head runs past its cap */
    TUN_OTHER,    /* a valid message of something else: an HTTP request that is no CONNECT */
};

struct tun_res {
    enum tun_status st;
    size_t len, need;
};

/* The client's side of a handshake. */
struct tun_request {
    enum tun_kind kind;
    uint8_t cmd;          /* SOCKS CMD (1 CONNECT, 2 BIND, 3 UDP ASSOCIATE); 1 for HTTP CONNECT */
    struct tun_text host; /* the target: dotted IPv4, IPv6 text, or the name as sent */
    uint16_t port;
    uint8_t methods[TUN_METHODS_MAX]; /* SOCKS5 methods offered (RFC 1928 §3) */
    size_t n_methods;
    struct tun_text user;   /* RFC 1929 UNAME, SOCKS4 USERID, HTTP Basic user-id */
    struct tun_text secret; /* RFC 1929 PASSWD, HTTP Basic password */
    bool has_secret;        /* a password crossed */
    struct tun_text scheme; /* HTTP Proxy-Authorization's scheme (RFC 9110 §11.7.2) */
    bool auth_invalid;      /* a Basic credential that is no base64 of user:pass (RFC 7617 §2) */
};

/* The proxy's side. */
struct tun_reply {
    int method;             /* SOCKS5 METHOD chosen (RFC 1928 §3), -1 none */
    int auth_status;        /* RFC 1929 STATUS, -1 none */
    int code;               /* SOCKS5 REP, SOCKS4 CD, HTTP status code; -1 none */
    struct tun_text reason; /* HTTP reason phrase */
    uint64_t body;          /* HTTP: body bytes that follow a refusal (Content-Length) */
    bool body_to_close;     /* HTTP: a body delimited by the connection's close (RFC 9112 §6.3) */
};

/* ---- SOCKS (socks.c) ---- */

/* SOCKS4 CONNECT/BIND request, and SOCKS4a's name after it. */
struct tun_res mx_socks4_request(struct mx_slice in, struct tun_request *rq);
/* SOCKS4 reply: 8 bytes, CD in code. */
struct tun_res mx_socks4_reply(struct mx_slice in, struct tun_reply *rp);
/* SOCKS5 version identifier/method selection message (RFC 1928 §3). */
struct tun_res mx_socks5_methods(struct mx_slice in, struct tun_request *rq);
/* SOCKS5 METHOD selection reply (RFC 1928 §3). */
struct tun_res mx_socks5_method_reply(struct mx_slice in, struct tun_reply *rp);
/* RFC 1929 §2 username/password request. */
struct tun_res mx_socks5_userpass(struct mx_slice in, struct tun_request *rq);
/* RFC 1929 §2 status reply. */
struct tun_res mx_socks5_userpass_reply(struct mx_slice in, struct tun_reply *rp);
/* SOCKS5 request (RFC 1928 §4). */
struct tun_res mx_socks5_request(struct mx_slice in, struct tun_request *rq);
/* SOCKS5 reply (RFC 1928 §6). */
struct tun_res mx_socks5_reply(struct mx_slice in, struct tun_reply *rp);
/* What a SOCKS5 REP, a SOCKS4 CD or a SOCKS5 METHOD means; NULL when unassigned. */
const char *mx_socks5_rep_meaning(int rep);
const char *mx_socks4_cd_meaning(int cd);
const char *mx_socks5_method_name(int method);

/* ---- HTTP CONNECT (http.c) ---- */

/* A request head (RFC 9112 §3, §5): TUN_OTHER for a method other than CONNECT. */
struct tun_res mx_http_connect_request(struct mx_slice in, struct tun_request *rq);
/* A reply head (RFC 9112 §4): its status, and the body a refusal carries. */
struct tun_res mx_http_connect_reply(struct mx_slice in, struct tun_reply *rp);
/* What an HTTP status means for a CONNECT (RFC 9110 §15). */
const char *mx_http_status_meaning(int code);

/* Copies wire bytes into a capped text. */
void mx_tun_text_set(struct tun_text *t, const uint8_t *p, size_t n);

#endif
