/* rt_clock — the clocks pacd reads, in int64 nanoseconds, the absolute
 * sleep the real-time threads wait with, and the relative sleep of polls.
 *
 * CLOCK_MONOTONIC times every deadline, age and duration (it never jumps);
 * CLOCK_REALTIME stamps what leaves the process (log records, telemetry).
 * Reading a clock is a vDSO call on Linux: no system call, no lock.
 * Every function here is RT-safe and may be called from any thread.
 */
#ifndef RT_CLOCK_H
#define RT_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define RT_CLOCK_NS_PER_S 1000000000LL

/* The struct timespec of ns nanoseconds (ns >= 0). */
static inline struct timespec rt_clock_timespec(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / RT_CLOCK_NS_PER_S, .tv_nsec = ns % RT_CLOCK_NS_PER_S};
    return ts;
}

/* CLOCK_MONOTONIC now, ns since an arbitrary start (boot). */
static inline int64_t rt_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RT_CLOCK_NS_PER_S + ts.tv_nsec;
}

/* CLOCK_REALTIME now, ns since the Unix epoch (UTC). */
static inline int64_t rt_clock_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RT_CLOCK_NS_PER_S + ts.tv_nsec;
}

/* Sleep until CLOCK_MONOTONIC reaches t_mono_ns (absolute, ns; at once when
 * it has passed), or until a signal handler runs. 0 at the deadline, -EINTR
 * after a handler: for a thread whose handler asks it to stop (the caller
 * checks its flag and sleeps again if not). */
static inline int rt_clock_sleep_until_intr(int64_t t_mono_ns)
{
    struct timespec deadline = rt_clock_timespec(t_mono_ns);
    return -clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
}

/* Sleep until CLOCK_MONOTONIC reaches t_mono_ns (absolute, ns; at once when
 * it has passed), so a late wake-up does not push back later deadlines.
 * Signals do not shorten the sleep. */
static inline void rt_clock_sleep_until(int64_t t_mono_ns)
{
    while (rt_clock_sleep_until_intr(t_mono_ns) == -EINTR)
        ;
}

/* Sleep ns nanoseconds of CLOCK_MONOTONIC from now (relative; at once when
 * ns <= 0), as nanosleep does: for polls and pauses, never for a deadline (a
 * late wake-up adds up; use rt_clock_sleep_until). A signal handler ends the
 * sleep early: 0 after the whole sleep, -EINTR after a handler. */
static inline int rt_clock_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return 0;
    struct timespec ts = rt_clock_timespec(ns);
    return -clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

#endif
