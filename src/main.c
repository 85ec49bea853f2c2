/* main.c - the mxray command line. */
#include "core/digest.h"
#include "core/fileid.h"
#include "core/commit.h"
#include "core/version.h"
#include "engine/engine.h"
#include "flow/classify.h"
#include "event/event.h"
#include "event/text.h"
#include "output/report.h"
#include "output/flowpcap.h"
#include "output/json.h"
#include "output/redis.h"
#include "output/select.h"
#include "output/streams.h"
#include "capture/files.h"
#include "capture/input.h"
#include "dissectors/findings/audit.h"
#include "dissectors/findings/failure.h"
#include "dissectors/findings/failures.h"
#include "dissectors/findings/journey.h"
#include "dissectors/registry.h"
#include "dissectors/tls/cert.h"
#include "dissectors/tls/keylog.h"

#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mxray [options] FILE...\n"
                 "       mxray [options] -i IFACE [-f BPF] [-w FILE] [-Z USER] [--no-promisc]\n"
                 "       mxray audit [options] FILE...   a posture table per server, with findings\n"
                 "\n"
                 "Reads pcap/pcapng captures, also gzip, zstd or xz compressed (\"-\" for standard\n"
                 "input; several files are read in order, numbered on as one capture, as mergecap -a\n"
                 "would; a directory or a quoted glob ('ring/cap*.pcap') of rotated captures is read\n"
                 "in the order of each file's first packet, at most 1024 files), rebuilds the TCP\n"
                 "streams of mail flows and reports them. With no output option the text timeline\n"
                 "goes to stdout.\n"
                 "\n"
                 "Input:\n"
                 "  -r FILE              read FILE (as tcpdump and tshark spell it; repeatable, read first)\n"
                 "  -f BPF               read only the packets a capture filter matches; the frames it passes\n"
                 "                       over keep their numbers (the summary's frames_filtered)\n"
                 "  -c COUNT             stop after COUNT packets (those -f matches)\n"
                 "  --since T, --until T read only the packets from T, until T: a UTC time\n"
                 "                       (2026-12-06T10:00:00[.frac][Z]) or seconds from the first packet\n"
                 "  --flow SEL           report only the sessions SEL names (repeatable, or a comma list):\n"
                 "                       flow numbers as the records give them (3,7), an address (10.0.0.5,\n"
                 "                       2001:db8::5), an address and port (10.0.0.5:25, [2001:db8::5]:25) or a\n"
                 "                       port (:25), at either end; the numbers and frames stay those of the\n"
                 "                       whole capture, the summary too\n"
                 "\n"
                 "Output:\n"
                 "  --json PATH          write NDJSON records to PATH (\"-\" for stdout; with -i, each record\n"
                 "                       is flushed as it comes)\n"
                 "  --redis URL          also send each record to a Redis stream (XADD; --redis-list: a list):\n"
                 "                       redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], unix:PATH; a bounded queue\n"
                 "                       rides out a slow or absent server, and the summary counts what was\n"
                 "                       not delivered (docs/manual.md, \"Streaming to Redis\")\n"
                 "  --redis-key KEY      the stream's or the list's key (default mxray)\n"
                 "  --redis-list         RPUSH each record onto a list instead of XADD to a stream\n"
                 "  --redis-maxlen N     cap the stream near N entries (XADD MAXLEN ~ N; default 1000000; 0: none)\n"
                 "  --redis-queue MIB    records waiting for the server, at most (default 64); past it they\n"
                 "                       are dropped and counted\n"
                 "  --sensor NAME        a \"sensor\" field with NAME right after \"type\" in every record (--json,\n"
                 "                       --redis): which capture point it came from\n"
                 "  --html PATH          write one self-contained HTML report: an overview, and a sequence\n"
                 "                       diagram per session with explanations (implies --explain)\n"
                 "  --html-diagrams N    sessions drawn in the HTML report (default 200; failed ones first)\n"
                 "  --write-flows DIR    write the packets of each session --flow or -f chose, else of each one\n"
                 "                       --failures lists, as DIR/flowN-<client>-<server>.pcap (DIR must be\n"
                 "                       empty or absent; files only: they are read a second time)\n"
                 "  --streams DIR        write each reassembled stream as DIR/<client>-<server>.c2s/.s2c\n"
                 "                       plus DIR/index.json (DIR must be empty or absent)\n"
                 "  --color WHEN         colour the timeline: auto (default), always, never; NO_COLOR is honoured\n"
                 "  --show-secrets       write passwords and tokens seen in AUTH (by default only their length)\n"
                 "  --tls-keylog FILE    decrypt TLS (after STARTTLS, and on 465/993/995) with the secrets of an NSS\n"
                 "                       key log (SSLKEYLOGFILE, openssl -keylogfile), and read the mail inside\n"
                 "  --tls-ca FILE        verify servers' certificates against the CA certificates of FILE (PEM)\n"
                 "                       instead of the system store; \"none\": do not judge trust\n"
                 "  --hashes LIST        digests of mail content: md5, sha1, sha256 (each MIME part's decoded\n"
                 "                       bytes), message (the whole message), body (its body); or all, none;\n"
                 "                       default sha256,body\n"
                 "  --extract DIR        write every message seen as a .eml file, and its attachments decoded\n"
                 "  --extract-max MIB    bytes written to one extracted file (default 100); the rest is cut\n"
                 "  --extract-total MIB  bytes written by --extract in all (default 4096); then it stops\n"
                 "  --port PROTO=PORT    also read PORT as PROTO (smtp, pop3, imap, lmtp); PORT/tls if it\n"
                 "                       starts in TLS\n"
                 "  --no-ndpi            do not let nDPI find mail on other ports (nor report its risks)\n"
                 "  --failures           only what failed: a block per failed recipient, with its reply, what the\n"
                 "                       codes mean and the likely cause (instead of the timeline)\n"
                 "  --explain            annotate the timeline for teaching: what each command asks for, what\n"
                 "                       each reply means, and the SMTP state at each step\n"
                 "  -q, --quiet          no warnings on stderr\n"
                 "  --progress           show how far a file has been read, on stderr (default when stderr\n"
                 "                       is a terminal); --no-progress turns it off\n"
                 "\n"
                 "Limits:\n"
                 "  --max-flows N        flows tracked at once (default 262144); the oldest idle one is evicted\n"
                 "  --idle-timeout SECS  close a flow after this much silence (default 3600)\n"
                 "  --memory MIB         memory for flows, their dissectors and TCP reassembly (default 256):\n"
                 "                       half for flows, a quarter for reassembly, an eighth for the --html\n"
                 "                       report's open sessions; when it is full the least recently active\n"
                 "                       flow is closed early (FLOW_EVICTED)\n"
                 "  --reasm-memory MIB   bytes held for TCP reassembly, all flows together (default: a quarter\n"
                 "                       of --memory)\n"
                 "\n"
                 "Speed:\n"
                 "  -j, --workers N      dissect in N threads, flows shared out by their addresses (0: in the\n"
                 "                       reading thread; default: the number of CPUs, at most 16). The output\n"
                 "                       is the same for any N; --max-flows and --reasm-memory are shared out\n"
                 "                       between the threads. --extract and --streams use one thread\n"
                 "\n"
                 "Live capture (root or CAP_NET_RAW; stop with Ctrl-C or SIGTERM: open sessions are\n"
                 "flushed into the output and the summary gives pcap's drop counts):\n"
                 "  -i IFACE             capture from IFACE instead of reading files\n"
                 "  -f BPF               capture filter (default: TCP on the mail, --port and proxy ports)\n"
                 "  -w FILE              also write the captured packets to FILE (pcap), opened as the -Z\n"
                 "                       user and never through a symbolic link\n"
                 "  -Z USER              drop privileges to USER once the capture is open, before any output\n"
                 "                       file is created\n"
                 "  --no-promisc         do not put the interface in promiscuous mode\n"
                 "\n"
                 "  -h, --help           this text\n"
                 "  -V, --version        the version, the commit, and the libraries it runs with\n"
                 "\n"
                 "Ports:");
    for (size_t i = 0; i < mx_registry_len; i++) {
        fprintf(out, " %s", mx_registry[i].name);
        for (size_t j = 0; j < mx_registry[i].n_ports; j++)
            fprintf(out, "%c%u%s", j ? ',' : '=', mx_registry[i].ports[j].port,
                    mx_registry[i].ports[j].tls ? "(tls)" : "");
    }
    fprintf(out, "\n\nExit status: 0 done; 1 mxray failed (unreadable input, out of memory, write error,\n"
                 "records --redis could not deliver); 2 usage error (also an output that is an input or\n"
                 "another output); 3 done, but the input was damaged (truncated file, snaplen cuts, headers\n"
                 "whose lengths lie): see the warnings and the summary.\n");
}

