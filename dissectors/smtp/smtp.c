/* smtp.c - SMTP (RFC 5321) with ESMTP extensions, and LMTP (RFC 2033) read by the same code:
 * commands, replies linked to their commands, AUTH, STARTTLS, DATA and BDAT message data, the
 * session; transactions and per-recipient outcomes are txn.c's. */
#include "dissectors/smtp/smtp.h"

#include "dissectors/smtp/internal.h"
#include "dissectors/smtp/diagnosis.h"
#include "dissectors/message/message.h"
#include "dissectors/mail/teach.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const struct mx_anomaly_def smtp_anomalies[] = { SMTP_ANOMALIES(MX_ANOMALY_DEF) };

static struct mx_parse_result smtp_read(void *state, enum mx_dir d, struct mx_slice data, unsigned flags);
static void smtp_gap(void *state, enum mx_dir d, uint64_t len);
static void smtp_inside_tls(void *state, enum mx_dir d);
static void smtp_end(void *state, enum mx_dir d);

/* What the shared session layer needs to know of SMTP, and of LMTP (RFC
 * 2033): the same session under its own record types. */
#define SMTP_MAIL_PROTO(kind, NAME)                                                                                \
    {                                                                                                              \
        .command_type = kind ".command", .command_key = "verb", .auth_data_type = kind ".auth_data",               \
        .unknown_explain = "A command " NAME " does not define: the server will likely refuse it.",                \
        .upgrade = "STARTTLS", .an = MX_MAIL_ANOMALY_MAP(A_), .read = smtp_read, .gap = smtp_gap, .end = smtp_end, \
        .inside_tls = smtp_inside_tls,                                                                             \
    }
const struct mx_mail_proto mx_smtp_mail = SMTP_MAIL_PROTO("smtp", "SMTP");
const struct mx_mail_proto mx_lmtp_mail = SMTP_MAIL_PROTO("lmtp", "LMTP");

static const struct smtp_names smtp_names = {
    "SMTP", "smtp.reply", "smtp.transaction", "smtp.session", "smtp.data", "smtp.auth", "smtp.data", "smtp.bdat",
};
static const struct smtp_names lmtp_names = {
    "LMTP", "lmtp.reply", "lmtp.transaction", "lmtp.session", "lmtp.data", "lmtp.auth", "lmtp.data", "lmtp.bdat",
};

struct command;
struct reply;

/* One verb (RFC 5321 §4.1 and the extensions): what sending it does to the
 * session, and what its reply does. The table, verbs[], follows the handlers. */
struct verb_def {
    const char *name; /* as sent, upper case; a pseudo-command's is in parentheses */
    /* What the command does when sent, before its record (NULL: nothing). */
    void (*sent)(struct smtp *s, struct command *c);
    /* What a complete reply to it does (NULL: nothing). */
    void (*answered)(struct smtp *s, const struct pending *p, const struct reply *r);
    const char *explain; /* --explain: what it asks for; NULL: the text for unknown commands */
};

static const struct verb_def verbs[V__COUNT];

static const char *const state_names[] = { "connected", "greeted", "mail", "rcpt", "data", "done", "tls", "closed" };

/* ---- Small helpers ---- */

/* A reply to the end of the message data, or to BDAT LAST (RFC 3030 §2). */
static bool ends_data(const struct pending *p)
{
    return p->verb == V_DATA_END || (p->verb == V_BDAT && p->last);
}

/* EHLO, and LMTP's LHLO (RFC 2033 §4.1): the reply lists the extensions. */
static bool lists_extensions(enum verb v)
{
    return v == V_EHLO || v == V_LHLO;
}

static void span(struct smtp *s, enum mx_dir d, uint64_t off, size_t len, mx_frame_t *a, mx_frame_t *b, mx_time_t *ts)
{
    mx_span(s->m.ctx, d, off, len, a, b, ts);
}

/* RFC 3463 §2, RFC 2034 §4: class.subject.detail at the start of the reply
 * text, then SP. Fills *enh (MX_ENHANCED_NONE without one) and returns the
 * text after it. */
static struct mx_slice enhanced_code(struct mx_slice t, struct mx_enhanced_code *enh)
{
    static const struct mx_enhanced_code none = MX_ENHANCED_NONE;
    *enh = none;
    struct mx_enhanced_code c;
    size_t n = mx_enhanced_scan(t, &c);
    if (!n || (n < t.len && t.ptr[n] != ' '))
        return t;
    *enh = c;
    return mx_trim(mx_slice_make(t.ptr + n, t.len - n));
}

/* A message the client sends (DATA or BDAT), for the message parser. */
static struct mx_message *smtp_message(struct smtp *s)
{
    struct mx_message_env env = { .ctx = s->m.ctx,
                                  .dir = MX_DIR_C2S,
                                  .source = s->txn.bdat ? s->names->bdat_source : s->names->data_source };
    struct mx_message *m = mx_message_new(&env);
    if (!m)
        mx_ctx_fail(s->m.ctx);
    return m;
}

/* ---- Pending commands (RFC 2920 §3: replies come in command order) ---- */

/* Queues command v, sent in frame f, for the bytes [off, off+len); NULL when
 * the queue is full (TOO_MANY_PENDING_COMMANDS). */
static struct pending *push(struct smtp *s, enum verb v, mx_frame_t f, mx_time_t ts, uint32_t rcpt, bool last,
                            uint64_t off, size_t len)
{
    struct pending p = {
        .verb = v, .frame = f, .ts = ts, .rcpt = rcpt, .depth = s->txn.open ? s->txn.depth : 0, .last = last
    };
    return mx_mail_queue_push(&s->m, &s->q, &p, off, len);
}

/* The command waiting longest, or NULL. */
static struct pending *head(const struct smtp *s)
{
    return mx_mail_queue_head(&s->q);
}

/* Splits "<path> params" (RFC 5321 §4.1.2 Reverse-path / Forward-path). */
static void split_path(struct mx_slice arg, struct mx_slice *path, struct mx_slice *params)
{
    arg = mx_trim(arg);
    *params = mx_slice_make(arg.ptr + arg.len, 0);
    if (arg.len && arg.ptr[0] == '<') {
        const uint8_t *gt = memchr(arg.ptr, '>', arg.len);
        if (gt) {
            *path = mx_slice_make(arg.ptr + 1, (size_t)(gt - arg.ptr) - 1);
            *params = mx_trim(mx_slice_make(gt + 1, arg.len - (size_t)(gt + 1 - arg.ptr)));
            return;
        }
    }
    const uint8_t *sp = memchr(arg.ptr, ' ', arg.len);
    size_t n = sp ? (size_t)(sp - arg.ptr) : arg.len;
    *path = mx_slice_make(arg.ptr, n);
    if (sp)
        *params = mx_trim(mx_slice_make(sp, arg.len - n));
}

/* ---- The server side ---- */

static void parse_caps_line(struct smtp *s, struct mx_slice t)
{
    t = mx_trim(t);
    if (!t.len || !mx_mail_caps_add(&s->m, &s->caps, t))
        return;
    /* RFC 3207 §4, RFC 1870 §4. */
    if (mx_ieq(t.ptr, t.len, "STARTTLS"))
        s->starttls_offered = true;
    if (mx_iprefix(t.ptr, t.len, "SIZE ")) {
        uint64_t v = 0;
        for (size_t i = 5; i < t.len && t.ptr[i] >= '0' && t.ptr[i] <= '9' && v < UINT64_C(1) << 50; i++)
            v = v * 10 + (uint64_t)(t.ptr[i] - '0');
        s->size_limit = v;
    }
}

/* A queue id in a 250 reply to the message data: postfix "queued as ID",
 * exim "OK id=ID". */
static void find_queue_id(struct txn *t, struct mx_slice text)
{
    static const char *const marks[] = { "QUEUED AS ", "ID=" };
    for (size_t m = 0; m < MX_ARRAY_LEN(marks); m++) {
        size_t ml = strlen(marks[m]);
        for (size_t i = 0; i + ml <= text.len; i++) {
            if (!mx_iprefix(text.ptr + i, text.len - i, marks[m]) || (m == 1 && i && text.ptr[i - 1] != ' '))
                continue;
            size_t j = i + ml, k = j;
            while (k < text.len && text.ptr[k] != ' ' && text.ptr[k] != ')' && text.ptr[k] != ';')
                k++;
            if (k > j)
                mx_text_set(&t->queue_id, mx_slice_make(text.ptr + j, k - j));
            return;
        }
    }
}

/* The AUTH exchange in progress ended (RFC 4954 §6): its record. */
static void auth_finish(struct smtp *s, int code, const struct mx_enhanced_code *enh, enum mx_login_outcome o,
                        mx_frame_t f)
{
    struct mx_mail_login *a = mx_mail_login_finish(&s->m, o, f);
    if (!a)
        return;
    a->code = code;
    snprintf(a->enh, sizeof(a->enh), "%s", enh->text);
    const char *outcome = mx_login_outcome_name(o);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, s->names->auth, s->m.now);
    mx_sasl_describe_identity(&a->sasl, ev);
    mx_ev_str(ev, "outcome", outcome);
    if (code)
        mx_ev_int(ev, "code", code);
    if (enh->cls)
        mx_ev_str(ev, "enhanced", enh->text);
    mx_sasl_describe_secret(&a->sasl, ev, s->tls);
    if (code >= 400)
        smtp_failure_fields(s, NULL, "AUTH", code, enh, mx_slice_make("", 0), ev);
    mx_ev_frames(ev, a->frame, a->last_frame);
    bool clear = a->sasl.secret_in_clear && !s->tls; /* inside TLS (decrypted) it did not */
    mx_ev_tone(ev, o == MX_LOGIN_SUCCESS ? (clear ? MX_TONE_WARN : MX_TONE_GOOD) : MX_TONE_BAD);
    mx_ev_text(ev, "AUTH %s as \"%.*s\": %s (%d)%s", a->sasl.mech_name, (int)a->sasl.user_len,
               (const char *)a->sasl.user, outcome, code, clear ? ", the password crossed in clear" : "");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
    s->auth_continue = false;
}

