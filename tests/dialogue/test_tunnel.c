/* test_tunnel.c - SOCKS4/4a/5 and HTTP CONNECT tunnels in front of mail, on crafted
 * handshakes, each also split at every byte; malformed and refused ones. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialogue/check_dialogue.h"
#include "check_main.h"

static const struct mx_harness_opts socks = { .server_port = 1080 };
static const struct mx_harness_opts socks_secrets = { .server_port = 1080, .show_secrets = true };
static const struct mx_harness_opts http = { .server_port = 3128 };
static const struct mx_harness_opts http_explain = { .server_port = 8080, .explain = true };

#define SMTP_SESSION                                                                                \
    { S, "220 mx.lab.test ESMTP\r\n", 0 }, { C, "EHLO c\r\n", 0 }, { S, "250 mx.lab.test\r\n", 0 }, \
        { C, "QUIT\r\n", 0 },                                                                       \
    {                                                                                               \
        S, "221 2.0.0 Bye\r\n", 0                                                                   \
    }

/* RFC 1928: no authentication, a CONNECT to an IPv4 address on port 25. */
static const struct mx_turn socks5_none[] = {
    { C, "\x05\x01\x00", 3 },
    { S, "\x05\x00", 2 },
    { C, "\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x19", 10 },
    { S, "\x05\x00\x00\x01\x0a\x00\x00\x01\x9c\x40", 10 },
    SMTP_SESSION,
};

START_TEST(socks5_carries_smtp)
{
    char *out = run(socks5_none, N(socks5_none), &socks);
    expect(out, "flow_start", 0, "proto", "smtp");
    expect(out, "flow_start", 0, "tunnel", "socks5");
    expect(out, "tunnel", 0, "kind", "socks5");
    expect(out, "tunnel", 0, "target_host", "10.0.0.2");
    expect(out, "tunnel", 0, "target_port", "25");
    expect(out, "tunnel", 0, "carries", "smtp");
    expect(out, "tunnel", 0, "methods_offered.0", "none");
    expect(out, "tunnel", 0, "auth_method", "none");
    expect(out, "tunnel", 0, "reply_code", "0");
    expect(out, "tunnel", 0, "reply_meaning", "succeeded");
    expect(out, "tunnel", 0, "outcome", "established");
    ck_assert_int_eq(mx_harness_count(out, "smtp.command"), 2);
    expect(out, "smtp.reply", 0, "answers.command", "(connect)");
    expect(out, "smtp.reply", 0, "code", "220");
    expect(out, "smtp.session", 0, "helo", "c");
    expect(out, "flow", 0, "tunnel", "socks5");
    ck_assert_ptr_null(strstr(out, "TUNNEL_"));
    ck_assert(mx_harness_all_json(out));
    free(out);
    SPLIT_OK(socks5_none, &socks);
}
END_TEST

/* RFC 1929: user name and password, a domain name target, POP3 inside. */
static const struct mx_turn socks5_userpass[] = {
    { C, "\x05\x02\x00\x02", 4 },
    { S, "\x05\x02", 2 },
    { C,
      "\x01\x05"
      "alice"
      "\x06"
      "s3cret",
      14 },
    { S, "\x01\x00", 2 },
    { C, "\x05\x01\x00\x03\x0bmx.lab.test\x00\x6e", 18 },
    { S, "\x05\x00\x00\x01\x0a\x00\x00\x01\x9c\x40", 10 },
    { S, "+OK ready\r\n", 0 },
    { C, "QUIT\r\n", 0 },
    { S, "+OK bye\r\n", 0 },
};

START_TEST(socks5_userpass_redacted)
{
    char *out = run(socks5_userpass, N(socks5_userpass), &socks);
    expect(out, "flow_start", 0, "proto", "pop3");
    expect(out, "tunnel", 0, "target_host", "mx.lab.test");
    expect(out, "tunnel", 0, "target_port", "110");
    expect(out, "tunnel", 0, "auth_method", "username/password");
    expect(out, "tunnel", 0, "methods_offered.1", "username/password");
    expect(out, "tunnel", 0, "user", "alice");
    expect(out, "tunnel", 0, "secret_in_clear", "true");
    expect(out, "tunnel", 0, "secret_len", "6");
    expect(out, "tunnel", 0, "auth_outcome", "success");
    ck_assert_ptr_null(strstr(out, "s3cret"));
    expect(out, "pop3.command", 0, "verb", "QUIT");
    free(out);
    out = run(socks5_userpass, N(socks5_userpass), &socks_secrets);
    expect(out, "tunnel", 0, "secret", "s3cret");
    free(out);
    SPLIT_OK(socks5_userpass, &socks);
}
END_TEST