#define MX_MAX_R 256 /* -r FILE options */

/* The live source, for the signal handler to stop. */
static struct mx_input *volatile live_input;

/* --progress: one line on stderr, rewritten in place; cleared at the end. */
static void show_progress(void *ud, const struct mx_progress *p)
{
    (void)ud;
    if (p->done) {
        fputs("\r\033[K", stderr);
        return;
    }
    double mb = (double)p->pos / 1e6, rate = p->elapsed > 0 ? mb / p->elapsed : 0;
    char share[16] = "";
    if (p->size)
        snprintf(share, sizeof(share), "%3.0f%% ", 100.0 * (double)p->pos / (double)p->size);
    fprintf(stderr, "\r\033[K%s%.1f", share, mb);
    if (p->size)
        fprintf(stderr, "/%.1f", (double)p->size / 1e6);
    fprintf(stderr, " MB  %" PRIu64 " packets  %" PRIu32 " flows tracked  %.1f MB/s", p->frames, p->flows, rate);
    if (p->size && rate > 0 && p->pos < p->size)
        fprintf(stderr, "  %.0f s left", (double)(p->size - p->pos) / 1e6 / rate);
    fflush(stderr);
}

static void on_signal(int sig)
{
    (void)sig;
    struct mx_input *in = live_input;
    if (in && in->ops->stop)
        in->ops->stop(in); /* pcap_breakloop: the run ends after this packet */
}

/* -Z USER, as tcpdump does it: groups, then gid, then uid. */
static bool drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        fprintf(stderr, "mxray: -Z: no user %s\n", user);
        return false;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "mxray: -Z %s: %s\n", user, strerror(errno));
        return false;
    }
    return true;
}

/* Parses a positive decimal number no larger than max; false on anything else. */
/* --since / --until: a UTC time "YYYY-MM-DDTHH:MM:SS[.frac][Z]" (RFC 3339,
 * as the records write times), or seconds from the first packet ("90",
 * "1.5"; *rel), at most 10^9. */
