/* engine.c - the pipeline: decode, flows, TCP reassembly, dissectors, events and the summary. */
#include "engine/engine.h"

#include "flow/classify.h"
#include "engine/dissector.h"
#include "flow/flow.h"
#include "core/idmap.h"
#include "engine/proto.h"
#include "core/ring.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MX_DECODE_EVENTS_PER_KIND 10 /* run-wide anomaly events per kind; the rest are counted */
#define MX_FLOW_EVENTS_PER_KIND 16   /* anomaly events per kind and flow; the flow record counts all */
#define MX_MAX_FILES 1024
#define MX_CLASSIFY_PKTS 24          /* packets of a flow nDPI may look at */
#define MX_REPLAY_BYTES (64u << 10)  /* bytes kept of an unclassified flow, for its dissector */

/* What an unclassified flow delivered, kept in order until nDPI says whether
 * it is mail: then its dissector gets it all, as if it had run from the start. */
struct replay_item {
    uint8_t dir;
    bool gap;
    uint64_t off, len;
    mx_frame_t frame;
    mx_time_t ts;
    uint32_t at; /* into the byte buffer */
};

struct replay {
    struct replay_item *items;
    size_t n, cap;
    uint8_t *bytes;
    uint32_t used;
    bool overflow; /* more came than is kept: the dissector starts with a gap */
};

/* Per direction: what the dissector left unconsumed, and which frames carried it. */
struct frame_mark {
    uint64_t off; /* stream offset of the first byte the frame carried */
    mx_frame_t frame;
    mx_time_t ts;
};

struct dir_state {
    uint8_t *buf;          /* unconsumed bytes, starting at stream offset `off` */
    size_t len, cap;
    uint64_t off;
    size_t want;           /* the parser's hint: call again once `len` reaches this */
    struct frame_mark *fm; /* frames of the bytes from `off` on, in order */
    size_t fm_len, fm_cap;
    bool started, ended;
};

struct mx_dissect_ctx {
    struct mx_engine *eng;
    struct mx_flow *flow;
    struct mx_flow_info info;
    uint8_t wake;          /* bit per direction: parse again after this call */
};

