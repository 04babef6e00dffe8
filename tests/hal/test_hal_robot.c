/* Unit tests of the robot descriptions and FK (cmocka). The FK is compared
 * with the menagerie models independently in test_fk.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "hal_robot.h"
#include "hal_test_util.h"

static const char *const names[] = {"panda", "sawyer"};

static void test_both_robots_found(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(names[k]);
        assert_non_null(r);
        assert_string_equal(r->name, names[k]);
        assert_int_equal(r->n_joints, 7);
        assert_non_null(r->limits_source);
        assert_non_null(r->ee_frame);
    }
    assert_ptr_not_equal(hal_robot_find("panda"), hal_robot_find("sawyer"));
}

static void test_unknown_robot_is_null(void **state)
{
    (void)state;
    assert_null(hal_robot_find("ur5"));
    assert_null(hal_robot_find(""));
    assert_null(hal_robot_find("Panda"));
    assert_null(hal_robot_find(NULL));
}

static void test_tables_sane(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(names[k]);
        for (int i = 0; i < r->n_joints; i++) {
            assert_true(r->q_min[i] < r->q_home[i]);
            assert_true(r->q_home[i] < r->q_max[i]);
            assert_true(r->dq_max[i] > 0 && r->dq_max[i] < 10);
            assert_true(r->ddq_max[i] > 0 && r->ddq_max[i] < 100);
        }
        if (r->has_gripper) {
            assert_true(r->gripper_max > 0);
            assert_true(r->gripper_speed > 0);
        }
    }
    assert_true(hal_robot_find("panda")->has_gripper);
    assert_false(hal_robot_find("sawyer")->has_gripper);
    assert_true(fabs(hal_robot_find("panda")->gripper_max - 0.08) < 1e-12);
}

/* Panda at q = 0: the Franka DH table stacks d1 + d3 + d5 = 0.333 + 0.316 +
 * 0.384 upward, a7 = 0.088 sideways, then the flange (0.107) and the TCP
 * (0.1034) point straight down: TCP at (0.088, 0, 0.333 + 0.316 + 0.384 -
 * 0.107 - 0.1034). */
static void test_panda_zero_pose_from_dh_table(void **state)
{
    (void)state;
    const double q[7] = {0};
    double pose[7];
    hal_robot_fk(hal_robot_find("panda"), q, pose);
    assert_double_equal(pose[0], 0.088, 1e-12);
    assert_double_equal(pose[1], 0.0, 1e-12);
    assert_double_equal(pose[2], 0.333 + 0.316 + 0.384 - 0.107 - 0.1034, 1e-12);
}

/* Joint 1 of both arms is a vertical axis through the base: turning it
 * rotates the end effector about z, keeping its height and distance. */
static void test_joint1_rotates_about_base_z(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(names[k]);
        double q[7], a[7], b[7];
        memcpy(q, r->q_home, sizeof q);
        hal_robot_fk(r, q, a);
        q[0] += 0.7;
        hal_robot_fk(r, q, b);
        assert_double_equal(a[2], b[2], 1e-12);
        assert_double_equal(hypot(a[0], a[1]), hypot(b[0], b[1]), 1e-12);
        double ang = atan2(b[1], b[0]) - atan2(a[1], a[0]);
        ang = remainder(ang, 2 * M_PI);
        assert_double_equal(ang, 0.7, 1e-9);
    }
}

static void test_fk_quaternion_unit_and_bad_input_nan(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        const hal_robot_t *r = hal_robot_find(names[k]);
        double pose[7];
        hal_robot_fk(r, r->q_home, pose);
        double n = 0;
        for (int i = 3; i < 7; i++)
            n += pose[i] * pose[i];
        assert_double_equal(n, 1.0, 1e-12);
        assert_true(pose[3] >= 0);
        double q[7];
        memcpy(q, r->q_home, sizeof q);
        q[3] = NAN;
        hal_robot_fk(r, q, pose);
        for (int i = 0; i < 7; i++)
            assert_true(isnan(pose[i]));
    }
    double pose[7] = {0};
    hal_robot_fk(NULL, hal_robot_find("panda")->q_home, pose);
    assert_true(isnan(pose[0]));
    hal_robot_fk(hal_robot_find("panda"), NULL, pose);
    assert_true(isnan(pose[0]));
    hal_robot_fk(hal_robot_find("panda"), hal_robot_find("panda")->q_home, NULL);
}

/* hal_robot_variant: the Sawyer with the robosuite gripper is the same arm
 * (limits, FK) with a gripper; the Panda has no gripper-less description. */
static void test_sawyer_gripper_variant(void **state)
{
    (void)state;
    const hal_robot_t *s = hal_robot_find("sawyer");
    const hal_robot_t *g = hal_robot_variant(s, 1);
    assert_non_null(g);
    assert_ptr_not_equal(g, s);
    assert_string_equal(g->name, "sawyer");
    assert_true(g->has_gripper);
    /* robosuite SawyerLift model_1.xml: each finger's joint range within its
     * servo's ctrlrange is -0.0115..0.0115 m */
    assert_true(fabs(g->gripper_max - 2 * (0.0115 + 0.0115)) < 1e-5);
    assert_true(g->gripper_speed > 0);
    assert_int_equal(g->n_joints, s->n_joints);
    for (int i = 0; i < s->n_joints; i++) {
        assert_true(g->q_min[i] == s->q_min[i] && g->q_max[i] == s->q_max[i]);
        assert_true(g->dq_max[i] == s->dq_max[i] && g->ddq_max[i] == s->ddq_max[i]);
        assert_true(g->q_home[i] == s->q_home[i]);
    }
    double a[7], b[7];
    hal_robot_fk(s, s->q_home, a);
    hal_robot_fk(g, g->q_home, b);
    for (int i = 0; i < 7; i++)
        assert_true(fabs(a[i] - b[i]) < 1e-12);
    /* round trips, identity when it already matches */
    assert_ptr_equal(hal_robot_variant(g, 0), s);
    assert_ptr_equal(hal_robot_variant(s, 0), s);
    assert_ptr_equal(hal_robot_variant(g, 1), g);
    /* the default stays gripper-less */
    assert_ptr_equal(hal_robot_find("sawyer"), s);
    const hal_robot_t *p = hal_robot_find("panda");
    assert_ptr_equal(hal_robot_variant(p, 1), p);
    assert_null(hal_robot_variant(p, 0));
    assert_null(hal_robot_variant(NULL, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_robots_found),
        cmocka_unit_test(test_unknown_robot_is_null),
        cmocka_unit_test(test_tables_sane),
        cmocka_unit_test(test_panda_zero_pose_from_dh_table),
        cmocka_unit_test(test_joint1_rotates_about_base_z),
        cmocka_unit_test(test_fk_quaternion_unit_and_bad_input_nan),
        cmocka_unit_test(test_sawyer_gripper_variant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
