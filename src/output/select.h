/* select.h - `--flow`: the records of chosen sessions only, by flow number or by address and port. */
#ifndef MX_SELECT_H
#define MX_SELECT_H

#include "event/event.h"

#define MX_SELECT_MAX 1024 /* flow numbers and addresses named, all --flow options together */

struct mx_select;

/* An empty selection (it keeps nothing until added to); NULL when out of memory. */
struct mx_select *mx_select_new(void);
/* Adds one --flow argument: a comma list of flow numbers (as the records'
 * "flow"), addresses (10.0.0.5, 2001:db8::5, [2001:db8::5]), address and
 * port (10.0.0.5:25, [2001:db8::5]:25) or a port (:25); an address or port
 * matches either end of a session. False with err when one does not parse
 * or past MX_SELECT_MAX. */
bool mx_select_add(struct mx_select *s, const char *arg, char *err, size_t errlen);
/* Whether the event belongs to a chosen session (mx_sink_select's keep;
 * ud is the selection). A session chosen by address is known by its
 * flow_start record and forgotten after its flow record, so memory follows
 * the sessions open at once. Flowless records are not kept. */
bool mx_select_keep(void *ud, const struct mx_event *e);
/* A chosen session's records were lost for want of memory (the run fails). */
bool mx_select_failed(const struct mx_select *s);
void mx_select_free(struct mx_select *s);

#endif
