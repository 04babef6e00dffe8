/* Tests of the `mujoco` backend through the hal interface (cmocka), on the
 * shared menagerie and robosuite scenes ($PACD_DATA_DIR, else argv[1]).
 * Exit 77 (skipped) when the scenes are missing.
 *
 * Like test_hal_sim.c, nothing is timed: the tests command, wait, and
 * compare what moved with the backend's own state times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hal.h"
#include "hal_cartesian.h"
#include "hal_mujoco.h"
#include "hal_safety.h"
#include "hal_backend.h" /* the core's period: simulated time */
#include "hal_test_util.h"
#include "pacd_proto.h"
#include "rt_clock.h"

static char data_dir[1024];
static char panda_scene[1200], sawyer_scene[1200], lift_scene[1200];

static double mono_s(void)
{
    return rt_clock_mono_ns() * 1e-9;
}

static void pause_ms(int ms)
{
    rt_clock_sleep_ns((int64_t)ms * 1000000);
}

/* The command watchdog is 1 s here unless a test sets its own (the watchdog
 * test: the 0.2 s default): the tests command every 20 ms, and a test thread
 * starved by a loaded machine must not make the arm hold. */
static hal_t *open_scene(const char *robot, const char *scene, const hal_options_t *extra,
                         const hal_mujoco_options_t *mextra)
{
    hal_options_t o = {0};
    hal_mujoco_options_t mo = {0};
    if (extra)
        o = *extra;
    if (mextra)
        mo = *mextra;
    if (o.command_timeout_s == 0)
        o.command_timeout_s = 1.0;
    o.backend = "mujoco";
    o.backend_options = &mo;
    mo.scene = scene;
    char err[512] = "";
    hal_t *h = hal_new(hal_robot_find(robot), &o, err, sizeof err);
    if (!h)
        fail_msg("hal_new(%s, %s): %s", robot, scene, err);
    return h;
}

/* Invariants: inside the joint limits (with the tracking tolerance of a
 * physical joint: 0.02 rad), finite pose. */
static void check_state(const hal_robot_t *r, const hal_state_t *s)
{
    assert_int_equal(s->n_joints, r->n_joints);
    for (int i = 0; i < r->n_joints; i++) {
        if (!(s->q[i] >= r->q_min[i] - 0.02 && s->q[i] <= r->q_max[i] + 0.02))
            fail_msg("joint %d at %g outside [%g, %g]", i + 1, s->q[i], r->q_min[i],
                     r->q_max[i]);
        assert_true(isfinite(s->dq[i]));
    }
    for (int i = 0; i < 7; i++)
        assert_true(isfinite(s->ee_pose[i]));
}

/* Command cmd (or hold when NULL) every 20 ms for `seconds` of backend time. */
static hal_state_t run_for(hal_t *h, const hal_command_t *cmd, double seconds)
{
    hal_state_t start, cur;
    assert_int_equal(hal_read_state(h, &start), 0);
    cur = start;
    double give_up = mono_s() + 20 * seconds + 10;
    while ((cur.time_mono_ns - start.time_mono_ns) * 1e-9 < seconds) {
        if (mono_s() > give_up)
            fail_msg("the backend's state time did not advance (stalled physics?)");
        if (cmd)
            assert_int_equal(hal_command(h, cmd), 0);
        pause_ms(20);
        if (hal_read_state(h, &cur) != 0)
            continue;
        check_state(hal_driven_robot(h), &cur);
    }
    return cur;
}

/* Menagerie panda/sawyer: the site pose equals the description's FK of the
 * measured q (the FK follows the menagerie chain; docs/hal.md). */
static void test_ee_pose_is_the_model_site(void **st)
{
    (void)st;
    hal_t *h = open_scene("sawyer", sawyer_scene, NULL, NULL);
    hal_state_t s = run_for(h, NULL, 0.1);
    double pose[7];
    hal_robot_fk(hal_driven_robot(h), s.q, pose);
    for (int i = 0; i < 3; i++)
        assert_double_equal(s.ee_pose[i], pose[i], 1e-3);
    hal_destroy(&h);
}

