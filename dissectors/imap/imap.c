/* imap.c - IMAP4rev1/rev2 (RFC 3501, RFC 9051): tagged commands and their
 * completions, untagged data, continuations, literals in both directions
 * (with LITERAL+/LITERAL-, RFC 7888), LOGIN and AUTHENTICATE (SASL, SASL-IR
 * RFC 4959), STARTTLS, IDLE (RFC 2177), COMPRESS=DEFLATE (RFC 4978), and the
 * message bodies FETCH and APPEND carry. */
#include "dissectors/imap/imap.h"
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
#include <zlib.h>

/* Caps (STYLE.md rule 4). */
#define IMAP_MAX_LINE (64u << 10) /* text of one logical line kept (literals kept inline count too) */
#define IMAP_SHOWN 512            /* bytes of a line shown in a record */
#define IMAP_KEEP_LITERAL 4096    /* literals kept for parsing; larger ones are skipped (or streamed) */
#define IMAP_MAX_LITERALS 64      /* literals described per logical line; more are skipped */
/* A literal over IMAP4rev1's 32-bit number (RFC 3501 §9) is an anomaly; IMAP4rev2 allows 63 bits
 * (RFC 9051 §4.3), so it is still read as one. It is never allocated either way. */
#define IMAP_LITERAL_LIMIT UINT64_C(0xffffffff)
#define IMAP_MAX_PENDING 256 /* commands awaiting completion */
#define IMAP_TAG 64
#define IMAP_CAPS 4096        /* capability atoms kept (each entry costs 2 more bytes) */
#define IMAP_MAX_MAILBOXES 32 /* mailboxes selected, listed in the session record */
#define IMAP_INFLATE_OUT 16384

/* Anomalies: stable names, in the order of this list (the flow record's). */
#define IMAP_ANOMALIES(X)                                                                                         \
    X(LONG_LINE, "a command or response line longer than the cap")                                                \
    X(LITERAL_INVALID, "a literal length that is not a number or overflows 63 bits (RFC 9051 §4.3)")              \
    X(LITERAL_TOO_LARGE, "a literal announced larger than 4 GiB - 1 (RFC 3501 §9's number)")                      \
    X(TOO_MANY_LITERALS, "more literals in one command or response than the cap")                                 \
    X(INVALID_COMMAND, "a client line without a tag and a command (RFC 9051 §2.2.1)")                             \
    X(UNKNOWN_COMMAND, "a command IMAP and its common extensions do not define")                                  \
    X(INVALID_RESPONSE, "a server line that is neither tagged, untagged nor a continuation (RFC 9051 §2.2.2)")    \
    X(UNMATCHED_COMPLETION, "a tagged completion whose tag no pending command has")                               \
    X(DUPLICATE_TAG, "a tag reused while a command with it is pending (RFC 9051 §2.2.1)")                         \
    X(TOO_MANY_PENDING_COMMANDS, "more commands awaiting completion than the cap")                                \
    X(BARE_LF, "a line ended by LF without CR (RFC 9051 §2.2)")                                                   \
    X(STARTTLS_CLIENT_INJECTION, "cleartext commands after STARTTLS, before the TLS handshake (RFC 9051 §6.2.1)") \
    X(STARTTLS_SERVER_INJECTION, "cleartext from the server after its OK to STARTTLS, before the handshake")      \
    X(NO_TLS_AFTER_STARTTLS,                                                                                      \
      "after the go-ahead to STARTTLS the client went on in clear, not with a TLS ClientHello: a capture "        \
      "decrypted by a TLS-terminating proxy or exported, or a downgrade; the dialogue is read in clear")          \
    X(AUTH_DECODE_ERROR, "a SASL message that is not valid base64 or the mechanism's syntax")                     \
    X(LOGIN_DISABLED_IGNORED,                                                                                     \
      "LOGIN sent, or accepted, although the server announced LOGINDISABLED (RFC 9051 §6.2.3)")                   \
    X(PARTIAL_AFTER_GAP, "bytes were lost inside a line or literal; what follows was resynchronised")             \
    X(COMMAND_SPACING, "a command whose tokens are split by other whitespace than one SP (RFC 9051 §9), or "     \
                       "after leading whitespace: read as servers that end an atom at any control read it")       \
    X(LITERAL_INCOMPLETE, "the stream ended inside a literal")                                                    \
    X(COMPRESSED_DATA_ERROR, "after COMPRESS=DEFLATE, bytes that do not inflate (RFC 4978 §4)")                   \
    X(CLIENT_SPOKE_FIRST, "the client sent commands before the server's greeting (RFC 9051 §7.1)")

enum { IMAP_ANOMALIES(MX_ANOMALY_ENUM) };

static const struct mx_anomaly_def imap_anomalies[] = { IMAP_ANOMALIES(MX_ANOMALY_DEF) };

static struct mx_parse_result imap_read(void *state, enum mx_dir d, struct mx_slice data, unsigned flags);
static void imap_gap(void *state, enum mx_dir d, uint64_t len);
static void imap_inside_tls(void *state, enum mx_dir d);
static void imap_end(void *state, enum mx_dir d);

/* What the shared session layer needs to know of IMAP. */
const struct mx_mail_proto mx_imap_mail = {
    .command_type = "imap.command",
    .command_key = "command",
    .auth_data_type = "imap.auth_data",
    .unknown_explain = "A command IMAP does not define: the server will likely answer BAD.",
    .upgrade = "STARTTLS",
    .an = {
        [MX_MAIL_LONG_COMMAND_LINE] = MX_MAIL_NONE, /* IMAP's LONG_LINE caps a line either way */
        [MX_MAIL_BARE_LF] = A_BARE_LF,
        [MX_MAIL_TOO_MANY_PENDING] = A_TOO_MANY_PENDING_COMMANDS,
        [MX_MAIL_UNKNOWN_COMMAND] = A_UNKNOWN_COMMAND,
        [MX_MAIL_COMMAND_OUT_OF_SEQUENCE] = MX_MAIL_NONE,
        [MX_MAIL_STARTTLS_CLIENT_INJECTION] = A_STARTTLS_CLIENT_INJECTION,
        [MX_MAIL_STARTTLS_SERVER_INJECTION] = A_STARTTLS_SERVER_INJECTION,
        [MX_MAIL_AUTH_DECODE_ERROR] = A_AUTH_DECODE_ERROR,
        [MX_MAIL_PARTIAL_AFTER_GAP] = A_PARTIAL_AFTER_GAP,
        [MX_MAIL_COMMAND_SPACING] = A_COMMAND_SPACING,
        [MX_MAIL_NO_TLS_AFTER_STARTTLS] = A_NO_TLS_AFTER_STARTTLS,
        [MX_MAIL_CLIENT_SPOKE_FIRST] = A_CLIENT_SPOKE_FIRST,
    },
    .read = imap_read,
    .gap = imap_gap,
    .end = imap_end,
    .inside_tls = imap_inside_tls,
};

enum cmd {
    I_UNKNOWN,
    I_CAPABILITY,
    I_NOOP,
    I_LOGOUT,
    I_STARTTLS,
    I_AUTHENTICATE,
    I_LOGIN,
    I_SELECT,
    I_EXAMINE,
    I_CREATE,
    I_DELETE,
    I_RENAME,
    I_SUBSCRIBE,
    I_UNSUBSCRIBE,
    I_LIST,
    I_LSUB,
    I_NAMESPACE,
    I_STATUS,
    I_APPEND,
    I_IDLE,
    I_CHECK,
    I_CLOSE,
    I_UNSELECT,
    I_EXPUNGE,
    I_SEARCH,
    I_FETCH,
    I_STORE,
    I_COPY,
    I_MOVE,
    I_ENABLE,
    I_ID,
    I_COMPRESS,
    I_GETQUOTA,
    I_GETQUOTAROOT,
    I_SETQUOTA,
    I_GETACL,
    I_SETACL,
    I_MYRIGHTS,
    I_SORT,
    I_THREAD,
    I_GETMETADATA,
    I_SETMETADATA,
    I_XLIST,
    I__COUNT,
};

/* What a literal in the line being assembled becomes. */
enum litmode { LIT_KEEP, LIT_SKIP, LIT_MESSAGE };

/* One logical line of one direction: text segments and the literals between
 * them (RFC 9051 §4.3). The text and the small literals are kept (bounded) for
 * parsing once the line ends; large literals are skipped or streamed to the
 * message parser. The assembler copies: a logical line spans literals, and
 * after COMPRESS the bytes are mxray's own inflated output. */
struct line {
    struct mx_buf text;        /* the text segments and kept literals, at most IMAP_MAX_LINE bytes */
    bool overflow;             /* text beyond IMAP_MAX_LINE was dropped */
    uint64_t dropped;          /* how many bytes of it */
    bool active;               /* bytes of the line were seen */
    uint64_t off;              /* stream offset of its first byte */
    struct mx_frame_ref first; /* the frame of its first byte, noted then: its bytes are consumed as they come */
    mx_frame_t cross;          /* overflow: the frame of its first byte past IMAP_MAX_LINE */
    uint64_t seg_len;          /* bytes of the current text segment */
    uint8_t tail[24];          /* the segment's last bytes, for a literal spec after an overflow */
    uint8_t tail_len;
    uint8_t shown[IMAP_SHOWN]; /* the text segments, literal contents left out */
    uint16_t shown_len;
    uint64_t shown_wire; /* their real length: more than shown_len when cut */
    uint32_t n_lit;
    struct {
        uint32_t pos; /* where its content starts in b (kept) or would (skipped) */
        uint64_t len;
        bool kept;
    } lit[IMAP_MAX_LITERALS];
    uint64_t lit_left; /* literal bytes still to come */
    enum litmode litmode;
    bool bare_lf;
    bool emitted;           /* client: the command record was written at the first literal */
    struct mx_message *msg; /* a literal streamed to the message parser */
};

struct pending {
    char tag[IMAP_TAG];
    uint8_t tag_len;
    enum cmd cmd;
    bool uid; /* UID FETCH, UID SEARCH, ... */
    mx_frame_t frame;
    mx_time_t ts;
    mx_time_t first_ts;     /* its first untagged response, or MX_TIME_NONE */
    struct mx_text mailbox; /* SELECT, EXAMINE, STATUS, APPEND, ... */
    uint32_t untagged, fetches, bodies;
    uint64_t search_count;
    bool search;
};

struct mailbox {
    struct mx_text name;
    bool read_only;
    uint64_t exists, recent, uidvalidity, uidnext;
    bool has_exists, has_recent, has_uidvalidity, has_uidnext;
    mx_frame_t frame;
};

struct inflater {
    bool on;
    bool broken;
    z_stream z;
};

/* RFC 9051 §3: the connection's states, for teaching. IS_SAME: no change. */
enum istate { IS_SAME = -1, IS_NOT_AUTHENTICATED, IS_AUTHENTICATED, IS_SELECTED, IS_LOGOUT };
static const char *const istate_names[] = { "not authenticated", "authenticated", "selected", "logout" };

struct imap;
struct command;
struct completion;

/* One command (RFC 9051 §6 and the extensions): what sending it does, and
 * what its tagged completion does. The table, cmds[], follows the handlers. */
struct cmd_def {
    const char *name; /* as sent, upper case */
    /* Sending it, before its record (NULL: nothing). */
    void (*sent)(struct imap *s, struct command *c);
    /* Its completion, after the completion's record (NULL: nothing). */
    void (*done)(struct imap *s, const struct pending *p, const struct completion *c);
    enum istate next;    /* the state after an OK (RFC 9051 §3), or IS_SAME */
    const char *explain; /* --explain: what it asks for; NULL: the text for unknown commands */
};

static const struct cmd_def cmds[I__COUNT];

struct imap {
    struct mx_mail m; /* what every mail session has */
    enum istate state;
    struct line line[2];
    struct mx_buf pend; /* struct pending, oldest first, grown as commands are pipelined */
    /* Client states. */
    bool wait_cont; /* a synchronising literal waits for "+" (RFC 9051 §7.5) */
    char wait_tag[IMAP_TAG];
    uint8_t wait_tag_len;
    bool client_held;
    bool auth_open;       /* AUTHENTICATE sent: client lines are SASL messages until completion */
    bool idle_open;       /* IDLE sent: "DONE" ends it (RFC 2177 §3) */
    bool upgrade_pending; /* STARTTLS or COMPRESS sent, completion not seen */
    enum cmd upgrade_cmd;
    bool tls;
    bool tls_side[2];
    bool resync[2];    /* midstream or after a gap: until a line that is surely a start */
    bool quiet;        /* midstream or after lost bytes: unmatched completions are expected */
    bool client_spoke; /* a client byte was seen */
    bool server_lost;  /* server bytes were lost since the last client command */
    bool ended[2];
    struct inflater inf[2];
    /* Session. */
    bool greeted, preauth;
    struct mx_text greet_status, greeting;
    struct mx_caps caps;     /* the latest capability list (RFC 9051 §7.2.2) */
    struct mx_caps pre_caps; /* the latest one in clear before a login: what it offered to log in with */
    bool pre_kept;
    bool logindisabled, starttls_offered, starttls_attempted, compress_offered, compressed;
    bool logindisabled_seen; /* LOGINDISABLED was announced at some point in clear */
    struct mailbox boxes[IMAP_MAX_MAILBOXES];
    unsigned n_boxes, boxes_dropped;
    struct mailbox *selected;
    struct mailbox staged; /* what a SELECT/EXAMINE in progress learns */
    struct {
        bool on;
        mx_frame_t frame;
        mx_time_t start;
        uint32_t untagged;
        struct mx_text tag;
    } idle;
    uint64_t completions, no, bad, untagged, continuations, fetched, appended, idles, compressed_bytes[2],
        inflated_bytes[2], resync_skipped;
};

