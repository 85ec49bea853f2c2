/* test_imap.c - the IMAP dissector on crafted dialogues, each also split at every byte. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dialogue/check_dialogue.h"
#include "check_main.h"

static const struct mx_harness_opts imap_opts = { .server_port = 143 };
static const struct mx_harness_opts imap_secrets = { .server_port = 143, .show_secrets = true };
static const struct mx_harness_opts imap_midstream = { .server_port = 143, .no_handshake = true };

/* RFC 9051: a session with SELECT, FETCH of a whole message and of a partial section. */
static const struct mx_turn session[] = {
    { S, "* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS AUTH=PLAIN] ready\r\n", 0 },
    { C, "a1 LOGIN alice \"s3cret pw\"\r\n", 0 },
    { S, "a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n", 0 },
    { C, "a2 SELECT INBOX\r\n", 0 },
    { S,
      "* FLAGS (\\Seen \\Deleted)\r\n* 2 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
      "* OK [UIDNEXT 3] next\r\na2 OK [READ-WRITE] Select completed\r\n",
      0 },
    { C, "a3 FETCH 1 (UID BODY[])\r\n", 0 },
    { S, "* 1 FETCH (UID 41 BODY[] {28}\r\nSubject: hi\r\n\r\n(not a list\r\n)\r\na3 OK Fetch completed\r\n", 0 },
    { C, "a4 UID FETCH 42 (BODY.PEEK[TEXT]<0.4>)\r\n", 0 },
    { S, "* 2 FETCH (UID 42 BODY[TEXT]<0> {4}\r\nbody)\r\na4 OK done\r\n", 0 },
    { C, "a5 SEARCH UNSEEN\r\n", 0 },
    { S, "* SEARCH 1 2\r\na5 OK Search completed\r\n", 0 },
    { C, "a6 LOGOUT\r\n", 0 },
    { S, "* BYE bye\r\na6 OK Logout completed\r\n", 0 },
};

START_TEST(session_records)
{
    char *out = run(session, N(session), &imap_opts);
    ck_assert(mx_harness_all_json(out));
    ck_assert_int_eq(mx_harness_count(out, "imap.command"), 6);
    ck_assert_int_eq(mx_harness_count(out, "imap.response"), 6);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "imap.command", 0, "arg", "alice <redacted 9 bytes>");
    expect(out, "imap.auth", 0, "command", "LOGIN");
    expect(out, "imap.auth", 0, "user", "alice");
    expect(out, "imap.auth", 0, "outcome", "success");
    expect(out, "imap.auth", 0, "secret_in_clear", "true");
    expect(out, "imap.response", 1, "selected.name", "INBOX");
    expect(out, "imap.response", 1, "selected.exists", "2");
    expect(out, "imap.response", 1, "selected.uidvalidity", "1700000000");
    expect(out, "imap.response", 1, "selected.uidnext", "3");
    expect(out, "imap.response", 1, "selected.read_only", "false");
    expect(out, "imap.response", 1, "untagged", "5");
    expect(out, "imap.response", 2, "answers.command", "FETCH");
    expect(out, "imap.response", 2, "bodies", "1");
    expect(out, "imap.response", 3, "answers.by_uid", "true");
    expect(out, "imap.response", 4, "search_results", "2");
    /* The literal is the message, "(not a list" included: literals are opaque (RFC 9051 §4.3). */
    expect(out, "message", 0, "carried_by", "imap.fetch");
    expect(out, "message", 0, "size", "28");
    expect(out, "message", 0, "number", "1");
    expect(out, "message", 0, "uid", "41");
    expect(out, "message", 0, "mailbox", "INBOX");
    expect(out, "message", 0, "headers.subject", "hi");
    expect(out, "message", 1, "section", "TEXT");
    expect(out, "message", 1, "fragment", "true");
    expect(out, "imap.session", 0, "capabilities.1", "IDLE");
    expect(out, "imap.session", 0, "mailboxes.0.name", "INBOX");
    expect(out, "imap.session", 0, "fetched", "2");
    expect(out, "imap.session", 0, "greeting.status", "OK");
    ck_assert_ptr_null(strstr(out, "s3cret"));
    free(out);
    SPLIT_OK(session, &imap_opts);
}
END_TEST

