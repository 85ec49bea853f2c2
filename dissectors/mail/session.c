/* session.c - the session layer SMTP, POP3 and IMAP share (session.h). */
#include "dissectors/mail/session.h"

#include "dissectors/tls/tls.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *const mx_mail_anomaly_names[MX_MAIL__ANOMALIES] = {
    [MX_MAIL_LONG_COMMAND_LINE] = "LONG_COMMAND_LINE",
    [MX_MAIL_BARE_LF] = "BARE_LF",
    [MX_MAIL_TOO_MANY_PENDING] = "TOO_MANY_PENDING_COMMANDS",
    [MX_MAIL_UNKNOWN_COMMAND] = "UNKNOWN_COMMAND",
    [MX_MAIL_COMMAND_OUT_OF_SEQUENCE] = "COMMAND_OUT_OF_SEQUENCE",
    [MX_MAIL_STARTTLS_CLIENT_INJECTION] = "STARTTLS_CLIENT_INJECTION",
    [MX_MAIL_STARTTLS_SERVER_INJECTION] = "STARTTLS_SERVER_INJECTION",
    [MX_MAIL_AUTH_DECODE_ERROR] = "AUTH_DECODE_ERROR",
    [MX_MAIL_PARTIAL_AFTER_GAP] = "PARTIAL_AFTER_GAP",
    [MX_MAIL_COMMAND_SPACING] = "COMMAND_SPACING",
    [MX_MAIL_NO_TLS_AFTER_STARTTLS] = "NO_TLS_AFTER_STARTTLS",
    [MX_MAIL_CLIENT_SPOKE_FIRST] = "CLIENT_SPOKE_FIRST",
};

const char *mx_login_outcome_name(enum mx_login_outcome o)
{
    switch (o) {
    case MX_LOGIN_SUCCESS:
        return "success";
    case MX_LOGIN_FAILURE:
        return "failure";
    case MX_LOGIN_CANCELLED:
        return "cancelled";
    case MX_LOGIN_NO_REPLY:
    default:
        return "no_reply";
    }
}

void mx_mail_init(struct mx_mail *m, struct mx_dissect_ctx *ctx, const struct mx_mail_proto *proto)
{
    memset(m, 0, sizeof(*m));
    m->ctx = ctx;
    m->proto = proto;
    m->now = mx_ctx_flow(ctx)->start;
    m->turn.greeted = !mx_ctx_flow(ctx)->handshake; /* midstream: whose turn it was is unknown */
}

void mx_mail_free(struct mx_mail *m)
{
    if (m->caps_kept)
        mx_caps_free(&m->caps_clear);
}

struct mx_parse_result mx_mail_parse(void *state, struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data,
                                     unsigned flags)
{
    struct mx_mail *m = state;
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    size_t taken = 0;
    m->ctx = ctx;
    if (d == MX_DIR_C2S && !mx_mail_proxy_done(m)) {
        /* proxy-protocol.txt §2: a PROXY header comes before the protocol's first byte. */
        struct mx_parse_result p = mx_mail_proxy_take(m, data, flags);
        bool final = flags & (MX_CHUNK_END | MX_CHUNK_TRUNCATED);
        if (!mx_mail_proxy_done(m) || (p.consumed && !final)) {
            if (mx_mail_proxy_done(m) && p.consumed < data.len)
                mx_ctx_wake(ctx, d); /* the rest comes again, at its own offset */
            return p;
        }
        /* Read or not, the rest is the protocol's now. A last call that held
         * a whole header and more cannot happen (the header is taken as soon
         * as it is whole); if it did, the protocol's offsets would be off by it. */
        taken = p.consumed;
        if (taken) /* never on a gap, whose data.ptr is NULL */
            data = mx_slice_make(data.ptr + taken, data.len - taken);
    }
    if (flags & MX_CHUNK_INSIDE_TLS) {
        if (m->caps && !m->caps_kept && mx_ctx_tls_inside(ctx) == MX_INSIDE_DECRYPTED) {
            /* What the server listed in clear, before it lists anew inside TLS (RFC 3207 §4.2). */
            mx_caps_init(&m->caps_clear, m->caps->b.n ? m->caps->b.n : 1);
            m->caps_kept = true;
            m->caps_clear.first = m->caps->first;
            m->caps_clear.last = m->caps->last;
            if (m->caps->b.n && mx_buf_append(&m->caps_clear.b, m->caps->b.p, m->caps->b.n) != MX_BUF_OK)
                mx_ctx_fail(ctx);
        }
        m->proto->inside_tls(state, d);
        if (d == MX_DIR_C2S && mx_ctx_tls_inside(ctx) == MX_INSIDE_CLEAR)
            mx_mail_anomaly(m, d, MX_MAIL_NO_TLS_AFTER_STARTTLS, mx_ctx_offset(ctx, d), data.len);
    }
    if (!m->turn.greeted) {
        if (d == MX_DIR_S2C && (flags & MX_CHUNK_GAP)) {
            m->turn.greeted = true; /* the greeting may be in the hole: who spoke first is unknown */
        } else if (d == MX_DIR_S2C) {
            /* A client that speaks after a line without its LF answered it:
             * the server sent its greeting unterminated. */
            m->turn.server_mid_line = data.len && data.ptr[data.len - 1] != '\n';
        } else if (!m->turn.early && !m->turn.server_mid_line && data.len && !(flags & MX_CHUNK_GAP)) {
            /* RFC 5321 §3.1, RFC 1939 §4, RFC 9051 §7.1: the client speaks before the greeting. */
            struct mx_frame_ref fr = mx_ctx_frame_at(ctx, d, mx_ctx_offset(ctx, d) + taken);
            m->turn.early = true;
            m->turn.frame = fr.frame;
            m->turn.ts = fr.ts;
        }
    }
    if (flags & MX_CHUNK_GAP) {
        m->proto->gap(state, d, data.len);
    } else {
        r = m->proto->read(state, d, data, flags);
        r.consumed += taken;
        if (flags & MX_CHUNK_END)
            m->proto->end(state, d);
    }
    return r;
}

