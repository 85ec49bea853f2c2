/* journey.h - a message's journey: the sessions one message crossed in a
 * capture (submission, relay, LMTP delivery, retrieval), linked by its
 * Message-ID and its body's digest. */
#ifndef MX_JOURNEY_H
#define MX_JOURNEY_H

#include "event/event.h"

/* Subscribes the journey reporter to a sink: it reads the `message` records
 * and the transactions, logins and failures of their sessions, and at the
 * end of the run emits one `journey` record per message seen in more than
 * one transfer (docs/manual.md, Journeys). Returns false when out of memory. */
bool mx_journey_add(struct mx_sink *s);

#endif
