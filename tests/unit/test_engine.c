/* test_engine.c - the pipeline end to end: crafted frames through flows, reassembly and a test dissector. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dissector.h"
#include "engine/engine.h"
#include "event/event.h"
#include "output/report.h"
#include "output/streams.h"
#include "dialogue/harness.h"
#include "check_main.h"

/* ---- A dissector that records what it is given and consumes whole lines ---- */

static char dlog[16384];

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    size_t n = strlen(dlog);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dlog + n, sizeof(dlog) - n, fmt, ap);
    va_end(ap);
}

static int rec_state_tag;
static bool rec_never_consume;

static void *rec_new(struct mx_dissect_ctx *ctx)
{
    (void)ctx;
    return &rec_state_tag;
}

static void rec_free(void *st)
{
    (void)st;
}

/* Consumes complete lines; logs each with the frame that carried its first byte. */
static struct mx_parse_result rec_parse(void *st, struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data,
                                        unsigned flags)
{
    (void)st;
    struct mx_parse_result r = { MX_PARSE_OK, 0, 0 };
    char dc = d == MX_DIR_C2S ? 'c' : 's';
    if (flags & MX_CHUNK_GAP) {
        logf_("%c:gap%zu|", dc, data.len);
        return r;
    }
    if (flags & MX_CHUNK_END) {
        logf_("%c:end%zu|", dc, data.len);
        return r;
    }
    if (flags & MX_CHUNK_TRUNCATED) {
        logf_("%c:cut%zu|", dc, data.len);
        return r;
    }
    if (rec_never_consume)
        return r;
    uint64_t base = mx_ctx_offset(ctx, d);
    size_t pos = 0;
    for (;;) {
        const uint8_t *lf = memchr(data.ptr + pos, '\n', data.len - pos);
        if (!lf)
            break;
        size_t end = (size_t)(lf - data.ptr) + 1;
        struct mx_frame_ref fr = mx_ctx_frame_at(ctx, d, base + pos);
        logf_("%c%llu:%.*s|", dc, (unsigned long long)fr.frame, (int)(end - pos - 2), data.ptr + pos);
        struct mx_event *ev = mx_event_begin(mx_ctx_sink(ctx), "rec.line", mx_ctx_flow_id(ctx), fr.ts);
        mx_ev_dir(ev, d);
        mx_ev_wire(ev, "line", mx_slice_make(data.ptr + pos, end - pos - 2));
        mx_ev_frames(ev, fr.frame, fr.frame);
        mx_ev_text(ev, "%.*s", (int)(end - pos - 2), data.ptr + pos);
        mx_event_emit(mx_ctx_sink(ctx), ev);
        if (end - pos > 2 && data.ptr[pos] == '!')
            mx_ctx_anomaly(ctx, d, 0, base + pos, end - pos);
        pos = end;
    }
    r.consumed = pos;
    return r;
}

static const struct mx_anomaly_def rec_anomalies[] = { { "TEST_BANG", "a line starting with !" } };

static const struct mx_dissector rec_dissector = {
    .name = "rec",
    .state_new = rec_new,
    .state_free = rec_free,
    .parse = rec_parse,
    .anomalies = rec_anomalies,
    .n_anomalies = 1,
};

/* ---- Frame building ---- */

struct world {
    struct mx_engine *eng;
    struct mx_sink *sink;
    char *json;
    size_t json_len;
    FILE *json_fp;
    mx_time_t t;
};

static struct world *world_new(struct mx_config *cfg)
{
    struct world *w = calloc(1, sizeof(*w));
    struct mx_config def;
    if (!cfg) {
        mx_config_defaults(&def);
        cfg = &def;
    }
    cfg->protocols = mx_harness_protocols_with(&rec_dissector);
    cfg->warnings = false;
    w->sink = mx_sink_new();
    w->json_fp = open_memstream(&w->json, &w->json_len);
    ck_assert(mx_report_json_add(w->sink, w->json_fp, false));
    char err[256];
    w->eng = mx_engine_new(cfg, w->sink, err, sizeof(err));
    ck_assert_msg(w->eng != NULL, "%s", err);
    w->t = (mx_time_t)1700000000 * MX_NS_PER_SEC;
    dlog[0] = 0;
    rec_never_consume = false;
    return w;
}

