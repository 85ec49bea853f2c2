/* fileid.h - which file a path names, to tell when two paths of the command
 * line are one file (an output that is an input, two outputs in one file). */
#ifndef MX_FILEID_H
#define MX_FILEID_H

#include <stdbool.h>
#include <sys/types.h>

/* A file known by its device and inode. A path that names nothing yet is
 * known by the directory it would be created in and its last component, so
 * that two spellings of a file not yet written compare equal too. */
struct mx_fileid {
    dev_t dev;
    ino_t ino;
    bool exists;    /* dev and ino are the file's; else the directory's */
    char leaf[256]; /* !exists: the name in that directory */
};

/* Fills *id for path, following symbolic links (up to 8, a dangling one to
 * where it would create its file); false when neither path nor the
 * directory it would be created in can be found, or when path names a
 * device or a FIFO (/dev/null may take any number of outputs). */
bool mx_fileid_of_path(const char *path, struct mx_fileid *id);
/* Fills *id for an open descriptor (standard input or output); false when
 * it is not a regular file or a directory (a pipe, a terminal). */
bool mx_fileid_of_fd(int fd, struct mx_fileid *id);
/* True when a and b are one file. */
bool mx_fileid_same(const struct mx_fileid *a, const struct mx_fileid *b);

#endif
