/* internal.h - what the engine's modules share: the engine, a flow's host state, and the
 * calls between host.c (dissectors), pipeline.c (threads) and engine.c (flows, the run).
 * Nothing outside src/engine/ includes it. */
#ifndef MX_ENGINE_INTERNAL_H
#define MX_ENGINE_INTERNAL_H

#include "engine/dissector.h"
#include "engine/engine.h"
#include "capture/files.h"
#include "core/buf.h"
#include "engine/proto.h"
#include "flow/classify.h"
#include "flow/flow.h"
#include "flow/tcpa.h"

#include <stdatomic.h>

#define MX_FLOW_EVENTS_PER_KIND 16 /* anomaly events per kind and flow; the flow record counts all */

/* ---- The dissector host (host.c) ---- */

struct mx_replay; /* what an unclassified flow delivered, kept for its dissector */

/* Frames of a direction's unconsumed bytes: the first byte each frame carried. */
struct mx_frame_mark {
    uint64_t off;
    mx_frame_t frame;
    mx_time_t ts;
};

/* Per direction: what the dissector left unconsumed, and which frames carried it. */
struct mx_dir_state {
    struct mx_buf kept; /* unconsumed bytes, starting at stream offset `off` */
    uint64_t off;
    size_t want;      /* the parser's hint: call again once kept.n reaches this */
    struct mx_buf fm; /* struct mx_frame_mark: frames of the bytes from `off` on, in order */
    bool started, ended;
};

/* The cleartext inside TLS that a key log decrypts (mx_ctx_tls_plain): its
 * streams, as ds[] are the wire's; for a flow that starts in TLS, the
 * protocol's dissector that reads them. While a call on this layer runs,
 * these are swapped with the flow's own (host.c, plain_swap). */
struct mx_plain {
    bool on[2];                       /* decrypted bytes (or their loss) of d came */
    bool in;                          /* swapped in: a call on this layer is running */
    uint8_t wake;                     /* its wakes, while swapped out */
    uint64_t start[2];                /* where TLS began in d: the offsets go on from there */
    uint64_t next[2];                 /* the offset of d's next decrypted byte */
    struct mx_dir_state ds[2];        /* its streams */
    const struct mx_dissector *dis;   /* a flow that starts in TLS: the protocol's dissector, */
    const struct mx_dissector *names; /* whose anomaly names `an` counts, */
    void *state;                      /* its state, */
    uint32_t *an;                     /* and its anomaly counts */
};

/* A flow as its dissector sees it: the host's state for one flow. */
struct mx_dissect_ctx {
    struct mx_engine *eng;
    struct mx_flow *flow;
    struct mx_flow_info info;
    uint8_t wake;                         /* bit per direction: parse again after this call */
    uint32_t extract_seq;                 /* messages extracted from the flow (mx_ctx_extract_next) */
    bool failed;                          /* mx_ctx_fail: stop once the parse call returns */
    const struct mx_dissector *dis;       /* NULL when not dissected, or stopped */
    const struct mx_dissector *dis_names; /* whose anomaly names dis_an counts */
    void *dstate;
    struct mx_dir_state ds[2];
    uint32_t *dis_an; /* the dissector's anomaly counts */
    struct {          /* anomalies of shared tables (mx_ctx_anomaly_def) */
        const struct mx_anomaly_def *def;
        uint32_t n;
    } other_an[16];
    struct mx_replay *replay;           /* while a flow off the mail ports awaits its classification */
    struct mx_replay *replaying;        /* during mx_host_replay: what it hands over... */
    size_t replay_at;                   /* ...and the item it is at */
    const struct mx_dissector *inner;   /* a carrier's flow: the carried protocol's dissector (mx_ctx_carries) */
    bool handover;                      /* mx_ctx_hand_over: the inner dissector takes over after this call */
    bool no_mail;                       /* mx_ctx_no_mail: the carrier found no tunnel of mail */
    struct {                            /* STARTTLS: the directions handed to a TLS observer */
        const struct mx_dissector *dis; /* the protocol's TLS dissector, or NULL */
        void *state;                    /* made with the first TLS byte */
        bool on[2];                     /* the direction carries TLS */
        bool server_started;            /* the server's records began (injected cleartext skipped) */
        size_t injection;               /* the dissector's anomaly for cleartext the server injected */
        uint64_t bytes[2];
        const struct mx_dissector *mail; /* a flow that starts in TLS: the protocol's dissector, for what
                                            the key log decrypts */
        bool clear;                      /* no TLS came after STARTTLS: the dissector reads on in clear */
        uint8_t inside_pending;          /* bit per direction: its next call carries MX_CHUNK_INSIDE_TLS */
        struct mx_plain plain;
        struct mx_slice name; /* mx_ctx_tls_name_set: the server's announced name */
    } tls;
};

/* A flow's host state, fresh (ctx zero-filled before). */
void mx_host_init(struct mx_dissect_ctx *ctx);

/* Bytes of direction d at stream offset `off`, carried by `frame`. */
void mx_host_data(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, struct mx_slice b, mx_frame_t frame,
                  mx_time_t ts);
