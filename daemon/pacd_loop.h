/* loop — the 20 Hz control loop and the state machine around it.
 *
 * Each tick, on an absolute CLOCK_MONOTONIC deadline: apply queued commands,
 * read the robot state and the newest camera frames, check their ages,
 * assemble the observation the checkpoint asks for, run the policy, filter
 * the action, hand the step to the logger, command the HAL (or hold), record
 * timings (the whole tick and its phases), ping the systemd watchdog. The
 * loop never blocks, allocates, prints, formats strings or touches a socket
 * that can block: it talks to other threads through the command queue, the
 * event ring and the status triple buffer below.
 *
 * Shadow mode ([pacd] mode = shadow): there is no arm. The loop polls every
 * millisecond and makes one step per robot state that arrives on the state
 * socket (e.g. from pacd-replay): the policy runs, the safety filter runs,
 * the teleoperator's action is logged next to the policy's, nothing is sent.
 *
 * Simulated clock ([robot] clock = simulated, a stepped mujoco backend): the
 * loop's clock is the simulated time. In an episode the loop does not sleep:
 * each tick waits (at most 2 s of wall time) for the camera frames rendered
 * at the current instant and, in teleop mode, for an action sent after the
 * previous tick's telemetry, runs as usual, and its command advances the
 * physics by one period (hal_advance); every tick's status is sent as
 * telemetry before the next. Outside an episode simulated time stands still
 * and the loop ticks at its rate on the wall clock. This loop waits and
 * blocks by design: it is not real-time.
 *
 * Threading: loop_new/loop_destroy/loop_start/loop_stop are init-only (main
 * thread). loop_submit/loop_wait_result/loop_status/loop_pop_event/loop_timings
 * and loop_fault_text belong to the service thread (single consumer). Nothing here may be called
 * from the loop thread itself.
 */
#ifndef PACD_LOOP_H
#define PACD_LOOP_H

#include <stdint.h>

#include "hal.h"
#include "pacd_config.h"
#include "pacd_ingest.h"
#include "log_writer.h"
#include "policy.h"

#define LOOP_EPISODE_ID 48

typedef struct loop loop_t;

typedef enum {
    LOOP_IDLE = 1,      /* values of pacd.v1.State */
    LOOP_RUNNING = 2,
    LOOP_HOLDING = 3,
    LOOP_ESTOPPED = 4,
    LOOP_FAULT = 5,
} loop_state_t;

typedef enum {
    LOOP_CMD_START_EPISODE = 2, /* values of pacd.v1.Command.Type */
    LOOP_CMD_END_EPISODE = 3,
    LOOP_CMD_HOLD = 4,
    LOOP_CMD_RESUME = 5,
    LOOP_CMD_ESTOP = 6,
    LOOP_CMD_CLEAR_ESTOP = 7,
} loop_cmd_type_t;

typedef struct {
    loop_cmd_type_t type;
    uint64_t seq;
    uint64_t max_steps;                 /* START_EPISODE: 0 = config */
    int task_id;                        /* START_EPISODE: -1 = config */
    int64_t task_seed;                  /* START_EPISODE: the episode's task seed, -1 = none */
    int is_terminal;                    /* END_EPISODE */
    int has_final_reward;
    float final_reward;
    char episode_id[LOOP_EPISODE_ID];   /* START_EPISODE */
} loop_cmd_t;

typedef struct {
    uint64_t seq;                       /* the command's seq */
    int rc;                             /* 0 or -errno */
    const char *error;                  /* why, when rc != 0 (static text); "" otherwise */
} loop_result_t;

/* Why the loop is in LOOP_FAULT (loop_status_t.fault); loop_fault_text puts
 * it in words. The loop itself formats no strings. */
typedef enum {
    LOOP_FAULT_NONE = 0,
    LOOP_FAULT_HAL_READ,     /* hal_read_state failed; fault_errno says why */
    LOOP_FAULT_HAL_COMMAND,  /* hal_command failed; fault_errno says why */
} loop_fault_t;

/* Why an episode ended (loop_status_t.last_end_reason); the first cause
 * counts when several come in the same tick. */
typedef enum {
    LOOP_END_NONE = 0,          /* values of pacd.v1.EpisodeEnd; no episode ended yet */
    LOOP_END_REQUESTED = 1,     /* END_EPISODE (terminal or not, as the client said) */
    LOOP_END_TERMINAL = 2,      /* a terminal reward or the scene's task success */
    LOOP_END_MAX_STEPS = 3,     /* [episode] max_steps or START_EPISODE max_steps */
    LOOP_END_ESTOP = 4,
    LOOP_END_SHUTDOWN = 5,      /* pacd is stopping */
    LOOP_END_LOG_FAILED = 6,    /* the episode log could not be written (disk full,
                                   I/O error: logger_episode_failed); the arm held */
} loop_end_reason_t;