/* Each scene loads and holds at home, then a joint velocity command moves
 * that joint alone. (One scene load for both: loading the scenes is most of
 * this test's time, several times over in the sanitizer builds.) */
static void test_loads_at_home_and_joint_velocity_moves_joint(void **st)
{
    (void)st;
    const char *robots[] = {"panda", "sawyer", "sawyer"};
    const char *scenes[] = {panda_scene, sawyer_scene, lift_scene};
    for (int k = 0; k < 3; k++) {
        hal_t *h = open_scene(robots[k], scenes[k], NULL, NULL);
        hal_state_t a = run_for(h, NULL, 0.3);
        const hal_robot_t *r = hal_driven_robot(h);
        /* holding at home: within a few centiradians (gravity sag of the servos) */
        for (int i = 0; i < r->n_joints; i++)
            assert_double_equal(a.q[i], r->q_home[i], 0.05);
        hal_counters_t ca, cb;
        assert_int_equal(hal_counters(h, &ca), 0);
        assert_true(ca.ticks > 100); /* 0.3 s at 2 ms */
        hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY, .n = 7};
        cmd.values[0] = 0.3; /* base rotation, rad/s */
        hal_state_t b = run_for(h, &cmd, 1.0);
        assert_int_equal(hal_counters(h, &cb), 0);
        /* the time physics simulated: a physics thread that falls more than
         * its catch-up behind (a sanitizer build on a loaded machine) skips
         * periods, and the state's time jumps over them */
        const hal_backend_core_t *core = h->impl;
        double dt = (double)(cb.ticks - ca.ticks) * (double)core->period_ns * 1e-9;
        double moved = b.q[0] - a.q[0];
        /* ramp + servo lag: between half and all of v * t */
        if (!(moved > 0.5 * 0.3 * dt && moved < 0.3 * dt + 0.02))
            fail_msg("%s: joint 1 moved %g rad in %g s at 0.3 rad/s", scenes[k], moved, dt);
        for (int i = 1; i < 7; i++)
            if (!(fabs(b.q[i] - a.q[i]) < 0.05))
                fail_msg("%s: joint %d moved from %g to %g", scenes[k], i + 1, a.q[i], b.q[i]);
        hal_destroy(&h);
        assert_null(h);
    }
}

static void test_never_past_a_limit(void **st)
{
    (void)st;
    hal_t *h = open_scene("panda", panda_scene, NULL, NULL);
    const hal_robot_t *r = hal_driven_robot(h);
    /* Panda joints 1 (home 0, q_max 2.8973), 4 (home -1.57, q_max -0.0698) and
     * 7 (home -0.785, q_min -2.8973), driven at full speed into the limits
     * (poses free of self-collision). */
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY, .n = 7};
    cmd.values[0] = 2.5;
    cmd.values[3] = 2.5;
    cmd.values[6] = -3.0;
    hal_state_t s = run_for(h, &cmd, 2.5);
    if (!(s.q[0] > r->q_max[0] - 0.05 && s.q[3] > r->q_max[3] - 0.05 &&
          s.q[6] < r->q_min[6] + 0.05))
        fail_msg("joints 1, 4, 7 at %g, %g, %g; limits %g, %g, %g", s.q[0], s.q[3], s.q[6],
                 r->q_max[0], r->q_max[3], r->q_min[6]);
    hal_counters_t c;
    assert_int_equal(hal_counters(h, &c), 0);
    assert_true(c.limit_stops >= 2);
    /* hold: decelerates and stays */
    assert_int_equal(hal_hold(h), 0);
    hal_state_t a = run_for(h, NULL, 0.3);
    hal_state_t b = run_for(h, NULL, 0.3);
    for (int i = 0; i < 7; i++)
        assert_double_equal(b.q[i], a.q[i], 0.01);
    hal_destroy(&h);
}

/* The Cartesian mapping driving the physical model: the site moves along +z
 * and along -y the commanded way. */
