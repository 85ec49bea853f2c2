/* report_json.c - NDJSON reporter: one JSON object (RFC 8259) per line per event, to a file (output/json.c writes it). */
#include "output/report.h"

#include "output/json.h"

#include <stdlib.h>

struct json_rep {
    FILE *out;
    bool close_out;
    bool flush_each; /* fflush after every record (live capture) */
    struct mx_json w;
};

static bool json_write(void *ud, const void *p, size_t n)
{
    struct json_rep *r = ud;
    return fwrite(p, 1, n, r->out) == n;
}

static void json_event(void *ctx, const struct mx_event *e)
{
    struct json_rep *r = ctx;
    if (mx_json_record(&r->w, e) && r->flush_each && fflush(r->out) != 0)
        r->w.failed = true;
}

static bool json_finish(void *ctx)
{
    struct json_rep *r = ctx;
    if (fflush(r->out) != 0)
        r->w.failed = true;
    return !r->w.failed;
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

bool mx_report_json_add_opts(struct mx_sink *s, FILE *out, bool close_out, const struct mx_json_opts *o)
{
    struct json_rep *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->out = out;
    r->close_out = close_out;
    mx_json_init(&r->w, json_write, r);
    if (o) {
        r->flush_each = o->flush_each;
        if (!mx_json_set_sensor(&r->w, o->sensor))
            goto fail;
    }
    if (!mx_sink_add(s, &json_ops, r))
        goto fail;
    return true;
fail:
    free(r);
    return false;
}

bool mx_report_json_add(struct mx_sink *s, FILE *out, bool close_out)
{
    return mx_report_json_add_opts(s, out, close_out, NULL);
}
