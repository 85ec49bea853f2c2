/* test_lmtp.c - LMTP (RFC 2033) through the SMTP dissector's LMTP mode: the replies after the
 * data matched to their recipients (§4.2), each dialogue also split at every byte. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/check_dialogue.h"
#include "check_main.h"

static const struct mx_harness_opts lmtp = { .server_port = 24 };

/* Four recipients: one refused at RCPT, three accepted; after the data one reply each for
 * the three, in RCPT order, one of them a refusal (over quota), in turns of their own. */
static const struct mx_turn mixed[] = {
    { S, "220 mx.example LMTP ready\r\n", 0 },
    { C, "LHLO client.example\r\n", 0 },
    { S, "250-mx.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n", 0 },
    { C, "MAIL FROM:<carol@example.org>\r\n", 0 },
    { S, "250 2.1.0 OK\r\n", 0 },
    { C, "RCPT TO:<alice@example.org>\r\n", 0 },
    { S, "250 2.1.5 OK\r\n", 0 },
    { C, "RCPT TO:<nobody@example.org>\r\n", 0 },
    { S, "550 5.1.1 <nobody@example.org> User doesn't exist\r\n", 0 },
    { C, "RCPT TO:<dave@example.org>\r\n", 0 },
    { S, "250 2.1.5 OK\r\n", 0 },
    { C, "RCPT TO:<bob@example.org>\r\n", 0 },
    { S, "250 2.1.5 OK\r\n", 0 },
    { C, "DATA\r\n", 0 },
    { S, "354 OK\r\n", 0 },
    { C, "Subject: hi\r\n\r\nbody\r\n.\r\n", 0 },
    { S, "250 2.0.0 <alice@example.org> id1 Saved\r\n", 0 },
    { S, "552 5.2.2 <dave@example.org> Quota exceeded (mailbox for user is full)\r\n", 0 },
    { S, "250 2.0.0 <bob@example.org> id1:R2 Saved\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 2.0.0 Bye\r\n", 0 },
};

START_TEST(per_recipient_replies)
{
    char *out = run(mixed, N(mixed), &lmtp);
    ck_assert_int_eq(mx_harness_count(out, "smtp.reply"), 0);
    ck_assert_int_eq(mx_harness_count(out, "lmtp.command"), 8);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0); /* no UNMATCHED_REPLY, LHLO is known */
    expect(out, "flow_start", 0, "proto", "lmtp");
    expect(out, "lmtp.reply", 1, "answers.command", "LHLO");
    expect(out, "lmtp.reply", 8, "answers.command", "(end of data)");
    expect(out, "lmtp.reply", 8, "answers.recipient", "alice@example.org");
    expect(out, "lmtp.reply", 9, "answers.recipient", "dave@example.org");
    expect(out, "lmtp.reply", 10, "answers.recipient", "bob@example.org");
    expect(out, "lmtp.reply", 11, "answers.command", "QUIT");
    json_object *t = mx_harness_record(out, "lmtp.transaction", 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(get(t, "recipients.0.delivery.outcome"), "accepted");
    ck_assert_str_eq(get(t, "recipients.0.delivery.code"), "250");
    ck_assert_str_eq(get(t, "recipients.1.outcome"), "rejected");
    ck_assert_str_eq(get(t, "recipients.1.delivery"), "(absent)");
    ck_assert_str_eq(get(t, "recipients.2.delivery.outcome"), "rejected");
    ck_assert_str_eq(get(t, "recipients.2.delivery.code"), "552");
    ck_assert_str_eq(get(t, "recipients.2.delivery.enhanced"), "5.2.2");
    ck_assert_ptr_nonnull(strstr(get(t, "recipients.2.delivery.cause"), "over quota"));
    ck_assert_str_eq(get(t, "recipients.3.delivery.outcome"), "accepted");
    ck_assert_str_eq(get(t, "disposition"), "mixed");
    ck_assert_str_eq(get(t, "failure.step"), "(end of data)");
    ck_assert_str_eq(get(t, "failure.code"), "552");
    json_object_put(t);
    expect(out, "lmtp.session", 0, "esmtp", "true");
    expect(out, "lmtp.session", 0, "replies", "12");
    free(out);
    SPLIT_OK(mixed, &lmtp);
}
END_TEST

/* RFC 3030 with RFC 2033 §4.2: one reply per chunk, then one per accepted recipient after
 * BDAT LAST; the client pipelines QUIT behind the last chunk. */
