/* Helpers shared by the hal unit tests (include after cmocka.h). */
#ifndef PACD_HAL_TEST_UTIL_H
#define PACD_HAL_TEST_UTIL_H

#include <math.h>

/* cmocka 1.1 (Debian 12) only compares floats; this compares doubles. NaN
 * never passes. */
#define assert_double_equal(a, b, eps)                                                      \
    do {                                                                                    \
        double a_ = (a), b_ = (b), e_ = (eps);                                              \
        if (!(fabs(a_ - b_) <= e_))                                                         \
            fail_msg("%s = %.17g, expected %s = %.17g (tolerance %g)", #a, a_, #b, b_, e_); \
    } while (0)

#endif
