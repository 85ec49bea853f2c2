/* pop3.c - POP3 (RFC 1939) with CAPA and extended response codes (RFC 2449,
 * RFC 3206), SASL AUTH (RFC 5034), STLS (RFC 2595): commands, responses linked
 * to their commands, logins, listings and the messages RETR and TOP carry. */
#include "dissectors/pop3/pop3.h"
#include "dissectors/mail/teach.h"

#include "event/event.h"
#include "core/buf.h"
#include "dissectors/mail/session.h"
#include "dissectors/message/message.h"
#include "dissectors/smtp/diagnosis.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Caps (STYLE.md rule 4). */
#define POP3_MAX_CMD_LINE 16384 /* RFC 2449 §4 says 255; RFC 5034 §4 lets SASL lines be longer */
#define POP3_MAX_RESP_LINE 4096 /* RFC 2449 §4 says 512 for the first line */
#define POP3_MAX_PENDING 256    /* commands awaiting a response (RFC 2449 §6.6 PIPELINING) */
#define POP3_CAPS_BYTES 2048    /* CAPA lines kept (each entry costs 2 more bytes) */
#define POP3_MECHS_BYTES 1024   /* SASL mechanisms kept */
#define POP3_MAX_LISTING 1000   /* LIST/UIDL entries written per response; more are counted */
#define POP3_MAX_FAILURES 32    /* -ERR responses listed in the session record */

/* Anomalies: stable names, in the order of this list (the flow record's). */
#define POP3_ANOMALIES(X)                                                                                  \
    X(LONG_COMMAND_LINE, "a command line longer than the cap")                                             \
    X(LONG_RESPONSE_LINE, "a response line longer than the cap")                                           \
    X(INVALID_RESPONSE_LINE, "a server line that is neither +OK, -ERR nor a continuation (RFC 1939 §3)")   \
    X(UNMATCHED_RESPONSE, "a response with no command waiting for it")                                     \
    X(TOO_MANY_PENDING_COMMANDS, "more commands awaiting responses than the cap")                          \
    X(UNKNOWN_COMMAND, "a command POP3 and its extensions do not define")                                  \
    X(BARE_LF, "a line ended by LF without CR (RFC 1939 §3)")                                              \
    X(COMMAND_OUT_OF_SEQUENCE, "a command the session state does not allow (PASS without USER)")           \
    X(RESPONSE_INCOMPLETE, "a multi-line response that never got its terminating \".\" (RFC 1939 §3)")     \
    X(STARTTLS_CLIENT_INJECTION, "cleartext commands after STLS, before the TLS handshake (RFC 2595 §4)")  \
    X(STARTTLS_SERVER_INJECTION, "cleartext from the server after its +OK to STLS, before the handshake")  \
    X(NO_TLS_AFTER_STARTTLS,                                                                               \
      "after the go-ahead to STLS the client went on in clear, not with a TLS ClientHello: a capture "     \
      "decrypted by a TLS-terminating proxy or exported, or a downgrade; the dialogue is read in clear")   \
    X(AUTH_DECODE_ERROR, "a SASL message that is not valid base64 or the mechanism's syntax")              \
    X(PARTIAL_AFTER_GAP, "bytes were lost inside a response; what follows was resynchronised")             \
    X(COMMAND_SPACING, "a command split by other whitespace than one SP (RFC 1939 §3), or after leading " \
                       "whitespace: read as servers that split on any whitespace read it")                 \
    X(GREETING_MISSING, "the server answered a command without having sent its greeting (RFC 1939 §4)")    \
    X(CLIENT_SPOKE_FIRST, "the client sent commands before the server's greeting (RFC 1939 §4)")

enum { POP3_ANOMALIES(MX_ANOMALY_ENUM) };

static const struct mx_anomaly_def pop3_anomalies[] = { POP3_ANOMALIES(MX_ANOMALY_DEF) };

static struct mx_parse_result pop3_read(void *state, enum mx_dir d, struct mx_slice data, unsigned flags);
static void pop3_gap(void *state, enum mx_dir d, uint64_t len);
static void pop3_inside_tls(void *state, enum mx_dir d);
static void pop3_end(void *state, enum mx_dir d);

/* What the shared session layer needs to know of POP3. */
const struct mx_mail_proto mx_pop3_mail = {
    .command_type = "pop3.command",
    .command_key = "verb",
    .auth_data_type = "pop3.auth_data",
    .unknown_explain = "A command POP3 does not define: the server will likely answer -ERR.",
    .upgrade = "STLS",
    .an = MX_MAIL_ANOMALY_MAP(A_),
    .read = pop3_read,
    .gap = pop3_gap,
    .end = pop3_end,
    .inside_tls = pop3_inside_tls,
};

enum cmd {
    P_UNKNOWN,
    P_USER,
    P_PASS,
    P_APOP,
    P_AUTH,
    P_CAPA,
    P_STAT,
    P_LIST,
    P_UIDL,
    P_RETR,
    P_TOP,
    P_DELE,
    P_RSET,
    P_NOOP,
    P_QUIT,
    P_STLS,
    P_UTF8,
    P_LANG,
    /* Pseudo-commands that a response answers too. */
    P_CONNECT,
    P_AUTH_DATA,
    P__COUNT,
};

struct pop3;
struct pending;
struct command;

/* One command (RFC 1939 and its extensions): what sending it does, and
 * what the response to it does. The table, cmds[], follows the handlers. */
struct cmd_def {
    const char *name; /* as sent, upper case; a pseudo-command's is in parentheses */
    /* Sending it, before its record (NULL: nothing). */
    void (*sent)(struct pop3 *s, struct command *c);
    /* The first line of a +OK response, its text after the status (NULL: nothing). */
    void (*ok)(struct pop3 *s, const struct pending *p, struct mx_slice text);
    /* A line of its multi-line response, dot-unstuffed (NULL: nothing). */
    void (*line)(struct pop3 *s, struct mx_slice l);
    /* The whole response, +OK or -ERR, with its last frame (NULL: nothing). */
    void (*done)(struct pop3 *s, const struct pending *p, mx_frame_t last);
    const char *explain; /* --explain: what it asks for; NULL: the text for unknown commands */
};

static const struct cmd_def cmds[P__COUNT];

/* Server modes. */
enum smode {
    S_STATUS, /* a status line: +OK, -ERR, or "+ " (RFC 5034 §4) */
    S_LINES,  /* the lines of a multi-line response (CAPA, LIST, UIDL, AUTH, LANG) */
    S_BODY,   /* a message (RETR, TOP), dot-stuffed, to the message parser */
    S_SKIP,   /* the rest of an over-long line */
    S_RESYNC, /* midstream or after lost bytes: lines until a status line */
    S_TLS,
};

struct pending {
    enum cmd cmd;
    mx_frame_t frame;
    mx_time_t ts;
    uint32_t num;   /* RETR, TOP, DELE, LIST, UIDL: the message number; 0 for none */
    uint32_t lines; /* TOP: body lines asked for */
    bool multi;     /* a +OK opens a multi-line response */
};

struct listing {
    uint32_t num;
    uint64_t size;
    struct mx_text uid;
};

struct failure {
    enum cmd cmd;
    struct mx_text text;
    struct mx_text resp_code;
    mx_frame_t frame;
};

/* RFC 1939 §3: the session's states, for teaching. */
enum pstate { PS_AUTHORIZATION, PS_TRANSACTION, PS_UPDATE };
static const char *const pstate_names[] = { "AUTHORIZATION", "TRANSACTION", "UPDATE" };

