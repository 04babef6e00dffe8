/* Unit tests of hal_safety_filter (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "hal_safety.h"
#include "hal_test_util.h"

static const hal_safety_config_t cfg = {
    .period_s = 0.05, .out_of_spec_factor = 2.0, .limit_margin = 0.02};

/* A state at rest at the home pose. */
static hal_state_t home_state(const hal_robot_t *r)
{
    hal_state_t s;
    memset(&s, 0, sizeof s);
    s.n_joints = r->n_joints;
    memcpy(s.q, r->q_home, sizeof s.q);
    return s;
}

/* A previous command equal to `a` (so the accel guard has nothing to do). */
static hal_command_t prev_of(hal_space_t space, const float *a, int n)
{
    hal_command_t c;
    memset(&c, 0, sizeof c);
    c.space = space;
    c.n = n;
    for (int i = 0; i < n; i++)
        c.values[i] = a[i];
    return c;
}

static void assert_held(const hal_command_t *out, const hal_safety_result_t *res, int n,
                        uint32_t flag)
{
    assert_int_equal(res->hold, 1);
    assert_true(res->flags & HAL_SAFETY_HELD);
    assert_true(res->flags & flag);
    assert_int_equal(out->n, n);
    for (int i = 0; i < HAL_MAX_ACTION; i++)
        assert_true(out->values[i] == 0.0);
}

static void test_in_bounds_action_passes_unchanged(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    hal_state_t s = home_state(r);
    float a[8] = {0.1f, -0.2f, 0.3f, -0.1f, 0.2f, -0.3f, 0.05f, 0.5f};
    float lo[8], hi[8];
    for (int i = 0; i < 8; i++) {
        lo[i] = -1.0f;
        hi[i] = 1.0f;
    }
    hal_command_t prev = prev_of(HAL_SPACE_JOINT_VELOCITY_GRIPPER, a, 8);
    hal_command_t out;
    hal_safety_result_t res;
    assert_int_equal(hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY_GRIPPER, a, 8,
                                       lo, hi, &prev, &out, &res),
                     0);
    assert_int_equal(res.hold, 0);
    assert_int_equal(res.flags, 0);
    assert_int_equal(out.space, HAL_SPACE_JOINT_VELOCITY_GRIPPER);
    assert_int_equal(out.n, 8);
    for (int i = 0; i < 8; i++)
        assert_true(out.values[i] == (double)a[i]);
}

static void test_nonfinite_holds(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("sawyer");
    hal_state_t s = home_state(r);
    const float bad[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 7; j++) {
            float a[7] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
            a[j] = k == 1 && j % 2 ? -bad[k] : bad[k];
            hal_command_t out;
            hal_safety_result_t res;
            assert_int_equal(hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7,
                                               NULL, NULL, NULL, &out, &res),
                             0);
            assert_held(&out, &res, 7, HAL_SAFETY_NONFINITE);
        }
    }
    /* A corrupt state (NaN position) cannot be guarded against limits: hold. */
    float a[7] = {0};
    s.q[2] = NAN;
    hal_command_t out;
    hal_safety_result_t res;
    hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, NULL, &out, &res);
    assert_held(&out, &res, 7, HAL_SAFETY_NONFINITE);
}

