/* The control loop's thread (pacd_loop.h, pacd_loop_impl.h): events and
 * state, the observation, episodes and commands, the safety filter, the
 * tick's phases, the tick and the thread's body. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "hal_cartesian.h"
#include "hal_safety.h"
#include "pacd_loop_impl.h"
#include "pacd_notify.h"
#include "rt_clock.h"
#include "rt_spsc.h"
#include "rt_tbuf.h"

/* What the loop copies into a step's log record fits it by construction. */
_Static_assert(INGEST_MAX_TASK_INFO == LOGGER_MAX_TASK_INFO && INGEST_TASK_NAME == LOGGER_TASK_NAME,
               "a Reward's task info is the log record's");
_Static_assert(HAL_TASK_MAX_VALUES <= LOGGER_MAX_TASK_INFO, "a scene's task values fit a step");
_Static_assert(CONFIG_MAX_CAMERAS == LOGGER_MAX_CAMERAS, "every camera has a frame reference");

/* ---------------- loop thread ---------------- */

void lp_emit(loop_t *self, loop_event_code_t code, int64_t a, int64_t b)
{
    loop_event_t ev = {.time_mono_ns = rt_clock_mono_ns(), .code = code, .a = a, .b = b};
    memcpy(ev.episode_id, self->episode_id, sizeof ev.episode_id);
    rt_spsc_push(&self->events, &ev); /* full: the event is lost, the loop goes on */
}

void lp_set_state(loop_t *self, loop_state_t s)
{
    if (self->state == s)
        return;
    lp_emit(self, LOOP_EV_STATE, self->state, s);
    self->state = s;
}

/* An object's pose from the task values <object>_x, _y, _z, _qw, _qx, _qy,
 * _qz into v[7]; zeros when the task lacks any of them. */
static void object_pose(const loop_t *self, const char *object, float *v)
{
    static const char *const suffix[7] = {"_x", "_y", "_z", "_qw", "_qx", "_qy", "_qz"};
    size_t len = strlen(object);
    for (int k = 0; k < 7; k++) {
        v[k] = 0.0f;
        for (int i = 0; self->have_task && i < self->task.n_values; i++) {
            const char *name = self->task.names[i];
            if (!strncmp(name, object, len) && !strcmp(name + len, suffix[k])) {
                v[k] = (float)self->task.values[i];
                break;
            }
        }
    }
}

static void source_values(const loop_t *self, const field_plan_t *p, const hal_state_t *hs,
                          float *v)
{
    int n = self->robot->n_joints;
    switch (p->source) {
    case POLICY_SOURCE_JOINT_POSITIONS:
        for (int i = 0; i < n; i++)
            v[i] = (float)hs->q[i];
        break;
    case POLICY_SOURCE_JOINT_VELOCITIES:
        for (int i = 0; i < n; i++)
            v[i] = (float)hs->dq[i];
        break;
    case POLICY_SOURCE_GRIPPER_POSITION: v[0] = (float)hs->gripper_position; break;
    case POLICY_SOURCE_GRIPPER_VELOCITY: v[0] = (float)hs->gripper_velocity; break;
    case POLICY_SOURCE_GRASP: v[0] = hs->grasp ? 1.0f : 0.0f; break;
    case POLICY_SOURCE_END_EFFECTOR_POSE:
        for (int i = 0; i < 7; i++)
            v[i] = (float)hs->ee_pose[i];
        break;
    case POLICY_SOURCE_PREVIOUS_ACTION:
        memcpy(v, self->prev_action, sizeof(float) * (size_t)self->spec->action_dim);
        break;
    case POLICY_SOURCE_OBJECT_POSE: object_pose(self, p->object, v); break;
    case POLICY_SOURCE_GRIPPER_TO_OBJECT: {
        float pose[7];
        object_pose(self, p->object, pose);
        for (int i = 0; i < 3; i++)
            v[i] = (float)hs->ee_pose[i] - pose[i];
        break;
    }
    case POLICY_SOURCE_CAMERA: break;   /* images are not fields of the vector */
    }
}

/* Push the newest values into every history and rebuild the observation.
 * At the first step of an episode every history slot gets the first value
 * (previous_action: zeros). */
static void assemble(loop_t *self, const hal_state_t *hs, int first)
{
    float v[HAL_MAX_ACTION > 7 ? HAL_MAX_ACTION : 7];
    for (int i = 0; i < self->n_fields; i++) {
        field_plan_t *p = &self->fields[i];
        source_values(self, p, hs, v);
        size_t sz = (size_t)p->size;
        if (first) {
            for (int h = 0; h < p->history; h++)
                memcpy(p->hist + (size_t)h * sz, v, sz * sizeof(float));
        } else {
            memmove(p->hist, p->hist + sz, (size_t)(p->history - 1) * sz * sizeof(float));
            memcpy(p->hist + (size_t)(p->history - 1) * sz, v, sz * sizeof(float));
        }
        memcpy(self->obs + p->offset, p->hist, (size_t)p->history * sz * sizeof(float));
    }
}

