/* cursor.h - bounds-checked reader for link, IP and TCP headers (STYLE.md rule 2). */
#ifndef MX_CURSOR_H
#define MX_CURSOR_H

#include "core/mx.h"
#include <string.h>

/* A read cursor over a buffer. A read past the end sets `err` and returns 0;
 * after that every read returns 0, so a decoder can check once at the end. */
struct mx_cursor {
    const uint8_t *ptr;
    size_t len;
    size_t pos;
    bool err;
};

static inline void mx_cursor_init(struct mx_cursor *c, const uint8_t *p, size_t n)
{
    c->ptr = p;
    c->len = n;
    c->pos = 0;
    c->err = false;
}

static inline size_t mx_cursor_left(const struct mx_cursor *c)
{
    return c->err ? 0 : c->len - c->pos;
}

static inline bool mx_cursor_has(const struct mx_cursor *c, size_t n)
{
    return !c->err && c->len - c->pos >= n;
}

static inline bool mx_cursor_skip(struct mx_cursor *c, size_t n)
{
    if (!mx_cursor_has(c, n)) {
        c->err = true;
        return false;
    }
    c->pos += n;
    return true;
}

static inline uint8_t mx_cursor_u8(struct mx_cursor *c)
{
    if (!mx_cursor_has(c, 1)) {
        c->err = true;
        return 0;
    }
    return c->ptr[c->pos++];
}

static inline uint16_t mx_cursor_be16(struct mx_cursor *c)
{
    if (!mx_cursor_has(c, 2)) {
        c->err = true;
        return 0;
    }
    uint16_t v = (uint16_t)((c->ptr[c->pos] << 8) | c->ptr[c->pos + 1]);
    c->pos += 2;
    return v;
}

static inline uint16_t mx_cursor_le16(struct mx_cursor *c)
{
    if (!mx_cursor_has(c, 2)) {
        c->err = true;
        return 0;
    }
    uint16_t v = (uint16_t)(c->ptr[c->pos] | (c->ptr[c->pos + 1] << 8));
    c->pos += 2;
    return v;
}

static inline uint32_t mx_cursor_be32(struct mx_cursor *c)
{
    if (!mx_cursor_has(c, 4)) {
        c->err = true;
        return 0;
    }
    const uint8_t *p = c->ptr + c->pos;
    uint32_t v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    c->pos += 4;
    return v;
}

static inline uint32_t mx_cursor_le32(struct mx_cursor *c)
{
    if (!mx_cursor_has(c, 4)) {
        c->err = true;
        return 0;
    }
    const uint8_t *p = c->ptr + c->pos;
    uint32_t v = ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
    c->pos += 4;
    return v;
}

/* Copies n bytes out; on a short buffer sets err and zero-fills dst. */
static inline bool mx_cursor_copy(struct mx_cursor *c, void *dst, size_t n)
{
    if (!mx_cursor_has(c, n)) {
        c->err = true;
        memset(dst, 0, n);
        return false;
    }
    memcpy(dst, c->ptr + c->pos, n);
    c->pos += n;
    return true;
}

/* Pointer to the current position; valid for mx_cursor_left() bytes. */
static inline const uint8_t *mx_cursor_here(const struct mx_cursor *c)
{
    return c->ptr + c->pos;
}

#endif
