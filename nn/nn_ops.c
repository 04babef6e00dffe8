/* nn_ops — the element-wise and row-wise ops (activations, layernorm,
 * GroupNorm, softmax, GELU) and the linear layers over OpenBLAS. See nn.h. */
#include "nn.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

int nn_act_parse(const char *name, nn_act_t *out)
{
    static const struct { const char *name; nn_act_t act; } table[] = {
        { "identity", NN_ACT_IDENTITY }, { "relu", NN_ACT_RELU },
        { "tanh", NN_ACT_TANH }, { "gelu", NN_ACT_GELU },
    };
    if (!name || !out)
        return -EINVAL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].act;
            return 0;
        }
    }
    return -EINVAL;
}

const char *nn_act_name(nn_act_t act)
{
    switch (act) {
    case NN_ACT_IDENTITY: return "identity";
    case NN_ACT_RELU: return "relu";
    case NN_ACT_TANH: return "tanh";
    case NN_ACT_GELU: return "gelu";
    }
    return "?";
}

void nn_set_threads(int threads)
{
    int n = threads < 1 ? 1 : threads;
    if (openblas_get_num_threads() != n) /* a reload with the same count leaves the pool be */
        openblas_set_num_threads(n);
}

const char *nn_blas_corename(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

void nn_linear(const float *x, int n, int in, const float *w, const float *b,
               int out, float *y)
{
    if (n <= 0 || out <= 0)
        return;
    if (in <= 0) {
        for (int r = 0; r < n; r++)
            for (int o = 0; o < out; o++)
                y[(size_t)r * out + o] = b ? b[o] : 0.0f;
        return;
    }
    /* y starts as the bias (or zero) and BLAS accumulates into it (beta = 1),
     * so uninitialised scratch never reaches a beta = 0 scaling. */
    for (int r = 0; r < n; r++) {
        if (b)
            memcpy(y + (size_t)r * out, b, (size_t)out * sizeof(float));
        else
            memset(y + (size_t)r * out, 0, (size_t)out * sizeof(float));
    }
    const float beta = 1.0f;
    if (n == 1) {
        /* y[out] = W[out, in] x[in] + beta y */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, beta, y, 1);
    } else {
        /* Y[n, out] = X[n, in] W^T[in, out] + beta Y */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in,
                    w, in, beta, y, out);
    }
}

