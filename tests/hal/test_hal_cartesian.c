/* Unit tests of the Cartesian action spaces (hal_cartesian_to_joint).
 *
 * The expected behaviour is derived from the FK, not from the code under
 * test: a small step q + dq * h must move hal_robot_fk the commanded way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "hal_cartesian.h"
#include "hal_test_util.h"

static hal_state_t state_at(const hal_robot_t *r, const double *q)
{
    hal_state_t s;
    memset(&s, 0, sizeof s);
    s.n_joints = r->n_joints;
    for (int i = 0; i < r->n_joints; i++)
        s.q[i] = q[i];
    hal_robot_fk(r, s.q, s.ee_pose);
    return s;
}

/* End-effector displacement (m) and rotation vector (rad) over a step of h
 * seconds at joint velocity cmd. */
static void ee_motion(const hal_robot_t *r, const double *q, const hal_command_t *cmd, double h,
                      double dp[3], double dw[3])
{
    double q2[HAL_MAX_JOINTS], a[7], b[7];
    for (int i = 0; i < r->n_joints; i++)
        q2[i] = q[i] + cmd->values[i] * h;
    hal_robot_fk(r, q, a);
    hal_robot_fk(r, q2, b);
    for (int i = 0; i < 3; i++)
        dp[i] = b[i] - a[i];
    /* rotation vector of b * conj(a), small angle */
    double aw = a[3], ax = -a[4], ay = -a[5], az = -a[6];
    double rw = b[3] * aw - b[4] * ax - b[5] * ay - b[6] * az;
    double rx = b[3] * ax + b[4] * aw + b[5] * az - b[6] * ay;
    double ry = b[3] * ay - b[4] * az + b[5] * aw + b[6] * ax;
    double rz = b[3] * az + b[4] * ay - b[5] * ax + b[6] * aw;
    double sgn = rw < 0 ? -1 : 1;
    dw[0] = 2 * sgn * rx;
    dw[1] = 2 * sgn * ry;
    dw[2] = 2 * sgn * rz;
}

static void check_direction(const char *robot, hal_space_t space, const float *action, int n,
                            const double *want_v, const double *want_w)
{
    const hal_robot_t *r = hal_robot_find(robot);
    hal_state_t s = state_at(r, r->q_home);
    hal_command_t cmd;
    uint32_t flags = 99;
    assert_int_equal(hal_cartesian_to_joint(r, NULL, &s, space, action, n, &cmd, &flags), 0);
    assert_int_equal(flags & (HAL_SAFETY_HELD | HAL_SAFETY_WORKSPACE | HAL_SAFETY_CLAMPED), 0);
    assert_int_equal(cmd.n, r->n_joints + (r->has_gripper && n % 2 == 1 ? 1 : 0));
    double dp[3], dw[3], h = 1e-4;
    ee_motion(r, s.q, &cmd, h, dp, dw);
    /* Damped least squares trades a little accuracy for boundedness: the
     * achieved twist is within 5% (of the largest component) of the
     * commanded one. */
    double scale = 0;
    for (int i = 0; i < 3; i++)
        scale = fmax(scale, fmax(fabs(want_v[i]), fabs(want_w[i])));
    for (int i = 0; i < 3; i++) {
        assert_double_equal(dp[i] / h, want_v[i], 0.05 * scale);
        assert_double_equal(dw[i] / h, want_w[i], 0.05 * scale);
    }
}

static void test_velocity_space_moves_ee_the_commanded_way(void **st)
{
    (void)st;
    const char *robots[] = {"panda", "sawyer"};
    for (int k = 0; k < 2; k++) {
        float ax[4] = {0.05f, 0, 0, 0}, ay[4] = {0, -0.05f, 0, 0}, az[4] = {0, 0, 0.04f, 0},
              wz[4] = {0, 0, 0, 0.5f};
        check_direction(robots[k], HAL_SPACE_CARTESIAN_VELOCITY, ax, 4,
                        (double[]){0.05, 0, 0}, (double[]){0, 0, 0});
        check_direction(robots[k], HAL_SPACE_CARTESIAN_VELOCITY, ay, 4,
                        (double[]){0, -0.05, 0}, (double[]){0, 0, 0});
        check_direction(robots[k], HAL_SPACE_CARTESIAN_VELOCITY, az, 4,
                        (double[]){0, 0, 0.04}, (double[]){0, 0, 0});
        check_direction(robots[k], HAL_SPACE_CARTESIAN_VELOCITY, wz, 4,
                        (double[]){0, 0, 0}, (double[]){0, 0, 0.5});
    }
}

