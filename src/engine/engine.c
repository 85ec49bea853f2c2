/* engine.c - the run: frames numbered and decoded, flows created, classified, timed out and
 * evicted under the memory cap, their records, and the summary. Dissecting is host.c's,
 * worker threads are pipeline.c's. */
#include "engine/internal.h"
#include "core/digest.h"
#include "event/text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MX_DECODE_EVENTS_PER_KIND 10 /* run-wide anomaly events per kind; the rest are counted */
#define MX_CLASSIFY_PKTS 24          /* packets of a flow nDPI may look at */

void mx_config_defaults(struct mx_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_flows = 262144;
    c->memory = UINT64_C(256) << 20;
    c->idle_timeout = 3600 * MX_NS_PER_SEC;
    c->quiet_timeout = 120 * MX_NS_PER_SEC;
    c->closed_linger = 60 * MX_NS_PER_SEC;
    c->dissector_buffer = 1u << 20;
    /* --extract: more than the message size limit of any common server
     * (Postfix 10 MB, Exchange Online 150 MB at most, Gmail 25 MB) yet a
     * cap on what one deflate bomb can write; and a bound on the disk a
     * hostile capture can fill. */
    c->since = c->until = MX_TIME_NONE;
    c->extract_max = UINT64_C(100) << 20;
    c->extract_total = UINT64_C(4) << 30;
    c->dissect = true;
    c->classify = true;
    c->warnings = true;
    c->hashes = MX_HASH_DEFAULT;
}

void mx_counters_add(struct mx_counters *a, const struct mx_counters *b)
{
    a->bytes += b->bytes;
    a->tcp_segments += b->tcp_segments;
    a->mail_segments += b->mail_segments;
    a->other_packets += b->other_packets;
    a->late_packets += b->late_packets;
    a->flows_total += b->flows_total;
    a->flows_evicted += b->flows_evicted;
    a->ndpi_flows += b->ndpi_flows;
    a->ndpi_mail_flows += b->ndpi_mail_flows;
    for (int i = 0; i < MX_AN__COUNT; i++)
        a->an.n[i] += b->an.n[i];
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
    case MX_AN_TIMESTAMP_OUT_OF_RANGE:
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
    size_t n = atomic_load_explicit(&r->files.pub, memory_order_acquire);
    const char *name = "";
    for (size_t i = 0; i < n && r->files.f[i].first_frame <= frame; i++)
        name = r->files.f[i].name;
    return name;
}

static void warn_once(struct mx_engine *e, enum mx_core_anomaly a, mx_frame_t frame, const char *extra)
{
    if (!e->cfg.warnings || !is_damage(a) || atomic_exchange(&e->root->warned[a], true))
        return;
    /* The file's name and libpcap's message (which may repeat it) escaped:
     * a name's bytes must not drive the terminal either. */
    char file[4 * sizeof(((struct mx_file *)0)->name)], more[2048];
    mx_text_escape(file_of(e, frame), file, sizeof(file));
    mx_text_escape(extra ? extra : "", more, sizeof(more));
    fprintf(stderr, "mxray: warning: %s%sframe %" PRIu64 ": %s%s%s (further ones are counted in the summary)\n", file,
            *file ? ": " : "", frame, mx_core_anomalies[a].desc, extra ? ": " : "", more);
}

struct mx_event *mx_engine_begin(struct mx_engine *e, struct mx_flow *f, const char *type, mx_time_t ts)
{
    const struct flow_ext *x = f->user;
    if (!f->id || !x)
        return mx_event_begin(e->sink, type, f->id, ts);
    struct mx_ev_flow fl = { x->community_id, x->client, x->server, f->port[MX_DIR_C2S], f->port[MX_DIR_S2C] };
    return mx_event_begin_flow(e->sink, type, f->id, &fl, ts);
}

/* An anomaly event, attributed to a flow when there is one. */
void mx_engine_emit_anomaly(struct mx_engine *e, struct mx_flow *f, int dir, const char *name, const char *desc,
                            mx_frame_t first, mx_frame_t last, mx_time_t ts)
{
    struct mx_event *ev = f ? mx_engine_begin(e, f, "anomaly", ts) : mx_event_begin(e->sink, "anomaly", 0, ts);
    if (dir >= 0)
        mx_ev_dir(ev, (enum mx_dir)dir);
    mx_ev_str(ev, "name", name);
    mx_ev_frames(ev, first, last);
    mx_ev_str(ev, "desc", desc);
    mx_ev_text(ev, "anomaly %s: %s (frame %" PRIu64 ")", name, desc, first);
    mx_ev_tone(ev, MX_TONE_WARN);
    mx_event_emit(e->sink, ev);
}

/* Records of kind a a flow gets; every one is counted. An offloaded
 * super-frame (decode.h, len_from_frame) is recorded once: a capture taken on
 * a sending host holds them all along, so they are a note, not damage. */
static uint32_t flow_events_cap(enum mx_core_anomaly a)
{
    return a == MX_AN_IP_LENGTH_FROM_FRAME ? 1 : MX_FLOW_EVENTS_PER_KIND;
}

