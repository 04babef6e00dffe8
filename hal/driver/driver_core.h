/* driver_core — the robot side of the bridge (docs/bridge.md): turns targets
 * that arrive at the policy rate (20 Hz) into a smooth motion at the
 * driver's control rate (1 kHz) within the robot description's velocity,
 * acceleration and jerk limits, decelerates to rest within those limits when
 * the targets go stale or a hold arrives, and counts what it did.
 *
 * Pure and deterministic: no I/O, no allocation, no clock reads (the caller
 * passes the time). A driver program (pacd-fake-driver; later the libfranka
 * and Intera ones) receives targets in its I/O thread, hands them over to
 * its control thread, and there calls driver_core_target() for each new one
 * and driver_core_step() once per control period; the step's joint
 * velocities go to the arm.
 *
 * Per joint and period (dt), with v = the commanded velocity, a = its
 * acceleration, A = ddq_max, J = dddq_max (h = J dt):
 *   - the velocity target: the target's joint velocity (VELOCITY), or the
 *     velocity that reaches the target position in one policy period,
 *     slowed to what a stop at A allows (POSITION); 0 when stopping; clamped
 *     to +-dq_max (counted in velocity_clamps);
 *   - the new acceleration is the one in [a - h, a + h] and [-A, A] whose
 *     jerk-limited ramp back to zero acceleration (steps of h) lands the
 *     velocity on the target, or the nearest end of that window (so the arm
 *     accelerates at full jerk toward the target and brakes into it without
 *     overshoot);
 *   - v += a dt, kept within +-dq_max; q += v dt.
 * So |v| <= dq_max, |a| <= ddq_max and |a_k - a_k-1| <= dddq_max dt on every
 * period, and a stop from (v, a) takes the time-optimal jerk-limited profile.
 *
 * Targets: seq must grow (an older or equal seq is refused: duplicate or
 * reordered, counted in targets_old); values finite and of the robot's
 * shape. A target older than stale_periods policy periods (its receive time
 * against now) is stale: the core decelerates to rest (STOPPING, counted once
 * per target in stale_stops) and stays there. A hold target decelerates to
 * rest (HOLDING); nothing moves again until a target with a higher seq (a
 * fresh one) arrives.
 *
 * Units: rad, rad/s, rad/s^2, rad/s^3, times ns (the driver's
 * CLOCK_MONOTONIC), periods s. */
#ifndef PACD_DRIVER_CORE_H
#define PACD_DRIVER_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "hal_robot.h"

typedef enum {
    DRIVER_TARGET_VELOCITY = 1, /* values: rad/s per joint */
    DRIVER_TARGET_POSITION = 2, /* values: rad per joint */
} driver_target_mode_t;

/* A target as the driver received it. */
typedef struct {
    uint64_t seq;            /* > 0, grows */
    int64_t time_ns;         /* when the driver received it (its clock), ns */
    driver_target_mode_t mode;
    int hold;                /* 1: decelerate and hold (values ignored) */
    int n;                   /* robot->n_joints (ignored for a hold) */
    double values[HAL_MAX_JOINTS];
    int has_gripper;         /* 1: gripper present (robots with a gripper) */
    double gripper;          /* -1 close .. 1 open: fraction of gripper_speed */
} driver_target_t;

/* Mirrors pacd.v1.DriverState.Mode. */
typedef enum {
    DRIVER_IDLE = 1,     /* at rest: no target yet, or stopped after stale / hold */
    DRIVER_TRACKING = 2, /* following a fresh target */
    DRIVER_STOPPING = 3, /* the target went stale: decelerating */
    DRIVER_HOLDING = 4,  /* a hold target: decelerating, then at rest */
} driver_mode_t;

typedef struct {
    double period_s;        /* control period, 0 = 0.001 (1 kHz) */
    double policy_period_s; /* target period, 0 = 0.05 (20 Hz) */
    double stale_periods;   /* a target older than this many policy periods is stale, 0 = 2 */
} driver_core_options_t;

