/* test_smtp.c - the SMTP dissector on crafted dialogues, each also split at every byte. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/check_dialogue.h"
#include "check_main.h"

#define RUN(t) mx_harness_run(t, sizeof(t) / sizeof(t[0]), NULL, SIZE_MAX, false)

/* A delivery with a rejected recipient, a multi-line EHLO and dot-stuffing. */
static const struct mx_turn delivery[] = {
    { S, "220 mx.example ESMTP Postfix\r\n", 0 },
    { C, "EHLO client.example\r\n", 0 },
    { S,
      "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n",
      0 },
    { C, "MAIL FROM:<alice@example.org> SIZE=120\r\n", 0 },
    { S, "250 2.1.0 Ok\r\n", 0 },
    { C, "RCPT TO:<bob@example.net>\r\n", 0 },
    { S, "250 2.1.5 Ok\r\n", 0 },
    { C, "RCPT TO:<nobody@example.net>\r\n", 0 },
    { S, "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown\r\n", 0 },
    { C, "DATA\r\n", 0 },
    { S, "354 End data with <CR><LF>.<CR><LF>\r\n", 0 },
    { C, "Subject: hi\r\n\r\n..leading dot\r\n.\r\n", 0 },
    { S, "250 2.0.0 Ok: queued as 4ABC123\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 2.0.0 Bye\r\n", 0 },
};

START_TEST(delivery_records)
{
    char *out = RUN(delivery);
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 6);
    ck_assert_int_eq(mx_harness_count(out, "smtp.reply"), 8);
    json_object *r = mx_harness_record(out, "smtp.reply", 4); /* the 550 */
    ck_assert_str_eq(get(r, "code"), "550");
    ck_assert_str_eq(get(r, "enhanced"), "5.1.1");
    ck_assert_str_eq(get(r, "answers.command"), "RCPT");
    ck_assert_str_eq(get(r, "text"), "<nobody@example.net>: Recipient address rejected: User unknown");
    json_object_put(r);
    r = mx_harness_record(out, "smtp.reply", 0);
    ck_assert_str_eq(get(r, "answers.command"), "(connect)");
    json_object_put(r);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(get(t, "mailfrom"), "alice@example.org");
    ck_assert_str_eq(get(t, "mail_params"), "SIZE=120");
    ck_assert_str_eq(get(t, "helo"), "client.example");
    ck_assert_str_eq(get(t, "rcptto.1"), "nobody@example.net");
    ck_assert_str_eq(get(t, "recipients.0.outcome"), "accepted");
    ck_assert_str_eq(get(t, "recipients.1.outcome"), "rejected");
    ck_assert_str_eq(get(t, "recipients.1.enhanced"), "5.1.1");
    ck_assert_str_eq(get(t, "disposition"), "accepted");
    ck_assert_str_eq(get(t, "queue_id"), "4ABC123");
    /* "Subject: hi\r\n\r\n.leading dot\r\n": the stuffed dot is gone (RFC 5321 §4.5.2). */
    ck_assert_str_eq(get(t, "message.size"), "29");
    ck_assert_str_eq(get(t, "message.partial"), "false");
    json_object_put(t);
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "greeting.code"), "220");
    ck_assert_str_eq(get(s, "capabilities.0"), "PIPELINING");
    ck_assert_str_eq(get(s, "size_limit"), "10240000");
    ck_assert_str_eq(get(s, "starttls.offered"), "true");
    ck_assert_str_eq(get(s, "starttls.attempted"), "false");
    ck_assert_str_eq(get(s, "transactions"), "1");
    json_object_put(s);
    free(out);
    SPLIT_OK(delivery, NULL);
}
END_TEST

/* RFC 2920: a pipelined group, replies in one segment. */
static const struct mx_turn pipelined[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250-mx\r\n250 PIPELINING\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n", 0 },
    { S, "250 2.1.0 Ok\r\n450 4.2.0 <b@y>: Recipient address rejected: Greylisted\r\n250 2.1.5 Ok\r\n354 go\r\n", 0 },
    { C, "hello\r\n.\r\nQUIT\r\n", 0 },
    { S, "250 2.0.0 Ok: queued as Q1\r\n221 bye\r\n", 0 },
};

START_TEST(pipelining_links_replies_in_order)
{
    char *out = RUN(pipelined);
    json_object *r = mx_harness_record(out, "smtp.reply", 3);
    ck_assert_str_eq(get(r, "code"), "450");
    ck_assert_str_eq(get(r, "answers.command"), "RCPT");
    json_object_put(r);
    r = mx_harness_record(out, "smtp.reply", 5);
    ck_assert_str_eq(get(r, "answers.command"), "DATA");
    json_object_put(r);
    json_object *c = mx_harness_record(out, "smtp.command", 2); /* the first RCPT */
    ck_assert_str_eq(get(c, "pipelined"), "true");
    json_object_put(c);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "recipients.0.outcome"), "deferred");
    ck_assert_str_eq(get(t, "recipients.1.outcome"), "accepted");
    ck_assert_str_eq(get(t, "disposition"), "accepted");
    json_object_put(t);
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "pipelined_commands"), "4");
    json_object_put(s);
    free(out);
    SPLIT_OK(pipelined, NULL);
}
END_TEST

