/* test_dsn.c - delivery status notifications (RFC 3464, RFC 6533, issue 27): the message record's delivery_status, split at every byte, and hostile reports. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/harness.h"
#include "check_main.h"

#define C MX_DIR_C2S
#define S MX_DIR_S2C

static const char *get(json_object *o, const char *path)
{
    const char *v = mx_harness_get(o, path);
    return v ? v : "(absent)";
}

/* The SMTP dialogue carrying `msg` (ending in CRLF, no line starting with
 * '.') as its DATA; the buffer is the caller's until the run is over. */
static struct mx_turn turns[11];
static char *data_buf;

static size_t dialogue(const char *msg, size_t len)
{
    free(data_buf);
    data_buf = malloc(len + 4);
    ck_assert_ptr_nonnull(data_buf);
    memcpy(data_buf, msg, len);
    memcpy(data_buf + len, ".\r\n", 3);
    const struct mx_turn t[11] = {
        { S, "220 mx ESMTP\r\n", 0 },
        { C, "MAIL FROM:<>\r\n", 0 },
        { S, "250 ok\r\n", 0 },
        { C, "RCPT TO:<carol@example.org>\r\n", 0 },
        { S, "250 ok\r\n", 0 },
        { C, "DATA\r\n", 0 },
        { S, "354 go\r\n", 0 },
        { C, data_buf, len + 3 },
        { S, "250 queued as 1234\r\n", 0 },
        { C, "QUIT\r\n", 0 },
        { S, "221 bye\r\n", 0 },
    };
    memcpy(turns, t, sizeof(t));
    return 11;
}

/* The message record of `msg` (json_object_put it); with `split`, the same
 * records whatever the segments it crosses in (every split, every byte
 * alone). *out, when given, gets the whole output (free it). */
static json_object *run_out(const char *msg, size_t len, bool split, char **out)
{
    size_t n = dialogue(msg, len);
    if (split)
        ck_assert_uint_eq(mx_harness_split_check(turns, n, NULL), SIZE_MAX);
    char *o = mx_harness_run(turns, n, NULL, SIZE_MAX, false);
    ck_assert(mx_harness_all_json(o));
    ck_assert_int_eq(mx_harness_count(o, "message"), 1);
    json_object *r = mx_harness_record(o, "message", 0);
    if (out)
        *out = o;
    else
        free(o);
    return r;
}

static json_object *run(const char *msg)
{
    return run_out(msg, strlen(msg), true, NULL);
}

/* postfix 3.7's bounce, as the lab's bounce/imap capture holds it (RFC 3464
 * §2, RFC 6522): notification, delivery report, returned message. */
