/* The control loop (pacd_loop.h): planning it for a checkpoint and a robot
 * (loop_new, loop_check), destroying it, starting and stopping its thread,
 * the service-side API and the service side of the checkpoint swap. The tick
 * is in pacd_loop_tick.c, the I/O and clocks in pacd_loop_clock.c; what they
 * share is in pacd_loop_impl.h. */
#include "pacd_loop.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hal_cartesian.h"
#include "pacd_loop_impl.h"
#include "pacd_notify.h"
#include "rt_clock.h"
#include "rt_spsc.h"
#include "rt_tbuf.h"

/* The scene's task names <object>_x (so its pose is there); the task is
 * retried while the backend publishes (-EAGAIN). Init-only. */
static int object_known(hal_t *hal, const char *object)
{
    hal_task_t task;
    int rc = -EAGAIN;
    for (int i = 0; i < 1000 && rc == -EAGAIN; i++) {
        rc = hal_read_task(hal, &task);
        if (rc == -EAGAIN)
            rt_clock_sleep_ns(1000000);
    }
    if (rc != 0)
        return 0;
    size_t len = strlen(object);
    for (int i = 0; i < task.n_values; i++)
        if (!strncmp(task.names[i], object, len) && !strcmp(task.names[i] + len, "_x"))
            return 1;
    return 0;
}

static int source_size(const loop_t *self, policy_source_kind_t s)
{
    switch (s) {
    case POLICY_SOURCE_JOINT_POSITIONS:
    case POLICY_SOURCE_JOINT_VELOCITIES: return self->robot->n_joints;
    case POLICY_SOURCE_GRIPPER_POSITION:
    case POLICY_SOURCE_GRIPPER_VELOCITY:
    case POLICY_SOURCE_GRASP: return 1;
    case POLICY_SOURCE_END_EFFECTOR_POSE:
    case POLICY_SOURCE_OBJECT_POSE: return 7;
    case POLICY_SOURCE_GRIPPER_TO_OBJECT: return 3;
    case POLICY_SOURCE_PREVIOUS_ACTION: return self->spec->action_dim;
    case POLICY_SOURCE_CAMERA: break;   /* images are not fields of the vector */
    }
    return -1;
}

