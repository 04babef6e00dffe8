/* Unit tests of the checkpoint loader (policy_ckpt.c) and the MLP actor via
 * policy_load/policy_step: every broken file gives NULL and a message naming
 * the thing that is wrong; a hand-checkable checkpoint gives the action
 * computed by hand; policy_step allocates nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy.h"
#include "policy_ckpt.h"
#include "st_fixture.h"

/* ---- allocation counters (-Wl,--wrap=...) over the code linked statically ---- */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
static long n_allocs;
static size_t max_alloc;   /* largest request seen (bytes) */
static void note_alloc(size_t n)
{
    n_allocs++;
    if (n > max_alloc)
        max_alloc = n;
}
void *__wrap_malloc(size_t n) { note_alloc(n); return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s)
{
    size_t b;
    note_alloc(__builtin_mul_overflow(n, s, &b) ? SIZE_MAX : b);
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n) { note_alloc(n); return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { note_alloc(n); return __real_aligned_alloc(a, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    note_alloc(n);
    return __real_posix_memalign(p, a, n);
}

typedef struct {
    char dir[64];
    char path[128];
    char err[512];
} ctx_t;

static int setup(void **state)
{
    ctx_t *c = calloc(1, sizeof *c);
    strcpy(c->dir, "/tmp/pacd-ckpt-test-XXXXXX");
    if (!mkdtemp(c->dir)) {
        free(c);
        return -1;
    }
    snprintf(c->path, sizeof c->path, "%s/model.safetensors", c->dir);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    st_rmtree(c->dir);
    free(c);
    return 0;
}

/* ckpt_open must fail and its message must contain the path and each needle. */
static void expect_ckpt_error(ctx_t *c, const char *needle1, const char *needle2)
{
    c->err[0] = '\0';
    ckpt_t *ck = ckpt_open(c->path, c->err, sizeof c->err);
    if (ck)
        ckpt_destroy(&ck);
    assert_null(ck);
    if (!strstr(c->err, c->path) || !strstr(c->err, needle1) ||
        (needle2 && !strstr(c->err, needle2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", c->err, needle1,
                 needle2 ? needle2 : "");
}

static void expect_load_error(ctx_t *c, const char *needle1, const char *needle2)
{
    c->err[0] = '\0';
    policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
    if (p)
        policy_destroy(&p);
    assert_null(p);
    if (!strstr(c->err, c->path) || !strstr(c->err, needle1) ||
        (needle2 && !strstr(c->err, needle2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", c->err, needle1,
                 needle2 ? needle2 : "");
}

static const float F4[4] = { 1, 2, 3, 4 };

static void test_missing_file(void **state)
{
    ctx_t *c = *state;
    expect_ckpt_error(c, "cannot open", "No such file");
}

static void test_truncated(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_raw(c->path, "\x10\0\0", 3), 0);
    expect_ckpt_error(c, "shorter than the 8-byte", NULL);
    assert_int_equal(st_write_raw(c->path, "", 0), 0);
    expect_ckpt_error(c, "0 bytes", NULL);
}

static void test_header_length(void **state)
{
    ctx_t *c = *state;
    const char *h = "{}";
    assert_int_equal(st_write_parts(c->path, 1000, h, 2, NULL, 0), 0);
    expect_ckpt_error(c, "header length 1000", "past the end");
    assert_int_equal(st_write_parts(c->path, UINT64_MAX, h, 2, NULL, 0), 0);
    expect_ckpt_error(c, "absurd", NULL);
    assert_int_equal(st_write_parts(c->path, 1ull << 40, h, 2, NULL, 0), 0);
    expect_ckpt_error(c, "absurd", NULL);
}

static void test_bad_json(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path, "{\"w\": {\"dtype\": ", NULL, 0), 0);
    expect_ckpt_error(c, "not valid JSON", NULL);
    assert_int_equal(st_write_header(c->path, "[1, 2]", NULL, 0), 0);
    expect_ckpt_error(c, "not a JSON object", NULL);
    /* duplicate keys are rejected, not silently merged */
    assert_int_equal(st_write_header(c->path,
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", F4, 4), 0);
    expect_ckpt_error(c, "not valid JSON", "duplicate");
}

static void test_entry_fields(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}",
                                     F4, 4), 0);
    expect_ckpt_error(c, "tensor 'w'", "lacks \"data_offsets\"");
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", F4, 4), 0);
    expect_ckpt_error(c, "tensor 'w'", "lacks \"dtype\"");
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", F4, 4), 0);
    expect_ckpt_error(c, "tensor 'w'", "shape[0]");
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", F4, 4), 0);
    expect_ckpt_error(c, "tensor 'w'", "not a valid range");
    assert_int_equal(st_write_header(c->path, "{\"w\": 3}", F4, 4), 0);
    expect_ckpt_error(c, "tensor 'w'", "not a JSON object");
}

static void test_offsets_out_of_range(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path,
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"big\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", F4, 16), 0);
    expect_ckpt_error(c, "tensor 'big'", "end past the data section (16 bytes)");
}

