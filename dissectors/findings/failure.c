/* failure.c - the failure model (failure.h): reads the records of every session as they
 * are delivered and emits one `failure` record for each thing that failed, right after the
 * record that shows it. It keeps a small state per open flow, freed with its flow record. */
#include "dissectors/findings/failure.h"

#include "core/hash.h"
#include "core/idmap.h"
#include "event/text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum severity { SEV_LOW, SEV_MEDIUM, SEV_HIGH };
static const char *const sev_names[] = { "low", "medium", "high" };

/* What the model keeps of an open flow. */
struct flowst {
    char proto[8];
    char last_verb[16];  /* the client's last command, upper case */
    bool session;        /* its session record came */
    bool greeted;        /* the session record has the server's greeting */
    bool server_closed;  /* the server ended the session itself (421, -ERR, BYE) */
    bool unfinished;     /* a transaction_unfinished was said: the cut is told there */
    bool handshake;      /* the capture has the connection's start */
    bool dark;           /* the session ended inside TLS that was not decrypted */
    uint64_t unanswered; /* commands still waiting when the session ended */
    char last_text[256]; /* the first line of the server's last reply, for the logins that lack it */
    size_t last_text_len;
};

#define MAX_KEYS 65536 /* ids kept for linking; past it an index starts afresh: a window of the latest */
#define KEY_BYTES 512  /* of an id hashed (a longer one is cut) */

/* A transaction's id (its queue id or its message's Message-ID), for the bounce that names it. */
struct origin {
    uint64_t check; /* a second keyed hash of the id: two ids with one hash are told apart */
    uint64_t flow;
    mx_frame_t a, b;
    uint64_t trans_depth;
    char queue_id[64];
};

struct model {
    struct mx_idmap flows;   /* struct flowst, by flow id, until the flow record */
    struct mx_idmap origins; /* struct origin, by the keyed hash of its id */
    struct mx_idmap bounces; /* bounces told already (the same one delivered, then fetched): their check */
    struct mx_hasher *hasher, *hasher2;
};

/* ---- Reading records ---- */

static bool slice_is(struct mx_slice s, const char *lit)
{
    return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len);
}

/* Record type `t` is `<mail protocol>.<what>` (SMTP, LMTP, POP3, IMAP). */
static bool type_is(const char *t, const char *what)
{
    static const char *const protos[] = { "smtp.", "lmtp.", "pop3.", "imap." };
    for (size_t i = 0; i < MX_ARRAY_LEN(protos); i++)
        if (!strncmp(t, protos[i], 5) && !strcmp(t + 5, what))
            return true;
    return false;
}

/* The member of object obj under key, or NULL. */
static const struct mx_ev_field *member(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    for (const struct mx_ev_field *x = mx_ev_first(e, obj); x; x = mx_ev_next(e, x))
        if (x->key && !strcmp(x->key, key))
            return x;
    return NULL;
}

static struct mx_slice member_str(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    const struct mx_ev_field *x = member(e, obj, key);
    return x && x->kind == MX_EV_STR ? mx_ev_field_str(e, x) : mx_slice_make("", 0);
}

static int64_t member_int(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    const struct mx_ev_field *x = member(e, obj, key);
    if (!x)
        return 0;
    return x->kind == MX_EV_INT ? x->v.i : x->kind == MX_EV_UINT ? (int64_t)x->v.u : 0;
}

/* The frames [a, b] of obj (the record itself when obj is NULL); 0 when none. */
static void frames_of(const struct mx_event *e, const struct mx_ev_field *obj, mx_frame_t *a, mx_frame_t *b)
{
    const struct mx_ev_field *f = obj ? member(e, obj, "frames") : mx_ev_get(e, "frames");
    const struct mx_ev_field *x = mx_ev_first(e, f);
    *a = *b = x && x->kind == MX_EV_UINT ? x->v.u : 0;
    x = mx_ev_next(e, x);
    if (x && x->kind == MX_EV_UINT)
        *b = x->v.u;
}

/* ---- Writing failures ---- */