void mx_mail_anomaly(struct mx_mail *m, enum mx_dir d, enum mx_mail_anomaly a, uint64_t off, uint64_t len)
{
    if (m->proto->an[a] != MX_MAIL_NONE)
        mx_ctx_anomaly(m->ctx, d, m->proto->an[a], off, len);
}

void mx_mail_greeted(struct mx_mail *m)
{
    if (m->turn.greeted)
        return;
    m->turn.greeted = true;
    if (m->turn.early && m->proto->an[MX_MAIL_CLIENT_SPOKE_FIRST] != MX_MAIL_NONE)
        mx_ctx_anomaly_frames(m->ctx, MX_DIR_C2S, m->proto->an[MX_MAIL_CLIENT_SPOKE_FIRST], m->turn.frame,
                              m->turn.frame, m->turn.ts);
}

/* ---- The server's own end of the session ---- */

void mx_mail_server_closed(struct mx_mail *m, const char *status, struct mx_slice code, struct mx_slice text,
                           const char *answers, uint32_t unanswered, mx_frame_t a, mx_frame_t b, mx_time_t ts)
{
    struct mx_mail_close *c = &m->closed;
    if (c->on)
        return;
    c->on = true;
    snprintf(c->status, sizeof(c->status), "%s", status);
    mx_text_set(&c->code, code);
    mx_text_set(&c->text, text);
    c->answers = answers;
    c->unanswered = unanswered;
    c->first = a;
    c->last = b;
    c->ts = ts;
}

void mx_mail_close_fields(struct mx_event *ev, uint32_t unanswered)
{
    mx_ev_bool(ev, "closes_session", true);
    if (unanswered)
        mx_ev_uint(ev, "unanswered", unanswered);
}