static bool parse_when(const char *s, mx_time_t *t, bool *rel)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int used = 0;
    *rel = !(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                    &tm.tm_sec, &used) == 6 &&
             used >= 19);
    const char *rest = *rel ? s : s + used;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (!*rel && (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
                  tm.tm_min > 59 || tm.tm_sec > 60))
        return false;
    int64_t sec = 0, ns = 0;
    if (*rel) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(rest, &end, 10);
        if (errno || end == rest || *rest == '-' || *rest == '+' || v > 1000000000ULL)
            return false;
        sec = (int64_t)v;
        rest = end;
    } else {
        time_t u = timegm(&tm);
        if (u == (time_t)-1 || u < 0 || (int64_t)u >= MX_TIME_MAX / MX_NS_PER_SEC)
            return false;
        sec = (int64_t)u;
    }
    if (*rest == '.') {
        int64_t scale = MX_NS_PER_SEC / 10;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
            ns += scale * (*rest - '0');
    }
    if (!*rel && *rest == 'Z')
        rest++;
    if (*rest)
        return false;
    *t = sec * MX_NS_PER_SEC + ns;
    return true;
}

static bool parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > max)
        return false;
    *out = v;
    return true;
}

/* What the command line asks for. */
struct cmdline {
    struct mx_config cfg;
    struct mx_protocols protos; /* the registry's, with the --port ones */
    bool audit;                 /* mxray audit: the posture table */
    bool failures;              /* --failures */
    const char *json, *html, *streams;
    size_t html_diagrams;
    const char *color;
    int progress; /* -1: when stderr is a terminal */
    struct mx_live_opts live;
    const char *write_path; /* -w */
    const char *run_as;     /* -Z */
    char protocols[128];    /* "SMTP, POP3 and IMAP": the protocols' names, for the HTML report */
    char **files;           /* the capture files, n_files of them: -r's, then the others (mx_inputs_add) */
    int n_files;
    char *r_files[MX_MAX_R]; /* -r FILE, in order */
    int n_r;
    struct mx_select *select;    /* --flow, or NULL */
    const char *write_flows;     /* --write-flows DIR */
    const char *keylog;          /* --tls-keylog FILE */
    const char *tls_ca;          /* --tls-ca FILE, "none", or NULL (the system store) */
    struct mx_redis_opts redis;  /* --redis URL (redis.url NULL: none) and its companions */
    const char *redis_companion; /* the last of --redis-key, -list, -maxlen, -queue given, or NULL */
    const char *sensor;          /* --sensor NAME, or NULL */
};

/* What the command line starts from: the registry's protocols, one worker
 * per CPU (at most 16), the timeline in colour when stdout is a terminal. */
static void cmdline_defaults(struct cmdline *o)
{
    struct mx_config *cfg = &o->cfg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    mx_config_defaults(cfg);
    mx_registry_protocols(&o->protos);
    cfg->protocols = &o->protos;
    size_t w = 0;
    for (size_t i = 0; i < mx_registry_len && w < sizeof(o->protocols); i++) {
        const char *sep = i == 0 ? "" : i + 1 == mx_registry_len ? " and " : ", ";
        w += (size_t)snprintf(o->protocols + w, sizeof(o->protocols) - w, "%s", sep);
        for (const char *n = mx_registry[i].name; *n && w + 1 < sizeof(o->protocols); n++)
            o->protocols[w++] = (char)(*n >= 'a' && *n <= 'z' ? *n - 32 : *n);
        o->protocols[w < sizeof(o->protocols) ? w : sizeof(o->protocols) - 1] = '\0';
    }
    cfg->workers = ncpu > 1 ? (ncpu > 16 ? 16 : (unsigned)ncpu) : 0;
    o->color = "auto";
    o->progress = -1;
    o->live = (struct mx_live_opts){ NULL, NULL, true };
    o->redis.key = MX_REDIS_KEY_DEFAULT;
    o->redis.maxlen = MX_REDIS_MAXLEN_DEFAULT;
    o->redis.queue_bytes = (size_t)MX_REDIS_QUEUE_DEFAULT_MIB << 20;
}

/* The long options without a short form. */
enum {
    OPT_JSON = 256,
    OPT_STREAMS,
    OPT_COLOR,
    OPT_MAX_FLOWS,
    OPT_IDLE,
    OPT_REASM_MEM,
    OPT_SECRETS,
    OPT_EXTRACT,
    OPT_PORT,
    OPT_KEYLOG,
    OPT_NOPROMISC,
    OPT_NONDPI,
    OPT_FAILURES,
    OPT_EXPLAIN,
    OPT_HTML,
    OPT_HTML_DIAGRAMS,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_MEMORY,
    OPT_EXTRACT_MAX,
    OPT_EXTRACT_TOTAL,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_FLOW,
    OPT_WRITE_FLOWS,
    OPT_TLS_CA,
    OPT_HASHES,
    OPT_REDIS,
    OPT_REDIS_KEY,
    OPT_REDIS_LIST,
    OPT_REDIS_MAXLEN,
    OPT_REDIS_QUEUE,
    OPT_SENSOR
};

/* --sensor NAME: 1 to MX_JSON_SENSOR_MAX bytes of valid UTF-8 with no control
 * character (C0, DEL, C1, bidi: what mx_escape_char would escape). */
static bool sensor_ok(const char *name)
{
    size_t n = strlen(name);
    if (!n || n > MX_JSON_SENSOR_MAX)
        return false;
    for (size_t i = 0, len = 0; i < n; i += len) {
        char rep[MX_ESC_MAX];
        if (mx_escape_char((const uint8_t *)name + i, n - i, rep, &len))
            return false;
    }
    return true;
}

/* Applies option c (getopt_long's) with its argument arg to *o. Returns -1 to
 * go on, else the exit status (after the usage, the version, or what was
 * wrong with it). */
