/* test_diagnosis.c - Check suite for the diagnosis of replies (dissectors/smtp/diagnosis.c,
 * words.c): real reply lines from MTA sources and vendor pages (tests/data/reply-lines.tsv)
 * get the cause kind their words and codes say, both when they disagree; --explain texts hold
 * no placeholder and no bare registry boilerplate for any code; hostile text stays bounded. */
#include "dissectors/smtp/diagnosis.h"
#include "check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MX_REPLY_LINES
#define MX_REPLY_LINES "tests/data/reply-lines.tsv"
#endif

/* The kinds the issue asks the table to cover (issue 27). */
static const char *const required[] = { "policy",         "blocklist",    "greylisting", "rate_limit",
                                        "spf_dkim_dmarc", "tls_required", "quota",       "unknown_user",
                                        "relay_denied",   "too_big",      "content" };

/* True when s holds needle, ASCII case ignored. */
static bool holds_nocase(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++) {
        size_t j = 0;
        while (j < n && s[j] && (s[j] | 0x20) == (needle[j] | 0x20))
            j++;
        if (j == n)
            return true;
    }
    return false;
}

/* Splits line at tabs into at most n fields (in place); returns how many. */
static size_t split(char *line, char **f, size_t n)
{
    size_t k = 0;
    char *p = line;
    while (k < n) {
        f[k++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
    }
    return k;
}

/* Checks one SMTP/LMTP reply line; fills `kind` with the kind found. */
static void check_smtp(const char *step, const char *reply, const char *want, const char *want_code, int lineno)
{
    size_t len = strlen(reply);
    ck_assert_msg(len >= 4 && reply[0] >= '2' && reply[0] <= '5', "line %d: not a reply: %s", lineno, reply);
    int code = atoi(reply);
    struct mx_slice text = mx_slice_make((const uint8_t *)reply + 4, len - 4);
    struct mx_enhanced_code e = MX_ENHANCED_NONE;
    size_t el = mx_enhanced_scan(text, &e);
    if (el && el < text.len && text.ptr[el] == ' ')
        text = mx_slice_make(text.ptr + el + 1, text.len - el - 1);
    struct mx_diag_reply r = { .step = step, .code = code, .enhanced = &e, .text = text };
    char cause[1024];
    struct mx_diag_verdict v;
    mx_diag_cause_kind(&r, cause, sizeof(cause), &v);
    ck_assert_msg(cause[0], "line %d: no cause for %s", lineno, reply);
    ck_assert_msg(!strcmp(mx_cause_kind_name(v.kind), want), "line %d: %s: kind %s, expected %s (cause: %s)", lineno,
                  reply, mx_cause_kind_name(v.kind), want, cause);
    if (!strcmp(want_code, "-")) {
        ck_assert_msg(v.code_kind == MX_CAUSE_NONE, "line %d: %s: the code says %s, expected agreement (cause: %s)",
                      lineno, reply, mx_cause_kind_name(v.code_kind), cause);
        ck_assert_msg(!strstr(cause, "the server's words"), "line %d: says both though they agree: %s", lineno, cause);
    } else {
        ck_assert_msg(!strcmp(mx_cause_kind_name(v.code_kind), want_code),
                      "line %d: %s: the code says %s, expected %s (cause: %s)", lineno, reply,
                      mx_cause_kind_name(v.code_kind), want_code, cause);
        /* both said: what the code says, and what the words say */
        ck_assert_msg(strstr(cause, "The code (") && strstr(cause, "the server's words"),
                      "line %d: the cause does not say both: %s", lineno, cause);
        ck_assert_msg(v.words && strstr(cause, v.words), "line %d: the cause does not quote the words: %s", lineno,
                      cause);
    }
}

START_TEST(test_reply_lines)
{
    FILE *f = fopen(MX_REPLY_LINES, "r");
    ck_assert_msg(f != NULL, "cannot open %s", MX_REPLY_LINES);
    char line[2048];
    int lineno = 0, rows = 0, disagree = 0, other = 0;
    bool seen[sizeof(required) / sizeof(required[0])] = { false };
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *fld[5];
        ck_assert_msg(split(line, fld, 5) == 5, "line %d: 5 tab-separated fields expected", lineno);
        ck_assert_msg(strlen(fld[4]) > 5, "line %d: no source", lineno);
        const char *step = fld[0], *reply = fld[1], *want = fld[2], *want_code = fld[3];
        rows++;
        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
            seen[i] |= !strcmp(want, required[i]);
        if (reply[0] == '-' || !strncmp(reply, "NO ", 3)) {
            /* POP3 -ERR (RFC 2449 §8, RFC 3206) and IMAP NO (RFC 5530): the words alone */
            const char *t = reply[0] == '-' ? reply + 5 : reply + 3;
            const struct mx_words_row *w = mx_words_match(mx_slice_make((const uint8_t *)t, strlen(t)));
            ck_assert_msg(w && !strcmp(mx_cause_kind_name(w->kind), want), "line %d: %s: words say %s, expected %s",
                          lineno, reply, w ? mx_cause_kind_name(w->kind) : "nothing", want);
            other++;
            continue;
        }
        disagree += strcmp(want_code, "-") != 0;
        check_smtp(step, reply, want, want_code, lineno);
    }
    fclose(f);
    ck_assert_int_ge(rows, 60);
    ck_assert_int_ge(disagree, 5);
    ck_assert_int_ge(other, 4);
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        ck_assert_msg(seen[i], "no line of kind %s", required[i]);
}
END_TEST