#define POSTFIX_HEAD                                                                   \
    "From: Mail Delivery System <MAILER-DAEMON@lab.test>\r\n"                          \
    "Subject: Undelivered Mail Returned to Sender\r\n"                                 \
    "To: carol@lab.test\r\n"                                                           \
    "MIME-Version: 1.0\r\n"                                                            \
    "Content-Type: multipart/report; report-type=delivery-status;\r\n"                 \
    "\tboundary=\"B7907ACE2A3.1796578915/mx.lab.test\"\r\n"                            \
    "Message-Id: <20261206174155.CF95EACE2B3@mx.lab.test>\r\n"                         \
    "\r\n"                                                                             \
    "This is a MIME-encapsulated message.\r\n"                                         \
    "\r\n"                                                                             \
    "--B7907ACE2A3.1796578915/mx.lab.test\r\n"                                         \
    "Content-Description: Notification\r\n"                                            \
    "Content-Type: text/plain; charset=utf-8\r\n"                                      \
    "\r\n"                                                                             \
    "<ghost@lab.test>: host 127.0.0.1[127.0.0.1] said: 550 5.1.1\r\n"                  \
    "    <ghost@lab.test> User doesn't exist (in reply to RCPT TO command)\r\n"        \
    "\r\n"                                                                             \
    "--B7907ACE2A3.1796578915/mx.lab.test\r\n"                                         \
    "Content-Description: Delivery report\r\n"                                         \
    "Content-Type: message/delivery-status\r\n"                                        \
    "\r\n"                                                                             \
    "Reporting-MTA: dns; mx.lab.test\r\n"                                              \
    "X-Postfix-Queue-ID: B7907ACE2A3\r\n"                                              \
    "X-Postfix-Sender: rfc822; carol@lab.test\r\n"                                     \
    "Arrival-Date: Sun,  6 Dec 2026 17:41:55 +0000 (UTC)\r\n"                          \
    "\r\n"                                                                             \
    "Final-Recipient: rfc822; ghost@lab.test\r\n"                                      \
    "Original-Recipient: rfc822;ghost@lab.test\r\n"                                    \
    "Action: failed\r\n"                                                               \
    "Status: 5.1.1\r\n"                                                                \
    "Remote-MTA: dns; 127.0.0.1\r\n"                                                   \
    "Diagnostic-Code: smtp; 550 5.1.1 <ghost@lab.test> User doesn't exist:\r\n"        \
    "    ghost@lab.test\r\n"                                                           \
    "\r\n"                                                                             \
    "Final-Recipient: rfc822; dave@lab.test\r\n"                                       \
    "Original-Recipient: rfc822;dave@lab.test\r\n"                                     \
    "Action: failed\r\n"                                                               \
    "Status: 5.2.2\r\n"                                                                \
    "Remote-MTA: dns; 127.0.0.1\r\n"                                                   \
    "Diagnostic-Code: smtp; 552 5.2.2 <dave@lab.test> Quota exceeded (mailbox for\r\n" \
    "    user is full)\r\n"                                                            \
    "\r\n"                                                                             \
    "Final-Recipient: rfc822; nobody@unreachable.example\r\n"                          \
    "Action: failed\r\n"                                                               \
    "Status: 4.4.1\r\n"                                                                \
    "Diagnostic-Code: X-Postfix; connect to 127.0.0.1[127.0.0.1]:2599: Connection\r\n" \
    "    refused\r\n"                                                                  \
    "\r\n"                                                                             \
    "--B7907ACE2A3.1796578915/mx.lab.test\r\n"                                         \
    "Content-Description: Undelivered Message\r\n"                                     \
    "Content-Type: message/rfc822\r\n"                                                 \
    "\r\n"                                                                             \
    "From: Carol <carol@lab.test>\r\n"                                                 \
    "Subject: Bounce me\r\n"                                                           \
    "Message-ID: <bounce.1@client.lab.test>\r\n"                                       \
    "\r\n"                                                                             \
    "Hello.\r\n"                                                                       \
    "\r\n"                                                                             \
    "--B7907ACE2A3.1796578915/mx.lab.test--\r\n"

START_TEST(postfix_bounce)
{
    json_object *r = run(POSTFIX_HEAD);
    ck_assert_str_eq(get(r, "delivery_status.path"), "2");
    ck_assert_str_eq(get(r, "delivery_status.reporting_mta"), "mx.lab.test");
    ck_assert_str_eq(get(r, "delivery_status.reporting_mta_type"), "dns");
    ck_assert_str_eq(get(r, "delivery_status.arrival_date"), "Sun,  6 Dec 2026 17:41:55 +0000 (UTC)");
    ck_assert_str_eq(get(r, "delivery_status.queue_id"), "B7907ACE2A3");
    ck_assert_str_eq(get(r, "delivery_status.original_message_id"), "<bounce.1@client.lab.test>");
    ck_assert_str_eq(get(r, "delivery_status.returned"), "message/rfc822");
    ck_assert_str_eq(get(r, "delivery_status.failed"), "3");
    ck_assert_str_eq(get(r, "delivery_status.delayed"), "0");
    /* the first recipient: every field, the folded diagnostic unfolded */
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient"), "ghost@lab.test");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient_type"), "rfc822");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.original_recipient"), "ghost@lab.test");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.action"), "failed");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.status"), "5.1.1");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.remote_mta"), "127.0.0.1");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.remote_mta_type"), "dns");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.diagnostic_type"), "smtp");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.diagnostic_code"),
                     "550 5.1.1 <ghost@lab.test> User doesn't exist: ghost@lab.test");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.reply_code"), "550");
    /* diagnosed as a reply in a session would be (diagnosis.h) */
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.0.cause"), "unknown user"));
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.0.enhanced_meaning"), "Bad destination mailbox"));
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.0.meaning"), "mailbox unavailable"));
    ck_assert_str_eq(get(r, "delivery_status.recipients.1.status"), "5.2.2");
    ck_assert_str_eq(get(r, "delivery_status.recipients.1.diagnostic_code"),
                     "552 5.2.2 <dave@lab.test> Quota exceeded (mailbox for user is full)");
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.1.cause"), "mailbox is full"));
    /* no reply to diagnose: the status speaks, and the retries are over */
    ck_assert_str_eq(get(r, "delivery_status.recipients.2.diagnostic_type"), "X-Postfix");
    ck_assert_str_eq(get(r, "delivery_status.recipients.2.reply_code"), "(absent)");
    ck_assert_str_eq(get(r, "delivery_status.recipients.2.meaning"), "(absent)");
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.2.cause"), "gave up retrying"));
    ck_assert_str_eq(get(r, "delivery_status.recipients.3"), "(absent)");
    ck_assert_str_eq(get(r, "anomalies"), "(absent)");
    json_object_put(r);
}
END_TEST

