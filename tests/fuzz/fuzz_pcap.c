/* fuzz_pcap.c - libFuzzer target: the whole pipeline fed a capture file
 * (pcap or pcapng): decoding, flows, reassembly, nDPI, every dissector and
 * the JSON, text and HTML reporters.
 *
 * Checked on every input (abort on failure): each NDJSON line is valid JSON
 * (json-c) and valid UTF-8; the timeline carries no control character but
 * the newline (no escape sequence reaches a terminal); the HTML report has
 * no raw control character. One input in 16, and each input run with nDPI
 * (one in 512), runs again with 2 or 3 worker threads, whose output must be
 * the same byte for byte. Seeds: the project's own captures (pcaps/). */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "event/event.h"
#include "output/report.h"
#include "capture/input.h"
#include "dialogue/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 3629 §4: well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xC2) || (k == 4 && c > 0xF4))
            return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        if (k == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F)))
            return false;
        if (k == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)))
            return false;
        i += k;
    }
    return true;
}

static void check_json(const char *out, size_t len)
{
    if (!utf8_ok((const uint8_t *)out, len))
        abort();
    json_tokener *tok = json_tokener_new();
    for (const char *p = out, *end = out + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            abort(); /* a record is always a whole line */
        json_tokener_reset(tok);
        json_object *o = json_tokener_parse_ex(tok, p, (int)(nl - p));
        if (!o || json_tokener_get_parse_end(tok) != (size_t)(nl - p) || !json_object_is_type(o, json_type_object))
            abort();
        json_object_put(o);
        p = nl + 1;
    }
    json_tokener_free(tok);
}

static void check_no_controls(const char *out, size_t len, bool allow_tab_cr)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)out[i];
        if ((c < 0x20 && c != '\n' && !(allow_tab_cr && (c == '\t' || c == '\r'))) || c == 0x7f)
            abort();
        if (c == 0xC2 && i + 1 < len && (uint8_t)out[i + 1] >= 0x80 && (uint8_t)out[i + 1] <= 0x9F)
            abort(); /* a C1 control, as UTF-8 */
    }
}

struct outputs {
    char *json, *text, *html;
    size_t json_len, text_len, html_len;
};

/* One run over the capture in data, with `workers` worker threads. */
static void run(const uint8_t *data, size_t size, unsigned workers, struct outputs *o)
{
    memset(o, 0, sizeof(*o));
    FILE *jf = open_memstream(&o->json, &o->json_len), *tf = open_memstream(&o->text, &o->text_len),
         *hf = open_memstream(&o->html, &o->html_len);
    FILE *in_fp = size ? fmemopen((void *)data, size, "rb") : NULL;
    struct mx_sink *sink = mx_sink_new();
    if (!jf || !tf || !hf || (size && !in_fp) || !sink)
        abort();
    if (!mx_report_json_add(sink, jf, true) || !mx_report_text_add(sink, tf, true, false, 0) ||
        !mx_report_html_add(sink, hf, true, 20, "SMTP, POP3 and IMAP", 1u << 20))
        abort();
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.protocols = mx_harness_protocols();
    cfg.warnings = false;
    cfg.explain = (size & 2) != 0;
    cfg.show_secrets = (size & 4) != 0;
    /* nDPI on one input in 512: its set-up and tear-down (IP lists into
     * patricia trees, per engine and so per worker) take about 20 ms, ten
     * times a whole run without it; at one in 64 they were about 60% of the
     * target's time. */
    cfg.classify = (size & 511) == 8;
    cfg.workers = workers;
    char err[256];
    struct mx_engine *eng = mx_engine_new(&cfg, sink, err, sizeof(err));
    if (!eng)
        abort();
    struct mx_input *in = in_fp ? mx_input_open_stream(in_fp, "fuzz", err, sizeof(err)) : NULL;
    if (in) {
        mx_engine_run(eng, in);
        in->ops->close(in);
    }
    mx_engine_finish(eng);
    mx_sink_finish(sink);
    mx_engine_free(eng);
    mx_sink_free(sink); /* closes the streams */
}

static void outputs_free(struct outputs *o)
{
    free(o->json);
    free(o->text);
    free(o->html);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outputs one;
    run(data, size, 0, &one);
    check_json(one.json, one.json_len);
    check_no_controls(one.text, one.text_len, false);
    check_no_controls(one.html, one.html_len, false);
    /* Again with worker threads: the records and the timeline must be those
     * of one thread, byte for byte. */
    if ((size & 15) == 5 || (size & 511) == 8) {
        struct outputs more;
        run(data, size, 1 + (size & 16 ? 2 : 1), &more);
        if (more.json_len != one.json_len || memcmp(more.json, one.json, one.json_len) ||
            more.text_len != one.text_len || memcmp(more.text, one.text, one.text_len))
            abort();
        outputs_free(&more);
    }
    outputs_free(&one);
    return 0;
}