static int apply_option(struct cmdline *o, int c, char *arg)
{
    struct mx_config *cfg = &o->cfg;
    unsigned long long v;
    switch (c) {
    case 'r':
        if (o->n_r == MX_MAX_R) {
            fprintf(stderr, "mxray: -r at most %d times (name the other files after the options)\n", MX_MAX_R);
            return 2;
        }
        o->r_files[o->n_r++] = arg;
        break;
    case OPT_SINCE:
    case OPT_UNTIL: {
        bool rel;
        mx_time_t t;
        if (!parse_when(arg, &t, &rel)) {
            fprintf(stderr,
                    "mxray: --%s takes a UTC time (2026-12-06T10:00:00[.frac][Z]) or seconds from the "
                    "first packet (90, 1.5)\n",
                    c == OPT_SINCE ? "since" : "until");
            return 2;
        }
        *(c == OPT_SINCE ? &cfg->since : &cfg->until) = t;
        *(c == OPT_SINCE ? &cfg->since_rel : &cfg->until_rel) = rel;
        break;
    }
    case OPT_FLOW: {
        char why[256];
        if (!o->select && !(o->select = mx_select_new())) {
            fprintf(stderr, "mxray: out of memory\n");
            return 1;
        }
        if (!mx_select_add(o->select, arg, why, sizeof(why))) {
            fprintf(stderr, "mxray: %s\n", why);
            return 2;
        }
        break;
    }
    case 'c':
        if (!parse_num(arg, UINT64_MAX, &v)) {
            fprintf(stderr, "mxray: -c takes a number of packets, from 1\n");
            return 2;
        }
        cfg->max_packets = v;
        break;
    case 'j':
        if (!strcmp(arg, "0")) {
            cfg->workers = 0;
        } else if (!parse_num(arg, MX_MAX_WORKERS, &v)) {
            fprintf(stderr, "mxray: --workers takes a number from 0 to %d\n", MX_MAX_WORKERS);
            return 2;
        } else {
            cfg->workers = (unsigned)v;
        }
        break;
    case OPT_JSON:
        o->json = arg;
        break;
    case OPT_STREAMS:
        o->streams = arg;
        break;
    case OPT_REDIS: {
        char why[256];
        if (!mx_redis_url_check(arg, why, sizeof(why))) {
            fprintf(stderr, "mxray: %s\n", why);
            return 2;
        }
        o->redis.url = arg;
        break;
    }
    case OPT_REDIS_KEY:
        o->redis_companion = "--redis-key";
        if (!*arg || strlen(arg) > MX_REDIS_KEY_MAX) {
            fprintf(stderr, "mxray: --redis-key takes a key of 1 to %d bytes\n", MX_REDIS_KEY_MAX);
            return 2;
        }
        o->redis.key = arg;
        break;
    case OPT_REDIS_LIST:
        o->redis_companion = "--redis-list";
        o->redis.list = true;
        break;
    case OPT_REDIS_MAXLEN:
        o->redis_companion = "--redis-maxlen";
        if (!strcmp(arg, "0")) {
            o->redis.maxlen = 0;
        } else if (!parse_num(arg, UINT64_MAX, &v)) {
            fprintf(stderr, "mxray: --redis-maxlen takes a number of entries (0: no cap)\n");
            return 2;
        } else {
            o->redis.maxlen = v;
        }
        break;
    case OPT_REDIS_QUEUE:
        o->redis_companion = "--redis-queue";
        if (!parse_num(arg, MX_REDIS_QUEUE_MAX_MIB, &v)) {
            fprintf(stderr, "mxray: --redis-queue takes MiB, from 1 to %u\n", MX_REDIS_QUEUE_MAX_MIB);
            return 2;
        }
        o->redis.queue_bytes = (size_t)v << 20;
        break;
    case OPT_SENSOR:
        if (!sensor_ok(arg)) {
            fprintf(stderr, "mxray: --sensor takes a name of 1 to %d bytes of UTF-8 without control characters\n",
                    MX_JSON_SENSOR_MAX);
            return 2;
        }
        o->sensor = arg;
        break;
    case OPT_WRITE_FLOWS:
        o->write_flows = arg;
        break;
    case OPT_COLOR:
        o->color = arg;
        if (strcmp(o->color, "auto") && strcmp(o->color, "always") && strcmp(o->color, "never")) {
            fprintf(stderr, "mxray: --color takes auto, always or never\n");
            return 2;
        }
        break;
    case OPT_MAX_FLOWS:
        if (!parse_num(arg, 1u << 28, &v)) {
            fprintf(stderr, "mxray: --max-flows takes a number from 1 to %u\n", 1u << 28);
            return 2;
        }
        cfg->max_flows = (uint32_t)v;
        break;
    case OPT_IDLE:
        if (!parse_num(arg, 86400 * 365, &v)) {
            fprintf(stderr, "mxray: --idle-timeout takes seconds, from 1 to a year\n");
            return 2;
        }
        cfg->idle_timeout = (mx_time_t)v * MX_NS_PER_SEC;
        break;
    case OPT_MEMORY:
        if (!parse_num(arg, 1u << 20, &v) || v < 16) {
            fprintf(stderr, "mxray: --memory takes MiB, from 16 to %u\n", 1u << 20);
            return 2;
        }
        cfg->memory = (uint64_t)v << 20;
        break;
    case OPT_REASM_MEM:
        if (!parse_num(arg, 1u << 20, &v)) {
            fprintf(stderr, "mxray: --reasm-memory takes MiB, from 1 to %u\n", 1u << 20);
            return 2;
        }
        cfg->reasm.max_total_bytes = (uint64_t)v << 20;
        break;
    case OPT_EXTRACT:
        cfg->extract_dir = arg; /* made once privileges are dropped (make_extract_dir) */
        break;
    case OPT_EXTRACT_MAX:
    case OPT_EXTRACT_TOTAL:
        if (!parse_num(arg, 1u << 20, &v)) {
            fprintf(stderr, "mxray: --extract-%s takes MiB, from 1 to %u\n", c == OPT_EXTRACT_MAX ? "max" : "total",
                    1u << 20);
            return 2;
        }
        *(c == OPT_EXTRACT_MAX ? &cfg->extract_max : &cfg->extract_total) = (uint64_t)v << 20;
        break;
    case OPT_PORT: {
        char why[160];
        if (!mx_protocols_add_port(&o->protos, arg, why, sizeof(why))) {
            fprintf(stderr, "mxray: %s\n", why);
            return 2;
        }
        break;
    }
    case OPT_SECRETS:
        cfg->show_secrets = true;
        break;
    case OPT_KEYLOG:
        o->keylog = arg;
        break;
    case OPT_TLS_CA:
        o->tls_ca = arg;
        break;
    case 'i':
        o->live.iface = arg;
        break;
    case 'f':
        o->live.filter = arg;
        break;
    case 'w':
        o->write_path = arg;
        break;
    case 'Z':
        o->run_as = arg;
        break;
    case OPT_NOPROMISC:
        o->live.promisc = false;
        break;
    case OPT_NONDPI:
        cfg->classify = false;
        break;
    case OPT_FAILURES:
        o->failures = true;
        break;
    case OPT_EXPLAIN:
        cfg->explain = true;
        break;
    case OPT_HASHES: {
        char why[160];
        if (!mx_hashes_parse(arg, &cfg->hashes, why, sizeof(why))) {
            fprintf(stderr, "mxray: %s\n", why);
            return 2;
        }
        break;
    }
    case OPT_PROGRESS:
        o->progress = 1;
        break;
    case OPT_NO_PROGRESS:
        o->progress = 0;
        break;
    case OPT_HTML_DIAGRAMS:
        if (!parse_num(arg, 1000000, &v)) {
            fprintf(stderr, "mxray: --html-diagrams takes a number from 1 to 1000000\n");
            return 2;
        }
        o->html_diagrams = (size_t)v;
        break;
    case OPT_HTML:
        o->html = arg;
        cfg->explain = true; /* the diagrams explain every step */
        break;
    case 'q':
        cfg->warnings = false;
        break;
    case 'h':
        usage(stdout);
        return 0;
    case 'V':
        /* The commit and the libraries this binary runs with (not those it
         * was built against): what a bug report needs. */
        printf("mxray %s (commit %s)\n", MX_VERSION, MX_COMMIT);
        printf("  libpcap: %s\n  nDPI: %s\n  OpenSSL: %s\n  json-c: %s\n", mx_input_lib_version(),
               mx_classify_lib_version(), mx_crypto_lib_version(), mx_streams_lib_version());
        return 0;
    default:
        usage(stderr);
        return 2;
    }
    return -1;
}

