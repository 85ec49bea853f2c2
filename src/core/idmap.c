/* idmap.c - see idmap.h. */
#include "core/idmap.h"

#include <stdlib.h>

static size_t home(const struct mx_idmap *m, uint64_t id)
{
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (m->cap - 1);
}

void *mx_idmap_get(const struct mx_idmap *m, uint64_t id)
{
    if (!m->cap || !id)
        return NULL;
    for (size_t i = home(m, id);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slot[i].id)
            return NULL;
        if (m->slot[i].id == id)
            return m->slot[i].val;
    }
}

static void place(struct mx_idmap *m, uint64_t id, void *val)
{
    size_t i = home(m, id);
    while (m->slot[i].id && m->slot[i].id != id)
        i = (i + 1) & (m->cap - 1);
    if (!m->slot[i].id)
        m->n++;
    m->slot[i].id = id;
    m->slot[i].val = val;
}

bool mx_idmap_put(struct mx_idmap *m, uint64_t id, void *val)
{
    if (!id || !val)
        return false;
    if ((m->n + 1) * 2 > m->cap) { /* at most half full */
        struct mx_idmap old = *m;
        m->cap = old.cap ? old.cap * 2 : 64;
        m->slot = calloc(m->cap, sizeof(*m->slot));
        if (!m->slot) {
            *m = old;
            return false;
        }
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slot[i].id)
                place(m, old.slot[i].id, old.slot[i].val);
        free(old.slot);
    }
    place(m, id, val);
    return true;
}

void *mx_idmap_take(struct mx_idmap *m, uint64_t id)
{
    if (!m->cap || !id)
        return NULL;
    size_t i = home(m, id);
    while (m->slot[i].id != id) {
        if (!m->slot[i].id)
            return NULL;
        i = (i + 1) & (m->cap - 1);
    }
    void *val = m->slot[i].val;
    m->slot[i].id = 0;
    m->n--;
    /* Backward shift: move later members of the cluster into the hole when
     * their home is not between the hole and them (Knuth 6.4, Algorithm R). */
    for (size_t j = (i + 1) & (m->cap - 1); m->slot[j].id; j = (j + 1) & (m->cap - 1)) {
        size_t h = home(m, m->slot[j].id);
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            m->slot[i] = m->slot[j];
            m->slot[j].id = 0;
            i = j;
        }
    }
    return val;
}

void mx_idmap_free(struct mx_idmap *m)
{
    free(m->slot);
    m->slot = NULL;
    m->cap = m->n = 0;
}
