/* report_json.c - NDJSON reporter: one JSON object (RFC 8259) per line per event, written straight from its fields. */
#include "output/report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Nesting of objects and arrays in one record; a deeper record is dropped
 * as mxray's own failure (no producer comes near it). */
#define MX_JSON_MAX_DEPTH 64
/* A record is written with one fwrite when it fits this buffer (nearly all
 * do), so an interrupted run leaves whole lines; a larger one (a message of
 * 10,000 parts) goes out in pieces of this size rather than whole in memory. */
#define MX_JSON_BUF (64u << 10)

struct json_rep {
    FILE *out;
    bool close_out;
    bool failed;
    size_t len;
    char buf[MX_JSON_BUF]; /* the record being written */
};

static void flush_buf(struct json_rep *r)
{
    if (r->len && fwrite(r->buf, 1, r->len, r->out) != r->len)
        r->failed = true;
    r->len = 0;
}

static void put_slow(struct json_rep *r, const void *p, size_t n)
{
    flush_buf(r);
    if (n > sizeof(r->buf)) {
        if (fwrite(p, 1, n, r->out) != n)
            r->failed = true;
        return;
    }
    memcpy(r->buf, p, n);
    r->len = n;
}

static inline void put(struct json_rep *r, const void *p, size_t n)
{
    if (n <= sizeof(r->buf) - r->len) {
        memcpy(r->buf + r->len, p, n);
        r->len += n;
    } else {
        put_slow(r, p, n);
    }
}

static inline void put_c(struct json_rep *r, char c)
{
    if (r->len < sizeof(r->buf))
        r->buf[r->len++] = c;
    else
        put_slow(r, &c, 1);
}

/* Decimal digits of v into the end of buf[20]; returns where they start. */
static char *u64_digits(uint64_t v, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void put_u64(struct json_rep *r, uint64_t v)
{
    char b[20];
    char *p = u64_digits(v, b + sizeof(b));
    put(r, p, (size_t)(b + sizeof(b) - p));
}

static void put_i64(struct json_rep *r, int64_t v)
{
    if (v < 0) {
        put_c(r, '-');
        put_u64(r, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(r, (uint64_t)v);
    }
}

/* A double as "%.6f" writes it (times and durations to the microsecond,
 * stable in golden files), without printf where the digits are certain: a
 * positive value under 2^53 micro-units whose millionths are not near a half. */
static void put_f6(struct json_rep *r, double d)
{
    double ax = d * 1e6;
    if (ax >= 0 && ax < 9007199254740992.0) { /* negatives (rare) go to printf */
        double fl = (double)(uint64_t)ax, frac = ax - fl;
        if (frac < 0.499 || frac > 0.501) {
            uint64_t v = (uint64_t)ax + (frac > 0.5);
            char b[32];
            char *end = b + sizeof(b), *p = end;
            for (int i = 0; i < 6; i++, v /= 10)
                *--p = (char)('0' + v % 10);
            *--p = '.';
            p = u64_digits(v, p);
            put(r, p, (size_t)(end - p));
            return;
        }
    }
    char num[64];
    int n = snprintf(num, sizeof(num), "%.6f", d);
    if (n > 0)
        put(r, num, (size_t)n < sizeof(num) ? (size_t)n : sizeof(num) - 1);
}

/* A JSON string (RFC 8259 §7). The text is valid UTF-8 already (the sink
 * made it so); '"', '\\' and control characters are escaped, '/' and DEL
 * are not, as json-c writes them (the golden files were made with it). */
static void put_str(struct json_rep *r, const char *s, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    put_c(r, '"');
    size_t run = 0; /* bytes that need no escape, copied at once */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(r, s + run, i - run);
        run = i + 1;
        char e[6] = { '\\', 0 };
        size_t el = 2;
        switch (c) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = digits[c >> 4];
            e[5] = digits[c & 15];
            el = 6;
        }
        put(r, e, el);
    }
    put(r, s + run, n - run);
    put_c(r, '"');
}

/* Writes the event as one line: fields in their order, nested objects and
 * arrays as the producer opened them, no whitespace. */
static void json_event(void *ctx, const struct mx_event *e)
{
    struct json_rep *r = ctx;
    bool is_arr[MX_JSON_MAX_DEPTH]; /* what each open container is */
    bool any[MX_JSON_MAX_DEPTH];    /* it has members already: the next needs a comma */
    int depth = 0;
    /* the nesting is checked first: a record is never left half written */
    for (size_t i = 0; i < e->fields.n; i++) {
        const struct mx_ev_field *f = mx_ev_field_at(e, i);
        if (f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR) {
            if (++depth >= MX_JSON_MAX_DEPTH) {
                r->failed = true;
                return;
            }
        } else if (f->kind == MX_EV_END && depth > 0)
            depth--;
    }
    depth = 0;
    r->len = 0;
    is_arr[0] = false;
    any[0] = false;
    put_c(r, '{');
    for (size_t i = 0; i < e->fields.n; i++) {
        const struct mx_ev_field *f = mx_ev_field_at(e, i);
        if (f->kind == MX_EV_END) {
            if (depth > 0) {
                put_c(r, is_arr[depth] ? ']' : '}');
                depth--;
            }
            continue;
        }
        if (any[depth])
            put_c(r, ',');
        any[depth] = true;
        if (!is_arr[depth]) {
            /* Keys are mxray's own identifiers: nothing to escape. */
            const char *k = f->key ? f->key : "";
            put_c(r, '"');
            put(r, k, strlen(k));
            put(r, "\":", 2);
        }
        switch (f->kind) {
        case MX_EV_STR: {
            struct mx_slice s = mx_ev_field_str(e, f);
            put_str(r, (const char *)s.ptr, s.len);
            break;
        }
        case MX_EV_INT:
            put_i64(r, f->v.i);
            break;
        case MX_EV_UINT:
            put_u64(r, f->v.u);
            break;
        case MX_EV_DOUBLE:
            put_f6(r, f->v.d);
            break;
        case MX_EV_BOOL:
            if (f->v.b)
                put(r, "true", 4);
            else
                put(r, "false", 5);
            break;
        case MX_EV_NULL:
            put(r, "null", 4);
            break;
        case MX_EV_OBJ:
        case MX_EV_ARR:
            put_c(r, f->kind == MX_EV_ARR ? '[' : '{');
            depth++;
            is_arr[depth] = f->kind == MX_EV_ARR;
            any[depth] = false;
            break;
        case MX_EV_END:
            break;
        }
    }
    while (depth > 0) {
        put_c(r, is_arr[depth] ? ']' : '}');
        depth--;
    }
    put(r, "}\n", 2);
    flush_buf(r);
}

static bool json_finish(void *ctx)
{
    struct json_rep *r = ctx;
    if (fflush(r->out) != 0)
        r->failed = true;
    return !r->failed;
}

static void json_free(void *ctx)
{
    struct json_rep *r = ctx;
    if (r->close_out)
        fclose(r->out);
    free(r);
}

static const struct mx_reporter_ops json_ops = {
    .event = json_event,
    .finish = json_finish,
    .free = json_free,
};

bool mx_report_json_add(struct mx_sink *s, FILE *out, bool close_out)
{
    struct json_rep *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->out = out;
    r->close_out = close_out;
    if (!mx_sink_add(s, &json_ops, r)) {
        free(r);
        return false;
    }
    return true;
}
