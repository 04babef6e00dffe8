/* Unit tests of the episode writer (log/log_writer.c) read back with the MCAP
 * reader (log/log_mcap.h), the log reader's verify (log/log_reader.h) and
 * `pacctl log` (clients/pacctl_log.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pacctl_log.h"
#include "log_writer.h"
#include "log_mcap.h"
#include "log_reader.h"
#include "pacd_proto.h"

#define N_STEPS 12
#define N_CAMS 2
#define FRAME_BYTES 300

typedef struct {
    char dir[256];
    logger_t *lg;
} fixture_t;

static int rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    const char *base = getenv("PACD_TEST_TMP");
    snprintf(f->dir, sizeof f->dir, "%s/logger-test-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    logger_destroy(&f->lg);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static logger_t *make_logger(fixture_t *f, const char *sub, size_t ring_steps, size_t ring_frames,
                             size_t max_frame)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/%s", f->dir, sub);
    logger_config_t cfg = {.directory = dir, .ring_steps = ring_steps, .ring_frames = ring_frames,
                           .max_frame_bytes = max_frame, .fsync_interval_ms = 50};
    char err[256] = "";
    logger_t *lg = logger_new(&cfg, err, sizeof err);
    assert_non_null(lg);
    return lg;
}

static void fill_episode(logger_episode_t *ep, const char *id)
{
    memset(ep, 0, sizeof *ep);
    snprintf(ep->episode_id, sizeof ep->episode_id, "%s", id);
    ep->robot = "sawyer";
    ep->backend = "sim";
    snprintf(ep->checkpoint_path, sizeof ep->checkpoint_path, "/ckpt/a.safetensors");
    snprintf(ep->checkpoint_sha256, sizeof ep->checkpoint_sha256, "%s", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    ep->config_text = "[robot]\nmodel = sawyer\n";
    ep->rate_hz = 20.0;
    ep->action_space = 2;
    ep->layout.n_fields = 2;
    snprintf(ep->layout.name[0], LOGGER_NAME, "proprio");
    ep->layout.ndim[0] = 2;
    ep->layout.shape[0][0] = 3;
    ep->layout.shape[0][1] = 2;
    ep->layout.offset[0] = 0;
    ep->layout.size[0] = 6;
    snprintf(ep->layout.name[1], LOGGER_NAME, "prev_action");
    ep->layout.ndim[1] = 1;
    ep->layout.shape[1][0] = 5;
    ep->layout.offset[1] = 6;
    ep->layout.size[1] = 5;
}

/* Deterministic pseudo-random values so each step differs. */
static float val(uint64_t step, int i)
{
    return (float)((double)((step * 7919u + (uint64_t)i * 104729u) % 1000u) / 37.0 - 10.0);
}

static void fill_step(logger_step_t *s, uint64_t step, uint64_t n_steps)
{
    memset(s, 0, sizeof *s);
    s->step = step;
    s->n_obs = 11;
    for (int i = 0; i < 11; i++)
        s->observation[i] = val(step, i);
    s->action_dim = 5;
    for (int j = 0; j < 5; j++) {
        s->policy_action[j] = val(step, 100 + j);
        s->action[j] = val(step, 200 + j);
    }
    s->action_space = 2;
    s->reward = step + 1 == n_steps ? 1.0f : 0.25f;
    s->discount = step + 1 == n_steps ? 0.0f : 1.0f;
    s->is_first = step == 0;
    s->is_last = s->is_terminal = step + 1 == n_steps;
    s->stale = step % 3 == 1;
    s->held = step % 5 == 2;
    s->safety_flags = (uint32_t)(step * 3);
    s->has_q_value = step % 2;
    s->q_value = val(step, 300);
    s->n_frames = N_CAMS;
    for (int c = 0; c < N_CAMS; c++) {
        snprintf(s->frames[c].camera, LOGGER_NAME, "wrist%d", c);
        s->frames[c].seq = step * 10 + (uint64_t)c;
        s->frames[c].capture_time_unix_ns = 1000 + (int64_t)step;
        s->frames[c].age_us = (uint32_t)(step + 7);
    }
    s->tick_mono_ns = 5000000000LL + (int64_t)step * 50000000LL;
    s->time_unix_ns = 1800000000000000000LL + (int64_t)step * 50000000LL;
    s->inference_us = (uint32_t)(200 + step);
    s->robot_state_seq = step + 3;
}

static void fill_state(logger_robot_state_t *r, uint64_t step)
{
    memset(r, 0, sizeof *r);
    r->n_joints = 7;
    for (int j = 0; j < 7; j++) {
        r->q[j] = val(step, 400 + j);
        r->dq[j] = val(step, 500 + j);
    }
    r->gripper_position = 0.02;
    r->gripper_velocity = -0.1;
    r->grasp = (int)(step % 2);
    for (int i = 0; i < 7; i++)
        r->ee_pose[i] = val(step, 600 + i);
    r->time_unix_ns = 1800000000000000000LL + (int64_t)step * 50000000LL - 1;
    r->seq = step;
}

static void fill_pixels(uint8_t *px, uint64_t step, int cam)
{
    for (int k = 0; k < FRAME_BYTES; k++)
        px[k] = (uint8_t)(step * 13 + (uint64_t)cam * 101 + (uint64_t)k);
}

/* Pushes refused with -ENOSPC (then retried) by the last push_episode: the
 * logger counts them as dropped. */
static uint64_t refused_steps, refused_frames, refused_states;