/* RFC 3030: chunk bytes are data, never commands; BDAT 0 LAST ends. */
static const struct mx_turn bdat[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250-mx\r\n250 CHUNKING\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n", 0 },
    { S, "250 Ok\r\n250 Ok\r\n", 0 },
    { C, "BDAT 12\r\nQUIT\r\nRSET\r\n", 0 },
    { S, "250 2.0.0 12 octets received\r\n", 0 },
    { C, "BDAT 5\r\n.\r\n\r\n", 0 },
    { S, "250 2.0.0 5 octets received\r\n", 0 },
    { C, "BDAT 0 LAST\r\n", 0 },
    { S, "250 2.0.0 Ok: 17 bytes queued as B7\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};

START_TEST(bdat_chunks)
{
    char *out = RUN(bdat);
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 7); /* EHLO MAIL RCPT BDAT BDAT BDAT QUIT */
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "message.size"), "17");
    ck_assert_str_eq(get(t, "bdat_chunks"), "3");
    ck_assert_str_eq(get(t, "disposition"), "accepted");
    ck_assert_str_eq(get(t, "queue_id"), "B7");
    json_object_put(t);
    free(out);
    SPLIT_OK(bdat, NULL);
}
END_TEST

/* RFC 4954 with RFC 4616 PLAIN: the password is never written by default. */
static const struct mx_turn auth_plain[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250-mx\r\n250 AUTH PLAIN LOGIN\r\n", 0 },
    { C, "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", 0 }, /* \0tim\0tanstaaftanstaaf */
    { S, "235 2.7.0 Authentication successful\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};

START_TEST(auth_plain_redacted)
{
    char *out = RUN(auth_plain);
    ck_assert_ptr_null(strstr(out, "tanstaaf"));
    ck_assert_ptr_null(strstr(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
    json_object *a = mx_harness_record(out, "smtp.auth", 0);
    ck_assert_str_eq(get(a, "mechanism"), "PLAIN");
    ck_assert_str_eq(get(a, "user"), "tim");
    ck_assert_str_eq(get(a, "outcome"), "success");
    ck_assert_str_eq(get(a, "secret_in_clear"), "true");
    ck_assert_str_eq(get(a, "secret_len"), "16");
    json_object_put(a);
    free(out);
    struct mx_harness_opts o = { .show_secrets = true };
    out = mx_harness_run(auth_plain, sizeof(auth_plain) / sizeof(auth_plain[0]), &o, SIZE_MAX, false);
    a = mx_harness_record(out, "smtp.auth", 0);
    ck_assert_str_eq(get(a, "secret"), "tanstaaftanstaaf");
    json_object_put(a);
    free(out);
    SPLIT_OK(auth_plain, NULL);
}
END_TEST

static const struct mx_turn auth_login_failed[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },
    { C, "AUTH LOGIN\r\n", 0 },
    { S, "334 VXNlcm5hbWU6\r\n", 0 },
    { C, "Ym9i\r\n", 0 }, /* bob */
    { S, "334 UGFzc3dvcmQ6\r\n", 0 },
    { C, "c2VjcmV0\r\n", 0 }, /* secret */
    { S, "535 5.7.8 Error: authentication failed\r\n", 0 },
    { C, "AUTH LOGIN\r\n", 0 },
    { S, "334 VXNlcm5hbWU6\r\n", 0 },
    { C, "*\r\n", 0 },
    { S, "501 5.7.0 Authentication aborted\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};

START_TEST(auth_login_failure_and_cancel)
{
    char *out = RUN(auth_login_failed);
    ck_assert_ptr_null(strstr(out, "c2VjcmV0"));
    json_object *a = mx_harness_record(out, "smtp.auth", 0);
    ck_assert_str_eq(get(a, "user"), "bob");
    ck_assert_str_eq(get(a, "outcome"), "failure");
    ck_assert_str_eq(get(a, "code"), "535");
    ck_assert_str_eq(get(a, "enhanced"), "5.7.8");
    json_object_put(a);
    a = mx_harness_record(out, "smtp.auth", 1);
    ck_assert_str_eq(get(a, "outcome"), "cancelled");
    json_object_put(a);
    /* The SASL lines are not commands. */
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 4);
    ck_assert_int_eq(mx_harness_count(out, "smtp.auth_data"), 3);
    free(out);
    SPLIT_OK(auth_login_failed, NULL);
}
END_TEST

static const struct mx_turn starttls[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250-mx\r\n250 STARTTLS\r\n", 0 },
    { C, "STARTTLS\r\n", 0 },
    { S, "220 2.0.0 Ready to start TLS\r\n", 0 },
    { C, "\x16\x03\x01\x00\x05hello", 10 },
    { S, "\x16\x03\x03\x00\x02hi", 7 },
    { C, "\x17\x03\x03\x00\x04QUIT", 9 },
};

START_TEST(starttls_goes_dark)
{
    char *out = RUN(starttls);
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 2);
    /* No injection: the bytes after the 220 are TLS records (fake ones, which the TLS observer flags). */
    ck_assert_ptr_null(strstr(out, "INJECTION"));
    json_object *t = mx_harness_record(out, "tls", 0);
    ck_assert_str_eq(get(t, "how"), "starttls");
    json_object_put(t);
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "starttls.upgraded"), "true");
    ck_assert_str_eq(get(s, "tls_bytes.c2s"), "19");
    ck_assert_str_eq(get(s, "tls_bytes.s2c"), "7");
    json_object_put(s);
    free(out);
    SPLIT_OK(starttls, NULL);
}
END_TEST

/* CVE-2011-0411: commands pipelined behind STARTTLS; and a server that
 * keeps talking in clear after its 220. */
static const struct mx_turn starttls_injection[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250 STARTTLS\r\n", 0 },
    { C, "STARTTLS\r\nRSET\r\n", 0 },
    { S, "220 Ready\r\n250 injected\r\n", 0 },
};

START_TEST(starttls_injection_both_ways)
{
    char *out = RUN(starttls_injection);
    json_object *a = mx_harness_record(out, "anomaly", 0);
    ck_assert_str_eq(get(a, "name"), "STARTTLS_CLIENT_INJECTION");
    json_object_put(a);
    a = mx_harness_record(out, "anomaly", 1);
    ck_assert_str_eq(get(a, "name"), "STARTTLS_SERVER_INJECTION");
    json_object_put(a);
    json_object *c = mx_harness_record(out, "smtp.command", 2);
    ck_assert_str_eq(get(c, "verb"), "RSET");
    ck_assert_str_eq(get(c, "injected"), "true");
    json_object_put(c);
    free(out);
    SPLIT_OK(starttls_injection, NULL);
}
END_TEST

static const struct mx_turn starttls_refused[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "STARTTLS\r\n", 0 },
    { S, "454 4.7.0 TLS not available due to local problem\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\n", 0 },
    { S, "250 ok\r\n", 0 },
};

