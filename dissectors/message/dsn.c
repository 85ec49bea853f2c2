/* dsn.c - delivery status notifications (RFC 3464, RFC 6533): a streaming reader of message/delivery-status fields. */
#include "dissectors/message/dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/text.h"
#include "dissectors/message/mime.h"
#include "dissectors/smtp/codes.h"
#include "dissectors/smtp/diagnosis.h"

/* Caps (STYLE.md rule 4): whatever the report, what is kept is bounded. */
#define DSN_LINE_CAP 1024  /* bytes of one line kept; the rest counted */
#define DSN_FIELD_CAP 1024 /* bytes of one unfolded field kept; the rest counted */
#define DSN_TEXT_CAP 512   /* bytes of one field's value kept (its _len says how long it was) */
#define DSN_MAX_RCPTS 32   /* per-recipient groups described; the rest counted */
#define DSN_PATH_CAP 128
#define DSN_CTYPE_CAP 40

/* A field's value as kept: the first `len` bytes of `wire`. */
struct text {
    bool seen;
    uint16_t len;
    uint32_t wire;
    uint8_t b[DSN_TEXT_CAP];
};

/* The per-message fields (RFC 3464 §2.2), and postfix's queue id. */
enum { P_REPORTING_MTA, P_RECEIVED_FROM_MTA, P_ARRIVAL_DATE, P_ENVID, P_QUEUE_ID, P__N };
static const char *const msg_names[P__N] = { "reporting-mta", "received-from-mta", "arrival-date",
                                             "original-envelope-id", "x-postfix-queue-id" };
static const char *const msg_keys[P__N][3] = {
    { "reporting_mta", "reporting_mta_len", "reporting_mta_truncated" },
    { "received_from_mta", "received_from_mta_len", "received_from_mta_truncated" },
    { "arrival_date", "arrival_date_len", "arrival_date_truncated" },
    { "original_envelope_id", "original_envelope_id_len", "original_envelope_id_truncated" },
    { "queue_id", "queue_id_len", "queue_id_truncated" },
};
/* "type; value" fields (§2.2.2, §2.2.4): the type's key, or NULL. */
static const char *const msg_type_keys[P__N] = { "reporting_mta_type", "received_from_mta_type", NULL, NULL, NULL };

/* The per-recipient fields (RFC 3464 §2.3). */
enum { R_FINAL, R_ORIGINAL, R_ACTION, R_STATUS, R_REMOTE_MTA, R_DIAG, R_LAST_ATTEMPT, R_WILL_RETRY, R__N };
static const char *const rcpt_names[R__N] = {
    "final-recipient", "original-recipient", "action",          "status", "remote-mta",
    "diagnostic-code", "last-attempt-date",  "will-retry-until"
};
static const char *const rcpt_keys[R__N][3] = {
    { "final_recipient", "final_recipient_len", "final_recipient_truncated" },
    { "original_recipient", "original_recipient_len", "original_recipient_truncated" },
    { "action", "action_len", "action_truncated" },
    { "status", "status_len", "status_truncated" },
    { "remote_mta", "remote_mta_len", "remote_mta_truncated" },
    { "diagnostic_code", "diagnostic_code_len", "diagnostic_code_truncated" },
    { "last_attempt_date", "last_attempt_date_len", "last_attempt_date_truncated" },
    { "will_retry_until", "will_retry_until_len", "will_retry_until_truncated" },
};
static const char *const rcpt_type_keys[R__N] = { "final_recipient_type", "original_recipient_type", NULL, NULL,
                                                  "remote_mta_type",      "diagnostic_type",         NULL, NULL };

struct rcpt {
    struct text f[R__N];
};

/* RFC 3464 §2.3.3 */
static const char *const actions[] = { "failed", "delayed", "delivered", "relayed", "expanded" };

