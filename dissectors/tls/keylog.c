/* keylog.c - reading the NSS key log (keylog.h). Each line is "LABEL
 * <client random, 64 hex digits> <secret, hex>"; '#' starts a comment. The
 * entries are sorted once and found by binary search. */
#include "dissectors/tls/keylog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KEYLOG_MAX_LINE 1024 /* longer lines are malformed: no label's is near it */

struct entry {
    uint8_t random[32];
    uint8_t label;
    uint8_t len;
    uint32_t seq; /* its line's place among the entries: the sort keeps the file's order */
    uint8_t secret[MX_KEYLOG_MAX_SECRET];
};

struct mx_keylog {
    struct entry *e;
    size_t n, cap;
};

static const char *const label_names[MX_KL__LABELS] = {
    [MX_KL_CLIENT_RANDOM] = "CLIENT_RANDOM",
    [MX_KL_CLIENT_HS_TRAFFIC] = "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    [MX_KL_SERVER_HS_TRAFFIC] = "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    [MX_KL_CLIENT_TRAFFIC_0] = "CLIENT_TRAFFIC_SECRET_0",
    [MX_KL_SERVER_TRAFFIC_0] = "SERVER_TRAFFIC_SECRET_0",
};

/* Hex digits [p, p+n) into out (n/2 bytes); false when one is not hex or n is odd. */
static bool unhex(const char *p, size_t n, uint8_t *out)
{
    if (n % 2)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int h = mx_hex_value((uint8_t)p[i]), l = mx_hex_value((uint8_t)p[i + 1]);
        if (h < 0 || l < 0)
            return false;
        out[i / 2] = (uint8_t)(h << 4 | l);
    }
    return true;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = memcmp(x->random, y->random, 32);
    if (c)
        return c;
    if (x->label != y->label)
        return (int)x->label - (int)y->label;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One line, without its newline: 1 an entry, 0 another label or a comment, -1 malformed. */
static int parse_line(const char *s, size_t n, struct entry *out)
{
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n || s[0] == '#')
        return 0;
    const char *sp1 = memchr(s, ' ', n);
    if (!sp1)
        return -1;
    const char *r = sp1 + 1;
    const char *sp2 = memchr(r, ' ', n - (size_t)(r - s));
    if (!sp2)
        return -1;
    const char *sec = sp2 + 1;
    size_t seclen = n - (size_t)(sec - s);
    size_t lablen = (size_t)(sp1 - s);
    int label = -1;
    for (int i = 0; i < MX_KL__LABELS; i++)
        if (strlen(label_names[i]) == lablen && !memcmp(s, label_names[i], lablen))
            label = i;
    if (label < 0)
        return 0; /* "RSA", "EXPORTER_SECRET", ...: its own shape, not read */
    if (sp2 - r != 64 || !unhex(r, 64, out->random) || seclen == 0 || seclen > 2 * MX_KEYLOG_MAX_SECRET)
        return -1;
    if (!unhex(sec, seclen, out->secret))
        return -1;
    out->label = (uint8_t)label;
    out->len = (uint8_t)(seclen / 2);
    return 1;
}

struct mx_keylog *mx_keylog_read(FILE *f, struct mx_keylog_stats *st)
{
    struct mx_keylog *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    memset(st, 0, sizeof(*st));
    char line[KEYLOG_MAX_LINE + 2];
    bool cut = false; /* inside a line longer than the buffer */
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        bool whole = n && line[n - 1] == '\n';
        if (cut || !whole) {
            if (!cut && !whole && feof(f))
                goto parse; /* the last line, without its newline */
            if (!cut)
                st->lines++, st->malformed++;
            cut = !whole;
            continue;
        }
        n--;
    parse:
        st->lines++;
        struct entry e;
        int r = parse_line(line, n, &e);
        if (r < 0) {
            st->malformed++;
            continue;
        }
        if (r == 0) {
            if (n && line[0] != '#')
                st->other_labels++;
            continue;
        }
        if (k->n == MX_KEYLOG_MAX_ENTRIES) {
            st->dropped++;
            continue;
        }
        if (k->n == k->cap) {
            size_t cap = k->cap ? 2 * k->cap : 64;
            struct entry *p = realloc(k->e, cap * sizeof(*p));
            if (!p) {
                mx_keylog_free(k);
                return NULL;
            }
            k->e = p;
            k->cap = cap;
        }
        e.seq = (uint32_t)k->n;
        k->e[k->n++] = e;
    }
    if (k->n)
        qsort(k->e, k->n, sizeof(*k->e), entry_cmp);
    st->entries = k->n;
    return k;
}

struct mx_keylog *mx_keylog_load(const char *path, struct mx_keylog_stats *st, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct mx_keylog *k = mx_keylog_read(f, st);
    bool bad = ferror(f);
    fclose(f);
    if (!k || bad) {
        snprintf(err, errlen, "%s: %s", path, k ? "read error" : "out of memory");
        mx_keylog_free(k);
        return NULL;
    }
    return k;
}

void mx_keylog_free(struct mx_keylog *k)
{
    if (!k)
        return;
    free(k->e);
    free(k);
}

/* The first entry whose random is `r`, or k->n. */
static size_t lower_bound(const struct mx_keylog *k, const uint8_t r[32])
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(k->e[mid].random, r, 32) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t mx_keylog_find(const struct mx_keylog *k, enum mx_keylog_label label, const uint8_t client_random[32],
                      uint8_t out[MX_KEYLOG_MAX_SECRET])
{
    if (!k)
        return 0;
    /* The last entry wins when a log names a session twice (a resumed key log). */
    size_t found = k->n;
    for (size_t i = lower_bound(k, client_random); i < k->n && !memcmp(k->e[i].random, client_random, 32); i++)
        if (k->e[i].label == label)
            found = i;
    if (found == k->n)
        return 0;
    memcpy(out, k->e[found].secret, k->e[found].len);
    return k->e[found].len;
}

bool mx_keylog_knows(const struct mx_keylog *k, const uint8_t client_random[32])
{
    if (!k)
        return false;
    size_t i = lower_bound(k, client_random);
    return i < k->n && !memcmp(k->e[i].random, client_random, 32);
}
