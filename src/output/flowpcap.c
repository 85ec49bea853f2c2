/* flowpcap.c - `--write-flows DIR`: the sessions to write are noted from the records (first
 * pass, the run), then their packets are copied from a second read of the files. */
#include "output/flowpcap.h"

#include "capture/decode.h"
#include "capture/input.h"
#include "core/idmap.h"
#include "event/text.h"
#include "output/streams.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A session to write. */
struct session {
    uint64_t flow;
    struct mx_addr cli, srv;
    uint16_t cport, sport;
    mx_frame_t first, last;
    struct mx_pcap_out *out; /* while its frames are read */
    int linktype;            /* of its file; packets of another are left out */
    bool skipped;            /* too many open at once: not written */
};

struct mx_flowpcap {
    char dir[1024]; /* escaped, for messages */
    int dirfd;
    bool failed_only;
    struct mx_idmap failed; /* flows with a failure, until their flow record */
    struct session s[MX_FLOWPCAP_MAX_SESSIONS];
    size_t n;
    uint64_t more; /* sessions past MX_FLOWPCAP_MAX_SESSIONS */
    bool oom;      /* a failure could not be noted */
};

/* The text of a string field as an address. */
static bool field_addr(const struct mx_event *e, const char *key, struct mx_addr *a)
{
    struct mx_slice t = mx_ev_get_str(e, key);
    char text[64];
    if (t.len >= sizeof(text))
        return false;
    memcpy(text, t.ptr, t.len);
    text[t.len] = '\0';
    memset(a, 0, sizeof(*a));
    a->family = strchr(text, ':') ? 6 : 4;
    return inet_pton(a->family == 6 ? AF_INET6 : AF_INET, text, a->b) == 1;
}

static void note_event(void *ctx, const struct mx_event *e)
{
    struct mx_flowpcap *fp = ctx;
    if (!e->flow)
        return;
    if (fp->failed_only && !strcmp(e->type, "failure") && !mx_idmap_put(&fp->failed, e->flow, (void *)1))
        fp->oom = true;
    if (strcmp(e->type, "flow") || (fp->failed_only && !mx_idmap_take(&fp->failed, e->flow)))
        return;
    if (fp->n == MX_FLOWPCAP_MAX_SESSIONS) {
        fp->more++;
        return;
    }
    struct session *s = &fp->s[fp->n];
    memset(s, 0, sizeof(*s));
    const struct mx_ev_field *fr = mx_ev_first(e, mx_ev_get(e, "frames"));
    s->flow = e->flow;
    s->first = s->last = fr ? fr->v.u : 0;
    if (fr && (fr = mx_ev_next(e, fr)))
        s->last = fr->v.u;
    s->cport = (uint16_t)mx_ev_get_int(e, "client_port", 0);
    s->sport = (uint16_t)mx_ev_get_int(e, "server_port", 0);
    if (s->first && field_addr(e, "client", &s->cli) && field_addr(e, "server", &s->srv))
        fp->n++;
}

static void note_free(void *ctx)
{
    struct mx_flowpcap *fp = ctx;
    for (size_t i = 0; i < fp->n; i++)
        if (fp->s[i].out)
            mx_pcap_out_close(fp->s[i].out);
    if (fp->dirfd >= 0)
        close(fp->dirfd);
    mx_idmap_free(&fp->failed);
    free(fp);
}

static const struct mx_reporter_ops note_ops = {
    .event = note_event,
    .free = note_free,
};

