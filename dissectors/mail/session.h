/* session.h - what SMTP, POP3 and IMAP sessions share, as nginx's mail module shares one
 * session between its three protocols: the commands waiting for replies, logins and their
 * SASL exchanges, the command and SASL-data records, the anomalies every one of them names,
 * the counters and the STARTTLS summary of the session record. Each protocol keeps only
 * what differs. */
#ifndef MX_MAIL_SESSION_H
#define MX_MAIL_SESSION_H

#include "core/buf.h"
#include "dissectors/mail/line.h"
#include "dissectors/mail/proxy.h"
#include "dissectors/mail/sasl.h"
#include "engine/dissector.h"
#include "event/event.h"

/* The anomalies the three protocols name alike. A protocol's table holds
 * each one it uses, with its own description (the RFC it breaks), under the
 * name given here; struct mx_mail_proto says where. */
enum mx_mail_anomaly {
    MX_MAIL_LONG_COMMAND_LINE,         /* "LONG_COMMAND_LINE" */
    MX_MAIL_BARE_LF,                   /* "BARE_LF" */
    MX_MAIL_TOO_MANY_PENDING,          /* "TOO_MANY_PENDING_COMMANDS" */
    MX_MAIL_UNKNOWN_COMMAND,           /* "UNKNOWN_COMMAND" */
    MX_MAIL_COMMAND_OUT_OF_SEQUENCE,   /* "COMMAND_OUT_OF_SEQUENCE" */
    MX_MAIL_STARTTLS_CLIENT_INJECTION, /* "STARTTLS_CLIENT_INJECTION" */
    MX_MAIL_STARTTLS_SERVER_INJECTION, /* "STARTTLS_SERVER_INJECTION" */
    MX_MAIL_AUTH_DECODE_ERROR,         /* "AUTH_DECODE_ERROR" */
    MX_MAIL_PARTIAL_AFTER_GAP,         /* "PARTIAL_AFTER_GAP" */
    MX_MAIL_COMMAND_SPACING,           /* "COMMAND_SPACING" */
    MX_MAIL_NO_TLS_AFTER_STARTTLS,     /* "NO_TLS_AFTER_STARTTLS" */
    MX_MAIL_CLIENT_SPOKE_FIRST,        /* "CLIENT_SPOKE_FIRST" */
    MX_MAIL__ANOMALIES,
};

/* The names of the shared anomalies, indexed by enum mx_mail_anomaly. */
extern const char *const mx_mail_anomaly_names[MX_MAIL__ANOMALIES];

#define MX_MAIL_NONE 0xff /* a shared anomaly the protocol does not name */

/* The map (struct mx_mail_proto.an) of a protocol whose anomaly enum names
 * every shared anomaly P##NAME. */
#define MX_MAIL_ANOMALY_MAP(P)                                                                                      \
    {                                                                                                               \
        [MX_MAIL_LONG_COMMAND_LINE] = P##LONG_COMMAND_LINE, [MX_MAIL_BARE_LF] = P##BARE_LF,                         \
        [MX_MAIL_TOO_MANY_PENDING] = P##TOO_MANY_PENDING_COMMANDS, [MX_MAIL_UNKNOWN_COMMAND] = P##UNKNOWN_COMMAND,  \
        [MX_MAIL_COMMAND_OUT_OF_SEQUENCE] = P##COMMAND_OUT_OF_SEQUENCE,                                             \
        [MX_MAIL_STARTTLS_CLIENT_INJECTION] = P##STARTTLS_CLIENT_INJECTION,                                         \
        [MX_MAIL_STARTTLS_SERVER_INJECTION] = P##STARTTLS_SERVER_INJECTION,                                         \
        [MX_MAIL_AUTH_DECODE_ERROR] = P##AUTH_DECODE_ERROR, [MX_MAIL_PARTIAL_AFTER_GAP] = P##PARTIAL_AFTER_GAP,     \
        [MX_MAIL_COMMAND_SPACING] = P##COMMAND_SPACING, [MX_MAIL_NO_TLS_AFTER_STARTTLS] = P##NO_TLS_AFTER_STARTTLS, \
        [MX_MAIL_CLIENT_SPOKE_FIRST] = P##CLIENT_SPOKE_FIRST,                                                       \
    }

