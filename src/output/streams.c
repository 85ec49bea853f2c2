/* streams.c - `--streams DIR`: each reassembled TCP stream as two files plus index.json. */
#include "output/streams.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/idmap.h"
#include "event/text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MX_STREAMS_MAX_OPEN 128   /* streams with open files at once */
#define MX_STREAMS_MAX_GAPS 10000 /* gaps listed per direction; more are counted */
#define MX_STREAMS_NAME 160
#define MX_STREAMS_MAX_NAMES (1u << 20) /* 4-tuples whose repeats are counted */

struct gap {
    uint64_t off, len;
};

struct half {
    FILE *fp;
    bool created; /* the file exists: it is reopened, never created again */
    bool failed;  /* it could not be written: its bytes are counted, not written */
    dev_t dev;    /* the file created, known again by these on reopening */
    ino_t ino;
    uid_t uid;
    struct timespec ctime; /* its change time when it was last closed */
    uint64_t bytes;
    struct mx_buf gaps; /* struct gap, at most MX_STREAMS_MAX_GAPS */
    uint64_t gaps_dropped;
};

struct mx_stream {
    struct mx_stream *prev, *next; /* list of streams with open files */
    uint64_t flow;
    char proto[16];
    char cli[MX_ADDR_STRLEN], srv[MX_ADDR_STRLEN];
    uint16_t cport, sport;
    mx_frame_t first_frame;
    char name[MX_STREAMS_NAME]; /* file name without .c2s/.s2c */
    bool named;
    struct half h[2];
};

struct mx_streams {
    char dir[4096]; /* for messages */
    int dirfd;      /* every file is created relative to it */
    FILE *index;
    bool first_entry;
    bool failed;
    struct mx_stream *open_head, *open_tail;
    size_t n_open;
    struct mx_idmap names; /* a 4-tuple name's keyed hash -> how many streams took it */
    struct mx_hasher *hasher;
    uint64_t errors; /* files that could not be written */
};

static const char *const dir_ext[2] = { "c2s", "s2c" };

int mx_outdir_create(int dirfd, const char *name)
{
    return openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
}

int mx_outdir_open(const char *dir, char *err, size_t errlen)
{
    char name[1024];
    mx_text_escape(dir, name, sizeof(name));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", name, strerror(errno));
        return -1;
    }
    /* The directory is opened once: it is checked empty, and every file
     * created, in what this descriptor names, whatever its name comes to
     * name later. */
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = dirfd < 0 ? -1 : dup(dirfd);
    DIR *dh = fd < 0 ? NULL : fdopendir(fd);
    if (!dh) {
        snprintf(err, errlen, "cannot open %s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(err, errlen, "%s is not empty", name);
            goto fail;
        }
    }
    closedir(dh);
    return dirfd;
fail:
    if (dh)
        closedir(dh);
    if (dirfd >= 0)
        close(dirfd);
    return -1;
}

