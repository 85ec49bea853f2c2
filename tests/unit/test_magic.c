/* test_magic.c - the type of a part's bytes (libmagic) and the rule that says
 * when it disagrees with the declared type (dissectors/message/magic.c). */
#include <check.h>
#include <pthread.h>
#include <string.h>

#include "dissectors/message/magic.h"
#include "check_main.h"

/* A minimal PE file: MZ, e_lfanew 0x40, "PE\0\0", an i386 COFF header. */
static size_t tiny_pe(uint8_t *b, size_t cap)
{
    static const uint8_t coff[] = { 'P', 'E', 0, 0, 0x4c, 0x01, 1, 0, 0,    0, 0,    0,
                                    0,   0,   0, 0, 0,    0,    0, 0, 0xe0, 0, 0x02, 0x01 };
    memset(b, 0, cap);
    b[0] = 'M', b[1] = 'Z', b[0x3c] = 0x40;
    memcpy(b + 0x40, coff, sizeof(coff));
    b[0x40 + sizeof(coff)] = 0x0b, b[0x41 + sizeof(coff)] = 0x01; /* PE32 optional header */
    return 0x40 + sizeof(coff) + 0xe0 + 64;
}

START_TEST(detected_types)
{
    char t[MX_MAGIC_TYPE_CAP];
    uint8_t pe[512];
    size_t n = tiny_pe(pe, sizeof(pe));
    ck_assert(mx_magic_type(pe, n, t, sizeof(t)));
    ck_assert_str_eq(t, "application/vnd.microsoft.portable-executable");
    ck_assert(mx_magic_is_executable(t));
    static const char pdf[] = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
    ck_assert(mx_magic_type((const uint8_t *)pdf, sizeof(pdf) - 1, t, sizeof(t)));
    ck_assert_str_eq(t, "application/pdf");
    ck_assert(!mx_magic_is_executable(t));
    ck_assert(!mx_magic_type((const uint8_t *)pdf, 0, t, sizeof(t)));
    ck_assert_str_eq(t, "");
}
END_TEST

/* A verdict asked for again (the same bytes at the next hop) is the one
 * libmagic gave, cut to each caller's room alike; other bytes, their own. */
START_TEST(verdicts_kept)
{
    uint8_t pe[512];
    size_t n = tiny_pe(pe, sizeof(pe));
    char a[MX_MAGIC_TYPE_CAP], b[12], c[MX_MAGIC_TYPE_CAP];
    ck_assert(mx_magic_type(pe, n, a, sizeof(a)));
    ck_assert(mx_magic_type(pe, n, b, sizeof(b)));
    ck_assert(mx_magic_type(pe, n, c, sizeof(c)));
    ck_assert_str_eq(a, "application/vnd.microsoft.portable-executable");
    ck_assert_str_eq(b, "application");
    ck_assert_str_eq(c, a);
    ck_assert(mx_magic_type(pe, 40, c, sizeof(c))); /* fewer bytes: looked at anew */
    ck_assert_str_ne(c, a);
}
END_TEST

START_TEST(mismatch_rule)
{
    const char *pe = "application/vnd.microsoft.portable-executable";
    /* families differ */
    ck_assert(mx_magic_mismatch("image/jpeg", "application/pdf"));
    ck_assert(mx_magic_mismatch("application/pdf", pe));
    ck_assert(mx_magic_mismatch("text/plain", "application/x-ms-shortcut"));
    ck_assert(mx_magic_mismatch("", pe)); /* no Content-Type: text/plain (RFC 2045 §5.2) */
    ck_assert(mx_magic_mismatch("application/x-ole-storage", pe));
    ck_assert(mx_magic_mismatch("application/x-unknown-thing", pe)); /* a program under a specific type */
    /* the same family, a generic declared type, or unknown types: no */
    ck_assert(!mx_magic_mismatch("text/plain", "text/x-c"));
    ck_assert(!mx_magic_mismatch("text/html", "text/plain"));
    ck_assert(!mx_magic_mismatch("image/jpg", "image/png"));
    ck_assert(!mx_magic_mismatch("application/zip",
                                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document"));
    ck_assert(!mx_magic_mismatch("application/msword", "application/x-ole-storage"));
    ck_assert(!mx_magic_mismatch("application/octet-stream", pe));
    ck_assert(!mx_magic_mismatch("application/octet-stream", "application/pdf"));
    ck_assert(!mx_magic_mismatch("application/pdf", "application/octet-stream"));
    ck_assert(!mx_magic_mismatch("application/ms-tnef", "application/vnd.ms-tnef"));
    ck_assert(!mx_magic_mismatch("application/javascript", "text/plain"));
    ck_assert(!mx_magic_mismatch(pe, "application/x-dosexec"));
}
END_TEST

/* Several threads share the one database (a mutex): the same answers. */
static void *worker(void *arg)
{
    (void)arg;
    uint8_t pe[512];
    size_t n = tiny_pe(pe, sizeof(pe));
    for (int i = 0; i < 200; i++) {
        char t[MX_MAGIC_TYPE_CAP];
        if (!mx_magic_type(pe, n, t, sizeof(t)) || strcmp(t, "application/vnd.microsoft.portable-executable"))
            return (void *)1;
    }
    return NULL;
}

START_TEST(threads_share_the_database)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        ck_assert_ptr_null(r);
    }
}
END_TEST

static Suite *magic_suite(void)
{
    Suite *s = suite_create("magic");
    TCase *t = tcase_create("types");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, detected_types);
    tcase_add_test(t, mismatch_rule);
    tcase_add_test(t, verdicts_kept);
    tcase_add_test(t, threads_share_the_database);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(magic_suite)
