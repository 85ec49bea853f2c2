/* report_html.c - one self-contained HTML report: an overview, then a
 * sequence diagram (inline SVG) per session, drawn from the records.
 *
 * The reporter knows no protocol: it reads the record conventions every
 * dissector follows (docs/manual.md, "Records"): a record with "dir" is an
 * arrow, its one-line text the label, "latency", "answers", "explain",
 * "state" and "frames" the details, the tone its colour; "pipelined" groups
 * commands; a "tls" record darkens the rest of the dialogue; "message"
 * records give MIME trees; "flow_start" and "flow" open and close a session;
 * "finding" and "summary" records feed the overview.
 *
 * Memory stays flat on large captures: a session is rendered when its "flow"
 * record comes and written to a temporary file; only a short index entry per
 * session stays in memory. Every count and buffer has a cap. What the open
 * sessions hold together (their rows, texts and message trees) is charged to
 * one budget, a share of --memory ("The report's memory" below).
 *
 * Wire text is escaped everywhere (HTML's five specials; invalid UTF-8,
 * control characters and bidirectional controls shown as \xNN / \uNNNN): a hostile capture
 * cannot inject markup, script or a misleading direction of text. The only
 * script is our own, at the end, and reads wire text only through the DOM
 * (textContent). */
#include "output/report.h"
#include "event/text.h"
#include "core/hash.h"
#include "core/idmap.h"
#include "core/version.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Caps. */
#define H_MAX_STEPS 2000         /* rows drawn per session; the rest counted */
#define H_STEPS_FIRST 8          /* rows a session makes room for first */
#define H_ARENA_FIRST 512        /* bytes of text a session makes room for first */
#define H_EXTRA_FIRST 1024       /* bytes of message trees a session makes room for first */
#define H_LABEL_CP 58            /* code points of an arrow's label */
#define H_FIELD_MAX 2048         /* bytes of one detail field kept */
#define H_ARENA_MAX (1u << 20)   /* text kept per session */
#define H_EXTRA_MAX (256u << 10) /* message trees per session */
#define H_FAILURES_MAX 500       /* failures listed in the overview */
#define H_LIST_MAX (2u << 20)    /* overview lists (failures, findings) */
#define H_LIST_ROWS 10000        /* sessions listed without a diagram; the rest counted */
#define H_MAX_SERVERS 4096       /* (protocol, server) pairs counted in the overview */
/* Diagrams drawn by default: sessions with failures first, then the others
 * (the first to end), shown in flow order. A browser builds about 10,000 SVG
 * rows a second, so this keeps a report of any size opening in a few
 * seconds; the rest are listed by their summary line. */
#define H_DIAGRAMS_DEFAULT 200

/* Geometry of a diagram (px). */
#define G_W 900
#define G_XC 190 /* client lifeline */
#define G_XS 650 /* server lifeline */
#define G_TOP 58 /* first row */
#define G_ROW 26

/* ---------------------------------------------------------------- buffer */

struct hbuf {
    struct mx_buf b; /* the bytes, at most their cap */
    bool full;       /* something did not fit: what comes after it is dropped */
};

/* An empty buffer of at most max bytes (0: no cap). */
static void hb_init(struct hbuf *b, size_t max)
{
    mx_buf_init(&b->b, 1, 4096, max ? max : SIZE_MAX);
    b->full = false;
}

static void hb_put(struct hbuf *b, const void *s, size_t n)
{
    if (!n || b->full)
        return;
    if (mx_buf_append(&b->b, s, n) != MX_BUF_OK)
        b->full = true;
}

/* The bytes held. */
static inline const char *hb_ptr(const struct hbuf *b)
{
    return b->b.p;
}

static inline size_t hb_len(const struct hbuf *b)
{
    return b->b.n;
}

static void hb_puts(struct hbuf *b, const char *s)
{
    hb_put(b, s, strlen(s));
}

static void hb_printf(struct hbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hb_printf(struct hbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        hb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void hb_free(struct hbuf *b)
{
    mx_buf_free(&b->b);
    b->full = false;
}

/* Escapes text for HTML text and attribute values (HTML 5 §13.1.2.6 and
 * §13.5): & < > " ' as references, and what mx_escape_char escapes for every
 * view (invalid UTF-8, control characters, the bidirectional controls of
 * Unicode TR#9 §2, so that wire text cannot reorder what is shown around
 * it) as \xNN / \uNNNN. newlines: keep '\n' as is (inside <title> and <pre>)
 * instead of \x0a. max_cp > 0 cuts the text after that many code points and
 * adds an ellipsis. */
static void hb_esc(struct hbuf *b, struct mx_slice s, size_t max_cp, bool newlines)
{
    const uint8_t *p = s.ptr;
    size_t n = s.len, cp = 0, run = 0, len;
    char tmp[MX_ESC_MAX];
    for (size_t i = 0; i < n; i += len) {
        uint8_t c = p[i];
        len = 1;
        if (max_cp && cp++ == max_cp) {
            hb_put(b, p + i - run, run);
            hb_puts(b, "\xE2\x80\xA6");
            return;
        }
        const char *rep = NULL;
        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        case '\n':
            if (newlines)
                break;
            /* fall through */
        default:
            if (mx_escape_char(p + i, n - i, tmp, &len))
                rep = tmp;
        }
        if (!rep) {
            run += len;
            continue;
        }
        hb_put(b, p + i - run, run);
        run = 0;
        hb_puts(b, rep);
    }
    hb_put(b, p + n - run, run);
}

static void hb_esc_str(struct hbuf *b, const char *s)
{
    hb_esc(b, mx_slice_make(s, strlen(s)), 0, false);
}

/* ---------------------------------------------------------------- state */

enum step_kind { ST_C2S, ST_S2C, ST_NOTE, ST_TLS };

/* One row of a diagram. Texts are kept in the session's arena as UTF-8. */
struct step {
    uint8_t kind, tone;
    bool pipelined;
    bool message; /* a "message" record (row_after) */
    mx_time_t ts;
    double latency; /* seconds, or NAN */
    mx_frame_t f0, f1;
    uint32_t label_off, label_len;
    uint32_t detail_off, detail_len;
    uint8_t server_line; /* a server line that completes no command: SL_UNTAGGED, SL_CONTINUATION, or 0 */
};

/* Server lines drawn apart from the replies that complete a command. */
enum { SL_UNTAGGED = 1, SL_CONTINUATION = 2 };

struct session {
    uint64_t id;
    char proto[16];
    char client[144], server[64]; /* client: "addr:port via proxy addr:port" behind a PROXY header */
    mx_time_t start;
    struct mx_buf steps; /* struct step, at most H_MAX_STEPS */
    uint64_t dropped;    /* rows past H_MAX_STEPS or H_ARENA_MAX */
    uint64_t starved;    /* rows not kept: the report's memory was full */
    uint64_t commands, failures;
    bool tls;
    struct hbuf arena;     /* step texts, at most H_ARENA_MAX */
    struct hbuf extra;     /* rendered message trees, at most H_EXTRA_MAX */
    uint32_t msgs_starved; /* message trees not kept: the report's memory was full */
    size_t charged;        /* bytes counted in html_rep.mem_used */
};

/* Sessions counted per (protocol, server), for the overview. */
struct tally {
    char proto[16];
    char server[64];
    uint64_t sessions, failed;
};

/* What stays of a session once it is written to the temporary file. */
struct entry {
    uint64_t id;
    uint64_t off;       /* the head, then the body, in the temporary file */
    uint32_t attrs_len; /* id="f1" data-proto=... of the session's element */
    uint32_t line_len;  /* its summary line */
    uint64_t body_len;  /* the diagram and the message trees */
    char proto[16];
    char server[64];
    bool failed;
    bool has_body; /* its diagram is in the temporary file */
    bool drawn;
    bool starved; /* its diagram lacks rows or messages: the report's memory was full */
};

struct html_rep {
    const struct mx_sink *sink;
    const char *protocols; /* what the header says the sessions are */
    FILE *out;
    bool close_out;
    bool failed;                        /* a write failed */
    FILE *tmp;                          /* rendered sessions, in the order they ended */
    struct mx_idmap open;               /* sessions not ended yet, by flow id */
    struct mx_buf idx;                  /* struct entry, one per session written */
    uint64_t sessions, sessions_failed; /* all of them */
    uint64_t unlisted;                  /* neither drawn nor listed (past H_LIST_ROWS) */
    size_t listed;                      /* without a diagram, in the list */
    struct mx_idmap by_server;          /* (protocol, server) keyed hash -> struct tally */
    struct mx_hasher *hasher;           /* its key: a capture cannot aim two pairs at one hash */
    struct mx_buf tallies;              /* struct tally *, at most H_MAX_SERVERS */
    uint64_t servers_dropped;           /* sessions of pairs past H_MAX_SERVERS */
    struct hbuf failures;               /* <li> items */
    size_t n_failures;
    uint64_t more_failures;
    struct hbuf findings[4]; /* <tr> rows, by severity (finding_rank): high first */
    size_t n_findings;
    struct hbuf summary; /* the capture's span and files */
    struct hbuf page;    /* the section being rendered */
    size_t max_diagrams;
    size_t bodies_failed, bodies_ok; /* diagrams kept in the temporary file */
    size_t mem_max, mem_used;        /* the open sessions' budget, and what they hold */
    uint64_t sessions_starved;       /* diagrams drawn without rows or messages not kept for it */
    struct hbuf scratch;             /* a message tree, rendered before it is kept */
    struct hbuf journeys;            /* the journeys (journey records): <li> items */
    size_t n_journeys;
    uint64_t more_journeys;
};

static struct step *step_at(const struct session *s, size_t i)
{
    return mx_buf_at(&s->steps, i);
}

static struct entry *entry_at(const struct html_rep *r, size_t i)
{
    return mx_buf_at(&r->idx, i);
}

static struct tally *tally_at(const struct html_rep *r, size_t i)
{
    return *(struct tally **)mx_buf_at(&r->tallies, i);
}

/* ---------------------------------------------------------------- the report's memory
 *
 * Every open session holds its rows, their texts and its message trees
 * until its "flow" record comes: on a capture with many long sessions open
 * at once, that is most of what the report holds. All open sessions
 * together are charged to one budget (mem_max: an eighth of --memory, from
 * the quarter the engine leaves for the run itself; docs/manual.md, "HTML
 * report"), besides each session's own caps. A session's buffers start
 * small and grow by doubling, each growth only within what the budget has
 * left. When a row, its text or a message tree does not fit, the session
 * keeps no later rows (a gap in the middle of a diagram would mislead more
 * than a cut end) and its diagram ends with a note that says how many rows
 * were not kept and why; JSON and the other outputs are unaffected.
 *
 * Why not spill to the temporary file instead: the rows of many sessions
 * open at once would interleave there, and each diagram would have to be
 * gathered back from scattered pieces when its session ends; and only
 * --html-diagrams sessions are drawn at all, so most of what would be
 * spilled is never read. The JSON records keep every row.
 *
 * What is not charged: the bare session (its addresses and counts, about
 * 400 bytes, kept whatever the budget so that the session is counted and
 * listed; there are at most as many as the engine has flows, and each of
 * those costs the engine more under --memory), and the fixed buffers (the
 * section being rendered, one message tree being rendered, the overview's
 * lists, the index): their caps do not grow with the number of sessions. */

#define SESSION_BYTES (sizeof(struct session) + 2 * sizeof(struct mx_idmap_slot))

static size_t session_bytes(const struct session *s)
{
    return SESSION_BYTES + mx_buf_bytes(&s->steps) + mx_buf_bytes(&s->arena.b) + mx_buf_bytes(&s->extra.b);
}

static void recharge(struct html_rep *r, struct session *s)
{
    size_t n = session_bytes(s);
    r->mem_used = r->mem_used - s->charged + n;
    s->charged = n;
}

/* Appends n elements to one of s's buffers, growing it only within what
 * the budget has left: MX_BUF_CAPPED past the buffer's own cap `own`,
 * MX_BUF_NOMEM when the budget (or the heap) has no room. */
static enum mx_buf_status charged_append(struct html_rep *r, struct session *s, struct mx_buf *b, size_t own,
                                         const void *src, size_t n)
{
    if (n > own || b->n > own - n)
        return MX_BUF_CAPPED;
    size_t room = r->mem_max > r->mem_used ? (r->mem_max - r->mem_used) / b->size : 0;
    size_t lim = b->cap + room;
    b->max = lim < own ? lim : own; /* mx_buf_grow never allocates past max */
    enum mx_buf_status st = mx_buf_append(b, src, n);
    b->max = own;
    recharge(r, s);
    return st == MX_BUF_CAPPED ? MX_BUF_NOMEM : st;
}

static void session_free(struct html_rep *r, struct session *s)
{
    if (!s)
        return;
    mx_buf_free(&s->steps);
    hb_free(&s->arena);
    hb_free(&s->extra);
    r->mem_used -= s->charged;
    free(s);
}

/* ---------------------------------------------------------------- reading records */

static struct session *session_new(struct html_rep *r, const struct mx_event *e)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    mx_buf_init(&s->steps, sizeof(struct step), H_STEPS_FIRST, H_MAX_STEPS);
    s->id = e->flow;
    s->start = e->ts;
    mx_buf_init(&s->arena.b, 1, H_ARENA_FIRST, H_ARENA_MAX);
    mx_buf_init(&s->extra.b, 1, H_EXTRA_FIRST, H_EXTRA_MAX);
    snprintf(s->proto, sizeof(s->proto), "?");
    if (!mx_idmap_put(&r->open, s->id, s)) {
        free(s);
        return NULL;
    }
    recharge(r, s);
    return s;
}