void mx_engine_core_anomaly(struct mx_engine *e, struct mx_flow *f, int dir, enum mx_core_anomaly a, mx_frame_t frame,
                            mx_time_t ts)
{
    e->c.an.n[a]++;
    warn_once(e, a, frame, NULL);
    /* A flow's events are capped per flow; only flowless ones count against
     * the run-wide cap, which the reading thread alone keeps: a worker's
     * count would depend on how flows were shared out. */
    if (f) {
        struct flow_ext *x = f->user;
        if (x && ++x->an[a] > flow_events_cap(a))
            return;
    } else if (e->an_events[a]++ >= MX_DECODE_EVENTS_PER_KIND) {
        return;
    }
    mx_engine_emit_anomaly(e, f, dir, mx_core_anomalies[a].name, mx_core_anomalies[a].desc, frame, frame, ts);
}

static void on_data(void *ud, enum mx_dir d, uint64_t off, struct mx_slice b, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct flow_ext *x = ctx->flow->user;
    if (!x->proto) {
        mx_host_replay_keep(ctx, d, off, b, false, frame, ts);
        if (x->carrier)
            mx_host_data(ctx, d, off, b, frame, ts); /* the tunnel's handshake */
        return;
    }
    if (x->stream)
        ctx->eng->cfg.streams->data(ctx->eng->streams, x->stream, d, b);
    mx_host_data(ctx, d, off, b, frame, ts);
}

static void on_gap(void *ud, enum mx_dir d, uint64_t off, uint64_t len, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct mx_engine *e = ctx->eng;
    struct mx_flow *f = ctx->flow;
    struct flow_ext *x = f->user;
    if (!x->proto) {
        mx_host_replay_keep(ctx, d, off, mx_slice_make(NULL, len), true, frame, ts);
        if (x->carrier)
            mx_host_gap(ctx, d, off, len);
        return;
    }
    x->an[MX_AN_TCP_GAP]++;
    e->c.an.n[MX_AN_TCP_GAP]++;
    if (!frame && !ts)
        ts = f->last_ts; /* settled by the flow's end, with nothing held after it */
    struct mx_event *ev = mx_engine_begin(e, f, "gap", ts);
    mx_ev_dir(ev, d);
    mx_ev_uint(ev, "offset", off);
    mx_ev_uint(ev, "len", len);
    mx_ev_frames(ev, frame, frame);
    mx_ev_text(ev, "gap: %" PRIu64 " bytes never captured at offset %" PRIu64, len, off);
    mx_ev_tone(ev, MX_TONE_WARN);
    mx_event_emit(e->sink, ev);
    if (x->stream)
        e->cfg.streams->gap(e->streams, x->stream, d, off, len);
    mx_host_gap(ctx, d, off, len);
}

static void on_fin(void *ud, enum mx_dir d, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    (void)frame;
    (void)ts;
    if (ctx->ds[mx_dir_other(d)].ended && !ctx->info.close)
        ctx->info.close = MX_CLOSE_FIN; /* both directions ended with FIN: the dissector ends with this call */
    mx_host_end(ctx, d);
}

static void on_anomaly(void *ud, enum mx_dir d, enum mx_core_anomaly an, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    if (!((struct flow_ext *)ctx->flow->user)->proto)
        return; /* not (yet) a mail flow */
    mx_engine_core_anomaly(ctx->eng, ctx->flow, (int)d, an, frame, ts);
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
    const char *c = x->client, *s = x->server;
    struct mx_event *ev = mx_engine_begin(e, f, "flow_start", f->first_ts);
    mx_ev_str(ev, "proto", x->proto->name);
    mx_ev_bool(ev, "handshake", x->handshake);
    /* A flow nDPI found: mxray's own reading (TLS from the first byte or
     * not, from the bytes) and, beside it, nDPI's label, which may disagree. */
    char label[64] = "";
    if (x->by_ndpi) {
        mx_ev_bool(ev, "found_by_ndpi", true);
        mx_ev_bool(ev, "tls_port", x->tls_port);
        if (e->cls)
            mx_classify_name(e->cls, &x->cls, label, sizeof(label));
        if (label[0]) {
            mx_ev_obj(ev, "ndpi");
            mx_ev_str(ev, "protocol", label);
            mx_ev_end(ev);
        }
    }
    if (x->nencap) {
        mx_ev_arr(ev, "encap");
        for (size_t i = 0; i < x->nencap; i++)
            mx_ev_str(ev, NULL, mx_encap_name(x->encap[i]));
        mx_ev_end(ev);
    }
    if (x->tunnel)
        mx_ev_str(ev, "tunnel", x->tunnel);
    mx_ev_frames(ev, f->first_frame, f->first_frame);
    char via[96] = ""; /* the tunnels, outermost first: ", carried in gre/vxlan" */
    for (size_t i = 0, o = 0; i < x->nencap && o < sizeof(via); i++)
        o += (size_t)snprintf(via + o, sizeof(via) - o, "%s%s", i ? "/" : ", carried in ", mx_encap_name(x->encap[i]));
    bool v6 = f->addr[0].family == 6;
    char found[128] = ""; /* ", found by nDPI (its label: IMAPS), read as cleartext" */
    if (x->by_ndpi)
        snprintf(found, sizeof(found), ", found by nDPI%s%s%s, read as %s", label[0] ? " (its label: " : "", label,
                 label[0] ? ")" : "", x->tls_port ? "TLS" : "cleartext");
    mx_ev_text(ev, "%s %s%s%s:%u -> %s%s%s:%u %s%s%s%s%s", x->proto->name, v6 ? "[" : "", c, v6 ? "]" : "", f->port[0],
               v6 ? "[" : "", s, v6 ? "]" : "", f->port[1], x->handshake ? "connection opened" : "picked up midstream",
               via, x->tunnel ? ", tunnelled through " : "", x->tunnel ? x->tunnel : "", found);
    mx_event_emit(e->sink, ev);
}