static void test_overlap(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path,
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", F4, 16), 0);
    expect_ckpt_error(c, "overlap", "'a'");
    expect_ckpt_error(c, "overlap", "'b'");
    /* touching ranges and empty tensors are fine */
    assert_int_equal(st_write_header(c->path,
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"e\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [4, 4]},"
        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", F4, 16), 0);
    ckpt_t *ck = ckpt_open(c->path, c->err, sizeof c->err);
    assert_non_null(ck);
    assert_int_equal(ckpt_tensor_count(ck), 3);
    ckpt_destroy(&ck);
    assert_null(ck);
}

static void test_wrong_dtype(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", F4, 16), 0);
    expect_ckpt_error(c, "tensor 'w'", "dtype 'I64' is not supported");
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", F4, 16), 0);
    expect_ckpt_error(c, "tensor 'w'", "F64");
}

static void test_shape_size_mismatch(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}", F4, 16), 0);
    expect_ckpt_error(c, "tensor 'w'", "12 bytes");
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", F4, 16), 0);
    expect_ckpt_error(c, "tensor 'w'", "span 16 bytes");
    /* a product that overflows 64 bits is caught, not wrapped */
    assert_int_equal(st_write_header(c->path,
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16],"
        " \"data_offsets\": [0, 0]}}", F4, 16), 0);
    expect_ckpt_error(c, "tensor 'w'", "overflows");
}

static void test_metadata_not_strings(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(st_write_header(c->path, "{\"__metadata__\": {\"pacd.format_version\": 1}}",
                                     NULL, 0), 0);
    expect_ckpt_error(c, "metadata 'pacd.format_version'", "not a string");
    assert_int_equal(st_write_header(c->path, "{\"__metadata__\": [1]}", NULL, 0), 0);
    expect_ckpt_error(c, "__metadata__", "not a JSON object");
}

static void test_missing_tensor(void **state)
{
    ctx_t *c = *state;
    fx_opts_t o = { .omit_tensor = "head.bias" };
    assert_int_equal(fx_write_mlp(c->path, &o), 0);
    expect_load_error(c, "tensor 'head.bias' is missing", NULL);
    fx_opts_t o2 = { .omit_tensor = "obs_norm.std" };
    assert_int_equal(fx_write_mlp(c->path, &o2), 0);
    expect_load_error(c, "tensor 'obs_norm.std' is missing", NULL);
}

static void test_stray_tensor(void **state)
{
    ctx_t *c = *state;
    fx_opts_t o = { .extra_tensor = "layers.1.weight" };
    assert_int_equal(fx_write_mlp(c->path, &o), 0);
    expect_load_error(c, "tensor 'layers.1.weight'", "not part of an mlp");
}

static void test_missing_metadata(void **state)
{
    ctx_t *c = *state;
    const char *keys[] = { "pacd.format", "pacd.format_version", "pacd.architecture",
                           "pacd.robot", "pacd.model", "pacd.observation", "pacd.action" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fx_opts_t o = { .omit_meta = keys[i] };
        assert_int_equal(fx_write_mlp(c->path, &o), 0);
        char needle[64];
        snprintf(needle, sizeof needle, "metadata '%s' is missing", keys[i]);
        expect_load_error(c, needle, NULL);
    }
    fx_opts_t none = { .no_metadata = 1 };
    assert_int_equal(fx_write_mlp(c->path, &none), 0);
    expect_load_error(c, "metadata 'pacd.format' is missing", NULL);
}

/* Layer widths in the metadata far above the tensors in the file (three
 * hidden layers of 65536: 34 GB of weights) are refused by checking every
 * shape against the file before allocating: no large allocation, a message
 * naming the tensor. */
