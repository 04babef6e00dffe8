/* Unit tests of the `sim` backend through the hal interface (cmocka).
 *
 * The tests never assert on wall-clock time: they command, sleep, read the
 * state, and compare what moved with the sim's own state times. A generous
 * wall-clock bail-out only turns a stalled sim into a failure instead of a
 * hang. Every sample also checks invariants (limits never passed, |dq| <=
 * dq_max, ee_pose = FK(q)). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "hal.h"
#include "hal_mujoco.h"
#include "hal_safety.h"
#include "hal_sim.h"
#include "hal_test_util.h"
#include "rt_clock.h"

#define NS 1e-9

static double mono_s(void)
{
    return rt_clock_mono_ns() * NS;
}

static void pause_ms(int ms)
{
    rt_clock_sleep_ns((int64_t)ms * 1000000);
}

static void check_invariants(const hal_robot_t *r, const hal_state_t *s)
{
    assert_int_equal(s->n_joints, r->n_joints);
    for (int i = 0; i < r->n_joints; i++) {
        assert_true(s->q[i] >= r->q_min[i]);
        assert_true(s->q[i] <= r->q_max[i]);
        assert_true(fabs(s->dq[i]) <= r->dq_max[i] + 1e-12);
    }
    if (r->has_gripper) {
        assert_true(s->gripper_position >= 0.0);
        assert_true(s->gripper_position <= r->gripper_max);
    }
    double pose[7];
    hal_robot_fk(r, s->q, pose);
    for (int i = 0; i < 7; i++)
        assert_true(pose[i] == s->ee_pose[i]);
}

static hal_state_t read_ok(hal_t *h)
{
    hal_state_t s;
    assert_int_equal(hal_read_state(h, &s), 0);
    check_invariants(hal_driven_robot(h), &s);
    return s;
}

/* Called with consecutive samples by run_until / run_for. */
typedef void (*sample_fn)(const hal_robot_t *r, const hal_state_t *prev,
                          const hal_state_t *cur, void *ctx);

/* Runs until pred(robot, state, arg) holds, commanding `cmd` every few ms
 * (NULL: no commands), checking invariants on every sample and calling
 * `each` (if any) with consecutive samples. Returns the last state. A command takes
 * effect from the time it is sent, which the sim's simulated time may trail
 * on a loaded machine: tests that wait for a command's effect wait for the
 * state it leads to, not for a duration. The wall-clock deadline is only a
 * bail-out for a sim that never gets there. */
typedef int (*state_pred)(const hal_robot_t *r, const hal_state_t *s, const void *arg);

static hal_state_t run_until(hal_t *h, const hal_command_t *cmd, state_pred pred, const void *arg,
                             sample_fn each, void *ctx)
{
    hal_state_t prev = read_ok(h), cur = prev;
    double give_up = mono_s() + 60;
    while (!pred(hal_driven_robot(h), &cur, arg)) {
        if (mono_s() > give_up)
            fail_msg("the sim did not reach the awaited state in 60 s");
        if (cmd)
            assert_int_equal(hal_command(h, cmd), 0);
        pause_ms(3);
        cur = read_ok(h);
        assert_true(cur.time_mono_ns >= prev.time_mono_ns);
        assert_true(cur.seq >= prev.seq);
        if (each)
            each(hal_driven_robot(h), &prev, &cur, ctx);
        prev = cur;
    }
    return cur;
}

typedef struct {
    int64_t start_ns;
    double seconds;
} time_span_t;

/* arg (time_span_t) seconds of simulated time passed since its start. */
static int time_past(const hal_robot_t *r, const hal_state_t *s, const void *arg)
{
    (void)r;
    const time_span_t *a = arg;
    return (s->time_mono_ns - a->start_ns) * NS >= a->seconds;
}

/* run_until `seconds` of simulated time have passed. */
static hal_state_t run_for(hal_t *h, const hal_command_t *cmd, double seconds, sample_fn each,
                           void *ctx)
{
    time_span_t span = {read_ok(h).time_mono_ns, seconds};
    return run_until(h, cmd, time_past, &span, each, ctx);
}

