/* report_text.c - the text timeline: one escaped line per event, for people.
 *
 * Time order (docs/manual.md, "Time order"): records reach reporters in the
 * order they were finished, and a record is stamped at the event it
 * describes, so a message (stamped at its first byte) comes after the lines
 * of its last byte's time. The timeline holds each session's lines, sorted by
 * time (stable for equal times), and writes them when the session's "flow"
 * record comes. Bounded: at most ORDER_MAX_LINES per session and
 * ORDER_MAX_BYTES in all; past either, the earliest lines (half the
 * session's, or all of them) are written early,
 * a note says so, and a later line that steps back is counted in the note at
 * the end. Lines of no session (flowless records) are written at once. */
#include "output/report.h"
#include "event/text.h"
#include "core/buf.h"
#include "core/idmap.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ORDER_MAX_LINES 4096 /* lines held per session */
#define ORDER_MAX_LINES_TEXT "4096"
#define ORDER_MAX_BYTES (32u << 20) /* bytes of lines held in all sessions */
#define ORDER_MAX_BYTES_TEXT "32 MiB"

/* A line (or two, with --explain) held for time order. */
struct held {
    mx_time_t ts;
    bool message;  /* a "message" record */
    mx_frame_t f0; /* its first frame, or 0 */
    char *text;    /* its bytes, owned */
    size_t len;
};

/* A session's held lines, in time order. */
struct order {
    uint64_t flow;
    struct mx_buf lines;  /* struct held, at most ORDER_MAX_LINES */
    mx_time_t last_ts;    /* the latest time held or written (for records without one) */
    mx_time_t written_ts; /* the latest time written early, or MX_TIME_NONE */
    bool noted;           /* the note that its window was full is out */
};

struct text_rep {
    const struct mx_sink *sink; /* for the epoch of relative times */
    FILE *out;
    bool close_out;
    bool color;
    bool failed;
    struct mx_idmap open; /* flow id -> struct order */
    size_t held_bytes;    /* lines held in all sessions */
    uint64_t stepped;     /* lines written out of time order (a window was full) */
    mx_time_t hold;       /* with live capture: lines wait at most this long (0: until the session ends) */
    mx_time_t clock;      /* the latest time seen, or MX_TIME_NONE */
    mx_time_t swept;      /* when lines past `hold` were last written */
    FILE *ms;             /* a line is formatted here before it is held */
    char *ms_buf;
    size_t ms_len;
};

/* Writes s escaped as every view escapes it (mx_escape_char): invalid UTF-8,
 * control characters (C0, DEL and C1) and bidirectional controls as \xNN or
 * \uNNNN, so no byte from the wire can drive the terminal or reorder the line. */
static void put_escaped(FILE *out, struct mx_slice s)
{
    mx_fput_escaped(out, s);
}

static const char *color_of(const struct mx_event *e)
{
    switch (e->tone) {
    case MX_TONE_GOOD:
        return "\033[32m";
    case MX_TONE_WARN:
        return "\033[33m";
    case MX_TONE_BAD:
        return "\033[31m";
    default:
        return NULL;
    }
}

/* Without a text line: the type and the top-level scalar fields. */
static void put_fields(FILE *out, const struct mx_event *e)
{
    fputs(e->type, out);
    int depth = 0;
    for (size_t i = 0; i < e->fields.n; i++) {
        const struct mx_ev_field *f = mx_ev_field_at(e, i);
        if (f->kind == MX_EV_END) {
            depth--;
            continue;
        }
        bool skip = depth > 0 || !f->key || !strcmp(f->key, "type") || !strcmp(f->key, "flow") ||
                    !strcmp(f->key, "ts") || !strcmp(f->key, "dir");
        if (f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR)
            depth++;
        if (skip || f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR)
            continue;
        fprintf(out, " %s=", f->key);
        switch (f->kind) {
        case MX_EV_STR:
            put_escaped(out, mx_ev_field_str(e, f));
            break;
        case MX_EV_INT:
            fprintf(out, "%" PRId64, f->v.i);
            break;
        case MX_EV_UINT:
            fprintf(out, "%" PRIu64, f->v.u);
            break;
        case MX_EV_DOUBLE:
            fprintf(out, "%.6f", f->v.d);
            break;
        case MX_EV_BOOL:
            fputs(f->v.b ? "true" : "false", out);
            break;
        default:
            fputs("null", out);
            break;
        }
    }
}

