/* test_torture.c - fails each allocation in turn, as curl's torture tests do: mxray's output
 * is then the same as without the failure, or says that mxray failed (an error record, or exit
 * status 1). It is never silently short of a recipient, a command or a message.
 * malloc, calloc and realloc of mxray's own code are wrapped (-Wl,--wrap). */
#include "dialogue/harness.h"
#include "check_main.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

static uint64_t calls;   /* allocations so far */
static uint64_t fail_at; /* the one that fails (0: none) */

static bool fails(void)
{
    return ++calls == fail_at;
}

void *__wrap_malloc(size_t n)
{
    return fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return fails() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fails() ? NULL : __real_realloc(p, n);
}

#define C MX_DIR_C2S
#define S MX_DIR_S2C

/* Sessions that allocate: pipelined recipients, AUTH, a MIME message with an attachment. */
static const struct mx_turn smtp[] = {
    { S, "220 mx.example ESMTP\r\n", 0 },
    { C, "EHLO client.example\r\n", 0 },
    { S, "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250 AUTH PLAIN LOGIN\r\n", 0 },
    { C, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", 0 },
    { S, "235 2.7.0 Authentication successful\r\n", 0 },
    { C,
      "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
      "RCPT TO:<d@example.org>\r\nRCPT TO:<e@example.org>\r\nRCPT TO:<f@example.org>\r\nDATA\r\n",
      0 },
    { S,
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
      "354 End data with <CR><LF>.<CR><LF>\r\n",
      0 },
    { C,
      "From: a@example.org\r\nTo: b@example.org\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
      "--XX\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--XX--\r\n.\r\n",
      0 },
    { S, "250 2.0.0 Ok: queued as 1234\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "221 2.0.0 Bye\r\n", 0 },
};

static const struct mx_turn pop3[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "CAPA\r\n", 0 },
    { S, "+OK\r\nUSER\r\nUIDL\r\n.\r\n", 0 },
    { C, "USER alice\r\nPASS secret\r\nLIST\r\n", 0 },
    { S, "+OK\r\n+OK\r\n+OK\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n", 0 },
    { C, "RETR 1\r\n", 0 },
    { S, "+OK 100 octets\r\nSubject: x\r\n\r\nbody\r\n.\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK bye\r\n", 0 },
};

static const struct mx_turn imap[] = {
    { S, "* OK IMAP ready\r\n", 0 },
    { C, "a1 LOGIN alice secret\r\na2 SELECT INBOX\r\n", 0 },
    { S, "a1 OK done\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\na2 OK [READ-WRITE] done\r\n", 0 },
    { C, "a3 FETCH 1 BODY[]\r\n", 0 },
    { S, "* 1 FETCH (BODY[] {24}\r\nSubject: y\r\n\r\nhi there\r\n)\r\na3 OK done\r\n", 0 },
    { C, "a4 LOGOUT\r\n", 0 },
    { S, "* BYE\r\na4 OK bye\r\n", 0 },
};

/* A bounce (RFC 3464) fetched by POP3: the delivery-status reader's allocation. */
static const struct mx_turn bounce[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "USER carol\r\nPASS secret\r\nRETR 1\r\n", 0 },
    { S,
      "+OK\r\n+OK\r\n+OK\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n"
      "X-Postfix-Queue-ID: 1234\r\n\r\nFinal-Recipient: rfc822; x@example.org\r\nAction: failed\r\n"
      "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--b\r\n"
      "Content-Type: message/rfc822\r\n\r\nMessage-ID: <o.1@example.org>\r\n\r\nhi\r\n--b--\r\n.\r\n",
      0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK bye\r\n", 0 },
};

/* Runs the dialogue failing each allocation in turn (the first `limit`). */
static void torture(const struct mx_turn *t, size_t n, uint16_t port)
{
    struct mx_harness_opts o = { .server_port = port };
    int status;
    calls = 0;
    fail_at = 0;
    char *base = mx_harness_run_status(t, n, &o, SIZE_MAX, false, &status);
    ck_assert_int_eq(status, 0);
    uint64_t total = calls;
    ck_assert_uint_gt(total, 10);
    uint64_t same = 0, failed = 0;
    for (uint64_t k = 1; k <= total; k++) {
        calls = 0;
        fail_at = k;
        char *out = mx_harness_run_status(t, n, &o, SIZE_MAX, false, &status);
        fail_at = 0;
        bool identical = out && !strcmp(out, base);
        bool says_so = status == 1 || status == -1 || (out && strstr(out, "\"type\":\"error\""));
        ck_assert_msg(identical || says_so,
                      "port %u: allocation %llu of %llu failed, the output changed and nothing said so "
                      "(status %d)",
                      port, (unsigned long long)k, (unsigned long long)total, status);
        same += identical;
        failed += !identical;
        free(out);
    }
    ck_assert_uint_gt(failed, 0); /* the failures were felt */
    free(base);
}

START_TEST(smtp_each_allocation)
{
    torture(smtp, sizeof(smtp) / sizeof(smtp[0]), 25);
}
END_TEST

START_TEST(pop3_each_allocation)
{
    torture(pop3, sizeof(pop3) / sizeof(pop3[0]), 110);
}
END_TEST

START_TEST(bounce_each_allocation)
{
    struct mx_harness_opts o = { .server_port = 110 };
    char *out = mx_harness_run(bounce, sizeof(bounce) / sizeof(bounce[0]), &o, SIZE_MAX, false);
    ck_assert_ptr_nonnull(strstr(out, "\"delivery_status\""));
    ck_assert_ptr_nonnull(strstr(out, "\"original_message_id\":\"<o.1@example.org>\""));
    free(out);
    torture(bounce, sizeof(bounce) / sizeof(bounce[0]), 110);
}
END_TEST

START_TEST(imap_each_allocation)
{
    torture(imap, sizeof(imap) / sizeof(imap[0]), 143);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("torture");
    TCase *t = tcase_create("allocations");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, smtp_each_allocation);
    tcase_add_test(t, pop3_each_allocation);
    tcase_add_test(t, bounce_each_allocation);
    tcase_add_test(t, imap_each_allocation);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(suite)
