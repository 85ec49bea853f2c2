/* registry.h - the mail protocols mxray dissects: names, ports and dissectors, which main
 * hands to the engine (engine/proto.h). */
#ifndef MX_REGISTRY_H
#define MX_REGISTRY_H

#include "engine/proto.h"

/* The table, in one place: the flow table, the default capture filter and
 * the documentation all read it. */
extern const struct mx_proto mx_registry[];
extern const size_t mx_registry_len;

/* The carriers: tunnels whose handshake comes before a mail protocol. */
extern const struct mx_carrier mx_registry_carriers[];

/* Fills p with the table and no named port. */
void mx_registry_protocols(struct mx_protocols *p);

#endif
