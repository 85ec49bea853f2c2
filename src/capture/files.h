/* files.h - the captures a command line names: files, and directories or globs of rotated ones. */
#ifndef MX_FILES_H
#define MX_FILES_H

#include <stdbool.h>
#include <stddef.h>

#define MX_MAX_INPUTS 1024 /* capture files in one run (the summary lists each) */

/* The capture files of a run, in the order they are read. */
struct mx_inputs {
    char *path[MX_MAX_INPUTS]; /* owned */
    size_t n;
};

/* Adds what arg names: a file or "-" as it is; a directory's regular files
 * (hidden ones aside), or the files a glob(3) pattern that names no file
 * matches ('cap*.pcap', unexpanded by the shell), each read as a capture
 * in the order of its first packet's time (a peek), the name breaking
 * ties, so that rotated files (tcpdump -C/-G, dumpcap ring buffers) make
 * one capture whatever their names. Files of a directory or glob that are
 * not captures are skipped, with a message on stderr when `warn`. False
 * with err when the directory cannot be read, nothing matches, no capture
 * is found, or past MX_MAX_INPUTS files. */
bool mx_inputs_add(struct mx_inputs *in, const char *arg, bool warn, char *err, size_t errlen);
void mx_inputs_free(struct mx_inputs *in);

#endif
