/* hal_backend — internal to hal/: the backend table behind the opaque hal_t
 * (struct hal, hal_ops_t), how hal.c reaches the backends, and the core the
 * simulated backends share (hal_backend.c). A backend is a table of function
 * pointers with an API version, like ggml's backend interface.
 *
 * A backend's open function fills hal->ops (a static const table) and
 * hal->impl, starts whatever it needs, and returns 0; or returns -errno with
 * a message in err and leaves nothing allocated. hal.c checks the ops
 * table's api_version and required entries afterwards. Init-only. */
#ifndef PACD_HAL_BACKEND_H
#define PACD_HAL_BACKEND_H

#include "hal.h"
#include "pacd_err.h"   /* pacd_errf */
#include "rt_clock.h"
#include "rt_seqbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* The version of hal_ops_t; hal_new refuses a backend whose table says
 * another. */
#define HAL_API_VERSION 2

/* The backend table: what each backend implements. */
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
    int (*reset)(hal_t *self, const uint64_t *seed);
    /* required: stop threads, free the backend's state. Init-only. */
    void (*destroy)(hal_t *self);
    /* optional (NULL): event counters since start. RT-safe. 0 or -errno. */
    int (*counters)(hal_t *self, hal_counters_t *counters);
    /* optional (NULL): the task signal (hal_read_task). RT-safe. 0 or -errno. */
    int (*read_task)(hal_t *self, hal_task_t *task);
    /* optional (NULL): stepped mode (hal_advance, hal_instant); -ENOTSUP
     * when the backend was opened on the real clock. */
    int (*advance)(hal_t *self, int64_t duration_ns, hal_instant_t *out);
    int (*instant)(hal_t *self, hal_instant_t *out);
} hal_ops_t;

struct hal {
    const hal_ops_t *ops;
    /* The description the backend drives (hal_driven_robot): hal_new sets
     * the robot it was given; the open function may replace it with a
     * variant (hal_robot_variant) that matches the hardware. Constant static
     * data, never NULL after hal_new. */
    const hal_robot_t *robot;
    void *impl;                      /* backend's own state */
};

/* A joint command as a backend's thread sees it, carried through its
 * seqbox mailbox. Size a multiple of 8 bytes. */
typedef struct {
    uint64_t seq;          /* 1, 2, ... per valid command; 0 = none yet */
    int64_t time_mono_ns;  /* when hal_command() was called */
    uint64_t hold_seen;    /* hold requests counted when it was sent: later holds win */
    int32_t has_gripper;   /* 1: gripper value present */
    int32_t pad;
    double dq[HAL_MAX_JOINTS]; /* rad/s */
    double gripper;        /* -1 close .. 1 open (fraction of gripper_speed) */
} hal_backend_cmd_t;

/* ---- the backend core: what the sim and mujoco backends share ----
 *
 * A backend that simulates the arm in its own thread embeds a
 * hal_backend_core_t as the FIRST member of its impl struct (hal->impl points
 * at both) and fills hal_backend_hooks_t with what differs (kinematic
 * integration or mj_step, what its state holds, extra mailboxes). The core
 * owns the rest:
 *   - the thread loop (hal_backend_run): absolute CLOCK_MONOTONIC deadlines
 *     every period_ns; a wake-up a whole period late or more counts an overrun
 *     and runs the missed periods (at most catchup_ns of them, then simulated
 *     time jumps); pending resets first (hooks->reset, then counted and
 *     acknowledged); a new command takes effect from its own time on (when
 *     catching up, the periods before it still run the previous one); the
 *     state is published once per wake-up;
 *   - the hold decision per period (hal_backend_holding): no command yet, a
 *     hold requested after the command was sent, or the command is older than
 *     timeout_ns (watchdog; counted once per command). A holding step
 *     decelerates within the acceleration limits and stops (stop category 2);
 *   - the mailboxes (state and command seqboxes, rt/rt_seqbox.h), the hold and
 *     reset request counters and the event counters (hal_counters_t);
 *   - the hal_ops_t entries read_state, command, hold, reset and counters
 *     (hal_backend_read_state ... below); the backend gives only destroy.
 * Threads: "caller" is the thread calling hal_command/hal_hold (the control
 * loop, one at a time); "backend thread" is the one hal_backend_start made. */
