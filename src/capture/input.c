/* input.c - capture-file input through libpcap (pcap and pcapng, us and ns
 * timestamps), compressed ones (gzip, zstd, xz) through unpack.c. */
#include "capture/input.h"
#include "capture/unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct file_input {
    struct mx_input base;
    pcap_t *pcap;
    int linktype;
    bool sec_u32; /* a classic pcap file: its seconds are unsigned 32-bit */
    bool filtering;
    struct bpf_program prog;  /* -f: mx_input_filter */
    struct mx_unpack *unpack; /* a compressed file's decoder (owned by the stream); NULL: plain */
    char *iobuf;              /* a plain file's stdio buffer (READ_BUF) */
};

/* stdio's own buffer is st_blksize (4 KiB): a read(2) per two or three
 * packets of 1,500 bytes. 64 KiB took 0.45 s of CPU off reading 1 GiB;
 * 1 MiB was slower than 4 KiB (the buffer no longer fits in L2). */
#define READ_BUF (64u << 10)

/* A packet's time from seconds and nanoseconds, clamped to [0, MX_TIME_MAX]:
 * libpcap adds a pcapng if_tsoffset (draft-ietf-opsawg-pcapng §4.2) to the seconds
 * unchecked, so a hostile file can give any 64-bit value. */
static void set_time(struct mx_raw_packet *pkt, int64_t sec, int64_t ns)
{
    const int64_t max_sec = MX_TIME_MAX / MX_NS_PER_SEC;
    pkt->ts_clamped = sec < 0 || ns < 0 || ns >= MX_NS_PER_SEC || sec >= max_sec;
    if (sec < 0 || ns < 0)
        pkt->ts = 0;
    else if (sec >= max_sec || ns >= MX_NS_PER_SEC)
        pkt->ts = sec >= max_sec ? MX_TIME_MAX : sec * MX_NS_PER_SEC + (MX_NS_PER_SEC - 1);
    else
        pkt->ts = sec * MX_NS_PER_SEC + ns;
}

static enum mx_input_status file_next(struct mx_input *in, struct mx_raw_packet *pkt)
{
    struct file_input *f = (struct file_input *)in;
    struct pcap_pkthdr *hdr;
    const u_char *data;
    int rc = pcap_next_ex(f->pcap, &hdr, &data);
    while (rc == 1 && f->filtering && !pcap_offline_filter(&f->prog, hdr, data)) {
        in->filtered++;
        rc = pcap_next_ex(f->pcap, &hdr, &data);
    }
    if (rc == 1) {
        /* A classic pcap record's seconds are an unsigned 32-bit field
         * (draft-ietf-opsawg-pcap §5), which libpcap sign-extends. */
        int64_t sec = f->sec_u32 ? (int64_t)(uint32_t)hdr->ts.tv_sec : (int64_t)hdr->ts.tv_sec;
        set_time(pkt, sec, (int64_t)hdr->ts.tv_usec); /* ns: opened with nano precision */
        pkt->linktype = f->linktype;
        pkt->caplen = hdr->caplen;
        pkt->wirelen = hdr->len;
        pkt->data = data;
        return MX_INPUT_PACKET;
    }
    const char *why = f->unpack ? mx_unpack_error(f->unpack) : NULL;
    if (f->unpack && mx_unpack_cut(f->unpack)) {
        /* The compressed data ends inside its stream: a cut file, even
         * where the cut falls between two records. */
        snprintf(in->error, sizeof(in->error), "the %s data ends early", mx_unpack_name(f->unpack));
        return MX_INPUT_TRUNCATED;
    }
    if (rc == PCAP_ERROR_BREAK)
        return MX_INPUT_EOF;
    if (why) {
        snprintf(in->error, sizeof(in->error), "%s", why);
        return MX_INPUT_ERROR;
    }
    snprintf(in->error, sizeof(in->error), "%s", pcap_geterr(f->pcap));
    /* libpcap reports a cut record as "truncated dump file" (sf-pcap.c) or
     * "truncated pcapng dump file" (sf-pcapng.c). */
    if (strstr(in->error, "truncated"))
        return MX_INPUT_TRUNCATED;
    return MX_INPUT_ERROR;
}