static void test_cartesian_moves_ee(void **st)
{
    (void)st;
    const char *robots[] = {"panda", "sawyer"};
    const char *scenes[] = {panda_scene, sawyer_scene};
    /* 1 s of the backend's own time */
    for (int k = 0; k < 2; k++) {
        hal_t *h = open_scene(robots[k], scenes[k], NULL, NULL);
        const hal_robot_t *r = hal_driven_robot(h);
        for (int axis = 1; axis <= 2; axis++) {
            hal_state_t a = run_for(h, NULL, 0.1), s = a;
            float act[4] = {0, 0, 0, 0};
            act[axis] = axis == 2 ? 0.05f : -0.05f;
            double give_up = mono_s() + 60;
            while ((s.time_mono_ns - a.time_mono_ns) * 1e-9 < 1.0) {
                if (mono_s() > give_up)
                    fail_msg("the backend's state time did not advance (stalled physics?)");
                assert_int_equal(hal_read_state(h, &s), 0);
                check_state(r, &s);
                hal_command_t jc, out;
                uint32_t flags;
                assert_int_equal(hal_cartesian_to_joint(r, NULL, &s, HAL_SPACE_CARTESIAN_VELOCITY,
                                                        act, 4, &jc, &flags),
                                 0);
                float jf[HAL_MAX_ACTION];
                for (int i = 0; i < jc.n; i++)
                    jf[i] = (float)jc.values[i];
                hal_safety_result_t res;
                assert_int_equal(hal_safety_filter(r, NULL, &s, jc.space, jf, jc.n, NULL, NULL,
                                                   NULL, &out, &res),
                                 0);
                assert_int_equal(hal_command(h, &out), 0);
                pause_ms(50);
            }
            hal_state_t b = run_for(h, NULL, 0.05);
            double d = b.ee_pose[axis] - a.ee_pose[axis];
            double want = act[axis] * 1.0;
            if (!(d * want > 0 && fabs(d) > 0.4 * fabs(want) && fabs(d) < 1.5 * fabs(want)))
                fail_msg("%s axis %d: moved %g m, commanded %g m", robots[k], axis, d, want);
            assert_int_equal(hal_hold(h), 0);
        }
        hal_destroy(&h);
    }
}

/* Panda gripper: starts open (0.08 m), closes on -1, opens again on +1. */
static void test_panda_gripper_follows_commands(void **st)
{
    (void)st;
    hal_t *h = open_scene("panda", panda_scene, NULL, NULL);
    const hal_robot_t *r = hal_driven_robot(h);
    hal_state_t a = run_for(h, NULL, 0.2);
    assert_double_equal(a.gripper_position, r->gripper_max, 0.005);
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER, .n = 8};
    cmd.values[7] = -1.0; /* close at gripper_speed 0.1 m/s: 0.8 s to closed */
    hal_state_t b = run_for(h, &cmd, 1.5);
    if (!(b.gripper_position < 0.01))
        fail_msg("gripper at %g m after closing for 1.5 s", b.gripper_position);
    cmd.values[7] = 1.0;
    hal_state_t c = run_for(h, &cmd, 1.5);
    if (!(c.gripper_position > r->gripper_max - 0.01))
        fail_msg("gripper at %g m after opening for 1.5 s", c.gripper_position);
    hal_destroy(&h);
}

/* Total opening the Rethink gripper's servos reach in the robosuite Sawyer
 * scenes: in SawyerLift model_1.xml, r_gripper_l_finger_joint has range
 * -0.0115..0.020833 and its actuator ctrlrange -0.020833..0.0115 (m); the
 * right finger mirrors it: -0.0115..0.0115 m per finger. */
#define LIFT_GRIPPER_OPENING ((0.0115 + 0.0115) * 2)

/* Lift scene: the backend drives the Sawyer with its gripper (hal_driven_robot is
 * the gripper variant); it starts open, closes on -1, opens again on +1. */
