/* hal_robot — what pacd knows about an arm: constant robot descriptions
 * (limits with their sources, home pose), forward kinematics, and the state
 * and command types every part of the HAL speaks (backends, safety filter,
 * Cartesian mapping).
 *
 * Units: joint positions rad, joint velocities rad/s, accelerations rad/s^2,
 * Cartesian positions m, gripper opening m, times ns.
 */
#ifndef PACD_HAL_ROBOT_H
#define PACD_HAL_ROBOT_H

#include <stdint.h>

#define HAL_MAX_JOINTS 7
#define HAL_MAX_ACTION 16

/* A robot description: limits with their sources. Constant tables in
 * hal_robot.c; never modified at run time. */
typedef struct {
    const char *name;          /* "panda", "sawyer" */
    const char *limits_source; /* where the numbers come from (datasheet, URDF) */
    int n_joints;
    double q_min[HAL_MAX_JOINTS];   /* rad */
    double q_max[HAL_MAX_JOINTS];   /* rad */
    double dq_max[HAL_MAX_JOINTS];  /* rad/s */
    double ddq_max[HAL_MAX_JOINTS]; /* rad/s^2 */
    double dddq_max[HAL_MAX_JOINTS]; /* rad/s^3: jerk, for drivers that interpolate
                                        (hal/driver/); 0 = no jerk limit */
    double q_home[HAL_MAX_JOINTS];  /* rad, a pose inside the limits */
    int has_gripper;
    double gripper_max;             /* finger opening at fully open, m */
    double gripper_speed;           /* m/s */
    const char *ee_frame;           /* what hal_robot_fk() returns, with its source */
} hal_robot_t;

/* The robot description called `name` ("panda", "sawyer"), or NULL for an
 * unknown or NULL name. The result points to constant static data (do not
 * free). Init-only by convention (RT-safe in fact: no allocation). */
const hal_robot_t *hal_robot_find(const char *name);

/* The description of the same arm (same name, joints, limits and FK) with
 * (has_gripper != 0) or without (0) a gripper: robot itself when it already
 * matches; for "sawyer" the Sawyer with the Rethink two-finger electric
 * gripper of the robosuite scenes (gripper_max 0.046 m: the finger joint
 * ranges of SawyerLift model_1.xml within their actuators' ctrlrange;
 * gripper_speed 0.1 m/s assumed: docs/hal.md) and back. NULL
 * when pacd has no such description (a Panda without its hand) or robot is
 * NULL. The result points to constant static data (do not free). Init-only by
 * convention (RT-safe in fact: no allocation). */
const hal_robot_t *hal_robot_variant(const hal_robot_t *robot, int has_gripper);

/* Forward kinematics of the end effector in the robot's base frame.
 * q: robot->n_joints joint positions, rad (not checked against the limits).
 * pose: x y z (m), then the orientation as a unit quaternion qw qx qy qz with
 * qw >= 0. Frames (see robot->ee_frame and docs/hal.md):
 *   panda:  Franka Hand TCP (pinch point): flange from the Franka DH table
 *           (Craig convention, Franka docs "Robot and interface
 *           specifications"), then -pi/4 about z and +0.1034 m along z (Franka
 *           default F_T_EE with the hand).
 *   sawyer: the flange ("attachment_site" of menagerie sawyer.xml, = URDF
 *           right_hand position), from the menagerie body chain.
 * If robot, q or pose is NULL, or a q is not finite, pose is set to NaN (when
 * pose is not NULL). RT-safe: no allocation, no syscalls. */
void hal_robot_fk(const hal_robot_t *robot, const double *q, double pose[7]);

/* Robot state as a driver reports it (mirrors pacd.v1.RobotState). */
typedef struct {
    int64_t time_unix_ns;
    int64_t time_mono_ns;
    uint64_t seq;
    int n_joints;
    double q[HAL_MAX_JOINTS];    /* rad */
    double dq[HAL_MAX_JOINTS];   /* rad/s */
    double gripper_position;     /* total finger opening, m (0 closed) */
    double gripper_velocity;     /* opening velocity, m/s */
    int grasp;                   /* 0/1: object held (sim: always 0) */
    double ee_pose[7];           /* x y z m, qw qx qy qz */
} hal_state_t;

typedef enum {
    HAL_SPACE_JOINT_VELOCITY = 1,         /* values: n_joints rad/s */
    /* n_joints rad/s + gripper in [-1 close, 1 open]: the gripper value is a
     * velocity command, a fraction of robot->gripper_speed (0 = stay), so a
     * zero (hold) command keeps the gripper where it is. Robots with a
     * gripper only. */
    HAL_SPACE_JOINT_VELOCITY_GRIPPER = 2,
    /* Policy-side Cartesian spaces, mapped to a joint-velocity command by
     * hal_cartesian_to_joint() before the safety filter; backends only ever
     * receive the joint spaces above.
     * RGB-stacking Sawyer space: vx vy vz (m/s, base frame, at the end
     * effector) and wz (rad/s about the base z axis), then optionally the
     * gripper in [-1 close, 1 open] as above: n = 4 or 5. */
    HAL_SPACE_CARTESIAN_VELOCITY = 3,
    /* Panda 6-D twist: vx vy vz (m/s), wx wy wz (rad/s), base frame, at the
     * end effector, then optionally the gripper: n = 6 or 7. */
    HAL_SPACE_CARTESIAN_TWIST = 4,
} hal_space_t;

typedef struct {
    hal_space_t space;
    int n;                           /* number of values */
    double values[HAL_MAX_ACTION];
} hal_command_t;

#endif
