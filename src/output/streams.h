/* streams.h - `--streams DIR`: each reassembled TCP stream written as two files plus an index. */
#ifndef MX_STREAMS_H
#define MX_STREAMS_H

#include "engine/engine.h"

struct mx_streams;

/* Prepares DIR (created if absent; it must be empty). NULL with err on
 * failure. The engine writes through mx_streams_writer with it: each flow's
 * files are named after its client and server ends, and index.json lists
 * every stream with its gaps once the writer finishes. */
struct mx_streams *mx_streams_new(const char *dir, char *err, size_t errlen);

extern const struct mx_stream_writer mx_streams_writer;

#endif
