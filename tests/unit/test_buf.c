/* test_buf.c - Check suite for the growable array with a cap (src/core/buf.c). */
#include "core/buf.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

START_TEST(grows_to_its_cap)
{
    struct mx_buf b;
    mx_buf_init(&b, sizeof(uint32_t), 4, 10);
    for (uint32_t i = 0; i < 10; i++) {
        enum mx_buf_status st;
        uint32_t *e = mx_buf_push(&b, &st);
        ck_assert_int_eq(st, MX_BUF_OK);
        ck_assert_uint_eq(*e, 0); /* zeroed */
        *e = i;
    }
    ck_assert_uint_eq(b.n, 10);
    ck_assert_uint_eq(b.cap, 10); /* 4, 8, then the cap */
    enum mx_buf_status st;
    ck_assert_ptr_null(mx_buf_push(&b, &st));
    ck_assert_int_eq(st, MX_BUF_CAPPED);
    ck_assert_uint_eq(b.n, 10);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_uint_eq(*(uint32_t *)mx_buf_at(&b, i), i);
    ck_assert_uint_eq(mx_buf_bytes(&b), 10 * sizeof(uint32_t));
    mx_buf_free(&b);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_uint_eq(mx_buf_bytes(&b), 0);
}
END_TEST

START_TEST(bytes_append_remove_consume)
{
    struct mx_buf b;
    mx_buf_init(&b, 1, 2, 8);
    ck_assert_int_eq(mx_buf_append(&b, "abcdef", 6), MX_BUF_OK);
    ck_assert_int_eq(mx_buf_append(&b, "ghi", 3), MX_BUF_CAPPED); /* all or nothing */
    ck_assert_uint_eq(b.n, 6);
    mx_buf_remove(&b, 1);
    ck_assert(!memcmp(b.p, "acdef", 5));
    mx_buf_consume(&b, 2);
    ck_assert_uint_eq(b.n, 3);
    ck_assert(!memcmp(b.p, "def", 3));
    mx_buf_clear(&b, false);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_uint_eq(b.cap, 8); /* kept */
    mx_buf_clear(&b, true);
    ck_assert_uint_eq(b.cap, 0);
    ck_assert_int_eq(mx_buf_append(&b, "xy", 2), MX_BUF_OK); /* usable again */
    mx_buf_free(&b);
}
END_TEST

/* Lengths near SIZE_MAX are refused, never wrapped. */
START_TEST(no_overflow)
{
    struct mx_buf b;
    mx_buf_init(&b, 16, 1, SIZE_MAX);
    ck_assert_int_ne(mx_buf_reserve(&b, SIZE_MAX), MX_BUF_OK);
    ck_assert_int_eq(mx_buf_reserve(&b, SIZE_MAX / 8), MX_BUF_NOMEM);
    ck_assert_uint_eq(b.cap, 0);
    mx_buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("buf");
    TCase *t = tcase_create("core");
    tcase_add_test(t, grows_to_its_cap);
    tcase_add_test(t, bytes_append_remove_consume);
    tcase_add_test(t, no_overflow);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(suite)
