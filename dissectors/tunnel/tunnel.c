/* tunnel.c - the tunnel carrier: which handshake a proxy's flow starts with (SOCKS4/4a,
 * SOCKS5 RFC 1928/1929, HTTP CONNECT RFC 9110 §9.3.6), whether it carries mail (the
 * target's port, or the server's first bytes), its "tunnel" record, and the hand-over. */
#include "dissectors/tunnel/tunnel.h"

#include "dissectors/tunnel/internal.h"
#include "event/event.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TUN_MAX_ATTEMPTS 8       /* CONNECTs on one connection (HTTP: after a 407, another with credentials) */
#define TUN_HOLD_MAX (64u << 10) /* client bytes held before the proxy answers, while the flow is not yet mail */

#define TUNNEL_ANOMALIES(X)                                                            \
    X(TUNNEL_INVALID, "a SOCKS or HTTP CONNECT handshake message that does not parse") \
    X(TUNNEL_TOO_LONG, "a tunnel handshake field or HTTP head longer than its cap")    \
    X(TUNNEL_REFUSED, "the proxy refused the tunnel")                                  \
    X(TUNNEL_AUTH_FAILED, "the proxy refused the credentials, or wants some")          \
    X(TUNNEL_INCOMPLETE, "the flow ended or lost bytes inside the tunnel's handshake") \
    X(TUNNEL_TOO_MANY_ATTEMPTS, "more CONNECT attempts on one connection than are followed")

enum { TUNNEL_ANOMALIES(MX_ANOMALY_ENUM) A__N };
static const struct mx_anomaly_def tunnel_anomalies[] = { TUNNEL_ANOMALIES(MX_ANOMALY_DEF) };

enum cstate { C_START, C_S5_NEXT, C_S5_REQUEST, C_HOLD, C_DONE };
enum sstate { S_START, S_S5_AUTH, S_S5_REPLY, S_BODY, S_SNIFF, S_DONE };

struct tunnel {
    struct mx_dissect_ctx *ctx;
    struct tun_request rq;
    struct tun_reply rp;
    enum cstate c;
    enum sstate s;
    bool claimed;  /* mx_ctx_carries was called: records may be written */
    bool recorded; /* this attempt's record was written */
    bool handed;   /* mx_ctx_hand_over was called */
    const struct mx_proto *proto;
    unsigned attempts;
    uint64_t body_left;
    mx_frame_t first, last; /* the attempt's first frame, the reply's last */
    mx_time_t ts;
};

static const char *const kind_names[] = { "", "socks4", "socks4a", "socks5", "http-connect" };

static void *tunnel_new(struct mx_dissect_ctx *ctx)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    if (t) {
        t->ctx = ctx;
        t->rp.method = t->rp.auth_status = t->rp.code = -1;
    }
    return t;
}

static void tunnel_free(void *state)
{
    free(state);
}

static size_t tunnel_bytes(const void *state)
{
    (void)state;
    return sizeof(struct tunnel);
}

static void anomaly(struct tunnel *t, enum mx_dir d, int a, uint64_t off, uint64_t len)
{
    if (t->claimed)
        mx_ctx_anomaly_def(t->ctx, d, &tunnel_anomalies[a], off, len);
}

static struct mx_slice text_slice(const struct tun_text *x)
{
    return mx_slice_make(x->b, x->len);
}

static bool established(const struct tunnel *t)
{
    switch (t->rq.kind) {
    case TUN_SOCKS4:
    case TUN_SOCKS4A:
        return t->rp.code == 90;
    case TUN_SOCKS5:
        return t->rp.code == 0;
    case TUN_HTTP:
        return t->rp.code / 100 == 2;
    default:
        return false;
    }
}

/* The reply's code and meaning, "" when none came. */
static const char *reply_meaning(const struct tunnel *t)
{
    const char *m = NULL;
    if (t->rq.kind == TUN_SOCKS5 && t->rp.method == 0xFF)
        m = "no acceptable authentication method";
    else if (t->rq.kind == TUN_SOCKS5 && t->rp.auth_status > 0)
        m = "the proxy refused the user name and password (RFC 1929 §2)";
    else if (t->rp.code < 0)
        m = NULL;
    else if (t->rq.kind == TUN_SOCKS5)
        m = mx_socks5_rep_meaning(t->rp.code);
    else if (t->rq.kind == TUN_HTTP)
        m = mx_http_status_meaning(t->rp.code);
    else
        m = mx_socks4_cd_meaning(t->rp.code);
    return m ? m : t->rp.code >= 0 ? "unassigned code" : "";
}