static void test_lift_gripper_follows_commands(void **st)
{
    (void)st;
    hal_t *h = open_scene("sawyer", lift_scene, NULL, NULL);
    const hal_robot_t *r = hal_driven_robot(h);
    assert_ptr_not_equal(r, hal_robot_find("sawyer"));
    assert_ptr_equal(r, hal_robot_variant(hal_robot_find("sawyer"), 1));
    assert_string_equal(r->name, "sawyer");
    assert_true(r->has_gripper);
    assert_double_equal(r->gripper_max, LIFT_GRIPPER_OPENING, 1e-4);
    hal_state_t a = run_for(h, NULL, 0.2);
    assert_double_equal(a.gripper_position, LIFT_GRIPPER_OPENING, 0.005);
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER, .n = 8};
    cmd.values[7] = -1.0; /* close at gripper_speed 0.1 m/s: 0.46 s to closed */
    hal_state_t b = run_for(h, &cmd, 1.5);
    if (!(b.gripper_position < 0.01))
        fail_msg("gripper at %g m after closing for 1.5 s", b.gripper_position);
    cmd.values[7] = 0.0; /* 0 = stay */
    hal_state_t b2 = run_for(h, &cmd, 0.5);
    assert_double_equal(b2.gripper_position, b.gripper_position, 0.003);
    cmd.values[7] = 1.0;
    hal_state_t c = run_for(h, &cmd, 1.5);
    if (!(c.gripper_position > LIFT_GRIPPER_OPENING - 0.01))
        fail_msg("gripper at %g m after opening for 1.5 s", c.gripper_position);
    /* the arm held still meanwhile */
    for (int i = 0; i < r->n_joints; i++)
        assert_double_equal(c.q[i], a.q[i], 0.05);
    hal_destroy(&h);
}

/* fixed_robot: the Lift scene driven with the gripper-less description keeps
 * it; gripper commands are refused and the fingers stay open. */
static void test_lift_fixed_robot_keeps_description(void **st)
{
    (void)st;
    hal_options_t o = {.fixed_robot = 1};
    hal_t *h = open_scene("sawyer", lift_scene, &o, NULL);
    assert_ptr_equal(hal_driven_robot(h), hal_robot_find("sawyer"));
    assert_false(hal_driven_robot(h)->has_gripper);
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER, .n = 8};
    cmd.values[7] = -1.0;
    assert_int_equal(hal_command(h, &cmd), -EINVAL);
    hal_state_t a = run_for(h, NULL, 0.5);
    assert_double_equal(a.gripper_position, LIFT_GRIPPER_OPENING, 0.005);
    hal_destroy(&h);
}

/* The menagerie Sawyer has no gripper: the default description stays, and
 * the gripper variant is refused with a message. */
static void test_gripper_description_needs_scene_gripper(void **st)
{
    (void)st;
    hal_t *h = open_scene("sawyer", sawyer_scene, NULL, NULL);
    assert_ptr_equal(hal_driven_robot(h), hal_robot_find("sawyer"));
    hal_destroy(&h);
    char err[512] = "";
    hal_mujoco_options_t mo = {.scene = sawyer_scene};
    hal_options_t o = {.backend = "mujoco", .backend_options = &mo};
    assert_null(hal_new(hal_robot_variant(hal_robot_find("sawyer"), 1), &o, err, sizeof err));
    assert_non_null(strstr(err, "no gripper"));
    /* the Panda keeps its own description (it has its hand) */
    hal_t *p = open_scene("panda", panda_scene, NULL, NULL);
    assert_ptr_equal(hal_driven_robot(p), hal_robot_find("panda"));
    hal_destroy(&p);
}

/* One command, then silence: the watchdog holds once and the arm stops. */
static void test_watchdog_holds_without_commands(void **st)
{
    (void)st;
    hal_options_t o = {.command_timeout_s = 0.2}; /* the default */
    hal_t *h = open_scene("sawyer", sawyer_scene, &o, NULL);
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY, .n = 7};
    cmd.values[0] = 0.5;
    assert_int_equal(hal_command(h, &cmd), 0);
    run_for(h, NULL, 0.6); /* > command_timeout_s 0.2 s + the ramp down */
    hal_state_t a = run_for(h, NULL, 0.2), b = run_for(h, NULL, 0.3);
    assert_double_equal(b.q[0], a.q[0], 0.005);
    hal_counters_t c;
    assert_int_equal(hal_counters(h, &c), 0);
    assert_int_equal(c.watchdog_holds, 1);
    hal_destroy(&h);
}

