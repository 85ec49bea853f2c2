/* fuzz_pcap.c - libFuzzer target: the whole pipeline fed a capture file
 * (pcap or pcapng): decoding, flows, reassembly, nDPI, every dissector and
 * the JSON, text and HTML reporters.
 *
 * Checked on every input (abort on failure): each NDJSON line is valid JSON
 * (json-c) and valid UTF-8; the timeline carries no control character but
 * the newline (no escape sequence reaches a terminal); the HTML report has
 * no raw control character. Seeds: the project's own captures (pcaps/). */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "event.h"
#include "input.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = NULL, *text = NULL, *html = NULL;
    size_t json_len = 0, text_len = 0, html_len = 0;
    FILE *jf = open_memstream(&json, &json_len), *tf = open_memstream(&text, &text_len),
         *hf = open_memstream(&html, &html_len);
    FILE *in_fp = size ? fmemopen((void *)data, size, "rb") : NULL;
    struct mx_sink *sink = mx_sink_new();
    if (!jf || !tf || !hf || (size && !in_fp) || !sink)
        abort();
    if (!mx_report_json_add(sink, jf, true) || !mx_report_text_add(sink, tf, true, false) ||
        !mx_report_html_add(sink, hf, true, 20))
        abort();
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.warnings = false;
    cfg.explain = (size & 2) != 0;
    cfg.show_secrets = (size & 4) != 0;
    cfg.classify = (size & 15) == 8; /* nDPI on one input in 16: its set-up costs more than a run */
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
    check_json(json, json_len);
    check_no_controls(text, text_len, false);
    check_no_controls(html, html_len, false);
    free(json);
    free(text);
    free(html);
    return 0;
}
