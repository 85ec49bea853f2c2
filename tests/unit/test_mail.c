/* test_mail.c - Check suite for the session layer SMTP, POP3 and IMAP share
 * (dissectors/mail/): the line reader, the queue of pending commands, and
 * each protocol's map of the shared anomalies. */
#include "dissectors/imap/imap.h"
#include "dissectors/mail/session.h"
#include "dissectors/pop3/pop3.h"
#include "dissectors/smtp/smtp.h"
#include "check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define SL(lit) mx_slice_make((lit), sizeof(lit) - 1)

/* ---- The line reader ---- */

START_TEST(line_crlf_lf_and_more)
{
    struct mx_line l;
    ck_assert_int_eq(mx_line_next(SL("EHLO a\r\nQUIT"), 100, false, &l), MX_LINE_OK);
    ck_assert_uint_eq(l.text.len, 6);
    ck_assert(!memcmp(l.text.ptr, "EHLO a", 6));
    ck_assert_uint_eq(l.raw, 8);
    ck_assert(l.lf && !l.bare_lf);
    ck_assert_int_eq(mx_line_next(SL("QUIT"), 100, false, &l), MX_LINE_MORE);
    ck_assert_int_eq(mx_line_next(SL("QUIT\n"), 100, false, &l), MX_LINE_OK);
    ck_assert(l.bare_lf);
    ck_assert_uint_eq(l.text.len, 4);
    /* The end of input: what is left is a line, a CR before it dropped. */
    ck_assert_int_eq(mx_line_next(SL("QUIT\r"), 100, true, &l), MX_LINE_OK);
    ck_assert_uint_eq(l.text.len, 4);
    ck_assert_uint_eq(l.raw, 5);
    ck_assert(!l.lf && !l.bare_lf);
    ck_assert_int_eq(mx_line_next(SL("\r\n"), 100, false, &l), MX_LINE_OK);
    ck_assert_uint_eq(l.text.len, 0);
}
END_TEST

/* The cap counts the bytes before the line end: a line of exactly cap bytes
 * is whole, one more is too long, with or without its end yet. */
START_TEST(line_cap)
{
    struct mx_line l;
    ck_assert_int_eq(mx_line_next(SL("abcd\n"), 4, false, &l), MX_LINE_OK);
    ck_assert_int_eq(mx_line_next(SL("abcd"), 4, false, &l), MX_LINE_MORE);
    ck_assert_int_eq(mx_line_next(SL("abcde\nx"), 4, false, &l), MX_LINE_TOO_LONG);
    ck_assert_uint_eq(l.text.len, 4);
    ck_assert_uint_eq(l.raw, 6);
    ck_assert(l.lf);
    ck_assert_int_eq(mx_line_next(SL("abcde"), 4, false, &l), MX_LINE_TOO_LONG);
    ck_assert_uint_eq(l.raw, 5);
    ck_assert(!l.lf);
}
END_TEST

/* Every split of a stream of lines gives the same lines, fed as the engine
 * feeds a parser: what was not consumed comes again with more bytes. */
START_TEST(line_every_split)
{
    static const char text[] = "A1\r\nB22\nC333\r\n\r\nD\r\n";
    const size_t n = sizeof(text) - 1;
    for (size_t split = 0; split <= n; split++) {
        char got[64] = "";
        size_t pos = 0, have = split;
        while (pos < n) {
            struct mx_line l;
            enum mx_line_status st = mx_line_next(mx_slice_make(text + pos, have - pos), 16, have == n, &l);
            if (st == MX_LINE_MORE || have == pos) {
                have = n;
                continue;
            }
            ck_assert_int_eq(st, MX_LINE_OK);
            strncat(got, (const char *)l.text.ptr, l.text.len);
            strcat(got, "|");
            pos += l.raw;
        }
        ck_assert_str_eq(got, "A1|B22|C333||D|");
    }
}
END_TEST

/* ---- Splitting a command as servers split it (issue 24) ---- */

static void split_is(struct mx_slice line, const char *verb, const char *rest)
{
    struct mx_slice v, r;
    mx_split_command(line, &v, &r);
    ck_assert_msg(v.len == strlen(verb) && !memcmp(v.ptr, verb, v.len), "verb %.*s", (int)v.len, (const char *)v.ptr);
    ck_assert_msg(r.len == strlen(rest) && !memcmp(r.ptr, rest, r.len), "rest %.*s", (int)r.len, (const char *)r.ptr);
}

