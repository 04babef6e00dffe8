/* hal_cartesian — Cartesian action spaces (hal_cartesian.c, docs/hal.md):
 * a policy's Cartesian velocity or twist mapped to a joint-velocity command,
 * which then goes through the safety filter. Pure functions, RT-safe.
 */
#ifndef PACD_HAL_CARTESIAN_H
#define PACD_HAL_CARTESIAN_H

#include <stdint.h>

#include "hal_robot.h"
#include "hal_safety.h" /* the HAL_SAFETY_* flag bits */

/* Zero fields take the defaults. */
typedef struct {
    double period_s;     /* control period, s; 0 = 0.05 */
    double v_max;        /* translation speed bound, m/s; 0 = 0.07 (RGB
                            stacking, PAC paper) for CARTESIAN_VELOCITY, 1.7
                            (Franka Cartesian limit) for CARTESIAN_TWIST */
    double w_max;        /* rotation speed bound, rad/s; 0 = 1.0 (RGB stacking)
                            / 2.5 (Franka Cartesian limit) */
    double damping;      /* damped-least-squares lambda (m/s per rad/s); 0 = 0.02:
                            joint speeds stay below |v| / (2 lambda) */
    double box_min[3];   /* workspace box in the base frame, m; all six zero =
                            0.25 x 0.25 x 0.2 m (RGB stacking) centred on the
                            end effector at robot->q_home */
    double box_max[3];
} hal_cartesian_config_t;

/* Map one Cartesian action to a joint-velocity command for the safety filter.
 * space: HAL_SPACE_CARTESIAN_VELOCITY (n = 4, or 5 with gripper) or
 * HAL_SPACE_CARTESIAN_TWIST (n = 6, or 7 with gripper); values as documented
 * at hal_space_t. Steps:
 *  1. Non-finite action or state q -> hold (NONFINITE); other spaces, wrong
 *     n, NULL arguments or a bad config -> hold (BAD_SHAPE). A hold is a zero
 *     joint command of the robot's shape, with HELD in *flags.
 *  2. Translation scaled down (direction kept) to v_max, rotation to w_max
 *     (CLAMPED). CARTESIAN_VELOCITY commands wx = wy = 0 (keeps the tool
 *     tilt).
 *  3. Workspace box, per axis, on the end-effector position hal_robot_fk(q):
 *     velocity toward a face is limited to (distance to the face) / period_s,
 *     0 at or past the face; velocity back inside is free (WORKSPACE).
 *  4. Joint velocities dq = J^T (J J^T + lambda^2 I)^-1 x, J the 6 x n
 *     end-effector Jacobian (central differences of hal_robot_fk, step 1e-6
 *     rad; angular rows from the quaternion difference), x the 6-D twist.
 *  5. Gripper value (if given) appended unchanged when the robot has a gripper
 *     (space JOINT_VELOCITY_GRIPPER; the safety filter clamps it), else dropped
 *     (GRIPPER_IGNORED) and the space is JOINT_VELOCITY.
 * joint_cmd is always written when not NULL (hold = zeros). flags (may be
 * NULL) receives HAL_SAFETY_* bits. The joint command still goes through
 * hal_safety_filter (velocity, acceleration and joint-limit bounds).
 * config NULL = defaults. RT-safe: pure, no allocation (about 15 FK calls).
 * Returns 0, or -EINVAL on a hold for bad input (then joint_cmd holds). */
int hal_cartesian_to_joint(const hal_robot_t *robot, const hal_cartesian_config_t *config,
                           const hal_state_t *state, hal_space_t space, const float *action,
                           int n, hal_command_t *joint_cmd, uint32_t *flags);

/* The end-effector Jacobian at q (rad, robot->n_joints values) as used
 * above: jac is 6 x robot->n_joints, row-major; rows vx vy vz (m/rad) then
 * wx wy wz (rad/rad), base frame. -EINVAL on NULL or non-finite q. RT-safe. */
int hal_cartesian_jacobian(const hal_robot_t *robot, const double *q,
                           double jac[6 * HAL_MAX_JOINTS]);

/* The workspace box the config gives for robot (defaults filled in), m.
 * -EINVAL on NULL robot/outputs or box_min >= box_max. RT-safe. */
int hal_cartesian_box(const hal_robot_t *robot, const hal_cartesian_config_t *config,
                      double box_min[3], double box_max[3]);

#endif
