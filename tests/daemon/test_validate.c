/* validate: the field-limits table against docs/protocol.md, the decoders'
 * refusals (non-finite / absurd values, names with NUL, JPEG bombs) and the
 * JPEG decoder's recovery from a poisoned JPEG (issue 13 items 1, 5, 7, 8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "pacd_validate.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* docs/protocol.md holds exactly the table pacd-field-limits prints */
static void test_doc_table_matches_code(void **state)
{
    (void)state;
    char path[1024];
    const char *src = getenv("PACD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/docs/protocol.md", src ? src : ".");
    char *doc = read_all(path);
    assert_non_null(doc);
    static char table[8192], want[9000];
    assert_true(validate_limits_markdown(table, sizeof table) > 0);
    snprintf(want, sizeof want, "%s\n%s%s\n", VALIDATE_DOC_BEGIN, table, VALIDATE_DOC_END);
    const char *at = strstr(doc, VALIDATE_DOC_BEGIN);
    assert_non_null(at);
    assert_null(strstr(at + 1, VALIDATE_DOC_BEGIN)); /* one copy only */
    if (strncmp(at, want, strlen(want)))
        fail_msg("docs/protocol.md's field-limits table differs from daemon/pacd_validate.c: "
                 "paste the output of build/daemon/pacd-field-limits into the document");
    free(doc);
    /* every row is a usable limit */
    for (int i = 0; i < VL_COUNT; i++) {
        assert_non_null(validate_limits[i].message);
        assert_true(validate_limits[i].min <= validate_limits[i].max);
    }
    assert_false(validate_in_limits(VL_REWARD_REWARD, NAN));
    assert_false(validate_in_limits(VL_REWARD_REWARD, INFINITY));
    assert_false(validate_in_limits(VL_REWARD_REWARD, 3e38));
    assert_true(validate_in_limits(VL_REWARD_REWARD, -5.0));
}

/* ---- camera frames ---- */

static config_camera_t cams[2] = {
    {.name = "front", .width = 64, .height = 48, .max_age_ms = 200, .required = 1},
    {.name = "wrist", .width = 32, .height = 32, .max_age_ms = 200, .required = 1, .resize = 1},
};

static uint8_t *make_jpeg(int w, int h, unsigned long *size)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)(i * 7 + i / 97);
    tjhandle t = tjInitCompress();
    uint8_t *jpeg = NULL;
    assert_int_equal(tjCompress2(t, rgb, w, 0, h, TJPF_RGB, &jpeg, size, TJSAMP_420, 90, 0), 0);
    tjDestroy(t);
    free(rgb);
    return jpeg;
}

/* Offset of the first byte after marker 0xFF m (its length field), or 0. */
static size_t find_marker(const uint8_t *j, size_t n, uint8_t m)
{
    for (size_t i = 2; i + 1 < n; i++)
        if (j[i] == 0xFF && j[i + 1] == m)
            return i + 2;
    return 0;
}

static size_t pack_frame(const char *camera, uint32_t w, uint32_t h, int encoding,
                         const uint8_t *data, size_t len, uint8_t *out)
{
    Pacd__V1__CameraFrame f;
    pacd__v1__camera_frame__init(&f);
    f.camera = (char *)camera;
    f.width = w;
    f.height = h;
    f.encoding = encoding;
    f.data.data = (uint8_t *)data;
    f.data.len = len;
    f.seq = 7;
    return pacd__v1__camera_frame__pack(&f, out);
}

static int decode(frame_decoder_t *d, const char *topic, size_t topic_len, const uint8_t *msg,
                  size_t len, uint8_t *const *dst, frame_info_t *fi)
{
    const char *why = NULL;
    int rc = frame_decode_message(d, cams, 2, (const uint8_t *)topic, topic_len, msg, len, dst,
                                  fi, &why);
    if (rc)
        assert_non_null(why);
    return rc;
}

