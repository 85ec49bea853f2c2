/* streams.h - `--streams DIR`: each reassembled TCP stream written as two files plus an index. */
#ifndef MX_STREAMS_H
#define MX_STREAMS_H

#include "mx.h"

struct mx_streams;
struct mx_stream;

/* Prepares DIR (created if absent; it must be empty). NULL with err on failure. */
struct mx_streams *mx_streams_new(const char *dir, char *err, size_t errlen);

/* Starts a stream for a flow. Names come from the client and server ends. */
struct mx_stream *mx_streams_open(struct mx_streams *ss, uint64_t flow_id, const char *proto,
                                  const struct mx_addr *cli, uint16_t cport,
                                  const struct mx_addr *srv, uint16_t sport, mx_frame_t first_frame);
/* Appends delivered bytes of one direction. */
void mx_stream_data(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d, struct mx_slice b);
/* Records a gap of `len` bytes at stream offset `off` (nothing is written for it). */
void mx_stream_gap(struct mx_streams *ss, struct mx_stream *st, enum mx_dir d, uint64_t off, uint64_t len);
/* Ends a stream: closes its files and appends its entry to index.json. */
void mx_stream_close(struct mx_streams *ss, struct mx_stream *st);

/* Completes index.json; returns false if any write failed. Frees ss. */
bool mx_streams_finish(struct mx_streams *ss);

#endif
