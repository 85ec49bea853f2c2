/* test_pop3.c - the POP3 dissector on crafted dialogues, each also split at every byte. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/check_dialogue.h"
#include "check_main.h"

static const struct mx_harness_opts pop_opts = { .server_port = 110 };
static const struct mx_harness_opts pop_secrets = { .server_port = 110, .show_secrets = true };
static const struct mx_harness_opts pop_midstream = { .server_port = 110, .no_handshake = true };

/* RFC 1939: a read-only session with listings and a dot-stuffed message. */
static const struct mx_turn session[] = {
    { S, "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n", 0 },
    { C, "CAPA\r\n", 0 },
    { S, "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n", 0 },
    { C, "USER alice\r\n", 0 },
    { S, "+OK\r\n", 0 },
    { C, "PASS s3cret\r\n", 0 },
    { S, "+OK Logged in.\r\n", 0 },
    { C, "STAT\r\n", 0 },
    { S, "+OK 2 320\r\n", 0 },
    { C, "LIST\r\n", 0 },
    { S, "+OK 2 messages:\r\n1 120\r\n2 200\r\n.\r\n", 0 },
    { C, "UIDL 2\r\n", 0 },
    { S, "+OK 2 QhdPYR:00WBw1Ph7x7\r\n", 0 },
    { C, "RETR 1\r\n", 0 },
    { S, "+OK 40 octets\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n", 0 },
    { C, "TOP 2 0\r\n", 0 },
    { S, "+OK\r\nSubject: two\r\n\r\n.\r\n", 0 },
    { C, "DELE 1\r\n", 0 },
    { S, "+OK message 1 deleted\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK dewey POP3 server signing off\r\n", 0 },
};

START_TEST(session_records)
{
    char *out = run(session, N(session), &pop_opts);
    ck_assert_int_eq(mx_harness_count(out, "pop3.command"), 10);
    ck_assert_int_eq(mx_harness_count(out, "pop3.response"), 11);
    expect(out, "pop3.response", 0, "answers.command", "(connect)");
    expect(out, "pop3.response", 1, "capabilities.7", "SASL PLAIN LOGIN");
    expect(out, "pop3.response", 1, "lines", "8");
    expect(out, "pop3.command", 2, "arg", "<redacted 6 bytes>");
    expect(out, "pop3.response", 4, "messages", "2");
    expect(out, "pop3.response", 4, "octets", "320");
    expect(out, "pop3.response", 5, "listing.1.msg", "2");
    expect(out, "pop3.response", 5, "listing.1.size", "200");
    expect(out, "pop3.response", 6, "listing.0.uid", "QhdPYR:00WBw1Ph7x7");
    /* "Subject: hi\r\n\r\n.dot\r\nbody\r\n": the stuffed dot is gone (RFC 1939 §3). */
    expect(out, "pop3.response", 7, "answers.command", "RETR");
    expect(out, "pop3.response", 7, "msg", "1");
    expect(out, "pop3.response", 7, "declared_size", "40");
    expect(out, "pop3.response", 7, "message.size", "27");
    expect(out, "pop3.response", 7, "message.subject", "hi");
    expect(out, "pop3.response", 8, "answers.command", "TOP");
    expect(out, "pop3.response", 8, "top_lines", "0");
    expect(out, "message", 0, "carried_by", "pop3.retr");
    expect(out, "message", 0, "dir", "s2c");
    expect(out, "message", 1, "carried_by", "pop3.top");
    expect(out, "pop3.auth", 0, "mechanism", "USER/PASS");
    expect(out, "pop3.auth", 0, "user", "alice");
    expect(out, "pop3.auth", 0, "outcome", "success");
    expect(out, "pop3.auth", 0, "cleartext", "true");
    expect(out, "pop3.auth", 0, "secret_in_clear", "true");
    expect(out, "pop3.auth", 0, "secret_len", "6");
    expect(out, "pop3.session", 0, "apop_timestamp", "true");
    expect(out, "pop3.session", 0, "stls.offered", "true");
    expect(out, "pop3.session", 0, "sasl_mechanisms.1", "LOGIN");
    expect(out, "pop3.session", 0, "retrieved", "1");
    expect(out, "pop3.session", 0, "top", "1");
    expect(out, "pop3.session", 0, "deleted", "1");
    expect(out, "pop3.session", 0, "errors", "0");
    ck_assert_ptr_null(strstr(out, "s3cret"));
    ck_assert(mx_harness_all_json(out));
    free(out);
    SPLIT_OK(session, &pop_opts);
}
END_TEST