struct pop3 {
    struct mx_mail m; /* what every mail session has */
    enum pstate state;
    enum smode smode, skip_to;
    bool ctls;     /* the client side is TLS */
    bool cskip;    /* discarding the rest of an over-long command line */
    bool c_resync; /* after lost client bytes: lines until a known command */
    bool tls, stls_pending, stls_offered, stls_attempted;
    bool client_held;   /* client bytes wait for the response to STLS */
    bool quiet;         /* midstream or after lost bytes: unmatched responses are expected */
    bool auth_continue; /* "+ " asks for the client's next SASL message */
    bool server_gap;    /* the server's multi-line response lost bytes */
    bool server_seen;   /* a server byte was parsed */
    bool client_first;  /* the client spoke before any server byte */
    bool ended[2];
    struct mx_mail_queue q; /* commands waiting for responses, oldest first */
    struct pending pend[POP3_MAX_PENDING];
    /* The response being assembled. */
    struct {
        bool active;
        struct pending cmd; /* what it answers (P_UNKNOWN with have false) */
        bool have;
        bool ok;     /* +OK (else -ERR) */
        bool closes; /* an -ERR no command waits for: the server ends the session */
        struct mx_text text, resp_code;
        uint32_t lines;
        uint64_t off;
        mx_frame_t first_frame;
        mx_time_t ts;
        uint64_t declared;     /* "+OK 291 octets" */
        mx_frame_t seen_frame; /* the frame of its last byte parsed so far */
        mx_frame_t end_frame;  /* when set, its last frame (it ended in lost bytes) */
        bool body_bol;
        struct mx_message *msg;
        struct mx_buf list; /* struct listing, at most POP3_MAX_LISTING */
        uint32_t list_dropped;
        uint64_t stat_count, stat_octets;
        bool stat;
    } rep;
    /* The session. */
    bool greeted, greet_ok, apop_timestamp;
    struct mx_text greeting;
    struct mx_caps caps;  /* CAPA lines (RFC 2449 §5) */
    struct mx_caps mechs; /* SASL mechanisms: CAPA's SASL line, or the AUTH listing */
    struct mx_text user;  /* the USER argument awaiting PASS */
    bool user_sent;
    struct failure failures[POP3_MAX_FAILURES];
    unsigned n_failures;
    uint64_t responses, errors, retrieved, tops, deleted;
    uint64_t resync_skipped;
};

/* mx_mail_parse finds the session layer at the start of the state. */
_Static_assert(offsetof(struct pop3, m) == 0, "struct mx_mail begins struct pop3");

/* ---- Small helpers ---- */

static void anomaly(struct pop3 *s, enum mx_dir d, int a, uint64_t off, size_t len)
{
    mx_ctx_anomaly(s->m.ctx, d, (size_t)a, off, len);
}

/* A decimal number of at most 10 digits at the start of v; *used its length. */
static bool number(struct mx_slice v, uint64_t *out, size_t *used)
{
    uint64_t n = 0;
    size_t i = 0;
    while (i < v.len && i < 10 && v.ptr[i] >= '0' && v.ptr[i] <= '9')
        n = n * 10 + (uint64_t)(v.ptr[i++] - '0');
    *out = n;
    if (used)
        *used = i;
    return i > 0 && (i == v.len || v.ptr[i] == ' ' || v.ptr[i] == '\t');
}

/* ---- Pending commands: responses come in command order (RFC 2449 §6.6) ---- */

static void push(struct pop3 *s, const struct pending *p, uint64_t off, size_t len)
{
    mx_mail_queue_push(&s->m, &s->q, p, off, len);
}

/* The command waiting longest (s->q.n > 0). */
static struct pending *head(const struct pop3 *s)
{
    return mx_mail_queue_head(&s->q);
}

/* ---- Logins ---- */

/* The login in progress ended: its record (RFC 1939 §7, RFC 5034 §4). */
static void login_finish(struct pop3 *s, enum mx_login_outcome o, mx_frame_t f)
{
    s->auth_continue = false;
    struct mx_mail_login *l = mx_mail_login_finish(&s->m, o, f);
    if (!l)
        return;
    if (s->rep.active)
        l->resp_code = s->rep.resp_code;
    const char *outcome = mx_login_outcome_name(o);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "pop3.auth", s->m.now);
    mx_sasl_describe_identity(&l->sasl, ev);
    mx_ev_str(ev, "outcome", outcome);
    if (l->resp_code.len)
        mx_ev_text_cut(ev, "resp_code", &l->resp_code);
    mx_sasl_describe_secret(&l->sasl, ev, s->tls);
    mx_ev_frames(ev, l->frame, f ? f : l->frame);
    bool good = o == MX_LOGIN_SUCCESS;
    mx_ev_tone(ev, good ? (l->sasl.secret_in_clear && !s->tls ? MX_TONE_WARN : MX_TONE_GOOD) : MX_TONE_BAD);
    mx_ev_text(ev, "%s as \"%.*s\": %s%s", l->sasl.mech_name, (int)l->sasl.user_len, (const char *)l->sasl.user,
               outcome, l->sasl.secret_in_clear && !s->tls ? ", the password crossed in clear" : "");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

/* ---- The server side ---- */

/* RFC 2449 §8: "[" resp-code "]" right after the status. Returns the text after it. */
static struct mx_slice resp_code(struct mx_slice t, struct mx_text *code)
{
    code->len = 0;
    if (!t.len || t.ptr[0] != '[')
        return t;
    const uint8_t *close = memchr(t.ptr, ']', t.len < 64 ? t.len : 64);
    if (!close)
        return t;
    mx_text_set(code, mx_slice_make(t.ptr + 1, (size_t)(close - t.ptr) - 1));
    return mx_trim(mx_slice_make(close + 1, t.len - (size_t)(close + 1 - t.ptr)));
}

/* A CAPA line (RFC 2449 §5). */
static void caps_line(struct pop3 *s, struct mx_slice l)
{
    l = mx_trim(l);
    if (!l.len || !mx_mail_caps_add(&s->m, &s->caps, l))
        return;
    if (mx_ieq(l.ptr, l.len, "STLS"))
        s->stls_offered = true;              /* RFC 2595 §4 */
    if (mx_iprefix(l.ptr, l.len, "SASL ")) { /* RFC 2449 §6.3 */
        mx_caps_clear(&s->mechs);
        mx_mail_caps_add_words(&s->m, &s->mechs, mx_slice_make(l.ptr + 5, l.len - 5));
    }
}

/* A line of a LIST or UIDL listing: "msg size" or "msg unique-id" (RFC 1939 §5, §7). */
static void listing_line(struct pop3 *s, struct mx_slice l, bool uidl)
{
    uint64_t num;
    size_t used;
    if (!number(l, &num, &used) || num > UINT32_MAX)
        return;
    struct mx_slice rest = mx_trim(mx_slice_make(l.ptr + used, l.len - used));
    enum mx_buf_status st;
    struct listing *e = mx_buf_push(&s->rep.list, &st);
    if (st == MX_BUF_CAPPED)
        s->rep.list_dropped++;
    else if (!e)
        mx_ctx_fail(s->m.ctx);
    if (!e)
        return;
    e->num = (uint32_t)num;
    if (uidl) {
        mx_text_set(&e->uid, mx_slice_make(rest.ptr, rest.len < 70 ? rest.len : 70)); /* RFC 1939 §7: 1-70 chars */
        e->uid.wire = mx_text_sat(rest.len, 0);                                       /* a longer one is cut */
    } else
        number(rest, &e->size, NULL);
}

/* RFC 1939 §5, §7: commands valid only in the TRANSACTION state; a +OK to
 * one means the session is there. */
static bool transaction_only(enum cmd c)
{
    return c == P_STAT || c == P_LIST || c == P_UIDL || c == P_RETR || c == P_TOP || c == P_DELE || c == P_RSET;
}

/* The state the server is in when it reads the next command: after the
 * commands still awaiting responses (RFC 2449 §6.6: a pipelined command is
 * read after them), a login among them assumed to succeed. */
static enum pstate state_ahead(const struct pop3 *s)
{
    enum pstate st = s->state;
    for (unsigned i = 0; i < s->q.n; i++) {
        enum cmd c = ((const struct pending *)mx_mail_queue_at(&s->q, i))->cmd;
        if (c == P_PASS || c == P_APOP || c == P_AUTH || c == P_AUTH_DATA)
            st = PS_TRANSACTION;
        else if (c == P_QUIT && st == PS_TRANSACTION)
            st = PS_UPDATE;
    }
    return st;
}