/* RFC 6533: a global report, UTF-8 addresses, comments, a delayed recipient
 * (Will-Retry-Until), a delivered one (not diagnosed), the returned message's
 * header block as message/global-headers, bare LF line ends. */
START_TEST(global_report)
{
    json_object *r = run("Content-Type: multipart/report; report-type=global-delivery-status; boundary=b\r\n"
                         "\r\n"
                         "--b\r\n"
                         "Content-Type: message/global-delivery-status\r\n"
                         "\r\n"
                         "Reporting-MTA: dns; mx.example.org (Exim 4.96)\n"
                         "Original-Envelope-Id: QQ314159\n"
                         "Received-From-MTA: dns; client.example.net\n"
                         "\n"
                         "\n"
                         "Final-Recipient: utf-8; J\xc3\xb6rg@b\xc3\xbc\x63her.example\n"
                         "Action: delayed (still trying)\n"
                         "Status: 4.2.2\n"
                         "Will-Retry-Until: Mon, 7 Dec 2026 10:00:00 +0000\n"
                         "Diagnostic-Code: smtp; 452-4.2.2 The email account that you tried to reach is over quota\n"
                         "\n"
                         "Final-Recipient: rfc822; ok@example.org\n"
                         "Action: delivered\n"
                         "Status: 2.0.0\n"
                         "\r\n"
                         "--b\r\n"
                         "Content-Type: message/global-headers\r\n"
                         "\r\n"
                         "Subject: hi\r\n"
                         "Message-ID: <g.1@example.net>\r\n"
                         "\r\n"
                         "--b--\r\n");
    ck_assert_str_eq(get(r, "delivery_status.global"), "true");
    ck_assert_str_eq(get(r, "delivery_status.reporting_mta"), "mx.example.org (Exim 4.96)");
    ck_assert_str_eq(get(r, "delivery_status.received_from_mta"), "client.example.net");
    ck_assert_str_eq(get(r, "delivery_status.original_envelope_id"), "QQ314159");
    ck_assert_str_eq(get(r, "delivery_status.original_message_id"), "<g.1@example.net>");
    ck_assert_str_eq(get(r, "delivery_status.returned"), "message/global-headers");
    ck_assert_str_eq(get(r, "delivery_status.failed"), "0");
    ck_assert_str_eq(get(r, "delivery_status.delayed"), "1");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient"), "J\xc3\xb6rg@b\xc3\xbc\x63her.example");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient_type"), "utf-8");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.action"), "delayed (still trying)");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.will_retry_until"), "Mon, 7 Dec 2026 10:00:00 +0000");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.reply_code"), "452");
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.0.cause"), "retries later"));
    ck_assert_str_eq(get(r, "delivery_status.recipients.1.action"), "delivered");
    ck_assert_str_eq(get(r, "delivery_status.recipients.1.cause"), "(absent)");
    ck_assert_str_eq(get(r, "anomalies"), "(absent)");
    json_object_put(r);
}
END_TEST

/* text/rfc822-headers (RFC 6522 §3), a base64-encoded report part. */
START_TEST(headers_and_base64)
{
    /* "Reporting-MTA: dns; a.example\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.2\r\n" */
    json_object *r = run("Content-Type: multipart/report; report-type=delivery-status; boundary=\"=_x\"\r\n"
                         "\r\n"
                         "--=_x\r\n"
                         "Content-Type: message/delivery-status\r\n"
                         "Content-Transfer-Encoding: base64\r\n"
                         "\r\n"
                         "UmVwb3J0aW5nLU1UQTogZG5zOyBhLmV4YW1wbGUNCg0KRmluYWwtUmVjaXBpZW50OiByZmM4\r\n"
                         "MjI7IHhAeQ0KQWN0aW9uOiBmYWlsZWQNClN0YXR1czogNS4xLjINCg==\r\n"
                         "--=_x\r\n"
                         "Content-Type: text/rfc822-headers\r\n"
                         "\r\n"
                         "From: a@b\r\n"
                         "Message-Id:\r\n"
                         " <folded.1@b>\r\n"
                         "\r\n"
                         "--=_x--\r\n");
    ck_assert_str_eq(get(r, "delivery_status.reporting_mta"), "a.example");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient"), "x@y");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.status"), "5.1.2");
    ck_assert_ptr_nonnull(strstr(get(r, "delivery_status.recipients.0.cause"), "domain does not exist"));
    ck_assert_str_eq(get(r, "delivery_status.original_message_id"), "<folded.1@b>");
    ck_assert_str_eq(get(r, "delivery_status.returned"), "text/rfc822-headers");
    json_object_put(r);
}
END_TEST