/* What one failure record says. Slices point into the record it derives from. */
struct failure {
    const char *kind;
    enum severity sev;
    bool temporary;
    const char *step;        /* the command that failed, or NULL */
    struct mx_slice subject; /* recipient, user, argument: what failed */
    const char *subject_key; /* its key: "recipient", "user", ... */
    /* The reply that says so (status is SMTP's code as text, "-ERR", "NO", an alert). */
    char status[24];
    const struct mx_event *src;    /* where the next ones come from */
    const struct mx_ev_field *obj; /* the object holding enhanced, text, meaning..., or NULL: the record */
    struct mx_slice text;          /* the reply's text when the source lacks it, else empty */
    struct mx_slice enhanced;      /* the enhanced code when the source has it under another key */
    const struct origin *origin;   /* a bounce: the transaction that sent the original, or NULL */
    struct mx_slice reporter;      /* a bounce: the MTA that reports it */
    const char *note;              /* a plain cause when the source says none */
    const char *note_kind;         /* its cause_kind (dissectors/smtp/words.h), or NULL */
    mx_frame_t a, b;
};

/* Copies string `key` of the source object (and its cut siblings) under `as`. */
static void copy_text(struct mx_event *ev, const struct failure *f, const char *key, const char *as, const char *as_len,
                      const char *as_cut)
{
    const struct mx_event *e = f->src;
    if (f->text.len && !strcmp(key, "text")) {
        mx_ev_wire(ev, as, f->text);
        return;
    }
    if (f->enhanced.len && !strcmp(key, "enhanced")) {
        mx_ev_wire(ev, as, f->enhanced);
        return;
    }
    const struct mx_ev_field *x = f->obj ? member(e, f->obj, key) : mx_ev_get(e, key);
    if (!x || x->kind != MX_EV_STR)
        return;
    struct mx_slice v = mx_ev_field_str(e, x);
    char lk[40];
    snprintf(lk, sizeof(lk), "%s_len", key);
    const struct mx_ev_field *l = f->obj ? member(e, f->obj, lk) : mx_ev_get(e, lk);
    uint64_t wire = l && l->kind == MX_EV_UINT ? l->v.u : v.len;
    mx_ev_wire_cut3(ev, as, as_len, as_cut, v, wire);
}

/* Appends to line (cap bytes, NUL-terminated) what fits of the printf text. */
static void add(char *line, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *line, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, cap - n, fmt, ap);
    va_end(ap);
}

/* The timeline's line: "FAILURE high recipient_refused <bob@example.org> at RCPT: 550
 * 5.1.1 User unknown" (the first line of the reply's text). */
static void failure_line(struct mx_event *ev, const struct failure *f)
{
    const struct mx_event *e = f->src;
    char line[640] = "";
    bool addr = f->subject_key && !strcmp(f->subject_key, "recipient");
    add(line, sizeof(line), "FAILURE %s %s", sev_names[f->sev], f->kind);
    if (f->subject.len)
        add(line, sizeof(line), " %s%.*s%s", addr ? "<" : "", (int)(f->subject.len < 200 ? f->subject.len : 200),
            (const char *)f->subject.ptr, addr ? ">" : "");
    if (f->step)
        add(line, sizeof(line), " at %s", f->step);
    if (f->status[0]) {
        struct mx_slice enh = f->enhanced.len ? f->enhanced
                              : f->obj        ? member_str(e, f->obj, "enhanced")
                                              : mx_ev_get_str(e, "enhanced");
        struct mx_slice t = f->text.len ? f->text : f->obj ? member_str(e, f->obj, "text") : mx_ev_get_str(e, "text");
        const uint8_t *nl = memchr(t.ptr, '\n', t.len);
        if (nl)
            t.len = (size_t)(nl - t.ptr);
        add(line, sizeof(line), ": %s%s%.*s%s%.*s", f->status, enh.len ? " " : "", (int)enh.len, (const char *)enh.ptr,
            t.len ? " " : "", (int)(t.len < 200 ? t.len : 200), (const char *)t.ptr);
    } else if (f->note) {
        add(line, sizeof(line), ": %s", f->note);
    }
    mx_ev_text(ev, "%s", line);
}

/* Emits failure f, derived from record e; `txn`: e is a transaction, whose sender,
 * number and queue id the failure names. */
