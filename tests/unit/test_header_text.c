/* test_header_text.c - header texts as they were sent (issue 26): raw 8-bit charsets, unstructured whitespace, Received comments. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/harness.h"
#include "dissectors/message/mime.h"
#include "check_main.h"

#define C MX_DIR_C2S
#define S MX_DIR_S2C

static const char *get(json_object *o, const char *path)
{
    const char *v = mx_harness_get(o, path);
    return v ? v : "(absent)";
}

/* The SMTP dialogue carrying `msg` (ending in CRLF, no line starting with
 * '.') as its DATA. */
static struct mx_turn turns[11];
static char data_buf[1 << 16];

static size_t dialogue(const char *msg)
{
    size_t len = strlen(msg);
    ck_assert_uint_lt(len + 4, sizeof(data_buf));
    memcpy(data_buf, msg, len);
    memcpy(data_buf + len, ".\r\n", 3);
    const struct mx_turn t[11] = {
        { S, "220 mx ESMTP\r\n", 0 }, { C, "MAIL FROM:<a@example.org>\r\n", 0 },
        { S, "250 ok\r\n", 0 },       { C, "RCPT TO:<b@example.net>\r\n", 0 },
        { S, "250 ok\r\n", 0 },       { C, "DATA\r\n", 0 },
        { S, "354 go\r\n", 0 },       { C, data_buf, len + 3 },
        { S, "250 queued\r\n", 0 },   { C, "QUIT\r\n", 0 },
        { S, "221 bye\r\n", 0 },
    };
    memcpy(turns, t, sizeof(t));
    return 11;
}

/* The message record of `msg` (json_object_put it); the same records
 * whatever the segments it crosses in (every split, every byte alone). */
static json_object *run(const char *msg)
{
    size_t n = dialogue(msg);
    ck_assert_uint_eq(mx_harness_split_check(turns, n, NULL), SIZE_MAX);
    char *out = mx_harness_run(turns, n, NULL, SIZE_MAX, false);
    ck_assert_int_eq(mx_harness_count(out, "message"), 1);
    json_object *r = mx_harness_record(out, "message", 0);
    free(out);
    return r;
}

START_TEST(utf8_validity)
{
    /* RFC 3629 §4 */
    ck_assert(mx_mime_utf8_valid(mx_slice_make("plain", 5)));
    ck_assert(mx_mime_utf8_valid(mx_slice_make("caf\xc3\xa9 \xe2\x80\x99 \xf0\x9f\x93\xa7", 14)));
    ck_assert(!mx_mime_utf8_valid(mx_slice_make("It\x92s", 4)));
    ck_assert(!mx_mime_utf8_valid(mx_slice_make("\xc3", 1)));             /* cut short */
    ck_assert(!mx_mime_utf8_valid(mx_slice_make("\xc0\xaf", 2)));         /* overlong */
    ck_assert(!mx_mime_utf8_valid(mx_slice_make("\xe0\x80\xaf", 3)));     /* overlong */
    ck_assert(!mx_mime_utf8_valid(mx_slice_make("\xed\xa0\x80", 3)));     /* a surrogate */
    ck_assert(!mx_mime_utf8_valid(mx_slice_make("\xf4\x90\x80\x80", 4))); /* past U+10FFFF */
}
END_TEST

static const char *charset_for(const char *declared)
{
    static char name[32];
    mx_mime_header_charset(mx_slice_make(declared, strlen(declared)), name, sizeof(name));
    return name;
}

START_TEST(charset_choice)
{
    ck_assert_str_eq(charset_for(""), "windows-1252");
    ck_assert_str_eq(charset_for("KOI8-R"), "koi8-r");
    ck_assert_str_eq(charset_for("iso-8859-15"), "iso-8859-15");
    /* WHATWG Encoding Standard §4.2: what these labels really carry */
    ck_assert_str_eq(charset_for("ISO-8859-1"), "windows-1252");
    ck_assert_str_eq(charset_for("us-ascii"), "windows-1252");
    /* UTF-8 declared, yet the text is not: the usual guess */
    ck_assert_str_eq(charset_for("utf-8"), "windows-1252");
    /* not ASCII-compatible, unknown, or a name that could select iconv options */
    ck_assert_str_eq(charset_for("UTF-16"), "windows-1252");
    ck_assert_str_eq(charset_for("UTF-7"), "windows-1252");
    ck_assert_str_eq(charset_for("x-no-such-charset"), "windows-1252");
    ck_assert_str_eq(charset_for("latin1//TRANSLIT"), "windows-1252");
}
END_TEST