/* Every joint at the velocity arg (double[n_joints]), to 1e-12 rad/s. */
static int velocity_is(const hal_robot_t *r, const hal_state_t *s, const void *arg)
{
    const double *v = arg;
    for (int i = 0; i < r->n_joints; i++)
        if (!(fabs(s->dq[i] - v[i]) <= 1e-12))
            return 0;
    return 1;
}

static int at_rest(const hal_robot_t *r, const hal_state_t *s, const void *arg)
{
    (void)arg;
    for (int i = 0; i < r->n_joints; i++)
        if (s->dq[i] != 0.0)
            return 0;
    return 1;
}

/* Joint arg[0] (an index) beyond position arg[1], in the direction of arg[2]'s sign. */
static int joint_past(const hal_robot_t *r, const hal_state_t *s, const void *arg)
{
    (void)r;
    const double *a = arg;
    double q = s->q[(int)a[0]];
    return a[2] > 0 ? q > a[1] : q < a[1];
}

static hal_command_t joint_cmd(int n, const double *v)
{
    hal_command_t c;
    memset(&c, 0, sizeof c);
    c.space = HAL_SPACE_JOINT_VELOCITY;
    c.n = n;
    for (int i = 0; i < n; i++)
        c.values[i] = v[i];
    return c;
}

/* The watchdog timeout is 1 s here (not the 0.2 s default) so that a test
 * thread starved by a loaded machine does not trip it; the watchdog tests
 * set their own. */
static hal_t *new_sim_timeout(const char *robot, const double *initial_q, double timeout)
{
    char err[256] = "";
    hal_options_t o = {.backend = "sim", .initial_q = initial_q, .command_timeout_s = timeout};
    hal_t *h = hal_new(hal_robot_find(robot), &o, err, sizeof err);
    if (!h)
        fail_msg("hal_new: %s", err);
    return h;
}

static hal_t *new_sim(const char *robot, const double *initial_q)
{
    return new_sim_timeout(robot, initial_q, 1.0);
}

static void test_starts_at_rest_at_home(void **st)
{
    (void)st;
    hal_t *h = new_sim("sawyer", NULL);
    hal_state_t s = read_ok(h);
    for (int i = 0; i < 7; i++) {
        assert_true(s.q[i] == hal_driven_robot(h)->q_home[i]);
        assert_true(s.dq[i] == 0.0);
    }
    assert_true(s.seq >= 1);
    /* with no command at all it stays there */
    s = run_for(h, NULL, 0.05, NULL, NULL);
    for (int i = 0; i < 7; i++)
        assert_true(s.q[i] == hal_driven_robot(h)->q_home[i]);
    hal_destroy(&h);
    assert_null(h);
}

static void test_velocity_moves_joint_by_v_times_t(void **st)
{
    (void)st;
    hal_t *h = new_sim("panda", NULL);
    const hal_robot_t *r = hal_driven_robot(h);
    double v[7] = {0.5, 0, -0.3, 0, 0, 0.2, 0};
    hal_command_t c = joint_cmd(7, v);
    /* ramp up (0.5 / 7.5 s of simulated time, once the command is in) */
    hal_state_t s1 = run_until(h, &c, velocity_is, v, NULL, NULL);
    for (int i = 0; i < 7; i++)
        assert_double_equal(s1.dq[i], v[i], 1e-12);
    hal_state_t s2 = run_for(h, &c, 0.3, NULL, NULL);
    double dt = (s2.time_mono_ns - s1.time_mono_ns) * NS;
    assert_true(dt >= 0.3);
    for (int i = 0; i < 7; i++) {
        assert_double_equal(s2.q[i] - s1.q[i], v[i] * dt, 1e-9);
        if (v[i] == 0.0)
            assert_true(s2.q[i] == r->q_home[i]);
    }
    hal_counters_t k;
    assert_int_equal(hal_counters(h, &k), 0);
    assert_true(k.commands > 0);
    assert_int_equal(k.watchdog_holds, 0);
    assert_int_equal(k.limit_stops, 0);
    hal_destroy(&h);
}

