/* hal_mujoco_util — model mapping, EGL rendering and ZeroMQ publication for
 * the mujoco backend and pacd-replay (see hal_mujoco_util.h). */
#include "hal_mujoco_util.h"
#include "hal_backend.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zmq.h>

#include "pacd_proto.h"

/* ---- mapping ---- */

static int find_joint(const mjModel *m, const hal_robot_t *robot, int i)
{
    char name[32];
    if (strcmp(robot->name, "panda") == 0)
        snprintf(name, sizeof name, "joint%d", i + 1);
    else
        snprintf(name, sizeof name, "right_j%d", i);
    return mj_name2id(m, mjOBJ_JOINT, name);
}

/* The actuator driving joint j directly, and what its ctrl means. */
static int find_actuator(const mjModel *m, int j, hal_mj_act_kind_t *kind)
{
    for (int a = 0; a < m->nu; a++) {
        if (m->actuator_trntype[a] != mjTRN_JOINT || m->actuator_trnid[2 * a] != j)
            continue;
        const mjtNum *g = m->actuator_gainprm + a * mjNGAIN;
        const mjtNum *b = m->actuator_biasprm + a * mjNBIAS;
        if (m->actuator_dyntype[a] != mjDYN_NONE || m->actuator_gaintype[a] != mjGAIN_FIXED)
            continue;
        if (m->actuator_biastype[a] == mjBIAS_AFFINE && g[0] > 0 && b[1] == -g[0]) {
            *kind = HAL_MJ_ACT_POSITION; /* force = kp (ctrl - q) - kv qdot */
            return a;
        }
        if (m->actuator_biastype[a] == mjBIAS_AFFINE && g[0] > 0 && b[1] == 0 &&
            b[2] == -g[0]) {
            *kind = HAL_MJ_ACT_VELOCITY; /* force = kv (ctrl - qdot) */
            return a;
        }
    }
    *kind = HAL_MJ_ACT_NONE;
    return -1;
}

static int find_gripper(hal_mjmap_t *map, const mjModel *m)
{
    /* name pairs: finger joints, with which range end is closed */
    static const struct {
        const char *j[2];
        int sign[2];
        const char *act;      /* single actuator (tendon), or NULL */
        const char *acts[2];  /* per-finger position actuators */
    } known[] = {
        {{"finger_joint1", "finger_joint2"}, {1, 1}, "actuator8", {NULL, NULL}},
        {{"r_gripper_l_finger_joint", "r_gripper_r_finger_joint"},
         {1, -1},
         NULL,
         {"gripper_r_gripper_l_finger_joint", "gripper_r_gripper_r_finger_joint"}},
    };
    map->gripper_act = -1;
    map->gripper_act_fingers[0] = map->gripper_act_fingers[1] = -1;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        int j0 = mj_name2id(m, mjOBJ_JOINT, known[k].j[0]);
        int j1 = mj_name2id(m, mjOBJ_JOINT, known[k].j[1]);
        if (j0 < 0 || j1 < 0)
            continue;
        int js[2] = {j0, j1};
        for (int f = 0; f < 2; f++) {
            map->finger_qpos[f] = m->jnt_qposadr[js[f]];
            map->finger_dof[f] = m->jnt_dofadr[js[f]];
            map->finger_sign[f] = known[k].sign[f];
            map->finger_closed[f] =
                known[k].sign[f] > 0 ? m->jnt_range[2 * js[f]] : m->jnt_range[2 * js[f] + 1];
        }
        if (known[k].act)
            map->gripper_act = mj_name2id(m, mjOBJ_ACTUATOR, known[k].act);
        for (int f = 0; f < 2; f++)
            if (known[k].acts[f])
                map->gripper_act_fingers[f] = mj_name2id(m, mjOBJ_ACTUATOR, known[k].acts[f]);
        map->has_gripper = 1;
        return 0;
    }
    return 0;
}

