/* pacd_loop_impl.h — INTERNAL to the control loop; not installed, not for
 * any file but daemon/pacd_loop*.c (the public interface is pacd_loop.h).
 *
 * The loop is split in three files that share what is here:
 *   pacd_loop.c        planning (loop_new/loop_check/loop_destroy), starting and
 *                      stopping the thread, the service-side API, the
 *                      checkpoint swap's service side;
 *   pacd_loop_tick.c   the loop thread: its helpers, the tick and its phases,
 *                      the thread's body;
 *   pacd_loop_clock.c  the arm-facing I/O (arm, shadow, stepped) and the
 *                      loop's clocks (real, simulated).
 * Functions shared between them are named lp_*; everything else stays static.
 */
#ifndef PACD_LOOP_IMPL_H
#define PACD_LOOP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hal_cartesian.h"
#include "hal_safety.h"
#include "pacd_loop.h"
#include "rt_spsc.h"
#include "rt_tbuf.h"

/* The timing series of the telemetry window (loop_timings). */
enum { T_PERIOD, T_LATENESS, T_INFERENCE, T_LOOP, T_SAFETY, T_HAL, T_LOG_PUSH, T_SERIES };

typedef struct tick tick_t;
typedef struct loop_io loop_io_t;
typedef struct loop_clock loop_clock_t;

typedef struct {
    policy_source_kind_t source;   /* a non-image source (policy_field_t.source_kind) */
    int size;              /* values per tick */
    int history;           /* ticks stacked */
    int offset;            /* in the observation vector */
    float *hist;           /* history * size, oldest first */
    char object[LOGGER_TASK_NAME - 4]; /* object_pose/<object>, gripper_to_object/<object>:
                                          its task values are <object>_x .. <object>_qz */
} field_plan_t;

struct loop {
    loop_deps_t d;
    const config_t *cfg;
    const policy_spec_t *spec;             /* the running policy's (loop thread) */
    policy_spec_t required;                /* the spec the loop was planned for; never
                                              changes (loop_policy_compatible) */
    const hal_robot_t *robot;
    int64_t period_ns;
    const loop_io_t *io;                   /* the arm, or shadow mode's none */
    const loop_clock_t *clock;             /* real (CLOCK_MONOTONIC) or simulated */
    hal_space_t space;                     /* of the joint command sent to the HAL */
    int cartesian;                         /* the policy acts in a Cartesian space */
    int cmd_n;                             /* values of the joint command */
    hal_space_t policy_space;              /* HAL_SPACE_CARTESIAN_* when cartesian */
    int action_space;                      /* the policy's space, pacd.v1.ActionSpace */
    hal_cartesian_config_t cart;
    float joint_action[HAL_MAX_ACTION];    /* Cartesian action mapped to joints */
    hal_safety_config_t safety;

    /* observation plan */
    int n_fields;
    field_plan_t fields[POLICY_MAX_FIELDS];
    float *obs;                            /* spec->obs_dim */
    int n_images;
    int image_camera[POLICY_MAX_FIELDS];   /* image field -> camera index */
    const uint8_t *images[POLICY_MAX_FIELDS];

    /* episode (loop thread only) */
    loop_state_t state;
    int in_episode;
    char episode_id[LOOP_EPISODE_ID];
    uint64_t step;
    uint64_t max_steps;
    int task_id;
    int end_requested, end_terminal, has_final_reward;
    loop_end_reason_t end_reason;          /* why end_requested was set */
    float final_reward;
    float action[POLICY_MAX_ACTION];       /* the action to execute: the policy's
                                              output, or in teleop mode the
                                              teleoperator's */
    float policy_action[POLICY_MAX_ACTION]; /* teleop mode: what the policy output */
    float decision[POLICY_MAX_ACTION];     /* the policy's action held for the periods
                                              left of its decision (spec->action_repeat) */
    int decision_left;                     /* periods the decision is still held for */
    ingest_teleop_t teleop;                /* this tick's newest teleoperator action */
    int64_t episode_start_ns;              /* CLOCK_MONOTONIC, when the episode began:
                                              orders arrivals (not an age) */
    int64_t teleop_time;                   /* this tick's teleop action's time on the
                                              loop's clock */
    hal_task_t task;                       /* [task] source = hal: this tick's task */
    int have_task;
    float prev_action[POLICY_MAX_ACTION];  /* command sent, action-spec units */
    hal_command_t prev_cmd;
    int have_prev_cmd;
    uint64_t last_logged_seq[CONFIG_MAX_CAMERAS];
    int logged_any[CONFIG_MAX_CAMERAS];
    int stale_prev;
    int safety_hold_prev;
    hal_state_t last_state;                /* newest good robot state */
    int have_state;
    int drop_reported;
    logger_episode_t episode_info;
    logger_step_t rec;                     /* reused, too big for the stack */
    loop_status_t st;                      /* the loop's own copy */

    /* simulated clock (loop thread, but the atomics) */
    hal_instant_t instant;                 /* the stepped backend's current instant */
    uint64_t teleop_seen_seq;              /* the teleop action first seen ... */
    int64_t teleop_seen_arrival;
    int64_t teleop_seen_ns;                /* ... at this simulated time */
    int64_t status_wall_ns;                /* CLOCK_MONOTONIC before the last status went out */
    int tick_fd;                           /* eventfd: a status is out (service); -1 */
    _Atomic uint64_t status_count;         /* statuses published */
    _Atomic uint64_t telemetry_count;      /* of them, sent as telemetry (service) */