/* Push one whole episode; waits (test only) when a ring is full. */
static void push_episode(logger_t *lg, const char *id, uint64_t n_steps)
{
    refused_steps = refused_frames = refused_states = 0;
    logger_episode_t ep;
    fill_episode(&ep, id);
    assert_int_equal(logger_begin_episode(lg, &ep), 0);
    static logger_step_t s;
    uint8_t px[FRAME_BYTES];
    for (uint64_t i = 0; i < n_steps; i++) {
        logger_robot_state_t r;
        fill_state(&r, i);
        while (logger_push_robot_state(lg, &r) == -ENOSPC) {
            refused_states++;
            logger_flush(lg, 5000);
        }
        for (int c = 0; c < N_CAMS; c++) {
            char cam[16];
            snprintf(cam, sizeof cam, "wrist%d", c);
            fill_pixels(px, i, c);
            logger_frame_t fr = {.camera = cam, .width = 10, .height = 10, .encoding = 1, .data = px,
                                 .size = FRAME_BYTES, .capture_time_unix_ns = 1000 + (int64_t)i,
                                 .seq = i * 10 + (uint64_t)c};
            while (logger_push_frame(lg, &fr) == -ENOSPC) {
                refused_frames++;
                logger_flush(lg, 5000);
            }
        }
        fill_step(&s, i, n_steps);
        while (logger_push_step(lg, &s) == -ENOSPC) {
            refused_steps++;
            logger_flush(lg, 5000);
        }
    }
    while (logger_end_episode(lg) == -ENOSPC)
        logger_flush(lg, 5000);
    assert_int_equal(logger_flush(lg, 60000), 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void episode_path(const fixture_t *f, const char *sub, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/%s.mcap", f->dir, sub, id);
}

/* ------------------------------------------------------------------ */

static void test_new_rejects_bad_config(void **state)
{
    fixture_t *f = *state;
    char err[256];
    assert_null(logger_new(NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    logger_config_t cfg = {.directory = ""};
    assert_null(logger_new(&cfg, err, sizeof err));
    /* a regular file where the directory should be */
    char path[400];
    snprintf(path, sizeof path, "%s/plainfile", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    cfg.directory = path;
    err[0] = '\0';
    assert_null(logger_new(&cfg, err, sizeof err));
    assert_non_null(strstr(err, path));
    logger_destroy(NULL);
}

static void test_invalid_arguments(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "inv", 8, 2, 64);
    logger_episode_t ep;
    const char *bad_ids[] = {"", "../escape", "a/b", ".hidden", "sp ace"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        fill_episode(&ep, bad_ids[i]);
        assert_int_equal(logger_begin_episode(f->lg, &ep), -EINVAL);
    }
    fill_episode(&ep, "ok-id");
    ep.layout.offset[1] = LOGGER_MAX_OBS - 2; /* field runs past the observation */
    assert_int_equal(logger_begin_episode(f->lg, &ep), -EINVAL);
    assert_int_equal(logger_begin_episode(NULL, &ep), -EINVAL);

    static logger_step_t s;
    fill_step(&s, 0, 1);
    s.n_obs = LOGGER_MAX_OBS + 1;
    assert_int_equal(logger_push_step(f->lg, &s), -EINVAL);
    fill_step(&s, 0, 1);
    s.action_dim = -1;
    assert_int_equal(logger_push_step(f->lg, &s), -EINVAL);
    assert_int_equal(logger_push_step(f->lg, NULL), -EINVAL);
    logger_frame_t fr = {.camera = NULL, .size = 1};
    assert_int_equal(logger_push_frame(f->lg, &fr), -EINVAL);
    fr.camera = "c";
    fr.data = NULL;
    assert_int_equal(logger_push_frame(f->lg, &fr), -EINVAL);
    logger_robot_state_t r;
    fill_state(&r, 0);
    r.n_joints = 8;
    assert_int_equal(logger_push_robot_state(f->lg, &r), -EINVAL);
    assert_int_equal(logger_push_step(NULL, &s), -EINVAL);
    assert_int_equal(logger_end_episode(NULL), -EINVAL);

    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_rejected, 6);
    assert_int_equal(st.steps_dropped, 3);
    assert_int_equal(st.frames_dropped, 2);
    assert_int_equal(st.states_dropped, 1);
    assert_int_equal(st.episodes_opened, 0);
}

static void test_ring_full_counts_and_never_blocks(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "full", 2, 1, 64);
    logger_episode_t ep;
    fill_episode(&ep, "ring-full");
    assert_int_equal(logger_begin_episode(f->lg, &ep), 0);
    static logger_step_t s;
    uint64_t ok = 0, full = 0;
    /* Far more pushes than a 2-slot ring holds while the writer sleeps
     * between polls: some must be refused, none may block or fail otherwise. */
    for (uint64_t i = 0; i < 20000; i++) {
        fill_step(&s, ok, 1000000);
        int rc = logger_push_step(f->lg, &s);
        assert_true(rc == 0 || rc == -ENOSPC);
        if (rc == 0)
            ok++;
        else
            full++;
    }
    uint64_t frames_ok = 0, frames_full = 0;
    uint8_t px[64] = {0};
    for (int i = 0; i < 2000; i++) {
        logger_frame_t fr = {.camera = "c0", .width = 8, .height = 8, .data = px, .size = 64};
        int rc = logger_push_frame(f->lg, &fr);
        assert_true(rc == 0 || rc == -ENOSPC);
        if (rc == 0)
            frames_ok++;
        else
            frames_full++;
    }
    assert_true(full > 0);
    assert_true(frames_full > 0);
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.steps_dropped, full);
    assert_int_equal(st.steps_written, ok);
    assert_int_equal(st.frames_dropped, frames_full);
    assert_int_equal(st.frames_written, frames_ok);
    assert_int_equal(st.write_errors, 0);
}

static void test_oversized_frame(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "big", 8, 4, 1024);
    logger_episode_t ep;
    fill_episode(&ep, "big-frames");
    assert_int_equal(logger_begin_episode(f->lg, &ep), 0);
    uint8_t *px = calloc(1, 1025);
    assert_non_null(px);
    logger_frame_t fr = {.camera = "cam", .width = 1, .height = 1025, .data = px, .size = 1025};
    assert_int_equal(logger_push_frame(f->lg, &fr), -EMSGSIZE);
    fr.size = 1024;
    assert_int_equal(logger_push_frame(f->lg, &fr), 0);
    assert_int_equal(logger_end_episode(f->lg), 0);
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.frames_dropped, 1);
    assert_int_equal(st.frames_written, 1);
    free(px);
}