/* loop_new; check_only: for loop_check, no HAL needed. */
static loop_t *loop_plan(const loop_deps_t *deps, int check_only, char *err, size_t errlen)
{
    loop_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->d = *deps;
    self->cfg = deps->cfg;
    self->spec = policy_spec(deps->policy);
    self->required = *self->spec;
    self->robot = deps->robot ? deps->robot : hal_driven_robot(deps->hal);
    if (!self->robot || (!deps->hal && !deps->cfg->shadow && !check_only)) {
        snprintf(err, errlen, "internal: the loop needs a robot description and a HAL");
        free(self);
        return NULL;
    }
    self->period_ns = (int64_t)llround(1e9 / self->cfg->rate_hz);
    self->io = lp_choose_io(self->cfg);
    self->clock = lp_choose_clock(self->cfg);
    self->notify_fd = -1;
    self->tick_fd = -1;
    self->state = LOOP_IDLE;
    const policy_spec_t *spec = self->spec;
    const char *ckpt = self->cfg->checkpoint;
    hal_task_t probe;
    if (self->cfg->task_from_hal && !check_only && hal_read_task(deps->hal, &probe) == -ENOTSUP) {
        snprintf(err, errlen, "[task] source = hal, but the %s backend%s has no task signal (the "
                 "mujoco backend with a robosuite Lift scene has one); use source = topic",
                 hal_backend_name(deps->hal), strcmp(hal_backend_name(deps->hal), "mujoco") ? ""
                 : "'s scene");
        free(self);
        return NULL;
    }

    if (self->cfg->sim_clock && !check_only) {
        int rc = hal_instant(deps->hal, &self->instant);
        if (rc == 0 && self->period_ns % self->instant.step_ns) {
            snprintf(err, errlen, "[robot] clock = simulated: the control period (%.3f ms, "
                     "[pacd] rate_hz = %g) is not a whole number of the scene's physics steps "
                     "(%.3f ms): choose a rate whose period is a multiple of it",
                     self->period_ns / 1e6,
                     self->cfg->rate_hz, self->instant.step_ns / 1e6);
            free(self);
            return NULL;
        }
        if (rc != 0) {
            snprintf(err, errlen, "[robot] clock = simulated, but the %s backend was not opened "
                     "stepped (it has no simulated clock): use clock = real",
                     hal_backend_name(deps->hal));
            free(self);
            return NULL;
        }
        self->tick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (self->tick_fd < 0) {
            snprintf(err, errlen, "eventfd: %s", strerror(errno));
            free(self);
            return NULL;
        }
    }

    if (spec->robot[0] && strcmp(spec->robot, self->robot->name)) {
        snprintf(err, errlen, "%s: the checkpoint was trained for robot '%s' but [robot] name = %s",
                 ckpt, spec->robot, self->robot->name);
        goto fail;
    }
    int n = self->robot->n_joints;
    int ad = spec->action_dim;
    if (spec->action_space == POLICY_ACTION_JOINT_VELOCITY && ad == n) {
        self->space = HAL_SPACE_JOINT_VELOCITY;
    } else if (spec->action_space == POLICY_ACTION_JOINT_VELOCITY_GRIPPER && ad == n + 1 &&
               self->robot->has_gripper) {
        self->space = HAL_SPACE_JOINT_VELOCITY_GRIPPER;
    } else if ((spec->action_space == POLICY_ACTION_CARTESIAN_VELOCITY && (ad == 4 || ad == 5)) ||
               (spec->action_space == POLICY_ACTION_CARTESIAN_TWIST && (ad == 6 || ad == 7))) {
        int twist = spec->action_space == POLICY_ACTION_CARTESIAN_TWIST;
        int gripper = ad == (twist ? 7 : 5);
        self->cartesian = 1;
        self->policy_space = twist ? HAL_SPACE_CARTESIAN_TWIST : HAL_SPACE_CARTESIAN_VELOCITY;
        self->space = gripper && self->robot->has_gripper ? HAL_SPACE_JOINT_VELOCITY_GRIPPER
                                                          : HAL_SPACE_JOINT_VELOCITY;
        /* speed bounds from the checkpoint's action spec */
        double v = 0, w = 0;
        for (int i = 0; i < 3; i++)
            v = fmax(v, fmax(fabs(spec->action_low[i]), fabs(spec->action_high[i])));
        for (int i = 3; i < (twist ? 6 : 4); i++)
            w = fmax(w, fmax(fabs(spec->action_low[i]), fabs(spec->action_high[i])));
        self->cart = (hal_cartesian_config_t){.period_s = 1.0 / self->cfg->rate_hz,
                                              .v_max = v, .w_max = w};
        if (self->cfg->has_workspace) {
            memcpy(self->cart.box_min, self->cfg->workspace_min, sizeof self->cart.box_min);
            memcpy(self->cart.box_max, self->cfg->workspace_max, sizeof self->cart.box_max);
        }
        double bmin[3], bmax[3];
        if (hal_cartesian_box(self->robot, &self->cart, bmin, bmax) != 0) {
            snprintf(err, errlen, "%s: the Cartesian workspace box is empty", ckpt);
            goto fail;
        }
    } else {
        snprintf(err, errlen, "%s: action space %d with %d dimensions does not fit robot '%s' "
                 "(%d joints%s): pacd offers joint_velocity (%d), joint_velocity_gripper (%d, "
                 "robots with a gripper), cartesian_velocity (4/5) and cartesian_twist (6/7)",
                 ckpt, (int)spec->action_space, spec->action_dim, self->robot->name, n,
                 self->robot->has_gripper ? ", gripper" : "", n, n + 1);
        goto fail;
    }
    self->cmd_n = n + (self->space == HAL_SPACE_JOINT_VELOCITY_GRIPPER ? 1 : 0);
    if (spec->obs_dim > LOGGER_MAX_OBS || spec->n_fields > LOGGER_MAX_FIELDS ||
        spec->action_dim > LOGGER_MAX_ACTION) {
        snprintf(err, errlen, "%s: observation of %d values / %d fields is larger than the "
                 "logger takes (%d / %d)", ckpt, spec->obs_dim, spec->n_fields, LOGGER_MAX_OBS,
                 LOGGER_MAX_FIELDS);
        goto fail;
    }

    self->obs = calloc((size_t)(spec->obs_dim > 0 ? spec->obs_dim : 1), sizeof(float));
    if (!self->obs)
        goto oom;
    logger_obs_layout_t *lay = &self->episode_info.layout;
    for (int i = 0; i < spec->n_fields; i++) {
        const policy_field_t *f = &spec->fields[i];
        if (f->is_image) {
            const char *cam = f->source + 7; /* "camera/" */
            int ci = -1;
            for (int k = 0; k < self->cfg->n_cameras; k++)
                if (!strcmp(self->cfg->cameras[k].name, cam))
                    ci = k;
            if (ci < 0) {
                snprintf(err, errlen, "%s: observation '%s' needs camera '%s': add a "
                         "[camera.%s] section to the config", ckpt, f->name, cam, cam);
                goto fail;
            }
            const config_camera_t *cc = &self->cfg->cameras[ci];
            if (f->ndim != 3 || f->shape[0] != cc->height || f->shape[1] != cc->width ||
                f->shape[2] != 3) {
                snprintf(err, errlen, "%s: observation '%s' expects images of shape [%d, %d, %d] "
                         "but [camera.%s] is %dx%d RGB", ckpt, f->name, f->shape[0], f->shape[1],
                         f->shape[2], cam, cc->width, cc->height);
                goto fail;
            }
            self->image_camera[self->n_images++] = ci;
            continue;
        }
        field_plan_t *p = &self->fields[self->n_fields];
        p->source = f->source_kind;
        p->size = source_size(self, p->source);
        if (p->size != f->size) {
            snprintf(err, errlen, "%s: observation '%s' (%s) has %d values but robot '%s' "
                     "gives %d", ckpt, f->name, f->source, f->size, self->robot->name, p->size);
            goto fail;
        }
        if (p->source == POLICY_SOURCE_OBJECT_POSE ||
            p->source == POLICY_SOURCE_GRIPPER_TO_OBJECT) {
            const char *object = strchr(f->source, '/') + 1;   /* parsed: "<kind>/<object>" */
            if (!self->cfg->task_from_hal) {
                snprintf(err, errlen, "%s: observation '%s' reads %s, a simulated object's pose "
                         "only a scene's own task gives: set [task] source = hal (mujoco with a "
                         "robosuite Lift scene)", ckpt, f->name, f->source);
                goto fail;
            }
            if (strlen(object) >= sizeof p->object) {
                snprintf(err, errlen, "%s: observation '%s': object name '%s' is longer than %zu",
                         ckpt, f->name, object, sizeof p->object - 1);
                goto fail;
            }
            memcpy(p->object, object, strlen(object) + 1);
            if (!check_only && !object_known(deps->hal, object)) {
                snprintf(err, errlen, "%s: observation '%s' reads %s, but the scene's task has "
                         "no values %s_x .. %s_qz (the mujoco Lift scene's object is 'cube')",
                         ckpt, f->name, f->source, object, object);
                goto fail;
            }
        }
        p->history = f->history > 0 ? f->history : 1;
        p->offset = f->offset;
        if (p->offset < 0 || p->offset + p->history * p->size > spec->obs_dim) {
            snprintf(err, errlen, "%s: observation '%s' lies outside the observation vector",
                     ckpt, f->name);
            goto fail;
        }
        p->hist = calloc((size_t)(p->history * p->size), sizeof(float));
        if (!p->hist)
            goto oom;
        int li = lay->n_fields++;
        snprintf(lay->name[li], LOGGER_NAME, "%s", f->name);
        if (p->history > 1) {
            lay->ndim[li] = 2;
            lay->shape[li][0] = p->history;
            lay->shape[li][1] = p->size;
        } else {
            lay->ndim[li] = 1;
            lay->shape[li][0] = p->size;
        }
        lay->offset[li] = p->offset;
        lay->size[li] = p->history * p->size;
        self->n_fields++;
    }

    self->safety = (hal_safety_config_t){
        .period_s = 1.0 / self->cfg->rate_hz,
        .out_of_spec_factor = self->cfg->out_of_spec_factor,
        .limit_margin = self->cfg->limit_margin_rad,
    };
    self->episode_info.robot = self->robot->name;
    self->episode_info.backend = self->cfg->shadow ? "shadow" : self->cfg->backend;
    lp_copy_name(self->episode_info.checkpoint_path, sizeof self->episode_info.checkpoint_path,
              policy_path(deps->policy) ? policy_path(deps->policy) : self->cfg->checkpoint);
    lp_copy_name(self->episode_info.checkpoint_sha256, sizeof self->episode_info.checkpoint_sha256,
              spec->sha256);
    lp_copy_name(self->st.model_sha256, sizeof self->st.model_sha256, spec->sha256);
    self->episode_info.config_text = self->cfg->text;
    self->episode_info.pacd_version = PACD_VERSION;
    self->episode_info.rate_hz = self->cfg->rate_hz;
    self->episode_info.action_space = (int)self->space;
    self->action_space = (int)(self->cartesian ? self->policy_space : self->space);
    self->episode_info.policy_sampling = self->cfg->policy_sampling;
    self->episode_info.mode = self->cfg->teleop   ? "teleop"
                              : self->cfg->shadow ? "shadow"
                                                  : "control";
    self->episode_info.task_seed = -1;
    self->st.episode_seed = -1;
    if (spec->task_kind == POLICY_TASK_VECTOR) {
        snprintf(err, errlen, "%s: the checkpoint wants a task vector each step; pacd supplies "
                 "task ids only so far ([episode] task_id)", ckpt);
        goto fail;
    }
    if (spec->task_kind == POLICY_TASK_ID &&
        (self->cfg->task_id < 0 || self->cfg->task_id >= spec->task_count)) {
        snprintf(err, errlen, "%s: [episode] task_id = %d but the checkpoint knows tasks 0..%d",
                 ckpt, self->cfg->task_id, spec->task_count - 1);
        goto fail;
    }

    if (rt_spsc_init(&self->commands, sizeof(loop_cmd_t), 16) ||
        rt_spsc_init(&self->events, sizeof(loop_event_t), 256))
        goto oom;
    rt_tbuf_init(&self->status_tb);
    self->window = self->cfg->telemetry_window_ticks;
    for (int k = 0; k < T_SERIES; k++)
        if (!(self->t[k] = calloc((size_t)self->window, sizeof(uint32_t))))
            goto oom;
    self->st.state = LOOP_IDLE;
    self->st.action_dim = spec->action_dim;
    return self;
oom:
    snprintf(err, errlen, "out of memory planning the control loop");
fail:
    loop_destroy(&self);
    return NULL;
}