    /* threads and hand-over */
    pthread_t thread;
    int started;
    int sched_policy, sched_priority;  /* what loop_start got (loop_scheduling) */
    atomic_int stop;
    int notify_fd;
    int64_t watchdog_interval_ns;
    atomic_int watchdog_armed;             /* set once READY=1 is sent */
    rt_spsc_t commands;                    /* service -> loop */
    _Atomic(policy_t *) offered;           /* service -> loop: the next policy, swapped
                                              in at an episode boundary (loop_offer_policy) */
    _Atomic(policy_t *) retired;           /* loop -> service: the policy it replaced, to
                                              free off the loop thread (loop_reap_policies) */
    rt_spsc_t events;                      /* loop -> service */
    loop_result_t result;                  /* loop -> service, guarded by result_seq */
    _Atomic uint64_t result_seq;
    uint64_t next_seq;                     /* service side */
    loop_status_t status_slots[3];
    rt_tbuf_t status_tb;
    int window;
    _Atomic uint32_t *t[T_SERIES];         /* window samples (us) per series */
    _Atomic uint64_t t_count;
};

/* One tick's working set: what the phases of a tick hand each other. */
struct tick {
    int64_t deadline;                  /* the tick's CLOCK_MONOTONIC deadline */
    int64_t now;                       /* when the inputs were read */
    hal_state_t hs;                    /* robot state of this tick */
    int rc;                            /* of reading it: 0 or -errno */
    int stale;                         /* an input is too old or missing: hold */
    int stale_input;                   /* LOOP_EV_STALE_BEGIN a: LOOP_STALE_*, >= 0 camera */
    int64_t stale_age;                 /* ns; -1000: "no frame yet" */
    const ingest_frame_t *frames[CONFIG_MAX_CAMERAS];
    int first, is_last;                /* of the episode */
    int stepped;                       /* an episode step was made this tick */
    float reward, discount;
    hal_command_t cmd;                 /* the joint command; zeros when held */
    int hold;
    uint32_t safety_flags;
    int has_q;
    float q;
    int64_t inference_ns;              /* policy_step; 0 without a policy step */
    int64_t safety_ns;                 /* safety filter; 0 when it did not run */
    int64_t hal_ns;                    /* reading the state + sending the command */
    int64_t log_push_ns;               /* handing the step to the logger */
};

/* The arm-facing I/O of a tick, chosen once in loop_new: the arm through the
 * HAL, or in shadow mode robot states from the state socket and no arm. */
struct loop_io {
    int64_t poll_ns;        /* tick period; 0: the control period */
    int count_misses;       /* late ticks count as deadline misses */
    /* The robot state of this tick into t->hs / t->rc; 0: no step this tick. */
    int (*read)(loop_t *self, tick_t *t);
    /* Send t->cmd to the arm, or hold it (t->hold). */
    void (*send)(loop_t *self, tick_t *t);
    /* Once per tick after stop was asked (*stopping_ticks counts them): 1
     * when the loop may exit. */
    int (*may_exit)(loop_t *self, int *stopping_ticks, int64_t period);
};

/* ---- the loop's clock ----
 *
 * Every age the loop checks (robot state, camera frames, teleop action), the
 * step's time stamps and the pace of the ticks come from one clock, chosen
 * once in loop_new: the real one (CLOCK_MONOTONIC; the loop sleeps to
 * absolute deadlines) or the simulated time of a stepped backend ([robot]
 * clock = simulated: in an episode the loop does not sleep; each tick waits
 * for the inputs of the current instant and its command advances the
 * physics by one period, stepped_io). */
struct loop_clock {
    /* The clock's time at this tick; wall: CLOCK_MONOTONIC read just now. */
    int64_t (*now)(loop_t *self, int64_t wall);
    /* The Unix time (ns) of the clock's time `now`. */
    int64_t (*unix_ns)(const loop_t *self, int64_t now);
    /* When a frame was taken, on this clock. */
    int64_t (*frame_time)(const loop_t *self, const ingest_frame_t *f);
    /* When the teleop action *a came, on this clock (now: this tick's time). */
    int64_t (*teleop_time)(loop_t *self, const ingest_teleop_t *a, int64_t now);
    /* Wait for the tick's deadline (CLOCK_MONOTONIC) and return the
     * deadline the tick keeps: sleep to it (real), or outside an episode
     * sleep to it, in one go straight on from now (simulated). */
    int64_t (*wait_tick)(loop_t *self, int64_t deadline);
    /* After the commands, before the inputs are read (t->deadline may be
     * set): nothing (real), or wait until the inputs are this instant's. */
    void (*sync)(loop_t *self, tick_t *t, int stopping);
    /* After the tick's status went out: nothing (real), or have it sent as
     * telemetry before the next tick. */
    void (*published)(loop_t *self);
};

/* ---- shared between the loop's files (loop thread unless said) ---- */

/* pacd_loop_tick.c: queue an event for the service (lost when the ring is full). */
void lp_emit(loop_t *self, loop_event_code_t code, int64_t a, int64_t b);
/* pacd_loop_tick.c: change the loop state, with a LOOP_EV_STATE event. */
void lp_set_state(loop_t *self, loop_state_t s);
/* pacd_loop_tick.c: remember the command sent and the action it executed. */
void lp_remember_action(loop_t *self, const hal_command_t *cmd);
/* pacd_loop_tick.c: apply every queued command. */
void lp_take_commands(loop_t *self, int stopping);
/* pacd_loop_tick.c: strlcpy (any thread). */
void lp_copy_name(char *dst, size_t n, const char *src);
/* pacd_loop_tick.c: the loop thread's body (pthread start routine; arg: the loop). */
void *lp_thread(void *arg);
/* pacd_loop_clock.c: the tick's I/O for a config (init-only). */
const loop_io_t *lp_choose_io(const config_t *cfg);
/* pacd_loop_clock.c: the loop's clock for a config (init-only). */
const loop_clock_t *lp_choose_clock(const config_t *cfg);

#endif
