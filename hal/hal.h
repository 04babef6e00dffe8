/* hal — hardware abstraction: robot descriptions, backends, safety filter.
 *
 * A backend is a table of function pointers (hal_ops_t) embedded in the
 * hal_t object, with an API version, like ggml's backend interface. pacd's
 * control loop only calls hal_read_state(), hal_command() and hal_hold(),
 * which are RT-safe for every backend; everything else is init-only.
 *
 * Units: joint positions rad, joint velocities rad/s, accelerations rad/s^2,
 * Cartesian positions m, times ns.
 */
#ifndef PACD_HAL_H
#define PACD_HAL_H

#include <stddef.h>
#include <stdint.h>

#define HAL_API_VERSION 1
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

typedef struct hal hal_t;

/* Backend event counters (monotonic since hal_new). A backend sets the ones
 * it knows and leaves the others 0. */
typedef struct {
    uint64_t ticks;          /* backend control/integration cycles run */
    uint64_t overruns;       /* cycles that started a whole period or more late */
    uint64_t commands;       /* valid commands received */
    uint64_t bad_commands;   /* commands refused (-EINVAL): held instead */
    uint64_t holds;          /* holds: hal_hold, refused commands, resets */
    uint64_t watchdog_holds; /* holds because no command came for command_timeout_s */
    uint64_t limit_stops;    /* joints stopped by reaching q_min/q_max */
    uint64_t resets;         /* completed resets */
} hal_counters_t;

typedef struct {
    int api_version;                 /* HAL_API_VERSION */
    const char *name;                /* "sim", ... */
    /* required: latest state. RT-safe. 0 or -errno (-EIO: link lost). */
    int (*read_state)(hal_t *self, hal_state_t *state);
    /* required: command for the next period. RT-safe. 0 or -errno. */
    int (*command)(hal_t *self, const hal_command_t *cmd);
    /* required: decelerate within the acceleration limits and hold (stop
     * category 2). RT-safe. 0 or -errno. */
    int (*hold)(hal_t *self);
    /* optional (NULL): move to the home pose / reset the episode. Init-only or
     * from a non-RT thread. */
    int (*reset)(hal_t *self);
    /* required: stop threads, free the backend's state. Init-only. */
    void (*destroy)(hal_t *self);
    /* optional (NULL): event counters since start. RT-safe. 0 or -errno. */
    int (*counters)(hal_t *self, hal_counters_t *counters);
} hal_ops_t;

struct hal {
    const hal_ops_t *ops;
    /* The description the backend actually drives, set by hal_new: the robot
     * given to hal_new, or a variant of it (hal_robot_variant) the backend
     * picked to match the hardware (mujoco: the gripper variant when the
     * scene has the gripper's actuators, unless options->fixed_robot). Plan
     * the control loop (action space, safety filter) against this one.
     * Constant static data, never NULL after hal_new. */
    const hal_robot_t *robot;
    void *impl;                      /* backend's own state */
};

/* Backend options from the [robot] config section. Zero fields take the
 * defaults; options == NULL means all defaults. */
typedef struct {
    const char *backend;      /* "sim" or "mujoco" (NULL = "sim") */
    double sim_rate_hz;       /* sim integration rate, Hz, 10..10000; 0 = 1000
                                 (mujoco: ignored, the model's timestep rules) */
    const double *initial_q;  /* NULL = robot->q_home; rad, robot->n_joints values */
    double command_timeout_s; /* watchdog: hold when no command for this long;
                                 0 = 0.2 s (Sawyer motor controller timeout) */
    /* ---- mujoco backend (docs/mujoco.md); ignored by "sim" ---- */
    const char *scene;        /* MuJoCo XML scene path (required for mujoco) */
    const char *cameras;      /* comma-separated model camera names to render
                                 and publish; NULL or "" = none */
    int camera_width;         /* pixels; 0 = 128 (RGB stacking) */
    int camera_height;        /* pixels; 0 = 128 */
    const char *camera_endpoint; /* ZeroMQ endpoint a PUB connects to (pacd's
                                    [ingest] camera_bind); NULL = do not publish
                                    (and do not render) */
    const char *state_endpoint;  /* endpoint for robot_state and reward
                                    messages (pacd's [ingest] state_bind); NULL =
                                    do not publish */
    const char *curve_server_key; /* CURVE (Z85, 40 characters) for the two
                                     PUB sockets: the server's public key and
                                     this client's key pair; NULL = no CURVE */
    const char *curve_public_key;
    const char *curve_secret_key;
    uint64_t seed;            /* seed of the reset randomisation (Lift cube) */
    double render_rate_hz;    /* camera/state publication rate; 0 = 20 (the
                                 control rate), 1..100 */
    int physics_rt_priority;  /* SCHED_FIFO priority 1..99 of the physics
                                 thread (below pacd's [pacd] rt_priority); 0 =
                                 normal scheduling; hal_new fails when the
                                 priority cannot be had (CAP_SYS_NICE) */
    const char *ee_site;      /* model site reported as ee_pose; NULL = the
                                 first of grip_site, attachment_site found,
                                 else hal_robot_fk() */
    int fixed_robot;          /* 0: the backend may drive (and report in
                                 hal->robot) a variant of the description
                                 that matches the hardware (mujoco: the
                                 gripper variant in a scene with the
                                 gripper's actuators); 1: drive exactly the
                                 given description (mujoco: fingers held
                                 open when it has no gripper) */
} hal_options_t;

