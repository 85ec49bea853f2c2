/* internal.h - what the SMTP dissector's files share: the session's state, its
 * transactions and recipients, and the calls between smtp.c (commands, replies, the
 * session) and txn.c (transactions and their records). Only dissectors/smtp/ includes it. */
#ifndef MX_SMTP_INTERNAL_H
#define MX_SMTP_INTERNAL_H

#include "core/buf.h"
#include "dissectors/mail/session.h"
#include "dissectors/smtp/codes.h"
#include "event/event.h"

#include <stddef.h>

/* Caps (STYLE.md rule 4). Lines past them raise an anomaly and resync at the next LF. */
#define SMTP_MAX_CMD_LINE 16384  /* RFC 5321 §4.5.3.1.4 says 512; RFC 4954 §4 lets AUTH reach 12288 */
#define SMTP_MAX_REPLY_LINE 4096 /* RFC 5321 §4.5.3.1.5 says 512; real servers go past it */
#define SMTP_MAX_REPLY_LINES 256
#define SMTP_MAX_PENDING 512 /* commands awaiting a reply (RFC 2920 pipelining) */
#define SMTP_MAX_RCPTS 1000  /* recipients kept per transaction; more are counted */
#define SMTP_CAPS_BYTES 2048 /* EHLO keywords kept (each entry costs 2 more bytes) */

/* Message bytes held for the reply to DATA while the server was never heard
 * (RFC 5321 §3.1: it greets first); past them its side is taken as not captured. */
#define SMTP_HOLD_UNHEARD 65536

/* Anomalies: stable names, in the order of this list (the flow record's). */
#define SMTP_ANOMALIES(X)                                                                                       \
    X(LONG_COMMAND_LINE, "a command line longer than the cap")                                                  \
    X(LONG_REPLY_LINE, "a reply line longer than the cap")                                                      \
    X(INVALID_REPLY_LINE, "a server line that is not a reply (RFC 5321 §4.2)")                                  \
    X(REPLY_CODE_MISMATCH, "lines of one multi-line reply carry different codes (RFC 5321 §4.2.1)")             \
    X(TOO_MANY_REPLY_LINES, "a multi-line reply longer than the cap")                                           \
    X(UNMATCHED_REPLY, "a reply with no command waiting for it")                                                \
    X(TOO_MANY_PENDING_COMMANDS, "more commands awaiting replies than the cap")                                 \
    X(UNKNOWN_COMMAND, "a command verb SMTP does not define")                                                   \
    X(BARE_LF, "a line ended by LF without CR (RFC 5321 §2.3.8)")                                               \
    X(COMMAND_OUT_OF_SEQUENCE, "a command the session state does not allow (RFC 5321 §4.1.4)")                  \
    X(NESTED_MAIL, "MAIL while a transaction is open")                                                          \
    X(TOO_MANY_RECIPIENTS, "more recipients in a transaction than the cap")                                     \
    X(BDAT_INVALID_SIZE, "a BDAT chunk size that is not a number or is too large (RFC 3030 §2)")                \
    X(DATA_INCOMPLETE, "message data ended without its terminator or chunk")                                    \
    X(DATA_BARE_LF_TERMINATOR, "message data ended by <LF>.<LF>, <CRLF>.<LF> or <LF>.<CRLF>: SMTP smuggling")   \
    X(STARTTLS_CLIENT_INJECTION, "cleartext commands after STARTTLS, before the TLS handshake (CVE-2011-0411)") \
    X(STARTTLS_SERVER_INJECTION, "cleartext from the server after its 220 to STARTTLS, before the handshake")   \
    X(NO_TLS_AFTER_STARTTLS,                                                                                    \
      "after the go-ahead to STARTTLS the client went on in clear, not with a TLS ClientHello: a capture "      \
      "decrypted by a TLS-terminating proxy or exported, or a downgrade; the dialogue is read in clear")        \
    X(AUTH_DECODE_ERROR, "a SASL message that is not valid base64 or the mechanism's syntax")                   \
    X(PARTIAL_AFTER_GAP, "bytes were lost inside a command or message; what follows was resynchronised")        \
    X(COMMAND_SPACING, "a command split by other whitespace than one SP (RFC 5321 §4.1.1), or after leading "  \
                       "whitespace: read as servers that split on any whitespace read it")                      \
    X(REPLY_MISSING, "a command got no reply: the next reply can only answer a later command")                  \
    X(REPLY_INCOMPLETE, "a multi-line reply never got its last line: the client went on without it")            \
    X(MESSAGE_OVER_SIZE_LIMIT, "message data past the size limit the server announced in EHLO (RFC 1870 §4)")   \
    X(HELO_IN_LMTP, "HELO or EHLO in an LMTP session, which greets with LHLO (RFC 2033 §4.1)")                  \
    X(LMTP_REPLY_MISSING, "the session ended before a per-recipient reply to the message data came for every "  \
                          "accepted recipient (RFC 2033 §4.2)")                                                 \
    X(CLIENT_SPOKE_FIRST, "the client sent commands before the server's greeting was complete (RFC 5321 §3.1)")