/* A complete reply, as the handler of the command it answers sees it. */
struct reply {
    int code;
    const struct mx_enhanced_code *enh; /* its enhanced code (RFC 3463), cls 0 for none */
    struct mx_slice text;               /* after the codes */
    const struct mx_text *full;         /* the same with its real length */
    mx_frame_t last;                    /* its last frame */
    bool ok;                            /* 2xx */
};

/* RFC 5321 §4.3.2: what each reply does, by the command it answers. */

static void answered_connect(struct smtp *s, const struct pending *p, const struct reply *r)
{
    (void)p;
    s->greet_code = r->code;
    s->greeting = *r->full;
    mx_mail_greeted(&s->m);
}

/* The host name the greeting announces (RFC 5321 §4.3.1: "220 domain ..."),
 * for the certificate check after STARTTLS (RFC 6125 §6); empty when none. */
static struct mx_slice greeting_host(const struct smtp *s)
{
    size_t n = 0;
    if (s->greet_code != 220)
        return mx_slice_make("", 0);
    while (n < s->greeting.len && s->greeting.b[n] != ' ' && s->greeting.b[n] != '\r' && s->greeting.b[n] != '\n')
        n++;
    if (n == s->greeting.len && s->greeting.wire > s->greeting.len)
        n = 0; /* cut by the text cap: no name rather than part of one */
    return mx_slice_make(s->greeting.b, n);
}

static void answered_helo(struct smtp *s, const struct pending *p, const struct reply *r)
{
    if (!r->ok) {
        s->helo_next_verb = V_UNKNOWN; /* a refused HELO/EHLO changes nothing */
        return;
    }
    s->helo = s->helo_next;
    s->helo_next_verb = V_UNKNOWN;
    s->helo_verb = p->verb;
    if (s->txn.open && p->depth == s->txn.depth)
        smtp_txn_close(s, &s->txn, D_RESET); /* RFC 5321 §4.1.4: EHLO resets the state */
}

static void answered_mail(struct smtp *s, const struct pending *p, const struct reply *r)
{
    if (p->staged) {
        /* A MAIL while a transaction was open: servers refuse it (503),
         * and the open transaction goes on. If accepted, it starts anew. */
        if (r->ok && s->staged.on) {
            smtp_txn_close(s, &s->txn, D_ABORTED);
            smtp_txn_open(s, mx_text_slice(&s->staged.from), mx_text_slice(&s->staged.params), s->staged.frame,
                          s->staged.ts);
            s->txn.mail_from = s->staged.from; /* with their real lengths */
            s->txn.mail_params = s->staged.params;
            s->txn.mail_code = r->code;
        }
        s->staged.on = false;
        return;
    }
    struct txn *t = smtp_txn_of(s, p->depth);
    if (!t)
        return;
    t->mail_code = r->code;
    t->mail_enh = *r->enh;
    t->last_frame = r->last;
    if (!r->ok) {
        t->last_reply = *r->full;
        t->mail_reply = *r->full;
        t->mail_frame = r->last;
    }
}

static void answered_rcpt(struct smtp *s, const struct pending *p, const struct reply *r)
{
    struct txn *t = smtp_txn_of(s, p->depth);
    if (!t || p->rcpt >= t->rcpts.n)
        return;
    struct rcpt *rc = rcpt_at(t, p->rcpt);
    rc->code = r->code;
    rc->enh = *r->enh;
    rc->text = *r->full;
    rc->outcome = r->ok ? O_ACCEPTED : r->code >= 400 && r->code < 500 ? O_DEFERRED : O_REJECTED;
    rc->reply_frame = r->last;
    t->last_frame = r->last;
}

static void answered_data(struct smtp *s, const struct pending *p, const struct reply *r)
{
    struct txn *t = smtp_txn_of(s, p->depth);
    if (r->code == 354) {
        /* The server accepts data without MAIL: keep the message. (Data the
         * client already sent, its transaction already waits for its end.) */
        if (!s->txn.open && !p->depth && s->cmode == C_DATA_WAIT)
            smtp_txn_open(s, mx_slice_make("", 0), mx_slice_make("", 0), r->last, s->rep.ts);
        if (s->cmode == C_DATA_WAIT) {
            s->cmode = C_BODY;
            s->body_bol = true;
            s->body_cr = s->body_lf = false;
        }
    } else {
        if (s->cmode == C_DATA_WAIT)
            s->cmode = C_CMD;
        /* RFC 5321 §3.3: a refused DATA leaves the transaction open. */
        if (t) {
            t->rejected_data = true;
            t->data_code = r->code;
            t->data_enh = *r->enh;
            t->last_reply = *r->full;
            t->last_frame = r->last;
        }
    }
    if (s->client_held) {
        s->yield_server = true; /* the held client bytes come before the next reply */
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
    }
}

/* The final reply to the message data (RFC 5321 §4.1.1.4), or to a BDAT chunk (RFC 3030 §2). */
static void answered_data_end(struct smtp *s, const struct pending *p, const struct reply *r)
{
    struct txn *t = smtp_txn_of(s, p->depth);
    if (!t)
        return;
    t->last_frame = r->last;
    if (p->verb == V_BDAT && !p->last && r->ok)
        return;
    if (s->lmtp && ends_data(p) && p->rcpt < t->rcpts.n) {
        /* RFC 2033 §4.2: this recipient's delivery; the transaction ends with the last one. */
        struct rcpt_reply *d = &rcpt_at(t, p->rcpt)->delivery;
        d->code = r->code;
        d->enh = *r->enh;
        mx_text_set(&d->text, r->text);
        d->outcome = r->ok ? O_ACCEPTED : r->code >= 400 && r->code < 500 ? O_DEFERRED : O_REJECTED;
        d->frame = r->last;
        if (r->ok)
            find_queue_id(t, r->text);
        if (!s->due.left)
            smtp_txn_close(s, t, D_NO_REPLY);
        return;
    }
    t->data_code = r->code;
    t->rejected_data = false;
    t->data_enh = *r->enh;
    t->last_reply = *r->full;
    if (r->ok)
        find_queue_id(t, r->text);
    if (t == &s->fin || p->last || p->verb == V_DATA_END)
        smtp_txn_close(s, t, D_ABORTED);
}

static void answered_rset(struct smtp *s, const struct pending *p, const struct reply *r)
{
    if (r->ok && s->txn.open && p->depth == s->txn.depth)
        smtp_txn_close(s, &s->txn, D_RESET);
}

static void answered_starttls(struct smtp *s, const struct pending *p, const struct reply *r)
{
    s->starttls_pending = false;
    s->starttls_code = r->code;
    if (s->client_held) {
        s->yield_server = true;
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S); /* bytes held back while it was pending */
    }
    if (r->code != 220)
        return;
    /* RFC 3207 §4.2: both sides now negotiate TLS, which the host observes. */
    s->tls = true;
    s->smode = S_TLS;
    mx_ctx_tls_name_set(s->m.ctx, greeting_host(s));
    mx_ctx_starttls(s->m.ctx, MX_DIR_S2C, A_STARTTLS_SERVER_INJECTION);
    if (s->cmode == C_CMD || s->cmode == C_SKIP) {
        s->cmode = C_TLS;
        mx_ctx_starttls(s->m.ctx, MX_DIR_C2S, A_STARTTLS_SERVER_INJECTION);
    }
    if (s->txn.open && p->depth == s->txn.depth)
        smtp_txn_close(s, &s->txn, D_RESET); /* RFC 3207 §4.2: the state is discarded */
}

static void answered_auth(struct smtp *s, const struct pending *p, const struct reply *r)
{
    (void)p;
    s->auth_continue = r->code == 334; /* RFC 4954 §4: the client answers a challenge */
    if (r->code == 334 && s->m.login)
        mx_mail_sasl_server(&s->m, &s->m.login->sasl, r->text, s->rep.off, s->rep.raw);
    else if (s->m.login)
        auth_finish(s, r->code, r->enh, mx_mail_login_outcome(s->m.login, r->ok), r->last);
}

/* Whether `code` can answer `v` at all (RFC 5321 §4.3.2, RFC 4954 §4, RFC 3207 §4). */
static bool can_answer(enum verb v, int code)
{
    switch (code) {
    case 334:
    case 235:
        return v == V_AUTH || v == V_AUTH_DATA;
    case 354:
        return v == V_DATA;
    case 220:
        return v == V_CONNECT || v == V_STARTTLS;
    default:
        return true;
    }
}

/* Before matching a reply: when the command at the head cannot take this
 * code but one of the next few can, the replies in between were never sent
 * or never captured; those commands are dropped. */
