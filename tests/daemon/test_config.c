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
#include <unistd.h>

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

/* The tests leave no files behind: the config files written, then the
 * directory (flat: write_tmp makes no subdirectories). */
static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char path[600];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    return rmdir(tmpdir) == 0 ? 0 : -1;
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
    BAD("[camera.a]\nwidth = 8\n[camera.b]\nwidth = 8\n[camera.c]\nwidth = 8\n"
        "[camera.d]\nwidth = 8\n[camera.e]\nwidth = 8\n", "too many cameras");
    BAD("[episode]\nautostart = maybe\n", "true or false");
    BAD("[telemetry]\nrate_hz = 100\n", "twice");
    BAD("[pacd]\nthis line is no key value\n", "syntax error");
    BAD("[pacd]\nmode = dry-run\n", "control or shadow");
    BAD("[policy]\ntemperature = 0\n", "temperature");
    BAD("[policy]\nseed = -1\n", "unsigned");
    BAD("[policy]\nblas_coretype = ../../x\n", "core name");
    BAD("[policy]\nkernel = avx3\n", "expected auto, avx512, avx2, blas or amx");
    BAD("[policy]\nkernel = AVX2\n", "[policy] kernel");
    BAD("[safety]\nworkspace_min = 1, 2\n", "x, y, z");
    BAD("[safety]\nworkspace_min = 0, 0, 0\n", "go together");
    BAD("[safety]\nworkspace_min = 1, 0, 0\nworkspace_max = 0, 1, 1\n", "below");
    BAD("[robot]\nbackend = mujoco\n", "scene");
    BAD("[robot]\ngripper = maybe\n", "gripper");
#undef BAD
    expect_error("[pacd]\nrate_hz = 20\n", -EINVAL, "checkpoint is missing");
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    assert_int_equal(config_load(&c, "/nonexistent/pacd.conf", err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/pacd.conf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_config_parses),
        cmocka_unit_test(test_relative_paths_and_defaults),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_later_keys),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