static void test_twist_space_moves_ee_the_commanded_way(void **st)
{
    (void)st;
    float tw[7] = {0.1f, 0.05f, -0.08f, 0.3f, -0.2f, 0.4f, 0.5f};
    check_direction("panda", HAL_SPACE_CARTESIAN_TWIST, tw, 7,
                    (double[]){0.1, 0.05, -0.08}, (double[]){0.3, -0.2, 0.4});
    const hal_robot_t *r = hal_robot_find("panda");
    hal_state_t s = state_at(r, r->q_home);
    hal_command_t cmd;
    uint32_t flags;
    assert_int_equal(hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_CARTESIAN_TWIST, tw, 7, &cmd,
                                            &flags),
                     0);
    assert_int_equal(cmd.space, HAL_SPACE_JOINT_VELOCITY_GRIPPER);
    assert_double_equal(cmd.values[7], 0.5, 1e-6);
}

static void test_speed_clamped_direction_kept(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("sawyer");
    hal_state_t s = state_at(r, r->q_home);
    float a[4] = {0.3f, 0.4f, 0, 5.0f}; /* 0.5 m/s, 5 rad/s: above 0.07 and 1.0 */
    hal_command_t cmd;
    uint32_t flags;
    assert_int_equal(
        hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_CARTESIAN_VELOCITY, a, 4, &cmd, &flags), 0);
    assert_true(flags & HAL_SAFETY_CLAMPED);
    double dp[3], dw[3], h = 1e-4;
    ee_motion(r, s.q, &cmd, h, dp, dw);
    double v = sqrt(dp[0] * dp[0] + dp[1] * dp[1] + dp[2] * dp[2]) / h;
    if (!(v <= 0.07 * 1.02))
        fail_msg("v = %g m/s, dp %g %g %g", v, dp[0] / h, dp[1] / h, dp[2] / h);
    assert_true(v >= 0.07 * 0.9);
    assert_double_equal(dp[1] / dp[0], 0.4 / 0.3, 0.1);
    assert_true(fabs(dw[2] / h) <= 1.0 * 1.02);
}

/* Near a singularity (panda stretched out: all joints 0 except the
 * limit-bound ones), DLS keeps joint speeds bounded by |x| / (2 lambda). */
static void test_dls_bounded_near_singularity(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    double q[7] = {0, 0, 0, -0.0698, 0, -0.0175, 0}; /* arm straight up: singular */
    hal_state_t s = state_at(r, q);
    hal_cartesian_config_t cfg = {.damping = 0.05};
    cfg.box_min[0] = cfg.box_min[1] = cfg.box_min[2] = -2;
    cfg.box_max[0] = cfg.box_max[1] = cfg.box_max[2] = 2;
    float tw[6] = {0.0f, 0.0f, 0.5f, 0, 0, 0}; /* straight up: unreachable direction */
    hal_command_t cmd;
    uint32_t flags;
    assert_int_equal(
        hal_cartesian_to_joint(r, &cfg, &s, HAL_SPACE_CARTESIAN_TWIST, tw, 6, &cmd, &flags), 0);
    double norm = 0;
    for (int i = 0; i < 7; i++) {
        assert_true(isfinite(cmd.values[i]));
        norm += cmd.values[i] * cmd.values[i];
    }
    assert_true(sqrt(norm) <= 0.5 / (2 * 0.05) + 1e-9);
}

/* Commanding outward from the box, the FK end effector, integrated at the
 * control period with the mapped joint velocities, stops inside the box. */
static void test_workspace_box_respected(void **st)
{
    (void)st;
    const char *robots[] = {"panda", "sawyer"};
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(robots[k]);
        double bmin[3], bmax[3];
        assert_int_equal(hal_cartesian_box(r, NULL, bmin, bmax), 0);
        assert_double_equal(bmax[0] - bmin[0], 0.25, 1e-12);
        assert_double_equal(bmax[2] - bmin[2], 0.2, 1e-12);
        const float dirs[6][4] = {{0.07f, 0, 0, 0}, {-0.07f, 0, 0, 0}, {0, 0.07f, 0, 0},
                                  {0, -0.07f, 0, 0}, {0, 0, 0.07f, 0}, {0, 0, -0.07f, 0}};
        for (int d = 0; d < 6; d++) {
            double q[HAL_MAX_JOINTS];
            memcpy(q, r->q_home, sizeof q);
            int slowed = 0;
            for (int step = 0; step < 200; step++) { /* 10 s at 20 Hz: > 0.125 m at 0.07 m/s */
                hal_state_t s = state_at(r, q);
                hal_command_t cmd;
                uint32_t flags;
                assert_int_equal(hal_cartesian_to_joint(r, NULL, &s,
                                                        HAL_SPACE_CARTESIAN_VELOCITY, dirs[d],
                                                        4, &cmd, &flags),
                                 0);
                slowed |= (flags & HAL_SAFETY_WORKSPACE) != 0;
                for (int sub = 0; sub < 10; sub++) /* integrate 50 ms finely */
                    for (int i = 0; i < r->n_joints; i++)
                        q[i] += cmd.values[i] * 0.005;
                double p[7];
                hal_robot_fk(r, q, p);
                for (int i = 0; i < 3; i++) {
                    /* linearisation error over one period: well under 1 mm */
                    assert_true(p[i] <= bmax[i] + 1e-3);
                    assert_true(p[i] >= bmin[i] - 1e-3);
                }
            }
            assert_true(slowed);
            double p[7];
            hal_robot_fk(r, q, p);
            int axis = d / 2;
            double face = d % 2 == 0 ? bmax[axis] : bmin[axis];
            assert_double_equal(p[axis], face, 0.01); /* it got to the face */
        }
    }
}