/* "addr:port" (IPv6 as [addr]:port) from a record's address fields. */
static void endpoint(char *dst, size_t cap, const struct mx_event *e, const char *addr, const char *port)
{
    char a[MX_ADDR_STRLEN + 1];
    mx_text_copy(a, sizeof(a), mx_ev_get_str(e, addr));
    int64_t p = mx_ev_get_int(e, port, 0);
    snprintf(dst, cap, strchr(a, ':') ? "[%s]:%" PRId64 : "%s:%" PRId64, a, p);
}

/* Whether a session ending now could still get a diagram (finish_session):
 * once both kinds have their max_diagrams, no open session will, and what
 * they would keep for it is not kept. */
static bool drawable(const struct html_rep *r)
{
    return r->bodies_failed < r->max_diagrams || r->bodies_ok < r->max_diagrams;
}

/* Frees what a session keeps for its diagram (it will not get one). */
static void forget_rows(struct html_rep *r, struct session *s)
{
    if (s->charged == SESSION_BYTES)
        return;
    mx_buf_free(&s->steps);
    mx_buf_free(&s->arena.b);
    mx_buf_free(&s->extra.b);
    recharge(r, s);
}

/* Whether row a goes after row b, which came later: by time, and a message
 * after the rows of its time that begin at or before its first frame (the
 * reply that started it); otherwise as they came (the text timeline's rule). */
static bool row_after(const struct step *a, const struct step *b)
{
    if (a->ts == MX_TIME_NONE || b->ts == MX_TIME_NONE)
        return false;
    return a->ts > b->ts || (a->ts == b->ts && a->message && !b->message && a->f0 && b->f0 && b->f0 <= a->f0);
}

/* Keeps a row with its label and details, unless the session keeps no more
 * rows: past its caps (dropped), or when the report's memory is full
 * (starved); from then on later rows are only counted. */
static void keep_step(struct html_rep *r, struct session *s, const struct step *row, struct mx_slice label,
                      struct mx_slice detail)
{
    if (!drawable(r)) {
        forget_rows(r, s);
        return;
    }
    if (s->dropped || s->starved) {
        if (s->dropped)
            s->dropped++;
        else
            s->starved++;
        return;
    }
    struct mx_buf *a = &s->arena.b;
    size_t a0 = a->n;
    enum mx_buf_status st = charged_append(r, s, a, H_ARENA_MAX, label.ptr, label.len);
    if (st == MX_BUF_OK)
        st = charged_append(r, s, a, H_ARENA_MAX, detail.ptr, detail.len);
    if (st == MX_BUF_OK)
        st = charged_append(r, s, &s->steps, H_MAX_STEPS, row, 1);
    if (st != MX_BUF_OK) {
        a->n = a0;
        if (st == MX_BUF_CAPPED)
            s->dropped = 1;
        else
            s->starved = 1;
        return;
    }
    struct step *kept = step_at(s, s->steps.n - 1);
    kept->label_off = (uint32_t)a0;
    kept->label_len = (uint32_t)label.len;
    kept->detail_off = (uint32_t)(a0 + label.len);
    kept->detail_len = (uint32_t)detail.len;
    /* Time order (docs/manual.md, "Time order"): the row moves up past the
     * rows of a later time, and a message past the rows of its own time. */
    size_t i = s->steps.n - 1;
    struct step moved = *kept;
    while (i > 0 && row_after(step_at(s, i - 1), &moved)) {
        *step_at(s, i) = *step_at(s, i - 1);
        i--;
    }
    *step_at(s, i) = moved;
}

/* One line "key: value" of an arrow's details, from a string field. */
static void detail_str(struct hbuf *d, const struct mx_event *e, const char *path, const char *label)
{
    struct mx_slice v = mx_ev_get_str(e, path);
    if (!v.len)
        return;
    if (hb_len(d))
        hb_puts(d, "\n");
    hb_puts(d, label);
    hb_put(d, v.ptr, v.len < H_FIELD_MAX ? v.len : H_FIELD_MAX);
}

/* Fields shown in a row's details, and how each is labelled. */
struct detail {
    const char *path, *label;
};

static void details(struct hbuf *d, const struct mx_event *e, const struct detail *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        detail_str(d, e, t[i].path, t[i].label);
}

/* Whether the record's type ends with `suffix` (".untagged"). */
static bool type_ends(const struct mx_event *e, const char *suffix)
{
    size_t n = strlen(e->type), k = strlen(suffix);
    return n > k && !memcmp(e->type + n - k, suffix, k);
}

/* Counts a row and keeps it (keep_step); true when it is a failure, whose
 * row (texts not set) is copied to *out. */
static bool add_step(struct html_rep *r, struct session *s, const struct mx_event *e, enum step_kind kind,
                     struct mx_slice label, struct mx_slice detail, struct step *out)
{
    struct step row = { 0 }, *st = &row;
    st->kind = (uint8_t)kind;
    st->tone = (uint8_t)e->tone;
    st->ts = e->ts;
    st->message = !strcmp(e->type, "message");
    const struct mx_ev_field *lf = mx_ev_get(e, "latency");
    st->latency = lf && lf->kind == MX_EV_DOUBLE ? lf->v.d : NAN;
    st->pipelined = mx_ev_get_int(e, "pipelined", 0) != 0;
    if (type_ends(e, ".untagged")) /* data, not a command's result (RFC 9051 §2.2.2) */
        st->server_line = SL_UNTAGGED;
    else if (type_ends(e, ".continuation"))
        st->server_line = SL_CONTINUATION;
    const struct mx_ev_field *fr = mx_ev_get(e, "frames");
    if (fr && fr->kind == MX_EV_ARR) {
        const struct mx_ev_field *a = mx_ev_first(e, fr);
        const struct mx_ev_field *b = a ? mx_ev_next(e, a) : NULL;
        st->f0 = a && a->kind == MX_EV_UINT ? a->v.u : a && a->kind == MX_EV_INT ? (mx_frame_t)a->v.i : 0;
        st->f1 = b && b->kind == MX_EV_UINT ? b->v.u : b && b->kind == MX_EV_INT ? (mx_frame_t)b->v.i : st->f0;
    }
    /* A failure: what the failure model (dissectors/findings/failure.h) says, and nothing else. */
    bool failure = !strcmp(e->type, "failure");
    s->failures += failure;
    if (kind == ST_C2S && (mx_ev_get(e, "verb") || mx_ev_get(e, "command")))
        s->commands++;
    keep_step(r, s, st, label, detail);
    if (failure)
        *out = row;
    return failure;
}

/* A member of an object field, by key (one level), or NULL. */
static const struct mx_ev_field *member(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    if (!obj || obj->kind != MX_EV_OBJ)
        return NULL;
    for (const struct mx_ev_field *f = mx_ev_first(e, obj); f; f = mx_ev_next(e, f))
        if (f->key && !strcmp(f->key, key))
            return f;
    return NULL;
}

static struct mx_slice member_str(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    const struct mx_ev_field *f = member(e, obj, key);
    return f && f->kind == MX_EV_STR ? mx_ev_field_str(e, f) : mx_slice_make("", 0);
}

