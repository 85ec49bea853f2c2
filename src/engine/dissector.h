/* dissector.h - the single interface every protocol dissector implements. */
#ifndef MX_DISSECTOR_H
#define MX_DISSECTOR_H

#include "core/mx.h"
#include "core/anomaly.h"
#include "flow/tcpa.h"

struct mx_sink;
struct mx_dissect_ctx;
struct mx_keylog;
struct mx_tls_trust;
struct mx_proto;
struct mx_protocols;

/* Flags of one parse call. */
enum mx_chunk_flags {
    MX_CHUNK_START = 1 << 0,      /* first call for this direction */
    MX_CHUNK_GAP = 1 << 1,        /* data.ptr is NULL: data.len bytes are missing from the stream */
    MX_CHUNK_END = 1 << 2,        /* the direction has ended (FIN, RST, timeout or end of input);
                                data holds the bytes still unconsumed, possibly none */
    MX_CHUNK_TRUNCATED = 1 << 3,  /* a gap follows these bytes (the unconsumed rest): an element
                                    cut at their end is all there will be of it */
    MX_CHUNK_INSIDE_TLS = 1 << 4, /* after mx_ctx_starttls, the first bytes of the direction the
                                     dissector reads again: the cleartext inside TLS (mx_ctx_tls_inside) */
};

enum mx_parse_status {
    MX_PARSE_OK = 0, /* anomalies in the input are events, never an error */
    MX_PARSE_ERROR,  /* mxray itself failed (out of memory): the flow stops being dissected */
};

/* What a parse call did, as in Suricata's AppLayerResult. */
struct mx_parse_result {
    enum mx_parse_status status;
    size_t consumed; /* bytes of data the parser is done with (<= data.len) */
    size_t needed;   /* bytes wanted beyond the unconsumed rest before calling again; 0: any */
};

/* One protocol. Every slot is required unless said otherwise. */
struct mx_dissector {
    /* Protocol name as it appears in the output (the records' "proto"). */
    const char *name;
    /* A fresh per-flow state; a zero-filled state is valid. NULL when out of memory. */
    void *(*state_new)(struct mx_dissect_ctx *ctx);
    /* Releases the state; called once per flow, after the last parse call. */
    void (*state_free)(void *state);
    /* Parses bytes of one direction. The two directions arrive interleaved in
     * dialogue order. `data` starts with the bytes the previous call for this
     * direction left unconsumed, which the engine kept; the parser never copies
     * input to wait for more. Before a gap, a parser that left bytes
     * unconsumed gets them once more with MX_CHUNK_TRUNCATED; then comes
     * MX_CHUNK_GAP with data.len the missing bytes. */
    struct mx_parse_result (*parse)(void *state, struct mx_dissect_ctx *ctx, enum mx_dir dir, struct mx_slice data,
                                    unsigned flags);
    /* The dissector's anomaly names, indexed by the numbers it passes to
     * mx_ctx_anomaly(). */
    const struct mx_anomaly_def *anomalies;
    size_t n_anomalies;
    /* Optional. Bytes a state holds now, its struct and what it allocated (buffers,
     * message parsers, a TLS observer, zlib), charged against the memory cap
     * after every segment. Called that often, it only adds up counters. */
    size_t (*state_bytes)(const void *state);
};

/* Where a byte of the stream came from. */
struct mx_frame_ref {
    mx_frame_t frame;
    mx_time_t ts;
};

/* How a flow ended. */
enum mx_close {
    MX_CLOSE_OPEN = 0, /* it has not */
    MX_CLOSE_FIN,      /* both sides sent FIN */
    MX_CLOSE_RST,
    MX_CLOSE_TIMEOUT,     /* idle past its timeout */
    MX_CLOSE_EVICTED,     /* the flow table or the memory cap was full */
    MX_CLOSE_REUSED,      /* a new connection came on its 4-tuple */
    MX_CLOSE_CAPTURE_END, /* the input ended */
};

/* "fin", "rst", "timeout", "evicted", "reused", "capture_end" (the flow
 * record's "close"); "open" for MX_CLOSE_OPEN. */
const char *mx_close_name(enum mx_close c);

/* What a dissector may know of its flow. */
struct mx_flow_info {
    uint64_t id;
    bool handshake;      /* the SYN was seen: the streams start at their beginning */
    bool tls_port;       /* the server port starts in TLS */
    bool show_secrets;   /* --show-secrets: passwords and tokens may be written */
    mx_time_t start;     /* time of the flow's first packet */
    bool explain;        /* --explain: records carry what each step means, for teaching */
    enum mx_close close; /* how the flow ended, set before the MX_CHUNK_END calls; MX_CLOSE_OPEN before */
    unsigned hashes;     /* --hashes: the digests of mail content to compute (MX_HASH_*, core/digest.h) */
};