static void test_wrong_shape_holds(void **st)
{
    (void)st;
    const hal_robot_t *panda = hal_robot_find("panda");
    const hal_robot_t *sawyer = hal_robot_find("sawyer");
    hal_state_t s = home_state(panda);
    float a[9] = {0};
    hal_command_t out;
    hal_safety_result_t res;
    /* 6 or 8 values for a 7-joint velocity space */
    hal_safety_filter(panda, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 6, NULL, NULL, NULL, &out,
                      &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    hal_safety_filter(panda, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 8, NULL, NULL, NULL, &out,
                      &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    /* 7 values for the 7+gripper space */
    hal_safety_filter(panda, &cfg, &s, HAL_SPACE_JOINT_VELOCITY_GRIPPER, a, 7, NULL, NULL, NULL,
                      &out, &res);
    assert_held(&out, &res, 8, HAL_SAFETY_BAD_SHAPE);
    /* gripper space on a robot without a gripper */
    hal_state_t ss = home_state(sawyer);
    hal_safety_filter(sawyer, &cfg, &ss, HAL_SPACE_JOINT_VELOCITY_GRIPPER, a, 8, NULL, NULL,
                      NULL, &out, &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    /* unknown space, negative n */
    hal_safety_filter(panda, &cfg, &s, (hal_space_t)42, a, 7, NULL, NULL, NULL, &out, &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    hal_safety_filter(panda, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, -1, NULL, NULL, NULL, &out,
                      &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    /* state of another arm size */
    s.n_joints = 6;
    hal_safety_filter(panda, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, NULL, &out,
                      &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    /* inverted bounds */
    s.n_joints = 7;
    float lo[7] = {0, 0, 0, 1, 0, 0, 0}, hi[7] = {1, 1, 1, 0, 1, 1, 1};
    hal_safety_filter(panda, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, lo, hi, NULL, &out, &res);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
}

static void test_far_out_of_spec_holds_slightly_over_clamps(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    hal_state_t s = home_state(r);
    float lo[7], hi[7];
    for (int i = 0; i < 7; i++) {
        lo[i] = -0.5f;
        hi[i] = 0.5f;
    }
    hal_command_t out;
    hal_safety_result_t res;
    for (int j = 0; j < 7; j++) {
        float a[7] = {0};
        a[j] = j % 2 ? -1.01f : 1.01f; /* > 2.0 * 0.5 */
        hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, lo, hi, NULL, &out, &res);
        assert_held(&out, &res, 7, HAL_SAFETY_OUT_OF_SPEC);
    }
    /* 0.6 is over the bound but within the tolerance: clamped to 0.5 */
    float a[7] = {0.6f, -0.6f, 0.6f, -0.6f, 0.6f, -0.6f, 0.6f};
    float want[7];
    for (int i = 0; i < 7; i++)
        want[i] = a[i] > 0 ? 0.5f : -0.5f;
    hal_command_t prev = prev_of(HAL_SPACE_JOINT_VELOCITY, want, 7);
    hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, lo, hi, &prev, &out, &res);
    assert_int_equal(res.hold, 0);
    assert_int_equal(res.flags, HAL_SAFETY_CLAMPED);
    for (int i = 0; i < 7; i++)
        assert_double_equal(out.values[i], want[i], 1e-7);
}

/* Bounds from the checkpoint wider than the robot's velocity limits: the
 * robot's dq_max wins. */
static void test_clamped_to_dq_max(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("sawyer");
    hal_state_t s = home_state(r);
    float a[7], lo[7], hi[7];
    for (int i = 0; i < 7; i++) {
        hi[i] = 5.0f;
        lo[i] = -5.0f;
        a[i] = i % 2 ? -4.9f : 4.9f;
    }
    hal_command_t prev;
    memset(&prev, 0, sizeof prev);
    prev.space = HAL_SPACE_JOINT_VELOCITY;
    prev.n = 7;
    for (int i = 0; i < 7; i++)
        prev.values[i] = i % 2 ? -r->dq_max[i] : r->dq_max[i];
    /* each joint far from the limit it moves toward (Sawyer's 2 rad/s^2 needs
     * dq_max^2 / 4 rad to stop): no joint-limit guard */
    for (int i = 0; i < 7; i++)
        s.q[i] = a[i] > 0 ? r->q_min[i] + 0.1 : r->q_max[i] - 0.1;
    hal_command_t out;
    hal_safety_result_t res;
    hal_safety_config_t c = cfg;
    c.period_s = 0.001; /* keep the joint-limit guard out of the way */
    hal_safety_filter(r, &c, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, lo, hi, &prev, &out, &res);
    assert_int_equal(res.hold, 0);
    assert_true(res.flags & HAL_SAFETY_CLAMPED);
    for (int i = 0; i < 7; i++)
        assert_double_equal(fabs(out.values[i]), r->dq_max[i], 1e-12);
}

static void test_joint_at_limit_not_driven_further(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    for (int j = 0; j < 7; j++) {
        for (int side = 0; side < 2; side++) {
            hal_state_t s = home_state(r);
            s.q[j] = side ? r->q_max[j] : r->q_min[j];
            float into = side ? 0.1f : -0.1f;
            float a[7] = {0};
            a[j] = into;
            hal_command_t prev = prev_of(HAL_SPACE_JOINT_VELOCITY, a, 7);
            hal_command_t out;
            hal_safety_result_t res;
            hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, &prev,
                              &out, &res);
            assert_int_equal(res.hold, 0);
            assert_true(res.flags & HAL_SAFETY_JOINT_LIMIT);
            assert_true(out.values[j] == 0.0);
            /* the opposite direction is allowed, unchanged */
            a[j] = -into;
            prev = prev_of(HAL_SPACE_JOINT_VELOCITY, a, 7);
            hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, &prev,
                              &out, &res);
            assert_int_equal(res.hold, 0);
            assert_int_equal(res.flags, 0);
            assert_true(out.values[j] == (double)a[j]);
        }
    }
}

/* Approaching a limit: the speed toward it lets the joint stop before
 * (limit - margin) at ddq_max, after holding the command for one period;
 * in particular |dq| <= sqrt(2 * ddq_max * distance). */
static void test_joint_slowed_near_limit(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("sawyer");
    const double T = cfg.period_s, m = cfg.limit_margin;
    const double dists[] = {0.5, 0.2, 0.05, 0.021, 0.02, 0.01};
    for (int j = 0; j < 7; j++) {
        for (size_t k = 0; k < sizeof dists / sizeof dists[0]; k++) {
            hal_state_t s = home_state(r);
            s.q[j] = r->q_max[j] - dists[k];
            float a[7] = {0};
            a[j] = (float)r->dq_max[j];
            hal_command_t prev = prev_of(HAL_SPACE_JOINT_VELOCITY, a, 7);
            hal_command_t out;
            hal_safety_result_t res;
            hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, &prev,
                              &out, &res);
            double v = out.values[j];
            double d = dists[k] - m; /* distance to (limit - margin) */
            assert_true(v >= 0);
            if (d <= 0) {
                assert_true(v == 0.0);
            } else {
                assert_true(v <= sqrt(2 * r->ddq_max[j] * d) + 1e-12);
                assert_true(v * T + v * v / (2 * r->ddq_max[j]) <= d + 1e-12);
            }
            if (v < r->dq_max[j])
                assert_true(res.flags & HAL_SAFETY_JOINT_LIMIT);
        }
    }
}

static void test_accel_limited(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    hal_state_t s = home_state(r);
    float a[7];
    for (int i = 0; i < 7; i++)
        a[i] = i % 2 ? -1.0f : 1.0f;
    hal_command_t prev;
    memset(&prev, 0, sizeof prev);
    prev.space = HAL_SPACE_JOINT_VELOCITY;
    prev.n = 7;
    hal_command_t out;
    hal_safety_result_t res;
    hal_safety_config_t c = cfg;
    c.period_s = 0.02;
    /* from rest (prev = 0): each joint changes by at most ddq_max * T */
    hal_safety_filter(r, &c, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, &prev, &out, &res);
    assert_int_equal(res.hold, 0);
    assert_true(res.flags & HAL_SAFETY_ACCEL_LIMIT);
    for (int i = 0; i < 7; i++) {
        double step = r->ddq_max[i] * c.period_s;
        assert_double_equal(out.values[i], step < 1.0 ? copysign(step, a[i]) : a[i], 1e-9);
    }
    /* no prev: measured velocity is the reference */
    for (int i = 0; i < 7; i++)
        s.dq[i] = a[i];
    hal_safety_filter(r, &c, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL, NULL, &out, &res);
    assert_int_equal(res.flags, 0);
    for (int i = 0; i < 7; i++)
        assert_true(out.values[i] == (double)a[i]);
    /* and a reversal from +dq to -dq is ramped too */
    float b[7];
    for (int i = 0; i < 7; i++)
        b[i] = -a[i];
    hal_safety_filter(r, &c, &s, HAL_SPACE_JOINT_VELOCITY, b, 7, NULL, NULL, NULL, &out, &res);
    assert_true(res.flags & HAL_SAFETY_ACCEL_LIMIT);
    for (int i = 0; i < 7; i++)
        assert_true(fabs(out.values[i] - a[i]) <= r->ddq_max[i] * c.period_s + 1e-9);
}

static void test_gripper_clamped(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    hal_state_t s = home_state(r);
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 1.5f};
    hal_command_t out;
    hal_safety_result_t res;
    hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY_GRIPPER, a, 8, NULL, NULL, NULL,
                      &out, &res);
    assert_int_equal(res.hold, 0);
    assert_int_equal(res.flags, HAL_SAFETY_CLAMPED);
    assert_true(out.values[7] == 1.0);
    /* bounds wider than [-1, 1] still end at -1 */
    float lo[8], hi[8];
    for (int i = 0; i < 8; i++) {
        lo[i] = -2.0f;
        hi[i] = 2.0f;
    }
    a[7] = -1.8f;
    hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY_GRIPPER, a, 8, lo, hi, NULL, &out,
                      &res);
    assert_int_equal(res.flags, HAL_SAFETY_CLAMPED);
    assert_true(out.values[7] == -1.0);
}

