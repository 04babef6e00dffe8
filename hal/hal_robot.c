/* hal_robot — constant robot descriptions (limits with sources) and forward
 * kinematics of the end effector. See docs/hal.md for the tables. */
#include "hal_robot.h"

#include <math.h>
#include <string.h>

/* Franka Emika Panda.
 * Limits: Franka docs, control-parameters-joint-panda.csv ("Robot and
 * interface specifications", limits in joint space).
 * Home: MuJoCo Menagerie franka_emika_panda/panda.xml, keyframe "home".
 * Gripper: Franka Hand, 2 fingers of 0..0.04 m each (menagerie panda.xml
 * finger joint range, Franka docs: max. opening 80 mm); speed 0.1 m/s of total
 * opening (Franka Hand product data: 50 mm/s per finger). */
static const hal_robot_t panda = {
    .name = "panda",
    .limits_source = "Franka docs control-parameters-joint-panda.csv (q, dq, ddq, dddq); "
                     "home: MuJoCo Menagerie panda.xml keyframe 'home'",
    .n_joints = 7,
    .q_min = {-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973},
    .q_max = {2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973},
    .dq_max = {2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61},
    .ddq_max = {15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0},
    .dddq_max = {7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0},
    .q_home = {0.0, 0.0, 0.0, -1.57079, 0.0, 1.57079, -0.7853},
    .has_gripper = 1,
    .gripper_max = 0.08,
    .gripper_speed = 0.1,
    .ee_frame = "Franka Hand TCP (pinch point): Franka DH flange, then Rz(-pi/4) and "
                "+0.1034 m along z (Franka default F_T_EE)",
};

/* Rethink Sawyer.
 * Limits: sawyer_description/urdf/sawyer_base.urdf.xacro (ranges,
 * velocities); accelerations 2.0 rad/s^2 from
 * sawyer_moveit_config/config/joint_limits.yaml.
 * Home: MuJoCo Menagerie rethink_robotics_sawyer/sawyer.xml keyframe "home".
 * The menagerie model has no gripper.
 * SAWYER_ARM: the arm (joints, limits, home, flange), the same in both
 * Sawyer descriptions below. */
#define SAWYER_ARM                                                                               \
    .name = "sawyer", .n_joints = 7,                                                             \
    .q_min = {-3.0503, -3.8095, -3.0426, -3.0439, -2.9761, -2.9761, -4.7124},                    \
    .q_max = {3.0503, 2.2736, 3.0426, 3.0439, 2.9761, 2.9761, 4.7124},                           \
    .dq_max = {1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545},                                  \
    .ddq_max = {2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0},                                              \
    .dddq_max = {40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0},                                      \
    .q_home = {0.0, -1.18, 0.0, 2.18, 0.0, 0.57, 3.3161},                                        \
    .ee_frame = "flange: menagerie sawyer.xml site 'attachment_site' on right_l6 "               \
                "(0.0245 m along z, Rz(pi))"
#define SAWYER_LIMITS_SOURCE                                                                     \
    "sawyer_description/urdf/sawyer_base.urdf.xacro (q, dq); "                                   \
    "sawyer_moveit_config joint_limits.yaml (ddq 2.0); jerk 40 rad/s^3 assumed; "               \
    "home: MuJoCo Menagerie sawyer.xml keyframe 'home'"

static const hal_robot_t sawyer = {
    .limits_source = SAWYER_LIMITS_SOURCE,
    SAWYER_ARM,
    .has_gripper = 0,
    .gripper_max = 0.0,
    .gripper_speed = 0.0,
};

/* Rethink Sawyer with the Rethink two-finger electric parallel gripper, as in
 * the robosuite Sawyer scenes (e.g. SawyerLift models/model_1.xml). Arm: the
 * `sawyer` description above, unchanged.
 * gripper_max: the opening the model's finger servos can reach. Each finger
 * slide joint's range (r_gripper_l_finger_joint -0.0115..0.020833 m,
 * r_gripper_r_finger_joint -0.020833..0.0115 m: 0.0647 m together)
 * intersected with its position actuator's ctrlrange (-0.020833..0.0115 m and
 * -0.0115..0.020833 m) leaves -0.0115..0.0115 m, 0.023 m per finger: 0.046 m
 * fully open. The recorded SawyerLift demonstrations agree (largest opening
 * in demo_1's states: 0.0465 m).
 * gripper_speed: ASSUMED 0.1 m/s of total opening (no Rethink datasheet figure
 * at hand; the Franka Hand's figure: about 0.5 s from open to closed). */
static const hal_robot_t sawyer_gripper = {
    .limits_source = SAWYER_LIMITS_SOURCE "; "
                     "gripper: robosuite SawyerLift model_1.xml finger joint ranges within "
                     "their actuators' ctrlrange (0.046 m); speed 0.1 m/s assumed",
    SAWYER_ARM,
    .has_gripper = 1,
    .gripper_max = 0.046,
    .gripper_speed = 0.1,
};