/* RFC 9051 §7.5: LOGIN with synchronising literals, each after a "+". */
static const struct mx_turn login_literal[] = {
    { S, "* OK ready\r\n", 0 },
    { C, "b1 LOGIN {5}\r\n", 0 },
    { S, "+ go\r\n", 0 },
    { C, "alice {7}\r\n", 0 },
    { S, "+ go\r\n", 0 },
    { C, "hunter2\r\n", 0 },
    { S, "b1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", 0 },
    { C, "b2 LOGOUT\r\n", 0 },
    { S, "b2 OK bye\r\n", 0 },
};

START_TEST(login_with_literals)
{
    char *out = run(login_literal, N(login_literal), &imap_opts);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "imap.continuation", 0, "for", "literal");
    expect(out, "imap.auth", 0, "user", "alice");
    expect(out, "imap.auth", 0, "outcome", "failure");
    expect(out, "imap.auth", 0, "resp_code", "AUTHENTICATIONFAILED");
    expect(out, "imap.auth", 0, "secret_len", "7");
    expect(out, "imap.response", 0, "resp_code", "AUTHENTICATIONFAILED");
    ck_assert_ptr_null(strstr(out, "hunter2"));
    free(out);
    out = run(login_literal, N(login_literal), &imap_secrets);
    expect(out, "imap.auth", 0, "secret", "hunter2");
    free(out);
    SPLIT_OK(login_literal, &imap_opts);
}
END_TEST

/* APPEND: a synchronising literal, a LITERAL+ one, and one the server refuses. */
static const struct mx_turn append[] = {
    { S, "* OK ready\r\n", 0 },
    { C, "c1 APPEND Drafts (\\Seen) {16}\r\n", 0 },
    { S, "+ Ready for literal data\r\n", 0 },
    { C, "Subject: one\r\n\r\n\r\n", 0 },
    { S, "c1 OK [APPENDUID 7 1] Append completed\r\n", 0 },
    { C, "c2 APPEND \"Sent Items\" {16+}\r\nSubject: two\r\n\r\n\r\n", 0 },
    { S, "c2 OK Append completed\r\n", 0 },
    { C, "c3 APPEND Nowhere {15}\r\n", 0 },
    { S, "c3 NO [TRYCREATE] No such mailbox\r\n", 0 },
    { C, "c4 NOOP\r\n", 0 },
    { S, "c4 OK done\r\n", 0 },
};

START_TEST(append_messages)
{
    char *out = run(append, N(append), &imap_opts);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    ck_assert_int_eq(mx_harness_count(out, "message"), 2);
    expect(out, "message", 0, "carried_by", "imap.append");
    expect(out, "message", 0, "dir", "c2s");
    expect(out, "message", 0, "mailbox", "Drafts");
    expect(out, "message", 0, "headers.subject", "one");
    expect(out, "message", 1, "mailbox", "Sent Items");
    expect(out, "imap.command", 2, "command", "APPEND");
    expect(out, "imap.response", 2, "resp_code", "TRYCREATE");
    expect(out, "imap.response", 2, "answers.command", "APPEND");
    expect(out, "imap.response", 3, "answers.command", "NOOP");
    expect(out, "imap.session", 0, "appended", "2");
    free(out);
    SPLIT_OK(append, &imap_opts);
}
END_TEST

/* RFC 9051 §6.2.2 and RFC 4959: AUTHENTICATE with a continuation, cancelled, and with SASL-IR. */
static const struct mx_turn authenticate[] = {
    { S, "* OK ready\r\n", 0 },
    { C, "d1 AUTHENTICATE PLAIN\r\n", 0 },
    { S, "+ \r\n", 0 },
    { C, "*\r\n", 0 },
    { S, "d1 BAD Authentication cancelled\r\n", 0 },
    { C, "d2 AUTHENTICATE PLAIN\r\n", 0 },
    { S, "+ \r\n", 0 },
    { C, "AGJvYgBodW50ZXIy\r\n", 0 },
    { S, "d2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", 0 },
    { C, "d3 AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=\r\n", 0 },
    { S, "d3 OK Logged in\r\n", 0 },
};