static void test_null_arguments(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    hal_state_t s = home_state(r);
    float a[7] = {0};
    hal_command_t out;
    hal_safety_result_t res;
    assert_int_equal(hal_safety_filter(NULL, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL,
                                       NULL, NULL, &out, &res),
                     -EINVAL);
    assert_int_equal(res.hold, 1);
    assert_int_equal(hal_safety_filter(r, &cfg, NULL, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL,
                                       NULL, NULL, &out, &res),
                     -EINVAL);
    assert_held(&out, &res, 7, HAL_SAFETY_BAD_SHAPE);
    assert_int_equal(hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, NULL, 7, NULL,
                                       NULL, NULL, &out, &res),
                     -EINVAL);
    assert_int_equal(hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL,
                                       NULL, NULL, &res),
                     -EINVAL);
    assert_int_equal(hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL,
                                       NULL, &out, NULL),
                     -EINVAL);
    /* config NULL = defaults */
    assert_int_equal(hal_safety_filter(r, NULL, &s, HAL_SPACE_JOINT_VELOCITY, a, 7, NULL, NULL,
                                       NULL, &out, &res),
                     0);
    assert_int_equal(res.hold, 0);
}


/* Deterministic pseudo-random numbers (xorshift64*), so failures replay. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(double lo, double hi)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t x = rng_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (double)(x >> 11) / 9007199254740992.0;
}

/* Properties over many random states, actions, bounds and previous commands:
 * a hold is all zeros; otherwise every joint is within +-dq_max and
 * [low, high] unless ramping from prev, never moves toward a limit faster
 * than it can stop before (limit - margin), changes from prev by at most
 * ddq_max*T unless the joint-limit guard slowed it, and the flags say what
 * changed. */
