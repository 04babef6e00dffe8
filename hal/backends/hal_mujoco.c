/* hal_mujoco — the `mujoco` backend: MuJoCo physics in its own thread at the
 * model's timestep, cameras rendered offscreen and published over ZeroMQ.
 *
 * Physics thread (absolute CLOCK_MONOTONIC deadlines, one mj_step per
 * timestep, catch-up of missed steps up to 0.1 s):
 *   - joint velocity target = command clamped to +-dq_max (0 while holding or
 *     after the watchdog), ramped at ddq_max (so a hold decelerates within
 *     ddq_max) and braked so that the reference stops at q_min/q_max;
 *   - a position reference integrated from that velocity, kept inside the
 *     limits; position actuators (menagerie Panda and Sawyer): ctrl = the
 *     reference; velocity actuators (robosuite Sawyer): ctrl = the velocity
 *     plus 10/s times the position error (else weak servos drift);
 *   - gravity compensation on the arm joints (qfrc_applied = qfrc_bias), as
 *     the real arms' controllers and robosuite do;
 *   - gripper (robots with one): an opening target integrated from the
 *     command (fraction of gripper_speed), sent to the gripper actuator;
 *   - state published lock-free (rt_seqbox.h) after every step; a snapshot
 *     of qpos/qvel for the render thread under a mutex the physics thread
 *     only try-locks (it never waits).
 * The thread loop, the hold/watchdog decision, mailboxes, counters and the
 * ops other than destroy are the shared backend core (hal_backend.c); the
 * hooks here set the controls and step MuJoCo.
 * Render thread (render_rate_hz, default 20 Hz): copies the latest snapshot,
 * runs the kinematics, renders each camera (EGL surfaceless), publishes
 * CameraFrame on the camera endpoint and RobotState + Reward on the state
 * endpoint, with the snapshot's time as the capture time.
 * Stepped mode (hal_options_t.stepped, the simulated clock): neither thread
 * runs; one stepper thread owns the physics and the renderer and waits for
 * hal_advance (a whole number of physics steps with the newest command, then
 * the state, the task and the rendered frames published before it returns)
 * and for hal_reset. Simulated time stands still in between. */
#include "hal.h"
#include "hal_backend.h"
#include "hal_mujoco.h"
#include "hal_mujoco_util.h"
#include "rt_seqbox.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define MJ_MAX_CAMERAS 8
#define MJ_CATCHUP_S 0.1
#define MJ_VEL_POS_GAIN 10.0 /* 1/s: velocity actuators track the integrated position */
#define LIFT_XY_RANGE_M 0.03 /* robosuite 0.1 Lift: UniformRandomSampler +-0.03 m */

typedef struct {
    double cube_height; /* m, NaN without cube */
    double cube_pose[7]; /* base frame: x y z m, qw qx qy qz */
    int64_t time_mono_ns;
} mj_task_t;

typedef struct {
    hal_backend_core_t core; /* first: hal->impl points at both; core.robot
                                is the description driven */
    hal_mjmap_t map;
    mjModel *m;
    mjData *d;  /* physics thread */
    mjData *rd; /* render thread */
    int64_t render_period_ns;
    double initial_q[HAL_MAX_JOINTS];
    uint64_t seed;

    int n_cameras;
    int cam_id[MJ_MAX_CAMERAS];
    char cam_name[MJ_MAX_CAMERAS][64];
    int width, height;
    void *zctx, *cam_sock, *state_sock;
    uint8_t *rgb, *pack;
    size_t pack_cap;

    pthread_t render;
    int render_started;
    atomic_int render_status; /* 0 starting, 1 ok, <0 failed */
    char render_err[256];

    rt_seqbox_t task_box;
    _Atomic uint64_t n_frames;

    /* physics thread */
    double q_ref[HAL_MAX_JOINTS], v[HAL_MAX_JOINTS];
    double g_target;
    uint64_t n_resets_done;
    int at_limit[HAL_MAX_JOINTS];

    /* stepped mode: hal_advance hands the stepper thread (render) a request
     * under step_mu and waits on done_cv */
    pthread_mutex_t step_mu;
    pthread_cond_t step_cv, done_cv;
    uint64_t step_requests, step_done; /* under step_mu */
    int64_t step_request_ns;           /* under step_mu */
    int64_t sim_t;                     /* stepper thread: simulated time, ns */
    uint64_t frame_seq;                /* stepper thread */
    rt_seqbox_t instant_box;           /* hal_instant_t, written by the stepper */

    /* snapshot for the render thread */
    pthread_mutex_t snap_mu;
    mjtNum *snap_qpos, *snap_qvel;
    hal_state_t snap_state;
    uint64_t snap_count;
} mj_t;