static void skip_unanswered(struct smtp *s, int code, uint64_t off)
{
    if (!s->server_gap && !s->server_skipped)
        return; /* nothing was lost: the server is just odd */
    if (!s->q.n || can_answer(head(s)->verb, code))
        return;
    for (unsigned i = 1; i < s->q.n && i < 8; i++) {
        if (can_answer(((const struct pending *)mx_mail_queue_at(&s->q, i))->verb, code)) {
            anomaly(s, MX_DIR_S2C, A_REPLY_MISSING, off, 1);
            mx_mail_queue_drop(&s->q, i);
            return;
        }
    }
}

/* The session state after a reply of `code` to `v`. */
static enum sstate next_state(enum sstate cur, enum verb v, int code)
{
    bool ok = code >= 200 && code < 300;
    switch (v) {
    case V_CONNECT:
        return code == 220 ? ST_GREETED : ST_CLOSED;
    case V_HELO:
    case V_EHLO:
    case V_LHLO:
    case V_RSET:
        return ok ? ST_GREETED : cur;
    case V_MAIL:
        return ok ? ST_MAIL : cur;
    case V_RCPT:
        return ok ? ST_RCPT : cur;
    case V_DATA:
        return code == 354 ? ST_DATA : cur;
    case V_DATA_END:
        return ST_DONE;
    case V_BDAT:
        return code >= 400 ? ST_DONE : cur == ST_RCPT ? ST_DATA : cur;
    case V_STARTTLS:
        return code == 220 ? ST_TLS : cur;
    case V_QUIT:
        return code == 221 ? ST_CLOSED : cur;
    default:
        return code == 421 ? ST_CLOSED : cur;
    }
}

/* The first recipient at or after i accepted at RCPT in transaction `depth`, or UINT32_MAX. */
static uint32_t lmtp_next_rcpt(const struct smtp *s, unsigned depth, uint32_t i)
{
    const struct txn *t = smtp_txn_of((struct smtp *)s, depth);
    for (; t && i < t->rcpts.n; i++)
        if (rcpt_at(t, i)->outcome == O_ACCEPTED)
            return i;
    return UINT32_MAX;
}

/* RFC 2033 §4.2: the first reply to the end of the data is the first accepted recipient's;
 * one more is owed for each later accepted one. Without a recipient known to be accepted
 * (their replies were not seen) it is one reply, as in SMTP. */
static void lmtp_first_reply(struct smtp *s, struct pending *p)
{
    p->rcpt = lmtp_next_rcpt(s, p->depth, 0);
    if (p->rcpt == UINT32_MAX)
        return;
    const struct txn *t = smtp_txn_of(s, p->depth);
    uint32_t more = 0;
    for (uint32_t i = p->rcpt + 1; i < t->rcpts.n; i++)
        more += rcpt_at(t, i)->outcome == O_ACCEPTED;
    s->due.left = more;
    s->due.next = p->rcpt + 1;
    s->due.p = *p;
}

/* --explain, beyond the reply's meaning: an EHLO reply's extensions one by
 * one (RFC 5321 §4.1.1.1), a 334 challenge decoded when it is text (RFC 4954
 * §4: the LOGIN mechanism's "Username:" and "Password:"). */
static void teach_reply(struct smtp *s, struct mx_event *ev, enum verb v)
{
    if (s->rep.code == 250 && lists_extensions(v))
        mx_teach_caps(ev, MX_TEACH_SMTP, &s->caps);
    else if (s->rep.code == 334)
        mx_teach_challenge_lines(ev, mx_text_slice(&s->rep.text));
}

static void reply_done(struct smtp *s, uint64_t end_off)
{
    struct pending p = { V_UNKNOWN, 0, 0, UINT32_MAX, 0, false, false, false };
    if (s->cmode == C_BODY && s->body_resync && !s->q.n) {
        /* The server answers while the client's message, cut by a gap, has
         * not ended: its end was in the gap. This reply is to it. */
        anomaly(s, MX_DIR_S2C, A_PARTIAL_AFTER_GAP, s->rep.off, 1);
        push(s, V_DATA_END, s->rep.first_frame, s->rep.ts, UINT32_MAX, false, 0, 0);
        smtp_txn_data_sent(s);
        s->cmode = C_MIDSTREAM; /* the next line that is surely a command */
        s->body_resync = false;
        s->data_first_frame = 0;
    }
    bool have;
    bool per_rcpt = s->due.left != 0; /* LMTP: a recipient's reply to the data, not the session's */
    if (s->due.left) {
        /* RFC 2033 §4.2: the next accepted recipient's reply to the same data. */
        p = s->due.p;
        p.rcpt = lmtp_next_rcpt(s, p.depth, s->due.next);
        s->due.next = p.rcpt == UINT32_MAX ? UINT32_MAX : p.rcpt + 1;
        s->due.left--;
        have = true;
    } else {
        skip_unanswered(s, s->rep.code, s->rep.off);
        have = mx_mail_queue_pop(&s->q, &p);
        if (have && s->lmtp && ends_data(&p))
            lmtp_first_reply(s, &p);
    }
    /* RFC 5321 §3.8: a 421 closes the session, in answer to a command or on
     * its own (an idle timeout, a shutdown); commands still waiting get no reply. */
    bool closes = s->rep.code == 421 && !per_rcpt;
    uint32_t unanswered = closes ? s->q.n : 0;
    if (unanswered)
        mx_mail_queue_drop(&s->q, s->q.n);
    mx_frame_t a = s->rep.first_frame, b;
    mx_time_t ts = s->rep.ts, dummy;
    span(s, MX_DIR_S2C, end_off ? end_off - 1 : 0, 1, &b, &b, &dummy);
    if (dummy != MX_TIME_NONE && dummy > s->m.now)
        s->m.now = dummy;
    if (!have && !s->quiet_unmatched && !closes)
        anomaly(s, MX_DIR_S2C, A_UNMATCHED_REPLY, end_off ? end_off - 1 : 0, 1);
    s->replies++;
    struct mx_slice text = mx_text_slice(&s->rep.text);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, s->names->reply, ts);
    mx_ev_dir(ev, MX_DIR_S2C);
    mx_ev_frames(ev, a, b);
    mx_ev_int(ev, "code", s->rep.code);
    if (s->rep.enh.cls)
        mx_ev_str(ev, "enhanced", s->rep.enh.text);
    mx_ev_text_cut(ev, "text", &s->rep.text);
    if (s->rep.lines > 1)
        mx_ev_uint(ev, "lines", s->rep.lines);
    double lat = 0;
    const struct txn *rt = have && p.rcpt != UINT32_MAX && ends_data(&p) ? smtp_txn_of(s, p.depth) : NULL;
    if (have) {
        mx_ev_obj(ev, "answers");
        mx_ev_str(ev, "command", verbs[p.verb].name);
        if (p.frame)
            mx_ev_uint(ev, "frame", p.frame);
        if (rt && p.rcpt < rt->rcpts.n) /* LMTP: the recipient this reply is for (RFC 2033 §4.2) */
            mx_ev_text_cut(ev, "recipient", &rcpt_at(rt, p.rcpt)->addr);
        mx_ev_end(ev);
        lat = mx_time_secs(p.ts, ts);
        mx_ev_double(ev, "latency", lat);
        mx_mail_reply_times(&s->m, ev, p.ts, ts, dummy);
    }
    if (closes) {
        mx_mail_close_fields(ev, unanswered);
        mx_mail_server_closed(&s->m, "421", mx_slice_make(s->rep.enh.text, strlen(s->rep.enh.text)), text,
                              have ? verbs[p.verb].name : NULL, unanswered, a, b, ts);
    }
    enum sstate next = have ? next_state(s->state, p.verb, s->rep.code) : closes ? ST_CLOSED : s->state;
    if (mx_ctx_flow(s->m.ctx)->explain) {
        char ex[768];
        mx_diag_explain(s->rep.code, have ? verbs[p.verb].name : NULL, &s->rep.enh, text, ex, sizeof(ex));
        mx_ev_wire(ev, "explain", mx_slice_make(ex, strlen(ex))); /* it may quote wire bytes */
        mx_ev_str(ev, "state", state_names[next]);
    }
    if (mx_ctx_flow(s->m.ctx)->explain)
        teach_reply(s, ev, have ? p.verb : V_UNKNOWN);
    s->state = next;
    const uint8_t *nl = memchr(text.ptr, '\n', text.len);
    int first = nl ? (int)(nl - text.ptr) : (int)text.len;
    mx_ev_tone(ev, s->rep.code >= 500 ? MX_TONE_BAD : s->rep.code >= 400 ? MX_TONE_WARN : MX_TONE_GOOD);
    char why[96] = "", note[80];
    if (closes)
        snprintf(why, sizeof(why), "; %s", mx_mail_close_note(unanswered, note, sizeof(note)));
    if (rt && p.rcpt < rt->rcpts.n)
        mx_ev_text(ev, "%d%s%s %.*s%s   [%s for <%.*s>, %.1f ms%s]", s->rep.code, s->rep.enh.cls ? " " : "",
                   s->rep.enh.text, first, (const char *)text.ptr, s->rep.lines > 1 ? " (+ more lines)" : "",
                   verbs[p.verb].name, (int)rcpt_at(rt, p.rcpt)->addr.len, (const char *)rcpt_at(rt, p.rcpt)->addr.b,
                   lat * 1e3, why);
    else if (have)
        mx_ev_text(ev, "%d%s%s %.*s%s   [%s, %.1f ms%s]", s->rep.code, s->rep.enh.cls ? " " : "", s->rep.enh.text,
                   first, (const char *)text.ptr, s->rep.lines > 1 ? " (+ more lines)" : "", verbs[p.verb].name,
                   lat * 1e3, why);
    else if (closes)
        mx_ev_text(ev, "%d%s%s %.*s%s   [%s]", s->rep.code, s->rep.enh.cls ? " " : "", s->rep.enh.text, first,
                   (const char *)text.ptr, s->rep.lines > 1 ? " (+ more lines)" : "", why + 2);
    else
        mx_ev_text(ev, "%d%s%s %.*s%s   [no command seen]", s->rep.code, s->rep.enh.cls ? " " : "", s->rep.enh.text,
                   first, (const char *)text.ptr, s->rep.lines > 1 ? " (+ more lines)" : "");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
    if (have && verbs[p.verb].answered) {
        struct reply r = { s->rep.code, &s->rep.enh, text, &s->rep.text, b, s->rep.code >= 200 && s->rep.code < 300 };
        verbs[p.verb].answered(s, &p, &r);
    }
    smtp_smuggle_reply(s, have, &p, s->rep.code, a, b);
    s->rep.active = false;
}