/* ms from ns, for the records. */
static double ms_of(mx_time_t ns)
{
    return (double)ns / 1e6;
}

/* A direction's share of the network's part (flow/tcpa.h): the counts of
 * tshark's tcp.analysis fields, and the longest stall with its frames. */
static void emit_net_half(struct mx_event *ev, const struct mx_tcpa_half *n)
{
    mx_ev_uint(ev, "retransmissions", n->retransmissions);
    mx_ev_uint(ev, "fast_retransmissions", n->fast_retransmissions);
    mx_ev_uint(ev, "spurious_retransmissions", n->spurious_retransmissions);
    mx_ev_uint(ev, "out_of_order", n->out_of_order);
    mx_ev_uint(ev, "duplicate_acks", n->duplicate_acks);
    mx_ev_uint(ev, "zero_windows", n->zero_windows);
    if (n->stall) {
        mx_ev_double(ev, "stall_ms", ms_of(n->stall));
        mx_ev_arr(ev, "stall_frames");
        mx_ev_uint(ev, NULL, n->stall_from);
        mx_ev_uint(ev, NULL, n->stall_to);
        mx_ev_end(ev);
    }
}

/* The handshake's round trip (RFC 9293 §3.5) as the capture point saw it:
 * SYN to SYN-ACK is the server's side of it, SYN-ACK to ACK the client's. */
static void emit_rtt(struct mx_event *ev, const struct mx_tcpa *n)
{
    if (!mx_tcpa_has_rtt(n))
        return;
    mx_ev_obj(ev, "rtt");
    mx_ev_double(ev, "handshake_ms", ms_of(n->ack_ts - n->syn_ts));
    mx_ev_double(ev, "server_ms", ms_of(n->synack_ts - n->syn_ts));
    mx_ev_double(ev, "client_ms", ms_of(n->ack_ts - n->synack_ts));
    mx_ev_arr(ev, "frames");
    mx_ev_uint(ev, NULL, n->syn_frame);
    mx_ev_uint(ev, NULL, n->synack_frame);
    mx_ev_uint(ev, NULL, n->ack_frame);
    mx_ev_end(ev);
    mx_ev_end(ev);
}

/* The flow text's note on the network, or "": "; network: 3 retransmissions,
 * 2 duplicate ACKs, longest stall 1204.1 ms (frames 30-41)". */
static const char *net_note(const struct mx_tcpa *n, char *buf, size_t cap)
{
    const struct mx_tcpa_half *c = &n->h[0], *s = &n->h[1];
    uint64_t rx = c->retransmissions + s->retransmissions, da = c->duplicate_acks + s->duplicate_acks;
    uint64_t zw = c->zero_windows + s->zero_windows, oo = c->out_of_order + s->out_of_order;
    const struct mx_tcpa_half *st = c->stall >= s->stall ? c : s;
    size_t o = 0;
    buf[0] = '\0';
    if (!rx && !da && !zw && !oo && st->stall < MX_TCPA_STALL_NOTE)
        return buf;
    o += (size_t)snprintf(buf + o, cap - o, "; network:");
    if (rx && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " %" PRIu64 " retransmission%s,", rx, rx == 1 ? "" : "s");
    if (oo && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " %" PRIu64 " out of order,", oo);
    if (da && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " %" PRIu64 " duplicate ACK%s,", da, da == 1 ? "" : "s");
    if (zw && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " %" PRIu64 " zero window%s,", zw, zw == 1 ? "" : "s");
    if (st->stall && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " longest stall %.1f ms (frames %" PRIu64 "-%" PRIu64 "),",
                              ms_of(st->stall), st->stall_from, st->stall_to);
    if (o > 0 && o <= cap && buf[o - 1] == ',')
        buf[o - 1] = '\0';
    return buf;
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
    emit_net_half(ev, &x->net.h[d]);
    mx_ev_end(ev);
}