/* Checks every message of a file written by push_episode. */
static void check_episode_file(const char *path, const char *id, uint64_t n_steps)
{
    size_t len;
    uint8_t *data = slurp(path, &len);
    mcap_reader_t rd;
    mcap_reader_init(&rd, data, len);
    mcap_record_t rec;
    uint64_t steps = 0, states = 0, frames[N_CAMS] = {0};
    uint16_t cam_channel[N_CAMS] = {0};
    int saw_metadata = 0;
    while (mcap_reader_next(&rd, &rec) == MCAP_READ_RECORD) {
        if (rec.opcode == MCAP_OP_CHANNEL) {
            mcap_channel_t c;
            assert_int_equal(mcap_parse_channel(&rec, &c), 0);
            for (int k = 0; k < N_CAMS; k++) {
                char topic[64];
                snprintf(topic, sizeof topic, "/pacd/camera/wrist%d", k);
                if (mcap_str_eq(c.topic, topic))
                    cam_channel[k] = c.id;
            }
        } else if (rec.opcode == MCAP_OP_METADATA) {
            mcap_metadata_t md;
            assert_int_equal(mcap_parse_metadata(&rec, &md), 0);
            assert_true(mcap_str_eq(md.name, "pacd"));
            size_t pos = 0;
            mcap_str_t k, v;
            while (mcap_map_next(md.map, &pos, &k, &v) == 1) {
                if (mcap_str_eq(k, "episode_id"))
                    assert_true(mcap_str_eq(v, id));
                if (mcap_str_eq(k, "robot"))
                    assert_true(mcap_str_eq(v, "sawyer"));
                if (mcap_str_eq(k, "checkpoint_sha256"))
                    assert_true(mcap_str_eq(v, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
                if (mcap_str_eq(k, "config"))
                    assert_true(mcap_str_eq(v, "[robot]\nmodel = sawyer\n"));
            }
            saw_metadata = 1;
        } else if (rec.opcode == MCAP_OP_MESSAGE) {
            mcap_message_t m;
            assert_int_equal(mcap_parse_message(&rec, &m), 0);
            if (m.channel_id == 1) {
                Pacd__V1__Step *s = pacd__v1__step__unpack(NULL, m.data.len, m.data.ptr);
                assert_non_null(s);
                static logger_step_t want;
                fill_step(&want, steps, n_steps);
                assert_string_equal(s->episode_id, id);
                assert_int_equal(s->step, steps);
                assert_int_equal(s->n_observation, 2);
                assert_string_equal(s->observation[0]->name, "proprio");
                assert_int_equal(s->observation[0]->n_shape, 2);
                assert_int_equal(s->observation[0]->shape[0], 3);
                assert_int_equal(s->observation[0]->shape[1], 2);
                assert_int_equal(s->observation[0]->n_values, 6);
                assert_memory_equal(s->observation[0]->values, want.observation, 6 * sizeof(float));
                assert_string_equal(s->observation[1]->name, "prev_action");
                assert_int_equal(s->observation[1]->n_values, 5);
                assert_memory_equal(s->observation[1]->values, want.observation + 6, 5 * sizeof(float));
                assert_int_equal(s->n_policy_action, 5);
                assert_memory_equal(s->policy_action, want.policy_action, 5 * sizeof(float));
                assert_non_null(s->action);
                assert_int_equal(s->action->n_values, 5);
                assert_memory_equal(s->action->values, want.action, 5 * sizeof(float));
                assert_int_equal(s->action->space, 2);
                assert_true(s->reward == want.reward);
                assert_true(s->discount == want.discount);
                assert_int_equal(s->is_first, want.is_first);
                assert_int_equal(s->is_last, want.is_last);
                assert_int_equal(s->is_terminal, want.is_terminal);
                assert_int_equal(s->stale, want.stale);
                assert_int_equal(s->held, want.held);
                assert_int_equal(s->safety_flags, want.safety_flags);
                assert_int_equal(s->has_q_value, want.has_q_value);
                assert_true(s->q_value == want.q_value);
                assert_int_equal(s->n_frames, N_CAMS);
                for (int c = 0; c < N_CAMS; c++) {
                    assert_string_equal(s->frames[c]->camera, want.frames[c].camera);
                    assert_int_equal(s->frames[c]->seq, want.frames[c].seq);
                    assert_int_equal(s->frames[c]->capture_time_unix_ns, want.frames[c].capture_time_unix_ns);
                    assert_int_equal(s->frames[c]->age_us, want.frames[c].age_us);
                }
                assert_int_equal(s->tick_mono_ns, want.tick_mono_ns);
                assert_int_equal(s->time_unix_ns, want.time_unix_ns);
                assert_int_equal(m.log_time, (uint64_t)want.time_unix_ns);
                assert_int_equal(s->inference_us, want.inference_us);
                assert_int_equal(s->robot_state_seq, want.robot_state_seq);
                pacd__v1__step__free_unpacked(s, NULL);
                steps++;
            } else if (m.channel_id == 2) {
                Pacd__V1__RobotState *r = pacd__v1__robot_state__unpack(NULL, m.data.len, m.data.ptr);
                assert_non_null(r);
                logger_robot_state_t want;
                fill_state(&want, states);
                assert_string_equal(r->robot, "sawyer");
                assert_int_equal(r->n_joint_positions, 7);
                assert_memory_equal(r->joint_positions, want.q, 7 * sizeof(double));
                assert_memory_equal(r->joint_velocities, want.dq, 7 * sizeof(double));
                assert_true(r->gripper_position == want.gripper_position);
                assert_true(r->gripper_velocity == want.gripper_velocity);
                assert_int_equal(r->grasp, want.grasp);
                assert_non_null(r->end_effector);
                assert_true(r->end_effector->x == want.ee_pose[0]);
                assert_true(r->end_effector->qz == want.ee_pose[6]);
                assert_int_equal(r->seq, want.seq);
                pacd__v1__robot_state__free_unpacked(r, NULL);
                states++;
            } else {
                int c = m.channel_id == cam_channel[0] ? 0 : m.channel_id == cam_channel[1] ? 1 : -1;
                assert_true(c >= 0);
                Pacd__V1__CameraFrame *fr = pacd__v1__camera_frame__unpack(NULL, m.data.len, m.data.ptr);
                assert_non_null(fr);
                uint8_t px[FRAME_BYTES];
                fill_pixels(px, frames[c], c);
                assert_int_equal(fr->data.len, FRAME_BYTES);
                assert_memory_equal(fr->data.data, px, FRAME_BYTES);
                assert_int_equal(fr->seq, frames[c] * 10 + (uint64_t)c);
                assert_int_equal(fr->width, 10);
                assert_int_equal(fr->encoding, 1);
                pacd__v1__camera_frame__free_unpacked(fr, NULL);
                frames[c]++;
            }
        }
    }
    assert_int_equal(mcap_reader_next(&rd, &rec), MCAP_READ_END);
    assert_true(saw_metadata);
    assert_int_equal(steps, n_steps);
    assert_int_equal(states, n_steps);
    for (int c = 0; c < N_CAMS; c++)
        assert_int_equal(frames[c], n_steps);
    free(data);

    log_report_t rep;
    assert_int_equal(log_verify_file(path, &rep), 0);
    assert_int_equal(rep.status, LOG_VALID);
    assert_true(rep.closed);
    assert_true(rep.has_summary);
    assert_int_equal(rep.steps, n_steps);
    assert_string_equal(rep.episode_id, id);
}

static void test_episode_roundtrip(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "rt", 4, 2, FRAME_BYTES);
    /* two episodes back to back without waiting in between: records must
     * land in their own episode's file although they cross three rings */
    logger_episode_t ep;
    static logger_step_t s;
    uint8_t px[FRAME_BYTES];
    for (int e = 0; e < 2; e++) {
        char id[32];
        snprintf(id, sizeof id, "20261122T023000Z-sawyer-%04d", e + 1);
        fill_episode(&ep, id);
        while (logger_begin_episode(f->lg, &ep) == -ENOSPC)
            logger_flush(f->lg, 5000);
        for (uint64_t i = 0; i < N_STEPS; i++) {
            logger_robot_state_t r;
            fill_state(&r, i);
            while (logger_push_robot_state(f->lg, &r) == -ENOSPC)
                logger_flush(f->lg, 5000);
            for (int c = 0; c < N_CAMS; c++) {
                char cam[16];
                snprintf(cam, sizeof cam, "wrist%d", c);
                fill_pixels(px, i, c);
                logger_frame_t fr = {.camera = cam, .width = 10, .height = 10, .encoding = 1,
                                     .data = px, .size = FRAME_BYTES,
                                     .capture_time_unix_ns = 1000 + (int64_t)i, .seq = i * 10 + (uint64_t)c};
                while (logger_push_frame(f->lg, &fr) == -ENOSPC)
                    logger_flush(f->lg, 5000);
            }
            fill_step(&s, i, N_STEPS);
            while (logger_push_step(f->lg, &s) == -ENOSPC)
                logger_flush(f->lg, 5000);
        }
        /* no end_episode for the first: begin closes it */
        if (e == 1)
            while (logger_end_episode(f->lg) == -ENOSPC)
                logger_flush(f->lg, 5000);
    }
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_opened, 2);
    assert_int_equal(st.steps_written, 2 * N_STEPS);
    assert_int_equal(st.frames_written, 2 * N_STEPS * N_CAMS);
    assert_int_equal(st.states_written, 2 * N_STEPS);
    assert_int_equal(st.write_errors, 0);
    assert_string_equal(st.current_path, "");
    char path[512];
    episode_path(f, "rt", "20261122T023000Z-sawyer-0002", path, sizeof path);
    assert_string_equal(st.last_path, path);
    check_episode_file(path, "20261122T023000Z-sawyer-0002", N_STEPS);
    episode_path(f, "rt", "20261122T023000Z-sawyer-0001", path, sizeof path);
    check_episode_file(path, "20261122T023000Z-sawyer-0001", N_STEPS);

    /* the same id again must not overwrite the log */
    push_episode(f->lg, "20261122T023000Z-sawyer-0001", 2);
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_opened, 2);
    assert_int_equal(st.write_errors, 1);
    assert_non_null(strstr(st.last_error, "20261122T023000Z-sawyer-0001"));
    check_episode_file(path, "20261122T023000Z-sawyer-0001", N_STEPS);
}