static void test_bad_command_holds(void **st)
{
    (void)st;
    hal_t *h = open_scene("sawyer", sawyer_scene, NULL, NULL);
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER, .n = 8}; /* no gripper */
    assert_int_equal(hal_command(h, &cmd), -EINVAL);
    cmd.space = HAL_SPACE_JOINT_VELOCITY;
    cmd.n = 7;
    cmd.values[2] = NAN;
    assert_int_equal(hal_command(h, &cmd), -EINVAL);
    hal_counters_t c;
    assert_int_equal(hal_counters(h, &c), 0);
    assert_int_equal(c.bad_commands, 2);
    hal_destroy(&h);
}

static void test_bad_options_fail_with_message(void **st)
{
    (void)st;
    char err[512] = "";
    hal_mujoco_options_t mo = {.scene = "/nonexistent/scene.xml"};
    hal_options_t o = {.backend = "mujoco", .backend_options = &mo};
    assert_null(hal_new(hal_robot_find("panda"), &o, err, sizeof err));
    assert_non_null(strstr(err, "cannot load scene"));
    mo.scene = panda_scene;
    assert_null(hal_new(hal_robot_find("sawyer"), &o, err, sizeof err)); /* wrong robot */
    assert_non_null(strstr(err, "right_j0"));
    mo.cameras = "nosuchcam";
    assert_null(hal_new(hal_robot_find("panda"), &o, err, sizeof err));
    assert_non_null(strstr(err, "nosuchcam"));
    mo.cameras = NULL;
    mo.scene = NULL;
    assert_null(hal_new(hal_robot_find("panda"), &o, err, sizeof err));
    assert_non_null(strstr(err, "no scene"));
    o.backend_options = NULL; /* no block: no scene either */
    err[0] = 0;
    assert_null(hal_new(hal_robot_find("panda"), &o, err, sizeof err));
    assert_non_null(strstr(err, "no scene"));
}

/* The ipc endpoints of test_frames_reach_subscriber live in a temporary
 * directory that its teardown removes, whether the test passed or not (a
 * failed assertion skips the test's own zmq_close, which would unlink them). */
static char ipc_dir[64];

static int ipc_setup(void **st)
{
    (void)st;
    snprintf(ipc_dir, sizeof ipc_dir, "/tmp/pacd-test-mj-XXXXXX");
    return mkdtemp(ipc_dir) ? 0 : -1;
}