loop_t *loop_new(const loop_deps_t *deps, char *err, size_t errlen)
{
    return loop_plan(deps, 0, err, errlen);
}

int loop_check(const loop_deps_t *deps, char *err, size_t errlen)
{
    loop_deps_t d = *deps;
    d.hal = NULL;
    loop_t *l = loop_plan(&d, 1, err, errlen);
    if (!l)
        return -EINVAL;
    loop_destroy(&l);
    return 0;
}

void loop_destroy(loop_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    loop_t *self = *self_p;
    loop_stop(self);
    for (int i = 0; i < self->n_fields; i++)
        free(self->fields[i].hist);
    free(self->obs);
    rt_spsc_free(&self->commands);
    rt_spsc_free(&self->events);
    /* offered or retired policies nobody took; the running one is the caller's
     * (loop_policy) */
    policy_t *p = atomic_exchange(&self->offered, NULL);
    policy_destroy(&p);
    p = atomic_exchange(&self->retired, NULL);
    policy_destroy(&p);
    for (int k = 0; k < T_SERIES; k++)
        free((void *)self->t[k]);
    if (self->tick_fd >= 0)
        close(self->tick_fd);
    free(self);
    *self_p = NULL;
}

int loop_start(loop_t *self, uint64_t watchdog_usec)
{
    if (watchdog_usec > 0) {
        self->notify_fd = notify_open();
        self->watchdog_interval_ns = (int64_t)watchdog_usec * 1000 / 4;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    int rt = 0;
    if (self->cfg->rt_priority > 0) {
        struct sched_param sp = {.sched_priority = self->cfg->rt_priority};
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
        pthread_attr_setschedparam(&attr, &sp);
        rt = 1;
    }
    int e = pthread_create(&self->thread, &attr, lp_thread, self);
    if ((e == EPERM || e == EINVAL) && rt) {
        pthread_attr_destroy(&attr);
        pthread_attr_init(&attr);
        loop_event_t ev = {.time_mono_ns = rt_clock_mono_ns(), .code = LOOP_EV_RT_FALLBACK, .a = e};
        rt_spsc_push(&self->events, &ev);
        e = pthread_create(&self->thread, &attr, lp_thread, self);
    }
    pthread_attr_destroy(&attr);
    if (e != 0)
        return -e;
    self->started = 1;
    struct sched_param sp;
    int policy;
    if (pthread_getschedparam(self->thread, &policy, &sp) == 0) {
        self->sched_policy = policy;
        self->sched_priority = policy == SCHED_FIFO || policy == SCHED_RR ? sp.sched_priority : 0;
    }
    return 0;
}

void loop_scheduling(const loop_t *self, int *policy, int *priority)
{
    *policy = self->sched_policy; /* 0 = SCHED_OTHER until loop_start */
    *priority = self->sched_priority;
}

void loop_arm_watchdog(loop_t *self) { atomic_store(&self->watchdog_armed, 1); }

void loop_stop(loop_t *self)
{
    if (!self || !self->started)
        return;
    atomic_store_explicit(&self->stop, 1, memory_order_release);
    pthread_join(self->thread, NULL);
    self->started = 0;
    notify_close(self->notify_fd);
    self->notify_fd = -1;
}

/* ---------------- service side ---------------- */

int loop_submit(loop_t *self, loop_cmd_t *cmd)
{
    cmd->seq = ++self->next_seq;
    return rt_spsc_push(&self->commands, cmd) == 0 ? 0 : -EBUSY;
}

int loop_wait_result(loop_t *self, uint64_t seq, int timeout_ms, loop_result_t *out)
{
    int64_t until = rt_clock_mono_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load_explicit(&self->result_seq, memory_order_acquire) != seq) {
        if (rt_clock_mono_ns() > until)
            return -ETIMEDOUT;
        rt_clock_sleep_ns(1000000);
    }
    *out = self->result;
    return 0;
}

