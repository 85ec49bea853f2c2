/* check_main.h - what every Check suite's program does: run the suite and exit non-zero
 * when a test failed. */
#ifndef MX_CHECK_MAIN_H
#define MX_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Runs the suite make_suite() builds; the exit status of main(). */
static inline int mx_check_run(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The main() of a suite built by make_suite. */
#define MX_CHECK_MAIN(make_suite)          \
    int main(void)                         \
    {                                      \
        return mx_check_run(make_suite()); \
    }

#endif
