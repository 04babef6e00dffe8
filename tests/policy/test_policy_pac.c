/* Unit tests of the pac architecture on a small checkpoint made at build time
 * by pacd_torch.make_pac (path in argv[1]): policy_step allocates nothing,
 * the spec reports the critic, observation errors leave the action alone,
 * the logits are exposed, and sampling is reproducible from the seed. argv[2]
 * (optional): the same model with the critic's MLP action input (critic
 * "action_hidden" 24): the same tests again, and the loader's refusals of a
 * bad "action_hidden" or bad MLP tensors. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"
#include "nn.h"
#include "st_fixture.h"

/* ---- allocation counters (-Wl,--wrap=...) over the code linked statically ---- */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
static long n_allocs;
void *__wrap_malloc(size_t n) { n_allocs++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s) { n_allocs++; return __real_calloc(n, s); }
void *__wrap_realloc(void *p, size_t n) { n_allocs++; return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { n_allocs++; return __real_aligned_alloc(a, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    n_allocs++;
    return __real_posix_memalign(p, a, n);
}

static const char *ckpt_path;
static const char *linear_path;   /* argv[1]: critic with the linear action input */
static const char *mlp_path;      /* argv[2]: critic with "action_hidden" 24, or NULL */

typedef struct {
    policy_t *p;
    float *values;
    uint8_t *img[POLICY_MAX_FIELDS];
    const uint8_t *imgs[POLICY_MAX_FIELDS];
    policy_observation_t obs;
} fx_t;

static fx_t *fx_new(const policy_options_t *opt)
{
    char err[512];
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->p = policy_load(ckpt_path, opt, err, sizeof err);
    if (!f->p)
        fail_msg("%s", err);
    const policy_spec_t *s = policy_spec(f->p);
    f->values = calloc((size_t)s->obs_dim + 1, sizeof(float));
    for (int i = 0; i < s->obs_dim; i++)
        f->values[i] = sinf((float)i * 0.7f);
    int k = 0;
    for (int i = 0; i < s->n_fields; i++) {
        if (!s->fields[i].is_image)
            continue;
        f->img[k] = malloc((size_t)s->fields[i].size);
        for (int j = 0; j < s->fields[i].size; j++)
            f->img[k][j] = (uint8_t)(j * 7 + k * 13);
        f->imgs[k] = f->img[k];
        k++;
    }
    f->obs = (policy_observation_t){ .values = f->values, .images = f->imgs };
    return f;
}

static void fx_destroy(fx_t *f)
{
    policy_destroy(&f->p);
    for (int i = 0; i < POLICY_MAX_FIELDS; i++)
        free(f->img[i]);
    free(f->values);
    free(f);
}

static void test_spec(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    const policy_spec_t *s = policy_spec(f->p);
    assert_string_equal(s->architecture, "pac");
    assert_true(s->has_critic);
    assert_int_equal(s->n_images, 2);
    assert_int_equal(s->action_dim, 7);
    /* no logits before a step */
    const float *l;
    int r, c;
    assert_int_equal(policy_logits(f->p, &l, &r, &c), -ENODATA);
    fx_destroy(f);
}

static void test_step_allocates_nothing(void **state)
{
    (void)state;
    /* the default kernel, and AMX where the CPU has it (its activations are
     * split into bf16 on the stack, not the heap) */
    const policy_kernel_t kernels[] = { POLICY_KERNEL_AUTO, POLICY_KERNEL_AMX };
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++) {
        if (!policy_kernel_supported(kernels[ki]))
            continue;
        policy_options_t o = { .threads = 1, .kernel = kernels[ki] };
        long before_load = n_allocs;
        fx_t *f = fx_new(&o);
        /* the counter sees the loader's allocations, so it would see step's */
        assert_true(n_allocs > before_load);
        float a[POLICY_MAX_ACTION];
        policy_extra_t ex;
        long before = n_allocs;
        for (int i = 0; i < 50; i++) {
            f->values[i % 10] += 0.1f;
            f->img[0][i] ^= 0xff;
            assert_int_equal(policy_step(f->p, &f->obs, a, &ex), 0);
        }
        assert_int_equal(n_allocs, before);
        const policy_spec_t *s = policy_spec(f->p);
        assert_true(ex.has_q_value);
        assert_true(isfinite(ex.q_value) && ex.q_value >= 0.0f && ex.q_value <= 1.0f);
        for (int j = 0; j < s->action_dim; j++)
            assert_true(a[j] >= s->action_low[j] && a[j] <= s->action_high[j]);
        const float *l;
        int r, c;
        assert_int_equal(policy_logits(f->p, &l, &r, &c), 0);
        assert_int_equal(r, s->action_dim);
        assert_int_equal(c, 11);   /* --bins 11 in tests/policy/meson.build */
        fx_destroy(f);
    }
}

static void test_bad_observation(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    float a[POLICY_MAX_ACTION];
    for (int j = 0; j < POLICY_MAX_ACTION; j++)
        a[j] = 42.0f;
    f->values[3] = NAN;
    assert_int_equal(policy_step(f->p, &f->obs, a, NULL), -EDOM);
    f->values[3] = INFINITY;
    assert_int_equal(policy_step(f->p, &f->obs, a, NULL), -EDOM);
    f->values[3] = 0.0f;
    f->imgs[1] = NULL;
    assert_int_equal(policy_step(f->p, &f->obs, a, NULL), -EINVAL);
    policy_observation_t no_images = { .values = f->values, .images = NULL };
    assert_int_equal(policy_step(f->p, &no_images, a, NULL), -EINVAL);
    for (int j = 0; j < POLICY_MAX_ACTION; j++)
        assert_true(a[j] == 42.0f);
    f->imgs[1] = f->img[1];
    assert_int_equal(policy_step(f->p, &f->obs, a, NULL), 0);
    fx_destroy(f);
}

/* Sampling: same seed -> same actions; another seed -> different ones; the
 * deterministic policy is the same every step. */
static void test_sampling(void **state)
{
    (void)state;
    policy_options_t o1 = { .threads = 1, .sample = 1, .temperature = 5.0f, .seed = 7 };
    policy_options_t o2 = { .threads = 1, .sample = 1, .temperature = 5.0f, .seed = 8 };
    fx_t *a = fx_new(&o1), *b = fx_new(&o1), *c = fx_new(&o2), *d = fx_new(NULL);
    int differs_seed = 0, differs_step = 0;
    float first[POLICY_MAX_ACTION], det0[POLICY_MAX_ACTION];
    const policy_spec_t *s = policy_spec(a->p);
    for (int i = 0; i < 20; i++) {
        float xa[POLICY_MAX_ACTION], xb[POLICY_MAX_ACTION], xc[POLICY_MAX_ACTION];
        float xd[POLICY_MAX_ACTION];
        assert_int_equal(policy_step(a->p, &a->obs, xa, NULL), 0);
        assert_int_equal(policy_step(b->p, &b->obs, xb, NULL), 0);
        assert_int_equal(policy_step(c->p, &c->obs, xc, NULL), 0);
        assert_int_equal(policy_step(d->p, &d->obs, xd, NULL), 0);
        assert_memory_equal(xa, xb, sizeof(float) * (size_t)s->action_dim);
        differs_seed |= memcmp(xa, xc, sizeof(float) * (size_t)s->action_dim) != 0;
        if (i == 0) {
            memcpy(first, xa, sizeof first);
            memcpy(det0, xd, sizeof det0);
        } else {
            differs_step |= memcmp(xa, first, sizeof(float) * (size_t)s->action_dim) != 0;
            assert_memory_equal(xd, det0, sizeof(float) * (size_t)s->action_dim);
        }
        for (int j = 0; j < s->action_dim; j++)
            assert_true(xa[j] >= s->action_low[j] && xa[j] <= s->action_high[j]);
    }
    assert_true(differs_seed);
    assert_true(differs_step);
    fx_destroy(a);
    fx_destroy(b);
    fx_destroy(c);
    fx_destroy(d);
}

/* The PAC model with every matrix kernel this CPU runs forced in turn (and
 * auto: the best with one thread; threads 2: BLAS): all compute the same
 * model, so logits agree with the BLAS run to float rounding (AMX: to its
 * bf16x3 products, within 1e-4 too), actions and Q exactly or nearly. A kernel the CPU lacks fails to load with ENOTSUP and a
 * message naming it; so does blis in a build without BLIS. */
static void test_kernels_agree(void **state)
{
    (void)state;
    const struct { policy_options_t o; const char *want; } runs[] = {
        { { .threads = 1, .kernel = POLICY_KERNEL_BLAS }, "blas" },
        { { .threads = 1, .kernel = POLICY_KERNEL_AVX512 }, "avx512-packed" },
        { { .threads = 1, .kernel = POLICY_KERNEL_AVX2 }, "avx2-packed" },
        { { .threads = 1, .kernel = POLICY_KERNEL_AMX }, "amx-bf16x3" },
        { { .threads = 1, .kernel = POLICY_KERNEL_BLIS }, "blis" },
        { { .threads = 1, .kernel = POLICY_KERNEL_AUTO }, NULL },
        { { .threads = 2, .kernel = POLICY_KERNEL_AUTO }, "blas" },
    };
    const char *best = nn_gemm_name(nn_gemm_best(1));
    fx_t *ref = fx_new(&runs[0].o);
    assert_string_equal(policy_kernel(ref->p), "blas");
    const policy_spec_t *s = policy_spec(ref->p);
    int n_runs = 0;
    for (size_t ri = 1; ri < sizeof runs / sizeof runs[0]; ri++) {
        if (!policy_kernel_supported(runs[ri].o.kernel)) {
            char err[512];
            errno = 0;
            assert_null(policy_load(ckpt_path, &runs[ri].o, err, sizeof err));
            assert_int_equal(errno, ENOTSUP);
            assert_non_null(strstr(err, policy_kernel_option_name(runs[ri].o.kernel)));
            if (runs[ri].o.kernel == POLICY_KERNEL_BLIS) {
                assert_non_null(strstr(err, "built without BLIS"));
                print_message("blis kernel: skipped, built without BLIS (libblis-dev)\n");
            } else {
                assert_non_null(strstr(err, "lacks"));
            }
            continue;
        }
        fx_t *f = fx_new(&runs[ri].o);
        assert_string_equal(policy_kernel(f->p), runs[ri].want ? runs[ri].want : best);
        assert_int_equal(policy_prepare_thread(f->p), 0);
        n_runs++;
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < s->obs_dim; i++)
                ref->values[i] = f->values[i] = cosf((float)(i + 5 * step)) * 2.0f;
            for (int k = 0; k < s->n_images; k++)
                for (int j = 0; j < 64; j++)
                    ref->img[k][j * 31] = f->img[k][j * 31] = (uint8_t)(j * step * 11);
            float a1[POLICY_MAX_ACTION], a2[POLICY_MAX_ACTION];
            policy_extra_t e1, e2;
            assert_int_equal(policy_step(ref->p, &ref->obs, a1, &e1), 0);
            assert_int_equal(policy_step(f->p, &f->obs, a2, &e2), 0);
            const float *l1, *l2;
            int r1, c1, r2, c2;
            assert_int_equal(policy_logits(ref->p, &l1, &r1, &c1), 0);
            assert_int_equal(policy_logits(f->p, &l2, &r2, &c2), 0);
            assert_int_equal(r1, r2);
            assert_int_equal(c1, c2);
            for (int i = 0; i < r1 * c1; i++)
                assert_float_equal(l1[i], l2[i], 1e-4);
            for (int j = 0; j < s->action_dim; j++)
                assert_float_equal(a1[j], a2[j], 1e-6);
            assert_float_equal(e1.q_value, e2.q_value, 1e-4);
        }
        fx_destroy(f);
    }
    assert_true(n_runs >= 2);   /* auto and threads 2 run everywhere */
    /* an out-of-range kernel value is refused */
    policy_options_t bad = { .threads = 1, .kernel = (policy_kernel_t)9 };
    char err[512];
    assert_null(policy_load(ckpt_path, &bad, err, sizeof err));
    assert_non_null(strstr(err, "unknown matrix kernel"));
    fx_destroy(ref);
}

