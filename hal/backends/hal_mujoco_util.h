/* hal_mujoco_util — internal helpers shared by the `mujoco` backend
 * (hal_mujoco.c) and pacd-replay (clients/pacd_replay.c): mapping a robot
 * description onto a MuJoCo model, headless rendering (EGL surfaceless) and
 * ZeroMQ publication of pacd.v1 messages. Built only with MuJoCo.
 *
 * Prefixes: hal_mjmap_ (model mapping), hal_mjrender_ (rendering),
 * hal_mjpub_ (publishing). */
#ifndef PACD_HAL_MUJOCO_UTIL_H
#define PACD_HAL_MUJOCO_UTIL_H

#include <mujoco/mujoco.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_robot.h"

/* ---- mapping: which model elements are the arm, gripper, end effector ---- */

typedef enum {
    HAL_MJ_ACT_NONE = 0,     /* no actuator found for the joint */
    HAL_MJ_ACT_POSITION = 1, /* ctrl = target position (rad) */
    HAL_MJ_ACT_VELOCITY = 2, /* ctrl = target velocity (rad/s) */
} hal_mj_act_kind_t;

typedef struct {
    int n_joints;
    int jnt[HAL_MAX_JOINTS];      /* joint ids */
    int qpos[HAL_MAX_JOINTS];     /* qpos addresses */
    int dof[HAL_MAX_JOINTS];      /* qvel addresses */
    int act[HAL_MAX_JOINTS];      /* actuator ids, -1 none */
    hal_mj_act_kind_t act_kind[HAL_MAX_JOINTS];
    /* Gripper: two slide finger joints; opening = travel of both fingers
     * from their closed ends (m). finger_sign: +1 closed at range low, -1
     * closed at range high. */
    int has_gripper;
    int finger_qpos[2], finger_dof[2];
    double finger_closed[2];
    int finger_sign[2];
    int gripper_act;              /* panda: actuator8 (ctrl 0..ctrlmax = closed..open); -1 none */
    int gripper_act_fingers[2];   /* robosuite: one position actuator per finger; -1 none */
    int ee_site;                  /* site id, -1: use hal_robot_fk */
    int base_body;                /* parent body of the first arm joint's body */
    /* Lift task: body "cube", site "table_top"; -1 when absent. */
    int cube_body, table_site;
    int cube_qpos;                /* free joint qpos address of the cube, -1 */
} hal_mjmap_t;

/* Find the robot's joints (panda: joint1..7; sawyer: right_j0..6), their
 * actuators, the gripper, the end-effector site (ee_site or, when NULL,
 * grip_site then attachment_site) and the Lift task elements in model m.
 * 0, or -EINVAL with "what; what to do" in err. Init-only. */
int hal_mjmap_init(hal_mjmap_t *map, const mjModel *m, const hal_robot_t *robot,
                   const char *ee_site, char *err, size_t errlen);

/* Fill q, dq, gripper, ee_pose (site pose in the base body frame, or
 * hal_robot_fk) of st from d (after mj_forward/mj_step). Times and seq are
 * left as they are. RT-safe. */
void hal_mjmap_read(const hal_mjmap_t *map, const mjModel *m, const mjData *d,
                    const hal_robot_t *robot, hal_state_t *st);

/* Lift: cube centre height above the table top, m; NaN without a cube. */
double hal_mjmap_cube_height(const hal_mjmap_t *map, const mjData *d);

/* Lift: the cube's pose in the robot's base frame (as RobotState.end_effector):
 * x y z (m) then qw qx qy qz (qw >= 0). 0, or -1 without a cube. RT-safe. */
int hal_mjmap_cube_pose(const hal_mjmap_t *map, const mjData *d, double pose[7]);
#define HAL_MJ_LIFT_SUCCESS_M 0.04 /* robosuite 0.1 Lift._check_success */

/* ---- rendering (EGL surfaceless, Mesa; software when no GPU) ---- */

typedef struct hal_mjrender hal_mjrender_t;

/* Create a GL context current in the calling thread and the MuJoCo render
 * context for m at width x height; shadows, reflections and multisampling off.
 * Caller owns the return value (free with hal_mjrender_destroy, from the same
 * thread). NULL with a message in err on failure, also when the process may
 * not execute memory it wrote (systemd MemoryDenyWriteExecute=), which Mesa's
 * llvmpipe needs. Init-only. */
hal_mjrender_t *hal_mjrender_new(const mjModel *m, int width, int height, char *err,
                                 size_t errlen);

/* Camera id of `name` in m, or -1. */
int hal_mjrender_camera(const mjModel *m, const char *name);

/* Render fixed camera cam_id of the state in d (kinematics must be current:
 * mj_forward or mj_kinematics + mj_camlight) into rgb: height x width x 3
 * bytes, row-major, top row first (GL's bottom-up rows flipped). 0 or
 * -EINVAL. Not RT-safe (GL calls); call from the creating thread. */
int hal_mjrender_rgb(hal_mjrender_t *r, const mjModel *m, mjData *d, int cam_id,
                     uint8_t *rgb);

void hal_mjrender_destroy(hal_mjrender_t **self_p);

/* ---- publishing pacd.v1 messages on ZeroMQ PUB sockets ---- */

/* Serialise and send [topic, message] without blocking (a PUB drops when
 * its queue is full). 0 or -errno. socket may be NULL (then 0, nothing sent).
 * Uses a caller-provided buffer of size cap for the serialised message. */
int hal_mjpub_camera(void *socket, const char *camera, int width, int height,
                     const uint8_t *rgb, int64_t capture_unix_ns, uint64_t seq, uint8_t *buf,
                     size_t cap);
int hal_mjpub_state(void *socket, const char *robot, const hal_state_t *st);
/* cube_height_m: logged as Reward.info "cube_height_m"; NAN = left out. */
int hal_mjpub_reward(void *socket, float reward, float discount, int is_terminal,
                     int64_t time_unix_ns, double cube_height_m);
/* topic e.g. "teleop_action"; space a pacd.v1.ActionSpace value. */
int hal_mjpub_action(void *socket, const char *topic, int space, const float *values, int n,
                     int64_t time_unix_ns, uint64_t seq);

#endif
