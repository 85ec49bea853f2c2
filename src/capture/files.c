/* files.c - directories and globs of rotated captures, put in time order by a peek at each
 * file's first packet (names mislead: tcpdump -C writes cap, cap1 ... cap10, which sort
 * before cap2; -G and dumpcap put times in them, in the local zone). */
#define _GNU_SOURCE /* strverscmp */
#include "capture/files.h"

#include "capture/input.h"
#include "event/text.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct peeked {
    char *path;
    mx_time_t first; /* MX_TIME_MAX: no packet */
};

static int cmp_peeked(const void *a, const void *b)
{
    const struct peeked *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return strverscmp(x->path, y->path);
}

/* Says why a file of a directory or glob is skipped. */
static void skipped(const char *path, const char *why, bool warn)
{
    if (!warn)
        return;
    char name[1024], reason[1024];
    mx_text_escape(path, name, sizeof(name));
    mx_text_escape(why, reason, sizeof(reason));
    fprintf(stderr, "mxray: %s: skipped, not a capture (%s)\n", name, reason);
}

/* The time of path's first packet into p->first; false when it is no capture. */
static bool peek(struct peeked *p, bool warn)
{
    char err[512];
    struct stat st;
    if (stat(p->path, &st) != 0 || !S_ISREG(st.st_mode)) {
        skipped(p->path, "not a regular file", warn);
        return false;
    }
    struct mx_input *in = mx_input_open_file(p->path, err, sizeof(err));
    if (!in) {
        skipped(p->path, err, warn);
        return false;
    }
    struct mx_raw_packet pkt;
    p->first = in->ops->next(in, &pkt) == MX_INPUT_PACKET ? pkt.ts : MX_TIME_MAX;
    in->ops->close(in);
    return true;
}

/* Peeks the candidates c[0..n), drops those that are no capture, sorts the
 * rest into in. Frees every c[i].path not kept. */
static bool add_sorted(struct mx_inputs *in, struct peeked *c, size_t n, bool warn, const char *arg, char *err,
                       size_t errlen)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (peek(&c[i], warn))
            c[kept++] = c[i];
        else
            free(c[i].path);
    }
    qsort(c, kept, sizeof(*c), cmp_peeked);
    bool ok = kept > 0 && in->n + kept <= MX_MAX_INPUTS;
    char name[1024];
    mx_text_escape(arg, name, sizeof(name));
    if (!kept)
        snprintf(err, errlen, "%s: no capture file in it", name);
    else if (!ok)
        snprintf(err, errlen, "more than %d capture files (%s): name fewer, or merge some with mergecap", MX_MAX_INPUTS,
                 name);
    for (size_t i = 0; i < kept; i++) {
        if (ok)
            in->path[in->n++] = c[i].path;
        else
            free(c[i].path);
    }
    return ok;
}

/* A directory's regular files, hidden ones aside, as candidates. */
static bool list_dir(const char *dir, struct peeked *c, size_t *n, char *err, size_t errlen)
{
    char name[1024];
    mx_text_escape(dir, name, sizeof(name));
    DIR *dh = opendir(dir);
    if (!dh) {
        snprintf(err, errlen, "cannot read %s: %s", name, strerror(errno));
        return false;
    }
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(dh)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (*n == MX_MAX_INPUTS) {
            snprintf(err, errlen, "more than %d files in %s: name fewer, or merge some with mergecap", MX_MAX_INPUTS,
                     name);
            ok = false;
            break;
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            ok = false;
            break;
        }
        snprintf(p, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        c[(*n)++] = (struct peeked){ p, MX_TIME_MAX };
    }
    closedir(dh);
    return ok;
}

/* The files a pattern matches, as candidates. */
static bool list_glob(const char *pattern, struct peeked *c, size_t *n, char *err, size_t errlen)
{
    char name[1024];
    mx_text_escape(pattern, name, sizeof(name));
    glob_t g;
    int r = glob(pattern, 0, NULL, &g);
    if (r != 0) {
        snprintf(err, errlen, "%s: %s", name,
                 r == GLOB_NOMATCH ? "no such file, and no file matches it" : "glob failed");
        if (r != GLOB_NOMATCH)
            globfree(&g);
        return false;
    }
    bool ok = g.gl_pathc <= MX_MAX_INPUTS;
    if (!ok)
        snprintf(err, errlen, "more than %d files match %s: name fewer, or merge some with mergecap", MX_MAX_INPUTS,
                 name);
    for (size_t i = 0; ok && i < g.gl_pathc; i++) {
        char *p = strdup(g.gl_pathv[i]);
        if (!p) {
            snprintf(err, errlen, "out of memory");
            ok = false;
            break;
        }
        c[(*n)++] = (struct peeked){ p, MX_TIME_MAX };
    }
    globfree(&g);
    return ok;
}

bool mx_inputs_add(struct mx_inputs *in, const char *arg, bool warn, char *err, size_t errlen)
{
    struct stat st;
    bool exists = stat(arg, &st) == 0;
    bool is_dir = exists && S_ISDIR(st.st_mode);
    bool is_glob = !exists && strcmp(arg, "-") && strpbrk(arg, "*?[");
    if (!is_dir && !is_glob) {
        char *p = in->n < MX_MAX_INPUTS ? strdup(arg) : NULL;
        if (!p) {
            snprintf(err, errlen, in->n < MX_MAX_INPUTS ? "out of memory" : "more than %d capture files",
                     MX_MAX_INPUTS);
            return false;
        }
        in->path[in->n++] = p;
        return true;
    }
    struct peeked *c = calloc(MX_MAX_INPUTS, sizeof(*c));
    size_t n = 0;
    bool ok = c != NULL;
    if (!ok)
        snprintf(err, errlen, "out of memory");
    else
        ok = is_dir ? list_dir(arg, c, &n, err, errlen) : list_glob(arg, c, &n, err, errlen);
    if (ok)
        ok = add_sorted(in, c, n, warn, arg, err, errlen); /* frees what it does not keep */
    else
        for (size_t i = 0; i < n; i++)
            free(c[i].path);
    free(c);
    return ok;
}

void mx_inputs_free(struct mx_inputs *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->path[i]);
    in->n = 0;
}
