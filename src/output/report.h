/* report.h - the reporters that know no protocol: NDJSON, the text timeline, the HTML report. */
#ifndef MX_REPORT_H
#define MX_REPORT_H

#include "event/event.h"

#include <stdio.h>

/* Each subscribes a reporter writing to `out` (closed at the end when close_out)
 * to the sink; false when out of memory. */
bool mx_report_json_add(struct mx_sink *s, FILE *out, bool close_out);
/* What the NDJSON writers (--json, --redis) add to what they write. */
struct mx_json_opts {
    const char *sensor; /* --sensor NAME: "sensor" right after "type" in every record; NULL: none */
    bool flush_each;    /* fflush after every record (-i: a pipe's reader sees records as they come) */
};
/* The same with opts (NULL: none); false also for a sensor name longer
 * than MX_JSON_SENSOR_MAX (output/json.h). */
bool mx_report_json_add_opts(struct mx_sink *s, FILE *out, bool close_out, const struct mx_json_opts *opts);
/* The text timeline, in time order within a session (docs/manual.md, "Time
 * order"): a session's lines are held until it ends, or, with hold_secs > 0
 * (main gives MX_TEXT_LIVE_HOLD with -i), until the capture clock is that
 * many seconds past them. */
bool mx_report_text_add(struct mx_sink *s, FILE *out, bool close_out, bool color, unsigned hold_secs);
#define MX_TEXT_LIVE_HOLD 5
/* The self-contained HTML report: an overview, and a sequence diagram for up
 * to max_diagrams sessions (0: the default, 200), those with failures first.
 * `protocols` names the sessions it shows, in its header ("A, B and C").
 * `memory`: bytes the sessions open at once may hold together for their
 * diagrams (main gives an eighth of --memory; 0: no limit); past it, a
 * session keeps no more rows and its diagram says so. */
bool mx_report_html_add(struct mx_sink *s, FILE *out, bool close_out, size_t max_diagrams, const char *protocols,
                        size_t memory);

#endif