/* Record end offsets by an independent walk (opcode + u64 length). */
static size_t record_ends(const uint8_t *d, size_t len, size_t *ends, size_t cap)
{
    size_t pos = MCAP_MAGIC_LEN, n = 0;
    while (pos + 9 <= len && n < cap) {
        uint64_t l = 0;
        for (int i = 7; i >= 0; i--)
            l = (l << 8) | d[pos + 1 + (size_t)i];
        if (pos + 9 + l > len)
            break;
        pos += 9 + (size_t)l;
        ends[n++] = pos;
        if (d[pos - 9 - (size_t)l] == MCAP_OP_FOOTER)
            break;
    }
    return n;
}

static void check_cut(const uint8_t *full, size_t cut, const size_t *ends, size_t n_ends, size_t full_len)
{
    uint8_t *copy = malloc(cut ? cut : 1);
    assert_non_null(copy);
    memcpy(copy, full, cut);
    uint64_t want = 0;
    for (size_t i = 0; i < n_ends; i++)
        if (ends[i] <= cut)
            want++;
    log_report_t rep;
    log_status_t st = log_verify_buffer(copy, cut, &rep);
    if (cut == full_len) {
        assert_int_equal(st, LOG_VALID);
    } else {
        if (st != LOG_INCOMPLETE)
            fail_msg("cut at %zu: status %d (%s at %llu)", cut, st, rep.error,
                     (unsigned long long)rep.error_offset);
    }
    if (rep.records != want)
        fail_msg("cut at %zu: %llu records recovered, %llu complete", cut,
                 (unsigned long long)rep.records, (unsigned long long)want);
    /* the plain reader agrees */
    mcap_reader_t rd;
    mcap_reader_init(&rd, copy, cut);
    mcap_record_t rec;
    uint64_t n = 0;
    while (mcap_reader_next(&rd, &rec) == MCAP_READ_RECORD)
        n++;
    assert_int_equal(n, want);
    free(copy);
}