void nn_activation(nn_act_t act, float *x, size_t count)
{
    switch (act) {
    case NN_ACT_IDENTITY:
        break;
    case NN_ACT_RELU:
        for (size_t i = 0; i < count; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case NN_ACT_TANH:
        for (size_t i = 0; i < count; i++)
            x[i] = tanhf(x[i]);
        break;
    case NN_ACT_GELU:
        for (size_t i = 0; i < count; i++)
            x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    }
}

/* Row-wise LayerNorm body: sums in 16 float lanes (one AVX-512 vector;
 * no reassociation needed for the compiler to vectorise), lanes combined in
 * double; mean first, then the variance around it. */
#define NN_LANES 16
static inline __attribute__((always_inline)) void layernorm_rows(
    const float *x, int n, int d, const float *gamma, const float *beta, float eps, float *y)
{
    const int dv = d / NN_LANES * NN_LANES;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        float acc[NN_LANES] = { 0 };
        for (int i = 0; i < dv; i += NN_LANES)
            for (int l = 0; l < NN_LANES; l++)
                acc[l] += xr[i + l];
        double mean = 0.0;
        for (int l = 0; l < NN_LANES; l++)
            mean += acc[l];
        for (int i = dv; i < d; i++)
            mean += xr[i];
        mean /= d;
        const float m = (float)mean;
        float acc2[NN_LANES] = { 0 };
        for (int i = 0; i < dv; i += NN_LANES)
            for (int l = 0; l < NN_LANES; l++) {
                float c = xr[i + l] - m;
                acc2[l] += c * c;
            }
        double var = 0.0;
        for (int l = 0; l < NN_LANES; l++)
            var += acc2[l];
        for (int i = dv; i < d; i++) {
            double c = xr[i] - mean;
            var += c * c;
        }
        var /= d;
        const float inv = (float)(1.0 / sqrt(var + (double)eps));
        if (gamma && beta) {
            for (int i = 0; i < d; i++)
                yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
        } else {
            for (int i = 0; i < d; i++) {
                float v = (xr[i] - m) * inv;
                yr[i] = v * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void layernorm_avx512(
    const float *x, int n, int d, const float *gamma, const float *beta, float eps, float *y)
{
    layernorm_rows(x, n, d, gamma, beta, eps, y);
}
#endif

void nn_layernorm(const float *x, int n, int d, const float *gamma, const float *beta,
                  float eps, float *y)
{
    if (n <= 0 || d <= 0)
        return;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        layernorm_avx512(x, n, d, gamma, beta, eps, y);
        return;
    }
#endif
    layernorm_rows(x, n, d, gamma, beta, eps, y);
}

void nn_softmax(float *x, int n, int d)
{
    if (n <= 0 || d <= 0)
        return;
    for (int r = 0; r < n; r++) {
        float *xr = x + (size_t)r * d;
        float mx = xr[0];
        for (int i = 1; i < d; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < d; i++) {
            xr[i] = expf(xr[i] - mx);
            sum += xr[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < d; i++)
            xr[i] *= inv;
    }
}

void nn_linear_acc(const float *x, int n, int in, const float *w, const float *b,
                   int out, float *y)
{
    if (n <= 0 || out <= 0)
        return;
    if (b)
        for (int r = 0; r < n; r++) {
            float *yr = y + (size_t)r * out;
            for (int o = 0; o < out; o++)
                yr[o] += b[o];
        }
    if (in <= 0)
        return;
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 1.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in,
                    w, in, 1.0f, y, out);
}

static inline __attribute__((always_inline)) float erf_approx(float a)
{
    float x = a < -4.0f ? -4.0f : a > 4.0f ? 4.0f : a;
    float x2 = x * x;
    /* odd numerator, even denominator (Eigen generic_fast_erf_float) */
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

float nn_erf(float x)
{
    return erf_approx(x);
}

/* Hot elementwise loop, compiled for AVX-512, AVX2 and the baseline and
 * picked per call from the CPU's features, so one binary runs anywhere.
 * (Not an ifunc: resolvers run before sanitizer runtimes are up.) */
static inline __attribute__((always_inline)) void gelu_loop(float *x, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + erf_approx(v * (float)M_SQRT1_2));
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* 16 lanes with intrinsics: the same polynomials, and p / q as p * (1/q)
 * with 1/q from rcp14 and one Newton step (relative error ~1e-7 instead of
 * the 0.5 ulp of a division, at a fraction of vdivps' cost). */
__attribute__((target("avx512f"))) static void gelu_avx512(float *x, size_t count)
{
    static const float pc[7] = { -2.72614225801306e-10f, 2.77068142495902e-08f,
        -2.10102402082508e-06f, -5.69250639462346e-05f, -7.34990630326855e-04f,
        -2.95459980854025e-03f, -1.60960333262415e-02f };
    static const float qc[5] = { -1.45660718464996e-05f, -2.13374055278905e-04f,
        -1.68282697438203e-03f, -7.37332916720468e-03f, -1.42647390514189e-02f };
    const __m512 lo = _mm512_set1_ps(-4.0f), hi = _mm512_set1_ps(4.0f);
    const __m512 s2 = _mm512_set1_ps((float)M_SQRT1_2), half = _mm512_set1_ps(0.5f);
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    size_t i = 0;
    for (; i < count; i += 16) {
        const __mmask16 mk = count - i >= 16 ? (__mmask16)0xffff
                                            : (__mmask16)((1u << (count - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
        const __m512 a = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, s2), lo), hi);
        const __m512 a2 = _mm512_mul_ps(a, a);
        __m512 p = _mm512_set1_ps(pc[0]);
        for (int k = 1; k < 7; k++)
            p = _mm512_fmadd_ps(p, a2, _mm512_set1_ps(pc[k]));
        p = _mm512_mul_ps(p, a);
        __m512 q = _mm512_set1_ps(qc[0]);
        for (int k = 1; k < 5; k++)
            q = _mm512_fmadd_ps(q, a2, _mm512_set1_ps(qc[k]));
        __m512 r = _mm512_rcp14_ps(q);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, two));   /* Newton: r (2 - q r) */
        const __m512 erf = _mm512_mul_ps(p, r);
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf));
        _mm512_mask_storeu_ps(x + i, mk, y);
    }
}

__attribute__((target("avx2"))) static void gelu_avx2(float *x, size_t count)
{
    gelu_loop(x, count);
}
#endif

void nn_gelu(float *x, size_t count)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        gelu_avx512(x, count);
        return;
    }
    if (__builtin_cpu_supports("avx2")) {
        gelu_avx2(x, count);
        return;
    }
