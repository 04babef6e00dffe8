/* log_writer_tool — write one episode log through the real logger, with
 * values given by formulas so another reader can check every one.
 *
 *   log_writer_tool --dir DIR --id EPISODE_ID [--steps N] [--cameras C]
 *                   [--width W] [--height H] [--kill-after K] [--no-end]
 *
 * For step s (0 <= s < N) it pushes, in this order:
 *   robot state: n_joints 7, q[j] = 0.1 j + 0.001 s, dq[j] = -0.01 j,
 *     gripper_position 0.04, gripper_velocity 0, grasp = s % 2,
 *     ee_pose = (0.5, 0, 0.3, 1, 0, 0, 0), time_unix_ns = T0 + s * 50 ms, seq = s;
 *   for camera c < C: frame "cam<c>", W x H RGB8, byte k = (31 s + 17 c + k) mod 256,
 *     capture_time_unix_ns = T0 + s * 50 ms - 1 ms, seq = s;
 *   step: observation fields joint_positions [7] (values 0..6), joint_velocities [7]
 *     (7..13), task [1, 4] (14..17), value i = 0.25 s - 0.125 i;
 *     action_dim 7, action[j] = 0.01 (j + 1) ((s % 5) - 2), policy_action[j] = 2 action[j]
 *     (float32), action_space 2; reward = 1 on the final step else 0; discount = 0 on
 *     the final step else 1; is_first = (s == 0); is_last = is_terminal = (s == N - 1);
 *     stale = held = (s % 7 == 3); safety_flags = s % 4; has_q_value = (s % 2 == 0),
 *     q_value = 0.5 s; frames: one ref per camera (seq s, capture as above,
 *     age_us 1000 + s); tick_mono_ns = 1e9 + s * 50 ms; time_unix_ns = T0 + s * 50 ms;
 *     inference_us = 100 + s; robot_state_seq = s.
 * T0 = 1700000000000000000 ns. Episode metadata: robot "panda", backend "sim",
 * checkpoint_path "/tmp/pacd-test.safetensors", checkpoint_sha256 "ab" x 32,
 * rate_hz 20, config_text "[logger]\ndirectory = DIR\n".
 *
 * --kill-after K: after K steps are pushed and flushed to the kernel, raise
 * SIGKILL (the file stays unfinished). --no-end: do not end the episode
 * (logger_destroy still closes it). On success prints the logger stats as
 * JSON and the file path; exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log_writer.h"

#define T0 1700000000000000000LL
#define PERIOD 50000000LL

static int push_retry(logger_t *lg, int rc_first, int (*again)(logger_t *, const void *), const void *arg)
{
    int rc = rc_first;
    while (rc == -ENOSPC) {
        logger_flush(lg, 10000);
        rc = again(lg, arg);
    }
    return rc;
}

static int again_step(logger_t *lg, const void *a) { return logger_push_step(lg, a); }
static int again_frame(logger_t *lg, const void *a) { return logger_push_frame(lg, a); }
static int again_state(logger_t *lg, const void *a) { return logger_push_robot_state(lg, a); }

int main(int argc, char **argv)
{
    const char *dir = NULL, *id = NULL;
    long steps = 10, cameras = 2, width = 16, height = 12, kill_after = -1;
    int no_end = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-end") == 0) {
            no_end = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "log_writer_tool: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--dir") == 0) dir = v;
        else if (strcmp(a, "--id") == 0) id = v;
        else if (strcmp(a, "--steps") == 0) steps = strtol(v, NULL, 10);
        else if (strcmp(a, "--cameras") == 0) cameras = strtol(v, NULL, 10);
        else if (strcmp(a, "--width") == 0) width = strtol(v, NULL, 10);
        else if (strcmp(a, "--height") == 0) height = strtol(v, NULL, 10);
        else if (strcmp(a, "--kill-after") == 0) kill_after = strtol(v, NULL, 10);
        else {
            fprintf(stderr, "log_writer_tool: unknown option %s\n", a);
            return 2;
        }
    }
    if (!dir || !id || steps < 1 || cameras < 0 || cameras > LOGGER_MAX_CAMERAS || width < 1 ||
        height < 1) {
        fprintf(stderr, "usage: log_writer_tool --dir DIR --id ID [--steps N] [--cameras C<=%d] "
                        "[--width W] [--height H] [--kill-after K] [--no-end]\n", LOGGER_MAX_CAMERAS);
        return 2;
    }
    size_t frame_bytes = (size_t)width * (size_t)height * 3;
    char config_text[600];
    snprintf(config_text, sizeof config_text, "[logger]\ndirectory = %s\n", dir);

    char err[256];
    logger_config_t cfg = {.directory = dir, .ring_steps = 64, .ring_frames = 8,
                           .max_frame_bytes = frame_bytes, .fsync_interval_ms = 200};
    logger_t *lg = logger_new(&cfg, err, sizeof err);
    if (!lg) {
        fprintf(stderr, "log_writer_tool: %s\n", err);
        return 1;
    }

    static logger_episode_t ep;
    snprintf(ep.episode_id, sizeof ep.episode_id, "%s", id);
    ep.robot = "panda";
    ep.backend = "sim";
    snprintf(ep.checkpoint_path, sizeof ep.checkpoint_path, "/tmp/pacd-test.safetensors");
    snprintf(ep.checkpoint_sha256, sizeof ep.checkpoint_sha256, "%s", "abababababababababababababababababababababababababababababababab");
    ep.config_text = config_text;
    ep.rate_hz = 20.0;
    ep.action_space = 2;
    const char *names[3] = {"joint_positions", "joint_velocities", "task"};
    int sizes[3] = {7, 7, 4};
    ep.layout.n_fields = 3;
    for (int f = 0, off = 0; f < 3; f++) {
        snprintf(ep.layout.name[f], LOGGER_NAME, "%s", names[f]);
        ep.layout.offset[f] = off;
        ep.layout.size[f] = sizes[f];
        off += sizes[f];
    }
    ep.layout.ndim[0] = ep.layout.ndim[1] = 1;
    ep.layout.shape[0][0] = ep.layout.shape[1][0] = 7;
    ep.layout.ndim[2] = 2;
    ep.layout.shape[2][0] = 1;
    ep.layout.shape[2][1] = 4;

    int rc = logger_begin_episode(lg, &ep);
    if (rc) {
        fprintf(stderr, "log_writer_tool: begin_episode: %s\n", strerror(-rc));
        return 1;
    }
    uint8_t *pixels = malloc(frame_bytes);
    static logger_step_t st;
    if (!pixels)
        return 1;
    for (long s = 0; s < steps; s++) {
        logger_robot_state_t rs;
        memset(&rs, 0, sizeof rs);
        rs.n_joints = 7;
        for (int j = 0; j < 7; j++) {
            rs.q[j] = 0.1 * j + 0.001 * (double)s;
            rs.dq[j] = -0.01 * j;
        }
        rs.gripper_position = 0.04;
        rs.grasp = (int)(s % 2);
        double pose[7] = {0.5, 0, 0.3, 1, 0, 0, 0};
        memcpy(rs.ee_pose, pose, sizeof pose);
        rs.time_unix_ns = T0 + s * PERIOD;
        rs.seq = (uint64_t)s;
        rc = push_retry(lg, logger_push_robot_state(lg, &rs), again_state, &rs);
        for (long c = 0; c < cameras && rc == 0; c++) {
            char cam[16];
            snprintf(cam, sizeof cam, "cam%ld", c);
            for (size_t k = 0; k < frame_bytes; k++)
                pixels[k] = (uint8_t)((31 * (size_t)s + 17 * (size_t)c + k) & 0xff);
            logger_frame_t fr = {.camera = cam, .width = (uint32_t)width, .height = (uint32_t)height,
                                 .encoding = 1, .data = pixels, .size = frame_bytes,
                                 .capture_time_unix_ns = T0 + s * PERIOD - 1000000, .seq = (uint64_t)s};
            rc = push_retry(lg, logger_push_frame(lg, &fr), again_frame, &fr);
        }
        memset(&st, 0, sizeof st);
        st.step = (uint64_t)s;
        st.n_obs = 18;
        for (int i = 0; i < 18; i++)
            st.observation[i] = (float)(0.25 * (double)s - 0.125 * i);
        st.action_dim = 7;
        for (int j = 0; j < 7; j++) {
            st.action[j] = (float)(0.01 * (j + 1) * (double)((s % 5) - 2));
            st.policy_action[j] = 2.0f * st.action[j];
        }
        st.action_space = 2;
        int final = s == steps - 1;
        st.reward = final ? 1.0f : 0.0f;
        st.discount = final ? 0.0f : 1.0f;
        st.is_first = s == 0;
        st.is_last = st.is_terminal = (uint8_t)final;
        st.stale = st.held = s % 7 == 3;
        st.safety_flags = (uint32_t)(s % 4);
        st.has_q_value = s % 2 == 0;
        st.q_value = (float)(0.5 * (double)s);
        st.n_frames = (int)cameras;
        for (int c = 0; c < cameras; c++) {
            snprintf(st.frames[c].camera, LOGGER_NAME, "cam%d", c);
            st.frames[c].seq = (uint64_t)s;
            st.frames[c].capture_time_unix_ns = T0 + s * PERIOD - 1000000;
            st.frames[c].age_us = (uint32_t)(1000 + s);
        }
        st.tick_mono_ns = 1000000000LL + s * PERIOD;
        st.time_unix_ns = T0 + s * PERIOD;
        st.inference_us = (uint32_t)(100 + s);
        st.robot_state_seq = (uint64_t)s;
        if (rc == 0)
            rc = push_retry(lg, logger_push_step(lg, &st), again_step, &st);
        if (rc) {
            fprintf(stderr, "log_writer_tool: push at step %ld: %s\n", s, strerror(-rc));
            return 1;
        }
        if (kill_after >= 0 && s + 1 == kill_after) {
            logger_flush(lg, 10000);
            fflush(stdout);
            raise(SIGKILL);
        }
    }
    if (!no_end)
        logger_end_episode(lg);
    logger_flush(lg, 10000);
    logger_stats_t stats;
    logger_get_stats(lg, &stats);
    logger_destroy(&lg);
    free(pixels);
    printf("{\"steps_written\": %llu, \"frames_written\": %llu, \"states_written\": %llu, "
           "\"steps_dropped\": %llu, \"frames_dropped\": %llu, \"states_dropped\": %llu, "
           "\"write_errors\": %llu, \"episodes_opened\": %llu, \"path\": \"%s\"}\n",
           (unsigned long long)stats.steps_written, (unsigned long long)stats.frames_written,
           (unsigned long long)stats.states_written, (unsigned long long)stats.steps_dropped,
           (unsigned long long)stats.frames_dropped, (unsigned long long)stats.states_dropped,
           (unsigned long long)stats.write_errors, (unsigned long long)stats.episodes_opened,
           stats.last_path[0] ? stats.last_path : stats.current_path);
    return stats.write_errors ? 1 : 0;
}