START_TEST(password_shown_with_show_secrets)
{
    char *out = run(session, N(session), &pop_secrets);
    expect(out, "pop3.command", 2, "arg", "s3cret");
    expect(out, "pop3.auth", 0, "secret", "s3cret");
    free(out);
}
END_TEST

/* RFC 1939 §7: APOP sends an MD5 digest, crackable offline with the timestamp. */
static const struct mx_turn apop[] = {
    { S, "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", 0 },
    { C, "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n", 0 },
    { S, "+OK maildrop has 1 message (369 octets)\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK\r\n", 0 },
};

START_TEST(apop_is_crackable_and_redacted)
{
    char *out = run(apop, N(apop), &pop_opts);
    expect(out, "pop3.command", 0, "arg", "mrose <redacted 32 bytes>");
    expect(out, "pop3.auth", 0, "mechanism", "APOP");
    expect(out, "pop3.auth", 0, "user", "mrose");
    expect(out, "pop3.auth", 0, "secret_in_clear", "false");
    expect(out, "pop3.auth", 0, "crackable", "true");
    ck_assert_ptr_null(strstr(out, "c4c9334bac"));
    free(out);
    SPLIT_OK(apop, &pop_opts);
}
END_TEST

/* RFC 5034: AUTH with an initial response, with a "+ " continuation, LOGIN, and "*". */
static const struct mx_turn sasl[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "AUTH PLAIN\r\n", 0 },
    { S, "+ \r\n", 0 },
    { C, "*\r\n", 0 },
    { S, "-ERR [AUTH] Authentication cancelled\r\n", 0 },
    { C, "AUTH LOGIN\r\n", 0 },
    { S, "+ VXNlcm5hbWU6\r\n", 0 },
    { C, "Ym9i\r\n", 0 },
    { S, "+ UGFzc3dvcmQ6\r\n", 0 },
    { C, "aHVudGVyMg==\r\n", 0 },
    { S, "-ERR [AUTH] Authentication failed.\r\n", 0 },
    { C, "AUTH PLAIN AGFsaWNlAGFsaWNlcHc=\r\n", 0 },
    { S, "+OK Logged in.\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK Logging out.\r\n", 0 },
};

START_TEST(sasl_exchanges)
{
    char *out = run(sasl, N(sasl), &pop_opts);
    ck_assert_int_eq(mx_harness_count(out, "pop3.auth"), 3);
    expect(out, "pop3.auth", 0, "outcome", "cancelled");
    expect(out, "pop3.auth", 0, "resp_code", "AUTH");
    expect(out, "pop3.auth", 1, "mechanism", "LOGIN");
    expect(out, "pop3.auth", 1, "user", "bob");
    expect(out, "pop3.auth", 1, "outcome", "failure");
    expect(out, "pop3.auth", 2, "user", "alice");
    expect(out, "pop3.auth", 2, "outcome", "success");
    expect(out, "pop3.response", 1, "status", "+");
    expect(out, "pop3.response", 1, "answers.command", "AUTH");
    expect(out, "pop3.response", 4, "answers.command", "(auth data)");
    expect(out, "pop3.auth_data", 2, "redacted_len", "12");
    expect(out, "pop3.command", 2, "arg", "PLAIN <redacted 20 bytes>");
    expect(out, "pop3.session", 0, "failures.1.resp_code", "AUTH");
    expect(out, "pop3.session", 0, "failures.1.command", "(auth data)");
    ck_assert_ptr_null(strstr(out, "aHVudGVyMg=="));
    ck_assert_ptr_null(strstr(out, "AGFsaWNlAGFsaWNlcHc="));
    free(out);
    SPLIT_OK(sasl, &pop_opts);
}
END_TEST