/* Ask the open episode to end at this tick's step (or the next); the first
 * reason asked for is the one reported. */
static void request_end(loop_t *self, loop_end_reason_t reason)
{
    if (!self->end_requested)
        self->end_reason = reason;
    self->end_requested = 1;
}

static void begin_episode(loop_t *self, const loop_cmd_t *c)
{
    memcpy(self->episode_id, c->episode_id, sizeof self->episode_id);
    self->episode_id[LOOP_EPISODE_ID - 1] = '\0';
    self->in_episode = 1;
    self->decision_left = 0;
    self->episode_start_ns = rt_clock_mono_ns();
    self->have_task = 0; /* only a task read in this episode counts */
    self->step = 0;
    self->max_steps = c->max_steps ? c->max_steps : (uint64_t)self->cfg->max_steps;
    self->task_id = c->task_id >= 0 ? c->task_id : self->cfg->task_id;
    self->episode_info.task_id = self->spec->task_kind == POLICY_TASK_ID ? self->task_id : -1;
    self->episode_info.task_seed = c->task_seed;
    self->st.episode_seed = c->task_seed;
    self->end_requested = self->end_terminal = self->has_final_reward = 0;
    self->end_reason = LOOP_END_NONE;
    memset(self->prev_action, 0, sizeof self->prev_action);
    memset(self->logged_any, 0, sizeof self->logged_any);
    memcpy(self->episode_info.episode_id, self->episode_id, sizeof self->episode_info.episode_id);
    if (logger_begin_episode(self->d.logger, &self->episode_info) != 0)
        lp_emit(self, LOOP_EV_LOG_DROP, 3, 0);
    self->st.episodes++;
    self->st.step = 0;
    memcpy(self->st.episode_id, self->episode_id, sizeof self->st.episode_id);
    lp_emit(self, LOOP_EV_EPISODE_BEGIN, (int64_t)self->max_steps, 0);
    lp_set_state(self, LOOP_RUNNING);
}

static void finish_episode(loop_t *self)
{
    if (logger_end_episode(self->d.logger) != 0)
        lp_emit(self, LOOP_EV_LOG_DROP, 3, 1);
    lp_emit(self, LOOP_EV_EPISODE_END, (int64_t)self->step,
         (int64_t)self->end_reason | (self->end_terminal ? 0x100 : 0));
    if (self->end_terminal)
        self->st.episodes_terminal++;
    self->st.last_end_reason = self->end_reason;
    self->in_episode = 0;
}

static void reply(loop_t *self, const loop_cmd_t *c, int rc, const char *why)
{
    self->result.rc = rc;
    self->result.error = why ? why : "";
    self->result.seq = c->seq;
    atomic_store_explicit(&self->result_seq, c->seq, memory_order_release);
    if (rc)
        self->st.commands_rejected++;
}

static void apply_command(loop_t *self, const loop_cmd_t *c)
{
    loop_state_t s = self->state;
    switch (c->type) {
    case LOOP_CMD_START_EPISODE:
        if (c->task_id >= 0 && self->spec->task_kind == POLICY_TASK_ID &&
            c->task_id >= self->spec->task_count)
            return reply(self, c, -EINVAL, "task_id out of the checkpoint's range");
        if (s == LOOP_ESTOPPED)
            return reply(self, c, -EPERM, "e-stopped: clear_estop first");
        if (s == LOOP_FAULT)
            return reply(self, c, -EPERM, "in fault: see the fault text, then clear_estop");
        if (self->in_episode)
            return reply(self, c, -EBUSY, "an episode is running: end_episode first");
        begin_episode(self, c);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_END_EPISODE:
        if (!self->in_episode)
            return reply(self, c, -ENOENT, "no episode is running");
        request_end(self, LOOP_END_REQUESTED);
        self->end_terminal = c->is_terminal;
        self->has_final_reward = c->has_final_reward;
        self->final_reward = c->final_reward;
        return reply(self, c, 0, NULL);
    case LOOP_CMD_HOLD:
        if (s != LOOP_RUNNING)
            return reply(self, c, -EINVAL, "hold: only a running episode can be held");
        lp_set_state(self, LOOP_HOLDING);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_RESUME:
        if (s != LOOP_HOLDING)
            return reply(self, c, -EINVAL, "resume: nothing is held");
        lp_set_state(self, LOOP_RUNNING);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_ESTOP:
        if (self->in_episode) {
            request_end(self, LOOP_END_ESTOP);
            self->end_terminal = 0;
        }
        lp_set_state(self, LOOP_ESTOPPED);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_CLEAR_ESTOP:
        if (s != LOOP_ESTOPPED && s != LOOP_FAULT)
            return reply(self, c, -EINVAL, "clear_estop: not e-stopped or in fault");
        self->st.fault = LOOP_FAULT_NONE;
        self->st.fault_errno = 0;
        lp_set_state(self, self->in_episode ? LOOP_HOLDING : LOOP_IDLE);
        return reply(self, c, 0, NULL);
    }
    reply(self, c, -EINVAL, "unknown command");
}