static int ipc_teardown(void **st)
{
    (void)st;
    char path[128];
    snprintf(path, sizeof path, "%s/cam", ipc_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/state", ipc_dir);
    unlink(path);
    return rmdir(ipc_dir) == 0 ? 0 : -1;
}

/* Rendered frames and robot states reach a ZeroMQ SUB bound where pacd's
 * ingest would be. */
static void test_frames_reach_subscriber(void **st)
{
    (void)st;
    void *ctx = zmq_ctx_new();
    void *cam = zmq_socket(ctx, ZMQ_SUB), *state = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(cam, ZMQ_SUBSCRIBE, "", 0);
    zmq_setsockopt(state, ZMQ_SUBSCRIBE, "", 0);
    char ep_cam[128], ep_state[128];
    snprintf(ep_cam, sizeof ep_cam, "ipc://%s/cam", ipc_dir);
    snprintf(ep_state, sizeof ep_state, "ipc://%s/state", ipc_dir);
    assert_int_equal(zmq_bind(cam, ep_cam), 0);
    assert_int_equal(zmq_bind(state, ep_state), 0);
    /* only bounds a failure: the first frame waits for EGL and MuJoCo's
     * start-up, slow under a sanitizer on a loaded machine */
    int timeout = 120000;
    zmq_setsockopt(cam, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(state, ZMQ_RCVTIMEO, &timeout, sizeof timeout);

    hal_mujoco_options_t mo = {.cameras = "front", .camera_width = 64, .camera_height = 48,
                               .camera_endpoint = ep_cam, .state_endpoint = ep_state};
    hal_t *h = open_scene("panda", panda_scene, NULL, &mo);
    uint64_t last_seq = 0;
    int frames = 0, states = 0;
    for (int i = 0; i < 6; i++) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&topic, cam, 0) >= 0);
        assert_true(zmq_msg_more(&topic));
        assert_true(zmq_msg_recv(&body, cam, 0) >= 0);
        assert_int_equal(zmq_msg_size(&topic), strlen("camera/front"));
        assert_memory_equal(zmq_msg_data(&topic), "camera/front", strlen("camera/front"));
        Pacd__V1__CameraFrame *f =
            pacd__v1__camera_frame__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
        assert_non_null(f);
        assert_string_equal(f->camera, "front");
        assert_int_equal(f->width, 64);
        assert_int_equal(f->height, 48);
        assert_int_equal(f->encoding, PACD__V1__CAMERA_FRAME__ENCODING__RGB8);
        assert_int_equal(f->data.len, 64 * 48 * 3);
        assert_true(f->seq > last_seq);
        last_seq = f->seq;
        int64_t age = rt_clock_unix_ns() - f->capture_time_unix_ns;
        assert_true(age >= 0 && age < 60000000000LL); /* the sim's now, not 0 or a stale clock */
        /* an image, not a blank buffer: the pixels vary */
        int lo = 255, hi = 0;
        for (size_t p = 0; p < f->data.len; p++) {
            lo = f->data.data[p] < lo ? f->data.data[p] : lo;
            hi = f->data.data[p] > hi ? f->data.data[p] : hi;
        }
        assert_true(hi - lo > 30);
        pacd__v1__camera_frame__free_unpacked(f, NULL);
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        frames++;

        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&topic, state, 0) >= 0);
        assert_true(zmq_msg_recv(&body, state, 0) >= 0);
        if (zmq_msg_size(&topic) == strlen("robot_state")) {
            Pacd__V1__RobotState *s =
                pacd__v1__robot_state__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
            assert_non_null(s);
            assert_string_equal(s->robot, "panda");
            assert_int_equal(s->n_joint_positions, 7);
            assert_double_equal(s->joint_positions[3], -1.57079, 0.05);
            assert_non_null(s->end_effector);
            pacd__v1__robot_state__free_unpacked(s, NULL);
            states++;
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    assert_int_equal(frames, 6);
    assert_true(states >= 1);
    hal_destroy(&h);
    zmq_close(cam);
    zmq_close(state);
    zmq_ctx_term(ctx);
}

/* The newest task signal once the physics has published a state after
 * `after` (CLOCK_MONOTONIC ns). */
static hal_task_t task_after(hal_t *h, int64_t after)
{
    hal_task_t t = {0};
    /* the deadline only bounds a failure (a loaded machine, a sanitizer) */
    const double give_up = mono_s() + 60;
    while (mono_s() < give_up) {
        int rc = hal_read_task(h, &t);
        if (rc == 0 && t.time_mono_ns > after)
            return t;
        assert_true(rc == 0 || rc == -EAGAIN);
        rt_clock_sleep_ns(1000000);
    }
    fail_msg("no task signal after the reset within 60 s");
    return t;
}

/* Lift: the cube rests on the table (no success); its pose is reported in
 * the base frame; a seeded reset places it from the seed alone: the same
 * seed gives the same start, another seed another one, within +-3 cm. */
