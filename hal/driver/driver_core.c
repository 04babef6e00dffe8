/* driver_core — 20 Hz targets to a jerk-limited 1 kHz motion (driver_core.h). */
#include "driver_core.h"

#include "pacd_err.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define DRIVER_DEFAULT_PERIOD_S 0.001
#define DRIVER_DEFAULT_POLICY_PERIOD_S 0.05
#define DRIVER_DEFAULT_STALE_PERIODS 2.0

int driver_core_init(driver_core_t *core, const hal_robot_t *robot, const double *q0,
                     const driver_core_options_t *opts, char *err, size_t errlen)
{
    if (!core || !robot || robot->n_joints < 1 || robot->n_joints > HAL_MAX_JOINTS) {
        pacd_errf(err, errlen, "driver: no usable robot description");
        return -EINVAL;
    }
    driver_core_options_t o = {0};
    if (opts)
        o = *opts;
    if (o.period_s == 0)
        o.period_s = DRIVER_DEFAULT_PERIOD_S;
    if (o.policy_period_s == 0)
        o.policy_period_s = DRIVER_DEFAULT_POLICY_PERIOD_S;
    if (o.stale_periods == 0)
        o.stale_periods = DRIVER_DEFAULT_STALE_PERIODS;
    if (!(o.period_s > 0 && o.period_s <= 0.1) ||
        !(o.policy_period_s >= o.period_s && o.policy_period_s <= 10) ||
        !(o.stale_periods >= 1 && o.stale_periods <= 100)) {
        pacd_errf(err, errlen,
                  "driver: period_s %g (0..0.1], policy_period_s %g [period_s, 10], "
                  "stale_periods %g [1, 100]: one is out of range",
                  o.period_s, o.policy_period_s, o.stale_periods);
        return -EINVAL;
    }
    for (int i = 0; i < robot->n_joints; i++) {
        if (!(robot->dq_max[i] > 0) || !(robot->ddq_max[i] > 0) || !(robot->dddq_max[i] > 0)) {
            pacd_errf(err, errlen,
                      "driver: robot %s joint %d has no velocity, acceleration or jerk "
                      "limit; the driver needs all three (hal_robot.c)",
                      robot->name ? robot->name : "?", i + 1);
            return -EINVAL;
        }
    }
    memset(core, 0, sizeof *core);
    core->robot = robot;
    core->dt = o.period_s;
    core->policy_period_s = o.policy_period_s;
    core->stale_periods = o.stale_periods;
    core->stale_ns = llround(o.stale_periods * o.policy_period_s * 1e9);
    core->mode = DRIVER_IDLE;
    for (int i = 0; i < robot->n_joints; i++)
        core->q[i] = q0 ? q0[i] : robot->q_home[i];
    return 0;
}

int driver_core_target(driver_core_t *core, const driver_target_t *t)
{
    if (!core)
        return -EINVAL;
    const hal_robot_t *r = core->robot;
    int ok = t && t->seq > 0;
    if (ok && !t->hold) {
        ok = t->n == r->n_joints &&
             (t->mode == DRIVER_TARGET_VELOCITY || t->mode == DRIVER_TARGET_POSITION) &&
             (!t->has_gripper || (r->has_gripper && isfinite(t->gripper)));
        for (int i = 0; ok && i < r->n_joints; i++)
            ok = isfinite(t->values[i]);
    }
    if (!ok) {
        core->counters.targets_refused++;
        return -EINVAL;
    }
    if (t->seq <= core->target.seq) {
        core->counters.targets_old++;
        return -EALREADY;
    }
    core->target = *t;
    core->counters.targets_received++;
    if (t->hold)
        core->counters.holds++;
    return 0;
}

/* The velocity change, with the acceleration x now and then brought back to
 * 0 in steps of h (one per period dt, the last step ending at 0): dt times
 * the sum of x, x - h, ... while they keep x's sign. */
static double ramp_gain(double x, double h, double dt)
{
    double ax = fabs(x);
    if (ax == 0)
        return 0;
    double n = ceil(ax / h); /* terms ax, ax - h, ..., ax - (n - 1) h > 0 */
    double s = n * ax - h * n * (n - 1) / 2;
    return copysign(s * dt, x);
}