START_TEST(starttls_refused_stays_clear)
{
    char *out = RUN(starttls_refused);
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "starttls.code"), "454");
    ck_assert_str_eq(get(s, "starttls.upgraded"), "false");
    json_object_put(s);
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 2);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "disposition"), "aborted");
    json_object_put(t);
    free(out);
    SPLIT_OK(starttls_refused, NULL);
}
END_TEST

static const struct mx_turn rset_and_disconnect[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "HELO c\r\nMAIL FROM:<a@x>\r\n", 0 },
    { S, "250 mx\r\n250 ok\r\n", 0 },
    { C, "RCPT TO:<b@y>\r\n", 0 },
    { S, "250 ok\r\n", 0 },
    { C, "RSET\r\n", 0 },
    { S, "250 ok\r\n", 0 },
    { C, "MAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\nDATA\r\n", 0 },
    { S, "250 ok\r\n250 ok\r\n354 go\r\n", 0 },
    { C, "Subject: cut\r\n\r\nhalf a mess", 0 },
};

START_TEST(reset_then_disconnect_in_data)
{
    char *out = RUN(rset_and_disconnect);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "disposition"), "reset");
    json_object_put(t);
    t = mx_harness_record(out, "smtp.transaction", 1);
    ck_assert_str_eq(get(t, "disposition"), "aborted");
    ck_assert_str_eq(get(t, "trans_depth"), "2");
    ck_assert_str_eq(get(t, "partial"), "true");
    json_object_put(t);
    json_object *a = mx_harness_record(out, "anomaly", 0);
    ck_assert_str_eq(get(a, "name"), "DATA_INCOMPLETE");
    json_object_put(a);
    free(out);
    SPLIT_OK(rset_and_disconnect, NULL);
}
END_TEST

static const struct mx_turn oddities[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "XYZZY plugh\r\n", 0 },
    { S, "502 5.5.2 Error: command not recognized\r\n", 0 },
    { C, "NOOP\n", 0 },
    { S, "250 ok\r\n251 nothing asked\r\nthis is no reply\r\n", 0 },
    { C, "VRFY root\r\nEXPN staff\r\n", 0 },
    { S, "252 2.0.0 root\r\n502 5.5.1 EXPN not available\r\n", 0 },
};

START_TEST(anomalies_named)
{
    char *out = RUN(oddities);
    const char *want[] = { "UNKNOWN_COMMAND", "BARE_LF", "UNMATCHED_REPLY", "INVALID_REPLY_LINE" };
    for (int i = 0; i < 4; i++) {
        json_object *a = mx_harness_record(out, "anomaly", i);
        ck_assert_msg(a != NULL, "anomaly %d missing", i);
        ck_assert_str_eq(get(a, "name"), want[i]);
        json_object_put(a);
    }
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "vrfy"), "1");
    ck_assert_str_eq(get(s, "expn"), "1");
    ck_assert_str_eq(get(s, "unknown_commands"), "1");
    json_object_put(s);
    free(out);
    SPLIT_OK(oddities, NULL);
}
END_TEST

