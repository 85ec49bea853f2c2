/* test_codes.c - Check suite for the SMTP code tables (dissectors/smtp/codes.c and the CSVs they are generated from). */
#include "dissectors/smtp/codes.h"
#include "check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CSV files the tables come from: argv[1] and argv[2], else the paths
 * the build gives (tests/CMakeLists.txt), else the source-tree paths from the
 * repository root. */
#ifndef MX_ENHANCED_CSV
#define MX_ENHANCED_CSV "dissectors/smtp/smtp-enhanced-status-codes.csv"
#endif
#ifndef MX_REPLY_CSV
#define MX_REPLY_CSV "dissectors/smtp/smtp-reply-codes.csv"
#endif
static const char *enhanced_csv = MX_ENHANCED_CSV;
static const char *reply_csv = MX_REPLY_CSV;

/* The revision of the IANA registry that the CSV reproduces (2024-12-06) has
 * 81 enumerated codes, X.0.0 to X.7.30. Update with the CSV. */
#define REGISTRY_ENUMERATED 81

/* ---- A small RFC 4180 reader for the CSV files ---- */

#define MAX_FIELDS 8

struct csv {
    char *buf;     /* the whole file, NUL-terminated */
    const char *p; /* next byte to read */
};

static void csv_open(struct csv *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;

    ck_assert_msg(f != NULL, "cannot open %s (give the CSV paths as arguments)", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    c->buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(c->buf);
    ck_assert_uint_eq(fread(c->buf, 1, (size_t)n, f), (size_t)n);
    c->buf[n] = '\0';
    c->p = c->buf;
    fclose(f);
}

/* Appends byte b to the field being built, folding whitespace the way the
 * generator does: runs of SP, HT, CR, LF become one space; none at the ends. */
static void fold_put(char *out, size_t *n, bool *space, char b)
{
    if (b == ' ' || b == '\t' || b == '\r' || b == '\n') {
        *space = *n > 0;
        return;
    }
    if (*space)
        out[(*n)++] = ' ';
    *space = false;
    out[(*n)++] = b;
}

/* Reads the next record into f[] (heap strings the caller frees with
 * fields_free), skipping '#' comment lines and blank lines between records.
 * Returns the number of fields, 0 at the end of the file. */
static size_t csv_next(struct csv *c, char *f[MAX_FIELDS])
{
    size_t nf = 0;

    while (*c->p == '\n' || *c->p == '\r' || *c->p == '#') {
        if (*c->p == '#') {
            const char *nl = strchr(c->p, '\n');

            c->p = nl != NULL ? nl : c->p + strlen(c->p);
        } else {
            c->p++;
        }
    }
    if (*c->p == '\0')
        return 0;
    for (;;) {
        char *out = malloc(strlen(c->p) + 1);
        size_t n = 0;
        bool space = false;

        ck_assert_ptr_nonnull(out);
        ck_assert_uint_lt(nf, MAX_FIELDS);
        if (*c->p == '"') {
            for (c->p++;; c->p++) {
                ck_assert_msg(*c->p != '\0', "unterminated quoted field");
                if (*c->p == '"' && c->p[1] == '"') {
                    fold_put(out, &n, &space, '"');
                    c->p++;
                } else if (*c->p == '"') {
                    c->p++;
                    break;
                } else {
                    fold_put(out, &n, &space, *c->p);
                }
            }
        } else {
            for (; *c->p != ',' && *c->p != '\n' && *c->p != '\r' && *c->p != '\0'; c->p++)
                fold_put(out, &n, &space, *c->p);
        }
        out[n] = '\0';
        f[nf++] = out;
        if (*c->p != ',')
            break;
        c->p++;
    }
    if (*c->p == '\r')
        c->p++;
    if (*c->p == '\n')
        c->p++;
    return nf;
}

static void fields_free(char *f[MAX_FIELDS], size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i]);
}

/* A slice over a string literal (no strlen on the bytes under test). */
#define SL(lit) mx_slice_make((lit), sizeof(lit) - 1)

/* Parses the first n bytes of s from a heap block of exactly n bytes, so that
 * ASan catches any read past the end. */