/* The flow being dissected. */
const struct mx_flow_info *mx_ctx_flow(const struct mx_dissect_ctx *ctx);

/* --extract DIR: where the files go and the bytes they may take. The run's
 * dissectors share it; --extract dissects in one thread. */
struct mx_extract {
    const char *dir;    /* as given on the command line: the records' paths start with it */
    int dirfd;          /* DIR, opened once: every file is created relative to it */
    uint64_t file_max;  /* bytes written to one file (--extract-max) */
    uint64_t total_max; /* bytes written to all files of the run (--extract-total) */
    uint64_t total;     /* bytes written so far, all files together */
};

/* The run's extraction, or NULL without --extract. */
struct mx_extract *mx_ctx_extract(struct mx_dissect_ctx *ctx);

/* The number of the flow's next extracted message: 1, 2, ... (the files
 * are named after it). */
uint32_t mx_ctx_extract_next(struct mx_dissect_ctx *ctx);

/* Asks the engine to call parse for `dir` again, with the bytes it left
 * unconsumed, once the current call returns: for a parser that held bytes of
 * one direction back until the other direction settled what they are (the
 * message data a command announced, before the reply that accepts it). */
void mx_ctx_wake(struct mx_dissect_ctx *ctx, enum mx_dir dir);

/* The event sink of this run; dissectors write their events to it. */
struct mx_sink *mx_ctx_sink(struct mx_dissect_ctx *ctx);

/* The flow's id, as used in every record of the flow. */
uint64_t mx_ctx_flow_id(const struct mx_dissect_ctx *ctx);

/* Begins a record of this flow on the run's sink (mx_event_begin_flow): with
 * the flow's id, Community ID, client and server. */
struct mx_event *mx_ctx_begin(struct mx_dissect_ctx *ctx, const char *type, mx_time_t ts);

/* The network's part of the flow between two capture times (a command and
 * the end of its reply): retransmissions, zero windows and the longest stall
 * that fell in it (flow/tcpa.h). */
void mx_ctx_net_span(const struct mx_dissect_ctx *ctx, mx_time_t from, mx_time_t to, struct mx_tcpa_span *s);

/* Stream offset of data.ptr[0] in the current parse call for `dir`. */
uint64_t mx_ctx_offset(const struct mx_dissect_ctx *ctx, enum mx_dir dir);

/* The frame and time that carried the byte at stream offset `off` of `dir`.
 * Valid for any offset from the start of the current call's data onward;
 * earlier offsets answer with the oldest frame still known. */
struct mx_frame_ref mx_ctx_frame_at(const struct mx_dissect_ctx *ctx, enum mx_dir dir, uint64_t off);

/* Raises the dissector's anomaly number `idx` for the bytes [off, off+len) of
 * `dir`: emits an anomaly event naming the frames and counts it in the flow. */
void mx_ctx_anomaly(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t idx, uint64_t off, uint64_t len);
/* The same with the frames named (first, last; ts the first's time): for bytes
 * the dissector has consumed, whose frames it noted while they were at hand
 * (mx_ctx_frame_at answers only from the current call's data onward), or
 * bytes judged only later (a client that spoke before the greeting is known
 * to have done so once the greeting comes). */
void mx_ctx_anomaly_frames(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t idx, mx_frame_t first, mx_frame_t last,
                           mx_time_t ts);

/* Raises an anomaly from a table other than the dissector's own (the
 * message parser's, shared by several dissectors): like mx_ctx_anomaly, and
 * counted by name in the flow record. `def` must outlive the run. */
void mx_ctx_anomaly_def(struct mx_dissect_ctx *ctx, enum mx_dir dir, const struct mx_anomaly_def *def, uint64_t off,
                        uint64_t len);
/* The same with the frames named, as mx_ctx_anomaly_frames. */
void mx_ctx_anomaly_def_frames(struct mx_dissect_ctx *ctx, enum mx_dir dir, const struct mx_anomaly_def *def,
                               mx_frame_t first, mx_frame_t last, mx_time_t ts);

/* mxray itself failed while dissecting the flow (out of memory): the
 * dissection of the flow stops once the current parse call returns, with an
 * error record (STYLE.md rule 6), as when parse returns MX_PARSE_ERROR.
 * What runs under a dissector (the message parser, the TLS observer) calls
 * it too, so that no output is silently short of what it could not keep. */
void mx_ctx_fail(struct mx_dissect_ctx *ctx);