START_TEST(long_line_capped)
{
    static char big[20000];
    memset(big, 'A', sizeof(big) - 3);
    memcpy(big + sizeof(big) - 3, "\r\n", 3);
    const struct mx_turn t[] = {
        { S, "220 mx ESMTP\r\n", 0 },
        { C, big, 0 },
        { C, "QUIT\r\n", 0 },
        { S, "221 bye\r\n", 0 },
    };
    char *out = mx_harness_run(t, 4, NULL, SIZE_MAX, false);
    json_object *a = mx_harness_record(out, "anomaly", 0);
    ck_assert_str_eq(get(a, "name"), "LONG_COMMAND_LINE");
    json_object_put(a);
    json_object *c = mx_harness_record(out, "smtp.command", 0);
    ck_assert_str_eq(get(c, "verb"), "QUIT"); /* resynchronised at the next line */
    json_object_put(c);
    free(out);
}
END_TEST

START_TEST(midstream_no_unmatched_noise)
{
    const struct mx_turn t[] = {
        { S, "250 2.1.5 Ok\r\n", 0 }, /* the reply to a command before the capture */
        { C, "DATA\r\n", 0 },         { S, "354 go\r\n", 0 }, { C, "x\r\n.\r\n", 0 }, { S, "250 queued\r\n", 0 },
    };
    struct mx_harness_opts o = { .no_handshake = true };
    char *out = mx_harness_run(t, 5, &o, SIZE_MAX, false);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    ck_assert_int_eq(mx_harness_count(out, "smtp.data"), 1);
    free(out);
}
END_TEST

/* Picked up inside message data: its lines are not commands. */
static const struct mx_turn midstream_body[] = {
    { C, "line two of a body\r\nHelp is not a command here? it is: a verb\r\n", 0 },
    { C, "more body\r\n.\r\n", 0 },
    { S, "250 2.0.0 Ok: queued as MID1\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};

START_TEST(midstream_inside_data)
{
    struct mx_harness_opts o = { .no_handshake = true };
    char *out = mx_harness_run(midstream_body, 5, &o, SIZE_MAX, false);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "queue_id"), "MID1");
    ck_assert_str_eq(get(t, "partial"), "true");
    ck_assert_str_eq(get(t, "message.partial"), "true");
    json_object_put(t);
    free(out);
    SPLIT_OK(midstream_body, &o);
}
END_TEST

/* The client sends its message and QUIT without waiting for replies the
 * capture never shows, then ends first: the held bytes are still read. */
static const struct mx_turn held_then_client_ends[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", 0 },
    { S, "250 ok\r\n250 ok\r\n", 0 },
};

START_TEST(held_data_read_at_end)
{
    char *out = RUN(held_then_client_ends);
    ck_assert_int_eq(mx_harness_count(out, "smtp.data"), 1);
    json_object *c = mx_harness_record(out, "smtp.command", 3);
    ck_assert_str_eq(get(c, "verb"), "QUIT");
    json_object_put(c);
    free(out);
}
END_TEST

/* AUTH LOGIN whose 334 prompts were not captured: the base64 lines are still
 * SASL data, and the password is not written. */
static const struct mx_turn auth_without_prompts[] = {
    { S, "220 mx ESMTP\r\n", 0 }, { C, "AUTH LOGIN\r\n", 0 },   { C, "Ym9i\r\n", 0 },
    { C, "c2VjcmV0\r\n", 0 },     { S, "235 2.7.0 ok\r\n", 0 },
};

START_TEST(auth_lines_without_prompts_stay_secret)
{
    char *out = RUN(auth_without_prompts);
    ck_assert_ptr_null(strstr(out, "c2VjcmV0"));
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 1);
    free(out);
}
END_TEST

/* Issue 24: AUTH split as the servers that accept it split it (postfix's
 * smtpd_token: any ISSPACE run; NUL, where a C server stops), in any case,
 * with leading and trailing whitespace: a login, and its secret redacted.
 * "AHRpbQB0YW5zdGFhZnRhbnN0YWFm" is PLAIN's "\0tim\0tanstaaftanstaaf". */
