/* harness.c - runs a dialogue transcript through the whole engine as one TCP connection. */
#include "dialogue/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "dissectors/registry.h"
#include "engine/engine.h"
#include "event/event.h"
#include "output/report.h"

struct conn {
    struct mx_engine *eng;
    uint32_t seq[2];
    mx_time_t t;
    uint16_t port;
};

size_t mx_harness_tcp_frame(uint8_t *f, uint8_t a, uint16_t sport, uint8_t b, uint16_t dport, uint32_t seq,
                            uint32_t ack, uint8_t flags, const void *data, size_t n)
{
    memset(f, 0, 54);
    f[12] = 0x08; /* IPv4 */
    uint8_t *ip = f + 14;
    size_t tot = 40 + n;
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[8] = 64;
    ip[9] = 6;
    ip[12] = 10, ip[15] = a;
    ip[16] = 10, ip[19] = b;
    uint8_t *tcp = ip + 20;
    tcp[0] = (uint8_t)(sport >> 8), tcp[1] = (uint8_t)sport;
    tcp[2] = (uint8_t)(dport >> 8), tcp[3] = (uint8_t)dport;
    for (int i = 0; i < 4; i++) {
        tcp[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
        tcp[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
    }
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14] = 0xff;
    if (n)
        memcpy(tcp + 20, data, n);
    return 54 + n;
}

static void frame_out(struct conn *c, enum mx_dir d, uint8_t flags, const char *data, size_t n)
{
    static uint8_t f[70000];
    bool c2s = d == MX_DIR_C2S;
    size_t len = mx_harness_tcp_frame(f, c2s ? 1 : 2, c2s ? 40000 : c->port, c2s ? 2 : 1, c2s ? c->port : 40000,
                                      c->seq[d], c->seq[!d], flags, data, n);
    struct mx_raw_packet raw = { 0, c->t, 1, (uint32_t)len, (uint32_t)len, f, false };
    c->t += MX_NS_PER_SEC / 1000;
    mx_engine_packet(c->eng, &raw);
    c->seq[d] += (uint32_t)n + ((flags & (MX_TCP_SYN | MX_TCP_FIN)) ? 1 : 0);
}

size_t mx_harness_len(const struct mx_turn *t, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].len ? t[i].len : strlen(t[i].data);
    return total;
}

char *mx_harness_run(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o, size_t split, bool every_byte)
{
    return mx_harness_run_status(t, n, o, split, every_byte, NULL);
}

char *mx_harness_run_status(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o, size_t split,
                            bool every_byte, int *status)
{
    struct mx_harness_opts def = { 0 };
    if (!o)
        o = &def;
    char *out = NULL;
    size_t out_len = 0;
    FILE *fp = open_memstream(&out, &out_len);
    struct mx_sink *sink = mx_sink_new();
    if (status)
        *status = -1; /* mxray could not start */
    if (!sink || !mx_report_json_add(sink, fp, false)) {
        mx_sink_free(sink);
        fclose(fp);
        return out;
    }
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.protocols = mx_harness_protocols();
    cfg.warnings = false;
    cfg.classify = false; /* the port says what the dialogue is; nDPI's start-up would dominate */
    cfg.show_secrets = o->show_secrets;
    cfg.explain = o->explain;
    cfg.extract_dir = o->extract_dir;
    if (o->extract_max)
        cfg.extract_max = o->extract_max;
    if (o->extract_total)
        cfg.extract_total = o->extract_total;
    char err[128];
    if (o->hashes && !mx_hashes_parse(o->hashes, &cfg.hashes, err, sizeof(err))) {
        mx_sink_free(sink);
        fclose(fp);
        return out;
    }
    struct conn c = { mx_engine_new(&cfg, sink, err, sizeof(err)),
                      { 1000, 5000 },
                      (mx_time_t)1700000000 * MX_NS_PER_SEC,
                      o->server_port ? o->server_port : 25 };
    if (!c.eng) {
        mx_sink_free(sink);
        fclose(fp);
        return out;
    }
    if (!o->no_handshake) {
        frame_out(&c, MX_DIR_C2S, MX_TCP_SYN, NULL, 0);
        c.seq[MX_DIR_C2S]--;
        frame_out(&c, MX_DIR_S2C, MX_TCP_SYN | MX_TCP_ACK, NULL, 0);
        c.seq[MX_DIR_C2S]++;
        frame_out(&c, MX_DIR_C2S, MX_TCP_ACK, NULL, 0);
    }
    size_t g = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = t[i].len ? t[i].len : strlen(t[i].data);
        size_t pos = 0;
        while (pos < len) {
            size_t chunk = len - pos;
            if (every_byte)
                chunk = 1;
            else if (split > g + pos && split < g + len)
                chunk = split - (g + pos) < chunk && split > g + pos ? split - (g + pos) : chunk;
            if (chunk > 1400)
                chunk = 1400;
            frame_out(&c, t[i].dir, MX_TCP_ACK | MX_TCP_PSH, t[i].data + pos, chunk);
            pos += chunk;
        }
        g += len;
    }
    if (!o->no_fin) {
        frame_out(&c, MX_DIR_C2S, MX_TCP_ACK | MX_TCP_FIN, NULL, 0);
        frame_out(&c, MX_DIR_S2C, MX_TCP_ACK | MX_TCP_FIN, NULL, 0);
        frame_out(&c, MX_DIR_C2S, MX_TCP_ACK, NULL, 0);
    }
    mx_engine_finish(c.eng);
    bool written = mx_sink_finish(sink);
    if (status)
        *status = written ? mx_engine_exit_status(c.eng) : 1;
    mx_engine_free(c.eng);
    mx_sink_free(sink);
    fclose(fp);
    return out;
}

