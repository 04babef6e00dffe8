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
} hal_robot_t;

/* The robot description called `name` ("panda", "sawyer"), or NULL. */
const hal_robot_t *hal_robot_find(const char *name);

/* Forward kinematics of the end effector (pinch point / flange) in the base
 * frame: pose = x y z (m), qw qx qy qz. q holds robot->n_joints rad. RT-safe. */
void hal_robot_fk(const hal_robot_t *robot, const double *q, double pose[7]);

/* Robot state as a driver reports it (mirrors pacd.v1.RobotState). */
typedef struct {
    int64_t time_unix_ns;
    int64_t time_mono_ns;
    uint64_t seq;
    int n_joints;
    double q[HAL_MAX_JOINTS];    /* rad */
    double dq[HAL_MAX_JOINTS];   /* rad/s */
    double gripper_position;     /* m */
    double gripper_velocity;     /* m/s */
    int grasp;                   /* 0/1 */
    double ee_pose[7];           /* x y z m, qw qx qy qz */
} hal_state_t;

typedef enum {
    HAL_SPACE_JOINT_VELOCITY = 1,         /* values: n_joints rad/s */
    HAL_SPACE_JOINT_VELOCITY_GRIPPER = 2, /* n_joints rad/s + gripper in [-1 close, 1 open] */
} hal_space_t;

typedef struct {
    hal_space_t space;
    int n;                           /* number of values */
    double values[HAL_MAX_ACTION];
} hal_command_t;

typedef struct hal hal_t;

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
} hal_ops_t;

struct hal {
    const hal_ops_t *ops;
    const hal_robot_t *robot;
    void *impl;                      /* backend's own state */
};

/* Backend options from the [robot] config section. */
typedef struct {
    const char *backend;      /* "sim" */
    double sim_rate_hz;       /* sim integration rate, default 1000 */
    const double *initial_q;  /* NULL = robot->q_home; rad */
} hal_options_t;

/* Create and start a backend for `robot`. Init-only. Caller owns the result
 * (free with hal_destroy). NULL with a message in err on failure
 * (unknown backend, thread start failure). */
hal_t *hal_new(const hal_robot_t *robot, const hal_options_t *options,
               char *err, size_t errlen);

/* Stop and free; sets *self_p to NULL. NULL-safe. Init-only. */
void hal_destroy(hal_t **self_p);

/* RT-safe wrappers over the ops table. */
int hal_read_state(hal_t *self, hal_state_t *state);
int hal_command(hal_t *self, const hal_command_t *cmd);
int hal_hold(hal_t *self);

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
 * spec, rad/s); `state` is the latest robot state; `prev` the previous
 * command sent (NULL at start). Clamps to bounds and to robot->dq_max, slows
 * any joint so that it can stop (at ddq_max) before q_min/q_max minus the
 * margin, limits the change from prev to ddq_max * period. Non-finite, wrong
 * shape or out-of-spec actions give result->hold = 1 and a zero command.
 * RT-safe, pure. Returns 0, or -EINVAL on NULL arguments. */
int hal_safety_filter(const hal_robot_t *robot, const hal_safety_config_t *config,
                      const hal_state_t *state, hal_space_t space,
                      const float *action, int n, const float *low,
                      const float *high, const hal_command_t *prev,
                      hal_command_t *out, hal_safety_result_t *result);

#endif
