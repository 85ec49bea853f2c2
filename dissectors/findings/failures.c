/* failures.c - mxray --failures: one block per `failure` record (failure.h), with the
 * step, the reply, what its codes mean and the likely cause. */
#include "dissectors/findings/failures.h"

#include "core/idmap.h"
#include "dissectors/mail/proxy.h"
#include "event/event.h"
#include "event/text.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct failures {
    FILE *out;
    bool color;
    uint64_t blocks;
    struct mx_idmap via; /* flows behind a PROXY header: the original client (malloc'd text), until the flow ends */
};

static void line(struct failures *f, const char *label, struct mx_slice v)
{
    if (!v.len)
        return;
    fprintf(f->out, "  %-9s", label);
    mx_fput_escaped(f->out, v);
    fputc('\n', f->out);
}

static bool is(struct mx_slice s, const char *lit)
{
    return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len);
}

/* One block per failure record: what failed, where, the reply, its meaning and cause. */
static void block(struct failures *f, const struct mx_event *e)
{
    char ts[40] = "";
    mx_frame_t fa = 0, fb = 0;
    const struct mx_ev_field *x = mx_ev_first(e, mx_ev_get(e, "frames"));
    fa = fb = x ? x->v.u : 0;
    if ((x = mx_ev_next(e, x)))
        fb = x->v.u;
    if (e->ts != MX_TIME_NONE)
        mx_time_iso(e->ts, ts, sizeof(ts));
    bool temporary = mx_ev_get_int(e, "temporary", 0) != 0;
    struct mx_slice kind = mx_ev_get_str(e, "kind"), step = mx_ev_get_str(e, "step");
    struct mx_slice rcpt = mx_ev_get_str(e, "recipient"), user = mx_ev_get_str(e, "user");
    const char *c = f->color ? (temporary ? "\033[1;33m" : "\033[1;31m") : "";
    fprintf(f->out, "%s%s%s  ", c, temporary ? "DEFERRED" : "FAILED", f->color ? "\033[0m" : "");
    if (rcpt.len) {
        fputc('<', f->out);
        mx_fput_escaped(f->out, rcpt);
        fputc('>', f->out);
    } else if (user.len) {
        fputs("login ", f->out);
        mx_fput_escaped(f->out, user);
    } else if (is(kind, "message_refused") || is(kind, "transaction_unfinished")) {
        fputs("(no recipient reached)", f->out);
    } else {
        mx_fput_escaped(f->out, step.len ? step : kind);
    }
    fprintf(f->out, "  flow %" PRIu64 ", frames %" PRIu64, e->flow, fa);
    if (fb != fa)
        fprintf(f->out, "-%" PRIu64, fb);
    fprintf(f->out, "  %s\n", ts);
    fputs("  kind     ", f->out);
    mx_fput_escaped(f->out, kind);
    fputs(" (", f->out);
    mx_fput_escaped(f->out, mx_ev_get_str(e, "proto"));
    fputs(", ", f->out);
    mx_fput_escaped(f->out, mx_ev_get_str(e, "severity"));
    fputs(")\n", f->out);
    if (mx_ev_get(e, "mailfrom")) {
        fputs("  from     <", f->out);
        mx_fput_escaped(f->out, mx_ev_get_str(e, "mailfrom"));
        fprintf(f->out, ">  (transaction %" PRId64 ")\n", mx_ev_get_int(e, "trans_depth", 0));
    }
    struct mx_slice rep = mx_ev_get_str(e, "reporting_mta");
    if (rep.len) {
        fputs("  reported by ", f->out);
        mx_fput_escaped(f->out, rep);
        fputs(" (a delivery status notification)\n", f->out);
    }
    if (mx_ev_get(e, "original")) {
        /* A bounce: the transaction that sent the original. */
        mx_frame_t oa = (mx_frame_t)mx_ev_get_int(e, "original.frames.0", 0);
        fprintf(f->out, "  %-9sflow %" PRId64 ", transaction %" PRId64 ", frame %" PRIu64, "original",
                mx_ev_get_int(e, "original.flow", 0), mx_ev_get_int(e, "original.trans_depth", 0), oa);
        struct mx_slice q = mx_ev_get_str(e, "original.queue_id");
        if (q.len) {
            fputs(", queued as ", f->out);
            mx_fput_escaped(f->out, q);
        }
        fputc('\n', f->out);
    }
    const char *via = mx_idmap_get(&f->via, e->flow);
    if (via)
        fprintf(f->out, "  %-9s%s via the proxy (the flow's TCP client)\n", "client", via);
    line(f, "step", step);
    struct mx_slice status = mx_ev_get_str(e, "reply.status");
    if (status.len) {
        struct mx_slice enh = mx_ev_get_str(e, "reply.enhanced");
        fprintf(f->out, "  %-9s", "reply");
        mx_fput_escaped(f->out, status);
        if (enh.len) {
            fputc(' ', f->out);
            mx_fput_escaped(f->out, enh);
        }
        fputc(' ', f->out);
        mx_fput_escaped(f->out, mx_ev_get_str(e, "reply.text"));
        fputc('\n', f->out);
        line(f, "means", mx_ev_get_str(e, "reply.meaning"));
        line(f, "", mx_ev_get_str(e, "reply.enhanced_meaning"));
    }
    line(f, "cause", mx_ev_get_str(e, "cause"));
    fputc('\n', f->out);
    f->blocks++;
}

static void failures_event(void *ctx, const struct mx_event *e)
{
    struct failures *f = ctx;
    char c[64];
    if (!strcmp(e->type, "proxy") && e->flow && mx_proxy_client_of(e, c, sizeof(c))) {
        char *v = strdup(c);
        free(mx_idmap_take(&f->via, e->flow));
        if (v && !mx_idmap_put(&f->via, e->flow, v))
            free(v); /* out of memory: the block names no original client */
        return;
    }
    if (!strcmp(e->type, "flow")) {
        free(mx_idmap_take(&f->via, e->flow));
        return;
    }
    if (!strcmp(e->type, "failure"))
        block(f, e);
}

static bool failures_finish(void *ctx)
{
    struct failures *f = ctx;
    if (!f->blocks)
        fputs("No failed delivery in the capture.\n", f->out);
    return fflush(f->out) == 0;
}

static void failures_free(void *ctx)
{
    struct failures *f = ctx;
    for (size_t i = 0; i < f->via.cap; i++)
        if (f->via.slot[i].id)
            free(f->via.slot[i].val);
    mx_idmap_free(&f->via);
    free(f);
}

static const struct mx_reporter_ops failures_ops = {
    .event = failures_event,
    .finish = failures_finish,
    .free = failures_free,
};

bool mx_failures_add(struct mx_sink *s, FILE *out, bool color)
{
    struct failures *f = calloc(1, sizeof(*f));
    if (!f)
        return false;
    f->out = out;
    f->color = color;
    if (!mx_sink_add(s, &failures_ops, f)) {
        free(f);
        return false;
    }
    return true;
}