static void emit(struct mx_sink *s, const struct mx_event *e, const char *proto, const struct failure *f, bool txn)
{
    struct mx_event *ev = mx_event_begin(s, "failure", e->flow, e->ts);
    mx_ev_str(ev, "kind", f->kind);
    mx_ev_str(ev, "severity", sev_names[f->sev]);
    mx_ev_bool(ev, "temporary", f->temporary);
    mx_ev_str(ev, "proto", proto);
    if (f->step)
        mx_ev_str(ev, "step", f->step);
    if (f->subject_key)
        mx_ev_wire(ev, f->subject_key, f->subject);
    if (txn) {
        /* The transaction the recipient belonged to. */
        mx_ev_wire(ev, "mailfrom", mx_ev_get_str(e, "mailfrom"));
        mx_ev_uint(ev, "trans_depth", (uint64_t)mx_ev_get_int(e, "trans_depth", 0));
        struct mx_slice q = mx_ev_get_str(e, "queue_id");
        if (q.len)
            mx_ev_wire(ev, "queue_id", q);
    }
    if (f->reporter.len)
        mx_ev_wire(ev, "reporting_mta", f->reporter);
    if (f->origin) {
        /* The transaction that sent what bounced (RFC 3464 §2.2.1 X-Postfix-Queue-ID, RFC 3462). */
        mx_ev_obj(ev, "original");
        mx_ev_uint(ev, "flow", f->origin->flow);
        mx_ev_uint(ev, "trans_depth", f->origin->trans_depth);
        if (f->origin->queue_id[0])
            mx_ev_wire(ev, "queue_id", mx_slice_make(f->origin->queue_id, strlen(f->origin->queue_id)));
        mx_ev_frames(ev, f->origin->a, f->origin->b);
        mx_ev_end(ev);
    }
    if (f->status[0]) {
        mx_ev_obj(ev, "reply");
        mx_ev_str(ev, "status", f->status);
        copy_text(ev, f, "enhanced", "enhanced", "enhanced_len", "enhanced_truncated");
        copy_text(ev, f, "text", "text", "text_len", "text_truncated");
        copy_text(ev, f, "meaning", "meaning", "meaning_len", "meaning_truncated");
        copy_text(ev, f, "enhanced_meaning", "enhanced_meaning", "enhanced_meaning_len", "enhanced_meaning_truncated");
        mx_ev_end(ev);
    }
    const struct mx_ev_field *c = f->obj ? member(e, f->obj, "cause") : mx_ev_get(e, "cause");
    if (c && c->kind == MX_EV_STR) {
        mx_ev_wire(ev, "cause", mx_ev_field_str(e, c));
        copy_text(ev, f, "cause_kind", "cause_kind", "cause_kind_len", "cause_kind_truncated");
        copy_text(ev, f, "cause_kind_code", "cause_kind_code", "cause_kind_code_len", "cause_kind_code_truncated");
    } else if (f->note) {
        mx_ev_str(ev, "cause", f->note);
        if (f->note_kind)
            mx_ev_str(ev, "cause_kind", f->note_kind);
    }
    mx_ev_frames(ev, f->a, f->b);
    mx_ev_tone(ev, f->sev == SEV_HIGH ? MX_TONE_BAD : MX_TONE_WARN);
    if (mx_ev_wants_text(ev))
        failure_line(ev, f);
    mx_event_emit(s, ev);
}

/* ---- What fails ---- */

static void status_code(struct failure *f, int64_t code)
{
    snprintf(f->status, sizeof(f->status), "%" PRId64, code);
}

/* RFC 5321 §4.2.1: 4yz is transient, 5yz permanent. */
static void by_code(struct failure *f, int64_t code)
{
    f->temporary = code / 100 == 4;
    f->sev = f->temporary ? SEV_MEDIUM : SEV_HIGH;
}

/* A transaction's end the capture saw: the connection's or the server's (a failure),
 * or the capture's, mxray's or none at all (not seen: no failure). */
static bool ended_for_real(struct mx_slice ended)
{
    return slice_is(ended, "fin") || slice_is(ended, "rst") || slice_is(ended, "timeout") ||
           slice_is(ended, "reused") || slice_is(ended, "server_closed");
}

/* SMTP and LMTP transactions (RFC 5321 §3.3, RFC 2033 §4.2): each recipient that did not
 * get through, with the reply that decided it. */