void mx_mail_reply_times(struct mx_mail *m, struct mx_event *ev, mx_time_t cmd, mx_time_t first, mx_time_t end)
{
    if (cmd == MX_TIME_NONE || first == MX_TIME_NONE || end == MX_TIME_NONE)
        return;
    if (end < first)
        end = first; /* a clock that stepped back */
    /* The reply was whole when its last piece came, which is not the frame
     * of its last byte when pieces came out of order or again: the server's
     * latest segment so far (the reply is being read as it completes). */
    struct mx_tcpa_span n;
    mx_ctx_net_span(m->ctx, cmd, end, &n);
    if (n.data_ts[MX_DIR_S2C] > end) {
        end = n.data_ts[MX_DIR_S2C];
        mx_ctx_net_span(m->ctx, cmd, end, &n);
    }
    mx_ev_double(ev, "first_byte_ms", mx_time_secs(cmd, first) * 1e3);
    mx_ev_double(ev, "complete_ms", mx_time_secs(cmd, end) * 1e3);
    if (!n.retransmissions && !n.zero_windows && !n.stall)
        return;
    mx_ev_obj(ev, "network");
    mx_ev_uint(ev, "retransmissions", n.retransmissions);
    mx_ev_uint(ev, "zero_windows", n.zero_windows);
    if (n.at_least)
        mx_ev_bool(ev, "at_least", true);
    if (n.stall) {
        mx_ev_double(ev, "stall_ms", (double)n.stall / 1e6);
        mx_ev_arr(ev, "stall_frames");
        mx_ev_uint(ev, NULL, n.stall_from);
        mx_ev_uint(ev, NULL, n.stall_to);
        mx_ev_end(ev);
    }
    if (n.n_frames) {
        mx_ev_arr(ev, "frames");
        for (uint32_t i = 0; i < n.n_frames; i++)
            mx_ev_uint(ev, NULL, n.frames[i]);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
}

const char *mx_mail_close_note(uint32_t unanswered, char *buf, size_t cap)
{
    if (unanswered)
        snprintf(buf, cap, "the server closes the session, %" PRIu32 " command%s unanswered", unanswered,
                 unanswered == 1 ? "" : "s");
    else
        snprintf(buf, cap, "the server closes the session");
    return buf;
}

void mx_mail_describe_close(const struct mx_mail *m, struct mx_event *ev)
{
    const struct mx_mail_close *c = &m->closed;
    if (!c->on)
        return;
    mx_ev_obj(ev, "server_closed");
    mx_ev_str(ev, "status", c->status);
    if (c->code.len)
        mx_ev_text_cut(ev, "code", &c->code);
    mx_ev_text_cut(ev, "text", &c->text);
    if (c->answers)
        mx_ev_str(ev, "answers", c->answers);
    if (c->unanswered)
        mx_ev_uint(ev, "unanswered", c->unanswered);
    mx_ev_frames(ev, c->first, c->last);
    mx_ev_end(ev);
}

void mx_mail_describe_waiting(struct mx_event *ev, uint32_t n)
{
    if (n)
        mx_ev_uint(ev, "unanswered", n);
}

const char *mx_mail_close_summary(const struct mx_mail *m, char *buf, size_t cap)
{
    const struct mx_mail_close *c = &m->closed;
    struct mx_slice t = mx_text_slice(&c->text);
    const uint8_t *nl = memchr(t.ptr, '\n', t.len);
    if (nl)
        t.len = (size_t)(nl - t.ptr); /* the first line of a multi-line reply */
    if (!c->on)
        snprintf(buf, cap, "%s", "");
    else
        snprintf(buf, cap, ", closed by the server: %s%s%.*s%s%.*s", c->status, c->code.len ? " " : "",
                 (int)c->code.len, (const char *)c->code.b, t.len ? " " : "", (int)(t.len < 120 ? t.len : 120),
                 (const char *)t.ptr);
    return buf;
}

/* ---- Commands waiting for their replies ---- */

void mx_mail_queue_init(struct mx_mail_queue *q, void *slots, size_t size, unsigned cap)
{
    q->slots = slots;
    q->size = size;
    q->cap = cap;
    q->head = q->n = 0;
}

void *mx_mail_queue_push(struct mx_mail *m, struct mx_mail_queue *q, const void *entry, uint64_t off, uint64_t len)
{
    if (q->n == q->cap) {
        mx_mail_anomaly(m, MX_DIR_C2S, MX_MAIL_TOO_MANY_PENDING, off, len);
        return NULL;
    }
    void *slot = mx_mail_queue_at(q, q->n);
    memcpy(slot, entry, q->size);
    q->n++;
    return slot;
}

bool mx_mail_queue_pop(struct mx_mail_queue *q, void *out)
{
    if (!q->n)
        return false;
    memcpy(out, mx_mail_queue_at(q, 0), q->size);
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return true;
}

void mx_mail_queue_drop(struct mx_mail_queue *q, unsigned k)
{
    q->head = (q->head + k) % q->cap;
    q->n -= k;
}

/* ---- Capabilities ---- */

void mx_caps_init(struct mx_caps *c, size_t max)
{
    mx_buf_init(&c->b, 1, 256, max);
    c->dropped = 0;
}

void mx_caps_clear(struct mx_caps *c)
{
    mx_buf_clear(&c->b, false);
    c->dropped = 0;
    c->first = c->last = 0;
}

void mx_caps_frames(struct mx_caps *c, mx_frame_t a, mx_frame_t b)
{
    if (!a)
        return;
    if (!c->first)
        c->first = a;
    c->last = b > a ? b : a;
}

void mx_caps_free(struct mx_caps *c)
{
    mx_buf_free(&c->b);
}

bool mx_caps_next(const struct mx_caps *c, size_t *pos, struct mx_slice *v)
{
    if (*pos + 2 > c->b.n)
        return false;
    const uint8_t *p = (const uint8_t *)c->b.p + *pos;
    size_t len = (size_t)p[0] | (size_t)p[1] << 8;
    *v = mx_slice_make(p + 2, len);
    *pos += 2 + len;
    return true;
}

bool mx_mail_caps_add(struct mx_mail *m, struct mx_caps *c, struct mx_slice v)
{
    if (v.len > 0xffff) {
        c->dropped++;
        return false;
    }
    switch (mx_buf_reserve(&c->b, 2 + v.len)) {
    case MX_BUF_CAPPED:
        c->dropped++;
        return false;
    case MX_BUF_NOMEM:
        mx_ctx_fail(m->ctx);
        return false;
    case MX_BUF_OK:
        break;
    }
    uint8_t len[2] = { (uint8_t)(v.len & 0xff), (uint8_t)(v.len >> 8) };
    mx_buf_append(&c->b, len, 2);
    mx_buf_append(&c->b, v.ptr, v.len);
    return true;
}

void mx_mail_caps_add_words(struct mx_mail *m, struct mx_caps *c, struct mx_slice v)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && v.ptr[i] == ' ')
            i++;
        size_t j = i;
        while (j < v.len && v.ptr[j] != ' ')
            j++;
        if (j > i)
            mx_mail_caps_add(m, c, mx_slice_make(v.ptr + i, j - i));
        i = j;
    }
}