/* `len` bytes of d at `off` were never captured. */
void mx_host_gap(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, uint64_t len);
/* Direction d ended: the dissector gets what it left, with MX_CHUNK_END. */
void mx_host_end(struct mx_dissect_ctx *ctx, enum mx_dir d);
/* Adds the dissector's anomaly counts (and those of shared tables) to an open object. */
void mx_host_describe_anomalies(const struct mx_dissect_ctx *ctx, struct mx_event *ev);
/* Bytes the host holds for the flow: the dissector's state, kept bytes, frame marks, replay. */
size_t mx_host_bytes(const struct mx_dissect_ctx *ctx);
/* Frees what the host holds for the flow (the dissector's state included). */
void mx_host_release(struct mx_dissect_ctx *ctx);

/* Replay: starts keeping what the flow delivers (false when out of memory). */
bool mx_host_replay_start(struct mx_dissect_ctx *ctx);
/* Keeps a delivered chunk, or a gap (b.ptr NULL, b.len its length). */
void mx_host_replay_keep(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, struct mx_slice b, bool gap,
                         mx_frame_t frame, mx_time_t ts);
/* Hands what was kept, in order, to ops->data and ops->gap (as reassembly
 * delivered it; the other ops are not called), then forgets it; end[d] is
 * where the kept bytes of each direction end. */
void mx_host_replay(struct mx_dissect_ctx *ctx, const struct mx_reasm_ops *ops, uint64_t end[2]);
/* The same, but what was kept stays, and goes on being kept. */
void mx_host_replay_hold(struct mx_dissect_ctx *ctx, const struct mx_reasm_ops *ops, uint64_t end[2]);
/* Forgets what was kept without replaying it. */
void mx_host_replay_drop(struct mx_dissect_ctx *ctx);
/* mxray's own reading of what was kept: 1 when the first bytes of the
 * direction that spoke first are a TLS record header (a handshake record,
 * RFC 8446 §5.1, or an SSL 2.0 ClientHello), 0 when they are not, -1 when
 * too few bytes were kept to tell. */
int mx_host_replay_tls(const struct mx_dissect_ctx *ctx);
/* Within mx_host_replay: hands the items it has reached (the current one
 * included) to ops once more, for a writer that was not there when they
 * went by (--streams of a tunnel nDPI found). */
void mx_host_replay_so_far(struct mx_dissect_ctx *ctx, const struct mx_reasm_ops *ops);

/* ---- Flows (engine.c) ---- */

/* The engine's per-flow data (flow->user). */
struct flow_ext {
    struct mx_dissect_ctx ctx;
    const struct mx_proto *proto;
    bool tls_port;
    bool handshake; /* the SYN was seen */
    uint64_t pkts[2], wire_bytes[2];
    uint32_t an[MX_AN__COUNT];
    enum mx_close close_reason;
    void *stream; /* its --streams writer's state */
    struct mx_classify_flow cls;
    bool ignored;                     /* classified as not mail: its packets are only counted */
    size_t charged;                   /* bytes counted against the memory cap */
    bool by_ndpi;                     /* recognised as mail by nDPI, not by its port */
    const struct mx_carrier *carrier; /* a tunnel's handshake is read before the flow is known to be mail */
    const char *tunnel;               /* the kind of tunnel the mail flow came through, or NULL */
    uint8_t encap[MX_ENCAP_MAX];      /* the first packet's encapsulations (decode.h), outermost first */
    uint8_t nencap;
    struct mx_tcpa net; /* the network's part: retransmissions, stalls, the handshake's round trip */
    /* Set when it turns out to be mail; on each of its records (struct mx_ev_flow). */
    char community_id[MX_COMMUNITY_ID_LEN];
    char client[MX_ADDR_STRLEN], server[MX_ADDR_STRLEN];
};

/* Where a record falls in the run's order, so that the merge of worker
 * threads gives the records of one thread: the frame that caused it; then 0
 * for what the frame's packet did, 1 for the flows that the frame's clock
 * tick timed out, 2 for those the end of the run closed (at frame FIN_FRAME);
 * then, for those, the frame that last touched the flow. */
struct rkey {
    uint64_t frame, k2;
    uint32_t cls;
};
#define FIN_FRAME (UINT64_MAX / 4)

/* The counters of the summary; workers' are added to the run's. */
struct mx_counters {
    uint64_t bytes, tcp_segments, mail_segments, other_packets, late_packets, flows_total, flows_evicted;
    uint64_t ndpi_flows, ndpi_mail_flows;
    struct mx_anomaly_counts an;
};

#define MX_MAX_FILES MX_MAX_INPUTS /* as many as main may name */

/* One file read, for the summary and for warnings. */
struct mx_file {
    char name[256];
    mx_frame_t first_frame;
    uint64_t frames;
    int linktype;
    const char *status;
};

/* The files read, in order. */
struct mx_files {
    struct mx_file f[MX_MAX_FILES];
    size_t n;
    atomic_size_t pub; /* entries whose name and first frame are final (a worker reads them) */
};