static const struct mx_turn auth_odd_spacing[] = {
    { S, "220 mx ESMTP\r\n", 0 },     { C, "EHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },           { C, " \taUtH\t\tPLAIN\v AHRpbQB0YW5zdGFhZnRhbnN0YWFm \t\r\n", 0 },
    { S, "235 2.7.0 ok\r\n", 0 },     { C, "AUTH\0PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", 41 },
    { S, "235 2.7.0 ok\r\n", 0 },     { C, "auth\fLOGIN\r\n", 0 },
    { S, "334 VXNlcm5hbWU6\r\n", 0 }, { C, "Ym9i \r\n", 0 },      /* bob */
    { S, "334 UGFzc3dvcmQ6\r\n", 0 }, { C, "\tc2VjcmV0\r\n", 0 }, /* secret */
    { S, "235 2.7.0 ok\r\n", 0 },     { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};

START_TEST(auth_split_as_servers_split)
{
    char *out = run(auth_odd_spacing, N(auth_odd_spacing), NULL);
    /* The three odd AUTH commands are named; the SASL lines are no commands. */
    for (int i = 0; i < 3; i++)
        expect(out, "anomaly", i, "name", "COMMAND_SPACING");
    ck_assert_ptr_null(mx_harness_record(out, "anomaly", 3));
    ck_assert_ptr_null(strstr(out, "tanstaaf"));
    ck_assert_ptr_null(strstr(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
    ck_assert_ptr_null(strstr(out, "c2VjcmV0"));
    for (int i = 0; i < 2; i++) {
        expect(out, "smtp.command", i + 1, "verb", "AUTH");
        expect(out, "smtp.command", i + 1, "arg", "PLAIN <redacted 28 bytes>");
        expect(out, "smtp.auth", i, "mechanism", "PLAIN");
        expect(out, "smtp.auth", i, "user", "tim");
        expect(out, "smtp.auth", i, "outcome", "success");
        expect(out, "smtp.auth", i, "secret_in_clear", "true");
    }
    expect(out, "smtp.auth", 2, "mechanism", "LOGIN");
    expect(out, "smtp.auth", 2, "user", "bob");
    expect(out, "smtp.auth", 2, "secret_in_clear", "true");
    expect(out, "smtp.auth_data", 1, "redacted_len", "8");
    expect(out, "smtp.session", 0, "unknown_commands", "0");
    free(out);
    SPLIT_OK(auth_odd_spacing, NULL);
}
END_TEST

/* Issue 24: after a failed AUTH, base64 the client still sends is shown by
 * its length only, until a command SMTP defines; --show-secrets shows it. */
static const struct mx_turn auth_failed_then_base64[] = {
    { S, "220 mx ESMTP\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },
    { C, "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", 0 },
    { S, "535 5.7.8 no\r\n", 0 },
    { C, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", 0 },
    { S, "500 5.5.2 Error: command not recognized\r\n", 0 },
    { C, "NOOP\r\n", 0 },
    { S, "250 ok\r\n", 0 },
    { C, "XYZZY\r\n", 0 },
    { S, "500 5.5.2 Error: command not recognized\r\n", 0 },
};

START_TEST(base64_after_failed_auth_redacted)
{
    char *out = run(auth_failed_then_base64, N(auth_failed_then_base64), NULL);
    ck_assert_ptr_null(strstr(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
    expect(out, "smtp.auth", 0, "outcome", "failure");
    expect(out, "smtp.command", 2, "verb", "(redacted)");
    expect(out, "smtp.command", 2, "redacted_len", "28");
    expect(out, "smtp.command", 3, "verb", "NOOP");
    expect(out, "smtp.command", 4, "verb", "XYZZY"); /* NOOP ended the doubt */
    expect(out, "smtp.session", 0, "unknown_commands", "2");
    free(out);
    struct mx_harness_opts o = { .show_secrets = true };
    out = run(auth_failed_then_base64, N(auth_failed_then_base64), &o);
    expect(out, "smtp.command", 2, "verb", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    free(out);
    SPLIT_OK(auth_failed_then_base64, NULL);
}
END_TEST

/* A reply cut short where the stream ends counts as it was. */
START_TEST(reply_cut_at_end)
{
    const struct mx_turn t[] = {
        { S, "220 mx ESMTP\r\n", 0 },
        { C, "NOOP\r\n", 0 },
        { S, "250 2.0.0 O", 0 },
    };
    char *out = mx_harness_run(t, 3, NULL, SIZE_MAX, false);
    json_object *r = mx_harness_record(out, "smtp.reply", 1);
    ck_assert_str_eq(get(r, "code"), "250");
    ck_assert_str_eq(get(r, "answers.command"), "NOOP");
    json_object_put(r);
    free(out);
}
END_TEST

/* Issue 9: the meaning of the codes and the likely cause of each failure. */
static const struct mx_turn diag[] = {
    { S, "220 mx.example.org ESMTP\r\n", 0 },
    { C, "EHLO c.example\r\n", 0 },
    { S, "250-mx.example.org\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n", 0 },
    { C, "MAIL FROM:<a@example.org>\r\n", 0 },
    { S, "250 2.1.0 Ok\r\n", 0 },
    { C, "RCPT TO:<nobody@example.org>\r\n", 0 },
    { S, "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown\r\n", 0 },
    { C, "RCPT TO:<x@elsewhere.net>\r\n", 0 },
    { S, "554 5.7.1 <x@elsewhere.net>: Relay access denied\r\n", 0 },
    { C, "RCPT TO:<new@example.org>\r\n", 0 },
    { S, "450 4.2.0 <new@example.org>: Recipient address rejected: Greylisted, see http://postgrey\r\n", 0 },
    { C, "RCPT TO:<b@example.org>\r\n", 0 },
    { S, "250 2.1.5 Ok\r\n", 0 },
    { C, "DATA\r\n", 0 },
    { S, "354 go\r\n", 0 },
    { C,
      "Subject: big\r\n\r\n"
      "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
      "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n"
      ".\r\n",
      0 },
    { S, "552 5.3.4 Error: message file too big\r\n", 0 },
    { C, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n", 0 },
    { S, "535 5.7.8 Error: authentication failed\r\n", 0 },
    { C, "MAIL FROM:<a@example.org>\r\n", 0 },
    { S, "250 2.1.0 Ok\r\n", 0 },
    { C, "RCPT TO:<b@example.org>\r\n", 0 },
    { S, "250 2.1.5 Ok\r\n", 0 },
};

START_TEST(diagnosis_of_failures)
{
    char *out = RUN(diag);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "recipients.0.meaning"), "Requested action not taken: mailbox unavailable (e.g., mailbox "
                                                     "not found, no access, or command rejected for policy reasons)");
    ck_assert_str_eq(get(t, "recipients.0.enhanced_meaning"),
                     "Bad destination mailbox address (Addressing Status; Permanent Failure)");
    ck_assert_ptr_nonnull(strstr(get(t, "recipients.0.cause"), "does not exist"));
    ck_assert_ptr_nonnull(strstr(get(t, "recipients.1.cause"), "Relaying denied"));
    ck_assert_ptr_nonnull(strstr(get(t, "recipients.2.cause"), "Greylisting"));
    ck_assert_str_eq(get(t, "recipients.3.cause"), "(absent)");
    ck_assert_str_eq(get(t, "disposition"), "rejected");
    ck_assert_str_eq(get(t, "failure.step"), "(end of data)");
    ck_assert_str_eq(get(t, "failure.code"), "552");
    /* Both numbers that show it: the message's size and the SIZE the server advertised (RFC 1870). */
    ck_assert_ptr_nonnull(strstr(get(t, "failure.cause"), "message 220 bytes, the server's SIZE limit 1000 bytes"));
    json_object_put(t);
    json_object *a = mx_harness_record(out, "smtp.auth", 0);
    ck_assert_ptr_nonnull(strstr(get(a, "cause"), "Bad credentials"));
    json_object_put(a);
    /* The second transaction never got its data: the connection closed (FIN) first. */
    t = mx_harness_record(out, "smtp.transaction", 1);
    ck_assert_str_eq(get(t, "disposition"), "aborted");
    ck_assert_ptr_nonnull(strstr(get(t, "failure.cause"), "closed (FIN)"));
    json_object_put(t);
    free(out);
}
END_TEST

/* --explain: each command and reply says what it means, with the SMTP state. */
/* Issue 26: a client that sends its whole transaction before the greeting is
 * read as it would be after it: one transaction with its sender, the message
 * held until the 354, replies in order; CLIENT_SPOKE_FIRST names its frame. */
static const struct mx_turn early_talker[] = {
    { C,
      "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
      "Subject: early\r\n\r\nbody\r\n.\r\nQUIT\r\n",
      0 },
    { S,
      "220 mx ESMTP\r\n250 mx\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n250 2.0.0 Ok: queued as Q1\r\n221 Bye\r\n",
      0 },
};

START_TEST(early_talker_read_in_turn)
{
    char *out = RUN(early_talker);
    ck_assert_int_eq(mx_harness_count(out, "smtp.transaction"), 1);
    json_object *t = mx_harness_record(out, "smtp.transaction", 0);
    ck_assert_str_eq(get(t, "mailfrom"), "a@example.org");
    ck_assert_str_eq(get(t, "disposition"), "accepted");
    ck_assert_str_eq(get(t, "queue_id"), "Q1");
    ck_assert_str_eq(get(t, "message.size"), "24");
    json_object_put(t);
    json_object *r = mx_harness_record(out, "smtp.reply", 0);
    ck_assert_str_eq(get(r, "answers.command"), "(connect)");
    json_object_put(r);
    r = mx_harness_record(out, "smtp.reply", 6);
    ck_assert_str_eq(get(r, "answers.command"), "QUIT");
    json_object_put(r);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 1);
    json_object *a = mx_harness_record(out, "anomaly", 0);
    ck_assert_str_eq(get(a, "name"), "CLIENT_SPOKE_FIRST");
    ck_assert_str_eq(get(a, "dir"), "c2s");
    json_object_put(a);
    free(out);
    SPLIT_OK(early_talker, NULL);
}
END_TEST

/* Issue 26: the terminator seen, CR and LF split anywhere. */
static const struct mx_turn lf_terminators[] = {
    { S, "220 mx\r\n", 0 }, { C, "MAIL FROM:<a@x>\r\n", 0 },
    { S, "250 ok\r\n", 0 }, { C, "RCPT TO:<b@y>\r\n", 0 },
    { S, "250 ok\r\n", 0 }, { C, "DATA\r\n", 0 },
    { S, "354 go\r\n", 0 }, { C, "a\r\nb\r\n.\n", 0 },
    { S, "250 ok\r\n", 0 }, { C, "MAIL FROM:<a@x>\r\n", 0 },
    { S, "250 ok\r\n", 0 }, { C, "RCPT TO:<b@y>\r\n", 0 },
    { S, "250 ok\r\n", 0 }, { C, "DATA\r\n", 0 },
    { S, "354 go\r\n", 0 }, { C, "a\r\nb\n.\r\n", 0 },
    { S, "250 ok\r\n", 0 },
};

START_TEST(terminator_recorded)
{
    char *out = RUN(lf_terminators);
    json_object *d = mx_harness_record(out, "smtp.data", 0);
    ck_assert_str_eq(get(d, "terminator"), "crlf_dot_lf");
    json_object_put(d);
    d = mx_harness_record(out, "smtp.data", 1);
    ck_assert_str_eq(get(d, "terminator"), "lf_dot_crlf");
    json_object_put(d);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 2);
    for (int i = 0; i < 2; i++) {
        json_object *a = mx_harness_record(out, "anomaly", i);
        ck_assert_str_eq(get(a, "name"), "DATA_BARE_LF_TERMINATOR");
        json_object_put(a);
    }
    free(out);
    SPLIT_OK(lf_terminators, NULL);
}
END_TEST

/* Issue 27: SMTP smuggling, a bare-LF terminator (which ends the data here)
 * and a bare-CR look-alike (which does not), each accepted (the server
 * answers the smuggled commands) and refused (one reply: it read data). */
#define SMUGGLE_HEAD                                                                                                \
    { S, "220 mx\r\n", 0 }, { C, "MAIL FROM:<a@x>\r\n", 0 }, { S, "250 ok\r\n", 0 }, { C, "RCPT TO:<b@y>\r\n", 0 }, \
        { S, "250 ok\r\n", 0 }, { C, "DATA\r\n", 0 },                                                               \
    {                                                                                                               \
        S, "354 go\r\n", 0                                                                                          \
    }
#define SMUGGLED "MAIL FROM:<ceo@y>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: evil\r\n\r\npay\r\n.\r\n"
static const struct mx_turn smuggle_lf_accepted[] = {
    SMUGGLE_HEAD,
    { C, "Subject: a\r\n\r\nhi\n.\n" SMUGGLED, 0 },
    { S, "250 ok 1\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok 2\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};
static const struct mx_turn smuggle_lf_refused[] = {
    SMUGGLE_HEAD,
    { C, "Subject: a\r\n\r\nhi\n.\r\n" SMUGGLED, 0 },
    { S, "250 ok 1\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};
static const struct mx_turn smuggle_cr_accepted[] = {
    SMUGGLE_HEAD,
    { C, "Subject: a\r\n\r\nhi\r.\r\n" SMUGGLED, 0 },
    { S, "250 ok 1\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok 2\r\n", 0 },
};
static const struct mx_turn smuggle_cr_refused[] = {
    SMUGGLE_HEAD,
    { C, "Subject: a\r\n\r\nhi\r\n.\r" SMUGGLED, 0 },
    { S, "250 ok 1\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 bye\r\n", 0 },
};
/* Not smuggling: a stuffed dot line, then text that reads like a command. */
static const struct mx_turn smuggle_none[] = {
    SMUGGLE_HEAD,
    { C, "Subject: a\r\n\r\nhi\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", 0 },
    { S, "250 ok 1\r\n", 0 },
};

static void check_smuggling(const char *out, const char *seq, const char *accepted)
{
    ck_assert_int_eq(mx_harness_count(out, "smtp.smuggling"), 1);
    json_object *r = mx_harness_record(out, "smtp.smuggling", 0);
    ck_assert_str_eq(get(r, "sequence"), seq);
    ck_assert_str_eq(get(r, "accepted"), accepted);
    json_object_put(r);
}

START_TEST(smuggling_outcomes)
{
    char *out = RUN(smuggle_lf_accepted);
    check_smuggling(out, "<LF>.<LF>", "true");
    free(out);
    SPLIT_OK(smuggle_lf_accepted, NULL);
    out = RUN(smuggle_lf_refused);
    check_smuggling(out, "<LF>.<CRLF>", "false");
    free(out);
    SPLIT_OK(smuggle_lf_refused, NULL);
    out = RUN(smuggle_cr_accepted);
    check_smuggling(out, "<CR>.<CRLF>", "true");
    free(out);
    SPLIT_OK(smuggle_cr_accepted, NULL);
    out = RUN(smuggle_cr_refused);
    check_smuggling(out, "<CRLF>.<CR>", "false");
    free(out);
    SPLIT_OK(smuggle_cr_refused, NULL);
    out = RUN(smuggle_none);
    ck_assert_int_eq(mx_harness_count(out, "smtp.smuggling"), 0);
    free(out);
}
END_TEST

/* Issue 26: RFC 5321 §3.8, a 421 at any time: unsolicited while idle, or
 * while commands wait (they get no reply). */
static const struct mx_turn closes_421[] = {
    { S, "220 mx\r\n", 0 },
    { C, "EHLO c\r\n", 0 },
    { S, "250 mx\r\n", 0 },
    { S, "421 4.4.2 mx Error: timeout exceeded\r\n", 0 },
};
static const struct mx_turn closes_421_pending[] = {
    { S, "220 mx\r\n", 0 },
    { C, "EHLO c\r\nFOO\r\nNOOP\r\nNOOP\r\n", 0 },
    { S, "250 mx\r\n502 5.5.2 what\r\n421 4.7.0 mx Error: too many errors\r\n", 0 },
};

START_TEST(reply_421_closes)
{
    char *out = RUN(closes_421);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    json_object *r = mx_harness_record(out, "smtp.reply", 2);
    ck_assert_str_eq(get(r, "closes_session"), "true");
    ck_assert_str_eq(get(r, "answers"), "(absent)");
    json_object_put(r);
    json_object *s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "server_closed.status"), "421");
    ck_assert_str_eq(get(s, "server_closed.code"), "4.4.2");
    ck_assert_str_eq(get(s, "server_closed.text"), "mx Error: timeout exceeded");
    json_object_put(s);
    free(out);
    SPLIT_OK(closes_421, NULL);
    out = RUN(closes_421_pending);
    r = mx_harness_record(out, "smtp.reply", 3);
    ck_assert_str_eq(get(r, "answers.command"), "NOOP");
    ck_assert_str_eq(get(r, "unanswered"), "1");
    json_object_put(r);
    s = mx_harness_record(out, "smtp.session", 0);
    ck_assert_str_eq(get(s, "server_closed.answers"), "NOOP");
    ck_assert_str_eq(get(s, "server_closed.unanswered"), "1");
    json_object_put(s);
    free(out);
    SPLIT_OK(closes_421_pending, NULL);
}
END_TEST

START_TEST(explain_and_state)
{
    struct mx_harness_opts o = { .explain = true };
    char *out = mx_harness_run(delivery, sizeof(delivery) / sizeof(delivery[0]), &o, SIZE_MAX, false);
    json_object *r = mx_harness_record(out, "smtp.reply", 0);
    ck_assert_str_eq(get(r, "state"), "greeted");
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "220: "));
    json_object_put(r);
    r = mx_harness_record(out, "smtp.command", 1); /* MAIL */
    ck_assert_str_eq(get(r, "state"), "greeted");
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "envelope sender"));
    json_object_put(r);
    static const char *const states[] = { "greeted", "greeted", "mail", "rcpt", "rcpt", "data", "done", "closed" };
    for (int i = 0; i < 8; i++) {
        r = mx_harness_record(out, "smtp.reply", i);
        ck_assert_msg(!strcmp(get(r, "state"), states[i]), "reply %d: state %s, want %s", i, get(r, "state"),
                      states[i]);
        json_object_put(r);
    }
    free(out);
    out = RUN(delivery); /* without --explain, none of it */
    ck_assert_ptr_null(strstr(out, "\"explain\""));
    free(out);
}
END_TEST

/* --explain under pipelining (RFC 2920 §3): each pipelined command shows the
 * state the server reads it in, after the commands before it; the EHLO
 * reply's extensions one per line; LOGIN's prompts decoded, never the
 * client's answers. */
START_TEST(explain_pipelining_caps_prompts)
{
    struct mx_harness_opts o = { .explain = true };
    char *out = run(pipelined, N(pipelined), &o);
    static const char *const states[] = { "greeted", "greeted", "mail", "rcpt", "rcpt", "done" };
    for (int i = 0; i < 6; i++)
        expect(out, "smtp.command", i, "state", states[i]);
    json_object *r = mx_harness_record(out, "smtp.command", 4); /* DATA */
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "Pipelined (RFC 2920)"));
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "waiting for the replies to the 3 commands before it"));
    json_object_put(r);
    expect(out, "smtp.reply", 1, "explain_lines.0",
           "PIPELINING: the client may send several commands in one write without waiting for each reply; the "
           "replies come back in order (RFC 2920)");
    free(out);
    out = run(auth_login_failed, N(auth_login_failed), &o);
    r = mx_harness_record(out, "smtp.reply", 2);
    ck_assert_ptr_nonnull(strstr(get(r, "explain_lines.0"), "base64-decoded: \"Username:\""));
    json_object_put(r);
    r = mx_harness_record(out, "smtp.reply", 3);
    ck_assert_ptr_nonnull(strstr(get(r, "explain_lines.0"), "base64-decoded: \"Password:\""));
    json_object_put(r);
    ck_assert_ptr_null(strstr(out, "\"secret\"")); /* the password, never decoded */
    ck_assert_ptr_null(strstr(out, "c2VjcmV0"));
    free(out);
}
END_TEST