/* Velocities change at most at ddq_max, except for a joint that hit its
 * limit (it stops there at once, like on a mechanical stop). */
static void ramp_check(const hal_robot_t *r, const hal_state_t *prev, const hal_state_t *cur,
                       void *ctx)
{
    (void)ctx;
    double dt = (cur->time_mono_ns - prev->time_mono_ns) * NS;
    for (int i = 0; i < r->n_joints; i++) {
        if (cur->q[i] == r->q_min[i] || cur->q[i] == r->q_max[i])
            continue;
        assert_true(fabs(cur->dq[i] - prev->dq[i]) <= r->ddq_max[i] * dt + 1e-9);
    }
}

static void test_velocity_clamped_and_ramped(void **st)
{
    (void)st;
    double q0[7] = {-2.5, 0, 0, 0, 0, 0, 0};
    hal_t *h = new_sim("sawyer", q0);
    const hal_robot_t *r = hal_driven_robot(h);
    double v[7] = {10.0, 0, 0, 0, 0, 0, 0};
    hal_command_t c = joint_cmd(7, v);
    double clamped[7] = {r->dq_max[0], 0, 0, 0, 0, 0, 0};
    hal_state_t s = run_until(h, &c, velocity_is, clamped, ramp_check, NULL);
    assert_double_equal(s.dq[0], r->dq_max[0], 1e-12);
    /* and no faster, whatever it is asked */
    s = run_for(h, &c, 0.1, ramp_check, NULL);
    assert_double_equal(s.dq[0], r->dq_max[0], 1e-12);
    hal_destroy(&h);
}

static void test_joints_never_pass_limits(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    double q0[7];
    memcpy(q0, r->q_home, sizeof q0);
    q0[0] = r->q_max[0] - 0.05;
    q0[5] = r->q_min[5] + 0.05;
    hal_t *h = new_sim("panda", q0);
    double v[7] = {0};
    v[0] = r->dq_max[0];
    v[5] = -r->dq_max[5];
    hal_command_t c = joint_cmd(7, v);
    /* invariants checked on every sample; both joints stop at their limits */
    double past0[3] = {0, r->q_max[0] - 1e-9, 1}, past5[3] = {5, r->q_min[5] + 1e-9, -1};
    hal_state_t s = run_until(h, &c, joint_past, past0, ramp_check, NULL);
    s = run_until(h, &c, joint_past, past5, ramp_check, NULL);
    s = run_for(h, &c, 0.05, ramp_check, NULL);
    assert_true(s.q[0] == r->q_max[0]);
    assert_true(s.q[5] == r->q_min[5]);
    assert_true(s.dq[0] == 0.0);
    assert_true(s.dq[5] == 0.0);
    hal_counters_t k;
    assert_int_equal(hal_counters(h, &k), 0);
    assert_int_equal(k.limit_stops, 2);
    /* away from the limit works */
    v[0] = -0.2;
    v[5] = 0.2;
    c = joint_cmd(7, v);
    double away0[3] = {0, r->q_max[0], -1}, away5[3] = {5, r->q_min[5], 1};
    s = run_until(h, &c, joint_past, away0, NULL, NULL);
    s = run_until(h, &c, joint_past, away5, NULL, NULL);
    assert_true(s.q[0] < r->q_max[0]);
    assert_true(s.q[5] > r->q_min[5]);
    hal_destroy(&h);
}

/* While holding: never speeds up, never reverses, decelerates within ddq_max. */
static void decel_check(const hal_robot_t *r, const hal_state_t *prev, const hal_state_t *cur,
                        void *ctx)
{
    (void)ctx;
    for (int i = 0; i < r->n_joints; i++) {
        assert_true(fabs(cur->dq[i]) <= fabs(prev->dq[i]));
        assert_true(cur->dq[i] * prev->dq[i] >= 0);
    }
    ramp_check(r, prev, cur, NULL);
}