/* mx_mail_parse finds the session layer at the start of the state. */
_Static_assert(offsetof(struct imap, m) == 0, "struct mx_mail begins struct imap");

/* ---- Small helpers ---- */

static void anomaly(struct imap *s, enum mx_dir d, int a, uint64_t off, size_t len)
{
    mx_ctx_anomaly(s->m.ctx, d, (size_t)a, off, len);
}

static bool parse_u64(struct mx_slice v, uint64_t *out)
{
    uint64_t n = 0;
    if (!v.len || v.len > 19)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    *out = n;
    return true;
}

/* ---- Tokens (RFC 9051 §4): atoms, numbers, quoted strings, literals, lists ---- */

enum tok { T_END, T_ATOM, T_QUOTED, T_LITERAL, T_LPAREN, T_RPAREN };

struct token {
    enum tok t;
    struct mx_slice v; /* the atom, the quoted string's content, a kept literal's content */
    uint64_t lit_len;
    bool elided; /* a literal whose content was not kept (or has not come yet) */
};

struct tokz {
    const struct line *l;
    uint32_t pos, lit_i;
    bool odd_spacing; /* tokens split by other whitespace than one SP (COMMAND_SPACING) */
};

/* The line's bytes: never a null pointer, even before the first byte is kept. */
static const uint8_t *lbytes(const struct line *l)
{
    return l->text.p ? l->text.p : (const uint8_t *)"";
}

/* The line's length (at most IMAP_MAX_LINE). */
static uint32_t llen(const struct line *l)
{
    return (uint32_t)l->text.n;
}

/* The real length of a text that runs to the end of line l: more than
 * t.len when the line overflowed IMAP_MAX_LINE. */
static uint64_t lwire(const struct line *l, struct mx_slice t)
{
    bool at_end = t.ptr + t.len == lbytes(l) + llen(l);
    return at_end ? t.len + l->dropped : t.len;
}

static struct tokz tokz_of(const struct line *l)
{
    struct tokz z = { l, 0, 0, false };
    return z;
}

static struct token next_tok(struct tokz *z)
{
    const struct line *l = z->l;
    struct token t = { T_END, { NULL, 0 }, 0, false };
    /* RFC 9051 §9 puts one SP between tokens; servers end an atom at any CTL
     * (Dovecot: c <= 32), and a client whose tab or run of spaces a server
     * takes must be read as that server reads it (mx_is_cmd_space). */
    uint32_t run = z->pos;
    while (z->pos < llen(l) && mx_is_cmd_space(lbytes(l)[z->pos]))
        z->pos++;
    if (z->pos > run && (run == 0 || z->pos - run > 1 || lbytes(l)[run] != ' '))
        z->odd_spacing = true;
    if (z->pos >= llen(l))
        return t;
    const uint8_t *b = lbytes(l);
    uint32_t p = z->pos;
    if (b[p] == '(' || b[p] == ')') {
        t.t = b[p] == '(' ? T_LPAREN : T_RPAREN;
        t.v = mx_slice_make(b + p, 1);
        z->pos = p + 1;
        return t;
    }
    if (b[p] == '"') { /* quoted = DQUOTE *QUOTED-CHAR DQUOTE */
        uint32_t q = p + 1;
        while (q < llen(l) && b[q] != '"')
            q += (b[q] == '\\' && q + 1 < llen(l)) ? 2 : 1;
        t.t = T_QUOTED;
        t.v = mx_slice_make(b + p + 1, (q < llen(l) ? q : llen(l)) - p - 1);
        z->pos = q < llen(l) ? q + 1 : llen(l);
        return t;
    }
    if (b[p] == '{' || (b[p] == '~' && p + 1 < llen(l) && b[p + 1] == '{')) {
        /* literal = "{" number64 ["+"] "}" CRLF *CHAR8; its content follows in b when kept. */
        uint32_t q = p;
        while (q < llen(l) && b[q] != '}')
            q++;
        if (q < llen(l) && z->lit_i < l->n_lit && l->lit[z->lit_i].pos == q + 1) {
            t.t = T_LITERAL;
            t.lit_len = l->lit[z->lit_i].len;
            t.elided = !l->lit[z->lit_i].kept || q + 1 + t.lit_len > llen(l);
            t.v = t.elided ? mx_slice_make(b + q + 1, 0) : mx_slice_make(b + q + 1, (size_t)t.lit_len);
            z->pos = q + 1 + (uint32_t)(t.elided ? 0 : t.lit_len);
            z->lit_i++;
            return t;
        }
    }
    /* An atom; a section "[...]" inside it may hold spaces and parentheses
     * (BODY[HEADER.FIELDS (FROM TO)]<0.100>). */
    uint32_t q = p;
    int depth = 0;
    while (q < llen(l)) {
        uint8_t c = b[q];
        if (c == '[')
            depth++;
        else if (c == ']' && depth)
            depth--;
        else if (!depth && (mx_is_cmd_space(c) || c == '(' || c == ')' || c == '"'))
            break;
        q++;
    }
    if (q == p)
        q++; /* a lone special character */
    t.t = T_ATOM;
    t.v = mx_slice_make(b + p, q - p);
    z->pos = q;
    return t;
}

/* The rest of the line from the tokenizer's position, as text. */
static struct mx_slice rest_of(const struct tokz *z)
{
    uint32_t p = z->pos;
    while (p < llen(z->l) && mx_is_cmd_space(lbytes(z->l)[p]))
        p++;
    return mx_slice_make(lbytes(z->l) + p, llen(z->l) - p);
}

/* An astring's value (atom, quoted or kept literal). */
static struct mx_slice astring(const struct token *t)
{
    return t->t == T_ATOM || t->t == T_QUOTED || t->t == T_LITERAL ? t->v : mx_slice_make("", 0);
}

/* Skips a value whose first token is t: a parenthesised list is skipped whole. */
static void skip_value(struct tokz *z, const struct token *t)
{
    if (t->t != T_LPAREN)
        return;
    int depth = 1;
    while (depth > 0) {
        struct token u = next_tok(z);
        if (u.t == T_END)
            return;
        depth += u.t == T_LPAREN ? 1 : u.t == T_RPAREN ? -1 : 0;
    }
}

/* ---- Pending commands ---- */

static struct pending *find_tag(struct imap *s, struct mx_slice tag)
{
    for (size_t i = 0; i < s->pend.n; i++) {
        struct pending *p = mx_buf_at(&s->pend, i);
        if (p->tag_len == tag.len && !memcmp(p->tag, tag.ptr, tag.len))
            return p;
    }
    return NULL;
}

static void drop_pending(struct imap *s, struct pending *p)
{
    mx_buf_remove(&s->pend, (size_t)(p - (struct pending *)s->pend.p));
}

/* The command untagged data belongs to: the oldest pending one (RFC 9051 §7). */
static struct pending *in_progress(struct imap *s)
{
    return s->pend.n ? mx_buf_at(&s->pend, 0) : NULL;
}

/* Whether LOGOUT waits for its completion: a BYE is then its answer (RFC 9051 §6.1.3). */
static bool logout_pending(struct imap *s)
{
    for (size_t i = 0; i < s->pend.n; i++)
        if (((const struct pending *)mx_buf_at(&s->pend, i))->cmd == I_LOGOUT)
            return true;
    return false;
}

/* ---- Logins ---- */

static struct mx_mail_login *login_start(struct imap *s, const char *command, struct mx_slice mech, mx_frame_t f,
                                         mx_time_t ts)
{
    struct mx_mail_login *l = mx_mail_login_start(&s->m, mech, f, ts);
    if (l)
        l->command = command;
    return l;
}

