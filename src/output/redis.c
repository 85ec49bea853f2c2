/* redis.c - `--redis URL`: each record to a Redis stream (XADD) or list (RPUSH) through a bounded queue and a sender thread. */
#include "output/redis.h"

#include "event/text.h"
#include "output/json.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

/* The caps and the clock of delivery (docs/manual.md, "Streaming to Redis"). */
#define MX_REDIS_PORT 6379
#define MX_REDIS_DB_MAX 1000000         /* SELECT n, at most */
#define MX_REDIS_TIMEOUT_MS 2000        /* a connect, and each read or write of a command */
#define MX_REDIS_BACKOFF_MIN_MS 100     /* the first wait before connecting again */
#define MX_REDIS_BACKOFF_MAX_MS 5000    /* doubling up to this */
#define MX_REDIS_STALL_MS 5000          /* at the end: how long the queue may not move before it is given up */
#define MX_REDIS_BATCH 512              /* commands pipelined before their replies are read */
#define MX_REDIS_BATCH_BYTES (4u << 20) /* ... and their records' bytes, at most (one record may pass it) */
#define MX_REDIS_ARGS 8                 /* XADD key MAXLEN ~ N * record JSON */
#define MX_REDIS_WHY 256                /* a reason in a message */

/* What --redis names. */
struct redis_url {
    char host[MX_REDIS_URL_MAX + 1]; /* a name or an address (IPv6 without its brackets); "" with path */
    int port;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix:PATH */
    char user[MX_REDIS_URL_MAX + 1], pass[MX_REDIS_URL_MAX + 1];
    bool has_pass;
    long db;                            /* SELECT db, or -1 */
    char server[MX_REDIS_URL_MAX + 16]; /* "host:port" or "unix:PATH": no user, no password */
};

/* A record waiting in the queue. */
struct rec {
    struct rec *next;
    size_t len; /* of data: the record's JSON line without its '\n' */
    bool tried; /* sent before on a connection lost before its reply came */
    char data[];
};

struct redis_rep {
    /* Set before the thread starts, then read only. */
    struct redis_url url;
    char label[MX_REDIS_URL_MAX + 64]; /* "redis://host:port/db" (escaped) for messages */
    const char *key;
    bool list;
    char maxlen[24]; /* XADD MAXLEN ~ maxlen, or "" for no cap */
    size_t cap;      /* --redis-queue, bytes */
    bool warnings;

    /* The merge thread's (event). */
    struct mx_json w;
    struct rec *cur; /* the record being written */
    size_t cur_len;
    bool cur_over; /* it does not fit the queue, or out of memory */

    /* Shared with the sender, under m. */
    pthread_mutex_t m;
    pthread_cond_t work; /* the sender: records came, or stop */
    pthread_cond_t done; /* waiters: records left the queue */
    struct rec *head, *tail;
    size_t bytes, peak; /* queued now (the sender's batch too), at most */
    bool idle;          /* the sender waits for records */
    bool stop;          /* the sender ends now */
    bool stopped;       /* it has ended: records are no longer queued */
    bool said_full;
    uint64_t offered, sent, resent, reconnects;
    uint64_t drop_full;    /* not queued: the queue was full (or out of memory) */
    uint64_t drop_refused; /* an error reply refused it (WRONGTYPE, OOM ...) */
    uint64_t drop_left;    /* still queued when the sender was given up, or came after */