static void response_emit(struct pop3 *s, uint64_t end_off)
{
    mx_frame_t last, dummy;
    mx_time_t ts;
    mx_span(s->m.ctx, MX_DIR_S2C, end_off ? end_off - 1 : 0, 1, &last, &dummy, &ts);
    mx_mail_seen(&s->m, ts);
    if (s->rep.end_frame)
        last = s->rep.end_frame;
    const struct pending *p = &s->rep.cmd;
    struct mx_slice text = mx_text_slice(&s->rep.text);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "pop3.response", s->rep.ts);
    mx_ev_dir(ev, MX_DIR_S2C);
    mx_ev_frames(ev, s->rep.first_frame, last);
    mx_ev_str(ev, "status", s->rep.ok ? "+OK" : "-ERR");
    if (s->rep.resp_code.len)
        mx_ev_text_cut(ev, "resp_code", &s->rep.resp_code);
    mx_ev_text_cut(ev, "text", &s->rep.text);
    if (p->multi && s->rep.ok)
        mx_ev_uint(ev, "lines", s->rep.lines);
    double lat = 0;
    if (s->rep.have) {
        mx_ev_obj(ev, "answers");
        mx_ev_str(ev, "command", cmds[p->cmd].name);
        if (p->frame)
            mx_ev_uint(ev, "frame", p->frame);
        mx_ev_end(ev);
        lat = mx_time_secs(p->ts, s->rep.ts);
        mx_ev_double(ev, "latency", lat);
        mx_mail_reply_times(&s->m, ev, p->ts, s->rep.ts, ts);
    }
    if (s->rep.stat) {
        mx_ev_uint(ev, "messages", s->rep.stat_count);
        mx_ev_uint(ev, "octets", s->rep.stat_octets);
    }
    if (s->rep.list.n || (s->rep.ok && (p->cmd == P_LIST || p->cmd == P_UIDL))) {
        mx_ev_arr(ev, "listing");
        for (size_t i = 0; i < s->rep.list.n; i++) {
            const struct listing *e = mx_buf_at(&s->rep.list, i);
            mx_ev_obj(ev, NULL);
            mx_ev_uint(ev, "msg", e->num);
            if (p->cmd == P_UIDL)
                mx_ev_text_cut(ev, "uid", &e->uid);
            else
                mx_ev_uint(ev, "size", e->size);
            mx_ev_end(ev);
        }
        mx_ev_end(ev);
        if (s->rep.list_dropped)
            mx_ev_uint(ev, "listing_not_shown", s->rep.list_dropped);
    }
    if (s->rep.ok && p->cmd == P_CAPA)
        mx_mail_describe_caps(ev, "capabilities", &s->caps);
    if (p->cmd == P_RETR || p->cmd == P_TOP) {
        mx_ev_uint(ev, "msg", p->num);
        if (p->cmd == P_TOP)
            mx_ev_uint(ev, "top_lines", p->lines);
        if (s->rep.declared)
            mx_ev_uint(ev, "declared_size", s->rep.declared);
        if (s->rep.msg)
            mx_message_describe(s->rep.msg, ev, "message");
    }
    if (s->rep.have && s->rep.ok) {
        /* RFC 1939 §4, §6: a login moves to TRANSACTION, QUIT there to UPDATE. */
        if (p->cmd == P_PASS || p->cmd == P_APOP || p->cmd == P_AUTH_DATA || (p->cmd == P_AUTH && !p->multi))
            s->state = PS_TRANSACTION;
        else if (p->cmd == P_QUIT && s->state == PS_TRANSACTION)
            s->state = PS_UPDATE;
        else if (s->state == PS_AUTHORIZATION && transaction_only(p->cmd))
            s->state = PS_TRANSACTION; /* the login was not seen (midstream, lost bytes) but took place */
    }
    if (mx_ctx_flow(s->m.ctx)->explain) {
        char ex[256], note[160] = "";
        if (!s->rep.ok) /* the words of the -ERR (RFC 2449 §8 response codes among them) */
            mx_diag_words_note(text, note, sizeof(note));
        snprintf(ex, sizeof(ex), "%s%s",
                 s->rep.ok ? "+OK: the command succeeded (RFC 1939 §3)."
                           : "-ERR: the command failed; the text says why (RFC 1939 §3).",
                 note);
        mx_ev_wire(ev, "explain", mx_slice_make(ex, strlen(ex))); /* it may quote wire bytes */
        mx_ev_str(ev, "state", pstate_names[s->state]);
        if (s->rep.ok && p->cmd == P_CAPA)
            mx_teach_caps(ev, MX_TEACH_POP3, &s->caps);
    }
    const char *status = s->rep.ok ? "+OK" : "-ERR";
    mx_ev_tone(ev, s->rep.ok ? MX_TONE_GOOD : MX_TONE_BAD);
    char extra[64] = "", note[80];
    if (p->multi && s->rep.ok)
        snprintf(extra, sizeof(extra), " (+ %" PRIu32 " line%s)", s->rep.lines, s->rep.lines == 1 ? "" : "s");
    if (s->rep.closes) {
        mx_mail_close_fields(ev, 0);
        mx_mail_server_closed(&s->m, "-ERR", mx_text_slice(&s->rep.resp_code), text, NULL, 0, s->rep.first_frame, last,
                              s->rep.ts);
    }
    if (s->rep.have)
        mx_ev_text(ev, "%s%s%.*s%s%s%.*s%s   [%s, %.1f ms]", status, s->rep.resp_code.len ? " [" : "",
                   (int)s->rep.resp_code.len, (const char *)s->rep.resp_code.b, s->rep.resp_code.len ? "]" : "",
                   text.len ? " " : "", (int)text.len, (const char *)text.ptr, extra, cmds[p->cmd].name, lat * 1e3);
    else
        mx_ev_text(ev, "%s %.*s%s   [%s]", status, (int)text.len, (const char *)text.ptr, extra,
                   s->rep.closes ? mx_mail_close_note(0, note, sizeof(note)) : "no command seen");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

/* The response is complete: its record, then what it means for the session. */
static void response_done(struct pop3 *s, uint64_t end_off)
{
    const struct pending *p = &s->rep.cmd;
    mx_frame_t last, dummy;
    mx_span(s->m.ctx, MX_DIR_S2C, end_off ? end_off - 1 : 0, 1, &last, &dummy, NULL);
    if (s->rep.msg) {
        mx_message_end(s->rep.msg);
        if (s->rep.ok && p->cmd == P_TOP)
            s->tops++;
        else if (s->rep.ok)
            s->retrieved++;
    }
    response_emit(s, end_off);
    s->responses++;
    if (!s->rep.ok) {
        s->errors++;
        if (s->n_failures < POP3_MAX_FAILURES && !s->rep.closes) { /* that one is the session's server_closed */
            struct failure *f = &s->failures[s->n_failures++];
            f->cmd = s->rep.have ? p->cmd : P_UNKNOWN;
            f->text = s->rep.text;
            f->resp_code = s->rep.resp_code;
            f->frame = s->rep.first_frame;
        }
    }
    if (s->rep.have && cmds[p->cmd].done)
        cmds[p->cmd].done(s, p, last);
    mx_message_free(s->rep.msg);
    mx_buf_free(&s->rep.list);
    memset(&s->rep, 0, sizeof(s->rep));
    if (s->smode == S_LINES || s->smode == S_BODY)
        s->smode = S_STATUS;
}