/* Item 1: a JPEG with "Bogus DQT index 15" must not break the decoder */
static void test_poisoned_jpeg_then_good_jpegs(void **state)
{
    (void)state;
    static uint8_t out0[64 * 48 * 3], out1[32 * 32 * 3], msg[65536];
    uint8_t *dst[2] = {out0, out1};
    frame_decoder_t *d = frame_decoder_new(64 * 64 * 4, 1);
    assert_non_null(d);
    unsigned long n;
    uint8_t *good = make_jpeg(64, 48, &n);
    uint8_t *bad = malloc(n);
    memcpy(bad, good, n);
    size_t dqt = find_marker(bad, n, 0xDB);
    assert_true(dqt > 0);
    bad[dqt + 2] = (uint8_t)((bad[dqt + 2] & 0xF0) | 15); /* Pq/Tq: table index 15 */
    frame_info_t fi;
    size_t len = pack_frame("front", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, good, n, msg);
    assert_int_equal(decode(d, "camera/front", 12, msg, len, dst, &fi), 0);
    len = pack_frame("front", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, bad, n, msg);
    assert_int_equal(decode(d, "camera/front", 12, msg, len, dst, &fi), -EBADMSG);
    assert_true(frame_decoder_resets(d) >= 1);
    for (int k = 0; k < 5; k++) {
        memset(out0, 0, sizeof out0);
        len = pack_frame("front", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, good, n, msg);
        assert_int_equal(decode(d, "camera/front", 12, msg, len, dst, &fi), 0);
        assert_int_equal(fi.camera, 0);
        assert_int_equal(fi.seq, 7);
        int nonzero = 0;
        for (size_t i = 0; i < sizeof out0; i++)
            nonzero |= out0[i];
        assert_true(nonzero);
    }
    /* the same through the resizing path (scratch buffer) of the other camera */
    len = pack_frame("wrist", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, bad, n, msg);
    assert_int_equal(decode(d, "camera/wrist", 12, msg, len, dst, &fi), -EBADMSG);
    len = pack_frame("wrist", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, good, n, msg);
    assert_int_equal(decode(d, "camera/wrist", 12, msg, len, dst, &fi), 0);
    assert_true(fi.resized);
    free(bad);
    tjFree(good);
    frame_decoder_destroy(&d);
    assert_null(d);
}

/* Item 7: declared sizes above max_pixels are refused before decoding */
static void test_jpeg_bomb_refused_before_decoding(void **state)
{
    (void)state;
    static uint8_t out0[64 * 48 * 3], out1[32 * 32 * 3], msg[65536];
    uint8_t *dst[2] = {out0, out1};
    size_t max_pixels = 64 * 64 * 4;
    frame_decoder_t *d = frame_decoder_new(max_pixels, 1);
    unsigned long n;
    uint8_t *jpeg = make_jpeg(64, 48, &n);
    size_t sof = find_marker(jpeg, n, 0xC0);
    assert_true(sof > 0);
    /* SOF0: length(2) precision(1) height(2) width(2): declare 8192 x 8192 */
    jpeg[sof + 3] = 0x20, jpeg[sof + 4] = 0x00, jpeg[sof + 5] = 0x20, jpeg[sof + 6] = 0x00;
    frame_info_t fi;
    /* the message declares the bomb's size */
    size_t len = pack_frame("wrist", 8192, 8192, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, jpeg, n,
                            msg);
    assert_int_equal(decode(d, "camera/wrist", 12, msg, len, dst, &fi), -E2BIG);
    /* the message lies (64 x 48), the JPEG header says 8192 x 8192 */
    len = pack_frame("wrist", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, jpeg, n, msg);
    assert_int_equal(decode(d, "camera/wrist", 12, msg, len, dst, &fi), -EINVAL);
    /* a raw frame above the limit too */
    Pacd__V1__CameraFrame f;
    pacd__v1__camera_frame__init(&f);
    f.camera = "wrist";
    f.width = 1024;
    f.height = 1024;
    f.encoding = PACD__V1__CAMERA_FRAME__ENCODING__RGB8;
    assert_int_equal(frame_decoder_decode(d, &cams[1], 1, &f, out1, NULL, NULL), -E2BIG);
    /* width / height outside 1..8192 are out of limits */
    len = pack_frame("wrist", 9000, 1, PACD__V1__CAMERA_FRAME__ENCODING__JPEG, jpeg, n, msg);
    assert_int_equal(decode(d, "camera/wrist", 12, msg, len, dst, &fi), -ERANGE);
    assert_int_equal(frame_decoder_resets(d), 0); /* nothing reached the decoder */
    tjFree(jpeg);
    frame_decoder_destroy(&d);
}