static const struct mx_turn bdat[] = {
    { S, "220 mx LMTP\r\n", 0 },
    { C, "LHLO c\r\n", 0 },
    { S, "250-mx\r\n250 CHUNKING\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\n", 0 },
    { S, "250 OK\r\n250 OK\r\n250 OK\r\n", 0 },
    { C, "BDAT 6\r\nhello\n", 0 },
    { S, "250 2.0.0 Added 6 octets\r\n", 0 },
    { C, "BDAT 3 LAST\r\nyo\nQUIT\r\n", 0 },
    { S, "451 4.3.0 <b@x> Temporary failure\r\n250 2.0.0 <c@x> Saved\r\n221 Bye\r\n", 0 },
};

START_TEST(bdat_last_per_recipient)
{
    char *out = run(bdat, N(bdat), &lmtp);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "lmtp.reply", 5, "answers.command", "BDAT");
    expect(out, "lmtp.reply", 5, "answers.recipient", "(absent)");
    expect(out, "lmtp.reply", 6, "answers.recipient", "b@x");
    expect(out, "lmtp.reply", 7, "answers.recipient", "c@x");
    expect(out, "lmtp.reply", 8, "answers.command", "QUIT");
    json_object *t = mx_harness_record(out, "lmtp.transaction", 0);
    ck_assert_str_eq(get(t, "bdat_chunks"), "2");
    ck_assert_str_eq(get(t, "message.size"), "9");
    ck_assert_str_eq(get(t, "recipients.0.delivery.outcome"), "deferred");
    ck_assert_str_eq(get(t, "recipients.1.delivery.outcome"), "accepted");
    ck_assert_str_eq(get(t, "disposition"), "mixed");
    ck_assert_str_eq(get(t, "failure.step"), "BDAT");
    json_object_put(t);
    free(out);
    SPLIT_OK(bdat, &lmtp);
}
END_TEST

/* The session ends after the first of two replies after the data: the second recipient's
 * delivery is unknown (LMTP_REPLY_MISSING). */
static const struct mx_turn missing[] = {
    { S, "220 mx LMTP\r\n", 0 },
    { C, "LHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n", 0 },
    { S, "250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n", 0 },
    { C, "hi\r\n.\r\n", 0 },
    { S, "250 2.0.0 <b@x> Saved\r\n", 0 },
};

START_TEST(reply_missing_at_end)
{
    char *out = run(missing, N(missing), &lmtp);
    expect(out, "anomaly", 0, "name", "LMTP_REPLY_MISSING");
    json_object *t = mx_harness_record(out, "lmtp.transaction", 0);
    ck_assert_str_eq(get(t, "recipients.0.delivery.outcome"), "accepted");
    ck_assert_str_eq(get(t, "recipients.1.delivery.outcome"), "no_reply");
    ck_assert_str_eq(get(t, "disposition"), "mixed");
    ck_assert_ptr_nonnull(strstr(get(t, "failure.cause"), "RFC 2033"));
    json_object_put(t);
    free(out);
    SPLIT_OK(missing, &lmtp);
}
END_TEST

/* On SMTP's port (as nDPI would call it), a client that greets with LHLO is read by LMTP's
 * rules under the flow's SMTP records; EHLO in an LMTP session is out of place. */
static const struct mx_turn lhlo_on_25[] = {
    { S, "220 mx LMTP\r\n", 0 },
    { C, "LHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n", 0 },
    { S, "250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n", 0 },
    { C, "hi\r\n.\r\n", 0 },
    { S, "250 2.0.0 <b@x> Saved\r\n250 2.0.0 <c@x> Saved\r\n", 0 },
};

START_TEST(lhlo_on_smtp_port)
{
    char *out = run(lhlo_on_25, N(lhlo_on_25), NULL);
    expect(out, "flow_start", 0, "proto", "smtp");
    ck_assert_int_eq(mx_harness_count(out, "lmtp.reply"), 0);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 1);
    expect(out, "anomaly", 0, "name", "HELO_IN_LMTP");
    expect(out, "smtp.reply", 8, "answers.recipient", "c@x");
    expect(out, "smtp.transaction", 0, "disposition", "accepted");
    expect(out, "smtp.transaction", 0, "recipients.1.delivery.outcome", "accepted");
    expect(out, "smtp.session", 0, "lmtp", "true");
    free(out);
    SPLIT_OK(lhlo_on_25, NULL);
}
END_TEST

static Suite *lmtp_suite(void)
{
    Suite *s = suite_create("lmtp");
    TCase *t = tcase_create("dialogues");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, per_recipient_replies);
    tcase_add_test(t, bdat_last_per_recipient);
    tcase_add_test(t, reply_missing_at_end);
    tcase_add_test(t, lhlo_on_smtp_port);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(lmtp_suite)
