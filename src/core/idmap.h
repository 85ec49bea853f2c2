/* idmap.h - a map from non-zero 64-bit ids (flow ids) to pointers, for the
 * records of flows still open: open addressing with linear probing, so a
 * capture of a million flows costs only what is open at once. */
#ifndef MX_IDMAP_H
#define MX_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mx_idmap {
    struct mx_idmap_slot {
        uint64_t id; /* 0: empty */
        void *val;
    } * slot;
    size_t cap, n; /* cap is 0 or a power of two */
};

/* The value of id, or NULL. */
void *mx_idmap_get(const struct mx_idmap *m, uint64_t id);
/* Adds or replaces id's value (id != 0, val != NULL); false when out of memory. */
bool mx_idmap_put(struct mx_idmap *m, uint64_t id, void *val);
/* Removes id and returns its value, or NULL if absent. */
void *mx_idmap_take(struct mx_idmap *m, uint64_t id);
/* Frees the table (not the values). */
void mx_idmap_free(struct mx_idmap *m);

#endif