int hal_mjmap_init(hal_mjmap_t *map, const mjModel *m, const hal_robot_t *robot,
                   const char *ee_site, char *err, size_t errlen)
{
    memset(map, 0, sizeof *map);
    if (!m || !robot || !robot->name) {
        pacd_errf(err, errlen, "hal mujoco: no model or robot description");
        return -EINVAL;
    }
    map->n_joints = robot->n_joints;
    for (int i = 0; i < robot->n_joints; i++) {
        int j = find_joint(m, robot, i);
        if (j < 0 || m->jnt_type[j] != mjJNT_HINGE) {
            pacd_errf(err, errlen,
                      "hal mujoco: the scene has no hinge joint for %s joint %d (looked "
                      "for %s); use a scene with the %s model or the right robot",
                      robot->name, i + 1,
                      strcmp(robot->name, "panda") == 0 ? "joint1..joint7" : "right_j0..right_j6",
                      robot->name);
            return -EINVAL;
        }
        map->jnt[i] = j;
        map->qpos[i] = m->jnt_qposadr[j];
        map->dof[i] = m->jnt_dofadr[j];
        map->act[i] = find_actuator(m, j, &map->act_kind[i]);
        if (map->act[i] < 0) {
            pacd_errf(err, errlen,
                      "hal mujoco: joint %s has no position or velocity actuator in the "
                      "scene; add one (torque actuators are not supported)",
                      mj_id2name(m, mjOBJ_JOINT, j));
            return -EINVAL;
        }
    }
    find_gripper(map, m);
    map->ee_site = -1;
    if (ee_site && ee_site[0]) {
        map->ee_site = mj_name2id(m, mjOBJ_SITE, ee_site);
        if (map->ee_site < 0) {
            pacd_errf(err, errlen, "hal mujoco: the scene has no site '%s'; fix ee_site",
                      ee_site);
            return -EINVAL;
        }
    } else {
        map->ee_site = mj_name2id(m, mjOBJ_SITE, "grip_site");
        if (map->ee_site < 0)
            map->ee_site = mj_name2id(m, mjOBJ_SITE, "attachment_site");
    }
    map->base_body = m->body_parentid[m->jnt_bodyid[map->jnt[0]]];
    map->cube_body = mj_name2id(m, mjOBJ_BODY, "cube");
    map->table_site = mj_name2id(m, mjOBJ_SITE, "table_top");
    map->cube_qpos = -1;
    if (map->cube_body >= 0 && m->body_jntnum[map->cube_body] == 1 &&
        m->jnt_type[m->body_jntadr[map->cube_body]] == mjJNT_FREE)
        map->cube_qpos = m->jnt_qposadr[m->body_jntadr[map->cube_body]];
    return 0;
}

/* A world-frame position p and rotation matrix r (row-major 3x3) as a pose
 * in the arm's base body frame: R_b^T (p - p_b), R_b^T r as qw qx qy qz
 * with qw >= 0. */
static void in_base_frame(const hal_mjmap_t *map, const mjData *d, const mjtNum *p,
                          const mjtNum *r, double pose[7])
{
    const mjtNum *pb = d->xpos + 3 * map->base_body, *rb = d->xmat + 9 * map->base_body;
    mjtNum dp[3] = {p[0] - pb[0], p[1] - pb[1], p[2] - pb[2]}, pos[3], rot[9], quat[4];
    mju_mulMatTVec(pos, rb, dp, 3, 3);
    mju_mulMatTMat(rot, rb, r, 3, 3, 3);
    mju_mat2Quat(quat, rot);
    if (quat[0] < 0)
        for (int i = 0; i < 4; i++)
            quat[i] = -quat[i];
    for (int i = 0; i < 3; i++)
        pose[i] = pos[i];
    for (int i = 0; i < 4; i++)
        pose[3 + i] = quat[i];
}

