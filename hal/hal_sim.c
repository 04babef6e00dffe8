/* hal_sim — the `sim` backend: a kinematic arm integrating commanded joint
 * velocities in its own thread.
 *
 * The thread wakes on absolute CLOCK_MONOTONIC deadlines (clock_nanosleep,
 * TIMER_ABSTIME) at sim_rate_hz and integrates one period per deadline:
 *   - target velocity = command clamped to +-dq_max (0 while holding);
 *   - the velocity moves toward the target by at most ddq_max * dt (the ramp
 *     of a real joint controller), so a hold decelerates at ddq_max;
 *   - positions never pass q_min/q_max: a joint reaching a limit stops there
 *     (counted in limit_stops);
 *   - watchdog: a command older than command_timeout_s (0.2 s, like Sawyer's
 *     motor controller) is treated as a hold (counted once per command);
 *   - gripper (robots with one): opening velocity = command * gripper_speed,
 *     opening kept in [0, gripper_max]; no ramp.
 * If the thread wakes a whole period late it integrates the missed periods
 * (up to one second) so simulated time keeps up with the clock, and counts an
 * overrun. The state's time_mono_ns is the simulated time of that state.
 *
 * State and commands cross threads through lock-free seqboxes (hal_seqbox.h);
 * hold requests and resets are atomic counters. */
#include "hal.h"
#include "hal_backend.h"
#include "hal_seqbox.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S 1000000000LL

typedef hal_backend_cmd_t sim_cmd_t;

_Static_assert(sizeof(sim_cmd_t) <= 8 * HAL_SEQBOX_WORDS, "sim_cmd_t fits a seqbox");
_Static_assert(sizeof(hal_state_t) <= 8 * HAL_SEQBOX_WORDS, "hal_state_t fits a seqbox");

typedef struct {
    const hal_robot_t *robot;
    int64_t period_ns;
    int64_t timeout_ns;
    double initial_q[HAL_MAX_JOINTS];

    pthread_t thread;
    atomic_int running;

    hal_seqbox_t state_box; /* written by the sim thread */
    hal_seqbox_t cmd_box;   /* written by the hal_command() caller */
    uint64_t cmd_seq;       /* owned by the hal_command() caller */

    _Atomic uint64_t hold_requests;
    _Atomic uint64_t reset_requests;
    _Atomic uint64_t reset_done;

    _Atomic uint64_t n_ticks, n_overruns, n_commands, n_bad_commands, n_holds,
        n_watchdog_holds, n_limit_stops, n_resets;

    /* Owned by the sim thread after start. */
    double q[HAL_MAX_JOINTS], dq[HAL_MAX_JOINTS];
    double gripper, gripper_velocity;
    sim_cmd_t cmd;
    uint64_t watchdog_seq; /* command whose timeout was already counted */
    uint64_t resets_seen;
    uint64_t state_seq;
} sim_t;

static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void sim_go_home(sim_t *sim, const double *q)
{
    const hal_robot_t *r = sim->robot;
    for (int i = 0; i < r->n_joints; i++) {
        sim->q[i] = q[i];
        sim->dq[i] = 0.0;
    }
    sim->gripper = r->has_gripper ? r->gripper_max : 0.0;
    sim->gripper_velocity = 0.0;
}

static void sim_publish(sim_t *sim, int64_t t_mono)
{
    const hal_robot_t *r = sim->robot;
    hal_state_t st;
    memset(&st, 0, sizeof st);
    st.time_mono_ns = t_mono;
    /* The wall-clock time that corresponds to the simulated instant. */
    st.time_unix_ns = now_ns(CLOCK_REALTIME) - (now_ns(CLOCK_MONOTONIC) - t_mono);
    st.seq = ++sim->state_seq;
    st.n_joints = r->n_joints;
    for (int i = 0; i < r->n_joints; i++) {
        st.q[i] = sim->q[i];
        st.dq[i] = sim->dq[i];
    }
    st.gripper_position = sim->gripper;
    st.gripper_velocity = sim->gripper_velocity;
    st.grasp = 0; /* no objects in a kinematic sim */
    hal_robot_fk(r, sim->q, st.ee_pose);
    hal_seqbox_write(&sim->state_box, &st, sizeof st);
}