static void on_transaction(struct mx_sink *s, struct flowst *st, const struct mx_event *e, const char *proto)
{
    const struct mx_ev_field *fail = mx_ev_get(e, "failure");
    int64_t code = member_int(e, fail, "code");
    bool refused = fail && code >= 400;
    bool unfinished = fail && !code && ended_for_real(member_str(e, fail, "ended"));
    struct mx_slice fstep = member_str(e, fail, "step");
    char step[24];
    mx_text_copy(step, sizeof(step), fstep);
    bool any = false;
    if (refused && !strcmp(step, "MAIL")) {
        /* RFC 5321 §4.1.4: a refused MAIL is the root; the recipients after it were refused for it. */
        struct failure f = { .src = e, .kind = "message_refused", .step = step, .obj = fail };
        status_code(&f, code);
        by_code(&f, code);
        frames_of(e, fail, &f.a, &f.b);
        emit(s, e, proto, &f, true);
        refused = false; /* said */
        any = true;
    }
    const struct mx_ev_field *rs = mx_ev_get(e, "recipients");
    for (const struct mx_ev_field *r = mx_ev_first(e, rs); r; r = mx_ev_next(e, r)) {
        struct mx_slice out = member_str(e, r, "outcome");
        struct failure f = { .src = e, .subject = member_str(e, r, "addr"), .subject_key = "recipient" };
        const struct mx_ev_field *dl = member(e, r, "delivery");
        any = true;
        if (slice_is(out, "rejected") || slice_is(out, "deferred")) {
            f.kind = "recipient_refused";
            f.step = "RCPT";
            f.obj = r;
            status_code(&f, member_int(e, r, "code"));
            by_code(&f, member_int(e, r, "code"));
        } else if (dl && member_int(e, dl, "code") >= 400) {
            /* LMTP: this recipient's own reply after the data refused it. */
            f.kind = "message_refused";
            f.step = mx_ev_get(e, "bdat_chunks") ? "BDAT" : "(end of data)";
            f.obj = dl;
            status_code(&f, member_int(e, dl, "code"));
            by_code(&f, member_int(e, dl, "code"));
        } else if (dl && slice_is(member_str(e, dl, "outcome"), "accepted")) {
            continue;
        } else if (refused && !dl) {
            f.kind = "message_refused";
            f.step = step;
            f.obj = fail;
            status_code(&f, code);
            by_code(&f, code);
        } else if (unfinished) {
            f.kind = "transaction_unfinished";
            f.step = NULL;
            f.obj = fail;
            f.sev = SEV_MEDIUM;
            st->unfinished = true;
        } else {
            continue;
        }
        frames_of(e, f.obj, &f.a, &f.b);
        if (!f.a) /* unfinished: the transaction's own frames */
            frames_of(e, NULL, &f.a, &f.b);
        emit(s, e, proto, &f, true);
    }
    if (!any && (refused || unfinished)) {
        /* Refused before any recipient (MAIL), or cut before one: the transaction's own. */
        struct failure f = { .src = e, .obj = fail, .step = refused ? step : NULL };
        if (refused) {
            f.kind = "message_refused";
            status_code(&f, code);
            by_code(&f, code);
        } else {
            f.kind = "transaction_unfinished";
            f.sev = SEV_MEDIUM;
            st->unfinished = true;
        }
        frames_of(e, fail, &f.a, &f.b);
        if (!f.a)
            frames_of(e, NULL, &f.a, &f.b);
        emit(s, e, proto, &f, true);
    }
}

/* A login the server refused (RFC 4954 §6, RFC 1939 §7, RFC 5034 §4, RFC 9051 §6.2). */
static void on_auth(struct mx_sink *s, struct flowst *st, const struct mx_event *e, const char *proto)
{
    if (!slice_is(mx_ev_get_str(e, "outcome"), "failure"))
        return;
    struct failure f = { .src = e, .kind = "login_failed", .sev = SEV_HIGH, .subject_key = "user" };
    f.subject = mx_ev_get_str(e, "user");
    if (!f.subject.len)
        f.subject = mx_slice_make("(no user)", 9);
    const struct mx_ev_field *code = mx_ev_get(e, "code");
    if (code && code->kind == MX_EV_INT) {
        f.step = "AUTH";
        status_code(&f, code->v.i);
        by_code(&f, code->v.i);
    } else {
        /* POP3 and IMAP: the response codes of a temporary refusal (RFC 3206 §4, RFC 5530 §3). */
        struct mx_slice rc = mx_ev_get_str(e, "resp_code");
        f.temporary = slice_is(rc, "UNAVAILABLE") || slice_is(rc, "SYS/TEMP") || slice_is(rc, "IN-USE");
        f.sev = f.temporary ? SEV_MEDIUM : SEV_HIGH;
        f.step = !strcmp(proto, "imap") ? (mx_ev_get_str(e, "command").len ? "LOGIN" : NULL) : "PASS";
        if (!strcmp(proto, "imap") && slice_is(mx_ev_get_str(e, "command"), "AUTHENTICATE"))
            f.step = "AUTHENTICATE";
        else if (!strcmp(proto, "pop3") && !slice_is(mx_ev_get_str(e, "mechanism"), "USER/PASS"))
            f.step = slice_is(mx_ev_get_str(e, "mechanism"), "APOP") ? "APOP" : "AUTH";
        snprintf(f.status, sizeof(f.status), "%s", !strcmp(proto, "imap") ? "NO" : "-ERR");
        f.note = f.temporary ? "The server refused the login for now (RFC 3206 §4, RFC 5530 §3): the mailbox is in "
                               "use, or the server is unavailable; the client may retry."
                             : "The server refused the login: a wrong user name or password, or an account that may "
                               "not log in.";
        f.note_kind = slice_is(rc, "IN-USE") ? "in_use" : f.temporary ? "unavailable" : "auth_failed";
    }
    if (!mx_ev_get(e, "text")) /* the reply that refused it came just before */
        f.text = mx_slice_make(st->last_text, st->last_text_len);
    frames_of(e, NULL, &f.a, &f.b);
    emit(s, e, proto, &f, false);
}