void loop_status(loop_t *self, loop_status_t *out)
{
    int i = rt_tbuf_acquire(&self->status_tb);
    if (i < 0) {
        memset(out, 0, sizeof *out);
        out->state = LOOP_IDLE;
        out->episode_seed = -1;
        return;
    }
    *out = self->status_slots[i];
}

int loop_pop_event(loop_t *self, loop_event_t *ev) { return rt_spsc_pop(&self->events, ev); }

void loop_timings(loop_t *self, loop_timings_t *t)
{
    uint64_t n = atomic_load_explicit(&self->t_count, memory_order_acquire);
    int k = n < (uint64_t)self->window ? (int)n : self->window;
    for (int j = 0; j < k; j++) {
        t->period_us[j] = atomic_load_explicit(&self->t[T_PERIOD][j], memory_order_relaxed);
        t->lateness_us[j] = atomic_load_explicit(&self->t[T_LATENESS][j], memory_order_relaxed);
        t->inference_us[j] = atomic_load_explicit(&self->t[T_INFERENCE][j], memory_order_relaxed);
        t->loop_us[j] = atomic_load_explicit(&self->t[T_LOOP][j], memory_order_relaxed);
        t->safety_us[j] = atomic_load_explicit(&self->t[T_SAFETY][j], memory_order_relaxed);
        t->hal_us[j] = atomic_load_explicit(&self->t[T_HAL][j], memory_order_relaxed);
        t->log_push_us[j] = atomic_load_explicit(&self->t[T_LOG_PUSH][j], memory_order_relaxed);
    }
    t->n = k;
}