START_TEST(split_as_servers_split)
{
    split_is(SL("AUTH PLAIN x"), "AUTH", "PLAIN x");
    split_is(SL("MAIL FROM:<a@b>"), "MAIL", "FROM:<a@b>"); /* as before: what follows the one SP */
    split_is(SL("AUTH\tPLAIN"), "AUTH", "PLAIN");          /* postfix: ISSPACE */
    split_is(SL("AUTH\vPLAIN"), "AUTH", "PLAIN");
    split_is(SL("AUTH\fPLAIN"), "AUTH", "PLAIN");
    split_is(SL("AUTH\rPLAIN"), "AUTH", "PLAIN");
    split_is(SL("AUTH\0PLAIN"), "AUTH", "PLAIN");     /* a C server sees "AUTH" alone */
    split_is(SL(" \tAUTH PLAIN"), "AUTH", "PLAIN");   /* leading whitespace skipped */
    split_is(SL("AUTH\t\tPLAIN"), "AUTH", "\tPLAIN"); /* the rest as written */
    split_is(SL("QUIT"), "QUIT", "");
    split_is(SL("QUIT \t"), "QUIT", "\t");
    split_is(SL(" \t "), "", "");
    split_is(SL(""), "", "");
    struct mx_slice t = mx_trim_cmd(SL("\0 \t\v\fPLAIN x\r\t "));
    ck_assert_uint_eq(t.len, 7);
    ck_assert(!memcmp(t.ptr, "PLAIN x", 7));
    for (unsigned c = 0; c < 256; c++)
        ck_assert_int_eq(mx_is_cmd_space((uint8_t)c),
                         c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\0');
}
END_TEST

/* ---- Pending commands ---- */

START_TEST(queue_ring)
{
    int slots[3];
    struct mx_mail_queue q;
    mx_mail_queue_init(&q, slots, sizeof(slots[0]), 3);
    struct mx_mail m;
    memset(&m, 0, sizeof(m));
    m.proto = &mx_smtp_mail;
    int v, out;
    for (int round = 0; round < 5; round++) { /* wraps around the ring */
        v = round * 10 + 1;
        ck_assert_ptr_nonnull(mx_mail_queue_push(&m, &q, &v, 0, 0));
        v = round * 10 + 2;
        ck_assert_ptr_nonnull(mx_mail_queue_push(&m, &q, &v, 0, 0));
        ck_assert_int_eq(*(int *)mx_mail_queue_head(&q), round * 10 + 1);
        ck_assert_int_eq(*(int *)mx_mail_queue_at(&q, 1), round * 10 + 2);
        ck_assert(mx_mail_queue_pop(&q, &out));
        ck_assert_int_eq(out, round * 10 + 1);
        mx_mail_queue_drop(&q, 1);
        ck_assert_uint_eq(q.n, 0);
        ck_assert(!mx_mail_queue_pop(&q, &out));
        ck_assert_ptr_null(mx_mail_queue_head(&q));
    }
}
END_TEST

/* ---- Shared anomalies ---- */

/* Each protocol names a shared anomaly under its shared name, or not at all. */
static void check_map(const struct mx_mail_proto *p, const struct mx_dissector *d)
{
    for (int a = 0; a < MX_MAIL__ANOMALIES; a++) {
        if (p->an[a] == MX_MAIL_NONE)
            continue;
        ck_assert_uint_lt(p->an[a], d->n_anomalies);
        ck_assert_str_eq(d->anomalies[p->an[a]].name, mx_mail_anomaly_names[a]);
    }
}

START_TEST(anomaly_maps)
{
    check_map(&mx_smtp_mail, &mx_smtp_dissector);
    check_map(&mx_pop3_mail, &mx_pop3_dissector);
    check_map(&mx_imap_mail, &mx_imap_dissector);
    for (int a = 0; a < MX_MAIL__ANOMALIES; a++)
        ck_assert_ptr_nonnull(mx_mail_anomaly_names[a]);
}
END_TEST

START_TEST(outcome_names)
{
    ck_assert_str_eq(mx_login_outcome_name(MX_LOGIN_NO_REPLY), "no_reply");
    ck_assert_str_eq(mx_login_outcome_name(MX_LOGIN_SUCCESS), "success");
    ck_assert_str_eq(mx_login_outcome_name(MX_LOGIN_FAILURE), "failure");
    ck_assert_str_eq(mx_login_outcome_name(MX_LOGIN_CANCELLED), "cancelled");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mail");
    TCase *t = tcase_create("core");
    tcase_add_test(t, line_crlf_lf_and_more);
    tcase_add_test(t, line_cap);
    tcase_add_test(t, line_every_split);
    tcase_add_test(t, split_as_servers_split);
    tcase_add_test(t, queue_ring);
    tcase_add_test(t, anomaly_maps);
    tcase_add_test(t, outcome_names);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(suite)