START_TEST(authenticate_exchanges)
{
    char *out = run(authenticate, N(authenticate), &imap_opts);
    ck_assert_int_eq(mx_harness_count(out, "imap.auth"), 3);
    expect(out, "imap.auth", 0, "outcome", "cancelled");
    expect(out, "imap.auth", 1, "user", "bob");
    expect(out, "imap.auth", 1, "outcome", "failure");
    expect(out, "imap.auth", 2, "user", "alice");
    expect(out, "imap.auth", 2, "outcome", "success");
    expect(out, "imap.auth_data", 1, "redacted_len", "16");
    expect(out, "imap.continuation", 0, "for", "sasl");
    expect(out, "imap.command", 2, "arg", "PLAIN <redacted 20 bytes>");
    ck_assert_ptr_null(strstr(out, "AGJvYgBodW50ZXIy"));
    free(out);
    SPLIT_OK(authenticate, &imap_opts);
}
END_TEST

/* Issue 24: LOGIN and AUTHENTICATE with tabs and runs of whitespace (an atom
 * ends at any CTL: RFC 9051 §9, Dovecot's atom-specials), leading
 * whitespace, any case, and a password in a literal: each a login, its
 * secret redacted; --show-secrets shows the literal password. */
static const struct mx_turn odd_spacing[] = {
    { S, "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN] ready\r\n", 0 },
    { C, " a1\tlOgIn\talice\t\ts3cret1\t\r\n", 0 },
    { S, "a1 OK Logged in\r\n", 0 },
    { C, "a2 LOGIN\v\"alice\"\f\"s3cret2\"\r\n", 0 },
    { S, "a2 OK Logged in\r\n", 0 },
    { C, "a3\tLOGIN\t{5}\r\n", 0 },
    { S, "+ Ready for literal data\r\n", 0 },
    { C, "alice\t{7}\r\n", 0 },
    { S, "+ Ready for literal data\r\n", 0 },
    { C, "s3cret3\r\n", 0 },
    { S, "a3 OK Logged in\r\n", 0 },
    { C, "a4\tAuthenticate\tPLAIN\t\tAGFsaWNlAGFsaWNlcHc=\r\n", 0 },
    { S, "a4 OK Logged in\r\n", 0 },
    { C, "a5 AUTHENTICATE\0PLAIN AGFsaWNlAGFsaWNlcHc=\r\n", 44 },
    { S, "a5 OK Logged in\r\n", 0 },
};

START_TEST(logins_split_as_servers_split)
{
    char *out = run(odd_spacing, N(odd_spacing), &imap_opts);
    ck_assert_ptr_null(strstr(out, "s3cret"));
    ck_assert_ptr_null(strstr(out, "AGFsaWNlAGFsaWNlcHc="));
    ck_assert_int_eq(mx_harness_count(out, "imap.auth"), 5);
    /* Each of the five is named: a filter splitting on SP alone reads another command. */
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 5);
    for (int i = 0; i < 5; i++)
        expect(out, "anomaly", i, "name", "COMMAND_SPACING");
    expect(out, "imap.command", 0, "tag", "a1");
    expect(out, "imap.command", 0, "command", "LOGIN");
    expect(out, "imap.command", 0, "arg", "alice <redacted 7 bytes>");
    expect(out, "imap.command", 1, "arg", "alice <redacted 7 bytes>");
    for (int i = 0; i < 5; i++) {
        expect(out, "imap.auth", i, "user", "alice");
        expect(out, "imap.auth", i, "outcome", "success");
        expect(out, "imap.auth", i, "secret_in_clear", "true");
    }
    expect(out, "imap.auth", 2, "secret_len", "7");
    expect(out, "imap.command", 3, "arg", "PLAIN <redacted 20 bytes>");
    expect(out, "imap.command", 4, "arg", "PLAIN <redacted 20 bytes>");
    free(out);
    out = run(odd_spacing, N(odd_spacing), &imap_secrets);
    expect(out, "imap.auth", 2, "secret", "s3cret3");
    free(out);
    SPLIT_OK(odd_spacing, &imap_opts);
}
END_TEST