/* hal_robot_find returns the first description of a name: the default. */
static const hal_robot_t *const robots[] = {&panda, &sawyer, &sawyer_gripper};

const hal_robot_t *hal_robot_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof robots / sizeof robots[0]; i++)
        if (strcmp(robots[i]->name, name) == 0)
            return robots[i];
    return NULL;
}

const hal_robot_t *hal_robot_variant(const hal_robot_t *robot, int has_gripper)
{
    if (!robot || !robot->name)
        return NULL;
    if (!robot->has_gripper == !has_gripper)
        return robot;
    for (size_t i = 0; i < sizeof robots / sizeof robots[0]; i++)
        if (strcmp(robots[i]->name, robot->name) == 0 &&
            !robots[i]->has_gripper == !has_gripper)
            return robots[i];
    return NULL;
}

/* ---- small rigid-transform helpers (row-major 3x3 rotation + translation) ---- */

typedef struct {
    double r[3][3];
    double p[3];
} xform_t;

static void xf_identity(xform_t *t)
{
    memset(t, 0, sizeof *t);
    t->r[0][0] = t->r[1][1] = t->r[2][2] = 1.0;
}

/* t = t * (translation d, then rotation r_local): p += R d; R = R r_local. */
static void xf_apply(xform_t *t, const double d[3], const double r_local[3][3])
{
    double p[3], r[3][3];
    for (int i = 0; i < 3; i++) {
        p[i] = t->p[i] + t->r[i][0] * d[0] + t->r[i][1] * d[1] + t->r[i][2] * d[2];
        for (int j = 0; j < 3; j++)
            r[i][j] = t->r[i][0] * r_local[0][j] + t->r[i][1] * r_local[1][j] +
                      t->r[i][2] * r_local[2][j];
    }
    memcpy(t->p, p, sizeof p);
    memcpy(t->r, r, sizeof r);
}

static void rot_x(double a, double r[3][3])
{
    double c = cos(a), s = sin(a);
    double m[3][3] = {{1, 0, 0}, {0, c, -s}, {0, s, c}};
    memcpy(r, m, sizeof m);
}

static void rot_z(double a, double r[3][3])
{
    double c = cos(a), s = sin(a);
    double m[3][3] = {{c, -s, 0}, {s, c, 0}, {0, 0, 1}};
    memcpy(r, m, sizeof m);
}

/* Rotation matrix of the quaternion (w, x, y, z), normalised here (MuJoCo
 * normalises the quats of its XML the same way). */
static void rot_quat(const double q_in[4], double r[3][3])
{
    double n = sqrt(q_in[0] * q_in[0] + q_in[1] * q_in[1] + q_in[2] * q_in[2] +
                    q_in[3] * q_in[3]);
    double w = q_in[0] / n, x = q_in[1] / n, y = q_in[2] / n, z = q_in[3] / n;
    r[0][0] = 1 - 2 * (y * y + z * z);
    r[0][1] = 2 * (x * y - w * z);
    r[0][2] = 2 * (x * z + w * y);
    r[1][0] = 2 * (x * y + w * z);
    r[1][1] = 1 - 2 * (x * x + z * z);
    r[1][2] = 2 * (y * z - w * x);
    r[2][0] = 2 * (x * z - w * y);
    r[2][1] = 2 * (y * z + w * x);
    r[2][2] = 1 - 2 * (x * x + y * y);
}

/* Unit quaternion (w >= 0) of a rotation matrix; Shepperd's method (pick the
 * largest of w, x, y, z to divide by). */
static void quat_of_rot(const double r[3][3], double q[4])
{
    double tr = r[0][0] + r[1][1] + r[2][2];
    double w, x, y, z;
    if (tr >= r[0][0] && tr >= r[1][1] && tr >= r[2][2]) {
        double s = 2.0 * sqrt(1.0 + tr);
        w = 0.25 * s;
        x = (r[2][1] - r[1][2]) / s;
        y = (r[0][2] - r[2][0]) / s;
        z = (r[1][0] - r[0][1]) / s;
    } else if (r[0][0] >= r[1][1] && r[0][0] >= r[2][2]) {
        double s = 2.0 * sqrt(1.0 + r[0][0] - r[1][1] - r[2][2]);
        w = (r[2][1] - r[1][2]) / s;
        x = 0.25 * s;
        y = (r[0][1] + r[1][0]) / s;
        z = (r[0][2] + r[2][0]) / s;
    } else if (r[1][1] >= r[2][2]) {
        double s = 2.0 * sqrt(1.0 + r[1][1] - r[0][0] - r[2][2]);
        w = (r[0][2] - r[2][0]) / s;
        x = (r[0][1] + r[1][0]) / s;
        y = 0.25 * s;
        z = (r[1][2] + r[2][1]) / s;
    } else {
        double s = 2.0 * sqrt(1.0 + r[2][2] - r[0][0] - r[1][1]);
        w = (r[1][0] - r[0][1]) / s;
        x = (r[0][2] + r[2][0]) / s;
        y = (r[1][2] + r[2][1]) / s;
        z = 0.25 * s;
    }
    double n = sqrt(w * w + x * x + y * y + z * z);
    double sign = w < 0 ? -1.0 : 1.0;
    q[0] = sign * w / n;
    q[1] = sign * x / n;
    q[2] = sign * y / n;
    q[3] = sign * z / n;
}