/* The engine's per-flow data (flow->user). */
struct flow_ext {
    struct mx_dissect_ctx ctx;
    const struct mx_proto *proto;
    bool tls_port;
    bool handshake;         /* the SYN was seen */
    const struct mx_dissector *dis; /* NULL when not dissected, or stopped */
    const struct mx_dissector *dis_names; /* whose anomaly names dis_an counts */
    void *dstate;
    struct dir_state ds[2];
    uint64_t pkts[2], wire_bytes[2];
    uint32_t an[MX_AN__COUNT];
    uint32_t *dis_an;       /* the dissector's anomaly counts */
    struct {                /* anomalies of shared tables (mx_ctx_anomaly_def) */
        const struct mx_anomaly_def *def;
        uint32_t n;
    } other_an[16];
    const char *close_reason;
    void *stream;           /* its --streams writer's state */
    struct mx_classify_flow cls;
    struct replay *replay;  /* while a flow off the mail ports awaits its classification */
    bool ignored;           /* classified as not mail: its packets are only counted */
    size_t charged;         /* bytes counted against the memory cap */
    bool by_ndpi;           /* recognised as mail by nDPI, not by its port */
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

struct pipe;

struct file_info {
    char name[256];
    mx_frame_t first_frame;
    uint64_t frames;
    int linktype;
    const char *status;
};

struct mx_engine {
    struct mx_config cfg;
    struct mx_sink *sink;        /* where records go (while workers run: packed for the merge) */
    struct mx_sink *out;         /* the reporters' sink */
    struct mx_engine *root;      /* the run's engine (itself, or a worker's parent) */
    struct pipe *pipe;           /* the worker threads, or NULL: this thread does it all */
    struct rkey key;             /* of the records emitted now */
    int64_t tick;                /* the capture clock's second that expiry last ran at */
    unsigned shard;              /* a worker's index */
    struct mx_decoder *dec;
    struct mx_flow_table *flows;
    struct mx_reasm_pool pool;
    void *streams;               /* --streams: cfg.streams's state */
    struct mx_classifier *cls;   /* NULL with --no-ndpi */
    mx_frame_t frame;
    uint64_t frames_seen;
    mx_time_t now, first_ts, last_ts;
    /* Counters for the summary. */
    uint64_t bytes, tcp_segments, mail_segments, other_packets, late_packets, flows_total, flows_evicted;
    uint64_t ndpi_flows, ndpi_mail_flows;
    uint64_t ext_mem;            /* what the flows' state is charged (flow_ext.charged) */
    uint64_t flow_budget;        /* the memory cap's share for flows and their dissectors */
    uint32_t peak_flows;
    struct mx_anomaly_counts an;
    uint64_t an_events[MX_AN__COUNT];
    uint64_t skipped_linktype[8];
    int skipped_lt_value[8];
    atomic_bool warned[MX_AN__COUNT];
    bool failed;           /* mxray's own failure (memory, output) */
    bool have_capture_stats;
    uint64_t cap_received, cap_dropped, cap_ifdropped;
    struct file_info files[MX_MAX_FILES];
    size_t n_files;
    atomic_size_t files_pub; /* files[] entries whose name and first frame are final */
};

void mx_config_defaults(struct mx_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_flows = 262144;
    c->memory = UINT64_C(256) << 20;
    c->idle_timeout = 3600 * MX_NS_PER_SEC;
    c->quiet_timeout = 120 * MX_NS_PER_SEC;
    c->closed_linger = 60 * MX_NS_PER_SEC;
    c->dissector_buffer = 1u << 20;
    c->dissect = true;
    c->classify = true;
    c->warnings = true;
}

/* Input-damage anomalies: they set exit status 3 and warn once on stderr. */
static bool is_damage(enum mx_core_anomaly a)
{
    switch (a) {
    case MX_AN_FILE_TRUNCATED:
    case MX_AN_FILE_READ_ERROR:
    case MX_AN_SNAPLEN_TRUNCATED:
    case MX_AN_LINK_HEADER_INVALID:
    case MX_AN_IP_HEADER_INVALID:
    case MX_AN_IP_LENGTH_MISMATCH:
    case MX_AN_IPV6_EXT_INVALID:
    case MX_AN_TCP_HEADER_INVALID:
        return true;
    default:
        return false;
    }
}

/* The file that frame came from. A worker asks too, while the reader may
 * already be on a later file: an entry is published (release) before any of
 * its frames reaches a worker, and its name and first frame never change. */
static const char *file_of(const struct mx_engine *e, mx_frame_t frame)
{
    const struct mx_engine *r = e->root;
    size_t n = atomic_load_explicit(&r->files_pub, memory_order_acquire);
    const char *name = "";
    for (size_t i = 0; i < n && r->files[i].first_frame <= frame; i++)
        name = r->files[i].name;
    return name;
}

static void warn_once(struct mx_engine *e, enum mx_core_anomaly a, mx_frame_t frame, const char *extra)
{
    if (!e->cfg.warnings || !is_damage(a) || atomic_exchange(&e->root->warned[a], true))
        return;
    const char *file = file_of(e, frame);
    fprintf(stderr, "mxray: warning: %s%sframe %" PRIu64 ": %s%s%s (further ones are counted in the summary)\n",
            file, *file ? ": " : "", frame, mx_core_anomalies[a].desc, extra ? ": " : "", extra ? extra : "");
}

/* An anomaly event, attributed to a flow when there is one. */
static void emit_anomaly(struct mx_engine *e, struct mx_flow *f, int dir, const char *name,
                         const char *desc, mx_frame_t first, mx_frame_t last, mx_time_t ts)
{
    struct mx_event *ev = mx_event_begin(e->sink, "anomaly", f ? f->id : 0, ts);
    if (dir >= 0)
        mx_ev_dir(ev, (enum mx_dir)dir);
    mx_ev_str(ev, "name", name);
    mx_ev_frames(ev, first, last);
    mx_ev_str(ev, "desc", desc);
    mx_ev_text(ev, "anomaly %s: %s (frame %" PRIu64 ")", name, desc, first);
    mx_ev_tone(ev, MX_TONE_WARN);
    mx_event_emit(e->sink, ev);
}

static void core_anomaly(struct mx_engine *e, struct mx_flow *f, int dir, enum mx_core_anomaly a,
                         mx_frame_t frame, mx_time_t ts)
{
    e->an.n[a]++;
    warn_once(e, a, frame, NULL);
    /* A flow's events are capped per flow; only flowless ones count against
     * the run-wide cap, which the reading thread alone keeps: a worker's
     * count would depend on how flows were shared out. */
    if (f) {
        struct flow_ext *x = f->user;
        if (x && ++x->an[a] > MX_FLOW_EVENTS_PER_KIND)
            return;
    } else if (e->an_events[a]++ >= MX_DECODE_EVENTS_PER_KIND) {
        return;
    }
    emit_anomaly(e, f, dir, mx_core_anomalies[a].name, mx_core_anomalies[a].desc, frame, frame, ts);
}

/* ---- The dissector context ---- */

struct mx_sink *mx_ctx_sink(struct mx_dissect_ctx *ctx)
{
    return ctx->eng->sink;
}

uint64_t mx_ctx_flow_id(const struct mx_dissect_ctx *ctx)
{
    return ctx->flow->id;
}

uint64_t mx_ctx_offset(const struct mx_dissect_ctx *ctx, enum mx_dir dir)
{
    return ((const struct flow_ext *)ctx->flow->user)->ds[dir].off;
}

struct mx_frame_ref mx_ctx_frame_at(const struct mx_dissect_ctx *ctx, enum mx_dir dir, uint64_t off)
{
    const struct dir_state *ds = &((const struct flow_ext *)ctx->flow->user)->ds[dir];
    struct mx_frame_ref r = { 0, MX_TIME_NONE };
    if (!ds->fm_len)
        return r;
    /* The last mark at or before off (binary search; marks are in offset order). */
    size_t lo = 0, hi = ds->fm_len;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->fm[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    r.frame = ds->fm[lo].frame;
    r.ts = ds->fm[lo].ts;
    return r;
}

const struct mx_flow_info *mx_ctx_flow(const struct mx_dissect_ctx *ctx)
{
    return &ctx->info;
}

void mx_ctx_wake(struct mx_dissect_ctx *ctx, enum mx_dir dir)
{
    ctx->wake |= (uint8_t)(1u << dir);
}

void mx_ctx_anomaly(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t idx, uint64_t off, uint64_t len)
{
    struct flow_ext *x = ctx->flow->user;
    if (!x->dis || idx >= x->dis->n_anomalies)
        return;
    if (x->dis_an && ++x->dis_an[idx] > MX_FLOW_EVENTS_PER_KIND)
        return; /* counted in the flow record; a hostile stream cannot flood the output */
    struct mx_frame_ref a = mx_ctx_frame_at(ctx, dir, off);
    struct mx_frame_ref b = mx_ctx_frame_at(ctx, dir, len ? off + len - 1 : off);
    emit_anomaly(ctx->eng, ctx->flow, (int)dir, x->dis->anomalies[idx].name, x->dis->anomalies[idx].desc,
                 a.frame, b.frame, a.ts);
}

void mx_ctx_anomaly_def(struct mx_dissect_ctx *ctx, enum mx_dir dir, const struct mx_anomaly_def *def,
                        uint64_t off, uint64_t len)
{
    struct flow_ext *x = ctx->flow->user;
    for (size_t i = 0; i < MX_ARRAY_LEN(x->other_an); i++) {
        if (x->other_an[i].def == def || !x->other_an[i].def) {
            x->other_an[i].def = def;
            if (++x->other_an[i].n > MX_FLOW_EVENTS_PER_KIND)
                return;
            break;
        }
    }
    struct mx_frame_ref a = mx_ctx_frame_at(ctx, dir, off);
    struct mx_frame_ref b = mx_ctx_frame_at(ctx, dir, len ? off + len - 1 : off);
    emit_anomaly(ctx->eng, ctx->flow, (int)dir, def->name, def->desc, a.frame, b.frame, a.ts);
}

/* ---- Feeding dissectors ---- */

/* Drops frame marks wholly before the stream offset `off`, keeping the one
 * that covers it. */
static void fm_prune(struct dir_state *ds, uint64_t off)
{
    size_t k = 0;
    while (k + 1 < ds->fm_len && ds->fm[k + 1].off <= off)
        k++;
    if (k) {
        memmove(ds->fm, ds->fm + k, (ds->fm_len - k) * sizeof(*ds->fm));
        ds->fm_len -= k;
    }
}

static bool fm_push(struct dir_state *ds, uint64_t off, mx_frame_t frame, mx_time_t ts)
{
    if (ds->fm_len && ds->fm[ds->fm_len - 1].frame == frame)
        return true;
    if (ds->fm_len == ds->fm_cap) {
        size_t cap = ds->fm_cap ? ds->fm_cap * 2 : 8;
        struct frame_mark *m = realloc(ds->fm, cap * sizeof(*m));
        if (!m)
            return false;
        ds->fm = m;
        ds->fm_cap = cap;
    }
    ds->fm[ds->fm_len].off = off;
    ds->fm[ds->fm_len].frame = frame;
    ds->fm[ds->fm_len].ts = ts;
    ds->fm_len++;
    return true;
}

static void dissect_stop(struct mx_engine *e, struct mx_flow *f, const char *why)
{
    struct flow_ext *x = f->user;
    struct mx_event *ev = mx_event_begin(e->sink, "error", f->id, e->now);
    mx_ev_str(ev, "what", why);
    mx_ev_text(ev, "dissection of this flow stopped: %s", why);
    mx_ev_tone(ev, MX_TONE_BAD);
    mx_event_emit(e->sink, ev);
    if (x->dstate)
        x->dis->state_free(x->dstate);
    x->dstate = NULL;
    x->dis = NULL;
    e->failed = true;
}

/* One parse call; keeps what the parser did not consume. */
static void parse_call(struct mx_engine *e, struct mx_flow *f, enum mx_dir d, struct mx_slice data,
                       unsigned flags, bool data_is_buf)
{
    struct flow_ext *x = f->user;
    struct dir_state *ds = &x->ds[d];
    if (!x->dstate) {
        x->dstate = x->dis->state_new(&x->ctx);
        x->dis_names = x->dis;
        if (x->dis->n_anomalies && x->dstate)
            x->dis_an = calloc(x->dis->n_anomalies, sizeof(*x->dis_an));
        if (!x->dstate || (x->dis->n_anomalies && !x->dis_an)) {
            dissect_stop(e, f, "out of memory");
            return;
        }
    }
    if (!ds->started) {
        flags |= MX_CHUNK_START;
        ds->started = true;
    }
    struct mx_parse_result r = x->dis->parse(x->dstate, &x->ctx, d, data, flags);
    if (r.status != MX_PARSE_OK) {
        dissect_stop(e, f, "the dissector failed (out of memory)");
        return;
    }
    if (flags & (MX_CHUNK_GAP | MX_CHUNK_END | MX_CHUNK_TRUNCATED)) {
        ds->len = 0;
        ds->want = 0;
        return;
    }
    size_t used = r.consumed < data.len ? r.consumed : data.len;
    size_t rest = data.len - used;
    ds->off += used;
    ds->want = r.needed <= e->cfg.dissector_buffer ? rest + r.needed : 0;
    if (rest > e->cfg.dissector_buffer) {
        /* The parser wants more than the cap allows: hand the bytes over as a gap. */
        core_anomaly(e, f, (int)d, MX_AN_DISSECTOR_BUFFER_LIMIT, f->last_frame, e->now);
        ds->len = 0;
        parse_call(e, f, d, mx_slice_make(NULL, rest), MX_CHUNK_GAP, false);
        ds->off += rest;
        return;
    }
    if (rest && data_is_buf) {
        memmove(ds->buf, ds->buf + used, rest);
    } else if (rest) {
        if (rest > ds->cap) {
            uint8_t *b = realloc(ds->buf, rest);
            if (!b) {
                dissect_stop(e, f, "out of memory");
                return;
            }
            ds->buf = b;
            ds->cap = rest;
        }
        memcpy(ds->buf, data.ptr + used, rest);
    }
    ds->len = rest;
    fm_prune(ds, ds->off);
}

/* Re-runs parsers that asked to be woken, a bounded number of times. */
static void run_wakes(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    for (int round = 0; round < 8 && x->dis && x->ctx.wake; round++) {
        uint8_t w = x->ctx.wake;
        x->ctx.wake = 0;
        for (int d = 0; d < 2 && x->dis; d++) {
            struct dir_state *ds = &x->ds[d];
            if ((w & (1u << d)) && ds->len && !ds->ended)
                parse_call(e, f, (enum mx_dir)d, mx_slice_make(ds->buf, ds->len), 0, true);
        }
    }
    x->ctx.wake = 0;
}

static void feed_data(struct mx_engine *e, struct mx_flow *f, enum mx_dir d, uint64_t off,
                      struct mx_slice b, mx_frame_t frame, mx_time_t ts)
{
    struct flow_ext *x = f->user;
    struct dir_state *ds = &x->ds[d];
    if (!x->dis || ds->ended)
        return;
    if (!ds->len)
        ds->off = off;
    if (!fm_push(ds, off, frame, ts)) {
        dissect_stop(e, f, "out of memory");
        return;
    }
    if (!ds->len) {
        parse_call(e, f, d, b, 0, false); /* zero copy: straight from the segment */
        run_wakes(e, f);
        return;
    }
    if (ds->len + b.len > ds->cap) {
        size_t cap = ds->cap ? ds->cap : 4096;
        while (cap < ds->len + b.len)
            cap *= 2;
        uint8_t *nb = realloc(ds->buf, cap);
        if (!nb) {
            dissect_stop(e, f, "out of memory");
            return;
        }
        ds->buf = nb;
        ds->cap = cap;
    }
    memcpy(ds->buf + ds->len, b.ptr, b.len);
    ds->len += b.len;
    if (ds->len < ds->want)
        return; /* the parser asked for more than has come */
    parse_call(e, f, d, mx_slice_make(ds->buf, ds->len), 0, true);
    run_wakes(e, f);
}

static void feed_gap(struct mx_engine *e, struct mx_flow *f, enum mx_dir d, uint64_t off, uint64_t len)
{
    struct flow_ext *x = f->user;
    struct dir_state *ds = &x->ds[d];
    if (!x->dis || ds->ended)
        return;
    if (ds->len) /* the last chance for what was cut: then it is dropped */
        parse_call(e, f, d, mx_slice_make(ds->buf, ds->len), MX_CHUNK_TRUNCATED, true);
    if (!x->dis)
        return;
    ds->off = off;
    ds->len = 0;
    parse_call(e, f, d, mx_slice_make(NULL, (size_t)len), MX_CHUNK_GAP, false);
    ds->off = off + len;
    ds->fm_len = 0;
    run_wakes(e, f);
}

static void feed_end(struct mx_engine *e, struct mx_flow *f, enum mx_dir d)
{
    struct flow_ext *x = f->user;
    struct dir_state *ds = &x->ds[d];
    if (!x->dis || !x->dstate || ds->ended)
        return; /* a dissector that never saw a byte has nothing to end */
    parse_call(e, f, d, mx_slice_make(ds->len ? ds->buf : NULL, ds->len), MX_CHUNK_END, true);
    ds->ended = true;
    run_wakes(e, f);
}

/* ---- Reassembly callbacks ---- */

/* Keeps a delivered chunk (or a gap) of an unclassified flow. */
static void replay_keep(struct flow_ext *x, enum mx_dir d, uint64_t off, struct mx_slice b, bool gap,
                        mx_frame_t frame, mx_time_t ts)
{
    struct replay *r = x->replay;
    if (r->overflow)
        return;
    size_t need = gap ? 0 : b.len;
    if (r->used + need > MX_REPLAY_BYTES || r->n == 4096) {
        r->overflow = true;
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct replay_item *it = realloc(r->items, cap * sizeof(*it));
        if (!it) {
            r->overflow = true;
            return;
        }
        r->items = it;
        r->cap = cap;
    }
    if (!r->bytes && need) {
        r->bytes = malloc(MX_REPLAY_BYTES);
        if (!r->bytes) {
            r->overflow = true;
            return;
        }
    }
    struct replay_item *it = &r->items[r->n++];
    it->dir = (uint8_t)d;
    it->gap = gap;
    it->off = off;
    it->len = b.len;
    it->frame = frame;
    it->ts = ts;
    it->at = r->used;
    if (need)
        memcpy(r->bytes + r->used, b.ptr, need);
    r->used += (uint32_t)need;
}

static void replay_free(struct flow_ext *x)
{
    if (!x->replay)
        return;
    free(x->replay->items);
    free(x->replay->bytes);
    free(x->replay);
    x->replay = NULL;
}

static void on_data(void *ud, enum mx_dir d, uint64_t off, struct mx_slice b, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct flow_ext *x = ctx->flow->user;
    if (!x->proto) {
        if (x->replay)
            replay_keep(x, d, off, b, false, frame, ts);
        return;
    }
    if (x->stream)
        ctx->eng->cfg.streams->data(ctx->eng->streams, x->stream, d, b);
    feed_data(ctx->eng, ctx->flow, d, off, b, frame, ts);
}

static void on_gap(void *ud, enum mx_dir d, uint64_t off, uint64_t len, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct mx_engine *e = ctx->eng;
    struct mx_flow *f = ctx->flow;
    struct flow_ext *x = f->user;
    if (!x->proto) {
        if (x->replay)
            replay_keep(x, d, off, mx_slice_make(NULL, len), true, frame, ts);
        return;
    }
    x->an[MX_AN_TCP_GAP]++;
    e->an.n[MX_AN_TCP_GAP]++;
    if (!frame)
        ts = f->last_ts; /* settled by the flow's end */
    struct mx_event *ev = mx_event_begin(e->sink, "gap", f->id, ts);
    mx_ev_dir(ev, d);
    mx_ev_uint(ev, "offset", off);
    mx_ev_uint(ev, "len", len);
    mx_ev_frames(ev, frame, frame);
    mx_ev_text(ev, "gap: %" PRIu64 " bytes never captured at offset %" PRIu64, len, off);
    mx_ev_tone(ev, MX_TONE_WARN);
    mx_event_emit(e->sink, ev);
    if (x->stream)
        e->cfg.streams->gap(e->streams, x->stream, d, off, len);
    feed_gap(e, f, d, off, len);
}

static void on_fin(void *ud, enum mx_dir d, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct flow_ext *x = ctx->flow->user;
    (void)frame;
    (void)ts;
    if (x->ds[mx_dir_other(d)].ended && !ctx->info.close)
        ctx->info.close = "fin"; /* both directions ended with FIN: the dissector ends with this call */
    feed_end(ctx->eng, ctx->flow, d);
}

static void on_anomaly(void *ud, enum mx_dir d, enum mx_core_anomaly an, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    if (!((struct flow_ext *)ctx->flow->user)->proto)
        return; /* not (yet) a mail flow */
    core_anomaly(ctx->eng, ctx->flow, (int)d, an, frame, ts);
}

static const struct mx_reasm_ops reasm_ops = {
    .data = on_data,
    .gap = on_gap,
    .fin = on_fin,
    .anomaly = on_anomaly,
};

/* ---- Flows ---- */

static void emit_flow_start(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    char c[MX_ADDR_STRLEN], s[MX_ADDR_STRLEN];
    mx_addr_str(&f->addr[MX_DIR_C2S], c, sizeof(c));
    mx_addr_str(&f->addr[MX_DIR_S2C], s, sizeof(s));
    struct mx_event *ev = mx_event_begin(e->sink, "flow_start", f->id, f->first_ts);
    mx_ev_str(ev, "proto", x->proto->name);
    mx_ev_str(ev, "client", c);
    mx_ev_uint(ev, "client_port", f->port[MX_DIR_C2S]);
    mx_ev_str(ev, "server", s);
    mx_ev_uint(ev, "server_port", f->port[MX_DIR_S2C]);
    mx_ev_bool(ev, "handshake", x->handshake);
    if (x->by_ndpi)
        mx_ev_bool(ev, "found_by_ndpi", true);
    mx_ev_frames(ev, f->first_frame, f->first_frame);
    bool v6 = f->addr[0].family == 6;
    mx_ev_text(ev, "%s %s%s%s:%u -> %s%s%s:%u %s", x->proto->name, v6 ? "[" : "", c, v6 ? "]" : "",
               f->port[0], v6 ? "[" : "", s, v6 ? "]" : "", f->port[1],
               x->handshake ? "connection opened" : "picked up midstream");
    mx_event_emit(e->sink, ev);
}

static void emit_half(struct mx_event *ev, const char *key, const struct mx_flow *f, int d)
{
    const struct flow_ext *x = f->user;
    const struct mx_half *h = &f->reasm.h[d];
    mx_ev_obj(ev, key);
    mx_ev_uint(ev, "packets", x->pkts[d]);
    mx_ev_uint(ev, "bytes", x->wire_bytes[d]);
    mx_ev_uint(ev, "payload_bytes", h->delivered);
    mx_ev_uint(ev, "gaps", h->gaps);
    mx_ev_uint(ev, "gap_bytes", h->gap_bytes);
    mx_ev_bool(ev, "fin", h->fin);
    mx_ev_end(ev);
}

static void emit_flow_record(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    char c[MX_ADDR_STRLEN], s[MX_ADDR_STRLEN];
    mx_addr_str(&f->addr[MX_DIR_C2S], c, sizeof(c));
    mx_addr_str(&f->addr[MX_DIR_S2C], s, sizeof(s));
    struct mx_event *ev = mx_event_begin(e->sink, "flow", f->id, f->last_ts);
    mx_ev_str(ev, "proto", x->proto->name);
    mx_ev_bool(ev, "tls_port", x->tls_port);
    mx_ev_str(ev, "client", c);
    mx_ev_uint(ev, "client_port", f->port[MX_DIR_C2S]);
    mx_ev_str(ev, "server", s);
    mx_ev_uint(ev, "server_port", f->port[MX_DIR_S2C]);
    mx_ev_time(ev, "start", f->first_ts);
    mx_ev_time(ev, "end", f->last_ts);
    mx_ev_double(ev, "duration", (double)(f->last_ts - f->first_ts) / 1e9);
    mx_ev_frames(ev, f->first_frame, f->last_frame);
    mx_ev_bool(ev, "handshake", x->handshake);
    emit_half(ev, "c2s", f, MX_DIR_C2S);
    emit_half(ev, "s2c", f, MX_DIR_S2C);
    mx_ev_obj(ev, "anomalies");
    for (int a = 0; a < MX_AN__COUNT; a++)
        if (x->an[a])
            mx_ev_uint(ev, mx_core_anomalies[a].name, x->an[a]);
    if (x->dis_an)
        for (size_t i = 0; i < x->dis_names->n_anomalies; i++)
            if (x->dis_an[i])
                mx_ev_uint(ev, x->dis_names->anomalies[i].name, x->dis_an[i]);
    for (size_t i = 0; i < MX_ARRAY_LEN(x->other_an) && x->other_an[i].def; i++)
        mx_ev_uint(ev, x->other_an[i].def->name, x->other_an[i].n);
    mx_ev_end(ev);
    if (e->cls)
        mx_classify_describe(e->cls, &x->cls, ev);
    if (x->by_ndpi)
        mx_ev_bool(ev, "found_by_ndpi", true);
    mx_ev_str(ev, "close", x->close_reason ? x->close_reason : "capture_end");
    mx_ev_text(ev, "closed (%s): client %" PRIu64 " packets, %" PRIu64 " payload bytes; server %" PRIu64
                   " packets, %" PRIu64 " payload bytes%s",
               x->close_reason ? x->close_reason : "capture_end", x->pkts[0], f->reasm.h[0].delivered,
               x->pkts[1], f->reasm.h[1].delivered,
               (f->reasm.h[0].gaps || f->reasm.h[1].gaps) ? "; with gaps" : "");
    mx_event_emit(e->sink, ev);
}

/* ---- The memory cap ----
 * A flow is charged what it holds: its entries, nDPI's flow while it
 * classifies, its dissector's state, the bytes kept for the dissector and
 * for replay. Reassembly has its own cap (the pool). */
#define FLOW_ENTRY_BYTES (sizeof(struct mx_flow) + 2 * sizeof(void *)) /* and its hash slots */

static size_t flow_charge(const struct flow_ext *x)
{
    size_t n = sizeof(*x);
    if (x->cls.nf)
        n += mx_classify_flow_bytes();
    if (x->dis && x->dstate && x->dis->state_bytes)
        n += x->dis->state_bytes(x->dstate);
    if (x->dis_names)
        n += x->dis_names->n_anomalies * sizeof(*x->dis_an);
    for (int d = 0; d < 2; d++)
        n += x->ds[d].cap + x->ds[d].fm_cap * sizeof(struct frame_mark);
    if (x->replay)
        n += sizeof(*x->replay) + x->replay->cap * sizeof(struct replay_item) + (x->replay->bytes ? MX_REPLAY_BYTES : 0);
    return n;
}

static void recharge(struct mx_engine *e, struct flow_ext *x)
{
    size_t n = flow_charge(x);
    e->ext_mem += n - x->charged;
    x->charged = n;
}

static bool evict_one(struct mx_engine *e, mx_frame_t frame, mx_time_t ts, const struct mx_flow *keep);

static uint64_t mem_used(const struct mx_engine *e)
{
    return (uint64_t)mx_flow_count(e->flows) * FLOW_ENTRY_BYTES + e->ext_mem;
}

/* Closes the least recently active flows (FLOW_EVICTED) until `more` bytes fit. */
static void mem_room(struct mx_engine *e, uint64_t more, const struct mx_packet *p, const struct mx_flow *keep)
{
    while (mem_used(e) + more > e->flow_budget && evict_one(e, p->frame, p->ts, keep))
        ;
}

static void flow_ext_free(struct mx_engine *e, struct flow_ext *x)
{
    if (!x)
        return;
    e->ext_mem -= x->charged;
    if (e->cls)
        mx_classify_finish(e->cls, &x->cls);
    replay_free(x);
    if (x->dis && x->dstate)
        x->dis->state_free(x->dstate);
    for (int d = 0; d < 2; d++) {
        free(x->ds[d].buf);
        free(x->ds[d].fm);
    }
    free(x->dis_an);
    free(x);
}

static void classified(struct mx_engine *e, struct mx_flow *f);

/* Ends a flow: delivers what is held, ends the dissector, reports the flow,
 * then keeps it as a closed entry: only its key and times, to count late
 * packets; the dissector's state and the reassembly buffers are freed now. */
static void flow_close(struct mx_engine *e, struct mx_flow *f, const char *reason)
{
    if (f->state == MX_FLOW_CLOSED)
        return;
    struct flow_ext *x = f->user;
    x->close_reason = reason;
    x->ctx.info.close = reason ? reason : "capture_end";
    if (e->cls && !x->cls.done) {
        mx_classify_finish(e->cls, &x->cls);
        if (!x->proto && !x->ignored)
            classified(e, f);
    }
    mx_reasm_finish(&f->reasm, &e->pool, &reasm_ops, &x->ctx);
    feed_end(e, f, MX_DIR_C2S);
    feed_end(e, f, MX_DIR_S2C);
    /* RFC 9293 §3.5: a SYN is answered by SYN-ACK or RST; nothing at all
     * came back (a dead server, a filter, a SYN flood, or a blind capture). */
    if (x->proto && x->handshake && !x->pkts[MX_DIR_S2C])
        core_anomaly(e, f, MX_DIR_C2S, MX_AN_SYN_UNANSWERED, f->first_frame, f->first_ts);
    if (x->proto)
        emit_flow_record(e, f);
    if (x->stream) {
        e->cfg.streams->close(e->streams, x->stream);
        x->stream = NULL;
    }
    mx_reasm_release(&f->reasm, &e->pool);
    flow_ext_free(e, x);
    f->user = NULL;
    f->touch_now = e->now; /* it lingers from now */
    mx_flow_set_closed(e->flows, f);
}

static void flow_drop(struct mx_engine *e, struct mx_flow *f)
{
    flow_close(e, f, "capture_end");
    mx_flow_remove(e->flows, f);
}

static void set_key(struct mx_engine *e, uint64_t frame, uint32_t cls, uint64_t k2)
{
    e->key.frame = frame;
    e->key.cls = cls;
    e->key.k2 = k2;
}

static void pipe_key(struct mx_engine *e);

/* Closes flows idle past their timeout, in the order they were last
 * touched, and forgets closed ones past the linger. Each list is in touch
 * order, and so in the order of the capture clock then, so only heads are
 * looked at. It runs when the capture clock enters a new second: each flow's
 * fate depends on that clock and on its own packets alone, so worker threads
 * that each see some flows close the same flows at the same frames. */
static void expire(struct mx_engine *e, mx_frame_t frame, mx_time_t now)
{
    struct mx_flow *f;
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED)) && f->touch_now + e->cfg.closed_linger < now)
        flow_drop(e, f);
    for (;;) {
        struct mx_flow *q = mx_flow_oldest_of(e->flows, false), *b = mx_flow_oldest_of(e->flows, true);
        if (q && q->touch_now + e->cfg.quiet_timeout >= now)
            q = NULL; /* quiet: no payload yet */
        if (b && b->touch_now + e->cfg.idle_timeout >= now)
            b = NULL;
        if (!q && !b)
            break;
        f = !b || (q && q->touch_frame < b->touch_frame) ? q : b;
        set_key(e, frame, 1, f->touch_frame);
        pipe_key(e);
        flow_close(e, f, "timeout");
        flow_drop(e, f);
    }
}