/* The example: the code says one thing, the words another; both said. */
START_TEST(test_puzzle)
{
    static const char t[] = "MUST COMPLETE IMAGE PUZZLE BEFORE SENDING";
    struct mx_enhanced_code e;
    ck_assert(mx_enhanced_parse(mx_slice_make((const uint8_t *)"5.2.1", 5), &e));
    struct mx_diag_reply r = {
        .step = "RCPT", .code = 521, .enhanced = &e, .text = mx_slice_make((const uint8_t *)t, strlen(t))
    };
    char cause[1024];
    struct mx_diag_verdict v;
    mx_diag_cause_kind(&r, cause, sizeof(cause), &v);
    ck_assert_str_eq(mx_cause_kind_name(v.kind), "policy");
    ck_assert_str_eq(mx_cause_kind_name(v.code_kind), "mailbox_disabled");
    ck_assert_ptr_nonnull(strstr(cause, "The code (5.2.1) says: the mailbox is disabled"));
    ck_assert_ptr_nonnull(strstr(cause, "the server's words (\"puzzle\")"));
    /* with no words, the code alone */
    r.text = mx_slice_make((const uint8_t *)"", 0);
    mx_diag_cause_kind(&r, cause, sizeof(cause), &v);
    ck_assert_str_eq(mx_cause_kind_name(v.kind), "mailbox_disabled");
    ck_assert_int_eq(v.code_kind, MX_CAUSE_NONE);
    ck_assert_ptr_nonnull(strstr(cause, "disabled"));
    /* a success has no cause */
    r.code = 250;
    mx_diag_cause_kind(&r, cause, sizeof(cause), &v);
    ck_assert_str_eq(cause, "");
    ck_assert_int_eq(v.kind, MX_CAUSE_NONE);
}
END_TEST

/* Every kind has a name, unique; out-of-range values name nothing. */
START_TEST(test_kind_names)
{
    for (int k = 1; k < MX_CAUSE_COUNT; k++) {
        const char *n = mx_cause_kind_name((enum mx_cause_kind)k);
        ck_assert_msg(n[0], "kind %d has no name", k);
        for (int j = 1; j < k; j++)
            ck_assert_str_ne(n, mx_cause_kind_name((enum mx_cause_kind)j));
    }
    ck_assert_str_eq(mx_cause_kind_name(MX_CAUSE_NONE), "");
    ck_assert_str_eq(mx_cause_kind_name(MX_CAUSE_COUNT), "");
    /* the table's phrases are lower case, and name a kind */
    for (size_t i = 0; i < mx_words_count(); i++) {
        const struct mx_words_row *w = mx_words_at(i);
        for (const char *p = w->phrase; *p; p++)
            ck_assert_msg(!(*p >= 'A' && *p <= 'Z'), "phrase %s is not lower case", w->phrase);
        ck_assert(w->kind > MX_CAUSE_NONE && w->kind < MX_CAUSE_COUNT);
    }
    ck_assert_ptr_null(mx_words_at(mx_words_count()));
}
END_TEST