/* A forwarded bounce is not this message's report. */
START_TEST(forwarded_bounce_ignored)
{
    json_object *r = run("Content-Type: message/rfc822\r\n"
                         "\r\n"
                         "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n"
                         "\r\n"
                         "--b\r\n"
                         "Content-Type: message/delivery-status\r\n"
                         "\r\n"
                         "Reporting-MTA: dns; a.example\r\n"
                         "\r\n"
                         "Final-Recipient: rfc822; x@y\r\n"
                         "Action: failed\r\n"
                         "Status: 5.1.1\r\n"
                         "--b--\r\n");
    ck_assert_str_eq(get(r, "delivery_status"), "(absent)");
    json_object_put(r);
}
END_TEST

/* Hostile: missing and bad fields, lines that are no fields, binary. */
START_TEST(malformed_report)
{
    static const char msg[] = "Content-Type: multipart/report; boundary=b\r\n"
                              "\r\n"
                              "--b\r\n"
                              "Content-Type: message/delivery-status\r\n"
                              "\r\n"
                              "   a continuation with nothing before it\r\n"
                              "no colon here\r\n"
                              "\x00\x01\xff\xfe: \x80\x81\r\n"
                              "\r\n"
                              "Final-Recipient: rfc822; \xff\xfe@x\r\n"
                              "Action: exploded\r\n"
                              "Status: 9.9.9\r\n"
                              "\r\n"
                              "Original-Recipient: rfc822; lone@x\r\n"
                              "--b--\r\n";
    char *out = NULL;
    json_object *r = run_out(msg, sizeof(msg) - 1, true, &out);
    ck_assert_str_eq(get(r, "anomalies.DSN_NOT_A_FIELD"), "1");
    ck_assert_str_eq(get(r, "anomalies.DSN_BAD_VALUE"), "1");
    ck_assert_str_eq(get(r, "anomalies.DSN_MISSING_FIELD"), "1");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient"), "\\xff\\xfe@x");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.action"), "exploded");
    ck_assert_str_eq(get(r, "delivery_status.recipients.1.original_recipient"), "lone@x");
    ck_assert_str_eq(get(r, "delivery_status.reporting_mta"), "(absent)");
    ck_assert_int_ge(mx_harness_count(out, "anomaly"), 3);
    free(out);
    json_object_put(r);
}
END_TEST

static char *grow(char *b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        b = realloc(b, *cap);
        ck_assert_ptr_nonnull(b);
    }
    memcpy(b + *len, s, n);
    *len += n;
    b[*len] = '\0';
    return b;
}

#define ADD(s) (b = grow(b, &len, &cap, (s), strlen(s)))

/* A long UTF-8 address (RFC 6533) is cut at a character boundary. */
START_TEST(utf8_cut)
{
    size_t len = 0, cap = 0;
    char *b = NULL;
    ADD("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/global-delivery-status\r\n"
        "\r\nReporting-MTA: dns; m\r\n\r\nFinal-Recipient: utf-8; ");
    for (int i = 0; i < 300; i++)
        ADD("\xc3\xa9");
    ADD("\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n");
    json_object *r = run_out(b, len, true, NULL);
    const char *fr = get(r, "delivery_status.recipients.0.final_recipient");
    ck_assert_uint_eq(strlen(fr), 504); /* 7 bytes of type, then 252 whole characters of the 512 kept */
    ck_assert_ptr_null(strstr(fr, "\\x"));
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient_len"), "600");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient_truncated"), "true");
    json_object_put(r);
    free(b);
}
END_TEST

/* Hostile: a 184 KB Diagnostic-Code over many folded lines, a 100 KB
 * unfolded Final-Recipient line: both cut, with their real lengths. */
