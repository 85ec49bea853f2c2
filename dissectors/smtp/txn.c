/* txn.c - SMTP mail transactions (RFC 5321 §3.3): opened by MAIL, given recipients by
 * RCPT and a message by DATA or BDAT, closed by the final reply, RSET or the end; and
 * their records, with what a failure means and its likely cause. */
#include "dissectors/smtp/internal.h"

#include "dissectors/smtp/diagnosis.h"
#include "dissectors/message/message.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const outcome_names[] = { "no_reply", "accepted", "rejected", "deferred" };
static const char *const disposition_names[] = { "accepted", "rejected", "deferred", "reset",
                                                 "aborted",  "no_reply", "mixed" };

/* ---- Transactions (RFC 5321 §3.3) ---- */

/* The client's name: the last HELO/EHLO the server accepted, or, while the
 * reply to one is unseen (one-sided capture, lost bytes), the one sent. */
const struct mx_text *smtp_helo_of(const struct smtp *s, enum verb *v)
{
    if (s->helo_next_verb != V_UNKNOWN && (!s->helo_verb || s->server_gap || !s->server_spoke)) {
        *v = s->helo_next_verb;
        return &s->helo_next;
    }
    *v = s->helo_verb;
    return &s->helo;
}

/* SIZE=n among the MAIL parameters (RFC 1870 §6), 0 when absent. */
static uint64_t declared_size(const struct txn *t)
{
    struct mx_slice p = mx_text_slice(&t->mail_params);
    for (size_t i = 0; i + 5 <= p.len; i++) {
        if ((i == 0 || p.ptr[i - 1] == ' ') && mx_iprefix(p.ptr + i, p.len - i, "SIZE=")) {
            uint64_t v = 0;
            for (size_t j = i + 5; j < p.len && p.ptr[j] >= '0' && p.ptr[j] <= '9' && v < (UINT64_C(1) << 50); j++)
                v = v * 10 + (uint64_t)(p.ptr[j] - '0');
            return v;
        }
    }
    return 0;
}

/* What a failed reply means and its likely cause (RFC 5321 §4.2, RFC 3463). */
void smtp_failure_fields(struct smtp *s, const struct txn *t, const char *step, int code,
                         const struct mx_enhanced_code *enh, struct mx_slice text, struct mx_event *ev)
{
    const char *meaning = mx_diag_reply_meaning(code, step);
    char em[256], cause[512];
    if (meaning)
        mx_ev_str(ev, "meaning", meaning);
    mx_diag_enhanced_meaning(enh, em, sizeof(em));
    if (em[0])
        mx_ev_str(ev, "enhanced_meaning", em);
    uint32_t accepted = 0;
    for (uint32_t i = 0; t && i < t->rcpts.n; i++)
        accepted += rcpt_at(t, i)->outcome == O_ACCEPTED;
    struct mx_diag_reply r = { .step = step,
                               .code = code,
                               .enhanced = enh,
                               .text = text,
                               .size_limit = s->size_limit,
                               .message_size = t ? mx_message_size(t->msg) : 0,
                               .declared_size = t ? declared_size(t) : 0,
                               .mail_refused = t && t->mail_code >= 400,
                               .spoke_first = s->m.turn.early,
                               .no_recipient = t && !accepted,
                               .per_recipient =
                                   t && t->lmtp && (!strcmp(step, "(end of data)") || !strcmp(step, "BDAT")) };
    struct mx_diag_verdict v;
    mx_diag_cause_kind(&r, cause, sizeof(cause), &v);
    if (cause[0]) {
        mx_ev_str(ev, "cause", cause);
        mx_ev_str(ev, "cause_kind", mx_cause_kind_name(v.kind));
        if (v.code_kind) /* the codes say another thing than the words */
            mx_ev_str(ev, "cause_kind_code", mx_cause_kind_name(v.code_kind));
    }
}