START_TEST(raw_conversion)
{
    uint8_t b[64];
    struct mx_mime_out o = { b, 0, sizeof(b), false };
    /* 0x81 is undefined in Windows-1252: escaped as the records escape invalid UTF-8 */
    ck_assert(mx_mime_raw_to_utf8("windows-1252", mx_slice_make("It\x92s \x80 \x81!", 9), &o));
    ck_assert_uint_eq(o.len, strlen("It\xe2\x80\x99s \xe2\x82\xac \\x81!"));
    ck_assert(!memcmp(b, "It\xe2\x80\x99s \xe2\x82\xac \\x81!", o.len));
    /* output capped: what fits, flagged */
    uint8_t small[5];
    struct mx_mime_out s = { small, 0, sizeof(small), false };
    ck_assert(mx_mime_raw_to_utf8("windows-1252", mx_slice_make("abc\x92\x92", 5), &s));
    ck_assert(s.trunc);
    ck_assert_uint_le(s.len, sizeof(small));
    ck_assert(!mx_mime_raw_to_utf8("x-no-such-charset", mx_slice_make("a", 1), &o));
}
END_TEST

/* No charset declared: Windows-1252, as mail clients read it; the byte it
 * leaves undefined stays escaped; encoded words beside raw text decode. */
START_TEST(raw_subject_windows_1252)
{
    json_object *r = run("From: Jos\xe9 <j@example.org>\r\n"
                         "To: \"M\xfcller, Ann\" <m@example.net>, b@example.net\r\n"
                         "Subject: It\x92s =?utf-8?q?=C3=A0?= \x80\x35 \x81\r\n"
                         "\r\n"
                         "body\r\n");
    ck_assert_str_eq(get(r, "headers.from"), "Jos\xc3\xa9 <j@example.org>");
    ck_assert_str_eq(get(r, "headers.to.0"), "\"M\xc3\xbcller, Ann\" <m@example.net>");
    ck_assert_str_eq(get(r, "headers.to.1"), "b@example.net");
    ck_assert_str_eq(get(r, "headers.subject"), "It\xe2\x80\x99s \xc3\xa0 \xe2\x82\xac\x35 \\x81");
    ck_assert_str_eq(get(r, "headers.charset_guessed"), "windows-1252");
    json_object_put(r);
}
END_TEST