/* --explain: "explain_lines", what a multi-line step holds item by item
 * (an EHLO reply's extensions, a decoded SASL prompt), one line each under
 * the explain line. */
static void put_explain_lines(const struct text_rep *r, FILE *out, const struct mx_event *e)
{
    const struct mx_ev_field *arr = mx_ev_get(e, "explain_lines");
    if (!arr || arr->kind != MX_EV_ARR)
        return;
    for (const struct mx_ev_field *f = mx_ev_first(e, arr); f; f = mx_ev_next(e, f)) {
        if (f->kind != MX_EV_STR)
            continue;
        fprintf(out, "%27s%s", "", r->color ? "\033[2m" : "");
        put_escaped(out, mx_ev_field_str(e, f));
        fprintf(out, "%s\n", r->color ? "\033[0m" : "");
    }
}

/* One line: relative time, flow, direction arrow, then the text. */
static void put_line(const struct text_rep *r, FILE *out, const struct mx_event *e)
{
    if (e->ts != MX_TIME_NONE)
        fprintf(out, "%12.6f ", mx_time_secs(mx_sink_epoch(r->sink), e->ts));
    else
        fprintf(out, "%12s ", "");
    if (e->flow)
        fprintf(out, "#%-5" PRIu64 " ", e->flow);
    else
        fprintf(out, "%-6s ", "");
    /* A double arrow: the record was built from bytes decrypted with --tls-keylog. */
    bool dec = e->dir >= 0 && mx_ev_get_int(e, "decrypted", 0);
    if (e->dir == MX_DIR_C2S)
        fputs(dec ? "C=>S " : "C->S ", out);
    else if (e->dir == MX_DIR_S2C)
        fputs(dec ? "S=>C " : "S->C ", out);
    else
        fputs("     ", out);
    const char *col = r->color ? color_of(e) : NULL;
    if (col)
        fputs(col, out);
    if (e->text_len) {
        put_escaped(out, mx_ev_text_of(e));
        char cut[512]; /* the texts it carries cut, and their real lengths */
        if (mx_ev_cut_mark(e, cut, sizeof(cut)))
            fputs(cut, out);
    } else {
        put_fields(out, e);
    }
    if (col)
        fputs("\033[0m", out);
    fputc('\n', out);
    /* --explain: records may carry "explain" (what the step means) and
     * "state" (where the session stands); each gets a line of its own. */
    struct mx_slice ex = mx_ev_get_str(e, "explain"), st = mx_ev_get_str(e, "state");
    if (ex.len || st.len) {
        fprintf(out, "%25s%s", "", r->color ? "\033[2m" : "");
        if (st.len) {
            fputs("[", out);
            put_escaped(out, st);
            fputs("] ", out);
        }
        put_escaped(out, ex);
        fprintf(out, "%s\n", r->color ? "\033[0m" : "");
    }
    put_explain_lines(r, out, e);
}

static void write_held(struct text_rep *r, struct order *o, size_t i)
{
    struct held *h = mx_buf_at(&o->lines, i);
    if (h->len && fwrite(h->text, 1, h->len, r->out) != h->len)
        r->failed = true;
    r->held_bytes -= h->len;
    free(h->text);
    h->text = NULL;
}

/* Writes all of a session's held lines, in time order, and forgets them. */
static void flush_order(struct text_rep *r, struct order *o)
{
    for (size_t i = 0; i < o->lines.n; i++)
        write_held(r, o, i);
    mx_buf_clear(&o->lines, true);
}

/* Writes a session's k earliest held lines before it ends (a cap was hit,
 * or, live, they waited long enough): one move of the rest for k lines. */
static void write_first(struct text_rep *r, struct order *o, size_t k)
{
    for (size_t i = 0; i < k && i < o->lines.n; i++) {
        struct held *h = mx_buf_at(&o->lines, i);
        if (h->ts != MX_TIME_NONE && (o->written_ts == MX_TIME_NONE || h->ts > o->written_ts))
            o->written_ts = h->ts;
        write_held(r, o, i);
    }
    mx_buf_consume(&o->lines, k);
}