static bool parse_n(const char *s, size_t n, struct mx_enhanced_code *out)
{
    char *c = malloc(n > 0 ? n : 1);
    bool r;

    ck_assert_ptr_nonnull(c);
    memcpy(c, s, n);
    r = mx_enhanced_parse(mx_slice_make(c, n), out);
    free(c);
    return r;
}

static size_t scan_n(const char *s, size_t n, struct mx_enhanced_code *out)
{
    char *c = malloc(n > 0 ? n : 1);
    size_t r;

    ck_assert_ptr_nonnull(c);
    memcpy(c, s, n);
    r = mx_enhanced_scan(mx_slice_make(c, n), out);
    free(c);
    return r;
}

#define PARSE(lit, out) parse_n((lit), sizeof(lit) - 1, (out))
#define SCAN(lit, out) scan_n((lit), sizeof(lit) - 1, (out))

/* ---- The tables agree with the CSV files, row for row ---- */

/* A class or subject row of the CSV against the table's row. */
static void check_part(const struct mx_enhanced_part *p, char *f[MAX_FIELDS])
{
    ck_assert_msg(p != NULL, "%s is in the CSV but not in the table", f[0]);
    ck_assert_str_eq(p->code, f[0]);
    ck_assert_str_eq(p->summary, f[1]);
    ck_assert_str_eq(p->description, f[2]);
    ck_assert_str_eq(p->reference, f[3]);
    ck_assert_str_eq(p->submitter, f[4]);
    ck_assert_str_eq(p->change_controller, f[5]);
}

START_TEST(test_enhanced_csv_rows)
{
    struct csv c;
    char *f[MAX_FIELDS];
    size_t nf, classes = 0, subjects = 0, enumerated = 0, header_fields = 0;

    csv_open(&c, enhanced_csv);
    while ((nf = csv_next(&c, f)) > 0) {
        if (strcmp(f[0], "Code") == 0) {
            /* IANA's header rows: 6 columns for classes and subjects, 7 for codes. */
            ck_assert(nf == 6 || nf == 7);
            ck_assert_str_eq(f[nf - 1], "Change Controller");
            header_fields = nf;
        } else if (f[0][0] >= '2' && f[0][0] <= '5') {
            ck_assert_uint_eq(nf, 6);
            ck_assert_uint_eq(header_fields, 6);
            check_part(mx_enhanced_class(f[0][0] - '0'), f);
            classes++;
        } else if (strlen(f[0]) == 7 && strcmp(f[0] + 3, ".YYY") == 0) {
            ck_assert_uint_eq(nf, 6);
            ck_assert_uint_eq(header_fields, 6);
            check_part(mx_enhanced_subject(f[0][2] - '0'), f);
            subjects++;
        } else {
            /* "X.s.d": parse it as the class-5 code 5.s.d. */
            char buf[16];
            struct mx_enhanced_code code;
            const struct mx_enhanced_info *e;
            int len = snprintf(buf, sizeof buf, "5%s", f[0] + 1);

            ck_assert_uint_eq(nf, 7);
            ck_assert_uint_eq(header_fields, 7);
            ck_assert_msg(f[0][0] == 'X' && len > 0 && (size_t)len < sizeof buf &&
                              mx_enhanced_parse(mx_slice_make(buf, (size_t)len), &code),
                          "bad code %s in the CSV", f[0]);
            e = mx_enhanced_lookup(code.subject, code.detail);
            ck_assert_msg(e != NULL, "%s is in the CSV but not in the table", f[0]);
            ck_assert_str_eq(e->code, f[0]);
            ck_assert_str_eq(e->sample, f[1]);
            ck_assert_str_eq(e->basic, f[2]);
            ck_assert_str_eq(e->description, f[3]);
            ck_assert_str_eq(e->reference, f[4]);
            ck_assert_str_eq(e->submitter, f[5]);
            ck_assert_str_eq(e->change_controller, f[6]);
            enumerated++;
        }
        fields_free(f, nf);
    }
    free(c.buf);
    ck_assert_uint_eq(enumerated, mx_enhanced_count());
    ck_assert_uint_eq(classes, mx_enhanced_class_count());
    ck_assert_uint_eq(subjects, mx_enhanced_subject_count());
    ck_assert_uint_eq(enumerated, REGISTRY_ENUMERATED);
    ck_assert_uint_eq(classes, 3);
    ck_assert_uint_eq(subjects, 8);
}
END_TEST