static void test_huge_metadata_shapes_allocate_nothing_large(void **state)
{
    ctx_t *c = *state;
    fx_opts_t o = { .meta_key = "pacd.model",
                    .meta_value = "{\"hidden\": [65536, 65536, 65536], \"activation\": "
                                  "\"relu\", \"head\": \"tanh\"}" };
    assert_int_equal(fx_write_mlp(c->path, &o), 0);
    max_alloc = 0;
    expect_load_error(c, "tensor 'layers.0.weight'", "shape [3, 2], expected [65536, 2]");
    if (max_alloc > (1u << 20))
        fail_msg("policy_load asked for %zu bytes at once for a %s checkpoint", max_alloc,
                 "small");
}

static void test_bad_metadata_values(void **state)
{
    ctx_t *c = *state;
    static const struct { const char *key, *value, *n1, *n2; } cases[] = {
        { "pacd.format", "other", "'pacd.format'", "expected 'pacd-checkpoint'" },
        { "pacd.format_version", "2", "'pacd.format_version' is 2", "upgrade pacd" },
        { "pacd.format_version", "x1", "'pacd.format_version'", "positive integer" },
        { "pacd.architecture", "transformer", "'transformer'", "known: mlp" },
        { "pacd.model", "{\"hidden\": [3], \"activation\": \"swish\", \"head\": \"tanh\"}",
          "'pacd.model'", "activation" },
        { "pacd.model", "{\"hidden\": [3], \"activation\": \"relu\", \"head\": \"tanh\", "
          "\"dropout\": 0.1}", "'pacd.model'", "unknown key 'dropout'" },
        { "pacd.model", "{\"hidden\": [4], \"activation\": \"relu\", \"head\": \"tanh\"}",
          "tensor 'layers.0.weight'", "shape [3, 2], expected [4, 2]" },
        { "pacd.model", "{\"hidden\": [3], \"activation\": \"relu\", \"head\": \"gaussian\"}",
          "tensor 'head.weight'", "expected [4, 3]" },
        { "pacd.observation", "[{\"name\": \"q\", \"source\": \"joint_positions\", "
          "\"shape\": [3], \"history\": 1}]", "tensor 'obs_norm.mean'", "expected [3]" },
        { "pacd.observation", "[{\"name\": \"q\", \"source\": \"lidar\", \"shape\": [2], "
          "\"history\": 1}]", "'pacd.observation'", "source 'lidar' is unknown" },
        { "pacd.observation", "[{\"name\": \"q\", \"source\": \"joint_positions\", "
          "\"shape\": [2], \"history\": 0}]", "field 'q'", "history" },
        { "pacd.observation", "[{\"name\": \"q\", \"source\": \"camera/front\", "
          "\"shape\": [8, 8, 3], \"history\": 1}]", "'pacd.observation'", "no camera fields" },
        { "pacd.observation", "{\"name\": \"q\"}", "'pacd.observation'", "JSON array" },
        { "pacd.action", "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [1, 0], "
          "\"high\": [1, 2]}", "'pacd.action'", "low[0] = 1 is not below high[0] = 1" },
        { "pacd.action", "{\"space\": \"joint_torque\", \"dim\": 2, \"low\": [-1, 0], "
          "\"high\": [1, 2]}", "'pacd.action'", "space 'joint_torque'" },
        { "pacd.action", "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [-1], "
          "\"high\": [1, 2]}", "'pacd.action'", "\"low\" must be an array of 2" },
        { "pacd.action", "not json", "'pacd.action'", "not a JSON object" },
        { "pacd.action", "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [-1, 0], "
          "\"high\": [1, 2], \"repeat\": 0}", "'pacd.action'", "\"repeat\" must be an integer" },
        { "pacd.action", "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [-1, 0], "
          "\"high\": [1, 2], \"repeat\": 101}", "'pacd.action'", "in [1, 100]" },
        { "pacd.action", "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [-1, 0], "
          "\"high\": [1, 2], \"repeat\": 2.5}", "'pacd.action'", "\"repeat\" must be an integer" },
        { "pacd.action", "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [-1, 0], "
          "\"high\": [1, 2], \"hold\": 2}", "'pacd.action'", "unknown key 'hold'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_opts_t o = { .meta_key = cases[i].key, .meta_value = cases[i].value };
        assert_int_equal(fx_write_mlp(c->path, &o), 0);
        expect_load_error(c, cases[i].n1, cases[i].n2);
    }
}

/* "repeat" in pacd.action: absent -> 1, an integer -> that many periods. */
static void test_action_repeat(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(fx_write_mlp(c->path, NULL), 0);
    policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
    assert_non_null(p);
    assert_int_equal(policy_spec(p)->action_repeat, 1);
    policy_destroy(&p);
    fx_opts_t o = { .meta_key = "pacd.action",
                    .meta_value = "{\"space\": \"joint_velocity\", \"dim\": 2, "
                                  "\"low\": [-1, 0], \"high\": [1, 2], \"repeat\": 5}" };
    assert_int_equal(fx_write_mlp(c->path, &o), 0);
    p = policy_load(c->path, NULL, c->err, sizeof c->err);
    if (!p)
        fail_msg("%s", c->err);
    assert_int_equal(policy_spec(p)->action_repeat, 5);
    policy_destroy(&p);
}

static void test_nan_weight(void **state)
{
    ctx_t *c = *state;
    const char *dtypes[] = { "F32", "F16", "BF16" };
    for (int i = 0; i < 3; i++) {
        fx_opts_t o = { .dtype = dtypes[i], .nan_weight = 1 };
        assert_int_equal(fx_write_mlp(c->path, &o), 0);
        expect_load_error(c, "tensor 'head.weight'", "element 4 is NaN");
    }
}

static void check_fixture_action(ctx_t *c, const char *dtype)
{
    fx_opts_t o = { .dtype = dtype };
    assert_int_equal(fx_write_mlp(c->path, &o), 0);
    policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
    if (!p)
        fail_msg("load (%s) failed: %s", dtype, c->err);
    const policy_spec_t *s = policy_spec(p);
    assert_string_equal(s->architecture, "mlp");
    assert_string_equal(s->robot, "panda");
    assert_int_equal(s->obs_dim, 2);
    assert_int_equal(s->action_dim, 2);
    assert_int_equal(s->action_space, POLICY_ACTION_JOINT_VELOCITY);
    assert_int_equal(s->n_fields, 1);
    assert_int_equal(s->fields[0].offset, 0);
    assert_true(s->action_low[1] == 0.0f && s->action_high[1] == 2.0f);
    policy_observation_t obs = { .values = FX_OBS };
    float a[2] = { 99, 99 };
    assert_int_equal(policy_step(p, &obs, a, NULL), 0);
    double want[2];
    fx_expected(want);
    assert_float_equal(a[0], want[0], 1e-6);
    assert_float_equal(a[1], want[1], 1e-6);
    assert_true(policy_arena_bytes(p) > 0);
    policy_destroy(&p);
    assert_null(p);
}

static void test_forward_by_hand(void **state)
{
    ctx_t *c = *state;
    check_fixture_action(c, "F32");
    /* the fixture's weights are exact in F16 and BF16: same action */
    check_fixture_action(c, "F16");
    check_fixture_action(c, "BF16");
}

static void test_sha256_matches_sha256sum(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(fx_write_mlp(c->path, NULL), 0);
    char cmd[256], want[65] = "";
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", c->path);
    FILE *f = popen(cmd, "r");
    if (!f || fscanf(f, "%64s", want) != 1) {
        if (f)
            pclose(f);
        skip();
    }
    pclose(f);
    policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
    assert_non_null(p);
    assert_string_equal(policy_spec(p)->sha256, want);
    policy_destroy(&p);
}

static void test_step_arguments_and_bounds(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(fx_write_mlp(c->path, NULL), 0);
    policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
    assert_non_null(p);
    float a[2];
    policy_observation_t obs = { .values = FX_OBS };
    policy_observation_t empty = { .values = NULL };
    assert_int_equal(policy_step(NULL, &obs, a, NULL), -EINVAL);
    assert_int_equal(policy_step(p, NULL, a, NULL), -EINVAL);
    assert_int_equal(policy_step(p, &obs, NULL, NULL), -EINVAL);
    assert_int_equal(policy_step(p, &empty, a, NULL), -EINVAL);
    float bad[2] = { NAN, 0 };
    policy_observation_t nan_obs = { .values = bad };
    assert_int_equal(policy_step(p, &nan_obs, a, NULL), -EDOM);
    bad[0] = INFINITY;
    assert_int_equal(policy_step(p, &nan_obs, a, NULL), -EDOM);
    /* saturating inputs stay inside [low, high] */
    const float extreme[3][2] = { { 1e30f, -1e30f }, { -1e30f, 1e30f }, { 1e30f, 1e30f } };
    policy_extra_t extra = { .has_q_value = 7 };
    for (int i = 0; i < 3; i++) {
        policy_observation_t o = { .values = extreme[i] };
        assert_int_equal(policy_step(p, &o, a, &extra), 0);
        assert_true(a[0] >= -1.0f && a[0] <= 1.0f);
        assert_true(a[1] >= 0.0f && a[1] <= 2.0f);
    }
    assert_int_equal(extra.has_q_value, 0);
    /* finite input whose normalisation overflows to Inf - Inf = NaN inside the
     * network: -ERANGE and the caller's action is left as it was */
    const float huge[2] = { 3e38f, 3e38f };
    policy_observation_t ho = { .values = huge };
    a[0] = 42.0f;
    a[1] = 43.0f;
    assert_int_equal(policy_step(p, &ho, a, NULL), -ERANGE);
    assert_true(a[0] == 42.0f && a[1] == 43.0f);
    policy_destroy(&p);
    policy_destroy(&p);   /* NULL-safe */
    policy_destroy(NULL);
}

static void test_step_allocates_nothing(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(fx_write_mlp(c->path, NULL), 0);
    long before_load = n_allocs;
    policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
    assert_non_null(p);
    /* the counter sees the loader's allocations, so it would see step's */
    assert_true(n_allocs > before_load);
    policy_observation_t obs = { .values = FX_OBS };
    float a[2];
    long before = n_allocs;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(policy_step(p, &obs, a, NULL), 0);
    assert_int_equal(n_allocs, before);
    policy_destroy(&p);
}

/* Every truncation of a valid checkpoint is rejected cleanly (no crash, a
 * message), and random byte flips in the header never crash the loader. */
static void test_truncations_and_flips(void **state)
{
    ctx_t *c = *state;
    assert_int_equal(fx_write_mlp(c->path, NULL), 0);
    FILE *f = fopen(c->path, "rb");
    assert_non_null(f);
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 8 && len < sizeof buf);
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(st_write_raw(c->path, buf, cut), 0);
        c->err[0] = '\0';
        policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
        if (p)
            fail_msg("truncation at %zu of %zu bytes loaded", cut, len);
        assert_non_null(strstr(c->err, c->path));
    }
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    unsigned seed = 12345;
    for (int i = 0; i < 2000; i++) {
        unsigned char m[4096];
        memcpy(m, buf, len);
        seed = seed * 1103515245u + 12345u;
        size_t pos = 8 + (seed >> 8) % hlen;
        seed = seed * 1103515245u + 12345u;
        m[pos] = (unsigned char)(seed >> 16);
        assert_int_equal(st_write_raw(c->path, m, len), 0);
        policy_t *p = policy_load(c->path, NULL, c->err, sizeof c->err);
        if (p) {
            float a[2];
            policy_observation_t obs = { .values = FX_OBS };
            assert_int_equal(policy_step(p, &obs, a, NULL), 0);
            policy_destroy(&p);
        }
    }
}