/* The charset comes from the Content-Type that follows the Subject. */
START_TEST(raw_subject_declared_later)
{
    json_object *r = run("Subject: \xf0\xd2\xc9\xd7\xc5\xd4\r\n"
                         "Content-Type: text/plain; charset=\"KOI8-R\"\r\n"
                         "\r\n"
                         "\xf0\xd2\xc9\xd7\xc5\xd4\r\n");
    ck_assert_str_eq(get(r, "headers.subject"), "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
    ck_assert_str_eq(get(r, "headers.charset_guessed"), "koi8-r");
    json_object_put(r);
}
END_TEST

/* A multipart message: its first text part with a charset names it; an
 * embedded message reads its own header block in its own charset. */
START_TEST(raw_subject_multipart_and_embedded)
{
    json_object *r = run("Subject: 5 \xa4\r\n"
                         "Content-Type: multipart/mixed; boundary=b\r\n"
                         "\r\n"
                         "--b\r\n"
                         "Content-Type: image/png\r\n"
                         "\r\n"
                         "x\r\n"
                         "--b\r\n"
                         "Content-Type: text/plain; charset=iso-8859-15\r\n"
                         "\r\n"
                         "5 \xa4\r\n"
                         "--b\r\n"
                         "Content-Type: message/rfc822\r\n"
                         "\r\n"
                         "From: Zo\xeb <z@example.org>\r\n"
                         "Subject: inner \xe9t\xe9  \r\n"
                         "Content-Type: text/plain; charset=iso-8859-2\r\n"
                         "\r\n"
                         "hi\r\n"
                         "--b--\r\n");
    ck_assert_str_eq(get(r, "headers.subject"), "5 \xe2\x82\xac");
    ck_assert_str_eq(get(r, "headers.charset_guessed"), "iso-8859-15");
    ck_assert_str_eq(get(r, "parts.4.path"), "3.0");
    ck_assert_str_eq(get(r, "parts.3.message.from"), "Zo\xc3\xab <z@example.org>");
    ck_assert_str_eq(get(r, "parts.3.message.subject"), "inner \xc3\xa9t\xc3\xa9  ");
    ck_assert_str_eq(get(r, "parts.3.message.charset_guessed"), "iso-8859-2");
    json_object_put(r);
    /* nothing declared anywhere: Windows-1252 when the message ends */
    r = run("Subject: caf\xe9\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n"
            "\r\n"
            "--b\r\n"
            "\r\n"
            "x\r\n"
            "--b--\r\n");
    ck_assert_str_eq(get(r, "headers.subject"), "caf\xc3\xa9");
    ck_assert_str_eq(get(r, "headers.charset_guessed"), "windows-1252");
    json_object_put(r);
}
END_TEST

/* RFC 6532: UTF-8 stays as it is, and nothing is guessed. */
START_TEST(utf8_subject_as_is)
{
    json_object *r = run("Subject: caf\xc3\xa9 \xe2\x80\x99\r\n"
                         "Content-Type: text/plain; charset=koi8-r\r\n"
                         "\r\n"
                         "b\r\n");
    ck_assert_str_eq(get(r, "headers.subject"), "caf\xc3\xa9 \xe2\x80\x99");
    ck_assert_str_eq(get(r, "headers.charset_guessed"), "(absent)");
    json_object_put(r);
}
END_TEST

/* RFC 5322 §3.2.5, §2.2.3: an unstructured field loses only its CRLFs
 * (and the whitespace after the colon); a structured one its trailing
 * whitespace too. */
START_TEST(unstructured_whitespace)
{
    json_object *r = run("Subject:   two  spaces,\ta tab,\r\n"
                         "   folded \t \r\n"
                         "Message-ID: <1@example.org>  \r\n"
                         "\r\n"
                         "b\r\n");
    ck_assert_str_eq(get(r, "headers.subject"), "two  spaces,\ta tab,   folded \t ");
    ck_assert_str_eq(get(r, "headers.message_id"), "<1@example.org>");
    json_object_put(r);
    /* an empty first line, then the text on the fold */
    r = run("Subject:\r\n"
            " hello \r\n"
            "\r\n"
            "b\r\n");
    ck_assert_str_eq(get(r, "headers.subject"), "hello ");
    json_object_put(r);
}
END_TEST

/* RFC 5322 §3.6.7: comments before the first clause are kept; sendmail's
 * "(from user@host)" names the host, qmail's comment-only field is a hop. */
START_TEST(received_comments)
{
    json_object *r = run("Received: by mx.example (Postfix, from userid 0)\r\n"
                         "\tid 4AB12; Sun, 6 Dec 2026 10:00:02 +0000 (UTC)\r\n"
                         "Received: (from root@localhost)\r\n"
                         "\tby relay.example (8.17.1/8.17.1/Submit) id 0A1B; Sun, 6 Dec 2026 10:00:01 GMT\r\n"
                         "Received: (qmail 1234 invoked by uid 0); 6 Dec 2026 10:00:00 -0000\r\n"
                         "Received: (qmail 99 invoked from network) (a second comment)\r\n"
                         " by q.example; 6 Dec 2026 09:59:59 -0000\r\n"
                         "Received: (from userid 0) by u.example; 6 Dec 2026 09:59:58 -0000\r\n"
                         "Received: from real.example (from x@y.example) by z.example; 1 Jan 2026\r\n"
                         "\r\n"
                         "b\r\n");
    ck_assert_str_eq(get(r, "headers.received.0.comment"), "(absent)");
    ck_assert_str_eq(get(r, "headers.received.0.by"), "mx.example (Postfix, from userid 0)");
    ck_assert_str_eq(get(r, "headers.received.0.id"), "4AB12");
    ck_assert_str_eq(get(r, "headers.received.1.comment"), "(from root@localhost)");
    ck_assert_str_eq(get(r, "headers.received.1.from"), "localhost");
    ck_assert_str_eq(get(r, "headers.received.1.by"), "relay.example (8.17.1/8.17.1/Submit)");
    ck_assert_str_eq(get(r, "headers.received.1.id"), "0A1B");
    ck_assert_str_eq(get(r, "headers.received.1.date"), "Sun, 6 Dec 2026 10:00:01 GMT");
    ck_assert_str_eq(get(r, "headers.received.2.comment"), "(qmail 1234 invoked by uid 0)");
    ck_assert_str_eq(get(r, "headers.received.2.from"), "(absent)");
    ck_assert_str_eq(get(r, "headers.received.2.date"), "6 Dec 2026 10:00:00 -0000");
    ck_assert_str_eq(get(r, "headers.received.3.comment"), "(qmail 99 invoked from network) (a second comment)");
    ck_assert_str_eq(get(r, "headers.received.3.from"), "(absent)");
    ck_assert_str_eq(get(r, "headers.received.3.by"), "q.example");
    ck_assert_str_eq(get(r, "headers.received.4.from"), "(absent)");
    ck_assert_str_eq(get(r, "headers.received.4.by"), "u.example");
    /* a from clause wins over a comment's host */
    ck_assert_str_eq(get(r, "headers.received.5.from"), "real.example (from x@y.example)");
    json_object_put(r);
}
END_TEST

/* More raw values than wait for a charset (64): the rest are read as they
 * are, their bytes escaped, and the output stays valid. */
START_TEST(many_raw_values)
{
    static char msg[16384];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "Subject: caf\xe9\r\n");
    for (int f = 0; f < 2; f++) {
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s: ", f ? "Cc" : "To");
        for (int i = 0; i < 40; i++)
            n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s\"N\xe9%d\" <n%d@example.org>", i ? ", " : "", i, i);
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "\r\n");
    }
    snprintf(msg + n, sizeof(msg) - n, "Content-Type: text/plain; charset=iso-8859-1\r\n\r\nb\r\n");
    size_t t = dialogue(msg);
    char *out = mx_harness_run(turns, t, NULL, SIZE_MAX, false);
    ck_assert(mx_harness_all_json(out));
    json_object *r = mx_harness_record(out, "message", 0);
    ck_assert_str_eq(get(r, "headers.subject"), "caf\xc3\xa9");
    ck_assert_str_eq(get(r, "headers.to.0"), "\"N\xc3\xa9\x30\" <n0@example.org>");
    ck_assert_str_eq(get(r, "headers.to.31"), "\"N\xc3\xa9\x33\x31\" <n31@example.org>");
    ck_assert_str_eq(get(r, "headers.to_not_listed"), "8");
    ck_assert_str_eq(get(r, "headers.cc.30"), "\"N\xc3\xa9\x33\x30\" <n30@example.org>");
    ck_assert_str_eq(get(r, "headers.cc.31"), "\"N\\xe931\" <n31@example.org>");
    ck_assert_str_eq(get(r, "headers.charset_guessed"), "windows-1252");
    json_object_put(r);
    free(out);
}
END_TEST

static Suite *header_text_suite(void)
{
    Suite *s = suite_create("header_text");
    TCase *t = tcase_create("header_text");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, utf8_validity);
    tcase_add_test(t, charset_choice);
    tcase_add_test(t, raw_conversion);
    tcase_add_test(t, raw_subject_windows_1252);
    tcase_add_test(t, raw_subject_declared_later);
    tcase_add_test(t, raw_subject_multipart_and_embedded);
    tcase_add_test(t, utf8_subject_as_is);
    tcase_add_test(t, unstructured_whitespace);
    tcase_add_test(t, received_comments);
    tcase_add_test(t, many_raw_values);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(header_text_suite)