/* True when a report goes to standard output: the timeline (no --json,
 * --html nor --redis), mxray audit's table, --failures, or --json or --html "-". */
static bool report_to_stdout(const struct cmdline *o)
{
    return (!o->json && !o->html && !o->redis.url) || o->audit || o->failures || (o->json && !strcmp(o->json, "-")) ||
           (o->html && !strcmp(o->html, "-"));
}

/* True when anything goes to standard output: a report, or -w -. */
static bool writes_stdout(const struct cmdline *o)
{
    return report_to_stdout(o) || (o->write_path && !strcmp(o->write_path, "-"));
}

/* A path of the command line and the file it names. */
struct named_file {
    const char *opt, *path; /* opt NULL: an input */
    struct mx_fileid id;
};

/* How a path of the command line is named in a message: the option and
 * the path escaped, or standard input or output. */
static void file_label(const struct named_file *f, char *buf, size_t len)
{
    char name[1024];
    mx_text_escape(f->path, name, sizeof(name));
    if (!strcmp(f->path, "-"))
        snprintf(buf, len, "%s", f->opt ? "standard output" : "standard input");
    else if (!f->opt)
        snprintf(buf, len, "the input %s", name);
    else
        snprintf(buf, len, "%s %s", f->opt, name);
}

/* Says that output a is b (an input or an earlier output); returns the
 * usage error's status. */
static int same_file(const struct named_file *a, const struct named_file *b)
{
    char la[1100], lb[1100];
    file_label(a, la, sizeof(la));
    file_label(b, lb, sizeof(lb));
    fprintf(stderr, "mxray: %s is the same file as %s: refused (an output must not be an input or another output)\n",
            la, lb);
    return 2;
}

/* No output may be an input (--html cap.pcap cap.pcap would empty the
 * capture before reading it) or another output (--json X --html X would mix
 * two reports in one file). Paths are compared by the file they name
 * (device and inode, mx_fileid), so that a hard link, a symbolic link or
 * another spelling is caught too; standard input and output by the file
 * they are, when they are files. Returns -1 to go on, else 2 after saying
 * which. */
static int check_outputs(const struct cmdline *o)
{
    const char *opt[] = { "--json", "--html", "-w", "--streams", "--extract", "--write-flows" };
    const char *path[] = { o->json, o->html, o->write_path, o->streams, o->cfg.extract_dir, o->write_flows };
    struct named_file out[7];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        out[n].opt = opt[i];
        out[n].path = path[i];
        if (path[i] && strcmp(path[i], "-") && mx_fileid_of_path(path[i], &out[n].id))
            n++;
    }
    out[n].opt = "";
    out[n].path = "-";
    if (writes_stdout(o) && mx_fileid_of_fd(STDOUT_FILENO, &out[n].id))
        n++;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (mx_fileid_same(&out[i].id, &out[j].id))
                return same_file(&out[i], &out[j]);
    for (int k = 0; k < o->n_files; k++) {
        struct named_file in = { NULL, o->files[k], { 0 } };
        bool known = strcmp(in.path, "-") ? mx_fileid_of_path(in.path, &in.id) : mx_fileid_of_fd(STDIN_FILENO, &in.id);
        for (size_t i = 0; known && i < n; i++)
            if (mx_fileid_same(&out[i].id, &in.id))
                return same_file(&out[i], &in);
    }
    return -1;
}