/* Create and start a backend for `robot`. Init-only. Caller owns the result
 * (free with hal_destroy). NULL with a message in err (when err != NULL) on
 * failure: NULL or invalid robot, unknown backend, option out of range,
 * initial_q outside the joint limits, backend/API version mismatch, thread
 * start failure, (mujoco) a description with a gripper on a scene without
 * one. The arm starts at rest, holding, until the first command. The result's
 * ->robot is the description actually driven (see struct hal): use it, not
 * `robot`, for the loop. */
hal_t *hal_new(const hal_robot_t *robot, const hal_options_t *options,
               char *err, size_t errlen);

/* Stop and free; sets *self_p to NULL. NULL-safe. Init-only. */
void hal_destroy(hal_t **self_p);

/* RT-safe wrappers over the ops table. Each returns -EINVAL when self (or
 * state/cmd) is NULL, else what the backend returns.
 * hal_read_state: copies the latest state; never blocks (-EAGAIN in the rare
 *   case a consistent copy could not be taken in a bounded number of tries).
 * hal_command: the command for the next period; values must match the space
 *   (n_joints rad/s [+ gripper in -1..1]) and be finite, else -EINVAL and the
 *   backend holds. Call from one thread (the control loop).
 * hal_hold: decelerate at ddq_max and hold until the next hal_command.
 *   Callable from any thread. */
int hal_read_state(hal_t *self, hal_state_t *state);
int hal_command(hal_t *self, const hal_command_t *cmd);
int hal_hold(hal_t *self);

/* Event counters of the backend. RT-safe. 0, -EINVAL (NULL argument) or
 * -ENOTSUP (backend has no counters). */
int hal_counters(hal_t *self, hal_counters_t *counters);

/* Return to the home pose (robot->q_home) at rest, holding. mujoco: also
 * the scene's home keyframe / initial state, with the Lift cube placed by the
 * seeded randomisation (docs/mujoco.md). Not RT-safe:
 * call from a non-RT thread while the control loop is not commanding; may
 * block until the backend confirms (sim: about one integration period;
 * mujoco: one physics step).
 * 0, -EINVAL (NULL), -ENOTSUP (backend has no reset), -ETIMEDOUT. */
int hal_reset(hal_t *self);

/* ---- safety filter (between the policy and the backend) ---- */

/* Bits of hal_safety_result_t.flags, logged in Step.safety_flags. */
enum {
    HAL_SAFETY_NONFINITE = 1u << 0,     /* NaN/Inf in the action: held */
    HAL_SAFETY_BAD_SHAPE = 1u << 1,     /* wrong dimension / space: held */
    HAL_SAFETY_OUT_OF_SPEC = 1u << 2,   /* far outside the bounds (> tolerance): held */
    HAL_SAFETY_CLAMPED = 1u << 3,       /* clamped to the velocity bounds */
    HAL_SAFETY_JOINT_LIMIT = 1u << 4,   /* slowed so a joint stops inside its range */
    HAL_SAFETY_ACCEL_LIMIT = 1u << 5,   /* velocity change limited by ddq_max */
    HAL_SAFETY_HELD = 1u << 6,          /* output is a hold (any reason) */
    HAL_SAFETY_WORKSPACE = 1u << 7,     /* Cartesian velocity slowed at the workspace box */
    HAL_SAFETY_GRIPPER_IGNORED = 1u << 8, /* gripper value given, robot has none */
};