/* What a protocol tells the shared layer about itself. */
struct mx_mail_proto {
    const char *command_type;       /* the command record's type: "smtp.command" */
    const char *command_key;        /* its key for the verb: "verb", or IMAP's "command" */
    const char *auth_data_type;     /* the record of a client SASL message: "smtp.auth_data" */
    const char *unknown_explain;    /* --explain for a command the protocol does not define */
    const char *upgrade;            /* the STARTTLS command's name, for the session text: "STARTTLS", "STLS" */
    uint8_t an[MX_MAIL__ANOMALIES]; /* each shared anomaly's index in the dissector's table, or MX_MAIL_NONE */
    /* The protocol's steps of a parse call (mx_mail_parse). `state` is its
     * own, which begins with its struct mx_mail. */
    /* Bytes of d (flags as the host gave them): what it consumed and needs. */
    struct mx_parse_result (*read)(void *state, enum mx_dir d, struct mx_slice data, unsigned flags);
    /* len bytes of d were lost. */
    void (*gap)(void *state, enum mx_dir d, uint64_t len);
    /* d ended, after its last bytes were read. */
    void (*end)(void *state, enum mx_dir d);
    /* After STARTTLS, d's bytes come back (MX_CHUNK_INSIDE_TLS): decrypted,
     * or the dialogue going on in clear. The protocol reads them as it read
     * d before the upgrade, in the state the upgrade left. */
    void (*inside_tls)(void *state, enum mx_dir d);
};

/* ---- Commands waiting for their replies ---- */

/* Replies come in command order (RFC 5321 §4.3.2 with RFC 2920 §3, RFC 2449
 * §6.6): a ring of `cap` entries of `size` bytes, in storage the protocol
 * owns (its own struct per pending command). */
struct mx_mail_queue {
    uint8_t *slots;
    size_t size;
    unsigned cap, head, n;
};

void mx_mail_queue_init(struct mx_mail_queue *q, void *slots, size_t size, unsigned cap);

/* The i-th oldest entry (i < q->n). */
static inline void *mx_mail_queue_at(const struct mx_mail_queue *q, unsigned i)
{
    return q->slots + (size_t)((q->head + i) % q->cap) * q->size;
}

/* The oldest entry, or NULL when none waits. */
static inline void *mx_mail_queue_head(const struct mx_mail_queue *q)
{
    return q->n ? mx_mail_queue_at(q, 0) : NULL;
}

/* Removes the oldest entry into *out (q->size bytes); false when none waits. */
bool mx_mail_queue_pop(struct mx_mail_queue *q, void *out);

/* Drops the k oldest entries (k <= q->n). */
void mx_mail_queue_drop(struct mx_mail_queue *q, unsigned k);

/* ---- Capabilities ---- */

/* What a server said it supports (EHLO keywords, CAPA lines, IMAP
 * capability atoms, SASL mechanisms): wire bytes kept whole and
 * binary-safe, each as its length (2 bytes) and its bytes, at most `max`
 * bytes in all; an entry past that is dropped. */
struct mx_caps {
    struct mx_buf b;
    uint32_t dropped;       /* entries past the cap, not kept: the record says how many */
    mx_frame_t first, last; /* the frames of the reply that listed them, 0 before any */
};

void mx_caps_init(struct mx_caps *c, size_t max);
/* Forgets the entries (the server lists them anew), keeping the memory. */
void mx_caps_clear(struct mx_caps *c);
void mx_caps_free(struct mx_caps *c);
/* The entry at byte position *pos (start at 0), which moves past it; false at the end. */
bool mx_caps_next(const struct mx_caps *c, size_t *pos, struct mx_slice *v);
/* Notes that the frames a..b carried (part of) the reply that lists them:
 * the first such frame since the last clear, and the latest. */
void mx_caps_frames(struct mx_caps *c, mx_frame_t a, mx_frame_t b);