enum { SMTP_ANOMALIES(MX_ANOMALY_ENUM) };

enum verb {
    V_UNKNOWN,
    V_HELO,
    V_EHLO,
    V_LHLO, /* LMTP's greeting (RFC 2033 §4.1) */
    V_MAIL,
    V_RCPT,
    V_DATA,
    V_BDAT,
    V_RSET,
    V_NOOP,
    V_QUIT,
    V_VRFY,
    V_EXPN,
    V_HELP,
    V_STARTTLS,
    V_AUTH,
    V_ETRN,
    V_XCLIENT,
    V_XFORWARD,
    V_TURN,
    V_ATRN,
    /* Pseudo-commands that a reply answers too. */
    V_CONNECT,
    V_AUTH_DATA,
    V_DATA_END,
    V__COUNT,
};

/* Client-side modes. */
enum cmode {
    C_CMD,       /* command lines */
    C_MIDSTREAM, /* picked up midstream: maybe inside message data, until a command or "." */
    C_SKIP,      /* discarding the rest of an over-long line */
    C_DATA_WAIT, /* DATA sent: bytes wait until the reply says what they are */
    C_BODY,      /* message data until <CRLF>.<CRLF> (RFC 5321 §4.5.2) */
    C_CHUNK,     /* BDAT chunk bytes (RFC 3030 §2) */
    C_TLS,       /* after STARTTLS: TLS records */
};

enum smode { S_REPLY, S_SKIP, S_TLS };

/* Where the session stands, for teaching (RFC 5321 §3.3, §4.1.4). */
enum sstate { ST_CONNECTED, ST_GREETED, ST_MAIL, ST_RCPT, ST_DATA, ST_DONE, ST_TLS, ST_CLOSED };

struct pending {
    enum verb verb;
    mx_frame_t frame;
    mx_time_t ts;
    uint32_t rcpt;  /* RCPT: index of its recipient, or UINT32_MAX when not kept */
    unsigned depth; /* the transaction it belongs to (trans_depth), 0 for none */
    bool last;      /* BDAT LAST */
    bool staged;    /* MAIL sent while a transaction was open (see struct smtp.staged) */
    bool smuggled;  /* sent right after an end of data with a bare LF (smuggle.c) */
};

enum outcome { O_PENDING, O_ACCEPTED, O_REJECTED, O_DEFERRED };

/* One reply that decided a recipient's fate. */
struct rcpt_reply {
    int code;
    struct mx_enhanced_code enh;
    struct mx_text text;
    enum outcome outcome;
    mx_frame_t frame;
};

struct rcpt {
    struct mx_text addr;
    struct mx_text params;
    int code;
    struct mx_enhanced_code enh;
    struct mx_text text;
    enum outcome outcome;
    mx_frame_t frame, reply_frame;
    /* LMTP (RFC 2033 §4.2): the reply for this recipient after the message data, when it was
     * accepted at RCPT (outcome O_PENDING: none came). */
    struct rcpt_reply delivery;
};

struct txn;
static inline struct rcpt *rcpt_at(const struct txn *t, size_t i);

struct txn {
    bool open;
    unsigned depth; /* 1, 2, ... within the session (Zeek's trans_depth) */
    struct mx_text mail_from;
    struct mx_text mail_params;
    int mail_code;
    struct mx_enhanced_code mail_enh;
    struct mx_text mail_reply; /* a refused MAIL's reply text: the failure's own, not a later reply's */
    bool smuggled;             /* opened by a MAIL smuggled after a bare-LF end of data (smuggle.c) */
    mx_frame_t mail_frame;     /* its frame */
    struct mx_buf rcpts;       /* struct rcpt, at most SMTP_MAX_RCPTS */
    uint32_t rcpts_dropped;
    struct mx_message *msg;
    bool bdat;
    uint32_t chunks;
    int data_code; /* the final reply to the message data */
    struct mx_enhanced_code data_enh;
    struct mx_text last_reply;
    struct mx_text queue_id;
    bool partial;
    bool rejected_data; /* DATA itself was refused */
    bool over_size;     /* the data passed the server's SIZE */
    bool lmtp;          /* sent in an LMTP session: one reply per accepted recipient (RFC 2033 §4.2) */
    mx_frame_t first_frame, last_frame;
    mx_time_t ts;
};

