/* The control loop's arm-facing I/O (struct loop_io: the arm, shadow mode,
 * the stepped arm of the simulated clock) and its clocks (struct loop_clock:
 * real, simulated); both are chosen once in loop_new (pacd_loop_impl.h). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "pacd_loop_impl.h"
#include "rt_clock.h"

/* Simulated clock: the longest wall-clock wait for a tick's inputs (frames,
 * a teleoperator's answer, telemetry sent); after it the tick goes on and the
 * inputs count as stale as usual. */
#define LOOP_SIM_WAIT_NS (2 * RT_CLOCK_NS_PER_S)
/* Simulated clock: frames not there after this long are rendered and sent
 * again (a PUB socket drops what it sends before its subscriber joined). */
#define LOOP_SIM_RESEND_NS (200 * 1000000LL)

/* Forget the previous command (a held arm starts from rest). */
static void forget_action(loop_t *self)
{
    memset(self->prev_action, 0, sizeof self->prev_action);
    self->have_prev_cmd = 0;
}

/* The arm: its state from the HAL. */
static int arm_read(loop_t *self, tick_t *t)
{
    t->rc = hal_read_state(self->d.hal, &t->hs);
    return 1;
}

/* The arm: send the joint command, or hold it; a failed command faults the
 * loop. */
static void arm_send(loop_t *self, tick_t *t)
{
    if (t->hold) {
        if (t->rc == 0 || self->state != LOOP_FAULT)
            hal_hold(self->d.hal);
        forget_action(self);
        return;
    }
    int crc = hal_command(self->d.hal, &t->cmd);
    if (crc != 0) {
        self->st.hal_errors++;
        self->st.fault = LOOP_FAULT_HAL_COMMAND;
        self->st.fault_errno = -crc;
        lp_emit(self, LOOP_EV_HAL_ERROR, crc, 1);
        lp_set_state(self, LOOP_FAULT);
        hal_hold(self->d.hal);
    }
    lp_remember_action(self, &t->cmd);
}

/* The arm on stop: hold until it is still (or 1 s). */
static int arm_may_exit(loop_t *self, int *stopping_ticks, int64_t period)
{
    hal_state_t hs;
    int still = 1;
    if (hal_read_state(self->d.hal, &hs) == 0)
        for (int i = 0; i < hs.n_joints; i++)
            if (fabs(hs.dq[i]) > 1e-3)
                still = 0;
    return still || ++*stopping_ticks * period >= 1000000000LL;
}

/* Shadow mode: one step per new robot state of the state socket; the last
 * step of an ending episode may reuse the newest state. Outside an episode
 * the state is only kept. */
static int shadow_read(loop_t *self, tick_t *t)
{
    if (ingest_take_state(self->d.ingest, &t->hs)) {
        t->rc = 0;
    } else if (self->in_episode && self->end_requested && self->have_state) {
        t->hs = self->last_state;
        t->rc = 0;
    } else {
        return 0;
    }
    if (!self->in_episode) {
        self->last_state = t->hs;
        self->have_state = 1;
        return 0;
    }
    return 1;
}

/* Shadow mode: no arm; remember what would have been sent. */
static void shadow_send(loop_t *self, tick_t *t)
{
    if (!t->hold)
        lp_remember_action(self, &t->cmd);
    else
        forget_action(self);
}

/* Shadow mode on stop: leave once the episode ended (or after 1 s). */
static int shadow_may_exit(loop_t *self, int *stopping_ticks, int64_t period)
{
    return !self->in_episode || ++*stopping_ticks * period >= 1000000000LL;
}

static const loop_io_t arm_io = {
    .poll_ns = 0, .count_misses = 1,
    .read = arm_read, .send = arm_send, .may_exit = arm_may_exit,
};

/* Shadow mode polls every millisecond; the robot states set the pace, so a
 * late poll is no missed control deadline. */
