/* event.h - events: ordered records that dissectors and the core build, and reporters print. */
#ifndef MX_EVENT_H
#define MX_EVENT_H

#include "core/buf.h"
#include "core/mx.h"
#include <stdarg.h>

enum mx_ev_kind {
    MX_EV_STR, /* UTF-8 text (wire bytes were made valid on the way in) */
    MX_EV_INT,
    MX_EV_UINT,
    MX_EV_DOUBLE,
    MX_EV_BOOL,
    MX_EV_NULL,
    MX_EV_OBJ, /* opens a nested object; closed by MX_EV_END */
    MX_EV_ARR, /* opens a nested array; closed by MX_EV_END */
    MX_EV_END,
};

/* One field of an event. Keys are string literals; inside arrays key is NULL. */
struct mx_ev_field {
    const char *key;
    enum mx_ev_kind kind;
    union {
        struct {
            uint32_t off, len;
        } s; /* into the event's text arena */
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } v;
};

/* An event being built, or handed to reporters. Field order is output order. */
struct mx_event {
    const char *type;            /* "flow", "gap", "anomaly", a protocol's "<proto>.command", ... */
    uint64_t flow;               /* flow id, 0 for run-wide records */
    mx_time_t ts;                /* time of the frame it came from, or MX_TIME_NONE */
    int dir;                     /* enum mx_dir, or -1 */
    struct mx_buf fields;        /* struct mx_ev_field, in output order */
    struct mx_buf arena;         /* bytes: the strings of the fields, then the text line */
    uint32_t text_off, text_len; /* the human one-liner for timelines, or len 0 */
    int tone;                    /* enum mx_tone: how a timeline colours it */
    int depth;
    bool open;
    bool oom;       /* a field could not be stored; the event is dropped */
    bool want_text; /* some reporter reads the one-line text */
};

/* How a timeline may colour an event. */
enum mx_tone {
    MX_TONE_NONE = 0,
    MX_TONE_GOOD, /* success: 2xx replies, accepted messages */
    MX_TONE_WARN, /* temporary failures, anomalies */
    MX_TONE_BAD,  /* permanent failures, errors */
};

struct mx_sink;

/* A reporter: receives every emitted event. */
struct mx_reporter_ops {
    /* Prints or stores one event; the event is only valid during the call. */
    void (*event)(void *ctx, const struct mx_event *e);
    /* Optional: the run is about to end (its summary comes next). A
     * reporter that derives records from what it saw (findings) emits them
     * here, through the sink. */
    void (*end)(void *ctx, struct mx_sink *s);
    /* Flushes output at the end of the run; returns false on a write error. */
    bool (*finish)(void *ctx);
    /* Frees ctx. */
    void (*free)(void *ctx);
    /* It reads the events' one-line texts (mx_ev_text): without such a
     * reporter the texts are not formatted at all. */
    bool wants_text;
    /* Optional: the run's summary record ev is being built
     * (mx_sink_summary); adds the reporter's own fields to it. False when
     * the reporter's output is short already (records it could not deliver). */
    bool (*summary)(void *ctx, struct mx_event *ev);
};

/* A deriver: records that follow from other records (failures). */
struct mx_deriver_ops {
    /* Reads record e, just handed to the reporters, and emits the records
     * that follow from it through s: mx_event_begin builds them aside, so e
     * stays valid meanwhile. Derived records reach the reporters (right
     * after e, in every thread mode) but not the deriver. */
    void (*event)(void *ctx, struct mx_sink *s, const struct mx_event *e);
    /* Optional: the same before the reporters see e; what it emits goes ahead
     * of e (a flow's last records come before its flow record). */
    void (*before)(void *ctx, struct mx_sink *s, const struct mx_event *e);
    /* Frees ctx. */
    void (*free)(void *ctx);
};

/* Creates an empty sink; NULL when out of memory. */
struct mx_sink *mx_sink_new(void);
/* Frees the sink and its reporters (calls their free). */
void mx_sink_free(struct mx_sink *s);
/* Subscribes a reporter; the sink owns ctx from now on. Returns false on OOM. */
bool mx_sink_add(struct mx_sink *s, const struct mx_reporter_ops *ops, void *ctx);
/* Sets the sink's deriver (one at most; the sink owns ctx from now on).
 * False when one is set already. */