static void test_hold_decelerates_to_zero_and_stays(void **st)
{
    (void)st;
    hal_t *h = new_sim("panda", NULL);
    const hal_robot_t *r = hal_driven_robot(h);
    double v[7] = {0, 1.0, 0, 0, 0, 0, 0};
    hal_command_t c = joint_cmd(7, v);
    hal_state_t s0 = run_until(h, &c, velocity_is, v, NULL, NULL);
    assert_double_equal(s0.dq[1], 1.0, 1e-12);
    assert_int_equal(hal_hold(h), 0);
    /* every state on the way: never faster, never reversing, within ddq_max */
    hal_state_t s1 = run_until(h, NULL, at_rest, NULL, decel_check, NULL);
    assert_true(s1.dq[1] == 0.0);
    /* it could not stop faster than ddq_max allows (s0 is before the hold) */
    double min_dist = 1.0 * 1.0 / (2 * r->ddq_max[1]) - 1.0 * 0.002;
    assert_true(s1.q[1] - s0.q[1] >= min_dist);
    /* and it stays: 0.1 s of simulated time held, no command */
    hal_state_t s2 = run_for(h, NULL, 0.1, decel_check, NULL);
    for (int i = 0; i < 7; i++) {
        assert_true(s2.q[i] == s1.q[i]);
        assert_true(s2.dq[i] == 0.0);
    }
    /* a new command resumes motion */
    double past[3] = {1, s2.q[1], 1};
    hal_state_t s3 = run_until(h, &c, joint_past, past, NULL, NULL);
    assert_true(s3.q[1] > s2.q[1]);
    hal_counters_t k;
    hal_counters(h, &k);
    assert_int_equal(k.holds, 1);
    hal_destroy(&h);
}

static void test_watchdog_holds_after_missing_commands(void **st)
{
    (void)st;
    const double timeout = 0.2, period = 0.001; /* the defaults */
    hal_t *h = new_sim_timeout("sawyer", NULL, 0);
    const hal_robot_t *r = hal_driven_robot(h);
    double v[7] = {0.5, 0, 0, 0, 0, 0, 0};
    hal_command_t c = joint_cmd(7, v);
    hal_state_t s0 = read_ok(h);
    assert_int_equal(hal_command(h, &c), 0); /* one command, then silence */
    hal_state_t s1 = run_for(h, NULL, timeout + 0.5 / r->ddq_max[0] + 0.1, NULL, NULL);
    assert_true(s1.dq[0] == 0.0);
    double moved = s1.q[0] - s0.q[0];
    assert_true(moved > 0.5 * 0.5 * timeout);
    assert_true(moved <= 0.5 * (timeout + 2 * period) + 0.5 * 0.5 / (2 * r->ddq_max[0]) + 1e-9);
    hal_counters_t k;
    hal_counters(h, &k);
    assert_int_equal(k.watchdog_holds, 1); /* once per missed command, not per tick */
    /* it stays held */
    hal_state_t s2 = run_for(h, NULL, 0.1, NULL, NULL);
    assert_true(s2.q[0] == s1.q[0]);
    hal_counters(h, &k);
    assert_int_equal(k.watchdog_holds, 1);
    /* regular commands move it again */
    hal_state_t s3 = run_for(h, &c, 0.4, NULL, NULL);
    assert_true(s3.q[0] > s2.q[0]);
    assert_true(s3.dq[0] > 0);
    hal_destroy(&h);
}

static void test_gripper_moves_and_stays_in_range(void **st)
{
    (void)st;
    hal_t *h = new_sim("panda", NULL);
    const hal_robot_t *r = hal_driven_robot(h);
    hal_state_t s = read_ok(h);
    assert_true(s.gripper_position == r->gripper_max); /* menagerie home: open */
    hal_command_t c;
    memset(&c, 0, sizeof c);
    c.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER;
    c.n = 8;
    c.values[7] = -1.0;
    hal_state_t a = run_for(h, &c, 0.2, NULL, NULL);
    assert_true(a.gripper_position < r->gripper_max);
    assert_double_equal(a.gripper_velocity, -r->gripper_speed, 1e-12);
    hal_state_t b = run_for(h, &c, r->gripper_max / r->gripper_speed, NULL, NULL);
    assert_true(b.gripper_position == 0.0);
    assert_true(b.gripper_velocity == 0.0);
    c.values[7] = 0.5;
    hal_state_t d = run_for(h, &c, 0.1, NULL, NULL);
    assert_true(d.gripper_position > 0.0);
    assert_double_equal(d.gripper_velocity, 0.5 * r->gripper_speed, 1e-12);
    hal_destroy(&h);
}