static void emit_flow_record(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    struct mx_event *ev = mx_engine_begin(e, f, "flow", f->last_ts);
    mx_ev_str(ev, "proto", x->proto->name);
    mx_ev_bool(ev, "tls_port", x->tls_port);
    mx_ev_time(ev, "start", f->first_ts);
    mx_ev_time(ev, "end", f->last_ts);
    mx_ev_double(ev, "duration", mx_time_secs(f->first_ts, f->last_ts));
    mx_ev_frames(ev, f->first_frame, f->last_frame);
    mx_ev_bool(ev, "handshake", x->handshake);
    emit_rtt(ev, &x->net);
    emit_half(ev, "c2s", f, MX_DIR_C2S);
    emit_half(ev, "s2c", f, MX_DIR_S2C);
    mx_ev_obj(ev, "anomalies");
    for (int a = 0; a < MX_AN__COUNT; a++)
        if (x->an[a])
            mx_ev_uint(ev, mx_core_anomalies[a].name, x->an[a]);
    mx_host_describe_anomalies(&x->ctx, ev);
    mx_ev_end(ev);
    if (e->cls)
        mx_classify_describe(e->cls, &x->cls, ev);
    if (x->by_ndpi)
        mx_ev_bool(ev, "found_by_ndpi", true);
    if (x->tunnel)
        mx_ev_str(ev, "tunnel", x->tunnel);
    mx_ev_str(ev, "close", mx_close_name(x->close_reason));
    char net[192];
    mx_ev_text(ev,
               "closed (%s): client %" PRIu64 " packets, %" PRIu64 " payload bytes; server %" PRIu64
               " packets, %" PRIu64 " payload bytes%s%s",
               mx_close_name(x->close_reason), x->pkts[0], f->reasm.h[0].delivered, x->pkts[1], f->reasm.h[1].delivered,
               (f->reasm.h[0].gaps || f->reasm.h[1].gaps) ? "; with gaps" : "", net_note(&x->net, net, sizeof(net)));
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
    return n + mx_host_bytes(&x->ctx);
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
    mx_host_release(&x->ctx);
    free(x);
}

static void classified(struct mx_engine *e, struct mx_flow *f);

/* Ends a flow: delivers what is held, ends the dissector, reports the flow,
 * then keeps it as a closed entry: only its key and times, to count late
 * packets; the dissector's state and the reassembly buffers are freed now. */
static void flow_close(struct mx_engine *e, struct mx_flow *f, enum mx_close reason)
{
    if (f->state == MX_FLOW_CLOSED)
        return;
    struct flow_ext *x = f->user;
    x->close_reason = reason;
    x->ctx.info.close = reason;
    if (e->cls && !x->cls.done) {
        mx_classify_finish(e->cls, &x->cls);
        if (!x->proto && !x->ignored)
            classified(e, f);
    }
    mx_reasm_finish(&f->reasm, &e->pool, &reasm_ops, &x->ctx);
    mx_host_end(&x->ctx, MX_DIR_C2S);
    mx_host_end(&x->ctx, MX_DIR_S2C);
    /* RFC 9293 §3.5: a SYN is answered by SYN-ACK or RST; nothing at all
     * came back (a dead server, a filter, a SYN flood, or a blind capture). */
    if (x->proto && x->handshake && !x->pkts[MX_DIR_S2C])
        mx_engine_core_anomaly(e, f, MX_DIR_C2S, MX_AN_SYN_UNANSWERED, f->first_frame, f->first_ts);
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
    flow_close(e, f, MX_CLOSE_CAPTURE_END);
    mx_pipeline_flow(e, &f->key, -1);
    mx_flow_remove(e->flows, f);
}

void mx_engine_set_key(struct mx_engine *e, uint64_t frame, uint32_t cls, uint64_t k2)
{
    e->key.frame = frame;
    e->key.cls = cls;
    e->key.k2 = k2;
}

/* Closes flows idle past their timeout, in the order they were last
 * touched, and forgets closed ones past the linger. Each list is in touch
 * order, and so in the order of the capture clock then, so only heads are
 * looked at. It runs when the capture clock enters a new second: each flow's
 * fate depends on that clock and on its own packets alone, so worker threads
 * that each see some flows close the same flows at the same frames. */
void mx_engine_expire(struct mx_engine *e, mx_frame_t frame, mx_time_t now)
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
        mx_engine_set_key(e, frame, 1, f->touch_frame);
        mx_pipeline_key(e);
        flow_close(e, f, MX_CLOSE_TIMEOUT);
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
    mx_engine_core_anomaly(e, f, -1, MX_AN_FLOW_EVICTED, frame, ts);
    e->c.flows_evicted++;
    flow_close(e, f, MX_CLOSE_EVICTED);
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
    f->id = ++e->c.flows_total; /* mail flows are numbered 1, 2, ... */
    x->ctx.info.id = f->id;
    mx_community_id(&f->addr[MX_DIR_C2S], f->port[MX_DIR_C2S], &f->addr[MX_DIR_S2C], f->port[MX_DIR_S2C],
                    x->community_id);
    mx_addr_str(&f->addr[MX_DIR_C2S], x->client, sizeof(x->client));
    mx_addr_str(&f->addr[MX_DIR_S2C], x->server, sizeof(x->server));
    x->ctx.info.handshake = x->handshake;
    x->ctx.info.tls_port = tls;
    /* TLS from the first byte: the protocol's TLS dissector (RFC 8314 §3.3). */
    const struct mx_dissector *dis = tls ? proto->tls_dissector : proto->dissector;
    if (x->carrier)
        x->ctx.inner = e->cfg.dissect ? dis : NULL; /* after the tunnel's handshake (mx_ctx_hand_over) */
    else if (e->cfg.dissect && dis)
        x->ctx.dis = dis;                  /* its state is made with the first byte: SYN-only flows cost nothing */
    x->ctx.tls.dis = proto->tls_dissector; /* for STARTTLS */
    x->ctx.tls.mail = tls && e->cfg.dissect ? proto->dissector : NULL; /* what TLS carries (--tls-keylog) */
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
    mx_pipeline_flow(e, k, 1);
    f->user = x;
    f->id = 0; /* numbered when it turns out to be mail */
    x->ctx.eng = e;
    x->ctx.flow = f;
    mx_tcpa_init(&x->net);
    mx_host_init(&x->ctx);
    x->ctx.info.show_secrets = e->cfg.show_secrets;
    x->ctx.info.explain = e->cfg.explain;
    x->ctx.info.hashes = e->cfg.hashes;
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
    memcpy(x->encap, p->encap, sizeof(x->encap));
    x->nencap = p->nencap;
    f->first_ts = f->last_ts = p->ts;
    f->first_frame = p->frame;
    if (mx_flow_count(e->flows) > e->peak_flows)
        e->peak_flows = mx_flow_count(e->flows);
    if (proto) {
        become_mail(e, f, proto, tls);
    } else {
        /* Off the mail ports: nDPI decides; meanwhile what it says is kept.
         * On a carrier's port, the carrier reads the tunnel's handshake too. */
        if (!mx_host_replay_start(&x->ctx))
            x->ignored = true;
        if (e->cls)
            e->c.ndpi_flows++;
        if (e->cfg.dissect && !x->ignored)
            x->carrier = mx_protocols_carrier_by_port(e->cfg.protocols, f->port[MX_DIR_S2C]);
        if (x->carrier)
            x->ctx.dis = x->carrier->dissector;
        else if (!e->cls)
            x->ignored = true;
    }
    recharge(e, x);
    return f;
}