static void file_close(struct mx_input *in)
{
    struct file_input *f = (struct file_input *)in;
    if (f->filtering)
        pcap_freecode(&f->prog);
    if (f->pcap)
        pcap_close(f->pcap);
    free(f->iobuf);
    free(f);
}

static uint64_t file_position(struct mx_input *in)
{
    struct file_input *f = (struct file_input *)in;
    if (f->unpack)
        return mx_unpack_position(f->unpack); /* compressed bytes, against the file's size */
    FILE *fp = pcap_file(f->pcap);
    long pos = fp ? ftell(fp) : -1;
    return pos > 0 ? (uint64_t)pos : 0;
}

static const struct mx_input_ops file_ops = {
    .next = file_next,
    .close = file_close,
    .stats = NULL,
    .stop = NULL,
    .position = file_position,
};

/* path opened for reading through a READ_BUF buffer (*buf, freed after
 * fclose), or NULL (and *buf NULL). */
static FILE *open_buffered(const char *path, char **buf)
{
    *buf = malloc(READ_BUF);
    FILE *fp = *buf ? fopen(path, "rb") : NULL;
    if (fp && setvbuf(fp, *buf, _IOFBF, READ_BUF) == 0)
        return fp;
    if (fp)
        fclose(fp);
    free(*buf);
    *buf = NULL;
    return NULL;
}

/* Opens a pcap or pcapng from path, or from stream (then owned: closed on
 * failure too); u: the stream's decoder, whose error is the reason when it
 * has one. */
static struct mx_input *open_pcap(const char *path, FILE *stream, struct mx_unpack *u, const char *name, char *err,
                                  size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    struct file_input *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        if (stream)
            fclose(stream);
        return NULL;
    }
    f->base.ops = &file_ops;
    f->unpack = u;
    snprintf(f->base.name, sizeof(f->base.name), "%s", name);
    if (!stream)
        stream = open_buffered(path, &f->iobuf); /* NULL: libpcap opens it, and says why it cannot */
    if (stream)
        f->pcap = pcap_fopen_offline_with_tstamp_precision(stream, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    else
        f->pcap = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!f->pcap) {
        snprintf(err, errlen, "%s", u && mx_unpack_error(u) ? mx_unpack_error(u) : ebuf);
        if (stream && stream != stdin)
            fclose(stream);
        free(f->iobuf);
        free(f);
        return NULL;
    }
    /* pcap_datalink() maps DLT values back to LINKTYPE_ values where they
     * differ only by platform (DLT_RAW is 12 or 14, LINKTYPE_RAW is 101). */
    FILE *fp = pcap_file(f->pcap);
    struct stat st;
    if (fp && fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode))
        f->base.size = (uint64_t)st.st_size;
    f->sec_u32 = pcap_major_version(f->pcap) == 2; /* pcapng reads as 1.0 */
    int dlt = pcap_datalink(f->pcap);
    f->linktype = dlt;
    if (dlt == DLT_RAW)
        f->linktype = MX_LINKTYPE_RAW;
#ifdef DLT_LOOP
    if (dlt == DLT_LOOP)
        f->linktype = MX_LINKTYPE_LOOP;
#endif
    return &f->base;
}

bool mx_input_filter(struct mx_input *in, const char *bpf, char *err, size_t errlen)
{
    if (in->ops != &file_ops) {
        snprintf(err, errlen, "not a capture file");
        return false;
    }
    struct file_input *f = (struct file_input *)in;
    if (pcap_compile(f->pcap, &f->prog, bpf, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "%s", pcap_geterr(f->pcap));
        return false;
    }
    f->filtering = true;
    return true;
}

