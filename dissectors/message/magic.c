/* magic.c - a MIME part's type from its first bytes (libmagic), and the rule
 * that says when it disagrees with the declared Content-Type (RFC 2045 §5). */
#include "dissectors/message/magic.h"

#include <magic.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static magic_t cookie; /* NULL: not loaded; used under `lock` only */

/* Loads the database once per run (the system's compiled magic.mgc). */
static void load(void)
{
    /* MIME types only; compressed data is not unpacked (a part's type is its
     * own bytes'), and nothing is read beyond the buffer given. */
    magic_t m = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ENCODING);
    if (m && magic_load(m, NULL) != 0) {
        fprintf(stderr, "mxray: libmagic: %s: attachments' types are not detected\n", magic_error(m));
        magic_close(m);
        m = NULL;
    }
    cookie = m;
}

bool mx_magic_type(const uint8_t *p, size_t n, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!n || cap < 2)
        return false;
    if (n > MX_MAGIC_PREFIX)
        n = MX_MAGIC_PREFIX;
    pthread_once(&once, load);
    if (!cookie)
        return false;
    pthread_mutex_lock(&lock);
    const char *t = magic_buffer(cookie, p, n);
    if (t)
        snprintf(out, cap, "%s", t);
    pthread_mutex_unlock(&lock);
    for (char *c = out; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    return out[0] != '\0';
}

static bool starts(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static bool in(const char *t, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(t, *list))
            return true;
    return false;
}

bool mx_magic_is_executable(const char *t)
{
    static const char *const exec[] = {
        "application/vnd.microsoft.portable-executable",
        "application/x-dosexec",
        "application/x-msdownload",
        "application/x-executable",
        "application/x-pie-executable",
        "application/x-sharedlib",
        "application/x-mach-binary",
        "application/java-archive",
        "application/x-java-applet",
        "application/x-ms-shortcut",
        "application/x-msi",
        NULL,
    };
    return in(t, exec);
}

/* A type that names no content: nothing to disagree with. */
static bool generic(const char *t)
{
    static const char *const names[] = {
        "application/octet-stream", "application/x-download", "binary/octet-stream",        "application/unknown",
        "application/x-empty",      "inode/x-empty",          "application/force-download", NULL,
    };
    return !*t || in(t, names);
}

/* A type's family: what a reader opens it with; NULL for the types the
 * table does not know. */
static const char *family(const char *t)
{
    static const char *const textual[] = {
        "application/json",          "application/xml",        "application/javascript",
        "application/x-javascript",  "application/ecmascript", "application/x-sh",
        "application/x-shellscript", "application/rtf",        NULL,
    };
    static const char *const zip[] = {
        "application/zip", "application/x-zip-compressed", "application/x-zip", "application/epub+zip", NULL,
    };
    static const char *const ole[] = {
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.ms-outlook",
        "application/x-ole-storage",
        "application/cdfv2",
        "application/vnd.ms-office",
        NULL,
    };
    if (mx_magic_is_executable(t))
        return "executable";
    if (starts(t, "text/") || in(t, textual))
        return "text";
    if (in(t, zip) || starts(t, "application/vnd.openxmlformats-") ||
        starts(t, "application/vnd.oasis.opendocument.") ||
        (starts(t, "application/vnd.ms-") && strstr(t, "macroenabled")))
        return "zip"; /* OOXML and ODF documents are ZIP files: libmagic names either */
    if (in(t, ole))
        return "ole";
    if (!strcmp(t, "application/pdf"))
        return "pdf";
    if (starts(t, "image/"))
        return "image";
    if (starts(t, "audio/"))
        return "audio";
    if (starts(t, "video/"))
        return "video";
    return NULL;
}

/* The rule: the declared and the detected type disagree when both belong to
 * a family the table knows and the families differ (a PDF declared as
 * image/jpeg; a program declared as a document), or when the bytes are a
 * program and the declared type is not. Spellings within a family never
 * disagree (text/plain and text/x-c, image/jpg and image/png, a .docx
 * declared as application/zip), nor do types the table does not know; a
 * generic declared type (application/octet-stream) says nothing to
 * disagree with (a program under it is the executable finding's). */
bool mx_magic_mismatch(const char *declared, const char *detected)
{
    if (!*declared)
        declared = "text/plain"; /* RFC 2045 §5.2 */
    if (generic(declared) || generic(detected))
        return false;
    const char *d = family(declared), *t = family(detected);
    if (t && !strcmp(t, "executable"))
        return !d || strcmp(d, t) != 0;
    return d && t && strcmp(d, t) != 0;
}