static const loop_io_t shadow_io = {
    .poll_ns = 1000000, .count_misses = 0,
    .read = shadow_read, .send = shadow_send, .may_exit = shadow_may_exit,
};

/* Simulated clock: after the tick's command (or hold) the physics runs one
 * control period with it and renders the next instant. A failed advance
 * faults the loop like a failed command. */
static void stepped_send(loop_t *self, tick_t *t)
{
    arm_send(self, t);
    if (!t->stepped)
        return; /* outside an episode simulated time stands still */
    int rc = hal_advance(self->d.hal, self->period_ns, &self->instant);
    if (rc != 0 && self->state != LOOP_FAULT) {
        self->st.hal_errors++;
        self->st.fault = LOOP_FAULT_HAL_COMMAND;
        self->st.fault_errno = -rc;
        lp_emit(self, LOOP_EV_HAL_ERROR, rc, 1);
        lp_set_state(self, LOOP_FAULT);
    }
}

/* Simulated clock on stop: a simulated arm needs no time to come to rest. */
static int stepped_may_exit(loop_t *self, int *stopping_ticks, int64_t period)
{
    (void)self;
    (void)stopping_ticks;
    (void)period;
    return 1;
}

/* The simulated clock's arm: stepped by the loop itself. */
static const loop_io_t stepped_io = {
    .poll_ns = 0, .count_misses = 0,
    .read = arm_read, .send = stepped_send, .may_exit = stepped_may_exit,
};

const loop_io_t *lp_choose_io(const config_t *cfg)
{
    return cfg->shadow ? &shadow_io : cfg->sim_clock ? &stepped_io : &arm_io;
}


static int64_t real_now(loop_t *self, int64_t wall)
{
    (void)self;
    return wall;
}

static int64_t real_unix_ns(const loop_t *self, int64_t now)
{
    (void)self;
    (void)now;
    return rt_clock_unix_ns();
}

static int64_t real_frame_time(const loop_t *self, const ingest_frame_t *f)
{
    (void)self;
    return f->arrival_mono_ns;
}

static int64_t real_teleop_time(loop_t *self, const ingest_teleop_t *a, int64_t now)
{
    (void)self;
    (void)now;
    return a->arrival_mono_ns;
}

static int64_t real_wait_tick(loop_t *self, int64_t deadline)
{
    (void)self;
    rt_clock_sleep_until(deadline);
    return deadline;
}

static void real_sync(loop_t *self, tick_t *t, int stopping)
{
    (void)self;
    (void)t;
    (void)stopping;
}

static void real_published(loop_t *self) { (void)self; }

static const loop_clock_t real_clock = {
    .now = real_now, .unix_ns = real_unix_ns, .frame_time = real_frame_time,
    .teleop_time = real_teleop_time, .wait_tick = real_wait_tick, .sync = real_sync,
    .published = real_published,
};

static int64_t sim_now(loop_t *self, int64_t wall)
{
    (void)wall;
    return self->instant.time_ns;
}

static int64_t sim_unix_ns(const loop_t *self, int64_t now)
{
    return now + self->instant.unix_offset_ns;
}

/* The backend stamps a frame with its simulated instant (as Unix time). */
static int64_t sim_frame_time(const loop_t *self, const ingest_frame_t *f)
{
    return f->capture_time_unix_ns - self->instant.unix_offset_ns;
}

/* A teleop action's time is the simulated time of the tick that first saw it. */
static int64_t sim_teleop_time(loop_t *self, const ingest_teleop_t *a, int64_t now)
{
    if (a->seq != self->teleop_seen_seq || a->arrival_mono_ns != self->teleop_seen_arrival) {
        self->teleop_seen_seq = a->seq;
        self->teleop_seen_arrival = a->arrival_mono_ns;
        self->teleop_seen_ns = now;
    }
    return self->teleop_seen_ns;
}

static int64_t sim_wait_tick(loop_t *self, int64_t deadline)
{
    if (self->in_episode)
        return rt_clock_mono_ns();
    rt_clock_sleep_until(deadline);
    return deadline;
}