/* Issue 24: PASS, APOP and AUTH split as the servers that accept them split
 * them (Cyrus pop3d: isspace), in any case, with leading whitespace and NUL;
 * each a login with its secret redacted. After a failed AUTH the base64 the
 * client still sends is shown by its length only. */
static const struct mx_turn odd_spacing[] = {
    { S, "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", 0 },
    { C, "\tuser\talice\r\n", 0 },
    { S, "+OK\r\n", 0 },
    { C, "pAsS\ts3cret\r\n", 0 },
    { S, "+OK Logged in.\r\n", 0 },
    { C, "APOP\t\tmrose\vc4c9334bac560ecc979e58001b3e22fb \r\n", 0 },
    { S, "+OK maildrop has 1 message (369 octets)\r\n", 0 },
    { C, "AUTH\0PLAIN\tAGFsaWNlAGFsaWNlcHc=\r\n", 33 },
    { S, "+OK Logged in.\r\n", 0 },
    { C, " auth\fPLAIN\r\n", 0 },
    { S, "+ \r\n", 0 },
    { C, "AGJvYgBodW50ZXIy \r\n", 0 },
    { S, "-ERR [AUTH] Authentication failed.\r\n", 0 },
    { C, "AGJvYgBodW50ZXIy\r\n", 0 },
    { S, "-ERR Unknown command.\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK\r\n", 0 },
};

START_TEST(logins_split_as_servers_split)
{
    char *out = run(odd_spacing, N(odd_spacing), &pop_opts);
    /* The five odd commands are named; of the base64 lines, only the one
     * after the failed AUTH is a command (unknown). */
    for (int i = 0; i < 5; i++)
        expect(out, "anomaly", i, "name", "COMMAND_SPACING");
    expect(out, "anomaly", 5, "name", "UNKNOWN_COMMAND");
    ck_assert_ptr_null(mx_harness_record(out, "anomaly", 6));
    ck_assert_ptr_null(strstr(out, "s3cret"));
    ck_assert_ptr_null(strstr(out, "c4c9334bac"));
    ck_assert_ptr_null(strstr(out, "AGFsaWNlAGFsaWNlcHc="));
    ck_assert_ptr_null(strstr(out, "AGJvYgBodW50ZXIy"));
    expect(out, "pop3.command", 1, "verb", "PASS");
    expect(out, "pop3.command", 1, "arg", "<redacted 6 bytes>");
    expect(out, "pop3.auth", 0, "mechanism", "USER/PASS");
    expect(out, "pop3.auth", 0, "user", "alice");
    expect(out, "pop3.auth", 0, "secret_in_clear", "true");
    expect(out, "pop3.command", 2, "arg", "mrose <redacted 32 bytes>");
    expect(out, "pop3.auth", 1, "mechanism", "APOP");
    expect(out, "pop3.auth", 1, "user", "mrose");
    expect(out, "pop3.auth", 1, "crackable", "true");
    expect(out, "pop3.command", 3, "arg", "PLAIN <redacted 20 bytes>");
    expect(out, "pop3.auth", 2, "user", "alice");
    expect(out, "pop3.auth", 2, "outcome", "success");
    expect(out, "pop3.auth", 2, "secret_in_clear", "true");
    expect(out, "pop3.auth", 3, "user", "bob");
    expect(out, "pop3.auth", 3, "outcome", "failure");
    expect(out, "pop3.auth_data", 0, "redacted_len", "16");
    expect(out, "pop3.command", 5, "verb", "(redacted)");
    expect(out, "pop3.command", 5, "redacted_len", "16");
    free(out);
    out = run(odd_spacing, N(odd_spacing), &pop_secrets);
    expect(out, "pop3.command", 1, "arg", "s3cret");
    expect(out, "pop3.command", 5, "verb", "AGJvYgBodW50ZXIy");
    free(out);
    SPLIT_OK(odd_spacing, &pop_opts);
}
END_TEST

