/* flow.c - the bidirectional TCP flow table: open addressing, backward-shift
 * deletion, three LRU lists (quiet, busy and closed), no allocation per packet. */
#include "flow/flow.h"
#include "core/digest.h"
#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

struct lru {
    struct mx_flow *head, *tail;
};

struct mx_flow_table {
    struct mx_flow **slots; /* open addressing, linear probing */
    uint32_t mask;          /* slot count - 1 (a power of two) */
    uint32_t count, max;
    uint64_t next_id;
    struct mx_hasher *hasher; /* keyed: hostile 4-tuples cannot build long probe runs */
    struct lru lru[3];        /* by list_of(): quiet, closed, busy */
};

/* A flow's list: closed ones apart, active ones by whether they carried
 * payload, so that each list is in touch order and expiry looks only at heads. */
static struct lru *list_of(struct mx_flow_table *t, const struct mx_flow *f)
{
    return &t->lru[f->state == MX_FLOW_CLOSED ? 1 : f->busy ? 2 : 0];
}

static int addr_cmp(const struct mx_addr *a, const struct mx_addr *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->b, b->b, a->family == 4 ? 4 : 16);
}

void mx_flow_key_make(struct mx_flow_key *k, const struct mx_addr *src, uint16_t sport, const struct mx_addr *dst,
                      uint16_t dport, bool *src_is_lo)
{
    int c = addr_cmp(src, dst);
    bool lo = c < 0 || (c == 0 && sport <= dport);
    const struct mx_addr *a = lo ? src : dst, *b = lo ? dst : src;
    size_t n = src->family == 4 ? 4 : 16;
    memset(k, 0, sizeof(*k)); /* padding and unused address bytes are zero: keys compare with memcmp */
    k->lo.family = a->family;
    k->hi.family = b->family;
    memcpy(k->lo.b, a->b, n);
    memcpy(k->hi.b, b->b, n);
    k->plo = lo ? sport : dport;
    k->phi = lo ? dport : sport;
    if (src_is_lo)
        *src_is_lo = lo;
}

/* FNV-1a over the key's bytes; keys are zero-padded so memcmp/hash are exact.
 * Unkeyed, so that a capture falls into the same buckets on every run:
 * crafted keys can only crowd one bucket (one worker at a time), which costs
 * the parallelism and no more. */
uint32_t mx_flow_key_shard(const struct mx_flow_key *k)
{
    const uint8_t *p = (const uint8_t *)k;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof(*k); i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h ^ (h >> 16);
}

/* The table's own hash: keyed with the table's random key. */
static uint32_t key_hash(const struct mx_flow_table *t, const struct mx_flow_key *k)
{
    uint64_t h = mx_hash(t->hasher, k, sizeof(*k));
    return (uint32_t)(h ^ (h >> 32));
}

static bool key_eq(const struct mx_flow_key *a, const struct mx_flow_key *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

struct mx_flow_table *mx_flow_table_new(uint32_t max_flows)
{
    struct mx_flow_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    /* Start small and grow with the load; the cap bounds the final size. */
    t->mask = 1023;
    t->slots = calloc(1024, sizeof(*t->slots));
    t->hasher = mx_hasher_new();
    if (!t->slots || !t->hasher) {
        mx_hasher_free(t->hasher);
        free(t->slots);
        free(t);
        return NULL;
    }
    t->max = max_flows ? max_flows : 1;
    t->next_id = 1;
    return t;
}

void mx_flow_table_free(struct mx_flow_table *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i <= t->mask; i++)
        free(t->slots[i]);
    free(t->slots);
    mx_hasher_free(t->hasher);
    free(t);
}

struct mx_flow *mx_flow_find(struct mx_flow_table *t, const struct mx_flow_key *k)
{
    uint32_t h = key_hash(t, k);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        struct mx_flow *f = t->slots[i];
        if (!f)
            return NULL;
        if (f->hash == h && key_eq(&f->key, k))
            return f;
    }
}

static void slot_put(struct mx_flow **slots, uint32_t mask, struct mx_flow *f)
{
    uint32_t i = f->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = f;
}

/* Doubles the slot array while the load stays under one half. */
static bool grow(struct mx_flow_table *t)
{
    if ((uint64_t)(t->count + 1) * 2 <= (uint64_t)t->mask + 1)
        return true;
    if (t->mask >= (1u << 30))
        return false;
    uint32_t nmask = t->mask * 2 + 1;
    struct mx_flow **ns = calloc((size_t)nmask + 1, sizeof(*ns));
    if (!ns)
        return false;
    for (uint32_t i = 0; i <= t->mask; i++)
        if (t->slots[i])
            slot_put(ns, nmask, t->slots[i]);
    free(t->slots);
    t->slots = ns;
    t->mask = nmask;
    return true;
}

static void lru_unlink(struct lru *l, struct mx_flow *f)
{
    if (f->lru_prev)
        f->lru_prev->lru_next = f->lru_next;
    else
        l->head = f->lru_next;
    if (f->lru_next)
        f->lru_next->lru_prev = f->lru_prev;
    else
        l->tail = f->lru_prev;
    f->lru_prev = f->lru_next = NULL;
}

static void lru_append(struct lru *l, struct mx_flow *f)
{
    f->lru_prev = l->tail;
    f->lru_next = NULL;
    if (l->tail)
        l->tail->lru_next = f;
    else
        l->head = f;
    l->tail = f;
}