typedef struct hal_backend_core hal_backend_core_t;

typedef struct {
    /* required: back to the home pose (core->robot->q_home) after a
     * hal_reset; a seeded reset (hal_reset_seeded) has core->reset_has_seed
     * set and its seed in core->reset_seed (atomics). Backend thread. */
    void (*reset)(hal_backend_core_t *core);
    /* required: advance one period ending at simulated time t (ns,
     * CLOCK_MONOTONIC) running core->cmd, or decelerating to rest when
     * holding (1). Counts core->n_limit_stops. Backend thread. */
    void (*step)(hal_backend_core_t *core, int64_t t, int holding);
    /* required: fill everything of *st but time_mono_ns, time_unix_ns and
     * seq (st comes zeroed). Backend thread, or before hal_backend_start. */
    void (*fill_state)(hal_backend_core_t *core, hal_state_t *st);
    /* optional (NULL): called after each state publication with that state
     * (mujoco: the task mailbox, the render snapshot). Must not wait. */
    void (*published)(hal_backend_core_t *core, const hal_state_t *st);
} hal_backend_hooks_t;

struct hal_backend_core {
    /* Set by hal_backend_init, constant while the thread runs. */
    const hal_robot_t *robot;
    const hal_backend_hooks_t *hooks;
    int64_t period_ns;     /* one step of simulated time */
    int64_t timeout_ns;    /* watchdog: hold when the command is older */
    int64_t catchup_ns;    /* most simulated time run after a late wake-up */
    int64_t reset_wait_ns; /* hal_reset gives up (-ETIMEDOUT) after this */
    /* Stepped mode (hal_options_t.stepped; set before the first publish):
     * states are stamped time_unix_ns = time_mono_ns + unix_offset_ns. */
    int stepped;
    int64_t unix_offset_ns;

    pthread_t thread;
    int started;           /* thread running (init thread only) */
    int64_t start_ns;      /* hal_backend_start's clock reading: simulated time
                            * runs from here, however late the thread first runs */
    atomic_int running;    /* 0: the backend's threads return */

    rt_seqbox_t state_box; /* written by the backend thread */
    rt_seqbox_t cmd_box;   /* written by the caller */
    uint64_t cmd_seq;       /* owned by the caller */

    _Atomic uint64_t hold_requests, reset_requests, reset_done;
    /* The newest reset request's seed: stored by the caller before it bumps
     * reset_requests, loaded by the backend thread after it saw the bump
     * (after a timed-out reset the thread may see a later request's seed:
     * it then resets again for that request). */
    _Atomic uint64_t reset_seed;
    atomic_int reset_has_seed;
    _Atomic uint64_t n_ticks, n_overruns, n_commands, n_bad_commands, n_holds,
        n_watchdog_holds, n_limit_stops, n_resets;

    /* Owned by the backend thread after hal_backend_start. */
    hal_backend_cmd_t cmd;  /* the command being run */
    uint64_t watchdog_seq;  /* command whose timeout was already counted */
    uint64_t resets_seen;
    uint64_t state_seq;
};

/* Count one event (relaxed). RT-safe, any thread. */
static inline void hal_backend_count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Set up *core (zeroed by the caller, e.g. calloc): mailboxes, running = 1,
 * the fields above. period_ns > 0. Init-only, before the first
 * hal_backend_publish. */
void hal_backend_init(hal_backend_core_t *core, const hal_robot_t *robot,
                      const hal_backend_hooks_t *hooks, int64_t period_ns, int64_t timeout_ns,
                      int64_t catchup_ns, int64_t reset_wait_ns);

/* Publish the state at simulated time t_mono_ns (ns, CLOCK_MONOTONIC): time,
 * seq, hooks->fill_state, the state mailbox, hooks->published. Backend
 * thread, or init before hal_backend_start (readers see a valid state before
 * the first tick). */
void hal_backend_publish(hal_backend_core_t *core, int64_t t_mono_ns);

/* Whether the period ending at t holds instead of running core->cmd (see
 * above); counts a watchdog hold once per command. Backend thread. */
int hal_backend_holding(hal_backend_core_t *core, int64_t t);