static void order_free(struct order *o)
{
    for (size_t i = 0; i < o->lines.n; i++)
        free(((struct held *)mx_buf_at(&o->lines, i))->text);
    mx_buf_free(&o->lines);
    free(o);
}

static int by_flow(const void *a, const void *b)
{
    const struct order *x = *(struct order *const *)a, *y = *(struct order *const *)b;
    return x->flow < y->flow ? -1 : x->flow > y->flow;
}

/* Writes every session still held, by flow number (the run ends). */
static void flush_all(struct text_rep *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->open.cap; i++)
        n += r->open.slot[i].id != 0;
    struct order **v = n ? malloc(n * sizeof(*v)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < r->open.cap; i++) {
        struct order *o = r->open.slot[i].id ? r->open.slot[i].val : NULL;
        if (!o)
            continue;
        if (v)
            v[k++] = o;
        else /* out of memory: their order, not each one's */
            flush_order(r, o);
    }
    if (v)
        qsort(v, k, sizeof(*v), by_flow);
    for (size_t i = 0; i < k; i++)
        flush_order(r, v[i]);
    for (size_t i = 0; i < r->open.cap; i++)
        if (r->open.slot[i].id)
            order_free(r->open.slot[i].val);
    free(v);
    mx_idmap_free(&r->open);
}

static void note_full(struct text_rep *r, struct order *o, const char *what)
{
    if (o->noted)
        return;
    o->noted = true;
    fprintf(r->out,
            "%12s #%-5" PRIu64 "      timeline: %s held to put the session in time order; its earliest lines are "
            "written now, and later ones may step back in time\n",
            "", o->flow, what);
}

/* The first of a record's "frames", or 0. */
static mx_frame_t first_frame(const struct mx_event *e)
{
    const struct mx_ev_field *fr = mx_ev_get(e, "frames");
    const struct mx_ev_field *a = fr && fr->kind == MX_EV_ARR ? mx_ev_first(e, fr) : NULL;
    return a && a->kind == MX_EV_UINT ? a->v.u : 0;
}

/* Holds a session's line in time order (stable: after lines of the same time). */
static void hold(struct text_rep *r, const struct mx_event *e, const char *text, size_t len)
{
    struct order *o = mx_idmap_get(&r->open, e->flow);
    if (!o) {
        o = calloc(1, sizeof(*o));
        if (!o || !mx_idmap_put(&r->open, e->flow, o)) {
            free(o);
            goto direct;
        }
        o->flow = e->flow;
        o->last_ts = o->written_ts = MX_TIME_NONE;
        mx_buf_init(&o->lines, sizeof(struct held), 16, ORDER_MAX_LINES + 1);
    }
    mx_time_t ts = e->ts != MX_TIME_NONE ? e->ts : o->last_ts;
    if (ts != MX_TIME_NONE && (o->last_ts == MX_TIME_NONE || ts > o->last_ts))
        o->last_ts = ts;
    if (o->written_ts != MX_TIME_NONE && ts != MX_TIME_NONE && ts < o->written_ts)
        r->stepped++; /* a line before it was written already */
    char *copy = malloc(len ? len : 1);
    enum mx_buf_status st = copy ? mx_buf_reserve(&o->lines, 1) : MX_BUF_NOMEM;
    if (st != MX_BUF_OK) {
        free(copy);
        flush_order(r, o); /* what it held first, then this one */
        goto direct;
    }
    memcpy(copy, text, len);
    /* after the lines of an earlier or the same time; a message also after
     * the lines of its time that begin at or before its first frame (the
     * reply that started it may share its first packet, and is written
     * after it) */
    bool msg = !strcmp(e->type, "message");
    mx_frame_t f0 = first_frame(e);
    size_t at = o->lines.n;
    while (at > 0 && ts != MX_TIME_NONE) {
        const struct held *p = mx_buf_at(&o->lines, at - 1);
        if (!(p->ts > ts || (p->ts == ts && p->message && !msg && f0 && p->f0 && f0 <= p->f0)))
            break;
        at--;
    }
    mx_buf_push(&o->lines, &st);
    struct held *base = mx_buf_at(&o->lines, 0);
    memmove(base + at + 1, base + at, (o->lines.n - 1 - at) * sizeof(*base));
    base[at] = (struct held){ .ts = ts, .message = msg, .f0 = f0, .text = copy, .len = len };
    r->held_bytes += len;
    if (o->lines.n > ORDER_MAX_LINES) {
        note_full(r, o, "more than " ORDER_MAX_LINES_TEXT " lines");
        write_first(r, o, ORDER_MAX_LINES / 2);
    }
    if (r->held_bytes > ORDER_MAX_BYTES) {
        note_full(r, o, "more than " ORDER_MAX_BYTES_TEXT " of lines (all sessions)");
        write_first(r, o, o->lines.n);
    }
    return;
direct:
    if (len && fwrite(text, 1, len, r->out) != len)
        r->failed = true;
}

