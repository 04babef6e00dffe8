/* Unit tests of the driver core (hal/driver/driver_core.h) on traces: 20 Hz
 * targets into a 1 kHz motion, judged on every period against the robot
 * description's limits. Simulated time only: nothing here reads a clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "bridge_wire.h"
#include "driver_core.h"
#include "hal_robot.h"
#include "hal_test_util.h"

#define MS 1000000LL
#define TICK_NS MS          /* 1 kHz */
#define POLICY_NS (50 * MS) /* 20 Hz */

/* A run: the core, simulated time and the previous period's output, with
 * every period checked against the limits. */
typedef struct {
    driver_core_t core;
    const hal_robot_t *r;
    int64_t now;
    uint64_t seq;
    driver_output_t out, prev;
    double prev_a[HAL_MAX_JOINTS];
    double max_v_ratio, max_a_ratio, max_j_ratio; /* worst |x| / limit seen */
} run_t;

static void run_init(run_t *run, const char *robot)
{
    memset(run, 0, sizeof *run);
    run->r = hal_robot_find(robot);
    assert_non_null(run->r);
    char err[256] = "";
    assert_int_equal(driver_core_init(&run->core, run->r, NULL, NULL, err, sizeof err), 0);
    for (int i = 0; i < run->r->n_joints; i++)
        run->out.q[i] = run->r->q_home[i];
    run->now = 1000 * MS;
}

/* One period, checked: |v| <= dq_max, |dv/dt| <= ddq_max, |da/dt| <= dddq_max
 * (a and its change from the commanded velocities themselves), q = sum v dt. */
static void run_tick(run_t *run)
{
    const hal_robot_t *r = run->r;
    const double dt = 1e-3;
    run->prev = run->out;
    run->now += TICK_NS;
    driver_core_step(&run->core, run->now, &run->out);
    for (int i = 0; i < r->n_joints; i++) {
        double v = run->out.dq[i];
        double a = (v - run->prev.dq[i]) / dt;
        double j = (a - run->prev_a[i]) / dt;
        run->prev_a[i] = a;
        run->max_v_ratio = fmax(run->max_v_ratio, fabs(v) / r->dq_max[i]);
        run->max_a_ratio = fmax(run->max_a_ratio, fabs(a) / r->ddq_max[i]);
        run->max_j_ratio = fmax(run->max_j_ratio, fabs(j) / r->dddq_max[i]);
        if (fabs(v) > r->dq_max[i] * (1 + 1e-9))
            fail_msg("joint %d: |v| %.9g > dq_max %g", i, v, r->dq_max[i]);
        if (fabs(a) > r->ddq_max[i] * (1 + 1e-6) + 1e-6)
            fail_msg("joint %d: |a| %.9g > ddq_max %g (v %.9g -> %.9g)", i, a, r->ddq_max[i],
                     run->prev.dq[i], v);
        if (fabs(j) > r->dddq_max[i] * (1 + 1e-6) + 1e-3)
            fail_msg("joint %d: |jerk| %.9g > dddq_max %g", i, j, r->dddq_max[i]);
        assert_double_equal(run->out.q[i], run->prev.q[i] + v * dt, 1e-12);
    }
}

static int run_target(run_t *run, const double *v, int hold)
{
    driver_target_t t = {.seq = ++run->seq, .time_ns = run->now, .mode = DRIVER_TARGET_VELOCITY,
                         .hold = hold, .n = run->r->n_joints};
    if (v)
        memcpy(t.values, v, sizeof(double) * (size_t)run->r->n_joints);
    return driver_core_target(&run->core, &t);
}

/* A deterministic pseudo-random sequence in [-1, 1]. */
static double rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / (double)(1ULL << 52) - 1.0;
}

/* Random 20 Hz targets up to 1.5 x dq_max for 10 s: no limit is ever
 * exceeded on either arm; the core uses its limits (it is not merely slow). */
static void test_random_targets_keep_limits(void **state)
{
    (void)state;
    const char *robots[] = {"panda", "sawyer"};
    for (int k = 0; k < 2; k++) {
        run_t run;
        run_init(&run, robots[k]);
        uint64_t s = 42 + (uint64_t)k;
        for (int p = 0; p < 200; p++) {
            double v[HAL_MAX_JOINTS];
            for (int i = 0; i < run.r->n_joints; i++)
                v[i] = 1.5 * run.r->dq_max[i] * rnd(&s);
            assert_int_equal(run_target(&run, v, 0), 0);
            for (int i = 0; i < 50; i++) {
                run_tick(&run);
                assert_int_equal(run.out.mode, DRIVER_TRACKING);
            }
        }
        assert_true(run.max_a_ratio > 0.9);
        assert_true(run.max_j_ratio > 0.9);
        assert_true(driver_core_counters(&run.core).velocity_clamps > 0);
        assert_int_equal(driver_core_counters(&run.core).targets_received, 200);
    }
}