/* ---- Logins (RFC 4422 exchanges and plain logins) ---- */

#define MX_MAIL_MAX_LOGINS 8 /* logins kept per session; more are counted */

enum mx_login_outcome {
    MX_LOGIN_NO_REPLY = 0, /* the session ended first */
    MX_LOGIN_SUCCESS,
    MX_LOGIN_FAILURE,
    MX_LOGIN_CANCELLED, /* the client sent "*" (RFC 4954 §4, RFC 5034 §4, RFC 9051 §6.2.2) */
};

/* "no_reply", "success", "failure" or "cancelled". */
const char *mx_login_outcome_name(enum mx_login_outcome o);

/* One login: the SASL exchange or plain login, and how it ended. */
struct mx_mail_login {
    struct mx_sasl sasl;
    const char *command; /* IMAP: "LOGIN" or "AUTHENTICATE"; NULL elsewhere */
    enum mx_login_outcome outcome;
    int code;                 /* SMTP: the final reply's code (RFC 4954 §6), 0 for none */
    char enh[12];             /* SMTP: its enhanced code (RFC 3463), or "" */
    struct mx_text resp_code; /* POP3's resp-code (RFC 2449 §8), IMAP's response code */
    mx_frame_t frame, last_frame;
    mx_time_t ts;
};

/* ---- The session ---- */

/* What a PROXY protocol header (proxy.h) at the start of the client's
 * stream said: the connection comes from a proxy, for the client named. */
struct mx_mail_proxy {
    uint8_t state;                 /* where its reading stands (proxy.c); zero: at the start */
    bool seen;                     /* a header was read */
    bool local;                    /* v2 LOCAL: the proxy's own connection, no client named */
    uint8_t version;               /* 1 or 2 */
    uint8_t family;                /* 0 (none named), 4, 6 or MX_PROXY_UNIX */
    struct mx_addr client, server; /* family 4 or 6: the original client, and the address it connected to */
    uint16_t client_port, server_port;
};

/* Whose turn it is at the start (RFC 5321 §3.1, RFC 1939 §4, RFC 9051 §7.1):
 * the server greets first. A client that speaks before the greeting is
 * whole (an early talker: a spam bot, the "pregreet" postscreen tests for)
 * is parsed as it would be after it; CLIENT_SPOKE_FIRST is raised once the
 * greeting comes, naming the client's first early frame. */
struct mx_mail_turn {
    bool greeted;         /* the greeting was read whole, or cannot be told (midstream, lost bytes) */
    bool early;           /* client bytes came before it */
    bool server_mid_line; /* the server's bytes so far end inside a line */
    mx_frame_t frame;     /* the frame of the first early client byte, and its time */
    mx_time_t ts;
};

/* The server ended the session on its own: SMTP's 421 (RFC 5321 §3.8: an
 * idle timeout, a shutdown, too many errors), POP3's -ERR with no command
 * waiting (RFC 1939 §3: the autologout timer), IMAP's BYE outside LOGOUT
 * (RFC 9051 §7.1.5). The first such reply is kept. */
struct mx_mail_close {
    bool on;
    char status[8];      /* "421", "-ERR", "BYE" */
    struct mx_text code; /* its enhanced code, resp-code or response code, or empty */
    struct mx_text text; /* the rest of its text */
    const char *answers; /* the command it came in answer to, or NULL: unsolicited */
    uint32_t unanswered; /* other commands still waiting: they get no reply */
    mx_frame_t first, last;
    mx_time_t ts;
};

/* The part of a session every protocol has. A protocol's state embeds it
 * and fills `proto` and `ctx` (mx_mail_init). */
struct mx_mail {
    struct mx_dissect_ctx *ctx;
    const struct mx_mail_proto *proto;
    mx_time_t now; /* time of the last line parsed: records emitted later carry it */
    uint64_t commands, pipelined, unknown;
    struct mx_mail_login logins[MX_MAIL_MAX_LOGINS];
    unsigned n_logins, logins_dropped;
    struct mx_mail_login *login; /* the exchange in progress, or NULL */
    bool login_failed;           /* the last login did not succeed, and no command the protocol defines came since */
    struct mx_mail_proxy proxy;  /* the PROXY protocol header, if one came */
    struct mx_caps *caps;        /* the protocol's list of what the server supports, or NULL */
    struct mx_caps caps_clear;   /* decrypted STARTTLS: what the list held when TLS began */
    bool caps_kept;
    struct mx_mail_turn turn;    /* who spoke first */
    struct mx_mail_close closed; /* the server's own end of the session, if it said so */
};

