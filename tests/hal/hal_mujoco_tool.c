/* hal-mujoco-tool — runs the mujoco backend the way pacd's control loop
 * would (20 Hz: read state, map a Cartesian action, safety filter, command)
 * for tests/integration/test_mujoco_backend.py. Prints one JSON object on
 * stdout: the robot's limits, the first and last state, counters, and the
 * Lift task signal when the scene has one.
 *
 * usage: hal-mujoco-tool ROBOT SCENE SPACE V1,V2,.. SECONDS[+] [CAMERAS WxH CAM_EP STATE_EP]
 *   SPACE: joint | cartesian | twist (values as hal.h documents the space)
 *   SECONDS: of the backend's own (simulated) time, not of the wall clock, so
 *   that a loaded machine changes how long a run takes, not what it does;
 *   with "+" (e.g. 2+): at least that long, then until stdin reaches EOF (the
 *   test closes it once it has received what it waits for).
 * The command watchdog is 1 s here (pacd's default is 0.2 s): a loop starved
 * by a loaded machine must not make the arm hold; the watchdog has its own
 * tests (tests/hal/test_hal_mujoco.c). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal.h"
#include "hal_cartesian.h"
#include "hal_mujoco.h"
#include "hal_safety.h"
#include "rt_clock.h"

/* 1 once stdin is at EOF (or in error); does not wait. */
static int stdin_closed(void)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    char buf[256];
    return read(0, buf, sizeof buf) <= 0;
}

static void print_state(const char *key, const hal_state_t *s)
{
    printf("\"%s\": {\"q\": [", key);
    for (int i = 0; i < s->n_joints; i++)
        printf("%s%.9g", i ? ", " : "", s->q[i]);
    printf("], \"ee\": [");
    for (int i = 0; i < 7; i++)
        printf("%s%.9g", i ? ", " : "", s->ee_pose[i]);
    printf("], \"gripper\": %.9g, \"time_mono_ns\": %lld}", s->gripper_position,
           (long long)s->time_mono_ns);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: hal-mujoco-tool ROBOT SCENE joint|cartesian|twist V1,V2,.. "
                        "SECONDS [CAMERAS WxH CAM_EP STATE_EP]\n");
        return 2;
    }
    const hal_robot_t *r = hal_robot_find(argv[1]);
    if (!r) {
        fprintf(stderr, "hal-mujoco-tool: unknown robot %s\n", argv[1]);
        return 2;
    }
    hal_space_t space = strcmp(argv[3], "joint") == 0       ? HAL_SPACE_JOINT_VELOCITY
                        : strcmp(argv[3], "cartesian") == 0 ? HAL_SPACE_CARTESIAN_VELOCITY
                                                            : HAL_SPACE_CARTESIAN_TWIST;
    float action[HAL_MAX_ACTION];
    int n = 0;
    for (char *p = argv[4]; *p && n < HAL_MAX_ACTION;) {
        char *end;
        action[n++] = strtof(p, &end);
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p)
            break;
    }
    char *end;
    double seconds = strtod(argv[5], &end);
    int until_eof = *end == '+';
    hal_mujoco_options_t mo = {.scene = argv[2], .seed = 1};
    hal_options_t o = {.backend = "mujoco", .command_timeout_s = 1.0, .backend_options = &mo};
    if (argc > 9) {
        mo.cameras = argv[6];
        if (sscanf(argv[7], "%dx%d", &mo.camera_width, &mo.camera_height) != 2)
            return 2;
        mo.camera_endpoint = argv[8];
        mo.state_endpoint = argv[9];
    }
    char err[512] = "";
    hal_t *h = hal_new(r, &o, err, sizeof err);
    if (!h) {
        fprintf(stderr, "hal-mujoco-tool: %s\n", err);
        return 1;
    }
    r = hal_driven_robot(h); /* the description the backend drives (pacd's loop does the same) */
    hal_state_t first, s;
    while (hal_read_state(h, &first) != 0)
        ;
    hal_command_t prev = {0}, out;
    int have_prev = 0, rc = 0, eof = 0;
    uint32_t all_flags = 0;
    for (;;) {
        if (hal_read_state(h, &s) != 0)
            continue;
        if ((s.time_mono_ns - first.time_mono_ns) * 1e-9 >= seconds &&
            (!until_eof || eof || (eof = stdin_closed())))
            break;
        if (until_eof && !eof)
            eof = stdin_closed();
        hal_command_t jc;
        hal_safety_result_t res;
        if (space == HAL_SPACE_JOINT_VELOCITY) {
            hal_safety_filter(r, NULL, &s, space, action, n, NULL, NULL, have_prev ? &prev : NULL,
                              &out, &res);
        } else {
            uint32_t flags = 0;
            hal_cartesian_to_joint(r, NULL, &s, space, action, n, &jc, &flags);
            all_flags |= flags;
            float jf[HAL_MAX_ACTION];
            for (int i = 0; i < jc.n; i++)
                jf[i] = (float)jc.values[i];
            hal_safety_filter(r, NULL, &s, jc.space, jf, jc.n, NULL, NULL,
                              have_prev ? &prev : NULL, &out, &res);
        }
        all_flags |= res.flags;
        if (res.hold)
            hal_hold(h);
        else if (hal_command(h, &out) != 0)
            rc = 1;
        prev = out;
        have_prev = 1;
        rt_clock_sleep_ns(50000000);   /* commands at 20 Hz */
    }
    hal_hold(h);
    rt_clock_sleep_ns(300000000);
    while (hal_read_state(h, &s) != 0)
        ;
    hal_counters_t c;
    hal_counters(h, &c);
    printf("{\"robot\": \"%s\", \"q_min\": [", r->name);
    for (int i = 0; i < r->n_joints; i++)
        printf("%s%.9g", i ? ", " : "", r->q_min[i]);
    printf("], \"q_max\": [");
    for (int i = 0; i < r->n_joints; i++)
        printf("%s%.9g", i ? ", " : "", r->q_max[i]);
    printf("], ");
    print_state("first", &first);
    printf(", ");
    print_state("last", &s);
    hal_task_t task;
    if (hal_read_task(h, &task) == 0)
        printf(", \"cube_height\": %.6f, \"success\": %d", task.values[0], task.success);
    printf(", \"flags\": %u, \"ticks\": %llu, \"commands\": %llu, \"limit_stops\": %llu}\n",
           all_flags, (unsigned long long)c.ticks, (unsigned long long)c.commands,
           (unsigned long long)c.limit_stops);
    hal_destroy(&h);
    return rc;
}