/* A reply or response: STARTTLS refused, a retrieval refused, an APPEND refused. */
static void on_reply(struct mx_sink *s, struct flowst *st, const struct mx_event *e, const char *proto)
{
    struct mx_slice cmd = mx_ev_get_str(e, "answers.command"), text = mx_ev_get_str(e, "text");
    const uint8_t *nl = memchr(text.ptr, '\n', text.len);
    size_t tl = nl ? (size_t)(nl - text.ptr) : text.len;
    st->last_text_len = tl < sizeof(st->last_text) ? tl : sizeof(st->last_text) - 1;
    memcpy(st->last_text, text.ptr, st->last_text_len);
    struct failure f = { .src = e };
    const struct mx_ev_field *code = mx_ev_get(e, "code");
    struct mx_slice status = mx_ev_get_str(e, "status");
    bool negative;
    if (code && code->kind == MX_EV_INT) { /* SMTP, LMTP */
        negative = code->v.i >= 400;
        status_code(&f, code->v.i);
        by_code(&f, code->v.i);
    } else { /* POP3 -ERR (RFC 1939 §3), IMAP NO and BAD (RFC 9051 §7.1) */
        negative = slice_is(status, "-ERR") || slice_is(status, "NO") || slice_is(status, "BAD");
        mx_text_copy(f.status, sizeof(f.status), status);
        f.sev = SEV_LOW;
    }
    if (!negative)
        return;
    char step[16];
    mx_text_copy(step, sizeof(step), cmd);
    f.step = step;
    if (slice_is(cmd, "STARTTLS") || slice_is(cmd, "STLS")) {
        f.kind = "starttls_refused";
        f.sev = SEV_MEDIUM;
        f.note = "The server would not start TLS (RFC 3207 §4, RFC 2595 §4): the session stays in clear or the "
                 "client gives up; often a missing or unreadable certificate.";
    } else if (!strcmp(proto, "pop3") && (slice_is(cmd, "RETR") || slice_is(cmd, "TOP"))) {
        f.kind = "retrieval_failed";
        f.note = "The server would not return this message (RFC 1939 §5): no such message, deleted, or a mailbox "
                 "error.";
    } else if (!strcmp(proto, "imap") &&
               (slice_is(cmd, "FETCH") || slice_is(cmd, "SELECT") || slice_is(cmd, "EXAMINE"))) {
        f.kind = "retrieval_failed";
        f.note = slice_is(cmd, "FETCH") ? "The server would not return the messages asked for (RFC 9051 §6.4.5)."
                                        : "The server would not open this mailbox (RFC 9051 §6.3.2): it does not "
                                          "exist, or the user may not read it.";
    } else if (!strcmp(proto, "imap") && slice_is(cmd, "APPEND")) {
        f.kind = "message_refused";
        f.sev = SEV_HIGH;
        f.note = "The server would not store the message (RFC 9051 §6.3.12): a quota, a size limit, or the mailbox.";
    } else {
        return;
    }
    if (f.status[0] == 'N' || f.status[0] == 'B' || f.status[0] == '-') {
        /* RFC 5530 §3, RFC 3206 §4: the response codes of a temporary failure. */
        struct mx_slice rc = mx_ev_get_str(e, "resp_code");
        f.temporary = slice_is(rc, "UNAVAILABLE") || slice_is(rc, "SYS/TEMP") || slice_is(rc, "IN-USE") ||
                      slice_is(rc, "INUSE") || slice_is(rc, "LIMIT");
    }
    f.note_kind = f.temporary ? "temporary" : "refused";
    frames_of(e, NULL, &f.a, &f.b);
    emit(s, e, proto, &f, false);
}

