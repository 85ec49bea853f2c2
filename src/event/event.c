/* event.c - the event sink: builds ordered records and hands them to every reporter. */
#include "event/event.h"

#include "event/text.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MX_SINK_MAX_REPORTERS 8
#define MX_EVENT_MAX_BYTES (16u << 20) /* one event's strings, a cap against runaway fields */

struct mx_sink {
    struct mx_event ev;
    struct {
        const struct mx_reporter_ops *ops;
        void *ctx;
    } rep[MX_SINK_MAX_REPORTERS];
    size_t n_rep;
    mx_time_t epoch;
    uint64_t count;
    uint64_t dropped; /* events that could not be stored (out of memory, past the cap) */
    bool (*keep)(void *ud, const struct mx_event *e); /* mx_sink_select */
    void *keep_ud;
    bool ended;         /* mx_sink_end was called: everything passes */
    uint64_t decrypted; /* the flow whose records come from decrypted bytes now, or 0 */
    const struct mx_deriver_ops *deriver;
    void *deriver_ctx;
    bool deriving;                 /* the deriver runs: records begin in `derived` */
    const struct mx_event *source; /* the record the deriver reads */
    struct mx_event derived;       /* a derived record, built while the one it reads stays valid */
};

struct mx_sink *mx_sink_new(void)
{
    struct mx_sink *s = calloc(1, sizeof(struct mx_sink));
    if (s) {
        mx_buf_init(&s->ev.fields, sizeof(struct mx_ev_field), 32, SIZE_MAX);
        mx_buf_init(&s->ev.arena, 1, 1024, MX_EVENT_MAX_BYTES);
        mx_buf_init(&s->derived.fields, sizeof(struct mx_ev_field), 32, SIZE_MAX);
        mx_buf_init(&s->derived.arena, 1, 1024, MX_EVENT_MAX_BYTES);
    }
    return s;
}

void mx_sink_free(struct mx_sink *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_rep; i++)
        if (s->rep[i].ops->free)
            s->rep[i].ops->free(s->rep[i].ctx);
    if (s->deriver && s->deriver->free)
        s->deriver->free(s->deriver_ctx);
    mx_buf_free(&s->ev.fields);
    mx_buf_free(&s->ev.arena);
    mx_buf_free(&s->derived.fields);
    mx_buf_free(&s->derived.arena);
    free(s);
}

bool mx_sink_add(struct mx_sink *s, const struct mx_reporter_ops *ops, void *ctx)
{
    if (s->n_rep == MX_SINK_MAX_REPORTERS)
        return false;
    s->rep[s->n_rep].ops = ops;
    s->rep[s->n_rep].ctx = ctx;
    s->n_rep++;
    s->ev.want_text |= ops->wants_text;
    s->derived.want_text = s->ev.want_text;
    return true;
}

bool mx_sink_set_deriver(struct mx_sink *s, const struct mx_deriver_ops *ops, void *ctx)
{
    if (s->deriver)
        return false;
    s->deriver = ops;
    s->deriver_ctx = ctx;
    return true;
}

void mx_sink_set_epoch(struct mx_sink *s, mx_time_t t)
{
    s->epoch = t;
}

mx_time_t mx_sink_epoch(const struct mx_sink *s)
{
    return s->epoch;
}

uint64_t mx_sink_dropped(const struct mx_sink *s)
{
    return s->dropped;
}

uint64_t mx_sink_count(const struct mx_sink *s)
{
    return s->count;
}

void mx_sink_select(struct mx_sink *s, bool (*keep)(void *ud, const struct mx_event *e), void *ud)
{
    s->keep = keep;
    s->keep_ud = ud;
}

void mx_sink_end(struct mx_sink *s)
{
    s->ended = true;
    for (size_t i = 0; i < s->n_rep; i++)
        if (s->rep[i].ops->end)
            s->rep[i].ops->end(s->rep[i].ctx, s);
}

/* The field after container-or-scalar f at the same depth. */
const struct mx_ev_field *mx_ev_next(const struct mx_event *e, const struct mx_ev_field *f)
{
    const struct mx_ev_field *end = mx_ev_field_at(e, e->fields.n);
    if (!f || f >= end)
        return NULL;
    if (f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR) {
        int depth = 0;
        do {
            if (f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR)
                depth++;
            else if (f->kind == MX_EV_END)
                depth--;
            f++;
        } while (depth > 0 && f < end);
    } else {
        f++;
    }
    return f < end && f->kind != MX_EV_END ? f : NULL;
}