struct mx_flowpcap *mx_flowpcap_new(struct mx_sink *s, const char *dir, bool failed_only, char *err, size_t errlen)
{
    struct mx_flowpcap *fp = calloc(1, sizeof(*fp));
    if (!fp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mx_text_escape(dir, fp->dir, sizeof(fp->dir));
    fp->failed_only = failed_only;
    fp->dirfd = mx_outdir_open(dir, err, errlen);
    if (fp->dirfd < 0) {
        free(fp);
        return NULL;
    }
    if (!mx_sink_add(s, &note_ops, fp)) {
        note_free(fp);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return fp;
}

static int by_first(const void *a, const void *b)
{
    const struct session *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Whether the segment p belongs to session s (either direction). */
static bool of_session(const struct session *s, const struct mx_packet *p)
{
    if (p->sport == s->cport && p->dport == s->sport && mx_addr_eq(&p->src, &s->cli) && mx_addr_eq(&p->dst, &s->srv))
        return true;
    return p->sport == s->sport && p->dport == s->cport && mx_addr_eq(&p->src, &s->srv) && mx_addr_eq(&p->dst, &s->cli);
}

/* The second pass's state. */
struct pass {
    struct mx_flowpcap *fp;
    struct mx_decoder *dec;
    size_t next; /* the next session to start, in first-frame order */
    struct session *open[MX_FLOWPCAP_MAX_OPEN];
    size_t n_open;
    uint64_t bytes, written, skipped, errors;
    bool full;      /* MX_FLOWPCAP_MAX_BYTES reached */
    mx_frame_t end; /* the last frame of any session: the files are read no further */
};

static void session_end(struct pass *ps, size_t i)
{
    struct session *s = ps->open[i];
    if (s->out && !mx_pcap_out_close(s->out))
        ps->errors++;
    s->out = NULL;
    ps->open[i] = ps->open[--ps->n_open];
}

/* Creates the session's file, named after its flow and ends. */
static void session_start(struct pass *ps, struct session *s, int linktype, FILE *msg)
{
    if (ps->n_open == MX_FLOWPCAP_MAX_OPEN) {
        s->skipped = true;
        ps->skipped++;
        return;
    }
    char c[MX_ADDR_STRLEN], v[MX_ADDR_STRLEN], cn[MX_ADDR_STRLEN], vn[MX_ADDR_STRLEN], name[2 * MX_ADDR_STRLEN + 48];
    mx_addr_for_name(mx_addr_str(&s->cli, c, sizeof(c)), cn, sizeof(cn));
    mx_addr_for_name(mx_addr_str(&s->srv, v, sizeof(v)), vn, sizeof(vn));
    snprintf(name, sizeof(name), "flow%" PRIu64 "-%s.%u-%s.%u.pcap", s->flow, cn, s->cport, vn, s->sport);
    char err[512] = "";
    int fd = mx_outdir_create(ps->fp->dirfd, name);
    if (fd < 0)
        snprintf(err, sizeof(err), "%s", strerror(errno));
    else
        s->out = mx_pcap_out_new(fd, linktype, err, sizeof(err));
    if (!s->out) {
        if (msg && !ps->errors)
            fprintf(msg, "mxray: --write-flows: %s/%s: %s\n", ps->fp->dir, name, err);
        ps->errors++;
        return;
    }
    s->linktype = linktype;
    ps->written++;
    ps->open[ps->n_open++] = s;
}

/* One packet of the run, numbered `frame`. */
static void pass_packet(struct pass *ps, struct mx_raw_packet *raw, FILE *msg)
{
    for (size_t i = ps->n_open; i-- > 0;)
        if (ps->open[i]->last < raw->frame)
            session_end(ps, i);
    struct mx_flowpcap *fp = ps->fp;
    while (ps->next < fp->n && fp->s[ps->next].first <= raw->frame)
        session_start(ps, &fp->s[ps->next++], raw->linktype, msg);
    struct mx_packet p;
    uint64_t bits = 0;
    if (!ps->n_open || mx_decode(ps->dec, raw, &p, NULL, &bits) != MX_DECODE_TCP)
        return;
    for (size_t i = 0; i < ps->n_open; i++) {
        struct session *s = ps->open[i];
        if (raw->linktype != s->linktype || !of_session(s, &p))
            continue;
        if (ps->bytes + 16 + raw->caplen > MX_FLOWPCAP_MAX_BYTES) {
            ps->full = true;
            return;
        }
        ps->bytes += 16 + raw->caplen;
        mx_pcap_out_write(s->out, raw);
        return;
    }
}

/* Reads one file again; false when it cannot be opened. */
static bool pass_file(struct pass *ps, const char *path, const char *bpf, mx_frame_t *frame, FILE *msg)
{
    char err[512];
    struct mx_input *in = mx_input_open_file(path, err, sizeof(err));
    if (!in)
        return false;
    if (bpf && !mx_input_filter(in, bpf, err, sizeof(err))) {
        in->ops->close(in);
        return false;
    }
    for (;;) {
        struct mx_raw_packet raw;
        uint64_t filtered = in->filtered;
        enum mx_input_status st = in->ops->next(in, &raw);
        *frame += in->filtered - filtered; /* -f passed over them; numbered all the same */
        if (st != MX_INPUT_PACKET || *frame >= ps->end || ps->full)
            break;
        raw.frame = ++*frame;
        pass_packet(ps, &raw, msg);
    }
    in->ops->close(in);
    return true;
}

bool mx_flowpcap_write(struct mx_flowpcap *fp, char *const *files, int n_files, const char *bpf, FILE *msg)
{
    struct pass ps = { .fp = fp };
    bool ok = !fp->oom;
    qsort(fp->s, fp->n, sizeof(fp->s[0]), by_first);
    struct mx_defrag_limits lim;
    memset(&lim, 0, sizeof(lim)); /* the defaults */
    ps.dec = fp->n ? mx_decoder_new(&lim) : NULL;
    if (fp->n && !ps.dec)
        ok = false;
    for (size_t i = 0; i < fp->n; i++)
        if (fp->s[i].last > ps.end)
            ps.end = fp->s[i].last;
    mx_frame_t frame = 0;
    for (int i = 0; ps.dec && i < n_files && !ps.full; i++)
        if (!pass_file(&ps, files[i], bpf, &frame, msg))
            ok = false; /* it could be read once: say the run failed */
    while (ps.n_open)
        session_end(&ps, ps.n_open - 1);
    mx_decoder_free(ps.dec);
    if (ps.errors)
        ok = false;
    if (msg) {
        fprintf(msg, "mxray: --write-flows: %" PRIu64 " session%s written to %s", ps.written,
                ps.written == 1 ? "" : "s", fp->dir);
        if (!fp->n && !fp->more)
            fputs(fp->failed_only ? " (no failed session)" : " (no session chosen)", msg);
        fputc('\n', msg);
        if (fp->more)
            fprintf(msg, "mxray: --write-flows: %" PRIu64 " more sessions not written (at most %d)\n", fp->more,
                    MX_FLOWPCAP_MAX_SESSIONS);
        if (ps.skipped)
            fprintf(msg, "mxray: --write-flows: %" PRIu64 " sessions not written (more than %d open at once)\n",
                    ps.skipped, MX_FLOWPCAP_MAX_OPEN);
        if (ps.full)
            fprintf(msg,
                    "mxray: --write-flows: stopped at %" PRIu64 " MiB written: later packets are not in the files\n",
                    MX_FLOWPCAP_MAX_BYTES >> 20);
    }
    return ok;
}
