/* journey.c - a message's journey (issue 27): the transfers of one message
 * in a capture (submission, RFC 6409; relay, RFC 5321; LMTP delivery, RFC
 * 2033; POP3 and IMAP retrieval; IMAP APPEND), linked by its Message-ID (RFC
 * 5322 §3.6.4) first and by the digest of its body second: the trace fields
 * each hop adds (RFC 5321 §4.4) change the whole message's digest, not its
 * body's. It reads the records as a reporter, keeps a bounded index of the
 * messages seen (never their bytes) and emits the journeys at the end. */
#include "dissectors/findings/journey.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/idmap.h"
#include "core/mx.h"
#include "event/text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOURNEY_MAX 65536      /* messages indexed; more are counted as not linked */
#define JOURNEY_HOPS_MAX 98304 /* transfers kept, all messages together; more are counted */
#define JOURNEY_SHOWN 32       /* transfers listed per journey; more are counted */
#define JOURNEY_RIDS 4         /* ids of the topmost Received fields kept per transfer */
#define JOURNEY_ID_CAP 128     /* a longer Message-ID links nothing */

/* What a transfer was, by its protocol, port and session. */
enum role { R_SUBMISSION, R_RELAY, R_DELIVERY, R_RETRIEVAL, R_APPEND };
static const char *const role_names[] = { "submission", "relay", "delivery", "retrieval", "append" };
/* Who holds the message after it, in the picture MUA → MSA → MTA → MDA → MUA. */
static const char *const role_nodes[] = { "MSA", "MTA", "MDA", "MUA", "IMAP store" };

struct hop {
    uint32_t next; /* the journey's next hop, index + 1 */
    uint64_t flow;
    mx_time_t ts, end;
    mx_frame_t first, last;
    uint64_t size;
    uint8_t role;
    bool authed, partial, by_body, body_changed, has_txn, confirmed;
    char proto[8], source[16], outcome[16];
    char client[MX_ADDR_STRLEN], server[MX_ADDR_STRLEN];
    uint16_t client_port, server_port;
    char
        sha[17]; /* the whole message's digest, its first 16 hex digits ("" when not computed): finds its transaction */
    char queue_id[32], received_id[32];
    uint32_t n_received; /* Received fields, listed and not */
    char rids[JOURNEY_RIDS][32];
    uint32_t accepted, refused;
    int64_t depth; /* the transaction's trans_depth */
    char step[16], status[8], enhanced[12], text[96];
    mx_frame_t rf1, rf2; /* the refusal's frames */
};

struct journey {
    char msgid[JOURNEY_ID_CAP];
    char subject[80];
    uint8_t body[32];
    bool has_body;
    uint32_t head, tail; /* hop index + 1 */
    uint32_t n_hops, dropped;
};

struct jflow {
    char proto[8];
    char client[MX_ADDR_STRLEN], server[MX_ADDR_STRLEN];
    uint16_t client_port, server_port;
    bool authed;
    uint32_t txn_hop;  /* the hop whose transaction comes next, index + 1 */
    uint32_t last_hop; /* the hop of the last transaction, for its failures */
};

struct jrep {
    struct mx_buf journeys; /* struct journey, at most JOURNEY_MAX */
    struct mx_buf hops;     /* struct hop, at most JOURNEY_HOPS_MAX */
    struct mx_idmap by_id, by_body, flows;
    struct mx_hasher *hasher;
    uint64_t not_linked, hops_dropped;
    bool failed;
};

static struct hop *hop_at(struct jrep *r, uint32_t i1)
{
    return i1 ? mx_buf_at(&r->hops, i1 - 1) : NULL;
}

static struct journey *journey_at(struct jrep *r, size_t i)
{
    return mx_buf_at(&r->journeys, i);
}

/* The member `key` of an object field, or NULL. */
static const struct mx_ev_field *member(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    for (const struct mx_ev_field *f = obj ? mx_ev_first(e, obj) : NULL; f; f = mx_ev_next(e, f))
        if (f->key && !strcmp(f->key, key))
            return f;
    return NULL;
}