/* RFC 9051 §6.2.1: STARTTLS, with a command injected before the handshake. */
static const struct mx_turn starttls[] = {
    { S, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n", 0 },
    { C, "e1 STARTTLS\r\ne2 LOGIN a b\r\n", 0 },
    { S, "e1 OK Begin TLS negotiation now\r\n", 0 },
    { C, "\x16\x03\x01\x00\x05hello", 10 },
    { S, "\x16\x03\x03\x00\x02hi", 7 },
};

START_TEST(starttls_injection)
{
    char *out = run(starttls, N(starttls), &imap_opts);
    expect(out, "imap.command", 1, "injected", "true");
    ck_assert_ptr_nonnull(strstr(out, "\"STARTTLS_CLIENT_INJECTION\""));
    ck_assert_ptr_nonnull(strstr(out, "\"LOGIN_DISABLED_IGNORED\""));
    expect(out, "imap.session", 0, "in_tls", "true");
    expect(out, "imap.session", 0, "logindisabled", "true");
    expect(out, "imap.session", 0, "starttls.offered", "true");
    expect(out, "imap.session", 0, "tls_bytes.c2s", "10");
    expect(out, "imap.session", 0, "tls_bytes.s2c", "7");
    free(out);
    SPLIT_OK(starttls, &imap_opts);
}
END_TEST

/* RFC 2177: IDLE, an update while idling, DONE. */
static const struct mx_turn idle[] = {
    { S, "* PREAUTH ready\r\n", 0 }, { C, "f1 IDLE\r\n", 0 }, { S, "+ idling\r\n", 0 },
    { S, "* 3 EXISTS\r\n", 0 },      { C, "DONE\r\n", 0 },    { S, "f1 OK IDLE terminated\r\n", 0 },
};

START_TEST(idle_period)
{
    char *out = run(idle, N(idle), &imap_opts);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "imap.idle", 0, "tag", "f1");
    expect(out, "imap.idle", 0, "untagged", "1");
    expect(out, "imap.command", 1, "command", "DONE");
    expect(out, "imap.session", 0, "preauth", "true");
    expect(out, "imap.session", 0, "idles", "1");
    free(out);
    SPLIT_OK(idle, &imap_opts);
}
END_TEST

/* Several commands in flight: completions are linked by tag, not by order. */
static const struct mx_turn pipelined[] = {
    { S, "* OK ready\r\n", 0 },
    { C, "g1 NOOP\r\ng2 CAPABILITY\r\ng3 CHECK\r\n", 0 },
    { S, "g2 OK capability\r\ng1 OK noop\r\ng3 NO check\r\n", 0 },
};

START_TEST(tags_link_completions)
{
    char *out = run(pipelined, N(pipelined), &imap_opts);
    expect(out, "imap.response", 0, "answers.command", "CAPABILITY");
    expect(out, "imap.response", 1, "answers.command", "NOOP");
    expect(out, "imap.response", 2, "answers.command", "CHECK");
    expect(out, "imap.command", 1, "pipelined", "true");
    expect(out, "imap.session", 0, "no", "1");
    free(out);
    SPLIT_OK(pipelined, &imap_opts);
}
END_TEST

/* Hostile literal lengths never allocate: an overflow is invalid, a huge one is flagged. */
START_TEST(hostile_literals)
{
    const struct mx_turn bad[] = {
        { S, "* OK ready\r\n", 0 },
        { C, "h1 LOGIN {99999999999999999999}\r\n", 0 },
        { S, "h1 BAD no\r\n", 0 },
        { C, "h2 APPEND INBOX {4294967296+}\r\nSubject: x\r\n", 0 },
    };
    char *out = run(bad, N(bad), &imap_opts);
    ck_assert(mx_harness_all_json(out));
    ck_assert_ptr_nonnull(strstr(out, "\"LITERAL_INVALID\""));
    ck_assert_ptr_nonnull(strstr(out, "\"LITERAL_TOO_LARGE\""));
    ck_assert_ptr_nonnull(strstr(out, "\"LITERAL_INCOMPLETE\""));
    expect(out, "message", 0, "partial", "true");
    free(out);
}
END_TEST

/* Midstream inside a FETCH literal: lines are skipped until one is surely a response. */
static const struct mx_turn midstream[] = {
    { S, "rest of a literal\r\n)\r\n* 4 EXISTS\r\n", 0 },
    { C, "x1 NOOP\r\n", 0 },
    { S, "x1 OK done\r\n", 0 },
};