/* A cause without a reply, and its kind. */
static void cause_only(struct mx_event *ev, const char *cause, enum mx_cause_kind kind)
{
    mx_ev_str(ev, "cause", cause);
    mx_ev_str(ev, "cause_kind", mx_cause_kind_name(kind));
}

/* Why a transaction did not end accepted: the deciding reply, or how the
 * connection ended before any. */
static void txn_failure(struct smtp *s, const struct txn *t, enum disposition disposition, struct mx_event *ev)
{
    static const struct mx_enhanced_code none = MX_ENHANCED_NONE;
    const char *step = NULL;
    int code = 0;
    const struct mx_enhanced_code *enh = &none;
    const struct mx_text *full = &t->last_reply;
    mx_frame_t frame = t->last_frame;
    if (t->mail_code >= 400) {
        /* A refused MAIL is the root: what followed was refused because of it. */
        step = "MAIL";
        code = t->mail_code;
        enh = &t->mail_enh;
        full = &t->mail_reply; /* its own reply: a refused DATA after it replaces last_reply */
        frame = t->mail_frame ? t->mail_frame : frame;
    } else if (t->data_code >= 400) {
        step = t->rejected_data ? "DATA" : t->bdat ? "BDAT" : "(end of data)";
        code = t->data_code;
        enh = &t->data_enh;
    } else if (t->lmtp && (disposition == D_MIXED || disposition == D_REJECTED || disposition == D_DEFERRED)) {
        /* RFC 2033 §4.2: the first recipient refused after the data. */
        for (uint32_t i = 0; i < t->rcpts.n && !code; i++) {
            const struct rcpt_reply *d = &rcpt_at(t, i)->delivery;
            if (d->outcome == O_REJECTED || d->outcome == O_DEFERRED) {
                step = t->bdat ? "BDAT" : "(end of data)";
                code = d->code;
                enh = &d->enh;
                full = &d->text;
                frame = d->frame;
            }
        }
    }
    if (!code) {
        for (uint32_t i = 0; i < t->rcpts.n && !code; i++) {
            if (rcpt_at(t, i)->outcome == O_REJECTED || rcpt_at(t, i)->outcome == O_DEFERRED) {
                step = "RCPT";
                code = rcpt_at(t, i)->code;
                enh = &rcpt_at(t, i)->enh;
                full = &rcpt_at(t, i)->text;
                frame = rcpt_at(t, i)->reply_frame;
            }
        }
    }
    mx_ev_obj(ev, "failure");
    if (code && (disposition == D_REJECTED || disposition == D_DEFERRED || disposition == D_MIXED)) {
        mx_ev_str(ev, "step", step);
        mx_ev_int(ev, "code", code);
        if (enh->cls)
            mx_ev_str(ev, "enhanced", enh->text);
        struct mx_slice text = mx_text_slice(full);
        mx_ev_text_cut(ev, "text", full);
        mx_ev_frames(ev, frame, frame);
        smtp_failure_fields(s, t, step, code, enh, text, ev);
    } else if (t->lmtp && (disposition == D_MIXED || disposition == D_NO_REPLY)) {
        mx_ev_str(ev, "ended", mx_close_name(mx_ctx_flow(s->m.ctx)->close));
        cause_only(ev,
                   "The session ended before the server replied for every recipient after the message data "
                   "(RFC 2033 §4.2): their delivery is unknown.",
                   MX_CAUSE_NO_REPLY);
    } else if (disposition == D_RESET) {
        mx_ev_str(ev, "ended", "client_reset");
        cause_only(ev,
                   "The client reset the transaction (RSET, EHLO or STARTTLS) before the message was "
                   "accepted.",
                   MX_CAUSE_CLIENT_RESET);
    } else if (t->smuggled) {
        mx_ev_str(ev, "ended", "smuggled");
        cause_only(ev,
                   "Its MAIL came after a bare-LF end of data (SMTP smuggling, the smtp.smuggling record) and "
                   "got no reply of its own: the server read it as the previous message's data, so this "
                   "transaction never existed on the server.",
                   MX_CAUSE_SMUGGLED);
    } else if (s->m.closed.on) {
        /* RFC 5321 §3.8: the server's 421 (a timeout, a shutdown, too many errors). */
        char why[320], cause[448];
        static const char lead[] = ", closed by the server: ";
        mx_mail_close_summary(&s->m, why, sizeof(why));
        snprintf(cause, sizeof(cause),
                 "The server ended the session before the transaction completed (%s); the sender retries later.",
                 why + (strlen(why) >= sizeof(lead) - 1 ? sizeof(lead) - 1 : 0));
        mx_ev_str(ev, "ended", "server_closed");
        cause_only(ev, cause, MX_CAUSE_SERVER_CLOSED);
    } else if (s->quit_sent && !t->msg) {
        mx_ev_str(ev, "ended", "client_quit");
        cause_only(ev,
                   "The client ended the session (QUIT) before it sent a message: its choice, as with RSET "
                   "(RFC 5321 §4.1.1.10).",
                   MX_CAUSE_CLIENT_QUIT);
    } else if (!mx_ctx_flow(s->m.ctx)->close) {
        mx_ev_str(ev, "ended", "next_transaction");
        cause_only(ev,
                   "No final reply to this transaction was seen before the next one began (lost, or "
                   "never sent).",
                   MX_CAUSE_NO_REPLY);
    } else {
        enum mx_close close = mx_ctx_flow(s->m.ctx)->close;
        mx_ev_str(ev, "ended", mx_close_name(close));
        cause_only(ev, mx_diag_unfinished(close, false), mx_diag_unfinished_kind(close, false));
    }
    mx_ev_end(ev);
}