/* RFC 2449 §6.6: pipelined commands, responses in order, multi-line ones too. */
static const struct mx_turn pipelined[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "USER a\r\nPASS b\r\nLIST\r\nRETR 1\r\nQUIT\r\n", 0 },
    { S, "+OK\r\n+OK Logged in.\r\n+OK\r\n1 10\r\n.\r\n+OK\r\nA: b\r\n\r\nxy\r\n.\r\n+OK bye\r\n", 0 },
};

START_TEST(pipelining)
{
    char *out = run(pipelined, N(pipelined), &pop_opts);
    expect(out, "pop3.command", 1, "pipelined", "true");
    expect(out, "pop3.response", 3, "answers.command", "LIST");
    expect(out, "pop3.response", 3, "listing.0.size", "10");
    expect(out, "pop3.response", 4, "answers.command", "RETR");
    expect(out, "pop3.response", 4, "message.size", "12");
    expect(out, "pop3.response", 5, "answers.command", "QUIT");
    expect(out, "pop3.session", 0, "pipelined_commands", "4");
    free(out);
    SPLIT_OK(pipelined, &pop_opts);
}
END_TEST

/* RFC 2595 §4: after +OK to STLS the session is TLS; cleartext before the handshake is injection. */
static const struct mx_turn stls[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "STLS\r\nUSER injected\r\n", 0 },
    { S, "+OK Begin TLS negotiation now.\r\n", 0 },
    { C, "\x16\x03\x01\x00\x05hello", 10 },
    { S, "\x16\x03\x03\x00\x02hi", 7 },
};

START_TEST(stls_upgrade_and_injection)
{
    char *out = run(stls, N(stls), &pop_opts);
    expect(out, "pop3.command", 1, "injected", "true");
    expect(out, "anomaly", 0, "name", "STARTTLS_CLIENT_INJECTION");
    expect(out, "pop3.session", 0, "in_tls", "true");
    expect(out, "pop3.session", 0, "stls.attempted", "true");
    expect(out, "pop3.session", 0, "tls_bytes.c2s", "10");
    expect(out, "pop3.session", 0, "tls_bytes.s2c", "7");
    free(out);
    SPLIT_OK(stls, &pop_opts);
}
END_TEST

static const struct mx_turn server_injection[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "STLS\r\n", 0 },
    { S, "+OK Begin TLS\r\n+OK forged\r\n", 0 },
};

START_TEST(stls_server_injection)
{
    char *out = run(server_injection, N(server_injection), &pop_opts);
    expect(out, "anomaly", 0, "name", "STARTTLS_SERVER_INJECTION");
    free(out);
}
END_TEST

/* The server never greets (or the capture lost it): the first +OK answers CAPA. */
static const struct mx_turn no_greeting[] = {
    { C, "CAPA\r\n", 0 },
    { S, "+OK Capability list follows\r\nUSER\r\nTOP\r\n.\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK bye\r\n", 0 },
};

START_TEST(missing_greeting)
{
    char *out = run(no_greeting, N(no_greeting), &pop_opts);
    expect(out, "anomaly", 0, "name", "GREETING_MISSING");
    expect(out, "pop3.response", 0, "answers.command", "CAPA");
    expect(out, "pop3.response", 0, "capabilities.1", "TOP");
    expect(out, "pop3.response", 1, "answers.command", "QUIT");
    free(out);
    SPLIT_OK(no_greeting, &pop_opts);
}
END_TEST