struct mx_pipeline_ops;
struct mx_pipe;

struct mx_engine {
    struct mx_config cfg;
    /* Where records go: `sink` (while workers run, the reader's packing
     * sink), `out` the reporters'. */
    struct mx_sink *sink, *out;
    struct mx_engine *root;           /* the run's engine (itself, or a worker's parent) */
    const struct mx_pipeline_ops *pl; /* where segments are dissected */
    struct mx_pipe *pipe;             /* the worker threads, or NULL */
    struct rkey key;                  /* of the records emitted now */
    int64_t tick;                     /* the capture clock's second that expiry last ran at */
    unsigned shard;                   /* a worker's index */
    struct mx_decoder *dec;
    struct mx_flow_table *flows;
    struct mx_reasm_pool pool;
    void *streams;             /* --streams: cfg.streams's state */
    struct mx_extract extract; /* --extract: dirfd -1 without it */
    struct mx_classifier *cls; /* NULL with --no-ndpi */
    mx_frame_t frame;
    uint64_t frames_seen;
    uint64_t frames_filtered; /* -f on files, --since, --until: frames passed over (their numbers kept) */
    mx_time_t t0;             /* the first packet's time, filtered or not (--since +SECS) */
    mx_time_t now, first_ts, last_ts;
    struct mx_counters c;
    uint64_t ext_mem;     /* what the flows' state is charged (flow_ext.charged) */
    uint64_t flow_budget; /* the memory cap's share for flows and their dissectors */
    uint32_t peak_flows;
    uint64_t an_events[MX_AN__COUNT];
    uint64_t skipped_linktype[8];
    int skipped_lt_value[8];
    atomic_bool warned[MX_AN__COUNT];
    bool failed; /* mxray's own failure (memory, output) */
    bool have_capture_stats;
    uint64_t cap_received, cap_dropped, cap_ifdropped;
    struct mx_files files;
};

/* Begins a record of flow f: with its id, Community ID, client and server
 * once it is a mail flow (numbered), with none of them before. */
struct mx_event *mx_engine_begin(struct mx_engine *e, struct mx_flow *f, const char *type, mx_time_t ts);
/* An anomaly event, attributed to a flow when there is one. */
void mx_engine_emit_anomaly(struct mx_engine *e, struct mx_flow *f, int dir, const char *name, const char *desc,
                            mx_frame_t first, mx_frame_t last, mx_time_t ts);
/* A core anomaly: counted, warned about once, an event (bounded per flow). */
void mx_engine_core_anomaly(struct mx_engine *e, struct mx_flow *f, int dir, enum mx_core_anomaly a, mx_frame_t frame,
                            mx_time_t ts);
/* The keys of the records emitted from now on. */
void mx_engine_set_key(struct mx_engine *e, uint64_t frame, uint32_t cls, uint64_t k2);
/* A worker's message: a segment, a clock tick, the end of the run. */
void mx_engine_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen, const struct mx_flow_key *k,
                       const struct mx_proto *sp, const struct mx_proto *dp);
void mx_engine_expire(struct mx_engine *e, mx_frame_t frame, mx_time_t now);
void mx_engine_finish_flows(struct mx_engine *e);
/* Adds b's counters to a's. */
void mx_counters_add(struct mx_counters *a, const struct mx_counters *b);

/* ---- Where segments are dissected (pipeline.c) ---- */

/* The engine hands the reader's work to a pipeline: this thread
 * (mx_pipeline_inline), or worker threads whose records a merge puts back in
 * the order one thread gives (mx_pipeline_threads). */
struct mx_pipeline_ops {
    /* A TCP segment of flow k, in frame order. */
    void (*segment)(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen, const struct mx_flow_key *k,
                    const struct mx_proto *sp, const struct mx_proto *dp);
    /* The capture clock entered a new second at `frame`: idle flows expire. */
    void (*tick)(struct mx_engine *e, uint64_t frame);
    /* The reader enters frame F's packet, or (tick) its clock tick. */
    void (*stage)(struct mx_engine *e, uint64_t frame, bool tick);
    /* The end of the run: every flow is closed and its records are out. */
    void (*finish)(struct mx_engine *e);
    /* Flows open now (--progress). */
    uint32_t (*flows)(struct mx_engine *e);
};

extern const struct mx_pipeline_ops mx_pipeline_inline;
extern const struct mx_pipeline_ops mx_pipeline_threads;

/* Starts n workers and the merge (e->pipe); false with err when out of memory or threads. */
bool mx_pipeline_start(struct mx_engine *e, unsigned n, char *err, size_t errlen);
/* Ends and frees the workers when the run did not finish (mx_engine_free). */
void mx_pipeline_stop(struct mx_engine *e);
/* A worker tells the merge the least key it may still produce (nothing in one thread). */
void mx_pipeline_key(struct mx_engine *e);
/* A worker added (+1) or removed (-1) flow k: its bucket stays with that
 * worker while the worker holds one of its flows (nothing in one thread). */
void mx_pipeline_flow(struct mx_engine *e, const struct mx_flow_key *k, int delta);

#endif