/* A TLS handshake that a fatal alert ended (RFC 8446 §6.2, RFC 5246 §7.2.2). */
static void on_tls(struct mx_sink *s, const struct mx_event *e, const char *proto)
{
    const struct mx_ev_field *c = mx_ev_get(e, "completed");
    if (!c || c->kind != MX_EV_BOOL || c->v.b)
        return;
    const struct mx_ev_field *al = mx_ev_get(e, "alerts");
    for (const struct mx_ev_field *a = mx_ev_first(e, al); a; a = mx_ev_next(e, a)) {
        if (!slice_is(member_str(e, a, "level"), "fatal"))
            continue;
        struct failure f = { .src = e, .kind = "tls_failed", .sev = SEV_MEDIUM, .obj = a, .note_kind = "tls_failed" };
        f.step = slice_is(mx_ev_get_str(e, "how"), "starttls") ? "(TLS after STARTTLS)" : "(TLS handshake)";
        snprintf(f.status, sizeof(f.status), "alert");
        f.text = member_str(e, a, "description");
        f.note = "The TLS handshake ended with a fatal alert before it completed: compare the versions and cipher "
                 "suites both sides allow; the alert names the failure.";
        frames_of(e, a, &f.a, &f.b);
        emit(s, e, proto, &f, false);
        return;
    }
}

/* The flow's end: a session reset or timed out mid-dialogue. */
static void on_flow(struct mx_sink *s, struct flowst *st, const struct mx_event *e)
{
    struct mx_slice close = mx_ev_get_str(e, "close");
    if (!st->session || st->dark || st->unfinished || st->server_closed ||
        !(slice_is(close, "rst") || slice_is(close, "timeout")))
        return;
    bool before_greeting = st->handshake && !st->greeted;
    bool leaving = !strcmp(st->last_verb, "QUIT") || !strcmp(st->last_verb, "LOGOUT");
    if (!before_greeting && !(st->unanswered && !leaving))
        return;
    struct failure f = { .src = e, .kind = "session_cut", .sev = SEV_MEDIUM, .temporary = true };
    f.note_kind = slice_is(close, "rst") ? "reset" : "timeout";
    f.step = before_greeting ? "(connect)" : st->last_verb;
    char note[200];
    const char *how = slice_is(close, "rst") ? "reset (RST)" : "silent until it timed out";
    if (before_greeting)
        snprintf(note, sizeof(note), "The connection was %s before the server's greeting.", how);
    else
        snprintf(note, sizeof(note), "The connection was %s mid-dialogue: %" PRIu64 " command%s waited for %s reply.",
                 how, st->unanswered, st->unanswered == 1 ? "" : "s", st->unanswered == 1 ? "its" : "their");
    f.note = note;
    mx_frame_t a, b;
    frames_of(e, NULL, &a, &b);
    f.a = f.b = b;
    emit(s, e, st->proto, &f, false);
}

/* ---- Bounces (RFC 3464, RFC 6533) ---- */

/* The two keyed hashes of prefix and id, each never 0. */
static uint64_t key_of(struct model *m, const char *prefix, struct mx_slice id, uint64_t *check)
{
    char key[KEY_BYTES];
    size_t n = strlen(prefix), l = id.len < KEY_BYTES - n ? id.len : KEY_BYTES - n;
    memcpy(key, prefix, n);
    memcpy(key + n, id.ptr, l);
    uint64_t h = mx_hash(m->hasher, key, n + l);
    *check = mx_hash(m->hasher2, key, n + l);
    *check += !*check;
    return h ? h : 1;
}

/* Forgets every id an index holds (it was full: linking goes on with the latest). */
static void index_clear(struct mx_idmap *x, bool owned)
{
    for (size_t i = 0; owned && i < x->cap; i++)
        if (x->slot[i].id)
            free(x->slot[i].val);
    mx_idmap_free(x);
    memset(x, 0, sizeof(*x));
}