static void test_truncated_files_recover_complete_records(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "cut", 16, 4, FRAME_BYTES);
    push_episode(f->lg, "cut-episode", 6);
    char path[512];
    episode_path(f, "cut", "cut-episode", path, sizeof path);
    size_t len;
    uint8_t *data = slurp(path, &len);
    size_t ends[4096];
    size_t n_ends = record_ends(data, len, ends, 4096);
    assert_true(n_ends > 20);
    assert_int_equal(ends[n_ends - 1] + MCAP_MAGIC_LEN, len);

    /* every cut through the first records (magic, header, schemas ...) */
    size_t head = len < 2048 ? len : 2048;
    for (size_t cut = 0; cut <= head; cut++)
        check_cut(data, cut, ends, n_ends, len);
    /* every cut through the messages of the last steps, the summary and footer */
    size_t tail = len > 6000 ? len - 6000 : 0;
    for (size_t cut = tail; cut <= len; cut++)
        check_cut(data, cut, ends, n_ends, len);
    /* and random cuts anywhere */
    srand(12345);
    for (int i = 0; i < 300; i++)
        check_cut(data, (size_t)rand() % (len + 1), ends, n_ends, len);
    free(data);
}

static void test_corruption_is_reported(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "bad", 16, 4, FRAME_BYTES);
    push_episode(f->lg, "bad-episode", 5);
    char path[512];
    episode_path(f, "bad", "bad-episode", path, sizeof path);
    size_t len;
    uint8_t *data = slurp(path, &len);
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    log_report_t rep;

    /* find records by an independent walk */
    size_t ends[1024];
    size_t n = record_ends(data, len, ends, 1024);
    size_t mid_msg = 0, step_msg = 0, frame_msg = 0, stats_rec = 0;
    for (size_t i = 1; i < n; i++) {
        size_t start = ends[i - 1];
        uint8_t op = data[start];
        if (op == MCAP_OP_MESSAGE && i > n / 3 && !mid_msg)
            mid_msg = start;
        if (op == MCAP_OP_MESSAGE && data[start + 9] == 1 && i > n / 3 && !step_msg)
            step_msg = start;
        if (op == MCAP_OP_MESSAGE && data[start + 9] >= 3 && !frame_msg)
            frame_msg = start;
        if (op == MCAP_OP_STATISTICS)
            stats_rec = start;
    }
    assert_true(mid_msg && step_msg && frame_msg && stats_rec);

    memcpy(copy, data, len);
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_VALID);

    /* garbage opcode in the middle */
    copy[mid_msg] = 0x42;
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);
    assert_int_equal(rep.error_offset, mid_msg);

    /* impossible record length */
    memcpy(copy, data, len);
    copy[mid_msg + 8] = 0x7f;
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);
    assert_int_equal(rep.error_offset, mid_msg);

    /* a length one byte short: the next record starts in the wrong place */
    memcpy(copy, data, len);
    copy[mid_msg + 1] -= 1;
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);
    assert_true(rep.error_offset >= mid_msg);

    /* a Step payload that is not protobuf: field 1 with wire type 7 */
    memcpy(copy, data, len);
    copy[step_msg + 9 + 22] = 0x0f;
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);
    assert_int_equal(rep.error_offset, step_msg);
    assert_non_null(strstr(rep.error, "pacd.v1.Step"));

    /* pixel data flipped: decodes, but the data section CRC catches it */
    memcpy(copy, data, len);
    copy[frame_msg + 9 + 22 + 100] ^= 0x01;
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);

    /* summary damaged: Statistics message count changed */
    memcpy(copy, data, len);
    copy[stats_rec + 9] ^= 0x01;
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);
    assert_int_equal(rep.error_offset, stats_rec);

    /* bad magic */
    memcpy(copy, data, len);
    copy[0] = 'P';
    assert_int_equal(log_verify_buffer(copy, len, &rep), LOG_INVALID);
    assert_int_equal(rep.error_offset, 0);

    /* random single-byte damage anywhere never crashes the verifier */
    srand(777);
    for (int i = 0; i < 400; i++) {
        memcpy(copy, data, len);
        copy[(size_t)rand() % len] ^= (uint8_t)(1 + rand() % 255);
        log_verify_buffer(copy, len, &rep);
    }
    free(copy);
    free(data);
}