static void test_random_properties(void **st)
{
    (void)st;
    const char *names[2] = {"panda", "sawyer"};
    for (int iter = 0; iter < 20000; iter++) {
        const hal_robot_t *r = hal_robot_find(names[iter % 2]);
        const int nj = r->n_joints;
        hal_space_t space = r->has_gripper && uniform(0, 1) < 0.5
                                ? HAL_SPACE_JOINT_VELOCITY_GRIPPER
                                : HAL_SPACE_JOINT_VELOCITY;
        int n = space == HAL_SPACE_JOINT_VELOCITY ? nj : nj + 1;
        hal_safety_config_t c = {.period_s = uniform(0.001, 0.1),
                                 .out_of_spec_factor = uniform(1.0, 3.0),
                                 .limit_margin = uniform(0.0, 0.1)};
        hal_state_t s;
        memset(&s, 0, sizeof s);
        s.n_joints = nj;
        float a[HAL_MAX_ACTION], lo[HAL_MAX_ACTION], hi[HAL_MAX_ACTION];
        hal_command_t prev;
        memset(&prev, 0, sizeof prev);
        prev.space = space;
        prev.n = n;
        for (int i = 0; i < n; i++) {
            double lim = i < nj ? r->dq_max[i] : 1.0;
            double b = uniform(0.2, 1.5) * lim;
            lo[i] = (float)-b;
            hi[i] = (float)(uniform(0, 1) < 0.8 ? b : uniform(0, b));
            a[i] = (float)uniform(-2.5 * b, 2.5 * b);
            if (i < nj) {
                /* some joints at or very near a limit */
                double u = uniform(0, 1);
                s.q[i] = u < 0.1   ? r->q_max[i]
                         : u < 0.2 ? r->q_min[i]
                         : u < 0.4 ? r->q_max[i] - uniform(0, 0.2)
                                   : uniform(r->q_min[i], r->q_max[i]);
                s.dq[i] = uniform(-lim, lim);
                prev.values[i] = uniform(-lim, lim);
            }
        }
        int use_prev = uniform(0, 1) < 0.7;
        hal_command_t out;
        hal_safety_result_t res;
        assert_int_equal(hal_safety_filter(r, &c, &s, space, a, n, lo, hi,
                                           use_prev ? &prev : NULL, &out, &res),
                         0);
        assert_int_equal(out.n, n);
        assert_int_equal(out.space, space);
        if (res.hold) {
            assert_true(res.flags & HAL_SAFETY_HELD);
            assert_true(res.flags & HAL_SAFETY_OUT_OF_SPEC); /* the only reason here */
            for (int i = 0; i < HAL_MAX_ACTION; i++)
                assert_true(out.values[i] == 0.0);
            continue;
        }
        assert_false(res.flags & HAL_SAFETY_HELD);
        int changed = 0;
        for (int i = 0; i < nj; i++) {
            double v = out.values[i];
            double amax = r->ddq_max[i], T = c.period_s;
            double p = use_prev ? prev.values[i] : s.dq[i];
            changed |= v != (double)a[i];
            assert_true(fabs(v) <= r->dq_max[i] + 1e-12);
            double d = v > 0 ? (r->q_max[i] - c.limit_margin) - s.q[i]
                             : s.q[i] - (r->q_min[i] + c.limit_margin);
            if (v != 0) {
                assert_true(d > 0);
                assert_true(fabs(v) * T + v * v / (2 * amax) <= d + 1e-9);
            }
            if (fabs(v - p) > amax * T + 1e-9) {
                /* only the joint-limit guard may brake harder than the ramp */
                assert_true(res.flags & HAL_SAFETY_JOINT_LIMIT);
                assert_true(fabs(v) < fabs(p));
            }
        }
        if (n == nj + 1) {
            double g = out.values[nj];
            assert_true(g >= -1.0 && g <= 1.0);
            assert_true(g >= lo[nj] - 1e-7 && g <= hi[nj] + 1e-7);
            changed |= g != (double)a[nj];
        }
        /* nothing changed <=> no flag */
        assert_int_equal(changed, res.flags != 0);
    }
}

