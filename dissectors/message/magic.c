/* magic.c - a MIME part's type from its first bytes (libmagic), and the rule
 * that says when it disagrees with the declared Content-Type (RFC 2045 §5). */
#include "dissectors/message/magic.h"

#include "core/digest.h"

#include <fcntl.h>
#include <limits.h>
#include <magic.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A magic_t is not thread-safe, and one lookup costs 1 to 6 ms (its soft
 * magic runs hundreds of regular expressions over a text): each thread has
 * a cookie of its own, so that workers do not queue for one, and verdicts
 * are kept by the SHA-256 of the bytes looked at, so that the same
 * attachment seen again (at each hop of its journey, in each retrieval)
 * is looked at once. libmagic is deterministic: the verdict is the same. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t cookie_key;
static bool loaded; /* the database loaded once: threads may load theirs */

#define MAGIC_CACHE 1024 /* verdicts kept, by the digest's first bits */
struct verdict {
    uint8_t key[32]; /* SHA-256 of the bytes looked at, their length first */
    bool used;
    char type[MX_MAGIC_TYPE_CAP];
};
static struct verdict cache[MAGIC_CACHE];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* The database libmagic's default path names, when it is one compiled file
 * (PATH.mgc) beside text files of comments only (Debian's /etc/magic):
 * mapped once here and shared by every thread's cookie (magic_load_buffers),
 * where magic_load would map it once per cookie. NULL: load by path. */
static void *db;
static size_t db_len;

/* Whether a magic source file holds no entry: blank lines and comments. */
static bool comments_only(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[512];
    bool only = true;
    while (only && fgets(line, sizeof(line), f)) {
        const char *c = line + strspn(line, " \t\r\n");
        only = *c == '\0' || *c == '#';
    }
    fclose(f);
    return only;
}

static void map_db(void)
{
    const char *list = magic_getpath(NULL, 0);
    char compiled[PATH_MAX] = "";
    while (list && *list) {
        size_t n = strcspn(list, ":");
        char path[PATH_MAX], mgc[PATH_MAX];
        struct stat st;
        if (n >= sizeof(path) - 4)
            return;
        memcpy(path, list, n);
        path[n] = '\0';
        memcpy(mgc, path, n);
        memcpy(mgc + n, ".mgc", 5);
        if (stat(mgc, &st) == 0) {
            if (compiled[0])
                return; /* two compiled files: magic_load merges them */
            snprintf(compiled, sizeof(compiled), "%s", mgc);
        } else if (stat(path, &st) == 0 && !comments_only(path))
            return; /* entries in a text file: only magic_load reads those */
        list += n + (list[n] == ':');
    }
    int fd = compiled[0] ? open(compiled, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            db = p;
            db_len = (size_t)st.st_size;
        }
    }
    if (fd >= 0)
        close(fd);
}

/* A cookie on the database: MIME types only; compressed data is not
 * unpacked (a part's type is its own bytes'), and nothing is read beyond
 * the buffer given. */
static magic_t open_db(bool warn)
{
    magic_t m = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ENCODING);
    size_t len = db_len;
    void *bufs[1] = { db };
    if (m && (db ? magic_load_buffers(m, bufs, &len, 1) : magic_load(m, NULL)) != 0) {
        if (warn)
            fprintf(stderr, "mxray: libmagic: %s: attachments' types are not detected\n", magic_error(m));
        magic_close(m);
        m = NULL;
    }
    return m;
}

static void close_cookie(void *m)
{
    magic_close(m);
}

/* Loads the database once per run, to know that it loads (and to say so once if not). */
static void load(void)
{
    if (pthread_key_create(&cookie_key, close_cookie) != 0)
        return;
    map_db();
    magic_t m = open_db(true);
    loaded = m && pthread_setspecific(cookie_key, m) == 0;
}

/* This thread's cookie, opened on its first use; NULL when there is none. */
static magic_t thread_cookie(void)
{
    pthread_once(&once, load);
    if (!loaded)
        return NULL;
    magic_t m = pthread_getspecific(cookie_key);
    if (!m) {
        m = open_db(false);
        if (m && pthread_setspecific(cookie_key, m) != 0) {
            magic_close(m);
            m = NULL;
        }
    }
    return m;
}

bool mx_magic_type(const uint8_t *p, size_t n, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!n || cap < 2)
        return false;
    if (n > MX_MAGIC_PREFIX)
        n = MX_MAGIC_PREFIX;
    magic_t m = thread_cookie();
    if (!m)
        return false;
    uint8_t key[32];
    uint64_t len = n;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool keyed = c && EVP_DigestInit_ex(c, mx_md(MX_MD_SHA256), NULL) == 1 &&
                 EVP_DigestUpdate(c, &len, sizeof(len)) == 1 && EVP_DigestUpdate(c, p, n) == 1 &&
                 EVP_DigestFinal_ex(c, key, NULL) == 1;
    EVP_MD_CTX_free(c);
    struct verdict *v = &cache[(key[0] | (unsigned)key[1] << 8) % MAGIC_CACHE];
    if (keyed) {
        pthread_mutex_lock(&cache_lock);
        bool hit = v->used && !memcmp(v->key, key, sizeof(key));
        if (hit)
            snprintf(out, cap, "%s", v->type);
        pthread_mutex_unlock(&cache_lock);
        if (hit)
            return out[0] != '\0';
    }
    const char *t = magic_buffer(m, p, n);
    char full[MX_MAGIC_TYPE_CAP] = ""; /* what any caller may be given, lower case */
    if (t)
        snprintf(full, sizeof(full), "%s", t);
    for (char *ch = full; *ch; ch++)
        if (*ch >= 'A' && *ch <= 'Z')
            *ch = (char)(*ch + 32);
    snprintf(out, cap, "%s", full);
    if (keyed) {
        pthread_mutex_lock(&cache_lock);
        memcpy(v->key, key, sizeof(key));
        v->used = true;
        memcpy(v->type, full, sizeof(full));
        pthread_mutex_unlock(&cache_lock);
    }
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