    /* The sender thread's own. */
    pthread_t thread;
    bool started;
    struct rec *batch[MX_REDIS_BATCH];
    bool refused[MX_REDIS_BATCH];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits on cv (CLOCK_MONOTONIC) until the time `until` (now_ms's clock) at most. */
static void wait_until(pthread_cond_t *cv, pthread_mutex_t *m, int64_t until)
{
    struct timespec ts = { (time_t)(until / 1000), (long)(until % 1000) * 1000000 };
    pthread_cond_timedwait(cv, m, &ts);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies p[0..n) into out[MX_REDIS_URL_MAX + 1] decoding %XX (RFC 3986
 * §2.1), so that a user or a password may hold '@', ':' or '/'. */
static bool pct_decode(const char *p, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            int hi = i + 1 < n ? mx_hex_value((uint8_t)p[i + 1]) : -1;
            int lo = i + 2 < n ? mx_hex_value((uint8_t)p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        out[w++] = c;
    }
    out[w] = '\0';
    return true;
}

/* Digits of p up to a byte not a digit (*end), as a number no larger than max; -1 if none or larger. */
static long parse_digits(const char *p, const char **end, long max)
{
    long v = 0;
    const char *q = p;
    for (; *q >= '0' && *q <= '9'; q++) {
        v = v * 10 + (*q - '0');
        if (v > max)
            return -1;
    }
    *end = q;
    return q == p ? -1 : v;
}

/* Parses url into *u: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (the
 * scheme of redis-cli -u; a user name without ':' is a password, as there),
 * unix:PATH or unix://PATH. Messages never hold the password. */
static bool url_parse(const char *url, struct redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->db = -1;
    size_t n = strlen(url);
    if (n > MX_REDIS_URL_MAX) {
        set_err(err, errlen, "--redis: the URL is longer than %d bytes", MX_REDIS_URL_MAX);
        return false;
    }
    const char *path = !strncmp(url, "unix://", 7) ? url + 7 : !strncmp(url, "unix:", 5) ? url + 5 : NULL;
    if (path) {
        if (!*path || strlen(path) >= sizeof(u->path)) {
            set_err(err, errlen, "--redis unix:PATH: the path must have 1 to %zu bytes", sizeof(u->path) - 1);
            return false;
        }
        memcpy(u->path, path, strlen(path) + 1);
        snprintf(u->server, sizeof(u->server), "unix:%s", u->path);
        return true;
    }
    if (!strncmp(url, "rediss://", 9)) {
        set_err(err, errlen, "--redis: rediss:// (TLS) is not supported; use a local server or a TLS tunnel");
        return false;
    }
    if (strncmp(url, "redis://", 8)) {
        set_err(err, errlen, "--redis takes redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], unix:PATH or unix://PATH");
        return false;
    }
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((colon && !pct_decode(p, (size_t)(colon - p), u->user)) || !pct_decode(pw, (size_t)(at - pw), u->pass)) {
            set_err(err, errlen, "--redis: a %% in the user or the password must be followed by two hex digits");
            return false;
        }
        if (!u->pass[0]) {
            set_err(err, errlen, "--redis: the password is empty (leave out USER:PASSWORD@ for none)");
            return false;
        }
        u->has_pass = true;
        p = at + 1;
    }
    const char *h = p, *hend;
    if (*p == '[') { /* an IPv6 address (RFC 3986 §3.2.2) */
        h = p + 1;
        hend = strchr(h, ']');
        if (!hend) {
            set_err(err, errlen, "--redis: an IPv6 address in [ ] lacks its ]");
            return false;
        }
        p = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        p = hend;
    }
    if (hend == h) {
        set_err(err, errlen, "--redis: the URL names no host");
        return false;
    }
    memcpy(u->host, h, (size_t)(hend - h));
    u->port = MX_REDIS_PORT;
    if (*p == ':') {
        long port = parse_digits(p + 1, &p, 65535);
        if (port < 1) {
            set_err(err, errlen, "--redis: the port must be a number from 1 to 65535");
            return false;
        }
        u->port = (int)port;
    }
    if (*p == '/' && p[1]) {
        u->db = parse_digits(p + 1, &p, MX_REDIS_DB_MAX);
        if (u->db < 0) {
            set_err(err, errlen, "--redis: the database (/DB) must be a number from 0 to %d", MX_REDIS_DB_MAX);
            return false;
        }
    } else if (*p == '/') {
        p++;
    }
    if (*p) {
        set_err(err, errlen, "--redis: the URL goes on after its host, port and database");
        return false;
    }
    bool v6 = memchr(u->host, ':', strlen(u->host)) != NULL;
    snprintf(u->server, sizeof(u->server), "%s%s%s:%d", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
    return true;
}

bool mx_redis_url_check(const char *url, char *err, size_t errlen)
{
    struct redis_url *u = malloc(sizeof(*u));
    if (!u) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    bool ok = url_parse(url, u, err, errlen);
    free(u);
    return ok;
}

/* A command's error reply, or hiredis's error, escaped into why[MX_REDIS_WHY]. */
static void reason(char *why, const char *text)
{
    mx_text_escape(text && *text ? text : "no reply", why, MX_REDIS_WHY);
}

/* Connects, then AUTH ([user] password) and SELECT db as the URL asks.
 * The context, or NULL with why. */
static redisContext *conn_open(const struct redis_rep *r, char *why)
{
    const struct redis_url *u = &r->url;
    struct timeval tv = { MX_REDIS_TIMEOUT_MS / 1000, (MX_REDIS_TIMEOUT_MS % 1000) * 1000 };
    redisContext *c =
        u->path[0] ? redisConnectUnixWithTimeout(u->path, tv) : redisConnectWithTimeout(u->host, u->port, tv);
    if (!c) {
        reason(why, "out of memory");
        return NULL;
    }
    if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        reason(why, c->errstr);
        goto fail;
    }
    for (int k = 0; k < 2; k++) {
        const char *argv[3];
        size_t argvlen[3];
        char db[24];
        int argc = 0;
        if (k == 0 && u->has_pass) { /* AUTH [username] password (Redis 6 ACLs take the user) */
            argv[argc++] = "AUTH";
            if (u->user[0])
                argv[argc++] = u->user;
            argv[argc++] = u->pass;
        } else if (k == 1 && u->db >= 0) {
            snprintf(db, sizeof(db), "%ld", u->db);
            argv[argc++] = "SELECT";
            argv[argc++] = db;
        } else {
            continue;
        }
        for (int i = 0; i < argc; i++)
            argvlen[i] = strlen(argv[i]);
        redisReply *rep = redisCommandArgv(c, argc, argv, argvlen);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            char text[MX_REDIS_WHY];
            snprintf(text, sizeof(text), "%s: %s", argv[0], rep ? rep->str : c->errstr);
            reason(why, text);
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* Appends the command that stores q: XADD key [MAXLEN ~ N] * record JSON
 * (a stream entry of one field), or RPUSH key JSON. */
static bool append_record(redisContext *c, const struct redis_rep *r, const struct rec *q)
{
    const char *argv[MX_REDIS_ARGS];
    size_t argvlen[MX_REDIS_ARGS];
    int n = 0;
    argv[n++] = r->list ? "RPUSH" : "XADD";
    argv[n++] = r->key;
    if (!r->list) {
        if (r->maxlen[0]) {
            argv[n++] = "MAXLEN";
            argv[n++] = "~";
            argv[n++] = r->maxlen;
        }
        argv[n++] = "*";
        argv[n++] = "record";
    }
    for (int i = 0; i < n; i++)
        argvlen[i] = strlen(argv[i]);
    argv[n] = q->data;
    argvlen[n++] = q->len;
    return redisAppendCommandArgv(c, n, argv, argvlen) == REDIS_OK;
}

static void say(const struct redis_rep *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct redis_rep *r, const char *fmt, ...)
{
    if (!r->warnings)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "mxray: redis %s: %s\n", r->label, line);
}

/* Sends one pipelined batch from the head of the queue on c: the commands,
 * then their replies in order. Records answered leave the queue (sent, or
 * refused by an error reply); those not answered stay, marked tried, to be
 * sent again. Called and returns with m held; false when the connection
 * was lost (why says how). */
static bool send_batch(struct redis_rep *r, redisContext *c, char *why)
{
    size_t n = 0, bytes = 0;
    for (struct rec *p = r->head; p && n < MX_REDIS_BATCH && bytes < MX_REDIS_BATCH_BYTES; p = p->next) {
        r->batch[n++] = p;
        bytes += p->len;
    }
    pthread_mutex_unlock(&r->m);
    /* The batch stays at the head of the queue: the merge thread only
     * appends at the tail, and nobody else takes records out. */
    uint64_t again = 0;
    size_t appended = 0, answered = 0;
    char refusal[MX_REDIS_WHY] = "";
    bool ok = true;
    for (; appended < n; appended++) {
        struct rec *q = r->batch[appended];
        again += q->tried;
        q->tried = true;
        if (!append_record(c, r, q)) {
            reason(why, c->errstr);
            ok = false;
            break;
        }
    }
    for (; ok && answered < appended; answered++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
            reason(why, c->err == REDIS_ERR_IO && errno == EAGAIN ? "no reply in time" : c->errstr);
            ok = false;
            break;
        }
        r->refused[answered] = rep->type == REDIS_REPLY_ERROR;
        if (r->refused[answered] && !refusal[0])
            reason(refusal, rep->str);
        freeReplyObject(rep);
    }
    pthread_mutex_lock(&r->m);
    r->resent += again;
    uint64_t refused_before = r->drop_refused;
    for (size_t i = 0; i < answered; i++) {
        struct rec *q = r->head;
        r->head = q->next;
        if (!r->head)
            r->tail = NULL;
        r->bytes -= sizeof(*q) + q->len;
        if (r->refused[i])
            r->drop_refused++;
        else
            r->sent++;
        free(q);
    }
    pthread_cond_broadcast(&r->done);
    if (refusal[0] && !refused_before) { /* the first refusal is told, the others counted */
        pthread_mutex_unlock(&r->m);
        say(r, "the server refused a record (it is dropped; later ones are counted): %s", refusal);
        pthread_mutex_lock(&r->m);
    }
    return ok;
}

/* The sender thread: owns the hiredis context (the synchronous API, every
 * call bounded by MX_REDIS_TIMEOUT_MS), sends the queue in pipelined
 * batches, and after an error or a timeout connects again, waiting
 * MX_REDIS_BACKOFF_MIN_MS doubling to MX_REDIS_BACKOFF_MAX_MS in between. */
static void *sender_main(void *arg)
{
    struct redis_rep *r = arg;
    redisContext *c = NULL;
    int64_t backoff = MX_REDIS_BACKOFF_MIN_MS, not_before = 0; /* no connect before not_before */
    bool ever = false, down = false;                           /* connected once; an outage was told */
    char why[MX_REDIS_WHY];
    pthread_mutex_lock(&r->m);
    for (;;) {
        while (!r->stop && !r->head && c) { /* connects at once: an unreachable server is told early */
            r->idle = true;
            pthread_cond_wait(&r->work, &r->m);
            r->idle = false;
        }
        if (r->stop)
            break;
        if (!c) {
            while (!r->stop && now_ms() < not_before) /* the backoff; stop ends it */
                wait_until(&r->work, &r->m, not_before);
            if (r->stop)
                break;
            pthread_mutex_unlock(&r->m);
            c = conn_open(r, why);
            if (!c && !down)
                say(r, "cannot connect: %s; records wait in a queue of %zu MiB, connecting again", why, r->cap >> 20);
            down |= !c;
            pthread_mutex_lock(&r->m);
            if (c) {
                r->reconnects += ever;
                ever = true;
                continue;
            }
        } else if (send_batch(r, c, why)) {
            backoff = MX_REDIS_BACKOFF_MIN_MS;
            if (down) { /* an outage is told once: when it starts, and when records go through again */
                pthread_mutex_unlock(&r->m);
                say(r, "the server takes records again");
                down = false;
                pthread_mutex_lock(&r->m);
            }
            continue;
        } else { /* lost: the records not answered are sent again once connected */
            redisFree(c);
            c = NULL;
            pthread_mutex_unlock(&r->m);
            if (!down)
                say(r, "lost: %s; records wait in a queue of %zu MiB, connecting again", why, r->cap >> 20);
            down = true;
            pthread_mutex_lock(&r->m);
        }
        not_before = now_ms() + backoff;
        backoff = backoff * 2 > MX_REDIS_BACKOFF_MAX_MS ? MX_REDIS_BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_unlock(&r->m);
    if (c)
        redisFree(c);
    return NULL;
}

/* Waits while records are queued and the sender makes progress (records
 * leave the queue); true when it emptied, false after MX_REDIS_STALL_MS
 * without progress (a server gone or silent). */
static bool drain(struct redis_rep *r)
{
    pthread_mutex_lock(&r->m);
    uint64_t mark = r->sent + r->drop_refused;
    int64_t last = now_ms();
    while (r->head && !r->stopped) {
        wait_until(&r->done, &r->m, last + MX_REDIS_STALL_MS);
        int64_t now = now_ms();
        if (r->sent + r->drop_refused != mark) {
            mark = r->sent + r->drop_refused;
            last = now;
        } else if (now - last >= MX_REDIS_STALL_MS) {
            break;
        }
    }
    bool empty = !r->head;
    pthread_mutex_unlock(&r->m);
    return empty;
}

/* Ends the sender thread (within a call's timeout) and counts what it left
 * in the queue as not delivered; records that come later are not queued. */
static void stop_sender(struct redis_rep *r)
{
    if (r->started) {
        pthread_mutex_lock(&r->m);
        r->stop = true;
        pthread_cond_broadcast(&r->work);
        pthread_mutex_unlock(&r->m);
        pthread_join(r->thread, NULL);
        r->started = false;
    }
    pthread_mutex_lock(&r->m);
    r->stopped = true;
    while (r->head) {
        struct rec *q = r->head;
        r->head = q->next;
        r->drop_left++;
        free(q);
    }
    r->tail = NULL;
    r->bytes = 0;
    pthread_mutex_unlock(&r->m);
}

/* output/json.c hands the record's line here, mostly in one piece. */
static bool rec_write(void *ud, const void *p, size_t n)
{
    struct redis_rep *r = ud;
    if (r->cur_over)
        return true;
    if (n > r->cap - r->cur_len) {
        r->cur_over = true;
        return true;
    }
    struct rec *g = realloc(r->cur, sizeof(*g) + r->cur_len + n);
    if (!g) {
        r->cur_over = true;
        return true;
    }
    r->cur = g;
    memcpy(g->data + r->cur_len, p, n);
    r->cur_len += n;
    return true;
}

/* The merge thread's: serialises e and queues it, or counts it dropped when
 * the queue is full. Never waits on the network. */
static void redis_event(void *ctx, const struct mx_event *e)
{
    struct redis_rep *r = ctx;
    r->cur_len = 0;
    r->cur_over = false;
    bool ok = mx_json_record(&r->w, e) && !r->cur_over && r->cur_len > 0;
    size_t len = ok ? r->cur_len - 1 : 0; /* the line without its '\n' */
    bool tell_full = false;
    pthread_mutex_lock(&r->m);
    r->offered++;
    if (r->stopped) {
        r->drop_left++;
    } else if (ok && sizeof(struct rec) + len <= r->cap - r->bytes) {
        struct rec *q = r->cur;
        r->cur = NULL;
        q->next = NULL;
        q->len = len;
        q->tried = false;
        if (r->tail)
            r->tail->next = q;
        else
            r->head = q;
        r->tail = q;
        r->bytes += sizeof(*q) + len;
        if (r->bytes > r->peak)
            r->peak = r->bytes;
        if (r->idle)
            pthread_cond_signal(&r->work);
    } else {
        r->drop_full++;
        tell_full = !r->said_full;
        r->said_full = true;
    }
    pthread_mutex_unlock(&r->m);
    if (tell_full)
        say(r, "the queue is full (%zu MiB): records are dropped, and counted, until the server takes them",
            r->cap >> 20);
}

/* The summary's "redis" object, once the queue has drained (or the server
 * was given up: then the summary itself is not sent). */
static bool redis_summary(void *ctx, struct mx_event *ev)
{
    struct redis_rep *r = ctx;
    if (!drain(r))
        stop_sender(r);
    pthread_mutex_lock(&r->m);
    uint64_t sent = r->sent, dropped = r->drop_full + r->drop_refused + r->drop_left, resent = r->resent;
    uint64_t reconnects = r->reconnects, peak = r->peak;
    pthread_mutex_unlock(&r->m);
    mx_ev_obj(ev, "redis");
    mx_ev_wire(ev, "server", mx_slice_make(r->url.server, strlen(r->url.server)));
    mx_ev_wire(ev, "key", mx_slice_make(r->key, strlen(r->key)));
    mx_ev_uint(ev, "sent", sent);
    mx_ev_uint(ev, "dropped", dropped);
    mx_ev_uint(ev, "resent", resent);
    mx_ev_uint(ev, "reconnects", reconnects);
    mx_ev_uint(ev, "queue_peak_bytes", peak);
    mx_ev_end(ev);
    return dropped == 0;
}

static bool redis_finish(void *ctx)
{
    struct redis_rep *r = ctx;
    if (r->started)
        drain(r);
    stop_sender(r);
    uint64_t lost = r->drop_full + r->drop_refused + r->drop_left;
    if (lost) { /* not a warning: the output is short, the run fails (-q does not hide it) */
        char parts[3][96];
        int k = 0;
        if (r->drop_full)
            snprintf(parts[k++], sizeof(parts[0]), "%" PRIu64 " dropped when the queue was full", r->drop_full);
        if (r->drop_refused)
            snprintf(parts[k++], sizeof(parts[0]), "%" PRIu64 " refused by the server", r->drop_refused);
        if (r->drop_left)
            snprintf(parts[k++], sizeof(parts[0]), "%" PRIu64 " given up when the server did not answer", r->drop_left);
        fprintf(stderr, "mxray: redis %s: %" PRIu64 " of %" PRIu64 " records were not delivered (%s%s%s%s%s)\n",
                r->label, lost, r->offered, parts[0], k > 1 ? ", " : "", k > 1 ? parts[1] : "", k > 2 ? ", " : "",
                k > 2 ? parts[2] : "");
    }
    return lost == 0;
}

static void redis_free(void *ctx)
{
    struct redis_rep *r = ctx;
    stop_sender(r);
    free(r->cur);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->done);
    pthread_mutex_destroy(&r->m);
    free(r);
}

static const struct mx_reporter_ops redis_ops = {
    .event = redis_event,
    .summary = redis_summary,
    .finish = redis_finish,
    .free = redis_free,
};

/* The mutex and the two conditions, on CLOCK_MONOTONIC (timed waits do not
 * jump with the wall clock). */
static bool sync_init(struct redis_rep *r)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return false;
    bool ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_mutex_init(&r->m, NULL) == 0;
    if (ok && pthread_cond_init(&r->work, &ca) != 0) {
        pthread_mutex_destroy(&r->m);
        ok = false;
    }
    if (ok && pthread_cond_init(&r->done, &ca) != 0) {
        pthread_cond_destroy(&r->work);
        pthread_mutex_destroy(&r->m);
        ok = false;
    }
    pthread_condattr_destroy(&ca);
    return ok;
}

bool mx_report_redis_add(struct mx_sink *s, const struct mx_redis_opts *o, char *err, size_t errlen)
{
    struct redis_rep *r = calloc(1, sizeof(*r));
    if (!r) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    if (!url_parse(o->url, &r->url, err, errlen)) {
        free(r);
        return false;
    }
    if (!sync_init(r)) {
        free(r);
        set_err(err, errlen, "out of memory");
        return false;
    }
    char server[sizeof(r->url.server)];
    mx_text_escape(r->url.server, server, sizeof(server));
    if (r->url.path[0])
        snprintf(r->label, sizeof(r->label), "%s", server);
    else if (r->url.db >= 0)
        snprintf(r->label, sizeof(r->label), "redis://%s/%ld", server, r->url.db);
    else
        snprintf(r->label, sizeof(r->label), "redis://%s", server);
    r->key = o->key;
    r->list = o->list;
    if (o->maxlen)
        snprintf(r->maxlen, sizeof(r->maxlen), "%" PRIu64, o->maxlen);
    r->cap = o->queue_bytes;
    r->warnings = o->warnings;
    mx_json_init(&r->w, rec_write, r);
    if (!mx_json_set_sensor(&r->w, o->sensor)) {
        set_err(err, errlen, "--sensor: longer than %d bytes", MX_JSON_SENSOR_MAX);
        goto fail;
    }
    /* The sender takes no signal: SIGPIPE from a write to a closed socket
     * becomes EPIPE (hiredis 0.14 writes with write(2)), and SIGINT or
     * SIGTERM reach the thread that stops a live capture. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, sender_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        set_err(err, errlen, "cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    r->started = true;
    if (!mx_sink_add(s, &redis_ops, r)) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    return true;
fail:
    redis_free(r);
    return false;
}