/* Files made of random records (valid framing, random opcodes and
 * contents) and random bytes never crash the verifier or read outside the
 * buffer (run under ASan), and are never called valid. */
static void test_random_records_never_crash(void **state)
{
    (void)state;
    srand(4242);
    for (int iter = 0; iter < 3000; iter++) {
        size_t cap = 64 + (size_t)(rand() % 2048);
        uint8_t *buf = malloc(cap);
        assert_non_null(buf);
        memcpy(buf, mcap_magic, MCAP_MAGIC_LEN);
        size_t pos = MCAP_MAGIC_LEN;
        int first = 1;
        while (pos + 9 < cap) {
            size_t room = cap - pos - 9;
            size_t l = (size_t)rand() % (room < 80 ? room + 1 : 80);
            buf[pos] = first ? MCAP_OP_HEADER : (uint8_t)(1 + rand() % 15);
            first = 0;
            uint64_t len = l;
            if (rand() % 50 == 0)
                len = (uint64_t)rand() * 7919u; /* a lying length now and then */
            for (int i = 0; i < 8; i++)
                buf[pos + 1 + (size_t)i] = (uint8_t)(len >> (8 * i));
            for (size_t i = 0; i < l; i++)
                buf[pos + 9 + i] = (uint8_t)(rand() % 4 == 0 ? rand() : rand() % 3);
            pos += 9 + l;
        }
        size_t len = pos;
        uint8_t *exact = malloc(len);
        assert_non_null(exact);
        memcpy(exact, buf, len);
        log_report_t rep;
        log_status_t st = log_verify_buffer(exact, len, &rep);
        assert_true(st != LOG_VALID);
        assert_true(rep.error_offset <= len);
        free(exact);
        free(buf);
    }
}

static void test_verify_cli_exit_codes(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "cli", 16, 4, FRAME_BYTES);
    push_episode(f->lg, "cli-episode", 3);
    char path[512], cut_path[600];
    episode_path(f, "cli", "cli-episode", path, sizeof path);
    size_t len;
    uint8_t *data = slurp(path, &len);
    snprintf(cut_path, sizeof cut_path, "%s/cli/cut.mcap", f->dir);
    FILE *fp = fopen(cut_path, "wb");
    assert_non_null(fp);
    fwrite(data, 1, len / 2, fp);
    fclose(fp);

    /* keep the reports off the test output */
    fflush(stdout);
    int saved = dup(1);
    int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, 1);
    char *ok[] = {"log", "verify", path, NULL};
    char *ok_json[] = {"log", "verify", "--json", path, NULL};
    char *cut[] = {"log", "verify", cut_path, NULL};
    char *cut_strict[] = {"log", "verify", "--strict", cut_path, NULL};
    char *missing[] = {"log", "verify", "/nonexistent/x.mcap", NULL};
    char *cat[] = {"log", "cat", path, NULL};
    char *usage[] = {"log", "frobnicate", NULL};
    int r_ok = pacctl_log_main(3, ok);
    int r_json = pacctl_log_main(4, ok_json);
    int r_cut = pacctl_log_main(3, cut);
    int r_strict = pacctl_log_main(4, cut_strict);
    int r_missing = pacctl_log_main(3, missing);
    int r_cat = pacctl_log_main(3, cat);
    int r_usage = pacctl_log_main(2, usage);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(null_fd);
    assert_int_equal(r_ok, PACCTL_LOG_OK);
    assert_int_equal(r_json, PACCTL_LOG_OK);
    assert_int_equal(r_cut, PACCTL_LOG_OK);
    assert_int_equal(r_strict, PACCTL_LOG_UNFINISHED);
    assert_int_equal(r_missing, PACCTL_LOG_USAGE);
    assert_int_equal(r_cat, PACCTL_LOG_OK);
    assert_int_equal(r_usage, PACCTL_LOG_USAGE);
    free(data);
}

static void test_directory_gone_counts_errors(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "gone", 8, 2, FRAME_BYTES);
    /* the log directory is replaced by a regular file after start-up */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/gone", f->dir);
    assert_int_equal(rmdir(dir), 0);
    FILE *fp = fopen(dir, "w");
    assert_non_null(fp);
    fclose(fp);
    push_episode(f->lg, "lost-episode", 4);
    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_opened, 0);
    assert_true(st.write_errors >= 1);
    assert_int_equal(st.steps_written, 0);
    assert_int_equal(st.steps_dropped - refused_steps, 4);
    assert_int_equal(st.frames_dropped - refused_frames, 4 * N_CAMS);
    assert_int_equal(st.states_dropped - refused_states, 4);
    assert_true(strlen(st.last_error) > 0);
    /* the directory comes back: the next episode is written again */
    unlink(dir);
    push_episode(f->lg, "back-episode", 3);
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_opened, 1);
    assert_int_equal(st.steps_written, 3);
    char path[512];
    episode_path(f, "gone", "back-episode", path, sizeof path);
    check_episode_file(path, "back-episode", 3);
}

/* File size limit of this process (RLIMIT_FSIZE, SIGXFSZ ignored): write(2)
 * fails with EFBIG past `bytes`, as a full disk fails with ENOSPC. */
typedef struct {
    struct rlimit old;
    void (*old_handler)(int);
} fsize_limit_t;

static void limit_file_size(fsize_limit_t *saved, rlim_t bytes)
{
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved->old), 0);
    struct rlimit lim = saved->old;
    lim.rlim_cur = bytes;
    saved->old_handler = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

/* A file-size limit that the episode file's start (MCAP header and the three
 * schema records, each holding pacd.proto's whole descriptor set) fits in,
 * with room for a few steps but far less than a 60-step episode. */
static rlim_t limit_past_header(void)
{
    return (rlim_t)(3 * pacd_proto_descriptor_set_len + 6 * 1024);
}