/* Item 8: "front\0x" is not "front", in the message or in the topic */
static void test_camera_names_with_nul_are_refused(void **state)
{
    (void)state;
    static uint8_t out0[64 * 48 * 3], out1[32 * 32 * 3], msg[16384], rgb[64 * 48 * 3];
    uint8_t *dst[2] = {out0, out1};
    frame_decoder_t *d = frame_decoder_new(64 * 64 * 4, 0);
    frame_info_t fi;
    size_t len = pack_frame("front", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__RGB8, rgb,
                            sizeof rgb, msg);
    assert_int_equal(decode(d, "camera/front", 12, msg, len, dst, &fi), 0);
    /* field 1 (camera) = "front\0x", prepended to a frame without a name;
     * protobuf-c reads it as the C string "front" */
    static const uint8_t name[] = {0x0A, 7, 'f', 'r', 'o', 'n', 't', 0, 'x'};
    memcpy(msg, name, sizeof name);
    len = sizeof name + pack_frame("", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__RGB8, rgb,
                                   sizeof rgb, msg + sizeof name);
    assert_int_equal(decode(d, "camera/front", 12, msg, len, dst, &fi), -EILSEQ);
    /* in the topic */
    len = pack_frame("front", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__RGB8, rgb, sizeof rgb,
                     msg);
    assert_int_equal(decode(d, "camera/front\0x", 14, msg, len, dst, &fi), -EILSEQ);
    assert_int_equal(decode(d, "camera/fr\x1bnt", 12, msg, len, dst, &fi), -EILSEQ);
    /* other names are still unknown cameras, not name errors */
    len = pack_frame("back", 64, 48, PACD__V1__CAMERA_FRAME__ENCODING__RGB8, rgb, sizeof rgb, msg);
    assert_int_equal(decode(d, "camera/back", 11, msg, len, dst, &fi), -EINVAL);
    frame_decoder_destroy(&d);
}

/* ---- state socket and commands (item 5) ---- */

static size_t pack_state(double gp, double gv, const double *pose, const double *q, uint8_t *out)
{
    Pacd__V1__RobotState s;
    pacd__v1__robot_state__init(&s);
    Pacd__V1__Pose p;
    pacd__v1__pose__init(&p);
    double dq[7] = {0};
    s.n_joint_positions = 7;
    s.joint_positions = (double *)q;
    s.n_joint_velocities = 7;
    s.joint_velocities = dq;
    s.gripper_position = gp;
    s.gripper_velocity = gv;
    if (pose) {
        p.x = pose[0], p.y = pose[1], p.z = pose[2];
        p.qw = pose[3], p.qx = pose[4], p.qy = pose[5], p.qz = pose[6];
        s.end_effector = &p;
    }
    s.seq = 3;
    return pacd__v1__robot_state__pack(&s, out);
}

static void test_robot_state_limits(void **state)
{
    (void)state;
    uint8_t buf[1024];
    hal_state_t h;
    const char *why = NULL;
    double q[7] = {0.1, -0.2, 0.3, -1.5, 0, 1.5, 0.7};
    double pose[7] = {0.4, 0.1, 0.5, 1, 0, 0, 0};
    size_t n = pack_state(0.04, 0.0, pose, q, buf);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), 0);
    assert_int_equal(h.n_joints, 7);
    assert_true(h.q[3] == -1.5 && h.gripper_position == 0.04 && h.ee_pose[0] == 0.4 &&
                h.ee_pose[3] == 1.0 && h.seq == 3);
    assert_int_equal(validate_robot_state(buf, n, 6, &h, &why), -EINVAL);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, NULL), 0); /* why may be NULL */
    n = pack_state(NAN, 0.0, pose, q, buf);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), -ERANGE);
    n = pack_state(0.04, INFINITY, pose, q, buf);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), -ERANGE);
    double bad_pose[7] = {0.4, 0.1, NAN, 1, 0, 0, 0};
    n = pack_state(0.04, 0.0, bad_pose, q, buf);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), -ERANGE);
    double far_pose[7] = {0.4, 0.1, 0.5, 1, 0, 0, 5.0};
    n = pack_state(0.04, 0.0, far_pose, q, buf);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), -ERANGE);
    double big_q[7] = {0, 0, 0, 1e9, 0, 0, 0};
    n = pack_state(0.04, 0.0, pose, big_q, buf);
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), -ERANGE);
    n = pack_state(0.04, 0.0, NULL, q, buf); /* no pose: all zero */
    assert_int_equal(validate_robot_state(buf, n, 7, &h, &why), 0);
    static const uint8_t junk[] = {0x08, 0xff, 0xff};
    assert_int_equal(validate_robot_state(junk, sizeof junk, 7, &h, &why), -EBADMSG);
}