void hal_mjmap_read(const hal_mjmap_t *map, const mjModel *m, const mjData *d,
                    const hal_robot_t *robot, hal_state_t *st)
{
    st->n_joints = map->n_joints;
    for (int i = 0; i < map->n_joints; i++) {
        st->q[i] = d->qpos[map->qpos[i]];
        st->dq[i] = d->qvel[map->dof[i]];
    }
    st->gripper_position = 0;
    st->gripper_velocity = 0;
    if (map->has_gripper) {
        for (int f = 0; f < 2; f++) {
            st->gripper_position +=
                map->finger_sign[f] * (d->qpos[map->finger_qpos[f]] - map->finger_closed[f]);
            st->gripper_velocity += map->finger_sign[f] * d->qvel[map->finger_dof[f]];
        }
        if (st->gripper_position < 0)
            st->gripper_position = 0;
    }
    st->grasp = 0;
    if (map->ee_site < 0) {
        hal_robot_fk(robot, st->q, st->ee_pose);
        return;
    }
    (void)m;
    in_base_frame(map, d, d->site_xpos + 3 * map->ee_site, d->site_xmat + 9 * map->ee_site,
                  st->ee_pose);
}

int hal_mjmap_cube_pose(const hal_mjmap_t *map, const mjData *d, double pose[7])
{
    if (map->cube_body < 0)
        return -1;
    in_base_frame(map, d, d->xpos + 3 * map->cube_body, d->xmat + 9 * map->cube_body, pose);
    return 0;
}

double hal_mjmap_cube_height(const hal_mjmap_t *map, const mjData *d)
{
    if (map->cube_body < 0 || map->table_site < 0)
        return NAN;
    return d->xpos[3 * map->cube_body + 2] - d->site_xpos[3 * map->table_site + 2];
}

/* ---- rendering ---- */

struct hal_mjrender {
    EGLDisplay display;
    EGLContext context;
    int width, height;
    mjvScene scene;
    mjvOption option;
    mjrContext con;
    int scene_made, con_made;
    uint8_t *flip; /* one row */
};

int hal_mjrender_camera(const mjModel *m, const char *name)
{
    return name ? mj_name2id(m, mjOBJ_CAMERA, name) : -1;
}

/* Mesa's software renderer (llvmpipe) writes machine code and then executes
 * it. Under systemd's MemoryDenyWriteExecute= (a seccomp filter: EPERM) or
 * PR_SET_MDWE (EACCES) it may not, and Mesa then crashes at its first draw
 * instead of failing. Returns 0 when a written page may become executable,
 * else the errno mprotect gave (0 also when the probe page cannot be had). */
static int write_then_exec_denied(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
    if (p == MAP_FAILED)
        return 0;
    int rc = mprotect(p, (size_t)page, PROT_READ | PROT_EXEC) != 0 ? errno : 0;
    munmap(p, (size_t)page);
    return rc;
}