static int64_t member_int(const struct mx_event *e, const struct mx_ev_field *obj, const char *key, int64_t dflt)
{
    const struct mx_ev_field *f = member(e, obj, key);
    if (!f)
        return dflt;
    return f->kind == MX_EV_INT ? f->v.i : f->kind == MX_EV_UINT ? (int64_t)f->v.u : dflt;
}

/* The one-line text of a record, as valid UTF-8, or its type. */
static struct mx_slice label_of(const struct mx_event *e, char *buf, size_t cap)
{
    struct mx_slice t = mx_ev_text_of(e);
    if (!t.len)
        return mx_slice_make(e->type, strlen(e->type));
    char cut[512]; /* the texts it carries cut, and their real lengths */
    size_t m = mx_ev_cut_mark(e, cut, sizeof(cut));
    if (t.len > (cap - sizeof(cut)) / 4)
        t.len = (cap - sizeof(cut)) / 4;
    size_t n = mx_utf8_sanitize(t, buf, cap - sizeof(cut));
    memcpy(buf + n, cut, m);
    return mx_slice_make(buf, n + m);
}

/* The certificate as judged (docs/tls.md, "The certificate judged"), and a
 * weak suite: a few lines of the TLS step's details. */
static void cert_block(struct hbuf *d, const struct mx_event *e)
{
    struct mx_slice w = mx_ev_get_str(e, "cipher_weakness.class");
    if (w.len) {
        hb_puts(d, "\nweak cipher suite: ");
        hb_put(d, w.ptr, w.len);
    }
    const struct mx_ev_field *c = mx_ev_get(e, "certificate");
    if (!c || c->kind != MX_EV_OBJ)
        return;
    struct mx_slice v = mx_ev_get_str(e, "certificate.validity"), vf = mx_ev_get_str(e, "certificate.verify");
    struct mx_slice st = mx_ev_get_str(e, "certificate.verify_store");
    hb_puts(d, "\ncertificate at capture time: ");
    if (v.len)
        hb_put(d, v.ptr, v.len);
    else
        hb_puts(d, "dates unknown");
    hb_puts(d, "; chain: ");
    if (vf.len) {
        hb_put(d, vf.ptr, vf.len);
        hb_puts(d, " (store: ");
        hb_put(d, st.ptr, st.len);
        hb_puts(d, ")");
    } else {
        hb_puts(d, "not verified");
    }
    struct mx_slice kt = mx_ev_get_str(e, "certificate.key.type");
    if (kt.len) {
        hb_puts(d, "\ncertificate key: ");
        hb_put(d, kt.ptr, kt.len);
        hb_printf(d, " %" PRId64 " bits%s", mx_ev_get_int(e, "certificate.key.bits", 0),
                  mx_ev_get_int(e, "certificate.key.weak", 0) ? " (weak)" : "");
    }
    detail_str(d, e, "certificate.signature_algorithm", "certificate signature: ");
    detail_str(d, e, "certificate.weak_signature.algorithm", "weak signature in the chain: ");
    struct mx_slice n = mx_ev_get_str(e, "certificate.name_checked.name");
    if (n.len) {
        hb_puts(d, "\ncertificate name: ");
        hb_put(d, n.ptr, n.len < H_FIELD_MAX ? n.len : H_FIELD_MAX);
        struct mx_slice from = mx_ev_get_str(e, "certificate.name_checked.from");
        hb_puts(d, from.len == 3 && !memcmp(from.ptr, "sni", 3) ? " (SNI)" : " (greeting)");
        hb_puts(d, mx_ev_get_int(e, "certificate.name_checked.match", 0) ? " matches" : " does not match");
    }
}

static void on_tls(struct html_rep *r, struct session *s, const struct mx_event *e)
{
    struct hbuf l, d;
    hb_init(&l, 8192);
    hb_init(&d, 8192);
    struct mx_slice v = mx_ev_get_str(e, "version"), c = mx_ev_get_str(e, "cipher");
    /* The version names the protocol ("TLS 1.3", "SSL 3.0"): "TLS" alone without one. */
    if (v.len)
        hb_put(&l, v.ptr, v.len);
    else
        hb_puts(&l, "TLS");
    if (c.len) {
        hb_puts(&l, " \xC2\xB7 ");
        hb_put(&l, c.ptr, c.len);
    }
    hb_puts(&l,
            mx_ev_get_int(e, "completed", 0) ? " \xC2\xB7 handshake completed" : " \xC2\xB7 handshake not completed");
    hb_printf(&d, "encrypted from here on: %" PRId64 " bytes client to server, %" PRId64 " bytes server to client",
              mx_ev_get_int(e, "app_bytes.c2s", 0), mx_ev_get_int(e, "app_bytes.s2c", 0));
    static const struct detail tls_details[] = {
        { "how", "how: " },
        { "sni", "SNI: " },
        { "alpn", "ALPN: " },
        { "certificate.subject", "certificate subject: " },
        { "certificate.issuer", "certificate issuer: " },
        { "certificate.not_after", "valid until: " },
        { "certificate_hidden", "certificate: " },
        { "ja3", "JA3: " },
        { "ja4", "JA4: " },
    };
    details(&d, e, tls_details, MX_ARRAY_LEN(tls_details));
    cert_block(&d, e);
    const struct mx_ev_field *al = mx_ev_get(e, "alerts");
    int n = 0;
    for (const struct mx_ev_field *a = al ? mx_ev_first(e, al) : NULL; a && n < 8; a = mx_ev_next(e, a), n++) {
        struct mx_slice desc = member_str(e, a, "description"), lv = member_str(e, a, "level");
        hb_puts(&d, "\nalert: ");
        hb_put(&d, desc.ptr, desc.len);
        if (lv.len) {
            hb_puts(&d, " (");
            hb_put(&d, lv.ptr, lv.len);
            hb_puts(&d, ")");
        }
    }
    char cut[512]; /* the texts it carries cut (SNI, subject, issuer), and their real lengths */
    if (mx_ev_cut_mark(e, cut, sizeof(cut))) {
        hb_puts(&l, cut);
        if (hb_len(&d))
            hb_puts(&d, "\n");
        hb_puts(&d, "cut by mxray, real length:");
        hb_puts(&d, cut);
    }
    s->tls = true;
    struct step row;
    add_step(r, s, e, ST_TLS, mx_slice_make(hb_ptr(&l), hb_len(&l)), mx_slice_make(hb_ptr(&d), hb_len(&d)), &row);
    hb_free(&l);
    hb_free(&d);
}

/* The MIME tree of a message record, rendered now (into the scratch
 * buffer) and kept whole in the session's extra if it fits. */
static void on_message(struct html_rep *r, struct session *s, const struct mx_event *e)
{
    if (!drawable(r)) {
        forget_rows(r, s);
        return;
    }
    if (s->extra.full || s->msgs_starved) {
        s->msgs_starved += !s->extra.full; /* counted after the first one not kept */
        return;
    }
    struct hbuf *x = &r->scratch;
    mx_buf_clear(&x->b, false);
    x->full = false;
    hb_puts(x, "<div class=\"msg\"><h4>Message");
    struct mx_slice subj = mx_ev_get_str(e, "headers.subject");
    if (subj.len) {
        hb_puts(x, " \xE2\x80\x9C");
        hb_esc(x, subj, 120, false);
        hb_puts(x, "\xE2\x80\x9D");
    }
    hb_printf(x, "</h4><p class=\"meta\">%" PRId64 " bytes", mx_ev_get_int(e, "size", 0));
    struct mx_slice from = mx_ev_get_str(e, "headers.from"), src = mx_ev_get_str(e, "carried_by");
    if (from.len) {
        hb_puts(x, " \xC2\xB7 from ");
        hb_esc(x, from, 120, false);
    }
    if (src.len) {
        hb_puts(x, " \xC2\xB7 ");
        hb_esc(x, src, 40, false);
    }
    if (mx_ev_get_int(e, "partial", 0))
        hb_puts(x, " \xC2\xB7 <span class=\"bad\">partial</span>");
    struct mx_slice sha = mx_ev_get_str(e, "sha256");
    if (sha.len) {
        hb_puts(x, " \xC2\xB7 SHA-256 <code>");
        hb_esc(x, sha, 0, false);
        hb_puts(x, "</code>");
    }
    hb_puts(x,
            "</p><table class=\"mime\"><tr><th>part</th><th>type</th><th>name</th><th>bytes</th><th>SHA-256</th></tr>");
    const struct mx_ev_field *parts = mx_ev_get(e, "parts");
    int shown = 0;
    const struct mx_ev_field *p = parts ? mx_ev_first(e, parts) : NULL;
    for (; p && shown < 500; p = mx_ev_next(e, p), shown++) {
        struct mx_slice path = member_str(e, p, "path"), ct = member_str(e, p, "content_type"),
                        fn = member_str(e, p, "filename"), disp = member_str(e, p, "disposition"),
                        h = member_str(e, p, "sha256");
        int64_t size = member_int(e, p, "size", -1);
        /* Depth from the path: "0" is the root, "2.1" a grandchild. */
        int depth = 0;
        if (!(path.len == 1 && path.ptr[0] == '0')) {
            depth = 1;
            for (size_t i = 0; i < path.len; i++)
                depth += path.ptr[i] == '.';
        }
        bool att = disp.len == 10 && !memcmp(disp.ptr, "attachment", 10);
        hb_printf(x, "<tr%s><td style=\"padding-left:%dem\">", att ? " class=\"att\"" : "", depth > 12 ? 12 : depth);
        hb_esc(x, path, 40, false);
        hb_puts(x, "</td><td>");
        hb_esc(x, ct, 80, false);
        hb_puts(x, "</td><td>");
        if (att) /* an icon drawn, not a font's glyph (U+1F4CE is missing from common fonts) */
            hb_puts(x, "<svg class=\"clip\" width=\"10\" height=\"14\" viewBox=\"0 0 10 14\" role=\"img\" "
                       "aria-label=\"attachment\"><path d=\"M7 4v6.5a2 2 0 0 1-4 0V3a1.5 1.5 0 0 1 3 0v7\"/></svg> ");
        hb_esc(x, fn, 80, false);
        hb_puts(x, "</td><td>");
        if (size >= 0)
            hb_printf(x, "%" PRId64, size);
        hb_puts(x, "</td><td><code>");
        hb_esc(x, h, 0, false);
        hb_puts(x, "</code></td></tr>");
    }
    if (p)
        hb_puts(x, "<tr><td colspan=\"5\">\xE2\x80\xA6 more parts: see the JSON record</td></tr>");
    hb_puts(x, "</table></div>");
    enum mx_buf_status st =
        x->full ? MX_BUF_CAPPED : charged_append(r, s, &s->extra.b, H_EXTRA_MAX, hb_ptr(x), hb_len(x));
    if (st == MX_BUF_CAPPED)
        s->extra.full = true;
    else if (st != MX_BUF_OK)
        s->msgs_starved = 1;
}

