/* config: defaults, the example config, every kind of bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include "pacd_auth.h"
#include "pacd_config.h"

static char tmpdir[256];

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pacd-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_example_config_parses(void **state)
{
    (void)state;
    char path[1024], err[512] = "";
    const char *src = getenv("PACD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/deploy/pacd.conf", src ? src : ".");
    config_t c;
    assert_int_equal(config_load(&c, path, err, sizeof err), 0);
    assert_string_equal(c.robot, "panda");
    assert_string_equal(c.backend, "sim");
    assert_true(c.rate_hz == 20.0);
    assert_int_equal(c.n_cameras, 1);
    assert_string_equal(c.cameras[0].name, "front");
    assert_int_equal(c.cameras[0].width, 128);
    assert_int_equal(c.max_steps, 400);
    assert_int_equal(c.max_frame_pixels, 2048 * 2048);
    assert_string_equal(c.checkpoint, "/var/lib/pacd/checkpoints/actor.safetensors");
    assert_non_null(strstr(c.text, "[logger]"));
    config_free(&c);
}

static void test_relative_paths_and_defaults(void **state)
{
    (void)state;
    char err[512] = "";
    const char *p = write_tmp("rel.conf", "[policy]\ncheckpoint = m.safetensors\n"
                                          "[logger]\ndirectory = logs\n");
    config_t c;
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    char want[600];
    snprintf(want, sizeof want, "%s/m.safetensors", tmpdir);
    assert_string_equal(c.checkpoint, want);
    snprintf(want, sizeof want, "%s/logs", tmpdir);
    assert_string_equal(c.log_directory, want);
    assert_true(c.rate_hz == 20.0);
    assert_int_equal(c.n_cameras, 0);
    assert_int_equal(c.policy_threads, 1);
    assert_int_equal(c.policy_kernel, POLICY_KERNEL_AUTO);
    config_free(&c);
}

static void test_later_keys(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("k.conf",
                              "[pacd]\nmode = shadow\n[policy]\ncheckpoint = x\nsample = yes\n"
                              "temperature = 0.5\nseed = 42\nblas_coretype = SkylakeX\nkernel = avx2\n"
                              "[robot]\nname = sawyer\ngripper = yes\nphysics_rt_priority = 70\n"
                              "[safety]\nworkspace_min = 0.1, -0.2, 0.3\n"
                              "workspace_max = 0.4, 0.2, 0.6\n[episode]\nreset_on_start = true\n"
                              "task_id = 3\n[camera.wrist]\nresize = true\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_true(c.shadow);
    assert_true(c.policy_sample && c.policy_temperature == 0.5 && c.policy_seed == 42);
    assert_string_equal(c.policy_sampling, "sample temperature=0.5 seed=42");
    assert_string_equal(c.blas_coretype, "SkylakeX");
    assert_int_equal(c.policy_kernel, POLICY_KERNEL_AVX2);
    assert_int_equal(c.robot_gripper, CONFIG_GRIPPER_YES);
    assert_int_equal(c.physics_rt_priority, 70);
    assert_int_equal(c.has_workspace, 3);
    assert_true(c.workspace_min[1] == -0.2 && c.workspace_max[2] == 0.6);
    assert_true(c.reset_on_start);
    assert_int_equal(c.task_id, 3);
    assert_int_equal(c.n_cameras, 1);
    assert_true(c.cameras[0].resize);
    /* the opt-in AMX kernel parses too (whether the CPU has it is checked at load) */
    config_free(&c);
    p = write_tmp("k2.conf", "[policy]\ncheckpoint = x\nkernel = amx\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.policy_kernel, POLICY_KERNEL_AMX);
    config_free(&c);
}

static void expect_error(const char *text, int want_rc, const char *needle)
{
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("bad.conf", text);
    assert_int_equal(config_load(&c, p, err, sizeof err), want_rc);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_non_null(strstr(err, "bad.conf"));
    assert_null(c.text);
}