/* Ends the run; returns the NDJSON text (owned by the world). */
static const char *world_finish(struct world *w)
{
    mx_engine_finish(w->eng);
    mx_sink_finish(w->sink);
    fflush(w->json_fp);
    return w->json;
}

static void world_free(struct world *w)
{
    mx_engine_free(w->eng);
    mx_sink_free(w->sink);
    fclose(w->json_fp);
    free(w->json);
    free(w);
}

/* Sends an Ethernet/IPv4/TCP frame from host a (10.0.0.a) to host b. */
static void tx(struct world *w, uint8_t a, uint16_t sport, uint8_t b, uint16_t dport, uint32_t seq, uint32_t ack,
               uint8_t flags, const char *data)
{
    static uint8_t f[1600];
    size_t len = mx_harness_tcp_frame(f, a, sport, b, dport, seq, ack, flags, data, data ? strlen(data) : 0);
    struct mx_raw_packet raw = { 0, w->t, 1, (uint32_t)len, (uint32_t)len, f, false };
    w->t += MX_NS_PER_SEC / 100;
    mx_engine_packet(w->eng, &raw);
}

#define A MX_TCP_ACK
#define SYN MX_TCP_SYN
#define FIN MX_TCP_FIN
#define RST MX_TCP_RST

/* A client 10.0.0.1:40000 and a server 10.0.0.2:25, ISNs 100 and 500. */
static void open_conn(struct world *w)
{
    tx(w, 1, 40000, 2, 25, 100, 0, SYN, NULL);
    tx(w, 2, 25, 1, 40000, 500, 101, SYN | A, NULL);
    tx(w, 1, 40000, 2, 25, 101, 501, A, NULL);
}

#define record mx_harness_record
#define jstr mx_harness_get

START_TEST(dialogue_with_split_lines)
{
    struct world *w = world_new(NULL);
    open_conn(w);                                      /* frames 1-3 */
    tx(w, 2, 25, 1, 40000, 501, 101, A, "220 hi\r\n"); /* 4 */
    tx(w, 1, 40000, 2, 25, 101, 509, A, "EH");         /* 5 */
    tx(w, 1, 40000, 2, 25, 103, 509, A, "LO x\r\nMA"); /* 6 */
    tx(w, 1, 40000, 2, 25, 111, 509, A, "IL\r\n");     /* 7 */
    tx(w, 2, 25, 1, 40000, 509, 115, A, "250 ok\r\n"); /* 8 */
    tx(w, 1, 40000, 2, 25, 115, 517, A | FIN, NULL);   /* 9 */
    tx(w, 2, 25, 1, 40000, 517, 116, A | FIN, NULL);   /* 10 */
    ck_assert_str_eq(dlog, "s4:220 hi|c5:EHLO x|c6:MAIL|s8:250 ok|c:end0|s:end0|");
    const char *out = world_finish(w);
    json_object *f = record(out, "flow", 0);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(jstr(f, "client"), "10.0.0.1");
    ck_assert_str_eq(jstr(f, "server_port"), "25");
    ck_assert_str_eq(jstr(f, "close"), "fin");
    ck_assert_str_eq(jstr(f, "c2s.payload_bytes"), "14");
    ck_assert_str_eq(jstr(f, "s2c.packets"), "4");
    ck_assert_str_eq(jstr(f, "handshake"), "true");
    json_object_put(f);
    world_free(w);
}
END_TEST

