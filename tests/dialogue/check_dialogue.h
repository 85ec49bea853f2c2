/* check_dialogue.h - what the Check suites of the dissectors share: running a
 * transcript through the engine and checking fields of its records. */
#ifndef MX_TEST_CHECK_DIALOGUE_H
#define MX_TEST_CHECK_DIALOGUE_H

#include <check.h>
#include <string.h>

#include "dialogue/harness.h"

#define C MX_DIR_C2S
#define S MX_DIR_S2C
#define N(t) (sizeof(t) / sizeof(t[0]))
#define SPLIT_OK(t, o) ck_assert_uint_eq(mx_harness_split_check(t, N(t), o), SIZE_MAX)

static inline char *run(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o)
{
    return mx_harness_run(t, n, o, SIZE_MAX, false);
}

static inline const char *get(json_object *o, const char *path)
{
    const char *v = mx_harness_get(o, path);
    return v ? v : "(absent)";
}

/* The field at `path` of the nth record of `type` equals `want`. */
static inline void expect(const char *out, const char *type, int nth, const char *path, const char *want)
{
    json_object *r = mx_harness_record(out, type, nth);
    ck_assert_msg(r != NULL, "no %s #%d", type, nth);
    ck_assert_msg(!strcmp(get(r, path), want), "%s #%d %s: got %s, want %s", type, nth, path, get(r, path), want);
    json_object_put(r);
}

#endif