/* A session of `proto` on ctx's flow, from its start. */
void mx_mail_init(struct mx_mail *m, struct mx_dissect_ctx *ctx, const struct mx_mail_proto *proto);

/* Frees what the shared part holds (not m itself). */
void mx_mail_free(struct mx_mail *m);

/* Appends a copy of `entry` (q->size bytes) for the command at [off,
 * off+len) of the client's stream. Returns the new entry, or NULL when the
 * queue is full: TOO_MANY_PENDING_COMMANDS. */
void *mx_mail_queue_push(struct mx_mail *m, struct mx_mail_queue *q, const void *entry, uint64_t off, uint64_t len);

/* The dissector's parse (struct mx_dissector) of every mail protocol: a gap
 * goes to proto->gap, bytes to proto->read, then the end to proto->end.
 * `state` begins with a struct mx_mail. */
struct mx_parse_result mx_mail_parse(void *state, struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data,
                                     unsigned flags);

/* ---- The PROXY protocol header (proxy.c) ---- */

/* The client's bytes while its stream may still start with a PROXY header
 * (m->proxy.state not done; no gap): reads the header, emits its "proxy"
 * record and anomalies. Returns what it consumed and needs; once it
 * returns with the header read, the state is done and the rest of data is
 * the protocol's. */
struct mx_parse_result mx_mail_proxy_take(struct mx_mail *m, struct mx_slice data, unsigned flags);

/* Whether the PROXY step is over (a header read, or none at the start). */
bool mx_mail_proxy_done(const struct mx_mail *m);

/* A client command line at [off, off+len): PROXY_HEADER_MISPLACED when it is
 * a PROXY header, which may only be the first bytes of the stream. */
void mx_mail_client_line(struct mx_mail *m, struct mx_slice line, uint64_t off, uint64_t len);

/* Adds "proxy" to a session record: the original client the header named. */
void mx_mail_describe_proxy(const struct mx_mail *m, struct mx_event *ev);

/* Adds v to c; false when it does not fit. Out of memory, the flow's
 * dissection stops (mx_ctx_fail). */
bool mx_mail_caps_add(struct mx_mail *m, struct mx_caps *c, struct mx_slice v);

/* Adds each space-separated word of v to c. */
void mx_mail_caps_add_words(struct mx_mail *m, struct mx_caps *c, struct mx_slice v);

/* Raises shared anomaly `a` for bytes [off, off+len) of d (nothing when the
 * protocol does not name it). */
void mx_mail_anomaly(struct mx_mail *m, enum mx_dir d, enum mx_mail_anomaly a, uint64_t off, uint64_t len);

/* A frame's time was seen: `now` never steps back. */
static inline void mx_mail_seen(struct mx_mail *m, mx_time_t ts)
{
    if (ts != MX_TIME_NONE && ts > m->now)
        m->now = ts;
}

/* The server's greeting is whole (whatever it says): CLIENT_SPOKE_FIRST if
 * client bytes came before it. */
void mx_mail_greeted(struct mx_mail *m);

/* The server ends the session on its own (struct mx_mail_close) with the
 * reply `status` (code, text) in frames [a, b] at ts; `answers` names the
 * command it came in answer to (NULL: unsolicited), `unanswered` the other
 * commands that wait and get no reply. Only the first is kept. */
void mx_mail_server_closed(struct mx_mail *m, const char *status, struct mx_slice code, struct mx_slice text,
                           const char *answers, uint32_t unanswered, mx_frame_t a, mx_frame_t b, mx_time_t ts);

/* Adds to the record of a reply that ends the session: "closes_session",
 * and "unanswered" when commands still wait. */
