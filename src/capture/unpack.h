/* unpack.h - compressed captures (gzip, zstd, xz) as stdio streams that libpcap reads. */
#ifndef MX_UNPACK_H
#define MX_UNPACK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct mx_unpack;

/* Opens path as a decompressing stream when it is a regular file that starts
 * with the magic of gzip (RFC 1952), zstd (RFC 8878) or xz; *u is its state,
 * owned by the stream (freed when it is closed). NULL with err empty when
 * the file is not compressed (or not a regular file: a FIFO is never
 * peeked); NULL with err set when it could not be opened. */
FILE *mx_unpack_open(const char *path, struct mx_unpack **u, char *err, size_t errlen);
/* Compressed bytes read so far (for --progress, against the file's size). */
uint64_t mx_unpack_position(const struct mx_unpack *u);
/* The compressed data ended before its stream did: a cut file. */
bool mx_unpack_cut(const struct mx_unpack *u);
/* Why reading failed (corrupt data, a window past the memory cap), or NULL. */
const char *mx_unpack_error(const struct mx_unpack *u);
/* The compression's name ("gzip", "zstd", "xz"). */
const char *mx_unpack_name(const struct mx_unpack *u);

#endif