/* The row list of a severity: high, medium, low, then info and any other. */
static size_t finding_rank(struct mx_slice sev)
{
    static const char *const order[] = { "high", "medium", "low" };
    for (size_t i = 0; i < MX_ARRAY_LEN(order); i++)
        if (sev.len == strlen(order[i]) && !memcmp(sev.ptr, order[i], sev.len))
            return i;
    return 3;
}

static void on_finding(struct html_rep *r, const struct mx_event *e)
{
    struct mx_slice sev = mx_ev_get_str(e, "severity");
    struct hbuf *b = &r->findings[finding_rank(sev)];
    hb_puts(b, "<tr><td class=\"sev-");
    hb_esc(b, sev, 16, false);
    hb_puts(b, "\">");
    hb_esc(b, sev, 16, false);
    hb_puts(b, "</td><td class=\"fid\"><code>");
    hb_esc(b, mx_ev_get_str(e, "id"), 40, false);
    hb_puts(b, "</code></td><td>");
    hb_esc(b, mx_ev_get_str(e, "title"), 160, false);
    hb_puts(b, "<div class=\"why\">");
    hb_esc(b, mx_ev_get_str(e, "why"), 600, false);
    hb_puts(b, " <b>Fix:</b> ");
    hb_esc(b, mx_ev_get_str(e, "fix"), 600, false);
    hb_puts(b, "</div></td><td>");
    hb_esc(b, mx_ev_get_str(e, "proto"), 16, false);
    hb_puts(b, " ");
    hb_esc(b, mx_ev_get_str(e, "server"), 64, false);
    hb_printf(b, ":%" PRId64 "</td><td>%" PRId64 "</td><td>", mx_ev_get_int(e, "port", 0),
              mx_ev_get_int(e, "count", 0));
    const struct mx_ev_field *ev = mx_ev_get(e, "evidence");
    int n = 0;
    for (const struct mx_ev_field *x = ev ? mx_ev_first(e, ev) : NULL; x && n < 10; x = mx_ev_next(e, x), n++) {
        int64_t f = member_int(e, x, "flow", 0);
        const struct mx_ev_field *fr = member(e, x, "frames");
        fr = fr && fr->kind == MX_EV_ARR ? mx_ev_first(e, fr) : NULL;
        hb_printf(b, "<a href=\"#f%" PRId64 "\">session %" PRId64 "</a>", f, f);
        if (fr && fr->kind == MX_EV_UINT)
            hb_printf(b, " (frame %" PRIu64 ")", fr->v.u);
        hb_puts(b, " ");
    }
    hb_puts(b, "</td></tr>\n");
    r->n_findings++;
}

/* Whether s is the text lit. */
static bool slice_is(struct mx_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && !memcmp(s.ptr, lit, n);
}

/* A journey (dissectors/findings/journey.c) for the overview: the message,
 * its path and fate, and a row per hop linking to its session's diagram. */
static void on_journey(struct html_rep *r, const struct mx_event *e)
{
    const struct mx_ev_field *hops = mx_ev_get(e, "hops");
    if (!hops)
        return; /* the index's overflow note: only the JSON and the timeline have it */
    if (r->n_journeys == H_FAILURES_MAX) {
        r->more_journeys++;
        return;
    }
    struct hbuf *b = &r->journeys;
    struct mx_slice outcome = mx_ev_get_str(e, "outcome"), id = mx_ev_get_str(e, "message_id");
    bool delivered = slice_is(outcome, "delivered"), stopped = slice_is(outcome, "stopped");
    hb_puts(b, "<li><code>");
    hb_esc(b, id.len ? id : mx_slice_make("(no Message-ID)", 15), 200, false);
    hb_puts(b, "</code> \xE2\x80\x9C");
    hb_esc(b, mx_ev_get_str(e, "subject"), 120, false);
    hb_puts(b, "\xE2\x80\x9D: ");
    hb_esc(b, mx_ev_get_str(e, "path"), 200, false);
    hb_printf(b, " \xC2\xB7 <span class=\"%s\">", delivered ? "g" : stopped ? "bad" : "w");
    struct mx_slice note = stopped ? member_str(e, mx_ev_get(e, "stopped"), "note") : mx_ev_get_str(e, "last_seen");
    hb_esc(b, delivered ? outcome : note, 400, false);
    hb_puts(b, "</span><table class=\"journey\"><tr><th>start</th><th>hop</th><th>session</th><th>client \xE2\x86\x92 "
               "server</th><th>outcome</th><th>queue id</th></tr>");
    for (const struct mx_ev_field *h = mx_ev_first(e, hops); h; h = mx_ev_next(e, h)) {
        struct mx_slice start = member_str(e, h, "start");
        const uint8_t *t = start.len ? memchr(start.ptr, 'T', start.len) : NULL;
        int64_t flow = member_int(e, h, "flow", 0);
        hb_puts(b, "<tr><td>");
        if (t) /* the time of day; the JSON has the date */
            hb_esc(b, mx_slice_make(t + 1, start.len - (size_t)(t + 1 - start.ptr)), 20, false);
        hb_puts(b, "</td><td>");
        hb_esc(b, member_str(e, h, "role"), 16, false);
        hb_printf(b, "</td><td><a href=\"#f%" PRId64 "\">session %" PRId64 "</a></td><td>", flow, flow);
        hb_esc(b, member_str(e, h, "client"), 64, false);
        hb_printf(b, ":%" PRId64 " \xE2\x86\x92 ", member_int(e, h, "client_port", 0));
        hb_esc(b, member_str(e, h, "server"), 64, false);
        hb_printf(b, ":%" PRId64 " ", member_int(e, h, "server_port", 0));
        hb_esc(b, member_str(e, h, "proto"), 8, false);
        if (member(e, h, "authenticated"))
            hb_puts(b, " (AUTH)");
        struct mx_slice o = member_str(e, h, "outcome");
        bool good = slice_is(o, "accepted") || slice_is(o, "retrieved") || slice_is(o, "appended");
        hb_printf(b, "</td><td class=\"%s\">", good ? "g" : slice_is(o, "mixed") ? "w" : "bad");
        hb_esc(b, o, 16, false);
        const struct mx_ev_field *rp = member(e, h, "reply");
        if (rp) {
            hb_puts(b, ": ");
            hb_esc(b, member_str(e, rp, "status"), 8, false);
            hb_puts(b, " ");
            hb_esc(b, member_str(e, rp, "text"), 160, false);
        }
        hb_puts(b, "</td><td>");
        struct mx_slice q = member_str(e, h, "queue_id"), rid = member_str(e, h, "received_id");
        hb_esc(b, q.len ? q : rid, 40, false);
        const struct mx_ev_field *ok = member(e, h, "queue_id_confirmed");
        if (ok && ok->kind == MX_EV_BOOL && ok->v.b)
            hb_puts(b, " <span class=\"g\" title=\"the next hop's Received field names it\">\xE2\x9C\x93</span>");
        else if (!q.len && rid.len)
            hb_puts(b, " <span class=\"meta\">(from the next hop's Received)</span>");
        hb_puts(b, "</td></tr>");
    }
    hb_puts(b, "</table></li>\n");
    r->n_journeys++;
}

static void on_summary(struct html_rep *r, const struct mx_event *e)
{
    struct hbuf *b = &r->summary;
    mx_buf_clear(&b->b, false);
    struct mx_slice a = mx_ev_get_str(e, "start"), z = mx_ev_get_str(e, "end");
    hb_puts(b, "<p>Capture ");
    if (a.len) {
        hb_puts(b, "from <time>");
        hb_esc(b, a, 40, false);
        hb_puts(b, "</time> to <time>");
        hb_esc(b, z, 40, false);
        hb_puts(b, "</time>, ");
    }
    int64_t frames = mx_ev_get_int(e, "frame_count", 0), bytes = mx_ev_get_int(e, "bytes", 0),
            flows = mx_ev_get_int(e, "flows", 0);
    hb_printf(b, "%" PRId64 " frame%s, %" PRId64 " byte%s, %" PRId64 " flow%s", frames, frames == 1 ? "" : "s", bytes,
              bytes == 1 ? "" : "s", flows, flows == 1 ? "" : "s");
    const struct mx_ev_field *files = mx_ev_get(e, "files");
    int i = 0;
    for (const struct mx_ev_field *f = files ? mx_ev_first(e, files) : NULL; f && i < 16; f = mx_ev_next(e, f), i++) {
        struct mx_slice p = member_str(e, f, "path");
        hb_puts(b, i ? ", " : "; read from ");
        hb_puts(b, "<code>");
        hb_esc(b, p, 200, false);
        hb_puts(b, "</code>");
    }
    hb_puts(b, ".</p>");
}

/* ---------------------------------------------------------------- drawing */

/* "s" after a count that is not 1: "1 session", "2 sessions". */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static const char *tone_class(int tone)
{
    switch (tone) {
    case MX_TONE_GOOD:
        return "g";
    case MX_TONE_WARN:
        return "w";
    case MX_TONE_BAD:
        return "b";
    default:
        return "n";
    }
}

static void put_rel(struct hbuf *b, mx_time_t t, mx_time_t t0)
{
    if (t == MX_TIME_NONE || t0 == MX_TIME_NONE)
        return;
    hb_printf(b, "+%.3f s", mx_time_secs(t0, t));
}

static void put_latency(struct hbuf *b, double s)
{
    if (s < 1e-3)
        hb_printf(b, "%.0f \xC2\xB5s", s * 1e6);
    else if (s < 1)
        hb_printf(b, "%.1f ms", s * 1e3);
    else
        hb_printf(b, "%.2f s", s);
}

static struct mx_slice arena(const struct session *s, uint32_t off, uint32_t len)
{
    return mx_slice_make(hb_ptr(&s->arena) + off, len);
}

