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
#include "hal_safety.h"
#include "pacd_notify.h"
#include "rt_clock.h"
#include "rt_spsc.h"
#include "rt_tbuf.h"

/* The timing series of the telemetry window (loop_timings). */
enum { T_PERIOD, T_LATENESS, T_INFERENCE, T_LOOP, T_SAFETY, T_HAL, T_LOG_PUSH, T_SERIES };

typedef struct tick tick_t;
typedef struct loop_io loop_io_t;
typedef struct loop_clock loop_clock_t;

/* Simulated clock: the longest wall-clock wait for a tick's inputs (frames,
 * a teleoperator's answer, telemetry sent); after it the tick goes on and the
 * inputs count as stale as usual. */
#define LOOP_SIM_WAIT_NS (2 * RT_CLOCK_NS_PER_S)
/* Simulated clock: frames not there after this long are rendered and sent
 * again (a PUB socket drops what it sends before its subscriber joined). */
#define LOOP_SIM_RESEND_NS (200 * 1000000LL)

/* What the loop copies into a step's log record fits it by construction. */
_Static_assert(INGEST_MAX_TASK_INFO == LOGGER_MAX_TASK_INFO && INGEST_TASK_NAME == LOGGER_TASK_NAME,
               "a Reward's task info is the log record's");
_Static_assert(HAL_TASK_MAX_VALUES <= LOGGER_MAX_TASK_INFO, "a scene's task values fit a step");
_Static_assert(CONFIG_MAX_CAMERAS == LOGGER_MAX_CAMERAS, "every camera has a frame reference");

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

static void copy_name(char *dst, size_t n, const char *src);
static const loop_io_t *choose_io(const config_t *cfg);
static const loop_clock_t *choose_clock(const config_t *cfg);

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
    self->io = choose_io(self->cfg);
    self->clock = choose_clock(self->cfg);
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
    copy_name(self->episode_info.checkpoint_path, sizeof self->episode_info.checkpoint_path,
              policy_path(deps->policy) ? policy_path(deps->policy) : self->cfg->checkpoint);
    copy_name(self->episode_info.checkpoint_sha256, sizeof self->episode_info.checkpoint_sha256,
              spec->sha256);
    copy_name(self->st.model_sha256, sizeof self->st.model_sha256, spec->sha256);
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

/* ---------------- loop thread ---------------- */

static void emit(loop_t *self, loop_event_code_t code, int64_t a, int64_t b)
{
    loop_event_t ev = {.time_mono_ns = rt_clock_mono_ns(), .code = code, .a = a, .b = b};
    memcpy(ev.episode_id, self->episode_id, sizeof ev.episode_id);
    rt_spsc_push(&self->events, &ev); /* full: the event is lost, the loop goes on */
}

static void set_state(loop_t *self, loop_state_t s)
{
    if (self->state == s)
        return;
    emit(self, LOOP_EV_STATE, self->state, s);
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
        emit(self, LOOP_EV_LOG_DROP, 3, 0);
    self->st.episodes++;
    self->st.step = 0;
    memcpy(self->st.episode_id, self->episode_id, sizeof self->st.episode_id);
    emit(self, LOOP_EV_EPISODE_BEGIN, (int64_t)self->max_steps, 0);
    set_state(self, LOOP_RUNNING);
}