/* The load budget (policy_options_t.max_load_bytes): a load that would need
 * more is refused with a message saying so, before it allocates beyond it;
 * the default budget (file-proportional) loads the checkpoint. */
static void test_load_budget(void **state)
{
    (void)state;
    char err[512] = "";
    policy_options_t tight = { .threads = 1, .max_load_bytes = (size_t)1 << 20 };
    assert_null(policy_load(ckpt_path, &tight, err, sizeof err));
    if (!strstr(err, ckpt_path) || !strstr(err, "loading needs more than 1 MiB") ||
        !strstr(err, "out of proportion"))
        fail_msg("unexpected message: %s", err);
    policy_options_t dflt = { .threads = 1 };
    policy_t *p = policy_load(ckpt_path, &dflt, err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    policy_destroy(&p);
}

/* st_rewrite's edit_meta: pacd.model's critic "action_hidden" set to the JSON
 * text arg, or removed when arg is NULL. */
static void set_action_hidden(json_t *meta, void *arg)
{
    json_t *model = json_loads(json_string_value(json_object_get(meta, "pacd.model")), 0,
                               NULL);
    assert_non_null(model);
    json_t *critic = json_object_get(model, "critic");
    assert_true(json_is_object(critic));
    if (arg)
        json_object_set_new(critic, "action_hidden",
                            json_loads(arg, JSON_DECODE_ANY, NULL));
    else
        json_object_del(critic, "action_hidden");
    char *text = json_dumps(model, JSON_COMPACT);
    json_object_set_new(meta, "pacd.model", json_string(text));
    free(text);
    json_decref(model);
}

/* The critic's "action_hidden" and its MLP tensors: a copy of the checkpoint
 * as it is loads (so each refusal below comes from its one edit), and every
 * bad value, missing or misshapen tensor, or metadata that disagrees with the
 * tensors is refused with a message naming the file and the problem. */
static void test_action_hidden_refused(void **state)
{
    const char *dir = *state;
    if (!mlp_path)
        skip();
    char bad[256], err[1024];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    const char *range = "critic: \"action_hidden\" must be an integer in [0, 4096]";
    const struct {
        const char *src, *hidden, *drop, *grow, *needle;
    } cases[] = {
        { mlp_path, "0.5", NULL, NULL, range },
        { mlp_path, "-1", NULL, NULL, range },
        { mlp_path, "5000", NULL, NULL, range },
        { mlp_path, "\"24\"", NULL, NULL, range },
        { mlp_path, "null", NULL, NULL, range },
        { mlp_path, NULL, "critic.action_proj.2.bias", NULL,
          "tensor 'critic.action_proj.2.bias' is missing" },
        { mlp_path, NULL, "critic.action_proj.0.weight", NULL,
          "tensor 'critic.action_proj.0.weight' is missing" },
        { mlp_path, NULL, NULL, "critic.action_proj.0.weight",
          "tensor 'critic.action_proj.0.weight': shape [25, 7], expected [24, 7]" },
        { mlp_path, NULL, NULL, "critic.action_proj.2.weight",
          "tensor 'critic.action_proj.2.weight': shape [33, 24], expected [32, 24]" },
        { mlp_path, NULL, NULL, "critic.action_proj.0.bias",
          "tensor 'critic.action_proj.0.bias': shape [25], expected [24]" },
        /* metadata and tensors disagree */
        { mlp_path, "25", NULL, NULL,
          "tensor 'critic.action_proj.0.weight': shape [24, 7], expected [25, 7]" },
        { mlp_path, "0", NULL, NULL, "tensor 'critic.action_proj.weight' is missing" },
        { linear_path, "24", NULL, NULL, "tensor 'critic.action_proj.0.weight' is missing" },
    };
    /* the copies load when nothing is changed, with "action_hidden" absent or 0
     * for the linear input too */
    const struct { const char *src, *hidden; } good[] = {
        { mlp_path, NULL }, { mlp_path, "24" }, { linear_path, "0" },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        st_edit_t e = { .edit_meta = good[i].hidden ? set_action_hidden : NULL,
                        .arg = (void *)good[i].hidden };
        assert_int_equal(st_rewrite(good[i].src, bad, &e), 0);
        policy_t *p = policy_load(bad, NULL, err, sizeof err);
        if (!p)
            fail_msg("unchanged copy %zu of %s refused: %s", i, good[i].src, err);
        assert_true(policy_spec(p)->has_critic);
        policy_destroy(&p);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_edit_t e = { .edit_meta = cases[i].hidden ? set_action_hidden : NULL,
                        .arg = (void *)cases[i].hidden, .drop = cases[i].drop,
                        .grow = cases[i].grow };
        assert_int_equal(st_rewrite(cases[i].src, bad, &e), 0);
        err[0] = '\0';
        policy_t *p = policy_load(bad, NULL, err, sizeof err);
        if (p) {
            policy_destroy(&p);
            fail_msg("case %zu (action_hidden %s, drop %s, grow %s) loaded", i,
                     cases[i].hidden ? cases[i].hidden : "-", cases[i].drop ? cases[i].drop : "-",
                     cases[i].grow ? cases[i].grow : "-");
        }
        if (!strstr(err, bad) || !strstr(err, cases[i].needle))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].needle);
    }
}