static void test_bad_values(void **state)
{
    (void)state;
    const char *ck = "[policy]\ncheckpoint = x\n";
    char buf[512];
#define BAD(extra, needle)                                   \
    snprintf(buf, sizeof buf, "%s%s", ck, extra);            \
    expect_error(buf, -EINVAL, needle)
    BAD("[pacd]\nrate_hz = 0\n", "[pacd] rate_hz");
    BAD("[pacd]\nrate_hz = 20hz\n", "[pacd] rate_hz");
    BAD("[pacd]\nrt_priority = 120\n", "rt_priority");
    BAD("[robot]\nname = ur5\n", "panda or sawyer");
    BAD("[robot]\nbackend = real\n", "backend");
    BAD("[robot]\nspeed = 3\n", "unknown");
    BAD("[nonsense]\nx = 1\n", "[nonsense] x");
    BAD("[camera.front]\nwidth = -4\n", "[camera.front] width");
    BAD("[camera.front]\ncolour = red\n", "unknown key");
    BAD("[camera.fr\x1bont]\nwidth = 8\n", "printable ASCII");
    BAD("[camera.a]\nwidth = 8\n[camera.b]\nwidth = 8\n[camera.c]\nwidth = 8\n"
        "[camera.d]\nwidth = 8\n[camera.e]\nwidth = 8\n", "too many cameras");
    BAD("[episode]\nautostart = maybe\n", "true or false");
    BAD("[telemetry]\nrate_hz = 100\n", "twice");
    BAD("[pacd]\nthis line is no key value\n", "syntax error");
    BAD("[pacd]\nmode = dry-run\n", "control, shadow or teleop");
    BAD("[teleop]\nmax_age_ms = 0\n", "1..10000 ms");
    BAD("[task]\nsource = sky\n", "expected topic");
    BAD("[policy]\ntemperature = 0\n", "temperature");
    BAD("[policy]\nseed = -1\n", "unsigned");
    BAD("[policy]\nblas_coretype = ../../x\n", "core name");
    BAD("[policy]\nkernel = avx3\n", "expected auto, avx512, avx2, blas, amx or blis");
    BAD("[policy]\nkernel = AVX2\n", "[policy] kernel");
    BAD("[safety]\nworkspace_min = 1, 2\n", "x, y, z");
    BAD("[safety]\nworkspace_min = 0, 0, 0\n", "go together");
    BAD("[safety]\nworkspace_min = 1, 0, 0\nworkspace_max = 0, 1, 1\n", "below");
    BAD("[robot]\nbackend = mujoco\n", "scene");
    BAD("[robot]\ngripper = maybe\n", "gripper");
    BAD("[security]\ninsecure = maybe\n", "[security] insecure");
    BAD("[security]\nsecret = x\n", "unknown");
    BAD("[security]\noperator_keys = ops\n", "need [security] server_secret_key");
    /* a non-loopback bind without CURVE needs insecure = true */
    BAD("[telemetry]\nbind = tcp://*:5557\n", "[telemetry] bind = tcp://*:5557 is not a loopback");
    BAD("[control]\nbind = tcp://0.0.0.0:5558\n", "insecure = true");
    BAD("[ingest]\ncamera_bind = tcp://192.168.1.10:5555\n", "[ingest] camera_bind");
    BAD("[ingest]\nstate_bind = tcp://eth0:5556\n", "[ingest] state_bind");
    BAD("[ingest]\nstate_bind = tcp://128.0.0.1:5556\n", "not a loopback");
    BAD("[logger]\nmin_free_mb = -1\n", "[logger] min_free_mb");
    BAD("[logger]\nmin_free_mb = 1.5\n", "0 (no check)");
    BAD("[logger]\nkeep_gb = -0.5\n", "[logger] keep_gb");
    BAD("[logger]\nkeep_gb = lots\n", "0 (keep every log)");
#undef BAD
    expect_error("[pacd]\nrate_hz = 20\n", -EINVAL, "checkpoint is missing");
}