bool mx_sink_set_deriver(struct mx_sink *s, const struct mx_deriver_ops *ops, void *ctx);
/* Time that relative times in timelines count from (the first packet). */
void mx_sink_set_epoch(struct mx_sink *s, mx_time_t t);
mx_time_t mx_sink_epoch(const struct mx_sink *s);
/* From now on only the events keep(ud, e) says yes to reach the reporters
 * (--flow), until mx_sink_end: what reporters derive then, and the summary,
 * all pass. keep sees every event once, in order; NULL: all pass. */
void mx_sink_select(struct mx_sink *s, bool (*keep)(void *ud, const struct mx_event *e), void *ud);
/* Calls every reporter's end hook (before the run's summary). */
void mx_sink_end(struct mx_sink *s);
/* Calls every reporter's summary hook on the summary record ev, before it is
 * emitted; false when one says its output is short. */
bool mx_sink_summary(struct mx_sink *s, struct mx_event *ev);
/* Calls every reporter's finish; returns false if one failed, or if an
 * event could not be stored (out of memory, or past the cap of its strings). */
bool mx_sink_finish(struct mx_sink *s);
/* Events that could not be stored, and so reached no reporter. */
uint64_t mx_sink_dropped(const struct mx_sink *s);
/* Number of events emitted so far. */
uint64_t mx_sink_count(const struct mx_sink *s);

/* Starts an event; `type` is a string literal. Fields follow with mx_ev_*,
 * then mx_event_emit() hands it to every reporter. One event at a time. The
 * record starts with "type", then "flow" (if flow != 0) and the flow's
 * "community_id", "client", "client_port", "server" and "server_port" (so
 * that each record stands alone), "ts" (unless MX_TIME_NONE), then
 * "decrypted": true while that flow is marked (below). A record derived from
 * another of the same flow takes that one's; others name the flow with
 * mx_event_begin_flow(). */
struct mx_event *mx_event_begin(struct mx_sink *s, const char *type, uint64_t flow, mx_time_t ts);
/* A flow as every record of it names it: its Community ID, its client's and
 * its server's address and port (the client sent the SYN; docs/manual.md). */
struct mx_ev_flow {
    const char *community_id, *client, *server;
    uint16_t client_port, server_port;
};
/* The same, for a record of a flow that fl describes (NULL: not known). */
struct mx_event *mx_event_begin_flow(struct mx_sink *s, const char *type, uint64_t flow, const struct mx_ev_flow *fl,
                                     mx_time_t ts);

/* From now on the records of `flow` (0: of none) are built from bytes
 * decrypted with a key log, and say so. Returns the flow marked before. */
uint64_t mx_sink_decrypted(struct mx_sink *s, uint64_t flow);
void mx_event_emit(struct mx_sink *s, struct mx_event *e);
/* Hands a finished event to every reporter (what emit does; the merge of
 * worker threads calls it with events they packed). */
void mx_sink_deliver(struct mx_sink *s, const struct mx_event *e);
/* Whether a reporter reads the one-line texts; a worker's sink is told so. */
bool mx_sink_wants_text(const struct mx_sink *s);
void mx_sink_set_wants_text(struct mx_sink *s, bool v);

/* Moving an event to another thread: mx_event_pack() writes it into
 * mx_event_packed_size() bytes (8-byte aligned); mx_event_unpack() makes a
 * view of them (which stays valid as long as the bytes). */
size_t mx_event_packed_size(const struct mx_event *e);
void mx_event_pack(const struct mx_event *e, void *dst);
void mx_event_unpack(void *src, struct mx_event *e);

/* "dir": "c2s" or "s2c"; also shown as an arrow in timelines. */
void mx_ev_dir(struct mx_event *e, enum mx_dir d);
/* Text of mxray's own (names, constants); must be valid UTF-8. */
void mx_ev_str(struct mx_event *e, const char *key, const char *s);
/* Bytes from the wire: invalid UTF-8 becomes the text \xNN, so the output is
 * always valid UTF-8 (reporters escape control characters as their format needs). */
void mx_ev_wire(struct mx_event *e, const char *key, struct mx_slice s);
/* A capped text (issue 26): `shown` is what was kept of it, `wire_len` its
 * real length in bytes. When it was cut (wire_len > shown.len) two siblings
 * follow the text: "<key>_len" (integer, the real length) and
 * "<key>_truncated" (true); an uncut text has neither. Call it through
 * mx_ev_wire_cut(), which spells the keys from a literal; every capped text
 * in a record goes through here, so the convention is one. */
