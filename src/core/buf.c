/* buf.c - the growable array with a cap (buf.h). */
#include "core/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void mx_buf_init(struct mx_buf *b, size_t size, size_t first, size_t max)
{
    b->p = NULL;
    b->n = b->cap = 0;
    b->size = size ? size : 1;
    b->first = first ? first : 1;
    b->max = max;
}

enum mx_buf_status mx_buf_grow(struct mx_buf *b, size_t more)
{
    if (more > b->max || b->n > b->max - more)
        return MX_BUF_CAPPED;
    size_t need = b->n + more;
    if (need <= b->cap)
        return MX_BUF_OK;
    size_t cap = b->cap ? b->cap : b->first;
    while (cap < need)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    if (cap > b->max)
        cap = b->max;
    if (cap > SIZE_MAX / b->size)
        return MX_BUF_NOMEM;
    void *p = realloc(b->p, cap * b->size);
    if (!p)
        return MX_BUF_NOMEM;
    b->p = p;
    b->cap = cap;
    return MX_BUF_OK;
}

enum mx_buf_status mx_buf_append(struct mx_buf *b, const void *src, size_t n)
{
    enum mx_buf_status st = mx_buf_reserve(b, n);
    if (st != MX_BUF_OK || !n)
        return st;
    void *dst = mx_buf_at(b, b->n);
    if (src)
        memcpy(dst, src, n * b->size);
    else
        memset(dst, 0, n * b->size);
    b->n += n;
    return MX_BUF_OK;
}

void *mx_buf_push(struct mx_buf *b, enum mx_buf_status *st)
{
    enum mx_buf_status s = mx_buf_append(b, NULL, 1);
    if (st)
        *st = s;
    return s == MX_BUF_OK ? mx_buf_at(b, b->n - 1) : NULL;
}

void mx_buf_remove(struct mx_buf *b, size_t i)
{
    if (i >= b->n)
        return;
    memmove(mx_buf_at(b, i), mx_buf_at(b, i + 1), (b->n - i - 1) * b->size);
    b->n--;
}

void mx_buf_consume(struct mx_buf *b, size_t k)
{
    if (k >= b->n) {
        b->n = 0;
        return;
    }
    memmove(b->p, mx_buf_at(b, k), (b->n - k) * b->size);
    b->n -= k;
}

void mx_buf_clear(struct mx_buf *b, bool shrink)
{
    b->n = 0;
    if (shrink) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

void mx_buf_free(struct mx_buf *b)
{
    mx_buf_clear(b, true);
}