_Static_assert(offsetof(mj_t, core) == 0, "the core comes first");

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *x, double lo, double hi)
{
    return lo + (hi - lo) * (double)(splitmix64(x) >> 11) / (double)(1ULL << 53);
}

/* Full opening the scene's fingers can be driven to: each finger joint's
 * range, within its own position actuator's ctrlrange when it has one
 * (robosuite: the servos stop the fingers 0.023 m from closed, short of the
 * joint range). */
static double gripper_open_travel(const mj_t *mj)
{
    const mjModel *m = mj->m;
    double travel = 0;
    for (int f = 0; f < 2; f++) {
        int j = -1;
        for (int k = 0; k < m->njnt; k++)
            if (m->jnt_qposadr[k] == mj->map.finger_qpos[f])
                j = k;
        if (j < 0)
            continue;
        double lo = m->jnt_range[2 * j], hi = m->jnt_range[2 * j + 1];
        int a = mj->map.gripper_act_fingers[f];
        if (a >= 0 && m->actuator_ctrllimited[a]) {
            lo = fmax(lo, m->actuator_ctrlrange[2 * a]);
            hi = fmin(hi, m->actuator_ctrlrange[2 * a + 1]);
        }
        if (hi > lo)
            travel += hi - lo;
    }
    return travel;
}

static void set_gripper_ctrl(mj_t *mj)
{
    const hal_mjmap_t *map = &mj->map;
    if (!map->has_gripper)
        return;
    if (map->gripper_act >= 0) {
        double top = mj->m->actuator_ctrlrange[2 * map->gripper_act + 1];
        double full = mj->core.robot->has_gripper ? mj->core.robot->gripper_max : gripper_open_travel(mj);
        mj->d->ctrl[map->gripper_act] = full > 0 ? mj->g_target / full * top : top;
    }
    for (int f = 0; f < 2; f++)
        if (map->gripper_act_fingers[f] >= 0)
            mj->d->ctrl[map->gripper_act_fingers[f]] =
                map->finger_closed[f] + map->finger_sign[f] * mj->g_target / 2;
}

/* Home keyframe (or the model's initial state), arm at initial_q/q_home, the
 * Lift cube moved by the randomisation drawn from rng. Physics thread or
 * init. */
static void mj_go_home(mj_t *mj, const double *q, uint64_t rng)
{
    const mjModel *m = mj->m;
    mjData *d = mj->d;
    int key = mj_name2id(m, mjOBJ_KEY, "home");
    if (key >= 0)
        mj_resetDataKeyframe(m, d, key);
    else
        mj_resetData(m, d);
    for (int i = 0; i < mj->map.n_joints; i++) {
        d->qpos[mj->map.qpos[i]] = q[i];
        d->qvel[mj->map.dof[i]] = 0;
        mj->q_ref[i] = q[i];
        mj->v[i] = 0;
        mj->at_limit[i] = 0;
        int a = mj->map.act[i];
        d->ctrl[a] = mj->map.act_kind[i] == HAL_MJ_ACT_POSITION ? q[i] : 0.0;
    }
    mj->g_target = mj->core.robot->has_gripper ? mj->core.robot->gripper_max : gripper_open_travel(mj);
    if (mj->map.has_gripper)
        for (int f = 0; f < 2; f++)
            d->qpos[mj->map.finger_qpos[f]] =
                mj->map.finger_closed[f] + mj->map.finger_sign[f] * mj->g_target / 2;
    set_gripper_ctrl(mj);
    if (mj->map.cube_qpos >= 0) {
        int a = mj->map.cube_qpos;
        d->qpos[a + 0] += uniform(&rng, -LIFT_XY_RANGE_M, LIFT_XY_RANGE_M);
        d->qpos[a + 1] += uniform(&rng, -LIFT_XY_RANGE_M, LIFT_XY_RANGE_M);
        double yaw = uniform(&rng, 0, 2 * M_PI);
        d->qpos[a + 3] = cos(yaw / 2);
        d->qpos[a + 4] = 0;
        d->qpos[a + 5] = 0;
        d->qpos[a + 6] = sin(yaw / 2);
    }
    mj_forward(m, d);
}