hal_mjrender_t *hal_mjrender_new(const mjModel *m, int width, int height, char *err,
                                 size_t errlen)
{
    int wx = write_then_exec_denied();
    if (wx) {
        pacd_errf(err, errlen,
                  "render: this process may not execute memory it wrote (%s: systemd's "
                  "MemoryDenyWriteExecute= or PR_SET_MDWE), which Mesa's renderer needs; "
                  "under pacd.service install deploy/drop-ins/mujoco-render.conf",
                  strerror(wx));
        return NULL;
    }
    if (!m || width < 1 || height < 1 || width > 4096 || height > 4096) {
        pacd_errf(err, errlen, "render: size %dx%d out of range; use 1..4096 pixels", width,
                  height);
        return NULL;
    }
    hal_mjrender_t *r = calloc(1, sizeof *r);
    if (!r) {
        pacd_errf(err, errlen, "render: out of memory");
        return NULL;
    }
    r->width = width;
    r->height = height;
    r->flip = malloc((size_t)width * 3);
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_display =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    if (!r->flip || !get_display) {
        pacd_errf(err, errlen, "render: EGL lacks eglGetPlatformDisplayEXT; install "
                               "libegl1 and libgl1-mesa-dri (Mesa)");
        goto fail;
    }
    r->display = get_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
    EGLint major, minor;
    if (r->display == EGL_NO_DISPLAY || !eglInitialize(r->display, &major, &minor)) {
        pacd_errf(err, errlen,
                  "render: cannot open the EGL surfaceless display (EGL error 0x%x); "
                  "install libgl1-mesa-dri",
                  eglGetError());
        r->display = EGL_NO_DISPLAY;
        goto fail;
    }
    static const EGLint attrs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RED_SIZE, 8,
                                   EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_DEPTH_SIZE, 24,
                                   EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
    EGLConfig config;
    EGLint n = 0;
    if (!eglChooseConfig(r->display, attrs, &config, 1, &n))
        n = 0;
    eglBindAPI(EGL_OPENGL_API);
    r->context = eglCreateContext(r->display, n > 0 ? config : (EGLConfig)0, EGL_NO_CONTEXT, NULL);
    if (r->context == EGL_NO_CONTEXT ||
        !eglMakeCurrent(r->display, EGL_NO_SURFACE, EGL_NO_SURFACE, r->context)) {
        pacd_errf(err, errlen, "render: cannot create an OpenGL context (EGL error 0x%x)",
                  eglGetError());
        goto fail;
    }
    /* The offscreen buffer size comes from the model: set it on a copy. */
    mjModel *mc = mj_copyModel(NULL, m);
    if (!mc) {
        pacd_errf(err, errlen, "render: cannot copy the model");
        goto fail;
    }
    mc->vis.global.offwidth = width;
    mc->vis.global.offheight = height;
    mc->vis.quality.offsamples = 0;
    mc->vis.quality.shadowsize = 0;
    mjv_defaultOption(&r->option);
    /* what a real camera sees: no sites (robosuite's grip_site markers) */
    for (int i = 0; i < mjNGROUP; i++)
        r->option.sitegroup[i] = 0;
    mjv_defaultScene(&r->scene);
    mjv_makeScene(mc, &r->scene, 2000);
    r->scene_made = 1;
    r->scene.flags[mjRND_SHADOW] = 0;
    r->scene.flags[mjRND_REFLECTION] = 0;
    r->scene.flags[mjRND_SKYBOX] = 0;
    mjr_defaultContext(&r->con);
    mjr_makeContext(mc, &r->con, mjFONTSCALE_100);
    r->con_made = 1;
    mj_deleteModel(mc);
    mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
    if (r->con.currentBuffer != mjFB_OFFSCREEN || r->con.offWidth < width ||
        r->con.offHeight < height) {
        pacd_errf(err, errlen, "render: no offscreen buffer of %dx%d", width, height);
        goto fail;
    }
    return r;
fail:
    hal_mjrender_destroy(&r);
    return NULL;
}

int hal_mjrender_rgb(hal_mjrender_t *r, const mjModel *m, mjData *d, int cam_id, uint8_t *rgb)
{
    if (!r || !m || !d || !rgb || cam_id < 0 || cam_id >= m->ncam)
        return -EINVAL;
    mjvCamera cam;
    mjv_defaultCamera(&cam);
    cam.type = mjCAMERA_FIXED;
    cam.fixedcamid = cam_id;
    mjv_updateScene(m, d, &r->option, NULL, &cam, mjCAT_ALL, &r->scene);
    mjrRect vp = {0, 0, r->width, r->height};
    mjr_render(vp, &r->scene, &r->con);
    mjr_readPixels(rgb, NULL, vp, &r->con);
    size_t row = (size_t)r->width * 3;
    for (int y = 0; y < r->height / 2; y++) {
        uint8_t *a = rgb + y * row, *b = rgb + (size_t)(r->height - 1 - y) * row;
        memcpy(r->flip, a, row);
        memcpy(a, b, row);
        memcpy(b, r->flip, row);
    }
    return 0;
}