/* A row's tooltip and detail pane text: the line, frames, latency, details. */
static void put_title(struct hbuf *b, const struct session *s, const struct step *st)
{
    hb_puts(b, "<title>");
    hb_esc(b, arena(s, st->label_off, st->label_len), 0, true);
    if (st->f0) {
        hb_printf(b, "\nframe%s %" PRIu64, st->f1 != st->f0 ? "s" : "", st->f0);
        if (st->f1 != st->f0)
            hb_printf(b, "\xE2\x80\x93%" PRIu64, st->f1);
    }
    if (!isnan(st->latency)) {
        hb_puts(b, "\nlatency ");
        put_latency(b, st->latency);
    }
    if (st->detail_len) {
        hb_puts(b, "\n");
        hb_esc(b, arena(s, st->detail_off, st->detail_len), 0, true);
    }
    hb_puts(b, "</title>");
}

/* The report's budget, as "X MiB". */
static void put_budget(struct hbuf *b, const struct html_rep *r)
{
    if (r->mem_max % (1u << 20))
        hb_printf(b, "%.1f MiB", (double)r->mem_max / (1u << 20));
    else
        hb_printf(b, "%zu MiB", r->mem_max >> 20);
}

static void draw(struct hbuf *b, const struct html_rep *r, const struct session *s)
{
    size_t rows = s->steps.n + (s->dropped || s->starved ? 1 : 0);
    int h = G_TOP + (int)rows * G_ROW + 16;
    hb_printf(b,
              "<svg class=\"seq\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
              "aria-label=\"sequence diagram of session %" PRIu64 "\">",
              G_W, h, G_W, h, s->id);
    /* TLS: the rest of the dialogue is dark from its row down. */
    for (size_t i = 0; i < s->steps.n; i++) {
        if (step_at(s, i)->kind != ST_TLS)
            continue;
        int y = G_TOP + (int)i * G_ROW - 18;
        hb_printf(b, "<rect class=\"dark\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>", G_XC, y, G_XS - G_XC,
                  h - y - 8);
        break;
    }
    /* Pipelined commands: a box behind each run of them. */
    for (size_t i = 0; i < s->steps.n;) {
        size_t j = i + 1;
        while (j < s->steps.n && step_at(s, j)->kind == ST_C2S && step_at(s, j)->pipelined)
            j++;
        if (step_at(s, i)->kind == ST_C2S && j - i > 1) {
            int y = G_TOP + (int)i * G_ROW - 19;
            hb_printf(b, "<rect class=\"pipe\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"4\"/>", G_XC - 8, y,
                      G_XS - G_XC + 16, (int)(j - i) * G_ROW + 2);
            hb_printf(b, "<text class=\"pipel\" x=\"%d\" y=\"%d\">pipelined \xC3\x97%zu</text>", G_XC - 12, y + 14,
                      j - i);
        }
        i = j;
    }
    /* Lifelines and their heads. */
    hb_printf(b, "<line class=\"life\" x1=\"%d\" y1=\"34\" x2=\"%d\" y2=\"%d\"/>", G_XC, G_XC, h - 8);
    hb_printf(b, "<line class=\"life\" x1=\"%d\" y1=\"34\" x2=\"%d\" y2=\"%d\"/>", G_XS, G_XS, h - 8);
    hb_printf(b, "<rect class=\"head\" x=\"%d\" y=\"4\" width=\"180\" height=\"30\" rx=\"4\"/>", G_XC - 90);
    hb_printf(b, "<text class=\"headt\" x=\"%d\" y=\"17\">client</text><text class=\"heada\" x=\"%d\" y=\"29\">", G_XC,
              G_XC);
    hb_esc_str(b, s->client);
    hb_puts(b, "</text>");
    hb_printf(b, "<rect class=\"head\" x=\"%d\" y=\"4\" width=\"180\" height=\"30\" rx=\"4\"/>", G_XS - 90);
    hb_printf(b, "<text class=\"headt\" x=\"%d\" y=\"17\">server</text><text class=\"heada\" x=\"%d\" y=\"29\">", G_XS,
              G_XS);
    hb_esc_str(b, s->server);
    hb_puts(b, "</text>");
    for (size_t i = 0; i < s->steps.n; i++) {
        const struct step *st = step_at(s, i);
        int y = G_TOP + (int)i * G_ROW;
        const char *tc = tone_class(st->tone);
        hb_printf(b, "<g class=\"st %s k%d%s\" tabindex=\"0\">", tc, st->kind,
                  st->server_line == SL_UNTAGGED       ? " u"
                  : st->server_line == SL_CONTINUATION ? " u cont"
                                                       : "");
        put_title(b, s, st);
        hb_printf(b, "<text class=\"tm\" x=\"8\" y=\"%d\">", y + 4);
        put_rel(b, st->ts, s->start);
        hb_puts(b, "</text>");
        if (st->f0)
            hb_printf(b, "<text class=\"fr\" x=\"%d\" y=\"%d\">#%" PRIu64 "</text>", G_W - 8, y + 4, st->f0);
        switch (st->kind) {
        case ST_C2S:
        case ST_S2C: {
            /* The shaft and its head in one path: markers cost a browser
             * far more on a large page. */
            int x1 = st->kind == ST_C2S ? G_XC : G_XS, x2 = st->kind == ST_C2S ? G_XS - 1 : G_XC + 1;
            int hx = st->kind == ST_C2S ? -10 : 10;
            hb_printf(b, "<path class=\"ar\" d=\"M%d %dH%dM%d %dl%d -5v10z\"/>", x1, y, x2, x2, y, hx);
            hb_printf(b, "<text class=\"lb\" x=\"%d\" y=\"%d\">", (G_XC + G_XS) / 2, y - 5);
            hb_esc(b, arena(s, st->label_off, st->label_len), H_LABEL_CP, false);
            hb_puts(b, "</text>");
            if (st->server_line) /* named where a completion's latency goes */
                hb_printf(b, "<text class=\"ut\" x=\"%d\" y=\"%d\">%s</text>", G_XS + 8, y + 4,
                          st->server_line == SL_UNTAGGED ? "untagged" : "continuation");
            else if (!isnan(st->latency) && st->kind == ST_S2C) {
                hb_printf(b, "<text class=\"lat\" x=\"%d\" y=\"%d\">", G_XS + 8, y + 4);
                put_latency(b, st->latency);
                hb_puts(b, "</text>");
            }
            break;
        }
        case ST_TLS:
            hb_printf(b, "<rect class=\"band\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"20\" rx=\"3\"/>", G_XC, y - 14,
                      G_XS - G_XC);
            hb_printf(b, "<text class=\"bandt\" x=\"%d\" y=\"%d\">", (G_XC + G_XS) / 2, y);
            hb_esc(b, arena(s, st->label_off, st->label_len), H_LABEL_CP, false);
            hb_puts(b, "</text>");
            break;
        default:
            hb_printf(b, "<rect class=\"note\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"20\" rx=\"3\"/>", G_XC + 10,
                      y - 14, G_XS - G_XC - 20);
            hb_printf(b, "<text class=\"nt\" x=\"%d\" y=\"%d\">", (G_XC + G_XS) / 2, y);
            hb_esc(b, arena(s, st->label_off, st->label_len), H_LABEL_CP, false);
            hb_puts(b, "</text>");
        }
        hb_puts(b, "</g>");
    }
    if (s->dropped)
        hb_printf(b, "<text class=\"nt\" x=\"%d\" y=\"%d\">\xE2\x80\xA6 %" PRIu64 " more rows not drawn</text>",
                  (G_XC + G_XS) / 2, G_TOP + (int)s->steps.n * G_ROW, s->dropped);
    if (s->starved) {
        hb_printf(b,
                  "<text class=\"nt bad mem\" x=\"%d\" y=\"%d\">\xE2\x80\xA6 %" PRIu64
                  " later row%s not kept: the report's memory (",
                  (G_XC + G_XS) / 2, G_TOP + (int)s->steps.n * G_ROW, s->starved, s->starved == 1 ? "" : "s");
        put_budget(b, r);
        hb_puts(b, " of --memory) was full</text>");
    }
    hb_puts(b, "</svg>");
}

/* The diagrams' legend: what each colour and shape means, drawn with the
 * diagrams' own colours (css[]). */
static void legend(struct hbuf *b)
{
    static const struct {
        const char *shape; /* the sample, at (0,0)-(48,0) */
        const char *text;
    } items[] = {
        { "<path d=\"M0 0H47M47 0l-10 -5v10z\" stroke=\"#2f5fb3\" fill=\"#2f5fb3\" stroke-width=\"1.6\"/>",
          "a command, or message data: no status of its own" },
        { "<path d=\"M48 0H1M1 0l10 -5v10z\" stroke=\"#1b6e3a\" fill=\"#1b6e3a\" stroke-width=\"1.6\"/>",
          "reply: success (2xx, 3xx, +OK, OK)" },
        { "<path d=\"M48 0H1M1 0l10 -5v10z\" stroke=\"#c77700\" fill=\"#c77700\" stroke-width=\"1.6\"/>",
          "reply: temporary failure (4xx), or a warning" },
        { "<path d=\"M48 0H1M1 0l10 -5v10z\" stroke=\"#b3261e\" fill=\"#b3261e\" stroke-width=\"2.4\"/>",
          "reply: failure (5xx, -ERR, NO, BAD)" },
        { "<path d=\"M48 0H1M1 0l10 -5v10z\" stroke=\"#8a93a6\" fill=\"#8a93a6\" stroke-width=\"1.6\" "
          "stroke-dasharray=\"5 3\"/>",
          "untagged (*) or continuation (+) server line" },
        { "<rect x=\"0\" y=\"-8\" width=\"48\" height=\"16\" rx=\"4\" fill=\"#e3ecff\" stroke=\"#9db4e6\"/>",
          "pipelined commands: sent without waiting for the replies" },
        { "<rect x=\"0\" y=\"-8\" width=\"48\" height=\"16\" rx=\"3\" fill=\"#1d2330\"/>",
          "TLS handshake; the shaded part below it is encrypted" },
        { "<rect x=\"0\" y=\"-8\" width=\"48\" height=\"16\" rx=\"3\" fill=\"#fffbe6\" stroke=\"#d9c77a\"/>",
          "note: a session event (login, transaction, close)" },
    };
    size_t rows = (MX_ARRAY_LEN(items) + 1) / 2;
    hb_printf(b,
              "<svg class=\"legend\" width=\"%d\" height=\"%zu\" role=\"img\" aria-label=\"legend of the "
              "diagrams\"><title>Legend</title>",
              G_W, rows * 22 + 6);
    for (size_t i = 0; i < MX_ARRAY_LEN(items); i++) {
        int x = 8 + (int)(i / rows) * (G_W / 2), y = 14 + (int)(i % rows) * 22;
        hb_printf(b, "<g transform=\"translate(%d %d)\">%s<text x=\"58\" y=\"4\">%s</text></g>", x, y, items[i].shape,
                  items[i].text);
    }
    hb_puts(b, "</svg>");
}