/* The i-th recipient of t (i < t->rcpts.n). */
static inline struct rcpt *rcpt_at(const struct txn *t, size_t i)
{
    return mx_buf_at(&t->rcpts, i);
}

/* What SMTP and LMTP records differ by: LMTP is SMTP with LHLO and a reply per recipient
 * after the message data (RFC 2033 §4), read by the same code under its own names. */
/* SMTP smuggling (smuggle.c): an end-of-data-like sequence with a bare LF
 * or CR in the message data, then commands, and what the server made of it. */
enum smuggle_state {
    SM_NONE,
    SM_ARMED,    /* the data ended by a bare-LF terminator: commands before its reply? */
    SM_LF,       /* they came: commands smuggled after it, their replies awaited */
    SM_CR,       /* a bare-CR end-of-data look-alike then MAIL FROM, inside the data */
    SM_CR_AFTER, /* ...whose message was answered: more replies mean the server split it */
};
struct smtp_smuggle {
    enum smuggle_state st;
    char seq[40];        /* the sequence as shown, "<LF>.<CR><LF>" */
    mx_frame_t dot, cmd; /* the frames of its dot and of the first smuggled command */
    uint64_t replies;    /* SM_ARMED: the server's replies when the data ended */
    bool second_message; /* SM_LF: the smuggled DATA was answered 354 */
    mx_frame_t answered; /* SM_LF: the last reply that answered a smuggled command as one */
    /* the body scanner (bare-CR variants): */
    uint8_t scan, k, pre[2], post[3], pre_len, post_len;
    uint64_t dot_off;
};

struct smtp_names {
    const char *label; /* "SMTP", "LMTP": in the texts */
    const char *reply, *transaction, *session, *data, *auth;
    const char *data_source, *bdat_source; /* the message parser's "source" */
};

struct smtp {
    struct mx_mail m;               /* what every mail session has */
    const struct smtp_names *names; /* the records' names: the flow's protocol */
    bool lmtp;                      /* LMTP's rules apply: an LMTP flow, or an SMTP one whose client sent LHLO */
    enum sstate state;
    enum cmode cmode;
    enum smode smode;
    uint64_t bdat_left;
    bool bdat_last;
    bool body_bol;    /* at the start of a message line */
    bool body_resync; /* a gap hit the message: a command line ends it */
    bool body_cr;     /* the last message byte was CR */
    bool body_lf;     /* the last message line ended by a bare LF (RFC 5321 §2.3.8) */
    bool server_spoke, server_ended, server_gap;
    bool server_skipped; /* an over-long server line was cut: replies may be lost */
    bool s2c_resync;     /* the next server line follows a gap: it may be a fragment */
    bool server_partial; /* the server's bytes end in an unterminated line */
    bool server_cut;     /* ...which the client answered: it was a whole line without CRLF */
    bool client_started;
    bool quiet_unmatched;  /* midstream or after a gap: replies to unseen commands */
    bool starttls_pending; /* STARTTLS sent, no reply yet */
    bool tls;              /* the session went dark after a 220 to STARTTLS */
    bool auth_continue;    /* a 334 asks for the client's next SASL message */
    bool quit_sent;        /* the client sent QUIT (RFC 5321 §4.1.1.10): it ends the session by choice */
    bool ended[2];
    struct mx_mail_queue q; /* commands waiting for replies, oldest first */
    struct pending pend[SMTP_MAX_PENDING];
    /* The reply being assembled. */
    struct {
        bool active;
        int code;
        struct mx_enhanced_code enh;
        struct mx_text text;
        unsigned lines;
        uint64_t off; /* stream offset of the first line */
        size_t raw;   /* bytes of all its lines */
        mx_frame_t first_frame;
        mx_time_t ts;
    } rep;
    /* The session. */
    int greet_code;
    struct mx_text greeting;
    struct mx_text helo;
    enum verb helo_verb;
    struct mx_caps caps; /* EHLO keywords and their parameters (RFC 5321 §4.1.1.1) */
    uint64_t size_limit;
    bool starttls_offered, starttls_attempted;
    int starttls_code;
    mx_frame_t starttls_frame;
    uint64_t replies, vrfy, expn, transactions;
    bool client_held;           /* client bytes wait for a reply (DATA, STARTTLS) */
    uint64_t midstream_skipped; /* client bytes skipped before the first command */
    bool yield_server;          /* stop reading server bytes so the held client bytes go first */
    struct txn txn;             /* the transaction being built: its commands are still coming */
    struct txn fin;             /* a transaction whose data was sent, awaiting its final reply */
    struct {                    /* a MAIL sent while `txn` was open: it counts only if accepted */
        bool on;
        struct mx_text from, params;
        mx_frame_t frame;
        mx_time_t ts;
    } staged;
    struct mx_text helo_next; /* HELO/EHLO argument, kept once the server accepts it */
    enum verb helo_next_verb;
    mx_frame_t data_first_frame;
    /* RFC 2033 §4.2: the per-recipient replies to the end of the data still owed after the
     * first one, for the recipients after `next` that were accepted at RCPT. */
    struct {
        uint32_t left, next;
        struct pending p; /* what they answer: the end of data or BDAT LAST */
    } due;
    struct smtp_smuggle smug; /* SMTP smuggling: smuggle.c */
};