static void mj_reset(hal_backend_core_t *core)
{
    mj_t *mj = (mj_t *)core;
    mj->n_resets_done++;
    /* an episode's seed alone, or the options' seed and the reset count */
    uint64_t rng = atomic_load_explicit(&core->reset_has_seed, memory_order_relaxed)
                       ? atomic_load_explicit(&core->reset_seed, memory_order_relaxed)
                       : mj->seed ^ (0x51ed270b27a5b3c1ULL * (mj->n_resets_done + 1));
    mj_go_home(mj, core->robot->q_home, rng);
}

static void mj_fill_state(hal_backend_core_t *core, hal_state_t *st)
{
    mj_t *mj = (mj_t *)core;
    hal_mjmap_read(&mj->map, mj->m, mj->d, core->robot, st);
}

/* After each state: the task mailbox, and the render thread's snapshot
 * (try-locked: the physics thread never waits). */
static void mj_published(hal_backend_core_t *core, const hal_state_t *st)
{
    mj_t *mj = (mj_t *)core;
    mj_task_t task = {.cube_height = hal_mjmap_cube_height(&mj->map, mj->d),
                      .time_mono_ns = st->time_mono_ns};
    hal_mjmap_cube_pose(&mj->map, mj->d, task.cube_pose);
    rt_seqbox_write(&mj->task_box, &task, sizeof task);
    if (pthread_mutex_trylock(&mj->snap_mu) == 0) {
        memcpy(mj->snap_qpos, mj->d->qpos, sizeof(mjtNum) * mj->m->nq);
        memcpy(mj->snap_qvel, mj->d->qvel, sizeof(mjtNum) * mj->m->nv);
        mj->snap_state = *st;
        mj->snap_count++;
        pthread_mutex_unlock(&mj->snap_mu);
    }
}

/* One physics step ending at t. */
static void mj_tick(hal_backend_core_t *core, int64_t t, int holding)
{
    (void)t;
    mj_t *mj = (mj_t *)core;
    const hal_robot_t *r = core->robot;
    const mjModel *m = mj->m;
    mjData *d = mj->d;
    const double dt = m->opt.timestep;
    const hal_backend_cmd_t *c = &core->cmd;

    for (int i = 0; i < mj->map.n_joints; i++) {
        double target = holding ? 0.0 : fmin(fmax(c->dq[i], -r->dq_max[i]), r->dq_max[i]);
        double a = r->ddq_max[i];
        double dv = fmin(fmax(target - mj->v[i], -a * dt), a * dt);
        double v = mj->v[i] + dv;
        /* reference for the limit guard: the position target, or the
         * measured position for velocity actuators */
        double qr = mj->q_ref[i];
        double room = v > 0 ? r->q_max[i] - qr : qr - r->q_min[i];
        double vmax = room > 0 ? sqrt(2 * a * room) : 0.0;
        int stopped = 0;
        if (fabs(v) > vmax) {
            v = copysign(vmax, v);
            stopped = vmax == 0.0;
        }
        if (stopped && !mj->at_limit[i])
            hal_backend_count(&core->n_limit_stops);
        mj->at_limit[i] = stopped;
        mj->v[i] = v;
        mj->q_ref[i] = fmin(fmax(mj->q_ref[i] + v * dt, r->q_min[i]), r->q_max[i]);
        if (mj->map.act_kind[i] == HAL_MJ_ACT_POSITION)
            d->ctrl[mj->map.act[i]] = mj->q_ref[i];
        else /* velocity servo with a position correction, so joints do not drift */
            d->ctrl[mj->map.act[i]] =
                v + MJ_VEL_POS_GAIN * (mj->q_ref[i] - d->qpos[mj->map.qpos[i]]);
        d->qfrc_applied[mj->map.dof[i]] = d->qfrc_bias[mj->map.dof[i]];
    }
    if (r->has_gripper && mj->map.has_gripper) {
        double gv = (!holding && c->has_gripper) ? fmin(fmax(c->gripper, -1), 1) * r->gripper_speed
                                                  : 0.0;
        mj->g_target = fmin(fmax(mj->g_target + gv * dt, 0.0), r->gripper_max);
        set_gripper_ctrl(mj);
    }
    mj_step(m, d);
}