int loop_window(const loop_t *self) { return self->window; }

int loop_tick_fd(const loop_t *self) { return self->tick_fd; }

uint64_t loop_status_count(loop_t *self)
{
    if (self->tick_fd >= 0) {
        uint64_t n;
        ssize_t r = read(self->tick_fd, &n, sizeof n); /* clears it; EAGAIN: nothing new */
        (void)r;
    }
    return atomic_load_explicit(&self->status_count, memory_order_acquire);
}

void loop_telemetry_sent(loop_t *self, uint64_t count)
{
    atomic_store_explicit(&self->telemetry_count, count, memory_order_release);
}

const char *loop_fault_text(loop_fault_t fault, int err, char *out, size_t outlen)
{
    const char *what = fault == LOOP_FAULT_HAL_READ      ? "hal read_state failed"
                       : fault == LOOP_FAULT_HAL_COMMAND ? "hal command failed"
                                                         : NULL;
    if (fault == LOOP_FAULT_NONE)
        snprintf(out, outlen, "%s", "");
    else if (what)
        snprintf(out, outlen, "%s: %s", what, strerror(err));
    else
        snprintf(out, outlen, "fault %d", (int)fault);
    return out;
}

/* ---------------- checkpoint swap (service thread) ---------------- */

int loop_policy_compatible(const loop_t *self, const policy_t *candidate, char *err,
                           size_t errlen)
{
    const policy_spec_t *c = policy_spec(candidate);
    if (!self || !c) {
        snprintf(err, errlen, "internal: no loop or no policy");
        return -EINVAL;
    }
    char why[400];
    if (policy_spec_difference(&self->required, c, why, sizeof why)) {
        snprintf(err, errlen, "its spec differs from the one pacd runs: %s. A checkpoint with "
                 "another observation or action spec needs a restart of pacd", why);
        return -EINVAL;
    }
    return 0;
}

int loop_offer_policy(loop_t *self, policy_t **policy_p)
{
    policy_t *old = atomic_exchange_explicit(&self->offered, *policy_p, memory_order_acq_rel);
    *policy_p = NULL;
    int replaced = old != NULL;
    policy_destroy(&old);   /* offered before and never taken: the loop never ran it */
    return replaced;
}

int loop_policy_pending(loop_t *self)
{
    return atomic_load_explicit(&self->offered, memory_order_acquire) != NULL;
}

void loop_reap_policies(loop_t *self)
{
    policy_t *p = atomic_exchange_explicit(&self->retired, NULL, memory_order_acq_rel);
    policy_destroy(&p);
}

policy_t *loop_policy(loop_t *self)
{
    return self ? self->d.policy : NULL;
}