/* A temporary directory for a test's files (*state), removed after it even
 * when it fails. */
static int tmpdir_setup(void **state)
{
    static char dir[64];
    strcpy(dir, "/tmp/pacd-pac-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int tmpdir_teardown(void **state)
{
    st_rmtree(*state);
    return 0;
}

static void test_blas_selfcheck(void **state)
{
    (void)state;
    char report[512];
    assert_int_equal(policy_blas_selfcheck(report, sizeof report), 0);
    assert_non_null(strstr(report, "self-check ok"));
    assert_non_null(strstr(report, "core "));
    assert_int_equal(policy_blas_selfcheck(NULL, 0), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_policy_pac CHECKPOINT [MLP_CRITIC_CHECKPOINT] (made by "
                "pacd_torch.make_pac; the second with --critic-action-hidden 24)\n");
        return 2;
    }
    ckpt_path = linear_path = argv[1];
    mlp_path = argc > 2 ? argv[2] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_step_allocates_nothing),
        cmocka_unit_test(test_bad_observation),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_load_budget),
        cmocka_unit_test(test_blas_selfcheck),
    };
    int failed = cmocka_run_group_tests_name("pac, critic with the linear action input", tests,
                                             NULL, NULL);
    if (!mlp_path)
        return failed;
    ckpt_path = mlp_path;
    const struct CMUnitTest mlp_tests[] = {
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_step_allocates_nothing),
        cmocka_unit_test(test_bad_observation),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_load_budget),
        cmocka_unit_test_setup_teardown(test_action_hidden_refused, tmpdir_setup,
                                        tmpdir_teardown),
    };
    failed += cmocka_run_group_tests_name("pac, critic with the MLP action input", mlp_tests,
                                          NULL, NULL);
    return failed;
}