/* One joint's period: the acceleration in [lo, hi] that lands v on vt. */
static double next_accel(double v, double a, double vt, double A, double J, double vmax,
                         double dt)
{
    double h = J * dt;
    double lo = fmax(a - h, -A), hi = fmin(a + h, A);
    /* never pass +-vmax within this period */
    double vlo = (-vmax - v) / dt, vhi = (vmax - v) / dt;
    if (vlo > lo && vlo <= hi)
        lo = vlo;
    if (vhi < hi && vhi >= lo)
        hi = vhi;
    if (lo > hi) /* cannot happen with consistent limits; keep the jerk window */
        hi = lo;
    double f_lo = v + ramp_gain(lo, h, dt) - vt, f_hi = v + ramp_gain(hi, h, dt) - vt;
    if (f_lo >= 0)
        return lo;
    if (f_hi <= 0)
        return hi;
    /* v + ramp_gain(x) grows with x: bisect (bounded: 60 halvings) */
    for (int k = 0; k < 60 && hi - lo > 1e-12 * (1 + fabs(hi)); k++) {
        double mid = 0.5 * (lo + hi);
        if (v + ramp_gain(mid, h, dt) - vt <= 0)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void driver_core_step(driver_core_t *core, int64_t now_ns, driver_output_t *out)
{
    const hal_robot_t *r = core->robot;
    const driver_target_t *t = &core->target;
    const double dt = core->dt;
    core->counters.ticks++;

    /* the mode from the newest target */
    driver_mode_t mode = DRIVER_IDLE;
    if (t->seq > 0) {
        if (t->hold)
            mode = DRIVER_HOLDING;
        else if (now_ns - t->time_ns > core->stale_ns) {
            mode = DRIVER_STOPPING;
            if (core->stale_seq != t->seq) {
                core->stale_seq = t->seq;
                core->counters.stale_stops++;
            }
        } else
            mode = DRIVER_TRACKING;
    }

    int clamped = 0, moving = 0;
    for (int i = 0; i < r->n_joints; i++) {
        double vmax = r->dq_max[i], A = r->ddq_max[i], J = r->dddq_max[i];
        double vt = 0;
        if (mode == DRIVER_TRACKING) {
            if (t->mode == DRIVER_TARGET_VELOCITY) {
                vt = t->values[i];
            } else {
                /* reach the position in one policy period, no faster than a
                 * stop at A allows (so it arrives without overshoot) */
                double e = t->values[i] - core->q[i];
                double vstop = sqrt(2 * A * fabs(e)) * 0.7;
                vt = e / core->policy_period_s;
                if (fabs(vt) > vstop)
                    vt = copysign(vstop, e);
            }
            if (vt > vmax || vt < -vmax) {
                vt = fmin(fmax(vt, -vmax), vmax);
                clamped = 1;
            }
        }
        double a = next_accel(core->v[i], core->a[i], vt, A, J, vmax, dt);
        double v = core->v[i] + a * dt;
        if (vt == 0 && fabs(v) < 1e-9) {
            /* landed at rest (the bisection leaves rounding dust) */
            v = 0;
            if (fabs(core->a[i]) <= J * dt * (1 + 1e-9))
                a = 0;
        }
        v = fmin(fmax(v, -vmax), vmax);
        core->a[i] = a;
        core->v[i] = v;
        core->q[i] += v * dt;
        moving |= v != 0;
        out->q[i] = core->q[i];
        out->dq[i] = v;
        out->ddq[i] = a;
    }
    if (clamped)
        core->counters.velocity_clamps++;
    /* a stop that has come to rest is IDLE until a fresh target */
    if (mode == DRIVER_STOPPING && !moving)
        mode = DRIVER_IDLE;
    core->mode = mode;
    out->mode = mode;
    out->moving = moving;
    out->gripper = mode == DRIVER_TRACKING && t->has_gripper ? fmin(fmax(t->gripper, -1), 1) : 0;
    out->target_seq = t->seq;
}

int driver_core_sync(driver_core_t *core, const double *q)
{
    if (!core || !q)
        return -EINVAL;
    for (int i = 0; i < core->robot->n_joints; i++)
        if (core->v[i] != 0 || core->a[i] != 0)
            return -EBUSY;
    for (int i = 0; i < core->robot->n_joints; i++)
        core->q[i] = q[i];
    core->mode = DRIVER_IDLE;
    return 0;
}

int driver_core_new_session(driver_core_t *core, double policy_period_s)
{
    if (policy_period_s != 0) {
        if (!(policy_period_s >= core->dt && policy_period_s <= 10))
            return -EINVAL;
        core->stale_ns = llround(core->stale_periods * policy_period_s * 1e9);
        core->policy_period_s = policy_period_s;
    }
    memset(&core->target, 0, sizeof core->target);
    core->stale_seq = 0;
    return 0;
}

driver_core_counters_t driver_core_counters(const driver_core_t *core)
{
    return core->counters;
}

double driver_stop_distance(double v, double a, double A, double J)
{
    double s = fabs(v);
    if (s == 0 && a == 0)
        return 0;
    double d = 0;
    /* accelerating away: first bring the acceleration to 0 at J */
    double aa = v >= 0 ? a : -a;
    if (aa > 0) {
        double t = aa / J;
        d += s * t + aa * t * t / 2 - J * t * t * t / 6;
        s += aa * aa / (2 * J);
    }
    /* from (s, 0): jerk to -A, hold, jerk back to 0 (a triangle when s is small) */
    if (s >= A * A / J)
        d += s / 2 * (s / A + A / J);
    else
        d += s * sqrt(s / J);
    return d;
}