/* Keeps a transaction's id for the bounces that may name it (the first of each id). */
static void keep_origin(struct model *m, const struct mx_event *e, const char *prefix, struct mx_slice id)
{
    uint64_t check;
    if (!id.len)
        return;
    if (m->origins.n >= MAX_KEYS)
        index_clear(&m->origins, true);
    uint64_t h = key_of(m, prefix, id, &check);
    if (mx_idmap_get(&m->origins, h))
        return;
    struct origin *o = calloc(1, sizeof(*o));
    if (!o)
        return;
    o->check = check;
    o->flow = e->flow;
    frames_of(e, NULL, &o->a, &o->b);
    o->trans_depth = (uint64_t)mx_ev_get_int(e, "trans_depth", 0);
    mx_text_copy(o->queue_id, sizeof(o->queue_id), mx_ev_get_str(e, "queue_id"));
    if (!mx_idmap_put(&m->origins, h, o))
        free(o);
}

static const struct origin *find_origin(struct model *m, const char *prefix, struct mx_slice id)
{
    uint64_t check;
    if (!id.len)
        return NULL;
    const struct origin *o = mx_idmap_get(&m->origins, key_of(m, prefix, id, &check));
    return o && o->check == check ? o : NULL;
}

/* Whether this bounce was told already, by its own Message-ID (else its flow and first
 * frame): the same report delivered over LMTP, then fetched by IMAP or POP3. */
static bool bounce_told(struct model *m, const struct mx_event *e)
{
    char own[48];
    uint64_t check;
    struct mx_slice id = mx_ev_get_str(e, "headers.message_id");
    if (!id.len) {
        snprintf(own, sizeof(own), "%" PRIu64 "/%" PRIu64, e->flow, (uint64_t)mx_ev_get_int(e, "frames.0", 0));
        id = mx_slice_make(own, strlen(own));
    }
    uint64_t h = key_of(m, "b:", id, &check);
    uintptr_t seen = (uintptr_t)mx_idmap_get(&m->bounces, h);
    if (seen == (uintptr_t)check)
        return true;
    if (m->bounces.n >= MAX_KEYS)
        index_clear(&m->bounces, false);
    if (!seen) /* out of memory: it may be told twice */
        (void)mx_idmap_put(&m->bounces, h, (void *)(uintptr_t)check);
    return false;
}

/* A message that is a delivery status report: each recipient it says failed or was
 * delayed, linked to the transaction that sent the original when the capture holds it
 * (by the report's queue id, then the returned message's Message-ID). */
static void on_bounce(struct mx_sink *s, struct model *m, const struct mx_event *e, const char *proto)
{
    const struct mx_ev_field *ds = mx_ev_get(e, "delivery_status");
    if (!ds || ds->kind != MX_EV_OBJ || bounce_told(m, e))
        return;
    const struct origin *o = find_origin(m, "q:", member_str(e, ds, "queue_id"));
    if (!o)
        o = find_origin(m, "m:", member_str(e, ds, "original_message_id"));
    const struct mx_ev_field *rs = member(e, ds, "recipients");
    for (const struct mx_ev_field *r = mx_ev_first(e, rs); r; r = mx_ev_next(e, r)) {
        struct mx_slice action = member_str(e, r, "action");
        bool delayed = slice_is(action, "delayed");
        if (!delayed && !slice_is(action, "failed"))
            continue;
        struct failure f = { .src = e, .kind = "bounced", .obj = r, .subject_key = "recipient" };
        f.subject = member_str(e, r, "final_recipient");
        f.temporary = delayed;
        f.sev = delayed ? SEV_MEDIUM : SEV_HIGH;
        f.step = "(delivery status)";
        int64_t code = member_int(e, r, "reply_code");
        if (code)
            status_code(&f, code);
        else
            mx_text_copy(f.status, sizeof(f.status), member_str(e, r, "status"));
        f.enhanced = member_str(e, r, "status");
        /* "smtp; 550 5.1.1 text": the text after the codes the reply already gives. */
        f.text = member_str(e, r, "diagnostic_code");
        size_t cl = strlen(f.status);
        if (f.text.len > cl && !memcmp(f.text.ptr, f.status, cl) && f.text.ptr[cl] == ' ')
            f.text = mx_slice_make(f.text.ptr + cl + 1, f.text.len - cl - 1);
        if (f.text.len > f.enhanced.len && f.enhanced.len && !memcmp(f.text.ptr, f.enhanced.ptr, f.enhanced.len) &&
            f.text.ptr[f.enhanced.len] == ' ')
            f.text = mx_slice_make(f.text.ptr + f.enhanced.len + 1, f.text.len - f.enhanced.len - 1);
        f.origin = o;
        f.reporter = member_str(e, ds, "reporting_mta");
        frames_of(e, NULL, &f.a, &f.b);
        emit(s, e, proto, &f, false);
    }
}