/* One server line (without CRLF) at stream offset off. RFC 5321 §4.2:
 * Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF */
static void server_line(struct smtp *s, struct mx_slice line, uint64_t off, size_t raw_len)
{
    s->server_spoke = true;
    bool valid = line.len >= 3 && line.ptr[0] >= '2' && line.ptr[0] <= '5' && line.ptr[1] >= '0' &&
                 line.ptr[1] <= '9' && line.ptr[2] >= '0' && line.ptr[2] <= '9' &&
                 (line.len == 3 || line.ptr[3] == ' ' || line.ptr[3] == '-');
    bool after_gap = s->s2c_resync;
    s->s2c_resync = false;
    if (!valid) {
        if (!after_gap) /* right after a gap, the tail of a line is expected */
            anomaly(s, MX_DIR_S2C, A_INVALID_REPLY_LINE, off, raw_len);
        return;
    }
    int code = (line.ptr[0] - '0') * 100 + (line.ptr[1] - '0') * 10 + (line.ptr[2] - '0');
    bool more = line.len > 3 && line.ptr[3] == '-';
    struct mx_slice text = line.len > 4 ? mx_slice_make(line.ptr + 4, line.len - 4) : mx_slice_make(line.ptr, 0);
    struct mx_enhanced_code enh;
    struct mx_slice rest = enhanced_code(text, &enh);
    if (!s->rep.active) {
        if (code == 250 && s->q.n && lists_extensions(head(s)->verb)) {
            mx_caps_clear(&s->caps); /* RFC 5321 §4.1.1.1: this reply lists the extensions anew */
        }
        s->rep.active = true;
        s->rep.code = code;
        s->rep.enh = enh;
        s->rep.text.len = 0;
        s->rep.text.wire = 0;
        s->rep.lines = 0;
        s->rep.off = off;
        struct mx_frame_ref fr = mx_ctx_frame_at(s->m.ctx, MX_DIR_S2C, off);
        s->rep.first_frame = fr.frame;
        s->rep.ts = fr.ts;
    } else if (code != s->rep.code) {
        /* RFC 5321 §4.2.1: every line of a reply has the same code. Another
         * code means the reply in progress was cut short: it ends here and
         * this line starts the next. */
        anomaly(s, MX_DIR_S2C, A_REPLY_CODE_MISMATCH, off, raw_len);
        reply_done(s, off);
        server_line(s, line, off, raw_len);
        return;
    }
    if (s->rep.lines == SMTP_MAX_REPLY_LINES)
        anomaly(s, MX_DIR_S2C, A_TOO_MANY_REPLY_LINES, off, raw_len);
    /* EHLO keywords: every line after the first (RFC 5321 §4.1.1.1). */
    if (s->rep.lines > 0 && s->q.n && lists_extensions(head(s)->verb) && code == 250)
        parse_caps_line(s, text);
    /* The frames that listed them; a one-line 250 lists none, and after a gap it may be another command's. */
    if (s->rep.lines > 0 && s->q.n && lists_extensions(head(s)->verb) && code == 250)
        mx_caps_frames(&s->caps, s->rep.first_frame,
                       mx_ctx_frame_at(s->m.ctx, MX_DIR_S2C, off + (raw_len ? raw_len - 1 : 0)).frame);
    if (s->rep.lines < SMTP_MAX_REPLY_LINES) {
        mx_text_append(&s->rep.text, s->rep.lines ? '\n' : 0, rest);
    }
    s->rep.lines++;
    s->rep.raw = (size_t)(off + raw_len - s->rep.off);
    if (!more)
        reply_done(s, off + raw_len);
}

static struct mx_parse_result server_bytes(struct smtp *s, struct mx_slice d, bool end)
{
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    s->yield_server = false;
    bool cut = s->server_cut; /* an unterminated line is complete */
    s->server_cut = false;
    s->server_partial = false;
    uint64_t base = mx_ctx_offset(s->m.ctx, MX_DIR_S2C);
    size_t pos = 0;
    while (pos < d.len) {
        if (s->smode == S_TLS)
            break; /* the rest is TLS: the host's */
        if (s->smode == S_SKIP) {
            bool lf;
            pos += mx_line_skip(mx_slice_make(d.ptr + pos, d.len - pos), &lf);
            if (lf)
                s->smode = S_REPLY;
            continue;
        }
        struct mx_line l;
        enum mx_line_status ls =
            mx_line_next(mx_slice_make(d.ptr + pos, d.len - pos), SMTP_MAX_REPLY_LINE, end || cut, &l);
        if (ls == MX_LINE_MORE) {
            s->server_partial = true;
            break; /* wait for the rest of the line */
        }
        if (ls == MX_LINE_TOO_LONG) {
            /* Over-long: the reply code and the first bytes of text still
             * count; the rest of the line is skipped. */
            /* its frames: where it starts, where it crosses the cap */
            anomaly(s, MX_DIR_S2C, A_LONG_REPLY_LINE, base + pos, SMTP_MAX_REPLY_LINE + 1);
            server_line(s, l.text, base + pos, SMTP_MAX_REPLY_LINE);
            if (!l.lf) {
                s->smode = S_SKIP;
                s->server_skipped = true;
            }
        } else {
            server_line(s, l.text, base + pos, l.raw);
        }
        pos += l.raw;
        if (s->yield_server) {
            /* Client bytes held back are parsed first, then the rest of these. */
            s->yield_server = false;
            if (pos < d.len)
                mx_ctx_wake(s->m.ctx, MX_DIR_S2C);
            break;
        }
    }
    r.consumed = pos;
    return r;
}

/* ---- The client side ---- */

/* The end-of-data terminator seen (RFC 5321 §4.1.1.4: <CRLF>.<CRLF>; the
 * others are what lenient servers also take, the SMTP smuggling vectors):
 * the line end before the dot, and the dot line's own. */
enum terminator { T_CRLF_DOT_CRLF, T_LF_DOT_LF, T_CRLF_DOT_LF, T_LF_DOT_CRLF };
static const struct {
    const char *name; /* the record's "terminator" */
    const char *shown;
} terminators[] = {
    [T_CRLF_DOT_CRLF] = { "crlf_dot_crlf", "<CRLF>.<CRLF>" },
    [T_LF_DOT_LF] = { "lf_dot_lf", "<LF>.<LF>" },
    [T_CRLF_DOT_LF] = { "crlf_dot_lf", "<CRLF>.<LF>" },
    [T_LF_DOT_CRLF] = { "lf_dot_crlf", "<LF>.<CRLF>" },
};

static enum terminator terminator_of(bool lf_before, bool lf_after)
{
    return lf_before ? (lf_after ? T_LF_DOT_LF : T_LF_DOT_CRLF) : (lf_after ? T_CRLF_DOT_LF : T_CRLF_DOT_CRLF);
}

static void body_end(struct smtp *s, uint64_t off, size_t len, enum terminator term);

/* Feeds a client SASL message (an initial response or a line after 334). */
static bool sasl_client(struct smtp *s, struct mx_slice b64, uint64_t off, size_t len)
{
    return mx_mail_sasl_client(&s->m, s->m.login ? &s->m.login->sasl : NULL, b64, off, len);
}

/* A command line, as its verb's handler sees it, and what the handler decides. */
struct command {
    enum verb v;
    struct mx_slice verb, arg; /* the verb as sent, and what follows its space */
    uint64_t off;              /* the line's stream offset */
    size_t raw;                /* its bytes, line end included */
    mx_frame_t a, b;
    mx_time_t ts;
    const char *shown; /* the argument as shown, when it holds a secret */
    char shown_buf[80];
    size_t redacted_len; /* not 0: the line may be a secret (mx_mail_line_maybe_secret) */
    bool odd_spacing;    /* split by other whitespace than one SP (COMMAND_SPACING) */
    uint32_t rcpt;       /* RCPT: its recipient's index, or UINT32_MAX */
    bool last;           /* BDAT ... LAST */
    bool staged;         /* MAIL within a transaction */
};

static void sent_helo(struct smtp *s, struct command *c)
{
    if (c->v == V_LHLO && !s->lmtp) {
        /* An SMTP flow (by port or nDPI) whose client greets with LHLO speaks LMTP: its
         * records keep the flow's names, the rules are LMTP's (RFC 2033 §4.2). */
        if (s->helo_verb || s->helo_next_verb)
            anomaly(s, MX_DIR_C2S, A_COMMAND_OUT_OF_SEQUENCE, c->off, c->raw);
        else
            s->lmtp = true;
    } else if (c->v != V_LHLO && s->lmtp) {
        anomaly(s, MX_DIR_C2S, A_HELO_IN_LMTP, c->off, c->raw);
    }
    mx_text_set(&s->helo_next, mx_trim(c->arg)); /* kept once accepted */
    s->helo_next_verb = c->v;
}

