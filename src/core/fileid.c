/* fileid.c - see fileid.h. */
#include "core/fileid.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool mx_fileid_of_path(const char *path, struct mx_fileid *id)
{
    char p[PATH_MAX], link[PATH_MAX];
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p) || !p[0])
        return false;
    for (int hops = 0;; hops++) {
        if (stat(p, &st) == 0) {
            if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
                return false; /* a device, a FIFO: not a file to write over */
            id->dev = st.st_dev;
            id->ino = st.st_ino;
            id->exists = true;
            return true;
        }
        /* Nothing there, or a link to nothing: a file would be created at
         * the path, or where the link points (fopen follows it). */
        ssize_t n = hops < 8 && lstat(p, &st) == 0 && S_ISLNK(st.st_mode) ? readlink(p, link, sizeof(link) - 1) : -1;
        if (n < 0)
            break;
        link[n] = '\0';
        char *slash = strrchr(p, '/');
        if (link[0] == '/' || !slash) {
            memcpy(p, link, (size_t)n + 1);
        } else if ((size_t)(slash + 1 - p) + (size_t)n < sizeof(p)) {
            memcpy(slash + 1, link, (size_t)n + 1); /* relative to the link's directory */
        } else {
            return false;
        }
    }
    /* The directory and the last component (trailing slashes dropped). */
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    char *slash = strrchr(p, '/');
    const char *leaf = slash ? slash + 1 : p;
    if (snprintf(id->leaf, sizeof(id->leaf), "%s", leaf) >= (int)sizeof(id->leaf))
        return false;
    const char *dir = ".";
    if (slash == p)
        dir = "/";
    else if (slash) {
        *slash = '\0';
        dir = p;
    }
    if (stat(dir, &st) != 0)
        return false;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return true;
}

bool mx_fileid_of_fd(int fd, struct mx_fileid *id)
{
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return false;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->exists = true;
    return true;
}

bool mx_fileid_same(const struct mx_fileid *a, const struct mx_fileid *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->exists == b->exists && (a->exists || !strcmp(a->leaf, b->leaf));
}