struct mx_streams *mx_streams_new(const char *dir, char *err, size_t errlen)
{
    struct mx_streams *ss = calloc(1, sizeof(*ss));
    char name[1024];
    mx_text_escape(dir, name, sizeof(name));
    if (!ss) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ss->dirfd = -1;
    ss->hasher = mx_hasher_new();
    if (!ss->hasher) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (snprintf(ss->dir, sizeof(ss->dir), "%s", dir) >= (int)sizeof(ss->dir)) {
        snprintf(err, errlen, "directory name too long");
        goto fail;
    }
    ss->dirfd = mx_outdir_open(dir, err, errlen);
    if (ss->dirfd < 0)
        goto fail;
    int fd = mx_outdir_create(ss->dirfd, "index.json");
    ss->index = fd < 0 ? NULL : fdopen(fd, "w");
    if (!ss->index) {
        snprintf(err, errlen, "cannot create %s/index.json: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    fputs("{\"streams\":[\n", ss->index);
    ss->first_entry = true;
    return ss;
fail:
    if (ss->dirfd >= 0)
        close(ss->dirfd);
    mx_hasher_free(ss->hasher);
    free(ss);
    return NULL;
}

/* A file of the directory could not be written: the run fails, and says so
 * once (streams_finish counts the others). */
static void streams_error(struct mx_streams *ss, const char *file, const char *why)
{
    ss->failed = true;
    if (ss->errors++)
        return;
    char dir[1024], name[MX_STREAMS_NAME * 4];
    mx_text_escape(ss->dir, dir, sizeof(dir));
    mx_text_escape(file, name, sizeof(name));
    fprintf(stderr, "mxray: --streams: %s/%s: %s; its bytes are not written\n", dir, name, why);
}

void mx_addr_for_name(const char *in, char *out, size_t len)
{
    size_t i = 0;
    for (; in[i] && i + 1 < len; i++)
        out[i] = in[i] == ':' ? '-' : in[i];
    out[i] = '\0';
}

static struct mx_stream *streams_open(struct mx_streams *ss, uint64_t flow_id, const char *proto,
                                      const struct mx_addr *cli, uint16_t cport, const struct mx_addr *srv,
                                      uint16_t sport, mx_frame_t first_frame)
{
    (void)ss;
    struct mx_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->flow = flow_id;
    snprintf(st->proto, sizeof(st->proto), "%s", proto ? proto : "");
    mx_addr_str(cli, st->cli, sizeof(st->cli));
    mx_addr_str(srv, st->srv, sizeof(st->srv));
    st->cport = cport;
    st->sport = sport;
    st->first_frame = first_frame;
    for (int d = 0; d < 2; d++)
        mx_buf_init(&st->h[d].gaps, sizeof(struct gap), 4, MX_STREAMS_MAX_GAPS);
    return st;
}

static void open_unlink(struct mx_streams *ss, struct mx_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        ss->open_head = st->next;
    if (st->next)
        st->next->prev = st->prev;
    else
        ss->open_tail = st->prev;
    st->prev = st->next = NULL;
    ss->n_open--;
}

static void close_files(struct mx_streams *ss, struct mx_stream *st)
{
    bool was_open = false;
    for (int d = 0; d < 2; d++) {
        struct half *h = &st->h[d];
        if (h->fp) {
            /* The change time after the last write: a file put in its place
             * later cannot have it (open_half). */
            struct stat sb;
            if (fflush(h->fp) == 0 && fstat(fileno(h->fp), &sb) == 0)
                h->ctime = sb.st_ctim;
            if (fclose(h->fp) != 0)
                ss->failed = true;
            h->fp = NULL;
            was_open = true;
        }
    }
    if (was_open)
        open_unlink(ss, st);
}

/* The keyed hash of a name, never 0 (an idmap key): a capture cannot aim
 * two 4-tuples at one count. */
static uint64_t name_hash(struct mx_streams *ss, const char *s)
{
    uint64_t h = mx_hash(ss->hasher, s, strlen(s));
    return h ? h : 1;
}

/* Names the stream after its 4-tuple, with _2, _3, ... when the 4-tuple
 * repeats: a count per 4-tuple, so naming costs the same however many
 * streams came before, and no file is tried. Two 4-tuples whose hashes meet
 * share a count (a number is skipped, names stay distinct: they differ in
 * the 4-tuple). Past MX_STREAMS_MAX_NAMES 4-tuples (or without memory) a
 * new one is named _flowN after its flow, unique in the run. */
static void choose_name(struct mx_streams *ss, struct mx_stream *st)
{
    char c[MX_ADDR_STRLEN], s[MX_ADDR_STRLEN], base[2 * MX_ADDR_STRLEN + 16];
    mx_addr_for_name(st->cli, c, sizeof(c));
    mx_addr_for_name(st->srv, s, sizeof(s));
    snprintf(base, sizeof(base), "%s.%u-%s.%u", c, st->cport, s, st->sport);
    uint64_t h = name_hash(ss, base);
    uintptr_t n = (uintptr_t)mx_idmap_get(&ss->names, h);
    if (n && mx_idmap_put(&ss->names, h, (void *)(n + 1)))
        snprintf(st->name, sizeof(st->name), "%s_%" PRIuPTR, base, n + 1);
    else if (!n && ss->names.n < MX_STREAMS_MAX_NAMES && mx_idmap_put(&ss->names, h, (void *)(uintptr_t)1))
        snprintf(st->name, sizeof(st->name), "%s", base);
    else
        snprintf(st->name, sizeof(st->name), "%s_flow%" PRIu64, base, st->flow);
    st->named = true;
}

/* Opens the file of one direction: created the first time (create_in);
 * after MX_STREAMS_MAX_OPEN closed it, reopened for append without
 * following a symbolic link or blocking on a FIFO put in its place, and
 * only if it is still the regular file created: the same device, inode and
 * owner, no other link to it, the bytes written so far and the change time
 * it had when closed (an inode number freed by deleting the file may come
 * back for a new one). -1 with *why on failure. */
static int open_half(struct mx_streams *ss, struct half *h, const char *file, const char **why)
{
    struct stat sb;
    int fd;
    if (!h->created) {
        fd = mx_outdir_create(ss->dirfd, file);
        if (fd >= 0 && fstat(fd, &sb) == 0) {
            h->created = true;
            h->dev = sb.st_dev;
            h->ino = sb.st_ino;
            h->uid = sb.st_uid;
            return fd;
        }
    } else {
        fd = openat(ss->dirfd, file, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &sb) == 0) {
            if (S_ISREG(sb.st_mode) && sb.st_dev == h->dev && sb.st_ino == h->ino && sb.st_uid == h->uid &&
                sb.st_nlink == 1 && (uint64_t)sb.st_size == h->bytes && sb.st_ctim.tv_sec == h->ctime.tv_sec &&
                sb.st_ctim.tv_nsec == h->ctime.tv_nsec)
                return fd;
            close(fd);
            *why = "replaced by another file during the run";
            return -1;
        }
    }
    *why = strerror(errno);
    if (fd >= 0)
        close(fd);
    return -1;
}

static FILE *file_for(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d)
{
    struct half *h = &st->h[d];
    if (h->fp)
        return h->fp;
    if (h->failed)
        return NULL;
    if (!st->named)
        choose_name(ss, st);
    bool was_open = st->h[0].fp || st->h[1].fp;
    /* Becomes an open stream: cap how many hold files at once. */
    while (!was_open && ss->n_open >= MX_STREAMS_MAX_OPEN && ss->open_head)
        close_files(ss, ss->open_head);
    char file[MX_STREAMS_NAME + 8];
    snprintf(file, sizeof(file), "%s.%s", st->name, dir_ext[d]);
    const char *why = NULL;
    bool reopen = h->created;
    int fd = open_half(ss, h, file, &why);
    if (fd >= 0) {
        h->fp = fdopen(fd, reopen ? "ab" : "wb");
        if (!h->fp) {
            why = strerror(errno);
            close(fd);
        }
    }
    if (!h->fp) {
        h->failed = true;
        streams_error(ss, file, why);
        return NULL;
    }
    if (!was_open) {
        st->prev = ss->open_tail;
        if (ss->open_tail)
            ss->open_tail->next = st;
        else
            ss->open_head = st;
        ss->open_tail = st;
        ss->n_open++;
    }
    return h->fp;
}

static void stream_data(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d, struct mx_slice b)
{
    if (!st || !b.len)
        return;
    FILE *fp = file_for(ss, st, d);
    if (fp && fwrite(b.ptr, 1, b.len, fp) != b.len)
        ss->failed = true;
    st->h[d].bytes += b.len;
}

static void stream_gap(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d, uint64_t off, uint64_t len)
{
    if (!st)
        return;
    struct half *h = &st->h[d];
    struct gap g = { off, len };
    switch (mx_buf_append(&h->gaps, &g, 1)) {
    case MX_BUF_CAPPED:
        h->gaps_dropped++;
        break;
    case MX_BUF_NOMEM:
        h->gaps_dropped++;
        ss->failed = true; /* the index would be short: the run says so */
        break;
    case MX_BUF_OK:
        break;
    }
}

static json_object *half_json(const struct mx_stream *st, int d)
{
    const struct half *h = &st->h[d];
    char file[MX_STREAMS_NAME + 8];
    snprintf(file, sizeof(file), "%s.%s", st->name, dir_ext[d]);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "file", json_object_new_string(file));
    json_object_object_add(o, "bytes", json_object_new_uint64(h->bytes));
    json_object *gaps = json_object_new_array();
    for (size_t i = 0; i < h->gaps.n; i++) {
        const struct gap *gp = mx_buf_at(&h->gaps, i);
        json_object *g = json_object_new_object();
        json_object_object_add(g, "offset", json_object_new_uint64(gp->off));
        json_object_object_add(g, "len", json_object_new_uint64(gp->len));
        json_object_array_add(gaps, g);
    }
    json_object_object_add(o, "gaps", gaps);
    if (h->gaps_dropped)
        json_object_object_add(o, "gaps_not_listed", json_object_new_uint64(h->gaps_dropped));
    if (h->failed)
        json_object_object_add(o, "written", json_object_new_boolean(false));
    return o;
}