/* The server stops inside RETR: the message is partial. */
static const struct mx_turn cut_retr[] = {
    { S, "+OK ready\r\n", 0 },
    { C, "RETR 1\r\n", 0 },
    { S, "+OK 100 octets\r\nSubject: cut\r\n\r\nfirst line\r\n", 0 },
};

START_TEST(retr_cut_short)
{
    char *out = run(cut_retr, N(cut_retr), &pop_opts);
    expect(out, "anomaly", 0, "name", "RESPONSE_INCOMPLETE");
    expect(out, "pop3.response", 1, "message.partial", "true");
    expect(out, "message", 0, "partial", "true");
    free(out);
    SPLIT_OK(cut_retr, &pop_opts);
}
END_TEST

/* Picked up midstream inside a message: lines are skipped until a status line. */
static const struct mx_turn midstream[] = {
    { S, "rest of a message\r\n+OK in the body\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK bye\r\n", 0 },
};

START_TEST(midstream_resync)
{
    char *out = run(midstream, N(midstream), &pop_midstream);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "pop3.response", 1, "answers.command", "QUIT");
    expect(out, "pop3.session", 0, "midstream_skipped", "19");
    free(out);
    SPLIT_OK(midstream, &pop_midstream);
}
END_TEST

/* --explain: the RFC 1939 §3 states, right under pipelining (a pipelined
 * command is read after a PASS that logs in), CAPA lines one by one, and
 * TRANSACTION for a client picked up midstream. */
static const struct mx_harness_opts pop_explain = { .server_port = 110, .explain = true };
static const struct mx_harness_opts pop_explain_mid = { .server_port = 110, .explain = true, .no_handshake = true };
static const struct mx_turn retr_midstream[] = {
    { C, "RETR 1\r\n", 0 },
    { S, "+OK 9 octets\r\nA: b\r\n\r\nxy\r\n.\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK bye\r\n", 0 },
};

START_TEST(explain_states)
{
    char *out = run(session, N(session), &pop_explain);
    expect(out, "pop3.command", 0, "state", "AUTHORIZATION"); /* CAPA */
    expect(out, "pop3.command", 2, "state", "AUTHORIZATION"); /* PASS */
    expect(out, "pop3.response", 3, "state", "TRANSACTION");  /* +OK Logged in. */
    expect(out, "pop3.command", 5, "state", "TRANSACTION");   /* RETR */
    expect(out, "pop3.command", 9, "state", "TRANSACTION");   /* QUIT */
    expect(out, "pop3.response", 10, "state", "UPDATE");      /* RFC 1939 §6 */
    expect(out, "pop3.response", 1, "explain_lines.5",
           "STLS: the client may switch the connection to TLS with STLS "
           "before it logs in (RFC 2595 §4)");
    free(out);
    out = run(pipelined, N(pipelined), &pop_explain);
    expect(out, "pop3.command", 1, "state", "AUTHORIZATION"); /* PASS */
    expect(out, "pop3.command", 2, "state", "TRANSACTION");   /* LIST, read after PASS */
    expect(out, "pop3.command", 3, "state", "TRANSACTION");   /* RETR */
    expect(out, "pop3.command", 4, "state", "TRANSACTION");   /* QUIT */
    json_object *r = mx_harness_record(out, "pop3.command", 3);
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "Pipelined (RFC 2449 §6.6)"));
    json_object_put(r);
    expect(out, "pop3.response", 5, "state", "UPDATE");
    free(out);
    out = run(retr_midstream, N(retr_midstream), &pop_explain_mid);
    expect(out, "pop3.command", 0, "state", "TRANSACTION");
    expect(out, "pop3.response", 0, "state", "TRANSACTION");
    expect(out, "pop3.response", 1, "state", "UPDATE");
    free(out);
}
END_TEST

