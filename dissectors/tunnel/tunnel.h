/* tunnel.h - SOCKS4, SOCKS4a, SOCKS5 and HTTP CONNECT tunnels in front of a mail protocol:
 * the carrier (engine/proto.h) that reads their handshake and hands the flow to the mail
 * protocol inside. */
#ifndef MX_TUNNEL_H
#define MX_TUNNEL_H

#include "engine/proto.h"

/* Reads a tunnel's handshake on a proxy's port; writes one "tunnel" record per CONNECT when
 * it carries mail, nothing when it does not. */
extern const struct mx_dissector mx_tunnel_dissector;

#endif
