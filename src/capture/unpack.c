/* unpack.c - compressed captures read as they are: one reader (a stdio cookie
 * that libpcap reads, the compressed file read in 128 KiB blocks) and a codec
 * per compression, zlib, libzstd and liblzma, each only a step function. */
#define _GNU_SOURCE /* fopencookie (glibc) */
#include "capture/unpack.h"

#include <errno.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h> /* ZSTD_getErrorCode */

#define MX_UNPACK_BLOCK (1u << 17)           /* compressed bytes read at once */
#define MX_ZSTD_WINDOW_LOG 27                /* zstd's own default cap: a 128 MiB window */
#define MX_XZ_MEMLIMIT (UINT64_C(128) << 20) /* xz -9 needs 65 MiB */

struct mx_unpack;

/* A compression: how it is recognised and how it inflates. */
struct codec {
    const char *name;
    uint8_t magic[6];
    size_t magic_len;
    /* Prepares the decoder; false with u->why. */
    bool (*init)(struct mx_unpack *u);
    /* Inflates input from u->in[u->pos..u->len) into out[0..n), adding to
     * *made; `finish`: no input will follow. Returns 1 when a stream (member,
     * frame) ended here, 0 to go on, -1 on corrupt data (u->why). */
    int (*step)(struct mx_unpack *u, uint8_t *out, size_t n, size_t *made, bool finish);
    void (*end)(struct mx_unpack *u);
};

struct mx_unpack {
    const struct codec *c;
    FILE *fp;          /* the compressed file */
    uint8_t *in;       /* MX_UNPACK_BLOCK bytes */
    size_t pos, len;   /* unread input: in[pos..len) */
    uint64_t consumed; /* bytes read from fp */
    bool eof;          /* fp has no more */
    bool ended;        /* the last byte read ended a stream: an end here is clean */
    bool cut;          /* fp ended inside a stream */
    bool trailing;     /* gzip: bytes after a member that start no member, ignored as gzip(1) does */
    const char *why;   /* the decoder's error */
    union {
        z_stream z;
        ZSTD_DStream *zs;
        lzma_stream x;
    } s;
};

/* ---- gzip (RFC 1952) through zlib: members one after the other ---- */

static bool gz_init(struct mx_unpack *u)
{
    if (inflateInit2(&u->s.z, 15 + 16) != Z_OK) { /* +16: a gzip wrapper */
        u->why = "out of memory";
        return false;
    }
    return true;
}

static int gz_step(struct mx_unpack *u, uint8_t *out, size_t n, size_t *made, bool finish)
{
    (void)finish;
    z_stream *z = &u->s.z;
    if (u->trailing) {
        u->pos = u->len;
        return 1;
    }
    bool fresh = u->ended && u->pos < u->len;
    if (fresh)
        inflateReset(z); /* a further member */
    z->next_in = u->in + u->pos;
    z->avail_in = (uInt)(u->len - u->pos);
    z->next_out = out + *made;
    z->avail_out = (uInt)(n - *made > UINT32_MAX ? UINT32_MAX : n - *made);
    uInt before = z->avail_out;
    int r = inflate(z, Z_NO_FLUSH);
    u->pos = u->len - z->avail_in;
    *made += before - z->avail_out;
    if (r == Z_DATA_ERROR && fresh) {
        u->trailing = true; /* not a member after a member: the end */
        u->pos = u->len;
        return 1;
    }
    if (r == Z_STREAM_END)
        return 1;
    if (r == Z_OK || r == Z_BUF_ERROR)
        return 0;
    u->why = r == Z_MEM_ERROR ? "out of memory" : "corrupt gzip data";
    return -1;
}

static void gz_end(struct mx_unpack *u)
{
    inflateEnd(&u->s.z);
}

/* ---- zstd (RFC 8878): frames one after the other ---- */

static bool zs_init(struct mx_unpack *u)
{
    u->s.zs = ZSTD_createDStream();
    if (!u->s.zs || ZSTD_isError(ZSTD_DCtx_setParameter(u->s.zs, ZSTD_d_windowLogMax, MX_ZSTD_WINDOW_LOG))) {
        u->why = "out of memory";
        return false;
    }
    return true;
}

static int zs_step(struct mx_unpack *u, uint8_t *out, size_t n, size_t *made, bool finish)
{
    (void)finish;
    ZSTD_inBuffer in = { u->in, u->len, u->pos };
    ZSTD_outBuffer o = { out, n, *made };
    size_t r = ZSTD_decompressStream(u->s.zs, &o, &in);
    u->pos = in.pos;
    *made = o.pos;
    if (ZSTD_isError(r)) {
        u->why = ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge ? "a zstd window larger than 128 MiB"
                                                                                  : "corrupt zstd data";
        return -1;
    }
    return r == 0; /* 0: a frame was decoded and flushed whole */
}

static void zs_end(struct mx_unpack *u)
{
    ZSTD_freeDStream(u->s.zs);
}

/* ---- xz through liblzma: streams one after the other ---- */