/* Makes room: a closed entry first, else the least recently active flow,
 * never `keep` (the flow being handled). */
static bool evict_one(struct mx_engine *e, mx_frame_t frame, mx_time_t ts, const struct mx_flow *keep)
{
    struct mx_flow *f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED);
    if (f) {
        flow_drop(e, f);
        return true;
    }
    f = mx_flow_oldest(e->flows, MX_FLOW_ACTIVE);
    if (!f || f == keep)
        return false;
    core_anomaly(e, f, -1, MX_AN_FLOW_EVICTED, frame, ts);
    e->flows_evicted++;
    flow_close(e, f, "evicted");
    flow_drop(e, f);
    return true;
}

/* Decides the roles of a new flow from its first packet: the SYN's sender is
 * the client (RFC 9293 §3.5); midstream, the end on a mail port is the server,
 * and failing that the lower port. */
static bool sender_is_client(const struct mx_packet *p, const struct mx_proto *sp, const struct mx_proto *dp)
{
    if ((p->flags & MX_TCP_SYN) && !(p->flags & MX_TCP_ACK))
        return true;
    if ((p->flags & MX_TCP_SYN) && (p->flags & MX_TCP_ACK))
        return false;
    if (dp && !sp)
        return true;
    if (sp && !dp)
        return false;
    return p->dport <= p->sport;
}

