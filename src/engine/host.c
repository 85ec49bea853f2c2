/* host.c - the dissector host: what a dissector may ask of its flow (frames, offsets, wakes,
 * anomalies), feeding it in dialogue order with the bytes it left unconsumed, and the replay of
 * what a flow off the mail ports delivered before nDPI named it. */
#include "engine/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_REPLAY_BYTES (64u << 10) /* bytes kept of an unclassified flow, for its dissector */
#define MX_REPLAY_ITEMS 4096        /* ...in at most this many chunks and gaps */

/* What an unclassified flow delivered, kept in order until nDPI says whether
 * it is mail: then its dissector gets it all, as if it had run from the start. */
struct mx_replay_item {
    uint8_t dir;
    bool gap;
    uint64_t off, len;
    mx_frame_t frame;
    mx_time_t ts;
    uint32_t at; /* into the byte buffer */
};

struct mx_replay {
    struct mx_buf items; /* struct mx_replay_item, at most MX_REPLAY_ITEMS */
    uint8_t *bytes;
    uint32_t used;
    bool overflow; /* more came than is kept: the dissector starts with a gap */
};

/* ---- The dissector context ---- */

struct mx_sink *mx_ctx_sink(struct mx_dissect_ctx *ctx)
{
    return ctx->eng->sink;
}

uint64_t mx_ctx_flow_id(const struct mx_dissect_ctx *ctx)
{
    return ctx->flow->id;
}

struct mx_event *mx_ctx_begin(struct mx_dissect_ctx *ctx, const char *type, mx_time_t ts)
{
    return mx_engine_begin(ctx->eng, ctx->flow, type, ts);
}

void mx_ctx_net_span(const struct mx_dissect_ctx *ctx, mx_time_t from, mx_time_t to, struct mx_tcpa_span *s)
{
    const struct flow_ext *x = ctx->flow->user;
    mx_tcpa_span(&x->net, from, to, !ctx->replaying, s); /* a replay hands over bytes of the past */
}

uint64_t mx_ctx_offset(const struct mx_dissect_ctx *ctx, enum mx_dir dir)
{
    return ctx->ds[dir].off;
}