/* Stepped mode, backend thread: apply a pending reset (hooks->reset,
 * counted, the state published at t, acknowledged to hal_reset). 1 when it
 * reset, else 0. */
int hal_backend_stepped_reset(hal_backend_core_t *core, int64_t t);

/* Stepped mode, backend thread: take the newest command and run `steps`
 * periods from *t (advanced by steps * period_ns), then publish the state at
 * *t. A period holds when there is no command, a hold was requested after
 * it, or it is not newer than the one the previous call ran (the command of
 * a tick that sent none is not run again: counted as a watchdog hold). */
void hal_backend_stepped_run(hal_backend_core_t *core, int64_t *t, int64_t steps);

/* The thread loop (arg: the core). Runs until core->running is 0. */
void *hal_backend_run(void *arg);

/* Start a thread with all signals blocked (they go to the daemon's main
 * thread), named name, SCHED_FIFO at rt_priority when > 0. 0 or the
 * pthread error number (positive; EPERM: no CAP_SYS_NICE). Init-only. */
int hal_backend_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name,
                             int rt_priority);

/* Start hal_backend_run on core's thread (hal_backend_thread_start). The
 * thread's first deadline is one period after this call (CLOCK_MONOTONIC),
 * not after the thread first runs: on a loaded machine a new thread can wait
 * for a CPU longer than a watchdog timeout, and a command sent in that time
 * must still run for its timeout of simulated time (the wait is caught up as
 * an overrun). 0 or the pthread error number. Init-only. */
int hal_backend_start(hal_backend_core_t *core, const char *name, int rt_priority);

/* running = 0 and join the core's thread if it was started. Safe on a zeroed
 * core. Other threads reading core->running are the backend's to join.
 * Init-only (destroy). */
void hal_backend_stop(hal_backend_core_t *core);

/* hal_ops_t entries for a backend whose impl starts with a core. */
/* Check cmd against robot (a joint space of the robot's shape, the gripper
 * only when it has one, finite values) and fill *out (seq 0, time, the
 * hold_seen given). 0 or -EINVAL. RT-safe, pure. */
int hal_backend_check_command(const hal_robot_t *robot, const hal_command_t *cmd,
                              uint64_t hold_seen, hal_backend_cmd_t *out);
/* Latest published state. RT-safe. 0 or -EAGAIN (seqbox). */
int hal_backend_read_state(hal_t *self, hal_state_t *state);
/* Check cmd against core->robot (joint space of the robot's shape, gripper
 * only when it has one, finite values) and send it to the backend thread.
 * RT-safe, caller only. 0, or -EINVAL: refused, counted, held instead. */
int hal_backend_command(hal_t *self, const hal_command_t *cmd);
/* Hold request: later periods decelerate to rest until a newer command.
 * RT-safe, any thread. 0. */
int hal_backend_hold(hal_t *self);
/* Hold, then wait until the backend thread has gone home. Not RT-safe (polls
 * every 1 ms). 0 or -ETIMEDOUT after core->reset_wait_ns. */
int hal_backend_reset(hal_t *self, const uint64_t *seed);
/* Event counters. RT-safe. 0. */
int hal_backend_counters(hal_t *self, hal_counters_t *out);

/* The backends' open functions. options is complete (defaults filled in by
 * hal_new); backend_options is options->backend_options: the backend's own
 * block (its header), NULL for its defaults. */

/* The in-process kinematic arm (hal_sim.c); backend_options: a
 * hal_sim_options_t. */
int hal_sim_open(hal_t *hal, const hal_options_t *options, const void *backend_options,
                 char *err, size_t errlen);

/* A robot-side driver over the bridge protocol (hal_remote.c,
 * docs/bridge.md); backend_options: a hal_remote_options_t. */
int hal_remote_open(hal_t *hal, const hal_options_t *options, const void *backend_options,
                    char *err, size_t errlen);

#ifdef PACD_HAVE_MUJOCO
/* MuJoCo physics with rendered cameras (hal_mujoco.c); backend_options: a
 * hal_mujoco_options_t. */
int hal_mujoco_open(hal_t *hal, const hal_options_t *options, const void *backend_options,
                    char *err, size_t errlen);
#endif

#endif
