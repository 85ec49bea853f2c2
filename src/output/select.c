/* select.c - `--flow`: which sessions' records reach the reporters. Flow numbers are the
 * ones an unfiltered run gives (the selection sits after the workers' merge). */
#include "output/select.h"

#include "core/idmap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct end_spec {
    struct mx_addr a; /* family 0: any address */
    uint16_t port;    /* 0: any port */
};

struct mx_select {
    uint64_t ids[MX_SELECT_MAX]; /* sorted once added */
    size_t n_ids;
    struct end_spec ends[MX_SELECT_MAX];
    size_t n_ends;
    struct mx_idmap open; /* flows chosen by an address, from flow_start to flow */
    bool failed;          /* out of memory: a chosen session's records were lost */
};

struct mx_select *mx_select_new(void)
{
    return calloc(1, sizeof(struct mx_select));
}

void mx_select_free(struct mx_select *s)
{
    if (!s)
        return;
    mx_idmap_free(&s->open);
    free(s);
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* An address in text (no brackets) into *a; false when it is none. */
static bool parse_addr(const char *t, struct mx_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, t, a->b) == 1)
        a->family = 4;
    else if (inet_pton(AF_INET6, t, a->b) == 1)
        a->family = 6;
    return a->family != 0;
}

/* One item of a --flow list: a number, ADDR, ADDR:PORT, [V6], [V6]:PORT or :PORT. */
static bool parse_item(struct mx_select *s, char *t)
{
    if (*t >= '0' && *t <= '9' && strspn(t, "0123456789") == strlen(t)) {
        errno = 0;
        unsigned long long v = strtoull(t, NULL, 10);
        if (errno || v == 0)
            return false;
        s->ids[s->n_ids++] = v;
        return true;
    }
    struct end_spec e = { { 0, { 0 } }, 0 };
    char *port = NULL, *addr = t;
    if (*t == '[') {
        char *close = strchr(t, ']');
        if (!close || (close[1] && close[1] != ':'))
            return false;
        *close = '\0';
        addr = t + 1;
        port = close[1] ? close + 2 : NULL;
    } else if (strchr(t, ':') == strrchr(t, ':') && strchr(t, ':')) {
        port = strchr(t, ':'); /* one colon: ADDR:PORT or :PORT (more: a bare IPv6 address) */
        *port++ = '\0';
    }
    if (*addr && !parse_addr(addr, &e.a))
        return false;
    if (port) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(port, &end, 10);
        if (errno || *end || end == port || *port == '-' || *port == '+' || v == 0 || v > 65535)
            return false;
        e.port = (uint16_t)v;
    }
    if (!e.a.family && !e.port)
        return false;
    s->ends[s->n_ends++] = e;
    return true;
}

bool mx_select_add(struct mx_select *s, const char *arg, char *err, size_t errlen)
{
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf)) {
        snprintf(err, errlen, "--flow: too long");
        return false;
    }
    for (char *t = buf, *next; t; t = next) {
        next = strchr(t, ',');
        if (next)
            *next++ = '\0';
        if (s->n_ids + s->n_ends >= MX_SELECT_MAX) {
            snprintf(err, errlen, "--flow: at most %d flows and addresses", MX_SELECT_MAX);
            return false;
        }
        if (!parse_item(s, t)) {
            snprintf(err, errlen,
                     "--flow takes flow numbers (3,7), addresses (10.0.0.5, 2001:db8::5), an address "
                     "and port (10.0.0.5:25, [2001:db8::5]:25) or a port (:25)");
            return false;
        }
    }
    qsort(s->ids, s->n_ids, sizeof(s->ids[0]), cmp_id);
    return true;
}

/* Whether the end written in e's fields akey and pkey matches spec x. */
static bool end_matches(const struct mx_event *e, const char *akey, const char *pkey, const struct end_spec *x)
{
    if (x->port && (uint64_t)mx_ev_get_int(e, pkey, -1) != x->port)
        return false;
    if (!x->a.family)
        return true;
    struct mx_slice t = mx_ev_get_str(e, akey);
    char text[64];
    struct mx_addr a;
    if (t.len >= sizeof(text))
        return false;
    memcpy(text, t.ptr, t.len);
    text[t.len] = '\0';
    return parse_addr(text, &a) && mx_addr_eq(&a, &x->a);
}

bool mx_select_keep(void *ud, const struct mx_event *e)
{
    struct mx_select *s = ud;
    if (!e->flow)
        return false;
    if (s->n_ids && bsearch(&e->flow, s->ids, s->n_ids, sizeof(s->ids[0]), cmp_id))
        return true;
    if (!s->n_ends)
        return false;
    if (!strcmp(e->type, "flow_start")) {
        for (size_t i = 0; i < s->n_ends; i++) {
            if (end_matches(e, "client", "client_port", &s->ends[i]) ||
                end_matches(e, "server", "server_port", &s->ends[i])) {
                if (!mx_idmap_put(&s->open, e->flow, (void *)1))
                    s->failed = true;
                return true;
            }
        }
        return false;
    }
    if (!strcmp(e->type, "flow"))
        return mx_idmap_take(&s->open, e->flow) != NULL; /* its last record */
    return mx_idmap_get(&s->open, e->flow) != NULL;
}

bool mx_select_failed(const struct mx_select *s)
{
    return s->failed;
}