/* ---- The deriver ---- */

static void model_event(void *ctx, struct mx_sink *s, const struct mx_event *e)
{
    struct model *m = ctx;
    if (!e->flow)
        return;
    const char *t = e->type;
    struct flowst *st = mx_idmap_get(&m->flows, e->flow);
    if (!strcmp(t, "flow_start")) {
        if (st)
            return;
        st = calloc(1, sizeof(*st));
        if (!st || !mx_idmap_put(&m->flows, e->flow, st)) {
            free(st); /* out of memory: this flow's failures are not derived */
            return;
        }
        mx_text_copy(st->proto, sizeof(st->proto), mx_ev_get_str(e, "proto"));
        st->handshake = mx_ev_get_int(e, "handshake", 0) != 0;
        return;
    }
    if (!st)
        return;
    if (!strcmp(t, "flow")) {
        free(mx_idmap_take(&m->flows, e->flow));
        return;
    }
    /* The record's own protocol: an LMTP session on an SMTP flow is LMTP's. */
    char proto[8];
    const char *dot = strchr(t, '.');
    mx_text_copy(proto, sizeof(proto),
                 dot ? mx_slice_make(t, (size_t)(dot - t)) : mx_slice_make(st->proto, strlen(st->proto)));
    if (type_is(t, "command")) {
        struct mx_slice v = mx_ev_get_str(e, "verb");
        if (!v.len)
            v = mx_ev_get_str(e, "command");
        mx_text_copy(st->last_verb, sizeof(st->last_verb), v);
        for (char *p = st->last_verb; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
    } else if (type_is(t, "reply") || type_is(t, "response")) {
        on_reply(s, st, e, proto);
    } else if (type_is(t, "transaction")) {
        on_transaction(s, st, e, proto);
        keep_origin(m, e, "q:", mx_ev_get_str(e, "queue_id"));
        keep_origin(m, e, "m:", mx_ev_get_str(e, "message.message_id"));
    } else if (!strcmp(t, "message")) {
        on_bounce(s, m, e, st->proto);
    } else if (type_is(t, "auth")) {
        on_auth(s, st, e, proto);
    } else if (type_is(t, "session")) {
        st->session = true;
        st->greeted = mx_ev_get(e, "greeting") != NULL;
        st->server_closed = mx_ev_get(e, "server_closed") != NULL;
        st->unanswered = (uint64_t)mx_ev_get_int(e, "unanswered", 0);
        /* Inside TLS that was not decrypted the dialogue goes on unseen: whatever waited in
         * clear is no sign of a cut. */
        st->dark = mx_ev_get_int(e, "in_tls", 0) && !mx_ev_get_int(e, "decrypted", 0);
    } else if (!strcmp(t, "tls")) {
        on_tls(s, e, st->proto);
    }
}

/* Before the flow record, which stays the flow's last: a session cut mid-dialogue. */
static void model_before(void *ctx, struct mx_sink *s, const struct mx_event *e)
{
    struct model *m = ctx;
    struct flowst *st = e->flow && !strcmp(e->type, "flow") ? mx_idmap_get(&m->flows, e->flow) : NULL;
    if (st)
        on_flow(s, st, e);
}

static void model_free(void *ctx)
{
    struct model *m = ctx;
    for (size_t i = 0; i < m->flows.cap; i++)
        if (m->flows.slot[i].id)
            free(m->flows.slot[i].val);
    mx_idmap_free(&m->flows);
    index_clear(&m->origins, true);
    index_clear(&m->bounces, false);
    mx_hasher_free(m->hasher);
    mx_hasher_free(m->hasher2);
    free(m);
}

static const struct mx_deriver_ops model_ops = {
    .event = model_event,
    .before = model_before,
    .free = model_free,
};

bool mx_failure_attach(struct mx_sink *s)
{
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return false;
    m->hasher = mx_hasher_new();
    m->hasher2 = mx_hasher_new();
    if (!m->hasher || !m->hasher2 || !mx_sink_set_deriver(s, &model_ops, m)) {
        mx_hasher_free(m->hasher);
        mx_hasher_free(m->hasher2);
        free(m);
        return false;
    }
    return true;
}