static void strip(json_object *o)
{
    static const char *const keys[] = { "ts",
                                        "last_ts",
                                        "frames",
                                        "frame",
                                        "latency",
                                        "start",
                                        "end",
                                        "duration",
                                        "first_byte_ms",
                                        "complete_ms",
                                        "reply_frames",
                                        "capabilities_frames",
                                        "capabilities_before_login_frames",
                                        "secret_frame" };
    if (json_object_is_type(o, json_type_object)) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            json_object_object_del(o, keys[i]);
        json_object_object_foreach(o, k, v)
        {
            (void)k;
            strip(v);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            strip(json_object_array_get_idx(o, i));
    }
}

/* Parses the NDJSON line at *p and advances *p past it; NULL at the end.
 * An invalid line yields an empty object. */
static json_object *next_record(const char **p)
{
    if (!*p || !**p)
        return NULL;
    const char *nl = strchr(*p, '\n');
    size_t n = nl ? (size_t)(nl - *p) : strlen(*p);
    char *line = strndup(*p, n);
    json_object *o = json_tokener_parse(line);
    free(line);
    *p = nl ? nl + 1 : NULL;
    return o ? o : json_object_new_object();
}

static const char *type_of(json_object *o)
{
    json_object *t;
    return json_object_object_get_ex(o, "type", &t) ? json_object_get_string(t) : "";
}

char *mx_harness_normalize(const char *ndjson)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    json_object *o;
    for (const char *p = ndjson; (o = next_record(&p)) != NULL; json_object_put(o)) {
        const char *type = type_of(o);
        if (strcmp(type, "flow") && strcmp(type, "flow_start") && strcmp(type, "summary")) {
            strip(o);
            fprintf(fp, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        }
    }
    fclose(fp);
    return out;
}

json_object *mx_harness_record(const char *ndjson, const char *type, int nth)
{
    json_object *o;
    for (const char *p = ndjson; (o = next_record(&p)) != NULL; json_object_put(o))
        if (!strcmp(type_of(o), type) && nth-- == 0)
            return o;
    return NULL;
}

bool mx_harness_all_json(const char *ndjson)
{
    for (const char *p = ndjson; p && *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            return false;
        json_tokener *tok = json_tokener_new();
        json_object *j = tok ? json_tokener_parse_ex(tok, p, (int)(nl - p)) : NULL;
        bool ok = j && json_tokener_get_error(tok) == json_tokener_success;
        json_object_put(j);
        json_tokener_free(tok);
        if (!ok)
            return false;
        p = nl + 1;
    }
    return true;
}

int mx_harness_count(const char *ndjson, const char *type)
{
    int n = 0;
    json_object *o;
    while ((o = mx_harness_record(ndjson, type, n)) != NULL) {
        json_object_put(o);
        n++;
    }
    return n;
}

const char *mx_harness_get(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_object *cur = o;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(cur, json_type_array)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = *end ? NULL : json_object_array_get_idx(cur, (size_t)i);
        } else if (!json_object_object_get_ex(cur, tok, &cur)) {
            cur = NULL;
        }
    }
    return cur ? json_object_get_string(cur) : NULL;
}

size_t mx_harness_split_check(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o)
{
    char *whole = mx_harness_run(t, n, o, SIZE_MAX, false);
    char *want = mx_harness_normalize(whole);
    free(whole);
    size_t total = mx_harness_len(t, n), bad = SIZE_MAX;
    for (size_t k = 0; k <= total + 1 && bad == SIZE_MAX; k++) {
        bool every = k == total + 1;
        char *got = mx_harness_run(t, n, o, every ? SIZE_MAX : k, every);
        char *norm = mx_harness_normalize(got);
        if (strcmp(norm, want)) {
            bad = k;
            fprintf(stderr, "split at %zu differs:\n--- whole\n%s--- split\n%s", k, want, norm);
        }
        free(got);
        free(norm);
    }
    free(want);
    return bad;
}

const struct mx_protocols *mx_harness_protocols(void)
{
    static struct mx_protocols p;
    if (!p.n)
        mx_registry_protocols(&p);
    return &p;
}

const struct mx_protocols *mx_harness_protocols_with(const struct mx_dissector *dis)
{
    static struct mx_proto protos[8];
    static struct mx_protocols p;
    size_t n = mx_registry_len < MX_ARRAY_LEN(protos) ? mx_registry_len : MX_ARRAY_LEN(protos);
    for (size_t i = 0; i < n; i++) {
        protos[i] = mx_registry[i];
        protos[i].dissector = dis;
        protos[i].tls_dissector = NULL;
    }
    mx_protocols_init(&p, protos, n);
    return &p;
}