START_TEST(gap_reaches_dissector_with_its_unconsumed_rest)
{
    struct world *w = world_new(NULL);
    open_conn(w);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "AB");     /* an unfinished line */
    tx(w, 1, 40000, 2, 25, 107, 501, A, "XY\r\n"); /* 4 bytes at 103 never captured */
    world_finish(w);
    ck_assert_str_eq(dlog, "c:cut2|c:gap4|c5:XY|c:end0|s:end0|");
    world_free(w);
}
END_TEST

START_TEST(dissector_anomaly_names_frames)
{
    struct world *w = world_new(NULL);
    open_conn(w);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "!bang\r\n");
    const char *out = world_finish(w);
    json_object *a = record(out, "anomaly", 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(jstr(a, "name"), "TEST_BANG");
    ck_assert_str_eq(jstr(a, "dir"), "c2s");
    json_object *fr;
    ck_assert(json_object_object_get_ex(a, "frames", &fr));
    ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(fr, 0)), 4);
    json_object_put(a);
    json_object *f = record(out, "flow", 0);
    ck_assert_str_eq(jstr(f, "anomalies.TEST_BANG"), "1");
    json_object_put(f);
    world_free(w);
}
END_TEST

START_TEST(rst_closes_and_tuple_reuse_opens_new_flow)
{
    struct world *w = world_new(NULL);
    open_conn(w);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "one\r\n");
    tx(w, 2, 25, 1, 40000, 501, 106, RST | A, NULL);
    tx(w, 1, 40000, 2, 25, 106, 501, A, "late\r\n"); /* a straggler: ignored */
    tx(w, 1, 40000, 2, 25, 9000, 0, SYN, NULL);      /* same 4-tuple, new connection */
    tx(w, 2, 25, 1, 40000, 7000, 9001, SYN | A, NULL);
    tx(w, 1, 40000, 2, 25, 9001, 7001, A, "two\r\n");
    const char *out = world_finish(w);
    json_object *f1 = record(out, "flow", 0), *f2 = record(out, "flow", 1);
    ck_assert_str_eq(jstr(f1, "close"), "rst");
    ck_assert_str_eq(jstr(f1, "flow"), "1");
    ck_assert_str_eq(jstr(f2, "flow"), "2");
    ck_assert_str_eq(jstr(f2, "c2s.payload_bytes"), "5");
    json_object_put(f1);
    json_object_put(f2);
    json_object *s = record(out, "summary", 0);
    ck_assert_str_eq(jstr(s, "late_packets"), "1");
    ck_assert_str_eq(jstr(s, "flows"), "2");
    json_object_put(s);
    world_free(w);
}
END_TEST

START_TEST(syn_on_open_tuple_starts_new_flow)
{
    struct world *w = world_new(NULL);
    open_conn(w);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "one\r\n");
    tx(w, 1, 40000, 2, 25, 100, 0, SYN, NULL);  /* a late copy of the SYN: same ISN, same flow */
    tx(w, 1, 40000, 2, 25, 7777, 0, SYN, NULL); /* another ISN: a new connection */
    const char *out = world_finish(w);
    json_object *f1 = record(out, "flow", 0);
    ck_assert_str_eq(jstr(f1, "close"), "reused");
    ck_assert_str_eq(jstr(f1, "c2s.payload_bytes"), "5");
    json_object_put(f1);
    json_object *s = record(out, "summary", 0);
    ck_assert_str_eq(jstr(s, "flows"), "2");
    json_object_put(s);
    world_free(w);
}
END_TEST

START_TEST(syn_retransmission_same_flow)
{
    struct world *w = world_new(NULL);
    tx(w, 1, 40000, 2, 25, 100, 0, SYN, NULL);
    tx(w, 1, 40000, 2, 25, 100, 0, SYN, NULL);
    tx(w, 2, 25, 1, 40000, 500, 101, SYN | A, NULL);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "x\r\n");
    const char *out = world_finish(w);
    json_object *s = record(out, "summary", 0);
    ck_assert_str_eq(jstr(s, "flows"), "1");
    json_object_put(s);
    world_free(w);
}
END_TEST