const struct mx_ev_field *mx_ev_first(const struct mx_event *e, const struct mx_ev_field *f)
{
    if (!f || (f->kind != MX_EV_OBJ && f->kind != MX_EV_ARR))
        return NULL;
    f++;
    return f < mx_ev_field_at(e, e->fields.n) && f->kind != MX_EV_END ? f : NULL;
}

const struct mx_ev_field *mx_ev_get(const struct mx_event *e, const char *path)
{
    const struct mx_ev_field *f = e->fields.n ? mx_ev_field_at(e, 0) : NULL;
    if (f && f->kind == MX_EV_END)
        f = NULL;
    bool in_array = false;
    while (path && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (in_array) {
            char *endp;
            unsigned long idx = strtoul(path, &endp, 10);
            if (endp != path + n)
                return NULL;
            while (f && idx--)
                f = mx_ev_next(e, f);
        } else {
            /* the key is path's n bytes: compared up to the first difference, no
             * strlen; most keys differ in their first byte, which is compared inline */
            while (f && !(f->key && f->key[0] == path[0] && !strncmp(f->key, path, n) && f->key[n] == '\0'))
                f = mx_ev_next(e, f);
        }
        if (!f)
            return NULL;
        if (!dot)
            return f;
        in_array = f->kind == MX_EV_ARR;
        f = mx_ev_first(e, f);
        path = dot + 1;
    }
    return NULL;
}

struct mx_slice mx_ev_get_str(const struct mx_event *e, const char *path)
{
    const struct mx_ev_field *f = mx_ev_get(e, path);
    return f && f->kind == MX_EV_STR ? mx_ev_field_str(e, f) : mx_slice_make("", 0);
}

int64_t mx_ev_get_int(const struct mx_event *e, const char *path, int64_t dflt)
{
    const struct mx_ev_field *f = mx_ev_get(e, path);
    if (!f)
        return dflt;
    switch (f->kind) {
    case MX_EV_INT:
        return f->v.i;
    case MX_EV_UINT:
        return f->v.u > INT64_MAX ? INT64_MAX : (int64_t)f->v.u;
    case MX_EV_BOOL:
        return f->v.b;
    default:
        return dflt;
    }
}

bool mx_sink_summary(struct mx_sink *s, struct mx_event *ev)
{
    bool ok = true;
    for (size_t i = 0; i < s->n_rep; i++)
        if (s->rep[i].ops->summary && !s->rep[i].ops->summary(s->rep[i].ctx, ev))
            ok = false;
    return ok;
}

bool mx_sink_finish(struct mx_sink *s)
{
    bool ok = !s->dropped;
    for (size_t i = 0; i < s->n_rep; i++)
        if (s->rep[i].ops->finish && !s->rep[i].ops->finish(s->rep[i].ctx))
            ok = false;
    return ok;
}

static struct mx_ev_field *add_field(struct mx_event *e, const char *key, enum mx_ev_kind kind)
{
    if (!e->open || e->oom)
        return NULL;
    if (mx_buf_reserve(&e->fields, 1) != MX_BUF_OK) {
        e->oom = true;
        return NULL;
    }
    struct mx_ev_field *f = mx_buf_at(&e->fields, e->fields.n++);
    f->key = key;
    f->kind = kind;
    return f;
}

/* Reserves n bytes in the arena (at most MX_EVENT_MAX_BYTES in all) and
 * returns where they start, or NULL: then the event is dropped. */
static char *arena_reserve(struct mx_event *e, size_t n)
{
    if (mx_buf_reserve(&e->arena, n) != MX_BUF_OK) {
        e->oom = true;
        return NULL;
    }
    return mx_buf_at(&e->arena, e->arena.n);
}

