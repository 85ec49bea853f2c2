/* engine.c - the pipeline: decode, flows, TCP reassembly, dissectors, events and the summary. */
#include "engine.h"

#include "classify.h"
#include "dissector.h"
#include "flow.h"
#include "registry.h"
#include "streams.h"

#include <inttypes.h>
#include <stdio.h>
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
    struct mx_stream *stream;
    struct mx_classify_flow cls;
    struct replay *replay;  /* while a flow off the mail ports awaits its classification */
    bool ignored;           /* classified as not mail: its packets are only counted */
    bool by_ndpi;           /* recognised as mail by nDPI, not by its port */
};

struct file_info {
    char name[256];
    mx_frame_t first_frame;
    uint64_t frames;
    int linktype;
    const char *status;
};

struct mx_engine {
    struct mx_config cfg;
    struct mx_sink *sink;
    struct mx_decoder *dec;
    struct mx_flow_table *flows;
    struct mx_reasm_pool pool;
    struct mx_streams *streams;
    struct mx_classifier *cls;   /* NULL with --no-ndpi */
    mx_frame_t frame;
    uint64_t frames_seen;
    mx_time_t now, first_ts, last_ts;
    /* Counters for the summary. */
    uint64_t bytes, tcp_segments, mail_segments, other_packets, late_packets, flows_total, flows_evicted;
    uint64_t ndpi_flows, ndpi_mail_flows;
    uint32_t peak_flows;
    struct mx_anomaly_counts an;
    uint64_t an_events[MX_AN__COUNT];
    uint64_t skipped_linktype[8];
    int skipped_lt_value[8];
    bool warned[MX_AN__COUNT];
    bool failed;           /* mxray's own failure (memory, output) */
    bool have_capture_stats;
    uint64_t cap_received, cap_dropped, cap_ifdropped;
    struct file_info files[MX_MAX_FILES];
    size_t n_files;
};

void mx_config_defaults(struct mx_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_flows = 262144;
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

static const char *cur_file(const struct mx_engine *e)
{
    return e->n_files ? e->files[e->n_files - 1].name : "";
}

static void warn_once(struct mx_engine *e, enum mx_core_anomaly a, mx_frame_t frame, const char *extra)
{
    if (!e->cfg.warnings || e->warned[a] || !is_damage(a))
        return;
    e->warned[a] = true;
    fprintf(stderr, "mxray: warning: %s: frame %" PRIu64 ": %s%s%s (further ones are counted in the summary)\n",
            cur_file(e), frame, mx_core_anomalies[a].desc, extra ? ": " : "", extra ? extra : "");
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
    if (f) {
        struct flow_ext *x = f->user;
        if (x && ++x->an[a] > MX_FLOW_EVENTS_PER_KIND)
            return;
    } else if (e->an_events[a] >= MX_DECODE_EVENTS_PER_KIND) {
        return;
    }
    e->an_events[a]++;
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
        mx_stream_data(ctx->eng->streams, x->stream, d, b);
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
        mx_stream_gap(e->streams, x->stream, d, off, len);
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

static void flow_ext_free(struct mx_engine *e, struct flow_ext *x)
{
    if (!x)
        return;
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
    if (x->proto)
        emit_flow_record(e, f);
    if (x->stream) {
        mx_stream_close(e->streams, x->stream);
        x->stream = NULL;
    }
    mx_reasm_release(&f->reasm, &e->pool);
    flow_ext_free(e, x);
    f->user = NULL;
    mx_flow_set_closed(e->flows, f);
}

static void flow_drop(struct mx_engine *e, struct mx_flow *f)
{
    flow_close(e, f, "capture_end");
    mx_flow_remove(e->flows, f);
}

/* Closes flows idle past their timeout and forgets closed ones past the
 * linger. Only the least recently active flow is looked at: a quiet flow
 * (no payload) behind a talkative one waits its turn, which the flow cap bounds. */
static void expire(struct mx_engine *e, mx_time_t now)
{
    struct mx_flow *f;
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED)) && f->last_ts + e->cfg.closed_linger < now)
        flow_drop(e, f);
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_ACTIVE))) {
        bool quiet = !f->reasm.h[0].delivered && !f->reasm.h[1].delivered;
        mx_time_t limit = quiet ? e->cfg.quiet_timeout : e->cfg.idle_timeout;
        if (f->last_ts + limit >= now)
            break;
        flow_close(e, f, "timeout");
        flow_drop(e, f);
    }
}

/* Makes room for one more flow: a closed entry first, else the oldest active flow. */
static bool evict_one(struct mx_engine *e, mx_frame_t frame, mx_time_t ts)
{
    struct mx_flow *f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED);
    if (f) {
        flow_drop(e, f);
        return true;
    }
    f = mx_flow_oldest(e->flows, MX_FLOW_ACTIVE);
    if (!f)
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
        x->stream = mx_streams_open(e->streams, f->id, proto->name, &f->addr[0], f->port[0], &f->addr[1],
                                    f->port[1], f->first_frame);
        if (!x->stream)
            e->failed = true;
    }
    emit_flow_start(e, f);
}