/* Writes what a carrier's flow delivered before it was known to be mail to
 * its --streams files. */
static void stream_kept(void *ud, enum mx_dir d, uint64_t off, struct mx_slice b, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct flow_ext *x = ctx->flow->user;
    (void)off;
    (void)frame;
    (void)ts;
    if (x->stream)
        ctx->eng->cfg.streams->data(ctx->eng->streams, x->stream, d, b);
}

static void stream_kept_gap(void *ud, enum mx_dir d, uint64_t off, uint64_t len, mx_frame_t frame, mx_time_t ts)
{
    struct mx_dissect_ctx *ctx = ud;
    struct flow_ext *x = ctx->flow->user;
    (void)frame;
    (void)ts;
    if (x->stream)
        ctx->eng->cfg.streams->gap(ctx->eng->streams, x->stream, d, off, len);
}

static const struct mx_reasm_ops stream_kept_ops = { .data = stream_kept, .gap = stream_kept_gap };

void mx_ctx_carries(struct mx_dissect_ctx *ctx, const struct mx_proto *proto, bool tls, const char *tunnel)
{
    struct mx_flow *f = ctx->flow;
    struct flow_ext *x = f->user;
    if (!x->carrier || x->proto || !proto)
        return;
    x->tunnel = tunnel;
    become_mail(ctx->eng, f, proto, tls);
    if (ctx->replaying) { /* nDPI's tunnel, read from what was kept: the bytes read so far */
        mx_host_replay_so_far(ctx, &stream_kept_ops);
        return;
    }
    uint64_t end[2];
    mx_host_replay(ctx, &stream_kept_ops, end); /* the replay is not needed any more */
}

/* The flow is read by no carrier any more. */
static void carrier_forget(struct flow_ext *x)
{
    x->ctx.no_mail = false;
    x->carrier = NULL;
    x->ctx.dis = NULL;
}

/* A carrier found no tunnel of mail: the flow is an unknown one again, for
 * nDPI to name (with the bytes it kept), or, without nDPI, ignored. */
static void carrier_released(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    carrier_forget(x);
    if (x->by_ndpi) /* nDPI named the tunnel already: nothing is left to learn from the bytes */
        mx_host_replay_drop(&x->ctx);
    if (!e->cls || x->cls.done)
        classified(e, f);
}

/* Hands what was kept to the flow's reader (its dissector, or a carrier,
 * for which it stays kept: hold); what came past the kept bytes is a gap for
 * it, unless the carrier found no mail in them. */
static void replay_kept(struct mx_flow *f, bool hold)
{
    struct flow_ext *x = f->user;
    uint64_t end[2];
    if (hold)
        mx_host_replay_hold(&x->ctx, &reasm_ops, end);
    else
        mx_host_replay(&x->ctx, &reasm_ops, end);
    for (int d = 0; d < 2 && !x->ctx.no_mail; d++)
        if (f->reasm.h[d].off > end[d])
            on_gap(&x->ctx, (enum mx_dir)d, end[d], f->reasm.h[d].off - end[d], f->last_frame, f->last_ts);
}

/* nDPI settled an unclassified flow: mail gets its dissector, fed what was
 * kept; anything else is only counted from now on. */