/* Published by the loop every tick (triple buffer). */
typedef struct {
    loop_state_t state;
    char episode_id[LOOP_EPISODE_ID];   /* open or last episode */
    uint64_t step;                      /* steps of the open (or last) episode */
    uint64_t episodes;
    uint64_t tick_count;
    uint64_t deadline_misses;
    uint64_t stale_steps;
    uint64_t safety_holds;
    uint64_t safety_clamps;
    uint64_t log_steps_dropped;
    uint64_t log_frames_dropped;
    uint64_t hal_errors;
    uint64_t commands_rejected;
    int action_dim;
    float last_action[HAL_MAX_ACTION];  /* the command sent last tick */
    int has_q_value;
    float q_value;
    loop_fault_t fault;                 /* LOOP_FAULT_NONE unless state is LOOP_FAULT */
    int fault_errno;                    /* errno of the failed call (positive) */
    uint64_t episodes_terminal;         /* episodes that ended on a terminal step */
    int64_t episode_seed;               /* of the open (or last) episode; -1: none */
    loop_end_reason_t last_end_reason;  /* why the last episode ended */
    uint64_t episodes_log_failed;       /* episodes ended for LOOP_END_LOG_FAILED */
    int has_robot_state;                /* robot_state holds the last tick's state */
    hal_state_t robot_state;
    int n_task_info;                    /* the last tick's task values */
    char task_info_name[LOGGER_MAX_TASK_INFO][LOGGER_TASK_NAME];
    double task_info_value[LOGGER_MAX_TASK_INFO];
    char model_sha256[65];              /* sha256 of the checkpoint the loop runs */
    uint64_t models_swapped;            /* checkpoints swapped in (loop_offer_policy) */
    int action_space;                   /* of last_action (pacd.v1.ActionSpace numbering) */
    /* the last episode step (has_step = 0 until one was made) */
    int has_step;
    int step_policy_dim;
    float step_policy_action[POLICY_MAX_ACTION];
    int step_teleop_dim;
    float step_teleop_action[LOGGER_MAX_ACTION];
    float step_reward, step_discount;
} loop_status_t;

/* Events the loop reports; the service thread turns them into log lines. */
typedef enum {
    LOOP_EV_STATE = 1,       /* a = old state, b = new state */
    LOOP_EV_EPISODE_BEGIN,   /* a = max_steps */
    LOOP_EV_EPISODE_END,     /* a = steps, b = loop_end_reason_t | 0x100 when the
                                last step was terminal */
    LOOP_EV_STALE_BEGIN,     /* a = input (LOOP_STALE_*, >= 0 camera index), b = age us
                                (-1000: none has arrived) */
    LOOP_EV_STALE_END,
    LOOP_EV_SAFETY_HOLD,     /* a = safety flags */
    LOOP_EV_DEADLINE_MISS,   /* a = lateness us, b = misses so far */
    LOOP_EV_HAL_ERROR,       /* a = rc */
    LOOP_EV_LOG_DROP,        /* a = 0 step / 1 frame / 2 state / 3 episode boundary */
    LOOP_EV_RT_FALLBACK,     /* a = errno of sched_setscheduler */
    LOOP_EV_MODEL_SWAP,      /* an offered checkpoint runs from now on; a = swaps so far */
} loop_event_code_t;

/* LOOP_EV_STALE_BEGIN's input other than a camera. */
enum {
    LOOP_STALE_ROBOT_STATE = -1,
    LOOP_STALE_TELEOP = -3,          /* teleop mode: no fresh teleoperator action */
    LOOP_STALE_TELEOP_SHAPE = -4,    /* teleop action of another space or size than the policy's */
    LOOP_STALE_TASK = -5,            /* [task] source = hal: no task read yet in this episode */
};

typedef struct {
    int64_t time_mono_ns;
    loop_event_code_t code;
    int64_t a, b;
    char episode_id[LOOP_EPISODE_ID];
} loop_event_t;

/* Per-tick timing samples (us), the newest `window` ticks; the caller's
 * arrays of window entries each. The phases (docs/protocol.md, "Tick
 * phases") are 0 on ticks without that phase, at least 1 when it ran. */
typedef struct {
    int n;                   /* samples copied */
    uint32_t *period_us;     /* wake-up to wake-up */
    uint32_t *lateness_us;   /* wake-up after the deadline */
    uint32_t *loop_us;       /* the whole tick, wake-up to hand-off */
    uint32_t *inference_us;  /* phase: policy_step */
    uint32_t *safety_us;     /* phase: the safety filter (and Cartesian mapping) */
    uint32_t *hal_us;        /* phase: reading the robot state + commanding / holding */
    uint32_t *log_push_us;   /* phase: frames, robot state and step to the logger */
} loop_timings_t;

/* Everything the loop works on; not owned by the loop. */
typedef struct {
    const config_t *cfg;
    policy_t *policy;
    const hal_robot_t *robot;   /* the arm's description */
    hal_t *hal;                 /* NULL in shadow mode (cfg->shadow): no arm */
    ingest_t *ingest;
    logger_t *logger;
} loop_deps_t;

/* Plan everything the loop needs (history buffers, observation layout,
 * camera-to-image-field map) and check that the checkpoint, the robot and
 * the config fit together. Init-only. NULL + message in err when they do
 * not (e.g. the checkpoint asks for camera 'wrist' that the config lacks,
 * or its action dimension differs from the robot's). Caller owns it. */