/* ---- Logins ---- */

struct mx_mail_login *mx_mail_login_start(struct mx_mail *m, struct mx_slice mech, mx_frame_t f, mx_time_t ts)
{
    if (m->n_logins == MX_MAIL_MAX_LOGINS) {
        m->logins_dropped++;
        m->login = NULL;
        return NULL;
    }
    struct mx_mail_login *l = &m->logins[m->n_logins++];
    memset(l, 0, sizeof(*l));
    mx_sasl_start(&l->sasl, mech, mx_ctx_flow(m->ctx)->show_secrets);
    l->frame = f;
    l->ts = ts;
    m->login = l;
    return l;
}

struct mx_mail_login *mx_mail_login_finish(struct mx_mail *m, enum mx_login_outcome o, mx_frame_t f)
{
    struct mx_mail_login *l = m->login;
    m->login = NULL;
    if (!l)
        return NULL;
    l->outcome = o;
    l->last_frame = f;
    m->login_failed = o != MX_LOGIN_SUCCESS;
    return l;
}

bool mx_mail_line_maybe_secret(const struct mx_mail *m, struct mx_slice line)
{
    line = mx_trim_cmd(line);
    return m->login_failed && line.len && mx_is_base64_line(line);
}

bool mx_mail_sasl_client(struct mx_mail *m, struct mx_sasl *sasl, struct mx_slice b64, uint64_t off, uint64_t len)
{
    if (!sasl)
        return true; /* an exchange not kept: what it carries may be a secret */
    bool before = sasl->secret_in_clear;
    bool secret = mx_sasl_client(sasl, b64);
    if (!before && sasl->secret_in_clear && len) /* the line that carried the password or token */
        sasl->secret_frame = mx_ctx_frame_at(m->ctx, MX_DIR_C2S, off + len - 1).frame;
    if (sasl->decode_error) {
        mx_mail_anomaly(m, MX_DIR_C2S, MX_MAIL_AUTH_DECODE_ERROR, off, len);
        sasl->decode_error = false;
    }
    return secret;
}

void mx_mail_sasl_server(struct mx_mail *m, struct mx_sasl *sasl, struct mx_slice b64, uint64_t off, uint64_t len)
{
    if (!sasl)
        return;
    mx_sasl_server(sasl, b64);
    if (sasl->decode_error) {
        mx_mail_anomaly(m, MX_DIR_S2C, MX_MAIL_AUTH_DECODE_ERROR, off, len);
        sasl->decode_error = false;
    }
}

/* ---- Records ---- */

