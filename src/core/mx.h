/* mx.h - common types shared by every mxray module: slices, timestamps, directions. */
#ifndef MX_H
#define MX_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* A hex digit's value, either case (RFC 4648 §8), or -1: quoted-printable,
 * RFC 2231 and URL %XX escapes, key logs. */
static inline int mx_hex_value(uint8_t c)
{
    if ((unsigned)(c - '0') < 10u)
        return c - '0';
    c |= 0x20; /* 'A'-'F' to 'a'-'f' */
    return (unsigned)(c - 'a') < 6u ? c - 'a' + 10 : -1;
}

/* Wire bytes: pointer plus length, never NUL-terminated (STYLE.md rule 1). */
struct mx_slice {
    const uint8_t *ptr;
    size_t len;
};

static inline struct mx_slice mx_slice_make(const void *p, size_t n)
{
    struct mx_slice s = { (const uint8_t *)p, n };
    return s;
}

/* Timestamps are nanoseconds since the Unix epoch. */
typedef int64_t mx_time_t;
#define MX_NS_PER_SEC INT64_C(1000000000)
/* "No time": 0 is a real time (captures from 1970 exist). */
#define MX_TIME_NONE INT64_MIN
/* Capture times are clamped on input to [0, MX_TIME_MAX] (2^62 ns, the year
 * 2116): the difference of any two fits in 64 bits. */
#define MX_TIME_MAX (INT64_C(1) << 62)

/* b - a in seconds; 0 when either time is unknown. Saturates instead of
 * overflowing, for times that did not come through the input's clamp. */
static inline double mx_time_secs(mx_time_t a, mx_time_t b)
{
    int64_t d;
    if (a == MX_TIME_NONE || b == MX_TIME_NONE)
        return 0;
    if (__builtin_sub_overflow(b, a, &d))
        d = b > a ? INT64_MAX : INT64_MIN;
    return (double)d / 1e9;
}

/* A frame number is 1-based, as Wireshark numbers frames; with several input
 * files, numbering continues across them as in `mergecap -a`. 0 means none. */
typedef uint64_t mx_frame_t;

/* Direction of a byte stream within a TCP flow. */
enum mx_dir {
    MX_DIR_C2S = 0, /* client to server */
    MX_DIR_S2C = 1, /* server to client */
};

static inline enum mx_dir mx_dir_other(enum mx_dir d)
{
    return d == MX_DIR_C2S ? MX_DIR_S2C : MX_DIR_C2S;
}

/* An IPv4 or IPv6 address; IPv4 is held in the first 4 bytes. */
struct mx_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t b[16];
};

static inline bool mx_addr_eq(const struct mx_addr *a, const struct mx_addr *b)
{
    size_t n = a->family == 4 ? 4 : 16;
    if (a->family != b->family)
        return false;
    for (size_t i = 0; i < n; i++)
        if (a->b[i] != b->b[i])
            return false;
    return true;
}

/* Formats an address into buf (at least MX_ADDR_STRLEN bytes); returns buf. */
#define MX_ADDR_STRLEN 46
const char *mx_addr_str(const struct mx_addr *a, char *buf, size_t len);

#define MX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
