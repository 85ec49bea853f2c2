/* test_event.c - events and reporters: field order, UTF-8 safety, escaping in the timeline. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "output/report.h"
#include "event/text.h"
#include "check_main.h"

START_TEST(utf8_sanitize)
{
    char out[64];
    struct {
        const char *in;
        const char *want;
    } cases[] = {
        { "plain", "plain" },
        { "caf\xc3\xa9", "caf\xc3\xa9" },               /* valid 2-byte */
        { "\xe2\x82\xac", "\xe2\x82\xac" },             /* valid 3-byte */
        { "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" },     /* valid 4-byte */
        { "\xc0\xaf", "\\xc0\\xaf" },                   /* overlong */
        { "\xed\xa0\x80", "\\xed\\xa0\\x80" },          /* surrogate */
        { "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" }, /* above U+10FFFF */
        { "\xe2\x82", "\\xe2\\x82" },                   /* cut short */
        { "a\xff"
          "b",
          "a\\xffb" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = mx_utf8_sanitize(mx_slice_make(cases[i].in, strlen(cases[i].in)), out, sizeof(out));
        ck_assert_msg(n == strlen(cases[i].want) && !memcmp(out, cases[i].want, n), "case %zu", i);
    }
    /* Never writes past cap. */
    ck_assert_uint_le(mx_utf8_sanitize(mx_slice_make("\xff\xff\xff", 3), out, 5), 5);
}
END_TEST

/* The one escaping rule of every view (mx_escape_char): invalid UTF-8, C0,
 * DEL, C1 and the bidi controls of Unicode TR#9 escaped; everything else,
 * including characters beside the bidi ranges, as it is. */