static const hal_backend_hooks_t mj_hooks = {
    .reset = mj_reset,
    .step = mj_tick,
    .fill_state = mj_fill_state,
    .published = mj_published,
};

/* Render every camera from mj->rd (its qpos/qvel set by the caller) and
 * publish the frames (seq frame_seq), the state st and, in the Lift scene,
 * the reward. Render or stepper thread. */
static void render_publish(mj_t *mj, hal_mjrender_t *rend, const hal_state_t *st,
                           uint64_t frame_seq)
{
    mj_kinematics(mj->m, mj->rd);
    mj_camlight(mj->m, mj->rd);
    for (int c = 0; c < mj->n_cameras; c++) {
        if (hal_mjrender_rgb(rend, mj->m, mj->rd, mj->cam_id[c], mj->rgb) == 0) {
            hal_mjpub_camera(mj->cam_sock, mj->cam_name[c], mj->width, mj->height, mj->rgb,
                             st->time_unix_ns, frame_seq, mj->pack, mj->pack_cap);
            hal_backend_count(&mj->n_frames);
        }
    }
    hal_mjpub_state(mj->state_sock, mj->core.robot->name, st);
    double h = hal_mjmap_cube_height(&mj->map, mj->rd);
    if (isfinite(h))
        hal_mjpub_reward(mj->state_sock, h > HAL_MJ_LIFT_SUCCESS_M ? 1.0f : 0.0f, 1.0f, 0,
                         st->time_unix_ns, h);
}

static void *render_thread(void *arg)
{
    mj_t *mj = arg;
    hal_mjrender_t *rend = NULL;
    if (mj->n_cameras > 0) {
        rend = hal_mjrender_new(mj->m, mj->width, mj->height, mj->render_err,
                                sizeof mj->render_err);
        if (!rend) {
            atomic_store_explicit(&mj->render_status, -1, memory_order_release);
            return NULL;
        }
    }
    atomic_store_explicit(&mj->render_status, 1, memory_order_release);
    uint64_t frame_seq = 0, last_snap = 0;
    int64_t t = rt_clock_mono_ns();
    while (atomic_load_explicit(&mj->core.running, memory_order_acquire)) {
        t += mj->render_period_ns;
        int64_t now = rt_clock_mono_ns();
        if (now - t > mj->render_period_ns)
            t = now; /* fell behind (slow rendering): no burst of frames */
        rt_clock_sleep_until(t);
        hal_state_t st;
        pthread_mutex_lock(&mj->snap_mu);
        uint64_t snap = mj->snap_count;
        memcpy(mj->rd->qpos, mj->snap_qpos, sizeof(mjtNum) * mj->m->nq);
        memcpy(mj->rd->qvel, mj->snap_qvel, sizeof(mjtNum) * mj->m->nv);
        st = mj->snap_state;
        pthread_mutex_unlock(&mj->snap_mu);
        if (snap == last_snap)
            continue; /* physics has not moved on */
        last_snap = snap;
        render_publish(mj, rend, &st, ++frame_seq);
    }
    hal_mjrender_destroy(&rend);
    return NULL;
}

/* Stepped mode: the current instant into the mailbox. Stepper thread, or
 * init before it starts. */
static void store_instant(mj_t *mj)
{
    hal_instant_t in = {.time_ns = mj->sim_t, .unix_offset_ns = mj->core.unix_offset_ns,
                        .step_ns = mj->core.period_ns, .frame_seq = mj->frame_seq};
    rt_seqbox_write(&mj->instant_box, &in, sizeof in);
}

/* Stepped mode: the one thread that steps the physics and renders. Waits
 * for hal_advance requests, and every millisecond looks for a reset. */