static void add_string(struct mx_event *e, const char *key, const char *p, size_t n, bool wire)
{
    struct mx_ev_field *f = add_field(e, key, MX_EV_STR);
    if (!f)
        return;
    size_t room = wire ? n * 4 : n; /* each invalid byte may become 4 */
    if (n > MX_EVENT_MAX_BYTES) {
        e->oom = true;
        return;
    }
    char *dst = arena_reserve(e, room);
    if (!dst)
        return;
    size_t w = n;
    if (wire)
        w = mx_utf8_sanitize(mx_slice_make(p, n), dst, room);
    else if (n)
        memcpy(dst, p, n);
    f->v.s.off = (uint32_t)e->arena.n;
    f->v.s.len = (uint32_t)w;
    e->arena.n += w;
}

/* The keys mx_event_begin_flow writes right after "flow". */
static const char *const flow_keys[] = { "community_id", "client", "client_port", "server", "server_port" };

/* Whether record src opens with a flow's fields (as mx_event_begin_flow writes them). */
static bool has_flow_fields(const struct mx_event *src)
{
    if (src->fields.n < 2 + MX_ARRAY_LEN(flow_keys))
        return false;
    for (size_t i = 0; i < MX_ARRAY_LEN(flow_keys); i++) {
        const struct mx_ev_field *f = mx_ev_field_at(src, 2 + i);
        bool port = i == 2 || i == 4;
        if (!f->key || strcmp(f->key, flow_keys[i]) || f->kind != (port ? MX_EV_UINT : MX_EV_STR))
            return false;
    }
    return true;
}

struct mx_event *mx_event_begin(struct mx_sink *s, const char *type, uint64_t flow, mx_time_t ts)
{
    return mx_event_begin_flow(s, type, flow, NULL, ts);
}

struct mx_event *mx_event_begin_flow(struct mx_sink *s, const char *type, uint64_t flow, const struct mx_ev_flow *fl,
                                     mx_time_t ts)
{
    struct mx_event *e = s->deriving ? &s->derived : &s->ev;
    e->type = type;
    e->flow = flow;
    e->ts = ts;
    e->dir = -1;
    e->fields.n = 0;
    e->arena.n = 0;
    e->text_len = 0;
    e->tone = MX_TONE_NONE;
    e->depth = 0;
    e->oom = false;
    e->open = true;
    mx_ev_str(e, "type", type);
    if (flow)
        mx_ev_uint(e, "flow", flow);
    if (flow && fl) {
        mx_ev_str(e, "community_id", fl->community_id);
        mx_ev_str(e, "client", fl->client);
        mx_ev_uint(e, "client_port", fl->client_port);
        mx_ev_str(e, "server", fl->server);
        mx_ev_uint(e, "server_port", fl->server_port);
    } else if (flow && s->deriving && s->source && s->source->flow == flow && has_flow_fields(s->source)) {
        /* a derived record of the same flow: the fields of the record it reads */
        for (size_t i = 0; i < MX_ARRAY_LEN(flow_keys); i++) {
            const struct mx_ev_field *f = mx_ev_field_at(s->source, 2 + i);
            if (f->kind == MX_EV_STR) {
                struct mx_slice v = mx_ev_field_str(s->source, f);
                add_string(e, f->key, (const char *)v.ptr, v.len, false);
            } else {
                mx_ev_uint(e, f->key, f->v.u);
            }
        }
    }
    if (ts != MX_TIME_NONE)
        mx_ev_time(e, "ts", ts);
    if (flow && flow == s->decrypted && !s->deriving) /* a derived record reads records, not bytes */
        mx_ev_bool(e, "decrypted", true);
    return e;
}

uint64_t mx_sink_decrypted(struct mx_sink *s, uint64_t flow)
{
    uint64_t was = s->decrypted;
    s->decrypted = flow;
    return was;
}

void mx_event_emit(struct mx_sink *s, struct mx_event *e)
{
    while (e->depth > 0)
        mx_ev_end(e);
    e->open = false;
    if (!e->oom)
        mx_sink_deliver(s, e);
    else
        s->dropped++; /* never silently: the run fails (mx_sink_finish) */
}