/* The keyed hash of a (protocol, server) pair, never 0 (an idmap id). */
static uint64_t pair_hash(struct html_rep *r, const char *proto, const char *server)
{
    struct tally k;
    memset(&k, 0, sizeof(k));
    snprintf(k.proto, sizeof(k.proto), "%s", proto);
    snprintf(k.server, sizeof(k.server), "%s", server);
    uint64_t h = mx_hash(r->hasher, &k, offsetof(struct tally, sessions));
    return h ? h : 1;
}

static bool tally_is(const struct tally *t, const struct session *s)
{
    return !strcmp(t->proto, s->proto) && !strcmp(t->server, s->server);
}

/* The pair's tally by a walk over all of them: only when two pairs share a hash. */
static struct tally *tally_find(const struct html_rep *r, const struct session *s)
{
    for (size_t i = 0; i < r->tallies.n; i++)
        if (tally_is(tally_at(r, i), s))
            return tally_at(r, i);
    return NULL;
}

/* Counts a finished session for the overview: all of them, per pair. */
static void count_session(struct html_rep *r, const struct session *s, bool failed)
{
    r->sessions++;
    r->sessions_failed += failed;
    uint64_t h = pair_hash(r, s->proto, s->server);
    struct tally *t = mx_idmap_get(&r->by_server, h);
    bool slot_taken = t != NULL;
    if (t && !tally_is(t, s))
        t = tally_find(r, s);
    if (!t) {
        if (mx_buf_reserve(&r->tallies, 1) != MX_BUF_OK || !(t = calloc(1, sizeof(*t)))) {
            r->servers_dropped++;
            return;
        }
        if (!slot_taken && !mx_idmap_put(&r->by_server, h, t)) {
            free(t);
            r->servers_dropped++;
            return;
        }
        memcpy(t->proto, s->proto, sizeof(t->proto));
        memcpy(t->server, s->server, sizeof(t->server));
        mx_buf_append(&r->tallies, &t, 1); /* room was made */
    }
    t->sessions++;
    t->failed += failed;
}

/* Renders a finished session into the temporary file. */
static void finish_session(struct html_rep *r, struct session *s)
{
    bool failed = s->failures > 0;
    count_session(r, s, failed);
    /* Only a session that can still be drawn keeps its diagram: the first
     * max_diagrams to end with failures, and the first max_diagrams without;
     * the next H_LIST_ROWS are listed by their summary line, the rest only
     * counted. Memory and the temporary file stay small on any capture. */
    size_t *kept = failed ? &r->bodies_failed : &r->bodies_ok;
    bool body = *kept < r->max_diagrams;
    if (!body && r->listed >= H_LIST_ROWS) {
        r->unlisted++;
        return;
    }
    if (mx_buf_reserve(&r->idx, 1) != MX_BUF_OK) {
        r->failed = true;
        return;
    }
    if (body)
        (*kept)++;
    else
        r->listed++;
    struct hbuf *b = &r->page;
    mx_buf_clear(&b->b, false);
    b->full = false;
    /* Three pieces, put together at the end: the attributes, the summary
     * line, and the body (drawn sessions only). */
    hb_printf(b, " id=\"f%" PRIu64 "\" data-proto=\"", s->id);
    hb_esc_str(b, s->proto);
    hb_puts(b, "\" data-server=\"");
    hb_esc_str(b, s->server);
    hb_printf(b, "\" data-failed=\"%d\"", failed);
    size_t attrs_len = hb_len(b);
    hb_puts(b, "<span class=\"pr\">");
    hb_esc_str(b, s->proto);
    hb_printf(b, "</span> session %" PRIu64 " \xC2\xB7 ", s->id);
    hb_esc_str(b, s->client);
    hb_puts(b, " \xE2\x86\x92 ");
    hb_esc_str(b, s->server);
    if (s->start != MX_TIME_NONE) {
        char iso[40];
        mx_time_iso(s->start, iso, sizeof(iso));
        hb_printf(b, " \xC2\xB7 <time>%s</time>", iso);
    }
    hb_printf(b, " \xC2\xB7 %" PRIu64 " command%s", s->commands, plural(s->commands));
    if (s->tls)
        hb_puts(b, " \xC2\xB7 TLS");
    if (failed)
        hb_printf(b, " \xC2\xB7 <span class=\"bad\">%" PRIu64 " failure%s</span>", s->failures,
                  s->failures == 1 ? "" : "s");
    size_t line_len = hb_len(b) - attrs_len;
    if (body) {
        draw(b, r, s);
        if (hb_len(&s->extra))
            hb_put(b, hb_ptr(&s->extra), hb_len(&s->extra));
        if (s->extra.full)
            hb_puts(b, "<p class=\"meta\">More messages than the report keeps; see the JSON records.</p>");
        if (s->msgs_starved) {
            hb_printf(b, "<p class=\"meta bad mem\">%" PRIu32 " later message%s not kept: the report's memory (",
                      s->msgs_starved, s->msgs_starved == 1 ? "" : "s");
            put_budget(b, r);
            hb_puts(b, " of --memory) was full; see the JSON records.</p>");
        }
    }
    if (b->full || attrs_len + line_len > UINT32_MAX) {
        r->failed = true;
        return;
    }
    long off = ftell(r->tmp);
    if (off < 0 || fwrite(hb_ptr(b), 1, hb_len(b), r->tmp) != hb_len(b)) {
        r->failed = true;
        return;
    }
    struct entry *en = mx_buf_push(&r->idx, NULL); /* room was made */
    en->id = s->id;
    en->off = (uint64_t)off;
    en->attrs_len = (uint32_t)attrs_len;
    en->line_len = (uint32_t)line_len;
    en->body_len = hb_len(b) - attrs_len - line_len;
    en->has_body = body;
    en->starved = body && (s->starved || s->msgs_starved);
    en->failed = failed;
    memcpy(en->proto, s->proto, sizeof(en->proto));
    memcpy(en->server, s->server, sizeof(en->server));
}

/* A failure for the overview's list. */
static void list_failure(struct html_rep *r, const struct session *s, const struct step *st, struct mx_slice label)
{
    if (r->n_failures == H_FAILURES_MAX) {
        r->more_failures++;
        return;
    }
    struct hbuf *b = &r->failures;
    hb_printf(b, "<li><a href=\"#f%" PRIu64 "\">session %" PRIu64 "</a> ", s->id, s->id);
    hb_esc_str(b, s->proto);
    hb_puts(b, " ");
    hb_esc_str(b, s->server);
    if (st->f0)
        hb_printf(b, ", frame %" PRIu64, st->f0);
    hb_printf(b, ": <span class=\"%s\">", tone_class(st->tone));
    hb_esc(b, label, 160, false);
    hb_puts(b, "</span></li>\n");
    r->n_failures++;
}

/* ---------------------------------------------------------------- reporter */

/* --explain's "explain_lines" (capabilities one by one, a decoded SASL
 * prompt) in a row's details, one line each, at most 64. */
static void explain_lines(struct hbuf *d, const struct mx_event *e)
{
    const struct mx_ev_field *arr = mx_ev_get(e, "explain_lines");
    int n = 0;
    for (const struct mx_ev_field *f = arr && arr->kind == MX_EV_ARR ? mx_ev_first(e, arr) : NULL; f && n < 64;
         f = mx_ev_next(e, f), n++) {
        struct mx_slice v = mx_ev_field_str(e, f);
        if (hb_len(d))
            hb_puts(d, "\n");
        hb_puts(d, "  ");
        hb_put(d, v.ptr, v.len < H_FIELD_MAX ? v.len : H_FIELD_MAX);
    }
}

static void html_event(void *ctx, const struct mx_event *e)
{
    struct html_rep *r = ctx;
    if (!e->flow) {
        if (!strcmp(e->type, "finding"))
            on_finding(r, e);
        else if (!strcmp(e->type, "journey"))
            on_journey(r, e);
        else if (!strcmp(e->type, "summary"))
            on_summary(r, e);
        return;
    }
    struct session *s = mx_idmap_get(&r->open, e->flow);
    if (!s) {
        s = session_new(r, e);
        if (!s)
            return;
    }
    if (!strcmp(e->type, "flow_start")) {
        mx_text_copy(s->proto, sizeof(s->proto), mx_ev_get_str(e, "proto"));
        endpoint(s->client, sizeof(s->client), e, "client", "client_port");
        endpoint(s->server, sizeof(s->server), e, "server", "server_port");
    }
    if (!strcmp(e->type, "proxy") && mx_ev_get(e, "proxy_source")) {
        /* A PROXY header names the original client: the lifeline is its. */
        char orig[64], via[sizeof(s->client)];
        endpoint(orig, sizeof(orig), e, "proxy_source", "proxy_source_port");
        memcpy(via, s->client, sizeof(via));
        snprintf(s->client, sizeof(s->client), "%.63s via proxy %.63s", orig, via);
    }
    char lbuf[1200 + 512]; /* label_of: text, then the cut mark */
    struct mx_slice label = label_of(e, lbuf, sizeof(lbuf));
    if (!strcmp(e->type, "tls")) {
        on_tls(r, s, e);
        return;
    }
    if (!strcmp(e->type, "message"))
        on_message(r, s, e);
    struct hbuf d;
    hb_init(&d, 4 * H_FIELD_MAX);
    /* The full text (multi-line replies), what the step means, the state. */
    struct mx_slice full = mx_ev_get_str(e, "text");
    if (full.len && (full.len != label.len || memcmp(full.ptr, label.ptr, label.len)))
        detail_str(&d, e, "text", "text: ");
    static const struct detail step_details[] = {
        { "explain", "" },
        { "state", "state: " },
        { "meaning", "meaning: " },
        { "enhanced_meaning", "enhanced code: " },
        { "cause", "likely cause: " },
        { "failure.meaning", "meaning: " },
        { "failure.enhanced_meaning", "enhanced code: " },
        { "failure.cause", "likely cause: " },
        { "reply.meaning", "meaning: " },
        { "reply.enhanced_meaning", "enhanced code: " },
    };
    details(&d, e, step_details, MX_ARRAY_LEN(step_details));
    explain_lines(&d, e);
    char cut[512];
    if (mx_ev_cut_mark(e, cut, sizeof(cut))) {
        if (hb_len(&d))
            hb_puts(&d, "\n");
        hb_puts(&d, "cut by mxray, real length:");
        hb_puts(&d, cut);
    }
    const struct mx_ev_field *dir = mx_ev_get(e, "dir");
    enum step_kind kind = ST_NOTE;
    if (dir && dir->kind == MX_EV_STR) {
        struct mx_slice v = mx_ev_field_str(e, dir);
        kind = v.len == 3 && !memcmp(v.ptr, "c2s", 3) ? ST_C2S : ST_S2C;
    }
    struct step row;
    if (add_step(r, s, e, kind, label, mx_slice_make(hb_ptr(&d), hb_len(&d)), &row))
        list_failure(r, s, &row, label);
    hb_free(&d);
    if (!strcmp(e->type, "flow")) {
        finish_session(r, s);
        mx_idmap_take(&r->open, s->id);
        session_free(r, s);
    }
}