static void test_half_conversions(void **state)
{
    (void)state;
    assert_true(ckpt_f16_to_f32(0x3c00) == 1.0f);
    assert_true(ckpt_f16_to_f32(0xc000) == -2.0f);
    assert_true(ckpt_f16_to_f32(0x7bff) == 65504.0f);          /* largest normal */
    assert_true(ckpt_f16_to_f32(0x0400) == ldexpf(1.0f, -14)); /* smallest normal */
    assert_true(ckpt_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(ckpt_f16_to_f32(0x83ff) == -ldexpf(1023.0f, -24));
    assert_true(ckpt_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(isinf(ckpt_f16_to_f32(0x7c00)) && ckpt_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(ckpt_f16_to_f32(0xfc00)) && ckpt_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(ckpt_f16_to_f32(0x7e00)));
    assert_true(signbit(ckpt_f16_to_f32(0x8000)) && ckpt_f16_to_f32(0x8000) == 0.0f);
    assert_true(ckpt_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(ckpt_bf16_to_f32(0xc040) == -3.0f);
    assert_true(ckpt_bf16_to_f32(0x3eaa) == 0.33203125f);
    assert_true(isnan(ckpt_bf16_to_f32(0x7fc0)));
}

static void test_ckpt_accessors(void **state)
{
    ctx_t *c = *state;
    fx_opts_t o = { .dtype = "BF16" };
    assert_int_equal(fx_write_mlp(c->path, &o), 0);
    ckpt_t *ck = ckpt_open(c->path, c->err, sizeof c->err);
    assert_non_null(ck);
    assert_int_equal(ckpt_tensor_count(ck), 6);
    assert_string_equal(ckpt_metadata(ck, "pacd.robot"), "panda");
    assert_null(ckpt_metadata(ck, "nope"));
    assert_string_equal(ckpt_first_unused(ck), "obs_norm.mean");   /* offset order */
    const ckpt_tensor_t *t = ckpt_find(ck, "head.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, CKPT_BF16);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 6);
    assert_null(ckpt_find(ck, "nope"));
    assert_null(ckpt_tensor_at(ck, 6));
    assert_null(ckpt_tensor_at(ck, -1));
    float w[6];
    int64_t shp[2] = { 2, 3 };
    assert_int_equal(ckpt_read_f32(ck, "head.weight", 2, shp, w, c->err, sizeof c->err), 0);
    for (int i = 0; i < 6; i++)
        assert_true(w[i] == FX_WH[i]);
    int64_t wrong[2] = { 3, 2 };
    assert_int_equal(ckpt_read_f32(ck, "head.weight", 2, wrong, w, c->err, sizeof c->err),
                     -EINVAL);
    assert_non_null(strstr(c->err, "shape [2, 3], expected [3, 2]"));
    assert_int_equal(ckpt_read_f32(ck, "gone", 1, shp, w, c->err, sizeof c->err), -ENOENT);
    ckpt_destroy(&ck);
    assert_null(ck);
    ckpt_destroy(&ck);
}

/* The one table of observation sources: every kind's name parses back to it;
 * cameras need a name after "camera/"; unknown strings are refused. */
static void test_source_names(void **state)
{
    (void)state;
    const policy_source_kind_t kinds[] = {
        POLICY_SOURCE_JOINT_POSITIONS, POLICY_SOURCE_JOINT_VELOCITIES,
        POLICY_SOURCE_GRIPPER_POSITION, POLICY_SOURCE_GRIPPER_VELOCITY, POLICY_SOURCE_GRASP,
        POLICY_SOURCE_END_EFFECTOR_POSE, POLICY_SOURCE_PREVIOUS_ACTION,
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        policy_source_kind_t k = 0;
        assert_int_equal(policy_source_parse(policy_source_name(kinds[i]), &k), 0);
        assert_int_equal(k, kinds[i]);
    }
    policy_source_kind_t k = 0;
    assert_int_equal(policy_source_parse("camera/wrist", &k), 0);
    assert_int_equal(k, POLICY_SOURCE_CAMERA);
    assert_string_equal(policy_source_name(POLICY_SOURCE_CAMERA), "camera");
    assert_int_equal(policy_source_parse("camera/", &k), -EINVAL);
    assert_int_equal(policy_source_parse("camera", &k), -EINVAL);
    assert_int_equal(policy_source_parse("object_pose/cube", &k), 0);
    assert_int_equal(k, POLICY_SOURCE_OBJECT_POSE);
    assert_string_equal(policy_source_name(POLICY_SOURCE_OBJECT_POSE), "object_pose");
    assert_int_equal(policy_source_parse("object_pose/", &k), -EINVAL);
    assert_int_equal(policy_source_parse("object_pose", &k), -EINVAL);
    assert_int_equal(policy_source_parse("gripper_to_object/cube", &k), 0);
    assert_int_equal(k, POLICY_SOURCE_GRIPPER_TO_OBJECT);
    assert_string_equal(policy_source_name(POLICY_SOURCE_GRIPPER_TO_OBJECT), "gripper_to_object");
    assert_int_equal(policy_source_parse("gripper_to_object/", &k), -EINVAL);
    assert_int_equal(policy_source_parse("gripper_to_object", &k), -EINVAL);
    assert_int_equal(policy_source_parse("joint_torques", &k), -EINVAL);
    assert_string_equal(policy_source_name((policy_source_kind_t)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_size_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_not_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_tensor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_tensor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_metadata_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_repeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha256_matches_sha256sum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_arguments_and_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_allocates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_metadata_shapes_allocate_nothing_large, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncations_and_flips, setup, teardown),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_source_names),
        cmocka_unit_test_setup_teardown(test_ckpt_accessors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