START_TEST(test_reply_csv_rows)
{
    struct csv c;
    char *f[MAX_FIELDS];
    size_t nf, rows = 0;
    bool header = true;

    csv_open(&c, reply_csv);
    while ((nf = csv_next(&c, f)) > 0) {
        const struct mx_reply_info *r = NULL;
        size_t n;
        bool found = false;

        ck_assert_uint_eq(nf, 4);
        if (header) {
            ck_assert_str_eq(f[0], "Code");
            header = false;
            fields_free(f, nf);
            continue;
        }
        n = mx_reply_meanings(atoi(f[0]), &r);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(r[i].command, f[1]) == 0 && strcmp(r[i].text, f[2]) == 0) {
                ck_assert_str_eq(r[i].reference, f[3]);
                found = true;
            }
        }
        ck_assert_msg(found, "%s %s is in the CSV but not in the table", f[0], f[1]);
        rows++;
        fields_free(f, nf);
    }
    free(c.buf);
    ck_assert_uint_eq(rows, mx_reply_count());
}
END_TEST

/* Every row is found by binary search, and the table is strictly sorted. */
START_TEST(test_tables_sorted)
{
    const struct mx_enhanced_info *prev = NULL;

    for (size_t i = 0; i < mx_enhanced_count(); i++) {
        const struct mx_enhanced_info *e = mx_enhanced_at(i);
        char buf[16];

        ck_assert_ptr_nonnull(e);
        ck_assert_ptr_eq(mx_enhanced_lookup(e->subject, e->detail), e);
        snprintf(buf, sizeof buf, "X.%d.%d", e->subject, e->detail);
        ck_assert_str_eq(e->code, buf);
        if (prev != NULL)
            ck_assert(prev->subject < e->subject || (prev->subject == e->subject && prev->detail < e->detail));
        prev = e;
    }
    ck_assert_ptr_null(mx_enhanced_at(mx_enhanced_count()));
    for (size_t i = 1; i < mx_reply_count(); i++)
        ck_assert_int_le(mx_reply_at(i - 1)->code, mx_reply_at(i)->code);
    ck_assert_ptr_null(mx_reply_at(mx_reply_count()));
    for (size_t i = 0; i < mx_reply_count(); i++) {
        const struct mx_reply_info *r = mx_reply_at(i);

        ck_assert(r->code >= 200 && r->code <= 599);
        ck_assert_ptr_nonnull(mx_reply_lookup(r->code, r->command));
    }
}
END_TEST

/* ---- Known codes ---- */

static void expect_enhanced(int subject, int detail, const char *sample)
{
    const struct mx_enhanced_info *e = mx_enhanced_lookup(subject, detail);

    ck_assert_msg(e != NULL, "X.%d.%d missing", subject, detail);
    ck_assert_str_eq(e->sample, sample);
}