struct mx_dsn {
    /* the part being read */
    bool active;       /* mx_dsn_begin of a part that is read (the first of its kind) */
    bool headers;      /* a returned header block, not delivery-status fields */
    bool headers_over; /* its header block ended */
    bool report_begun; /* a delivery-status part was begun (only the first is read) */
    bool global;       /* message/global-delivery-status (RFC 6533) */
    char path[DSN_PATH_CAP];
    /* groups (§2.1): 0 is the per-message one */
    uint32_t group;
    bool group_open;  /* a field of the current group was seen */
    struct rcpt *cur; /* the recipient of the current group (NULL in group 0) */
    /* results */
    struct text msg[P__N];
    uint32_t n_rcpt, total, dropped, failed, delayed;
    struct text returned;
    char returned_type[DSN_CTYPE_CAP];
    char headers_type[DSN_CTYPE_CAP]; /* the content type of the header block being read */
    unsigned seen_anomalies;
    unsigned new_anomalies;
    /* line layer */
    size_t line_len;
    uint64_t line_wire;
    bool line_cr; /* the last byte of the line so far is CR */
    /* field layer */
    bool field_open;
    size_t field_len;
    uint64_t field_wire;
    uint8_t line[DSN_LINE_CAP];
    uint8_t field[DSN_FIELD_CAP];
    struct rcpt spare; /* a recipient past the cap: read for its Action, not kept */
    struct rcpt rcpts[DSN_MAX_RCPTS];
};

static void flag(struct mx_dsn *d, unsigned a)
{
    if (!(d->seen_anomalies & a))
        d->new_anomalies |= a;
    d->seen_anomalies |= a;
}

