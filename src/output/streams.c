/* streams.c - `--streams DIR`: each reassembled TCP stream as two files plus index.json. */
#include "output/streams.h"

#include "core/buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MX_STREAMS_MAX_OPEN 128   /* streams with open files at once */
#define MX_STREAMS_MAX_GAPS 10000 /* gaps listed per direction; more are counted */
#define MX_STREAMS_NAME 160

struct gap {
    uint64_t off, len;
};

struct half {
    FILE *fp;
    bool created;
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
    char dir[4096];
    FILE *index;
    bool first_entry;
    bool failed;
    struct mx_stream *open_head, *open_tail;
    size_t n_open;
};

static const char *const dir_ext[2] = { "c2s", "s2c" };

struct mx_streams *mx_streams_new(const char *dir, char *err, size_t errlen)
{
    struct mx_streams *ss = NULL;
    DIR *dh = NULL;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    dh = opendir(dir);
    if (!dh) {
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(err, errlen, "%s is not empty", dir);
            goto fail;
        }
    }
    ss = calloc(1, sizeof(*ss));
    if (!ss) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (snprintf(ss->dir, sizeof(ss->dir), "%s", dir) >= (int)sizeof(ss->dir)) {
        snprintf(err, errlen, "directory name too long");
        goto fail;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/index.json", dir);
    ss->index = fopen(path, "w");
    if (!ss->index) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        goto fail;
    }
    fputs("{\"streams\":[\n", ss->index);
    ss->first_entry = true;
    closedir(dh);
    return ss;
fail:
    if (dh)
        closedir(dh);
    free(ss);
    return NULL;
}

/* An address as it appears in a file name: IPv6 colons become dashes. */
static void addr_for_name(const char *in, char *out, size_t len)
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
        if (st->h[d].fp) {
            if (fclose(st->h[d].fp) != 0)
                ss->failed = true;
            st->h[d].fp = NULL;
            was_open = true;
        }
    }
    if (was_open)
        open_unlink(ss, st);
}

/* Picks the stream's name: the 4-tuple, with _2, _3, ... when it repeats. */
static bool choose_name(struct mx_streams *ss, struct mx_stream *st)
{
    char c[MX_ADDR_STRLEN], s[MX_ADDR_STRLEN];
    addr_for_name(st->cli, c, sizeof(c));
    addr_for_name(st->srv, s, sizeof(s));
    for (unsigned n = 1; n < 100000; n++) {
        char base[MX_STREAMS_NAME];
        if (n == 1)
            snprintf(base, sizeof(base), "%s.%u-%s.%u", c, st->cport, s, st->sport);
        else
            snprintf(base, sizeof(base), "%s.%u-%s.%u_%u", c, st->cport, s, st->sport, n);
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s.c2s", ss->dir, base);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return false;
        }
        close(fd);
        memcpy(st->name, base, sizeof(base));
        st->named = true;
        st->h[0].created = true;
        return true;
    }
    return false;
}

static FILE *file_for(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d)
{
    if (st->h[d].fp)
        return st->h[d].fp;
    if (!st->named && !choose_name(ss, st)) {
        ss->failed = true;
        return NULL;
    }
    if (!st->h[0].fp && !st->h[1].fp) {
        /* Becomes an open stream: cap how many hold files at once. */
        while (ss->n_open >= MX_STREAMS_MAX_OPEN && ss->open_head)
            close_files(ss, ss->open_head);
        st->prev = ss->open_tail;
        if (ss->open_tail)
            ss->open_tail->next = st;
        else
            ss->open_head = st;
        ss->open_tail = st;
        ss->n_open++;
    }
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s.%s", ss->dir, st->name, dir_ext[d]);
    st->h[d].fp = fopen(path, st->h[d].created ? "ab" : "wb");
    if (!st->h[d].fp) {
        ss->failed = true;
        return NULL;
    }
    st->h[d].created = true;
    return st->h[d].fp;
}

static void stream_data(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d, struct mx_slice b)
{
    if (!st || !b.len)
        return;
    FILE *fp = file_for(ss, st, d);
    if (!fp || fwrite(b.ptr, 1, b.len, fp) != b.len)
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
            if (!st->h[d].created)
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