START_TEST(test_enhanced_known)
{
    const struct mx_enhanced_info *e;

    expect_enhanced(0, 0, "Other undefined Status");
    expect_enhanced(1, 1, "Bad destination mailbox address");
    expect_enhanced(1, 10, "Recipient address has null MX");
    expect_enhanced(2, 2, "Mailbox full");
    expect_enhanced(3, 4, "Message too big for system");
    expect_enhanced(4, 7, "Delivery time expired");
    expect_enhanced(5, 6, "Authentication Exchange line is too long");
    expect_enhanced(7, 1, "Delivery not authorized, message refused");
    expect_enhanced(7, 8, "Authentication credentials invalid");
    expect_enhanced(7, 23, "SPF validation failed");
    expect_enhanced(7, 26, "Multiple authentication checks failed");
    expect_enhanced(7, 29, "ARC validation failure");
    expect_enhanced(7, 30, "REQUIRETLS support required");

    /* The registry's text, line breaks and doubled spaces folded. */
    e = mx_enhanced_lookup(1, 1);
    ck_assert_str_eq(e->code, "X.1.1");
    ck_assert_str_eq(e->basic, "451, 550");
    ck_assert_str_eq(e->description, "The mailbox specified in the address does not exist. For Internet mail names, "
                                     "this means the address portion to the left of the \"@\" sign is invalid. "
                                     "This code is only useful for permanent failures.");
    ck_assert_str_eq(e->reference, "[RFC3463] (Standards Track)");
    ck_assert_str_eq(e->submitter, "G. Vaudreuil");
    ck_assert_str_eq(e->change_controller, "IESG");

    e = mx_enhanced_lookup(7, 8);
    ck_assert_str_eq(e->basic, "535, 554");
    ck_assert_str_eq(e->reference, "[RFC4954] (Standards Track)");

    /* Multi-line sample text (RFC 6531) and the deprecated duplicate X.6.10. */
    expect_enhanced(6, 8, "UTF-8 string reply is required, but not permitted by the SMTP client");
    e = mx_enhanced_lookup(6, 10);
    ck_assert_str_eq(e->sample, "");
    ck_assert_str_eq(e->description, "This is a duplicate of X.6.8 and is thus deprecated.");

    e = mx_enhanced_lookup(7, 28);
    ck_assert_str_eq(e->sample, "Mail flood detected");
    ck_assert(strstr(e->description, "mail flood") != NULL);
}
END_TEST

START_TEST(test_classes_subjects)
{
    ck_assert_str_eq(mx_enhanced_class_text(2), "Success");
    ck_assert_str_eq(mx_enhanced_class_text(4), "Persistent Transient Failure");
    ck_assert_str_eq(mx_enhanced_class_text(5), "Permanent Failure");
    ck_assert_str_eq(mx_enhanced_class(5)->code, "5.XXX.YYY");
    ck_assert(strncmp(mx_enhanced_class(4)->description, "A persistent transient failure", 30) == 0);

    ck_assert_str_eq(mx_enhanced_subject_text(0), "Other or Undefined Status");
    ck_assert_str_eq(mx_enhanced_subject_text(1), "Addressing Status");
    ck_assert_str_eq(mx_enhanced_subject_text(2), "Mailbox Status");
    ck_assert_str_eq(mx_enhanced_subject_text(3), "Mail System Status");
    ck_assert_str_eq(mx_enhanced_subject_text(4), "Network and Routing Status");
    ck_assert_str_eq(mx_enhanced_subject_text(5), "Mail Delivery Protocol Status");
    ck_assert_str_eq(mx_enhanced_subject_text(6), "Message Content or Media Status");
    ck_assert_str_eq(mx_enhanced_subject_text(7), "Security or Policy Status");
    ck_assert_str_eq(mx_enhanced_subject(7)->code, "X.7.YYY");
}
END_TEST