START_TEST(huge_fields)
{
    size_t len = 0, cap = 0;
    char *b = NULL;
    ADD("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: rfc822; ");
    for (int i = 0; i < 10000; i++)
        ADD("aaaaaaaaaa");
    ADD("@x\r\nAction: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: smtp; 550 5.0.0 go away");
    for (int i = 0; i < 2000; i++)
        ADD("\r\n    bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    ADD("\r\n--b--\r\n");
    json_object *r = run_out(b, len, false, NULL);
    const char *fr = get(r, "delivery_status.recipients.0.final_recipient");
    ck_assert_uint_eq(strlen(fr), 512 - strlen("rfc822; "));
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient_len"), "100002");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.final_recipient_truncated"), "true");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.diagnostic_code_truncated"), "true");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.diagnostic_code_len"), "184017");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.reply_code"), "550");
    ck_assert_str_eq(get(r, "delivery_status.recipients.0.status"), "5.0.0");
    json_object_put(r);
    free(b);
}
END_TEST

/* Hostile: 10,000 recipients, and no blank line anywhere: the groups are
 * told apart by their repeated fields; 32 are listed, all are counted. */
START_TEST(ten_thousand_recipients)
{
    size_t len = 0, cap = 0;
    char *b = NULL;
    char line[128];
    for (int pass = 0; pass < 2; pass++) {
        len = 0;
        ADD("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; m\r\n");
        for (int i = 0; i < 10000; i++) {
            snprintf(line, sizeof(line), "Final-Recipient: rfc822; u%d@x\r\nAction: %s\r\nStatus: %s\r\n%s", i,
                     i % 2 ? "delayed" : "failed", i % 2 ? "4.0.0" : "5.0.0", pass ? "" : "\r\n");
            ADD(line);
        }
        ADD("--b--\r\n");
        json_object *r = run_out(b, len, false, NULL);
        ck_assert_str_eq(get(r, "delivery_status.failed"), "5000");
        ck_assert_str_eq(get(r, "delivery_status.delayed"), "5000");
        ck_assert_str_eq(get(r, "delivery_status.recipients_not_listed"), "9968");
        ck_assert_str_eq(get(r, "delivery_status.recipients.31.final_recipient"), "u31@x");
        ck_assert_str_eq(get(r, "delivery_status.recipients.32"), "(absent)");
        ck_assert_str_eq(get(r, "anomalies.DSN_TOO_MANY_RECIPIENTS"), "1");
        json_object_put(r);
    }
    free(b);
}
END_TEST

/* Hostile: random bytes as a report: no crash, bounded, valid JSON. */
START_TEST(binary_report)
{
    size_t len = 0, cap = 0;
    char *b = NULL;
    ADD("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n");
    uint32_t x = 12345;
    char chunk[4096];
    for (int k = 0; k < 64; k++) {
        for (size_t i = 0; i < sizeof(chunk); i++) {
            x = x * 1103515245u + 12345u;
            chunk[i] = (char)(x >> 16);
            if (chunk[i] == '.' || chunk[i] == '-')
                chunk[i] = 'z'; /* no dot-stuffing, no boundary */
        }
        b = grow(b, &len, &cap, chunk, sizeof(chunk));
    }
    ADD("\r\n--b--\r\n");
    json_object *r = run_out(b, len, false, NULL);
    ck_assert_str_ne(get(r, "delivery_status"), "(absent)");
    ck_assert_str_eq(get(r, "anomalies.DSN_MISSING_FIELD"), "1");
    json_object_put(r);
    free(b);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("dsn");
    /* samples, each split at every byte */
    TCase *t = tcase_create("samples");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, postfix_bounce);
    tcase_add_test(t, global_report);
    tcase_add_test(t, headers_and_base64);
    tcase_add_test(t, forwarded_bounce_ignored);
    tcase_add_test(t, malformed_report);
    tcase_add_test(t, utf8_cut);
    suite_add_tcase(s, t);
    /* hostile reports, whole (CK_RUN_CASE=hostile under valgrind) */
    TCase *h = tcase_create("hostile");
    tcase_set_timeout(h, 300);
    tcase_add_test(h, huge_fields);
    tcase_add_test(h, ten_thousand_recipients);
    tcase_add_test(h, binary_report);
    suite_add_tcase(s, h);
    return s;
}

MX_CHECK_MAIN(make_suite)