static void test_lift_task_and_seeded_reset(void **st)
{
    (void)st;
    hal_mujoco_options_t mo = {.seed = 7};
    hal_t *h = open_scene("sawyer", lift_scene, NULL, &mo);
    run_for(h, NULL, 0.3);
    hal_task_t t = task_after(h, 0);
    assert_int_equal(t.n_values, 8);
    assert_string_equal(t.names[0], "cube_height_m");
    assert_string_equal(t.names[1], "cube_x");
    assert_string_equal(t.names[7], "cube_qz");
    /* robosuite cube half size is 0.02 m: resting, its centre is ~2 cm up */
    assert_double_equal(t.values[0], 0.02, 0.005);
    assert_int_equal(t.success, 0);
    assert_true(t.reward == 0.0);
    double qn = 0;
    for (int i = 4; i < 8; i++)
        qn += t.values[i] * t.values[i];
    assert_double_equal(qn, 1.0, 1e-6);

    double first[8], other[8];
    assert_int_equal(hal_reset_seeded(h, 42), 0);
    t = task_after(h, rt_clock_mono_ns());
    memcpy(first, t.values, sizeof first);
    assert_int_equal(hal_reset_seeded(h, 43), 0);
    t = task_after(h, rt_clock_mono_ns());
    memcpy(other, t.values, sizeof other);
    assert_true(fabs(first[1] - other[1]) + fabs(first[2] - other[2]) > 1e-4);
    assert_true(fabs(first[1] - other[1]) <= 0.061 && fabs(first[2] - other[2]) <= 0.061);
    assert_int_equal(hal_reset_seeded(h, 42), 0);
    t = task_after(h, rt_clock_mono_ns());
    for (int i = 1; i < 8; i++)
        assert_double_equal(t.values[i], first[i], 1e-3);
    /* the base frame: the cube's height above the table and its z differ by
     * the (constant) height of the table top in that frame */
    assert_double_equal(t.values[3] - t.values[0], other[3] - other[0], 1e-3);
    assert_int_equal(hal_reset(h), 0);
    hal_counters_t c;
    assert_int_equal(hal_counters(h, &c), 0);
    assert_int_equal(c.resets, 4);
    hal_destroy(&h);

    hal_t *p = open_scene("panda", panda_scene, NULL, NULL);
    assert_int_equal(hal_read_task(p, &t), -ENOTSUP);
    hal_destroy(&p);
    assert_int_equal(hal_read_task(NULL, &t), -EINVAL);
}

/* Stepped mode from a seeded reset: `n` control periods of 50 ms with joint 1
 * at 0.3 rad/s; the state after them. */
static hal_state_t stepped_episode(hal_t *h, uint64_t seed, int n)
{
    assert_int_equal(hal_reset_seeded(h, seed), 0);
    hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY, .n = 7};
    cmd.values[0] = 0.3;
    for (int k = 0; k < n; k++) {
        assert_int_equal(hal_command(h, &cmd), 0);
        assert_int_equal(hal_advance(h, 50000000, NULL), 0);
    }
    hal_state_t s;
    assert_int_equal(hal_read_state(h, &s), 0);
    return s;
}

/* Stepped mode (the simulated clock): nothing moves between hal_advance
 * calls; a call runs exactly its simulated time with the newest command and
 * publishes that instant; without a new command the arm holds; the same
 * seed and commands give the same states; backends without the mode refuse
 * it. */
