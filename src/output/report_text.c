/* report_text.c - the text timeline: one escaped line per event, for people. */
#include "output/report.h"
#include "event/text.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct text_rep {
    const struct mx_sink *sink; /* for the epoch of relative times */
    FILE *out;
    bool close_out;
    bool color;
    bool failed;
};

/* Writes s escaped as every view escapes it (mx_escape_char): invalid UTF-8,
 * control characters (C0, DEL and C1) and bidirectional controls as \xNN or
 * \uNNNN, so no byte from the wire can drive the terminal or reorder the line. */
static void put_escaped(struct text_rep *r, struct mx_slice s)
{
    mx_fput_escaped(r->out, s);
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
static void put_fields(struct text_rep *r, const struct mx_event *e)
{
    fputs(e->type, r->out);
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
        fprintf(r->out, " %s=", f->key);
        switch (f->kind) {
        case MX_EV_STR:
            put_escaped(r, mx_ev_field_str(e, f));
            break;
        case MX_EV_INT:
            fprintf(r->out, "%" PRId64, f->v.i);
            break;
        case MX_EV_UINT:
            fprintf(r->out, "%" PRIu64, f->v.u);
            break;
        case MX_EV_DOUBLE:
            fprintf(r->out, "%.6f", f->v.d);
            break;
        case MX_EV_BOOL:
            fputs(f->v.b ? "true" : "false", r->out);
            break;
        default:
            fputs("null", r->out);
            break;
        }
    }
}

/* One line: relative time, flow, direction arrow, then the text. */
static void text_event(void *ctx, const struct mx_event *e)
{
    struct text_rep *r = ctx;
    if (e->ts != MX_TIME_NONE)
        fprintf(r->out, "%12.6f ", mx_time_secs(mx_sink_epoch(r->sink), e->ts));
    else
        fprintf(r->out, "%12s ", "");
    if (e->flow)
        fprintf(r->out, "#%-5" PRIu64 " ", e->flow);
    else
        fprintf(r->out, "%-6s ", "");
    if (e->dir == MX_DIR_C2S)
        fputs("C->S ", r->out);
    else if (e->dir == MX_DIR_S2C)
        fputs("S->C ", r->out);
    else
        fputs("     ", r->out);
    const char *col = r->color ? color_of(e) : NULL;
    if (col)
        fputs(col, r->out);
    if (e->text_len) {
        put_escaped(r, mx_ev_text_of(e));
        char cut[512]; /* the texts it carries cut, and their real lengths */
        if (mx_ev_cut_mark(e, cut, sizeof(cut)))
            fputs(cut, r->out);
    } else
        put_fields(r, e);
    if (col)
        fputs("\033[0m", r->out);
    fputc('\n', r->out);
    /* --explain: records may carry "explain" (what the step means) and
     * "state" (where the session stands); each gets a line of its own. */
    struct mx_slice ex = mx_ev_get_str(e, "explain"), st = mx_ev_get_str(e, "state");
    if (ex.len || st.len) {
        fprintf(r->out, "%25s%s", "", r->color ? "\033[2m" : "");
        if (st.len) {
            fputs("[", r->out);
            put_escaped(r, st);
            fputs("] ", r->out);
        }
        put_escaped(r, ex);
        fprintf(r->out, "%s\n", r->color ? "\033[0m" : "");
    }
}

static bool text_finish(void *ctx)
{
    struct text_rep *r = ctx;
    if (fflush(r->out) != 0 || ferror(r->out))
        r->failed = true;
    return !r->failed;
}

static void text_free(void *ctx)
{
    struct text_rep *r = ctx;
    if (r->close_out)
        fclose(r->out);
    free(r);
}

static const struct mx_reporter_ops text_ops = {
    .wants_text = true,
    .event = text_event,
    .finish = text_finish,
    .free = text_free,
};

bool mx_report_text_add(struct mx_sink *s, FILE *out, bool close_out, bool color)
{
    struct text_rep *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->sink = s;
    r->out = out;
    r->close_out = close_out;
    r->color = color;
    if (!mx_sink_add(s, &text_ops, r)) {
        free(r);
        return false;
    }
    return true;
}