static size_t pack_reward(float r, float disc, double info_value, const char *info_name,
                          uint8_t *out)
{
    Pacd__V1__Reward m;
    pacd__v1__reward__init(&m);
    Pacd__V1__TaskValue tv, *tvs[1] = {&tv};
    pacd__v1__task_value__init(&tv);
    tv.name = (char *)info_name;
    tv.value = info_value;
    m.reward = r;
    m.discount = disc;
    m.is_terminal = 1;
    m.n_info = 1;
    m.info = tvs;
    return pacd__v1__reward__pack(&m, out);
}

static void test_reward_limits(void **state)
{
    (void)state;
    uint8_t buf[512];
    validate_reward_t r;
    const char *why;
    size_t n = pack_reward(1.5f, 0.0f, 0.02, "cube_height_m", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), 0);
    assert_true(r.reward == 1.5f && r.discount == 0.0f && r.is_terminal);
    assert_int_equal(r.info.n, 1);
    assert_string_equal(r.info.name[0], "cube_height_m");
    n = pack_reward(NAN, 1.0f, 0, "x", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), -ERANGE);
    n = pack_reward(3e38f, 1.0f, 0, "x", buf); /* the forged reward of the attack run */
    assert_int_equal(validate_reward(buf, n, &r, &why), -ERANGE);
    n = pack_reward(-INFINITY, 1.0f, 0, "x", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), -ERANGE);
    n = pack_reward(1.0f, 1.5f, 0, "x", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), -ERANGE);
    n = pack_reward(1.0f, -0.1f, 0, "x", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), -ERANGE);
    n = pack_reward(1.0f, 1.0f, INFINITY, "x", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), -ERANGE);
    n = pack_reward(1.0f, 1.0f, 0.5, "bad\nname", buf);
    assert_int_equal(validate_reward(buf, n, &r, &why), -EILSEQ);
}

static size_t pack_action(const float *v, size_t nv, int space, uint8_t *out)
{
    Pacd__V1__Action a;
    pacd__v1__action__init(&a);
    a.values = (float *)v;
    a.n_values = nv;
    a.space = space;
    a.seq = 9;
    return pacd__v1__action__pack(&a, out);
}

static void test_teleop_limits(void **state)
{
    (void)state;
    uint8_t buf[512];
    float v[INGEST_MAX_TELEOP];
    int nv;
    uint64_t seq;
    const char *why;
    float good[7] = {0.1f, -0.2f, 0, 0, 0, 0, 1};
    size_t n = pack_action(good, 7, 1, buf);
    assert_int_equal(validate_teleop_action(buf, n, v, INGEST_MAX_TELEOP, &nv, &seq, NULL, &why), 0);
    assert_int_equal(nv, 7);
    assert_int_equal(seq, 9);
    assert_true(v[1] == -0.2f);
    float bad[2] = {0.1f, NAN};
    n = pack_action(bad, 2, 1, buf);
    assert_int_equal(validate_teleop_action(buf, n, v, INGEST_MAX_TELEOP, &nv, &seq, NULL, &why),
                     -ERANGE);
    float huge[1] = {1e30f};
    n = pack_action(huge, 1, 1, buf);
    assert_int_equal(validate_teleop_action(buf, n, v, INGEST_MAX_TELEOP, &nv, &seq, NULL, &why),
                     -ERANGE);
    n = pack_action(good, 7, 99, buf);
    assert_int_equal(validate_teleop_action(buf, n, v, INGEST_MAX_TELEOP, &nv, &seq, NULL, &why),
                     -ERANGE);
    n = pack_action(good, 0, 1, buf);
    assert_int_equal(validate_teleop_action(buf, n, v, INGEST_MAX_TELEOP, &nv, &seq, NULL, &why),
                     -EINVAL);
}