/* Hostile lengths: an over-long command and response line, a bare LF, unknown verbs. */
START_TEST(anomalies_by_name)
{
    static char longcmd[20000];
    memset(longcmd, 'A', sizeof(longcmd) - 3);
    memcpy(longcmd + sizeof(longcmd) - 3, "\r\n", 3);
    static char longrsp[6000];
    memcpy(longrsp, "+OK ", 4);
    memset(longrsp + 4, 'x', sizeof(longrsp) - 7);
    memcpy(longrsp + sizeof(longrsp) - 3, "\r\n", 3);
    const struct mx_turn t[] = {
        { S, "+OK ready\r\n", 0 }, { C, longcmd, 0 },         { C, "NOOP\n", 0 },          { S, longrsp, 0 },
        { C, "XYZZY\r\n", 0 },     { S, "-ERR what\r\n", 0 }, { C, "PASS nouser\r\n", 0 }, { S, "-ERR no user\r\n", 0 },
    };
    char *out = run(t, N(t), &pop_opts);
    ck_assert_ptr_nonnull(strstr(out, "\"LONG_COMMAND_LINE\""));
    ck_assert_ptr_nonnull(strstr(out, "\"LONG_RESPONSE_LINE\""));
    ck_assert_ptr_nonnull(strstr(out, "\"BARE_LF\""));
    ck_assert_ptr_nonnull(strstr(out, "\"UNKNOWN_COMMAND\""));
    ck_assert_ptr_nonnull(strstr(out, "\"COMMAND_OUT_OF_SEQUENCE\""));
    expect(out, "pop3.response", 1, "answers.command", "NOOP");
    expect(out, "pop3.response", 2, "answers.command", "UNKNOWN");
    expect(out, "pop3.session", 0, "unknown_commands", "1");
    ck_assert(mx_harness_all_json(out));
    free(out);
}
END_TEST

/* Issue 26: commands before the greeting, read in turn (RFC 1939 §4); the
 * autologout's -ERR that no command waits for ends the session (§3). */
static const struct mx_turn early_then_autologout[] = {
    { C, "USER alice\r\nSTAT\r\n", 0 },
    { S, "+OK ready\r\n+OK\r\n-ERR not logged in\r\n-ERR Disconnected for inactivity.\r\n", 0 },
};

START_TEST(early_talker_and_autologout)
{
    char *out = run(early_then_autologout, N(early_then_autologout), &pop_opts);
    expect(out, "anomaly", 0, "name", "CLIENT_SPOKE_FIRST");
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 1);
    expect(out, "pop3.response", 0, "answers.command", "(connect)");
    expect(out, "pop3.response", 2, "answers.command", "STAT");
    expect(out, "pop3.response", 3, "closes_session", "true");
    expect(out, "pop3.session", 0, "server_closed.status", "-ERR");
    expect(out, "pop3.session", 0, "server_closed.text", "Disconnected for inactivity.");
    free(out);
    SPLIT_OK(early_then_autologout, &pop_opts);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pop3");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, session_records);
    tcase_add_test(tc, early_talker_and_autologout);
    tcase_add_test(tc, password_shown_with_show_secrets);
    tcase_add_test(tc, apop_is_crackable_and_redacted);
    tcase_add_test(tc, logins_split_as_servers_split);
    tcase_add_test(tc, sasl_exchanges);
    tcase_add_test(tc, pipelining);
    tcase_add_test(tc, stls_upgrade_and_injection);
    tcase_add_test(tc, stls_server_injection);
    tcase_add_test(tc, missing_greeting);
    tcase_add_test(tc, retr_cut_short);
    tcase_add_test(tc, midstream_resync);
    tcase_add_test(tc, anomalies_by_name);
    tcase_add_test(tc, explain_states);
    suite_add_tcase(s, tc);
    return s;
}

MX_CHECK_MAIN(suite)
