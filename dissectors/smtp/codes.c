/* codes.c - look-ups in the generated SMTP code tables: reply codes (RFC 5321 §4.2), enhanced status codes (RFC 3463). */
#include "dissectors/smtp/codes.h"

#include <string.h>
#include "dissectors/smtp/codes_data.h"

/* ---- Enhanced status codes ---- */

const struct mx_enhanced_info *mx_enhanced_lookup(int subject, int detail)
{
    size_t lo = 0, hi = mx_codes_enhanced_n;

    /* Binary search: the generator sorts the table by (subject, detail). */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mx_enhanced_info *e = &mx_codes_enhanced[mid];

        if (e->subject == subject && e->detail == detail)
            return e;
        if (e->subject < subject || (e->subject == subject && e->detail < detail))
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t mx_enhanced_count(void)
{
    return mx_codes_enhanced_n;
}

const struct mx_enhanced_info *mx_enhanced_at(size_t i)
{
    return i < mx_codes_enhanced_n ? &mx_codes_enhanced[i] : NULL;
}

/* The row of a class or subject table (a handful of rows) with this value. */
static const struct mx_enhanced_part *part_find(const struct mx_enhanced_part *t, size_t n, int value)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].value == value)
            return &t[i];
    }
    return NULL;
}

const struct mx_enhanced_part *mx_enhanced_class(int cls)
{
    return part_find(mx_codes_classes, mx_codes_classes_n, cls);
}

const char *mx_enhanced_class_text(int cls)
{
    const struct mx_enhanced_part *p = mx_enhanced_class(cls);

    return p != NULL ? p->summary : NULL;
}

const struct mx_enhanced_part *mx_enhanced_subject(int subject)
{
    return part_find(mx_codes_subjects, mx_codes_subjects_n, subject);
}

const char *mx_enhanced_subject_text(int subject)
{
    const struct mx_enhanced_part *p = mx_enhanced_subject(subject);

    return p != NULL ? p->summary : NULL;
}

size_t mx_enhanced_class_count(void)
{
    return mx_codes_classes_n;
}

size_t mx_enhanced_subject_count(void)
{
    return mx_codes_subjects_n;
}

/* 1 to 3 digits at s[*i], as a number (RFC 3463 §2: subject and detail are
 * 1*3digit); -1 if there are none. Advances *i past them. */
static int digits_1_3(struct mx_slice s, size_t *i)
{
    int v = 0;
    size_t n = 0;

    while (*i < s.len && n < 3 && s.ptr[*i] >= '0' && s.ptr[*i] <= '9') {
        v = v * 10 + (s.ptr[*i] - '0');
        (*i)++;
        n++;
    }
    return n > 0 ? v : -1;
}

size_t mx_enhanced_scan(struct mx_slice s, struct mx_enhanced_code *out)
{
    size_t i = 2;
    int subject, detail;

    /* RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5. */
    if (s.len < 5 || (s.ptr[0] != '2' && s.ptr[0] != '4' && s.ptr[0] != '5') || s.ptr[1] != '.')
        return 0;
    subject = digits_1_3(s, &i);
    if (subject < 0 || i >= s.len || s.ptr[i] != '.')
        return 0;
    i++;
    detail = digits_1_3(s, &i);
    if (detail < 0)
        return 0;
    /* A fourth digit or another dot makes it something else ("5.1.1234", "5.1.1.2"). */
    if (i < s.len && ((s.ptr[i] >= '0' && s.ptr[i] <= '9') || s.ptr[i] == '.'))
        return 0;
    out->cls = s.ptr[0] - '0';
    out->subject = subject;
    out->detail = detail;
    memcpy(out->text, s.ptr, i); /* at most 9 bytes */
    out->text[i] = '\0';
    return i;
}

bool mx_enhanced_parse(struct mx_slice s, struct mx_enhanced_code *out)
{
    struct mx_enhanced_code c;

    if (mx_enhanced_scan(s, &c) != s.len || s.len == 0)
        return false;
    *out = c;
    return true;
}

/* ---- Reply codes ---- */

/* ASCII case-insensitive equality of two NUL-terminated strings. */
static bool verb_equal(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a, y = *b;

        if (x >= 'a' && x <= 'z')
            x = (char)(x - 'a' + 'A');
        if (y >= 'a' && y <= 'z')
            y = (char)(y - 'a' + 'A');
        if (x != y)
            return false;
        if (x == '\0')
            return true;
    }
}

size_t mx_reply_meanings(int code, const struct mx_reply_info **first)
{
    size_t lo = 0, hi = mx_codes_replies_n, n = 0;

    /* Lower bound: the first row whose code is >= code (rows sorted by code). */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (mx_codes_replies[mid].code < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo + n < mx_codes_replies_n && mx_codes_replies[lo + n].code == code)
        n++;
    *first = n > 0 ? &mx_codes_replies[lo] : NULL;
    return n;
}

const struct mx_reply_info *mx_reply_lookup(int code, const char *verb)
{
    const struct mx_reply_info *r = NULL;
    size_t n = mx_reply_meanings(code, &r);

    if (verb != NULL && verb[0] != '\0') {
        for (size_t i = 0; i < n; i++) {
            if (verb_equal(r[i].command, verb))
                return &r[i];
        }
    }
    return r;
}

const char *mx_reply_code_text(int code)
{
    const struct mx_reply_info *r = mx_reply_lookup(code, NULL);

    return r != NULL ? r->text : NULL;
}

size_t mx_reply_count(void)
{
    return mx_codes_replies_n;
}

const struct mx_reply_info *mx_reply_at(size_t i)
{
    return i < mx_codes_replies_n ? &mx_codes_replies[i] : NULL;
}