/* What a simulated tick waits for (sim_wait). */
typedef enum { SIM_FRAMES, SIM_TELEOP, SIM_TELEMETRY } sim_input_t;

static int sim_ready(loop_t *self, sim_input_t what)
{
    switch (what) {
    case SIM_FRAMES:
        for (int i = 0; i < self->cfg->n_cameras; i++) {
            const ingest_frame_t *f = ingest_latest_frame(self->d.ingest, i);
            if (!f || f->seq < self->instant.frame_seq)
                return 0;
        }
        return 1;
    case SIM_TELEOP: {
        ingest_teleop_t a;
        /* an answer to the telemetry of the previous tick, or no one to wait for */
        return (ingest_latest_teleop(self->d.ingest, &a) &&
                a.arrival_mono_ns > self->status_wall_ns) ||
               !self->in_episode || self->end_requested;
    }
    case SIM_TELEMETRY:
        return atomic_load_explicit(&self->telemetry_count, memory_order_acquire) >=
               atomic_load_explicit(&self->status_count, memory_order_relaxed);
    }
    return 1;
}

/* Simulated clock: wait (polling, at most LOOP_SIM_WAIT_NS of wall time)
 * until `what` is ready, taking commands meanwhile (an operator that ends
 * the episode is not kept waiting, and the service thread, which sends the
 * telemetry, may itself be waiting for a command's result). 1 ready, 0
 * timed out or stopping. */
static int sim_wait(loop_t *self, sim_input_t what, int stopping)
{
    int64_t now = rt_clock_mono_ns();
    int64_t give_up = now + LOOP_SIM_WAIT_NS, resend = now + LOOP_SIM_RESEND_NS;
    while (!sim_ready(self, what)) {
        now = rt_clock_mono_ns();
        if (atomic_load_explicit(&self->stop, memory_order_acquire) || now > give_up)
            return 0;
        if (what == SIM_FRAMES && now > resend) {
            hal_advance(self->d.hal, 0, &self->instant); /* the same instant again */
            resend = now + LOOP_SIM_RESEND_NS;
        }
        rt_clock_sleep_ns(20000);
        lp_take_commands(self, stopping);
    }
    return 1;
}

/* Simulated clock, an episode's tick: at its first step the current instant
 * (the reset's) is rendered and published again; then the frames of the
 * instant, and in teleop mode (after the first step) an action sent after
 * the previous tick's telemetry, are waited for. */
static void sim_sync(loop_t *self, tick_t *t, int stopping)
{
    /* (when republishing fails the tick does not wait: the ages decide) */
    if (self->in_episode &&
        (self->step > 0 || hal_advance(self->d.hal, 0, &self->instant) == 0)) {
        if (self->cfg->n_cameras > 0)
            sim_wait(self, SIM_FRAMES, stopping);
        if (self->cfg->teleop && self->step > 0)
            sim_wait(self, SIM_TELEOP, stopping);
    }
    t->deadline = self->instant.time_ns;
}

/* Simulated clock: every tick's status goes out as telemetry before the next
 * tick (the service thread sends it when tick_fd says so). */
static void sim_published(loop_t *self)
{
    atomic_fetch_add_explicit(&self->status_count, 1, memory_order_release);
    uint64_t one = 1;
    if (write(self->tick_fd, &one, sizeof one) == (ssize_t)sizeof one)
        sim_wait(self, SIM_TELEMETRY, 0);
}

static const loop_clock_t sim_clock = {
    .now = sim_now, .unix_ns = sim_unix_ns, .frame_time = sim_frame_time,
    .teleop_time = sim_teleop_time, .wait_tick = sim_wait_tick, .sync = sim_sync,
    .published = sim_published,
};

const loop_clock_t *lp_choose_clock(const config_t *cfg)
{
    return cfg->sim_clock && !cfg->shadow ? &sim_clock : &real_clock;
}
