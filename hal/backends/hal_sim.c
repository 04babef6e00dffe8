/* hal_sim — the `sim` backend: a kinematic arm integrating commanded joint
 * velocities in its own thread.
 *
 * The thread wakes on absolute CLOCK_MONOTONIC deadlines (clock_nanosleep,
 * TIMER_ABSTIME) at rate_hz (hal_sim.h) and integrates one period per deadline:
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
 * The thread loop, the hold/watchdog decision, mailboxes, counters and the
 * ops other than destroy are the shared backend core (hal_backend.c); this
 * file gives the integration (the hooks). */
#include "hal.h"
#include "hal_backend.h"
#include "hal_sim.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HAL_SIM_DEFAULT_RATE_HZ 1000.0

typedef struct {
    hal_backend_core_t core; /* first: hal->impl points at both */

    /* Owned by the sim thread after start. */
    double q[HAL_MAX_JOINTS], dq[HAL_MAX_JOINTS];
    double gripper, gripper_velocity;
} sim_t;

_Static_assert(offsetof(sim_t, core) == 0, "the core comes first");

static void sim_go_home(sim_t *sim, const double *q)
{
    const hal_robot_t *r = sim->core.robot;
    for (int i = 0; i < r->n_joints; i++) {
        sim->q[i] = q[i];
        sim->dq[i] = 0.0;
    }
    sim->gripper = r->has_gripper ? r->gripper_max : 0.0;
    sim->gripper_velocity = 0.0;
}

static void sim_reset(hal_backend_core_t *core)
{
    sim_go_home((sim_t *)core, core->robot->q_home);
}

static void sim_fill_state(hal_backend_core_t *core, hal_state_t *st)
{
    sim_t *sim = (sim_t *)core;
    const hal_robot_t *r = core->robot;
    st->n_joints = r->n_joints;
    for (int i = 0; i < r->n_joints; i++) {
        st->q[i] = sim->q[i];
        st->dq[i] = sim->dq[i];
    }
    st->gripper_position = sim->gripper;
    st->gripper_velocity = sim->gripper_velocity;
    st->grasp = 0; /* no objects in a kinematic sim */
    hal_robot_fk(r, sim->q, st->ee_pose);
}

/* Integrate one period ending at simulated time t. */
static void sim_step(hal_backend_core_t *core, int64_t t, int holding)
{
    (void)t;
    sim_t *sim = (sim_t *)core;
    const hal_robot_t *r = core->robot;
    const double dt = (double)core->period_ns / RT_CLOCK_NS_PER_S;
    const hal_backend_cmd_t *c = &core->cmd;

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
                hal_backend_count(&core->n_limit_stops);
            q = r->q_max[i];
            if (dq > 0)
                dq = 0;
        } else if (q <= r->q_min[i]) {
            if (sim->q[i] > r->q_min[i])
                hal_backend_count(&core->n_limit_stops);
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

static const hal_backend_hooks_t sim_hooks = {
    .reset = sim_reset,
    .step = sim_step,
    .fill_state = sim_fill_state,
};

static void sim_destroy(hal_t *self)
{
    sim_t *sim = self->impl;
    if (!sim)
        return;
    hal_backend_stop(&sim->core);
    free(sim);
    self->impl = NULL;
}

static const hal_ops_t sim_ops = {
    .api_version = HAL_API_VERSION,
    .name = "sim",
    .read_state = hal_backend_read_state,
    .command = hal_backend_command,
    .hold = hal_backend_hold,
    .reset = hal_backend_reset,
    .destroy = sim_destroy,
    .counters = hal_backend_counters,
};

int hal_sim_open(hal_t *hal, const hal_options_t *options, const void *backend_options,
                 char *err, size_t errlen)
{
    const hal_robot_t *r = hal->robot;
    const hal_sim_options_t *so = backend_options;
    double rate_hz = so && so->rate_hz != 0 ? so->rate_hz : HAL_SIM_DEFAULT_RATE_HZ;
    if (!(rate_hz >= 10 && rate_hz <= 10000)) {
        pacd_errf(err, errlen,
                  "hal: sim_rate_hz = %g is out of range; set it between 10 and 10000 "
                  "(or 0 for the default 1000)",
                  rate_hz);
        return -EINVAL;
    }
    sim_t *sim = calloc(1, sizeof *sim);
    if (!sim) {
        pacd_errf(err, errlen, "hal sim: out of memory");
        return -ENOMEM;
    }
    int64_t period_ns = llround(1e9 / rate_hz);
    /* One second of catch-up at most; a reset waits many periods. */
    hal_backend_init(&sim->core, r, &sim_hooks, period_ns,
                     llround(options->command_timeout_s * 1e9), RT_CLOCK_NS_PER_S,
                     2 * RT_CLOCK_NS_PER_S + 20 * period_ns);
    sim_go_home(sim, options->initial_q ? options->initial_q : r->q_home);
    /* Readers see a valid state before the first tick. */
    hal_backend_publish(&sim->core, rt_clock_mono_ns());

    int rc = hal_backend_start(&sim->core, "pacd-hal-sim", 0);
    if (rc != 0) {
        pacd_errf(err, errlen, "hal sim: cannot start the simulation thread: %s",
                  strerror(rc));
        free(sim);
        return -rc;
    }
    hal->ops = &sim_ops;
    hal->impl = sim;
    return 0;
}