static bool wsp(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static struct mx_slice trim(struct mx_slice s)
{
    while (s.len && (wsp(s.ptr[0]) || s.ptr[0] == '\r'))
        s = mx_slice_make(s.ptr + 1, s.len - 1);
    while (s.len && (wsp(s.ptr[s.len - 1]) || s.ptr[s.len - 1] == '\r'))
        s.len--;
    return s;
}

struct mx_dsn *mx_dsn_new(void)
{
    struct mx_dsn *d = malloc(sizeof(*d));
    if (!d)
        return NULL;
    /* the buffers and the recipients' texts are written before they are read */
    memset(d, 0, offsetof(struct mx_dsn, line));
    return d;
}

void mx_dsn_free(struct mx_dsn *d)
{
    free(d);
}

size_t mx_dsn_bytes(const struct mx_dsn *d)
{
    return d ? sizeof(*d) : 0;
}

static void text_clear(struct rcpt *r)
{
    for (int k = 0; k < R__N; k++)
        r->f[k].seen = false;
}

void mx_dsn_begin(struct mx_dsn *d, bool headers, bool global, const char *path)
{
    d->active = headers ? !d->returned.seen : !d->report_begun;
    d->headers = headers;
    d->headers_over = false;
    d->line_len = 0;
    d->line_wire = 0;
    d->line_cr = false;
    d->field_open = false;
    if (headers)
        snprintf(d->headers_type, sizeof(d->headers_type), "%s",
                 global ? "message/global-headers" : "text/rfc822-headers");
    if (!d->active || headers)
        return;
    d->report_begun = true;
    d->global = global;
    snprintf(d->path, sizeof(d->path), "%s", path);
}

bool mx_dsn_has_returned(const struct mx_dsn *d)
{
    return d->returned.seen;
}

static void keep(struct text *t, struct mx_slice v, uint64_t wire)
{
    /* cut at a character boundary (RFC 6533 reports are UTF-8) */
    size_t n = v.len <= DSN_TEXT_CAP ? v.len : mx_utf8_cut(v.ptr, DSN_TEXT_CAP);
    memcpy(t->b, v.ptr, n);
    t->len = (uint16_t)n;
    t->wire = wire > UINT32_MAX ? UINT32_MAX : (uint32_t)wire;
    t->seen = true;
}

void mx_dsn_returned_id(struct mx_dsn *d, struct mx_slice id, const char *content_type)
{
    if (d->returned.seen)
        return;
    keep(&d->returned, id, id.len);
    snprintf(d->returned_type, sizeof(d->returned_type), "%s", content_type);
}

/* The first token of a value (before whitespace, a comment or ';'). */
static struct mx_slice token(struct mx_slice v)
{
    size_t i = 0;
    while (i < v.len && !wsp(v.ptr[i]) && v.ptr[i] != '(' && v.ptr[i] != ';')
        i++;
    return mx_slice_make(v.ptr, i);
}

/* Whether the recipient's Action (§2.3.3) is `what` (a comment may follow). */
static bool action_is(const struct rcpt *r, const char *what)
{
    const struct text *a = &r->f[R_ACTION];
    return a->seen && mx_mime_eq(token(mx_slice_make(a->b, a->len)), what);
}

/* The current group closes (a blank line, or the part's end). */
static void group_close(struct mx_dsn *d)
{
    if (!d->group_open)
        return;
    d->group_open = false;
    struct rcpt *r = d->cur;
    if (r) {
        /* RFC 3464 §2.3: Final-Recipient, Action and Status are required */
        if (!r->f[R_FINAL].seen || !r->f[R_ACTION].seen || !r->f[R_STATUS].seen)
            flag(d, MX_DSN_MISSING_FIELD);
        d->failed += action_is(r, "failed");
        d->delayed += action_is(r, "delayed");
    }
    d->cur = NULL;
    d->group++;
}

/* A recipient's group begins. */
static void rcpt_open(struct mx_dsn *d)
{
    d->total++;
    if (d->n_rcpt < DSN_MAX_RCPTS)
        d->cur = &d->rcpts[d->n_rcpt++];
    else {
        if (!d->dropped++)
            flag(d, MX_DSN_TOO_MANY_RECIPIENTS);
        d->cur = &d->spare;
    }
    text_clear(d->cur);
}

/* One unfolded field of the report: name, value (trimmed, as kept), and
 * the value's length as sent. */
static void report_field(struct mx_dsn *d, struct mx_slice name, struct mx_slice v, uint64_t wire)
{
    for (int k = 0; k < R__N; k++) {
        if (!mx_mime_eq(name, rcpt_names[k]))
            continue;
        /* a recipient field in the per-message group, or one repeated:
         * the groups lack their blank lines (§2.1); a new recipient */
        if (d->group_open && (d->group == 0 || !d->cur || d->cur->f[k].seen))
            group_close(d);
        if (!d->group_open) {
            d->group_open = true;
            if (d->group == 0)
                d->group = 1;
            rcpt_open(d);
        }
        keep(&d->cur->f[k], v, wire);
        struct mx_slice t = token(v);
        if (k == R_ACTION) {
            bool ok = false;
            for (size_t i = 0; i < MX_ARRAY_LEN(actions); i++)
                ok |= mx_mime_eq(t, actions[i]);
            if (!ok)
                flag(d, MX_DSN_BAD_VALUE);
        } else if (k == R_STATUS) {
            struct mx_enhanced_code e;
            if (!mx_enhanced_parse(t, &e))
                flag(d, MX_DSN_BAD_VALUE);
        }
        return;
    }
    for (int k = 0; k < P__N; k++) {
        if (!mx_mime_eq(name, msg_names[k]))
            continue;
        if (!d->group_open)
            d->group_open = true; /* (group 0, or a group of per-message fields out of place) */
        if (!d->msg[k].seen)
            keep(&d->msg[k], v, wire);
        return;
    }
    /* extension fields (§2.4, X-...) are not kept; they still open a group */
    if (!d->group_open) {
        d->group_open = true;
        if (d->group > 0)
            rcpt_open(d);
    }
}

/* The field being unfolded is complete. */
static void field_done(struct mx_dsn *d)
{
    if (!d->field_open)
        return;
    d->field_open = false;
    const uint8_t *colon = memchr(d->field, ':', d->field_len);
    if (!colon)
        return;
    struct mx_slice name = trim(mx_slice_make(d->field, (size_t)(colon - d->field)));
    size_t off = (size_t)(colon + 1 - d->field);
    struct mx_slice raw = mx_slice_make(colon + 1, d->field_len - off);
    struct mx_slice v = trim(raw);
    /* its length as sent: what was dropped past the caps counts, the
     * whitespace trimmed off what was kept does not */
    uint64_t wire = d->field_wire - off - (size_t)(v.ptr - raw.ptr);
    if (d->field_wire == d->field_len)
        wire = v.len;
    if (d->headers) {
        if (mx_mime_eq(name, "message-id") && !d->returned.seen) {
            keep(&d->returned, v, wire);
            snprintf(d->returned_type, sizeof(d->returned_type), "%s", d->headers_type);
        }
        return;
    }
    report_field(d, name, v, wire);
}

/* Appends (a kept piece of) a line to the field, counting `wire` bytes. */
static void field_add(struct mx_dsn *d, struct mx_slice s, uint64_t wire)
{
    size_t room = sizeof(d->field) - d->field_len;
    size_t n = s.len < room ? s.len : room;
    memcpy(d->field + d->field_len, s.ptr, n);
    d->field_len += n;
    d->field_wire += wire;
}

/* One line, its line end removed: `s` what was kept of it, `wire` its length. */
static void line_done(struct mx_dsn *d, struct mx_slice s, uint64_t wire)
{
    if (d->headers && d->headers_over)
        return;
    if (wire == 0) {
        /* RFC 3464 §2.1: a blank line ends a group; RFC 5322 §2.1: a header block */
        field_done(d);
        if (d->headers)
            d->headers_over = true;
        else
            group_close(d);
        return;
    }
    if (wsp(s.ptr[0])) {
        if (!d->field_open) {
            flag(d, MX_DSN_NOT_A_FIELD);
            return;
        }
        /* RFC 5322 §2.2.3 unfolding: the fold and its whitespace read as one space */
        size_t lead = 0;
        while (lead < s.len && wsp(s.ptr[lead]))
            lead++;
        field_add(d, mx_slice_make(" ", 1), 1);
        field_add(d, mx_slice_make(s.ptr + lead, s.len - lead), wire - lead);
        return;
    }
    field_done(d);
    if (!mx_mime_field_start(s)) {
        flag(d, MX_DSN_NOT_A_FIELD);
        return;
    }
    d->field_open = true;
    d->field_len = 0;
    d->field_wire = 0;
    field_add(d, s, wire);
}

static void line_end(struct mx_dsn *d)
{
    uint64_t wire = d->line_wire;
    size_t len = d->line_len;
    if (d->line_cr) { /* the CR of CRLF (a bare LF is tolerated) */
        wire--;
        if (len == wire + 1)
            len--;
    }
    line_done(d, mx_slice_make(d->line, len), wire);
    d->line_len = 0;
    d->line_wire = 0;
    d->line_cr = false;
}

unsigned mx_dsn_feed(struct mx_dsn *d, const uint8_t *p, size_t n)
{
    d->new_anomalies = 0;
    if (!d->active)
        return 0;
    while (n) {
        const uint8_t *lf = memchr(p, '\n', n);
        size_t seg = lf ? (size_t)(lf - p) : n;
        size_t room = sizeof(d->line) - d->line_len;
        size_t take = seg < room ? seg : room;
        memcpy(d->line + d->line_len, p, take);
        d->line_len += take;
        d->line_wire += seg;
        if (seg)
            d->line_cr = p[seg - 1] == '\r';
        if (!lf)
            break;
        line_end(d);
        p += seg + 1;
        n -= seg + 1;
    }
    return d->new_anomalies;
}

void mx_dsn_gap(struct mx_dsn *d)
{
    d->line_len = 0;
    d->line_wire = 0;
    d->line_cr = false;
}

unsigned mx_dsn_end(struct mx_dsn *d)
{
    d->new_anomalies = 0;
    if (!d->active)
        return 0;
    if (d->line_wire)
        line_end(d);
    field_done(d);
    d->active = false;
    if (d->headers)
        return d->new_anomalies;
    group_close(d);
    /* RFC 3464 §2.2.2: Reporting-MTA; §2.1: at least one recipient */
    if (!d->msg[P_REPORTING_MTA].seen || !d->total)
        flag(d, MX_DSN_MISSING_FIELD);
    return d->new_anomalies;
}

void mx_dsn_counts(const struct mx_dsn *d, uint32_t *failed, uint32_t *delayed, uint32_t *total)
{
    *failed = d ? d->failed : 0;
    *delayed = d ? d->delayed : 0;
    *total = d ? d->total : 0;
}

/* ---- the record ---- */

static struct mx_slice text_of(const struct text *t)
{
    return mx_slice_make(t->b, t->len);
}

/* A field, split at its first ';' when it is "type; value" (§2.2.2,
 * §2.3.2, §2.3.6): the value under keys[0] with its cut siblings, the
 * type under type_key. */
static void emit_text(struct mx_event *ev, const char *const keys[3], const char *type_key, const struct text *t)
{
    struct mx_slice v = text_of(t);
    uint64_t wire = t->wire;
    struct mx_slice type = mx_slice_make(NULL, 0);
    const uint8_t *semi = type_key ? memchr(v.ptr, ';', v.len) : NULL;
    if (semi) {
        type = trim(mx_slice_make(v.ptr, (size_t)(semi - v.ptr)));
        struct mx_slice rest = trim(mx_slice_make(semi + 1, v.len - (size_t)(semi + 1 - v.ptr)));
        size_t gone = (size_t)(rest.ptr - v.ptr);
        wire = wire > gone ? wire - gone : rest.len;
        if (t->len == t->wire)
            wire = rest.len;
        v = rest;
    }
    mx_ev_wire_cut3(ev, keys[0], keys[1], keys[2], v, wire < v.len ? v.len : wire);
    if (type.len)
        mx_ev_wire(ev, type_key, type);
}

/* The reply code at the start of an "smtp" diagnostic (RFC 3464 §2.3.6:
 * the reply as the remote MTA sent it), and the text after the codes. */
static int reply_code(struct mx_slice v, struct mx_enhanced_code *enh, struct mx_slice *text)
{
    if (v.len < 3 || v.ptr[0] < '2' || v.ptr[0] > '5' || v.ptr[1] < '0' || v.ptr[1] > '5' || v.ptr[2] < '0' ||
        v.ptr[2] > '9' || (v.len > 3 && v.ptr[3] != ' ' && v.ptr[3] != '-'))
        return 0;
    struct mx_slice r = trim(mx_slice_make(v.ptr + (v.len > 3 ? 4 : 3), v.len > 3 ? v.len - 4 : 0));
    size_t n = mx_enhanced_scan(r, enh);
    *text = trim(mx_slice_make(r.ptr + n, r.len - n));
    return (v.ptr[0] - '0') * 100 + (v.ptr[1] - '0') * 10 + (v.ptr[2] - '0');
}

/* What a failed or delayed recipient's status and diagnostic mean, and
 * the likely cause, as for a reply in a session (diagnosis.h). */
static void emit_diagnosis(struct mx_event *ev, const struct rcpt *r, bool failed)
{
    struct mx_enhanced_code st = MX_ENHANCED_NONE, de = MX_ENHANCED_NONE;
    if (r->f[R_STATUS].seen)
        mx_enhanced_parse(token(text_of(&r->f[R_STATUS])), &st);
    int code = 0;
    struct mx_slice text = mx_slice_make(NULL, 0);
    if (r->f[R_DIAG].seen) {
        struct mx_slice v = text_of(&r->f[R_DIAG]);
        const uint8_t *semi = memchr(v.ptr, ';', v.len);
        struct mx_slice type = semi ? trim(mx_slice_make(v.ptr, (size_t)(semi - v.ptr))) : mx_slice_make(NULL, 0);
        struct mx_slice rest = semi ? trim(mx_slice_make(semi + 1, v.len - (size_t)(semi + 1 - v.ptr))) : v;
        text = rest;
        if (mx_mime_eq(type, "smtp"))
            code = reply_code(rest, &de, &text);
    }
    const struct mx_enhanced_code *e = st.cls ? &st : de.cls ? &de : NULL;
    if (code)
        mx_ev_int(ev, "reply_code", code);
    const char *meaning = code ? mx_diag_reply_meaning(code, "RCPT") : NULL;
    if (meaning)
        mx_ev_str(ev, "meaning", meaning);
    char em[256], cause[768];
    mx_diag_enhanced_meaning(e, em, sizeof(em));
    if (em[0])
        mx_ev_str(ev, "enhanced_meaning", em);
    cause[0] = '\0';
    struct mx_diag_verdict v = { MX_CAUSE_NONE, MX_CAUSE_NONE, NULL };
    if (!code && e && e->subject == 4) {
        /* RFC 3463 §3.5: network and routing: no server's reply to diagnose */
        const struct mx_enhanced_info *i = mx_enhanced_lookup(e->subject, e->detail);
        snprintf(cause, sizeof(cause),
                 "The reporting server could not hand the message to the next server for this recipient (%s): "
                 "no reply from a mail server, a connection or routing failure.",
                 i ? i->sample : "network or routing failure");
        v.kind = MX_CAUSE_UNAVAILABLE; /* the next server could not be reached */
    } else {
        /* no reply code in the report: the status's class stands for one */
        int c = code ? code : failed || (e && e->cls == 5) ? 550 : 450;
        struct mx_diag_reply dr = { .step = "RCPT", .code = c, .enhanced = e, .text = text };
        mx_diag_cause_kind(&dr, cause, sizeof(cause), &v);
        static const char retry[] = " It is temporary: the sender retries later.";
        size_t cl = strlen(cause), rl = sizeof(retry) - 1;
        if (failed && cl >= rl && !strcmp(cause + cl - rl, retry))
            cause[cl - rl] = '\0'; /* Action failed: the retries are over */
    }
    size_t cl = strlen(cause);
    if (failed && e && e->cls == 4 && cl)
        snprintf(cause + cl, sizeof(cause) - cl, "%s",
                 " The failure was temporary, but the reporting server gave up retrying (Action: failed, "
                 "RFC 3464 §2.3.3): the message's time in its queue ran out.");
    if (!cause[0])
        return;
    mx_ev_wire(ev, "cause", mx_slice_make(cause, strlen(cause)));
    if (v.kind != MX_CAUSE_NONE)
        mx_ev_str(ev, "cause_kind", mx_cause_kind_name(v.kind));
    if (v.code_kind != MX_CAUSE_NONE)
        mx_ev_str(ev, "cause_kind_code", mx_cause_kind_name(v.code_kind));
}

void mx_dsn_emit(const struct mx_dsn *d, struct mx_event *ev)
{
    if (!d || (!d->report_begun && !d->returned.seen))
        return;
    mx_ev_obj(ev, "delivery_status");
    if (d->report_begun)
        mx_ev_str(ev, "path", d->path);
    if (d->global)
        mx_ev_bool(ev, "global", true);
    for (int k = 0; k < P__N; k++)
        if (d->msg[k].seen)
            emit_text(ev, msg_keys[k], msg_type_keys[k], &d->msg[k]);
    if (d->returned.seen) {
        mx_ev_wire_cut3(ev, "original_message_id", "original_message_id_len", "original_message_id_truncated",
                        text_of(&d->returned), d->returned.wire);
        mx_ev_wire(ev, "returned", mx_slice_make(d->returned_type, strlen(d->returned_type)));
    }
    mx_ev_uint(ev, "failed", d->failed);
    mx_ev_uint(ev, "delayed", d->delayed);
    mx_ev_arr(ev, "recipients");
    for (uint32_t i = 0; i < d->n_rcpt; i++) {
        const struct rcpt *r = &d->rcpts[i];
        mx_ev_obj(ev, NULL);
        for (int k = 0; k < R__N; k++)
            if (r->f[k].seen)
                emit_text(ev, rcpt_keys[k], rcpt_type_keys[k], &r->f[k]);
        bool failed = action_is(r, "failed");
        if (failed || action_is(r, "delayed"))
            emit_diagnosis(ev, r, failed);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    if (d->dropped)
        mx_ev_uint(ev, "recipients_not_listed", d->dropped);
    mx_ev_end(ev);
}