loop_t *loop_new(const loop_deps_t *deps, char *err, size_t errlen);
void loop_destroy(loop_t **self_p);

/* Plan a loop as loop_new does, for deps->robot and without a HAL
 * (deps->hal is not used), then free it: checks that the checkpoint, the
 * robot description and the config fit together (--check-config, shadow
 * mode). Init-only. 0, or -EINVAL with the message in err. */
int loop_check(const loop_deps_t *deps, char *err, size_t errlen);

/* Start the loop thread (SCHED_FIFO at cfg->rt_priority when > 0 and
 * permitted; otherwise normal scheduling and a LOOP_EV_RT_FALLBACK event;
 * loop_scheduling says which it got).
 * `watchdog_usec` > 0: send WATCHDOG=1 on the systemd notify socket at
 * least every watchdog_usec / 4. Init-only. 0 or -errno. */
int loop_start(loop_t *self, uint64_t watchdog_usec);

/* Start sending WATCHDOG=1 (call right after READY=1, so systemd sees READY
 * first). Init-only (main thread). */
void loop_arm_watchdog(loop_t *self);

/* Ask the loop to end the open episode (is_last, not terminal), hold the arm
 * and exit; join it. Init-only (shutdown). */
void loop_stop(loop_t *self);

/* Service thread: queue a command (seq is assigned). 0, or -EBUSY if the
 * queue is full. */
int loop_submit(loop_t *self, loop_cmd_t *cmd);

/* Service thread: wait up to timeout_ms for the result of command `seq`.
 * 0, or -ETIMEDOUT (the loop is not running). */
int loop_wait_result(loop_t *self, uint64_t seq, int timeout_ms, loop_result_t *out);

/* Service thread: the newest status. */
void loop_status(loop_t *self, loop_status_t *out);

/* Service thread: pop one event; 1 if there was one. */
int loop_pop_event(loop_t *self, loop_event_t *ev);

/* Service thread: copy the newest timing samples (up to cfg window). */
void loop_timings(loop_t *self, loop_timings_t *t);

/* Service thread: the status' fault in words into out (outlen bytes), e.g.
 * "hal command failed: Input/output error"; "" for LOOP_FAULT_NONE. `err` is
 * loop_status_t.fault_errno. Returns out. */
const char *loop_fault_text(loop_fault_t fault, int err, char *out, size_t outlen);

/* Window length in ticks. */
int loop_window(const loop_t *self);

/* Checkpoint hot swap (pacctl reload). The service thread loads and checks
 * a new policy, then offers it; the loop thread takes it at the start of a
 * tick outside an episode (never mid-episode: a running episode finishes
 * with the policy it began with) and hands the one it replaced back to be
 * freed off the loop thread. Both hand-overs are single atomic pointer
 * slots, so the loop never waits. loop_status_t.model_sha256 and
 * models_swapped say which one runs. */

/* Service thread: 0 when candidate's observation and action spec equal the
 * one the loop was planned for (fields, shapes, histories, offsets, images,
 * action space, dimension and bounds, task conditioning, robot), so it can
 * run on the same plan; else -EINVAL with the first difference in err
 * (ending in "needs a restart of pacd"). */
int loop_policy_compatible(const loop_t *self, const policy_t *candidate, char *err,
                           size_t errlen);

/* Service thread: hand *policy_p (checked with loop_policy_compatible) to the
 * loop, which takes ownership; *policy_p becomes NULL. A policy offered
 * before and not yet taken is freed here. Returns 1 when it replaced one,
 * else 0. Never blocks the loop. */
int loop_offer_policy(loop_t *self, policy_t **policy_p);

/* Service thread: 1 while an offered policy waits for the episode boundary. */
int loop_policy_pending(loop_t *self);

/* Service thread: free the policy the loop last replaced, if any. Call
 * regularly (the loop takes a new one only after the last is freed). */
void loop_reap_policies(loop_t *self);

/* The policy the loop runs. After loop_stop (init-only): the caller owns it
 * again and frees it after the logger (loop_destroy frees only offered and
 * replaced ones). */
policy_t *loop_policy(loop_t *self);

/* [robot] clock = simulated: the loop has every tick's status sent as
 * telemetry before it goes on. loop_tick_fd: an eventfd that becomes
 * readable when a status is out (-1 with the real clock: telemetry at its
 * own rate). loop_status_count: clears the eventfd and returns the number of
 * statuses published so far; read it before loop_status, and after sending
 * the telemetry report it with loop_telemetry_sent. Service thread. */
int loop_tick_fd(const loop_t *self);
uint64_t loop_status_count(loop_t *self);
void loop_telemetry_sent(loop_t *self, uint64_t count);

/* The scheduling the loop thread got at loop_start: *policy is SCHED_FIFO
 * (then *priority 1..99) or SCHED_OTHER (*priority 0); before loop_start
 * SCHED_OTHER / 0. Any thread after loop_start (set once, never changes). */
void loop_scheduling(const loop_t *self, int *policy, int *priority);

#endif