static int by_id(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static const char css[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 60px;color:#1d2330}"
    "h1{font-size:22px;margin:18px 0 4px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #dde}"
    "h4{margin:10px 0 2px}table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #dde;padding:3px 7px;"
    "text-align:left;vertical-align:top}th{background:#f3f4f8}code{font-size:12px;word-break:break-all}"
    ".bad,.b{color:#b3261e}.w{color:#a35a00}.g{color:#1b6e3a}.meta{color:#555;margin:2px 0}"
    ".why{color:#555;font-size:12px}.sev-high,.sev-critical{color:#b3261e;font-weight:bold}.sev-medium{color:#a35a00}"
    "table.rest td{border:none;border-bottom:1px solid #eef;padding:2px 6px}tr.ses[data-failed='1']{background:#fdf0ef}"
    "section.ses{margin:6px 0;border:1px solid #dde;border-radius:6px;background:#fff}"
    "section.ses summary{cursor:pointer;padding:6px 10px;background:#f6f7fb;border-radius:6px}"
    "section.ses[data-failed='1'] summary{background:#fdf0ef}.pr{font-weight:bold;text-transform:uppercase}"
    "svg.seq{display:block;margin:6px 0;font:12px ui-monospace,monospace}"
    ".life{stroke:#8a93a6;stroke-dasharray:4 3}.head{fill:#e8ebf4;stroke:#8a93a6}"
    ".headt,.heada{text-anchor:middle}.headt{font-weight:bold}.heada{font-size:11px}"
    ".ar{stroke:#2f5fb3;fill:#2f5fb3;stroke-width:1.6;stroke-linejoin:round}.st.g .ar{stroke:#1b6e3a;fill:#1b6e3a}"
    ".st.w .ar{stroke:#c77700;fill:#c77700}.st.b .ar{stroke:#b3261e;fill:#b3261e;"
    "stroke-width:2.4}.lb{text-anchor:middle;fill:#1d2330}.st.b .lb{fill:#b3261e;font-weight:bold}.st.w .lb{fill:#a35a00}"
    ".tm,.lat,.fr{fill:#6b7280;font-size:11px}.fr{text-anchor:end}"
    ".note{fill:#fffbe6;stroke:#d9c77a}.st.b .note{fill:#fdecea;stroke:#b3261e}.st.g .note{fill:#eaf6ee;stroke:#7bb38f}"
    ".nt{text-anchor:middle;font-size:11px}.nt.bad{fill:#b3261e}.dark{fill:#1d2330;opacity:.10}.band{fill:#1d2330}"
    ".bandt{fill:#fff;text-anchor:middle;font-size:11px}.pipe{fill:#e3ecff;stroke:#9db4e6}"
    ".pipel{fill:#2f5fb3;font-size:10px;text-anchor:end}.st{pointer-events:bounding-box}.st{cursor:pointer;outline:none}"
    ".st:hover .lb,.st:focus .lb,.st.sel .lb{text-decoration:underline}.st.sel .ar{stroke-width:3}"
    ".fid code{white-space:nowrap;word-break:normal}table.mime td{font-size:12px}tr.att td{background:#fff8e6}"
    "#mx-pane{position:fixed;right:12px;bottom:12px;width:420px;max-height:45vh;overflow:auto;background:#fff;"
    "border:1px solid #8a93a6;border-radius:6px;box-shadow:0 4px 16px #0003;padding:8px 10px;white-space:pre-wrap;"
    "font:12px ui-monospace,monospace}#mx-pane[hidden]{display:none}.filters{display:none;gap:14px;"
    "align-items:center;margin:8px 0;padding:6px 10px;background:#f3f4f8;border-radius:6px}"
    ".js .filters{display:flex}#mx-pager button{margin:0 4px}"
    /* untagged server lines: grey and dashed, unlike commands and completions */
    ".st.n.u .ar{stroke:#8a93a6;fill:#8a93a6;stroke-dasharray:5 3}.st.n.u .lb{fill:#4b5563;font-style:italic}"
    ".ut{fill:#8a93a6;font-size:10px;font-style:italic}svg.clip{vertical-align:-2px;fill:none;stroke:#555;"
    "stroke-width:1.4;stroke-linecap:round}svg.legend{display:block;margin:4px 0 8px;font:12px system-ui,sans-serif}"
    "svg.legend text{fill:#1d2330}"
    "table.journey td{font-size:12px}ul.journeys li{margin:6px 0}";

/* Filters, paging and the detail pane. Wire text reaches it only through
 * the DOM (dataset, textContent): nothing is evaluated. */
static const char script[] =
    "(function(){'use strict';document.documentElement.classList.add('js');"
    "var S=[].slice.call(document.querySelectorAll('.ses')),P=100,page=0;"
    "var fp=document.getElementById('mx-proto'),fs=document.getElementById('mx-server'),"
    "ff=document.getElementById('mx-failed'),info=document.getElementById('mx-count'),"
    "pane=document.getElementById('mx-pane');"
    "function fill(sel,key){var seen=new Set();S.forEach(function(s){seen.add(s.dataset[key]);});"
    "Array.from(seen).sort().forEach(function(v){var o=document.createElement('option');o.value=v;"
    "o.textContent=v;sel.appendChild(o);});}fill(fp,'proto');fill(fs,'server');"
    "function apply(){var m=S.filter(function(s){return(!fp.value||s.dataset.proto===fp.value)&&"
    "(!fs.value||s.dataset.server===fs.value)&&(!ff.checked||s.dataset.failed==='1');});"
    "var pages=Math.max(1,Math.ceil(m.length/P));if(page>=pages)page=pages-1;"
    "S.forEach(function(s){s.hidden=true;});m.forEach(function(s,i){s.hidden=(i<page*P||i>=(page+1)*P);});"
    "info.textContent=m.length?('sessions '+(page*P+1)+'\\u2013'+Math.min(m.length,(page+1)*P)+' of '+m.length"
    "+' shown ('+S.length+' in all)'):'no session matches';"
    "document.getElementById('mx-prev').disabled=page===0;document.getElementById('mx-next').disabled=page>=pages-1;}"
    "[fp,fs,ff].forEach(function(x){x.addEventListener('change',function(){page=0;apply();});});"
    "document.getElementById('mx-prev').addEventListener('click',function(){page--;apply();});"
    "document.getElementById('mx-next').addEventListener('click',function(){page++;apply();});"
    "var cur=null;function show(g){if(cur)cur.classList.remove('sel');cur=g;g.classList.add('sel');"
    "var t=g.querySelector('title');pane.textContent=t?t.textContent:'';pane.hidden=false;}"
    "document.addEventListener('click',function(ev){var g=ev.target.closest&&ev.target.closest('g.st');"
    "if(g)show(g);else if(!pane.contains(ev.target)){pane.hidden=true;if(cur)cur.classList.remove('sel');}});"
    "document.addEventListener('keydown',function(ev){var g=ev.target.closest&&ev.target.closest('g.st');"
    "if(g&&(ev.key==='Enter'||ev.key===' ')){ev.preventDefault();show(g);}"
    "if(ev.key==='Escape')pane.hidden=true;});"
    "apply();})();";

static void put(struct html_rep *r, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, r->out) != n)
        r->failed = true;
}

static void put_str(struct html_rep *r, const char *s)
{
    put(r, s, strlen(s));
}

static void put_buf(struct html_rep *r, const struct hbuf *b)
{
    put(r, hb_ptr(b), hb_len(b));
}

static int tally_order(const void *a, const void *b)
{
    const struct tally *x = *(const struct tally *const *)a, *y = *(const struct tally *const *)b;
    int c = strcmp(x->proto, y->proto);
    return c ? c : strcmp(x->server, y->server);
}