static struct mx_slice member_str(const struct mx_event *e, const struct mx_ev_field *obj, const char *key)
{
    const struct mx_ev_field *f = member(e, obj, key);
    return f && f->kind == MX_EV_STR ? mx_ev_field_str(e, f) : mx_slice_make(NULL, 0);
}

static bool slice_is(struct mx_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && !memcmp(s.ptr, lit, n);
}

static void frames_of(const struct mx_event *e, const struct mx_ev_field *f, mx_frame_t *a, mx_frame_t *b)
{
    const struct mx_ev_field *x = f ? mx_ev_first(e, f) : NULL;
    *a = *b = 0;
    if (x && x->kind == MX_EV_UINT)
        *a = *b = x->v.u;
    x = x ? mx_ev_next(e, x) : NULL;
    if (x && x->kind == MX_EV_UINT)
        *b = x->v.u;
}

static bool unhex32(struct mx_slice s, uint8_t out[32])
{
    if (s.len != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        uint8_t c = s.ptr[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return false;
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return true;
}

/* Index keys are never 0 (the map's empty slot). */
static uint64_t key_of(struct jrep *r, const void *p, size_t n)
{
    uint64_t k = mx_hash(r->hasher, p, n);
    return k ? k : 1;
}

/* ---- Reading records ---- */

static void on_flow_start(struct jrep *r, const struct mx_event *e)
{
    if (!e->flow || mx_idmap_get(&r->flows, e->flow))
        return;
    struct jflow *f = calloc(1, sizeof(*f));
    if (!f || !mx_idmap_put(&r->flows, e->flow, f)) {
        free(f);
        r->failed = true;
        return;
    }
    mx_text_copy(f->proto, sizeof(f->proto), mx_ev_get_str(e, "proto"));
    mx_text_copy(f->client, sizeof(f->client), mx_ev_get_str(e, "client"));
    mx_text_copy(f->server, sizeof(f->server), mx_ev_get_str(e, "server"));
    f->client_port = (uint16_t)mx_ev_get_int(e, "client_port", 0);
    f->server_port = (uint16_t)mx_ev_get_int(e, "server_port", 0);
}

/* The role of a transfer: LMTP delivers (RFC 2033); SMTP on 587 or 465, or
 * after a successful AUTH, is submission (RFC 6409, RFC 8314); other SMTP
 * relays; POP3 and IMAP give the message to its reader. */
static enum role role_of(const struct jflow *f, struct mx_slice source)
{
    if (slice_is(source, "imap.append"))
        return R_APPEND;
    if (source.len > 5 && !memcmp(source.ptr, "lmtp.", 5))
        return R_DELIVERY;
    if (source.len > 5 && (!memcmp(source.ptr, "pop3.", 5) || !memcmp(source.ptr, "imap.", 5)))
        return R_RETRIEVAL;
    if (f && (f->server_port == 587 || f->server_port == 465 || f->authed))
        return R_SUBMISSION;
    return R_RELAY;
}

/* The journey of a message: by its Message-ID; else, by its body's digest,
 * one whose own Message-ID is unknown (a later hop may add one: it is taken
 * then). A message with a Message-ID never joins one with another, whatever
 * their bodies. Returns the index + 1, or 0 for a new one; *by_body says how. */
static uint32_t find(struct jrep *r, const char *id, const uint8_t *body, bool *by_body)
{
    *by_body = false;
    if (id[0]) {
        uint32_t j = (uint32_t)(uintptr_t)mx_idmap_get(&r->by_id, key_of(r, id, strlen(id)));
        if (j && !strcmp(journey_at(r, j - 1)->msgid, id))
            return j;
    }
    if (!body)
        return 0;
    uint32_t j = (uint32_t)(uintptr_t)mx_idmap_get(&r->by_body, key_of(r, body, 32));
    if (!j)
        return 0;
    struct journey *jy = journey_at(r, j - 1);
    if (!jy->has_body || memcmp(jy->body, body, 32) || jy->msgid[0])
        return 0;
    *by_body = true;
    return j;
}

static void index_id(struct jrep *r, uint32_t j, const char *id)
{
    uint64_t k = key_of(r, id, strlen(id));
    if (!mx_idmap_get(&r->by_id, k) && !mx_idmap_put(&r->by_id, k, (void *)(uintptr_t)j))
        r->failed = true;
}

static void on_message(struct jrep *r, const struct mx_event *e)
{
    if (mx_ev_get_int(e, "fragment", 0))
        return; /* a part of a message (TOP, BODY[HEADER], a section) is no transfer of it */
    struct mx_slice source = mx_ev_get_str(e, "carried_by");
    struct mx_slice mid = mx_ev_get_str(e, "headers.message_id");
    char id[JOURNEY_ID_CAP] = "";
    /* surrounding blanks aside; a cut or overlong one links nothing */
    while (mid.len && (mid.ptr[0] == ' ' || mid.ptr[0] == '\t'))
        mid.ptr++, mid.len--;
    while (mid.len && (mid.ptr[mid.len - 1] == ' ' || mid.ptr[mid.len - 1] == '\t'))
        mid.len--;
    if (mid.len && mid.len < sizeof(id) && !mx_ev_get_int(e, "headers.message_id_truncated", 0))
        mx_text_copy(id, sizeof(id), mid);
    uint8_t body[32];
    bool has_body = unhex32(mx_ev_get_str(e, "body_sha256"), body);
    if (!id[0] && !has_body)
        return;
    bool by_body;
    uint32_t j = find(r, id, has_body ? body : NULL, &by_body);
    if (!j) {
        enum mx_buf_status st;
        struct journey *jy = mx_buf_push(&r->journeys, &st);
        if (!jy) {
            r->not_linked++;
            r->failed |= st == MX_BUF_NOMEM;
            return;
        }
        j = (uint32_t)r->journeys.n;
        if (id[0]) {
            snprintf(jy->msgid, sizeof(jy->msgid), "%s", id);
            index_id(r, j, id);
        }
        if (has_body) {
            memcpy(jy->body, body, 32);
            jy->has_body = true;
            uint64_t k = key_of(r, body, 32);
            /* the first message with this body keeps the key, unless it has a
             * Message-ID and this one has none: only those link by body */
            uint32_t held = (uint32_t)(uintptr_t)mx_idmap_get(&r->by_body, k);
            if ((!held || (!id[0] && journey_at(r, held - 1)->msgid[0])) &&
                !mx_idmap_put(&r->by_body, k, (void *)(uintptr_t)j))
                r->failed = true;
        }
        mx_text_copy(jy->subject, sizeof(jy->subject), mx_ev_get_str(e, "headers.subject"));
    }
    struct journey *jy = journey_at(r, j - 1);
    if (by_body && id[0]) {
        snprintf(jy->msgid, sizeof(jy->msgid), "%s", id); /* a hop added it */
        index_id(r, j, id);
    }
    if (!jy->subject[0])
        mx_text_copy(jy->subject, sizeof(jy->subject), mx_ev_get_str(e, "headers.subject"));
    struct jflow *f = mx_idmap_get(&r->flows, e->flow);
    if (jy->n_hops >= JOURNEY_SHOWN) {
        /* Only the first JOURNEY_SHOWN transfers are listed: the others are
         * counted, not kept (a message sent again and again would fill the
         * store), and its transaction and failures find no hop. */
        jy->dropped++;
        if (f)
            f->txn_hop = f->last_hop = 0;
        return;
    }
    enum mx_buf_status st;
    struct hop *h = mx_buf_push(&r->hops, &st);
    if (!h) {
        jy->dropped++;
        r->hops_dropped++;
        r->failed |= st == MX_BUF_NOMEM;
        if (f)
            f->txn_hop = f->last_hop = 0;
        return;
    }
    uint32_t hi = (uint32_t)r->hops.n;
    h->flow = e->flow;
    h->ts = e->ts;
    h->end = MX_TIME_NONE;
    frames_of(e, mx_ev_get(e, "frames"), &h->first, &h->last);
    h->size = (uint64_t)mx_ev_get_int(e, "size", 0);
    h->role = (uint8_t)role_of(f, source);
    h->partial = mx_ev_get_int(e, "partial", 0) != 0;
    h->by_body = by_body;
    h->body_changed = has_body && jy->has_body && memcmp(jy->body, body, 32) != 0;
    if (has_body && !jy->has_body) {
        memcpy(jy->body, body, 32);
        jy->has_body = true;
    }
    mx_text_copy(h->source, sizeof(h->source), source);
    snprintf(h->outcome, sizeof(h->outcome), "%s",
             h->role == R_RETRIEVAL ? "retrieved"
             : h->role == R_APPEND  ? "appended"
                                    : "unknown");
    mx_text_copy(h->sha, sizeof(h->sha), mx_ev_get_str(e, "sha256"));
    if (f) {
        snprintf(h->proto, sizeof(h->proto), "%s", f->proto);
        snprintf(h->client, sizeof(h->client), "%s", f->client);
        snprintf(h->server, sizeof(h->server), "%s", f->server);
        h->client_port = f->client_port;
        h->server_port = f->server_port;
        h->authed = f->authed;
        if (h->role == R_SUBMISSION || h->role == R_RELAY || h->role == R_DELIVERY)
            f->txn_hop = hi;
    }
    /* the Received fields, topmost first (RFC 5321 §4.4): their ids name the
     * queue entries of the hops before */
    const struct mx_ev_field *rl = mx_ev_get(e, "headers.received");
    uint32_t n = 0;
    for (const struct mx_ev_field *x = rl ? mx_ev_first(e, rl) : NULL; x; x = mx_ev_next(e, x), n++) {
        if (n >= JOURNEY_RIDS)
            continue;
        /* its first word: "id X (envelope-from <...>)" carries comments after it */
        struct mx_slice rid = member_str(e, x, "id");
        size_t w = 0;
        while (w < rid.len && rid.ptr[w] != ' ' && rid.ptr[w] != '\t' && rid.ptr[w] != '\r' && rid.ptr[w] != '\n' &&
               rid.ptr[w] != ';' && rid.ptr[w] != '(')
            w++;
        mx_text_copy(h->rids[n], sizeof(h->rids[n]), mx_slice_make(rid.ptr, w));
    }
    h->n_received = n + (uint32_t)mx_ev_get_int(e, "headers.received_not_listed", 0);
    if (jy->tail)
        hop_at(r, jy->tail)->next = hi;
    else
        jy->head = hi;
    jy->tail = hi;
    jy->n_hops++;
}

/* A recipient's final word: its LMTP delivery reply, else its RCPT reply. */
static bool rcpt_accepted(const struct mx_event *e, const struct mx_ev_field *rc)
{
    const struct mx_ev_field *d = member(e, rc, "delivery");
    struct mx_slice o = d ? member_str(e, d, "outcome") : member_str(e, rc, "outcome");
    return slice_is(o, "accepted");
}

static void on_transaction(struct jrep *r, const struct mx_event *e, struct jflow *f)
{
    struct hop *h = hop_at(r, f->txn_hop);
    struct mx_slice sha = mx_ev_get_str(e, "message.sha256");
    int64_t size = mx_ev_get_int(e, "message.size", -1);
    /* Its message: the one with the same digest, when --hashes computed
     * it; else the same size (the flow's latest message, which the
     * transaction record follows). */
    if (!h || (sha.len >= 16 && h->sha[0] ? memcmp(sha.ptr, h->sha, 16) != 0 : size < 0 || (uint64_t)size != h->size))
        return;
    f->txn_hop = 0;
    f->last_hop = (uint32_t)(h - (struct hop *)r->hops.p) + 1;
    h->has_txn = true;
    h->end = e->ts;
    h->depth = mx_ev_get_int(e, "trans_depth", 0);
    mx_text_copy(h->outcome, sizeof(h->outcome), mx_ev_get_str(e, "disposition"));
    mx_text_copy(h->queue_id, sizeof(h->queue_id), mx_ev_get_str(e, "queue_id"));
    const struct mx_ev_field *rl = mx_ev_get(e, "recipients");
    for (const struct mx_ev_field *x = rl ? mx_ev_first(e, rl) : NULL; x; x = mx_ev_next(e, x)) {
        if (rcpt_accepted(e, x))
            h->accepted++;
        else
            h->refused++;
    }
    const struct mx_ev_field *fl = mx_ev_get(e, "failure");
    if (fl) {
        mx_text_copy(h->step, sizeof(h->step), member_str(e, fl, "step"));
        const struct mx_ev_field *c = member(e, fl, "code");
        if (c && (c->kind == MX_EV_INT || c->kind == MX_EV_UINT))
            snprintf(h->status, sizeof(h->status), "%" PRId64, c->kind == MX_EV_INT ? c->v.i : (int64_t)c->v.u);
        mx_text_copy(h->enhanced, sizeof(h->enhanced), member_str(e, fl, "enhanced"));
        mx_text_copy(h->text, sizeof(h->text), member_str(e, fl, "text"));
        frames_of(e, member(e, fl, "frames"), &h->rf1, &h->rf2);
    }
}

/* A failure of the last transaction's message (failure.c) names the frames
 * of the refusal, when the transaction's own did not. */
static void on_failure(struct jrep *r, const struct mx_event *e, struct jflow *f)
{
    struct hop *h = hop_at(r, f->last_hop);
    if (!h || h->rf1 || mx_ev_get_int(e, "trans_depth", -1) != h->depth)
        return;
    struct mx_slice k = mx_ev_get_str(e, "kind");
    if (slice_is(k, "message_refused") || slice_is(k, "transaction_unfinished"))
        frames_of(e, mx_ev_get(e, "frames"), &h->rf1, &h->rf2);
}

static void journey_event(void *ctx, const struct mx_event *e)
{
    struct jrep *r = ctx;
    const char *t = e->type;
    if (!strcmp(t, "flow_start")) {
        on_flow_start(r, e);
        return;
    }
    if (!strcmp(t, "message")) {
        on_message(r, e);
        return;
    }
    struct jflow *f = e->flow ? mx_idmap_get(&r->flows, e->flow) : NULL;
    if (!f)
        return;
    if (!strcmp(t, "smtp.transaction") || !strcmp(t, "lmtp.transaction"))
        on_transaction(r, e, f);
    else if (!strcmp(t, "failure"))
        on_failure(r, e, f);
    else if ((!strcmp(t, "smtp.auth") || !strcmp(t, "lmtp.auth")) && slice_is(mx_ev_get_str(e, "outcome"), "success"))
        f->authed = true;
    else if (!strcmp(t, "flow"))
        free(mx_idmap_take(&r->flows, e->flow)); /* the flow's last record */
}

/* ---- The journeys ---- */

/* Whether the message reached a mailbox at hop h: an LMTP delivery accepted
 * for a recipient, a retrieval, or an APPEND (the client stored it). */
static bool arrived(const struct hop *h)
{
    if (h->role == R_RETRIEVAL || h->role == R_APPEND)
        return true;
    return h->role == R_DELIVERY && h->has_txn && h->accepted > 0;
}

/* Whether the server of hop h refused the message, for good or for now
 * (not a transaction the capture saw no end of). */
static bool refused_at(const struct hop *h)
{
    return h->has_txn && (!strcmp(h->outcome, "rejected") || !strcmp(h->outcome, "deferred"));
}

/* Hop k's queue entry as the next hop's Received fields name it: the lowest
 * of the fields added since hop k, which hop k's server added on receipt. */
static void received_ids(struct hop **hs, uint32_t n)
{
    for (uint32_t k = 0; k + 1 < n; k++) {
        if (hs[k]->role == R_RETRIEVAL || hs[k]->role == R_APPEND)
            continue;
        for (uint32_t j = k + 1; j < n; j++) {
            if (hs[j]->n_received <= hs[k]->n_received)
                continue;
            uint32_t added = hs[j]->n_received - hs[k]->n_received;
            if (added <= JOURNEY_RIDS && hs[j]->rids[added - 1][0]) {
                snprintf(hs[k]->received_id, sizeof(hs[k]->received_id), "%s", hs[j]->rids[added - 1]);
                hs[k]->confirmed = hs[k]->queue_id[0] && !strcmp(hs[k]->queue_id, hs[k]->received_id);
            }
            break;
        }
    }
}

static void hop_name(const struct hop *h, char *out, size_t cap)
{
    if (h->role == R_RETRIEVAL)
        snprintf(out, cap, "MUA (%s)", !strcmp(h->proto, "pop3") ? "POP3" : "IMAP");
    else
        snprintf(out, cap, "%s", role_nodes[h->role]);
}

static void emit_hop(struct mx_event *ev, const struct hop *h, bool first)
{
    mx_ev_obj(ev, NULL);
    mx_ev_str(ev, "role", role_names[h->role]);
    if (h->proto[0])
        mx_ev_str(ev, "proto", h->proto);
    mx_ev_uint(ev, "flow", h->flow);
    if (h->client[0]) {
        mx_ev_str(ev, "client", h->client);
        mx_ev_uint(ev, "client_port", h->client_port);
        mx_ev_str(ev, "server", h->server);
        mx_ev_uint(ev, "server_port", h->server_port);
    }
    if (h->ts != MX_TIME_NONE)
        mx_ev_time(ev, "start", h->ts);
    if (h->end != MX_TIME_NONE)
        mx_ev_time(ev, "end", h->end);
    mx_ev_str(ev, "carried_by", h->source);
    mx_ev_uint(ev, "size", h->size);
    if (h->authed)
        mx_ev_bool(ev, "authenticated", true);
    if (!first)
        mx_ev_str(ev, "linked_by", h->by_body ? "body_sha256" : "message_id");
    if (h->body_changed)
        mx_ev_bool(ev, "body_changed", true);
    if (h->partial)
        mx_ev_bool(ev, "partial", true);
    mx_ev_str(ev, "outcome", h->outcome);
    if (h->queue_id[0])
        mx_ev_wire(ev, "queue_id", mx_slice_make(h->queue_id, strlen(h->queue_id)));
    if (h->received_id[0])
        mx_ev_wire(ev, "received_id", mx_slice_make(h->received_id, strlen(h->received_id)));
    if (h->queue_id[0] && h->received_id[0])
        mx_ev_bool(ev, "queue_id_confirmed", h->confirmed);
    if (h->has_txn) {
        mx_ev_uint(ev, "accepted_recipients", h->accepted);
        mx_ev_uint(ev, "refused_recipients", h->refused);
    }
    if (h->status[0] || h->text[0]) {
        mx_ev_obj(ev, "reply");
        mx_ev_str(ev, "status", h->status[0] ? h->status : "?");
        if (h->enhanced[0])
            mx_ev_wire(ev, "enhanced", mx_slice_make(h->enhanced, strlen(h->enhanced)));
        if (h->text[0])
            mx_ev_wire(ev, "text", mx_slice_make(h->text, strlen(h->text)));
        mx_ev_end(ev);
    }
    mx_ev_frames(ev, h->first, h->last);
    mx_ev_end(ev);
}

/* One line of the text block: relative time, role, the two ends, queue id. */
static size_t hop_line(struct mx_sink *s, const struct hop *h, char *out, size_t cap)
{
    char rel[32] = "";
    if (h->ts != MX_TIME_NONE)
        snprintf(rel, sizeof(rel), "%.6f", mx_time_secs(mx_sink_epoch(s), h->ts));
    char q[96] = "";
    if (h->queue_id[0])
        snprintf(q, sizeof(q), ", queued as %s%s", h->queue_id, h->confirmed ? " (Received agrees)" : "");
    else if (h->received_id[0])
        snprintf(q, sizeof(q), ", id %s (from the next hop's Received)", h->received_id);
    char fr[64];
    if (h->last > h->first)
        snprintf(fr, sizeof(fr), "frames %" PRIu64 "-%" PRIu64, h->first, h->last);
    else
        snprintf(fr, sizeof(fr), "frame %" PRIu64, h->first);
    int n = snprintf(out, cap, "\n%12s  %-10s #%-4" PRIu64 " %s:%u -> %s:%u %s%s, %s%s, %s", rel, role_names[h->role],
                     h->flow, h->client, h->client_port, h->server, h->server_port, h->proto, h->authed ? " AUTH" : "",
                     h->outcome, q, fr);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static void emit_journey(struct jrep *r, struct mx_sink *s, struct journey *jy)
{
    struct hop *hs[JOURNEY_SHOWN];
    uint32_t n = 0, more = jy->dropped;
    for (struct hop *h = hop_at(r, jy->head); h; h = hop_at(r, h->next)) {
        if (n < JOURNEY_SHOWN)
            hs[n++] = h;
        else
            more++;
    }
    /* in time order (records of different sessions may come out of it) */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t k = i; k > 0 && hs[k]->ts < hs[k - 1]->ts; k--) {
            struct hop *t = hs[k];
            hs[k] = hs[k - 1];
            hs[k - 1] = t;
        }
    received_ids(hs, n);
    bool delivered = false;
    for (uint32_t i = 0; i < n; i++)
        delivered |= arrived(hs[i]);
    const struct hop *last = hs[n - 1];
    bool stopped = !delivered && refused_at(last);
    char path[256];
    size_t pl = (size_t)snprintf(path, sizeof(path), "%s",
                                 hs[0]->role == R_SUBMISSION || hs[0]->role == R_APPEND ? "MUA"
                                 : hs[0]->role == R_RETRIEVAL                           ? "MDA"
                                                                                        : "MTA");
    for (uint32_t i = 0; i < n && pl < sizeof(path) - 32; i++) {
        char nm[24];
        hop_name(hs[i], nm, sizeof(nm));
        pl += (size_t)snprintf(path + pl, sizeof(path) - pl, " → %s", nm);
    }
    struct mx_event *ev = mx_event_begin(s, "journey", 0, hs[0]->ts);
    if (jy->msgid[0])
        mx_ev_wire(ev, "message_id", mx_slice_make(jy->msgid, strlen(jy->msgid)));
    if (jy->subject[0])
        mx_ev_wire(ev, "subject", mx_slice_make(jy->subject, strlen(jy->subject)));
    if (jy->has_body) {
        char hx[65];
        for (int i = 0; i < 32; i++)
            snprintf(hx + 2 * i, 3, "%02x", jy->body[i]);
        mx_ev_str(ev, "body_sha256", hx);
    }
    mx_ev_str(ev, "path", path);
    mx_ev_str(ev, "outcome", delivered ? "delivered" : stopped ? "stopped" : "in_transit");
    char note[320] = "";
    if (stopped) {
        snprintf(note, sizeof(note), "stopped: %s by %s:%u (%s %s)%s%s%s%s%s%s", last->outcome, last->server,
                 last->server_port, last->proto, role_names[last->role], last->status[0] ? ": " : "", last->status,
                 last->enhanced[0] ? " " : "", last->enhanced, last->text[0] ? " " : "", last->text);
        mx_ev_obj(ev, "stopped");
        mx_ev_uint(ev, "hop", n - 1);
        mx_ev_uint(ev, "flow", last->flow);
        mx_ev_wire(ev, "note", mx_slice_make(note, strlen(note))); /* wire text, maybe cut mid-character */
        mx_ev_frames(ev, last->rf1 ? last->rf1 : last->first, last->rf1 ? last->rf2 : last->last);
        mx_ev_end(ev);
    } else if (!delivered) {
        char when[40];
        mx_time_iso(last->end != MX_TIME_NONE ? last->end : last->ts, when, sizeof(when));
        snprintf(note, sizeof(note), "last seen: %s by %s:%u%s%s%s at %s; not seen after", last->outcome, last->server,
                 last->server_port, last->queue_id[0] ? " (queue id " : "", last->queue_id,
                 last->queue_id[0] ? ")" : "", when);
        mx_ev_wire(ev, "last_seen", mx_slice_make(note, strlen(note)));
    }
    mx_ev_arr(ev, "hops");
    for (uint32_t i = 0; i < n; i++)
        emit_hop(ev, hs[i], i == 0);
    mx_ev_end(ev);
    if (more)
        mx_ev_uint(ev, "hops_not_listed", more);
    mx_ev_tone(ev, delivered ? MX_TONE_GOOD : stopped ? MX_TONE_BAD : MX_TONE_WARN);
    if (mx_ev_wants_text(ev)) {
        /* a block: the journey's line, then one line per hop (the text
         * reporter indents the lines after the first) */
        char block[JOURNEY_SHOWN * 224 + 1024];
        size_t bl = (size_t)snprintf(block, sizeof(block), "journey %s \"%s\": %u hop%s, %s; %s",
                                     jy->msgid[0] ? jy->msgid : "(no Message-ID)", jy->subject, n + more,
                                     n + more == 1 ? "" : "s", path,
                                     delivered ? "delivered"
                                     : note[0] ? note
                                               : "not delivered");
        for (uint32_t i = 0; i < n && bl < sizeof(block) - 1; i++)
            bl += hop_line(s, hs[i], block + bl, sizeof(block) - bl);
        if (stopped && bl < sizeof(block) - 1)
            snprintf(block + bl, sizeof(block) - bl, "\n%12s %s", "", note);
        mx_ev_text(ev, "%s", block);
    }
    mx_event_emit(s, ev);
}

static void journey_end(void *ctx, struct mx_sink *s)
{
    struct jrep *r = ctx;
    for (size_t i = 0; i < r->journeys.n; i++) {
        struct journey *jy = journey_at(r, i);
        if (jy->n_hops + jy->dropped >= 2 && jy->head)
            emit_journey(r, s, jy);
    }
    if (r->not_linked || r->hops_dropped) {
        struct mx_event *ev = mx_event_begin(s, "journey", 0, MX_TIME_NONE);
        mx_ev_uint(ev, "messages_not_linked", r->not_linked);
        mx_ev_uint(ev, "hops_not_kept", r->hops_dropped);
        mx_ev_tone(ev, MX_TONE_WARN);
        mx_ev_text(ev,
                   "journeys: %" PRIu64 " message%s not linked and %" PRIu64
                   " transfer%s not kept (the index holds %u messages and %u transfers)",
                   r->not_linked, r->not_linked == 1 ? "" : "s", r->hops_dropped, r->hops_dropped == 1 ? "" : "s",
                   JOURNEY_MAX, JOURNEY_HOPS_MAX);
        mx_event_emit(s, ev);
    }
}

static bool journey_finish(void *ctx)
{
    return !((struct jrep *)ctx)->failed;
}

static void journey_free(void *ctx)
{
    struct jrep *r = ctx;
    for (size_t i = 0; i < r->flows.cap; i++)
        if (r->flows.slot[i].id)
            free(r->flows.slot[i].val);
    mx_idmap_free(&r->flows);
    mx_idmap_free(&r->by_id);
    mx_idmap_free(&r->by_body);
    mx_buf_free(&r->journeys);
    mx_buf_free(&r->hops);
    mx_hasher_free(r->hasher);
    free(r);
}

static const struct mx_reporter_ops journey_ops = {
    .event = journey_event,
    .end = journey_end,
    .finish = journey_finish,
    .free = journey_free,
};

bool mx_journey_add(struct mx_sink *s)
{
    struct jrep *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    mx_buf_init(&r->journeys, sizeof(struct journey), 64, JOURNEY_MAX);
    mx_buf_init(&r->hops, sizeof(struct hop), 64, JOURNEY_HOPS_MAX);
    r->hasher = mx_hasher_new();
    if (!r->hasher || !mx_sink_add(s, &journey_ops, r)) {
        mx_hasher_free(r->hasher);
        free(r);
        return false;
    }
    return true;
}