static void finish_episode(loop_t *self)
{
    if (logger_end_episode(self->d.logger) != 0)
        emit(self, LOOP_EV_LOG_DROP, 3, 1);
    emit(self, LOOP_EV_EPISODE_END, (int64_t)self->step,
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
        set_state(self, LOOP_HOLDING);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_RESUME:
        if (s != LOOP_HOLDING)
            return reply(self, c, -EINVAL, "resume: nothing is held");
        set_state(self, LOOP_RUNNING);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_ESTOP:
        if (self->in_episode) {
            request_end(self, LOOP_END_ESTOP);
            self->end_terminal = 0;
        }
        set_state(self, LOOP_ESTOPPED);
        return reply(self, c, 0, NULL);
    case LOOP_CMD_CLEAR_ESTOP:
        if (s != LOOP_ESTOPPED && s != LOOP_FAULT)
            return reply(self, c, -EINVAL, "clear_estop: not e-stopped or in fault");
        self->st.fault = LOOP_FAULT_NONE;
        self->st.fault_errno = 0;
        set_state(self, self->in_episode ? LOOP_HOLDING : LOOP_IDLE);
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
static void remember_action(loop_t *self, const hal_command_t *cmd)
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
static void copy_name(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

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

/* Apply every queued command; a stopping loop ends the open episode. */
static void take_commands(loop_t *self, int stopping)
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
            emit(self, LOOP_EV_HAL_ERROR, t->rc, 0);
            set_state(self, LOOP_FAULT);
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
            emit(self, LOOP_EV_STALE_BEGIN, t->stale_input, t->stale_age / 1000);
        else
            emit(self, LOOP_EV_STALE_END, 0, 0);
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
                copy_name(self->rec.task_info_name[i], LOGGER_TASK_NAME, self->task.names[i]);
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
            emit(self, LOOP_EV_SAFETY_HOLD, res.flags, 0);
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
        copy_name(fr->camera, sizeof fr->camera, cfg->cameras[i].name);
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
            emit(self, LOOP_EV_LOG_DROP, 1, 0);
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
        emit(self, LOOP_EV_LOG_DROP, 0, 0);
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
            set_state(self, LOOP_IDLE);
    }
}

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
        emit(self, LOOP_EV_HAL_ERROR, crc, 1);
        set_state(self, LOOP_FAULT);
        hal_hold(self->d.hal);
    }
    remember_action(self, &t->cmd);
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
        remember_action(self, &t->cmd);
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
        emit(self, LOOP_EV_HAL_ERROR, rc, 1);
        set_state(self, LOOP_FAULT);
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

static const loop_io_t *choose_io(const config_t *cfg)
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

static void take_commands(loop_t *self, int stopping);

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
        take_commands(self, stopping);
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

static const loop_clock_t *choose_clock(const config_t *cfg)
{
    return cfg->sim_clock && !cfg->shadow ? &sim_clock : &real_clock;
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
            copy_name(st->task_info_name[i], LOGGER_TASK_NAME, self->task.names[i]);
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
    copy_name(self->episode_info.checkpoint_path, sizeof self->episode_info.checkpoint_path,
              policy_path(p));
    copy_name(self->episode_info.checkpoint_sha256, sizeof self->episode_info.checkpoint_sha256,
              self->spec->sha256);
    copy_name(self->st.model_sha256, sizeof self->st.model_sha256, self->spec->sha256);
    self->st.models_swapped++;
    (void)policy_prepare_thread(p); /* AMX: its first-use trap now, while idle */
    atomic_store_explicit(&self->retired, old, memory_order_release);
    emit(self, LOOP_EV_MODEL_SWAP, (int64_t)self->st.models_swapped, 0);
}

/* One control tick into *t. 0 when no step was made (shadow mode without a
 * new robot state); otherwise 1. */
static int tick(loop_t *self, tick_t *t, int stopping)
{
    if (!self->in_episode && !stopping)
        take_offered_policy(self); /* before a START_EPISODE of this tick */
    take_commands(self, stopping);
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

static void *loop_thread(void *arg)
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
                emit(self, LOOP_EV_DEADLINE_MISS, (end - next) / 1000 + period / 1000,
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
    int e = pthread_create(&self->thread, &attr, loop_thread, self);
    if ((e == EPERM || e == EINVAL) && rt) {
        pthread_attr_destroy(&attr);
        pthread_attr_init(&attr);
        loop_event_t ev = {.time_mono_ns = rt_clock_mono_ns(), .code = LOOP_EV_RT_FALLBACK, .a = e};
        rt_spsc_push(&self->events, &ev);
        e = pthread_create(&self->thread, &attr, loop_thread, self);
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
