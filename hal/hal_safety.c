/* hal_safety — the safety filter between the policy and the backend.
 * Pure function, no allocation; the rules are in hal.h and docs/hal.md. */
#include "hal_safety.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define DEFAULT_PERIOD_S 0.05     /* 20 Hz control (PAC paper) */
#define DEFAULT_OUT_OF_SPEC 2.0
#define DEFAULT_LIMIT_MARGIN 0.02 /* rad */

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Distance a joint covers, toward a limit, when it starts the period at
 * velocity u, is commanded v for one period T and then brakes to rest, with
 * its velocity changing at most at rate a (the backend's ramp; velocities
 * signed, positive = toward the limit). Two models, take the worse:
 *   - instant tracking: v for T, then brake:      v*T + v^2/(2a)
 *   - ramp lag: from u toward v at a during T (a decelerating joint keeps
 *     covering ground while it slows), then brake from where it got.
 * Non-decreasing in v. */
static double stop_distance(double u, double v, double a, double T)
{
    double inst = v * T + (v > 0 ? v * v / (2.0 * a) : 0.0);
    double tau = fmin(fabs(v - u) / a, T);
    double u1 = u + copysign(a * tau, v - u);
    double s = 0.5 * (u + u1) * tau + u1 * (T - tau);
    double lag = s + (u1 > 0 ? u1 * u1 / (2.0 * a) : 0.0);
    return fmax(inst, lag);
}

/* Largest v in [0, want] (speed toward a limit at distance d > 0) whose
 * stop distance fits in d; 0 if none does (then braking at once is the best
 * there is). Bisection with a fixed count: bounded time, result feasible. */