static struct mx_flow *flow_create(struct mx_engine *e, const struct mx_flow_key *k, const struct mx_packet *p,
                                   const struct mx_proto *sp, const struct mx_proto *dp)
{
    if (mx_flow_count(e->flows) >= mx_flow_capacity(e->flows) && !evict_one(e, p->frame, p->ts))
        return NULL;
    struct flow_ext *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    struct mx_flow *f = mx_flow_add(e->flows, k);
    if (!f) {
        free(x);
        return NULL;
    }
    f->user = x;
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
    const struct mx_proto *proto = mx_registry_by_port(f->port[MX_DIR_S2C], &tls);
    if (!proto)
        proto = mx_registry_by_port(f->port[MX_DIR_C2S], &tls);
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
    return f;
}

/* nDPI settled an unclassified flow: mail gets its dissector, fed what was
 * kept; anything else is only counted from now on. */
static void classified(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    bool tls = false;
    const struct mx_proto *pr = mx_registry_by_ndpi(x->cls.app, &tls);
    if (!pr)
        pr = mx_registry_by_ndpi(x->cls.master, &tls);
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
}

static void tcp_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen)
{
    e->tcp_segments++;
    bool stls, dtls;
    const struct mx_proto *sp = mx_registry_by_port(p->sport, &stls);
    const struct mx_proto *dp = mx_registry_by_port(p->dport, &dtls);
    if (!sp && !dp && !e->cls)
        return;
    if (sp || dp)
        e->mail_segments++;
    struct mx_flow_key k;
    mx_flow_key_make(&k, &p->src, p->sport, &p->dst, p->dport, NULL);
    struct mx_flow *f = mx_flow_find(e->flows, &k);
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
            e->late_packets++; /* a straggler of a finished connection */
            if (p->ts > f->last_ts)
                f->last_ts = p->ts;
            return;
        }
        flow_drop(e, f); /* the 4-tuple is reused by a new connection */
        f = NULL;
    }
    if (!f) {
        if (p->flags & MX_TCP_RST)
            return; /* a lone RST opens nothing */
        f = flow_create(e, &k, p, sp, dp);
        if (!f) {
            e->failed = true;
            return;
        }
    }
    struct flow_ext *x = f->user;
    if (x->ignored) {
        /* Not mail: forget it when it ends, else let it time out. */
        f->last_ts = p->ts > f->last_ts ? p->ts : f->last_ts;
        mx_flow_touch(e->flows, f);
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
    mx_flow_touch(e->flows, f);
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
    if (p->flags & MX_TCP_RST)
        flow_close(e, f, "rst");
    else if (f->reasm.h[0].fin_done && f->reasm.h[1].fin_done)
        flow_close(e, f, "fin");
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
        mx_sink_set_epoch(e->sink, raw->ts);
    }
    if (raw->ts > e->now || e->frames_seen == 1)
        e->now = raw->ts;
    if (raw->ts < e->first_ts)
        e->first_ts = raw->ts;
    e->last_ts = raw->ts;
    e->bytes += raw->wirelen;
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
    expire(e, e->now);
}

struct mx_engine *mx_engine_new(const struct mx_config *cfg, struct mx_sink *sink, char *err, size_t errlen)
{
    struct mx_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    e->sink = sink;
    e->dec = mx_decoder_new(&cfg->defrag);
    e->flows = mx_flow_table_new(cfg->max_flows);
    if (cfg->classify) {
        e->cls = mx_classifier_new();
        if (!e->cls) {
            snprintf(err, errlen, "nDPI could not be initialised");
            mx_engine_free(e);
            return NULL;
        }
    }
    mx_reasm_pool_init(&e->pool, &cfg->reasm);
    if (!e->dec || !e->flows) {
        snprintf(err, errlen, "out of memory");
        mx_engine_free(e);
        return NULL;
    }
    if (cfg->streams_dir) {
        e->streams = mx_streams_new(cfg->streams_dir, err, errlen);
        if (!e->streams) {
            mx_engine_free(e);
            return NULL;
        }
    }
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
        .flows = mx_flow_count(e->flows),
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
            expire(e, e->now);
            continue;
        }
        if (st == MX_INPUT_EOF)
            return true;
        enum mx_core_anomaly a = st == MX_INPUT_TRUNCATED ? MX_AN_FILE_TRUNCATED : MX_AN_FILE_READ_ERROR;
        e->an.n[a]++;
        warn_once(e, a, e->frame + 1, in->error);
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
    if (e->cls) {
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

void mx_engine_finish(struct mx_engine *e)
{
    struct mx_flow *f;
    /* Close active flows in the order they were last active. */
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_ACTIVE)))
        flow_drop(e, f);
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED)))
        flow_drop(e, f);
    mx_sink_end(e->sink); /* reporters that derive records (findings) emit them now */
    emit_summary(e);
    if (e->streams) {
        if (!mx_streams_finish(e->streams))
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
        mx_streams_finish(e->streams);
    mx_decoder_free(e->dec);
    mx_classifier_free(e->cls);
    mx_reasm_pool_destroy(&e->pool);
    free(e);
}
