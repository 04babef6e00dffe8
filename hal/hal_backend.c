/* hal_backend — the core the simulated backends (sim, mujoco) share: the
 * thread loop, the hold decision, the mailboxes and counters, and the
 * hal_ops_t entries over them. What each backend does differently comes in
 * through hal_backend_hooks_t (hal_backend.h). */
#include "hal_backend.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <string.h>


_Static_assert(sizeof(hal_backend_cmd_t) <= 8 * RT_SEQBOX_WORDS,
               "hal_backend_cmd_t fits a seqbox");
_Static_assert(sizeof(hal_state_t) <= 8 * RT_SEQBOX_WORDS, "hal_state_t fits a seqbox");

void hal_backend_init(hal_backend_core_t *core, const hal_robot_t *robot,
                      const hal_backend_hooks_t *hooks, int64_t period_ns, int64_t timeout_ns,
                      int64_t catchup_ns, int64_t reset_wait_ns)
{
    core->robot = robot;
    core->hooks = hooks;
    core->period_ns = period_ns;
    core->timeout_ns = timeout_ns;
    core->catchup_ns = catchup_ns;
    core->reset_wait_ns = reset_wait_ns;
    rt_seqbox_init(&core->state_box);
    rt_seqbox_init(&core->cmd_box);
    atomic_init(&core->running, 1);
}

void hal_backend_publish(hal_backend_core_t *core, int64_t t_mono)
{
    hal_state_t st;
    memset(&st, 0, sizeof st);
    st.time_mono_ns = t_mono;
    /* The wall-clock time that corresponds to the simulated instant; in
     * stepped mode simulated time has its own, fixed, offset. */
    st.time_unix_ns = core->stepped ? t_mono + core->unix_offset_ns
                                    : rt_clock_unix_ns() - (rt_clock_mono_ns() - t_mono);
    st.seq = ++core->state_seq;
    core->hooks->fill_state(core, &st);
    rt_seqbox_write(&core->state_box, &st, sizeof st);
    if (core->hooks->published)
        core->hooks->published(core, &st);
}

int hal_backend_holding(hal_backend_core_t *core, int64_t t)
{
    const hal_backend_cmd_t *c = &core->cmd;
    int holding = c->seq == 0 || atomic_load_explicit(&core->hold_requests,
                                                      memory_order_acquire) > c->hold_seen;
    if (!holding && t - c->time_mono_ns > core->timeout_ns) {
        holding = 1;
        if (core->watchdog_seq != c->seq) {
            core->watchdog_seq = c->seq;
            hal_backend_count(&core->n_watchdog_holds);
        }
    }
    return holding;
}

int hal_backend_stepped_reset(hal_backend_core_t *core, int64_t t)
{
    uint64_t resets = atomic_load_explicit(&core->reset_requests, memory_order_acquire);
    if (resets == core->resets_seen)
        return 0;
    core->resets_seen = resets;
    core->hooks->reset(core);
    hal_backend_count(&core->n_resets);
    hal_backend_publish(core, t);
    atomic_store_explicit(&core->reset_done, resets, memory_order_release);
    return 1;
}

void hal_backend_stepped_run(hal_backend_core_t *core, int64_t *t, int64_t steps)
{
    hal_backend_cmd_t c;
    if (steps > 0) {
        /* the caller of hal_command waits in hal_advance: no write under way */
        int fresh =
            rt_seqbox_read(&core->cmd_box, &c, sizeof c) == 0 && c.seq != core->cmd.seq;
        if (fresh)
            core->cmd = c;
        int holding = core->cmd.seq == 0 ||
                      atomic_load_explicit(&core->hold_requests, memory_order_acquire) >
                          core->cmd.hold_seen;
        if (!holding && !fresh) {
            holding = 1;
            if (core->watchdog_seq != core->cmd.seq) {
                core->watchdog_seq = core->cmd.seq;
                hal_backend_count(&core->n_watchdog_holds);
            }
        }
        for (int64_t k = 0; k < steps; k++) {
            *t += core->period_ns;
            core->hooks->step(core, *t, holding);
            hal_backend_count(&core->n_ticks);
        }
    }
    hal_backend_publish(core, *t);
}

void *hal_backend_run(void *arg)
{
    hal_backend_core_t *core = arg;
    const int64_t period = core->period_ns;
    const int64_t max_steps = core->catchup_ns / period + 1;
    int64_t t = core->start_ns;   /* see hal_backend_start */

    while (atomic_load_explicit(&core->running, memory_order_acquire)) {
        t += period;
        rt_clock_sleep_until(t);
        int64_t late = rt_clock_mono_ns() - t;
        int64_t steps = 1;
        if (late >= period) {
            hal_backend_count(&core->n_overruns);
            steps += late / period;
            if (steps > max_steps) {
                t += (steps - max_steps) * period;
                steps = max_steps;
            }
        }

        uint64_t resets = atomic_load_explicit(&core->reset_requests, memory_order_acquire);
        if (resets != core->resets_seen) {
            core->resets_seen = resets;
            core->hooks->reset(core);
            hal_backend_count(&core->n_resets);
            /* the reset state (and a backend's task) is out before the
             * caller of hal_reset returns */
            hal_backend_publish(core, t - period);
            atomic_store_explicit(&core->reset_done, resets, memory_order_release);
        }

        /* A new command takes effect from its own time on: when catching
         * up, the periods before it still run the previous command. */
        hal_backend_cmd_t c;
        int fresh =
            rt_seqbox_read(&core->cmd_box, &c, sizeof c) == 0 && c.seq != core->cmd.seq;
        for (int64_t k = 0; k < steps; k++) {
            if (k > 0)
                t += period;
            if (fresh && t >= c.time_mono_ns) {
                core->cmd = c;
                fresh = 0;
            }
            core->hooks->step(core, t, hal_backend_holding(core, t));
            hal_backend_count(&core->n_ticks);
        }
        if (fresh)
            core->cmd = c; /* sent after this period began: from the next one */
        hal_backend_publish(core, t);
    }
    return NULL;
}