static void *stepper_thread(void *arg)
{
    mj_t *mj = arg;
    hal_mjrender_t *rend = NULL;
    if (mj->n_cameras > 0) {
        rend = hal_mjrender_new(mj->m, mj->width, mj->height, mj->render_err,
                                sizeof mj->render_err);
        if (!rend) {
            atomic_store_explicit(&mj->render_status, -1, memory_order_release);
            return NULL;
        }
    }
    atomic_store_explicit(&mj->render_status, 1, memory_order_release);
    uint64_t served = 0;
    for (;;) {
        pthread_mutex_lock(&mj->step_mu);
        if (mj->step_requests == served &&
            atomic_load_explicit(&mj->core.running, memory_order_acquire)) {
            struct timespec until = rt_clock_timespec(rt_clock_mono_ns() + 1000000);
            pthread_cond_timedwait(&mj->step_cv, &mj->step_mu, &until);
        }
        uint64_t request = mj->step_requests;
        int64_t ns = mj->step_request_ns;
        pthread_mutex_unlock(&mj->step_mu);
        if (!atomic_load_explicit(&mj->core.running, memory_order_acquire))
            break;
        if (hal_backend_stepped_reset(&mj->core, mj->sim_t))
            store_instant(mj);
        if (request == served)
            continue;
        hal_backend_stepped_run(&mj->core, &mj->sim_t, ns / mj->core.period_ns);
        if (mj->n_cameras > 0 || mj->state_sock) {
            hal_state_t st;
            if (rt_seqbox_read(&mj->core.state_box, &st, sizeof st) == 0) {
                memcpy(mj->rd->qpos, mj->d->qpos, sizeof(mjtNum) * mj->m->nq);
                memcpy(mj->rd->qvel, mj->d->qvel, sizeof(mjtNum) * mj->m->nv);
                render_publish(mj, rend, &st, ++mj->frame_seq);
            }
        }
        store_instant(mj);
        served = request;
        pthread_mutex_lock(&mj->step_mu);
        mj->step_done = request;
        pthread_cond_broadcast(&mj->done_cv);
        pthread_mutex_unlock(&mj->step_mu);
    }
    hal_mjrender_destroy(&rend);
    /* a caller still waiting in hal_advance returns */
    pthread_mutex_lock(&mj->step_mu);
    mj->step_done = mj->step_requests;
    pthread_cond_broadcast(&mj->done_cv);
    pthread_mutex_unlock(&mj->step_mu);
    return NULL;
}

/* ---- ops ---- */

static void mj_free(mj_t *mj)
{
    if (!mj)
        return;
    if (mj->cam_sock)
        zmq_close(mj->cam_sock);
    if (mj->state_sock)
        zmq_close(mj->state_sock);
    if (mj->zctx)
        zmq_ctx_term(mj->zctx);
    pthread_mutex_destroy(&mj->snap_mu);
    pthread_mutex_destroy(&mj->step_mu);
    pthread_cond_destroy(&mj->step_cv);
    pthread_cond_destroy(&mj->done_cv);
    free(mj->snap_qpos);
    free(mj->snap_qvel);
    free(mj->rgb);
    free(mj->pack);
    if (mj->rd)
        mj_deleteData(mj->rd);
    if (mj->d)
        mj_deleteData(mj->d);
    if (mj->m)
        mj_deleteModel(mj->m);
    free(mj);
}

static void mj_stop(mj_t *mj)
{
    hal_backend_stop(&mj->core); /* running = 0, join physics */
    if (mj->render_started)
        pthread_join(mj->render, NULL);
    mj->render_started = 0;
}

static void mjb_destroy(hal_t *self)
{
    mj_t *mj = self->impl;
    if (!mj)
        return;
    mj_stop(mj);
    mj_free(mj);
    self->impl = NULL;
}

/* The Lift task of the scene (docs/mujoco.md): reward, success, the cube's
 * height above the table and its pose in the base frame. RT-safe. */