void mx_ev_wire_cut3(struct mx_event *e, const char *key, const char *len_key, const char *cut_key,
                     struct mx_slice shown, uint64_t wire_len);
#define mx_ev_wire_cut(e, key, shown, wire_len) \
    mx_ev_wire_cut3((e), key, key "_len", key "_truncated", (shown), (wire_len))
/* Just the two siblings, for a text written by other means (shown_len bytes
 * of it written, wire_len its real length); nothing when it was not cut. */
void mx_ev_cut3(struct mx_event *e, const char *len_key, const char *cut_key, uint64_t shown_len, uint64_t wire_len);
#define mx_ev_cut(e, key, shown_len, wire_len) mx_ev_cut3((e), key "_len", key "_truncated", (shown_len), (wire_len))
void mx_ev_int(struct mx_event *e, const char *key, int64_t v);
void mx_ev_uint(struct mx_event *e, const char *key, uint64_t v);
void mx_ev_double(struct mx_event *e, const char *key, double v);
void mx_ev_bool(struct mx_event *e, const char *key, bool v);
void mx_ev_null(struct mx_event *e, const char *key);
/* An ISO 8601 UTC time with microseconds, e.g. "2024-05-01T10:00:00.123456Z". */
void mx_ev_time(struct mx_event *e, const char *key, mx_time_t t);
/* "frames": [first, last] (just [first] when equal; nothing when first is 0). */
void mx_ev_frames(struct mx_event *e, mx_frame_t first, mx_frame_t last);
void mx_ev_obj(struct mx_event *e, const char *key);
void mx_ev_arr(struct mx_event *e, const char *key);
void mx_ev_end(struct mx_event *e);
/* The colour hint for timelines. */
void mx_ev_tone(struct mx_event *e, enum mx_tone t);
/* The one-line human rendering for the text timeline (printf format; wire
 * bytes may be included: the text reporter escapes what needs escaping). */
void mx_ev_text(struct mx_event *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether mx_ev_text will be read: a producer may skip building its parts. */
static inline bool mx_ev_wants_text(const struct mx_event *e)
{
    return e->want_text;
}

/* Reading an event (reporters): its i-th field (i < e->fields.n). */
static inline const struct mx_ev_field *mx_ev_field_at(const struct mx_event *e, size_t i)
{
    return (const struct mx_ev_field *)mx_buf_at(&e->fields, i);
}
static inline struct mx_slice mx_ev_field_str(const struct mx_event *e, const struct mx_ev_field *f)
{
    return mx_slice_make((const char *)e->arena.p + f->v.s.off, f->v.s.len);
}
static inline struct mx_slice mx_ev_text_of(const struct mx_event *e)
{
    return mx_slice_make((const char *)e->arena.p + e->text_off, e->text_len);
}

/* The visible mark of the texts an event carries cut (the "<key>_truncated"
 * fields at any depth), for views that show its one-line text: " …[cut, 1384
 * bytes]", or with several " …[args cut, 1384 bytes] …[mailbox cut, 300
 * bytes]". Writes at most cap bytes (NUL-terminated, cut at a whole mark);
 * returns the length, 0 when nothing was cut. */
size_t mx_ev_cut_mark(const struct mx_event *e, char *buf, size_t cap);

/* Reading fields by name (reporters that analyse records). A path is keys
 * and array indexes joined by '.': "starttls.offered", "recipients.2.code".
 * Returns the field, or NULL. For an object or an array, the field returned
 * opens it: mx_ev_next() walks its members. */
const struct mx_ev_field *mx_ev_get(const struct mx_event *e, const char *path);
/* The member after `f` at the same level (skipping nested containers), or
 * NULL at the end of the enclosing container. */
const struct mx_ev_field *mx_ev_next(const struct mx_event *e, const struct mx_ev_field *f);
/* The first member of a container field, or NULL when it is empty. */
const struct mx_ev_field *mx_ev_first(const struct mx_event *e, const struct mx_ev_field *f);
/* A string field's text (empty for other kinds or NULL). */
struct mx_slice mx_ev_get_str(const struct mx_event *e, const char *path);
/* An integer or boolean field's value, or dflt. */
int64_t mx_ev_get_int(const struct mx_event *e, const char *path, int64_t dflt);

#endif