START_TEST(escape_rule)
{
    struct {
        const char *in;
        const char *want;
    } cases[] = {
        { "plain caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "plain caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
        { "\x1b[31m\x7f\t", "\\x1b[31m\\x7f\\x09" },
        { "a\xff"
          "b\xe2\x82",
          "a\\xffb\\xe2\\x82" },                                  /* invalid, cut short */
        { "\xc2\x80\xc2\x9f\xc2\xa0", "\\u0080\\u009f\xc2\xa0" }, /* C1; NBSP kept */
        { "\xd8\x9c\xe2\x80\x8e\xe2\x80\x8f", "\\u061c\\u200e\\u200f" },
        { "\xe2\x80\xaa\xe2\x80\xae\xe2\x81\xa6\xe2\x81\xa9", "\\u202a\\u202e\\u2066\\u2069" },
        { "\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa\xd8\x9b", /* ZWJ, U+202F, U+2065, U+206A, U+061B */
          "\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa\xd8\x9b" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        mx_fput_escaped(fp, mx_slice_make(cases[i].in, strlen(cases[i].in)));
        fclose(fp);
        ck_assert_msg(!strcmp(buf, cases[i].want), "case %zu: %s", i, buf);
        free(buf);
        char out[256];
        ck_assert_uint_eq(mx_text_escape(cases[i].in, out, sizeof(out)), strlen(cases[i].want));
        ck_assert_str_eq(out, cases[i].want);
    }
    /* Cut at a character boundary, never inside an escape, always a C string. */
    char small[8];
    ck_assert_uint_eq(mx_text_escape("ab\x1b\x1b", small, sizeof(small)), 6);
    ck_assert_str_eq(small, "ab\\x1b");
    ck_assert_uint_eq(mx_text_escape("\xe2\x80\xae", small, 6), 0);
    ck_assert_str_eq(small, "");
}
END_TEST

static char *run_json(void (*build)(struct mx_sink *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    struct mx_sink *s = mx_sink_new();
    ck_assert(mx_report_json_add(s, fp, false));
    build(s);
    ck_assert(mx_sink_finish(s));
    mx_sink_free(s);
    fclose(fp);
    return buf;
}

static void build_nested(struct mx_sink *s)
{
    struct mx_event *e = mx_event_begin(s, "t", 7, (mx_time_t)1700000000 * MX_NS_PER_SEC + 123456789);
    mx_ev_dir(e, MX_DIR_S2C);
    mx_ev_uint(e, "z", 1);
    mx_ev_int(e, "a", -2);
    mx_ev_obj(e, "o");
    mx_ev_bool(e, "b", true);
    mx_ev_arr(e, "l");
    mx_ev_str(e, NULL, "x");
    mx_ev_null(e, NULL);
    mx_ev_end(e);
    mx_ev_end(e);
    mx_ev_double(e, "d", 0.5);
    mx_ev_wire(e, "w", mx_slice_make("\x01\xff", 2));
    mx_event_emit(s, e);
}

START_TEST(json_order_and_nesting)
{
    char *out = run_json(build_nested);
    ck_assert_str_eq(out, "{\"type\":\"t\",\"flow\":7,\"ts\":\"2023-11-14T22:13:20.123456Z\",\"dir\":\"s2c\","
                          "\"z\":1,\"a\":-2,\"o\":{\"b\":true,\"l\":[\"x\",null]},\"d\":0.500000,"
                          "\"w\":\"\\u0001\\\\xff\"}\n");
    free(out);
}
END_TEST

static void build_frames(struct mx_sink *s)
{
    struct mx_event *e = mx_event_begin(s, "f", 0, MX_TIME_NONE);
    mx_ev_frames(e, 5, 5);
    mx_event_emit(s, e);
    e = mx_event_begin(s, "f", 0, MX_TIME_NONE);
    mx_ev_frames(e, 5, 9);
    mx_ev_obj(e, "left_open"); /* emit closes what is open */
    mx_event_emit(s, e);
}

START_TEST(frames_and_auto_close)
{
    char *out = run_json(build_frames);
    ck_assert_str_eq(out, "{\"type\":\"f\",\"frames\":[5]}\n{\"type\":\"f\",\"frames\":[5,9],\"left_open\":{}}\n");
    free(out);
}
END_TEST

/* Cutting valid UTF-8 never leaves half a character (RFC 3629). */
START_TEST(utf8_cut_at_boundaries)
{
    const uint8_t s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\x8e"; /* a, e-acute, euro sign, paperclip */
    const size_t want[] = { 0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10 };
    for (size_t n = 0; n <= 10; n++)
        ck_assert_uint_eq(mx_utf8_cut(s, n), want[n]);
}
END_TEST

START_TEST(text_escapes_terminal_controls)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    struct mx_sink *s = mx_sink_new();
    ck_assert(mx_report_text_add(s, fp, false, false, 0));
    mx_sink_set_epoch(s, 1000);
    struct mx_event *e = mx_event_begin(s, "x", 3, 1000 + 1500000000);
    mx_ev_dir(e, MX_DIR_C2S);
    /* A banner that tries to set the terminal title, plus a C1 CSI. */
    mx_ev_text(e, "220 %s",
               "\x1b]0;owned\x07 \xc2\x9b"
               "31m\xff");
    mx_event_emit(s, e);
    e = mx_event_begin(s, "y", 0, MX_TIME_NONE);
    mx_ev_wire(e, "k", mx_slice_make("a\nb", 3));
    mx_event_emit(s, e);
    mx_sink_finish(s);
    mx_sink_free(s);
    fclose(fp);
    ck_assert_str_eq(buf, "    1.500000 #3     C->S 220 \\x1b]0;owned\\x07 \\u009b31m\\xff\n"
                          "                         y k=a\\x0ab\n");
    free(buf);
}
END_TEST

/* A line of flow `flow` at `secs` past the epoch, from frame f (0: none), with text t. */
static void line_in(struct mx_sink *s, const char *type, uint64_t flow, int secs, mx_frame_t f, const char *t)
{
    struct mx_event *e = mx_event_begin(s, type, flow, (mx_time_t)secs * 1000000000);
    mx_ev_frames(e, f, f);
    mx_ev_text(e, "%s", t);
    mx_event_emit(s, e);
}

static void line_at(struct mx_sink *s, const char *type, uint64_t flow, int secs, const char *t)
{
    line_in(s, type, flow, secs, 0, t);
}

/* The timeline is in time order within a session (docs/manual.md, "Time
 * order"): stable for equal times, a message after the lines of its time
 * that begin in its first frame, a session's lines written when its "flow" record comes, lines of no
 * session at once. */
START_TEST(text_time_order)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    struct mx_sink *s = mx_sink_new();
    ck_assert(mx_report_text_add(s, fp, false, false, 0));
    mx_sink_set_epoch(s, 0);
    line_in(s, "message", 1, 2, 5, "message");   /* stamped at its first byte */
    line_in(s, "pop3.response", 1, 2, 5, "+OK"); /* which started it, in the same frame */
    line_in(s, "x", 1, 2, 6, "same time, a later frame");
    line_at(s, "gap", 1, 4, "gap"); /* after the anomaly */
    line_at(s, "anomaly", 1, 3, "anomaly");
    line_at(s, "anomaly", 0, 9, "no session"); /* at once */
    line_at(s, "tls", 1, 6, "tls");
    line_at(s, "pop3.session", 1, 5, "session"); /* its cleartext ended first */
    line_at(s, "pop3.command", 1, 6, "same time as tls, after it");
    line_at(s, "flow", 1, 7, "closed");
    mx_sink_finish(s);
    mx_sink_free(s);
    fclose(fp);
    ck_assert_str_eq(buf, "    9.000000             no session\n"
                          "    2.000000 #1          +OK\n"
                          "    2.000000 #1          message\n"
                          "    2.000000 #1          same time, a later frame\n"
                          "    3.000000 #1          anomaly\n"
                          "    4.000000 #1          gap\n"
                          "    5.000000 #1          session\n"
                          "    6.000000 #1          tls\n"
                          "    6.000000 #1          same time as tls, after it\n"
                          "    7.000000 #1          closed\n");
    free(buf);
}
END_TEST

/* Past the lines a session may hold, the earliest are written early, a line
 * says so, and a line that then steps back is counted at the end. */
START_TEST(text_time_order_cap)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    struct mx_sink *s = mx_sink_new();
    ck_assert(mx_report_text_add(s, fp, false, false, 0));
    mx_sink_set_epoch(s, 0);
    for (int i = 0; i < 4097; i++)
        line_at(s, "x", 2, 10 + i, "x");
    line_at(s, "late", 2, 1, "late");
    line_at(s, "flow", 2, 5000, "closed");
    mx_sink_finish(s);
    mx_sink_free(s);
    fclose(fp);
    ck_assert_ptr_nonnull(strstr(buf, "#2          timeline: more than 4096 lines held"));
    /* half the lines went early (10 to 2057), the late one steps back */
    ck_assert_ptr_nonnull(strstr(buf, " 2057.000000 #2          x\n    1.000000 #2          late\n"));
    ck_assert_ptr_nonnull(strstr(buf, "timeline: 1 line written out of time order"));
    free(buf);
}
END_TEST