/* Closed loop against a model of a backend (deterministic, no threads):
 * each joint's velocity follows the command at most at ddq_max (1 kHz
 * integration, like the sim), the filter runs every period T on the state,
 * and its command reaches the joint `latency_ms` later. A policy pushes
 * every joint toward a limit at full speed from rest, and, in a second
 * phase, from full speed. With no latency the joint must stop before
 * (limit - margin); with latency it may use the margin, never more. */
static double closed_loop_intrusion(const hal_robot_t *r, int j, int up, double start_dist,
                                    int latency_ms)
{
    const hal_safety_config_t c = {.period_s = 0.05, .out_of_spec_factor = 2.0,
                                   .limit_margin = 0.02};
    const double dt = 0.001;
    const double lim = up ? r->q_max[j] : r->q_min[j];
    const double dir = up ? 1.0 : -1.0;
    hal_state_t s;
    memset(&s, 0, sizeof s);
    s.n_joints = r->n_joints;
    memcpy(s.q, r->q_home, sizeof s.q);
    s.q[j] = lim - dir * start_dist;
    s.dq[j] = 0.0;
    float a[HAL_MAX_JOINTS] = {0};
    a[j] = (float)(dir * r->dq_max[j]);
    hal_command_t prev, out;
    memset(&prev, 0, sizeof prev);
    prev.space = HAL_SPACE_JOINT_VELOCITY;
    prev.n = r->n_joints;
    double applied = 0.0, pending = 0.0, worst = -1e9;
    int pending_at = -1;
    for (int ms = 0; ms < 8000; ms++) {
        if (ms % 50 == 0) {
            hal_safety_result_t res;
            assert_int_equal(hal_safety_filter(r, &c, &s, HAL_SPACE_JOINT_VELOCITY, a,
                                               r->n_joints, NULL, NULL, &prev, &out, &res),
                             0);
            prev = out;
            pending = out.values[j];
            pending_at = ms + latency_ms;
        }
        if (ms == pending_at)
            applied = pending;
        double dv = fmin(fmax(applied - s.dq[j], -r->ddq_max[j] * dt), r->ddq_max[j] * dt);
        s.dq[j] += dv;
        s.q[j] += s.dq[j] * dt;
        worst = fmax(worst, dir * (s.q[j] - (lim - dir * c.limit_margin)));
    }
    assert_true(fabs(s.dq[j]) < 1e-6); /* came to rest */
    assert_true(worst > -0.05);        /* near the limit, not stopped far off */
    return worst;
}

