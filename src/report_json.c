/* report_json.c - NDJSON reporter: one JSON object per line per event, through json-c. */
#include "event.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MX_JSON_MAX_DEPTH 32

struct json_rep {
    FILE *out;
    bool close_out;
    bool failed;
};

/* Adds v under key to the container c (an object, or an array when key is NULL). */
static void put(json_object *c, const char *key, json_object *v)
{
    if (json_object_is_type(c, json_type_array))
        json_object_array_add(c, v);
    else
        json_object_object_add(c, key ? key : "", v);
}

static json_object *field_value(const struct mx_event *e, const struct mx_ev_field *f)
{
    char buf[64];
    switch (f->kind) {
    case MX_EV_STR: {
        struct mx_slice s = mx_ev_field_str(e, f);
        return json_object_new_string_len((const char *)s.ptr, (int)s.len);
    }
    case MX_EV_INT:
        return json_object_new_int64(f->v.i);
    case MX_EV_UINT:
        return json_object_new_uint64(f->v.u);
    case MX_EV_DOUBLE:
        /* Six decimals: times and durations to the microsecond, stable in golden files. */
        snprintf(buf, sizeof(buf), "%.6f", f->v.d);
        return json_object_new_double_s(f->v.d, buf);
    case MX_EV_BOOL:
        return json_object_new_boolean(f->v.b);
    case MX_EV_OBJ:
        return json_object_new_object();
    case MX_EV_ARR:
        return json_object_new_array();
    case MX_EV_NULL:
    case MX_EV_END:
        break;
    }
    return NULL;
}

static void json_event(void *ctx, const struct mx_event *e)
{
    struct json_rep *r = ctx;
    json_object *stack[MX_JSON_MAX_DEPTH];
    int depth = 0;
    stack[0] = json_object_new_object();
    if (!stack[0]) {
        r->failed = true;
        return;
    }
    for (size_t i = 0; i < e->n_fields; i++) {
        const struct mx_ev_field *f = &e->fields[i];
        if (f->kind == MX_EV_END) {
            if (depth > 0)
                depth--;
            continue;
        }
        json_object *v = field_value(e, f);
        put(stack[depth], f->key, v);
        if ((f->kind == MX_EV_OBJ || f->kind == MX_EV_ARR) && depth + 1 < MX_JSON_MAX_DEPTH)
            stack[++depth] = v;
    }
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        stack[0], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    /* One write per record, so an interrupted run leaves whole lines. */
    if (!s || fwrite(s, 1, len, r->out) != len || fputc('\n', r->out) == EOF)
        r->failed = true;
    json_object_put(stack[0]);
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