static void test_command_limits(void **state)
{
    (void)state;
    Pacd__V1__Command c;
    pacd__v1__command__init(&c);
    const char *why = NULL;
    c.type = PACD__V1__COMMAND__TYPE__END_EPISODE;
    c.final_reward = 2.0f;
    assert_int_equal(validate_command_fields(&c, &why), 0);
    c.final_reward = NAN;
    assert_int_equal(validate_command_fields(&c, &why), -ERANGE);
    assert_non_null(strstr(why, "final_reward"));
    c.final_reward = INFINITY;
    assert_int_equal(validate_command_fields(&c, &why), -ERANGE);
    c.final_reward = 3e38f;
    assert_int_equal(validate_command_fields(&c, &why), -ERANGE);
    c.type = PACD__V1__COMMAND__TYPE__START_EPISODE;
    c.max_steps = 1ull << 63;
    assert_int_equal(validate_command_fields(&c, &why), -ERANGE);
    c.max_steps = 400;
    assert_int_equal(validate_command_fields(&c, &why), 0);
    c.has_task_id = 1;
    c.task_id = -3;
    assert_int_equal(validate_command_fields(&c, &why), -ERANGE);
    c.task_id = 2;
    assert_int_equal(validate_command_fields(&c, &why), 0);
    /* the bytes form */
    c.type = PACD__V1__COMMAND__TYPE__END_EPISODE;
    c.final_reward = NAN;
    uint8_t buf[256];
    size_t n = pacd__v1__command__pack(&c, buf);
    Pacd__V1__Command *out = (Pacd__V1__Command *)1;
    assert_int_equal(validate_command(buf, n, &out, &why), -ERANGE);
    assert_null(out);
    c.final_reward = 1.0f;
    n = pacd__v1__command__pack(&c, buf);
    assert_int_equal(validate_command(buf, n, &out, &why), 0);
    assert_non_null(out);
    pacd__v1__command__free_unpacked(out, NULL);
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(validate_command(junk, sizeof junk, &out, &why), -EBADMSG);
}

/* RELOAD's checkpoint path: empty (the configured one) or absolute, shorter
 * than CONFIG_PATH, no control characters */
static void test_reload_path(void **state)
{
    (void)state;
    Pacd__V1__Command c;
    pacd__v1__command__init(&c);
    const char *why = NULL;
    c.type = PACD__V1__COMMAND__TYPE__RELOAD;
    assert_int_equal(validate_command_fields(&c, &why), 0);   /* "" */
    c.checkpoint = "/var/lib/pacd/new.safetensors";
    assert_int_equal(validate_command_fields(&c, &why), 0);
    c.checkpoint = "new.safetensors";
    assert_int_equal(validate_command_fields(&c, &why), -EINVAL);
    assert_non_null(strstr(why, "absolute"));
    c.checkpoint = "/tmp/a\nb";
    assert_int_equal(validate_command_fields(&c, &why), -EINVAL);
    assert_non_null(strstr(why, "control character"));
    c.checkpoint = "/tmp/a\x1b[2Jb";
    assert_int_equal(validate_command_fields(&c, &why), -EINVAL);
    char longp[CONFIG_PATH + 8];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    c.checkpoint = longp;
    assert_int_equal(validate_command_fields(&c, &why), -ERANGE);
    longp[CONFIG_PATH - 1] = '\0';   /* 511 bytes: fits */
    assert_int_equal(validate_command_fields(&c, &why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_table_matches_code),
        cmocka_unit_test(test_reload_path),
        cmocka_unit_test(test_poisoned_jpeg_then_good_jpegs),
        cmocka_unit_test(test_jpeg_bomb_refused_before_decoding),
        cmocka_unit_test(test_camera_names_with_nul_are_refused),
        cmocka_unit_test(test_robot_state_limits),
        cmocka_unit_test(test_reward_limits),
        cmocka_unit_test(test_teleop_limits),
        cmocka_unit_test(test_command_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