struct mx_input *mx_input_open_file(const char *path, char *err, size_t errlen)
{
    if (!strcmp(path, "-"))
        return open_pcap(NULL, stdin, NULL, "(stdin)", err, errlen);
    struct mx_unpack *u = NULL;
    FILE *stream = mx_unpack_open(path, &u, err, errlen);
    if (!stream)
        return *err ? NULL : open_pcap(path, NULL, NULL, path, err, errlen);
    struct mx_input *in = open_pcap(NULL, stream, u, path, err, errlen); /* closes stream on failure */
    if (in) {
        struct stat st;
        if (stat(path, &st) == 0)
            in->size = (uint64_t)st.st_size; /* --progress: compressed bytes, as the position counts */
    }
    return in;
}

struct mx_input *mx_input_open_stream(FILE *fp, const char *name, char *err, size_t errlen)
{
    return open_pcap(NULL, fp, NULL, name, err, errlen);
}

/* ---- Writing pcap files ---- */

struct mx_pcap_out {
    pcap_t *dead; /* what pcap_dump_fopen takes the link type and precision from */
    pcap_dumper_t *dump;
};

struct mx_pcap_out *mx_pcap_out_new(int fd, int linktype, char *err, size_t errlen)
{
    /* The DLT libpcap writes as `linktype` (open_pcap maps the other way). */
    int dlt = linktype;
    if (linktype == MX_LINKTYPE_RAW)
        dlt = DLT_RAW;
#ifdef DLT_LOOP
    if (linktype == MX_LINKTYPE_LOOP)
        dlt = DLT_LOOP;
#endif
    struct mx_pcap_out *o = calloc(1, sizeof(*o));
    FILE *fp = o ? fdopen(fd, "wb") : NULL;
    if (o)
        o->dead = pcap_open_dead_with_tstamp_precision(dlt, 262144, PCAP_TSTAMP_PRECISION_NANO);
    if (!fp || !o->dead) {
        snprintf(err, errlen, "%s", fp ? "out of memory" : strerror(errno));
        goto fail;
    }
    o->dump = pcap_dump_fopen(o->dead, fp); /* writes the file header */
    if (!o->dump) {
        snprintf(err, errlen, "%s", pcap_geterr(o->dead));
        goto fail;
    }
    return o;
fail:
    if (fp)
        fclose(fp);
    else
        close(fd);
    if (o && o->dead)
        pcap_close(o->dead);
    free(o);
    return NULL;
}

void mx_pcap_out_write(struct mx_pcap_out *o, const struct mx_raw_packet *pkt)
{
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)(pkt->ts / MX_NS_PER_SEC);
    h.ts.tv_usec = (suseconds_t)(pkt->ts % MX_NS_PER_SEC); /* nanoseconds: a nano-precision file */
    h.caplen = pkt->caplen;
    h.len = pkt->wirelen;
    pcap_dump((u_char *)o->dump, &h, pkt->data);
}

bool mx_pcap_out_close(struct mx_pcap_out *o)
{
    FILE *fp = pcap_dump_file(o->dump);
    bool ok = fflush(fp) == 0 && !ferror(fp);
    pcap_dump_close(o->dump); /* fclose */
    pcap_close(o->dead);
    free(o);
    return ok;
}

/* ---- Live capture ---- */

struct live_input {
    struct mx_input base;
    pcap_t *pcap;
    pcap_dumper_t *dump;
    int linktype;
};

static enum mx_input_status live_next(struct mx_input *in, struct mx_raw_packet *pkt)
{
    struct live_input *l = (struct live_input *)in;
    struct pcap_pkthdr *hdr;
    const u_char *data;
    int rc = pcap_next_ex(l->pcap, &hdr, &data);
    if (rc == 1) {
        if (l->dump)
            pcap_dump((u_char *)l->dump, hdr, data);
        set_time(pkt, (int64_t)hdr->ts.tv_sec, (int64_t)hdr->ts.tv_usec * 1000);
        pkt->linktype = l->linktype;
        pkt->caplen = hdr->caplen;
        pkt->wirelen = hdr->len;
        pkt->data = data;
        return MX_INPUT_PACKET;
    }
    if (rc == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        pkt->ts = (mx_time_t)now.tv_sec * MX_NS_PER_SEC + now.tv_nsec;
        return MX_INPUT_TICK;
    }
    if (rc == PCAP_ERROR_BREAK)
        return MX_INPUT_EOF;
    snprintf(in->error, sizeof(in->error), "%s", pcap_geterr(l->pcap));
    return MX_INPUT_ERROR;
}