static void test_bad_commands_refused_and_held(void **st)
{
    (void)st;
    hal_t *h = new_sim("sawyer", NULL);
    double v[7] = {0.3, 0, 0, 0, 0, 0, 0};
    hal_command_t good = joint_cmd(7, v);
    run_for(h, &good, 0.3, NULL, NULL);
    hal_command_t bad = good;
    bad.values[2] = NAN;
    assert_int_equal(hal_command(h, &bad), -EINVAL);
    bad = good;
    bad.n = 6;
    assert_int_equal(hal_command(h, &bad), -EINVAL);
    bad = good;
    bad.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER; /* sawyer has no gripper */
    bad.n = 8;
    assert_int_equal(hal_command(h, &bad), -EINVAL);
    bad.space = (hal_space_t)99;
    assert_int_equal(hal_command(h, &bad), -EINVAL);
    assert_int_equal(hal_command(h, NULL), -EINVAL);
    hal_state_t s = run_for(h, NULL, 0.3 / 2.0 + 0.05, NULL, NULL);
    assert_true(s.dq[0] == 0.0);
    hal_counters_t k;
    hal_counters(h, &k);
    assert_int_equal(k.bad_commands, 4);
    assert_int_equal(k.watchdog_holds, 0); /* held by the refusals, before the watchdog */
    hal_destroy(&h);
}

static void test_reset_returns_home(void **st)
{
    (void)st;
    hal_t *h = new_sim("panda", NULL);
    double v[7] = {0.4, -0.4, 0.4, 0.4, 0.4, 0.4, 0.4};
    hal_command_t c = joint_cmd(7, v);
    hal_state_t s = run_for(h, &c, 0.2, NULL, NULL);
    assert_true(s.q[0] != hal_driven_robot(h)->q_home[0]);
    assert_int_equal(hal_reset(h), 0);
    s = run_for(h, NULL, 0.02, NULL, NULL);
    for (int i = 0; i < 7; i++) {
        assert_true(s.q[i] == hal_driven_robot(h)->q_home[i]);
        assert_true(s.dq[i] == 0.0);
    }
    hal_counters_t k;
    hal_counters(h, &k);
    assert_int_equal(k.resets, 1);
    hal_destroy(&h);
}