static int mjb_read_task(hal_t *self, hal_task_t *out)
{
    static const char *const names[HAL_TASK_MAX_VALUES] = {
        "cube_height_m", "cube_x", "cube_y", "cube_z", "cube_qw", "cube_qx", "cube_qy", "cube_qz"};
    mj_t *mj = self->impl;
    mj_task_t task;
    int rc = rt_seqbox_read(&mj->task_box, &task, sizeof task);
    if (rc != 0)
        return rc;
    if (!isfinite(task.cube_height))
        return -ENOTSUP;
    out->success = task.cube_height > HAL_MJ_LIFT_SUCCESS_M;
    out->reward = out->success ? 1.0 : 0.0;
    out->n_values = HAL_TASK_MAX_VALUES;
    out->values[0] = task.cube_height;
    for (int i = 0; i < 7; i++)
        out->values[1 + i] = task.cube_pose[i];
    for (int i = 0; i < HAL_TASK_MAX_VALUES; i++)
        out->names[i] = names[i];
    out->time_mono_ns = task.time_mono_ns;
    return 0;
}

/* Stepped mode: hand the stepper thread a request and wait for it. */
static int mjb_advance(hal_t *self, int64_t duration_ns, hal_instant_t *out);

static int mjb_instant(hal_t *self, hal_instant_t *out)
{
    mj_t *mj = self->impl;
    if (!mj->core.stepped)
        return -ENOTSUP;
    return rt_seqbox_read(&mj->instant_box, out, sizeof *out);
}

static int mjb_advance(hal_t *self, int64_t duration_ns, hal_instant_t *out)
{
    mj_t *mj = self->impl;
    if (!mj->core.stepped)
        return -ENOTSUP;
    if (duration_ns % mj->core.period_ns)
        return -EINVAL;
    pthread_mutex_lock(&mj->step_mu);
    uint64_t want = ++mj->step_requests;
    mj->step_request_ns = duration_ns;
    pthread_cond_signal(&mj->step_cv);
    while (mj->step_done < want)
        pthread_cond_wait(&mj->done_cv, &mj->step_mu);
    pthread_mutex_unlock(&mj->step_mu);
    if (!out)
        return 0;
    int rc;
    while ((rc = mjb_instant(self, out)) == -EAGAIN)
        ;
    return rc;
}

static const hal_ops_t mj_ops = {
    .api_version = HAL_API_VERSION,
    .name = "mujoco",
    .read_state = hal_backend_read_state,
    .command = hal_backend_command,
    .hold = hal_backend_hold,
    .reset = hal_backend_reset,
    .read_task = mjb_read_task,
    .destroy = mjb_destroy,
    .counters = hal_backend_counters,
    .advance = mjb_advance,
    .instant = mjb_instant,
};

static int parse_cameras(mj_t *mj, const char *list, char *err, size_t errlen)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        if (mj->n_cameras == MJ_MAX_CAMERAS || len >= sizeof mj->cam_name[0]) {
            pacd_errf(err, errlen, "hal mujoco: too many cameras or a name too long in "
                                   "'%s'; at most 8 names of < 64 characters",
                      list);
            return -EINVAL;
        }
        char *name = mj->cam_name[mj->n_cameras];
        memcpy(name, p, len);
        name[len] = 0;
        int id = hal_mjrender_camera(mj->m, name);
        if (id < 0) {
            pacd_errf(err, errlen, "hal mujoco: the scene has no camera '%s'; name one of "
                                   "its <camera> elements",
                      name);
            return -EINVAL;
        }
        mj->cam_id[mj->n_cameras++] = id;
        p += len;
    }
    return 0;
}