void mx_sink_deliver(struct mx_sink *s, const struct mx_event *e)
{
    if (s->keep && !s->ended && !s->keep(s->keep_ud, e))
        return;
    if (s->deriver && !s->deriving && s->deriver->before) {
        s->deriving = true;
        s->source = e;
        s->deriver->before(s->deriver_ctx, s, e);
        s->deriving = false;
    }
    for (size_t i = 0; i < s->n_rep; i++)
        s->rep[i].ops->event(s->rep[i].ctx, e);
    s->count++;
    if (s->deriver && !s->deriving) {
        s->deriving = true;
        s->source = e;
        s->deriver->event(s->deriver_ctx, s, e);
        s->deriving = false;
    }
}

bool mx_sink_wants_text(const struct mx_sink *s)
{
    return s->ev.want_text;
}

void mx_sink_set_wants_text(struct mx_sink *s, bool v)
{
    s->ev.want_text = v;
    s->derived.want_text = v;
}

/* A packed event: this header, the fields, then the arena. Keys and the
 * type are string literals, so their pointers stay valid in any thread. */
struct packed_event {
    const char *type;
    uint64_t flow;
    mx_time_t ts;
    int32_t dir, tone;
    uint32_t n_fields, arena_len, text_off, text_len;
};

size_t mx_event_packed_size(const struct mx_event *e)
{
    return sizeof(struct packed_event) + e->fields.n * sizeof(struct mx_ev_field) + e->arena.n;
}

void mx_event_pack(const struct mx_event *e, void *dst)
{
    struct packed_event *p = dst;
    p->type = e->type;
    p->flow = e->flow;
    p->ts = e->ts;
    p->dir = e->dir;
    p->tone = e->tone;
    p->n_fields = (uint32_t)e->fields.n;
    p->arena_len = (uint32_t)e->arena.n;
    p->text_off = e->text_off;
    p->text_len = e->text_len;
    struct mx_ev_field *f = (struct mx_ev_field *)(p + 1);
    if (e->fields.n)
        memcpy(f, e->fields.p, e->fields.n * sizeof(*f));
    if (e->arena.n)
        memcpy(f + e->fields.n, e->arena.p, e->arena.n);
}

void mx_event_unpack(void *src, struct mx_event *e)
{
    struct packed_event *p = src;
    memset(e, 0, sizeof(*e));
    e->type = p->type;
    e->flow = p->flow;
    e->ts = p->ts;
    e->dir = p->dir;
    e->tone = p->tone;
    /* Views of the packed bytes: read, never grown nor freed. */
    struct mx_ev_field *f = (struct mx_ev_field *)(p + 1);
    e->fields = (struct mx_buf){
        .p = f, .n = p->n_fields, .cap = p->n_fields, .size = sizeof(*f), .first = 1, .max = p->n_fields
    };
    e->arena = (struct mx_buf){
        .p = f + p->n_fields, .n = p->arena_len, .cap = p->arena_len, .size = 1, .first = 1, .max = p->arena_len
    };
    e->text_off = p->text_off;
    e->text_len = p->text_len;
    e->want_text = p->text_len > 0;
}

void mx_ev_dir(struct mx_event *e, enum mx_dir d)
{
    e->dir = (int)d;
    mx_ev_str(e, "dir", d == MX_DIR_C2S ? "c2s" : "s2c");
}

void mx_ev_str(struct mx_event *e, const char *key, const char *s)
{
    add_string(e, key, s, strlen(s), false);
}

void mx_ev_wire(struct mx_event *e, const char *key, struct mx_slice s)
{
    add_string(e, key, (const char *)s.ptr, s.len, true);
}

void mx_ev_cut3(struct mx_event *e, const char *len_key, const char *cut_key, uint64_t shown_len, uint64_t wire_len)
{
    if (wire_len <= shown_len)
        return;
    mx_ev_uint(e, len_key, wire_len);
    mx_ev_bool(e, cut_key, true);
}

void mx_ev_wire_cut3(struct mx_event *e, const char *key, const char *len_key, const char *cut_key,
                     struct mx_slice shown, uint64_t wire_len)
{
    mx_ev_wire(e, key, shown);
    mx_ev_cut3(e, len_key, cut_key, shown.len, wire_len);
}

/* Whether key ends with suffix. */
static bool key_ends(const char *key, const char *suffix, size_t *stem)
{
    size_t n = key ? strlen(key) : 0, m = strlen(suffix);
    if (n <= m || memcmp(key + n - m, suffix, m))
        return false;
    *stem = n - m;
    return true;
}