static void sent_quit(struct smtp *s, struct command *c)
{
    (void)c;
    s->quit_sent = true;
}

/* RFC 5321 §4.1.1.2: "MAIL FROM:" Reverse-path [SP Mail-parameters] */
static void sent_mail(struct smtp *s, struct command *c)
{
    struct mx_slice path, params;
    if (!mx_iprefix(c->arg.ptr, c->arg.len, "FROM:")) {
        anomaly(s, MX_DIR_C2S, A_COMMAND_OUT_OF_SEQUENCE, c->off, c->raw);
        return;
    }
    split_path(mx_slice_make(c->arg.ptr + 5, c->arg.len - 5), &path, &params);
    if (s->txn.open) {
        /* RFC 5321 §4.1.4: MAIL within a transaction is refused (503);
         * it only counts if the server accepts it (answered_mail). */
        anomaly(s, MX_DIR_C2S, A_NESTED_MAIL, c->off, c->raw);
        s->staged.on = true;
        mx_text_set(&s->staged.from, path);
        mx_text_set(&s->staged.params, params);
        s->staged.frame = c->a;
        s->staged.ts = c->ts;
        c->staged = true;
        return;
    }
    smtp_txn_open(s, path, params, c->a, c->ts);
}

/* RFC 5321 §4.1.1.3: "RCPT TO:" Forward-path [SP Rcpt-parameters] */
static void sent_rcpt(struct smtp *s, struct command *c)
{
    struct txn *t = &s->txn;
    struct mx_slice path, params;
    if (!mx_iprefix(c->arg.ptr, c->arg.len, "TO:")) {
        anomaly(s, MX_DIR_C2S, A_COMMAND_OUT_OF_SEQUENCE, c->off, c->raw);
        return;
    }
    if (!smtp_txn_need(s, c->a, c->ts, c->off, c->raw))
        return;
    split_path(mx_slice_make(c->arg.ptr + 3, c->arg.len - 3), &path, &params);
    enum mx_buf_status st;
    struct rcpt *r = mx_buf_push(&t->rcpts, &st);
    if (st == MX_BUF_CAPPED) {
        if (!t->rcpts_dropped++)
            anomaly(s, MX_DIR_C2S, A_TOO_MANY_RECIPIENTS, c->off, c->raw);
        return;
    }
    if (!r) {
        mx_ctx_fail(s->m.ctx);
        return;
    }
    mx_text_set(&r->addr, path);
    mx_text_set(&r->params, params);
    r->frame = c->a;
    c->rcpt = (uint32_t)(t->rcpts.n - 1);
    t->last_frame = c->b;
}

static void sent_data(struct smtp *s, struct command *c)
{
    smtp_txn_need(s, c->a, c->ts, c->off, c->raw);
    s->cmode = C_DATA_WAIT;
}

/* RFC 3030 §2: "BDAT" SP chunk-size [ SP end-marker ] */
static void sent_bdat(struct smtp *s, struct command *c)
{
    struct txn *t = &s->txn;
    struct mx_slice x = mx_trim(c->arg);
    uint64_t n = 0;
    size_t i = 0;
    while (i < x.len && x.ptr[i] >= '0' && x.ptr[i] <= '9' && n <= UINT64_C(1) << 40)
        n = n * 10 + (uint64_t)(x.ptr[i++] - '0');
    struct mx_slice rest = mx_trim(mx_slice_make(x.ptr + i, x.len - i));
    c->last = mx_ieq(rest.ptr, rest.len, "LAST");
    if (i == 0 || n > UINT64_C(1) << 40 || (rest.len && !c->last)) {
        anomaly(s, MX_DIR_C2S, A_BDAT_INVALID_SIZE, c->off, c->raw);
        return; /* the server will refuse it; what follows is read as commands */
    }
    if (smtp_txn_need(s, c->a, c->ts, c->off, c->raw)) {
        t->bdat = true;
        t->chunks++;
        if (!t->msg)
            t->msg = smtp_message(s);
    }
    s->bdat_left = n;
    s->bdat_last = c->last;
    if (n)
        s->cmode = C_CHUNK;
}

static void sent_starttls(struct smtp *s, struct command *c)
{
    s->starttls_attempted = true;
    s->starttls_pending = true;
    s->starttls_frame = c->a;
}

/* RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response], the words split
 * as servers split them (mx_is_cmd_space). */
static void sent_auth(struct smtp *s, struct command *c)
{
    struct mx_slice mech, ir;
    c->odd_spacing |= mx_split_command(mx_trim_cmd(c->arg), &mech, &ir);
    mx_mail_login_start(&s->m, mech, c->a, c->ts);
    ir = mx_trim_cmd(ir);
    if (!ir.len)
        return;
    bool secret = sasl_client(s, ir, c->off, c->raw);
    if (secret && !mx_ctx_flow(s->m.ctx)->show_secrets) {
        snprintf(c->shown_buf, sizeof(c->shown_buf), "%.*s <redacted %zu bytes>", (int)(mech.len < 32 ? mech.len : 32),
                 (const char *)mech.ptr, ir.len);
        c->shown = c->shown_buf;
    }
}

static void sent_vrfy(struct smtp *s, struct command *c)
{
    (void)c;
    s->vrfy++;
}

static void sent_expn(struct smtp *s, struct command *c)
{
    (void)c;
    s->expn++;
}

static void sent_unknown(struct smtp *s, struct command *c)
{
    s->m.unknown++;
    anomaly(s, MX_DIR_C2S, A_UNKNOWN_COMMAND, c->off, c->raw);
}

static const struct verb_def verbs[V__COUNT] = {
    [V_UNKNOWN] = { "UNKNOWN", sent_unknown, NULL, NULL },
    [V_HELO] = { "HELO", sent_helo, answered_helo,
                 "The client names itself and starts a plain SMTP session, without extensions (RFC 5321 §4.1.1.1)." },
    [V_EHLO] = { "EHLO", sent_helo, answered_helo,
                 "The client names itself and asks which extensions the server supports; the reply lists them "
                 "(RFC 5321 §4.1.1.1)." },
    [V_LHLO] = { "LHLO", sent_helo, answered_helo,
                 "LMTP's greeting: the client names itself and asks which extensions the server supports, as EHLO "
                 "does in SMTP (RFC 2033 §4.1)." },
    [V_MAIL] = { "MAIL", sent_mail, answered_mail,
                 "Starts a mail transaction with the envelope sender: where bounces go, which may differ from the "
                 "From: header (RFC 5321 §4.1.1.2)." },
    [V_RCPT] = { "RCPT", sent_rcpt, answered_rcpt,
                 "Adds one envelope recipient; the server accepts or refuses each recipient on its own "
                 "(RFC 5321 §4.1.1.3)." },
    [V_DATA] = { "DATA", sent_data, answered_data,
                 "Asks to send the message itself; after 354 the message follows, ended by a line holding a single "
                 "dot (RFC 5321 §4.1.1.4)." },
    [V_BDAT] = { "BDAT", sent_bdat, answered_data_end,
                 "Sends a chunk of the message of exactly the given size, no dot needed; LAST marks the final chunk "
                 "(CHUNKING, RFC 3030)." },
    [V_RSET] = { "RSET", NULL, answered_rset,
                 "Abandons the current transaction; the session stays open (RFC 5321 §4.1.1.5)." },
    [V_NOOP] = { "NOOP", NULL, NULL, "Does nothing: checks the server is still there (RFC 5321 §4.1.1.9)." },
    [V_QUIT] = { "QUIT", sent_quit, NULL, "Asks the server to close the session (RFC 5321 §4.1.1.10)." },
    [V_VRFY] = { "VRFY", sent_vrfy, NULL,
                 "Asks whether an address is a real mailbox (RFC 5321 §4.1.1.6); most servers answer 252 or refuse, "
                 "as it helps spammers." },
    [V_EXPN] = { "EXPN", sent_expn, NULL,
                 "Asks for the members of a mailing list (RFC 5321 §4.1.1.7); usually disabled." },
    [V_HELP] = { "HELP", NULL, NULL, "Asks for help text (RFC 5321 §4.1.1.8)." },
    [V_STARTTLS] = { "STARTTLS", sent_starttls, answered_starttls,
                     "Asks to switch the connection to TLS; after 220 both sides negotiate TLS and the session "
                     "starts over, encrypted (RFC 3207)." },
    [V_AUTH] = { "AUTH", sent_auth, answered_auth,
                 "Starts authentication with the named SASL mechanism; 334 asks for the next step, 235 means "
                 "success (RFC 4954)." },
    [V_ETRN] = { "ETRN", NULL, NULL, "Asks the server to send the mail it queued for a domain (RFC 1985)." },
    [V_XCLIENT] = { "XCLIENT", NULL, NULL,
                    "A Postfix extension: a trusted proxy tells the server about the real client." },
    [V_XFORWARD] = { "XFORWARD", NULL, NULL,
                     "A Postfix extension: a content filter passes on the original client's details." },
    [V_TURN] = { "TURN", NULL, NULL, NULL },
    [V_ATRN] = { "ATRN", NULL, NULL, NULL },
    [V_CONNECT] = { "(connect)", NULL, answered_connect, NULL },
    [V_AUTH_DATA] = { "(auth data)", NULL, answered_auth, NULL },
    [V_DATA_END] = { "(end of data)", NULL, answered_data_end, NULL },
};