static void test_closed_loop_stops_before_limits(void **st)
{
    (void)st;
    const char *names[2] = {"panda", "sawyer"};
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(names[k]);
        for (int j = 0; j < r->n_joints; j++) {
            for (int up = 0; up < 2; up++) {
                double span = r->q_max[j] - r->q_min[j];
                const double dists[] = {0.05, 0.3, 0.9 * span};
                for (int m = 0; m < 3; m++) {
                    double w0 = closed_loop_intrusion(r, j, up, dists[m], 0);
                    assert_true(w0 <= 1e-9);
                    double w2 = closed_loop_intrusion(r, j, up, dists[m], 2);
                    assert_true(w2 < 0.02); /* within the margin */
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_bounds_action_passes_unchanged),
        cmocka_unit_test(test_nonfinite_holds),
        cmocka_unit_test(test_wrong_shape_holds),
        cmocka_unit_test(test_far_out_of_spec_holds_slightly_over_clamps),
        cmocka_unit_test(test_clamped_to_dq_max),
        cmocka_unit_test(test_joint_at_limit_not_driven_further),
        cmocka_unit_test(test_joint_slowed_near_limit),
        cmocka_unit_test(test_accel_limited),
        cmocka_unit_test(test_gripper_clamped),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_random_properties),
        cmocka_unit_test(test_closed_loop_stops_before_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