/* --write-flows reads the files again once the run has seen which sessions
 * to write: standard input, a FIFO or an interface cannot be. True when
 * every input can; else says why. */
static bool second_pass_ok(const struct cmdline *o)
{
    if (o->live.iface) {
        fprintf(stderr, "mxray: --write-flows reads the capture twice: with -i, save it with -w and run "
                        "--write-flows on the file\n");
        return false;
    }
    for (int i = 0; i < o->n_files; i++) {
        struct stat st;
        if (!strcmp(o->files[i], "-") || (stat(o->files[i], &st) == 0 && !S_ISREG(st.st_mode))) {
            char name[1024];
            mx_text_escape(o->files[i], name, sizeof(name));
            fprintf(stderr, "mxray: --write-flows reads the capture twice: %s is not a file\n",
                    strcmp(o->files[i], "-") ? name : "standard input");
            return false;
        }
    }
    return true;
}

/* Parses the command line into *o. Returns -1 to go on, else the exit
 * status (after the usage, the version, or what was wrong). */
static int parse_cmdline(int argc, char **argv, struct cmdline *o)
{
    static const struct option opts[] = {
        { "json", required_argument, NULL, OPT_JSON },
        { "streams", required_argument, NULL, OPT_STREAMS },
        { "redis", required_argument, NULL, OPT_REDIS },
        { "redis-key", required_argument, NULL, OPT_REDIS_KEY },
        { "redis-list", no_argument, NULL, OPT_REDIS_LIST },
        { "redis-maxlen", required_argument, NULL, OPT_REDIS_MAXLEN },
        { "redis-queue", required_argument, NULL, OPT_REDIS_QUEUE },
        { "sensor", required_argument, NULL, OPT_SENSOR },
        { "color", required_argument, NULL, OPT_COLOR },
        { "max-flows", required_argument, NULL, OPT_MAX_FLOWS },
        { "idle-timeout", required_argument, NULL, OPT_IDLE },
        { "reasm-memory", required_argument, NULL, OPT_REASM_MEM },
        { "memory", required_argument, NULL, OPT_MEMORY },
        { "show-secrets", no_argument, NULL, OPT_SECRETS },
        { "extract", required_argument, NULL, OPT_EXTRACT },
        { "extract-max", required_argument, NULL, OPT_EXTRACT_MAX },
        { "extract-total", required_argument, NULL, OPT_EXTRACT_TOTAL },
        { "since", required_argument, NULL, OPT_SINCE },
        { "until", required_argument, NULL, OPT_UNTIL },
        { "flow", required_argument, NULL, OPT_FLOW },
        { "write-flows", required_argument, NULL, OPT_WRITE_FLOWS },
        { "port", required_argument, NULL, OPT_PORT },
        { "tls-keylog", required_argument, NULL, OPT_KEYLOG },
        { "tls-ca", required_argument, NULL, OPT_TLS_CA },
        { "no-promisc", no_argument, NULL, OPT_NOPROMISC },
        { "no-ndpi", no_argument, NULL, OPT_NONDPI },
        { "failures", no_argument, NULL, OPT_FAILURES },
        { "explain", no_argument, NULL, OPT_EXPLAIN },
        { "hashes", required_argument, NULL, OPT_HASHES },
        { "html", required_argument, NULL, OPT_HTML },
        { "html-diagrams", required_argument, NULL, OPT_HTML_DIAGRAMS },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
        { "workers", required_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    cmdline_defaults(o);
    /* "mxray audit ...": the posture table instead of the timeline. */
    o->audit = argc > 1 && !strcmp(argv[1], "audit");
    if (o->audit) {
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    int c;
    while ((c = getopt_long(argc, argv, "qhVi:f:w:Z:j:r:c:", opts, NULL)) != -1) {
        int status = apply_option(o, c, optarg);
        if (status >= 0)
            return status;
    }
    /* -r FILE, as tcpdump and tshark spell it: those first, in order, then
     * the files named without it; a directory or a glob gives its captures
     * in time order. */
    static struct mx_inputs inputs;
    char err[1200];
    for (int i = 0; i < o->n_r + argc - optind; i++) {
        const char *arg = i < o->n_r ? o->r_files[i] : argv[optind + i - o->n_r];
        if (!mx_inputs_add(&inputs, arg, o->cfg.warnings, err, sizeof(err))) {
            fprintf(stderr, "mxray: %s\n", err);
            return strstr(err, "more than ") ? 2 : 1;
        }
    }
    o->files = inputs.path;
    o->n_files = (int)inputs.n;
    if (o->live.iface && o->n_files) {
        fprintf(stderr, "mxray: -i reads an interface; no capture file goes with it\n");
        return 2;
    }
    if (o->json && o->html && !strcmp(o->json, "-") && !strcmp(o->html, "-")) {
        fprintf(stderr, "mxray: --json and --html cannot both write to standard output\n");
        return 2;
    }
    if (o->write_path && !strcmp(o->write_path, "-") && report_to_stdout(o)) {
        /* The packets and a report would be mixed in one stream. */
        fprintf(stderr, "mxray: -w - and the report cannot both write to standard output\n");
        return 2;
    }
    if (o->redis_companion && !o->redis.url) {
        fprintf(stderr, "mxray: %s goes with --redis\n", o->redis_companion);
        return 2;
    }
    if (!o->live.iface && (o->write_path || o->run_as)) {
        fprintf(stderr, "mxray: -w and -Z go with -i\n");
        return 2;
    }
    if (o->write_flows && !second_pass_ok(o))
        return 2;
    if (!o->live.iface && !o->n_files) {
        fprintf(stderr, "mxray: no capture file given (try --help)\n");
        return 2;
    }
    return check_outputs(o);
}

/* Subscribes the reporters the command line asks for: --json and --html
 * ("-" is standard output, else a file the reporter closes), the auditor
 * (findings come at the end of every run; mxray audit prints its table),
 * --failures, else the timeline. False after saying why. */
static bool add_reporters(struct mx_sink *sink, const struct cmdline *o)
{
    for (int k = 0; k < 2; k++) {
        const char *path = k ? o->html : o->json;
        if (!path)
            continue;
        bool to_stdout = !strcmp(path, "-");
        FILE *fp = to_stdout ? stdout : fopen(path, "w");
        if (!fp) {
            char name[1024];
            mx_text_escape(path, name, sizeof(name));
            fprintf(stderr, "mxray: cannot write %s: %s\n", name, strerror(errno));
            return false;
        }
        /* The HTML report's open sessions: an eighth of --memory, from the
         * quarter the engine leaves for the run itself. */
        /* Live, --json flushes each record: a pipe's reader sees it as it comes. */
        struct mx_json_opts jo = { o->sensor, o->live.iface != NULL };
        bool ok =
            k ? mx_report_html_add(sink, fp, !to_stdout, o->html_diagrams, o->protocols, (size_t)(o->cfg.memory / 8))
              : mx_report_json_add_opts(sink, fp, !to_stdout, &jo);
        if (!ok) {
            if (!to_stdout)
                fclose(fp);
            fprintf(stderr, "mxray: out of memory\n");
            return false;
        }
    }
    if (o->redis.url) {
        char err[512];
        struct mx_redis_opts ro = o->redis;
        ro.sensor = o->sensor;
        ro.warnings = o->cfg.warnings;
        if (!mx_report_redis_add(sink, &ro, err, sizeof(err))) {
            fprintf(stderr, "mxray: --redis: %s\n", err);
            return false;
        }
    }
    bool tty = isatty(STDOUT_FILENO);
    const char *nc = getenv("NO_COLOR");
    bool use_color = !strcmp(o->color, "always") || (!strcmp(o->color, "auto") && tty && !(nc && *nc));
    /* Every view takes its failures from the one model's records. */
    bool ok = mx_failure_attach(sink) &&
              mx_audit_add(sink, o->audit && !(o->json && !strcmp(o->json, "-")) ? stdout : NULL, use_color);
    if (ok) /* the journeys of the messages seen more than once, at the end */
        ok = mx_journey_add(sink);
    if (ok && o->failures)
        ok = mx_failures_add(sink, stdout, use_color);
    if (ok && !o->json && !o->html && !o->redis.url && !o->audit && !o->failures)
        ok = mx_report_text_add(sink, stdout, false, use_color, o->live.iface ? MX_TEXT_LIVE_HOLD : 0);
    if (!ok)
        fprintf(stderr, "mxray: out of memory\n");
    return ok;
}

/* --extract DIR: created if need be. False after saying why. */
static bool make_extract_dir(const char *dir)
{
    struct stat st;
    char name[1024];
    mx_text_escape(dir, name, sizeof(name));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mxray: cannot create %s: %s\n", name, strerror(errno));
        return false;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mxray: --extract %s is not a directory\n", name);
        return false;
    }
    return true;
}

/* Opens the interface, drops privileges (-Z) and opens -w. NULL after
 * saying why. */
static struct mx_input *live_open(struct cmdline *o)
{
    static char filter[1024]; /* o->live.filter points to it for the whole run */
    char err[512];
    if (!o->live.filter) {
        mx_protocols_filter(&o->protos, filter, sizeof(filter));
        o->live.filter = filter;
    }
    struct mx_input *in = mx_input_open_live(&o->live, err, sizeof(err));
    if (!in) {
        fprintf(stderr, "mxray: %s: %s\n", o->live.iface, err);
        return NULL;
    }
    if (o->run_as && !drop_privileges(o->run_as)) {
        in->ops->close(in);
        return NULL;
    }
    /* -w is opened only now, as the -Z user: as tcpdump does (-Z drops
     * root after opening the interface, before the savefile), the file is
     * created with that user's rights and owned by them, so root's rights
     * are never lent to a path someone else may control. Without -Z, it is
     * still never opened through a symbolic link (mx_input_live_dump). */
    if (o->write_path && !mx_input_live_dump(in, o->write_path, err, sizeof(err))) {
        char name[1024];
        mx_text_escape(o->write_path, name, sizeof(name));
        fprintf(stderr, "mxray: -w %s: %s\n", name, err);
        in->ops->close(in);
        return NULL;
    }
    return in;
}

/* Reads the open interface until Ctrl-C or SIGTERM, then closes it. */
static void run_live(struct mx_engine *eng, struct mx_input *in, const struct cmdline *o)
{
    live_input = in;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* As tcpdump does: say when packets can come (scripts wait for it). */
    if (o->cfg.warnings)
        fprintf(stderr, "mxray: listening on %s\n", o->live.iface);
    mx_engine_run(eng, in);
    live_input = NULL;
    uint64_t rcv, drop, ifdrop;
    if (in->ops->stats(in, &rcv, &drop, &ifdrop)) {
        mx_engine_capture_stats(eng, rcv, drop, ifdrop);
        if (drop || ifdrop)
            fprintf(stderr, "mxray: the capture dropped %" PRIu64 " packets (%" PRIu64 " by the interface)\n", drop,
                    ifdrop);
    }
    in->ops->close(in);
}

/* Reads the files in order, as one capture. False when one could not be opened. */
static bool run_files(struct mx_engine *eng, const struct cmdline *o)
{
    bool opened_all = true;
    for (int i = 0; i < o->n_files && !mx_engine_count_reached(eng); i++) {
        char err[512];
        struct mx_input *in = mx_input_open_file(o->files[i], err, sizeof(err));
        if (!in) {
            /* The name, and libpcap's message that may repeat it, escaped. */
            char name[1024], why[2048];
            mx_text_escape(o->files[i], name, sizeof(name));
            mx_text_escape(err, why, sizeof(why));
            fprintf(stderr, "mxray: %s: %s\n", name, why);
            opened_all = false;
            continue;
        }
        /* -f on a file: the frames it passes over keep their numbers, so
         * that a frame named in the output is the file's (Wireshark's). */
        if (o->live.filter && !mx_input_filter(in, o->live.filter, err, sizeof(err))) {
            char why[1024];
            mx_text_escape(err, why, sizeof(why));
            fprintf(stderr, "mxray: -f: %s\n", why);
            in->ops->close(in);
            return false;
        }
        mx_engine_run(eng, in);
        in->ops->close(in);
    }
    return opened_all;
}

int main(int argc, char **argv)
{
    static struct cmdline o; /* the engine reads its protocol table for the whole run */
    int status = parse_cmdline(argc, argv, &o);
    if (status >= 0)
        return status;
    status = 1;
    struct mx_engine *eng = NULL;
    struct mx_keylog *keylog = NULL;
    struct mx_tls_trust *trust = NULL;
    struct mx_input *live = NULL;
    struct mx_flowpcap *flows_out = NULL; /* --write-flows: the sink owns it */
    struct mx_sink *sink = mx_sink_new();
    if (!sink) {
        fprintf(stderr, "mxray: out of memory\n");
        goto out;
    }
    /* Live: the interface is opened as root, then -Z drops privileges
     * before any output is created, so that every file mxray writes (-w,
     * the reports, --streams and --extract) is created with the -Z user's
     * rights and owned by it, as tcpdump does for its savefile. */
    if (o.live.iface && !(live = live_open(&o)))
        goto out;
    if (o.cfg.extract_dir && !make_extract_dir(o.cfg.extract_dir))
        goto out;
    if (o.select)
        mx_sink_select(sink, mx_select_keep, o.select);
    if (!add_reporters(sink, &o))
        goto out;
    char err[512];
    /* With no selector, the sessions --failures lists. */
    if (o.write_flows &&
        !(flows_out = mx_flowpcap_new(sink, o.write_flows, !o.select && !o.live.filter, err, sizeof(err)))) {
        fprintf(stderr, "mxray: --write-flows: %s\n", err);
        goto out;
    }
    /* A progress line is for files read at a terminal, unless the report
     * itself goes to that terminal; live capture has no end to measure. */
    if (o.progress < 0)
        o.progress = isatty(STDERR_FILENO) && o.cfg.warnings && !(writes_stdout(&o) && isatty(STDOUT_FILENO));
    if (o.progress && !o.live.iface)
        o.cfg.progress = show_progress;
    if (o.streams) {
        o.cfg.streams = &mx_streams_writer;
        o.cfg.streams_ctx = mx_streams_new(o.streams, err, sizeof(err));
        if (!o.cfg.streams_ctx) {
            fprintf(stderr, "mxray: %s\n", err);
            goto out;
        }
    }
    if (o.keylog) {
        struct mx_keylog_stats ks;
        keylog = mx_keylog_load(o.keylog, &ks, err, sizeof(err));
        if (!keylog) {
            fprintf(stderr, "mxray: --tls-keylog: %s\n", err);
            goto out;
        }
        if (o.cfg.warnings && (!ks.entries || ks.malformed || ks.dropped))
            fprintf(stderr,
                    "mxray: --tls-keylog %s: %" PRIu64 " secrets read; %" PRIu64
                    " lines not in the key-log format, %" PRIu64 " past the cap\n",
                    o.keylog, ks.entries, ks.malformed, ks.dropped);
        o.cfg.keylog = keylog;
    }
    /* RFC 5280 §6: the anchors certificates are verified against. */
    trust = mx_tls_trust_load(o.tls_ca, err, sizeof(err));
    if (!trust) {
        fprintf(stderr, "mxray: --tls-ca: %s\n", err);
        goto out;
    }
    o.cfg.tls_trust = trust;
    eng = mx_engine_new(&o.cfg, sink, err, sizeof(err));
    if (!eng) {
        if (o.cfg.streams_ctx)
            o.cfg.streams->finish(o.cfg.streams_ctx);
        fprintf(stderr, "mxray: %s\n", err);
        goto out;
    }
    if (live) {
        run_live(eng, live, &o);
        live = NULL;
    }
    bool opened_all = run_files(eng, &o);
    mx_engine_finish(eng);
    status = mx_engine_exit_status(eng);
    if (!opened_all)
        status = 1;
    if (flows_out && !mx_flowpcap_write(flows_out, o.files, o.n_files, o.live.filter, o.cfg.warnings ? stderr : NULL))
        status = 1;
    if (o.select && mx_select_failed(o.select)) {
        fprintf(stderr, "mxray: --flow: out of memory, records of the chosen sessions were lost\n");
        status = 1;
    }
    if (!mx_sink_finish(sink)) {
        fprintf(stderr, "mxray: writing the output failed\n");
        status = 1;
    }
out:
    if (live)
        live->ops->close(live);
    mx_engine_free(eng);
    mx_sink_free(sink);
    mx_select_free(o.select);
    mx_keylog_free(keylog);
    mx_tls_trust_free(trust);
    return status;
}