static void restore_file_size(const fsize_limit_t *saved)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved->old), 0);
    signal(SIGXFSZ, saved->old_handler);
}

/* A file cut back to its last complete record: it verifies as unfinished
 * (not corrupt) with `steps` steps. */
static void check_unfinished(const char *path, uint64_t steps)
{
    log_report_t rep;
    assert_int_equal(log_verify_file(path, &rep), 0);
    assert_int_equal(rep.status, LOG_INCOMPLETE);
    assert_int_equal(rep.trailing_bytes, 0);
    assert_int_equal(rep.steps, steps);
}

static void test_write_error_mid_episode(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "efbig", 8, 2, FRAME_BYTES);
    fsize_limit_t saved;
    limit_file_size(&saved, limit_past_header());
    push_episode(f->lg, "too-big", 60);
    restore_file_size(&saved);

    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_opened, 1);
    assert_true(st.write_errors >= 1);
    assert_true(st.steps_written > 0);
    assert_int_equal(st.steps_written + st.steps_dropped - refused_steps, 60);
    assert_int_equal(st.frames_written + st.frames_dropped - refused_frames, 60 * N_CAMS);
    assert_int_equal(st.states_written + st.states_dropped - refused_states, 60);
    assert_true(strlen(st.last_error) > 0);
    /* the file was cut back to its last complete record: unfinished, not corrupt */
    char path[512];
    episode_path(f, "efbig", "too-big", path, sizeof path);
    check_unfinished(path, st.steps_written);

    /* the limit gone, the next episode is whole */
    uint64_t errors = st.write_errors;
    push_episode(f->lg, "after-error", 3);
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.write_errors, errors);
    episode_path(f, "efbig", "after-error", path, sizeof path);
    check_episode_file(path, "after-error", 3);
}

/* The disk guard's signal to the loop: logger_episode_failed turns 1 once the
 * open episode's file fails (here EFBIG past RLIMIT_FSIZE, as a full disk
 * gives ENOSPC), says 0 again for the next episode, and the file keeps every
 * step the stats call written. */
static void test_episode_failed_flag(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "flag", 8, 2, FRAME_BYTES);
    assert_int_equal(logger_episode_failed(f->lg), 0);
    assert_int_equal(logger_episode_failed(NULL), 0);
    fsize_limit_t saved;
    limit_file_size(&saved, limit_past_header());

    logger_episode_t ep;
    fill_episode(&ep, "fills-the-disk");
    assert_int_equal(logger_begin_episode(f->lg, &ep), 0);
    static logger_step_t s;
    uint64_t i = 0;
    for (; i < 10000 && !logger_episode_failed(f->lg); i++) {
        fill_step(&s, i, 10000);
        while (logger_push_step(f->lg, &s) == -ENOSPC)
            logger_flush(f->lg, 5000);
        logger_flush(f->lg, 5000);
    }
    restore_file_size(&saved);
    assert_true(i < 10000);
    assert_int_equal(logger_episode_failed(f->lg), 1);
    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_failed, 1);
    assert_true(st.write_errors >= 1);
    assert_non_null(strstr(st.last_error, "fills-the-disk"));
    assert_true(st.steps_written > 0);
    assert_int_equal(logger_end_episode(f->lg), 0);
    assert_int_equal(logger_episode_failed(f->lg), 0);   /* no episode open */
    assert_int_equal(logger_flush(f->lg, 60000), 0);

    char path[512];
    episode_path(f, "flag", "fills-the-disk", path, sizeof path);
    check_unfinished(path, st.steps_written);
    log_report_t rep;
    assert_int_equal(log_verify_file(path, &rep), 0);
    assert_int_equal(rep.last_step + 1, st.steps_written);
    logger_get_stats(f->lg, &st);
    assert_string_equal(st.last_path, path);

    /* the next episode is not reported failed */
    fill_episode(&ep, "next-one");
    assert_int_equal(logger_begin_episode(f->lg, &ep), 0);
    fill_step(&s, 0, 1);
    assert_int_equal(logger_push_step(f->lg, &s), 0);
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    assert_int_equal(logger_episode_failed(f->lg), 0);
    assert_int_equal(logger_end_episode(f->lg), 0);
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_failed, 1);
}