typedef struct {
    uint64_t ticks;            /* driver_core_step calls */
    uint64_t targets_received; /* targets taken (holds included) */
    uint64_t targets_refused;  /* wrong shape, non-finite, bad mode */
    uint64_t targets_old;      /* seq not newer than the newest taken */
    uint64_t stale_stops;      /* decelerations because the target went stale */
    uint64_t holds;            /* hold targets taken */
    uint64_t velocity_clamps;  /* steps where a target asked more than dq_max */
} driver_core_counters_t;

/* What to command for this control period. */
typedef struct {
    driver_mode_t mode;
    int moving;                  /* 1 while any joint's velocity is not 0 */
    double q[HAL_MAX_JOINTS];    /* commanded position after the period, rad */
    double dq[HAL_MAX_JOINTS];   /* commanded velocity during the period, rad/s */
    double ddq[HAL_MAX_JOINTS];  /* its acceleration, rad/s^2 */
    double gripper;              /* -1..1 gripper velocity fraction; 0 unless tracking */
    uint64_t target_seq;         /* the newest target taken, 0 = none */
} driver_output_t;

typedef struct {
    const hal_robot_t *robot;
    double dt, policy_period_s, stale_periods;
    int64_t stale_ns;
    driver_mode_t mode;
    driver_target_t target; /* the newest target taken (seq 0 = none) */
    uint64_t stale_seq;     /* the target whose staleness was counted */
    double q[HAL_MAX_JOINTS], v[HAL_MAX_JOINTS], a[HAL_MAX_JOINTS];
    driver_core_counters_t counters;
} driver_core_t;

/* Set up *core for robot (its dq_max, ddq_max, dddq_max: every one > 0)
 * at rest at q0 (robot->n_joints rad; NULL = q_home), IDLE. opts NULL or
 * zero fields: the defaults. 0, or -EINVAL with a message in err (NULL
 * robot, a missing jerk limit, options out of range: period_s in
 * (0, 0.1], policy_period_s in [period_s, 10], stale_periods in [1, 100]).
 * Init-only (RT-safe in fact: no allocation). */
int driver_core_init(driver_core_t *core, const hal_robot_t *robot, const double *q0,
                     const driver_core_options_t *opts, char *err, size_t errlen);

/* Offer a target (t->time_ns: its receive time). 0: taken (the next step
 * follows it); -EALREADY: seq not newer than the newest taken (duplicate or
 * reordered), ignored; -EINVAL: refused (NULL, seq 0, wrong n, non-finite
 * value, unknown mode, a gripper on a robot without one), ignored. Each
 * counted. RT-safe. */
int driver_core_target(driver_core_t *core, const driver_target_t *t);

/* One control period ending at now_ns: the command in *out. RT-safe. */
void driver_core_step(driver_core_t *core, int64_t now_ns, driver_output_t *out);

/* Set the commanded position to the measured q (robot->n_joints rad), at
 * rest, IDLE: after the arm was moved by something else (a reset, error
 * recovery). Only while at rest; -EBUSY while moving, else 0. RT-safe. */
int driver_core_sync(driver_core_t *core, const double *q);

/* A new peer (a handshake from a restarted pacd): forget the newest target
 * so the new session's seq numbers (from 1) are taken; the arm decelerates
 * to rest until the first target of the session. policy_period_s: the
 * peer's target period (s, [period_s, 10]; staleness = stale_periods of it),
 * 0 = keep. 0 or -EINVAL (period out of range: nothing changed). RT-safe. */
int driver_core_new_session(driver_core_t *core, double policy_period_s);

/* The counters. RT-safe. */
driver_core_counters_t driver_core_counters(const driver_core_t *core);

/* The distance a joint at velocity v (rad/s, acceleration a rad/s^2 in the
 * direction of v or against it) covers until rest when it brakes as hard as
 * ddq_max A and dddq_max J allow, in continuous time: what the limits allow,
 * for tests and the docs. rad (>= 0). Pure. */
double driver_stop_distance(double v, double a, double A, double J);

#endif