int hal_backend_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg, const char *name,
                             int rt_priority)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (rt_priority > 0) {
        struct sched_param sp = {.sched_priority = rt_priority};
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
        pthread_attr_setschedparam(&attr, &sp);
    }
    /* The thread takes no signals: they go to the daemon's main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(thread, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        pthread_setname_np(*thread, name);
    return rc;
}

int hal_backend_start(hal_backend_core_t *core, const char *name, int rt_priority)
{
    core->start_ns = rt_clock_mono_ns();
    int rc = hal_backend_thread_start(&core->thread, hal_backend_run, core, name, rt_priority);
    if (rc == 0)
        core->started = 1;
    return rc;
}

void hal_backend_stop(hal_backend_core_t *core)
{
    atomic_store_explicit(&core->running, 0, memory_order_release);
    if (core->started)
        pthread_join(core->thread, NULL);
    core->started = 0;
}

/* ---- ops ---- */

int hal_backend_read_state(hal_t *self, hal_state_t *state)
{
    hal_backend_core_t *core = self->impl;
    return rt_seqbox_read(&core->state_box, state, sizeof *state);
}

int hal_backend_hold(hal_t *self)
{
    hal_backend_core_t *core = self->impl;
    atomic_fetch_add_explicit(&core->hold_requests, 1, memory_order_release);
    hal_backend_count(&core->n_holds);
    return 0;
}

/* Check cmd against robot and fill *out (seq left 0, time now). 0 or
 * -EINVAL. */
int hal_backend_check_command(const hal_robot_t *robot, const hal_command_t *cmd,
                              uint64_t hold_seen,
                              hal_backend_cmd_t *out)
{
    int n = robot->n_joints, ok = 0;
    if (cmd->space == HAL_SPACE_JOINT_VELOCITY)
        ok = cmd->n == n;
    else if (cmd->space == HAL_SPACE_JOINT_VELOCITY_GRIPPER)
        ok = robot->has_gripper && cmd->n == n + 1;
    for (int i = 0; ok && i < cmd->n; i++)
        ok = isfinite(cmd->values[i]);
    if (!ok)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->time_mono_ns = rt_clock_mono_ns();
    out->hold_seen = hold_seen;
    for (int i = 0; i < n; i++)
        out->dq[i] = cmd->values[i];
    if (cmd->space == HAL_SPACE_JOINT_VELOCITY_GRIPPER) {
        out->has_gripper = 1;
        out->gripper = cmd->values[n];
    }
    return 0;
}

int hal_backend_command(hal_t *self, const hal_command_t *cmd)
{
    hal_backend_core_t *core = self->impl;
    hal_backend_cmd_t c;
    uint64_t hold_seen = atomic_load_explicit(&core->hold_requests, memory_order_acquire);
    if (hal_backend_check_command(core->robot, cmd, hold_seen, &c) != 0) {
        hal_backend_count(&core->n_bad_commands);
        hal_backend_hold(self);
        return -EINVAL;
    }
    c.seq = ++core->cmd_seq;
    rt_seqbox_write(&core->cmd_box, &c, sizeof c);
    hal_backend_count(&core->n_commands);
    return 0;
}

int hal_backend_reset(hal_t *self, const uint64_t *seed)
{
    hal_backend_core_t *core = self->impl;
    hal_backend_hold(self);
    atomic_store_explicit(&core->reset_seed, seed ? *seed : 0, memory_order_relaxed);
    atomic_store_explicit(&core->reset_has_seed, seed != NULL, memory_order_relaxed);
    uint64_t want =
        atomic_fetch_add_explicit(&core->reset_requests, 1, memory_order_acq_rel) + 1;
    /* The thread applies it at its next deadline. */
    int64_t give_up = rt_clock_mono_ns() + core->reset_wait_ns;
    while (atomic_load_explicit(&core->reset_done, memory_order_acquire) < want) {
        if (rt_clock_mono_ns() > give_up)
            return -ETIMEDOUT;
        rt_clock_sleep_ns(1000000);
    }
    return 0;
}

int hal_backend_counters(hal_t *self, hal_counters_t *out)
{
    hal_backend_core_t *core = self->impl;
    out->ticks = atomic_load_explicit(&core->n_ticks, memory_order_relaxed);
    out->overruns = atomic_load_explicit(&core->n_overruns, memory_order_relaxed);
    out->commands = atomic_load_explicit(&core->n_commands, memory_order_relaxed);
    out->bad_commands = atomic_load_explicit(&core->n_bad_commands, memory_order_relaxed);
    out->holds = atomic_load_explicit(&core->n_holds, memory_order_relaxed);
    out->watchdog_holds = atomic_load_explicit(&core->n_watchdog_holds, memory_order_relaxed);
    out->limit_stops = atomic_load_explicit(&core->n_limit_stops, memory_order_relaxed);
    out->resets = atomic_load_explicit(&core->n_resets, memory_order_relaxed);
    return 0;
}