/* The verb of a command (case-insensitive), V_UNKNOWN for one SMTP does not define. */
static enum verb verb_of(struct mx_slice v)
{
    for (int i = V_HELO; i <= V_ATRN; i++)
        if (mx_ieq(v.ptr, v.len, verbs[i].name))
            return (enum verb)i;
    return V_UNKNOWN;
}

/* The state the server is in when it reads the next command: the state
 * after the commands still awaiting replies (RFC 2920 §3: a pipelined
 * command is read after them), each assumed to succeed. */
static enum sstate state_ahead(const struct smtp *s)
{
    enum sstate st = s->state;
    for (unsigned i = 0; i < s->q.n; i++) {
        enum verb v = ((const struct pending *)mx_mail_queue_at(&s->q, i))->verb;
        int code = v == V_CONNECT || v == V_STARTTLS ? 220 : v == V_DATA ? 354 : v == V_QUIT ? 221 : 250;
        if (v != V_AUTH && v != V_AUTH_DATA)
            st = next_state(st, v, code);
    }
    return st;
}

/* Emits the command record. */
static void command_event(struct smtp *s, const struct command *c, bool pipelined, bool injected)
{
    char ex[768];
    const char *explain = verbs[c->v].explain;
    if (pipelined && mx_ctx_flow(s->m.ctx)->explain)
        explain = mx_teach_pipelined(ex, sizeof(ex), explain ? explain : s->m.proto->unknown_explain,
                                     s->q.n - (head(s)->verb == V_CONNECT), /* the greeting is no command */
                                     "RFC 2920", "reply", "replies");
    struct mx_mail_command r = {
        .first = c->a,
        .last = c->b,
        .ts = c->ts,
        .verb = c->verb,
        .name = c->v == V_UNKNOWN ? NULL : verbs[c->v].name,
        .arg = c->arg,
        .shown = c->shown,
        .redacted_len = c->redacted_len,
        .pipelined = pipelined,
        .injected = injected,
        .explain = explain,
        .state = state_names[pipelined ? state_ahead(s) : s->state],
    };
    mx_mail_command_record(&s->m, &r);
}

/* One client command line (without CRLF) at stream offset off. */
static void client_line(struct smtp *s, struct mx_slice line, uint64_t off, size_t raw_len, bool bare_lf)
{
    mx_frame_t a, b;
    mx_time_t ts;
    span(s, MX_DIR_C2S, off, raw_len, &a, &b, &ts);
    mx_mail_seen(&s->m, ts);
    mx_mail_client_line(&s->m, line, off, raw_len);
    if (bare_lf)
        anomaly(s, MX_DIR_C2S, A_BARE_LF, off, raw_len);
    /* RFC 2920: sent while earlier commands await replies (the greeting aside). */
    bool pipelined = s->q.n > 1 || (s->q.n == 1 && head(s)->verb != V_CONNECT);

    /* RFC 4954 §4: after a 334, the line is a SASL message, not a command.
     * While an exchange is open, a base64 line that is no command is one too,
     * even if the 334 before it was lost: a password is never shown as a verb. */
    struct mx_slice word = mx_trim_cmd(line);
    if (s->m.login && !s->auth_continue && word.len && verb_of(word) == V_UNKNOWN && mx_is_base64_line(word))
        s->auth_continue = true;
    if (s->auth_continue) {
        s->auth_continue = false;
        bool secret = sasl_client(s, word, off, raw_len);
        mx_mail_auth_data_record(&s->m, word, secret, s->m.login && s->m.login->sasl.cancelled, a, b, ts);
        push(s, V_AUTH_DATA, a, ts, UINT32_MAX, false, off, raw_len);
        return;
    }

    struct command c = { .off = off, .raw = raw_len, .a = a, .b = b, .ts = ts, .rcpt = UINT32_MAX };
    c.odd_spacing = mx_split_command(line, &c.verb, &c.arg);
    c.v = verb_of(c.verb);
    if (c.v == V_UNKNOWN && mx_mail_line_maybe_secret(&s->m, line))
        c.redacted_len = line.len;
    bool injected = s->starttls_pending;
    if (s->server_partial) {
        /* The client answered a server line that has no CRLF yet: the
         * server sent it without one. It is parsed before this command's
         * reply can come (mx_ctx_wake). */
        s->server_cut = true;
        mx_ctx_wake(s->m.ctx, MX_DIR_S2C);
    }
    if (s->rep.active && s->m.turn.greeted) {
        /* A client does not speak in the middle of a reply (RFC 5321 §4.2.1:
         * "250-" promises more lines). The server never finished it. (In the
         * middle of the greeting, the client spoke early: the greeting goes on.) */
        anomaly(s, MX_DIR_S2C, A_REPLY_INCOMPLETE, s->rep.off, s->rep.raw);
        reply_done(s, s->rep.off + s->rep.raw);
        pipelined = s->q.n > 1 || (s->q.n == 1 && head(s)->verb != V_CONNECT);
    }
    if (injected)
        anomaly(s, MX_DIR_C2S, A_STARTTLS_CLIENT_INJECTION, off, raw_len);
    s->m.commands++;
    s->client_started = true;
    if (pipelined)
        s->m.pipelined++;
    if (verbs[c.v].sent)
        verbs[c.v].sent(s, &c);
    if (c.odd_spacing)
        anomaly(s, MX_DIR_C2S, A_COMMAND_SPACING, off, raw_len);
    command_event(s, &c, pipelined, injected);
    struct pending *queued = push(s, c.v, a, ts, c.rcpt, c.last, off, raw_len);
    smtp_smuggle_command(s, c.v, a, queued);
    if (queued && queued->smuggled && c.v == V_MAIL && s->txn.open && s->txn.first_frame == a)
        s->txn.smuggled = true; /* it exists only if the server read the smuggled MAIL as one */
    if (queued && c.staged)
        queued->staged = true;
    if (c.v == V_BDAT && c.last && !s->bdat_left)
        smtp_txn_data_sent(s); /* BDAT 0 LAST */
}

/* Whether the `held` bytes after DATA are message data even though no 354
 * came: the server's side has ended or lost bytes, or was never seen. A
 * server whose connection was seen opening greets first (RFC 5321 §3.1): a
 * client that sent DATA before the greeting waits for the reply like any
 * other, unless it sends more than SMTP_HOLD_UNHEARD bytes meanwhile (then
 * the server's side is not in the capture). */
static bool data_assumed(const struct smtp *s, size_t held)
{
    if (s->server_ended || s->server_gap)
        return true;
    if (s->server_spoke)
        return false;
    return !mx_ctx_flow(s->m.ctx)->handshake || held >= SMTP_HOLD_UNHEARD;
}

static void body_end(struct smtp *s, uint64_t off, size_t len, enum terminator term)
{
    mx_frame_t a, b;
    mx_time_t ts;
    span(s, MX_DIR_C2S, off, len, &a, &b, &ts);
    struct txn *t = &s->txn;
    if (t->msg)
        mx_message_end(t->msg);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, s->names->data, ts);
    mx_ev_dir(ev, MX_DIR_C2S);
    mx_ev_frames(ev, s->data_first_frame ? s->data_first_frame : a, b);
    if (t->msg)
        mx_message_describe(t->msg, ev, "message");
    mx_ev_str(ev, "terminator", terminators[term].name);
    mx_ev_text(ev, "message data: %" PRIu64 " bytes, then %s", mx_message_size(t->msg), terminators[term].shown);
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
    if (term != T_CRLF_DOT_CRLF)
        smtp_smuggle_data_end(s, terminators[term].shown, a);
    s->cmode = C_CMD;
    s->data_first_frame = 0;
    s->body_resync = false;
    s->body_cr = s->body_lf = false;
    push(s, V_DATA_END, b, ts, UINT32_MAX, false, off, len);
    smtp_txn_data_sent(s);
}

/* Message bytes, by DATA or BDAT. RFC 1870 §4: a client must not send a
 * message larger than the fixed maximum the server announced (SIZE n). */
static void message_data(struct smtp *s, struct mx_slice b, uint64_t off)
{
    struct txn *t = &s->txn;
    uint64_t before = mx_message_size(t->msg);
    mx_message_feed(t->msg, b, off);
    if (s->size_limit && !t->over_size && mx_message_size(t->msg) > s->size_limit) {
        t->over_size = true;
        /* the line that went past the limit (b may hold several) */
        size_t at = s->size_limit > before ? (size_t)(s->size_limit - before) : 0, from = at;
        while (from && b.ptr[from - 1] != '\n')
            from--;
        const uint8_t *lf = memchr(b.ptr + at, '\n', b.len - at);
        size_t to = lf ? (size_t)(lf - b.ptr) + 1 : b.len;
        anomaly(s, MX_DIR_C2S, A_MESSAGE_OVER_SIZE_LIMIT, off + from, to - from);
    }
}

/* Message data (RFC 5321 §4.5.2): lines until "." CRLF, with a leading dot
 * removed from every other line that starts with one. Returns the bytes
 * consumed; 0 when it needs more input to decide. */