static void test_stepped_mode(void **st)
{
    (void)st;
    hal_options_t o = {.stepped = 1};
    hal_mujoco_options_t mo = {.seed = 3};
    hal_t *h = open_scene("sawyer", lift_scene, &o, &mo);
    hal_instant_t a, b;
    assert_int_equal(hal_instant(h, &a), 0);
    assert_int_equal(a.step_ns, 2000000); /* the scene's 2 ms timestep */
    hal_state_t s0, s1;
    assert_int_equal(hal_read_state(h, &s0), 0);
    assert_true(s0.time_mono_ns == a.time_ns);
    assert_true(s0.time_unix_ns == a.time_ns + a.unix_offset_ns);
    pause_ms(100);
    assert_int_equal(hal_read_state(h, &s1), 0);
    assert_true(s1.seq == s0.seq && s1.time_mono_ns == s0.time_mono_ns);
    assert_int_equal(hal_advance(h, 3000000, NULL), -EINVAL);

    s1 = stepped_episode(h, 42, 10);
    assert_int_equal(hal_instant(h, &b), 0);
    assert_true(b.time_ns == a.time_ns + 500000000); /* exactly 10 periods */
    assert_true(s1.time_mono_ns == b.time_ns);
    double moved = s1.q[0] - s0.q[0];
    if (!(moved > 0.5 * 0.3 * 0.5 && moved < 0.3 * 0.5 + 0.02))
        fail_msg("joint 1 moved %g rad in 0.5 s at 0.3 rad/s", moved);
    hal_counters_t c;
    assert_int_equal(hal_counters(h, &c), 0);
    assert_int_equal(c.ticks, 250);
    assert_int_equal(c.watchdog_holds, 0);
    /* no new command: the arm decelerates and comes to rest, counted once */
    for (int k = 0; k < 40; k++)
        assert_int_equal(hal_advance(h, 50000000, NULL), 0);
    assert_int_equal(hal_read_state(h, &s0), 0);
    assert_double_equal(s0.dq[0], 0.0, 0.01);
    assert_int_equal(hal_counters(h, &c), 0);
    assert_int_equal(c.watchdog_holds, 1);
    /* 0 publishes the instant again without time passing */
    assert_int_equal(hal_advance(h, 0, &a), 0);
    assert_int_equal(hal_read_state(h, &s1), 0);
    assert_true(s1.time_mono_ns == a.time_ns && s1.seq > s0.seq);

    /* the same seed and commands: the same states, exactly */
    s0 = stepped_episode(h, 42, 10);
    s1 = stepped_episode(h, 42, 10);
    assert_memory_equal(s0.q, s1.q, sizeof s0.q);
    assert_memory_equal(s0.dq, s1.dq, sizeof s0.dq);
    assert_memory_equal(s0.ee_pose, s1.ee_pose, sizeof s0.ee_pose);
    hal_destroy(&h);

    /* on the real clock there is no stepping (the menagerie Sawyer: a scene
     * that loads in a fraction of the Lift scene's time); sim has no stepped
     * mode */
    h = open_scene("sawyer", sawyer_scene, NULL, NULL);
    assert_int_equal(hal_advance(h, 50000000, NULL), -ENOTSUP);
    assert_int_equal(hal_instant(h, &a), -ENOTSUP);
    hal_destroy(&h);
    char err[512] = "";
    hal_options_t so = {.backend = "sim", .stepped = 1};
    assert_null(hal_new(hal_robot_find("panda"), &so, err, sizeof err));
    assert_non_null(strstr(err, "no stepped mode"));
}

int main(int argc, char **argv)
{
    const char *dir = getenv("PACD_DATA_DIR");
    if (!dir && argc > 1)
        dir = argv[1];
    if (!dir)
        dir = "/work/shared/data";
    snprintf(data_dir, sizeof data_dir, "%s", dir);
    snprintf(panda_scene, sizeof panda_scene, "%s/menagerie/franka_emika_panda/scene_cam.xml",
             data_dir);
    snprintf(sawyer_scene, sizeof sawyer_scene,
             "%s/menagerie/rethink_robotics_sawyer/scene_cam.xml", data_dir);
    snprintf(lift_scene, sizeof lift_scene,
             "%s/robosuite/assets/demonstrations/SawyerLift/models/model_1.xml", data_dir);
    if (access(panda_scene, R_OK) != 0 || access(lift_scene, R_OK) != 0) {
        fprintf(stderr, "skipped: MuJoCo scenes not found under %s (set PACD_DATA_DIR)\n",
                data_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_at_home_and_joint_velocity_moves_joint),
        cmocka_unit_test(test_ee_pose_is_the_model_site),
        cmocka_unit_test(test_never_past_a_limit),
        cmocka_unit_test(test_cartesian_moves_ee),
        cmocka_unit_test(test_panda_gripper_follows_commands),
        cmocka_unit_test(test_lift_gripper_follows_commands),
        cmocka_unit_test(test_lift_fixed_robot_keeps_description),
        cmocka_unit_test(test_gripper_description_needs_scene_gripper),
        cmocka_unit_test(test_watchdog_holds_without_commands),
        cmocka_unit_test(test_bad_command_holds),
        cmocka_unit_test(test_bad_options_fail_with_message),
        cmocka_unit_test_setup_teardown(test_frames_reach_subscriber, ipc_setup, ipc_teardown),
        cmocka_unit_test(test_lift_task_and_seeded_reset),
        cmocka_unit_test(test_stepped_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
