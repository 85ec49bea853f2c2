/* test_message.c - the message parser (RFC 5322, MIME) on crafted messages carried by SMTP DATA. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/decode.h"
#include "engine/engine.h"
#include "event/event.h"
#include "output/report.h"
#include "dialogue/harness.h"
#include "dissectors/message/message.h"
#include "dissectors/message/mime.h"
#include "check_main.h"
#include <openssl/evp.h>

#define C MX_DIR_C2S
#define S MX_DIR_S2C

static const char *get(json_object *o, const char *path)
{
    const char *v = mx_harness_get(o, path);
    return v ? v : "(absent)";
}

/* The SMTP dialogue carrying `msg` (which must end in CRLF and have no line
 * starting with '.') as its DATA; turns[7] points into a static buffer. */
static struct mx_turn turns[11];
static char data_buf[2 << 20];

static size_t dialogue(const char *msg, size_t len)
{
    if (!len)
        len = strlen(msg);
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

/* Runs the message; returns its "message" record (json_object_put it) and
 * the whole output in *out (free it). */
/* The message record of `msg` carried by SMTP, with --hashes `hashes` (NULL: the default). */
static json_object *run_hashes(const char *msg, char **out, const char *hashes)
{
    size_t n = dialogue(msg, 0);
    struct mx_harness_opts o = { .hashes = hashes };
    *out = mx_harness_run(turns, n, &o, SIZE_MAX, false);
    ck_assert_int_eq(mx_harness_count(*out, "message"), 1);
    return mx_harness_record(*out, "message", 0);
}

static json_object *run(const char *msg, char **out)
{
    return run_hashes(msg, out, NULL);
}

/* Number of anomaly records named `name`. */
static int anomalies(const char *out, const char *name)
{
    int n = 0;
    for (int i = 0;; i++) {
        json_object *a = mx_harness_record(out, "anomaly", i);
        if (!a)
            break;
        n += !strcmp(get(a, "name"), name);
        json_object_put(a);
    }
    return n;
}

START_TEST(headers_folding_and_fields)
{
    const char *msg = "Received: from client.example (client.example [10.0.0.1])\r\n"
                      "\tby mx.example (Postfix) with ESMTP id 4ABC\r\n"
                      "\tfor <b@example.net>; Mon, 6 Jan 2025 10:00:01 +0000\r\n"
                      "Received: by client.example with SMTP id xyz; Mon, 6 Jan 2025 10:00:00 +0000\r\n"
                      "DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n s=sel1; b=abc\r\n"
                      "From: Alice <a@example.org>\r\n"
                      "To: Bob <b@example.net>, \"Doe, Jane\" <j@example.net>,\r\n   c@example.net\r\n"
                      "Subject: a folded\r\n  subject\r\n"
                      "Subject: again\r\n"
                      "Message-ID: <1@example.org>\r\n"
                      "X-Mailer: test 1.0\r\n"
                      "Return-Path: <a@example.org>\r\n"
                      "\r\n"
                      "body\r\n";
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "carried_by"), "smtp.data");
    ck_assert_str_eq(get(r, "headers.from"), "Alice <a@example.org>");
    ck_assert_str_eq(get(r, "headers.to.0"), "Bob <b@example.net>");
    ck_assert_str_eq(get(r, "headers.to.1"), "\"Doe, Jane\" <j@example.net>");
    ck_assert_str_eq(get(r, "headers.to.2"), "c@example.net");
    /* RFC 5322 §2.2.3: unfolding removes the CRLF, keeps the whitespace */
    ck_assert_str_eq(get(r, "headers.subject"), "a folded  subject");
    ck_assert_str_eq(get(r, "headers.message_id"), "<1@example.org>");
    ck_assert_str_eq(get(r, "headers.x_mailer"), "test 1.0");
    ck_assert_str_eq(get(r, "headers.return_path"), "<a@example.org>");
    ck_assert_str_eq(get(r, "headers.received.0.from"), "client.example (client.example [10.0.0.1])");
    ck_assert_str_eq(get(r, "headers.received.0.by"), "mx.example (Postfix)");
    ck_assert_str_eq(get(r, "headers.received.0.with"), "ESMTP");
    ck_assert_str_eq(get(r, "headers.received.0.id"), "4ABC");
    ck_assert_str_eq(get(r, "headers.received.0.for"), "<b@example.net>");
    ck_assert_str_eq(get(r, "headers.received.0.date"), "Mon, 6 Jan 2025 10:00:01 +0000");
    ck_assert_str_eq(get(r, "headers.received.1.by"), "client.example");
    ck_assert_str_eq(get(r, "headers.dkim.0.d"), "example.org");
    ck_assert_str_eq(get(r, "headers.dkim.0.s"), "sel1");
    ck_assert_str_eq(get(r, "parts.0.path"), "0");
    ck_assert_str_eq(get(r, "parts.0.content_type"), "text/plain");
    ck_assert_str_eq(get(r, "parts.0.size"), "6");
    ck_assert_int_eq(anomalies(out, "DUPLICATE_FIELD"), 1);
    json_object_put(r);
    /* the transaction's summary */
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "message.message_id"), "<1@example.org>");
    json_object_put(t);
    free(out);
}
END_TEST

START_TEST(encoded_words)
{
    const char *msg = "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n"
                      "To: =?UTF-8?B?w6lsb2TDqWU=?= <e@example.net>\r\n"
                      "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?ISO-8859-1?Q?_r=E9sum=E9?=\r\n"
                      "  =?GB2312?B?1tDOxA==?= =?Shift_JIS?B?k/qWe4zq?= =?GBK?B?1tDOxA==?= plain\r\n"
                      "X-Mailer: =?x-no-such-charset?Q?abc?=\r\n"
                      "\r\n"
                      "b\r\n";
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "headers.from"), "Andr\xc3\xa9 <andre@example.org>");
    ck_assert_str_eq(get(r, "headers.to.0"), "\xc3\xa9lod\xc3\xa9"
                                             "e <e@example.net>");
    /* RFC 2047 §6.2: whitespace between adjacent encoded words is dropped */
    ck_assert_str_eq(get(r, "headers.subject"), "Gr\xc3\xbc\xc3\x9f"
                                                "e r\xc3\xa9sum\xc3\xa9"
                                                "\xe4\xb8\xad\xe6\x96\x87\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"
                                                "\xe4\xb8\xad\xe6\x96\x87 plain");
    ck_assert_str_eq(get(r, "headers.x_mailer"), "=?x-no-such-charset?Q?abc?=");
    ck_assert_int_eq(anomalies(out, "UNKNOWN_CHARSET"), 1);
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(rfc2231_parameters)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=XX\r\n"
                      "\r\n"
                      "--XX\r\n"
                      "Content-Type: application/octet-stream;\r\n"
                      " name*0=\"long\"; name*1=\"name.bin\"\r\n"
                      "\r\n"
                      "x\r\n"
                      "--XX\r\n"
                      "Content-Type: text/plain; charset=us-ascii\r\n"
                      "Content-Disposition: attachment;\r\n"
                      " filename*0*=UTF-8''%C3%A9t; filename*1*=%C3%A9.txt\r\n"
                      "\r\n"
                      "y\r\n"
                      "--XX\r\n"
                      "Content-Disposition: attachment; filename*=iso-8859-1'fr'caf%E9.txt\r\n"
                      "\r\n"
                      "z\r\n"
                      "--XX\r\n"
                      "Content-Disposition: attachment; filename=\"=?UTF-8?Q?na=C3=AFve.txt?=\"\r\n"
                      "\r\n"
                      "w\r\n"
                      "--XX--\r\n";
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "parts.1.filename"), "longname.bin");
    ck_assert_str_eq(get(r, "parts.2.filename"), "\xc3\xa9t\xc3\xa9.txt");
    ck_assert_str_eq(get(r, "parts.2.charset"), "us-ascii");
    ck_assert_str_eq(get(r, "parts.2.disposition"), "attachment");
    ck_assert_str_eq(get(r, "parts.3.filename"), "caf\xc3\xa9.txt");
    ck_assert_str_eq(get(r, "parts.4.filename"), "na\xc3\xafve.txt");
    ck_assert_str_eq(get(r, "attachments"), "4");
    json_object_put(r);
    free(out);
}
END_TEST