void mx_mail_command_record(struct mx_mail *m, const struct mx_mail_command *c)
{
    struct mx_sink *sink = mx_ctx_sink(m->ctx);
    struct mx_event *ev = mx_ctx_begin(m->ctx, m->proto->command_type, c->ts);
    bool redact = c->redacted_len && !mx_ctx_flow(m->ctx)->show_secrets;
    if (c->name)
        m->login_failed = false;
    mx_ev_dir(ev, MX_DIR_C2S);
    mx_ev_frames(ev, c->first, c->last);
    if (c->tag.len && !redact)
        mx_ev_wire(ev, "tag", c->tag);
    if (redact) {
        /* Maybe a secret sent after a failed login: its length only. */
        mx_ev_str(ev, m->proto->command_key, "(redacted)");
        mx_ev_uint(ev, "redacted_len", c->redacted_len);
    } else if (c->name) {
        mx_ev_str(ev, m->proto->command_key, c->name);
    } else {
        mx_ev_wire(ev, m->proto->command_key, c->verb);
    }
    if (c->uid)
        mx_ev_bool(ev, "by_uid", true);
    if (c->shown && !redact)
        mx_ev_wire(ev, "arg", mx_slice_make(c->shown, strlen(c->shown))); /* it quotes wire bytes */
    else if (c->arg.len && !redact)
        mx_ev_wire_cut(ev, "arg", c->arg, c->arg_wire);
    if (c->mailbox.len)
        mx_ev_wire_cut(ev, "mailbox", c->mailbox, c->mailbox_wire);
    if (c->pipelined)
        mx_ev_bool(ev, "pipelined", true);
    if (c->injected)
        mx_ev_bool(ev, "injected", true);
    if (mx_ctx_flow(m->ctx)->explain) {
        mx_ev_str(ev, "explain", c->explain ? c->explain : m->proto->unknown_explain);
        mx_ev_str(ev, "state", c->state);
    }
    if (redact) {
        mx_ev_text(ev, "%s<redacted %zu bytes: sent after a failed login, maybe a secret>%s", c->pipelined ? "| " : "",
                   c->redacted_len, c->injected ? "   [injected before TLS]" : "");
        mx_event_emit(sink, ev);
        return;
    }
    bool has_arg = c->arg.len || c->shown;
    struct mx_slice arg = c->shown ? mx_slice_make(c->shown, strlen(c->shown)) : c->arg;
    mx_ev_text(ev, "%s%.*s%s%s%.*s%s%.*s%s", c->pipelined ? "| " : "", (int)c->tag.len, (const char *)c->tag.ptr,
               c->tag.len ? " " : "", c->uid ? "UID " : "", (int)c->verb.len, (const char *)c->verb.ptr,
               has_arg ? " " : "", (int)arg.len, (const char *)arg.ptr, c->injected ? "   [injected before TLS]" : "");
    mx_event_emit(sink, ev);
}

void mx_mail_auth_data_record(struct mx_mail *m, struct mx_slice line, bool secret, bool cancel, mx_frame_t a,
                              mx_frame_t b, mx_time_t ts)
{
    bool hide = secret && !mx_ctx_flow(m->ctx)->show_secrets;
    struct mx_sink *sink = mx_ctx_sink(m->ctx);
    struct mx_event *ev = mx_ctx_begin(m->ctx, m->proto->auth_data_type, ts);
    mx_ev_dir(ev, MX_DIR_C2S);
    mx_ev_frames(ev, a, b);
    if (hide)
        mx_ev_uint(ev, "redacted_len", line.len);
    else
        mx_ev_wire(ev, "data", line);
    if (cancel)
        mx_ev_bool(ev, "cancel", true);
    if (hide)
        mx_ev_text(ev, "<SASL response, redacted: %zu bytes>", line.len);
    else
        mx_ev_text(ev, "%.*s", (int)line.len, (const char *)line.ptr);
    mx_event_emit(sink, ev);
}

void mx_mail_describe_caps2(struct mx_event *ev, const char *key, const char *not_listed_key, const struct mx_caps *c)
{
    mx_ev_arr(ev, key);
    struct mx_slice v;
    for (size_t pos = 0; mx_caps_next(c, &pos, &v);)
        mx_ev_wire(ev, NULL, v);
    mx_ev_end(ev);
    if (c->dropped)
        mx_ev_uint(ev, not_listed_key, c->dropped);
}

void mx_mail_describe_caps_frames(struct mx_event *ev, const char *key, const struct mx_caps *c)
{
    if (c && c->first) {
        mx_ev_arr(ev, key);
        mx_ev_uint(ev, NULL, c->first);
        if (c->last != c->first)
            mx_ev_uint(ev, NULL, c->last);
        mx_ev_end(ev);
    }
}