/* One "tunnel" record for the attempt, with how it ended. */
static void record(struct tunnel *t, const char *outcome)
{
    if (!t->claimed || t->recorded)
        return;
    t->recorded = true;
    struct mx_dissect_ctx *ctx = t->ctx;
    const struct tun_request *rq = &t->rq;
    bool show = mx_ctx_flow(ctx)->show_secrets;
    struct mx_event *ev = mx_ctx_begin(ctx, "tunnel", t->ts);
    mx_ev_str(ev, "kind", kind_names[rq->kind]);
    mx_ev_wire_cut(ev, "target_host", text_slice(&rq->host), rq->host.wire);
    mx_ev_uint(ev, "target_port", rq->port);
    mx_ev_str(ev, "carries", t->proto->name);
    if (rq->kind == TUN_SOCKS5) {
        mx_ev_arr(ev, "methods_offered");
        for (size_t i = 0; i < rq->n_methods; i++) {
            const char *n = mx_socks5_method_name(rq->methods[i]);
            char other[16];
            snprintf(other, sizeof(other), "0x%02x", rq->methods[i]);
            mx_ev_str(ev, NULL, n ? n : other);
        }
        mx_ev_end(ev);
    }
    char auth[40] = "";
    if (rq->kind == TUN_SOCKS5 && t->rp.method >= 0) {
        const char *n = mx_socks5_method_name(t->rp.method);
        if (n)
            snprintf(auth, sizeof(auth), "%s", n);
        else
            snprintf(auth, sizeof(auth), "0x%02x", (unsigned)t->rp.method);
    } else if (rq->kind == TUN_HTTP && rq->scheme.len) {
        snprintf(auth, sizeof(auth), "%.*s", (int)(rq->scheme.len < 32 ? rq->scheme.len : 32),
                 (const char *)rq->scheme.b);
    }
    if (auth[0])
        mx_ev_wire(ev, "auth_method", mx_slice_make(auth, strlen(auth)));
    if (rq->user.len)
        mx_ev_wire_cut(ev, "user", text_slice(&rq->user), rq->user.wire);
    if (rq->has_secret) {
        mx_ev_bool(ev, "secret_in_clear", true);
        if (show)
            mx_ev_wire_cut(ev, "secret", text_slice(&rq->secret), rq->secret.wire);
        else
            mx_ev_uint(ev, "secret_len", rq->secret.wire);
    }
    if (t->rp.auth_status >= 0)
        mx_ev_str(ev, "auth_outcome", t->rp.auth_status == 0 ? "success" : "failure");
    if (t->rp.code >= 0)
        mx_ev_int(ev, "reply_code", t->rp.code);
    const char *meaning = reply_meaning(t);
    if (*meaning)
        mx_ev_str(ev, "reply_meaning", meaning);
    if (rq->kind == TUN_HTTP && t->rp.code >= 0)
        mx_ev_wire_cut(ev, "reason", text_slice(&t->rp.reason), t->rp.reason.wire);
    mx_ev_str(ev, "outcome", outcome);
    mx_ev_frames(ev, t->first, t->last ? t->last : t->first);
    if (mx_ctx_flow(ctx)->explain) {
        static const char *const rfc[] = { "", "SOCKS 4", "SOCKS 4A", "RFC 1928 §4", "RFC 9110 §9.3.6" };
        bool ok = !strcmp(outcome, "established");
        char ex[512];
        snprintf(ex, sizeof(ex),
                 "%s: the client asks the proxy to open a TCP connection to %.*s port %u and relay its bytes; %s",
                 rfc[rq->kind], (int)(rq->host.len < 255 ? rq->host.len : 255), (const char *)rq->host.b, rq->port,
                 ok ? "the proxy agreed: the session inside the tunnel follows, as if the client had connected itself"
                    : "the proxy did not open the tunnel: no session follows");
        mx_ev_wire(ev, "explain", mx_slice_make(ex, strlen(ex)));
    }
    if (mx_ev_wants_text(ev)) {
        char cred[128] = "";
        if (rq->has_secret && show)
            snprintf(cred, sizeof(cred), ", password %.*s", (int)(rq->secret.len < 64 ? rq->secret.len : 64),
                     (const char *)rq->secret.b);
        else if (rq->has_secret)
            snprintf(cred, sizeof(cred), ", password <redacted %zu bytes>", rq->secret.len);
        char code[16] = "";
        if (t->rp.code >= 0)
            snprintf(code, sizeof(code), "%d ", t->rp.code);
        mx_ev_text(ev, "%s tunnel to %.*s:%u for %s (auth %s%s%.*s%s): %s%s [%s]", kind_names[rq->kind],
                   (int)(rq->host.len < 100 ? rq->host.len : 100), (const char *)rq->host.b, rq->port, t->proto->name,
                   auth[0] ? auth : "none", rq->user.len ? ", user " : "", (int)(rq->user.len < 64 ? rq->user.len : 64),
                   (const char *)rq->user.b, cred, code, *meaning ? meaning : "no reply", outcome);
    }
    mx_ev_tone(ev, !strcmp(outcome, "established") ? MX_TONE_GOOD : MX_TONE_BAD);
    mx_event_emit(mx_ctx_sink(ctx), ev);
}

