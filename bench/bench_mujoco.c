/* bench_mujoco — physics steps per second and render frames per second of
 * the scenes the mujoco backend runs, printed (no assertions).
 *
 * usage: bench_mujoco ROBOT SCENE CAMERA [WxH] [SECONDS] [RT_PRIORITY]
 * Prints, for the scene:
 *   bare mj_step loop: steps/s (the peer for the backend's physics thread);
 *   bare render loop: frames/s of one camera (mjv_updateScene + mjr_render +
 *   readPixels + flip), EGL surfaceless;
 *   the hal backend running for SECONDS with that camera at 20 Hz: physics
 *   ticks per second of wall time (target 1/timestep), overruns, frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "hal_mujoco.h"
#include "hal_mujoco_util.h"
#include "rt_clock.h"

static double mono_s(void)
{
    return rt_clock_mono_ns() * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_mujoco ROBOT SCENE CAMERA [WxH] [SECONDS]\n");
        return 2;
    }
    const char *robot = argv[1], *scene = argv[2], *camera = argv[3];
    int w = 128, h = 128;
    if (argc > 4 && sscanf(argv[4], "%dx%d", &w, &h) != 2) {
        fprintf(stderr, "bench_mujoco: size wants WxH\n");
        return 2;
    }
    double seconds = argc > 5 ? atof(argv[5]) : 3.0;
    int prio = argc > 6 ? atoi(argv[6]) : 0;
    char err[512] = "";
    mjModel *m = mj_loadXML(scene, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "bench_mujoco: %s\n", err);
        return 1;
    }
    mjData *d = mj_makeData(m);
    int key = mj_name2id(m, mjOBJ_KEY, "home");
    if (key >= 0)
        mj_resetDataKeyframe(m, d, key);
    mj_forward(m, d);

    int n = 0;
    double t0 = mono_s();
    while (mono_s() - t0 < 1.0)
        for (int i = 0; i < 100; i++, n++)
            mj_step(m, d);
    double step_rate = n / (mono_s() - t0);

    hal_mjrender_t *r = hal_mjrender_new(m, w, h, err, sizeof err);
    double frame_rate = 0;
    if (r) {
        uint8_t *rgb = malloc((size_t)w * h * 3);
        int cam = hal_mjrender_camera(m, camera);
        int f = 0;
        t0 = mono_s();
        while (rgb && cam >= 0 && mono_s() - t0 < 1.0) {
            hal_mjrender_rgb(r, m, d, cam, rgb);
            f++;
        }
        frame_rate = f / (mono_s() - t0);
        free(rgb);
        hal_mjrender_destroy(&r);
    } else {
        fprintf(stderr, "bench_mujoco: %s\n", err);
    }

    hal_mujoco_options_t mo = {.scene = scene, .cameras = camera, .camera_width = w,
                               .camera_height = h, .physics_rt_priority = prio,
                               /* frames go nowhere (no subscriber): rendered, then dropped */
                               .camera_endpoint = "tcp://127.0.0.1:9"};
    hal_options_t o = {.backend = "mujoco", .backend_options = &mo};
    hal_t *hal = hal_new(hal_robot_find(robot), &o, err, sizeof err);
    double tick_rate = 0;
    hal_counters_t c0 = {0}, c1 = {0};
    if (hal) {
        hal_counters(hal, &c0);
        t0 = mono_s();
        rt_clock_sleep_ns((int64_t)(seconds * 1e9));
        hal_counters(hal, &c1);
        tick_rate = (c1.ticks - c0.ticks) / (mono_s() - t0);
        hal_destroy(&hal);
    } else {
        fprintf(stderr, "bench_mujoco: %s\n", err);
    }
    printf("%-58s timestep %.4f s | bare mj_step %8.0f steps/s (%.1f us) | render %s %dx%d "
           "%6.1f frames/s | backend %6.0f ticks/s (target %.0f), %llu overruns in %.0f s with "
           "%s at 20 Hz, physics %s\n",
           scene, m->opt.timestep, step_rate, 1e6 / step_rate, camera, w, h, frame_rate,
           tick_rate, 1.0 / m->opt.timestep, (unsigned long long)(c1.overruns - c0.overruns),
           seconds, camera, prio > 0 ? "SCHED_FIFO" : "SCHED_OTHER");
    mj_deleteData(d);
    mj_deleteModel(m);
    return 0;
}
