/* redis.h - `--redis URL`: every record to a Redis stream (XADD) or list (RPUSH), sent by a thread of its own. */
#ifndef MX_REDIS_H
#define MX_REDIS_H

#include "event/event.h"

#include <stddef.h>
#include <stdint.h>

#define MX_REDIS_KEY_DEFAULT "mxray"
#define MX_REDIS_MAXLEN_DEFAULT 1000000u /* XADD MAXLEN ~ N */
#define MX_REDIS_QUEUE_DEFAULT_MIB 64u   /* --redis-queue */
#define MX_REDIS_QUEUE_MAX_MIB 65536u
#define MX_REDIS_URL_MAX 1024 /* --redis URL, bytes */
#define MX_REDIS_KEY_MAX 1024 /* --redis-key KEY, bytes */

/* What --redis and its companions ask for. */
struct mx_redis_opts {
    const char *url;    /* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], unix:PATH or unix://PATH */
    const char *key;    /* the stream's or the list's key */
    bool list;          /* RPUSH onto a list instead of XADD to a stream */
    uint64_t maxlen;    /* the stream's cap (XADD MAXLEN ~ maxlen); 0: none */
    size_t queue_bytes; /* records waiting to be sent, bytes at most; past it a record is dropped */
    const char *sensor; /* --sensor NAME in every record, or NULL */
    bool warnings;      /* say on stderr when the server cannot be reached, and what is dropped */
};

/* Whether url is one --redis takes; false with err (which never holds the
 * URL's password) saying what is wrong. */
bool mx_redis_url_check(const char *url, char *err, size_t errlen);

/* Subscribes the Redis reporter to the sink and starts its sender thread,
 * which connects (and reconnects) on its own: a server that cannot be
 * reached is not an error here. The reporter's event callback never waits
 * on the network; its summary hook adds the "redis" object to the summary
 * record after waiting (bounded) for the queue to drain; its finish says on
 * stderr how many records were not delivered and returns false if any were.
 * False with err when the URL is wrong or out of memory. */
bool mx_report_redis_add(struct mx_sink *s, const struct mx_redis_opts *o, char *err, size_t errlen);

#endif