static double limit_speed(double want, double u, double d, double a, double T)
{
    if (stop_distance(u, want, a, T) <= d)
        return want;
    double lo = 0.0, hi = want;
    if (stop_distance(u, lo, a, T) > d)
        return 0.0;
    for (int i = 0; i < 48; i++) {
        double mid = 0.5 * (lo + hi);
        if (stop_distance(u, mid, a, T) <= d)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void hold_output(hal_command_t *out, hal_safety_result_t *result, uint32_t why)
{
    for (int i = 0; i < HAL_MAX_ACTION; i++)
        out->values[i] = 0.0;
    result->flags |= why | HAL_SAFETY_HELD;
    result->hold = 1;
}

int hal_safety_filter(const hal_robot_t *robot, const hal_safety_config_t *config,
                      const hal_state_t *state, hal_space_t space, const float *action,
                      int n, const float *low, const float *high, const hal_command_t *prev,
                      hal_command_t *out, hal_safety_result_t *result)
{
    if (result) {
        result->flags = 0;
        result->hold = 0;
    }
    int bad_args = !robot || !state || !out || !result || (!action && n > 0) ||
                   robot->n_joints < 1 || robot->n_joints > HAL_MAX_JOINTS;
    if (out) {
        memset(out, 0, sizeof *out);
        out->space = HAL_SPACE_JOINT_VELOCITY;
        out->n = robot && robot->n_joints >= 1 && robot->n_joints <= HAL_MAX_JOINTS
                     ? robot->n_joints
                     : 0;
    }
    if (bad_args) {
        if (out && result)
            hold_output(out, result, HAL_SAFETY_BAD_SHAPE);
        return -EINVAL;
    }

    double T = DEFAULT_PERIOD_S, factor = DEFAULT_OUT_OF_SPEC, margin = DEFAULT_LIMIT_MARGIN;
    if (config) {
        if (isfinite(config->period_s) && config->period_s > 0)
            T = config->period_s;
        if (isfinite(config->out_of_spec_factor) && config->out_of_spec_factor >= 1.0)
            factor = config->out_of_spec_factor;
        if (isfinite(config->limit_margin) && config->limit_margin >= 0)
            margin = config->limit_margin;
    }

    const int nj = robot->n_joints;
    int expected = -1;
    if (space == HAL_SPACE_JOINT_VELOCITY)
        expected = nj;
    else if (space == HAL_SPACE_JOINT_VELOCITY_GRIPPER && robot->has_gripper)
        expected = nj + 1;
    if (expected > 0) {
        out->space = space;
        out->n = expected;
    }

    /* ---- reasons to hold ---- */
    if (expected < 0 || n != expected || state->n_joints != nj) {
        hold_output(out, result, HAL_SAFETY_BAD_SHAPE);
        return 0;
    }
    uint32_t why = 0;
    for (int i = 0; i < n; i++)
        if (!isfinite(action[i]))
            why |= HAL_SAFETY_NONFINITE;
    for (int i = 0; i < nj; i++)
        if (!isfinite(state->q[i]) || !isfinite(state->dq[i]))
            why |= HAL_SAFETY_NONFINITE;
    double lo[HAL_MAX_ACTION], hi[HAL_MAX_ACTION];
    for (int i = 0; i < n; i++) {
        double lim = i < nj ? robot->dq_max[i] : 1.0;
        lo[i] = low ? low[i] : -lim;
        hi[i] = high ? high[i] : lim;
        if (!isfinite(lo[i]) || !isfinite(hi[i]) || lo[i] > hi[i])
            why |= HAL_SAFETY_BAD_SHAPE;
    }
    if (!why) {
        for (int i = 0; i < n; i++) {
            double bound = fmax(fabs(lo[i]), fabs(hi[i]));
            if (fabs((double)action[i]) > factor * bound)
                why |= HAL_SAFETY_OUT_OF_SPEC;
        }
    }
    if (why) {
        hold_output(out, result, why);
        return 0;
    }

    /* ---- joints: bounds, acceleration, joint limits ---- */
    int prev_ok = prev &&
                  (prev->space == HAL_SPACE_JOINT_VELOCITY ||
                   prev->space == HAL_SPACE_JOINT_VELOCITY_GRIPPER) &&
                  prev->n >= nj && prev->n <= HAL_MAX_ACTION;
    for (int i = 0; prev_ok && i < nj; i++)
        prev_ok = isfinite(prev->values[i]);

    for (int i = 0; i < nj; i++) {
        const double a = (double)action[i];
        const double vmax = robot->dq_max[i];
        const double amax = robot->ddq_max[i];
        double v = clampd(clampd(a, lo[i], hi[i]), -vmax, vmax);
        if (v != a)
            result->flags |= HAL_SAFETY_CLAMPED;

        double p = prev_ok ? prev->values[i] : state->dq[i];
        double dv = amax * T;
        if (v > p + dv) {
            v = p + dv;
            result->flags |= HAL_SAFETY_ACCEL_LIMIT;
        } else if (v < p - dv) {
            v = p - dv;
            result->flags |= HAL_SAFETY_ACCEL_LIMIT;
        }
        /* A previous value beyond dq_max (or a measured overspeed) must not
         * carry through the ramp. */
        double vc = clampd(v, -vmax, vmax);
        if (vc != v) {
            v = vc;
            result->flags |= HAL_SAFETY_CLAMPED;
        }

        /* Joint-limit guard: last, so it wins over the ramp. */
        const double q = state->q[i];
        if (v > 0) {
            double d = (robot->q_max[i] - margin) - q;
            double vs = d > 0 ? limit_speed(v, state->dq[i], d, amax, T) : 0.0;
            if (v > vs) {
                v = vs;
                result->flags |= HAL_SAFETY_JOINT_LIMIT;
            }
        } else if (v < 0) {
            double d = q - (robot->q_min[i] + margin);
            double vs = d > 0 ? limit_speed(-v, -state->dq[i], d, amax, T) : 0.0;
            if (-v > vs) {
                v = -vs;
                result->flags |= HAL_SAFETY_JOINT_LIMIT;
            }
        }
        out->values[i] = v;
    }

    /* ---- gripper: bounds and [-1, 1] ---- */
    if (expected == nj + 1) {
        const double g = (double)action[nj];
        double gc = clampd(clampd(g, lo[nj], hi[nj]), -1.0, 1.0);
        if (gc != g)
            result->flags |= HAL_SAFETY_CLAMPED;
        out->values[nj] = gc;
    }
    return 0;
}