static void classified(struct mx_engine *e, struct mx_flow *f)
{
    struct flow_ext *x = f->user;
    if (x->carrier)
        return; /* the tunnel's handshake decides */
    bool tls = false;
    const struct mx_proto *pr = e->cls ? mx_protocols_by_ndpi(e->cfg.protocols, x->cls.app, &tls) : NULL;
    if (!pr && e->cls)
        pr = mx_protocols_by_ndpi(e->cfg.protocols, x->cls.master, &tls);
    const struct mx_carrier *car = NULL;
    if (!pr && e->cls && e->cfg.dissect && x->ctx.replay && !x->ctx.dis) {
        car = mx_protocols_carrier_by_ndpi(e->cfg.protocols, x->cls.app);
        if (!car)
            car = mx_protocols_carrier_by_ndpi(e->cfg.protocols, x->cls.master);
    }
    if (car) {
        /* nDPI saw a tunnel off the carrier's ports: its carrier reads what was kept. */
        x->carrier = car;
        x->ctx.dis = car->dissector;
        x->by_ndpi = true;
        /* Kept on until the carrier's verdict: --streams writes the whole flow. */
        replay_kept(f, true);
        if (x->proto)
            mx_host_replay_drop(&x->ctx);
        if (x->ctx.no_mail) {
            carrier_forget(x);
            car = NULL;
        }
    }
    if (car) {
        /* read on by the carrier */
    } else if (!pr) {
        mx_host_replay_drop(&x->ctx);
        x->ignored = true;
        mx_reasm_release(&f->reasm, &e->pool);
        f->reasm.closed = true;
    } else {
        /* nDPI's label names the protocol; whether the flow is TLS from its
         * first byte is mxray's own reading of the kept bytes (nDPI 4.2 gives
         * a cleartext session that authenticates its protocol's TLS label);
         * nDPI's word only when the bytes cannot tell. The label stays beside
         * it ("ndpi"). */
        int own = mx_host_replay_tls(&x->ctx);
        if (own >= 0)
            tls = own;
        x->by_ndpi = true; /* before become_mail: its flow_start says so */
        become_mail(e, f, pr, tls);
        e->c.ndpi_mail_flows++;
        replay_kept(f, false);
    }
    recharge(e, x);
}