static void stream_close(struct mx_streams *ss, struct mx_stream *st)
{
    if (!st)
        return;
    bool any = st->h[0].bytes || st->h[1].bytes || st->h[0].gaps.n || st->h[1].gaps.n;
    if (any) {
        /* Both files exist for every listed stream, even an empty direction. */
        for (int d = 0; d < 2; d++)
            if (!st->h[d].created && !st->h[d].failed)
                file_for(ss, st, (enum mx_dir)d);
        close_files(ss, st);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "flow", json_object_new_uint64(st->flow));
        json_object_object_add(o, "proto", json_object_new_string(st->proto));
        json_object_object_add(o, "client", json_object_new_string(st->cli));
        json_object_object_add(o, "client_port", json_object_new_int(st->cport));
        json_object_object_add(o, "server", json_object_new_string(st->srv));
        json_object_object_add(o, "server_port", json_object_new_int(st->sport));
        json_object_object_add(o, "first_frame", json_object_new_uint64(st->first_frame));
        json_object_object_add(o, "c2s", half_json(st, 0));
        json_object_object_add(o, "s2c", half_json(st, 1));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (fprintf(ss->index, "%s%s", ss->first_entry ? "" : ",\n", s) < 0)
            ss->failed = true;
        ss->first_entry = false;
        json_object_put(o);
    }
    close_files(ss, st);
    mx_buf_free(&st->h[0].gaps);
    mx_buf_free(&st->h[1].gaps);
    free(st);
}