/* A file that cannot be created fails the episode too. */
static void test_episode_failed_when_not_created(void **state)
{
    fixture_t *f = *state;
    f->lg = make_logger(f, "exists", 8, 2, FRAME_BYTES);
    char path[512];
    episode_path(f, "exists", "taken", path, sizeof path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    logger_episode_t ep;
    fill_episode(&ep, "taken");
    assert_int_equal(logger_begin_episode(f->lg, &ep), 0);
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    assert_int_equal(logger_episode_failed(f->lg), 1);
    assert_int_equal(logger_end_episode(f->lg), 0);
    assert_int_equal(logger_flush(f->lg, 60000), 0);
    logger_stats_t st;
    logger_get_stats(f->lg, &st);
    assert_int_equal(st.episodes_failed, 1);
}

static void test_check_free_space(void **state)
{
    fixture_t *f = *state;
    char why[256];
    uint64_t free_bytes = 7;
    /* off: nothing is looked at, not even a missing directory */
    assert_int_equal(logger_check_free_space("/nonexistent/pacd", 0, &free_bytes, why, sizeof why), 0);
    assert_int_equal(free_bytes, 0);
    assert_string_equal(why, "");
    /* a directory with room */
    assert_int_equal(logger_free_bytes(f->dir, &free_bytes), 0);
    assert_true(free_bytes > 0);
    assert_int_equal(logger_check_free_space(f->dir, 1, &free_bytes, why, sizeof why), 0);
    assert_true(free_bytes > 0);
    /* less free than asked: refused, with the reason and what to do */
    assert_int_equal(logger_check_free_space(f->dir, UINT64_MAX, &free_bytes, why, sizeof why),
                     -ENOSPC);
    assert_true(free_bytes > 0);
    assert_non_null(strstr(why, f->dir));
    assert_non_null(strstr(why, "min_free_mb"));
    assert_non_null(strstr(why, "free disk space"));
    /* the directory cannot be looked at */
    assert_int_equal(logger_check_free_space("/nonexistent/pacd", 1, &free_bytes, why, sizeof why),
                     -ENOENT);
    assert_non_null(strstr(why, "/nonexistent/pacd"));
    assert_int_equal(logger_check_free_space(NULL, 1, NULL, NULL, 0), -EINVAL);
    assert_int_equal(logger_free_bytes(NULL, &free_bytes), -EINVAL);
}

/* A file of `size` bytes whose modification time is `age_s` seconds ago. */
static void make_old_file(const char *dir, const char *name, size_t size, int age_s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (size_t i = 0; i < size; i++)
        fputc('x', fp);
    fclose(fp);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age_s;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int exists_in(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* [logger] keep_gb: the oldest episode logs go first, at start and after each
 * episode; other files, the newest log and the open one stay. */
static void test_retention(void **state)
{
    fixture_t *f = *state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/keep", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    make_old_file(dir, "a.mcap", 10000, 400);
    make_old_file(dir, "b.mcap", 10000, 300);
    make_old_file(dir, "c.mcap", 10000, 200);
    make_old_file(dir, "notes.txt", 50000, 500);   /* not an episode log */
    logger_config_t cfg = {.directory = dir, .ring_steps = 8, .ring_frames = 2,
                           .max_frame_bytes = FRAME_BYTES, .fsync_interval_ms = 50,
                           .keep_bytes = 25000};
    char err[256] = "";
    f->lg = logger_new(&cfg, err, sizeof err);
    assert_non_null(f->lg);
    /* at start: 30000 > 25000, a.mcap (the oldest) goes */
    logger_stats_t st;
    for (int i = 0; i < 5000; i++) {
        logger_get_stats(f->lg, &st);
        if (st.files_deleted >= 1)
            break;
        usleep(1000);
    }
    assert_int_equal(st.files_deleted, 1);
    assert_false(exists_in(dir, "a.mcap"));
    assert_true(exists_in(dir, "b.mcap") && exists_in(dir, "c.mcap"));
    /* an episode (larger than keep_bytes on its own: the newest is kept
     * anyway) makes b and c go, oldest first */
    push_episode(f->lg, "newest", 20);
    logger_get_stats(f->lg, &st);
    char path[512];
    episode_path(f, "keep", "newest", path, sizeof path);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 25000);
    assert_int_equal(st.files_deleted, 3);
    assert_false(exists_in(dir, "b.mcap") || exists_in(dir, "c.mcap"));
    assert_true(exists_in(dir, "notes.txt"));
    check_episode_file(path, "newest", 20);
}

static void test_episode_id_format(void **state)
{
    fixture_t *f = *state;
    char id[LOGGER_EPISODE_ID];
    /* 1700000000 s is 2023-11-14 22:13:20 UTC; 951782400 s is 2000-02-29 00:00:00 UTC */
    assert_int_equal(logger_episode_id(id, 1700000000LL * 1000000000LL + 999, "panda", 1), 0);
    assert_string_equal(id, "20231114T221320Z-panda-0001");
    assert_int_equal(logger_episode_id(id, 951782400LL * 1000000000LL, "Panda Arm/1", 12345), 0);
    assert_string_equal(id, "20000229T000000Z-panda_arm_1-12345");
    assert_int_equal(logger_episode_id(id, 0, NULL, 0), 0);
    assert_string_equal(id, "19700101T000000Z-robot-0000");
    assert_int_equal(logger_episode_id(id, -1, "panda", 0), -EINVAL);
    assert_int_equal(logger_episode_id(NULL, 0, "panda", 0), -EINVAL);

    /* dates checked by hand: a leap day, the last second of a leap year, the
     * year 2038 boundary of 32-bit time_t; ids sort by time */
    assert_int_equal(logger_episode_id(id, 1709164800LL * 1000000000LL, "sawyer", 7), 0);
    assert_string_equal(id, "20240229T000000Z-sawyer-0007");
    assert_int_equal(logger_episode_id(id, 1735689599LL * 1000000000LL, "sawyer", 7), 0);
    assert_string_equal(id, "20241231T235959Z-sawyer-0007");
    char later[LOGGER_EPISODE_ID];
    assert_int_equal(logger_episode_id(later, 2147483648LL * 1000000000LL, "sawyer", 7), 0);
    assert_string_equal(later, "20380119T031408Z-sawyer-0007");
    assert_true(strcmp(id, later) < 0);
    /* the largest time an int64 of ns holds (year 2262) still formats */
    assert_int_equal(logger_episode_id(id, INT64_MAX, "sawyer", 7), 0);
    assert_string_equal(id, "22620411T234716Z-sawyer-0007");
    /* the logger accepts what it formats and names the file after it */
    f->lg = make_logger(f, "ids", 8, 2, FRAME_BYTES);
    assert_int_equal(logger_episode_id(id, 1700000000LL * 1000000000LL, "Panda Arm/1", 3), 0);
    push_episode(f->lg, id, 2);
    char path[512];
    episode_path(f, "ids", id, path, sizeof path);
    check_episode_file(path, id, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_rejects_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_full_counts_and_never_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_episode_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_files_recover_complete_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_cli_exit_codes, setup, teardown),
        cmocka_unit_test(test_random_records_never_crash),
        cmocka_unit_test_setup_teardown(test_directory_gone_counts_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_mid_episode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_episode_id_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_episode_failed_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_episode_failed_when_not_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_free_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