/* One tick's samples (us, indexed T_*) into the timing window. */
static void record_timing(loop_t *self, const uint32_t v[T_SERIES])
{
    uint64_t n = atomic_load_explicit(&self->t_count, memory_order_relaxed);
    size_t i = (size_t)(n % (uint64_t)self->window);
    for (int k = 0; k < T_SERIES; k++)
        atomic_store_explicit(&self->t[k][i], v[k], memory_order_relaxed);
    atomic_store_explicit(&self->t_count, n + 1, memory_order_release);
}

static uint32_t us(int64_t ns)
{
    if (ns <= 0)
        return 0;
    int64_t u = ns / 1000;
    return u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
}

/* A phase's duration as a sample: 0 = the phase did not run this tick; a
 * phase that ran counts at least 1 us. */
static uint32_t phase_us(int64_t ns)
{
    return ns > 0 ? (us(ns) ? us(ns) : 1) : 0;
}

/* The policy action through the safety filter into a joint command: a
 * Cartesian action is first checked against its spec, then mapped to joint
 * velocities (hal_cartesian_to_joint: speed bounds, workspace box, damped
 * least squares), then filtered in joint space like any other. RT-safe. */
static void filter_action(loop_t *self, const hal_state_t *hs, hal_command_t *cmd,
                          hal_safety_result_t *res)
{
    const policy_spec_t *spec = self->spec;
    const hal_command_t *prev = self->have_prev_cmd ? &self->prev_cmd : NULL;
    if (!self->cartesian) {
        hal_safety_filter(self->robot, &self->safety, hs, self->space, self->action,
                          spec->action_dim, spec->action_low, spec->action_high, prev, cmd, res);
        return;
    }
    uint32_t pre = 0;
    for (int i = 0; i < spec->action_dim; i++) {
        float a = self->action[i];
        double bound = fmax(fabs(spec->action_low[i]), fabs(spec->action_high[i]));
        if (!isfinite(a))
            pre |= HAL_SAFETY_NONFINITE;
        else if (fabs(a) > self->safety.out_of_spec_factor * bound)
            pre |= HAL_SAFETY_OUT_OF_SPEC;
    }
    hal_command_t joint;
    uint32_t cflags = 0;
    if (!pre)
        hal_cartesian_to_joint(self->robot, &self->cart, hs, self->policy_space, self->action,
                               spec->action_dim, &joint, &cflags);
    if (pre || (cflags & HAL_SAFETY_HELD)) {
        memset(cmd->values, 0, sizeof cmd->values);
        res->flags = pre | cflags | HAL_SAFETY_HELD;
        res->hold = 1;
        return;
    }
    for (int i = 0; i < joint.n && i < HAL_MAX_ACTION; i++)
        self->joint_action[i] = (float)joint.values[i];
    /* joint bounds: the robot's velocity limits (NULL bounds in the filter) */
    hal_safety_filter(self->robot, &self->safety, hs, joint.space, self->joint_action, joint.n,
                      NULL, NULL, prev, cmd, res);
    res->flags |= cflags;
}

/* After a command went out: remember it for the acceleration limit, and the
 * action it executed, in the policy's action space, for "previous_action"
 * (joint spaces: the filtered command; Cartesian: the policy action clamped to
 * its bounds). RT-safe. */
void lp_remember_action(loop_t *self, const hal_command_t *cmd)
{
    const policy_spec_t *spec = self->spec;
    if (self->cartesian) {
        for (int i = 0; i < spec->action_dim; i++)
            self->prev_action[i] = fminf(fmaxf(self->action[i], spec->action_low[i]),
                                         spec->action_high[i]);
    } else {
        for (int i = 0; i < cmd->n && i < POLICY_MAX_ACTION; i++)
            self->prev_action[i] = (float)cmd->values[i];
    }
    self->prev_cmd = *cmd;
    self->have_prev_cmd = 1;
}