/* Makes a flow a mail flow of `proto`: its number, dissector, stream files
 * and flow_start record. */
static void become_mail(struct mx_engine *e, struct mx_flow *f, const struct mx_proto *proto, bool tls)
{
    struct flow_ext *x = f->user;
    x->proto = proto;
    x->tls_port = tls;
    f->id = ++e->flows_total; /* mail flows are numbered 1, 2, ... */
    x->ctx.info.id = f->id;
    x->ctx.info.handshake = x->handshake;
    x->ctx.info.tls_port = tls;
    const struct mx_dissector *dis = e->cfg.dissector_override ? e->cfg.dissector_override : proto->dissector;
    if (tls) /* TLS from the first byte: the protocol's TLS dissector (an override stands for cleartext ones) */
        dis = e->cfg.dissector_override ? NULL : proto->tls_dissector;
    if (e->cfg.dissect && dis)
        x->dis = dis; /* its state is made with the first byte: SYN-only flows cost nothing */
    if (e->streams) {
        x->stream = e->cfg.streams->open(e->streams, f->id, proto->name, &f->addr[0], f->port[0], &f->addr[1],
                                    f->port[1], f->first_frame);
        if (!x->stream)
            e->failed = true;
    }
    emit_flow_start(e, f);
}

static struct mx_flow *flow_create(struct mx_engine *e, const struct mx_flow_key *k, const struct mx_packet *p,
                                   const struct mx_proto *sp, const struct mx_proto *dp)
{
    if (mx_flow_count(e->flows) >= mx_flow_capacity(e->flows) && !evict_one(e, p->frame, p->ts, NULL))
        return NULL;
    mem_room(e, FLOW_ENTRY_BYTES + sizeof(struct flow_ext) + (e->cls ? mx_classify_flow_bytes() : 0), p, NULL);
    struct flow_ext *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    struct mx_flow *f = mx_flow_add(e->flows, k);
    if (!f) {
        free(x);
        return NULL;
    }
    f->user = x;
    f->id = 0; /* numbered when it turns out to be mail */
    x->ctx.eng = e;
    x->ctx.flow = f;
    x->ctx.info.show_secrets = e->cfg.show_secrets;
    x->ctx.info.explain = e->cfg.explain;
    x->ctx.info.extract_dir = e->cfg.extract_dir;
    x->ctx.info.start = p->ts;
    bool cli = sender_is_client(p, sp, dp);
    f->addr[MX_DIR_C2S] = cli ? p->src : p->dst;
    f->port[MX_DIR_C2S] = cli ? p->sport : p->dport;
    f->addr[MX_DIR_S2C] = cli ? p->dst : p->src;
    f->port[MX_DIR_S2C] = cli ? p->dport : p->sport;
    bool tls = false;
    const struct mx_proto *proto = mx_protocols_by_port(e->cfg.protocols, f->port[MX_DIR_S2C], &tls);
    if (!proto)
        proto = mx_protocols_by_port(e->cfg.protocols, f->port[MX_DIR_C2S], &tls);
    x->handshake = (p->flags & MX_TCP_SYN) != 0;
    f->first_ts = f->last_ts = p->ts;
    f->first_frame = p->frame;
    if (mx_flow_count(e->flows) > e->peak_flows)
        e->peak_flows = mx_flow_count(e->flows);
    if (proto) {
        become_mail(e, f, proto, tls);
    } else {
        /* Off the mail ports: nDPI decides; meanwhile what it says is kept. */
        x->replay = calloc(1, sizeof(*x->replay));
        if (!x->replay)
            x->ignored = true;
        e->ndpi_flows++;
    }
    recharge(e, x);
    return f;
}

/* nDPI settled an unclassified flow: mail gets its dissector, fed what was
 * kept; anything else is only counted from now on. */
static void classified(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    bool tls = false;
    const struct mx_proto *pr = mx_protocols_by_ndpi(e->cfg.protocols, x->cls.app, &tls);
    if (!pr)
        pr = mx_protocols_by_ndpi(e->cfg.protocols, x->cls.master, &tls);
    struct replay *r = x->replay;
    x->replay = NULL;
    if (!pr) {
        x->ignored = true;
        mx_reasm_release(&f->reasm, &e->pool);
        f->reasm.closed = true;
    } else {
        become_mail(e, f, pr, tls);
        x->by_ndpi = true;
        e->ndpi_mail_flows++;
        uint64_t end[2] = { 0, 0 };
        for (size_t i = 0; r && i < r->n; i++) {
            const struct replay_item *it = &r->items[i];
            if (it->gap)
                on_gap(&x->ctx, (enum mx_dir)it->dir, it->off, it->len, it->frame, it->ts);
            else
                on_data(&x->ctx, (enum mx_dir)it->dir, it->off, mx_slice_make(r->bytes + it->at, it->len),
                        it->frame, it->ts);
            end[it->dir] = it->off + it->len;
        }
        /* What came past the kept bytes is a gap for the dissector. */
        for (int d = 0; d < 2; d++)
            if (f->reasm.h[d].off > end[d])
                on_gap(&x->ctx, (enum mx_dir)d, end[d], f->reasm.h[d].off - end[d], f->last_frame, f->last_ts);
    }
    if (r) {
        free(r->items);
        free(r->bytes);
        free(r);
    }
    recharge(e, x);
}