/* A "+ " continuation (RFC 5034 §4): the server's SASL challenge. */
static void continuation(struct pop3 *s, struct mx_slice b64, uint64_t off, size_t raw)
{
    mx_frame_t a, b;
    mx_time_t ts;
    mx_span(s->m.ctx, MX_DIR_S2C, off, raw, &a, &b, &ts);
    mx_mail_seen(&s->m, ts);
    struct pending p = { P_UNKNOWN, 0, 0, 0, 0, false };
    bool have = s->q.n && (head(s)->cmd == P_AUTH || head(s)->cmd == P_AUTH_DATA);
    if (have)
        mx_mail_queue_pop(&s->q, &p);
    else if (!s->quiet)
        anomaly(s, MX_DIR_S2C, A_UNMATCHED_RESPONSE, off, raw);
    s->responses++;
    if (s->m.login)
        mx_mail_sasl_server(&s->m, &s->m.login->sasl, b64, off, raw);
    s->auth_continue = true;
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "pop3.response", ts);
    mx_ev_dir(ev, MX_DIR_S2C);
    mx_ev_frames(ev, a, b);
    mx_ev_str(ev, "status", "+");
    mx_ev_wire(ev, "text", b64);
    if (have) {
        mx_ev_obj(ev, "answers");
        mx_ev_str(ev, "command", cmds[p.cmd].name);
        if (p.frame)
            mx_ev_uint(ev, "frame", p.frame);
        mx_ev_end(ev);
        mx_ev_double(ev, "latency", mx_time_secs(p.ts, ts));
        mx_mail_reply_times(&s->m, ev, p.ts, ts, ts);
    }
    if (mx_ctx_flow(s->m.ctx)->explain) {
        mx_ev_str(ev, "explain",
                  "+: the server's SASL challenge, in base64; the client answers with one base64 line, or * to "
                  "cancel (RFC 5034 §4).");
        mx_ev_str(ev, "state", pstate_names[s->state]);
        mx_teach_challenge_lines(ev, b64);
    }
    mx_ev_text(ev, "+ %.*s   [SASL challenge]", (int)b64.len, (const char *)b64.ptr);
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

/* A status line (RFC 1939 §3): "+OK" or "-ERR", then text. */
static void status_line(struct pop3 *s, struct mx_slice line, uint64_t off, size_t raw)
{
    bool ok = mx_iprefix(line.ptr, line.len, "+OK") && (line.len == 3 || line.ptr[3] == ' ');
    bool err = mx_iprefix(line.ptr, line.len, "-ERR") && (line.len == 4 || line.ptr[4] == ' ');
    bool cont = line.len >= 1 && line.ptr[0] == '+' && (line.len == 1 || line.ptr[1] == ' ') &&
                (s->m.login || (s->q.n && (head(s)->cmd == P_AUTH || head(s)->cmd == P_AUTH_DATA)));
    if (!ok && !err && !cont) {
        if (s->smode == S_RESYNC)
            s->resync_skipped += raw;
        else
            anomaly(s, MX_DIR_S2C, A_INVALID_RESPONSE_LINE, off, raw);
        return;
    }
    if (s->smode == S_RESYNC)
        s->smode = S_STATUS;
    if (cont) {
        continuation(s, mx_trim(mx_slice_make(line.ptr + 1, line.len - 1)), off, raw);
        return;
    }
    memset(&s->rep, 0, sizeof(s->rep));
    mx_buf_init(&s->rep.list, sizeof(struct listing), 16, POP3_MAX_LISTING);
    s->rep.active = true;
    s->rep.ok = ok;
    s->rep.have = mx_mail_queue_pop(&s->q, &s->rep.cmd);
    /* RFC 1939 §3: a server's autologout timer ends an idle session; its
     * -ERR then answers no command: the server closes the session. */
    s->rep.closes = !s->rep.have && !s->quiet && err;
    if (!s->rep.have && !s->quiet && !s->rep.closes)
        anomaly(s, MX_DIR_S2C, A_UNMATCHED_RESPONSE, off, raw);
    s->rep.off = off;
    struct mx_frame_ref fr = mx_ctx_frame_at(s->m.ctx, MX_DIR_S2C, off);
    s->rep.first_frame = fr.frame;
    s->rep.ts = fr.ts;
    mx_mail_seen(&s->m, fr.ts);
    size_t skip = ok ? 3 : 4;
    struct mx_slice t = mx_trim(mx_slice_make(line.ptr + skip, line.len - skip));
    mx_text_set(&s->rep.text, resp_code(t, &s->rep.resp_code));
    t = mx_text_slice(&s->rep.text);
    const struct pending *p = &s->rep.cmd;
    if (ok && s->rep.have && cmds[p->cmd].ok)
        cmds[p->cmd].ok(s, p, t);
    if (!ok || !s->rep.have || !p->multi) {
        bool lost = !s->rep.have && s->quiet;
        response_done(s, off + raw);
        if (lost)
            s->smode = S_RESYNC; /* its data lines, if any, answer a command not seen */
        return;
    }
    s->rep.body_bol = true;
    if (p->cmd == P_RETR || p->cmd == P_TOP) {
        struct mx_message_env env = { .ctx = s->m.ctx,
                                      .dir = MX_DIR_S2C,
                                      .source = p->cmd == P_RETR ? "pop3.retr" : "pop3.top" };
        env.number = p->num;
        env.fragment = p->cmd == P_TOP;
        s->rep.msg = mx_message_new(&env);
        if (!s->rep.msg)
            mx_ctx_fail(s->m.ctx);
        s->smode = S_BODY;
    } else {
        s->smode = S_LINES;
    }
}

/* A line of a multi-line response other than a message, dot-unstuffed. */
static void data_line(struct pop3 *s, struct mx_slice l)
{
    s->rep.lines++;
    if (cmds[s->rep.cmd.cmd].line)
        cmds[s->rep.cmd.cmd].line(s, l);
}

/* Message bytes of RETR or TOP until "." CRLF. Returns the bytes consumed; 0
 * when more are needed. */
static size_t body_bytes(struct pop3 *s, struct mx_slice d, uint64_t off, bool end)
{
    if (s->rep.body_bol && s->server_gap && s->q.n && d.ptr[0] != '.') {
        /* After a gap, a status line while the client already waits for
         * the next response means the end of this one was lost. */
        const uint8_t *lf = memchr(d.ptr, '\n', d.len);
        if (!lf && !end && d.len < 5)
            return 0;
        if (mx_iprefix(d.ptr, d.len, "+OK") || mx_iprefix(d.ptr, d.len, "-ERR")) {
            anomaly(s, MX_DIR_S2C, A_PARTIAL_AFTER_GAP, off, 1);
            s->server_gap = false;
            s->rep.end_frame = s->rep.seen_frame; /* its frames end where its bytes did */
            response_done(s, off);
            return 0;
        }
    }
    size_t n;
    struct mx_slice bytes;
    /* after a gap every line start is looked at (above): one line a step */
    bool one = s->server_gap && s->q.n;
    switch (one ? mx_dot_step(&s->rep.body_bol, d, end, &n, &bytes)
                : mx_dot_run(&s->rep.body_bol, d, end, &n, &bytes)) {
    case MX_DOT_MORE:
        return 0;
    case MX_DOT_END:
    case MX_DOT_END_BARE_LF:
        s->server_gap = false;
        response_done(s, off + n);
        return n;
    case MX_DOT_DATA:
        break;
    }
    if (bytes.len) {
        mx_message_feed(s->rep.msg, bytes, off);
        for (const uint8_t *p = bytes.ptr, *e = bytes.ptr + bytes.len; (p = memchr(p, '\n', (size_t)(e - p))) != NULL;)
            if (++s->rep.lines, ++p == e)
                break;
    }
    return n;
}

static bool is_status(struct mx_slice l)
{
    return (mx_iprefix(l.ptr, l.len, "+OK") && (l.len == 3 || l.ptr[3] == ' ' || l.ptr[3] == '\r')) ||
           (mx_iprefix(l.ptr, l.len, "-ERR") && (l.len == 4 || l.ptr[4] == ' ' || l.ptr[4] == '\r')) ||
           (l.len >= 1 && l.ptr[0] == '+' && (l.len == 1 || l.ptr[1] == ' ' || l.ptr[1] == '\r'));
}