void mx_mail_close_fields(struct mx_event *ev, uint32_t unanswered);

/* Adds a reply's times to its record (after "latency"): "first_byte_ms",
 * from the command to the reply's first line, and "complete_ms", to its end
 * (the last line of a multi-line reply, the end of a retrieved message, an
 * IMAP tagged completion); then "network" when retransmissions, zero
 * windows or a stall of MX_TCPA_STALL_NOTE or more fell between the command
 * and that end (flow/tcpa.h): their counts, the longest stall and the
 * frames. Nothing when a time is unknown. */
void mx_mail_reply_times(struct mx_mail *m, struct mx_event *ev, mx_time_t cmd, mx_time_t first, mx_time_t end);

/* Writes the timeline's note for such a reply into buf: "the server closes
 * the session", then ", N commands unanswered" when some waited. Returns buf. */
const char *mx_mail_close_note(uint32_t unanswered, char *buf, size_t cap);

/* Adds "server_closed" to a session record when the server ended it. */
void mx_mail_describe_close(const struct mx_mail *m, struct mx_event *ev);

/* Adds "unanswered" to a session record: the n commands still waiting for
 * their replies when the session ended (nothing when none waited). */
void mx_mail_describe_waiting(struct mx_event *ev, uint32_t n);

/* Writes the session text's part for it into buf: ", closed by the server:
 * 421 4.4.2 Error: timeout exceeded", or "". Returns buf. */
const char *mx_mail_close_summary(const struct mx_mail *m, char *buf, size_t cap);

/* Starts a login with mechanism `mech` (a SASL name, or "USER/PASS", "APOP",
 * "IMAP-LOGIN") sent in frame f. NULL when MX_MAIL_MAX_LOGINS were kept
 * already: it is counted, and no login is in progress. */
struct mx_mail_login *mx_mail_login_start(struct mx_mail *m, struct mx_slice mech, mx_frame_t f, mx_time_t ts);

/* Ends the login in progress (if any) with outcome o, its last frame f
 * (0: none). Returns it, for the protocol's record; none is in progress after. */
struct mx_mail_login *mx_mail_login_finish(struct mx_mail *m, enum mx_login_outcome o, mx_frame_t f);

/* The outcome of a reply that ends login l: cancelled when the client sent
 * "*", else success or failure. */
static inline enum mx_login_outcome mx_mail_login_outcome(const struct mx_mail_login *l, bool ok)
{
    return l->sasl.cancelled ? MX_LOGIN_CANCELLED : ok ? MX_LOGIN_SUCCESS : MX_LOGIN_FAILURE;
}

/* Whether a client line that is no command the protocol defines may be a
 * secret all the same, to be shown by its length only: one base64 word
 * (an answer to a challenge) sent after a login failed, by a client that
 * goes on with an exchange the server ended. When in doubt, redact. */
bool mx_mail_line_maybe_secret(const struct mx_mail *m, struct mx_slice line);

/* A client SASL message for sasl (an initial response or a line after a
 * challenge) at [off, off+len): AUTH_DECODE_ERROR when it does not decode.
 * Returns whether it carries a secret (mx_sasl_client); true without sasl. */
bool mx_mail_sasl_client(struct mx_mail *m, struct mx_sasl *sasl, struct mx_slice b64, uint64_t off, uint64_t len);

/* A server challenge for sasl at [off, off+len) of the server's stream. */
void mx_mail_sasl_server(struct mx_mail *m, struct mx_sasl *sasl, struct mx_slice b64, uint64_t off, uint64_t len);

/* ---- Records ---- */

