/* input.c - capture-file input through libpcap (pcap and pcapng, us and ns timestamps). */
#include "input.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct file_input {
    struct mx_input base;
    pcap_t *pcap;
    int linktype;
};

static enum mx_input_status file_next(struct mx_input *in, struct mx_raw_packet *pkt)
{
    struct file_input *f = (struct file_input *)in;
    struct pcap_pkthdr *hdr;
    const u_char *data;
    int rc = pcap_next_ex(f->pcap, &hdr, &data);
    if (rc == 1) {
        /* Nanoseconds in 64 bits reach the year 2262; clamp hostile times. */
        int64_t sec = (int64_t)hdr->ts.tv_sec;
        if (sec > INT64_C(9000000000))
            sec = INT64_C(9000000000);
        else if (sec < -INT64_C(9000000000))
            sec = -INT64_C(9000000000);
        pkt->ts = sec * MX_NS_PER_SEC + (mx_time_t)hdr->ts.tv_usec;
        pkt->linktype = f->linktype;
        pkt->caplen = hdr->caplen;
        pkt->wirelen = hdr->len;
        pkt->data = data;
        return MX_INPUT_PACKET;
    }
    if (rc == PCAP_ERROR_BREAK)
        return MX_INPUT_EOF;
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
    if (f->pcap)
        pcap_close(f->pcap);
    free(f);
}

static const struct mx_input_ops file_ops = {
    .next = file_next,
    .close = file_close,
};

struct mx_input *mx_input_open_file(const char *path, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    struct file_input *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->base.ops = &file_ops;
    snprintf(f->base.name, sizeof(f->base.name), "%s", strcmp(path, "-") ? path : "(stdin)");
    if (!strcmp(path, "-"))
        f->pcap = pcap_fopen_offline_with_tstamp_precision(stdin, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    else
        f->pcap = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!f->pcap) {
        snprintf(err, errlen, "%s", ebuf);
        free(f);
        return NULL;
    }
    /* pcap_datalink() maps DLT values back to LINKTYPE_ values where they
     * differ only by platform (DLT_RAW is 12 or 14, LINKTYPE_RAW is 101). */
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