static void test_bad_input_holds(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("sawyer");
    hal_state_t s = state_at(r, r->q_home);
    hal_command_t cmd;
    uint32_t flags;
    float a[5] = {0.01f, 0, 0, 0, 1};
    /* wrong n */
    assert_int_equal(
        hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_CARTESIAN_VELOCITY, a, 3, &cmd, &flags),
        -EINVAL);
    assert_true(flags & HAL_SAFETY_BAD_SHAPE);
    assert_true(flags & HAL_SAFETY_HELD);
    assert_int_equal(cmd.n, 7);
    for (int i = 0; i < 7; i++)
        assert_true(cmd.values[i] == 0.0);
    /* joint space is not Cartesian */
    assert_int_equal(
        hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_JOINT_VELOCITY, a, 4, &cmd, &flags),
        -EINVAL);
    /* NaN */
    a[2] = NAN;
    assert_int_equal(
        hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_CARTESIAN_VELOCITY, a, 4, &cmd, &flags),
        -EINVAL);
    assert_true(flags & HAL_SAFETY_NONFINITE);
    a[2] = 0;
    /* gripper on a robot without one: dropped, flagged */
    assert_int_equal(
        hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_CARTESIAN_VELOCITY, a, 5, &cmd, &flags), 0);
    assert_true(flags & HAL_SAFETY_GRIPPER_IGNORED);
    assert_int_equal(cmd.space, HAL_SPACE_JOINT_VELOCITY);
    assert_int_equal(cmd.n, 7);
    /* NULLs */
    assert_int_equal(
        hal_cartesian_to_joint(NULL, NULL, &s, HAL_SPACE_CARTESIAN_VELOCITY, a, 4, &cmd, &flags),
        -EINVAL);
    assert_int_equal(
        hal_cartesian_to_joint(r, NULL, NULL, HAL_SPACE_CARTESIAN_VELOCITY, a, 4, &cmd, NULL),
        -EINVAL);
    /* bad box */
    hal_cartesian_config_t cfg = {.damping = 0.05};
    cfg.box_min[0] = 1;
    assert_int_equal(
        hal_cartesian_to_joint(r, &cfg, &s, HAL_SPACE_CARTESIAN_VELOCITY, a, 4, &cmd, &flags),
        -EINVAL);
}

/* The Jacobian agrees with a forward difference of the FK position. */
static void test_jacobian_matches_fk(void **st)
{
    (void)st;
    const hal_robot_t *r = hal_robot_find("panda");
    double q[7] = {0.3, -0.5, 0.2, -2.0, 0.4, 1.8, -0.3};
    double jac[6 * HAL_MAX_JOINTS], a[7], b[7];
    assert_int_equal(hal_cartesian_jacobian(r, q, jac), 0);
    hal_robot_fk(r, q, a);
    for (int j = 0; j < 7; j++) {
        double q2[7];
        memcpy(q2, q, sizeof q2);
        q2[j] += 1e-5;
        hal_robot_fk(r, q2, b);
        for (int i = 0; i < 3; i++)
            assert_double_equal(jac[i * 7 + j], (b[i] - a[i]) / 1e-5, 1e-4);
    }
    q[2] = NAN;
    assert_int_equal(hal_cartesian_jacobian(r, q, jac), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_velocity_space_moves_ee_the_commanded_way),
        cmocka_unit_test(test_twist_space_moves_ee_the_commanded_way),
        cmocka_unit_test(test_speed_clamped_direction_kept),
        cmocka_unit_test(test_dls_bounded_near_singularity),
        cmocka_unit_test(test_workspace_box_respected),
        cmocka_unit_test(test_bad_input_holds),
        cmocka_unit_test(test_jacobian_matches_fk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