START_TEST(eviction_when_full)
{
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.max_flows = 2;
    struct world *w = world_new(&cfg);
    for (uint16_t i = 0; i < 3; i++)
        tx(w, 1, (uint16_t)(40000 + i), 2, 25, 100, 0, SYN, NULL);
    const char *out = world_finish(w);
    json_object *f = record(out, "flow", 0);
    ck_assert_str_eq(jstr(f, "close"), "evicted");
    ck_assert_str_eq(jstr(f, "client_port"), "40000");
    json_object_put(f);
    json_object *s = record(out, "summary", 0);
    ck_assert_str_eq(jstr(s, "flows_evicted"), "1");
    ck_assert_str_eq(jstr(s, "anomalies.FLOW_EVICTED"), "1");
    json_object_put(s);
    world_free(w);
}
END_TEST

START_TEST(idle_timeout_closes)
{
    struct world *w = world_new(NULL);
    open_conn(w);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "x\r\n");
    w->t += (mx_time_t)7200 * MX_NS_PER_SEC;
    tx(w, 3, 40001, 2, 110, 1, 0, SYN, NULL); /* another flow, two hours later */
    const char *out = world_finish(w);
    json_object *f = record(out, "flow", 0);
    ck_assert_str_eq(jstr(f, "close"), "timeout");
    ck_assert_str_eq(jstr(f, "flow"), "1");
    json_object_put(f);
    world_free(w);
}
END_TEST

START_TEST(non_mail_ports_ignored_and_midstream_roles)
{
    struct world *w = world_new(NULL);
    tx(w, 1, 40000, 2, 80, 100, 0, SYN, NULL);              /* HTTP: not ours */
    tx(w, 2, 143, 1, 50000, 800, 900, A, "* OK ready\r\n"); /* IMAP picked up midstream */
    const char *out = world_finish(w);
    json_object *f = record(out, "flow", 0);
    ck_assert_str_eq(jstr(f, "proto"), "imap");
    ck_assert_str_eq(jstr(f, "server_port"), "143");
    ck_assert_str_eq(jstr(f, "client"), "10.0.0.1");
    ck_assert_str_eq(jstr(f, "handshake"), "false");
    ck_assert_str_eq(jstr(f, "s2c.payload_bytes"), "12");
    json_object_put(f);
    ck_assert_ptr_null(record(out, "flow", 1));
    json_object *s = record(out, "summary", 0);
    ck_assert_str_eq(jstr(s, "tcp_segments"), "2");
    ck_assert_str_eq(jstr(s, "mail_segments"), "1");
    json_object_put(s);
    world_free(w);
}
END_TEST

START_TEST(dissector_buffer_cap)
{
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.dissector_buffer = 16;
    struct world *w = world_new(&cfg);
    rec_never_consume = true;
    open_conn(w);
    tx(w, 1, 40000, 2, 25, 101, 501, A, "0123456789");
    tx(w, 1, 40000, 2, 25, 111, 501, A, "0123456789"); /* 20 bytes unconsumed > 16 */
    const char *out = world_finish(w);
    ck_assert_ptr_nonnull(strstr(dlog, "c:gap20|"));
    json_object *f = record(out, "flow", 0);
    ck_assert_str_eq(jstr(f, "anomalies.DISSECTOR_BUFFER_LIMIT"), "1");
    json_object_put(f);
    world_free(w);
}
END_TEST

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    static char buf[65536];
    *len = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[*len] = 0;
    fclose(fp);
    return buf;
}