/* Matching is case-insensitive, reads line breaks as spaces, leaves out
 * addresses, and reads no more than MX_WORDS_MAX bytes. */
START_TEST(test_words_bounded)
{
    static const char a[] = "Client host [192.0.2.7] BLOCKED\nUSING zen.spamhaus.org";
    const struct mx_words_row *w = mx_words_match(mx_slice_make((const uint8_t *)a, strlen(a)));
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(w->phrase, "blocked using");
    static const char b[] = "<spammer@example.org>: Sender address rejected: Access denied";
    w = mx_words_match(mx_slice_make((const uint8_t *)b, strlen(b)));
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->kind, MX_CAUSE_POLICY);
    /* hostile: long runs, an unclosed '<', NUL and high bytes */
    size_t n = 64 * 1024;
    uint8_t *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i % 7 == 0 ? 0 : i % 5 == 0 ? 0xff : 'a');
    ck_assert_ptr_null(mx_words_match(mx_slice_make(big, n)));
    memcpy(big + MX_WORDS_MAX + 10, "relay access denied", 19); /* past the bound: not read */
    ck_assert_ptr_null(mx_words_match(mx_slice_make(big, n)));
    memcpy(big + 100, "relay access denied", 19);
    ck_assert_ptr_nonnull(mx_words_match(mx_slice_make(big, n)));
    big[50] = '<';
    ck_assert_ptr_null(mx_words_match(mx_slice_make(big, n)));
    ck_assert_ptr_null(mx_words_match(mx_slice_make(NULL, 0)));
    struct mx_enhanced_code e = MX_ENHANCED_NONE;
    struct mx_diag_reply r = { .step = "RCPT", .code = 550, .enhanced = &e, .text = mx_slice_make(big, n) };
    char cause[64];                          /* a small buffer: cut, terminated */
    mx_diag_cause(&r, cause, sizeof(cause)); /* the form without the kinds */
    ck_assert_uint_lt(strlen(cause), sizeof(cause));
    char ex[64];
    mx_diag_explain(550, "RCPT", &e, mx_slice_make(big, n), ex, sizeof(ex));
    ck_assert_uint_lt(strlen(ex), sizeof(ex));
    free(big);
}
END_TEST

/* --explain for every reply code the tables know (RFC 5321 §4.2 and the
 * extensions), after every step, with every enhanced code of the registry
 * and the X.Y.0 codes: it starts "<code>: ", fills or leaves out every
 * placeholder, and never shows the registry's bare "undefined" rows. */
