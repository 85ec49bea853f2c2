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

/* An output directory (--streams, --write-flows): created if absent, and it
 * must be empty. Its descriptor, or -1 with err. */
int mx_outdir_open(const char *dir, char *err, size_t errlen);
/* Creates `name` in the directory dirfd: O_EXCL|O_NOFOLLOW, so that nothing
 * put there during the run (a symbolic link, a file) is followed or written
 * over; the open then fails with EEXIST. The descriptor, or -1 (errno). */
int mx_outdir_create(int dirfd, const char *name);
/* An address as it appears in a file name: IPv6 colons become dashes. */
void mx_addr_for_name(const char *in, char *out, size_t len);

/* The json-c mxray runs with (--version). */
const char *mx_streams_lib_version(void);

#endif
