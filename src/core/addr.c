/* addr.c - address formatting, shared by every module. */
#include "core/mx.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* Formats a as text (dotted quad or RFC 5952 IPv6) into buf of len bytes and
 * returns buf. An unknown family, or a buffer too small, gives "?" (or an
 * empty string when even that does not fit). */
const char *mx_addr_str(const struct mx_addr *a, char *buf, size_t len)
{
    int af = a->family == 6 ? AF_INET6 : AF_INET;
    socklen_t n = len > MX_ADDR_STRLEN ? MX_ADDR_STRLEN : (socklen_t)len;

    if (len == 0)
        goto out;
    if ((a->family == 4 || a->family == 6) && inet_ntop(af, a->b, buf, n))
        goto out;
    if (len >= 2)
        memcpy(buf, "?", 2);
    else
        buf[0] = '\0';
out:
    return buf;
}