START_TEST(test_explain_all)
{
    static const char *const steps[] = { NULL,   "(connect)",     "EHLO",     "HELO", "MAIL", "RCPT", "DATA",
                                         "BDAT", "(end of data)", "QUIT",     "RSET", "NOOP", "VRFY", "EXPN",
                                         "AUTH", "(auth data)",   "STARTTLS", "ETRN", "LHLO", "ATRN" };
    static const char greeting[] = "mx.example.org ESMTP Postfix";
    char ex[1024], want[8];
    size_t checked = 0;
    for (size_t i = 0; i < mx_reply_count(); i++) {
        int code = mx_reply_at(i)->code;
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            for (int sub = -1; sub <= 7; sub++) {
                struct mx_enhanced_code e = MX_ENHANCED_NONE;
                if (sub >= 0) {
                    e.cls = code / 100 == 3 ? 2 : code / 100;
                    e.subject = sub;
                    e.detail = 0;
                    snprintf(e.text, sizeof(e.text), "%u.%u.0", (unsigned)e.cls % 10u, (unsigned)sub % 10u);
                }
                for (int t = 0; t < 2; t++) {
                    struct mx_slice text = t ? mx_slice_make((const uint8_t *)greeting, strlen(greeting))
                                             : mx_slice_make((const uint8_t *)"", 0);
                    mx_diag_explain(code, steps[s], &e, text, ex, sizeof(ex));
                    snprintf(want, sizeof(want), "%d: ", code);
                    ck_assert_msg(!strncmp(ex, want, strlen(want)), "explain %s", ex);
                    ck_assert_msg(!strchr(ex, '<'), "a placeholder left: %s", ex);
                    ck_assert_msg(!holds_nocase(ex, "undefined"), "registry boilerplate: %s", ex);
                    checked++;
                }
            }
        }
    }
    /* every registered enhanced code, each class */
    for (size_t i = 0; i < mx_enhanced_count(); i++) {
        for (int cls = 2; cls <= 5; cls += cls == 2 ? 2 : 1) {
            struct mx_enhanced_code e = { cls, mx_enhanced_at(i)->subject, mx_enhanced_at(i)->detail, "" };
            snprintf(e.text, sizeof(e.text), "%u.%u.%u", (unsigned)cls % 10u, (unsigned)e.subject % 1000u,
                     (unsigned)e.detail % 1000u);
            mx_diag_explain(cls * 100 + 50, "RCPT", &e, mx_slice_make((const uint8_t *)"x", 1), ex, sizeof(ex));
            ck_assert_msg(!strchr(ex, '<') && !holds_nocase(ex, "undefined"), "explain %s", ex);
        }
    }
    ck_assert_uint_gt(checked, 1000);
    /* what it means here: the command decides */
    struct mx_enhanced_code none = MX_ENHANCED_NONE;
    mx_diag_explain(220, "(connect)", &none, mx_slice_make((const uint8_t *)greeting, strlen(greeting)), ex,
                    sizeof(ex));
    ck_assert_ptr_nonnull(strstr(ex, "greeting"));
    ck_assert_ptr_nonnull(strstr(ex, "mx.example.org Service ready"));
    mx_diag_explain(250, "MAIL", &none, mx_slice_make((const uint8_t *)"Ok", 2), ex, sizeof(ex));
    ck_assert_ptr_nonnull(strstr(ex, "sender accepted"));
    mx_diag_explain(354, "DATA", &none, mx_slice_make((const uint8_t *)"End data", 8), ex, sizeof(ex));
    ck_assert_ptr_nonnull(strstr(ex, "send the message now"));
    mx_diag_explain(221, "QUIT", &none, mx_slice_make((const uint8_t *)"Bye", 3), ex, sizeof(ex));
    ck_assert_ptr_nonnull(strstr(ex, "closes the connection"));
    ck_assert_ptr_nonnull(strstr(ex, "\"Service closing")); /* no name to fill: left out */
    struct mx_enhanced_code ok;
    ck_assert(mx_enhanced_parse(mx_slice_make((const uint8_t *)"2.0.0", 5), &ok));
    mx_diag_explain(250, "(end of data)", &ok, mx_slice_make((const uint8_t *)"Ok: queued", 10), ex, sizeof(ex));
    ck_assert_ptr_nonnull(strstr(ex, "message accepted"));
    ck_assert_ptr_nonnull(strstr(ex, "2.0.0: success, no further detail"));
}
END_TEST

static Suite *diagnosis_suite(void)
{
    Suite *s = suite_create("diagnosis");
    TCase *c = tcase_create("diagnosis");
    tcase_add_test(c, test_reply_lines);
    tcase_add_test(c, test_puzzle);
    tcase_add_test(c, test_kind_names);
    tcase_add_test(c, test_words_bounded);
    tcase_add_test(c, test_explain_all);
    suite_add_tcase(s, c);
    return s;
}

MX_CHECK_MAIN(diagnosis_suite)