/* mx_mail_parse finds the session layer at the start of the state. */
_Static_assert(offsetof(struct smtp, m) == 0, "struct mx_mail begins struct smtp");

static inline void anomaly(struct smtp *s, enum mx_dir d, int a, uint64_t off, size_t len)
{
    mx_ctx_anomaly(s->m.ctx, d, (size_t)a, off, len);
}

/* How a transaction ended (its record's "disposition"). */
enum disposition { D_ACCEPTED, D_REJECTED, D_DEFERRED, D_RESET, D_ABORTED, D_NO_REPLY, D_MIXED };

/* What a final reply of `code` makes of a transaction (RFC 5321 §4.2.1). */
static inline enum disposition outcome_of(int code)
{
    return code >= 200 && code < 400 ? D_ACCEPTED : code >= 400 && code < 500 ? D_DEFERRED : D_REJECTED;
}

/* ---- Transactions (txn.c) ---- */

/* The client's name: the last HELO/EHLO the server accepted, or, while the
 * reply to one is unseen (one-sided capture, lost bytes), the one sent. */
const struct mx_text *smtp_helo_of(const struct smtp *s, enum verb *v);

/* Adds what a failed reply means and its likely cause to ev (RFC 5321 §4.2, RFC 3463). */
void smtp_failure_fields(struct smtp *s, const struct txn *t, const char *step, int code,
                         const struct mx_enhanced_code *enh, struct mx_slice text, struct mx_event *ev);

/* Ends transaction t, if open, with its record; `why` it ended when no reply decided it. */
void smtp_txn_close(struct smtp *s, struct txn *t, enum disposition why);

/* Opens s->txn with MAIL FROM's path and parameters. */
void smtp_txn_open(struct smtp *s, struct mx_slice from, struct mx_slice params, mx_frame_t f, mx_time_t ts);

/* The transaction a reply concerns: the one its command belonged to, or NULL. */
struct txn *smtp_txn_of(struct smtp *s, unsigned depth);

/* The client finished sending the message: the transaction awaits its final reply. */
void smtp_txn_data_sent(struct smtp *s);

/* RCPT, DATA or BDAT without MAIL: false when the client broke the sequence. */
bool smtp_txn_need(struct smtp *s, mx_frame_t f, mx_time_t ts, uint64_t off, size_t len);

/* ---- SMTP smuggling (smuggle.c) ---- */

/* The message data ended by a terminator with a bare LF (`shown`, its dot in frame `dot`). */
void smtp_smuggle_data_end(struct smtp *s, const char *shown, mx_frame_t dot);
/* A command line parsed (its frame, its pending entry or NULL): smuggled when it follows such an end unanswered. */
void smtp_smuggle_command(struct smtp *s, enum verb v, mx_frame_t f, struct pending *queued);
/* Raw message data bytes (dot-stuffing included) at stream offset off; `start`: a new message. */
void smtp_smuggle_body(struct smtp *s, struct mx_slice raw, uint64_t off, bool start);
/* A reply (code, frames a..b) and what it answered (p, when have). */
void smtp_smuggle_reply(struct smtp *s, bool have, const struct pending *p, int code, mx_frame_t a, mx_frame_t b);
/* The session ends: an attempt still undecided was refused. */
void smtp_smuggle_end(struct smtp *s);

#endif