/* A constant target is reached exactly and without overshoot. */
static void test_reaches_target_without_overshoot(void **state)
{
    (void)state;
    run_t run;
    run_init(&run, "panda");
    double v[HAL_MAX_JOINTS] = {1.0, -0.5, 0.3, 2.0, -2.61, 0.01, 0};
    for (int p = 0; p < 20; p++) {
        assert_int_equal(run_target(&run, v, 0), 0);
        for (int i = 0; i < 50; i++) {
            run_tick(&run);
            for (int j = 0; j < 7; j++) {
                if (v[j] >= 0)
                    assert_true(run.out.dq[j] <= v[j] + 1e-9);
                else
                    assert_true(run.out.dq[j] >= v[j] - 1e-9);
            }
        }
    }
    for (int j = 0; j < 7; j++)
        assert_double_equal(run.out.dq[j], v[j], 1e-9);
}

/* Targets stop: after two policy periods the core decelerates (counted once)
 * and comes to rest within the stopping distance the limits allow. */
static void test_stale_target_stops_within_distance(void **state)
{
    (void)state;
    const char *robots[] = {"panda", "sawyer"};
    for (int k = 0; k < 2; k++) {
        run_t run;
        run_init(&run, robots[k]);
        double v[HAL_MAX_JOINTS];
        for (int i = 0; i < 7; i++)
            v[i] = (i % 2 ? -0.9 : 0.9) * run.r->dq_max[i];
        /* ramp up for 3 s of fresh targets, the last one accelerating */
        for (int p = 0; p < 60; p++) {
            assert_int_equal(run_target(&run, v, 0), 0);
            for (int i = 0; i < 50; i++)
                run_tick(&run);
        }
        for (int i = 0; i < 7; i++)
            v[i] = -v[i] * 0.2;
        assert_int_equal(run_target(&run, v, 0), 0);
        int64_t sent = run.now;
        /* fresh for exactly two policy periods */
        while (run.now + TICK_NS - sent <= 2 * POLICY_NS) {
            run_tick(&run);
            assert_int_equal(run.out.mode, DRIVER_TRACKING);
        }
        run_tick(&run);
        assert_int_equal(run.out.mode, DRIVER_STOPPING);
        /* from the period before the stop began: its velocity and acceleration */
        double q0[HAL_MAX_JOINTS], bound[HAL_MAX_JOINTS], v0[HAL_MAX_JOINTS];
        for (int i = 0; i < 7; i++) {
            q0[i] = run.prev.q[i];
            v0[i] = run.prev.dq[i];
            bound[i] = driver_stop_distance(v0[i], run.prev.ddq[i], run.r->ddq_max[i],
                                            run.r->dddq_max[i]);
        }
        int ticks = 0;
        while (run.out.moving) {
            run_tick(&run);
            assert_true(++ticks < 10000);
        }
        assert_int_equal(run.out.mode, DRIVER_IDLE);
        for (int i = 0; i < 7; i++) {
            double d = fabs(run.out.q[i] - q0[i]);
            /* the discrete profile: within two periods' travel of the bound */
            if (d > bound[i] + 2e-3 * fabs(v0[i]) + 1e-9)
                fail_msg("%s joint %d: stopped after %.6g rad, the limits allow %.6g", robots[k],
                         i, d, bound[i]);
        }
        /* and stays at rest */
        for (int i = 0; i < 500; i++) {
            run_tick(&run);
            for (int j = 0; j < 7; j++)
                assert_true(run.out.dq[j] == 0);
        }
        assert_int_equal(driver_core_counters(&run.core).stale_stops, 1);
    }
}

/* A hold mid-motion: every joint's speed only falls, to rest; nothing moves
 * after it, whatever old or duplicate targets arrive, until a fresh one. */