static bool xz_init(struct mx_unpack *u)
{
    u->s.x = (lzma_stream)LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&u->s.x, MX_XZ_MEMLIMIT, LZMA_CONCATENATED) != LZMA_OK) {
        u->why = "out of memory";
        return false;
    }
    return true;
}

static int xz_step(struct mx_unpack *u, uint8_t *out, size_t n, size_t *made, bool finish)
{
    lzma_stream *x = &u->s.x;
    x->next_in = u->in + u->pos;
    x->avail_in = u->len - u->pos;
    x->next_out = out + *made;
    x->avail_out = n - *made;
    lzma_ret r = lzma_code(x, finish ? LZMA_FINISH : LZMA_RUN);
    u->pos = u->len - x->avail_in;
    *made = n - x->avail_out;
    if (r == LZMA_STREAM_END)
        return 1;
    if (r == LZMA_OK || (r == LZMA_BUF_ERROR && !finish))
        return 0;
    if (r == LZMA_BUF_ERROR)
        return 0; /* finishing, and the data ended early: the reader calls it cut */
    u->why = r == LZMA_MEMLIMIT_ERROR ? "an xz dictionary larger than 128 MiB"
             : r == LZMA_MEM_ERROR    ? "out of memory"
                                      : "corrupt xz data";
    return -1;
}

static void xz_end(struct mx_unpack *u)
{
    lzma_end(&u->s.x);
}

static const struct codec codecs[] = {
    { "gzip", { 0x1f, 0x8b }, 2, gz_init, gz_step, gz_end },
    { "zstd", { 0x28, 0xb5, 0x2f, 0xfd }, 4, zs_init, zs_step, zs_end },
    { "xz", { 0xfd, '7', 'z', 'X', 'Z', 0x00 }, 6, xz_init, xz_step, xz_end },
};

/* ---- The reader ---- */

/* libpcap's read: fills buf with at least one byte, or returns 0 at the end
 * (the file's; a cut one is marked cut) or -1 on corrupt data. */
static ssize_t unpack_read(void *cookie, char *buf, size_t n)
{
    struct mx_unpack *u = cookie;
    size_t made = 0;
    while (made == 0 && n) {
        if (u->pos == u->len && !u->eof) {
            u->pos = 0;
            u->len = fread(u->in, 1, MX_UNPACK_BLOCK, u->fp);
            u->consumed += u->len;
            if (u->len == 0 && ferror(u->fp)) {
                u->why = strerror(errno);
                return -1;
            }
            u->eof = u->len == 0;
        }
        size_t pos = u->pos;
        bool finish = u->eof && u->pos == u->len;
        int r = u->c->step(u, (uint8_t *)buf, n, &made, finish);
        if (r < 0) {
            errno = EIO;
            return -1;
        }
        if (r == 1)
            u->ended = true;
        else if (u->pos != pos || made)
            u->ended = false;
        if (!made && u->pos == pos && finish) {
            u->cut = !u->ended;
            return 0;
        }
    }
    return (ssize_t)made;
}

static int unpack_close(void *cookie)
{
    struct mx_unpack *u = cookie;
    u->c->end(u);
    int r = fclose(u->fp);
    free(u->in);
    free(u);
    return r;
}

/* The codec whose magic the regular file fp starts with, or NULL; fp is
 * left at its start. */
static const struct codec *codec_of(FILE *fp)
{
    uint8_t m[6];
    size_t got = fread(m, 1, sizeof(m), fp);
    rewind(fp);
    for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
        if (got >= codecs[i].magic_len && !memcmp(m, codecs[i].magic, codecs[i].magic_len))
            return &codecs[i];
    return NULL;
}

FILE *mx_unpack_open(const char *path, struct mx_unpack **up, char *err, size_t errlen)
{
    struct stat st;
    *err = '\0';
    struct mx_unpack *u = NULL;
    FILE *fp = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? fopen(path, "rb") : NULL;
    const struct codec *c = fp ? codec_of(fp) : NULL;
    if (!c)
        goto fail;
    u = calloc(1, sizeof(*u));
    if (u)
        u->in = malloc(MX_UNPACK_BLOCK);
    if (!u || !u->in) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    u->c = c;
    u->fp = fp;
    if (!c->init(u)) {
        snprintf(err, errlen, "%s", u->why);
        goto fail;
    }
    cookie_io_functions_t io = { .read = unpack_read, .write = NULL, .seek = NULL, .close = unpack_close };
    FILE *stream = fopencookie(u, "rb", io);
    if (!stream) {
        c->end(u);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    *up = u;
    return stream;
fail:
    if (fp)
        fclose(fp);
    if (u)
        free(u->in);
    free(u);
    return NULL;
}

uint64_t mx_unpack_position(const struct mx_unpack *u)
{
    return u->consumed - (u->len - u->pos);
}

bool mx_unpack_cut(const struct mx_unpack *u)
{
    return u->cut;
}

const char *mx_unpack_error(const struct mx_unpack *u)
{
    return u->why;
}

const char *mx_unpack_name(const struct mx_unpack *u)
{
    return u->c->name;
}
