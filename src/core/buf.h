/* buf.h - a growable array with a cap, of bytes or of elements (curl's dynbuf): the one way
 * mxray's code grows memory. Growth doubles from a first size and never passes the cap; a
 * caller learns whether it ran into the cap (the input's fault: an anomaly) or out of memory
 * (mxray's own failure). */
#ifndef MX_BUF_H
#define MX_BUF_H

#include <stdbool.h>
#include <stddef.h>

enum mx_buf_status {
    MX_BUF_OK = 0,
    MX_BUF_CAPPED, /* it would pass its cap: nothing changed */
    MX_BUF_NOMEM,  /* out of memory: nothing changed */
};

struct mx_buf {
    void *p;      /* the elements, or NULL before the first */
    size_t n;     /* elements held */
    size_t cap;   /* elements allocated */
    size_t size;  /* bytes of one element (1 for bytes) */
    size_t first; /* elements allocated by the first growth */
    size_t max;   /* elements it may hold at most */
};

/* An empty array of elements of `size` bytes; `first` elements are
 * allocated when it first grows, then twice as many each time, up to `max`.
 * A zero-filled struct mx_buf must be initialised before use. */
void mx_buf_init(struct mx_buf *b, size_t size, size_t first, size_t max);

/* Makes room for `more` elements beyond those held (a call only when it must grow). */
enum mx_buf_status mx_buf_grow(struct mx_buf *b, size_t more);
static inline enum mx_buf_status mx_buf_reserve(struct mx_buf *b, size_t more)
{
    return more <= b->cap - b->n ? MX_BUF_OK : mx_buf_grow(b, more);
}

/* Appends n elements copied from src (src may be NULL: zeroed ones). */
enum mx_buf_status mx_buf_append(struct mx_buf *b, const void *src, size_t n);

/* Appends one zeroed element and returns it; NULL with *st set when it
 * cannot (st may be NULL). */
void *mx_buf_push(struct mx_buf *b, enum mx_buf_status *st);

/* The i-th element (i < b->n). */
static inline void *mx_buf_at(const struct mx_buf *b, size_t i)
{
    return (char *)b->p + i * b->size;
}

/* Removes the i-th element (i < b->n), keeping the others in order. */
void mx_buf_remove(struct mx_buf *b, size_t i);

/* Removes the first k elements (k <= b->n), keeping the rest in order. */
void mx_buf_consume(struct mx_buf *b, size_t k);

/* Forgets the elements; with `shrink`, frees the memory too. */
void mx_buf_clear(struct mx_buf *b, bool shrink);

/* Bytes allocated (for the memory cap). */
static inline size_t mx_buf_bytes(const struct mx_buf *b)
{
    return b->cap * b->size;
}

/* Frees the memory; the array is empty and may be used again. */
void mx_buf_free(struct mx_buf *b);

#endif