struct mx_flow *mx_flow_add(struct mx_flow_table *t, const struct mx_flow_key *k)
{
    if (t->count >= t->max || !grow(t))
        return NULL;
    struct mx_flow *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->key = *k;
    f->hash = key_hash(t, k);
    f->id = t->next_id++;
    slot_put(t->slots, t->mask, f);
    t->count++;
    lru_append(&t->lru[MX_FLOW_ACTIVE], f);
    return f;
}

void mx_flow_touch(struct mx_flow_table *t, struct mx_flow *f, mx_frame_t frame, mx_time_t now)
{
    struct lru *l = list_of(t, f);
    f->touch_frame = frame;
    f->touch_now = now;
    if (l->tail == f)
        return;
    lru_unlink(l, f);
    lru_append(l, f);
}

/* Moves f to list `l` at the place its touch frame gives: near the tail, as
 * f was touched at the latest frame or shortly before. */
static void move_to(struct mx_flow_table *t, struct mx_flow *f, struct lru *to)
{
    lru_unlink(list_of(t, f), f);
    struct mx_flow *after = to->tail;
    while (after && after->touch_frame > f->touch_frame)
        after = after->lru_prev;
    f->lru_prev = after;
    f->lru_next = after ? after->lru_next : to->head;
    if (f->lru_next)
        f->lru_next->lru_prev = f;
    else
        to->tail = f;
    if (after)
        after->lru_next = f;
    else
        to->head = f;
}

void mx_flow_set_busy(struct mx_flow_table *t, struct mx_flow *f)
{
    if (f->busy || f->state == MX_FLOW_CLOSED)
        return;
    struct lru *to = &t->lru[2];
    move_to(t, f, to);
    f->busy = true;
}

void mx_flow_set_closed(struct mx_flow_table *t, struct mx_flow *f)
{
    if (f->state == MX_FLOW_CLOSED)
        return;
    lru_unlink(list_of(t, f), f);
    f->state = MX_FLOW_CLOSED;
    lru_append(list_of(t, f), f);
}

void mx_flow_remove(struct mx_flow_table *t, struct mx_flow *f)
{
    uint32_t i = f->hash & t->mask;
    while (t->slots[i] != f)
        i = (i + 1) & t->mask;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        struct mx_flow *g = t->slots[j];
        if (!g)
            break;
        uint32_t home = g->hash & t->mask;
        /* g may move to i if its home is not cyclically within (i, j]. */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->slots[i] = g;
            i = j;
        }
    }
    t->slots[i] = NULL;
    lru_unlink(list_of(t, f), f);
    t->count--;
    free(f);
}

struct mx_flow *mx_flow_oldest(const struct mx_flow_table *t, enum mx_flow_state which)
{
    if (which == MX_FLOW_CLOSED)
        return t->lru[1].head;
    struct mx_flow *q = t->lru[0].head, *b = t->lru[2].head;
    if (!q || !b)
        return q ? q : b;
    return q->touch_frame <= b->touch_frame ? q : b;
}

struct mx_flow *mx_flow_oldest_of(const struct mx_flow_table *t, bool busy)
{
    return t->lru[busy ? 2 : 0].head;
}

uint32_t mx_flow_count(const struct mx_flow_table *t)
{
    return t->count;
}

uint32_t mx_flow_capacity(const struct mx_flow_table *t)
{
    return t->max;
}

/* The spec's v1 hash with seed 0: the ends in order (address bytes, then
 * port as a number), then seed, both addresses, protocol, a zero byte and
 * both ports, in network order, through SHA-1. nDPI 4.2 has this too
 * (ndpi_flowv4_flow_hash), but it compares the ports after swapping their
 * bytes, so where both ends share an address (every loopback relay, a
 * content filter on 127.0.0.1) its ID is not the spec's, which Wireshark's
 * dissector gives (tests/community_id.py). */
bool mx_community_id(const struct mx_addr *a, uint16_t pa, const struct mx_addr *b, uint16_t pb,
                     char out[MX_COMMUNITY_ID_LEN])
{
    out[0] = '\0';
    if (a->family != b->family || (a->family != 4 && a->family != 6))
        return false;
    size_t n = a->family == 4 ? 4 : 16;
    int c = memcmp(a->b, b->b, n);
    const struct mx_addr *lo = a, *hi = b;
    uint16_t plo = pa, phi = pb;
    if (c > 0 || (c == 0 && pa > pb)) {
        lo = b;
        hi = a;
        plo = pb;
        phi = pa;
    }
    uint8_t buf[2 + 16 + 16 + 2 + 4] = { 0 }; /* seed 0 */
    memcpy(buf + 2, lo->b, n);
    memcpy(buf + 2 + n, hi->b, n);
    uint8_t *p = buf + 2 + 2 * n;
    p[0] = 6; /* TCP; p[1] is the pad */
    p[2] = (uint8_t)(plo >> 8);
    p[3] = (uint8_t)plo;
    p[4] = (uint8_t)(phi >> 8);
    p[5] = (uint8_t)phi;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(buf, 2 + 2 * n + 6, md, &mdlen, mx_md(MX_MD_SHA1), NULL) || mdlen != 20)
        return false;
    memcpy(out, "1:", 2);
    EVP_EncodeBlock((unsigned char *)out + 2, md, 20); /* 28 characters and a NUL */
    return true;
}