static void overview(struct html_rep *r, struct hbuf *b)
{
    hb_puts(b, "<h2>Overview</h2>");
    hb_put(b, hb_ptr(&r->summary), hb_len(&r->summary));
    hb_printf(b, "<p>%" PRIu64 " session%s, <span class=\"%s\">%" PRIu64 " with failures</span>, %zu finding%s.</p>",
              r->sessions, plural(r->sessions), r->sessions_failed ? "bad" : "g", r->sessions_failed, r->n_findings,
              plural(r->n_findings));
    if (r->sessions > r->max_diagrams)
        hb_printf(b,
                  "<p>Diagrams are drawn for %zu of the sessions, those with failures first; the others are "
                  "listed by their summary line (<code>--html-diagrams N</code> draws more).</p>",
                  r->max_diagrams);
    if (r->unlisted)
        hb_printf(b,
                  "<p>%" PRIu64 " more session%s %s counted here but not listed (at most %d are); the JSON "
                  "records have them all.</p>",
                  r->unlisted, plural(r->unlisted), r->unlisted == 1 ? "is" : "are", H_LIST_ROWS);
    if (r->sessions_starved) {
        hb_printf(b,
                  "<p class=\"bad mem\">%" PRIu64 " diagram%s lack their later rows or messages: the report's "
                  "memory for the sessions open at once (",
                  r->sessions_starved, r->sessions_starved == 1 ? "" : "s");
        put_budget(b, r);
        hb_puts(b, " of <code>--memory</code>) was full. The JSON records have them all.</p>");
    }
    hb_puts(b, "<h2>Sessions by protocol and server</h2><table><tr><th>protocol</th><th>server</th>"
               "<th>sessions</th><th>with failures</th></tr>");
    if (r->tallies.n)
        qsort(r->tallies.p, r->tallies.n, sizeof(struct tally *), tally_order);
    uint64_t rest = 0;
    for (size_t i = 0; i < r->tallies.n; i++) {
        const struct tally *t = tally_at(r, i);
        if (i >= 200) {
            rest += t->sessions;
            continue;
        }
        hb_puts(b, "<tr><td>");
        hb_esc_str(b, t->proto);
        hb_puts(b, "</td><td>");
        hb_esc_str(b, t->server);
        hb_printf(b, "</td><td>%" PRIu64 "</td><td class=\"%s\">%" PRIu64 "</td></tr>", t->sessions,
                  t->failed ? "bad" : "", t->failed);
    }
    rest += r->servers_dropped;
    if (rest)
        hb_printf(b, "<tr><td colspan=\"4\">\xE2\x80\xA6 and %" PRIu64 " more session%s on other servers</td></tr>",
                  rest, plural(rest));
    hb_puts(b, "</table>");
    hb_printf(b, "<h2>Failures</h2>");
    if (!r->n_failures)
        hb_puts(b, "<p>None.</p>");
    else {
        hb_puts(b, "<ul class=\"failures\">");
        hb_put(b, hb_ptr(&r->failures), hb_len(&r->failures));
        hb_puts(b, "</ul>");
        if (r->more_failures)
            hb_printf(b, "<p>\xE2\x80\xA6 and %" PRIu64 " more.</p>", r->more_failures);
    }
    if (r->n_journeys) {
        /* messages seen in more than one session (dissectors/findings/journey.c) */
        hb_puts(b, "<h2 id=\"journeys\">Journeys</h2><p>Messages seen in more than one session, linked by "
                   "Message-ID or by the digest of their body: each hop, and where the message stopped.</p>"
                   "<ul class=\"journeys\">");
        hb_put(b, hb_ptr(&r->journeys), hb_len(&r->journeys));
        hb_puts(b, "</ul>");
        if (r->more_journeys)
            hb_printf(b, "<p>\xE2\x80\xA6 and %" PRIu64 " more.</p>", r->more_journeys);
    }
    hb_puts(b, "<h2>Findings</h2>");
    if (!r->n_findings)
        hb_puts(b, "<p>None.</p>");
    else {
        hb_puts(b, "<table class=\"findings\"><tr><th>severity</th><th>id</th><th>finding</th><th>server</th>"
                   "<th>count</th><th>evidence</th></tr>");
        for (size_t i = 0; i < MX_ARRAY_LEN(r->findings); i++) /* high first (issue 27) */
            hb_put(b, hb_ptr(&r->findings[i]), hb_len(&r->findings[i]));
        hb_puts(b, "</table>");
    }
}

static bool html_finish(void *ctx)
{
    struct html_rep *r = ctx;
    /* Sessions still open (none after a normal run: every flow ends). */
    for (size_t i = 0; i < r->open.cap; i++) {
        struct session *s = r->open.slot[i].val;
        if (r->open.slot[i].id && s) {
            finish_session(r, s);
            session_free(r, s);
        }
    }
    mx_idmap_free(&r->open);
    if (r->idx.n)
        qsort(r->idx.p, r->idx.n, sizeof(struct entry), by_id);
    /* Which diagrams to draw: sessions with failures first, then the rest. */
    size_t budget = r->max_diagrams;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < r->idx.n && budget; i++)
            if (entry_at(r, i)->has_body && !entry_at(r, i)->drawn && (pass || entry_at(r, i)->failed)) {
                entry_at(r, i)->drawn = true;
                r->sessions_starved += entry_at(r, i)->starved;
                budget--;
            }
    static const char head[] =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        /* Nothing from the network, no inline script but ours (CSP 3). */
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        "<title>mxray report</title><style>";
    put(r, head, sizeof(head) - 1);
    put(r, css, sizeof(css) - 1);
    put_str(r, "</style></head><body><h1>mxray report</h1><p class=\"meta\">mxray " MX_VERSION ": ");
    put_str(r, r->protocols);
    put_str(r, " sessions as sequence diagrams. Hover or click an arrow for its line, frames, latency and "
               "meaning.</p>");
    struct hbuf b;
    hb_init(&b, 0);
    overview(r, &b);
    hb_puts(&b, "<h2>Sessions</h2>");
    legend(&b);
    hb_printf(&b, "<div class=\"filters\"><label>protocol <select id=\"mx-proto\"><option value=\"\">all</option>"
                  "</select></label><label>server <select id=\"mx-server\"><option value=\"\">all</option></select>"
                  "</label><label><input type=\"checkbox\" id=\"mx-failed\"> failed only</label>"
                  "<span id=\"mx-pager\"><button id=\"mx-prev\" type=\"button\">\xE2\x97\x80</button>"
                  "<span id=\"mx-count\"></span><button id=\"mx-next\" type=\"button\">\xE2\x96\xB6</button></span>"
                  "</div>");
    put_buf(r, &b);
    hb_free(&b);
    /* The sessions in flow order, copied from the temporary file: first
     * those drawn, each a collapsible section (the first ones open); then
     * the others, one table row each, so that a large report opens quickly
     * (a <details> costs a browser far more than a row). */
    struct mx_buf rd; /* one session's entry, read back */
    mx_buf_init(&rd, 1, 4096, SIZE_MAX);
    size_t shown = 0;
    for (int pass = 0; pass < 2 && !r->failed; pass++) {
        if (pass == 1 && r->idx.n > shown) {
            char note[320];
            int n = snprintf(note, sizeof(note),
                             "<h3>Sessions not drawn</h3><p class=\"meta\">This report draws %zu session%s, those "
                             "with failures first (<code>--html-diagrams N</code>).</p><table class=\"rest\">",
                             r->max_diagrams, plural(r->max_diagrams));
            put(r, note, (size_t)n);
        }
        for (size_t i = 0; i < r->idx.n && !r->failed; i++) {
            const struct entry *en = entry_at(r, i);
            if (en->drawn != (pass == 0))
                continue;
            size_t len = en->attrs_len + en->line_len + (en->drawn ? en->body_len : 0);
            if (mx_buf_reserve(&rd, len) != MX_BUF_OK) {
                r->failed = true;
                break;
            }
            char *buf = rd.p;
            if (fseek(r->tmp, (long)en->off, SEEK_SET) != 0 || fread(buf, 1, len, r->tmp) != len) {
                r->failed = true;
                break;
            }
            const char *line = buf + en->attrs_len;
            if (en->drawn) {
                bool open = shown < 20 || (en->failed && shown < 200);
                shown++;
                put_str(r, "<section class=\"ses\"");
                put(r, buf, en->attrs_len);
                put_str(r, open ? "><details open><summary>" : "><details><summary>");
                put(r, line, en->line_len);
                put_str(r, "</summary>");
                put(r, line + en->line_len, en->body_len);
                put_str(r, "</details></section>\n");
            } else {
                put_str(r, "<tr class=\"ses\"");
                put(r, buf, en->attrs_len);
                put_str(r, "><td>");
                put(r, line, en->line_len);
                put_str(r, "</td></tr>\n");
            }
        }
        if (pass == 1 && r->idx.n > shown)
            put_str(r, "</table>");
    }
    mx_buf_free(&rd);
    static const char tail[] = "<aside id=\"mx-pane\" hidden></aside><script>";
    put(r, tail, sizeof(tail) - 1);
    put(r, script, sizeof(script) - 1);
    static const char end[] = "</script></body></html>\n";
    put(r, end, sizeof(end) - 1);
    if (fflush(r->out) != 0)
        r->failed = true;
    return !r->failed;
}

static void html_free(void *ctx)
{
    struct html_rep *r = ctx;
    for (size_t i = 0; i < r->open.cap; i++)
        if (r->open.slot[i].id)
            session_free(r, r->open.slot[i].val);
    mx_idmap_free(&r->open);
    mx_buf_free(&r->idx);
    for (size_t i = 0; i < r->tallies.n; i++)
        free(tally_at(r, i));
    mx_buf_free(&r->tallies);
    mx_idmap_free(&r->by_server);
    mx_hasher_free(r->hasher);
    hb_free(&r->failures);
    for (size_t i = 0; i < MX_ARRAY_LEN(r->findings); i++)
        hb_free(&r->findings[i]);
    hb_free(&r->journeys);
    hb_free(&r->summary);
    hb_free(&r->page);
    hb_free(&r->scratch);
    if (r->tmp)
        fclose(r->tmp);
    if (r->close_out && r->out)
        fclose(r->out);
    free(r);
}

static const struct mx_reporter_ops html_ops = {
    .wants_text = true,
    .event = html_event,
    .finish = html_finish,
    .free = html_free,
};

bool mx_report_html_add(struct mx_sink *s, FILE *out, bool close_out, size_t max_diagrams, const char *protocols,
                        size_t memory)
{
    struct html_rep *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    mx_buf_init(&r->idx, sizeof(struct entry), 256, SIZE_MAX);
    mx_buf_init(&r->tallies, sizeof(struct tally *), 64, H_MAX_SERVERS);
    r->sink = s;
    r->out = out;
    r->close_out = close_out;
    r->max_diagrams = max_diagrams ? max_diagrams : H_DIAGRAMS_DEFAULT;
    r->protocols = protocols;
    r->tmp = tmpfile();
    hb_init(&r->failures, H_LIST_MAX);
    for (size_t i = 0; i < MX_ARRAY_LEN(r->findings); i++)
        hb_init(&r->findings[i], H_LIST_MAX / 4);
    hb_init(&r->journeys, H_LIST_MAX);
    hb_init(&r->summary, 0);
    hb_init(&r->page, 0);
    hb_init(&r->scratch, H_EXTRA_MAX);
    r->mem_max = memory ? memory : SIZE_MAX;
    r->hasher = mx_hasher_new();
    if (!r->tmp || !r->hasher || !mx_sink_add(s, &html_ops, r)) {
        if (r->tmp)
            fclose(r->tmp);
        mx_hasher_free(r->hasher);
        free(r);
        return false;
    }
    return true;
}
