/* hal — the arm behind one opaque handle: create a backend for a robot
 * description, read its state, command it, hold it.
 *
 * hal_t is opaque; backends live in hal/backends/ behind a table of
 * function pointers (hal_backend.h, internal). pacd's control loop only
 * calls hal_read_state(), hal_command() and hal_hold(), which are RT-safe
 * for every backend; everything else is init-only unless it says otherwise.
 * Robot descriptions and the state/command types: hal_robot.h; the safety
 * filter: hal_safety.h; Cartesian action spaces: hal_cartesian.h.
 *
 * Units: joint positions rad, joint velocities rad/s, times ns.
 */
#ifndef PACD_HAL_H
#define PACD_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "hal_robot.h"

typedef struct hal hal_t;

/* What a robot-side driver reported in its newest valid state (backend
 * "remote", docs/bridge.md DriverState): all 0 / "" before the first. */
typedef struct {
    int mode;                  /* pacd.v1.DriverState.Mode; 0 before the first state */
    char error[160];           /* its first error, escaped for printing; "" if none */
    uint64_t ticks, overruns, targets_received, targets_refused, targets_old, stale_stops,
        holds, velocity_clamps; /* its DriverCounters */
} hal_driver_report_t;

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
    /* the link to a robot-side driver (backend "remote", docs/bridge.md) */
    uint64_t link_up;          /* 1 while the handshake holds and states are fresh */
    uint64_t link_losses;      /* the link went down: no fresh state within the limit */
    uint64_t link_reconnects;  /* handshakes accepted after the first */
    uint64_t states_received;  /* driver states taken */
    uint64_t states_rejected;  /* driver states refused (malformed, wrong robot, out of limits) */
    uint64_t targets_sent;     /* targets (and holds) sent to the driver */
    uint64_t targets_unsent;   /* targets not sent: no link, or the socket would block */
    uint64_t versions_refused; /* handshakes refused for another protocol version */
    uint64_t states_old;       /* driver states whose seq was not newer than the newest
                                  taken (duplicated or reordered on the way): ignored */
    uint64_t driver_errors;    /* times the driver's state entered ERROR */
    hal_driver_report_t driver; /* the newest driver state's report */
} hal_counters_t;

/* Options of every backend (the [robot] config section). Zero fields take
 * the defaults; options == NULL means all defaults. Read by hal_new only. */
typedef struct {
    const char *backend;      /* "sim", "mujoco" or "remote" (NULL = "sim") */
    const double *initial_q;  /* NULL = robot->q_home; rad, robot->n_joints values */
    double command_timeout_s; /* watchdog: hold when no command for this long;
                                 0 = 0.2 s (Sawyer motor controller timeout) */
    int fixed_robot;          /* 0: the backend may drive (and report in
                                 hal_driven_robot) a variant of the
                                 description that matches the hardware
                                 (mujoco: the gripper variant in a scene with
                                 the gripper's actuators); 1: drive exactly
                                 the given description (mujoco: fingers held
                                 open when it has no gripper) */
    int stepped;              /* 0: the backend runs its arm on the real clock
                                 (its own thread, CLOCK_MONOTONIC deadlines);
                                 1: simulated clock: the arm stands still
                                 between hal_advance calls, which step it
                                 (mujoco only; other backends refuse it) */
    /* The backend's own option block, of the type its header names:
     * hal_sim_options_t (hal_sim.h) for "sim", hal_mujoco_options_t
     * (hal_mujoco.h) for "mujoco", hal_remote_options_t (hal_remote.h) for
     * "remote". NULL = that backend's defaults. */
    const void *backend_options;
} hal_options_t;

/* Create and start a backend for `robot`. Init-only. Caller owns the result
 * (free with hal_destroy). NULL with a message in err (when err != NULL) on
 * failure: NULL or invalid robot, unknown backend, option out of range,
 * initial_q outside the joint limits, backend/API version mismatch, thread
 * start failure, (mujoco) a description with a gripper on a scene without
 * one. The arm starts at rest, holding, until the first command.
 * hal_driven_robot() of the result is the description actually driven: use
 * it, not `robot`, for the loop. */