/* Nested multiparts, a boundary that is a prefix of the inner one, transport
 * padding, preamble and epilogue (RFC 2046 §5.1.1). */
static const char nested_msg[] = "From: a@example.org\r\n"
                                 "Content-Type: multipart/mixed; boundary=\"abc\"\r\n"
                                 "\r\n"
                                 "preamble --abc is not a boundary here\r\n"
                                 "--abc \t\r\n"
                                 "Content-Type: multipart/alternative; boundary=abcdef\r\n"
                                 "\r\n"
                                 "--abcdef\r\n"
                                 "\r\n"
                                 "one\r\n"
                                 "--abcdef\r\n"
                                 "Content-Type: text/html\r\n"
                                 "\r\n"
                                 "<p>two</p>\r\n"
                                 "--abcdef--\r\n"
                                 "inner epilogue\r\n"
                                 "--abc\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "\r\n"
                                 "three\r\n"
                                 "\r\n"
                                 "--abc--  \r\n"
                                 "epilogue\r\n";

START_TEST(nested_multipart)
{
    char *out;
    json_object *r = run(nested_msg, &out);
    ck_assert_str_eq(get(r, "parts.0.content_type"), "multipart/mixed");
    /* containers: their body's bytes as carried (preamble, parts, delimiters, epilogue), no hashes */
    ck_assert_str_eq(get(r, "parts.0.size"), "263");
    ck_assert_str_eq(get(r, "parts.0.sha256"), "(absent)");
    ck_assert_str_eq(get(r, "parts.1.path"), "1");
    ck_assert_str_eq(get(r, "parts.1.content_type"), "multipart/alternative");
    ck_assert_str_eq(get(r, "parts.1.size"), "92"); /* up to "inner epilogue": the CRLF is the boundary's */
    ck_assert_str_eq(get(r, "parts.1.md5"), "(absent)");
    ck_assert_str_eq(get(r, "parts.2.path"), "1.1");
    ck_assert_str_eq(get(r, "parts.2.size"), "3"); /* "one": the CRLF before the boundary is the boundary's */
    ck_assert_str_eq(get(r, "parts.3.path"), "1.2");
    ck_assert_str_eq(get(r, "parts.3.content_type"), "text/html");
    ck_assert_str_eq(get(r, "parts.3.size"), "10");
    ck_assert_str_eq(get(r, "parts.4.path"), "2");
    ck_assert_str_eq(get(r, "parts.4.size"), "7"); /* "three\r\n" */
    ck_assert_str_eq(get(r, "parts.5"), "(absent)");
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(split_everywhere)
{
    size_t n = dialogue(nested_msg, 0);
    ck_assert_uint_eq(mx_harness_split_check(turns, n, NULL), SIZE_MAX);
}
END_TEST

/* Long quoted-printable and base64 lines, cut anywhere, decode the same. */
START_TEST(split_long_lines)
{
    static char msg[16384];
    size_t w = (size_t)snprintf(msg, sizeof(msg),
                                "Content-Type: multipart/mixed; boundary=s\r\n\r\n--s\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    for (int i = 0; i < 1100; i++)
        w += (size_t)snprintf(msg + w, sizeof(msg) - w, "a=3D ");
    w += (size_t)snprintf(msg + w, sizeof(msg) - w,
                          "   =  \r\nend\t\r\n--s\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    for (int i = 0; i < 1200; i++)
        w += (size_t)snprintf(msg + w, sizeof(msg) - w, "QUJD");
    snprintf(msg + w, sizeof(msg) - w, "\r\n--s--\r\n");
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "parts.1.size"), "3306"); /* 1100 "a= ", 3 spaces before the soft break, "end" */
    ck_assert_str_eq(get(r, "parts.1.errors"), "(absent)");
    ck_assert_str_eq(get(r, "parts.2.size"), "3600");
    ck_assert_int_eq(anomalies(out, "LONG_LINE"), 2);
    json_object_put(r);
    free(out);
    size_t n = dialogue(msg, 0);
    ck_assert_uint_eq(mx_harness_split_check(turns, n, NULL), SIZE_MAX);
}
END_TEST

START_TEST(missing_final_boundary)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=b1\r\n"
                      "\r\n"
                      "--b1\r\n"
                      "\r\n"
                      "first\r\n"
                      "--b1\r\n"
                      "\r\n"
                      "cut short\r\n";
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "parts.2.path"), "2");
    ck_assert_str_eq(get(r, "parts.2.size"), "11"); /* "cut short\r\n" */
    ck_assert_int_eq(anomalies(out, "MISSING_BOUNDARY"), 1);
    ck_assert_str_eq(get(r, "anomalies.MISSING_BOUNDARY"), "1");
    json_object_put(r);
    free(out);
    /* a multipart without boundary parameter is a leaf */
    r = run("Content-Type: multipart/mixed\r\n\r\nx\r\n", &out);
    ck_assert_int_eq(anomalies(out, "MISSING_BOUNDARY"), 1);
    ck_assert_str_eq(get(r, "parts.0.size"), "3");
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(base64_with_junk)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=q\r\n"
                      "\r\n"
                      "--q\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "aGVs*bG8g\r\n"
                      "  d29y!bGQ=\r\n"
                      "--q\r\n"
                      "Content-Transfer-Encoding: BASE64\r\n"
                      "\r\n"
                      "aGVsbG8gd29ybGQ=\r\n"
                      "--q--\r\n";
    char *out;
    json_object *r = run_hashes(msg, &out, "all");
    /* "hello world" either way */
    ck_assert_str_eq(get(r, "parts.1.size"), "11");
    ck_assert_str_eq(get(r, "parts.1.sha256"), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    ck_assert_str_eq(get(r, "parts.1.md5"), "5eb63bbbe01eeed093cb22bb8f5acdc3");
    ck_assert_str_eq(get(r, "parts.1.sha1"), "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
    ck_assert_str_eq(get(r, "parts.1.errors.bad_base64"), "2");
    ck_assert_str_eq(get(r, "parts.2.sha256"), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    ck_assert_str_eq(get(r, "parts.2.errors"), "(absent)");
    ck_assert_int_eq(anomalies(out, "BAD_BASE64"), 1);
    json_object_put(r);
    free(out);
}
END_TEST

/* SHA-256 of n bytes, in hex. */
static void sha256_hex(const void *p, size_t n, char hx[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hx + 2 * i, 3, "%02x", d[i]);
}

/* --hashes chooses the digests; a single-part message carried as it is has
 * its body hashed once, and body_sha256 is still the SHA-256 of its body. */
START_TEST(hashes_choice)
{
    const char *single = "Subject: one part\r\n\r\nhello\r\nworld\r\n";
    const char *body = "hello\r\nworld\r\n";
    char want[65], *out;
    sha256_hex(body, strlen(body), want);
    json_object *r = run(single, &out); /* the default: sha256,body */
    ck_assert_str_eq(get(r, "body_sha256"), want);
    ck_assert_str_eq(get(r, "parts.0.sha256"), want);
    ck_assert_str_eq(get(r, "parts.0.md5"), "(absent)");
    ck_assert_str_eq(get(r, "parts.0.sha1"), "(absent)");
    ck_assert_str_eq(get(r, "sha256"), "(absent)");
    json_object_put(r);
    free(out);

    r = run_hashes(single, &out, "body"); /* no part digest to share: its own */
    ck_assert_str_eq(get(r, "body_sha256"), want);
    ck_assert_str_eq(get(r, "parts.0.sha256"), "(absent)");
    json_object_put(r);
    free(out);

    r = run_hashes(single, &out, "none");
    ck_assert_str_eq(get(r, "body_sha256"), "(absent)");
    ck_assert_str_eq(get(r, "parts.0.sha256"), "(absent)");
    ck_assert_str_eq(get(r, "parts.0.size"), "14");
    json_object_put(r);
    free(out);

    r = run_hashes(single, &out, "md5,message");
    sha256_hex(single, strlen(single), want);
    ck_assert_str_eq(get(r, "sha256"), want);
    ck_assert_str_eq(get(r, "parts.0.md5"), "7ac062d8a84466e70d9b899c0821a51c");
    ck_assert_str_eq(get(r, "body_sha256"), "(absent)");
    json_object_put(r);
    free(out);

    /* base64: the body (encoded) and the part (decoded) differ, each its own */
    const char *b64 = "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n";
    r = run(b64, &out);
    sha256_hex("aGVsbG8gd29ybGQ=\r\n", strlen("aGVsbG8gd29ybGQ=\r\n"), want);
    ck_assert_str_eq(get(r, "body_sha256"), want);
    ck_assert_str_eq(get(r, "parts.0.sha256"), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    json_object_put(r);
    free(out);

    /* a header block ended by a line without a colon: the parser's body
     * starts there, the empty line comes later: each digest its own */
    const char *odd = "Subject: x\r\nno colon here\r\n\r\ntail\r\n";
    r = run(odd, &out);
    sha256_hex("tail\r\n", strlen("tail\r\n"), want);
    ck_assert_str_eq(get(r, "body_sha256"), want);
    sha256_hex("no colon here\r\n\r\ntail\r\n", strlen("no colon here\r\n\r\ntail\r\n"), want);
    ck_assert_str_eq(get(r, "parts.0.sha256"), want);
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(quoted_printable)
{
    const char *msg = "Content-Transfer-Encoding: quoted-printable\r\n"
                      "\r\n"
                      "hello=\r\n"
                      " world=3D=ZZ   \r\n"
                      "caf=E9=\r\n";
    char *out;
    json_object *r = run(msg, &out);
    /* "hello world" "=" "=ZZ" CRLF "caf\xe9" */
    ck_assert_str_eq(get(r, "parts.0.size"), "21");
    ck_assert_str_eq(get(r, "parts.0.errors.bad_qp"), "1");
    ck_assert_int_eq(anomalies(out, "BAD_QP"), 1);
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(qp_decoder)
{
    struct mx_mime_qp st = { 0 };
    uint8_t o[64];
    bool soft = false;
    size_t n = mx_mime_qp_feed(&st, (const uint8_t *)"a=4", 3, false, &soft, o);
    n += mx_mime_qp_feed(&st, (const uint8_t *)"1b=", 3, true, &soft, o + n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(o, "aAb", 3), 0);
    ck_assert(soft);
    ck_assert_uint_eq(st.bad, 0);
}
END_TEST

START_TEST(rfc822_nesting)
{
    const char *msg = "Subject: outer\r\n"
                      "Content-Type: multipart/mixed; boundary=o\r\n"
                      "\r\n"
                      "--o\r\n"
                      "\r\n"
                      "see attached\r\n"
                      "--o\r\n"
                      "Content-Type: message/rfc822\r\n"
                      "\r\n"
                      "Subject: inner\r\n"
                      "Content-Type: multipart/mixed; boundary=i\r\n"
                      "\r\n"
                      "--i\r\n"
                      "\r\n"
                      "inner one\r\n"
                      "--i\r\n"
                      "Content-Type: message/rfc822\r\n"
                      "\r\n"
                      "Subject: innermost\r\n"
                      "\r\n"
                      "deep\r\n"
                      "--i--\r\n"
                      "--o--\r\n";
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "headers.subject"), "outer");
    ck_assert_str_eq(get(r, "parts.0.size"), "216");
    ck_assert_str_eq(get(r, "parts.2.path"), "2");
    ck_assert_str_eq(get(r, "parts.2.content_type"), "message/rfc822");
    ck_assert_str_eq(get(r, "parts.2.size"), "149"); /* the embedded message, headers and all */
    ck_assert_str_eq(get(r, "parts.2.sha256"), "(absent)");
    ck_assert_str_eq(get(r, "parts.2.message.subject"), "inner");
    ck_assert_str_eq(get(r, "parts.3.path"), "2.0");
    ck_assert_str_eq(get(r, "parts.3.content_type"), "multipart/mixed");
    ck_assert_str_eq(get(r, "parts.3.size"), "88");
    ck_assert_str_eq(get(r, "parts.3.message"), "(absent)");
    ck_assert_str_eq(get(r, "parts.4.path"), "2.1");
    ck_assert_str_eq(get(r, "parts.4.size"), "9");
    ck_assert_str_eq(get(r, "parts.5.path"), "2.2");
    ck_assert_str_eq(get(r, "parts.5.size"), "26");
    ck_assert_str_eq(get(r, "parts.5.message.subject"), "innermost");
    ck_assert_str_eq(get(r, "parts.6.path"), "2.2.0");
    ck_assert_str_eq(get(r, "parts.6.size"), "4");
    ck_assert_str_eq(
        get(r, "parts.6.sha256"),
        "74611c1d6455b534323a21f8133a6f43dc3a8188e7b946f96dcc28dde932fcb2"); /* a leaf keeps its hashes: "deep" */
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(depth_cap)
{
    static char msg[8192];
    size_t w = 0;
    for (int i = 0; i < 30; i++)
        w += (size_t)snprintf(msg + w, sizeof(msg) - w, "Content-Type: multipart/mixed; boundary=d%d\r\n\r\n--d%d\r\n",
                              i, i);
    w += (size_t)snprintf(msg + w, sizeof(msg) - w, "\r\ndeep\r\n");
    for (int i = 29; i >= 0; i--)
        w += (size_t)snprintf(msg + w, sizeof(msg) - w, "--d%d--\r\n", i);
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_int_eq(anomalies(out, "DEPTH_EXCEEDED"), 1);
    ck_assert_str_eq(get(r, "parts.20.path"), "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1");
    ck_assert_str_eq(get(r, "parts.21"), "(absent)");
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(header_without_colon)
{
    char *out;
    json_object *r = run("Subject: s\r\nnot a header\r\nFrom: x@example.org\r\n\r\n", &out);
    ck_assert_int_eq(anomalies(out, "HEADER_WITHOUT_COLON"), 1);
    ck_assert_str_eq(get(r, "headers.subject"), "s");
    /* the bad line starts the body (as Postfix reads it) */
    ck_assert_str_eq(get(r, "headers.from"), "(absent)");
    ck_assert_str_eq(get(r, "parts.0.size"), "37");
    json_object_put(r);
    free(out);
    /* no header at all: a headerless message, no anomaly */
    r = run("just text\r\n", &out);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    ck_assert_str_eq(get(r, "parts.0.size"), "11");
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(long_line_and_header)
{
    static char msg[40000];
    size_t w = (size_t)snprintf(msg, sizeof(msg), "Subject: ");
    memset(msg + w, 'x', 10000);
    w += 10000;
    w += (size_t)snprintf(msg + w, sizeof(msg) - w, "\r\n\r\n");
    memset(msg + w, 'y', 20000);
    w += 20000;
    memcpy(msg + w, "\r\n", 3);
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_int_eq(anomalies(out, "LONG_LINE"), 2);
    ck_assert_int_eq(anomalies(out, "LONG_HEADER"), 1);
    ck_assert_str_eq(get(r, "parts.0.size"), "20002"); /* nothing of the body lost */
    ck_assert_uint_eq(strlen(get(r, "headers.subject")), 512);
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(uuencode_in_text)
{
    const char *msg = "Subject: uu\r\n"
                      "\r\n"
                      "here it is\r\n"
                      "begin 644 abc.txt\r\n"
                      "#86)C\r\n"
                      "`\r\n"
                      "end\r\n";
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "parts.0.uuencoded.0.name"), "abc.txt");
    ck_assert_str_eq(get(r, "parts.0.uuencoded.0.mode"), "644");
    ck_assert_str_eq(get(r, "parts.0.uuencoded.0.size"), "3");
    ck_assert_str_eq(get(r, "parts.0.uuencoded.0.sha256"),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    json_object_put(r);
    free(out);
}
END_TEST

START_TEST(hostile_names)
{
    char b[64];
    mx_message_safe_name(mx_slice_make("../../etc/passwd", 16), b, sizeof(b));
    ck_assert_str_eq(b, "passwd");
    mx_message_safe_name(mx_slice_make("/abs/x.pdf", 10), b, sizeof(b));
    ck_assert_str_eq(b, "x.pdf");
    mx_message_safe_name(mx_slice_make("..", 2), b, sizeof(b));
    ck_assert(!strchr(b, '/') && strcmp(b, "..") && strcmp(b, "."));
    mx_message_safe_name(mx_slice_make("a\0b\x1b[31m.txt", 12), b, sizeof(b));
    ck_assert_str_eq(b, "a_b_[31m.txt");
    mx_message_safe_name(mx_slice_make("C:\\win\\evil.exe", 15), b, sizeof(b));
    ck_assert_str_eq(b, "evil.exe");
    mx_message_safe_name(mx_slice_make(".hidden", 7), b, sizeof(b));
    ck_assert_str_eq(b, "_hidden");
    mx_message_safe_name(mx_slice_make("", 0), b, sizeof(b));
    ck_assert_str_eq(b, "part");
    mx_message_safe_name(mx_slice_make("x\xff.bin", 6), b, sizeof(b));
    ck_assert_str_eq(b, "x_xff.bin");
    char lng[600];
    memset(lng, 'a', sizeof(lng));
    mx_message_safe_name(mx_slice_make(lng, sizeof(lng)), b, sizeof(b));
    ck_assert_uint_eq(strlen(b), sizeof(b) - 1);
    /* never cut inside a UTF-8 sequence */
    char u[64];
    for (int i = 0; i < 30; i++)
        memcpy(u + 2 * i, "\xc3\xa9", 2);
    mx_message_safe_name(mx_slice_make(u, 60), b, 10);
    ck_assert_uint_eq(strlen(b), 8);
    /* cut at a character boundary, the extension kept */
    memcpy(u + 58, ".pdf", 4);
    mx_message_safe_name(mx_slice_make(u, 62), b, 10);
    ck_assert_str_eq(b, "\xc3\xa9\xc3\xa9.pdf"); /* 9 bytes allowed: "é" and half of one do not fit */
    /* a sequence the record's cap cut short is dropped, not escaped */
    mx_message_safe_name(mx_slice_make("abc\xe2\x82", 5), b, sizeof(b));
    ck_assert_str_eq(b, "abc");
    /* bidi controls and invisible characters cannot disguise the extension */
    mx_message_safe_name(mx_slice_make("1-1-\xe2\x80\xaetxt.exe", 14), b, sizeof(b));
    ck_assert_str_eq(b, "1-1-_txt.exe");
    static const char *const hidden[] = { "\xe2\x80\xaa", "\xe2\x80\xab", "\xe2\x80\xac", "\xe2\x80\xad",
                                          "\xe2\x81\xa6", "\xe2\x81\xa7", "\xe2\x81\xa8", "\xe2\x81\xa9",
                                          "\xe2\x80\x8e", "\xe2\x80\x8f", "\xd8\x9c",     "\xe2\x80\x8b",
                                          "\xef\xbb\xbf", "\xc2\xad",     "\xc2\x85",     "\xe2\x80\xa8" };
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        char in[32];
        int k = snprintf(in, sizeof(in), "a%sb.txt", hidden[i]);
        mx_message_safe_name(mx_slice_make(in, (size_t)k), b, sizeof(b));
        ck_assert_str_eq(b, "a_b.txt");
    }
    mx_message_safe_name(mx_slice_make("r\xc3\xa9sum\xc3\xa9.pdf", 12), b, sizeof(b));
    ck_assert_str_eq(b, "r\xc3\xa9sum\xc3\xa9.pdf"); /* visible characters stay */
}
END_TEST

START_TEST(too_many_parts)
{
    static char msg[400000];
    size_t w = (size_t)snprintf(msg, sizeof(msg), "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for (int i = 0; i < 10005; i++)
        w += (size_t)snprintf(msg + w, sizeof(msg) - w, "--p\r\n\r\nx\r\n");
    w += (size_t)snprintf(msg + w, sizeof(msg) - w, "--p--\r\n");
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_int_eq(anomalies(out, "TOO_MANY_PARTS"), 1);
    ck_assert_str_eq(get(r, "parts_not_described"), "5"); /* the root and 10000 parts are described */
    ck_assert_str_eq(get(r, "parts.10000.path"), "10000");
    json_object_put(r);
    free(out);
}
END_TEST

/* What the parser holds is counted for the memory cap, its part
 * descriptions and texts included. */
START_TEST(bytes_count_allocations)
{
    ck_assert_uint_eq(mx_message_bytes(NULL), 0);
    struct mx_message_env env = { .dir = MX_DIR_C2S, .source = "test" };
    struct mx_message *m = mx_message_new(&env);
    ck_assert_ptr_nonnull(m);
    size_t b0 = mx_message_bytes(m);
    ck_assert_uint_gt(b0, 16384); /* the struct with its line, field and hash buffers */
    static const char head[] = "Content-Type: multipart/mixed; boundary=p\r\n\r\n";
    static const char part[] = "--p\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nx\r\n";
    uint64_t off = 0;
    mx_message_feed(m, mx_slice_make(head, sizeof(head) - 1), off);
    off += sizeof(head) - 1;
    for (int i = 0; i < 2000; i++) {
        mx_message_feed(m, mx_slice_make(part, sizeof(part) - 1), off);
        off += sizeof(part) - 1;
    }
    size_t b1 = mx_message_bytes(m);
    /* each description is over 100 bytes, and its texts (path, type, charset) over 20 */
    ck_assert_uint_ge(b1, b0 + 2000 * 120);
    mx_message_end(m);
    ck_assert_uint_ge(mx_message_bytes(m), b1); /* kept until freed */
    mx_message_free(m);
}
END_TEST

START_TEST(bare_lf_and_gapless_end)
{
    char *out;
    json_object *r = run("Subject: lf\nContent-Type: multipart/mixed; boundary=z\n\n--z\n\nbody\n--z--\n", &out);
    ck_assert_str_eq(get(r, "headers.subject"), "lf");
    ck_assert_str_eq(get(r, "parts.1.size"), "4");
    /* The message parser raises nothing; SMTP names its <LF>.<CRLF> end (issue 26). */
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 1);
    ck_assert_int_eq(anomalies(out, "DATA_BARE_LF_TERMINATOR"), 1);
    json_object_put(r);
    free(out);
}
END_TEST

/* RFC 2046 §5.2.1: an embedded message's own From, To, Cc, Subject, Date and
 * Message-ID go with its part, decoded as the top-level ones are. */
START_TEST(embedded_message_headers)
{
    const char *msg = "From: outer@example.org\r\n"
                      "Subject: fwd\r\n"
                      "Content-Type: multipart/mixed; boundary=o\r\n"
                      "\r\n"
                      "--o\r\n"
                      "Content-Type: message/rfc822\r\n"
                      "\r\n"
                      "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n"
                      "To: Bob <b@example.net>, \"Doe, Jane\" <j@example.net>\r\n"
                      "Cc: c1@example.net, c2@example.net, c3@example.net, c4@example.net, c5@example.net,\r\n"
                      " c6@example.net, c7@example.net, c8@example.net, c9@example.net, c10@example.net\r\n"
                      "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
                      "Date: Mon, 6 Jan 2025 10:00:00 +0000\r\n"
                      "Message-ID: <inner@example.org>\r\n"
                      "From: second@example.org\r\n"
                      "Received: from x by y; Mon, 6 Jan 2025 09:00:00 +0000\r\n"
                      "X-Mailer: not reported\r\n"
                      "\r\n"
                      "inner body\r\n"
                      "--o\r\n"
                      "Content-Type: message/rfc822\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "RnJvbTogeEB5DQoNCmI=\r\n"
                      "--o\r\n"
                      "Content-Type: message/global\r\n"
                      "\r\n"
                      "\r\n"
                      "headerless\r\n"
                      "--o--\r\n";
    char *out;
    json_object *r = run(msg, &out);
    /* the top-level fields stay the outer message's */
    ck_assert_str_eq(get(r, "headers.from"), "outer@example.org");
    ck_assert_str_eq(get(r, "headers.subject"), "fwd");
    ck_assert_str_eq(get(r, "headers.to"), "(absent)");
    ck_assert_str_eq(get(r, "headers.received"), "(absent)");
    ck_assert_str_eq(get(r, "headers.x_mailer"), "(absent)");
    ck_assert_str_eq(get(r, "parts.1.path"), "1");
    ck_assert_str_eq(get(r, "parts.1.message.from"), "Andr\xc3\xa9 <andre@example.org>");
    ck_assert_str_eq(get(r, "parts.1.message.to.1"), "\"Doe, Jane\" <j@example.net>");
    ck_assert_str_eq(get(r, "parts.1.message.cc.7"), "c8@example.net");
    ck_assert_str_eq(get(r, "parts.1.message.cc.8"), "(absent)"); /* 8 kept, the rest counted */
    ck_assert_str_eq(get(r, "parts.1.message.cc_not_listed"), "2");
    ck_assert_str_eq(get(r, "parts.1.message.subject"), "Gr\xc3\xbc\xc3\x9f"
                                                        "e");
    ck_assert_str_eq(get(r, "parts.1.message.received"), "(absent)");
    ck_assert_str_eq(get(r, "parts.1.message.x_mailer"), "(absent)");
    ck_assert_int_eq(anomalies(out, "DUPLICATE_FIELD"), 1); /* the second From; the first is kept */
    /* the inner message's own entry has no "message"; its key order is fixed */
    ck_assert_str_eq(get(r, "parts.2.path"), "1.0");
    ck_assert_str_eq(get(r, "parts.2.message"), "(absent)");
    ck_assert_ptr_nonnull(strstr(out, "\"message\":{\"from\":\"Andr\xc3\xa9 <andre@example.org>\","
                                      "\"to\":[\"Bob <b@example.net>\",\"\\\"Doe, Jane\\\" <j@example.net>\"],"
                                      "\"cc\":[\"c1@example.net\",\"c2@example.net\",\"c3@example.net\","
                                      "\"c4@example.net\",\"c5@example.net\",\"c6@example.net\",\"c7@example.net\","
                                      "\"c8@example.net\"],\"cc_not_listed\":2,\"subject\":\"Gr\xc3\xbc\xc3\x9f"
                                      "e\","
                                      "\"date\":\"Mon, 6 Jan 2025 10:00:00 +0000\","
                                      "\"message_id\":\"<inner@example.org>\"}"));
    /* a base64 message/rfc822 is a leaf: not parsed, no fields */
    ck_assert_str_eq(get(r, "parts.3.path"), "2");
    ck_assert_str_eq(get(r, "parts.3.message"), "(absent)");
    ck_assert_str_eq(get(r, "parts.3.size"), "14");
    ck_assert_str_ne(get(r, "parts.3.sha256"), "(absent)");
    /* message/global (RFC 6532 §3.5) without fields: an empty object */
    ck_assert_str_eq(get(r, "parts.4.path"), "3");
    ck_assert_ptr_nonnull(
        strstr(out, "{\"path\":\"3\",\"content_type\":\"message/global\",\"size\":12,\"message\":{}}"));
    ck_assert_str_eq(get(r, "parts.5.path"), "3.0");
    ck_assert_str_eq(get(r, "parts.5.size"), "10");
    ck_assert_str_eq(get(r, "embedded_headers_not_kept"), "(absent)");
    json_object_put(r);
    free(out);
}
END_TEST

/* Embedded messages' fields are kept up to 1 MiB per message, then counted. */
START_TEST(embedded_headers_budget)
{
    static char msg[2 << 20];
    char v[501];
    memset(v, 'v', 500);
    v[500] = '\0';
    size_t w = (size_t)snprintf(msg, sizeof(msg), "Content-Type: multipart/digest; boundary=d\r\n\r\n");
    for (int i = 0; i < 120; i++) {
        /* 4 fields and 16 addresses of 500 bytes: 10,057 bytes kept each, so 104 fit */
        w += (size_t)snprintf(msg + w, sizeof(msg) - w,
                              "--d\r\n\r\nFrom: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n", v, v, v, v);
        for (int l = 0; l < 2; l++) {
            w += (size_t)snprintf(msg + w, sizeof(msg) - w, "%s: %s", l ? "Cc" : "To", v);
            for (int k = 1; k < 8; k++)
                w += (size_t)snprintf(msg + w, sizeof(msg) - w, ",\r\n %s", v);
            w += (size_t)snprintf(msg + w, sizeof(msg) - w, "\r\n");
        }
        w += (size_t)snprintf(msg + w, sizeof(msg) - w, "\r\nbody %d\r\n", i);
    }
    snprintf(msg + w, sizeof(msg) - w, "--d--\r\n");
    char *out;
    json_object *r = run(msg, &out);
    ck_assert_str_eq(get(r, "embedded_headers_not_kept"), "16");
    ck_assert_str_eq(get(r, "parts.207.path"), "104");
    ck_assert_uint_eq(strlen(get(r, "parts.207.message.cc.7")), 500);
    ck_assert_str_eq(get(r, "parts.209.path"), "105");
    ck_assert_str_eq(get(r, "parts.209.message"), "(absent)");
    ck_assert_str_eq(get(r, "parts.239.path"), "120");
    ck_assert_str_eq(get(r, "parts.239.content_type"), "message/rfc822");
    json_object_put(r);
    free(out);
}
END_TEST

/* ---- The interface driven directly: a test dissector hands the client's
 * bytes to one message, with a chosen env, and cuts it or not at the end ---- */

static struct mx_message_env t_env;
static bool t_cut;

static void *tm_new(struct mx_dissect_ctx *ctx)
{
    char mailbox[400], section[100];
    struct mx_message_env env = t_env;
    env.ctx = ctx;
    env.dir = MX_DIR_C2S;
    /* the strings are copied: the caller's buffers may go once it returns */
    ck_assert_uint_le(t_env.mailbox.len, sizeof(mailbox));
    ck_assert_uint_le(t_env.section.len, sizeof(section));
    if (t_env.mailbox.len)
        memcpy(mailbox, t_env.mailbox.ptr, t_env.mailbox.len);
    if (t_env.section.len)
        memcpy(section, t_env.section.ptr, t_env.section.len);
    env.mailbox = mx_slice_make(t_env.mailbox.len ? mailbox : NULL, t_env.mailbox.len);
    env.section = mx_slice_make(t_env.section.len ? section : NULL, t_env.section.len);
    struct mx_message *m = mx_message_new(&env);
    memset(mailbox, 'X', sizeof(mailbox));
    memset(section, 'X', sizeof(section));
    return m;
}

static void tm_free(void *st)
{
    mx_message_free(st);
}

static struct mx_parse_result tm_parse(void *st, struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data,
                                       unsigned flags)
{
    struct mx_parse_result r = { MX_PARSE_OK, data.len, 0 };
    if (d != MX_DIR_C2S)
        return r;
    if (flags & MX_CHUNK_GAP) {
        mx_message_gap(st, data.len);
        return r;
    }
    if (data.len)
        mx_message_feed(st, data, mx_ctx_offset(ctx, d));
    if (flags & MX_CHUNK_END) {
        if (t_cut)
            mx_message_cut(st); /* as a session that ends inside a message does */
        mx_message_end(st);
        struct mx_event *ev = mx_event_begin(mx_ctx_sink(ctx), "test.summary", mx_ctx_flow_id(ctx), MX_TIME_NONE);
        mx_message_describe(st, ev, "message");
        mx_event_emit(mx_ctx_sink(ctx), ev);
    }
    return r;
}

static size_t tm_bytes(const void *st)
{
    return mx_message_bytes(st);
}

static const struct mx_dissector tm_dissector = {
    .name = "msgtest",
    .state_new = tm_new,
    .state_free = tm_free,
    .parse = tm_parse,
    .state_bytes = tm_bytes,
};

static void tm_frame(struct mx_engine *eng, uint32_t *seq, mx_time_t *t, enum mx_dir d, uint8_t flags, const char *data,
                     size_t n)
{
    static uint8_t f[1600];
    bool c2s = d == MX_DIR_C2S;
    size_t len = mx_harness_tcp_frame(f, c2s ? 1 : 2, c2s ? 40000 : 143, c2s ? 2 : 1, c2s ? 143 : 40000, seq[d],
                                      seq[!d], flags, data, n);
    struct mx_raw_packet raw = { 0, *t, 1, (uint32_t)len, (uint32_t)len, f, false };
    *t += MX_NS_PER_SEC / 1000;
    mx_engine_packet(eng, &raw);
    seq[d] += (uint32_t)n + ((flags & (MX_TCP_SYN | MX_TCP_FIN)) ? 1 : 0);
}

/* The client sends `msg` (then FIN when `fin`): the NDJSON output (free it). */
static char *run_direct(const char *msg, bool fin)
{
    char *out = NULL;
    size_t out_len = 0;
    FILE *fp = open_memstream(&out, &out_len);
    struct mx_sink *sink = mx_sink_new();
    ck_assert(mx_report_json_add(sink, fp, false));
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.protocols = mx_harness_protocols_with(&tm_dissector);
    cfg.warnings = false;
    cfg.classify = false;
    char err[128];
    struct mx_engine *eng = mx_engine_new(&cfg, sink, err, sizeof(err));
    ck_assert_msg(eng != NULL, "%s", err);
    uint32_t seq[2] = { 1000, 5000 };
    mx_time_t t = (mx_time_t)1700000000 * MX_NS_PER_SEC;
    tm_frame(eng, seq, &t, C, MX_TCP_SYN, NULL, 0);
    seq[C]--;
    tm_frame(eng, seq, &t, S, MX_TCP_SYN | MX_TCP_ACK, NULL, 0);
    seq[C]++;
    tm_frame(eng, seq, &t, C, MX_TCP_ACK, NULL, 0);
    for (size_t pos = 0, len = strlen(msg); pos < len; pos += 1400)
        tm_frame(eng, seq, &t, C, MX_TCP_ACK | MX_TCP_PSH, msg + pos, len - pos < 1400 ? len - pos : 1400);
    if (fin) {
        tm_frame(eng, seq, &t, C, MX_TCP_ACK | MX_TCP_FIN, NULL, 0);
        tm_frame(eng, seq, &t, S, MX_TCP_ACK | MX_TCP_FIN, NULL, 0);
        tm_frame(eng, seq, &t, C, MX_TCP_ACK, NULL, 0);
    }
    mx_engine_finish(eng);
    mx_sink_finish(sink);
    mx_engine_free(eng);
    mx_sink_free(sink);
    fclose(fp);
    return out;
}

static const char cut_msg[] = "Subject: cut\r\n"
                              "Content-Type: multipart/mixed; boundary=c\r\n"
                              "\r\n"
                              "--c\r\n"
                              "\r\n"
                              "whole\r\n"
                              "--c\r\n"
                              "Content-Type: application/pdf\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "\r\n"
                              "JVBERi0xLjQK\r\n";

START_TEST(message_cut)
{
    memset(&t_env, 0, sizeof(t_env));
    t_env.source = "test.retr";
    t_cut = true;
    char *out = run_direct(cut_msg, false);
    json_object *r = mx_harness_record(out, "message", 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(get(r, "partial"), "true");
    ck_assert_str_eq(get(r, "cut"), "true");
    ck_assert_str_eq(get(r, "missing_bytes"), "(absent)");
    ck_assert_ptr_nonnull(strstr(out, "\"partial\":true,\"cut\":true,\"headers\":"));
    /* the entities still open when it was cut are partial; the finished part is not */
    ck_assert_str_eq(get(r, "parts.0.partial"), "true");
    ck_assert_str_eq(get(r, "parts.1.partial"), "(absent)");
    ck_assert_str_eq(get(r, "parts.2.partial"), "true");
    ck_assert_str_eq(get(r, "parts.2.size"), "9"); /* what came is still described */
    json_object_put(r);
    json_object *sm = mx_harness_record(out, "test.summary", 0);
    ck_assert_str_eq(get(sm, "message.partial"), "true");
    json_object_put(sm);
    free(out);

    /* the same bytes not cut: whole */
    t_cut = false;
    out = run_direct(cut_msg, true);
    r = mx_harness_record(out, "message", 0);
    ck_assert_str_eq(get(r, "partial"), "false");
    ck_assert_str_eq(get(r, "cut"), "(absent)");
    ck_assert_str_eq(get(r, "parts.2.partial"), "(absent)");
    json_object_put(r);
    sm = mx_harness_record(out, "test.summary", 0);
    ck_assert_str_eq(get(sm, "message.partial"), "false");
    json_object_put(sm);
    free(out);

    /* without a flow; after the end a cut changes nothing */
    struct mx_message_env env = { .dir = MX_DIR_S2C, .source = "test" };
    struct mx_message *m = mx_message_new(&env);
    ck_assert_ptr_nonnull(m);
    mx_message_feed(m, mx_slice_make("Subject: x\r\n\r\nb\r\n", 17), 0);
    mx_message_end(m);
    mx_message_cut(m);
    mx_message_cut(NULL);
    char *js = NULL;
    size_t jl = 0;
    FILE *fp = open_memstream(&js, &jl);
    struct mx_sink *sink = mx_sink_new();
    ck_assert(mx_report_json_add(sink, fp, false));
    struct mx_event *ev = mx_event_begin(sink, "t", 0, MX_TIME_NONE);
    mx_message_describe(m, ev, "message");
    mx_event_emit(sink, ev);
    mx_sink_finish(sink);
    mx_sink_free(sink);
    fclose(fp);
    ck_assert_ptr_nonnull(strstr(js, "\"partial\":false"));
    free(js);
    mx_message_free(m);
}
END_TEST

/* POP3 and IMAP say which message it is: the record carries it after "carried_by". */
START_TEST(message_env_context)
{
    memset(&t_env, 0, sizeof(t_env));
    t_env.source = "imap.fetch";
    t_env.number = 7;
    t_env.uid = 4242;
    t_env.mailbox = mx_slice_make("INBOX/Sent \xff", 12);
    t_env.section = mx_slice_make("1.2", 3);
    t_env.fragment = true;
    t_cut = false;
    char *out = run_direct("Subject: env\r\n\r\nbody\r\n", true);
    /* wire bytes made valid UTF-8; the order fixed */
    ck_assert_ptr_nonnull(strstr(out, "\"carried_by\":\"imap.fetch\",\"number\":7,\"uid\":4242,"
                                      "\"mailbox\":\"INBOX/Sent \\\\xff\",\"section\":\"1.2\",\"fragment\":true,"
                                      "\"size\":22,"));
    json_object *r = mx_harness_record(out, "message", 0);
    ck_assert_str_eq(get(r, "partial"), "false"); /* a fragment is not a capture loss */
    json_object_put(r);
    free(out);

    /* capped copies: 256 bytes of mailbox, 64 of section */
    static char mb[300], sec[90];
    memset(mb, 'm', sizeof(mb));
    memset(sec, 's', sizeof(sec));
    memset(&t_env, 0, sizeof(t_env));
    t_env.source = "imap.fetch";
    t_env.mailbox = mx_slice_make(mb, sizeof(mb));
    t_env.section = mx_slice_make(sec, sizeof(sec));
    out = run_direct("Subject: env\r\n\r\nbody\r\n", true);
    r = mx_harness_record(out, "message", 0);
    ck_assert_uint_eq(strlen(get(r, "mailbox")), 256);
    ck_assert_uint_eq(strlen(get(r, "section")), 64);
    ck_assert_str_eq(get(r, "number"), "(absent)");
    ck_assert_str_eq(get(r, "uid"), "(absent)");
    ck_assert_str_eq(get(r, "fragment"), "(absent)");
    json_object_put(r);
    free(out);

    /* unknown (zero, empty): left out */
    memset(&t_env, 0, sizeof(t_env));
    t_env.source = "pop3.retr";
    out = run_direct("Subject: env\r\n\r\nbody\r\n", true);
    ck_assert_ptr_nonnull(strstr(out, "\"carried_by\":\"pop3.retr\",\"size\":22,"));
    free(out);
}
END_TEST

/* Whether this process's peak RSS is this test's own: Check forks each test
 * (unless CK_FORK=no), and sanitizers' shadow memory would blur it. */
#if defined(__SANITIZE_ADDRESS__)
#define MX_TEST_NO_RSS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MX_TEST_NO_RSS 1
#endif
#endif

/* A message of 10,000 described parts (the cap) goes through in modest
 * memory: the part descriptions are packed, and the record is written
 * straight from the event, not built as a JSON tree. The bound is loose (the
 * whole test process, the output kept in memory included): this test peaked
 * at about 45 MiB with fixed-size descriptions and a json-c tree, 19 MiB since. */
START_TEST(many_parts_memory)
{
    static char msg[1 << 21];
    size_t w = (size_t)snprintf(msg, sizeof(msg), "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for (int i = 0; i < 10000; i++)
        w += (size_t)snprintf(msg + w, sizeof(msg) - w,
                              "--p\r\nContent-Type: application/octet-stream; name=\"f%05d.bin\"\r\n"
                              "Content-Disposition: attachment; filename=\"f%05d.bin\"\r\n"
                              "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n",
                              i, i);
    snprintf(msg + w, sizeof(msg) - w, "--p--\r\n");
    size_t n = dialogue(msg, 0);
    char *out = mx_harness_run(turns, n, NULL, SIZE_MAX, false);
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
#ifndef MX_TEST_NO_RSS
    const char *ck_fork = getenv("CK_FORK");
    if (!ck_fork || strcmp(ck_fork, "no"))
        ck_assert_int_lt(ru.ru_maxrss, 32 * 1024); /* KiB */
#endif
    json_object *r = mx_harness_record(out, "message", 0);
    ck_assert_str_eq(get(r, "parts.10000.path"), "10000");
    ck_assert_str_eq(get(r, "parts.10000.filename"), "f09999.bin");
    ck_assert_str_eq(get(r, "parts.10000.size"), "11");
    ck_assert_str_eq(get(r, "parts.0.size"), "1750007");
    ck_assert_str_eq(get(r, "attachments"), "10000");
    ck_assert_str_eq(get(r, "parts_not_described"), "(absent)");
    json_object_put(r);
    free(out);
}
END_TEST

/* ---- --extract (issue 24): names, paths, caps ---- */

/* A fresh empty folder for --extract; rm_dir empties and removes it. */
static void tmp_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/mx-test-extract-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static int files_in(const char *dir, uint64_t *bytes)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int n = 0;
    *bytes = 0;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            struct stat st;
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            ck_assert_int_eq(lstat(p, &st), 0);
            n++;
            *bytes += (uint64_t)st.st_size;
        }
    closedir(d);
    return n;
}

/* The bytes of file `path` (at most cap), or -1 when it is no regular file. */
static long file_bytes(const char *path, char *buf, size_t cap)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

/* The file the record's `key` names holds `size` bytes (the record's own
 * figure) and, when want is given, exactly those bytes. */
static void check_file(json_object *r, const char *key, const char *want)
{
    char k[64];
    snprintf(k, sizeof(k), "%s.extracted", key);
    const char *path = get(r, k);
    static char buf[1 << 16];
    long n = file_bytes(path, buf, sizeof(buf));
    ck_assert_msg(n >= 0, "%s: %s is not a file", k, path);
    snprintf(k, sizeof(k), "%s.size", key);
    ck_assert_str_eq(get(r, k), (snprintf(buf + sizeof(buf) - 32, 32, "%ld", n), buf + sizeof(buf) - 32));
    if (want) {
        ck_assert_int_eq(n, (long)strlen(want));
        ck_assert(!memcmp(buf, want, (size_t)n));
    }
}

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        if (!n)
            return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* A message with a long UTF-8 file name (a 2-byte character where it must be
 * cut), one with U+202E RIGHT-TO-LEFT OVERRIDE, and two parts named alike. */
static char *names_msg(void)
{
    static char msg[8192];
    char lng[400], longer[400], huge[1200];
    size_t w = 0;
    for (int i = 0; i < 120; i++)
        w += (size_t)snprintf(lng + w, sizeof(lng) - w, "\xc3\xa9"); /* é */
    /* 150 é and ".exe": 304 bytes, past the record's 256; 1100 bytes, past all it reads */
    memcpy(longer, lng, 240);
    memcpy(longer + 240, lng, 60);
    memcpy(longer + 300, ".exe", 5);
    memset(huge, 'h', 1100);
    memcpy(huge + 1100, ".exe", 5);
    snprintf(msg, sizeof(msg),
             "Subject: names\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"%s.pdf\"\r\n\r\nlong\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"invoice\xe2\x80\xae"
             "fdp.exe\"\r\n\r\nrlo\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"same.txt\"\r\n\r\none\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"same.txt\"\r\n\r\ntwo\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\nexe\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\nhuge\r\n"
             "--b--\r\n",
             lng, longer, huge);
    return msg;
}

START_TEST(extract_names)
{
    char dir[64];
    tmp_dir(dir, sizeof(dir));
    struct mx_harness_opts o = { .extract_dir = dir };
    size_t n = dialogue(names_msg(), 0);
    for (int run = 0; run < 2; run++) { /* the second run finds the first one's files */
        char *out = mx_harness_run(turns, n, &o, SIZE_MAX, false);
        json_object *r = mx_harness_record(out, "message", 0);
        ck_assert_ptr_nonnull(r);
        char want[4096];
        snprintf(want, sizeof(want), "%s/1-1%s.eml", dir, run ? "~1" : "");
        ck_assert_str_eq(get(r, "extracted"), want);
        check_file(r, "", NULL);
        check_file(r, "parts.1", "long");
        check_file(r, "parts.2", "rlo");
        check_file(r, "parts.3", "one");
        check_file(r, "parts.4", "two");
        /* the long name: cut at a character boundary within NAME_MAX, its extension kept */
        const char *p = get(r, "parts.1.extracted"), *base = strrchr(p, '/') + 1;
        ck_assert_uint_le(strlen(base), 255);
        ck_assert_uint_ge(strlen(base), 240);
        ck_assert(valid_utf8(base));
        ck_assert_str_eq(base + strlen(base) - 4, ".pdf");
        ck_assert(!strncmp(base, run ? "1-1-1~1-\xc3\xa9\xc3\xa9" : "1-1-1-\xc3\xa9\xc3\xa9", run ? 12 : 10));
        /* the bidi override is neutralised: the name shows as it is */
        snprintf(want, sizeof(want), "%s/1-1-2%s-invoice_fdp.exe", dir, run ? "~1" : "");
        ck_assert_str_eq(get(r, "parts.2.extracted"), want);
        ck_assert_str_eq(get(r, "parts.2.filename"), "invoice\xe2\x80\xae"
                                                     "fdp.exe"); /* the record keeps the name sent */
        snprintf(want, sizeof(want), "%s/1-1-3%s-same.txt", dir, run ? "~1" : "");
        ck_assert_str_eq(get(r, "parts.3.extracted"), want);
        snprintf(want, sizeof(want), "%s/1-1-4%s-same.txt", dir, run ? "~1" : "");
        ck_assert_str_eq(get(r, "parts.4.extracted"), want);
        /* past the record's 256 bytes: cut with "…" at a character boundary,
         * the extension kept, and the name's length said */
        const char *fn = get(r, "parts.5.filename");
        ck_assert(valid_utf8(fn));
        ck_assert_uint_le(strlen(fn), 256);
        ck_assert_str_eq(fn + strlen(fn) - 7, "\xe2\x80\xa6.exe");
        ck_assert_str_eq(get(r, "parts.5.filename_truncated"), "true");
        ck_assert_str_eq(get(r, "parts.5.filename_len"), "304");
        p = get(r, "parts.5.extracted");
        ck_assert_str_eq(p + strlen(p) - 4, ".exe");
        check_file(r, "parts.5", "exe");
        /* past the 512 bytes a parameter's value keeps (mime.c): the end is
         * unknown, the length a floor */
        ck_assert_str_eq(get(r, "parts.6.filename_truncated"), "true");
        ck_assert_str_eq(get(r, "parts.6.filename_len_min"), "512");
        check_file(r, "parts.6", "huge");
        ck_assert_str_eq(get(r, "parts.1.filename_truncated"), "(absent)");
        ck_assert_str_eq(get(r, "extract_failed"), "(absent)");
        ck_assert_str_eq(get(r, "extracted_cut"), "(absent)");
        json_object_put(r);
        free(out);
    }
    uint64_t bytes;
    ck_assert_int_eq(files_in(dir, &bytes), 14); /* nothing overwritten */
    rm_dir(dir);
}
END_TEST

/* --extract-max cuts a file, --extract-total stops the run's writing. */
START_TEST(extract_caps)
{
    char dir[64];
    tmp_dir(dir, sizeof(dir));
    static char msg[8192];
    char big[2001];
    memset(big, 'z', 2000);
    big[2000] = '\0';
    snprintf(msg, sizeof(msg),
             "Subject: caps\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n%.900s\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"b.bin\"\r\n\r\n%.900s\r\n"
             "--b\r\nContent-Disposition: attachment; filename=\"c.bin\"\r\n\r\nc\r\n"
             "--b--\r\n",
             big, big);
    /* one file at most 1000 bytes, all at most 1500: the .eml (about 2000
     * bytes) is cut at 1000, a.bin at 500, b.bin and c.bin are not created */
    struct mx_harness_opts o = { .extract_dir = dir, .extract_max = 1000, .extract_total = 1500 };
    size_t n = dialogue(msg, 0);
    char *out = mx_harness_run(turns, n, &o, SIZE_MAX, false);
    json_object *r = mx_harness_record(out, "message", 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(get(r, "extracted_cut"), "true");
    ck_assert_str_eq(get(r, "extracted_size"), "1000");
    ck_assert_str_eq(get(r, "parts.1.extracted_cut"), "true");
    ck_assert_str_eq(get(r, "parts.1.extracted_size"), "500");
    ck_assert_str_eq(get(r, "parts.1.size"), "900");
    ck_assert_str_eq(get(r, "parts.2.extracted"), "(absent)");
    ck_assert_str_eq(get(r, "parts.3.extracted"), "(absent)");
    ck_assert_str_eq(get(r, "extract_skipped"), "true");
    ck_assert_str_eq(get(r, "anomalies.EXTRACT_FILE_CAP"), "1");
    ck_assert_str_eq(get(r, "anomalies.EXTRACT_TOTAL_CAP"), "3");
    ck_assert_int_eq(anomalies(out, "EXTRACT_FILE_CAP"), 1);
    static char buf[4096];
    ck_assert_int_eq(file_bytes(get(r, "extracted"), buf, sizeof(buf)), 1000);
    ck_assert(!memcmp(buf, msg, 1000)); /* the first bytes, as sent */
    ck_assert_int_eq(file_bytes(get(r, "parts.1.extracted"), buf, sizeof(buf)), 500);
    uint64_t bytes;
    ck_assert_int_eq(files_in(dir, &bytes), 2);
    ck_assert_uint_eq(bytes, 1500);
    json_object_put(r);
    free(out);
    rm_dir(dir);
}
END_TEST

static Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *t = tcase_create("messages");
    tcase_set_timeout(t, 240);
    tcase_add_test(t, headers_folding_and_fields);
    tcase_add_test(t, encoded_words);
    tcase_add_test(t, rfc2231_parameters);
    tcase_add_test(t, nested_multipart);
    tcase_add_test(t, split_everywhere);
    tcase_add_test(t, split_long_lines);
    tcase_add_test(t, missing_final_boundary);
    tcase_add_test(t, base64_with_junk);
    tcase_add_test(t, quoted_printable);
    tcase_add_test(t, qp_decoder);
    tcase_add_test(t, rfc822_nesting);
    tcase_add_test(t, depth_cap);
    tcase_add_test(t, header_without_colon);
    tcase_add_test(t, long_line_and_header);
    tcase_add_test(t, uuencode_in_text);
    tcase_add_test(t, hostile_names);
    tcase_add_test(t, too_many_parts);
    tcase_add_test(t, bytes_count_allocations);
    tcase_add_test(t, hashes_choice);
    tcase_add_test(t, bare_lf_and_gapless_end);
    tcase_add_test(t, embedded_message_headers);
    tcase_add_test(t, embedded_headers_budget);
    tcase_add_test(t, message_cut);
    tcase_add_test(t, message_env_context);
    tcase_add_test(t, many_parts_memory);
    tcase_add_test(t, extract_names);
    tcase_add_test(t, extract_caps);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(message_suite)