/* Integrate one period ending at simulated time t. */
static void sim_step(sim_t *sim, int64_t t)
{
    const hal_robot_t *r = sim->robot;
    const double dt = (double)sim->period_ns / NS_PER_S;
    const sim_cmd_t *c = &sim->cmd;

    int holding = c->seq == 0 ||
                  atomic_load_explicit(&sim->hold_requests, memory_order_acquire) > c->hold_seen;
    if (!holding && t - c->time_mono_ns > sim->timeout_ns) {
        holding = 1;
        if (sim->watchdog_seq != c->seq) {
            sim->watchdog_seq = c->seq;
            count(&sim->n_watchdog_holds);
        }
    }

    for (int i = 0; i < r->n_joints; i++) {
        double target = 0.0;
        if (!holding)
            target = fmin(fmax(c->dq[i], -r->dq_max[i]), r->dq_max[i]);
        double dv_max = r->ddq_max[i] * dt;
        double dv = fmin(fmax(target - sim->dq[i], -dv_max), dv_max);
        double dq = sim->dq[i] + dv;
        double q = sim->q[i] + dq * dt;
        if (q >= r->q_max[i]) {
            if (sim->q[i] < r->q_max[i])
                count(&sim->n_limit_stops);
            q = r->q_max[i];
            if (dq > 0)
                dq = 0;
        } else if (q <= r->q_min[i]) {
            if (sim->q[i] > r->q_min[i])
                count(&sim->n_limit_stops);
            q = r->q_min[i];
            if (dq < 0)
                dq = 0;
        }
        sim->q[i] = q;
        sim->dq[i] = dq;
    }

    if (r->has_gripper) {
        double v = 0.0;
        if (!holding && c->has_gripper)
            v = fmin(fmax(c->gripper, -1.0), 1.0) * r->gripper_speed;
        double g = sim->gripper + v * dt;
        if (g >= r->gripper_max) {
            g = r->gripper_max;
            v = v > 0 ? 0 : v;
        } else if (g <= 0.0) {
            g = 0.0;
            v = v < 0 ? 0 : v;
        }
        sim->gripper = g;
        sim->gripper_velocity = v;
    }
}

static void *sim_thread(void *arg)
{
    sim_t *sim = arg;
    /* One second of catch-up at most; beyond that simulated time jumps. */
    const int64_t max_steps = NS_PER_S / sim->period_ns + 1;
    int64_t t = now_ns(CLOCK_MONOTONIC);

    while (atomic_load_explicit(&sim->running, memory_order_acquire)) {
        t += sim->period_ns;
        struct timespec deadline = {.tv_sec = t / NS_PER_S, .tv_nsec = t % NS_PER_S};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
            ;
        int64_t late = now_ns(CLOCK_MONOTONIC) - t;
        int64_t steps = 1;
        if (late >= sim->period_ns) {
            count(&sim->n_overruns);
            steps += late / sim->period_ns;
            if (steps > max_steps) {
                t += (steps - max_steps) * sim->period_ns;
                steps = max_steps;
            }
        }

        uint64_t resets = atomic_load_explicit(&sim->reset_requests, memory_order_acquire);
        if (resets != sim->resets_seen) {
            sim->resets_seen = resets;
            sim_go_home(sim, sim->robot->q_home);
            count(&sim->n_resets);
            atomic_store_explicit(&sim->reset_done, resets, memory_order_release);
        }

        /* A new command takes effect from its own time on: when catching
         * up, the periods before it still run the previous command. */
        sim_cmd_t c;
        int fresh = hal_seqbox_read(&sim->cmd_box, &c, sizeof c) == 0 && c.seq != sim->cmd.seq;
        for (int64_t k = 0; k < steps; k++) {
            if (k > 0)
                t += sim->period_ns;
            if (fresh && t >= c.time_mono_ns) {
                sim->cmd = c;
                fresh = 0;
            }
            sim_step(sim, t);
            count(&sim->n_ticks);
        }
        if (fresh)
            sim->cmd = c; /* sent after this period began: from the next one */
        sim_publish(sim, t);
    }
    return NULL;
}

/* ---- ops ---- */

static int sim_read_state(hal_t *self, hal_state_t *state)
{
    sim_t *sim = self->impl;
    return hal_seqbox_read(&sim->state_box, state, sizeof *state);
}