START_TEST(streams_written_with_gaps_and_repeats)
{
    char dir[] = "/tmp/mxray-streams-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    char err[256];
    cfg.streams = &mx_streams_writer;
    cfg.streams_ctx = mx_streams_new(dir, err, sizeof(err));
    ck_assert_msg(cfg.streams_ctx != NULL, "%s", err);
    struct world *w = world_new(&cfg);
    open_conn(w);
    tx(w, 2, 25, 1, 40000, 501, 101, A, "220 hi\r\n");
    tx(w, 1, 40000, 2, 25, 101, 509, A, "EHLO");
    tx(w, 1, 40000, 2, 25, 109, 509, A, "QUIT"); /* 4 bytes lost before it */
    tx(w, 1, 40000, 2, 25, 113, 509, A | RST, NULL);
    open_conn(w); /* the same 4-tuple again */
    tx(w, 1, 40000, 2, 25, 101, 501, A, "again");
    world_finish(w);
    char path[256];
    size_t n;
    snprintf(path, sizeof(path), "%s/10.0.0.1.40000-10.0.0.2.25.c2s", dir);
    ck_assert_str_eq(slurp(path, &n), "EHLOQUIT");
    snprintf(path, sizeof(path), "%s/10.0.0.1.40000-10.0.0.2.25.s2c", dir);
    ck_assert_str_eq(slurp(path, &n), "220 hi\r\n");
    snprintf(path, sizeof(path), "%s/10.0.0.1.40000-10.0.0.2.25_2.c2s", dir);
    ck_assert_str_eq(slurp(path, &n), "again");
    snprintf(path, sizeof(path), "%s/index.json", dir);
    json_object *idx = json_tokener_parse(slurp(path, &n));
    ck_assert_ptr_nonnull(idx);
    json_object *streams, *s0, *gaps;
    ck_assert(json_object_object_get_ex(idx, "streams", &streams));
    ck_assert_int_eq((int)json_object_array_length(streams), 2);
    s0 = json_object_array_get_idx(streams, 0);
    ck_assert(json_object_object_get_ex(json_object_object_get(s0, "c2s"), "gaps", &gaps));
    ck_assert_int_eq((int)json_object_array_length(gaps), 1);
    ck_assert_str_eq(jstr(json_object_array_get_idx(gaps, 0), "offset"), "4");
    ck_assert_str_eq(jstr(json_object_array_get_idx(gaps, 0), "len"), "4");
    json_object_put(idx);
    world_free(w);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(every_line_is_valid_json_for_hostile_bytes)
{
    struct world *w = world_new(NULL);
    open_conn(w);
    /* Invalid UTF-8, control characters and an escape sequence from the wire. */
    tx(w, 1, 40000, 2, 25, 101, 501, A, "!\xff\xfe\x1b]0;pwned\x07\xc0\xaf\r\n");
    const char *out = world_finish(w);
    json_object *a = record(out, "rec.line", 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(jstr(a, "line"), "!\\xff\\xfe\x1b]0;pwned\x07\\xc0\\xaf");
    json_object_put(a);
    for (const char *p = out; *p; p++)
        ck_assert_msg((unsigned char)*p != 0x1b, "raw ESC in output");
    world_free(w);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *t = tcase_create("core");
    tcase_add_test(t, dialogue_with_split_lines);
    tcase_add_test(t, gap_reaches_dissector_with_its_unconsumed_rest);
    tcase_add_test(t, dissector_anomaly_names_frames);
    tcase_add_test(t, rst_closes_and_tuple_reuse_opens_new_flow);
    tcase_add_test(t, eviction_when_full);
    tcase_add_test(t, syn_on_open_tuple_starts_new_flow);
    tcase_add_test(t, syn_retransmission_same_flow);
    tcase_add_test(t, idle_timeout_closes);
    tcase_add_test(t, non_mail_ports_ignored_and_midstream_roles);
    tcase_add_test(t, dissector_buffer_cap);
    tcase_add_test(t, streams_written_with_gaps_and_repeats);
    tcase_add_test(t, every_line_is_valid_json_for_hostile_bytes);
    suite_add_tcase(s, t);
    return s;
}

MX_CHECK_MAIN(engine_suite)
