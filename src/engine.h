/* engine.h - the pipeline: packets to flows, reassembly, dissectors, events. */
#ifndef MX_ENGINE_H
#define MX_ENGINE_H

#include "decode.h"
#include "event.h"
#include "input.h"
#include "reasm.h"

struct mx_dissector;

/* Run configuration. mx_config_defaults() fills in every default. */
/* Where a run stands, for a progress display. */
struct mx_progress {
    const char *name;     /* the input */
    uint64_t pos, size;   /* bytes read of the file, its size (0: unknown) */
    uint64_t frames;      /* packets read so far, all inputs */
    uint32_t flows;       /* flows open now */
    double elapsed;       /* seconds since this input was opened */
    bool done;            /* the input is finished */
};

struct mx_config {
    uint32_t max_flows;            /* flows tracked at once [262144] */
    mx_time_t idle_timeout;        /* close a flow after this much silence [3600 s] */
    mx_time_t quiet_timeout;       /* ... or this much, while it has carried no payload [120 s] */
    mx_time_t closed_linger;       /* keep a closed flow to absorb late packets [60 s] */
    size_t dissector_buffer;       /* unconsumed bytes a dissector may leave per direction [1 MiB] */
    uint64_t memory;               /* bytes for flows, their dissectors and reassembly [256 MiB]
                                      (--memory): half for flow state, a quarter for reassembly
                                      unless reasm.max_total_bytes says otherwise */
    struct mx_reasm_limits reasm;
    struct mx_defrag_limits defrag;
    const char *streams_dir;       /* --streams DIR, or NULL */
    unsigned workers;              /* threads that dissect, flows shared out by hash; 0: this
                                      thread does all [0] (--workers) */
    bool dissect;                  /* run the protocol dissectors [true] */
    bool classify;                 /* nDPI looks at flows off the mail ports, and at risks [true] */
    const struct mx_dissector *dissector_override; /* tests and fuzzing: dissect every flow
                                                      with this one [NULL] */
    bool warnings;                 /* one-line warnings on stderr [true] */
    bool show_secrets;             /* write passwords and tokens [false] */
    bool explain;                  /* records say what each step means (--explain) [false] */
    const char *extract_dir;       /* --extract DIR: messages and attachments are written there */
    /* --progress: called about four times a second while a file is read,
     * and once with done set at its end [NULL]. */
    void (*progress)(void *ud, const struct mx_progress *p);
    void *progress_ud;
};

void mx_config_defaults(struct mx_config *c);

#define MX_MAX_WORKERS 64

struct mx_engine;

/* A new engine writing events to `sink` (not owned). NULL with err on failure. */
struct mx_engine *mx_engine_new(const struct mx_config *cfg, struct mx_sink *sink, char *err,
                                size_t errlen);

/* Reads every packet of an opened input (not closed here). Returns false when
 * the input failed or ended mid-record; what was read has been processed. */
bool mx_engine_run(struct mx_engine *e, struct mx_input *in);

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