/* The client spoke before the server's first byte: the first +OK is the
 * greeting, unless lines that are not status lines follow it while the
 * client waits for a multi-line response; then the server sent no greeting
 * (or the capture lost it) and the +OK answers the command. Returns false
 * when the next line is needed to decide. */
static bool no_greeting(struct pop3 *s, struct mx_slice line, struct mx_slice rest, size_t raw, uint64_t off, bool end)
{
    if (s->q.n < 2 || head(s)->cmd != P_CONNECT || !((const struct pending *)mx_mail_queue_at(&s->q, 1))->multi ||
        !mx_iprefix(line.ptr, line.len, "+OK")) {
        s->client_first = false;
        return true;
    }
    struct mx_slice next = mx_slice_make(rest.ptr + raw, rest.len - raw);
    if (!memchr(next.ptr, '\n', next.len) && next.len < 5 && !end)
        return false;
    s->client_first = false;
    if (next.len && !is_status(next)) {
        struct pending p;
        mx_mail_queue_pop(&s->q, &p);
        anomaly(s, MX_DIR_S2C, A_GREETING_MISSING, off, raw);
    }
    return true;
}

static struct mx_parse_result server_bytes(struct pop3 *s, struct mx_slice d, bool end)
{
    if (d.len)
        s->server_seen = true;
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    uint64_t base = mx_ctx_offset(s->m.ctx, MX_DIR_S2C);
    size_t pos = 0;
    while (pos < d.len) {
        struct mx_slice rest = mx_slice_make(d.ptr + pos, d.len - pos);
        if (s->smode == S_TLS)
            break; /* the rest is TLS: the host's */
        if (s->smode == S_BODY) {
            size_t n = body_bytes(s, rest, base + pos, end);
            if (!n && s->smode == S_BODY) {
                r.needed = 1;
                break;
            }
            pos += n;
            continue;
        }
        if (s->smode == S_SKIP) {
            bool lf;
            pos += mx_line_skip(rest, &lf);
            if (lf)
                s->smode = s->skip_to;
            continue;
        }
        struct mx_line l;
        enum mx_line_status ls = mx_line_next(rest, POP3_MAX_RESP_LINE, end, &l);
        if (ls == MX_LINE_MORE)
            break; /* wait for the rest of the line */
        size_t raw = l.raw;
        if (ls == MX_LINE_TOO_LONG) {
            /* its frames: where it starts, where it crosses the cap */
            anomaly(s, MX_DIR_S2C, A_LONG_RESPONSE_LINE, base + pos, POP3_MAX_RESP_LINE + 1);
            if (!l.lf) {
                s->skip_to = s->smode;
                s->smode = S_SKIP;
            }
        }
        struct mx_slice line = l.text; /* the start of an over-long line still counts */
        if (s->client_first && s->smode == S_STATUS && !no_greeting(s, line, rest, raw, base + pos, end))
            break; /* the line after this one decides */
        if (s->smode == S_LINES && s->q.n &&
            (mx_iprefix(line.ptr, line.len, "+OK") || mx_iprefix(line.ptr, line.len, "-ERR"))) {
            /* No listing line starts so, and a later command waits: the
             * "." of this response never came (RFC 1939 §3). */
            anomaly(s, MX_DIR_S2C, A_RESPONSE_INCOMPLETE, base + pos, raw);
            response_done(s, base + pos);
        }
        if (s->smode == S_LINES) {
            if (line.len == 1 && line.ptr[0] == '.') {
                response_done(s, base + pos + raw);
            } else {
                if (line.len && line.ptr[0] == '.')
                    line = mx_slice_make(line.ptr + 1, line.len - 1); /* RFC 1939 §3 */
                data_line(s, line);
            }
        } else {
            status_line(s, line, base + pos, raw);
        }
        pos += raw;
    }
    if (s->smode == S_BODY && pos) /* once per call: where the message's bytes stand, should a gap end it */
        s->rep.seen_frame = mx_ctx_frame_at(s->m.ctx, MX_DIR_S2C, base + pos - 1).frame;
    r.consumed = pos;
    return r;
}

/* ---- The client side ---- */

/* A command line, as its handler sees it, and what the handler decides. */
struct command {
    enum cmd cmd;
    struct mx_slice verb, arg, targ; /* the verb as sent, what follows its space, and that trimmed */
    uint64_t off;                    /* the line's stream offset */
    size_t raw;                      /* its bytes, line end included */
    mx_frame_t a, b;
    mx_time_t ts;
    uint64_t n1; /* the number the argument starts with */
    size_t used; /* its digits */
    bool has_num;
    struct pending p;  /* what waits for the response */
    const char *shown; /* the argument as shown, when it holds a secret */
    char shown_buf[96];
    size_t redacted_len; /* not 0: the line may be a secret (mx_mail_line_maybe_secret) */
    bool odd_spacing;    /* split by other whitespace than one SP (COMMAND_SPACING) */
};

/* ---- What each command does (RFC 1939 §5-§7, RFC 2449, RFC 5034, RFC 2595) ---- */

static void sent_user(struct pop3 *s, struct command *c)
{
    mx_text_set(&s->user, c->targ);
    s->user_sent = true;
}

/* RFC 1939 §7: the password itself, in the clear unless under TLS. */
static void sent_pass(struct pop3 *s, struct command *c)
{
    if (!s->user_sent)
        anomaly(s, MX_DIR_C2S, A_COMMAND_OUT_OF_SEQUENCE, c->off, c->raw);
    struct mx_mail_login *l = mx_mail_login_start(&s->m, mx_slice_make("USER/PASS", 9), c->a, c->ts);
    if (l) {
        if (s->user_sent) {
            mx_sasl_set_user(&l->sasl, mx_text_slice(&s->user));
            l->sasl.user_wire = s->user.wire; /* its real length */
        }
        mx_sasl_set_secret(&l->sasl, c->arg, true);
        l->sasl.secret_frame = c->a; /* the PASS line */
    }
    if (!mx_ctx_flow(s->m.ctx)->show_secrets) {
        snprintf(c->shown_buf, sizeof(c->shown_buf), "<redacted %zu bytes>", c->arg.len);
        c->shown = c->shown_buf;
    }
    s->user_sent = false;
}

/* RFC 1939 §7: "APOP name digest", MD5 of the timestamp and the password;
 * never cracked here, but an offline attack can. */
static void sent_apop(struct pop3 *s, struct command *c)
{
    struct mx_slice name, digest;
    c->odd_spacing |= mx_split_command(c->targ, &name, &digest);
    digest = mx_trim_cmd(digest);
    struct mx_mail_login *l = mx_mail_login_start(&s->m, mx_slice_make("APOP", 4), c->a, c->ts);
    if (l) {
        mx_sasl_set_user(&l->sasl, name);
        mx_sasl_set_secret(&l->sasl, digest, false);
    }
    if (!mx_ctx_flow(s->m.ctx)->show_secrets) {
        snprintf(c->shown_buf, sizeof(c->shown_buf), "%.*s <redacted %zu bytes>", (int)(name.len < 64 ? name.len : 64),
                 (const char *)name.ptr, digest.len);
        c->shown = c->shown_buf;
    }
}

/* RFC 5034 §4: AUTH mechanism [initial-response]; AUTH alone lists the mechanisms. */
static void sent_auth(struct pop3 *s, struct command *c)
{
    struct mx_slice mech, ir;
    c->odd_spacing |= mx_split_command(c->targ, &mech, &ir);
    if (!mech.len) {
        c->p.multi = true;
        mx_caps_clear(&s->mechs);
        return;
    }
    struct mx_mail_login *l = mx_mail_login_start(&s->m, mech, c->a, c->ts);
    if (!l)
        return;
    ir = mx_trim_cmd(ir);
    if (ir.len) {
        bool secret = mx_mail_sasl_client(&s->m, &l->sasl, ir, c->off, c->raw);
        if (secret && !mx_ctx_flow(s->m.ctx)->show_secrets) {
            snprintf(c->shown_buf, sizeof(c->shown_buf), "%.*s <redacted %zu bytes>",
                     (int)(mech.len < 32 ? mech.len : 32), (const char *)mech.ptr, ir.len);
            c->shown = c->shown_buf;
        }
    }
}