START_TEST(test_reply_known)
{
    const struct mx_reply_info *r = NULL;

    ck_assert_str_eq(mx_reply_code_text(250), "Requested mail action okay, completed");
    ck_assert_str_eq(mx_reply_code_text(354), "Start mail input; end with <CRLF>.<CRLF>");
    ck_assert_str_eq(mx_reply_code_text(421),
                     "<domain> Service not available, closing transmission channel (This may be a "
                     "reply to any command if the service knows it must shut down)");
    ck_assert_str_eq(mx_reply_code_text(450),
                     "Requested mail action not taken: mailbox unavailable (e.g., mailbox busy or "
                     "temporarily blocked for policy reasons)");
    ck_assert_str_eq(mx_reply_code_text(550),
                     "Requested action not taken: mailbox unavailable (e.g., mailbox not found, no "
                     "access, or command rejected for policy reasons)");
    ck_assert_str_eq(mx_reply_code_text(552), "Requested mail action aborted: exceeded storage allocation");
    ck_assert_str_eq(mx_reply_code_text(554), "Transaction failed (Or, in the case of a connection-opening response, "
                                              "\"No SMTP service here\")");
    ck_assert_str_eq(mx_reply_code_text(535), "Authentication credentials invalid");
    ck_assert_ptr_nonnull(mx_reply_code_text(334));
    ck_assert_str_eq(mx_reply_code_text(521), "Host does not accept mail");
    ck_assert_str_eq(mx_reply_code_text(556), "Domain does not accept mail");
    ck_assert_str_eq(mx_reply_code_text(555), "MAIL FROM/RCPT TO parameters not recognized or not implemented");
    ck_assert_str_eq(mx_reply_lookup(250, NULL)->reference, "RFC 5321, Section 4.2.3");

    /* Meanings that depend on the command replied to. */
    ck_assert_str_eq(mx_reply_lookup(454, "STARTTLS")->text, "TLS not available due to temporary reason");
    ck_assert_str_eq(mx_reply_lookup(454, "auth")->text, "Temporary authentication failure");
    ck_assert_str_eq(mx_reply_lookup(552, "MAIL")->reference, "RFC 1870, Section 6.1");
    ck_assert_str_eq(mx_reply_lookup(552, "RCPT")->text, mx_reply_code_text(552));
    ck_assert_str_eq(mx_reply_lookup(250, "")->text, mx_reply_code_text(250));
    ck_assert_str_eq(mx_reply_lookup(500, "AUTH")->text, "Authentication Exchange line is too long");
    ck_assert_str_eq(mx_reply_lookup(500, "DATA")->command, "");

    /* 530 has two general meanings (RFC 4954, RFC 3207); the first is the default. */
    ck_assert_uint_eq(mx_reply_meanings(530, &r), 2);
    ck_assert_str_eq(r[0].text, "Authentication required");
    ck_assert_str_eq(r[1].text, "Must issue a STARTTLS command first");
    ck_assert_str_eq(mx_reply_code_text(530), "Authentication required");
}
END_TEST

START_TEST(test_unknown)
{
    const struct mx_reply_info *r = &(struct mx_reply_info){ 0 };

    ck_assert_ptr_null(mx_enhanced_lookup(0, 1));
    ck_assert_ptr_null(mx_enhanced_lookup(1, 99));
    ck_assert_ptr_null(mx_enhanced_lookup(7, 31));
    ck_assert_ptr_null(mx_enhanced_lookup(7, 999));
    ck_assert_ptr_null(mx_enhanced_lookup(8, 0));
    ck_assert_ptr_null(mx_enhanced_lookup(-1, 0));
    ck_assert_ptr_null(mx_enhanced_lookup(0, -1));
    ck_assert_ptr_null(mx_enhanced_class_text(0));
    ck_assert_ptr_null(mx_enhanced_class_text(3));
    ck_assert_ptr_null(mx_enhanced_class_text(6));
    ck_assert_ptr_null(mx_enhanced_class(-5));
    ck_assert_ptr_null(mx_enhanced_subject_text(8));
    ck_assert_ptr_null(mx_enhanced_subject_text(-1));

    ck_assert_ptr_null(mx_reply_code_text(0));
    ck_assert_ptr_null(mx_reply_code_text(-1));
    ck_assert_ptr_null(mx_reply_code_text(100));
    ck_assert_ptr_null(mx_reply_code_text(299));
    ck_assert_ptr_null(mx_reply_code_text(599));
    ck_assert_ptr_null(mx_reply_code_text(999));
    ck_assert_ptr_null(mx_reply_lookup(299, "AUTH"));
    ck_assert_uint_eq(mx_reply_meanings(600, &r), 0);
    ck_assert_ptr_null(r);
}
END_TEST

/* ---- Parsing "5.7.1" (RFC 3463 §2) ---- */