static void *open_pub(mj_t *mj, const hal_mujoco_options_t *o, const char *endpoint, char *err,
                      size_t errlen)
{
    void *s = zmq_socket(mj->zctx, ZMQ_PUB);
    if (!s) {
        pacd_errf(err, errlen, "hal mujoco: cannot create a ZeroMQ socket: %s",
                  zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = 0, hwm = 16;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (o->curve_server_key && o->curve_public_key && o->curve_secret_key &&
        (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, o->curve_server_key, 40) != 0 ||
         zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, o->curve_public_key, 40) != 0 ||
         zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, o->curve_secret_key, 40) != 0)) {
        pacd_errf(err, errlen, "hal mujoco: cannot set the CURVE keys: %s",
                  zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    if (zmq_connect(s, endpoint) != 0) {
        pacd_errf(err, errlen, "hal mujoco: cannot connect to '%s': %s; give an endpoint "
                               "like tcp://127.0.0.1:5555 or ipc:///run/pacd/cam",
                  endpoint, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int hal_mujoco_open(hal_t *hal, const hal_options_t *options, const void *backend_options,
                    char *err, size_t errlen)
{
    const hal_robot_t *r = hal->robot;
    const hal_mujoco_options_t defaults = {0};
    const hal_mujoco_options_t *o = backend_options ? backend_options : &defaults;
    if (!o->scene || !o->scene[0]) {
        pacd_errf(err, errlen, "hal mujoco: no scene given; set [robot] scene to a MuJoCo "
                               "XML file (e.g. menagerie .../scene_cam.xml)");
        return -EINVAL;
    }
    if (o->render_rate_hz != 0 && !(o->render_rate_hz >= 1 && o->render_rate_hz <= 100)) {
        pacd_errf(err, errlen, "hal mujoco: render_rate_hz = %g out of range; use 1..100 "
                               "(0 = 20)",
                  o->render_rate_hz);
        return -EINVAL;
    }
    if (o->physics_rt_priority < 0 || o->physics_rt_priority > 99) {
        pacd_errf(err, errlen, "hal mujoco: physics_rt_priority = %d; use 0 (normal) or "
                               "1..99 (SCHED_FIFO)",
                  o->physics_rt_priority);
        return -EINVAL;
    }
    int w = o->camera_width ? o->camera_width : 128, h = o->camera_height ? o->camera_height : 128;
    if (w < 1 || h < 1 || w > 4096 || h > 4096) {
        pacd_errf(err, errlen, "hal mujoco: camera size %dx%d out of range; 1..4096", w, h);
        return -EINVAL;
    }
    mj_t *mj = calloc(1, sizeof *mj);
    if (!mj) {
        pacd_errf(err, errlen, "hal mujoco: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&mj->snap_mu, NULL);
    pthread_mutex_init(&mj->step_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mj->step_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&mj->done_cv, NULL);
    mj->width = w;
    mj->height = h;
    mj->seed = o->seed;
    mj->render_period_ns = llround(1e9 / (o->render_rate_hz ? o->render_rate_hz : 20.0));
    char mjerr[512] = "";
    mj->m = mj_loadXML(o->scene, NULL, mjerr, sizeof mjerr);
    if (!mj->m) {
        pacd_errf(err, errlen, "hal mujoco: cannot load scene '%s': %s; check the path", o->scene,
                  mjerr);
        goto fail;
    }
    if (!(mj->m->opt.timestep >= 1e-4 && mj->m->opt.timestep <= 0.05)) {
        pacd_errf(err, errlen, "hal mujoco: model timestep %g s is outside 0.1..50 ms",
                  mj->m->opt.timestep);
        goto fail;
    }
    if (hal_mjmap_init(&mj->map, mj->m, r, o->ee_site, err, errlen) != 0)
        goto fail;
    /* the description this scene is: a gripper the backend can drive makes
     * a gripper-less description its gripper variant (robosuite Sawyer) */
    int scene_gripper = mj->map.has_gripper &&
                        (mj->map.gripper_act >= 0 || (mj->map.gripper_act_fingers[0] >= 0 &&
                                                      mj->map.gripper_act_fingers[1] >= 0));
    if (!r->has_gripper && scene_gripper && !options->fixed_robot && hal_robot_variant(r, 1))
        r = hal_robot_variant(r, 1);
    if (r->has_gripper && !scene_gripper) {
        pacd_errf(err, errlen, "hal mujoco: robot %s is described with a gripper but the "
                               "scene '%s' has no gripper pacd can drive (finger joints and "
                               "their actuators); use a scene with the gripper or the "
                               "description without one ([robot] gripper = auto or no)",
                  r->name, o->scene);
        goto fail;
    }
    if (parse_cameras(mj, o->cameras, err, errlen) != 0)
        goto fail;
    if (!o->camera_endpoint)
        mj->n_cameras = 0; /* names checked, but nowhere to send frames: no rendering */
    mj->d = mj_makeData(mj->m);
    mj->rd = mj_makeData(mj->m);
    mj->snap_qpos = calloc((size_t)mj->m->nq + 1, sizeof(mjtNum));
    mj->snap_qvel = calloc((size_t)mj->m->nv + 1, sizeof(mjtNum));
    mj->pack_cap = (size_t)w * h * 3 + 256;
    mj->rgb = malloc((size_t)w * h * 3);
    mj->pack = malloc(mj->pack_cap);
    if (!mj->d || !mj->rd || !mj->snap_qpos || !mj->snap_qvel || !mj->rgb || !mj->pack) {
        pacd_errf(err, errlen, "hal mujoco: out of memory");
        goto fail;
    }
    const double *q0 = options->initial_q ? options->initial_q : r->q_home;
    for (int i = 0; i < r->n_joints; i++)
        mj->initial_q[i] = q0[i];
    /* Catch-up of missed steps up to MJ_CATCHUP_S; a reset waits 2 s. */
    hal_backend_init(&mj->core, r, &mj_hooks, llround(mj->m->opt.timestep * 1e9),
                     llround(options->command_timeout_s * 1e9),
                     (int64_t)(MJ_CATCHUP_S * RT_CLOCK_NS_PER_S), 2 * RT_CLOCK_NS_PER_S);
    rt_seqbox_init(&mj->task_box);
    rt_seqbox_init(&mj->instant_box);
    mj_go_home(mj, mj->initial_q, mj->seed ^ 0x51ed270b27a5b3c1ULL);
    mj->sim_t = rt_clock_mono_ns();
    if (options->stepped) {
        /* simulated time starts at the clocks' values now and keeps their offset */
        mj->core.stepped = 1;
        mj->core.unix_offset_ns = rt_clock_unix_ns() - mj->sim_t;
    }
    hal_backend_publish(&mj->core, mj->sim_t);
    store_instant(mj);

    if (o->camera_endpoint || o->state_endpoint) {
        mj->zctx = zmq_ctx_new();
        if (!mj->zctx) {
            pacd_errf(err, errlen, "hal mujoco: cannot create a ZeroMQ context");
            goto fail;
        }
        if (o->camera_endpoint && !(mj->cam_sock = open_pub(mj, o, o->camera_endpoint, err, errlen)))
            goto fail;
        if (o->state_endpoint && !(mj->state_sock = open_pub(mj, o, o->state_endpoint, err, errlen)))
            goto fail;
    }

    atomic_init(&mj->render_status, 0);
    if (mj->n_cameras > 0 || mj->state_sock || options->stepped) {
        int rc = options->stepped
                     ? hal_backend_thread_start(&mj->render, stepper_thread, mj,
                                                "pacd-hal-step", o->physics_rt_priority)
                     : hal_backend_thread_start(&mj->render, render_thread, mj,
                                                "pacd-hal-render", 0);
        if (rc != 0) {
            pacd_errf(err, errlen, "hal mujoco: cannot start the %s thread%s: %s%s",
                      options->stepped ? "stepper" : "render",
                      options->stepped && o->physics_rt_priority > 0 ? " with SCHED_FIFO" : "",
                      strerror(rc),
                      rc == EPERM ? "; grant CAP_SYS_NICE or set physics_rt_priority = 0" : "");
            goto fail;
        }
        mj->render_started = 1;
        while (atomic_load_explicit(&mj->render_status, memory_order_acquire) == 0)
            rt_clock_sleep_ns(1000000);
        if (atomic_load_explicit(&mj->render_status, memory_order_acquire) < 0) {
            pacd_errf(err, errlen, "hal mujoco: %s", mj->render_err);
            goto fail;
        }
    }
    int rc = options->stepped ? 0
                              : hal_backend_start(&mj->core, "pacd-hal-mujoco",
                                                  o->physics_rt_priority);
    if (rc != 0) {
        pacd_errf(err, errlen,
                  "hal mujoco: cannot start the physics thread%s: %s%s",
                  o->physics_rt_priority > 0 ? " with SCHED_FIFO" : "", strerror(rc),
                  rc == EPERM ? "; grant CAP_SYS_NICE or set physics_rt_priority = 0" : "");
        goto fail;
    }
    hal->ops = &mj_ops;
    hal->impl = mj;
    hal->robot = r;
    return 0;
fail:
    mj_stop(mj);
    mj_free(mj);
    return -EINVAL;
}