static void sent_capa(struct pop3 *s, struct command *c)
{
    (void)s;
    c->p.multi = true; /* RFC 2449 §5 */
}

static void sent_listing(struct pop3 *s, struct command *c)
{
    (void)s;
    c->p.multi = !c->targ.len; /* RFC 1939 §5, §7: with an argument, one line */
    c->p.num = c->has_num ? (uint32_t)c->n1 : 0;
}

static void sent_retr(struct pop3 *s, struct command *c)
{
    (void)s;
    c->p.num = c->has_num ? (uint32_t)c->n1 : 0;
    c->p.multi = c->cmd == P_RETR;
}

/* RFC 1939 §7: TOP msg n */
static void sent_top(struct pop3 *s, struct command *c)
{
    (void)s;
    uint64_t n2;
    c->p.num = c->has_num ? (uint32_t)c->n1 : 0;
    if (c->has_num && number(mx_trim(mx_slice_make(c->targ.ptr + c->used, c->targ.len - c->used)), &n2, NULL))
        c->p.lines = n2 <= UINT32_MAX ? (uint32_t)n2 : UINT32_MAX;
    c->p.multi = true;
}

static void sent_lang(struct pop3 *s, struct command *c)
{
    (void)s;
    c->p.multi = !c->targ.len; /* RFC 6856 §3: LANG alone lists the languages */
}

static void sent_stls(struct pop3 *s, struct command *c)
{
    (void)c;
    s->stls_attempted = true;
    s->stls_pending = true;
}

static void sent_unknown(struct pop3 *s, struct command *c)
{
    s->m.unknown++;
    anomaly(s, MX_DIR_C2S, A_UNKNOWN_COMMAND, c->off, c->raw);
}

/* RFC 1939 §7: an APOP-capable server's greeting carries a msg-id timestamp. */
static void ok_connect(struct pop3 *s, const struct pending *p, struct mx_slice t)
{
    (void)p;
    const uint8_t *lt = memchr(t.ptr, '<', t.len);
    const uint8_t *at = lt ? memchr(lt, '@', t.len - (size_t)(lt - t.ptr)) : NULL;
    s->apop_timestamp = at && memchr(at, '>', t.len - (size_t)(at - t.ptr));
}

/* RFC 1939 §5: "+OK nn mm" */
static void ok_stat(struct pop3 *s, const struct pending *p, struct mx_slice t)
{
    (void)p;
    uint64_t a, b;
    size_t used;
    if (number(t, &a, &used) && number(mx_trim(mx_slice_make(t.ptr + used, t.len - used)), &b, NULL)) {
        s->rep.stat = true;
        s->rep.stat_count = a;
        s->rep.stat_octets = b;
    }
}

static void ok_listing(struct pop3 *s, const struct pending *p, struct mx_slice t)
{
    if (!p->multi)
        listing_line(s, t, p->cmd == P_UIDL);
}

static void ok_retr(struct pop3 *s, const struct pending *p, struct mx_slice t)
{
    (void)p;
    uint64_t a;
    if (number(t, &a, NULL))
        s->rep.declared = a; /* "+OK 120 octets", a common courtesy */
}

static void ok_capa(struct pop3 *s, const struct pending *p, struct mx_slice t)
{
    (void)p;
    (void)t;
    mx_caps_clear(&s->caps); /* the list comes anew */
}

/* The end of the CAPA listing: the frames that carried it, the auditor's evidence. */
static void done_capa(struct pop3 *s, const struct pending *p, mx_frame_t last)
{
    (void)p;
    if (s->rep.ok)
        mx_caps_frames(&s->caps, s->rep.first_frame, last);
}

static void line_listing(struct pop3 *s, struct mx_slice l)
{
    listing_line(s, l, s->rep.cmd.cmd == P_UIDL);
}

/* The mechanisms the server offers to AUTH alone, one per line. */
static void line_auth(struct pop3 *s, struct mx_slice l)
{
    mx_mail_caps_add_words(&s->m, &s->mechs, l);
}

static void done_connect(struct pop3 *s, const struct pending *p, mx_frame_t last)
{
    (void)p;
    (void)last;
    s->greeted = true;
    s->greet_ok = s->rep.ok;
    s->greeting = s->rep.text;
    mx_mail_greeted(&s->m);
}

static void done_login(struct pop3 *s, const struct pending *p, mx_frame_t last)
{
    (void)p;
    if (s->m.login)
        login_finish(s, mx_mail_login_outcome(s->m.login, s->rep.ok), last);
}

static void done_dele(struct pop3 *s, const struct pending *p, mx_frame_t last)
{
    (void)p;
    (void)last;
    s->deleted += s->rep.ok;
}

static void done_stls(struct pop3 *s, const struct pending *p, mx_frame_t last)
{
    (void)p;
    (void)last;
    s->stls_pending = false;
    if (s->rep.ok) {
        /* RFC 2595 §4: the TLS negotiation begins right after the CRLF; the host observes it. */
        s->tls = true;
        s->smode = S_TLS;
        mx_ctx_starttls(s->m.ctx, MX_DIR_S2C, A_STARTTLS_SERVER_INJECTION);
        if (!s->cskip) {
            s->ctls = true;
            mx_ctx_starttls(s->m.ctx, MX_DIR_C2S, A_STARTTLS_SERVER_INJECTION);
        }
    }
    if (s->client_held)
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
}

static const struct cmd_def cmds[P__COUNT] = {
    [P_UNKNOWN] = { "UNKNOWN", sent_unknown, NULL, NULL, NULL, NULL },
    [P_USER] = { "USER", sent_user, NULL, NULL, NULL,
                 "Names the mailbox to log in to; PASS follows with its password, in clear unless under TLS "
                 "(RFC 1939 §7)." },
    [P_PASS] = { "PASS", sent_pass, NULL, NULL, done_login,
                 "Sends the password for the mailbox USER named (RFC 1939 §7)." },
    [P_APOP] = { "APOP", sent_apop, NULL, NULL, done_login,
                 "Logs in with an MD5 digest of the greeting's timestamp and the password, so the password itself "
                 "does not cross (RFC 1939 §7)." },
    [P_AUTH] = { "AUTH", sent_auth, NULL, line_auth, done_login,
                 "Starts SASL authentication with the named mechanism; '+ ' asks for the next step (RFC 5034)." },
    [P_CAPA] = { "CAPA", sent_capa, ok_capa, caps_line, done_capa,
                 "Asks which extensions the server supports (RFC 2449 §5)." },
    [P_STAT] = { "STAT", NULL, ok_stat, NULL, NULL,
                 "Asks how many messages the mailbox holds and their total size (RFC 1939 §5)." },
    [P_LIST] = { "LIST", sent_listing, ok_listing, line_listing, NULL,
                 "Lists the messages with their sizes, or one message's size (RFC 1939 §5)." },
    [P_UIDL] = { "UIDL", sent_listing, ok_listing, line_listing, NULL,
                 "Lists the messages' unique ids, which stay the same across sessions (RFC 1939 §7)." },
    [P_RETR] = { "RETR", sent_retr, ok_retr, NULL, NULL, "Retrieves a whole message (RFC 1939 §5)." },
    [P_TOP] = { "TOP", sent_top, ok_retr, NULL, NULL,
                "Retrieves a message's header and its first lines (RFC 1939 §7)." },
    [P_DELE] = { "DELE", sent_retr, NULL, NULL, done_dele,
                 "Marks a message for deletion; it goes when the session ends with QUIT (RFC 1939 §5)." },
    [P_RSET] = { "RSET", NULL, NULL, NULL, NULL, "Unmarks every message marked for deletion (RFC 1939 §5)." },
    [P_NOOP] = { "NOOP", NULL, NULL, NULL, NULL, "Does nothing: checks the server is still there (RFC 1939 §5)." },
    [P_QUIT] = { "QUIT", NULL, NULL, NULL, NULL,
                 "Ends the session; messages marked with DELE are deleted now (RFC 1939 §6)." },
    [P_STLS] = { "STLS", sent_stls, NULL, NULL, done_stls, "Asks to switch the connection to TLS (RFC 2595 §4)." },
    [P_UTF8] = { "UTF8", NULL, NULL, NULL, NULL, "Asks the server to use UTF-8 (RFC 6856)." },
    [P_LANG] = { "LANG", sent_lang, NULL, NULL, NULL,
                 "Asks for, or sets, the language of the server's texts (RFC 6856)." },
    [P_CONNECT] = { "(connect)", NULL, ok_connect, NULL, done_connect, NULL },
    [P_AUTH_DATA] = { "(auth data)", NULL, NULL, NULL, done_login, NULL },
};