size_t mx_ev_cut_mark(const struct mx_event *e, char *buf, size_t cap)
{
    size_t cuts = 0, n = 0, stem = 0, ls = 0;
    if (cap)
        buf[0] = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 1; i < e->fields.n; i++) {
            const struct mx_ev_field *f = mx_ev_field_at(e, i), *l = mx_ev_field_at(e, i - 1);
            bool at_least = false; /* "<key>_len_min": the text went on past what mxray reads */
            if (f->kind != MX_EV_BOOL || !f->v.b || !key_ends(f->key, "_truncated", &stem) || l->kind != MX_EV_UINT)
                continue;
            if (!key_ends(l->key, "_len", &ls) && !(at_least = key_ends(l->key, "_len_min", &ls)))
                continue;
            if (ls != stem || memcmp(l->key, f->key, stem))
                continue;
            if (pass == 0) {
                cuts++;
                continue;
            }
            char one[160];
            int w =
                snprintf(one, sizeof(one), " \xe2\x80\xa6[%.*s%scut, %s%" PRIu64 " bytes]", cuts > 1 ? (int)stem : 0,
                         f->key, cuts > 1 ? " " : "", at_least ? "at least " : "", l->v.u);
            if (w < 0 || (size_t)w >= sizeof(one) || n + (size_t)w + 1 > cap)
                break;
            memcpy(buf + n, one, (size_t)w + 1);
            n += (size_t)w;
        }
        if (!cuts)
            break;
    }
    return n;
}

void mx_ev_int(struct mx_event *e, const char *key, int64_t v)
{
    struct mx_ev_field *f = add_field(e, key, MX_EV_INT);
    if (f)
        f->v.i = v;
}

void mx_ev_uint(struct mx_event *e, const char *key, uint64_t v)
{
    struct mx_ev_field *f = add_field(e, key, MX_EV_UINT);
    if (f)
        f->v.u = v;
}

void mx_ev_double(struct mx_event *e, const char *key, double v)
{
    struct mx_ev_field *f = add_field(e, key, MX_EV_DOUBLE);
    if (f)
        f->v.d = v;
}

void mx_ev_bool(struct mx_event *e, const char *key, bool v)
{
    struct mx_ev_field *f = add_field(e, key, MX_EV_BOOL);
    if (f)
        f->v.b = v;
}

void mx_ev_null(struct mx_event *e, const char *key)
{
    add_field(e, key, MX_EV_NULL);
}

void mx_ev_time(struct mx_event *e, const char *key, mx_time_t t)
{
    char buf[40];
    mx_time_iso(t, buf, sizeof(buf));
    mx_ev_str(e, key, buf);
}

void mx_ev_frames(struct mx_event *e, mx_frame_t first, mx_frame_t last)
{
    if (!first)
        return;
    mx_ev_arr(e, "frames");
    mx_ev_uint(e, NULL, first);
    if (last && last != first)
        mx_ev_uint(e, NULL, last);
    mx_ev_end(e);
}

void mx_ev_obj(struct mx_event *e, const char *key)
{
    if (add_field(e, key, MX_EV_OBJ))
        e->depth++;
}

void mx_ev_arr(struct mx_event *e, const char *key)
{
    if (add_field(e, key, MX_EV_ARR))
        e->depth++;
}

void mx_ev_end(struct mx_event *e)
{
    /* An event that could not be stored is dropped: its containers close
     * all the same, or mx_event_emit would wait for them for ever. */
    if (e->depth > 0 && (add_field(e, NULL, MX_EV_END) || e->oom))
        e->depth--;
}

void mx_ev_tone(struct mx_event *e, enum mx_tone t)
{
    e->tone = (int)t;
}

void mx_ev_text(struct mx_event *e, const char *fmt, ...)
{
    if (!e->open || e->oom || !e->want_text)
        return;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *dst = arena_reserve(e, (size_t)n + 1);
    if (!dst)
        return;
    if ((size_t)n < sizeof(small)) {
        memcpy(dst, small, (size_t)n);
    } else {
        va_start(ap, fmt);
        vsnprintf(dst, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    e->text_off = (uint32_t)e->arena.n;
    e->text_len = (uint32_t)n;
    e->arena.n += (size_t)n;
}
