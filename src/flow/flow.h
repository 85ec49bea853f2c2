/* flow.h - the bidirectional TCP flow table: hashed 5-tuples, LRU order, caps. */
#ifndef MX_FLOW_H
#define MX_FLOW_H

#include "core/mx.h"
#include "flow/reasm.h"

/* The canonical key: the lower (address, port) end first, so that both
 * directions of a connection find the same entry. */
struct mx_flow_key {
    struct mx_addr lo, hi;
    uint16_t plo, phi;
};

enum mx_flow_state {
    MX_FLOW_ACTIVE = 0,
    MX_FLOW_CLOSED, /* finished and reported; kept briefly so that late packets
                       of the same connection do not open a new flow */
};

struct mx_flow {
    struct mx_flow_key key;
    uint32_t hash;          /* keyed (the table's own key) */
    uint64_t id;            /* 1, 2, ... in order of creation */
    struct mx_addr addr[2]; /* [MX_DIR_C2S] client, [MX_DIR_S2C] server */
    uint16_t port[2];       /* likewise */
    enum mx_flow_state state;
    mx_time_t first_ts, last_ts;
    mx_frame_t first_frame, last_frame;
    /* The frame that last touched it, and the capture clock (the latest
     * time seen so far, which never steps back) then: lists are in this order. */
    mx_frame_t touch_frame;
    mx_time_t touch_now;
    bool busy; /* it has carried payload (its active list) */
    struct mx_flow *lru_prev, *lru_next;
    struct mx_reasm reasm;
    void *user; /* the engine's per-flow data */
};

struct mx_flow_table;

/* A table holding at most max_flows flows; NULL when out of memory. */
struct mx_flow_table *mx_flow_table_new(uint32_t max_flows);
/* Frees the table; flows still in it are freed without any callback. */
void mx_flow_table_free(struct mx_flow_table *t);

/* Builds the canonical key of a segment; *src_is_lo tells which end sent it. */
void mx_flow_key_make(struct mx_flow_key *k, const struct mx_addr *src, uint16_t sport, const struct mx_addr *dst,
                      uint16_t dport, bool *src_is_lo);

/* The Community ID (v1; https://github.com/corelight/community-id-spec) of
 * the TCP flow between a:pa and b:pb, either way round: "1:" and the base64
 * of a SHA-1, written NUL-terminated into out. False (out empty) when the
 * families differ. */
#define MX_COMMUNITY_ID_LEN 32
bool mx_community_id(const struct mx_addr *a, uint16_t pa, const struct mx_addr *b, uint16_t pb,
                     char out[MX_COMMUNITY_ID_LEN]);

/* Which bucket of flows a key belongs to, for worker threads: the same on
 * every run (the table itself hashes with a random key). */
uint32_t mx_flow_key_shard(const struct mx_flow_key *k);

/* Finds the flow of key k, or NULL. */
struct mx_flow *mx_flow_find(struct mx_flow_table *t, const struct mx_flow_key *k);

/* Adds a zero-filled flow for k (the caller fills in roles); NULL when the
 * table is full (evict first) or memory is out. It joins the active LRU tail. */
struct mx_flow *mx_flow_add(struct mx_flow_table *t, const struct mx_flow_key *k);

/* Marks activity at `frame` and capture clock `now`: moves the flow to the
 * tail of its list. */
void mx_flow_touch(struct mx_flow_table *t, struct mx_flow *f, mx_frame_t frame, mx_time_t now);

/* Moves an active flow that has carried payload to the busy list (which
 * times out after the idle timeout, not the quiet one). */
void mx_flow_set_busy(struct mx_flow_table *t, struct mx_flow *f);

/* Moves a flow to the closed list (it stays findable). */
void mx_flow_set_closed(struct mx_flow_table *t, struct mx_flow *f);

/* Unlinks and frees a flow; the caller has released what `user` holds. */
void mx_flow_remove(struct mx_flow_table *t, struct mx_flow *f);

/* The least recently touched active flow (of both lists), or closed flow, or NULL. */
struct mx_flow *mx_flow_oldest(const struct mx_flow_table *t, enum mx_flow_state which);
/* The least recently touched active flow of the quiet or of the busy list. */
struct mx_flow *mx_flow_oldest_of(const struct mx_flow_table *t, bool busy);

uint32_t mx_flow_count(const struct mx_flow_table *t);
uint32_t mx_flow_capacity(const struct mx_flow_table *t);

#endif