static bool streams_finish(struct mx_streams *ss)
{
    bool ok = !ss->failed;
    while (ss->open_head)
        close_files(ss, ss->open_head);
    fputs("\n]}\n", ss->index);
    if (fclose(ss->index) != 0)
        ok = false;
    if (ss->errors > 1)
        fprintf(stderr, "mxray: --streams: %" PRIu64 " files could not be written\n", ss->errors);
    close(ss->dirfd);
    mx_idmap_free(&ss->names);
    mx_hasher_free(ss->hasher);
    free(ss);
    return ok;
}

/* The engine's view of the writer (engine/engine.h). */
static void *w_open(void *w, uint64_t flow_id, const char *proto, const struct mx_addr *cli, uint16_t cport,
                    const struct mx_addr *srv, uint16_t sport, mx_frame_t first_frame)
{
    return streams_open(w, flow_id, proto, cli, cport, srv, sport, first_frame);
}

static void w_data(void *w, void *st, enum mx_dir d, struct mx_slice b)
{
    stream_data(w, st, d, b);
}

static void w_gap(void *w, void *st, enum mx_dir d, uint64_t off, uint64_t len)
{
    stream_gap(w, st, d, off, len);
}

static void w_close(void *w, void *st)
{
    stream_close(w, st);
}

static bool w_finish(void *w)
{
    return streams_finish(w);
}

const struct mx_stream_writer mx_streams_writer = {
    .open = w_open,
    .data = w_data,
    .gap = w_gap,
    .close = w_close,
    .finish = w_finish,
};

const char *mx_streams_lib_version(void)
{
    return json_c_version();
}