/* A TCP segment of flow k; sp and dp are the mail protocols of its ports. */
static void flow_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen,
                         const struct mx_flow_key *k, const struct mx_proto *sp, const struct mx_proto *dp)
{
    struct mx_flow *f = mx_flow_find(e->flows, k);
    if (f && f->state == MX_FLOW_ACTIVE && (p->flags & MX_TCP_SYN) && !(p->flags & MX_TCP_ACK) &&
        p->sport == f->port[MX_DIR_C2S] && mx_addr_eq(&p->src, &f->addr[MX_DIR_C2S]) &&
        mx_reasm_new_syn(&f->reasm, MX_DIR_C2S, p->seq)) {
        /* RFC 9293 §3.5: a new connection on a 4-tuple whose old one never closed. */
        flow_close(e, f, "reused");
        flow_drop(e, f);
        f = NULL;
    }
    if (f && f->state == MX_FLOW_CLOSED) {
        if (!((p->flags & MX_TCP_SYN) && !(p->flags & MX_TCP_ACK))) {
            e->late_packets++; /* a straggler of a finished connection: it lingers on */
            if (p->ts > f->last_ts)
                f->last_ts = p->ts;
            mx_flow_touch(e->flows, f, p->frame, e->now);
            return;
        }
        flow_drop(e, f); /* the 4-tuple is reused by a new connection */
        f = NULL;
    }
    if (!f) {
        if (p->flags & MX_TCP_RST)
            return; /* a lone RST opens nothing */
        f = flow_create(e, k, p, sp, dp);
        if (!f) {
            e->failed = true;
            return;
        }
    }
    struct flow_ext *x = f->user;
    if (x->ignored) {
        /* Not mail: forget it when it ends, else let it time out. */
        f->last_ts = p->ts > f->last_ts ? p->ts : f->last_ts;
        mx_flow_touch(e->flows, f, p->frame, e->now);
        if (p->flags & (MX_TCP_RST | MX_TCP_FIN))
            flow_drop(e, f);
        return;
    }
    enum mx_dir d = (p->sport == f->port[MX_DIR_C2S] && mx_addr_eq(&p->src, &f->addr[MX_DIR_C2S]))
                        ? MX_DIR_C2S
                        : MX_DIR_S2C;
    if ((p->flags & MX_TCP_SYN) && !(p->flags & MX_TCP_ACK) && d == MX_DIR_C2S)
        x->handshake = true;
    x->pkts[d]++;
    x->wire_bytes[d] += wirelen;
    /* Capture clocks can step backwards: a flow spans from its earliest to its latest packet. */
    if (p->ts > f->last_ts)
        f->last_ts = p->ts;
    if (p->ts < f->first_ts)
        f->first_ts = p->ts;
    f->last_frame = p->frame;
    mx_flow_touch(e->flows, f, p->frame, e->now);
    /* nDPI learns nothing from a bare ACK after the handshake; skipping them
     * halves its calls on a mail flow. */
    bool bare_ack = !p->payload_len && !(p->flags & (MX_TCP_SYN | MX_TCP_FIN | MX_TCP_RST)) && x->cls.pkts >= 3;
    if (e->cls && !x->cls.done && p->l3.len && !bare_ack) {
        mx_classify_packet(e->cls, &x->cls, p->l3, p->ts, MX_CLASSIFY_PKTS);
        if (x->cls.done && !x->proto)
            classified(e, f);
        if (x->ignored)
            return;
    }
    if (p->truncated)
        core_anomaly(e, f, (int)d, MX_AN_SNAPLEN_TRUNCATED, p->frame, p->ts);
    if (!mx_reasm_segment(&f->reasm, &e->pool, d, p, &reasm_ops, &x->ctx))
        e->failed = true;
    if (!f->busy && (f->reasm.h[0].delivered || f->reasm.h[1].delivered))
        mx_flow_set_busy(e->flows, f);
    if (f->user) {
        recharge(e, f->user);
        mem_room(e, 0, p, f);
    }
    if (p->flags & MX_TCP_RST)
        flow_close(e, f, "rst");
    else if (f->reasm.h[0].fin_done && f->reasm.h[1].fin_done)
        flow_close(e, f, "fin");
}

/* ---- Worker threads ----
 *
 * With cfg.workers > 0 this thread reads and decodes, and hands each TCP
 * segment to the worker that owns its flow (by the hash of its 4-tuple)
 * through a ring. Workers are engines of their own (flows, reassembly, nDPI,
 * dissectors) whose sinks pack each record, with its key (struct rkey), into a
 * ring to the merge thread. The merge releases a record once no stream can
 * still produce a smaller key, renumbers flows in the order their flow_start
 * records pass, and hands it to the reporters: the output is that of one
 * thread, whatever the number of workers. */

enum { MSG_PKT, MSG_TICK, MSG_END, MSG_REC, MSG_LEVELS };

/* What a worker's flows and reassembly held while it handled one message:
 * the most at any moment, and at the end. The merge adds the other
 * workers' levels, so its peaks are those of one thread. */
struct levels {
    uint64_t flows_max, flows_end, bytes_max, bytes_end;
};

/* A message's head on a ring; a message too big for the ring is on the heap. */
struct msg {
    uint32_t kind;
    uint32_t wirelen;    /* MSG_PKT */
    mx_time_t now;       /* MSG_PKT, MSG_TICK: the capture clock */
    struct rkey key;     /* MSG_TICK: its frame; MSG_REC: the record's key */
    void *heap;          /* the body, when not inline after this head */
};

/* A segment for a worker: the packet with its slices as offsets into the
 * bytes that follow, its flow key and its ports' protocols. */
struct pkt_body {
    struct mx_packet p;
    struct mx_flow_key k;
    const struct mx_proto *sp, *dp;
    uint32_t l3_len, payload_at;
};

/* A lower bound of the keys a worker will still produce, published with a
 * sequence lock so that the merge reads a consistent triple. */
struct key_pub {
    atomic_uint seq;
    atomic_uint_fast64_t frame, k2;
    atomic_uint cls;
};

struct worker {
    struct pipe *pipe;
    struct mx_engine *eng;
    struct mx_sink *sink;        /* eng's: packs records into `out` */
    pthread_t th;
    bool started;
    struct mx_ring in, out;
    struct mx_park park;         /* this worker waits here */
    struct key_pub cur;
    atomic_uint nflows;          /* flows open, for the progress display */
    struct mx_idmap ids;         /* the merge's: this worker's flow numbers to the run's */
    uint64_t lv_flows, lv_bytes; /* the merge's: its latest levels */
};

struct pipe {
    struct mx_engine *root;
    unsigned n;
    struct worker *w;
    struct mx_ring out;          /* the reader's own records (decode anomalies) */
    struct mx_sink *sink;        /* the reader's packing sink */
    struct mx_park reader, merger;
    pthread_t merge_th;
    bool merge_started;
    /* Where the reader is: 2F while frame F's packet is being handed over,
     * 2F+1 while its clock tick is; a worker with nothing to do produces no
     * key below what this allows. */
    atomic_uint_fast64_t stage;
    uint64_t flows;              /* the merge's flow numbers */
    uint64_t sum_flows, sum_bytes, peak_flows, peak_bytes; /* the merge's: all workers' levels */
    bool failed;                 /* the merge ran out of memory */
};

#define RING_IN (2u << 20)  /* bytes of segments queued for a worker */
#define RING_OUT (4u << 20) /* bytes of records queued for the merge */
#define RING_READER (1u << 20) /* the reader's records (decode anomalies) */

static struct rkey key_read(struct key_pub *p)
{
    struct rkey k;
    unsigned s1, s2;
    do {
        s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
        k.frame = atomic_load_explicit(&p->frame, memory_order_relaxed);
        k.k2 = atomic_load_explicit(&p->k2, memory_order_relaxed);
        k.cls = atomic_load_explicit(&p->cls, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&p->seq, memory_order_relaxed);
    } while ((s1 & 1) || s1 != s2);
    return k;
}

static void key_write(struct key_pub *p, const struct rkey *k)
{
    unsigned s = atomic_load_explicit(&p->seq, memory_order_relaxed);
    atomic_store_explicit(&p->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&p->frame, k->frame, memory_order_relaxed);
    atomic_store_explicit(&p->k2, k->k2, memory_order_relaxed);
    atomic_store_explicit(&p->cls, k->cls, memory_order_relaxed);
    atomic_store_explicit(&p->seq, s + 2, memory_order_release);
}

static int key_cmp(const struct rkey *a, const struct rkey *b)
{
    if (a->frame != b->frame)
        return a->frame < b->frame ? -1 : 1;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->k2 != b->k2)
        return a->k2 < b->k2 ? -1 : 1;
    return 0;
}

/* Starts a message of `body` bytes: the body's address, or NULL when the
 * heap is out of memory. msg_end() publishes it. */
static void *msg_begin(struct mx_ring *r, uint32_t kind, size_t body, struct msg **mp)
{
    void *heap = NULL;
    size_t inl = body;
    *mp = NULL;
    if (sizeof(struct msg) + body > MX_RING_MAX_MSG(r)) {
        heap = malloc(body);
        if (!heap)
            return NULL;
        inl = 0;
    }
    struct msg *m = mx_ring_reserve(r, sizeof(*m) + inl);
    m->kind = kind;
    m->heap = heap;
    *mp = m;
    return heap ? heap : (void *)(m + 1);
}