START_TEST(midstream_resync)
{
    char *out = run(midstream, N(midstream), &imap_midstream);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "imap.untagged", 0, "kind", "EXISTS");
    expect(out, "imap.response", 0, "answers.command", "NOOP");
    expect(out, "imap.session", 0, "midstream_skipped", "22");
    free(out);
    SPLIT_OK(midstream, &imap_midstream);
}
END_TEST

/* RFC 4978: after COMPRESS DEFLATE, both directions are raw deflate. */
static size_t deflate_into(z_stream *z, const char *in, uint8_t *out, size_t cap)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)strlen(in);
    z->next_out = out;
    z->avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(z, Z_SYNC_FLUSH), Z_OK);
    return cap - z->avail_out;
}

START_TEST(compress_deflate)
{
    z_stream zc, zs;
    memset(&zc, 0, sizeof(zc));
    memset(&zs, 0, sizeof(zs));
    ck_assert_int_eq(deflateInit2(&zc, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    static uint8_t c1[256], s1[256], c2[256], s2[512];
    size_t nc1 = deflate_into(&zc, "k2 SELECT INBOX\r\n", c1, sizeof(c1));
    size_t ns1 = deflate_into(&zs, "* 1 EXISTS\r\nk2 OK [READ-WRITE] done\r\n", s1, sizeof(s1));
    size_t nc2 = deflate_into(&zc, "k3 FETCH 1 BODY[]\r\n", c2, sizeof(c2));
    size_t ns2 = deflate_into(&zs, "* 1 FETCH (BODY[] {14}\r\nSubject: z\r\n\r\n)\r\nk3 OK done\r\n", s2, sizeof(s2));
    deflateEnd(&zc);
    deflateEnd(&zs);
    const struct mx_turn t[] = {
        { S, "* OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] ready\r\n", 0 },
        { C, "k1 COMPRESS DEFLATE\r\n", 0 },
        { S, "k1 OK DEFLATE active\r\n", 0 },
        { C, (const char *)c1, nc1 },
        { S, (const char *)s1, ns1 },
        { C, (const char *)c2, nc2 },
        { S, (const char *)s2, ns2 },
    };
    char *out = run(t, N(t), &imap_opts);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    expect(out, "imap.command", 1, "command", "SELECT");
    expect(out, "imap.response", 1, "selected.exists", "1");
    expect(out, "message", 0, "headers.subject", "z");
    expect(out, "imap.session", 0, "compressed", "true");
    free(out);
    SPLIT_OK(t, &imap_opts);
}
END_TEST

/* Anomalies by name: an over-long line, an unknown command, a tagless line, a bad response. */
START_TEST(anomalies_by_name)
{
    static char longline[80000];
    memcpy(longline, "l1 NOOP ", 8);
    memset(longline + 8, 'x', sizeof(longline) - 11);
    memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
    const struct mx_turn t[] = {
        { S, "* OK ready\r\n", 0 },
        { C, longline, 0 },
        { S, "l1 OK fine\r\n", 0 },
        { C, "l2 FROB\r\n", 0 },
        { S, "l2 BAD unknown\r\nwhat is this\r\n", 0 },
        { C, "NOTAG\r\n", 0 },
        { S, "zz OK nobody asked\r\n", 0 },
    };
    char *out = run(t, N(t), &imap_opts);
    ck_assert(mx_harness_all_json(out));
    ck_assert_ptr_nonnull(strstr(out, "\"LONG_LINE\""));
    ck_assert_ptr_nonnull(strstr(out, "\"UNKNOWN_COMMAND\""));
    ck_assert_ptr_nonnull(strstr(out, "\"INVALID_RESPONSE\""));
    ck_assert_ptr_nonnull(strstr(out, "\"INVALID_COMMAND\""));
    ck_assert_ptr_nonnull(strstr(out, "\"UNMATCHED_COMPLETION\""));
    expect(out, "imap.response", 0, "answers.command", "NOOP");
    free(out);
}
END_TEST

/* Issue 26: a command before the greeting (RFC 9051 §7.1); BYE outside
 * LOGOUT ends the session (§7.1.5), the pending command unanswered. */
static const struct mx_turn early_then_bye[] = {
    { C, "a1 NOOP\r\n", 0 },
    { S, "* OK ready\r\na1 OK done\r\n", 0 },
    { C, "a2 NOOP\r\n", 0 },
    { S, "* BYE Disconnected for inactivity.\r\n", 0 },
};

START_TEST(early_talker_and_bye)
{
    char *out = run(early_then_bye, N(early_then_bye), &imap_opts);
    expect(out, "anomaly", 0, "name", "CLIENT_SPOKE_FIRST");
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 1);
    expect(out, "imap.untagged", 1, "closes_session", "true");
    expect(out, "imap.untagged", 1, "unanswered", "1");
    expect(out, "imap.session", 0, "server_closed.status", "BYE");
    expect(out, "imap.session", 0, "server_closed.unanswered", "1");
    free(out);
    SPLIT_OK(early_then_bye, &imap_opts);
}
END_TEST

/* --explain: the greeting and untagged responses explained, CAPABILITY
 * items one by one, the RFC 9051 §3 states (logout after BYE), and a
 * session picked up midstream in the selected state its commands need. */
static const struct mx_harness_opts imap_explain = { .server_port = 143, .explain = true };
static const struct mx_harness_opts imap_explain_mid = { .server_port = 143, .explain = true, .no_handshake = true };
static const struct mx_turn fetch_midstream[] = {
    { C, "m1 FETCH 1 (FLAGS)\r\n", 0 },
    { S, "* 1 FETCH (FLAGS (\\Seen))\r\nm1 OK done\r\n", 0 },
    { C, "m2 CLOSE\r\n", 0 },
    { S, "m2 OK closed\r\n", 0 },
};

START_TEST(explain_untagged_and_states)
{
    char *out = run(session, N(session), &imap_explain);
    json_object *r = mx_harness_record(out, "imap.untagged", 0); /* the greeting */
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "the greeting"));
    ck_assert_str_eq(get(r, "state"), "not authenticated");
    ck_assert_ptr_nonnull(strstr(get(r, "explain_lines.2"), "STARTTLS: "));
    json_object_put(r);
    r = mx_harness_record(out, "imap.untagged", 2); /* * 2 EXISTS */
    ck_assert_str_eq(get(r, "explain"), "the mailbox holds 2 messages; a new count means new mail (RFC 9051 §7.4.1)");
    json_object_put(r);
    r = mx_harness_record(out, "imap.untagged", 4); /* * OK [UIDVALIDITY ...] */
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "[UIDVALIDITY 1700000000] the mailbox's UID validity"));
    json_object_put(r);
    expect(out, "imap.command", 2, "state", "selected"); /* FETCH */
    r = mx_harness_record(out, "imap.untagged", 9);      /* * BYE */
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "as LOGOUT asked"));
    ck_assert_str_eq(get(r, "state"), "logout");
    json_object_put(r);
    free(out);
    out = run(pipelined, N(pipelined), &imap_explain);
    r = mx_harness_record(out, "imap.command", 2);
    ck_assert_ptr_nonnull(strstr(get(r, "explain"), "Pipelined (RFC 9051 §5.5)"));
    json_object_put(r);
    free(out);
    out = run(fetch_midstream, N(fetch_midstream), &imap_explain_mid);
    expect(out, "imap.command", 0, "state", "selected");
    expect(out, "imap.untagged", 0, "state", "selected");
    expect(out, "imap.response", 1, "state", "authenticated"); /* CLOSE */
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("imap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, session_records);
    tcase_add_test(tc, login_with_literals);
    tcase_add_test(tc, append_messages);
    tcase_add_test(tc, authenticate_exchanges);
    tcase_add_test(tc, logins_split_as_servers_split);
    tcase_add_test(tc, starttls_injection);
    tcase_add_test(tc, idle_period);
    tcase_add_test(tc, tags_link_completions);
    tcase_add_test(tc, hostile_literals);
    tcase_add_test(tc, midstream_resync);
    tcase_add_test(tc, compress_deflate);
    tcase_add_test(tc, anomalies_by_name);
    tcase_add_test(tc, early_talker_and_bye);
    tcase_add_test(tc, explain_untagged_and_states);
    suite_add_tcase(s, tc);
    return s;
}

MX_CHECK_MAIN(suite)