/* The flow is no tunnel of mail after all: quietly let it go, or, once
 * claimed, end the handshake where it broke. */
static void give_up(struct tunnel *t, enum mx_dir d, int a, uint64_t off, uint64_t len)
{
    if (!t->claimed) {
        mx_ctx_no_mail(t->ctx);
    } else {
        anomaly(t, d, a, off, len);
        record(t, a == A_TUNNEL_INCOMPLETE ? "incomplete" : "invalid");
    }
    t->c = C_DONE;
    t->s = S_DONE;
}

/* The request is complete: a CONNECT to a mail protocol's port is mail. */
static void requested(struct tunnel *t, enum mx_dir d, uint64_t off, size_t len)
{
    t->c = C_HOLD;
    if (t->rq.cmd != 1) {
        give_up(t, d, A_TUNNEL_INVALID, off, len); /* BIND, UDP ASSOCIATE: no mail session */
        return;
    }
    if (t->claimed)
        return;
    bool tls = false;
    const struct mx_proto *p = mx_protocols_by_port(mx_ctx_protocols(t->ctx), t->rq.port, &tls);
    if (p) {
        t->proto = p;
        t->claimed = true;
        mx_ctx_carries(t->ctx, p, tls, kind_names[t->rq.kind]);
    }
}

/* The proxy's final answer to the request. */
static void answered(struct tunnel *t, uint64_t off, size_t len)
{
    if (t->c != C_HOLD) {
        give_up(t, MX_DIR_S2C, A_TUNNEL_INVALID, off, len); /* an answer to no request */
        return;
    }
    bool ok = established(t) && t->rp.method != 0xFF && t->rp.auth_status <= 0;
    if (!t->claimed) {
        if (ok)
            t->s = S_SNIFF; /* the server's first bytes tell */
        else
            give_up(t, MX_DIR_S2C, A_TUNNEL_REFUSED, off, len);
        return;
    }
    if (ok) {
        record(t, "established");
        mx_ctx_hand_over(t->ctx);
        t->handed = true;
        t->c = C_DONE;
        t->s = S_DONE;
        return;
    }
    bool auth = t->rp.auth_status > 0 || t->rp.code == 407 || (t->rq.kind == TUN_SOCKS5 && t->rp.method == 0xFF);
    anomaly(t, MX_DIR_S2C, auth ? A_TUNNEL_AUTH_FAILED : A_TUNNEL_REFUSED, off, len);
    record(t, auth ? "auth_failed" : "refused");
    if (t->rq.kind != TUN_HTTP || t->rp.body_to_close) {
        t->c = C_DONE;
        t->s = S_DONE;
        return;
    }
    /* HTTP: the refusal's body, then maybe another CONNECT (RFC 9110 §11.7.2). */
    t->body_left = t->rp.body;
    t->s = t->body_left ? S_BODY : S_START;
    if (!t->body_left)
        t->c = C_START;
    mx_ctx_wake(t->ctx, MX_DIR_C2S);
}

/* RFC 5321 §4.2, RFC 1939 §4, RFC 9051 §7.1: how a server greets. */
static const char *greeting_proto(struct mx_slice b)
{
    if (b.len >= 4 && !memcmp(b.ptr, "220", 3) && (b.ptr[3] == ' ' || b.ptr[3] == '-'))
        return "smtp";
    if (b.len >= 4 && !memcmp(b.ptr, "+OK", 3))
        return "pop3";
    if (b.len >= 4 && (!memcmp(b.ptr, "* OK", 4) || !memcmp(b.ptr, "* PR", 4) || !memcmp(b.ptr, "* BY", 4)))
        return "imap";
    return NULL;
}

static struct mx_parse_result result(size_t consumed, size_t needed)
{
    struct mx_parse_result r = { MX_PARSE_OK, consumed, needed };
    return r;
}