/* strlcpy: src into dst (size n > 0), cut short and NUL-terminated. */
void lp_copy_name(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Apply every queued command; a stopping loop ends the open episode. */
void lp_take_commands(loop_t *self, int stopping)
{
    loop_cmd_t c;
    while (rt_spsc_pop(&self->commands, &c))
        apply_command(self, &c);
    if (stopping && self->in_episode)
        request_end(self, LOOP_END_SHUTDOWN);
}

/* The robot state of this tick into t->hs / t->rc; a failed read faults the
 * loop. 0 when no step is made this tick (shadow_read). */
static int read_state(loop_t *self, tick_t *t)
{
    int64_t t0 = rt_clock_mono_ns();
    t->now = self->clock->now(self, t0);
    int step = self->io->read(self, t);
    t->hal_ns = rt_clock_mono_ns() - t0;
    if (!step)
        return 0;
    if (t->rc == -EAGAIN && self->have_state) {
        /* the backend published during the copy: the previous state is at most
         * one backend period older, and its age is still checked below */
        t->hs = self->last_state;
        t->rc = 0;
    }
    if (t->rc == 0) {
        self->last_state = t->hs;
        self->have_state = 1;
    } else {
        self->st.hal_errors++;
        if (self->state != LOOP_FAULT) {
            self->st.fault = LOOP_FAULT_HAL_READ;
            self->st.fault_errno = -t->rc;
            lp_emit(self, LOOP_EV_HAL_ERROR, t->rc, 0);
            lp_set_state(self, LOOP_FAULT);
        }
    }
    return 1;
}

/* Teleop mode: the teleoperator's action is a required input like a camera:
 * none since the episode began (an action meant for the previous episode
 * does not start this one), older than [teleop] max_age_ms, or of another
 * action space or size than the policy's makes the step stale (the arm
 * holds). */
static void teleop_input(loop_t *self, tick_t *t)
{
    const ingest_teleop_t *a = &self->teleop;
    int fresh = a->n && (!self->in_episode || a->arrival_mono_ns >= self->episode_start_ns);
    int64_t age = fresh ? t->now - self->teleop_time : INT64_MAX;
    int input = 0;
    if (age > (int64_t)self->cfg->teleop_max_age_ms * 1000000)
        input = LOOP_STALE_TELEOP;
    else if (a->n != self->spec->action_dim || a->space != self->action_space)
        input = LOOP_STALE_TELEOP_SHAPE;
    if (!input)
        return;
    if (!t->stale) {
        t->stale_input = input;
        t->stale_age = fresh ? age : -1000;
    }
    t->stale = 1;
}

/* Input ages: the robot state and the required cameras against their
 * max_age_ms; the newest frame of every camera, and the image fields'
 * pixels. A missing image makes the step stale. */
static void read_inputs(loop_t *self, tick_t *t)
{
    const config_t *cfg = self->cfg;
    t->stale = t->rc != 0;
    t->stale_input = -2;
    if (t->rc == 0 && t->now - t->hs.time_mono_ns > (int64_t)cfg->state_max_age_ms * 1000000) {
        t->stale = 1;
        t->stale_input = -1;
        t->stale_age = t->now - t->hs.time_mono_ns;
    }
    for (int i = 0; i < cfg->n_cameras; i++) {
        const ingest_frame_t *f = ingest_latest_frame(self->d.ingest, i);
        t->frames[i] = f;
        int64_t age = f ? t->now - self->clock->frame_time(self, f) : INT64_MAX;
        if (cfg->cameras[i].required && age > (int64_t)cfg->cameras[i].max_age_ms * 1000000) {
            if (!t->stale) {
                t->stale_input = i;
                t->stale_age = f ? age : -1000; /* reported as "no frame yet" */
            }
            t->stale = 1;
        }
    }
    for (int k = 0; k < self->n_images; k++) {
        const ingest_frame_t *f = t->frames[self->image_camera[k]];
        self->images[k] = f ? f->pixels : NULL;
        if (!f)
            t->stale = 1;
    }
    ingest_latest_teleop(self->d.ingest, &self->teleop);
    self->teleop_time = self->clock->teleop_time(self, &self->teleop, t->now);
    if (cfg->teleop)
        teleop_input(self, t);
    if (cfg->task_from_hal) {
        hal_task_t task;
        if (hal_read_task(self->d.hal, &task) == 0) { /* -EAGAIN: keep the previous one */
            self->task = task;
            self->have_task = 1;
        }
        if (!self->have_task) {
            if (!t->stale) {
                t->stale_input = LOOP_STALE_TASK;
                t->stale_age = -1000;
            }
            t->stale = 1;
        }
    }
}

/* Start a step of the open episode: stale transitions as events, the reward
 * and task info of the step, whether it is the last one, and the
 * observation (when the robot state was read). */
static void begin_step(loop_t *self, tick_t *t)
{
    t->first = self->step == 0;
    /* the disk guard: the episode's log failed (disk full, I/O error): this
     * step is the last, and it holds the arm */
    if (!self->end_requested && logger_episode_failed(self->d.logger)) {
        request_end(self, LOOP_END_LOG_FAILED);
        self->st.episodes_log_failed++;
    }
    if (t->stale != self->stale_prev) {
        if (t->stale)
            lp_emit(self, LOOP_EV_STALE_BEGIN, t->stale_input, t->stale_age / 1000);
        else
            lp_emit(self, LOOP_EV_STALE_END, 0, 0);
        self->stale_prev = t->stale;
    }
    t->reward = 0.0f;
    t->discount = 1.0f;
    int terminal = 0;
    if (self->cfg->task_from_hal) {
        /* the scene's own task: success ends the episode as terminal */
        self->rec.n_task_info = 0;
        if (self->have_task) {
            t->reward = (float)self->task.reward;
            terminal = self->task.success;
            self->rec.n_task_info = self->task.n_values;
            for (int i = 0; i < self->task.n_values && i < LOGGER_MAX_TASK_INFO; i++) {
                lp_copy_name(self->rec.task_info_name[i], LOGGER_TASK_NAME, self->task.names[i]);
                self->rec.task_info_value[i] = self->task.values[i];
            }
        }
    } else {
        ingest_task_info_t info = {0};
        ingest_take_reward(self->d.ingest, &t->reward, &t->discount, &terminal, &info);
        self->rec.n_task_info = info.n;
        for (int i = 0; i < info.n && i < LOGGER_MAX_TASK_INFO; i++) {
            memcpy(self->rec.task_info_name[i], info.name[i], sizeof self->rec.task_info_name[i]);
            self->rec.task_info_value[i] = info.value[i];
        }
    }
    if (terminal) {
        request_end(self, LOOP_END_TERMINAL);
        self->end_terminal = 1;
    }
    if (self->max_steps && self->step + 1 >= self->max_steps)
        request_end(self, LOOP_END_MAX_STEPS);
    t->is_last = self->end_requested;
    if (t->is_last && self->has_final_reward)
        t->reward = self->final_reward;
    if (t->is_last && self->end_terminal)
        t->discount = 0.0f;

    memset(self->action, 0, sizeof self->action);
    memset(self->policy_action, 0, sizeof self->policy_action);
    if (t->rc == 0)
        assemble(self, &t->hs, t->first);
}

/* Run the policy on the observation into self->action (teleop mode: into
 * self->policy_action, and the teleoperator's action into self->action). */
static void policy_phase(loop_t *self, tick_t *t)
{
    size_t n = sizeof(float) * (size_t)self->spec->action_dim;
    if (self->decision_left > 0) {
        /* a decision of several periods (checkpoint action "repeat"): its
         * action again, through the safety filter like any other; no policy
         * step this period (inference_ns 0, no Q) */
        self->decision_left--;
        memcpy(self->action, self->decision, n);
        t->inference_ns = 0;
        t->has_q = 0;
    } else {
        policy_observation_t ob = {.values = self->obs, .images = self->images,
                                   .task_id = self->task_id};
        policy_extra_t extra = {0};
        int64_t t0 = rt_clock_mono_ns();
        if (policy_step(self->d.policy, &ob, self->action, &extra) != 0) {
            /* a non-finite observation or network output: let the safety
             * filter see a non-finite action, so it holds and counts it;
             * the next period decides again */
            for (int i = 0; i < self->spec->action_dim; i++)
                self->action[i] = NAN;
        } else if (self->spec->action_repeat > 1) {
            memcpy(self->decision, self->action, n);
            self->decision_left = self->spec->action_repeat - 1;
        }
        t->inference_ns = rt_clock_mono_ns() - t0;
        if (t->inference_ns <= 0)
            t->inference_ns = 1; /* "the policy ran" (a coarse clock could read 0) */
        t->has_q = extra.has_q_value;
        t->q = extra.q_value;
    }
    if (self->cfg->teleop) {
        /* the teleoperator's action is executed; the policy's is logged
         * beside it (teleop_input checked its space and size) */
        memcpy(self->policy_action, self->action, n);
        memcpy(self->action, self->teleop.values, n);
    }
}

/* The action through the safety filter into t->cmd; counts holds and clamps
 * and decides whether the arm holds this tick. */
static void safety_phase(loop_t *self, tick_t *t)
{
    hal_safety_result_t res = {0};
    int64_t t0 = rt_clock_mono_ns();
    filter_action(self, &t->hs, &t->cmd, &res);
    t->safety_ns = rt_clock_mono_ns() - t0;
    t->safety_flags = res.flags;
    if (res.hold) {
        self->st.safety_holds++;
        if (!self->safety_hold_prev)
            lp_emit(self, LOOP_EV_SAFETY_HOLD, res.flags, 0);
    } else if (res.flags & (HAL_SAFETY_CLAMPED | HAL_SAFETY_JOINT_LIMIT |
                            HAL_SAFETY_ACCEL_LIMIT)) {
        self->st.safety_clamps++;
    }
    self->safety_hold_prev = res.hold;
    t->hold = res.hold || self->state != LOOP_RUNNING || t->is_last;
}

/* A held step commands zeros and says so in its safety flags. */
static void hold_command(tick_t *t)
{
    t->safety_flags |= HAL_SAFETY_HELD;
    memset(t->cmd.values, 0, sizeof t->cmd.values);
}

/* Fill the log record with the step as the policy saw it (the task info is
 * in it since begin_step). */
static void finish_record(loop_t *self, const tick_t *t)
{
    const config_t *cfg = self->cfg;
    logger_step_t *r = &self->rec;
    r->step = self->step;
    r->n_obs = self->spec->obs_dim;
    memcpy(r->observation, self->obs, sizeof(float) * (size_t)r->n_obs);
    r->policy_action_dim = self->spec->action_dim;
    const float *policy_out = cfg->teleop ? self->policy_action : self->action;
    for (int i = 0; i < r->policy_action_dim; i++)
        r->policy_action[i] = policy_out[i];
    r->action_dim = t->cmd.n;
    for (int i = 0; i < t->cmd.n; i++)
        r->action[i] = (float)t->cmd.values[i];
    r->action_space = (int)self->space;
    r->reward = t->reward;
    r->discount = t->discount;
    r->is_first = (uint8_t)t->first;
    r->is_last = (uint8_t)t->is_last;
    r->is_terminal = (uint8_t)(t->is_last && self->end_terminal);
    r->stale = (uint8_t)t->stale;
    r->held = (uint8_t)t->hold;
    r->safety_flags = t->safety_flags;
    r->has_q_value = (uint8_t)t->has_q;
    r->q_value = t->q;
    r->n_frames = 0;
    for (int i = 0; i < cfg->n_cameras && i < LOGGER_MAX_CAMERAS; i++) {
        const ingest_frame_t *f = t->frames[i];
        if (!f)
            continue;
        logger_frame_ref_t *fr = &r->frames[r->n_frames++];
        lp_copy_name(fr->camera, sizeof fr->camera, cfg->cameras[i].name);
        fr->seq = f->seq;
        fr->capture_time_unix_ns = f->capture_time_unix_ns;
        fr->age_us = us(t->now - self->clock->frame_time(self, f));
    }
    r->tick_mono_ns = t->deadline;
    r->time_unix_ns = self->clock->unix_ns(self, t->now);
    r->inference_us = us(t->inference_ns);
    r->robot_state_seq = t->hs.seq;
    r->teleop_dim = self->teleop.n < LOGGER_MAX_ACTION ? self->teleop.n : LOGGER_MAX_ACTION;
    memcpy(r->teleop_action, self->teleop.values, sizeof(float) * (size_t)r->teleop_dim);
    r->teleop_seq = self->teleop.seq;
    r->shadow = (uint8_t)cfg->shadow;
    r->teleop = (uint8_t)cfg->teleop;
}

/* Hand the step to the logger: camera frames not logged yet, the robot
 * state ([logger] log_robot_state), then the step. A full ring drops and
 * reports it once. */
static void log_push(loop_t *self, tick_t *t)
{
    const config_t *cfg = self->cfg;
    int64_t t0 = rt_clock_mono_ns();
    for (int i = 0; i < cfg->n_cameras && i < LOGGER_MAX_CAMERAS; i++) {
        const ingest_frame_t *f = t->frames[i];
        if (!f || (self->logged_any[i] && self->last_logged_seq[i] == f->seq))
            continue;
        logger_frame_t lf = {
            .camera = cfg->cameras[i].name,
            .width = f->width,
            .height = f->height,
            .encoding = 1, /* RGB8: frames are kept decoded */
            .data = f->pixels,
            .size = (size_t)f->width * f->height * 3,
            .capture_time_unix_ns = f->capture_time_unix_ns,
            .seq = f->seq,
        };
        if (logger_push_frame(self->d.logger, &lf) == 0) {
            self->logged_any[i] = 1;
            self->last_logged_seq[i] = f->seq;
        } else if (!self->drop_reported) {
            lp_emit(self, LOOP_EV_LOG_DROP, 1, 0);
            self->drop_reported = 1;
        }
    }
    if (t->rc == 0 && cfg->log_robot_state) {
        const hal_state_t *hs = &t->hs;
        logger_robot_state_t ls = {.n_joints = hs->n_joints,
                                   .gripper_position = hs->gripper_position,
                                   .gripper_velocity = hs->gripper_velocity,
                                   .grasp = hs->grasp,
                                   .time_unix_ns = hs->time_unix_ns,
                                   .seq = hs->seq};
        memcpy(ls.q, hs->q, sizeof ls.q);
        memcpy(ls.dq, hs->dq, sizeof ls.dq);
        memcpy(ls.ee_pose, hs->ee_pose, sizeof ls.ee_pose);
        logger_push_robot_state(self->d.logger, &ls);
    }
    if (logger_push_step(self->d.logger, &self->rec) != 0 && !self->drop_reported) {
        lp_emit(self, LOOP_EV_LOG_DROP, 0, 0);
        self->drop_reported = 1;
    }
    t->log_push_ns = rt_clock_mono_ns() - t0;
}

/* Count the step; after the last one the episode ends and the loop idles. */
static void end_step(loop_t *self, const tick_t *t)
{
    self->step++;
    self->st.step = self->step;
    if (t->is_last) {
        finish_episode(self);
        if (self->state == LOOP_RUNNING || self->state == LOOP_HOLDING)
            lp_set_state(self, LOOP_IDLE);
    }
}

/* Send the command to the arm (or hold it) through the tick's I/O. */
static void command_phase(loop_t *self, tick_t *t)
{
    int64_t t0 = rt_clock_mono_ns();
    self->io->send(self, t);
    t->hal_ns += rt_clock_mono_ns() - t0;
}

/* The tick's command and Q value into the loop's status. */
static void record_tick(loop_t *self, const tick_t *t)
{
    self->st.action_dim = t->cmd.n;
    self->st.action_space = (int)t->cmd.space;
    if (t->stepped) { /* the step finish_record put in self->rec */
        const logger_step_t *r = &self->rec;
        self->st.has_step = 1;
        self->st.step_policy_dim = r->policy_action_dim;
        memcpy(self->st.step_policy_action, r->policy_action, sizeof r->policy_action);
        self->st.step_teleop_dim = r->teleop_dim;
        memcpy(self->st.step_teleop_action, r->teleop_action, sizeof r->teleop_action);
        self->st.step_reward = r->reward;
        self->st.step_discount = r->discount;
    }
    for (int i = 0; i < t->cmd.n && i < HAL_MAX_ACTION; i++)
        self->st.last_action[i] = t->hold ? 0.0f : (float)t->cmd.values[i];
    if (t->inference_ns > 0) { /* keep the last Q the policy reported */
        self->st.has_q_value = t->has_q;
        self->st.q_value = t->q;
    }
    if (t->rc == 0) {
        self->st.robot_state = t->hs;
        self->st.has_robot_state = 1;
    }
    loop_status_t *st = &self->st;
    if (self->cfg->task_from_hal && self->have_task) {
        st->n_task_info = self->task.n_values;
        for (int i = 0; i < self->task.n_values && i < LOGGER_MAX_TASK_INFO; i++) {
            lp_copy_name(st->task_info_name[i], LOGGER_TASK_NAME, self->task.names[i]);
            st->task_info_value[i] = self->task.values[i];
        }
    } else if (t->stepped) {
        st->n_task_info = self->rec.n_task_info;
        memcpy(st->task_info_name, self->rec.task_info_name, sizeof st->task_info_name);
        memcpy(st->task_info_value, self->rec.task_info_value, sizeof st->task_info_value);
    }
}

/* Between episodes: swap in the policy the service offered (loop_offer_policy)
 * once the one it replaced last time has been taken back. Its spec equals
 * the one the loop was planned for (the service checked), so the plan, the
 * buffers and the safety bounds stay; only the policy, its spec pointer and
 * the identity in the episode header change. RT-safe: two atomic
 * exchanges and fixed-size copies; the old policy is freed by the service. */
static void take_offered_policy(loop_t *self)
{
    if (atomic_load_explicit(&self->retired, memory_order_acquire))
        return;
    policy_t *p = atomic_exchange_explicit(&self->offered, NULL, memory_order_acq_rel);
    if (!p)
        return;
    policy_t *old = self->d.policy;
    self->d.policy = p;
    self->spec = policy_spec(p);
    lp_copy_name(self->episode_info.checkpoint_path, sizeof self->episode_info.checkpoint_path,
              policy_path(p));
    lp_copy_name(self->episode_info.checkpoint_sha256, sizeof self->episode_info.checkpoint_sha256,
              self->spec->sha256);
    lp_copy_name(self->st.model_sha256, sizeof self->st.model_sha256, self->spec->sha256);
    self->st.models_swapped++;
    (void)policy_prepare_thread(p); /* AMX: its first-use trap now, while idle */
    atomic_store_explicit(&self->retired, old, memory_order_release);
    lp_emit(self, LOOP_EV_MODEL_SWAP, (int64_t)self->st.models_swapped, 0);
}

/* One control tick into *t. 0 when no step was made (shadow mode without a
 * new robot state); otherwise 1. */
static int tick(loop_t *self, tick_t *t, int stopping)
{
    if (!self->in_episode && !stopping)
        take_offered_policy(self); /* before a START_EPISODE of this tick */
    lp_take_commands(self, stopping);
    self->clock->sync(self, t, stopping);
    if (!read_state(self, t))
        return 0;
    read_inputs(self, t);
    t->stepped = self->in_episode;
    if (self->in_episode) {
        begin_step(self, t);
        if (!t->stale) {
            policy_phase(self, t);
            safety_phase(self, t);
        } else {
            self->st.stale_steps++;
            self->decision_left = 0; /* after stale input the policy decides afresh */
        }
        if (t->hold)
            hold_command(t);
        finish_record(self, t);
        log_push(self, t);
        end_step(self, t);
    }
    command_phase(self, t);
    record_tick(self, t);
    return 1;
}

static void publish_status(loop_t *self)
{
    self->st.state = self->state;
    unsigned b = rt_tbuf_back(&self->status_tb);
    self->status_slots[b] = self->st;
    rt_tbuf_publish(&self->status_tb);
}

void *lp_thread(void *arg)
{
    loop_t *self = arg;
    const int64_t period = self->io->poll_ns ? self->io->poll_ns : self->period_ns;
    int64_t next = rt_clock_mono_ns() + period;
    int64_t last_wake = 0, last_ping = 0;
    int stopping_ticks = -1; /* >= 0 once stop was asked: ticks spent holding */
    if (self->d.policy)   /* AMX: take the tile unit's first-use trap before the first tick */
        (void)policy_prepare_thread(self->d.policy);
    publish_status(self);
    for (;;) {
        next = self->clock->wait_tick(self, next);
        int64_t wake = rt_clock_mono_ns();
        int stop = atomic_load_explicit(&self->stop, memory_order_acquire);
        if (stop && stopping_ticks < 0)
            stopping_ticks = 0;
        tick_t t = {.deadline = next, .cmd = {.space = self->space, .n = self->cmd_n}, .hold = 1};
        int stepped = tick(self, &t, stop);
        if (stepped)
            self->st.tick_count++;
        if (self->watchdog_interval_ns > 0 && wake - last_ping >= self->watchdog_interval_ns &&
            atomic_load_explicit(&self->watchdog_armed, memory_order_relaxed)) {
            notify_send(self->notify_fd, "WATCHDOG=1");
            last_ping = wake;
        }
        int64_t end = rt_clock_mono_ns();
        if (stepped) {
            uint32_t v[T_SERIES] = {
                [T_PERIOD] = last_wake ? us(wake - last_wake) : us(self->period_ns),
                [T_LATENESS] = us(wake - next),
                [T_INFERENCE] = phase_us(t.inference_ns),
                [T_LOOP] = phase_us(end - wake),
                [T_SAFETY] = phase_us(t.safety_ns),
                [T_HAL] = phase_us(t.hal_ns),
                [T_LOG_PUSH] = phase_us(t.log_push_ns),
            };
            record_timing(self, v);
            last_wake = wake;
        }
        next += period;
        if (end > next) {
            int64_t missed = (end - next) / period + 1;
            if (self->io->count_misses) {
                self->st.deadline_misses += (uint64_t)missed;
                lp_emit(self, LOOP_EV_DEADLINE_MISS, (end - next) / 1000 + period / 1000,
                     (int64_t)self->st.deadline_misses);
            }
            next += missed * period;
        }
        self->status_wall_ns = rt_clock_mono_ns();
        publish_status(self);
        self->clock->published(self);
        if (stopping_ticks >= 0 && self->io->may_exit(self, &stopping_ticks, period))
            break;
    }
    return NULL;
}