/* A client command, for its record. */
struct mx_mail_command {
    mx_frame_t first, last;
    mx_time_t ts;
    struct mx_slice tag;     /* IMAP's tag, or empty */
    struct mx_slice verb;    /* as sent */
    const char *name;        /* the verb's canonical name; NULL: one the protocol does not define */
    bool uid;                /* IMAP's UID prefix (RFC 9051 §6.4.9) */
    struct mx_slice arg;     /* what follows the verb, as shown */
    uint64_t arg_wire;       /* when arg was cut: its real length (IMAP: literal contents left out), else 0 */
    const char *shown;       /* replaces arg when it holds a secret; it quotes wire bytes */
    size_t redacted_len;     /* not 0: the whole line, of this length, may be a secret (mx_mail_line_maybe_secret) */
    struct mx_slice mailbox; /* IMAP: the mailbox named, or empty */
    uint64_t mailbox_wire;   /* its real length (cut past MX_TEXT), or 0 */
    bool pipelined;          /* sent while earlier commands awaited their replies */
    bool injected;           /* sent after STARTTLS, before its reply (CVE-2011-0411) */
    const char *explain;     /* --explain: what it asks for; NULL: the protocol's text for unknown ones */
    const char *state;       /* --explain: the session's state */
};

/* Emits the command record (proto->command_type). A command the protocol
 * defines ends m->login_failed. */
void mx_mail_command_record(struct mx_mail *m, const struct mx_mail_command *c);

/* Emits the record of a client SASL message (proto->auth_data_type): the
 * line, or only its length when it holds a secret and secrets are not shown. */
void mx_mail_auth_data_record(struct mx_mail *m, struct mx_slice line, bool secret, bool cancel, mx_frame_t a,
                              mx_frame_t b, mx_time_t ts);

/* Adds an array of capabilities under key. */
struct mx_caps;
/* The entries of c as the array "key", then "key_not_listed" (entries past
 * the cap) when some were not kept; key must be a string literal. */
void mx_mail_describe_caps2(struct mx_event *ev, const char *key, const char *not_listed_key, const struct mx_caps *c);
#define mx_mail_describe_caps(ev, key, c) mx_mail_describe_caps2((ev), key, key "_not_listed", (c))
/* The frames of the reply that listed c as the array "key" ([first] or
 * [first, last]), when one was seen. */
void mx_mail_describe_caps_frames(struct mx_event *ev, const char *key, const struct mx_caps *c);

/* Adds the session record's "capabilities" (m->caps): what the server
 * listed in clear. When a key log decrypted the session, "capabilities"
 * keeps what was listed before TLS (nothing, on a flow that starts in TLS)
 * and "capabilities_tls" what was listed inside it. */
void mx_mail_describe_session_caps(struct mx_mail *m, struct mx_event *ev);

/* Adds the session's logins to its record: "auth", an array with each
 * login's command (IMAP), identity, outcome, whether the secret crossed in
 * clear and its frames, then "auth_not_listed" when more came than were kept. */
void mx_mail_describe_logins(const struct mx_mail *m, struct mx_event *ev);

/* Logins that succeeded. */
unsigned mx_mail_logins_ok(const struct mx_mail *m);

/* Adds what STARTTLS led to, to a session record: "tls_bytes" when the
 * session was upgraded, "clear_after_starttls" when no TLS came after it
 * (NO_TLS_AFTER_STARTTLS), and the TLS observer's summary "tls_handshake". */
void mx_mail_describe_tls(struct mx_mail *m, struct mx_event *ev, bool upgraded);

/* Writes the session text's STARTTLS part into buf: ", upgraded to TLS"
 * (", upgraded to TLS, decrypted"), ", STARTTLS accepted but the TLS
 * handshake failed", ", STARTTLS accepted, then no TLS: the dialogue goes
 * on in clear", ", STARTTLS refused" (proto->upgrade names the command),
 * ", in TLS, decrypted" for a flow that starts in TLS, or "". Returns buf. */
const char *mx_mail_tls_summary(struct mx_mail *m, bool upgraded, bool attempted, char *buf, size_t cap);

/* Ends the TLS observer (its record) before the session record. */
void mx_mail_tls_end(struct mx_mail *m);

/* Bytes sent by a client that waits for STARTTLS's reply: a TLS handshake
 * record (RFC 8446 §5.1) or an SSL 2 ClientHello. */
static inline bool mx_mail_looks_like_handshake(struct mx_slice d)
{
    return d.len && (d.ptr[0] == 0x16 || d.ptr[0] == 0x80);
}

#endif