struct mx_frame_ref mx_ctx_frame_at(const struct mx_dissect_ctx *ctx, enum mx_dir dir, uint64_t off)
{
    const struct mx_dir_state *ds = &ctx->ds[dir];
    struct mx_frame_ref r = { 0, MX_TIME_NONE };
    const struct mx_frame_mark *fm = ds->fm.p;
    if (!ds->fm.n)
        return r;
    /* The last mark at or before off (binary search; marks are in offset order). */
    size_t lo = 0, hi = ds->fm.n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (fm[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    r.frame = fm[lo].frame;
    r.ts = fm[lo].ts;
    return r;
}

const struct mx_flow_info *mx_ctx_flow(const struct mx_dissect_ctx *ctx)
{
    return &ctx->info;
}

struct mx_extract *mx_ctx_extract(struct mx_dissect_ctx *ctx)
{
    struct mx_engine *root = ctx->eng->root;
    return root->extract.dirfd >= 0 ? &root->extract : NULL;
}

uint32_t mx_ctx_extract_next(struct mx_dissect_ctx *ctx)
{
    return ++ctx->extract_seq;
}

void mx_ctx_wake(struct mx_dissect_ctx *ctx, enum mx_dir dir)
{
    ctx->wake |= (uint8_t)(1u << dir);
}

void mx_ctx_anomaly_frames(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t idx, mx_frame_t first, mx_frame_t last,
                           mx_time_t ts)
{
    if (!ctx->dis || idx >= ctx->dis->n_anomalies)
        return;
    if (ctx->dis_an && ++ctx->dis_an[idx] > MX_FLOW_EVENTS_PER_KIND)
        return; /* counted in the flow record; a hostile stream cannot flood the output */
    mx_engine_emit_anomaly(ctx->eng, ctx->flow, (int)dir, ctx->dis->anomalies[idx].name, ctx->dis->anomalies[idx].desc,
                           first, last, ts);
}

void mx_ctx_anomaly(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t idx, uint64_t off, uint64_t len)
{
    struct mx_frame_ref a = mx_ctx_frame_at(ctx, dir, off);
    struct mx_frame_ref b = mx_ctx_frame_at(ctx, dir, len ? off + len - 1 : off);
    mx_ctx_anomaly_frames(ctx, dir, idx, a.frame, b.frame, a.ts);
}

void mx_ctx_anomaly_def_frames(struct mx_dissect_ctx *ctx, enum mx_dir dir, const struct mx_anomaly_def *def,
                               mx_frame_t first, mx_frame_t last, mx_time_t ts)
{
    for (size_t i = 0; i < MX_ARRAY_LEN(ctx->other_an); i++) {
        if (ctx->other_an[i].def == def || !ctx->other_an[i].def) {
            ctx->other_an[i].def = def;
            if (++ctx->other_an[i].n > MX_FLOW_EVENTS_PER_KIND)
                return;
            break;
        }
    }
    mx_engine_emit_anomaly(ctx->eng, ctx->flow, (int)dir, def->name, def->desc, first, last, ts);
}

void mx_ctx_anomaly_def(struct mx_dissect_ctx *ctx, enum mx_dir dir, const struct mx_anomaly_def *def, uint64_t off,
                        uint64_t len)
{
    struct mx_frame_ref a = mx_ctx_frame_at(ctx, dir, off);
    struct mx_frame_ref b = mx_ctx_frame_at(ctx, dir, len ? off + len - 1 : off);
    mx_ctx_anomaly_def_frames(ctx, dir, def, a.frame, b.frame, a.ts);
}

const char *mx_close_name(enum mx_close c)
{
    static const char *const names[] = { "open", "fin", "rst", "timeout", "evicted", "reused", "capture_end" };
    return (size_t)c < MX_ARRAY_LEN(names) ? names[c] : "open";
}

void mx_ctx_fail(struct mx_dissect_ctx *ctx)
{
    ctx->failed = true;
}

void mx_ctx_starttls(struct mx_dissect_ctx *ctx, enum mx_dir dir, size_t injection)
{
    if (ctx->tls.plain.in || ctx->tls.clear)
        return; /* STARTTLS inside TLS, or after it was found to be followed by cleartext */
    ctx->tls.on[dir] = true;
    ctx->tls.injection = injection;
}

enum mx_tls_inside mx_ctx_tls_inside(const struct mx_dissect_ctx *ctx)
{
    if (ctx->tls.clear)
        return MX_INSIDE_CLEAR;
    return ctx->tls.plain.on[0] || ctx->tls.plain.on[1] ? MX_INSIDE_DECRYPTED : MX_INSIDE_NONE;
}

const struct mx_keylog *mx_ctx_keylog(const struct mx_dissect_ctx *ctx)
{
    return ctx->eng->cfg.keylog;
}

const struct mx_tls_trust *mx_ctx_tls_trust(const struct mx_dissect_ctx *ctx)
{
    return ctx->eng->cfg.tls_trust;
}

void mx_ctx_tls_name_set(struct mx_dissect_ctx *ctx, struct mx_slice name)
{
    ctx->tls.name = name;
}

struct mx_slice mx_ctx_tls_name(const struct mx_dissect_ctx *ctx)
{
    return ctx->tls.name;
}

uint64_t mx_ctx_tls_bytes(const struct mx_dissect_ctx *ctx, enum mx_dir dir)
{
    return ctx->tls.bytes[dir];
}

void *mx_ctx_tls_observer(struct mx_dissect_ctx *ctx)
{
    if (!ctx->tls.state && ctx->tls.plain.in && ctx->tls.mail)
        return ctx->tls.plain.state; /* a flow that starts in TLS: its dissector is the observer */
    return ctx->tls.state;
}

const struct mx_protocols *mx_ctx_protocols(const struct mx_dissect_ctx *ctx)
{
    return ctx->eng->cfg.protocols;
}

void mx_ctx_no_mail(struct mx_dissect_ctx *ctx)
{
    ctx->no_mail = true;
}

void mx_ctx_hand_over(struct mx_dissect_ctx *ctx)
{
    if (ctx->inner)
        ctx->handover = true;
}

/* ---- Feeding dissectors ---- */

/* Drops frame marks wholly before the stream offset `off`, keeping the one
 * that covers it. */
static void fm_prune(struct mx_dir_state *ds, uint64_t off)
{
    const struct mx_frame_mark *fm = ds->fm.p;
    size_t k = 0;
    while (k + 1 < ds->fm.n && fm[k + 1].off <= off)
        k++;
    if (k)
        mx_buf_consume(&ds->fm, k);
}

static bool fm_push(struct mx_dir_state *ds, uint64_t off, mx_frame_t frame, mx_time_t ts)
{
    if (ds->fm.n && ((const struct mx_frame_mark *)ds->fm.p)[ds->fm.n - 1].frame == frame)
        return true;
    struct mx_frame_mark m = { off, frame, ts };
    return mx_buf_append(&ds->fm, &m, 1) == MX_BUF_OK;
}

/* mxray failed for this flow (out of memory): an error record, and its
 * dissection stops (STYLE.md rule 6). */
static void dissect_stop(struct mx_dissect_ctx *ctx, const char *why)
{
    struct mx_engine *e = ctx->eng;
    struct mx_event *ev = mx_engine_begin(e, ctx->flow, "error", e->now);
    mx_ev_str(ev, "what", why);
    mx_ev_text(ev, "dissection of this flow stopped: %s", why);
    mx_ev_tone(ev, MX_TONE_BAD);
    mx_event_emit(e->sink, ev);
    if (ctx->dstate)
        ctx->dis->state_free(ctx->dstate);
    ctx->dstate = NULL;
    ctx->tls.name = mx_slice_make(NULL, 0); /* its bytes were the dissector's */
    ctx->dis = NULL;
    e->failed = true;
}

/* A TLS record's first byte: 22 a handshake or 21 an alert (RFC 8446 §5.1). */
static bool tls_record_start(uint8_t c)
{
    return c == 0x16 || c == 0x15;
}

/* Whether d's bytes go to the TLS observer: STARTTLS upgraded it, and no
 * call on the cleartext inside TLS is running. */
static bool tls_on(const struct mx_dissect_ctx *ctx, enum mx_dir d)
{
    return ctx->tls.on[d] && !ctx->tls.plain.in;
}

/* RFC 3207 §4.2, RFC 2595 §4, RFC 9051 §6.2.1: after the go-ahead the
 * client's next bytes are its ClientHello. When the client goes on in
 * clear instead, before the server sent anything, the capture holds no TLS
 * after STARTTLS: it was taken behind a TLS-terminating proxy, exported
 * decrypted, or the session was downgraded. Then both directions go back
 * to the dissector, which reads on in clear (MX_INSIDE_CLEAR). Cleartext
 * the server sends first stays injection (tls_route). */
static bool clear_after_starttls(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice b)
{
    if (d != MX_DIR_C2S || !b.len || ctx->tls.bytes[MX_DIR_C2S] || ctx->tls.bytes[MX_DIR_S2C] || ctx->tls.clear ||
        tls_record_start(b.ptr[0]) || b.ptr[0] == 0x80 /* an SSL 2.0 ClientHello */)
        return false;
    ctx->tls.on[MX_DIR_C2S] = ctx->tls.on[MX_DIR_S2C] = false;
    ctx->tls.clear = true;
    ctx->tls.inside_pending = 3;
    return true;
}

/* Bytes of a direction that STARTTLS handed to TLS, starting at the
 * direction's offset: counted, and fed to the TLS observer. Cleartext the
 * server sends after its go-ahead, before its first record (RFC 8446 §5.1:
 * a record starts with its content type, 22 a handshake or 21 an alert,
 * then the version's major byte 3), is injection: it is not part of the
 * TLS session. */
static void tls_route(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice b)
{
    struct mx_dir_state *ds = &ctx->ds[d];
    uint64_t off = ds->off;
    mx_buf_clear(&ds->kept, false);
    ds->want = 0;
    if (!b.len)
        return;
    if (d == MX_DIR_S2C && !ctx->tls.bytes[d] && !tls_record_start(b.ptr[0]))
        mx_ctx_anomaly(ctx, d, ctx->tls.injection, off, b.len);
    if (!ctx->tls.bytes[d])
        ctx->tls.plain.start[d] = off; /* what TLS carries goes on from here */
    ctx->tls.bytes[d] += b.len;
    size_t skip = 0;
    if (d == MX_DIR_S2C && !ctx->tls.server_started) {
        if (!tls_record_start(b.ptr[0])) {
            while (skip + 1 < b.len && !(b.ptr[skip] == 0x16 && b.ptr[skip + 1] == 0x03))
                skip++;
            if (skip + 1 >= b.len)
                skip = b.len; /* no record starts here yet */
        }
        ctx->tls.server_started = skip < b.len;
    }
    if (skip < b.len && ctx->tls.dis && !ctx->tls.state)
        ctx->tls.state = ctx->tls.dis->state_new(ctx);
    if (skip < b.len && ctx->tls.state) {
        ds->off = off + skip; /* the observer reads its bytes' offset here */
        struct mx_parse_result r =
            ctx->tls.dis->parse(ctx->tls.state, ctx, d, mx_slice_make(b.ptr + skip, b.len - skip), 0);
        if (r.status != MX_PARSE_OK || ctx->failed)
            dissect_stop(ctx, "the TLS observer failed (out of memory)");
    }
    ds->off = off + b.len;
    fm_prune(ds, ds->off);
}

/* A carrier's verdict, once its parse call returned: its state goes; with
 * mx_ctx_hand_over the carried protocol's dissector reads on from the bytes
 * the carrier left (woken in both directions, each a fresh start); with
 * mx_ctx_no_mail nothing reads the flow, whose bytes the engine replays
 * elsewhere if it finds mail in them. */
static void carrier_verdict(struct mx_dissect_ctx *ctx)
{
    if (ctx->dstate)
        ctx->dis->state_free(ctx->dstate);
    ctx->dstate = NULL;
    ctx->tls.name = mx_slice_make(NULL, 0); /* its bytes were the dissector's */
    free(ctx->dis_an);
    ctx->dis_an = NULL;
    ctx->dis_names = NULL;
    ctx->handover = false;
    ctx->dis = ctx->no_mail ? NULL : ctx->inner;
    for (int d = 0; d < 2; d++) {
        struct mx_dir_state *ds = &ctx->ds[d];
        ds->started = false;
        ds->want = 0;
        if (ctx->no_mail) {
            mx_buf_clear(&ds->kept, false);
            mx_buf_clear(&ds->fm, false);
            ds->off = 0;
            ds->ended = false;
        }
    }
    ctx->wake = ctx->no_mail ? 0 : 3;
}

static void parse_once(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data, unsigned flags,
                       bool data_is_buf);

/* One parse call; keeps what the parser did not consume; then a carrier's verdict. */
static void parse_call(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data, unsigned flags,
                       bool data_is_buf)
{
    parse_once(ctx, d, data, flags, data_is_buf);
    if (ctx->dis && (ctx->handover || ctx->no_mail))
        carrier_verdict(ctx);
}

static void parse_once(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data, unsigned flags,
                       bool data_is_buf)
{
    struct mx_engine *e = ctx->eng;
    struct mx_dir_state *ds = &ctx->ds[d];
    if (!ctx->dstate) {
        ctx->dstate = ctx->dis->state_new(ctx);
        ctx->dis_names = ctx->dis;
        if (ctx->dis->n_anomalies && ctx->dstate)
            ctx->dis_an = calloc(ctx->dis->n_anomalies, sizeof(*ctx->dis_an));
        if (!ctx->dstate || (ctx->dis->n_anomalies && !ctx->dis_an)) {
            dissect_stop(ctx, "out of memory");
            return;
        }
    }
    if (!ds->started) {
        flags |= MX_CHUNK_START;
        ds->started = true;
    }
    if (ctx->tls.inside_pending & (1u << d)) {
        flags |= MX_CHUNK_INSIDE_TLS;
        ctx->tls.inside_pending &= (uint8_t) ~(1u << d);
    }
    struct mx_parse_result r = ctx->dis->parse(ctx->dstate, ctx, d, data, flags);
    if (r.status != MX_PARSE_OK || ctx->failed) {
        dissect_stop(ctx, "the dissector failed (out of memory)");
        return;
    }
    if (flags & (MX_CHUNK_GAP | MX_CHUNK_END | MX_CHUNK_TRUNCATED)) {
        mx_buf_clear(&ds->kept, false);
        ds->want = 0;
        return;
    }
    size_t used = r.consumed < data.len ? r.consumed : data.len;
    size_t rest = data.len - used;
    ds->off += used;
    if (rest && tls_on(ctx, d) && !(ctx->wake & (1u << d))) {
        if (!clear_after_starttls(ctx, d, mx_slice_make(data.ptr + used, rest))) {
            tls_route(ctx, d, mx_slice_make(data.ptr + used, rest)); /* the call upgraded d: the rest is TLS */
            return;
        }
        mx_ctx_wake(ctx, d); /* the rest goes back to the dissector, as the dialogue in clear */
    }
    ds->want = r.needed <= e->cfg.dissector_buffer ? rest + r.needed : 0;
    if (rest > e->cfg.dissector_buffer) {
        /* The parser wants more than the cap allows: hand the bytes over as a gap. */
        mx_engine_core_anomaly(e, ctx->flow, (int)d, MX_AN_DISSECTOR_BUFFER_LIMIT, ctx->flow->last_frame, e->now);
        mx_buf_clear(&ds->kept, false);
        parse_call(ctx, d, mx_slice_make(NULL, rest), MX_CHUNK_GAP, false);
        ds->off += rest;
        return;
    }
    if (data_is_buf) {
        mx_buf_consume(&ds->kept, used);
    } else {
        mx_buf_clear(&ds->kept, false);
        if (mx_buf_append(&ds->kept, data.ptr + used, rest) != MX_BUF_OK) {
            dissect_stop(ctx, "out of memory");
            return;
        }
    }
    fm_prune(ds, ds->off);
}

/* Hands bytes, a gap or the end of d to the dissector, or, once STARTTLS
 * upgraded d, its bytes to the TLS observer and its gap (to both) or end
 * (without bytes) to the dissector. */
static void deliver(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data, unsigned flags, bool data_is_buf)
{
    if (!tls_on(ctx, d) || (data.ptr && clear_after_starttls(ctx, d, data))) {
        parse_call(ctx, d, data, flags, data_is_buf);
        return;
    }
    if (data.ptr && data.len)
        tls_route(ctx, d, data);
    if ((flags & MX_CHUNK_GAP) && ctx->tls.state &&
        (ctx->tls.dis->parse(ctx->tls.state, ctx, d, data, MX_CHUNK_GAP).status != MX_PARSE_OK || ctx->failed)) {
        dissect_stop(ctx, "the TLS observer failed (out of memory)");
        return;
    }
    /* Once the dissector reads what TLS carries, that stream brings its own gaps and end. */
    bool inside = ctx->tls.plain.on[0] || ctx->tls.plain.on[1];
    if (ctx->dis && !inside && (flags & (MX_CHUNK_GAP | MX_CHUNK_END)))
        parse_call(ctx, d, (flags & MX_CHUNK_GAP) ? data : mx_slice_make(NULL, 0), flags, false);
}

/* Re-runs parsers that asked to be woken, a bounded number of times. */
static void run_wakes(struct mx_dissect_ctx *ctx)
{
    for (int round = 0; round < 8 && ctx->dis && ctx->wake; round++) {
        uint8_t w = ctx->wake;
        ctx->wake = 0;
        for (int d = 0; d < 2 && ctx->dis; d++) {
            struct mx_dir_state *ds = &ctx->ds[d];
            if ((w & (1u << d)) && ds->kept.n && !ds->ended)
                deliver(ctx, (enum mx_dir)d, mx_slice_make(ds->kept.p, ds->kept.n), 0, true);
        }
    }
    ctx->wake = 0;
}

void mx_host_data(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, struct mx_slice b, mx_frame_t frame,
                  mx_time_t ts)
{
    struct mx_dir_state *ds = &ctx->ds[d];
    if (!ctx->dis || ds->ended)
        return;
    if (!ds->kept.n)
        ds->off = off;
    if (!fm_push(ds, off, frame, ts)) {
        dissect_stop(ctx, "out of memory");
        return;
    }
    if (!ds->kept.n) {
        deliver(ctx, d, b, 0, false); /* zero copy: straight from the segment */
        run_wakes(ctx);
        return;
    }
    if (mx_buf_append(&ds->kept, b.ptr, b.len) != MX_BUF_OK) {
        dissect_stop(ctx, "out of memory");
        return;
    }
    if (ds->kept.n < ds->want)
        return; /* the parser asked for more than has come */
    deliver(ctx, d, mx_slice_make(ds->kept.p, ds->kept.n), 0, true);
    run_wakes(ctx);
}

void mx_host_gap(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, uint64_t len)
{
    struct mx_dir_state *ds = &ctx->ds[d];
    if (!ctx->dis || ds->ended)
        return;
    if (ds->kept.n) /* the last chance for what was cut: then it is dropped */
        deliver(ctx, d, mx_slice_make(ds->kept.p, ds->kept.n), MX_CHUNK_TRUNCATED, true);
    if (!ctx->dis)
        return;
    ds->off = off;
    mx_buf_clear(&ds->kept, false);
    deliver(ctx, d, mx_slice_make(NULL, (size_t)len), MX_CHUNK_GAP, false);
    ds->off = off + len;
    mx_buf_clear(&ds->fm, false);
    run_wakes(ctx);
}

static void plain_swap(struct mx_dissect_ctx *ctx);

void mx_host_end(struct mx_dissect_ctx *ctx, enum mx_dir d)
{
    struct mx_plain *p = &ctx->tls.plain;
    if (!p->in && (p->on[0] || p->on[1]) && (ctx->tls.mail || ctx->tls.on[d])) {
        /* The dissector reading what TLS carries ends d first: its session
         * record, and the TLS record it emits, come before the TLS
         * dissector's end of a flow that starts in TLS. */
        plain_swap(ctx);
        mx_host_end(ctx, d);
        plain_swap(ctx);
        if (!ctx->tls.mail) {
            ctx->ds[d].ended = true;
            return;
        }
    }
    struct mx_dir_state *ds = &ctx->ds[d];
    if (!ctx->dis || !ctx->dstate || ds->ended)
        return; /* a dissector that never saw a byte has nothing to end */
    deliver(ctx, d, mx_slice_make(ds->kept.n ? ds->kept.p : NULL, ds->kept.n), MX_CHUNK_END, true);
    ds->ended = true;
    run_wakes(ctx);
}

/* ---- Inside TLS: the cleartext a key log decrypts ---- */

/* Swaps the flow's streams, its wakes and, for a flow that starts in TLS,
 * its dissector with the cleartext layer's: swapped in, every mx_ctx_* call
 * a dissector makes (offsets, frames, anomalies, wakes) reads the stream
 * inside TLS, and the records say "decrypted"; swapped out, the wire's again. */
static void plain_swap(struct mx_dissect_ctx *ctx)
{
    struct mx_plain *p = &ctx->tls.plain;
    for (int d = 0; d < 2; d++) {
        struct mx_dir_state t = ctx->ds[d];
        ctx->ds[d] = p->ds[d];
        p->ds[d] = t;
    }
    uint8_t w = ctx->wake;
    ctx->wake = p->wake;
    p->wake = w;
    if (ctx->tls.mail) {
        const struct mx_dissector *dis = ctx->dis, *names = ctx->dis_names;
        void *state = ctx->dstate;
        uint32_t *an = ctx->dis_an;
        ctx->dis = p->dis, ctx->dis_names = p->names, ctx->dstate = p->state, ctx->dis_an = p->an;
        p->dis = dis, p->names = names, p->state = state, p->an = an;
    }
    p->in = !p->in;
    mx_sink_decrypted(ctx->eng->sink, p->in ? ctx->flow->id : 0);
}

void mx_ctx_tls_plain(struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data, uint64_t raw_off)
{
    struct mx_plain *p = &ctx->tls.plain;
    if (p->in || !data.len || (ctx->tls.mail ? 0 : !ctx->dis) || (!data.ptr && !p->on[0] && !p->on[1]))
        return; /* nothing reads it, or a loss before any byte was decrypted: as if there were no key */
    struct mx_frame_ref fr = mx_ctx_frame_at(ctx, d, raw_off); /* on the wire, before the swap */
    if (!p->on[0] && !p->on[1]) {
        /* The first decrypted bytes: both streams begin where TLS began (a
         * direction whose TLS has not begun, where its wire stream stands). */
        for (int i = 0; i < 2; i++)
            p->ds[i].off = p->next[i] = ctx->tls.bytes[i] ? p->start[i] : ctx->ds[i].off;
        if (ctx->tls.mail)
            p->dis = ctx->tls.mail; /* its state is made with the first call */
        else
            ctx->tls.inside_pending = 3; /* the dissector reads on from STARTTLS */
    }
    p->on[d] = true;
    uint64_t off = p->next[d];
    p->next[d] += data.len;
    plain_swap(ctx);
    if (data.ptr)
        mx_host_data(ctx, d, off, data, fr.frame, fr.ts);
    else
        mx_host_gap(ctx, d, off, data.len);
    plain_swap(ctx);
}

void mx_host_describe_anomalies(const struct mx_dissect_ctx *ctx, struct mx_event *ev)
{
    if (ctx->dis_an)
        for (size_t i = 0; i < ctx->dis_names->n_anomalies; i++)
            if (ctx->dis_an[i])
                mx_ev_uint(ev, ctx->dis_names->anomalies[i].name, ctx->dis_an[i]);
    const struct mx_plain *p = &ctx->tls.plain; /* the dissector inside a flow that starts in TLS */
    if (p->an)
        for (size_t i = 0; i < p->names->n_anomalies; i++)
            if (p->an[i])
                mx_ev_uint(ev, p->names->anomalies[i].name, p->an[i]);
    for (size_t i = 0; i < MX_ARRAY_LEN(ctx->other_an) && ctx->other_an[i].def; i++)
        mx_ev_uint(ev, ctx->other_an[i].def->name, ctx->other_an[i].n);
}

/* ---- Replay ---- */

bool mx_host_replay_start(struct mx_dissect_ctx *ctx)
{
    ctx->replay = calloc(1, sizeof(*ctx->replay));
    if (ctx->replay)
        mx_buf_init(&ctx->replay->items, sizeof(struct mx_replay_item), 16, MX_REPLAY_ITEMS);
    return ctx->replay != NULL;
}

void mx_host_replay_keep(struct mx_dissect_ctx *ctx, enum mx_dir d, uint64_t off, struct mx_slice b, bool gap,
                         mx_frame_t frame, mx_time_t ts)
{
    struct mx_replay *r = ctx->replay;
    if (!r || r->overflow)
        return;
    size_t need = gap ? 0 : b.len;
    if (r->used + need > MX_REPLAY_BYTES || mx_buf_reserve(&r->items, 1) != MX_BUF_OK) {
        r->overflow = true; /* the dissector will start with a gap */
        return;
    }
    if (!r->bytes && need) {
        r->bytes = malloc(MX_REPLAY_BYTES);
        if (!r->bytes) {
            r->overflow = true;
            return;
        }
    }
    struct mx_replay_item *it = mx_buf_push(&r->items, NULL);
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

void mx_host_replay_drop(struct mx_dissect_ctx *ctx)
{
    struct mx_replay *r = ctx->replay;
    if (!r)
        return;
    mx_buf_free(&r->items);
    free(r->bytes);
    free(r);
    ctx->replay = NULL;
}

int mx_host_replay_tls(const struct mx_dissect_ctx *ctx)
{
    const struct mx_replay *r = ctx->replay;
    if (!r)
        return -1;
    uint8_t b[3];
    size_t n = 0;
    int dir = -1;
    for (size_t i = 0; i < r->items.n && n < sizeof(b); i++) {
        const struct mx_replay_item *it = mx_buf_at(&r->items, i);
        if (it->gap) {
            if (dir < 0 || it->dir == dir)
                return -1; /* the first bytes were never captured */
            continue;
        }
        if (!it->len || (dir >= 0 && it->dir != dir))
            continue;
        dir = it->dir;
        size_t k = it->len < sizeof(b) - n ? (size_t)it->len : sizeof(b) - n;
        memcpy(b + n, r->bytes + it->at, k);
        n += k;
    }
    if (n < sizeof(b))
        return -1;
    /* RFC 8446 §5.1: ContentType handshake (22), legacy_record_version 3.x;
     * SSL 2.0: a two-byte length with the top bit set, then ClientHello (1). */
    return (b[0] == 22 && b[1] == 3 && b[2] <= 4) || ((b[0] & 0x80) && b[2] == 1);
}

static void replay_item(struct mx_dissect_ctx *ctx, const struct mx_replay *r, const struct mx_replay_item *it,
                        const struct mx_reasm_ops *ops)
{
    if (it->gap)
        ops->gap(ctx, (enum mx_dir)it->dir, it->off, it->len, it->frame, it->ts);
    else
        ops->data(ctx, (enum mx_dir)it->dir, it->off, mx_slice_make(r->bytes + it->at, it->len), it->frame, it->ts);
}

void mx_host_replay(struct mx_dissect_ctx *ctx, const struct mx_reasm_ops *ops, uint64_t end[2])
{
    mx_host_replay_hold(ctx, ops, end);
    mx_host_replay_drop(ctx);
}

void mx_host_replay_hold(struct mx_dissect_ctx *ctx, const struct mx_reasm_ops *ops, uint64_t end[2])
{
    struct mx_replay *r = ctx->replay;
    ctx->replay = NULL; /* what is replayed now is not kept again */
    ctx->replaying = r;
    end[0] = end[1] = 0;
    for (size_t i = 0; r && i < r->items.n; i++) {
        const struct mx_replay_item *it = mx_buf_at(&r->items, i);
        ctx->replay_at = i;
        replay_item(ctx, r, it, ops);
        end[it->dir] = it->off + it->len;
    }
    ctx->replaying = NULL;
    ctx->replay = r;
}

void mx_host_replay_so_far(struct mx_dissect_ctx *ctx, const struct mx_reasm_ops *ops)
{
    struct mx_replay *r = ctx->replaying;
    for (size_t i = 0; r && i <= ctx->replay_at && i < r->items.n; i++)
        replay_item(ctx, r, mx_buf_at(&r->items, i), ops);
}

/* ---- What the host holds ---- */

void mx_host_init(struct mx_dissect_ctx *ctx)
{
    for (int d = 0; d < 2; d++) {
        mx_buf_init(&ctx->ds[d].kept, 1, 4096, SIZE_MAX);
        mx_buf_init(&ctx->ds[d].fm, sizeof(struct mx_frame_mark), 8, SIZE_MAX);
        mx_buf_init(&ctx->tls.plain.ds[d].kept, 1, 4096, SIZE_MAX);
        mx_buf_init(&ctx->tls.plain.ds[d].fm, sizeof(struct mx_frame_mark), 8, SIZE_MAX);
    }
}

size_t mx_host_bytes(const struct mx_dissect_ctx *ctx)
{
    size_t n = 0;
    if (ctx->dis && ctx->dstate && ctx->dis->state_bytes)
        n += ctx->dis->state_bytes(ctx->dstate);
    if (ctx->tls.state && ctx->tls.dis->state_bytes)
        n += ctx->tls.dis->state_bytes(ctx->tls.state);
    const struct mx_plain *p = &ctx->tls.plain;
    if (p->dis && p->state && p->dis->state_bytes)
        n += p->dis->state_bytes(p->state);
    if (p->names)
        n += p->names->n_anomalies * sizeof(*p->an);
    for (int d = 0; d < 2; d++)
        n += mx_buf_bytes(&p->ds[d].kept) + mx_buf_bytes(&p->ds[d].fm);
    if (ctx->dis_names)
        n += ctx->dis_names->n_anomalies * sizeof(*ctx->dis_an);
    for (int d = 0; d < 2; d++)
        n += mx_buf_bytes(&ctx->ds[d].kept) + mx_buf_bytes(&ctx->ds[d].fm);
    if (ctx->replay)
        n += sizeof(*ctx->replay) + mx_buf_bytes(&ctx->replay->items) + (ctx->replay->bytes ? MX_REPLAY_BYTES : 0);
    return n;
}

void mx_host_release(struct mx_dissect_ctx *ctx)
{
    mx_host_replay_drop(ctx);
    if (ctx->dis && ctx->dstate)
        ctx->dis->state_free(ctx->dstate);
    ctx->dstate = NULL;
    ctx->tls.name = mx_slice_make(NULL, 0); /* its bytes were the dissector's */
    if (ctx->tls.state)
        ctx->tls.dis->state_free(ctx->tls.state);
    ctx->tls.state = NULL;
    struct mx_plain *p = &ctx->tls.plain;
    if (p->dis && p->state)
        p->dis->state_free(p->state);
    p->state = NULL;
    free(p->an);
    p->an = NULL;
    for (int d = 0; d < 2; d++) {
        mx_buf_free(&ctx->ds[d].kept);
        mx_buf_free(&ctx->ds[d].fm);
        mx_buf_free(&p->ds[d].kept);
        mx_buf_free(&p->ds[d].fm);
    }
    free(ctx->dis_an);
    ctx->dis_an = NULL;
}
