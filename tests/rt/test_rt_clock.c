/* Tests of the clock helpers (rt/rt_clock.h): the relative and absolute
 * sleeps last at least what they are asked, return at once for a time that
 * has passed, and the _intr and relative forms end early on a signal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <time.h>
#include <signal.h>
#include <sys/time.h>

#include "rt_clock.h"

#define MS 1000000LL

static void test_timespec(void **st)
{
    (void)st;
    struct timespec ts = rt_clock_timespec(3 * RT_CLOCK_NS_PER_S + 25);
    assert_int_equal(ts.tv_sec, 3);
    assert_int_equal(ts.tv_nsec, 25);
}

static void test_sleep_ns(void **st)
{
    (void)st;
    int64_t t0 = rt_clock_mono_ns();
    assert_int_equal(rt_clock_sleep_ns(5 * MS), 0);
    assert_true(rt_clock_mono_ns() - t0 >= 5 * MS);
    /* nothing to sleep */
    t0 = rt_clock_mono_ns();
    assert_int_equal(rt_clock_sleep_ns(0), 0);
    assert_int_equal(rt_clock_sleep_ns(-MS), 0);
    assert_true(rt_clock_mono_ns() - t0 < 500 * MS);   /* at once, on a loaded machine */
}

static void test_sleep_until(void **st)
{
    (void)st;
    int64_t t = rt_clock_mono_ns() + 5 * MS;
    rt_clock_sleep_until(t);
    assert_true(rt_clock_mono_ns() >= t);
    assert_int_equal(rt_clock_sleep_until_intr(rt_clock_mono_ns() + MS), 0);
    /* a deadline that has passed */
    int64_t t0 = rt_clock_mono_ns();
    rt_clock_sleep_until(t0 - 10 * MS);
    assert_int_equal(rt_clock_sleep_until_intr(t0 - 10 * MS), 0);
    assert_true(rt_clock_mono_ns() - t0 < 500 * MS);   /* at once, on a loaded machine */
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* ThreadSanitizer defers a signal's handler to the thread's next intercepted
 * libc call (clock_nanosleep is not one), so the handler may run only after
 * the interrupted sleep has returned: wait (up to 1 s) for the count, with
 * nanosleep, which sanitizers intercept, rather than read it at once. */
static int alarms_after(int n)
{
    const struct timespec ms = {0, 1000000};
    for (int i = 0; i < 1000 && alarms < n; i++)
        nanosleep(&ms, NULL);
    return alarms;
}

/* SIGALRM after 10 ms while a 2 s sleep runs: the _intr and relative sleeps
 * return -EINTR long before the 2 s, rt_clock_sleep_until sleeps on. */
static void test_signal(void **st)
{
    (void)st;
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    const struct itimerval once = {.it_value = {.tv_sec = 0, .tv_usec = 10000}};

    alarms = 0;
    int64_t t0 = rt_clock_mono_ns();
    setitimer(ITIMER_REAL, &once, NULL);
    assert_int_equal(rt_clock_sleep_until_intr(t0 + 2000 * MS), -EINTR);
    assert_int_equal(alarms_after(1), 1);
    assert_true(rt_clock_mono_ns() - t0 < 1000 * MS);

    t0 = rt_clock_mono_ns();
    setitimer(ITIMER_REAL, &once, NULL);
    assert_int_equal(rt_clock_sleep_ns(2000 * MS), -EINTR);
    assert_int_equal(alarms_after(2), 2);
    assert_true(rt_clock_mono_ns() - t0 < 1000 * MS);

    t0 = rt_clock_mono_ns();
    setitimer(ITIMER_REAL, &once, NULL);
    rt_clock_sleep_until(t0 + 100 * MS);
    assert_int_equal(alarms_after(3), 3);
    assert_true(rt_clock_mono_ns() - t0 >= 100 * MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timespec),
        cmocka_unit_test(test_sleep_ns),
        cmocka_unit_test(test_sleep_until),
        cmocka_unit_test(test_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