START_TEST(test_parse)
{
    struct mx_enhanced_code c = { 0 };
    const struct mx_enhanced_code untouched = { 9, 9, 9, "9.9.9" };

    ck_assert(PARSE("5.7.1", &c));
    ck_assert_int_eq(c.cls, 5);
    ck_assert_int_eq(c.subject, 7);
    ck_assert_int_eq(c.detail, 1);
    ck_assert_str_eq(c.text, "5.7.1");
    ck_assert(PARSE("5.01.001", &c) && c.subject == 1 && c.detail == 1);
    ck_assert_str_eq(c.text, "5.01.001"); /* as the reply wrote it */
    ck_assert(PARSE("2.0.0", &c) && c.cls == 2 && c.subject == 0 && c.detail == 0);
    ck_assert(PARSE("4.4.7", &c) && c.cls == 4 && c.subject == 4 && c.detail == 7);
    ck_assert(PARSE("5.1.10", &c) && c.subject == 1 && c.detail == 10);
    ck_assert(PARSE("4.7.650", &c) && c.detail == 650);
    ck_assert(PARSE("5.123.999", &c) && c.subject == 123 && c.detail == 999);

    c = untouched;
    ck_assert(!PARSE("", &c));
    ck_assert(!PARSE("5", &c));
    ck_assert(!PARSE("5.", &c));
    ck_assert(!PARSE("5.7", &c));
    ck_assert(!PARSE("5.7.", &c));
    ck_assert(!PARSE("5..1", &c));
    ck_assert(!PARSE(".7.1", &c));
    ck_assert(!PARSE("3.7.1", &c));
    ck_assert(!PARSE("X.7.1", &c));
    ck_assert(!PARSE("55.7.1", &c));
    ck_assert(!PARSE("5.7.1000", &c));
    ck_assert(!PARSE("5.1000.1", &c));
    ck_assert(!PARSE("5.7.1.", &c));
    ck_assert(!PARSE("5.7.1.2", &c));
    ck_assert(!PARSE("5.7.1 ", &c));
    ck_assert(!PARSE("5.7.a", &c));
    ck_assert(!PARSE("550 5.7.1", &c));
    ck_assert(memcmp(&c, &untouched, sizeof c) == 0);

    /* Scanning reply text: the code, then SP and the text (RFC 2034 §4). */
    ck_assert_uint_eq(SCAN("5.7.1 Relaying denied", &c), 5);
    ck_assert_int_eq(c.detail, 1);
    ck_assert_uint_eq(SCAN("4.2.2", &c), 5);
    ck_assert_uint_eq(SCAN("5.1.10 No such user", &c), 6);
    ck_assert_uint_eq(SCAN("5.7.1234 x", &c), 0);
    ck_assert_uint_eq(SCAN("5.7.1.1 x", &c), 0);
    ck_assert_uint_eq(SCAN("Relaying denied", &c), 0);
    ck_assert_uint_eq(mx_enhanced_scan(SL("5.7.26-"), &c), 6);
}
END_TEST

/* Every prefix of a code, on exact-size heap copies: never a read past the end. */
START_TEST(test_parse_prefixes)
{
    static const char s[] = "5.123.456 text";
    struct mx_enhanced_code c;

    for (size_t n = 0; n <= sizeof s - 1; n++) {
        size_t got = scan_n(s, n, &c);

        ck_assert_uint_eq(got, n >= 9 ? 9 : (n >= 7 ? n : 0));
        ck_assert(parse_n(s, n, &c) == (n >= 7 && n <= 9));
    }
}
END_TEST

static Suite *codes_suite(void)
{
    Suite *s = suite_create("codes");
    TCase *csv = tcase_create("csv");
    TCase *look = tcase_create("lookup");
    TCase *parse = tcase_create("parse");

    tcase_add_test(csv, test_enhanced_csv_rows);
    tcase_add_test(csv, test_reply_csv_rows);
    tcase_add_test(csv, test_tables_sorted);
    suite_add_tcase(s, csv);

    tcase_add_test(look, test_enhanced_known);
    tcase_add_test(look, test_classes_subjects);
    tcase_add_test(look, test_reply_known);
    tcase_add_test(look, test_unknown);
    suite_add_tcase(s, look);

    tcase_add_test(parse, test_parse);
    tcase_add_test(parse, test_parse_prefixes);
    suite_add_tcase(s, parse);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        enhanced_csv = argv[1];
    if (argc > 2)
        reply_csv = argv[2];
    return mx_check_run(codes_suite());
}