static void test_hold_then_nothing_until_fresh_target(void **state)
{
    (void)state;
    run_t run;
    run_init(&run, "panda");
    double v[HAL_MAX_JOINTS] = {2.0, -1.5, 1.0, 2.0, -2.5, 2.5, 1.0};
    for (int p = 0; p < 20; p++) {
        assert_int_equal(run_target(&run, v, 0), 0);
        for (int i = 0; i < 50; i++)
            run_tick(&run);
    }
    driver_target_t old = {.seq = run.seq, .time_ns = run.now, .mode = DRIVER_TARGET_VELOCITY,
                           .n = 7};
    memcpy(old.values, v, sizeof old.values);
    assert_int_equal(run_target(&run, NULL, 1), 0);
    uint64_t hold_seq = run.seq;
    for (int i = 0; i < 3000; i++) {
        /* duplicates and reordered targets keep arriving */
        old.time_ns = run.now;
        assert_int_equal(driver_core_target(&run.core, &old), -EALREADY);
        driver_target_t dup = old;
        dup.seq = hold_seq;
        assert_int_equal(driver_core_target(&run.core, &dup), -EALREADY);
        run_tick(&run);
        assert_int_equal(run.out.mode, DRIVER_HOLDING);
        for (int j = 0; j < 7; j++) {
            assert_true(fabs(run.out.dq[j]) <= fabs(run.prev.dq[j]) + 1e-12);
            if (run.out.dq[j] * v[j] < 0) /* never reverses */
                fail_msg("tick %d joint %d reversed: %.17g (was %.17g)", i, j, run.out.dq[j], run.prev.dq[j]);
        }
    }
    for (int j = 0; j < 7; j++)
        assert_true(run.out.dq[j] == 0);
    assert_int_equal(driver_core_counters(&run.core).targets_old, 6000);
    assert_int_equal(driver_core_counters(&run.core).holds, 1);
    /* a fresh target moves again */
    assert_int_equal(run_target(&run, v, 0), 0);
    run_tick(&run);
    run_tick(&run);
    assert_int_equal(run.out.mode, DRIVER_TRACKING);
    assert_true(run.out.dq[0] > 0);
}

/* A stale target never restarts motion: a target that arrives already old
 * (its receive time two periods back) stops, it does not move the arm. */
static void test_late_target_does_not_move(void **state)
{
    (void)state;
    run_t run;
    run_init(&run, "sawyer");
    driver_target_t t = {.seq = 1, .time_ns = run.now - 2 * POLICY_NS - TICK_NS,
                         .mode = DRIVER_TARGET_VELOCITY, .n = 7};
    for (int i = 0; i < 7; i++)
        t.values[i] = 0.5;
    assert_int_equal(driver_core_target(&run.core, &t), 0);
    for (int i = 0; i < 100; i++) {
        run_tick(&run);
        assert_false(run.out.moving);
        assert_int_equal(run.out.mode, DRIVER_IDLE);
    }
}

static void test_bad_targets_refused(void **state)
{
    (void)state;
    run_t run;
    run_init(&run, "sawyer");
    driver_target_t t = {.seq = 1, .time_ns = run.now, .mode = DRIVER_TARGET_VELOCITY, .n = 7};
    driver_target_t bad = t;
    bad.values[3] = NAN;
    assert_int_equal(driver_core_target(&run.core, &bad), -EINVAL);
    bad = t;
    bad.n = 6;
    assert_int_equal(driver_core_target(&run.core, &bad), -EINVAL);
    bad = t;
    bad.seq = 0;
    assert_int_equal(driver_core_target(&run.core, &bad), -EINVAL);
    bad = t;
    bad.has_gripper = 1; /* the default Sawyer has none */
    assert_int_equal(driver_core_target(&run.core, &bad), -EINVAL);
    bad = t;
    bad.mode = 7;
    assert_int_equal(driver_core_target(&run.core, &bad), -EINVAL);
    assert_int_equal(driver_core_target(&run.core, NULL), -EINVAL);
    assert_int_equal(driver_core_counters(&run.core).targets_refused, 6);
    assert_int_equal(driver_core_target(&run.core, &t), 0);

    /* a description without a jerk limit is refused at init */
    hal_robot_t r = *hal_robot_find("panda");
    r.dddq_max[2] = 0;
    driver_core_t c;
    char err[256] = "";
    assert_int_equal(driver_core_init(&c, &r, NULL, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "jerk"));
}

/* Position targets: a pose 0.3 rad away on every joint is reached within
 * the limits and without overshoot. */
static void test_position_targets(void **state)
{
    (void)state;
    run_t run;
    run_init(&run, "panda");
    double goal[HAL_MAX_JOINTS];
    for (int i = 0; i < 7; i++)
        goal[i] = run.r->q_home[i] + (i % 2 ? -0.3 : 0.3);
    for (int p = 0; p < 100; p++) {
        driver_target_t t = {.seq = ++run.seq, .time_ns = run.now,
                             .mode = DRIVER_TARGET_POSITION, .n = 7};
        memcpy(t.values, goal, sizeof t.values);
        assert_int_equal(driver_core_target(&run.core, &t), 0);
        for (int i = 0; i < 50; i++) {
            run_tick(&run);
            for (int j = 0; j < 7; j++)
                assert_true(fabs(run.out.q[j] - run.r->q_home[j]) <= 0.3 + 1e-3);
        }
    }
    for (int j = 0; j < 7; j++)
        assert_double_equal(run.out.q[j], goal[j], 1e-4);
}