/* The command of a verb (case-insensitive), P_UNKNOWN for one POP3 does not define. */
static enum cmd cmd_of(struct mx_slice v)
{
    for (int i = P_USER; i <= P_LANG; i++)
        if (mx_ieq(v.ptr, v.len, cmds[i].name))
            return (enum cmd)i;
    return P_UNKNOWN;
}

static void command_event(struct pop3 *s, const struct command *c, bool pipelined, bool injected)
{
    char ex[768];
    const char *explain = cmds[c->cmd].explain;
    enum pstate st = pipelined ? state_ahead(s) : s->state;
    if (st == PS_AUTHORIZATION && s->quiet && transaction_only(c->cmd))
        st = PS_TRANSACTION; /* picked up midstream: the client is logged in */
    if (pipelined && mx_ctx_flow(s->m.ctx)->explain)
        explain = mx_teach_pipelined(ex, sizeof(ex), explain ? explain : mx_pop3_mail.unknown_explain,
                                     s->q.n - (head(s)->cmd == P_CONNECT), /* the greeting is no command */
                                     "RFC 2449 §6.6", "response", "responses");
    struct mx_mail_command r = {
        .first = c->a,
        .last = c->b,
        .ts = c->ts,
        .verb = c->verb,
        .name = c->cmd == P_UNKNOWN ? NULL : cmds[c->cmd].name,
        .arg = c->arg,
        .shown = c->shown,
        .redacted_len = c->redacted_len,
        .pipelined = pipelined,
        .injected = injected,
        .explain = explain,
        .state = pstate_names[st],
    };
    mx_mail_command_record(&s->m, &r);
}

/* A client SASL message after "+ " (RFC 5034 §4). */
static void auth_data(struct pop3 *s, struct mx_slice line, uint64_t off, size_t raw, mx_frame_t a, mx_frame_t b,
                      mx_time_t ts)
{
    s->auth_continue = false;
    bool secret = mx_mail_sasl_client(&s->m, s->m.login ? &s->m.login->sasl : NULL, line, off, raw);
    mx_mail_auth_data_record(&s->m, line, secret, s->m.login && s->m.login->sasl.cancelled, a, b, ts);
    struct pending p = { P_AUTH_DATA, a, ts, 0, 0, false };
    push(s, &p, off, raw);
}

static void client_line(struct pop3 *s, struct mx_slice line, uint64_t off, size_t raw, bool bare_lf)
{
    struct command c = { .off = off, .raw = raw };
    mx_span(s->m.ctx, MX_DIR_C2S, off, raw, &c.a, &c.b, &c.ts);
    mx_mail_seen(&s->m, c.ts);
    mx_mail_client_line(&s->m, line, off, raw);
    if (bare_lf)
        anomaly(s, MX_DIR_C2S, A_BARE_LF, off, raw);
    c.odd_spacing = mx_split_command(line, &c.verb, &c.arg);
    c.cmd = cmd_of(c.verb);
    /* After "+ " the line is a SASL message. While an exchange is open, a
     * base64 line that is no command is one too, even if the "+ " was lost:
     * a password is never shown as a command. */
    struct mx_slice word = mx_trim_cmd(line);
    if (s->m.login && !s->auth_continue && c.cmd == P_UNKNOWN && word.len && mx_is_base64_line(word) &&
        s->m.login->sasl.mech != MX_SASL_UNKNOWN)
        s->auth_continue = true;
    if (s->auth_continue) {
        auth_data(s, word, off, raw, c.a, c.b, c.ts);
        return;
    }
    if (c.cmd == P_UNKNOWN && mx_mail_line_maybe_secret(&s->m, line))
        c.redacted_len = line.len;
    if (s->c_resync) {
        if (c.cmd == P_UNKNOWN) {
            s->resync_skipped += raw; /* the tail of a line cut by the gap */
            return;
        }
        s->c_resync = false;
    }
    if (!s->server_seen && !s->m.commands)
        s->client_first = true;
    bool pipelined = s->q.n > 1 || (s->q.n == 1 && head(s)->cmd != P_CONNECT);
    bool injected = s->stls_pending;
    if (injected)
        anomaly(s, MX_DIR_C2S, A_STARTTLS_CLIENT_INJECTION, off, raw);
    s->m.commands++;
    s->m.pipelined += pipelined;
    c.p = (struct pending){ .cmd = c.cmd, .frame = c.a, .ts = c.ts };
    c.targ = mx_trim_cmd(c.arg);
    c.has_num = number(c.targ, &c.n1, &c.used) && c.n1 <= UINT32_MAX;
    if (cmds[c.cmd].sent)
        cmds[c.cmd].sent(s, &c);
    if (c.odd_spacing)
        anomaly(s, MX_DIR_C2S, A_COMMAND_SPACING, off, raw);
    command_event(s, &c, pipelined, injected);
    push(s, &c.p, off, raw);
}

static struct mx_parse_result client_bytes(struct pop3 *s, struct mx_slice d, bool end)
{
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    s->client_held = false;
    uint64_t base = mx_ctx_offset(s->m.ctx, MX_DIR_C2S);
    size_t pos = 0;
    while (pos < d.len) {
        struct mx_slice rest = mx_slice_make(d.ptr + pos, d.len - pos);
        if (s->ctls)
            break; /* the rest is TLS: the host's */
        if (s->cskip) {
            bool lf;
            pos += mx_line_skip(rest, &lf);
            s->cskip = !lf;
            if (lf && s->tls) {
                s->ctls = true; /* the over-long line ended: TLS follows */
                mx_ctx_starttls(s->m.ctx, MX_DIR_C2S, A_STARTTLS_SERVER_INJECTION);
            }
            continue;
        }
        if (s->stls_pending && mx_mail_looks_like_handshake(rest)) {
            s->client_held = true; /* a TLS handshake sent before the +OK: wait for it */
            break;
        }
        struct mx_line l;
        enum mx_line_status ls = mx_line_next(rest, POP3_MAX_CMD_LINE, end, &l);
        if (ls == MX_LINE_MORE)
            break;
        if (ls == MX_LINE_TOO_LONG) {
            /* its frames: where it starts, where it crosses the cap */
            mx_mail_anomaly(&s->m, MX_DIR_C2S, MX_MAIL_LONG_COMMAND_LINE, base + pos, POP3_MAX_CMD_LINE + 1);
            s->cskip = !l.lf;
        } else {
            client_line(s, l.text, base + pos, l.raw, l.bare_lf);
        }
        pos += l.raw;
    }
    r.consumed = pos;
    return r;
}

/* ---- Gaps and the end ---- */