/* STARTTLS, STLS (RFC 3207 §4, RFC 2595 §4, RFC 9051 §6.2.1): from the
 * first byte of `dir` the dissector does not consume, that direction
 * carries TLS. The host hands its bytes to the flow's TLS observer (the
 * protocol's TLS dissector) and counts them; the dissector still gets the
 * direction's gaps and its end, without bytes. When the server's first
 * bytes after the go-ahead are not a TLS record (RFC 8446 §5.1), the host
 * raises the dissector's anomaly `injection` (an index into its table) and
 * leaves that cleartext out of the TLS session. A dissector that upgrades a
 * direction while parsing it returns what it consumed up to there; if it
 * asks for that direction to be woken, the rest goes to TLS on the wake, so
 * that bytes the other side sent first reach the observer first. */
void mx_ctx_starttls(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t injection);

/* What a dissector reads after STARTTLS upgraded its flow. */
enum mx_tls_inside {
    MX_INSIDE_NONE = 0,  /* nothing: the TLS observer has the bytes */
    MX_INSIDE_DECRYPTED, /* the cleartext the TLS session carries, decrypted with --tls-keylog */
    MX_INSIDE_CLEAR,     /* no TLS came: the dialogue goes on in clear (a capture decrypted by
                            a TLS-terminating proxy or an export, or a downgrade): NO_TLS_AFTER_STARTTLS */
};

/* What the dissector reads after STARTTLS; for a flow that starts in TLS,
 * MX_INSIDE_DECRYPTED when its dissector reads what it carries. Until
 * bytes come back to the dissector (MX_CHUNK_INSIDE_TLS), MX_INSIDE_NONE. */
enum mx_tls_inside mx_ctx_tls_inside(const struct mx_dissect_ctx *ctx);

/* --tls-keylog: the run's key log, read-only, or NULL. */
const struct mx_keylog *mx_ctx_keylog(const struct mx_dissect_ctx *ctx);

/* --tls-ca: the trust anchors certificates are verified against, read-only,
 * or NULL (not verified). */
const struct mx_tls_trust *mx_ctx_tls_trust(const struct mx_dissect_ctx *ctx);

/* The host name the server announced in clear (a mail greeting, RFC 5321
 * §4.3.1), for the TLS observer to check the certificate against when the
 * client sent no SNI (RFC 6125 §6). The bytes are the dissector's and must
 * stay valid while the flow lives; an empty slice forgets the name. */
void mx_ctx_tls_name_set(struct mx_dissect_ctx *ctx, struct mx_slice name);
struct mx_slice mx_ctx_tls_name(const struct mx_dissect_ctx *ctx);

/* The TLS observer decrypted bytes of `dir` (data.ptr NULL: data.len
 * bytes of it could not be). The host hands them to the protocol's
 * dissector as the stream inside TLS, from the offset where TLS began (0 for
 * a flow that starts in TLS), with the frame that carried the byte at
 * `raw_off` of the TLS stream (the record's last byte). Their records say
 * "decrypted". For a flow that starts in TLS the host makes the protocol's
 * dissector with the first bytes. */
void mx_ctx_tls_plain(struct mx_dissect_ctx *ctx, enum mx_dir dir, struct mx_slice data, uint64_t raw_off);

/* Bytes of `dir` handed to the TLS observer since the upgrade. */
uint64_t mx_ctx_tls_bytes(const struct mx_dissect_ctx *ctx, enum mx_dir dir);

/* The TLS observer's state (the TLS dissector's), or NULL while no TLS byte
 * came: a dissector that knows that dissector may describe it or end it. */
void *mx_ctx_tls_observer(struct mx_dissect_ctx *ctx);

/* ---- Carriers (proto.h, struct mx_carrier): tunnels in front of a mail protocol ---- */

/* The run's protocols (the named ports included), for a carrier to look the
 * tunnel's target up in. */
const struct mx_protocols *mx_ctx_protocols(const struct mx_dissect_ctx *ctx);

/* A carrier says its tunnel carries `proto` (TLS from the first byte when
 * `tls`): from now on the flow is a mail flow of that protocol, numbered,
 * with its flow_start record naming the tunnel's kind `tunnel` (a string
 * that outlives the run). Until then the carrier writes no record. Once per
 * flow; later calls are ignored. */
void mx_ctx_carries(struct mx_dissect_ctx *ctx, const struct mx_proto *proto, bool tls, const char *tunnel);

/* A carrier says the flow carries no tunnel of mail: once the parse call
 * returns its dissection stops without a record, and the flow goes back to
 * being an unknown flow (nDPI may still find mail in it). */
void mx_ctx_no_mail(struct mx_dissect_ctx *ctx);

/* A carrier that called mx_ctx_carries hands the flow over: once the parse
 * call returns, the carrier's state is freed and the protocol's dissector
 * reads each direction from its first byte the carrier did not consume, as
 * if the stream started there (MX_CHUNK_START). */
void mx_ctx_hand_over(struct mx_dissect_ctx *ctx);

#endif
