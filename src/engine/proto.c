/* proto.c - looking protocols up by port and by nDPI id; the ports the user names. */
#include "engine/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mx_protocols_init(struct mx_protocols *p, const struct mx_proto *protos, size_t n)
{
    memset(p, 0, sizeof(*p));
    p->protos = protos;
    p->n = n;
}

/* "a, b or c": the names of the table. */
static void names(const struct mx_protocols *p, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i == 0 ? "" : i + 1 == p->n ? " or " : ", ", p->protos[i].name);
}

bool mx_protocols_add_port(struct mx_protocols *p, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    const struct mx_proto *pr = NULL;
    for (size_t i = 0; eq && i < p->n; i++)
        if (strlen(p->protos[i].name) == (size_t)(eq - spec) && !strncmp(spec, p->protos[i].name, (size_t)(eq - spec)))
            pr = &p->protos[i];
    if (!pr) {
        char all[128];
        names(p, all, sizeof(all));
        snprintf(err, errlen, "--port wants PROTO=PORT[/tls] with PROTO %s, not \"%s\"", all, spec);
        return false;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(eq + 1, &end, 10);
    bool tls = !strcmp(end, "/tls");
    if (errno || end == eq + 1 || v == 0 || v > 65535 || (*end && !tls)) {
        snprintf(err, errlen, "--port: \"%s\" is not a port from 1 to 65535", eq + 1);
        return false;
    }
    if (p->n_named == MX_MAX_NAMED_PORTS) {
        snprintf(err, errlen, "--port: at most %d ports can be named", MX_MAX_NAMED_PORTS);
        return false;
    }
    p->named[p->n_named].port = (uint16_t)v;
    p->named[p->n_named].tls = tls;
    p->named[p->n_named].proto = pr;
    p->n_named++;
    return true;
}

const struct mx_proto *mx_protocols_by_port(const struct mx_protocols *p, uint16_t port, bool *tls)
{
    if (!p)
        return NULL;
    for (size_t i = p->n_named; i-- > 0;) {
        if (p->named[i].port == port) {
            if (tls)
                *tls = p->named[i].tls;
            return p->named[i].proto;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < p->protos[i].n_ports; j++) {
            if (p->protos[i].ports[j].port == port) {
                if (tls)
                    *tls = p->protos[i].ports[j].tls;
                return &p->protos[i];
            }
        }
    }
    return NULL;
}

const struct mx_proto *mx_protocols_by_ndpi(const struct mx_protocols *p, uint16_t id, bool *tls)
{
    for (size_t i = 0; p && id && i < p->n; i++) {
        if (p->protos[i].ndpi_plain == id || p->protos[i].ndpi_tls == id) {
            if (tls)
                *tls = p->protos[i].ndpi_tls == id;
            return &p->protos[i];
        }
    }
    return NULL;
}

const struct mx_carrier *mx_protocols_carrier_by_port(const struct mx_protocols *p, uint16_t port)
{
    for (size_t i = 0; p && i < p->n_named; i++)
        if (p->named[i].port == port)
            return NULL;
    for (size_t i = 0; p && i < p->n_carriers; i++)
        for (size_t j = 0; j < p->carriers[i].n_ports; j++)
            if (p->carriers[i].ports[j] == port)
                return &p->carriers[i];
    return NULL;
}

const struct mx_carrier *mx_protocols_carrier_by_ndpi(const struct mx_protocols *p, uint16_t id)
{
    for (size_t i = 0; p && id && i < p->n_carriers; i++)
        for (size_t j = 0; j < MX_ARRAY_LEN(p->carriers[i].ndpi); j++)
            if (p->carriers[i].ndpi[j] == id)
                return &p->carriers[i];
    return NULL;
}

const struct mx_proto *mx_protocols_by_name(const struct mx_protocols *p, const char *name, size_t n)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (strlen(p->protos[i].name) == n && !memcmp(p->protos[i].name, name, n))
            return &p->protos[i];
    return NULL;
}

void mx_protocols_filter(const struct mx_protocols *p, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "tcp and (");
    const char *sep = "";
    for (size_t i = 0; i < p->n && n < len; i++)
        for (size_t j = 0; j < p->protos[i].n_ports && n < len; j++, sep = " or ")
            n += (size_t)snprintf(buf + n, len - n, "%sport %u", sep, p->protos[i].ports[j].port);
    for (size_t i = 0; i < p->n_named && n < len; i++, sep = " or ")
        n += (size_t)snprintf(buf + n, len - n, "%sport %u", sep, p->named[i].port);
    for (size_t i = 0; i < p->n_carriers && n < len; i++)
        for (size_t j = 0; j < p->carriers[i].n_ports && n < len; j++, sep = " or ")
            n += (size_t)snprintf(buf + n, len - n, "%sport %u", sep, p->carriers[i].ports[j]);
    if (n < len)
        snprintf(buf + n, len - n, ")");
}