/* [logger] min_free_mb (the disk guard) and keep_gb (retention): defaults and values */
static void test_disk_guard_keys(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("dg.conf", "[policy]\ncheckpoint = x\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.log_min_free_mb, 1024);
    assert_true(c.log_keep_gb == 0.0);
    config_free(&c);
    p = write_tmp("dg2.conf", "[policy]\ncheckpoint = x\n[logger]\nmin_free_mb = 0\n"
                              "keep_gb = 0.25\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.log_min_free_mb, 0);
    assert_true(c.log_keep_gb == 0.25);
    config_free(&c);
}

/* [foxglove] (the live view): defaults, values, refusals */
static void test_foxglove_keys(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("fg.conf", "[policy]\ncheckpoint = x\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.foxglove_enabled, 0);
    assert_string_equal(c.foxglove_bind, "127.0.0.1");
    assert_int_equal(c.foxglove_port, 8765);
    assert_true(c.foxglove_image_rate_hz == 5.0);
    assert_int_equal(c.foxglove_image_jpeg, 1);
    assert_int_equal(c.foxglove_max_clients, 16);
    assert_int_equal(c.foxglove_send_queue_bytes, 8u << 20);
    config_free(&c);
    p = write_tmp("fg2.conf", "[policy]\ncheckpoint = x\n[foxglove]\nenabled = true\n"
                              "bind = ::1\nport = 9000\nimage_rate_hz = 0\nimage_format = raw\n"
                              "jpeg_quality = 50\nmax_clients = 2\nsend_queue_kb = 64\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.foxglove_enabled, 1);
    assert_string_equal(c.foxglove_bind, "::1");
    assert_int_equal(c.foxglove_port, 9000);
    assert_true(c.foxglove_image_rate_hz == 0.0);
    assert_int_equal(c.foxglove_image_jpeg, 0);
    assert_int_equal(c.foxglove_jpeg_quality, 50);
    assert_int_equal(c.foxglove_max_clients, 2);
    assert_int_equal(c.foxglove_send_queue_bytes, 64u * 1024u);
    config_free(&c);
    const char *ck = "[policy]\ncheckpoint = x\n";
    char buf[512];
#define BAD(extra, needle)                                   \
    snprintf(buf, sizeof buf, "%s%s", ck, extra);            \
    expect_error(buf, -EINVAL, needle)
    BAD("[foxglove]\nbind = localhost\n", "IPv4 or IPv6 address");
    BAD("[foxglove]\nport = 0\n", "1..65535");
    BAD("[foxglove]\nimage_rate_hz = 100\n", "0 (no images) .. 60 Hz");
    BAD("[foxglove]\nimage_format = png\n", "jpeg (foxglove.CompressedImage)");
    BAD("[foxglove]\nmax_clients = 0\n", "1..256");
    BAD("[foxglove]\nsend_queue_kb = 1\n", "64..1048576 KiB");
    BAD("[foxglove]\nenabled = true\nbind = 0.0.0.0\n", "[foxglove] bind = 0.0.0.0 is not a "
        "loopback");
#undef BAD
    /* a non-loopback bind is allowed with insecure = true, and while it is off */
    p = write_tmp("fg3.conf", "[policy]\ncheckpoint = x\n[foxglove]\nenabled = true\n"
                              "bind = 0.0.0.0\n[security]\ninsecure = true\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    config_free(&c);
}

/* [ingest] max_frame_pixels: default 2048 x 2048, range, and every camera must fit */
static void test_max_frame_pixels(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("mfp.conf", "[policy]\ncheckpoint = x\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.max_frame_pixels, 2048 * 2048);
    config_free(&c);
    p = write_tmp("mfp2.conf", "[policy]\ncheckpoint = x\n[ingest]\nmax_frame_pixels = 65536\n"
                               "[camera.front]\nwidth = 256\nheight = 256\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.max_frame_pixels, 65536);
    config_free(&c);
    expect_error("[policy]\ncheckpoint = x\n[ingest]\nmax_frame_pixels = 0\n", -EINVAL,
                 "[ingest] max_frame_pixels");
    expect_error("[policy]\ncheckpoint = x\n[ingest]\nmax_frame_pixels = 67108865\n", -EINVAL,
                 "1..67108864");
    expect_error("[policy]\ncheckpoint = x\n[ingest]\nmax_frame_pixels = 10000\n"
                 "[camera.front]\nwidth = 128\nheight = 128\n", -EINVAL,
                 "[camera.front] 128x128 is above [ingest] max_frame_pixels");
}

static void test_security(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    /* defaults: no CURVE, not insecure */
    const char *p = write_tmp("s0.conf", "[policy]\ncheckpoint = x\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_string_equal(c.security_server_secret_key, "");
    assert_string_equal(c.security_operator_keys, "");
    assert_false(c.security_insecure);
    config_free(&c);
    /* every key; relative paths from the config's directory; with CURVE a
     * wildcard bind is fine */
    p = write_tmp("s1.conf", "[policy]\ncheckpoint = x\n[telemetry]\nbind = tcp://*:5557\n"
                             "[security]\nserver_secret_key = keys/pacd_secret\n"
                             "operator_keys = /etc/pacd/operators\nmonitor_keys = mon\n"
                             "publisher_keys = pub\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    char want[600];
    snprintf(want, sizeof want, "%s/keys/pacd_secret", tmpdir);
    assert_string_equal(c.security_server_secret_key, want);
    assert_string_equal(c.security_operator_keys, "/etc/pacd/operators");
    snprintf(want, sizeof want, "%s/mon", tmpdir);
    assert_string_equal(c.security_monitor_keys, want);
    snprintf(want, sizeof want, "%s/pub", tmpdir);
    assert_string_equal(c.security_publisher_keys, want);
    config_free(&c);
    /* insecure = true allows it without CURVE */
    p = write_tmp("s2.conf", "[policy]\ncheckpoint = x\n[control]\nbind = tcp://0.0.0.0:5558\n"
                             "[security]\ninsecure = true\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_true(c.security_insecure);
    config_free(&c);
    /* loopback and ipc need nothing */
    char s3[1024];
    snprintf(s3, sizeof s3, "[policy]\ncheckpoint = x\n[control]\nbind = tcp://lo:5558\n"
             "[telemetry]\nbind = ipc://%s/telemetry\n[ingest]\n"
             "camera_bind = tcp://[::1]:5555\nstate_bind = tcp://127.0.0.2:5556\n", tmpdir);
    p = write_tmp("s3.conf", s3);
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    config_free(&c);
    /* the classifier itself */
    assert_int_equal(auth_endpoint_kind("ipc:///run/pacd/control"), AUTH_EP_IPC);
    assert_int_equal(auth_endpoint_kind("ipc://@pacd"), AUTH_EP_LOOPBACK);
    assert_int_equal(auth_endpoint_kind("tcp://127.0.0.1:1"), AUTH_EP_LOOPBACK);
    assert_int_equal(auth_endpoint_kind("tcp://lo:1"), AUTH_EP_LOOPBACK);
    assert_int_equal(auth_endpoint_kind("tcp://127.0.0.1.5:1"), AUTH_EP_NETWORK);
    assert_int_equal(auth_endpoint_kind("tcp://127.0.0.1"), AUTH_EP_NETWORK);
    assert_int_equal(auth_endpoint_kind("tcp://10.0.0.2:1"), AUTH_EP_NETWORK);
    assert_int_equal(auth_endpoint_kind("tcp://[::]:1"), AUTH_EP_NETWORK);
    assert_int_equal(auth_endpoint_kind("tcp://robot.local:1"), AUTH_EP_NETWORK);
    assert_int_equal(auth_endpoint_kind("pgm://eth0;239.192.1.1:5555"), AUTH_EP_OTHER);
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    assert_int_equal(config_load(&c, "/nonexistent/pacd.conf", err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/pacd.conf"));
}

static void test_duplicate_keys_are_refused_with_their_lines(void **state)
{
    (void)state;
    expect_error("[policy]\ncheckpoint = x\n[episode]\nmax_steps = 10\n\n[pacd]\nrate_hz = 20\n"
                 "[episode]\nmax_steps = 20\n", -EINVAL,
                 ":9: [episode] max_steps = 20: given twice (first on line 4)");
    expect_error("[policy]\ncheckpoint = x\n[camera.front]\nwidth = 64\nwidth = 32\n", -EINVAL,
                 ":5: [camera.front] width = 32: given twice (first on line 4)");
    expect_error("[policy]\ncheckpoint = x\ncheckpoint = y\n", -EINVAL, "[policy] checkpoint");
    /* the same key in two sections, and a section opened twice, are fine */
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("two.conf", "[policy]\ncheckpoint = x\n[telemetry]\nbind = "
                              "tcp://127.0.0.1:7001\n[control]\nbind = tcp://127.0.0.1:7002\n"
                              "[policy]\nthreads = 2\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.policy_threads, 2);
    config_free(&c);
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    expect_error("[policy]\ncheckpoint = x\n\n# comment\n[pacd]\nrate_hz = 0\n", -EINVAL,
                 "bad.conf:6: [pacd] rate_hz = 0");
    char buf[512];
    snprintf(buf, sizeof buf, "[policy]\ncheckpoint = %0300d\n", 1);
    expect_error(buf, -EINVAL, "bad.conf:2: line longer than");
}

static void test_bind_endpoints_are_checked(void **state)
{
    (void)state;
    char buf[1024];
#define EP(key, value, needle)                                                        \
    snprintf(buf, sizeof buf, "[policy]\ncheckpoint = x\n%s = %s\n", key, value);    \
    expect_error(buf, -EINVAL, needle)
    EP("[control]\nbind", "tcp://127.0.0.1", "expected tcp://ADDRESS:PORT");
    EP("[control]\nbind", "tcp://127.0.0.1:0", "port must be a number");
    EP("[control]\nbind", "tcp://127.0.0.1:70000", "port must be a number");
    EP("[control]\nbind", "tcp://127.0.0.1:55x", "port must be a number");
    EP("[control]\nbind", "tpc://127.0.0.1:5558", "unknown transport");
    EP("[control]\nbind", "127.0.0.1:5558", "unknown transport");
    EP("[control]\nbind", "inproc://x", "unknown transport");
    EP("[telemetry]\nbind", "tcp://robot.example.com:5557", "'robot.example.com' is neither");
    EP("[telemetry]\nbind", "tcp://localhost:5557", "'localhost' is neither");
    EP("[telemetry]\nbind", "tcp://[::zz]:5557", "not an IPv6 address");
    EP("[telemetry]\nbind", "", "an endpoint is needed");
    EP("[ingest]\ncamera_bind", "ipc:///nonexistent-pacd-dir/cam", "directory /nonexistent-pacd-dir "
       "does not exist");
    EP("[ingest]\nstate_bind", "ipc://", "expected ipc://PATH");
#undef EP
    snprintf(buf, sizeof buf, "[policy]\ncheckpoint = x\n[ingest]\ncamera_bind = ipc://%s/%0120d\n",
             tmpdir, 7);
    expect_error(buf, -EINVAL, "longer than 107");
    /* two sockets on one endpoint */
    expect_error("[policy]\ncheckpoint = x\n[telemetry]\nbind = tcp://127.0.0.1:5558\n",
                 -EINVAL, "[telemetry] bind and [control] bind are both tcp://127.0.0.1:5558");
    /* usable ones pass */
    char err[512] = "";
    config_t c;
    snprintf(buf, sizeof buf, "[policy]\ncheckpoint = x\n[ingest]\ncamera_bind = ipc://%s/cam\n"
             "state_bind =\n[telemetry]\nbind = tcp://[::1]:7003\n[control]\nbind = "
             "tcp://lo:7004\n", tmpdir);
    const char *p = write_tmp("ep.conf", buf);
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_string_equal(c.state_bind, "");
    assert_string_equal(c.control_bind, "tcp://lo:7004");
    config_free(&c);
    p = write_tmp("ep2.conf", "[policy]\ncheckpoint = x\n[ingest]\ncamera_bind = ipc://@pacd-cam\n"
                  "state_bind = tcp://*:7005\n[telemetry]\nbind = tcp://0.0.0.0:7006\n"
                  "[security]\ninsecure = true\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    config_free(&c);
    char why[256];
    assert_int_equal(config_check_endpoint("tcp://127.0.0.1:5558", why, sizeof why), 0);
    assert_true(config_check_endpoint("udp://127.0.0.1:5558", why, sizeof why) < 0);
}

static void test_integer_ranges(void **state)
{
    (void)state;
    char buf[256];
#define BAD(extra, needle)                                                       \
    snprintf(buf, sizeof buf, "[policy]\ncheckpoint = x\n%s", extra);            \
    expect_error(buf, -EINVAL, needle)
    BAD("[episode]\nmax_steps = 9223372036854775808\n", "[episode] max_steps");
    BAD("[episode]\nmax_steps = 9223372036854775807\n", "up to 100000000");
    BAD("[episode]\nmax_steps = 100000001\n", "up to 100000000");
    BAD("[episode]\nmax_steps = -1\n", "[episode] max_steps");
    BAD("[episode]\ntask_id = 4294967296\n", "[episode] task_id");
    BAD("[ingest]\nmax_message_bytes = 18446744073709551617\n", "[ingest] max_message_bytes");
    BAD("[logger]\nring_steps = 2147483648\n", "[logger] ring_steps");
    BAD("[camera.front]\nwidth = 4294967424\n", "[camera.front] width");
    BAD("[robot]\nseed = 18446744073709551616\n", "[robot] seed");
    BAD("[policy]\nthreads = 0x10\n", "[policy] threads");
    BAD("[pacd]\nrt_priority = -1\n", "expected auto, 0");
    BAD("[pacd]\nrt_priority = Auto\n", "expected auto, 0");
#undef BAD
    char err[512] = "";
    config_t c;
    const char *p = write_tmp("ms.conf", "[policy]\ncheckpoint = x\n[episode]\nmax_steps = "
                              "100000000\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.max_steps, CONFIG_MAX_STEPS_LIMIT);
    config_free(&c);
}

static void test_rt_priority(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    config_defaults(&c);
    assert_int_equal(c.rt_priority, CONFIG_RT_PRIORITY_AUTO);
    assert_true(c.rt_auto);
    const char *p = write_tmp("rt0.conf", "[policy]\ncheckpoint = x\n[pacd]\nrt_priority = 0\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.rt_priority, 0);
    assert_false(c.rt_auto);
    config_free(&c);
    p = write_tmp("rt1.conf", "[policy]\ncheckpoint = x\n[pacd]\nrt_priority = 42\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.rt_priority, 42);
    assert_false(c.rt_auto);
    config_free(&c);
    p = write_tmp("rt2.conf", "[policy]\ncheckpoint = x\n[pacd]\nrt_priority = auto\n");
    assert_int_equal(config_load(&c, p, err, sizeof err), 0);
    assert_int_equal(c.rt_priority, 80);
    assert_true(c.rt_auto);
    config_free(&c);
}

/* config_load_buffer: the same parser on bytes (the fuzz harness's entry):
 * exactly len bytes are read, paths are relative to the name's directory,
 * messages name it, a NUL byte is refused. */
static void test_load_buffer(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    static const char text[] = "[policy]\ncheckpoint = m.safetensors\n[episode]\nmax_steps = 75";
    assert_int_equal(config_load_buffer(&c, "/etc/pacd/pacd.conf", text, sizeof text - 2, err,
                                        sizeof err), 0);
    assert_string_equal(c.checkpoint, "/etc/pacd/m.safetensors");
    assert_int_equal(c.max_steps, 7);
    assert_int_equal(strlen(c.text), sizeof text - 2);
    config_free(&c);
    static const char nul[] = "[policy]\ncheckpoint = m\0x\n";
    assert_int_equal(config_load_buffer(&c, "buf.conf", nul, sizeof nul - 1, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "buf.conf: the config holds a NUL byte"));
    static const char bad[] = "[policy]\ncheckpoint = m\n[pacd]\nrate_hz = x\n";
    assert_int_equal(config_load_buffer(&c, "buf.conf", bad, sizeof bad - 1, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "buf.conf:4: [pacd] rate_hz = x"));
}

/* config_hal_options: [robot] and [ingest] as the HAL's option blocks. */
static void test_hal_options(void **state)
{
    (void)state;
    config_t c;
    config_defaults(&c);
    config_hal_options_t ho;
    config_hal_options(&c, &ho);
    assert_string_equal(ho.hal.backend, "sim");
    assert_ptr_equal(ho.hal.backend_options, &ho.sim);
    assert_true(ho.sim.rate_hz == 1000.0);
    assert_int_equal(ho.hal.fixed_robot, 0);
    assert_null(ho.hal.initial_q);
    assert_true(ho.hal.command_timeout_s == 0); /* the HAL's default */

    snprintf(c.backend, sizeof c.backend, "mujoco");
    snprintf(c.scene, sizeof c.scene, "/data/scene.xml");
    snprintf(c.render_cameras, sizeof c.render_cameras, "front");
    snprintf(c.camera_bind, sizeof c.camera_bind, "tcp://*:5555");
    snprintf(c.state_bind, sizeof c.state_bind, "tcp://0.0.0.0:5556");
    c.sim_seed = 7;
    c.robot_gripper = CONFIG_GRIPPER_YES;
    config_hal_options(&c, &ho);
    assert_ptr_equal(ho.hal.backend_options, &ho.mujoco);
    assert_int_equal(ho.hal.fixed_robot, 1);
    assert_string_equal(ho.mujoco.scene, "/data/scene.xml");
    assert_string_equal(ho.mujoco.cameras, "front");
    assert_string_equal(ho.mujoco.camera_endpoint, "tcp://127.0.0.1:5555");
    assert_string_equal(ho.mujoco.state_endpoint, "tcp://127.0.0.1:5556");
    assert_true(ho.mujoco.seed == 7);
    assert_true(ho.mujoco.render_rate_hz == c.rate_hz);
    assert_null(ho.mujoco.curve_server_key);
    assert_null(ho.mujoco.ee_site);

    /* nothing rendered, no state published: no endpoints */
    c.render_cameras[0] = 0;
    c.publish_state = 0;
    snprintf(c.camera_bind, sizeof c.camera_bind, "ipc:///run/pacd/cam");
    config_hal_options(&c, &ho);
    assert_null(ho.mujoco.camera_endpoint);
    assert_null(ho.mujoco.state_endpoint);
    assert_string_equal(ho.camera_endpoint, "ipc:///run/pacd/cam");
}

/* [robot] clock: real by default; simulated only where pacd can step the arm
 * (mujoco, not shadow mode, every camera rendered by the backend). */
static void test_clock(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    static const char base[] = "[policy]\ncheckpoint = m.safetensors\n";
    if (config_load_buffer(&c, "c.conf", base, sizeof base - 1, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.sim_clock, 0);
    config_hal_options_t ho;
    config_hal_options(&c, &ho);
    assert_int_equal(ho.hal.stepped, 0);
    config_free(&c);
    static const struct {
        const char *text, *error; /* error NULL: accepted */
    } cases[] = {
        {"[robot]\nclock = simulated\nbackend = mujoco\nscene = s.xml\n"
         "render_cameras = agentview, front\n[camera.front]\nwidth = 64\n", NULL},
        {"[robot]\nclock = simulated\n", "backend = mujoco; the sim backend runs on the real"},
        {"[robot]\nclock = simulated\nbackend = mujoco\nscene = s.xml\n[pacd]\nmode = shadow\n",
         "has no arm to step in shadow mode"},
        {"[robot]\nclock = simulated\nbackend = mujoco\nscene = s.xml\n"
         "render_cameras = agentview\n[camera.front]\nwidth = 64\n",
         "[camera.front] is not in [robot] render_cameras"},
        {"[robot]\nclock = wall\n", "[robot] clock = wall: expected real"},
        {"[robot]\nclock = real\nbackend = mujoco\nscene = s.xml\n", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", base, cases[i].text);
        int rc = config_load_buffer(&c, "c.conf", text, strlen(text), err, sizeof err);
        if (!cases[i].error) {
            if (rc != 0)
                fail_msg("case %zu refused: %s", i, err);
            config_hal_options(&c, &ho);
            assert_int_equal(ho.hal.stepped, c.sim_clock);
            config_free(&c);
        } else {
            if (rc != -EINVAL)
                fail_msg("case %zu accepted (%d)", i, rc);
            if (!strstr(err, cases[i].error))
                fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].error);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_parses),
        cmocka_unit_test(test_relative_paths_and_defaults),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_later_keys),
        cmocka_unit_test(test_max_frame_pixels),
        cmocka_unit_test(test_disk_guard_keys),
        cmocka_unit_test(test_security),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_duplicate_keys_are_refused_with_their_lines),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_bind_endpoints_are_checked),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_rt_priority),
        cmocka_unit_test(test_load_buffer),
        cmocka_unit_test(test_hal_options),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_foxglove_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