static void test_new_rejects_bad_options(void **st)
{
    (void)st;
    char err[256];
    const hal_robot_t *r = hal_robot_find("panda");
    hal_options_t o = {.backend = "mujoco"};
    err[0] = 0;
    assert_null(hal_new(r, &o, err, sizeof err));
    assert_non_null(strstr(err, "mujoco"));
    err[0] = 0;
    assert_null(hal_new(NULL, NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    double q[7];
    memcpy(q, r->q_home, sizeof q);
    q[3] = 0.5; /* Panda joint 4 must be negative */
    hal_options_t o2 = {.initial_q = q};
    err[0] = 0;
    assert_null(hal_new(r, &o2, err, sizeof err));
    assert_non_null(strstr(err, "initial_q[3]"));
    q[3] = NAN;
    assert_null(hal_new(r, &o2, NULL, 0));
    hal_sim_options_t so3 = {.rate_hz = 1e6};
    hal_options_t o3 = {.backend_options = &so3};
    assert_null(hal_new(r, &o3, err, sizeof err));
    assert_non_null(strstr(err, "sim_rate_hz"));
    hal_options_t o4 = {.command_timeout_s = -1};
    assert_null(hal_new(r, &o4, err, sizeof err));
    /* a copy of a description with a broken table */
    hal_robot_t broken = *r;
    broken.dq_max[2] = 0;
    assert_null(hal_new(&broken, NULL, err, sizeof err));
    assert_non_null(strstr(err, "joint 3"));
    /* defaults */
    hal_t *h = hal_new(r, NULL, err, sizeof err);
    assert_non_null(h);
    assert_string_equal(hal_backend_name(h), "sim");
    hal_task_t task;
    assert_int_equal(hal_read_task(h, &task), -ENOTSUP); /* the sim arm has no task */
    assert_int_equal(hal_reset_seeded(h, 5), 0);          /* no randomisation: a reset */
    hal_destroy(&h);
    assert_null(h);
    hal_destroy(&h);
    hal_destroy(NULL);
    hal_state_t s;
    assert_int_equal(hal_read_state(NULL, &s), -EINVAL);
    assert_int_equal(hal_command(NULL, NULL), -EINVAL);
    assert_int_equal(hal_hold(NULL), -EINVAL);
    assert_int_equal(hal_reset(NULL), -EINVAL);
    hal_counters_t k;
    assert_int_equal(hal_counters(NULL, &k), -EINVAL);
}

/* A slow sim rate still integrates on its own clock: same v*t law; and a
 * custom watchdog timeout holds that long after the last command, in the
 * sim's own time. Each half has a sim of its own: the v*t law needs a
 * watchdog a starved test thread does not trip (1 s, as new_sim), the
 * timeout half only one command and silence. */
static void test_custom_rate_and_timeout(void **st)
{
    (void)st;
    char err[256];
    hal_sim_options_t so = {.rate_hz = 100};
    hal_options_t o = {.command_timeout_s = 1.0, .backend_options = &so};
    hal_t *h = hal_new(hal_robot_find("sawyer"), &o, err, sizeof err);
    assert_non_null(h);
    double v[7] = {0, 0, 0, 0, 0.2, 0, 0};
    hal_command_t c = joint_cmd(7, v);
    hal_state_t s1 = run_for(h, &c, 0.2, NULL, NULL);
    assert_double_equal(s1.dq[4], 0.2, 1e-12);
    hal_state_t s2 = run_for(h, &c, 0.2, NULL, NULL);
    double dt = (s2.time_mono_ns - s1.time_mono_ns) * NS;
    assert_double_equal(s2.q[4] - s1.q[4], 0.2 * dt, 1e-9);
    hal_counters_t k;
    hal_counters(h, &k);
    assert_int_equal(k.watchdog_holds, 0);
    hal_destroy(&h);

    /* 0.1 s timeout at 100 Hz: one command, then silence. The joint runs
     * (ramping up at ddq_max) for 0.1 s of sim time after the command, a
     * period or two more at most, then ramps down to rest: half the default
     * timeout's travel. */
    const double timeout = 0.1, period = 0.01;
    o.command_timeout_s = timeout;
    h = hal_new(hal_robot_find("sawyer"), &o, err, sizeof err);
    assert_non_null(h);
    const hal_robot_t *r = hal_driven_robot(h);
    hal_state_t s0 = read_ok(h);
    assert_int_equal(hal_command(h, &c), 0);
    hal_state_t s3 = run_for(h, NULL, timeout + 0.2 / r->ddq_max[4] + 0.3, NULL, NULL);
    assert_true(s3.dq[4] == 0.0);
    double moved = s3.q[4] - s0.q[4];
    hal_counters(h, &k);
    /* at least the ramp-up to 0.2 rad/s and half of the timeout at speed */
    if (!(moved > 0.5 * 0.2 * timeout))
        fail_msg("joint 5 moved %g rad after one command: the watchdog held early "
                 "(%llu overruns)",
                 moved, (unsigned long long)k.overruns);
    /* at most: full speed from the command to the timeout plus two periods,
     * then braking (0.2 s would travel 0.04 rad) */
    if (!(moved <= 0.2 * (timeout + 2 * period) + 0.2 * 0.2 / (2 * r->ddq_max[4]) + 1e-9))
        fail_msg("joint 5 moved %g rad after one command: the watchdog held late", moved);
    assert_int_equal(k.watchdog_holds, 1);
    hal_destroy(&h);
}


/* Closed loop, as in the daemon: a 20 Hz loop on absolute deadlines reads
 * the state, filters a policy that pushes every joint toward a limit at
 * full speed, and commands the sim. The filter brings each joint to rest
 * near (limit - margin); the deterministic version of this check, without
 * threads, is test_closed_loop_stops_before_limits in test_hal_safety.c.
 * Here the loop's real periods vary with the machine's load, so the
 * no-hard-limit check is made only when the loop kept its period (as seen
 * in the sim's own state times) to within 5 ms; it is not a timing test. */
static void test_filter_keeps_sim_off_its_limits(void **st)
{
    (void)st;
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(k ? "sawyer" : "panda");
        const hal_safety_config_t cfg = {
            .period_s = 0.05, .out_of_spec_factor = 2.0, .limit_margin = 0.02};
        double q0[7];
        float a[7];
        for (int i = 0; i < 7; i++) {
            int up = (i + k) % 2;
            q0[i] = up ? r->q_max[i] - 0.4 : r->q_min[i] + 0.4;
            a[i] = (float)(up ? r->dq_max[i] : -r->dq_max[i]);
        }
        hal_t *h = new_sim(r->name, q0);
        hal_command_t prev, out;
        memset(&prev, 0, sizeof prev);
        prev.space = HAL_SPACE_JOINT_VELOCITY;
        prev.n = 7;
        double intrusion = -1e9; /* deepest point past (limit - margin), rad */
        double longest = 0;      /* longest loop period seen in state time, s */
        int64_t next = rt_clock_mono_ns();
        hal_state_t s = read_ok(h), start = s;
        /* Sawyer at 2 rad/s^2 needs about 1 s to stop from full speed. */
        while ((s.time_mono_ns - start.time_mono_ns) * NS < 2.0) {
            hal_safety_result_t res;
            assert_int_equal(hal_safety_filter(r, &cfg, &s, HAL_SPACE_JOINT_VELOCITY, a, 7,
                                               NULL, NULL, &prev, &out, &res),
                             0);
            assert_int_equal(res.hold, 0);
            assert_int_equal(hal_command(h, &out), 0);
            prev = out;
            next += 50000000;
            rt_clock_sleep_until(next);
            hal_state_t s2 = read_ok(h);
            longest = fmax(longest, (s2.time_mono_ns - s.time_mono_ns) * NS);
            s = s2;
            for (int i = 0; i < 7; i++) {
                double over = a[i] > 0 ? s.q[i] - (r->q_max[i] - cfg.limit_margin)
                                       : (r->q_min[i] + cfg.limit_margin) - s.q[i];
                intrusion = fmax(intrusion, over);
            }
        }
        hal_counters_t c;
        hal_counters(h, &c);
        print_message("%s: deepest intrusion past (limit - margin) %.5f rad, longest loop "
                      "period %.4f s, hard limit stops %llu\n",
                      r->name, intrusion, longest, (unsigned long long)c.limit_stops);
        assert_true(intrusion > -0.05); /* got close: the guard does not stop it far off */
        for (int i = 0; i < 7; i++)
            assert_true(fabs(s.dq[i]) < 0.05); /* at rest, or creeping into the last mm */
        if (longest <= cfg.period_s + 0.005) {
            assert_int_equal(c.limit_stops, 0);
            assert_true(intrusion < cfg.limit_margin);
        } else {
            print_message("loop ran late (machine busy): hard-limit check not applicable\n");
        }
        hal_destroy(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_at_rest_at_home),
        cmocka_unit_test(test_velocity_moves_joint_by_v_times_t),
        cmocka_unit_test(test_velocity_clamped_and_ramped),
        cmocka_unit_test(test_joints_never_pass_limits),
        cmocka_unit_test(test_hold_decelerates_to_zero_and_stays),
        cmocka_unit_test(test_watchdog_holds_after_missing_commands),
        cmocka_unit_test(test_gripper_moves_and_stays_in_range),
        cmocka_unit_test(test_bad_commands_refused_and_held),
        cmocka_unit_test(test_reset_returns_home),
        cmocka_unit_test(test_new_rejects_bad_options),
        cmocka_unit_test(test_custom_rate_and_timeout),
        cmocka_unit_test(test_filter_keeps_sim_off_its_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
