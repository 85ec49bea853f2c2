/* failures.c - mxray --failures: one block per failed recipient, from the smtp.transaction
 * and lmtp.transaction records, with the step, the reply, what its codes mean and the likely
 * cause. */
#include "dissectors/findings/failures.h"

#include "core/idmap.h"
#include "dissectors/mail/proxy.h"
#include "dissectors/smtp/diagnosis.h"
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

static struct mx_slice member_str(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    for (const struct mx_ev_field *x = mx_ev_first(e, obj); x; x = mx_ev_next(e, x))
        if (x->key && !strcmp(x->key, key) && x->kind == MX_EV_STR)
            return mx_ev_field_str(e, x);
    return mx_slice_make("", 0);
}

/* The object obj holds under key, or NULL. */
static const struct mx_ev_field *member_obj(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    for (const struct mx_ev_field *x = mx_ev_first(e, obj); x; x = mx_ev_next(e, x))
        if (x->key && !strcmp(x->key, key) && x->kind == MX_EV_OBJ)
            return x;
    return NULL;
}

/* A transaction record: SMTP's, or LMTP's (the same fields, RFC 2033). */
static bool is_txn(const char *type)
{
    return !strcmp(type, "smtp.transaction") || !strcmp(type, "lmtp.transaction");
}

static int64_t member_int(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    for (const struct mx_ev_field *x = mx_ev_first(e, obj); x; x = mx_ev_next(e, x))
        if (x->key && !strcmp(x->key, key) && (x->kind == MX_EV_INT || x->kind == MX_EV_UINT))
            return x->kind == MX_EV_INT ? x->v.i : (int64_t)x->v.u;
    return 0;
}

static void member_frames(const struct mx_event *e, const struct mx_ev_field *obj, uint64_t *a, uint64_t *b)
{
    *a = *b = 0;
    for (const struct mx_ev_field *x = mx_ev_first(e, obj); x; x = mx_ev_next(e, x)) {
        if (!x->key || strcmp(x->key, "frames"))
            continue;
        const struct mx_ev_field *y = mx_ev_first(e, x);
        *a = *b = y ? y->v.u : 0;
        if ((y = mx_ev_next(e, y)))
            *b = y->v.u;
    }
}

/* One block: the recipient, the envelope, the step, the reply, its meaning and cause. */
static void block(struct failures *f, const struct mx_event *e, struct mx_slice rcpt, const struct mx_ev_field *why,
                  const char *outcome, const char *step, uint64_t fa, uint64_t fb)
{
    char ts[40] = "";
    if (!fa) {
        const struct mx_ev_field *tf = mx_ev_get(e, "frames");
        const struct mx_ev_field *x = mx_ev_first(e, tf);
        fa = fb = x ? x->v.u : 0;
        if ((x = mx_ev_next(e, x)))
            fb = x->v.u;
    }
    if (e->ts != MX_TIME_NONE)
        mx_time_iso(e->ts, ts, sizeof(ts));
    const char *c = f->color ? (strcmp(outcome, "deferred") ? "\033[1;31m" : "\033[1;33m") : "";
    fprintf(f->out, "%s%s%s  <", c, !strcmp(outcome, "deferred") ? "DEFERRED" : "FAILED", f->color ? "\033[0m" : "");
    mx_fput_escaped(f->out, rcpt);
    fprintf(f->out, ">  flow %" PRIu64 ", frames %" PRIu64, e->flow, fa);
    if (fb != fa)
        fprintf(f->out, "-%" PRIu64, fb);
    fprintf(f->out, "  %s\n", ts);
    struct mx_slice from = mx_ev_get_str(e, "mailfrom");
    fputs("  from     <", f->out);
    mx_fput_escaped(f->out, from);
    fprintf(f->out, ">  (transaction %" PRId64 ")\n", mx_ev_get_int(e, "trans_depth", 0));
    const char *via = mx_idmap_get(&f->via, e->flow);
    if (via)
        fprintf(f->out, "  %-9s%s via the proxy (the flow's TCP client)\n", "client", via);
    line(f, "step", step ? mx_slice_make(step, strlen(step)) : member_str(e, why, "step"));
    int64_t code = member_int(e, why, "code");
    if (code) {
        char buf[64];
        struct mx_slice enh = member_str(e, why, "enhanced");
        snprintf(buf, sizeof(buf), "%" PRId64 "%s%.*s ", code, enh.len ? " " : "", (int)enh.len, (const char *)enh.ptr);
        fprintf(f->out, "  %-9s%s", "reply", buf);
        mx_fput_escaped(f->out, member_str(e, why, "text"));
        fputc('\n', f->out);
        line(f, "means", member_str(e, why, "meaning"));
        line(f, "", member_str(e, why, "enhanced_meaning"));
    }
    line(f, "cause", member_str(e, why, "cause"));
    fputc('\n', f->out);
    f->blocks++;
}

