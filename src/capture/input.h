/* input.h - packet sources: capture files now, live interfaces later, behind one interface. */
#ifndef MX_INPUT_H
#define MX_INPUT_H

#include "capture/decode.h"

#include <stdio.h>

enum mx_input_status {
    MX_INPUT_PACKET,    /* *pkt holds the next packet */
    MX_INPUT_EOF,       /* the source ended cleanly */
    MX_INPUT_TRUNCATED, /* the file ends in the middle of a record */
    MX_INPUT_ERROR,     /* the source failed; mx_input_error() says why */
    MX_INPUT_TICK,      /* a live source had nothing for a while; pkt->ts is the wall clock */
};

struct mx_input;

/* A packet source. */
struct mx_input_ops {
    /* Reads the next packet; pkt->data stays valid until the next call.
     * pkt->frame is left for the caller to number. */
    enum mx_input_status (*next)(struct mx_input *in, struct mx_raw_packet *pkt);
    /* Closes the source and frees `in`. */
    void (*close)(struct mx_input *in);
    /* Optional. Capture counters of a live source (pcap_stats); false if none. */
    bool (*stats)(struct mx_input *in, uint64_t *received, uint64_t *dropped, uint64_t *ifdropped);
    /* Optional. Makes next() return MX_INPUT_EOF soon; async-signal-safe. */
    void (*stop)(struct mx_input *in);
    /* Optional. Bytes of the file read so far (for --progress). */
    uint64_t (*position)(struct mx_input *in);
};

struct mx_input {
    const struct mx_input_ops *ops;
    char name[256];    /* file name or interface, for messages */
    char error[512];   /* the last error */
    uint64_t size;     /* the file's size in bytes, 0 when unknown (a pipe, an interface) */
    uint64_t filtered; /* frames a file's filter (mx_input_filter) passed over, so far */
};

/* Opens a pcap or pcapng file ("-" for standard input), with timestamps
 * read at nanosecond precision. NULL on failure, with the reason in err. */
struct mx_input *mx_input_open_file(const char *path, char *err, size_t errlen);
/* The same from a stream the input then owns (closed with it); `name` is
 * for messages. Tests and fuzz targets read captures from memory this way. */
struct mx_input *mx_input_open_stream(FILE *fp, const char *name, char *err, size_t errlen);

/* -f on a file: next() returns only the packets the BPF program `bpf`
 * matches (pcap_offline_filter), and counts the others in in->filtered, so
 * that the caller numbers frames as the file does. False with err when the
 * filter does not compile for the file's link type. */
bool mx_input_filter(struct mx_input *in, const char *bpf, char *err, size_t errlen);

/* A pcap file being written (--write-flows). */
struct mx_pcap_out;

/* A pcap file on fd (owned from now on, closed on failure too) for packets
 * of `linktype` (as mx_raw_packet's), with nanosecond timestamps so that
 * every packet keeps its time exactly. NULL with err on failure. */
struct mx_pcap_out *mx_pcap_out_new(int fd, int linktype, char *err, size_t errlen);
/* Appends one packet with its time, lengths and bytes. */
void mx_pcap_out_write(struct mx_pcap_out *o, const struct mx_raw_packet *pkt);
/* Flushes and closes the file; false when a write failed. */
bool mx_pcap_out_close(struct mx_pcap_out *o);

/* Live capture options (-i, -f, --no-promisc). */
struct mx_live_opts {
    const char *iface;
    const char *filter; /* BPF (main's default: the mail ports, mx_protocols_filter) */
    bool promisc;
};

/* Opens an interface for capture with whole packets (snaplen 262144) and a
 * short read timeout, so that next() can report ticks. NULL with err on
 * failure (no permission, no such interface, a bad filter). */
struct mx_input *mx_input_open_live(const struct mx_live_opts *o, char *err, size_t errlen);
/* -w: makes the live source `in` also write every packet it reads to path
 * (pcap; "-" for standard output), created or truncated, never through a
 * symbolic link at path. The caller opens it once it runs as the user that
 * should own the file (main: after -Z). False with err on failure. */
bool mx_input_live_dump(struct mx_input *in, const char *path, char *err, size_t errlen);

/* The libpcap mxray runs with, as it names itself (--version). */
const char *mx_input_lib_version(void);

#endif