/* The login in progress ended (RFC 9051 §6.2.2, §6.2.3): its record. */
static void login_finish(struct imap *s, enum mx_login_outcome o, struct mx_slice code, mx_frame_t f)
{
    struct mx_mail_login *l = mx_mail_login_finish(&s->m, o, f);
    s->auth_open = false;
    if (!l)
        return;
    mx_text_set(&l->resp_code, code);
    const char *outcome = mx_login_outcome_name(o);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.auth", s->m.now);
    mx_ev_str(ev, "command", l->command);
    mx_sasl_describe_identity(&l->sasl, ev);
    mx_ev_str(ev, "outcome", outcome);
    if (l->resp_code.len)
        mx_ev_text_cut(ev, "resp_code", &l->resp_code);
    mx_sasl_describe_secret(&l->sasl, ev, s->tls);
    mx_ev_frames(ev, l->frame, f ? f : l->frame);
    bool good = o == MX_LOGIN_SUCCESS;
    bool clear = l->sasl.secret_in_clear && !s->tls;
    mx_ev_tone(ev, good ? (clear ? MX_TONE_WARN : MX_TONE_GOOD) : MX_TONE_BAD);
    mx_ev_text(ev, "%s %s as \"%.*s\": %s%s", l->command, l->sasl.mech_name, (int)l->sasl.user_len,
               (const char *)l->sasl.user, outcome, clear ? ", the password crossed in clear" : "");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

/* ---- Capabilities (RFC 9051 §7.2.2) ---- */

static void caps_keep_pre(struct imap *s);

static void caps_set(struct imap *s, struct tokz *z)
{
    mx_caps_clear(&s->caps);
    s->logindisabled = false;
    for (struct token t = next_tok(z); t.t == T_ATOM; t = next_tok(z)) {
        struct mx_slice c = t.v;
        if (c.len && c.ptr[c.len - 1] == ']')
            c.len--; /* the end of a [CAPABILITY ...] response code */
        if (!c.len)
            continue;
        mx_mail_caps_add(&s->m, &s->caps, c);
        if (mx_ieq(c.ptr, c.len, "LOGINDISABLED")) {
            s->logindisabled = true;
            if (!s->tls)
                s->logindisabled_seen = true;
        }
        if (mx_ieq(c.ptr, c.len, "STARTTLS"))
            s->starttls_offered = true;
        if (mx_ieq(c.ptr, c.len, "COMPRESS=DEFLATE"))
            s->compress_offered = true;
    }
    /* The frame of the line that listed them (the auditor's evidence). */
    mx_frame_t f = s->line[MX_DIR_S2C].first.frame;
    mx_caps_frames(&s->caps, f, f);
    if (!s->tls && s->state == IS_NOT_AUTHENTICATED && !s->m.login)
        caps_keep_pre(s);
}

/* A list in clear before any login (not one a login's completion carries,
 * RFC 9051 §6.2.3): kept, since the lists after a login drop STARTTLS,
 * LOGINDISABLED and AUTH=, what the auditor reads. */
static void caps_keep_pre(struct imap *s)
{
    mx_caps_clear(&s->pre_caps);
    s->pre_caps.first = s->caps.first;
    s->pre_caps.last = s->caps.last;
    s->pre_caps.dropped = s->caps.dropped;
    s->pre_kept = true;
    if (s->caps.b.n && mx_buf_append(&s->pre_caps.b, s->caps.b.p, s->caps.b.n) != MX_BUF_OK)
        mx_ctx_fail(s->m.ctx);
}

/* A response code "[...]" (RFC 9051 §7.1): atom, then arguments. */
static void resp_code(struct imap *s, struct mx_slice code)
{
    if (code.len < 2)
        return;
    struct line tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.text.p = (uint8_t *)(uintptr_t)(code.ptr + 1);
    tmp.text.n = code.len - 2;
    struct tokz z = tokz_of(&tmp);
    struct token name = next_tok(&z);
    if (name.t != T_ATOM)
        return;
    uint64_t v;
    struct token arg;
    if (mx_ieq(name.v.ptr, name.v.len, "CAPABILITY")) {
        caps_set(s, &z);
    } else if (mx_ieq(name.v.ptr, name.v.len, "UIDVALIDITY")) {
        arg = next_tok(&z);
        if (parse_u64(arg.v, &v)) {
            s->staged.uidvalidity = v;
            s->staged.has_uidvalidity = true;
        }
    } else if (mx_ieq(name.v.ptr, name.v.len, "UIDNEXT")) {
        arg = next_tok(&z);
        if (parse_u64(arg.v, &v)) {
            s->staged.uidnext = v;
            s->staged.has_uidnext = true;
        }
    } else if (mx_ieq(name.v.ptr, name.v.len, "READ-ONLY")) {
        s->staged.read_only = true;
    } else if (mx_ieq(name.v.ptr, name.v.len, "READ-WRITE")) {
        s->staged.read_only = false;
    }
}

/* Splits "[code] text" after a status word. */
static void split_code(struct mx_slice rest, struct mx_slice *code, struct mx_slice *text)
{
    *code = mx_slice_make(rest.ptr, 0);
    *text = rest;
    if (!rest.len || rest.ptr[0] != '[')
        return;
    int depth = 0;
    for (size_t i = 0; i < rest.len; i++) {
        depth += rest.ptr[i] == '[' ? 1 : rest.ptr[i] == ']' ? -1 : 0;
        if (!depth) {
            *code = mx_slice_make(rest.ptr, i + 1);
            *text = mx_trim(mx_slice_make(rest.ptr + i + 1, rest.len - i - 1));
            return;
        }
    }
}

/* The code's content without brackets, for the records. */
static struct mx_slice code_inner(struct mx_slice code)
{
    return code.len >= 2 ? mx_slice_make(code.ptr + 1, code.len - 2) : code;
}

/* ---- Messages in literals ---- */

/* The FETCH item a server literal is the value of, when it is a message or
 * a part of one (RFC 9051 §7.5.2: BODY[section]<origin>, BINARY[...],
 * RFC822, RFC822.HEADER, RFC822.TEXT). Fills the message's context. */
static bool fetch_literal(const struct line *l, struct mx_message_env *env, char *section, size_t seclen)
{
    struct tokz z = tokz_of(l);
    struct token star = next_tok(&z), num = next_tok(&z), kind = next_tok(&z), open = next_tok(&z);
    uint64_t seq;
    if (star.t != T_ATOM || !mx_ieq(star.v.ptr, star.v.len, "*") || !parse_u64(num.v, &seq) ||
        !mx_ieq(kind.v.ptr, kind.v.len, "FETCH") || open.t != T_LPAREN)
        return false;
    env->number = seq <= UINT32_MAX ? (uint32_t)seq : 0;
    for (;;) {
        struct token name = next_tok(&z);
        if (name.t != T_ATOM)
            return false;
        struct token val = next_tok(&z);
        if (val.t == T_LITERAL && val.elided && z.lit_i == l->n_lit) {
            /* The literal just announced: is its item a message? */
            struct mx_slice n = name.v;
            const uint8_t *br = memchr(n.ptr, '[', n.len);
            struct mx_slice head = mx_slice_make(n.ptr, br ? (size_t)(br - n.ptr) : n.len);
            if (mx_ieq(head.ptr, head.len, "RFC822")) {
                snprintf(section, seclen, "%s", "");
            } else if (mx_ieq(head.ptr, head.len, "RFC822.HEADER") || mx_ieq(head.ptr, head.len, "RFC822.TEXT")) {
                snprintf(section, seclen, "%s", head.len == 13 ? "HEADER" : "TEXT");
                env->fragment = true;
            } else if (br && (mx_ieq(head.ptr, head.len, "BODY") || mx_ieq(head.ptr, head.len, "BINARY"))) {
                const uint8_t *close = memchr(br, ']', n.len - (size_t)(br - n.ptr));
                if (!close)
                    return false;
                size_t sl = (size_t)(close - br) - 1;
                bool partial = (size_t)(close + 1 - n.ptr) < n.len; /* <origin> */
                snprintf(section, seclen, "%s%.*s", head.len == 6 ? "BINARY " : "",
                         (int)(sl < seclen - 8 ? sl : seclen - 8), (const char *)br + 1);
                env->fragment = sl > 0 || partial || head.len == 6;
            } else {
                return false;
            }
            return true;
        }
        if (val.t == T_END)
            return false;
        if (mx_ieq(name.v.ptr, name.v.len, "UID") && parse_u64(val.v, &seq) && seq <= UINT32_MAX)
            env->uid = (uint32_t)seq;
        skip_value(&z, &val);
    }
}

/* What the literal just announced in line d becomes. */
static enum litmode literal_mode(struct imap *s, enum mx_dir d, uint64_t len, struct mx_message **msg)
{
    struct line *l = &s->line[d];
    struct mx_message_env env = { .ctx = s->m.ctx, .dir = d };
    char section[72] = "";
    *msg = NULL;
    if (d == MX_DIR_S2C) {
        if (fetch_literal(l, &env, section, sizeof(section))) {
            env.source = "imap.fetch";
            if (s->selected) {
                env.mailbox = mx_text_slice(&s->selected->name);
                env.mailbox_len = s->selected->name.wire;
            }
            env.section = mx_slice_make(section, strlen(section));
            *msg = mx_message_new(&env);
            if (!*msg)
                mx_ctx_fail(s->m.ctx);
            struct pending *p = in_progress(s);
            if (p)
                p->bodies++;
            s->fetched++;
            return LIT_MESSAGE;
        }
    } else {
        /* APPEND mailbox [flags] [date-time] literal (RFC 9051 §6.3.12); every
         * literal after the mailbox is a message (MULTIAPPEND, CATENATE TEXT). */
        struct tokz z = tokz_of(l);
        struct token tag = next_tok(&z), cmd = next_tok(&z);
        if (tag.t == T_ATOM && mx_ieq(cmd.v.ptr, cmd.v.len, "APPEND")) {
            struct token mbox = next_tok(&z);
            if (!(mbox.t == T_LITERAL && mbox.elided && z.lit_i == l->n_lit)) {
                env.source = "imap.append";
                env.mailbox = astring(&mbox);
                for (struct token t = next_tok(&z); t.t != T_END; t = next_tok(&z))
                    if (t.t == T_ATOM && mx_ieq(t.v.ptr, t.v.len, "CATENATE"))
                        env.fragment = true; /* RFC 4469: a TEXT part of the message */
                *msg = mx_message_new(&env);
                if (!*msg)
                    mx_ctx_fail(s->m.ctx);
                s->appended++;
                return LIT_MESSAGE;
            }
        }
    }
    return len <= IMAP_KEEP_LITERAL ? LIT_KEEP : LIT_SKIP;
}

/* ---- Records ---- */

/* The least state a command is valid in (RFC 9051 §6.1-§6.4): a command
 * that succeeds there shows the session got there, even when the login or
 * the SELECT was not seen (midstream, lost bytes). */
static enum istate need_state(enum cmd c)
{
    if ((c >= I_CHECK && c <= I_MOVE) || c == I_SORT || c == I_THREAD)
        return IS_SELECTED;
    if ((c >= I_SELECT && c <= I_IDLE) || c == I_ENABLE || (c >= I_GETQUOTA && c <= I_XLIST))
        return IS_AUTHENTICATED;
    return IS_NOT_AUTHENTICATED;
}

/* The state the server is in when it reads the next command: after the
 * commands still awaiting completion, each assumed to succeed (RFC 9051
 * §5.5: a client may send commands without waiting). */
static enum istate state_ahead(const struct imap *s)
{
    enum istate st = s->state;
    for (size_t i = 0; i < s->pend.n; i++) {
        enum istate next = cmds[((const struct pending *)mx_buf_at(&s->pend, i))->cmd].next;
        if (next != IS_SAME)
            st = next;
    }
    return st;
}

static void command_event(struct imap *s, const struct pending *p, struct mx_slice cmdname, struct mx_slice arg,
                          uint64_t arg_wire, const char *shown, bool pipelined, bool injected, mx_frame_t a,
                          mx_frame_t b)
{
    char ex[768];
    const char *explain = cmds[p->cmd].explain;
    if (s->quiet && !pipelined && s->state != IS_LOGOUT && need_state(p->cmd) > s->state)
        s->state = need_state(p->cmd); /* picked up midstream: the client knows where it stands */
    enum istate st = pipelined ? state_ahead(s) : s->state;
    if (pipelined && mx_ctx_flow(s->m.ctx)->explain)
        explain = mx_teach_pipelined(ex, sizeof(ex), explain ? explain : mx_imap_mail.unknown_explain,
                                     (unsigned)s->pend.n, "RFC 9051 §5.5", "completion", "completions");
    struct mx_mail_command c = {
        .first = a,
        .last = b,
        .ts = p->ts,
        .tag = mx_slice_make(p->tag, p->tag_len),
        .verb = cmdname,
        .name = p->cmd == I_UNKNOWN ? NULL : cmds[p->cmd].name,
        .uid = p->uid,
        .arg = arg,
        .arg_wire = arg_wire,
        .shown = shown,
        .mailbox = mx_text_slice(&p->mailbox),
        .mailbox_wire = p->mailbox.wire,
        .pipelined = pipelined,
        .injected = injected,
        .explain = explain,
        .state = istate_names[st],
    };
    mx_mail_command_record(&s->m, &c);
}

static void mailbox_fields(struct mx_event *ev, const struct mailbox *m)
{
    mx_ev_text_cut(ev, "name", &m->name);
    if (m->has_exists)
        mx_ev_uint(ev, "exists", m->exists);
    if (m->has_recent)
        mx_ev_uint(ev, "recent", m->recent);
    if (m->has_uidvalidity)
        mx_ev_uint(ev, "uidvalidity", m->uidvalidity);
    if (m->has_uidnext)
        mx_ev_uint(ev, "uidnext", m->uidnext);
    mx_ev_bool(ev, "read_only", m->read_only);
}

/* ---- The server side ---- */

static void idle_end(struct imap *s, mx_frame_t f, mx_time_t ts)
{
    if (!s->idle.on)
        return;
    s->idle.on = false;
    s->idles++;
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.idle", s->idle.start);
    mx_ev_text_cut(ev, "tag", &s->idle.tag);
    mx_ev_time(ev, "start", s->idle.start);
    if (ts != MX_TIME_NONE)
        mx_ev_time(ev, "end", ts);
    double dur = mx_time_secs(s->idle.start, ts);
    mx_ev_double(ev, "duration", dur);
    mx_ev_uint(ev, "untagged", s->idle.untagged);
    mx_ev_frames(ev, s->idle.frame, f ? f : s->idle.frame);
    mx_ev_text(ev, "IDLE for %.1f s, %u update%s from the server", dur, s->idle.untagged,
               s->idle.untagged == 1 ? "" : "s");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

static void mailbox_keep(struct imap *s, const struct mailbox *m)
{
    if (s->n_boxes == IMAP_MAX_MAILBOXES) {
        s->boxes_dropped++;
        s->selected = NULL;
        return;
    }
    s->boxes[s->n_boxes] = *m;
    s->selected = &s->boxes[s->n_boxes++];
}

/* RFC 9051 §6.2.1: both sides negotiate TLS after the OK's CRLF; the host observes it. */
static void start_tls(struct imap *s)
{
    s->tls = true;
    s->tls_side[MX_DIR_S2C] = true;
    s->tls_side[MX_DIR_C2S] = true;
    mx_ctx_starttls(s->m.ctx, MX_DIR_S2C, A_STARTTLS_SERVER_INJECTION);
    mx_ctx_starttls(s->m.ctx, MX_DIR_C2S, A_STARTTLS_SERVER_INJECTION);
}

static void start_compress(struct imap *s)
{
    for (int d = 0; d < 2; d++) {
        struct inflater *in = &s->inf[d];
        if (in->on)
            continue;
        memset(&in->z, 0, sizeof(in->z));
        /* RFC 4978 §3: raw deflate (RFC 1951), no zlib header. */
        if (inflateInit2(&in->z, -15) == Z_OK)
            in->on = true;
        else
            in->broken = true;
    }
    s->compressed = true;
}

static void client_line(struct imap *s, struct line *l, mx_frame_t a, mx_frame_t b, mx_time_t ts);
static void line_reset(struct line *l);

/* The server answered a command whose synchronising literal it was asked to
 * accept with its completion (NO, BAD): the literal never comes (RFC 9051
 * §7.5). The command ends where it stopped. */
static void literal_refused(struct imap *s)
{
    struct line *l = &s->line[MX_DIR_C2S];
    s->wait_cont = false;
    if (l->msg) {
        mx_message_free(l->msg);
        l->msg = NULL;
        s->appended--;
    }
    l->lit_left = 0;
    if (!l->emitted) {
        mx_frame_t a, b;
        mx_time_t ts;
        mx_span(s->m.ctx, MX_DIR_C2S, l->off, 1, &a, &b, &ts);
        client_line(s, l, a, b, ts);
    }
    line_reset(l);
    mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
}

/* A tagged completion, as the handler of the command it completes sees it. */
struct completion {
    bool ok;
    struct mx_slice code; /* its response code, without brackets */
    mx_frame_t last;      /* its last frame */
    mx_time_t ts;
    bool disabled_before; /* LOGINDISABLED was announced before it */
};

/* A tagged completion: OK, NO or BAD (RFC 9051 §7.1). */
static void completion(struct imap *s, struct mx_slice tag, struct mx_slice status, struct mx_slice rest, mx_frame_t a,
                       mx_frame_t b, mx_time_t ts)
{
    struct mx_slice code, text;
    bool disabled_before = s->logindisabled; /* an OK to LOGIN may carry new capabilities */
    split_code(rest, &code, &text);
    resp_code(s, code);
    if (s->wait_cont && tag.len == s->wait_tag_len && !memcmp(tag.ptr, s->wait_tag, tag.len))
        literal_refused(s);
    struct pending *p = find_tag(s, tag);
    if (!p && !s->quiet && s->client_spoke) /* a one-sided capture has no commands to match */
        anomaly(s, MX_DIR_S2C, A_UNMATCHED_COMPLETION, s->line[MX_DIR_S2C].off, 1);
    bool ok = mx_ieq(status.ptr, status.len, "OK");
    bool no = mx_ieq(status.ptr, status.len, "NO");
    s->completions++;
    s->no += no;
    s->bad += !ok && !no;
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.response", ts);
    mx_ev_dir(ev, MX_DIR_S2C);
    mx_ev_frames(ev, a, b);
    mx_ev_wire(ev, "tag", tag);
    mx_ev_str(ev, "status", ok ? "OK" : no ? "NO" : "BAD");
    if (code.len)
        mx_ev_wire(ev, "resp_code", code_inner(code));
    mx_ev_wire_cut(ev, "text", text, lwire(&s->line[MX_DIR_S2C], text));
    double lat = 0;
    if (p) {
        mx_ev_obj(ev, "answers");
        mx_ev_str(ev, "command", cmds[p->cmd].name);
        if (p->uid)
            mx_ev_bool(ev, "by_uid", true);
        if (p->frame)
            mx_ev_uint(ev, "frame", p->frame);
        mx_ev_end(ev);
        lat = mx_time_secs(p->ts, ts);
        mx_ev_double(ev, "latency", lat);
        mx_mail_reply_times(&s->m, ev, p->ts, p->untagged && p->first_ts != MX_TIME_NONE ? p->first_ts : ts, ts);
        mx_ev_uint(ev, "untagged", p->untagged);
        if (p->cmd == I_FETCH) {
            mx_ev_uint(ev, "fetch_responses", p->fetches);
            mx_ev_uint(ev, "bodies", p->bodies);
        }
        if (p->search)
            mx_ev_uint(ev, "search_results", p->search_count);
        if ((p->cmd == I_SELECT || p->cmd == I_EXAMINE) && ok) {
            s->staged.name = p->mailbox;
            if (p->cmd == I_EXAMINE)
                s->staged.read_only = true;
            s->staged.frame = a;
            mx_ev_obj(ev, "selected");
            mailbox_fields(ev, &s->staged);
            mx_ev_end(ev);
        }
    }
    if (p && ok) {
        if (s->state != IS_LOGOUT && need_state(p->cmd) > s->state)
            s->state = need_state(p->cmd); /* the login or SELECT was not seen */
        if (cmds[p->cmd].next != IS_SAME)  /* RFC 9051 §3: the state diagram */
            s->state = cmds[p->cmd].next;
    } else if (p && (p->cmd == I_SELECT || p->cmd == I_EXAMINE) && s->state == IS_SELECTED) {
        s->state = IS_AUTHENTICATED; /* §6.3.2: a failed SELECT deselects */
    }
    if (mx_ctx_flow(s->m.ctx)->explain) {
        char ex[256], note[160] = "";
        if (no) /* the words of the NO, its response code among them (RFC 5530) */
            mx_diag_words_note(rest, note, sizeof(note));
        snprintf(ex, sizeof(ex), "%s%s",
                 ok   ? "OK: the command completed (RFC 9051 §7.1.1)."
                 : no ? "NO: the command failed; the text says why (RFC 9051 §7.1.2)."
                      : "BAD: the server did not understand the command (RFC 9051 §7.1.3).",
                 note);
        mx_ev_wire(ev, "explain", mx_slice_make(ex, strlen(ex))); /* it may quote wire bytes */
        mx_ev_str(ev, "state", istate_names[s->state]);
    }
    mx_ev_tone(ev, ok ? MX_TONE_GOOD : MX_TONE_BAD);
    mx_ev_text(ev, "%.*s %.*s%s%.*s%s%.*s   [%s, %.1f ms]", (int)tag.len, (const char *)tag.ptr, (int)status.len,
               (const char *)status.ptr, code.len ? " " : "", (int)(code.len < 120 ? code.len : 120),
               (const char *)code.ptr, text.len ? " " : "", (int)text.len, (const char *)text.ptr,
               p ? cmds[p->cmd].name : "no command seen", lat * 1e3);
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
    if (!p)
        return;
    if (cmds[p->cmd].done) {
        struct completion c = { ok, code_inner(code), b, ts, disabled_before };
        cmds[p->cmd].done(s, p, &c);
    }
    drop_pending(s, p);
}

/* --explain for an untagged response (RFC 9051 §7): the kinds a session
 * shows, by name; a response code (§7.1) is explained rather than its OK. */
static const struct {
    const char *kind;
    const char *meaning;
} untagged_kinds[] = {
    { "CAPABILITY", "the server lists what it supports; each item below (RFC 9051 §7.2.2)" },
    { "ENABLED", "the extensions ENABLE turned on (RFC 5161 §3.2)" },
    { "LIST", "one mailbox matching LIST: its attributes, hierarchy delimiter and name (RFC 9051 §7.3.1)" },
    { "LSUB", "one subscribed mailbox (RFC 3501 §7.2.3)" },
    { "NAMESPACE", "how mailbox names are organised: personal, other users', shared (RFC 9051 §7.3.2)" },
    { "STATUS", "a mailbox's counters (messages, unseen, UIDNEXT...) without selecting it (RFC 9051 §7.3.3)" },
    { "ESEARCH", "the messages SEARCH found, compactly: ranges, count, min, max (RFC 9051 §7.3.4)" },
    { "SEARCH", "the numbers of the messages SEARCH found (RFC 3501 §7.2.5)" },
    { "SORT", "the messages SORT found, in sorted order (RFC 5256 §4)" },
    { "THREAD", "the messages grouped into threads (RFC 5256 §4)" },
    { "FLAGS", "the flags defined in this mailbox (RFC 9051 §7.3.5)" },
    { "ID", "the server's name and version, answering ID (RFC 2971 §3.2)" },
    { "QUOTA", "a quota root's usage and limits (RFC 9208 §5.1)" },
    { "QUOTAROOT", "the quota roots of a mailbox (RFC 9208 §5.2)" },
    { "ACL", "a mailbox's access control list (RFC 4314 §3.6)" },
    { "MYRIGHTS", "the client's rights on a mailbox (RFC 4314 §3.8)" },
    { "METADATA", "annotations of the server or a mailbox (RFC 5464 §4.4)" },
    { "VANISHED", "UIDs of messages expunged, as QRESYNC reports them (RFC 7162 §3.2.10)" },
};

/* Response codes in brackets (RFC 9051 §7.1), as an untagged OK carries them. */
static const struct {
    const char *code;
    const char *meaning;
} resp_codes[] = {
    { "UIDVALIDITY", "the mailbox's UID validity: while it stays the same, a UID names the same message in every "
                     "session; a new value means the client must forget the UIDs it cached (RFC 9051 §2.3.1.1)" },
    { "UIDNEXT", "the UID the next message added to the mailbox will get (RFC 9051 §7.1)" },
    { "PERMANENTFLAGS", "the flags the client may change for good; \\* means it may create new keywords "
                        "(RFC 9051 §7.1)" },
    { "UNSEEN", "the number of the first unseen message (RFC 3501 §7.1; gone from IMAP4rev2)" },
    { "HIGHESTMODSEQ",
      "the mailbox's highest modification sequence, for CONDSTORE resynchronisation (RFC 7162 §3.1.2.1)" },
    { "NOMODSEQ", "the mailbox keeps no modification sequences (RFC 7162 §3.1.2.2)" },
    { "READ-WRITE", "the mailbox is open for changes (RFC 9051 §7.1)" },
    { "READ-ONLY", "the mailbox is open read-only (RFC 9051 §7.1)" },
    { "ALERT", "a message the client must show its user (RFC 9051 §7.1)" },
    { "CAPABILITY", "the server lists what it supports; each item below (RFC 9051 §7.1)" },
    { "CLOSED", "the mailbox selected before is closed; what follows is the new one's (RFC 7162 §3.2.11)" },
    { "MAILBOXID", "the mailbox's id, the same across renames (RFC 8474 §4.1)" },
    { "APPENDLIMIT", "the largest message APPEND accepts here (RFC 7889)" },
};

/* What the untagged response kind k (its number n when it has one, its
 * response code, the greeting or not) means, with the session's state. */
static void teach_untagged(struct imap *s, struct mx_event *ev, struct mx_slice k, const uint64_t *n,
                           struct mx_slice code, bool greeting, bool logout)
{
    char ex[512];
    const char *m = NULL;
    struct mx_slice cname = code;
    const uint8_t *sp = memchr(code.ptr, ' ', code.len);
    if (sp)
        cname.len = (size_t)(sp - code.ptr);
    bool cap_code = mx_ieq(cname.ptr, cname.len, "CAPABILITY");
    if (greeting && mx_ieq(k.ptr, k.len, "OK"))
        m = "the greeting: the server is ready and the client must log in first (not authenticated state, RFC 9051 "
            "§7.1.1)";
    else if (greeting && mx_ieq(k.ptr, k.len, "PREAUTH"))
        m = "the greeting: the connection is already authenticated (by its address or a tunnel); no login follows "
            "(RFC 9051 §7.1.4)";
    else if (greeting && mx_ieq(k.ptr, k.len, "BYE"))
        m = "the greeting: the server refuses the connection and closes it (RFC 9051 §7.1.5)";
    if (m && cname.len) {
        snprintf(ex, sizeof(ex), "%s; [%.*s] in it: %s", m, (int)cname.len, (const char *)cname.ptr,
                 cap_code ? "the capabilities, each below" : "a response code (RFC 9051 §7.1)");
        m = ex;
    }
    for (size_t i = 0; !m && cname.len && i < MX_ARRAY_LEN(resp_codes); i++)
        if (mx_ieq(cname.ptr, cname.len, resp_codes[i].code)) {
            snprintf(ex, sizeof(ex), "[%.*s] %s", (int)code.len, (const char *)code.ptr, resp_codes[i].meaning);
            m = ex;
        }
    if (m) {
    } else if (n && mx_ieq(k.ptr, k.len, "EXISTS")) {
        snprintf(ex, sizeof(ex),
                 "the mailbox holds %" PRIu64 " message%s; a new count means new mail (RFC 9051 §7.4.1)", *n,
                 *n == 1 ? "" : "s");
        m = ex;
    } else if (n && mx_ieq(k.ptr, k.len, "RECENT")) {
        snprintf(ex, sizeof(ex), "%" PRIu64 " message%s arrived since the mailbox was last opened (RFC 3501 §7.3.2)",
                 *n, *n == 1 ? "" : "s");
        m = ex;
    } else if (n && mx_ieq(k.ptr, k.len, "EXPUNGE")) {
        snprintf(ex, sizeof(ex),
                 "message %" PRIu64 " was removed; the numbers of the messages after it go down by one "
                 "(RFC 9051 §7.5.1)",
                 *n);
        m = ex;
    } else if (n && mx_ieq(k.ptr, k.len, "FETCH")) {
        snprintf(ex, sizeof(ex),
                 "data about message %" PRIu64 ": what FETCH asked for, or a flag change (RFC 9051 §7.5.2)", *n);
        m = ex;
    } else if (mx_ieq(k.ptr, k.len, "OK")) {
        m = "an informational message, no command's result (RFC 9051 §7.1.1)";
    } else if (mx_ieq(k.ptr, k.len, "NO")) {
        m = "a warning from the server, no command's result (RFC 9051 §7.1.2)";
    } else if (mx_ieq(k.ptr, k.len, "BAD")) {
        m = "an error the server cannot tie to a command (RFC 9051 §7.1.3)";
    } else if (mx_ieq(k.ptr, k.len, "BYE")) {
        m = logout ? "the server is closing the connection, as LOGOUT asked (RFC 9051 §7.1.5)"
                   : "the server is closing the connection on its own: idle timeout, shutdown (RFC 9051 §7.1.5)";
    } else {
        for (size_t i = 0; !m && i < MX_ARRAY_LEN(untagged_kinds); i++)
            if (mx_ieq(k.ptr, k.len, untagged_kinds[i].kind))
                m = untagged_kinds[i].meaning;
    }
    if (!m)
        m = "an untagged response mxray does not describe; untagged lines carry data, not a command's result "
            "(RFC 9051 §7)";
    mx_ev_wire(ev, "explain", mx_slice_make(m, strlen(m))); /* it may quote the response code */
    mx_ev_str(ev, "state", istate_names[s->state]);
    if (cap_code || mx_ieq(k.ptr, k.len, "CAPABILITY"))
        mx_teach_caps(ev, MX_TEACH_IMAP, &s->caps);
}

static void untagged(struct imap *s, struct tokz *z, mx_frame_t a, mx_frame_t b, mx_time_t ts)
{
    struct token t1 = next_tok(z);
    uint64_t num = 0;
    bool has_num = parse_u64(t1.v, &num);
    struct token kind = has_num ? next_tok(z) : t1;
    struct mx_slice k = kind.v;
    struct mx_slice rest = rest_of(z);
    struct pending *p = in_progress(s);
    s->untagged++;
    if (p && !p->untagged++)
        p->first_ts = ts;
    if (s->idle.on)
        s->idle.untagged++;
    bool status_word =
        !has_num && (mx_ieq(k.ptr, k.len, "OK") || mx_ieq(k.ptr, k.len, "NO") || mx_ieq(k.ptr, k.len, "BAD") ||
                     mx_ieq(k.ptr, k.len, "PREAUTH") || mx_ieq(k.ptr, k.len, "BYE"));
    struct mx_slice code = mx_slice_make(rest.ptr, 0), text = rest;
    bool greeting = false;
    if (status_word) {
        split_code(rest, &code, &text);
        resp_code(s, code);
        if (!s->greeted) {
            greeting = true;
            /* RFC 9051 §7.1.1, §7.1.4, §7.1.5: the greeting is OK, PREAUTH or BYE. */
            s->greeted = true;
            s->preauth = mx_ieq(k.ptr, k.len, "PREAUTH");
            if (s->preauth)
                s->state = IS_AUTHENTICATED; /* RFC 9051 §7.1.4 */
            mx_text_set(&s->greet_status, k);
            mx_text_set(&s->greeting, text);
            s->greeting.wire = mx_text_sat(lwire(&s->line[MX_DIR_S2C], text), 0);
            mx_mail_greeted(&s->m);
        }
    } else if (!has_num && mx_ieq(k.ptr, k.len, "CAPABILITY")) {
        caps_set(s, z);
    } else if (has_num && mx_ieq(k.ptr, k.len, "EXISTS")) {
        s->staged.exists = num;
        s->staged.has_exists = true;
        if (s->selected && (!p || (p->cmd != I_SELECT && p->cmd != I_EXAMINE))) {
            s->selected->exists = num;
            s->selected->has_exists = true;
        }
    } else if (has_num && mx_ieq(k.ptr, k.len, "RECENT")) {
        s->staged.recent = num;
        s->staged.has_recent = true;
    } else if (has_num && mx_ieq(k.ptr, k.len, "FETCH")) {
        if (p)
            p->fetches++;
        if (s->quiet && s->state < IS_SELECTED)
            s->state = IS_SELECTED; /* RFC 9051 §7.5.2: a mailbox is selected, picked up midstream */
    } else if (!has_num && (mx_ieq(k.ptr, k.len, "SEARCH") || mx_ieq(k.ptr, k.len, "SORT"))) {
        uint64_t n = 0;
        for (struct token t = next_tok(z); t.t == T_ATOM; t = next_tok(z))
            n += parse_u64(t.v, &num);
        if (p) {
            p->search = true;
            p->search_count += n;
        }
    }
    /* RFC 9051 §7.1.5: BYE outside LOGOUT is the server ending the session on
     * its own (autologout, shutdown, or refusal at connection time). */
    bool closes = status_word && mx_ieq(k.ptr, k.len, "BYE") && !s->quiet && !logout_pending(s);
    uint32_t unanswered = closes ? (uint32_t)s->pend.n : 0;
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.untagged", ts);
    mx_ev_dir(ev, MX_DIR_S2C);
    mx_ev_frames(ev, a, b);
    if (has_num)
        mx_ev_uint(ev, "number", num);
    mx_ev_wire(ev, "kind", k);
    if (code.len)
        mx_ev_wire(ev, "resp_code", code_inner(code));
    struct mx_slice shown = mx_slice_make(s->line[MX_DIR_S2C].shown, s->line[MX_DIR_S2C].shown_len);
    if (status_word)
        mx_ev_wire_cut(ev, "text", text, lwire(&s->line[MX_DIR_S2C], text));
    else
        mx_ev_wire_cut(ev, "text", shown, s->line[MX_DIR_S2C].shown_wire);
    if (p && !s->idle.on) {
        mx_ev_obj(ev, "during");
        mx_ev_wire(ev, "tag", mx_slice_make(p->tag, p->tag_len));
        mx_ev_str(ev, "command", cmds[p->cmd].name);
        mx_ev_end(ev);
    }
    if (closes) {
        mx_mail_close_fields(ev, unanswered);
        mx_mail_server_closed(&s->m, "BYE", code_inner(code), text, NULL, unanswered, a, b, ts);
    }
    bool bad = status_word && (mx_ieq(k.ptr, k.len, "NO") || mx_ieq(k.ptr, k.len, "BAD"));
    mx_ev_tone(ev, bad ? MX_TONE_BAD : closes ? MX_TONE_WARN : MX_TONE_NONE);
    if (status_word && mx_ieq(k.ptr, k.len, "BYE"))
        s->state = IS_LOGOUT; /* RFC 9051 §3 (4): the server closes */
    if (mx_ctx_flow(s->m.ctx)->explain)
        teach_untagged(s, ev, k, has_num ? &num : NULL, code_inner(code), greeting, logout_pending(s));
    char note[80];
    mx_ev_text(ev, "%.*s%s%s%s", (int)shown.len, (const char *)shown.ptr, closes ? "   [" : "",
               closes ? mx_mail_close_note(unanswered, note, sizeof(note)) : "", closes ? "]" : "");
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

/* "+ " (RFC 9051 §7.5): the server wants a literal, a SASL response, or is idling. */
static void continuation(struct imap *s, struct mx_slice text, mx_frame_t a, mx_frame_t b, mx_time_t ts)
{
    s->continuations++;
    const char *what = "continue";
    if (s->wait_cont) {
        what = "literal";
        s->wait_cont = false;
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
    } else if (s->auth_open) {
        what = "sasl";
        if (s->m.login)
            mx_mail_sasl_server(&s->m, &s->m.login->sasl, text, s->line[MX_DIR_S2C].off, 1);
    } else if (s->idle_open && !s->idle.on) {
        what = "idle";
        struct pending *p = NULL;
        for (size_t i = 0; i < s->pend.n; i++)
            if (((struct pending *)mx_buf_at(&s->pend, i))->cmd == I_IDLE)
                p = mx_buf_at(&s->pend, i);
        s->idle.on = true;
        s->idle.frame = a;
        s->idle.start = ts;
        s->idle.untagged = 0;
        mx_text_set(&s->idle.tag, p ? mx_slice_make(p->tag, p->tag_len) : mx_slice_make("", 0));
    }
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.continuation", ts);
    mx_ev_dir(ev, MX_DIR_S2C);
    mx_ev_frames(ev, a, b);
    mx_ev_str(ev, "for", what);
    mx_ev_wire_cut(ev, "text", text, lwire(&s->line[MX_DIR_S2C], text));
    if (mx_ctx_flow(s->m.ctx)->explain) {
        mx_ev_str(ev, "explain",
                  !strcmp(what, "literal")
                      ? "+: the server is ready for the literal the client announced (RFC 9051 §7.5)."
                  : !strcmp(what, "sasl") ? "+: the server's SASL challenge, in base64; the client answers with one "
                                            "base64 line, or * to cancel (RFC 9051 §6.2.2)."
                  : !strcmp(what, "idle") ? "+: the server is idling; it sends new untagged data as it comes, until "
                                            "the client sends DONE (RFC 2177)."
                                          : "+: the server asks the client to go on (RFC 9051 §7.5).");
        mx_ev_str(ev, "state", istate_names[s->state]);
        if (!strcmp(what, "sasl"))
            mx_teach_challenge_lines(ev, text);
    }
    mx_ev_text(ev, "+ %.*s   [%s]", (int)text.len, (const char *)text.ptr, what);
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

static void server_line(struct imap *s, struct line *l, mx_frame_t a, mx_frame_t b, mx_time_t ts)
{
    struct tokz z = tokz_of(l);
    struct token first = next_tok(&z);
    if (first.t == T_ATOM && first.v.len == 1 && first.v.ptr[0] == '+') {
        continuation(s, rest_of(&z), a, b, ts);
        return;
    }
    if (first.t == T_ATOM && first.v.len == 1 && first.v.ptr[0] == '*') {
        untagged(s, &z, a, b, ts);
        return;
    }
    struct token status = next_tok(&z);
    bool st =
        status.t == T_ATOM && (mx_ieq(status.v.ptr, status.v.len, "OK") || mx_ieq(status.v.ptr, status.v.len, "NO") ||
                               mx_ieq(status.v.ptr, status.v.len, "BAD"));
    if (first.t != T_ATOM || !st) {
        anomaly(s, MX_DIR_S2C, A_INVALID_RESPONSE, l->off, llen(l));
        return;
    }
    completion(s, first.v, status.v, rest_of(&z), a, b, ts);
}

/* ---- The client side ---- */

/* A command line, as its handler sees it, and what the handler decides. */
struct command {
    struct pending p; /* what waits for the completion */
    struct tokz z;    /* the arguments, from the first */
    const struct line *l;
    mx_frame_t a;
    mx_time_t ts;
    const char *shown; /* the arguments as shown, when they hold a secret */
    char shown_buf[160];
};

/* ---- What each command does (RFC 9051 §6 and the extensions) ---- */

/* RFC 9051 §6.2.3: LOGIN userid password, in the clear unless under TLS. */
static void sent_login(struct imap *s, struct command *c)
{
    struct token user = next_tok(&c->z), pass = next_tok(&c->z);
    struct mx_mail_login *lg = login_start(s, "LOGIN", mx_slice_make("IMAP-LOGIN", 10), c->a, c->ts);
    if (lg) {
        mx_sasl_set_user(&lg->sasl, astring(&user));
        mx_sasl_set_secret(&lg->sasl, astring(&pass), true);
        lg->sasl.secret_len = pass.t == T_LITERAL ? pass.lit_len : pass.v.len;
        lg->sasl.secret_frame = c->a; /* the LOGIN line (a literal password: its first frame) */
    }
    if (s->logindisabled && !s->tls)
        anomaly(s, MX_DIR_C2S, A_LOGIN_DISABLED_IGNORED, c->l->off, llen(c->l));
    if (!mx_ctx_flow(s->m.ctx)->show_secrets && pass.t != T_END) {
        struct mx_slice u = astring(&user);
        snprintf(c->shown_buf, sizeof(c->shown_buf), "%.*s <redacted %" PRIu64 " bytes>",
                 (int)(u.len < 64 ? u.len : 64), (const char *)u.ptr,
                 (uint64_t)(pass.t == T_LITERAL ? pass.lit_len : pass.v.len));
        c->shown = c->shown_buf;
    }
}

/* RFC 9051 §6.2.2: AUTHENTICATE mechanism, with RFC 4959's initial response. */
static void sent_authenticate(struct imap *s, struct command *c)
{
    struct token mech = next_tok(&c->z), ir = next_tok(&c->z);
    struct mx_mail_login *lg = login_start(s, "AUTHENTICATE", mech.v, c->a, c->ts);
    s->auth_open = true;
    if (lg && ir.t == T_ATOM && ir.v.len) { /* RFC 4959: SASL-IR */
        bool secret = mx_mail_sasl_client(&s->m, &lg->sasl, ir.v, c->l->off, llen(c->l));
        if (secret && !mx_ctx_flow(s->m.ctx)->show_secrets) {
            snprintf(c->shown_buf, sizeof(c->shown_buf), "%.*s <redacted %zu bytes>",
                     (int)(mech.v.len < 32 ? mech.v.len : 32), (const char *)mech.v.ptr, ir.v.len);
            c->shown = c->shown_buf;
        }
    }
}

/* A command whose first argument is a mailbox. */
static void sent_mailbox(struct imap *s, struct command *c)
{
    struct token t1 = next_tok(&c->z);
    mx_text_set(&c->p.mailbox, astring(&t1));
    if (c->p.cmd == I_SELECT || c->p.cmd == I_EXAMINE)
        memset(&s->staged, 0, sizeof(s->staged));
}

/* COPY and MOVE: a sequence set, then the mailbox. */
static void sent_copy(struct imap *s, struct command *c)
{
    (void)s;
    next_tok(&c->z);
    struct token t1 = next_tok(&c->z);
    mx_text_set(&c->p.mailbox, astring(&t1));
}

/* STARTTLS and COMPRESS: the session changes once the OK comes. */
static void sent_upgrade(struct imap *s, struct command *c)
{
    s->upgrade_pending = true;
    s->upgrade_cmd = c->p.cmd;
    if (c->p.cmd == I_STARTTLS)
        s->starttls_attempted = true;
}

static void sent_idle(struct imap *s, struct command *c)
{
    (void)c;
    s->idle_open = true;
}

static void sent_unknown(struct imap *s, struct command *c)
{
    s->m.unknown++;
    anomaly(s, MX_DIR_C2S, A_UNKNOWN_COMMAND, c->l->off, llen(c->l));
}

static void done_login(struct imap *s, const struct pending *p, const struct completion *c)
{
    if (s->m.login)
        login_finish(s, mx_mail_login_outcome(s->m.login, c->ok), c->code, c->last);
    if (c->ok && p->cmd == I_LOGIN && c->disabled_before && !s->tls)
        anomaly(s, MX_DIR_S2C, A_LOGIN_DISABLED_IGNORED, s->line[MX_DIR_S2C].off, 1);
    s->auth_open = false;
}

static void done_select(struct imap *s, const struct pending *p, const struct completion *c)
{
    (void)p;
    if (c->ok)
        mailbox_keep(s, &s->staged);
    else
        s->selected = NULL; /* RFC 9051 §6.3.2: a failed SELECT deselects */
}

static void done_close(struct imap *s, const struct pending *p, const struct completion *c)
{
    (void)p;
    if (c->ok)
        s->selected = NULL;
}

static void done_upgrade(struct imap *s, const struct pending *p, const struct completion *c)
{
    s->upgrade_pending = false;
    if (c->ok && p->cmd == I_STARTTLS)
        start_tls(s); /* RFC 9051 §6.2.1: the negotiation starts after this CRLF */
    if (c->ok && p->cmd == I_COMPRESS)
        start_compress(s);
    if (s->client_held)
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
}

static void done_idle(struct imap *s, const struct pending *p, const struct completion *c)
{
    (void)p;
    idle_end(s, c->last, c->ts);
    s->idle_open = false;
}

static const struct cmd_def cmds[I__COUNT] = {
    [I_UNKNOWN] = { "UNKNOWN", sent_unknown, NULL, IS_SAME, NULL },
    [I_CAPABILITY] = { "CAPABILITY", NULL, NULL, IS_SAME,
                       "Asks which capabilities and extensions the server supports (RFC 9051 §6.1.1)." },
    [I_NOOP] = { "NOOP", NULL, NULL, IS_SAME,
                 "Does nothing, but lets the server send pending updates (RFC 9051 §6.1.2)." },
    [I_LOGOUT] = { "LOGOUT", NULL, NULL, IS_LOGOUT, "Ends the session; the server says BYE (RFC 9051 §6.1.3)." },
    [I_STARTTLS] = { "STARTTLS", sent_upgrade, done_upgrade, IS_SAME,
                     "Asks to switch the connection to TLS (RFC 9051 §6.2.1)." },
    [I_AUTHENTICATE] = { "AUTHENTICATE", sent_authenticate, done_login, IS_AUTHENTICATED,
                         "Starts SASL authentication with the named mechanism (RFC 9051 §6.2.2)." },
    [I_LOGIN] = { "LOGIN", sent_login, done_login, IS_AUTHENTICATED,
                  "Logs in with a user name and a password, in clear unless under TLS (RFC 9051 §6.2.3)." },
    [I_SELECT] = { "SELECT", sent_mailbox, done_select, IS_SELECTED,
                   "Opens a mailbox to read and change it; the server reports its size and state (RFC 9051 §6.3.2)." },
    [I_EXAMINE] = { "EXAMINE", sent_mailbox, done_select, IS_SELECTED, "Opens a mailbox read-only (RFC 9051 §6.3.3)." },
    [I_CREATE] = { "CREATE", sent_mailbox, NULL, IS_SAME, "Creates a mailbox (RFC 9051 §6.3.4)." },
    [I_DELETE] = { "DELETE", sent_mailbox, NULL, IS_SAME, "Deletes a mailbox (RFC 9051 §6.3.5)." },
    [I_RENAME] = { "RENAME", sent_mailbox, NULL, IS_SAME, "Renames a mailbox (RFC 9051 §6.3.6)." },
    [I_SUBSCRIBE] = { "SUBSCRIBE", sent_mailbox, NULL, IS_SAME,
                      "Adds a mailbox to the subscribed list (RFC 9051 §6.3.7)." },
    [I_UNSUBSCRIBE] = { "UNSUBSCRIBE", sent_mailbox, NULL, IS_SAME,
                        "Removes a mailbox from the subscribed list (RFC 9051 §6.3.8)." },
    [I_LIST] = { "LIST", NULL, NULL, IS_SAME, "Lists mailbox names matching a pattern (RFC 9051 §6.3.9)." },
    [I_LSUB] = { "LSUB", NULL, NULL, IS_SAME, "Lists subscribed mailboxes (RFC 3501 §6.3.9)." },
    [I_NAMESPACE] = { "NAMESPACE", NULL, NULL, IS_SAME, "Asks how mailbox names are organised (RFC 9051 §6.3.10)." },
    [I_STATUS] = { "STATUS", sent_mailbox, NULL, IS_SAME,
                   "Asks for a mailbox's counts without opening it (RFC 9051 §6.3.11)." },
    [I_APPEND] = { "APPEND", sent_mailbox, NULL, IS_SAME,
                   "Uploads a message into a mailbox, for example a sent copy or a draft (RFC 9051 §6.3.12)." },
    [I_IDLE] = { "IDLE", sent_idle, done_idle, IS_SAME,
                 "Waits for the server to push changes as they happen, until DONE (RFC 2177)." },
    [I_CHECK] = { "CHECK", NULL, NULL, IS_SAME, NULL },
    [I_CLOSE] = { "CLOSE", NULL, done_close, IS_AUTHENTICATED,
                  "Closes the mailbox, removing the messages marked \\Deleted (RFC 9051 §6.4.1)." },
    [I_UNSELECT] = { "UNSELECT", NULL, done_close, IS_AUTHENTICATED,
                     "Closes the mailbox without removing anything (RFC 9051 §6.4.2)." },
    [I_EXPUNGE] = { "EXPUNGE", NULL, NULL, IS_SAME, "Removes the messages marked \\Deleted (RFC 9051 §6.4.3)." },
    [I_SEARCH] = { "SEARCH", NULL, NULL, IS_SAME, "Finds the messages matching criteria (RFC 9051 §6.4.4)." },
    [I_FETCH] = { "FETCH", NULL, NULL, IS_SAME,
                  "Retrieves data about messages: flags, sizes, envelopes, bodies or parts of them (RFC 9051 §6.4.5)." },
    [I_STORE] = { "STORE", NULL, NULL, IS_SAME,
                  "Changes messages' flags, such as \\Seen or \\Deleted (RFC 9051 §6.4.6)." },
    [I_COPY] = { "COPY", sent_copy, NULL, IS_SAME, "Copies messages to another mailbox (RFC 9051 §6.4.7)." },
    [I_MOVE] = { "MOVE", sent_copy, NULL, IS_SAME, "Moves messages to another mailbox (RFC 9051 §6.4.8)." },
    [I_ENABLE] = { "ENABLE", NULL, NULL, IS_SAME,
                   "Turns on extensions that change how the server talks (RFC 9051 §6.3.1)." },
    [I_ID] = { "ID", NULL, NULL, IS_SAME, "Exchanges the client's and the server's names and versions (RFC 2971)." },
    [I_COMPRESS] = { "COMPRESS", sent_upgrade, done_upgrade, IS_SAME,
                     "Compresses the rest of the session with DEFLATE, both ways (RFC 4978)." },
    [I_GETQUOTA] = { "GETQUOTA", NULL, NULL, IS_SAME, NULL },
    [I_GETQUOTAROOT] = { "GETQUOTAROOT", sent_mailbox, NULL, IS_SAME, NULL },
    [I_SETQUOTA] = { "SETQUOTA", NULL, NULL, IS_SAME, NULL },
    [I_GETACL] = { "GETACL", sent_mailbox, NULL, IS_SAME, NULL },
    [I_SETACL] = { "SETACL", NULL, NULL, IS_SAME, NULL },
    [I_MYRIGHTS] = { "MYRIGHTS", sent_mailbox, NULL, IS_SAME, NULL },
    [I_SORT] = { "SORT", NULL, NULL, IS_SAME, NULL },
    [I_THREAD] = { "THREAD", NULL, NULL, IS_SAME, NULL },
    [I_GETMETADATA] = { "GETMETADATA", NULL, NULL, IS_SAME, NULL },
    [I_SETMETADATA] = { "SETMETADATA", NULL, NULL, IS_SAME, NULL },
    [I_XLIST] = { "XLIST", NULL, NULL, IS_SAME, NULL },
};

/* The command of a name (case-insensitive), I_UNKNOWN for one IMAP and its common extensions do not define. */
static enum cmd cmd_of(struct mx_slice v)
{
    for (int i = I_CAPABILITY; i <= I_XLIST; i++)
        if (mx_ieq(v.ptr, v.len, cmds[i].name))
            return (enum cmd)i;
    return I_UNKNOWN;
}

/* A SASL response line while AUTHENTICATE is open (RFC 9051 §6.2.2). */
static void auth_line(struct imap *s, struct line *l, mx_frame_t a, mx_frame_t b, mx_time_t ts)
{
    struct mx_slice data = mx_trim_cmd(mx_slice_make(lbytes(l), llen(l)));
    bool secret = mx_mail_sasl_client(&s->m, s->m.login ? &s->m.login->sasl : NULL, data, l->off, llen(l));
    mx_mail_auth_data_record(&s->m, data, secret, s->m.login && s->m.login->sasl.cancelled, a, b, ts);
}

static void client_line(struct imap *s, struct line *l, mx_frame_t a, mx_frame_t b, mx_time_t ts)
{
    mx_mail_client_line(&s->m, mx_slice_make(lbytes(l), llen(l)), l->off, llen(l));
    if (s->idle_open) {
        /* RFC 2177 §3: "DONE" ends the IDLE; nothing else is allowed. */
        if (mx_ieq(lbytes(l), llen(l), "DONE")) {
            struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.command", ts);
            mx_ev_dir(ev, MX_DIR_C2S);
            mx_ev_frames(ev, a, b);
            mx_ev_str(ev, "command", "DONE");
            mx_ev_text(ev, "DONE");
            mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
            return;
        }
    }
    if (s->auth_open) {
        auth_line(s, l, a, b, ts);
        return;
    }
    struct tokz z = tokz_of(l);
    struct token tag = next_tok(&z), cmd = next_tok(&z);
    if (tag.t != T_ATOM || cmd.t != T_ATOM || tag.v.len > IMAP_TAG - 1 ||
        (tag.v.len == 1 && (tag.v.ptr[0] == '*' || tag.v.ptr[0] == '+'))) {
        if (!s->quiet)
            anomaly(s, MX_DIR_C2S, A_INVALID_COMMAND, l->off, llen(l));
        return;
    }
    struct pending p;
    memset(&p, 0, sizeof(p));
    memcpy(p.tag, tag.v.ptr, tag.v.len);
    p.tag_len = (uint8_t)tag.v.len;
    p.frame = a;
    p.ts = ts;
    struct mx_slice cmdname = cmd.v;
    p.cmd = cmd_of(cmd.v);
    if (mx_ieq(cmd.v.ptr, cmd.v.len, "UID")) { /* RFC 9051 §6.4.9 */
        struct token sub = next_tok(&z);
        p.uid = true;
        p.cmd = cmd_of(sub.v);
        cmdname = sub.v;
    }
    struct tokz args = z;
    struct mx_slice shown_line = mx_slice_make(l->shown, l->shown_len);
    /* The argument as shown: the line's text after the command. */
    struct mx_slice arg = mx_slice_make(shown_line.ptr, 0);
    {
        size_t skip = args.pos;
        if (skip <= shown_line.len)
            arg = mx_trim_cmd(mx_slice_make(shown_line.ptr + skip, shown_line.len - skip));
    }
    /* A cut line: the argument's real length runs to the line's end. */
    uint64_t arg_wire = l->shown_wire > l->shown_len ? l->shown_wire - (uint64_t)(arg.ptr - shown_line.ptr) : 0;
    if (s->server_lost && !s->m.pipelined) {
        /* Server bytes were lost, and this client never pipelined: it
         * waited for the completions still pending, which were in the hole. */
        mx_buf_clear(&s->pend, false);
        s->upgrade_pending = false;
        if (s->m.login)
            login_finish(s, MX_LOGIN_NO_REPLY, mx_slice_make("", 0), 0);
        idle_end(s, 0, ts);
        s->idle_open = false;
    }
    s->server_lost = false;
    bool injected = s->upgrade_pending && s->upgrade_cmd == I_STARTTLS;
    bool pipelined = s->pend.n > 0;
    if (injected)
        anomaly(s, MX_DIR_C2S, A_STARTTLS_CLIENT_INJECTION, l->off, llen(l));
    struct command c = { .p = p, .z = z, .l = l, .a = a, .ts = ts };
    if (cmds[p.cmd].sent)
        cmds[p.cmd].sent(s, &c);
    if (c.z.odd_spacing)
        anomaly(s, MX_DIR_C2S, A_COMMAND_SPACING, l->off, llen(l));
    p = c.p;
    s->m.commands++;
    s->m.pipelined += pipelined;
    if (find_tag(s, tag.v))
        anomaly(s, MX_DIR_C2S, A_DUPLICATE_TAG, l->off, llen(l));
    command_event(s, &p, cmdname, arg, arg_wire, c.shown, pipelined, injected, a, b);
    switch (mx_buf_append(&s->pend, &p, 1)) {
    case MX_BUF_CAPPED:
        mx_mail_anomaly(&s->m, MX_DIR_C2S, MX_MAIL_TOO_MANY_PENDING, l->off, llen(l));
        break;
    case MX_BUF_NOMEM:
        mx_ctx_fail(s->m.ctx);
        break;
    case MX_BUF_OK:
        break;
    }
}

/* ---- Line assembly ---- */

static void line_reset(struct line *l)
{
    struct mx_buf text = l->text;
    mx_buf_clear(&text, text.cap > (16u << 10)); /* a long line's buffer is not kept for the next */
    mx_message_free(l->msg);
    memset(l, 0, sizeof(*l));
    l->text = text;
}

/* Appends n bytes of line l; `at` is the stream offset of p[0]. */
static void line_append(struct imap *s, struct line *l, enum mx_dir d, const uint8_t *p, size_t n, uint64_t at)
{
    if (l->overflow || !n) {
        l->dropped += n;
        return;
    }
    if (llen(l) + n > IMAP_MAX_LINE) {
        l->overflow = true;
        l->cross = mx_ctx_frame_at(s->m.ctx, d, at + (IMAP_MAX_LINE - llen(l))).frame;
        l->dropped += llen(l) + n - IMAP_MAX_LINE;
        n = IMAP_MAX_LINE - llen(l);
    }
    if (mx_buf_append(&l->text, p, n) == MX_BUF_NOMEM) {
        mx_ctx_fail(s->m.ctx);
        l->overflow = true;
    }
}

static void shown_append(struct line *l, const uint8_t *p, size_t n)
{
    size_t room = IMAP_SHOWN - l->shown_len;
    bool cut = l->shown_wire > l->shown_len;
    l->shown_wire += n;
    if (cut) /* nothing after a cut */
        n = 0;
    if (n > room)
        n = room;
    memcpy(l->shown + l->shown_len, p, n);
    l->shown_len = (uint16_t)(l->shown_len + n);
}

/* A literal spec at the end of a segment: "{" number ["+" / "-"] "}", also
 * "~{...}" (literal8, RFC 3516). Returns 0 when there is none, -1 when it
 * is invalid, 1 with *len and *nonsync set. */
static int literal_spec(const struct line *l, uint64_t *len, bool *nonsync)
{
    size_t n = l->tail_len;
    const uint8_t *t = l->tail;
    if (n < 3 || t[n - 1] != '}')
        return 0;
    size_t end = n - 1;
    char mod = 0;
    if (t[end - 1] == '+' || t[end - 1] == '-') {
        mod = (char)t[end - 1];
        end--;
    }
    size_t start = end;
    while (start > 0 && t[start - 1] >= '0' && t[start - 1] <= '9')
        start--;
    if (start == 0 || t[start - 1] != '{')
        return 0;
    if (start == end)
        return -1;
    if (end - start > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = start; i < end; i++) {
        uint64_t d = (uint64_t)(t[i] - '0');
        if (v > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return -1; /* number64 is at most 2^63 - 1 (RFC 9051 §4.2) */
        v = v * 10 + d;
    }
    /* RFC 7888: LITERAL+ never waits; LITERAL- only for 4096 octets or fewer. */
    *nonsync = mod == '+' || (mod == '-' && v <= 4096);
    *len = v;
    return 1;
}

/* Midstream or after a gap, lines are skipped until one is surely the start
 * of a command (a tag and a known command) or of a response. */
static bool resync_ok(struct imap *s, enum mx_dir d, const struct line *l)
{
    if (!s->resync[d])
        return true;
    struct tokz z = tokz_of(l);
    struct token t1 = next_tok(&z), t2 = next_tok(&z);
    bool start;
    if (d == MX_DIR_S2C)
        start = (t1.t == T_ATOM && t1.v.len == 1 && (t1.v.ptr[0] == '*' || t1.v.ptr[0] == '+')) ||
                (t2.t == T_ATOM && (mx_ieq(t2.v.ptr, t2.v.len, "OK") || mx_ieq(t2.v.ptr, t2.v.len, "NO") ||
                                    mx_ieq(t2.v.ptr, t2.v.len, "BAD")));
    else
        start = t1.t == T_ATOM && t2.t == T_ATOM && (cmd_of(t2.v) != I_UNKNOWN || mx_ieq(t2.v.ptr, t2.v.len, "UID"));
    if (start)
        s->resync[d] = false;
    return start;
}

/* A client line whose record was written at its first literal is complete:
 * LOGIN learns its arguments that were literals. */
static void client_line_done(struct imap *s, const struct line *l)
{
    struct tokz z = tokz_of(l);
    struct token tag = next_tok(&z), cmd = next_tok(&z);
    if (tag.t != T_ATOM || !mx_ieq(cmd.v.ptr, cmd.v.len, "LOGIN") || !s->m.login ||
        strcmp(s->m.login->command, "LOGIN"))
        return;
    struct token user = next_tok(&z), pass = next_tok(&z);
    if (user.t != T_LITERAL || !user.elided)
        mx_sasl_set_user(&s->m.login->sasl, astring(&user));
    if (pass.t == T_LITERAL && !pass.elided) {
        mx_sasl_set_secret(&s->m.login->sasl, pass.v, true);
        s->m.login->sasl.secret_len = pass.lit_len;
        /* The line ends in this call's bytes, which carry its last literal. */
        s->m.login->sasl.secret_frame =
            mx_ctx_frame_at(s->m.ctx, MX_DIR_C2S, mx_ctx_offset(s->m.ctx, MX_DIR_C2S)).frame;
    }
}

/* The end of a text segment (its LF at stream offset off): a literal follows,
 * or the logical line is complete. */
static void segment_end(struct imap *s, enum mx_dir d, uint64_t off)
{
    struct line *l = &s->line[d];
    uint64_t len;
    bool nonsync;
    int spec = literal_spec(l, &len, &nonsync);
    if (spec < 0)
        anomaly(s, d, A_LITERAL_INVALID, off, 1);
    if (spec > 0) {
        if (len > IMAP_LITERAL_LIMIT)
            anomaly(s, d, A_LITERAL_TOO_LARGE, off, 1);
        bool kept_entry = l->n_lit < IMAP_MAX_LITERALS;
        if (kept_entry) {
            l->lit[l->n_lit].pos = llen(l);
            l->lit[l->n_lit].len = len;
            l->lit[l->n_lit].kept = false;
            l->n_lit++;
        } else {
            anomaly(s, d, A_TOO_MANY_LITERALS, off, 1);
        }
        if (d == MX_DIR_C2S && !l->emitted && !s->auth_open && resync_ok(s, d, l)) {
            /* The command is known by its first literal: its record comes
             * now, before the continuation and the literal. */
            mx_frame_t a, b;
            mx_time_t ts;
            mx_span(s->m.ctx, d, l->off, (size_t)(off + 1 - l->off), &a, &b, &ts);
            mx_mail_seen(&s->m, ts);
            client_line(s, l, a, b, ts);
            l->emitted = true;
        }
        l->litmode = kept_entry ? literal_mode(s, d, len, &l->msg) : LIT_SKIP;
        if (kept_entry && l->litmode == LIT_KEEP)
            l->lit[l->n_lit - 1].kept = true;
        l->lit_left = len;
        l->seg_len = 0;
        l->tail_len = 0;
        if (d == MX_DIR_C2S && !nonsync && len && !s->tls_side[d] && !s->inf[d].on) {
            /* RFC 9051 §7.5: the client waits for "+" before sending it. */
            struct tokz z = tokz_of(l);
            struct token tag = next_tok(&z);
            s->wait_cont = true;
            s->wait_tag_len = (uint8_t)(tag.v.len < IMAP_TAG ? tag.v.len : 0);
            memcpy(s->wait_tag, tag.v.ptr, s->wait_tag_len);
        }
        if (!len && l->msg) {
            mx_message_end(l->msg);
            mx_message_free(l->msg);
            l->msg = NULL;
        }
        return;
    }
    mx_frame_t a, b;
    mx_time_t ts;
    mx_span(s->m.ctx, d, l->off, (size_t)(off + 1 - l->off), &a, &b, &ts);
    if (l->first.frame) { /* the line's start may be in a frame the host no longer knows */
        a = l->first.frame;
        ts = l->first.ts;
    }
    mx_mail_seen(&s->m, ts);
    if (l->overflow) /* its frames: where it starts, where it crossed the cap */
        mx_ctx_anomaly_frames(s->m.ctx, d, A_LONG_LINE, a, l->cross ? l->cross : b, ts);
    if (l->bare_lf)
        anomaly(s, d, A_BARE_LF, off, 1);
    if (!resync_ok(s, d, l)) {
        s->resync_skipped += off + 1 - l->off;
        line_reset(l);
        return;
    }
    if (d == MX_DIR_C2S && l->emitted)
        client_line_done(s, l);
    else if (d == MX_DIR_C2S)
        client_line(s, l, a, b, ts);
    else
        server_line(s, l, a, b, ts);
    line_reset(l);
}

/* Literal bytes of line d. */
static size_t literal_bytes(struct imap *s, enum mx_dir d, const uint8_t *p, size_t n, uint64_t off)
{
    struct line *l = &s->line[d];
    size_t take = n < l->lit_left ? n : (size_t)l->lit_left;
    switch (l->litmode) {
    case LIT_KEEP:
        line_append(s, l, d, p, take, off);
        break;
    case LIT_MESSAGE:
        mx_message_feed(l->msg, mx_slice_make(p, take), off);
        break;
    case LIT_SKIP:
        break;
    }
    l->lit_left -= take;
    if (!l->lit_left && l->msg) {
        mx_message_end(l->msg);
        mx_message_free(l->msg);
        l->msg = NULL;
    }
    return take;
}

static void tail_append(struct line *l, const uint8_t *p, size_t n)
{
    if (n >= sizeof(l->tail)) {
        memcpy(l->tail, p + n - sizeof(l->tail), sizeof(l->tail));
        l->tail_len = sizeof(l->tail);
        return;
    }
    if (l->tail_len + n > sizeof(l->tail)) {
        size_t drop = l->tail_len + n - sizeof(l->tail);
        memmove(l->tail, l->tail + drop, l->tail_len - drop);
        l->tail_len = (uint8_t)(l->tail_len - drop);
    }
    memcpy(l->tail + l->tail_len, p, n);
    l->tail_len = (uint8_t)(l->tail_len + n);
}

/* Whether line d just switched to bytes that are not IMAP text. */
static bool switched(const struct imap *s, enum mx_dir d)
{
    return s->tls_side[d] || s->inf[d].on;
}

/* Bytes of direction d, in order; `off` is the stream offset of p[0] (after
 * COMPRESS: of the compressed byte being inflated, and `stream` is false).
 * Returns the bytes used: fewer than n when the client must wait for the
 * server, or when the session switched to TLS or compression. */
static size_t feed(struct imap *s, enum mx_dir d, const uint8_t *p, size_t n, uint64_t off, bool stream)
{
    struct line *l = &s->line[d];
    bool was_switched = switched(s, d);
    size_t pos = 0;
    while (pos < n) {
        if (l->lit_left) {
            if (d == MX_DIR_C2S && s->wait_cont)
                return pos; /* until "+" or the completion says whether it comes */
            pos += literal_bytes(s, d, p + pos, n - pos, stream ? off + pos : off);
            continue;
        }
        if (d == MX_DIR_C2S && s->upgrade_pending && !l->active &&
            (s->upgrade_cmd == I_COMPRESS || p[pos] == 0x16 || p[pos] == 0x80)) {
            s->client_held = true; /* TLS or deflate bytes sent before the OK */
            return pos;
        }
        if (!l->active) {
            l->active = true;
            l->off = stream ? off + pos : off;
            l->first = mx_ctx_frame_at(s->m.ctx, d, l->off);
        }
        const uint8_t *lf = memchr(p + pos, '\n', n - pos);
        size_t end = lf ? (size_t)(lf - p) : n;
        size_t text = end - pos;
        line_append(s, l, d, p + pos, text, stream ? off + pos : off);
        shown_append(l, p + pos, text);
        tail_append(l, p + pos, text);
        l->seg_len += text;
        if (!lf)
            return n;
        /* The segment ends: a CR before the LF belongs to the line end. */
        if (l->seg_len && l->tail_len && l->tail[l->tail_len - 1] == '\r') {
            l->tail_len--;
            if (!l->overflow && llen(l) && lbytes(l)[llen(l) - 1] == '\r')
                l->text.n--;
            else if (l->dropped)
                l->dropped--; /* the CR was among the bytes dropped */
            bool cut = l->shown_wire > l->shown_len;
            if (l->shown_wire)
                l->shown_wire--; /* the CR is on the wire's end, not in a cut text */
            if (!cut && l->shown_len && l->shown[l->shown_len - 1] == '\r')
                l->shown_len--;
        } else {
            l->bare_lf = true;
        }
        l->seg_len = 0;
        pos = end + 1;
        segment_end(s, d, stream ? off + end : off);
        if (!was_switched && switched(s, d))
            return pos;
    }
    return pos;
}

/* ---- COMPRESS=DEFLATE ---- */

static size_t inflate_bytes(struct imap *s, enum mx_dir d, struct mx_slice data, uint64_t base)
{
    struct inflater *in = &s->inf[d];
    uint8_t out[IMAP_INFLATE_OUT];
    in->z.next_in = (Bytef *)(uintptr_t)data.ptr;
    in->z.avail_in = (uInt)data.len;
    s->compressed_bytes[d] += data.len;
    while (in->z.avail_in && !in->broken) {
        in->z.next_out = out;
        in->z.avail_out = sizeof(out);
        int rc = inflate(&in->z, Z_SYNC_FLUSH);
        size_t got = sizeof(out) - in->z.avail_out;
        uint64_t at = base + (data.len - in->z.avail_in);
        s->inflated_bytes[d] += got;
        if (got)
            feed(s, d, out, got, at ? at - 1 : 0, false);
        if (rc == Z_STREAM_END || (rc != Z_OK && rc != Z_BUF_ERROR)) {
            if (rc != Z_STREAM_END) {
                anomaly(s, d, A_COMPRESSED_DATA_ERROR, at, in->z.avail_in);
                in->broken = true;
            }
            break;
        }
        if (rc == Z_BUF_ERROR && !got)
            break;
    }
    return data.len;
}

/* ---- Gaps and the end ---- */

static void imap_gap(void *state, enum mx_dir d, uint64_t len)
{
    struct imap *s = state;
    struct line *l = &s->line[d];
    s->quiet = true;
    if (s->tls_side[d] || s->inf[d].on)
        return; /* the TLS observer's, or undecodable from here on */
    if (l->lit_left) {
        if (l->msg)
            mx_message_gap(l->msg, len < l->lit_left ? len : l->lit_left);
        if (len < l->lit_left) {
            l->lit_left -= len;
            return;
        }
    }
    /* The line (or literal) was cut: drop it and resynchronise. A message
     * cut this way is partial; other lines just go (the gap record says it). */
    if (l->lit_left && l->msg)
        anomaly(s, d, A_PARTIAL_AFTER_GAP, mx_ctx_offset(s->m.ctx, d), 1);
    line_reset(l);
    s->resync[d] = true;
    if (d == MX_DIR_S2C)
        s->server_lost = true;
    if (d == MX_DIR_C2S) {
        s->wait_cont = false;
        s->auth_open = false;
    }
}

static void session_emit(struct imap *s)
{
    const struct mx_flow_info *fi = mx_ctx_flow(s->m.ctx);
    struct mx_event *ev = mx_ctx_begin(s->m.ctx, "imap.session", s->m.now);
    mx_ev_time(ev, "start", fi->start);
    if (s->greeted) {
        mx_ev_obj(ev, "greeting");
        mx_ev_text_cut(ev, "status", &s->greet_status);
        mx_ev_text_cut(ev, "text", &s->greeting);
        mx_ev_end(ev);
    }
    mx_ev_bool(ev, "preauth", s->preauth);
    mx_mail_describe_session_caps(&s->m, ev);
    if (s->pre_kept && s->pre_caps.first != s->caps.first) { /* a later list replaced it */
        mx_mail_describe_caps(ev, "capabilities_before_login", &s->pre_caps);
        mx_mail_describe_caps_frames(ev, "capabilities_before_login_frames", &s->pre_caps);
    }
    mx_ev_bool(ev, "logindisabled", s->logindisabled_seen);
    mx_ev_obj(ev, "starttls");
    mx_ev_bool(ev, "offered", s->starttls_offered);
    mx_ev_bool(ev, "attempted", s->starttls_attempted);
    mx_ev_bool(ev, "upgraded", s->tls && !mx_ctx_flow(s->m.ctx)->tls_port);
    mx_ev_end(ev);
    mx_ev_bool(ev, "in_tls", s->tls);
    mx_ev_bool(ev, "compressed", s->compressed);
    mx_mail_describe_logins(&s->m, ev);
    mx_ev_arr(ev, "mailboxes");
    for (unsigned i = 0; i < s->n_boxes; i++) {
        mx_ev_obj(ev, NULL);
        mailbox_fields(ev, &s->boxes[i]);
        mx_ev_frames(ev, s->boxes[i].frame, s->boxes[i].frame);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    mx_ev_uint(ev, "commands", s->m.commands);
    mx_ev_uint(ev, "completions", s->completions);
    mx_ev_uint(ev, "no", s->no);
    mx_ev_uint(ev, "bad", s->bad);
    mx_ev_uint(ev, "untagged", s->untagged);
    mx_ev_uint(ev, "pipelined_commands", s->m.pipelined);
    mx_ev_uint(ev, "unknown_commands", s->m.unknown);
    mx_ev_uint(ev, "fetched", s->fetched);
    mx_ev_uint(ev, "appended", s->appended);
    mx_ev_uint(ev, "idles", s->idles);
    if (s->resync_skipped)
        mx_ev_uint(ev, "midstream_skipped", s->resync_skipped);
    if (s->compressed) {
        mx_ev_obj(ev, "compression");
        mx_ev_uint(ev, "c2s_in", s->compressed_bytes[MX_DIR_C2S]);
        mx_ev_uint(ev, "c2s_out", s->inflated_bytes[MX_DIR_C2S]);
        mx_ev_uint(ev, "s2c_in", s->compressed_bytes[MX_DIR_S2C]);
        mx_ev_uint(ev, "s2c_out", s->inflated_bytes[MX_DIR_S2C]);
        mx_ev_end(ev);
    }
    mx_mail_describe_tls(&s->m, ev, s->tls);
    mx_mail_describe_proxy(&s->m, ev);
    mx_mail_describe_close(&s->m, ev);
    mx_mail_describe_waiting(ev, (uint32_t)s->pend.n);
    unsigned ok = mx_mail_logins_ok(&s->m);
    char tls[96], closed[320];
    mx_ev_text(ev,
               "IMAP session: %" PRIu64 " command%s, %" PRIu64 " NO, %" PRIu64 " BAD, %" PRIu64
               " message bod%s fetched, %" PRIu64 " appended%s%s%s",
               s->m.commands, s->m.commands == 1 ? "" : "s", s->no, s->bad, s->fetched, s->fetched == 1 ? "y" : "ies",
               s->appended, mx_mail_tls_summary(&s->m, s->tls, s->starttls_attempted, tls, sizeof(tls)),
               ok ? ", logged in" : "", mx_mail_close_summary(&s->m, closed, sizeof(closed)));
    mx_event_emit(mx_ctx_sink(s->m.ctx), ev);
}

static void imap_end(void *state, enum mx_dir d)
{
    struct imap *s = state;
    struct line *l = &s->line[d];
    s->ended[d] = true;
    if (l->lit_left && !s->tls_side[d]) {
        anomaly(s, d, A_LITERAL_INCOMPLETE, mx_ctx_offset(s->m.ctx, d), 0);
        if (l->msg) {
            mx_message_cut(l->msg);
            mx_message_end(l->msg);
        }
    }
    line_reset(l);
    if (d == MX_DIR_S2C && (s->wait_cont || s->client_held)) {
        s->wait_cont = false;
        s->upgrade_pending = false;
        mx_ctx_wake(s->m.ctx, MX_DIR_C2S);
    }
    if (!s->ended[0] || !s->ended[1])
        return;
    if (s->m.login)
        login_finish(s, MX_LOGIN_NO_REPLY, mx_slice_make("", 0), 0);
    idle_end(s, 0, s->m.now);
    mx_mail_tls_end(&s->m);
    session_emit(s);
}

/* ---- The dissector interface ---- */

static void *imap_new(struct mx_dissect_ctx *ctx)
{
    struct imap *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    mx_mail_init(&s->m, ctx, &mx_imap_mail);
    mx_buf_init(&s->pend, sizeof(struct pending), 4, IMAP_MAX_PENDING);
    mx_caps_init(&s->caps, IMAP_CAPS);
    mx_caps_init(&s->pre_caps, IMAP_CAPS);
    s->m.caps = &s->caps;
    for (int d = 0; d < 2; d++)
        mx_buf_init(&s->line[d].text, 1, 256, IMAP_MAX_LINE);
    if (!mx_ctx_flow(ctx)->handshake) {
        s->quiet = true;
        s->resync[0] = s->resync[1] = true;
    }
    s->tls = mx_ctx_flow(ctx)->tls_port; /* what TLS carries, decrypted (RFC 8314 §3.3) */
    return s;
}

static void imap_inside_tls(void *state, enum mx_dir d)
{
    struct imap *s = state;
    s->tls_side[d] = false;
}

static void imap_free(void *state)
{
    struct imap *s = state;
    if (!s)
        return;
    for (int d = 0; d < 2; d++) {
        mx_message_free(s->line[d].msg);
        mx_buf_free(&s->line[d].text);
        if (s->inf[d].on)
            inflateEnd(&s->inf[d].z);
    }
    mx_buf_free(&s->pend);
    mx_caps_free(&s->caps);
    mx_caps_free(&s->pre_caps);
    mx_mail_free(&s->m);
    free(s);
}

/* zlib.h: inflate needs 1 << windowBits bytes (32 KiB for RFC 4978's raw
 * deflate) plus about 7 KiB. */
#define IMAP_INFLATE_BYTES ((32u + 7u) << 10)

static size_t imap_bytes(const void *state)
{
    const struct imap *s = state;
    size_t n = sizeof(*s) + mx_buf_bytes(&s->pend) + mx_buf_bytes(&s->caps.b);
    for (int d = 0; d < 2; d++)
        n +=
            mx_buf_bytes(&s->line[d].text) + mx_message_bytes(s->line[d].msg) + (s->inf[d].on ? IMAP_INFLATE_BYTES : 0);
    return n;
}

/* Bytes of d (mx_mail_parse): literals in both directions, inflated after COMPRESS. */
static struct mx_parse_result imap_read(void *state, enum mx_dir d, struct mx_slice data, unsigned flags)
{
    struct imap *s = state;
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    uint64_t base = mx_ctx_offset(s->m.ctx, d);
    if (d == MX_DIR_C2S) {
        s->client_held = false;
        s->client_spoke |= data.len > 0;
    }
    size_t pos = 0;
    while (pos < data.len) {
        struct mx_slice rest = mx_slice_make(data.ptr + pos, data.len - pos);
        if (s->tls_side[d])
            break; /* the rest is TLS: the host's */
        if (s->inf[d].on) {
            pos += inflate_bytes(s, d, rest, base + pos);
            break;
        }
        size_t k = feed(s, d, rest.ptr, rest.len, base + pos, true);
        pos += k;
        if (k < rest.len && !switched(s, d)) {
            if (!(flags & MX_CHUNK_END))
                break; /* held: the engine keeps the rest */
            /* The server never answered: the held bytes are read as they come. */
            s->wait_cont = false;
            s->upgrade_pending = false;
        }
    }
    r.consumed = pos;
    return r;
}

const struct mx_dissector mx_imap_dissector = {
    .name = "imap",
    .state_new = imap_new,
    .state_free = imap_free,
    .parse = mx_mail_parse,
    .anomalies = imap_anomalies,
    .n_anomalies = MX_ARRAY_LEN(imap_anomalies),
    .state_bytes = imap_bytes,
};
