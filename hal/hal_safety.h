/* hal_safety — the safety filter between the policy and the arm: one policy
 * action in, one command the arm can follow out (hal_safety.c, docs/hal.md).
 * Pure functions, RT-safe.
 */
#ifndef PACD_HAL_SAFETY_H
#define PACD_HAL_SAFETY_H

#include <stdint.h>

#include "hal_robot.h"

/* Bits of hal_safety_result_t.flags, logged in Step.safety_flags. */
enum {
    HAL_SAFETY_NONFINITE = 1u << 0,     /* NaN/Inf in the action: held */
    HAL_SAFETY_BAD_SHAPE = 1u << 1,     /* wrong dimension / space: held */
    HAL_SAFETY_OUT_OF_SPEC = 1u << 2,   /* far outside the bounds (> tolerance): held */
    HAL_SAFETY_CLAMPED = 1u << 3,       /* clamped to the velocity bounds */
    HAL_SAFETY_JOINT_LIMIT = 1u << 4,   /* slowed so a joint stops inside its range */
    HAL_SAFETY_ACCEL_LIMIT = 1u << 5,   /* velocity change limited by ddq_max */
    HAL_SAFETY_HELD = 1u << 6,          /* output is a hold (any reason) */
    HAL_SAFETY_WORKSPACE = 1u << 7,     /* Cartesian velocity slowed at the workspace box */
    HAL_SAFETY_GRIPPER_IGNORED = 1u << 8, /* gripper value given, robot has none */
};

typedef struct {
    double period_s;            /* control period, s (0.05 at 20 Hz) */
    double out_of_spec_factor;  /* |a| > factor * bound -> hold; default 2.0 */
    double limit_margin;        /* rad kept clear of each joint limit; default 0.02 */
} hal_safety_config_t;

typedef struct {
    uint32_t flags;             /* HAL_SAFETY_* */
    int hold;                   /* 1: command a hold instead */
} hal_safety_result_t;

/* Filter one policy action into a command. `action` has n values in the
 * action space `space` with per-dimension bounds low/high (checkpoint's action
 * spec, rad/s; gripper unitless); `state` is the latest robot state; `prev` the
 * previous command sent (NULL at start). Clamps to bounds and to robot->dq_max, slows
 * any joint so that it can stop (at ddq_max) before q_min/q_max minus the
 * margin, limits the change from prev to ddq_max * period. Non-finite, wrong
 * shape or out-of-spec actions give result->hold = 1 and a zero command.
 *
 * Exactly (docs/hal.md has the reasoning):
 *  1. Hold (result->hold = 1, out = zeros of the expected shape, flag HELD +):
 *     BAD_SHAPE   space unknown, gripper space on a robot without gripper,
 *                 n != n_joints (+1 with gripper), state->n_joints wrong, or
 *                 bounds non-finite / low > high;
 *     NONFINITE   NaN/Inf in the action or in state q/dq;
 *     OUT_OF_SPEC |a_i| > out_of_spec_factor * max(|low_i|, |high_i|).
 *  2. Joints, in this order: clamp to [low_i, high_i] and +-dq_max_i
 *     (CLAMPED); limit |v_i - p_i| to ddq_max_i * period_s where p = prev's
 *     joint values if prev is a joint-velocity command with >= n_joints
 *     finite values, else state->dq (ACCEL_LIMIT); clamp to +-dq_max_i again
 *     (CLAMPED); joint-limit guard, last so it wins over the ramp: with d the
 *     distance from state->q_i to (q_max_i - margin) for v_i > 0 (to q_min_i
 *     + margin for v_i < 0), v_i is zero if d <= 0, else the largest speed
 *     whose stop distance fits in d, the stop distance being the worse of
 *     (a) v*T + v^2/(2*ddq_max): v reached at once, held for one period,
 *     then braking; (b) the joint's velocity going from state->dq_i toward
 *     v at ddq_max during the period (a slowing joint still covers ground),
 *     then braking. So |v| <= sqrt(2*ddq_max*d) always (JOINT_LIMIT).
 *     Moving away from a limit is never restricted by this guard.
 *  3. Gripper: clamp to [low, high] and [-1, 1] (CLAMPED).
 * low/high NULL mean +-dq_max (joints) and +-1 (gripper). config NULL means
 * period 0.05 s, factor 2.0, margin 0.02 rad; fields that are non-finite,
 * period <= 0, factor < 1 or margin < 0 take those defaults too.
 * RT-safe, pure, no allocation. Returns 0; or -EINVAL when robot, state, out,
 * result or action (with n > 0) is NULL, and then out/result (if not NULL)
 * hold. */
int hal_safety_filter(const hal_robot_t *robot, const hal_safety_config_t *config,
                      const hal_state_t *state, hal_space_t space,
                      const float *action, int n, const float *low,
                      const float *high, const hal_command_t *prev,
                      hal_command_t *out, hal_safety_result_t *result);

#endif