#endif
    gelu_loop(x, count);
}

/* GroupNorm body over channel chunks of NN_GN_CHUNK: per-channel sums over
 * the positions run along the channels (contiguous, so they vectorise), in
 * float per chunk of positions and double across chunks; then the group
 * statistics from the channel sums, the centred second pass the same way,
 * and one pass y = x * scale[ch] + shift[ch] (+ ReLU). */
#define NN_GN_CHUNK 256
#define NN_GN_PBLOCK 64
static inline __attribute__((always_inline)) void groupnorm_body(
    const float *x, int p, int c, int groups, const float *gamma, const float *beta, float eps,
    nn_act_t act, float *y)
{
    const int cg = c / groups;
    const double inv_n = 1.0 / ((double)p * cg);
    /* groups never straddle chunks: a chunk holds whole groups */
    int chunk = NN_GN_CHUNK / cg * cg;
    if (chunk < cg)
        chunk = cg;
    for (int c0 = 0; c0 < c; c0 += chunk) {
        const int cn = c - c0 < chunk ? c - c0 : chunk;
        double sum[NN_GN_CHUNK > 0 ? NN_GN_CHUNK : 1];
        float fs[NN_GN_CHUNK], mean_c[NN_GN_CHUNK], scale[NN_GN_CHUNK], shift[NN_GN_CHUNK];
        if (cn > NN_GN_CHUNK) {
            /* one group wider than a chunk: plain per-group loops */
            for (int g = c0 / cg; g < (c0 + cn) / cg; g++) {
                int g0 = g * cg;
                double s1 = 0.0, s2 = 0.0;
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < cg; j++)
                        s1 += x[(size_t)i * c + g0 + j];
                double mu = s1 * inv_n;
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < cg; j++) {
                        double dd = x[(size_t)i * c + g0 + j] - mu;
                        s2 += dd * dd;
                    }
                float inv = (float)(1.0 / sqrt(s2 * inv_n + (double)eps));
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < cg; j++) {
                        size_t at = (size_t)i * c + g0 + j;
                        float v = (x[at] - (float)mu) * inv * gamma[g0 + j] + beta[g0 + j];
                        y[at] = act == NN_ACT_RELU && v < 0.0f ? 0.0f : v;
                    }
            }
            continue;
        }
        for (int j = 0; j < cn; j++)
            sum[j] = 0.0;
        for (int i0 = 0; i0 < p; i0 += NN_GN_PBLOCK) {
            const int i1 = p - i0 < NN_GN_PBLOCK ? p : i0 + NN_GN_PBLOCK;
            for (int j = 0; j < cn; j++)
                fs[j] = 0.0f;
            for (int i = i0; i < i1; i++) {
                const float *xr = x + (size_t)i * c + c0;
                for (int j = 0; j < cn; j++)
                    fs[j] += xr[j];
            }
            for (int j = 0; j < cn; j++)
                sum[j] += fs[j];
        }
        for (int g = 0; g < cn / cg; g++) {
            double s1 = 0.0;
            for (int j = 0; j < cg; j++)
                s1 += sum[g * cg + j];
            for (int j = 0; j < cg; j++)
                mean_c[g * cg + j] = (float)(s1 * inv_n);
        }
        for (int j = 0; j < cn; j++)
            sum[j] = 0.0;
        for (int i0 = 0; i0 < p; i0 += NN_GN_PBLOCK) {
            const int i1 = p - i0 < NN_GN_PBLOCK ? p : i0 + NN_GN_PBLOCK;
            for (int j = 0; j < cn; j++)
                fs[j] = 0.0f;
            for (int i = i0; i < i1; i++) {
                const float *xr = x + (size_t)i * c + c0;
                for (int j = 0; j < cn; j++) {
                    float dd = xr[j] - mean_c[j];
                    fs[j] += dd * dd;
                }
            }
            for (int j = 0; j < cn; j++)
                sum[j] += fs[j];
        }
        for (int g = 0; g < cn / cg; g++) {
            double s2 = 0.0;
            for (int j = 0; j < cg; j++)
                s2 += sum[g * cg + j];
            float inv = (float)(1.0 / sqrt(s2 * inv_n + (double)eps));
            for (int j = 0; j < cg; j++) {
                int ch = c0 + g * cg + j;
                scale[g * cg + j] = inv * gamma[ch];
                shift[g * cg + j] = beta[ch] - mean_c[g * cg + j] * inv * gamma[ch];
            }
        }
        for (int i = 0; i < p; i++) {
            const float *xr = x + (size_t)i * c + c0;
            float *yr = y + (size_t)i * c + c0;
            if (act == NN_ACT_RELU) {
                for (int j = 0; j < cn; j++) {
                    float v = xr[j] * scale[j] + shift[j];
                    yr[j] = v > 0.0f ? v : 0.0f;
                }
            } else {
                for (int j = 0; j < cn; j++)
                    yr[j] = xr[j] * scale[j] + shift[j];
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void groupnorm_avx512(
    const float *x, int p, int c, int groups, const float *gamma, const float *beta, float eps,
    nn_act_t act, float *y)
{
    groupnorm_body(x, p, c, groups, gamma, beta, eps, act, y);
}
#endif

void nn_groupnorm_hwc(const float *x, int p, int c, int groups, const float *gamma,
                      const float *beta, float eps, nn_act_t act, float *y)
{
    if (p <= 0 || c <= 0 || groups <= 0 || c % groups)
        return;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f"))
        groupnorm_avx512(x, p, c, groups, gamma, beta, eps, act, y);
    else
#endif
        groupnorm_body(x, p, c, groups, gamma, beta, eps, act, y);
    if (act == NN_ACT_GELU)
        nn_gelu(y, (size_t)p * c);
    else if (act == NN_ACT_TANH)
        nn_activation(act, y, (size_t)p * c);
}

int nn_blas_selfcheck(char *report, size_t n)
{
    enum { M = 37, N = 29, K = 53 };
    const float alpha = 0.75f, beta = -0.5f;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * N * K);
    float *c = malloc(sizeof(float) * M * N);
    double *ref = malloc(sizeof(double) * M * N);
    int rc = 0;
    if (!a || !b || !c || !ref) {
        if (report && n)
            snprintf(report, n, "BLAS self-check: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    /* deterministic values in [-1, 1] with a full range of mantissas */
    uint32_t s = 12345u;
    for (int i = 0; i < M * K; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
    }
    for (int i = 0; i < N * K; i++) {
        s = s * 1664525u + 1013904223u;
        b[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
    }
    for (int i = 0; i < M * N; i++) {
        s = s * 1664525u + 1013904223u;
        c[i] = (float)((double)(s >> 8) / 8388608.0 - 1.0);
        ref[i] = beta * (double)c[i];
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++)
                acc += (double)a[i * K + k] * b[j * K + k];
            ref[i * N + j] += alpha * acc;
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, a, K, b, K, beta,
                c, N);
    double worst = 0.0;
    int wi = 0;
    for (int i = 0; i < M * N; i++) {
        double err = fabs((double)c[i] - ref[i]) / (fabs(ref[i]) + 1.0);
        if (!(err <= worst)) {   /* NaN counts as worst */
            worst = err;
            wi = i;
            if (isnan(err))
                break;
        }
    }
    const char *cfg = openblas_get_config();
    if (!(worst <= 1e-4)) {
        if (report && n)
            snprintf(report, n, "BLAS self-check FAILED: %s, core %s, threads %d: sgemm "
                     "element [%d, %d] is %g, expected %g; this BLAS kernel computes wrong "
                     "results on this CPU: unset OPENBLAS_CORETYPE or select another kernel",
                     cfg ? cfg : "unknown BLAS", nn_blas_corename(),
                     openblas_get_num_threads(), wi / N, wi % N, (double)c[wi], ref[wi]);
        rc = -EIO;
    } else if (report && n) {
        snprintf(report, n, "BLAS %s, core %s, threads %d, sgemm self-check ok (max rel err "
                 "%.1e)", cfg ? cfg : "unknown", nn_blas_corename(),
                 openblas_get_num_threads(), worst);
    }
out:
    free(a);
    free(b);
    free(c);
    free(ref);
    return rc;
}