/* A TCP segment of flow k; sp and dp are the mail protocols of its ports. */
void mx_engine_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen, const struct mx_flow_key *k,
                       const struct mx_proto *sp, const struct mx_proto *dp)
{
    struct mx_flow *f = mx_flow_find(e->flows, k);
    if (f && f->state == MX_FLOW_ACTIVE && (p->flags & MX_TCP_SYN) && !(p->flags & MX_TCP_ACK) &&
        p->sport == f->port[MX_DIR_C2S] && mx_addr_eq(&p->src, &f->addr[MX_DIR_C2S]) &&
        mx_reasm_new_syn(&f->reasm, MX_DIR_C2S, p->seq)) {
        /* RFC 9293 §3.5: a new connection on a 4-tuple whose old one never closed. */
        flow_close(e, f, MX_CLOSE_REUSED);
        flow_drop(e, f);
        f = NULL;
    }
    if (f && f->state == MX_FLOW_CLOSED) {
        if (!((p->flags & MX_TCP_SYN) && !(p->flags & MX_TCP_ACK))) {
            e->c.late_packets++; /* a straggler of a finished connection: it lingers on */
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
    enum mx_dir d =
        (p->sport == f->port[MX_DIR_C2S] && mx_addr_eq(&p->src, &f->addr[MX_DIR_C2S])) ? MX_DIR_C2S : MX_DIR_S2C;
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
    mx_tcpa_segment(&x->net, d, p);
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
        mx_engine_core_anomaly(e, f, (int)d, MX_AN_SNAPLEN_TRUNCATED, p->frame, p->ts);
    if (p->len_from_frame)
        mx_engine_core_anomaly(e, f, (int)d, MX_AN_IP_LENGTH_FROM_FRAME, p->frame, p->ts);
    if (!mx_reasm_segment(&f->reasm, &e->pool, d, p, &reasm_ops, &x->ctx))
        e->failed = true;
    if (x->ctx.no_mail && !x->proto) {
        carrier_released(e, f);
        if (x->ignored)
            return;
    }
    if (!f->busy && (f->reasm.h[0].delivered || f->reasm.h[1].delivered))
        mx_flow_set_busy(e->flows, f);
    if (f->user) {
        recharge(e, f->user);
        mem_room(e, 0, p, f);
    }
    if (p->flags & MX_TCP_RST)
        flow_close(e, f, MX_CLOSE_RST);
    else if (f->reasm.h[0].fin_done && f->reasm.h[1].fin_done)
        flow_close(e, f, MX_CLOSE_FIN);
}

/* A TCP segment: counted here, then dissected by its flow's owner. */
static void tcp_segment(struct mx_engine *e, const struct mx_packet *p, uint32_t wirelen)
{
    e->c.tcp_segments++;
    bool stls, dtls;
    const struct mx_proto *sp = mx_protocols_by_port(e->cfg.protocols, p->sport, &stls);
    const struct mx_proto *dp = mx_protocols_by_port(e->cfg.protocols, p->dport, &dtls);
    if (!sp && !dp && !e->cfg.classify && !mx_protocols_carrier_by_port(e->cfg.protocols, p->sport) &&
        !mx_protocols_carrier_by_port(e->cfg.protocols, p->dport))
        return;
    if (sp || dp)
        e->c.mail_segments++;
    struct mx_flow_key k;
    mx_flow_key_make(&k, &p->src, p->sport, &p->dst, p->dport, NULL);
    e->pl->segment(e, p, wirelen, &k, sp, dp);
}

/* Expiry runs when the capture clock enters a new second, or at a live
 * capture's tick (force): in every worker at the same frame. */
static void clock_tick(struct mx_engine *e, uint64_t frame, bool force)
{
    int64_t sec = e->now / MX_NS_PER_SEC - (e->now < 0);
    if (sec == e->tick && !force)
        return;
    e->tick = sec;
    e->pl->tick(e, frame);
}

/* In one thread: segments go straight to their flows. */
static void inline_tick(struct mx_engine *e, uint64_t frame)
{
    mx_engine_set_key(e, frame, 1, 0);
    mx_engine_expire(e, frame, e->now);
}

static void inline_stage(struct mx_engine *e, uint64_t frame, bool tick)
{
    (void)e;
    (void)frame;
    (void)tick;
}

static uint32_t inline_flows(struct mx_engine *e)
{
    return mx_flow_count(e->flows);
}

const struct mx_pipeline_ops mx_pipeline_inline = {
    .segment = mx_engine_segment,
    .tick = inline_tick,
    .stage = inline_stage,
    .finish = mx_engine_finish_flows,
    .flows = inline_flows,
};

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
    if (e->files.n)
        e->files.f[e->files.n - 1].frames++;
    if (!e->frames_seen++) {
        e->first_ts = raw->ts;
        mx_sink_set_epoch(e->out, raw->ts);
    }
    if (raw->ts > e->now || e->frames_seen == 1)
        e->now = raw->ts;
    if (raw->ts < e->first_ts)
        e->first_ts = raw->ts;
    e->last_ts = raw->ts;
    e->c.bytes += raw->wirelen;
    mx_engine_set_key(e, raw->frame, 0, 0);
    e->pl->stage(e, raw->frame, false);
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
        e->c.an.n[a]++;
        warn_once(e, (enum mx_core_anomaly)a, raw->frame, NULL);
        if (e->an_events[a] < MX_DECODE_EVENTS_PER_KIND) {
            e->an_events[a]++;
            mx_engine_emit_anomaly(e, NULL, -1, mx_core_anomalies[a].name, mx_core_anomalies[a].desc, raw->frame,
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
        e->c.other_packets++;
        break;
    }
    e->pl->stage(e, raw->frame, true);
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
    e->t0 = MX_TIME_NONE;
    e->extract.dirfd = -1;
    if (cfg->extract_dir) {
        e->extract.dir = cfg->extract_dir;
        e->extract.dirfd = open(cfg->extract_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        e->extract.file_max = cfg->extract_max;
        e->extract.total_max = cfg->extract_total;
        if (e->extract.dirfd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", cfg->extract_dir, strerror(errno));
            free(e);
            return NULL;
        }
    }
    /* The memory cap: half for flows and their dissectors, a quarter for
     * reassembly, the rest for what every run has (rings, nDPI's tables,
     * IP fragments, output buffers). */
    e->flow_budget = cfg->memory ? cfg->memory / 2 : UINT64_MAX;
    if (!e->cfg.reasm.max_total_bytes && cfg->memory)
        e->cfg.reasm.max_total_bytes = cfg->memory / 4;
    e->sink = e->out = sink;
    e->root = e;
    e->pl = &mx_pipeline_inline;
    e->tick = INT64_MIN;
    e->dec = mx_decoder_new(&cfg->defrag);
    e->flows = mx_flow_table_new(cfg->max_flows);
    /* Worker threads, unless flows must be numbered while they are
     * dissected (files named after them). */
    unsigned workers = cfg->workers > MX_MAX_WORKERS ? MX_MAX_WORKERS : cfg->workers;
    if (cfg->streams || cfg->extract_dir)
        workers = 0;
    if (workers && e->dec && e->flows && !mx_pipeline_start(e, workers, err, errlen)) {
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
        .flows = e->pl->flows(e),
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

/* --since / --until: whether a packet of time ts is read. */
static bool in_window(struct mx_engine *e, mx_time_t ts)
{
    if (e->cfg.since == MX_TIME_NONE && e->cfg.until == MX_TIME_NONE)
        return true;
    if (e->t0 == MX_TIME_NONE)
        e->t0 = ts;
    mx_time_t since = e->cfg.since, until = e->cfg.until;
    if (since != MX_TIME_NONE && e->cfg.since_rel)
        since = e->t0 + since; /* both in [0, 2^62]: no overflow */
    if (until != MX_TIME_NONE && e->cfg.until_rel)
        until = e->t0 + until;
    return (since == MX_TIME_NONE || ts >= since) && (until == MX_TIME_NONE || ts <= until);
}

/* n frames passed over (-f, --since, --until): they keep their numbers. */
static void pass_over(struct mx_engine *e, struct mx_file *fi, uint64_t n)
{
    e->frame += n;
    e->frames_filtered += n;
    if (fi)
        fi->frames += n;
}

bool mx_engine_count_reached(const struct mx_engine *e)
{
    return e->cfg.max_packets && e->frames_seen >= e->cfg.max_packets;
}

static bool engine_read(struct mx_engine *e, struct mx_input *in, double t0, double *last, uint32_t *tick)
{
    struct mx_file *fi = NULL;
    if (e->files.n < MX_MAX_FILES) {
        fi = &e->files.f[e->files.n++];
        snprintf(fi->name, sizeof(fi->name), "%s", in->name);
        fi->first_frame = e->frame + 1;
        fi->linktype = -1;
        fi->status = "ok";
        atomic_store_explicit(&e->files.pub, e->files.n, memory_order_release);
    }
    for (;;) {
        if (mx_engine_count_reached(e))
            return true; /* -c: as tcpdump stops after COUNT packets */
        struct mx_raw_packet raw;
        uint64_t filtered = in->filtered;
        enum mx_input_status st = in->ops->next(in, &raw);
        if (in->filtered > filtered)
            pass_over(e, fi, in->filtered - filtered); /* -f's */
        if (st == MX_INPUT_PACKET) {
            if (fi && fi->linktype < 0)
                fi->linktype = raw.linktype;
            if (!in_window(e, raw.ts)) {
                pass_over(e, fi, 1);
                continue;
            }
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
        e->c.an.n[a]++;
        warn_once(e, a, e->frame + 1, in->error);
        mx_engine_set_key(e, e->frame + 1, 0, 0); /* after what the last frame did */
        mx_engine_emit_anomaly(e, NULL, -1, mx_core_anomalies[a].name, mx_core_anomalies[a].desc, e->frame + 1,
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
    for (size_t i = 0; i < e->files.n; i++) {
        mx_ev_obj(ev, NULL);
        /* A file name is any bytes: made valid UTF-8 as wire text is. */
        mx_ev_wire(ev, "path", mx_slice_make(e->files.f[i].name, strlen(e->files.f[i].name)));
        mx_ev_uint(ev, "first_frame", e->files.f[i].first_frame);
        mx_ev_uint(ev, "frame_count", e->files.f[i].frames);
        mx_ev_int(ev, "linktype", e->files.f[i].linktype);
        mx_ev_str(ev, "status", e->files.f[i].status);
        mx_ev_end(ev);
    }
    mx_ev_end(ev);
    if (e->frames_seen) {
        mx_ev_time(ev, "start", e->first_ts);
        mx_ev_time(ev, "end", e->now);
    }
    mx_ev_uint(ev, "frame_count", e->frame);
    if (e->frames_filtered)
        mx_ev_uint(ev, "frames_filtered", e->frames_filtered);
    mx_ev_uint(ev, "bytes", e->c.bytes);
    mx_ev_uint(ev, "tcp_segments", e->c.tcp_segments);
    mx_ev_uint(ev, "mail_segments", e->c.mail_segments);
    mx_ev_uint(ev, "other_packets", e->c.other_packets);
    mx_ev_uint(ev, "late_packets", e->c.late_packets);
    mx_ev_uint(ev, "flows", e->c.flows_total);
    mx_ev_uint(ev, "flows_evicted", e->c.flows_evicted);
    if (e->cfg.classify) {
        mx_ev_uint(ev, "ndpi_flows", e->c.ndpi_flows);
        mx_ev_uint(ev, "ndpi_mail_flows", e->c.ndpi_mail_flows);
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
        if (e->c.an.n[a])
            mx_ev_uint(ev, mx_core_anomalies[a].name, e->c.an.n[a]);
    mx_ev_end(ev);
    if (e->have_capture_stats) {
        mx_ev_obj(ev, "capture");
        mx_ev_uint(ev, "received", e->cap_received);
        mx_ev_uint(ev, "dropped", e->cap_dropped);
        mx_ev_uint(ev, "ifdropped", e->cap_ifdropped);
        mx_ev_end(ev);
    }
    /* reporters' own counts (--redis): a record they could not deliver fails the run */
    if (!mx_sink_summary(e->sink, ev))
        e->failed = true;
    mx_ev_int(ev, "exit_status", mx_engine_exit_status(e));
    mx_ev_text(ev, "summary: %" PRIu64 " frame%s, %" PRIu64 " mail flow%s, %" PRIu64 " TCP gap%s%s", e->frame,
               e->frame == 1 ? "" : "s", e->c.flows_total, e->c.flows_total == 1 ? "" : "s", e->c.an.n[MX_AN_TCP_GAP],
               e->c.an.n[MX_AN_TCP_GAP] == 1 ? "" : "s",
               mx_engine_exit_status(e) == 3 ? "; the input was damaged (see warnings)" : "");
    mx_event_emit(e->sink, ev);
}

/* Closes every flow, in the order they were last active. */
void mx_engine_finish_flows(struct mx_engine *e)
{
    struct mx_flow *f;
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_ACTIVE))) {
        mx_engine_set_key(e, FIN_FRAME, 2, f->touch_frame);
        mx_pipeline_key(e);
        flow_drop(e, f);
    }
    while ((f = mx_flow_oldest(e->flows, MX_FLOW_CLOSED)))
        flow_drop(e, f);
}

void mx_engine_finish(struct mx_engine *e)
{
    e->pl->finish(e);
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
        if (e->c.an.n[a] && is_damage((enum mx_core_anomaly)a))
            return 3;
    return 0;
}

void mx_engine_free(struct mx_engine *e)
{
    if (!e)
        return;
    mx_pipeline_stop(e);
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
    if (e->extract.dirfd >= 0)
        close(e->extract.dirfd);
    free(e);
}