hal_t *hal_new(const hal_robot_t *robot, const hal_options_t *options,
               char *err, size_t errlen);

/* Stop and free; sets *self_p to NULL. NULL-safe. Init-only. */
void hal_destroy(hal_t **self_p);

/* RT-safe calls into the backend. Each returns -EINVAL when self (or
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

/* hal_reset with the episode's task seed: a backend with a randomised task
 * (mujoco: the Lift cube's x, y and yaw) draws it from this seed alone, so
 * the same seed gives the same start whatever ran before. Backends without
 * randomisation ignore it. Same thread rules and return codes as hal_reset. */
int hal_reset_seeded(hal_t *self, uint64_t seed);

/* What a simulated backend knows about the task in its scene, computed from
 * its newest physics state (mujoco, robosuite Lift: docs/mujoco.md). */
#define HAL_TASK_MAX_VALUES 8
typedef struct {
    double reward;        /* sparse task reward: 1 while the task is solved, else 0 */
    int success;          /* the task's success condition holds */
    int n_values;         /* 0..HAL_TASK_MAX_VALUES */
    const char *names[HAL_TASK_MAX_VALUES]; /* static strings, e.g. "cube_height_m" */
    double values[HAL_TASK_MAX_VALUES];     /* SI units: m, unit quaternions */
    int64_t time_mono_ns; /* of the physics state they come from */
} hal_task_t;

/* The task signal of the newest physics state into *task. RT-safe (a
 * lock-free copy). 0; -EINVAL (NULL argument); -ENOTSUP (the backend or
 * scene has no task); -EAGAIN (the backend published during the copy: try
 * next tick). */
int hal_read_task(hal_t *self, hal_task_t *task);

/* A stepped backend's current simulated instant (hal_options_t.stepped). */
typedef struct {
    int64_t time_ns;        /* simulated time of the newest state, ns on the
                               CLOCK_MONOTONIC scale: the clock's value at
                               hal_new, then advanced only by hal_advance */
    int64_t unix_offset_ns; /* time_unix_ns - time_mono_ns of every state and
                               frame the backend stamps (constant) */
    int64_t step_ns;        /* the physics step: hal_advance durations are
                               whole multiples of it */
    uint64_t frame_seq;     /* seq of the camera frames rendered at this
                               instant (CameraFrame.seq); 0 before the first */
} hal_instant_t;

/* Stepped mode: run the physics for duration_ns of simulated time (a
 * multiple of step_ns, >= 0; 0 renders and publishes the current instant
 * again) with the command last given (hal_command; after hal_hold, or with
 * no command since the previous hal_advance, the arm decelerates and holds),
 * applying a pending reset first; then publish the state (hal_read_state,
 * hal_read_task) and render and publish the cameras' frames, and return
 * with the new instant in *out (may be NULL). Blocks for the physics and the
 * rendering (milliseconds): not RT-safe; call from the one thread that
 * commands the arm. 0; -EINVAL (NULL self, a duration that is not a
 * multiple of step_ns); -ENOTSUP (not stepped, or the backend has no stepped
 * mode). */
int hal_advance(hal_t *self, int64_t duration_ns, hal_instant_t *out);

/* Stepped mode: the current instant into *out, as hal_advance returned it
 * last (or the start, or a reset's). RT-safe. 0, -EINVAL, -ENOTSUP (not
 * stepped), -EAGAIN (published during the copy: retry). */
int hal_instant(hal_t *self, hal_instant_t *out);

/* The description the backend drives: the robot given to hal_new, or the
 * variant of it (hal_robot_variant) the backend picked to match the hardware
 * (mujoco: the gripper variant when the scene has the gripper's actuators,
 * unless options->fixed_robot). Plan the control loop (action space, safety
 * filter) against this one. Constant static data; NULL only for a NULL self.
 * RT-safe. */
const hal_robot_t *hal_driven_robot(const hal_t *self);

/* The name of the backend behind self ("sim", "mujoco"); NULL for a NULL
 * self. Static string. RT-safe. */
const char *hal_backend_name(const hal_t *self);

/* The backends this build has, for --version and error messages, e.g.
 * "sim, mujoco". Static string. RT-safe. */
const char *hal_backend_names(void);

#endif