/* With a hold (live capture), a session's lines wait until the capture clock
 * is that far past them, not for its end. */
START_TEST(text_time_order_hold)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    struct mx_sink *s = mx_sink_new();
    ck_assert(mx_report_text_add(s, fp, false, false, 5));
    mx_sink_set_epoch(s, 0);
    line_at(s, "x", 1, 1, "one");
    line_at(s, "x", 2, 3, "two");
    fflush(fp);
    ck_assert_uint_eq(len, 0);
    line_at(s, "x", 2, 7, "clock past one");
    fflush(fp);
    ck_assert_str_eq(buf, "    1.000000 #1          one\n");
    mx_sink_finish(s);
    mx_sink_free(s);
    fclose(fp);
    free(buf);
}
END_TEST

/* Every byte a string may hold is written as json-c writes it (the golden
 * files were made with json-c), and a record far larger than the writer's
 * buffer comes out whole, as one line. */
static void build_escapes_and_big(struct mx_sink *s)
{
    char all[128 + 3];
    for (int c = 0; c < 128; c++)
        all[c] = (char)c;
    memcpy(all + 128, "\xc3\xa9/", 3);
    struct mx_event *e = mx_event_begin(s, "esc", 0, MX_TIME_NONE);
    mx_ev_wire(e, "s", mx_slice_make(all, sizeof(all)));
    mx_event_emit(s, e);
    e = mx_event_begin(s, "big", 0, MX_TIME_NONE);
    mx_ev_arr(e, "a");
    for (int i = 0; i < 20000; i++) {
        mx_ev_obj(e, NULL);
        mx_ev_uint(e, "i", (uint64_t)i);
        mx_ev_str(e, "q", "\"quoted\" text");
        mx_ev_end(e);
    }
    mx_ev_end(e);
    static char long_str[200000];
    memset(long_str, 'L', sizeof(long_str));
    mx_ev_wire(e, "long", mx_slice_make(long_str, sizeof(long_str)));
    mx_event_emit(s, e);
}

START_TEST(json_matches_json_c)
{
    char *out = run_json(build_escapes_and_big);
    char *nl = strchr(out, '\n');
    ck_assert_ptr_nonnull(nl);
    /* the same string through json-c */
    char all[128 + 3];
    for (int c = 0; c < 128; c++)
        all[c] = (char)c;
    memcpy(all + 128, "\xc3\xa9/", 3);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("esc"));
    json_object_object_add(o, "s", json_object_new_string_len(all, (int)sizeof(all)));
    const char *want = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    ck_assert_uint_eq((size_t)(nl - out), strlen(want));
    ck_assert_int_eq(memcmp(out, want, strlen(want)), 0);
    json_object_put(o);
    /* the big record: one line of valid JSON with everything in it */
    char *big = nl + 1;
    char *end = strchr(big, '\n');
    ck_assert_ptr_nonnull(end);
    ck_assert_str_eq(end + 1, "");
    json_tokener *tok = json_tokener_new();
    json_object *b = json_tokener_parse_ex(tok, big, (int)(end - big));
    ck_assert_int_eq(json_tokener_get_error(tok), json_tokener_success);
    json_object *a, *last, *q, *l;
    ck_assert(json_object_object_get_ex(b, "a", &a));
    ck_assert_uint_eq(json_object_array_length(a), 20000);
    last = json_object_array_get_idx(a, 19999);
    ck_assert(json_object_object_get_ex(last, "q", &q));
    ck_assert_str_eq(json_object_get_string(q), "\"quoted\" text");
    ck_assert(json_object_object_get_ex(b, "long", &l));
    ck_assert_int_eq(json_object_get_string_len(l), 200000);
    json_object_put(b);
    json_tokener_free(tok);
    free(out);
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *t = tcase_create("core");
    tcase_add_test(t, utf8_sanitize);
    tcase_add_test(t, escape_rule);
    tcase_add_test(t, json_order_and_nesting);
    tcase_add_test(t, frames_and_auto_close);
    tcase_add_test(t, json_matches_json_c);
    tcase_add_test(t, text_escapes_terminal_controls);
    tcase_add_test(t, text_time_order);
    tcase_add_test(t, text_time_order_cap);
    tcase_add_test(t, text_time_order_hold);
    tcase_add_test(t, utf8_cut_at_boundaries);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(event_suite)