/* The continuous stop distance: the two closed forms and the ramp-first case. */
static void test_stop_distance(void **state)
{
    (void)state;
    /* v >= A^2 / J: v/2 (v/A + A/J) */
    assert_double_equal(driver_stop_distance(2.0, 0, 10, 1000), 1.0 * (0.2 + 0.01), 1e-12);
    assert_double_equal(driver_stop_distance(-2.0, 0, 10, 1000), 0.21, 1e-12);
    /* small v: v sqrt(v / J) */
    assert_double_equal(driver_stop_distance(0.04, 0, 10, 1000), 0.04 * sqrt(0.04 / 1000), 1e-15);
    assert_true(driver_stop_distance(2.0, 5, 10, 1000) > driver_stop_distance(2.0, 0, 10, 1000));
    assert_double_equal(driver_stop_distance(0, 0, 10, 1000), 0, 0);
}

/* A new session (a restarted pacd): seq numbers start again, the stale
 * limit follows the peer's policy period, the arm stops until a target. */
static void test_new_session(void **state)
{
    (void)state;
    run_t run;
    run_init(&run, "panda");
    double v[HAL_MAX_JOINTS] = {0.5, 0, 0, 0, 0, 0, 0};
    run.seq = 100;
    for (int p = 0; p < 4; p++) {
        assert_int_equal(run_target(&run, v, 0), 0);
        for (int i = 0; i < 50; i++)
            run_tick(&run);
    }
    assert_true(run.out.dq[0] > 0.4);
    assert_int_equal(driver_core_new_session(&run.core, 1e-4), -EINVAL);
    assert_int_equal(driver_core_new_session(&run.core, 0.1), 0); /* 10 Hz */
    while (run.out.moving)
        run_tick(&run);
    assert_int_equal(run.out.mode, DRIVER_IDLE);
    run.seq = 0;
    assert_int_equal(run_target(&run, v, 0), 0); /* seq 1 is taken */
    int64_t sent = run.now;
    while (run.now + TICK_NS - sent <= 200 * MS) { /* two 10 Hz periods */
        run_tick(&run);
        assert_int_equal(run.out.mode, DRIVER_TRACKING);
    }
    run_tick(&run);
    assert_int_equal(run.out.mode, DRIVER_STOPPING);
}

/* What pacd's remote backend refuses from a driver (bridge_check_state):
 * another protocol version or robot, wrong joint counts, non-finite numbers,
 * positions / speeds / gripper far outside the description. */
static void test_driver_state_checks(void **state)
{
    (void)state;
    const hal_robot_t *r = hal_robot_find("panda");
    double q[7], dq[7] = {0}, tau[7] = {0};
    memcpy(q, r->q_home, sizeof q);
    Pacd__V1__Pose pose = PACD__V1__POSE__INIT;
    pose.qw = 1;
    Pacd__V1__DriverState good = PACD__V1__DRIVER_STATE__INIT;
    good.protocol_version = BRIDGE_PROTOCOL_VERSION;
    good.robot = "panda";
    good.n_joint_positions = good.n_joint_velocities = 7;
    good.joint_positions = q;
    good.joint_velocities = dq;
    good.end_effector = &pose;
    good.gripper_position = 0.04;
    char why[160];
    assert_int_equal(bridge_check_state(&good, r, 0.05, 1.5, why, sizeof why), 0);
    good.n_joint_torques = 7;
    good.joint_torques = tau;
    assert_int_equal(bridge_check_state(&good, r, 0.05, 1.5, why, sizeof why), 0);

    Pacd__V1__DriverState s = good;
    s.protocol_version = 2;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "protocol version 2"));
    s = good;
    s.robot = "sawyer";
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "another robot"));
    s = good;
    s.n_joint_positions = 6;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    s = good;
    s.n_joint_torques = 3;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);

    double bad[7];
    memcpy(bad, q, sizeof bad);
    bad[2] = NAN;
    s = good;
    s.joint_positions = bad;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "non-finite"));
    memcpy(bad, q, sizeof bad);
    bad[0] = r->q_max[0] + 0.06;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    bad[0] = r->q_max[0] + 0.04; /* within the margin: a joint at its stop */
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), 0);
    double fast[7] = {0};
    fast[4] = 1.6 * r->dq_max[4];
    s = good;
    s.joint_velocities = fast;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    s = good;
    s.gripper_position = 0.2;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
    s = good;
    pose.x = INFINITY;
    assert_int_equal(bridge_check_state(&s, r, 0.05, 1.5, why, sizeof why), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_targets_keep_limits),
        cmocka_unit_test(test_reaches_target_without_overshoot),
        cmocka_unit_test(test_stale_target_stops_within_distance),
        cmocka_unit_test(test_hold_then_nothing_until_fresh_target),
        cmocka_unit_test(test_late_target_does_not_move),
        cmocka_unit_test(test_bad_targets_refused),
        cmocka_unit_test(test_position_targets),
        cmocka_unit_test(test_stop_distance),
        cmocka_unit_test(test_new_session),
        cmocka_unit_test(test_driver_state_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
