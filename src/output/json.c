/* json.c - one record as one NDJSON line (RFC 8259), written straight from its fields: --json's and --redis's. */
#include "output/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Nesting of objects and arrays in one record; a deeper record is dropped
 * as mxray's own failure (no producer comes near it). */
#define MX_JSON_MAX_DEPTH 64

static void flush_buf(struct mx_json *r)
{
    if (r->len && !r->write(r->ud, r->buf, r->len))
        r->failed = true;
    r->len = 0;
}

static void put_slow(struct mx_json *r, const void *p, size_t n)
{
    flush_buf(r);
    if (n > sizeof(r->buf)) {
        if (!r->write(r->ud, p, n))
            r->failed = true;
        return;
    }
    memcpy(r->buf, p, n);
    r->len = n;
}

static inline void put(struct mx_json *r, const void *p, size_t n)
{
    if (n <= sizeof(r->buf) - r->len) {
        memcpy(r->buf + r->len, p, n);
        r->len += n;
    } else {
        put_slow(r, p, n);
    }
}

static inline void put_c(struct mx_json *r, char c)
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

static void put_u64(struct mx_json *r, uint64_t v)
{
    char b[20];
    char *p = u64_digits(v, b + sizeof(b));
    put(r, p, (size_t)(b + sizeof(b) - p));
}

static void put_i64(struct mx_json *r, int64_t v)
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
static void put_f6(struct mx_json *r, double d)
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
static void put_str(struct mx_json *r, const char *s, size_t n)
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

bool mx_json_record(struct mx_json *r, const struct mx_event *e)
{
    bool is_arr[MX_JSON_MAX_DEPTH]; /* what each open container is */
    bool any[MX_JSON_MAX_DEPTH];    /* it has members already: the next needs a comma */
    int depth = 0;
    /* the nesting is checked first: a record is never left half written */
    for (size_t i = 0; i < e->fields.n; i++) {
        const struct mx_ev_field *f = mx_ev_field_at(e, i);
        if (f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR) {
            if (++depth >= MX_JSON_MAX_DEPTH) {
                r->failed = true;
                return false;
            }
        } else if (f->kind == MX_EV_END && depth > 0)
            depth--;
    }
    depth = 0;
    r->len = 0;
    bool was = r->failed; /* this record's own failure is what it returns */
    r->failed = false;
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
        if (i == 0 && r->sensor) /* --sensor: right after "type", the first field */
            put(r, r->sensor_field, r->sensor);
    }
    while (depth > 0) {
        put_c(r, is_arr[depth] ? ']' : '}');
        depth--;
    }
    put(r, "}\n", 2);
    flush_buf(r);
    bool ok = !r->failed;
    r->failed |= was;
    return ok;
}

void mx_json_init(struct mx_json *j, bool (*write)(void *ud, const void *p, size_t n), void *ud)
{
    j->write = write;
    j->ud = ud;
    j->failed = false;
    j->sensor = 0;
    j->len = 0;
}

bool mx_json_set_sensor(struct mx_json *j, const char *name)
{
    j->sensor = 0;
    if (!name)
        return true;
    size_t n = strlen(name);
    if (n > MX_JSON_SENSOR_MAX)
        return false;
    /* built in the record buffer, which is empty between records */
    j->len = 0;
    put(j, ",\"sensor\":", 10);
    put_str(j, name, n);
    memcpy(j->sensor_field, j->buf, j->len);
    j->sensor = j->len;
    j->len = 0;
    return true;
}
