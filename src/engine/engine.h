/* engine.h - the run: packets to flows, reassembly, dissectors and records; its configuration. */
#ifndef MX_ENGINE_H
#define MX_ENGINE_H

#include "capture/decode.h"
#include "event/event.h"
#include "capture/input.h"
#include "flow/reasm.h"

struct mx_dissector;
struct mx_protocols;
struct mx_tls_trust;

/* Run configuration. mx_config_defaults() fills in every default. */
/* Where a run stands, for a progress display. */
struct mx_progress {
    const char *name;   /* the input */
    uint64_t pos, size; /* bytes read of the file, its size (0: unknown) */
    uint64_t frames;    /* packets read so far, all inputs */
    uint32_t flows;     /* flows open now */
    double elapsed;     /* seconds since this input was opened */
    bool done;          /* the input is finished */
};

/* Where every mail flow's reassembled bytes go besides its dissector
 * (--streams): a writer that main plugs in. Every slot is required. */
struct mx_stream_writer {
    /* A new mail flow's streams; NULL when they cannot be written (the run fails). */
    void *(*open)(void *w, uint64_t flow_id, const char *proto, const struct mx_addr *cli, uint16_t cport,
                  const struct mx_addr *srv, uint16_t sport, mx_frame_t first_frame);
    /* Bytes delivered in direction d, in order. */
    void (*data)(void *w, void *stream, enum mx_dir d, struct mx_slice b);
    /* `len` bytes at stream offset `off` were never captured. */
    void (*gap)(void *w, void *stream, enum mx_dir d, uint64_t off, uint64_t len);
    /* The flow ended. */
    void (*close)(void *w, void *stream);
    /* The run ended: completes the output and frees w; false if a write failed. */
    bool (*finish)(void *w);
};

struct mx_config {
    uint32_t max_flows;      /* flows tracked at once [262144] */
    mx_time_t idle_timeout;  /* close a flow after this much silence [3600 s] */
    mx_time_t quiet_timeout; /* ... or this much, while it has carried no payload [120 s] */
    mx_time_t closed_linger; /* keep a closed flow to absorb late packets [60 s] */
    size_t dissector_buffer; /* unconsumed bytes a dissector may leave per direction [1 MiB] */
    uint64_t memory;         /* bytes for flows, their dissectors and reassembly [256 MiB]
                                      (--memory): half for flow state, a quarter for reassembly
                                      unless reasm.max_total_bytes says otherwise */
    struct mx_reasm_limits reasm;
    struct mx_defrag_limits defrag;
    const struct mx_stream_writer *streams; /* --streams: the writer, or NULL */
    void *streams_ctx;                      /* its state, which the engine owns once mx_engine_new succeeds */
    unsigned workers;                       /* threads that dissect, flows shared out by hash; 0: this
                                      thread does all [0] (--workers) */
    const struct mx_protocols *protocols;   /* the protocols and their ports (engine/proto.h), not
                                      owned: main passes the registry's [NULL: none] */
    bool dissect;                           /* run the protocol dissectors [true] */
    bool classify;                          /* nDPI looks at flows off the mail ports, and at risks [true] */
    bool warnings;                          /* one-line warnings on stderr [true] */
    bool show_secrets;                      /* write passwords and tokens [false] */
    bool explain;                           /* records say what each step means (--explain) [false] */
    unsigned hashes;                        /* digests of mail content, MX_HASH_* (--hashes) [MX_HASH_DEFAULT] */
    const struct mx_keylog *keylog;         /* --tls-keylog: secrets to decrypt TLS with, read-only and
                                      shared by the workers, not owned [NULL] */
    const struct mx_tls_trust *tls_trust;   /* --tls-ca: the anchors certificates are verified against,
                                      read-only and shared by the workers, not owned [NULL: none] */
    const char *extract_dir;                /* --extract DIR: messages and attachments are written there */
    uint64_t extract_max;                   /* bytes written to one file (--extract-max) [100 MiB] */
    uint64_t extract_total;                 /* bytes written to all files (--extract-total) [4 GiB] */
    uint64_t max_packets;                   /* -c: stop after this many packets read (0: all) [0] */
    /* --since / --until: only packets in [since, until] are read, others are
     * passed over with their frame numbers kept. Absolute times, or, with
     * *_rel, offsets from the capture's first packet [MX_TIME_NONE: open]. */
    mx_time_t since, until;
    bool since_rel, until_rel;
    /* --progress: called about four times a second while a file is read,
     * and once with done set at its end [NULL]. */
    void (*progress)(void *ud, const struct mx_progress *p);
    void *progress_ud;
};

void mx_config_defaults(struct mx_config *c);

#define MX_MAX_WORKERS 64

struct mx_engine;

/* A new engine writing events to `sink` (not owned). NULL with err on failure. */
struct mx_engine *mx_engine_new(const struct mx_config *cfg, struct mx_sink *sink, char *err, size_t errlen);

/* Reads every packet of an opened input (not closed here). Returns false when
 * the input failed or ended mid-record; what was read has been processed. */
bool mx_engine_run(struct mx_engine *e, struct mx_input *in);

/* -c COUNT was reached: no more packets are read (mx_engine_run returns at once). */
bool mx_engine_count_reached(const struct mx_engine *e);

/* Processes one raw packet; raw->frame is assigned by the engine. */
void mx_engine_packet(struct mx_engine *e, struct mx_raw_packet *raw);

/* Live capture counters (pcap_stats) for the summary's "capture" object. */
void mx_engine_capture_stats(struct mx_engine *e, uint64_t received, uint64_t dropped, uint64_t ifdropped);

/* Ends the run: closes every flow, emits the summary record. */
void mx_engine_finish(struct mx_engine *e);

/* Exit status for the run (README, "Exit status"): 0 clean; 3 the input was
 * damaged (truncated file, snaplen cuts, lying headers); 1 mxray failed. */
int mx_engine_exit_status(const struct mx_engine *e);

void mx_engine_free(struct mx_engine *e);

#endif