/* A message's result: false to stop the loop (incomplete, or given up). */
static bool settle(struct tunnel *t, enum mx_dir d, struct tun_res r, uint64_t off, size_t avail, size_t *need)
{
    if (r.st == TUN_OK)
        return true;
    if (r.st == TUN_MORE) {
        *need = r.need;
        return false;
    }
    give_up(t, d, r.st == TUN_TOO_LONG ? A_TUNNEL_TOO_LONG : A_TUNNEL_INVALID, off, avail);
    return false;
}

static struct mx_parse_result parse_c2s(struct tunnel *t, struct mx_slice data, uint64_t base)
{
    size_t pos = 0, need = 0;
    while (pos < data.len && t->c != C_DONE) {
        struct mx_slice in = mx_slice_make(data.ptr + pos, data.len - pos);
        uint64_t off = base + pos;
        struct tun_res r = { TUN_INVALID, 0, 0 };
        if (t->c == C_HOLD) {
            /* The client speaks first inside the tunnel: no mail server; or
             * it sends more than a handshake's worth before the answer. */
            if ((t->s == S_SNIFF || in.len > TUN_HOLD_MAX) && !t->claimed)
                give_up(t, MX_DIR_C2S, A_TUNNEL_INVALID, off, in.len);
            break; /* held until the proxy answers */
        }
        if (t->c == C_START) {
            if (t->attempts >= TUN_MAX_ATTEMPTS) {
                anomaly(t, MX_DIR_C2S, A_TUNNEL_TOO_MANY_ATTEMPTS, off, in.len);
                t->c = C_DONE;
                break;
            }
            if (t->rq.kind == TUN_HTTP) {
                memset(&t->rq, 0, sizeof(t->rq)); /* another CONNECT: its own target and credentials */
                t->rq.kind = TUN_HTTP;
            }
            t->recorded = false;
            t->rp.code = t->rp.method = t->rp.auth_status = -1;
            t->first = mx_ctx_frame_at(t->ctx, MX_DIR_C2S, off).frame;
            t->last = 0;
            uint8_t b0 = in.ptr[0];
            if (t->rq.kind == TUN_HTTP || (b0 != 4 && b0 != 5))
                r = mx_http_connect_request(in, &t->rq);
            else if (b0 == 4)
                r = mx_socks4_request(in, &t->rq);
            else
                r = mx_socks5_methods(in, &t->rq);
            if (r.st == TUN_OTHER) {
                give_up(t, MX_DIR_C2S, A_TUNNEL_INVALID, off, in.len); /* a plain use of the proxy */
                break;
            }
        } else if (t->c == C_S5_NEXT && in.ptr[0] == 1) {
            r = mx_socks5_userpass(in, &t->rq);
        } else {
            r = mx_socks5_request(in, &t->rq);
        }
        if (!settle(t, MX_DIR_C2S, r, off, in.len, &need))
            break;
        pos += r.len;
        if (t->c == C_START && t->rq.kind == TUN_SOCKS5) {
            t->c = C_S5_NEXT;
        } else if (t->c == C_S5_NEXT && in.ptr[0] == 1) {
            t->c = C_S5_REQUEST;
        } else {
            t->attempts++;
            requested(t, MX_DIR_C2S, off, r.len);
        }
    }
    if (t->c == C_DONE && !t->handed)
        pos = data.len;
    return result(pos, need);
}