/* Live capture: once a second of capture time, writes the lines that have
 * waited longer than `hold` (a span longer than that then steps back). */
static void sweep(struct text_rep *r, mx_time_t ts)
{
    if (ts == MX_TIME_NONE || (r->clock != MX_TIME_NONE && ts <= r->clock))
        return;
    r->clock = ts;
    if (!r->hold || (r->swept != MX_TIME_NONE && r->clock - r->swept < 1000000000))
        return;
    r->swept = r->clock;
    for (size_t i = 0; i < r->open.cap; i++) {
        struct order *o = r->open.slot[i].id ? r->open.slot[i].val : NULL;
        size_t k = 0;
        while (o && k < o->lines.n && ((struct held *)mx_buf_at(&o->lines, k))->ts <= r->clock - r->hold)
            k++;
        if (k)
            write_first(r, o, k);
    }
}

static void text_event(void *ctx, const struct mx_event *e)
{
    struct text_rep *r = ctx;
    sweep(r, e->ts);
    if (!e->flow || !r->ms) {
        if (e->ts == MX_TIME_NONE)
            flush_all(r); /* the run's end: findings, the summary */
        put_line(r, r->out, e);
        return;
    }
    rewind(r->ms);
    put_line(r, r->ms, e);
    long len = ftell(r->ms);
    if (fflush(r->ms) != 0 || len < 0) {
        put_line(r, r->out, e);
        return;
    }
    hold(r, e, r->ms_buf, (size_t)len);
    if (!strcmp(e->type, "flow")) {
        struct order *o = mx_idmap_take(&r->open, e->flow);
        if (o) {
            flush_order(r, o);
            order_free(o);
        }
    }
}

/* The run is about to end: every session is written before what comes now. */
static void text_end(void *ctx, struct mx_sink *s)
{
    (void)s;
    flush_all(ctx);
}

static bool text_finish(void *ctx)
{
    struct text_rep *r = ctx;
    flush_all(r);
    if (r->stepped)
        fprintf(r->out,
                "%25stimeline: %" PRIu64 " line%s written out of time order (a session's window for ordering was "
                "full)\n",
                "", r->stepped, r->stepped == 1 ? "" : "s");
    if (fflush(r->out) != 0 || ferror(r->out))
        r->failed = true;
    return !r->failed;
}

static void text_free(void *ctx)
{
    struct text_rep *r = ctx;
    flush_all(r);
    if (r->ms)
        fclose(r->ms);
    free(r->ms_buf);
    if (r->close_out)
        fclose(r->out);
    free(r);
}

static const struct mx_reporter_ops text_ops = {
    .wants_text = true,
    .event = text_event,
    .end = text_end,
    .finish = text_finish,
    .free = text_free,
};

bool mx_report_text_add(struct mx_sink *s, FILE *out, bool close_out, bool color, unsigned hold_secs)
{
    struct text_rep *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->sink = s;
    r->out = out;
    r->close_out = close_out;
    r->color = color;
    r->hold = (mx_time_t)hold_secs * 1000000000;
    r->clock = r->swept = MX_TIME_NONE;
    /* without it, lines are written as they come (emission order) */
    r->ms = open_memstream(&r->ms_buf, &r->ms_len);
    if (!mx_sink_add(s, &text_ops, r)) {
        if (r->ms)
            fclose(r->ms);
        free(r->ms_buf);
        free(r);
        return false;
    }
    return true;
}