/* The transaction failed as a whole: it has a failure, and was not reset. */
static bool txn_failed(const struct mx_event *e)
{
    struct mx_slice disp = mx_ev_get_str(e, "disposition");
    return mx_ev_get(e, "failure") && !(disp.len == 5 && !memcmp(disp.ptr, "reset", 5));
}

/* A recipient refused at RCPT, for good or for now. */
static bool rcpt_refused(struct mx_slice out)
{
    return out.len == 8 && (!memcmp(out.ptr, "rejected", 8) || !memcmp(out.ptr, "deferred", 8));
}

/* LMTP (RFC 2033 §4.2): a recipient accepted at RCPT whose reply after the data was not a
 * delivery (refused, deferred, or none came). */
static bool delivery_failed(const struct mx_event *e, const struct mx_ev_field *r)
{
    const struct mx_ev_field *d = member_obj(e, r, "delivery");
    struct mx_slice out = d ? member_str(e, d, "outcome") : mx_slice_make("", 0);
    return d && !(out.len == 8 && !memcmp(out.ptr, "accepted", 8));
}

bool mx_failures_failed(const struct mx_event *e)
{
    if (!is_txn(e->type))
        return false;
    if (txn_failed(e))
        return true;
    const struct mx_ev_field *rs = mx_ev_get(e, "recipients");
    for (const struct mx_ev_field *r = mx_ev_first(e, rs); r; r = mx_ev_next(e, r))
        if (rcpt_refused(member_str(e, r, "outcome")) || delivery_failed(e, r))
            return true;
    return false;
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
    if (!is_txn(e->type))
        return;
    struct mx_slice disp = mx_ev_get_str(e, "disposition");
    const struct mx_ev_field *fail = mx_ev_get(e, "failure");
    bool failed = txn_failed(e);
    const struct mx_ev_field *rs = mx_ev_get(e, "recipients");
    bool any = false;
    for (const struct mx_ev_field *r = mx_ev_first(e, rs); r; r = mx_ev_next(e, r)) {
        struct mx_slice out = member_str(e, r, "outcome"), addr = member_str(e, r, "addr");
        uint64_t a, b;
        member_frames(e, r, &a, &b);
        any = true;
        const struct mx_ev_field *dl = member_obj(e, r, "delivery");
        if (rcpt_refused(out)) {
            /* Refused at RCPT: the recipient object holds its own reply, meaning and cause. */
            block(f, e, addr, r, out.ptr[0] == 'd' ? "deferred" : "rejected", "RCPT", a, b);
        } else if (dl) {
            /* LMTP: its own reply after the data decides (RFC 2033 §4.2); none came: the
             * transaction's failure says why. */
            struct mx_slice dout = member_str(e, dl, "outcome");
            const char *step = mx_ev_get(e, "bdat_chunks") ? "BDAT" : "(end of data)";
            if (dout.len == 8 && !memcmp(dout.ptr, "accepted", 8))
                continue;
            if (rcpt_refused(dout)) {
                member_frames(e, dl, &a, &b);
                block(f, e, addr, dl, dout.ptr[0] == 'd' ? "deferred" : "rejected", step, a, b);
            } else if (fail) {
                block(f, e, addr, fail, "rejected", step, a, b);
            }
        } else if (failed) {
            /* Accepted at RCPT, then lost with the transaction: its deciding reply's frame. */
            uint64_t fa, fb;
            member_frames(e, fail, &fa, &fb);
            block(f, e, addr, fail, disp.len == 8 && !memcmp(disp.ptr, "deferred", 8) ? "deferred" : "rejected", NULL,
                  fa ? fa : a, fa ? fb : b);
        }
    }
    if (!any && failed)
        block(f, e, mx_slice_make("(no recipient reached)", 22), fail, "rejected", NULL, 0, 0);
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