static size_t body_bytes(struct smtp *s, struct mx_slice d, uint64_t off, bool end)
{
    struct txn *t = &s->txn;
    if (t->open && !t->msg)
        t->msg = smtp_message(s);
    if (!s->data_first_frame)
        s->data_first_frame = mx_ctx_frame_at(s->m.ctx, MX_DIR_C2S, off).frame;
    if (s->body_bol && s->body_resync && d.ptr[0] != '.') {
        /* After a gap: a line that is a command ends the message. */
        const uint8_t *lf = memchr(d.ptr, '\n', d.len);
        if (!lf && !end && d.len < 64)
            return 0;
        static const char *const cmds[] = { "MAIL FROM:", "RSET\r", "QUIT\r", "EHLO ", "HELO ", "RCPT TO:" };
        for (size_t i = 0; i < MX_ARRAY_LEN(cmds); i++) {
            if (mx_iprefix(d.ptr, d.len, cmds[i])) {
                /* The end of the data was lost with the gap; the server's
                 * reply to it is still to come. */
                anomaly(s, MX_DIR_C2S, A_PARTIAL_AFTER_GAP, off, 1);
                struct mx_frame_ref fr = mx_ctx_frame_at(s->m.ctx, MX_DIR_C2S, off);
                push(s, V_DATA_END, fr.frame, fr.ts, UINT32_MAX, false, off, 1);
                smtp_txn_data_sent(s);
                s->cmode = C_CMD;
                s->body_resync = false;
                s->data_first_frame = 0;
                return 0;
            }
        }
    }
    size_t n;
    struct mx_slice bytes;
    /* after a gap every line start is looked at (above): one line a step */
    enum mx_dot_step step =
        s->body_resync ? mx_dot_step(&s->body_bol, d, end, &n, &bytes) : mx_dot_run(&s->body_bol, d, end, &n, &bytes);
    switch (step) {
    case MX_DOT_MORE:
        return 0;
    case MX_DOT_END_BARE_LF:
    case MX_DOT_END: {
        enum terminator term = terminator_of(s->body_lf, step == MX_DOT_END_BARE_LF);
        if (term != T_CRLF_DOT_CRLF)
            anomaly(s, MX_DIR_C2S, A_DATA_BARE_LF_TERMINATOR, off, n);
        body_end(s, off, n, term);
        return n;
    }
    case MX_DOT_DATA:
        break;
    }
    smtp_smuggle_body(s, mx_slice_make(d.ptr, n), off, false);
    if (bytes.len) {
        /* How the last line ended: a bare LF makes the terminator one (RFC 5321 §2.3.8). */
        uint8_t last = bytes.ptr[bytes.len - 1];
        if (last == '\n')
            s->body_lf = bytes.len >= 2 ? bytes.ptr[bytes.len - 2] != '\r' : !s->body_cr;
        s->body_cr = last == '\r';
        message_data(s, bytes, off);
    }
    return n;
}

/* A flow picked up midstream may start inside message data: its lines are
 * skipped until one is a command (then the session goes on) or "." (the end
 * of a message whose start was not captured: a partial transaction, so that
 * the server's reply to it still means something). Returns whether the line
 * is a command to parse. */
static bool midstream_line(struct smtp *s, struct mx_slice line, uint64_t off, size_t raw, bool bare_lf)
{
    const uint8_t *sp = memchr(line.ptr, ' ', line.len);
    struct mx_slice verb = mx_slice_make(line.ptr, sp ? (size_t)(sp - line.ptr) : line.len);
    struct mx_slice arg = sp ? mx_trim(mx_slice_make(sp + 1, line.len - verb.len - 1)) : mx_slice_make(line.ptr, 0);
    bool command;
    switch (verb_of(verb)) {
    case V_MAIL:
        command = mx_iprefix(arg.ptr, arg.len, "FROM:");
        break;
    case V_RCPT:
        command = mx_iprefix(arg.ptr, arg.len, "TO:");
        break;
    case V_HELO:
    case V_EHLO:
    case V_LHLO:
        command = arg.len && !memchr(arg.ptr, ' ', arg.len); /* one word */
        break;
    case V_AUTH:
        command = arg.len > 0;
        break;
    case V_BDAT:
        command = arg.len && arg.ptr[0] >= '0' && arg.ptr[0] <= '9';
        break;
    case V_DATA:
    case V_RSET:
    case V_QUIT:
    case V_NOOP:
    case V_STARTTLS:
        command = !sp; /* the verb alone */
        break;
    default:
        command = false; /* too much like prose to be sure */
        break;
    }
    if (command) {
        s->cmode = C_CMD;
        return true;
    }
    if (line.len == 1 && line.ptr[0] == '.') {
        mx_frame_t a, b;
        mx_time_t ts;
        span(s, MX_DIR_C2S, off, raw, &a, &b, &ts);
        if (smtp_txn_need(s, a, ts, off, raw) && !s->txn.msg)
            s->txn.msg = smtp_message(s);
        mx_message_gap(s->txn.msg, s->midstream_skipped ? s->midstream_skipped : 1); /* its start is lost */
        s->cmode = C_CMD;
        enum terminator term = terminator_of(s->body_lf, bare_lf);
        if (term != T_CRLF_DOT_CRLF)
            anomaly(s, MX_DIR_C2S, A_DATA_BARE_LF_TERMINATOR, off, raw);
        body_end(s, off, raw, term);
        return false;
    }
    s->midstream_skipped += raw;
    s->body_lf = bare_lf; /* the line end before a "." that may come */
    return false;
}

static struct mx_parse_result client_bytes(struct smtp *s, struct mx_slice d, bool end)
{
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    s->client_held = false;
    uint64_t base = mx_ctx_offset(s->m.ctx, MX_DIR_C2S);
    size_t pos = 0;
    while (pos < d.len) {
        struct mx_slice rest = mx_slice_make(d.ptr + pos, d.len - pos);
        switch (s->cmode) {
        case C_TLS:
            r.consumed = pos; /* the rest is TLS: the host's */
            return r;
        case C_CHUNK: {
            size_t take = rest.len < s->bdat_left ? rest.len : (size_t)s->bdat_left;
            message_data(s, mx_slice_make(rest.ptr, take), base + pos);
            s->bdat_left -= take;
            pos += take;
            if (!s->bdat_left) {
                s->cmode = C_CMD;
                if (s->bdat_last)
                    smtp_txn_data_sent(s);
            }
            continue;
        }
        case C_DATA_WAIT:
            if (!data_assumed(s, rest.len) && !end) {
                s->client_held = true;
                r.consumed = pos;
                return r; /* wait for the reply to DATA; the engine keeps the bytes */
            }
            s->cmode = C_BODY;
            s->body_bol = true;
            s->body_cr = s->body_lf = false;
            smtp_smuggle_body(s, mx_slice_make(rest.ptr, 0), base + pos, true);
            continue;
        case C_BODY: {
            size_t n = body_bytes(s, rest, base + pos, end);
            if (!n && s->cmode == C_BODY) {
                r.consumed = pos;
                r.needed = 1;
                return r;
            }
            pos += n;
            continue;
        }
        case C_SKIP: {
            bool lf;
            pos += mx_line_skip(rest, &lf);
            if (lf)
                s->cmode = C_CMD;
            continue;
        }
        case C_MIDSTREAM:
        case C_CMD:
            break;
        }
        if (s->starttls_pending && mx_mail_looks_like_handshake(rest)) {
            s->client_held = true;
            r.consumed = pos; /* a TLS handshake sent before the 220: wait for the reply */
            return r;
        }
        struct mx_line l;
        enum mx_line_status ls = mx_line_next(rest, SMTP_MAX_CMD_LINE, end, &l);
        if (ls == MX_LINE_MORE)
            break;
        if (ls == MX_LINE_TOO_LONG) {
            /* its frames: where it starts, where it crosses the cap */
            mx_mail_anomaly(&s->m, MX_DIR_C2S, MX_MAIL_LONG_COMMAND_LINE, base + pos, SMTP_MAX_CMD_LINE + 1);
            if (!l.lf)
                s->cmode = C_SKIP;
        } else if (s->cmode != C_MIDSTREAM || midstream_line(s, l.text, base + pos, l.raw, l.bare_lf)) {
            client_line(s, l.text, base + pos, l.raw, l.bare_lf);
        }
        pos += l.raw;
    }
    r.consumed = pos;
    return r;
}

/* ---- Gaps and the end ---- */

static void smtp_gap(void *state, enum mx_dir d, uint64_t len)
{
    struct smtp *s = state;
    if (d == MX_DIR_S2C && s->smode == S_TLS)
        return; /* the TLS observer's */
    if (d == MX_DIR_S2C) {
        /* Replies were lost: which commands they answered is unknown. Keep
         * only the newest command waiting. */
        /* Replies, or parts of them, were lost: a reply cut short counts as
         * it was; which later replies are missing shows in their codes. */
        s->server_gap = true;
        s->s2c_resync = true;
        if (s->rep.active)
            reply_done(s, mx_ctx_offset(s->m.ctx, MX_DIR_S2C));
        s->quiet_unmatched = true;
        if (s->smode == S_SKIP)
            s->smode = S_REPLY;
        if (s->txn.open)
            s->txn.partial = true;
        if (s->fin.open)
            s->fin.partial = true;
        if (s->cmode == C_DATA_WAIT)
            mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
        return;
    }
    if (s->txn.open)
        s->txn.partial = true;
    switch (s->cmode) {
    case C_CHUNK:
        mx_message_gap(s->txn.msg, len < s->bdat_left ? len : s->bdat_left);
        if (len < s->bdat_left) {
            s->bdat_left -= len;
            return;
        }
        s->cmode = C_CMD; /* lost beyond the chunk: resync on the next line */
        s->bdat_left = 0;
        return;
    case C_BODY:
        mx_message_gap(s->txn.msg, len);
        s->body_resync = true;
        s->body_bol = false;
        return;
    case C_TLS:
        return; /* the TLS observer's */
    default:
        /* Commands were lost: their replies will look unmatched, and the
         * stream resumes at the first line that is surely a command. */
        s->cmode = C_MIDSTREAM;
        s->quiet_unmatched = true;
        return;
    }
}