/* "capabilities_frames": the frames of the reply that listed c (the
 * auditor's evidence of what a server offered or did not), when one was seen. */
static void caps_frames(struct mx_event *ev, const struct mx_caps *c)
{
    mx_mail_describe_caps_frames(ev, "capabilities_frames", c);
}

void mx_mail_describe_session_caps(struct mx_mail *m, struct mx_event *ev)
{
    if (mx_ctx_tls_inside(m->ctx) != MX_INSIDE_DECRYPTED) {
        mx_mail_describe_caps(ev, "capabilities", m->caps);
        caps_frames(ev, m->caps);
        return;
    }
    if (mx_ctx_flow(m->ctx)->tls_port) {
        mx_ev_arr(ev, "capabilities");
        mx_ev_end(ev);
    } else {
        mx_mail_describe_caps(ev, "capabilities", m->caps_kept ? &m->caps_clear : m->caps);
        caps_frames(ev, m->caps_kept ? &m->caps_clear : m->caps);
    }
    mx_mail_describe_caps(ev, "capabilities_tls", m->caps);
}

void mx_mail_describe_logins(const struct mx_mail *m, struct mx_event *ev)
{
    mx_ev_arr(ev, "auth");
    for (unsigned i = 0; i < m->n_logins; i++) {
        const struct mx_mail_login *l = &m->logins[i];
        mx_ev_obj(ev, NULL);
        if (l->command)
            mx_ev_str(ev, "command", l->command);
        mx_sasl_describe_identity(&l->sasl, ev);
        mx_ev_str(ev, "outcome", mx_login_outcome_name(l->outcome));
        mx_ev_bool(ev, "secret_in_clear", l->sasl.secret_in_clear);
        mx_ev_frames(ev, l->frame, l->last_frame ? l->last_frame : l->frame);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    if (m->logins_dropped)
        mx_ev_uint(ev, "auth_not_listed", m->logins_dropped);
}

unsigned mx_mail_logins_ok(const struct mx_mail *m)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < m->n_logins; i++)
        ok += m->logins[i].outcome == MX_LOGIN_SUCCESS;
    return ok;
}

void mx_mail_describe_tls(struct mx_mail *m, struct mx_event *ev, bool upgraded)
{
    struct mx_tls *tlsx = mx_ctx_tls_observer(m->ctx);
    if (upgraded) {
        mx_ev_obj(ev, "tls_bytes");
        mx_ev_uint(ev, "c2s", mx_ctx_tls_bytes(m->ctx, MX_DIR_C2S));
        mx_ev_uint(ev, "s2c", mx_ctx_tls_bytes(m->ctx, MX_DIR_S2C));
        mx_ev_end(ev);
    }
    if (mx_ctx_tls_inside(m->ctx) == MX_INSIDE_CLEAR)
        mx_ev_bool(ev, "clear_after_starttls", true);
    if (tlsx)
        mx_tls_describe(tlsx, ev, "tls_handshake");
}

const char *mx_mail_tls_summary(struct mx_mail *m, bool upgraded, bool attempted, char *buf, size_t cap)
{
    struct mx_tls *tlsx = mx_ctx_tls_observer(m->ctx);
    enum mx_tls_inside in = mx_ctx_tls_inside(m->ctx);
    if (mx_ctx_flow(m->ctx)->tls_port)
        snprintf(buf, cap, "%s", in == MX_INSIDE_DECRYPTED ? ", in TLS, decrypted" : "");
    else if (upgraded && in == MX_INSIDE_CLEAR)
        snprintf(buf, cap, ", %s accepted, then no TLS: the dialogue goes on in clear", m->proto->upgrade);
    else if (upgraded && tlsx && !mx_tls_completed(tlsx))
        snprintf(buf, cap, ", %s accepted but the TLS handshake failed", m->proto->upgrade);
    else if (upgraded)
        snprintf(buf, cap, ", upgraded to TLS%s", in == MX_INSIDE_DECRYPTED ? ", decrypted" : "");
    else if (attempted)
        snprintf(buf, cap, ", %s refused", m->proto->upgrade);
    else
        snprintf(buf, cap, "%s", "");
    return buf;
}

void mx_mail_tls_end(struct mx_mail *m)
{
    mx_tls_end(mx_ctx_tls_observer(m->ctx));
}