static void pop3_gap(void *state, enum mx_dir d, uint64_t len)
{
    struct pop3 *s = state;
    s->quiet = true;
    if ((d == MX_DIR_C2S && s->ctls) || (d == MX_DIR_S2C && s->smode == S_TLS))
        return; /* the TLS observer's */
    if (d == MX_DIR_C2S) {
        /* Commands were lost: the stream resumes at the first line whose
         * verb POP3 knows. Their responses come, in dialogue order, before
         * the next command, while nothing waits: they are skipped. */
        s->c_resync = true;
        s->auth_continue = false;
        return;
    }
    switch (s->smode) {
    case S_BODY:
        mx_message_gap(s->rep.msg, len);
        s->server_gap = true;
        s->rep.body_bol = true; /* a status line may come right after the hole */
        return;
    case S_TLS:
        return;
    case S_LINES:
        response_done(s, mx_ctx_offset(s->m.ctx, MX_DIR_S2C));
        s->smode = S_RESYNC;
        return;
    case S_STATUS:
        /* The response the oldest command waits for began in the lost
         * bytes. A client that never pipelined sent nothing else before
         * it: every command still waiting was answered in the hole. */
        for (struct pending p; s->q.n && mx_mail_queue_pop(&s->q, &p);)
            if (s->m.pipelined)
                break;
        /* fall through */
    default:
        s->smode = S_RESYNC;
        return;
    }
}

static void session_emit(struct pop3 *s)
{
    const struct mx_flow_info *fi = mx_ctx_flow(s->m.ctx);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "pop3.session", s->m.now);
    mx_ev_time(ev, "start", fi->start);
    if (s->greeted) {
        mx_ev_obj(ev, "greeting");
        mx_ev_str(ev, "status", s->greet_ok ? "+OK" : "-ERR");
        mx_ev_text_cut(ev, "text", &s->greeting);
        mx_ev_end(ev);
    }
    mx_ev_bool(ev, "apop_timestamp", s->apop_timestamp);
    mx_mail_describe_session_caps(&s->m, ev);
    mx_mail_describe_caps(ev, "sasl_mechanisms", &s->mechs);
    mx_ev_obj(ev, "stls");
    mx_ev_bool(ev, "offered", s->stls_offered);
    mx_ev_bool(ev, "attempted", s->stls_attempted);
    mx_ev_bool(ev, "upgraded", s->tls && !mx_ctx_flow(s->m.ctx)->tls_port);
    mx_ev_end(ev);
    mx_ev_bool(ev, "in_tls", s->tls);
    mx_mail_describe_logins(&s->m, ev);
    mx_ev_arr(ev, "failures");
    for (unsigned i = 0; i < s->n_failures; i++) {
        const struct failure *f = &s->failures[i];
        mx_ev_obj(ev, NULL);
        mx_ev_str(ev, "command", cmds[f->cmd].name);
        if (f->resp_code.len)
            mx_ev_text_cut(ev, "resp_code", &f->resp_code);
        mx_ev_text_cut(ev, "text", &f->text);
        mx_ev_frames(ev, f->frame, f->frame);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    mx_ev_uint(ev, "commands", s->m.commands);
    mx_ev_uint(ev, "responses", s->responses);
    mx_ev_uint(ev, "errors", s->errors);
    mx_ev_uint(ev, "pipelined_commands", s->m.pipelined);
    mx_ev_uint(ev, "unknown_commands", s->m.unknown);
    mx_ev_uint(ev, "retrieved", s->retrieved);
    mx_ev_uint(ev, "top", s->tops);
    mx_ev_uint(ev, "deleted", s->deleted);
    if (s->resync_skipped)
        mx_ev_uint(ev, "midstream_skipped", s->resync_skipped);
    mx_mail_describe_tls(&s->m, ev, s->tls);
    mx_mail_describe_proxy(&s->m, ev);
    mx_mail_describe_close(&s->m, ev);
    mx_mail_describe_waiting(ev, (uint32_t)s->q.n);
    unsigned ok = mx_mail_logins_ok(&s->m);
    char tls[96], closed[320];
    mx_ev_text(ev, "POP3 session: %" PRIu64 " command%s, %" PRIu64 " message%s retrieved, %" PRIu64 " error%s%s%s%s",
               s->m.commands, s->m.commands == 1 ? "" : "s", s->retrieved, s->retrieved == 1 ? "" : "s", s->errors,
               s->errors == 1 ? "" : "s", mx_mail_tls_summary(&s->m, s->tls, s->stls_attempted, tls, sizeof(tls)),
               ok ? ", logged in" : "", mx_mail_close_summary(&s->m, closed, sizeof(closed)));
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

static void pop3_end(void *state, enum mx_dir d)
{
    struct pop3 *s = state;
    s->ended[d] = true;
    if (d == MX_DIR_S2C && s->rep.active) {
        /* The server stopped inside a multi-line response. */
        anomaly(s, MX_DIR_S2C, A_RESPONSE_INCOMPLETE, mx_ctx_offset(s->m.ctx, MX_DIR_S2C), 0);
        if (s->rep.msg)
            mx_message_cut(s->rep.msg);
        response_done(s, mx_ctx_offset(s->m.ctx, MX_DIR_S2C));
    }
    if (d == MX_DIR_S2C && s->client_held)
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
    if (!s->ended[0] || !s->ended[1])
        return;
    if (s->m.login)
        login_finish(s, MX_LOGIN_NO_REPLY, 0);
    mx_mail_tls_end(&s->m);
    session_emit(s);
}

/* ---- The dissector interface ---- */

static void *pop3_new(struct mx_dissect_ctx *ctx)
{
    struct pop3 *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    mx_mail_init(&s->m, ctx, &mx_pop3_mail);
    mx_mail_queue_init(&s->q, s->pend, sizeof(s->pend[0]), POP3_MAX_PENDING);
    mx_caps_init(&s->caps, POP3_CAPS_BYTES);
    s->m.caps = &s->caps;
    mx_caps_init(&s->mechs, POP3_MECHS_BYTES);
    if (mx_ctx_flow(ctx)->handshake) {
        /* RFC 1939 §4: the server greets first. */
        struct pending greeting = { .cmd = P_CONNECT, .ts = mx_ctx_flow(ctx)->start };
        push(s, &greeting, 0, 0);
    } else {
        s->quiet = true;
        s->smode = S_RESYNC;
    }
    s->tls = mx_ctx_flow(ctx)->tls_port; /* what TLS carries, decrypted (RFC 8314 §3.3) */
    return s;
}

static void pop3_inside_tls(void *state, enum mx_dir d)
{
    struct pop3 *s = state;
    if (d == MX_DIR_C2S)
        s->ctls = false;
    else if (s->smode == S_TLS)
        s->smode = S_STATUS;
}

static void pop3_free(void *state)
{
    struct pop3 *s = state;
    if (!s)
        return;
    mx_message_free(s->rep.msg);
    mx_buf_free(&s->rep.list);
    mx_caps_free(&s->caps);
    mx_mail_free(&s->m);
    mx_caps_free(&s->mechs);
    free(s);
}

static size_t pop3_bytes(const void *state)
{
    const struct pop3 *s = state;
    return sizeof(*s) + mx_message_bytes(s->rep.msg) + mx_buf_bytes(&s->rep.list) + mx_buf_bytes(&s->caps.b) +
           mx_buf_bytes(&s->mechs.b);
}

/* Bytes of d (mx_mail_parse). */
static struct mx_parse_result pop3_read(void *state, enum mx_dir d, struct mx_slice data, unsigned flags)
{
    struct pop3 *s = state;
    bool last = (flags & (MX_CHUNK_END | MX_CHUNK_TRUNCATED)) != 0; /* no more of these bytes come */
    return d == MX_DIR_C2S ? client_bytes(s, data, last) : server_bytes(s, data, last);
}

const struct mx_dissector mx_pop3_dissector = {
    .name = "pop3",
    .state_new = pop3_new,
    .state_free = pop3_free,
    .parse = mx_mail_parse,
    .anomalies = pop3_anomalies,
    .n_anomalies = MX_ARRAY_LEN(pop3_anomalies),
    .state_bytes = pop3_bytes,
};