/* A message without a body: a clock tick or the end of a stream. */
static void msg_signal(struct mx_ring *r, uint32_t kind, mx_time_t now, uint64_t frame)
{
    struct msg *m = mx_ring_reserve(r, sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    m->now = now;
    m->key.frame = frame;
    mx_ring_commit(r);
}

static void *msg_body(struct msg *m)
{
    return m->heap ? m->heap : (void *)(m + 1);
}

static void msg_done(struct mx_ring *r, struct msg *m)
{
    free(m->heap);
    mx_ring_release(r);
}

/* The packing reporter of a worker's (or the reader's) sink. */
struct packer {
    struct mx_ring *ring;
    const struct rkey *key;
    struct mx_engine *eng;
};

static void pack_event(void *ctx, const struct mx_event *ev)
{
    struct packer *pk = ctx;
    struct msg *m;
    void *b = msg_begin(pk->ring, MSG_REC, mx_event_packed_size(ev), &m);
    if (!b) {
        pk->eng->failed = true;
        return;
    }
    m->key = *pk->key;
    mx_event_pack(ev, b);
    mx_ring_commit(pk->ring);
}

static void pack_free(void *ctx)
{
    free(ctx);
}

static const struct mx_reporter_ops packer_ops = {
    .event = pack_event,
    .free = pack_free,
};

static struct mx_sink *packing_sink(struct mx_ring *ring, struct mx_engine *eng, bool wants_text)
{
    struct mx_sink *s = mx_sink_new();
    struct packer *pk = calloc(1, sizeof(*pk));
    if (!s || !pk || !mx_sink_add(s, &packer_ops, pk)) {
        free(pk);
        mx_sink_free(s);
        return NULL;
    }
    pk->ring = ring;
    pk->key = &eng->key;
    pk->eng = eng;
    mx_sink_set_wants_text(s, wants_text);
    return s;
}

/* A worker tells the merge the least key it may still produce. */
static void pipe_key(struct mx_engine *e)
{
    if (e->root != e)
        key_write(&e->root->pipe->w[e->shard].cur, &e->key);
}

/* The reader enters frame F's packet, or (tick) its clock tick. */
static void pipe_stage(struct mx_engine *e, uint64_t frame, bool tick)
{
    if (!e->pipe)
        return;
    atomic_store_explicit(&e->pipe->stage, frame * 2 + tick, memory_order_release);
    mx_park_wake(&e->pipe->merger);
}

static void finish_flows(struct mx_engine *e);

static void send_levels(struct worker *w, uint32_t flows)
{
    struct mx_engine *e = w->eng;
    struct msg *m;
    struct levels *l = msg_begin(&w->out, MSG_LEVELS, sizeof(*l), &m);
    if (!l)
        return;
    m->key = e->key;
    l->flows_max = e->peak_flows > flows ? e->peak_flows : flows;
    l->flows_end = flows;
    l->bytes_max = e->pool.peak_bytes > e->pool.bytes ? e->pool.peak_bytes : e->pool.bytes;
    l->bytes_end = e->pool.bytes;
    mx_ring_commit(&w->out);
}

/* A worker: segments, clock ticks, then the end. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mx_engine *e = w->eng;
    char name[16];
    snprintf(name, sizeof(name), "mxray-w%u", e->shard);
    prctl(PR_SET_NAME, name); /* for top and perf */
    for (;;) {
        size_t n;
        struct msg *m;
        while (!(m = mx_ring_peek(&w->in, &n)))
            mx_park_wait(&w->park, mx_ring_ready, &w->in);
        e->now = m->now;
        uint32_t flows0 = mx_flow_count(e->flows);
        uint64_t bytes0 = e->pool.bytes;
        e->peak_flows = flows0; /* the peaks of this message alone */
        e->pool.peak_bytes = bytes0;
        if (m->kind == MSG_PKT) {
            struct pkt_body *b = msg_body(m);
            const uint8_t *bytes = (const uint8_t *)(b + 1);
            b->p.l3 = mx_slice_make(bytes, b->l3_len);
            b->p.payload.ptr = bytes + b->payload_at;
            set_key(e, b->p.frame, 0, 0);
            pipe_key(e);
            flow_segment(e, &b->p, m->wirelen, &b->k, b->sp, b->dp);
        } else if (m->kind == MSG_TICK) {
            set_key(e, m->key.frame, 1, 0);
            pipe_key(e);
            expire(e, m->key.frame, m->now);
        } else {
            finish_flows(e);
            msg_signal(&w->out, MSG_END, e->now, FIN_FRAME);
            msg_done(&w->in, m);
            mx_park_wake(&w->pipe->merger);
            return NULL;
        }
        uint32_t flows1 = mx_flow_count(e->flows);
        if (flows1 != flows0 || e->peak_flows != flows0 || e->pool.bytes != bytes0 || e->pool.peak_bytes != bytes0)
            send_levels(w, flows1);
        atomic_store_explicit(&w->nflows, flows1, memory_order_relaxed);
        msg_done(&w->in, m);
        mx_park_wake(&w->pipe->merger); /* it may wait for this worker to be idle */
    }
}

static void pipe_send(struct mx_engine *e, unsigned wi, uint32_t kind, const struct mx_packet *p,
                      uint32_t wirelen, const struct mx_flow_key *k, const struct mx_proto *sp,
                      const struct mx_proto *dp, uint64_t frame)
{
    struct worker *w = &e->pipe->w[wi];
    struct msg *m;
    if (kind != MSG_PKT) {
        msg_signal(&w->in, kind, e->now, frame);
        return;
    }
    /* The IP packet goes along for nDPI, with the payload inside it;
     * a defragmented datagram has only its payload. */
    uintptr_t l3p = (uintptr_t)p->l3.ptr, pp = (uintptr_t)p->payload.ptr;
    bool in_l3 = p->l3.len && (!p->payload.len || (pp >= l3p && pp + p->payload.len <= l3p + p->l3.len));
    size_t l3 = in_l3 ? p->l3.len : 0;
    size_t data = in_l3 ? l3 : p->payload.len;
    struct pkt_body *b = msg_begin(&w->in, MSG_PKT, sizeof(*b) + data, &m);
    if (!b) {
        e->failed = true;
        return;
    }
    m->wirelen = wirelen;
    m->now = e->now;
    b->p = *p;
    b->k = *k;
    b->sp = sp;
    b->dp = dp;
    b->l3_len = (uint32_t)l3;
    b->payload_at = in_l3 && p->payload.len ? (uint32_t)(pp - l3p) : 0;
    if (data)
        memcpy(b + 1, in_l3 ? p->l3.ptr : p->payload.ptr, data);
    mx_ring_commit(&w->in);
}

/* Which worker owns flow k: the hash's high bits (the flow tables use the low ones). */
static unsigned owner(const struct pipe *pp, const struct mx_flow_key *k)
{
    return (unsigned)(((uint64_t)mx_flow_key_hash(k) * pp->n) >> 32);
}

/* The fingerprint of everything the merge may wait for: each term only grows. */
static uint64_t merge_state(struct pipe *pp)
{
    uint64_t v = atomic_load(&pp->stage) + atomic_load(&pp->out.tail);
    for (unsigned i = 0; i < pp->n; i++)
        v += atomic_load(&pp->w[i].out.tail) + atomic_load(&pp->w[i].in.head) + atomic_load(&pp->w[i].cur.seq);
    return v;
}

struct merge_wait {
    struct pipe *pp;
    uint64_t seen;
};

static bool merge_changed(void *arg)
{
    struct merge_wait *mw = arg;
    return merge_state(mw->pp) != mw->seen;
}

/* Hands a worker's record to the reporters with the run's flow number: flows
 * are numbered as their flow_start records pass, which is the order one
 * thread gives them; a flow's last record is its "flow" record. */
static void merge_deliver(struct pipe *pp, unsigned src, void *body)
{
    struct mx_event ev;
    mx_event_unpack(body, &ev);
    struct mx_idmap *ids = src ? &pp->w[src - 1].ids : NULL;
    uint64_t local = ev.flow;
    if (ids && local) {
        uint64_t g;
        if (!strcmp(ev.type, "flow_start")) {
            g = ++pp->flows;
            if (!mx_idmap_put(ids, local, (void *)(uintptr_t)g))
                pp->failed = true;
        } else {
            g = (uintptr_t)mx_idmap_get(ids, local);
        }
        ev.flow = g;
        if (ev.n_fields > 1 && ev.fields[1].kind == MX_EV_UINT && ev.fields[1].key &&
            !strcmp(ev.fields[1].key, "flow"))
            ev.fields[1].v.u = g;
    }
    mx_sink_deliver(pp->root->out, &ev);
    if (ids && local && !strcmp(ev.type, "flow"))
        mx_idmap_take(ids, local);
}

/* A worker's levels, in the run's order: the run's peaks are the other
 * workers' levels plus this one's most, as one thread would have counted. */
static void merge_levels(struct pipe *pp, struct worker *w, const struct levels *l)
{
    uint64_t of = pp->sum_flows - w->lv_flows, ob = pp->sum_bytes - w->lv_bytes;
    if (of + l->flows_max > pp->peak_flows)
        pp->peak_flows = of + l->flows_max;
    if (ob + l->bytes_max > pp->peak_bytes)
        pp->peak_bytes = ob + l->bytes_max;
    w->lv_flows = l->flows_end;
    w->lv_bytes = l->bytes_end;
    pp->sum_flows = of + l->flows_end;
    pp->sum_bytes = ob + l->bytes_end;
}

/* The merge: stream 0 is the reader's records, 1..n the workers'. Each
 * stream's keys only grow. The least head is released once every empty
 * stream's bound (what it may still produce) is above it. */
static void *merge_main(void *arg)
{
    struct pipe *pp = arg;
    unsigned ns = pp->n + 1, live = ns;
    bool ended[MX_MAX_WORKERS + 1] = { false };
    for (unsigned i = 1; i < ns; i++)
        if (!pp->w[i - 1].started) {
            ended[i] = true; /* it never ran: a failed start */
            live--;
        }
    struct msg *head[MX_MAX_WORKERS + 1];
    struct rkey lb[MX_MAX_WORKERS + 1];
    while (live) {
        struct merge_wait mw = { pp, merge_state(pp) };
        uint64_t stage = atomic_load_explicit(&pp->stage, memory_order_acquire);
        struct rkey idle = { stage / 2, 0, (uint32_t)(stage & 1) };  /* a worker with nothing to do */
        struct rkey rd = { stage / 2 + (stage & 1), 0, 0 };         /* the reader */
        int best = -1;
        for (unsigned i = 0; i < ns; i++) {
            head[i] = NULL;
            if (ended[i])
                continue;
            struct worker *w = i ? &pp->w[i - 1] : NULL;
            struct mx_ring *r = w ? &w->out : &pp->out;
            /* The bound first, then the ring: what was produced meanwhile is seen. */
            if (w)
                lb[i] = mx_ring_drained(&w->in) ? idle : key_read(&w->cur);
            else
                lb[i] = rd;
            size_t n;
            struct msg *m = mx_ring_peek(r, &n);
            if (m && m->kind == MSG_END) {
                msg_done(r, m);
                ended[i] = true;
                live--;
                continue;
            }
            head[i] = m;
            if (m && (best < 0 || key_cmp(&m->key, &head[best]->key) < 0))
                best = (int)i;
        }
        bool go = best >= 0;
        for (unsigned i = 0; go && i < ns; i++) {
            if (ended[i] || head[i])
                continue;
            int c = key_cmp(&head[best]->key, &lb[i]);
            if (c > 0 || (c == 0 && (unsigned)best > i))
                go = false;
        }
        if (go) {
            struct mx_ring *r = best ? &pp->w[best - 1].out : &pp->out;
            if (head[best]->kind == MSG_LEVELS)
                merge_levels(pp, &pp->w[best - 1], msg_body(head[best]));
            else
                merge_deliver(pp, (unsigned)best, msg_body(head[best]));
            msg_done(r, head[best]);
            continue;
        }
        if (live)
            mx_park_wait(&pp->merger, merge_changed, &mw);
    }
    return NULL;
}