static Suite *smtp_suite(void)
{
    Suite *s = suite_create("smtp");
    TCase *t = tcase_create("dialogues");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, delivery_records);
    tcase_add_test(t, pipelining_links_replies_in_order);
    tcase_add_test(t, bdat_chunks);
    tcase_add_test(t, auth_plain_redacted);
    tcase_add_test(t, auth_login_failure_and_cancel);
    tcase_add_test(t, starttls_goes_dark);
    tcase_add_test(t, starttls_injection_both_ways);
    tcase_add_test(t, starttls_refused_stays_clear);
    tcase_add_test(t, reset_then_disconnect_in_data);
    tcase_add_test(t, anomalies_named);
    tcase_add_test(t, long_line_capped);
    tcase_add_test(t, midstream_no_unmatched_noise);
    tcase_add_test(t, midstream_inside_data);
    tcase_add_test(t, held_data_read_at_end);
    tcase_add_test(t, auth_lines_without_prompts_stay_secret);
    tcase_add_test(t, auth_split_as_servers_split);
    tcase_add_test(t, base64_after_failed_auth_redacted);
    tcase_add_test(t, reply_cut_at_end);
    tcase_add_test(t, diagnosis_of_failures);
    tcase_add_test(t, explain_and_state);
    tcase_add_test(t, explain_pipelining_caps_prompts);
    tcase_add_test(t, early_talker_read_in_turn);
    tcase_add_test(t, terminator_recorded);
    tcase_add_test(t, reply_421_closes);
    tcase_add_test(t, smuggling_outcomes);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(smtp_suite)