static void pose_of(const xform_t *t, double pose[7])
{
    pose[0] = t->p[0];
    pose[1] = t->p[1];
    pose[2] = t->p[2];
    quat_of_rot(t->r, pose + 3);
}

/* Panda: modified (Craig) DH parameters from the Franka docs, per joint i:
 * T_{i-1,i} = Rx(alpha_{i-1}) Tx(a_{i-1}) Rz(theta_i) Tz(d_i). */
static const double panda_a[7] = {0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088};
static const double panda_d[7] = {0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0};
static const double panda_alpha[7] = {0.0, -M_PI_2, M_PI_2, M_PI_2, -M_PI_2, M_PI_2, M_PI_2};
static const double panda_flange_d = 0.107; /* Franka docs, "Flange" row */
static const double panda_tcp_d = 0.1034;   /* Franka docs, F_T_EE of the hand */
static const double panda_tcp_rz = -M_PI_4; /* Franka docs, F_T_EE of the hand */

static void panda_fk(const double *q, xform_t *t)
{
    double r[3][3], id[3][3];
    const double zero[3] = {0, 0, 0};
    rot_z(0.0, id);
    xf_identity(t);
    for (int i = 0; i < 7; i++) {
        const double ax[3] = {panda_a[i], 0, 0};
        const double dz[3] = {0, 0, panda_d[i]};
        rot_x(panda_alpha[i], r);
        xf_apply(t, zero, r);
        rot_z(q[i], r);
        xf_apply(t, ax, r);
        xf_apply(t, dz, id);
    }
    const double flange[3] = {0, 0, panda_flange_d};
    xf_apply(t, flange, id);
    const double tcp[3] = {0, 0, panda_tcp_d};
    rot_z(panda_tcp_rz, r);
    xf_apply(t, zero, r);
    xf_apply(t, tcp, id);
}

/* Sawyer: MuJoCo Menagerie sawyer.xml body chain base -> right_l0 ... right_l6
 * -> site attachment_site. Each body: pos, quat (w x y z, as written in the
 * XML) relative to its parent, then its hinge joint about local z. */
typedef struct {
    double pos[3];
    double quat[4];
} body_t;

static const body_t sawyer_chain[7] = {
    {{0, 0, 0.08}, {1, 0, 0, 0}},                               /* right_l0 */
    {{0.081, 0.05, 0.237}, {1, -1, 1, 1}},                      /* right_l1 */
    {{0, -0.14, 0.1425}, {1, 1, 0, 0}},                         /* right_l2 */
    {{0, -0.042, 0.26}, {1, -1, 0, 0}},                         /* right_l3 */
    {{0, -0.125, -0.1265}, {1, 1, 0, 0}},                       /* right_l4 */
    {{0, 0.031, 0.275}, {1, -1, 0, 0}},                         /* right_l5 */
    {{0, -0.11, 0.1053}, {0.0616248, 0.06163, -0.704416, 0.704416}}, /* right_l6 */
};
static const body_t sawyer_site = {{0, 0, 0.0245}, {0, 0, 0, 1}}; /* attachment_site */

static void sawyer_fk(const double *q, xform_t *t)
{
    double r[3][3];
    const double zero[3] = {0, 0, 0};
    xf_identity(t);
    for (int i = 0; i < 7; i++) {
        rot_quat(sawyer_chain[i].quat, r);
        xf_apply(t, sawyer_chain[i].pos, r);
        rot_z(q[i], r);
        xf_apply(t, zero, r);
    }
    rot_quat(sawyer_site.quat, r);
    xf_apply(t, sawyer_site.pos, r);
}

void hal_robot_fk(const hal_robot_t *robot, const double *q, double pose[7])
{
    if (!pose)
        return;
    /* Dispatch on the name, so a copy of a description (e.g. with tighter
     * limits from a config) still has its kinematics. */
    int kind = 0;
    if (robot && robot->name && strcmp(robot->name, panda.name) == 0)
        kind = 1;
    else if (robot && robot->name && strcmp(robot->name, sawyer.name) == 0)
        kind = 2;
    int ok = kind != 0 && q;
    for (int i = 0; ok && i < 7; i++)
        ok = isfinite(q[i]);
    if (!ok) {
        for (int i = 0; i < 7; i++)
            pose[i] = NAN;
        return;
    }
    xform_t t;
    if (kind == 1)
        panda_fk(q, &t);
    else
        sawyer_fk(q, &t);
    pose_of(&t, pose);
}