static void session_emit(struct smtp *s)
{
    const struct mx_flow_info *fi = mx_ctx_flow(s->m.ctx);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, s->names->session, s->m.now);
    mx_ev_time(ev, "start", fi->start);
    if (s->greet_code) {
        mx_ev_obj(ev, "greeting");
        mx_ev_int(ev, "code", s->greet_code);
        mx_ev_text_cut(ev, "text", &s->greeting);
        mx_ev_end(ev);
    }
    enum verb hv;
    const struct mx_text *helo = smtp_helo_of(s, &hv);
    if (hv) {
        mx_ev_text_cut(ev, "helo", helo);
        mx_ev_bool(ev, "esmtp", lists_extensions(hv));
    }
    mx_mail_describe_session_caps(&s->m, ev);
    if (s->size_limit)
        mx_ev_uint(ev, "size_limit", s->size_limit);
    mx_ev_obj(ev, "starttls");
    mx_ev_bool(ev, "offered", s->starttls_offered);
    mx_ev_bool(ev, "attempted", s->starttls_attempted);
    if (s->starttls_code)
        mx_ev_int(ev, "code", s->starttls_code);
    mx_ev_bool(ev, "upgraded", s->tls && !mx_ctx_flow(s->m.ctx)->tls_port);
    mx_ev_frames(ev, s->starttls_frame, s->starttls_frame);
    mx_ev_end(ev);
    mx_ev_bool(ev, "in_tls", s->tls);
    mx_ev_arr(ev, "auth");
    for (unsigned i = 0; i < s->m.n_logins; i++) {
        const struct mx_mail_login *a = &s->m.logins[i];
        mx_ev_obj(ev, NULL);
        mx_ev_str(ev, "mechanism", a->sasl.mech_name);
        if (a->sasl.user_known)
            mx_ev_wire(ev, "user", mx_slice_make(a->sasl.user, a->sasl.user_len));
        mx_ev_str(ev, "outcome", mx_login_outcome_name(a->outcome));
        if (a->code)
            mx_ev_int(ev, "code", a->code);
        mx_ev_bool(ev, "secret_in_clear", a->sasl.secret_in_clear);
        mx_ev_frames(ev, a->frame, a->last_frame ? a->last_frame : a->frame);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    mx_ev_uint(ev, "commands", s->m.commands);
    mx_ev_uint(ev, "replies", s->replies);
    mx_ev_uint(ev, "pipelined_commands", s->m.pipelined);
    mx_ev_uint(ev, "unknown_commands", s->m.unknown);
    mx_ev_uint(ev, "vrfy", s->vrfy);
    mx_ev_uint(ev, "expn", s->expn);
    mx_ev_uint(ev, "transactions", s->transactions);
    if (s->midstream_skipped)
        mx_ev_uint(ev, "midstream_skipped", s->midstream_skipped);
    mx_mail_describe_tls(&s->m, ev, s->tls);
    mx_mail_describe_proxy(&s->m, ev);
    mx_mail_describe_close(&s->m, ev);
    mx_mail_describe_waiting(ev, (uint32_t)s->q.n);
    char tls[96], closed[320];
    if (s->lmtp && s->names != &lmtp_names)
        mx_ev_bool(ev, "lmtp", true); /* an SMTP flow whose client greeted with LHLO */
    mx_ev_text(ev, "%s session%s: %" PRIu64 " command%s, %" PRIu64 " transaction%s%s%s%s", s->names->label,
               s->lmtp && s->names != &lmtp_names ? " (LMTP: the client greeted with LHLO)" : "", s->m.commands,
               s->m.commands == 1 ? "" : "s", s->transactions, s->transactions == 1 ? "" : "s",
               mx_mail_tls_summary(&s->m, s->tls, s->starttls_attempted, tls, sizeof(tls)),
               s->m.n_logins ? ", authenticated" : "", mx_mail_close_summary(&s->m, closed, sizeof(closed)));
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

static void smtp_end(void *state, enum mx_dir d)
{
    struct smtp *s = state;
    s->ended[d] = true;
    if (d == MX_DIR_S2C) {
        s->server_ended = true;
        if (s->rep.active)
            reply_done(s, 0);
        if (s->cmode == C_DATA_WAIT)
            mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
    }
    if (!s->ended[0] || !s->ended[1])
        return;
    if (s->cmode == C_BODY || s->cmode == C_CHUNK || s->cmode == C_DATA_WAIT) {
        if (s->cmode != C_DATA_WAIT || s->txn.msg)
            anomaly(s, MX_DIR_C2S, A_DATA_INCOMPLETE, mx_ctx_offset(s->m.ctx, MX_DIR_C2S), 0);
        if (s->txn.msg && s->cmode != C_DATA_WAIT)
            mx_message_cut(s->txn.msg); /* the connection ended inside the message */
        if (s->txn.open)
            s->txn.partial = s->cmode != C_DATA_WAIT || s->txn.partial;
    }
    if (s->m.login)
        auth_finish(s, 0, &(const struct mx_enhanced_code)MX_ENHANCED_NONE, MX_LOGIN_NO_REPLY, 0);
    smtp_txn_close(s, &s->fin, D_NO_REPLY);
    smtp_txn_close(s, &s->txn, D_ABORTED);
    mx_mail_tls_end(&s->m);
    smtp_smuggle_end(s);
    session_emit(s);
}

/* ---- The dissector interface ---- */

/* A session of SMTP, or of LMTP when `lmtp`. */
static void *session_new(struct mx_dissect_ctx *ctx, bool lmtp)
{
    struct smtp *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    mx_mail_init(&s->m, ctx, lmtp ? &mx_lmtp_mail : &mx_smtp_mail);
    s->names = lmtp ? &lmtp_names : &smtp_names;
    s->lmtp = lmtp;
    mx_mail_queue_init(&s->q, s->pend, sizeof(s->pend[0]), SMTP_MAX_PENDING);
    mx_caps_init(&s->caps, SMTP_CAPS_BYTES);
    s->m.caps = &s->caps;
    if (mx_ctx_flow(ctx)->handshake) {
        /* RFC 5321 §3.1: the server speaks first; the greeting answers the connection. */
        struct pending greeting = { .verb = V_CONNECT, .ts = mx_ctx_flow(ctx)->start, .rcpt = UINT32_MAX };
        mx_mail_queue_push(&s->m, &s->q, &greeting, 0, 0);
    } else {
        s->quiet_unmatched = true;
        s->cmode = C_MIDSTREAM;
    }
    s->tls = mx_ctx_flow(ctx)->tls_port; /* what TLS carries, decrypted (RFC 8314 §3.3) */
    return s;
}

static void smtp_inside_tls(void *state, enum mx_dir d)
{
    struct smtp *s = state;
    if (d == MX_DIR_C2S && s->cmode == C_TLS)
        s->cmode = C_CMD;
    else if (d == MX_DIR_S2C && s->smode == S_TLS)
        s->smode = S_REPLY;
}

static void *smtp_new(struct mx_dissect_ctx *ctx)
{
    return session_new(ctx, false);
}

static void *lmtp_new(struct mx_dissect_ctx *ctx)
{
    return session_new(ctx, true);
}

static void smtp_free(void *state)
{
    struct smtp *s = state;
    if (!s)
        return;
    mx_message_free(s->txn.msg);
    mx_buf_free(&s->txn.rcpts);
    mx_message_free(s->fin.msg);
    mx_buf_free(&s->fin.rcpts);
    mx_caps_free(&s->caps);
    mx_mail_free(&s->m);
    free(s);
}

static size_t smtp_bytes(const void *state)
{
    const struct smtp *s = state;
    return sizeof(*s) + mx_message_bytes(s->txn.msg) + mx_message_bytes(s->fin.msg) + mx_buf_bytes(&s->txn.rcpts) +
           mx_buf_bytes(&s->fin.rcpts) + mx_buf_bytes(&s->caps.b);
}

/* Bytes of d (mx_mail_parse). */
static struct mx_parse_result smtp_read(void *state, enum mx_dir d, struct mx_slice data, unsigned flags)
{
    struct smtp *s = state;
    bool last = (flags & (MX_CHUNK_END | MX_CHUNK_TRUNCATED)) != 0; /* no more of these bytes come */
    return d == MX_DIR_C2S ? client_bytes(s, data, last) : server_bytes(s, data, last);
}

const struct mx_dissector mx_smtp_dissector = {
    .name = "smtp",
    .state_new = smtp_new,
    .state_free = smtp_free,
    .parse = mx_mail_parse,
    .anomalies = smtp_anomalies,
    .n_anomalies = MX_ARRAY_LEN(smtp_anomalies),
    .state_bytes = smtp_bytes,
};

/* LMTP (RFC 2033): the same functions, its own names (struct smtp_names). */
const struct mx_dissector mx_lmtp_dissector = {
    .name = "lmtp",
    .state_new = lmtp_new,
    .state_free = smtp_free,
    .parse = mx_mail_parse,
    .anomalies = smtp_anomalies,
    .n_anomalies = MX_ARRAY_LEN(smtp_anomalies),
    .state_bytes = smtp_bytes,
};