static void *merge_thread(void *arg)
{
    prctl(PR_SET_NAME, "mxray-merge"); /* for top and perf */
    return merge_main(arg);
}

/* A TCP segment: counted here, then dissected by its flow's owner. */
static void tcp_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen)
{
    e->tcp_segments++;
    bool stls, dtls;
    const struct mx_proto *sp = mx_protocols_by_port(e->cfg.protocols, p->sport, &stls);
    const struct mx_proto *dp = mx_protocols_by_port(e->cfg.protocols, p->dport, &dtls);
    if (!sp && !dp && !e->cfg.classify)
        return;
    if (sp || dp)
        e->mail_segments++;
    struct mx_flow_key k;
    mx_flow_key_make(&k, &p->src, p->sport, &p->dst, p->dport, NULL);
    if (e->pipe)
        pipe_send(e, owner(e->pipe, &k), MSG_PKT, p, wirelen, &k, sp, dp, p->frame);
    else
        flow_segment(e, p, wirelen, &k, sp, dp);
}

/* Expiry runs when the capture clock enters a new second, or at a live
 * capture's tick (force): in every worker at the same frame. */
static void clock_tick(struct mx_engine *e, uint64_t frame, bool force)
{
    int64_t sec = e->now / MX_NS_PER_SEC - (e->now < 0);
    if (sec == e->tick && !force)
        return;
    e->tick = sec;
    if (!e->pipe) {
        set_key(e, frame, 1, 0);
        expire(e, frame, e->now);
        return;
    }
    for (unsigned i = 0; i < e->pipe->n; i++)
        pipe_send(e, i, MSG_TICK, NULL, 0, NULL, NULL, NULL, frame);
}

static void pipe_free(struct pipe *pp);

/* Zeroed memory for n objects whose type is aligned to cache lines (the
 * rings' indexes are _Alignas(64)): malloc only promises max_align_t. */
static void *calloc_lines(size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - 63) / size)
        return NULL;
    size_t bytes = (n * size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes ? bytes : 64);
    return p;
}

/* Starts n workers and the merge; false when out of memory or threads. */
static bool pipe_start(struct mx_engine *e, unsigned n, char *err, size_t errlen)
{
    struct pipe *pp = calloc_lines(1, sizeof(*pp));
    if (!pp)
        goto oom;
    e->pipe = pp;
    pp->root = e;
    pp->w = calloc_lines(n, sizeof(*pp->w));
    if (!pp->w || !mx_park_init(&pp->reader) || !mx_park_init(&pp->merger))
        goto oom;
    atomic_init(&pp->stage, 0);
    if (!mx_ring_init(&pp->out, RING_READER, &pp->reader, &pp->merger))
        goto oom;
    pp->sink = packing_sink(&pp->out, e, mx_sink_wants_text(e->out));
    if (!pp->sink)
        goto oom;
    struct mx_config wc = e->cfg;
    wc.workers = 0;
    wc.progress = NULL;
    wc.max_flows = (e->cfg.max_flows + n - 1) / n;
    wc.memory = e->cfg.memory / n;
    uint64_t total = e->cfg.reasm.max_total_bytes ? e->cfg.reasm.max_total_bytes : UINT64_C(256) << 20;
    wc.reasm.max_total_bytes = total / n ? total / n : 1;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &pp->w[i];
        w->pipe = pp;
        pp->n = i + 1;
        if (!mx_park_init(&w->park))
            goto oom;
        if (!mx_ring_init(&w->in, RING_IN, &pp->reader, &w->park) ||
            !mx_ring_init(&w->out, RING_OUT, &w->park, &pp->merger))
            goto oom;
        w->eng = mx_engine_new(&wc, NULL, err, errlen);
        if (!w->eng)
            return false;
        w->eng->root = e;
        w->eng->shard = i;
        w->sink = packing_sink(&w->out, w->eng, mx_sink_wants_text(e->out));
        if (!w->sink)
            goto oom;
        w->eng->sink = w->eng->out = w->sink;
    }
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&pp->w[i].th, NULL, worker_main, &pp->w[i]))
            goto threads;
        pp->w[i].started = true;
    }
    if (pthread_create(&pp->merge_th, NULL, merge_thread, pp))
        goto threads;
    pp->merge_started = true;
    e->sink = pp->sink;
    return true;
threads:
    snprintf(err, errlen, "cannot start threads");
    return false;
oom:
    snprintf(err, errlen, "out of memory");
    return false;
}

/* Ends the workers (they close their flows) and the merge, and adds the
 * workers' counters to the run's. */
static void pipe_finish(struct mx_engine *e)
{
    struct pipe *pp = e->pipe;
    pipe_stage(e, FIN_FRAME, false);
    for (unsigned i = 0; i < pp->n; i++)
        if (pp->w[i].started)
            pipe_send(e, i, MSG_END, NULL, 0, NULL, NULL, NULL, FIN_FRAME);
    msg_signal(&pp->out, MSG_END, e->now, FIN_FRAME);
    for (unsigned i = 0; i < pp->n; i++)
        if (pp->w[i].started)
            pthread_join(pp->w[i].th, NULL);
    if (pp->merge_started)
        pthread_join(pp->merge_th, NULL);
    else
        merge_main(pp); /* it failed to start: what the workers wrote is merged here */
    for (unsigned i = 0; i < pp->n; i++) {
        struct mx_engine *w = pp->w[i].eng;
        e->late_packets += w->late_packets;
        e->flows_evicted += w->flows_evicted;
        e->ndpi_flows += w->ndpi_flows;
        e->ndpi_mail_flows += w->ndpi_mail_flows;
        for (int a = 0; a < MX_AN__COUNT; a++)
            e->an.n[a] += w->an.n[a];
        e->failed |= w->failed;
    }
    e->flows_total = pp->flows;
    e->peak_flows = (uint32_t)pp->peak_flows;
    e->pool.peak_bytes = pp->peak_bytes;
    e->failed |= pp->failed;
    e->sink = e->out;
    e->pipe = NULL;
    pipe_free(pp);
}

static void pipe_free(struct pipe *pp)
{
    if (!pp)
        return;
    for (unsigned i = 0; i < pp->n; i++) {
        struct worker *w = &pp->w[i];
        mx_engine_free(w->eng);
        mx_sink_free(w->sink);
        mx_idmap_free(&w->ids);
        mx_ring_destroy(&w->in);
        mx_ring_destroy(&w->out);
        mx_park_destroy(&w->park);
    }
    free(pp->w);
    mx_sink_free(pp->sink);
    mx_ring_destroy(&pp->out);
    mx_park_destroy(&pp->reader);
    mx_park_destroy(&pp->merger);
    free(pp);
}

static void count_linktype(struct mx_engine *e, int lt)
{
    size_t i;
    for (i = 0; i < MX_ARRAY_LEN(e->skipped_lt_value) && e->skipped_linktype[i]; i++)
        if (e->skipped_lt_value[i] == lt)
            break;
    if (i == MX_ARRAY_LEN(e->skipped_lt_value))
        i--; /* more kinds than slots: pooled in the last */
    e->skipped_lt_value[i] = lt;
    e->skipped_linktype[i]++;
}

void mx_engine_packet(struct mx_engine *e, struct mx_raw_packet *raw)
{
    raw->frame = ++e->frame;
    if (e->n_files)
        e->files[e->n_files - 1].frames++;
    if (!e->frames_seen++) {
        e->first_ts = raw->ts;
        mx_sink_set_epoch(e->out, raw->ts);
    }
    if (raw->ts > e->now || e->frames_seen == 1)
        e->now = raw->ts;
    if (raw->ts < e->first_ts)
        e->first_ts = raw->ts;
    e->last_ts = raw->ts;
    e->bytes += raw->wirelen;
    set_key(e, raw->frame, 0, 0);
    pipe_stage(e, raw->frame, false);
    struct mx_packet p;
    uint64_t bits = 0;
    /* No counters: the bits say what to attribute, and to whom (below). */
    enum mx_decode_result r = mx_decode(e->dec, raw, &p, NULL, &bits);
    /* Decode anomalies: counted, warned about once, and shown as events
     * (bounded per kind). A snaplen-cut TCP segment is counted with its flow. */
    for (int a = 0; a < MX_AN__COUNT && bits; a++) {
        if (!(bits & (UINT64_C(1) << a)))
            continue;
        if (r == MX_DECODE_TCP && a == MX_AN_SNAPLEN_TRUNCATED && p.truncated)
            continue;
        e->an.n[a]++;
        warn_once(e, (enum mx_core_anomaly)a, raw->frame, NULL);
        if (e->an_events[a] < MX_DECODE_EVENTS_PER_KIND) {
            e->an_events[a]++;
            emit_anomaly(e, NULL, -1, mx_core_anomalies[a].name, mx_core_anomalies[a].desc, raw->frame,
                         raw->frame, raw->ts);
        }
    }
    switch (r) {
    case MX_DECODE_TCP:
        tcp_segment(e, &p, raw->wirelen);
        break;
    case MX_DECODE_LINKTYPE:
        count_linktype(e, raw->linktype);
        break;
    default:
        e->other_packets++;
        break;
    }
    pipe_stage(e, raw->frame, true);
    clock_tick(e, raw->frame, false);
}