typedef struct {
    double period_s;            /* control period, s (0.05 at 20 Hz) */
    double out_of_spec_factor;  /* |a| > factor * bound -> hold; default 2.0 */
    double limit_margin;        /* rad kept clear of each joint limit; default 0.02 */
} hal_safety_config_t;

typedef struct {
    uint32_t flags;             /* HAL_SAFETY_* */
    int hold;                   /* 1: command a hold instead */
} hal_safety_result_t;

/* Filter one policy action into a command. `action` has n values in the
 * action space `space` with per-dimension bounds low/high (checkpoint's action
 * spec, rad/s; gripper unitless); `state` is the latest robot state; `prev` the
 * previous command sent (NULL at start). Clamps to bounds and to robot->dq_max, slows
 * any joint so that it can stop (at ddq_max) before q_min/q_max minus the
 * margin, limits the change from prev to ddq_max * period. Non-finite, wrong
 * shape or out-of-spec actions give result->hold = 1 and a zero command.
 *
 * Exactly (docs/hal.md has the reasoning):
 *  1. Hold (result->hold = 1, out = zeros of the expected shape, flag HELD +):
 *     BAD_SHAPE   space unknown, gripper space on a robot without gripper,
 *                 n != n_joints (+1 with gripper), state->n_joints wrong, or
 *                 bounds non-finite / low > high;
 *     NONFINITE   NaN/Inf in the action or in state q/dq;
 *     OUT_OF_SPEC |a_i| > out_of_spec_factor * max(|low_i|, |high_i|).
 *  2. Joints, in this order: clamp to [low_i, high_i] and +-dq_max_i
 *     (CLAMPED); limit |v_i - p_i| to ddq_max_i * period_s where p = prev's
 *     joint values if prev is a joint-velocity command with >= n_joints
 *     finite values, else state->dq (ACCEL_LIMIT); clamp to +-dq_max_i again
 *     (CLAMPED); joint-limit guard, last so it wins over the ramp: with d the
 *     distance from state->q_i to (q_max_i - margin) for v_i > 0 (to q_min_i
 *     + margin for v_i < 0), v_i is zero if d <= 0, else the largest speed
 *     whose stop distance fits in d, the stop distance being the worse of
 *     (a) v*T + v^2/(2*ddq_max): v reached at once, held for one period,
 *     then braking; (b) the joint's velocity going from state->dq_i toward
 *     v at ddq_max during the period (a slowing joint still covers ground),
 *     then braking. So |v| <= sqrt(2*ddq_max*d) always (JOINT_LIMIT).
 *     Moving away from a limit is never restricted by this guard.
 *  3. Gripper: clamp to [low, high] and [-1, 1] (CLAMPED).
 * low/high NULL mean +-dq_max (joints) and +-1 (gripper). config NULL means
 * period 0.05 s, factor 2.0, margin 0.02 rad; fields that are non-finite,
 * period <= 0, factor < 1 or margin < 0 take those defaults too.
 * RT-safe, pure, no allocation. Returns 0; or -EINVAL when robot, state, out,
 * result or action (with n > 0) is NULL, and then out/result (if not NULL)
 * hold. */
int hal_safety_filter(const hal_robot_t *robot, const hal_safety_config_t *config,
                      const hal_state_t *state, hal_space_t space,
                      const float *action, int n, const float *low,
                      const float *high, const hal_command_t *prev,
                      hal_command_t *out, hal_safety_result_t *result);

/* ---- Cartesian action spaces (hal_cartesian.c) ---- */

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

/* ---- mujoco backend extras (hal_mujoco.c; -ENOTSUP in builds without
 * MuJoCo or for other backends) ---- */

/* Task signal of the robosuite Lift scene (a body named "cube" and a site
 * "table_top"): height of the cube's centre above the table top (m) and
 * success = height > 0.04 m (robosuite 0.1 Lift._check_success; the cube's
 * half size is 0.02 m, so it is lifted 2 cm off the table). reward = success
 * (sparse, 0/1). Any output may be NULL. RT-safe (reads a lock-free copy).
 * 0, -EINVAL (NULL self), -ENOTSUP (not mujoco, or no cube/table in the
 * scene). */
int hal_task_reward(hal_t *self, double *cube_height_m, int *success, double *reward);

/* The backends this build has, for --version and error messages, e.g.
 * "sim, mujoco". Static string. RT-safe. */
const char *hal_backend_names(void);

#endif