void hal_mjrender_destroy(hal_mjrender_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hal_mjrender_t *r = *self_p;
    if (r->con_made)
        mjr_freeContext(&r->con);
    if (r->scene_made)
        mjv_freeScene(&r->scene);
    if (r->display != EGL_NO_DISPLAY && r->display) {
        eglMakeCurrent(r->display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
        if (r->context != EGL_NO_CONTEXT && r->context)
            eglDestroyContext(r->display, r->context);
        /* No eglTerminate: the surfaceless display is process-wide (EGL
         * returns the same handle to every renderer, so terminating it would
         * pull it from under another live renderer), and terminating unloads
         * Mesa's driver with 240 bytes it never freed, which LeakSanitizer
         * then reports from an unknown module. The display is reused by the
         * next hal_mjrender_new. */
        eglReleaseThread();
    }
    free(r->flip);
    free(r);
    *self_p = NULL;
}

/* ---- publishing ---- */

static int send2(void *socket, const char *topic, const uint8_t *data, size_t len)
{
    if (zmq_send(socket, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    if (zmq_send(socket, data, len, ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    return 0;
}

int hal_mjpub_camera(void *socket, const char *camera, int width, int height,
                     const uint8_t *rgb, int64_t capture_unix_ns, uint64_t seq, uint8_t *buf,
                     size_t cap)
{
    if (!socket)
        return 0;
    Pacd__V1__CameraFrame f;
    pacd__v1__camera_frame__init(&f);
    f.camera = (char *)camera;
    f.width = (uint32_t)width;
    f.height = (uint32_t)height;
    f.encoding = PACD__V1__CAMERA_FRAME__ENCODING__RGB8;
    f.data.data = (uint8_t *)rgb;
    f.data.len = (size_t)width * height * 3;
    f.capture_time_unix_ns = capture_unix_ns;
    f.seq = seq;
    size_t len = pacd__v1__camera_frame__get_packed_size(&f);
    if (len > cap)
        return -ENOBUFS;
    pacd__v1__camera_frame__pack(&f, buf);
    char topic[80];
    snprintf(topic, sizeof topic, "camera/%s", camera);
    return send2(socket, topic, buf, len);
}

int hal_mjpub_state(void *socket, const char *robot, const hal_state_t *st)
{
    if (!socket)
        return 0;
    Pacd__V1__RobotState s;
    Pacd__V1__Pose pose;
    pacd_proto_robot_state(&s, &pose, robot, st->n_joints, st->q, st->dq, st->gripper_position,
                           st->gripper_velocity, st->grasp, st->ee_pose, st->time_unix_ns,
                           st->seq);
    uint8_t buf[512];
    size_t len = pacd__v1__robot_state__get_packed_size(&s);
    if (len > sizeof buf)
        return -ENOBUFS;
    pacd__v1__robot_state__pack(&s, buf);
    return send2(socket, "robot_state", buf, len);
}

int hal_mjpub_reward(void *socket, float reward, float discount, int is_terminal,
                     int64_t time_unix_ns, double cube_height_m)
{
    if (!socket)
        return 0;
    Pacd__V1__Reward r;
    pacd__v1__reward__init(&r);
    r.reward = reward;
    r.discount = discount;
    r.is_terminal = is_terminal != 0;
    r.time_unix_ns = time_unix_ns;
    Pacd__V1__TaskValue height;
    Pacd__V1__TaskValue *info[1] = {&height};
    if (isfinite(cube_height_m)) {
        pacd__v1__task_value__init(&height);
        height.name = "cube_height_m";
        height.value = cube_height_m;
        r.n_info = 1;
        r.info = info;
    }
    uint8_t buf[128];
    size_t len = pacd__v1__reward__pack(&r, buf);
    return send2(socket, "reward", buf, len);
}

int hal_mjpub_action(void *socket, const char *topic, int space, const float *values, int n,
                     int64_t time_unix_ns, uint64_t seq)
{
    if (!socket)
        return 0;
    if (n < 0 || n > HAL_MAX_ACTION)
        return -EINVAL;
    float v[HAL_MAX_ACTION];
    memcpy(v, values, sizeof(float) * (size_t)n);
    Pacd__V1__Action a;
    pacd__v1__action__init(&a);
    a.space = (Pacd__V1__ActionSpace)space;
    a.n_values = (size_t)n;
    a.values = v;
    a.time_unix_ns = time_unix_ns;
    a.seq = seq;
    uint8_t buf[256];
    size_t len = pacd__v1__action__pack(&a, buf);
    return send2(socket, topic, buf, len);
}