struct mx_engine *mx_engine_new(const struct mx_config *cfg, struct mx_sink *sink, char *err, size_t errlen)
{
    struct mx_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    /* The memory cap: half for flows and their dissectors, a quarter for
     * reassembly, the rest for what every run has (rings, nDPI's tables,
     * IP fragments, output buffers). */
    e->flow_budget = cfg->memory ? cfg->memory / 2 : UINT64_MAX;
    if (!e->cfg.reasm.max_total_bytes && cfg->memory)
        e->cfg.reasm.max_total_bytes = cfg->memory / 4;
    e->sink = e->out = sink;
    e->root = e;
    e->tick = INT64_MIN;
    e->dec = mx_decoder_new(&cfg->defrag);
    e->flows = mx_flow_table_new(cfg->max_flows);
    /* Worker threads, unless flows must be numbered while they are dissected
     * (files named after them) or a test dissects with one dissector. */
    unsigned workers = cfg->workers > MX_MAX_WORKERS ? MX_MAX_WORKERS : cfg->workers;
    if (cfg->streams || cfg->extract_dir || cfg->dissector_override)
        workers = 0;
    if (workers && e->dec && e->flows && !pipe_start(e, workers, err, errlen)) {
        mx_engine_free(e);
        return NULL;
    }
    if (cfg->classify && !e->pipe) {
        e->cls = mx_classifier_new();
        if (!e->cls) {
            snprintf(err, errlen, "nDPI could not be initialised");
            mx_engine_free(e);
            return NULL;
        }
    }
    mx_reasm_pool_init(&e->pool, &e->cfg.reasm);
    if (!e->dec || !e->flows) {
        snprintf(err, errlen, "out of memory");
        mx_engine_free(e);
        return NULL;
    }
    e->streams = cfg->streams ? cfg->streams_ctx : NULL; /* last: a failure above leaves it to the caller */
    return e;
}

static bool engine_read(struct mx_engine *e, struct mx_input *in, double t0, double *last, uint32_t *tick);

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --progress: a look at the clock every 4096 packets, a report every 0.25 s. */
static uint32_t engine_flows(struct mx_engine *e)
{
    if (!e->pipe)
        return mx_flow_count(e->flows);
    uint32_t n = 0;
    for (unsigned i = 0; i < e->pipe->n; i++)
        n += atomic_load_explicit(&e->pipe->w[i].nflows, memory_order_relaxed);
    return n;
}

static void report_progress(struct mx_engine *e, struct mx_input *in, double t0, double *last, bool done)
{
    double now = mono_now();
    if (!done && now - *last < 0.25)
        return;
    *last = now;
    struct mx_progress p = {
        .name = in->name,
        .pos = in->ops->position ? in->ops->position(in) : 0,
        .size = in->size,
        .frames = e->frame,
        .flows = engine_flows(e),
        .elapsed = now - t0,
        .done = done,
    };
    e->cfg.progress(e->cfg.progress_ud, &p);
}

bool mx_engine_run(struct mx_engine *e, struct mx_input *in)
{
    double t0 = e->cfg.progress ? mono_now() : 0, last = t0;
    uint32_t tick = 0;
    bool ok = engine_read(e, in, t0, &last, &tick);
    if (e->cfg.progress)
        report_progress(e, in, t0, &last, true);
    return ok;
}

static bool engine_read(struct mx_engine *e, struct mx_input *in, double t0, double *last, uint32_t *tick)
{
    struct file_info *fi = NULL;
    if (e->n_files < MX_MAX_FILES) {
        fi = &e->files[e->n_files++];
        snprintf(fi->name, sizeof(fi->name), "%s", in->name);
        fi->first_frame = e->frame + 1;
        fi->linktype = -1;
        fi->status = "ok";
        atomic_store_explicit(&e->files_pub, e->n_files, memory_order_release);
    }
    for (;;) {
        struct mx_raw_packet raw;
        enum mx_input_status st = in->ops->next(in, &raw);
        if (st == MX_INPUT_PACKET) {
            if (fi && fi->linktype < 0)
                fi->linktype = raw.linktype;
            mx_engine_packet(e, &raw);
            if (e->cfg.progress && !(++*tick & 4095))
                report_progress(e, in, t0, last, false);
            continue;
        }
        if (st == MX_INPUT_TICK) {
            /* Live and quiet: idle flows still time out (wall clock). */
            if (raw.ts > e->now && e->frames_seen)
                e->now = raw.ts;
            clock_tick(e, e->frame, true);
            continue;
        }
        if (st == MX_INPUT_EOF)
            return true;
        enum mx_core_anomaly a = st == MX_INPUT_TRUNCATED ? MX_AN_FILE_TRUNCATED : MX_AN_FILE_READ_ERROR;
        e->an.n[a]++;
        warn_once(e, a, e->frame + 1, in->error);
        set_key(e, e->frame + 1, 0, 0); /* after what the last frame did */
        emit_anomaly(e, NULL, -1, mx_core_anomalies[a].name, mx_core_anomalies[a].desc, e->frame + 1,
                     e->frame + 1, e->last_ts);
        if (fi)
            fi->status = st == MX_INPUT_TRUNCATED ? "truncated" : "read_error";
        return false;
    }
}

static void emit_summary(struct mx_engine *e)
{
    struct mx_event *ev = mx_event_begin(e->sink, "summary", 0, MX_TIME_NONE);
    mx_ev_arr(ev, "files");
    for (size_t i = 0; i < e->n_files; i++) {
        mx_ev_obj(ev, NULL);
        mx_ev_str(ev, "path", e->files[i].name);
        mx_ev_uint(ev, "first_frame", e->files[i].first_frame);
        mx_ev_uint(ev, "frames", e->files[i].frames);
        mx_ev_int(ev, "linktype", e->files[i].linktype);
        mx_ev_str(ev, "status", e->files[i].status);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    if (e->frames_seen) {
        mx_ev_time(ev, "start", e->first_ts);
        mx_ev_time(ev, "end", e->now);
    }
    mx_ev_uint(ev, "frames", e->frame);
    mx_ev_uint(ev, "bytes", e->bytes);
    mx_ev_uint(ev, "tcp_segments", e->tcp_segments);
    mx_ev_uint(ev, "mail_segments", e->mail_segments);
    mx_ev_uint(ev, "other_packets", e->other_packets);
    mx_ev_uint(ev, "late_packets", e->late_packets);
    mx_ev_uint(ev, "flows", e->flows_total);
    mx_ev_uint(ev, "flows_evicted", e->flows_evicted);
    if (e->cfg.classify) {
        mx_ev_uint(ev, "ndpi_flows", e->ndpi_flows);
        mx_ev_uint(ev, "ndpi_mail_flows", e->ndpi_mail_flows);
    }
    mx_ev_uint(ev, "peak_flows", e->peak_flows);
    mx_ev_uint(ev, "peak_reassembly_bytes", e->pool.peak_bytes);
    mx_ev_arr(ev, "skipped_linktypes");
    for (size_t i = 0; i < MX_ARRAY_LEN(e->skipped_lt_value) && e->skipped_linktype[i]; i++) {
        mx_ev_obj(ev, NULL);
        mx_ev_int(ev, "linktype", e->skipped_lt_value[i]);
        mx_ev_uint(ev, "packets", e->skipped_linktype[i]);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    mx_ev_obj(ev, "anomalies");
    for (int a = 0; a < MX_AN__COUNT; a++)
        if (e->an.n[a])
            mx_ev_uint(ev, mx_core_anomalies[a].name, e->an.n[a]);
    mx_ev_end(ev);
    if (e->have_capture_stats) {
        mx_ev_obj(ev, "capture");
        mx_ev_uint(ev, "received", e->cap_received);
        mx_ev_uint(ev, "dropped", e->cap_dropped);
        mx_ev_uint(ev, "ifdropped", e->cap_ifdropped);
        mx_ev_end(ev);
    }
    mx_ev_int(ev, "exit_status", mx_engine_exit_status(e));
    mx_ev_text(ev, "summary: %" PRIu64 " frames, %" PRIu64 " mail flows, %" PRIu64 " TCP gaps%s", e->frame,
               e->flows_total, e->an.n[MX_AN_TCP_GAP],
               mx_engine_exit_status(e) == 3 ? "; the input was damaged (see warnings)" : "");
    mx_event_emit(e->sink, ev);
}

/* Closes every flow, in the order they were last active. */
static void finish_flows(struct mx_engine *e)
{
    struct mx_flow *f;
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_ACTIVE))) {
        set_key(e, FIN_FRAME, 2, f->touch_frame);
        pipe_key(e);
        flow_drop(e, f);
    }
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED)))
        flow_drop(e, f);
}

void mx_engine_finish(struct mx_engine *e)
{
    if (e->pipe)
        pipe_finish(e);
    else
        finish_flows(e);
    mx_sink_end(e->sink); /* reporters that derive records (findings) emit them now */
    emit_summary(e);
    if (e->streams) {
        if (!e->cfg.streams->finish(e->streams))
            e->failed = true;
        e->streams = NULL;
    }
}

void mx_engine_capture_stats(struct mx_engine *e, uint64_t received, uint64_t dropped, uint64_t ifdropped)
{
    e->have_capture_stats = true;
    e->cap_received = received;
    e->cap_dropped = dropped;
    e->cap_ifdropped = ifdropped;
}

int mx_engine_exit_status(const struct mx_engine *e)
{
    if (e->failed)
        return 1;
    for (int a = 0; a < MX_AN__COUNT; a++)
        if (e->an.n[a] && is_damage((enum mx_core_anomaly)a))
            return 3;
    return 0;
}

void mx_engine_free(struct mx_engine *e)
{
    if (!e)
        return;
    if (e->pipe)
        pipe_finish(e); /* not finished: the threads still end */
    if (e->flows) {
        struct mx_flow *f;
        for (int s = 0; s < 2; s++) {
            while ((f = mx_flow_oldest(e->flows, (enum mx_flow_state)s))) {
                mx_reasm_release(&f->reasm, &e->pool);
                flow_ext_free(e, f->user);
                mx_flow_remove(e->flows, f);
            }
        }
        mx_flow_table_free(e->flows);
    }
    if (e->streams)
        e->cfg.streams->finish(e->streams);
    mx_decoder_free(e->dec);
    mx_classifier_free(e->cls);
    mx_reasm_pool_destroy(&e->pool);
    free(e);
}