static struct mx_parse_result parse_s2c(struct tunnel *t, struct mx_slice data, uint64_t base, bool end)
{
    size_t pos = 0, need = 0;
    while (pos < data.len && t->s != S_DONE) {
        struct mx_slice in = mx_slice_make(data.ptr + pos, data.len - pos);
        uint64_t off = base + pos;
        struct tun_res r = { TUN_INVALID, 0, 0 };
        if (t->rq.kind == TUN_NONE) {
            give_up(t, MX_DIR_S2C, A_TUNNEL_INVALID, off, in.len); /* the server speaks first: no proxy */
            break;
        }
        if (t->s == S_BODY) {
            size_t n = in.len < t->body_left ? in.len : (size_t)t->body_left;
            pos += n;
            t->body_left -= n;
            if (!t->body_left) {
                t->s = S_START;
                t->c = C_START;
                mx_ctx_wake(t->ctx, MX_DIR_C2S);
            }
            continue;
        }
        if (t->s == S_SNIFF) {
            if (in.len < 4 && !end) {
                need = 4 - in.len;
                break;
            }
            const char *name = greeting_proto(in);
            const struct mx_proto *p = name ? mx_protocols_by_name(mx_ctx_protocols(t->ctx), name, strlen(name)) : NULL;
            if (!p) {
                give_up(t, MX_DIR_S2C, A_TUNNEL_INVALID, off, in.len);
                break;
            }
            t->proto = p;
            t->claimed = true;
            mx_ctx_carries(t->ctx, p, false, kind_names[t->rq.kind]);
            record(t, "established");
            mx_ctx_hand_over(t->ctx);
            t->handed = true;
            t->c = C_DONE;
            t->s = S_DONE;
            return result(pos, 0); /* the greeting is the mail dissector's */
        }
        enum sstate was = t->s;
        if (t->rq.kind == TUN_SOCKS4 || t->rq.kind == TUN_SOCKS4A)
            r = mx_socks4_reply(in, &t->rp);
        else if (t->rq.kind == TUN_HTTP)
            r = mx_http_connect_reply(in, &t->rp);
        else if (was == S_START)
            r = mx_socks5_method_reply(in, &t->rp);
        else if (was == S_S5_AUTH)
            r = mx_socks5_userpass_reply(in, &t->rp);
        else
            r = mx_socks5_reply(in, &t->rp);
        if (!settle(t, MX_DIR_S2C, r, off, in.len, &need))
            break;
        pos += r.len;
        struct mx_frame_ref fr = mx_ctx_frame_at(t->ctx, MX_DIR_S2C, off + r.len - 1);
        t->last = fr.frame;
        t->ts = fr.ts;
        if (t->rq.kind == TUN_SOCKS5 && was == S_START && t->rp.method != 0xFF) {
            t->s = t->rp.method == 2 ? S_S5_AUTH : S_S5_REPLY;
        } else if (t->rq.kind == TUN_SOCKS5 && was == S_S5_AUTH && t->rp.auth_status == 0) {
            t->s = S_S5_REPLY;
        } else if (t->rq.kind == TUN_HTTP && t->rp.code / 100 == 1) {
            continue; /* an interim reply: the final one follows */
        } else {
            if (t->c != C_HOLD && t->rq.kind == TUN_SOCKS5 && t->rp.code < 0)
                t->c = C_HOLD; /* refused before the request: the client sends none */
            answered(t, off, r.len);
        }
    }
    if (t->s == S_DONE)
        return result(t->handed ? pos : data.len, 0); /* after the hand-over the rest is the mail dissector's */
    return result(pos, need);
}

static struct mx_parse_result tunnel_parse(void *state, struct mx_dissect_ctx *ctx, enum mx_dir dir,
                                           struct mx_slice data, unsigned flags)
{
    struct tunnel *t = state;
    uint64_t base = mx_ctx_offset(ctx, dir);
    if (flags & MX_CHUNK_GAP) {
        if (t->c != C_DONE || t->s != S_DONE)
            give_up(t, dir, A_TUNNEL_INCOMPLETE, base, data.len);
        return result(data.len, 0);
    }
    struct mx_parse_result r =
        dir == MX_DIR_C2S ? parse_c2s(t, data, base) : parse_s2c(t, data, base, (flags & MX_CHUNK_END) != 0);
    if ((flags & MX_CHUNK_END) && (t->c != C_DONE || t->s != S_DONE)) {
        /* The direction ended: a message cut short, or the proxy's answer
         * that never came, ends the handshake. */
        bool waiting = dir == MX_DIR_C2S && t->c == C_HOLD && r.consumed == data.len;
        bool idle = dir == MX_DIR_C2S && t->c == C_START && !data.len && t->rq.kind == TUN_HTTP;
        if (!waiting && !idle && (data.len || dir == MX_DIR_S2C || t->c != C_START || t->rq.kind != TUN_NONE)) {
            if (t->claimed && !t->recorded)
                anomaly(t, dir, A_TUNNEL_INCOMPLETE, base + r.consumed, data.len - r.consumed);
            if (t->claimed)
                record(t, t->rp.code < 0 && t->rp.method < 0 ? "no_reply" : "incomplete");
            else
                mx_ctx_no_mail(ctx);
            t->c = C_DONE;
            t->s = S_DONE;
        }
    }
    return r;
}

const struct mx_dissector mx_tunnel_dissector = {
    .name = "tunnel",
    .state_new = tunnel_new,
    .state_free = tunnel_free,
    .parse = tunnel_parse,
    .anomalies = NULL,
    .n_anomalies = 0,
    .state_bytes = tunnel_bytes,
};