static int sim_hold(hal_t *self)
{
    sim_t *sim = self->impl;
    atomic_fetch_add_explicit(&sim->hold_requests, 1, memory_order_release);
    count(&sim->n_holds);
    return 0;
}

static int sim_command(hal_t *self, const hal_command_t *cmd)
{
    sim_t *sim = self->impl;
    sim_cmd_t c;
    uint64_t hold_seen = atomic_load_explicit(&sim->hold_requests, memory_order_acquire);
    if (hal_backend_command(sim->robot, cmd, hold_seen, &c) != 0) {
        count(&sim->n_bad_commands);
        sim_hold(self);
        return -EINVAL;
    }
    c.seq = ++sim->cmd_seq;
    hal_seqbox_write(&sim->cmd_box, &c, sizeof c);
    count(&sim->n_commands);
    return 0;
}

static int sim_reset(hal_t *self)
{
    sim_t *sim = self->impl;
    sim_hold(self);
    uint64_t want =
        atomic_fetch_add_explicit(&sim->reset_requests, 1, memory_order_acq_rel) + 1;
    /* The thread applies it at its next deadline; allow many periods. */
    int64_t give_up = now_ns(CLOCK_MONOTONIC) + 2 * NS_PER_S + 20 * sim->period_ns;
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
    while (atomic_load_explicit(&sim->reset_done, memory_order_acquire) < want) {
        if (now_ns(CLOCK_MONOTONIC) > give_up)
            return -ETIMEDOUT;
        nanosleep(&pause, NULL);
    }
    return 0;
}

static int sim_counters(hal_t *self, hal_counters_t *out)
{
    sim_t *sim = self->impl;
    out->ticks = atomic_load_explicit(&sim->n_ticks, memory_order_relaxed);
    out->overruns = atomic_load_explicit(&sim->n_overruns, memory_order_relaxed);
    out->commands = atomic_load_explicit(&sim->n_commands, memory_order_relaxed);
    out->bad_commands = atomic_load_explicit(&sim->n_bad_commands, memory_order_relaxed);
    out->holds = atomic_load_explicit(&sim->n_holds, memory_order_relaxed);
    out->watchdog_holds = atomic_load_explicit(&sim->n_watchdog_holds, memory_order_relaxed);
    out->limit_stops = atomic_load_explicit(&sim->n_limit_stops, memory_order_relaxed);
    out->resets = atomic_load_explicit(&sim->n_resets, memory_order_relaxed);
    return 0;
}

static void sim_destroy(hal_t *self)
{
    sim_t *sim = self->impl;
    if (!sim)
        return;
    atomic_store_explicit(&sim->running, 0, memory_order_release);
    pthread_join(sim->thread, NULL);
    free(sim);
    self->impl = NULL;
}

static const hal_ops_t sim_ops = {
    .api_version = HAL_API_VERSION,
    .name = "sim",
    .read_state = sim_read_state,
    .command = sim_command,
    .hold = sim_hold,
    .reset = sim_reset,
    .destroy = sim_destroy,
    .counters = sim_counters,
};

int hal_sim_open(hal_t *hal, const hal_options_t *options, char *err, size_t errlen)
{
    const hal_robot_t *r = hal->robot;
    sim_t *sim = calloc(1, sizeof *sim);
    if (!sim) {
        hal_set_error(err, errlen, "hal sim: out of memory");
        return -ENOMEM;
    }
    sim->robot = r;
    sim->period_ns = llround(1e9 / options->sim_rate_hz);
    sim->timeout_ns = llround(options->command_timeout_s * 1e9);
    hal_seqbox_init(&sim->state_box);
    hal_seqbox_init(&sim->cmd_box);
    atomic_init(&sim->running, 1);
    sim_go_home(sim, options->initial_q ? options->initial_q : r->q_home);
    /* Readers see a valid state before the first tick. */
    sim_publish(sim, now_ns(CLOCK_MONOTONIC));

    /* The thread takes no signals: they go to the daemon's main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sim->thread, NULL, sim_thread, sim);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        hal_set_error(err, errlen, "hal sim: cannot start the simulation thread: %s",
                      strerror(rc));
        free(sim);
        return -rc;
    }
    pthread_setname_np(sim->thread, "pacd-hal-sim");
    hal->ops = &sim_ops;
    hal->impl = sim;
    return 0;
}