/* RFC 1929 §2: a failed login: the proxy closes. */
static const struct mx_turn socks5_badpass[] = {
    { C, "\x05\x01\x02", 3 },
    { S, "\x05\x02", 2 },
    { C,
      "\x01\x05"
      "alice"
      "\x05"
      "wrong",
      13 },
    { C, "\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x19", 10 },
    { S, "\x01\x01", 2 },
};

START_TEST(socks5_auth_failed)
{
    char *out = run(socks5_badpass, N(socks5_badpass), &socks);
    expect(out, "tunnel", 0, "outcome", "auth_failed");
    expect(out, "tunnel", 0, "auth_outcome", "failure");
    expect(out, "anomaly", 0, "name", "TUNNEL_AUTH_FAILED");
    ck_assert_int_eq(mx_harness_count(out, "smtp.session"), 0);
    free(out);
    SPLIT_OK(socks5_badpass, &socks);
}
END_TEST

/* RFC 1928 §6: REP 2, connection not allowed by ruleset. */
static const struct mx_turn socks5_refused[] = {
    { C, "\x05\x01\x00", 3 },
    { S, "\x05\x00", 2 },
    { C, "\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x19", 10 },
    { S, "\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
};

START_TEST(socks5_refused_is_visible)
{
    char *out = run(socks5_refused, N(socks5_refused), &socks);
    expect(out, "flow_start", 0, "tunnel", "socks5");
    expect(out, "tunnel", 0, "outcome", "refused");
    expect(out, "tunnel", 0, "reply_code", "2");
    expect(out, "tunnel", 0, "reply_meaning", "connection not allowed by ruleset");
    expect(out, "anomaly", 0, "name", "TUNNEL_REFUSED");
    expect(out, "flow", 0, "anomalies.TUNNEL_REFUSED", "1");
    ck_assert_int_eq(mx_harness_count(out, "smtp.session"), 0);
    free(out);
    SPLIT_OK(socks5_refused, &socks);
}
END_TEST

/* SOCKS 4 with a user id, and 4A with a name (DSTIP 0.0.0.1). */
static const struct mx_turn socks4[] = {
    { C,
      "\x04\x01\x00\x19\x0a\x00\x00\x02"
      "bob\x00",
      12 },
    { S, "\x00\x5a\x00\x00\x00\x00\x00\x00", 8 },
    SMTP_SESSION,
};
static const struct mx_turn socks4a[] = {
    { C,
      "\x04\x01\x00\x8f\x00\x00\x00\x01"
      "\x00"
      "imap.lab.test\x00",
      23 },
    { S, "\x00\x5a\x00\x00\x00\x00\x00\x00", 8 },
    { S, "* OK ready\r\n", 0 },
    { C, "a LOGOUT\r\n", 0 },
    { S, "* BYE\r\na OK done\r\n", 0 },
};

START_TEST(socks4_and_4a)
{
    char *out = run(socks4, N(socks4), &socks);
    expect(out, "tunnel", 0, "kind", "socks4");
    expect(out, "tunnel", 0, "user", "bob");
    expect(out, "tunnel", 0, "reply_code", "90");
    expect(out, "tunnel", 0, "reply_meaning", "request granted");
    expect(out, "smtp.session", 0, "helo", "c");
    free(out);
    out = run(socks4a, N(socks4a), &socks);
    expect(out, "flow_start", 0, "proto", "imap");
    expect(out, "tunnel", 0, "kind", "socks4a");
    expect(out, "tunnel", 0, "target_host", "imap.lab.test");
    expect(out, "tunnel", 0, "target_port", "143");
    expect(out, "imap.command", 0, "command", "LOGOUT");
    free(out);
    SPLIT_OK(socks4, &socks);
    SPLIT_OK(socks4a, &socks);
}
END_TEST

/* RFC 9110 §9.3.6, §11.7.2: a 407, then the same connection with Basic credentials. */
static const struct mx_turn http_retry[] = {
    { C, "CONNECT mx.lab.test:587 HTTP/1.1\r\nHost: mx.lab.test:587\r\n\r\n", 0 },
    { S,
      "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\n"
      "Content-Length: 5\r\n\r\nnope\n",
      0 },
    { C, "CONNECT mx.lab.test:587 HTTP/1.1\r\nProxy-Authorization: Basic Y2Fyb2w6cHJveHlwYXNz\r\n\r\n", 0 },
    { S, "HTTP/1.1 200 Connection established\r\n\r\n", 0 },
    SMTP_SESSION,
};

START_TEST(http_connect_407_then_200)
{
    char *out = run(http_retry, N(http_retry), &http);
    ck_assert_int_eq(mx_harness_count(out, "tunnel"), 2);
    expect(out, "tunnel", 0, "kind", "http-connect");
    expect(out, "tunnel", 0, "outcome", "auth_failed");
    expect(out, "tunnel", 0, "reply_code", "407");
    expect(out, "tunnel", 0, "reason", "Proxy Authentication Required");
    expect(out, "tunnel", 1, "outcome", "established");
    expect(out, "tunnel", 1, "auth_method", "Basic");
    expect(out, "tunnel", 1, "user", "carol");
    expect(out, "tunnel", 1, "secret_len", "9");
    ck_assert_ptr_null(strstr(out, "proxypass"));
    ck_assert_ptr_null(strstr(out, "Y2Fyb2w6cHJveHlwYXNz"));
    expect(out, "anomaly", 0, "name", "TUNNEL_AUTH_FAILED");
    expect(out, "smtp.session", 0, "helo", "c");
    free(out);
    SPLIT_OK(http_retry, &http);
}
END_TEST

/* An unknown port: the server's first bytes say SMTP; --explain. */
static const struct mx_turn http_sniff[] = {
    { C, "CONNECT [2001:db8::25]:2525 HTTP/1.0\r\n\r\n", 0 },
    { S, "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy\r\n\r\n", 0 },
    SMTP_SESSION,
};

START_TEST(http_connect_by_greeting)
{
    char *out = run(http_sniff, N(http_sniff), &http_explain);
    expect(out, "tunnel", 0, "target_host", "2001:db8::25");
    expect(out, "tunnel", 0, "target_port", "2525");
    expect(out, "tunnel", 0, "carries", "smtp");
    ck_assert_ptr_nonnull(strstr(out, "RFC 9110"));
    expect(out, "smtp.reply", 0, "code", "220");
    free(out);
    SPLIT_OK(http_sniff, &http);
}
END_TEST

/* A spam bot's CONNECT as in Zeek's connect-with-smtp.pcap: a stray "/" before
 * the version and a header line without a colon, which the proxy answered 200. */
static const struct mx_turn bot_connect[] = {
    { C, "CONNECT mailin03.example.de:25 / HTTP/1.0\r\nMozilla 4.0 (compatible; MSIE 5.01)\r\n\r\n", 0 },
    { S, "HTTP/1.0 200 Connection established\r\n\r\n", 0 },
    SMTP_SESSION,
};

START_TEST(http_connect_as_bots_send_it)
{
    char *out = run(bot_connect, N(bot_connect), &http);
    expect(out, "tunnel", 0, "target_host", "mailin03.example.de");
    expect(out, "tunnel", 0, "target_port", "25");
    expect(out, "tunnel", 0, "outcome", "established");
    expect(out, "smtp.session", 0, "helo", "c");
    free(out);
    SPLIT_OK(bot_connect, &http);
}
END_TEST

/* Not mail: HTTPS through a proxy, a plain GET, a refused tunnel to the web,
 * a server that speaks first: nothing is written. */
static const struct mx_turn https_tunnel[] = {
    { C, "CONNECT example.org:443 HTTP/1.1\r\n\r\n", 0 },
    { S, "HTTP/1.1 200 OK\r\n\r\n", 0 },
    { C, "\x16\x03\x01\x00\x05hello", 10 },
    { S, "\x16\x03\x03\x00\x02hi", 7 },
};
static const struct mx_turn plain_get[] = {
    { C, "GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n", 0 },
    { S, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 0 },
};
static const struct mx_turn web_refused[] = {
    { C, "\x05\x01\x00", 3 },
    { S, "\x05\x00", 2 },
    { C, "\x05\x01\x00\x01\x0a\x00\x00\x02\x01\xbb", 10 },
    { S, "\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
};
static const struct mx_turn server_first[] = {
    { S, "220 not a proxy\r\n", 0 },
    { C, "\x05\x01\x00", 3 },
};

START_TEST(no_mail_no_records)
{
    const struct {
        const struct mx_turn *t;
        size_t n;
    } cases[] = {
        { https_tunnel, N(https_tunnel) },
        { plain_get, N(plain_get) },
        { web_refused, N(web_refused) },
        { server_first, N(server_first) },
    };
    for (size_t i = 0; i < N(cases); i++) {
        char *out = run(cases[i].t, cases[i].n, &http);
        ck_assert_msg(mx_harness_count(out, "flow_start") == 0, "case %zu: %s", i, out);
        ck_assert_int_eq(mx_harness_count(out, "tunnel"), 0);
        free(out);
        ck_assert_uint_eq(mx_harness_split_check(cases[i].t, cases[i].n, &http), SIZE_MAX);
    }
}
END_TEST

/* A client that sends 2 MiB before the proxy answers a CONNECT to the web:
 * let go at 64 KiB, with no record (no DISSECTOR_BUFFER_LIMIT either). */
START_TEST(hold_capped_before_answer)
{
    static char big[2u << 20];
    memset(big, 'x', sizeof(big));
    struct mx_turn t[] = {
        { C, "CONNECT example.org:443 HTTP/1.1\r\n\r\n", 0 },
        { C, big, sizeof(big) },
        { S, "HTTP/1.1 200 OK\r\n\r\n", 0 },
    };
    char *out = run(t, N(t), &http);
    ck_assert_msg(!strstr(out, "\"flow\":"), "%.300s", out);
    ck_assert_msg(mx_harness_count(out, "anomaly") == 0, "%s", out);
    free(out);
}
END_TEST

/* Malformed: a reply of the wrong version, a cut handshake, an overlong
 * SOCKS4 user id, an HTTP head without end; never a crash. */
static const struct mx_turn bad_reply[] = {
    { C, "\x05\x01\x00", 3 },
    { S, "\x05\x00", 2 },
    { C, "\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x19", 10 },
    { S, "\x04\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
    { S, "220 x\r\n", 0 },
};
static const struct mx_turn cut_short[] = {
    { C, "\x05\x01\x00", 3 },
    { S, "\x05\x00", 2 },
    { C, "\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x19", 10 },
    { S, "\x05\x00\x00", 3 },
};

START_TEST(malformed_handshakes)
{
    char *out = run(bad_reply, N(bad_reply), &socks);
    expect(out, "anomaly", 0, "name", "TUNNEL_INVALID");
    expect(out, "tunnel", 0, "outcome", "invalid");
    ck_assert_int_eq(mx_harness_count(out, "smtp.reply"), 0);
    free(out);
    SPLIT_OK(bad_reply, &socks);
    out = run(cut_short, N(cut_short), &socks);
    expect(out, "anomaly", 0, "name", "TUNNEL_INCOMPLETE");
    expect(out, "tunnel", 0, "outcome", "incomplete");
    free(out);
    SPLIT_OK(cut_short, &socks);
    /* 400 bytes of user id without NUL, then a head of 10 KB without its end. */
    char big[600];
    memcpy(big, "\x04\x01\x00\x19\x0a\x00\x00\x02", 8);
    memset(big + 8, 'u', sizeof(big) - 8);
    struct mx_turn t1[] = { { C, big, sizeof(big) }, { S, "\x00\x5a\x00\x00\x00\x00\x00\x00", 8 } };
    out = run(t1, N(t1), &socks);
    ck_assert_int_eq(mx_harness_count(out, "flow_start"), 0);
    free(out);
    static char head[10240];
    memcpy(head, "CONNECT a:25 HTTP/1.1\r\n", 23);
    memset(head + 23, 'x', sizeof(head) - 23);
    struct mx_turn t2[] = { { C, head, sizeof(head) } };
    out = run(t2, N(t2), &http);
    ck_assert_int_eq(mx_harness_count(out, "flow_start"), 0); /* its target is not known yet: no mail seen */
    ck_assert(mx_harness_all_json(out));
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tunnel");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, socks5_carries_smtp);
    tcase_add_test(tc, socks5_userpass_redacted);
    tcase_add_test(tc, socks5_auth_failed);
    tcase_add_test(tc, socks5_refused_is_visible);
    tcase_add_test(tc, socks4_and_4a);
    tcase_add_test(tc, http_connect_407_then_200);
    tcase_add_test(tc, http_connect_by_greeting);
    tcase_add_test(tc, http_connect_as_bots_send_it);
    tcase_add_test(tc, no_mail_no_records);
    tcase_add_test(tc, malformed_handshakes);
    tcase_add_test(tc, hold_capped_before_answer);
    suite_add_tcase(s, tc);
    return s;
}

MX_CHECK_MAIN(suite)