/* RFC 2033 §4.2: a recipient's reply after the data, or that none came ("no_reply"). */
static void delivery_emit(struct smtp *s, const struct txn *t, const struct rcpt_reply *d, struct mx_event *ev)
{
    mx_ev_obj(ev, "delivery");
    mx_ev_str(ev, "outcome", outcome_names[d->outcome]);
    if (d->code) {
        mx_ev_int(ev, "code", d->code);
        if (d->enh.cls)
            mx_ev_str(ev, "enhanced", d->enh.text);
        mx_ev_text_cut(ev, "text", &d->text);
        if (d->outcome != O_ACCEPTED)
            smtp_failure_fields(s, t, t->bdat ? "BDAT" : "(end of data)", d->code, &d->enh, mx_text_slice(&d->text),
                                ev);
        mx_ev_frames(ev, d->frame, d->frame);
    }
    mx_ev_end(ev);
}

static void txn_emit(struct smtp *s, const struct txn *t, enum disposition disposition)
{
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, s->names->transaction, s->m.now);
    mx_ev_uint(ev, "trans_depth", t->depth);
    mx_ev_time(ev, "start", t->ts);
    enum verb hv;
    const struct mx_text *helo = smtp_helo_of(s, &hv);
    if (hv)
        mx_ev_text_cut(ev, "helo", helo);
    mx_ev_text_cut(ev, "mailfrom", &t->mail_from);
    if (t->mail_params.len)
        mx_ev_text_cut(ev, "mail_params", &t->mail_params);
    mx_ev_arr(ev, "rcptto");
    for (uint32_t i = 0; i < t->rcpts.n; i++)
        mx_ev_wire(ev, NULL, mx_text_slice(&rcpt_at(t, i)->addr));
    mx_ev_end(ev);
    mx_ev_arr(ev, "recipients");
    for (uint32_t i = 0; i < t->rcpts.n; i++) {
        const struct rcpt *r = rcpt_at(t, i);
        mx_ev_obj(ev, NULL);
        mx_ev_text_cut(ev, "addr", &r->addr);
        if (r->params.len)
            mx_ev_text_cut(ev, "params", &r->params);
        mx_ev_str(ev, "outcome", outcome_names[r->outcome]);
        if (r->code)
            mx_ev_int(ev, "code", r->code);
        if (r->enh.cls)
            mx_ev_str(ev, "enhanced", r->enh.text);
        if (r->text.len)
            mx_ev_text_cut(ev, "text", &r->text);
        if (r->code && r->outcome != O_ACCEPTED)
            smtp_failure_fields(s, t, "RCPT", r->code, &r->enh, mx_text_slice(&r->text), ev);
        if (t->lmtp && r->outcome == O_ACCEPTED)
            delivery_emit(s, t, &r->delivery, ev);
        mx_ev_frames(ev, r->frame, r->reply_frame ? r->reply_frame : r->frame);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    if (t->rcpts_dropped)
        mx_ev_uint(ev, "recipients_not_listed", t->rcpts_dropped);
    if (t->msg)
        mx_message_describe(t->msg, ev, "message");
    if (t->bdat)
        mx_ev_uint(ev, "bdat_chunks", t->chunks);
    if (t->last_reply.len)
        mx_ev_text_cut(ev, "last_reply", &t->last_reply);
    if (t->queue_id.len)
        mx_ev_text_cut(ev, "queue_id", &t->queue_id);
    mx_ev_str(ev, "disposition", disposition_names[disposition]);
    if (disposition != D_ACCEPTED)
        txn_failure(s, t, disposition, ev);
    mx_ev_bool(ev, "in_tls", s->tls);
    mx_ev_bool(ev, "partial", t->partial);
    mx_ev_frames(ev, t->first_frame, t->last_frame);
    uint32_t ok = 0, delivered = 0;
    for (uint32_t i = 0; i < t->rcpts.n; i++) {
        ok += rcpt_at(t, i)->outcome == O_ACCEPTED;
        delivered += rcpt_at(t, i)->delivery.outcome == O_ACCEPTED;
    }
    char dl[32] = "";
    if (t->lmtp)
        snprintf(dl, sizeof(dl), ", %u delivered", delivered);
    mx_ev_tone(ev, disposition == D_ACCEPTED ? MX_TONE_GOOD : disposition == D_REJECTED ? MX_TONE_BAD : MX_TONE_WARN);
    mx_ev_text(ev, "transaction %u: from <%.*s> to %u recipient%s (%u accepted%s): %s%s%.*s", t->depth,
               (int)t->mail_from.len, (const char *)t->mail_from.b, (unsigned)(t->rcpts.n + t->rcpts_dropped),
               t->rcpts.n + t->rcpts_dropped == 1 ? "" : "s", ok, dl, disposition_names[disposition],
               t->queue_id.len ? ", queued as " : "", (int)t->queue_id.len, (const char *)t->queue_id.b);
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

/* RFC 2033 §4.2: an LMTP transaction whose data was sent is decided by the replies for each
 * recipient accepted at RCPT: all delivered, none (refused or deferred), or some ("mixed").
 * A recipient whose reply never came raises LMTP_REPLY_MISSING. */
static enum disposition lmtp_disposition(struct smtp *s, const struct txn *t, enum disposition why)
{
    uint32_t due = 0, delivered = 0, deferred = 0, refused = 0;
    for (uint32_t i = 0; i < t->rcpts.n; i++) {
        const struct rcpt *r = rcpt_at(t, i);
        if (r->outcome != O_ACCEPTED)
            continue;
        due++;
        delivered += r->delivery.outcome == O_ACCEPTED;
        deferred += r->delivery.outcome == O_DEFERRED;
        refused += r->delivery.outcome == O_REJECTED;
    }
    if (!due)
        return why;
    if (delivered + deferred + refused < due)
        anomaly(s, MX_DIR_S2C, A_LMTP_REPLY_MISSING, mx_ctx_offset(s->m.ctx, MX_DIR_S2C), 0);
    if (delivered == due)
        return D_ACCEPTED;
    if (delivered)
        return D_MIXED;
    if (!deferred && !refused)
        return D_NO_REPLY;
    return deferred + refused < due ? D_MIXED : deferred ? D_DEFERRED : D_REJECTED;
}

/* Ends the open transaction, if any. Its disposition comes from the replies
 * it got: the final reply to its data, else the refusal of DATA, of MAIL or
 * of every recipient; failing those, `why` it ended (reset, aborted). */
void smtp_txn_close(struct smtp *s, struct txn *t, enum disposition why)
{
    if (!t->open)
        return;
    enum disposition disposition = why;
    uint32_t ok = 0, refused = 0;
    int refusal = 0;
    for (uint32_t i = 0; i < t->rcpts.n; i++) {
        ok += rcpt_at(t, i)->outcome == O_ACCEPTED;
        if (rcpt_at(t, i)->outcome == O_REJECTED || rcpt_at(t, i)->outcome == O_DEFERRED) {
            refused++;
            if (!refusal || rcpt_at(t, i)->outcome == O_DEFERRED)
                refusal = rcpt_at(t, i)->code;
        }
    }
    if (s->due.left && s->due.p.depth == t->depth)
        s->due.left = 0; /* no more per-recipient replies are read for it */
    if (t->lmtp && !t->data_code)
        disposition = lmtp_disposition(s, t, why);
    else if (t->data_code)
        disposition = outcome_of(t->data_code);
    else if (t->mail_code >= 400)
        disposition = outcome_of(t->mail_code);
    else if (t->rcpts.n && !ok && refused == t->rcpts.n)
        disposition = outcome_of(refusal);
    if (t->msg)
        mx_message_end(t->msg);
    txn_emit(s, t, disposition);
    mx_message_free(t->msg);
    mx_buf_free(&t->rcpts);
    memset(t, 0, sizeof(*t));
}

void smtp_txn_open(struct smtp *s, struct mx_slice from, struct mx_slice params, mx_frame_t f, mx_time_t ts)
{
    struct txn *t = &s->txn;
    t->open = true;
    t->depth = (unsigned)++s->transactions;
    mx_buf_init(&t->rcpts, sizeof(struct rcpt), 4, SMTP_MAX_RCPTS);
    mx_text_set(&t->mail_from, from);
    mx_text_set(&t->mail_params, params);
    t->first_frame = t->last_frame = f;
    t->ts = ts;
}

/* The transaction a reply concerns: the one its command belonged to. */
struct txn *smtp_txn_of(struct smtp *s, unsigned depth)
{
    if (!depth)
        return NULL;
    if (s->txn.open && s->txn.depth == depth)
        return &s->txn;
    if (s->fin.open && s->fin.depth == depth)
        return &s->fin;
    return NULL;
}

/* The client finished sending the message (<CRLF>.<CRLF>, or the last BDAT
 * chunk): the transaction waits for its final reply while the client may
 * pipeline the next one (RFC 2920 §3.1). */
void smtp_txn_data_sent(struct smtp *s)
{
    if (!s->txn.open)
        return;
    if (s->txn.msg)
        mx_message_end(s->txn.msg);
    smtp_txn_close(s, &s->fin, D_NO_REPLY); /* an earlier one never got its reply */
    s->txn.lmtp = s->lmtp;
    s->fin = s->txn;
    memset(&s->txn, 0, sizeof(s->txn));
}

/* RCPT, DATA or BDAT without MAIL. Midstream or after lost bytes, the MAIL
 * was simply not seen: a partial transaction holds what follows, with no
 * sender invented. Otherwise the client broke the sequence. */
bool smtp_txn_need(struct smtp *s, mx_frame_t f, mx_time_t ts, uint64_t off, size_t len)
{
    if (s->txn.open)
        return true;
    if (!s->quiet_unmatched) {
        anomaly(s, MX_DIR_C2S, A_COMMAND_OUT_OF_SEQUENCE, off, len);
        return false;
    }
    smtp_txn_open(s, mx_slice_make("", 0), mx_slice_make("", 0), f, ts);
    s->txn.partial = true;
    return true;
}