static void live_close(struct mx_input *in)
{
    struct live_input *l = (struct live_input *)in;
    if (l->dump) {
        pcap_dump_flush(l->dump);
        pcap_dump_close(l->dump);
    }
    if (l->pcap)
        pcap_close(l->pcap);
    free(l);
}

static bool live_stats(struct mx_input *in, uint64_t *received, uint64_t *dropped, uint64_t *ifdropped)
{
    struct live_input *l = (struct live_input *)in;
    struct pcap_stat st;
    if (pcap_stats(l->pcap, &st) != 0)
        return false;
    *received = st.ps_recv;
    *dropped = st.ps_drop;
    *ifdropped = st.ps_ifdrop;
    return true;
}

static void live_stop(struct mx_input *in)
{
    pcap_breakloop(((struct live_input *)in)->pcap);
}

static const struct mx_input_ops live_ops = {
    .next = live_next,
    .close = live_close,
    .stats = live_stats,
    .stop = live_stop,
};

struct mx_input *mx_input_open_live(const struct mx_live_opts *o, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    struct bpf_program prog;
    struct live_input *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->base.ops = &live_ops;
    snprintf(l->base.name, sizeof(l->base.name), "%s", o->iface);
    l->pcap = pcap_create(o->iface, ebuf);
    if (!l->pcap) {
        snprintf(err, errlen, "%s", ebuf);
        goto fail;
    }
    pcap_set_snaplen(l->pcap, 262144); /* whole packets */
    pcap_set_promisc(l->pcap, o->promisc);
    pcap_set_timeout(l->pcap, 250); /* ms: next() reports a tick when nothing comes */
    pcap_set_buffer_size(l->pcap, 16 << 20);
    pcap_set_tstamp_precision(l->pcap, PCAP_TSTAMP_PRECISION_MICRO);
    int rc = pcap_activate(l->pcap);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", pcap_statustostr(rc), pcap_geterr(l->pcap));
        goto fail;
    }
    const char *filter = o->filter;
    if (pcap_compile(l->pcap, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "filter \"%s\": %s", filter, pcap_geterr(l->pcap));
        goto fail;
    }
    rc = pcap_setfilter(l->pcap, &prog);
    pcap_freecode(&prog);
    if (rc != 0) {
        snprintf(err, errlen, "filter: %s", pcap_geterr(l->pcap));
        goto fail;
    }
    l->linktype = pcap_datalink(l->pcap);
    if (l->linktype == DLT_RAW)
        l->linktype = MX_LINKTYPE_RAW;
    return &l->base;
fail:
    live_close(&l->base);
    return NULL;
}

bool mx_input_live_dump(struct mx_input *in, const char *path, char *err, size_t errlen)
{
    struct live_input *l = (struct live_input *)in;
    if (in->ops != &live_ops || l->dump) {
        snprintf(err, errlen, "not a live capture, or already written");
        return false;
    }
    FILE *fp = stdout;
    if (strcmp(path, "-")) {
        /* O_NOFOLLOW: a symbolic link at the path is refused (ELOOP), not
         * followed to whatever it names. */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0) {
            snprintf(err, errlen, "%s", errno == ELOOP ? "a symbolic link: not followed" : strerror(errno));
            return false;
        }
        fp = fdopen(fd, "wb");
        if (!fp) {
            snprintf(err, errlen, "%s", strerror(errno));
            close(fd);
            return false;
        }
    }
    l->dump = pcap_dump_fopen(l->pcap, fp); /* writes the file header */
    if (!l->dump) {
        snprintf(err, errlen, "%s", pcap_geterr(l->pcap));
        if (fp != stdout)
            fclose(fp);
        return false;
    }
    return true;
}

const char *mx_input_lib_version(void)
{
    return pcap_lib_version();
}
