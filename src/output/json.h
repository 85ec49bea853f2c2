/* json.h - one record as one NDJSON line (RFC 8259): the serializer --json and --redis share. */
#ifndef MX_JSON_H
#define MX_JSON_H

#include "event/event.h"

/* A record is handed on in one piece when it fits this buffer (nearly all
 * do), so a file keeps whole lines when a run is cut short; a larger one (a
 * message of 10,000 parts) goes in pieces of this size rather than whole
 * in memory. */
#define MX_JSON_BUF (64u << 10)
/* --sensor NAME: its bytes at most. */
#define MX_JSON_SENSOR_MAX 64

/* The writer of one reporter. */
struct mx_json {
    /* Receives the line in order, in pieces (one for nearly every record:
     * more only when it passes MX_JSON_BUF); false on a write error. */
    bool (*write)(void *ud, const void *p, size_t n);
    void *ud;
    bool failed;   /* a write failed, or a record was too deep to write */
    size_t sensor; /* bytes of ",\"sensor\":\"NAME\"" in sensor_field, 0: none */
    char sensor_field[16 + 6 * MX_JSON_SENSOR_MAX];
    size_t len;
    char buf[MX_JSON_BUF]; /* the record being written */
};

/* Sets up j (zero-filled or not) to hand its lines to write(ud, ...). */
void mx_json_init(struct mx_json *j, bool (*write)(void *ud, const void *p, size_t n), void *ud);
/* From now on every record carries "sensor":NAME right after "type"
 * (escaped as any string is); NULL: none. False when NAME is longer than
 * MX_JSON_SENSOR_MAX bytes (main refuses it before, with more checks). */
bool mx_json_set_sensor(struct mx_json *j, const char *name);
/* Writes e as one line: its fields in order, nested objects and arrays as
 * the producer opened them, no whitespace, then '\n'. False (and j->failed)
 * when a piece could not be written, or when e nests deeper than the writer
 * goes (nothing is written then: a record is never left half written). */
bool mx_json_record(struct mx_json *j, const struct mx_event *e);

#endif
